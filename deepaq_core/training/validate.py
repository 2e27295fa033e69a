"""Validation during training, and the fit of the card's score mapping.

Two kinds of numbers, both computed with the current model in eval mode:

held-out groups (``heldout.*``)
    Groups made from held-out clean files (one family per group, families in turn). Each version
    is embedded as the loss sees it (frame embeddings -> time mean -> L2 normalisation) and its
    distance to the group's clean version is compared with its surrogate label:
    ``heldout.spearman`` is Spearman's rho between distance and label over all degraded versions
    of one family (all excerpts pooled), averaged over families; ``heldout.family.<name>`` each
    family's value; ``heldout.group_spearman`` the mean within-group rho (what the loss ranks);
    ``heldout.loss`` the Rank-N-Contrast loss on these groups.
real material (``<manifest>.*`` and ``real.*``)
    Every (reference, degraded) pair of a manifest scored through the real scoring path
    (:class:`deepaq_core.scoring.Scorer`: resampling, alignment, loudness matching, streaming
    embedding, windowed distance) with the in-memory model; ``<name>.pearson|spearman|kendall``
    correlate quality (= -distance) with the manifest's subjective column (higher = better), so
    +1 is perfect agreement; ``real.<stat>`` is the mean over manifests.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from deepaq_core.errors import DeePAQError

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------- helpers


def pooled_embedding(frames: torch.Tensor) -> torch.Tensor:
    """Frame embeddings ``[B, T, D]`` -> unit-norm time means ``[B, D]`` (what scoring's windows do)."""
    return torch.nn.functional.normalize(frames.float().mean(dim=1), dim=-1)


def correlations(metric, subjective) -> dict:
    """Pearson, Spearman, Kendall and n (``deepaq_core.evaluation.stats`` when present)."""
    try:
        from deepaq_core.evaluation.stats import correlations as _corr
    except ImportError:  # the evaluation package is optional for training
        return _correlations(metric, subjective)
    return _corr(metric, subjective)


def _correlations(metric, subjective) -> dict:
    import warnings

    import scipy.stats

    x = np.asarray(metric, dtype=np.float64)
    y = np.asarray(subjective, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out = {"pearson": math.nan, "spearman": math.nan, "kendall": math.nan, "n": int(x.size)}
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["pearson"] = float(scipy.stats.pearsonr(x, y)[0])
        out["spearman"] = float(scipy.stats.spearmanr(x, y)[0])
        out["kendall"] = float(scipy.stats.kendalltau(x, y)[0])
    return out


def _spearman(x, y) -> float:
    return float(_correlations(x, y)["spearman"])


def _nanmean(values) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else math.nan


# ------------------------------------------------------------------------------------- held-out


@torch.no_grad()
def embed_groups(model, groups: Sequence, device, batch_items: int = 16, autocast=None) -> list[np.ndarray]:
    """Pooled embeddings of every version of every group: list of ``[K, D]`` float32 arrays."""
    from contextlib import nullcontext

    was_training = model.training
    model.eval()
    try:
        flat = np.concatenate([g.audio for g in groups])
        out = []
        for i in range(0, flat.shape[0], batch_items):
            x = torch.from_numpy(np.ascontiguousarray(flat[i : i + batch_items])).to(device)
            with autocast() if autocast is not None else nullcontext():
                frames, _ = model(x)
            out.append(pooled_embedding(frames).cpu().numpy())
        z = np.concatenate(out)
    finally:
        model.train(was_training)
    sizes = np.cumsum([0] + [g.audio.shape[0] for g in groups])
    return [z[a:b] for a, b in zip(sizes[:-1], sizes[1:])]


def heldout_records(groups: Sequence, embeddings: Sequence[np.ndarray]) -> list[dict]:
    """One record per degraded version: family, label, distance to the group's clean version."""
    records = []
    for gi, (g, z) in enumerate(zip(groups, embeddings)):
        clean = int(np.argmin(g.labels))
        for k in range(len(g.labels)):
            if k == clean:
                continue
            records.append({"group": gi, "family": g.families[k], "label": float(g.labels[k]),
                            "distance": float(np.linalg.norm(z[k] - z[clean]))})
    return records


def heldout_metrics(groups: Sequence, embeddings: Sequence[np.ndarray], loss_cfg) -> dict:
    """``heldout.*`` numbers from embedded held-out groups (see the module docstring)."""
    from deepaq_core.training.losses import batch_loss

    records = heldout_records(groups, embeddings)
    by_family: dict[str, list[dict]] = defaultdict(list)
    by_group: dict[int, list[dict]] = defaultdict(list)
    for r in records:
        by_family[r["family"]].append(r)
        by_group[r["group"]].append(r)
    out: dict[str, float] = {}
    fam_rho = {}
    for fam, rs in sorted(by_family.items()):
        fam_rho[fam] = _spearman([r["distance"] for r in rs], [r["label"] for r in rs])
        out[f"heldout.family.{fam}"] = fam_rho[fam]
    out["heldout.spearman"] = _nanmean(fam_rho.values())
    out["heldout.group_spearman"] = _nanmean(
        _spearman([r["distance"] for r in rs], [r["label"] for r in rs]) for rs in by_group.values()
    )
    z = torch.from_numpy(np.concatenate(embeddings))
    y = torch.from_numpy(np.concatenate([g.labels for g in groups]).astype(np.float32))
    gid = torch.from_numpy(np.concatenate([np.full(len(g.labels), i) for i, g in enumerate(groups)]))
    out["heldout.loss"] = float(batch_loss(z, y, gid, loss_cfg))
    out["heldout.n"] = len(records)
    return out


# ------------------------------------------------------------------------------------- scoring path


def make_scorer(model, card: dict, device, settings=None):
    """A :class:`~deepaq_core.scoring.Scorer` running the in-memory ``model`` (eval mode assumed).

    The Scorer is created for the built-in model and then given ours, so nothing is written to
    disk and the registry's per-path cache cannot hand back stale weights.
    """
    from deepaq_core.model.bundle import Bundle
    from deepaq_core.model.device import LoadedModel
    from deepaq_core.scoring import Scorer

    scorer = Scorer(None, device="cpu", settings=settings)
    full = dict(card)
    full.setdefault("format", "deepaq-bundle")
    full.setdefault("format_version", 1)
    scorer.loaded = LoadedModel(model=model, bundle=Bundle(full, None), device=torch.device(device))
    return scorer


def load_manifest_rows(spec) -> list[tuple[str, str, float]]:
    """``(reference, degraded, subjective)`` of a validation manifest, paths absolute; checked.

    Uses :func:`deepaq_core.evaluation.manifest.load_manifest` (missing files, columns and
    non-numeric answers raise :class:`~deepaq_core.errors.DeePAQError`).
    """
    try:
        from deepaq_core.evaluation.manifest import load_manifest
    except ImportError:  # pragma: no cover - evaluation package absent
        return _load_rows_fallback(spec)
    rows = load_manifest(spec.path, reference_col=spec.reference, degraded_col=spec.degraded,
                         subjective_col=spec.subjective, group_col=spec.group or None)
    return [(r.reference, r.degraded, r.subjective) for r in rows]


def _load_rows_fallback(spec):  # pragma: no cover - used only without deepaq_core.evaluation
    import csv
    from pathlib import Path

    path = Path(spec.path)
    if not path.is_file():
        raise DeePAQError(f"Manifest '{path}' not found.")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        for col in (spec.reference, spec.degraded, spec.subjective):
            if col not in (reader.fieldnames or []):
                raise DeePAQError(f"Manifest '{path.name}' has no column '{col}'.")
        rows = []
        for row in reader:
            try:
                value = float(row[spec.subjective])
            except (TypeError, ValueError):
                continue
            rows.append((str(path.parent / row[spec.reference]), str(path.parent / row[spec.degraded]), value))
    return rows


def manifest_metrics(model, card: dict, specs: Sequence, device, rows: dict | None = None) -> tuple[dict, dict]:
    """Score every manifest's pairs with ``model`` through the scoring path; correlations.

    ``rows`` (``{name: load_manifest_rows(spec)}``) saves reading the manifests again.

    Returns
    -------
    metrics : dict
        ``<name>.pearson|spearman|kendall|n|failed`` per manifest and ``real.<stat>`` means.
    details : dict
        ``{name: [(reference, degraded, subjective, distance), ...]}``.
    """
    metrics: dict[str, float] = {}
    details: dict[str, list] = {}
    rows_by_name = rows
    if not specs:
        return metrics, details
    was_training = model.training
    model.eval()
    try:
        for spec in specs:
            rows = (rows_by_name or {}).get(spec.name) or load_manifest_rows(spec)
            scorer = make_scorer(model, card, device)
            by_ref: dict[str, list[int]] = defaultdict(list)
            for i, (ref, _, _) in enumerate(rows):
                by_ref[ref].append(i)
            distances = [math.nan] * len(rows)
            failed = 0
            for ref, idx in by_ref.items():
                try:
                    results = scorer.score_many(ref, [rows[i][1] for i in idx])
                except DeePAQError as exc:
                    log.warning("validation manifest %s: %s", spec.name, exc)
                    failed += len(idx)
                    continue
                for i, r in zip(idx, results):
                    distances[i] = r.distance
            c = correlations([-d for d in distances], [r[2] for r in rows])
            for stat in ("pearson", "spearman", "kendall"):
                metrics[f"{spec.name}.{stat}"] = c[stat]
            metrics[f"{spec.name}.n"] = c["n"]
            metrics[f"{spec.name}.failed"] = failed
            details[spec.name] = [(r[0], r[1], r[2], d) for r, d in zip(rows, distances)]
    finally:
        model.train(was_training)
    for stat in ("pearson", "spearman", "kendall"):
        metrics[f"real.{stat}"] = _nanmean(metrics[f"{s.name}.{stat}"] for s in specs)
    return metrics, details


def scorer_distances(model, card: dict, groups: Sequence, device) -> list[dict]:
    """Held-out records with distances from the scoring path (no alignment: versions are aligned)."""
    from deepaq_core.audio import AudioBuffer
    from deepaq_core.scoring import ScoreSettings

    was_training = model.training
    model.eval()
    records = []
    try:
        scorer = make_scorer(model, card, device, ScoreSettings(align=False))
        for gi, g in enumerate(groups):
            sr = card["sample_rate"]
            clean = int(np.argmin(g.labels))
            others = [k for k in range(len(g.labels)) if k != clean]
            results = scorer.score_many(AudioBuffer(g.audio[clean], sr), [AudioBuffer(g.audio[k], sr) for k in others])
            for k, r in zip(others, results):
                records.append({"group": gi, "family": g.families[k], "label": float(g.labels[k]),
                                "distance": float(r.distance)})
    finally:
        model.train(was_training)
    return records


# ------------------------------------------------------------------------------------- score mapping


def fit_score_mapping(distances, labels, *, where: str) -> dict | None:
    """Fit ``score = 100 * 2 ** (-(d / d50) ** power)`` on a surrogate ladder.

    The mapping is anchored so that label 0.5 scores 50 (``d50`` = median distance of the
    versions labelled 0.4-0.6, or, with fewer than five of them, the distance where a log-log
    line through all versions reaches label 0.5), and ``power`` is the Theil-Sen slope of
    ``log(label)`` on ``log(distance)``, clipped to 0.25-4, so that ``label ~ 0.5 (d / d50) **
    power``, i.e. a version of label ``y`` scores about ``100 * 2 ** (-2 y)``.

    Parameters
    ----------
    distances, labels : array_like
        One entry per degraded version (labels > 0).
    where : str
        Description of the data, stored in ``fitted_on``.

    Returns
    -------
    dict or None
        ``{"type": "exp2", "d50", "power", "fitted_on"}``; None with fewer than five usable
        versions or no positive distances.
    """
    import scipy.stats

    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    ok = np.isfinite(d) & np.isfinite(y) & (d > 0) & (y > 0)
    d, y = d[ok], y[ok]
    if d.size < 5:
        return None
    ld, ly = np.log(d), np.log(y)
    power = 1.0
    if np.ptp(ld) > 0:
        slope = float(scipy.stats.theilslopes(ly, ld)[0])
        if math.isfinite(slope) and slope > 0:
            power = float(np.clip(slope, 0.25, 4.0))
    near = np.abs(y - 0.5) <= 0.1
    if near.sum() >= 5:
        d50 = float(np.median(d[near]))
        how = f"median distance of the {int(near.sum())} versions labelled 0.4-0.6"
    else:
        intercept = float(np.median(ly - power * ld))
        d50 = float(math.exp((math.log(0.5) - intercept) / power))
        how = "log-log line through all versions at label 0.5"
    return {
        "type": "exp2",
        "d50": round(d50, 6),
        "power": round(power, 4),
        "fitted_on": f"{where}: {d.size} degraded versions; score 50 at the {how}; power = Theil-Sen slope "
        "of log(label) on log(distance)",
    }


__all__ = [
    "correlations",
    "embed_groups",
    "fit_score_mapping",
    "heldout_metrics",
    "heldout_records",
    "load_manifest_rows",
    "make_scorer",
    "manifest_metrics",
    "pooled_embedding",
    "scorer_distances",
]
