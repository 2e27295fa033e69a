#!/usr/bin/env python3
"""Write the untrained compact bundle to resources/models/compact-untrained (seeded, deterministic).

This fills the built-in model slot while no trained compact model has beaten it (docs/TRAINING.md,
"What to expect"). The weights are the seed-0 initialisation that every compact training run
starts from (its step-0 validation). The card says "untrained" and every result shows it.

    python tools/make_untrained_compact.py \
        [--measure tcd=../shared/data/tcdaudio14/manifest.csv:visqol_v3_moslqo \
         --measure sisec=../shared/data/sisec08/manifest.csv:subjective_mean]

The score mapping is a placeholder: d50 is set so that a 3.5 kHz low-pass of the demo reference
(the classic "lp35" anchor) scores 50. ``--measure NAME=CSV:COLUMN`` scores a manifest with the
shipped weights through the same path as training's validation and puts the correlations of the
(negated) distance with COLUMN (higher = better quality) in the card's ``results``, with the date.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
from pathlib import Path

import numpy as np
import scipy.signal

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "resources" / "models" / "compact-untrained"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measure", action="append", default=[], metavar="NAME=CSV:COLUMN")
    args = ap.parse_args()

    from deepaq_core.audio import AudioBuffer, load_audio
    from deepaq_core.model.bundle import save_bundle
    from deepaq_core.model.compact import CompactConfig, build_untrained, untrained_card
    from deepaq_core.scoring import Scorer

    cfg = CompactConfig()
    model = build_untrained(seed=0, cfg=cfg)
    save_bundle(model, {**untrained_card(cfg, d50=1.0), "name": "compact-untrained"}, FOLDER, include_backbone=True,
                dtype="float16")
    card = json.loads((FOLDER / "card.json").read_text())
    scorer = Scorer(str(FOLDER), device="cpu")  # the shipped (float16) weights, as users get them

    ref = load_audio(ROOT / "resources" / "demo" / "demo_reference.flac", target_rate=24000)
    sos = scipy.signal.butter(8, 3500, "lowpass", fs=24000, output="sos")
    lp = AudioBuffer(scipy.signal.sosfiltfilt(sos, ref.samples, axis=-1).astype(np.float32), 24000)
    card["score_mapping"]["d50"] = round(float(scorer.score(ref, lp).distance), 6)
    if args.measure:
        card["results"] = {"measured": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                           "how": "distance (negated) vs the column, through the scoring path with default "
                                  "settings (alignment and loudness matching on)",
                           **_measure(scorer, card, args.measure)}
    (FOLDER / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {FOLDER}: score mapping {card['score_mapping']}")
    if card.get("results"):
        print(json.dumps(card["results"], indent=2))


def _measure(scorer, card: dict, specs: list[str]) -> dict:
    """``{name: {manifest, column, n, pearson, spearman, kendall}}`` for ``NAME=CSV:COLUMN`` specs."""
    from deepaq_core.training.config import ManifestSpec
    from deepaq_core.training.validate import manifest_metrics

    manifests = []
    for spec in specs:
        name, rest = spec.split("=", 1)
        path, column = rest.rsplit(":", 1)
        manifests.append(ManifestSpec(name=name, path=path, subjective=column))
    metrics, _ = manifest_metrics(scorer.loaded.model, card, manifests, "cpu")
    return {m.name: {"manifest": Path(m.path).parent.name, "column": m.subjective, "n": metrics[f"{m.name}.n"],
                     **{k: round(float(metrics[f"{m.name}.{k}"]), 4) for k in ("pearson", "spearman", "kendall")}}
            for m in manifests}


if __name__ == "__main__":
    main()
