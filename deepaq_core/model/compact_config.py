"""Shape of the compact backbone, without torch (training configs import it to validate cheaply)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CompactConfig:
    """Shape of the compact backbone (stored in the bundle card)."""

    sample_rate: int = 24000
    hop_length: int = 320  # 75 frames/s, as MERT
    n_fft: int = 1024  # 42.7 ms window: resolves harmonics of low notes, still local in time
    n_mels: int = 96
    f_min: float = 20.0
    f_max: float = 12000.0
    width: int = 192
    layers: int = 4
    heads: int = 4
    ff_mult: int = 2
    conv_kernel: int = 5

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CompactConfig":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})
