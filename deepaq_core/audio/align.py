"""Time alignment of a degraded signal to its reference (GCC-PHAT with an NCC fallback).

The search is coarse-to-fine: when the searched stretch of the degraded signal is long (a wide
lag range, a long file), both signals are first decimated so the whole range is correlated at
once at a lower rate, and the best lag is then refined at the full rate in a few-sample window
around it. Peaks are taken on the absolute correlation, so a polarity-inverted copy is aligned
like any other and reported as ``inverted``.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

# PHAT whitening divides each cross-spectrum bin by its magnitude. Bins with (almost) no energy in
# one of the signals - above a codec's low-pass, say - would otherwise be boosted to full weight
# and add pure noise to the correlation, so magnitudes are floored at this fraction of the mean.
_PHAT_FLOOR = 0.1
# "PHAT-beta": dividing by |G|^0.8 instead of |G| keeps a little of the signal's own spectral
# weighting. Measured on generated music: same accuracy as full PHAT with loud bleed (separation)
# and codec noise, but about half the error when a narrow-band degraded signal sits in broadband
# noise (where full PHAT gives the noise-only bins as much say as the signal bins).
_PHAT_BETA = 0.8
# PHAT's peak must beat every peak outside its main lobe by this factor to be trusted on its own.
_PHAT_DOMINANCE = 1.4
# Candidate lags must overlap the analysis window by at least this fraction, so a lag that lines
# up only a sliver of signal cannot win on a noisy normalised value.
_MIN_OVERLAP = 0.5
# The automatic search range (``max_lag_s=None``): at least this many seconds either way, or this
# fraction of the longer signal, whichever is larger (then bounded by the overlap).
AUTO_MIN_LAG_S = 10.0
AUTO_LAG_FRACTION = 0.25
# The first pass correlates at most about this many samples of the degraded signal at once (a
# ~1 Mi-point FFT, a few tens of milliseconds); longer searched stretches are decimated to fit, but
# never below _MIN_COARSE_RATE.
_COARSE_BUDGET = 1 << 19
_FINE_MAX_S = 8.0
_MIN_COARSE_RATE = 1000
# The full-rate refinement searches this many coarse steps either side of the coarse best lag.
_REFINE_STEPS = 2


@dataclass(frozen=True)
class Alignment:
    """How the degraded signal is shifted relative to the reference.

    Attributes
    ----------
    lag_samples : int
        Lag at the working (model) rate, samples; ``degraded[n + lag] ≈ reference[n]``, so a
        positive lag means the degraded signal is late.
    lag_ms : float
        The lag in milliseconds (the sub-sample estimate when estimated, the user's value when
        overridden).
    lag_native_samples : int
        The same lag in samples at the degraded file's native rate, rounded (for reporting).
    estimated : bool
        False when the lag was given by the user or alignment is off.
    confidence : float
        Absolute normalised cross-correlation of the two signals at the lag, 0..1; NaN when not
        estimated.
    inverted : bool
        The degraded signal correlates negatively with the reference at the lag (its polarity
        is inverted). False when not estimated.
    at_edge : bool
        The best lag lies at the edge of the searched range, so the true lag may lie beyond it
        (give it explicitly, or widen the search). False when not estimated.
    """

    lag_samples: int
    lag_ms: float
    lag_native_samples: int
    estimated: bool
    confidence: float
    inverted: bool = False
    at_edge: bool = False


@dataclass(frozen=True)
class LagEstimate:
    """The outcome of :func:`find_lag`.

    Attributes
    ----------
    lag : float
        Samples at the signals' rate, sub-sample precision; ``degraded[n + lag] ≈ reference[n]``
        (positive: degraded is late).
    confidence : float
        Absolute normalised correlation at the integer lag, 0..1 (1: identical up to gain and
        polarity; ~0: unrelated).
    inverted : bool
        The correlation at the lag is negative (the degraded signal's polarity is inverted).
    at_edge : bool
        The best lag is the first or last lag searched.
    peak_ratio : float
        The GCC-PHAT peak over the largest absolute value outside its 1 ms main lobe (>= 1.4:
        PHAT decided; below: the plain normalised correlation decided); NaN when not estimated.
    max_lag : int
        The largest lag searched either way, samples, after bounding by the overlap.
    method : str
        ``"PHAT"``, ``"NCC"``, or ``""`` when nothing could be estimated (lag 0).
    """

    lag: float
    confidence: float
    inverted: bool = False
    at_edge: bool = False
    peak_ratio: float = float("nan")
    max_lag: int = 0
    method: str = ""


class ChannelMean:
    """The mean over the channels of ``samples`` [C, N], computed stretch by stretch as it is read.

    Behaves as the 1-D float32 array ``samples.mean(axis=0, dtype=np.float32)`` for what
    :func:`find_lag` does with its signals (``shape``, ``ndim``, slices with step 1, ``np.asarray``),
    with the same values (each output sample is the same sum of its channels, whatever the slice).
    The alignment reads at most a few minutes of a long file; the whole mean of a 10-minute stereo
    file cost 0.3 s and 115 MB of fresh memory per file.
    """

    ndim = 1
    dtype = np.dtype(np.float32)

    def __init__(self, samples: np.ndarray, start: int = 0, stop: int | None = None) -> None:
        self.samples = samples
        self.start = start
        self.stop = samples.shape[1] if stop is None else stop

    @property
    def shape(self) -> tuple[int]:
        return (self.stop - self.start,)

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("ChannelMean takes slices with step 1")
        a, b, _ = key.indices(self.stop - self.start)
        return ChannelMean(self.samples, self.start + a, self.start + max(a, b))

    def __array__(self, dtype=None, copy=None):
        out = self.samples[:, self.start : self.stop].mean(axis=0, dtype=np.float32)
        return out if dtype is None else out.astype(dtype, copy=False)


def search_range(num_reference: int, num_degraded: int, sample_rate: int, max_lag_s: float | None = None) -> int:
    """The lag range of a search, samples either way, before bounding by the overlap.

    ``max_lag_s=None`` (automatic): ``max(10 s, 25 % of the longer signal)``; otherwise
    ``max_lag_s`` itself.
    """
    if max_lag_s is None:
        return int(round(max(AUTO_MIN_LAG_S * sample_rate, AUTO_LAG_FRACTION * max(num_reference, num_degraded))))
    if not math.isfinite(max_lag_s) or max_lag_s < 0:
        raise ValueError(f"max_lag_s must be a finite number >= 0 or None, got {max_lag_s}")
    return int(round(max_lag_s * sample_rate))


def _window_energies(x: np.ndarray, length: int, sample_rate: int) -> tuple[np.ndarray, int]:
    """Energies of the ``length``-sample stretches of ``x`` starting every 100 ms, and that hop.

    Energies are summed per 100 ms hop in 1 Mi-sample chunks so a one-hour signal needs no full
    float64 copy.
    """
    hop = max(1, sample_rate // 10)
    num_hops = x.shape[0] // hop
    energy = np.empty(num_hops)
    hops_per_chunk = max(1, (1 << 20) // hop)
    for first in range(0, num_hops, hops_per_chunk):
        last = min(num_hops, first + hops_per_chunk)
        seg = np.asarray(x[first * hop : last * hop], dtype=np.float64).reshape(last - first, hop)
        energy[first:last] = np.einsum("ij,ij->i", seg, seg)
    span = max(1, length // hop)
    csum = np.concatenate(([0.0], np.cumsum(energy)))
    return csum[span:] - csum[:-span], hop


def _analysis_window(x: np.ndarray, length: int, margin: int, sample_rate: int) -> int:
    """Start of the analysis stretch of ``x``: the most energetic one, preferably ``margin`` from both ends.

    A stretch at least ``margin`` samples from either end faces the other signal at every lag
    within ``±margin`` (wide searches: a stretch near the start of the reference has no
    counterpart in a degraded copy that starts later in the music). It is taken unless it has
    less than a quarter of the energy of the most energetic stretch anywhere.
    """
    if length >= x.shape[0]:
        return 0
    windows, hop = _window_energies(x, length, sample_rate)
    best = int(np.argmax(windows))
    lo = -(-margin // hop)
    hi = min(windows.shape[0] - 1, (x.shape[0] - margin - length) // hop)
    if margin <= 0 or hi < lo or best in range(lo, hi + 1):
        return best * hop
    inner = lo + int(np.argmax(windows[lo : hi + 1]))
    return (inner if windows[inner] >= 0.25 * windows[best] else best) * hop


def _parabolic(y: np.ndarray, k: int) -> float:
    """Sub-sample offset in [-0.5, 0.5] of the peak at index ``k`` from a parabola through 3 points."""
    if k <= 0 or k >= y.shape[0] - 1:
        return 0.0
    ym, y0, yp = y[k - 1], y[k], y[k + 1]
    denom = ym - 2 * y0 + yp
    if not np.isfinite(denom) or denom >= 0:
        return 0.0
    return float(np.clip(0.5 * (ym - yp) / denom, -0.5, 0.5))


def _decimate(x: np.ndarray, factor: int, sample_rate: int) -> np.ndarray:
    """``x`` low-passed and decimated by ``factor`` (soxr), float64; both signals get the same filter."""
    if factor == 1:
        return np.array(x, dtype=np.float64)  # a copy: the caller subtracts the mean in place
    import soxr

    y = soxr.resample(np.ascontiguousarray(x, dtype=np.float32), sample_rate, sample_rate / factor, quality="HQ")
    return np.asarray(y, dtype=np.float64)


# Transforms of at least this many points run two at a time (below, a thread hand-off costs more).
_PARALLEL_FFT = 1 << 16
_FFT_HELPER = None


def _fft_helper():
    """A one-thread pool for the second of two concurrent FFTs (None on a one-core machine)."""
    global _FFT_HELPER
    if _FFT_HELPER is None and (os.cpu_count() or 1) > 1:
        from concurrent.futures import ThreadPoolExecutor

        _FFT_HELPER = ThreadPoolExecutor(1, thread_name_prefix="deepaq-fft")
    return _FFT_HELPER


def _curves(r: np.ndarray, d: np.ndarray, offsets: np.ndarray, tight: bool = False,
            device=None) -> tuple[np.ndarray, np.ndarray]:
    """PHAT-beta and normalised cross-correlation of ``r`` against ``d`` at ``offsets``.

    ``c[j] = sum_n r[n] d[n + j]`` (linear, not circular, via one FFT pair); the NCC divides by the
    energies of exactly the samples that overlap at each offset. With ``tight``, the transform is
    only as long as the wanted offsets need (a circular correlation of that length equals the
    linear one there): about half the length for the fine pass, whose few offsets span tens of
    samples. The NCC is the same either way; PHAT's whitening sees a different frequency grid.
    ``device``: a torch device to compute them on (see :mod:`deepaq_core.audio.on_device`).
    """
    import scipy.fft  # lazy: scipy.fft costs ~0.2 s to import, and most imports never align

    need = r.shape[0] + d.shape[0] - 1
    if tight and offsets.size:
        need = min(need, max(r.shape[0] + max(int(offsets.max()), 0), d.shape[0] + max(-int(offsets.min()), 0)))
    nfft = scipy.fft.next_fast_len(need, real=True)
    if device is not None:
        from .on_device import curves

        return curves(r, d, offsets, nfft, _PHAT_FLOOR, _PHAT_BETA, device)
    # The two forward and the two inverse transforms run in pairs, one in a helper thread
    # (pocketfft releases the GIL): the same values, in about 60 % of the time on 2 cores.
    helper = _fft_helper() if nfft >= _PARALLEL_FFT else None
    if helper is not None:
        fd = helper.submit(scipy.fft.rfft, d, nfft)
        fr = scipy.fft.rfft(r, nfft)
        cross = fd.result()
        cross *= np.conj(fr)  # in place, as numpy does for a temporary: the same rounding bit for bit
        del fr
        plain_future = helper.submit(scipy.fft.irfft, cross, nfft)
    else:
        cross = scipy.fft.rfft(d, nfft) * np.conj(scipy.fft.rfft(r, nfft))
        plain_future = None
    magnitude = np.abs(cross)
    # a new array, not in place: the helper may still be reading ``cross``
    whitened = cross / np.maximum(magnitude, _PHAT_FLOOR * magnitude.mean() + 1e-300) ** _PHAT_BETA
    del magnitude
    phat = scipy.fft.irfft(whitened, nfft)
    del whitened
    plain = plain_future.result() if plain_future is not None else scipy.fft.irfft(cross, nfft)
    idx = np.mod(offsets, nfft)  # negative offsets wrap to the end of the buffer
    n_lo = np.maximum(0, -offsets)
    n_hi = np.minimum(r.shape[0], d.shape[0] - offsets)
    r_energy = np.concatenate(([0.0], np.cumsum(r * r)))
    d_energy = np.concatenate(([0.0], np.cumsum(d * d)))
    denom = np.sqrt((r_energy[n_hi] - r_energy[n_lo]) * (d_energy[n_hi + offsets] - d_energy[n_lo + offsets]))
    return phat[idx], plain[idx] / np.maximum(denom, 1e-300)


# Peaks within this fraction of the highest count as ties, and the smallest delay among them
# wins: periodic material (a repeated bar, a square-wave burst train) correlates almost as well
# one period away, and a constant phase shift flattens the true peak to the level of chance ones.
_TIE = 0.9


def _nearest_strong(curve: np.ndarray, lags: np.ndarray) -> int:
    """Index of the smallest |lag| whose curve value is within ``_TIE`` of the maximum."""
    top = float(np.max(curve))
    if not np.isfinite(top) or top <= 0:
        return int(np.argmax(curve))
    strong = np.flatnonzero(curve >= _TIE * top)
    return int(strong[np.argmin(np.abs(lags[strong]))])


def find_lag(
    reference: np.ndarray,
    degraded: np.ndarray,
    sample_rate: int,
    max_lag_s: float | None = None,
    max_analysis_s: float = 30.0,
    device=None,
) -> LagEstimate:
    """Estimate how late ``degraded`` is relative to ``reference``, and how sure that is.

    GCC-PHAT (with PHAT-beta weighting, beta = 0.8) over at most ``max_analysis_s`` seconds (the
    most energetic stretch of the reference, not simply the start, preferably one far enough from
    both ends to face the degraded signal at every searched lag), refined to sub-sample
    precision with a parabola through the peak. Whitening gives a sharp peak for codec output
    (band-limited, noisy) and keeps working when the degraded signal is dominated by other
    material (source-separation bleed), where plain correlation locks onto coincidences in the
    bass. When the PHAT peak does not stand out (less than 1.4 x any value outside its 1 ms main
    lobe) the plain normalised cross-correlation (NCC) decides instead, which copes better with
    a narrow-band signal in broadband noise. Peaks are found on absolute values: an inverted copy
    is aligned too, and flagged.

    Lags are searched within ``±max_lag_s``, or with ``max_lag_s=None`` within
    ``±max(10 s, 25 % of the longer signal)``; either way only lags at which at least half of
    the analysis stretch faces the degraded signal. When that stretch of the degraded signal
    exceeds about 0.5 Mi samples, a first pass runs on both signals decimated to fit (at least at
    1 kHz) and the full-rate search covers only two coarse steps either side of its best lag, on
    the middle 8 s of the analysis stretch.

    Parameters
    ----------
    reference, degraded : numpy.ndarray
        Mono signals, shape ``[N_ref]`` and ``[N_deg]``, at the same rate. Lengths may differ.
    sample_rate : int
        Rate of both signals, Hz.
    max_lag_s : float or None
        Largest lag searched, seconds (either sign); None for the automatic range.
    max_analysis_s : float
        Longest reference stretch correlated, seconds; bounds cost for long files.
    device : torch.device, optional
        Where to compute the cross-correlations (a scorer's GPU); None: numpy on the CPU.

    Returns
    -------
    LagEstimate
        Lag (samples, sub-sample precision), confidence, polarity and whether the lag is at the
        edge of the search. Lag 0 with confidence 0 when a signal is constant or no lag overlaps
        enough.

    Raises
    ------
    ValueError
        If a signal is not 1-D or is empty, or ``max_lag_s`` is negative or not finite.
    """
    ref = reference if isinstance(reference, ChannelMean) else np.asarray(reference)
    deg = degraded if isinstance(degraded, ChannelMean) else np.asarray(degraded)
    if ref.ndim != 1 or deg.ndim != 1:
        raise ValueError(f"estimate_lag needs 1-D signals, got {ref.shape} and {deg.shape}")
    if ref.shape[0] == 0 or deg.shape[0] == 0:
        raise ValueError("estimate_lag needs non-empty signals")
    n_ref, n_deg = ref.shape[0], deg.shape[0]
    max_lag = search_range(n_ref, n_deg, sample_rate, max_lag_s)

    # Analysis window on the reference, inside the span both signals cover (so a shorter
    # degraded file still has material facing the window).
    common = min(n_ref, n_deg)
    width = min(common, int(round(max_analysis_s * sample_rate)))
    start = _analysis_window(ref[:common], width, min(max_lag, (common - width) // 2), sample_rate)
    # Bound the range by the overlap: at lag l the window faces degraded[start + l : start + l + width].
    min_overlap = max(1, int(_MIN_OVERLAP * width))
    lo = max(-max_lag, min_overlap - start - width)
    hi = min(max_lag, n_deg - start - min_overlap)
    if lo > hi:
        logger.debug("estimate_lag: no lag in ±%d samples overlaps enough; returning 0", max_lag)
        return LagEstimate(0.0, 0.0)

    # Coarse pass. The degraded stretch starts a whole number of coarse steps from the window
    # (base), so coarse offset j is the lag base + j * factor.
    factor = max(1, math.ceil((hi - lo + width) / _COARSE_BUDGET))
    factor = min(factor, max(1, sample_rate // _MIN_COARSE_RATE))
    base = math.floor(lo / factor) * factor
    if start + base < 0:
        base = -(start // factor) * factor
    d_lo = start + base
    d_hi = min(n_deg, start + hi + width)
    r = _decimate(ref[start : start + width], factor, sample_rate)
    d = _decimate(deg[d_lo:d_hi], factor, sample_rate)
    r -= r.mean()  # a DC offset correlates with itself at every lag
    d -= d.mean()
    if not (np.any(r) and np.any(d)):
        logger.debug("estimate_lag: a signal is constant over the analysis window; returning 0")
        return LagEstimate(0.0, 0.0, max_lag=max(-lo, hi))

    offsets = np.arange(-((base - lo) // factor), (hi - base) // factor + 1)
    lags = base + offsets * factor
    n_lo = np.maximum(0, -offsets)
    n_hi = np.minimum(r.shape[0], d.shape[0] - offsets)
    keep = (lags >= lo) & (lags <= hi) & (n_hi - n_lo >= max(1, int(_MIN_OVERLAP * min(r.shape[0], d.shape[0]))))
    if not keep.any():
        logger.debug("estimate_lag: no lag in ±%d samples overlaps enough; returning 0", max_lag)
        return LagEstimate(0.0, 0.0, max_lag=max(-lo, hi))
    offsets, lags = offsets[keep], lags[keep]
    phat, ncc = _curves(r, d, offsets, device=device)
    abs_phat, abs_ncc = np.abs(phat), np.abs(ncc)

    k_phat = _nearest_strong(abs_phat, lags)
    # Peak dominance: PHAT peak against the best value outside its main lobe (±1 ms).
    lobe = max(2 * factor, int(round(0.001 * sample_rate)))
    outside = np.abs(lags - lags[k_phat]) > lobe
    runner_up = float(abs_phat[outside].max()) if outside.any() else 0.0
    peak = float(abs_phat[k_phat])
    dominant = peak > 0 and peak >= _PHAT_DOMINANCE * runner_up
    # No NCC veto on a dominant PHAT peak: with loud unrelated material (bleed) the NCC maximum
    # is often a spurious bass coincidence while PHAT is still right.
    method = "PHAT" if dominant else "NCC"
    k = k_phat if dominant else _nearest_strong(abs_ncc, lags)

    if factor == 1:
        curve, signed, best = (abs_phat, phat, k) if dominant else (abs_ncc, ncc, k)
        fine_lags, fine_ncc = lags, ncc
        at_edge = lags.shape[0] > 1 and k in (0, lags.shape[0] - 1)
    else:
        # Fine pass at the full rate around the coarse lag.
        f_lo = max(lo, int(lags[k]) - _REFINE_STEPS * factor)
        f_hi = min(hi, int(lags[k]) + _REFINE_STEPS * factor)
        # The coarse pass has found the region; the middle of the analysis stretch (at most
        # _FINE_MAX_S) pins it to the sample at a fraction of the cost of the whole stretch.
        f_width = min(width, int(round(_FINE_MAX_S * sample_rate)))
        f_start = start + (width - f_width) // 2
        g_lo = max(0, f_start + f_lo)
        g_hi = min(n_deg, f_start + f_hi + f_width)
        r = np.array(ref[f_start : f_start + f_width], dtype=np.float64)
        d = np.array(deg[g_lo:g_hi], dtype=np.float64)
        r -= r.mean()
        d -= d.mean()
        fine_lags = np.arange(f_lo, f_hi + 1)
        fine_phat, fine_ncc = _curves(r, d, fine_lags + f_start - g_lo, tight=True, device=device)
        signed = fine_phat if dominant else fine_ncc
        curve = np.abs(signed)
        best = int(np.argmax(curve))
        at_edge = hi > lo and int(fine_lags[best]) in (lo, hi)

    lag = float(fine_lags[best]) + _parabolic(curve, best)
    inverted = bool(signed[best] < 0)
    confidence = float(np.clip(abs(fine_ncc[best]), 0.0, 1.0)) if np.isfinite(fine_ncc[best]) else 0.0
    ratio = peak / runner_up if runner_up > 0 else math.inf
    logger.debug(
        "estimate_lag: %s lag %.2f samples @ %d Hz (search %d..%d, coarse step %d, PHAT peak/runner-up %.2f, "
        "NCC %.3f%s%s, window %.1f s from %.1f s)",
        method, lag, sample_rate, lo, hi, factor, ratio, confidence, ", inverted" if inverted else "",
        ", at the search edge" if at_edge else "", width / sample_rate, start / sample_rate,
    )  # fmt: skip
    return LagEstimate(lag, confidence, inverted=inverted, at_edge=bool(at_edge), peak_ratio=ratio,
                       max_lag=max(-lo, hi), method=method)


def estimate_lag(
    reference: np.ndarray,
    degraded: np.ndarray,
    sample_rate: int,
    max_lag_s: float | None = None,
    max_analysis_s: float = 30.0,
) -> tuple[float, float]:
    """Estimate how late ``degraded`` is relative to ``reference``: :func:`find_lag`'s lag and confidence.

    Parameters
    ----------
    reference, degraded : numpy.ndarray
        Mono signals, shape ``[N_ref]`` and ``[N_deg]``, at the same rate. Lengths may differ.
    sample_rate : int
        Rate of both signals, Hz.
    max_lag_s : float or None
        Largest lag searched, seconds (either sign); None (the default) searches
        ``±max(10 s, 25 % of the longer signal)``, bounded by the overlap.
    max_analysis_s : float
        Longest reference stretch correlated, seconds; bounds cost for long files.

    Returns
    -------
    lag : float
        Samples at ``sample_rate``, sub-sample precision; ``degraded[n + lag] ≈ reference[n]``
        (positive: degraded is late).
    confidence : float
        Absolute normalised correlation at the integer lag, 0..1 (1: identical up to gain and
        polarity; ~0: unrelated).
    """
    est = find_lag(reference, degraded, sample_rate, max_lag_s=max_lag_s, max_analysis_s=max_analysis_s)
    return est.lag, est.confidence


def estimate_alignment(
    reference: np.ndarray,
    degraded: np.ndarray,
    sample_rate: int,
    *,
    native_rate: int | None = None,
    max_lag_s: float | None = None,
    device=None,
) -> Alignment:
    """:func:`find_lag` as an :class:`Alignment` (with ``inverted`` and ``at_edge``).

    Parameters
    ----------
    reference, degraded : numpy.ndarray
        Mono signals at ``sample_rate``.
    sample_rate : int
        Their rate, Hz.
    native_rate : int or None
        The degraded file's own rate, for ``lag_native_samples`` (default: ``sample_rate``).
    max_lag_s : float or None
        Search range, seconds either way; None for the automatic range.
    device : torch.device, optional
        As for :func:`find_lag`.

    Returns
    -------
    Alignment
        ``estimated=True``.
    """
    est = find_lag(reference, degraded, sample_rate, max_lag_s=max_lag_s, device=device)
    native = sample_rate if native_rate is None else native_rate
    if est.at_edge:
        logger.warning(
            "The best delay (%.1f ms) lies at the edge of the ±%.1f s searched; the true delay may be larger.",
            est.lag * 1000.0 / sample_rate, est.max_lag / sample_rate,
        )  # fmt: skip
    return Alignment(
        lag_samples=int(round(est.lag)),
        lag_ms=est.lag * 1000.0 / sample_rate,
        lag_native_samples=int(round(est.lag * native / sample_rate)),
        estimated=True,
        confidence=est.confidence,
        inverted=est.inverted,
        at_edge=est.at_edge,
    )
