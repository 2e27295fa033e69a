"""The adapted Rank-N-Contrast loss: vectorised vs loop reference, a hand-computed case, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from deepaq_core.training.losses import rnc_loss, rnc_loss_naive


def _random_batch(seed: int, n: int = 14, dim: int = 8, dtype=torch.float64):
    """Unit-norm embeddings, labels on a quarter grid (exact ties) with a clean item per group."""
    g = torch.Generator().manual_seed(seed)
    z = torch.nn.functional.normalize(torch.randn(n, dim, generator=g, dtype=dtype), dim=1)
    groups = torch.randint(0, 4, (n,), generator=g)
    y = torch.randint(1, 5, (n,), generator=g).to(dtype) / 4
    for gid in groups.unique():
        y[(groups == gid).nonzero()[0]] = 0.0  # the first item of each group is its clean version
    return z, y, groups


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("anchors", ["all", "clean"])
@pytest.mark.parametrize("grouping", ["within", "across"])
def test_vectorised_matches_loop(seed, anchors, grouping):
    z, y, groups = _random_batch(seed)
    fast = rnc_loss(z, y, groups, tau=0.2, anchors=anchors, grouping=grouping)
    slow = rnc_loss_naive(z, y, groups, tau=0.2, anchors=anchors, grouping=grouping)
    assert float(fast) == pytest.approx(float(slow), abs=1e-5)


@pytest.mark.parametrize("seed", [5, 6])
def test_vectorised_matches_loop_float32_continuous_labels_no_groups(seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.nn.functional.normalize(torch.randn(20, 16, generator=g), dim=1)
    y = torch.rand(20, generator=g)
    fast = rnc_loss(z, y, None, tau=0.1)
    slow = rnc_loss_naive(z, y, None, tau=0.1)
    assert fast.dtype == torch.float32
    assert float(fast) == pytest.approx(float(slow), abs=1e-5)


def test_hand_computed_three_samples():
    # 1-D embeddings 0, 0.5, 1.5 (distances 0.5, 1.5, 1.0), labels 0, 1, 2, tau = 1.
    z = torch.tensor([[0.0], [0.5], [1.5]], dtype=torch.float64)
    y = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    e = math.exp
    # Anchor 0: label distances 1 (to item 1) and 2 (to item 2).
    l_01 = -math.log(e(-0.5) / (e(-0.5) + e(-1.5)))  # both k have label distance >= 1
    l_02 = -math.log(e(-1.5) / e(-1.5))  # only item 2 is as far: 0
    # Anchor 1: label distance 1 to both others - a tie, so both are in both denominators.
    l_10 = -math.log(e(-0.5) / (e(-0.5) + e(-1.0)))
    l_12 = -math.log(e(-1.0) / (e(-0.5) + e(-1.0)))
    # Anchor 2: label distances 2 (to item 0) and 1 (to item 1).
    l_20 = -math.log(e(-1.5) / e(-1.5))
    l_21 = -math.log(e(-1.0) / (e(-1.0) + e(-1.5)))
    expected = ((l_01 + l_02) / 2 + (l_10 + l_12) / 2 + (l_20 + l_21) / 2) / 3
    assert float(rnc_loss(z, y, tau=1.0)) == pytest.approx(expected, abs=1e-12)
    # Only the clean item (label 0) as anchor.
    assert float(rnc_loss(z, y, tau=1.0, anchors="clean")) == pytest.approx((l_01 + l_02) / 2, abs=1e-12)


def test_gradient_flows_and_is_finite_with_duplicate_embeddings():
    z0 = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
    z = torch.cat([z0, z0[:2]]).requires_grad_(True)  # two exact duplicates: zero distances
    y = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.0, 0.1])
    groups = torch.tensor([0, 0, 0, 1, 1, 1, 1, 0])
    loss = rnc_loss(z, y, groups)
    loss.backward()
    assert z.grad is not None
    assert torch.isfinite(z.grad).all()
    assert z.grad.abs().sum() > 0


def test_groups_of_one_give_zero_loss_that_backpropagates():
    z = torch.randn(4, 3, requires_grad=True)
    loss = rnc_loss(z, torch.tensor([0.0, 0.5, 1.0, 0.2]), torch.arange(4))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(z.grad, torch.zeros_like(z))
    assert float(rnc_loss_naive(z, torch.tensor([0.0, 0.5, 1.0, 0.2]), torch.arange(4))) == 0.0


def test_clean_anchors_without_clean_items_give_zero():
    z = torch.randn(3, 2)
    assert float(rnc_loss(z, torch.tensor([0.1, 0.2, 0.3]), anchors="clean")) == 0.0


def _arc(labels: torch.Tensor, reverse: bool) -> torch.Tensor:
    """Unit vectors on an arc starting at the clean version (angle 0).

    ``reverse=False``: angle grows with the label, so embedding distances rank like labels.
    ``reverse=True``: the degraded versions are placed in the opposite order (the worst one
    nearest the clean one). A mirror image would not do: the loss sees only distances.
    """
    angle = labels * 2.0
    if reverse:
        angle = torch.where(labels > 0, (labels.max() + labels[labels > 0].min() - labels) * 2.0, angle)
    return torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)


@pytest.mark.parametrize("anchors", ["all", "clean"])
@pytest.mark.parametrize("grouping", ["within", "across"])
def test_ordered_embeddings_have_lower_loss_than_reversed(anchors, grouping):
    y = torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8, 1.0] * 3)
    groups = torch.arange(3).repeat_interleave(6)
    perm = torch.randperm(18, generator=torch.Generator().manual_seed(0))
    ordered = rnc_loss(_arc(y, reverse=False), y, groups, anchors=anchors, grouping=grouping)
    reversed_ = rnc_loss(_arc(y, reverse=True), y, groups, anchors=anchors, grouping=grouping)
    shuffled = rnc_loss(_arc(y, reverse=False)[perm], y, groups, anchors=anchors, grouping=grouping)
    assert float(ordered) < float(shuffled)
    assert float(ordered) < float(reversed_)


def test_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    y = torch.linspace(0, 1, 8).repeat(2)
    groups = torch.arange(2).repeat_interleave(8)
    raw = torch.randn(16, 8, requires_grad=True)
    opt = torch.optim.SGD([raw], lr=0.5)
    first = None
    for _ in range(30):
        loss = rnc_loss(torch.nn.functional.normalize(raw, dim=1), y, groups)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first


def test_bad_arguments_raise():
    z = torch.randn(3, 2)
    with pytest.raises(ValueError):
        rnc_loss(z, torch.zeros(4))
    with pytest.raises(ValueError):
        rnc_loss(z, torch.zeros(3), anchors="some")
    with pytest.raises(ValueError):
        rnc_loss(z, torch.zeros(3), grouping="both")
    with pytest.raises(ValueError):
        rnc_loss(z, torch.zeros(3), tau=0.0)


def test_reference_distances_are_each_items_distance_to_its_own_clean_version():
    from deepaq_core.training.losses import reference_distances

    z = torch.randn(7, 5, dtype=torch.float64)
    y = torch.tensor([0.3, 0.0, 0.6, 0.2, 0.0, 0.9, 0.4], dtype=torch.float64)
    g = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    d = reference_distances(z, y, g)
    assert d.shape == (7, 1)
    for i, c in enumerate([1, 1, 1, 4, 4, 4, 4]):
        assert float(d[i, 0]) == pytest.approx(float((z[i] - z[c]).norm()), abs=1e-5)


def test_distance_ranking_loss_prefers_distances_ordered_by_label_across_groups():
    from types import SimpleNamespace

    from deepaq_core.training.losses import batch_loss

    cfg = SimpleNamespace(tau=0.05, anchors="all", grouping="across", on="distances")
    y = torch.tensor([0.0, 0.2, 0.7, 0.0, 0.4, 0.9])
    g = torch.tensor([0, 0, 0, 1, 1, 1])
    gen = torch.Generator().manual_seed(0)
    base = torch.nn.functional.normalize(torch.randn(2, 16, generator=gen), dim=1)
    step = torch.nn.functional.normalize(torch.randn(16, generator=gen), dim=0)

    def embeddings(distances):  # clean item + versions at the given distances from it
        rows = []
        for k, gi in enumerate(g.tolist()):
            rows.append(base[gi] + distances[k] * step)
        return torch.stack(rows).requires_grad_(True)

    right = embeddings([0.0, 0.1, 0.35, 0.0, 0.2, 0.45])  # one scale across both groups
    wrong = embeddings([0.0, 0.3, 0.35, 0.0, 0.05, 0.1])  # each group in order, scales crossed
    l_right, l_wrong = batch_loss(right, y, g, cfg), batch_loss(wrong, y, g, cfg)
    assert float(l_right) < float(l_wrong)
    l_wrong.backward()
    assert torch.isfinite(wrong.grad).all() and wrong.grad.abs().sum() > 0
