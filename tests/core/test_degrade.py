"""deepaq_core.degrade: real codecs, signal-level degradations, families and labels (generated signals)."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from deepaq_core.audio import estimate_lag, integrated_loudness
from deepaq_core.degrade import (
    FAMILIES,
    CodecError,
    DegradationError,
    EncoderMissing,
    available_codecs,
    bitdepth,
    clipping,
    codec_unavailable_reason,
    combine,
    degrade,
    degrade_file,
    encode_decode,
    hybrid_labels,
    logmel_distance,
    lowpass,
    make_ladder,
    noise,
    normalise_loudness,
    pre_echo,
    separation,
    spectral_holes,
)
from deepaq_core.degrade import codecs as codecs_module
from deepaq_core.errors import DeePAQError

SR = 48000


def music(sr: int = SR, seconds: float = 2.5, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Harmonic notes with attack/decay envelopes plus decaying noise bursts, float32 [C, N], peak 0.5."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    x = np.zeros((channels, n))
    for _ in range(int(seconds * 5)):
        f0 = 110 * 2 ** (rng.integers(0, 30) / 12)
        start = int(rng.uniform(0, seconds - 0.1) * sr)
        m = min(n - start, int(rng.uniform(0.2, 0.8) * sr))
        tt = t[:m]
        env = np.exp(-tt * rng.uniform(2, 8)) * (1 - np.exp(-tt * 300))
        tone = sum(
            rng.uniform(0.2, 1) / h * np.sin(2 * np.pi * f0 * h * tt + rng.uniform(0, 6))
            for h in range(1, 9)
            if f0 * h < sr / 2
        )
        x[:, start : start + m] += rng.uniform(0.3, 1, size=(channels, 1)) * tone * env
        if rng.random() < 0.6:  # drum-like noise burst
            b = int(0.04 * sr)
            s = int(rng.uniform(0, seconds - 0.05) * sr)
            x[:, s : s + b] += 0.5 * rng.standard_normal(b) * np.exp(-np.arange(b) / (0.01 * sr))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return music()


def _one_sentence(message: str) -> None:
    assert message.endswith("."), message
    assert "\n" not in message
    assert re.search(r"[.!?]\s+[A-Z]", message) is None, message


def _snr_db(ref: np.ndarray, deg: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((deg.astype(np.float64) - ref) ** 2)))


# ------------------------------------------------------------------------------------- codecs

# (high, low) bitrates per codec, both legal for mono and stereo at 44.1/48 kHz.
CODEC_RATES = {"aac": (192, 32), "mp3": (192, 32), "opus": (96, 16), "vorbis": (160, 48), "mp2": (256, 64)}


def _need(codec: str) -> None:
    if available_codecs()[codec] is None:
        pytest.skip(codec_unavailable_reason(codec))


@pytest.mark.parametrize("codec", sorted(CODEC_RATES))
def test_codec_round_trip_aligned_and_monotone(x, codec):
    _need(codec)
    hi, lo = CODEC_RATES[codec]
    distances = {}
    for kbps in (hi, lo):
        y, info = encode_decode(x, SR, codec, kbps)
        assert y.shape == x.shape and y.dtype == np.float32
        residual, confidence = estimate_lag(x.mean(axis=0), y.mean(axis=0), SR, max_lag_s=0.25)
        assert abs(residual) <= 0.6, (codec, kbps, info)  # integer-sample compensation
        assert confidence > 0.5
        assert info["codec"] == codec and info["bitrate_kbps"] == kbps
        assert abs(info["delay_samples"] - info["shift_samples"]) <= 0.5
        distances[kbps] = logmel_distance(x, y, SR)
    assert distances[lo] > distances[hi], distances


@pytest.mark.parametrize("codec", sorted(CODEC_RATES))
def test_codec_mono_44k_keeps_1d_shape(codec):
    _need(codec)
    x1 = music(44100, seconds=1.5, channels=1, seed=3)[0]
    y, info = encode_decode(x1, 44100, codec, CODEC_RATES[codec][0])
    assert y.shape == x1.shape
    residual, _ = estimate_lag(x1, y, 44100, max_lag_s=0.25)
    assert abs(residual) <= 0.6
    assert logmel_distance(x1, y, 44100) < 2.0  # a good bitrate stays close


def test_mpeg_bitrates_snap_and_out_of_range_raises(x):
    _need("mp2")
    _, info = encode_decode(x[:, : SR // 2], SR, "mp2", 150)
    assert info["bitrate_kbps_used"] == 160
    for codec, kbps in [("mp2", 500), ("opus", 2), ("mp3", 400)]:
        with pytest.raises(CodecError) as exc:
            encode_decode(x[:, : SR // 2], SR, codec, kbps)
        _one_sentence(str(exc.value))
    with pytest.raises(CodecError):
        encode_decode(np.zeros((3, SR), np.float32), SR, "mp3", 128)  # mp3 is at most stereo


def test_missing_encoders_raise_one_sentence(monkeypatch, x):
    monkeypatch.setattr(codecs_module.shutil, "which", lambda name: None)
    assert set(available_codecs().values()) == {None}
    with pytest.raises(EncoderMissing) as exc:
        encode_decode(x, SR, "mp3", 128)
    assert str(exc.value) == "The mp3 encoder needs 'lame' or 'ffmpeg', and neither is installed."
    assert isinstance(exc.value, DeePAQError)
    for codec, tools in [("aac", ["'ffmpeg'"]), ("opus", ["'opusenc'", "'ffmpeg'"]), ("vorbis", ["'oggenc'"])]:
        message = codec_unavailable_reason(codec)
        _one_sentence(message)
        assert all(t in message for t in tools), message
    with pytest.raises(EncoderMissing):
        degrade(x, SR, "aac", bitrate_kbps=128)


def test_empty_path_means_no_codecs(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert available_codecs() == {c: None for c in ("aac", "mp3", "opus", "vorbis", "mp2")}


@pytest.mark.parametrize("codec,tool,decoder", [("mp3", "lame", "lame"), ("opus", "opusenc", "opusdec"),
                                                ("vorbis", "oggenc", "oggdec")])  # fmt: skip
def test_standalone_tools_without_ffmpeg(monkeypatch, codec, tool, decoder):
    if shutil.which(tool) is None or shutil.which(decoder) is None:
        pytest.skip(f"{tool}/{decoder} not installed")
    real_which = shutil.which
    monkeypatch.setattr(codecs_module.shutil, "which", lambda name: None if name == "ffmpeg" else real_which(name))
    assert available_codecs()["aac"] is None
    assert codec_unavailable_reason("aac") == "The aac encoder needs 'ffmpeg', and it is not installed."
    x1 = music(SR, seconds=1.5, channels=2, seed=4)
    y, info = encode_decode(x1, SR, codec, CODEC_RATES[codec][0])
    assert info["encoder"] == tool and info["decoder"] == decoder
    residual, _ = estimate_lag(x1.mean(axis=0), y.mean(axis=0), SR, max_lag_s=0.25)
    assert y.shape == x1.shape and abs(residual) <= 0.6


# ------------------------------------------------------------------------- signal degradations


def test_mildest_settings_are_near_identity(x):
    other = music(seed=9)
    assert np.array_equal(lowpass(x, SR, 0.5 * SR)[0], x)
    assert np.array_equal(clipping(x, SR, threshold=1.0)[0], x)
    assert np.array_equal(spectral_holes(x, SR, 0)[0], x)
    assert _snr_db(x, noise(x, SR, 100.0, seed=0)[0]) == pytest.approx(100.0, abs=0.2)
    assert _snr_db(x, bitdepth(x, SR, 24)[0]) > 100
    assert _snr_db(x, pre_echo(x, SR, 100.0)[0]) > 90  # STFT quantise + overlap-add path
    np.testing.assert_allclose(separation(x, other, SR, 1.0)[0], x, atol=1e-5)  # STFT mask path


@pytest.mark.parametrize("name", [n for n, f in FAMILIES.items() if f.group == "signal"])
def test_teacher_distance_increases_along_signal_ladders(x, name):
    items = make_ladder(x, SR, name, label_mode="teacher", seed=0)
    distances = [it["teacher_db"] for it in items]
    assert distances[0] == 0.0
    assert distances[1] < 1.0, (name, distances[1])  # the mildest rung is a small step from clean
    assert all(np.diff(distances) > 0), (name, np.round(distances, 3))
    labels = [it["label"] for it in items]
    assert all(np.diff(labels) > 0) and labels[0] == 0.0 and labels[-1] < 1.0
    if FAMILIES[name].time_aligned:
        assert all(it["audio"].shape == x.shape for it in items)
    else:  # changes time by design; lengths are checked in test_degrade_families.py
        assert all(it["audio"].shape[0] == x.shape[0] for it in items)


@pytest.mark.parametrize("color", ["white", "pink"])
@pytest.mark.parametrize("snr", [30.0, 10.0, 0.0])
def test_noise_hits_the_snr(x, color, snr):
    y, info = noise(x, SR, snr, color=color, seed=1)
    assert _snr_db(x, y) == pytest.approx(snr, abs=0.2)
    assert info["color"] == color


def test_pink_noise_falls_3_db_per_octave(x):
    n = noise(np.zeros((1, 4 * SR), np.float32) + 1e-3, SR, 0.0, color="pink", seed=0)[0] - 1e-3
    f, p = scipy.signal.welch(n[0], SR, nperseg=8192)
    level = lambda lo: 10 * np.log10(p[(f >= lo) & (f < 2 * lo)].mean())  # noqa: E731 - dB per octave band
    # Power per fixed bandwidth falls 3 dB per octave (the band twice as wide gets the same total).
    assert level(500) - level(1000) == pytest.approx(3.0, abs=0.5)
    assert level(2000) - level(4000) == pytest.approx(3.0, abs=0.5)


@pytest.mark.parametrize("kwargs", [{"threshold": 0.5}, {"threshold": 0.9}, {"clip_ratio": 0.01}, {"clip_ratio": 0.2}])
def test_clipping_never_exceeds_threshold(x, kwargs):
    y, info = clipping(x, SR, **kwargs)
    assert np.abs(y).max() <= info["threshold_abs"]
    if "threshold" in kwargs:
        assert info["threshold_abs"] == pytest.approx(kwargs["threshold"] * np.abs(x).max(), rel=1e-6)
    else:
        assert info["clipped_fraction"] == pytest.approx(kwargs["clip_ratio"], rel=0.05, abs=1e-4)
    with pytest.raises(DegradationError):
        clipping(x, SR)


@pytest.mark.parametrize("bits", [8, 12])
def test_bitdepth_error_matches_theory(x, bits):
    q = 2.0 ** (1 - bits)
    y_plain, _ = bitdepth(x, SR, bits, dither="none")
    y_tpdf, _ = bitdepth(x, SR, bits, dither="tpdf", seed=0)
    np.testing.assert_allclose(y_plain / q, np.round(y_plain / q), atol=1e-4)  # on the grid
    err_plain = np.mean((y_plain.astype(np.float64) - x) ** 2)
    err_tpdf = np.mean((y_tpdf.astype(np.float64) - x) ** 2)
    assert err_plain / (q * q / 12) == pytest.approx(1.0, rel=0.1)  # uniform rounding error
    assert err_tpdf / (q * q / 4) == pytest.approx(1.0, rel=0.05)  # q^2/12 rounding + q^2/6 dither


def test_spectral_hole_removes_its_band_only():
    # White noise: a flat spectrum shows the hole's depth without depending on where notes fall.
    x1 = 0.1 * np.random.default_rng(0).standard_normal((1, 2 * SR)).astype(np.float32)
    y, info = spectral_holes(x1, SR, 1, width_oct=1 / 3, seed=2)
    fc = info["centres_hz"][0]
    f, px = scipy.signal.welch(x1, SR, nperseg=4096)
    _, py = scipy.signal.welch(y, SR, nperseg=4096)
    inside = (f > fc * 2 ** (-1 / 10)) & (f < fc * 2 ** (1 / 10))  # the hole's core, clear of its edges
    outside = (f < fc / 2) | (f > fc * 2)
    assert 10 * np.log10(px[:, inside].sum() / py[:, inside].sum()) > 25
    assert 10 * np.log10(px[:, outside].sum() / py[:, outside].sum()) == pytest.approx(0.0, abs=0.05)


def test_pre_echo_spreads_noise_before_an_attack():
    t = np.arange(SR) / SR
    onset = int(0.5 * SR)
    x1 = np.zeros(SR)
    x1[onset:] = np.sin(2 * np.pi * 1000 * t[: SR - onset]) * np.exp(-t[: SR - onset] * 4)
    burst = np.random.default_rng(0).standard_normal(SR) * np.exp(-np.maximum(t - 0.5, 0) * 40)
    x1 += 0.3 * (np.arange(SR) >= onset) * burst  # a drum hit on the note's attack
    before = slice(onset - int(0.025 * SR), onset - int(0.002 * SR))  # 25..2 ms before the onset
    levels = []
    for snr in (40.0, 20.0, 6.0):
        y, _ = pre_echo(x1, SR, snr)
        levels.append(10 * np.log10(np.mean(y[before] ** 2) / np.mean(x1[onset:onset + SR // 10] ** 2)))
    assert x1[before].max() == 0.0
    assert levels[0] < levels[1] < levels[2]
    assert levels[2] > -30  # audible noise well ahead of the attack


def test_separation_has_bleed_and_missing_energy(x):
    other = music(seed=7)
    y, info = separation(x, other, SR, quality=0.5, seed=0)
    spec = lambda s: np.abs(scipy.signal.stft(s, SR, nperseg=2048)[2]) ** 2  # noqa: E731
    pt, pi, py = spec(x), spec(other), spec(y)
    interferer_only = pi > 100 * pt
    target_only = pt > 100 * pi
    assert interferer_only.sum() > 100 and target_only.sum() > 100
    # Bleed: where only the interferer has energy, the estimate is not silent.
    assert 10 * np.log10(py[interferer_only].sum() / pi[interferer_only].sum()) > -20
    # Missing: where only the target has energy, the estimate has lost a fair share of it.
    assert 10 * np.log10(py[target_only].sum() / pt[target_only].sum()) < -0.5
    assert -30 < info["bleed_db"] < 0 and -30 < info["missing_db"] < 0


def test_combine_chains_in_order(x):
    chain = combine([("lowpass", {"cutoff_hz": 4000}), ("white_noise", {"snr_db": 30, "seed": 0})])
    y, info = chain(x, SR)
    assert [s["kind"] for s in info["steps"]] == ["lowpass", "white_noise"]
    assert y.shape == x.shape
    assert _snr_db(lowpass(x, SR, 4000)[0], y) == pytest.approx(30.0, abs=0.5)


def test_normalise_loudness_reaches_target(x):
    y = normalise_loudness(x * 0.1, SR, -23.0)
    assert integrated_loudness(y, SR) == pytest.approx(-23.0, abs=0.05)
    assert normalise_loudness(np.zeros((1, SR), np.float32), SR).max() == 0.0
    short = normalise_loudness(x[:, :1000], SR, -30.0)  # under one gating block: RMS fallback
    assert np.isfinite(short).all()


# -------------------------------------------------------------------------- families and API


def test_param_labels_are_monotone_on_the_0_1_scale():
    for name, family in FAMILIES.items():
        labels = family.labels()
        # The mildest rung is above 0: no degraded version shares the clean version's label.
        assert 0 < labels[0] < 0.35 and labels[-1] == pytest.approx(1.0), name
        assert all(np.diff(labels) > 0), name


def test_hybrid_labels_are_monotone_in_the_parameter(x):
    items = make_ladder(x, SR, "white_noise", label_mode="hybrid", seed=0)
    labels = [it["label"] for it in items]
    assert all(np.diff(labels) >= 0)
    # A non-monotone teacher is pooled: bitrates 320, 128, 64, 32 with distances 1, 3, 2, 4.
    pooled = hybrid_labels("mp3", [320, 128, 64, 32], [1.0, 3.0, 2.0, 4.0])
    assert pooled[1] == pooled[2] and all(np.diff(pooled) >= 0)
    # Order of the input does not matter.
    shuffled = hybrid_labels("mp3", [64, 32, 320, 128], [2.0, 4.0, 1.0, 3.0])
    np.testing.assert_allclose(shuffled, pooled[[2, 3, 0, 1]])


def test_degrade_reports_label_and_rejects_bad_requests(x):
    y, info = degrade(x, SR, "lowpass", cutoff_hz=4000)
    assert info["kind"] == "lowpass" and info["label"] == pytest.approx(FAMILIES["lowpass"].label(4000))
    assert degrade(x[0], SR, "noise", snr_db=20, color="pink", seed=0)[0].shape == x[0].shape
    for kind, params in [("wobble", {}), ("lowpass", {"cutof_hz": 3}), ("lowpass", {}), ("lowpass", {"cutoff_hz": -1}),
                         ("bitdepth", {"bits": 1}), ("separation", {"quality": 2.0})]:  # fmt: skip
        with pytest.raises(DegradationError) as exc:
            degrade(x, SR, kind, **params)
        _one_sentence(str(exc.value))


@pytest.mark.parametrize("ext", [".wav", ".flac"])
def test_degrade_file_writes_same_length(tmp_path, x, ext):
    src = tmp_path / "clean.flac"
    sf.write(src, x.T, SR, subtype="PCM_24")
    out = tmp_path / f"noisy{ext}"
    info = degrade_file(src, out, "white_noise", snr_db=20, seed=0)
    data, rate = sf.read(out, always_2d=True)
    assert rate == SR and data.shape == (x.shape[1], x.shape[0])
    assert info["frames"] == x.shape[1] and info["output"] == str(out)
    assert _snr_db(x.T, data) == pytest.approx(20.0, abs=0.3)


def test_degrade_file_interferer_path_and_bad_extension(tmp_path, x):
    src, other = tmp_path / "clean.wav", tmp_path / "other.wav"
    sf.write(src, x.T, SR, subtype="FLOAT")
    sf.write(other, music(seed=5)[0], SR, subtype="FLOAT")  # mono interferer for a stereo target
    info = degrade_file(src, tmp_path / "sep.wav", "separation", quality=0.4, interferer=str(other), seed=0)
    assert info["interferer"] == "given" and sf.info(tmp_path / "sep.wav").frames == x.shape[1]
    with pytest.raises(DegradationError) as exc:
        degrade_file(src, tmp_path / "out.mp3", "lowpass", cutoff_hz=4000)
    _one_sentence(str(exc.value))


def test_codec_through_degrade_file(tmp_path, x):
    _need("opus")
    src = tmp_path / "clean.wav"
    sf.write(src, x.T, SR, subtype="FLOAT")
    info = degrade_file(src, tmp_path / "opus.flac", "opus", bitrate_kbps=32)
    assert sf.info(tmp_path / "opus.flac").frames == x.shape[1]
    assert info["label"] == pytest.approx(FAMILIES["opus"].label(32)) and "delay_ms" in info
