"""``deepaq eval``: agreement of DeePAQ models, baselines and peer metrics with subjective scores.

Loaded by :mod:`deepaq_core.cli` through :func:`register`. Registration only builds the parser
(standard library only); numpy, torch, scipy and the peers are imported when the command runs.

Four modes::

    deepaq eval MANIFEST.csv --subjective-col subjective_mean --group-col target
    deepaq eval --ladder DIR_OR_MANIFEST [--anchor CODEC]    # known intensities, no listeners
    deepaq eval --make-ladder CLEAN.flac ... --families mp3,opus,lowpass --excerpt-s 6
    deepaq eval --suite dev [FOLDER]                         # every dev set, one table each

Each writes to ``--out`` (default ``deepaq_eval/``): ``items.csv`` (per item and metric: value,
seconds, error), ``summary.md`` (printed too), ``summary.json`` and, except for ``--suite``, a
PNG (``scatter.png`` or ``ladder.png``; needs matplotlib). The suite is described in
:mod:`deepaq_core.evaluation.suite`.

A ladder with codec rungs at several bitrates (a manifest's ``family``/``param``/``unit`` columns,
or a folder of files named like ``song_mp3_64kbps.flac``, see
:mod:`deepaq_core.evaluation.rate_quality`) also gets, per metric, the mean score per codec and
bitrate with a 95% CI across excerpts and each codec's Bjøntegaard-delta rate against
``--anchor``; these are printed and written to ``rate_quality.csv``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from deepaq_core.errors import DeePAQError

DEFAULT_FAMILIES = "mp3,opus,lowpass"
# Kept in step with deepaq_core.evaluation.suite.DEFAULT_MODELS and DEFAULT_PEERS (not imported: registration
# stays light).
DEFAULT_SUITE_MODELS = ("compact", "compact-untrained")
DEFAULT_SUITE_PEERS = "visqol,zimtohrli"


def register(subparsers) -> dict:
    """Add the ``eval`` subcommand; returns ``{"eval": handler}``."""
    p = subparsers.add_parser(
        "eval", help="correlate models, baselines and peer metrics with subjective scores or ladders",
        description="Evaluate DeePAQ models, two baselines (SI-SDR, log-mel L1) and installed peer metrics "
        "(ViSQOL, Zimtohrli, CDPAM) on a manifest with subjective scores, or on a degradation ladder.")
    p.add_argument("manifest", nargs="?", help="CSV with reference, degraded and subjective columns "
                   "(paths relative to the CSV); with --suite: the folder holding the sets (default: "
                   "../shared/data, then the shared/data next to the repository)")
    p.add_argument("--reference-col", default="reference", help="reference column (default: reference)")
    p.add_argument("--degraded-col", default="degraded", help="degraded column (default: degraded)")
    p.add_argument("--subjective-col", default=None,
                   help="subjective-score column (default: subjective; intensity with --ladder)")
    p.add_argument("--group-col", default=None,
                   help="optional grouping column, e.g. condition, codec, target (default: group with --ladder)")
    p.add_argument("--clean", metavar="DIR", help="clean recordings for rows without a reference (NMR; "
                   "DeePAQ models only)")
    p.add_argument("--suite", choices=["dev"], default=None,
                   help="score every set of the dev suite (tcdaudio14, sisec08, tcdvoip, phase_abx) found in "
                   "FOLDER and print one table per set; default models: " + " and ".join(DEFAULT_SUITE_MODELS))
    lad = p.add_argument_group("ladders (no listener scores)")
    lad.add_argument("--ladder", metavar="DIR_OR_CSV", help="evaluate a ladder manifest (reference, degraded, "
                     "intensity, group), or a folder holding manifest.csv")
    lad.add_argument("--anchor", metavar="CODEC", default=None,
                     help="--ladder with codec rungs: the codec the others' Bjontegaard-delta rate is measured "
                     "against (default: mp3 if present, else the first codec by name)")
    lad.add_argument("--make-ladder", nargs="+", metavar="CLEAN", help="generate a ladder from these clean files "
                     "with deepaq degrade, then evaluate it")
    lad.add_argument("--families", default=DEFAULT_FAMILIES,
                     help=f"degradation families for --make-ladder (default: {DEFAULT_FAMILIES})")
    lad.add_argument("--excerpt-s", type=float, default=None, help="--make-ladder: seconds from the middle of "
                     "each clean file (default: all)")
    lad.add_argument("--ladder-dir", default=None, help="--make-ladder: where to write it (default: OUT/ladder)")
    m = p.add_argument_group("metrics")
    m.add_argument("--model", action="append", default=None, metavar="NAME|PATH",
                   help="DeePAQ model to include (repeatable; 'all' = every available one, 'none' = baselines and "
                   "peers only; default: compact, with --suite: compact and compact-untrained)")
    m.add_argument("--allow-unverified", action="store_true",
                   help="also load model bundles whose card has no weights checksum (weights_sha256)")
    m.add_argument("--peers", default=None, help="peer metrics: all (default: those installed; with --suite: "
                   f"{DEFAULT_SUITE_PEERS}, as CDPAM takes minutes per file on a CPU), none, or a "
                   "comma-separated list of visqol, zimtohrli, cdpam")
    m.add_argument("--deepaq-output", choices=["distance", "score"], default="distance",
                   help="DeePAQ value to correlate (default: distance; score is its 0-100 mapping)")
    m.add_argument("--device", default="auto", help="torch device for DeePAQ models (default: auto); CDPAM runs "
                   "on cpu unless this names a cuda device")
    o = p.add_argument_group("output")
    o.add_argument("--out", default="deepaq_eval", help="output folder (default: ./deepaq_eval)")
    o.add_argument("--title", default=None, help="title of the plot (default: the manifest's folder name)")
    o.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for the 95%% CIs (default 2000)")
    o.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    o.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logging; also stop at the first "
                   "failing file")
    return {"eval": cmd_eval}


def _say(msg: str) -> None:
    print(f"deepaq eval: {msg}", file=sys.stderr, flush=True)


def build_metrics(models, peers: str, *, device: str = "auto", output: str = "distance", clean=None, say=_say,
                  allow_unverified: bool = False):
    """DeePAQ models, the two baselines and the installed peers, in report order.

    Parameters
    ----------
    models : sequence of str or None
        Model names or bundle folders (``"all"`` = every available model); None = ``compact``.
    peers : str
        ``"all"``, ``"none"`` or a comma-separated list.
    device, output : str
        For the DeePAQ models (see :class:`~deepaq_core.evaluation.metrics.DeePAQMetric`).
    clean : sequence of str or None
        Clean recordings for NMR rows.
    say : callable
        Receives the one-line skip notes.
    allow_unverified : bool
        Also load DeePAQ model bundles without a weights checksum.

    Returns
    -------
    list of Metric
    """
    from deepaq_core.evaluation.metrics import DeePAQMetric, LogMelMetric, SiSdrMetric, resolve_models
    from deepaq_core.evaluation.peers import load_peers, parse_peers

    names, notes = resolve_models(models or ["compact"])
    peer_names = parse_peers(peers)  # validate before anything slow
    metrics = [DeePAQMetric(n, device, output, clean, allow_unverified=allow_unverified) for n in names]
    metrics += [SiSdrMetric(), LogMelMetric()]
    peer_device = device if device.startswith("cuda") else "cpu"
    found, peer_notes = load_peers(peer_names, device=peer_device)
    for line in notes + peer_notes:
        say(line)
    return metrics + found


def _clean_files(folder: str | None) -> list[str] | None:
    if not folder:
        return None
    from deepaq_core.cli import AUDIO_SUFFIXES

    if not os.path.isdir(folder):
        raise DeePAQError(f"Clean-recordings folder '{folder}' not found.")
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                   if os.path.splitext(f)[1].lower() in AUDIO_SUFFIXES)
    if not files:
        raise DeePAQError(f"Folder '{folder}' holds no audio files to use as clean recordings.")
    return files


def cmd_eval(args: argparse.Namespace) -> int:
    """Handler of ``deepaq eval``; returns the exit code (2 if some file could not be scored)."""
    if args.bootstrap < 100:
        raise DeePAQError("--bootstrap must be at least 100 resamples.")
    if args.suite:
        if args.ladder or args.make_ladder or args.clean:
            raise DeePAQError("--suite cannot be combined with --ladder, --make-ladder or --clean.")
        return _run_suite(args)
    modes = sum(bool(x) for x in (args.manifest, args.ladder, args.make_ladder))
    if modes != 1:
        raise DeePAQError("deepaq eval needs exactly one of MANIFEST, --ladder, --make-ladder or --suite.")
    os.makedirs(args.out, exist_ok=True)
    from deepaq_core.evaluation.manifest import load_manifest
    from deepaq_core.evaluation.runner import run_metrics

    ladder_path = args.ladder
    if args.make_ladder:
        from deepaq_core.evaluation.ladder import make_ladder_set

        families = [f.strip() for f in args.families.split(",") if f.strip()]
        for f in args.make_ladder:
            if not os.path.isfile(f):
                raise DeePAQError(f"Clean file '{f}' not found.")
        ladder_path = make_ladder_set(args.make_ladder, families, args.ladder_dir or os.path.join(args.out, "ladder"),
                                      excerpt_s=args.excerpt_s, say=_say)
    if args.anchor and not ladder_path:
        raise DeePAQError("--anchor goes with --ladder or --make-ladder.")
    rows = None
    if ladder_path and os.path.isdir(ladder_path):
        if os.path.isfile(os.path.join(ladder_path, "manifest.csv")):
            ladder_path = os.path.join(ladder_path, "manifest.csv")
        else:  # a folder of codec versions named by bitrate (e.g. the app's Generate dialog output)
            from deepaq_core.evaluation.rate_quality import read_rate_ladder, rows_from_points

            rows = rows_from_points(read_rate_ladder(ladder_path))
            ladder_path = os.path.join(ladder_path, "manifest.csv")  # where the outputs say it came from
    manifest = ladder_path or args.manifest
    ladder = bool(ladder_path)
    clean = _clean_files(args.clean)
    if rows is None:
        rows = load_manifest(
            manifest, reference_col=args.reference_col, degraded_col=args.degraded_col,
            subjective_col=args.subjective_col or ("intensity" if ladder else "subjective"),
            group_col=args.group_col or ("group" if ladder else None), require_reference=not clean,
        )
    if ladder and args.anchor:
        from deepaq_core.evaluation.rate_quality import points_from_rows

        codecs = sorted({p.codec for p in points_from_rows(rows)[1]})
        if args.anchor.lower() not in codecs:
            raise DeePAQError(f"--anchor {args.anchor}: the ladder has no rungs of that codec (it has "
                              f"{', '.join(codecs) or 'no codec rungs'}).")
    metrics = build_metrics(args.model, args.peers or "all", device=args.device, output=args.deepaq_output,
                            clean=clean, allow_unverified=args.allow_unverified)
    runs = run_metrics(rows, metrics, say=_say, debug=args.debug)
    if not runs:
        raise DeePAQError("No metric could be set up; see the messages above.")
    base = os.path.dirname(os.path.abspath(manifest))
    title = args.title or os.path.basename(base)
    text = _write_ladder(args, rows, runs, base, title) if ladder else _write_scores(args, rows, runs, base, title)
    print(text)
    failures = sum(1 for run in runs for e in run.errors if e and not e.startswith("no reference"))
    if failures:
        print(f"deepaq: error: {failures} file scorings failed (see the *_error columns of "
              f"{os.path.join(args.out, 'items.csv')}).", file=sys.stderr)
        return 2
    return 0


def _run_suite(args: argparse.Namespace) -> int:
    """``deepaq eval --suite NAME [FOLDER]``: every set of the suite, one table per set."""
    import shlex

    from deepaq_core.evaluation.suite import find_suite_folder, run_suite

    folder = find_suite_folder(args.manifest, args.suite)  # before any model loads
    _say(f"suite {args.suite}: {folder}")
    peers = args.peers or DEFAULT_SUITE_PEERS
    metrics = build_metrics(args.model or list(DEFAULT_SUITE_MODELS), peers, device=args.device,
                            output=args.deepaq_output, allow_unverified=args.allow_unverified)
    parts = ["deepaq", "eval", "--suite", args.suite, *([args.manifest] if args.manifest else [])]
    for m in args.model or []:
        parts += ["--model", m]
    parts += ["--peers", peers, "--device", args.device, "--deepaq-output", args.deepaq_output,
              "--bootstrap", str(args.bootstrap), "--seed", str(args.seed), "--out", args.out]
    command = " ".join(shlex.quote(p) for p in parts)
    # Every metric loads each pair, so a file's warning (e.g. an uncertain alignment) would repeat once per
    # metric; show each distinct message once.
    seen: set[str] = set()

    def once(record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if msg in seen:
            return False
        seen.add(msg)
        return True

    handlers = logging.getLogger().handlers
    for h in handlers:
        h.addFilter(once)
    try:
        res = run_suite(folder, metrics, args.out, suite=args.suite, n_boot=args.bootstrap, seed=args.seed,
                        say=_say, debug=args.debug, command=command)
    finally:
        for h in handlers:
            h.removeFilter(once)
    print(res["text"])
    _say(f"suite done in {res['wall_s'] / 60:.1f} min; outputs in {args.out}")
    problems = []
    if res["failures"]:
        problems.append(f"{res['failures']} file scorings failed (see the *_error columns of "
                        f"{os.path.join(args.out, 'items.csv')})")
    if res["skipped"]:
        problems.append(f"{len(res['skipped'])} set(s) could not be read ({', '.join(res['skipped'])})")
    if problems:
        print(f"deepaq: error: {'; '.join(problems)}.", file=sys.stderr)
        return 2
    return 0


def _write_scores(args, rows, runs, base: str, title: str) -> str:
    from deepaq_core.evaluation import report
    from deepaq_core.evaluation.runner import evaluate, is_identity

    subj = args.subjective_col or "subjective"
    stats = {"all": evaluate(rows, runs, n_boot=args.bootstrap, seed=args.seed)}
    text = f"## {title}: all {len(rows)} rows\n\n" + report.summary_markdown(stats["all"], runs, subjective_name=subj)
    n_id = sum(is_identity(r) for r in rows)
    if n_id:
        stats["without_identity"] = evaluate(rows, runs, exclude_identity=True, n_boot=args.bootstrap, seed=args.seed)
        text += (f"\n## {title}: without the {n_id} identity rows (degraded = reference)\n\n"
                 + report.summary_markdown(stats["without_identity"], runs, subjective_name=subj))
    report.write_items_csv(os.path.join(args.out, "items.csv"), rows, runs, base=base)
    report.write_json(os.path.join(args.out, "summary.json"),
                      {"metrics": [r.info for r in runs], "n_rows": len(rows), "subjective": subj, **stats})
    with open(os.path.join(args.out, "summary.md"), "w", encoding="utf-8") as f:
        f.write(text)
    if not args.no_plot:
        png = report.scatter_png(os.path.join(args.out, "scatter.png"), rows, runs, stats["all"],
                                 subjective_name=subj, title=title)
        if png is None:
            _say("no plot: matplotlib is not installed (pip install matplotlib).")
    return text


def _write_ladder(args, rows, runs, base: str, title: str) -> str:
    from deepaq_core.evaluation import report
    from deepaq_core.evaluation.runner import evaluate_ladder

    stats = evaluate_ladder(rows, runs)
    text = f"## {title}: ladder agreement ({len(rows)} rows)\n\n" + report.ladder_markdown(stats, runs)
    rq = _rate_quality(args, rows, runs)
    if rq:
        text += "\n" + rq["text"]
        stats = {**stats, "rate_quality": rq["json"]}
    report.write_items_csv(os.path.join(args.out, "items.csv"), rows, runs, base=base)
    report.write_json(os.path.join(args.out, "summary.json"),
                      {"metrics": [r.info for r in runs], "n_rows": len(rows), "ladder": stats})
    with open(os.path.join(args.out, "summary.md"), "w", encoding="utf-8") as f:
        f.write(text)
    if not args.no_plot:
        png = report.ladder_png(os.path.join(args.out, "ladder.png"), rows, runs, stats, title=title)
        if png is None:
            _say("no plot: matplotlib is not installed (pip install matplotlib).")
    return text


def _rate_quality(args, rows, runs) -> dict | None:
    """Rate-quality tables and BD-rates of the ladder's codec rungs, per metric; writes rate_quality.csv.

    DeePAQ models contribute their 0-100 score, other metrics their value in quality orientation
    (higher = better). None when the ladder has no codec rungs with a bitrate.
    """
    import numpy as np

    from deepaq_core.evaluation.rate_quality import (bd_table, curves_markdown, default_anchor, points_from_rows,
                                                     rate_quality, write_rate_csv)

    idx, points = points_from_rows(rows)
    if not points:
        return None
    parts, payload, tables = [], {}, []
    for run in runs:
        if run.info.get("kind") == "deepaq":
            values = run.extras.get("score") if run.info.get("output") == "distance" else run.values
            label = "score"
        else:
            values, label = run.quality, "quality"
        if values is None:
            continue
        curves = rate_quality(points, np.asarray(values, dtype=np.float64)[idx])
        if not curves:
            continue
        anchor = args.anchor.lower() if args.anchor else default_anchor(curves)
        bd = bd_table(curves, anchor) if len(curves) > 1 else []
        parts.append(curves_markdown(curves, anchor, title=f"{run.name}: ", bd=bd, value_name=label))
        payload[run.name] = {
            "anchor": anchor,
            "curves": {c: {"kbps": k.kbps.tolist(), "mean": k.mean.tolist(), "ci_low": k.low.tolist(),
                           "ci_high": k.high.tolist(), "n": k.n.tolist()} for c, k in curves.items()},
            "bd": bd,
        }
        tables.append({"metric": run.name, "curves": curves, "bd": bd, "anchor": anchor})
    if not parts:
        return None
    write_rate_csv(os.path.join(args.out, "rate_quality.csv"), tables)
    return {"text": "\n".join(parts), "json": payload}
