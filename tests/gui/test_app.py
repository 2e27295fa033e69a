"""The real main window, offscreen: open files, score in the worker, see results, switch, fail well."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

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
    with qtbot.waitSignal(w.ctl.scoringIdle, timeout=TIMEOUT_MS):
        w.ctl.open_files(paths)
    qtbot.waitUntil(lambda: w.ctl.is_idle() and not w.ctl.session.missing_results(), timeout=TIMEOUT_MS)


def test_open_reference_and_two_versions_shows_everything(qtbot, window, signals):
    _open_and_wait(qtbot, window, [signals["ref"], signals["lp"], signals["noisy"]])
    s = window.ctl.session
    assert len(s.versions) == 2 and set(s.results) == {0, 1}
    assert len(window.curve.curve_items()) == 2
    assert window.table.model().rowCount() == 2
    assert window.files.topLevelItemCount() == 3
    shown = s.results[window.ctl.shown_version]
    assert window.heatmap.image_item().image.shape == shown.layer_heatmap.values.shape
    assert window.matrix.image_item().image.shape == shown.time_matrix.values.shape
    # the score column of the files panel shows each version's global score
    assert window.files.topLevelItem(1).text(8) == f"{s.results[0].score:.1f}"
    # no error message was needed
    assert window.ctl.errors_seen == []


def test_keys_switch_tracks_and_live_score_follows(qtbot, window, signals):
    _open_and_wait(qtbot, window, [signals["ref"], signals["lp"], signals["noisy"]])
    qtbot.keyClick(window, QtCore.Qt.Key_2)
    assert window.engine.current == 2 and window.ctl.current == 2
    qtbot.keyClick(window, QtCore.Qt.Key_R)
    assert window.engine.current == 0
    qtbot.keyClick(window, QtCore.Qt.Key_Tab)
    assert window.engine.current == 2
    window.ctl.seek(2.0)
    window._tick()
    expected = window.curve.score_at(1, 2.0)
    assert expected is not None and window.live.text() == f"{expected:.1f}"
    qtbot.keyClick(window, QtCore.Qt.Key_Space)
    assert window.engine.playing
    qtbot.keyClick(window, QtCore.Qt.Key_Space)
    assert not window.engine.playing


def test_bad_file_shows_message_and_keeps_session(qtbot, window, signals, tmp_path):
    _open_and_wait(qtbot, window, [signals["ref"], signals["lp"]])
    before = dict(window.ctl.session.results)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    with qtbot.waitSignal(window.ctl.scoringIdle, timeout=TIMEOUT_MS):
        window.ctl.open_files([str(bad)], as_reference=False)
    assert any("broken.wav" in m for m in window.ctl.errors_seen)
    assert window.messages.isVisible() and "broken.wav" in window.messages.label.text()
    assert len(window.ctl.session.versions) == 1 and window.ctl.session.results == before


@pytest.mark.parametrize("cause", ["no PortAudio", "no device", "rate refused"])
def test_starts_without_audio_and_says_so_once(qtbot, tmp_path, monkeypatch, signals, cause):
    from deepaq_gui import playback
    from tests.gui.test_playback import FakePortAudioError, fake_sounddevice

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if cause == "no PortAudio":
        def missing():
            raise OSError("PortAudio library not found")
        monkeypatch.setattr(playback, "_import_sounddevice", missing)
    else:
        fake = fake_sounddevice(has_device=cause != "no device")
        if cause == "rate refused":
            def refuse(**kwargs):
                raise FakePortAudioError("Invalid sample rate")
            fake.OutputStream = refuse
        monkeypatch.setattr(playback, "_import_sounddevice", lambda: fake)
    w = MainWindow(device="cpu", audio_backend="auto")
    qtbot.addWidget(w)
    w.show()
    assert w.engine.available == (cause == "rate refused")  # that device looks fine until a stream opens
    _open_and_wait(qtbot, w, [signals["ref"], signals["lp"]])
    w.ctl.seek(1.0)
    qtbot.keyClick(w, QtCore.Qt.Key_Space)  # the null clock plays instead
    qtbot.waitUntil(lambda: w.engine.position_s > 1.05, timeout=5000)
    assert not w.engine.available
    assert [lvl for lvl, _ in w.messages.history].count("warning") == 1
    assert "playback is off" in [m for lvl, m in w.messages.history if lvl == "warning"][0]
    assert set(w.ctl.session.results) == {0} and w.ctl.errors_seen == []
    w.close()


def test_exports(qtbot, window, signals, tmp_path):
    _open_and_wait(qtbot, window, [signals["ref"], signals["lp"]])
    from deepaq_gui.main_window import VIEW_EXPORTS

    # the spectrograms arrive from the audio worker (and may be resampled for their axis in the
    # view's own thread): wait for all three images before exporting them
    qtbot.waitUntil(lambda: all(im.image is not None for im in window.spectrogram.image_items()), timeout=15000)

    kinds = [("window_png", "w.png"), ("csv", "c.csv"), ("json", "s.json")]
    kinds += [(f"{v}_{fmt}", f"{v}.{fmt}") for v in VIEW_EXPORTS for fmt in ("png", "svg")]
    for kind, name in kinds:
        window.ctl.export(kind, str(tmp_path / name))
        assert (tmp_path / name).stat().st_size > 100, kind
    assert window.ctl.errors_seen == []
    for v in VIEW_EXPORTS:
        assert QtGui.QImage(str(tmp_path / f"{v}.png")).width() > 100
        svg = (tmp_path / f"{v}.svg").read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "</svg>" in svg
    # the spectrogram export holds the whole stack (reference, degraded, difference): three images
    assert (tmp_path / "spectrogram.svg").read_text().count("<image") >= 3
    rows = (tmp_path / "c.csv").read_text().splitlines()
    assert len(rows) == 1 + len(window.ctl.session.results[0].curve.score)
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]  # written through temporary files


def test_export_never_replaces_an_input_or_a_file_on_failure(qtbot, window, signals, tmp_path, monkeypatch):
    import hashlib

    _open_and_wait(qtbot, window, [signals["ref"], signals["lp"]])
    before = hashlib.sha256(open(signals["lp"], "rb").read()).hexdigest()
    window.ctl.export("csv", signals["lp"])  # the user picked a degraded file as the export target
    assert hashlib.sha256(open(signals["lp"], "rb").read()).hexdigest() == before
    assert any("lp.wav" in text for text in window.ctl.errors_seen)
    # An export that fails half-way leaves the previous file untouched and no temporary file.
    out = tmp_path / "s.json"
    out.write_text("previous")
    from deepaq_gui.views import export

    def broken(results, names, path):
        open(path, "w").write("half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "export_scores_json", broken)
    window.ctl.export("json", str(out))
    assert out.read_text() == "previous"
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]


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
    window.ctl.open_blind("abx")
    panel = window.ctl.blind
    panel.start(0, 1, trials=4, seed=3)
    assert window.ctl.hidden()
    assert window.table.model().rowCount() == 0 and window.curve.curve_items() == {}
    assert window.files.topLevelItem(1).text(8) == ""  # no score column during the test
    qtbot.keyClick(window, QtCore.Qt.Key_X)  # play X: the engine switches, the label does not tell
    x = panel.test.index_of("X")
    assert window.engine.current == x
    window._tick()
    assert "version" not in window.transport.text() and "(blind)" in window.transport.text()
    qtbot.keyClick(window, QtCore.Qt.Key_2)  # an answer ("X is B"), not "select version 2"
    assert panel.test.total == 1
    window.ctl.close_blind()
    assert not window.ctl.hidden() and window.table.model().rowCount() == 2
    assert window.ctl.blind_logs and window.ctl.blind_logs[0]["trials"][0]["trial"] == 1


def test_session_round_trip_restores_results_without_rescoring(qtbot, window, signals, tmp_path, monkeypatch):
    import shutil

    folder = tmp_path / "proj"
    folder.mkdir()
    for name in ("ref", "lp", "noisy"):
        shutil.copy(signals[name], folder / f"{name}.wav")
    _open_and_wait(qtbot, window, [str(folder / "ref.wav"), str(folder / "lp.wav"), str(folder / "noisy.wav")])
    scores = {i: r.score for i, r in window.ctl.session.results.items()}
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
    with qtbot.waitSignal(w2.ctl.scoringIdle, timeout=TIMEOUT_MS):
        w2.ctl.load_session_file(path)
    qtbot.waitUntil(lambda: w2.ctl.is_idle() and not w2.ctl.session.missing_results(), timeout=TIMEOUT_MS)
    assert w2.ctl.session.results[0].score == scores[0]
    assert calls == [1]  # only the changed file was scored again
    assert any("noisy.wav" in text and "changed" in text for _, text in w2.messages.history)
    w2.close()


def test_generated_versions_and_report(qtbot, window, signals, tmp_path):
    from deepaq_gui.degrade_dialog import generate_versions_job

    _open_and_wait(qtbot, window, [signals["ref"]])
    job = generate_versions_job(window.ctl.session.reference.path, [("lowpass", {"cutoff_hz": 4000.0}),
                                                                ("white_noise", {"snr_db": 20.0})], str(tmp_path))
    with qtbot.waitSignal(window.ctl.scoringIdle, timeout=TIMEOUT_MS):
        window.ctl.start(job, finished=window.ctl.versions_generated)
    qtbot.waitUntil(lambda: len(window.ctl.session.results) == 2 and window.ctl.is_idle(), timeout=TIMEOUT_MS)
    window.ctl.export("report", str(tmp_path / "report.pdf"))
    assert (tmp_path / "report.pdf").read_bytes()[:4] == b"%PDF"


def test_result_views_update_one_per_turn_but_a_blind_test_clears_them_at_once(qtbot, window, signals):
    _open_and_wait(qtbot, window, [signals["ref"], signals["lp"], signals["noisy"]])
    window.table.set_results({}, {})  # as if the results had just arrived
    window._refresh(staged=True)
    assert window.table.model().rowCount() == 0 and not window.ctl.is_idle()  # not yet: a later turn
    qtbot.waitUntil(window.ctl.is_idle, timeout=5000)
    assert window.table.model().rowCount() == 2 and len(window.curve.curve_items()) == 2
    window._refresh(staged=True)  # pending updates must not outlive the start of a blind test
    window.ctl.open_blind("abx")
    window.ctl.blind.start(0, 1, trials=4, seed=3)
    assert window.table.model().rowCount() == 0 and window.curve.curve_items() == {}
    qtbot.wait(50)
    assert window.table.model().rowCount() == 0 and window.curve.curve_items() == {}


def _raise_at(where: str):
    try:
        raise ValueError(f"bad value in {where}")
    except ValueError as exc:
        return type(exc), exc, exc.__traceback__


def test_unexpected_exceptions_are_logged_and_shown_once_each(caplog):
    from deepaq_gui.app import ExceptionReporter

    shown: list[str] = []
    hook = ExceptionReporter(shown.append)
    with caplog.at_level("ERROR", logger="deepaq_gui"):
        for _ in range(30):  # e.g. an error in the 30 Hz playhead timer
            hook(*_raise_at("tick"))
        hook(*_raise_at("export"))
    assert len(shown) == 2 and "bad value in tick" in shown[0] and "bad value in export" in shown[1]
    assert all("keeps running" in m for m in shown)
    tracebacks = [r for r in caplog.records if "Traceback" in r.getMessage()]
    assert len(tracebacks) == 2  # one traceback per distinct error, not one per repeat
    assert any("happened 10 times" in r.getMessage() for r in caplog.records)


def test_a_crashing_slot_keeps_the_app_running(qtbot, window, signals, monkeypatch):
    """An exception inside a Qt slot goes to the hook, shows once, and the window keeps working."""
    from deepaq_gui.app import ExceptionReporter

    hook = ExceptionReporter(window.ctl.say)
    monkeypatch.setattr("sys.excepthook", hook)
    monkeypatch.setattr(window.transport, "setText", lambda _t: 1 / 0)  # _tick now fails at 30 Hz
    qtbot.wait(300)
    assert sum("ZeroDivisionError" in m for m in window.ctl.errors_seen) == 1
    assert sum(hook.counts.values()) > 1  # it did repeat; only the first was shown
    monkeypatch.undo()
    _open_and_wait(qtbot, window, [signals["ref"], signals["lp"]])
    assert set(window.ctl.session.results) == {0}


def test_cancel_stops_scoring_until_asked_again(qtbot, window, signals, monkeypatch):
    import threading

    gate = threading.Event()
    real_scorer = window.ctl.holder.scorer

    def held_scorer(name):  # the worker waits here until the test has pressed Cancel
        gate.wait(30)
        return real_scorer(name)

    monkeypatch.setattr(window.ctl.holder, "scorer", held_scorer)
    window.ctl.open_files([signals["ref"], signals["lp"], signals["noisy"]])
    qtbot.waitUntil(lambda: window.ctl.score_worker is not None and window.cancel_button.isVisible(), timeout=TIMEOUT_MS)
    with qtbot.waitSignal(window.ctl.scoringIdle, timeout=TIMEOUT_MS):
        qtbot.mouseClick(window.cancel_button, QtCore.Qt.LeftButton)
        gate.set()
    qtbot.wait(300)  # nothing may restart it behind the user's back
    assert window.ctl.session.missing_results() == [0, 1] and window.ctl.is_idle()
    assert not window.cancel_button.isVisible() and not window.progress.isVisible()
    assert "cancelled" in window.messages.label.text()
    # F5 (Settings → Score the unscored versions) resumes
    with qtbot.waitSignal(window.ctl.scoringIdle, timeout=TIMEOUT_MS):
        window.rescore_action.trigger()
    qtbot.waitUntil(lambda: not window.ctl.session.missing_results(), timeout=TIMEOUT_MS)


def test_loads_apply_in_request_order_and_a_new_reference_drops_stale_ones(qtbot, window, signals, monkeypatch):
    import time

    from deepaq_gui.session import Session

    real_read = Session.read_track

    def read_track(path):  # the low-pass file is slow to read, so later requests finish first
        if os.path.basename(path) == os.path.basename(signals["lp"]):
            time.sleep(0.6)
        return real_read(path)

    monkeypatch.setattr(Session, "read_track", staticmethod(read_track))
    window.ctl.pool.setMaxThreadCount(4)  # loads really overlap, even on a 2-core machine
    window.ctl.open_files([signals["ref"]])
    window.ctl.open_files([signals["lp"]], as_reference=False)
    window.ctl.open_files([signals["noisy"]], as_reference=False)
    qtbot.waitUntil(lambda: window.ctl.is_idle() and len(window.ctl.session.versions) == 2, timeout=TIMEOUT_MS)
    names = [v.name for v in window.ctl.session.versions]
    assert names == [os.path.basename(signals["lp"]), os.path.basename(signals["noisy"])]

    # a new reference keeps the versions, also those still loading when it was asked for
    window.ctl.open_files([signals["lp8"]], as_reference=False)
    window.ctl.open_files([signals["same"]], as_reference=True)
    qtbot.waitUntil(lambda: window.ctl.is_idle() and len(window.ctl.session.versions) == 3, timeout=TIMEOUT_MS)
    assert window.ctl.session.reference.name == os.path.basename(signals["same"])
    assert [v.name for v in window.ctl.session.versions] == names + [os.path.basename(signals["lp8"])]

    # a new session (these files only) drops the loads asked for before it, and says so
    window.ctl.open_files([signals["lp"]], as_reference=False)
    window.ctl.open_files([signals["ref"], signals["noisy"]], replace=True)
    qtbot.waitUntil(lambda: window.ctl.is_idle() and not window.ctl.session.missing_results(), timeout=TIMEOUT_MS)
    qtbot.wait(800)  # the slow, stale load has ended by now
    assert window.ctl.session.reference.name == os.path.basename(signals["ref"])
    assert [v.name for v in window.ctl.session.versions] == [os.path.basename(signals["noisy"])]
    assert any("Not added to the new session" in m and os.path.basename(signals["lp"]) in m
               for _lvl, m in window.messages.history)


def test_demo_is_made_in_a_worker_and_replaces_the_session(qtbot, window, signals):
    _open_and_wait(qtbot, window, [signals["ref"], signals["lp"]])
    window.ctl.open_demo()
    # the window went on at once: the demo versions are still being made (fresh cache)
    assert window.ctl.session.reference.name == os.path.basename(signals["ref"])
    assert window.cancel_button.isVisible()
    qtbot.waitUntil(lambda: window.ctl.session.reference.name == "demo_reference.flac", timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: window.ctl.is_idle() and not window.ctl.session.missing_results(), timeout=TIMEOUT_MS)
    names = [v.name for v in window.ctl.session.versions]
    assert os.path.basename(signals["lp"]) not in names and "demo_lowpass_3k5.flac" in names
    assert window.ctl.errors_seen == []


def test_every_transport_key_linked_axes_and_moving_playhead(qtbot, window, signals):
    w = window
    _open_and_wait(qtbot, w, [signals["ref"], signals["lp"], signals["noisy"]])
    qtbot.keyClick(w, QtCore.Qt.Key_1)
    qtbot.keyClick(w, QtCore.Qt.Key_0)
    assert w.engine.current == 0 and w.ctl.current == 0
    w.ctl.seek(3.0)
    qtbot.keyClick(w, QtCore.Qt.Key_Left)
    assert w.engine.position_s == pytest.approx(0.0, abs=0.01)  # 3 s - 5 s, clamped at the start
    qtbot.keyClick(w, QtCore.Qt.Key_Right)
    assert w.engine.position_s == pytest.approx(5.0, abs=0.01)
    w.ctl.set_loop(1.0, 2.0)
    assert all(v._loop_items[0].isVisible() for v in w.time_views) and w.matrix._loop.isVisible()
    qtbot.keyClick(w, QtCore.Qt.Key_Escape)
    assert w.ctl.loop is None and not any(v._loop_items[0].isVisible() for v in w.time_views)

    # one time axis: zooming any view shows the same span in them all, whatever their widths
    w.spectrogram.plot_item().setXRange(1.0, 2.0, padding=0)
    for v in w.time_views:
        for plot in v.plot_items():
            assert plot.getViewBox().viewRange()[0] == pytest.approx([1.0, 2.0], abs=1e-9), type(v).__name__
    w.curve.plot_item().setXRange(0.5, 4.0, padding=0)
    assert w.waveform.plot_items()[1].getViewBox().viewRange()[0] == pytest.approx([0.5, 4.0], abs=1e-9)
    # one playhead, moving with playback on every view
    w.ctl.seek(1.0)
    qtbot.keyClick(w, QtCore.Qt.Key_Space)
    qtbot.waitUntil(lambda: w.engine.position_s > 1.2, timeout=5000)
    qtbot.wait(100)
    for v in w.time_views:
        assert v._playheads[0].value() > 1.1
    qtbot.keyClick(w, QtCore.Qt.Key_Space)


def test_alignment_and_loudness_switches_apply_to_scores_and_panel(qtbot, window, signals):
    w = window
    _open_and_wait(qtbot, w, [signals["ref"], signals["delayed"]])
    r = w.ctl.session.results[0]
    assert r.alignment.lag_ms == pytest.approx(2100 / 48, abs=0.5) and r.gain_db == pytest.approx(6.0, abs=0.5)
    assert w.files.topLevelItem(1).text(6) == f"{round(r.alignment.lag_ms, 1):.1f} ms"
    with qtbot.waitSignal(w.ctl.scoringIdle, timeout=TIMEOUT_MS):
        w.align_action.setChecked(False)
        w.loud_action.setChecked(False)
    qtbot.waitUntil(lambda: w.ctl.is_idle() and not w.ctl.session.missing_results(), timeout=TIMEOUT_MS)
    r2 = w.ctl.session.results[0]
    assert r2.alignment.lag_ms == 0 and r2.gain_db == 0
    assert r2.score < r.score  # a 44 ms offset and 6 dB left in are heard as damage
    assert w.files.topLevelItem(1).text(6) == "0.0 ms" and w.files.topLevelItem(1).text(7) == "+0.0 dB"


def test_model_menu_lists_the_models_and_switches(qtbot, window, signals, tmp_path, monkeypatch):
    from deepaq_core.model.bundle import save_bundle
    from deepaq_core.model.compact import CompactConfig, build_untrained, untrained_card
    from deepaq_core.model.registry import list_models

    small = CompactConfig(width=32, layers=1, heads=2, n_mels=32)
    save_bundle(build_untrained(seed=3, cfg=small), untrained_card(small, d50=0.3), tmp_path / "models" / "tiny",
                include_backbone=True)
    monkeypatch.setenv("DEEPAQ_MODELS", str(tmp_path / "models"))
    w = window
    _open_and_wait(qtbot, w, [signals["ref"], signals["lp"]])
    first = w.ctl.session.results[0]
    w.model_menu.aboutToShow.emit()
    actions = {a.text().split("  ")[0]: a for a in w.model_menu.actions()}
    assert list(actions) == [e.name for e in list_models()]
    assert actions["compact"].isChecked() and actions["tiny"].isEnabled()
    assert all(not a.isEnabled() for n, a in actions.items() if n.startswith("mert"))  # not downloaded here
    with qtbot.waitSignal(w.ctl.scoringIdle, timeout=TIMEOUT_MS):
        actions["tiny"].trigger()
    qtbot.waitUntil(lambda: w.ctl.is_idle() and not w.ctl.session.missing_results(), timeout=TIMEOUT_MS)
    assert w.ctl.session.model_name == "tiny"
    assert w.ctl.session.results[0].distance != first.distance  # scored again, by the other model
    assert "tiny" in w.model_label.text() or w.ctl.session.results[0].model.label in w.model_label.text()


def test_invalid_model_card_shows_one_line_not_a_traceback(qtbot, window, signals, tmp_path, monkeypatch):
    models = tmp_path / "models"
    (models / "listcard").mkdir(parents=True)
    (models / "listcard" / "card.json").write_text("[1, 2, 3]")
    monkeypatch.setenv("DEEPAQ_MODELS", str(models))
    w = window
    _open_and_wait(qtbot, w, [signals["ref"], signals["lp"]])
    w.model_menu.aboutToShow.emit()  # listing the broken bundle must not raise
    actions = {a.text().split("  ")[0]: a for a in w.model_menu.actions()}
    assert not actions["listcard"].isEnabled() and "not a JSON object" in actions["listcard"].toolTip()
    assert w.ctl.errors_seen == []
    with qtbot.waitSignal(w.ctl.scoringIdle, timeout=TIMEOUT_MS):
        w.ctl.set_model(str(models / "listcard"))
    qtbot.waitUntil(w.ctl.is_idle, timeout=TIMEOUT_MS)
    assert len(w.ctl.errors_seen) == 1
    msg = w.ctl.errors_seen[0]
    assert "is not a JSON object" in msg and "\n" not in msg
    assert "Traceback" not in msg and "Unexpected error" not in msg
    assert w.messages.isVisible() and "not a JSON object" in w.messages.label.text()


def test_unverified_model_needs_the_option_and_then_says_so(qtbot, signals, tmp_path, monkeypatch):
    import json

    from deepaq_core.model.bundle import save_bundle
    from deepaq_core.model.compact import CompactConfig, build_untrained, untrained_card

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    small = CompactConfig(width=32, layers=1, heads=2, n_mels=32)
    folder = save_bundle(build_untrained(seed=3, cfg=small), untrained_card(small, d50=0.3), tmp_path / "nosum",
                         include_backbone=True)
    card = json.loads((folder / "card.json").read_text())
    card.pop("weights_sha256")
    (folder / "card.json").write_text(json.dumps(card))
    for allow in (False, True):
        w = MainWindow(device="cpu", audio_backend="null", model=str(folder), allow_unverified=allow)
        qtbot.addWidget(w)
        w.show()
        with qtbot.waitSignal(w.ctl.scoringIdle, timeout=TIMEOUT_MS):
            w.ctl.open_files([signals["ref"], signals["lp"]])
        qtbot.waitUntil(w.ctl.is_idle, timeout=TIMEOUT_MS)
        if allow:
            assert w.ctl.errors_seen == [] and not w.ctl.session.missing_results()
            assert "unverified" in w.messages.label.text()
        else:
            assert len(w.ctl.errors_seen) == 1 and "no weights checksum" in w.ctl.errors_seen[0]
        w.close()


def test_drop_files_on_the_window(qtbot, window, signals):
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(signals["ref"]), QtCore.QUrl.fromLocalFile(signals["lp"])])
    pos = QtCore.QPointF(200, 200)
    enter = QtGui.QDragEnterEvent(pos.toPoint(), QtCore.Qt.CopyAction, mime, QtCore.Qt.LeftButton,
                                  QtCore.Qt.NoModifier)
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QtGui.QDropEvent(pos, QtCore.Qt.CopyAction, mime, QtCore.Qt.LeftButton, QtCore.Qt.NoModifier)
    with qtbot.waitSignal(window.ctl.scoringIdle, timeout=TIMEOUT_MS):
        window.dropEvent(drop)
    qtbot.waitUntil(lambda: window.ctl.is_idle() and not window.ctl.session.missing_results(), timeout=TIMEOUT_MS)
    assert window.ctl.session.reference.name == os.path.basename(signals["ref"])
    assert [v.name for v in window.ctl.session.versions] == [os.path.basename(signals["lp"])]


def test_demo_opens_by_itself_on_the_first_start_only(tmp_path):
    from deepaq_gui.app import build_parser, open_initial

    class Recorder:
        def __init__(self):
            self.calls = []

        def open_files(self, paths):
            self.calls.append(("files", paths))

        def open_demo(self):
            self.calls.append(("demo",))

    settings = QtCore.QSettings(str(tmp_path / "deepaq.ini"), QtCore.QSettings.IniFormat)
    w = Recorder()
    assert open_initial(w, build_parser().parse_args([]), settings) == "demo"  # first start
    assert open_initial(w, build_parser().parse_args([]), settings) is None  # later starts: empty window
    assert open_initial(w, build_parser().parse_args(["--demo"]), settings) == "demo"  # Help → demo, or asked for
    assert open_initial(w, build_parser().parse_args(["a.wav", "b.wav"]), settings) == "files"
    assert w.calls == [("demo",), ("demo",), ("files", ["a.wav", "b.wav"])]
    fresh = QtCore.QSettings(str(tmp_path / "other.ini"), QtCore.QSettings.IniFormat)
    assert open_initial(Recorder(), build_parser().parse_args(["--no-demo"]), fresh) is None
    assert open_initial(Recorder(), build_parser().parse_args(["--screenshot", "x.png"]), fresh) is None


def test_the_window_leaves_the_ui_a_core_and_freezes_start_up_objects(window):
    import gc

    from deepaq_gui.jobs import worker_threads

    assert window.ctl.pool.maxThreadCount() == worker_threads() == max(1, (os.cpu_count() or 2) - 1)
    assert window.ctl.score_pool.maxThreadCount() == 1  # scoring: one job at a time, beside the others
    assert gc.get_freeze_count() > 10_000  # the imported libraries: never walked by a collection again
    assert sys.getswitchinterval() <= 0.001


def test_files_open_and_views_follow_while_scoring_runs(qtbot, window, signals, monkeypatch):
    """Scoring has a thread of its own: reading files never waits for it to finish."""
    import threading

    gate = threading.Event()
    real_scorer = window.ctl.holder.scorer

    def held_scorer(name):
        gate.wait(60)
        return real_scorer(name)

    monkeypatch.setattr(window.ctl.holder, "scorer", held_scorer)
    try:
        window.ctl.open_files([signals["ref"], signals["lp"]])
        qtbot.waitUntil(lambda: window.ctl.score_worker is not None and window.ctl.score_worker.running, timeout=TIMEOUT_MS)
        window.ctl.open_files([signals["noisy"]], as_reference=False)  # while the scorer is held
        qtbot.waitUntil(lambda: len(window.ctl.session.versions) == 2, timeout=TIMEOUT_MS)
        window.ctl.select_track(2)  # the views prepare the new version meanwhile
        qtbot.waitUntil(lambda: window.waveform._envelopes[1] is not None and window.ctl.shown_version == 1,
                        timeout=TIMEOUT_MS)
        assert not window.ctl.session.results and window.cancel_button.isVisible()
    finally:
        gate.set()
    qtbot.waitUntil(lambda: window.ctl.is_idle() and not window.ctl.session.missing_results(), timeout=TIMEOUT_MS)
    assert set(window.ctl.session.results) == {0, 1}


def test_the_progress_bar_returns_to_scoring_when_another_job_ends(qtbot, window, signals, monkeypatch, tmp_path):
    import threading

    gate = threading.Event()
    real_scorer = window.ctl.holder.scorer
    monkeypatch.setattr(window.ctl.holder, "scorer", lambda name: (gate.wait(60), real_scorer(name))[1])
    try:
        window.ctl.open_files([signals["ref"], signals["lp"]])
        qtbot.waitUntil(lambda: window.ctl.score_worker is not None and window.ctl.score_worker.running, timeout=TIMEOUT_MS)
        bad = tmp_path / "not-a-session.deepaq.json"
        bad.write_text("{ nope")
        window.ctl.load_session_file(str(bad))  # takes the bar, then fails
        qtbot.waitUntil(lambda: bool(window.ctl.errors_seen), timeout=TIMEOUT_MS)
        qtbot.wait(100)
        assert window.progress.isVisible() and window.cancel_button.isVisible()  # scoring still shown
        qtbot.mouseClick(window.cancel_button, QtCore.Qt.LeftButton)  # and Cancel still cancels it
        assert window.ctl.score_worker.cancel_event.is_set()
    finally:
        gate.set()


def _window_x(view, plot, t: float) -> float:
    """The window x coordinate (pixels) where time ``t`` falls in ``plot`` of ``view``."""
    from PySide6 import QtWidgets

    scene = plot.getViewBox().mapViewToScene(QtCore.QPointF(t, 0.0))
    gv = view.findChild(QtWidgets.QGraphicsView) if not isinstance(view, QtWidgets.QGraphicsView) else view
    local = gv.mapFromScene(scene)
    return gv.viewport().mapTo(gv.window(), local).x()


def test_time_views_align_to_the_pixel_and_the_matrix_frames_its_data(qtbot, window, signals):
    _open_and_wait(qtbot, window, [signals["ref"], signals["lp"], signals["noisy"]])
    window.resize(1400, 900)
    window.tabs.setCurrentWidget(window.matrix)
    qtbot.wait(200)  # layouts settle
    window.curve.plot_item().setXRange(0.0, 6.0, padding=0)
    qtbot.wait(50)
    plots = [(v, p) for v in window.time_views for p in v.plot_items()]
    assert len(plots) == 2 + 3 + 1 + 1  # waveform (2), spectrogram (3), curve, heatmap
    for t in (0.5, 3.0, 5.5):
        xs = [_window_x(v, p, t) for v, p in plots]
        assert max(xs) - min(xs) <= 1, (t, xs)
        # the matrix's x axis (aligned degraded time) falls on the same columns, within the tab's frame
        assert abs(_window_x(window.matrix, window.matrix.plot_item(), t) - xs[0]) <= 4
    # colour bars sit right of the shared plot width: every view box ends at the same x
    rights = [v.findChild(QtWidgets.QGraphicsView).mapTo(window, QtCore.QPoint(0, 0)).x()
              + p.getViewBox().sceneBoundingRect().right() for v, p in plots]
    assert max(rights) - min(rights) <= 1
    # the time matrix is framed on the pair: x = degraded time, y = reference time
    tm = window.ctl.session.results[window.ctl.shown_version].time_matrix
    (x0, x1), (y0, y1) = window.matrix.plot_item().getViewBox().viewRange()
    assert x0 == pytest.approx(tm.x[0], abs=0.05) and x1 == pytest.approx(tm.x[-1] + (tm.x[1] - tm.x[0]), abs=0.05)
    assert y0 == pytest.approx(tm.y[0], abs=0.05) and y1 == pytest.approx(tm.y[-1] + (tm.y[1] - tm.y[0]), abs=0.05)
    # the version the heatmap and the lower spectrograms show is named on them
    assert window.heatmap.plot_item().getAxis("left").labelText.startswith("V1")
    assert window.spectrogram.plot_items()[1].getAxis("left").labelText == "V1"


def test_left_panel_worst_moments_loop_banner_and_live_score_agree_with_the_table(qtbot, window, signals):
    import dataclasses

    _open_and_wait(qtbot, window, [signals["ref"], signals["lp"], signals["noisy"]])
    window.ctl.select_track(1)
    qtbot.waitUntil(window.ctl.is_idle, timeout=TIMEOUT_MS)
    r = window.ctl.session.results[0]
    moments = window.worst.moments()
    assert moments and [(m.start_s, m.end_s) for m in moments] == [
        (float(r.curve.start_s[k]), float(r.curve.end_s[k])) for k in r.curve.worst(5)]
    assert window.worst.topLevelItemCount() == len(moments)
    # the 3 kHz low-pass removed content: the band that changed most lost energy, above 2 kHz
    assert moments[0].band_change_db < -6 and moments[0].band_lo_hz > 2000
    assert "V1" in window.left.worst_title.text()
    # a click seeks to the moment and loops it
    item = window.worst.topLevelItem(0)
    window.worst.itemClicked.emit(item, 0)
    assert window.ctl.loop == pytest.approx((moments[0].start_s, moments[0].end_s))
    assert window.engine.position_s == pytest.approx(moments[0].start_s, abs=0.01)
    assert window.curve._loop_items[0].isVisible()
    # the model's status is a banner, not only small print (the built-in model is not trained)
    assert window.banner.isVisible() and r.model.status in window.banner.text()
    untrained = dataclasses.replace(r.model, status="untrained")
    window.banner.set_models([r.model, untrained])
    assert "UNTRAINED" in window.banner.text() and "b91c1c" in window.banner.styleSheet()
    window.banner.set_models([dataclasses.replace(r.model, status="trained")])
    assert not window.banner.isVisible()
    # the live score names the overall score exactly as the table and the files list show it
    window.ctl.seek(2.0)
    window._tick()
    row = window.table.model().row_of(0)
    table_text = window.table.model().index(row, 1).data()
    assert f"overall {table_text}" in window.live.caption() and window.files.topLevelItem(1).text(8) == table_text
    # during a blind test the worst moments (scores) are hidden too
    window.ctl.open_blind("abx")
    window.ctl.blind.start(0, 1, trials=4, seed=3)
    assert window.worst.topLevelItemCount() == 0


def test_score_table_shows_nine_versions_without_scrolling_and_elides_names_in_the_middle(qtbot, window):
    from tests.gui.test_views import make_result

    results = {i: make_result([80.0 - i, 70.0, 60.0], seed=i) for i in range(9)}
    names = {i: f"{i + 1}: a_rather_long_file_name_for_a_codec_test_version_{i}_at_64kbps.flac" for i in range(9)}
    window.table.set_results(results, names)
    qtbot.wait(100)
    table = window.table.table()
    assert table.verticalScrollBar().maximum() == 0
    last = table.visualRect(window.table.proxy().index(8, 0))
    assert last.isValid() and last.bottom() <= table.viewport().height()
    assert table.textElideMode() == QtCore.Qt.TextElideMode.ElideMiddle
    assert window.table.proxy().index(3, 0).data(QtCore.Qt.ItemDataRole.ToolTipRole) == names[3]
    assert window.files.textElideMode() == QtCore.Qt.TextElideMode.ElideMiddle
