"""Rate-quality curves of codec ladders and the Bjøntegaard-delta rate between codecs.

A *rate ladder* is a set of excerpts, each coded by one or more codecs at several bitrates. Three
layouts are read (:func:`read_rate_ladder`):

- a ``manifest.csv`` as ``deepaq degrade --ladder`` and ``deepaq eval --make-ladder`` write it
  (columns ``reference, degraded, family, param, unit``; rows with unit ``kbit/s`` are used, or,
  with ``families=``, the rows of those families in their own unit, as the app's Generate dialog
  lists them), or such a CSV given directly;
- a folder of files named ``..._<codec>_<bitrate>[k|kbps].<ext>`` (the names the app's Generate
  dialog writes, e.g. ``song_mp3_64kbps.flac``, and the demo's ``demo_mp3_64k.flac``), one
  folder per excerpt or several excerpts side by side. The reference of a coded file is, in its
  folder or the folder above, ``reference.*``, ``<prefix>_reference.*`` or ``<prefix>.*``,
  where ``<prefix>`` is the part of the name before ``_<codec>_``.

:func:`rate_quality` averages the scores of each codec and bitrate over the excerpts, with a
Student-t confidence interval across excerpts; :func:`bd_rate` is the Bjøntegaard-delta rate
(G. Bjøntegaard, VCEG-M33, 2001): log-rate fitted as a cubic polynomial of quality for each codec,
both integrated over the quality range the two curves share, the mean log-rate difference turned
into a percentage. Negative = the test codec needs fewer bits for the same score.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepaq_core.errors import DeePAQError

#: codec families with a bitrate parameter (kept in step with deepaq_core.degrade.codecs.CODECS,
#: not imported: that module pulls in the audio stack)
RATE_CODECS = ("aac", "mp3", "opus", "vorbis", "mp2")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus", ".aif", ".aiff")
_NAME = re.compile(r"(?:^|_)(" + "|".join(RATE_CODECS) + r")_(\d+(?:\.\d+)?)(k|kbps|kbit|kb)?$", re.IGNORECASE)


@dataclass(frozen=True)
class LadderPoint:
    """One coded file of a rate ladder.

    Attributes
    ----------
    reference, degraded : str
        Absolute paths.
    codec : str
        Lower-case codec name (``mp3``, ``aac``, ...).
    kbps : float
        Nominal bitrate in kbit/s.
    item : str
        The excerpt it belongs to (its reference path); the CI is taken across items.
    unit : str
        Unit of ``kbps``: ``"kbit/s"`` for a codec ladder; the family's unit (``"Hz"``, ``"dB"``...)
        for a ladder of another degradation family, read with ``families=`` in :func:`read_rate_ladder`
        (``codec`` is then the family name and ``kbps`` its parameter value).
    """

    reference: str
    degraded: str
    codec: str
    kbps: float
    item: str
    unit: str = "kbit/s"


def parse_rate_name(name: str) -> tuple[str, float] | None:
    """``"song_mp3_64kbps.flac"`` -> ``("mp3", 64.0)``; None when the name carries no codec and bitrate."""
    m = _NAME.search(Path(name).stem)
    if not m:
        return None
    kbps = float(m.group(2))
    return (m.group(1).lower(), kbps) if kbps > 0 else None


def read_rate_ladder(path: str | os.PathLike, families: Sequence[str] | None = None) -> list[LadderPoint]:
    """The coded files of a rate ladder (manifest CSV, folder with ``manifest.csv``, or named files).

    Parameters
    ----------
    path : str or os.PathLike
    families : sequence of str, optional
        Read only these degradation families, whatever their parameter's unit: a manifest row of
        a family such as ``lowpass`` becomes a point at its ``param`` value in its ``unit`` (the
        Generate dialog's ladders). All families must share one unit. None (default): every codec
        row with a bitrate.

    Raises
    ------
    DeePAQError
        The path does not exist, a manifest row names a missing file, no coded file with a
        bitrate (or of the chosen families) is found, or the chosen families mix units.
    """
    p = Path(path).expanduser()
    wanted = None if families is None else {f.lower() for f in families}
    if not p.exists():
        raise DeePAQError(f"Ladder '{p}' not found.")
    if p.is_file():
        points = _from_manifest(p, wanted)
    elif (p / "manifest.csv").is_file():
        points = _from_manifest(p / "manifest.csv", wanted)
    else:
        points = _from_names(p)
    if wanted is not None:
        points = [q for q in points if q.codec in wanted]
        units = sorted({q.unit for q in points})
        if len(units) > 1:
            raise DeePAQError(f"The ladder's families {', '.join(sorted(wanted))} have parameters in different "
                              f"units ({', '.join(units)}); open one family at a time.")
        if not points:
            raise DeePAQError(f"'{p}' holds no versions of {', '.join(sorted(wanted))} listed with their parameter "
                              "value (a manifest.csv with family, param and unit columns).")
    if not points:
        raise DeePAQError(f"'{p}' holds no codec versions with a bitrate (a manifest.csv with kbit/s rows, or files "
                          "named like song_mp3_64kbps.flac next to their reference).")
    return sorted(points, key=lambda q: (q.codec, q.kbps, q.item))


def _from_manifest(csv_path: Path, families: set[str] | None = None) -> list[LadderPoint]:
    base = csv_path.parent
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DeePAQError(f"Ladder manifest '{csv_path}' could not be read ({exc}).") from None
    out = []
    for k, row in enumerate(rows, start=2):
        row = {(key or "").strip().lower(): (v or "").strip() for key, v in row.items()}
        ref, deg = row.get("reference", ""), row.get("degraded", "")
        if not ref or not deg or ref == deg:
            continue  # the clean rung of a ladder (degraded = reference), or an NMR row
        codec, rate, unit = row.get("family", "").lower(), None, "kbit/s"
        if codec in RATE_CODECS and row.get("unit", "") in ("kbit/s", "kbps"):
            try:
                rate = float(row.get("param", ""))
            except ValueError:
                raise DeePAQError(f"{csv_path.name} line {k}: bitrate '{row.get('param')}' is not a number.") from None
        elif families is not None and codec in families:
            try:
                rate = float(row.get("param", ""))
            except ValueError:
                raise DeePAQError(f"{csv_path.name} line {k}: the {codec} value '{row.get('param')}' is not a "
                                  "number.") from None
            unit = row.get("unit", "")
        else:
            parsed = parse_rate_name(deg) if not row.get("family") else None
            if parsed:
                codec, rate = parsed
        if rate is None or not math.isfinite(rate) or (unit == "kbit/s" and rate <= 0):
            continue
        ref_p, deg_p = _resolve(base, ref), _resolve(base, deg)
        for f in (ref_p, deg_p):
            if not os.path.isfile(f):
                raise DeePAQError(f"{csv_path.name} line {k}: file '{f}' not found.")
        out.append(LadderPoint(ref_p, deg_p, codec, rate, ref_p, unit))
    return out


def _resolve(base: Path, text: str) -> str:
    q = Path(text).expanduser()
    return str((q if q.is_absolute() else base / q).resolve())


def _audio_files(folder: Path) -> list[Path]:
    try:
        return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
    except OSError:
        return []


def _find_reference(deg: Path, prefix: str) -> Path | None:
    for folder in (deg.parent, deg.parent.parent):
        files = {f.stem.lower(): f for f in _audio_files(folder)}
        for stem in ("reference", f"{prefix}_reference".lower(), prefix.lower()):
            if stem and stem in files and files[stem] != deg:
                return files[stem]
    return None


def _from_names(folder: Path) -> list[LadderPoint]:
    out = []
    for root, dirs, _files in os.walk(folder):
        dirs.sort()
        for f in _audio_files(Path(root)):
            parsed = parse_rate_name(f.name)
            if not parsed:
                continue
            m = _NAME.search(f.stem)
            prefix = f.stem[: m.start()]
            ref = _find_reference(f, prefix)
            if ref is None:
                continue
            out.append(LadderPoint(str(ref.resolve()), str(f.resolve()), parsed[0], parsed[1], str(ref.resolve())))
    return out


def points_from_rows(rows) -> tuple[list[int], list[LadderPoint]]:
    """The codec rows of evaluation manifest rows (:class:`~deepaq_core.evaluation.manifest.ManifestRow`
    with ``family``, ``param`` and ``unit`` columns, as ladder manifests have): their indices and points.
    Clean rungs (degraded = reference) and non-codec families are left out."""
    idx, pts = [], []
    for i, r in enumerate(rows):
        codec = str(r.extra.get("family", "")).lower()
        if not r.reference or r.reference == r.degraded or codec not in RATE_CODECS:
            continue
        if str(r.extra.get("unit", "")) not in ("kbit/s", "kbps"):
            continue
        try:
            kbps = float(r.extra.get("param", ""))
        except ValueError:
            continue
        if math.isfinite(kbps) and kbps > 0:
            idx.append(i)
            pts.append(LadderPoint(r.reference, r.degraded, codec, kbps, r.reference))
    return idx, pts


def rows_from_points(points: Sequence[LadderPoint]):
    """Evaluation manifest rows for a ladder read from file names: ``intensity`` (the subjective column of
    ladder mode) is minus the bitrate, the group is ``<excerpt>/<codec>``."""
    from deepaq_core.evaluation.manifest import ManifestRow

    return [ManifestRow(p.reference, p.degraded, -p.kbps, f"{Path(p.item).stem}/{p.codec}",
                        {"family": p.codec, "param": f"{p.kbps:g}", "unit": "kbit/s"}) for p in points]


# -----------------------------------------------------------------------------------------
# scoring


def iter_score_ladder(points: Sequence[LadderPoint], scorer, cancel=None):
    """Score every point with ``scorer`` (a :class:`deepaq_core.scoring.Scorer`), one reference at a time.

    A generator for :class:`deepaq_gui.workers.Worker` and the CLI: yields
    :class:`~deepaq_core.scoring.Progress` and ``(index, score)`` tuples as files finish, and returns
    the scores as a float array in the order of ``points`` (NaN where a file failed; the reason is
    in the returned ``errors`` list). ``cancel`` (a ``threading.Event`` or None) is checked between
    files.
    """
    from deepaq_core.errors import Cancelled
    from deepaq_core.scoring import Partial, Progress

    scores = np.full(len(points), np.nan)
    errors: list[str | None] = [None] * len(points)
    by_ref: dict[str, list[int]] = {}
    for i, pt in enumerate(points):
        by_ref.setdefault(pt.reference, []).append(i)
    done = 0
    for ref, idx in by_ref.items():
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled")
        yield Progress(done / max(1, len(points)), f"Scoring {len(idx)} version(s) of {os.path.basename(ref)}")
        gen = scorer.iter_score(ref, [points[i].degraded for i in idx], cancel=cancel)
        try:
            while True:
                item = next(gen)
                if isinstance(item, Partial):
                    j = idx[item.index]
                    scores[j] = float(item.result.score)
                    yield (j, scores[j])
        except StopIteration:
            pass
        except DeePAQError as exc:
            if isinstance(exc, Cancelled):
                raise
            for j in idx:
                if not np.isfinite(scores[j]):
                    errors[j] = str(exc)
        done += len(idx)
    yield Progress(1.0, f"Scored {int(np.isfinite(scores).sum())} of {len(points)} version(s)")
    return scores, errors


# -----------------------------------------------------------------------------------------
# curves and BD-rate


@dataclass(frozen=True)
class RateCurve:
    """One codec's mean score per bitrate over the excerpts, with a confidence interval.

    ``low``/``high`` are NaN where fewer than two excerpts have a score at that bitrate.
    """

    codec: str
    kbps: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray


def rate_quality(points: Sequence[LadderPoint], scores: Sequence[float], *, level: float = 0.95
                 ) -> dict[str, RateCurve]:
    """Per codec: mean score per bitrate and its Student-t CI across excerpts (NaN scores ignored)."""
    from scipy import stats

    s = np.asarray(scores, dtype=np.float64)
    if len(s) != len(points):
        raise ValueError("one score per ladder point is needed")
    out = {}
    for codec in sorted({p.codec for p in points}):
        rates, means, lows, highs, ns = [], [], [], [], []
        for r in sorted({p.kbps for p in points if p.codec == codec}):
            v = s[[i for i, p in enumerate(points) if p.codec == codec and p.kbps == r]]
            v = v[np.isfinite(v)]
            if not len(v):
                continue
            m = float(v.mean())
            if len(v) > 1:
                half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
                lo, hi = m - half, m + half
            else:
                lo = hi = math.nan
            rates.append(r)
            means.append(m)
            lows.append(lo)
            highs.append(hi)
            ns.append(len(v))
        if rates:
            out[codec] = RateCurve(codec, np.array(rates), np.array(means), np.array(lows), np.array(highs),
                                   np.array(ns))
    return out


def smooth_curve(kbps: np.ndarray, values: np.ndarray, n: int = 64, *, log: bool = True
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A shape-preserving (PCHIP) interpolation of ``values`` over log-bitrate, for plotting.

    ``log=False`` interpolates over the value itself (a parameter that may be zero or negative).
    Returns ``(kbps_grid, values_grid)``; with fewer than two finite points, the points themselves.
    """
    from scipy.interpolate import PchipInterpolator

    fwd, back = (np.log10, lambda v: 10 ** v) if log else (np.asarray, np.asarray)
    ok = np.isfinite(values)
    x, y = fwd(np.asarray(kbps, dtype=np.float64)[ok]), np.asarray(values, dtype=np.float64)[ok]
    if len(x) < 2:
        return back(x), y
    grid = np.linspace(x[0], x[-1], n)
    return back(grid), PchipInterpolator(x, y)(grid)


def _fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # Bjøntegaard's cubic; with three points a quadratic, with two a line (fewer rungs than a cubic needs)
    return np.polyfit(x, y, min(3, len(x) - 1))


def _check(rate: Sequence[float], q: Sequence[float], name: str) -> tuple[np.ndarray, np.ndarray]:
    r, s = np.asarray(rate, dtype=np.float64), np.asarray(q, dtype=np.float64)
    ok = np.isfinite(r) & np.isfinite(s) & (r > 0)
    r, s = r[ok], s[ok]
    if len(r) < 2:
        raise DeePAQError(f"{name} needs scores at two or more bitrates for a BD-rate.")
    if len(np.unique(s)) < 2:
        raise DeePAQError(f"{name} has the same score at every bitrate; a BD-rate needs a quality range.")
    return r, s


def bd_rate(rate_a: Sequence[float], q_a: Sequence[float], rate_b: Sequence[float], q_b: Sequence[float], *,
            names: tuple[str, str] = ("the anchor", "the test codec")) -> float:
    """Bjøntegaard-delta rate of B against A, in percent (negative: B needs fewer bits for the same quality).

    ``log10(rate)`` is fitted as a polynomial of quality (cubic from four bitrates up) for each
    codec, both fits are integrated over the quality range both codecs cover, and the mean log-rate
    difference ``d`` gives ``(10**d - 1) * 100``.

    Raises
    ------
    DeePAQError
        Fewer than two bitrates, or the two quality ranges do not overlap.
    """
    ra, qa = _check(rate_a, q_a, names[0])
    rb, qb = _check(rate_b, q_b, names[1])
    lo, hi = max(qa.min(), qb.min()), min(qa.max(), qb.max())
    if not hi > lo:
        raise DeePAQError(f"The scores of {names[0]} ({qa.min():.1f}-{qa.max():.1f}) and {names[1]} "
                          f"({qb.min():.1f}-{qb.max():.1f}) do not overlap; no BD-rate.")
    pa, pb = np.polyint(_fit(qa, np.log10(ra))), np.polyint(_fit(qb, np.log10(rb)))
    diff = ((np.polyval(pb, hi) - np.polyval(pb, lo)) - (np.polyval(pa, hi) - np.polyval(pa, lo))) / (hi - lo)
    return float((10 ** diff - 1) * 100)


def bd_quality(rate_a: Sequence[float], q_a: Sequence[float], rate_b: Sequence[float], q_b: Sequence[float], *,
               names: tuple[str, str] = ("the anchor", "the test codec")) -> float:
    """Bjøntegaard-delta quality: mean score difference of B minus A at equal bitrate (same fits, swapped axes)."""
    ra, qa = _check(rate_a, q_a, names[0])
    rb, qb = _check(rate_b, q_b, names[1])
    la, lb = np.log10(ra), np.log10(rb)
    lo, hi = max(la.min(), lb.min()), min(la.max(), lb.max())
    if not hi > lo:
        raise DeePAQError(f"The bitrates of {names[0]} and {names[1]} do not overlap; no BD-score.")
    pa, pb = np.polyint(_fit(la, qa)), np.polyint(_fit(lb, qb))
    return float(((np.polyval(pb, hi) - np.polyval(pb, lo)) - (np.polyval(pa, hi) - np.polyval(pa, lo))) / (hi - lo))


def bd_table(curves: dict[str, RateCurve], anchor: str) -> list[dict]:
    """BD-rate and BD-score of every other codec against ``anchor``: rows ``{codec, bd_rate, bd_score, note}``."""
    if anchor not in curves:
        raise DeePAQError(f"Anchor codec '{anchor}' is not in the ladder (it has {', '.join(curves) or 'none'}).")
    a = curves[anchor]
    rows = []
    for codec, c in curves.items():
        if codec == anchor:
            continue
        row = {"codec": codec, "bd_rate": math.nan, "bd_score": math.nan, "note": ""}
        names = (anchor, codec)
        try:
            row["bd_rate"] = bd_rate(a.kbps, a.mean, c.kbps, c.mean, names=names)
        except DeePAQError as exc:
            row["note"] = str(exc)
        try:
            row["bd_score"] = bd_quality(a.kbps, a.mean, c.kbps, c.mean, names=names)
        except DeePAQError as exc:
            row["note"] = row["note"] or str(exc)
        rows.append(row)
    return rows


def default_anchor(curves: dict[str, RateCurve]) -> str | None:
    """``mp3`` when present (the most common reference codec), else the first codec by name."""
    if not curves:
        return None
    return "mp3" if "mp3" in curves else sorted(curves)[0]


def _fmt(v: float, spec: str, missing: str = "-") -> str:
    return format(v, spec) if math.isfinite(v) else missing


def curves_markdown(curves: dict[str, RateCurve], anchor: str | None, *, title: str = "",
                    bd: list[dict] | None = None, value_name: str = "score") -> str:
    """The rate-quality table and the BD-rate table as Markdown (what ``deepaq eval --ladder`` prints)."""
    lines = [f"### {title}rate-quality (mean {value_name}, 95% CI across excerpts)", "",
             f"| codec | kbit/s | excerpts | {value_name} | 95% CI |", "|---|---:|---:|---:|---|"]
    for codec, c in curves.items():
        for k in range(len(c.kbps)):
            ci = f"[{c.low[k]:.1f}, {c.high[k]:.1f}]" if math.isfinite(c.low[k]) else "-"
            lines.append(f"| {codec} | {c.kbps[k]:g} | {c.n[k]} | {c.mean[k]:.1f} | {ci} |")
    if anchor is not None and len(curves) > 1:
        rows = bd if bd is not None else bd_table(curves, anchor)
        lines += ["", f"### {title}BD-rate against {anchor} (negative: fewer bits for the same score)", "",
                  f"| codec | BD-rate | BD-{value_name} | note |", "|---|---:|---:|---|"]
        for r in rows:
            lines.append(f"| {r['codec']} | {_fmt(r['bd_rate'], '+.1f')}% | {_fmt(r['bd_score'], '+.2f')} | "
                         f"{r['note']} |")
    return "\n".join(lines) + "\n"


def write_rate_csv(path: str | os.PathLike, tables: Sequence[dict], value_column: str = "kbps") -> None:
    """The rate-quality figures as CSV: one row per metric, codec and bitrate.

    ``value_column`` names the third column: ``kbps`` for a codec ladder, the parameter and its
    unit (``cutoff_hz_Hz``...) for a ladder of another degradation family.

    ``tables`` holds ``{"metric", "curves", "bd", "anchor"}`` dicts (``bd`` from :func:`bd_table`, may be
    empty). Columns: ``metric, codec, kbps, n, mean, ci_low, ci_high, anchor, bd_rate_percent, bd_score``;
    the BD columns repeat on each row of the codec they describe and are empty for the anchor. Written
    to a temporary file that replaces ``path`` only when complete.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["metric", "codec", value_column, "n", "mean", "ci_low", "ci_high", "anchor", "bd_rate_percent",
                    "bd_score"])
        for t in tables:
            bd_by = {r["codec"]: r for r in (t.get("bd") or [])}
            for codec, c in t["curves"].items():
                r = bd_by.get(codec, {})
                for k in range(len(c.kbps)):
                    w.writerow([t.get("metric", "score"), codec, f"{c.kbps[k]:g}", int(c.n[k]), f"{c.mean[k]:.4f}",
                                _fmt(float(c.low[k]), ".4f", ""), _fmt(float(c.high[k]), ".4f", ""),
                                t.get("anchor") or "", _fmt(float(r.get("bd_rate", math.nan)), ".3f", ""),
                                _fmt(float(r.get("bd_score", math.nan)), ".3f", "")])
    os.replace(tmp, target)
