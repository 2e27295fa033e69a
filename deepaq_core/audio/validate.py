"""Checks that decoded audio is usable for scoring, with one-sentence user-facing errors."""

from __future__ import annotations

import os

import numpy as np

from deepaq_core.errors import AudioError

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000
MAX_CHANNELS = 8
MIN_DURATION_S = 0.5
# -120 dBFS: below this a file is digital silence (or dither-free near-silence); no meaningful
# embedding or loudness can be measured from it.
SILENCE_PEAK = 1e-6

# Samples checked per step, so a 60-minute file never needs a full-size boolean/abs temporary.
_CHUNK = 1 << 20


def display_name(name: str | os.PathLike) -> str:
    """Return the basename used to name a file in error messages.

    Parameters
    ----------
    name : str or os.PathLike
        A path or a bare label such as ``"reference"``.

    Returns
    -------
    str
        The last path component (trailing separators ignored), or ``name`` itself if it has none.
    """
    text = os.fspath(name)
    base = os.path.basename(os.path.normpath(text)) if text else text
    return base or text


def check_format(sample_rate: int, channels: int, name: str | os.PathLike) -> None:
    """Reject sample rates outside 8-192 kHz and more than 8 channels.

    Parameters
    ----------
    sample_rate : int
        Sample rate, Hz.
    channels : int
        Channel count.
    name : str or os.PathLike
        File path or label used in the message.

    Raises
    ------
    AudioError
        If the rate or channel count is unsupported.
    """
    label = display_name(name)
    if not MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"'{label}' has a sample rate of {int(sample_rate)} Hz, but only "
            f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz is supported."
        )
    if channels > MAX_CHANNELS:
        raise AudioError(f"'{label}' has {channels} channels, but at most {MAX_CHANNELS} are supported.")
    if channels < 1:
        raise AudioError(f"'{label}' has no audio channels.")


def check_duration(num_samples: int, sample_rate: int, name: str | os.PathLike) -> None:
    """Reject empty signals and signals shorter than 0.5 s.

    Parameters
    ----------
    num_samples : int
        Samples per channel.
    sample_rate : int
        Sample rate, Hz.
    name : str or os.PathLike
        File path or label used in the message.

    Raises
    ------
    AudioError
        If there are no samples or fewer than 0.5 s of them.
    """
    label = display_name(name)
    if num_samples <= 0:
        raise AudioError(f"'{label}' contains no audio samples.")
    duration = num_samples / sample_rate
    if duration < MIN_DURATION_S:
        shown = f"{duration:.2f}"
        if float(shown) >= MIN_DURATION_S:  # 0.498 s must not read as "too short (0.50 s)"
            shown = f"{duration:.3f}"
        raise AudioError(f"'{label}' is too short ({shown} s); at least {MIN_DURATION_S} s is needed.")


def check_finite_block(block: np.ndarray, name: str | os.PathLike) -> float:
    """Raise if a block holds NaN/Inf; otherwise return its absolute peak.

    Parameters
    ----------
    block : numpy.ndarray
        Float samples of any shape.
    name : str or os.PathLike
        File path or label used in the message.

    Returns
    -------
    float
        ``max(abs(block))`` (0.0 for an empty block), linear full-scale units.

    Raises
    ------
    AudioError
        If any sample is NaN or infinite.
    """
    if block.size == 0:
        return 0.0
    peak = float(np.max(np.abs(block)))
    # max(|x|) is NaN if any NaN is present and Inf if any Inf is: one reduction checks both.
    if not np.isfinite(peak):
        raise AudioError(f"'{display_name(name)}' contains NaN or infinite samples.")
    return peak


def check_not_silent(peak: float, name: str | os.PathLike) -> None:
    """Reject a signal whose absolute peak is below -120 dBFS.

    Parameters
    ----------
    peak : float
        Absolute sample peak, linear full-scale units.
    name : str or os.PathLike
        File path or label used in the message.

    Raises
    ------
    AudioError
        If ``peak < 1e-6``.
    """
    if peak < SILENCE_PEAK:
        raise AudioError(f"'{display_name(name)}' is silent; a quality score needs a signal.")


def validate_signal(samples: np.ndarray, sample_rate: int, name: str | os.PathLike) -> None:
    """Check that a decoded signal can be scored.

    Parameters
    ----------
    samples : numpy.ndarray
        Float samples, shape ``[C, N]`` or ``[N]``, nominally in [-1, 1]. Integer PCM arrays are
        accepted and judged relative to their full scale.
    sample_rate : int
        Sample rate of ``samples``, Hz.
    name : str or os.PathLike
        File path (only the basename is shown) or label naming the signal in messages.

    Raises
    ------
    AudioError
        With a one-sentence message if the rate is outside 8-192 kHz, there are more than 8
        channels, the signal is empty or shorter than 0.5 s, contains NaN/Inf, or peaks below
        -120 dBFS (silence).
    ValueError
        If ``samples`` is not 1-D or 2-D (a programming error, not a user one).
    """
    arr = np.asarray(samples)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise ValueError(f"samples must have shape [C, N] or [N], got {arr.shape}")
    channels, num_samples = arr.shape
    check_format(sample_rate, channels, name)
    check_duration(num_samples, sample_rate, name)

    scale = 1.0
    if np.issubdtype(arr.dtype, np.integer):
        scale = float(np.iinfo(arr.dtype).max)
    peak = 0.0
    for start in range(0, num_samples, _CHUNK):
        block = arr[:, start : start + _CHUNK]
        if scale != 1.0:
            block = block.astype(np.float64) / scale
        peak = max(peak, check_finite_block(block, name))
    check_not_silent(peak, name)
