"""Alignment, loudness and pair preparation in deepaq_core.audio, on generated music-like signals."""

from __future__ import annotations

import logging
import math
import shutil
import subprocess

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from deepaq_core.audio import (
    AudioBuffer,
    estimate_lag,
    integrated_loudness,
    load_audio,
    prepare_pair,
    read_info,
    resample,
)
from deepaq_core.audio.align import estimate_alignment, find_lag, search_range
from deepaq_core.audio.loudness import _gated_loudness
from deepaq_core.errors import AudioError

NATIVE = 48000
WORK = 24000


def music_like(rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonic notes with random attack/decay envelopes plus decaying noise bursts (drums), float32 [N]."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    x = np.zeros(n)
    for _ in range(int(seconds * 4)):
        f0 = 55 * 2 ** (rng.integers(0, 48) / 12)
        start = int(rng.uniform(0, seconds - 0.2) * rate)
        t = np.arange(min(n - start, int(rng.uniform(0.15, 1.5) * rate))) / rate
        envelope = np.exp(-t * rng.uniform(1, 8)) * (1 - np.exp(-t * 200))
        tone = sum(
            rng.uniform(0.2, 1) / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
            for h in range(1, 9)
            if f0 * h < 0.45 * rate
        )
        x[start : start + t.size] += rng.uniform(0.3, 1) * envelope * tone
    burst = int(0.08 * rate)
    for onset in np.arange(0, seconds - 0.1, 0.5):
        i = int((onset + rng.uniform(0, 0.05)) * rate)
        seg = rng.standard_normal(burst) * np.exp(-np.arange(burst) / rate * 40) * rng.uniform(0.1, 0.5)
        x[i : i + burst] += seg[: max(0, min(burst, n - i))]
    return (x / (1.1 * np.abs(x).max())).astype(np.float32)


def delayed(x: np.ndarray, lag: int) -> np.ndarray:
    """Same length as x, with y[n + lag] = x[n] (zeros shifted in)."""
    y = np.zeros_like(x)
    if lag >= 0:
        y[lag:] = x[: x.size - lag]
    else:
        y[:lag] = x[-lag:]
    return y


@pytest.fixture(scope="module")
def music48() -> np.ndarray:
    return music_like(NATIVE, 10.0, seed=1)


def _lag_at_48k_via_24k(ref48: np.ndarray, deg48: np.ndarray) -> tuple[float, float]:
    lag24, conf = estimate_lag(resample(ref48, NATIVE, WORK), resample(deg48, NATIVE, WORK), WORK)
    return lag24 * NATIVE / WORK, conf


# --------------------------------------------------------------------------- estimate_lag


@pytest.mark.parametrize("lag", [4200, -1105, 0, 37])
def test_recovers_planted_delay_after_resampling(music48, lag):
    est, conf = _lag_at_48k_via_24k(music48, delayed(music48, lag))
    assert abs(est - lag) <= 2
    # -1105 is -552.5 at 24 kHz: a clean copy must come out right to well under a sample.
    assert abs(est - lag) <= 0.5
    assert conf > 0.9


@pytest.mark.parametrize("lag", [4200, -1105, 0])
def test_recovers_delay_of_lowpassed_noisy_copy(music48, lag):
    # Codec-like: 7 kHz low-pass (zero-phase, so it adds no delay of its own) and noise at 10 dB SNR.
    sos = scipy.signal.butter(8, 7000, fs=NATIVE, output="sos")
    y = scipy.signal.sosfiltfilt(sos, delayed(music48, lag))
    y = y + 10 ** (-10 / 20) * y.std() * np.random.default_rng(2).standard_normal(y.size)
    est, conf = _lag_at_48k_via_24k(music48, y.astype(np.float32))
    assert abs(est - lag) <= 2
    assert 0.5 < conf < 0.99  # clearly related, clearly not identical


@pytest.mark.parametrize("lag", [2100, -552, 777])
def test_weakly_correlated_separation_like_output(lag):
    # A separated stem with heavy bleed: the target 10-16 dB under another, louder piece of music.
    # PHAT whitening keeps the estimate exact here; plain correlation drifts by up to ~0.4 samples
    # because the bleed's bass dominates it.
    target, bleed = music_like(WORK, 10.0, seed=3), music_like(WORK, 10.0, seed=4)
    for gain, max_conf in [(0.3, 0.4), (0.15, 0.2)]:
        est, conf = estimate_lag(target, gain * delayed(target, lag) + bleed, WORK)
        assert abs(est - lag) <= 0.1
        assert 0.05 < conf < max_conf  # the confidence must reflect the weak relation


def test_uses_most_energetic_stretch_of_long_input():
    rng = np.random.default_rng(5)
    rate, lag = 8000, 900
    music = music_like(rate, 12.0, seed=6)
    # 40 s of independent faint noise first: a window taken from the start would find no lag.
    ref = np.concatenate([1e-3 * rng.standard_normal(40 * rate), music]).astype(np.float32)
    deg = np.concatenate([1e-3 * rng.standard_normal(40 * rate), music]).astype(np.float32)
    est, conf = estimate_lag(ref, delayed(deg, lag), rate, max_analysis_s=8.0)
    assert abs(est - lag) <= 1 and conf > 0.9


def test_degenerate_inputs():
    noise = np.random.default_rng(0).standard_normal(WORK).astype(np.float32)
    assert estimate_lag(np.zeros(WORK, np.float32), noise, WORK) == (0.0, 0.0)
    with pytest.raises(ValueError):
        estimate_lag(noise[np.newaxis], noise, WORK)
    with pytest.raises(ValueError):
        estimate_lag(noise[:0], noise, WORK)


def test_lag_outside_search_range_is_not_reported(music48):
    x = resample(music48, NATIVE, WORK)
    est, _ = estimate_lag(x, delayed(x, 6000), WORK, max_lag_s=0.1)
    assert abs(est) <= 0.1 * WORK


@pytest.mark.skipif(shutil.which("lame") is None, reason="lame not installed")
def test_real_mp3_with_planted_early_start(tmp_path, music48):
    # The MP3 starts 1105 samples into the music (degraded early: lag -1105). libsndfile decodes
    # LAME's gapless header, so the codec itself should add no delay.
    wav, mp3 = tmp_path / "cut.wav", tmp_path / "cut.mp3"
    sf.write(wav, music48[1105:], NATIVE, subtype="PCM_16")
    subprocess.run(["lame", "--quiet", "-b", "96", str(wav), str(mp3)], check=True)
    deg = load_audio(mp3, target_rate=WORK).samples[0]
    lag24, conf = estimate_lag(resample(music48, NATIVE, WORK), deg, WORK)
    assert abs(lag24 * 2 + 1105) <= 2 and conf > 0.9


@pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="ffmpeg/ffprobe not installed"
)
def test_real_aac_with_planted_delay(tmp_path, music48):
    # 64 kb/s AAC (low-passed, noisy) of the music delayed by 4200 samples. M4A carries an edit list
    # that ffmpeg applies, so the expected lag is exactly the planted one.
    wav, m4a = tmp_path / "late.wav", tmp_path / "late.m4a"
    sf.write(wav, np.concatenate([np.zeros(4200, np.float32), music48]), NATIVE, subtype="PCM_16")
    encode = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", str(wav), "-c:a", "aac", "-b:a", "64k", str(m4a)]
    subprocess.run(encode, check=True)
    deg = load_audio(m4a, target_rate=WORK)
    lag24, conf = estimate_lag(resample(music48, NATIVE, WORK), deg.samples[0], WORK)
    assert abs(lag24 * 2 - 4200) <= 2 and conf > 0.9
    ref = AudioBuffer(resample(music48, NATIVE, WORK), WORK)
    pair = prepare_pair(ref, deg)
    assert pair.alignment.lag_native_samples == pytest.approx(4200, abs=2)
    assert read_info(m4a).sample_rate == NATIVE


# --------------------------------------------------------------------------- loudness


def test_integrated_loudness_of_reference_sine():
    # BS.1770: a full-scale 997 Hz sine in one channel reads -3.01 LUFS; at 0.1 amplitude, -23.01.
    rate = 48000
    sine = 0.1 * np.sin(2 * np.pi * 997 * np.arange(5 * rate) / rate)
    assert integrated_loudness(sine[np.newaxis], rate) == pytest.approx(-23.01, abs=0.05)
    # Two identical channels carry twice the power: +3.01 LU.
    assert integrated_loudness(np.stack([sine, sine]), rate) == pytest.approx(-20.0, abs=0.05)
    # 6 channels exceed pyloudnorm; the fallback weights every channel 1.0: +10·log10(6).
    assert integrated_loudness(np.tile(sine, (6, 1)), rate) == pytest.approx(-23.01 + 10 * math.log10(6), abs=0.05)
    assert integrated_loudness(np.zeros((1, rate)), rate) == -math.inf


def test_hand_written_gating_matches_pyloudnorm(music48):
    import pyloudnorm

    stereo = np.stack([music48, 0.5 * delayed(music48, 300)]).astype(np.float64)
    meter = pyloudnorm.Meter(NATIVE)
    ours = _gated_loudness(stereo, NATIVE, meter, np.ones(2))
    assert ours == pytest.approx(meter.integrated_loudness(stereo.T), abs=0.05)


# --------------------------------------------------------------------------- prepare_pair


@pytest.fixture(scope="module")
def working_pair(music48):
    """Reference at 24 kHz and a degraded copy 4200 native samples late and 6 dB quieter."""
    ref = resample(np.stack([music48, 0.7 * music48]), NATIVE, WORK)
    deg = resample(np.stack([delayed(music48, 4200), 0.7 * delayed(music48, 4200)]) * 10 ** (-6 / 20), NATIVE, WORK)
    return AudioBuffer(ref, WORK), AudioBuffer(deg, WORK)


def test_prepare_pair_aligns_and_matches_loudness(working_pair):
    ref, deg = working_pair
    pair = prepare_pair(ref, deg)
    a = pair.alignment
    assert a.estimated and a.lag_samples == 2100 and a.lag_native_samples == 2100  # no info: native = working
    assert a.lag_ms == pytest.approx(87.5, abs=0.05) and a.confidence > 0.95
    assert pair.gain_db == pytest.approx(6.0, abs=0.1)
    assert pair.degraded_loudness_lufs == pytest.approx(pair.reference_loudness_lufs - 6.0, abs=0.1)
    assert pair.reference.samples.shape == pair.degraded.samples.shape == (2, ref.num_samples - 2100)
    assert pair.trimmed_reference_s == pytest.approx(2100 / WORK)
    assert pair.trimmed_degraded_s == pytest.approx(2100 / WORK)
    # Aligned and gain-matched, the two are now the same signal.
    assert np.max(np.abs(pair.degraded.samples - pair.reference.samples)) < 0.01
    assert integrated_loudness(pair.degraded.samples, WORK) == pytest.approx(pair.reference_loudness_lufs, abs=0.05)


def test_native_lag_reported_at_degraded_file_rate(tmp_path, music48):
    path = tmp_path / "late.wav"
    sf.write(path, delayed(music48, 4200), NATIVE, subtype="FLOAT")
    deg = load_audio(path, target_rate=WORK)
    ref = AudioBuffer(resample(music48, NATIVE, WORK), WORK)
    alignment = prepare_pair(ref, deg).alignment
    assert alignment.lag_samples == 2100 and alignment.lag_native_samples == 4200


def test_override_lag_is_used_as_given(working_pair):
    ref, deg = working_pair
    pair = prepare_pair(ref, deg, lag_ms=10.0)
    a = pair.alignment
    assert (a.lag_samples, a.lag_ms, a.estimated) == (240, 10.0, False)
    assert math.isnan(a.confidence)
    n = ref.num_samples - 240
    np.testing.assert_allclose(pair.reference.samples, ref.samples[:, :n])
    np.testing.assert_allclose(pair.degraded.samples, deg.samples[:, 240:] * 10 ** (pair.gain_db / 20), rtol=1e-5)
    # A negative override shifts the other way: the reference loses its start.
    early = prepare_pair(ref, deg, lag_ms=-5.0, match_loudness=False)
    np.testing.assert_array_equal(early.reference.samples, ref.samples[:, 120:])
    np.testing.assert_array_equal(early.degraded.samples, deg.samples[:, : ref.num_samples - 120])


def test_align_false_and_no_loudness_matching(working_pair):
    ref, deg = working_pair
    pair = prepare_pair(ref, deg, align=False, match_loudness=False)
    assert (pair.alignment.lag_samples, pair.alignment.estimated, pair.gain_db) == (0, False, 0.0)
    np.testing.assert_array_equal(pair.degraded.samples, deg.samples)
    # Loudness is still measured (on the unshifted signals: 6 dB down, give or take the 87.5 ms offset).
    assert pair.degraded_loudness_lufs == pytest.approx(integrated_loudness(deg.samples, WORK), abs=1e-9)
    assert pair.degraded_loudness_lufs == pytest.approx(pair.reference_loudness_lufs - 6.0, abs=0.3)


def test_different_lengths_are_trimmed_consistently(music48):
    x = resample(music48, NATIVE, WORK)  # 10 s
    ref = AudioBuffer(x[: 6 * WORK], WORK)  # 6 s
    deg = AudioBuffer(delayed(x, 1200)[: int(8.5 * WORK)], WORK)  # 8.5 s, 50 ms late
    pair = prepare_pair(ref, deg)
    assert pair.alignment.lag_samples == 1200
    assert pair.reference.num_samples == pair.degraded.num_samples == 6 * WORK
    assert pair.trimmed_reference_s == pytest.approx(0.0)
    assert pair.trimmed_degraded_s == pytest.approx(2.5)  # 0.05 s at the start + 2.45 s at the end
    # Degraded longer and early: the reference loses its start, the degraded its tail.
    pair = prepare_pair(AudioBuffer(x[: 6 * WORK], WORK), AudioBuffer(x[480:], WORK))
    assert pair.alignment.lag_samples == -480
    assert pair.trimmed_reference_s == pytest.approx(0.02)
    assert pair.trimmed_degraded_s == pytest.approx((x.size - 480 - (6 * WORK - 480)) / WORK)


def test_quiet_signals_fall_back_to_rms_gain(music48):
    x = resample(music48, NATIVE, WORK)
    ref, deg = AudioBuffer(x * 1e-4, WORK), AudioBuffer(x * 5e-5, WORK)  # both under the -70 LUFS gate
    pair = prepare_pair(ref, deg, align=False)
    assert pair.reference_loudness_lufs == -math.inf
    assert pair.gain_db == pytest.approx(20 * math.log10(2), abs=0.05)


def test_gain_is_clamped_with_warning(music48, caplog):
    x = resample(music48, NATIVE, WORK)
    with caplog.at_level(logging.WARNING, logger="deepaq_core.audio"):
        pair = prepare_pair(AudioBuffer(x, WORK), AudioBuffer(x * 10 ** (-50 / 20), WORK), align=False)
    assert pair.gain_db == 40.0
    assert any("clamped" in r.getMessage() for r in caplog.records)


def test_mismatched_buffers_are_value_errors(working_pair):
    ref, deg = working_pair
    with pytest.raises(ValueError):
        prepare_pair(ref, AudioBuffer(deg.samples, 16000))
    with pytest.raises(ValueError):
        prepare_pair(ref, AudioBuffer(deg.samples[:1], WORK))


def test_too_little_overlap_and_silent_remainder(tmp_path, working_pair):
    ref, deg = working_pair
    with pytest.raises(AudioError) as exc:
        prepare_pair(ref, deg, lag_ms=ref.duration_s * 1000 - 300)
    assert "overlap by only 0.30 s" in str(exc.value)
    # The degraded file's audio lies entirely in the part an override cuts away.
    path = tmp_path / "tail_silent.wav"
    samples = np.zeros((2, ref.num_samples), np.float32)
    samples[:, :WORK] = ref.samples[:, :WORK]
    sf.write(path, samples.T, WORK, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"^'tail_silent\.wav' is silent; a quality score needs a signal\.$"):
        prepare_pair(ref, load_audio(path, channels="all"), lag_ms=1500.0)


# --------------------------------------------------------------------------- wide, polarity-aware search


def test_two_second_delay_is_found_by_default(music48):
    # The automatic range (max(10 s, 25 %), bounded by the overlap) covers it; ±1 s used to give ~893 ms.
    x = resample(music48, NATIVE, WORK)
    est = find_lag(x, delayed(x, 2 * WORK), WORK)
    assert est.lag == pytest.approx(2 * WORK, abs=0.05)
    assert est.confidence > 0.99 and not est.inverted and not est.at_edge
    assert estimate_lag(x, delayed(x, -2 * WORK), WORK)[0] == pytest.approx(-2 * WORK, abs=0.05)


def test_inverted_copy_gives_lag_zero_and_inverted(music48):
    x = resample(music48, NATIVE, WORK)
    est = find_lag(x, -0.5 * x, WORK)
    assert est.lag == pytest.approx(0.0, abs=0.05)
    assert est.inverted and est.confidence > 0.99 and not est.at_edge
    late = find_lag(x, -delayed(x, 777), WORK)
    assert late.lag == pytest.approx(777, abs=0.05) and late.inverted


def test_delay_at_the_search_boundary_sets_at_edge(music48):
    x = resample(music48, NATIVE, WORK)
    edge = int(0.1 * WORK)
    at = find_lag(x, delayed(x, edge), WORK, max_lag_s=0.1)
    assert at.lag == pytest.approx(edge) and at.at_edge
    beyond = find_lag(x, delayed(x, -edge - 1), WORK, max_lag_s=0.1)  # just outside: the lobe's flank
    assert beyond.lag == pytest.approx(-edge) and beyond.at_edge
    inside = find_lag(x, delayed(x, edge - 50), WORK, max_lag_s=0.1)
    assert inside.lag == pytest.approx(edge - 50, abs=0.05) and not inside.at_edge


def test_search_range():
    assert search_range(WORK, WORK, WORK) == 10 * WORK  # at least 10 s
    assert search_range(240 * WORK, 100 * WORK, WORK) == 60 * WORK  # 25 % of the longer signal
    assert search_range(WORK, WORK, WORK, max_lag_s=0.5) == WORK // 2
    with pytest.raises(ValueError):
        search_range(WORK, WORK, WORK, max_lag_s=float("nan"))
    # Bounded by the overlap: half the 10 s analysis window must face the degraded signal.
    x = resample(music_like(NATIVE, 10.0, seed=8), NATIVE, WORK)
    assert find_lag(x, x, WORK).max_lag == 5 * WORK


def test_coarse_to_fine_on_a_long_codec_like_pair():
    # 200 s at 8 kHz: the automatic ±50 s search is first run decimated, then refined at the full rate.
    rate = 8000
    x = music_like(rate, 200.0, seed=9)
    lag = int(37.25 * rate) + 3
    sos = scipy.signal.butter(6, 2500, fs=rate, output="sos")
    y = scipy.signal.sosfiltfilt(sos, delayed(x, lag))
    y = y + 10 ** (-15 / 20) * y.std() * np.random.default_rng(3).standard_normal(y.size)
    est = find_lag(x, y.astype(np.float32), rate)
    assert est.max_lag == 50 * rate
    assert abs(est.lag - lag) <= 0.5 and not est.at_edge and not est.inverted
    assert 0.5 < est.confidence < 0.99
    assert estimate_lag(x, -delayed(x, -lag), rate)[0] == pytest.approx(-lag, abs=0.05)


def test_estimate_alignment_carries_polarity_and_edge(music48, caplog):
    x = resample(music48, NATIVE, WORK)
    a = estimate_alignment(x, -delayed(x, 240), WORK, native_rate=NATIVE)
    assert (a.lag_samples, a.lag_native_samples, a.estimated, a.inverted, a.at_edge) == (240, 480, True, True, False)
    assert a.lag_ms == pytest.approx(10.0, abs=1e-3)
    with caplog.at_level(logging.WARNING, logger="deepaq_core.audio"):
        edge = estimate_alignment(x, delayed(x, 241), WORK, max_lag_s=0.01)
    assert edge.at_edge and edge.lag_samples == 240
    assert any("edge" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("lag, sign", [(2 * WORK + 5, 1.0), (-1105, -1.0), (int(0.1 * WORK), 1.0)])
def test_coarse_pass_keeps_precision_polarity_and_edge(music48, monkeypatch, lag, sign):
    # A tiny budget forces the decimated first pass on a 10 s signal.
    import deepaq_core.audio.align as align

    x = resample(music48, NATIVE, WORK)
    monkeypatch.setattr(align, "_COARSE_BUDGET", 1 << 15)
    max_lag_s = 0.1 if lag == int(0.1 * WORK) else None
    est = find_lag(x, sign * delayed(x, lag), WORK, max_lag_s=max_lag_s)
    assert est.lag == pytest.approx(lag, abs=0.05)
    assert est.inverted == (sign < 0) and est.confidence > 0.99
    assert est.at_edge == (max_lag_s is not None)


def test_phase_shifted_burst_train_aligns_near_zero():
    # Three square-wave bursts 0.5 s apart, shifted by 90 degrees: the shift flattens the true
    # correlation peak, and one period away (0.5 s) correlates as well. The smallest delay wins.
    import scipy.signal

    sr = 44100
    t = np.arange(int(0.2 * sr)) / sr
    burst = sum(np.sin(2 * np.pi * 50 * h * t) / h for h in range(1, 20, 2))
    x = np.zeros(int(1.5 * sr))
    for k in range(3):
        start = int((0.05 + k * 0.5) * sr)
        x[start : start + burst.size] += burst
    shifted = np.imag(scipy.signal.hilbert(x))
    est = find_lag(x.astype(np.float32), shifted.astype(np.float32), sr)
    assert abs(est.lag) < 0.01 * sr


def test_apply_alignment_is_the_one_place_a_lag_polarity_and_gain_are_applied():
    from deepaq_core.audio.pair import apply_alignment

    x = np.arange(1, 11, dtype=np.float32)[None, :]  # degraded[n + lag] ~ reference[n]
    late = apply_alignment(x, 3, 0, 10)
    np.testing.assert_array_equal(late[0], [4, 5, 6, 7, 8, 9, 10, 0, 0, 0])  # padded with silence
    early = apply_alignment(x, -2, 0, 5, inverted=True, gain_db=20 * np.log10(2.0))
    np.testing.assert_allclose(early[0], [0, 0, -2, -4, -6])
    view = apply_alignment(x, 2, 1, 4)
    assert np.shares_memory(view, x) and view.tolist() == [[4, 5, 6]]  # nothing to change: no copy


def test_tight_transform_gives_the_same_correlation_at_the_wanted_offsets():
    from deepaq_core.audio.align import _curves

    rng = np.random.default_rng(3)
    r = rng.normal(size=20000)
    d = np.concatenate([rng.normal(size=7), r, rng.normal(size=30)]) + 0.3 * rng.normal(size=20037)
    offsets = np.arange(-5, 26)  # the fine pass's few offsets around the true one (7)
    phat, ncc = _curves(r, d, offsets)
    phat_t, ncc_t = _curves(r, d, offsets, tight=True)
    np.testing.assert_allclose(ncc_t, ncc, rtol=1e-9, atol=1e-12)  # the same sums, a shorter transform
    assert offsets[np.argmax(np.abs(phat_t))] == offsets[np.argmax(np.abs(phat))] == 7


def test_channel_mean_reads_as_the_whole_mean_and_aligns_alike():
    from deepaq_core.audio.align import ChannelMean, find_lag

    rng = np.random.default_rng(3)
    sr = 8000
    x = rng.standard_normal((2, 40 * sr)).astype(np.float32)
    y = np.roll(x, 123, axis=1) * np.float32(0.7) + 0.1 * rng.standard_normal(x.shape).astype(np.float32)
    whole_x, whole_y = x.mean(axis=0, dtype=np.float32), y.mean(axis=0, dtype=np.float32)
    lazy = ChannelMean(x)
    assert lazy.shape == whole_x.shape and lazy.ndim == 1 and len(lazy) == whole_x.size
    assert np.array_equal(np.asarray(lazy), whole_x)
    assert np.array_equal(np.asarray(lazy[1000:5000][10:20]), whole_x[1010:1020])
    assert np.array_equal(np.asarray(lazy[-50:]), whole_x[-50:])
    assert np.asarray(lazy[5:3]).shape == (0,)
    assert np.array_equal(np.asarray(lazy[100:200], dtype=np.float64), whole_x[100:200].astype(np.float64))
    with pytest.raises(TypeError):
        lazy[::2]
    a = find_lag(whole_x, whole_y, sr)
    b = find_lag(ChannelMean(x), ChannelMean(y), sr)
    assert a == b and round(a.lag) == 123


@pytest.mark.parametrize("blocks", [[65536], [1000, 77777, 4800, 1], [48000 * 20], [997, 3]])
def test_step_meter_equals_measuring_the_whole_signal(blocks):
    from deepaq_core.audio.loudness import StepMeter, k_step_energies

    rng = np.random.default_rng(4)
    x = (rng.standard_normal((2, 48000 * 3 + 1234)) * 0.1).astype(np.float32)
    meter = StepMeter(48000)
    i = k = 0
    while i < x.shape[1]:
        n = blocks[k % len(blocks)]
        meter.push(x[:, i : i + n])
        i, k = i + n, k + 1
    assert np.array_equal(meter.result(), k_step_energies(x, 48000))
    # and both are one pass of the K-weighting filter over the whole signal, summed per 100 ms step
    y = scipy.signal.sosfilt(meter.sos, x.astype(np.float64), axis=1)
    whole = x.shape[1] // 4800 * 4800
    assert np.array_equal(meter.result(), np.square(y[:, :whole]).reshape(2, -1, 4800).sum(axis=2))
    with pytest.raises(ValueError):
        meter.push(x[:1, :10])  # a channel count that changed
