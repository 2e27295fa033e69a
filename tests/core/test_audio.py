"""Reading, validation and resampling in deepaq_core.audio (signals generated here, never from disk)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deepaq_core.audio import (
    AudioBuffer,
    estimate_lag,
    file_sha256,
    load_audio,
    read_info,
    resample,
    validate_signal,
)
from deepaq_core.errors import AudioError

HAVE_FFMPEG = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
HAVE_LAME = shutil.which("lame") is not None


def _test_signal(sample_rate: int, channels: int, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Distinct per-channel content (so channel mix-ups show): a tone per channel plus noise, [N, C]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    cols = [0.4 * np.sin(2 * np.pi * (220 + 110 * c) * t) + 0.05 * rng.standard_normal(t.size) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


def _assert_one_sentence(message: str, name: str) -> None:
    assert f"'{name}'" in message, message
    assert message.endswith("."), message
    assert "\n" not in message
    # A second sentence would start after ". " with a capital letter.
    assert re.search(r"[.!?]\s+[A-Z]", message) is None, message


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.size, b.size)
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("subtype,bits,tol", [("PCM_16", 16, 1 / 32768), ("PCM_24", 24, 1 / 2**23), ("FLOAT", 32, 0.0)])
@pytest.mark.parametrize("rate", [44100, 48000, 96000])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_wav_round_trip(tmp_path, subtype, bits, tol, rate, channels):
    data = _test_signal(rate, channels, seconds=0.6)
    path = tmp_path / f"tone_{subtype}_{rate}_{channels}.wav"
    sf.write(path, data, rate, subtype=subtype)

    info = read_info(path)
    assert info.path == os.path.abspath(path)
    assert (info.sample_rate, info.channels, info.frames) == (rate, channels, data.shape[0])
    assert info.duration_s == pytest.approx(0.6, abs=1e-6)
    assert (info.format, info.subtype, info.bit_depth) == ("WAV", subtype, bits)
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()

    buf = load_audio(path, channels="all")
    assert buf.samples.dtype == np.float32
    assert buf.samples.shape == (channels, data.shape[0])
    assert buf.sample_rate == rate and buf.channels == channels and buf.info == info
    assert np.max(np.abs(buf.samples - data.T)) <= tol


@pytest.mark.parametrize("subtype,bits", [("PCM_16", 16), ("PCM_24", 24)])
def test_flac_round_trip_is_lossless(tmp_path, subtype, bits):
    data = _test_signal(44100, 2)
    path = tmp_path / "x.flac"
    sf.write(path, data, 44100, subtype=subtype)
    info = read_info(path)
    assert (info.format, info.subtype, info.bit_depth, info.frames) == ("FLAC", subtype, bits, 44100)
    buf = load_audio(path, channels="all")
    assert np.max(np.abs(buf.samples - data.T)) <= 1 / 2 ** (bits - 1)


def test_ogg_vorbis_round_trip(tmp_path):
    data = _test_signal(48000, 2)
    path = tmp_path / "x.ogg"
    sf.write(path, data, 48000, format="OGG", subtype="VORBIS")
    info = read_info(path)
    assert (info.format, info.subtype, info.bit_depth, info.channels) == ("OGG", "VORBIS", None, 2)
    buf = load_audio(path, channels="all")
    assert buf.samples.shape == (2, 48000)
    for c in range(2):  # lossy, but each channel must still be its own tone
        assert _ncc(buf.samples[c], data[:, c]) > 0.95


@pytest.mark.skipif(not HAVE_LAME, reason="lame not installed")
def test_mp3_round_trip(tmp_path):
    rate = 44100
    data = _test_signal(rate, 1, seconds=2.0)
    wav, mp3 = tmp_path / "src.wav", tmp_path / "x.mp3"
    sf.write(wav, data, rate, subtype="PCM_16")
    subprocess.run(["lame", "--quiet", "-b", "128", str(wav), str(mp3)], check=True)

    info = read_info(mp3)
    assert (info.format, info.bit_depth, info.sample_rate, info.channels) == ("MP3", None, rate, 1)
    buf = load_audio(mp3)
    assert abs(buf.duration_s - 2.0) < 0.1
    lag, _ = estimate_lag(data[:, 0], buf.samples[0], rate)
    aligned = buf.samples[0, max(0, round(lag)) :]
    assert _ncc(data[: aligned.size, 0], aligned) > 0.95


def test_mono_downmix_is_channel_mean(tmp_path):
    data = _test_signal(48000, 3)
    path = tmp_path / "three.wav"
    sf.write(path, data, 48000, subtype="FLOAT")
    mono = load_audio(path, channels="mono")
    every = load_audio(path, channels="all")
    assert mono.samples.shape == (1, 48000)
    np.testing.assert_allclose(mono.samples[0], every.samples.mean(axis=0), atol=1e-6)
    # ... and also when resampling, where downmix happens before the streaming resampler.
    mono24 = load_audio(path, target_rate=24000)
    np.testing.assert_allclose(mono24.samples[0], resample(every.samples.mean(axis=0), 48000, 24000), atol=1e-4)


# --------------------------------------------------------------------------- resampling


def _tone_frequency_and_amplitude(x: np.ndarray, rate: int) -> tuple[float, float]:
    """Peak frequency (Hz, parabolic-interpolated FFT with a Hann window) and RMS·√2 amplitude."""
    x = x[len(x) // 10 : -len(x) // 10]  # skip resampler edge transients
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    freq = (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / x.size
    return freq, float(np.sqrt(2 * np.mean(x.astype(np.float64) ** 2)))


@pytest.mark.parametrize("sr_in,sr_out", [(48000, 24000), (44100, 16000), (16000, 48000), (96000, 44100)])
def test_resample_keeps_sine_frequency_and_amplitude(sr_in, sr_out):
    t = np.arange(2 * sr_in) / sr_in
    x = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    y = resample(np.stack([x, -x]), sr_in, sr_out)
    assert y.dtype == np.float32 and y.shape[0] == 2
    assert abs(y.shape[1] - 2 * sr_out) <= 1
    freq, amp = _tone_frequency_and_amplitude(y[0], sr_out)
    assert freq == pytest.approx(1000.0, abs=0.5)
    assert amp == pytest.approx(0.5, abs=0.005)
    np.testing.assert_allclose(y[1], -y[0], atol=1e-6)
    assert resample(x, sr_in, sr_out).shape == (y.shape[1],)  # 1-D in, 1-D out


def test_streaming_load_matches_whole_array_resample(tmp_path):
    data = _test_signal(44100, 2, seconds=3.0)  # longer than one read block (65536 frames)
    path = tmp_path / "s.wav"
    sf.write(path, data, 44100, subtype="FLOAT")
    streamed = load_audio(path, target_rate=24000, channels="all")
    whole = resample(data.T, 44100, 24000)
    assert streamed.samples.shape == whole.shape
    assert np.max(np.abs(streamed.samples - whole)) < 1e-4
    assert streamed.info is not None and streamed.info.sample_rate == 44100


# --------------------------------------------------------------------------- bad inputs


def _write_short(p):
    sf.write(p, _test_signal(48000, 1, seconds=0.2), 48000)


def _write_nan(p):
    data = _test_signal(48000, 2)
    data[30000, 1] = np.nan
    sf.write(p, data, 48000, subtype="FLOAT")


def _write_inf(p):
    data = _test_signal(48000, 1)
    data[100, 0] = np.inf
    sf.write(p, data, 48000, subtype="FLOAT")


def _write_silent(p):
    sf.write(p, np.zeros((48000, 2), np.float32), 48000, subtype="PCM_16")


def _write_near_silent(p):
    sf.write(p, np.full((48000, 1), 1e-7, np.float32), 48000, subtype="FLOAT")


def _write_low_rate(p):
    sf.write(p, _test_signal(4000, 1), 4000)


def _write_many_channels(p):
    sf.write(p, _test_signal(16000, 9), 16000)


BAD_FILES = {
    "zero-byte": ("empty.wav", lambda p: p.write_bytes(b""), "empty"),
    "text-as-wav": ("notes.wav", lambda p: p.write_text("this is not audio\n" * 50), "not an audio file"),
    "text": ("readme.txt", lambda p: p.write_text("hello"), "not an audio file"),
    "truncated-header": ("cut.wav", lambda p: p.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt "), "not an audio file"),
    "too-short": ("short.wav", _write_short, "too short (0.20 s)"),
    "nan": ("nan.wav", _write_nan, "NaN or infinite"),
    "inf": ("inf.wav", _write_inf, "NaN or infinite"),
    "silent": ("quiet.wav", _write_silent, "silent"),
    "below-120dBFS": ("hiss.wav", _write_near_silent, "silent"),
    "rate": ("phone.wav", _write_low_rate, "4000 Hz"),
    "channels": ("nine.wav", _write_many_channels, "9 channels"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_raise_one_sentence_audio_error(tmp_path, case):
    name, make, fragment = BAD_FILES[case]
    path = tmp_path / name
    make(path)
    with pytest.raises(AudioError) as exc:
        load_audio(path)
    message = str(exc.value)
    _assert_one_sentence(message, name)
    assert fragment in message
    assert str(tmp_path) not in message  # basename only


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(AudioError, match=r"^Cannot read 'gone\.wav': file not found\.$"):
        read_info(tmp_path / "gone.wav")
    folder = tmp_path / "album"
    folder.mkdir()
    for call in (read_info, load_audio, file_sha256):
        with pytest.raises(AudioError) as exc:
            call(folder)
        _assert_one_sentence(str(exc.value), "album")
        assert "directory" in str(exc.value)


def test_validate_signal_checks():
    rate = 16000
    good = np.sin(np.arange(rate) / 5.0).astype(np.float32)
    validate_signal(good, rate, "/some/dir/ok.wav")  # 1-D accepted, no error
    validate_signal(good[np.newaxis], rate, "ok.wav")
    validate_signal((good * 32767).astype(np.int16), rate, "pcm.wav")
    cases = [
        (good[:0], rate, "no audio samples"),
        (good[: rate // 4], rate, "too short (0.25 s)"),
        (good[: int(0.499 * rate)], rate, "(0.499 s)"),  # must not display as 0.50 s
        (np.where(np.arange(rate) == 7, np.nan, good), rate, "NaN"),
        (np.zeros(rate, np.float32), rate, "silent"),
        (np.full(rate, 9e-7, np.float32), rate, "silent"),
        (good, 200_000, "200000 Hz"),
        (np.tile(good, (9, 1)), rate, "9 channels"),
    ]
    for samples, sr, fragment in cases:
        with pytest.raises(AudioError) as exc:
            validate_signal(samples, sr, "/some/dir/bad.wav")
        _assert_one_sentence(str(exc.value), "bad.wav")
        assert fragment in str(exc.value)
    validate_signal(np.full(rate, 2e-6, np.float32), rate, "faint.wav")  # just above -120 dBFS: fine


def test_argument_errors_are_value_errors(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _test_signal(16000, 1), 16000)
    with pytest.raises(ValueError):
        load_audio(path, channels="left")
    with pytest.raises(ValueError):
        load_audio(path, target_rate=1000)


def test_file_sha256_streams_across_blocks(tmp_path):
    path = tmp_path / "big.bin"
    payload = np.random.default_rng(1).integers(0, 256, 3 * (1 << 20) + 17, dtype=np.uint8).tobytes()
    path.write_bytes(payload)
    assert file_sha256(path) == hashlib.sha256(payload).hexdigest()


def test_audio_buffer_shapes():
    buf = AudioBuffer(np.zeros(24000, np.float64), 24000)
    assert buf.samples.shape == (1, 24000) and buf.samples.dtype == np.float32
    assert (buf.channels, buf.num_samples, buf.duration_s) == (1, 24000, 1.0)
    with pytest.raises(ValueError):
        AudioBuffer(np.zeros((1, 2, 3)), 24000)


# --------------------------------------------------------------------------- ffmpeg-only formats


@pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg/ffprobe not installed")
def test_m4a_aac_decodes_through_ffmpeg(tmp_path):
    rate = 48000
    data = _test_signal(rate, 2, seconds=2.0)
    wav, m4a = tmp_path / "src.wav", tmp_path / "song.m4a"
    sf.write(wav, data, rate, subtype="PCM_16")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", str(wav), "-c:a", "aac", "-b:a", "128k", str(m4a)], check=True
    )
    with pytest.raises(sf.LibsndfileError):
        sf.info(m4a)  # the point of this test: libsndfile cannot read it

    info = read_info(m4a)
    assert "mp4" in info.format and info.subtype == "AAC" and info.bit_depth is None
    assert (info.sample_rate, info.channels) == (rate, 2)
    assert info.duration_s == pytest.approx(2.0, abs=0.05)

    buf = load_audio(m4a, target_rate=24000, channels="all")
    assert buf.samples.shape[0] == 2 and buf.sample_rate == 24000
    assert abs(buf.duration_s - 2.0) < 0.05
    assert buf.info.frames == round(buf.duration_s * rate)  # exact decoded count replaces the estimate
    ref = resample(data.T, rate, 24000)
    for c in range(2):
        lag, conf = estimate_lag(ref[c], buf.samples[c], 24000)
        assert abs(lag) < 2 and conf > 0.95  # ffmpeg honours the MP4 edit list: no priming delay


def test_ffmpeg_format_without_ffmpeg_says_so(tmp_path, monkeypatch):
    import deepaq_core.audio.ffmpeg as ffmpeg_mod

    monkeypatch.setattr(ffmpeg_mod, "tools_available", lambda: False)
    path = tmp_path / "voice memo.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    with pytest.raises(AudioError) as exc:
        load_audio(path)
    _assert_one_sentence(str(exc.value), "voice memo.m4a")
    assert "ffmpeg" in str(exc.value)


def test_print_stderr_reaches_stderr_while_another_thread_hides_it():
    """A header read in a helper thread points file descriptor 2 at /dev/null for a moment; a
    message that must be seen (a stopped batch's last words) still arrives."""
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys, threading
        from deepaq_core.audio.io import _quiet_c_stderr, print_stderr
        inside, done = threading.Event(), threading.Event()
        def helper():
            with _quiet_c_stderr():
                inside.set()
                done.wait(10)
        t = threading.Thread(target=helper)
        t.start()
        inside.wait(10)
        print("swallowed", file=sys.stderr, flush=True)
        print_stderr("deepaq: terminated; kept")
        done.set()
        t.join()
        print_stderr("after")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2])))
    assert out.returncode == 0, out.stderr
    assert out.stderr == "deepaq: terminated; kept\nafter\n"
