"""Degradation ladders for evaluation without listener scores.

A ladder is a manifest whose ``intensity`` column gives a known order of degradation within
each ``group`` (e.g. one piece through an MP3 encoder at 320 ... 16 kbit/s). A metric should
rank the versions of a group the same way; :func:`deepaq_core.evaluation.runner.evaluate_ladder`
measures that. :func:`make_ladder_set` writes such a ladder from clean files with
:mod:`deepaq_core.degrade`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from deepaq_core.errors import DeePAQError

log = logging.getLogger(__name__)

LADDER_COLUMNS = ["reference", "degraded", "intensity", "group", "family", "param", "unit", "source"]
# The clean excerpt is scaled to this peak before degrading, so codec overshoot (pre-echo, ringing)
# fits the 24-bit FLAC output without clipping. Every metric here matches or ignores level.
_PEAK = 0.5


def ladder_row(reference: str, degraded: str, group: str, family: str, source: str,
               param: float | str | None = None, intensity: float = 0.0) -> dict:
    """One row of a ladder manifest (:data:`LADDER_COLUMNS`); ``param=None`` for the clean rung."""
    from deepaq_core.degrade import FAMILIES

    return {"reference": reference, "degraded": degraded, "intensity": round(float(intensity), 6), "group": group,
            "family": family, "param": "" if param is None else param, "unit": FAMILIES[family].unit,
            "source": source}


def _stem(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem) or "item"


def make_ladder_set(clean_files: Sequence[str], families: Sequence[str], out_dir: str | os.PathLike, *,
                    excerpt_s: float | None = None, seed: int = 0,
                    say: Callable[[str], None] | None = None, values: Sequence[float] | None = None,
                    params: dict | None = None) -> str:
    """Generate a degradation ladder for each clean file and family, and its manifest.

    Parameters
    ----------
    clean_files : sequence of str
        Clean recordings (any format :func:`deepaq_core.audio.load_audio` reads); all channels
        are kept at the native rate.
    families : sequence of str
        Families of :data:`deepaq_core.degrade.FAMILIES` (e.g. ``mp3``, ``opus``, ``lowpass``);
        every rung of each family's ladder is written.
    out_dir : str or os.PathLike
        Created if needed. Files go to ``<out_dir>/<item>/``; the manifest is
        ``<out_dir>/manifest.csv``.
    excerpt_s : float or None
        Use only this many seconds from the middle of each clean file (None: all of it).
    seed : int
        Seed for random degradations (nested across rungs by :func:`make_ladder`).
    say : callable or None
        Receives one progress line per file and family.
    values : sequence of float or None
        Rungs to write instead of each family's own ladder (values of the family's ``param``).
    params : dict or None
        Fixed extra parameters of every rung (e.g. ``{"mode": "delete"}`` for packet_loss).

    Returns
    -------
    str
        Path of the manifest: columns ``reference, degraded, intensity, group, family, param,
        unit, source``. ``intensity`` is the family's ``param``-mode label (0 = clean .. 1 = the
        worst rung), comparable within a group only; each group starts with the clean excerpt
        itself (intensity 0, degraded = reference). ``group`` is ``<item>/<family>``.

    Raises
    ------
    DeePAQError
        Unknown family, unreadable input, missing encoder (:class:`EncoderMissing`).
    """
    import soundfile as sf

    from deepaq_core.audio import load_audio
    from deepaq_core.degrade import FAMILIES, make_ladder
    from deepaq_core.evaluation.manifest import write_manifest

    for f in families:
        if f not in FAMILIES:
            raise DeePAQError(f"Unknown degradation family '{f}'; choose from {', '.join(FAMILIES)}.")
    if values is not None and not len(values):
        raise DeePAQError("A ladder needs at least one value.")
    if not clean_files:
        raise DeePAQError("--make-ladder needs at least one clean audio file.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    seen: set[str] = set()
    for path in clean_files:
        buf = load_audio(path, target_rate=None, channels="all")
        x, sr = buf.samples, buf.sample_rate
        if excerpt_s is not None and x.shape[1] > int(excerpt_s * sr):
            n = int(excerpt_s * sr)
            start = (x.shape[1] - n) // 2
            x = x[:, start:start + n]
        peak = float(np.max(np.abs(x)))
        x = (x * (_PEAK / peak)).astype(np.float32) if peak > 0 else x
        stem = _stem(path)
        while stem in seen:  # two clean files with the same name from different folders
            stem += "_"
        seen.add(stem)
        item_dir = out / stem
        item_dir.mkdir(exist_ok=True)
        ref_path = item_dir / "reference.flac"
        sf.write(ref_path, x.T, sr, subtype="PCM_24")
        for fam_name in families:
            fam = FAMILIES[fam_name]
            if values is not None:
                fam = dataclasses.replace(fam, ladder=tuple(float(v) for v in values))
            if say:
                say(f"ladder: {stem}: {fam_name} ({len(fam.ladder)} rungs)")
            group = f"{stem}/{fam_name}"
            rows.append(ladder_row(str(ref_path), str(ref_path), group, fam_name, os.path.abspath(path)))
            for rung in make_ladder(x, sr, fam, seed=seed, include_clean=False, **(params or {})):
                y = np.asarray(rung["audio"], dtype=np.float32)
                clipped = int(np.count_nonzero(np.abs(y) > 1.0))
                if clipped:
                    log.warning("%s %s %g: %d samples clipped", stem, fam_name, rung["param"], clipped)
                deg_path = item_dir / f"{fam_name}_{rung['param']:g}.flac"
                sf.write(deg_path, np.clip(y, -1.0, 1.0).T, sr, subtype="PCM_24")
                rows.append(ladder_row(str(ref_path), str(deg_path), group, fam_name, os.path.abspath(path),
                                       rung["param"], rung["label"]))
    manifest = out / "manifest.csv"
    write_manifest(manifest, rows, LADDER_COLUMNS)
    return str(manifest)
