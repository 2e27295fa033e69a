"""The rate-quality window: drawing, BD-rate read-out, exports, scoring in a worker, bad input."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6 import QtGui  # noqa: E402

import pyqtgraph as pg  # noqa: E402
import soundfile as sf  # noqa: E402

from deepaq_core.evaluation.rate_quality import LadderPoint, rate_quality  # noqa: E402
from deepaq_gui.views.ladder import LadderSnapshot, LadderWindow  # noqa: E402
from tests.conftest import music_like  # noqa: E402

TIMEOUT_MS = 120_000


def _snapshot(n_items: int = 3) -> LadderSnapshot:
    """mp3 and opus over n excerpts; opus reaches each mean score at half mp3's bitrate."""
    rates = np.array([32.0, 64.0, 128.0, 256.0])
    pts, scores = [], []
    for i in range(n_items):
        for codec, scale in (("mp3", 1.0), ("opus", 0.5)):
            for r in rates:
                pts.append(LadderPoint(f"/r{i}.flac", f"/d{i}_{codec}_{r:g}.flac", codec, float(r * scale),
                                       f"/r{i}.flac"))
                scores.append(10 * np.log2(r) + (i - (n_items - 1) / 2) * 3)  # spread across excerpts, mean exact
    return LadderSnapshot(tuple(pts), tuple(scores), rate_quality(pts, scores), len(pts))


def test_view_draws_curves_bands_table_and_bd_rate(qtbot, tmp_path):
    w = LadderWindow(str(tmp_path), "compact", "cpu", start=False)
    qtbot.addWidget(w)
    w.show_snapshot(_snapshot())
    items = w.plot.getPlotItem().items
    assert sum(isinstance(i, pg.FillBetweenItem) for i in items) == 2  # one CI band per codec
    assert sum(isinstance(i, pg.ScatterPlotItem) for i in items) == 2
    assert w.table.rowCount() == 8
    assert [w.anchor_combo.itemText(i) for i in range(w.anchor_combo.count())] == ["mp3", "opus"]
    assert w.anchor_combo.currentText() == "mp3" and w.test_combo.currentText() == "opus"
    rate, score, _ = w.bd_figures()
    assert rate == pytest.approx(-50.0, abs=1e-6) and score == pytest.approx(10.0, abs=1e-6)
    assert "-50.0%" in w.bd_label.text()
    w.set_codecs("mp3", "opus")  # the other way round: mp3 needs twice the bits
    assert w.bd_figures()[0] == pytest.approx(100.0, abs=1e-6) and "+100.0%" in w.bd_label.text()
    w.set_codecs("mp3", "mp3")
    assert math.isnan(w.bd_figures()[0]) and "different" in w.bd_label.text()
    # the plot's x axis is log bitrate: the data spans log10(16) (opus' lowest rung) to log10(256)
    (x0, x1), (y0, y1) = w.plot.getPlotItem().getViewBox().childrenBounds()
    # (scatter symbols add a few pixels of margin)
    assert x0 == pytest.approx(math.log10(16), abs=0.05) and x1 == pytest.approx(math.log10(256), abs=0.05)
    axis = w.plot.getPlotItem().getAxis("bottom")
    ticks = [v for _spacing, vals in axis.tickValues(x0, x1, 800) for v in vals]
    assert math.log10(64) in ticks and "64" in axis.tickStrings(ticks, 1.0, 1.0)  # ticks in kbit/s


def test_view_exports_png_svg_csv(qtbot, tmp_path):
    w = LadderWindow(str(tmp_path), "compact", "cpu", start=False)
    qtbot.addWidget(w)
    w.resize(900, 700)
    w.show()
    w.show_snapshot(_snapshot())
    w.export_png(tmp_path / "rq.png", width=800)
    img = QtGui.QImage(str(tmp_path / "rq.png"))
    assert img.width() == 800 and img.height() > 100
    colours = {img.pixelColor(x, y).name() for x in range(0, 800, 7) for y in range(0, img.height(), 7)}
    assert len(colours) > 5  # curves, bands and axes, not a blank image
    w.export_svg(tmp_path / "rq.svg")
    svg = (tmp_path / "rq.svg").read_text()
    assert "<svg" in svg and "path" in svg
    w.export_csv(tmp_path / "rq.csv")
    rows = list(csv.DictReader(open(tmp_path / "rq.csv")))
    assert len(rows) == 8 and {r["anchor"] for r in rows} == {"mp3"}
    assert all(float(r["bd_rate_percent"]) == pytest.approx(-50.0, abs=1e-3) for r in rows if r["codec"] == "opus")
    assert all(r["n"] == "3" and r["ci_low"] for r in rows)


def test_export_before_scores_is_refused_with_a_sentence(qtbot, tmp_path):
    from deepaq_core.errors import DeePAQError

    w = LadderWindow(str(tmp_path), "compact", "cpu", start=False)
    qtbot.addWidget(w)
    with pytest.raises(DeePAQError, match="Nothing to export"):
        w.export_csv(tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_a_folder_without_a_ladder_gives_a_message_not_a_crash(qtbot, tmp_path):
    sf.write(tmp_path / "song.flac", music_like(0.5, 16000), 16000)
    w = LadderWindow(str(tmp_path), "compact", "cpu")
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.finished, timeout=TIMEOUT_MS):
        pass
    assert "no codec versions" in w.last_message and w.note.text() == w.last_message
    assert not w.note.isHidden()
    assert w.snapshot is None


def test_scoring_runs_in_a_worker_and_fills_the_plot(qtbot, tmp_path):
    """A real ladder folder scored with the built-in model: the window stays responsive (the call returns at
    once), snapshots arrive, and the end result has a score for every file."""
    _noise_ladder(tmp_path)
    w = LadderWindow(str(tmp_path), "compact", "cpu")
    qtbot.addWidget(w)
    assert w.is_busy()  # returned at once, work continues in the worker
    with qtbot.waitSignal(w.finished, timeout=TIMEOUT_MS):
        pass
    snap = w.snapshot
    assert snap is not None and len(snap.points) == 8
    assert all(math.isfinite(s) for s in snap.scores), w.last_message
    assert set(snap.curves) == {"aac", "mp3"} and w.table.rowCount() == 4
    for c in snap.curves.values():
        assert c.n.tolist() == [2, 2] and c.mean[1] > c.mean[0]  # less noise at the higher rate
    assert w.anchor_combo.currentText() == "mp3" and w.test_combo.currentText() == "aac"


def _noise_ladder(folder, sr=48000, seconds=1.5, items=("one", "two"),
                  codecs=(("mp3", (64, 128)), ("aac", (48, 96)))):
    for k, song in enumerate(items):
        x = music_like(seconds, sr, seed=30 + k)
        sf.write(folder / f"{song}.flac", x, sr)
        d = folder / f"{song}_versions"
        d.mkdir()
        rng = np.random.default_rng(k)
        for codec, rates in codecs:
            for r in rates:
                noise = rng.standard_normal(x.shape) * np.sqrt(np.mean(x ** 2)) * 10 ** (-(r / 4) / 20)
                sf.write(d / f"{song}_{codec}_{r}kbps.flac", x + noise, sr)


def test_file_menu_opens_a_ladder_window_with_the_window_model(qtbot, tmp_path, monkeypatch):
    from PySide6 import QtWidgets

    from deepaq_gui.main_window import MainWindow

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _noise_ladder(tmp_path, items=("one",), codecs=(("mp3", (64,)),))
    main = MainWindow(device="cpu", audio_backend="null")
    qtbot.addWidget(main)
    actions = [a for a in main.menuBar().actions()[0].menu().actions() if "ladder" in a.text().lower()]
    assert len(actions) == 1
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path))
    actions[0].trigger()
    ladders = [w for w in main.findChildren(LadderWindow)]
    assert len(ladders) == 1 and ladders[0].path == str(tmp_path) and ladders[0].device == "cpu"
    assert ladders[0].model == main.ctl.session.model_name and ladders[0].isWindow()
    with qtbot.waitSignal(ladders[0].finished, timeout=TIMEOUT_MS):
        pass
    assert ladders[0].table.rowCount() == 1
    ladders[0].close()
    main.close()


def test_cancel_stops_scoring_and_says_so(qtbot, tmp_path):
    _noise_ladder(tmp_path, seconds=4.0)
    w = LadderWindow(str(tmp_path), "compact", "cpu")
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.finished, timeout=TIMEOUT_MS):
        w.cancel()
    assert "cancelled" in w.last_message.lower()
    assert not w.cancel_button.isEnabled()


def test_closing_the_window_while_scoring_is_clean(qtbot, tmp_path):
    from deepaq_gui.views import ladder

    _noise_ladder(tmp_path, seconds=3.0)
    w = LadderWindow(str(tmp_path), "compact", "cpu")
    worker = w.worker
    assert worker in ladder._RUNNING
    w.close()  # deletes the window; the scoring stops at its next check, off the UI thread
    qtbot.waitUntil(lambda: worker.is_done, timeout=TIMEOUT_MS)
    qtbot.wait(50)  # the queued 'done' reaches the module's bookkeeping
    assert worker not in ladder._RUNNING


@pytest.mark.parametrize("family, values, unit", [("lowpass", (2000, 4000, 8000), "Hz"),
                                                  ("mp3", (32, 64, 128), "kbit/s")])
def test_generate_dialog_opens_its_results_as_a_ladder(qtbot, tmp_path, monkeypatch, family, values, unit):
    """Generate a ladder from the dialog with "Open the results as a ladder": a ladder window opens on the
    folder, scores in a worker, and shows one point per rung, the score rising with the cutoff or bitrate."""
    from deepaq_core.degrade import codec_unavailable_reason
    from deepaq_gui.degrade_dialog import DegradeDialog
    from deepaq_gui.main_window import MainWindow

    if family == "mp3" and codec_unavailable_reason("mp3"):
        pytest.skip(codec_unavailable_reason("mp3"))

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    sr = 32000
    ref = tmp_path / "song.flac"
    sf.write(ref, music_like(2.0, sr, seed=7), sr)
    main = MainWindow(device="cpu", audio_backend="null")
    qtbot.addWidget(main)
    main.ctl.open_files([str(ref)], as_reference=True)
    qtbot.waitUntil(lambda: main.ctl.session.reference is not None, timeout=TIMEOUT_MS)

    def run(dlg):
        assert dlg.select_family(family)
        dlg.set_ladder_values(values)
        dlg.ladder_check.setChecked(True)
        dlg.accept()
        return dlg.result()

    monkeypatch.setattr(DegradeDialog, "exec", run)
    main.ask_generate()
    qtbot.waitUntil(lambda: bool(main.findChildren(LadderWindow)), timeout=TIMEOUT_MS)
    (w,) = main.findChildren(LadderWindow)
    assert w.path == str(tmp_path / "song_versions") and w.families == (family,) and w.isWindow()
    if w.is_busy():
        with qtbot.waitSignal(w.finished, timeout=TIMEOUT_MS):
            pass
    snap = w.snapshot
    assert snap is not None, w.last_message
    assert [(p.codec, p.kbps, p.unit) for p in snap.points] == [(family, float(v), unit) for v in values]
    assert all(math.isfinite(s) for s in snap.scores), w.last_message
    (curve,) = snap.curves.values()
    assert curve.kbps.tolist() == [float(v) for v in values]
    assert curve.mean[0] < curve.mean[1] < curve.mean[2], curve.mean  # more bandwidth or bits, higher score
    assert w.table.rowCount() == 3 and w.table.horizontalHeaderItem(1).text() == unit
    scatter = [i for i in w.plot.getPlotItem().items if isinstance(i, pg.ScatterPlotItem)]
    x = scatter[0].getData()[0]
    assert len(scatter) == 1
    axis_label = w.plot.getPlotItem().getAxis("bottom").labelText
    if unit == "Hz":  # a linear axis in the family's unit, no BD-rate
        assert x.tolist() == [float(v) for v in values] and "cutoff_hz (Hz)" in axis_label
        assert math.isnan(w.bd_figures()[0]) and "bitrates" in w.bd_label.text()
    else:  # a codec: the log-bitrate axis as File > Open ladder… shows it
        assert x == pytest.approx(np.log10(values)) and "bitrate" in axis_label
    w.export_csv(tmp_path / "ladder.csv")  # the value column says what the values are
    rows = list(csv.DictReader(open(tmp_path / "ladder.csv")))
    column = "cutoff_hz_Hz" if unit == "Hz" else "kbps"
    assert [float(r[column]) for r in rows] == [float(v) for v in values]
    w.close()
    # the versions were also added to the session: let their scoring end before the window goes
    qtbot.waitUntil(lambda: main.ctl.is_idle() and not main.ctl.session.missing_results(), timeout=TIMEOUT_MS)
    main.close()
