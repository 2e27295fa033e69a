"""The demo's generated versions are the same wherever they are made (the README quotes their scores)."""

from __future__ import annotations

import numpy as np

from deepaq_core.degrade import degrade
from deepaq_gui.demo import DEMO_VERSIONS
from tests.conftest import music_like


def test_every_generated_demo_version_is_reproducible():
    sr = 48000
    x = music_like(2.0, sr, seed=3).T.copy()  # [C, N]
    for kind, params, name in DEMO_VERSIONS:
        a, _ = degrade(x, sr, kind, **params)
        b, _ = degrade(x, sr, kind, **params)
        assert np.array_equal(a, b), name
        assert not np.array_equal(a, x), name
