"""Alignment that follows time: a banded dynamic-time-warping path over frame features.

Packet loss in "delete" mode, concealment that stretches speech, wow and flutter and some codecs
remove or insert time, so after one global lag every later frame would be compared with the wrong
one. :func:`follow_time` finds, for every reference frame, the degraded frame it corresponds to,
moving at most ``band`` frames off the global alignment. Steps (per reference frame, from the
previous one): the degraded frame advances by 1 (diagonal), by 0 (the degraded signal lacks
time: *dropped*) or by 2 (it has extra time: *inserted*). Off-diagonal steps pay ``penalty`` so
that the path leaves the diagonal only where that clearly matches better.

Written by hand because library DTWs (librosa, dtw-python) take a full T x T cost matrix, which a
10-minute file (45 000 frames) cannot hold; this one keeps only a band of 2 * band + 1 diagonals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_DIAG, _STAY, _SKIP = 0, 1, 2


@dataclass(frozen=True)
class TimeWarp:
    """A warping path on the reference timeline.

    Attributes
    ----------
    path : ndarray [T] int
        Degraded frame index matched to each reference frame (both on the reference timeline
        after the global alignment; the identity when nothing was warped).
    dropped_frames, inserted_frames : int
        Reference frames the degraded signal lacks, and degraded frames it has in excess.
    """

    path: np.ndarray
    dropped_frames: int
    inserted_frames: int

    def lag_frames(self) -> np.ndarray:
        """Local lag of each reference frame, frames (``path - index``), shape [T]."""
        return self.path - np.arange(self.path.size)


def _band_costs(a: np.ndarray, b: np.ndarray, band: int) -> np.ndarray:
    """Euclidean cost of reference frame i against degraded frame i + o - band: [T, 2 * band + 1].

    In blocks of :data:`_COST_ROWS` reference frames against all their offsets at once: each
    block's differences (a few MB) stay in the cache, where one diagonal at a time made a
    signal-long temporary per offset. The same float32 differences and sums as before, so the
    same values (test); cells that face no degraded frame are inf.
    """
    n, f = a.shape
    width = 2 * band + 1
    cost = np.empty((n, width), dtype=np.float32)  # 45 MB for 10 minutes at a 1.5 s band
    padded = np.zeros((n + 2 * band, f), dtype=np.float32)
    padded[band : band + n] = b
    # windows[i, :, o] is degraded frame i + o - band (zeros outside the signal, masked below)
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=0)

    def fill(starts) -> None:
        for r0 in starts:
            r1 = min(n, r0 + _COST_ROWS)
            diff = a[r0:r1, None, :] - windows[r0:r1].transpose(0, 2, 1)
            np.sqrt(np.einsum("ijk,ijk->ij", diff, diff), out=cost[r0:r1])

    # Every second block in a helper thread (numpy releases the GIL in these loops): the same
    # values, in about 55-75 % of the time on 2 cores for a 10-minute file.
    from deepaq_core.audio.align import _fft_helper

    starts = range(0, n, _COST_ROWS)
    helper = _fft_helper() if n * width >= _PARALLEL_CELLS else None
    if helper is None:
        fill(starts)
    else:
        half = helper.submit(fill, starts[1::2])
        fill(starts[0::2])
        half.result()
    # The first and last `band` frames reach past the degraded signal's ends: frame i faces
    # degraded frame i + o - band, which must lie in [0, n).
    for k in range(min(band, n)):
        cost[k, : band - k] = np.inf
        cost[n - 1 - k, band + 1 + k :] = np.inf
    return cost


_COST_ROWS = 64
_PARALLEL_CELLS = 1 << 20


def follow_time(ref: np.ndarray, deg: np.ndarray, band: int, penalty: float) -> TimeWarp:
    """Banded DTW between two equal-length feature sequences.

    Parameters
    ----------
    ref, deg : ndarray [T, F]
        Frame features of the reference and of the degraded signal on the reference timeline.
    band : int
        Largest departure from the diagonal, frames.
    penalty : float
        Cost added to every dropped or inserted step, in the features' Euclidean units.

    Returns
    -------
    TimeWarp
    """
    n = ref.shape[0]
    if deg.shape[0] != n:
        raise ValueError("follow_time needs sequences of equal length")
    band = int(max(0, min(band, n - 1)))
    if n < 2 or band == 0:
        return TimeWarp(np.arange(n), 0, 0)
    width = 2 * band + 1
    cost = _band_costs(np.asarray(ref, np.float32), np.asarray(deg, np.float32), band)
    back = np.zeros((n, width), dtype=np.int8)
    offsets = np.arange(width) - band
    # Start anywhere in the band, paying for the departure from the global alignment.
    acc = cost[0].astype(np.float64) + penalty * np.abs(offsets)
    # Rows of accumulated cost, padded with inf on both sides, for a block of reference frames
    # (row 0: the frame before the block). Candidates for degraded frame j come from the previous
    # row: acc itself is the diagonal (frame j - 1), the stay step is frame j (acc shifted left),
    # the skip step frame j - 2 (acc shifted right). The sequential loop only takes the cheapest
    # (4 numpy calls per frame; min(a, b) + p == min(a + p, b + p) exactly, rounding being
    # monotonic); which step won is worked out afterwards for the whole block at once.
    block = 512
    rows = np.full((block + 1, width + 2), np.inf)
    rows[0, 1:-1] = acc
    best = np.empty(width)
    # Each row's three shifted views, made once: the loop below is bound by the cost of numpy
    # calls, and slicing in it took about a quarter of its time.
    right, left, mid = list(rows[:, 2:]), list(rows[:, :-2]), list(rows[:, 1:-1])
    minimum, add = np.minimum, np.add
    i = 1
    while i < n:
        m = min(block, n - i)
        for j, c in enumerate(cost[i : i + m]):
            minimum(right[j], left[j], out=best)
            best += penalty
            minimum(best, mid[j], out=best)
            add(best, c, out=mid[j + 1])
        prev = rows[:m]
        diag, stay, skip = prev[:, 1:-1], prev[:, 2:] + penalty, prev[:, :-2] + penalty
        k = (stay < diag).astype(np.int8)  # stay and skip win only when strictly cheaper
        k[skip < np.minimum(diag, stay)] = _SKIP
        back[i : i + m] = k
        rows[0] = rows[m]
        i += m
    acc = rows[0, 1:-1]
    o = int(np.argmin(acc + penalty * np.abs(offsets)))
    path = np.empty(n, dtype=np.int64)
    dropped = inserted = 0
    for i in range(n - 1, -1, -1):
        path[i] = i + o - band
        step = back[i, o]
        if i == 0:
            break
        if step == _STAY:
            o, dropped = o + 1, dropped + 1
        elif step == _SKIP:
            o, inserted = o - 1, inserted + 1
    return TimeWarp(np.clip(path, 0, n - 1), dropped, inserted)


def steady_lag(warp: TimeWarp, hold: int) -> TimeWarp:
    """The path without lag excursions shorter than ``hold`` frames.

    A lost packet concealed by repeating the previous one leaves the timeline where it was, but
    the repeated frame resembles an earlier reference frame, so the cheapest path steps back to
    it and forward again: the damage would be matched away. A median over ``hold`` frames of the
    local lag keeps every lasting change (deleted or inserted time moves the lag for good, and a
    median keeps such steps where they are) and removes the brief excursions, so repeated or
    replaced frames are compared with the reference frames they stand in for.
    """
    from scipy.ndimage import median_filter

    n = warp.path.size
    if n == 0:
        return warp
    size = int(hold) | 1  # odd, so the median is one of the lags
    lag = median_filter(warp.lag_frames(), size=size, mode="nearest")
    path = np.clip(np.arange(n) + lag, 0, n - 1).astype(warp.path.dtype)
    steps = np.diff(path)
    dropped = int(np.sum(np.maximum(0, 1 - steps)))
    inserted = int(np.sum(np.maximum(0, steps - 1)))
    return TimeWarp(path=path, dropped_frames=dropped, inserted_frames=inserted)


def stretches(lag: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of equal local lag: ``(start, stop, lag)`` over the frames of ``lag`` [T] (frames)."""
    lag = np.asarray(lag)
    if lag.size == 0:
        return []
    edges = np.flatnonzero(np.diff(lag)) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [lag.size]])
    return [(int(a), int(b), int(lag[a])) for a, b in zip(starts, stops)]


@dataclass(frozen=True)
class Recut:
    """A degraded channel re-cut to the sample (:func:`realign_samples`).

    Attributes
    ----------
    samples : ndarray [M] float32
        The re-cut signal on the reference timeline (from the overlap's first sample).
    pieces : tuple of (start, stop, shift)
        Reference-timeline samples ``[start, stop)`` (counted from the overlap's first sample)
        and the offset, in samples, of the degraded samples placed there relative to the
        global alignment.
    """

    samples: np.ndarray
    pieces: tuple[tuple[int, int, int], ...]

    @property
    def dropped_samples(self) -> int:
        """Reference samples the degraded signal lacks: the sum of the backward steps of the offset."""
        shifts = np.array([p[2] for p in self.pieces])
        return int(np.sum(np.maximum(0, -np.diff(shifts))))

    @property
    def inserted_samples(self) -> int:
        """Degraded samples in excess: the sum of the forward steps of the offset."""
        shifts = np.array([p[2] for p in self.pieces])
        return int(np.sum(np.maximum(0, np.diff(shifts))))

    def shift_at(self, positions: np.ndarray) -> np.ndarray:
        """The offset (samples) at reference-timeline ``positions`` (counted like ``pieces``)."""
        starts = np.array([p[0] for p in self.pieces])
        shifts = np.array([p[2] for p in self.pieces])
        return shifts[np.clip(np.searchsorted(starts, positions, side="right") - 1, 0, len(shifts) - 1)]


#: How much better (in normalised cross-correlation) at least one stretch that the path moved must
#: match at its own lag than at the global alignment before the signal is re-cut: a path may wander
#: where damage rather than time makes other frames look alike (a competing talker, clipping), and
#: re-cutting such a file only adds splices. Deleted packets and drift give gains of 0.5 and more.
_EVIDENCE = 0.2


def _place(out: np.ndarray, deg: np.ndarray, start: int, stop: int, shift: int) -> None:
    """``out[t] = deg[t + shift]`` for ``t`` in ``[start, stop)`` where that sample exists (one slice)."""
    a, b = max(start, -shift), min(stop, deg.shape[-1] - shift)
    if b > a:
        out[a:b] = deg[a + shift : b + shift]


# A stretch from this many samples on (5.5 s at 48 kHz) is correlated in blocks (_lag_correlation).
_BLOCKED_CORRELATION = 1 << 18


def _lag_correlation(win: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """``scipy.signal.correlate(win, seg, mode="valid")`` for a ``win`` a few lags longer than ``seg``.

    Only ``k = win.size - seg.size + 1`` lags are wanted (2 x 640 + 1 when a stretch is searched
    one 13.3 ms frame either way), but one FFT correlation of a stretch several minutes long
    transforms tens of millions of samples three times (3.3 s for a 5-minute pair with one
    dropped packet). Summed over blocks instead: block ``b`` of ``seg`` (``L`` samples) against the
    ``L + k - 1`` samples of ``win`` from the same place, whose circular correlation of length
    ``P = L + k - 1`` equals the linear one at lags ``0 .. k - 1``; the cross-spectra of all blocks
    add up, and one inverse transform gives the sum. The same values up to rounding (the sums
    run in another order).
    """
    import scipy.fft
    from numpy.lib.stride_tricks import sliding_window_view

    n, k = seg.size, win.size - seg.size + 1
    size = scipy.fft.next_fast_len(max(8 * k, 4096), real=True)
    step = size - (k - 1)  # seg samples per block
    blocks = -(-n // step)
    segp = np.zeros(blocks * step)
    segp[:n] = seg
    winp = np.zeros(blocks * step + k - 1)
    winp[: win.size] = win
    acc = np.zeros(size // 2 + 1, dtype=np.complex128)
    group = 256  # blocks per batched transform: about 20 MB of spectra at a time
    for g in range(0, blocks, group):
        h = min(blocks, g + group)
        s_spec = scipy.fft.rfft(segp[g * step : h * step].reshape(h - g, step), size, axis=1)
        w_spec = scipy.fft.rfft(sliding_window_view(winp[g * step : h * step + k - 1], size)[::step], axis=1)
        np.conjugate(s_spec, out=s_spec)
        s_spec *= w_spec
        acc += s_spec.sum(axis=0)
    return scipy.fft.irfft(acc, size)[:k]


def _window_energies(x: np.ndarray, n: int) -> np.ndarray:
    """``e[n + j] - e[j]`` for ``j = 0 .. x.size - n``, ``e`` the cumulative sum of ``x``'s squares in
    float64 from 0: the energy of each ``n``-sample window. Bit for bit what one ``np.cumsum`` over
    the whole signal gives (the sum runs in the same order, carried from piece to piece), with
    pieces of 1 Mi samples instead of several signal-long float64 temporaries."""
    k = x.size - n + 1
    head, tail = np.empty(k), np.empty(k)  # e[0 .. k - 1] and e[n .. n + k - 1]
    total, pos, piece = 0.0, 0, 1 << 20
    while pos < x.size:
        sq = np.asarray(x[pos : pos + piece], dtype=np.float64)
        sq *= sq
        cs = np.cumsum(np.concatenate(([total], sq)))  # cs[t] = e[pos + t]
        for dst, start in ((head, 0), (tail, n)):
            lo, hi = max(start, pos), min(start + k, pos + sq.size + 1)
            if hi > lo:
                dst[lo - start : hi - start] = cs[lo - pos : hi - pos]
        total, pos = float(cs[-1]), pos + sq.size
    return tail - head


def realign_samples(ref: np.ndarray, deg: np.ndarray, first: int, warp: TimeWarp, first_frame: int, hop: int,
                    search: int | None = None) -> Recut | None:
    """The degraded signal re-cut so that every stretch of the path lines up to the sample.

    The path moves in whole frames (13.3 ms for the auditory front end), but deleted packets,
    drift and concealment move time by any number of samples, so after a time step every later
    frame is compared with a degraded signal up to half a frame off; for speech a few
    milliseconds of misalignment alone cost as much as clearly audible damage. Each stretch of
    constant lag is therefore aligned again to the sample, by the peak of its normalised
    cross-correlation with the reference within ``search`` samples (default: one frame) of
    the path's lag, and the degraded signal is rebuilt from the stretches so aligned.

    Parameters
    ----------
    ref : ndarray [N]
        Reference samples (one channel).
    deg : ndarray [M]
        The degraded channel after the global alignment: ``deg[m]`` lies at reference sample
        ``first + m``.
    first : int
        Reference sample where ``deg`` starts.
    warp : TimeWarp
        The path over the reference frames ``first_frame, first_frame + 1, ...``.
    hop : int
        Samples per frame.

    Returns
    -------
    Recut or None
        ``samples[m]`` is the degraded sample that belongs at reference sample ``first + m`` (zero
        where a stretch reaches past the degraded signal), or None when there is nothing to
        re-cut: the path never leaves the global alignment, or no stretch it moved matches the
        reference at its own lag by more than ``_EVIDENCE`` (normalised cross-correlation) better
        than at the global alignment. A stretch too short for the search (under two search
        widths) keeps the path's lag.
    """
    from scipy.signal import correlate

    lag = warp.lag_frames()
    if not np.any(lag):
        return None
    search = hop if search is None else int(search)
    m = int(deg.shape[-1])
    out = np.zeros(m, dtype=np.float32)
    runs = stretches(lag)
    evidence = -1.0
    pieces = []

    def ncc(seg: np.ndarray, s0: int) -> float:
        win = np.asarray(deg[s0 : s0 + seg.size], dtype=np.float64)
        return float(np.dot(win, seg) / np.sqrt(max(float(np.dot(win, win) * np.dot(seg, seg)), 1e-20)))

    for i, (a, b, lag_f) in enumerate(runs):
        # samples of the reference timeline that this stretch covers (the first and last runs
        # reach to the ends of the overlap)
        lo = first if i == 0 else (first_frame + a) * hop
        hi = first + m if i == len(runs) - 1 else (first_frame + b) * hop
        lo, hi = max(lo, first), min(hi, first + m)
        if hi <= lo:
            continue
        shift = lag_f * hop
        seg = np.asarray(ref[lo:hi], dtype=np.float64)
        s0, s1 = lo - first + shift - search, hi - first + shift + search
        if hi - lo >= 2 * search and s0 >= 0 and s1 <= m and np.any(seg):
            if seg.size >= _BLOCKED_CORRELATION:  # a long stretch: no signal-long temporaries
                c = _lag_correlation(deg[s0:s1], seg)  # [2 * search + 1]
                energy = _window_energies(deg[s0:s1], seg.size)
            else:
                win = np.asarray(deg[s0:s1], dtype=np.float64)
                c = correlate(win, seg, mode="valid", method="fft")  # [2 * search + 1]
                e = np.concatenate([[0.0], np.cumsum(win * win)])
                energy = e[seg.size :] - e[: -seg.size]
            score = c / np.sqrt(np.maximum(energy * np.dot(seg, seg), 1e-20))  # normalised: level-free
            best = int(np.argmax(score))
            if lag_f:  # how much better than the global alignment the moved stretch matches
                evidence = max(evidence, float(score[best]) - ncc(seg, lo - first))
            shift = shift + best - search
        _place(out, deg, lo - first, hi - first, shift)
        pieces.append((lo - first, hi - first, int(shift)))
    return Recut(out, tuple(pieces)) if evidence > _EVIDENCE else None
