"""Optional peer metrics: ViSQOL v3 (audio mode), Zimtohrli and CDPAM, when installed.

None of them is a dependency of DeePAQ. :func:`load_peers` imports each requested one and
returns the usable ones plus one line per peer that is skipped (not installed, or its import
fails), so an evaluation never needs them.

How each is fed (all read through :func:`deepaq_core.audio.load_audio`, mono downmix):

``visqol``
    ``visqol-python`` (a pure-Python port of ViSQOL v3.3.3, audio mode, SVR mapping), 48 kHz.
    The raw pair is given, because ViSQOL aligns and level-matches internally; for 48 kHz files
    this is exactly what its own file reader does (mean of the channels), so it reproduces the
    conformance values of the C++ tool. Other rates are resampled to 48 kHz with soxr. MOS-LQO
    1-5, higher = better.
``zimtohrli``
    ``zimtohrli`` (Google's C++ metric, Python binding), 48 kHz. Zimtohrli compares the two
    signals sample-synchronously, so the pair is aligned and loudness-matched with
    :func:`deepaq_core.audio.prepare_pair` first, as for DeePAQ. Distance, lower = better.
``cdpam``
    ``cdpam`` 0.0.6 (Manocha et al., ICASSP 2021), 22.05 kHz, samples scaled to the 16-bit
    range as its own loader does, aligned and loudness-matched like Zimtohrli. Its checkpoint is
    an old-format pickle that current torch refuses to load with ``weights_only=True``; it is
    read through an unpickler that only admits tensors and ordered dicts. Distance, lower =
    better. Slow on a CPU (several seconds per second of audio).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import pickle
import types
from collections import OrderedDict

import numpy as np

from deepaq_core.evaluation.metrics import Metric

log = logging.getLogger(__name__)

# name -> (import name, what to install)
PEERS = {
    "visqol": ("visqol", "pip install 'visqol-python[accel]'"),
    "zimtohrli": ("zimtohrli", "pip install zimtohrli"),
    "cdpam": ("cdpam", "pip install librosa resampy && pip install --no-deps cdpam"),
}


class PeerUnavailable(Exception):
    """A peer cannot be used here; ``str(exc)`` is one line saying why and how to install it."""


def _import(peer: str):
    module, hint = PEERS[peer]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        if missing in (None, module):
            raise PeerUnavailable(f"skipping peer '{peer}': not installed ({hint}).") from None
        raise PeerUnavailable(f"skipping peer '{peer}': it needs '{missing}', which is not installed ({hint}).") from None
    except Exception as exc:  # a broken install (e.g. an ABI mismatch) must not stop the evaluation
        raise PeerUnavailable(f"skipping peer '{peer}': importing it failed ({exc.__class__.__name__}: {exc}).") from None


def _aligned(reference: str, degraded: str, rate: int):
    from deepaq_core.audio import load_audio, prepare_pair

    ref = load_audio(reference, target_rate=rate, channels="mono")
    deg = load_audio(degraded, target_rate=rate, channels="mono")
    pair = prepare_pair(ref, deg, align=True, match_loudness=True)
    return pair.reference.samples[0], pair.degraded.samples[0]


class ViSQOLMetric(Metric):
    """ViSQOL v3 audio mode (``visqol-python``), MOS-LQO."""

    name = "visqol"
    label = "ViSQOL v3 audio mode (visqol-python, 48 kHz mono, SVR MOS-LQO)"
    kind = "peer"
    higher_is_better = True
    unit = "MOS-LQO 1-5"
    RATE = 48000

    def __init__(self) -> None:
        self._api = None

    def setup(self) -> None:
        visqol = _import("visqol")
        # Its per-file "duration mismatch" / "not 48 kHz" warnings would flood the console.
        logging.getLogger("visqol").setLevel(logging.ERROR)
        self._api = visqol.VisqolApi()
        self._api.create(mode="audio")
        # The numba kernels compile on first use (~10 s); do it here so per-file times are fair.
        rng = np.random.default_rng(0)
        x = rng.normal(0, 0.1, self.RATE * 2)
        self._api.measure_from_arrays(x, x + rng.normal(0, 0.01, x.size), self.RATE)

    def measure(self, reference, degraded):
        from deepaq_core.audio import load_audio

        ref = load_audio(reference, target_rate=self.RATE, channels="mono").samples[0].astype(np.float64)
        deg = load_audio(degraded, target_rate=self.RATE, channels="mono").samples[0].astype(np.float64)
        return {"value": float(self._api.measure_from_arrays(ref, deg, self.RATE).moslqo)}

    def close(self) -> None:
        self._api = None


class ZimtohrliMetric(Metric):
    """Zimtohrli distance on the aligned, loudness-matched 48 kHz pair."""

    name = "zimtohrli"
    label = "Zimtohrli distance (48 kHz mono, aligned and loudness-matched)"
    kind = "peer"
    higher_is_better = False
    unit = "distance"
    RATE = 48000

    def __init__(self) -> None:
        self._z = None

    def setup(self) -> None:
        self._z = _import("zimtohrli").Pyohrli()

    def measure(self, reference, degraded):
        r, d = _aligned(reference, degraded, self.RATE)
        return {"value": float(self._z.distance(r, d))}

    def close(self) -> None:
        self._z = None


# Globals a plain state-dict checkpoint needs; anything else in the pickle is refused, so a
# tampered file cannot run code while loading (torch's own weights_only mode cannot read this
# legacy format).
_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): None,
    ("torch._utils", "_rebuild_parameter"): None,
}


class _StateDictUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"checkpoint refers to '{module}.{name}', which a state dict never needs")
        return super().find_class(module, name)


def _restricted_pickle_module() -> types.ModuleType:
    mod = types.ModuleType("deepaq_state_dict_pickle")
    mod.Unpickler = _StateDictUnpickler
    mod.load = lambda f, **kw: _StateDictUnpickler(f, **kw).load()
    return mod


class CdpamMetric(Metric):
    """CDPAM distance on the aligned, loudness-matched 22.05 kHz pair."""

    name = "cdpam"
    label = "CDPAM distance (22.05 kHz mono, aligned and loudness-matched)"
    kind = "peer"
    higher_is_better = False
    unit = "distance"
    RATE = 22050

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._model = None
        self._cache: OrderedDict[str, object] = OrderedDict()

    def setup(self) -> None:
        import functools
        from unittest import mock

        import torch

        cdpam = _import("cdpam")
        load = functools.partial(torch.load, weights_only=False, pickle_module=_restricted_pickle_module())
        # CDPAM's constructor calls torch.load itself; redirect that one call to the safe loader.
        with mock.patch.object(torch, "load", load):
            self._model = cdpam.CDPAM(dev=self.device)

    def _embed(self, x: np.ndarray):
        import torch
        import torch.nn.functional as F

        key = hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        # CDPAM's own loader rounds to the int16 range; the network was trained on that scale.
        t = torch.from_numpy(np.round(x.astype(np.float64) * 32768.0).astype(np.float32)).reshape(1, 1, -1)
        with torch.inference_mode():
            _, acoustics, _ = self._model.model.base_encoder.forward(t.to(self._model.device))
            emb = F.normalize(acoustics, dim=1)
        self._cache[key] = emb
        while len(self._cache) > 4:  # the references of the current items; embeddings are tiny
            self._cache.popitem(last=False)
        return emb

    def measure(self, reference, degraded):
        import torch

        r, d = _aligned(reference, degraded, self.RATE)
        with torch.inference_mode():
            dist = self._model.model.model_dist.forward(self._embed(r), self._embed(d))
        return {"value": float(dist.reshape(-1)[0])}

    def close(self) -> None:
        self._model = None
        self._cache.clear()


_CLASSES = {"visqol": ViSQOLMetric, "zimtohrli": ZimtohrliMetric, "cdpam": CdpamMetric}


def parse_peers(text: str | None) -> list[str]:
    """``"all"`` / ``"none"`` / comma-separated names -> list of peer names (validated)."""
    from deepaq_core.errors import DeePAQError

    if text is None or text.strip().lower() in ("", "all"):
        return list(PEERS)
    if text.strip().lower() == "none":
        return []
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    for n in names:
        if n not in PEERS:
            raise DeePAQError(f"Unknown peer metric '{n}'; choose from {', '.join(PEERS)}, 'all' or 'none'.")
    return list(dict.fromkeys(names))


def load_peers(names, device: str = "cpu") -> tuple[list[Metric], list[str]]:
    """Peers that can be imported here, and one skip line for each that cannot.

    Parameters
    ----------
    names : iterable of str
        Peer names (keys of :data:`PEERS`).
    device : str
        Torch device for CDPAM.

    Returns
    -------
    (list of Metric, list of str)
        The usable peers (not yet set up) and the skip messages.
    """
    metrics, notes = [], []
    for n in names:
        try:
            _import(n)
        except PeerUnavailable as exc:
            notes.append(str(exc))
            continue
        metrics.append(CdpamMetric(device) if n == "cdpam" else _CLASSES[n]())
    return metrics, notes


def peer_versions() -> dict[str, str]:
    """Installed versions of the peer packages (``"not installed"`` otherwise)."""
    from importlib import metadata

    dists = {"visqol": "visqol-python", "zimtohrli": "zimtohrli", "cdpam": "cdpam"}
    out = {}
    for peer, dist in dists.items():
        try:
            out[peer] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[peer] = "not installed"
    return out


__all__ = ["PEERS", "PeerUnavailable", "ViSQOLMetric", "ZimtohrliMetric", "CdpamMetric", "load_peers",
           "parse_peers", "peer_versions"]
