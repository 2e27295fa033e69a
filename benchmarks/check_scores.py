#!/usr/bin/env python3
"""Did a speed change move any score? Scores the developer sets and compares with a saved run.

    python benchmarks/check_scores.py --save before.json            # on the old code
    python benchmarks/check_scores.py --compare before.json          # on the new code

Scores every manifest row of ``tcdaudio14`` and ``sisec08`` (in ``--data``, default
``$DEEPAQ_DATA`` or ``../shared/data``) with one model (default the built-in ``compact``) through
:class:`deepaq_core.scoring.Scorer`, one reference at a time with all its degraded files, and
prints the largest absolute score difference per set and overall. Exit status 1 when a difference
exceeds ``--tolerance`` (0.05 points by default) or the two runs scored different rows.

A check, not a test: the data is not in the repository.

Precision: ``--precision bf16`` scores with that arithmetic (compare with an fp32 run), and
``--mert-sized`` uses a MERT-v1-95M-sized network with random weights (``bench_speed.py``'s,
seed 0, rebuilt identically each run) instead of ``--model``:

    python benchmarks/check_scores.py --mert-sized --sets tcdaudio14 --save fp32.json
    python benchmarks/check_scores.py --mert-sized --sets tcdaudio14 --precision bf16 --compare fp32.json --tolerance 0.5
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

SETS = ("tcdaudio14", "sisec08")


def default_data() -> Path:
    env = os.environ.get("DEEPAQ_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def score_sets(data: Path, model: str | None, device: str, sets=SETS, precision: str = "auto") -> dict[str, float]:
    """``"set/reference|degraded" -> score`` for every row of the sets' manifests."""
    from deepaq_core.scoring import ScoreSettings, Scorer

    scorer = Scorer(model, device=device, settings=ScoreSettings(precision=precision))
    out: dict[str, float] = {}
    for name in sets:
        folder = data / name
        with open(folder / "manifest.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        by_ref: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            by_ref[row["reference"]].append(row["degraded"])
        for ref, degs in by_ref.items():
            results = scorer.score_many(str(folder / ref), [str(folder / d) for d in degs])
            for d, r in zip(degs, results):
                out[f"{name}/{ref}|{d}"] = float(r.score)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=default_data(), help="folder holding tcdaudio14/ and sisec08/")
    p.add_argument("--model", default=None, help="model name or bundle folder (default: built-in)")
    p.add_argument("--device", default="cpu")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", type=Path, help="write the scores here")
    g.add_argument("--compare", type=Path, help="compare with scores saved by --save")
    p.add_argument("--tolerance", type=float, default=0.05, help="largest allowed difference, points")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="the network's arithmetic (default auto: fp32 on the CPU)")
    p.add_argument("--sets", default=",".join(SETS), help=f"comma-separated sets (default {','.join(SETS)})")
    p.add_argument("--mert-sized", action="store_true",
                   help="score with a MERT-v1-95M-sized network with random weights (seed 0) instead of --model")
    args = p.parse_args(argv)
    sets = tuple(x for x in args.sets.split(",") if x)

    missing = [s for s in sets if not (args.data / s / "manifest.csv").is_file()]
    if missing:
        print(f"error: no {', '.join(missing)} manifest under {args.data} (give --data).", file=sys.stderr)
        return 2
    model = args.model
    tmp = None
    if args.mert_sized:
        import tempfile

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_speed import build_mert_bundle

        tmp = tempfile.TemporaryDirectory()
        model = str(build_mert_bundle(Path(tmp.name))[0])
    t0 = time.perf_counter()
    scores = score_sets(args.data, model, args.device, sets, args.precision)
    elapsed = time.perf_counter() - t0
    print(f"scored {len(scores)} pairs in {elapsed:.1f} s")
    if args.save:
        args.save.write_text(json.dumps(scores, indent=1, sort_keys=True))
        print(f"saved to {args.save}")
        return 0
    before = json.loads(args.compare.read_text())
    if set(before) != set(scores):
        print(f"error: the runs scored different pairs ({len(before)} vs {len(scores)}).", file=sys.stderr)
        return 1
    worst_all = 0.0
    for name in sets:
        keys = [k for k in scores if k.startswith(name + "/")]
        diffs = {k: abs(scores[k] - before[k]) for k in keys}
        worst = max(diffs, key=diffs.get)
        worst_all = max(worst_all, diffs[worst])
        print(f"{name}: {len(keys)} pairs, max |score difference| {diffs[worst]:.4f} "
              f"({worst.split('/', 1)[1]}: {before[worst]:.3f} -> {scores[worst]:.3f})")
    ok = worst_all <= args.tolerance
    print(f"overall max |score difference| {worst_all:.4f} points: "
          f"{'within' if ok else 'EXCEEDS'} the {args.tolerance} tolerance")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
