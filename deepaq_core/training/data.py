"""Grouped, labelled training batches made on the fly from any folder of clean audio, or read from a pool.

One *group* is one random excerpt of clean audio and ``K`` versions of it: the clean excerpt
itself (label 0, always first) and ``K - 1`` degraded versions at known intensities from the
configured families, each with a surrogate label (``param``, ``teacher`` or ``hybrid``, see
docs/DEGRADATIONS.md). A *batch* is ``G`` groups, flattened to ``G * K`` items.

How a group is made (all randomness from ``numpy.random.default_rng([seed, stream, index])``, so
group ``index`` of a stream is the same whatever the number of workers, and a resumed run sees
exactly the batches it would have seen)::

    pick a file (weighted by duration) and an offset -> read excerpt_seconds (native rate)
    -> mono or stereo -> resample to generation_rate -> skip if near-silent
    -> loudness-normalise to target_lufs (peak kept below full scale for the codecs)
    -> degrade (codecs and filters run at generation_rate, e.g. 48 kHz, as real material was made)
    -> every version: downmix to mono, resample to the model rate (24 kHz), loudness-normalise
       (what scoring's loudness matching does) -> labels (teacher distances at the model rate)

Generation is the CPU bottleneck (a codec round trip takes 0.2-0.8 s); :func:`build_pool` writes a
fixed pool of groups to disk (float16 audio in safetensors shards, labels and provenance in the
shards' metadata and ``pool.json``) that :class:`PoolSource` then serves for many epochs.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepaq_core.errors import DeePAQError

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
STREAM_TRAIN = 0
STREAM_HELDOUT = 1
_STREAM_CROP = 5
_STREAM_EPOCH = 6
_STREAM_SPLIT = 7
POOL_FORMAT = "deepaq-group-pool"
POOL_VERSION = 1
POOL_FILE = "pool.json"
_MAX_TRIES = 50
# Peak limit of the clean excerpt before degradation: encoders read fixed-point input, so the
# -23 LUFS excerpt is lowered if its peak would exceed this (every version is renormalised later).
_PEAK_LIMIT = 0.98
# A low-pass whose cutoff is above this fraction of the model rate is inaudible to the model
# (its content ends at the resampler's passband edge, ~0.45 x rate): such rungs would be labelled
# as degraded while the model sees the clean signal, so they are left out.
_NYQUIST_FRACTION = 0.45
_MIN_LABEL = 1e-4


# ------------------------------------------------------------------------------------- files


@dataclass(frozen=True)
class SourceFile:
    """One clean audio file: path and header information."""

    path: str
    frames: int
    sample_rate: int
    channels: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def scan_audio(paths: Sequence[str | os.PathLike], min_seconds: float = 0.0) -> list[SourceFile]:
    """Every usable clean audio file under ``paths`` (folders are searched recursively).

    Parameters
    ----------
    paths : sequence of path
        Folders or single files; ``.wav``, ``.flac``, ``.ogg`` and ``.mp3`` (libsndfile reads them).
        Hidden files and folders (names starting with ``.``) inside a folder are skipped.
    min_seconds : float
        Files shorter than this are skipped.

    Returns
    -------
    list of SourceFile
        Sorted by path (deterministic). Unreadable files are skipped with a warning.

    Raises
    ------
    DeePAQError
        A path does not exist, or no usable file was found.
    """
    import soundfile as sf

    found: list[Path] = []
    for entry in paths:
        p = Path(entry).expanduser()
        if p.is_dir():
            # Hidden files and folders (.state, .tmp of a tool still writing) are not material.
            found.extend(q for q in p.rglob("*") if q.suffix.lower() in AUDIO_EXTENSIONS and q.is_file()
                         and not any(part.startswith(".") for part in q.relative_to(p).parts))
        elif p.is_file():
            found.append(p)
        else:
            raise DeePAQError(f"The clean-audio folder '{p}' does not exist.")
    out, short, bad = [], 0, 0
    for p in sorted(set(found)):
        try:
            info = sf.info(str(p))
        except Exception as exc:  # libsndfile raises several types for unreadable files
            log.warning("skipping %s: not readable audio (%s)", p, exc)
            bad += 1
            continue
        if info.frames <= 0 or info.samplerate <= 0:
            bad += 1
            continue
        if info.frames / info.samplerate < min_seconds:
            short += 1
            continue
        out.append(SourceFile(str(p), int(info.frames), int(info.samplerate), int(info.channels)))
    if short or bad:
        log.info("clean audio: %d files used, %d shorter than %.1f s, %d unreadable", len(out), short, min_seconds, bad)
    if not out:
        where = ", ".join(str(p) for p in paths) or "(no folders given)"
        raise DeePAQError(
            f"No usable clean audio (wav, flac, ogg or mp3 of at least {min_seconds:g} s) was found in {where}."
        )
    return out


def split_heldout(files: Sequence[SourceFile], fraction: float, seed: int) -> tuple[list[SourceFile], list[SourceFile]]:
    """Split files into training and held-out files (deterministic for a seed).

    About ``fraction`` of the total duration is held out. When the files lie in three or more
    folders, whole folders are held out (stems or movements of one piece, a game's soundtrack,
    stay on one side, so held-out groups are new material); otherwise single files. Units are
    taken in a seeded random order, each only if it brings the held-out duration closer to the
    target (the first one only if it is at most half of everything).
    At least one unit is held out and at least one is kept; with a single file both sets are that
    file (held-out groups then come from other excerpts of it, which is logged).
    """
    files = list(files)
    if fraction <= 0 or len(files) < 2:
        if fraction > 0:
            log.warning("only one clean file: held-out groups come from the same file as the training groups")
        return files, list(files)
    folders: dict[str, list[int]] = {}
    for i, f in enumerate(files):
        folders.setdefault(str(Path(f.path).parent), []).append(i)
    units = list(folders.values()) if len(folders) >= 3 else [[i] for i in range(len(files))]
    dur = np.array([f.duration_s for f in files])
    total, target = float(dur.sum()), fraction * float(dur.sum())
    order = np.random.default_rng([seed, _STREAM_SPLIT]).permutation(len(units))
    held: list[int] = []
    held_s = 0.0
    for u in order:
        if held_s >= target or len(held) + 1 >= len(units):
            break
        size = float(dur[units[u]].sum())
        if (size <= 0.5 * total) if not held else (held_s + size - target < target - held_s):
            held.append(int(u))  # the first unit, or one that brings the held-out share closer to the target
            held_s += size
    if not held:  # every unit is too large: hold out the smallest one
        held = [int(np.argmin([dur[u].sum() for u in units]))]
    hold = sorted(i for u in held for i in units[u])
    chosen = set(hold)
    return [f for i, f in enumerate(files) if i not in chosen], [files[i] for i in hold]


def read_excerpt(src: SourceFile, start: int, frames: int, stereo: bool) -> np.ndarray:
    """Frames ``[start, start + frames)`` of a file as float32 ``[C, n]`` (C = 2 if ``stereo`` else 1)."""
    import soundfile as sf

    with sf.SoundFile(src.path) as fh:
        fh.seek(start)
        data = fh.read(frames, dtype="float32", always_2d=True)  # [n, C]
    data = data.T
    if stereo:
        if data.shape[0] == 1:
            data = np.repeat(data, 2, axis=0)
        elif data.shape[0] > 2:
            data = data[:2]
    else:
        data = data.mean(axis=0, keepdims=True)
    return np.ascontiguousarray(data, dtype=np.float32)


# ------------------------------------------------------------------------------------- families


def resolve_families(names: Sequence[str]) -> tuple[str, ...]:
    """Config family names -> family names to use.

    ``"all"`` means every family whose encoder is installed (missing codecs are logged and left
    out); ``"codecs"`` / ``"signal"`` every available family of that group; other names must be
    families, and a codec named explicitly must be installed.

    Raises
    ------
    DeePAQError
        Unknown family, or an explicitly named codec whose encoder is missing.
    """
    from deepaq_core.degrade import FAMILIES, codec_unavailable_reason

    out: list[str] = []
    for name in names:
        if name in ("all", "codecs", "signal"):
            for fam in FAMILIES.values():
                if name == "codecs" and fam.group != "codec" or name == "signal" and fam.group != "signal":
                    continue
                reason = codec_unavailable_reason(fam.name) if fam.group == "codec" else None
                if reason:
                    log.warning("family %s left out: %s", fam.name, reason)
                    continue
                out.append(fam.name)
            continue
        if name not in FAMILIES:
            raise DeePAQError(f"Unknown degradation family '{name}' in data.families; choose from all, codecs, signal, "
                              f"{', '.join(FAMILIES)}.")
        if FAMILIES[name].group == "codec":
            reason = codec_unavailable_reason(name)
            if reason:
                raise DeePAQError(f"The family '{name}' in data.families cannot be used: {reason.rstrip('.')}.")
        out.append(name)
    uniq = tuple(dict.fromkeys(out))
    if not uniq:
        raise DeePAQError("No degradation family is left to train with (data.families).")
    return uniq


def usable_ladder(family: str, model_rate: int) -> tuple[float, ...]:
    """A family's ladder without rungs the model cannot see at its sample rate (high low-pass cutoffs)."""
    from deepaq_core.degrade import FAMILIES

    fam = FAMILIES[family]
    if family == "lowpass":
        rungs = tuple(v for v in fam.ladder if v < _NYQUIST_FRACTION * model_rate)
        return rungs or fam.ladder[-1:]
    return fam.ladder


@functools.lru_cache(maxsize=64)
def _takes_seed(family: str) -> bool:
    from deepaq_core.degrade import FAMILIES

    return "seed" in inspect.signature(FAMILIES[family].func).parameters


# ------------------------------------------------------------------------------------- groups


@dataclass(frozen=True)
class Group:
    """One excerpt and its versions, at the model rate.

    Attributes
    ----------
    audio : numpy.ndarray
        float32 ``[K, N]`` mono, loudness-normalised; row 0 is the clean excerpt.
    labels : numpy.ndarray
        float32 ``[K]`` surrogate labels (0 = clean, larger = worse).
    families : tuple of str
        Family of each version (``"clean"`` for row 0).
    params : tuple of float or None
        Intensity parameter of each version (None for the clean one).
    teacher_db : tuple of float or None
        Teacher distance of each version (None in ``param`` mode).
    source : str
        File the excerpt came from.
    start_s : float
        Excerpt start in that file, seconds.
    """

    audio: np.ndarray
    labels: np.ndarray
    families: tuple[str, ...]
    params: tuple[float | None, ...]
    teacher_db: tuple[float | None, ...]
    source: str
    start_s: float

    def meta(self) -> dict:
        """JSON-friendly description (everything but the audio)."""
        return {
            "labels": [float(v) for v in self.labels],
            "families": list(self.families),
            "params": list(self.params),
            "teacher_db": list(self.teacher_db),
            "source": self.source,
            "start_s": self.start_s,
        }

    @classmethod
    def from_meta(cls, audio: np.ndarray, meta: dict) -> "Group":
        return cls(
            audio=np.asarray(audio, dtype=np.float32),
            labels=np.asarray(meta["labels"], dtype=np.float32),
            families=tuple(meta["families"]),
            params=tuple(meta["params"]),
            teacher_db=tuple(meta["teacher_db"]),
            source=str(meta["source"]),
            start_s=float(meta["start_s"]),
        )


class GroupMaker:
    """Makes :class:`Group` objects from clean files (picklable: safe in worker processes).

    Parameters
    ----------
    files : sequence of SourceFile
        Where excerpts come from.
    data : DataConfig
        Excerpt length, rates, families, label mode, group mode and size, seed, loudness, silence.
    model_rate : int
        Rate of the returned audio (the backbone's, Hz).
    families : sequence of str, optional
        Already resolved family names (:func:`resolve_families` of ``data.families`` otherwise).
    """

    def __init__(self, files: Sequence[SourceFile], data, model_rate: int, families: Sequence[str] | None = None):
        self.files = list(files)
        if not self.files:
            raise DeePAQError("No clean audio files to make training groups from.")
        self.data = data
        self.model_rate = int(model_rate)
        self.families = tuple(families) if families is not None else resolve_families(data.families)
        self.ladders = {f: usable_ladder(f, self.model_rate) for f in self.families}
        durations = np.array([f.duration_s for f in self.files], dtype=np.float64)
        self._weights = durations / durations.sum()
        self.n_gen = int(round(data.excerpt_seconds * data.generation_rate))
        self.n_model = int(round(data.excerpt_seconds * self.model_rate))
        self._bad: set[str] = set()

    # -- excerpts -------------------------------------------------------------------------
    def _raw_excerpt(self, rng: np.random.Generator) -> tuple[np.ndarray, SourceFile, float] | None:
        from deepaq_core.audio import resample

        src = self.files[int(rng.choice(len(self.files), p=self._weights))]
        need = int(math.ceil(self.data.excerpt_seconds * src.sample_rate))
        start = int(rng.integers(0, max(1, src.frames - need + 1)))
        try:
            x = read_excerpt(src, start, need, self.data.channels == "stereo")
        except Exception as exc:  # a damaged or vanished file: log (once) and draw another excerpt
            if src.path not in self._bad:
                self._bad.add(src.path)
                log.warning("cannot read %s (%s); drawing excerpts from other files", src.path, exc)
            return None
        if x.shape[1] < need * 0.98:  # header length was an estimate (MP3) and the file is shorter
            return None
        if src.sample_rate != self.data.generation_rate:
            x = resample(x, src.sample_rate, self.data.generation_rate)
        x = _fix_length(x, self.n_gen)
        if not np.all(np.isfinite(x)) or not _active_enough(x, self.data.generation_rate, self.data.silence_db,
                                                             self.data.min_active_fraction):
            return None
        return x, src, start / src.sample_rate

    def excerpt(self, rng: np.random.Generator) -> tuple[np.ndarray, SourceFile, float]:
        """A non-silent, loudness-normalised excerpt ``[C, n_gen]`` at the generation rate."""
        from deepaq_core.degrade import normalise_loudness

        for _ in range(_MAX_TRIES):
            got = self._raw_excerpt(rng)
            if got is None:
                continue
            x, src, start_s = got
            x = normalise_loudness(x, self.data.generation_rate, self.data.target_lufs)
            peak = float(np.max(np.abs(x)))
            if peak > _PEAK_LIMIT:
                x = x * np.float32(_PEAK_LIMIT / peak)
            return x.astype(np.float32, copy=False), src, start_s
        raise DeePAQError(
            f"No excerpt louder than data.silence_db ({self.data.silence_db:g} dBFS) over "
            f"{self.data.min_active_fraction:.0%} of its length was found in {_MAX_TRIES} tries; check the clean audio."
        )

    # -- plans ----------------------------------------------------------------------------
    def _plan(self, rng: np.random.Generator, count: int, family: str | None) -> list[tuple[str, float]]:
        if self.data.group_mode == "single" or family is not None:
            fam = family or self.families[int(rng.integers(len(self.families)))]
            ladder = self.ladders[fam]
            if count <= len(ladder):
                idx = np.sort(rng.choice(len(ladder), size=count, replace=False))
            else:
                extra = rng.integers(0, len(ladder), count - len(ladder))  # every rung, then repeats
                idx = np.sort(np.concatenate([np.arange(len(ladder)), extra]))
            return [(fam, float(ladder[i])) for i in idx]
        out = []
        for _ in range(count):
            fam = self.families[int(rng.integers(len(self.families)))]
            ladder = self.ladders[fam]
            out.append((fam, float(ladder[int(rng.integers(len(ladder)))])))
        return out

    def _degrade(self, x: np.ndarray, family: str, value: float, seed: int, rng: np.random.Generator) -> np.ndarray:
        from deepaq_core.degrade import FAMILIES, degrade

        fam = FAMILIES[family]
        params: dict[str, Any] = {fam.param: value}
        if _takes_seed(family):
            params["seed"] = seed
        if family in ("separation", "interferer"):
            # Another excerpt (usually of another file) as the interferer, as the families ask of
            # a training set; same channel layout and length.
            other, _, _ = self.excerpt(rng)
            params["interferer"] = other
        y, _ = degrade(x, self.data.generation_rate, family, **params)
        return np.asarray(y, dtype=np.float32)

    def _to_model(self, x: np.ndarray) -> np.ndarray:
        from deepaq_core.audio import resample
        from deepaq_core.degrade import normalise_loudness

        mono = x.mean(axis=0, keepdims=True)
        if self.data.generation_rate != self.model_rate:
            mono = resample(mono, self.data.generation_rate, self.model_rate)
        mono = _fix_length(mono, self.n_model)
        return normalise_loudness(mono, self.model_rate, self.data.target_lufs)[0]

    # -- the group ------------------------------------------------------------------------
    def make(self, index: int, stream: int = STREAM_TRAIN, family: str | None = None) -> Group:
        """Group ``index`` of ``stream`` (deterministic for the data seed).

        Parameters
        ----------
        index : int
            Position in the stream.
        stream : int
            :data:`STREAM_TRAIN` or :data:`STREAM_HELDOUT` (independent random streams).
        family : str, optional
            Force this family for every degraded version (held-out sets cycle through families).
        """
        from deepaq_core.degrade import (
            FAMILIES,
            CodecError,
            DegradationError,
            hybrid_labels,
            logmel_distance,
            teacher_label,
        )

        rng = np.random.default_rng([int(self.data.seed), int(stream), int(index)])
        clean, src, start_s = self.excerpt(rng)
        seed = int(rng.integers(2**31 - 1))
        plan = self._plan(rng, self.data.versions_per_group - 1, family)
        versions: list[tuple[str, float, np.ndarray]] = []
        for fam, value in plan:
            for attempt in range(4):
                try:
                    versions.append((fam, value, self._to_model(self._degrade(clean, fam, value, seed, rng))))
                    break
                except (CodecError, DegradationError) as exc:
                    if attempt == 3:
                        raise
                    log.debug("group %d: %s at %g failed (%s); drawing another rung", index, fam, value, exc)
                    fam, value = self._plan(rng, 1, fam if self.data.group_mode == "single" or family else None)[0]
        clean_m = self._to_model(clean)
        mode = self.data.label_mode
        teacher: list[float | None] = [None] * len(versions)
        if mode in ("teacher", "hybrid"):
            teacher = [logmel_distance(clean_m, y, self.model_rate) for _, _, y in versions]
        if mode == "param":
            labels = [FAMILIES[f].label(v) for f, v, _ in versions]
        elif mode == "teacher":
            labels = [teacher_label(d) for d in teacher]
        else:
            labels = [0.0] * len(versions)
            for fam in dict.fromkeys(f for f, _, _ in versions):
                idx = [i for i, (f, _, _) in enumerate(versions) if f == fam]
                fitted = hybrid_labels(fam, [versions[i][1] for i in idx], [teacher[i] for i in idx])
                for i, lab in zip(idx, fitted):
                    labels[i] = float(lab)
        # A degraded version never shares the clean label 0 (anchors="clean" picks label-0 items);
        # a teacher distance of exactly 0 is the only way it could.
        labels = [max(float(v), _MIN_LABEL) for v in labels]
        audio = np.stack([clean_m] + [y for _, _, y in versions]).astype(np.float32)
        return Group(
            audio=audio,
            labels=np.asarray([0.0] + labels, dtype=np.float32),
            families=("clean", *(f for f, _, _ in versions)),
            params=(None, *(v for _, v, _ in versions)),
            teacher_db=(0.0 if mode != "param" else None, *teacher),
            source=src.path,
            start_s=round(float(start_s), 4),
        )


def _fix_length(x: np.ndarray, n: int) -> np.ndarray:
    if x.shape[-1] >= n:
        return x[..., :n]
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])])


def _active_enough(x: np.ndarray, sr: int, silence_db: float, min_fraction: float) -> bool:
    """True when at least ``min_fraction`` of the 100 ms blocks of the mono mix are above ``silence_db`` dBFS RMS."""
    mono = x.mean(axis=0)
    block = max(1, sr // 10)
    n = mono.size // block
    if n == 0:
        return False
    rms = np.sqrt(np.mean(mono[: n * block].reshape(n, block).astype(np.float64) ** 2, axis=1))
    db = 20 * np.log10(np.maximum(rms, 1e-12))
    return bool(np.mean(db > silence_db) >= min_fraction) and bool(np.any(mono))


# ------------------------------------------------------------------------------------- batches


def collate(groups: Sequence[Group], index: int = -1, crop: int | None = None,
            rng: np.random.Generator | None = None) -> dict:
    """Flatten groups into one batch.

    Returns
    -------
    dict
        ``audio`` float32 ``[G*K, N]``, ``labels`` float32 ``[G*K]``, ``groups`` int64 ``[G*K]``
        (0..G-1), ``families`` list of str, ``index`` (the batch number). With ``crop``, each
        group is cut to ``crop`` samples at a random offset shared by its versions.
    """
    audio, labels, gid, fams = [], [], [], []
    for g, grp in enumerate(groups):
        a = grp.audio
        if crop is not None and crop < a.shape[1]:
            off = int((rng or np.random.default_rng()).integers(0, a.shape[1] - crop + 1))
            a = a[:, off : off + crop]
        audio.append(a)
        labels.append(grp.labels)
        gid.append(np.full(a.shape[0], g, dtype=np.int64))
        fams.extend(grp.families)
    return {
        "audio": np.ascontiguousarray(np.concatenate(audio), dtype=np.float32),
        "labels": np.concatenate(labels).astype(np.float32),
        "groups": np.concatenate(gid),
        "families": fams,
        "index": int(index),
    }


class OnlineSource:
    """Batch ``b`` = groups ``b*G .. b*G+G-1`` of the training stream, generated on demand."""

    def __init__(self, maker: GroupMaker, groups_per_batch: int, crop_seconds: float = 0.0):
        self.maker = maker
        self.groups_per_batch = int(groups_per_batch)
        self.crop = int(round(crop_seconds * maker.model_rate)) if crop_seconds else None

    def batch(self, b: int) -> dict:
        g = self.groups_per_batch
        groups = [self.maker.make(b * g + j, STREAM_TRAIN) for j in range(g)]
        rng = np.random.default_rng([self.maker.data.seed, _STREAM_CROP, b])
        return collate(groups, b, self.crop, rng)


class PoolSource:
    """Batches drawn from a :class:`GroupPool`: each epoch is a fresh permutation of the pool."""

    def __init__(self, pool: "GroupPool", groups_per_batch: int, seed: int, crop_seconds: float = 0.0):
        self.pool = pool
        self.groups_per_batch = int(groups_per_batch)
        self.seed = int(seed)
        self.crop = int(round(crop_seconds * pool.sample_rate)) if crop_seconds else None
        self._perms: OrderedDict[int, np.ndarray] = OrderedDict()

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._perms:
            self._perms[epoch] = np.random.default_rng([self.seed, _STREAM_EPOCH, epoch]).permutation(len(self.pool))
            while len(self._perms) > 2:
                self._perms.popitem(last=False)
        return self._perms[epoch]

    def batch(self, b: int) -> dict:
        n = len(self.pool)
        ids = []
        for j in range(self.groups_per_batch):
            flat = b * self.groups_per_batch + j
            ids.append(int(self._perm(flat // n)[flat % n]))
        rng = np.random.default_rng([self.seed, _STREAM_CROP, b])
        return collate([self.pool.group(i) for i in ids], b, self.crop, rng)


def _identity(x):
    return x


def _worker_init(worker_id: int) -> None:
    """Seed a DataLoader worker's global generators (batches themselves are seeded by their index)."""
    import random

    import torch

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    torch.set_num_threads(1)


def _torch():
    import torch
    from torch.utils.data import IterableDataset

    return torch, IterableDataset


def make_batch_stream(source, start: int = 0, *, num_workers: int = 0, rank: int = 0, world: int = 1,
                      seed: int = 0, stop: int | None = None) -> Iterator[dict]:
    """Iterate batches ``start, start+1, ...`` of ``source`` (optionally sharded over DDP ranks).

    Local batch ``b`` of rank ``r`` is global batch ``b * world + r``. With ``num_workers > 0`` a
    torch DataLoader runs ``source.batch`` in worker processes; worker ``w`` makes local batches
    ``w, w + num_workers, ...`` and the loader returns them round-robin, i.e. in order: the stream
    is the same for any number of workers.
    """
    torch, IterableDataset = _torch()

    class _Stream(IterableDataset):
        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
            b = start + wid
            while stop is None or b < stop:
                yield source.batch(b * world + rank)
                b += nw

    if num_workers <= 0:
        yield from _Stream()
        return
    loader = torch.utils.data.DataLoader(
        _Stream(), batch_size=None, num_workers=num_workers, collate_fn=_identity, worker_init_fn=_worker_init,
        prefetch_factor=2, persistent_workers=False, generator=torch.Generator().manual_seed(int(seed)),
    )
    yield from loader


# ------------------------------------------------------------------------------------- pools


def _shard_name(k: int) -> str:
    return f"shard-{k:05d}.safetensors"


class GroupPool:
    """A fixed set of groups on disk (written by :func:`build_pool`), read lazily.

    Files: ``pool.json`` (settings, fingerprint, counts) and ``shard-NNNNN.safetensors`` holding
    ``audio.<i>`` (float16 ``[K, N]``) per group, with the groups' labels and provenance as JSON
    in the shard's metadata.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        path = self.folder / POOL_FILE
        if not path.is_file():
            raise DeePAQError(f"'{self.folder}' holds no group pool ({POOL_FILE} is missing); make one with "
                              "--make-cache.")
        try:
            self.info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DeePAQError(f"The group pool index '{path}' cannot be read ({exc.__class__.__name__}).") from None
        if self.info.get("format") != POOL_FORMAT or int(self.info.get("version", 0)) > POOL_VERSION:
            raise DeePAQError(f"'{path}' is not a DeePAQ group pool this version can read.")
        self.shard_size = int(self.info["shard_size"])
        self.sample_rate = int(self.info["sample_rate"])
        self._n = int(self.info["n_groups"])
        self._handles: OrderedDict[int, tuple[Any, list]] = OrderedDict()

    def __len__(self) -> int:
        return self._n

    def __getstate__(self):  # file handles do not cross process boundaries
        state = dict(self.__dict__)
        state["_handles"] = OrderedDict()
        return state

    def _shard(self, k: int):
        if k not in self._handles:
            from safetensors import safe_open

            handle = safe_open(str(self.folder / _shard_name(k)), framework="np")
            metas = json.loads(handle.metadata()["groups"])
            self._handles[k] = (handle, metas)
            while len(self._handles) > 8:
                self._handles.popitem(last=False)
        return self._handles[k]

    def group(self, i: int) -> Group:
        if not 0 <= i < self._n:
            raise IndexError(i)
        k, j = divmod(i, self.shard_size)
        handle, metas = self._shard(k)
        return Group.from_meta(handle.get_tensor(f"audio.{i}"), metas[j])

    def groups(self) -> Iterator[Group]:
        for i in range(self._n):
            yield self.group(i)


def settings_fingerprint(cfg, families: Sequence[str], stream: int) -> str:
    """Hash of the settings that decide what a pool's groups are (not the files, not its size)."""
    import hashlib

    d = cfg.data
    keys = ("excerpt_seconds", "generation_rate", "channels", "label_mode", "group_mode", "versions_per_group",
            "seed", "target_lufs", "silence_db", "min_active_fraction", "heldout_fraction")
    payload = {k: getattr(d, k) for k in keys}
    payload.update(families=list(families), model_rate=cfg.model_rate, stream=stream)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def pool_fingerprint(cfg, files: Sequence[SourceFile], families: Sequence[str], stream: int) -> str:
    """Hash of everything that decides a pool's content: the settings and the clean files."""
    import hashlib

    payload = {"settings": settings_fingerprint(cfg, families, stream),
               "files": [(f.path, f.frames, f.sample_rate, f.channels) for f in files]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


class _ShardJobs:
    """Picklable job: shard ``k`` of a pool -> list of groups (runs in a DataLoader worker)."""

    def __init__(self, maker: GroupMaker, stream: int, shard_size: int, n_groups: int, todo: list[int],
                 balance: bool):
        self.maker, self.stream, self.shard_size, self.n_groups = maker, stream, shard_size, n_groups
        self.todo, self.balance = todo, balance

    def batch(self, b: int) -> tuple[int, list[Group], float]:
        k = self.todo[b]
        t0 = time.perf_counter()
        groups = []
        for i in range(k * self.shard_size, min(self.n_groups, (k + 1) * self.shard_size)):
            fam = self.maker.families[i % len(self.maker.families)] if self.balance else None
            groups.append(self.maker.make(i, self.stream, family=fam))
        return k, groups, time.perf_counter() - t0


def build_pool(maker: GroupMaker, folder: str | os.PathLike, n_groups: int, *, stream: int = STREAM_TRAIN,
               fingerprint: str, settings_fp: str = "", settings: dict | None = None, num_workers: int = 0,
               shard_size: int = 32, balance_families: bool = False, progress=None) -> "GroupPool":
    """Generate groups ``0 .. n_groups-1`` of a stream into ``folder`` (resumable, deterministic).

    Shards already on disk with the same fingerprint are kept, so an interrupted build continues
    where it stopped and a larger ``n_groups`` extends a pool. The content does not depend on
    ``num_workers``.

    Parameters
    ----------
    fingerprint, settings_fp : str
        :func:`pool_fingerprint` (shards with another one are regenerated) and
        :func:`settings_fingerprint` (stored for :func:`open_pool`).
    balance_families : bool
        Group ``i`` uses family ``i mod len(families)`` (held-out sets: every family equally).
    progress : callable, optional
        ``progress(done_groups, n_groups, seconds_per_group)`` after every shard.
    """
    from safetensors.numpy import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / POOL_FILE
    old: dict = {}
    if index_path.is_file():
        try:
            old = json.loads(index_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        if old.get("fingerprint") != fingerprint or int(old.get("shard_size", shard_size)) != shard_size:
            if settings_fp and old.get("settings_fingerprint") == settings_fp:
                raise DeePAQError(f"The clean files changed since the group pool in '{out}' was made; train on it as "
                                  "it is, or delete it to make a new one.")
            raise DeePAQError(f"The group pool in '{out}' was made with other data settings; delete it or choose "
                              "another data.cache folder.")
    n_shards = math.ceil(n_groups / shard_size)
    todo = []
    for k in range(n_shards):
        expected = min(n_groups, (k + 1) * shard_size) - k * shard_size
        path = out / _shard_name(k)
        if path.is_file() and _shard_ok(path, fingerprint, expected):
            continue
        todo.append(k)
    done = (n_shards - len(todo)) * shard_size
    log.info("group pool %s: %d groups wanted, %d shards to generate", out, n_groups, len(todo))
    jobs = _ShardJobs(maker, stream, shard_size, n_groups, todo, balance_families)
    t_start = time.perf_counter()
    made = 0
    for k, groups, secs in make_batch_stream(jobs, 0, num_workers=min(num_workers, len(todo)), stop=len(todo)):
        tensors = {f"audio.{k * shard_size + j}": g.audio.astype(np.float16) for j, g in enumerate(groups)}
        metadata = {"format": POOL_FORMAT, "fingerprint": fingerprint, "groups": json.dumps([g.meta() for g in groups])}
        tmp = out / (_shard_name(k) + ".tmp")
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, out / _shard_name(k))
        made += len(groups)
        done = min(n_groups, done + len(groups))
        rate = (time.perf_counter() - t_start) / made
        log.info("group pool %s: %d/%d groups (%.2f s wall time per group; one worker takes %.2f s per group)",
                 out.name, done, n_groups, rate, secs / max(1, len(groups)))
        if progress is not None:
            progress(done, n_groups, rate)
    samples = maker.n_model
    info = {
        "format": POOL_FORMAT,
        "version": POOL_VERSION,
        "fingerprint": fingerprint,
        "settings_fingerprint": settings_fp,
        "stream": "heldout" if stream == STREAM_HELDOUT else "train",
        "n_groups": int(n_groups),
        "shard_size": int(shard_size),
        "versions_per_group": int(maker.data.versions_per_group),
        "sample_rate": int(maker.model_rate),
        "samples": int(samples),
        "label_mode": maker.data.label_mode,
        "group_mode": "single" if balance_families else maker.data.group_mode,
        "families": list(maker.families),
        "files": len(maker.files),
        "hours": round(sum(f.duration_s for f in maker.files) / 3600, 3),
        "settings": settings or {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds_per_group": round((time.perf_counter() - t_start) / made, 4) if made else old.get("seconds_per_group"),
    }
    tmp = out / (POOL_FILE + ".tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, index_path)
    return GroupPool(out)


def _shard_ok(path: Path, fingerprint: str, expected: int) -> bool:
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as fh:
            meta = fh.metadata() or {}
            return meta.get("fingerprint") == fingerprint and len(json.loads(meta.get("groups", "[]"))) == expected
    except Exception:  # a truncated shard from an interrupted run: regenerate it
        return False


def open_pool(folder: str | os.PathLike, fingerprint: str, settings_fp: str) -> GroupPool:
    """Open a pool and check it was made with the current data settings.

    Other settings are an error (the pool holds other groups than the config describes); other
    clean files only a warning (files were added or removed since: the pool is used as made).
    """
    pool = GroupPool(folder)
    if pool.info.get("settings_fingerprint") != settings_fp:
        raise DeePAQError(f"The group pool in '{folder}' was made with other data settings; rebuild it with "
                          "'deepaq train --make-cache CONFIG' or point data.cache elsewhere.")
    if pool.info.get("fingerprint") != fingerprint:
        log.warning("the clean files changed since the pool in %s was made; training on the pool as it is", folder)
    return pool


# ------------------------------------------------------------------------------------- the data plan


@dataclass
class DataPlan:
    """What a run trains and validates on: files, families, and where groups come from."""

    train_files: list[SourceFile]
    heldout_files: list[SourceFile]
    families: tuple[str, ...]
    train_maker: GroupMaker
    heldout_maker: GroupMaker

    def summary(self) -> dict:
        hours = sum(f.duration_s for f in self.train_files) / 3600
        return {
            "train_files": len(self.train_files),
            "train_hours": round(hours, 3),
            "heldout_files": len(self.heldout_files),
            "heldout_hours": round(sum(f.duration_s for f in self.heldout_files) / 3600, 3),
            "families": list(self.families),
        }


def plan_data(cfg) -> DataPlan:
    """Scan the clean audio, split off held-out files and build the group makers."""
    files = scan_audio(cfg.data.clean, min_seconds=cfg.data.excerpt_seconds)
    train, heldout = split_heldout(files, cfg.data.heldout_fraction, cfg.data.seed)
    families = resolve_families(cfg.data.families)
    heldout_data = dataclasses.replace(cfg.data, group_mode="single")
    return DataPlan(
        train_files=train,
        heldout_files=heldout,
        families=families,
        train_maker=GroupMaker(train, cfg.data, cfg.model_rate, families),
        heldout_maker=GroupMaker(heldout, heldout_data, cfg.model_rate, families),
    )


def heldout_pool(cfg, plan: DataPlan, folder: str | os.PathLike, num_workers: int = 0) -> GroupPool | None:
    """The held-out validation groups (one family per group, families in turn), made once and kept.

    An existing set made with the same settings and size is reused even if the clean files
    changed since (it belongs with the training pool made at the same time); otherwise it is
    made again.
    """
    import shutil

    n = cfg.validation.heldout_groups
    if n <= 0:
        return None
    fp = pool_fingerprint(cfg, plan.heldout_files, plan.families, STREAM_HELDOUT)
    sfp = settings_fingerprint(cfg, plan.families, STREAM_HELDOUT)
    folder = Path(folder)
    if (folder / POOL_FILE).is_file():
        pool = GroupPool(folder)
        if pool.info.get("settings_fingerprint") == sfp and len(pool) == n:
            if pool.info.get("fingerprint") != fp:
                log.warning("the clean files changed since the held-out groups in %s were made; using them as made",
                            folder)
            return pool
        log.info("held-out groups in %s were made with other settings; making them again", folder)
        shutil.rmtree(folder)
    return build_pool(plan.heldout_maker, folder, n, stream=STREAM_HELDOUT, fingerprint=fp, settings_fp=sfp,
                      num_workers=num_workers, balance_families=True, shard_size=32)


__all__ = [
    "AUDIO_EXTENSIONS",
    "DataPlan",
    "Group",
    "GroupMaker",
    "GroupPool",
    "OnlineSource",
    "PoolSource",
    "SourceFile",
    "build_pool",
    "collate",
    "heldout_pool",
    "make_batch_stream",
    "open_pool",
    "plan_data",
    "pool_fingerprint",
    "settings_fingerprint",
    "read_excerpt",
    "resolve_families",
    "scan_audio",
    "split_heldout",
    "usable_ladder",
]
