"""Corpus-scale batch scoring: rows on disk as they are scored, resume, no clobbering, error rows."""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from deepaq_core import batch as batch_mod
from deepaq_core.batch import PairError, score_pairs
from deepaq_core.cli import main
from tests.conftest import lowpass, music_like

SR = 16000
N_PAIRS = 8


def run(capfd, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capfd.readouterr()
    return code, out, err


def error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("deepaq: error:")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A folder with 2 references, 4 degraded versions of each (1 s), and pairs.csv listing
    them with relative paths, an id column and a note column (one note looks like a formula)."""
    d = tmp_path_factory.mktemp("corpus")
    (d / "audio").mkdir()
    rows = []
    for r in range(2):
        ref = music_like(1.0, SR, seed=10 + r)[:, 0]
        sf.write(d / "audio" / f"ref{r}.wav", ref, SR, subtype="FLOAT")
        rng = np.random.default_rng(r)
        versions = [lowpass(ref, SR, 3000), lowpass(ref, SR, 6000),
                    ref + rng.normal(0, 0.02, ref.shape).astype(np.float32), ref * 0.5]
        for k, y in enumerate(versions):
            sf.write(d / "audio" / f"deg{r}{k}.wav", y, SR, subtype="FLOAT")
            rows.append([f"audio/ref{r}.wav", f"./audio/deg{r}{k}.wav", f"id-{r}{k}",
                         "=HYPERLINK(\"x\")" if (r, k) == (0, 1) else f"note {r}{k}"])
    with open(d / "pairs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["reference", "degraded", "id", "note"])
        w.writerows(rows)
    with open(d / "pairs.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps({"reference": row[0], "degraded": row[1], "id": row[2], "n": 3}) + "\n")
    return d


@pytest.fixture(scope="module")
def full_csv(corpus, tmp_path_factory):
    """The results of an uninterrupted run (bytes)."""
    out = tmp_path_factory.mktemp("full") / "full.csv"
    assert main(["batch", "--batch-input-csv", str(corpus / "pairs.csv"), "--results-csv", str(out),
                 "--device", "cpu"]) == 0
    return out.read_bytes()


def batch(capfd, corpus, *extra):
    return run(capfd, "batch", "--batch-input-csv", corpus / "pairs.csv", "--device", "cpu", *extra)


# -- the Python API ----------------------------------------------------------------------------
def test_score_pairs_is_lazy_and_in_order(corpus):
    from deepaq_core.scoring import Scorer

    taken = []

    def pairs():
        for k in range(3):
            taken.append(k)
            deg = corpus / "audio" / ("missing.wav" if k == 1 else f"deg0{k}.wav")
            yield corpus / "audio" / "ref0.wav", deg

    it = score_pairs(pairs(), Scorer(device="cpu"))
    assert taken == []
    first = next(it)
    assert taken == [0] and first.score > 0
    second = next(it)
    assert isinstance(second, PairError) and second.index == 1 and "missing.wav" in second.error
    third = next(it)
    assert taken == [0, 1, 2] and third.degraded.path.endswith("deg02.wav")
    assert next(it, None) is None


# -- output format -----------------------------------------------------------------------------
def test_input_columns_kept_verbatim_and_formulas_escaped(full_csv):
    rows = list(csv.reader(full_csv.decode().splitlines()))
    assert rows[0] == ["reference", "degraded", "id", "note", "score", "distance", "offset_ms", "gain_db",
                       "model", "settings", "flags", "error"]
    assert len(rows) == N_PAIRS + 1
    assert rows[1][:4] == ["audio/ref0.wav", "./audio/deg00.wav", "id-00", "note 00"]
    assert rows[2][3] == "'=HYPERLINK(\"x\")"
    assert all(r[10] == "" and float(r[4]) > 0 for r in rows[1:])
    assert any(float(r[6]) < 0 or float(r[7]) < 0 for r in rows[1:])  # numbers are not escaped
    assert not any(r[6].startswith("'") or r[7].startswith("'") for r in rows[1:])


def test_jsonl_keeps_values_and_types(capfd, corpus, tmp_path):
    out = tmp_path / "out.jsonl"
    code, _, err = run(capfd, "batch", "--batch-input-jsonl", corpus / "pairs.jsonl", "--results-jsonl", out,
                       "--device", "cpu")
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == N_PAIRS
    assert list(rows[0])[:4] == ["reference", "degraded", "id", "n"]
    assert rows[0]["degraded"] == "./audio/deg00.wav" and rows[0]["n"] == 3 and rows[0]["error"] == ""
    assert not (tmp_path / "out.jsonl.partial").exists()


def test_summary_line(capfd, corpus, tmp_path, full_csv):
    code, out, err = batch(capfd, corpus, "--results-csv", tmp_path / "r.csv")
    assert code == 0 and out == ""
    summary = [ln for ln in err.splitlines() if ln.startswith("deepaq: scored")]
    assert len(summary) == 1
    assert f"scored {N_PAIRS}, errors 0, skipped by resume 0" in summary[0]
    assert "pairs/s" in summary[0] and "x real time" in summary[0]
    assert (tmp_path / "r.csv").read_bytes() == full_csv


def test_stdout_when_no_results_file(capfd, corpus, full_csv):
    code, out, err = batch(capfd, corpus)
    assert code == 0
    assert out.replace("\r\n", "\n") == full_csv.decode().replace("\r\n", "\n")


# -- bad rows ----------------------------------------------------------------------------------
def test_bad_rows_become_error_rows(capfd, corpus, tmp_path):
    lines = (corpus / "pairs.csv").read_text().splitlines()
    bad = [lines[0], lines[1], "audio/ref0.wav", lines[2], '"audio/ref0.wav,audio/deg01.wav', lines[3],
           "audio/ref0.wav,audio/missing.wav,x,y", lines[4], "audio/ref0.wav,pairs.csv,x,y", lines[5]]
    (tmp_path / "audio").symlink_to(corpus / "audio")
    (tmp_path / "pairs.csv").write_bytes((corpus / "pairs.csv").read_bytes())
    inp = tmp_path / "bad.csv"
    inp.write_text("\n".join(bad) + "\n")
    out = tmp_path / "out.csv"
    code, _, err = run(capfd, "batch", "--batch-input-csv", inp, "--results-csv", out, "--device", "cpu")
    assert code == 2
    assert error_lines(err) == ["deepaq: error: 4 of 9 pairs could not be scored (see the 'error' column)."]
    rows = list(csv.DictReader(open(out, newline="")))
    assert len(rows) == 9
    errors = [r["error"] for r in rows]
    assert [bool(e) for e in errors] == [False, True, False, True, False, True, False, True, False]
    assert "Line 3 of 'bad.csv' has 1 of the 4 columns" in errors[1]
    assert "Line 5 of 'bad.csv' is not a readable CSV row" in errors[3]
    assert "missing.wav" in errors[5] and "pairs.csv" in errors[7]
    assert [r["id"] for r in rows if not r["error"]] == ["id-00", "id-01", "id-02", "id-03", "id-10"]
    assert all(float(r["score"]) > 0 for r in rows if not r["error"])


# -- never clobber -----------------------------------------------------------------------------
def test_existing_results_file_is_kept(capfd, corpus, tmp_path, full_csv):
    out = tmp_path / "out.csv"
    out.write_bytes(b"precious\n")
    code, _, err = batch(capfd, corpus, "--results-csv", out)
    assert code == 2 and out.read_bytes() == b"precious\n"
    assert len(err.splitlines()) == 1 and "already exists" in err and "--resume" in err
    code, _, err = batch(capfd, corpus, "--results-csv", out, "--overwrite")
    assert code == 0 and out.read_bytes() == full_csv
    assert not (tmp_path / "out.csv.partial").exists()


def test_output_equal_to_input_refused(capfd, corpus, tmp_path):
    inp = tmp_path / "pairs.csv"
    inp.write_bytes((corpus / "pairs.csv").read_bytes())
    before = inp.read_bytes()
    os.symlink(inp, tmp_path / "link.csv")
    (tmp_path / "sub").mkdir()
    for out in (inp, tmp_path / "link.csv", tmp_path / "sub" / ".." / "pairs.csv"):
        for flag in ((), ("--overwrite",), ("--resume",)):
            code, _, err = run(capfd, "batch", "--batch-input-csv", inp, "--results-csv", out, *flag)
            assert code == 2 and len(err.splitlines()) == 1 and "input" in err, err
            assert inp.read_bytes() == before


def test_unwritable_folder_refused_before_scoring(capfd, corpus, tmp_path, monkeypatch):
    import deepaq_core.scoring

    def no_scorer(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(deepaq_core.scoring.Scorer, "__init__", no_scorer)
    if os.geteuid() == 0:
        folder = "/proc"  # no new files there, even for root
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
    t0 = time.monotonic()
    code, _, err = batch(capfd, corpus, "--results-csv", os.path.join(folder, "out.csv"))
    assert code == 2 and len(err.splitlines()) == 1 and "folder" in err, err
    assert time.monotonic() - t0 < 5


def test_full_disk_keeps_existing_file(capfd, corpus, tmp_path, monkeypatch, full_csv):
    out = tmp_path / "out.csv"
    out.write_bytes(b"old results\n")
    real = batch_mod.ResultsFile._write
    calls = []

    def failing(self, text):
        calls.append(text)
        if len(calls) > 4:  # the header and 3 rows fit
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(self, text)

    monkeypatch.setattr(batch_mod.ResultsFile, "_write", failing)
    code, _, err = batch(capfd, corpus, "--results-csv", out, "--overwrite")
    assert code == 2 and out.read_bytes() == b"old results\n"
    assert len(error_lines(err)) == 1 and "no space left on device" in err
    partial = tmp_path / "out.csv.partial"
    assert partial.read_bytes() == b"".join(full_csv.splitlines(keepends=True)[:4])
    monkeypatch.setattr(batch_mod.ResultsFile, "_write", real)
    code, _, err = batch(capfd, corpus, "--results-csv", out, "--resume")
    assert code == 0 and out.read_bytes() == full_csv and not partial.exists()
    assert "skipped by resume 3" in err


# -- resume ------------------------------------------------------------------------------------
def test_resume_out_of_order_and_cut_row(capfd, corpus, tmp_path, full_csv):
    lines = full_csv.splitlines(keepends=True)
    partial = tmp_path / "out.csv.partial"
    # rows 4 and 6 done, then a row cut short by a crash
    partial.write_bytes(lines[0] + lines[4] + lines[6] + lines[2][:25])
    code, _, err = batch(capfd, corpus, "--results-csv", tmp_path / "out.csv", "--resume")
    assert code == 0, err
    assert "skipped by resume 2" in err and f"scored {N_PAIRS - 2}" in err
    assert (tmp_path / "out.csv").read_bytes() == full_csv and not partial.exists()
    # resuming a complete file scores nothing and changes nothing
    code, _, err = batch(capfd, corpus, "--results-csv", tmp_path / "out.csv", "--resume")
    assert code == 0 and f"scored 0, errors 0, skipped by resume {N_PAIRS}" in err
    assert (tmp_path / "out.csv").read_bytes() == full_csv


def test_resume_with_other_settings_or_model_refused(capfd, corpus, tmp_path, full_csv):
    out = tmp_path / "out.csv"
    out.write_bytes(full_csv)
    code, _, err = batch(capfd, corpus, "--results-csv", out, "--resume", "--window", "2")
    assert code == 2 and len(err.splitlines()) == 1 and "window_s=2" in err
    assert out.read_bytes() == full_csv
    other = full_csv.replace(b"compact ", b"other-model ")
    assert other != full_csv
    out.write_bytes(other)
    code, _, err = batch(capfd, corpus, "--results-csv", out, "--resume")
    assert code == 2 and len(err.splitlines()) == 1 and "other-model" in err
    assert out.read_bytes() == other


def test_killed_run_resumes_to_the_same_file(corpus, tmp_path, full_csv):
    out = tmp_path / "out.csv"
    partial = tmp_path / "out.csv.partial"
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, "-m", "deepaq_core.cli", "batch", "--batch-input-csv",
                             str(corpus / "pairs.csv"), "--results-csv", str(out), "--device", "cpu"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if partial.exists() and partial.read_bytes().count(b"\n") >= 3:  # header + 2 rows on disk
                break
            time.sleep(0.01)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
        proc.stderr.close()
    if not killed:
        pytest.skip("the batch finished before it could be interrupted")
    assert not out.exists()
    done = partial.read_bytes()
    assert 3 <= done.count(b"\n") < N_PAIRS + 1 and full_csv.startswith(done[: done.rfind(b"\n") + 1])
    assert main(["batch", "--batch-input-csv", str(corpus / "pairs.csv"), "--results-csv", str(out),
                 "--device", "cpu", "--resume"]) == 0
    assert out.read_bytes() == full_csv and not partial.exists()


def test_resume_jsonl(capfd, corpus, tmp_path):
    out = tmp_path / "out.jsonl"
    code, _, _ = run(capfd, "batch", "--batch-input-jsonl", corpus / "pairs.jsonl", "--results-jsonl", out,
                     "--device", "cpu")
    assert code == 0
    full = out.read_bytes()
    lines = full.splitlines(keepends=True)
    out.unlink()
    (tmp_path / "out.jsonl.partial").write_bytes(lines[1] + lines[0])
    code, _, err = run(capfd, "batch", "--batch-input-jsonl", corpus / "pairs.jsonl", "--results-jsonl", out,
                       "--device", "cpu", "--resume")
    assert code == 0 and "skipped by resume 2" in err
    assert out.read_bytes() == full


def test_rows_reach_the_disk_one_by_one(capfd, corpus, tmp_path, monkeypatch):
    """While the batch runs, each scored row is already in the .partial file."""
    out = tmp_path / "out.csv"
    partial = tmp_path / "out.csv.partial"
    seen = []
    real = batch_mod.ResultsFile.write

    def write(self, position, key, line, is_error):
        real(self, position, key, line, is_error)
        with open(partial, newline="") as f:
            seen.append(f.read().count("\n"))

    monkeypatch.setattr(batch_mod.ResultsFile, "write", write)
    code, _, _ = batch(capfd, corpus, "--results-csv", out)
    assert code == 0 and seen == list(range(2, N_PAIRS + 2))


def test_resume_needs_a_results_file(capfd, corpus):
    code, _, err = batch(capfd, corpus, "--resume")
    assert code == 2 and len(err.splitlines()) == 1 and "--resume needs" in err


def test_interrupt_keeps_rows_and_says_how_to_continue(capfd, corpus, tmp_path, monkeypatch, full_csv):
    real = batch_mod.ResultsFile.write
    count = []

    def write(self, *a):
        real(self, *a)
        count.append(1)
        if len(count) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(batch_mod.ResultsFile, "write", write)
    out = tmp_path / "out.csv"
    code, _, err = batch(capfd, corpus, "--results-csv", out)
    assert code == 130 and "'out.csv.partial'; continue with --resume" in err and not out.exists()
    monkeypatch.setattr(batch_mod.ResultsFile, "write", real)
    code, _, err = batch(capfd, corpus, "--results-csv", out, "--resume")
    assert code == 0 and "skipped by resume 3" in err and out.read_bytes() == full_csv


def test_score_pairs_in_groups_match_pairs_alone_and_name_the_bad_pair(corpus):
    """The GPU grouping (runs of pairs sharing a reference scored together), run on the CPU."""
    from deepaq_core.scoring import Scorer

    audio = corpus / "audio"
    pairs = [(audio / "ref0.wav", audio / "deg00.wav"), (audio / "ref0.wav", audio / "missing.wav"),
             (audio / "ref0.wav", audio / "deg02.wav"), (audio / "ref0.wav", audio / "deg00.wav")]
    alone = list(score_pairs(pairs, Scorer(device="cpu", workers=0)))
    grouped_scorer = Scorer(device="cpu")
    grouped_scorer._group = 2
    grouped = list(score_pairs(pairs, grouped_scorer))
    assert [type(x).__name__ for x in grouped] == ["QualityResult", "PairError", "QualityResult", "QualityResult"]
    assert grouped[1].index == 1 and "missing.wav" in grouped[1].error
    for a, b in zip(alone, grouped):
        if not isinstance(a, PairError):
            assert b.score == pytest.approx(a.score, abs=1e-4) and b.degraded.path == a.degraded.path
