#!/usr/bin/env python3
"""Speed and peak memory of DeePAQ scoring, per backbone (a benchmark script, not a test).

    python benchmarks/bench_speed.py [--seconds 30] [--memory-minutes 10] [--device cpu] [--quick]

Prints markdown tables:

1. Speed of scoring one reference + one degraded pair (both signals embedded; the reference
   embedding cache is cleared before every run) with the model already loaded, as a multiple of
   real time (pair duration / wall seconds), for the built-in ``compact`` model and a
   MERT-v1-95M-sized model with random weights; model load time separately.
2. Where the time of one MERT-sized pair goes (feature encoder, transformer, head, the rest).
3. Variants of the MERT-sized model: torch threads, ``chunk_s``, ``context_s``, batch size.
4. Peak memory (VmHWM of a fresh process, and ``ru_maxrss``) when scoring a long 48 kHz stereo
   pair from files with :meth:`Scorer.score`, one subprocess per measurement.

The MERT-sized model goes through the real loading path: a random ``HubertModel`` with MERT-v1-95M's
config is written as a local MERT-format checkpoint (``write_mert_checkpoint``), a bundle card points
at it (backbone ``{"type": "mert", "local_path": ...}``, head 13 x 768 -> 256), and ``Scorer(<bundle>)``
loads it. Random weights compute exactly as much as trained ones, so the timings hold for the real
model; the scores do not mean anything.

Test audio is synthetic and music-like (chords, bass, melody of harmonic tones, kick, noise bursts;
48 kHz stereo); the degraded signal is the reference low-passed at 7 kHz, plus noise at about
-40 dB, delayed by 2000 samples.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SR = 48000
DELAY = 2000  # samples at 48 kHz

# ----------------------------------------------------------------------------------------------
# Test audio
# ----------------------------------------------------------------------------------------------

_CHORDS = np.array([[57, 60, 64], [53, 57, 60], [48, 52, 55], [55, 59, 62]], dtype=np.float64)
_BASS = np.array([45, 41, 36, 43], dtype=np.float64)
_MELODY = np.array([76, 74, 72, 71, 72, 74, 76, 79, 77, 76, 74, 72, 71, 72, 74, 72], dtype=np.float64)
_NOISE = np.diff(np.random.default_rng(1234).normal(0.0, 1.0, SR + 1))  # fixed, high-passed table


def _hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _notes(t: np.ndarray, step: float, midi: np.ndarray, harmonics: list[float], decay: float) -> np.ndarray:
    """A note every ``step`` seconds (pitch ``midi[k]``), harmonic tone with an attack/decay envelope."""
    k = np.floor(t / step)
    local = t - k * step
    f0 = _hz(midi)
    env = np.minimum(local / 0.005, 1.0) * np.exp(-local / decay)
    out = np.zeros_like(t)
    for h, a in enumerate(harmonics):
        out += a * np.sin(2.0 * np.pi * f0 * (h + 1) * local)
    return out * env


def synth(n0: int, n: int) -> np.ndarray:
    """Samples ``[n0, n0 + n)`` of the reference, float32 [2, n] at 48 kHz (zero before sample 0).

    A deterministic function of the absolute sample index, so it can be rendered block by block.
    """
    idx = n0 + np.arange(n, dtype=np.int64)
    t = idx / SR
    bar = (np.floor(t / 2.0) % 4).astype(int)  # 2-second chords (Am F C G)
    left = np.zeros(n)
    right = np.zeros(n)
    for v in range(3):
        tone = _notes(t, 2.0, _CHORDS[bar, v], [1.0, 0.5, 0.3, 0.2, 0.1], 1.2)
        pan = 0.25 + 0.25 * v
        left += 0.10 * np.cos(pan * np.pi / 2) * tone
        right += 0.10 * np.sin(pan * np.pi / 2) * tone
    bass = _notes(t, 0.5, _BASS[bar], [1.0, 0.6, 0.2], 0.35)
    left += 0.25 * bass
    right += 0.25 * bass
    mel = _notes(t, 0.25, _MELODY[(np.floor(t / 0.25) % 16).astype(int)], [1.0, 0.4, 0.25, 0.15, 0.1, 0.05], 0.2)
    left += 0.06 * mel
    right += 0.14 * mel
    # kick every 0.5 s: pitch-swept sine
    lk = t - np.floor(t / 0.5) * 0.5
    kick = np.sin(2 * np.pi * (50 * lk + 1.8 * (1 - np.exp(-lk / 0.03)))) * np.exp(-lk / 0.12)
    left += 0.35 * kick
    right += 0.35 * kick
    # noise bursts (hi-hat) every 0.125 s, louder on the off-beats
    lh = t - np.floor(t / 0.125) * 0.125
    gain = np.where((np.floor(t / 0.125) % 2) == 1, 0.05, 0.025)
    hat = _NOISE[idx % SR] * np.exp(-lh / 0.015) * gain
    left += 0.8 * hat
    right += 1.2 * hat
    out = np.stack([left, right]).astype(np.float32)
    out[:, idx < 0] = 0.0
    return out


class Degrader:
    """Reference -> low-pass 7 kHz (4th-order Butterworth) + noise, delayed by ``DELAY`` samples."""

    def __init__(self, seed: int = 7) -> None:
        from scipy.signal import butter

        self.sos = butter(4, 7000.0, btype="low", fs=SR, output="sos")
        self.zi = np.zeros((2, self.sos.shape[0], 2))
        self.rng = np.random.default_rng(seed)

    def block(self, n0: int, n: int) -> np.ndarray:
        from scipy.signal import sosfilt

        x = synth(n0 - DELAY, n).astype(np.float64)
        for ch in range(2):
            x[ch], self.zi[ch] = sosfilt(self.sos, x[ch], zi=self.zi[ch])
        x += self.rng.normal(0.0, 0.003, x.shape)
        return x.astype(np.float32)


def make_pair(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """In-memory reference and degraded signals, [2, N] float32 each at 48 kHz."""
    n = int(round(seconds * SR))
    block = 10 * SR
    deg = Degrader()
    ref_parts, deg_parts = [], []
    for n0 in range(0, n, block):
        m = min(block, n - n0)
        ref_parts.append(synth(n0, m))
        deg_parts.append(deg.block(n0, m))
    return np.concatenate(ref_parts, axis=1), np.concatenate(deg_parts, axis=1)


def write_pair(folder: Path, seconds: float) -> tuple[Path, Path]:
    """Write the pair block by block: reference as 24-bit FLAC, degraded as 16-bit WAV."""
    import soundfile as sf

    n = int(round(seconds * SR))
    block = 10 * SR
    ref_path, deg_path = folder / "reference.flac", folder / "degraded.wav"
    deg = Degrader()
    with sf.SoundFile(ref_path, "w", SR, 2, subtype="PCM_24", format="FLAC") as fr, \
            sf.SoundFile(deg_path, "w", SR, 2, subtype="PCM_16", format="WAV") as fd:
        for n0 in range(0, n, block):
            m = min(block, n - n0)
            fr.write(synth(n0, m).T)
            fd.write(deg.block(n0, m).T)
    return ref_path, deg_path


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------


def build_mert_bundle(folder: Path, seed: int = 0) -> tuple[Path, int]:
    """A MERT-v1-95M-sized random model as a local MERT checkpoint plus a DeePAQ bundle folder.

    Returns the bundle folder (loadable with ``Scorer(<folder>)``) and the backbone parameter count.
    """
    import torch
    from transformers import HubertModel

    from deepaq_core.model.bundle import save_bundle
    from deepaq_core.model.head import EmbeddingHead, EmbeddingModel
    from deepaq_core.model.mert import MertBackbone, mert_95m_config, mert_config_to_hubert, write_mert_checkpoint

    cfg = mert_95m_config()
    torch.manual_seed(seed)
    hubert = HubertModel(mert_config_to_hubert(cfg)).eval()
    ckpt = write_mert_checkpoint(hubert, folder / "mert95m-random-checkpoint", cfg, fmt="safetensors")
    backbone = MertBackbone(hubert, sample_rate=24000, do_normalize=True, name="mert95m-random")
    head = EmbeddingHead(backbone.num_hidden_states, backbone.hidden_size, 256)
    model = EmbeddingModel(backbone, head)
    card = {
        "name": "mert95m-random",
        "version": "bench",
        "status": "untrained",
        "description": "MERT-v1-95M-sized HubertModel with random weights (benchmark only; scores are meaningless)",
        "backbone": {"type": "mert", "id": str(ckpt), "revision": None, "local_path": str(ckpt)},
        "sample_rate": 24000,
        "frame_rate": 75.0,
        "hop_length": 320,
        "layers": backbone.num_hidden_states,
        "embedding_dim": 256,
        "head": {"projection": True, "dim": 256},
        "lora": None,
        "score_mapping": {"type": "exp2", "d50": 0.1, "power": 1.0, "fitted_on": "benchmark placeholder"},
        "training": None,
        "results": None,
    }
    out = save_bundle(model, card, folder / "mert95m-random-bundle", include_backbone=False)
    n_params = sum(p.numel() for p in hubert.parameters())
    del model, backbone, hubert
    return out, n_params


# ----------------------------------------------------------------------------------------------
# Measurement helpers
# ----------------------------------------------------------------------------------------------


def machine_lines(device: str) -> list[str]:
    import torch

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kb = int(f.readline().split()[1])
            mem = f", {kb / 1024 ** 2:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = [
        f"- CPU: {cpu}; {os.cpu_count()} logical cores visible, {affinity} usable by this process{mem}",
        f"- Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"{platform.system()} {platform.release()}",
        f"- torch threads: {torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op (defaults)",
        f"- device: {device}",
    ]
    if device.startswith("cuda") and torch.cuda.is_available():
        lines.append(f"- GPU: {torch.cuda.get_device_name(torch.device(device))}")
    return lines


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def score_once(scorer, ref: np.ndarray, deg: np.ndarray, device: str):
    """Score the pair once from memory (reference cache cleared); wall seconds and the result."""
    from deepaq_core.audio import AudioBuffer

    scorer._cache.clear()  # embed the reference every time: one pair = two embedded signals
    _sync(device)
    t0 = time.perf_counter()
    result = scorer.score(AudioBuffer(ref, SR), AudioBuffer(deg, SR))
    _sync(device)
    return time.perf_counter() - t0, result


# Set from the command line: how long to wait for an idle machine, how much foreign load to accept.
WAIT_S = 120.0
MAX_OTHERS = 0.15
ATTEMPTS = 3  # at most ATTEMPTS x repeats timed runs per measurement


def measure(scorer, ref, deg, device: str, repeats: int) -> dict:
    """One warm-up, then ``repeats`` undisturbed runs; the median run and its timing parts.

    The machine may be shared. Before every run the machine must be idle (``wait_idle``); a run
    during which other processes used more than ``MAX_OTHERS`` of the CPUs is discarded and run
    again, up to ``ATTEMPTS x repeats`` runs in all. If too few runs were undisturbed, the
    ``repeats`` least disturbed ones are kept. The foreign load of the kept runs is reported.
    """
    wait_idle(WAIT_S)
    score_once(scorer, ref, deg, device)  # warm-up
    runs = []  # (wall, result, others)
    clean = 0
    for _ in range(max(1, ATTEMPTS) * repeats):
        wait_idle(WAIT_S)
        with CpuMeter() as cpu:
            wall, result = score_once(scorer, ref, deg, device)
        runs.append((wall, result, cpu.others))
        clean += not (cpu.others > MAX_OTHERS)
        if clean >= repeats:
            break
    ok = [r for r in runs if not (r[2] > MAX_OTHERS)]
    if len(ok) < repeats:
        ok = sorted(runs, key=lambda r: (r[2] if r[2] == r[2] else 0.0))[:repeats]
    ok.sort(key=lambda r: r[0])
    walls = [r[0] for r in ok]
    wall, result, _ = ok[(len(ok) - 1) // 2]  # median run (lower median for an even count)
    t = result.timings
    prep = t["reference_load_s"] + t["load_align_s"]
    emb = t["reference_embed_s"] + t["embed_s"]
    return {"wall_s": wall, "min_s": min(walls), "max_s": max(walls), "runs": walls,
            "prep_s": prep, "embed_s": emb, "rest_s": max(0.0, wall - prep - emb),
            "others": max(r[2] for r in ok), "discarded": len(runs) - len(ok), "distance": result.distance,
            "score": result.score, "lag": result.alignment.lag_native_samples}


def measure_paired(scorer, ref, deg, device: str, repeats: int, apply, base: dict, variant: dict) -> dict:
    """Interleaved runs of the base settings and a variant: B V, B V, ... (the first pair warms up).

    Both see the same machine conditions, so the per-pair ratio variant / base stays meaningful
    when the machine is shared. Pairs during which others used more than ``MAX_OTHERS`` of the
    CPUs are discarded and redone (at most ``ATTEMPTS x repeats`` pairs).
    """
    def run(settings):
        apply(settings)
        wait_idle(WAIT_S)
        with CpuMeter() as cpu:
            wall, result = score_once(scorer, ref, deg, device)
        return wall, result, cpu.others

    run(base), run(variant)  # warm-up pair
    pairs = []
    clean = 0
    for _ in range(max(1, ATTEMPTS) * repeats):
        b, v = run(base), run(variant)
        others = max(b[2], v[2])
        pairs.append((b, v, others))
        clean += not (others > MAX_OTHERS)
        if clean >= repeats:
            break
    ok = [p for p in pairs if not (p[2] > MAX_OTHERS)]
    if len(ok) < repeats:
        ok = sorted(pairs, key=lambda p: (p[2] if p[2] == p[2] else 0.0))[:repeats]
    ok.sort(key=lambda p: p[1][0])
    walls = [p[1][0] for p in ok]
    bwalls = sorted(p[0][0] for p in ok)
    ratios = sorted(p[1][0] / p[0][0] for p in ok)
    mid = ok[(len(ok) - 1) // 2][1]
    t = mid[1].timings
    return {"wall_s": mid[0], "min_s": min(walls), "max_s": max(walls), "runs": walls,
            "base_wall_s": bwalls[(len(bwalls) - 1) // 2], "base_runs": bwalls,
            "ratio": ratios[(len(ratios) - 1) // 2], "ratios": ratios,
            "embed_s": t["reference_embed_s"] + t["embed_s"], "others": max(p[2] for p in ok),
            "discarded": len(pairs) - len(ok), "distance": mid[1].distance, "score": mid[1].score}


class CpuMeter:
    """CPU time used by other processes while this one measures (the machine may be shared).

    ``others`` = (busy CPU-seconds of the whole machine from /proc/stat, steal included) minus this
    process's own CPU time, as a fraction of ``wall x logical CPUs``. NaN where /proc is unavailable.
    """

    _tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    @staticmethod
    def _stat() -> tuple[float, float] | None:
        try:
            with open("/proc/stat", encoding="utf-8") as f:
                v = [int(x) for x in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]  # user nice system irq softirq steal
        return busy / CpuMeter._tick, sum(v) / CpuMeter._tick

    def __enter__(self) -> "CpuMeter":
        self.s0, self.t0 = self._stat(), time.perf_counter()
        tm = os.times()
        self.own0 = tm.user + tm.system
        return self

    def __exit__(self, *exc) -> None:
        s1, wall = self._stat(), time.perf_counter() - self.t0
        tm = os.times()
        own = tm.user + tm.system - self.own0
        ncpu = os.cpu_count() or 1
        self.own_share = own / max(wall * ncpu, 1e-9)
        if self.s0 is None or s1 is None:
            self.others = float("nan")
        else:
            self.others = max(0.0, (s1[0] - self.s0[0]) - own) / max(wall * ncpu, 1e-9)


def wait_idle(max_wait_s: float, threshold: float = 0.10) -> float:
    """Wait (up to ``max_wait_s``) until other processes use < ``threshold`` of the CPUs for 1 s.

    Checked in two consecutive half-second windows.

    Returns the others' share in the last half-second window.
    """
    deadline = time.perf_counter() + max_wait_s
    quiet = 0
    while True:
        with CpuMeter() as m:
            time.sleep(0.5)
        quiet = quiet + 1 if not (m.others >= threshold) else 0  # NaN (cannot tell) counts as quiet
        if quiet >= 2 or time.perf_counter() >= deadline:
            return m.others


def others_cell(m: dict) -> str:
    cell = f"{m['others']:.0%}"
    return cell + (f" ({m['discarded']} redone)" if m.get("discarded") else "")


def fmt_x(x: float) -> str:
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


class ModuleTimer:
    """Wall time spent inside chosen modules (forward pre/post hooks; exact on the CPU)."""

    def __init__(self, modules: dict, device: str) -> None:
        self.total = {name: 0.0 for name in modules}
        self.device = device
        self.handles = []
        for name, mod in modules.items():
            self.handles.append(mod.register_forward_pre_hook(self._pre(name)))
            self.handles.append(mod.register_forward_hook(self._post(name)))
        self._start: dict[str, float] = {}

    def _pre(self, name):
        def hook(module, args):
            _sync(self.device)
            self._start[name] = time.perf_counter()
        return hook

    def _post(self, name):
        def hook(module, args, output):
            _sync(self.device)
            self.total[name] += time.perf_counter() - self._start.pop(name)
        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


# ----------------------------------------------------------------------------------------------
# Memory child
# ----------------------------------------------------------------------------------------------


def _vm_mib(field: str = "VmHWM") -> float:
    """``VmHWM`` (peak resident set) or ``VmRSS`` (current) of this process, MiB; NaN without /proc."""
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _snapshot() -> dict:
    return {"hwm": _vm_mib("VmHWM"), "rss": _vm_mib("VmRSS"), "maxrss": _maxrss_mib()}


def _maxrss_mib() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024.0 if sys.platform != "darwin" else r / 1024.0 ** 2


def memory_child(args: argparse.Namespace) -> None:
    """Run in a fresh process: load the model, score the files once, print one JSON line."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from deepaq_core.scoring import Scorer, ScoreSettings

    base = _snapshot()
    t0 = time.perf_counter()
    kw = {}
    if args.chunk_s is not None:
        kw["chunk_s"] = args.chunk_s
    if args.context_s is not None:
        kw["context_s"] = args.context_s
    scorer = Scorer(None if args.model == "compact" else args.model, device=args.device, settings=ScoreSettings(**kw))
    if args.batch:
        scorer.loaded.batch_size = args.batch
    load_s = time.perf_counter() - t0
    loaded = _snapshot()
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    with CpuMeter() as cpu:
        result = scorer.score(args.ref, args.deg)
    score_s = time.perf_counter() - t0
    out = {
        "others": cpu.others,
        "imports": base, "loaded": loaded, "scored": _snapshot(),
        "load_s": load_s, "score_s": score_s, "duration_s": result.reference.duration_s,
        "lag_native": result.alignment.lag_native_samples, "threads": torch.get_num_threads(),
        "batch": scorer.loaded.batch_size,
    }
    if args.device.startswith("cuda"):
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    print("MEMORY-RESULT " + json.dumps(out), flush=True)


def run_memory_child(model: str, ref: Path, deg: Path, device: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", "--model", model,
           "--ref", str(ref), "--deg", str(deg), "--device", device]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("MEMORY-RESULT "):
            return json.loads(line[len("MEMORY-RESULT "):])
    raise RuntimeError(f"memory child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


# ----------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------


def variant_grid(device: str, default_threads: int, quick: bool) -> list[dict]:
    """Settings tried for the MERT-sized model (one dict per row)."""
    if quick:
        return [dict(threads=default_threads, chunk_s=5.0, context_s=0.5, batch=2,
                     precision="bf16" if device == "cpu" else "fp32")]
    rows = []
    if device == "cpu":
        for t in sorted({1, default_threads}):
            if t != default_threads:
                rows.append(dict(threads=t, chunk_s=10.0, context_s=1.0, batch=1, precision="fp32"))
        batches = (1, 2)
    else:
        batches = (1, 8)
    for batch in batches:
        for chunk in (5.0, 10.0, 20.0):
            for ctx in (0.5, 1.0):
                rows.append(dict(threads=default_threads, chunk_s=chunk, context_s=ctx, batch=batch, precision="fp32"))
    # Precision: CPU bf16 autocast is not a library option today (LoadedModel disables autocast on the
    # CPU); it is tried by overriding the instance's _autocast. On CUDA the library default is bf16.
    if device == "cpu":
        for chunk in (10.0, 5.0):
            rows.append(dict(threads=default_threads, chunk_s=chunk, context_s=1.0 if chunk == 10.0 else 0.5,
                             batch=1, precision="bf16"))
    else:
        rows.append(dict(threads=default_threads, chunk_s=10.0, context_s=1.0, batch=8, precision="bf16"))
    return rows


def _set_precision(loaded, device: str, precision: str) -> None:
    import torch

    if device == "cpu":
        if precision == "bf16":
            loaded._autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)
        else:
            loaded.__dict__.pop("_autocast", None)
    else:
        loaded.precision = "bf16" if precision == "bf16" else "fp32"


def main(argv: list[str] | None = None) -> int:
    global WAIT_S, MAX_OTHERS, ATTEMPTS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0, help="pair duration for the speed tables (default 30)")
    p.add_argument("--memory-minutes", type=float, default=10.0, help="pair duration for the memory table (default 10)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default cpu)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up (default 3)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run, about a minute on 2 cores: 3 s pair, 6 s memory pair, 1 run after the warm-up, "
                        "one settings row")
    p.add_argument("--no-variants", action="store_true", help="skip the MERT-sized settings grid")
    p.add_argument("--no-memory", action="store_true", help="skip the memory table")
    p.add_argument("--no-mert", action="store_true", help="compact model only")
    p.add_argument("--max-wait", type=float, default=120.0,
                   help="seconds to wait for other processes to go quiet before each measurement (default 120)")
    p.add_argument("--max-others", type=float, default=0.15,
                   help="re-measure (up to 3 attempts) when other processes used more than this share of the "
                        "CPUs during a measurement (default 0.15)")
    p.add_argument("--sections", default="speed,profile,variants,memory",
                   help="comma-separated subset of speed,profile,variants,memory (default: all)")
    p.add_argument("--grid", default=None,
                   help="settings rows for the variants table instead of the built-in grid: "
                        "'threads,chunk_s,context_s,batch,precision;...' e.g. '2,20,0.5,1,fp32;2,10,1,1,bf16'")
    p.add_argument("--json", type=Path, help="also write the raw numbers here")
    # internal: one memory measurement in a fresh process
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--ref", help=argparse.SUPPRESS)
    p.add_argument("--deg", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--chunk-s", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--context-s", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.memory_child:
        memory_child(args)
        return 0
    if args.quick:  # a smoke run: its numbers are not for reporting
        args.seconds = min(args.seconds, 3.0)
        args.memory_minutes = min(args.memory_minutes, 0.1)
        args.max_wait = min(args.max_wait, 1.0)
        args.repeats = 1
        ATTEMPTS = 1
    WAIT_S, MAX_OTHERS = args.max_wait, args.max_others
    sections = {x.strip() for x in args.sections.split(",") if x.strip()}
    unknown = sections - {"speed", "profile", "variants", "memory"}
    if unknown:
        p.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    grid = None
    if args.grid:
        grid = []
        for item in args.grid.split(";"):
            t, c, x, b, prec = (v.strip() for v in item.split(","))
            if prec not in ("fp32", "bf16"):
                p.error(f"--grid precision must be fp32 or bf16, not {prec!r}")
            grid.append(dict(threads=int(t), chunk_s=float(c), context_s=float(x), batch=int(b), precision=prec))

    import torch

    from deepaq_core.model.device import resolve_device
    from deepaq_core.scoring import Scorer, ScoreSettings

    device = str(resolve_device(args.device))
    default_threads = torch.get_num_threads()
    raw: dict = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    t_start = time.perf_counter()

    print("## Machine\n")
    print("\n".join(machine_lines(device)))
    print(f"- command: `python benchmarks/bench_speed.py {' '.join(sys.argv[1:])}`".rstrip())
    print()
    print("\"others' CPU\" columns: the largest share of all CPUs that other processes used during any "
          "kept timed run (/proc/stat busy time minus this process's CPU time); the machine may be shared. "
          f"Every timed run starts only after the machine was idle for 1 s (waiting up to {WAIT_S:g} s); a "
          f"run during which others used more than {MAX_OTHERS:.0%} is discarded and redone (at most "
          f"{ATTEMPTS} x the runs asked for; \"redone\" counts them).\n")

    ref, deg = make_pair(args.seconds)
    dur = ref.shape[1] / SR

    with tempfile.TemporaryDirectory(prefix="deepaq-bench-") as tmp:
        tmp = Path(tmp)
        models: list[tuple[str, str]] = [("compact", "compact"), ("compact-untrained", "compact-untrained")]
        if not args.no_mert:
            try:
                t0 = time.perf_counter()
                bundle, n_params = build_mert_bundle(tmp)
                print(f"(built the MERT-sized random checkpoint + bundle: {n_params / 1e6:.1f} M backbone "
                      f"parameters, {time.perf_counter() - t0:.1f} s)\n", flush=True)
                models.append(("MERT-95M-sized (random)", str(bundle)))
            except ImportError as exc:
                print(f"(MERT-sized model skipped: {exc})\n")

        # -- 1. speed per backbone ----------------------------------------------------------
        speed: dict[str, dict] = {}
        scorers = {}
        mert_label = next((lab for lab, _ in models if not lab.startswith("compact")), None)
        for label, spec in models:
            if "speed" not in sections and (label.startswith("compact") or not sections & {"profile", "variants"}):
                continue
            wait_idle(WAIT_S)
            t0 = time.perf_counter()
            scorer = Scorer(None if spec == "compact" else spec, device=device)
            load_s = time.perf_counter() - t0
            scorers[label] = scorer
            # The defaults' distance is the reference for the variants table, so measure it in any case.
            m = measure(scorer, ref, deg, device, args.repeats)
            m["load_s"] = load_s
            m["batch"] = scorer.loaded.batch_size
            speed[label] = m
            print(f"(measured {label}: median {m['wall_s']:.2f} s per pair, others' CPU {m['others']:.0%})", flush=True)
        raw["speed"] = speed
        if "speed" in sections:
            base = speed["compact"]["wall_s"]
            s = ScoreSettings()
            print(f"\n## 1. Speed: one {dur:g} s pair (reference + degraded embedded), model loaded\n")
            print(f"Library defaults: chunk_s={s.chunk_s:g}, context_s={s.context_s:g}, torch threads "
                  f"{default_threads}, batch {speed['compact']['batch']}. Median of {args.repeats} runs after one "
                  "warm-up; x real time = pair duration / wall time; time vs compact = wall / compact's wall in "
                  "this run; the time parts are those of the median run. Input: in-memory 48 kHz stereo buffers "
                  "(resampled to each model's rate and downmixed by the Scorer, as files would be).\n")
            rows = []
            for label, m in speed.items():
                rows.append([label, f"{m['wall_s']:.2f}", f"{m['min_s']:.2f}-{m['max_s']:.2f}",
                             fmt_x(dur / m["wall_s"]), f"{m['wall_s'] / base:.1f}", f"{m['prep_s']:.2f}",
                             f"{m['embed_s']:.2f}", f"{m['rest_s']:.2f}", f"{m['load_s']:.2f}", others_cell(m)])
            print(table(["backbone", "wall s (median)", "range s", "x real time", "time vs compact",
                         "load+resample+align s", "embed s (both)", "rest s", "model load s (first, in-process)",
                         "others' CPU"], rows))
            print(flush=True)

        # -- 2. where the time goes (MERT-sized) ---------------------------------------------
        if mert_label is not None and "profile" in sections:
            scorer = scorers[mert_label]
            model = scorer.loaded.model
            hub = model.backbone.hubert
            layer_mods = {f"layer{i}": layer for i, layer in enumerate(hub.encoder.layers)}
            timed = {"conv feature encoder": hub.feature_extractor, "feature projection": hub.feature_projection,
                     "positional conv": hub.encoder.pos_conv_embed, "embedding head": model.head,
                     "whole model forward": model, **layer_mods}
            best = None
            for attempt in range(ATTEMPTS):
                wait_idle(WAIT_S)
                score_once(scorer, ref, deg, device)  # warm
                timer = ModuleTimer(timed, device)
                try:
                    with CpuMeter() as cpu:
                        wall, _ = score_once(scorer, ref, deg, device)
                finally:
                    timer.remove()
                if best is None or not (cpu.others >= best[2]):
                    best = (wall, dict(timer.total), cpu.others)
                if not (cpu.others > MAX_OTHERS):
                    break
            wall, tot, others = best
            layers_s = sum(tot[k] for k in layer_mods)
            model_s = tot["whole model forward"]
            rows = [
                ["conv feature encoder (7 convs, GroupNorm, GELU)", tot["conv feature encoder"]],
                ["feature projection (LayerNorm + linear)", tot["feature projection"]],
                ["positional conv embedding (grouped conv, kernel 128)", tot["positional conv"]],
                ["transformer layers (12)", layers_s],
                ["embedding head", tot["embedding head"]],
            ]
            inner = sum(r[1] for r in rows)
            rows.append(["rest of the model forward (input normalisation, encoder LayerNorm, hidden-state list)",
                         max(0.0, model_s - inner)])
            rows.append(["outside the model forward (resample, align, loudness, hidden-state stacking and copies, "
                         "layer bins, result)", wall - model_s])
            out_rows = [[name, f"{sec:.2f}", f"{100 * sec / wall:.0f}%"] for name, sec in rows]
            out_rows.append(["**total wall**", f"**{wall:.2f}**", "100%"])
            raw["profile"] = {"wall_s": wall, "modules": tot, "layers_s": layers_s, "others": others}
            print(f"\n## 2. Where the time goes: one {dur:g} s pair, {mert_label}, library defaults\n")
            print(f"One run after a warm-up (the least disturbed of up to {ATTEMPTS}), timed with forward hooks "
                  f"(the hooks themselves cost nothing measurable); others' CPU {others:.0%}.\n")
            print(table(["part", "seconds", "share"], out_rows))
            print(flush=True)

        # -- 3. variants (MERT-sized) ----------------------------------------------------------
        if mert_label is not None and "variants" in sections and not args.no_variants:
            scorer = scorers[mert_label]
            loaded = scorer.loaded
            saved = (scorer.settings, loaded.batch_size, loaded.precision)
            dflt = ScoreSettings()
            base = dict(threads=default_threads, chunk_s=dflt.chunk_s, context_s=dflt.context_s,
                        batch=saved[1], precision="fp32" if device == "cpu" else "bf16")

            def apply(v: dict) -> None:
                torch.set_num_threads(v["threads"])
                scorer.settings = ScoreSettings(chunk_s=v["chunk_s"], context_s=v["context_s"])
                loaded.batch_size = v["batch"]
                _set_precision(loaded, device, v["precision"])

            var_rows, raw["variants"] = [], []
            ref_distance = speed[mert_label]["distance"]
            try:
                for v in grid or variant_grid(device, default_threads, args.quick):
                    m = measure_paired(scorer, ref, deg, device, args.repeats, apply, base, v)
                    core = round(v["chunk_s"] * 75)
                    overhead = (core + 2 * round(v["context_s"] * 75)) / core
                    raw["variants"].append({**v, **m})
                    var_rows.append([str(v["threads"]), f"{v['chunk_s']:g}", f"{v['context_s']:g}", str(v["batch"]),
                                     v["precision"], f"{overhead:.2f}", f"{m['wall_s']:.2f}",
                                     f"{m['min_s']:.2f}-{m['max_s']:.2f}", fmt_x(dur / m["wall_s"]),
                                     f"{m['base_wall_s']:.2f}", f"{m['ratio']:.2f}",
                                     f"{m['distance'] - ref_distance:+.4f}", others_cell(m)])
                    print(f"(variant {v}: median {m['wall_s']:.2f} s, defaults {m['base_wall_s']:.2f} s, ratio "
                          f"{m['ratio']:.2f}, others' CPU {m['others']:.0%})", flush=True)
            finally:
                torch.set_num_threads(default_threads)
                loaded.__dict__.pop("_autocast", None)
                scorer.settings, loaded.batch_size, loaded.precision = saved
            print(f"\n## 3. {mert_label}: settings, one {dur:g} s pair\n")
            print("Each row is measured interleaved with the library defaults (threads "
                  f"{base['threads']}, chunk_s {base['chunk_s']:g}, context_s {base['context_s']:g}, batch "
                  f"{base['batch']}, {base['precision']}): one warm-up pair, then {args.repeats} pairs (defaults, row); "
                  "\"time vs defaults\" is the median per-pair ratio, which stays comparable when the machine is "
                  "shared. Frames computed per kept frame = (chunk + 2 x context) / chunk. \"distance change\" = "
                  "the pair's global embedding distance minus the one with the defaults (table 1); with random "
                  "weights it only shows that a setting changes the numbers, not by how much a trained model's "
                  "would.\n")
            print(table(["torch threads", "chunk_s", "context_s", "batch", "precision", "frames computed / kept",
                         "wall s (median)", "range s", "x real time", "defaults wall s (same runs)",
                         "time vs defaults", "distance change", "others' CPU"], var_rows))
            print(flush=True)

        scorers.clear()

        # -- 4. memory ---------------------------------------------------------------------
        if "memory" in sections and not args.no_memory:
            minutes = args.memory_minutes
            t0 = time.perf_counter()
            ref_path, deg_path = write_pair(tmp, minutes * 60.0)
            sizes = f"{ref_path.stat().st_size / 2 ** 20:.0f} MiB FLAC + {deg_path.stat().st_size / 2 ** 20:.0f} MiB WAV"
            print(f"\n(wrote the {minutes:g}-minute pair, {sizes}, in {time.perf_counter() - t0:.1f} s)", flush=True)
            mem_rows, raw["memory"] = [], {}
            for label, spec in models:
                wait_idle(WAIT_S)
                r = run_memory_child(spec, ref_path, deg_path, device)
                raw["memory"][label] = r
                row = [label, f"{r['imports']['hwm']:.0f}", f"{r['loaded']['hwm']:.0f}", f"{r['loaded']['rss']:.0f}",
                       f"{r['scored']['hwm']:.0f}",
                       ("<= " if r["scored"]["hwm"] <= r["loaded"]["hwm"] + 1 else "")
                       + f"{r['scored']['hwm'] - r['loaded']['rss']:.0f}",
                       f"{r['scored']['maxrss']:.0f}",
                       f"{r['load_s']:.2f}", f"{r['score_s']:.1f}", fmt_x(r["duration_s"] / r["score_s"]),
                       f"{r['others']:.0%}"]
                if device.startswith("cuda"):
                    row.append(f"{r.get('cuda_peak_mib', float('nan')):.0f}")
                mem_rows.append(row)
                print(f"(memory {label}: peak {r['scored']['hwm']:.0f} MiB)", flush=True)
            headers = ["backbone", "peak after imports MiB", "peak after model load MiB", "resident after load MiB",
                       "peak at the end MiB", "end peak minus resident after load MiB", "ru_maxrss MiB", "model load s (fresh process)", "score s (from files)",
                       "x real time", "others' CPU"]
            if device.startswith("cuda"):
                headers.append("CUDA peak allocated MiB")
            print(f"\n## 4. Peak memory: one {minutes:g}-minute 48 kHz stereo pair scored from files "
                  "(fresh process per row)\n")
            print(f"Reference: 24-bit FLAC, degraded: 16-bit WAV ({sizes}); `Scorer(model).score(ref_path, deg_path)` "
                  "with library defaults (mono downmix), one run, no warm-up. \"peak\" columns are VmHWM (peak "
                  "resident set, /proc/self/status) of the child process read after imports, after model load and "
                  "after scoring; \"resident after load\" is VmRSS then (the model's steady footprint, without "
                  "the loading transient), so the difference bounds what scoring itself needs (marked <= when scoring never exceeded the "
                  "loading peak). ru_maxrss is printed for comparison only: on Linux a child started by "
                  "subprocess keeps its parent's peak as a floor (exec keeps the old address space's maximum), "
                  "so it can show the benchmark parent's peak rather than the child's.\n")
            print(table(headers, mem_rows))
            print(flush=True)

    print(f"\n(total benchmark time {time.perf_counter() - t_start:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
