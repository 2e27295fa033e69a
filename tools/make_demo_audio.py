#!/usr/bin/env python3
"""Rebuild the bundled demo audio in resources/demo/ from a public-domain score.

The reference is the opening of J. S. Bach's Prelude in C major, BWV 846 (Das Wohltemperierte
Klavier I, 1722; public domain), entered here note by note, played on a harpsichord with a soft
string section under the bass, and rendered by FluidSynth through the FluidR3 General MIDI
SoundFont (MIT licence; Debian package fluid-soundfont-gm) to 12 s of 48 kHz stereo, 16-bit FLAC.
A harpsichord's plucked strings carry partials up to 15-20 kHz, so codec band limits, pre-echo and
noise fills show in the 5-20 kHz band of the spectrogram and difference views and can be heard.

The degraded demo that ships with it is the same file through a real MP3 encoder (lame at
64 kbit/s, or ffmpeg's libmp3lame), decoded back to FLAC without delay compensation, as a codec
user would receive it. The app makes the other versions (MP3 32, AAC 48, Opus 24 kbit/s, low-pass,
noise) from the reference on first use (deepaq_gui/demo.py).

The generated files are committed, so neither users nor CI need FluidSynth. To rebuild them:

    apt-get install fluidsynth fluid-soundfont-gm lame      # Debian / Ubuntu
    python tools/make_demo_audio.py [--soundfont PATH]

Licences are listed in resources/demo/README.md.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 48000
DUR = 12.0
BPM = 88  # quarter notes per minute: one bar of the prelude is 2.73 s, four bars 10.9 s
OUT = Path(__file__).resolve().parent.parent / "resources" / "demo"
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2")

# BWV 846, bars 1-4 (C, Dm7/C, G7/B, C), MIDI note numbers, lowest first. Each half bar plays the
# figure n1 n2 n3 n4 n5 n3 n4 n5 in sixteenths; n1 is held for the half bar, n2 from its sixteenth on.
BARS = [
    (60, 64, 67, 72, 76),  # C4 E4 G4 C5 E5
    (60, 62, 69, 74, 77),  # C4 D4 A4 D5 F5
    (59, 62, 67, 74, 77),  # B3 D4 G4 D5 F5
    (60, 64, 67, 72, 76),  # C4 E4 G4 C5 E5
]
FINAL = (48, 60, 64, 67, 72, 76)  # the closing chord, rolled, over a low C
TICKS = 480  # per quarter note
HARPSICHORD, STRINGS = 6, 48  # General MIDI programs (0-based)


def notes() -> list[tuple[int, int, int, int, int]]:
    """``(start_tick, length_ticks, channel, key, velocity)`` for the whole excerpt."""
    six = TICKS // 4
    out = []
    t = 0
    for chord in BARS:
        for _half in range(2):
            start = t
            figure = [chord[0], chord[1], chord[2], chord[3], chord[4], chord[2], chord[3], chord[4]]
            for k, key in enumerate(figure):
                if k == 0:
                    length = 8 * six
                elif k == 1:
                    length = 7 * six
                else:
                    length = six
                vel = 88 if k in (0, 5) else 76
                out.append((start + k * six, length, 0, key, vel))
            # strings: the bass an octave down and the figure's second note, held for the half bar
            out.append((start, 8 * six, 1, chord[0] - 12, 52))
            out.append((start, 8 * six, 1, chord[1], 40))
            t += 8 * six
    for k, key in enumerate(FINAL):  # rolled, then held
        out.append((t + k * 30, 2 * TICKS, 0, key, 84))
    out.append((t, 2 * TICKS, 1, FINAL[0], 52))
    return out


def _vlq(n: int) -> bytes:
    b = [n & 0x7F]
    n >>= 7
    while n:
        b.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(b))


def midi_file(events: list[tuple[int, int, int, int, int]]) -> bytes:
    """A type-0 Standard MIDI File. Hand-written because the format needs only these few lines;
    a MIDI package would be a dependency of a tool that runs once per demo change."""
    msgs = []  # (tick, order, bytes); note-offs sort before note-ons at the same tick
    tempo = int(60_000_000 / BPM)
    msgs.append((0, 0, b"\xff\x51\x03" + tempo.to_bytes(3, "big")))
    msgs.append((0, 0, bytes([0xC0, HARPSICHORD])))
    msgs.append((0, 0, bytes([0xC1, STRINGS])))
    msgs.append((0, 0, bytes([0xB0, 10, 40])))  # harpsichord a little left
    msgs.append((0, 0, bytes([0xB1, 10, 84])))  # strings a little right
    msgs.append((0, 0, bytes([0xB1, 7, 90])))
    for start, length, ch, key, vel in events:
        msgs.append((start, 2, bytes([0x90 | ch, key, vel])))
        msgs.append((start + length, 1, bytes([0x80 | ch, key, 0])))
    msgs.sort(key=lambda m: (m[0], m[1]))
    track = bytearray()
    now = 0
    for tick, _, data in msgs:
        track += _vlq(tick - now) + data
        now = tick
    track += b"\x00\xff\x2f\x00"
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS)
            + b"MTrk" + struct.pack(">I", len(track)) + bytes(track))


def render(soundfont: str) -> np.ndarray:
    """The score through FluidSynth: ``[n, 2]`` float32, 12 s at 48 kHz, peak 0.89."""
    if not shutil.which("fluidsynth"):
        sys.exit("fluidsynth is not installed (Debian/Ubuntu: apt-get install fluidsynth fluid-soundfont-gm).")
    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "bwv846.mid"
        wav = Path(tmp) / "bwv846.wav"
        mid.write_bytes(midi_file(notes()))
        subprocess.run(["fluidsynth", "-ni", "-q", "-r", str(SR), "-g", "0.5", "-F", str(wav), "-T", "wav",
                        soundfont, str(mid)], check=True, stdout=subprocess.DEVNULL)
        x, sr = sf.read(wav, dtype="float64", always_2d=True)
    if sr != SR:
        sys.exit(f"fluidsynth wrote {sr} Hz instead of {SR} Hz.")
    n = int(DUR * SR)
    x = x[:n] if len(x) >= n else np.pad(x, ((0, n - len(x)), (0, 0)))
    fade = int(0.4 * SR)
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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--soundfont", default=next((s for s in SOUNDFONTS if Path(s).is_file()), None),
                    help="General MIDI SoundFont (default: FluidR3_GM.sf2 from fluid-soundfont-gm)")
    args = ap.parse_args()
    if not args.soundfont or not Path(args.soundfont).is_file():
        sys.exit("No SoundFont found; install fluid-soundfont-gm or pass --soundfont PATH.")
    OUT.mkdir(parents=True, exist_ok=True)
    ref = OUT / "demo_reference.flac"
    sf.write(ref, render(args.soundfont), SR, subtype="PCM_16")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "ref.wav"
        sf.write(wav, sf.read(ref, dtype="float32")[0], SR, subtype="PCM_16")
        mp3_roundtrip(wav, OUT / "demo_mp3_64k.flac", 64)
    for p in sorted(OUT.glob("*.flac")):
        print(p.name, f"{p.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
