"""The demo session: the bundled reference, its real MP3 version, and versions made on the fly.

The generated versions (low-pass and noise at a few strengths) are written once to the user's
cache folder as FLAC, so they behave like any opened file (hashes, caching, export).
"""

from __future__ import annotations

import os
from pathlib import Path

DEMO_VERSIONS = [
    ("lowpass", {"cutoff_hz": 7000.0}, "demo_lowpass_7k.flac"),
    ("lowpass", {"cutoff_hz": 3500.0}, "demo_lowpass_3k5.flac"),
    ("noise", {"snr_db": 30.0}, "demo_noise_30db.flac"),
    ("noise", {"snr_db": 15.0}, "demo_noise_15db.flac"),
]


def demo_dir() -> Path:
    """Bundled demo audio (package data)."""
    from importlib.resources import files

    return Path(str(files("deepaq_resources"))) / "demo"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "deepaq" / "demo"


def demo_files() -> tuple[str, list[str]]:
    """Paths of the demo reference and its versions (generating missing ones)."""
    import soundfile as sf

    from deepaq_core.audio import load_audio
    from deepaq_core.degrade import degrade

    ref = demo_dir() / "demo_reference.flac"
    versions = [str(demo_dir() / "demo_mp3_64k.flac")]
    out = cache_dir()
    out.mkdir(parents=True, exist_ok=True)
    audio = None
    for kind, params, name in DEMO_VERSIONS:
        path = out / name
        if not path.is_file():
            if audio is None:
                audio = load_audio(ref, channels="all")
            y, _ = degrade(audio.samples, audio.sample_rate, kind, **params)
            tmp = path.with_suffix(".tmp.flac")
            sf.write(tmp, y.T, audio.sample_rate, subtype="PCM_16")
            tmp.replace(path)  # atomic: a half-written file is never picked up
        versions.append(str(path))
    return str(ref), versions
