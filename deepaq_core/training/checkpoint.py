"""Checkpoints: a model bundle plus the training state, written without pickle.

A checkpoint folder is a normal bundle (``card.json`` + ``weights.safetensors``, loadable by
``deepaq score --model FOLDER``) with two more files:

``training_state.safetensors``
    every tensor of the optimizer state (``optimizer.<param index>.<name>``, e.g. AdamW's
    ``exp_avg``, ``exp_avg_sq`` and ``step``) and the random generators' states
    (``rng.torch_cpu``, ``rng.cuda.<i>``, ``rng.numpy_keys``);
``training_state.json``
    everything else: step, batches consumed, validation history and best value, the optimizer's
    param groups (hyperparameters), non-tensor optimizer state, the gradient scaler, Python's and
    NumPy's generator positions, config fingerprints.

Folders are replaced atomically (written next to the target, then renamed), so an interrupted
save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepaq_core.errors import DeePAQError

log = logging.getLogger(__name__)

STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
STATE_FORMAT = "deepaq-train-state"
STATE_VERSION = 1


# ------------------------------------------------------------------------------------- optimizer


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return {"__tuple__": [_jsonable(v) for v in value]}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in the training state JSON")


def _unjson(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(_unjson(v) for v in value["__tuple__"])
        return {k: _unjson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unjson(v) for v in value]
    return value


def optimizer_to_flat(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer ``state_dict()`` into tensors (for safetensors) and JSON."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for pid, entry in state_dict["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{pid}.{name}"] = value.detach().to("cpu").contiguous().clone()
            else:
                scalars.setdefault(str(pid), {})[name] = _jsonable(value)
    meta = {"param_groups": _jsonable(state_dict["param_groups"]), "scalars": scalars}
    return tensors, meta


def optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of :func:`optimizer_to_flat`: a ``state_dict`` for ``optimizer.load_state_dict``."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if not key.startswith("optimizer."):
            continue
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, entry in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(_unjson(entry))
    return {"state": state, "param_groups": _unjson(meta["param_groups"])}


# ------------------------------------------------------------------------------------- RNG


def rng_to_flat() -> tuple[dict[str, torch.Tensor], dict]:
    """States of torch (CPU, CUDA), NumPy's and Python's global generators."""
    tensors = {"rng.torch_cpu": torch.get_rng_state().clone()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s.clone()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy_keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss_next = random.getstate()
    meta = {"numpy": [kind, int(pos), int(has_gauss), float(cached)],
            "python": [version, list(internal), gauss_next]}
    return tensors, meta


def rng_from_flat(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Restore what :func:`rng_to_flat` saved (CUDA states only where the devices exist)."""
    if "rng.torch_cpu" in tensors:
        torch.set_rng_state(tensors["rng.torch_cpu"].to(torch.uint8))
    cuda_keys = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    cuda = [tensors[k] for k in cuda_keys]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.to(torch.uint8) for s in cuda[: torch.cuda.device_count()]])
    if "rng.numpy_keys" in tensors and "numpy" in meta:
        kind, pos, has_gauss, cached = meta["numpy"]
        keys = tensors["rng.numpy_keys"].numpy().astype(np.uint32)
        np.random.set_state((kind, keys, int(pos), int(has_gauss), float(cached)))
    if "python" in meta:
        version, internal, gauss_next = meta["python"]
        random.setstate((version, tuple(internal), gauss_next))


# ------------------------------------------------------------------------------------- folders


def replace_folder(tmp: Path, final: Path) -> None:
    """Move a fully written ``tmp`` folder to ``final``, replacing an existing one."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def save_checkpoint(folder: str | os.PathLike, model, card: dict, *, include_backbone: bool, optimizer=None,
                    scaler=None, state: dict | None = None, dtype: str = "float32") -> Path:
    """Write a bundle (+ training state when ``optimizer`` is given) to ``folder``, atomically.

    Parameters
    ----------
    model : EmbeddingModel
        The unwrapped model (not a DDP wrapper).
    card : dict
        Bundle card fields (see :mod:`deepaq_core.model.bundle`).
    include_backbone : bool
        True for the compact backbone; False for MERT (head and LoRA weights only).
    optimizer : torch.optim.Optimizer, optional
    scaler : torch.amp.GradScaler, optional
    state : dict, optional
        JSON-friendly trainer state (step, history, ...).
    dtype : {"float32", "float16"}
        Bundle weight precision (resumable checkpoints should stay float32).
    """
    from safetensors.torch import save_file

    from deepaq_core.model.bundle import save_bundle

    final = Path(folder)
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    save_bundle(model, card, tmp, include_backbone=include_backbone, dtype=dtype)
    if optimizer is not None:
        tensors, opt_meta = optimizer_to_flat(optimizer.state_dict())
        rng_tensors, rng_meta = rng_to_flat()
        tensors.update(rng_tensors)
        save_file(tensors, str(tmp / STATE_TENSORS), metadata={"format": STATE_FORMAT})
        payload = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "trainer": _jsonable(state or {}),
            "optimizer": opt_meta,
            "scaler": _jsonable(scaler.state_dict()) if scaler is not None and scaler.is_enabled() else None,
            "rng": rng_meta,
        }
        (tmp / STATE_JSON).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    replace_folder(tmp, final)
    return final


def load_training_state(folder: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read ``training_state.safetensors`` and ``training_state.json`` of a checkpoint folder."""
    from safetensors.torch import load_file

    folder = Path(folder)
    tpath, jpath = folder / STATE_TENSORS, folder / STATE_JSON
    if not tpath.is_file() or not jpath.is_file():
        raise DeePAQError(f"'{folder}' holds no training state to resume from.")
    try:
        payload = json.loads(jpath.read_text(encoding="utf-8"))
        tensors = load_file(str(tpath))
    except Exception as exc:  # corrupt files: several exception types
        raise DeePAQError(f"The training state in '{folder}' cannot be read ({exc.__class__.__name__}).") from exc
    if payload.get("format") != STATE_FORMAT or int(payload.get("version", 0)) > STATE_VERSION:
        raise DeePAQError(f"'{jpath}' is not a training state this version can read.")
    payload["trainer"] = _unjson(payload.get("trainer", {}))
    return tensors, payload


def load_weights(model, folder: str | os.PathLike, *, include_backbone: bool) -> None:
    """Load a checkpoint's bundle weights into ``model`` (as built from the same config)."""
    from safetensors.torch import load_file

    from deepaq_core.model.bundle import WEIGHTS_FILE

    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise DeePAQError(f"The checkpoint '{folder}' has no {WEIGHTS_FILE}.")
    stored = load_file(str(path))
    own = model.state_dict()
    expected = {k for k in own if include_backbone or not k.startswith("backbone.") or "lora_" in k}
    missing = sorted(expected - stored.keys())
    unexpected = sorted(stored.keys() - own.keys())
    if missing or unexpected:
        raise DeePAQError(f"The checkpoint '{folder}' does not fit the configured model "
                          f"(missing: {missing[:3]}, unexpected: {unexpected[:3]}).")
    with torch.no_grad():
        for key, value in stored.items():
            own[key].copy_(value.to(dtype=own[key].dtype))


__all__ = [
    "STATE_JSON",
    "STATE_TENSORS",
    "load_training_state",
    "load_weights",
    "optimizer_from_flat",
    "optimizer_to_flat",
    "replace_folder",
    "rng_from_flat",
    "rng_to_flat",
    "save_checkpoint",
]
