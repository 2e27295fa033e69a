"""The built-in auditory model on the CPU, in numpy and scipy.fft alone (torch is never imported).

The auditory front end (:mod:`deepaq_core.model.auditory`) has no learned weights, only fixed
tables, so on the CPU it needs no neural-network runtime: the same short-time power spectrum, band
products, masking spread and loudness law run here in numpy, with scipy's FFT. Importing torch
takes 1.4-2 s of CPU on a 2-core machine, which is half of what scoring a 10-minute pair may take
at 200x real time; :func:`deepaq_core.model.registry.load_model` therefore gives every scoring of
such a model on the CPU this implementation, and the torch one only to GPUs (and to training).

The two agree to float32 rounding, not to the last bit: pocketFFT and MKL round differently
(scores within 0.0003 points on the 219 dev pairs). Within this implementation a frame's values
do not depend on how many threads compute it: frames are split between threads, every operation
works frame by frame, and the band product runs on one BLAS thread over at least 15 frames at a
time (numpy's OpenBLAS gives each row the same values for any such product; shorter products
take another kernel). The tests check this on the installed BLAS.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepaq_core.errors import ModelError
from deepaq_core.model.auditory_config import AuditoryConfig
from deepaq_core.model.auditory_tables import _front_end_attributes, front_end_tables

__all__ = ["CPU_DEVICE", "AuditoryFrontEnd", "CpuDevice", "CpuEmbeddingModel", "CpuLoadedModel",
           "accelerator_possible", "build_cpu_model", "runs_on_cpu_path", "set_cpu_threads"]


@dataclass(frozen=True)
class CpuDevice:
    """Stands for ``torch.device("cpu")`` where torch is not loaded: ``.type`` and ``str()`` match."""

    type: str = "cpu"
    index: int | None = None

    def __str__(self) -> str:
        return "cpu"


CPU_DEVICE = CpuDevice()

_THREADS = {"limit": None}


def set_cpu_threads(threads: int | None) -> None:
    """Threads this implementation may use for one call when nothing else runs beside it (None: all cores).

    The app keeps a core for its UI thread and batch worker processes share the machine; they set
    this as they set torch's thread count.
    """
    _THREADS["limit"] = None if threads is None else max(1, int(threads))


def _cpu_threads() -> int:
    cores = os.cpu_count() or 1
    limit = _THREADS["limit"]
    return max(1, min(cores, limit) if limit else cores)


def accelerator_possible() -> bool:
    """Whether ``device="auto"`` could pick anything but the CPU here, answered without importing torch.

    False when torch is not installed, or when its build has neither CUDA nor ROCm and this is not
    macOS (Apple's MPS); read from the installed ``torch/version.py``, which torch's build writes.
    True (ask torch) whenever that file is missing or says anything else.
    """
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return True
    if spec is None:
        return False
    if sys.platform == "darwin" or not spec.submodule_search_locations:
        return True
    try:
        path = Path(list(spec.submodule_search_locations)[0]) / "version.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError, IndexError):
        return True
    values: dict[str, Any] = {}
    for node in tree.body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and value is not None:
            try:
                values[target.id] = ast.literal_eval(value)
            except ValueError:
                values[target.id] = "unknown"
    if "cuda" not in values or "hip" not in values:
        return True
    return values["cuda"] is not None or values["hip"] is not None


def runs_on_cpu_path(card: dict) -> bool:
    """Whether a (checked) card describes a model this module computes: an auditory front end whose head
    selects one of its hidden states without a projection (the built-in model)."""
    head = card.get("head") or {}
    return (card["backbone"]["type"] == "auditory" and head.get("select_layer") is not None
            and not head.get("projection", True))


_BLOCK_FRAMES = 128  # frames per block of the front end (see AuditoryFrontEnd._frames)


class AuditoryFrontEnd:
    """Numpy implementation of :class:`~deepaq_core.model.auditory.AuditoryBackbone` (same tables and steps).

    ``__call__(wave [B, N] float32)`` returns ``[level, specific loudness]``, each [B, T, K] float32,
    ``T = (N - n_fft) // hop + 1`` (no centring), as the torch backbone's ``forward`` does.
    """

    cpu_threads = 1  # beside the scorer's helper thread; ``alone`` calls use every core

    def __init__(self, cfg: AuditoryConfig | None = None) -> None:
        cfg = cfg or AuditoryConfig()
        _front_end_attributes(self, cfg)
        tables = front_end_tables(cfg)
        self.window = tables["window"]
        weights = tables["weights_t"]  # [F, K]
        # Bins outside every band (below ~40 Hz, above f_max) add exact zeros to the band sums:
        # they are left out of the power spectrum and the product.
        used = np.flatnonzero(weights.any(axis=1))
        self.bins = slice(int(used[0]), int(used[-1]) + 1)
        self.weights = np.ascontiguousarray(weights[self.bins])
        self.spread = tables["spread_t"]
        self.threshold = tables["threshold"]

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    def _frames(self, wave: np.ndarray, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
        """Level and specific loudness of frames ``[t0, t1)`` of ``wave`` [B, N]: two [B, t1 - t0, K].

        In blocks of about :data:`_BLOCK_FRAMES` frames, so that each block's temporaries (its
        windowed frames, spectrum and power, about 1 MB each) stay in the CPU's cache: a 10 s
        chunk took 5.1-5.4 ms against 6.1-7.5 ms in one pass. Every block has at least 15 frames,
        the fewest for which the BLAS's band product gives each frame the values a longer product
        gives it (shorter products take another kernel), so the values do not depend on the blocks.
        """
        import scipy.fft

        cfg = self.config
        hop = cfg.hop_length
        n = t1 - t0
        level = np.empty((wave.shape[0], n, self.hidden_size), np.float32)
        loud = np.empty_like(level)
        s, e = np.float32(0.5), np.float32(cfg.exponent)  # BS.1387 threshold index s
        thr = self.threshold
        scale = (thr / s) ** e
        blocks = max(1, n // _BLOCK_FRAMES)
        for k in range(blocks):
            a, b = n * k // blocks, n * (k + 1) // blocks
            span = wave[:, (t0 + a) * hop : (t0 + b - 1) * hop + cfg.n_fft]
            frames = np.lib.stride_tricks.sliding_window_view(span, cfg.n_fft, axis=-1)[:, ::hop]
            spec = scipy.fft.rfft(frames * self.window, axis=-1, workers=1)[..., self.bins]
            power = np.square(spec.real)
            power += np.square(spec.imag)
            excitation = (power @ self.weights) @ self.spread
            part = scale * ((np.float32(1.0) - s + s * excitation / thr) ** e - np.float32(1.0))
            np.maximum(part, np.float32(0.0), out=loud[:, a:b])
            # bels, offset so quiet bands sit near 0
            np.subtract(np.log10(excitation + thr), np.float32(1.0), out=level[:, a:b])
        return level, loud

    def __call__(self, wave: np.ndarray, threads: int = 1) -> list[np.ndarray]:
        """``[level, specific loudness]`` of ``wave`` [B, N]; ``threads``: the frames are split between
        that many threads (at least 64 frames each), with the same values."""
        wave = np.ascontiguousarray(wave, dtype=np.float32)
        if wave.ndim != 2 or wave.shape[1] < self.receptive_field:
            raise ValueError(f"expected [B, N] with N >= {self.receptive_field}, got {list(wave.shape)}")
        total = (wave.shape[1] - self.receptive_field) // self.hop_length + 1
        parts = max(1, min(int(threads), total // 64))
        edges = [total * k // parts for k in range(parts + 1)]
        with _one_blas_thread():
            if parts == 1:
                level, loud = self._frames(wave, 0, total)
            else:
                pool = _pool(parts - 1)
                rest = [pool.submit(self._frames, wave, edges[k], edges[k + 1]) for k in range(1, parts)]
                first = self._frames(wave, edges[0], edges[1])
                done = [first] + [f.result() for f in rest]
                level = np.concatenate([d[0] for d in done], axis=1)
                loud = np.concatenate([d[1] for d in done], axis=1)
        return [level, loud]


_POOL: dict[str, Any] = {"pool": None, "size": 0}
_POOL_LOCK = threading.Lock()


def _pool(size: int) -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if _POOL["pool"] is None or _POOL["size"] < size:
            if _POOL["pool"] is not None:
                _POOL["pool"].shutdown(wait=False)
            _POOL["pool"] = ThreadPoolExecutor(size, thread_name_prefix="deepaq-front")
            _POOL["size"] = size
        return _POOL["pool"]


_BLAS: dict[str, Any] = {"controller": None, "limit": None, "users": 0}


class _one_blas_thread:
    """numpy's BLAS on one thread for the band products, restored after.

    OpenBLAS's own threads spin-wait after each product; beside this module's threads and the
    scorer's helper they doubled a chunk's time on two cores (11.7 against 5.9 ms, measured).
    threadpoolctl finds the BLAS numpy loaded, whichever it is. The limit is process-wide, so
    calls in several threads share one: the first sets it, the last restores the setting before.
    """

    def __enter__(self):
        with _POOL_LOCK:
            if _BLAS["users"] == 0:
                if _BLAS["controller"] is None:
                    from threadpoolctl import ThreadpoolController

                    _BLAS["controller"] = ThreadpoolController()
                _BLAS["limit"] = _BLAS["controller"].limit(limits=1, user_api="blas")
            _BLAS["users"] += 1
        return self

    def __exit__(self, *exc) -> None:
        with _POOL_LOCK:
            _BLAS["users"] -= 1
            if _BLAS["users"] == 0:
                _BLAS["limit"].restore_original_limits()
                _BLAS["limit"] = None


class _Head:
    """The head of a designed model: one hidden state, optionally L2-normalised per frame."""

    def __init__(self, select_layer: int, normalize: bool, dim: int) -> None:
        self.select_layer, self.normalize, self.dim = int(select_layer), bool(normalize), int(dim)

    def __call__(self, hidden: list[np.ndarray]) -> np.ndarray:
        chosen = hidden[self.select_layer]
        if not self.normalize:
            return chosen
        norm = np.sqrt(np.sum(np.square(chosen, dtype=np.float32), axis=-1, keepdims=True))
        return chosen / np.maximum(norm, np.float32(1e-12))


class CpuEmbeddingModel:
    """Front end plus head, with the attributes scoring reads from an embedding model."""

    def __init__(self, backbone: AuditoryFrontEnd, head: _Head) -> None:
        self.backbone, self.head = backbone, head

    sample_rate = property(lambda self: self.backbone.sample_rate)
    hop_length = property(lambda self: self.backbone.hop_length)
    receptive_field = property(lambda self: self.backbone.receptive_field)
    frame_rate = property(lambda self: self.backbone.frame_rate)

    def __call__(self, wave: np.ndarray, threads: int = 1) -> tuple[np.ndarray, list[np.ndarray]]:
        hidden = self.backbone(wave, threads=threads)
        return self.head(hidden), hidden


@dataclass
class CpuLoadedModel:
    """A model of this module with its bundle: the interface of :class:`~deepaq_core.model.device.LoadedModel`.

    ``run`` takes and returns numpy arrays. ``precision`` is kept for the record: the front end
    always computes in float32, as the torch one does under any precision.
    """

    model: CpuEmbeddingModel
    bundle: object
    device: CpuDevice = field(default=CPU_DEVICE)
    batch_size: int = 1
    precision: str = "auto"
    #: its values do not depend on how many threads compute them, so a scorer may choose the
    #: thread count chunk by chunk (from whether its helper is busy) without making scores depend on timing
    thread_invariant = True

    @property
    def info(self):
        return self.bundle.info()

    def run(self, segments, alone: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Embed equal-length segments [S, N] float32: (embeddings [S, T, D], hidden [L, S, T, H]).

        ``alone``: nothing else works beside this call, so it uses every core it may
        (:func:`set_cpu_threads`); otherwise the front end's one thread. Values do not depend on it.
        """
        threads = _cpu_threads() if alone else self.model.backbone.cpu_threads
        emb, hidden = self.model(np.asarray(segments, dtype=np.float32), threads=threads)
        return emb, np.stack(hidden)


def build_cpu_model(bundle, *, allow_unverified: bool = False) -> CpuEmbeddingModel:
    """The model a bundle for which :func:`runs_on_cpu_path` holds describes, with the same checks
    as :func:`~deepaq_core.model.bundle.build_model`: card schema, weights confined to the bundle
    folder, checksum, and the weights file's size and layout against the card."""
    from deepaq_core.model.bundle import _check_checksum, _check_layout, _where, weights_path
    from deepaq_core.model.card_schema import check_card

    card = check_card(bundle.card, _where(bundle))
    if not runs_on_cpu_path(card):
        raise ModelError(f"The model '{bundle.name}' is not a designed auditory model; it needs torch.")
    backbone = AuditoryFrontEnd(AuditoryConfig.from_dict(card["backbone"].get("config") or {}))
    head_cfg = card.get("head") or {}
    select = int(head_cfg["select_layer"])
    if select >= backbone.num_hidden_states:
        raise ModelError(f"The model card of '{card['name']}' has an invalid 'head.select_layer': it must be below "
                         f"{backbone.num_hidden_states} (the backbone's hidden states), not {select}.")
    if bundle.folder is not None:
        wpath = weights_path(bundle)
        _check_checksum(bundle, wpath, allow_unverified)
        # The head's layer logits are the only stored values (unused when one state is selected).
        _check_layout(bundle, wpath, {"head.layer_logits": ((backbone.num_hidden_states,), True, 4)})
    return CpuEmbeddingModel(backbone, _Head(select, bool(head_cfg.get("normalize", True)), backbone.hidden_size))
