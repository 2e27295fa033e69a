"""The real main window, offscreen: open files, score in the worker, see results, switch, fail well."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PySide6 import QtCore, QtGui

from deepaq_gui.main_window import MainWindow

TIMEOUT_MS = 120_000


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    w = MainWindow(device="cpu", audio_backend="null")
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def _open_and_wait(qtbot, w, paths):
    with qtbot.waitSignal(w.scoringIdle, timeout=TIMEOUT_MS):
        w.open_files(paths)
    qtbot.waitUntil(lambda: w.is_idle() and not w.session.missing_results(), timeout=TIMEOUT_MS)


def test_open_reference_and_two_versions_shows_everything(qtbot, window, signals):
    _open_and_wait(qtbot, window, [signals["ref"], signals["lp"], signals["noisy"]])
    s = window.session
    assert len(s.versions) == 2 and set(s.results) == {0, 1}
    assert len(window.curve.curve_items()) == 2
    assert window.table.model().rowCount() == 2
    assert window.files.topLevelItemCount() == 3
    shown = s.results[window.shown_version]
    assert window.heatmap.image_item().image.shape == shown.layer_heatmap.values.shape
    assert window.matrix.image_item().image.shape == shown.time_matrix.values.shape
    # the score column of the files panel shows each version's global score
    assert window.files.topLevelItem(1).text(8) == f"{s.results[0].score:.1f}"
    # no error message was needed
    assert window.errors_seen == []


def test_keys_switch_tracks_and_live_score_follows(qtbot, window, signals):
    _open_and_wait(qtbot, window, [signals["ref"], signals["lp"], signals["noisy"]])
    qtbot.keyClick(window, QtCore.Qt.Key_2)
    assert window.engine.current == 2 and window.current == 2
    qtbot.keyClick(window, QtCore.Qt.Key_R)
    assert window.engine.current == 0
    qtbot.keyClick(window, QtCore.Qt.Key_Tab)
    assert window.engine.current == 2
    window.seek(2.0)
    window._tick()
    expected = window.curve.score_at(1, 2.0)
    assert expected is not None and window.live.text() == f"{expected:.1f}"
    qtbot.keyClick(window, QtCore.Qt.Key_Space)
    assert window.engine.playing
    qtbot.keyClick(window, QtCore.Qt.Key_Space)
    assert not window.engine.playing


def test_bad_file_shows_message_and_keeps_session(qtbot, window, signals, tmp_path):
    _open_and_wait(qtbot, window, [signals["ref"], signals["lp"]])
    before = dict(window.session.results)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    with qtbot.waitSignal(window.scoringIdle, timeout=TIMEOUT_MS):
        window.open_files([str(bad)], as_reference=False)
    assert any("broken.wav" in m for m in window.errors_seen)
    assert window.messages.isVisible() and "broken.wav" in window.messages.label.text()
    assert len(window.session.versions) == 1 and window.session.results == before


def test_starts_without_audio_device_and_says_so_once(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    w = MainWindow(device="cpu", audio_backend="auto")
    qtbot.addWidget(w)
    w.show()
    if w.engine.available:
        pytest.skip("this machine has an audio device")
    qtbot.waitUntil(lambda: w.messages.isVisible(), timeout=5000)
    assert [lvl for lvl, _ in w.messages.history].count("warning") == 1
    assert "playback is off" in w.messages.label.text()
    w.close()


def test_exports(qtbot, window, signals, tmp_path):
    _open_and_wait(qtbot, window, [signals["ref"], signals["lp"]])
    for kind, name in [("window_png", "w.png"), ("curve_svg", "c.svg"), ("csv", "c.csv"), ("json", "s.json")]:
        window.export(kind, str(tmp_path / name))
        assert (tmp_path / name).stat().st_size > 100
    rows = (tmp_path / "c.csv").read_text().splitlines()
    assert len(rows) == 1 + len(window.session.results[0].curve.score)


def test_screenshot_smoke_on_demo(qapp, tmp_path):
    """The real app, offscreen, on the demo: exits 0 and writes a non-blank PNG of the window."""
    out = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "deepaq_gui.app", "--demo", "--device", "cpu", "--no-audio",
                           "--screenshot", str(out), "--timeout", "300"], capture_output=True, text=True,
                          timeout=400, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    img = QtGui.QImage(str(out))
    assert img.width() >= 800 and img.height() >= 600
    grey = img.convertToFormat(QtGui.QImage.Format_Grayscale8)  # kept alive: the array views its memory
    arr = np.array(grey.constBits(), dtype=np.uint8, copy=True)
    assert arr.std() > 20  # plots, not an empty window


def test_screenshot_fails_cleanly_on_bad_file(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "deepaq_gui.app", "--no-audio", "--screenshot",
                           str(tmp_path / "x.png"), str(tmp_path / "missing.wav")], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode != 0
    assert "missing.wav" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.png").exists()


def test_blind_abx_hides_identity_and_scores(qtbot, window, signals):
    _open_and_wait(qtbot, window, [signals["ref"], signals["lp"], signals["noisy"]])
    window.open_blind("abx")
    panel = window.blind
    panel.start(0, 1, trials=4, seed=3)
    assert window._hidden()
    assert window.table.model().rowCount() == 0 and window.curve.curve_items() == {}
    assert window.files.topLevelItem(1).text(8) == ""  # no score column during the test
    qtbot.keyClick(window, QtCore.Qt.Key_X)  # play X: the engine switches, the label does not tell
    x = panel.test.index_of("X")
    assert window.engine.current == x
    window._tick()
    assert "version" not in window.transport.text() and "(blind)" in window.transport.text()
    qtbot.keyClick(window, QtCore.Qt.Key_2)  # an answer ("X is B"), not "select version 2"
    assert panel.test.total == 1
    window.close_blind()
    assert not window._hidden() and window.table.model().rowCount() == 2
    assert window.blind_logs and window.blind_logs[0]["trials"][0]["trial"] == 1


def test_session_round_trip_restores_results_without_rescoring(qtbot, window, signals, tmp_path, monkeypatch):
    import shutil

    folder = tmp_path / "proj"
    folder.mkdir()
    for name in ("ref", "lp", "noisy"):
        shutil.copy(signals[name], folder / f"{name}.wav")
    _open_and_wait(qtbot, window, [str(folder / "ref.wav"), str(folder / "lp.wav"), str(folder / "noisy.wav")])
    scores = {i: r.score for i, r in window.session.results.items()}
    path = str(tmp_path / "s.deepaq.json")
    window.save_session(path=path)

    # change one file on disk: it must be reported and rescored, the other restored as saved
    import numpy as np
    import soundfile as sf

    x, sr = sf.read(folder / "noisy.wav", dtype="float32")
    sf.write(folder / "noisy.wav", x * np.float32(0.5), sr, subtype="FLOAT")

    w2 = MainWindow(device="cpu", audio_backend="null")
    qtbot.addWidget(w2)
    import deepaq_core.scoring as scoring

    calls = []
    real = scoring.Scorer.iter_score

    def spy(self, reference, degraded, cancel=None):
        calls.append(len(degraded))
        return real(self, reference, degraded, cancel=cancel)

    monkeypatch.setattr(scoring.Scorer, "iter_score", spy)
    with qtbot.waitSignal(w2.scoringIdle, timeout=TIMEOUT_MS):
        w2.load_session_file(path)
    qtbot.waitUntil(lambda: w2.is_idle() and not w2.session.missing_results(), timeout=TIMEOUT_MS)
    assert w2.session.results[0].score == scores[0]
    assert calls == [1]  # only the changed file was scored again
    assert any("noisy.wav" in text and "changed" in text for _, text in w2.messages.history)
    w2.close()


def test_generated_versions_and_report(qtbot, window, signals, tmp_path):
    from deepaq_gui.degrade_dialog import generate_versions_job

    _open_and_wait(qtbot, window, [signals["ref"]])
    job = generate_versions_job(window.session.reference.path, [("lowpass", {"cutoff_hz": 4000.0}),
                                                                ("white_noise", {"snr_db": 20.0})], str(tmp_path))
    with qtbot.waitSignal(window.scoringIdle, timeout=TIMEOUT_MS):
        window._start(job, finished=window._versions_generated)
    qtbot.waitUntil(lambda: len(window.session.results) == 2 and window.is_idle(), timeout=TIMEOUT_MS)
    window.export("report", str(tmp_path / "report.pdf"))
    assert (tmp_path / "report.pdf").read_bytes()[:4] == b"%PDF"


def test_result_views_update_one_per_turn_but_a_blind_test_clears_them_at_once(qtbot, window, signals):
    _open_and_wait(qtbot, window, [signals["ref"], signals["lp"], signals["noisy"]])
    window.table.set_results({}, {})  # as if the results had just arrived
    window._refresh(staged=True)
    assert window.table.model().rowCount() == 0 and not window.is_idle()  # not yet: a later turn
    qtbot.waitUntil(window.is_idle, timeout=5000)
    assert window.table.model().rowCount() == 2 and len(window.curve.curve_items()) == 2
    window._refresh(staged=True)  # pending updates must not outlive the start of a blind test
    window.open_blind("abx")
    window.blind.start(0, 1, trials=4, seed=3)
    assert window.table.model().rowCount() == 0 and window.curve.curve_items() == {}
    qtbot.wait(50)
    assert window.table.model().rowCount() == 0 and window.curve.curve_items() == {}
