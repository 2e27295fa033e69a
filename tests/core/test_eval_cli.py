"""``deepaq eval`` and the evaluation manifest, ladder and peer handling, on generated audio."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
import soundfile as sf

from deepaq_core.cli import main
from deepaq_core.errors import DeePAQError
from deepaq_core.evaluation.manifest import ManifestRow, load_manifest
from tests.conftest import lowpass, music_like

SR = 48000
try:
    import matplotlib  # noqa: F401

    HAVE_MPL = True
except ImportError:
    HAVE_MPL = False


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    """A manifest of 6 rows over two references: low-pass versions with made-up 'subjective' scores.

    The scores fall with lower cutoffs, so any sensible metric correlates positively. One row of
    each reference is the identity pair. Paths in the CSV are relative.
    """
    d = tmp_path_factory.mktemp("evalset")
    (d / "audio").mkdir()
    rows = []
    for k, name in enumerate(["a", "b"]):
        ref = music_like(3.0, SR, channels=2, seed=10 + k)
        sf.write(d / "audio" / f"{name}.wav", ref, SR, subtype="FLOAT")
        rows.append((f"audio/{name}.wav", f"audio/{name}.wav", 100.0, "identity"))
        for cutoff, score in ((8000, 80.0 - 5 * k), (3000, 55.0 - 5 * k), (1000, 20.0 + 3 * k)):
            fname = f"audio/{name}_lp{cutoff}.wav"
            sf.write(d / fname, lowpass(ref, SR, cutoff), SR, subtype="FLOAT")
            rows.append((f"audio/{name}.wav", fname, score, "lowpass"))
    with open(d / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ref", "deg", "mos", "condition", "note"])
        for r in rows:
            w.writerow([*r, "x"])
    return d


def test_load_manifest_resolves_paths_and_columns(tiny_set):
    rows = load_manifest(tiny_set / "manifest.csv", reference_col="ref", degraded_col="deg", subjective_col="mos",
                         group_col="condition")
    assert len(rows) == 8
    assert isinstance(rows[0], ManifestRow)
    assert rows[0].reference == str((tiny_set / "audio" / "a.wav").resolve())
    assert rows[1].subjective == 80.0 and rows[1].group == "lowpass" and rows[1].extra == {"note": "x"}
    # case-insensitive column match; subjective optional
    rows = load_manifest(tiny_set / "manifest.csv", reference_col="REF", degraded_col="deg", subjective_col="nope",
                         require_subjective=False)
    assert rows[0].subjective is None and rows[0].group is None


def test_load_manifest_errors_are_one_sentence(tiny_set, tmp_path):
    with pytest.raises(DeePAQError, match="no column 'subjective'"):
        load_manifest(tiny_set / "manifest.csv", reference_col="ref", degraded_col="deg")
    with pytest.raises(DeePAQError, match="not found"):
        load_manifest(tmp_path / "nope.csv")
    bad = tmp_path / "m.csv"
    bad.write_text("reference,degraded,subjective\nr.wav,d.wav,3\n")
    with pytest.raises(DeePAQError, match=r"line 2: reference file '.*r\.wav' not found"):
        load_manifest(bad)
    (tmp_path / "r.wav").write_bytes(b"")
    (tmp_path / "d.wav").write_bytes(b"")
    bad.write_text("reference,degraded,subjective\nr.wav,d.wav,good\n")
    with pytest.raises(DeePAQError, match="'good' in column 'subjective' is not a number"):
        load_manifest(bad)
    bad.write_text("degraded,subjective\nd.wav,3\n")
    with pytest.raises(DeePAQError, match="no column 'reference'"):
        load_manifest(bad)
    rows = load_manifest(bad, require_reference=False)  # NMR: no reference column at all
    assert rows[0].reference is None


@pytest.mark.parametrize(
    "content, extra, phrase",
    [
        (None, [], "not found"),
        ("ref,deg,mos\naudio/a.wav,audio/missing.wav,3\n", ["--reference-col", "ref", "--degraded-col", "deg",
                                                           "--subjective-col", "mos"], "missing.wav' not found"),
        ("ref,deg,mos\naudio/a.wav,audio/a.wav,3\n", ["--reference-col", "ref", "--degraded-col", "deg"],
         "no column 'subjective'"),
        ("ref,deg,mos\naudio/a.wav,audio/a.wav,3\n", ["--reference-col", "ref", "--degraded-col", "deg",
                                                     "--subjective-col", "mos", "--group-col", "codec"],
         "no column 'codec'"),
    ],
)
def test_cli_bad_manifest_exits_2_with_one_line(capsys, tiny_set, tmp_path, content, extra, phrase):
    m = tiny_set / "bad_manifest.csv"
    if content is None:
        m = tmp_path / "absent.csv"
    else:
        m.write_text(content)
    code, out, err = run(capsys, "eval", str(m), *extra, "--model", "none", "--peers", "none",
                         "--out", str(tmp_path / "o"))
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("deepaq: error:") and phrase in lines[0]
    assert "Traceback" not in err


def test_cli_eval_writes_items_png_and_markdown(capsys, tiny_set, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = run(capsys, "eval", str(tiny_set / "manifest.csv"), "--reference-col", "ref",
                         "--degraded-col", "deg", "--subjective-col", "mos", "--group-col", "condition",
                         "--model", "compact", "--peers", "none", "--device", "cpu", "--bootstrap", "200",
                         "--out", str(out_dir))
    assert code == 0, err
    from deepaq_core.model.registry import resolve

    assert resolve("compact").card["status"] in err  # the built-in model's status is stated
    with open(out_dir / "items.csv", newline="") as f:
        items = list(csv.DictReader(f))
    assert len(items) == 8
    for col in ("deepaq:compact", "deepaq:compact_score", "deepaq:compact_s", "si_sdr", "si_sdr_s", "logmel_l1",
                "logmel_l1_s"):
        assert items[1][col] != "", col
    assert items[0]["reference"] == "audio/a.wav"  # relative to the manifest
    assert float(items[0]["logmel_l1"]) == pytest.approx(0.0, abs=1e-6)  # identity pair
    assert float(items[0]["si_sdr"]) == 100.0  # capped
    if HAVE_MPL:
        assert (out_dir / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:  # plots are optional: one line says why there is none
        assert not (out_dir / "scatter.png").exists() and "no plot: matplotlib is not installed" in err
    md = (out_dir / "summary.md").read_text()
    assert "| logmel_l1 ↓ | 8 |" in md and "without the 2 identity rows" in md
    assert "Pearson [95% CI]" in out
    summary = json.loads((out_dir / "summary.json").read_text())
    lm = summary["all"]["logmel_l1"]
    # lower cutoff = lower score and a larger log-mel distance: positive after orientation
    assert lm["overall"]["spearman"] > 0.8
    assert lm["timing"]["files"] == 8 and lm["timing"]["median_s"] > 0
    assert set(summary["all"]["logmel_l1"]["groups"]) == {"identity", "lowpass"}


@pytest.fixture(scope="module")
def clean_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("clean")
    p = d / "clean_piece.wav"
    sf.write(p, music_like(3.0, SR, channels=1, seed=21), SR, subtype="FLOAT")
    return p


def test_ladder_mode_logmel_orders_a_lowpass_ladder(capsys, clean_file, tmp_path):
    out_dir = tmp_path / "lad"
    code, out, err = run(capsys, "eval", "--make-ladder", str(clean_file), "--families", "lowpass",
                         "--model", "none", "--peers", "none", "--out", str(out_dir))
    assert code == 0, err
    manifest = out_dir / "ladder" / "manifest.csv"
    rows = load_manifest(manifest, subjective_col="intensity", group_col="group")
    assert len(rows) == 8  # clean + 7 cutoffs
    assert rows[0].degraded == rows[0].reference and rows[0].subjective == 0.0
    summary = json.loads((out_dir / "summary.json").read_text())["ladder"]
    lm = summary["logmel_l1"]
    assert lm["mean_spearman"] >= 0.95
    assert lm["pairs_ordered"] >= 0.95
    assert lm["families"]["lowpass"]["n_pairs"] == 28
    assert (out_dir / "ladder.png").exists() == HAVE_MPL
    assert "pairs ordered" in out
    # the same ladder again through --ladder DIR
    code, out, err = run(capsys, "eval", "--ladder", str(out_dir / "ladder"), "--model", "none", "--peers", "none",
                         "--out", str(tmp_path / "lad2"), "--no-plot")
    assert code == 0, err
    again = json.loads((tmp_path / "lad2" / "summary.json").read_text())["ladder"]["logmel_l1"]
    assert again["mean_spearman"] == pytest.approx(lm["mean_spearman"])
    assert not (tmp_path / "lad2" / "ladder.png").exists()


def test_eval_needs_exactly_one_mode(capsys, tmp_path):
    code, out, err = run(capsys, "eval", "--model", "none", "--out", str(tmp_path))
    assert code == 2 and "exactly one of" in err


@pytest.mark.parametrize("peer, module", [("visqol", "visqol"), ("zimtohrli", "zimtohrli"), ("cdpam", "cdpam")])
def test_peer_skipped_with_one_line_when_not_installed(monkeypatch, peer, module):
    from deepaq_core.evaluation.peers import load_peers

    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    metrics, notes = load_peers([peer])
    assert metrics == []
    assert len(notes) == 1 and notes[0].startswith(f"skipping peer '{peer}': not installed (pip install")
    assert "\n" not in notes[0]


def test_cli_reports_skipped_peers_and_still_runs(capsys, monkeypatch, tiny_set, tmp_path):
    for module in ("visqol", "zimtohrli", "cdpam"):
        monkeypatch.setitem(sys.modules, module, None)
    code, out, err = run(capsys, "eval", str(tiny_set / "manifest.csv"), "--reference-col", "ref",
                         "--degraded-col", "deg", "--subjective-col", "mos", "--model", "none",
                         "--out", str(tmp_path / "o"), "--no-plot", "--bootstrap", "100")
    assert code == 0, err
    skipped = [ln for ln in err.splitlines() if "skipping peer" in ln]
    assert len(skipped) == 3
    assert "| si_sdr ↑ |" in out


def test_unknown_peer_and_model_are_user_errors(capsys, tiny_set, tmp_path):
    code, out, err = run(capsys, "eval", str(tiny_set / "manifest.csv"), "--reference-col", "ref",
                         "--degraded-col", "deg", "--subjective-col", "mos", "--peers", "pesq",
                         "--model", "none", "--out", str(tmp_path / "o"))
    assert code == 2 and "Unknown peer metric 'pesq'" in err
    code, out, err = run(capsys, "eval", str(tiny_set / "manifest.csv"), "--reference-col", "ref",
                         "--degraded-col", "deg", "--subjective-col", "mos", "--peers", "none",
                         "--model", "no-such-model", "--out", str(tmp_path / "o"))
    assert code == 2 and "Unknown model 'no-such-model'" in err


def test_baselines_on_arrays():
    from deepaq_core.evaluation.baselines import si_sdr

    rng = np.random.default_rng(0)
    x = rng.normal(size=48000)
    n = rng.normal(size=48000)
    n *= np.sqrt(np.sum(x**2) / np.sum(n**2)) / 10.0  # noise 20 dB below the signal
    assert si_sdr(x, 0.3 * (x + n)) == pytest.approx(20.0, abs=0.3)  # scale-invariant
    assert si_sdr(x, x) == 100.0


def test_registration_imports_nothing_heavy():
    import subprocess

    code = ("import sys, argparse; from deepaq_core.evaluation import cli; "
            "p = argparse.ArgumentParser(); cli.register(p.add_subparsers()); "
            "heavy = [m for m in ('numpy', 'torch', 'scipy', 'matplotlib', 'visqol', 'cdpam') if m in sys.modules]; "
            "print(','.join(heavy))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == ""


def test_nmr_rows_use_clean_recordings_for_deepaq_only(capsys, tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    for k in range(2):
        sf.write(clean / f"c{k}.wav", music_like(2.0, SR, seed=40 + k), SR, subtype="FLOAT")
    x = music_like(2.0, SR, seed=50)
    sf.write(tmp_path / "good.wav", x, SR, subtype="FLOAT")
    sf.write(tmp_path / "bad.wav", lowpass(x, SR, 1500), SR, subtype="FLOAT")
    sf.write(tmp_path / "mid.wav", lowpass(x, SR, 5000), SR, subtype="FLOAT")
    (tmp_path / "m.csv").write_text("degraded,subjective\ngood.wav,90\nmid.wav,60\nbad.wav,30\n")
    code, out, err = run(capsys, "eval", str(tmp_path / "m.csv"), "--clean", str(clean), "--model", "compact",
                         "--peers", "none", "--device", "cpu", "--out", str(tmp_path / "o"), "--no-plot",
                         "--bootstrap", "100")
    assert code == 0, err
    with open(tmp_path / "o" / "items.csv", newline="") as f:
        items = list(csv.DictReader(f))
    assert all(float(r["deepaq:compact"]) > 0 for r in items)  # NMR distances
    assert all(r["si_sdr"] == "" and r["si_sdr_error"].startswith("no reference") for r in items)


def test_plots_are_skipped_without_matplotlib(monkeypatch, tmp_path):
    from deepaq_core.evaluation import report
    from deepaq_core.evaluation.runner import MetricRun

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    rows = [ManifestRow("r.wav", f"d{k}.wav", float(k), None, {}) for k in range(4)]
    v = np.arange(4.0)
    run_ = MetricRun({"name": "m", "higher_is_better": True, "unit": ""}, v, v, v)
    assert report.scatter_png(tmp_path / "s.png", rows, [run_], {}) is None
    assert report.ladder_png(tmp_path / "l.png", rows, [run_], {}) is None
    assert not (tmp_path / "s.png").exists()
