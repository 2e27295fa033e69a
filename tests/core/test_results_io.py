"""Exact JSON round trip of results (deepaq_core.results_io)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from deepaq_core.audio import AudioBuffer
from deepaq_core.errors import DeePAQError
from deepaq_core.results import NmrResult, QualityResult
from deepaq_core.results_io import VERSION, result_from_json, result_to_json
from tests.conftest import music_like


@pytest.fixture(scope="module")
def real_result() -> QualityResult:
    from deepaq_core.scoring import Scorer

    sr = 24000
    x = music_like(3.0, sr, seed=3)[:, 0]
    rng = np.random.default_rng(0)
    # 0.2 s late and noisy: the frames outside the overlap are NaN, the alignment is estimated
    y = np.concatenate([np.zeros(int(0.2 * sr), np.float32), x])[: x.size] * 0.7
    y = y + 0.01 * rng.standard_normal(y.size).astype(np.float32)
    return Scorer(device="cpu").score(AudioBuffer(x, sr), AudioBuffer(y, sr))


def assert_same(a, b, path="result"):
    """Field-by-field equality, arrays exactly (dtype and NaN positions included)."""
    assert type(a) is type(b), path
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert not b.flags.writeable, path
        np.testing.assert_array_equal(a, b, err_msg=path)  # NaN == NaN for assert_array_equal
    elif isinstance(a, float):
        assert (math.isnan(a) and math.isnan(b)) or a == b, path
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    else:
        assert a == b, path


def test_quality_result_round_trips_exactly(real_result):
    r = real_result
    assert np.isnan(r.frame_distance).any()  # the test covers NaN in arrays
    text = json.dumps(result_to_json(r), allow_nan=False)  # strict JSON
    back = result_from_json(json.loads(text))
    assert isinstance(back, QualityResult)
    assert_same(r, back)
    for name in ("start_s", "end_s", "distance", "score"):
        np.testing.assert_array_equal(getattr(r.curve, name), getattr(back.curve, name))
        assert getattr(back.curve, name).dtype == np.float32
    np.testing.assert_array_equal(r.frame_distance, back.frame_distance)
    for hm in ("layer_heatmap", "time_matrix"):
        for name in ("values", "x", "y"):
            np.testing.assert_array_equal(getattr(getattr(r, hm), name), getattr(getattr(back, hm), name))
    assert back.score == r.score and back.distance == r.distance and back.alignment == r.alignment
    assert back.summary() == r.summary()


def test_a_result_without_time_matrix_round_trips(real_result):
    r = dataclasses.replace(real_result, time_matrix=None)
    back = result_from_json(json.loads(json.dumps(result_to_json(r), allow_nan=False)))
    assert back.time_matrix is None
    np.testing.assert_array_equal(r.layer_heatmap.values, back.layer_heatmap.values)
    assert back.summary() == r.summary()


def test_non_finite_scalars_and_settings_values_survive(real_result):
    r = dataclasses.replace(
        real_result,
        gain_db=float("inf"),
        alignment=dataclasses.replace(real_result.alignment, confidence=float("nan"), estimated=False),
        channel_scores=(50.0, float("nan")),
        settings={**real_result.settings, "lag_ms": None, "odd": float("-inf")},
    )
    back = result_from_json(json.loads(json.dumps(result_to_json(r), allow_nan=False)))
    assert_same(r, back)
    assert back.settings["lag_ms"] is None


def test_nmr_result_round_trips():
    from deepaq_core.results import FileSummary

    r = NmrResult(model=_model(), degraded=FileSummary("/x.wav", "ab" * 32, 48000, 2, 3.0, "WAV", 24),
                  distance=0.25, per_reference=(("/c1.wav", 0.2), ("/c2.wav", 0.3)),
                  curve_start_s=[0.0, 0.5], curve_end_s=[3.0, 3.5], curve_distance=[0.1, np.nan],
                  timings={"total_s": 1.5})
    back = result_from_json(json.loads(json.dumps(result_to_json(r), allow_nan=False)))
    assert isinstance(back, NmrResult)
    assert_same(r, back)


def test_future_and_foreign_documents_are_refused(real_result):
    d = result_to_json(real_result)
    with pytest.raises(DeePAQError, match="newer DeePAQ"):
        result_from_json({**d, "version": VERSION + 1})
    with pytest.raises(DeePAQError, match="not a DeePAQ result"):
        result_from_json({"score": 3})
    broken = dict(d)
    del broken["curve"]
    with pytest.raises(DeePAQError, match="damaged"):
        result_from_json(broken)


def _model():
    from deepaq_core.results import ModelInfo

    return ModelInfo("compact", "0.1", "untrained", "tiny", 24000, 75.0, 256)


def test_alignment_polarity_and_edge_round_trip(real_result):
    r = dataclasses.replace(real_result,
                            alignment=dataclasses.replace(real_result.alignment, inverted=True, at_edge=True))
    doc = result_to_json(r)
    back = result_from_json(json.loads(json.dumps(doc)))
    assert back.alignment.inverted and back.alignment.at_edge
    assert back.summary()["offset_inverted"] is True and back.summary()["offset_at_edge"] is True
    # A file written before these fields existed reads them as False.
    for key in ("inverted", "at_edge"):
        doc["alignment"].pop(key)
    old = result_from_json(json.loads(json.dumps(doc)))
    assert (old.alignment.inverted, old.alignment.at_edge) == (False, False)
    assert old.alignment.lag_samples == r.alignment.lag_samples


def test_summary_confidence_is_none_when_not_estimated(real_result):
    r = dataclasses.replace(real_result, alignment=dataclasses.replace(real_result.alignment, confidence=float("nan")))
    assert r.summary()["offset_confidence"] is None
    assert 0.9 < real_result.summary()["offset_confidence"] <= 1.0
