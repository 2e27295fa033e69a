#!/usr/bin/env python3
"""Write the untrained compact bundle to resources/models/compact (seeded, deterministic).

This fills the built-in model slot while no trained compact model has beaten it (docs/TRAINING.md,
"What to expect"). The weights are the seed-0 initialisation that every compact training run
starts from (its step-0 validation). The card says "untrained" and every result shows it.

    python tools/make_untrained_compact.py \
        [--mapping-pool ../runs/compact-pool/heldout] \
        [--measure tcd=../shared/data/tcdaudio14/manifest.csv:visqol_v3_moslqo \
         --measure sisec=../shared/data/sisec08/manifest.csv:subjective_mean]

``--mapping-pool``: fit the score mapping (distance -> 0..100) on the held-out groups of a training
pool (``deepaq train --make-cache``) through the scoring path, as training does for its
checkpoints; without it the mapping is a placeholder (a 3.5 kHz low-pass of the demo reference
scores 50). ``--measure NAME=CSV:COLUMN``: score a manifest and put the correlations of the
distance with COLUMN (higher = better quality) in the card's ``results``, with the date.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
from pathlib import Path

import numpy as np
import scipy.signal

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "resources" / "models" / "compact"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mapping-pool", type=Path, help="a pool stream folder (e.g. POOL/heldout) to fit the mapping on")
    ap.add_argument("--measure", action="append", default=[], metavar="NAME=CSV:COLUMN")
    args = ap.parse_args()

    from deepaq_core.audio import AudioBuffer, load_audio
    from deepaq_core.model.bundle import save_bundle
    from deepaq_core.model.compact import CompactConfig, build_untrained, untrained_card
    from deepaq_core.scoring import Scorer

    cfg = CompactConfig()
    model = build_untrained(seed=0, cfg=cfg)
    save_bundle(model, untrained_card(cfg, d50=1.0), FOLDER, include_backbone=True, dtype="float16")
    card = json.loads((FOLDER / "card.json").read_text())
    scorer = Scorer(str(FOLDER), device="cpu")  # the shipped (float16) weights, as users get them

    if args.mapping_pool:
        card["score_mapping"] = _fit_on_pool(scorer, args.mapping_pool)
    else:
        ref = load_audio(ROOT / "resources" / "demo" / "demo_reference.flac", target_rate=24000)
        sos = scipy.signal.butter(8, 3500, "lowpass", fs=24000, output="sos")
        lp = AudioBuffer(scipy.signal.sosfiltfilt(sos, ref.samples, axis=-1).astype(np.float32), 24000)
        card["score_mapping"]["d50"] = round(float(scorer.score(ref, lp).distance), 6)
    if args.measure:
        card["results"] = {"measured": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                           "how": "distance (negated) vs the column, through the scoring path with default "
                                  "settings (alignment and loudness matching on)",
                           **{name: stats for name, stats in (_measure(scorer, m) for m in args.measure)}}
    (FOLDER / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {FOLDER}: score mapping {card['score_mapping']}")
    if card.get("results"):
        print(json.dumps(card["results"], indent=2))


def _fit_on_pool(scorer, folder: Path) -> dict:
    from deepaq_core.audio import AudioBuffer
    from deepaq_core.training.data import GroupPool
    from deepaq_core.training.validate import fit_score_mapping

    pool = GroupPool(folder)
    distances, labels = [], []
    for g in pool.groups():
        sr = pool.info["sample_rate"]
        clean = int(np.argmin(g.labels))
        others = [k for k in range(len(g.labels)) if k != clean]
        results = scorer.score_many(AudioBuffer(g.audio[clean], sr), [AudioBuffer(g.audio[k], sr) for k in others])
        distances += [r.distance for r in results]
        labels += [float(g.labels[k]) for k in others]
    where = (f"held-out surrogate ladder ({pool.info['n_groups']} excerpts of {pool.info['samples'] / pool.info['sample_rate']:g} s, "
             f"{pool.info['label_mode']} labels, {len(pool.info['families'])} families), distances from the scoring path")
    mapping = fit_score_mapping(distances, labels, where=where)
    if mapping is None:
        raise SystemExit(f"error: too few usable versions in '{folder}' to fit a mapping.")
    return mapping


def _measure(scorer, spec: str) -> tuple[str, dict]:
    from deepaq_core.evaluation.manifest import load_manifest
    from deepaq_core.training.validate import correlations

    name, rest = spec.split("=", 1)
    path, column = rest.rsplit(":", 1)
    rows = load_manifest(path, subjective_col=column)
    distances = []
    for r in rows:
        distances.append(scorer.score(r.reference, r.degraded).distance)
    c = correlations([-d for d in distances], [r.subjective for r in rows])
    return name, {"manifest": Path(path).parent.name, "column": column, "n": c["n"],
                  **{k: round(float(c[k]), 4) for k in ("pearson", "spearman", "kendall")}}


if __name__ == "__main__":
    main()
