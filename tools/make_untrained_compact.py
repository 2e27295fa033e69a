#!/usr/bin/env python3
"""Write the untrained compact bundle to resources/models/compact (seeded, deterministic).

This fills the built-in model slot until the trained compact model replaces it. Its score mapping
is a placeholder: d50 is set so that a 3.5 kHz low-pass of the demo reference (the classic "lp35"
anchor) maps to 50. The card says "untrained", and every result shows it.

    python tools/make_untrained_compact.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.signal

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "resources" / "models" / "compact"


def main() -> None:
    from deepaq_core.audio import AudioBuffer, load_audio
    from deepaq_core.model.bundle import save_bundle
    from deepaq_core.model.compact import CompactConfig, build_untrained, untrained_card
    from deepaq_core.scoring import Scorer

    cfg = CompactConfig()
    model = build_untrained(seed=0, cfg=cfg)
    save_bundle(model, untrained_card(cfg, d50=1.0), FOLDER, include_backbone=True, dtype="float16")

    ref = load_audio(ROOT / "resources" / "demo" / "demo_reference.flac", target_rate=24000)
    sos = scipy.signal.butter(8, 3500, "lowpass", fs=24000, output="sos")
    lp = AudioBuffer(scipy.signal.sosfiltfilt(sos, ref.samples, axis=-1).astype(np.float32), 24000)
    distance = Scorer(str(FOLDER), device="cpu").score(ref, lp).distance
    card = json.loads((FOLDER / "card.json").read_text())
    card["score_mapping"]["d50"] = round(float(distance), 6)
    (FOLDER / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {FOLDER} (lp35 demo distance {distance:.4f} -> d50)")


if __name__ == "__main__":
    main()
