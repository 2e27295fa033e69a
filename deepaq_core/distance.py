"""Distances between frame sequences, as each model's card defines them.

Two kinds exist:

``embedding_l2`` (default; learned embeddings, MERT)
    Frames are unit vectors. A window's distance is the L2 distance between the window-mean
    embeddings, re-normalised (0-2).
``loudness_disturbance`` (the auditory front end)
    Frames are specific-loudness patterns. Per frame, the band-wise loudness difference minus a
    masked part (a fraction of the smaller of the two loudnesses, so differences under a louder
    signal count less), with missing components weighted less than added ones (as in ITU-T P.862
    and BS.1387, listeners object more to what is added than to what is lost), combined over
    bands by a power mean and divided by the reference's mean loudness over the scored span, so
    that the same relative damage gives the same number on loud and quiet material. Windows and
    the whole file combine frames by a power mean of order ``time_p``: short bursts (a clip, a
    dropout) weigh more than their share of time, as listeners weigh them.

    A second term (``lost_weight`` > 0) counts lost bandwidth by how many auditory bands it
    spans rather than by their loudness: per frame, every band the reference makes audible
    (specific loudness above ``lost_floor``) contributes the fraction of its loudness that the
    degraded signal lacks, and the sum over bands is divided by the number of bands. Loudness
    alone makes a missing top octave count for little on material whose treble is quiet (a
    3.5 kHz low-pass of a piano barely moves the total loudness), while listeners hear the
    dulled sound at once; ITU-R BS.1387 (PEAQ) likewise measures bandwidth apart from noise
    loudness. The term is already relative, so it is added after the normalisation.

    A third term (``structure_weight`` > 0) counts lost temporal structure: per band, the
    correlation over ``structure_frames`` frames (about 0.2 s) between the reference's and the
    degraded signal's loudness envelopes. Loudness differences alone see two different pieces
    with similar spectra as only moderately different, while listeners hear at once that the
    notes and syllables are not the same; envelope correlation is how intelligibility measures
    (STOI) and modulation-based quality models (PEMO-Q) see it. Bands whose reference envelope is
    nearly steady (coefficient of variation under ``structure_cv``) count in proportion, so
    steady tones and noise do not turn random fluctuations into damage, and a correlation loss
    under ``structure_tolerance`` is not counted. Like the lost-bandwidth term it is a fraction of
    the bands, added after the normalisation, and it needs the aligned sequences
    (:func:`sequence_disturbance`); the reference x degraded time matrix leaves it out.

    With ``reliable_bins`` > 0, a band whose power the front end measures on fewer spectrum bins
    than that counts in proportion in the loudness disturbance (``band_weights``, derived from
    the card's front end by :meth:`DistanceSpec.from_card`). Below about 250 Hz a half-ERB band of
    the 2048-point frame holds about one bin, so its loudness follows the phase of the components
    in it and the noise of a single bin more than what is heard: a constant phase shift of pink
    noise, inaudible to listeners, shows there first.

    With ``presence_weight`` > 0, a band centred between ``presence_low_hz`` and
    ``presence_high_hz`` (2-8 kHz: where the ear is most sensitive and where the MUSHRA low-pass
    anchors cut) counts ``1 + presence_weight`` times in the lost-bandwidth term (``lost_weights``,
    derived from the front end's band centres by :meth:`DistanceSpec.from_card`). Counting every
    band alike let a 3.5 kHz low-pass of music whose treble is quiet (piano, soprano) pass at 43-49,
    where listeners comparing with the reference mark the dull sound down at once; counting the
    top octaves more instead made the lost band above 6.6 kHz of speech (which listeners without
    a reference hardly mind) dominate.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np

EMBEDDING_L2 = "embedding_l2"
LOUDNESS_DISTURBANCE = "loudness_disturbance"
#: Every distance type a card may name.
DISTANCE_TYPES = (EMBEDDING_L2, LOUDNESS_DISTURBANCE)


@dataclass(frozen=True)
class DistanceSpec:
    """How a model's frames are compared (the card's ``distance`` entry)."""

    type: str = EMBEDDING_L2
    mask: float = 0.25
    weight_added: float = 1.0
    weight_missing: float = 0.5
    band_p: float = 2.0
    time_p: float = 4.0
    block_frames: int = 1
    block_p: float = 6.0
    lost_weight: float = 0.0
    lost_floor: float = 0.2
    lost_tolerance: float = 0.0
    structure_weight: float = 0.0
    structure_frames: int = 16
    structure_cv: float = 0.2
    structure_tolerance: float = 0.1
    reliable_bins: float = 0.0
    presence_weight: float = 0.0
    presence_low_hz: float = 2000.0
    presence_high_hz: float = 8000.0
    #: Per-band weights of the loudness disturbance [K]; set by :meth:`from_card`, never read from a card.
    band_weights: tuple[float, ...] | None = None
    #: Per-band weights of the lost-bandwidth term [K]; set by :meth:`from_card`, never read from a card.
    lost_weights: tuple[float, ...] | None = None
    units: str = "L2 distance between unit-norm embeddings (0-2), lower is better"

    @classmethod
    def from_card(cls, card: dict) -> "DistanceSpec":
        from deepaq_core.errors import ModelError

        d = card.get("distance") or {}
        known = set(cls.__dataclass_fields__) - {"band_weights", "lost_weights"}
        spec = cls(**{k: v for k, v in d.items() if k in known})
        if spec.type not in DISTANCE_TYPES:
            raise ModelError(f"Unknown distance type '{spec.type}' in the model card.")
        for field in ("reliable_bins", "presence_weight"):
            if getattr(spec, field) > 0 and (card.get("backbone") or {}).get("type") != "auditory":
                raise ModelError(f"The model card's distance.{field} needs the auditory front end (backbone type "
                                 "'auditory').")
        if spec.reliable_bins > 0 or spec.presence_weight > 0:
            from deepaq_core.model.auditory_config import AuditoryConfig

            bins, centres = (np.asarray(a) for a in _bands(AuditoryConfig.from_dict(card["backbone"].get("config") or {})))
            if spec.reliable_bins > 0:
                spec = replace(spec, band_weights=tuple(float(w) for w in np.minimum(1.0, bins / spec.reliable_bins)))
            if spec.presence_weight > 0:
                inside = (centres >= spec.presence_low_hz) & (centres < spec.presence_high_hz)
                spec = replace(spec, lost_weights=tuple(float(w) for w in 1.0 + spec.presence_weight * inside))
        return spec

    @property
    def pooled_frames(self) -> bool:
        """True when windows pool frame distances (not embeddings)."""
        return self.type == LOUDNESS_DISTURBANCE


@functools.lru_cache(maxsize=8)
def _bands(config) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``auditory_bands(config)["bins"]`` and ``["centre_hz"]``, built once per front-end config (the
    filterbank takes about a millisecond, and the scorer reads the spec for every pair)."""
    from deepaq_core.model.auditory_tables import auditory_bands

    bands = auditory_bands(config)
    return tuple(float(b) for b in bands["bins"]), tuple(float(f) for f in bands["centre_hz"])


def loudness_disturbance(ref: np.ndarray, deg: np.ndarray, spec: DistanceSpec) -> np.ndarray:
    """Unnormalised disturbance between specific-loudness patterns.

    Parameters
    ----------
    ref, deg : ndarray [..., K]
        Specific loudness per band (broadcastable against each other).

    Returns
    -------
    ndarray [...]
        Power mean over bands of the masked, asymmetrically weighted loudness difference (same
        units as the loudness; divide by a reference loudness to compare across material), each
        band times its ``band_weights`` entry when the spec has them.
    """
    ref = np.asarray(ref, dtype=np.float64)
    deg = np.asarray(deg, dtype=np.float64)
    diff = deg - ref
    d = np.maximum(np.abs(diff) - spec.mask * np.minimum(ref, deg), 0.0)
    d *= np.where(diff > 0, spec.weight_added, spec.weight_missing)
    if spec.band_weights is not None:
        d *= np.asarray(spec.band_weights)
    return np.mean(d**spec.band_p, axis=-1) ** (1.0 / spec.band_p)


def lost_bandwidth(ref: np.ndarray, deg: np.ndarray, spec: DistanceSpec) -> np.ndarray:
    """Fraction of the auditory bands whose audible reference loudness the degraded signal lacks.

    Parameters
    ----------
    ref, deg : ndarray [..., K]
        Specific loudness per band (broadcastable against each other).

    Returns
    -------
    ndarray [...]
        ``sum_k w_k [ref_k > lost_floor] * clip((1 - deg_k / ref_k - tol) / (1 - tol), 0, 1) / K``,
        with ``w_k`` the spec's ``lost_weights`` (1 without them) and ``tol`` its
        ``lost_tolerance``: 0 when nothing audible is missing, 1 (without weights) when every band
        is audible in the reference and silent in the degraded. The tolerance keeps a band that
        holds most of its loudness from counting: a frame grid a few samples off a transient moves
        a few per cent of a band's energy into the next frame, which is not a lost band.
    """
    ref = np.asarray(ref, dtype=np.float64)
    deg = np.asarray(deg, dtype=np.float64)
    audible = ref > spec.lost_floor
    frac = 1.0 - deg / np.where(audible, ref, 1.0)
    if spec.lost_tolerance > 0:
        frac = (frac - spec.lost_tolerance) / (1.0 - spec.lost_tolerance)
    lost = np.where(audible, np.clip(frac, 0.0, 1.0), 0.0)
    if spec.lost_weights is not None:
        lost *= np.asarray(spec.lost_weights)
    return np.sum(lost, axis=-1) / ref.shape[-1]


def frame_disturbance(ref: np.ndarray, deg: np.ndarray, spec: DistanceSpec, norm: float) -> np.ndarray:
    """The loudness disturbance divided by the reference level ``norm``, plus the lost-bandwidth term."""
    ref = np.asarray(ref)
    deg = np.asarray(deg)
    if ref.ndim == 2 and ref.shape == deg.shape and ref.shape[0] > _FRAME_BLOCK:
        # Every frame on its own, so in blocks of frames: the same values, with a few MB of
        # temporaries instead of a dozen fresh [T, K] float64 arrays (for a 10-minute file
        # those page faults took 0.38 s against 0.03 s for the arithmetic).
        return np.concatenate([frame_disturbance(ref[a : a + _FRAME_BLOCK], deg[a : a + _FRAME_BLOCK], spec, norm)
                               for a in range(0, ref.shape[0], _FRAME_BLOCK)])
    d = loudness_disturbance(ref, deg, spec) / norm
    if spec.lost_weight > 0:
        d = d + spec.lost_weight * lost_bandwidth(ref, deg, spec)
    return d


_FRAME_BLOCK = 4096


def disturbance_matrix(ref: np.ndarray, deg: np.ndarray, spec: DistanceSpec, norm: float) -> np.ndarray:
    """:func:`frame_disturbance` of every reference frame against every degraded frame: [N, M] float32.

    Parameters
    ----------
    ref : ndarray [N, K]
    deg : ndarray [M, K]
        Specific-loudness frames (or time bins of them).
    norm : float
        The reference level (:func:`reference_level`).

    Returns
    -------
    ndarray [N, M]
        Row ``i``, column ``j``: ``frame_disturbance(ref[i], deg[j], spec, norm)``, to float32
        rounding. In float32 blocks with in-place steps (the float64 broadcast over [N, M, K]
        made about five times the memory traffic: 117 ms for a 250 x 250 matrix); numpy, not
        torch, so that scoring the built-in model never loads torch (torch's version of this
        took 28-35 ms against 40-43 ms, on two threads). The values feed the app's heatmap,
        not the score.
    """
    r = np.ascontiguousarray(ref, dtype=np.float32)
    d = np.ascontiguousarray(deg, dtype=np.float32)
    k = r.shape[1]
    bw = np.ones(k, np.float32) if spec.band_weights is None else np.asarray(spec.band_weights, np.float32)
    w_added, w_missing = bw * np.float32(spec.weight_added), bw * np.float32(spec.weight_missing)
    audible = r > spec.lost_floor
    r_inv = np.where(audible, np.float32(1.0) / np.where(audible, r, np.float32(1.0)), np.float32(0.0))
    r_inv = r_inv.astype(np.float32, copy=False)
    lw = None if spec.lost_weights is None else np.asarray(spec.lost_weights, np.float32)
    out = np.empty((r.shape[0], d.shape[0]), np.float32)
    blk = 64  # [64, M, K] blocks: a few MB at a time
    for i in range(0, r.shape[0], blk):
        rr = r[i : i + blk, None, :]
        diff = d[None] - rr
        x = np.abs(diff)
        x -= np.float32(spec.mask) * np.minimum(rr, d[None])
        np.maximum(x, np.float32(0.0), out=x)
        x *= np.where(diff > 0, w_added, w_missing)
        if spec.band_p == 2.0:
            np.square(x, out=x)
            row = np.sqrt(x.mean(-1))
        else:
            np.power(x, np.float32(spec.band_p), out=x)
            row = x.mean(-1) ** np.float32(1.0 / spec.band_p)
        row /= np.float32(norm)
        if spec.lost_weight > 0:
            lost = d[None] * r_inv[i : i + blk, None, :]
            np.subtract(np.float32(1.0), lost, out=lost)
            if spec.lost_tolerance > 0:
                lost -= np.float32(spec.lost_tolerance)
                lost /= np.float32(1.0 - spec.lost_tolerance)
            np.clip(lost, np.float32(0.0), np.float32(1.0), out=lost)
            lost *= audible[i : i + blk, None, :]
            if lw is not None:
                lost *= lw
            row += np.float32(spec.lost_weight) * lost.sum(-1) / np.float32(k)
        out[i : i + blk] = row
    return out


def lost_structure(ref: np.ndarray, deg: np.ndarray, spec: DistanceSpec) -> np.ndarray:
    """Per frame, the fraction of the bands whose loudness envelope no longer follows the reference's.

    Parameters
    ----------
    ref, deg : ndarray [T, K]
        Aligned specific-loudness sequences (frame ``t`` of ``deg`` is compared with frame ``t``
        of ``ref``).

    Returns
    -------
    ndarray [T]
        ``sum_k a_k * clip(1 - tol - max(r_k, 0), 0) / (1 - tol) / K``, where ``r_k`` is the
        Pearson correlation of the two envelopes of band ``k`` over the ``structure_frames``
        frames centred on the frame, and ``a_k`` is 1 for a band whose reference is audible
        (mean loudness over those frames above ``lost_floor``) and fluctuates (coefficient of
        variation at least ``structure_cv``), proportionally less for a steadier one, 0 for an
        inaudible one. 0 for identical or gain-scaled signals; near 1 for unrelated material.
    """
    ref = np.asarray(ref)
    deg = np.asarray(deg)
    n = ref.shape[0]
    size = max(1, min(int(spec.structure_frames), n))
    # In blocks of time with a halo wider than the moving average on either side: the same
    # values as one pass over the file (the halo holds the true neighbours, and the file's own
    # ends are the blocks' ends there), with a few MB of temporaries instead of hundreds of MB
    # for a 10-minute file (fresh pages cost more than the arithmetic).
    halo = size + 1
    out = np.empty(n)
    for a in range(0, n, _STRUCTURE_BLOCK):
        b = min(a + _STRUCTURE_BLOCK, n)
        lo, hi = max(0, a - halo), min(n, b + halo)
        out[a:b] = _lost_structure_block(ref[lo:hi], deg[lo:hi], spec, size)[a - lo : b - lo]
    return out


_STRUCTURE_BLOCK = 2048


def _lost_structure_block(ref: np.ndarray, deg: np.ndarray, spec: DistanceSpec, size: int) -> np.ndarray:
    from scipy.ndimage import uniform_filter1d

    n, k = ref.shape
    # The five moving averages (of ref, deg, ref², deg², ref x deg) in one call over a
    # [5, K, T] array that is contiguous along time (filtering [T, K] along its strided first
    # axis is slower), with in-place arithmetic.
    st = np.empty((5, k, n))
    st[0] = ref.T
    st[1] = deg.T
    np.multiply(st[0], st[0], out=st[2])
    np.multiply(st[1], st[1], out=st[3])
    np.multiply(st[0], st[1], out=st[4])
    m = uniform_filter1d(st, size, axis=-1, mode="nearest")
    mr, md, vr, vd, cov = m
    vr -= mr * mr
    np.maximum(vr, 0.0, out=vr)
    vd -= md * md
    np.maximum(vd, 0.0, out=vd)
    cov -= mr * md
    pv = vr * vd
    varies = pv > 1e-14
    # A steady band in both signals has no envelope to compare (correlation 1); a band that
    # fluctuates in the reference and is flat in the degraded signal has lost it (correlation 0).
    corr = np.where(vr > 1e-7, 0.0, 1.0)
    np.divide(cov, np.sqrt(pv, where=varies, out=np.ones_like(pv)), out=corr, where=varies)
    np.clip(corr, 0.0, 1.0, out=corr)
    weight = np.sqrt(vr)
    weight /= np.abs(mr) + 1e-9
    weight /= max(spec.structure_cv, 1e-9)
    np.minimum(weight, 1.0, out=weight)
    weight *= mr > spec.lost_floor
    tol = min(max(spec.structure_tolerance, 0.0), 0.99)
    loss = (1.0 - tol) - corr
    np.maximum(loss, 0.0, out=loss)
    loss *= weight / (1.0 - tol)
    return loss.sum(axis=0) / k


def sequence_disturbance(ref: np.ndarray, deg: np.ndarray, spec: DistanceSpec, norm: float) -> np.ndarray:
    """:func:`frame_disturbance` of aligned sequences [T, K], plus the weighted lost structure: [T]."""
    d = frame_disturbance(ref, deg, spec, norm)
    if spec.structure_weight > 0:
        d = d + spec.structure_weight * lost_structure(ref, deg, spec)
    return d


def reference_level(ref_frames: np.ndarray, valid: np.ndarray) -> float:
    """Mean specific loudness of the reference over the valid frames (the normaliser)."""
    sel = ref_frames[valid] if valid.any() else ref_frames
    return float(max(np.mean(sel, dtype=np.float64), 1e-6))


def power_mean(values: np.ndarray, p: float, axis=None) -> np.ndarray | float:
    """``(mean(values ** p)) ** (1 / p)``, ignoring NaN."""
    return np.nanmean(np.asarray(values, dtype=np.float64) ** p, axis=axis) ** (1.0 / p)


def window_block_means(frame_d: np.ndarray, starts: np.ndarray, window: int, stop: int,
                       spec: DistanceSpec) -> np.ndarray:
    """Two-level pooling of each window ``[s, min(s + window, stop))``, as in ITU-T P.862: [W].

    Inside the window, every frame is replaced by the power mean (order ``block_p``) of the
    ``block_frames`` around it (a short event dominates its own third of a second), and those
    values are combined by a power mean of order ``time_p`` (across blocks, an event counts by
    its share of time). Blocks never reach outside their window, so damage stays where it is.
    With ``block_frames <= 1`` this is the plain power mean of order ``time_p``.
    """
    if spec.block_frames <= 1:
        return window_power_means(frame_d, starts, window, stop, spec.time_p)
    from scipy.ndimage import uniform_filter1d

    x = np.nan_to_num(np.asarray(frame_d, dtype=np.float64), nan=0.0) ** spec.block_p
    out = np.empty(len(starts))
    for i, s in enumerate(starts):
        seg = x[s : min(s + window, stop)]
        blocks = uniform_filter1d(seg, size=min(int(spec.block_frames), seg.size), mode="nearest")
        out[i] = np.mean(np.maximum(blocks, 0.0) ** (spec.time_p / spec.block_p)) ** (1.0 / spec.time_p)
    return out


def window_power_means(frame_d: np.ndarray, starts: np.ndarray, window: int, stop: int, p: float) -> np.ndarray:
    """Power mean of the frame distances of each window ``[s, min(s + window, stop))``: [W]."""
    from deepaq_core.embedding import window_sums

    x = np.nan_to_num(np.asarray(frame_d, dtype=np.float64), nan=0.0) ** p
    ends = np.minimum(starts + window, stop)
    sums = window_sums(x[:, None], starts, ends)[:, 0]
    return (np.maximum(sums, 0.0) / np.maximum(ends - starts, 1)) ** (1.0 / p)
