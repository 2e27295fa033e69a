"""Session files: save, reload without recomputing, report changed and missing files, autosave, recent list."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
from PySide6 import QtCore

from deepaq_core.audio import Alignment
from deepaq_core.errors import DeePAQError
from deepaq_core.results import FileSummary, Heatmap, ModelInfo, QualityCurve, QualityResult
from deepaq_core.scoring import ScoreSettings
from deepaq_gui.session import Session
from deepaq_gui.session_file import (
    MAX_RECENT,
    Autosaver,
    add_recent,
    autosave_path,
    load_session,
    read_session_document,
    recent_sessions,
    save_session,
    with_suffix,
)
from tests.conftest import music_like

SR = 16000


def fake_result(ref, deg, score: float) -> QualityResult:
    """A small but complete result for the files of two tracks (no model needed)."""
    fd = np.linspace(0.0, 0.5, 75, dtype=np.float32)
    fd[:3] = np.nan
    return QualityResult(
        model=ModelInfo("compact", "0.1", "untrained", "tiny", 24000, 75.0, 256),
        reference=FileSummary(ref.path, ref.info.sha256, SR, 1, 1.0, "WAV", 32),
        degraded=FileSummary(deg.path, deg.info.sha256, SR, 1, 1.0, "WAV", 32),
        score=score, distance=0.1234567891234, frame_rate=75.0, frame_distance=fd,
        curve=QualityCurve([0.0, 0.5], [1.0, 1.5], [0.1, 0.2], [score + 1, score - 1]),
        layer_heatmap=Heatmap(np.full((5, 4), 0.25), np.arange(4) * 0.25, np.arange(5), "time (s)", "layer", "cos"),
        time_matrix=Heatmap(np.eye(3), np.arange(3.0), np.arange(3.0), "deg", "ref", "L2"),
        alignment=Alignment(12, 0.75, 12, True, 0.9), gain_db=-1.5, reference_loudness_lufs=-20.0,
        degraded_loudness_lufs=-21.5, overlap_start_s=0.0, overlap_end_s=1.0, trimmed_reference_s=0.0,
        trimmed_degraded_s=0.0, settings={"align": True, "lag_ms": None},
    )


@pytest.fixture
def project(tmp_path):
    """A folder with ref.wav, a.wav, b.wav, and a session with results for a and b."""
    folder = tmp_path / "project"
    folder.mkdir()
    x = music_like(1.0, SR, seed=5)
    for name, data in (("ref", x), ("a", 0.5 * x), ("b", 0.25 * x)):
        sf.write(folder / f"{name}.wav", data, SR, subtype="FLOAT")
    s = Session(model_name="compact")
    s.set_reference(Session.read_track(folder / "ref.wav"))
    s.add_version(Session.read_track(folder / "a.wav", label="version A"))
    s.add_version(Session.read_track(folder / "b.wav"))
    s.set_settings(ScoreSettings(align=False, window_s=2.0))
    s.set_result(0, fake_result(s.reference, s.versions[0], 80.0))
    s.set_result(1, fake_result(s.reference, s.versions[1], 60.0))
    extra = {"current": 2, "shown_version": 1, "loop": [0.25, 0.75],
             "blind_logs": [{"trial": 1, "answer": "A", "correct": True}]}
    return folder, s, extra


def test_round_trip_restores_everything_without_recomputing(project):
    folder, s, extra = project
    path = folder / "my.deepaq.json"
    save_session(s, path, extra=extra)
    doc = read_session_document(path)
    assert doc["reference"]["path"] == "ref.wav"  # relative to the session file
    assert os.path.isabs(doc["reference"]["absolute_path"])
    assert doc["versions"][0]["sha256"] == s.versions[0].info.sha256

    loaded = load_session(path)
    t = loaded.session
    assert loaded.messages == [] and loaded.rescore == []
    assert t.reference.info.sha256 == s.reference.info.sha256
    assert [v.label for v in t.versions] == ["version A", "b.wav"]
    assert t.settings == s.settings and t.model_name == "compact"
    assert t.missing_results() == []
    for i in (0, 1):
        a, b = s.results[i], t.results[i]
        assert b.score == a.score and b.distance == a.distance and b.alignment == a.alignment
        np.testing.assert_array_equal(a.frame_distance, b.frame_distance)
        np.testing.assert_array_equal(a.time_matrix.values, b.time_matrix.values)
    assert loaded.blind_logs == extra["blind_logs"]
    assert loaded.loop == (0.25, 0.75)
    assert loaded.current == 2 and loaded.shown_version == 1


def test_moved_folder_and_moved_session_file_both_open(project, tmp_path):
    folder, s, extra = project
    save_session(s, folder / "s.deepaq.json", extra=extra)
    # the session file alone moves: the absolute paths still find the files
    alone = tmp_path / "elsewhere" / "s.deepaq.json"
    alone.parent.mkdir()
    shutil.copy(folder / "s.deepaq.json", alone)
    assert load_session(alone).messages == []
    # the whole folder moves: the relative paths find the files
    moved = tmp_path / "moved"
    shutil.move(str(folder), moved)
    loaded = load_session(moved / "s.deepaq.json")
    assert loaded.messages == [] and len(loaded.session.results) == 2
    assert loaded.session.reference.path == str(moved / "ref.wav")


def test_changed_file_is_reported_and_its_result_dropped(project):
    folder, s, extra = project
    path = folder / "s.deepaq.json"
    save_session(s, path, extra=extra)
    sf.write(folder / "a.wav", music_like(1.0, SR, seed=9) * 0.5, SR, subtype="FLOAT")
    loaded = load_session(path)
    assert loaded.messages == ["'a.wav' has changed since the session was saved; its result was discarded "
                               "and it will be rescored."]
    assert 0 not in loaded.session.results and 1 in loaded.session.results
    assert loaded.rescore == [0] and loaded.session.missing_results() == [0]


def test_missing_version_is_left_out_and_indices_follow(project):
    folder, s, extra = project
    path = folder / "s.deepaq.json"
    save_session(s, path, extra=extra)
    os.remove(folder / "a.wav")
    loaded = load_session(path)
    assert len(loaded.messages) == 1 and "'a.wav' was not found" in loaded.messages[0]
    assert [v.name for v in loaded.session.versions] == ["b.wav"]
    assert loaded.index_map == {1: 0}
    assert loaded.session.results[0].score == 60.0  # b's result moved to index 0
    assert loaded.current == 1 and loaded.shown_version == 0


def test_missing_reference_and_newer_format_are_one_sentence_errors(project):
    folder, s, extra = project
    path = folder / "s.deepaq.json"
    save_session(s, path, extra=extra)
    doc = json.loads(path.read_text())
    doc["version"] = 99
    newer = folder / "newer.deepaq.json"
    newer.write_text(json.dumps(doc))
    with pytest.raises(DeePAQError, match="newer DeePAQ"):
        load_session(newer)
    os.remove(folder / "ref.wav")
    with pytest.raises(DeePAQError, match=r"^The reference 'ref.wav' of this session was not found") as info:
        load_session(path)
    assert str(info.value).count(". ") == 0 and str(info.value).endswith(".")
    with pytest.raises(DeePAQError, match="not a DeePAQ session"):
        (folder / "x.json").write_text("{}")
        load_session(folder / "x.json")


def test_save_without_reference_is_refused(tmp_path):
    with pytest.raises(DeePAQError, match="nothing to save"):
        save_session(Session(), tmp_path / "s.deepaq.json")
    assert with_suffix("a/b") == "a/b.deepaq.json" and with_suffix("b.json") == "b.deepaq.json"
    assert with_suffix("c.deepaq.json") == "c.deepaq.json"


def test_save_never_replaces_one_of_the_sessions_audio_files(project):
    _, session, _ = project
    target = session.versions[0].path
    before = open(target, "rb").read()
    with pytest.raises(DeePAQError, match="a.wav"):
        save_session(session, target)
    assert open(target, "rb").read() == before


def test_autosave_path_respects_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert autosave_path() == tmp_path / "cache" / "deepaq" / "autosave.deepaq.json"


def test_autosaver_saves_only_when_the_session_changed(qtbot, project, tmp_path):
    folder, s, extra = project
    state = {"extra": dict(extra)}
    target = tmp_path / "auto" / "autosave.deepaq.json"
    saver = Autosaver(lambda: (s, state["extra"]), path=target, interval_s=0.05)
    assert saver.maybe_save() is True and target.is_file()
    assert saver.maybe_save() is False  # nothing changed
    s.remove_version(1)
    assert saver.maybe_save() is True
    assert len(read_session_document(target)["versions"]) == 1
    state["extra"] = {**extra, "loop": None}
    assert saver.maybe_save() is True
    # the timer does it by itself
    s.set_settings(ScoreSettings(align=True))
    with qtbot.waitSignal(saver.saved, timeout=3000):
        saver.start()
    saver.stop()
    assert read_session_document(target)["settings"]["align"] is True
    assert load_session(target).messages == []


def test_background_autosave_writes_what_a_direct_save_writes(qtbot, project, tmp_path):
    folder, s, extra = project
    direct, auto = tmp_path / "direct.deepaq.json", tmp_path / "auto.deepaq.json"
    save_session(s, direct, extra=extra)
    saver = Autosaver(lambda: (s, extra), path=auto)
    with qtbot.waitSignal(saver.saved, timeout=5000):
        assert saver.maybe_save(background=True) is True
    a, b = read_session_document(direct), read_session_document(auto)
    a.pop("saved"), b.pop("saved")  # the time of saving
    assert a == b
    assert saver.maybe_save(background=True) is False  # unchanged since the background save


def test_background_autosave_failure_is_reported_once(qtbot, project, tmp_path):
    folder, s, extra = project
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    saver = Autosaver(lambda: (s, extra), path=blocker / "auto.deepaq.json")
    with qtbot.waitSignal(saver.failed, timeout=5000) as got:
        saver.maybe_save(background=True)
    assert got.args[0].startswith("Autosave failed:") and "\n" not in got.args[0]
    saver.wait()
    with qtbot.assertNotEmitted(saver.failed, wait=200):
        saver.maybe_save(background=True)
        saver.wait()


def test_recent_sessions_keep_eight_existing_files(tmp_path):
    store = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.IniFormat)
    paths = []
    for i in range(MAX_RECENT + 2):
        p = tmp_path / f"s{i}.deepaq.json"
        p.write_text("{}")
        paths.append(str(p))
        add_recent(p, store)
    add_recent(paths[5], store)  # reopening moves it to the front, without a duplicate
    got = recent_sessions(store)
    assert got[0] == paths[5] and len(got) == MAX_RECENT and len(set(got)) == MAX_RECENT
    os.remove(paths[9])
    assert paths[9] not in recent_sessions(store)
    # a single entry survives the ini format (which stores one-element lists as a string)
    store2 = QtCore.QSettings(str(tmp_path / "one.ini"), QtCore.QSettings.IniFormat)
    add_recent(paths[0], store2)
    assert recent_sessions(QtCore.QSettings(str(tmp_path / "one.ini"), QtCore.QSettings.IniFormat)) == [paths[0]]
