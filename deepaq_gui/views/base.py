"""Shared pieces of the time-based views: the :class:`TimeView` interface, its view box and colours.

Every time-based view draws on the **reference timeline** in seconds, exposes one
:class:`pyqtgraph.PlotItem` for the main window to ``setXLink`` against, shows a playhead and an
optional loop region, and turns mouse gestures into two requests:

* a left click at time ``t`` emits ``seekRequested(t)``;
* a shift + left drag from ``t0`` to ``t1`` (or dragging the loop region's edges) emits
  ``loopRequested(t0, t1)``.

Views never act on these requests themselves (they do not move their own playhead on a click);
the main window decides and calls :meth:`TimeView.set_playhead` / :meth:`TimeView.set_loop` back,
so every view shows the same state.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets  # PySide6 before pyqtgraph: it picks the binding

import pyqtgraph as pg

# Okabe-Ito colours (colour-blind safe), minus black, which vanishes on pyqtgraph's dark background.
VERSION_COLORS: tuple[str, ...] = (
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#009E73",  # bluish green
    "#F0E442",  # yellow
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#BBBBBB",  # grey
)
REFERENCE_COLOR = "#DDDDDD"
PLAYHEAD_COLOR = "#FF4040"
LOOP_BRUSH = (80, 160, 255, 45)
LOOP_HOVER_BRUSH = (80, 160, 255, 80)

# Long files would otherwise get an SI-prefixed "ks" axis; seconds stay seconds.
TIME_LABEL = "Time (s)"


def score_text(value: float | None) -> str:
    """A score as every view shows it: one decimal ("–" when unknown), so the numbers agree."""
    return "–" if value is None or not np.isfinite(value) else f"{value:.1f}"


def version_color(index: int) -> QtGui.QColor:
    """Colour of version ``index``, the same in every view (the palette repeats after 8).

    Parameters
    ----------
    index : int
        Version index as used in the ``results`` dictionaries.

    Returns
    -------
    QtGui.QColor
    """
    return QtGui.QColor(VERSION_COLORS[index % len(VERSION_COLORS)])


class TimeViewBox(pg.ViewBox):
    """A :class:`pyqtgraph.ViewBox` that reports left clicks and shift-drags in data coordinates.

    Everything else (panning, wheel zoom, the right-click menu) is the stock behaviour.

    Signals
    -------
    sigTimeClicked(x, y, double)
        Left click at data position ``(x, y)``; ``double`` is True for the second click of a
        double click (pyqtgraph delivers the single click first).
    sigTimeDragged(start, end, finished)
        Shift + left drag spanning ``start <= end`` (data x); ``finished`` on release.
    """

    sigTimeClicked = QtCore.Signal(float, float, bool)
    sigTimeDragged = QtCore.Signal(float, float, bool)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shift_drag = False

    def linkedViewChanged(self, view, axis) -> None:  # noqa: N802  (pyqtgraph override)
        """x-linked views show the same time span, whatever their widths.

        pyqtgraph lines linked views up in screen coordinates, so a view with a colour bar (a
        narrower plot area) showed a different span than the one it follows, and every change
        of one view's range or width re-ranged all the others, and back.
        """
        if axis != pg.ViewBox.XAxis or self.linksBlocked or view is None:
            super().linkedViewChanged(view, axis)
            return
        left, right = view.viewRange()[0]
        view.blockLink(True)
        try:
            self.enableAutoRange(pg.ViewBox.XAxis, False)
            self.setXRange(left, right, padding=0)
        finally:
            view.blockLink(False)

    def mouseClickEvent(self, ev) -> None:  # noqa: N802  (Qt/pyqtgraph override)
        if ev.button() == QtCore.Qt.MouseButton.LeftButton:
            ev.accept()
            p = self.mapSceneToView(ev.scenePos())
            self.sigTimeClicked.emit(float(p.x()), float(p.y()), bool(ev.double()))
            return
        super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802
        if axis is None and ev.button() == QtCore.Qt.MouseButton.LeftButton:
            if ev.isStart():
                # Decided once per drag: releasing shift halfway must not turn it into a pan.
                self._shift_drag = bool(ev.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier)
            if self._shift_drag:
                ev.accept()
                a = self.mapSceneToView(ev.buttonDownScenePos()).x()
                b = self.mapSceneToView(ev.scenePos()).x()
                self.sigTimeDragged.emit(float(min(a, b)), float(max(a, b)), bool(ev.isFinish()))
                if ev.isFinish():
                    self._shift_drag = False
                return
        super().mouseDragEvent(ev, axis)


def show_whole_time(plot: pg.PlotItem, t_end: float) -> None:
    """Show ``[0, t_end]`` on ``plot`` (and every view x-linked to it), unless it already does.

    Each range change repaints every linked view (tens of milliseconds on the UI thread for a
    long file), and a file's views end at slightly different times (the quality curve at its
    last window, the waveform at the last sample), so a range already within 2 % of the span of
    ``[0, t_end]`` at both ends is kept.
    """
    lo, hi = plot.getViewBox().viewRange()[0]
    if abs(lo) <= 0.02 * t_end and abs(hi - t_end) <= 0.02 * t_end:
        return
    plot.setXRange(0.0, t_end, padding=0)


#: Width of every time plot's left axis, pixels (see :func:`make_time_plot`).
LEFT_AXIS_WIDTH = 54
#: Width of the column right of every time plot, pixels: colour bars live there, outside the
#: plot width all time views share (views without a colour bar keep it empty).
RIGHT_COLUMN_WIDTH = 92
#: Width of the colour strip of a colour bar, pixels (its label and tick values take the rest).
COLOR_BAR_WIDTH = 14
#: Margins of every time view's graphics layout, pixels (left, top, right, bottom).
LAYOUT_MARGINS = (2, 4, 2, 2)


def short_units(units: str) -> str:
    """A colour bar label that fits beside a short bar: the units up to " of " or "(".

    "cosine distance of time-binned hidden states (1 - cos)" reads "cosine distance"; the views
    put the whole text in their tooltip.
    """
    for sep in (" of ", " ("):
        units = units.split(sep, 1)[0]
    return units.strip()


def time_graphics() -> pg.GraphicsLayoutWidget:
    """The graphics widget of a time view: plots in column 0, a fixed-width column 1 beside them.

    Every time view (waveform, spectrogram, quality curve, layer heatmap) and the time matrix is
    built on this, with :func:`make_time_plot`'s fixed left axis width and
    :func:`reserve_right_column`, so a given time falls on the same pixel column in each of them
    when they are equally wide (they share one time axis).
    """
    graphics = pg.GraphicsLayoutWidget()
    graphics.ci.layout.setContentsMargins(*LAYOUT_MARGINS)
    graphics.ci.layout.setHorizontalSpacing(0)
    return graphics


def reserve_right_column(graphics: pg.GraphicsLayoutWidget, item: QtWidgets.QGraphicsWidget | None = None,
                         row: int = 0, rowspan: int = 1) -> QtWidgets.QGraphicsWidget:
    """Put ``item`` (a colour bar; default an empty placeholder) in the fixed right column."""
    if item is None:
        item = pg.GraphicsWidget()
    graphics.addItem(item, row=row, col=1, rowspan=rowspan)
    item.setFixedWidth(RIGHT_COLUMN_WIDTH)
    graphics.ci.layout.setColumnFixedWidth(1, RIGHT_COLUMN_WIDTH)
    return item


def make_time_plot(**kwargs) -> pg.PlotItem:
    """A :class:`pyqtgraph.PlotItem` on a :class:`TimeViewBox`, x labelled in seconds.

    Parameters
    ----------
    **kwargs
        Passed to :class:`pyqtgraph.PlotItem`.

    Returns
    -------
    pyqtgraph.PlotItem
    """
    plot = pg.PlotItem(viewBox=TimeViewBox(), **kwargs)
    plot.setLabel("bottom", TIME_LABEL)
    # A fixed width: an axis sized by its tick labels changes width when data arrives, which
    # moves the plot area, and x-linked views follow in screen coordinates, so every view
    # re-ranged and repainted (tens of milliseconds on the UI thread). It also lines up the
    # time axes of all views.
    plot.getAxis("left").setWidth(LEFT_AXIS_WIDTH)
    return plot


class TimeView(QtWidgets.QWidget):
    """Base class of the views that share the reference timeline (x axis in seconds).

    Subclasses build their plots with :func:`make_time_plot`, register each one with
    :meth:`_add_time_plot` (which adds the playhead and the loop region and wires the mouse) and
    implement :meth:`clear`. Clicks go through :meth:`_time_clicked`, which subclasses may extend.

    Signals
    -------
    seekRequested(float)
        The user clicked at this time (seconds, reference timeline, clamped at 0).
    loopRequested(float, float)
        The user selected a loop ``(start_s, end_s)``: a shift + drag, or dragging the loop region.
    """

    seekRequested = QtCore.Signal(float)
    loopRequested = QtCore.Signal(float, float)

    # Shift-drags narrower than this are treated as slips, not loops.
    MIN_LOOP_S = 0.01

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._time_plots: list[pg.PlotItem] = []
        self._playheads: list[pg.InfiniteLine] = []
        self._loop_items: list[pg.LinearRegionItem] = []
        self._playhead_t: float | None = None
        # Set while the view itself moves the loop items, so only user drags emit loopRequested.
        self._syncing_loop = False

    # ----- interface -------------------------------------------------------------------------
    def plot_item(self) -> pg.PlotItem:
        """The plot the main window links its time axis to (``setXLink``).

        Views with several stacked plots link them internally to this one.

        Returns
        -------
        pyqtgraph.PlotItem
        """
        return self._time_plots[0]

    def plot_items(self) -> list[pg.PlotItem]:
        """All time plots of this view, top to bottom.

        Returns
        -------
        list of pyqtgraph.PlotItem
        """
        return list(self._time_plots)

    def set_playhead(self, t: float | None) -> None:
        """Move the playhead to ``t`` seconds (``None`` hides it).

        Called about 30 times per second during playback, so it only moves existing lines.

        Parameters
        ----------
        t : float or None
            Playhead time, seconds on the reference timeline.
        """
        if t == self._playhead_t:
            return
        self._playhead_t = t
        for line in self._playheads:
            if t is None:
                line.hide()
            else:
                line.setValue(t)
                line.show()

    def set_loop(self, region: tuple[float, float] | None) -> None:
        """Show the loop region ``(start_s, end_s)``, or hide it for ``None``.

        Parameters
        ----------
        region : tuple of float or None
            Loop bounds in seconds on the reference timeline.
        """
        self._syncing_loop = True
        try:
            for item in self._loop_items:
                if region is None:
                    item.hide()
                else:
                    item.setRegion((float(min(region)), float(max(region))))
                    item.show()
        finally:
            self._syncing_loop = False

    def clear(self) -> None:
        """Remove the data; the playhead and loop are hidden too."""
        self.set_playhead(None)
        self.set_loop(None)

    # ----- for subclasses --------------------------------------------------------------------
    def _add_time_plot(self, plot: pg.PlotItem) -> None:
        """Register ``plot``: add playhead and loop items, wire clicks and drags, link x.

        Parameters
        ----------
        plot : pyqtgraph.PlotItem
            A plot made with :func:`make_time_plot`, already placed in a scene.
        """
        playhead = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(PLAYHEAD_COLOR, width=1.5))
        playhead.setZValue(100)
        playhead.hide()
        plot.addItem(playhead, ignoreBounds=True)

        loop = pg.LinearRegionItem(values=(0.0, 1.0), orientation="vertical", movable=True,
                                   brush=pg.mkBrush(*LOOP_BRUSH), hoverBrush=pg.mkBrush(*LOOP_HOVER_BRUSH))
        loop.setZValue(50)
        loop.hide()
        plot.addItem(loop, ignoreBounds=True)
        loop.sigRegionChanged.connect(self._loop_item_moved)
        loop.sigRegionChangeFinished.connect(self._loop_item_finished)

        vb = plot.getViewBox()
        if isinstance(vb, TimeViewBox):
            vb.sigTimeClicked.connect(lambda x, y, double, p=plot: self._time_clicked(p, x, y, double))
            vb.sigTimeDragged.connect(self._time_dragged)
        if self._time_plots:
            plot.setXLink(self._time_plots[0])
        self._time_plots.append(plot)
        self._playheads.append(playhead)
        self._loop_items.append(loop)
        if self._playhead_t is not None:
            playhead.setValue(self._playhead_t)
            playhead.show()

    def _time_clicked(self, plot: pg.PlotItem, x: float, y: float, double: bool) -> None:
        """Handle a left click at data ``(x, y)`` in ``plot``; the default seeks on single clicks.

        Parameters
        ----------
        plot : pyqtgraph.PlotItem
            The plot that was clicked.
        x, y : float
            Data coordinates (x in seconds).
        double : bool
            True for the second click of a double click.
        """
        if not double:
            self.seekRequested.emit(max(0.0, x))

    # ----- internals -------------------------------------------------------------------------
    def _time_dragged(self, start: float, end: float, finished: bool) -> None:
        # Preview the region while dragging, then ask for it; the main window confirms via set_loop.
        start = max(0.0, start)
        self.set_loop((start, max(start, end)))
        if finished:
            if end - start >= self.MIN_LOOP_S:
                self.loopRequested.emit(start, end)
            else:
                self.set_loop(None)

    def _loop_item_moved(self, item: pg.LinearRegionItem) -> None:
        if self._syncing_loop:
            return
        # Keep the loop of the sibling plots under the one being dragged.
        self._syncing_loop = True
        try:
            region = item.getRegion()
            for other in self._loop_items:
                if other is not item:
                    other.setRegion(region)
        finally:
            self._syncing_loop = False

    def _loop_item_finished(self, item: pg.LinearRegionItem) -> None:
        if self._syncing_loop:
            return
        start, end = item.getRegion()
        self.loopRequested.emit(float(start), float(end))


def image_rect(x: np.ndarray, y: np.ndarray, x_starts: bool = True, y_starts: bool = True) -> QtCore.QRectF:
    """Rectangle placing an image's cells on the axis values ``x`` (columns) and ``y`` (rows).

    Parameters
    ----------
    x, y : ndarray
        Evenly spaced axis values, one per column / row.
    x_starts, y_starts : bool
        True if the values are cell starts (time bins), False if cell centres (layer indices).

    Returns
    -------
    QtCore.QRectF
    """
    def span(v, starts: bool) -> tuple[float, float]:
        v = np.asarray(v, dtype=np.float64)
        if v.size == 0:
            return 0.0, 1.0
        step = (v[-1] - v[0]) / (v.size - 1) if v.size > 1 else 1.0
        step = step if step > 0 else 1.0
        first = v[0] if starts else v[0] - step / 2
        return float(first), float(step * v.size)

    x0, w = span(x, x_starts)
    y0, h = span(y, y_starts)
    return QtCore.QRectF(x0, y0, w, h)


def finite_levels(values: np.ndarray, low: float | None = 0.0) -> tuple[float, float]:
    """Colour levels ``(low, max)`` over the finite cells (NaN cells are drawn transparent).

    Parameters
    ----------
    values : ndarray
    low : float or None
        Fixed lower level (distances start at 0); ``None`` uses the finite minimum.

    Returns
    -------
    tuple of float
        Always ``lo < hi``.
    """
    finite = np.asarray(values)[np.isfinite(values)]
    if finite.size == 0:
        return (0.0 if low is None else low), 1.0
    lo = float(finite.min()) if low is None else float(low)
    hi = float(finite.max())
    if hi <= lo:
        hi = lo + (abs(lo) * 0.01 or 1.0)
    return lo, hi
