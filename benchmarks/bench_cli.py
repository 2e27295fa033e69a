#!/usr/bin/env python3
"""Real-time ratios of the built-in model against peers measured in the same run (a benchmark).

    python benchmarks/bench_cli.py --peer /path/to/checkout-of-an-older-commit [--minutes 10] [--seconds 30]

Two measurements, each interleaved round by round with its peers so that all see the same
machine (the development VM is shared: absolute times move with other people's jobs, ratios
measured in the same round much less):

1. ``deepaq score REF DEG`` as a whole command (a fresh ``python -m deepaq_core.cli`` process:
   start-up, imports, model load, decoding, scoring, output) on a ``--minutes`` long 48 kHz stereo
   pair (reference 24-bit FLAC, degraded 16-bit WAV, from ``bench_speed.write_pair``).
2. ``Scorer.score`` on a ``--seconds`` long in-memory pair with the model loaded, with the
   settings ``deepaq score`` uses (a child process per code version: one warm-up, then
   ``--inner`` timed runs with the reference cache cleared; its median).

Rows: this checkout with ``compact``, the ``--peer`` checkout with ``compact`` (e.g. the commit
before a change: ``git archive <commit> | tar -x -C DIR``), and this checkout with
``compact-untrained`` (a model whose cost did not change). Each variant runs with
``PYTHONPATH=<its checkout>`` in front of the inherited one. Prints markdown tables with the
median wall time, the x real time, and the median of the per-round ratios to this checkout's
compact row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

CHILD = r"""
import json, statistics, sys, time
sys.path.insert(0, {bench!r})
from bench_speed import SR, make_pair
from deepaq_core.audio import AudioBuffer
from deepaq_core.cli import _settings, build_parser
from deepaq_core.scoring import Scorer
ref, deg = make_pair({seconds!r})
# The settings `deepaq score` uses (each checkout's own), so both rows measure the command's scoring.
settings = _settings(build_parser().parse_args(["score", "ref.wav", "deg.wav"]))
scorer = Scorer({model!r}, device="cpu", settings=settings)
walls = []
for i in range({inner!r} + 1):
    scorer._cache.clear()
    t0 = time.perf_counter()
    r = scorer.score(AudioBuffer(ref, SR), AudioBuffer(deg, SR))
    if i:
        walls.append(time.perf_counter() - t0)
print(json.dumps({{"wall": statistics.median(walls), "score": r.score}}))
"""


def _env(root: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def run_cli(root: Path, model: str, ref: Path, deg: Path) -> tuple[float, float]:
    """Wall seconds of one ``deepaq score`` process, and the score it printed."""
    cmd = [sys.executable, "-m", "deepaq_core.cli", "score", "--model", model, str(ref), str(deg)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=root, env=_env(root), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed in {root}:\n{out.stderr[-2000:]}")
    line = next(ln for ln in out.stdout.splitlines() if ln.rstrip().endswith(str(deg)))  # the result row
    return wall, float(line.split()[0])


def run_memory(root: Path, model: str, seconds: float, inner: int) -> tuple[float, float]:
    code = CHILD.format(bench=str(HERE), seconds=seconds, model=None if model == "compact" else model, inner=inner)
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=_env(root), capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"in-memory run failed in {root}:\n{out.stderr[-2000:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return float(data["wall"]), float(data["score"])


def report(title: str, duration: float, variants: list[str], rounds: list[dict]) -> None:
    base = variants[0]
    print(f"\n### {title}\n")
    print("| variant | wall s (median) | range s | x real time | time vs this compact (median of rounds) | score |")
    print("|---|---|---|---|---|---|")
    for v in variants:
        walls = [r[v][0] for r in rounds]
        ratios = [r[v][0] / r[base][0] for r in rounds]
        med = statistics.median(walls)
        print(f"| {v} | {med:.2f} | {min(walls):.2f}-{max(walls):.2f} | {duration / med:.0f} | "
              f"{statistics.median(ratios):.2f} | {rounds[-1][v][1]:.2f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--peer", type=Path, help="another checkout to compare with (e.g. the previous commit)")
    p.add_argument("--minutes", type=float, default=10.0, help="file pair for the whole-command rows (0: skip)")
    p.add_argument("--seconds", type=float, default=30.0, help="in-memory pair, model loaded (0: skip)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--inner", type=int, default=3, help="timed in-memory runs per child process")
    p.add_argument("--no-untrained", action="store_true", help="leave out the compact-untrained row")
    args = p.parse_args(argv)
    if args.peer is not None and not (args.peer / "deepaq_core" / "cli.py").is_file():
        print(f"error: {args.peer} is not a DeePAQ checkout (no deepaq_core/cli.py).", file=sys.stderr)
        return 2

    variants = {"this: compact": (ROOT, "compact")}
    if args.peer is not None:
        variants["peer: compact"] = (args.peer.resolve(), "compact")
    if not args.no_untrained:
        variants["this: compact-untrained"] = (ROOT, "compact-untrained")
    names = list(variants)
    print(f"- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
          f"load average before: {os.getloadavg()[0]:.2f}; peer: {args.peer}")
    if args.minutes > 0:
        from bench_speed import write_pair

        with tempfile.TemporaryDirectory(prefix="deepaq-cli-") as tmp:
            ref, deg = write_pair(Path(tmp), args.minutes * 60)
            rounds = []
            for _ in range(args.rounds):
                rounds.append({v: run_cli(root, model, ref, deg) for v, (root, model) in variants.items()})
            report(f"`deepaq score` on a {args.minutes:g}-minute 48 kHz stereo FLAC/WAV pair, whole command "
                   f"({args.rounds} rounds)", args.minutes * 60, names, rounds)
    if args.seconds > 0:
        rounds = []
        for _ in range(args.rounds):
            rounds.append({v: run_memory(root, model, args.seconds, args.inner) for v, (root, model) in variants.items()})
        report(f"`Scorer.score` on a {args.seconds:g} s in-memory 48 kHz stereo pair, model loaded "
               f"(median of {args.inner} runs per process, {args.rounds} rounds)", args.seconds, names, rounds)
    print(f"\n- load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
