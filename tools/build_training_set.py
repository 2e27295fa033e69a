#!/usr/bin/env python3
"""Rebuild the clean training set for the compact DeePAQ model, offline, from package registries.

    python tools/build_training_set.py --out /work/data/clean --apt [--max-hours 6] [--jobs 2]

What it does (see docs/TRAINING_DATA.md for the sources, their licences and the hours):

* ``--apt`` installs the Debian packages it reads (and ``music21`` from PyPI into the running
  interpreter); without it, sources whose packages are missing are skipped with a note.
* Collects recorded music from Debian game-music packages (Ogg Vorbis / Opus / tracker modules),
  keeps Frets on Fire songs as aligned stems (``mix.flac`` = sum of the stems, plus one file per
  stem and ``stems.json``), renders public-domain scores of the music21 corpus to audio with
  fluidsynth (three General MIDI soundfonts) and TiMidity++ (freepats), renders drum patterns
  from the Hydrogen drum kits, and synthesises a little speech with espeak-ng (< 10 %).
* Every output is FLAC (24-bit), at its native rate when that is 32-48 kHz (above 48 kHz is
  resampled to 48 kHz; espeak's 22.05 kHz speech is resampled to 24 kHz), mono or stereo,
  trimmed of leading/trailing silence, at most 10 minutes (longer material is split at a quiet
  point). Near-silent and undecodable files are skipped.
* Each source gets a share of ``--max-hours`` (``WEIGHTS``); items are taken in a fixed,
  hash-based order until the share is filled, so a rebuild makes the same selection.
* Idempotent: a finished item leaves a record in ``OUT/.state``; rerunning skips it. Items that
  fall outside a (smaller) budget are removed.
* Writes ``OUT/sources.csv`` (one row per file), ``OUT/LICENSES/`` (the copyright files of the
  packages used), ``OUT/excluded.txt`` (what was left out and why) and prints a summary table.

Nothing is written into the repository.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import fnmatch
import functools
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

MAX_FILE_S = 600.0          # files are at most 10 minutes
SPLIT_TARGET_S = 570.0      # longer material is cut into parts of about this length
MIN_ACTIVE_S = 3.0          # less active audio than this: near-silent, skipped
SILENCE_DB = -60.0          # frame RMS (dBFS) below this counts as silence for trimming
QUIET_DB = -50.0            # whole-file RMS below this: too quiet, skipped
MIN_MUSIC_SR = 32000        # recorded music below this rate is skipped (no content above 16 kHz)
MAX_SR = 48000
SPEECH_SR = 24000
RENDER_SEED = "deepaq-clean-v1"
MAX_RENDER_S = 1200.0       # a score longer than this once rendered is taken as broken
RENDER_TIMEOUT_S = 300      # wall-clock limit for one fluidsynth/timidity call

SF2_DIR = Path("/usr/share/sounds/sf2")
SOUNDFONTS = {  # name: (file, package, weight)
    "fluidr3": ("FluidR3_GM.sf2", "fluid-soundfont-gm", 4),
    "musescore": ("MuseScore_General_Full.sf2", "musescore-general-soundfont-lossless", 5),
    "timgm6mb": ("TimGM6mb.sf2", "timgm6mb-soundfont", 2),
}
FREEPATS_CFG = Path("/etc/timidity/freepats.cfg")

# Share of --max-hours per source (sums to 1). A source with less material than its share
# simply contributes all it has.
WEIGHTS = {
    "fretsonfire": 0.14,
    "wesnoth": 0.11,
    "ufoai": 0.11,
    "warzone2100": 0.09,
    "nexuiz": 0.07,
    "hyperrogue": 0.06,
    "singularity": 0.06,
    "planetblupi": 0.03,
    "frozen-bubble": 0.01,
    "music21-fluidsynth": 0.16,
    "planetblupi-midi": 0.03,
    "music21-timidity": 0.04,
    "hydrogen-drums": 0.03,
    "espeak-speech": 0.06,
}

APT_PACKAGES = [
    # tools
    "ffmpeg", "fluidsynth", "timidity", "espeak-ng", "flac",
    # recorded music
    "fretsonfire-songs-muldjord", "fretsonfire-songs-sectoid", "wesnoth-1.16-music",
    "ufoai-music", "warzone2100-music", "nexuiz-music", "hyperrogue-music", "singularity-music",
    "planetblupi-music-ogg", "planetblupi-music-midi", "fb-music-high",
    # instruments
    "fluid-soundfont-gm", "musescore-general-soundfont-lossless", "timgm6mb-soundfont",
    "freepats", "hydrogen-drumkits",
]
PIP_PACKAGES = ["music21==10.5.1"]

# What was looked at and left out (written to OUT/excluded.txt and the docs).
EXCLUDED = [
    ("drascula-music", "custom 'Drascula' licence (no fee for the game itself, modified "
     "versions must be marked): not a standard free licence, left out to be safe"),
    ("asc-music", "GPL-2+, but the three MP3s are 22.05 kHz (no content above 11 kHz)"),
    ("xblast-tnt-musics", "headerless .raw PCM of unknown format"),
    ("supertuxkart-data", "628 MB download for a few tracks; mixed per-file licences"),
    ("planetblupi-music-ogg (beyond 150 s)", "the tracks are 10-28 min loops of one theme: "
     "only the first 150 s of each are used"),
    ("music21 corpus: palestrina, krn files", "Humdrum encodings: 'Rights to all derivative "
     "electronic formats reserved. Refer to licensing agreement'"),
    ("music21 corpus: essenFolksong", "permission for non-commercial use only"),
    ("music21 corpus: monteverdi", "Ut Orpheus Edizioni edition, copyright notice"),
    ("music21 corpus: trecento, demos, leadSheet, theoryExercises, nottingham-dataset",
     "copyright notices without terms, 'All Rights Reserved', or unclear licence"),
    ("music21 corpus: schoenberg", "composition may still be under copyright"),
    ("musescore-general-soundfont (lossy), fluidr3mono-gm-soundfont", "samples stored as Ogg "
     "Vorbis (SF3); the lossless MuseScore soundfont is used instead"),
    ("hydrogen-drumkits: Gimme A Hand, belofilms GuitarStrums", "no kick drum: do not fit the "
     "drum patterns"),
    ("music21 corpus: any score whose <rights> says copyright/all rights reserved without a "
     "free licence or public-domain statement", "per-file check"),
]

# --------------------------------------------------------------------------------------------
# Licences: a short name per package (or per file, from machine-readable DEP-5 copyright
# files), verified against the package's copyright file. A package whose file does not
# contain the evidence is not used.
# --------------------------------------------------------------------------------------------

DEP5 = "DEP-5"  # per-file licence, read from the copyright file
LICENCE_SPEC = {
    "fretsonfire-songs-muldjord": ("CC-BY-SA-3.0", r"Attribution[- ]ShareAlike 3\.0"),
    "fretsonfire-songs-sectoid": ("Expat", r"Permission is hereby granted, free of charge"),
    "wesnoth-1.16-music": ("GPL-2+", r"GNU General Public License version 2\s+or at your option any later"),
    "ufoai-music": (DEP5, r"base/music/"),
    "warzone2100-music": (DEP5, r"Files: \*"),
    "nexuiz-music": ("GPL-2+", r"either version 2\s+of the License, or \(at your option\) any later"),
    "hyperrogue-music": (DEP5, r"music/hr3-caves\.ogg"),
    "singularity-music": ("CC-BY-SA-3.0", r"Attribution-ShareAlike 3\.0"),
    "planetblupi-music-ogg": (DEP5, r"License: GPL-3\+"),
    "planetblupi-music-midi": (DEP5, r"License: GPL-3\+"),
    "fb-music-high": ("GPL-2+", r"GNU General Public License, version 2 or later"),
    "fluid-soundfont-gm": ("MIT", r"release Fluid under the MIT license"),
    "musescore-general-soundfont-lossless": ("MIT (parts CC0/PD)", r"MuseScore_General_HQ SoundFont \(MIT"),
    "timgm6mb-soundfont": (DEP5, r"TimGM6mb\.sf2"),
    "freepats": ("GPL-2+ with composition exception", r"if you create a composition which uses\s+these\s+patches"),
    "hydrogen-drumkits": (DEP5, r"drumkits/"),
    "espeak-ng": ("GPL-3+", r"either version 3 of the License, or"),
    "base-files": ("verbatim copying permitted", r""),
}

# music21 corpus collections used (composition in the public domain; encodings distributed
# with music21 by permission or under the stated licence). Each is (group, note).
M21_COLLECTIONS = {
    "bach": ("chorales", "PD composition; encoding in the music21 corpus (BSD tool, distributed by permission)"),
    "beethoven": ("classical", "PD composition; music21 corpus encoding"),
    "haydn": ("classical", "PD composition; music21 corpus encoding"),
    "mozart": ("classical", "PD composition; music21 corpus encoding"),
    "handel": ("classical", "PD composition; music21 corpus encoding"),
    "cpebach": ("classical", "PD composition; music21 corpus encoding"),
    "corelli": ("classical", "PD composition; encoding CC-BY"),
    "schumann_robert": ("romantic", "PD composition; music21 corpus encoding"),
    "schumann_clara": ("romantic", "PD composition; music21 corpus encoding"),
    "schubert": ("romantic", "PD composition; music21 corpus encoding"),
    "verdi": ("romantic", "PD composition; music21 corpus encoding"),
    "weber": ("romantic", "PD composition; encoding released to the public domain"),
    "joplin": ("romantic", "PD composition; music21 corpus encoding"),
    "beach": ("romantic", "PD composition (1915); engraving by M. S. Cuthbert"),
    "johnson_j_r": ("romantic", "PD composition; encoding CC0"),
    "liliuokalani": ("romantic", "PD composition; encoding CC0"),
    "webern": ("romantic", "PD composition (EU/Canada/US); edition CC-BY-SA"),
    "ciconia": ("early", "PD composition; encoding CC-BY-SA-3.0"),
    "luca": ("early", "PD composition; encoding CC-BY-SA-3.0"),
    "lusitano": ("early", "PD composition; encoding CC0"),
    "josquin": ("early", "PD composition; ABC encoding GPL-2+ (L. E. Conrad)"),
    "ryansMammoth": ("folk", "PD (Ryan's Mammoth Collection, 1883); ABC transcriptions in the music21 corpus"),
    "oneills1850": ("folk", "PD (O'Neill's 1850, 1903); ABC transcriptions in the music21 corpus"),
    "airdsAirs": ("folk", "PD (Aird's Airs, 1778); ABC transcription in the music21 corpus"),
    "miscFolk": ("folk", "PD traditional tunes; music21 corpus encoding"),
}
M21_GROUP_SHARE = {"chorales": 0.28, "classical": 0.27, "romantic": 0.13, "early": 0.07, "folk": 0.25}
M21_EXTS = (".mxl", ".xml", ".musicxml", ".abc")
FREE_RIGHTS = re.compile(r"public domain|\bcc0\b|cc-by|creative commons|\bgpl\b|out of copyright|"
                         r"freely distributed|released to public domain|p\.d\.", re.I)
RESTRICTED_RIGHTS = re.compile(r"copyright|©|all rights reserved|non-?commercial", re.I)

# General MIDI programs (0-based). Ensembles: (name, [top .. bottom voices]).
ENSEMBLES = [
    ("string-quartet", [40, 40, 41, 42]), ("string-orchestra", [48, 48, 48, 48]),
    ("brass", [56, 56, 60, 57]), ("woodwinds", [73, 68, 71, 70]), ("saxes", [64, 65, 66, 67]),
    ("organ", [19, 19, 19, 19]), ("choir", [52, 52, 52, 52]), ("piano", [0, 0, 0, 0]),
    ("harpsichord", [6, 6, 6, 6]), ("nylon-guitar", [24, 24, 24, 24]),
    ("mallets", [8, 11, 12, 12]), ("recorders", [74, 74, 74, 74]),
    ("mixed-chamber", [73, 40, 71, 42]), ("jazz-combo", [65, 26, 0, 32]),
    ("electric", [4, 27, 16, 33]), ("horns-strings", [60, 40, 41, 43]),
]
SOLO_PROGRAMS = [40, 110, 73, 72, 21, 22, 105, 109, 75, 74, 0, 24, 25, 71, 68, 56, 13, 79,
                 46, 15, 104, 106, 107, 108, 10, 8, 4, 6, 11, 65]
# Stand-ins where freepats has no patch (TiMidity would be silent otherwise).
FREEPATS_SUBST = {41: 40, 43: 42, 52: 53, 11: 13, 12: 13, 110: 40, 105: 24, 22: 21, 109: 68,
                  106: 24, 107: 46, 108: 8, 10: 8, 3: 0, 20: 19, 17: 16, 18: 16, 39: 38,
                  49: 48, 50: 48, 51: 48, 62: 61, 63: 61, 31: 30, 26: 26}


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

def h(*parts) -> int:
    """Deterministic hash of anything printable (stable across runs and machines)."""
    return int(hashlib.sha1("|".join(map(str, (RENDER_SEED,) + parts)).encode()).hexdigest()[:12], 16)


def hashed_order(items, salt=""):
    return sorted(items, key=lambda x: h(salt, x))


def safe_name(s: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_.")
    return s[:80] or "x"


def log(*a):
    print(*a, flush=True)


def run(cmd, timeout=None, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, **kw)


@functools.lru_cache(maxsize=None)
def pkg_version(pkg: str) -> str | None:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}|${Version}", pkg],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    except FileNotFoundError:
        return None
    if out.returncode != 0 or not out.stdout.startswith("ii"):
        return None
    return out.stdout.split("|", 1)[1].strip()


@functools.lru_cache(maxsize=None)
def copyright_text(pkg: str) -> str:
    p = Path("/usr/share/doc") / pkg / "copyright"
    return p.read_text(errors="replace") if p.exists() else ""


@functools.lru_cache(maxsize=None)
def parse_dep5(text: str):
    """[(patterns, licence)] from a machine-readable copyright file, in file order."""
    out = []
    for para in re.split(r"\n[ \t]*\n", text):
        m = re.search(r"^Files:(.*?)(?=^\S|\Z)", para, re.S | re.M)
        lic = re.search(r"^License:[ \t]*(\S.*)$", para, re.M)
        if m and lic:
            out.append((m.group(1).split(), lic.group(1).strip()))
    return out


class Licences:
    def __init__(self):
        self.cache = {}

    def check(self, pkg: str) -> tuple[bool, str]:
        """Is the package installed and its copyright file as expected? (ok, why-not)."""
        if pkg not in self.cache:
            ver = pkg_version(pkg)
            if ver is None:
                self.cache[pkg] = (False, "not installed")
            else:
                spec = LICENCE_SPEC.get(pkg)
                text = copyright_text(pkg)
                if spec is None:
                    self.cache[pkg] = (False, "no licence entry in LICENCE_SPEC")
                elif spec[1] and not re.search(spec[1], text):
                    self.cache[pkg] = (False, "copyright file does not show the expected licence")
                else:
                    self.cache[pkg] = (True, "")
        return self.cache[pkg]

    def licence(self, pkg: str, relpath: str | None = None) -> str:
        name, _ = LICENCE_SPEC[pkg]
        if name != DEP5:
            return name
        found = None
        for pats, lic in parse_dep5(copyright_text(pkg)):
            if relpath is not None and any(fnmatch.fnmatchcase(relpath, p) for p in pats):
                found = lic  # last match wins (DEP-5)
            elif relpath is None and "*" in pats:
                found = lic
        if found is None:
            for pats, lic in parse_dep5(copyright_text(pkg)):
                if "*" in pats:
                    found = lic
        return found or "UNKNOWN"


# --------------------------------------------------------------------------------------------
# Audio: decode, clean up, write
# --------------------------------------------------------------------------------------------

class SkipItem(Exception):
    pass


def decode(path: str | Path, max_seconds: float | None = None) -> tuple[np.ndarray, int, str]:
    """float32 [N, C], rate, format note. soundfile first, ffmpeg as fallback."""
    path = str(path)
    try:
        with sf.SoundFile(path) as f:
            frames = -1 if max_seconds is None else int(max_seconds * f.samplerate)
            x = f.read(frames=frames, dtype="float32", always_2d=True)
            fmt = f"{f.format}/{f.subtype}"
            return x, f.samplerate, fmt
    except Exception:
        pass
    with tempfile.TemporaryDirectory() as td:
        wav = os.path.join(td, "d.wav")
        cmd = ["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", path]
        if max_seconds is not None:
            cmd += ["-t", str(max_seconds)]
        cmd += ["-c:a", "pcm_f32le", "-f", "wav", wav]
        try:
            run(cmd)
            x, sr = sf.read(wav, dtype="float32", always_2d=True)
        except Exception as e:
            raise SkipItem(f"undecodable ({type(e).__name__})")
    return x, sr, "ffmpeg:" + Path(path).suffix.lstrip(".")


def to_rate(x: np.ndarray, sr: int, kind: str) -> tuple[np.ndarray, int]:
    import soxr
    if sr > MAX_SR:
        return soxr.resample(x, sr, MAX_SR, quality="VHQ").astype(np.float32), MAX_SR
    if kind == "speech" and sr != SPEECH_SR and sr < 32000:
        return soxr.resample(x, sr, SPEECH_SR, quality="VHQ").astype(np.float32), SPEECH_SR
    if sr < MIN_MUSIC_SR:
        raise SkipItem(f"sample rate {sr} Hz below {MIN_MUSIC_SR}")
    return x, sr


def frame_db(x: np.ndarray, hop: int) -> np.ndarray:
    n = len(x) // hop
    if n == 0:
        return np.full(1, -200.0)
    e = np.mean(x[: n * hop].reshape(n, hop, -1) ** 2, axis=(1, 2))
    return 10 * np.log10(e + 1e-20)


def active_bounds(x: np.ndarray, sr: int) -> tuple[int, int, float]:
    hop = int(0.02 * sr)
    db = frame_db(x, hop)
    act = np.flatnonzero(db > SILENCE_DB)
    if len(act) == 0:
        return 0, 0, 0.0
    margin = int(0.1 * sr)
    start = max(0, act[0] * hop - margin)
    end = min(len(x), (act[-1] + 1) * hop + margin)
    return start, end, len(act) * hop / sr


def split_points(x: np.ndarray, sr: int) -> list[int]:
    """Cut points (samples) that keep every part under MAX_FILE_S, at quiet moments."""
    n = len(x)
    dur = n / sr
    if dur <= MAX_FILE_S:
        return [0, n]
    parts = math.ceil(dur / SPLIT_TARGET_S)
    hop = int(0.05 * sr)
    db = frame_db(x, hop)
    cuts = [0]
    for k in range(1, parts):
        ideal = k * n / parts
        lo = int(max(0, ideal - 10 * sr) // hop)
        hi = int(min(n, ideal + 10 * sr) // hop)
        j = lo + int(np.argmin(db[lo:hi])) if hi > lo else int(ideal // hop)
        cuts.append(j * hop)
    cuts.append(n)
    return cuts


def fade(x: np.ndarray, sr: int, ms: float = 5.0) -> np.ndarray:
    k = min(len(x) // 2, int(sr * ms / 1000))
    if k > 0:
        r = np.linspace(0.0, 1.0, k, dtype=np.float32)[:, None]
        x[:k] *= r
        x[-k:] *= r[::-1]
    return x


def maybe_mono(x: np.ndarray) -> np.ndarray:
    if x.shape[1] > 2:
        x = x[:, :2]
    if x.shape[1] == 2:
        peak = float(np.max(np.abs(x))) + 1e-9
        if float(np.max(np.abs(x[:, 0] - x[:, 1]))) <= 1e-4 * peak:
            x = x[:, :1]
    return x


def write_flac(path: Path, x: np.ndarray, sr: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    sf.write(str(tmp), np.clip(x, -1.0, 1.0), sr, format="FLAC", subtype="PCM_24")
    os.replace(tmp, path)


def finish(x: np.ndarray, sr: int, out_base: Path, kind: str, target_peak: float | None = None,
           max_peak: float = 0.98) -> list[dict]:
    """Clean up one signal and write it as one or more FLAC parts. Returns file entries."""
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise SkipItem("empty or non-finite samples")
    x, sr = to_rate(maybe_mono(x), sr, kind)
    s, e, active = active_bounds(x, sr)
    if active < MIN_ACTIVE_S:
        raise SkipItem(f"near-silent ({active:.1f} s above {SILENCE_DB:.0f} dBFS)")
    x = np.ascontiguousarray(x[s:e])
    rms_db = 10 * math.log10(float(np.mean(x.astype(np.float64) ** 2)) + 1e-20)
    if rms_db < QUIET_DB:
        raise SkipItem(f"too quiet ({rms_db:.1f} dBFS RMS)")
    peak = float(np.max(np.abs(x)))
    if target_peak is not None:
        x = x * (target_peak / peak)
    elif peak > max_peak:
        x = x * (max_peak / peak)
    cuts = split_points(x, sr)
    entries = []
    for i in range(len(cuts) - 1):
        part = fade(x[cuts[i]: cuts[i + 1]].copy(), sr)
        name = out_base.name + (f"_p{i + 1:02d}" if len(cuts) > 2 else "") + ".flac"
        p = out_base.with_name(name)
        write_flac(p, part, sr)
        entries.append({"file": str(p), "seconds": round(len(part) / sr, 3), "sample_rate": sr,
                        "channels": int(part.shape[1])})
    return entries


# --------------------------------------------------------------------------------------------
# Work items (run in worker processes; each returns a record)
# --------------------------------------------------------------------------------------------

def job_file(args: dict) -> list[dict]:
    """One recorded file (optionally inside a zip/pk3), optionally clipped to max_seconds."""
    src = args["path"]
    if args.get("member"):
        with zipfile.ZipFile(src) as z, tempfile.TemporaryDirectory() as td:
            tmp = Path(td) / Path(args["member"]).name
            tmp.write_bytes(z.read(args["member"]))
            x, sr, fmt = decode(tmp, args.get("max_seconds"))
    else:
        x, sr, fmt = decode(src, args.get("max_seconds"))
    entries = finish(x, sr, Path(args["out_base"]), args["kind"])
    for en in entries:
        en["orig_format"] = fmt
    return entries


def job_stems(args: dict) -> list[dict]:
    """A multitrack song: the mix (sum of stems) and every stem, trimmed/cut identically."""
    stems = {}
    rates = set()
    fmt = ""
    for role, p in args["stems"].items():
        x, sr, fmt = decode(p)
        if not np.all(np.isfinite(x)):
            raise SkipItem(f"non-finite samples in {role}")
        if x.shape[1] == 1:
            x = np.repeat(x, 2, axis=1)
        stems[role] = x[:, :2]
        rates.add(sr)
    if len(rates) != 1:
        raise SkipItem("stems at different sample rates")
    sr = rates.pop()
    n = max(len(v) for v in stems.values())
    stems = {k: np.pad(v, ((0, n - len(v)), (0, 0))) for k, v in stems.items()}
    mix = sum(stems.values())
    s, e, active = active_bounds(mix, sr)
    if active < MIN_ACTIVE_S:
        raise SkipItem("near-silent mix")
    peak = max(float(np.max(np.abs(v[s:e]))) for v in list(stems.values()) + [mix])
    g = min(1.0, 0.98 / peak)
    out_dir = Path(args["out_dir"])
    signals = {"mix": mix}
    signals.update(stems)
    cuts = split_points(mix[s:e], sr)
    nparts = len(cuts) - 1
    entries = []
    for i in range(nparts):
        sub = out_dir if nparts == 1 else out_dir.with_name(out_dir.name + f"_p{i + 1:02d}")
        files = {}
        for role, x in signals.items():
            part = fade(np.ascontiguousarray(x[s + cuts[i]: s + cuts[i + 1]] * g), sr)
            p = sub / f"{role}.flac"
            write_flac(p, part, sr)
            files[role] = p.name
            entries.append({"file": str(p), "seconds": round(len(part) / sr, 3), "sample_rate": sr,
                            "channels": 2, "role": "mix" if role == "mix" else "stem",
                            "has_stems": True, "orig_format": fmt})
        info = {
            "mix": files["mix"],
            "stems": {r: files[r] for r in stems},
            "stem_roles": args["roles"],
            "mix_is_sum_of_stems": True,
            "gain_applied": round(g, 6),
            "sample_rate": sr,
            "source_files": {r: str(p) for r, p in args["stems"].items()},
            "part": f"{i + 1}/{nparts}",
        }
        (sub / "stems.json").write_text(json.dumps(info, indent=2) + "\n")
    return entries


_M21 = None


def _music21():
    global _M21
    if _M21 is None:
        import music21  # noqa: F401  (heavy import, once per worker)
        import warnings
        warnings.filterwarnings("ignore")
        _M21 = music21
    return _M21


def score_to_midi(args: dict, midi_path: Path) -> dict:
    """Parse one score (or one ABC tune), set instruments and tempo, write a MIDI file."""
    _music21()
    from music21 import converter, instrument, tempo, stream
    src = args["score"]
    if args.get("abc_tune") is not None:
        text = Path(src).read_text(errors="replace")
        s = converter.parse(abc_tune_text(text, args["abc_tune"]), format="abc")
    else:
        s = converter.parse(src)
    if isinstance(s, stream.Opus):
        s = s.scores[0]
    if not isinstance(s, stream.Score):
        sc = stream.Score()
        sc.insert(0, s)
        s = sc
    try:
        s = s.expandRepeats()
    except Exception:
        pass
    parts = list(s.parts)
    if not parts:
        raise SkipItem("score without parts")
    programs = args["programs"]
    for i, p in enumerate(parts):
        for inst in list(p.recurse().getElementsByClass(instrument.Instrument)):
            inst.activeSite.remove(inst)
        if len(parts) == 1:
            prog = programs[0]
        elif i == len(parts) - 1:
            prog = programs[-1]
        else:
            prog = programs[min(i, len(programs) - 2)]
        inst = instrument.Instrument()
        inst.midiProgram = int(prog)
        p.insert(0, inst)
    marks = list(s.recurse().getElementsByClass(tempo.MetronomeMark))
    for m in marks:
        if m.number is None:  # a text-only mark ("Allegro"): give it the planned tempo
            m.number = args["qpm"]
    if not marks:
        parts[0].insert(0, tempo.MetronomeMark(number=args["qpm"]))
    s.write("midi", fp=str(midi_path))
    return {"n_parts": len(parts), "has_tempo": bool(marks)}


def abc_tune_text(text: str, number: str) -> str:
    """The file header plus the tune with X:number, from a multi-tune ABC file."""
    chunks = re.split(r"(?m)^(?=X:)", text)
    header = chunks[0] if not chunks[0].lstrip().startswith("X:") else ""
    for c in chunks:
        m = re.match(r"X:\s*(\S+)", c)
        if m and m.group(1) == str(number):
            return header + c
    raise SkipItem(f"ABC tune X:{number} not found")


def midi_seconds(path: Path) -> float:
    """Length of a standard MIDI file in seconds (tempo map honoured)."""
    data = Path(path).read_bytes()
    if data[:4] != b"MThd":
        raise SkipItem("not a standard MIDI file")
    division = int.from_bytes(data[12:14], "big")
    if division & 0x8000:
        raise SkipItem("SMPTE-timed MIDI file")
    pos, end_tick, tempos = 8 + int.from_bytes(data[4:8], "big"), 0, []
    while pos + 8 <= len(data):
        ln = int.from_bytes(data[pos + 4: pos + 8], "big")
        if data[pos: pos + 4] == b"MTrk":
            i, stop, tick, status = pos + 8, pos + 8 + ln, 0, 0
            while i < stop:
                d = 0
                while True:
                    b = data[i]
                    i += 1
                    d = (d << 7) | (b & 0x7F)
                    if not b & 0x80:
                        break
                tick += d
                b = data[i]
                if b & 0x80:
                    status = b
                    i += 1
                if status == 0xFF:
                    typ = data[i]
                    i += 1
                    n = 0
                    while True:
                        c = data[i]
                        i += 1
                        n = (n << 7) | (c & 0x7F)
                        if not c & 0x80:
                            break
                    if typ == 0x51 and n == 3:
                        tempos.append((tick, int.from_bytes(data[i: i + 3], "big")))
                    i += n
                elif status in (0xF0, 0xF7):
                    n = 0
                    while True:
                        c = data[i]
                        i += 1
                        n = (n << 7) | (c & 0x7F)
                        if not c & 0x80:
                            break
                    i += n
                else:
                    i += 1 if (status & 0xF0) in (0xC0, 0xD0) else 2
            end_tick = max(end_tick, tick)
        pos += 8 + ln
    tempos.sort()
    secs, last_tick, us = 0.0, 0, 500000
    for t, u in tempos:
        if t > end_tick:
            break
        secs += (t - last_tick) * us / 1e6 / division
        last_tick, us = t, u
    return secs + (end_tick - last_tick) * us / 1e6 / division


def read_wav_lenient(path: Path) -> tuple[np.ndarray, int]:
    """Read a WAV file whose writer was stopped (header sizes not filled in): PCM16 or float32."""
    data = Path(path).read_bytes()
    i = data.find(b"fmt ")
    j = data.find(b"data", 12)
    if i < 0 or j < 0:
        raise SkipItem("render produced no audio")
    tag, ch, sr = int.from_bytes(data[i + 8: i + 10], "little"), int.from_bytes(data[i + 10: i + 12], "little"), \
        int.from_bytes(data[i + 12: i + 16], "little")
    bits = int.from_bytes(data[i + 22: i + 24], "little")
    if tag == 0xFFFE:  # WAVE_FORMAT_EXTENSIBLE: the subformat GUID starts with the real tag
        tag = int.from_bytes(data[i + 32: i + 34], "little")
    body = data[j + 8:]
    if tag == 3 and bits == 32:
        x = np.frombuffer(body[: len(body) // (4 * ch) * 4 * ch], np.float32)
    elif tag == 1 and bits == 16:
        x = np.frombuffer(body[: len(body) // (2 * ch) * 2 * ch], np.int16).astype(np.float32) / 32768
    else:
        raise SkipItem(f"unexpected WAV format {tag}/{bits}")
    return x.reshape(-1, ch).copy(), sr


def render_midi(midi: Path, wav: Path, synth: str, sr: int, fx: dict, stop_after_s: float | None = None):
    """Render a MIDI file. fluidsynth's fast render is stopped once ``stop_after_s`` seconds are
    written: on some files its player does not stop at the end (seen with fluidsynth 2.3.1)."""
    if synth == "timidity":
        run(["timidity", "-c", str(FREEPATS_CFG), "-idq", "-Ow", "--output-24bit", "--output-stereo",
             "-s", str(sr), f"--reverb=f,{fx['reverb_level']}", "-o", str(wav), str(midi)], timeout=RENDER_TIMEOUT_S)
    else:
        font = SF2_DIR / SOUNDFONTS[synth][0]
        cmd = ["fluidsynth", "-ni", "-q", "-F", str(wav), "-T", "wav", "-O", "float", "-r", str(sr),
               "-g", "0.6", "-R", "1", "-C", "1",
               "-o", f"synth.reverb.room-size={fx['room']}", "-o", f"synth.reverb.level={fx['reverb_level_f']}",
               "-o", f"synth.reverb.width={fx['width']}",
               str(font), str(midi)]
        limit = None if stop_after_s is None else int(stop_after_s * sr * 8) + 4096  # float32 stereo
        t0 = time.time()
        with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as p:
            while p.poll() is None:
                time.sleep(0.1)
                big = limit is not None and wav.exists() and wav.stat().st_size > limit
                if big or time.time() - t0 > RENDER_TIMEOUT_S:
                    p.kill()
                    p.wait()
                    if not big:
                        raise subprocess.TimeoutExpired(cmd, RENDER_TIMEOUT_S)
                    x, r = read_wav_lenient(wav)
                    return x[: int(stop_after_s * r)], r  # where it was stopped is timing-dependent
            if p.returncode != 0:
                raise subprocess.CalledProcessError(p.returncode, cmd, stderr=p.stderr.read())
    x, r = sf.read(str(wav), dtype="float32", always_2d=True)
    return x, r


def job_render(args: dict) -> list[dict]:
    """Score -> MIDI (music21) or a MIDI file as is -> audio (fluidsynth/timidity)."""
    with tempfile.TemporaryDirectory(dir=args["tmp"]) as td:
        midi = Path(td) / "in.mid"
        if args.get("midi"):
            shutil.copyfile(args["midi"], midi)
        else:
            score_to_midi(args, midi)
        wav = Path(td) / "out.wav"
        length = midi_seconds(midi)
        if length > MAX_RENDER_S and not args.get("max_seconds"):
            raise SkipItem(f"MIDI is {length / 60:.0f} min long (broken tempo or note lengths?)")
        stop = length + 5.0 if not args.get("max_seconds") else min(length + 5.0, args["max_seconds"] + 1.0)
        try:
            x, sr = render_midi(midi, wav, args["synth"], args["sr"], args["fx"], stop_after_s=stop)
        except subprocess.CalledProcessError as e:
            raise SkipItem(f"render failed: {(e.stderr or b'').decode(errors='replace')[-200:]}")
        except subprocess.TimeoutExpired:
            raise SkipItem(f"render took longer than {RENDER_TIMEOUT_S} s")
        if args.get("max_seconds"):
            x = x[: int(args["max_seconds"] * sr)]
    entries = finish(x, sr, Path(args["out_base"]), "music", target_peak=args["peak"])
    for en in entries:
        en["orig_format"] = "rendered:" + args["synth"]
    return entries


# ---- Hydrogen drum patterns --------------------------------------------------------------

DRUM_STYLES = {
    # name: (steps per bar, bpm range, {role: pattern}); 'x' hit, 'o' accent, '.' rest
    "rock": (16, (88, 132), {"kick": "o.....x.o.x.....", "snare": "....o.......o...",
                             "chh": "o.x.o.x.o.x.o.x."}),
    "four-on-the-floor": (16, (112, 128), {"kick": "o...o...o...o...", "snare": "....o.......o...",
                                           "ohh": "..x...x...x...x.", "chh": "x.x.x.x.x.x.x.x."}),
    "funk": (16, (90, 110), {"kick": "o..x..x...o..x..", "snare": "....o..x.x..o..x",
                             "chh": "oxxxoxxxoxxxoxxx"}),
    "halftime": (16, (70, 90), {"kick": "o.........x.....", "snare": "........o.......",
                                "ride": "o.x.o.x.o.x.o.x."}),
    "breakbeat": (16, (150, 175), {"kick": "o.x.......xo....", "snare": "....o..x.x..o..x",
                                   "chh": "x.x.x.x.x.x.x.x."}),
    "shuffle": (12, (80, 120), {"kick": "o.....x.....", "snare": "...o.....o..",
                                "ride": "o.xo.xo.xo.x"}),
    "waltz": (12, (90, 150), {"kick": "o...........", "snare": "....x...x...",
                              "chh": "x.x.x.x.x.x."}),
    "bossa": (16, (120, 140), {"kick": "o..xo..xo..xo..x", "snare": "x..x..x...x..x..",
                               "chh": "xxxxxxxxxxxxxxxx"}),
    "afro": (12, (95, 125), {"kick": "o.....o..x..", "snare": "..x.x...xx.x",
                             "chh": "o.xo.xo.xo.x", "perc": "x..x..x..x.."}),
}
DRUM_ROLES = [
    ("kick", r"kick|bass ?drum|\bbd|djembe\d? bass|sangban.*head hit"),
    ("snare", r"snare(?!.*(rim|roll|brush|flam|ghost))|\bsd\b|djembe\d? tone"),
    ("chh", r"(hat|hh).*(clos|tight)|closed|\bchh|hat(?!.*(open|pedal|foot|\bop\b|\bpd\b))|djembe\d? slap"),
    ("ohh", r"(hat|hh).*open|\bohh"),
    ("ride", r"ride(?!.*bell)"),
    ("crash", r"crash|splash|china"),
    ("tom", r"tom"),
    ("perc", r"conga|bongo|shaker|tamb|cowbell|perc|agogo|clave|bell|kenkeni|dundun"),
]


def load_kit(kit_dir: Path, sr: int) -> dict:
    import soxr
    root = ET.parse(kit_dir / "drumkit.xml").getroot()
    for el in root.iter():
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    kit = {}
    for inst in root.iter("instrument"):
        name = (inst.findtext("name") or "").strip()
        if not name:
            continue
        vol = float(inst.findtext("volume") or 1.0) * float(inst.findtext("gain") or 1.0)
        pan = (float(inst.findtext("pan_L") or 1.0), float(inst.findtext("pan_R") or 1.0))
        layers = []
        layer_els = list(inst.iter("layer"))
        if not layer_els and inst.find("filename") is not None:
            layer_els = [inst]  # old kit format: one sample per instrument, no <layer>
        for lay in layer_els:
            fn = lay.findtext("filename")
            if not fn:
                continue
            p = kit_dir / fn
            if not p.exists():
                continue
            try:
                x, r = sf.read(str(p), dtype="float32", always_2d=True)
            except Exception:
                continue
            if r != sr:
                x = soxr.resample(x, r, sr).astype(np.float32)
            if x.shape[1] == 1:
                x = np.repeat(x, 2, axis=1)
            layers.append((float(lay.findtext("min") or 0), float(lay.findtext("max") or 1),
                           float(lay.findtext("gain") or 1.0), x[:, :2]))
        if layers:
            kit[name] = {"vol": vol, "pan": pan, "layers": layers}
    roles = {}
    for role, rx in DRUM_ROLES:
        names = [n for n in kit if re.search(rx, n, re.I) and n not in sum(roles.values(), [])]
        if names:
            roles[role] = names
    return {"inst": kit, "roles": roles}


def tom_rank(name: str) -> int:
    n = name.lower()
    for rank, rx in enumerate([r"high|\bhi\b|\b1\b|12", r"mid|\b2\b|13", r"low|\blo\b|\b3\b|16", r"floor"]):
        if re.search(rx, n):
            return rank
    return 2


def kit_has_kick(kit_dir: Path) -> bool:
    names = re.findall(r"<name>([^<]*)</name>", (kit_dir / "drumkit.xml").read_text(errors="replace"))
    return any(re.search(DRUM_ROLES[0][1], n, re.I) for n in names[1:])


def job_drums(args: dict) -> list[dict]:
    sr = args["sr"]
    kit = load_kit(Path(args["kit"]), sr)
    roles = kit["roles"]
    if "kick" not in roles or ("snare" not in roles and "chh" not in roles):
        raise SkipItem("kit without kick and snare/hi-hat")
    rng = np.random.default_rng(h(args["id"]) % (2 ** 32))
    steps, (lo, hi), pattern = DRUM_STYLES[args["style"]]
    bpm = float(rng.integers(lo, hi + 1))
    beats_per_bar = 3 if args["style"] == "waltz" else 4
    step_s = 60.0 / bpm * beats_per_bar / steps
    bars = max(8, int(round(args["seconds"] / (step_s * steps) / 8)) * 8)
    n = int((bars * steps * step_s + 3.0) * sr)
    out = np.zeros((n, 2), np.float32)
    choose = {r: names[int(rng.integers(len(names)))] for r, names in roles.items()}
    toms = sorted(roles.get("tom", []), key=tom_rank)  # high to low for fills

    def hit(name, t, vel):
        inst = kit["inst"][name]
        cands = [l for l in inst["layers"] if l[0] <= vel <= l[1]] or inst["layers"]
        mn, mx, g, x = cands[int(rng.integers(len(cands)))]
        i0 = int(max(0.0, t + rng.normal(0, 0.004)) * sr)
        if i0 >= n:
            return
        seg = x[: n - i0] * (g * inst["vol"] * vel ** 1.6)
        seg = seg * np.array(inst["pan"], np.float32)
        out[i0: i0 + len(seg)] += seg

    for bar in range(bars):
        t0 = bar * steps * step_s
        fill = (bar % 8 == 7) and (toms or "snare" in roles)
        for role, pat in pattern.items():
            if role not in choose:
                role = {"ohh": "chh", "ride": "chh", "perc": "chh"}.get(role, role)
                if role not in choose:
                    continue
            for k, c in enumerate(pat):
                if c == "." or (fill and k >= steps // 2 and role in ("snare", "chh", "ride")):
                    continue
                if role == "chh" and bar % 8 == 0 and k == 0 and "crash" in choose:
                    continue
                vel = (0.9 if c == "o" else 0.65) + rng.uniform(-0.1, 0.1)
                hit(choose[role], t0 + k * step_s, float(np.clip(vel, 0.05, 1.0)))
        if bar % 8 == 0 and "crash" in choose:
            hit(choose["crash"], t0, 0.9)
        if fill:
            seq = toms if toms else [choose["snare"]]
            for j, k in enumerate(range(steps // 2, steps)):
                hit(seq[min(len(seq) - 1, j * len(seq) // (steps // 2))], t0 + k * step_s,
                    float(0.6 + 0.3 * j / (steps // 2)))
    entries = finish(out, sr, Path(args["out_base"]), "music", target_peak=args["peak"])
    for en in entries:
        en["orig_format"] = f"rendered:hydrogen-kit:{args['style']}:{int(bpm)}bpm"
    return entries


# ---- espeak-ng speech --------------------------------------------------------------------

def job_speech(args: dict) -> list[dict]:
    with tempfile.TemporaryDirectory(dir=args["tmp"]) as td:
        txt = Path(td) / "t.txt"
        txt.write_text(args["text"])
        wav = Path(td) / "s.wav"
        run(["espeak-ng", "-v", args["voice"], "-s", str(args["speed"]), "-p", str(args["pitch"]),
             "-g", str(args["gap"]), "-w", str(wav), "-f", str(txt)])
        x, sr, _ = decode(wav)
    entries = finish(x, sr, Path(args["out_base"]), "speech", target_peak=args["peak"])
    for en in entries:
        en["orig_format"] = "synthesised:espeak-ng"
    return entries


JOBS = {"file": job_file, "stems": job_stems, "render": job_render, "drums": job_drums,
        "speech": job_speech}


def run_job(func: str, args: dict, record_path: str) -> dict:
    t = time.time()
    try:
        entries = JOBS[func](args)
        rec = {"status": "ok", "entries": entries}
    except SkipItem as e:
        rec = {"status": "skip", "reason": str(e), "entries": []}
    except Exception as e:  # a broken item must not stop the build
        rec = {"status": "skip", "reason": f"error: {type(e).__name__}: {e}"[:300], "entries": []}
    rec["elapsed_s"] = round(time.time() - t, 2)
    rec["args_sha"] = args_sha(args)
    Path(record_path).write_text(json.dumps(rec, indent=1))
    return rec


# --------------------------------------------------------------------------------------------
# Sources: each yields pools (ordered items + a budget in seconds)
# --------------------------------------------------------------------------------------------

@dataclass
class Item:
    id: str
    func: str
    args: dict
    meta: dict  # package, version, licence, origin, kind


@dataclass
class Pool:
    source: str
    name: str
    budget_s: float
    items: list = field(default_factory=list)


class Ctx:
    def __init__(self, out: Path, max_hours: float):
        self.out = out
        self.max_s = max_hours * 3600
        self.lic = Licences()
        self.notes = []  # (source, message)
        self.tmp = out / ".tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def budget(self, source: str, share: float = 1.0) -> float:
        return WEIGHTS[source] * self.max_s * share

    def need(self, source: str, *pkgs) -> bool:
        for p in pkgs:
            ok, why = self.lic.check(p)
            if not ok:
                self.notes.append((source, f"skipped: {p} {why}"))
                return False
        return True

    def meta(self, pkg, relpath=None, kind="music", origin="", licence=None, version=None):
        return {"package": pkg, "version": version or pkg_version(pkg) or "",
                "licence": licence or self.lic.licence(pkg, relpath), "origin": origin, "kind": kind}


def file_pool(ctx, source, pkg, files, rel=lambda p: None, max_seconds=None, licence=None):
    """A pool of recorded files (paths or (zip, member) pairs) of one package."""
    pool = Pool(source, source, ctx.budget(source))
    names = [Path(f[1] if isinstance(f, tuple) else f).stem for f in files]
    for f in hashed_order(files, source):
        if isinstance(f, tuple):
            z, member = f
            iid = safe_name(Path(member).stem)
            args = {"path": z, "member": member}
            origin = f"{z}!{member}"
            relpath = rel(member)
        else:
            iid = safe_name(Path(f).stem)
            args = {"path": f}
            origin = f
            relpath = rel(f)
        if names.count(Path(args.get("member") or f).stem) > 1:  # same name in two folders
            iid = safe_name(Path(args.get("member") or f).parent.name + "_" + iid)
        args.update(out_base=str(ctx.out / "music" / source / iid), kind="music", max_seconds=max_seconds)
        lic = licence(f) if callable(licence) else licence
        pool.items.append(Item(iid, "file", args, ctx.meta(pkg, relpath, origin=origin, licence=lic)))
    return [pool]


def src_fretsonfire(ctx):
    pools = []
    pool = Pool("fretsonfire", "fretsonfire", ctx.budget("fretsonfire"))
    for pkg, pack in [("fretsonfire-songs-muldjord", "muldjord"), ("fretsonfire-songs-sectoid", "sectoid")]:
        if not ctx.need("fretsonfire", pkg):
            continue
        root = Path("/usr/share/games/fretsonfire/data/songs") / pack
        for song in sorted(p for p in root.iterdir() if p.is_dir()):
            stems, roles = {}, {}
            for fname, role, what in [("song.ogg", "backing", "backing track: everything except the stems below"),
                                      ("guitar.ogg", "guitar", "lead guitar"),
                                      ("rhythm.ogg", "rhythm", "rhythm guitar or bass")]:
                if (song / fname).exists():
                    stems[role] = str(song / fname)
                    roles[role] = {"file": f"{role}.flac", "source": fname, "content": what}
            if len(stems) < 2:
                continue
            iid = safe_name(f"{pack}_{song.name}")
            args = {"stems": stems, "roles": roles, "out_dir": str(ctx.out / "music" / "fretsonfire" / iid)}
            pool.items.append(Item(iid, "stems", args, ctx.meta(pkg, origin=str(song))))
    pools.append(pool)
    return pools


def src_wesnoth(ctx):
    pkg = "wesnoth-1.16-music"
    if not ctx.need("wesnoth", pkg):
        return []
    files = sorted(str(p) for p in Path("/usr/share/games/wesnoth/1.16/data/core/music").glob("*.ogg"))
    return file_pool(ctx, "wesnoth", pkg, files)


def src_ufoai(ctx):
    pkg = "ufoai-music"
    if not ctx.need("ufoai", pkg):
        return []
    z = "/usr/share/games/ufoai/base/0music.pk3"
    with zipfile.ZipFile(z) as zf:
        members = sorted(m for m in zf.namelist() if m.lower().endswith(".ogg") and "dynamictest" not in m)
    return file_pool(ctx, "ufoai", pkg, [(z, m) for m in members], rel=lambda m: "base/" + m)


def src_warzone(ctx):
    pkg = "warzone2100-music"
    if not ctx.need("warzone2100", pkg):
        return []
    root = Path("/usr/share/games/warzone2100/music/albums")
    files = sorted(str(p) for p in root.glob("*/*.opus"))

    def lic(f):
        album = Path(f).parent
        lt = (album / "license.txt").read_text(errors="replace") if (album / "license.txt").exists() else ""
        if "track3_enhanced" in f:
            return "GPL-2+"
        if re.search(r"CC-BY-SA-3\.0", lt) and re.search(r"General Public License Version 2 or later", lt):
            return "CC-BY-SA-3.0+ or GPL-2+"
        return ctx.lic.licence(pkg, "music/" + Path(f).name)
    return file_pool(ctx, "warzone2100", pkg, files, licence=lic)


def src_nexuiz(ctx):
    pkg = "nexuiz-music"
    if not ctx.need("nexuiz", pkg):
        return []
    z = "/usr/share/games/nexuiz/data/music.pk3"
    with zipfile.ZipFile(z) as zf:
        members = sorted(m for m in zf.namelist() if m.lower().endswith(".ogg"))
    return file_pool(ctx, "nexuiz", pkg, [(z, m) for m in members])


def src_hyperrogue(ctx):
    pkg = "hyperrogue-music"
    if not ctx.need("hyperrogue", pkg):
        return []
    files = sorted(str(p) for p in Path("/usr/share/hyperrogue/music").glob("*.ogg"))
    return file_pool(ctx, "hyperrogue", pkg, files, rel=lambda f: "music/" + Path(f).name)


def src_singularity(ctx):
    pkg = "singularity-music"
    if not ctx.need("singularity", pkg):
        return []
    files = sorted(str(p) for p in Path("/usr/share/games/singularity/music").rglob("*.ogg"))
    return file_pool(ctx, "singularity", pkg, files)


def src_planetblupi(ctx):
    pkg = "planetblupi-music-ogg"
    if not ctx.need("planetblupi", pkg):
        return []
    files = sorted(str(p) for p in Path("/usr/share/planetblupi/music").glob("*.ogg"))
    return file_pool(ctx, "planetblupi", pkg, files, rel=lambda f: "music/" + Path(f).name, max_seconds=150)


def src_frozen_bubble(ctx):
    pkg = "fb-music-high"
    if not ctx.need("frozen-bubble", pkg):
        return []
    files = sorted(str(p) for p in Path("/usr/share/games/frozen-bubble/snd").glob("*.xm"))
    return file_pool(ctx, "frozen-bubble", pkg, files)


def fonts_available(ctx, source) -> list[str]:
    names = []
    for name, (fn, pkg, _w) in SOUNDFONTS.items():
        if (SF2_DIR / fn).exists() and ctx.lic.check(pkg)[0]:
            names.append(name)
        else:
            ctx.notes.append((source, f"soundfont {fn} ({pkg}) not available"))
    return names


def pick_font(fonts, *key):
    weighted = [f for f in fonts for _ in range(SOUNDFONTS[f][2])]
    return weighted[h(*key) % len(weighted)]


def render_fx(*key):
    k = h("fx", *key)
    return {"room": round(0.2 + 0.6 * ((k % 97) / 96), 3), "reverb_level_f": round(0.3 + 0.6 * ((k // 97 % 89) / 88), 3),
            "width": round(0.5 + 0.5 * ((k // 9000 % 83) / 82), 3), "reverb_level": 20 + (k % 60)}


def music21_corpus_items():
    """[(collection, relpath, abc_tune_or_None)] of the allowed, free-licensed scores."""
    try:
        import music21
    except ImportError:
        return None, None
    base = Path(music21.__file__).parent / "corpus"
    out = []
    for coll in sorted(M21_COLLECTIONS):
        d = base / coll
        if not d.is_dir():
            continue
        for p in sorted(d.rglob("*")):
            if not p.is_file() or p.suffix.lower() not in M21_EXTS:
                continue
            if p.suffix.lower() == ".abc":
                text = p.read_text(errors="replace")
                tunes = re.findall(r"(?m)^X:\s*(\S+)", text)
                if coll == "josquin" or len(tunes) <= 1:
                    out.append((coll, str(p.relative_to(base)), tunes[0] if len(tunes) > 1 else None))
                else:
                    out += [(coll, str(p.relative_to(base)), t) for t in tunes]
            else:
                if not rights_ok(p):
                    continue
                out.append((coll, str(p.relative_to(base)), None))
    return base, out


def rights_ok(p: Path) -> bool:
    try:
        if p.suffix.lower() == ".mxl":
            with zipfile.ZipFile(p) as z:
                names = [n for n in z.namelist() if n.endswith((".xml", ".musicxml")) and not n.startswith("META")]
                text = z.read(names[0]).decode("utf-8", "replace")[:20000]
        else:
            text = p.read_text(errors="replace")[:20000]
    except Exception:
        return False
    rights = " ".join(re.findall(r"<rights[^>]*>(.*?)</rights>", text, re.S))
    return not (RESTRICTED_RIGHTS.search(rights) and not FREE_RIGHTS.search(rights))


def m21_pools(ctx, source, synth_choices, salt, freepats=None):
    base, scores = music21_corpus_items()
    if scores is None:
        ctx.notes.append((source, "skipped: music21 not importable (run with --apt)"))
        return []
    import music21
    m21v = music21.__version__
    groups = {}
    for coll, rel, tune in scores:
        groups.setdefault(M21_COLLECTIONS[coll][0], []).append((coll, rel, tune))
    pools = []
    for g, share in M21_GROUP_SHARE.items():
        pool = Pool(source, f"{source}/{g}", ctx.budget(source, share))
        for coll, rel, tune in hashed_order(groups.get(g, []), salt + g):
            key = (rel, tune)
            synth = synth_choices(key)
            if g == "folk":
                programs = [SOLO_PROGRAMS[h("solo", *key) % len(SOLO_PROGRAMS)]]
                plan = "solo"
                qpm = 84 + h("qpm", *key) % 56
            else:
                plan, programs = ENSEMBLES[h("ens", *key) % len(ENSEMBLES)]
                if g == "classical" and h("keep", *key) % 3 == 0:
                    plan, programs = ENSEMBLES[0]  # string quartets stay strings a third of the time
                qpm = (60 + h("qpm", *key) % 40) if g == "chorales" else (72 + h("qpm", *key) % 60)
            if freepats is not None:
                programs = [p if p in freepats else FREEPATS_SUBST.get(p, 0) for p in programs]
                programs = [p if p in freepats else 0 for p in programs]
            stem = "_".join(Path(rel).with_suffix("").parts[1:])  # e.g. opus18no1_movement1
            iid = safe_name(stem + (f"_x{tune}" if tune is not None else "") + f"_{synth}_{plan}")
            sr = 48000 if h("sr", *key) % 2 else 44100
            args = {"score": str(base / rel), "abc_tune": tune, "programs": programs, "qpm": qpm,
                    "synth": synth, "sr": sr, "fx": render_fx(*key), "tmp": str(ctx.tmp),
                    "peak": round(10 ** (-(1 + h("peak", *key) % 50 / 10) / 20), 4),
                    "out_base": str(ctx.out / "music" / source / g / iid)}
            if synth == "timidity":
                pkg, lic_pkg = "freepats", ctx.lic.licence("freepats")
            else:
                pkg = SOUNDFONTS[synth][1]
                lic_pkg = ctx.lic.licence(pkg, SOUNDFONTS[synth][0])
            meta = ctx.meta(pkg, origin=f"music21 {m21v} corpus/{rel}" + (f" X:{tune}" if tune else "") + f" [{plan}]",
                            licence=f"score: {M21_COLLECTIONS[coll][1]}; instruments: {lic_pkg}",
                            version=f"{pkg_version(pkg)}; music21 {m21v}")
            pool.items.append(Item(iid, "render", args, meta))
        pools.append(pool)
    return pools


def src_music21_fluidsynth(ctx):
    if shutil.which("fluidsynth") is None:
        ctx.notes.append(("music21-fluidsynth", "skipped: fluidsynth not installed"))
        return []
    fonts = fonts_available(ctx, "music21-fluidsynth")
    if not fonts:
        return []
    return m21_pools(ctx, "music21-fluidsynth", lambda key: pick_font(fonts, "font", *key), "fs")


def freepats_programs() -> set[int]:
    progs, in_bank0 = set(), False
    for line in FREEPATS_CFG.read_text().splitlines():
        s = line.strip()
        if s.startswith("bank 0"):
            in_bank0 = True
        elif s.startswith(("drumset", "bank")):
            in_bank0 = False
        elif in_bank0 and ".pat" in s:
            progs.add(int(s.split()[0]))
    return progs


def src_music21_timidity(ctx):
    if shutil.which("timidity") is None or not FREEPATS_CFG.exists():
        ctx.notes.append(("music21-timidity", "skipped: timidity/freepats not installed"))
        return []
    if not ctx.need("music21-timidity", "freepats"):
        return []
    return m21_pools(ctx, "music21-timidity", lambda key: "timidity", "tim", freepats=freepats_programs())


def src_planetblupi_midi(ctx):
    pkg = "planetblupi-music-midi"
    if not ctx.need("planetblupi-midi", pkg) or shutil.which("fluidsynth") is None:
        return []
    fonts = fonts_available(ctx, "planetblupi-midi")
    pool = Pool("planetblupi-midi", "planetblupi-midi", ctx.budget("planetblupi-midi"))
    mids = sorted(Path("/usr/share/planetblupi/music").glob("*.mid"))
    combos = [(m, f) for m in mids for f in fonts]
    for m, font in hashed_order(combos, "blupi"):
        key = (m.name, font)
        iid = safe_name(f"{m.stem}_{font}")
        args = {"midi": str(m), "synth": font, "sr": 44100, "fx": render_fx(*key), "tmp": str(ctx.tmp),
                "max_seconds": 180,  # the game's MIDIs loop one theme for 10-28 minutes
                "peak": round(10 ** (-(1 + h("peak", *key) % 50 / 10) / 20), 4),
                "out_base": str(ctx.out / "music" / "planetblupi-midi" / iid)}
        fpkg = SOUNDFONTS[font][1]
        meta = ctx.meta(pkg, "music/" + m.name, origin=str(m),
                        licence=f"composition: {ctx.lic.licence(pkg, 'music/' + m.name)}; instruments: "
                                f"{ctx.lic.licence(fpkg, SOUNDFONTS[font][0])}",
                        version=f"{pkg_version(pkg)}; {fpkg} {pkg_version(fpkg)}")
        meta["also"] = [fpkg]
        pool.items.append(Item(iid, "render", args, meta))
    return [pool]


def src_hydrogen(ctx):
    pkg = "hydrogen-drumkits"
    if not ctx.need("hydrogen-drums", pkg):
        return []
    root = Path("/usr/share/hydrogen/data/drumkits")
    kits = sorted(p for p in root.iterdir() if (p / "drumkit.xml").exists() and "Strums" not in p.name
                  and kit_has_kick(p))  # percussion-only kits (bongos, claps) do not fit the patterns
    styles = sorted(DRUM_STYLES)
    pool = Pool("hydrogen-drums", "hydrogen-drums", ctx.budget("hydrogen-drums"))
    for rnd in range(6):
        for kit in hashed_order(kits, f"kits{rnd}"):
            style = "afro" if "Afrique" in kit.name else styles[h("style", kit.name, rnd) % len(styles)]
            iid = safe_name(f"{kit.name}_{style}_{rnd}")
            rel = f"drumkits/{kit.name}.h2drumkit"
            lic = ctx.lic.licence(pkg, rel)
            if lic == "UNKNOWN":  # "circAfrique v4" is "drumkits/circAfrique.h2drumkit" there
                lic = ctx.lic.licence(pkg, f"drumkits/{kit.name.split()[0]}.h2drumkit")
            args = {"kit": str(kit), "style": style, "sr": 44100, "seconds": 45 + h("len", kit.name, rnd) % 45,
                    "id": iid, "peak": round(10 ** (-(1 + h("peak", iid) % 50 / 10) / 20), 4),
                    "out_base": str(ctx.out / "music" / "hydrogen-drums" / iid)}
            pool.items.append(Item(iid, "drums", args, ctx.meta(pkg, origin=f"{kit} [{style}]", licence=lic)))
    return [pool]


SPEECH_TEXTS = ["GPL-3", "Apache-2.0", "MPL-2.0", "LGPL-2.1", "GFDL-1.3", "Artistic", "CC0-1.0", "GPL-2"]
SPEECH_VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029"]
SPEECH_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
                   "klatt3", "croak", "Andy", "Denis", "Mike", "adam", "belinda", "david", "anika", "Alicia"]


def speech_chunks() -> list[tuple[str, int, str]]:
    out = []
    for name in SPEECH_TEXTS:
        p = Path("/usr/share/common-licenses") / name
        if not p.exists():
            continue
        paras = [re.sub(r"\s+", " ", x).strip() for x in re.split(r"\n\s*\n", p.read_text(errors="replace"))]
        paras = [x for x in paras if len(x.split()) >= 8 and not re.fullmatch(r"[-=_*\s0-9.]+", x)]
        buf, k = [], 0
        for para in paras:
            buf.append(para)
            if sum(len(b.split()) for b in buf) >= 70:
                out.append((name, k, " ".join(buf)))
                buf, k = [], k + 1
        if buf:
            out.append((name, k, " ".join(buf)))
    return out


def src_espeak(ctx):
    if not ctx.need("espeak-speech", "espeak-ng"):
        return []
    variants_dir = Path("/usr/lib/x86_64-linux-gnu/espeak-ng-data/voices/!v")
    variants = [v for v in SPEECH_VARIANTS if not variants_dir.is_dir() or (variants_dir / v).exists()]
    pool = Pool("espeak-speech", "espeak-speech", ctx.budget("espeak-speech"))
    for name, k, text in hashed_order(speech_chunks(), "speech"):
        key = (name, k)
        voice = SPEECH_VOICES[h("voice", *key) % len(SPEECH_VOICES)]
        var = variants[h("var", *key) % len(variants)] if variants else None
        iid = safe_name(f"{name}_{k:03d}_{voice}_{var}")
        args = {"text": text, "voice": f"{voice}+{var}" if var else voice, "speed": 130 + h("spd", *key) % 60,
                "pitch": 25 + h("pitch", *key) % 50, "gap": h("gap", *key) % 4, "tmp": str(ctx.tmp),
                "peak": round(10 ** (-(1 + h("peak", *key) % 60 / 10) / 20), 4),
                "out_base": str(ctx.out / "speech" / "espeak-ng" / iid)}
        meta = ctx.meta("espeak-ng", kind="speech", origin=f"/usr/share/common-licenses/{name} part {k}",
                        licence="synthesised with espeak-ng (GPL-3+); text: licence texts from base-files "
                                "(verbatim copying permitted)")
        pool.items.append(Item(iid, "speech", args, meta))
    return [pool]


SOURCE_FUNCS = [
    ("fretsonfire", src_fretsonfire), ("wesnoth", src_wesnoth), ("ufoai", src_ufoai),
    ("warzone2100", src_warzone), ("nexuiz", src_nexuiz), ("hyperrogue", src_hyperrogue),
    ("singularity", src_singularity), ("planetblupi", src_planetblupi),
    ("frozen-bubble", src_frozen_bubble), ("music21-fluidsynth", src_music21_fluidsynth),
    ("planetblupi-midi", src_planetblupi_midi), ("music21-timidity", src_music21_timidity),
    ("hydrogen-drums", src_hydrogen), ("espeak-speech", src_espeak),
]


# --------------------------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------------------------

def args_sha(args: dict) -> str:
    return hashlib.sha1(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]


def record_valid(rec_path: Path, args: dict) -> dict | None:
    """The record of an item done before with the same arguments, or None (then it is redone).

    A record marked ``unused`` (the item did not fit its budget: its files were removed) is
    returned as is, so that its length is known without redoing it.
    """
    if not rec_path.exists():
        return None
    try:
        rec = json.loads(rec_path.read_text())
    except Exception:
        return None
    if rec.get("args_sha") != args_sha(args):
        remove_outputs(rec)  # made with other settings: redo
        return None
    if rec.get("status") == "ok" and not rec.get("unused") and \
            not all(Path(e["file"]).exists() for e in rec["entries"]):
        return None
    return rec


def rec_seconds(rec: dict) -> float:
    return sum(e["seconds"] for e in rec.get("entries", []) if e.get("role", "full") != "stem")


def remove_outputs(rec: dict):
    dirs = set()
    for e in rec.get("entries", []):
        p = Path(e["file"])
        if p.exists():
            p.unlink()
        if e.get("has_stems"):
            dirs.add(p.parent)
    for d in dirs:
        (d / "stems.json").unlink(missing_ok=True)
        try:
            d.rmdir()
        except OSError:
            pass


def mark_unused(rec: dict, rec_path: Path):
    remove_outputs(rec)
    if rec.get("status") == "ok" and not rec.get("unused"):
        rec["unused"] = True
        rec_path.write_text(json.dumps(rec, indent=1))


MIN_FILL_S = 30.0   # a pool with less than this left is full
MAX_MISFITS = 4     # a pool stops after this many items too long for what is left


def process_pool(ctx: Ctx, pool: Pool, ex, jobs: int) -> list[tuple[Item, dict]]:
    """Take the pool's items in order while they fit its budget (never more than the budget,
    except that the first item may be up to twice the budget). Done items are reused; new
    ones are made in parallel batches of ``jobs`` consecutive items."""
    state = ctx.out / ".state" / safe_name(pool.name)
    state.mkdir(parents=True, exist_ok=True)
    budget = pool.budget_s
    selected, cum, i, misfits = [], 0.0, 0, 0

    def fits(secs):
        return cum + secs <= budget if selected else secs <= 2 * budget

    def open_(ok_cum):
        return ok_cum < budget - MIN_FILL_S and misfits < MAX_MISFITS

    items = [it for it in pool.items if "UNKNOWN" not in it.meta["licence"]]
    for it in pool.items:
        if "UNKNOWN" in it.meta["licence"]:
            ctx.notes.append((pool.source, f"not used {it.id}: no licence found for it in the copyright file"))
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = sorted({x for x in ids if ids.count(x) > 1})[:3]
        raise SystemExit(f"internal error: duplicate item ids in {pool.name}: {dup}")
    while i < len(items) and open_(cum):
        batch, recs = [], {}
        while i < len(items) and len(batch) < jobs:
            it = items[i]
            rec = record_valid(state / f"{it.id}.json", it.args)
            if rec is not None and rec.get("unused") and fits(rec_seconds(rec)):
                rec = None  # fits now: make it again
            if rec is not None and batch:
                break
            batch.append(it)
            i += 1
            if rec is not None:
                recs[it.id] = rec
                break
        futures = {it.id: ex.submit(run_job, it.func, it.args, str(state / f"{it.id}.json"))
                   for it in batch if it.id not in recs}
        for iid, fu in futures.items():
            recs[iid] = fu.result()
        for it in batch:
            rec, rp = recs[it.id], state / f"{it.id}.json"
            if rec["status"] != "ok":
                ctx.notes.append((pool.source, f"skipped {it.id}: {rec.get('reason')}"))
                continue
            secs = rec_seconds(rec)
            if open_(cum) and fits(secs):
                cum += secs
                selected.append((it, rec))
            else:
                if open_(cum):
                    misfits += 1
                mark_unused(rec, rp)
    # items not selected this time (smaller budget than before, other candidates): no files
    chosen = {it.id for it, _ in selected}
    known = {it.id for it in items}
    for rp in state.glob("*.json"):
        if rp.stem in chosen:
            continue
        try:
            rec = json.loads(rp.read_text())
        except Exception:
            rp.unlink()
            continue
        if rp.stem in known:
            mark_unused(rec, rp)
        else:
            remove_outputs(rec)
            rp.unlink()
    log(f"  {pool.name:34s} {len(selected):4d} items  {cum / 3600:6.2f} h  (budget {budget / 3600:.2f} h, "
        f"{len(items)} candidates)")
    return selected


def write_licences(ctx: Ctx, packages: set[str]):
    d = ctx.out / "LICENSES"
    d.mkdir(exist_ok=True)
    for pkg in sorted(packages):
        src = Path("/usr/share/doc") / pkg / "copyright"
        if src.exists():
            shutil.copyfile(src, d / f"{pkg}.copyright")
    try:
        import music21
        lic = Path(music21.__file__).parent / "corpus" / "license.txt"
        if lic.exists():
            shutil.copyfile(lic, d / "music21-corpus-license.txt")
    except ImportError:
        pass
    for album in Path("/usr/share/games/warzone2100/music/albums").glob("*/license.txt"):
        shutil.copyfile(album, d / f"warzone2100-music_{album.parent.name}_license.txt")


MANIFEST_COLS = ["path", "source", "package", "licence", "seconds", "kind", "has_stems", "role", "version",
                 "sample_rate", "channels", "orig_format", "origin"]


def write_manifest(ctx: Ctx, rows: list[dict]):
    p = ctx.out / "sources.csv"
    tmp = p.with_suffix(".csv.part")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_COLS)
        w.writeheader()
        for r in sorted(rows, key=lambda r: r["path"]):
            w.writerow(r)
    os.replace(tmp, p)


def summary(rows: list[dict]) -> str:
    agg = {}
    for r in rows:
        a = agg.setdefault((r["source"], r["kind"]), {"files": 0, "s": 0.0, "stems": 0, "stem_s": 0.0,
                                                      "pkgs": set()})
        if r["role"] == "stem":
            a["stems"] += 1
            a["stem_s"] += float(r["seconds"])
        else:
            a["files"] += 1
            a["s"] += float(r["seconds"])
        a["pkgs"].add(r["package"])
    lines = [f"{'source':22s} {'kind':6s} {'files':>5s} {'hours':>6s} {'share':>6s}  {'stem files (h)':>15s}  packages",
             "-" * 100]
    tot = sum(a["s"] for a in agg.values()) or 1.0
    by_kind = {}
    for (src, kind), a in sorted(agg.items(), key=lambda kv: -kv[1]["s"]):
        stems = f"{a['stems']} ({a['stem_s'] / 3600:.2f})" if a["stems"] else "-"
        lines.append(f"{src:22s} {kind:6s} {a['files']:5d} {a['s'] / 3600:6.2f} {100 * a['s'] / tot:5.1f}%  {stems:>15s}  "
                     f"{', '.join(sorted(a['pkgs']))}")
        by_kind[kind] = by_kind.get(kind, 0.0) + a["s"]
    lines.append("-" * 100)
    for kind, s in sorted(by_kind.items()):
        lines.append(f"{'TOTAL ' + kind:29s} {s / 3600:13.2f} {100 * s / tot:5.1f}%")
    lines.append(f"{'TOTAL':29s} {tot / 3600:13.2f} h  (stems not counted)")
    return "\n".join(lines)


def install(packages: list[str]):
    missing = [p for p in packages if pkg_version(p) is None]
    if missing:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        log(f"apt: installing {len(missing)} packages: {' '.join(missing)}")
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing,
                       check=True, env=env, stdout=subprocess.DEVNULL)
        pkg_version.cache_clear()
    else:
        log("apt: all packages already installed")
    import importlib.util
    if importlib.util.find_spec("music21") is None:
        log(f"pip: installing {' '.join(PIP_PACKAGES)}")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q"] + PIP_PACKAGES, check=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="output folder (outside the repository)")
    ap.add_argument("--apt", action="store_true", help="install the Debian packages (and music21) first")
    ap.add_argument("--max-hours", type=float, default=6.0, help="total budget in hours (default 6)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel workers (default 2)")
    ap.add_argument("--only", default="", help="comma-separated sources to build (default: all)")
    a = ap.parse_args(argv)

    t0 = time.time()
    out = a.out.resolve()
    repo = Path(__file__).resolve().parents[1]
    if out == repo or repo in out.parents:
        ap.error("--out must be outside the repository (never copy audio into the repo)")
    out.mkdir(parents=True, exist_ok=True)
    if a.apt:
        install(APT_PACKAGES)
    for tool in ("ffmpeg",):
        if shutil.which(tool) is None:
            log(f"warning: {tool} not found; some formats will be skipped (use --apt)")

    ctx = Ctx(out, a.max_hours)
    only = {s.strip() for s in a.only.split(",") if s.strip()}
    rows, packages = [], set()
    log(f"building {out} (budget {a.max_hours:g} h, {a.jobs} jobs)")
    with cf.ProcessPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        for name, fn in SOURCE_FUNCS:
            if only and name not in only:
                continue
            ts = time.time()
            log(f"[{name}]")
            for pool in fn(ctx):
                for it, rec in process_pool(ctx, pool, ex, max(1, a.jobs)):
                    packages.add(it.meta["package"])
                    packages.update(it.meta.get("also", []))
                    for e in rec["entries"]:
                        rows.append({
                            "path": os.path.relpath(e["file"], out), "source": name,
                            "package": it.meta["package"], "licence": it.meta["licence"],
                            "seconds": e["seconds"], "kind": it.meta["kind"],
                            "has_stems": bool(e.get("has_stems", False)), "role": e.get("role", "full"),
                            "version": it.meta["version"], "sample_rate": e["sample_rate"],
                            "channels": e["channels"], "orig_format": e.get("orig_format", ""),
                            "origin": it.meta["origin"],
                        })
            log(f"  ({time.time() - ts:.0f} s)")
    write_licences(ctx, packages)
    if only:
        # a partial build keeps the rows of the other sources from the last manifest
        old = ctx.out / "sources.csv"
        if old.exists():
            with open(old, newline="") as f:
                rows += [r for r in csv.DictReader(f) if r["source"] not in only]
    write_manifest(ctx, rows)
    with open(out / "excluded.txt", "w") as f:
        f.write("Sources looked at and left out, and why\n\n")
        for what, why in EXCLUDED:
            f.write(f"- {what}: {why}\n")
        f.write("\nItems skipped in this build\n\n")
        for src, msg in ctx.notes:
            f.write(f"- [{src}] {msg}\n")
    shutil.rmtree(ctx.tmp, ignore_errors=True)
    du = sum(p.stat().st_size for p in out.rglob("*.flac"))
    log("")
    log(summary(rows))
    log(f"\n{len(rows)} files, {du / 2 ** 30:.2f} GiB of FLAC in {out}; manifest {out / 'sources.csv'}; "
        f"{len(ctx.notes)} notes in excluded.txt; {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
