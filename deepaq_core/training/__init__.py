"""Training DeePAQ embedding models with weak supervision (surrogate labels + adapted Rank-N-Contrast).

::

    from deepaq_core.training import load_config, Trainer
    result = Trainer(load_config("configs/compact.toml")).fit()

Modules: :mod:`.config` (TOML -> :class:`TrainConfig`), :mod:`.data` (grouped, labelled batches
from clean audio; on-disk group pools), :mod:`.losses` (Rank-N-Contrast), :mod:`.trainer` (the
loop), :mod:`.checkpoint` (bundles + training state without pickle), :mod:`.validate` (held-out
and real-material validation, score-mapping fit), :mod:`.cli` (``deepaq train``). See
docs/TRAINING.md.

Importing this package is cheap (no torch): names are loaded on first use.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "config",
    "load_config": "config",
    "from_dict": "config",
    "to_toml": "config",
    "ConfigError": "config",
    "Trainer": "trainer",
    "TrainResult": "trainer",
    "build_model": "trainer",
    "train": "trainer",
    "rnc_loss": "losses",
    "GroupMaker": "data",
    "GroupPool": "data",
    "build_pool": "data",
    "plan_data": "data",
    "scan_audio": "data",
    "fit_score_mapping": "validate",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'deepaq_core.training' has no attribute '{name}'")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = sorted(_EXPORTS)
