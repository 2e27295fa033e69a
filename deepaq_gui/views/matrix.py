"""Reference time x degraded time distance matrix of one result (``result.time_matrix``)."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

import pyqtgraph as pg

from deepaq_core.results import Heatmap, QualityResult

from .base import (COLOR_BAR_WIDTH, LEFT_AXIS_WIDTH, TimeViewBox, finite_levels, image_rect, reserve_right_column,
                   short_units, time_graphics)

MATRIX_CMAP = "viridis"


class TimeMatrixView(QtWidgets.QWidget):
    """Distance between every reference time (y) and every aligned degraded time (x).

    Both axes are time, so this is not a :class:`~deepaq_gui.views.base.TimeView` and is not
    x-linked. A well aligned, mildly degraded version shows a dark diagonal (drawn dashed for
    reference); repeated material shows as off-diagonal dark stripes. The axes frame the data
    (the two durations). NaN cells are drawn transparent.

    Signals
    -------
    seekRequested(float)
        The user clicked a cell; the value is its reference time (y), seconds.
    loopRequested(float, float)
        Shift + drag across the matrix: the span of aligned time (x) to loop, seconds (the
        playback tracks are aligned, so this is the same timeline as every other view's).

    Parameters
    ----------
    parent : QtWidgets.QWidget, optional
    """

    seekRequested = QtCore.Signal(float)
    loopRequested = QtCore.Signal(float, float)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._widget = time_graphics()
        self._plot = pg.PlotItem(viewBox=TimeViewBox())
        self._widget.addItem(self._plot, row=0, col=0)
        # The same left axis width and right column as the time views: below them, its x axis
        # (aligned degraded time) lines up with theirs.
        self._plot.getAxis("left").setWidth(LEFT_AXIS_WIDTH)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._widget)

        self._plot.setLabel("bottom", "Degraded time, aligned (s)")
        self._plot.setLabel("left", "Reference time (s)")
        self._image = pg.ImageItem(axisOrder="row-major")
        self._plot.addItem(self._image)
        self._diagonal = pg.PlotDataItem(pen=pg.mkPen((255, 255, 255, 90), width=1, style=QtCore.Qt.PenStyle.DashLine))
        self._plot.addItem(self._diagonal)
        self._bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=pg.colormap.get(MATRIX_CMAP), interactive=False,
                                    width=COLOR_BAR_WIDTH)
        self._bar.axis.enableAutoSIPrefix(False)  # distances read 0.2, not "200 (x0.001)"
        self._bar.setImageItem(self._image)
        reserve_right_column(self._widget, self._bar)
        vb = self._plot.getViewBox()
        vb.sigTimeClicked.connect(self._clicked)
        vb.sigTimeDragged.connect(self._dragged)
        self._loop = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(255, 255, 255, 30),
                                         pen=pg.mkPen((255, 255, 255, 120)))
        self._loop.setZValue(10)
        self._loop.hide()
        self._plot.addItem(self._loop, ignoreBounds=True)
        self._heatmap: Heatmap | None = None

    def set_result(self, result: QualityResult | None, levels: tuple[float, float] | None = None) -> None:
        """Show ``result.time_matrix`` (``None`` clears).

        Parameters
        ----------
        result : QualityResult or None
        levels : tuple of float, optional
            Fixed colour levels; default ``(0, finite max)``.
        """
        self.set_heatmap(None if result is None else result.time_matrix, levels)

    def set_heatmap(self, heatmap: Heatmap | None, levels: tuple[float, float] | None = None) -> None:
        """Show a time x time :class:`~deepaq_core.results.Heatmap` (``None`` clears).

        Parameters
        ----------
        heatmap : Heatmap or None
        levels : tuple of float, optional
        """
        self._heatmap = heatmap
        if heatmap is None or heatmap.values.size == 0:
            self._image.clear()
            self._diagonal.setData([], [])
            return
        lo, hi = levels if levels is not None else finite_levels(heatmap.values)
        self._bar.setLevels((lo, hi))
        self._image.setImage(heatmap.values, autoLevels=False, levels=(lo, hi))
        rect = image_rect(heatmap.x, heatmap.y, x_starts=True, y_starts=True)
        self._image.setRect(rect)
        self._plot.setLabel("bottom", _axis_label(heatmap.x_label))
        self._plot.setLabel("left", _axis_label(heatmap.y_label))
        self._bar.getAxis("left").setLabel(short_units(heatmap.units))
        self._widget.setToolTip(f"Colour: {heatmap.units}")  # beside the bar, not over its tick values
        lo_t = max(rect.left(), rect.top())
        hi_t = min(rect.right(), rect.bottom())
        self._diagonal.setData([lo_t, hi_t], [lo_t, hi_t])
        # Framed on the data: x spans the degraded time, y the reference time. The aspect is not
        # locked: in a wide, short panel a locked square made the data a small square in the
        # middle of a -50..60 s axis.
        self._plot.setXRange(rect.left(), rect.right(), padding=0)
        self._plot.setYRange(rect.top(), rect.bottom(), padding=0)

    def heatmap(self) -> Heatmap | None:
        """The heatmap shown, or ``None``."""
        return self._heatmap

    def plot_item(self) -> pg.PlotItem:
        """The plot (for export).

        Returns
        -------
        pyqtgraph.PlotItem
        """
        return self._plot

    def image_item(self) -> pg.ImageItem:
        """The image item.

        Returns
        -------
        pyqtgraph.ImageItem
        """
        return self._image

    def clear(self) -> None:
        """Remove the matrix."""
        self.set_heatmap(None)

    def set_loop(self, region: tuple[float, float] | None) -> None:
        """Show the loop (aligned time, x) or hide it (``None``)."""
        if region is None:
            self._loop.hide()
        else:
            self._loop.setRegion(region)
            self._loop.show()

    def _clicked(self, x: float, y: float, double: bool) -> None:
        if double or self._heatmap is None:
            return
        if self._image.mapRectToParent(self._image.boundingRect()).contains(QtCore.QPointF(x, y)):
            self.seekRequested.emit(max(0.0, y))

    def _dragged(self, start: float, end: float, finished: bool) -> None:
        if self._heatmap is None:
            return
        self._loop.setRegion((max(0.0, start), end))
        self._loop.show()
        if finished:
            self.loopRequested.emit(max(0.0, start), end)


def _axis_label(text: str) -> str:
    return text[:1].upper() + text[1:] if text else ""
