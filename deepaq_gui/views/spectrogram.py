"""Reference, degraded and difference spectrograms on one time axis.

The heavy part, :func:`compute_spectrogram`, is a pure function so the main window can run it in a
worker thread and hand the arrays to :meth:`SpectrogramView.set_spectrograms`, which only draws.
:meth:`SpectrogramView.set_audio` is the synchronous convenience for short signals and tests.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft
import scipy.signal
from numpy.lib.stride_tricks import sliding_window_view
from PySide6 import QtCore, QtWidgets

import pyqtgraph as pg

from deepaq_core.audio.buffer import AudioBuffer

from .base import TimeView, make_time_plot, show_whole_time

Spectrogram = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(times_s [T], freqs_hz [F], db [F, T])`` as returned by :func:`compute_spectrogram`."""

FLOOR_DB = -120.0
DEFAULT_RANGE_DB = 100.0  # shared colour scale spans this much below the louder spectrogram's peak
LEVEL_CMAP = "inferno"
DIFF_CMAP = "CET-D1"  # diverging blue-white-red, symmetric around 0 dB

# Frames per FFT batch: bounds the temporaries (frames x n_fft float32 + complex spectra) to tens
# of MB whatever the file length.
_BATCH_SAMPLES = 1 << 22


#: Frequency rows drawn (bins merged above this). A spectrogram plot is a few hundred pixels tall;
#: drawing all 1025 bins of a 2048-point FFT cost the UI thread 30 ms per first paint of the
#: three images on a 5-minute file (docs/PERFORMANCE.md).
DISPLAY_ROWS = 256


def compute_spectrogram(samples_1d: np.ndarray, sr: int, max_columns: int = 2000, n_fft: int | None = None,
                        grid_samples: int | None = None, max_rows: int | None = None, workers: int = -1) -> Spectrogram:
    """Log-magnitude spectrogram with at most ``max_columns`` time columns (pure, thread-safe).

    Frames are Hann-windowed and centred on their time (the signal is zero-padded by half a frame
    at both ends, so the columns span 0 to the duration). Short signals get one frame per column,
    with the hop chosen to use up to ``max_columns`` columns (but at least ``n_fft / 8``); long
    signals use 50 %-overlapping frames and each column is the **mean power** of the consecutive
    frames it covers, so no part of a long file is skipped (a 60-minute file still reads every
    sample, in bounded-memory batches).

    Parameters
    ----------
    samples_1d : ndarray, shape [N]
        One channel (downmix multichannel audio first).
    sr : int
        Sample rate, Hz.
    max_columns : int
        Upper bound on the number of time columns ``T``.
    n_fft : int, optional
        Frame length; default the power of two nearest 40 ms (2048 at 48 kHz).
    grid_samples : int, optional
        Length used to choose the column grid (default ``N``). Pass the longer of two signals'
        lengths for both so their spectrograms share one time grid and can be subtracted.
    max_rows : int, optional
        Upper bound on the number of frequency rows ``F``: neighbouring bins are merged into
        ``max_rows`` bands (mean power; band widths differ by one bin at most). Default: every bin.
    workers : int
        Threads for the FFTs (``scipy.fft``'s ``workers``; -1: every core).

    Returns
    -------
    times_s : ndarray of float64, shape [T]
        Column centres, seconds.
    freqs_hz : ndarray of float64, shape [F]
        Bin (or band) centres; ``F = n_fft // 2 + 1`` unless ``max_rows`` merges bins.
    db : ndarray of float32, shape [F, T]
        Power in dB relative to a full-scale sine (a sine of amplitude 1 peaks near 0 dB),
        floored at -120 dB.
    """
    x = np.asarray(samples_1d)
    if x.ndim != 1:
        raise ValueError(f"compute_spectrogram expects a 1-D signal, got shape {x.shape}")
    if max_columns < 1:
        raise ValueError("max_columns must be at least 1")
    if n_fft is None:
        n_fft = 2 ** max(6, int(round(math.log2(sr * 0.04))))
    n = x.shape[0]
    grid_n = max(n, int(grid_samples or 0), 1)
    half = n_fft // 2

    ideal_hop = math.ceil(grid_n / max_columns)
    if ideal_hop <= half:
        hop, group = max(ideal_hop, n_fft // 8, 1), 1
    else:
        hop = half
        group = math.ceil(ideal_hop / hop)
    # Guard the bound exactly (frame count is grid_n // hop + 1 with centred frames).
    while math.ceil((grid_n // hop + 1) / group) > max_columns:
        group += 1

    n_frames = n // hop + 1
    n_cols = math.ceil(n_frames / group)
    window = scipy.signal.get_window("hann", n_fft).astype(np.float32)
    # Squared one-sided amplitude: a full-scale sine centred on a bin reads 0 dB.
    scale = (2.0 / float(window.sum())) ** 2
    n_bins = half + 1
    power = np.empty((n_cols, n_bins), np.float64)

    frames_per_batch = max(group, (_BATCH_SAMPLES // n_fft) // group * group)
    for f0 in range(0, n_frames, frames_per_batch):
        f1 = min(n_frames, f0 + frames_per_batch)
        s0 = f0 * hop - half
        s1 = (f1 - 1) * hop - half + n_fft
        seg = np.zeros(s1 - s0, np.float32)
        a, b = max(s0, 0), min(s1, n)
        if b > a:
            seg[a - s0 : b - s0] = x[a:b]
        frames = sliding_window_view(seg, n_fft)[::hop]
        spec = scipy.fft.rfft(frames * window, axis=1, workers=workers)
        p = spec.real.astype(np.float64) ** 2 + spec.imag.astype(np.float64) ** 2
        starts = np.arange(0, f1 - f0, group)
        counts = np.minimum(group, (f1 - f0) - starts)
        power[f0 // group : f0 // group + starts.size] = np.add.reduceat(p, starts, axis=0) / counts[:, None]

    freqs = np.arange(n_bins) * sr / n_fft
    if max_rows is not None and n_bins > max_rows:
        # exactly max_rows bands, as equal as whole bins allow (widths differ by one bin at most)
        starts = np.linspace(0, n_bins, max(1, max_rows) + 1).astype(np.int64)[:-1]
        counts = np.diff(np.append(starts, n_bins))
        power = np.add.reduceat(power, starts, axis=1) / counts
        freqs = np.add.reduceat(freqs, starts) / counts
    db = (10.0 * np.log10(np.maximum(power.T * scale, 10 ** (FLOOR_DB / 10)))).astype(np.float32)
    times = (np.arange(n_cols) * group + (group - 1) / 2) * hop / sr
    return times.astype(np.float64), freqs.astype(np.float64), db


def difference_with_limit(reference: Spectrogram, degraded: Spectrogram,
                          degraded_lag_s: float = 0.0) -> tuple[Spectrogram, float]:
    """The difference spectrogram and its default colour limit in dB (pure, thread-safe).

    The limit is the 99th percentile of the absolute difference, rounded up to 3 dB and kept
    within 3-40 dB. Both cost tens of milliseconds on a long file, so the app computes them in a
    worker.
    """
    times, freqs, diff = difference_spectrogram(reference, degraded, degraded_lag_s)
    finite = np.abs(diff[np.isfinite(diff)])
    p99 = float(np.percentile(finite, 99)) if finite.size else 0.0
    return (times, freqs, diff), min(40.0, max(3.0, 3.0 * math.ceil(p99 / 3.0)))


def difference_spectrogram(reference: Spectrogram, degraded: Spectrogram, degraded_lag_s: float = 0.0) -> Spectrogram:
    """Degraded minus reference, in dB, on the reference's grid (pure).

    When the grids differ (different lengths, rates or frame sizes, or a lag) each reference cell
    takes the nearest degraded cell; reference columns the degraded signal does not cover are NaN.

    Parameters
    ----------
    reference, degraded : Spectrogram
        ``(times_s, freqs_hz, db)`` tuples from :func:`compute_spectrogram`.
    degraded_lag_s : float
        Lag of the degraded signal (``result.alignment.lag_ms / 1000``): its time ``t + lag``
        is compared with reference time ``t``.

    Returns
    -------
    Spectrogram
        ``(reference times, reference freqs, diff_db [F, T])``.
    """
    t_r, f_r, db_r = reference
    t_d, f_d, db_d = degraded
    t_d = np.asarray(t_d) - degraded_lag_s
    same_f = f_r.shape == f_d.shape and np.allclose(f_r, f_d)
    same_t = t_r.shape[0] <= t_d.shape[0] and np.allclose(t_d[: t_r.shape[0]], t_r)
    if same_f and same_t:
        return t_r, f_r, (db_d[:, : t_r.shape[0]] - db_r).astype(np.float32)
    fi = np.arange(f_r.shape[0]) if same_f else _nearest(f_d, f_r)
    ti = _nearest(t_d, t_r)
    out = db_d[np.ix_(fi, ti)] - db_r
    if t_d.size > 1:
        dt = (t_d[-1] - t_d[0]) / (t_d.size - 1)
        outside = (t_r < t_d[0] - dt / 2) | (t_r > t_d[-1] + dt / 2)
    else:
        outside = np.zeros(t_r.shape, bool)
    out[:, outside] = np.nan
    return t_r, f_r, out.astype(np.float32)


def _nearest(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Index into ascending ``source`` of the value nearest each ``target`` value."""
    idx = np.clip(np.searchsorted(source, target), 1, max(1, source.size - 1))
    if source.size == 1:
        return np.zeros(target.shape, np.intp)
    left = source[idx - 1]
    right = source[idx]
    return np.where(np.abs(target - left) <= np.abs(right - target), idx - 1, idx)


def _rect(times: np.ndarray, freqs: np.ndarray) -> QtCore.QRectF:
    """Image rectangle whose cells are centred on the given column times and bin frequencies."""
    dt = (times[-1] - times[0]) / (times.size - 1) if times.size > 1 else 1.0
    df = (freqs[-1] - freqs[0]) / (freqs.size - 1) if freqs.size > 1 else 1.0
    return QtCore.QRectF(times[0] - dt / 2, freqs[0] - df / 2, dt * times.size, df * freqs.size)


class SpectrogramView(TimeView):
    """Three stacked spectrograms: reference, degraded (one shared colour scale) and the difference.

    The difference plot shows degraded minus reference in dB with a diverging colour map whose
    levels are symmetric around 0, so added energy (noise, distortion) is red and removed energy
    (low-pass, dropouts) is blue.

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

        self._images: list[pg.ImageItem] = []
        titles = ("R", "V", "V − R")  # short: three stacked axes share little height
        for row, title in enumerate(titles):
            plot = make_time_plot()
            self._graphics.addItem(plot, row=row, col=0)
            # Ticks in kHz under a one-word label (the unit is in the tooltip): each of the three
            # rows is only a few tens of pixels tall, and "V − R (kHz)" ran into the next row's.
            axis = plot.getAxis("left")
            axis.enableAutoSIPrefix(False)
            axis.setScale(1e-3)
            axis.setToolTip("Frequency (kHz)")
            plot.setLabel("left", title)
            plot.setMouseEnabled(x=True, y=False)
            if row < 2:
                plot.hideAxis("bottom")  # the bottom row's axis serves all three (see WaveformView)
            image = pg.ImageItem(axisOrder="row-major")
            plot.addItem(image)
            self._images.append(image)
            self._add_time_plot(plot)

        self._level_bar = pg.ColorBarItem(values=(FLOOR_DB, 0.0), colorMap=pg.colormap.get(LEVEL_CMAP),
                                          label="Level (dB FS)", interactive=False)
        self._level_bar.setImageItem(self._images[:2])
        self._graphics.addItem(self._level_bar, row=0, col=1, rowspan=2)
        self._diff_bar = pg.ColorBarItem(values=(-20.0, 20.0), colorMap=pg.colormap.get(DIFF_CMAP),
                                         label="V − R (dB)", interactive=False)
        self._diff_bar.setImageItem(self._images[2])
        self._graphics.addItem(self._diff_bar, row=2, col=1)
        self._t_end: float | None = None

    # ----- interface -------------------------------------------------------------------------
    def set_audio(self, reference: AudioBuffer | None, degraded: AudioBuffer | None,
                  degraded_lag_s: float = 0.0, max_columns: int = 2000) -> None:
        """Compute (synchronously) and show the spectrograms of two signals (channels downmixed).

        Parameters
        ----------
        reference, degraded : AudioBuffer or None
        degraded_lag_s : float
            See :func:`difference_spectrogram`.
        max_columns : int
            See :func:`compute_spectrogram`.
        """
        buffers = [b for b in (reference, degraded) if b is not None]
        grid = max((b.num_samples for b in buffers), default=0)
        specs = [None if b is None else compute_spectrogram(_downmix(b), b.sample_rate, max_columns, grid_samples=grid,
                                                            max_rows=DISPLAY_ROWS)
                 for b in (reference, degraded)]
        self.set_spectrograms(specs[0], specs[1], degraded_lag_s=degraded_lag_s)

    def set_spectrograms(self, reference: Spectrogram | None, degraded: Spectrogram | None,
                         degraded_lag_s: float = 0.0, range_db: float = DEFAULT_RANGE_DB,
                         diff_limit_db: float | None = None,
                         difference: tuple[Spectrogram, float] | None = None) -> None:
        """Draw precomputed spectrograms (from :func:`compute_spectrogram`); no FFTs here.

        Parameters
        ----------
        reference, degraded : Spectrogram or None
        degraded_lag_s : float
            Shifts the degraded spectrogram onto the reference timeline.
        range_db : float
            The shared colour scale spans ``[peak - range_db, peak]``, with ``peak`` the louder
            spectrogram's maximum rounded up to 10 dB.
        diff_limit_db : float, optional
            Difference levels ``[-limit, +limit]``; default the 99th percentile of the absolute
            difference, rounded up to 3 dB and kept within 3-40 dB.
        difference : (Spectrogram, float), optional
            The difference and its default limit from :func:`difference_with_limit`, computed
            off the UI thread; computed here when not given.
        """
        old_end = self._t_end
        specs = [reference, degraded]
        peaks = [float(np.nanmax(s[2])) for s in specs if s is not None and s[2].size]
        top = 10.0 * math.ceil(max(peaks) / 10.0) if peaks else 0.0
        self._level_bar.setLevels((top - range_db, top))
        for k, spec in enumerate(specs):
            if spec is None or spec[2].size == 0:
                self._images[k].clear()
                continue
            times, freqs, db = spec
            if k == 1:
                times = np.asarray(times) - degraded_lag_s
            self._images[k].setImage(db, autoLevels=False, levels=(top - range_db, top))
            self._images[k].setRect(_rect(times, freqs))

        if difference is None and reference is not None and degraded is not None and reference[2].size and degraded[2].size:
            difference = difference_with_limit(reference, degraded, degraded_lag_s)
        if difference is not None:
            (times, freqs, diff), auto_limit = difference
            diff_limit_db = auto_limit if diff_limit_db is None else diff_limit_db
            self._diff_bar.setLevels((-diff_limit_db, diff_limit_db))
            self._images[2].setImage(diff, autoLevels=False, levels=(-diff_limit_db, diff_limit_db))
            self._images[2].setRect(_rect(times, freqs))
        else:
            self._images[2].clear()

        shown = [s for s in specs if s is not None and s[0].size]
        self._t_end = max((float(s[0][-1]) for s in shown), default=None)
        if shown:
            f_top = max(float(s[1][-1]) for s in shown)
            # Whole file when its length changes; same-length versions keep the user's zoom.
            if self._t_end != old_end:
                show_whole_time(self._time_plots[0], self._t_end)
            for plot in self._time_plots:
                plot.setYRange(0.0, f_top, padding=0)

    def image_items(self) -> list[pg.ImageItem]:
        """The reference, degraded and difference image items.

        Returns
        -------
        list of pyqtgraph.ImageItem
        """
        return list(self._images)

    def clear(self) -> None:
        """Remove all three images."""
        for image in self._images:
            image.clear()
        self._t_end = None
        super().clear()


def _downmix(buffer: AudioBuffer) -> np.ndarray:
    """Mono view of ``buffer`` (no copy for mono)."""
    return buffer.samples[0] if buffer.channels == 1 else buffer.samples.mean(axis=0)
