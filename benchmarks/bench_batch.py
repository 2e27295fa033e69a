#!/usr/bin/env python3
"""Corpus-scale batch scoring: worker processes, kill -9 + resume, Dask overhead (a benchmark, not a test).

    python benchmarks/bench_batch.py [--sections workers,kill,cluster] [--pairs 40] [--seconds 10]

Prints markdown tables:

1. ``workers``: ``deepaq batch --workers 2`` against one process (``--workers 1``) on the same
   corpus of distinct 10 s 48 kHz stereo pairs (reference 24-bit FLAC, degraded 16-bit WAV), built-in
   compact model, CPU. Each run is a whole ``deepaq`` process (start-up, worker start and model
   loads included); runs alternate between the two. Rows/s = pairs / wall seconds. "Marginal" rows/s
   comes from two corpus sizes (``--pairs`` and a quarter of it): the extra pairs over the extra
   seconds, i.e. the rate once the start-up is paid.
2. ``kill``: a batch of ``--kill-pairs`` pairs is killed with SIGKILL at random moments, resumed with
   ``--resume`` after each kill, until it completes; the final file is compared byte for byte with
   an uninterrupted run (the results rows have no timing columns). Half the trials use 2 workers; the
   table also counts worker processes still alive after the driver was killed.
4. ``overhead``: the engines' own cost per pair, with pairs that fail at once (missing files).
3. ``cluster``: a local Dask cluster (2 worker processes, 1 thread each) against the plain run on the
   same corpus, in the same session; and the engine's cost per pair at equal compute (1 worker, 1
   torch thread, model loaded) against an in-process Scorer with 1 torch thread.

The machine may be shared: every table states the other processes' share of the CPUs during each
run (/proc/stat busy time minus this process and its children).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_speed import SR, Degrader, synth, table  # noqa: E402 - the same synthetic music as bench_speed


# -- corpus ------------------------------------------------------------------------------------
def write_corpus(folder: Path, pairs: int, seconds: float) -> Path:
    """``pairs`` distinct pairs (pair k is the synthetic piece from k x seconds on) and pairs.csv."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * SR))
    rows = []
    for k in range(pairs):
        ref, deg = folder / f"ref{k:03d}.flac", folder / f"deg{k:03d}.wav"
        if not (ref.exists() and deg.exists()):
            sf.write(ref, synth(k * n, n).T, SR, subtype="PCM_24", format="FLAC")
            sf.write(deg, Degrader(seed=k).block(k * n, n).T, SR, subtype="PCM_16", format="WAV")
        rows.append([ref.name, deg.name, f"pair{k:03d}"])
    listing = folder / f"pairs{pairs}.csv"
    with open(listing, "w", newline="") as f:
        csv.writer(f).writerows([["reference", "degraded", "id"], *rows])
    return listing


# -- measuring ---------------------------------------------------------------------------------
class Meter:
    """Wall time, and the CPU share of other processes: /proc/stat busy seconds minus this
    process's and its finished children's CPU seconds, over wall x CPUs (NaN without /proc)."""

    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    @classmethod
    def busy(cls) -> float | None:
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / cls.tick

    def __init__(self, extra_own=None) -> None:
        self.extra_own = extra_own  # callable: CPU seconds of processes of ours that are not children

    def __enter__(self) -> Meter:
        self.b0, self.t0, self.c0 = self.busy(), time.perf_counter(), self._own()
        return self

    def _own(self) -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system + (self.extra_own() if self.extra_own else 0.0)

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.t0
        own = self._own() - self.c0
        b1 = self.busy()
        ncpu = os.cpu_count() or 1
        self.own_share = own / max(self.wall * ncpu, 1e-9)
        self.others = float("nan") if self.b0 is None or b1 is None else \
            max(0.0, (b1 - self.b0) - own) / max(self.wall * ncpu, 1e-9)


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")])
    return e


def deepaq(*argv, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "deepaq_core.cli", "batch", *map(str, argv)]
    r = subprocess.run(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"deepaq failed ({r.returncode}): {r.stderr.strip()}")
    return r


def pct(x: float) -> str:
    return "n/a" if x != x else f"{x:.0%}"


def loadavg() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


# -- 1. workers --------------------------------------------------------------------------------
def section_workers(folder: Path, args) -> None:
    big = write_corpus(folder, args.pairs, args.seconds)
    small = write_corpus(folder, max(2, args.pairs // 4), args.seconds)
    out = folder / "out.csv"
    runs: dict[tuple, list] = {}
    reference = None
    print(f"### `--workers 2` vs one process: {args.pairs} pairs of {args.seconds:g} s (and {max(2, args.pairs // 4)} "
          f"for the marginal rate), load average before: {loadavg()}\n", flush=True)
    for rep in range(args.repeats):
        for listing in (small, big):
            for workers in (1, 2):
                with Meter() as m:
                    deepaq("--batch-input-csv", listing, "--results-csv", out, "--overwrite", "--device", "cpu",
                           "--workers", workers)
                runs.setdefault((listing, workers), []).append(m)
                if listing == big:
                    data = out.read_bytes()
                    if workers == 1:
                        reference = data
                    elif reference is not None and data != reference:
                        raise SystemExit("--workers 2 wrote other results than one process")
                print(f"(rep {rep + 1}: {listing.name} workers={workers}: {m.wall:.2f} s, others' CPU "
                      f"{pct(m.others)})", file=sys.stderr, flush=True)
    n_big, n_small = args.pairs, max(2, args.pairs // 4)
    rows, rate = [], {}
    for workers in (1, 2):
        wb = [m.wall for m in runs[(big, workers)]]
        ws = [m.wall for m in runs[(small, workers)]]
        marginal = [(n_big - n_small) / (b - s) for b, s in zip(wb, ws)]
        rate[workers] = (n_big / statistics.median(wb), statistics.median(marginal))
        others = [m.others for m in runs[(big, workers)] + runs[(small, workers)]]
        cores = [m.own_share * (os.cpu_count() or 1) for m in runs[(big, workers)]]
        rows.append([str(workers), f"{statistics.median(wb):.2f}", f"{min(wb):.2f}-{max(wb):.2f}",
                     f"{rate[workers][0]:.2f}", f"{rate[workers][1]:.2f}",
                     f"{rate[workers][0] * args.seconds:.0f}x", f"{statistics.median(cores):.2f}",
                     f"{pct(min(others))}-{pct(max(others))}"])
    print(table(["workers", f"wall s ({n_big} pairs, median)", "range s", "rows/s (whole run)",
                 "rows/s (marginal)", "x real time", "cores the run got (median)", "others' CPU"], rows))
    paired = [a.wall / b.wall for a, b in zip(runs[(big, 1)], runs[(big, 2)])]
    print(f"\n--workers 2 / one process: {rate[2][0] / rate[1][0]:.2f}x rows/s over the whole run (medians), "
          f"{rate[2][1] / rate[1][1]:.2f}x marginal; run by run (adjacent runs): "
          f"{', '.join(f'{x:.2f}x' for x in paired)}. Results identical: yes. Load average after: {loadavg()}\n",
          flush=True)


# -- 2. kill -9 + resume -----------------------------------------------------------------------
def children(pid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def section_kill(folder: Path, args) -> None:
    listing = write_corpus(folder, args.kill_pairs, args.kill_seconds)
    full = folder / "full.csv"
    with Meter() as m:
        deepaq("--batch-input-csv", listing, "--results-csv", full, "--overwrite", "--device", "cpu")
    expected = full.read_bytes()
    t_full = m.wall
    print(f"### kill -9 at random moments, then --resume: {args.kill_pairs} pairs of {args.kill_seconds:g} s; "
          f"an uninterrupted run took {t_full:.1f} s (others' CPU {pct(m.others)})\n", flush=True)
    rng = random.Random(args.seed)
    rows = []
    for trial in range(args.trials):
        workers = 2 if trial % 2 else 1
        out = folder / f"killed{trial}.csv"
        partial = Path(str(out) + ".partial")
        for p in (out, partial):
            p.unlink(missing_ok=True)
        kills, orphans, runs = [], 0, 0
        with Meter() as m:
            while True:
                extra = ["--resume"] if runs else []
                runs += 1
                cmd = [sys.executable, "-m", "deepaq_core.cli", "batch", "--batch-input-csv", str(listing),
                       "--results-csv", str(out), "--device", "cpu", "--workers", str(workers), *extra]
                proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                if len(kills) < args.kills:
                    delay = rng.uniform(0.3, max(0.5, 0.8 * t_full))
                    kids: set[int] = set()
                    deadline = time.perf_counter() + delay
                    while time.perf_counter() < deadline and proc.poll() is None:
                        kids.update(children(proc.pid))
                        time.sleep(0.02)
                    if proc.poll() is None:
                        kids.update(children(proc.pid))
                        os.kill(proc.pid, signal.SIGKILL)
                        proc.wait()
                        proc.stderr.close()
                        before = partial.read_bytes().count(b"\n") - 1 if partial.exists() else 0
                        time.sleep(2.0)  # worker processes notice their driver is gone
                        left = [p for p in kids if alive(p)]
                        orphans += len(left)
                        for p in left:
                            os.kill(p, signal.SIGKILL)
                        kills.append(max(0, before))
                        continue
                proc.communicate()
                if proc.returncode not in (0,):
                    raise SystemExit(f"resume failed ({proc.returncode}): {proc.stderr}")
                break
        data = out.read_bytes()
        got = list(csv.reader(data.decode().splitlines()))[1:]
        ids = [r[2] for r in got]
        lost = args.kill_pairs - len(set(ids))
        dups = len(ids) - len(set(ids))
        rows.append([str(trial + 1), str(workers), ", ".join(map(str, kills)) or "(finished first)", str(runs),
                     str(lost), str(dups), "yes" if data == expected else "NO", str(orphans), pct(m.others)])
        print(f"(trial {trial + 1} done)", file=sys.stderr, flush=True)
    print(table(["trial", "workers", "rows on disk at each kill", "runs", "lost rows", "duplicate rows",
                 "file identical to uninterrupted", "worker processes left after kill", "others' CPU"], rows))
    print()


# -- 3. Dask cluster ---------------------------------------------------------------------------
def section_cluster(folder: Path, args) -> None:
    import psutil
    from distributed import Client, LocalCluster

    listing = write_corpus(folder, args.pairs, args.seconds)
    out = folder / "cluster.csv"
    print(f"### Dask: a local cluster against the plain run, {args.pairs} pairs of {args.seconds:g} s, "
          f"load average before: {loadavg()}\n", flush=True)

    def workers_cpu(cluster) -> float:
        total = 0.0
        for w in cluster.workers.values():
            try:
                proc = psutil.Process(w.process.process.pid)
                for p in [proc, *proc.children(recursive=True)]:
                    c = p.cpu_times()
                    total += c.user + c.system
            except (psutil.Error, AttributeError):
                pass
        return total

    rows = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster:
        deepaq("--batch-input-csv", listing, "--results-csv", out, "--overwrite", "--device", "cpu",
               "--cluster", cluster.scheduler_address)  # warm-up: the workers load the model
        walls: dict[str, list] = {"plain (1 process)": [], "Dask, 2 workers x 1 thread": []}
        reference = None
        for rep in range(args.repeats):
            for name in walls:
                extra = ["--cluster", cluster.scheduler_address] if name.startswith("Dask") else []
                with Meter(extra_own=lambda: workers_cpu(cluster)) as m:
                    deepaq("--batch-input-csv", listing, "--results-csv", out, "--overwrite", "--device", "cpu",
                           *extra)
                data = out.read_bytes()
                if reference is None:
                    reference = data
                elif data != reference:
                    raise SystemExit("the cluster wrote other results than the plain run")
                walls[name].append(m)
        for name, ms in walls.items():
            w = [m.wall for m in ms]
            rows.append([name, f"{statistics.median(w):.2f}", f"{min(w):.2f}-{max(w):.2f}",
                         f"{args.pairs / statistics.median(w):.2f}",
                         f"{pct(min(m.others for m in ms))}-{pct(max(m.others for m in ms))}"])
    print(table(["run (whole deepaq process)", f"wall s ({args.pairs} pairs, median)", "range s", "rows/s",
                 "others' CPU"], rows))
    print("\nThe cluster's workers were started (and had loaded the model) before these runs, as on a standing "
          "cluster; the plain run loads the model in each process.\n")

    # Per-pair cost of the engine at equal compute: 1 worker with 1 torch thread vs 1 torch thread here.
    import torch

    from deepaq_core.batch import score_pairs
    from deepaq_core.batch_engines import DaskEngine, ScorerSpec
    from deepaq_core.scoring import Scorer

    pairs = []
    with open(listing, newline="") as f:
        for r in list(csv.reader(f))[1:]:
            pairs.append((str(folder / r[0]), str(folder / r[1])))
    torch.set_num_threads(1)
    scorer = Scorer(device="cpu")
    list(score_pairs(pairs[:2], scorer))  # warm
    per = {"in this process (1 torch thread)": [], "Dask, 1 worker x 1 thread": []}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster:
        engine = DaskEngine(cluster.scheduler_address, ScorerSpec(device="cpu"))
        threads = engine.client.run(lambda: __import__("torch").get_num_threads())
        list(engine.run(((i, a, b) for i, (a, b) in enumerate(pairs[:2]))))  # the worker loads the model
        try:
            for rep in range(args.repeats):
                with Meter() as m:
                    for _ in score_pairs(pairs, scorer):
                        pass
                per["in this process (1 torch thread)"].append(m)
                with Meter(extra_own=lambda: workers_cpu(cluster)) as m:
                    got = list(engine.run(((i, a, b) for i, (a, b) in enumerate(pairs))))
                assert sorted(i for i, _ in got) == list(range(len(pairs)))
                per["Dask, 1 worker x 1 thread"].append(m)
        finally:
            engine.close()
    rows = []
    base = statistics.median(m.wall for m in per["in this process (1 torch thread)"]) / len(pairs)
    for name, ms in per.items():
        s = statistics.median(m.wall for m in ms) / len(pairs)
        rows.append([name, f"{s * 1000:.1f}", f"{(s - base) * 1000:+.1f}",
                     f"{pct(min(m.others for m in ms))}-{pct(max(m.others for m in ms))}"])
    print(table(["where", "ms per pair (median of runs)", "engine cost per pair, ms", "others' CPU"], rows))
    print(f"\n(worker torch threads: {sorted(set(threads.values()))}; load average after: {loadavg()})\n")


def section_overhead(folder: Path, args) -> None:
    """The engines' own cost per pair: pairs whose file is missing fail at once on the worker (the
    model is loaded and the same task, result and row path is taken), so nearly all time is the
    engine's. Local processes and a 1-worker Dask cluster, against the same pairs in this process."""
    from distributed import LocalCluster

    from deepaq_core.batch import score_pairs
    from deepaq_core.batch_engines import DaskEngine, LocalEngine, ScorerSpec
    from deepaq_core.scoring import Scorer

    n = args.overhead_pairs
    pairs = [(str(folder / "missing-ref.wav"), str(folder / f"missing{k}.wav")) for k in range(n)]
    tasks = lambda: ((i, a, b) for i, (a, b) in enumerate(pairs))  # noqa: E731
    spec = ScorerSpec(device="cpu")
    res: dict[str, list] = {}
    scorer = Scorer(device="cpu")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster:
        dask_engine = DaskEngine(cluster.scheduler_address, spec)
        local = LocalEngine(spec, ["cpu"])
        try:
            list(dask_engine.run(tasks()))  # warm: the worker loads the model
            list(local.run(tasks()))
            for _ in range(args.repeats):
                for name, run in (("in this process", lambda: list(score_pairs(pairs, scorer))),
                                  ("local worker process (--workers)", lambda: list(local.run(tasks()))),
                                  ("Dask, 1 worker", lambda: list(dask_engine.run(tasks())))):
                    with Meter() as m:
                        got = run()
                    assert len(got) == n
                    res.setdefault(name, []).append(m)
        finally:
            dask_engine.close()
            local.close()
    print(f"### The engines' own cost per pair ({n} pairs that fail at once: missing files), "
          f"load average: {loadavg()}\n")
    rows = []
    for name, ms in res.items():
        per = statistics.median(m.wall for m in ms) / n
        rows.append([name, f"{per * 1000:.2f}", f"{n / statistics.median(m.wall for m in ms):.0f}"])
    print(table(["where", "ms per pair (median of runs)", "pairs/s ceiling"], rows))
    print()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sections", default="workers,kill,cluster,overhead")
    p.add_argument("--overhead-pairs", type=int, default=300)
    p.add_argument("--pairs", type=int, default=40, help="pairs for the workers and cluster tables (default 40)")
    p.add_argument("--seconds", type=float, default=10.0, help="pair length, seconds (default 10)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--kill-pairs", type=int, default=32)
    p.add_argument("--kill-seconds", type=float, default=5.0)
    p.add_argument("--trials", type=int, default=4, help="kill -9 trials (default 4, alternately 1 and 2 workers)")
    p.add_argument("--kills", type=int, default=3, help="kills per trial before it may finish (default 3)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--folder", type=Path, help="corpus folder (default: a temporary one)")
    args = p.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    folder = args.folder or Path(tempfile.mkdtemp(prefix="deepaq-bench-batch-"))
    print(f"- machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; command: "
          f"`python benchmarks/bench_batch.py {' '.join(sys.argv[1:])}`; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    for s in sections:
        {"workers": section_workers, "kill": section_kill, "cluster": section_cluster,
         "overhead": section_overhead}[s](folder, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
