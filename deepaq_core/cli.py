"""The ``deepaq`` command: score, batch, nmr, models.

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
from deepaq_core.errors import DeePAQError

log = logging.getLogger("deepaq")

BATCH_COLUMNS = ["reference", "degraded", "score", "distance", "offset_ms", "gain_db", "model", "error"]
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".opus", ".aif", ".aiff", ".wma", ".mp4"}


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


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and signal options")
    g.add_argument("--model", default=None, help="model name from 'deepaq models' or a bundle folder (default: compact)")
    g.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    g.add_argument("--no-align", action="store_true", help="do not estimate or compensate the degraded file's delay")
    g.add_argument("--offset-ms", type=float, default=None,
                   help="use this delay of the degraded file instead of estimating it (positive = degraded is late)")
    g.add_argument("--no-match-loudness", action="store_true", help="do not match the degraded file's loudness")
    g.add_argument("--channels", choices=["mono", "each"], default="mono",
                   help="score the mono downmix (default) or each channel separately")
    g.add_argument("--window", type=float, default=3.0, help="quality-curve window, seconds (default 3)")
    g.add_argument("--hop", type=float, default=0.5, help="quality-curve hop, seconds (default 0.5)")
    g.add_argument("--progress", action="store_true", help="show a progress bar even when stderr is not a terminal")
    g.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    _add_common(p)

    p = sub.add_parser("nmr", help="non-matching reference: compare files with unrelated clean recordings")
    p.add_argument("degraded", nargs="+", help="audio files to assess")
    p.add_argument("--clean", required=True, metavar="DIR", help="folder of clean recordings (any content)")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    _add_common(p)

    p = sub.add_parser("models", help="list the model ladder and what is available here")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.add_argument("--debug", action="store_true", help="show tracebacks")

    p = sub.add_parser("degrade", help="make a degraded version of a file (real codecs, filters, noise, ...)",
                       description="Write a degraded version of INPUT; prints what was applied as JSON. "
                       "Families and their parameters: 'deepaq degrade --list'. Any parameter of the family "
                       "can also be given as --NAME VALUE, e.g. --loss_rate 0.1 --mode delete.")
    p.add_argument("input", nargs="?", help="clean audio file")
    p.add_argument("-o", "--output", help="output file (.wav: 32-bit float, .flac: 24-bit)")
    p.add_argument("--kind", help="degradation family, e.g. mp3, aac, opus, lowpass, white_noise, separation")
    p.add_argument("--bitrate", type=float, help="codec bitrate, kbit/s (bitrate_kbps)")
    p.add_argument("--cutoff", type=float, help="low-pass cutoff, Hz (cutoff_hz)")
    p.add_argument("--snr", type=float, help="signal-to-noise ratio, dB (snr_db)")
    p.add_argument("--value", type=float, help="the family's main intensity parameter")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="any other parameter of the family (repeatable)")
    p.add_argument("--list", action="store_true", help="list the families, their parameters and ladders")
    p.add_argument("--debug", action="store_true", help="show tracebacks")

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


def _settings(args: argparse.Namespace):
    from deepaq_core.scoring import ScoreSettings

    if args.window <= 0 or args.hop <= 0:
        raise DeePAQError("--window and --hop must be positive numbers of seconds.")
    return ScoreSettings(align=not args.no_align, lag_ms=args.offset_ms, match_loudness=not args.no_match_loudness,
                         channels=args.channels, window_s=args.window, hop_s=args.hop)


def _scorer(args: argparse.Namespace):
    from deepaq_core.scoring import Scorer

    return Scorer(args.model, args.device, _settings(args))


def _status_note(info) -> None:
    if info.status != "trained":
        print(f"deepaq: note: model '{info.name}' is {info.status_note}; see its card.", file=sys.stderr)


def cmd_score(args: argparse.Namespace) -> int:
    scorer = _scorer(args)
    _status_note(scorer.info)
    bar = _Bar(args.progress or sys.stderr.isatty())
    try:
        results = scorer.score_many(args.reference, args.degraded, progress=bar)
    finally:
        bar.close()
    if args.frames:
        with open(args.frames, "w", encoding="utf-8") as f:
            for r in results:
                for k, d in enumerate(r.frame_distance):
                    if d == d:  # skip NaN (outside the aligned overlap)
                        f.write(json.dumps({"degraded": r.degraded.path, "frame": k,
                                            "time_s": round(k / r.frame_rate, 5), "distance": round(float(d), 6)}) + "\n")
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return 0
    print(f"model: {results[0].model.label}   scale: {results[0].score_scale}")
    print(f"{'score':>7} {'distance':>9} {'offset_ms':>10} {'gain_db':>8}  degraded")
    for r in results:
        print(f"{r.score:7.2f} {r.distance:9.5f} {r.alignment.lag_ms:10.2f} {r.gain_db:8.2f}  {r.degraded.path}")
    return 0


def _read_batch(args: argparse.Namespace) -> list[tuple[str, str]]:
    path = Path(args.batch_input_csv or args.batch_input_jsonl)
    if not path.is_file():
        raise DeePAQError(f"Batch input '{path}' not found.")
    base = path.parent
    rows: list[tuple[str, str]] = []

    def resolve(p: str) -> str:
        q = Path(p).expanduser()
        return str(q if q.is_absolute() else base / q)

    try:
        if args.batch_input_csv:
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                cols = {c.strip().lower(): c for c in (reader.fieldnames or [])}
                if "reference" not in cols or "degraded" not in cols:
                    raise DeePAQError(f"Batch input '{path.name}' needs the columns 'reference' and 'degraded'.")
                for row in reader:
                    rows.append((resolve(row[cols["reference"]].strip()), resolve(row[cols["degraded"]].strip())))
        else:
            with open(path, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                        rows.append((resolve(obj["reference"]), resolve(obj["degraded"])))
                    except (ValueError, KeyError, TypeError):
                        raise DeePAQError(
                            f"Line {n} of '{path.name}' is not a JSON object with 'reference' and 'degraded'.") from None
    except UnicodeDecodeError:
        raise DeePAQError(f"Batch input '{path.name}' is not a UTF-8 text file.") from None
    if not rows:
        raise DeePAQError(f"Batch input '{path.name}' lists no pairs.")
    return rows


def cmd_batch(args: argparse.Namespace) -> int:
    rows = _read_batch(args)
    scorer = _scorer(args)
    _status_note(scorer.info)
    bar = _Bar(args.progress or sys.stderr.isatty())
    out_rows: list[dict] = []
    failures = 0
    # Keep input order, but score each reference's degraded files together to reuse its embeddings.
    for i, (ref, deg) in enumerate(rows):
        row = {"reference": ref, "degraded": deg, "score": "", "distance": "", "offset_ms": "", "gain_db": "",
               "model": scorer.info.label, "error": ""}
        try:
            r = scorer.score(ref, deg)
            row.update(score=round(r.score, 4), distance=round(r.distance, 6), offset_ms=round(r.alignment.lag_ms, 3),
                       gain_db=round(r.gain_db, 3))
        except DeePAQError as exc:
            failures += 1
            row["error"] = str(exc)
            print(f"deepaq: row {i + 1}: {exc}", file=sys.stderr)
        out_rows.append(row)
        bar((i + 1) / len(rows), os.path.basename(deg))
    bar.close()
    if args.results_csv:
        with open(args.results_csv, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=BATCH_COLUMNS)
            w.writeheader()
            w.writerows(out_rows)
    if args.results_jsonl:
        with open(args.results_jsonl, "w", encoding="utf-8") as f:
            for row in out_rows:
                f.write(json.dumps(row) + "\n")
    if not args.results_csv and not args.results_jsonl:
        w = csv.DictWriter(sys.stdout, fieldnames=BATCH_COLUMNS)
        w.writeheader()
        w.writerows(out_rows)
    if failures:
        print(f"deepaq: error: {failures} of {len(rows)} pairs could not be scored (see the 'error' column).",
              file=sys.stderr)
        return 2
    return 0


def cmd_nmr(args: argparse.Namespace) -> int:
    clean_dir = Path(args.clean)
    if not clean_dir.is_dir():
        raise DeePAQError(f"Clean-recordings folder '{clean_dir}' not found.")
    clean = sorted(str(p) for p in clean_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not clean:
        raise DeePAQError(f"Folder '{clean_dir}' holds no audio files to use as clean recordings.")
    scorer = _scorer(args)
    _status_note(scorer.info)
    bar = _Bar(args.progress or sys.stderr.isatty())
    try:
        results = [scorer.nmr(d, clean, progress=bar) for d in args.degraded]
    finally:
        bar.close()
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return 0
    print(f"model: {results[0].model.label}   NMR distance to {len(clean)} clean recordings (lower = closer to clean)")
    print(f"{'nmr_distance':>12}  file")
    for r in results:
        print(f"{r.distance:12.5f}  {r.degraded.path}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from deepaq_core.model.registry import list_models

    entries = list_models()
    if args.json:
        print(json.dumps([e.__dict__ for e in entries], indent=2))
        return 0
    print(f"{'name':<16} {'status':<10} {'available':<9}  where / description")
    for e in entries:
        print(f"{e.name:<16} {e.status:<10} {'yes' if e.available else 'no':<9}  {e.where}: {e.description}")
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
            raise DeePAQError(f"'{token}' is not understood; give parameters as --NAME VALUE or --param NAME=VALUE.")
        if not eq:
            if i + 1 >= len(tokens) or (tokens[i + 1].startswith("--") and len(tokens[i + 1]) > 2):
                raise DeePAQError(f"The option '{token}' needs a value.")
            value = tokens[i + 1]
            i += 1
        params[name.replace("-", "_")] = _number(value)
        i += 1
    return params


def cmd_degrade(args: argparse.Namespace) -> int:
    from deepaq_core.degrade import FAMILIES, available_codecs, degrade_file

    if args.list:
        from deepaq_core.degrade import codec_unavailable_reason

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
    if not args.input or not args.output or not args.kind:
        raise DeePAQError("deepaq degrade needs INPUT, --kind and -o OUTPUT (see 'deepaq degrade --list').")
    if args.kind not in FAMILIES and args.kind != "noise":
        raise DeePAQError(f"Unknown degradation '{args.kind}'; see 'deepaq degrade --list'.")
    params: dict = {}
    for item in args.param:
        if "=" not in item:
            raise DeePAQError(f"--param '{item}' is not NAME=VALUE.")
        key, value = item.split("=", 1)
        params[key.strip()] = _number(value.strip())
    params.update(_named_params(getattr(args, "named_params", [])))
    for opt, key in (("bitrate", "bitrate_kbps"), ("cutoff", "cutoff_hz"), ("snr", "snr_db")):
        if getattr(args, opt) is not None:
            params[key] = getattr(args, opt)
    if args.value is not None:
        params[FAMILIES[args.kind].param if args.kind in FAMILIES else "snr_db"] = args.value
    info = degrade_file(args.input, args.output, args.kind, **params)
    print(json.dumps(info, indent=2, default=str))
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
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command != "degrade":
        args = parser.parse_args(argv)  # the usual usage error for unknown options
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
