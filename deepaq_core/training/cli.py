"""``deepaq train``: train a model from a config, or pre-generate its group pool.

Loaded by :mod:`deepaq_core.cli` through ``register(subparsers)``; registering imports nothing
heavy (torch is imported when the command runs).

::

    deepaq train configs/compact.toml                      # train (output.dir from the config)
    deepaq train --make-cache configs/compact.toml         # generate data.cache first (CPU runs)
    deepaq train configs/compact.toml --resume             # continue after an interruption
    deepaq train configs/compact.toml --steps 200 --out runs/try --set data.num_workers=0
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from deepaq_core.errors import DeePAQError

log = logging.getLogger("deepaq_core.training")


def register(subparsers) -> dict:
    """Add the ``train`` command; returns ``{"train": handler}``."""
    p = subparsers.add_parser(
        "train",
        help="train a model from clean audio with surrogate labels (or pre-generate its data with --make-cache)",
        description="Train a DeePAQ embedding model (compact, or MERT + LoRA) on degraded versions of clean "
        "audio with the adapted Rank-N-Contrast loss; see docs/TRAINING.md. Writes a run folder with logs, "
        "last/ (resumable) and best/ (a bundle for 'deepaq score --model').",
    )
    p.add_argument("config", help="training config file (.toml, or .yaml with PyYAML installed)")
    p.add_argument("--resume", action="store_true", help="continue the run in the output folder from last/")
    p.add_argument("--steps", type=int, metavar="N", help="total optimizer steps (overrides optim.steps)")
    p.add_argument("--out", metavar="DIR", help="run folder (overrides output.dir)")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (overrides the config's device)")
    p.add_argument("--workers", type=int, metavar="N", help="data worker processes (overrides data.num_workers)")
    p.add_argument("--make-cache", action="store_true",
                   help="only generate the pool of training groups into data.cache (plus the held-out groups)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a setting, e.g. --set optim.lr=1e-4 (repeatable)")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    return {"train": cmd_train}


def _load(args: argparse.Namespace):
    from deepaq_core.training.config import load_config, parse_override

    overrides = dict(parse_override(item) for item in args.overrides)
    if args.steps is not None:
        if args.steps < 1:
            raise DeePAQError("--steps must be a positive number of optimizer steps.")
        overrides["optim.steps"] = args.steps
    if args.workers is not None:
        if args.workers < 0:
            raise DeePAQError("--workers must be 0 or more.")
        overrides["data.num_workers"] = args.workers
    if args.device:
        overrides["device"] = args.device
    return load_config(args.config, overrides)


def _make_cache(cfg) -> int:
    from deepaq_core.training.data import (
        STREAM_TRAIN,
        build_pool,
        heldout_pool,
        plan_data,
        pool_fingerprint,
        settings_fingerprint,
    )

    if not cfg.data.cache:
        raise DeePAQError("Set data.cache in the config to the folder the group pool should be written to.")
    cache = Path(cfg.data.cache)
    t0 = time.perf_counter()
    plan = plan_data(cfg)
    summary = plan.summary()
    log.info("making a pool of %d groups from %d files (%.2f h) with %d workers into %s", cfg.data.cache_groups,
             summary["train_files"], summary["train_hours"], cfg.data.num_workers, cache)
    fp = pool_fingerprint(cfg, plan.train_files, plan.families, STREAM_TRAIN)
    pool = build_pool(plan.train_maker, cache / "train", cfg.data.cache_groups, fingerprint=fp,
                      settings_fp=settings_fingerprint(cfg, plan.families, STREAM_TRAIN),
                      num_workers=cfg.data.num_workers, settings={"config": cfg.config_path, **summary})
    held = heldout_pool(cfg, plan, cache / "heldout", num_workers=cfg.data.num_workers)
    secs = time.perf_counter() - t0
    print(f"group pool: {len(pool)} training groups in {cache / 'train'}")
    if held is not None:
        print(f"held-out:   {len(held)} groups in {cache / 'heldout'}")
    per = pool.info.get("seconds_per_group")
    rate = f"{per:.2f} s wall time per generated group" if per else "nothing left to generate"
    print(f"time:       {secs:.0f} s ({rate}, {cfg.data.num_workers} workers)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Handler of ``deepaq train``."""
    if not args.debug:
        log.setLevel(logging.INFO)  # progress to stderr through the CLI's root handler
    cfg = _load(args)
    if args.make_cache:
        return _make_cache(cfg)
    from deepaq_core.training.trainer import Trainer

    out = Path(args.out).expanduser().resolve() if args.out else None
    result = Trainer(cfg, out_dir=out).fit(resume=args.resume or None)
    state = "finished" if result.finished else "stopped"
    if result.stopped_early:
        state = "stopped early"
    print(f"training {state} at step {result.step} ({result.seconds / 60:.1f} min of training)")
    if result.best_bundle is not None:
        what = ""
        if result.best_value is not None:
            what = f" ({result.best_metric} {result.best_value:.4f} at step {result.best_step})"
        print(f"best model: {result.best_bundle}{what}")
    print(f"last model: {result.last_bundle}")
    print(f"score with:  deepaq score --model {result.best_bundle or result.last_bundle} REFERENCE DEGRADED",
          file=sys.stderr)
    return 0
