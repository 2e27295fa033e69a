"""Plain containers for decoded audio and the file it came from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AudioInfo:
    """What a file header (or ffprobe) says about an audio file.

    Attributes
    ----------
    path : str
        Absolute path of the file.
    sample_rate : int
        Native sample rate of the file, Hz.
    channels : int
        Number of channels.
    frames : int
        Samples per channel. Exact for files read by libsndfile and for files already decoded by
        :func:`~deepaq_core.audio.load_audio`; estimated from the container duration for files that
        only ffprobe could describe.
    duration_s : float
        ``frames / sample_rate``, seconds.
    format : str
        libsndfile major format (``"WAV"``, ``"FLAC"``, ``"MP3"``, ``"OGG"``, ...) or ffmpeg's
        format name (e.g. ``"mov,mp4,m4a,3gp,3g2,mj2"``) for files decoded through ffmpeg.
    subtype : str
        libsndfile subtype (``"PCM_16"``, ``"FLOAT"``, ``"VORBIS"``, ...), the upper-cased ffmpeg
        codec name (``"AAC"``), or ``""`` if unknown.
    bit_depth : int or None
        Bits per sample for PCM/lossless (16, 24, 32) and float (32, 64) data; ``None`` for lossy
        or companded codecs, where a bit depth is meaningless.
    sha256 : str
        Hex SHA-256 of the file bytes.
    header_frames : int or None
        Samples per channel the header declares, when that is more than the file holds (a file
        cut off in the middle of its audio data); None when the header and the data agree or the
        format does not say.
    """

    path: str
    sample_rate: int
    channels: int
    frames: int
    duration_s: float
    format: str
    subtype: str
    bit_depth: int | None
    sha256: str
    header_frames: int | None = None

    @property
    def short(self) -> bool:
        """The file holds fewer samples than its header declares (it was cut off)."""
        return self.header_frames is not None and self.header_frames > self.frames


# eq=False: dataclass equality would compare the sample arrays with ``==``, which raises for numpy
# arrays ("truth value is ambiguous"); identity equality is the only cheap, well-defined choice.
@dataclass(frozen=True, eq=False)
class AudioBuffer:
    """Decoded audio in memory.

    Attributes
    ----------
    samples : numpy.ndarray
        float32, shape ``[C, N]`` with ``C >= 1`` channels and ``N`` samples per channel. A 1-D
        array is accepted and stored as ``[1, N]``; other dtypes are converted to float32.
    sample_rate : int
        Sample rate of ``samples``, Hz (not necessarily the file's native rate).
    info : AudioInfo or None
        The file the samples were decoded from, if any.
    """

    samples: np.ndarray
    sample_rate: int
    info: AudioInfo | None = None

    def __post_init__(self) -> None:
        samples = np.asarray(self.samples, dtype=np.float32)
        if samples.ndim == 1:
            samples = samples[np.newaxis, :]
        if samples.ndim != 2 or samples.shape[0] < 1:
            raise ValueError(f"AudioBuffer samples must have shape [C, N] with C >= 1, got {samples.shape}")
        if int(self.sample_rate) <= 0:
            raise ValueError(f"AudioBuffer sample_rate must be positive, got {self.sample_rate}")
        # Frozen dataclass: normalising fields in __post_init__ needs object.__setattr__.
        object.__setattr__(self, "samples", samples)
        object.__setattr__(self, "sample_rate", int(self.sample_rate))

    @property
    def channels(self) -> int:
        """Number of channels ``C``."""
        return int(self.samples.shape[0])

    @property
    def num_samples(self) -> int:
        """Samples per channel ``N``."""
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        """Duration in seconds, ``N / sample_rate``."""
        return self.num_samples / self.sample_rate

    def __repr__(self) -> str:
        source = repr(self.info.path) if self.info is not None else "None"
        return (
            f"AudioBuffer(channels={self.channels}, num_samples={self.num_samples}, "
            f"sample_rate={self.sample_rate}, source={source})"
        )
