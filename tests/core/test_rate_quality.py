"""Rate-quality ladders: reading them, CIs across excerpts, the Bjøntegaard-delta rate, ``deepaq eval --ladder``."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import soundfile as sf

from deepaq_core.cli import main
from deepaq_core.errors import DeePAQError
from deepaq_core.evaluation.ladder import LADDER_COLUMNS
from deepaq_core.evaluation.rate_quality import (LadderPoint, bd_quality, bd_rate, bd_table, curves_markdown,
                                                 parse_rate_name, rate_quality, read_rate_ladder, write_rate_csv)
from tests.conftest import music_like

SR = 16000


# -- BD-rate on analytic cases ---------------------------------------------------------------


@pytest.mark.parametrize("quality", [
    lambda r: 20 * np.log2(r),                     # linear in log-rate
    lambda r: 100 - 400 / r,                       # saturating
    lambda r: 30 + 12 * np.log(r) - 0.4 * np.log(r) ** 2,
])
def test_bd_rate_half_the_bitrate_is_minus_50_percent(quality):
    rates_a = np.array([16.0, 32.0, 64.0, 128.0, 256.0])
    q = quality(rates_a)
    # codec B reaches every quality of A at half A's bitrate: B's points are A's with rates halved
    assert bd_rate(rates_a, q, rates_a / 2, q) == pytest.approx(-50.0, abs=1e-6)
    assert bd_rate(rates_a / 2, q, rates_a, q) == pytest.approx(100.0, abs=1e-6)  # and the other way round
    assert bd_rate(rates_a, q, rates_a, q) == pytest.approx(0.0, abs=1e-9)


def test_bd_rate_with_a_partial_overlap_and_different_rungs():
    # A: q = 10 log2(r); B: q = 10 log2(r / 0.8) i.e. 20% fewer bits for every quality, at other rungs
    ra = np.array([24.0, 48.0, 96.0, 192.0])
    rb = np.array([12.0, 20.0, 40.0, 64.0, 100.0])
    assert bd_rate(ra, 10 * np.log2(ra), rb, 10 * np.log2(rb / 0.8)) == pytest.approx(-20.0, abs=1e-6)


def test_bd_quality_is_the_score_gap_at_equal_bitrate():
    r = np.array([16.0, 32.0, 64.0, 128.0])
    q = 60 + 8 * np.log2(r / 16)
    assert bd_quality(r, q, r, q + 5) == pytest.approx(5.0, abs=1e-9)
    assert bd_quality(r, q, r[1:], q[1:] - 2.5) == pytest.approx(-2.5, abs=1e-9)


def test_bd_rate_refuses_what_it_cannot_measure():
    r = np.array([16.0, 32.0, 64.0, 128.0])
    with pytest.raises(DeePAQError, match="do not overlap"):
        bd_rate(r, [10, 20, 30, 40], r, [50, 60, 70, 80])
    with pytest.raises(DeePAQError, match="two or more bitrates"):
        bd_rate(r, [10, 20, 30, 40], [64.0], [30.0])
    with pytest.raises(DeePAQError, match="same score"):
        bd_rate(r, [10, 20, 30, 40], r, [25, 25, 25, 25])


# -- names, manifests, folders ---------------------------------------------------------------


@pytest.mark.parametrize("name, expected", [
    ("song_mp3_64kbps.flac", ("mp3", 64.0)),
    ("demo_aac_48k.flac", ("aac", 48.0)),
    ("opus_24.flac", ("opus", 24.0)),
    ("x_Vorbis_96.5kbps.wav", ("vorbis", 96.5)),
    ("demo_lowpass_7k.flac", None),
    ("song_mp3.flac", None),
    ("mp3_0.flac", None),
])
def test_parse_rate_name(name, expected):
    assert parse_rate_name(name) == expected


def _tone_file(path, seed=0, seconds=1.0):
    sf.write(path, music_like(seconds, SR, seed=seed), SR)
    return path


def test_read_a_folder_of_named_versions(tmp_path):
    # the Generate dialog's layout: <ref>_versions/<ref>_<codec>_<rate>kbps.flac next to <ref>.flac
    for song in ("one", "two"):
        _tone_file(tmp_path / f"{song}.flac")
        d = tmp_path / f"{song}_versions"
        d.mkdir()
        for codec, rate in (("mp3", 64), ("mp3", 128), ("opus", 32), ("opus", 64)):
            _tone_file(d / f"{song}_{codec}_{rate}kbps.flac")
        _tone_file(d / f"{song}_lowpass_4000Hz.flac")  # not a codec rung: ignored
    # and the per-excerpt layout with reference.flac
    (tmp_path / "three").mkdir()
    _tone_file(tmp_path / "three" / "reference.flac")
    _tone_file(tmp_path / "three" / "mp3_64.flac")
    pts = read_rate_ladder(tmp_path)
    assert len(pts) == 9
    assert {(p.codec, p.kbps) for p in pts} == {("mp3", 64.0), ("mp3", 128.0), ("opus", 32.0), ("opus", 64.0)}
    for p in pts:
        stem = p.degraded.split("/")[-1].split("_")[0]
        expected = "reference.flac" if stem == "mp3" else f"{stem}.flac"
        assert p.reference.endswith("/" + expected) and p.item == p.reference


def test_read_a_ladder_manifest(tmp_path):
    ref = _tone_file(tmp_path / "reference.flac")
    _tone_file(tmp_path / "mp3_64.flac")
    _tone_file(tmp_path / "lp.flac")
    with open(tmp_path / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, LADDER_COLUMNS)
        w.writeheader()
        base = {"group": "x/mp3", "source": "", "intensity": 0}
        w.writerow({**base, "reference": "reference.flac", "degraded": "reference.flac", "family": "mp3",
                    "param": "", "unit": "kbit/s"})  # the clean rung
        w.writerow({**base, "reference": "reference.flac", "degraded": "mp3_64.flac", "family": "mp3", "param": "64",
                    "unit": "kbit/s"})
        w.writerow({**base, "reference": "reference.flac", "degraded": "lp.flac", "family": "lowpass",
                    "param": "4000", "unit": "Hz"})
    for path in (tmp_path, tmp_path / "manifest.csv"):
        pts = read_rate_ladder(path)
        assert pts == [LadderPoint(str(ref), str(tmp_path / "mp3_64.flac"), "mp3", 64.0, str(ref))]


def test_bad_ladders_say_what_is_wrong(tmp_path):
    with pytest.raises(DeePAQError, match="not found"):
        read_rate_ladder(tmp_path / "nope")
    _tone_file(tmp_path / "a.flac")
    with pytest.raises(DeePAQError, match="no codec versions"):
        read_rate_ladder(tmp_path)
    (tmp_path / "m.csv").write_text("reference,degraded,family,param,unit\na.flac,gone.flac,mp3,64,kbit/s\n")
    with pytest.raises(DeePAQError, match="gone.flac' not found"):
        read_rate_ladder(tmp_path / "m.csv")


# -- curves, tables, CSV ---------------------------------------------------------------------


def test_rate_quality_mean_and_t_interval_across_excerpts(tmp_path):
    pts = [LadderPoint(f"r{i}", f"d{i}{r}", "mp3", r, f"r{i}") for i in range(3) for r in (32.0, 64.0)]
    pts.append(LadderPoint("r0", "o", "opus", 32.0, "r0"))
    scores = {("r0", 32.0): 1.0, ("r1", 32.0): 2.0, ("r2", 32.0): 3.0,
              ("r0", 64.0): 50.0, ("r1", 64.0): math.nan, ("r2", 64.0): 60.0}
    s = [scores[(p.item, p.kbps)] if p.codec == "mp3" else 70.0 for p in pts]
    c = rate_quality(pts, s)
    mp3 = c["mp3"]
    assert mp3.kbps.tolist() == [32.0, 64.0] and mp3.n.tolist() == [3, 2]
    assert mp3.mean.tolist() == pytest.approx([2.0, 55.0])
    # sd 1, n 3: half-width t(0.975, 2) / sqrt(3) = 4.3027 / 1.7321
    assert mp3.high[0] - mp3.mean[0] == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert mp3.mean[0] - mp3.low[0] == pytest.approx(mp3.high[0] - mp3.mean[0])
    assert math.isnan(c["opus"].low[0])  # one excerpt: no interval
    path = tmp_path / "rq.csv"
    write_rate_csv(path, [{"metric": "deepaq:compact", "curves": c, "bd": [], "anchor": "mp3"}])
    rows = list(csv.DictReader(open(path)))
    assert [(r["codec"], r["kbps"], r["n"]) for r in rows] == [("mp3", "32", "3"), ("mp3", "64", "2"),
                                                                ("opus", "32", "1")]
    assert float(rows[1]["mean"]) == pytest.approx(55.0) and rows[2]["ci_low"] == ""


def test_bd_table_and_markdown():
    rates = np.array([16.0, 32.0, 64.0, 128.0])
    q = 20 * np.log2(rates)
    pts, s = [], []
    for codec, scale in (("mp3", 1.0), ("opus", 0.5), ("aac", 1.0)):
        for r, v in zip(rates * scale, q):
            pts.append(LadderPoint("r", f"{codec}{r}", codec, float(r), "r"))
            s.append(v if codec != "aac" else v + 200)  # aac: no overlap with mp3
    curves = rate_quality(pts, s)
    rows = {r["codec"]: r for r in bd_table(curves, "mp3")}
    assert rows["opus"]["bd_rate"] == pytest.approx(-50.0, abs=1e-6)
    assert math.isnan(rows["aac"]["bd_rate"]) and "do not overlap" in rows["aac"]["note"]
    text = curves_markdown(curves, "mp3", bd=list(rows.values()))
    assert "| opus | -50.0% |" in text and "BD-rate against mp3" in text
    with pytest.raises(DeePAQError, match="Anchor codec 'vorbis'"):
        bd_table(curves, "vorbis")


# -- deepaq eval --ladder ----------------------------------------------------------------------


def _noisy(x, snr_db, seed):
    n = np.random.default_rng(seed).standard_normal(x.shape)
    return x + n * np.sqrt(np.mean(x ** 2) / 10 ** (snr_db / 10))


@pytest.fixture(scope="module")
def rate_folder(tmp_path_factory):
    """Two excerpts; 'mp3' and 'opus' versions are the reference plus noise whose SNR grows with the
    bitrate, opus reaching each SNR at half mp3's bitrate (the same noise), so BD-rate(opus) = -50%."""
    root = tmp_path_factory.mktemp("rate")
    for k, song in enumerate(("one", "two")):
        x = music_like(2.0, SR, seed=10 + k)
        sf.write(root / f"{song}.wav", x, SR, subtype="FLOAT")
        d = root / f"{song}_versions"
        d.mkdir()
        for rate in (32, 64, 128, 256):
            y = _noisy(x, 4 * np.log2(rate / 8), seed=rate + k)
            sf.write(d / f"{song}_mp3_{rate}kbps.wav", y, SR, subtype="FLOAT")
            sf.write(d / f"{song}_opus_{rate // 2}kbps.wav", y, SR, subtype="FLOAT")
    return root


def test_eval_ladder_prints_rate_quality_and_bd_rate(capsys, rate_folder, tmp_path):
    out = tmp_path / "out"
    code = main(["eval", "--ladder", str(rate_folder), "--model", "none", "--peers", "none", "--no-plot",
                 "--out", str(out), "--anchor", "mp3"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    assert "rate-quality" in stdout and "BD-rate against mp3" in stdout
    assert "| opus | -50.0% |" in stdout  # for both baselines: opus's files are mp3's at half the rate
    assert stdout.count("| opus | -50.0% |") == 2
    rows = list(csv.DictReader(open(out / "rate_quality.csv")))
    assert {r["metric"] for r in rows} == {"si_sdr", "logmel_l1"}
    assert len(rows) == 2 * 8
    opus = [r for r in rows if r["codec"] == "opus"]
    assert all(float(r["bd_rate_percent"]) == pytest.approx(-50.0, abs=0.05) for r in opus)
    assert all(r["n"] == "2" and r["ci_low"] != "" for r in rows)
    summary = json.loads((out / "summary.json").read_text())["ladder"]
    assert summary["rate_quality"]["si_sdr"]["anchor"] == "mp3"
    # quality rises with the bitrate, as it must for the noise ladder
    m = summary["rate_quality"]["logmel_l1"]["curves"]["mp3"]["mean"]
    assert m == sorted(m)


def test_eval_ladder_anchor_errors(capsys, rate_folder, tmp_path):
    code = main(["eval", "--ladder", str(rate_folder), "--model", "none", "--peers", "none", "--anchor", "aac",
                 "--out", str(tmp_path / "o")])
    _, err = capsys.readouterr()
    assert code == 2 and "--anchor aac" in err and "mp3, opus" in err and err.count("\n") == 1
    code = main(["eval", str(rate_folder / "x.csv"), "--anchor", "mp3", "--out", str(tmp_path / "o")])
    _, err = capsys.readouterr()
    assert code == 2 and "--anchor goes with --ladder" in err
