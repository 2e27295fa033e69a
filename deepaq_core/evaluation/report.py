"""Outputs of an evaluation run: per-item CSV, markdown tables, JSON and scatter plots.

Plots need matplotlib (optional, in the ``peers`` extra); without it :func:`scatter_png` and
:func:`ladder_png` return None and the caller prints one line saying so.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence

import numpy as np

from deepaq_core.evaluation.manifest import ManifestRow
from deepaq_core.evaluation.runner import MetricRun, is_identity

ARROW = {True: "↑", False: "↓"}


def _f(x, digits: int = 3) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _ci(v: float, ci) -> str:
    if not np.isfinite(v):
        return "–"
    lo, hi = ci
    return f"{v:.2f} [{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) and np.isfinite(hi) else f"{v:.2f}"


def metric_heading(info: dict) -> str:
    """``name ↓`` / ``name ↑``: the arrow gives the direction of the raw value that means better."""
    return f"{info['name']} {ARROW[bool(info['higher_is_better'])]}"


def write_items_csv(path: str | os.PathLike, rows: Sequence[ManifestRow], runs: Sequence[MetricRun],
                    base: str | os.PathLike | None = None, sets: Sequence[str] | None = None) -> None:
    """Per-item CSV: the row, then per metric its value, extras, seconds and error.

    Parameters
    ----------
    path : str or os.PathLike
        Output file.
    rows, runs
        The manifest rows and :func:`~deepaq_core.evaluation.runner.run_metrics` results.
    base : str or os.PathLike or None
        Write audio paths relative to this folder (e.g. the manifest's), so the CSV does not
        depend on where the data lives; None keeps absolute paths.
    sets : sequence of str or None
        Name of the set of each row (a suite run); written as a first ``set`` column.
    """
    extra_cols = list(dict.fromkeys(k for r in rows for k in r.extra))
    header = ["reference", "degraded", "group", "subjective", "identity", *extra_cols]
    if sets is not None:
        header.insert(0, "set")
    for run in runs:
        header += [run.name, *[f"{run.name}_{k}" for k in run.extras], f"{run.name}_s", f"{run.name}_error"]

    def rel(p):
        if p is None:
            return ""
        return os.path.relpath(p, base) if base is not None else p

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i, r in enumerate(rows):
            rec = [rel(r.reference), rel(r.degraded), r.group or "", "" if r.subjective is None else r.subjective,
                   int(is_identity(r)), *[r.extra.get(k, "") for k in extra_cols]]
            if sets is not None:
                rec.insert(0, sets[i])
            for run in runs:
                rec += [_num(run.values[i]), *[_num(run.extras[k][i]) for k in run.extras], _num(run.seconds[i], 4),
                        run.errors[i] or ""]
            w.writerow(rec)


def _num(x: float, digits: int = 6):
    return "" if not np.isfinite(x) else round(float(x), digits)


def summary_markdown(stats: dict, runs: Sequence[MetricRun], *, subjective_name: str = "subjective") -> str:
    """Markdown tables of :func:`~deepaq_core.evaluation.runner.evaluate`'s result.

    One overall table (correlations with 95 % bootstrap intervals, RMSE after the P.1401 mapping,
    Fisher-z mean of the per-group Pearson, time per file) and per-group Pearson / Spearman tables.
    """
    info = {r.name: r.info for r in runs}
    lines = [
        "| metric | n | Pearson [95% CI] | Spearman [95% CI] | Kendall [95% CI] | RMSE after mapping "
        "| Fisher-z mean Pearson (groups) | s/file (median) | real-time factor |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in stats.items():
        o, t = s["overall"], s["timing"]
        fz = f"{_f(s['fisher_z_pearson'], 2)} ({s['fisher_z_groups']})" if s["fisher_z_groups"] else "–"
        lines.append(
            f"| {metric_heading(info[name])} | {o['n']} | {_ci(o['pearson'], o['pearson_ci'])} "
            f"| {_ci(o['spearman'], o['spearman_ci'])} | {_ci(o['kendall'], o['kendall_ci'])} | {_f(o['rmse'])} "
            f"| {fz} | {_f(t['median_s'], 2)} | {_f(t['realtime_factor'], 1)} |"
        )
    lines.append("")
    lines.append(f"↓ = a distance (lower raw value = better); its values are negated before correlating, so "
                 f"for every metric a positive correlation means agreement with `{subjective_name}`. RMSE is in "
                 f"`{subjective_name}` units after the ITU-T P.1401 third-order monotonic mapping (N - 4 degrees "
                 f"of freedom). Real-time factor = audio seconds / wall seconds (> 1 is faster than real time).")
    groups = sorted({g for s in stats.values() for g in s["groups"]})
    if groups:
        for stat in ("pearson", "spearman"):
            lines += ["", f"Per-group {stat.capitalize()} (n items; – = fewer than 3 items):", "",
                      "| metric | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
            for name, s in stats.items():
                cells = [f"{_f(s['groups'][g][stat], 2)} ({s['groups'][g]['n']})" if g in s["groups"] else "–"
                         for g in groups]
                lines.append(f"| {metric_heading(info[name])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def ladder_markdown(stats: dict, runs: Sequence[MetricRun]) -> str:
    """Markdown table of :func:`~deepaq_core.evaluation.runner.evaluate_ladder`'s result."""
    info = {r.name: r.info for r in runs}
    fams = sorted({f for s in stats.values() for f in s["families"]})
    head = "| metric | groups | mean Spearman | min Spearman | pairs ordered |"
    sep = "|---|---|---|---|---|"
    for f in fams:
        head += f" {f}: Spearman / pairs |"
        sep += "---|"
    head += " s/file (median) | real-time factor |"
    sep += "---|---|"
    lines = [head, sep]
    for name, s in stats.items():
        cells = [metric_heading(info[name]), str(s["n_groups"]), _f(s["mean_spearman"]), _f(s["min_spearman"]),
                 _f(s["pairs_ordered"])]
        cells += [f"{_f(s['families'][f]['mean_spearman'])} / {_f(s['families'][f]['pairs_ordered'])}" for f in fams]
        cells += [_f(s["timing"]["median_s"], 2), _f(s["timing"]["realtime_factor"], 1)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Spearman between the metric (quality orientation) and the negated intensity within each ladder "
                 "group, averaged over groups; pairs ordered = share of all within-group pairs of different "
                 "intensity that the metric puts in the right order (ties count one half).")
    return "\n".join(lines) + "\n"


def write_json(path: str | os.PathLike, obj) -> None:
    """JSON with NaN written as null and tuples as lists."""

    def clean(o):
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, (float, np.floating)):
            return None if not math.isfinite(float(o)) else float(o)
        if isinstance(o, np.integer):
            return int(o)
        return o

    with open(path, "w", encoding="utf-8") as f:
        json.dump(clean(obj), f, indent=2)


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # headless: never open a window, never need a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path, dpi: int) -> None:
    """Save a figure as a small PNG: rendered by matplotlib, then reduced to a 64-colour palette.

    Line plots use few colours, so the palette costs nothing visible and makes the committed
    report images several times smaller. Pillow comes with matplotlib.
    """
    import io

    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - matplotlib depends on Pillow
        with open(path, "wb") as f:
            f.write(buf.getvalue())
        return
    buf.seek(0)
    Image.open(buf).convert("RGB").quantize(colors=64).save(path, optimize=True)


def _grid(n: int):
    cols = min(4, n)
    return cols, int(math.ceil(n / cols))


def scatter_png(path: str | os.PathLike, rows: Sequence[ManifestRow], runs: Sequence[MetricRun], stats: dict,
                *, subjective_name: str = "subjective", title: str = "", dpi: int = 72) -> str | None:
    """Metric vs subjective scatter, one panel per metric, coloured by group, with the mapping.

    Returns the path written, or None when matplotlib is not installed.
    """
    plt = _pyplot()
    if plt is None or not runs:
        return None
    from deepaq_core.evaluation.stats import fit_monotonic_mapping

    y = np.array([r.subjective if r.subjective is not None else np.nan for r in rows], dtype=np.float64)
    groups = [r.group or "all" for r in rows]
    labels = sorted(set(groups))
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    colours = {g: cmap(i % cmap.N) for i, g in enumerate(labels)}
    cols, nrows = _grid(len(runs))
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.9 * nrows + 0.5), squeeze=False)
    for ax, run in zip(axes.ravel(), runs):
        x = run.values
        for g in labels:
            m = np.array([gg == g for gg in groups]) & np.isfinite(x) & np.isfinite(y)
            ax.scatter(x[m], y[m], s=18, color=colours[g], label=g, edgecolors="none")
        ok = np.isfinite(run.quality) & np.isfinite(y)
        if ok.sum() >= 4:
            mapping = fit_monotonic_mapping(run.quality[ok], y[ok])
            q = np.linspace(run.quality[ok].min(), run.quality[ok].max(), 100)
            sign = 1.0 if run.info["higher_is_better"] else -1.0
            ax.plot(sign * q, mapping(q), color="0.4", lw=1)
        o = stats.get(run.name, {}).get("overall", {})
        ax.set_title(f"{metric_heading(run.info)}  r={_f(o.get('pearson'), 2)} ρ={_f(o.get('spearman'), 2)}",
                     fontsize=8)
        ax.set_xlabel(run.info.get("unit", ""), fontsize=7)
        ax.set_ylabel(subjective_name, fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[len(runs):]:
        ax.axis("off")
    handles, names = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 8), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97 if title else 1))
    _save(fig, path, dpi)
    plt.close(fig)
    return str(path)


def ladder_png(path: str | os.PathLike, rows: Sequence[ManifestRow], runs: Sequence[MetricRun], stats: dict,
               *, family_col: str = "family", title: str = "", dpi: int = 72) -> str | None:
    """Quality-oriented metric vs intensity, one line per ladder group, coloured by family.

    Values are min-max normalised within each group so ladders of different items share an axis.
    Returns the path written, or None when matplotlib is not installed.
    """
    plt = _pyplot()
    if plt is None or not runs:
        return None
    t = np.array([r.subjective if r.subjective is not None else np.nan for r in rows], dtype=np.float64)
    groups = np.array([r.group or "" for r in rows], dtype=object)
    fam_of = np.array([r.extra.get(family_col, "") or "" for r in rows], dtype=object)
    fams = sorted(set(fam_of.tolist()))
    cmap = plt.get_cmap("tab10")
    colours = {f: cmap(i % 10) for i, f in enumerate(fams)}
    cols, nrows = _grid(len(runs))
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.9 * nrows + 0.5), squeeze=False)
    for ax, run in zip(axes.ravel(), runs):
        for g in sorted(set(groups.tolist())):
            m = (groups == g) & np.isfinite(run.quality)
            if m.sum() < 2:
                continue
            order = np.argsort(t[m], kind="stable")
            q = run.quality[m][order]
            span = np.ptp(q)
            qn = (q - q.min()) / span if span > 0 else np.zeros_like(q)
            ax.plot(t[m][order], qn, lw=0.8, alpha=0.6, color=colours[fam_of[m][0]])
        s = stats.get(run.name, {})
        ax.set_title(f"{run.info['name']}  ρ̄={_f(s.get('mean_spearman'), 2)} pairs={_f(s.get('pairs_ordered'), 2)}",
                     fontsize=8)
        ax.set_xlabel("intensity (0 = clean)", fontsize=7)
        ax.set_ylabel("quality, min-max per ladder", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[len(runs):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=colours[f], lw=1.5) for f in fams]
    fig.legend(handles, fams, loc="lower center", ncol=min(len(fams), 8), fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97 if title else 1))
    _save(fig, path, dpi)
    plt.close(fig)
    return str(path)
