"""Agreement statistics between a metric and subjective scores.

Conventions
-----------
Every function here takes the metric in its *quality orientation*: higher = better. A distance
(lower = better) is negated before it comes here (see
:attr:`deepaq_core.evaluation.metrics.Metric.higher_is_better`), so a metric that agrees with
listeners always gets positive correlations.

- :func:`correlations`: Pearson, Spearman, Kendall (tau-b) from :mod:`scipy.stats`.
- :func:`bootstrap_ci`: percentile bootstrap over items (pairs resampled together).
- :func:`fit_monotonic_mapping` / :func:`rmse_after_mapping`: ITU-T P.1401's third-order
  monotonic polynomial mapping and its RMSE with the degrees-of-freedom correction ``N - 4``.
- :func:`cross_fitted_predictions`: out-of-fold predictions through that mapping (fitted on the
  other folds, e.g. the other talker), for cross-validated correlations.
- :func:`fisher_z_mean`: mean of per-group Pearson correlations in Fisher's z domain.
- :func:`ladder_agreement`: how well a metric orders versions of known degradation intensity.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np

STATS = ("pearson", "spearman", "kendall")
# Parameters of the P.1401 third-order mapping; P.1401 divides the squared error by N - d.
MAPPING_DOF = 4
# Bootstrap resamples of very small sets mostly repeat one or two points; below this size the
# interval says more about the resampling than about the metric, so none is reported.
MIN_N_CI = 5
# Fisher's z is infinite at |r| = 1; clip so that a perfect group does not swamp the mean.
_R_CLIP = 0.9999


def _pair(metric, subjective) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(metric, dtype=np.float64).ravel()
    y = np.asarray(subjective, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"metric and subjective differ in length: {x.size} vs {y.size}")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def correlations(metric, subjective) -> dict:
    """Pearson, Spearman and Kendall correlation between a metric and subjective scores.

    Parameters
    ----------
    metric : array_like
        Metric values in quality orientation (higher = better). Non-finite pairs are dropped.
    subjective : array_like
        Subjective scores (higher = better), same length.

    Returns
    -------
    dict
        ``pearson``, ``spearman``, ``kendall`` (floats; NaN with fewer than 3 pairs or a
        constant input) and ``n`` (pairs used).
    """
    import scipy.stats

    x, y = _pair(metric, subjective)
    out = {"pearson": math.nan, "spearman": math.nan, "kendall": math.nan, "n": int(x.size)}
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant-input and small-sample warnings: NaN says it
        out["pearson"] = float(scipy.stats.pearsonr(x, y)[0])
        out["spearman"] = float(scipy.stats.spearmanr(x, y)[0])
        out["kendall"] = float(scipy.stats.kendalltau(x, y)[0])
    return out


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    den = np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(axis=1) / den
    r[den == 0] = np.nan  # a resample that repeats one value has no correlation
    return r


def bootstrap_distribution(metric, subjective, stat: str = "pearson", n: int = 2000, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of a correlation statistic (items resampled with replacement).

    Parameters
    ----------
    metric, subjective : array_like
        As for :func:`correlations`.
    stat : {"pearson", "spearman", "kendall"}
    n : int
        Number of resamples.
    seed : int
        Seed of :func:`numpy.random.default_rng`, so intervals are reproducible.

    Returns
    -------
    numpy.ndarray
        ``[n]`` replicates; NaN where a resample is degenerate (e.g. one repeated point).
    """
    import scipy.stats

    if stat not in STATS:
        raise ValueError(f"stat must be one of {STATS}, got {stat!r}")
    x, y = _pair(metric, subjective)
    if x.size < 3:
        return np.full(n, np.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n, x.size))
    xs, ys = x[idx], y[idx]
    if stat == "pearson":
        return _rowwise_pearson(xs, ys)
    if stat == "spearman":
        # Spearman = Pearson of average ranks, which rankdata gives per row in one call.
        return _rowwise_pearson(scipy.stats.rankdata(xs, axis=1), scipy.stats.rankdata(ys, axis=1))
    out = np.empty(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(n):  # no vectorised tau-b in scipy; 2000 calls on ~100 items take < 1 s
            out[i] = scipy.stats.kendalltau(xs[i], ys[i])[0]
    return out


def bootstrap_ci(metric, subjective, stat: str = "pearson", n: int = 2000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a correlation.

    Items are resampled with replacement (metric and subjective value together), the statistic
    is recomputed on each resample, and the ``(1 - level) / 2`` and ``(1 + level) / 2``
    quantiles of the replicates are returned.

    Parameters
    ----------
    metric, subjective : array_like
        As for :func:`correlations`.
    stat : {"pearson", "spearman", "kendall"}
    n : int
        Number of resamples (2000 by default).
    seed : int
        Random seed (intervals are reproducible).
    level : float
        Coverage, 0.95 for a 95 % interval.

    Returns
    -------
    (float, float)
        Lower and upper bound; ``(nan, nan)`` with fewer than :data:`MIN_N_CI` valid pairs or
        when more than 10 % of the resamples are degenerate.
    """
    x, y = _pair(metric, subjective)
    if x.size < MIN_N_CI:
        return (math.nan, math.nan)
    reps = bootstrap_distribution(x, y, stat, n, seed)
    good = reps[np.isfinite(reps)]
    if good.size < 0.9 * n:
        return (math.nan, math.nan)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(good, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def fisher_z_mean(rs: Sequence[float], ns: Sequence[int] | None = None) -> float:
    """Mean of correlations taken in Fisher's z domain, ``tanh(sum w_i atanh(r_i) / sum w_i)``.

    Parameters
    ----------
    rs : sequence of float
        Per-group correlations; NaN entries are ignored.
    ns : sequence of int or None
        Group sizes, used as weights (a larger group counts more); None weighs groups equally,
        as does any set of equal sizes.

    Returns
    -------
    float
        The mean correlation; NaN if no finite ``r`` is given. ``|r|`` is clipped to 0.9999
        first, so a perfect group does not make the mean exactly 1 by itself.
    """
    r = np.asarray(rs, dtype=np.float64).ravel()
    w = np.ones_like(r) if ns is None else np.asarray(ns, dtype=np.float64).ravel()
    if w.shape != r.shape:
        raise ValueError("rs and ns differ in length")
    keep = np.isfinite(r) & np.isfinite(w) & (w > 0)
    if not keep.any():
        return math.nan
    z = np.arctanh(np.clip(r[keep], -_R_CLIP, _R_CLIP))
    return float(np.tanh(np.sum(w[keep] * z) / np.sum(w[keep])))


class MonotonicMapping:
    """A fitted third-order polynomial, non-decreasing on the fitted range (ITU-T P.1401).

    Calling it maps metric values (quality orientation) to the subjective scale. Inputs outside
    the fitted range are clamped to it, because a cubic may turn back beyond the data.

    Attributes
    ----------
    coef : numpy.ndarray
        ``[a0, a1, a2, a3]`` of ``a0 + a1 u + a2 u^2 + a3 u^3`` in the normalised variable
        ``u = (x - lo) / (hi - lo)``.
    lo, hi : float
        The fitted range of ``x``.
    method : str
        ``"curve_fit"`` when the unconstrained least-squares cubic was already monotone,
        ``"slsqp"`` when the monotonicity constraint had to be enforced, ``"constant"`` for
        degenerate input.
    """

    kind = "third-order monotonic polynomial (ITU-T P.1401)"

    def __init__(self, coef: np.ndarray, lo: float, hi: float, method: str) -> None:
        self.coef = np.asarray(coef, dtype=np.float64)
        self.lo, self.hi, self.method = float(lo), float(hi), method

    def __call__(self, x) -> np.ndarray:
        """Map metric values to the subjective scale (array in, array out)."""
        u = (np.clip(np.asarray(x, dtype=np.float64), self.lo, self.hi) - self.lo) / max(self.hi - self.lo, 1e-300)
        return _cubic(u, *self.coef)


def _cubic(u, a0, a1, a2, a3):
    return a0 + u * (a1 + u * (a2 + u * a3))


def fit_monotonic_mapping(x, y) -> Callable[[np.ndarray], np.ndarray]:
    """Fit ITU-T P.1401's third-order monotonic mapping from metric values to subjective scores.

    The mapping is ``y ~ a0 + a1 u + a2 u^2 + a3 u^3`` with ``u`` the metric rescaled to
    0..1, constrained to be non-decreasing over the data's range (the metric is in quality
    orientation, so a mapping may only compress or stretch it, never reverse it). The
    unconstrained least-squares fit comes from :func:`scipy.optimize.curve_fit`; if it is not
    monotone on a 201-point grid, the constrained problem is solved with SLSQP
    (:func:`scipy.optimize.minimize`, derivative >= 0 on the grid), starting from the best
    monotone straight line.

    Parameters
    ----------
    x : array_like
        Metric values, quality orientation.
    y : array_like
        Subjective scores.

    Returns
    -------
    MonotonicMapping
        Callable ``mapping(x) -> y_hat``.
    """
    import scipy.optimize

    x, y = _pair(x, y)
    if x.size == 0:
        return MonotonicMapping(np.array([math.nan, 0, 0, 0]), 0.0, 1.0, "constant")
    lo, hi = float(x.min()), float(x.max())
    if x.size < MAPPING_DOF or hi == lo:
        return MonotonicMapping(np.array([float(y.mean()), 0, 0, 0]), lo, hi if hi > lo else lo + 1.0, "constant")
    u = (x - lo) / (hi - lo)
    grid = np.linspace(0.0, 1.0, 201)

    def slope(c):
        return c[1] + 2 * c[2] * grid + 3 * c[3] * grid**2

    # A least-squares line clipped to slope >= 0 starts both fits; it is monotone and feasible.
    b1, b0 = np.polyfit(u, y, 1)
    start = np.array([b0, max(b1, 0.0), 0.0, 0.0]) if b1 >= 0 else np.array([y.mean(), 0.0, 0.0, 0.0])
    try:
        with warnings.catch_warnings():
            # 4 points fit a cubic exactly and leave no covariance to estimate; only coef is used.
            warnings.simplefilter("ignore", scipy.optimize.OptimizeWarning)
            coef, _ = scipy.optimize.curve_fit(_cubic, u, y, p0=start, maxfev=20000)
        if np.all(slope(coef) >= -1e-9):
            return MonotonicMapping(coef, lo, hi, "curve_fit")
    except (RuntimeError, ValueError):  # no convergence: the constrained fit below still works
        pass

    def sse(c):
        e = _cubic(u, *c) - y
        return float(e @ e)

    res = scipy.optimize.minimize(sse, start, method="SLSQP",
                                  constraints=[{"type": "ineq", "fun": slope}],
                                  options={"maxiter": 500, "ftol": 1e-12})
    coef = res.x if res.success and np.all(slope(res.x) >= -1e-6) else start
    return MonotonicMapping(coef, lo, hi, "slsqp")


def rmse_after_mapping(x, y, dof: int = MAPPING_DOF) -> float:
    """RMSE between subjective scores and the P.1401-mapped metric.

    ``sqrt(sum((y - f(x))^2) / (N - dof))`` with ``f`` from :func:`fit_monotonic_mapping`;
    P.1401 uses ``dof = 4`` for the third-order mapping. In the units of ``y``.

    Parameters
    ----------
    x : array_like
        Metric values, quality orientation.
    y : array_like
        Subjective scores.
    dof : int
        Degrees of freedom of the mapping subtracted from N.

    Returns
    -------
    float
        NaN when ``N <= dof``.
    """
    x, y = _pair(x, y)
    if x.size <= dof:
        return math.nan
    e = y - fit_monotonic_mapping(x, y)(x)
    return float(math.sqrt(float(e @ e) / (x.size - dof)))


def cross_fitted_predictions(metric, subjective, folds: Sequence, *,
                             fit: Callable | None = None) -> np.ndarray:
    """Out-of-fold predictions of the subjective scores from a metric through a fitted mapping.

    For each fold label, the mapping (by default :func:`fit_monotonic_mapping`, ITU-T P.1401's
    third-order monotonic polynomial) is fitted on the items of all *other* folds and applied to
    the items of this fold. With two folds (e.g. two talkers) the mapping fitted on one talker
    predicts the other and vice versa; with one fold per item group it is leave-one-group-out.
    The correlation of the pooled predictions with the subjective scores then measures how well
    a metric's scale transfers to unseen material, with no parameter fitted on the items it is
    judged on.

    Parameters
    ----------
    metric : array_like
        Metric values in quality orientation (higher = better); NaN = no value.
    subjective : array_like
        Subjective scores, same length.
    folds : sequence
        Fold label per item (e.g. the talker); at least two distinct labels.
    fit : callable or None
        ``fit(x, y) -> mapping`` with ``mapping(x) -> y_hat``; None = :func:`fit_monotonic_mapping`.

    Returns
    -------
    numpy.ndarray
        ``[N]`` predictions; NaN where the metric has no value or the training folds hold no
        finite pair.
    """
    fit = fit or fit_monotonic_mapping
    x = np.asarray(metric, dtype=np.float64).ravel()
    y = np.asarray(subjective, dtype=np.float64).ravel()
    labels = np.asarray([str(f) for f in folds], dtype=object)
    if not (x.shape == y.shape == labels.shape):
        raise ValueError(f"metric, subjective and folds differ in length: {x.size}, {y.size}, {labels.size}")
    if len(set(labels.tolist())) < 2:
        raise ValueError("cross-fitting needs at least two folds")
    out = np.full(x.size, np.nan)
    ok = np.isfinite(x) & np.isfinite(y)
    for label in sorted(set(labels.tolist())):
        test = labels == label
        train = ~test & ok
        if not train.any():
            continue
        mapping = fit(x[train], y[train])
        pred_idx = np.flatnonzero(test & np.isfinite(x))
        if pred_idx.size:
            out[pred_idx] = np.asarray(mapping(x[pred_idx]), dtype=np.float64)
    return out


def ladder_agreement(scores, intensities) -> dict:
    """How well a metric orders versions of one item by their known degradation intensity.

    Parameters
    ----------
    scores : array_like
        Metric values in quality orientation (higher = better).
    intensities : array_like
        Degradation intensity (higher = stronger degradation, e.g. a lower bitrate or cutoff).

    Returns
    -------
    dict
        ``spearman``: Spearman correlation between scores and *negated* intensities (+1 = the
        metric orders the versions exactly like the intensities); ``pairs_ordered``: share of
        pairs with different intensities where the more degraded version scores lower (a tie
        in score counts one half); ``n``; ``n_pairs``.
    """
    import scipy.stats

    s, t = _pair(scores, intensities)
    out = {"spearman": math.nan, "pairs_ordered": math.nan, "n": int(s.size), "n_pairs": 0}
    if s.size < 2:
        return out
    i, j = np.triu_indices(s.size, k=1)
    differ = t[i] != t[j]
    i, j = i[differ], j[differ]
    if i.size:
        worse_first = t[i] > t[j]  # item i is the more degraded one
        ds = np.where(worse_first, s[j] - s[i], s[i] - s[j])  # > 0: ordered right
        out["pairs_ordered"] = float((np.sum(ds > 0) + 0.5 * np.sum(ds == 0)) / i.size)
        out["n_pairs"] = int(i.size)
    if np.ptp(s) > 0 and np.ptp(t) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["spearman"] = float(scipy.stats.spearmanr(s, -t)[0])
    return out


def summarise(metric, subjective, groups: Sequence[str | None] | None = None, *, n_boot: int = 2000,
              seed: int = 0, min_group_n: int = 3) -> dict:
    """All agreement statistics of one metric: overall and per group.

    Parameters
    ----------
    metric, subjective : array_like
        Quality-oriented metric values and subjective scores; non-finite pairs are dropped.
    groups : sequence of str or None
        Group label per item, or None.
    n_boot, seed : int
        Bootstrap resamples and seed for the confidence intervals.
    min_group_n : int
        Groups with fewer valid items get no correlations and stay out of the Fisher-z mean.

    Returns
    -------
    dict
        ``overall``: ``n``, ``pearson``/``spearman``/``kendall`` and their ``*_ci`` (lo, hi),
        ``rmse`` (after the P.1401 mapping) and ``mapping`` (its method);
        ``groups``: ``{label: {n, pearson, spearman, kendall, *_ci, rmse}}``;
        ``fisher_z_pearson``: the Fisher-z mean of the groups' Pearson (weights: group sizes)
        and ``fisher_z_groups``: how many groups entered it.
    """
    x = np.asarray(metric, dtype=np.float64).ravel()
    y = np.asarray(subjective, dtype=np.float64).ravel()

    def block(xx, yy):
        c = correlations(xx, yy)
        for s in STATS:
            c[f"{s}_ci"] = bootstrap_ci(xx, yy, s, n_boot, seed)
        c["rmse"] = rmse_after_mapping(xx, yy)
        return c

    overall = block(x, y)
    xv, yv = _pair(x, y)
    overall["mapping"] = fit_monotonic_mapping(xv, yv).method if xv.size else "constant"
    out = {"overall": overall, "groups": {}, "fisher_z_pearson": math.nan, "fisher_z_groups": 0}
    if groups is None:
        return out
    g = np.asarray([("" if v is None else str(v)) for v in groups], dtype=object)
    rs, ns = [], []
    for label in sorted(set(g.tolist())):
        m = g == label
        n_valid = int(np.sum(np.isfinite(x[m]) & np.isfinite(y[m])))
        if n_valid < min_group_n:
            out["groups"][label] = {"n": n_valid, **{s: math.nan for s in STATS},
                                    **{f"{s}_ci": (math.nan, math.nan) for s in STATS}, "rmse": math.nan}
            continue
        out["groups"][label] = block(x[m], y[m])
        if np.isfinite(out["groups"][label]["pearson"]):
            rs.append(out["groups"][label]["pearson"])
            ns.append(n_valid)
    out["fisher_z_pearson"] = fisher_z_mean(rs, ns)
    out["fisher_z_groups"] = len(rs)
    return out
