#!/usr/bin/env python3
"""Rebuild the bundled demo audio in resources/demo/ (deterministic, no external material).

The reference is a 12-second stereo piece synthesised here (bass, chords, a plucked melody, kick,
hi-hat; 44.1 kHz, 16-bit FLAC), so it can be redistributed freely. The degraded demo is the same
piece through a real MP3 encoder (lame at 64 kbit/s, or ffmpeg's libmp3lame), decoded back to FLAC
without delay compensation, as a codec user would receive it.

    python tools/make_demo_audio.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100
DUR = 12.0
BPM = 112
OUT = Path(__file__).resolve().parent.parent / "resources" / "demo"


def note_hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def tone(midi: float, dur: float, harmonics: list[float], decay: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(dur * SR)) / SR
    f0 = note_hz(midi) * (1 + rng.normal(0, 0.0005))
    x = sum(a * np.sin(2 * np.pi * f0 * (h + 1) * t + rng.uniform(0, 2 * np.pi)) for h, a in enumerate(harmonics))
    env = np.minimum(t / 0.005, 1.0) * np.exp(-t / decay)
    return (x * env).astype(np.float64)


def render() -> np.ndarray:
    rng = np.random.default_rng(20261125)
    n = int(DUR * SR)
    left, right = np.zeros(n), np.zeros(n)
    beat = 60.0 / BPM

    def add(sig: np.ndarray, start_s: float, pan: float, gain: float) -> None:
        i = int(start_s * SR)
        j = min(n, i + len(sig))
        if i >= n:
            return
        left[i:j] += gain * np.cos(pan * np.pi / 2) * sig[: j - i]
        right[i:j] += gain * np.sin(pan * np.pi / 2) * sig[: j - i]

    chords = [[57, 60, 64], [53, 57, 60], [48, 52, 55], [55, 59, 62]]  # Am F C G
    bass = [45, 41, 36, 43]
    melody = [76, 74, 72, 71, 72, 74, 76, 79, 77, 76, 74, 72, 71, 72, 74, 72]
    n_beats = int(DUR / beat)
    for b in range(n_beats):
        bar = (b // 4) % 4
        t0 = b * beat
        if b % 4 == 0:
            for m in chords[bar]:
                add(tone(m, 4 * beat, [1.0, 0.5, 0.3, 0.2, 0.1], 1.5, rng), t0, 0.3 + 0.4 * rng.random(), 0.10)
        add(tone(bass[bar], beat * 0.9, [1.0, 0.6, 0.2], 0.4, rng), t0, 0.5, 0.30)
        mel = melody[b % len(melody)]
        add(tone(mel, beat * 0.8, [1.0, 0.4, 0.25, 0.15, 0.1, 0.05], 0.25, rng), t0, 0.7, 0.14)
        add(tone(mel + 12, beat * 0.5, [1.0, 0.3], 0.1, rng), t0 + beat / 2, 0.25, 0.05)
        # kick: pitch-swept sine
        tk = np.arange(int(0.25 * SR)) / SR
        if b % 2 == 0:
            kick = np.sin(2 * np.pi * (50 * tk + 60 * (1 - np.exp(-tk / 0.03)) * 0.03)) * np.exp(-tk / 0.12)
            add(kick, t0, 0.5, 0.45)
        # hi-hat: high-passed noise bursts on eighths
        for half in (0.0, 0.5):
            th = np.arange(int(0.06 * SR)) / SR
            noise = rng.normal(0, 1, th.size)
            noise = np.diff(noise, prepend=0.0)  # crude high-pass: first difference
            add(noise * np.exp(-th / 0.015), t0 + half * beat, 0.35 + 0.3 * (half > 0), 0.035)
    x = np.stack([left, right], axis=1)
    fade = int(0.3 * SR)
    x[-fade:] *= np.linspace(1, 0, fade)[:, None]
    return (0.89 * x / np.max(np.abs(x))).astype(np.float32)


def mp3_roundtrip(src: Path, dst: Path, kbps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mp3 = Path(tmp) / "x.mp3"
        wav = Path(tmp) / "x.wav"
        if shutil.which("lame"):
            subprocess.run(["lame", "--quiet", "-b", str(kbps), str(src), str(mp3)], check=True)
            subprocess.run(["lame", "--quiet", "--decode", str(mp3), str(wav)], check=True)
        elif shutil.which("ffmpeg"):
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c:a", "libmp3lame", "-b:a",
                            f"{kbps}k", str(mp3)], check=True)
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(mp3), str(wav)], check=True)
        else:
            sys.exit("Neither lame nor ffmpeg is installed; cannot make the MP3 demo.")
        data, sr = sf.read(wav, dtype="float32")
        sf.write(dst, data, sr, subtype="PCM_16")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    ref = OUT / "demo_reference.flac"
    sf.write(ref, render(), SR, subtype="PCM_16")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "ref.wav"
        sf.write(wav, sf.read(ref, dtype="float32")[0], SR, subtype="PCM_16")
        mp3_roundtrip(wav, OUT / "demo_mp3_64k.flac", 64)
    for p in sorted(OUT.glob("*.flac")):
        print(p.name, f"{p.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
