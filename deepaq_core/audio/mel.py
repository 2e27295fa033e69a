"""Mel-scale filterbanks (numpy only), shared by the compact model's front end and the teacher labels."""

from __future__ import annotations

import numpy as np


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float, f_max: float) -> np.ndarray:
    """Triangular HTK-mel filterbank, float64, shape [n_mels, n_fft // 2 + 1].

    Written here (a dozen lines) rather than imported from torchaudio or librosa: torchaudio's
    wheels must match the exact torch build, and the degradation labels
    (:mod:`deepaq_core.degrade.teacher`) must not need torch at all.
    """

    def hz_to_mel(f: float) -> float:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    mels = np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2, dtype=np.float64)
    hz = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=np.float64)
    lower, centre, upper = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    up = (bins[None, :] - lower) / (centre - lower)
    down = (upper - bins[None, :]) / (upper - centre)
    return np.clip(np.minimum(up, down), 0.0, None)
