"""Heatmap bins summed where the model runs (GPUs) equal the bins summed on the host."""

from __future__ import annotations

import numpy as np
import pytest

from deepaq_core.embedding import embed
from deepaq_core.model.device import BinPlan, LoadedModel
from deepaq_core.model.registry import load_model
from tests.conftest import music_like


@pytest.fixture(scope="module")
def loaded():
    return load_model("compact-untrained", "cpu")


@pytest.mark.parametrize("batch, columns, span", [(1, 37, (3.3, 21.7)), (3, 512, (0.0, 25.0)), (2, 7, (11.0, 12.0))])
def test_bins_summed_by_the_model_equal_bins_summed_on_the_host(loaded, monkeypatch, batch, columns, span):
    sr = loaded.model.sample_rate
    wave = music_like(25.0, sr, seed=5)[:, 0].astype(np.float32)
    valid = (int(span[0] * sr), int(span[1] * sr))
    kwargs = dict(chunk_s=4.0, context_s=1.0, heatmap_columns=columns, valid_samples=valid)
    monkeypatch.setattr(loaded, "batch_size", batch)
    assert not loaded.bins_on_device  # on the CPU the host sums them
    host = embed(loaded, wave, **kwargs)
    plans = []
    real = LoadedModel.run

    def spy(self, segments, alone=False, bins=None):
        plans.extend(bins or [])
        emb, sums = real(self, segments, alone, bins)
        for plan, x in zip(bins, sums):  # only the bins' sums came back
            assert x.shape == (host.layer_bins.shape[0], plan.bins, host.layer_bins.shape[2]) and x.dtype == np.float64
        return emb, sums

    monkeypatch.setattr(LoadedModel, "bins_on_device", property(lambda self: True))
    monkeypatch.setattr(LoadedModel, "run", spy)
    device = embed(loaded, wave, **kwargs)
    assert len(plans) == 7  # 25 s in 4 s chunks
    assert np.array_equal(host.frames, device.frames)
    assert np.array_equal(host.valid, device.valid) and host.bin_frames == device.bin_frames
    nan = np.isnan(host.layer_bins)
    assert np.array_equal(nan, np.isnan(device.layer_bins))
    assert nan.any() == (span != (0.0, 25.0))  # bins outside the overlap stay empty
    assert np.allclose(host.layer_bins[~nan], device.layer_bins[~nan], rtol=1e-6, atol=0)


def test_a_bin_plan_sums_the_valid_kept_frames_of_each_bin():
    import torch

    rng = np.random.default_rng(1)
    hidden = torch.from_numpy(rng.standard_normal((2, 20, 3)).astype(np.float32))  # [L, T, H]
    valid = np.ones(12, bool)
    valid[[0, 5, 6]] = False
    plan = BinPlan(ctx=4, frames=12, lead=3, bins=3, bin_frames=5, valid=valid)  # kept frames 4..15
    got = plan.sums(hidden).numpy()
    h = hidden.numpy().astype(np.float64)
    # kept frame j sits at position 3 + j of the bins: bin 0 holds j = 0, 1; bin 1 j = 2..6; bin 2 j = 7..11
    for b, js in enumerate([range(0, 2), range(2, 7), range(7, 12)]):
        want = sum((h[:, 4 + j] for j in js if valid[j]), np.zeros((2, 3)))
        assert np.allclose(got[:, b], want, rtol=1e-12, atol=1e-12)
