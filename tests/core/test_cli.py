"""The ``deepaq`` CLI, run in-process on generated audio."""

from __future__ import annotations

import csv
import json

import pytest

from deepaq_core.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_score_table_and_json(capsys, signals, tmp_path):
    code, out, err = run(capsys, "score", signals["ref"], signals["same"], signals["lp"], "--device", "cpu")
    assert code == 0
    lines = [ln for ln in out.splitlines() if ln.strip().endswith(".wav")]
    assert len(lines) == 2
    assert float(lines[0].split()[0]) == pytest.approx(100.0, abs=1e-3)
    assert float(lines[1].split()[0]) < 100.0

    frames = tmp_path / "frames.jsonl"
    code, out, err = run(capsys, "score", signals["ref"], signals["delayed"], "--json", "--frames", str(frames))
    assert code == 0
    data = json.loads(out)
    assert data[0]["offset_samples"] == pytest.approx(2100, abs=2)
    assert len(data[0]["curve"]["score"]) == len(data[0]["curve"]["start_s"]) > 0
    rows = [json.loads(line) for line in frames.read_text().splitlines()]
    assert rows and {"degraded", "frame", "time_s", "distance"} <= rows[0].keys()


@pytest.mark.parametrize(
    "make, phrase",
    [
        (lambda p: None, "not found"),
        (lambda p: p.write_text("this is not audio"), "not an audio file"),
        (lambda p: p.write_bytes(b""), None),
    ],
)
def test_bad_degraded_file_exits_2_with_one_line(capsys, signals, tmp_path, make, phrase):
    bad = tmp_path / "bad.wav"
    make(bad)
    code, out, err = run(capsys, "score", signals["ref"], str(bad))
    assert code == 2
    errors = [ln for ln in err.splitlines() if ln.startswith("deepaq: error:")]
    assert len(errors) == 1 and "bad.wav" in errors[0]
    if phrase:
        assert phrase in errors[0]
    assert "Traceback" not in err


def test_silent_and_short_files_exit_2(capsys, signals, tmp_path):
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "silent.wav", np.zeros(48000, np.float32), 48000)
    sf.write(tmp_path / "short.wav", np.random.default_rng(0).normal(0, 0.1, 4800).astype(np.float32), 48000)
    for name, phrase in [("silent.wav", "silent"), ("short.wav", "short")]:
        code, _, err = run(capsys, "score", signals["ref"], str(tmp_path / name))
        assert code == 2 and phrase in err and "Traceback" not in err


def test_unknown_model_exits_2(capsys, signals):
    code, _, err = run(capsys, "score", signals["ref"], signals["lp"], "--model", "no-such-model")
    assert code == 2 and "Unknown model 'no-such-model'" in err


def test_batch_csv_and_jsonl(capsys, signals, tmp_path):
    inp = tmp_path / "in.csv"
    with open(inp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["reference", "degraded"])
        w.writerow([signals["ref"], signals["same"]])
        w.writerow([signals["ref"], signals["noisy"]])
    out_csv = tmp_path / "out.csv"
    code, _, _ = run(capsys, "batch", "--batch-input-csv", str(inp), "--results-csv", str(out_csv))
    assert code == 0
    rows = list(csv.DictReader(open(out_csv)))
    assert [r["degraded"] for r in rows] == [signals["same"], signals["noisy"]]
    assert list(rows[0].keys())[:7] == ["reference", "degraded", "score", "distance", "offset_ms", "gain_db", "model"]
    assert float(rows[0]["score"]) == pytest.approx(100.0, abs=1e-3)
    assert float(rows[1]["score"]) < float(rows[0]["score"])

    jin = tmp_path / "in.jsonl"
    jin.write_text(json.dumps({"reference": signals["ref"], "degraded": signals["lp"]}) + "\n"
                   + json.dumps({"reference": signals["ref"], "degraded": str(tmp_path / "missing.wav")}) + "\n")
    jout = tmp_path / "out.jsonl"
    code, _, err = run(capsys, "batch", "--batch-input-jsonl", str(jin), "--results-jsonl", str(jout))
    assert code == 2  # one row failed: reported per row, the good row is still written
    res = [json.loads(line) for line in jout.read_text().splitlines()]
    assert res[0]["error"] == "" and res[0]["score"] != ""
    assert "missing.wav" in res[1]["error"]


def test_batch_missing_columns(capsys, tmp_path):
    inp = tmp_path / "in.csv"
    inp.write_text("ref,deg\na.wav,b.wav\n")
    code, _, err = run(capsys, "batch", "--batch-input-csv", str(inp))
    assert code == 2 and "'reference' and 'degraded'" in err


def test_nmr_and_models(capsys, signals, tmp_path):
    import shutil

    clean = tmp_path / "clean"
    clean.mkdir()
    shutil.copy(signals["ref"], clean / "a.wav")
    shutil.copy(signals["mono"], clean / "b.wav")
    code, out, _ = run(capsys, "nmr", signals["lp"], signals["noisy"], "--clean", str(clean), "--json")
    assert code == 0
    data = json.loads(out)
    assert len(data) == 2 and len(data[0]["per_reference"]) == 2
    code, _, err = run(capsys, "nmr", signals["lp"], "--clean", str(tmp_path / "nope"))
    assert code == 2 and "not found" in err

    code, out, _ = run(capsys, "models", "--json")
    assert code == 0
    names = [m["name"] for m in json.loads(out)]
    assert {"compact", "mert-95m", "mert-330m"} <= set(names)


def test_usage_error_is_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["score"])
    assert exc.value.code == 2


def test_degrade_command_writes_a_scorable_file(capsys, signals, tmp_path):
    import soundfile as sf

    out = tmp_path / "lp.wav"
    code, stdout, _ = run(capsys, "degrade", signals["ref"], "--kind", "lowpass", "--cutoff", "3000", "-o", str(out),
                          "--json")
    assert code == 0
    info = json.loads(stdout)
    assert info["params"]["cutoff_hz"] == 3000 and 0 < info["label"] <= 1
    assert sf.info(str(out)).frames == sf.info(signals["ref"]).frames
    code, stdout, _ = run(capsys, "score", signals["ref"], str(out), "--json")
    assert code == 0 and json.loads(stdout)[0]["score"] < 100

    code, stdout, _ = run(capsys, "degrade", "--list")
    assert code == 0 and "mp3" in stdout and "lowpass" in stdout
    code, _, err = run(capsys, "degrade", signals["ref"], "--kind", "warp", "-o", str(out))
    assert code == 2 and "Unknown degradation 'warp'" in err
    code, _, err = run(capsys, "degrade", signals["ref"], "--kind", "lowpass", "--param", "speed=3", "-o", str(out))
    assert code == 2 and "speed" in err and "Traceback" not in err


def test_two_second_delay_is_found(capsys, signals, tmp_path):
    import numpy as np
    import soundfile as sf

    ref, rate = sf.read(signals["ref"], dtype="float32")
    late = np.concatenate([np.zeros((2 * rate, ref.shape[1]), np.float32), ref])[: ref.shape[0]]
    path = tmp_path / "late2s.wav"
    sf.write(path, late, rate, subtype="FLOAT")
    code, out, _ = run(capsys, "score", signals["ref"], str(path), "--json")
    assert code == 0
    data = json.loads(out)[0]
    assert data["offset_ms"] == pytest.approx(2000.0, abs=0.05)  # the ±1 s search used to report ~893 ms
    assert data["offset_samples"] == 2 * rate
    assert data["offset_confidence"] > 0.99 and data["offset_inverted"] is False and data["offset_at_edge"] is False
    assert data["settings"]["max_lag_s"] is None  # the automatic range


def test_negative_zero_prints_as_zero(capsys, signals, monkeypatch):
    import deepaq_core.audio.pair as pair

    # An estimated offset of -0.0004 ms (a hundredth of a sample) must not print as "-0.00".
    from deepaq_core.audio import Alignment

    monkeypatch.setattr(pair, "estimate_alignment",
                        lambda *a, **k: Alignment(0, -0.0002, 0, estimated=True, confidence=1.0))
    code, out, _ = run(capsys, "score", signals["ref"], signals["same"])
    assert code == 0
    row = [ln for ln in out.splitlines() if ln.strip().endswith("same.wav")][0]
    assert row.split()[2] == "0.00" and "-0.00" not in out


def test_untrained_note_only_after_results(capsys, signals, tmp_path):
    code, out, err = run(capsys, "score", signals["ref"], str(tmp_path / "missing.wav"))
    assert code == 2 and len(err.splitlines()) == 1 and "note:" not in err


@pytest.mark.parametrize("command", ["score", "batch", "nmr", "eval"])
def test_every_command_with_model_takes_allow_unverified(capsys, command):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    out, _ = capsys.readouterr()
    assert info.value.code == 0 and "--allow-unverified" in out and "--model" in out


def test_models_verify_usage_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["models", "verify"])
    _, err = capsys.readouterr()
    assert info.value.code == 2 and len(err.splitlines()) == 1 and "PATH" in err
