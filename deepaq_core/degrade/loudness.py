"""Loudness normalisation for the training front end (BS.1770 through deepaq_core.audio)."""

from __future__ import annotations

import logging

import numpy as np

from deepaq_core.audio import integrated_loudness
from deepaq_core.audio.loudness import rms_db

logger = logging.getLogger(__name__)

# Same bound as prepare_pair's loudness matching: beyond it the input is near-silence or not
# programme material, and a larger gain would only amplify noise.
_MAX_GAIN_DB = 60.0
# BS.1770 loudness of full-scale-ish programme reads about this much below its plain RMS level
# (K-weighting boosts highs, cuts lows, -0.691 dB offset); used only when gating leaves nothing.
_RMS_TO_LUFS_DB = -0.691


def normalise_loudness(x: np.ndarray, sr: int, target_lufs: float = -23.0) -> np.ndarray:
    """Scale a signal to a target integrated loudness.

    Parameters
    ----------
    x : numpy.ndarray
        float, shape ``[C, N]`` (or ``[N]``), full scale 1.0, at ``sr``.
    sr : int
        Hz.
    target_lufs : float
        Target ITU-R BS.1770-4 integrated loudness, LUFS (-23 = EBU R 128).

    Returns
    -------
    numpy.ndarray
        float32, same shape, ``x`` times one gain. Not clipped: samples may exceed 1.0 when a
        quiet, peaky signal is raised (the training front end works in float).

    Notes
    -----
    Signals shorter than one 400 ms gating block, or entirely under the -70 LUFS absolute
    gate, are scaled by their RMS level instead (``LUFS ~= RMS dBFS - 0.691``). All-zero input is
    returned unchanged. The gain is clamped to ±60 dB.
    """
    data = np.asarray(x, dtype=np.float32)
    if data.size == 0 or not np.any(data):
        return data.copy()
    measured = float("-inf")
    if data.shape[-1] >= int(np.ceil(0.4 * sr)):
        measured = integrated_loudness(data, sr)
    if not np.isfinite(measured):
        level = rms_db(data)
        if not np.isfinite(level):
            return data.copy()
        measured = level + _RMS_TO_LUFS_DB
    gain_db = float(np.clip(target_lufs - measured, -_MAX_GAIN_DB, _MAX_GAIN_DB))
    logger.debug("normalise_loudness: %.2f LUFS -> %.2f LUFS (gain %.2f dB)", measured, target_lufs, gain_db)
    return (data * np.float32(10 ** (gain_db / 20))).astype(np.float32, copy=False)
