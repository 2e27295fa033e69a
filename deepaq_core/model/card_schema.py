"""The bundle card schema: every field's type and range, checked before anything is loaded.

:func:`check_card` is what :func:`deepaq_core.model.bundle.read_card` runs on every card. A card
that passes can be turned into a model without an unexpected exception and without an absurd
allocation: shapes are bounded (a compact backbone at most 4096 wide and 64 layers deep, an
auditory front end at most 1024 bands), numbers are finite and in range, and the weights file is
a plain file name (confined to the bundle folder). The first violation raises
:class:`~deepaq_core.errors.ModelError` with one sentence naming the field, e.g. ``The model card
'x/card.json' has an invalid 'score_mapping.d50': it must be a finite number above 0, not "abc".``

Fields (``format_version`` 1; optional ones may be missing or null)::

    format             "deepaq-bundle"
    format_version     1 (an integer; a higher one needs a newer DeePAQ)
    name               non-empty text
    version            non-empty text or a number
    status             optional: "trained" | "untrained" | "designed"
    description        optional text
    backbone           {"type": "compact" | "auditory" | "mert", ...}
                       compact / auditory: optional "config" object (see COMPACT_LIMITS, AUDITORY_LIMITS)
                       mert: "id" (text), optional "revision" and "local_path" (text)
    sample_rate        integer, 8000-192000 Hz
    frame_rate         number, (0, 1000] frames/s
    hop_length, layers optional integers
    embedding_dim      integer, 1-65536
    head               optional {"projection": bool, "dim": 1-8192 | null, "select_layer": int | null,
                                 "normalize": bool}
    lora               optional null | {"rank": 1-512, "alpha": (0, 10000], "dropout": [0, 1), "target_ffn": bool}
    score_mapping      {"type": "exp2", "d50": finite > 0, "power": (0, 20] (default 1), "fitted_on": text}
    distance           optional {"type": a DistanceSpec type, numeric settings in range}
    calibration        optional {"reference_lufs": -70..0}
    local_alignment    optional {"band_s": 0-10, "penalty": >= 0, "band_group": 1-16, "hold_frames": 1-1000,
                                 "max_wander": 0-1 (fraction of the overlap)}
    training, results  optional, free-form
    weights            optional plain file name (default weights.safetensors)
    weights_dtype      optional "float32" | "float16"
    weights_sha256     optional here, 64 hex digits; loading requires it (see build_model)

Standard library only (the compact and auditory shapes come from their torch-free config modules).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from deepaq_core.errors import ModelError
from deepaq_core.model.auditory_config import AuditoryConfig, approx_band_count
from deepaq_core.model.compact_config import CompactConfig

__all__ = [
    "AUDITORY_LIMITS",
    "BACKBONE_TYPES",
    "BUNDLE_FORMAT",
    "BUNDLE_FORMAT_VERSION",
    "COMPACT_LIMITS",
    "STATUSES",
    "WEIGHTS_FILE",
    "check_card",
    "check_weights_name",
]

BUNDLE_FORMAT = "deepaq-bundle"
BUNDLE_FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
STATUSES = ("trained", "untrained", "designed")
BACKBONE_TYPES = ("compact", "auditory", "mert")
WEIGHTS_DTYPES = ("float32", "float16")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")

# (kind, low, high): "int" fields must be JSON integers; "num" fields finite numbers; both inclusive.
COMPACT_LIMITS: dict[str, tuple[str, float, float]] = {
    "sample_rate": ("int", 8000, 192000),
    "hop_length": ("int", 1, 65536),
    "n_fft": ("int", 16, 65536),
    "n_mels": ("int", 1, 512),
    "f_min": ("num", 0.0, 96000.0),
    "f_max": ("num", 0.0, 96000.0),
    "width": ("int", 1, 4096),
    "layers": ("int", 0, 64),
    "heads": ("int", 1, 4096),
    "ff_mult": ("int", 1, 16),
    "conv_kernel": ("int", 1, 63),
}
AUDITORY_LIMITS: dict[str, tuple[str, float, float]] = {
    "sample_rate": ("int", 8000, 192000),
    "hop_length": ("int", 1, 65536),
    "n_fft": ("int", 16, 65536),
    "erb_step": ("num", 0.05, 4.0),
    "f_min": ("num", 0.0, 96000.0),
    "f_max": ("num", 0.0, 96000.0),
    "spl_full_scale_db": ("num", 0.0, 200.0),
    "slope_lower_db": ("num", 0.0, 200.0),
    "slope_upper_db": ("num", 0.0, 200.0),
    "threshold_offset_db": ("num", -100.0, 100.0),
    "exponent": ("num", 0.01, 2.0),
}
# The auditory front end holds a [bands, n_fft / 2 + 1] filterbank (and works on it in float64).
MAX_AUDITORY_BANDS = 1024
MAX_AUDITORY_FILTERBANK = 1 << 24
DISTANCE_LIMITS: dict[str, tuple[str, float, float]] = {
    "mask": ("num", 0.0, 10.0),
    "weight_added": ("num", 0.0, 1000.0),
    "weight_missing": ("num", 0.0, 1000.0),
    "band_p": ("num", 0.1, 64.0),
    "time_p": ("num", 0.1, 64.0),
    "block_frames": ("int", 1, 100000),
    "block_p": ("num", 0.1, 64.0),
    "lost_weight": ("num", 0.0, 100.0),
    "lost_floor": ("num", 0.0, 1000.0),
    "lost_tolerance": ("num", 0.0, 0.99),
    "structure_weight": ("num", 0.0, 100.0),
    "structure_frames": ("int", 1, 100000),
    "structure_cv": ("num", 0.0, 100.0),
    "structure_tolerance": ("num", 0.0, 0.99),
    "reliable_bins": ("num", 0.0, 1000.0),
    "presence_weight": ("num", 0.0, 100.0),
    "presence_low_hz": ("num", 0.0, 1e6),
    "presence_high_hz": ("num", 0.0, 1e6),
}
LOCAL_ALIGNMENT_LIMITS: dict[str, tuple[str, float, float]] = {
    "band_s": ("num", 0.0, 10.0),
    "penalty": ("num", 0.0, 1e6),
    "band_group": ("int", 1, 16),
    "hold_frames": ("int", 1, 1000),
    "max_wander": ("num", 0.0, 1.0),
}
LORA_KEYS = ("rank", "alpha", "dropout", "target_ffn")
_MISSING = object()


def _show(value: Any) -> str:
    """A short, one-line rendering of a card value for a message."""
    try:
        text = json.dumps(value, ensure_ascii=True, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "text", bool: "true/false"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _fmt(x: float) -> str:
    return f"{x:g}"


class _Checker:
    """Raises one-sentence ModelErrors that name the card and the field."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, field: str, what: str, value: Any = _MISSING) -> None:
        shown = "" if value is _MISSING else f", not {_show(value)}"
        raise ModelError(f"{self.where} has an invalid '{field}': it {what}{shown}.")

    def missing(self, field: str) -> None:
        raise ModelError(f"{self.where} lacks the field '{field}'.")

    # -- scalar checks --------------------------------------------------------------------
    def integer(self, value: Any, field: str, low: float | None = None, high: float | None = None) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(field, f"must be a whole number{_range(low, high)}", value)
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(field, f"must be a whole number{_range(low, high)}", value)
        return value

    def number(self, value: Any, field: str, low: float | None = None, high: float | None = None, *,
               low_open: bool = False) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            x = float(value)
            ok = math.isfinite(x) and (low is None or (x > low if low_open else x >= low)) \
                and (high is None or x <= high)
        if not ok:
            self.fail(field, f"must be a finite number{_range(low, high, low_open)}", value)
        return float(value)

    def text(self, value: Any, field: str, *, empty: bool = False) -> str:
        if not isinstance(value, str) or (not empty and not value.strip()):
            self.fail(field, "must be non-empty text" if not empty else "must be text", value)
        return value

    def boolean(self, value: Any, field: str) -> bool:
        if not isinstance(value, bool):
            self.fail(field, "must be true or false", value)
        return value

    def obj(self, value: Any, field: str) -> dict:
        if not isinstance(value, dict):
            self.fail(field, f"must be an object, not {_kind(value)}")
        return value

    def choice(self, value: Any, field: str, choices: tuple[str, ...]) -> str:
        if not isinstance(value, str) or value not in choices:
            self.fail(field, f"must be one of {', '.join(choices)}", value)
        return value

    def limited(self, d: Mapping, prefix: str, limits: Mapping[str, tuple[str, float, float]]) -> None:
        """Check the fields of ``d`` that ``limits`` knows (others are ignored, as the code does)."""
        for key, (kind, low, high) in limits.items():
            if key in d:
                if kind == "int":
                    self.integer(d[key], f"{prefix}.{key}", low, high)
                else:
                    self.number(d[key], f"{prefix}.{key}", low, high)


def _range(low: float | None, high: float | None, low_open: bool = False) -> str:
    if low is not None and high is not None:
        if low_open:
            return f" above {_fmt(low)} and at most {_fmt(high)}"
        return f" within {_fmt(low)}-{_fmt(high)}"
    if low is not None:
        return f" above {_fmt(low)}" if low_open else f" of at least {_fmt(low)}"
    if high is not None:
        return f" of at most {_fmt(high)}"
    return ""


def check_weights_name(name: Any, where: str = "The model card") -> str:
    """The card's ``weights`` entry, which must be a plain file name inside the bundle folder."""
    c = _Checker(where)
    if not isinstance(name, str) or not name.strip():
        c.fail("weights", "must be a file name in the bundle folder", name)
    plain = (
        "/" not in name and "\\" not in name and "\0" not in name and name not in (".", "..")
        and ":" not in name and name == name.strip()
    )
    if not plain:
        c.fail("weights", "must be a plain file name in the bundle folder (no folders, drives or '..')", name)
    return name


def _check_compact(c: _Checker, config: Mapping) -> None:
    c.limited(config, "backbone.config", COMPACT_LIMITS)
    cfg = {**CompactConfig().to_dict(), **{k: v for k, v in config.items() if k in COMPACT_LIMITS}}
    if not cfg["f_min"] < cfg["f_max"] <= cfg["sample_rate"] / 2:
        c.fail("backbone.config.f_max", f"must be above f_min ({_fmt(cfg['f_min'])}) and at most half the sample "
               f"rate ({_fmt(cfg['sample_rate'] / 2)})", cfg["f_max"])
    if cfg["width"] % cfg["heads"]:
        c.fail("backbone.config.heads", f"must divide the width ({cfg['width']})", cfg["heads"])


def _check_auditory(c: _Checker, config: Mapping) -> None:
    c.limited(config, "backbone.config", AUDITORY_LIMITS)
    cfg = {**AuditoryConfig().to_dict(), **{k: v for k, v in config.items() if k in AUDITORY_LIMITS}}
    if not cfg["f_min"] < cfg["f_max"] <= cfg["sample_rate"] / 2:
        c.fail("backbone.config.f_max", f"must be above f_min ({_fmt(cfg['f_min'])}) and at most half the sample "
               f"rate ({_fmt(cfg['sample_rate'] / 2)})", cfg["f_max"])
    bands = approx_band_count(cfg["f_min"], cfg["f_max"], cfg["erb_step"])
    if bands > MAX_AUDITORY_BANDS or bands * (cfg["n_fft"] // 2 + 1) > MAX_AUDITORY_FILTERBANK:
        c.fail("backbone.config.erb_step", f"gives {bands} bands of {cfg['n_fft'] // 2 + 1} frequency bins, more "
               f"than the front end allows (at most {MAX_AUDITORY_BANDS} bands and {MAX_AUDITORY_FILTERBANK} "
               "filterbank entries)", cfg["erb_step"])


def _check_backbone(c: _Checker, bb: Any) -> None:
    c.obj(bb, "backbone")
    if "type" not in bb:
        c.missing("backbone.type")
    kind = c.choice(bb["type"], "backbone.type", BACKBONE_TYPES)
    if kind in ("compact", "auditory"):
        config = bb.get("config")
        if config is None:
            config = {}
        c.obj(config, "backbone.config")
        (_check_compact if kind == "compact" else _check_auditory)(c, config)
    else:
        if "id" not in bb:
            c.missing("backbone.id")
        c.text(bb["id"], "backbone.id")
        for key in ("revision", "local_path"):
            if bb.get(key) is not None:
                c.text(bb[key], f"backbone.{key}")


def _check_head(c: _Checker, head: Any) -> None:
    c.obj(head, "head")
    if "projection" in head:
        c.boolean(head["projection"], "head.projection")
    if head.get("dim") is not None:
        c.integer(head["dim"], "head.dim", 1, 8192)
    if head.get("select_layer") is not None:
        c.integer(head["select_layer"], "head.select_layer", 0, 1024)
    if "normalize" in head:
        c.boolean(head["normalize"], "head.normalize")


def _check_lora(c: _Checker, lora: Any) -> None:
    c.obj(lora, "lora")
    for key in lora:
        if key not in LORA_KEYS:
            c.fail("lora", f"has an unknown setting '{key}' (known: {', '.join(LORA_KEYS)})")
    if "rank" in lora:
        c.integer(lora["rank"], "lora.rank", 1, 512)
    if "alpha" in lora:
        c.number(lora["alpha"], "lora.alpha", 0.0, 10000.0, low_open=True)
    if "dropout" in lora:
        c.number(lora["dropout"], "lora.dropout", 0.0, 0.999)
    if "target_ffn" in lora:
        c.boolean(lora["target_ffn"], "lora.target_ffn")


def _check_mapping(c: _Checker, mapping: Any) -> None:
    c.obj(mapping, "score_mapping")
    if mapping.get("type", "exp2") != "exp2":
        c.fail("score_mapping.type", "must be exp2", mapping.get("type"))
    if "d50" not in mapping:
        c.missing("score_mapping.d50")
    c.number(mapping["d50"], "score_mapping.d50", 0.0, low_open=True)
    if "power" in mapping:
        c.number(mapping["power"], "score_mapping.power", 0.0, 20.0, low_open=True)
    if mapping.get("fitted_on") is not None:
        c.text(mapping["fitted_on"], "score_mapping.fitted_on", empty=True)


def _check_distance(c: _Checker, distance: Any) -> None:
    from deepaq_core.distance import DISTANCE_TYPES, EMBEDDING_L2

    c.obj(distance, "distance")
    c.choice(distance.get("type", EMBEDDING_L2), "distance.type", DISTANCE_TYPES)
    c.limited(distance, "distance", DISTANCE_LIMITS)
    if distance.get("units") is not None:
        c.text(distance["units"], "distance.units", empty=True)


def check_card(card: Any, where: str = "The model card") -> dict[str, Any]:
    """Check every field of a bundle card; returns it unchanged or raises :class:`ModelError`.

    Parameters
    ----------
    card : object
        The parsed ``card.json``.
    where : str
        How messages name the card, e.g. ``"The model card 'x/card.json'"``.
    """
    c = _Checker(where)
    if not isinstance(card, dict):
        raise ModelError(f"{where} is not a JSON object (it holds {_kind(card)}).")
    if card.get("format") != BUNDLE_FORMAT:
        raise ModelError(f"{where} is not a DeePAQ model card (its 'format' is not {BUNDLE_FORMAT}).")
    if "format_version" not in card:
        c.missing("format_version")
    version = card["format_version"]
    c.integer(version, "format_version", 1)
    if version > BUNDLE_FORMAT_VERSION:
        raise ModelError(f"{where} needs a newer DeePAQ (bundle format {version}; this one reads up to "
                         f"{BUNDLE_FORMAT_VERSION}).")
    for key in ("name", "version", "backbone", "sample_rate", "frame_rate", "embedding_dim", "score_mapping"):
        if key not in card:
            c.missing(key)
    c.text(card["name"], "name")
    if isinstance(card["version"], (int, float)) and not isinstance(card["version"], bool):
        c.number(card["version"], "version")
    else:
        c.text(card["version"], "version")
    if card.get("status") is not None:
        c.choice(card["status"], "status", STATUSES)
    if card.get("description") is not None:
        c.text(card["description"], "description", empty=True)
    _check_backbone(c, card["backbone"])
    c.integer(card["sample_rate"], "sample_rate", 8000, 192000)
    c.number(card["frame_rate"], "frame_rate", 0.0, 1000.0, low_open=True)
    if card.get("hop_length") is not None:
        c.integer(card["hop_length"], "hop_length", 1, 65536)
    if card.get("layers") is not None:
        c.integer(card["layers"], "layers", 1, 1024)
    c.integer(card["embedding_dim"], "embedding_dim", 1, 65536)
    if card.get("head") is not None:
        _check_head(c, card["head"])
    if card.get("lora") is not None:
        _check_lora(c, card["lora"])
    _check_mapping(c, card["score_mapping"])
    if card.get("distance") is not None:
        _check_distance(c, card["distance"])
    if card.get("calibration") is not None:
        cal = c.obj(card["calibration"], "calibration")
        if cal.get("reference_lufs") is not None:
            c.number(cal["reference_lufs"], "calibration.reference_lufs", -70.0, 0.0)
    if card.get("local_alignment") is not None:
        c.limited(c.obj(card["local_alignment"], "local_alignment"), "local_alignment", LOCAL_ALIGNMENT_LIMITS)
    if "weights" in card:
        check_weights_name(card["weights"], where)
    if card.get("weights_dtype") is not None:
        c.choice(card["weights_dtype"], "weights_dtype", WEIGHTS_DTYPES)
    sha = card.get("weights_sha256")
    if sha is not None and (not isinstance(sha, str) or not _SHA256.fullmatch(sha)):
        c.fail("weights_sha256", "must be 64 hexadecimal digits (the SHA-256 of the weights file)", sha)
    return card
