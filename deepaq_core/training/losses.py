"""Rank-N-Contrast loss, adapted to DeePAQ's weak supervision.

Rank-N-Contrast (Zha et al., 2023, "Rank-N-Contrast: Learning Continuous Representations for
Regression") ranks samples against an anchor by their label distance: for anchor ``i`` and
positive ``j``, with similarity ``s(i, k) = -||z_i - z_k||_2 / tau`` and label distance
``d(i, k) = |y_i - y_k|``::

    l(i, j) = -log( exp(s(i, j)) / sum_{k != i, d(i, k) >= d(i, j)} exp(s(i, k)) )

i.e. ``j`` must be closer to ``i`` in embedding space than every ``k`` that is at least as far
from ``i`` in label space (ties included in the denominator, ``j`` itself always is).

DeePAQ's adaptation: there is one embedding per degraded version (no two augmented views); a
batch holds several versions of each source excerpt (``groups``, the clean version at label 0
among them), and the options restrict who ranks whom:

* ``anchors="all"``: every item is an anchor; ``"clean"``: only items with label exactly 0
  (the clean versions) are, so the loss ranks degraded versions by their distance to the clean
  one, as the metric is used.
* ``grouping="within"``: positives ``j`` and denominator terms ``k`` come from the anchor's own
  group only (versions of the same content); ``"across"``: from the whole batch, which also
  asks for distances to be comparable across content (sensible only when labels share a scale
  across excerpts and families, e.g. teacher labels).

Averaging, as in the paper's ``1/N sum_i 1/(N-1) sum_j l(i, j)``: ``l(i, j)`` is averaged over
the valid positives ``j`` of each anchor, then over the anchors that have at least one (a group
of size 1 has none); with every item an anchor and no groups this is exactly the paper's
formula. A batch without any valid pair gives a zero loss that still backpropagates.
"""

from __future__ import annotations

import math

import torch

_ANCHORS = ("all", "clean")
_GROUPING = ("within", "across")


def _check(z: torch.Tensor, y: torch.Tensor, groups, tau: float, anchors: str, grouping: str):
    if z.ndim != 2:
        raise ValueError(f"z must have shape [N, D], got {tuple(z.shape)}")
    y = torch.as_tensor(y, device=z.device)
    if y.shape != (z.shape[0],):
        raise ValueError(f"y must have shape [N] = [{z.shape[0]}], got {tuple(y.shape)}")
    if groups is None:
        g = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
    else:
        g = torch.as_tensor(groups, device=z.device)
        if g.shape != (z.shape[0],):
            raise ValueError(f"groups must have shape [N] = [{z.shape[0]}], got {tuple(g.shape)}")
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau}")
    if anchors not in _ANCHORS:
        raise ValueError(f"anchors must be one of {_ANCHORS}, got {anchors!r}")
    if grouping not in _GROUPING:
        raise ValueError(f"grouping must be one of {_GROUPING}, got {grouping!r}")
    return y, g


def rnc_loss(
    z: torch.Tensor,
    y: torch.Tensor,
    groups: torch.Tensor | None = None,
    tau: float = 0.2,
    anchors: str = "all",
    grouping: str = "within",
) -> torch.Tensor:
    """Adapted Rank-N-Contrast loss, vectorised (O(N^2 log N) time, O(N^2) memory).

    Parameters
    ----------
    z : torch.Tensor
        ``[N, D]`` embeddings, one per version. DeePAQ's head outputs unit-norm embeddings, so
        distances are at most 2 and ``tau = 0.2`` spans similarities ``-10 .. 0``; ``z`` is used
        as given (not normalised here).
    y : torch.Tensor
        ``[N]`` surrogate labels (0 = clean, larger = worse), any real dtype.
    groups : torch.Tensor or None
        ``[N]`` integer source-excerpt ids; None = one group.
    tau : float
        Temperature.
    anchors : {"all", "clean"}
        Which items act as anchors (see module docstring).
    grouping : {"within", "across"}
        Whether positives and denominators stay inside the anchor's group.

    Returns
    -------
    torch.Tensor
        Scalar loss (``z``'s dtype), differentiable with respect to ``z``.

    Notes
    -----
    For each anchor the other items are sorted by label distance; the denominator of pair
    ``(i, j)`` is then a suffix log-sum-exp starting at the first item whose label distance
    equals ``d(i, j)`` (``searchsorted`` left), which counts ties as the definition asks.
    Excluded items (the anchor itself, other groups under ``"within"``) get label distance
    +inf (sorted last) and a similarity 100 below the batch minimum instead of -inf: their
    ``exp`` underflows to nothing next to ``exp(s(i, j))``, and unlike -inf it keeps
    ``logcumsumexp``'s gradient finite.
    """
    y, g = _check(z, y, groups, tau, anchors, grouping)
    n = z.shape[0]
    # Exact pairwise distances (no |a|^2 + |b|^2 - 2ab shortcut, which is inexact near 0).
    dist = torch.cdist(z.unsqueeze(0), z.unsqueeze(0), compute_mode="donot_use_mm_for_euclid_dist")[0]
    sim = -dist / tau  # [N, N]
    yd = y.to(torch.float64)
    label_dist = (yd[:, None] - yd[None, :]).abs()  # float64: exact ties for equal label gaps

    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    usable = ~eye  # k may appear in anchor i's sums
    if grouping == "within":
        usable &= g[:, None] == g[None, :]
    is_anchor = (yd == 0) if anchors == "clean" else torch.ones(n, dtype=torch.bool, device=z.device)
    pairs = usable & is_anchor[:, None]  # valid (i, j)

    very_low = sim.detach().min() - 100.0
    sim_masked = torch.where(usable, sim, very_low)
    ld_masked = torch.where(usable, label_dist, torch.full_like(label_dist, math.inf))
    ld_sorted, order = torch.sort(ld_masked, dim=1)
    sim_sorted = torch.gather(sim_masked, 1, order)
    # suffix[i, p] = log sum_{q >= p} exp(sim_sorted[i, q])
    suffix = torch.logcumsumexp(sim_sorted.flip(1), dim=1).flip(1)
    start = torch.searchsorted(ld_sorted.contiguous(), ld_masked.contiguous(), side="left").clamp_max(n - 1)
    log_denominator = torch.gather(suffix, 1, start)
    pair_loss = log_denominator - sim  # -log(exp(s_ij) / denominator)

    weights = pairs.to(z.dtype)
    per_anchor_count = weights.sum(dim=1)
    has_pairs = per_anchor_count > 0
    if not bool(has_pairs.any()):
        return z.sum() * 0.0
    per_anchor = (pair_loss * weights).sum(dim=1)[has_pairs] / per_anchor_count[has_pairs]
    return per_anchor.mean()


def reference_distances(z: torch.Tensor, y: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """``[N, 1]``: each item's distance to its own group's clean version (the lowest label).

    This is the quantity scoring reports (distance between a degraded version and its
    reference). The clean item's own distance is about 1e-6 (a clamp keeps the square root's
    gradient finite).
    """
    ref = torch.empty(z.shape[0], dtype=torch.long, device=z.device)
    for gid in torch.unique(groups):
        idx = (groups == gid).nonzero().squeeze(1)
        ref[idx] = idx[torch.argmin(y[idx])]
    sq = ((z - z[ref]) ** 2).sum(dim=1)
    return sq.clamp_min(1e-12).sqrt().unsqueeze(1)


def batch_loss(z: torch.Tensor, y: torch.Tensor, groups: torch.Tensor, loss_cfg) -> torch.Tensor:
    """The training loss a :class:`~deepaq_core.training.config.LossConfig` describes.

    ``on = "embeddings"``: :func:`rnc_loss` on the embeddings (the paper's form). ``on =
    "distances"``: :func:`rnc_loss` on the one-dimensional :func:`reference_distances`, i.e. the
    items are ranked by their distance to their own reference, and with ``grouping = "across"``
    those distances are also ordered across excerpts and families (calibration), which the
    embedding form cannot ask without pulling different music together.
    """
    if getattr(loss_cfg, "on", "embeddings") == "distances":
        z = reference_distances(z, y, groups)
    return rnc_loss(z, y, groups, tau=loss_cfg.tau, anchors=loss_cfg.anchors, grouping=loss_cfg.grouping)


def rnc_loss_naive(
    z: torch.Tensor,
    y: torch.Tensor,
    groups: torch.Tensor | None = None,
    tau: float = 0.2,
    anchors: str = "all",
    grouping: str = "within",
) -> torch.Tensor:
    """Reference implementation of :func:`rnc_loss` with plain Python loops over (i, j, k).

    Slow (O(N^3) interpreted) and not differentiable: for tests only. Same arguments and
    averaging as :func:`rnc_loss`; computed in float64 from the definition.
    """
    y, g = _check(z, y, groups, tau, anchors, grouping)
    zs = z.detach().double().cpu().tolist()
    ys = [float(v) for v in y.double().cpu().tolist()]
    gs = g.cpu().tolist()
    n = len(zs)

    def sim(i: int, k: int) -> float:
        return -math.sqrt(sum((a - b) ** 2 for a, b in zip(zs[i], zs[k]))) / tau

    anchor_losses = []
    for i in range(n):
        if anchors == "clean" and ys[i] != 0:
            continue
        candidates = [k for k in range(n) if k != i and (grouping == "across" or gs[k] == gs[i])]
        losses = []
        for j in candidates:
            d_ij = abs(ys[i] - ys[j])
            denominator = sum(math.exp(sim(i, k)) for k in candidates if abs(ys[i] - ys[k]) >= d_ij)
            losses.append(-math.log(math.exp(sim(i, j)) / denominator))
        if losses:
            anchor_losses.append(sum(losses) / len(losses))
    value = sum(anchor_losses) / len(anchor_losses) if anchor_losses else 0.0
    return torch.tensor(value, dtype=torch.float64)
