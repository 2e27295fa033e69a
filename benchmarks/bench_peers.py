#!/usr/bin/env python3
"""Speed and peak memory of every metric ``deepaq eval`` can run, on the same files (a benchmark script).

    python benchmarks/bench_peers.py [--seconds 10] [--repeats 3] [--metrics all] [--no-append]

For each metric (every available DeePAQ model, the SI-SDR and log-mel baselines, and every
installed peer: ViSQOL, Zimtohrli, CDPAM) a fresh subprocess loads the metric, scores one
reference/degraded pair once cold (first call: lazy imports, caches, JIT), then again
``--repeats`` times with every cache cleared, and reports:

- setup seconds (model load; ViSQOL's numba warm-up), the cold first pair, and the median warm
  pair, each including file decoding, resampling and alignment, as ``deepaq eval`` times them;
- the real-time factor, audio seconds / median pair seconds (> 1: faster than real time), and
  the pair time as a ratio to the first DeePAQ model's;
- peak resident memory of the subprocess (``ru_maxrss``), next to two baseline subprocesses that
  only import numpy and deepaq_core.audio, and those plus torch.

Test audio is generated: a music-like 48 kHz stereo reference (harmonic notes, bass, noise
bursts) and a degraded copy (7 kHz low-pass, noise at about -40 dB, 2000-sample delay), written as
float WAV files. The markdown table is printed and appended to docs/PERFORMANCE.md (at the end,
under its own heading) unless ``--no-append``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SR = 48000
DELAY = 2000


def make_audio(folder: Path, seconds: float) -> tuple[str, str]:
    """Write the reference and degraded test files; returns their paths."""
    import numpy as np
    import scipy.signal
    import soundfile as sf

    rng = np.random.default_rng(0)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = np.zeros(n)
    step = 0.25
    for k in range(int(seconds / step)):
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        i0 = int(k * step * SR)
        seg = t[: int(step * 1.6 * SR)]
        env = np.exp(-seg / 0.2) * np.minimum(seg / 0.005, 1)
        tone = sum(0.5 / (h + 1) * np.sin(2 * np.pi * f0 * (h + 1) * seg) for h in range(8))
        j = min(n, i0 + seg.size)
        x[i0:j] += (tone * env)[: j - i0]
        if k % 2 == 0:  # bass note and a noise burst on every other step
            x[i0:j] += 0.4 * np.sin(2 * np.pi * 55 * seg[: j - i0]) * env[: j - i0]
            b = rng.normal(0, 0.3, int(0.03 * SR)) * np.exp(-np.arange(int(0.03 * SR)) / (0.008 * SR))
            jb = min(n, i0 + b.size)
            x[i0:jb] += b[: jb - i0]
    x = 0.5 * x / np.max(np.abs(x))
    ref = np.stack([x, np.roll(x, 41) * 0.9], axis=1).astype(np.float32)
    sos = scipy.signal.butter(8, 7000, "lowpass", fs=SR, output="sos")
    deg = scipy.signal.sosfiltfilt(sos, ref, axis=0) + rng.normal(0, 10 ** (-40 / 20) * 0.1, ref.shape)
    deg = np.concatenate([np.zeros((DELAY, 2)), deg])[:n].astype(np.float32)
    r, d = folder / "reference.wav", folder / "degraded.wav"
    sf.write(r, ref, SR, subtype="FLOAT")
    sf.write(d, deg, SR, subtype="FLOAT")
    return str(r), str(d)


def _metric(name: str, device: str):
    from deepaq_core.evaluation.metrics import DeePAQMetric, LogMelMetric, SiSdrMetric
    from deepaq_core.evaluation.peers import load_peers

    if name.startswith("deepaq:"):
        return DeePAQMetric(name.split(":", 1)[1], device)
    if name == "si_sdr":
        return SiSdrMetric()
    if name == "logmel_l1":
        return LogMelMetric()
    (m,), _ = load_peers([name], device=device)
    return m


def _clear_caches(m) -> None:
    # Warm repeats must score the whole pair: DeePAQ keeps reference embeddings, CDPAM embeddings.
    scorer = getattr(m, "_scorer", None)
    if scorer is not None:
        scorer._cache.clear()
    cache = getattr(m, "_cache", None)
    if cache is not None:
        cache.clear()


def child(args) -> None:
    """Run in the subprocess: measure one metric and print one JSON line."""
    # Only what every metric needs; torch comes in with the metrics that use it, so the peak
    # memory of a torch-free metric is not inflated by torch's ~hundreds of MiB.
    import numpy  # noqa: F401

    import deepaq_core.audio  # noqa: F401

    out = {"metric": args.child}
    if args.child == "baseline-torch":
        import torch  # noqa: F401,F811
    elif args.child != "baseline":
        m = _metric(args.child, args.device)
        t = time.perf_counter()
        m.setup()
        out["setup_s"] = time.perf_counter() - t
        t = time.perf_counter()
        out["value"] = m.measure(args.ref, args.deg)["value"]
        out["first_s"] = time.perf_counter() - t
        times = []
        budget = time.perf_counter() + args.budget_s
        while len(times) < args.repeats and (not times or time.perf_counter() < budget):
            _clear_caches(m)
            t = time.perf_counter()
            m.measure(args.ref, args.deg)
            times.append(time.perf_counter() - t)
        out["pair_s"] = statistics.median(times)
        out["repeats"] = len(times)
    th = sys.modules.get("torch")
    out["torch_threads"] = th.get_num_threads() if th is not None else None
    out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps(out))


def list_child() -> None:
    """Run in a subprocess: print the runnable metric names as JSON, skip notes on stderr."""
    from deepaq_core.evaluation.metrics import available_models
    from deepaq_core.evaluation.peers import PEERS, load_peers

    found, notes = load_peers(list(PEERS))
    for n in notes:
        print(f"bench_peers: {n}", file=sys.stderr)
    print(json.dumps([f"deepaq:{m}" for m in available_models()] + ["si_sdr", "logmel_l1"] + [m.name for m in found]))


def metric_names(spec: str) -> list[str]:
    # Listing imports every peer (torch, librosa, numba...). Done in a subprocess, because on Linux
    # ru_maxrss survives fork + exec: children of a fat parent would all report the parent's peak.
    proc = subprocess.run([sys.executable, __file__, "--list"], capture_output=True, text=True, check=True)
    sys.stderr.write(proc.stderr)
    names = json.loads(proc.stdout.strip().splitlines()[-1])
    if spec != "all":
        wanted = [s.strip() for s in spec.split(",") if s.strip()]
        names = [n for n in names if n in wanted or n.split(":")[-1] in wanted]
    return names


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the test pair (default 10 s)")
    ap.add_argument("--repeats", type=int, default=3, help="warm repeats per metric (default 3)")
    ap.add_argument("--budget-s", type=float, default=60.0,
                    help="stop repeating a metric after this many seconds (at least one warm repeat)")
    ap.add_argument("--metrics", default="all", help="comma-separated subset (default: all available)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-append", action="store_true", help="print only; do not append to docs/PERFORMANCE.md")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--list", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--make-audio", help=argparse.SUPPRESS)
    ap.add_argument("--ref", help=argparse.SUPPRESS)
    ap.add_argument("--deg", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return 0
    if args.list:
        list_child()
        return 0
    if args.make_audio:
        make_audio(Path(args.make_audio), args.seconds)
        return 0

    names = metric_names(args.metrics)
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_peers_") as tmp:
        # In a subprocess too: the parent stays a bare interpreter, so it passes no peak to its children.
        subprocess.run([sys.executable, __file__, "--make-audio", tmp, "--seconds", str(args.seconds)], check=True)
        ref, deg = str(Path(tmp) / "reference.wav"), str(Path(tmp) / "degraded.wav")
        for name in ["baseline", "baseline-torch", *names]:
            cmd = [sys.executable, __file__, "--child", name, "--ref", ref, "--deg", deg, "--repeats",
                   str(args.repeats), "--budget-s", str(args.budget_s), "--device", args.device]
            print(f"bench_peers: {name} ...", file=sys.stderr, flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
                print(f"bench_peers: {name} failed: {tail[0]}", file=sys.stderr)
                continue
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    base_rss = next((r["maxrss_mib"] for r in results if r["metric"] == "baseline"), float("nan"))
    torch_rss = next((r["maxrss_mib"] for r in results if r["metric"] == "baseline-torch"), float("nan"))
    first_deepaq = next((r for r in results if r["metric"].startswith("deepaq:")), None)
    lines = [
        "| metric | setup s | first pair s | pair s (median) | repeats | real-time factor | time vs "
        + (f"`{first_deepaq['metric']}`" if first_deepaq else "DeePAQ") + " | peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r["metric"].startswith("baseline"):
            what = "numpy, deepaq_core.audio" + (", torch" if r["metric"] == "baseline-torch" else "")
            lines.append(f"| (a process that only imports {what}) | – | – | – | – | – | – | {r['maxrss_mib']:.0f} |")
            continue
        rtf = args.seconds / r["pair_s"]
        ratio = r["pair_s"] / first_deepaq["pair_s"] if first_deepaq else float("nan")
        lines.append(f"| {r['metric']} | {r['setup_s']:.2f} | {r['first_s']:.2f} | {r['pair_s']:.2f} | {r['repeats']} "
                     f"| {rtf:.1f} | {ratio:.2f} | {r['maxrss_mib']:.0f} |")
    threads = next((r["torch_threads"] for r in results if r.get("torch_threads")), "?")
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = (f"Machine: {cpu_name()}, {cores} cores, torch {threads} threads, device {args.device}; 1-minute load "
              f"average {load_start:.1f} at the start and {load_end:.1f} at the end"
              + (f" (above {cores}: other jobs competed for the CPU and the times are inflated). "
                 if max(load_start, load_end) > cores else " (a quiet machine). ")
              + f"Pair: {args.seconds:g} s of generated 48 kHz stereo music-like audio vs a low-passed, noisy, "
              f"delayed copy (float WAV). Each metric in its own subprocess; pair times include decoding, "
              f"resampling and alignment; warm repeats clear reference caches. Real-time factor = "
              f"{args.seconds:g} s / median pair seconds (one pair = reference and degraded signal). Peak RSS = "
              f"`ru_maxrss` of the subprocess (a process importing only numpy and deepaq_core.audio: "
              f"{base_rss:.0f} MiB; with torch: {torch_rss:.0f} MiB).")
    table = "\n".join(lines)
    command = "python benchmarks/bench_peers.py " + " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
    print(header + "\n\n" + table)
    if not args.no_append:
        perf = ROOT / "docs" / "PERFORMANCE.md"
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with open(perf, "a", encoding="utf-8") as f:
            f.write(f"\n## Evaluation metrics: speed and peak memory (`benchmarks/bench_peers.py`)\n\n"
                    f"Measured {stamp} with `{command.strip()}`. {header}\n\n{table}\n")
        print(f"bench_peers: appended to {perf}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
