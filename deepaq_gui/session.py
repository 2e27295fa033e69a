"""The document: reference, degraded versions, settings and results (no widgets, no Qt).

The session owns what the user loaded and what was computed; views only draw what it holds.
Every change goes through a method that tells the listeners (:meth:`Session.subscribe`), so the
app refreshes on what changed instead of by hand after each call.

Results live in **one** cache, keyed by what determines them (reference and version file hashes,
model, settings): ``session.results`` is that cache seen through the current files, so switching
a setting back, or re-adding a file, shows its result again without rescoring.

Work running in other threads gets a :class:`Snapshot` (frozen, read-only arrays), never the live
session. Playback audio is prepared with the **same** offset, polarity and gain that scoring used
(:func:`deepaq_core.audio.pair.apply_alignment`, taken from each version's result), so what is
heard is what was measured.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from deepaq_core.audio import AudioBuffer, AudioInfo, load_audio, resample
from deepaq_core.audio.pair import apply_alignment
from deepaq_core.errors import AudioError
from deepaq_core.results import QualityResult
from deepaq_core.scoring import ScoreSettings

log = logging.getLogger(__name__)

MAX_VERSIONS = 9
PLAYBACK_CHANNELS = 2
#: results kept for file/model/settings combinations not shown now (each is a few hundred kB)
MAX_CACHED_RESULTS = 256

#: what changed, as told to listeners
FILES, RESULTS, SETTINGS = "files", "results", "settings"


@dataclass(frozen=True)
class Track:
    """One loaded file: its description and its audio as read.

    ``audio`` is [C, N] float32 at the file's own rate and channel count; its samples are
    read-only, so a track can be shared with worker threads as it is.
    """

    path: str
    info: AudioInfo
    audio: AudioBuffer
    label: str

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def settings_key(settings: ScoreSettings) -> tuple:
    return tuple(sorted(dataclasses.asdict(settings).items()))


def result_key(reference: Track, version: Track, model: str | None, settings: ScoreSettings | tuple) -> tuple:
    """What a result depends on: both files' contents, the model and the scoring settings."""
    skey = settings if isinstance(settings, tuple) else settings_key(settings)
    return (reference.info.sha256, version.info.sha256, model, skey)


@dataclass(frozen=True)
class Snapshot:
    """An immutable copy of the document for work off the UI thread.

    ``aligned`` is the playback cache as it was when the snapshot was taken (entries are
    read-only arrays); a job returns the entries it used instead of changing a shared cache.
    """

    reference: Track | None
    versions: tuple[Track, ...]
    settings: ScoreSettings
    model_name: str | None
    results: Mapping[int, QualityResult]
    generation: int
    aligned: Mapping[tuple, np.ndarray] = dataclasses.field(default_factory=lambda: MappingProxyType({}))

    @property
    def playback_rate(self) -> int:
        return self.reference.audio.sample_rate if self.reference else 48000


class Session:
    """Reference + up to nine degraded versions, the scoring settings, the model and results."""

    def __init__(self, model_name: str | None = None, settings: ScoreSettings | None = None) -> None:
        self.reference: Track | None = None
        self.versions: list[Track] = []
        self.settings = settings or ScoreSettings()
        self.model_name = model_name
        self.generation = 0  # bumped on every change that makes running work stale
        self._cache: dict[tuple, QualityResult] = {}
        # Aligned playback arrays by (file hash, lag, gain, rate, length): a new result for one
        # version must not redo the others (resampling minutes of audio is not free). Changed on
        # the UI thread only (keep_aligned); workers read a snapshot of it.
        self._aligned: dict[tuple, np.ndarray] = {}
        self._listeners: list[Callable[[str], None]] = []

    @property
    def settings(self) -> ScoreSettings:
        return self._settings

    @settings.setter
    def settings(self, settings: ScoreSettings) -> None:
        self._settings = settings
        self._settings_key = settings_key(settings)  # result keys are looked up 30 times a second

    # -- listeners --------------------------------------------------------------------------
    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(what)`` after every change (``what``: FILES, RESULTS or SETTINGS)."""
        self._listeners.append(listener)

    def _changed(self, what: str, stale: bool = True) -> None:
        if stale:
            self.generation += 1
        for listener in list(self._listeners):
            listener(what)

    # -- files ------------------------------------------------------------------------------
    @staticmethod
    def read_track(path: str | os.PathLike, label: str | None = None) -> Track:
        """Read a file for the session (raises :class:`AudioError` with one sentence)."""
        path = os.path.abspath(os.fspath(path))
        audio = load_audio(path, target_rate=None, channels="all")
        audio.samples.flags.writeable = False  # shared with worker threads as it is
        return Track(path=path, info=audio.info, audio=audio, label=label or os.path.basename(path))

    def set_reference(self, track: Track) -> None:
        """Replace the reference; results of the old one no longer show."""
        self.reference = track
        self._aligned.clear()
        self._changed(FILES)

    def add_version(self, track: Track) -> int:
        """Append a degraded version; returns its index (0-based)."""
        if len(self.versions) >= MAX_VERSIONS:
            raise AudioError(f"At most {MAX_VERSIONS} degraded versions can be open; remove one before adding '{track.name}'.")
        self.versions.append(track)
        self._changed(FILES)
        return len(self.versions) - 1

    def remove_version(self, index: int) -> None:
        """Remove version ``index``; later versions move up and keep their results."""
        del self.versions[index]
        self._changed(FILES)

    def clear(self) -> None:
        self.reference = None
        self.versions.clear()
        self._changed(FILES)

    def set_settings(self, settings: ScoreSettings) -> None:
        """New scoring settings: results are those of the new settings (cached or to compute)."""
        self.settings = settings
        self._changed(SETTINGS)

    def set_model(self, name: str | None) -> None:
        self.model_name = name
        self._changed(SETTINGS)

    # -- results ----------------------------------------------------------------------------
    def key(self, index: int) -> tuple | None:
        """The cache key of version ``index`` now (None without a reference)."""
        if self.reference is None or not 0 <= index < len(self.versions):
            return None
        return result_key(self.reference, self.versions[index], self.model_name, self._settings_key)

    @property
    def results(self) -> dict[int, QualityResult]:
        """Version index -> result, for the current files, model and settings (a new dict)."""
        out = {}
        for i in range(len(self.versions)):
            r = self._cache.get(self.key(i))
            if r is not None:
                out[i] = r
        return out

    def set_result(self, index: int, result: QualityResult, key: tuple | None = None) -> None:
        """Store the result of version ``index`` (under ``key``, the key the job was started with)."""
        key = key if key is not None else self.key(index)
        if key is None:
            return
        self._cache[key] = result
        if len(self._cache) > MAX_CACHED_RESULTS:
            shown = {self.key(i) for i in range(len(self.versions))}
            for old in [k for k in self._cache if k not in shown][: len(self._cache) - MAX_CACHED_RESULTS]:
                del self._cache[old]
        self._changed(RESULTS, stale=False)

    def missing_results(self) -> list[int]:
        """Indices of versions without a result."""
        return [i for i in range(len(self.versions)) if self.key(i) not in self._cache]

    # -- snapshots and playback -------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """The document as it is now, for a worker (the tracks' arrays are shared, read-only)."""
        return Snapshot(self.reference, tuple(self.versions), self.settings, self.model_name,
                        MappingProxyType(self.results), self.generation, MappingProxyType(dict(self._aligned)))

    @property
    def playback_rate(self) -> int:
        return self.reference.audio.sample_rate if self.reference else 48000

    def keep_aligned(self, entries: Mapping[tuple, np.ndarray]) -> None:
        """Keep only these playback arrays (those a finished job used); UI thread only."""
        self._aligned = dict(entries)

    def playback_tracks(self) -> list[np.ndarray]:
        """:func:`playback_tracks` of the session now, keeping what it used (UI thread only)."""
        tracks, used = playback_tracks(self.snapshot())
        self.keep_aligned(used)
        return tracks


def playback_tracks(snap: Snapshot) -> tuple[list[np.ndarray], dict[tuple, np.ndarray]]:
    """Reference and every version as [N, 2] float32 on the reference timeline (pure).

    Versions are resampled to the reference's rate, then shifted, flipped and scaled by the
    delay, polarity and gain that scoring measured (none before a result exists), and cut or
    padded with silence to the reference's length, so switching keeps the musical position.
    Arrays in ``snap.aligned`` are reused. Returns the tracks and the cache entries they use:
    only what is playable now is worth keeping (each copy is [N, 2] float32, 115 MB for five
    minutes at 48 kHz, and a version's unaligned copy is useless once it has a result).
    """
    if snap.reference is None:
        return [], {}
    sr = snap.playback_rate
    n = snap.reference.audio.num_samples
    used: dict[tuple, np.ndarray] = {}

    def get(key: tuple, make: Callable[[], np.ndarray]) -> np.ndarray:
        y = snap.aligned.get(key)
        if y is None:
            y = make()
            y.flags.writeable = False
        used[key] = y
        return y

    out = [get(("reference", snap.reference.info.sha256, n), lambda: _stereo(snap.reference.audio.samples))]
    for i, v in enumerate(snap.versions):
        r = snap.results.get(i)
        lag = int(round(r.alignment.lag_ms * sr / 1000.0)) if r else 0
        gain_db = r.gain_db if r else 0.0
        inverted = bool(r.alignment.inverted) if r else False
        key = (v.info.sha256, v.audio.sample_rate, lag, inverted, round(gain_db, 6), sr, n)
        out.append(get(key, lambda v=v, lag=lag, gain_db=gain_db, inverted=inverted:
                       _aligned(v.audio, sr, n, lag, gain_db, inverted)))
    return out, used


def _aligned(audio: AudioBuffer, sr: int, n: int, lag: int, gain_db: float, inverted: bool = False) -> np.ndarray:
    """A version as [n, 2] at ``sr``: degraded[m + lag] ~ reference[m], as scoring measured it."""
    x = audio.samples
    if audio.sample_rate != sr:
        x = resample(x, audio.sample_rate, sr)
    y = apply_alignment(x, lag, 0, n, inverted=inverted, gain_db=gain_db)
    return _stereo(y)


def _stereo(samples: np.ndarray) -> np.ndarray:
    """[C, N] -> [N, 2]: mono is duplicated, more than two channels are mixed to mono first."""
    if samples.shape[0] == 2:
        return np.ascontiguousarray(samples.T, dtype=np.float32)
    mono = samples.mean(axis=0) if samples.shape[0] > 1 else samples[0]
    return np.ascontiguousarray(np.stack([mono, mono], axis=1), dtype=np.float32)
