"""``deepaq eval --suite dev`` on a tiny generated suite, and the cross-fitting statistic."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from deepaq_core.cli import main
from deepaq_core.evaluation.stats import correlations, cross_fitted_predictions

SR = 16000


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _tone(seconds: float, seed: int) -> np.ndarray:
    """A short harmonic tone plus a little noise, peak about 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 150.0 + 40.0 * seed
    x = sum(np.sin(2 * np.pi * f0 * (h + 1) * t + rng.uniform(0, 6)) / (h + 1) for h in range(8))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2) + 0.02 * rng.normal(size=t.size)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def _noisy(x: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    n = np.random.default_rng(100 + seed).normal(size=x.size)
    n *= math.sqrt(np.mean(x**2) / np.mean(n**2) / 10 ** (snr_db / 10))
    return (x + n).astype(np.float32)


def _write_set(folder, columns, rows):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows(rows)


@pytest.fixture(scope="module")
def fake_suite(tmp_path_factory):
    """The four dev sets in miniature: 1 s signals, noise at known SNRs, made-up monotone scores.

    Higher SNR always has the higher score, so every sensible metric correlates positively.
    """
    root = tmp_path_factory.mktemp("suite")
    snrs = (40.0, 20.0, 5.0)

    # tcdaudio14: an identity row and 3 degraded versions
    d = root / "tcdaudio14"
    d.mkdir()
    sf.write(d / "ref.flac", _tone(1.0, 1), SR)
    rows = [["ref.flac", "ref.flac", "identity", "identity", "", 0, 4.73]]
    for k, snr in enumerate(snrs):
        sf.write(d / f"deg{k}.flac", _noisy(_tone(1.0, 1), snr, k), SR)
        rows.append(["ref.flac", f"deg{k}.flac", f"n{k}", "noise", "", 0, 4.5 - 1.2 * k])
    _write_set(d, ["reference", "degraded", "condition", "codec", "bitrate_kbps", "lag_samples",
                   "visqol_v3_moslqo"], rows)

    # sisec08: 3 targets x (hidden reference + 2 systems)
    d = root / "sisec08"
    d.mkdir()
    rows = []
    for t, target in enumerate(("ebass", "eguitar", "aguitar")):
        sf.write(d / f"{target}_orig.flac", _tone(1.0, 2 + t), SR)
        rows.append([f"{target}_orig.flac", f"{target}_orig.flac", target, "orig", 100.0 - t])
        for k, snr in enumerate((25.0, 3.0)):
            sf.write(d / f"{target}_{k}.flac", _noisy(_tone(1.0, 2 + t), snr - 2 * t, 10 * t + k), SR)
            rows.append([f"{target}_orig.flac", f"{target}_{k}.flac", target, f"Algo{k}", 70.0 - 40 * k - 5 * t])
    _write_set(d, ["reference", "degraded", "target", "algorithm", "subjective_mean"], rows)

    # tcdvoip: 5 types x 2 talkers x 2 conditions, each degraded file with its own reference
    d = root / "tcdvoip"
    rows = []
    for ty, typ in enumerate(("chop", "clip", "compspkr", "echo", "noise")):
        (d / typ / "ref").mkdir(parents=True)
        for tk, talker in enumerate(("FA", "MK")):
            for c, snr in enumerate((30.0, 8.0)):
                seed = 20 + 4 * ty + 2 * tk + c
                ref = _tone(1.0, seed % 7)
                sf.write(d / typ / "ref" / f"R_{c}_{talker}.flac", ref, SR)
                sf.write(d / typ / f"C_{c}_{talker}.flac", _noisy(ref, snr + ty, seed), SR)
                rows.append([f"{typ}/ref/R_{c}_{talker}.flac", f"{typ}/C_{c}_{talker}.flac", typ, c + 1,
                             4.4 - 2.2 * c - 0.1 * ty + 0.2 * tk, talker])
    _write_set(d, ["reference", "degraded", "type", "condition", "subjective_mean", "talker"], rows)

    # phase_abx: 2 audible (strong noise), 2 inaudible (Hilbert phase shift of a tone)
    d = root / "phase_abx"
    d.mkdir()
    rows = []
    for k, (stim, audible) in enumerate((("square_a", 1), ("square_b", 1), ("pnoise", 0), ("castanets", 0))):
        x = _tone(1.0, 3 + k)
        sf.write(d / f"{stim}_phi000.flac", x, SR)
        shifted = np.imag(scipy.signal.hilbert(x)).astype(np.float32) if not audible else _noisy(x, 0.0, k)
        sf.write(d / f"{stim}_phi270.flac", shifted, SR)
        rows.append([f"{stim}_phi000.flac", f"{stim}_phi270.flac", stim, -90, 0.85 if audible else 0.5, audible])
    _write_set(d, ["reference", "degraded", "stimulus", "phase_shift", "p_correct", "audible"], rows)
    (root / "README.md").write_text("not a set\n")
    return root


@pytest.fixture(scope="module")
def suite_run(fake_suite, tmp_path_factory):
    import contextlib
    import io

    out_dir = tmp_path_factory.mktemp("suite_out")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["eval", "--suite", "dev", str(fake_suite), "--peers", "none", "--model", "compact-untrained",
                     "--device", "cpu", "--bootstrap", "200", "--out", str(out_dir)])
    return code, out.getvalue(), err.getvalue(), out_dir


def test_suite_prints_one_table_per_set_and_writes_outputs(suite_run):
    code, out, err, out_dir = suite_run
    assert code == 0, err
    for name in ("tcdaudio14", "sisec08", "tcdvoip", "phase_abx"):
        assert f"### {name}:" in out
    assert "talker-CV mapped Pearson" in out and "leave-one-target-out mapped Pearson" in out
    assert "| deepaq:compact-untrained ↓ |" in out and "| logmel_l1 ↓ |" in out and "| si_sdr ↑ |" in out
    assert "scoring 37 files" in err  # progress on stderr, all sets in one pass
    assert (out_dir / "summary.md").read_text().startswith("## Dev suite")
    with open(out_dir / "items.csv", newline="") as f:
        items = list(csv.DictReader(f))
    assert len(items) == 4 + 9 + 20 + 4
    assert {r["set"] for r in items} == {"tcdaudio14", "sisec08", "tcdvoip", "phase_abx"}
    assert items[0]["reference"] == "tcdaudio14/ref.flac"  # relative to the suite folder
    assert all(r["logmel_l1_error"] == "" for r in items)


def test_suite_statistics_are_finite_and_oriented(suite_run):
    code, out, err, out_dir = suite_run
    s = json.loads((out_dir / "summary.json").read_text())
    assert s["n_rows"] == {"tcdaudio14": 4, "sisec08": 9, "tcdvoip": 20, "phase_abx": 4}
    metrics = [m["name"] for m in s["metrics"]]
    assert metrics == ["deepaq:compact-untrained", "si_sdr", "logmel_l1"]
    for name in metrics:
        voip = s["sets"]["tcdvoip"][name]
        cv = voip["talker_cv"]
        assert cv["n"] == 20 and cv["folds"] == ["FA", "MK"]
        assert math.isfinite(cv["pearson"]) and math.isfinite(cv["rmse"])
        assert all(math.isfinite(v) for v in cv["predictions"])
        assert voip["raw"]["pearson"] > 0.5  # SNR order = score order, distances negated
        assert set(voip["per_type"]) == {"chop", "clip", "compspkr", "echo", "noise"}
        assert all(voip["per_type"][t]["n"] == 4 for t in voip["per_type"])
        sis = s["sets"]["sisec08"][name]
        assert sis["all"]["n"] == 9 and sis["without_hidden_references"]["n"] == 6
        assert math.isfinite(sis["leave_one_target_out"]["pearson"])
        tcd = s["sets"]["tcdaudio14"][name]
        assert tcd["n"] == 3 and list(tcd["identity"]) == ["ref.flac"]
    assert s["sets"]["tcdaudio14"]["logmel_l1"]["identity"]["ref.flac"] == pytest.approx(0.0, abs=1e-6)
    assert s["sets"]["tcdaudio14"]["logmel_l1"]["spearman"] == pytest.approx(1.0)


def test_phase_abx_checks(suite_run):
    code, out, err, out_dir = suite_run
    abx = json.loads((out_dir / "summary.json").read_text())["sets"]["phase_abx"]
    assert abx["stimuli"] == ["square_a", "square_b", "pnoise", "castanets"] and abx["audible"] == [1, 1, 0, 0]
    dq = abx["metrics"]["deepaq:compact-untrained"]
    assert len(dq["scores"]) == 4 and all(0 <= v <= 100 for v in dq["scores"])
    assert dq["inaudible_transparent"] in (True, False)
    assert dq["audible_below_inaudible_score"] in (True, False)
    assert "inaudible_transparent" not in abx["metrics"]["si_sdr"]  # a DeePAQ-only check
    assert "every inaudible pair scores >= 95" in out
    table = out[out.index("### phase_abx"):]
    assert "| si_sdr ↑ | n/a |" in table
    row = "| deepaq:compact-untrained ↓ | "
    assert any(ln.startswith(row + "pass") or ln.startswith(row + "fail") for ln in table.splitlines())


def test_suite_missing_folder_is_one_line_exit_2(capsys, tmp_path):
    code, out, err = run(capsys, "eval", "--suite", "dev", str(tmp_path / "nope"), "--peers", "none",
                         "--out", str(tmp_path / "o"))
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("deepaq: error:") and "not found" in lines[0]
    # an existing folder without any set
    code, out, err = run(capsys, "eval", "--suite", "dev", str(tmp_path), "--peers", "none",
                         "--out", str(tmp_path / "o"))
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "holds none of the dev sets" in lines[0]


def test_suite_default_folder_not_found(capsys, monkeypatch, tmp_path):
    from deepaq_core.evaluation import suite

    monkeypatch.setattr(suite, "default_folders", lambda cwd=None: [tmp_path / "a" / "shared" / "data"])
    code, out, err = run(capsys, "eval", "--suite", "dev", "--peers", "none", "--out", str(tmp_path / "o"))
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "No dev suite data found" in lines[0]
    assert "--suite dev FOLDER" in lines[0]


def test_suite_default_folder_is_found_from_cwd(monkeypatch, tmp_path, fake_suite):
    from deepaq_core.evaluation import suite

    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "data").symlink_to(fake_suite, target_is_directory=True)
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    assert suite.default_folders()[0] == (tmp_path / "shared" / "data").resolve()
    assert suite.find_suite_folder(None) == fake_suite.resolve()


def test_one_set_folder_and_a_broken_set(capsys, fake_suite, tmp_path):
    import shutil

    root = tmp_path / "s"
    shutil.copytree(fake_suite / "phase_abx", root / "phase_abx")
    shutil.copytree(fake_suite / "tcdaudio14", root / "tcdaudio14")
    (root / "tcdaudio14" / "deg1.flac").unlink()  # one set unreadable: the others still run
    code, out, err = run(capsys, "eval", "--suite", "dev", str(root), "--peers", "none", "--model", "none",
                         "--bootstrap", "100", "--out", str(tmp_path / "o"))
    assert code == 2
    assert "### phase_abx" in out and "### tcdaudio14" not in out
    assert "skipping set tcdaudio14" in err and err.strip().splitlines()[-1].startswith("deepaq: error:")
    # the folder of a single set works too
    code, out, err = run(capsys, "eval", "--suite", "dev", str(root / "phase_abx"), "--peers", "none",
                         "--model", "none", "--bootstrap", "100", "--out", str(tmp_path / "o2"))
    assert code == 0, err and "### phase_abx: 4 rows" in out


def test_suite_records_a_failing_file_and_continues(capsys, monkeypatch, fake_suite, tmp_path):
    from deepaq_core.evaluation import metrics

    orig = metrics.SiSdrMetric.measure

    def flaky(self, reference, degraded):
        if degraded.endswith("C_1_MK.flac") and "/noise/" in degraded:
            raise RuntimeError("boom")
        return orig(self, reference, degraded)

    monkeypatch.setattr(metrics.SiSdrMetric, "measure", flaky)
    code, out, err = run(capsys, "eval", "--suite", "dev", str(fake_suite), "--peers", "none", "--model", "none",
                         "--bootstrap", "100", "--out", str(tmp_path / "o"))
    assert code == 2 and "1 file scorings failed" in err and "boom" in err
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    voip = s["sets"]["tcdvoip"]["si_sdr"]
    assert voip["failed"] == 1 and voip["raw"]["n"] == 19 and voip["talker_cv"]["n"] == 19
    assert "noise (4)" in out and "(n=3)" in out
    assert s["sets"]["tcdvoip"]["logmel_l1"]["raw"]["n"] == 20


def test_suite_default_models():
    from deepaq_core.evaluation import cli, suite

    assert cli.DEFAULT_SUITE_MODELS == suite.DEFAULT_MODELS == ("compact", "compact-untrained")
    assert cli.DEFAULT_SUITE_PEERS == suite.DEFAULT_PEERS == "visqol,zimtohrli"


# ------------------------------------------------------------------ cross-fitting by hand


def test_cross_fitted_predictions_by_hand():
    # Talker A: y = 2x + 1 exactly; talker B: y = 3x exactly. Each mapping (a cubic, monotone)
    # reproduces its line, and is clamped to the x range it was fitted on.
    xa = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    xb = np.array([0.5, 1.5, 2.5, 3.5])
    x = np.concatenate([xa, xb])
    y = np.concatenate([2 * xa + 1, 3 * xb])
    folds = ["A"] * 5 + ["B"] * 4
    pred = cross_fitted_predictions(x, y, folds)
    # A predicted by B's line 3x with x clamped to [0.5, 3.5]; B predicted by A's line 2x + 1.
    expected = np.array([1.5, 3.0, 6.0, 9.0, 10.5, 2.0, 4.0, 6.0, 8.0])
    np.testing.assert_allclose(pred, expected, atol=1e-6)
    # the pooled Pearson, by hand
    e, yy = expected - expected.mean(), y - y.mean()
    r_hand = float(e @ yy / math.sqrt((e @ e) * (yy @ yy)))
    assert correlations(pred, y)["pearson"] == pytest.approx(r_hand, abs=1e-9)
    # the fold order of the items does not matter
    perm = np.array([5, 0, 6, 1, 7, 2, 8, 3, 4])
    np.testing.assert_allclose(cross_fitted_predictions(x[perm], y[perm], [folds[i] for i in perm]),
                               expected[perm], atol=1e-6)


def test_cross_fitted_predictions_missing_values_and_errors():
    x = np.array([0.0, 1.0, np.nan, 3.0, 4.0, 0.5, 1.5, 2.5, 3.5])
    y = np.array([1.0, 3.0, 5.0, 7.0, 9.0, 1.5, 4.5, 7.5, 10.5])
    folds = ["A"] * 5 + ["B"] * 4
    pred = cross_fitted_predictions(x, y, folds)
    assert np.isnan(pred[2]) and np.all(np.isfinite(np.delete(pred, 2)))
    # B's line (3x) on A's x = 0 is clamped to B's range start 0.5 -> 1.5
    assert pred[0] == pytest.approx(1.5, abs=1e-6)
    with pytest.raises(ValueError, match="two folds"):
        cross_fitted_predictions(x, y, ["A"] * 9)
    with pytest.raises(ValueError, match="differ in length"):
        cross_fitted_predictions(x, y, ["A", "B"])
    # a custom fit: the training folds' mean
    pred = cross_fitted_predictions([1, 2, 3, 4], [10, 20, 30, 40], ["A", "A", "B", "B"],
                                    fit=lambda xx, yy: (lambda q: np.full(len(q), np.mean(yy))))
    np.testing.assert_allclose(pred, [35, 35, 15, 15])
