"""Streaming embedding of long signals with bounded memory, and the distance maths on embeddings.

A signal is cut into chunks of ``chunk_s`` seconds plus ``context_s`` of context on each side;
only each chunk's central frames are kept, so a 60-minute file never holds more than one batch of
per-layer hidden states. What is kept for the whole file is small: the final embeddings
[T, D] and per-layer hidden states averaged over at most ``heatmap_columns`` time bins.

Frame ``k`` describes samples ``[k * hop, (k + 1) * hop)``: the backbone's receptive field is
centred on that span. ``T = N // hop``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

from deepaq_core.errors import Cancelled


@dataclass(frozen=True)
class Embedded:
    """Embeddings of one mono signal.

    Attributes
    ----------
    frames : ndarray [T, D] float32
        Unit-norm frame embeddings at the model's frame rate.
    layer_bins : ndarray [L, B, H] float32
        Per-layer hidden states averaged over bins of ``bin_frames`` frames (only frames where
        ``valid`` is True contribute); NaN for bins without valid frames.
    bin_frames : int
    valid : ndarray [T] bool
        Frames whose hop lies inside the valid span (the aligned overlap): the curve's time grid.
    whole : ndarray [T] bool or None
        Valid frames whose whole analysis window lies inside the span (None: the same as
        ``valid``); only these enter a frame distance.
    """

    frames: np.ndarray
    layer_bins: np.ndarray
    bin_frames: int
    valid: np.ndarray
    whole: np.ndarray | None = None

    @property
    def scored(self) -> np.ndarray:
        """The frames a frame distance counts: ``whole`` where known, else ``valid``."""
        return self.valid if self.whole is None else self.whole

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def bin_size(num_frames: int, max_columns: int) -> int:
    """Frames per heatmap bin so that at most ``max_columns`` bins cover ``num_frames``."""
    return max(1, math.ceil(num_frames / max(1, max_columns)))


def _is_cancelled(cancel) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


@dataclass(frozen=True)
class Spliced:
    """A mono signal read piece by piece and never built in full.

    It is ``inner * pre_gain * gain`` (two float32 products, in that order) on samples
    ``[start, start + len(inner))`` and ``outer * outer_gain`` everywhere else (``len(outer)``
    samples in all): a degraded signal placed on its reference's
    timeline with the reference filling the rest, both at the calibration gain. Building that
    signal took two fresh arrays as long as the file per channel (115 MB each for 10 minutes of
    48 kHz audio), whose new pages cost more than the multiplication; :func:`iter_embed_many`
    reads each chunk straight from the pieces, with the same float32 values.
    """

    outer: np.ndarray
    inner: np.ndarray
    start: int = 0
    gain: float = 1.0
    outer_gain: float = 1.0
    pre_gain: float = 1.0

    @property
    def shape(self) -> tuple[int]:
        return (int(self.outer.shape[-1]),)

    def read(self, lo: int, hi: int, out: np.ndarray) -> None:
        """Write samples ``[lo, hi)`` into ``out[: hi - lo]``."""
        a, b = self.start, self.start + int(self.inner.shape[-1])
        for x0, x1, src, off, g in ((lo, min(hi, a), self.outer, 0, self.outer_gain),
                                    (max(lo, a), min(hi, b), self.inner, -a, self.gain),
                                    (max(lo, b), hi, self.outer, 0, self.outer_gain)):
            if x1 > x0:
                dst = out[x0 - lo : x1 - lo]
                piece = src[x0 + off : x1 + off]
                if src is self.inner and self.pre_gain != 1.0:
                    np.multiply(piece, np.float32(self.pre_gain), out=dst)
                    piece = dst
                if g == 1.0:
                    dst[:] = piece
                else:
                    np.multiply(piece, np.float32(g), out=dst)


class _Signal:
    """Chunking of one mono signal and accumulation of its chunks' embeddings (see :func:`iter_embed`)."""

    def __init__(self, model, wave: np.ndarray, chunk_s: float, context_s: float, heatmap_columns: int,
                 valid_samples: tuple[int, int] | None) -> None:
        hop, rf = model.hop_length, model.receptive_field
        self.hop = hop
        fr = model.sample_rate / hop
        self.n = n = int(wave.shape[-1])
        self.total = total = n // hop
        if total < 1:
            raise ValueError("signal shorter than one frame")
        self.core = core = max(1, min(int(round(chunk_s * fr)), total))
        # A frame-local front end (no attention, no convolutions across frames) needs no context.
        self.ctx = ctx = int(round(context_s * fr)) if getattr(model.backbone, "needs_context", True) else 0
        self.pad_left = max(0, (rf - hop) // 2)
        self.seg_len = (core + 2 * ctx - 1) * hop + rf
        self.n_chunks = math.ceil(total / core)
        start_v, stop_v = valid_samples if valid_samples is not None else (0, n)
        k = np.arange(total)
        self.valid = (k * hop >= start_v) & ((k + 1) * hop <= stop_v)
        # Frames whose whole analysis window lies inside the valid span. One that reaches past a cut
        # (the file's ends, the edge of the aligned overlap) sees the zeros beyond it, and the cut
        # spreads the energy of whatever was sounding there over every band, differently for two
        # signals of different phase; such frames take no part in a distance. Signals too short
        # for a whole window keep their valid frames.
        first = k * hop - self.pad_left
        self.whole = self.valid & (first >= start_v) & (first + rf <= stop_v)
        if not self.whole.any():
            self.whole = self.valid
        self.bf = bin_size(total, heatmap_columns)
        self.n_bins = math.ceil(total / self.bf)
        self.frames = np.zeros((total, model.head.dim), dtype=np.float32)
        self.layer_sum = None
        self.counts = np.zeros(self.n_bins, dtype=np.float64)
        self.wave = wave if isinstance(wave, Spliced) else np.asarray(wave, dtype=np.float32)

    def segment(self, c: int, out: np.ndarray) -> None:
        """Write chunk ``c`` with its context (zeros beyond the signal) into ``out`` [seg_len] (zeroed)."""
        s = (c * self.core - self.ctx) * self.hop - self.pad_left
        lo, hi = max(s, 0), min(s + self.seg_len, self.n)
        if hi > lo:
            if isinstance(self.wave, Spliced):
                self.wave.read(lo, hi, out[lo - s : hi - s])
            else:
                out[lo - s : hi - s] = self.wave[lo:hi]

    def add(self, c: int, emb, hidden) -> None:
        """Keep chunk ``c``'s central frames: ``emb`` [T, D] and ``hidden`` [L, T, H] (arrays or CPU tensors)."""
        ctx, core, total, bf = self.ctx, self.core, self.total, self.bf
        g0 = c * core
        m = min(core, total - g0)
        self.frames[g0 : g0 + m] = np.asarray(emb[ctx : ctx + m])
        h = np.asarray(hidden[:, ctx : ctx + m]).astype(np.float64)  # [L, m, H]
        if self.layer_sum is None:
            self.layer_sum = np.zeros((h.shape[0], self.n_bins, h.shape[2]), dtype=np.float64)
        v = self.valid[g0 : g0 + m]
        if v.any():
            bins = (np.arange(g0, g0 + m) // bf)[v]  # ascending: contiguous runs per bin
            used, first_idx = np.unique(bins, return_index=True)
            self.layer_sum[:, used] += np.add.reduceat(h[:, v], first_idx, axis=1)
            self.counts[used] += np.diff(np.append(first_idx, bins.size))

    def plan(self, c: int):
        """Where chunk ``c``'s kept frames fall in the heatmap bins (for a model that sums its
        hidden states into them itself, see :meth:`LoadedModel.run`)."""
        from deepaq_core.model.device import BinPlan

        g0 = c * self.core
        m = min(self.core, self.total - g0)
        lead = g0 % self.bf
        return BinPlan(ctx=self.ctx, frames=m, lead=lead, bins=-(-(lead + m) // self.bf), bin_frames=self.bf,
                       valid=self.valid[g0 : g0 + m])

    def add_sums(self, c: int, emb, sums: np.ndarray) -> None:
        """Keep chunk ``c``'s central frames ``emb`` [T, D] and its hidden states already summed into
        bins (``sums`` [L, bins, H] float64, from :meth:`plan`'s :class:`BinPlan`)."""
        ctx, core, total, bf = self.ctx, self.core, self.total, self.bf
        g0 = c * core
        m = min(core, total - g0)
        self.frames[g0 : g0 + m] = np.asarray(emb[ctx : ctx + m])
        if self.layer_sum is None:
            self.layer_sum = np.zeros((sums.shape[0], self.n_bins, sums.shape[2]), dtype=np.float64)
        b0 = g0 // bf
        self.layer_sum[:, b0 : b0 + sums.shape[1]] += sums
        v = self.valid[g0 : g0 + m]
        self.counts[b0 : b0 + sums.shape[1]] += np.bincount((np.arange(g0, g0 + m) // bf - b0)[v],
                                                            minlength=sums.shape[1])

    def result(self) -> Embedded:
        with np.errstate(invalid="ignore", divide="ignore"):
            bins_mean = (self.layer_sum / self.counts[None, :, None]).astype(np.float32)
        return Embedded(frames=self.frames, layer_bins=bins_mean, bin_frames=self.bf, valid=self.valid,
                        whole=self.whole)


def iter_embed(
    loaded,
    wave: np.ndarray,
    *,
    chunk_s: float = 10.0,
    context_s: float = 1.0,
    heatmap_columns: int = 512,
    valid_samples: tuple[int, int] | None = None,
    cancel: Callable[[], bool] | None = None,
    alone: bool | Callable[[], bool] = False,
) -> Generator[float, None, Embedded]:
    """Embed a mono signal chunk by chunk; yields the fraction done, returns :class:`Embedded`.

    Parameters
    ----------
    loaded : LoadedModel
    wave : ndarray [N] float32 at ``loaded.model.sample_rate``, or a :class:`Spliced` signal
    valid_samples : (start, stop) or None
        Sample range holding real signal (the aligned overlap); frames outside it are marked
        invalid and do not enter the layer bins. Default: the whole signal.
    cancel : callable or Event, optional
        Checked between chunks; raises :class:`~deepaq_core.errors.Cancelled`.
    alone : bool or callable
        As in :func:`iter_embed_many`.
    """
    embs = yield from iter_embed_many(loaded, [wave], chunk_s=chunk_s, context_s=context_s,
                                      heatmap_columns=heatmap_columns, valid_samples=[valid_samples], cancel=cancel,
                                      alone=alone)
    return embs[0]


def iter_embed_many(
    loaded,
    waves: list[np.ndarray],
    *,
    chunk_s: float = 10.0,
    context_s: float = 1.0,
    heatmap_columns: int = 512,
    valid_samples: list[tuple[int, int] | None] | None = None,
    cancel: Callable[[], bool] | None = None,
    alone: bool | Callable[[], bool] = False,
) -> Generator[float, None, list[Embedded]]:
    """Embed several mono signals, their chunks batched together; yields the fraction done.

    Chunks of all the signals queue up and run ``loaded.batch_size`` at a time (chunks of equal
    length together), so a GPU sees full batches even when each signal is a single chunk. Each
    signal's result is exactly what :func:`iter_embed` gives it alone whenever the model's output
    for a chunk does not depend on the other chunks of its batch (always with batch size 1).
    ``alone``: nothing else works beside this call (see :meth:`LoadedModel.run`); a callable is
    asked before each batch (models whose values do not depend on their thread count only).
    """
    valid_samples = valid_samples or [None] * len(waves)
    sigs = [_Signal(loaded.model, w, chunk_s, context_s, heatmap_columns, v) for w, v in zip(waves, valid_samples)]
    work = [(i, c) for i, sig in enumerate(sigs) for c in range(sig.n_chunks)]
    step = max(1, int(getattr(loaded, "batch_size", 1)))
    queued: dict[int, list[tuple[int, int]]] = {}  # by segment length

    def flush(items: list[tuple[int, int]]) -> None:
        seg_len = sigs[items[0][0]].seg_len
        segs = np.zeros((len(items), seg_len), dtype=np.float32)
        for row, (i, c) in enumerate(items):
            sigs[i].segment(c, segs[row])
        if getattr(loaded, "bins_on_device", False):
            # Only the heatmap bins' sums come back from the device, not every layer's states.
            emb, sums = loaded.run(segs, alone=alone() if callable(alone) else alone,
                                   bins=[sigs[i].plan(c) for i, c in items])
            for row, (i, c) in enumerate(items):
                sigs[i].add_sums(c, emb[row], sums[row])
            return
        emb, hidden = loaded.run(segs, alone=alone() if callable(alone) else alone)
        for row, (i, c) in enumerate(items):
            sigs[i].add(c, emb[row], hidden[:, row])

    for k, (i, c) in enumerate(work):
        if _is_cancelled(cancel):
            raise Cancelled("Scoring was cancelled.")
        group = queued.setdefault(sigs[i].seg_len, [])
        group.append((i, c))
        last = k == len(work) - 1
        if len(group) >= step or last:
            for key in ([sigs[i].seg_len] if not last else list(queued)):
                if queued.get(key):
                    flush(queued.pop(key))
            yield (k + 1) / len(work)
    return [sig.result() for sig in sigs]


def embed(loaded, wave: np.ndarray, **kwargs) -> Embedded:
    """Run :func:`iter_embed` to completion."""
    gen = iter_embed(loaded, wave, **kwargs)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def _normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def frame_distances(ref: np.ndarray, deg: np.ndarray) -> np.ndarray:
    """L2 distance per frame between two [T, D] embedding sequences, shape [T]."""
    return np.linalg.norm(ref - deg, axis=-1).astype(np.float32)


def window_grid(first: int, stop: int, window: int, hop: float) -> tuple[np.ndarray, np.ndarray]:
    """Windows over ``[first, stop)`` on a regular grid: (start frames [W] int64, nominal starts [W]).

    Window ``k`` nominally starts at ``first + k * hop`` frames (``hop`` may be fractional: 0.5 s
    at 75 frames/s is 37.5 frames); its frames start at that value rounded, so the grid keeps the
    requested hop exactly with no drift. When the grid does not reach ``stop``, one final window
    ``[stop - window, stop)`` is added, so the windows cover the whole span. A span no longer
    than one window gives one shorter window ``[first, stop)``.
    """
    span = stop - first
    if span <= window:
        return np.array([first], dtype=np.int64), np.array([float(first)])
    count = int(np.floor((span - window) / hop + 1e-9)) + 1
    nominal = first + np.arange(count) * float(hop)
    if nominal[-1] + window < stop - 1e-6:
        nominal = np.append(nominal, float(stop - window))
    return np.round(nominal).astype(np.int64), nominal


def window_starts(first: int, stop: int, window: int, hop: float) -> np.ndarray:
    """Window start frames over ``[first, stop)`` (:func:`window_grid`'s first array)."""
    return window_grid(first, stop, window, hop)[0]


def window_sums(frames: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Float64 sums of the rows ``frames[s:e]`` for every ``(s, e)`` pair: [W, D].

    Equal to differences of ``np.cumsum(frames, axis=0, dtype=np.float64)``, computed by hand
    instead: the frames are cut at every window edge, each piece is summed (a contiguous
    row-wise add), and only the pieces are accumulated. numpy's 2-D cumulative sum is slow
    (75 ms for 5 minutes of frames, 22500 x 256, against 11 ms this way) and holds the GIL
    throughout, which stalled the desktop app's UI while its worker thread scored; this loop
    lets other threads in between pieces.
    """
    starts = np.asarray(starts, np.int64)
    ends = np.asarray(ends, np.int64)
    edges = np.unique(np.concatenate([[0], starts, ends]))
    prefix = np.zeros((edges.size, frames.shape[1]), np.float64)
    for k in range(edges.size - 1):
        prefix[k + 1] = frames[edges[k] : edges[k + 1]].sum(axis=0, dtype=np.float64)
    np.cumsum(prefix, axis=0, out=prefix)  # a few hundred rows: cheap
    return prefix[np.searchsorted(edges, ends)] - prefix[np.searchsorted(edges, starts)]


def pooled_windows(frames: np.ndarray, starts: np.ndarray, window: int, stop: int) -> np.ndarray:
    """Unit-norm mean embedding of each window ``[s, min(s + window, stop))``, shape [W, D]."""
    sums = window_sums(frames, starts, np.minimum(starts + window, stop))
    return _normalise(sums).astype(np.float32)


def pooled(frames: np.ndarray) -> np.ndarray:
    """Unit-norm mean embedding of a whole sequence, shape [D]."""
    return _normalise(frames.astype(np.float64).mean(axis=0)).astype(np.float32)


def layer_cosine_distance(ref_bins: np.ndarray, deg_bins: np.ndarray) -> np.ndarray:
    """``1 - cos`` between binned hidden states per layer and bin: [L, B, H] x2 -> [L, B]."""
    num = np.sum(ref_bins.astype(np.float64) * deg_bins, axis=-1)
    den = np.linalg.norm(ref_bins, axis=-1) * np.linalg.norm(deg_bins, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (1.0 - num / np.maximum(den, 1e-12)).astype(np.float32)


def time_matrix(ref: np.ndarray, deg: np.ndarray, first: int, stop: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Distance between time-binned embeddings: ref bins (rows) x degraded bins (columns).

    Returns the [M, M] matrix and the bin start frames [M], with ``M <= size`` bins over
    ``[first, stop)``.
    """
    from scipy.spatial.distance import cdist

    bf = bin_size(stop - first, size)
    starts = np.arange(first, stop, bf, dtype=np.int64)
    r = pooled_windows(ref, starts, bf, stop)
    d = pooled_windows(deg, starts, bf, stop)
    return cdist(r, d).astype(np.float32), starts
