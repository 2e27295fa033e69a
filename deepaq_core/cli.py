"""The ``deepaq`` command: score, batch, nmr, models (and ``models verify``), degrade, gui.

Results go to stdout, progress and messages to stderr. Exit codes: 0 success, 2 bad input (one
sentence, no traceback; ``--debug`` shows it), 1 an unexpected internal error.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from deepaq_core import __version__
from deepaq_core.errors import AudioError, DeePAQError, InputFileError, OptionError
from deepaq_core.validation import check_number, check_output_paths, check_readable_file

log = logging.getLogger("deepaq")

DEBUG_HELP = "show tracebacks and debug logging"
ALLOW_UNVERIFIED_HELP = ("also load a model bundle whose card has no weights checksum (weights_sha256); "
                         "a checksum that does not match is always refused")
# Longest quality-curve window or hop accepted, seconds.
MAX_WINDOW_S = 3600.0
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".opus", ".aif", ".aiff", ".wma", ".mp4"}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit code 2)."""

    def error(self, message: str):  # noqa: D102 - argparse API
        self.exit(2, f"deepaq: error: {message} (see '{self.prog} --help').\n")


class _ListFamilies(argparse.Action):
    """``deepaq degrade --list``: answered before the required arguments are checked."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        raise _ListRequested


class _ListRequested(Exception):
    """Raised while parsing ``degrade --list``; main() prints the families."""


class _Bar:
    """A one-line progress bar on stderr (only when stderr is a terminal, or forced)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._last = -1

    def __call__(self, fraction: float, message: str) -> None:
        if not self.enabled:
            return
        pct = int(fraction * 100)
        if pct == self._last:
            return
        self._last = pct
        filled = pct // 4
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (25 - filled)}] {pct:3d}% {message[:50]:<50}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self._last >= 0:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _add_common(p: argparse.ArgumentParser, pairs: bool = True) -> None:
    """Shared options; ``pairs=False`` (nmr) leaves out alignment and loudness matching, which need
    a reference."""
    g = p.add_argument_group("model and signal options")
    g.add_argument("--model", default=None, help="model name from 'deepaq models' or a bundle folder (default: compact)")
    g.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    g.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="the network's arithmetic: auto (default: bf16 on a CUDA GPU, fp32 elsewhere), fp32, bf16 "
                   "(also on CPUs with AVX512-BF16 or AMX, faster for MERT-sized models) or fp16 (CUDA only); the "
                   "built-in model computes in fp32 regardless")
    g.add_argument("--allow-unverified", action="store_true", help=ALLOW_UNVERIFIED_HELP)
    if pairs:
        g.add_argument("--no-align", action="store_true",
                       help="do not estimate or compensate the degraded file's delay")
        g.add_argument("--offset-ms", type=float, default=None,
                       help="use this delay of the degraded file instead of estimating it (positive = degraded is late)")
        g.add_argument("--no-match-loudness", action="store_true", help="do not match the degraded file's loudness")
    else:
        p.set_defaults(no_align=False, offset_ms=None, no_match_loudness=False)
    g.add_argument("--channels", choices=["each", "mono"], default="each",
                   help="score each channel separately and average them (default), or the mono downmix")
    g.add_argument("--window", type=float, default=3.0, help="quality-curve window, seconds (default 3)")
    g.add_argument("--hop", type=float, default=0.5, help="quality-curve hop, seconds (default 0.5)")
    g.add_argument("--progress", action="store_true", help="show a progress bar even when stderr is not a terminal")
    g.add_argument("--debug", action="store_true", help=DEBUG_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="deepaq",
        description="DeePAQ perceptual audio quality: scores (0-100, 100 = indistinguishable from the "
        "reference) from learned embedding distances.",
    )
    parser.add_argument("--version", action="version", version=f"deepaq {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("score", help="score degraded files against a reference")
    p.add_argument("reference", help="reference audio file")
    p.add_argument("degraded", nargs="+", help="one or more degraded audio files")
    p.add_argument("--json", action="store_true", help="print full results (with curves) as JSON")
    p.add_argument("--frames", metavar="OUT.jsonl", help="write per-frame distances as JSON lines")
    _add_common(p)

    p = sub.add_parser("batch", help="score many pairs listed in a CSV or JSONL file")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--batch-input-csv", metavar="IN.csv", help="CSV with columns reference,degraded")
    src.add_argument("--batch-input-jsonl", metavar="IN.jsonl", help="JSON lines with keys reference, degraded")
    p.add_argument("--results-csv", metavar="OUT.csv", help="write results as CSV")
    p.add_argument("--results-jsonl", metavar="OUT.jsonl", help="write results as JSON lines")
    keep = p.add_mutually_exclusive_group()
    keep.add_argument("--resume", action="store_true",
                      help="continue an existing or unfinished (.partial) results file, skipping the rows it holds")
    keep.add_argument("--overwrite", action="store_true",
                      help="replace an existing results file (atomically, when the run completes)")
    par = p.add_argument_group("parallel scoring")
    par.add_argument("--workers", type=int, default=None, metavar="N",
                     help="score with N worker processes on this machine, each loading the model once (default 1: "
                          "in this process)")
    par.add_argument("--devices", metavar="LIST",
                     help="one worker process per device, e.g. cuda:0,cuda:1 (a name may repeat); 'all': one per "
                          "CUDA GPU, or --workers CPU processes when there is none")
    par.add_argument("--cluster", metavar="ADDRESS",
                     help="score on a running Dask cluster: its scheduler's address (tcp://host:8786) or scheduler "
                          "file; needs pip install 'deepaq[cluster]' and the same files on every worker")
    par.add_argument("--retries", type=int, default=2, metavar="N",
                     help="with --cluster: extra tries of a pair whose task failed (default 2)")
    _add_common(p)

    p = sub.add_parser("nmr", help="non-matching reference: compare files with unrelated clean recordings")
    p.add_argument("degraded", nargs="+", help="audio files to assess")
    p.add_argument("--clean", required=True, metavar="DIR", help="folder of clean recordings (any content)")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    _add_common(p, pairs=False)

    p = sub.add_parser("models", help="list the model ladder and what is available here; 'models verify PATH' "
                       "checks a bundle", description="List the model ladder, or check a model bundle with "
                       "'deepaq models verify PATH'.")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    v = msub.add_parser("verify", help="check a model bundle folder (card, weights file, size, checksum, loading)",
                        description="Check a model bundle: its card against the schema, that its weights file "
                        "lies in the bundle folder, is large enough for the card, matches the card's checksum, "
                        "and loads into the model the card describes. Prints one line; exit code 0 if it passes, "
                        "2 if not.")
    v.add_argument("path", metavar="PATH", help="bundle folder (or a model name, e.g. user:NAME)")
    v.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)

    p = sub.add_parser("degrade", help="make a degraded version of a file (real codecs, filters, noise, ...)",
                       description="Write a degraded version of INPUT; prints one line saying what was "
                       "applied (--json: everything). Families and their parameters: 'deepaq degrade --list'. Any parameter of the family "
                       "can also be given as --NAME VALUE, e.g. --loss_rate 0.1 --mode delete. With --ladder "
                       "OUT_DIR, writes every rung of the family's ladder (or --values) and a manifest.csv "
                       "that 'deepaq eval --ladder OUT_DIR' reads.")
    p.add_argument("input", help="clean audio file")
    p.add_argument("--kind", required=True,
                   help="degradation family, e.g. mp3, aac, opus, lowpass, white_noise, separation")
    dest = p.add_mutually_exclusive_group(required=True)
    dest.add_argument("-o", "--output",
                      help="output file (.wav: 32-bit float, .flac: 24-bit); never one of the inputs")
    dest.add_argument("--ladder", metavar="OUT_DIR",
                      help="instead of --output: write every rung of the family's ladder to OUT_DIR (24-bit FLAC, "
                      "with the clean input scaled to a 0.5 peak) and OUT_DIR/manifest.csv for 'deepaq eval --ladder'")
    p.add_argument("--values", metavar="V1,V2,...",
                   help="--ladder: these values of the family's parameter instead of its own ladder")
    p.add_argument("--overwrite", action="store_true", help="--ladder: write into OUT_DIR even if it is not empty")
    p.add_argument("--bitrate", type=float, help="codec bitrate, kbit/s (bitrate_kbps)")
    p.add_argument("--cutoff", type=float, help="low-pass cutoff, Hz (cutoff_hz)")
    p.add_argument("--snr", type=float, help="signal-to-noise ratio, dB (snr_db)")
    p.add_argument("--value", type=float, help="the family's main intensity parameter")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="any other parameter of the family (repeatable)")
    p.add_argument("--json", action="store_true",
                   help="print everything that was applied as JSON (default: one line)")
    p.add_argument("--list", action=_ListFamilies, help="list the families, their parameters and ladders, and exit")
    p.add_argument("--debug", action="store_true", help=DEBUG_HELP)

    p = sub.add_parser("gui", help="open the desktop app (same options as deepaq-gui)", add_help=False)
    p.add_argument("gui_args", nargs=argparse.REMAINDER)
    p.set_defaults(debug=False)

    for register in _extensions():
        COMMANDS.update(register(sub))
    return parser


def _extensions():
    """``register(subparsers) -> {name: handler}`` of optional command modules (train, eval)."""
    import importlib

    out = []
    for name in ("deepaq_core.training.cli", "deepaq_core.evaluation.cli"):
        try:
            out.append(importlib.import_module(name).register)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return out


def _check_options(args: argparse.Namespace) -> None:
    """Validate the numeric model and signal options before any work starts."""
    if args.offset_ms is not None:
        args.offset_ms = check_number(args.offset_ms, "--offset-ms", unit="milliseconds")
    args.window = check_number(args.window, "--window", low=0, low_open=True, high=MAX_WINDOW_S, unit="seconds")
    args.hop = check_number(args.hop, "--hop", low=0, low_open=True, high=MAX_WINDOW_S, unit="seconds")


def _check_audio_inputs(paths: Sequence[str]) -> None:
    """Each input exists and is a readable file (decoding problems are found when it is read)."""
    for path in paths:
        check_readable_file(path, error=AudioError)


def _settings(args: argparse.Namespace):
    from deepaq_core.scoring import ScoreSettings

    _check_options(args)
    # max_lag_s=None: the automatic search range, max(10 s, 25 % of the longer file).
    # matrix_size=0: no command prints the reference x degraded time matrix (only the app shows it).
    return ScoreSettings(align=not args.no_align, lag_ms=args.offset_ms, match_loudness=not args.no_match_loudness,
                         channels=args.channels, window_s=args.window, hop_s=args.hop, max_lag_s=None,
                         precision=args.precision, matrix_size=0)


def _scorer(args: argparse.Namespace, prefetch=()):
    from deepaq_core.scoring import Scorer

    # prefetch: files read in helper threads while the model loads (and scipy, or torch for a model that needs it).
    scorer = Scorer(args.model, args.device, _settings(args), allow_unverified=args.allow_unverified,
                    prefetch=prefetch)
    _unverified_note(scorer.loaded.bundle)
    return scorer


def _unverified_note(bundle) -> None:
    from deepaq_core.model.bundle import unverified_note

    note = unverified_note(bundle)
    if note:
        print(f"deepaq: note: {note}", file=sys.stderr)


def _status_note(info) -> None:
    if info.status != "trained":
        print(f"deepaq: note: model '{info.name}' is {info.status_note}; see its card.", file=sys.stderr)


def _fixed(value: float, decimals: int) -> float:
    """``value`` rounded for display, with -0.0 (e.g. an offset of -0.001 ms) turned into 0.0."""
    return round(value, decimals) + 0.0


def _write_text(path: str, what: str, write, newline: str | None = None) -> None:
    """Write a text output with ``write(file)``, turning an OS error into one sentence."""
    try:
        with open(path, "w", newline=newline, encoding="utf-8") as f:
            write(f)
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).rstrip(".").lower()
        raise DeePAQError(f"The {what} '{os.path.basename(path)}' could not be written: {reason}.") from None


def cmd_score(args: argparse.Namespace) -> int:
    _check_options(args)
    _check_audio_inputs([args.reference, *args.degraded])
    outputs = check_output_paths({"--frames file": args.frames}, inputs=[args.reference, *args.degraded])
    scorer = _scorer(args, prefetch=[args.reference, *args.degraded[:1]])
    bar = _Bar(args.progress or sys.stderr.isatty())
    try:
        results = scorer.score_many(args.reference, args.degraded, progress=bar)
    finally:
        bar.close()
    if args.frames:
        def write_frames(f) -> None:
            for r in results:
                for k, d in enumerate(r.frame_distance):
                    if d == d:  # skip NaN (outside the aligned overlap)
                        f.write(json.dumps({"degraded": r.degraded.path, "frame": k,
                                            "time_s": round(k / r.frame_rate, 5), "distance": round(float(d), 6)}) + "\n")

        _write_text(outputs["--frames file"], "--frames file", write_frames)
    _status_note(scorer.info)
    _flag_notes(results)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return 0
    print(f"model: {results[0].model.label}   scale: {results[0].score_scale}")
    flag_width = max(5, *(len(_flag_cell(r)) for r in results))
    print(f"{'score':>7} {'distance':>9} {'offset_ms':>10} {'gain_db':>8} {'flags':<{flag_width}}  degraded")
    for r in results:
        print(f"{_fixed(r.score, 2):7.2f} {_fixed(r.distance, 5):9.5f} {_fixed(r.alignment.lag_ms, 2):10.2f} "
              f"{_fixed(r.gain_db, 2):8.2f} {_flag_cell(r):<{flag_width}}  {r.degraded.path}")
    return 0


def _flag_cell(result) -> str:
    """The score table's flags cell: comma-separated keys, or "-"."""
    return ",".join(result.flags) or "-"


def _flag_notes(results) -> None:
    """Each result's flags as sentences on stderr, once per degraded file."""
    for i, r in enumerate(results):
        name = os.path.basename(r.degraded.path) or f"degraded #{i + 1}"
        for key, sentence in zip(r.flags, r.flag_sentences()):
            print(f"deepaq: {key}: {name}: {sentence}", file=sys.stderr)


class _BatchProgress:
    """Pairs done, rate and ETA on stderr: a rewritten line on a terminal (or with --progress)
    at most once a second, otherwise a plain line at most every 30 seconds."""

    def __init__(self, total: int, live: bool) -> None:
        import time

        self._clock = time.monotonic
        self.total, self.live = total, live
        self.start = self._clock()
        self._last = self.start
        self._shown = False

    def __call__(self, done: int, scored: int, name: str) -> None:
        now = self._clock()
        if done >= self.total and not self.live:
            return  # the summary line follows
        if now - self._last < (1.0 if self.live else 30.0) and done < self.total:
            return
        self._last = now
        elapsed = now - self.start
        rate = scored / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        eta_text = f"ETA {int(eta) // 60}:{int(eta) % 60:02d}" if eta == eta else "ETA -"
        line = f"{done}/{self.total} pairs ({100 * done // self.total}%), {rate:.2f} pairs/s, {eta_text}"
        if self.live:
            sys.stderr.write(f"\r{line}  {name[:40]:<40}")
            self._shown = True
        else:
            sys.stderr.write(f"deepaq: {line}\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._shown = False


def _batch_outputs(args: argparse.Namespace, batch_input, model: str, settings: str):
    """The results files of a batch run, checked (not yet opened)."""
    from deepaq_core.batch import ResultsFile, check_folder_writable
    from deepaq_core.errors import OutputPathError
    from deepaq_core.validation import same_file

    requested = {"--results-csv file": (args.results_csv, "csv"), "--results-jsonl file": (args.results_jsonl, "jsonl")}
    audio = {p for r in batch_input.rows for p in (r.reference, r.degraded) if p}
    paths = check_output_paths({what: p for what, (p, _) in requested.items()}, inputs=[batch_input.path, *audio])
    mode = "resume" if args.resume else "overwrite" if args.overwrite else "new"
    if mode != "new" and not paths:
        raise OptionError(f"--{mode} needs --results-csv or --results-jsonl.")
    files = []
    for what, full in paths.items():
        for suffix in ("", ".partial"):
            if same_file(full + suffix, batch_input.path):
                raise OutputPathError(f"The {what} '{os.path.basename(full)}' is the batch input; choose another "
                                      f"name so the input is not overwritten.")
        check_folder_writable(full, what)
        files.append(ResultsFile(full, requested[what][1], batch_input.columns, mode, what, model, settings))
    return files


class _Terminated(BaseException):
    """Raised in the main thread by SIGTERM during a batch (like KeyboardInterrupt for Ctrl-C)."""


def _raise_terminated(signum, frame) -> None:
    raise _Terminated


def _batch_engine_options(args: argparse.Namespace):
    """``(devices, workers)`` of --workers/--devices/--cluster, checked; ``([], 1)`` for a plain run."""
    from deepaq_core.batch_engines import parse_devices

    if args.workers is not None and args.workers < 1:
        raise OptionError(f"--workers must be 1 or more, not {args.workers}.")
    if args.retries < 0:
        raise OptionError(f"--retries must be 0 or more, not {args.retries}.")
    if args.cluster is not None:
        if not args.cluster.strip():
            raise OptionError("--cluster needs the address of a Dask scheduler, e.g. tcp://host:8786.")
        if args.workers is not None or args.devices:
            raise OptionError("--workers and --devices start processes on this machine; with --cluster the "
                              "cluster's workers score the pairs, so give one or the other.")
        return [], 1
    if args.devices:
        if args.device != "auto":
            raise OptionError("Give --device (one process) or --devices (one process per device), not both.")
        if args.devices.strip().lower() != "all" and args.workers is not None:
            raise OptionError("--devices starts one process per listed device; repeat a device to run more "
                              "(e.g. cuda:0,cuda:0) instead of giving --workers.")
        return parse_devices(args.devices, args.workers), 1
    return [], args.workers or 1


def cmd_batch(args: argparse.Namespace) -> int:
    import signal
    import time

    from deepaq_core.audio.io import print_stderr
    from deepaq_core.batch import (
        BLANK_METRICS,
        PairError,
        csv_header,
        format_row,
        read_batch_input,
        result_metrics,
        score_pairs,
        settings_label,
        with_occurrence,
    )
    from deepaq_core.batch_engines import ScorerSpec, WorkerLost, make_engine

    settings = _settings(args)
    devices, workers = _batch_engine_options(args)
    parallel = bool(devices or args.cluster or workers > 1)
    source = args.batch_input_csv or args.batch_input_jsonl
    batch_input = read_batch_input(check_readable_file(source, error=InputFileError),
                                   "csv" if args.batch_input_csv else "jsonl")
    rows = batch_input.rows
    settings_text = settings_label(settings)
    from deepaq_core.model.registry import resolve

    bundle = resolve(args.model)  # the card only; weights load after the checks
    model_label = bundle.info().label
    files = _batch_outputs(args, batch_input, model_label, settings_text)
    engine = None
    if parallel:  # before any file is opened: an unreachable cluster leaves nothing behind
        spec = ScorerSpec(args.model, args.device, settings, args.allow_unverified)
        engine = make_engine(spec, workers=workers, devices=devices, cluster=args.cluster, retries=args.retries)
    # Per results file: the key of each input row, and the rows it already holds.
    keys, done = [], []
    try:
        for f in files:
            keys.append(with_occurrence(format_row(f.kind, r, batch_input.columns, BLANK_METRICS)[0] for r in rows))
            done.append(f.open(keys[-1]))
    except BaseException:
        for f in files:
            f.close()
        if engine is not None:
            engine.close()
        raise
    skipped = {i for i in range(len(rows)) if files and all(i in d for d in done)}
    todo = [i for i in range(len(rows)) if i not in skipped]
    if not files:
        csv.writer(sys.stdout).writerow(csv_header(batch_input.columns))
        sys.stdout.flush()

    scorer = None
    progress = _BatchProgress(len(rows), args.progress or sys.stderr.isatty())
    written: set[int] = set()
    scored = failures = 0
    audio_s = 0.0
    try:
        old_term = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread (an embedding application): its own handlers stay
        old_term = None
    try:
        good = [i for i in todo if not rows[i].error]

        def input_error(i: int):
            return i, PairError(i, rows[i].reference, rows[i].degraded, rows[i].error)

        def outcomes():
            """``(row index, outcome)``: in input order, or as workers finish them when every row
            goes to a results file (which puts them in input order when the run completes)."""
            nonlocal scorer
            if engine is not None and good:
                print(f"deepaq: scoring on {engine.describe}", file=sys.stderr)
                tasks = ((i, rows[i].reference, rows[i].degraded) for i in good)
                finished = engine.run(tasks, in_order=not files)
                if files:
                    yield from (input_error(i) for i in todo if rows[i].error)
                    yield from finished
                    return
                for i in todo:
                    yield input_error(i) if rows[i].error else next(finished)
                return
            if good:
                scorer = _scorer(args)
            results = score_pairs(((rows[i].reference, rows[i].degraded) for i in good), scorer)
            for i in todo:
                yield input_error(i) if rows[i].error else (i, next(results))

        t0 = time.monotonic()
        for i, outcome in outcomes():
            if i in written:  # an engine that delivered a pair twice: keep the first
                log.warning("row %d was delivered twice; keeping the first result", i + 1)
                continue
            written.add(i)
            row = rows[i]
            if isinstance(outcome, PairError):
                failures += 1
                print_stderr(f"deepaq: row {i + 1}: {outcome.error}")
            else:
                scored += 1
                audio_s += outcome.duration_s if hasattr(outcome, "duration_s") else outcome.degraded.duration_s
            metrics = result_metrics(outcome, model_label, settings_text)
            if not files:
                sys.stdout.write(format_row("csv", row, batch_input.columns, metrics)[1])
                sys.stdout.flush()
            for f, k, d in zip(files, keys, done):
                if i not in d:
                    _, line = format_row(f.kind, row, batch_input.columns, metrics)
                    f.write(i, k[i], line, bool(metrics["error"]))
            progress(len(skipped) + len(written), len(written), os.path.basename(row.degraded or ""))
    except BaseException as exc:
        progress.close()
        for f in files:
            f.close()
        if engine is not None:
            engine.close(kill=True)
        kept = ", ".join(f"'{os.path.basename(f.work)}'" for f in files)
        if isinstance(exc, (KeyboardInterrupt, _Terminated)):
            what, code = ("terminated", 143) if isinstance(exc, _Terminated) else ("interrupted", 130)
            where = (f"the rows scored so far are in {kept}; continue with --resume." if files else
                     "rows already printed are all there is (--results-csv or --results-jsonl keeps them on disk).")
            print_stderr(f"deepaq: {what}; {where}")  # helper threads may still be reading headers
            return code
        if isinstance(exc, WorkerLost) and files:
            raise WorkerLost(f"{exc}; the rows scored so far are in {kept}; continue with --resume.") from None
        raise
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    progress.close()
    if engine is not None:
        engine.close()
    for f in files:
        f.finish()
    elapsed = time.monotonic() - t0
    rate = f"{scored / elapsed:.2f} pairs/s, {audio_s / elapsed:.1f}x real time" if elapsed > 0 and scored else "-"
    print(f"deepaq: scored {scored}, errors {failures}, skipped by resume {len(skipped)} in {elapsed:.1f} s "
          f"({rate}).", file=sys.stderr)
    if scorer is not None:
        _status_note(scorer.info)
    elif engine is not None and scored:
        _status_note(bundle.info())
    if failures:
        print(f"deepaq: error: {failures} of {len(rows)} pairs could not be scored (see the 'error' column).",
              file=sys.stderr)
        return 2
    return 0


def cmd_nmr(args: argparse.Namespace) -> int:
    _check_options(args)
    _check_audio_inputs(args.degraded)
    clean_dir = Path(args.clean)
    if not clean_dir.is_dir():
        raise DeePAQError(f"Clean-recordings folder '{clean_dir}' not found.")
    clean = sorted(str(p) for p in clean_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not clean:
        raise DeePAQError(f"Folder '{clean_dir}' holds no audio files to use as clean recordings.")
    scorer = _scorer(args)
    bar = _Bar(args.progress or sys.stderr.isatty())
    try:
        results = [scorer.nmr(d, clean, progress=bar) for d in args.degraded]
    finally:
        bar.close()
    _status_note(scorer.info)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return 0
    print(f"model: {results[0].model.label}   NMR distance to {len(clean)} clean recordings (lower = closer to clean)")
    print(f"{'nmr_distance':>12}  file")
    for r in results:
        print(f"{_fixed(r.distance, 5):12.5f}  {r.degraded.path}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    if getattr(args, "models_command", None) == "verify":
        return cmd_models_verify(args)
    from deepaq_core.model.registry import list_models

    entries = list_models()
    if args.json:
        print(json.dumps([e.__dict__ for e in entries], indent=2))
        return 0
    w = max([16, *(len(e.name) for e in entries)])
    print(f"{'name':<{w}} {'status':<10} {'available':<9}  where / description")
    for e in entries:
        print(f"{e.name:<{w}} {e.status:<10} {'yes' if e.available else 'no':<9}  {e.where}: {e.description}")
    return 0


def cmd_models_verify(args: argparse.Namespace) -> int:
    """``deepaq models verify PATH``: one line, ``OK <name> <version> (<status>), sha256 <12 hex>``."""
    from deepaq_core.errors import ModelError
    from deepaq_core.model.bundle import verify_bundle
    from deepaq_core.model.registry import resolve

    path = Path(args.path).expanduser()
    if path.is_dir():
        bundle = verify_bundle(path)
    else:
        found = resolve(args.path)
        if found.folder is None:
            raise ModelError(f"The model '{args.path}' is not a bundle on disk, so there is nothing to verify.")
        bundle = verify_bundle(found.folder)
    info = bundle.info()
    print(f"OK {info.name} {info.version} ({info.status}), sha256 {bundle.card['weights_sha256'][:12].lower()}")
    return 0


def _number(text: str):
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _named_params(tokens: Sequence[str]) -> dict:
    """``--NAME VALUE`` / ``--NAME=VALUE`` options the degrade parser does not know, as parameters."""
    params: dict = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name, eq, value = token[2:].partition("=")
        if not token.startswith("--") or not name:
            raise OptionError(f"'{token}' is not understood; give parameters as --NAME VALUE or --param NAME=VALUE.")
        if not eq:
            if i + 1 >= len(tokens) or (tokens[i + 1].startswith("--") and len(tokens[i + 1]) > 2):
                raise OptionError(f"The option '{token}' needs a value.")
            value = tokens[i + 1]
            i += 1
        params[name.replace("-", "_")] = _number(value)
        i += 1
    return params


def cmd_degrade_list() -> int:
    """``deepaq degrade --list``: the families, their parameters, ladders and availability."""
    from deepaq_core.degrade import FAMILIES, available_codecs, codec_unavailable_reason

    tools = available_codecs()
    rows = []
    for name, fam in FAMILIES.items():
        avail = "yes" if name not in tools or tools[name] else f"no: {codec_unavailable_reason(name)}"
        rows.append((name, f"{fam.param} ({fam.unit})", ", ".join(f"{v:g}" for v in fam.ladder), avail))
    header = ("family", "parameter", "ladder (mildest -> worst)", "available")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3])
    return 0


def cmd_degrade(args: argparse.Namespace) -> int:
    from deepaq_core.degrade import FAMILIES, degrade_file

    if args.kind not in FAMILIES and args.kind != "noise":
        raise OptionError(f"Unknown degradation '{args.kind}'; see 'deepaq degrade --list'.")
    params: dict = {}
    for item in args.param:
        if "=" not in item:
            raise OptionError(f"--param '{item}' is not NAME=VALUE.")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key:
            raise OptionError(f"--param '{item}' has no parameter name before '='.")
        number = _number(value.strip())
        if isinstance(number, float):
            number = check_number(number, f"--param {key}")
        params[key] = number
    for key, number in _named_params(getattr(args, "named_params", [])).items():
        params[key] = check_number(number, f"--{key}") if isinstance(number, float) else number
    for opt, key, positive in (("bitrate", "bitrate_kbps", True), ("cutoff", "cutoff_hz", True),
                               ("snr", "snr_db", False)):
        value = getattr(args, opt)
        if value is not None:
            params[key] = check_number(value, f"--{opt}", low=0 if positive else None, low_open=positive,
                                       unit={"bitrate": "kbit/s", "cutoff": "Hz", "snr": "dB"}[opt])
    if args.value is not None:
        params[FAMILIES[args.kind].param if args.kind in FAMILIES else "snr_db"] = check_number(args.value, "--value")
    if (args.output is None) == (args.ladder is None):
        raise OptionError("deepaq degrade needs exactly one of -o/--output FILE or --ladder OUT_DIR.")
    if args.ladder is not None:
        return _degrade_ladder(args, params)
    if args.values is not None or args.overwrite:
        raise OptionError("--values and --overwrite go with --ladder OUT_DIR.")
    inputs = [args.input]
    if isinstance(params.get("interferer"), str):
        inputs.append(params["interferer"])
    check_readable_file(args.input, error=AudioError)
    check_output_paths({"output": args.output}, inputs=inputs)
    info = degrade_file(args.input, args.output, args.kind, **params)
    if getattr(args, "json", False):
        print(json.dumps(info, indent=2, default=str))
    else:
        applied = ", ".join(f"{k}={v}" for k, v in (info.get("params") or {}).items())
        label = info.get("label")
        label_text = (f"; surrogate label {label:.3f} (0 = clean, 1 = the family's worst rung)"
                      if isinstance(label, (int, float)) else "")
        print(f"wrote {args.output}: {args.kind} {applied}{label_text}")
    return 0


def _degrade_ladder(args: argparse.Namespace, params: dict) -> int:
    """``deepaq degrade --ladder OUT_DIR``: every rung of one family plus a ``deepaq eval --ladder`` manifest."""
    from deepaq_core.degrade import FAMILIES
    from deepaq_core.evaluation.ladder import make_ladder_set

    if args.kind not in FAMILIES:
        raise OptionError(f"'{args.kind}' has no ladder; --ladder needs a family from 'deepaq degrade --list'.")
    fam = FAMILIES[args.kind]
    if fam.param in params:
        raise OptionError(f"With --ladder the rungs set {fam.param}; give other values with --values V1,V2,...")
    values = None
    if args.values is not None:
        items = [v.strip() for v in args.values.split(",") if v.strip()]
        if not items:
            raise OptionError("--values needs at least one number, e.g. --values 64,128.")
        values = []
        for item in items:
            number = _number(item)
            if not isinstance(number, (int, float)) or isinstance(number, bool):
                raise OptionError(f"--values: '{item}' is not a number.")
            values.append(check_number(float(number), "--values"))
    check_readable_file(args.input, error=AudioError)
    out = Path(args.ladder).expanduser()
    if out.exists() and not out.is_dir():
        raise OptionError(f"--ladder '{out}' exists and is not a folder.")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise OptionError(f"The folder '{out}' is not empty; choose another or add --overwrite.")
    try:
        manifest = make_ladder_set([args.input], [args.kind], out, values=values, params=params)
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).rstrip(".").lower()
        raise DeePAQError(f"The ladder could not be written to '{out}': {reason}.") from None
    with open(manifest, newline="", encoding="utf-8") as f:
        rungs = sum(1 for row in csv.DictReader(f) if row.get("param", "") != "")
    print(json.dumps({"kind": args.kind, "param": fam.param, "unit": fam.unit, "rungs": rungs,
                      "values": list(values) if values is not None else list(fam.ladder),
                      "manifest": manifest}, indent=2))
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    """Start the desktop app as its own process: the core never loads Qt into its own."""
    import importlib.util
    import subprocess

    for module in ("deepaq_gui", "PySide6", "pyqtgraph"):
        if importlib.util.find_spec(module) is None:
            raise DeePAQError(f"The desktop app needs the gui extra ({module} is not installed): pip install 'deepaq[gui]'.")
    return subprocess.call([sys.executable, "-m", "deepaq_gui.app", *args.gui_args])


COMMANDS = {"score": cmd_score, "batch": cmd_batch, "nmr": cmd_nmr, "models": cmd_models,
            "degrade": cmd_degrade, "gui": cmd_gui}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``deepaq``; returns the exit code (also when called in-process)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["gui"]:  # everything after "gui" belongs to deepaq-gui, options included
        try:
            return cmd_gui(argparse.Namespace(gui_args=argv[1:]))
        except DeePAQError as exc:
            print(f"deepaq: error: {exc}", file=sys.stderr)
            return 2
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown and args.command != "degrade":
            args = parser.parse_args(argv)  # the usual usage error for unknown options
    except _ListRequested:
        return cmd_degrade_list()
    args.named_params = unknown
    debug = getattr(args, "debug", False)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="deepaq: %(levelname)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except DeePAQError as exc:
        if debug:
            raise
        print(f"deepaq: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepaq: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly, like other Unix tools
        sys.stderr.close()
        return 141
    except Exception as exc:  # an internal error: one line, traceback with --debug
        if debug:
            raise
        print(f"deepaq: internal error: {exc.__class__.__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
