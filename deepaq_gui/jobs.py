"""Work the app runs off the UI thread: reading files, loading the model, scoring, spectrograms.

Each ``*_job`` returns a callable ``job(cancel_event)`` for :class:`deepaq_gui.workers.Worker`.
Nothing here touches widgets.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Generator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from deepaq_core.scoring import Partial, Progress, ScoreSettings
from deepaq_gui.session import Session, Snapshot, Track, playback_tracks


#: How many worst moments the left panel lists for the shown version.
WORST_MOMENTS = 5


def worker_threads() -> int:
    """Threads the app's background work may keep busy: every core but one (at least 1).

    The one left is the UI thread's. With as many busy threads as cores, the UI thread shares a
    core and a 30 ms repaint takes 100 ms or more of wall time (docs/PERFORMANCE.md). The window's
    job pool, torch and the spectrogram FFTs all use this many threads; it costs speed on small
    machines (up to half on 2 cores), and a GPU does the model's work either way.
    """
    return max(1, (os.cpu_count() or 2) - 1)


def reserve_ui_core(model: str | None = None, device: str = "auto") -> None:
    """Leave one CPU core to the UI thread: the model's CPU threads = :func:`worker_threads`.

    The built-in model on the CPU runs without torch (:mod:`deepaq_core.model.cpu_model`); torch
    is imported (and its thread count set) only for a model that needs it.
    """
    from deepaq_core.model.cpu_model import set_cpu_threads
    from deepaq_core.model.registry import needs_torch

    set_cpu_threads(worker_threads())
    if "torch" in sys.modules or needs_torch(model, device):
        import torch

        torch.set_num_threads(worker_threads())


def preload_modules(model: str | None = None, device: str = "auto") -> None:
    """Import what the workers will need (the model code, loudness, spectrograms; torch if the
    model needs it) now.

    Called before the window shows. An import holds the GIL while a C extension initialises
    (torch alone for several hundred milliseconds), so importing these lazily in a worker thread
    froze the UI thread just when the first files were opening. Loading the model's weights stays
    lazy and off the UI thread; only the code is loaded here. The built-in model on the CPU needs
    no torch, which saves 1.4-2 s of start-up on a 2-core machine; choosing a model that needs it
    later imports it then (in a worker).
    """
    import pyloudnorm  # noqa: F401
    import scipy.fft  # noqa: F401
    import scipy.signal  # noqa: F401
    import scipy.spatial.distance  # noqa: F401
    import threadpoolctl  # noqa: F401

    import deepaq_core.model.cpu_model  # noqa: F401
    import deepaq_core.model.registry  # noqa: F401
    import deepaq_resources  # noqa: F401
    import deepaq_core.audio.display  # noqa: F401

    from deepaq_core.model.registry import needs_torch

    if needs_torch(model, device):
        import safetensors.torch  # noqa: F401
        import torch  # noqa: F401

        import deepaq_core.model.compact  # noqa: F401
        import deepaq_core.model.device  # noqa: F401
        import deepaq_core.model.head  # noqa: F401


_frozen = False


def freeze_startup_objects() -> None:
    """Exclude everything alive now (imported modules, the window) from garbage collection.

    Called once, when the first window is built. With torch, scipy and pyqtgraph imported the
    process holds about 260 000 objects, and a full (generation 2) collection walked them all:
    175-180 ms with every thread stopped, whichever thread triggered it. That was the rare long
    freeze of the UI while scoring (docs/PERFORMANCE.md). Objects made later are collected as
    usual; garbage is collected first so none of it is kept.
    """
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


@dataclass(frozen=True)
class LoadedFiles:
    """Outcome of reading files: tracks that loaded and one message per file that did not."""

    tracks: tuple[Track, ...]
    errors: tuple[str, ...]


def load_files_job(paths: list[str]):
    """Read files (decode, validate); bad files are reported, good ones still load."""

    def job(cancel: threading.Event) -> Generator[Progress, None, LoadedFiles]:
        from deepaq_core.errors import DeePAQError

        tracks, errors = [], []
        for i, p in enumerate(paths):
            yield Progress(i / max(1, len(paths)), f"Reading {p}")
            try:
                tracks.append(Session.read_track(p))
            except DeePAQError as exc:
                errors.append(str(exc))
        return LoadedFiles(tuple(tracks), tuple(errors))

    return job


class ModelHolder:
    """Loads the scorer lazily (in a worker) and serialises scoring jobs on it.

    Results are kept by the session (its one cache), not here.
    """

    def __init__(self, device: str = "auto", allow_unverified: bool = False) -> None:
        self.device = device
        self.allow_unverified = allow_unverified
        self._scorer = None
        self._name: str | None = "\0"
        self.lock = threading.Lock()

    def scorer(self, name: str | None):
        """The scorer for model ``name`` (loads it on first use; call from a worker)."""
        from deepaq_core.scoring import Scorer

        if self._scorer is None or name != self._name:
            reserve_ui_core(name, self.device)
            # workers=0: scoring keeps to its one thread, leaving the other core to the UI.
            self._scorer = Scorer(name, self.device, allow_unverified=self.allow_unverified, workers=0)
            self._name = name
        return self._scorer


@dataclass(frozen=True)
class ModelReady:
    """Partial item: the model is loaded (label to show in the window; a note if it is unverified)."""

    label: str
    note: str | None = None


def score_job(holder: ModelHolder, reference: Track, versions: list[tuple[int, Track]], model: str | None,
              settings: ScoreSettings):
    """Score ``versions`` (index, track) against ``reference``; yields Partial per finished version.

    The tracks are immutable (read-only audio), so a job never sees the session change under it.
    """

    def job(cancel: threading.Event) -> Generator[Any, None, int]:
        with holder.lock:
            yield Progress(0.0, "Loading model")
            scorer = holder.scorer(model)
            from deepaq_core.model.bundle import unverified_note

            yield ModelReady(scorer.info.label, unverified_note(scorer.loaded.bundle))
            scorer.settings = settings
            if not versions:
                return 0
            gen = scorer.iter_score(reference.audio, [t.audio for _, t in versions], cancel=cancel)
            for item in gen:
                if isinstance(item, Partial):
                    yield Partial(versions[item.index][0], item.result)
                else:
                    yield item
            return len(versions)

    return job


@dataclass(frozen=True)
class PreparedAudio:
    """Everything the audio views and the player need, computed off the UI thread."""

    token: tuple
    tracks: tuple
    rate: int
    version: int  # 0-based version shown next to the reference, -1 when there is none
    ref_envelope: Any
    deg_envelope: Any
    ref_spectrogram: Any
    deg_spectrogram: Any
    difference: Any = None  # (difference spectrogram, colour limit dB) or None
    aligned: Any = None  # the playback cache entries used (Session.keep_aligned)
    generation: int = -1  # the snapshot's session generation
    worst: tuple = ()  # WorstMoment of the shown version (deepaq_core.audio.display.worst_moments)


def prepare_audio_job(snap: Snapshot, version: int, token: tuple, spectrograms: bool = True):
    """Aligned playback tracks, waveform envelopes and spectrograms for ``version`` of a snapshot."""

    def job(cancel: threading.Event) -> PreparedAudio:
        from deepaq_core.audio import AudioBuffer
        from deepaq_core.audio.display import (DISPLAY_ROWS, compute_envelope, compute_spectrogram, difference_with_limit,
                                               worst_moments)

        tracks, used = playback_tracks(snap)
        sr = snap.playback_rate
        ref_mono = tracks[0].mean(axis=1)
        v = min(version, len(tracks) - 2)
        deg_mono = tracks[v + 1].mean(axis=1) if v >= 0 else None
        ref_env = compute_envelope(AudioBuffer(ref_mono[None, :], sr))
        deg_env = compute_envelope(AudioBuffer(deg_mono[None, :], sr)) if deg_mono is not None else None
        ref_spec = deg_spec = diff = None
        if spectrograms and deg_mono is not None and not cancel.is_set():
            ref_spec = compute_spectrogram(ref_mono, sr, max_rows=DISPLAY_ROWS, workers=worker_threads())
            deg_spec = compute_spectrogram(deg_mono, sr, max_rows=DISPLAY_ROWS, workers=worker_threads())
            diff = difference_with_limit(ref_spec, deg_spec)
        result = snap.results.get(v)
        worst = tuple(worst_moments(result.curve, WORST_MOMENTS, ref_spec, deg_spec)) if result is not None else ()
        return PreparedAudio(token, tuple(tracks), sr, v, ref_env, deg_env, ref_spec, deg_spec, diff,
                             MappingProxyType(used), snap.generation, worst)

    return job
