"""Batch scoring in worker processes (--workers, --devices), on a Dask cluster (--cluster), and SIGTERM."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from deepaq_core.batch_engines import parse_devices
from deepaq_core.cli import main
from deepaq_core.errors import ModelError, OptionError
from tests.conftest import lowpass, music_like
from tests.core.test_batch_durable import N_PAIRS, batch, corpus, full_csv, run  # noqa: F401 - fixtures

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def no_gpu() -> bool:
    import torch

    return not torch.cuda.is_available()


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    return env


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc), or [] where /proc is not there."""
    out = []
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
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


# -- options -----------------------------------------------------------------------------------
def test_devices_parsing_and_cpu_fallback(monkeypatch):
    import torch

    assert parse_devices("cpu,cpu") == ["cpu", "cpu"]
    assert parse_devices(" CPU , cpu ") == ["cpu", "cpu"]
    for bad in ("gpu0", "cuda:x", "cpu:1", "", "cuda,,cpu"):
        with pytest.raises(OptionError, match="--devices takes device names"):
            parse_devices(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert parse_devices("all") == ["cpu"]
    assert parse_devices("all", workers=3) == ["cpu", "cpu", "cpu"]
    with pytest.raises(ModelError, match="no CUDA GPU"):
        parse_devices("cuda:0,cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert parse_devices("all") == ["cuda:0", "cuda:1"]
    assert parse_devices("cuda:0,cuda:1,cuda:1") == ["cuda:0", "cuda:1", "cuda:1"]
    with pytest.raises(ModelError, match="has 2 CUDA GPU"):
        parse_devices("cuda:0,cuda:2")


@pytest.mark.parametrize("extra, words", [
    (["--workers", "0"], "--workers must be 1 or more"),
    (["--workers", "2", "--devices", "cpu,cpu"], "repeat a device"),
    (["--devices", "cpu", "--device", "cpu"], "not both"),
    (["--cluster", "tcp://127.0.0.1:1", "--workers", "2"], "give one or the other"),
    (["--devices", "tpu"], "--devices takes device names"),
])
def test_conflicting_options_refused(capfd, corpus, tmp_path, extra, words):
    out = tmp_path / "out.csv"
    code, _, err = run(capfd, "batch", "--batch-input-csv", corpus / "pairs.csv", "--results-csv", out, *extra)
    assert code == 2 and len(err.splitlines()) == 1 and words in err
    assert not os.listdir(tmp_path)


def test_unreachable_cluster_is_one_sentence_and_leaves_nothing(capfd, corpus, tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    from deepaq_core import batch_engines

    monkeypatch.setattr(batch_engines, "CONNECT_TIMEOUT_S", 1.0)
    out = tmp_path / "out.csv"
    code, _, err = batch(capfd, corpus, "--results-csv", out, "--cluster", "tcp://127.0.0.1:1")
    assert code == 2 and len(err.splitlines()) == 1 and "Cannot reach the Dask scheduler" in err
    assert not os.listdir(tmp_path)


# -- local worker processes --------------------------------------------------------------------
@pytest.mark.skipif(not no_gpu(), reason="compares with a CPU run")
def test_workers_resume_a_plain_run_to_the_same_file(capfd, corpus, tmp_path, full_csv):
    """A plain run's .partial (3 rows) finished by 2 worker processes: the same file as one process."""
    out = tmp_path / "out.csv"
    lines = full_csv.splitlines(keepends=True)
    (tmp_path / "out.csv.partial").write_bytes(b"".join(lines[:4]))
    code, _, err = batch(capfd, corpus, "--results-csv", out, "--resume", "--workers", "2")
    assert code == 0, err
    assert "2 local worker processes" in err and "scored 5, errors 0, skipped by resume 3" in err
    assert out.read_bytes() == full_csv


@pytest.mark.skipif(not no_gpu(), reason="--devices all falls back to CPU processes only without a GPU")
def test_devices_all_without_gpu_prints_rows_in_input_order(capfd, corpus, full_csv):
    code, out, err = run(capfd, "batch", "--batch-input-csv", corpus / "pairs.csv", "--devices", "all", "--workers", "2")
    assert code == 0, err
    assert "2 local worker processes (cpu, cpu)" in err
    assert out.replace("\r\n", "\n").encode() == full_csv.replace(b"\r\n", b"\n")


# The corpus's pairs repeated, each time under new ids: long enough that a signal sent after the
# first rows arrives while the batch still runs (the 8 pairs alone now often finish first).
REPEATS = 12


@pytest.fixture(scope="module")
def long_lists(corpus, tmp_path_factory):
    """pairs_long.csv / .jsonl in the corpus folder, and the bytes of an uninterrupted CSV run."""
    import json

    with open(corpus / "pairs.csv", newline="") as f:
        head, *body = list(csv.reader(f))
    with open(corpus / "pairs_long.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(head)
        for i in range(REPEATS):
            w.writerows([[r[0], r[1], f"{r[2]}-{i}", r[3]] for r in body])
    with open(corpus / "pairs.jsonl") as f:
        items = [json.loads(line) for line in f]
    with open(corpus / "pairs_long.jsonl", "w") as f:
        for i in range(REPEATS):
            f.writelines(json.dumps({**d, "id": f"{d['id']}-{i}"}) + "\n" for d in items)
    out = tmp_path_factory.mktemp("long") / "full.csv"
    assert main(["batch", "--batch-input-csv", str(corpus / "pairs_long.csv"), "--results-csv", str(out),
                 "--device", "cpu"]) == 0
    return out.read_bytes()


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the worker processes through /proc")
def test_sigterm_stops_workers_with_one_line_and_resumes(corpus, tmp_path, long_lists):
    out = tmp_path / "out.csv"
    partial = tmp_path / "out.csv.partial"
    cmd = [sys.executable, "-m", "deepaq_core.cli", "batch", "--batch-input-csv", str(corpus / "pairs_long.csv"),
           "--results-csv", str(out), "--device", "cpu", "--workers", "2"]
    proc = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            workers.update(children(proc.pid))
            if partial.exists() and partial.read_bytes().count(b"\n") >= 3:  # header + 2 rows
                break
            time.sleep(0.01)
        terminated = proc.poll() is None
        if terminated:
            workers.update(children(proc.pid))
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if not terminated:
        pytest.skip("the batch finished before it could be stopped")
    assert proc.returncode == 143
    assert err.splitlines()[-1] == ("deepaq: terminated; the rows scored so far are in 'out.csv.partial'; "
                                    "continue with --resume.")
    assert "Traceback" not in err and not out.exists()
    time.sleep(0.5)
    assert workers and not [p for p in workers if alive(p)]  # the worker processes are gone too
    done = partial.read_bytes()
    assert done.count(b"\n") >= 3
    assert main(["batch", "--batch-input-csv", str(corpus / "pairs_long.csv"), "--results-csv", str(out),
                 "--device", "cpu", "--resume"]) == 0
    assert out.read_bytes() == long_lists and not partial.exists()


def test_sigterm_in_a_plain_run(corpus, tmp_path, long_lists):
    out = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    cmd = [sys.executable, "-m", "deepaq_core.cli", "batch", "--batch-input-jsonl", str(corpus / "pairs_long.jsonl"),
           "--results-jsonl", str(out), "--device", "cpu"]
    proc = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if partial.exists() and partial.read_bytes().count(b"\n") >= 1:
                break
            time.sleep(0.01)
        terminated = proc.poll() is None
        if terminated:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    if not terminated or out.exists():
        pytest.skip("the batch finished before the signal arrived")
    assert proc.returncode == 143 and "Traceback" not in err, (proc.returncode, err)
    assert err.strip().splitlines()[-1:] == ["deepaq: terminated; the rows scored so far are in 'out.jsonl.partial'; "
                                             "continue with --resume."], (proc.returncode, err)
    assert 1 <= partial.read_bytes().count(b"\n") < N_PAIRS * REPEATS


# -- a Dask cluster ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as c:
        with distributed.Client(c.scheduler_address, set_as_default=False) as client:
            yield c, client


@pytest.fixture(scope="module")
def long_corpus(tmp_path_factory):
    """8 pairs of 3 s (long enough that a worker is still busy when it is killed)."""
    d = tmp_path_factory.mktemp("long")
    rows = []
    for r in range(2):
        ref = music_like(3.0, 16000, seed=20 + r)[:, 0]
        sf.write(d / f"ref{r}.wav", ref, 16000, subtype="FLOAT")
        for k, cut in enumerate((1500, 3000, 5000, 7000)):
            sf.write(d / f"deg{r}{k}.wav", lowpass(ref, 16000, cut), 16000, subtype="FLOAT")
            rows.append([f"ref{r}.wav", f"deg{r}{k}.wav", f"p{r}{k}"])
    with open(d / "pairs.csv", "w", newline="") as f:
        csv.writer(f).writerows([["reference", "degraded", "id"], *rows])
    out = d / "plain.csv"
    assert main(["batch", "--batch-input-csv", str(d / "pairs.csv"), "--results-csv", str(out), "--device", "cpu"]) == 0
    return d, out.read_bytes()


@pytest.mark.skipif(not no_gpu(), reason="compares with a CPU run")
def test_cluster_gives_the_plain_results(capfd, corpus, tmp_path, full_csv, cluster):
    c, _ = cluster
    out = tmp_path / "out.csv"
    code, _, err = batch(capfd, corpus, "--results-csv", out, "--cluster", c.scheduler_address)
    assert code == 0, err
    assert "Dask cluster" in err and "2 workers" in err and "scored 8, errors 0" in err
    assert out.read_bytes() == full_csv
    code, _, err = batch(capfd, corpus, "--results-csv", out, "--cluster", c.scheduler_address, "--resume")
    assert code == 0 and "scored 0, errors 0, skipped by resume 8" in err and out.read_bytes() == full_csv


def test_cluster_python_api_in_order_with_error_items(corpus, cluster):
    from deepaq_core.batch import PairError, score_pairs
    from deepaq_core.scoring import Scorer

    c, _ = cluster
    pairs = [(corpus / "audio" / "ref0.wav", corpus / "audio" / name)
             for name in ("deg00.wav", "missing.wav", "deg01.wav", "deg02.wav", "deg03.wav")]
    remote = list(score_pairs(pairs, device="cpu", cluster=c.scheduler_address))
    local = list(score_pairs(pairs, Scorer(device="cpu")))
    assert len(remote) == 5 and isinstance(remote[1], PairError) and remote[1].index == 1
    assert [r.degraded.path for k, r in enumerate(remote) if k != 1] == [r.degraded.path for k, r in enumerate(local)
                                                                         if k != 1]
    assert [r.score for k, r in enumerate(remote) if k != 1] == [r.score for k, r in enumerate(local) if k != 1]


@pytest.mark.skipif(not no_gpu(), reason="compares with a CPU run")
def test_killed_worker_is_retried_without_lost_or_duplicated_rows(cluster, long_corpus, tmp_path):
    c, client = cluster
    folder, plain = long_corpus
    out = tmp_path / "out.csv"
    partial = tmp_path / "out.csv.partial"
    pids = client.run(os.getpid)
    result: dict = {}
    stderr = io.StringIO()

    def drive() -> None:
        real = sys.stderr
        sys.stderr = stderr
        try:
            result["code"] = main(["batch", "--batch-input-csv", str(folder / "pairs.csv"), "--results-csv", str(out),
                                   "--device", "cpu", "--cluster", c.scheduler_address])
        finally:
            sys.stderr = real

    thread = threading.Thread(target=drive)
    thread.start()
    victim, keys = None, []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and thread.is_alive() and victim is None:
        if partial.exists() and partial.read_bytes().count(b"\n") >= 2:  # header + 1 row: mid-run
            busy = {w: ks for w, ks in client.processing().items() if ks}
            if busy:
                victim, keys = next(iter(busy.items()))
                os.kill(pids[victim], signal.SIGKILL)
        time.sleep(0.005)
    thread.join(180)
    assert victim is not None, "the run ended before a worker could be killed"
    assert result.get("code") == 0, stderr.getvalue()
    # every row exactly once, the same as one process gives
    assert out.read_bytes() == plain
    # the scheduler ran a task of the killed worker again
    story = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.story(*keys))
    runs = {k: sum(1 for t in story if t[0] == k and t[2] == "processing") for k in keys}
    assert max(runs.values()) >= 2, runs


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator setting")
def test_dask_allocator_setting_is_undone_on_workers_only_when_set():
    code = "from deepaq_core.batch_engines import keep_freed_memory as k; print(k())"
    env = subprocess_env()
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    plain = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    env["MALLOC_TRIM_THRESHOLD_"] = "65536"  # what Dask's nanny gives its workers
    nanny = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    env["MALLOC_MMAP_THRESHOLD_"] = "1048576"  # the user's own choice is kept
    own = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert plain.stdout.strip() == "False" and own.stdout.strip() == "False"
    import platform

    if platform.libc_ver()[0] == "glibc":
        assert nanny.stdout.strip() == "True", nanny.stderr
