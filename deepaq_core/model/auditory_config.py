"""Shape and constants of the auditory front end, without numpy or torch (the card schema imports it)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class AuditoryConfig:
    """Shape and constants of the auditory front end (stored in the bundle card)."""

    sample_rate: int = 48000
    hop_length: int = 640  # 75 frames/s, the frame rate every DeePAQ model shares
    n_fft: int = 2048  # 42.7 ms: resolves the harmonics of low notes
    erb_step: float = 0.5  # band spacing, ERB
    f_min: float = 50.0
    f_max: float = 20000.0
    spl_full_scale_db: float = 95.0  # calibration: the level a full-scale RMS signal is taken to play at
    slope_lower_db: float = 27.0  # masking spread towards lower bands, dB per ERB
    slope_upper_db: float = 12.0  # towards higher bands (upward spread of masking is wider)
    threshold_offset_db: float = 2.0  # internal-noise level above PEAQ's hearing-threshold curve
    exponent: float = 0.23  # Zwicker's loudness power law

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AuditoryConfig":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def erb_number(f_hz: float) -> float:
    """Glasberg & Moore's ERB-number scale (Cams) of a frequency in Hz (scalar, standard library)."""
    return 21.4 * math.log10(1.0 + 0.00437 * float(f_hz))


def approx_band_count(f_min: float, f_max: float, erb_step: float) -> int:
    """Number of auditory bands from ``f_min`` to ``f_max`` spaced ``erb_step`` ERB apart (+-1)."""
    return int(math.floor((erb_number(f_max) - erb_number(f_min)) / erb_step + 1e-9)) + 1
