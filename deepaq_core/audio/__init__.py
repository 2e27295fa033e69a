"""Audio input for DeePAQ: reading, validation, resampling, alignment and loudness matching.

Typical use::

    ref = load_audio("ref.wav", target_rate=24000)
    deg = load_audio("deg.m4a", target_rate=24000)
    pair = prepare_pair(ref, deg)          # aligned, equal length, loudness-matched

All user-caused problems (missing/undecodable/silent/too-short files) raise
:class:`deepaq_core.errors.AudioError` with a one-sentence message naming the file.
"""

from .align import Alignment, estimate_lag
from .buffer import AudioBuffer, AudioInfo
from .io import file_sha256, load_audio, read_info
from .loudness import integrated_loudness
from .pair import PreparedPair, prepare_pair
from .resample import resample
from .validate import validate_signal

__all__ = [
    "Alignment",
    "AudioBuffer",
    "AudioInfo",
    "PreparedPair",
    "estimate_lag",
    "file_sha256",
    "integrated_loudness",
    "load_audio",
    "prepare_pair",
    "read_info",
    "resample",
    "validate_signal",
]
