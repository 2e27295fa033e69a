"""The model ladder: which models exist, which are usable here, and loading them by name or path.

Names resolve in this order:

1. the built-in names: ``compact`` and ``compact-untrained`` (shipped in the package) and
   ``mert-95m`` / ``mert-330m`` (MERT hidden states without an adapter: a layer mean, no
   projection, no DeePAQ training). A built-in name always means the built-in model;
2. ``user:NAME``: the bundle folder NAME in a user model directory, whatever its name;
3. a path to a bundle folder (anything containing ``card.json``);
4. a bundle folder named NAME in a user model directory (``$DEEPAQ_MODELS``, colon-separated,
   default ``~/.local/share/deepaq/models``) — user-trained adapters such as ``mert-95m-lora``.

A user folder named like a built-in model never replaces it: it is listed and resolved as
``user:NAME``, and resolving or listing logs one warning line about it. Bundles load only when
their weights match the card's checksum (see :func:`deepaq_core.model.bundle.build_model`).

MERT weights are looked up, without network access, in ``$DEEPAQ_MERT_DIR/<repo name>`` (e.g.
``$DEEPAQ_MERT_DIR/MERT-v1-95M``) and then in the Hugging Face cache; only when neither has them
is the hub asked (at the pinned revision).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepaq_core.errors import ModelError
from deepaq_core.model.bundle import Bundle, check_verified, read_card

log = logging.getLogger(__name__)

DEFAULT_MODEL = "compact"
# Models shipped in resources/models: the default, and the randomly initialised compact network it
# replaced (kept so every evaluation can compare against it).
BUILTIN_MODELS = ("compact", "compact-untrained")

# Built-in MERT entries: hub id. The pinned revision lives in deepaq_core.model.mert.MERT_REVISIONS.
MERT_MODELS = {
    "mert-95m": "m-a-p/MERT-v1-95M",
    "mert-330m": "m-a-p/MERT-v1-330M",
}
# Names a user model folder cannot take over; such a folder is reachable as USER_PREFIX + name.
RESERVED_NAMES = BUILTIN_MODELS + tuple(MERT_MODELS)
USER_PREFIX = "user:"
# Default (untrained) score mapping for MERT hidden states: d50 is a placeholder until a head is
# trained; results from these entries are labelled "untrained".
_MERT_PLACEHOLDER_MAPPING = {"type": "exp2", "d50": 0.1, "power": 1.0, "fitted_on": "placeholder (untrained)"}


def builtin_dir() -> Path:
    """Folder of the models shipped with the package."""
    from importlib.resources import files

    return Path(str(files("deepaq_resources"))) / "models"


def user_model_dirs() -> list[Path]:
    """User model directories, from ``$DEEPAQ_MODELS`` or the default."""
    env = os.environ.get("DEEPAQ_MODELS")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path("~/.local/share/deepaq/models").expanduser()]


def _mert_card(name: str, hub_id: str) -> dict[str, Any]:
    from deepaq_core.model.mert import MERT_REVISIONS

    hidden = 768 if name == "mert-95m" else 1024
    layers = (12 if name == "mert-95m" else 24) + 1
    return {
        "format": "deepaq-bundle",
        "format_version": 1,
        "name": name,
        "version": "pretrained",
        "status": "untrained",
        "description": f"{hub_id} hidden states (mean over layers), no DeePAQ training",
        "backbone": {"type": "mert", "id": hub_id, "revision": MERT_REVISIONS.get(hub_id)},
        "sample_rate": 24000,
        "frame_rate": 75.0,
        "hop_length": 320,
        "layers": layers,
        "embedding_dim": hidden,
        "head": {"projection": False, "dim": None},
        "lora": None,
        "score_mapping": dict(_MERT_PLACEHOLDER_MAPPING),
        "training": None,
        "results": None,
    }


def local_mert_path(hub_id: str) -> Path | None:
    """A local copy of a MERT checkpoint, if one is known (``$DEEPAQ_MERT_DIR`` or the HF cache)."""
    env = os.environ.get("DEEPAQ_MERT_DIR")
    if env:
        cand = Path(env).expanduser() / hub_id.split("/")[-1]
        if (cand / "config.json").is_file():
            return cand
    try:
        from huggingface_hub import snapshot_download

        from deepaq_core.model.mert import MERT_REVISIONS

        path = snapshot_download(hub_id, revision=MERT_REVISIONS.get(hub_id), local_files_only=True,
                                 allow_patterns=["config.json", "preprocessor_config.json", "*.safetensors",
                                                 "pytorch_model.bin"])
        p = Path(path)
        has_weights = any(p.glob("*.safetensors")) or (p / "pytorch_model.bin").is_file()
        return p if (p / "config.json").is_file() and has_weights else None
    except Exception:  # not cached (LocalEntryNotFoundError and friends): simply unavailable
        return None


@dataclass(frozen=True)
class ModelEntry:
    """One rung of the ladder as ``deepaq models`` lists it."""

    name: str
    status: str
    available: bool
    where: str
    description: str


def _user_folder(name: str) -> Path | None:
    """The first user model folder called ``name`` that holds a card, if any."""
    for d in user_model_dirs():
        if (d / name / "card.json").is_file():
            return d / name
    return None


def _warn_shadowed(folder: Path, name: str) -> None:
    log.warning("The user model folder '%s' has the name of the built-in model '%s' and does not replace it; "
                "use '%s%s' for the user's model.", folder, name, USER_PREFIX, name)


def resolve(name_or_path: str | os.PathLike | None) -> Bundle:
    """Find the bundle a name or path refers to (does not load weights)."""
    name = str(name_or_path or DEFAULT_MODEL)
    if name.startswith(USER_PREFIX):
        sub = name[len(USER_PREFIX):]
        if not sub or sub in (".", "..") or "/" in sub or os.sep in sub:
            raise ModelError(f"'{name}' is not a user model name (use user:NAME, NAME a folder in a user model "
                             "directory).")
        folder = _user_folder(sub)
        if folder is None:
            dirs = os.pathsep.join(str(d) for d in user_model_dirs())
            raise ModelError(f"No user model '{sub}' was found in the user model directories ({dirs}).")
        return Bundle(read_card(folder), folder)
    if name in RESERVED_NAMES:
        shadow = _user_folder(name)
        if shadow is not None:
            _warn_shadowed(shadow, name)
        if name in BUILTIN_MODELS:
            folder = builtin_dir() / name
            return Bundle(read_card(folder), folder)
        hub_id = MERT_MODELS[name]
        card = _mert_card(name, hub_id)
        local = local_mert_path(hub_id)
        if local is not None:
            card["backbone"]["local_path"] = str(local)
        return Bundle(card, None)
    path = Path(name).expanduser()
    if path.is_dir():
        return Bundle(read_card(path), path)
    if os.sep in name or "/" in name or name.endswith(".json"):
        raise ModelError(f"Model '{name}' not found: no such bundle folder.")
    folder = _user_folder(name)
    if folder is not None:
        return Bundle(read_card(folder), folder)
    known = ", ".join(e.name for e in list_models())
    raise ModelError(f"Unknown model '{name}'; known models: {known}.")


def list_models() -> list[ModelEntry]:
    """Every model of the ladder with whether it can run on this machine now.

    User bundles are listed by the name ``--model`` accepts for them: their folder name, or
    ``user:NAME`` for a folder named like a built-in model. Their cards are checked (an invalid
    one is listed as such, with the reason); one without a weights checksum says so.
    """
    out: list[ModelEntry] = []
    for builtin in BUILTIN_MODELS:
        try:
            b = Bundle(read_card(builtin_dir() / builtin), builtin_dir() / builtin)
            out.append(ModelEntry(builtin, b.card.get("status", "untrained"), True, "built-in",
                                  b.card.get("description", "")))
        except ModelError as exc:
            out.append(ModelEntry(builtin, "missing", False, "built-in", str(exc)))
    for name, hub_id in MERT_MODELS.items():
        local = local_mert_path(hub_id)
        out.append(ModelEntry(name, "untrained", local is not None,
                              str(local) if local else f"hub {hub_id} (not downloaded)",
                              f"{hub_id} hidden states, no DeePAQ training"))
    for d in user_model_dirs():
        if not d.is_dir():
            continue
        for sub in sorted(d.iterdir()):
            if (sub / "card.json").is_file():
                listed = sub.name
                if sub.name in RESERVED_NAMES:
                    _warn_shadowed(sub, sub.name)
                    listed = USER_PREFIX + sub.name
                try:
                    card = read_card(sub)
                except ModelError as exc:
                    out.append(ModelEntry(listed, "invalid", False, str(sub), str(exc)))
                    continue
                description = card.get("description") or ""
                if Bundle(card, sub).unverified:
                    description = "unverified (no weights checksum; needs --allow-unverified)" + (
                        f": {description}" if description else "")
                # Listed (and resolved) by this name, so what is listed is what --model accepts.
                out.append(ModelEntry(listed, card.get("status", "untrained"), True, str(sub), description))
    return out


_CACHE: dict[tuple[str, ...], Any] = {}
_CACHE_LOCK = threading.Lock()


def load_model(name_or_path: str | os.PathLike | None = None, device: str = "auto", *,
               allow_unverified: bool = False, precision: str = "auto"):
    """Load a model of the ladder, cached per process.

    Parameters
    ----------
    allow_unverified : bool
        Also load a bundle whose card has no weights checksum (refused otherwise).
    precision : {"auto", "fp32", "bf16", "fp16"}
        Arithmetic of the network's forward pass (see :class:`deepaq_core.scoring.ScoreSettings`).
        Loads of one model at two precisions share its weights.

    Raises
    ------
    ModelError
        ``fp16`` on a device other than a CUDA GPU (one sentence).

    Returns
    -------
    LoadedModel or CpuLoadedModel
        The embedding model on its device with its bundle (card, provenance). The built-in
        auditory model on the CPU (``device`` "cpu", or "auto" where torch can reach no GPU) is a
        :class:`~deepaq_core.model.cpu_model.CpuLoadedModel`: the same front end in numpy, and
        torch is not imported.
    """
    bundle = resolve(name_or_path)
    check_verified(bundle, allow_unverified)
    if _on_cpu_path(bundle, device):
        return _load_cpu(bundle, allow_unverified=allow_unverified, precision=precision)
    from deepaq_core.model.device import LoadedModel, resolve_device

    dev = resolve_device(device)
    if dev.type == "cpu" and _on_cpu_path(bundle, "cpu"):  # "auto" with a GPU build of torch but no GPU
        return _load_cpu(bundle, allow_unverified=allow_unverified, precision=precision)
    if precision == "fp16" and dev.type != "cuda":
        raise ModelError(f"fp16 needs a CUDA GPU; on {dev.type} use bf16 or fp32.")
    base = (str(bundle.folder or bundle.name), str(dev), str(bundle.card.get("weights_sha256")))
    key = base + (precision,)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        same_weights = next((v for k, v in _CACHE.items() if k[:3] == base), None)
    from deepaq_core.model.bundle import build_model

    if same_weights is not None:  # the same network at another precision: share its weights
        model = same_weights.model
    else:
        model = build_model(bundle, allow_unverified=allow_unverified).to(dev)
    loaded = LoadedModel(model=model, bundle=bundle, device=dev, precision=precision)
    with _CACHE_LOCK:
        _CACHE[key] = loaded
    log.info("loaded model %s on %s", bundle.info().label, dev)
    return loaded


def needs_torch(name_or_path: str | os.PathLike | None = None, device: str = "auto") -> bool:
    """Whether loading this model on this device imports torch (False: the numpy implementation of
    the built-in model on the CPU, :mod:`deepaq_core.model.cpu_model`). True when the name does
    not resolve (the load will say why)."""
    try:
        return not _on_cpu_path(resolve(name_or_path), device)
    except ModelError:
        return True


def _on_cpu_path(bundle, device) -> bool:
    """Whether this load is the built-in auditory model on the CPU, known without importing torch:
    ``device`` is ``cpu``, or ``auto`` where no installed torch could reach a GPU."""
    from deepaq_core.model.cpu_model import accelerator_possible, runs_on_cpu_path

    if not isinstance(device, str):
        device = str(device)
    spec = (device or "auto").lower()
    try:
        cpu = spec == "cpu" or (spec == "auto" and not accelerator_possible())
        return cpu and runs_on_cpu_path(bundle.card)
    except (KeyError, TypeError, AttributeError):  # an unchecked card that is not well formed:
        return False  # build_model's checks will name the problem


def _load_cpu(bundle, *, allow_unverified: bool, precision: str):
    """The numpy implementation of the built-in model (:mod:`deepaq_core.model.cpu_model`), cached per process."""
    from deepaq_core.model.cpu_model import CpuLoadedModel, build_cpu_model

    if precision == "fp16":
        raise ModelError("fp16 needs a CUDA GPU; on cpu use bf16 or fp32.")
    key = (str(bundle.folder or bundle.name), "cpu", str(bundle.card.get("weights_sha256")), "numpy", precision)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    loaded = CpuLoadedModel(model=build_cpu_model(bundle, allow_unverified=allow_unverified), bundle=bundle,
                            precision=precision)
    with _CACHE_LOCK:
        _CACHE[key] = loaded
    log.info("loaded model %s on cpu (numpy)", bundle.info().label)
    return loaded
