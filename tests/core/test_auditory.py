"""The built-in auditory model: front end, disturbance distance, time following, robust gain, scale ends."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from deepaq_core.audio import AudioBuffer
from deepaq_core.audio.loudness import integrated_loudness, robust_matching_gain_db
from deepaq_core.distance import DistanceSpec, loudness_disturbance, power_mean, window_power_means
from deepaq_core.model.auditory import AuditoryBackbone, AuditoryConfig, auditory_bands, band_count
from deepaq_core.scoring import ScoreSettings, Scorer
from deepaq_core.timewarp import follow_time
from tests.conftest import lowpass, music_like

SR = 48000


@pytest.fixture(scope="module")
def backbone():
    return AuditoryBackbone()


@pytest.fixture(scope="module")
def scorer():
    return Scorer(device="cpu")


def _buf(x: np.ndarray) -> AudioBuffer:
    return AudioBuffer(np.asarray(x, np.float32)[None, :], SR, None)


def _sine(f: float, level_db: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (np.sqrt(2) * 10 ** (level_db / 20) * np.sin(2 * np.pi * f * t)).astype(np.float32)


# -- front end -------------------------------------------------------------------------------
def test_front_end_shapes_and_bands(backbone):
    cfg = AuditoryConfig()
    assert backbone.hidden_size == band_count(cfg) == auditory_bands(cfg)["centre_hz"].size
    fc = auditory_bands(cfg)["centre_hz"]
    assert fc[0] == pytest.approx(cfg.f_min, rel=1e-6) and 19000 < fc[-1] <= cfg.f_max
    n = SR  # 1 s
    states = backbone(torch.zeros(2, n))
    assert len(states) == backbone.num_hidden_states == 2
    assert states[1].shape == (2, backbone.num_frames(n), backbone.hidden_size)
    assert torch.all(states[1] == 0)  # silence is below every band's threshold


def test_sine_excites_its_band_and_louder_is_louder(backbone):
    fc = backbone.centre_hz
    for f in (250.0, 1000.0, 4000.0, 15000.0):
        loud = backbone(torch.from_numpy(_sine(f, -20.0))[None])[1][0].mean(0).numpy()
        assert abs(fc[int(np.argmax(loud))] - f) / f < 0.08, f
    quiet = backbone(torch.from_numpy(_sine(1000, -40.0))[None])[1][0].sum(-1).mean()
    loud = backbone(torch.from_numpy(_sine(1000, -20.0))[None])[1][0].sum(-1).mean()
    # Zwicker's law: +20 dB is about 2^(20/10 * 0.23 / 0.3) ~ 2.9x the loudness, not 10x.
    assert 2.0 < float(loud / quiet) < 5.0


def test_full_band_sees_above_12_khz(backbone):
    x = (0.03 * np.random.default_rng(3).normal(size=2 * SR)).astype(np.float32)  # white noise, -30 dBFS
    y = lowpass(x, SR, 16000)
    nx = backbone(torch.from_numpy(x)[None])[1][0].numpy()
    ny = backbone(torch.from_numpy(y)[None])[1][0].numpy()
    top = backbone.centre_hz > 17000
    assert nx[:, top].mean() > 1.5 * ny[:, top].mean()  # (masking spreads some energy upwards)


# -- distance --------------------------------------------------------------------------------
def test_disturbance_equals_a_naive_loop():
    rng = np.random.default_rng(0)
    ref = rng.gamma(2.0, 0.3, size=(7, 11))
    deg = np.maximum(ref + rng.normal(0, 0.3, size=ref.shape), 0)
    spec = DistanceSpec(type="loudness_disturbance", mask=0.1, weight_added=1.0, weight_missing=0.5, band_p=2.0)
    got = loudness_disturbance(ref, deg, spec)
    for t in range(ref.shape[0]):
        acc = 0.0
        for k in range(ref.shape[1]):
            r, d = ref[t, k], deg[t, k]
            v = max(abs(d - r) - 0.1 * min(r, d), 0.0) * (1.0 if d > r else 0.5)
            acc += v**2
        assert got[t] == pytest.approx((acc / ref.shape[1]) ** 0.5, rel=1e-12)


def test_window_power_means_match_direct_computation():
    rng = np.random.default_rng(1)
    fd = rng.random(100)
    starts = np.array([0, 10, 37, 80])
    got = window_power_means(fd, starts, 30, 100, 4.0)
    want = [np.mean(fd[s : min(s + 30, 100)] ** 4) ** 0.25 for s in starts]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert power_mean(np.array([1.0, 1.0, 4.0]), 4.0) > np.mean([1.0, 1.0, 4.0])


# -- time following --------------------------------------------------------------------------
def test_follow_time_recovers_dropped_frames():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(300, 8))
    deg = np.concatenate([ref[:100], ref[112:], rng.normal(size=(12, 8))])  # 12 frames missing at 100
    warp = follow_time(ref, deg, band=40, penalty=0.5)
    assert warp.dropped_frames - warp.inserted_frames == 12 and warp.inserted_frames <= 1  # the tail is free
    assert np.array_equal(warp.path[:100], np.arange(100))
    # Where within the lost stretch the path waits is arbitrary (those reference frames have no
    # counterpart); after it, every frame finds its own again.
    assert np.array_equal(warp.path[118:280], np.arange(106, 268))
    ident = follow_time(ref, ref, band=40, penalty=0.5)
    assert ident.dropped_frames == ident.inserted_frames == 0 and np.array_equal(ident.path, np.arange(300))


def test_follow_time_recovers_inserted_frames():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(200, 8))
    deg = np.concatenate([ref[:50], rng.normal(size=(6, 8)), ref[50:]])[:200]  # 6 frames inserted at 50
    warp = follow_time(ref, deg, band=30, penalty=0.5)
    assert warp.inserted_frames == 6
    assert np.array_equal(warp.path[60:190], np.arange(66, 196))


def test_stretches_are_runs_of_equal_lag():
    from deepaq_core.timewarp import stretches

    assert stretches(np.array([0, 0, -1, -1, -1, 2])) == [(0, 2, 0), (2, 5, -1), (5, 6, 2)]
    assert stretches(np.array([], dtype=int)) == []


def test_realign_samples_lines_up_each_stretch_to_the_sample():
    from deepaq_core.timewarp import TimeWarp, realign_samples

    rng = np.random.default_rng(9)
    hop = 640
    x = rng.normal(size=40 * hop).astype(np.float32)
    p, gap = 15 * hop + 200, 960  # 20 ms (1.5 frames) deleted inside frame 15
    y = np.concatenate([x[:p], x[p + gap :]])
    lag = np.zeros(40, dtype=np.int64)
    lag[17:] = -2  # the frame path can only say -1 or -2 frames
    warp = TimeWarp(path=np.arange(40) + lag, dropped_frames=2, inserted_frames=0)
    recut = realign_samples(x, y, 0, warp, 0, hop)
    out = recut.samples
    assert out.shape == y.shape and out.dtype == np.float32
    assert recut.dropped_samples == gap and recut.inserted_samples == 0  # the deleted 20 ms, to the sample
    assert recut.shift_at(np.array([0, 30 * hop])).tolist() == [0, -gap]
    np.testing.assert_array_equal(out[: 15 * hop], x[: 15 * hop])  # before the deletion: as it was
    np.testing.assert_array_equal(out[17 * hop : y.size - 2 * hop], x[17 * hop : y.size - 2 * hop])  # to the sample
    assert realign_samples(x, x, 0, TimeWarp(np.arange(40), 0, 0), 0, hop) is None  # nothing to do
    # the evidence is a normalised correlation: the same decision and offsets at any level
    quiet = realign_samples(x * 1e-3, y * 1e-3, 0, warp, 0, hop)
    assert quiet is not None and quiet.pieces == recut.pieces
    # a path that wandered where the signal did not move in time (damage, not time, made other
    # frames look alike) is left to the frame comparison: nothing is re-cut
    noisy = x + 0.5 * rng.normal(size=x.size).astype(np.float32)
    wander = np.zeros(40, dtype=np.int64)
    wander[20:30] = 1
    assert realign_samples(x, noisy, 0, TimeWarp(np.arange(40) + wander, 0, 1), 0, hop) is None


def test_a_deletion_between_frame_multiples_costs_about_what_one_on_them_costs(scorer):
    # The frame path moves in 13.3 ms steps; a deleted 20 ms packet left everything after it up
    # to 6.7 ms off, which cost more than the deletion (69.4 against 93.0 for 26.7 ms here).
    x = music_like(8.0, SR, seed=3)[:, 0]
    p = int(3.1 * SR)
    r960, r1280 = (scorer.score(_buf(x), _buf(np.concatenate([x[:p], x[p + n :]]))) for n in (960, 1280))
    assert abs(r960.score - r1280.score) < 10.0, (r960.score, r1280.score)
    # the time reported lost is the deleted time, and the local lag steps by it (relative to the
    # global alignment, which follows the longer part: the one after the deletion)
    assert r960.time_dropped_s == pytest.approx(0.020, abs=0.002) and r960.time_inserted_s < 0.002
    lag = r960.local_lag_s
    assert np.nanmedian(lag[:100]) - np.nanmedian(lag[-100:]) == pytest.approx(0.020, abs=0.002)


# -- loudness matching -----------------------------------------------------------------------
def test_median_gain_ignores_a_local_burst_and_matches_a_global_change():
    x = music_like(10.0, SR, seed=4)[:, 0][None, :]
    y = x.copy()
    y[:, 5 * SR : 5 * SR + int(0.3 * SR)] *= 10.0  # a 0.3 s burst, +20 dB
    gain, _, _, method = robust_matching_gain_db(x, y, SR)
    integrated = integrated_loudness(x, SR) - integrated_loudness(y, SR)
    assert method == "median" and abs(gain) < 0.05 and integrated < -1.0
    gain, _, _, _ = robust_matching_gain_db(x, x * 0.5, SR)
    assert gain == pytest.approx(20 * np.log10(2), abs=0.01)


# -- the scale, end to end -------------------------------------------------------------------
@pytest.fixture(scope="module")
def music():
    return music_like(10.0, SR, seed=5)[:, 0]


def test_inaudible_changes_score_as_transparent(scorer, music):
    x = music
    shifted = np.imag(scipy.signal.hilbert(x)).astype(np.float32)  # constant 90-degree phase shift
    for name, y in {"same": x, "+0.5 dB": x * 10 ** (0.5 / 20), "1 ms delay": np.concatenate([np.zeros(48), x])[: x.size],
                    "90-degree phase": shifted}.items():
        r = scorer.score(_buf(x), _buf(y))
        assert r.score >= 95.0, (name, r.score)


@pytest.mark.parametrize("seed", [7, 13])
def test_phase_shift_of_music_cut_while_it_sounds_stays_transparent(scorer, seed):
    # Frames whose analysis window reaches past the end of the file see the cut, and the cut
    # spreads what is sounding there over every band, differently for the two phases: those
    # frames take no part in the distance. These two signals scored 92.4 and 92.3 when they did,
    # their worst frame the last one.
    x = music_like(10.0, SR, seed=seed)[:, 0]
    assert np.abs(x[-200:]).max() > 0.01  # still sounding at the cut
    shifted = np.imag(scipy.signal.hilbert(x)).astype(np.float32)
    r = scorer.score(_buf(x), _buf(shifted))
    assert r.score >= 95.0, r.score
    edge = np.isnan(r.frame_distance)
    assert edge[:2].all() and edge[-2:].all() and not edge[2:-2].any()


def test_only_frames_with_their_whole_window_inside_the_span_are_scored():
    from deepaq_core.embedding import _Signal

    class _M:  # the auditory front end's framing: 2048-point window, 640-sample hop
        hop_length, receptive_field, sample_rate = 640, 2048, SR
        backbone = type("B", (), {"needs_context": False})()
        head = type("H", (), {"dim": 80})()

    sig = _Signal(_M(), np.zeros(SR, np.float32), 10.0, 0.0, 64, (3000, 40000))
    k = np.arange(sig.total)
    first = k * 640 - (2048 - 640) // 2
    assert np.array_equal(sig.valid, (k * 640 >= 3000) & ((k + 1) * 640 <= 40000))
    assert np.array_equal(sig.whole, sig.valid & (first >= 3000) & (first + 2048 <= 40000))
    assert 0 < sig.whole.sum() < sig.valid.sum()
    short = _Signal(_M(), np.zeros(1300, np.float32), 10.0, 0.0, 64, None)  # no whole window fits
    assert np.array_equal(short.whole, short.valid) and short.valid.any()


def test_bandwidth_ladder_and_unrelated_music(scorer, music):
    x = music
    s16, s7, s35 = (scorer.score(_buf(x), _buf(lowpass(x, SR, fc))).score for fc in (16000, 7000, 3500))
    assert 100.0 > s16 > s7 > s35  # full band: a 16 kHz low-pass is seen, and ranks above 7 kHz
    unrelated = scorer.score(_buf(x), _buf(music_like(10.0, SR, seed=11)[:, 0])).score
    assert unrelated < s35


def test_clipping_burst_stays_where_it_is(scorer, music):
    x = music
    y = x.copy()
    seg = slice(5 * SR, 5 * SR + int(0.3 * SR))
    peak = np.abs(x[seg]).max()
    y[seg] = np.clip(x[seg] * 4, -peak * 0.5, peak * 0.5)
    r = scorer.score(_buf(x), _buf(y))
    has = (r.curve.start_s <= 5.3) & (r.curve.end_s >= 5.0)
    assert has[int(np.argmin(r.curve.score))]
    assert r.curve.score[~has].min() >= 97.0
    assert r.gain_method == "median" and abs(r.gain_db) < 0.05


def test_dropped_time_is_followed_and_reported(music):
    x = music
    keep = np.ones(x.size, bool)
    for t0 in (2.0, 4.5, 7.0):
        keep[int(t0 * SR) : int(t0 * SR) + int(0.04 * SR)] = False
    y = x[keep]
    follow = Scorer(device="cpu", settings=ScoreSettings(follow_time=True)).score(_buf(x), _buf(y))
    rigid = Scorer(device="cpu", settings=ScoreSettings(follow_time=False)).score(_buf(x), _buf(y))
    assert follow.time_dropped_s == pytest.approx(0.12, abs=0.03)
    assert rigid.time_dropped_s == 0.0 and rigid.local_lag_s is None
    assert follow.score > rigid.score + 10
    lag = follow.local_lag_s[np.isfinite(follow.local_lag_s)]
    # degraded[n + lag] ~ reference[n]: the degraded file runs 0.12 s early by the end
    assert lag[-1] - lag[0] == pytest.approx(-0.12, abs=0.03)


def test_a_path_that_wanders_both_ways_is_not_followed(scorer, tmp_path):
    import json
    import shutil

    from deepaq_core.model.registry import builtin_dir

    # Two unrelated pieces: the path finds look-alike frames by dropping and inserting time back
    # and forth; the shipped card compares such a pair at the global alignment instead.
    x = music_like(10.0, SR, seed=4)[:, 0]
    y = music_like(10.0, SR, seed=7)[:, 0]
    limit = scorer.loaded.bundle.card["local_alignment"]["max_wander"]
    assert limit > 0
    r = scorer.score(_buf(x), _buf(y))
    rigid = Scorer(device="cpu", settings=ScoreSettings(follow_time=False)).score(_buf(x), _buf(y))
    assert r.time_dropped_s == 0.0 and r.time_inserted_s == 0.0 and r.local_lag_s is None
    assert r.distance == pytest.approx(rigid.distance, rel=1e-6)
    # Without the limit the same pair is followed, and the wandering path makes it look closer.
    free = tmp_path / "free"
    shutil.copytree(builtin_dir() / "compact", free)
    card = json.loads((free / "card.json").read_text())
    del card["local_alignment"]["max_wander"]
    (free / "card.json").write_text(json.dumps(card))
    f = Scorer(str(free), device="cpu").score(_buf(x), _buf(y))
    assert min(f.time_dropped_s, f.time_inserted_s) > limit * (f.overlap_end_s - f.overlap_start_s)
    assert f.distance < r.distance


def test_lost_bandwidth_counts_bands_not_loudness():
    from deepaq_core.distance import lost_bandwidth

    spec = DistanceSpec(type="loudness_disturbance", lost_weight=2.0, lost_floor=0.2)
    rng = np.random.default_rng(4)
    ref = rng.gamma(2.0, 0.5, size=(5, 20)) + 0.3
    ref[:, 15:] = 0.25  # a quiet but audible top
    deg = ref.copy()
    deg[:, 15:] = 0.0  # ... removed: 5 of 20 bands lost
    np.testing.assert_allclose(lost_bandwidth(ref, deg, spec), 5 / 20)
    # the same loss on a loud top counts the same, although it removes far more loudness
    loud = ref.copy()
    loud[:, 15:] = 8.0
    np.testing.assert_allclose(lost_bandwidth(loud, deg, spec), 5 / 20)
    # added energy and inaudible bands are not losses; half a band's loudness is half a band
    assert np.all(lost_bandwidth(ref, ref * 1.5, spec) == 0)
    quiet = ref.copy()
    quiet[:, 15:] = 0.1
    np.testing.assert_allclose(lost_bandwidth(quiet, deg, spec), 0.0)
    half = ref.copy()
    half[:, 15:] = 0.125
    np.testing.assert_allclose(lost_bandwidth(ref, half, spec), 2.5 / 20)


def test_frame_disturbance_adds_the_weighted_lost_bandwidth_after_normalising():
    from deepaq_core.distance import frame_disturbance, lost_bandwidth

    rng = np.random.default_rng(5)
    ref = rng.gamma(2.0, 0.5, size=(6, 12))
    deg = np.maximum(ref + rng.normal(0, 0.4, size=ref.shape), 0)
    off = DistanceSpec(type="loudness_disturbance", mask=0.1, lost_weight=0.0)
    on = DistanceSpec(type="loudness_disturbance", mask=0.1, lost_weight=1.5)
    np.testing.assert_allclose(frame_disturbance(ref, deg, off, 2.0), loudness_disturbance(ref, deg, off) / 2.0)
    np.testing.assert_allclose(frame_disturbance(ref, deg, on, 2.0),
                               loudness_disturbance(ref, deg, on) / 2.0 + 1.5 * lost_bandwidth(ref, deg, on))


def test_steady_lag_removes_brief_excursions_and_keeps_lasting_steps():
    from deepaq_core.timewarp import TimeWarp, steady_lag

    n = 60
    lag = np.zeros(n, dtype=np.int64)
    lag[10:12] = -1  # a repeated packet: the path steps back and returns
    lag[30:] = 2  # deleted time: the lag changes for good
    warp = TimeWarp(path=np.clip(np.arange(n) + lag, 0, n - 1), dropped_frames=0, inserted_frames=0)
    got = steady_lag(warp, 9)
    want = np.zeros(n, dtype=np.int64)
    want[30:] = 2
    np.testing.assert_array_equal(got.lag_frames()[:58], want[:58])  # (the last two hit the end)
    assert got.inserted_frames == 2 and got.dropped_frames >= 2  # the step, and the clipped end
    assert steady_lag(warp, 1).path.tolist() != got.path.tolist()


def test_lost_structure_sees_unrelated_envelopes_and_ignores_gain_and_steady_bands():
    from deepaq_core.distance import lost_structure

    spec = DistanceSpec(type="loudness_disturbance", lost_floor=0.1, structure_weight=2.0, structure_frames=16,
                        structure_cv=0.2, structure_tolerance=0.1)
    rng = np.random.default_rng(6)
    ref = rng.gamma(2.0, 0.5, size=(300, 20)) + 0.2  # every band audible and fluctuating
    np.testing.assert_allclose(lost_structure(ref, ref, spec), 0.0, atol=1e-9)
    np.testing.assert_allclose(lost_structure(ref, 1.7 * ref, spec), 0.0, atol=1e-9)  # a gain is not damage
    other = rng.gamma(2.0, 0.5, size=ref.shape) + 0.2  # an unrelated signal with the same statistics
    assert lost_structure(ref, other, spec).mean() > 0.6
    # a mild change of the envelope (correlation above 1 - tolerance) is not counted ...
    mild = ref + 0.05 * rng.normal(size=ref.shape)
    assert lost_structure(ref, mild, spec).mean() < 0.02
    # ... an envelope flattened where the reference fluctuates is lost entirely
    flat = ref.copy()
    flat[:, :5] = ref[:, :5].mean()
    np.testing.assert_allclose(lost_structure(ref, flat, spec)[20:-20], 5 / 20, atol=1e-9)
    # a steady reference band has no structure to lose, and an inaudible one does not count
    steady = ref.copy()
    steady[:, :10] = 1.0
    quiet = ref.copy()
    quiet[:, :10] *= 0.01
    for r in (steady, quiet):
        scrambled = r.copy()
        scrambled[:, :10] = other[:, :10] * r[:, :10].mean() / other[:, :10].mean()
        scrambled[:, 10:] = r[:, 10:]
        assert lost_structure(r, scrambled, spec).mean() < 0.01


def test_sequence_disturbance_adds_the_weighted_lost_structure():
    from deepaq_core.distance import frame_disturbance, lost_structure, sequence_disturbance

    rng = np.random.default_rng(7)
    ref = rng.gamma(2.0, 0.5, size=(80, 12))
    deg = np.maximum(ref + rng.normal(0, 0.4, size=ref.shape), 0)
    off = DistanceSpec(type="loudness_disturbance", lost_weight=1.0, structure_weight=0.0)
    on = DistanceSpec(type="loudness_disturbance", lost_weight=1.0, structure_weight=2.5)
    np.testing.assert_allclose(sequence_disturbance(ref, deg, off, 2.0), frame_disturbance(ref, deg, off, 2.0))
    got = sequence_disturbance(ref, deg, on, 2.0)
    np.testing.assert_allclose(got, frame_disturbance(ref, deg, on, 2.0) + 2.5 * lost_structure(ref, deg, on))
    assert np.all(got > frame_disturbance(ref, deg, on, 2.0))


def test_lost_structure_in_blocks_equals_one_pass_over_the_file():
    from scipy.ndimage import uniform_filter1d

    from deepaq_core.distance import lost_structure

    spec = DistanceSpec(type="loudness_disturbance", lost_floor=0.1, structure_weight=2.0, structure_frames=16,
                        structure_cv=0.2, structure_tolerance=0.1)
    rng = np.random.default_rng(8)
    n = 5000  # more than two blocks
    ref = rng.gamma(2.0, 0.5, size=(n, 12))
    deg = np.maximum(ref + rng.normal(0, 0.6, size=ref.shape), 0)
    deg[1000:3000, :4] = 0.7  # flat where the reference fluctuates, across a block boundary

    def mean(x):
        return uniform_filter1d(x, 16, axis=0, mode="nearest")

    mr, md = mean(ref), mean(deg)
    vr, vd = np.maximum(mean(ref**2) - mr**2, 0), np.maximum(mean(deg**2) - md**2, 0)
    cov = mean(ref * deg) - mr * md
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.where(vr * vd > 1e-14, cov / np.sqrt(vr * vd), np.where(vr > 1e-7, 0.0, 1.0))
    weight = (mr > 0.1) * np.minimum(1.0, np.sqrt(vr) / mr / 0.2)
    want = np.sum(weight * np.maximum(0.9 - np.clip(corr, 0, 1), 0) / 0.9, axis=1) / 12
    np.testing.assert_allclose(lost_structure(ref, deg, spec), want, rtol=1e-9, atol=1e-12)


def test_reliable_bins_weights_bands_measured_on_few_spectrum_bins():
    from deepaq_core.errors import ModelError
    from deepaq_core.model.auditory import auditory_card

    cfg = AuditoryConfig()
    bands = auditory_bands(cfg)
    fc, bins = bands["centre_hz"], bands["bins"]
    assert bins[fc < 250].max() < 1.2 and bins[fc > 2000].min() > 5  # one bin low down, many higher up
    dist = {"type": "loudness_disturbance", "mask": 0.1, "reliable_bins": 1.5}
    spec = DistanceSpec.from_card(auditory_card(cfg, dist, {"type": "exp2", "d50": 0.5, "power": 1.0}, None))
    w = np.asarray(spec.band_weights)
    assert w.shape == fc.shape and np.all(w[fc < 250] < 0.8) and np.all(w[fc > 1000] == 1.0)
    plain = DistanceSpec.from_card(auditory_card(cfg, {**dist, "reliable_bins": 0.0}, {"type": "exp2"}, None))
    assert plain.band_weights is None
    # the same loudness change counts less in a band that rests on one bin than in one on many
    ref = np.ones((3, fc.size))
    low, mid = ref.copy(), ref.copy()
    low[:, 2] = 2.0
    mid[:, int(np.argmin(np.abs(fc - 2000)))] = 2.0
    assert loudness_disturbance(ref, low, spec)[0] < 0.7 * loudness_disturbance(ref, mid, spec)[0]
    np.testing.assert_allclose(loudness_disturbance(ref, low, plain), loudness_disturbance(ref, mid, plain))
    # a card cannot smuggle weights in, and the setting needs the auditory front end
    assert DistanceSpec.from_card({"distance": {**dist, "reliable_bins": 0.0, "band_weights": [0.0]}}).band_weights is None
    with pytest.raises(ModelError, match="reliable_bins"):
        DistanceSpec.from_card({"backbone": {"type": "compact"}, "distance": dist})


def test_reliable_bins_lowers_the_disturbance_of_a_phase_shifted_noise(backbone):
    # A constant 90-degree phase shift of pink noise is inaudible; the loudness of the one-bin
    # bands at the bottom moves with it, and the weighting takes most of that out.
    from deepaq_core.model.auditory import auditory_card

    rng = np.random.default_rng(11)
    white = rng.normal(size=4 * SR)
    f = np.fft.rfftfreq(white.size, 1 / SR)
    pink = np.fft.irfft(np.fft.rfft(white) / np.sqrt(np.maximum(f, 20.0)), n=white.size)
    pink = 0.05 * pink / np.std(pink)
    shifted = np.imag(scipy.signal.hilbert(pink))
    with torch.no_grad():
        r, d = (backbone(torch.as_tensor(x, dtype=torch.float32)[None])[-1][0].numpy().astype(np.float64)
                for x in (pink, shifted))
    cfg = AuditoryConfig()
    on, off = (DistanceSpec.from_card(auditory_card(cfg, {"type": "loudness_disturbance", "mask": 0.1,
                                                          "reliable_bins": rb}, {"type": "exp2"}, None))
               for rb in (1.5, 0.0))
    assert loudness_disturbance(r, d, on).mean() < 0.9 * loudness_disturbance(r, d, off).mean()


def test_presence_weight_counts_lost_bands_between_2_and_8_khz_more():
    from deepaq_core.errors import ModelError
    from deepaq_core.distance import lost_bandwidth
    from deepaq_core.model.auditory import auditory_card

    cfg = AuditoryConfig()
    fc = auditory_bands(cfg)["centre_hz"]
    dist = {"type": "loudness_disturbance", "mask": 0.1, "lost_weight": 2.0, "lost_floor": 0.1, "presence_weight": 2.0}
    spec = DistanceSpec.from_card(auditory_card(cfg, dist, {"type": "exp2", "d50": 0.5, "power": 1.0}, None))
    w = np.asarray(spec.lost_weights)
    inside = (fc >= 2000) & (fc < 8000)
    assert w.shape == fc.shape and inside.sum() > 10 and np.all(w[inside] == 3.0) and np.all(w[~inside] == 1.0)
    plain = DistanceSpec.from_card(auditory_card(cfg, {**dist, "presence_weight": 0.0}, {"type": "exp2"}, None))
    assert plain.lost_weights is None
    # a low-pass at 3.5 kHz loses presence bands; one at 10 kHz loses only bands above them
    ref = np.ones((2, fc.size))
    lp35, lp10 = ref * (fc < 3500), ref * (fc < 10000)
    gain35 = lost_bandwidth(ref, lp35, spec)[0] / lost_bandwidth(ref, lp35, plain)[0]
    assert gain35 > 1.5
    np.testing.assert_allclose(lost_bandwidth(ref, lp10, spec), lost_bandwidth(ref, lp10, plain))
    # inaudible reference bands still count for nothing, weighted or not
    assert np.all(lost_bandwidth(ref * 0.05, lp35 * 0.05, spec) == 0)
    # a card cannot smuggle weights in, and the setting needs the auditory front end
    assert DistanceSpec.from_card({"distance": {"type": "loudness_disturbance", "lost_weights": [9.0]}}).lost_weights is None
    with pytest.raises(ModelError, match="presence_weight"):
        DistanceSpec.from_card({"backbone": {"type": "compact"}, "distance": dist})


@pytest.mark.parametrize("band_p, weights", [(2.0, True), (3.0, False)])
def test_disturbance_matrix_equals_frame_disturbance_of_every_pair(band_p, weights):
    from deepaq_core.distance import disturbance_matrix, frame_disturbance

    rng = np.random.default_rng(12)
    k = 20
    ref = rng.gamma(2.0, 0.5, size=(70, k))  # more rows than one block of 64
    ref[:, 15:] *= 0.1  # some bands below the audibility floor
    deg = np.maximum(rng.gamma(2.0, 0.5, size=(45, k)) - 0.3, 0.0)
    spec = DistanceSpec(type="loudness_disturbance", mask=0.1, weight_added=1.0, weight_missing=0.5, band_p=band_p,
                        lost_weight=2.0, lost_floor=0.1,
                        band_weights=tuple(np.linspace(0.4, 1.0, k)) if weights else None,
                        lost_weights=tuple(1.0 + 2.0 * (np.arange(k) % 3 == 0)) if weights else None)
    want = np.array([[frame_disturbance(r, d, spec, 1.7) for d in deg] for r in ref])
    got = disturbance_matrix(ref, deg, spec, 1.7)
    assert got.shape == (70, 45) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)
