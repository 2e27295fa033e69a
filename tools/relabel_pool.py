#!/usr/bin/env python3
"""Copy a training pool with its labels recomputed from a psychoacoustic teacher (Zimtohrli).

A pool's ``hybrid`` labels use the log-mel teacher distance for their scale across excerpts and
families, so a model trained on them with ``grouping = "across"`` can at best learn the log-mel
distance. This tool keeps the pool's audio and replaces each degraded version's teacher value with
the Zimtohrli distance (Google's auditory-model metric, Apache-2.0, ``pip install zimtohrli``) to
the group's clean version, then builds the labels exactly like ``hybrid``: isotonic (non-decreasing
in the family's severity) within the group, mapped with ``d / (d + half)``, where ``half`` is the
median Zimtohrli distance of the pool's degraded versions (so the labels spread around 0.5).

    python tools/relabel_pool.py ../runs/compact-pool ../runs/compact-pool-zim [--jobs 2]

Both streams (``train/`` and ``heldout/``) are copied. The pool's fingerprint is kept, so a training
config whose data settings made the source pool trains from the copy unchanged (point
``data.cache`` at it); ``pool.json`` records the relabelling. Pool audio is 24 kHz mono (what the
model sees); Zimtohrli runs at 48 kHz, so both versions are upsampled with soxr first (neither has
content above 12 kHz, so nothing is invented).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ZIM_RATE = 48000


def _zimtohrli_distances(task: tuple[str, int]) -> list[list[float]]:
    """Zimtohrli distance of every version of every group in one shard to its clean version."""
    import soxr
    import zimtohrli
    from safetensors import safe_open

    path, rate = task
    z = zimtohrli.Pyohrli()
    out = []
    with safe_open(path, framework="np") as fh:
        metas = json.loads(fh.metadata()["groups"])
        first = min(int(k.split(".")[1]) for k in fh.keys())  # tensors carry the pool-wide index
        for i, meta in enumerate(metas):
            audio = fh.get_tensor(f"audio.{first + i}").astype(np.float32)  # [K, N]
            clean = int(np.argmin(meta["labels"]))
            up = [np.ascontiguousarray(soxr.resample(a, rate, ZIM_RATE), dtype=np.float32) for a in audio]
            out.append([0.0 if k == clean else float(z.distance(up[clean], up[k])) for k in range(len(up))])
    return out


def _labels(meta: dict, dist: list[float], half: float) -> list[float]:
    """Hybrid labels of one group with ``dist`` as the teacher (0 for the clean version)."""
    from deepaq_core.degrade.families import hybrid_labels

    labels = [0.0] * len(dist)
    fams = meta["families"]
    clean = int(np.argmin(meta["labels"]))
    for fam in sorted({f for k, f in enumerate(fams) if k != clean}):
        idx = [k for k, f in enumerate(fams) if f == fam and k != clean]
        fitted = hybrid_labels(fam, [meta["params"][k] for k in idx], [dist[k] for k in idx], half_db=half)
        for k, label in zip(idx, fitted):
            labels[k] = max(float(label), 1e-4)  # 0 is the clean version's alone
    return labels


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="pool folder (holding train/ and heldout/)")
    ap.add_argument("dest", type=Path, help="new pool folder (must not exist)")
    ap.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2)))
    args = ap.parse_args()
    if args.dest.exists():
        print(f"error: '{args.dest}' already exists.", file=sys.stderr)
        return 2
    streams = [s for s in ("train", "heldout") if (args.source / s / "pool.json").is_file()]
    if not streams:
        print(f"error: '{args.source}' holds no pool (no train/pool.json).", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    shards = {s: sorted((args.source / s).glob("shard-*.safetensors")) for s in streams}
    rates = {s: json.loads((args.source / s / "pool.json").read_text())["sample_rate"] for s in streams}
    tasks = [(str(p), rates[s]) for s in streams for p in shards[s]]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as ex:
            results = dict(zip((t[0] for t in tasks), ex.map(_zimtohrli_distances, tasks)))
    else:
        results = {t[0]: _zimtohrli_distances(t) for t in tasks}
    degraded = [d for groups in results.values() for g in groups for d in g if d > 0]
    half = float(np.median(degraded)) if degraded else 1.0
    print(f"{len(degraded)} versions scored by Zimtohrli in {time.perf_counter() - t0:.0f} s; "
          f"median distance {half:.5f} -> label 0.5", file=sys.stderr)

    from safetensors import safe_open
    from safetensors.numpy import save_file

    for s in streams:
        (args.dest / s).mkdir(parents=True)
        for path in shards[s]:
            with safe_open(str(path), framework="np") as fh:
                meta_all = dict(fh.metadata())
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
            metas = json.loads(meta_all["groups"])
            for meta, dist in zip(metas, results[str(path)]):
                meta["labels"] = _labels(meta, dist, half)
                meta["teacher_db"] = dist  # the teacher's values (Zimtohrli distance, not dB)
            meta_all["groups"] = json.dumps(metas)
            save_file(tensors, str(args.dest / s / path.name), metadata=meta_all)
        info = json.loads((args.source / s / "pool.json").read_text())
        info["relabelled"] = {"teacher": "zimtohrli", "version": _zimtohrli_version(), "half": half,
                              "from": str(args.source.resolve()), "label_mode": "hybrid (Zimtohrli teacher)"}
        (args.dest / s / "pool.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {args.dest} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


def _zimtohrli_version() -> str:
    from importlib.metadata import version

    return version("zimtohrli")


if __name__ == "__main__":
    sys.exit(main())
