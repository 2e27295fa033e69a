"""The "Generate degraded versions…" dialog and generate_versions."""

from __future__ import annotations

import os
import threading

import pytest
import soundfile as sf

from deepaq_core.degrade import FAMILIES, DegradationError
from deepaq_core.errors import Cancelled
from deepaq_gui import degrade_dialog
from deepaq_gui.degrade_dialog import (
    DegradeDialog,
    default_output_dir,
    generate_versions,
    generate_versions_job,
    job_filename,
    job_label,
)
from deepaq_gui.session import Session
from deepaq_gui.workers import run_sync
from tests.conftest import music_like

SR = 16000


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    p = tmp_path_factory.mktemp("degrade") / "song.wav"
    sf.write(p, music_like(2.0, SR, seed=4), SR, subtype="FLOAT")
    return str(p)


@pytest.fixture
def mp3_missing(monkeypatch):
    reason = "The mp3 encoder needs 'lame' or 'ffmpeg', and neither is installed."
    real = degrade_dialog.available_codecs
    monkeypatch.setattr(degrade_dialog, "available_codecs", lambda: {**real(), "mp3": None})
    monkeypatch.setattr(degrade_dialog, "codec_unavailable_reason", lambda name: reason if name == "mp3" else None)
    return reason


def test_every_family_is_listed_and_a_missing_encoder_is_shown_disabled(qtbot, reference, mp3_missing):
    dlg = DegradeDialog(reference)
    qtbot.addWidget(dlg)
    assert dlg.family_names() == list(FAMILIES)
    assert not dlg.is_family_enabled("mp3")
    item = dlg.family_item("mp3")
    assert mp3_missing in item.text() and item.toolTip() == mp3_missing
    assert dlg.unavailable_reason("mp3") == mp3_missing
    assert dlg.select_family("mp3") is False
    assert dlg.is_family_enabled("lowpass") and dlg.unavailable_reason("lowpass") is None
    assert dlg.family() is not None and dlg.family() != "mp3"  # the first usable family is preselected
    assert dlg.output_dir() == default_output_dir(reference) == os.path.join(os.path.dirname(reference), "song_versions")


def test_three_ladder_values_make_three_jobs(qtbot, reference):
    dlg = DegradeDialog(reference)
    qtbot.addWidget(dlg)
    assert dlg.select_family("lowpass")
    assert [float(cb.property("value")) for cb in dlg.ladder_checks] == [float(v) for v in FAMILIES["lowpass"].ladder]
    dlg.set_ladder_values([8000, 4000, 2000])
    assert dlg.jobs() == [("lowpass", {"cutoff_hz": 8000}), ("lowpass", {"cutoff_hz": 4000}),
                          ("lowpass", {"cutoff_hz": 2000})]
    assert dlg.validate() is None
    dlg.accept()
    assert dlg.result() == DegradeDialog.Accepted


def test_invalid_values_give_one_clear_message_and_keep_the_dialog_open(qtbot, reference):
    dlg = DegradeDialog(reference, max_jobs=2)
    qtbot.addWidget(dlg)
    dlg.select_family("lowpass")
    dlg.set_value_text("abc")
    assert dlg.jobs() == []
    dlg.accept()
    assert dlg.result() != DegradeDialog.Accepted
    assert dlg.error_label.text() == "The value field is not valid: 'abc' is not a number."
    dlg.set_value_text("-100")
    dlg.accept()
    assert dlg.result() != DegradeDialog.Accepted
    assert dlg.error_label.text() == "The low-pass cutoff must be a positive frequency in Hz, got -100."
    dlg.set_value_text("1000, 2000, 3000")
    assert "at most 2" in dlg.validate()
    dlg.set_value_text("1000 2500")
    assert dlg.validate() is None
    assert dlg.jobs() == [("lowpass", {"cutoff_hz": 1000}), ("lowpass", {"cutoff_hz": 2500})]


def test_generate_versions_writes_readable_files_with_labels(reference, tmp_path):
    jobs = [("lowpass", {"cutoff_hz": 8000}), ("lowpass", {"cutoff_hz": 4000}), ("white_noise", {"snr_db": 20})]
    seen = []
    made = generate_versions(reference, jobs, tmp_path / "out", progress=lambda f, m: seen.append(f))
    assert [label for _, label in made] == ["lowpass 8000 Hz", "lowpass 4000 Hz", "white noise 20 dB"]
    assert [os.path.basename(p) for p, _ in made] == ["song_lowpass_8000Hz.flac", "song_lowpass_4000Hz.flac",
                                                       "song_white_noise_20dB.flac"]
    for path, label in made:
        track = Session.read_track(path, label=label)
        assert track.info.sample_rate == SR and track.info.format == "FLAC"
        assert abs(track.info.duration_s - 2.0) < 1e-3
    assert seen[-1] == 1.0 and seen == sorted(seen)
    # an existing file is never overwritten: a second run gets new names
    again = generate_versions(reference, jobs[:1], tmp_path / "out")
    assert os.path.basename(again[0][0]) == "song_lowpass_8000Hz_2.flac"
    assert sorted(os.listdir(tmp_path / "out")) == sorted(
        ["song_lowpass_8000Hz.flac", "song_lowpass_4000Hz.flac", "song_white_noise_20dB.flac",
         "song_lowpass_8000Hz_2.flac"])


def test_invalid_job_raises_one_sentence_and_leaves_nothing(reference, tmp_path):
    with pytest.raises(DegradationError) as info:
        generate_versions(reference, [("lowpass", {"cutoff_hz": -5})], tmp_path / "bad")
    assert str(info.value) == "The low-pass cutoff must be a positive frequency in Hz, got -5."
    assert os.listdir(tmp_path / "bad") == []
    # in the worker job a bad job is reported and the others still run
    outs, fails = [], []
    run_sync(generate_versions_job(reference, [("lowpass", {"cutoff_hz": -5}), ("lowpass", {"cutoff_hz": 3000})],
                                   tmp_path / "mixed"),
             threading.Event(), lambda f, m: None, lambda p: None, outs.append, lambda m, tb: fails.append(m),
             lambda: None)
    assert fails == []
    assert [label for _, label in outs[0].files] == ["lowpass 3000 Hz"]
    assert outs[0].errors == ("The low-pass cutoff must be a positive frequency in Hz, got -5.",)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        generate_versions(reference, [("lowpass", {"cutoff_hz": 3000})], tmp_path / "cancelled", cancel=cancel)


def test_names_and_labels():
    assert job_label("mp3", {"bitrate_kbps": 64}) == "mp3 64 kbit/s"
    assert job_filename("/x/song.flac", "mp3", {"bitrate_kbps": 64}) == "song_mp3_64kbps.flac"
    assert job_label("clipping", {"clip_ratio": 0.01}) == "clipping clip_ratio=0.01"
    assert job_filename("a b.wav", "separation", {"quality": 0.6}) == "a_b_separation_0.6.flac"


def test_the_dialog_asks_whether_to_open_the_results_as_a_ladder(qtbot, reference, monkeypatch):
    def run(dlg):
        dlg.select_family("lowpass")
        dlg.set_ladder_values([8000, 4000])
        dlg.ladder_check.setChecked(True)
        dlg.accept()
        return dlg.result()

    monkeypatch.setattr(DegradeDialog, "exec", run)
    jobs, out_dir, as_ladder = DegradeDialog.ask(reference)
    assert jobs == [("lowpass", {"cutoff_hz": 8000}), ("lowpass", {"cutoff_hz": 4000})] and as_ladder is True
    assert out_dir == default_output_dir(reference)
    dlg = DegradeDialog(reference)
    qtbot.addWidget(dlg)
    assert dlg.open_as_ladder() is False  # off unless asked for


def test_generated_versions_are_listed_in_a_ladder_manifest_the_ladder_reader_reads(reference, tmp_path):
    from deepaq_core.errors import DeePAQError
    from deepaq_core.evaluation.manifest import load_manifest
    from deepaq_core.evaluation.rate_quality import read_rate_ladder

    out = tmp_path / "ladder"
    outs = []
    run_sync(generate_versions_job(reference, [("lowpass", {"cutoff_hz": 4000}), ("lowpass", {"cutoff_hz": 2000})],
                                   out), threading.Event(), lambda f, m: None, lambda p: None, outs.append,
             lambda m, tb: None, lambda: None)
    made = outs[0]
    assert made.manifest == str(out / "manifest.csv") and made.families == ("lowpass",) and made.errors == ()
    # a later run into the same folder joins the ladder; the clean rung is listed once per group
    run_sync(generate_versions_job(reference, [("lowpass", {"cutoff_hz": 6000}), ("white_noise", {"snr_db": 10})],
                                   out), threading.Event(), lambda f, m: None, lambda p: None, outs.append,
             lambda m, tb: None, lambda: None)
    rows = load_manifest(out / "manifest.csv", subjective_col="intensity", group_col="group")
    lp = [r for r in rows if r.group == "song/lowpass"]
    assert [r.extra["param"] for r in lp] == ["", "4000", "2000", "6000"]
    assert lp[0].degraded == lp[0].reference == os.path.abspath(reference) and lp[0].subjective == 0.0
    assert lp[2].subjective > lp[1].subjective > lp[3].subjective > 0  # lower cutoff = more degraded
    points = read_rate_ladder(out, families=["lowpass"])
    assert [(p.codec, p.kbps, p.unit) for p in points] == [("lowpass", 2000.0, "Hz"), ("lowpass", 4000.0, "Hz"),
                                                            ("lowpass", 6000.0, "Hz")]
    assert {p.reference for p in points} == {os.path.abspath(reference)}
    with pytest.raises(DeePAQError, match="different units"):
        read_rate_ladder(out, families=["lowpass", "white_noise"])
    with pytest.raises(DeePAQError, match="no codec versions"):
        read_rate_ladder(out)  # File > Open ladder… without families: bitrate rows only, as before
    # a manifest.csv of another kind is left alone
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.csv").write_text("reference,degraded,subjective\n")
    assert degrade_dialog.write_ladder_manifest(other, reference, [(reference, "lowpass", {"cutoff_hz": 1})]) is None
    assert (other / "manifest.csv").read_text() == "reference,degraded,subjective\n"
