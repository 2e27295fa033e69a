"""The document: reference, degraded versions, settings and results (no widgets, no Qt).

The session owns what the user loaded and what was computed; views only draw what it holds.
Playback audio is prepared here with the **same** offset and gain that scoring used (taken from
each version's result), so what is heard is what was measured.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np

from deepaq_core.audio import AudioBuffer, AudioInfo, load_audio, resample
from deepaq_core.errors import AudioError
from deepaq_core.results import QualityResult
from deepaq_core.scoring import ScoreSettings

log = logging.getLogger(__name__)

MAX_VERSIONS = 9
PLAYBACK_CHANNELS = 2


@dataclass
class Track:
    """One loaded file: its description and its audio at the session's playback rate.

    ``audio`` is [C, N] float32 at the file's own rate and channel count (as read).
    """

    path: str
    info: AudioInfo
    audio: AudioBuffer
    label: str

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


@dataclass
class Session:
    """Reference + up to nine degraded versions, the scoring settings, the model and results."""

    reference: Track | None = None
    versions: list[Track] = field(default_factory=list)
    settings: ScoreSettings = field(default_factory=ScoreSettings)
    model_name: str | None = None
    results: dict[int, QualityResult] = field(default_factory=dict)
    generation: int = 0  # bumped on every change that makes running work stale
    # Aligned playback arrays by (file hash, lag, gain, rate, length): a new result for one
    # version must not redo the others (resampling minutes of audio is not free).
    _aligned: dict[tuple, np.ndarray] = field(default_factory=dict, repr=False)

    # -- files ------------------------------------------------------------------------------
    @staticmethod
    def read_track(path: str | os.PathLike, label: str | None = None) -> Track:
        """Read a file for the session (raises :class:`AudioError` with one sentence)."""
        path = os.path.abspath(os.fspath(path))
        audio = load_audio(path, target_rate=None, channels="all")
        return Track(path=path, info=audio.info, audio=audio, label=label or os.path.basename(path))

    def set_reference(self, track: Track) -> None:
        """Replace the reference; every result becomes stale."""
        self.reference = track
        self.results.clear()
        self._aligned.clear()
        self.generation += 1

    def add_version(self, track: Track) -> int:
        """Append a degraded version; returns its index (0-based)."""
        if len(self.versions) >= MAX_VERSIONS:
            raise AudioError(f"At most {MAX_VERSIONS} degraded versions can be open; remove one before adding '{track.name}'.")
        self.versions.append(track)
        self.generation += 1
        return len(self.versions) - 1

    def remove_version(self, index: int) -> None:
        """Remove version ``index``; later versions move up and keep their results."""
        del self.versions[index]
        self.results = {(i if i < index else i - 1): r for i, r in self.results.items() if i != index}
        self.generation += 1

    def clear(self) -> None:
        self.reference = None
        self.versions.clear()
        self.results.clear()
        self.generation += 1

    def set_settings(self, settings: ScoreSettings) -> None:
        """New scoring settings: results are stale."""
        self.settings = settings
        self.results.clear()
        self.generation += 1

    def set_model(self, name: str | None) -> None:
        self.model_name = name
        self.results.clear()
        self.generation += 1

    def missing_results(self) -> list[int]:
        """Indices of versions without a result."""
        return [i for i in range(len(self.versions)) if i not in self.results]

    # -- playback ---------------------------------------------------------------------------
    @property
    def playback_rate(self) -> int:
        return self.reference.audio.sample_rate if self.reference else 48000

    def playback_tracks(self, results: dict[int, QualityResult] | None = None) -> list[np.ndarray]:
        """Reference and every version as [N, 2] float32 on the reference timeline.

        Versions are resampled to the reference's rate, shifted by the delay and scaled by the
        gain that scoring measured (none before a result exists), and cut or padded with silence to
        the reference's length, so switching keeps the musical position. ``results`` defaults to
        the session's (pass a snapshot when calling from a worker thread).
        """
        if self.reference is None:
            return []
        results = self.results if results is None else results
        sr = self.playback_rate
        n = self.reference.audio.num_samples
        key = ("reference", self.reference.info.sha256, n)
        used = {key}
        out = [self._aligned.get(key)]
        if out[0] is None:
            out[0] = self._aligned[key] = _stereo(self.reference.audio.samples)
        for i, v in enumerate(self.versions):
            r = results.get(i)
            lag = int(round(r.alignment.lag_ms * sr / 1000.0)) if r else 0
            gain_db = r.gain_db if r else 0.0
            key = (v.info.sha256, v.audio.sample_rate, lag, round(gain_db, 6), sr, n)
            used.add(key)
            y = self._aligned.get(key)
            if y is None:
                y = self._aligned[key] = _aligned(v.audio, sr, n, lag, gain_db)
            out.append(y)
        # Only what is playable now stays cached: each copy is [N, 2] float32 (115 MB for five
        # minutes at 48 kHz), and a version's unaligned copy is useless once it has a result.
        for stale in [k for k in self._aligned if k not in used]:
            self._aligned.pop(stale, None)
        return out


def _aligned(audio: AudioBuffer, sr: int, n: int, lag: int, gain_db: float) -> np.ndarray:
    """A version as [n, 2] at ``sr``: degraded[m + lag] ~ reference[m], scaled by ``gain_db``."""
    x = audio.samples
    if audio.sample_rate != sr:
        x = resample(x, audio.sample_rate, sr)
    x = _stereo(x)
    y = np.zeros((n, PLAYBACK_CHANNELS), np.float32)
    lo = max(0, -lag)
    hi = min(n, x.shape[0] - lag)
    if hi > lo:
        y[lo:hi] = x[lo + lag : hi + lag] * np.float32(10.0 ** (gain_db / 20.0))
    return y


def _stereo(samples: np.ndarray) -> np.ndarray:
    """[C, N] -> [N, 2]: mono is duplicated, more than two channels are mixed to mono first."""
    if samples.shape[0] == 2:
        return np.ascontiguousarray(samples.T, dtype=np.float32)
    mono = samples.mean(axis=0) if samples.shape[0] > 1 else samples[0]
    return np.ascontiguousarray(np.stack([mono, mono], axis=1), dtype=np.float32)
