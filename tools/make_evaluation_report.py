#!/usr/bin/env python3
"""Write docs/EVALUATION.md (and docs/eval/*.png, *.csv) from one measured run.

    python tools/make_evaluation_report.py [--data ../shared/data] [--work DIR] [--quick]

Runs ``deepaq eval`` three times in this process, with every DeePAQ model available here, the two
baselines and every installed peer metric as columns of the same run:

1. ``tcdaudio14``: agreement with the ViSQOL v3 conformance values (a metric's output, not
   listeners): Spearman first, per codec group, with and without the identity row.
2. ``sisec08``: agreement with MUSHRA listener means of separated sources, per target.
3. a degradation ladder generated from the ten tcdaudio14 references (MP3, Opus, low-pass;
   6 s excerpts): does each metric order the rungs of each ladder by intensity?

It then checks the product owner's reference numbers for the log-mel baseline under a few
variants of its definition, and writes the report with the machine, the exact commands, tables,
per-file timings and plots. Every number in the report comes from this run.

``--quick`` is a smoke run (2 ladder references, 200 bootstrap resamples, no CDPAM); its
numbers are not for the report and it writes to the work folder only.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def machine() -> dict:
    """CPU model, cores, memory, OS and library versions of this machine."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024**2:.0f} GiB"
    except OSError:
        pass
    import numpy
    import scipy
    import torch

    from deepaq_core.evaluation.peers import peer_versions

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {"cpu": cpu, "cores": cores, "memory": mem, "os": platform.platform(),
            "python": platform.python_version(), "numpy": numpy.__version__, "scipy": scipy.__version__,
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
            "peers": peer_versions()}


def run_eval(argv: list[str]) -> tuple[int, float]:
    """``deepaq eval ...`` in this process; returns (exit code, wall seconds)."""
    from deepaq_core.cli import main

    print("$ deepaq " + " ".join(shlex.quote(a) for a in argv), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    code = main(argv)
    return code, time.perf_counter() - t0


def logmel_variants(manifest: Path, subjective_col: str) -> list[dict]:
    """The log-mel L1 baseline under variants of its definition, to check the owner's figures.

    Returns one dict per variant with Pearson and Spearman over all rows and without the
    identity rows (quality orientation: negated distance).
    """
    import numpy as np

    from deepaq_core.audio import load_audio, prepare_pair
    from deepaq_core.degrade.teacher import logmel_distance
    from deepaq_core.evaluation.manifest import load_manifest
    from deepaq_core.evaluation.runner import is_identity
    from deepaq_core.evaluation.stats import correlations

    variants = [
        ("as in the report: 24 kHz, mono, aligned", 24000, "mono", True),
        ("native rate, mono, aligned", None, "mono", True),
        ("24 kHz, stereo (per channel), aligned", 24000, "all", True),
        ("24 kHz, mono, not aligned", 24000, "mono", False),
    ]
    rows = load_manifest(manifest, subjective_col=subjective_col)
    y = np.array([r.subjective for r in rows])
    ident = np.array([is_identity(r) for r in rows])
    out = []
    for label, rate, ch, align in variants:
        d = []
        for r in rows:
            ref = load_audio(r.reference, target_rate=rate, channels=ch)
            deg = load_audio(r.degraded, target_rate=ref.sample_rate, channels=ch)
            p = prepare_pair(ref, deg, align=align, match_loudness=False)
            d.append(logmel_distance(p.reference.samples, p.degraded.samples, ref.sample_rate))
        q = -np.array(d)
        a, b = correlations(q, y), correlations(q[~ident], y[~ident])
        out.append({"variant": label, "pearson_all": a["pearson"], "spearman_all": a["spearman"], "n_all": a["n"],
                    "pearson_degraded": b["pearson"], "spearman_degraded": b["spearman"], "n_degraded": b["n"]})
    return out


def demote(md: str, levels: int = 2) -> str:
    """Push markdown headings down so run summaries nest under the report's sections."""
    return "\n".join(("#" * levels + line) if line.startswith("#") else line for line in md.splitlines())


def timing_table(summary: dict, key: str | None) -> str:
    """Per-metric wall time table from a run's summary.json."""
    block = summary["ladder"] if key is None else summary[key]
    lines = ["| metric | files | median s/file | mean s/file | total s | setup s | real-time factor |",
             "|---|---|---|---|---|---|---|"]
    for name, s in block.items():
        t = s["timing"]

        def f(v, d=2):
            return "–" if v is None else f"{v:.{d}f}"

        lines.append(f"| {name} | {t['files']} | {f(t['median_s'])} | {f(t['mean_s'])} | {f(t['total_s'], 1)} "
                     f"| {f(t['setup_s'], 1)} | {f(t['realtime_factor'], 1)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder with tcdaudio14/ and sisec08/")
    ap.add_argument("--work", default=None, help="folder for run outputs and the generated ladder (default: temp)")
    ap.add_argument("--peers", default="all", help="peers for the two scored sets (default: all installed)")
    ap.add_argument("--ladder-peers", default="visqol,zimtohrli",
                    help="peers for the ladder run (default: visqol,zimtohrli; CDPAM would take hours on a CPU)")
    ap.add_argument("--families", default="mp3,opus,lowpass")
    ap.add_argument("--excerpt-s", type=float, default=6.0)
    ap.add_argument("--quick", action="store_true", help="smoke run; writes nothing under docs/")
    ap.add_argument("--render-only", action="store_true",
                    help="do not measure: rewrite the report from the outputs of a finished run in --work")
    args = ap.parse_args(argv)

    data = Path(args.data).resolve()
    tcd, sisec = data / "tcdaudio14" / "manifest.csv", data / "sisec08" / "manifest.csv"
    for p in (tcd, sisec):
        if not p.is_file():
            print(f"make_evaluation_report: {p} not found (see --data).", file=sys.stderr)
            return 2
    if args.render_only and not args.work:
        print("make_evaluation_report: --render-only needs --work (the folder of a finished run).", file=sys.stderr)
        return 2
    work = Path(args.work or tempfile.mkdtemp(prefix="deepaq_eval_report_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    boot = "200" if args.quick else "2000"
    peers = "visqol,zimtohrli" if args.quick else args.peers
    started = datetime.datetime.now(datetime.timezone.utc)
    t_start = time.perf_counter()
    info = None if args.render_only else machine()
    load = {"start": os.getloadavg()[0]} if hasattr(os, "getloadavg") else {}

    from deepaq_core.evaluation.metrics import available_models

    models = available_models()
    model_args = [a for m in models for a in ("--model", m)]

    with open(tcd, newline="") as f:
        refs = sorted({str((tcd.parent / r["reference"]).resolve()) for r in csv.DictReader(f)})
    if args.quick:
        refs = refs[:2]
    args.n_refs = len(refs)
    runs = {
        "tcdaudio14": ["eval", str(tcd), "--subjective-col", "visqol_v3_moslqo", "--group-col", "codec",
                       *model_args, "--peers", peers, "--device", "cpu", "--bootstrap", boot,
                       "--out", str(work / "tcdaudio14")],
        "sisec08": ["eval", str(sisec), "--subjective-col", "subjective_mean", "--group-col", "target",
                    *model_args, "--peers", peers, "--device", "cpu", "--bootstrap", boot,
                    "--out", str(work / "sisec08")],
        "ladder": ["eval", "--make-ladder", *refs, "--families", args.families, "--excerpt-s", f"{args.excerpt_s:g}",
                   *model_args, "--peers", args.ladder_peers, "--device", "cpu",
                   "--ladder-dir", str(work / "ladder_audio"), "--out", str(work / "ladder"),
                   "--title", "tcdaudio14 references: generated ladder"],
    }
    state_file = work / "run.json"
    if args.render_only:
        # Re-write the report from a finished run's outputs (for edits of the text only).
        state = json.loads(state_file.read_text())
        info, models, runs, codes, walls = state["info"], state["models"], state["runs"], state["codes"], state["walls"]
        started = datetime.datetime.fromisoformat(state["started"])
        total_min, args.n_refs = state["total_min"], state["n_refs"]
        load = state.get("load", {})
        variants = json.loads((work / "variants.json").read_text())
    else:
        codes, walls = {}, {}
        for name, argv_ in runs.items():
            codes[name], walls[name] = run_eval(argv_)
        variants = {"sisec08": logmel_variants(sisec, "subjective_mean"),
                    "tcdaudio14": logmel_variants(tcd, "visqol_v3_moslqo")}
        (work / "variants.json").write_text(json.dumps(variants, indent=2))
        total_min = (time.perf_counter() - t_start) / 60
        if load:
            load["end"] = os.getloadavg()[0]
        state_file.write_text(json.dumps({"info": info, "models": models, "runs": runs, "codes": codes,
                                          "walls": walls, "started": started.isoformat(), "total_min": total_min,
                                          "n_refs": args.n_refs, "load": load}, indent=2))
    summaries = {n: json.loads((work / n / "summary.json").read_text()) for n in runs}
    mds = {n: (work / n / "summary.md").read_text() for n in runs}

    docs = work / "docs" if args.quick else ROOT / "docs"
    eval_dir = docs / "eval"
    eval_dir.mkdir(parents=True, exist_ok=True)
    copied = {}
    for name, png in (("tcdaudio14", "scatter.png"), ("sisec08", "scatter.png"), ("ladder", "ladder.png")):
        for src, dst in ((work / name / png, eval_dir / f"{name}_{png}"),
                         (work / name / "items.csv", eval_dir / f"{name}_items.csv")):
            if src.is_file():
                shutil.copyfile(src, dst)
                copied[dst.name] = True

    args.load = load
    text = render(info, models, runs, codes, walls, summaries, mds, variants, copied, started, total_min, args)
    (docs / "EVALUATION.md").write_text(text, encoding="utf-8")
    print(f"wrote {docs / 'EVALUATION.md'} ({total_min:.1f} min; run outputs in {work})", file=sys.stderr)
    return 0 if all(c == 0 for c in codes.values()) else 1


def _cmd(argv: list[str], data: Path, work: Path) -> str:
    """The command as a user would type it, with the data and work folders shortened."""
    text = "deepaq " + " ".join(shlex.quote(a) for a in argv)
    return text.replace(str(data), "../shared/data").replace(str(work), "$WORK")


def _fmt(v, d=2):
    return "–" if v is None else f"{v:.{d}f}"


def render(info, models, runs, codes, walls, summaries, mds, variants, copied, started, total_min, args) -> str:
    """The markdown of docs/EVALUATION.md."""
    data = Path(args.data).resolve()
    work = Path(runs["ladder"][runs["ladder"].index("--out") + 1]).parent
    tcd_all = summaries["tcdaudio14"]["all"]
    sis_all, sis_deg = summaries["sisec08"]["all"], summaries["sisec08"].get("without_identity", {})
    tcd_deg = summaries["tcdaudio14"].get("without_identity", {})
    lm_sis, lm_sis9 = sis_all.get("logmel_l1", {}).get("overall", {}), sis_deg.get("logmel_l1", {}).get("overall", {})
    lm_tcd, lm_tcd9 = tcd_all.get("logmel_l1", {}).get("overall", {}), tcd_deg.get("logmel_l1", {}).get("overall", {})
    metric_infos = summaries["tcdaudio14"]["metrics"]
    peers_run = [m["name"] for m in metric_infos if m["kind"] == "peer"]
    peers_missing = [p for p, v in info["peers"].items() if v == "not installed"]
    L = []
    a = L.append
    a("# DeePAQ evaluation report")
    a("")
    a("Generated by `python tools/make_evaluation_report.py` on "
      f"{started.strftime('%Y-%m-%d %H:%M UTC')} ({total_min:.0f} min wall time). Every number below was "
      "measured in that run unless it is explicitly marked as quoted. Re-running the command regenerates "
      "this file and `docs/eval/`.")
    a("")
    from deepaq_core.model.registry import list_models

    entries = list_models()
    status = {e.name: e.status for e in entries}
    untrained = [m for m in models if status.get(m) != "trained"]
    missing = [e.name for e in entries if not e.available]
    note = ("> **Read this first.** DeePAQ models evaluated here: "
            + ", ".join(f"`{m}` ({status.get(m, '?')})" for m in models) + ".")
    if "compact" in untrained:
        note += (" The built-in `compact` model is **untrained (random weights, seed 0)**: its numbers show what a "
                 "randomly initialised log-mel + transformer network gives, not what DeePAQ can do; they are a "
                 "floor and a pipeline check.")
    elif untrained:
        note += " Untrained models' numbers are a floor and a pipeline check, not DeePAQ's quality."
    if missing:
        note += (" Not evaluated because their weights are not on this machine: "
                 + ", ".join(f"`{m}`" for m in missing) + ".")
    a(note)
    a("")
    a("## What was run")
    a("")
    a(f"- **Machine**: {info['cpu']}, {info['cores']} cores available to this process, {info['memory']} RAM, "
      f"GPU: {info['gpu']}; {info['os']}; Python {info['python']}, numpy {info['numpy']}, scipy {info['scipy']}, "
      f"torch {info['torch']} ({info['torch_threads']} threads). All metrics ran on the CPU.")
    a(f"- **DeePAQ models**: {', '.join(f'`{m}`' for m in models)} (every model `deepaq models` lists as available). "
      "The correlated value is the embedding **distance** (lower = better; the 0-100 score is a monotone map of it "
      "and is in the per-item CSVs).")
    a("- **Baselines** (always): `si_sdr` = SI-SDR after alignment (reference's native rate, mono, capped at 100 dB "
      "for identical signals); `logmel_l1` = aligned, loudness-normalised 64-band log-mel L1 distance at 24 kHz, "
      "mono (`deepaq_core.degrade.teacher.logmel_distance` after `prepare_pair` alignment).")
    pv = ", ".join(f"{p} {v}" for p, v in info["peers"].items())
    a(f"- **Peer metrics** (installed versions: {pv}): "
      + (", ".join(f"`{p}`" for p in peers_run) if peers_run else "none")
      + " on the two scored sets; ladder run: " + args.ladder_peers.replace(",", ", ") + ". "
      "ViSQOL = `visqol-python` (pure-Python port of ViSQOL v3.3.3, audio mode, 48 kHz, raw pair: it aligns "
      "itself); Zimtohrli and CDPAM get the pair aligned and loudness-matched by `prepare_pair` first "
      "(48 kHz and 22.05 kHz mono). CDPAM is left out of the ladder run: at about 3 s of CPU time per second "
      "of audio per signal it would take hours there."
      + (f" Not installed here: {', '.join(peers_missing)}." if peers_missing else ""))
    a("- **Statistics**: Pearson, Spearman and Kendall (tau-b) from `scipy.stats`, with 95 % percentile bootstrap "
      "intervals (2000 resamples of the items, seed 0; none below 5 items). Distances are negated first, so a "
      "positive correlation always means agreement (tables mark them ↓). RMSE after the ITU-T P.1401 **third-order "
      "monotonic polynomial** mapping (constrained to be non-decreasing, N - 4 degrees of freedom). Fisher-z mean = "
      "tanh of the size-weighted mean of atanh(per-group Pearson), over groups with at least 3 items (as the ODAQ "
      "benchmark averages per-class correlations).")
    a("")
    a("Commands (`$WORK` is a scratch folder; the report tool runs them in-process):")
    a("")
    a("```bash")
    a("python tools/make_evaluation_report.py        # everything below, then this file")
    for name in runs:
        a(_cmd(runs[name], data, work))
    a("```")
    a("")
    load = getattr(args, "load", {}) or {}
    if "start" in load and "end" in load:
        a(f"1-minute load average of the machine at the start / end of the run: {load['start']:.1f} / "
          f"{load['end']:.1f} on {info['cores']} cores (above the core count, other jobs competed for the CPU and "
          "the times below are inflated).")
    else:
        a("The machine's load during this run was not recorded; it was shared with other jobs (training, "
          "benchmarks), so the times below may be inflated.")
    a("")
    a("| run | exit code | wall time |")
    a("|---|---|---|")
    for name in runs:
        a(f"| {name} | {codes[name]} | {walls[name] / 60:.1f} min |")
    a("")

    a("## 1. tcdaudio14: agreement with ViSQOL v3's expected values")
    a("")
    a("10 pairs of music through AAC, MP3, Opus and low-pass filters (7-16 s, 48 kHz stereo), one of them "
      "the identity pair. The target is `visqol_v3_moslqo`, the ViSQOL v3 conformance value: **a metric's output, "
      "not listener scores**, so this is ladder-like agreement with ViSQOL, not validation. Groups: `codec`. "
      "With 9-10 items every interval is wide; differences between metrics of less than about 0.2 mean nothing here.")
    a("")
    a(demote(mds["tcdaudio14"]))
    a("")
    if "tcdaudio14_scatter.png" in copied:
        a("![tcdaudio14 scatter](eval/tcdaudio14_scatter.png)")
        a("")
    a("Per-item values: [`eval/tcdaudio14_items.csv`](eval/tcdaudio14_items.csv). Wall time per file:")
    a("")
    a(timing_table(summaries["tcdaudio14"], "all"))
    a("")

    a("## 2. sisec08: agreement with listeners (MUSHRA means)")
    a("")
    a("3 separated instrument targets x 3 separation systems + the 3 hidden references, 9.45 s, 44.1 kHz stereo "
      "(resampled to 48 kHz for ViSQOL and Zimtohrli). Target: `subjective_mean` (14 listeners, 0-100). Groups: "
      "`target`. The hidden references (score ~100, identical files) make every metric look better; the table "
      "without them is the honest one, and with 9 items its intervals are very wide. Per-group correlations rest "
      "on 3-4 items each; with 3 items a Pearson near ±1 is common by chance, so the Fisher-z column of the table "
      "without hidden references says next to nothing.")
    a("")
    a(demote(mds["sisec08"]))
    a("")
    if "sisec08_scatter.png" in copied:
        a("![sisec08 scatter](eval/sisec08_scatter.png)")
        a("")
    a("Per-item values: [`eval/sisec08_items.csv`](eval/sisec08_items.csv). Wall time per file:")
    a("")
    a(timing_table(summaries["sisec08"], "all"))
    a("")

    lad = summaries["ladder"]
    a("## 3. Generated ladder from the tcdaudio14 references")
    a("")
    a(f"Each of the {args.n_refs} tcdaudio14 "
      f"references, cut to its middle {args.excerpt_s:g} s, through every rung of the `{args.families}` ladders of "
      "`deepaq_core.degrade` (MP3 320-16 kbit/s with lame, Opus 128-12 kbit/s, low-pass 16-2 kHz), plus the clean "
      f"excerpt as rung 0: {lad['n_rows']} rows, one ladder group per reference and family. No listener "
      "scores: the known order of the rungs is the target. The top MP3/Opus rungs are near-transparent, so "
      "even a perfect metric of audibility need not order them; the low-pass ladder has no such excuse.")
    a("")
    a(demote(mds["ladder"]))
    a("")
    if "ladder_ladder.png" in copied:
        a("![ladder](eval/ladder_ladder.png)")
        a("")
    a("Per-item values: [`eval/ladder_items.csv`](eval/ladder_items.csv) (paths relative to the generated "
      "ladder, which is not committed; the command above regenerates it). Wall time per file:")
    a("")
    a(timing_table(lad, None))
    a("")

    a("## 4. The product owner's reference numbers for the log-mel baseline")
    a("")
    a("Given to us: the aligned, loudness-normalised 64-band log-mel L1 baseline measured **Pearson 0.86 on sisec08** "
      "and **Spearman 0.94 vs ViSQOL on tcdaudio14**. This run measures, for `logmel_l1`:")
    a("")
    a(f"- sisec08: Pearson {_fmt(lm_sis.get('pearson'))} over all {lm_sis.get('n')} rows, "
      f"{_fmt(lm_sis9.get('pearson'))} over the {lm_sis9.get('n')} rated degraded items.")
    a(f"- tcdaudio14: Spearman {_fmt(lm_tcd.get('spearman'))} over all {lm_tcd.get('n')} rows, "
      f"{_fmt(lm_tcd9.get('spearman'))} without the identity row.")
    a("")
    a("The same distance under variants of its definition (same files, same code, only the marked step changed):")
    a("")
    a("| set | variant | Pearson (all) | Spearman (all) | Pearson (no identity) | Spearman (no identity) |")
    a("|---|---|---|---|---|---|")
    for set_name, rows in variants.items():
        for v in rows:
            a(f"| {set_name} | {v['variant']} | {_fmt(v['pearson_all'])} | {_fmt(v['spearman_all'])} "
              f"| {_fmt(v['pearson_degraded'])} | {_fmt(v['spearman_degraded'])} |")
    a("")
    a("Whether a variant reproduces a reference number can be read off this table; where none does, the reference "
      "figure was measured with a definition or data we do not know (other files, other rows, another floor or "
      "band layout), and the numbers above are the ones to use.")
    a("")

    a("## 5. Published figures that frame the problem (not measured here)")
    a("")
    a("No published numbers are quoted here, because we could not check them against their sources from this "
      "machine. Where to find them:")
    a("")
    a("- **ODAQ** (Torcoli et al., *ODAQ: Open Dataset of Audio Quality*, ICASSP 2024, and the ODAQ GitHub "
      "repository): per-class and Fisher-z-averaged Pearson/Spearman of PEAQ, the 2f-model, ViSQOL v3 and others on "
      "MUSHRA scores of coded and processed music. This report's Fisher-z column follows that idea.")
    a("- **DeePAQ** (Jiang, Brendel, Delgado, Herre, 2025): the paper's tables compare DeePAQ with ViSQOL, PEAQ and "
      "2f-model variants on listening-test data.")
    a("- **ViSQOLAudio / ViSQOL v3** (Sloan et al., IEEE Trans. Broadcasting 2017; Chinen et al., QoMEX 2020) for "
      "ViSQOL's own validation on TCDAudio14 and other sets.")
    a("- **SEBASS-DB / SiSEC08** (Kastner & Herre, WASPAA 2019; IWAENC 2022) for metric correlations on "
      "source-separation listening tests.")
    a("")

    a("## 6. Caveats")
    a("")
    a("- Both scored sets are tiny (9-12 items). Bootstrap intervals on so few items are themselves unreliable "
      "(percentile intervals run narrow at small n); treat every correlation here as a smoke signal, not a ranking.")
    a("- tcdaudio14's target is ViSQOL's own output, so `visqol` agrees with it by construction (it reproduces "
      "the conformance values; see its row).")
    a("- Bitrate order need not be the order of audibility (libopus, for instance, lowers its coded audio bandwidth "
      "as the bitrate drops, trading bandwidth for fewer coding artifacts), so a codec ladder is a weaker target than "
      "the low-pass ladder, whose rungs are nested by construction. Look at the per-item CSV before blaming a metric "
      "for a codec ladder's ordering.")
    a("- sisec08's audio is the 44.1 kHz tutorial copy, close to but not exactly what the listeners heard "
      "(`../shared/data/README.md`).")
    a("- Timing: one run on this CPU, other processes possibly active; the setup column holds model loading and "
      "(ViSQOL) numba warm-up, excluded from the per-file times. A file's time includes decoding, resampling and "
      "alignment. DeePAQ models cache reference embeddings (and CDPAM its last few embeddings), so where several "
      "rows share a reference (the ladder) their per-file time is mostly the degraded file's. `benchmarks/bench_peers.py` measures speed and "
      "peak memory of each metric in isolation (docs/PERFORMANCE.md).")
    a("")
    a("## Running an evaluation yourself")
    a("")
    a("```bash")
    a("deepaq eval SET/manifest.csv --subjective-col mos --group-col condition --model all --out results/")
    a("deepaq eval SET/manifest.csv --model compact --model ~/models/my-bundle --peers visqol,zimtohrli")
    a("deepaq eval --ladder LADDER_DIR_OR_CSV              # columns reference, degraded, intensity, group")
    a("deepaq eval --make-ladder clean/*.flac --families mp3,lowpass --excerpt-s 6")
    a("deepaq eval NMR.csv --clean CLEAN_DIR               # rows without a reference: DeePAQ models only")
    a("```")
    a("")
    a("Outputs in `--out` (default `./deepaq_eval/`): `items.csv` (per item and metric: value, extras such as the "
      "0-100 score, seconds, error), `summary.md` (also printed), `summary.json`, and `scatter.png` or `ladder.png` "
      "(needs matplotlib). `--peers none` and `--model none` leave peers or models out; `--deepaq-output score` "
      "correlates the 0-100 score instead of the distance. Peers that are not installed are skipped with one line "
      "each. Exit code 2 if some file could not be scored (the `*_error` column says why).")
    a("")
    a("From Python (`deepaq_core.evaluation`): `manifest.load_manifest(...)` -> `ManifestRow`s; "
      "`stats.correlations`, `stats.bootstrap_ci`, `stats.fisher_z_mean`, `stats.fit_monotonic_mapping`, "
      "`stats.rmse_after_mapping`, `stats.ladder_agreement`; `runner.run_metrics` + `runner.evaluate` / "
      "`runner.evaluate_ladder` for whole runs.")
    a("")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
