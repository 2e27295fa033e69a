"""Model bundles: a folder with ``card.json`` + ``weights.safetensors``, loadable by name or path.

A bundle carries everything scoring needs to know about its model (sample and frame rate,
backbone id and pinned revision, layers, LoRA settings, score mapping, training summary and
measured results), in the spirit of torchaudio's pipeline bundles. Weights are safetensors only:
a bundle never contains pickles and never needs remote code.

Card fields (``format_version`` 1)::

    format            "deepaq-bundle"
    format_version    1
    name, version     e.g. "compact", "0.1.0"
    status            "trained" | "untrained"
    description       one line
    backbone          {"type": "compact", "config": {...}}
                      | {"type": "mert", "id": "m-a-p/MERT-v1-95M", "revision": "<commit or tag>"}
    sample_rate, frame_rate, hop_length, layers (number of hidden states), embedding_dim
    head              {"projection": true|false, "dim": 256|null}
    lora              null | {"rank", "alpha", "dropout", "target_ffn"}
    score_mapping     {"type": "exp2", "d50": float, "power": float, "fitted_on": str}
    training          free-form summary (data, steps, time) or null
    results           free-form measured numbers or null
    weights           file name, weights_dtype ("float32" | "float16"), weights_sha256
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepaq_core.errors import ModelError
from deepaq_core.results import ModelInfo

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "deepaq-bundle"
BUNDLE_FORMAT_VERSION = 1
CARD_FILE = "card.json"
WEIGHTS_FILE = "weights.safetensors"


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
    """Read and check a bundle's ``card.json``."""
    folder = Path(folder)
    path = folder / CARD_FILE
    if not path.is_file():
        raise ModelError(f"'{folder}' is not a DeePAQ model bundle (no {CARD_FILE}).")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"The model card '{path}' cannot be read ({exc.__class__.__name__}).") from exc
    if card.get("format") != BUNDLE_FORMAT:
        raise ModelError(f"'{path}' is not a DeePAQ model card.")
    if int(card.get("format_version", -1)) > BUNDLE_FORMAT_VERSION:
        raise ModelError(
            f"The model bundle '{folder.name}' needs a newer DeePAQ (bundle format {card.get('format_version')})."
        )
    for key in ("name", "version", "backbone", "sample_rate", "frame_rate", "embedding_dim", "score_mapping"):
        if key not in card:
            raise ModelError(f"The model card '{path}' lacks the field '{key}'.")
    return card


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


def build_model(bundle: Bundle, *, mert_source: str | None = None):
    """Instantiate the :class:`EmbeddingModel` a bundle describes and load its weights (CPU, eval).

    ``mert_source`` overrides where a MERT backbone is read from (a local folder or a hub id).
    """
    from safetensors.torch import load_file

    from deepaq_core.model.head import EmbeddingHead, EmbeddingModel

    card = bundle.card
    bb = card["backbone"]
    if bb["type"] == "compact":
        from deepaq_core.model.compact import CompactBackbone, CompactConfig

        backbone = CompactBackbone(CompactConfig.from_dict(bb.get("config", {})))
    elif bb["type"] == "auditory":
        from deepaq_core.model.auditory import AuditoryBackbone, AuditoryConfig

        backbone = AuditoryBackbone(AuditoryConfig.from_dict(bb.get("config", {})))
    elif bb["type"] == "mert":
        from deepaq_core.model.mert import MertBackbone, load_mert_hubert

        source = mert_source or bb.get("local_path") or bb["id"]
        hubert, meta = load_mert_hubert(source, revision=bb.get("revision"))
        backbone = MertBackbone(hubert, sample_rate=int(meta.get("sample_rate", card["sample_rate"])),
                                do_normalize=bool(meta.get("do_normalize", True)), name=bb["id"])
        if card.get("lora"):
            from deepaq_core.model.lora import LoraSettings, add_lora

            backbone = add_lora(backbone, LoraSettings(**card["lora"]))
    else:
        raise ModelError(f"The model bundle '{bundle.name}' has an unknown backbone type '{bb['type']}'.")

    head_cfg = card.get("head", {"projection": True, "dim": card["embedding_dim"]})
    head = EmbeddingHead(backbone.num_hidden_states, backbone.hidden_size,
                         dim=head_cfg.get("dim") if head_cfg.get("projection", True) else None,
                         select_layer=head_cfg.get("select_layer"), normalize=bool(head_cfg.get("normalize", True)))
    model = EmbeddingModel(backbone, head)

    if bundle.folder is not None:
        wpath = bundle.folder / card.get("weights", WEIGHTS_FILE)
        if not wpath.is_file():
            raise ModelError(f"The model bundle '{bundle.name}' has no weights file '{wpath.name}'.")
        expected = card.get("weights_sha256")
        if expected and _sha256(wpath) != expected:
            raise ModelError(f"The weights of model bundle '{bundle.name}' do not match its card (checksum differs).")
        try:
            stored = load_file(str(wpath))
        except Exception as exc:  # safetensors raises several types for corrupt files
            raise ModelError(f"The weights of model bundle '{bundle.name}' cannot be read ({exc}).") from exc
        own = model.state_dict()
        stored = {k: v.to(own[k].dtype) if k in own else v for k, v in stored.items()}
        expected_keys = {k for k in own if bb["type"] in ("compact", "auditory") or not k.startswith("backbone.")
                         or "lora_" in k}
        missing = sorted(expected_keys - stored.keys())
        unexpected = sorted(stored.keys() - own.keys())
        if missing or unexpected:
            raise ModelError(
                f"The weights of model bundle '{bundle.name}' do not fit its card "
                f"(missing: {missing[:3]}, unexpected: {unexpected[:3]})."
            )
        model.load_state_dict(stored, strict=False)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
