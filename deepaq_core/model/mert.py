"""MERT (m-a-p/MERT-v1-95M, MERT-v1-330M) run on transformers' stock ``HubertModel``.

MERT is published with custom modelling code (``MERTModel``/``MERTConfig``, loaded through
``trust_remote_code``). DeePAQ never executes downloaded code: with ``feature_extractor_cqt=false``,
``deepnorm=false`` and ``attention_relax<=0`` MERT is architecturally identical to
``transformers.HubertModel`` with ``feat_proj_layer_norm=True``, so this module

* translates MERT's ``config.json`` into a :class:`transformers.HubertConfig` (a whitelist of fields),
* renames the checkpoint's keys (old ``torch.nn.utils.weight_norm`` names ``weight_g``/``weight_v``
  of the positional convolution -> ``parametrizations.weight.original0``/``original1``),
* loads the weights strictly (safetensors, or ``torch.load(weights_only=True)`` for ``.bin``),
* wraps the result as a :class:`~deepaq_core.model.backbone.Backbone` that applies MERT's input
  normalisation (``Wav2Vec2FeatureExtractor`` with ``do_normalize``) itself.

It can also write a HubertModel back in MERT's own on-disk format, which the tests use to build tiny
MERT folders without network access.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from deepaq_core.errors import ModelError
from deepaq_core.model.backbone import Backbone

if TYPE_CHECKING:  # pragma: no cover - typing only; transformers is imported lazily
    from transformers import HubertConfig, HubertModel

logger = logging.getLogger(__name__)

#: Hub id -> pinned revision. A pin must be a full 40-hex commit SHA so that scores cannot change
#: when the upstream repository does; the SHAs could not be looked up when this was written (no
#: hub access) and must not be guessed, so these are the branch "main" and loading them from the
#: hub logs a warning until real commit SHAs are filled in.
MERT_REVISIONS: dict[str, str] = {
    "m-a-p/MERT-v1-95M": "main",
    "m-a-p/MERT-v1-330M": "main",
}

DEFAULT_MERT_ID = "m-a-p/MERT-v1-95M"

CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
BIN_FILE = "pytorch_model.bin"

# Files fetched from the hub. Never "*.py": the custom MERT code is not needed and must never land on
# disk next to the weights where another tool might execute it. Weights are fetched in a second step
# so that a repository holding both formats does not cost two downloads of the same weights.
HUB_CONFIG_PATTERNS: tuple[str, ...] = (CONFIG_FILE, PREPROCESSOR_FILE)
HUB_SAFETENSORS_PATTERNS: tuple[str, ...] = (SAFETENSORS_FILE, "model-*-of-*.safetensors", SAFETENSORS_INDEX_FILE)
HUB_BIN_PATTERNS: tuple[str, ...] = (BIN_FILE,)

# MERTConfig fields that HubertConfig understands with the same meaning; everything else is ignored.
_HUBERT_FIELDS: tuple[str, ...] = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "hidden_act", "hidden_dropout", "activation_dropout", "attention_dropout", "feat_proj_layer_norm",
    "feat_proj_dropout", "final_dropout", "layerdrop", "initializer_range", "layer_norm_eps",
    "feat_extract_norm", "feat_extract_activation", "conv_dim", "conv_stride", "conv_kernel", "conv_bias",
    "conv_pos_batch_norm", "num_conv_pos_embeddings", "num_conv_pos_embedding_groups",
    "do_stable_layer_norm", "apply_spec_augment", "mask_time_prob", "mask_time_length",
    "mask_time_min_masks", "mask_feature_prob", "mask_feature_length", "mask_feature_min_masks",
    "ctc_loss_reduction", "ctc_zero_infinity", "use_weighted_layer_sum", "classifier_proj_size",
    "pad_token_id", "bos_token_id", "eos_token_id",
)
# Fields that are understood but not copied (checked separately or pure bookkeeping).
_KNOWN_OTHER_FIELDS: frozenset[str] = frozenset({
    "feature_extractor_cqt", "feature_extractor_cqt_bins", "deepnorm", "attention_relax", "sample_rate",
    "num_feat_extract_layers", "architectures", "auto_map", "model_type", "torch_dtype", "dtype",
    "transformers_version", "_name_or_path",
})
# Fields compared by write_mert_checkpoint to make sure a config describes the model being written.
_ARCH_FIELDS: tuple[str, ...] = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "conv_dim",
    "conv_stride", "conv_kernel", "conv_bias", "feat_extract_norm", "feat_proj_layer_norm",
    "num_conv_pos_embeddings", "num_conv_pos_embedding_groups", "do_stable_layer_norm",
)

# Single prefixes a re-saved checkpoint may carry (MERT's base_model_prefix, HuBERT's, DDP, Lightning).
_KNOWN_PREFIXES: tuple[str, ...] = ("mert_model.", "hubert.", "module.", "model.")

# Old-style weight norm names (what MERT's checkpoints use) <-> torch.nn.utils.parametrizations names.
_WEIGHT_NORM_RENAMES: tuple[tuple[str, str], ...] = (
    (".weight_g", ".parametrizations.weight.original0"),
    (".weight_v", ".parametrizations.weight.original1"),
)

# Training-only SpecAugment vector; unused at inference and in DeePAQ training (spec augment is off).
_MASK_EMBED = "masked_spec_embed"

# Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm adds this to the variance.
_NORM_EPS = 1e-7

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$")


# ----------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------


def mert_95m_config() -> dict[str, Any]:
    """Return the fields of MERT-v1-95M's ``config.json`` (hub id ``m-a-p/MERT-v1-95M``).

    The architecture fields (sizes, convolution stack, norms) are those of the published model.
    Training-only fields (dropouts, layer drop, SpecAugment probabilities) are ``MERTConfig``'s
    defaults; they do not affect inference and may differ from the published file.

    Returns
    -------
    dict
        A fresh MERT-format config dict (``model_type="mert_model"``, 24 kHz, 768 wide,
        12 layers, 7 convolutions with a total stride of 320 samples = 75 frames/s).
    """
    return {
        "_name_or_path": DEFAULT_MERT_ID,
        "activation_dropout": 0.1,
        "apply_spec_augment": True,
        "architectures": ["MERTModel"],
        "attention_dropout": 0.1,
        "attention_relax": -1.0,
        "auto_map": {
            "AutoConfig": "configuration_MERT.MERTConfig",
            "AutoModel": "modeling_MERT.MERTModel",
        },
        "bos_token_id": 1,
        "classifier_proj_size": 256,
        "conv_bias": False,
        "conv_dim": [512, 512, 512, 512, 512, 512, 512],
        "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
        "conv_stride": [5, 2, 2, 2, 2, 2, 2],
        "ctc_loss_reduction": "sum",
        "ctc_zero_infinity": False,
        "deepnorm": False,
        "do_stable_layer_norm": False,
        "eos_token_id": 2,
        "feat_extract_activation": "gelu",
        "feat_extract_norm": "group",
        "feat_proj_dropout": 0.0,
        "feat_proj_layer_norm": True,
        "feature_extractor_cqt": False,
        "feature_extractor_cqt_bins": 336,
        "final_dropout": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout": 0.1,
        "hidden_size": 768,
        "initializer_range": 0.02,
        "intermediate_size": 3072,
        "layer_norm_eps": 1e-05,
        "layerdrop": 0.1,
        "mask_feature_length": 10,
        "mask_feature_min_masks": 0,
        "mask_feature_prob": 0.0,
        "mask_time_length": 10,
        "mask_time_min_masks": 2,
        "mask_time_prob": 0.05,
        "model_type": "mert_model",
        "num_attention_heads": 12,
        "num_conv_pos_embedding_groups": 16,
        "num_conv_pos_embeddings": 128,
        "num_feat_extract_layers": 7,
        "num_hidden_layers": 12,
        "pad_token_id": 0,
        "sample_rate": 24000,
        "torch_dtype": "float32",
        "transformers_version": "4.25.1",
        "use_weighted_layer_sum": False,
        "vocab_size": 32,
    }


def tiny_mert_config(**overrides: Any) -> dict[str, Any]:
    """Return a MERT-format config for a tiny random model (tests, smoke runs).

    It keeps MERT's convolution strides and kernels, so 24 kHz audio still gives 75 frames/s with
    a 400-sample receptive field, but is 32 wide with 2 layers of 2 heads.

    Parameters
    ----------
    **overrides
        Config fields to replace (any MERT ``config.json`` field).

    Returns
    -------
    dict
        A MERT-format config dict (``model_type="mert_model"``).
    """
    cfg = mert_95m_config()
    cfg.pop("_name_or_path", None)
    cfg.update(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=[32] * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
    )
    cfg.update(copy.deepcopy(overrides))
    if "num_feat_extract_layers" not in overrides:
        cfg["num_feat_extract_layers"] = len(cfg["conv_dim"])
    return cfg


def mert_config_to_hubert(cfg: dict[str, Any]) -> "HubertConfig":
    """Translate a MERT ``config.json`` dict into an equivalent :class:`transformers.HubertConfig`.

    Only whitelisted fields are copied. ``output_hidden_states`` is forced on, ``layerdrop`` to 0
    (a dropped layer would change the number of hidden states, which the head relies on) and
    ``apply_spec_augment`` off (masking frames while fine-tuning would hide the very degradations a
    quality metric must see). Dropout probabilities are copied; they only act in ``train()`` mode.

    Parameters
    ----------
    cfg : dict
        Parsed MERT (``model_type="mert_model"``) or HuBERT (``"hubert"``) ``config.json``.

    Returns
    -------
    transformers.HubertConfig

    Raises
    ------
    ModelError
        If the config is not a MERT/HuBERT config, uses a MERT variant HubertModel cannot run
        (CQT features, DeepNorm, attention relaxation) or holds invalid values.
    """
    from transformers import HubertConfig

    if not isinstance(cfg, dict):
        raise ModelError("The MERT config is not a JSON object.")
    model_type = cfg.get("model_type")
    if model_type not in ("mert_model", "hubert"):
        raise ModelError(
            f"The model config has model_type '{model_type}', but only MERT ('mert_model') and HuBERT "
            "('hubert') models are supported."
        )
    if cfg.get("feature_extractor_cqt"):
        raise ModelError(
            "This MERT variant uses a CQT feature extractor (feature_extractor_cqt), which is not supported."
        )
    if cfg.get("deepnorm"):
        raise ModelError("This MERT variant uses DeepNorm residual scaling (deepnorm), which is not supported.")
    relax = cfg.get("attention_relax")
    try:
        relax_value = float(relax) if relax is not None else -1.0
    except (TypeError, ValueError):
        raise ModelError(f"The MERT config has an invalid attention_relax value {relax!r}.") from None
    if relax_value > 0:
        raise ModelError("This MERT variant uses attention relaxation (attention_relax > 0), which is not supported.")
    conv_dim = cfg.get("conv_dim")
    n_layers = cfg.get("num_feat_extract_layers")
    if n_layers is not None and isinstance(conv_dim, (list, tuple)) and n_layers != len(conv_dim):
        raise ModelError(
            f"The MERT config is inconsistent: num_feat_extract_layers is {n_layers} but conv_dim has "
            f"{len(conv_dim)} entries."
        )

    ignored = sorted(k for k in cfg if k not in _HUBERT_FIELDS and k not in _KNOWN_OTHER_FIELDS)
    if ignored:
        logger.debug("Ignoring config fields HubertModel does not use: %s", ", ".join(ignored))

    kwargs = {k: copy.deepcopy(cfg[k]) for k in _HUBERT_FIELDS if k in cfg}
    for key in ("conv_dim", "conv_stride", "conv_kernel"):
        if isinstance(kwargs.get(key), tuple):
            kwargs[key] = list(kwargs[key])
    kwargs.update(output_hidden_states=True, layerdrop=0.0, apply_spec_augment=False)
    try:
        return HubertConfig(**kwargs)
    except Exception as exc:  # strict dataclass validation raises several exception types
        raise ModelError(f"The MERT config holds invalid values ({exc}).") from exc


def conv_receptive_field(kernels: list[int] | tuple[int, ...], strides: list[int] | tuple[int, ...]) -> tuple[int, int]:
    """Receptive field and hop of a stack of unpadded 1-D convolutions.

    Parameters
    ----------
    kernels, strides : sequence of int
        Kernel sizes and strides, first layer first (samples / frames of the previous layer).

    Returns
    -------
    receptive_field : int
        Input samples that make up one output frame (MERT: 400).
    hop_length : int
        Input samples between consecutive output frames (MERT: 320).

    Notes
    -----
    For such a stack the output length is exactly ``(n - receptive_field) // hop_length + 1``
    for ``n >= receptive_field`` (nested floors of integer divisions compose).
    """
    receptive_field, hop = 1, 1
    for kernel, stride in zip(kernels, strides):
        receptive_field += (int(kernel) - 1) * hop
        hop *= int(stride)
    return receptive_field, hop


# ----------------------------------------------------------------------------------------------
# State dicts
# ----------------------------------------------------------------------------------------------


def _strip_prefix(sd: dict[str, torch.Tensor], own_keys: set[str]) -> dict[str, torch.Tensor]:
    """Strip one known prefix (``mert_model.``, ``hubert.``, ...) if the checkpoint carries it."""
    top_level = {k.split(".", 1)[0] for k in own_keys}
    best, best_count = None, 0
    for prefix in _KNOWN_PREFIXES:
        if prefix[:-1] in top_level:
            continue  # a real submodule name, not a wrapper prefix
        count = sum(1 for k in sd if k.startswith(prefix))
        if count > best_count:
            best, best_count = prefix, count
    if best is None:
        return dict(sd)
    logger.debug("Stripping the prefix '%s' from %d checkpoint keys", best, best_count)
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        new = key[len(best):] if key.startswith(best) else key
        if new in out:
            raise ModelError(
                f"The MERT checkpoint holds the weight '{new}' twice (with and without the prefix '{best}')."
            )
        out[new] = value
    return out


def convert_mert_state_dict(sd: dict[str, torch.Tensor], model: "HubertModel") -> dict[str, torch.Tensor]:
    """Rename a MERT checkpoint's keys to the names ``model`` (a HubertModel) expects.

    Strips one known wrapper prefix, maps the positional convolution's old weight-norm names
    (``weight_g``/``weight_v``) to ``parametrizations.weight.original0``/``original1`` (or back, if
    the model uses old-style weight norm) and reconciles ``masked_spec_embed``. Every other key is
    passed through unchanged, so a stray or missing key is caught by the strict load.

    Parameters
    ----------
    sd : dict of str to Tensor
        The checkpoint's state dict.
    model : transformers.HubertModel
        The model the weights are meant for.

    Returns
    -------
    dict of str to Tensor
        A new dict (tensors are shared, not copied).

    Notes
    -----
    ``masked_spec_embed`` is SpecAugment's mask vector, which exists in the model only when
    ``mask_time_prob > 0`` or ``mask_feature_prob > 0`` and is never used here (spec augment is
    off). A checkpoint that has it for a model that does not is logged and dropped; a model that
    has it while the checkpoint does not gets zeros, also logged.
    """
    own = model.state_dict()
    own_keys = set(own)
    out = _strip_prefix(sd, own_keys)

    renamed: dict[str, torch.Tensor] = {}
    for key, value in out.items():
        new = key
        for old_suffix, new_suffix in _WEIGHT_NORM_RENAMES:
            if key.endswith(old_suffix):
                candidate = key[: -len(old_suffix)] + new_suffix
                if candidate in own_keys and key not in own_keys:
                    new = candidate
            elif key.endswith(new_suffix):
                candidate = key[: -len(new_suffix)] + old_suffix
                if candidate in own_keys and key not in own_keys:
                    new = candidate
        if new in renamed:
            raise ModelError(f"The MERT checkpoint holds the weight '{new}' twice under different names.")
        renamed[new] = value

    if _MASK_EMBED in renamed and _MASK_EMBED not in own_keys:
        logger.info("Dropping '%s' from the checkpoint: the config disables SpecAugment masking", _MASK_EMBED)
        del renamed[_MASK_EMBED]
    elif _MASK_EMBED in own_keys and _MASK_EMBED not in renamed:
        logger.info("The checkpoint has no '%s' (SpecAugment mask vector, unused here); using zeros", _MASK_EMBED)
        renamed[_MASK_EMBED] = torch.zeros_like(own[_MASK_EMBED])
    return renamed


def _hubert_to_mert_state_dict(model: "HubertModel") -> dict[str, torch.Tensor]:
    """A HubertModel's weights under MERT's checkpoint names (weight_g/weight_v), contiguous CPU copies."""
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        for old_suffix, new_suffix in _WEIGHT_NORM_RENAMES:
            if key.endswith(new_suffix):
                key = key[: -len(new_suffix)] + old_suffix
        out[key] = value.detach().to("cpu").contiguous().clone()
    return out


def _few(keys: list[str], n: int = 3) -> str:
    """'a', 'b', 'c' and 4 more."""
    shown = ", ".join(f"'{k}'" for k in keys[:n])
    return shown + (f" and {len(keys) - n} more" if len(keys) > n else "")


def _load_strict(model: "HubertModel", sd: dict[str, torch.Tensor], label: str) -> None:
    """Load ``sd`` into ``model`` requiring identical key sets and shapes (ModelError otherwise)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected {_few(unexpected)}")
        raise ModelError(f"The MERT weights in '{label}' do not match its config ({'; '.join(parts)}).")
    wrong = [k for k in own if tuple(own[k].shape) != tuple(sd[k].shape)]
    if wrong:
        k = wrong[0]
        more = f", and {len(wrong) - 1} more mis-shaped" if len(wrong) > 1 else ""
        raise ModelError(
            f"The MERT weights in '{label}' do not match its config ('{k}' has shape {tuple(sd[k].shape)}, "
            f"expected {tuple(own[k].shape)}{more})."
        )
    model.load_state_dict(sd, strict=True)


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"The {what} '{path}' cannot be read ({exc}).") from exc
    if not isinstance(data, dict):
        raise ModelError(f"The {what} '{path}' is not a JSON object.")
    return data


def _check_tensor_dict(sd: Any, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise ModelError(f"The MERT weights file '{path}' is not a flat dictionary of tensors.")
    return sd


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise ModelError(f"The MERT weights file '{path}' cannot be read ({exc}).") from exc


def _load_weights(folder: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """Read a folder's weights: model.safetensors, sharded safetensors, else pytorch_model.bin."""
    single = folder / SAFETENSORS_FILE
    index = folder / SAFETENSORS_INDEX_FILE
    binary = folder / BIN_FILE
    if single.is_file():
        return _load_safetensors(single), single
    if index.is_file():
        weight_map = _read_json(index, "MERT weights index").get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelError(f"The MERT weights index '{index}' has no weight_map.")
        sd: dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            # Only plain file names inside the folder: an index must not point elsewhere on disk.
            if not isinstance(shard, str) or Path(shard).name != shard:
                raise ModelError(f"The MERT weights index '{index}' names an invalid shard {shard!r}.")
            if not (folder / shard).is_file():
                raise ModelError(f"The MERT weights shard '{folder / shard}' is missing.")
            sd.update(_load_safetensors(folder / shard))
        return sd, index
    if binary.is_file():
        try:
            # weights_only=True: a .bin is a pickle, and a full unpickle could run arbitrary code.
            sd = torch.load(binary, map_location="cpu", weights_only=True)
        except Exception as exc:  # UnpicklingError, RuntimeError, EOFError, ... for bad files
            raise ModelError(
                f"The MERT weights file '{binary}' is not a plain PyTorch tensor checkpoint and was refused ({exc})."
            ) from exc
        return _check_tensor_dict(sd, binary), binary
    raise ModelError(f"The MERT folder '{folder}' has no weights file ({SAFETENSORS_FILE} or {BIN_FILE}).")


def _has_weights(folder: Path) -> bool:
    return any((folder / name).is_file() for name in (SAFETENSORS_FILE, SAFETENSORS_INDEX_FILE, BIN_FILE))


def _is_commit(revision: str | None) -> bool:
    return revision is not None and bool(_COMMIT_RE.match(revision))


def _download(repo_id: str, revision: str, cache_dir: str | os.PathLike | None, local_files_only: bool) -> Path:
    """Fetch config + weights of ``repo_id`` at ``revision`` into the hub cache; return the snapshot folder."""
    import huggingface_hub
    from huggingface_hub import errors as hf_errors

    if not _is_commit(revision):
        logger.warning(
            "Loading '%s' at the unpinned revision '%s': the weights, and so the scores, can change upstream; "
            "pin a 40-hex commit for reproducible results",
            repo_id,
            revision,
        )

    def fetch(patterns: tuple[str, ...], rev: str) -> Path:
        return Path(
            huggingface_hub.snapshot_download(
                repo_id,
                revision=rev,
                allow_patterns=list(patterns),
                cache_dir=cache_dir,
                local_files_only=local_files_only,
            )
        )

    try:
        folder = fetch(HUB_CONFIG_PATTERNS + HUB_SAFETENSORS_PATTERNS, revision)
        if not _has_weights(folder):
            # Second step from the commit just resolved, so config and weights cannot come from
            # two different commits of a moving branch.
            commit = folder.name if _is_commit(folder.name) else revision
            folder = fetch(HUB_CONFIG_PATTERNS + HUB_BIN_PATTERNS, commit)
    except hf_errors.RevisionNotFoundError as exc:
        raise ModelError(f"The revision '{revision}' of the MERT model '{repo_id}' does not exist on the hub.") from exc
    except hf_errors.GatedRepoError as exc:
        raise ModelError(
            f"The MERT model '{repo_id}' is gated on the hub; accept its terms and log in, or pass a local folder."
        ) from exc
    except hf_errors.RepositoryNotFoundError as exc:
        raise ModelError(
            f"The MERT model '{repo_id}' does not exist on the hub (or is private); pass a local folder."
        ) from exc
    except (
        hf_errors.LocalEntryNotFoundError,
        hf_errors.OfflineModeIsEnabled,
        hf_errors.HfHubHTTPError,
        OSError,  # connection and cache-folder errors
    ) as exc:
        logger.debug("snapshot_download(%s, revision=%s) failed: %r", repo_id, revision, exc)
        raise ModelError(
            f"MERT weights for '{repo_id}' are not available: the hub cannot be reached and no local copy was found; "
            "pass a local folder."
        ) from exc
    except hf_errors.HFValidationError as exc:
        raise ModelError(f"'{repo_id}' is neither a local MERT folder nor a valid hub model id.") from exc
    return folder


def _looks_like_hub_id(source: str) -> bool:
    return bool(_HUB_ID_RE.match(source)) and ".." not in source


def load_mert_hubert(
    source: str | os.PathLike = DEFAULT_MERT_ID,
    revision: str | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
) -> tuple["HubertModel", dict[str, Any]]:
    """Load MERT weights into a stock ``transformers.HubertModel`` (never running the hub's code).

    Parameters
    ----------
    source : str or os.PathLike
        A local folder (``config.json`` plus ``model.safetensors`` or ``pytorch_model.bin``, MERT's
        own format; ``preprocessor_config.json`` optional) or a hub id such as
        ``"m-a-p/MERT-v1-95M"``. An existing folder always wins over a hub id of the same name.
    revision : str or None
        Hub revision (ideally a 40-hex commit). ``None`` uses :data:`MERT_REVISIONS` for known ids,
        else ``"main"``; unpinned revisions log a warning. Ignored for local folders.
    cache_dir : str or os.PathLike or None
        Hugging Face cache folder (hub ids only); ``None`` uses the default cache.
    local_files_only : bool
        Use only the hub cache, never the network (hub ids only).

    Returns
    -------
    model : transformers.HubertModel
        On CPU, float32, in eval mode.
    metadata : dict
        ``source``, ``revision`` (requested; ``None`` for folders), ``commit`` (resolved 40-hex
        snapshot commit, or ``None``), ``folder``, ``config`` (the MERT config dict as read),
        ``weights_file``, ``sample_rate`` (Hz) and ``do_normalize``.

    Raises
    ------
    ModelError
        If the source cannot be found or fetched, the config is unsupported, or the weights do not
        match the config exactly (any missing, unexpected or mis-shaped key).
    """
    from transformers import HubertModel

    text = os.fspath(source)
    path = Path(text).expanduser()
    commit: str | None = None
    if path.is_dir():
        folder = path
        if revision is not None:
            logger.debug("Ignoring revision %r for the local MERT folder %s", revision, folder)
        revision = None
    elif path.exists():
        raise ModelError(f"The MERT source '{text}' is a file, but a model folder or a hub id is needed.")
    elif _looks_like_hub_id(text):
        revision = revision or MERT_REVISIONS.get(text, "main")
        folder = _download(text, revision, cache_dir, local_files_only)
        commit = folder.name if _is_commit(folder.name) else None
    else:
        raise ModelError(f"The MERT folder '{text}' does not exist.")

    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise ModelError(f"The MERT folder '{folder}' has no {CONFIG_FILE}.")
    mert_cfg = _read_json(config_path, "MERT config")
    hubert_cfg = mert_config_to_hubert(mert_cfg)

    do_normalize = True
    pre_rate = None
    pre_path = folder / PREPROCESSOR_FILE
    if pre_path.is_file():
        pre = _read_json(pre_path, "MERT preprocessor config")
        do_normalize = bool(pre.get("do_normalize", True))
        pre_rate = pre.get("sampling_rate")
    cfg_rate = mert_cfg.get("sample_rate")
    if cfg_rate is not None and pre_rate is not None and int(cfg_rate) != int(pre_rate):
        raise ModelError(
            f"The MERT folder '{folder}' is inconsistent: config.json says {cfg_rate} Hz but "
            f"{PREPROCESSOR_FILE} says {pre_rate} Hz."
        )
    sample_rate = int(cfg_rate if cfg_rate is not None else pre_rate if pre_rate is not None else 24000)

    sd, weights_file = _load_weights(folder)
    model = HubertModel(hubert_cfg)
    _load_strict(model, convert_mert_state_dict(sd, model), str(weights_file))
    model.eval()
    logger.info(
        "Loaded MERT from %s (%d layers, %d wide, %d Hz, weights %s)",
        text,
        hubert_cfg.num_hidden_layers,
        hubert_cfg.hidden_size,
        sample_rate,
        weights_file.name,
    )
    metadata = {
        "source": text,
        "revision": revision,
        "commit": commit,
        "folder": str(folder),
        "config": mert_cfg,
        "weights_file": str(weights_file),
        "sample_rate": sample_rate,
        "do_normalize": do_normalize,
    }
    return model, metadata


def write_mert_checkpoint(
    model: "HubertModel",
    folder: str | os.PathLike,
    mert_config: dict[str, Any],
    *,
    fmt: str = "bin",
    do_normalize: bool = True,
) -> Path:
    """Write ``model`` as a folder in MERT's own on-disk format.

    Writes ``config.json`` (MERT's fields, ``model_type="mert_model"``, ``architectures`` and
    ``auto_map`` as published, though no ``.py`` files are written or ever needed here),
    ``preprocessor_config.json`` (``Wav2Vec2FeatureExtractor``) and the weights under MERT's key
    names (positional convolution as ``weight_g``/``weight_v``).

    Parameters
    ----------
    model : transformers.HubertModel
        The model to write; its architecture must match ``mert_config``.
    folder : str or os.PathLike
        Output folder, created if needed; existing files of the same names are replaced.
    mert_config : dict
        MERT-format config (e.g. :func:`tiny_mert_config`); bookkeeping fields are filled in.
    fmt : {"bin", "safetensors"}
        ``pytorch_model.bin`` (a pickled dict of tensors, as MERT publishes) or ``model.safetensors``.
    do_normalize : bool
        Written to ``preprocessor_config.json``.

    Returns
    -------
    pathlib.Path
        The folder.
    """
    import transformers

    if fmt not in ("bin", "safetensors"):
        raise ValueError(f"fmt must be 'bin' or 'safetensors', not {fmt!r}")
    cfg = copy.deepcopy(dict(mert_config))
    cfg["model_type"] = "mert_model"
    cfg["architectures"] = ["MERTModel"]
    cfg["auto_map"] = {"AutoConfig": "configuration_MERT.MERTConfig", "AutoModel": "modeling_MERT.MERTModel"}
    cfg.setdefault("sample_rate", 24000)
    cfg.setdefault("torch_dtype", "float32")
    cfg.setdefault("transformers_version", transformers.__version__)
    cfg.setdefault("feature_extractor_cqt", False)
    cfg.setdefault("deepnorm", False)
    cfg.setdefault("attention_relax", -1.0)
    if "conv_dim" in cfg:
        cfg["num_feat_extract_layers"] = len(cfg["conv_dim"])
    expected = mert_config_to_hubert(cfg)
    for field in _ARCH_FIELDS:
        ours, theirs = getattr(model.config, field), getattr(expected, field)
        if (list(ours) if isinstance(ours, (list, tuple)) else ours) != (
            list(theirs) if isinstance(theirs, (list, tuple)) else theirs
        ):
            raise ValueError(f"mert_config does not describe this model: {field} is {theirs!r} there, {ours!r} here")

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    preprocessor = {
        "do_normalize": bool(do_normalize),
        "feature_extractor_type": "Wav2Vec2FeatureExtractor",
        "feature_size": 1,
        "padding_side": "right",
        "padding_value": 0.0,
        "return_attention_mask": True,
        "sampling_rate": int(cfg["sample_rate"]),
    }
    (out / PREPROCESSOR_FILE).write_text(json.dumps(preprocessor, indent=2) + "\n", encoding="utf-8")
    sd = _hubert_to_mert_state_dict(model)
    if fmt == "bin":
        torch.save(sd, out / BIN_FILE)
    else:
        from safetensors.torch import save_file

        save_file(sd, str(out / SAFETENSORS_FILE), metadata={"format": "pt"})
    return out


# ----------------------------------------------------------------------------------------------
# Backbone
# ----------------------------------------------------------------------------------------------


class MertBackbone(Backbone):
    """MERT (as a HubertModel) behind the :class:`Backbone` interface.

    Parameters
    ----------
    hubert : transformers.HubertModel
        E.g. from :func:`load_mert_hubert`. Its ``layerdrop`` is set to 0 and SpecAugment
        switched off if they are not already (both would make training-mode outputs ragged).
    sample_rate : int
        Input rate, Hz (MERT: 24000).
    do_normalize : bool
        Normalise every item of a batch to zero mean and unit variance before the model, as MERT's
        ``Wav2Vec2FeatureExtractor`` does (``do_normalize: true`` in its preprocessor config).
    name : str
        Identifier for logs and model cards.

    Notes
    -----
    ``forward`` returns ``num_hidden_layers + 1`` tensors: the input of the first transformer
    layer (feature projection plus positional convolution), then every layer's output, i.e. what
    MERT's own code returns as ``hidden_states``. For stable-layer-norm models (MERT-v1-330M) the
    last entry is the final layer-normed output, as in the transformers release MERT was built on;
    current transformers returns it before the final layer norm, so it is replaced here.
    """

    def __init__(
        self, hubert: "HubertModel", *, sample_rate: int = 24000, do_normalize: bool = True, name: str = "mert"
    ) -> None:
        super().__init__()
        cfg = hubert.config
        if getattr(cfg, "layerdrop", 0.0) > 0 or getattr(cfg, "apply_spec_augment", False):
            logger.info("Disabling layerdrop and SpecAugment of the MERT model (they would make outputs ragged)")
            cfg.layerdrop = 0.0
            cfg.apply_spec_augment = False
        self.hubert = hubert
        self.name = name
        self.sample_rate = int(sample_rate)
        self.receptive_field, self.hop_length = conv_receptive_field(cfg.conv_kernel, cfg.conv_stride)
        self.hidden_size = int(cfg.hidden_size)
        self.num_hidden_states = int(cfg.num_hidden_layers) + 1
        self.do_normalize = bool(do_normalize)
        self._last_is_final_norm = bool(cfg.do_stable_layer_norm)
        self.metadata: dict[str, Any] = {}

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike = DEFAULT_MERT_ID,
        revision: str | None = None,
        *,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        name: str | None = None,
    ) -> "MertBackbone":
        """Load MERT with :func:`load_mert_hubert` and wrap it; ``metadata`` keeps the load details.

        Parameters
        ----------
        source, revision, cache_dir, local_files_only
            As for :func:`load_mert_hubert`.
        name : str or None
            Backbone name; defaults to ``source``.

        Returns
        -------
        MertBackbone
            In eval mode.
        """
        hubert, meta = load_mert_hubert(source, revision, cache_dir=cache_dir, local_files_only=local_files_only)
        backbone = cls(
            hubert,
            sample_rate=meta["sample_rate"],
            do_normalize=meta["do_normalize"],
            name=name or os.fspath(source),
        )
        backbone.metadata = meta
        return backbone.eval()

    def forward(self, wave: torch.Tensor) -> list[torch.Tensor]:
        """Hidden states of every layer.

        Parameters
        ----------
        wave : Tensor, shape [B, N]
            Mono audio at :attr:`sample_rate` (24 kHz), ``N >= receptive_field`` (400 samples).

        Returns
        -------
        list of Tensor
            ``num_hidden_states`` tensors of shape [B, T, hidden_size],
            ``T = (N - 400) // 320 + 1`` for MERT (75 frames/s).
        """
        if wave.dim() != 2:
            raise ValueError(f"wave must have shape [B, N], got {tuple(wave.shape)}")
        if wave.shape[-1] < self.receptive_field:
            raise ValueError(
                f"wave has {wave.shape[-1]} samples, fewer than the receptive field ({self.receptive_field})"
            )
        x = wave.float()
        if self.do_normalize:
            # Per item, over the whole chunk, as Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm (population variance).
            mean = x.mean(dim=-1, keepdim=True)
            var = x.var(dim=-1, keepdim=True, unbiased=False)
            x = (x - mean) / torch.sqrt(var + _NORM_EPS)
        dtype = self.hubert.feature_projection.projection.weight.dtype
        out = self.hubert(x.to(dtype), output_hidden_states=True, return_dict=True)
        states = list(out.hidden_states)
        if self._last_is_final_norm:
            states[-1] = out.last_hidden_state
        if len(states) != self.num_hidden_states:
            raise RuntimeError(f"MERT returned {len(states)} hidden states, expected {self.num_hidden_states}")
        return states

    def freeze_feature_encoder(self) -> None:
        """Stop gradients into the convolutional feature encoder (its weights stay fixed in training)."""
        encoder = self.hubert.feature_extractor
        if hasattr(encoder, "_freeze_parameters"):
            # Also clears the encoder's flag that would otherwise make the input require grad in train().
            encoder._freeze_parameters()
        else:  # pragma: no cover - older/newer transformers without the private helper
            for p in encoder.parameters():
                p.requires_grad_(False)
