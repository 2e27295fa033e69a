"""Model bundles: a folder with ``card.json`` + ``weights.safetensors``, loadable by name or path.

A bundle carries everything scoring needs to know about its model (sample and frame rate,
backbone id and pinned revision, layers, LoRA settings, score mapping, training summary and
measured results), in the spirit of torchaudio's pipeline bundles. Weights are safetensors only:
a bundle never contains pickles and never needs remote code.

Every card is checked against :mod:`deepaq_core.model.card_schema` before anything loads, the
weights file must be a plain file name inside the bundle folder, its size must be able to hold
the tensors the card describes (checked before they are allocated) and its SHA-256 must match
the card's ``weights_sha256``. A bundle without a checksum loads only when the caller allows it
(``allow_unverified=True``, ``--allow-unverified``).

Card fields (``format_version`` 1; types and ranges in :mod:`~deepaq_core.model.card_schema`)::

    format            "deepaq-bundle"
    format_version    1
    name, version     e.g. "compact", "0.1.0"
    status            "trained" | "untrained" | "designed"
    description       one line
    backbone          {"type": "compact" | "auditory", "config": {...}}
                      | {"type": "mert", "id": "m-a-p/MERT-v1-95M", "revision": "<commit or tag>"}
    sample_rate, frame_rate, hop_length, layers (number of hidden states), embedding_dim
    head              {"projection": true|false, "dim": 256|null, "select_layer": int|null, "normalize": bool}
    lora              null | {"rank", "alpha", "dropout", "target_ffn"}
    score_mapping     {"type": "exp2", "d50": float, "power": float, "fitted_on": str}
    distance, calibration, local_alignment   optional (how frames are compared, input level, time following)
    training          free-form summary (data, steps, time) or null
    results           free-form measured numbers or null
    weights           file name, weights_dtype ("float32" | "float16"), weights_sha256
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepaq_core.errors import ModelError
from deepaq_core.model.card_schema import (BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION, WEIGHTS_FILE, check_card,
                                           check_weights_name)
from deepaq_core.results import ModelInfo

log = logging.getLogger(__name__)

__all__ = ["BUNDLE_FORMAT", "BUNDLE_FORMAT_VERSION", "CARD_FILE", "WEIGHTS_FILE", "Bundle", "build_model",
           "check_verified", "read_card", "save_bundle", "score_from_distance", "unverified_message", "unverified_note",
           "verify_bundle", "weights_path"]

CARD_FILE = "card.json"
# A card is a few kilobytes; anything this large is not one.
MAX_CARD_BYTES = 16 << 20
# Bytes a weights file may lack against the smallest storage of the tensors its card describes.
SIZE_SLACK_BYTES = 4096


def score_from_distance(distance: np.ndarray | float, mapping: dict[str, Any]) -> np.ndarray | float:
    """Map an embedding distance (0-2) to the 0-100 quality scale.

    ``score = 100 * 2 ** (-(d / d50) ** power)``: monotone decreasing, 100 at ``d = 0`` and 50 at
    ``d = d50``. ``d50`` and ``power`` are fitted per model on its surrogate ladder (never on a
    test set) and stored in its card.
    """
    if mapping.get("type", "exp2") != "exp2":
        raise ModelError(f"Unknown score mapping type '{mapping.get('type')}' in the model card.")
    d50 = float(mapping["d50"])
    power = float(mapping.get("power", 1.0))
    d = np.maximum(np.asarray(distance, dtype=np.float64), 0.0)
    s = 100.0 * np.exp2(-np.power(d / d50, power))
    return float(s) if np.ndim(s) == 0 else s.astype(np.float32)


@dataclass(frozen=True)
class Bundle:
    """A bundle on disk (or a virtual one for a pretrained backbone): card plus folder."""

    card: dict[str, Any]
    folder: Path | None

    @property
    def name(self) -> str:
        return self.card["name"]

    @property
    def unverified(self) -> bool:
        """True for a bundle on disk whose card has no ``weights_sha256`` (its weights cannot be checked)."""
        return self.folder is not None and not self.card.get("weights_sha256")

    def info(self) -> ModelInfo:
        """The provenance record attached to every result."""
        bb = self.card["backbone"]
        backbone = bb["type"] if bb["type"] != "mert" else f"mert:{bb['id']}@{bb.get('revision')}"
        return ModelInfo(
            name=self.card["name"],
            version=str(self.card["version"]),
            status=self.card.get("status", "untrained"),
            backbone=backbone,
            sample_rate=int(self.card["sample_rate"]),
            frame_rate=float(self.card["frame_rate"]),
            embedding_dim=int(self.card["embedding_dim"]),
        )


def read_card(folder: str | Path) -> dict[str, Any]:
    """Read a bundle's ``card.json`` and check it against the card schema.

    Raises
    ------
    ModelError
        One sentence: no card, an unreadable or oversized one, or the first field that is missing,
        of the wrong type or out of range (:func:`~deepaq_core.model.card_schema.check_card`).
    """
    folder = Path(folder)
    path = folder / CARD_FILE
    if not path.is_file():
        raise ModelError(f"'{folder}' is not a DeePAQ model bundle (no {CARD_FILE}).")
    try:
        if path.stat().st_size > MAX_CARD_BYTES:
            raise ModelError(f"The model card '{path}' is too large to be a model card.")
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelError(f"The model card '{path}' cannot be read ({exc.__class__.__name__}).") from None
    return check_card(card, f"The model card '{path}'")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_bundle(model, card: dict[str, Any], folder: str | Path, *, include_backbone: bool,
                dtype: str = "float32") -> Path:
    """Write ``model`` (an :class:`~deepaq_core.model.head.EmbeddingModel`) as a bundle.

    Parameters
    ----------
    include_backbone : bool
        True for the compact backbone (its weights are ours); False for MERT, whose weights stay
        on the hub (only the head and any LoRA adapter weights are written).
    dtype : {"float32", "float16"}
        Storage precision; weights are loaded back as float32.
    """
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        is_adapter = "lora_" in key
        if key.startswith("backbone.") and not include_backbone and not is_adapter:
            continue
        t = value.detach().to("cpu").contiguous()
        if dtype == "float16" and t.is_floating_point():
            t = t.half()
        tensors[key] = t
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": BUNDLE_FORMAT})
    card = copy.deepcopy(card)
    card.update(
        format=BUNDLE_FORMAT,
        format_version=BUNDLE_FORMAT_VERSION,
        weights=WEIGHTS_FILE,
        weights_dtype=dtype,
        weights_sha256=_sha256(folder / WEIGHTS_FILE),
    )
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return folder


def _where(bundle: Bundle) -> str:
    if bundle.folder is not None:
        return f"The model card '{bundle.folder / CARD_FILE}'"
    name = bundle.card.get("name") if isinstance(bundle.card, dict) else None
    return f"The model card of '{name}'" if name else "The model card"


def weights_path(bundle: Bundle) -> Path:
    """The bundle's weights file, confined to its folder (symlinks resolved); it must exist.

    Raises
    ------
    ModelError
        If the card's ``weights`` is not a plain file name, resolves outside the bundle folder
        (e.g. through a symbolic link), or names no file.
    """
    if bundle.folder is None:
        raise ModelError(f"The model '{bundle.name}' is not a bundle on disk and has no weights file.")
    name = check_weights_name(bundle.card.get("weights", WEIGHTS_FILE), _where(bundle))
    folder = Path(os.path.realpath(bundle.folder))
    path = Path(os.path.realpath(bundle.folder / name))
    if path == folder or folder not in path.parents:
        raise ModelError(f"The weights file '{name}' of model bundle '{bundle.name}' lies outside the bundle folder "
                         "(it is a link to another place).")
    if not path.is_file():
        raise ModelError(f"The model bundle '{bundle.name}' has no weights file '{name}'.")
    return path


def unverified_message(bundle: Bundle) -> str:
    """The sentence that refuses a bundle without a checksum."""
    return (f"The model bundle '{bundle.name}' has no weights checksum (weights_sha256), so its weights cannot be "
            "verified; pass --allow-unverified (allow_unverified=True in Python) to load it anyway.")


def unverified_note(bundle: Bundle) -> str | None:
    """The note for a bundle loaded without a checksum (None for a verified one or one not on disk)."""
    if not getattr(bundle, "unverified", False):
        return None
    return f"model '{bundle.name}' is unverified (no checksum); loaded because --allow-unverified was given."


def check_verified(bundle: Bundle, allow_unverified: bool = False) -> None:
    """Refuse a bundle on disk without a checksum unless ``allow_unverified``."""
    if bundle.unverified and not allow_unverified:
        raise ModelError(unverified_message(bundle))


def _check_checksum(bundle: Bundle, wpath: Path, allow_unverified: bool) -> None:
    check_verified(bundle, allow_unverified)
    expected = bundle.card.get("weights_sha256")
    if expected and _sha256(wpath) != expected.lower():
        raise ModelError(f"The weights of model bundle '{bundle.name}' do not match its card (checksum differs).")


def _saved(key: str, backbone_type: str) -> bool:
    """Whether :func:`save_bundle` writes this state-dict entry for a backbone type."""
    return backbone_type in ("compact", "auditory") or not key.startswith("backbone.") or "lora_" in key


def _make_backbone(card: dict[str, Any], mert_source: str | None, *, meta: bool = False):
    """The backbone a (checked) card describes; ``meta``: without memory (compact only)."""
    import torch

    bb = card["backbone"]
    if bb["type"] == "compact":
        from deepaq_core.model.compact import CompactBackbone, CompactConfig

        with torch.device("meta") if meta else nullcontext():
            return CompactBackbone(CompactConfig.from_dict(bb.get("config") or {}))
    if bb["type"] == "auditory":
        # No learned weights, only fixed tables whose size the card schema bounds.
        from deepaq_core.model.auditory import AuditoryBackbone, AuditoryConfig

        return AuditoryBackbone(AuditoryConfig.from_dict(bb.get("config") or {}))
    if bb["type"] == "mert":
        from deepaq_core.model.mert import MertBackbone, load_mert_hubert

        source = mert_source or bb.get("local_path") or bb["id"]
        hubert, meta_info = load_mert_hubert(source, revision=bb.get("revision"))
        backbone = MertBackbone(hubert, sample_rate=int(meta_info.get("sample_rate", card["sample_rate"])),
                                do_normalize=bool(meta_info.get("do_normalize", True)), name=bb["id"])
        if card.get("lora"):
            from deepaq_core.model.lora import LoraSettings, add_lora

            backbone = add_lora(backbone, LoraSettings(**card["lora"]))
        return backbone
    raise ModelError(f"The model card of '{card['name']}' has an unknown backbone type '{bb['type']}'.")


def _make_head(card: dict[str, Any], backbone, *, meta: bool = False):
    import torch

    from deepaq_core.model.head import EmbeddingHead

    head_cfg = card.get("head") or {"projection": True, "dim": card["embedding_dim"]}
    select = head_cfg.get("select_layer")
    if select is not None and select >= backbone.num_hidden_states:
        raise ModelError(f"The model card of '{card['name']}' has an invalid 'head.select_layer': it must be below "
                         f"{backbone.num_hidden_states} (the backbone's hidden states), not {select}.")
    with torch.device("meta") if meta else nullcontext():
        return EmbeddingHead(backbone.num_hidden_states, backbone.hidden_size,
                             dim=head_cfg.get("dim") if head_cfg.get("projection", True) else None,
                             select_layer=select, normalize=bool(head_cfg.get("normalize", True)))


def _stored_layout(bundle: Bundle, wpath: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from the weights file's header (no tensor data is read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(wpath), framework="np") as f:  # the header only: no torch needed
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise ModelError(f"The weights of model bundle '{bundle.name}' cannot be read "
                         f"({str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}).") from None


def _check_layout(bundle: Bundle, wpath: Path, expected: dict[str, Any]) -> None:
    """Refuse weights that cannot hold, or do not match, the tensors the card describes.

    ``expected``: the state-dict entries :func:`save_bundle` would write, each as (shape,
    floating point?, bytes per value) (see :func:`_layout`). Size first (float16 storage, a little
    slack), from the file size alone; then the names and shapes from the file's header.
    """
    sizes = {k: int(np.prod(shape, dtype=np.int64)) for k, (shape, _, _) in expected.items()}
    numel = sum(sizes.values())
    need = sum(sizes[k] * (2 if floating else size) for k, (_, floating, size) in expected.items())
    have = wpath.stat().st_size
    if need > have + SIZE_SLACK_BYTES:
        raise ModelError(f"The weights of model bundle '{bundle.name}' do not fit its card (the card describes "
                         f"{numel:,} values, at least {need:,} bytes, but '{wpath.name}' holds {have:,} bytes).")
    stored = _stored_layout(bundle, wpath)
    missing = sorted(expected.keys() - stored.keys())
    unexpected = sorted(stored.keys() - expected.keys())
    if missing or unexpected:
        raise ModelError(
            f"The weights of model bundle '{bundle.name}' do not fit its card "
            f"(missing: {missing[:3]}, unexpected: {unexpected[:3]})."
        )
    for key, (shape, _, _) in expected.items():
        if tuple(shape) != stored[key]:
            raise ModelError(f"The weights of model bundle '{bundle.name}' do not fit its card ('{key}' has the "
                             f"shape {list(stored[key])}, the card needs {list(shape)}).")


def _layout(tensors: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], bool, int]]:
    """(shape, floating point?, bytes per value) of each tensor, as :func:`_check_layout` takes them."""
    return {k: (tuple(t.shape), bool(t.is_floating_point()), int(t.element_size())) for k, t in tensors.items()}


def build_model(bundle: Bundle, *, mert_source: str | None = None, allow_unverified: bool = False):
    """Instantiate the :class:`EmbeddingModel` a bundle describes and load its weights (CPU, eval).

    The card is checked (:func:`~deepaq_core.model.card_schema.check_card`), the weights file
    confined to the bundle folder, its checksum compared with the card's, and its size and
    layout compared with what the card describes, all before the model is allocated.

    Parameters
    ----------
    mert_source : str, optional
        Overrides where a MERT backbone is read from (a local folder or a hub id).
    allow_unverified : bool
        Load a bundle whose card has no ``weights_sha256`` (refused otherwise). A checksum that
        is present but wrong is always refused.
    """
    from safetensors.torch import load_file

    from deepaq_core.model.head import EmbeddingModel

    card = check_card(bundle.card, _where(bundle))
    bb_type = card["backbone"]["type"]
    wpath = None
    if bundle.folder is not None:
        wpath = weights_path(bundle)
        _check_checksum(bundle, wpath, allow_unverified)
    meta = bb_type == "compact"  # the only backbone whose size the card sets and whose weights are stored
    backbone = _make_backbone(card, mert_source, meta=meta and wpath is not None)
    if wpath is not None:
        shape_model = EmbeddingModel(backbone, _make_head(card, backbone, meta=True))
        _check_layout(bundle, wpath, _layout({k: v for k, v in shape_model.state_dict().items()
                                                    if _saved(k, bb_type)}))
        if meta:
            backbone = _make_backbone(card, mert_source)
    model = EmbeddingModel(backbone, _make_head(card, backbone))

    if wpath is not None:
        try:
            stored = load_file(str(wpath))
        except Exception as exc:  # safetensors raises several types for corrupt files
            raise ModelError(f"The weights of model bundle '{bundle.name}' cannot be read ({exc}).") from exc
        own = model.state_dict()
        stored = {k: v.to(own[k].dtype) for k, v in stored.items()}
        model.load_state_dict(stored, strict=False)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def verify_bundle(folder: str | Path) -> Bundle:
    """Check a bundle folder completely: card schema, weights confinement, size, checksum, loading.

    Returns
    -------
    Bundle
        The verified bundle (its card has a matching ``weights_sha256``).

    Raises
    ------
    ModelError
        One sentence naming the first problem; a bundle without a checksum is refused.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelError(f"'{folder}' is not a model bundle folder.")
    bundle = Bundle(read_card(folder), folder)
    build_model(bundle, allow_unverified=False)
    return bundle
