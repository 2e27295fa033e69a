"""The demo session: the bundled reference, its real MP3 version, and versions made on the fly.

The generated versions (real codec ladders when the encoders are installed, low-pass and noise at
a few strengths) are written once to the user's cache folder as FLAC, so they behave like any
opened file (hashes, caching, export). A missing encoder just leaves its rung out. The cache
folder is named after the reference's content, so a new demo reference never meets versions made
from an older one.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

CODEC_VERSIONS = [
    ("mp3", {"bitrate_kbps": 32}, "demo_mp3_32k.flac"),
    ("aac", {"bitrate_kbps": 48}, "demo_aac_48k.flac"),
    ("opus", {"bitrate_kbps": 24}, "demo_opus_24k.flac"),
]
DEMO_VERSIONS = [
    ("lowpass", {"cutoff_hz": 7000.0}, "demo_lowpass_7k.flac"),
    ("lowpass", {"cutoff_hz": 3500.0}, "demo_lowpass_3k5.flac"),
    # seeded: every machine makes the same noise, so the demo's scores are the ones the README quotes
    ("noise", {"snr_db": 30.0, "seed": 0}, "demo_noise_30db.flac"),
    ("noise", {"snr_db": 15.0, "seed": 0}, "demo_noise_15db.flac"),
]


def demo_dir() -> Path:
    """Bundled demo audio (package data)."""
    from importlib.resources import files

    return Path(str(files("deepaq_resources"))) / "demo"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "deepaq" / "demo"


def reference_tag(path: str | os.PathLike) -> str:
    """The first 12 hex digits of the SHA-256 of a file's bytes (names the cache of its versions)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def demo_job():
    """A worker job (:class:`deepaq_gui.workers.Worker`): generates the missing demo versions and
    returns ``(reference path, [version paths])``. Encoding takes seconds the first time, so it
    never runs on the UI thread; later starts find every file in the cache."""

    def job(cancel):
        import soundfile as sf

        from deepaq_core.audio import load_audio
        from deepaq_core.degrade import available_codecs, degrade
        from deepaq_core.scoring import Progress

        ref = demo_dir() / "demo_reference.flac"
        versions = [str(demo_dir() / "demo_mp3_64k.flac")]
        out = cache_dir() / reference_tag(ref)
        out.mkdir(parents=True, exist_ok=True)
        audio = None
        tools = available_codecs()
        todo = [v for v in CODEC_VERSIONS if tools.get(v[0])] + DEMO_VERSIONS
        for k, (kind, params, name) in enumerate(todo):
            path = out / name
            if not path.is_file():
                yield Progress(k / len(todo), f"Making the demo: {name}")
                if audio is None:
                    audio = load_audio(ref, channels="all")
                y, _ = degrade(audio.samples, audio.sample_rate, kind, **params)
                # a name of its own (two demo jobs may run at once), then an atomic rename:
                # a half-written file is never picked up
                tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.flac")
                sf.write(tmp, y.T, audio.sample_rate, subtype="PCM_16")
                tmp.replace(path)
            versions.append(str(path))
        return str(ref), versions

    return job
