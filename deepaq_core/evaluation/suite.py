"""``deepaq eval --suite dev``: every developer evaluation set in one run, one table per set.

The dev suite is a folder (by default ``../shared/data``) holding up to four sets, each a
sub-folder with a ``manifest.csv`` (see that folder's README):

``tcdaudio14``
    Music through codecs and low-pass filters; target ``visqol_v3_moslqo`` (ViSQOL v3's own
    conformance output, not listener scores). Pearson and Spearman over the coded items; the
    identity row is left out of the correlations and its value reported apart.
``sisec08``
    Separated instruments rated by listeners (MUSHRA ``subjective_mean``). Pearson and
    Spearman with 95 % bootstrap intervals over all rows and without the hidden references,
    and the leave-one-target-out mapped Pearson (:func:`~deepaq_core.evaluation.stats.cross_fitted_predictions`
    with the ``target`` column as folds).
``tcdvoip``
    VoIP-degraded speech, ACR MOS (``subjective_mean``), two talkers. Raw Pearson and Spearman
    with intervals; the talker-cross-validated mapped Pearson (the ITU-T P.1401 monotonic
    mapping fitted on one talker predicts the other, and the reverse; pooled out-of-fold
    predictions vs MOS); the RMSE of those predictions; raw Pearson per impairment ``type``.
``phase_abx``
    Constant phase shifts with ABX detection results. Per stimulus each metric's value (for
    DeePAQ models the 0-100 score and the distance) and the ``audible`` flag; two checks:
    every inaudible pair scores at least :data:`TRANSPARENT_SCORE` (DeePAQ models only), and
    both audible pairs score below every inaudible one (every metric, quality orientation).

All statistics use the quality orientation of :mod:`~deepaq_core.evaluation.metrics`
(distances negated), so a positive correlation always means agreement. Every set is scored
in one :func:`~deepaq_core.evaluation.runner.run_metrics` call, so each metric is set up once.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepaq_core.errors import DeePAQError

log = logging.getLogger(__name__)

# A DeePAQ score at or above this calls a pair transparent (phase_abx check).
TRANSPARENT_SCORE = 95.0
DEFAULT_MODELS = ("compact", "compact-untrained")
# CDPAM is left out by default: minutes per file on a CPU.
DEFAULT_PEERS = "visqol,zimtohrli"
TCDVOIP_TYPES = ("chop", "clip", "compspkr", "echo", "noise")


@dataclass(frozen=True)
class SetSpec:
    """How to read and analyse one set of a suite.

    Attributes
    ----------
    name : str
        Sub-folder name (and table title).
    subjective_col : str
        The column the metrics are compared with.
    group_col : str or None
        Grouping column (kept in the items CSV).
    required : tuple of str
        Other columns the analysis needs.
    about : str
        One line under the set's heading.
    """

    name: str
    subjective_col: str
    group_col: str | None
    required: tuple[str, ...] = ()
    about: str = ""


SUITES: dict[str, tuple[SetSpec, ...]] = {
    "dev": (
        SetSpec("tcdaudio14", "visqol_v3_moslqo", "codec", (),
                "music through AAC/MP3/Opus and low-pass filters; target = ViSQOL v3 conformance MOS-LQO (a metric's "
                "output, not listener scores)"),
        SetSpec("sisec08", "subjective_mean", "target", (),
                "separated instruments (3 targets x 3 systems + hidden references); "
                "target = MUSHRA mean, 14 listeners"),
        SetSpec("tcdvoip", "subjective_mean", "type", ("talker",),
                "VoIP-impaired speech, dev half (talkers FA, MK); target = ACR MOS, 24 listeners"),
        SetSpec("phase_abx", "p_correct", None, ("audible", "stimulus"),
                "constant phase shifts; ABX detection by 12 listeners (audible = above chance)"),
    ),
}


@dataclass
class SuiteData:
    """The rows of every set found, concatenated in suite order.

    Attributes
    ----------
    folder : pathlib.Path
        The suite folder.
    rows : list of ManifestRow
        All rows of all loaded sets.
    sets : dict
        ``{name: (SetSpec, numpy index array into rows)}`` in suite order.
    skipped : dict
        ``{name: one-line reason}`` for sets present but unreadable.
    """

    folder: Path
    rows: list = field(default_factory=list)
    sets: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)

    def set_names(self) -> list[str]:
        """Name of the set of each row."""
        out = [""] * len(self.rows)
        for name, (_, idx) in self.sets.items():
            for i in idx:
                out[int(i)] = name
        return out


def default_folders(cwd: str | os.PathLike | None = None) -> list[Path]:
    """Where the dev suite is looked for: ``../shared/data`` from the current folder, then the
    ``shared/data`` next to the repository holding this package."""
    here = Path(cwd or os.getcwd())
    repo = Path(__file__).resolve().parents[2]
    out: list[Path] = []
    for p in (here.parent / "shared" / "data", repo.parent / "shared" / "data"):
        p = p.resolve()
        if p not in out:
            out.append(p)
    return out


def _sets_in(folder: Path, specs: Sequence[SetSpec]) -> list[SetSpec]:
    return [s for s in specs if (folder / s.name / "manifest.csv").is_file()]


def find_suite_folder(folder: str | os.PathLike | None, suite: str = "dev") -> Path:
    """The folder to evaluate: ``folder`` if given, else the first of :func:`default_folders`.

    A folder counts if it holds at least one set of the suite (``<set>/manifest.csv``), or is
    itself one set's folder.

    Raises
    ------
    DeePAQError
        One sentence naming where it looked.
    """
    specs = SUITES[suite]
    if folder is not None:
        p = Path(folder).expanduser().resolve()
        if not p.is_dir():
            raise DeePAQError(f"Suite folder '{folder}' not found.")
        if not _sets_in(p, specs) and not (p.name in {s.name for s in specs} and (p / "manifest.csv").is_file()):
            raise DeePAQError(f"Suite folder '{folder}' holds none of the {suite} sets "
                              f"({', '.join(s.name for s in specs)}, each a folder with manifest.csv).")
        return p
    tried = default_folders()
    for p in tried:
        if p.is_dir() and _sets_in(p, specs):
            return p
    raise DeePAQError(f"No {suite} suite data found in {' or '.join(str(p) for p in tried)}; "
                      f"give the folder as 'deepaq eval --suite {suite} FOLDER'.")


def load_suite(folder: Path, suite: str = "dev", say: Callable[[str], None] | None = None) -> SuiteData:
    """Read the manifest of every set of ``suite`` found in ``folder``.

    A set whose manifest cannot be read (missing file, missing column, ...) is skipped with its
    one-line reason in :attr:`SuiteData.skipped`; the others still run.
    """
    from deepaq_core.evaluation.manifest import load_manifest

    say = say or log.info
    specs = SUITES[suite]
    found = [(s, folder / s.name) for s in _sets_in(folder, specs)]
    base = folder
    if not found:  # the folder of one set itself, e.g. shared/data/tcdvoip
        found = [(s, folder) for s in specs if s.name == folder.name and (folder / "manifest.csv").is_file()]
        base = folder.parent
    data = SuiteData(folder=base)
    for spec, set_dir in found:
        try:
            rows = load_manifest(set_dir / "manifest.csv", subjective_col=spec.subjective_col,
                                 group_col=spec.group_col)
            for col in spec.required:
                if any(col not in r.extra for r in rows):
                    raise DeePAQError(f"Manifest '{set_dir.name}/manifest.csv' has no column '{col}'.")
        except DeePAQError as exc:
            data.skipped[spec.name] = str(exc)
            say(f"skipping set {spec.name}: {exc}")
            continue
        start = len(data.rows)
        data.rows.extend(rows)
        data.sets[spec.name] = (spec, np.arange(start, len(data.rows)))
        say(f"set {spec.name}: {len(rows)} rows")
    missing = [s.name for s in specs if s.name not in data.sets and s.name not in data.skipped]
    if missing and base == folder:
        say(f"not in {folder}: {', '.join(missing)}")
    return data


# --------------------------------------------------------------------------------------------
# Statistics per set


def _corr_block(x, y, n_boot: int, seed: int, stats=("pearson", "spearman")) -> dict:
    from deepaq_core.evaluation.stats import bootstrap_ci, correlations

    c = correlations(x, y)
    out = {"n": c["n"]}
    for s in stats:
        out[s] = c[s]
        out[f"{s}_ci"] = bootstrap_ci(x, y, s, n_boot, seed)
    return out


def _cv_block(x, y, folds, n_boot: int, seed: int) -> dict:
    """Out-of-fold mapped predictions vs ``y``: Pearson with CI and RMSE (units of ``y``)."""
    from deepaq_core.evaluation.stats import bootstrap_ci, correlations, cross_fitted_predictions

    folds = list(folds)
    if len(set(folds)) < 2:
        return {"n": 0, "pearson": math.nan, "pearson_ci": (math.nan, math.nan), "rmse": math.nan,
                "folds": sorted(set(folds)), "predictions": [math.nan] * len(folds)}
    pred = cross_fitted_predictions(x, y, folds)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(pred) & np.isfinite(y)
    c = correlations(pred, y)
    rmse = float(np.sqrt(np.mean((pred[ok] - y[ok]) ** 2))) if ok.any() else math.nan
    return {"n": c["n"], "pearson": c["pearson"], "pearson_ci": bootstrap_ci(pred, y, "pearson", n_boot, seed),
            "rmse": rmse, "folds": sorted(set(folds)), "predictions": pred.tolist()}


def _subjective(rows) -> np.ndarray:
    return np.array([r.subjective if r.subjective is not None else np.nan for r in rows], dtype=np.float64)


def analyse_tcdaudio14(rows, runs, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Pearson/Spearman vs the target without identity rows, plus each identity row's value."""
    from deepaq_core.evaluation.runner import is_identity

    ident = np.array([is_identity(r) for r in rows])
    y = _subjective(rows)
    out = {}
    for run in runs:
        res = _corr_block(run.quality[~ident], y[~ident], n_boot, seed)
        res["identity"] = {os.path.basename(rows[i].degraded): float(run.values[i]) for i in np.flatnonzero(ident)}
        res["identity_target"] = {os.path.basename(rows[i].degraded): float(y[i]) for i in np.flatnonzero(ident)}
        res["failed"] = sum(1 for e in run.errors if e)
        out[run.name] = res
    return out


def analyse_sisec08(rows, runs, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Correlations over all rows and without hidden references; leave-one-target-out mapping."""
    from deepaq_core.evaluation.runner import is_identity

    ident = np.array([is_identity(r) for r in rows])
    y = _subjective(rows)
    targets = [r.group or "" for r in rows]
    out = {}
    for run in runs:
        out[run.name] = {
            "all": _corr_block(run.quality, y, n_boot, seed),
            "without_hidden_references": _corr_block(run.quality[~ident], y[~ident], n_boot, seed),
            "leave_one_target_out": _cv_block(run.quality, y, targets, n_boot, seed),
            "failed": sum(1 for e in run.errors if e),
        }
    return out


def analyse_tcdvoip(rows, runs, *, n_boot: int = 2000, seed: int = 0, talker_col: str = "talker") -> dict:
    """Raw correlations, talker-cross-validated mapped Pearson and per-type raw Pearson."""
    from deepaq_core.evaluation.stats import correlations

    y = _subjective(rows)
    talkers = [r.extra.get(talker_col, "") for r in rows]
    types = np.array([r.group or "" for r in rows], dtype=object)
    type_names = [t for t in TCDVOIP_TYPES if t in set(types.tolist())] + \
        sorted(set(types.tolist()) - set(TCDVOIP_TYPES))
    out = {}
    for run in runs:
        per_type = {}
        for t in type_names:
            m = types == t
            c = correlations(run.quality[m], y[m])
            per_type[t] = {"n": c["n"], "pearson": c["pearson"]}
        out[run.name] = {
            "raw": _corr_block(run.quality, y, n_boot, seed),
            "talker_cv": _cv_block(run.quality, y, talkers, n_boot, seed),
            "per_type": per_type,
            "failed": sum(1 for e in run.errors if e),
        }
    return out


def deepaq_scores(run) -> np.ndarray | None:
    """A DeePAQ model's 0-100 scores from its run (value or extra), None for other metrics."""
    if run.info.get("kind") != "deepaq":
        return None
    if run.info.get("output") == "score":
        return run.values
    return run.extras.get("score")


def deepaq_distances(run) -> np.ndarray | None:
    """A DeePAQ model's embedding distances from its run (value or extra), None for other metrics."""
    if run.info.get("kind") != "deepaq":
        return None
    if run.info.get("output") == "score":
        return run.extras.get("distance")
    return run.values


def analyse_phase_abx(rows, runs, *, transparent: float = TRANSPARENT_SCORE) -> dict:
    """Per-stimulus values and the two transparency checks."""
    audible = np.array([str(r.extra.get("audible", "")).strip() in ("1", "1.0", "true", "True") for r in rows])
    stimuli = [r.extra.get("stimulus") or os.path.basename(r.degraded) for r in rows]
    out = {"stimuli": stimuli, "audible": audible.astype(int).tolist(),
           "p_correct": _subjective(rows).tolist(), "metrics": {}}
    for run in runs:
        score = deepaq_scores(run)
        res = {"values": run.values.tolist(), "failed": sum(1 for e in run.errors if e)}
        q = run.quality
        if audible.any() and (~audible).any():
            qa, qi = q[audible], q[~audible]
            res["audible_below_inaudible"] = (bool(np.max(qa) < np.min(qi))
                                              if np.all(np.isfinite(qa)) and np.all(np.isfinite(qi)) else None)
        else:
            res["audible_below_inaudible"] = None
        if score is not None:
            res["scores"] = np.asarray(score, dtype=np.float64).tolist()
            dist = deepaq_distances(run)
            res["distances"] = (np.asarray(dist, dtype=np.float64) if dist is not None
                                else np.full(len(rows), np.nan)).tolist()
            si = np.asarray(score)[~audible]
            res["inaudible_transparent"] = (bool(np.all(si >= transparent))
                                            if si.size and np.all(np.isfinite(si)) else None)
            if audible.any() and (~audible).any():
                sa = np.asarray(score)[audible]
                res["audible_below_inaudible_score"] = (bool(np.max(sa) < np.min(si))
                                                        if np.all(np.isfinite(sa)) and np.all(np.isfinite(si))
                                                        else None)
        out["metrics"][run.name] = res
    return out


ANALYSES = {"tcdaudio14": analyse_tcdaudio14, "sisec08": analyse_sisec08, "tcdvoip": analyse_tcdvoip,
            "phase_abx": analyse_phase_abx}


# --------------------------------------------------------------------------------------------
# Markdown


def _g(x, digits: int = 4) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def _pf(flag) -> str:
    return "–" if flag is None else ("pass" if flag else "fail")


def _heading(run) -> str:
    from deepaq_core.evaluation.report import metric_heading

    return metric_heading(run.info)


def markdown_tcdaudio14(res: dict, runs, rows) -> str:
    from deepaq_core.evaluation.report import _ci

    ident_names = sorted({k for r in res.values() for k in r["identity"]})
    ident_label = ", ".join(Path(n).stem for n in ident_names) or "none"
    lines = [f"| metric | n | Pearson [95% CI] | Spearman [95% CI] | identity row ({ident_label}) |",
             "|---|---|---|---|---|"]
    for run in runs:
        r = res[run.name]
        ident = ", ".join(_g(r["identity"][k]) for k in ident_names) or "–"
        lines.append(f"| {_heading(run)} | {r['n']} | {_ci(r['pearson'], r['pearson_ci'])} "
                     f"| {_ci(r['spearman'], r['spearman_ci'])} | {ident} |")
    target = ", ".join(_g(v) for r in list(res.values())[:1] for v in r["identity_target"].values())
    lines += ["", f"Correlations without the identity row (its target value: {target or '–'}); identity column = "
              "the metric's raw value for the identity pair (the best it can say)."]
    return "\n".join(lines) + "\n"


def markdown_sisec08(res: dict, runs, rows) -> str:
    from deepaq_core.evaluation.report import _ci

    lines = ["| metric | n | Pearson [95% CI] | Spearman [95% CI] | n (no hidden ref.) | Pearson [95% CI] "
             "| Spearman [95% CI] | leave-one-target-out mapped Pearson [95% CI] | its RMSE |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        a, b, c = (res[run.name][k] for k in ("all", "without_hidden_references", "leave_one_target_out"))
        lines.append(f"| {_heading(run)} | {a['n']} | {_ci(a['pearson'], a['pearson_ci'])} "
                     f"| {_ci(a['spearman'], a['spearman_ci'])} | {b['n']} | {_ci(b['pearson'], b['pearson_ci'])} "
                     f"| {_ci(b['spearman'], b['spearman_ci'])} | {_ci(c['pearson'], c['pearson_ci'])} "
                     f"| {_g(c['rmse'], 3)} |")
    lines += ["", "Leave-one-target-out: the P.1401 monotonic mapping fitted on the rows of two targets (hidden "
              "references included) predicts the third; Pearson and RMSE (MUSHRA points) of the pooled predictions "
              "over all rows."]
    return "\n".join(lines) + "\n"


def markdown_tcdvoip(res: dict, runs, rows) -> str:
    from deepaq_core.evaluation.report import _ci, _f

    types = list(next(iter(res.values()))["per_type"]) if res else []
    type_n = {t: sum(1 for r in rows if (r.group or "") == t) for t in types}
    head = ("| metric | n | Pearson [95% CI] | Spearman [95% CI] | talker-CV mapped Pearson [95% CI] "
            "| talker-CV RMSE (MOS) | " + " | ".join(f"{t} ({type_n[t]})" for t in types) + " |")
    lines = [head, "|---|---|---|---|---|---|" + "---|" * len(types)]
    for run in runs:
        r = res[run.name]
        cells = []
        for t in types:
            pt = r["per_type"][t]
            cells.append(_f(pt["pearson"], 2) + ("" if pt["n"] == type_n[t] else f" (n={pt['n']})"))
        lines.append(f"| {_heading(run)} | {r['raw']['n']} | {_ci(r['raw']['pearson'], r['raw']['pearson_ci'])} "
                     f"| {_ci(r['raw']['spearman'], r['raw']['spearman_ci'])} "
                     f"| {_ci(r['talker_cv']['pearson'], r['talker_cv']['pearson_ci'])} "
                     f"| {_f(r['talker_cv']['rmse'], 3)} | " + " | ".join(cells) + " |")
    folds = next(iter(res.values()))["talker_cv"]["folds"] if res else []
    lines += ["", f"Talker CV: the P.1401 monotonic mapping (metric -> MOS) fitted on one talker's items predicts the "
              f"other's ({' / '.join(folds) or '–'}), both ways; Pearson and RMSE of the pooled out-of-fold "
              "predictions vs MOS. Per-type columns: raw Pearson within each impairment type (MNRU anchors included "
              "where the type holds them)."]
    return "\n".join(lines) + "\n"


def markdown_phase_abx(res: dict, runs, rows) -> str:
    stimuli, audible, p = res["stimuli"], res["audible"], res["p_correct"]
    head = "| stimulus | audible | p correct |"
    sep = "|---|---|---|"
    for run in runs:
        head += f" {_heading(run)}{' score (distance)' if 'scores' in res['metrics'][run.name] else ''} |"
        sep += "---|"
    lines = [head, sep]
    for i, s in enumerate(stimuli):
        cells = [s, str(audible[i]), _g(p[i], 2)]
        for run in runs:
            m = res["metrics"][run.name]
            if "scores" in m:
                cells.append(f"{_g(m['scores'][i], 4)} ({_g(m['distances'][i], 3)})")
            else:
                cells.append(_g(m["values"][i]))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"| metric | every inaudible pair scores >= {TRANSPARENT_SCORE:g} | both audible pairs below every "
              "inaudible one |", "|---|---|---|"]
    for run in runs:
        m = res["metrics"][run.name]
        if "scores" in m:
            lines.append(f"| {_heading(run)} | {_pf(m['inaudible_transparent'])} "
                         f"| {_pf(m.get('audible_below_inaudible_score'))} |")
        else:
            lines.append(f"| {_heading(run)} | n/a | {_pf(m['audible_below_inaudible'])} |")
    lines += ["", "DeePAQ models: both checks on the 0-100 score. Other metrics: only the order check, in quality "
              "orientation (higher = better after negating distances)."]
    return "\n".join(lines) + "\n"


MARKDOWN = {"tcdaudio14": markdown_tcdaudio14, "sisec08": markdown_sisec08, "tcdvoip": markdown_tcdvoip,
            "phase_abx": markdown_phase_abx}


def timing_markdown(runs, wall_s: float) -> str:
    """Per metric: files scored, failures, median and total seconds per file, setup time."""
    from deepaq_core.evaluation.report import _f

    lines = ["| metric | files | failed | median s/file | total s | setup s |", "|---|---|---|---|---|---|"]
    for run in runs:
        ok = np.isfinite(run.seconds)
        failed = sum(1 for e in run.errors if e)
        med = float(np.median(run.seconds[ok])) if ok.any() else math.nan
        lines.append(f"| {run.name} | {int(ok.sum())} | {failed} | {_f(med, 3)} | {float(np.sum(run.seconds[ok])):.1f} "
                     f"| {run.setup_s:.1f} |")
    lines += ["", f"Total wall time of the suite: {wall_s / 60:.1f} min ({wall_s:.0f} s)."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Running


class _Progress:
    """Rate-limited progress lines: the first file of a metric, then every ``every_s`` seconds."""

    def __init__(self, say: Callable[[str], None], set_names: Sequence[str], every_s: float = 15.0) -> None:
        self.say, self.set_names, self.every_s = say, list(set_names), every_s
        self._last = 0.0
        self._metric = None

    def __call__(self, metric: str, done: int, n: int) -> None:
        now = time.perf_counter()
        if metric != self._metric:
            self._metric, self._last = metric, now
            self.say(f"{metric}: scoring {n} files")
            return
        if now - self._last >= self.every_s and done < n:
            self._last = now
            self.say(f"{metric}: {done}/{n} files ({self.set_names[done - 1]})")


def run_suite(folder: Path, metrics, out_dir: str | os.PathLike, *, suite: str = "dev", n_boot: int = 2000,
              seed: int = 0, say: Callable[[str], None] | None = None, debug: bool = False,
              command: str = "") -> dict:
    """Score every set of the suite with every metric, analyse each set, write the outputs.

    Parameters
    ----------
    folder : pathlib.Path
        From :func:`find_suite_folder`.
    metrics : sequence of Metric
        Not yet set up (see :func:`~deepaq_core.evaluation.runner.run_metrics`).
    out_dir : str or os.PathLike
        Receives ``items.csv`` (all sets, a ``set`` column first), ``summary.md`` and
        ``summary.json``.
    n_boot, seed : int
        Bootstrap settings.
    say : callable or None
        One-line progress messages (default: the module logger).
    debug : bool
        Stop at the first failing file.
    command : str
        The command line, for the summary's header.

    Returns
    -------
    dict
        ``text`` (the markdown printed and saved), ``failures`` (file scorings that failed),
        ``skipped`` (``{set: reason}``), ``wall_s`` and ``sets`` (per-set statistics).
    """
    from deepaq_core.evaluation import report
    from deepaq_core.evaluation.runner import run_metrics, subset_run

    say = say or log.info
    t0 = time.perf_counter()
    data = load_suite(folder, suite, say)
    if not data.sets:
        raise DeePAQError(f"No set of the {suite} suite in '{folder}' could be read.")
    names = data.set_names()
    runs = run_metrics(data.rows, metrics, say=say, debug=debug, progress=_Progress(say, names))
    if not runs:
        raise DeePAQError("No metric could be set up; see the messages above.")
    results = {}
    sections = []
    for name, (spec, idx) in data.sets.items():
        rows = [data.rows[int(i)] for i in idx]
        sub = [subset_run(r, idx) for r in runs]
        fn = ANALYSES[name]
        results[name] = fn(rows, sub) if name == "phase_abx" else fn(rows, sub, n_boot=n_boot, seed=seed)
        sections.append(f"### {name}: {len(rows)} rows\n\n{spec.about}.\n\n" + MARKDOWN[name](results[name], sub, rows))
    wall_s = time.perf_counter() - t0
    failures = sum(1 for run in runs for e in run.errors if e)
    head = [f"## Dev suite: {', '.join(data.sets)}", "",
            f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC; {platform.machine()} CPU, "
            f"{os.cpu_count()} cores; folder `{folder}`" + (f"; `{command}`" if command else "") + ".", "",
            "↓ = distance (negated before correlating), ↑ = higher is better: a positive correlation always means "
            "agreement. 95 % CIs: percentile bootstrap over items "
            f"({n_boot} resamples, seed {seed}; none below 5 items).", ""]
    if data.skipped:
        head += ["Skipped sets: " + "; ".join(f"{k}: {v}" for k, v in data.skipped.items()), ""]
    text = "\n".join(head) + "\n" + "\n".join(sections) + "\n### Time\n\n" + timing_markdown(runs, wall_s)
    os.makedirs(out_dir, exist_ok=True)
    report.write_items_csv(os.path.join(out_dir, "items.csv"), data.rows, runs, base=str(data.folder), sets=names)
    with open(os.path.join(out_dir, "summary.md"), "w", encoding="utf-8") as f:
        f.write(text)
    summary = {"suite": suite, "folder": str(data.folder), "command": command, "wall_s": wall_s,
               "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
               "metrics": [r.info for r in runs], "bootstrap": n_boot, "seed": seed,
               "n_rows": {k: int(len(v[1])) for k, v in data.sets.items()}, "skipped_sets": data.skipped,
               "failures": failures, "sets": results,
               "timing": {r.name: {"files": int(np.isfinite(r.seconds).sum()),
                                   "total_s": float(np.nansum(r.seconds)), "setup_s": r.setup_s} for r in runs}}
    report.write_json(os.path.join(out_dir, "summary.json"), summary)
    return {"text": text, "failures": failures, "skipped": data.skipped, "wall_s": wall_s, "sets": results}
