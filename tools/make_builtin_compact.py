"""Write the built-in model bundle (resources/models/compact): the auditory front end.

The model has no learned weights: its card holds the front end's constants, the distance that
goes with it, the local (time-following) alignment and the 0-100 score mapping. The mapping's two
numbers are fitted on listener ratings by tools/fit_score_mapping.py, which writes them here with
``--d50`` / ``--power`` and records how they were measured in ``--results JSON``.

    python tools/make_builtin_compact.py --d50 0.2 --power 1.5 [--results fit.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deepaq_core.model.auditory import AuditoryBackbone, AuditoryConfig, auditory_card  # noqa: E402
from deepaq_core.model.bundle import save_bundle  # noqa: E402
from deepaq_core.model.head import EmbeddingHead, EmbeddingModel  # noqa: E402

VERSION = "0.4.6"
DISTANCE = {
    "type": "loudness_disturbance",
    "mask": 0.1,
    "weight_added": 1.6,
    "weight_missing": 0.5,
    "band_p": 2.0,
    "time_p": 2.0,
    "block_frames": 24,
    "block_p": 6.0,
    "lost_weight": 3.0,
    "lost_floor": 0.1,
    "lost_tolerance": 0.1,
    "structure_weight": 2.0,
    "structure_frames": 16,
    "structure_cv": 0.2,
    "structure_tolerance": 0.1,
    "reliable_bins": 1.5,
    "presence_weight": 2.0,
    "presence_low_hz": 2000.0,
    "presence_high_hz": 8000.0,
    "units": "loudness disturbance relative to the reference's mean specific loudness (0 = identical), "
    "lower is better",
}
LOCAL_ALIGNMENT = {"band_s": 1.5, "penalty": 0.5, "band_group": 4, "hold_frames": 9, "max_wander": 0.15}


def build(d50: float, power: float, fitted_on: str, results: dict | None, out: Path) -> Path:
    cfg = AuditoryConfig()
    backbone = AuditoryBackbone(cfg)
    head = EmbeddingHead(backbone.num_hidden_states, backbone.hidden_size, dim=None, select_layer=1, normalize=False)
    model = EmbeddingModel(backbone, head).eval()
    mapping = {"type": "exp2", "d50": d50, "power": power, "fitted_on": fitted_on}
    card = auditory_card(cfg, DISTANCE, mapping, LOCAL_ALIGNMENT)
    card.update(
        version=VERSION,
        status="designed",
        description="Full-band auditory model (48 kHz, ERB bands to 20 kHz, masking, specific loudness) with a "
        "perceptual loudness-disturbance distance (with lost-bandwidth and lost-envelope terms) and time-following alignment, "
        "each channel compared on its own; no learned weights, score mapping fitted on listener ratings (see results).",
        training=None,
        results=results,
    )
    return save_bundle(model, card, out, include_backbone=True, dtype="float32")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d50", type=float, required=True)
    ap.add_argument("--power", type=float, required=True)
    ap.add_argument("--fitted-on", default="provisional")
    ap.add_argument("--results", help="JSON file with measured results to store in the card")
    ap.add_argument("--out", default=str(ROOT / "resources" / "models" / "compact"))
    a = ap.parse_args()
    results = json.loads(Path(a.results).read_text()) if a.results else None
    print(build(a.d50, a.power, a.fitted_on, results, Path(a.out)))


if __name__ == "__main__":
    main()
