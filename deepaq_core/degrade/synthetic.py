"""Signal-level degradations with an intensity parameter (no external tools).

Every function takes a float signal ``x`` of shape ``[C, N]`` (or ``[N]``) at ``sr`` Hz and
returns ``(y, info)``: ``y`` float32 of the same shape, time-aligned with ``x`` (all filters
here are zero-phase or overlap-add with no delay), and ``info`` a JSON-serialisable dict of
what was done and measured. Random degradations take a ``seed``; ``None`` draws fresh entropy,
an int makes the output reproducible (and, for :func:`noise` and :func:`spectral_holes`, nests
the rungs of a ladder generated with one seed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .errors import DegradationError

logger = logging.getLogger(__name__)

Degradation = Callable[..., tuple[np.ndarray, dict]]

_MAX_HOLES = 256


def _as_2d(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """``x`` as float64 ``[C, N]`` (processing precision) and whether it was 1-D."""
    data = np.asarray(x, dtype=np.float64)
    if data.ndim == 1:
        return data[np.newaxis, :], True
    if data.ndim != 2 or data.shape[1] == 0:
        raise ValueError(f"x must have shape [C, N] or [N] with N > 0, got {np.shape(x)}")
    return data, False


def _out(y: np.ndarray, one_d: bool) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    return y[0] if one_d else y


def _stft_size(sr: int, seconds: float) -> int:
    """Power-of-two FFT size closest to ``seconds`` at ``sr`` (e.g. 2048 for 43 ms at 48 kHz)."""
    return int(2 ** max(6, round(np.log2(seconds * sr))))


def _stft(x: np.ndarray, sr: int, nperseg: int, noverlap: int, window: str = "hann") -> np.ndarray:
    """STFT of ``[C, N]`` -> complex ``[C, F, T]`` (scipy.signal.stft, zero-padded boundaries)."""
    import scipy.signal

    _, _, spec = scipy.signal.stft(x, fs=sr, window=window, nperseg=nperseg, noverlap=noverlap, axis=-1)
    return spec


def _istft(spec: np.ndarray, sr: int, nperseg: int, noverlap: int, length: int, window: str = "hann") -> np.ndarray:
    """Weighted overlap-add inverse of :func:`_stft`, trimmed to ``length`` samples -> ``[C, N]``."""
    import scipy.signal

    _, y = scipy.signal.istft(spec, fs=sr, window=window, nperseg=nperseg, noverlap=noverlap)
    y = np.asarray(y)
    if y.shape[-1] < length:
        y = np.pad(y, [(0, 0)] * (y.ndim - 1) + [(0, length - y.shape[-1])])
    return y[..., :length]


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x)))


def _db(ratio: float) -> float:
    return float(10 * np.log10(ratio)) if ratio > 0 else float("-inf")


# ----------------------------------------------------------------------------------- filters


def lowpass(x: np.ndarray, sr: int, cutoff_hz: float, order: int = 8) -> tuple[np.ndarray, dict]:
    """Band-limit like a codec's low-pass: zero-phase Butterworth.

    Parameters
    ----------
    x : numpy.ndarray
        ``[C, N]`` or ``[N]`` float at ``sr``.
    sr : int
        Hz.
    cutoff_hz : float
        -3 dB point of one pass, Hz (``sosfiltfilt`` runs the filter twice, so the response is
        -6 dB there and falls off at ``2 * order * 6`` dB/octave). At or above 0.49 ``sr`` the
        signal is returned unchanged.
    order : int
        Butterworth order of one pass.

    Returns
    -------
    y : numpy.ndarray
        float32, same shape as ``x``, no delay.
    info : dict
        ``cutoff_hz``, ``order``, ``identity`` (True when the cutoff was at or above Nyquist).
    """
    import scipy.signal

    data, one_d = _as_2d(x)
    if not cutoff_hz > 0:
        raise DegradationError(f"The low-pass cutoff must be a positive frequency in Hz, got {cutoff_hz}.")
    if cutoff_hz >= 0.49 * sr:
        return _out(data, one_d), {"cutoff_hz": float(cutoff_hz), "order": int(order), "identity": True}
    sos = scipy.signal.butter(int(order), float(cutoff_hz), btype="lowpass", fs=sr, output="sos")
    y = scipy.signal.sosfiltfilt(sos, data, axis=-1)
    return _out(y, one_d), {"cutoff_hz": float(cutoff_hz), "order": int(order), "identity": False}


def _coloured_noise(shape: tuple[int, int], sr: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise ``[C, N]``, white or pink (power density ~ 1/f from 20 Hz, none below).

    Pink noise is shaped in the frequency domain (hand-written: scipy has no coloured-noise
    generator, and FFT shaping gives an exact 1/f slope where IIR approximations ripple). The
    sub-20 Hz part is removed so inaudible rumble does not take a share of the noise power
    that defines the SNR.
    """
    white = rng.standard_normal(shape)
    if color == "white":
        return white
    spectrum = np.fft.rfft(white, axis=-1)
    freqs = np.fft.rfftfreq(shape[1], 1.0 / sr)
    gain = np.zeros_like(freqs)
    audible = freqs >= 20.0
    gain[audible] = (freqs[audible] / 20.0) ** -0.5
    return np.fft.irfft(spectrum * gain, n=shape[1], axis=-1)


def noise(
    x: np.ndarray, sr: int, snr_db: float, color: str = "white", seed: int | None = None
) -> tuple[np.ndarray, dict]:
    """Add Gaussian noise at an exact signal-to-noise ratio.

    Parameters
    ----------
    x : numpy.ndarray
        ``[C, N]`` or ``[N]`` float at ``sr``.
    sr : int
        Hz.
    snr_db : float
        ``10 log10(sum x^2 / sum noise^2)`` over the whole signal, all channels, dB. The noise
        is scaled to hit it exactly (to float32 rounding), independent in each channel.
    color : {"white", "pink"}
        Flat spectrum, or 1/f power density from 20 Hz.
    seed : int or None
        Noise seed.

    Returns
    -------
    y : numpy.ndarray
        float32, same shape as ``x``.
    info : dict
        ``snr_db``, ``color``, ``noise_rms_db`` (dBFS).
    """
    data, one_d = _as_2d(x)
    if color not in ("white", "pink"):
        raise DegradationError(f"Noise colour must be 'white' or 'pink', got '{color}'.")
    if not np.isfinite(snr_db):
        raise DegradationError(f"The noise SNR must be a finite number of dB, got {snr_db}.")
    n = _coloured_noise(data.shape, sr, color, np.random.default_rng(seed))
    target = _power(data) / 10 ** (snr_db / 10)
    n *= np.sqrt(target / max(_power(n), 1e-300))
    return _out(data + n, one_d), {"snr_db": float(snr_db), "color": color, "noise_rms_db": _db(target)}


def clipping(
    x: np.ndarray, sr: int, threshold: float | None = None, clip_ratio: float | None = None
) -> tuple[np.ndarray, dict]:
    """Hard-clip at a level given relative to the peak, or so that a fraction of samples clip.

    Parameters
    ----------
    x : numpy.ndarray
        ``[C, N]`` or ``[N]`` float at ``sr``.
    sr : int
        Hz (unused; kept for the common signature).
    threshold : float, optional
        Clip level as a fraction of the signal's absolute peak, in (0, 1]; 1 changes nothing.
    clip_ratio : float, optional
        Fraction of samples (all channels) that end up clipped, in [0, 1); the level is the
        ``1 - clip_ratio`` quantile of ``|x|``, which makes the same ratio comparably audible on
        dynamic and on already-limited material. Give exactly one of the two.

    Returns
    -------
    y : numpy.ndarray
        float32, same shape; ``|y| <= info["threshold_abs"]`` everywhere.
    info : dict
        ``threshold_abs`` (linear, full scale 1), ``threshold_db`` (re the peak),
        ``clipped_fraction`` (measured).
    """
    del sr
    data, one_d = _as_2d(x)
    if (threshold is None) == (clip_ratio is None):
        raise DegradationError("Clipping needs exactly one of 'threshold' and 'clip_ratio'.")
    peak = float(np.max(np.abs(data)))
    if threshold is not None:
        if not 0 < threshold <= 1:
            raise DegradationError(f"The clipping threshold must be within (0, 1] of the peak, got {threshold}.")
        level = threshold * peak
    else:
        ratio = float(clip_ratio)  # type: ignore[arg-type]
        if not 0 <= ratio < 1:
            raise DegradationError(f"The clip ratio must be within [0, 1), got {clip_ratio}.")
        level = float(np.quantile(np.abs(data), 1.0 - ratio)) if ratio > 0 else peak
    # float32 rounding of the output must not step past the level: clip at the float32 value
    # that does not exceed it.
    level32 = np.float32(level)
    if float(level32) > level:
        level32 = np.nextafter(level32, np.float32(0))
    y = np.clip(data, -float(level32), float(level32))
    clipped = float(np.mean(np.abs(data) > float(level32))) if peak > 0 else 0.0
    info = {
        "threshold_abs": float(level32),
        "threshold_db": _db((float(level32) / peak) ** 2) if peak > 0 else 0.0,
        "clipped_fraction": clipped,
    }
    return _out(y, one_d), info


def bitdepth(
    x: np.ndarray, sr: int, bits: int, dither: str = "tpdf", seed: int | None = None
) -> tuple[np.ndarray, dict]:
    """Requantise to fewer bits (full scale ±1), with or without TPDF dither.

    Parameters
    ----------
    x : numpy.ndarray
        ``[C, N]`` or ``[N]`` float at ``sr``.
    sr : int
        Hz (unused).
    bits : int
        Word length, 2-24. Step ``q = 2 ** (1 - bits)``; mid-tread rounding; output clipped to
        ``[-1, 1 - q]`` like a two's-complement integer.
    dither : {"tpdf", "none"}
        Triangular dither of ±1 LSB before rounding: the error becomes signal-independent
        noise of power ``q^2 / 4`` (``q^2 / 12`` rounding + ``q^2 / 6`` dither). ``"none"``
        gives ``q^2 / 12`` for busy signals but distortion correlated with the signal for quiet
        or simple ones (the audible artefact of truncation).
    seed : int or None
        Dither seed.

    Returns
    -------
    y : numpy.ndarray
        float32 multiples of ``q``, same shape.
    info : dict
        ``bits``, ``dither``, ``step`` (q), ``error_rms_db`` (measured, dBFS).
    """
    del sr
    data, one_d = _as_2d(x)
    if int(bits) != bits or not 2 <= int(bits) <= 24:
        raise DegradationError(f"The bit depth must be a whole number of bits from 2 to 24, got {bits}.")
    if dither not in ("tpdf", "none"):
        raise DegradationError(f"Dither must be 'tpdf' or 'none', got '{dither}'.")
    q = 2.0 ** (1 - int(bits))
    scaled = data / q
    if dither == "tpdf":
        rng = np.random.default_rng(seed)
        scaled = scaled + rng.random(data.shape) - rng.random(data.shape)
    y = np.clip(np.round(scaled) * q, -1.0, 1.0 - q)
    return _out(y, one_d), {
        "bits": int(bits),
        "dither": dither,
        "step": q,
        "error_rms_db": _db(_power(y - data)),
    }


# ----------------------------------------------------------------------- STFT-domain artefacts


def spectral_holes(
    x: np.ndarray,
    sr: int,
    n_holes: int,
    width_oct: float = 1 / 3,
    duty: float = 1.0,
    seed: int | None = None,
) -> tuple[np.ndarray, dict]:
    """Remove bands from the spectrum (band dropout), statically or switching over time.

    Low-bitrate codecs zero whole scale-factor bands when bits run out ("spectral holes",
    "birdies" when they switch). Here the STFT bins of ``n_holes`` bands are zeroed and the
    signal rebuilt by overlap-add (``scipy.signal.stft``/``istft``, Hann, 75 % overlap, ~43 ms
    frames), which is the identity when nothing is masked.

    Parameters
    ----------
    x : numpy.ndarray
        ``[C, N]`` or ``[N]`` float at ``sr``.
    sr : int
        Hz.
    n_holes : int
        Number of bands removed, 0-256 (0 = identity). Centres are drawn log-uniformly in
        150 Hz .. min(16 kHz, 0.45 sr) from a fixed sequence per seed, so the holes of
        ``n_holes = k`` are a subset of those of ``k + 1``; bands may overlap.
    width_oct : float
        Width of each band in octaves (1/3 = a third-octave, about a critical band above
        500 Hz), so a hole is about as audible at 200 Hz as at 8 kHz.
    duty : float
        Fraction of time each hole is open, in (0, 1], switched in runs of about 50 ms;
        1 = static band dropout.
    seed : int or None
        Positions and switching pattern (same channels, same holes).

    Returns
    -------
    y : numpy.ndarray
        float32, same shape.
    info : dict
        ``n_holes``, ``width_oct``, ``duty``, ``centres_hz`` (list), ``removed_db`` (energy
        removed relative to the input, dB).
    """
    data, one_d = _as_2d(x)
    if int(n_holes) != n_holes or not 0 <= n_holes <= _MAX_HOLES:
        raise DegradationError(
            f"The number of spectral holes must be a whole number from 0 to {_MAX_HOLES}, got {n_holes}."
        )
    if not width_oct > 0:
        raise DegradationError(f"The hole width must be a positive number of octaves, got {width_oct}.")
    if not 0 < duty <= 1:
        raise DegradationError(f"The hole duty cycle must be within (0, 1], got {duty}.")
    n_holes = int(n_holes)
    if n_holes == 0:
        return _out(data, one_d), {"n_holes": 0, "width_oct": float(width_oct), "duty": float(duty),
                                   "centres_hz": [], "removed_db": float("-inf")}  # fmt: skip
    nperseg = _stft_size(sr, 0.043)
    noverlap = 3 * nperseg // 4
    spec = _stft(data, sr, nperseg, noverlap)
    freqs = np.fft.rfftfreq(nperseg, 1.0 / sr)
    lo, hi = np.log2(150.0), np.log2(min(16000.0, 0.45 * sr))
    # A fixed-length draw, of which the first n_holes are used, keeps ladders nested.
    rng = np.random.default_rng(seed)
    sequence = rng.uniform(lo, hi, size=_MAX_HOLES)
    switching_seed = int(rng.integers(2**63))
    centres = 2.0 ** sequence[:n_holes]
    frames = spec.shape[-1]
    run = max(1, int(round(0.05 * sr / (nperseg - noverlap))))  # frames per on/off decision
    mask = np.ones(spec.shape[-2:])
    for h, fc in enumerate(centres):
        band = (freqs >= fc * 2 ** (-width_oct / 2)) & (freqs <= fc * 2 ** (width_oct / 2))
        if duty < 1:
            # One child generator per hole: hole h switches identically whatever n_holes is.
            states = np.random.default_rng([switching_seed, h]).random(-(-frames // run)) < duty
            active = np.repeat(states, run)[:frames]
        else:
            active = np.ones(frames, dtype=bool)
        mask[np.ix_(band, active)] = 0.0
    y = _istft(spec * mask, sr, nperseg, noverlap, data.shape[1])
    info = {
        "n_holes": n_holes,
        "width_oct": float(width_oct),
        "duty": float(duty),
        "centres_hz": [float(c) for c in centres],
        "removed_db": _db(_power(y - data) / max(_power(data), 1e-300)),
    }
    return _out(y, one_d), info


def _band_edges(nbins: int, sr: int, nperseg: int) -> np.ndarray:
    """Bin indices delimiting ~third-octave bands above 200 Hz (one band below), like codec
    scale-factor bands that follow the ear's critical bands."""
    freqs = [0.0, 200.0]
    while freqs[-1] * 2 ** (1 / 3) < sr / 2:
        freqs.append(freqs[-1] * 2 ** (1 / 3))
    edges = np.unique(np.round(np.array(freqs) * nperseg / sr).astype(int))
    edges = edges[(edges > 0) & (edges < nbins)]
    return np.concatenate(([0], edges, [nbins]))


def pre_echo(x: np.ndarray, sr: int, snr_db: float, window_ms: float = 43.0) -> tuple[np.ndarray, dict]:
    """Codec-like quantisation in a long-window transform, so noise spreads ahead of attacks.

    A transform codec quantises each frame's coefficients with a step set by the frame's
    spectrum; after the inverse transform the quantisation noise covers the whole window,
    including the part before an attack that sits late in the window: the classic pre-echo.
    Reproduced with a sine-window STFT at 50 % overlap (the MDCT's window and hop, at
    ``window_ms``), each frame's coefficients rounded (real and imaginary parts) with a step
    per third-octave band such that the band's signal-to-quantisation-noise ratio is ``snr_db``.
    Coefficients below half a step become zero, so low ratios also punch codec-like holes.

    Parameters
    ----------
    x : numpy.ndarray
        ``[C, N]`` or ``[N]`` float at ``sr``.
    sr : int
        Hz.
    snr_db : float
        Per-band, per-frame signal-to-quantisation-noise ratio, dB (>= 60: inaudible;
        0: noise as loud as the signal in every band).
    window_ms : float
        Transform window, ms (rounded to a power-of-two length): how far ahead noise can reach.
        Deterministic: the same input gives the same output.

    Returns
    -------
    y : numpy.ndarray
        float32, same shape.
    info : dict
        ``snr_db``, ``window_samples``, ``noise_db`` (error energy re the signal, dB).
    """
    data, one_d = _as_2d(x)
    if not np.isfinite(snr_db):
        raise DegradationError(f"The pre-echo SNR must be a finite number of dB, got {snr_db}.")
    if not window_ms > 0:
        raise DegradationError(f"The transform window must be a positive number of ms, got {window_ms}.")
    nperseg = _stft_size(sr, window_ms / 1000.0)
    noverlap = nperseg // 2
    window = "cosine"  # scipy's "cosine" is the sine window: MDCT-like, power-complementary at 50 %
    spec = _stft(data, sr, nperseg, noverlap, window)
    edges = _band_edges(spec.shape[-2], sr, nperseg)
    step_scale = np.sqrt(6.0) * 10 ** (-snr_db / 20)  # rounding re+im: noise power step^2 / 6
    out = np.empty_like(spec)
    for a, b in zip(edges[:-1], edges[1:]):
        band = spec[:, a:b, :]
        rms = np.sqrt(np.mean(np.abs(band) ** 2, axis=1, keepdims=True))  # [C, 1, T]
        step = np.where(rms > 0, rms * step_scale, 1.0)
        re = np.round(band.real / step) * step
        im = np.round(band.imag / step) * step
        out[:, a:b, :] = np.where(rms > 0, re + 1j * im, band)
    y = _istft(out, sr, nperseg, noverlap, data.shape[1], window)
    return _out(y, one_d), {
        "snr_db": float(snr_db),
        "window_samples": int(nperseg),
        "noise_db": _db(_power(y - data) / max(_power(data), 1e-300)),
    }


def separation(
    target: np.ndarray,
    interferer: np.ndarray,
    sr: int,
    quality: float,
    interferer_db: float = 0.0,
    seed: int | None = None,
) -> tuple[np.ndarray, dict]:
    """Imitate a source-separation estimate of ``target`` from ``target + interferer``.

    The mixture's STFT (Hann, ~46 ms, 75 % overlap) is multiplied by a mask that becomes worse
    as ``quality`` drops, with ``d = 1 - quality``:

    * the oracle ratio mask ``M0 = sqrt(|T|^2 / (|T|^2 + |I|^2))`` (one mask for all channels);
    * blurred in time and frequency (Gaussian, ``4 d`` frames x ``3 d`` bins): the mask no longer
      resolves harmonics and onsets, so interference leaks between target partials (bleed) and
      target detail is attenuated (missing energy);
    * perturbed by independent Gaussian noise in the logit domain (std ``2.5 d``) and sharpened
      (slope ``1 + 3 d``) towards a binary mask: isolated time-frequency cells switch on and off,
      which is the "musical noise" of real separators;
    * given a floor of ``0.2 d^2`` (constant leakage);
    * cross-faded with the perfect target by ``w = min(1, 4 d)``, so ``quality = 1`` returns the
      target exactly and the ladder starts at the clean signal.

    Parameters
    ----------
    target : numpy.ndarray
        ``[C, N]`` or ``[N]`` float at ``sr``: the clean source (the reference).
    interferer : numpy.ndarray
        The other sources, ``[C, N]``, ``[1, N]`` or ``[N]`` (broadcast over channels),
        tiled or cut to ``N`` samples.
    sr : int
        Hz.
    quality : float
        1 = perfect, 0 = worst, in [0, 1].
    interferer_db : float
        Interferer level re the target's RMS, dB.
    seed : int or None
        Mask noise seed.

    Returns
    -------
    y : numpy.ndarray
        float32 estimate, same shape as ``target``.
    info : dict
        ``quality``, ``interferer_db``, ``bleed_db`` (interferer energy let through, re the
        target, dB), ``missing_db`` (target energy lost, re the target, dB).
    """
    import scipy.ndimage

    data, one_d = _as_2d(target)
    if not 0 <= quality <= 1:
        raise DegradationError(f"The separation quality must be within [0, 1], got {quality}.")
    other = np.asarray(interferer, dtype=np.float64)
    if other.ndim == 1:
        other = other[np.newaxis, :]
    if other.ndim != 2 or other.shape[1] == 0 or other.shape[0] not in (1, data.shape[0]):
        raise DegradationError(
            f"The interferer must have 1 or {data.shape[0]} channels and some samples, got shape {other.shape}."
        )
    n = data.shape[1]
    if other.shape[1] < n:
        other = np.tile(other, (1, -(-n // other.shape[1])))
    other = np.broadcast_to(other[:, :n], data.shape)
    p_t, p_i = _power(data), _power(other)
    if p_i > 0 and p_t > 0:
        other = other * np.sqrt(p_t / p_i * 10 ** (interferer_db / 10))

    d = 1.0 - float(quality)
    nperseg = _stft_size(sr, 0.046)
    noverlap = 3 * nperseg // 4
    spec_t = _stft(data, sr, nperseg, noverlap)
    spec_i = _stft(other, sr, nperseg, noverlap)
    pow_t = np.sum(np.abs(spec_t) ** 2, axis=0)  # [F, T], one mask for all channels
    pow_i = np.sum(np.abs(spec_i) ** 2, axis=0)
    mask = np.sqrt(pow_t / np.maximum(pow_t + pow_i, 1e-30))
    if d > 0:
        mask = scipy.ndimage.gaussian_filter(mask, sigma=(3.0 * d, 4.0 * d), mode="nearest")
        logit = np.log(np.clip(mask, 1e-4, 1 - 1e-4) / np.clip(1 - mask, 1e-4, 1 - 1e-4))
        logit = (logit + 2.5 * d * np.random.default_rng(seed).standard_normal(logit.shape)) * (1 + 3 * d)
        floor = 0.2 * d**2
        mask = floor + (1 - floor) * (1 / (1 + np.exp(-logit)))
    w = min(1.0, 4.0 * d)
    # Linear in the sources: the estimate is (1 - w + w M) T + w M I, so bleed and loss separate.
    gain_t = (1 - w) + w * mask
    gain_i = w * mask
    target_part = _istft(spec_t * gain_t, sr, nperseg, noverlap, n)
    bleed = _istft(spec_i * gain_i, sr, nperseg, noverlap, n)
    y = target_part + bleed
    info = {
        "quality": float(quality),
        "interferer_db": float(interferer_db),
        "bleed_db": _db(_power(bleed) / max(p_t, 1e-300)),
        "missing_db": _db(_power(data - target_part) / max(p_t, 1e-300)),
    }
    return _out(y, one_d), info


# ------------------------------------------------------------------------------------- chains


def combine(steps: Sequence[tuple[str, dict[str, Any]] | Degradation]) -> Degradation:
    """Chain degradations into one.

    Parameters
    ----------
    steps : sequence
        Each either ``(kind, params)`` with ``kind`` a registered family or degradation name
        (see :data:`deepaq_core.degrade.FAMILIES`) and ``params`` its keyword arguments, or a
        callable ``f(x, sr) -> (y, info)``. Applied in order.

    Returns
    -------
    callable
        ``f(x, sr) -> (y, info)`` with ``info = {"kind": "combine", "steps": [info_1, ...]}``.

    Examples
    --------
    >>> chain = combine([("lowpass", {"cutoff_hz": 8000}), ("mp3", {"bitrate_kbps": 64})])
    >>> y, info = chain(x, 48000)  # doctest: +SKIP
    """
    resolved = list(steps)
    if not resolved:
        raise DegradationError("A combined degradation needs at least one step.")

    def chain(x: np.ndarray, sr: int) -> tuple[np.ndarray, dict]:
        from .families import degrade  # lazy: families imports this module

        y = x
        infos = []
        for step in resolved:
            if callable(step):
                y, info = step(y, sr)
            else:
                kind, params = step
                y, info = degrade(y, sr, kind, **dict(params))
            infos.append(info)
        return y, {"kind": "combine", "steps": infos}

    return chain
