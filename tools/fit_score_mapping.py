"""Fit the built-in model's 0-100 score mapping on listener ratings, cross-validated, and write it.

The model's distances are fixed (it has no learned weights); what listeners decide is the curve
``score = 100 * 2 ** (-(d / d50) ** power)`` from distance to the 0-100 scale. Two rated sets
of the developer data (``../shared/data``, never shipped) are used, with equal weight:

- ``sisec08``: MUSHRA ratings of separated music (0-100 with a hidden reference, as they are);
- ``tcdvoip`` (dev half: talkers FA, MK): ACR MOS of VoIP-damaged speech, rescaled so that the
  hidden reference's mean MOS is 100 and "bad" (1) is 0.

Reported out of fold: each tcdvoip talker predicted by a mapping fitted without that talker (the
other talker and sisec08), each sisec08 target predicted by a mapping fitted without it. The
fitted numbers, these cross-validated agreements and the other dev sets' figures are written to
the card of ``resources/models/compact`` by tools/make_builtin_compact.py.

    python tools/fit_score_mapping.py [--data ../shared/data] [--write]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def exp2(d: np.ndarray, d50: float, power: float) -> np.ndarray:
    return 100.0 * np.exp2(-np.power(np.maximum(d, 0.0) / d50, power))


def fit(d: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    from scipy.optimize import least_squares

    def resid(th: np.ndarray) -> np.ndarray:
        return np.sqrt(w) * (exp2(d, np.exp(th[0]), np.exp(th[1])) - y)

    r = least_squares(resid, [np.log(0.3), 0.0])
    return float(np.exp(r.x[0])), float(np.exp(r.x[1]))


def score_set(scorer, folder: Path) -> list[dict]:
    rows = list(csv.DictReader(open(folder / "manifest.csv", newline="")))
    for r in rows:
        q = scorer.score(folder / r["reference"], folder / r["degraded"])
        r["distance"] = q.distance
    return rows


def condensed_suite(summary: dict) -> dict:
    """The dev-suite figures of every metric (no per-item predictions), for the model card."""

    def keep(x):
        if isinstance(x, dict):
            return {k: keep(v) for k, v in x.items() if k not in ("predictions", "folds", "identity_target")}
        if isinstance(x, float):
            return round(x, 4)
        if isinstance(x, list):
            return [keep(v) for v in x]
        return x

    return {"command": summary.get("command"), "wall_s": round(float(summary.get("wall_s", 0.0)), 1),
            "n_rows": summary.get("n_rows"), "sets": keep(summary.get("sets", {}))}


def main() -> None:
    from scipy.stats import pearsonr, spearmanr

    from deepaq_core.scoring import Scorer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--write", action="store_true", help="write the mapping and results into the built-in bundle")
    ap.add_argument("--suite", help="summary.json of 'deepaq eval --suite dev' to record in the card (condensed)")
    a = ap.parse_args()
    data = Path(a.data)
    t0 = time.perf_counter()
    sys.path.insert(0, str(ROOT / "tools"))
    import make_builtin_compact as mk

    with tempfile.TemporaryDirectory() as tmp:  # distances do not depend on the mapping
        scorer = Scorer(str(mk.build(0.3, 1.0, "fit in progress", None, Path(tmp) / "m")), device="cpu")
        sets = {name: score_set(scorer, data / name) for name in ("tcdaudio14", "sisec08", "tcdvoip", "phase_abx")}
    voip, sis = sets["tcdvoip"], sets["sisec08"]
    mos_ref = float(np.mean([float(r["subjective_mean"]) for r in voip if r["condition"] == "1"]))
    d = np.array([r["distance"] for r in sis] + [r["distance"] for r in voip])
    y = np.array([float(r["subjective_mean"]) for r in sis]
                 + [float(np.clip((float(r["subjective_mean"]) - 1) / (mos_ref - 1) * 100, 0, 100)) for r in voip])
    group = np.array([r["target"] for r in sis] + [r["talker"] for r in voip])
    is_sis = np.arange(d.size) < len(sis)
    w = np.where(is_sis, len(voip) / len(sis), 1.0)  # each set weighs the same
    d50, power = fit(d, y, w)
    pred = np.empty_like(y)
    for g in np.unique(group):
        keep = group != g
        pred[~keep] = exp2(d[~keep], *fit(d[keep], y[keep], w[keep]))
    mos = np.array([float(r["subjective_mean"]) for r in voip])
    tcd = [r for r in sets["tcdaudio14"] if r["condition"] != "identity"]
    results = {
        "measured": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "how": "tools/fit_score_mapping.py on the developer data (not shipped); scoring path with default "
        f"settings; {platform.machine()} CPU",
        "mapping_fit": {"d50": round(d50, 5), "power": round(power, 4),
                        "data": "sisec08 MUSHRA (12 rows) and tcdvoip dev ACR MOS (192 rows, rescaled: hidden "
                        f"reference {mos_ref:.3f} -> 100, 1 -> 0), equal weight per set"},
        "tcdvoip": {"n": len(voip), "column": "subjective_mean (ACR MOS)",
                    "pearson_distance": round(float(pearsonr(-d[~is_sis], mos)[0]), 4),
                    "spearman_distance": round(float(spearmanr(-d[~is_sis], mos)[0]), 4),
                    "pearson_score_cv_by_talker": round(float(pearsonr(pred[~is_sis], mos)[0]), 4)},
        "sisec": {"n": len(sis), "column": "subjective_mean (MUSHRA)",
                  "pearson_distance": round(float(pearsonr(-d[is_sis], y[is_sis])[0]), 4),
                  "spearman_distance": round(float(spearmanr(-d[is_sis], y[is_sis])[0]), 4),
                  "pearson_score_cv_leave_target_out": round(float(pearsonr(pred[is_sis], y[is_sis])[0]), 4)},
        "tcd": {"n": len(tcd), "column": "visqol_v3_moslqo (a metric, not listeners; identity row left out)",
                "spearman": round(float(spearmanr([-r["distance"] for r in tcd],
                                                  [float(r["visqol_v3_moslqo"]) for r in tcd])[0]), 4)},
        "phase_abx": {r["stimulus"]: {"audible": int(r["audible"]),
                                      "score": round(float(exp2(np.array(r["distance"]), d50, power)), 2)}
                      for r in sets["phase_abx"]},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if a.suite:
        results["dev_suite"] = condensed_suite(json.loads(Path(a.suite).read_text()))
    print(json.dumps(results, indent=2))
    if a.write:
        fitted_on = ("listener ratings: " + results["mapping_fit"]["data"]
                     + "; cross-validated agreement in results (tools/fit_score_mapping.py)")
        print(mk.build(d50, power, fitted_on, results, ROOT / "resources" / "models" / "compact"), file=sys.stderr)


if __name__ == "__main__":
    main()
