"""The two simple baselines every evaluation report shows.

- :func:`aligned_si_sdr`: scale-invariant SDR (Le Roux et al., ICASSP 2019) of the degraded
  file against the reference after time alignment, at the reference's native rate, mono
  downmix. dB, higher = better.
- :func:`aligned_logmel_l1`: the aligned, loudness-normalised 64-band log-mel L1 distance at
  24 kHz, mono downmix. This is :func:`deepaq_core.degrade.teacher.logmel_distance` (the one
  implementation of that distance in the project; it normalises both signals to -23 LUFS
  itself) applied after the pair has been aligned with :func:`deepaq_core.audio.prepare_pair`
  (GCC-PHAT, up to ±1 s). dB, lower = better.

Both align with the library's own pair preparation, so the baselines see the same lag as the
DeePAQ models do. A learned metric that does not beat them has not learned much.
"""

from __future__ import annotations

import math

import numpy as np

# Identical (or bit-identical up to gain) signals have infinite SI-SDR. A finite cap keeps means
# and correlations defined; 100 dB is beyond 16-bit quantisation noise (~98 dB), so no real
# degradation reaches it.
SI_SDR_CAP_DB = 100.0
LOGMEL_RATE = 24000
MAX_LAG_S = 1.0


def si_sdr(reference: np.ndarray, degraded: np.ndarray, cap_db: float = SI_SDR_CAP_DB) -> float:
    """Scale-invariant signal-to-distortion ratio of two aligned signals, dB.

    Both signals are made zero-mean; the reference is scaled by the least-squares gain
    ``alpha = <d, r> / <r, r>`` and ``SI-SDR = 10 log10(|alpha r|^2 / |d - alpha r|^2)``.

    Parameters
    ----------
    reference, degraded : numpy.ndarray
        Equal-length 1-D signals (already aligned), any scale.
    cap_db : float
        Upper bound of the result (identical signals would give +inf).

    Returns
    -------
    float
        dB, at most ``cap_db``; NaN for an all-zero reference.
    """
    r = np.asarray(reference, dtype=np.float64).ravel()
    d = np.asarray(degraded, dtype=np.float64).ravel()
    if r.shape != d.shape:
        raise ValueError(f"si_sdr needs equal lengths, got {r.size} and {d.size}")
    r = r - r.mean()
    d = d - d.mean()
    rr = float(r @ r)
    if rr == 0.0:
        return math.nan
    target = (float(d @ r) / rr) * r
    noise = d - target
    tt, nn = float(target @ target), float(noise @ noise)
    if nn == 0.0:
        return float(cap_db)
    if tt == 0.0:
        return -float(cap_db)
    return float(min(cap_db, 10.0 * math.log10(tt / nn)))


def _aligned_mono(reference: str, degraded: str, rate: int | None):
    """Load both files as mono at ``rate`` (None: the reference's native rate) and align them."""
    from deepaq_core.audio import load_audio, prepare_pair

    ref = load_audio(reference, target_rate=rate, channels="mono")
    deg = load_audio(degraded, target_rate=ref.sample_rate, channels="mono")
    # Loudness matching is left out on purpose: SI-SDR is scale-invariant and the log-mel
    # distance normalises both signals itself.
    pair = prepare_pair(ref, deg, align=True, match_loudness=False, max_lag_s=MAX_LAG_S)
    return pair.reference.samples[0], pair.degraded.samples[0], ref.sample_rate


def aligned_si_sdr(reference: str, degraded: str) -> float:
    """SI-SDR (dB, higher = better) of a degraded file against its reference after alignment.

    Parameters
    ----------
    reference, degraded : str
        Audio files. Both are mixed to mono; the degraded file is resampled to the reference's
        native rate, aligned (integer lag at that rate) and trimmed to the overlap.

    Returns
    -------
    float
        :func:`si_sdr` of the aligned pair, capped at :data:`SI_SDR_CAP_DB`.
    """
    r, d, _ = _aligned_mono(reference, degraded, None)
    return si_sdr(r, d)


def aligned_logmel_l1(reference: str, degraded: str) -> float:
    """Aligned, loudness-normalised 64-band log-mel L1 distance at 24 kHz (dB, lower = better).

    Parameters
    ----------
    reference, degraded : str
        Audio files, mixed to mono and resampled to 24 kHz, aligned and trimmed to the overlap.

    Returns
    -------
    float
        :func:`deepaq_core.degrade.teacher.logmel_distance` of the aligned pair (each side
        normalised to -23 LUFS; 64 HTK-mel bands 50 Hz - 12 kHz; mean |dB difference|).
    """
    from deepaq_core.degrade.teacher import logmel_distance

    r, d, sr = _aligned_mono(reference, degraded, LOGMEL_RATE)
    return logmel_distance(r, d, sr, align=False)
