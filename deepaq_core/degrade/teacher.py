"""Teacher labels: a simple perceptual distance computed on a generated (reference, degraded) pair.

The ``teacher`` and ``hybrid`` label modes (see :mod:`deepaq_core.degrade.families`) use it in
place of a hand-set per-family label, so that labels of different families share one scale.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from deepaq_core.audio import estimate_lag
from deepaq_core.audio.mel import mel_filterbank

from .loudness import normalise_loudness

logger = logging.getLogger(__name__)

N_MELS = 64
_F_MIN = 50.0  # below ~50 Hz a 43 ms frame has too few FFT bins for 64 mel bands to stay non-empty
_F_MAX = 20000.0
# -80 dB floor on mel-band power of signals at -23 LUFS: where -23 LUFS plays at ~75-80 dB SPL
# this is near the threshold of hearing, so differences in inaudible near-silence (empty high
# bands, note tails) do not dominate the average. With -100 dB, white noise at 50 dB SNR scored
# like a 32 kbit/s MP3 on generated music; at -80 dB it scores like a 320 kbit/s one.
_FLOOR = 1e-8
_TARGET_LUFS = -23.0


@functools.lru_cache(maxsize=16)
def _mel_matrix(n_fft: int, sr: int) -> np.ndarray:
    """HTK mel filterbank ``[N_MELS, n_fft // 2 + 1]`` (float64), shared with the compact backbone."""
    f_max = min(_F_MAX, sr / 2.0)
    # Rounded through float32 as the model's copy is, so labels stay bit-identical to those the
    # shipped models were trained on.
    return mel_filterbank(n_fft, N_MELS, sr, _F_MIN, f_max).astype(np.float32).astype(np.float64)


def _log_mel(x: np.ndarray, sr: int, n_fft: int) -> np.ndarray:
    """Log-mel power in dB, ``[C, N_MELS, T]``: Hann STFT, 75 % overlap, ``scipy.signal.stft``."""
    import scipy.signal

    _, _, spec = scipy.signal.stft(x, fs=sr, window="hann", nperseg=n_fft, noverlap=3 * n_fft // 4, axis=-1)
    power = spec.real**2 + spec.imag**2  # [C, F, T]
    mel = np.einsum("mf,cft->cmt", _mel_matrix(n_fft, sr), power)
    return 10.0 * np.log10(mel + _FLOOR)


def logmel_distance(ref: np.ndarray, deg: np.ndarray, sr: int, align: bool = False) -> float:
    """Mean absolute log-mel difference between a reference and a degraded signal, in dB.

    Both signals are loudness-normalised to -23 LUFS (BS.1770) independently, so a pure gain
    change costs nothing; then 64 HTK-mel bands (50 Hz - min(20 kHz, sr/2)) of a ~43 ms Hann
    STFT with 75 % overlap are compared as ``mean |10 log10(P_ref + eps) - 10 log10(P_deg + eps)|``
    over bands, frames and channels, with ``eps = 1e-8`` (-80 dB, about the threshold of hearing).

    Parameters
    ----------
    ref, deg : numpy.ndarray
        float ``[C, N]`` or ``[N]`` at ``sr``. Cut to the shorter length. With equal channel
        counts channels are compared one to one, otherwise both are mixed to mono.
    sr : int
        Hz.
    align : bool
        Estimate and remove ``deg``'s delay (:func:`deepaq_core.audio.estimate_lag`, ±100 ms)
        first. Off by default: the generator's outputs are already aligned, and an estimate
        can only add error there.

    Returns
    -------
    float
        Distance in dB (0 for identical signals up to gain; larger = more different).
    """
    r = np.asarray(ref, dtype=np.float64)
    d = np.asarray(deg, dtype=np.float64)
    r = r[np.newaxis, :] if r.ndim == 1 else r
    d = d[np.newaxis, :] if d.ndim == 1 else d
    if r.shape[0] != d.shape[0]:
        r, d = r.mean(axis=0, keepdims=True), d.mean(axis=0, keepdims=True)
    if align:
        lag, _ = estimate_lag(r.mean(axis=0), d.mean(axis=0), sr, max_lag_s=0.1)
        shift = int(round(lag))
        d = d[:, shift:] if shift >= 0 else np.pad(d, ((0, 0), (-shift, 0)))
    n = min(r.shape[1], d.shape[1])
    r, d = r[:, :n], d[:, :n]
    r = normalise_loudness(r, sr, _TARGET_LUFS).astype(np.float64)
    d = normalise_loudness(d, sr, _TARGET_LUFS).astype(np.float64)
    n_fft = int(2 ** round(np.log2(0.043 * sr)))
    return float(np.mean(np.abs(_log_mel(r, sr, n_fft) - _log_mel(d, sr, n_fft))))
