"""Training configuration: a TOML (or, with PyYAML installed, YAML) file -> frozen :class:`TrainConfig`.

Every table of the file maps to one frozen dataclass; unknown keys, wrong types and values out of
range raise :class:`~deepaq_core.errors.DeePAQError` with one sentence naming the setting. Paths
are resolved against the folder of the config file. The reference of every setting, with
defaults, is docs/TRAINING.md; ``configs/compact.toml`` and ``configs/mert95m-lora.toml`` are
worked examples.

This module imports neither torch nor numpy, so the CLI can parse a config cheaply.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepaq_core.errors import DeePAQError
from deepaq_core.model.compact_config import CompactConfig

LABEL_MODES = ("param", "teacher", "hybrid")
GROUP_MODES = ("single", "mixed")
CHANNEL_MODES = ("mono", "stereo")
BACKBONES = ("compact", "mert")
PRECISIONS = ("bf16", "fp16", "fp32")
ANCHORS = ("all", "clean")
GROUPINGS = ("within", "across")
LOSS_TARGETS = ("embeddings", "distances")
STATS = ("pearson", "spearman", "kendall")


class ConfigError(DeePAQError):
    """A training configuration file is missing, unreadable or holds an invalid setting."""


@dataclass(frozen=True)
class ManifestSpec:
    """A listening-test (or reference-metric) manifest used for validation on real material.

    Attributes
    ----------
    name : str
        Short name used in metric keys (``"<name>.spearman"``).
    path : str
        CSV file; its relative audio paths are relative to its folder.
    subjective : str
        Column with the known answer (higher = better quality, e.g. MOS or MUSHRA).
    reference, degraded : str
        Columns with the audio paths.
    group : str
        Optional grouping column ("" = none), passed to the manifest loader.
    """

    name: str = ""
    path: str = ""
    subjective: str = ""
    reference: str = "reference"
    degraded: str = "degraded"
    group: str = ""


@dataclass(frozen=True)
class DataConfig:
    """Where clean audio comes from and how grouped, labelled batches are made from it."""

    clean: tuple[str, ...] = ()
    excerpt_seconds: float = 4.0
    generation_rate: int = 48000
    channels: str = "stereo"
    families: tuple[str, ...] = ("all",)
    label_mode: str = "hybrid"
    group_mode: str = "single"
    versions_per_group: int = 8
    groups_per_batch: int = 8
    seed: int = 0
    num_workers: int = 2
    target_lufs: float = -23.0
    silence_db: float = -50.0
    min_active_fraction: float = 0.5
    heldout_fraction: float = 0.1
    cache: str = ""
    cache_groups: int = 2000
    crop_seconds: float = 0.0


# The compact shape is the model's own dataclass (torch-free module), so defaults cannot drift.
CompactSettings = CompactConfig


@dataclass(frozen=True)
class MertSettings:
    """Which MERT checkpoint to adapt."""

    source: str = "m-a-p/MERT-v1-95M"
    revision: str = ""
    id: str = ""
    gradient_checkpointing: bool = False


@dataclass(frozen=True)
class LoraConfig:
    """LoRA adapter shape (:class:`deepaq_core.model.lora.LoraSettings`)."""

    rank: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_ffn: bool = False


@dataclass(frozen=True)
class ModelConfig:
    """Backbone choice and head."""

    backbone: str = "compact"
    head_dim: int = 256
    init_seed: int = 0
    compact: CompactSettings = field(default_factory=CompactSettings)
    mert: MertSettings = field(default_factory=MertSettings)
    lora: LoraConfig = field(default_factory=LoraConfig)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW, cosine schedule with linear warm-up, accumulation, clipping, precision."""

    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, ...] = (0.9, 0.999)
    steps: int = 3000
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    grad_accum: int = 1
    grad_clip: float = 1.0
    precision: str = "bf16"
    log_every: int = 10


@dataclass(frozen=True)
class LossConfig:
    """Adapted Rank-N-Contrast (:func:`deepaq_core.training.losses.rnc_loss`).

    ``tau`` defaults to 0.05, not ``rnc_loss``'s 0.2: pooled distances between versions of one
    excerpt are only about 0.05-0.3 (not up to 2), and with 0.2 the softmax over them is nearly
    flat (docs/TRAINING.md, "What to expect").
    """

    tau: float = 0.05
    anchors: str = "all"
    grouping: str = "within"
    #: "embeddings" (rank the embeddings, the paper's form) or "distances" (rank each version's
    #: distance to its own clean version; with grouping "across" also across excerpts/families)
    on: str = "embeddings"


@dataclass(frozen=True)
class ValidationConfig:
    """What is measured every ``every`` steps and how the best checkpoint is chosen."""

    every: int = 250
    heldout_groups: int = 64
    at_start: bool = True
    manifests: tuple[ManifestSpec, ...] = ()
    select: str = ""
    patience: int = 0
    min_delta: float = 0.0
    fit_mapping_with_scorer: bool = True


@dataclass(frozen=True)
class OutputConfig:
    """Where runs are written and what the bundle says about itself."""

    dir: str = "runs/deepaq"
    name: str = "deepaq-trained"
    version: str = "0.1.0"
    description: str = ""
    bundle_dtype: str = "float32"
    checkpoint_every: int = 250
    resume: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run (see docs/TRAINING.md for every field)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    device: str = "auto"
    config_path: str = field(default="", compare=False)  # the file this was read from; not a setting

    # -- derived values -----------------------------------------------------------------------
    @property
    def model_rate(self) -> int:
        """Sample rate the backbone takes (Hz): the compact config's, or 24 kHz for MERT."""
        return int(self.model.compact.sample_rate) if self.model.backbone == "compact" else 24000

    @property
    def selection_metric(self) -> str:
        """The validation metric that picks the best checkpoint (``select`` or its default)."""
        if self.validation.select:
            return self.validation.select
        if self.validation.manifests:
            return "real.spearman"
        return "heldout.spearman" if self.validation.heldout_groups > 0 else ""

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with dotted settings changed: ``cfg.replace(**{"optim.steps": 10})``; checked."""
        data = to_dict(self)
        for key, value in changes.items():
            _set_dotted(data, key, value)
        return from_dict(data, base_dir=None, config_path=self.config_path)

    def fingerprint(self, section: str) -> str:
        """Short hash of one section's settings (e.g. ``"data"``), for cache and resume checks."""
        text = json.dumps(to_dict(self).get(section), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------- parsing

def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against a field type (str, int, float, bool, tuple[...], dataclass)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"The setting '{where}' must be a table.")
        return _build(tp, value, where)
    if origin is tuple:
        (inner, _ellipsis) = typing.get_args(tp)
        if isinstance(value, (str, dict)) or not isinstance(value, (list, tuple)):
            if inner is str and isinstance(value, str):
                value = [value]
            else:
                raise ConfigError(f"The setting '{where}' must be a list.")
        return tuple(_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"The setting '{where}' must be true or false, not {value!r}.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"The setting '{where}' must be an integer, not {value!r}.")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"The setting '{where}' must be a finite number, not {value!r}.")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"The setting '{where}' must be a string, not {value!r}.")
        return value
    raise TypeError(f"unsupported config type {tp!r}")  # pragma: no cover - programming error


def _build(cls: type, data: dict, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.name != "config_path"}
    kwargs = {}
    for key, value in data.items():
        name = f"{where}.{key}" if where else str(key)
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"Unknown setting '{name}'; the known settings here are {known}.")
        tp = hints[key]
        if key == "manifests":
            if isinstance(value, dict):
                value = [value]
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"The setting '{name}' must be a list of tables.")
            kwargs[key] = tuple(_coerce(v, ManifestSpec, f"{name}[{i}]") for i, v in enumerate(value))
            continue
        kwargs[key] = _coerce(value, tp, name)
    return cls(**kwargs)


def _resolve_path(text: str, base_dir: Path | None) -> str:
    if not text:
        return text
    p = Path(os.path.expandvars(text)).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return os.path.normpath(p)


def _resolve_paths(cfg: TrainConfig, base_dir: Path | None) -> TrainConfig:
    data = dataclasses.replace(
        cfg.data,
        clean=tuple(_resolve_path(p, base_dir) for p in cfg.data.clean),
        cache=_resolve_path(cfg.data.cache, base_dir),
    )
    manifests = tuple(dataclasses.replace(m, path=_resolve_path(m.path, base_dir)) for m in cfg.validation.manifests)
    mert = cfg.model.mert
    source = mert.source
    # A MERT source is a local folder or a hub id ("owner/name"): it is resolved as a path when it
    # looks like one or names an existing folder next to the config, and kept as a hub id otherwise.
    if source and (
        source.startswith((".", "/", "~", "$"))
        or (base_dir is not None and (base_dir / source).is_dir())
        or source.count("/") != 1
    ):
        source = _resolve_path(source, base_dir)
    model = dataclasses.replace(cfg.model, mert=dataclasses.replace(mert, source=source))
    return dataclasses.replace(
        cfg,
        data=data,
        model=model,
        validation=dataclasses.replace(cfg.validation, manifests=manifests),
        output=dataclasses.replace(cfg.output, dir=_resolve_path(cfg.output.dir, base_dir)),
    )


def _check_choice(value: str, choices: tuple[str, ...], where: str) -> None:
    if value not in choices:
        raise ConfigError(f"The setting '{where}' must be one of {', '.join(choices)}, not {value!r}.")


def _check_positive(value: float, where: str, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        what = "non-negative" if allow_zero else "positive"
        raise ConfigError(f"The setting '{where}' must be {what}, not {value!r}.")


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check values and cross-field rules; returns ``cfg`` unchanged or raises :class:`ConfigError`."""
    d, m, o, lo, v = cfg.data, cfg.model, cfg.optim, cfg.loss, cfg.validation
    _check_choice(d.channels, CHANNEL_MODES, "data.channels")
    _check_choice(d.label_mode, LABEL_MODES, "data.label_mode")
    _check_choice(d.group_mode, GROUP_MODES, "data.group_mode")
    _check_choice(m.backbone, BACKBONES, "model.backbone")
    _check_choice(o.precision, PRECISIONS, "optim.precision")
    _check_choice(lo.anchors, ANCHORS, "loss.anchors")
    _check_choice(lo.grouping, GROUPINGS, "loss.grouping")
    _check_choice(lo.on, LOSS_TARGETS, "loss.on")
    _check_choice(cfg.output.bundle_dtype, ("float32", "float16"), "output.bundle_dtype")
    for name, value in (("data.excerpt_seconds", d.excerpt_seconds), ("optim.lr", o.lr), ("loss.tau", lo.tau),
                        ("data.generation_rate", d.generation_rate), ("model.head_dim", m.head_dim),
                        ("optim.steps", o.steps), ("optim.grad_accum", o.grad_accum),
                        ("data.groups_per_batch", d.groups_per_batch), ("optim.log_every", o.log_every),
                        ("validation.every", v.every), ("output.checkpoint_every", cfg.output.checkpoint_every)):
        _check_positive(value, name)
    for name, value in (("data.num_workers", d.num_workers), ("optim.weight_decay", o.weight_decay),
                        ("optim.warmup_steps", o.warmup_steps), ("optim.grad_clip", o.grad_clip),
                        ("validation.heldout_groups", v.heldout_groups), ("validation.patience", v.patience),
                        ("validation.min_delta", v.min_delta), ("data.cache_groups", d.cache_groups),
                        ("data.crop_seconds", d.crop_seconds)):
        _check_positive(value, name, allow_zero=True)
    if d.versions_per_group < 2:
        raise ConfigError("The setting 'data.versions_per_group' must be at least 2 (the clean version and one "
                          "degraded).")
    if not 8000 <= d.generation_rate <= 192000:
        raise ConfigError(f"The setting 'data.generation_rate' must be within 8000-192000 Hz, not {d.generation_rate}.")
    if not 0.0 <= d.heldout_fraction < 1.0:
        raise ConfigError(f"The setting 'data.heldout_fraction' must be in [0, 1), not {d.heldout_fraction}.")
    if not 0.0 <= d.min_active_fraction <= 1.0:
        raise ConfigError(f"The setting 'data.min_active_fraction' must be in [0, 1], not {d.min_active_fraction}.")
    if d.crop_seconds and d.crop_seconds > d.excerpt_seconds:
        raise ConfigError("The setting 'data.crop_seconds' must not exceed 'data.excerpt_seconds'.")
    if not 0.0 <= o.min_lr_ratio <= 1.0:
        raise ConfigError(f"The setting 'optim.min_lr_ratio' must be in [0, 1], not {o.min_lr_ratio}.")
    if len(o.betas) != 2 or not all(0.0 <= b < 1.0 for b in o.betas):
        raise ConfigError("The setting 'optim.betas' must be two numbers in [0, 1).")
    if m.backbone == "mert" and not m.mert.source:
        raise ConfigError("The setting 'model.mert.source' must name a MERT hub id or a local MERT folder.")
    names = []
    for i, spec in enumerate(v.manifests):
        if not spec.name or not spec.path or not spec.subjective:
            raise ConfigError(f"Validation manifest {i + 1} needs 'name', 'path' and 'subjective'.")
        if spec.name in ("real", "heldout") or "." in spec.name:
            raise ConfigError(f"The validation manifest name '{spec.name}' is reserved or contains a dot.")
        names.append(spec.name)
    if len(set(names)) != len(names):
        raise ConfigError("Two validation manifests have the same name.")
    sel = cfg.selection_metric
    if not sel:  # no validation data at all: the last checkpoint is the result
        return cfg
    source, _, stat = sel.partition(".")
    if source not in ("real", "heldout", *names):
        raise ConfigError(f"The setting 'validation.select' names '{source}', which is not 'real', 'heldout' or a "
                          "manifest.")
    allowed = ("spearman", "group_spearman", "loss") if source == "heldout" else STATS
    if stat not in allowed:
        raise ConfigError(f"The setting 'validation.select' must end in one of {', '.join(allowed)}, not '{sel}'.")
    if source == "real" and not names:
        raise ConfigError("The setting 'validation.select' uses real material, but no validation manifests are given.")
    if source == "heldout" and v.heldout_groups == 0:
        raise ConfigError("The setting 'validation.select' uses held-out groups, but 'validation.heldout_groups' is 0.")
    return cfg


def from_dict(data: dict, *, base_dir: str | Path | None = None, config_path: str = "") -> TrainConfig:
    """Build a :class:`TrainConfig` from a parsed file, resolving relative paths against ``base_dir``."""
    if not isinstance(data, dict):
        raise ConfigError("A training config must be a table of settings.")
    cfg = _build(TrainConfig, data, "")
    cfg = dataclasses.replace(cfg, config_path=str(config_path))
    cfg = _resolve_paths(cfg, Path(base_dir) if base_dir is not None else None)
    return validate(cfg)


def _tomllib():
    """``tomllib`` (Python 3.11+) or its backport ``tomli`` on 3.10."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError("Reading TOML configs on Python 3.10 needs the 'tomli' package "
                              "(pip install tomli).") from None
    return tomllib


def _parse_text(text: str, suffix: str, label: str) -> dict:
    if suffix in (".yaml", ".yml"):
        try:
            import yaml  # optional: only for YAML configs
        except ImportError:
            raise ConfigError(f"Reading the YAML config '{label}' needs PyYAML (pip install pyyaml); TOML works "
                              "without it.") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"The config '{label}' is not valid YAML ({str(exc).splitlines()[0]}).") from None
        return data if data is not None else {}
    tomllib = _tomllib()
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The config '{label}' is not valid TOML ({exc}).") from None


def parse_override(item: str) -> tuple[str, Any]:
    """``"optim.lr=1e-4"`` -> ``("optim.lr", 1e-4)``; the value is read as TOML, else as a string."""
    tomllib = _tomllib()

    if "=" not in item:
        raise ConfigError(f"The override '{item}' is not KEY=VALUE.")
    key, text = (s.strip() for s in item.split("=", 1))
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return key, value


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"The override '{key}' does not name a setting.")
        node = child
    node[parts[-1]] = value


def load_config(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a training config file.

    Parameters
    ----------
    path : str or os.PathLike
        ``.toml`` (or ``.yaml``/``.yml`` with PyYAML installed).
    overrides : dict, optional
        Dotted settings applied on top of the file, e.g. ``{"optim.steps": 100}``.

    Returns
    -------
    TrainConfig
        Frozen; relative paths resolved against the file's folder.

    Raises
    ------
    ConfigError
        Missing or unreadable file, invalid syntax, unknown setting, bad value (one sentence).
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"The training config '{p}' does not exist.")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"The training config '{p.name}' cannot be read ({exc.__class__.__name__}).") from None
    data = _parse_text(text, p.suffix.lower(), p.name)
    for key, value in (overrides or {}).items():
        _set_dotted(data, key, value)
    return from_dict(data, base_dir=p.resolve().parent, config_path=str(p.resolve()))


# ------------------------------------------------------------------------------------- writing


def to_dict(cfg: Any) -> dict:
    """Plain nested dict of a config (tuples as lists); the ``config_path`` bookkeeping field is left out."""
    out = {}
    for f in dataclasses.fields(cfg):
        if f.name == "config_path":
            continue
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = to_dict(value)
        elif isinstance(value, tuple):
            out[f.name] = [to_dict(v) if dataclasses.is_dataclass(v) else v for v in value]
        else:
            out[f.name] = value
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")  # pragma: no cover


def _toml_table(data: dict, prefix: str, lines: list[str]) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict) and not _is_table_list(v)}
    if prefix and scalars:
        lines.append(f"\n[{prefix}]")
    for key, value in scalars.items():
        lines.append(f"{key} = {_toml_value(value)}")
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            _toml_table(value, name, lines)
        elif _is_table_list(value):
            for item in value:
                lines.append(f"\n[[{name}]]")
                for k, v in item.items():
                    lines.append(f"{k} = {_toml_value(v)}")


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def to_toml(cfg: TrainConfig) -> str:
    """The config as TOML text that :func:`load_config` reads back to an equal config."""
    lines: list[str] = ["# DeePAQ training config (written by deepaq; paths are absolute)"]
    _toml_table(to_dict(cfg), "", lines)
    return "\n".join(lines) + "\n"


def save_config(cfg: TrainConfig, path: str | os.PathLike) -> Path:
    """Write ``cfg`` as TOML (the run folder keeps the exact config a run used)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(to_toml(cfg), encoding="utf-8")
    return p


__all__ = [
    "CompactSettings",
    "ConfigError",
    "DataConfig",
    "LoraConfig",
    "LossConfig",
    "ManifestSpec",
    "MertSettings",
    "ModelConfig",
    "OptimConfig",
    "OutputConfig",
    "TrainConfig",
    "ValidationConfig",
    "from_dict",
    "load_config",
    "parse_override",
    "save_config",
    "to_dict",
    "to_toml",
    "validate",
]
