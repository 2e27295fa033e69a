"""Result flags (suspicious results are marked), the curve's grid and the worst segments."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from deepaq_core.audio import load_audio
from deepaq_core.cli import main
from deepaq_core.distance import DistanceSpec, power_mean
from deepaq_core.embedding import window_grid
from deepaq_core.results import FLAG_TEXT
from deepaq_core.results_io import result_from_json, result_to_json
from deepaq_core.scoring import ScoreSettings, Scorer
from tests.conftest import music_like

SR = 48000


@pytest.fixture(scope="module")
def scorer():
    return Scorer(device="cpu")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("flags")
    ref = music_like(12.0, SR, seed=3)[:, 0]
    paths = {}

    def write(name, x, subtype="PCM_16"):
        p = d / f"{name}.wav"
        sf.write(p, x, SR, subtype=subtype)
        paths[name] = str(p)

    write("ref", ref)
    write("same", ref)
    # A copy whose data chunk was cut: the last 6 s of bytes are gone, the header still says 12 s.
    write("cut", ref)
    data = open(paths["cut"], "rb").read()
    with open(paths["cut"], "wb") as f:
        f.write(data[: len(data) - 6 * SR * 2])
    write("shortened", ref[: int(10.5 * SR)])  # 12.5 % of the reference outside the overlap
    write("inverted", -ref)
    write("late", np.concatenate([np.zeros(int(0.4 * SR), np.float32), ref])[: ref.size])
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 1, ref.size).astype(np.float32)
    noise *= np.sqrt(np.mean(ref**2) / np.mean(noise**2) / 10 ** (20 / 10))
    write("noisy", ref + noise)
    write("ref_64", ref[: int(6.4 * SR)])  # 6.4 s: the regular grid of 3 s windows stops short
    write("noisy_64", (ref + noise)[: int(6.4 * SR)])
    return paths


def test_truncated_wav_is_read_as_short(files):
    buf = load_audio(files["cut"])
    assert buf.info.short
    assert buf.info.frames == 6 * SR and buf.info.header_frames == 12 * SR
    assert not load_audio(files["ref"]).info.short


def test_truncated_flac_is_refused_in_one_sentence(tmp_path):
    from deepaq_core.errors import AudioError

    p = tmp_path / "cut.flac"
    sf.write(p, music_like(6.0, SR)[:, 0], SR, subtype="PCM_16")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="damaged or truncated") as err:
        load_audio(p)
    assert "\n" not in str(err.value)


def test_truncated_wav_is_flagged(scorer, files):
    r = scorer.score(files["ref"], files["cut"])
    assert "short_file" in r.flags and "trimmed" in r.flags
    assert r.trimmed_reference_s == pytest.approx(6.0, abs=0.01)
    # the reference as the cut file is flagged too
    assert "short_file" in scorer.score(files["cut"], files["same"]).flags


def test_trimmed_pair_is_flagged(scorer, files):
    r = scorer.score(files["ref"], files["shortened"])
    assert r.flags == ("trimmed",)
    assert r.trimmed_reference_s == pytest.approx(1.5, abs=0.01)


def test_lag_at_edge_of_a_small_search_is_flagged(files):
    # "late" is 0.4 s late: a search of +-0.4 s finds it on its edge, where a larger true delay
    # would look the same
    small = Scorer(device="cpu", settings=ScoreSettings(max_lag_s=0.4))
    r = small.score(files["ref"], files["late"])
    assert r.alignment.at_edge and r.alignment.lag_ms == pytest.approx(400.0, abs=0.1)
    assert r.flags == ("lag_at_edge",)
    # the automatic (wider) search finds the same delay well inside its range
    assert Scorer(device="cpu").score(files["ref"], files["late"]).flags == ()


def test_inverted_copy_is_flagged_and_scores_high(scorer, files):
    r = scorer.score(files["ref"], files["inverted"])
    assert r.flags == ("inverted",)
    assert r.score >= 95.0


def test_clean_pairs_have_no_flags(scorer, files):
    for name in ("same", "noisy", "late"):
        r = scorer.score(files["ref"], files[name])
        assert r.flags == (), name
    assert scorer.score(files["ref"], files["late"]).alignment.lag_ms == pytest.approx(400.0, abs=0.1)


def test_low_confidence_is_flagged(scorer, tmp_path):
    rng = np.random.default_rng(0)
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(a, rng.normal(0, 0.1, 4 * SR).astype(np.float32), SR)
    sf.write(b, rng.normal(0, 0.1, 4 * SR).astype(np.float32), SR)
    r = scorer.score(str(a), str(b))
    assert r.alignment.confidence < 0.2
    assert "low_confidence" in r.flags


def test_flags_survive_a_json_round_trip_and_old_files_have_none(scorer, files):
    r = scorer.score(files["ref"], files["inverted"])
    doc = json.loads(json.dumps(result_to_json(r)))
    assert result_from_json(doc).flags == ("inverted",)
    del doc["flags"]
    assert result_from_json(doc).flags == ()
    d = r.to_dict()
    assert d["flags"] == ["inverted"] and r.summary()["flags"] == ["inverted"]
    assert set(FLAG_TEXT) == {"trimmed", "short_file", "lag_at_edge", "low_confidence", "inverted", "unrelated"}
    assert r.flag_sentences() == [FLAG_TEXT["inverted"]]


def test_window_grid_is_regular_and_reaches_the_end():
    starts, nominal = window_grid(10, 10 + 480, 225, 37.5)
    assert nominal[0] == 10 and nominal[-1] == 10 + 480 - 225
    assert np.allclose(np.diff(nominal[:-1]), 37.5)
    assert len(starts) == 8 and np.all(np.abs(starts - nominal) <= 0.5)
    # the grid reaches the end by itself: no extra window
    starts, nominal = window_grid(0, 450, 225, 37.5)
    assert len(starts) == 7 and nominal[-1] + 225 == 450
    # integer hop: frames and nominal starts agree exactly
    starts, nominal = window_grid(3, 403, 100, 25.0)
    assert np.array_equal(starts, nominal)
    # shorter than a window: one window over the span
    starts, nominal = window_grid(5, 50, 225, 37.5)
    assert starts.tolist() == [5]


def test_curve_covers_the_overlap_on_a_regular_grid(scorer, files):
    r = scorer.score(files["ref_64"], files["noisy_64"])
    c = r.curve
    # 6.4 s = 480 frames, 3 s windows, 0.5 s hop: 7 windows on the grid and one ending at 6.4 s
    assert c.start_s.shape == (8,)
    assert c.start_s[0] == pytest.approx(r.overlap_start_s, abs=1e-6)
    steps = np.diff(c.start_s)
    assert np.allclose(steps[:-1], 0.5, atol=1e-5)  # exact multiples of the hop
    assert c.end_s[-1] == pytest.approx(r.overlap_end_s, abs=1e-6)
    assert c.end_s[-1] - c.start_s[-1] == pytest.approx(3.0, abs=1e-5)
    assert np.allclose(c.end_s - c.start_s, 3.0, atol=1e-5)
    spec = DistanceSpec.from_card(scorer.loaded.bundle.card)
    assert r.distance == pytest.approx(float(power_mean(c.distance, spec.time_p)), rel=1e-6)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_table_json_and_batch_show_flags(capsys, files, tmp_path):
    code, out, err = run(capsys, "score", files["ref"], files["same"], files["inverted"], "--device", "cpu")
    assert code == 0
    header = next(ln for ln in out.splitlines() if ln.strip().startswith("score"))
    assert "flags" in header.split()
    rows = [ln.split() for ln in out.splitlines() if ln.strip().endswith(".wav")]
    assert rows[0][4] == "-" and rows[1][4] == "inverted"
    assert err.count(FLAG_TEXT["inverted"]) == 1 and "inverted.wav" in err

    code, out, err = run(capsys, "score", files["ref_64"], files["noisy_64"], "--json", "--device", "cpu")
    assert code == 0
    data = json.loads(out)[0]
    assert data["flags"] == []
    worst = data["worst_segments"]
    assert 1 <= len(worst) <= 3
    assert {"start_s", "end_s", "score", "distance"} == set(worst[0])
    assert worst[0]["score"] == pytest.approx(min(data["curve"]["score"]), abs=1e-3)
    for a in worst:  # no two overlap
        for b in worst:
            assert a is b or a["end_s"] <= b["start_s"] or b["end_s"] <= a["start_s"]
    assert data["curve"]["end_s"][-1] == pytest.approx(data["overlap_s"][1], abs=1e-4)

    inp = tmp_path / "pairs.csv"
    inp.write_text(f"reference,degraded\n{files['ref']},{files['inverted']}\n{files['ref']},{files['same']}\n")
    out_csv = tmp_path / "out.csv"
    code, _, _ = run(capsys, "batch", "--batch-input-csv", str(inp), "--results-csv", str(out_csv))
    assert code == 0
    rows = list(csv.DictReader(open(out_csv)))
    assert [r["flags"] for r in rows] == ["inverted", ""]


def test_unrelated_music_is_flagged_and_versions_are_not(tmp_path):
    import soundfile as sf

    from deepaq_core.scoring import Scorer
    from tests.conftest import lowpass, music_like

    sr = 48000
    a = music_like(8.0, sr, seed=21)[:, 0]
    b = music_like(8.0, sr, seed=22)[:, 0]
    paths = {}
    for name, x in {"a": a, "b": b, "a_lp": lowpass(a, sr, 3500)}.items():
        paths[name] = str(tmp_path / f"{name}.wav")
        sf.write(paths[name], x, sr)
    scorer = Scorer(device="cpu")
    unrelated = scorer.score(paths["a"], paths["b"])
    assert "unrelated" in unrelated.flags and "nmr" in " ".join(unrelated.flag_sentences())
    damaged = scorer.score(paths["a"], paths["a_lp"])
    assert "unrelated" not in damaged.flags
