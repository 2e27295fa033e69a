"""Quality over time: one score curve per version, the selected version's worst segments marked."""

from __future__ import annotations

import html

import numpy as np
from PySide6 import QtCore, QtWidgets

import pyqtgraph as pg

from deepaq_core.results import SCORE_SCALE, QualityResult

from .base import (TimeView, make_time_plot, reserve_right_column, score_text, show_whole_time, time_graphics,
                   version_color)

WORST_COUNT = 3
WORST_ALPHA = 60
NORMAL_WIDTH = 1.5
SELECTED_WIDTH = 3.5
# Markers only while they stay readable; a one-hour file has ~7000 windows.
MAX_POINTS_WITH_SYMBOLS = 120


def worst_count(curve) -> int:
    """How many worst windows to mark: up to WORST_COUNT, covering at most a third of the span.

    Three 3 s windows would cover most of a 12 s excerpt and single nothing out.
    """
    span_s = float(curve.end_s.max() - curve.start_s.min())
    window_s = float(np.median(curve.end_s - curve.start_s))
    return max(1, min(WORST_COUNT, int(span_s / 3 / max(window_s, 1e-9))))


class QualityCurveView(TimeView):
    """Score (0-100) against window centre time for every version, with a hover read-out.

    * single click: ``seekRequested(t)``;
    * double click inside a worst segment of the selected version: ``loopRequested(start, end)``;
    * shift + drag: ``loopRequested`` (see :class:`~deepaq_gui.views.base.TimeView`);
    * moving the mouse shows the time and each version's score at that time (top left).

    Parameters
    ----------
    parent : QtWidgets.QWidget, optional
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._plot = make_time_plot()
        self._widget = time_graphics()
        self._widget.addItem(self._plot, row=0, col=0)
        reserve_right_column(self._widget)  # no colour bar: the same margin as the other time views
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._widget)

        self._plot.setLabel("left", "Score (0–100)")
        self._plot.getAxis("left").setToolTip(SCORE_SCALE)
        self._plot.setYRange(0, 100, padding=0.02)
        self._plot.setLimits(yMin=-5, yMax=105)
        self._plot.setMouseEnabled(x=True, y=False)
        # Guide lines at 25/50/75 instead of pyqtgraph's grid: the grid costs about 9 ms per repaint
        # of this view (measured with QWidget.grab), and the view repaints whenever the playhead moves.
        for level in (25, 50, 75):
            guide = pg.InfiniteLine(pos=level, angle=0, movable=False, pen=pg.mkPen((150, 150, 150, 70)))
            self._plot.addItem(guide, ignoreBounds=True)
        # No legend on the plot (with eight versions it covered the curves): each version's colour
        # is the swatch beside its name in the score table and the files list, and hovering names
        # every curve's score at that time.
        self._add_time_plot(self._plot)

        self._results: dict[int, QualityResult] = {}
        self._names: dict[int, str] = {}
        self._centres: dict[int, np.ndarray] = {}
        self._curves: dict[int, pg.PlotDataItem] = {}
        self._selected: int | None = None
        self._worst_items: list[pg.LinearRegionItem] = []
        self._worst_spans: list[tuple[float, float]] = []

        self._hover_line = pg.InfiniteLine(angle=90, movable=False,
                                           pen=pg.mkPen((200, 200, 200, 120), style=QtCore.Qt.PenStyle.DashLine))
        self._hover_line.hide()
        self._plot.addItem(self._hover_line, ignoreBounds=True)
        # Parented to the view box, not added as data: it stays in the top-left corner when panning.
        self._readout = pg.TextItem(anchor=(0, 0), fill=pg.mkBrush(0, 0, 0, 160))
        self._readout.setParentItem(self._plot.getViewBox())
        self._readout.setPos(6, 4)
        self._readout.hide()
        # Rate-limited: a mouse move costs a few dict look-ups, but there is no need for more
        # than one read-out update per frame.
        self._hover_proxy = pg.SignalProxy(self._widget.scene().sigMouseMoved, rateLimit=60, slot=self._mouse_moved)

    # ----- interface -------------------------------------------------------------------------
    def set_results(self, results: dict[int, QualityResult], names: dict[int, str]) -> None:
        """Show the curves of ``results`` (version index -> result), one colour per index.

        Keeps the current selection if that version is still present, otherwise selects the
        lowest index. The x range is set to the curves' extent only when the view was empty, so
        results arriving one version at a time do not reset the user's zoom.

        Parameters
        ----------
        results : dict of int to QualityResult
        names : dict of int to str
            Display names; missing ones read ``"Version <index>"``.
        """
        was_empty = not self._results
        for curve in self._curves.values():
            self._plot.removeItem(curve)
        self._curves.clear()
        self._results = dict(results)
        self._names = {i: names.get(i, f"Version {i}") for i in self._results}
        self._centres = {i: r.curve.centre_s for i, r in self._results.items()}
        t_end = 0.0
        for index in sorted(self._results):
            curve = self._results[index].curve
            kwargs = {}
            if curve.score.size <= MAX_POINTS_WITH_SYMBOLS:
                kwargs = dict(symbol="o", symbolSize=5, symbolPen=None, symbolBrush=version_color(index))
            item = pg.PlotDataItem(self._centres[index], curve.score, name=self._names[index], **kwargs)
            self._plot.addItem(item)
            self._curves[index] = item
            if curve.end_s.size:
                t_end = max(t_end, float(curve.end_s.max()))
        if self._results:
            scale = next(iter(self._results.values())).score_scale
            self._plot.getAxis("left").setToolTip(scale)
        if was_empty and t_end > 0:
            show_whole_time(self._plot, t_end)
        self.set_selected(self._selected if self._selected in self._results else min(self._results, default=None))

    def set_selected(self, index: int | None) -> None:
        """Highlight version ``index`` (thicker line, worst segments marked); ``None`` for none.

        Parameters
        ----------
        index : int or None
        """
        self._selected = index if index in self._results else None
        for i, item in self._curves.items():
            width = SELECTED_WIDTH if i == self._selected else NORMAL_WIDTH
            item.setPen(pg.mkPen(version_color(i), width=width))
            item.setZValue(10 if i == self._selected else 0)
        self._show_worst()

    def selected(self) -> int | None:
        """The highlighted version index, or ``None``."""
        return self._selected

    def score_at(self, index: int, t: float) -> float | None:
        """Score of version ``index``'s window whose centre is nearest ``t`` seconds.

        Cheap (a binary search); meant for the live score during playback.

        Parameters
        ----------
        index : int
        t : float
            Seconds on the reference timeline.

        Returns
        -------
        float or None
            ``None`` if the version is unknown or has no windows.
        """
        centres = self._centres.get(index)
        if centres is None or centres.size == 0:
            return None
        k = int(np.searchsorted(centres, t))
        if k == centres.size or (k > 0 and t - centres[k - 1] <= centres[k] - t):
            k -= 1
        return float(self._results[index].curve.score[k])

    def curve_items(self) -> dict[int, pg.PlotDataItem]:
        """The curve item of each version index.

        Returns
        -------
        dict of int to pyqtgraph.PlotDataItem
        """
        return dict(self._curves)

    def worst_segments(self) -> list[tuple[float, float]]:
        """``(start_s, end_s)`` of the marked worst segments of the selected version, worst first.

        Returns
        -------
        list of tuple of float
        """
        return list(self._worst_spans)

    def readout_text(self) -> str:
        """The hover read-out's current plain text ("" when hidden)."""
        return self._readout.textItem.toPlainText() if self._readout.isVisible() else ""

    def clear(self) -> None:
        """Remove all curves and marks."""
        self.set_results({}, {})
        self._hover_line.hide()
        self._readout.hide()
        super().clear()

    # ----- internals -------------------------------------------------------------------------
    def _show_worst(self) -> None:
        for item in self._worst_items:
            self._plot.removeItem(item)
        self._worst_items.clear()
        self._worst_spans.clear()
        if self._selected is None:
            return
        curve = self._results[self._selected].curve
        colour = version_color(self._selected)
        colour.setAlpha(WORST_ALPHA)
        for rank, k in enumerate(curve.worst(worst_count(curve))):
            span = (float(curve.start_s[k]), float(curve.end_s[k]))
            item = pg.LinearRegionItem(values=span, movable=False, brush=pg.mkBrush(colour),
                                       pen=pg.mkPen(None))
            item.setZValue(-10)  # under the curves and the loop region
            item.setToolTip(f"Worst segment {rank + 1}: {span[0]:.2f}–{span[1]:.2f} s, "
                            f"score {float(curve.score[k]):.1f} (double-click to loop)")
            self._plot.addItem(item, ignoreBounds=True)
            self._worst_items.append(item)
            self._worst_spans.append(span)

    def _time_clicked(self, plot: pg.PlotItem, x: float, y: float, double: bool) -> None:
        if double:
            for start, end in self._worst_spans:
                if start <= x <= end:
                    self.loopRequested.emit(start, end)
                    return
            return
        super()._time_clicked(plot, x, y, double)

    def _mouse_moved(self, args) -> None:
        pos = args[0]
        vb = self._plot.getViewBox()
        if not self._results or not vb.sceneBoundingRect().contains(pos):
            self._hover_line.hide()
            self._readout.hide()
            return
        t = float(vb.mapSceneToView(pos).x())
        self._hover_line.setValue(t)
        self._hover_line.show()
        self._readout.setHtml(self._readout_html(t))
        self._readout.show()

    def _readout_html(self, t: float) -> str:
        rows = [f"<b>{t:.2f} s</b>"]
        for index in sorted(self._results):
            score = self.score_at(index, t)
            value = score_text(score)
            name = html.escape(self._names[index])
            rows.append(f'<span style="color:{version_color(index).name()}">■</span> {name}: {value}')
        return "<br>".join(rows)


__all__ = ["QualityCurveView"]
