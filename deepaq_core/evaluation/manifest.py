"""Evaluation manifests: CSV files listing (reference, degraded, subjective score, group) rows.

A manifest is a UTF-8 CSV with a header. Paths are relative to the manifest's folder (absolute
paths are kept). The column names are configurable, so the shared evaluation sets can be read as
they are, e.g. ``tcdaudio14/manifest.csv`` with ``subjective_col="visqol_v3_moslqo"`` and
``group_col="codec"``, or ``sisec08/manifest.csv`` with ``subjective_col="subjective_mean"`` and
``group_col="target"``. A degradation ladder (no listener scores) uses the same shape with the
known intensity in place of the subjective score (``subjective_col="intensity"``).

Every user-caused problem (missing manifest, missing column, missing audio file, a value that is
not a number) raises :class:`deepaq_core.errors.DeePAQError` with one sentence naming it.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deepaq_core.errors import DeePAQError


@dataclass(frozen=True)
class ManifestRow:
    """One item of an evaluation manifest.

    Attributes
    ----------
    reference : str or None
        Absolute path of the reference file; None for non-matching-reference (NMR) rows.
    degraded : str
        Absolute path of the file under test.
    subjective : float or None
        The score the metric is compared with (listener mean, another metric's output, or a
        ladder's degradation intensity); None when not required and not given.
    group : str or None
        Value of the group column (condition, codec, target, ...), None without one.
    extra : dict
        All other columns of the row, as strings, keyed by column name.
    """

    reference: str | None
    degraded: str
    subjective: float | None
    group: str | None
    extra: dict = field(default_factory=dict)


def _resolve(base: Path, text: str) -> str:
    p = Path(text).expanduser()
    return str((p if p.is_absolute() else base / p).resolve())


def load_manifest(
    path: str | os.PathLike,
    *,
    reference_col: str = "reference",
    degraded_col: str = "degraded",
    subjective_col: str = "subjective",
    group_col: str | None = None,
    require_subjective: bool = True,
    require_reference: bool = True,
    check_files: bool = True,
) -> list[ManifestRow]:
    """Read an evaluation manifest.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.
    reference_col, degraded_col, subjective_col : str
        Column names (matched exactly first, then ignoring case and surrounding spaces).
    group_col : str or None
        Optional grouping column (e.g. ``"codec"``, ``"condition"``, ``"target"``).
    require_subjective : bool
        If True, the subjective column must exist and every row must hold a finite number;
        if False, a missing column or an empty cell gives ``subjective=None``.
    require_reference : bool
        If True, the reference column must exist and no cell may be empty; if False (NMR
        evaluation), a missing column or an empty cell gives ``reference=None``.
    check_files : bool
        Check that every listed audio file exists.

    Returns
    -------
    list of ManifestRow
        In file order, with absolute paths.

    Raises
    ------
    DeePAQError
        If the manifest is missing, unreadable or empty, a required column is missing, a
        required cell is empty or not a number, or a listed audio file does not exist.
    """
    mpath = Path(path).expanduser()
    name = mpath.name
    if not mpath.is_file():
        raise DeePAQError(f"Manifest '{mpath}' not found.")
    try:
        with open(mpath, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h for h in (reader.fieldnames or [])]
            records = list(reader)
    except UnicodeDecodeError:
        raise DeePAQError(f"Manifest '{name}' is not a UTF-8 text file.") from None
    except csv.Error as exc:
        raise DeePAQError(f"Manifest '{name}' is not a valid CSV file ({exc}).") from None
    if not header:
        raise DeePAQError(f"Manifest '{name}' is empty (no header line).")

    def find(col: str | None, required: bool) -> str | None:
        if col is None:
            return None
        if col in header:
            return col
        folded = {h.strip().lower(): h for h in header if h is not None}
        hit = folded.get(col.strip().lower())
        if hit is None and required:
            raise DeePAQError(
                f"Manifest '{name}' has no column '{col}' (columns: {', '.join(h for h in header if h)})."
            )
        return hit

    deg_key = find(degraded_col, True)
    ref_key = find(reference_col, require_reference)
    subj_key = find(subjective_col, require_subjective)
    group_key = find(group_col, True)
    used = {k for k in (deg_key, ref_key, subj_key, group_key) if k}
    if not records:
        raise DeePAQError(f"Manifest '{name}' lists no rows.")

    base = mpath.resolve().parent
    rows: list[ManifestRow] = []
    for line, rec in enumerate(records, start=2):  # line 1 is the header
        deg_text = (rec.get(deg_key) or "").strip()
        if not deg_text:
            raise DeePAQError(f"Manifest '{name}' line {line} has an empty '{deg_key}' cell.")
        ref_text = (rec.get(ref_key) or "").strip() if ref_key else ""
        if require_reference and not ref_text:
            raise DeePAQError(f"Manifest '{name}' line {line} has an empty '{ref_key}' cell.")
        subjective = None
        subj_text = (rec.get(subj_key) or "").strip() if subj_key else ""
        if subj_text:
            try:
                subjective = float(subj_text)
            except ValueError:
                raise DeePAQError(
                    f"Manifest '{name}' line {line}: '{subj_text}' in column '{subj_key}' is not a number."
                ) from None
            if not math.isfinite(subjective):
                raise DeePAQError(f"Manifest '{name}' line {line}: column '{subj_key}' is not a finite number.")
        elif require_subjective:
            raise DeePAQError(f"Manifest '{name}' line {line} has an empty '{subj_key}' cell.")
        group = (rec.get(group_key) or "").strip() if group_key else None
        degraded = _resolve(base, deg_text)
        reference = _resolve(base, ref_text) if ref_text else None
        if check_files:
            for label, p in (("reference", reference), ("degraded", degraded)):
                if p is not None and not os.path.isfile(p):
                    raise DeePAQError(f"Manifest '{name}' line {line}: {label} file '{p}' not found.")
        extra = {k: (v or "") for k, v in rec.items() if k is not None and k not in used}
        rows.append(ManifestRow(reference, degraded, subjective, group if group_key else None, extra))
    return rows


def write_manifest(path: str | os.PathLike, rows: Iterable[dict], columns: Sequence[str]) -> None:
    """Write a manifest CSV with paths relative to its folder where possible.

    Parameters
    ----------
    path : str or os.PathLike
        Output CSV; its folder must exist.
    rows : iterable of dict
        One dict per row; keys ``reference`` and ``degraded`` (absolute or relative paths) plus
        any others listed in ``columns``.
    columns : sequence of str
        Column order of the file.
    """
    out = Path(path)
    base = out.resolve().parent
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for row in rows:
            rec = dict(row)
            for key in ("reference", "degraded"):
                p = rec.get(key)
                if p:
                    try:
                        rec[key] = os.path.relpath(p, base)
                    except ValueError:  # another drive on Windows: keep it absolute
                        rec[key] = str(p)
            w.writerow(rec)
