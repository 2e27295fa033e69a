#!/usr/bin/env python3
"""Where the time of scoring one pair goes, step by step (a benchmark script, not a test).

    python benchmarks/profile_score.py --seconds 600 --files     # like `deepaq score REF DEG`
    python benchmarks/profile_score.py --seconds 30              # in memory, model loaded
    python benchmarks/profile_score.py --seconds 30 --torch      # plus torch.profiler's top ops

Runs the pair once under cProfile with ``Scorer(workers=0)``, so every step runs in the
profiled thread, one after another (the default scorer overlaps reading and preparing the next
input with embedding; that overlap is measured by ``bench_speed.py``, not here). Prints a
markdown table of each step's seconds and share of the profiled wall time. cProfile slows Python
loops more than numpy/torch calls, so the shares are indicative.

``--files`` writes the pair as FLAC (reference, 24-bit) and WAV (degraded, 16-bit) and profiles
the whole command: ``deepaq_core.cli.main(["score", REF, DEG])`` including imports (which the
script does not perform before the profile starts) and model loading. Otherwise the pair is
scored from memory with the model already loaded, as in ``bench_speed.py``.
"""

from __future__ import annotations

import argparse
import cProfile
import inspect
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# step -> functions (file suffix, function name) whose cumulative time it is
STEPS: list[tuple[str, list[tuple[str, str]]]] = [
    ("file hashing (sha256)", [("audio/io.py", "file_sha256")]),
    ("downmix / resample", [("audio/resample.py", "push"), ("audio/resample.py", "resample")]),
    ("alignment", [("audio/align.py", "estimate_alignment")]),
    ("loudness (K-weighting, gain)", [("scoring.py", "_reference_steps"), ("scoring.py", "_calibration_gain"),
                                      ("audio/loudness.py", "robust_matching_gain_db")]),
    ("front end (model forward)", [("model/device.py", "run"), ("model/cpu_model.py", "run")]),
    ("DTW (follow time)", [("scoring.py", "_follow")]),
    ("curves (window pooling)", [("distance.py", "window_block_means")]),
    ("time matrix", [("scoring.py", "_disturbance_matrix"), ("embedding.py", "time_matrix")]),
    ("layer heatmap", [("embedding.py", "layer_cosine_distance")]),
]


def _cum(stats: pstats.Stats, suffix: str, name: str, caller: tuple[str, str] | None = None) -> float:
    total = 0.0
    for (file, _line, fn), (_cc, _nc, _tt, ct, callers) in stats.stats.items():
        if fn == name and file.replace("\\", "/").endswith(suffix):
            if caller is None:
                total += ct
            else:
                for (cf, _cl, cfn), val in callers.items():
                    if cfn == caller[1] and cf.replace("\\", "/").endswith(caller[0]):
                        total += val[3]
    return total


def breakdown(stats: pstats.Stats, wall: float, files: bool) -> list[tuple[str, float]]:
    rows = [(step, sum(_cum(stats, f, n) for f, n in fns)) for step, fns in STEPS]
    get = dict(rows)
    load = _cum(stats, "audio/io.py", "load_audio")
    if files:
        rows.insert(0, ("decode (read files)", max(0.0, load - get["file hashing (sha256)"]
                                                   - _cum(stats, "audio/resample.py", "push"))))
    prep = _cum(stats, "audio/pair.py", "prepare_pair")
    rows.append(("pair trimming and checks", max(0.0, prep - get["alignment"]
                                                  - _cum(stats, "audio/loudness.py", "robust_matching_gain_db"))))
    rows.append(("frame distance", _cum(stats, "distance.py", "loudness_disturbance", ("scoring.py", "_compose"))))
    embed = _cum(stats, "embedding.py", "iter_embed_many") or _cum(stats, "embedding.py", "iter_embed")
    rows.append(("embedding bookkeeping (chunks, layer bins)", max(0.0, embed - get["front end (model forward)"])))
    compose = _cum(stats, "scoring.py", "_compose")
    inner = sum(v for k, v in rows if k in ("DTW (follow time)", "curves (window pooling)", "time matrix",
                                              "layer heatmap", "frame distance"))
    rows.append(("result assembly (rest of _compose)", max(0.0, compose - inner)))
    score = _cum(stats, "scoring.py", "score_many")
    if files:
        rows.append(("start-up: imports, model load, output", max(0.0, wall - score)))
    accounted = sum(v for _, v in rows)
    rows.append(("other", max(0.0, wall - accounted)))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--files", action="store_true", help="profile `deepaq score` on files, imports included")
    p.add_argument("--torch", action="store_true", help="also print torch.profiler's top operators")
    p.add_argument("--top", type=int, default=0, help="also print cProfile's top N functions")
    p.add_argument("--sort", default="cumulative", help="their order: cumulative or tottime")
    args = p.parse_args(argv)

    from bench_speed import SR, make_pair, write_pair

    prof = cProfile.Profile()
    if args.files:
        tmp = tempfile.TemporaryDirectory()
        ref_path, deg_path = write_pair(Path(tmp.name), args.seconds)
        import deepaq_core.scoring as scoring

        original = scoring.Scorer.__init__

        def sequential(self, *a, **kw):  # the profiled thread does everything
            if "workers" in inspect.signature(original).parameters:  # older versions had no helpers
                kw["workers"] = 0
            original(self, *a, **kw)

        scoring.Scorer.__init__ = sequential
        from deepaq_core import cli

        t0 = time.perf_counter()
        prof.enable()
        cli.main(["score", str(ref_path), str(deg_path)])
        prof.disable()
        wall = time.perf_counter() - t0
        what = f"`deepaq score` on a {args.seconds:g} s 48 kHz stereo FLAC/WAV pair, whole command"
    else:
        from deepaq_core.audio import AudioBuffer
        from deepaq_core.scoring import Scorer

        from deepaq_core.cli import _settings, build_parser

        ref, deg = make_pair(args.seconds)
        seq = {"workers": 0} if "workers" in inspect.signature(Scorer).parameters else {}
        # the settings `deepaq score` uses (this checkout's own)
        settings = _settings(build_parser().parse_args(["score", "ref.wav", "deg.wav"]))
        scorer = Scorer(None, device="cpu", settings=settings, **seq)
        scorer.score(AudioBuffer(ref, SR), AudioBuffer(deg, SR))  # warm-up
        scorer._cache.clear()
        t0 = time.perf_counter()
        prof.enable()
        scorer.score(AudioBuffer(ref, SR), AudioBuffer(deg, SR))
        prof.disable()
        wall = time.perf_counter() - t0
        what = f"`Scorer.score` on a {args.seconds:g} s 48 kHz stereo pair in memory, model loaded, the settings of `deepaq score`"
    stats = pstats.Stats(prof)
    import deepaq_core

    print(f"\n{what}: {wall:.2f} s under cProfile, sequential (workers=0); code: {Path(deepaq_core.__file__).parent.parent}\n")
    print("| step | s | share |")
    print("|---|---|---|")
    for step, sec in breakdown(stats, wall, args.files):
        print(f"| {step} | {sec:.3f} | {100 * sec / wall:.0f}% |")
    if args.top:
        stats.sort_stats(args.sort).print_stats(args.top)
    if args.torch:
        import torch
        from torch.profiler import ProfilerActivity, profile

        from deepaq_core.audio import AudioBuffer
        from deepaq_core.scoring import Scorer

        ref, deg = make_pair(args.seconds)
        scorer = Scorer(None, device="cpu")
        scorer.score(AudioBuffer(ref, SR), AudioBuffer(deg, SR))
        scorer._cache.clear()
        with profile(activities=[ProfilerActivity.CPU]) as tp:
            scorer.score(AudioBuffer(ref, SR), AudioBuffer(deg, SR))
        print(f"\ntorch.profiler, torch {torch.__version__}, {torch.get_num_threads()} threads:\n")
        print(tp.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    return 0


if __name__ == "__main__":
    sys.exit(main())
