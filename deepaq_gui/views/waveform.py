"""Reference and degraded waveforms, stacked, drawn from a min/max envelope pyramid.

Why not hand the samples to :class:`pyqtgraph.PlotDataItem` directly: measured on the development
machine (2 cores, offscreen), ``setData`` of 10 minutes of 48 kHz mono took 1.3 s plus 0.4 s for
the float64 x array (230 MB), and every zoomed-out repaint re-reduces all samples. For a 60-minute
file (172.8 M samples) that is several seconds and 1.4 GB just for x. So :func:`compute_envelope`
builds a pyramid of per-block minima and maxima once (one pass over the samples, ~0.15 s per
60-minute mono channel), and on every view change :class:`WaveformView` hands pyqtgraph only the
few thousand envelope points of the visible range from the level that has about one block per
pixel (or the raw samples once zoomed in that far). pyqtgraph's own peak downsampling and
clip-to-view then work on that small array.
"""

from __future__ import annotations

import math

from PySide6 import QtWidgets

import pyqtgraph as pg

from deepaq_core.audio.buffer import AudioBuffer
from deepaq_core.audio.display import (  # noqa: F401  (the DSP lives in core; re-exported)
    BASE_BLOCK, COARSEST_BLOCKS, LEVEL_FACTOR, WaveformEnvelope, compute_envelope,
)

from .base import (REFERENCE_COLOR, TimeView, make_time_plot, reserve_right_column, show_whole_time, time_graphics,
                   version_color)


class WaveformView(TimeView):
    """Reference (top) and degraded (bottom) waveforms on one time axis.

    Each plot holds one :class:`pyqtgraph.PlotDataItem` whose data is replaced with the visible part
    of the envelope whenever the x range or the plot size changes (a few thousand points).

    Measured (development machine: 2 CPU cores, offscreen Qt, 1200 x 400 px view, white-noise
    signals, reference and degraded both set):

    * 10 min mono (28.8 M samples each): ``set_audio`` 0.05 s (one envelope 0.024 s), first
      paint 0.02 s;
    * 60 min mono (172.8 M samples each): ``set_audio`` 0.29-0.56 s (one envelope 0.14-0.19 s),
      first paint 0.02-0.04 s;
    * 60 min stereo: ``set_audio`` 0.54 s (one envelope 0.27 s), first paint 0.03 s.

    After that, a pan or zoom costs < 0.2 ms in :meth:`_refresh` (≤ ~50 k points handed over at
    any zoom) plus the repaint (~20 ms for the whole widget grab, as with a short file), and
    :meth:`set_playhead` ~50 µs. For comparison, giving the 10-minute samples to pyqtgraph
    directly took 1.7 s before the first paint. Memory: the pyramid adds ~1 % of the signal's
    size (float32 min + max per 256 samples, plus a third more for the coarser levels); the samples themselves
    are referenced, not copied.

    Parameters
    ----------
    parent : QtWidgets.QWidget, optional
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._graphics = time_graphics()
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._graphics)

        self._graphics.ci.layout.setVerticalSpacing(6)
        self._envelopes: list[WaveformEnvelope | None] = [None, None]
        self._offsets_s = [0.0, 0.0]
        self._curves: list[pg.PlotDataItem] = []
        for row, colour in enumerate((REFERENCE_COLOR, version_color(0))):
            plot = make_time_plot()
            self._graphics.addItem(plot, row=row, col=0)
            plot.setMouseEnabled(x=True, y=False)  # wheel and drag act on time only
            plot.setYRange(-1, 1, padding=0.02)
            # Labels at -1, 0 and 1 only: two short plots stacked, finer labels ran together.
            plot.getAxis("left").setTickSpacing(1.0, 0.5)
            plot.getAxis("left").setStyle(maxTickLevel=0)
            if row == 0:
                # The lower plot's axis serves both; an axis (and a grid) is redrawn at every
                # zoom and pan, which the UI thread pays for (docs/PERFORMANCE.md).
                plot.hideAxis("bottom")
            curve = pg.PlotDataItem(pen=pg.mkPen(colour, width=1))
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
            plot.addItem(curve)
            self._curves.append(curve)
            self._add_time_plot(plot)
            vb = plot.getViewBox()
            vb.sigXRangeChanged.connect(lambda *_a, r=row: self._refresh(r))
            vb.sigResized.connect(lambda *_a, r=row: self._refresh(r))
        reserve_right_column(self._graphics, rowspan=2)  # no colour bar: the same margin as the others
        self._set_labels(("Reference", "Version"))

    # ----- interface -------------------------------------------------------------------------
    def set_audio(self, reference: AudioBuffer | None, degraded: AudioBuffer | None,
                  labels: tuple[str, str] = ("Reference", "Version"), degraded_lag_s: float = 0.0) -> None:
        """Show two signals (computes the envelopes synchronously, see :func:`compute_envelope`).

        The x range is reset to the whole file only when the longest signal's length changes.

        Parameters
        ----------
        reference, degraded : AudioBuffer or None
            ``None`` leaves that plot empty.
        labels : tuple of str
            Y-axis titles of the two plots.
        degraded_lag_s : float
            Lag of the degraded signal (``result.alignment.lag_ms / 1000``); it is drawn shifted
            left by this much so both share the reference timeline.
        """
        self.set_envelopes(None if reference is None else compute_envelope(reference),
                           None if degraded is None else compute_envelope(degraded),
                           labels=labels, degraded_lag_s=degraded_lag_s)

    def set_envelopes(self, reference: WaveformEnvelope | None, degraded: WaveformEnvelope | None,
                      labels: tuple[str, str] = ("Reference", "Version"), degraded_lag_s: float = 0.0) -> None:
        """Show precomputed envelopes (from :func:`compute_envelope`, e.g. in a worker).

        Parameters
        ----------
        reference, degraded : WaveformEnvelope or None
        labels : tuple of str
        degraded_lag_s : float
            See :meth:`set_audio`.
        """
        old_end = max((e.duration_s for e in self._envelopes if e is not None), default=None)
        self._envelopes = [reference, degraded]
        self._offsets_s = [0.0, float(degraded_lag_s)]
        self._set_labels(labels)
        ends = [e.duration_s for e in self._envelopes if e is not None]
        peaks = [e.peak for e in self._envelopes if e is not None]
        # Full scale unless the signal clips past it, so quiet takes look quiet.
        y_max = max([1.0, *peaks])
        for plot in self._time_plots:
            plot.setYRange(-y_max, y_max, padding=0.02)
        # Show the whole file when its length changes; switching between versions of the same
        # length keeps the user's zoom.
        if ends and max(ends) != old_end:
            show_whole_time(self._time_plots[0], max(ends))
        for row in range(2):
            self._refresh(row)

    def set_version_index(self, index: int) -> None:
        """Colour the degraded waveform like version ``index`` in the other views.

        Parameters
        ----------
        index : int
        """
        self._curves[1].setPen(pg.mkPen(version_color(index), width=1))

    def curve_items(self) -> list[pg.PlotDataItem]:
        """The two waveform items (reference, degraded).

        Returns
        -------
        list of pyqtgraph.PlotDataItem
        """
        return list(self._curves)

    def clear(self) -> None:
        """Remove both waveforms."""
        self._envelopes = [None, None]
        for curve in self._curves:
            curve.setData([], [])
        super().clear()

    # ----- internals -------------------------------------------------------------------------
    def _set_labels(self, labels: tuple[str, str]) -> None:
        for plot, label in zip(self._time_plots, labels):
            plot.setLabel("left", label)

    def _refresh(self, row: int) -> None:
        env = self._envelopes[row]
        curve = self._curves[row]
        if env is None:
            if curve.xData is not None and len(curve.xData):
                curve.setData([], [])
            return
        vb = self._time_plots[row].getViewBox()
        (x0, x1), _ = vb.viewRange()
        sr = env.sample_rate
        offset = self._offsets_s[row]
        # Inclusive margin of one screen-pixel's worth so line ends never show inside the view.
        i0 = math.floor((x0 + offset) * sr) - 1
        i1 = math.ceil((x1 + offset) * sr) + 2
        width_px = max(100, int(vb.width()))
        x, y = env.points(i0, i1, 2 * width_px)
        curve.setData(x / sr - offset, y)


__all__ = ["WaveformEnvelope", "WaveformView", "compute_envelope"]
