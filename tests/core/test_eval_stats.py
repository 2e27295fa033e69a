"""Agreement statistics of deepaq_core.evaluation.stats on synthetic data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from deepaq_core.evaluation import stats


def bivariate(rho: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, rho], [rho, 1.0]], size=n)
    return z[:, 0], z[:, 1]


def test_correlations_equal_scipy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=40)
    y = 0.5 * x + rng.normal(size=40) + np.where(rng.random(40) < 0.2, 0.0, 0.3)
    c = stats.correlations(x, y)
    assert c["n"] == 40
    assert c["pearson"] == pytest.approx(scipy.stats.pearsonr(x, y)[0], abs=1e-12)
    assert c["spearman"] == pytest.approx(scipy.stats.spearmanr(x, y)[0], abs=1e-12)
    assert c["kendall"] == pytest.approx(scipy.stats.kendalltau(x, y)[0], abs=1e-12)


def test_correlations_drop_nan_pairs_and_handle_degenerate_input():
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    y = np.array([2.0, 1.0, 3.0, 5.0, np.inf])
    c = stats.correlations(x, y)
    assert c["n"] == 3
    assert c["pearson"] == pytest.approx(scipy.stats.pearsonr([1, 2, 4], [2, 1, 5])[0])
    assert math.isnan(stats.correlations([1, 1, 1, 1], [1, 2, 3, 4])["pearson"])
    assert math.isnan(stats.correlations([1, 2], [1, 2])["spearman"])


def test_bootstrap_ci_covers_the_true_correlations():
    rho = 0.6
    x, y = bivariate(rho, 200, seed=11)
    # Population values for a bivariate normal: Spearman 6/pi asin(rho/2), Kendall 2/pi asin(rho).
    truth = {"pearson": rho, "spearman": 6 / np.pi * np.arcsin(rho / 2), "kendall": 2 / np.pi * np.arcsin(rho)}
    for stat, value in truth.items():
        lo, hi = stats.bootstrap_ci(x, y, stat, n=2000, seed=0)
        assert lo < value < hi, (stat, lo, value, hi)
        assert hi - lo < 0.35  # a 95 % CI at n = 200 is about +-0.1; this catches a broken resampler


def test_bootstrap_ci_coverage_is_near_nominal():
    rho, hits, trials = 0.5, 0, 60
    for k in range(trials):
        x, y = bivariate(rho, 100, seed=100 + k)
        lo, hi = stats.bootstrap_ci(x, y, "pearson", n=1000, seed=k)
        hits += lo < rho < hi
    assert hits / trials >= 0.85  # nominal 0.95; percentile intervals run a little narrow


def test_bootstrap_is_reproducible_and_refuses_tiny_sets():
    x, y = bivariate(0.3, 50, seed=1)
    assert stats.bootstrap_ci(x, y, seed=5) == stats.bootstrap_ci(x, y, seed=5)
    assert all(math.isnan(v) for v in stats.bootstrap_ci([1, 2, 3, 4], [1, 3, 2, 4]))
    with pytest.raises(ValueError):
        stats.bootstrap_ci(x, y, "r2")


def test_fisher_z_mean():
    assert stats.fisher_z_mean([0.7, 0.7, 0.7]) == pytest.approx(0.7)
    assert stats.fisher_z_mean([0.7, 0.7], [5, 50]) == pytest.approx(0.7)
    # z-domain mean differs from the plain mean and lies between the two
    m = stats.fisher_z_mean([0.2, 0.9])
    assert 0.2 < m < 0.9 and m > 0.55
    # weights: the larger group pulls harder
    assert stats.fisher_z_mean([0.2, 0.9], [100, 10]) < m
    assert stats.fisher_z_mean([0.5, float("nan")]) == pytest.approx(0.5)
    assert math.isnan(stats.fisher_z_mean([]))
    assert stats.fisher_z_mean([1.0, 1.0]) < 1.0  # clipped, finite


def test_monotonic_mapping_is_monotone_and_reduces_rmse():
    rng = np.random.default_rng(7)
    x = np.sort(rng.uniform(0, 10, 60))
    y = 1 + 4 / (1 + np.exp(-(x - 5))) + rng.normal(0, 0.15, x.size)  # a 1-5 "MOS" from a sigmoid
    f = stats.fit_monotonic_mapping(x, y)
    grid = np.linspace(x.min(), x.max(), 500)
    assert np.all(np.diff(f(grid)) >= -1e-9)
    identity_rmse = float(np.sqrt(np.mean((y - x) ** 2)))
    mapped = stats.rmse_after_mapping(x, y)
    assert mapped < 0.5 * identity_rmse
    assert mapped < 0.4
    # P.1401 divides by N - 4
    e = y - f(x)
    assert mapped == pytest.approx(np.sqrt(e @ e / (x.size - 4)))


def test_monotonic_mapping_stays_monotone_where_a_free_cubic_would_not():
    # A hump: the unconstrained cubic turns down at the end; the mapping must not.
    x = np.linspace(0, 1, 30)
    y = np.sin(np.pi * x * 0.9) + np.linspace(0, 0.2, 30)
    f = stats.fit_monotonic_mapping(x, y)
    assert f.method == "slsqp"
    assert np.all(np.diff(f(np.linspace(0, 1, 400))) >= -1e-6)
    assert np.sqrt(np.mean((f(x) - y) ** 2)) < np.std(y)  # still explains something
    # outside the fitted range it clamps instead of extrapolating a cubic
    assert f(np.array([2.0]))[0] == pytest.approx(f(np.array([1.0]))[0])


def test_rmse_needs_more_items_than_parameters():
    assert math.isnan(stats.rmse_after_mapping([1, 2, 3, 4], [1, 2, 3, 4]))


def test_ladder_agreement():
    intensity = np.array([0.0, 0.2, 0.4, 0.6, 0.8])
    perfect = stats.ladder_agreement([5, 4, 3, 2, 1], intensity)
    assert perfect["spearman"] == pytest.approx(1.0)
    assert perfect["pairs_ordered"] == 1.0 and perfect["n_pairs"] == 10
    reversed_ = stats.ladder_agreement([1, 2, 3, 4, 5], intensity)
    assert reversed_["spearman"] == pytest.approx(-1.0) and reversed_["pairs_ordered"] == 0.0
    one_swap = stats.ladder_agreement([5, 3, 4, 2, 1], intensity)
    assert one_swap["pairs_ordered"] == pytest.approx(0.9)
    ties = stats.ladder_agreement([1, 1], [0, 1])
    assert ties["pairs_ordered"] == 0.5
    # equal intensities are not a pair
    assert stats.ladder_agreement([1, 2, 3], [0, 0, 1])["n_pairs"] == 2


def test_summarise_groups_and_fisher_mean():
    rng = np.random.default_rng(2)
    x = rng.normal(size=30)
    y = x + rng.normal(0, 0.5, 30)
    groups = ["a"] * 12 + ["b"] * 15 + ["c"] * 3 + []
    groups = groups[:28] + ["tiny", "tiny"]
    s = stats.summarise(x, y, groups, n_boot=300)
    assert s["overall"]["n"] == 30
    lo, hi = s["overall"]["pearson_ci"]
    assert lo < s["overall"]["pearson"] < hi
    assert math.isnan(s["groups"]["tiny"]["pearson"])  # 2 items: no correlation
    used = [g for g in s["groups"].values() if np.isfinite(g["pearson"])]
    assert s["fisher_z_groups"] == len(used)
    expect = stats.fisher_z_mean([g["pearson"] for g in used], [g["n"] for g in used])
    assert s["fisher_z_pearson"] == pytest.approx(expect)
