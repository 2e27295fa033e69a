"""LoRA adapters for a backbone (a plain ``torch.nn.Module``), via peft.

The adapters go on the attention projections (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``) and
optionally on the feed-forward layers; everything else in the backbone is frozen. Adapter weights
are saved on their own (a small safetensors file with the settings in its metadata), so a fine-tuned
MERT is distributed as "hub id + pinned revision + adapter", never as a copy of MERT's weights.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from deepaq_core.errors import ModelError

logger = logging.getLogger(__name__)

ATTENTION_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj")
FFN_TARGETS: tuple[str, ...] = ("intermediate_dense", "output_dense")

#: safetensors metadata key that marks a DeePAQ adapter file and the key holding its settings.
ADAPTER_FORMAT = "deepaq-lora"
_SETTINGS_ATTR = "_deepaq_lora_settings"


@dataclass(frozen=True)
class LoraSettings:
    """Shape of the LoRA adapters.

    Attributes
    ----------
    rank : int
        Rank r of each low-rank update ``B @ A`` (A: [r, in], B: [out, r]).
    alpha : int
        Scale numerator; the update is multiplied by ``alpha / rank``.
    dropout : float
        Dropout probability on the adapter input during training, in [0, 1).
    target_ffn : bool
        Also adapt the feed-forward layers (``intermediate_dense``, ``output_dense``), not only the
        attention projections.
    """

    rank: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_ffn: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank < 1:
            raise ModelError(f"The LoRA rank must be a positive integer, not {self.rank!r}.")
        if not self.alpha > 0:
            raise ModelError(f"The LoRA alpha must be positive, not {self.alpha!r}.")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ModelError(f"The LoRA dropout must be in [0, 1), not {self.dropout!r}.")

    @property
    def target_modules(self) -> tuple[str, ...]:
        """Names (last path component) of the ``nn.Linear`` layers that get adapters."""
        return ATTENTION_TARGETS + (FFN_TARGETS if self.target_ffn else ())

    def to_dict(self) -> dict:
        """Plain dict (model cards, adapter metadata)."""
        return asdict(self)


def _is_lora_key(name: str) -> bool:
    """True for parameter/state-dict names that belong to a LoRA adapter (``...lora_A.default.weight``)."""
    return any(part.startswith("lora_") for part in name.split("."))


def _find_settings(module: torch.nn.Module) -> LoraSettings:
    for sub in module.modules():
        settings = getattr(sub, _SETTINGS_ATTR, None)
        if isinstance(settings, LoraSettings):
            return settings
    raise ValueError("the module has no LoRA adapters; call add_lora first")


def _target_names(backbone: torch.nn.Module, settings: LoraSettings) -> list[str]:
    """Full names of the Linear layers to adapt."""
    wanted = set(settings.target_modules)
    names = []
    for name, mod in backbone.named_modules():
        parent_name, _, leaf = name.rpartition(".")
        if leaf not in wanted or not isinstance(mod, torch.nn.Linear):
            continue
        parent = backbone.get_submodule(parent_name) if parent_name else backbone
        if isinstance(parent, torch.nn.MultiheadAttention):
            # MultiheadAttention reads out_proj.weight directly instead of calling out_proj(), so a
            # LoRA wrapper there would silently do nothing.
            logger.warning("Skipping LoRA on %s: torch.nn.MultiheadAttention bypasses its forward", name)
            continue
        names.append(name)
    return names


def add_lora(backbone: torch.nn.Module, settings: LoraSettings) -> torch.nn.Module:
    """Add LoRA adapters to ``backbone`` in place and freeze every non-adapter parameter.

    Parameters
    ----------
    backbone : torch.nn.Module
        E.g. a :class:`~deepaq_core.model.mert.MertBackbone`. Adapters wrap the ``nn.Linear``
        layers named in ``settings.target_modules``. The adapters' B matrices start at zero, so the
        output is unchanged until training moves them.
    settings : LoraSettings

    Returns
    -------
    torch.nn.Module
        ``backbone`` itself. Only adapter parameters have ``requires_grad=True``; a backbone with
        ``freeze_feature_encoder()`` (MERT's convolutional front end) has it called as well.

    Raises
    ------
    ModelError
        If the backbone has none of the target layers.
    ValueError
        If the backbone already has LoRA adapters.
    """
    import peft
    from peft.tuners.tuners_utils import BaseTunerLayer

    if any(isinstance(m, BaseTunerLayer) for m in backbone.modules()):
        raise ValueError("the backbone already has LoRA adapters")
    targets = _target_names(backbone, settings)
    if not targets:
        raise ModelError(
            f"LoRA cannot be added to the backbone '{getattr(backbone, 'name', type(backbone).__name__)}': "
            f"it has none of the layers {', '.join(settings.target_modules)}."
        )
    config = peft.LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=float(settings.dropout),
        # Full module names (not suffixes) so exactly the layers checked above are wrapped.
        target_modules=targets,
        bias="none",
    )
    peft.inject_adapter_in_model(config, backbone)
    for name, param in backbone.named_parameters():
        param.requires_grad_(_is_lora_key(name))
    if hasattr(backbone, "freeze_feature_encoder"):
        backbone.freeze_feature_encoder()
    setattr(backbone, _SETTINGS_ATTR, settings)
    n_train = sum(p.numel() for p in backbone.parameters() if p.requires_grad)
    logger.info(
        "Added LoRA (rank %d, alpha %s) to %d layers: %d trainable parameters",
        settings.rank,
        settings.alpha,
        len(targets),
        n_train,
    )
    return backbone


def lora_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter weights of ``module`` (names as in ``module.state_dict()``).

    Parameters
    ----------
    module : torch.nn.Module
        A module given to :func:`add_lora`, or any module containing one.

    Returns
    -------
    dict of str to Tensor
        Detached tensors (shared with the module, not copied).
    """
    return {k: v.detach() for k, v in module.state_dict().items() if _is_lora_key(k)}


def save_adapter(module: torch.nn.Module, path: str | os.PathLike) -> None:
    """Write the adapter weights of ``module`` to a safetensors file.

    The :class:`LoraSettings` are stored in the file's metadata so :func:`load_adapter` can refuse a
    mismatching adapter. Names are relative to ``module``: load into the same kind of module.

    Parameters
    ----------
    module : torch.nn.Module
        A module given to :func:`add_lora` (or containing one).
    path : str or os.PathLike
        Output file (``.safetensors``); its folder is created if needed.
    """
    from safetensors.torch import save_file

    settings = _find_settings(module)
    tensors = {k: v.to("cpu").contiguous().clone() for k, v in lora_state_dict(module).items()}
    if not tensors:
        raise ValueError("the module has no LoRA adapter weights")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "pt", "deepaq_adapter": ADAPTER_FORMAT, "lora_settings": json.dumps(settings.to_dict())}
    save_file(tensors, str(out), metadata=metadata)
    logger.info("Saved %d LoRA tensors to %s", len(tensors), out)


def load_adapter(module: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load adapter weights written by :func:`save_adapter` into ``module`` (strict).

    Parameters
    ----------
    module : torch.nn.Module
        A module given to :func:`add_lora` with the same settings as the adapter (or containing
        one, matching the module the adapter was saved from).
    path : str or os.PathLike
        The adapter's safetensors file.

    Raises
    ------
    ModelError
        If the file is missing or unreadable, is not a DeePAQ LoRA adapter, was made with different
        LoRA settings, or its keys or shapes differ from the module's adapters.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    src = Path(path)
    label = src.name
    if not src.is_file():
        raise ModelError(f"The LoRA adapter file '{src}' does not exist.")
    try:
        with safe_open(str(src), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(src), device="cpu")
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise ModelError(f"The LoRA adapter '{label}' cannot be read ({exc}).") from exc
    if metadata.get("deepaq_adapter") != ADAPTER_FORMAT:
        raise ModelError(f"The file '{label}' is not a DeePAQ LoRA adapter.")

    ours = _find_settings(module)
    try:
        theirs = json.loads(metadata.get("lora_settings", "{}"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"The LoRA adapter '{label}' has unreadable settings ({exc}).") from exc
    for field in ("rank", "alpha", "target_ffn"):
        if field in theirs and theirs[field] != getattr(ours, field):
            raise ModelError(
                f"The LoRA adapter '{label}' has {field} {theirs[field]!r}, but the model's LoRA has "
                f"{field} {getattr(ours, field)!r}."
            )

    own = lora_state_dict(module)
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        bad = (missing or unexpected)[:3]
        what = "lacks" if missing else "has unexpected"
        raise ModelError(f"The LoRA adapter '{label}' does not fit this model (it {what} {', '.join(bad)}).")
    for key, value in tensors.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise ModelError(
                f"The LoRA adapter '{label}' does not fit this model ('{key}' has shape {tuple(value.shape)}, "
                f"expected {tuple(own[key].shape)})."
            )
    with torch.no_grad():
        for key, value in tensors.items():
            own[key].copy_(value.to(dtype=own[key].dtype, device=own[key].device))
    logger.info("Loaded %d LoRA tensors from %s", len(tensors), src)


def merge_lora(module: torch.nn.Module) -> int:
    """Fold every LoRA update into its base weight for faster inference (in place).

    After merging, the adapted layers run only their base ``nn.Linear``; the adapter tensors stay
    (so :func:`save_adapter` still writes them) but must not be trained or loaded into again.

    Parameters
    ----------
    module : torch.nn.Module
        A module given to :func:`add_lora` (or containing one).

    Returns
    -------
    int
        Number of layers merged (already merged layers are skipped).
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    count = 0
    for sub in module.modules():
        if isinstance(sub, BaseTunerLayer) and not sub.merged:
            # safe_merge: refuse (rather than silently produce) non-finite merged weights.
            sub.merge(safe_merge=True)
            count += 1
    logger.info("Merged LoRA into %d layers", count)
    return count
