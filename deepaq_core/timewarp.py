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
    """Euclidean cost of reference frame i against degraded frame i + o - band: [T, 2 * band + 1]."""
    n = a.shape[0]
    width = 2 * band + 1
    cost = np.full((n, width), np.inf, dtype=np.float32)  # 45 MB for 10 minutes at a 1.5 s band
    for o in range(width):
        shift = o - band
        lo, hi = max(0, -shift), min(n, n - shift)
        if hi > lo:
            diff = a[lo:hi] - b[lo + shift : hi + shift]
            cost[lo:hi, o] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return cost


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
    i = 1
    while i < n:
        m = min(block, n - i)
        for j in range(m):
            prev = rows[j]
            np.minimum(prev[2:], prev[:-2], out=best)
            best += penalty
            np.minimum(best, prev[1:-1], out=best)
            np.add(best, cost[i + j], out=rows[j + 1, 1:-1])
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
