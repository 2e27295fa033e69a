#!/usr/bin/env python3
"""Scoring and training speed on one device, for a GPU machine (a benchmark script, not a test).

    python benchmarks/bench_gpu.py --device cuda --out OUT      # the full sizes (benchmarks/gpu_run.sh)
    python benchmarks/bench_gpu.py --cpu-smoke --out OUT        # tiny sizes on the CPU: checks the script

Writes ``OUT/gpu_bench.md`` (markdown tables, also printed) and ``OUT/gpu_bench.json``:

1. **One pair:** ``Scorer.score`` on a ``--pair-seconds`` (120) 48 kHz stereo pair in memory, model
   loaded, reference cache cleared each run: the built-in ``compact`` model and a
   MERT-v1-95M-sized model with random weights (``bench_speed.build_mert_bundle``; library
   defaults on CUDA: batch 8, bf16 autocast); then, as peers measured in the same run, each
   model with the pair's resampling, alignment and K-weighting on the host instead of the GPU
   (``Scorer.prep_device``), and the MERT-sized model with its hidden states summed into the
   heatmap bins on the host (every layer copied off the GPU). Median wall time, x real time, and
   the share outside the model (reading + resampling + alignment + loudness, and the rest after
   the embeddings).
2. **Batch:** ``--pairs`` (200) pairs of ``--batch-seconds`` (10) s, ten degraded versions per
   reference, scored with ``Scorer.score_many`` one reference at a time (each reference embedded
   once): x real time of the degraded audio scored.
3. **Training:** LoRA steps of the MERT-sized model (rank 8, bf16 on CUDA) at ``--groups`` (16) x
   ``--versions`` (8) items of ``--train-seconds`` (4) s: median step time, peak GPU memory,
   trainable parameters.
4. **CPU/GPU agreement:** the compact score of the one-pair test signal on this device and on the CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _x(v: float) -> str:
    return f"{v:.0f}" if v >= 10 else f"{v:.2g}"


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def score_pair(scorer, ref, deg, device: str, repeats: int) -> dict:
    from bench_speed import SR

    from deepaq_core.audio import AudioBuffer

    walls, res = [], None
    for i in range(repeats + 1):
        scorer._cache.clear()
        _sync(device)
        t0 = time.perf_counter()
        res = scorer.score(AudioBuffer(ref, SR), AudioBuffer(deg, SR))
        _sync(device)
        if i:  # the first run warms up
            walls.append(time.perf_counter() - t0)
    t = res.timings
    wall = statistics.median(walls)
    model_s = t["reference_embed_s"] + t["embed_s"]
    return {"wall_s": wall, "runs": walls, "reference_load_s": t["reference_load_s"],
            "prepare_s": t["load_align_s"], "embed_s": model_s, "score": res.score,
            "outside_model_share": max(0.0, 1.0 - model_s / wall)}


def batch_run(scorer, n_pairs: int, seconds: float, device: str) -> dict:
    """``n_pairs`` pairs, ten degraded versions per reference; one score_many per reference."""
    from bench_speed import SR, make_pair

    from deepaq_core.audio import AudioBuffer

    per_ref = 10
    n_refs = max(1, -(-n_pairs // per_ref))
    rng = np.random.default_rng(0)
    base_ref, base_deg = make_pair(seconds)
    jobs = []
    for r in range(n_refs):
        ref = np.roll(base_ref, r * 4801, axis=1)  # different material per reference
        degs = []
        for k in range(min(per_ref, n_pairs - r * per_ref)):
            noise = rng.normal(0.0, 0.001 * (k + 1), base_deg.shape).astype(np.float32)
            degs.append(AudioBuffer(np.roll(base_deg, r * 4801, axis=1) + noise, SR))
        jobs.append((AudioBuffer(ref, SR), degs))
    scorer._cache.clear()
    scorer.score_many(jobs[0][0], jobs[0][1][:1])  # warm-up
    scorer._cache.clear()
    _sync(device)
    t0 = time.perf_counter()
    n = 0
    for ref, degs in jobs:
        n += len(scorer.score_many(ref, degs))
    _sync(device)
    wall = time.perf_counter() - t0
    return {"pairs": n, "seconds_each": seconds, "wall_s": wall, "x_real_time": n * seconds / wall}


def train_steps(ckpt: str, device: str, groups: int, versions: int, seconds: float, steps: int) -> dict:
    import torch

    from deepaq_core.training.config import TrainConfig
    from deepaq_core.training.trainer import Trainer

    cfg = TrainConfig().replace(**{"model.backbone": "mert", "model.mert.source": ckpt, "device": device})
    trainer = Trainer(cfg, out_dir=tempfile.mkdtemp(prefix="deepaq-train-"))
    n = int(seconds * 24000)
    rng = np.random.default_rng(0)
    b = groups * versions
    batch = {"audio": (0.1 * rng.standard_normal((b, n))).astype(np.float32),
             "labels": np.tile(np.linspace(0.0, 1.0, versions), groups).astype(np.float32),
             "groups": np.repeat(np.arange(groups), versions)}
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(steps + 2):
        _sync(device)
        t0 = time.perf_counter()
        out = trainer.train_step(batch)
        _sync(device)
        if i >= 2:  # two warm-up steps
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
    return {"items": b, "seconds_each": seconds, "step_s": step_s, "steps_timed": len(times),
            "x_real_time": b * seconds / step_s, "peak_gib": peak, "trainable_params": trainable,
            "loss": out["loss"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (checks the script)")
    p.add_argument("--pair-seconds", type=float, default=120.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--batch-seconds", type=float, default=10.0)
    p.add_argument("--groups", type=int, default=16)
    p.add_argument("--versions", type=int, default=8)
    p.add_argument("--train-seconds", type=float, default=4.0)
    p.add_argument("--train-steps", type=int, default=5)
    p.add_argument("--sections", default="pair,batch,train,agree")
    args = p.parse_args(argv)
    if args.cpu_smoke:
        args.device = "cpu"
        args.pair_seconds, args.repeats, args.pairs, args.batch_seconds = 4.0, 1, 3, 2.0
        args.groups, args.versions, args.train_seconds, args.train_steps = 2, 2, 1.0, 1
    sections = set(args.sections.split(","))
    args.out.mkdir(parents=True, exist_ok=True)

    import torch

    from bench_speed import build_mert_bundle, machine_lines, make_pair

    from deepaq_core.scoring import Scorer

    device = args.device
    lines = ["# DeePAQ speed on one device (`benchmarks/bench_gpu.py`)", "",
             f"- {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; command: "
             f"`python benchmarks/bench_gpu.py {' '.join(sys.argv[1:])}`", *machine_lines(device), ""]
    raw: dict = {"args": {k: str(v) for k, v in vars(args).items()}}

    def emit(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)
        (args.out / "gpu_bench.md").write_text("\n".join(lines) + "\n")
        (args.out / "gpu_bench.json").write_text(json.dumps(raw, indent=1, default=str))

    for line in lines:
        print(line)
    tmp = Path(tempfile.mkdtemp(prefix="deepaq-gpu-bench-"))
    t0 = time.perf_counter()
    bundle, n_params = build_mert_bundle(tmp)
    emit(f"(MERT-sized random checkpoint + bundle: {n_params / 1e6:.1f} M parameters, "
         f"{time.perf_counter() - t0:.1f} s)")
    models = {"compact": None, "MERT-95M-sized (random)": str(bundle)}
    scorers = {}
    for label, spec in models.items():
        t0 = time.perf_counter()
        scorers[label] = Scorer(spec, device=device)
        raw.setdefault("load_s", {})[label] = time.perf_counter() - t0

    if "pair" in sections:
        from deepaq_core.model.device import LoadedModel

        ref, deg = make_pair(args.pair_seconds)
        rows = {}
        batch = {}
        for label, sc in scorers.items():
            rows[label] = score_pair(sc, ref, deg, device, args.repeats)
            batch[label] = sc.loaded.batch_size
            print(f"(pair {label}: {rows[label]['wall_s']:.3f} s)", flush=True)
        # Peers in the same run, each undoing one step: (1) the pair's resampling, alignment and
        # K-weighting on the host instead of beside the model (Scorer.prep_device), (2) the MERT-sized model's
        # hidden states copied to the host and summed into the heatmap bins there. The smoke run
        # (CPU) flips each the other way, so that both paths run.
        on_gpu = device != "cpu"
        for label, sc in list(scorers.items()):
            shipped = sc.prep_device
            flipped = f"{label}, resampling + alignment + loudness {'on the host' if on_gpu else 'by torch (forced)'}"
            sc.prep_device = None if on_gpu else torch.device("cpu")
            try:
                rows[flipped] = score_pair(sc, ref, deg, device, args.repeats)
            finally:
                sc.prep_device = shipped
            batch[flipped] = sc.loaded.batch_size
            print(f"(pair {flipped}: {rows[flipped]['wall_s']:.3f} s)", flush=True)
        label = "MERT-95M-sized (random)"
        shipped = LoadedModel.bins_on_device
        flipped = f"{label}, heatmap bins summed {'on the host' if on_gpu else 'beside the model (forced)'}"
        LoadedModel.bins_on_device = property(lambda self: not on_gpu)
        try:
            rows[flipped] = score_pair(scorers[label], ref, deg, device, args.repeats)
            batch[flipped] = scorers[label].loaded.batch_size
        finally:
            LoadedModel.bins_on_device = shipped
        print(f"(pair {flipped}: {rows[flipped]['wall_s']:.3f} s)", flush=True)
        raw["pair"] = rows
        emit(f"\n## One {args.pair_seconds:g} s pair, model loaded ({device}, median of {args.repeats} runs)\n")
        emit("| model | batch | wall s | x real time | reference read+loudness s | degraded read+align+loudness s "
             "| model s (both signals) | share outside the model |")
        emit("|---|---|---|---|---|---|---|---|")
        for label, m in rows.items():
            emit(f"| {label} | {batch[label]} | {m['wall_s']:.3f} | "
                 f"{_x(args.pair_seconds / m['wall_s'])} | {m['reference_load_s']:.3f} | {m['prepare_s']:.3f} | "
                 f"{m['embed_s']:.3f} | {m['outside_model_share']:.0%} |")

    if "batch" in sections:
        rows = {}
        for label, sc in scorers.items():
            rows[label] = batch_run(sc, args.pairs, args.batch_seconds, device)
            print(f"(batch {label}: {rows[label]['wall_s']:.2f} s)", flush=True)
        raw["batch"] = rows
        emit(f"\n## Batch: {args.pairs} pairs of {args.batch_seconds:g} s, ten per reference ({device})\n")
        emit("| model | pairs | wall s | x real time (degraded audio scored) |")
        emit("|---|---|---|---|")
        for label, m in rows.items():
            emit(f"| {label} | {m['pairs']} | {m['wall_s']:.2f} | {_x(m['x_real_time'])} |")

    if "train" in sections:
        ckpt = scorers["MERT-95M-sized (random)"].loaded.bundle.card["backbone"]["local_path"]
        scorers.clear()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        m = train_steps(ckpt, device, args.groups, args.versions, args.train_seconds, args.train_steps)
        raw["train"] = m
        emit(f"\n## LoRA training steps, MERT-95M-sized ({device})\n")
        emit("| items per step | s each | step s (median) | x real time | peak GPU GiB | trainable parameters |")
        emit("|---|---|---|---|---|---|")
        emit(f"| {m['items']} ({args.groups} x {args.versions}) | {args.train_seconds:g} | {m['step_s']:.3f} | "
             f"{_x(m['x_real_time'])} | {m['peak_gib']:.1f} | {m['trainable_params'] / 1e6:.2f} M |")

    if "agree" in sections:
        ref, deg = make_pair(min(args.pair_seconds, 30.0))
        here = score_pair(Scorer(None, device=device), ref, deg, device, 1)["score"]
        cpu = score_pair(Scorer(None, device="cpu"), ref, deg, "cpu", 1)["score"]
        raw["agree"] = {"device": here, "cpu": cpu}
        emit(f"\n## Agreement: compact score of a {min(args.pair_seconds, 30.0):g} s test pair\n")
        emit(f"- {device}: {here:.4f}; cpu: {cpu:.4f}; difference {abs(here - cpu):.4f} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
