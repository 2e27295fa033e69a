"""The views in deepaq_gui.views: they accept data, hold the expected items and turn clicks into signals.

Results are built synthetically (small arrays) so the tests need no model; everything runs
offscreen (QT_QPA_PLATFORM is set by tests/conftest.py).
"""

from __future__ import annotations

import csv
import json
import math
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")

from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402  (PySide6 before pyqtgraph)

import pyqtgraph as pg  # noqa: E402

from deepaq_core.audio import Alignment  # noqa: E402
from deepaq_core.audio.buffer import AudioBuffer  # noqa: E402
from deepaq_core.results import FileSummary, Heatmap, ModelInfo, QualityCurve, QualityResult  # noqa: E402
from deepaq_gui.views import (  # noqa: E402
    LayerHeatmapView,
    LiveScoreLabel,
    QualityCurveView,
    ScoreTableView,
    SpectrogramView,
    TimeMatrixView,
    WaveformView,
    export_curves_csv,
    export_png,
    export_scores_json,
    export_svg,
)
from deepaq_gui.views.quality_curve import worst_count  # noqa: E402
from deepaq_gui.views.score_table import SORT_ROLE  # noqa: E402

SR = 48000


# ----- synthetic data ----------------------------------------------------------------------------
def make_result(scores, *, hop=0.5, win=3.0, lag_ms=0.0, gain_db=0.0, layers=5, seed=0) -> QualityResult:
    """A QualityResult with a curve of the given window scores and small random heatmaps."""
    scores = np.asarray(scores, dtype=np.float64)
    starts = np.arange(scores.size) * hop
    ends = starts + win
    distance = (100 - scores) / 100
    duration = float(ends[-1])
    rng = np.random.default_rng(seed)
    bin_s = 0.04
    n_bins = int(round(duration / bin_s))
    layer_values = rng.random((layers, n_bins))
    layer_values[:, -3:] = np.nan  # outside the overlap
    m = 40
    matrix = rng.random((m, m))
    matrix[0, :] = np.nan
    model = ModelInfo(name="compact", version="0.1.0", status="untrained", backbone="test",
                      sample_rate=24000, frame_rate=75.0, embedding_dim=16)
    summary = FileSummary(path="", sha256="0" * 64, sample_rate=SR, channels=1, duration_s=duration)
    return QualityResult(
        model=model, reference=summary, degraded=summary,
        score=float(np.mean(scores)), distance=float(np.mean(distance)),
        curve=QualityCurve(start_s=starts, end_s=ends, distance=distance, score=scores),
        frame_rate=75.0, frame_distance=np.zeros(int(duration * 75)),
        layer_heatmap=Heatmap(values=layer_values, x=np.arange(n_bins) * bin_s, y=np.arange(layers),
                              x_label="time (s)", y_label="layer", units="cosine distance"),
        time_matrix=Heatmap(values=matrix, x=np.arange(m) * duration / m, y=np.arange(m) * duration / m,
                            x_label="degraded time, aligned (s)", y_label="reference time (s)",
                            units="embedding L2 distance"),
        alignment=Alignment(lag_samples=0, lag_ms=lag_ms, lag_native_samples=0, estimated=True, confidence=1.0),
        gain_db=gain_db, reference_loudness_lufs=-23.0, degraded_loudness_lufs=-23.0 - gain_db,
        overlap_start_s=0.0, overlap_end_s=duration, trimmed_reference_s=0.0, trimmed_degraded_s=0.0,
    )


@pytest.fixture()
def results():
    """Three versions; global scores 80, 9.x and 50.x (so text sort and numeric sort differ)."""
    res = {
        0: make_result([85, 80, 30, 90, 95, 88, 20, 70, 99], gain_db=1.5, lag_ms=2.0),
        1: make_result([9, 9.5, 10, 9, 8, 9, 9, 9, 10], seed=1),
        2: make_result([50, 51, 52, 49, 50, 48, 52, 51, 50], seed=2, lag_ms=-1.25),
    }
    names = {0: "mp3 128k", 1: "lowpass 3k", 2: "noisy"}
    return res, names


def shown(qtbot, widget, size=(900, 500)):
    qtbot.addWidget(widget)
    widget.resize(*size)
    widget.show()
    qtbot.waitExposed(widget)
    QtWidgets.QApplication.processEvents()
    return widget


def graphics_view_of(widget) -> pg.GraphicsView:
    return widget.findChild(pg.GraphicsView)


LEFT = QtCore.Qt.MouseButton.LeftButton
NO_BUTTON = QtCore.Qt.MouseButton.NoButton
SHIFT = QtCore.Qt.KeyboardModifier.ShiftModifier
NO_MODS = QtCore.Qt.KeyboardModifier.NoModifier
EV = QtCore.QEvent.Type


def viewport_pos(widget, plot: pg.PlotItem, x: float, y: float) -> QtCore.QPoint:
    gv = graphics_view_of(widget)
    return gv.mapFromScene(plot.getViewBox().mapViewToScene(QtCore.QPointF(x, y)))


def click_at(qtbot, widget, plot: pg.PlotItem, x: float, y: float) -> None:
    """A real left mouse click on ``plot`` at data coordinates ``(x, y)``."""
    qtbot.mouseClick(graphics_view_of(widget).viewport(), LEFT, pos=viewport_pos(widget, plot, x, y))


def send_mouse(widget, plot, kind, x, y, buttons, button=NO_BUTTON, mods=NO_MODS) -> None:
    """Deliver one raw mouse event (QTest's moves carry no held buttons, which drags need)."""
    viewport = graphics_view_of(widget).viewport()
    p = QtCore.QPointF(viewport_pos(widget, plot, x, y))
    ev = QtGui.QMouseEvent(kind, p, QtCore.QPointF(viewport.mapToGlobal(p)), button, buttons, mods)
    QtWidgets.QApplication.sendEvent(viewport, ev)


def shift_drag(qtbot, widget, plot, x0: float, x1: float, y: float = 0.0) -> None:
    send_mouse(widget, plot, EV.MouseButtonPress, x0, y, LEFT, LEFT, SHIFT)
    for x in np.linspace(x0, x1, 5):
        qtbot.wait(25)  # pyqtgraph drops mouse moves closer together than a frame
        send_mouse(widget, plot, EV.MouseMove, x, y, LEFT, NO_BUTTON, SHIFT)
    send_mouse(widget, plot, EV.MouseButtonRelease, x1, y, NO_BUTTON, LEFT, SHIFT)


def double_click(widget, plot, x: float, y: float) -> None:
    send_mouse(widget, plot, EV.MouseButtonPress, x, y, LEFT, LEFT)
    send_mouse(widget, plot, EV.MouseButtonRelease, x, y, NO_BUTTON, LEFT)
    send_mouse(widget, plot, EV.MouseButtonDblClick, x, y, LEFT, LEFT)
    send_mouse(widget, plot, EV.MouseButtonRelease, x, y, NO_BUTTON, LEFT)


# ----- waveform ----------------------------------------------------------------------------------
def test_waveform_ten_minutes_sets_up_fast_and_draws_envelopes(qtbot, capsys):
    n = 10 * 60 * SR
    rng = np.random.default_rng(0)
    ref = AudioBuffer(rng.standard_normal(n, dtype=np.float32) * 0.1, SR)
    deg = AudioBuffer(ref.samples * 0.5, SR)
    view = shown(qtbot, WaveformView(), (1200, 400))
    t0 = time.perf_counter()
    view.set_audio(ref, deg, labels=("Reference", "mp3 128k"))
    t_set = time.perf_counter() - t0
    t0 = time.perf_counter()
    view.grab()
    t_paint = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\n[waveform] 10 min x 2 signals @48 kHz: set_audio {t_set * 1000:.0f} ms, "
              f"first paint {t_paint * 1000:.0f} ms")

    curves = view.curve_items()
    assert len(curves) == 2
    for plot, curve in zip(view.plot_items(), curves):
        assert curve in plot.listDataItems() and len(plot.listDataItems()) == 1
        # Zoomed out: a few thousand envelope points, not 28.8 M samples.
        assert 0 < len(curve.xData) < 50_000
        assert curve.xData[0] < 1.0 and curve.xData[-1] > 599.0  # block centres span the file
    # Envelope of the halved copy is half as wide.
    assert np.isclose(curves[1].yData.max(), curves[0].yData.max() * 0.5, rtol=1e-5)

    # Zoom to 10 ms: raw samples, exactly the visible ones (+ margin).
    view.plot_item().setXRange(100.0, 100.01, padding=0)
    QtWidgets.QApplication.processEvents()
    x = curves[0].xData
    assert 400 <= len(x) <= 600
    np.testing.assert_allclose(curves[0].yData, ref.samples[0, int(round(x[0] * SR)):][: len(x)])


def test_waveform_click_seeks_and_shift_drag_requests_loop(qtbot):
    ref = AudioBuffer(np.sin(np.arange(SR * 10) / 50).astype(np.float32) * 0.5, SR)
    view = shown(qtbot, WaveformView())
    view.set_audio(ref, ref)
    plot = view.plot_items()[1]
    with qtbot.waitSignal(view.seekRequested, timeout=1000) as blocker:
        click_at(qtbot, view, plot, 4.0, 0.0)
    assert blocker.args[0] == pytest.approx(4.0, abs=10 / 880)  # within a pixel or so

    # Shift + drag asks for a loop (and previews it); the plain click did not.
    with qtbot.waitSignal(view.loopRequested, timeout=1000) as blocker:
        shift_drag(qtbot, view, plot, 2.0, 5.0)
    assert blocker.args == pytest.approx([2.0, 5.0], abs=0.05)

    # set_loop / set_playhead only draw; dragging the loop region's edge asks for the new loop.
    with qtbot.assertNotEmitted(view.loopRequested):
        view.set_loop((1.0, 2.0))
        view.set_playhead(1.5)
    for item in view._loop_items:
        assert item.isVisible() and item.getRegion() == pytest.approx((1.0, 2.0))
    assert all(line.value() == 1.5 for line in view._playheads)
    top, bottom = view._loop_items
    with qtbot.waitSignal(view.loopRequested, timeout=1000) as blocker:
        top.lines[1].setValue(2.5)  # as a drag moves it
        top.lines[1].sigPositionChangeFinished.emit(top.lines[1])
    assert blocker.args == pytest.approx([1.0, 2.5])
    assert bottom.getRegion() == pytest.approx((1.0, 2.5))  # the other plot follows
    view.set_loop(None)
    assert not any(item.isVisible() for item in view._loop_items)
    view.clear()
    assert all(c.xData is None or len(c.xData) == 0 for c in view.curve_items())


# ----- spectrogram view ----------------------------------------------------------------------------
def test_spectrogram_view_shared_levels_and_symmetric_difference(qtbot):
    t = np.arange(SR * 2) / SR
    ref = AudioBuffer(np.sin(2 * np.pi * 440 * t).astype(np.float32) * 0.5, SR)
    rng = np.random.default_rng(0)
    deg = AudioBuffer(ref.samples + rng.standard_normal(ref.samples.shape).astype(np.float32) * 0.01, SR)
    view = shown(qtbot, SpectrogramView())
    view.set_audio(ref, deg, max_columns=400)
    ref_img, deg_img, diff_img = view.image_items()
    assert ref_img.image is not None and ref_img.image.shape == deg_img.image.shape == diff_img.image.shape
    assert ref_img.image.shape[1] <= 400
    assert tuple(ref_img.getLevels()) == tuple(deg_img.getLevels())
    lo, hi = diff_img.getLevels()
    assert lo == -hi and hi > 0
    # Noise added where the sine has no energy: the difference is mostly positive.
    assert np.nanmedian(diff_img.image) > 0
    rect = ref_img.mapRectToParent(ref_img.boundingRect())
    assert rect.left() <= 0.05 and rect.right() >= 1.95
    # Identical signals: the difference image is ~0 everywhere.
    view.set_audio(ref, ref, max_columns=400)
    assert np.nanmax(np.abs(view.image_items()[2].image)) < 1e-4
    view.clear()
    assert all(img.image is None for img in view.image_items())


def test_time_views_keep_their_geometry_and_show_whole_files_once(qtbot):
    """Data arriving must not move a plot area (linked views would all re-range and repaint)."""
    from deepaq_gui.views.base import LEFT_AXIS_WIDTH, show_whole_time

    t = np.arange(SR * 20) / SR
    ref = AudioBuffer((np.sin(2 * np.pi * 440 * t) * 0.5).astype(np.float32), SR)
    views = [shown(qtbot, WaveformView()), shown(qtbot, SpectrogramView())]
    before = [[p.getViewBox().sceneBoundingRect() for p in v.plot_items()] for v in views]
    views[0].set_audio(ref, ref)
    views[1].set_audio(ref, ref, max_columns=400)
    QtWidgets.QApplication.processEvents()
    after = [[p.getViewBox().sceneBoundingRect() for p in v.plot_items()] for v in views]
    assert before == after
    assert all(p.getAxis("left").width() == LEFT_AXIS_WIDTH for v in views for p in v.plot_items())

    plot = views[0].plot_item()
    changes = []
    plot.getViewBox().sigXRangeChanged.connect(lambda *_: changes.append(1))
    assert plot.getViewBox().viewRange()[0] == pytest.approx([0.0, 20.0], abs=0.01)
    show_whole_time(plot, 19.9)  # within 2 %: already showing the whole file
    assert changes == []
    show_whole_time(plot, 30.0)
    assert changes and plot.getViewBox().viewRange()[0] == pytest.approx([0.0, 30.0])
    plot.setXRange(5.0, 6.0, padding=0)  # a zoomed view is reset
    show_whole_time(plot, 30.0)
    assert plot.getViewBox().viewRange()[0] == pytest.approx([0.0, 30.0])


# ----- quality curve -------------------------------------------------------------------------------
def test_quality_curve_items_legend_selection_and_worst(qtbot, results):
    res, names = results
    view = shown(qtbot, QualityCurveView())
    view.set_results(res, names)
    curves = view.curve_items()
    assert sorted(curves) == [0, 1, 2]
    assert len(view.plot_item().listDataItems()) == 3
    # no legend over the curves: each colour is the swatch beside the version's name in the table
    assert view.plot_item().legend is None
    table = ScoreTableView()
    qtbot.addWidget(table)
    table.set_results(res, names)
    for row in range(3):
        index = table.model().index(row, 0)
        version = table.model().version_at(row)
        assert index.data(QtCore.Qt.ItemDataRole.DecorationRole) == curves[version].opts["pen"].color()
        assert index.data() == names[version]
    assert view.selected() == 0
    assert curves[0].opts["pen"].widthF() > curves[1].opts["pen"].widthF()
    worst = res[0].curve.worst(worst_count(res[0].curve))
    assert view.worst_segments() == [(res[0].curve.start_s[k], res[0].curve.end_s[k]) for k in worst]
    view.set_selected(2)
    assert curves[2].opts["pen"].widthF() > curves[0].opts["pen"].widthF()
    # Windows overlap (3 s long, 0.5 s apart): fewer than 3 fit without overlapping.
    assert len(view.worst_segments()) == len(res[2].curve.worst(worst_count(res[2].curve))) >= 1
    assert view.plot_item().getViewBox().viewRange()[1] == pytest.approx([-2, 102], abs=0.5)


def test_quality_curve_score_at_uses_nearest_window_centre(qtbot, results):
    res, names = results
    view = QualityCurveView()
    qtbot.addWidget(view)
    view.set_results(res, names)
    centres = res[0].curve.centre_s  # 1.5, 2.0, 2.5, ...
    assert view.score_at(0, 0.0) == 85
    assert view.score_at(0, centres[2] + 0.2) == 30
    assert view.score_at(0, centres[3] - 0.2) == 90
    assert view.score_at(0, 1e6) == 99
    assert view.score_at(7, 1.0) is None


def test_quality_curve_click_seek_double_click_loop_and_hover(qtbot, results):
    res, names = results
    view = shown(qtbot, QualityCurveView())
    view.set_results(res, names)
    plot = view.plot_item()
    with qtbot.waitSignal(view.seekRequested, timeout=1000) as blocker:
        click_at(qtbot, view, plot, 3.0, 50.0)
    assert blocker.args[0] == pytest.approx(3.0, abs=0.05)

    # Double click inside the worst segment of the selected version loops it.
    start, end = view.worst_segments()[0]
    vb = plot.getViewBox()
    with qtbot.waitSignal(view.loopRequested, timeout=1000) as blocker:
        double_click(view, plot, (start + end) / 2, 50.0)
    assert blocker.args == pytest.approx([start, end])
    outside = max(e for _s, e in view.worst_segments()) + 0.3
    assert not any(s <= outside <= e for s, e in view.worst_segments())
    with qtbot.assertNotEmitted(view.loopRequested):
        double_click(view, plot, outside, 50.0)

    # Hover read-out: time and every version's score at that time.
    scene_pos = vb.mapViewToScene(QtCore.QPointF(4.0, 50.0))
    view._mouse_moved((scene_pos,))
    text = view.readout_text()
    assert "4.00 s" in text
    for i, name in names.items():
        assert f"{name}: {view.score_at(i, 4.0):.1f}" in text
    view.clear()
    assert view.curve_items() == {} and view.worst_segments() == []


# ----- heatmaps ----------------------------------------------------------------------------------------
def test_layer_heatmap_image_matches_result(qtbot, results):
    res, _names = results
    view = shown(qtbot, LayerHeatmapView())
    view.set_result(res[0])
    hm = res[0].layer_heatmap
    img = view.image_item()
    assert img.image.shape == hm.values.shape
    rect = img.mapRectToParent(img.boundingRect())
    assert rect.left() == pytest.approx(0.0)
    assert rect.right() == pytest.approx(hm.x[-1] + (hm.x[1] - hm.x[0]))
    assert rect.top() == pytest.approx(-0.5) and rect.bottom() == pytest.approx(hm.values.shape[0] - 0.5)
    lo, hi = img.getLevels()
    assert lo == 0 and hi == pytest.approx(np.nanmax(hm.values))
    # NaN cells render transparent.
    rgba = view.grab().toImage()
    assert not rgba.isNull()
    qimg = img.qimage
    assert qimg is not None
    assert qimg.pixelColor(hm.values.shape[1] - 1, 0).alpha() == 0
    assert qimg.pixelColor(0, 0).alpha() == 255
    view.set_result(None)
    assert img.image is None


def test_time_matrix_frames_its_data_nan_and_click(qtbot, results):
    res, _names = results
    view = shown(qtbot, TimeMatrixView(), (600, 600))
    view.set_result(res[0])
    tm = res[0].time_matrix
    img = view.image_item()
    assert img.image.shape == tm.values.shape
    (x0, x1), (y0, y1) = view.plot_item().getViewBox().viewRange()  # framed on the data, both durations
    step_x, step_y = tm.x[1] - tm.x[0], tm.y[1] - tm.y[0]
    assert (x0, x1) == pytest.approx((tm.x[0], tm.x[-1] + step_x)) and (y0, y1) == pytest.approx((tm.y[0], tm.y[-1] + step_y))
    QtWidgets.QApplication.processEvents()
    assert img.qimage.pixelColor(5, 0).alpha() == 0  # row 0 is NaN
    ref_t = tm.y[20] + 0.01
    gv = graphics_view_of(view)
    scene_pt = view.plot_item().getViewBox().mapViewToScene(QtCore.QPointF(tm.x[10], ref_t))
    with qtbot.waitSignal(view.seekRequested, timeout=1000) as blocker:
        qtbot.mouseClick(gv.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=gv.mapFromScene(scene_pt))
    assert blocker.args[0] == pytest.approx(ref_t, abs=0.1)

    # Shift + drag along the aligned-time axis asks for a loop, and the matrix shows it.
    x0, x1 = float(tm.x[5]), float(tm.x[30])
    qtbot.wait(100)  # the axes settle their widths a few event-loop turns after showing
    with qtbot.waitSignal(view.loopRequested, timeout=1000) as blocker:
        shift_drag(qtbot, view, view.plot_item(), x0, x1, y=float(tm.y[20]))
    assert blocker.args == pytest.approx([x0, x1], abs=0.1)
    assert view._loop.isVisible()
    view.set_loop(None)
    assert not view._loop.isVisible()


# ----- table and live score ----------------------------------------------------------------------------
def test_score_table_rows_numeric_sort_and_row_selected(qtbot, results):
    res, names = results
    view = shown(qtbot, ScoreTableView())
    view.set_results(res, names)
    proxy = view.proxy()
    assert proxy.rowCount() == 3 and proxy.columnCount() == 8
    header = [proxy.headerData(c, QtCore.Qt.Orientation.Horizontal) for c in range(8)]
    assert header == ["Version", "Score", "Distance", "Offset (ms)", "Gain (dB)", "Time lost / added (ms)", "Model",
                      "Flags"]
    tip = proxy.headerData(1, QtCore.Qt.Orientation.Horizontal, QtCore.Qt.ItemDataRole.ToolTipRole)
    assert res[0].score_scale in tip
    assert proxy.index(0, 5).data() == "0 / 0"  # nothing dropped or inserted
    assert proxy.index(0, 6).data() == "compact 0.1.0 (untrained)"
    flags = [proxy.index(r, 7) for r in range(3)]
    for cell in flags:  # a cell shows the flag keys ("–" if none); its tooltip says what they mean
        keys = [k for k in cell.data(SORT_ROLE).split(",") if k]
        assert cell.data() == (",".join(keys) or "–")
        tip = cell.data(QtCore.Qt.ItemDataRole.ToolTipRole)
        assert all(k in tip for k in keys) and tip

    view.table().sortByColumn(1, QtCore.Qt.SortOrder.AscendingOrder)
    # Numeric: 9.x < 50.x < 80 (a text sort would put "80.7" before "9.2").
    assert view.versions_in_view_order() == [1, 2, 0]
    scores = [proxy.index(r, 1).data(SORT_ROLE) for r in range(3)]
    assert scores == sorted(scores)
    view.table().sortByColumn(1, QtCore.Qt.SortOrder.DescendingOrder)
    assert view.versions_in_view_order() == [0, 2, 1]

    table = view.table()
    row = view.versions_in_view_order().index(2)
    rect = table.visualRect(proxy.index(row, 0))
    with qtbot.waitSignal(view.rowSelected, timeout=1000) as blocker:
        qtbot.mouseClick(table.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=rect.center())
    assert blocker.args == [2]
    with qtbot.assertNotEmitted(view.rowSelected):
        view.set_selected(1)
    assert table.selectionModel().selectedRows()[0].data(SORT_ROLE) == "lowpass 3k"


def test_score_cell_tooltip_gives_each_channels_score(qtbot, results):
    import dataclasses

    res, names = results
    res = dict(res)
    res[2] = dataclasses.replace(res[2], channel_mode="each", channel_scores=(83.94, 77.81))
    view = shown(qtbot, ScoreTableView())
    view.set_results(res, names)
    proxy = view.proxy()
    tips = {proxy.index(r, 0).data(QtCore.Qt.ItemDataRole.DisplayRole):
            proxy.index(r, 1).data(QtCore.Qt.ItemDataRole.ToolTipRole) for r in range(3)}
    assert tips["noisy"].endswith("Per channel: 83.9 / 77.8")
    assert "Per channel" not in tips["mp3 128k"] and res[0].score_scale in tips["mp3 128k"]


def test_live_score_label():
    label = LiveScoreLabel()
    label.set_score(73.44, "mp3 128k · compact 0.1.0")
    assert label.text() == "73.4" and "mp3 128k" in label.caption()
    label.set_score(None, "")
    assert label.text() == "–"
    label.set_score(math.nan, "x")
    assert label.text() == "–"
    label.deleteLater()


# ----- export ------------------------------------------------------------------------------------------
def test_exports_write_files(qtbot, results, tmp_path):
    res, names = results
    view = shown(qtbot, QualityCurveView())
    view.set_results(res, names)

    export_png(view, tmp_path / "widget.png")
    export_png(view.plot_item(), tmp_path / "plot.png", width=640)
    export_svg(view.plot_item(), tmp_path / "plot.svg")
    export_svg(view, tmp_path / "scene.svg")
    for name in ("widget.png", "plot.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    for name in ("plot.svg", "scene.svg"):
        assert "<svg" in (tmp_path / name).read_text()

    export_curves_csv(res, names, tmp_path / "curves.csv")
    with open(tmp_path / "curves.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["version", "start_s", "end_s", "distance", "score"]
    assert len(rows) == sum(r.curve.score.size for r in res.values())
    assert [r["version"] for r in rows[:9]] == ["mp3 128k"] * 9
    assert float(rows[2]["score"]) == 30 and float(rows[2]["start_s"]) == 1.0

    export_scores_json(res, names, tmp_path / "scores.json")
    data = json.loads((tmp_path / "scores.json").read_text())
    assert [d["name"] for d in data] == ["mp3 128k", "lowpass 3k", "noisy"]
    assert data[0]["score"] == pytest.approx(res[0].score, abs=1e-3)
    assert data[2]["offset_ms"] == -1.25 and data[0]["score_scale"] == res[0].score_scale


# ----- with the real scorer ----------------------------------------------------------------------------
def test_views_accept_real_scorer_results(qtbot, tmp_path):
    """One real result (built-in model, CPU, 3 s of generated audio) through every view."""
    pytest.importorskip("torch")
    from deepaq_core.scoring import Scorer

    rng = np.random.default_rng(5)
    t = np.arange(3 * SR) / SR
    ref = AudioBuffer((0.4 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 2 * t))).astype(np.float32), SR)
    deg = AudioBuffer(ref.samples + rng.normal(0, 0.02, ref.samples.shape).astype(np.float32), SR)
    result = Scorer(device="cpu").score(ref, deg)
    results, names = {0: result}, {0: "noisy"}

    curve_view = QualityCurveView()
    qtbot.addWidget(curve_view)
    curve_view.set_results(results, names)
    assert len(curve_view.curve_items()) == 1
    assert curve_view.score_at(0, 1.0) is not None

    heatmap_view = LayerHeatmapView()
    qtbot.addWidget(heatmap_view)
    heatmap_view.set_result(result)
    assert heatmap_view.image_item().image.shape == result.layer_heatmap.values.shape

    matrix_view = TimeMatrixView()
    qtbot.addWidget(matrix_view)
    matrix_view.set_result(result)
    assert matrix_view.image_item().image.shape == result.time_matrix.values.shape

    table = ScoreTableView()
    qtbot.addWidget(table)
    table.set_results(results, names)
    assert table.proxy().rowCount() == 1
    assert table.proxy().index(0, 1).data() == f"{result.score:.1f}"

    export_curves_csv(results, names, tmp_path / "c.csv")
    assert len((tmp_path / "c.csv").read_text().splitlines()) == 1 + result.curve.score.size
    export_scores_json(results, names, tmp_path / "s.json")
    assert json.loads((tmp_path / "s.json").read_text())[0]["model_status"] == result.model.status
