#!/usr/bin/env python3
"""Do the ends of the 0-100 scale hold on real music? Prints one table per check (a check, not a test).

    python benchmarks/check_ends.py [--data ../shared/data] [--model compact] [--json ends.json]

Uses the references of ``tcdaudio14`` (in ``--data``, default ``$DEEPAQ_DATA`` or
``../shared/data``; the data is not in the repository) and scores, with one model through
:class:`deepaq_core.scoring.Scorer`:

1. inaudible changes of every reference: the same file, +0.5 dB, inverted polarity, a 1 ms
   delay, a constant 90-degree phase shift (target: >= 95);
2. low-passes at 3.5, 7 and 16 kHz (``deepaq_core.degrade``'s 8th-order Butterworth; targets:
   3.5 kHz <= 35, 7 kHz between the 3.5 kHz score and 85, 16 kHz below 100 and above 7 kHz);
3. a 0.3 s clipping burst at 5 s (target: the lowest window of the curve, clean windows >= 97);
4. MP3, AAC and Opus ladders of ``--ladder-items`` through the installed encoders (target:
   scores rise with the bitrate);
5. every ordered pair of two different references, cut to the shorter (target: <= 15).

Exit status 0 whatever the outcome (the tables say what held); 2 when the data is missing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ITEMS = ("castanets", "contrabassoon", "glock", "guitar", "harpsichord", "moonlight", "ravel", "sopr", "steely",
         "strauss")
LADDERS = {"mp3": (32, 48, 64, 96, 128), "aac": (32, 48, 64, 96, 128), "opus": (12, 16, 24, 32, 48, 64)}


def default_data() -> Path:
    env = os.environ.get("DEEPAQ_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


def _table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=default_data(), help="folder holding tcdaudio14/")
    p.add_argument("--model", default=None, help="model name or bundle folder (default: built-in)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--items", default=",".join(ITEMS), help="tcdaudio14 references to use (names before 48_stereo)")
    p.add_argument("--ladder-items", default="glock,moonlight,steely,harpsichord,guitar")
    p.add_argument("--json", type=Path, help="also write every score here")
    args = p.parse_args(argv)

    import scipy.signal
    import soundfile as sf

    from deepaq_core.audio import AudioBuffer
    from deepaq_core.degrade import available_codecs, degrade
    from deepaq_core.scoring import Scorer

    folder = args.data / "tcdaudio14"
    items = [x for x in args.items.split(",") if x]
    paths = {x: folder / f"{x}48_stereo.flac" for x in items}
    missing = [str(q) for q in paths.values() if not q.is_file()]
    if missing:
        print(f"error: {missing[0]} not found (give --data).", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    scorer = Scorer(args.model, args.device)
    audio = {}
    for x, q in paths.items():
        y, sr = sf.read(q, dtype="float32", always_2d=True)
        audio[x] = (np.ascontiguousarray(y.T), sr)

    def score(ref: np.ndarray, deg: np.ndarray, sr: int):
        n = min(ref.shape[1], deg.shape[1])
        return scorer.score(AudioBuffer(ref[:, :n], sr, None), AudioBuffer(np.ascontiguousarray(deg[:, :n]), sr, None))

    out: dict = {"model": scorer.loaded.bundle.info().label, "inaudible": {}, "lowpass": {}, "clip": {}, "ladders": {},
                 "unrelated": []}
    print(f"model: {out['model']}; data: {folder}\n")

    # 1. inaudible changes
    rows = []
    for x, (ref, sr) in audio.items():
        d = int(round(0.001 * sr))
        variants = {"same": ref, "+0.5 dB": ref * np.float32(10 ** (0.5 / 20)), "inverted": -ref,
                    "1 ms": np.concatenate([np.zeros((ref.shape[0], d), np.float32), ref[:, :-d]], axis=1),
                    "90 degrees": np.imag(scipy.signal.hilbert(ref, axis=1)).astype(np.float32)}
        out["inaudible"][x] = {k: round(score(ref, v, sr).score, 2) for k, v in variants.items()}
        rows.append([x] + [f"{s:.1f}" for s in out["inaudible"][x].values()])
    worst = min(s for v in out["inaudible"].values() for s in v.values())
    print("### Inaudible changes (target >= 95)\n")
    print(_table(["item", "same", "+0.5 dB", "inverted", "1 ms", "90 degrees"], rows))
    print(f"\nlowest {worst:.1f}: {'held' if worst >= 95 else 'NOT held'}\n")

    # 2. low-passes
    rows, held = [], 0
    for x, (ref, sr) in audio.items():
        s = {fc: score(ref, degrade(ref, sr, "lowpass", cutoff_hz=fc)[0], sr).score for fc in (3500, 7000, 16000)}
        # The targets are checked on the scores themselves (the same file scores exactly 100), and
        # a score just under 100 is shown with the digits that tell it apart.
        ok = s[3500] <= 35 and s[3500] < s[7000] <= 85 and s[7000] < s[16000] < 100
        held += ok
        out["lowpass"][x] = {fc: round(v, 2) if v < 99.995 else round(v, 6) for fc, v in s.items()}
        rows.append([x] + [f"{v:.2f}" if v < 99.995 or v == 100 else f"{v:.4f}" for v in s.values()]
                    + ["held" if ok else "not"])
    print("### Low-passes (3.5 kHz <= 35 < 7 kHz <= 85, 7 kHz < 16 kHz < 100)\n")
    print(_table(["item", "3.5 kHz", "7 kHz", "16 kHz", "targets"], rows))
    print(f"\nheld on {held} of {len(rows)}\n")

    # 3. clipping burst
    rows = []
    for x, (ref, sr) in audio.items():
        if ref.shape[1] < int(5.6 * sr):
            continue
        deg = ref.copy()
        seg = slice(5 * sr, 5 * sr + int(0.3 * sr))
        peak = float(np.abs(ref[:, seg]).max())
        deg[:, seg] = np.clip(ref[:, seg] * 4, -0.5 * peak, 0.5 * peak)
        c = score(ref, deg, sr).curve
        has = (c.start_s <= 5.3) & (c.end_s >= 5.0)
        ok = bool(has[int(np.argmin(c.score))]) and float(c.score[~has].min()) >= 97
        out["clip"][x] = {"burst_min": round(float(c.score[has].min()), 2), "clean_min": round(float(c.score[~has].min()), 2)}
        rows.append([x, out["clip"][x]["burst_min"], out["clip"][x]["clean_min"], "held" if ok else "not"])
    print("### 0.3 s clipping burst at 5 s (lowest window, clean windows >= 97)\n")
    print(_table(["item", "lowest window with the burst", "lowest clean window", "targets"], rows) + "\n")

    # 4. codec ladders
    tools = available_codecs()
    rows = []
    for x in [i for i in args.ladder_items.split(",") if i in audio]:
        ref, sr = audio[x]
        for codec, rates in LADDERS.items():
            if not tools.get(codec):
                continue
            s = [round(score(ref, degrade(ref, sr, codec, bitrate_kbps=b)[0], sr).score, 1) for b in rates]
            out["ladders"][f"{codec}/{x}"] = dict(zip(rates, s))
            mono = all(b >= a for a, b in zip(s, s[1:]))
            rows.append([x, codec, " / ".join(f"{v:g}" for v in s), "monotonic" if mono else "NOT monotonic"])
    print("### Codec ladders (scores in bitrate order: mp3/aac " + "/".join(map(str, LADDERS["mp3"])) + ", opus "
          + "/".join(map(str, LADDERS["opus"])) + " kbit/s)\n")
    print(_table(["item", "codec", "scores", "order"], rows) + "\n")

    # 5. unrelated music
    for a, b in itertools.permutations(audio, 2):
        (ra, sr), (rb, _) = audio[a], audio[b]
        out["unrelated"].append((a, b, round(score(ra, rb, sr).score, 2)))
    v = np.array([s for _, _, s in out["unrelated"]])
    top = sorted(out["unrelated"], key=lambda t: -t[2])[:5]
    print("### Unrelated music: every ordered pair (target <= 15)\n")
    print(f"{len(v)} pairs: min {v.min():.1f}, median {np.median(v):.1f}, max {v.max():.1f}; "
          f"{int(np.sum(v <= 15))} of {len(v)} at or below 15. Highest: "
          + ", ".join(f"{a} vs {b} {s:.1f}" for a, b, s in top) + "\n")
    print(f"(total {time.perf_counter() - t0:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
