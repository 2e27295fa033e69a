"""Running metrics over a manifest and turning the values into agreement statistics.

The two steps are separate so that one measurement can be analysed several ways (all rows,
without identity pairs, per group) without scoring anything twice:

1. :func:`run_metrics` scores every row with every metric, one metric at a time (so only one
   model is in memory), timing each file; a file a metric cannot score gets NaN and a note.
2. :func:`evaluate` (listener or reference scores) and :func:`evaluate_ladder` (known
   degradation intensities) compute the statistics of :mod:`deepaq_core.evaluation.stats`.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from deepaq_core.errors import DeePAQError
from deepaq_core.evaluation.manifest import ManifestRow
from deepaq_core.evaluation.metrics import Metric

log = logging.getLogger(__name__)


@dataclass
class MetricRun:
    """One metric's results over all rows of a manifest.

    Attributes
    ----------
    info : dict
        :meth:`Metric.describe` (name, label, kind, orientation, unit, ...).
    values : numpy.ndarray
        ``[N]`` metric values in the metric's own orientation; NaN where it failed.
    quality : numpy.ndarray
        ``[N]`` the same in quality orientation (higher = better).
    seconds : numpy.ndarray
        ``[N]`` wall time per file (loading, alignment and scoring), NaN where not run.
    extras : dict
        Extra per-item outputs (e.g. a DeePAQ model's 0-100 score next to its distance).
    errors : list
        Per row: None or the one-line reason it has no value.
    setup_s : float
        Wall time of :meth:`Metric.setup` (model load, JIT warm-up).
    """

    info: dict
    values: np.ndarray
    quality: np.ndarray
    seconds: np.ndarray
    extras: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    setup_s: float = math.nan

    @property
    def name(self) -> str:
        return self.info["name"]


def _stderr(msg: str) -> None:
    print(f"deepaq eval: {msg}", file=sys.stderr, flush=True)


def audio_durations(rows: Sequence[ManifestRow]) -> np.ndarray:
    """Duration in seconds of each row's degraded file (from the header; NaN if unreadable)."""
    from deepaq_core.audio import read_info

    out = np.full(len(rows), np.nan)
    for i, r in enumerate(rows):
        try:
            out[i] = read_info(r.degraded).duration_s
        except DeePAQError:
            pass
    return out


def run_metrics(rows: Sequence[ManifestRow], metrics: Sequence[Metric], *,
                say: Callable[[str], None] | None = _stderr, debug: bool = False,
                progress: Callable[[str, int, int], None] | None = None) -> list[MetricRun]:
    """Score every row with every metric.

    Parameters
    ----------
    rows : sequence of ManifestRow
    metrics : sequence of Metric
        Not yet set up; each is set up, run over all rows, and closed before the next.
    say : callable or None
        Receives one-line progress and skip messages (default: stderr); None is silent.
    debug : bool
        Re-raise the first per-file failure instead of recording it.
    progress : callable or None
        ``progress(metric_name, rows_done, n_rows)``, called after every row (scored or not).

    Returns
    -------
    list of MetricRun
        One per metric whose setup succeeded, in the given order. A metric whose setup fails
        with a :class:`DeePAQError` is skipped with a message; other setup errors propagate.
    """
    say = say or (lambda _m: None)
    runs: list[MetricRun] = []
    for m in metrics:
        t0 = time.perf_counter()
        try:
            m.setup()
        except DeePAQError as exc:
            if debug:
                raise
            say(f"skipping {m.name}: {exc}")
            continue
        setup_s = time.perf_counter() - t0
        if getattr(m, "unverified_note", None):
            say(f"note: {m.unverified_note}")
        if getattr(m, "status", "trained") not in ("trained", "unknown"):
            from deepaq_core.results import STATUS_NOTES

            say(f"note: model '{m.name}' is {STATUS_NOTES.get(m.status, m.status)}.")
        n = len(rows)
        run = MetricRun(info=m.describe(), values=np.full(n, np.nan), quality=np.full(n, np.nan),
                        seconds=np.full(n, np.nan), extras={k: np.full(n, np.nan) for k in m.extras},
                        errors=[None] * n, setup_s=setup_s)
        t_all = time.perf_counter()
        for i, row in enumerate(rows):
            if row.reference is None and not m.nmr:
                run.errors[i] = "no reference (this metric needs one)"
                if progress is not None:
                    progress(m.name, i + 1, n)
                continue
            _measure_row(m, row, i, run, say, debug)
            if progress is not None:
                progress(m.name, i + 1, n)
        m.close()
        runs.append(run)
        say(f"{m.name}: {int(np.isfinite(run.values).sum())}/{n} files in {time.perf_counter() - t_all:.1f} s "
            f"(setup {setup_s:.1f} s)")
    return runs


def _measure_row(m: Metric, row: ManifestRow, i: int, run: MetricRun, say, debug: bool) -> None:
    """Score one row into ``run`` (value, quality, extras, seconds), or record why it failed."""
    t = time.perf_counter()
    try:
        out = m.measure(row.reference, row.degraded)
        v = float(out["value"])
    except Exception as exc:  # one bad file must not end a long run; the row says why
        if debug:
            raise
        msg = str(exc) if isinstance(exc, DeePAQError) else f"{exc.__class__.__name__}: {exc}"
        run.errors[i] = msg
        say(f"{m.name}: {os.path.basename(row.degraded)}: {msg}")
        return
    run.seconds[i] = time.perf_counter() - t
    run.values[i] = v
    run.quality[i] = m.quality(v)
    for k in m.extras:
        run.extras[k][i] = float(out.get(k, math.nan))


def subset_run(run: MetricRun, index) -> MetricRun:
    """The same metric's results restricted to some rows (``index``: integer positions or a mask)."""
    idx = np.asarray(index)
    if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    return MetricRun(info=run.info, values=run.values[idx], quality=run.quality[idx], seconds=run.seconds[idx],
                     extras={k: v[idx] for k, v in run.extras.items()}, errors=[run.errors[int(i)] for i in idx],
                     setup_s=run.setup_s)


def is_identity(row: ManifestRow) -> bool:
    """True if the degraded file is the reference itself (hidden reference / identity check)."""
    return row.reference is not None and os.path.realpath(row.reference) == os.path.realpath(row.degraded)


def timing(run: MetricRun, durations: np.ndarray) -> dict:
    """Per-file wall time summary: median and mean seconds per file, real-time factor.

    The real-time factor is degraded audio seconds divided by wall seconds, summed over the
    files the metric scored (> 1: faster than real time).
    """
    ok = np.isfinite(run.seconds)
    total = float(np.sum(run.seconds[ok])) if ok.any() else math.nan
    audio = float(np.nansum(durations[ok])) if ok.any() else math.nan
    return {"files": int(ok.sum()), "median_s": float(np.median(run.seconds[ok])) if ok.any() else math.nan,
            "mean_s": float(np.mean(run.seconds[ok])) if ok.any() else math.nan, "total_s": total,
            "realtime_factor": audio / total if ok.any() and total > 0 else math.nan, "setup_s": run.setup_s}


def evaluate(rows: Sequence[ManifestRow], runs: Sequence[MetricRun], *, exclude_identity: bool = False,
             n_boot: int = 2000, seed: int = 0) -> dict:
    """Agreement statistics of each metric with the rows' subjective scores.

    Parameters
    ----------
    rows : sequence of ManifestRow
        With ``subjective`` set (rows without one are left out).
    runs : sequence of MetricRun
        From :func:`run_metrics` on the same rows.
    exclude_identity : bool
        Leave out rows whose degraded file is the reference (hidden references).
    n_boot, seed : int
        Bootstrap settings for the confidence intervals.

    Returns
    -------
    dict
        ``{metric name: stats.summarise(...) result}`` plus, under each, ``timing``.
    """
    from deepaq_core.evaluation.stats import summarise

    keep = np.array([r.subjective is not None and not (exclude_identity and is_identity(r)) for r in rows])
    y = np.array([r.subjective if r.subjective is not None else np.nan for r in rows], dtype=np.float64)
    groups = [r.group for r in rows]
    has_groups = any(g for g in groups)
    durations = audio_durations(rows)
    out = {}
    for run in runs:
        g = [groups[i] for i in np.flatnonzero(keep)] if has_groups else None
        res = summarise(run.quality[keep], y[keep], g, n_boot=n_boot, seed=seed)
        res["timing"] = timing(run, durations)
        res["failed"] = int(sum(1 for i in np.flatnonzero(keep) if run.errors[i]))
        out[run.name] = res
    return out


def evaluate_ladder(rows: Sequence[ManifestRow], runs: Sequence[MetricRun], *, family_col: str = "family") -> dict:
    """How well each metric orders the versions of each ladder group by intensity.

    Parameters
    ----------
    rows : sequence of ManifestRow
        ``subjective`` holds the degradation intensity (higher = more degraded), ``group`` the
        ladder (one clean item through one family, say). Rows without a group form one ladder.
    runs : sequence of MetricRun
    family_col : str
        Extra column used to aggregate groups by degradation family when present.

    Returns
    -------
    dict
        Per metric: ``groups`` (``{group: ladder_agreement}``), ``mean_spearman`` (over
        groups), ``min_spearman``, ``pairs_ordered`` (pooled over all groups' pairs),
        ``families`` (the same per family) and ``timing``.
    """
    from deepaq_core.evaluation.stats import ladder_agreement

    t = np.array([r.subjective if r.subjective is not None else np.nan for r in rows], dtype=np.float64)
    groups = np.array([r.group or "" for r in rows], dtype=object)
    families = {str(g): (rows[int(np.flatnonzero(groups == g)[0])].extra.get(family_col) or "") for g in set(groups)}
    durations = audio_durations(rows)
    out = {}
    for run in runs:
        per = {}
        for g in sorted(set(groups.tolist())):
            m = groups == g
            per[g] = ladder_agreement(run.quality[m], t[m])

        def pool(labels):
            sp = [per[g]["spearman"] for g in labels if np.isfinite(per[g]["spearman"])]
            pairs = sum(per[g]["n_pairs"] for g in labels)
            ordered = sum(per[g]["pairs_ordered"] * per[g]["n_pairs"] for g in labels if per[g]["n_pairs"])
            return {"mean_spearman": float(np.mean(sp)) if sp else math.nan,
                    "min_spearman": float(np.min(sp)) if sp else math.nan,
                    "pairs_ordered": ordered / pairs if pairs else math.nan, "n_groups": len(labels),
                    "n_pairs": pairs}

        res = {"groups": per, **pool(list(per))}
        fams = sorted({f for f in families.values() if f})
        res["families"] = {f: pool([g for g in per if families[g] == f]) for f in fams}
        res["timing"] = timing(run, durations)
        out[run.name] = res
    return out
