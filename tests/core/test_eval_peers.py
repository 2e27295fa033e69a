"""Peer-metric wrappers: the safe checkpoint loader always; the peers themselves when installed."""

from __future__ import annotations

import io
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest

from deepaq_core.evaluation import peers


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_state_dict_unpickler_admits_dicts_and_refuses_code():
    ok = pickle.dumps(OrderedDict(a=1))
    assert peers._restricted_pickle_module().load(io.BytesIO(ok)) == OrderedDict(a=1)
    with pytest.raises(pickle.UnpicklingError, match="never needs"):
        peers._restricted_pickle_module().load(io.BytesIO(pickle.dumps(_Evil())))


def test_parse_peers():
    assert peers.parse_peers("all") == list(peers.PEERS)
    assert peers.parse_peers("none") == []
    assert peers.parse_peers("zimtohrli, visqol,visqol") == ["zimtohrli", "visqol"]


def _pair(signals):
    return signals["ref"], signals["lp"], signals["delayed"]


def test_zimtohrli_orders_identity_and_lowpass(signals):
    pytest.importorskip("zimtohrli")
    (m,), notes = peers.load_peers(["zimtohrli"])
    assert not notes
    m.setup()
    ref, lp, delayed = _pair(signals)
    same = m.measure(ref, signals["same"])["value"]
    worse = m.measure(ref, lp)["value"]
    shifted = m.measure(ref, delayed)["value"]  # alignment and loudness matching come first
    assert same == pytest.approx(0.0, abs=1e-6)
    assert worse > 10 * max(shifted, 1e-6)
    assert m.quality(worse) < m.quality(same)


def test_visqol_orders_identity_and_lowpass(signals):
    pytest.importorskip("visqol")
    (m,), _ = peers.load_peers(["visqol"])
    m.setup()
    ref, lp, _ = _pair(signals)
    best = m.measure(ref, signals["same"])["value"]
    worse = m.measure(ref, lp)["value"]
    assert 4.0 < best <= 5.0
    assert 1.0 <= worse < best
    assert np.isfinite(worse)
