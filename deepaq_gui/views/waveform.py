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
from dataclasses import dataclass

import numpy as np
from PySide6 import QtWidgets

import pyqtgraph as pg

from deepaq_core.audio.buffer import AudioBuffer

from .base import REFERENCE_COLOR, TimeView, make_time_plot, show_whole_time, version_color

BASE_BLOCK = 256  # samples per block of the finest level (5.3 ms at 48 kHz)
LEVEL_FACTOR = 4  # each level merges this many blocks of the one below
COARSEST_BLOCKS = 2048  # stop once a level has at most this many blocks


@dataclass(frozen=True, eq=False)
class WaveformEnvelope:
    """A min/max pyramid of a signal, all channels folded together.

    Attributes
    ----------
    samples : ndarray, shape [C, N]
        The signal itself (a reference, not a copy), used once zoomed in past the finest level.
    sample_rate : int
        Hz.
    blocks : tuple of int
        Block length in samples of each level, finest first.
    minima, maxima : tuple of ndarray
        Per level, the minimum / maximum over all channels and the samples of each block
        (the last block may be partial).
    """

    samples: np.ndarray
    sample_rate: int
    blocks: tuple[int, ...]
    minima: tuple[np.ndarray, ...]
    maxima: tuple[np.ndarray, ...]

    @property
    def num_samples(self) -> int:
        """Samples per channel."""
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return self.num_samples / self.sample_rate

    @property
    def peak(self) -> float:
        """Largest absolute sample value (0 for an empty signal)."""
        if not self.minima or self.minima[-1].size == 0:
            return 0.0
        return float(max(-self.minima[-1].min(), self.maxima[-1].max()))

    def points(self, i0: int, i1: int, max_points: int) -> tuple[np.ndarray, np.ndarray]:
        """Envelope points covering samples ``[i0, i1)`` at a useful resolution.

        Picks the coarsest level that still has at least ``max_points / 2`` blocks in the range
        and returns its minima and maxima interleaved (``x`` = block centres in samples, each twice),
        which pyqtgraph draws as a filled-looking zigzag. Below the finest level it returns the
        raw samples (min and max over channels, interleaved).

        Parameters
        ----------
        i0, i1 : int
            Sample range, clipped to the signal.
        max_points : int
            Rough budget, typically twice the plot width in pixels.

        Returns
        -------
        x : ndarray of float64
            Positions in samples.
        y : ndarray of float32
            Values, same length as ``x``.
        """
        n = self.num_samples
        i0, i1 = max(0, int(i0)), min(n, int(i1))
        if i1 <= i0:
            return np.empty(0), np.empty(0, np.float32)
        per_block = (i1 - i0) / max(1, max_points // 2)
        level = -1
        for k, block in enumerate(self.blocks):
            if block <= per_block:
                level = k
        if level < 0:
            seg = self.samples[:, i0:i1]
            if seg.shape[0] == 1:
                # Mono at sample resolution: the waveform itself, no need to double the points.
                return np.arange(i0, i1, dtype=np.float64), seg[0]
            lo, hi = seg.min(axis=0), seg.max(axis=0)
            centres = np.arange(i0, i1, dtype=np.float64)
        else:
            block = self.blocks[level]
            b0, b1 = i0 // block, -(-i1 // block)
            lo, hi = self.minima[level][b0:b1], self.maxima[level][b0:b1]
            centres = (np.arange(b0, b0 + lo.size, dtype=np.float64) + 0.5) * block
        y = np.empty(2 * lo.size, np.float32)
        y[0::2], y[1::2] = lo, hi
        return np.repeat(centres, 2), y


def compute_envelope(buffer: AudioBuffer) -> WaveformEnvelope:
    """Build the min/max pyramid of ``buffer`` (pure; safe to run in a worker thread).

    Parameters
    ----------
    buffer : AudioBuffer
        Any number of channels; they are folded into one envelope.

    Returns
    -------
    WaveformEnvelope
    """
    samples = buffer.samples
    n = samples.shape[1]
    full = (n // BASE_BLOCK) * BASE_BLOCK
    lo = hi = None
    for ch in samples:
        # reshape + reduce over a 256-long inner axis: one pass, no temporaries (0.13 s for
        # 172.8 M samples vs 0.42 s with 64-sample blocks, where numpy's per-row overhead dominates).
        body = ch[:full].reshape(-1, BASE_BLOCK)
        c_lo, c_hi = body.min(axis=1), body.max(axis=1)
        if full < n:
            c_lo = np.append(c_lo, ch[full:].min())
            c_hi = np.append(c_hi, ch[full:].max())
        lo = c_lo if lo is None else np.minimum(lo, c_lo)
        hi = c_hi if hi is None else np.maximum(hi, c_hi)
    if lo is None or lo.size == 0:
        lo = hi = np.empty(0, np.float32)
    blocks, minima, maxima = [BASE_BLOCK], [lo], [hi]
    while minima[-1].size > COARSEST_BLOCKS:
        prev_lo, prev_hi = minima[-1], maxima[-1]
        pad = (-prev_lo.size) % LEVEL_FACTOR
        if pad:
            # Edge values repeat harmlessly under min/max.
            prev_lo = np.concatenate([prev_lo, np.repeat(prev_lo[-1:], pad)])
            prev_hi = np.concatenate([prev_hi, np.repeat(prev_hi[-1:], pad)])
        minima.append(prev_lo.reshape(-1, LEVEL_FACTOR).min(axis=1))
        maxima.append(prev_hi.reshape(-1, LEVEL_FACTOR).max(axis=1))
        blocks.append(blocks[-1] * LEVEL_FACTOR)
    for arr in (*minima, *maxima):
        arr.flags.writeable = False
    return WaveformEnvelope(samples=samples, sample_rate=int(buffer.sample_rate), blocks=tuple(blocks),
                            minima=tuple(minima), maxima=tuple(maxima))


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
        self._graphics = pg.GraphicsLayoutWidget()
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
