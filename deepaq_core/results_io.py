"""Exact JSON round trip of result objects (:class:`QualityResult`, :class:`NmrResult`).

``result_to_json(r)`` returns a plain dict that :func:`json.dumps` writes as strict JSON (no NaN
literals); ``result_from_json(d)`` rebuilds an object equal to ``r`` field by field:

* every number survives exactly: Python floats through ``repr`` (what :mod:`json` writes),
  float32 arrays through their exact float64 values, restored as float32;
* arrays are stored as ``{"dtype", "shape", "data"}`` with ``data`` flattened in C order, NaN as
  ``null`` and infinities as the strings ``"Infinity"`` / ``"-Infinity"``;
* scalar float fields use the same convention (``null`` = NaN);
* free-form dicts (``settings``, ``timings``) keep their values; a non-finite float inside them
  becomes ``{"$float": "NaN"}`` so that ``None`` stays ``None``.

The document carries ``"format": "deepaq.result"`` and ``"version"``; a document written by a
newer DeePAQ (a higher version) is refused with a one-sentence :class:`DeePAQError` rather than
read half-right.

    d = result_to_json(result)
    json.dump(d, fh, allow_nan=False)
    again = result_from_json(json.load(fh))
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepaq_core.audio import Alignment
from deepaq_core.errors import DeePAQError
from deepaq_core.results import FileSummary, Heatmap, ModelInfo, NmrResult, QualityCurve, QualityResult

FORMAT = "deepaq.result"
VERSION = 1

_POS_INF = "Infinity"
_NEG_INF = "-Infinity"


# ------------------------------------------------------------------------------ scalars


def _enc_float(x: Any) -> float | str | None:
    """A float field: NaN -> None, +-inf -> string, otherwise the exact Python float."""
    v = float(x)
    if math.isnan(v):
        return None
    if math.isinf(v):
        return _POS_INF if v > 0 else _NEG_INF
    return v


def _dec_float(x: Any) -> float:
    if x is None:
        return math.nan
    if x == _POS_INF:
        return math.inf
    if x == _NEG_INF:
        return -math.inf
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise _bad(f"expected a number, got {x!r}")
    return float(x)


def _enc_value(v: Any) -> Any:
    """Free-form values (settings, timings): JSON types kept, non-finite floats tagged."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else {"$float": repr(f).replace("nan", "NaN").replace("inf", "Infinity")}
    if isinstance(v, np.ndarray):
        return _enc_value(v.tolist())
    if isinstance(v, dict):
        return {str(k): _enc_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_enc_value(x) for x in v]
    if v is None or isinstance(v, str):
        return v
    return str(v)


def _dec_value(v: Any) -> Any:
    if isinstance(v, dict):
        if set(v) == {"$float"}:
            return float(str(v["$float"]).replace("Infinity", "inf"))
        return {k: _dec_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_dec_value(x) for x in v]
    return v


# ------------------------------------------------------------------------------- arrays


def _enc_array(a: np.ndarray) -> dict:
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"cannot serialise an array of dtype {arr.dtype}")
    data = arr.ravel().tolist()  # float32 -> the exact float64 value of each element
    if arr.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(arr.ravel()))
        for i in bad:
            data[i] = _enc_float(data[i])
    return {"dtype": arr.dtype.name, "shape": list(arr.shape), "data": data}


def _dec_array(d: Any) -> np.ndarray:
    if not isinstance(d, dict) or not {"dtype", "shape", "data"} <= set(d):
        raise _bad("an array entry lacks dtype, shape or data")
    try:
        dtype = np.dtype(d["dtype"])
        shape = tuple(int(s) for s in d["shape"])
        data = d["data"]
        if dtype.kind == "f":
            values = np.array([_dec_float(v) for v in data] if _has_special(data) else data, dtype=np.float64)
            arr = values.astype(dtype)
        else:
            arr = np.array(data, dtype=dtype)
        arr = arr.reshape(shape)
    except (TypeError, ValueError) as exc:
        raise _bad(f"an array cannot be rebuilt ({exc})") from exc
    arr.flags.writeable = False
    return arr


def _has_special(data: list) -> bool:
    return any(v is None or isinstance(v, str) for v in data)


# --------------------------------------------------------------------------- dataclasses


def _enc_model(m: ModelInfo) -> dict:
    return {"name": m.name, "version": m.version, "status": m.status, "backbone": m.backbone,
            "sample_rate": int(m.sample_rate), "frame_rate": _enc_float(m.frame_rate),
            "embedding_dim": int(m.embedding_dim)}


def _dec_model(d: dict) -> ModelInfo:
    return ModelInfo(name=str(d["name"]), version=str(d["version"]), status=str(d["status"]),
                     backbone=str(d["backbone"]), sample_rate=int(d["sample_rate"]),
                     frame_rate=_dec_float(d["frame_rate"]), embedding_dim=int(d["embedding_dim"]))


def _enc_file(f: FileSummary) -> dict:
    return {"path": f.path, "sha256": f.sha256, "sample_rate": int(f.sample_rate), "channels": int(f.channels),
            "duration_s": _enc_float(f.duration_s), "format": f.format,
            "bit_depth": None if f.bit_depth is None else int(f.bit_depth)}


def _dec_file(d: dict) -> FileSummary:
    return FileSummary(path=str(d["path"]), sha256=str(d["sha256"]), sample_rate=int(d["sample_rate"]),
                       channels=int(d["channels"]), duration_s=_dec_float(d["duration_s"]),
                       format=str(d.get("format", "")),
                       bit_depth=None if d.get("bit_depth") is None else int(d["bit_depth"]))


def _enc_alignment(a: Alignment) -> dict:
    return {"lag_samples": int(a.lag_samples), "lag_ms": _enc_float(a.lag_ms),
            "lag_native_samples": int(a.lag_native_samples), "estimated": bool(a.estimated),
            "confidence": _enc_float(a.confidence), "inverted": bool(a.inverted), "at_edge": bool(a.at_edge)}


def _dec_alignment(d: dict) -> Alignment:
    return Alignment(lag_samples=int(d["lag_samples"]), lag_ms=_dec_float(d["lag_ms"]),
                     lag_native_samples=int(d["lag_native_samples"]), estimated=bool(d["estimated"]),
                     confidence=_dec_float(d["confidence"]), inverted=bool(d.get("inverted", False)),
                     at_edge=bool(d.get("at_edge", False)))


def _enc_heatmap(h: Heatmap) -> dict:
    return {"values": _enc_array(h.values), "x": _enc_array(h.x), "y": _enc_array(h.y),
            "x_label": h.x_label, "y_label": h.y_label, "units": h.units}


def _dec_heatmap(d: dict) -> Heatmap:
    return Heatmap(values=_dec_array(d["values"]), x=_dec_array(d["x"]), y=_dec_array(d["y"]),
                   x_label=str(d["x_label"]), y_label=str(d["y_label"]), units=str(d["units"]))


def _enc_curve(c: QualityCurve) -> dict:
    return {"start_s": _enc_array(c.start_s), "end_s": _enc_array(c.end_s),
            "distance": _enc_array(c.distance), "score": _enc_array(c.score)}


def _dec_curve(d: dict) -> QualityCurve:
    return QualityCurve(start_s=_dec_array(d["start_s"]), end_s=_dec_array(d["end_s"]),
                        distance=_dec_array(d["distance"]), score=_dec_array(d["score"]))


def _dec_timings(d: Any) -> dict[str, float]:
    return {str(k): float(v) for k, v in (_dec_value(d) or {}).items()}


# ---------------------------------------------------------------------------------- API


def _dec_flags(v: Any) -> tuple[str, ...]:
    """Result flags (files written before flags existed have none: ``()``)."""
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(f, str) for f in v):
        raise ValueError("flags must be a list of strings")
    return tuple(v)


def result_to_json(result: QualityResult | NmrResult) -> dict:
    """Everything in ``result`` as a JSON-ready dict (strict JSON: no NaN literals).

    Parameters
    ----------
    result : QualityResult or NmrResult

    Returns
    -------
    dict
        ``format``, ``version``, ``type`` (``"quality"`` or ``"nmr"``) and every field;
        :func:`result_from_json` rebuilds an equal object.
    """
    head = {"format": FORMAT, "version": VERSION}
    if isinstance(result, QualityResult):
        r = result
        return {
            **head,
            "type": "quality",
            "model": _enc_model(r.model),
            "reference": _enc_file(r.reference),
            "degraded": _enc_file(r.degraded),
            "score": _enc_float(r.score),
            "distance": _enc_float(r.distance),
            "curve": _enc_curve(r.curve),
            "frame_rate": _enc_float(r.frame_rate),
            "frame_distance": _enc_array(r.frame_distance),
            "layer_heatmap": _enc_heatmap(r.layer_heatmap),
            "time_matrix": None if r.time_matrix is None else _enc_heatmap(r.time_matrix),
            "alignment": _enc_alignment(r.alignment),
            "gain_db": _enc_float(r.gain_db),
            "reference_loudness_lufs": _enc_float(r.reference_loudness_lufs),
            "degraded_loudness_lufs": _enc_float(r.degraded_loudness_lufs),
            "overlap_start_s": _enc_float(r.overlap_start_s),
            "overlap_end_s": _enc_float(r.overlap_end_s),
            "trimmed_reference_s": _enc_float(r.trimmed_reference_s),
            "trimmed_degraded_s": _enc_float(r.trimmed_degraded_s),
            "channel_mode": r.channel_mode,
            "channel_scores": [_enc_float(s) for s in r.channel_scores],
            "device": r.device,
            "timings": _enc_value(dict(r.timings)),
            "settings": _enc_value(dict(r.settings)),
            "score_scale": r.score_scale,
            "distance_units": r.distance_units,
            "gain_method": r.gain_method,
            "time_dropped_s": _enc_float(r.time_dropped_s),
            "time_inserted_s": _enc_float(r.time_inserted_s),
            "local_lag_s": None if r.local_lag_s is None else _enc_array(r.local_lag_s),
            "flags": list(r.flags),
        }
    if isinstance(result, NmrResult):
        r = result
        return {
            **head,
            "type": "nmr",
            "model": _enc_model(r.model),
            "degraded": _enc_file(r.degraded),
            "distance": _enc_float(r.distance),
            "per_reference": [[str(p), _enc_float(d)] for p, d in r.per_reference],
            "curve_start_s": _enc_array(r.curve_start_s),
            "curve_end_s": _enc_array(r.curve_end_s),
            "curve_distance": _enc_array(r.curve_distance),
            "device": r.device,
            "timings": _enc_value(dict(r.timings)),
            "distance_units": r.distance_units,
        }
    raise TypeError(f"result_to_json takes a QualityResult or NmrResult, not {type(result).__name__}")


def result_from_json(d: dict) -> QualityResult | NmrResult:
    """Rebuild a result written by :func:`result_to_json`.

    Parameters
    ----------
    d : dict
        The parsed JSON document.

    Returns
    -------
    QualityResult or NmrResult
        According to ``d["type"]`` (``"quality"`` when absent); arrays read-only, float arrays
        float32.

    Raises
    ------
    DeePAQError
        If ``d`` is not a DeePAQ result, comes from a newer DeePAQ (higher ``version``), or is
        damaged (one sentence).
    """
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise DeePAQError("This is not a DeePAQ result (its 'format' field is missing or different).")
    version = d.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DeePAQError(f"This DeePAQ result has an invalid format version ({version!r}).")
    if version > VERSION:
        raise DeePAQError(
            f"This result was written by a newer DeePAQ (result format version {version}; this one reads up to "
            f"{VERSION}); update DeePAQ to open it."
        )
    kind = d.get("type", "quality")
    try:
        if kind == "quality":
            return QualityResult(
                model=_dec_model(d["model"]),
                reference=_dec_file(d["reference"]),
                degraded=_dec_file(d["degraded"]),
                score=_dec_float(d["score"]),
                distance=_dec_float(d["distance"]),
                curve=_dec_curve(d["curve"]),
                frame_rate=_dec_float(d["frame_rate"]),
                frame_distance=_dec_array(d["frame_distance"]),
                layer_heatmap=_dec_heatmap(d["layer_heatmap"]),
                time_matrix=None if d.get("time_matrix") is None else _dec_heatmap(d["time_matrix"]),
                alignment=_dec_alignment(d["alignment"]),
                gain_db=_dec_float(d["gain_db"]),
                reference_loudness_lufs=_dec_float(d["reference_loudness_lufs"]),
                degraded_loudness_lufs=_dec_float(d["degraded_loudness_lufs"]),
                overlap_start_s=_dec_float(d["overlap_start_s"]),
                overlap_end_s=_dec_float(d["overlap_end_s"]),
                trimmed_reference_s=_dec_float(d["trimmed_reference_s"]),
                trimmed_degraded_s=_dec_float(d["trimmed_degraded_s"]),
                channel_mode=str(d.get("channel_mode", "mono")),
                channel_scores=tuple(_dec_float(s) for s in d.get("channel_scores", [])),
                device=str(d.get("device", "cpu")),
                timings=_dec_timings(d.get("timings")),
                settings=dict(_dec_value(d.get("settings") or {})),
                score_scale=str(d["score_scale"]),
                distance_units=str(d["distance_units"]),
                gain_method=str(d.get("gain_method", "integrated")),
                time_dropped_s=_dec_float(d.get("time_dropped_s", 0.0)),
                time_inserted_s=_dec_float(d.get("time_inserted_s", 0.0)),
                local_lag_s=None if d.get("local_lag_s") is None else _dec_array(d["local_lag_s"]),
                flags=_dec_flags(d.get("flags")),
            )
        if kind == "nmr":
            return NmrResult(
                model=_dec_model(d["model"]),
                degraded=_dec_file(d["degraded"]),
                distance=_dec_float(d["distance"]),
                per_reference=tuple((str(p), _dec_float(v)) for p, v in d.get("per_reference", [])),
                curve_start_s=_dec_array(d["curve_start_s"]),
                curve_end_s=_dec_array(d["curve_end_s"]),
                curve_distance=_dec_array(d["curve_distance"]),
                device=str(d.get("device", "cpu")),
                timings=_dec_timings(d.get("timings")),
                distance_units=str(d["distance_units"]),
            )
    except DeePAQError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        what = f"field {exc.args[0]!r} is missing" if isinstance(exc, KeyError) else str(exc)
        raise _bad(what) from exc
    raise DeePAQError(f"This DeePAQ result has an unknown type {kind!r}.")


def _bad(what: str) -> DeePAQError:
    return DeePAQError(f"This DeePAQ result is damaged: {what}.")


__all__ = ["FORMAT", "VERSION", "result_from_json", "result_to_json"]
