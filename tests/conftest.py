"""Shared fixtures: generated music-like signals written to temporary files (no external data)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def music_like(seconds: float, sr: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A deterministic music-like signal: harmonic notes with envelopes plus noise bursts.

    Returns float32 [N, channels] (soundfile's layout), peak about 0.5.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = np.zeros(n)
    note_len = 0.25
    for k in range(int(seconds / note_len)):
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        i0 = int(k * note_len * sr)
        seg = t[: int(note_len * 1.5 * sr)]
        env = np.exp(-seg / 0.15) * np.minimum(seg / 0.004, 1)
        tone = sum(0.6 / (h + 1) * np.sin(2 * np.pi * f0 * (h + 1) * seg) for h in range(6))
        j = min(n, i0 + seg.size)
        x[i0:j] += (tone * env)[: j - i0]
        if rng.random() < 0.5:  # percussive noise burst
            b = rng.normal(0, 0.3, int(0.03 * sr)) * np.exp(-np.arange(int(0.03 * sr)) / (0.008 * sr))
            jb = min(n, i0 + b.size)
            x[i0:jb] += b[: jb - i0]
    x = 0.5 * x / np.max(np.abs(x))
    out = np.stack([np.roll(x, 37 * c) * (1 - 0.1 * c) for c in range(channels)], axis=1)
    return out.astype(np.float32)


def lowpass(x: np.ndarray, sr: int, cutoff: float) -> np.ndarray:
    sos = scipy.signal.butter(8, cutoff, "lowpass", fs=sr, output="sos")
    return scipy.signal.sosfiltfilt(sos, x, axis=0).astype(np.float32)


@pytest.fixture(scope="session")
def signals(tmp_path_factory):
    """Paths of a 6 s 48 kHz stereo reference and degraded versions of it.

    Keys: ref, same (identical copy), lp (3 kHz low-pass), lp8 (8 kHz low-pass), noisy (white noise
    at 10 dB SNR), delayed (ref delayed by 2100 samples and 6 dB quieter), mono (1-channel ref).
    """
    d = tmp_path_factory.mktemp("signals")
    sr = 48000
    ref = music_like(6.0, sr, channels=2)
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1, ref.shape).astype(np.float32)
    noise *= np.sqrt(np.mean(ref**2) / np.mean(noise**2) / 10 ** (10 / 10))
    delayed = np.concatenate([np.zeros((2100, 2), np.float32), ref])[: ref.shape[0]] * 0.5
    files = {
        "ref": ref,
        "same": ref,
        "lp": lowpass(ref, sr, 3000),
        "lp8": lowpass(ref, sr, 8000),
        "noisy": ref + noise,
        "delayed": delayed,
        "mono": ref[:, :1],
    }
    paths = {}
    for name, data in files.items():
        p = d / f"{name}.wav"
        sf.write(p, data, sr, subtype="FLOAT")
        paths[name] = str(p)
    return paths
