"""Display DSP for the app's time views: spectrograms, their difference, waveform envelopes.

Pure numpy/scipy functions (no Qt), so the app runs them in worker threads and their tests run
without PySide6. The views in ``deepaq_gui.views`` only draw what these return.

Spectrograms: :func:`compute_spectrogram` is a log-magnitude STFT bounded in columns and rows;
:func:`difference_spectrogram` / :func:`difference_with_limit` give degraded minus reference.

Waveform envelopes: why not hand the samples to pyqtgraph directly: measured on the development
machine (2 cores, offscreen), ``setData`` of 10 minutes of 48 kHz mono took 1.3 s plus 0.4 s for
the float64 x array (230 MB), and every zoomed-out repaint re-reduces all samples. For a 60-minute
file (172.8 M samples) that is several seconds and 1.4 GB just for x. So :func:`compute_envelope`
builds a pyramid of per-block minima and maxima once (one pass over the samples, ~0.15 s per
60-minute mono channel), and the waveform view hands pyqtgraph only the few thousand envelope
points of the visible range from the level that has about one block per pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft
import scipy.signal
from numpy.lib.stride_tricks import sliding_window_view

from deepaq_core.audio.buffer import AudioBuffer

Spectrogram = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(times_s [T], freqs_hz [F], db [F, T])`` as returned by :func:`compute_spectrogram`."""

FLOOR_DB = -120.0

# Frames per FFT batch: bounds the temporaries (frames x n_fft float32 + complex spectra) to tens
# of MB whatever the file length.
_BATCH_SAMPLES = 1 << 22


#: Frequency bands computed for display (bins merged above this); the spectrogram view resamples
#: them onto the rows of its chosen frequency axis. 512 bands (47 Hz at 48 kHz) keep the low end of
#: a log or mel axis from turning into a few tall blocks.
DISPLAY_ROWS = 512


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


# ----- worst moments ------------------------------------------------------------------------------
#: Octave bands (ISO 266 centres, Hz) in which a worst moment's largest spectral change is named.
OCTAVE_CENTRES_HZ = (31.5, 63.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)
#: Bands quieter than this (dB) below the loudest band of the moment, in both signals, are ignored:
#: a change in inaudible near-silence (an empty top octave) is not what makes a moment bad.
BAND_RELEVANCE_DB = 60.0


@dataclass(frozen=True)
class WorstMoment:
    """One of the lowest-scoring windows of a version, and the octave band that changed most in it.

    ``band_change_db`` is the degraded signal's energy in that band minus the reference's (over
    the window's time span): negative when content was removed (a low-pass, a dropout), positive
    when something was added (noise, distortion). NaN band fields: no spectrograms were given.
    """

    start_s: float
    end_s: float
    score: float
    band_lo_hz: float = math.nan
    band_hi_hz: float = math.nan
    band_change_db: float = math.nan

    @property
    def band_label(self) -> str:
        """E.g. "4 kHz octave, −23 dB" ("–" when unknown)."""
        if not math.isfinite(self.band_change_db):
            return "–"
        centre = math.sqrt(self.band_lo_hz * self.band_hi_hz)
        where = f"{centre / 1000:g} kHz" if centre >= 1000 else f"{round(centre, 1):g} Hz"
        sign = "+" if self.band_change_db >= 0 else "−"
        return f"{where} octave, {sign}{abs(self.band_change_db):.0f} dB"


def band_changes(reference: Spectrogram, degraded: Spectrogram, start_s: float,
                 end_s: float) -> list[tuple[float, float, float]]:
    """Per octave band: ``(lo_hz, hi_hz, degraded minus reference energy in dB)`` over ``[start_s, end_s)``.

    Both spectrograms must share a grid (as :func:`compute_spectrogram` gives for two signals of
    the same length, e.g. the app's aligned playback tracks). Only bands that hold something
    within :data:`BAND_RELEVANCE_DB` of the loudest band, in either signal, are listed.
    """
    t, f, ref_db = reference
    deg_db = degraded[2]
    cols = (t >= start_s) & (t < end_s)
    if not cols.any() or ref_db.shape != deg_db.shape:
        return []
    ref_p = 10.0 ** (ref_db[:, cols].astype(np.float64) / 10.0)
    deg_p = 10.0 ** (deg_db[:, cols].astype(np.float64) / 10.0)
    bands = []
    for centre in OCTAVE_CENTRES_HZ:
        lo, hi = centre / math.sqrt(2.0), centre * math.sqrt(2.0)
        rows = (f >= lo) & (f < hi)
        if rows.any():
            bands.append((lo, hi, float(ref_p[rows].mean()), float(deg_p[rows].mean())))
    if not bands:
        return []
    loudest = max(max(r, d) for _lo, _hi, r, d in bands)
    floor = loudest * 10.0 ** (-BAND_RELEVANCE_DB / 10.0)
    tiny = 1e-30
    return [(lo, hi, 10.0 * math.log10((d + tiny) / (r + tiny))) for lo, hi, r, d in bands if max(r, d) >= floor]


def worst_moments(curve, n: int = 5, reference: Spectrogram | None = None,
                  degraded: Spectrogram | None = None) -> list[WorstMoment]:
    """The ``n`` lowest-scoring non-overlapping windows of ``curve``, worst first, with their band.

    Parameters
    ----------
    curve : deepaq_core.results.QualityCurve
        A result's curve (``start_s``, ``end_s``, ``score`` and ``worst(n)``).
    n : int
        How many moments at most (fewer when windows overlap).
    reference, degraded : Spectrogram, optional
        The two signals' spectrograms on one grid (reference timeline); without them the band
        fields are NaN.
    """
    out = []
    for k in curve.worst(n):
        start, end, score = float(curve.start_s[k]), float(curve.end_s[k]), float(curve.score[k])
        moment = WorstMoment(start, end, score)
        if reference is not None and degraded is not None:
            changes = band_changes(reference, degraded, start, end)
            if changes:
                lo, hi, change = max(changes, key=lambda b: abs(b[2]))
                moment = WorstMoment(start, end, score, lo, hi, change)
        out.append(moment)
    return out
