"""A pair's preparation on the scoring device (torch) agrees with the numpy/scipy one.

Run here on torch's CPU device: the same code runs on a CUDA GPU, where a scorer uses it.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")

from deepaq_core.audio import AudioBuffer, prepare_pair  # noqa: E402
from deepaq_core.audio import on_device  # noqa: E402
from deepaq_core.audio.align import _curves, find_lag  # noqa: E402
from deepaq_core.audio.loudness import k_step_energies, robust_matching_gain_db  # noqa: E402
from deepaq_core.scoring import Scorer  # noqa: E402
from tests.conftest import music_like  # noqa: E402

CPU = torch.device("cpu")


@pytest.mark.parametrize("sr, seconds, block", [(48000, 7.3, 1 << 22), (48000, 7.3, 40_000), (24000, 3.05, 9_000),
                                                  (44100, 0.35, 1 << 22)])
def test_k_weighting_as_a_convolution_equals_the_iir_filter(monkeypatch, sr, seconds, block):
    """Overlap-save blocks of any size (the samples before a block reach into it) and a signal
    shorter than one 100 ms step's multiple: the IIR filter's step energies to 1e-10."""
    monkeypatch.setattr(on_device, "_BLOCK", block)
    x = music_like(seconds, sr, channels=2, seed=2).T.copy()
    x[1] *= np.float32(0.3)
    want = k_step_energies(x, sr)
    got = on_device.k_step_energies(x, sr, CPU)
    assert got.shape == want.shape and got.dtype == np.float64
    assert np.allclose(got, want, rtol=1e-10, atol=1e-12 * want.max())
    cut = on_device.k_step_energies(x, sr, CPU, end=sr)  # the first second only
    assert np.allclose(cut, want[:, :10], rtol=1e-10, atol=1e-12 * want.max())


def test_the_loudness_matching_gain_on_the_device_equals_the_cpus():
    sr = 48000
    ref = music_like(12.0, sr, channels=2, seed=3).T.copy()
    deg = (ref * np.float32(0.5)).copy()
    deg[:, sr * 4 : sr * 5] *= np.float32(3.0)  # a loud burst the median ignores
    on_cpu = robust_matching_gain_db(ref, deg, sr)
    on_dev = robust_matching_gain_db(ref, deg, sr, device=CPU)
    assert on_cpu[3] == on_dev[3] == "median"
    assert on_dev[0] == pytest.approx(on_cpu[0], abs=1e-9) and on_dev[0] == pytest.approx(6.02, abs=0.01)
    assert on_dev[1:3] == pytest.approx(on_cpu[1:3], abs=1e-9)


@pytest.mark.parametrize("tight", [False, True])
def test_gcc_phat_curves_on_the_device_equal_numpys(tight):
    rng = np.random.default_rng(5)
    r = rng.standard_normal(30_000)
    d = np.concatenate([np.zeros(700), r, np.zeros(300)]) + 0.1 * rng.standard_normal(31_000)
    offsets = np.arange(650, 760) if tight else np.arange(-4000, 4001)
    phat, ncc = _curves(r, d, offsets, tight)
    phat_d, ncc_d = _curves(r, d, offsets, tight, device=CPU)
    assert np.allclose(phat_d, phat, rtol=1e-9, atol=1e-12) and np.allclose(ncc_d, ncc, rtol=1e-9, atol=1e-12)
    assert offsets[np.argmax(ncc_d)] == 700


@pytest.mark.parametrize("lag, invert, seconds", [(1234, False, 40.0), (-8000, True, 12.0), (37, False, 3.0)])
def test_a_lag_found_on_the_device_is_the_cpus(lag, invert, seconds):
    """Coarse pass, full-rate fine pass and the polarity: the same lag to 1e-6 samples."""
    sr = 16000
    x = music_like(seconds + 1.0, sr, seed=6)[:, 0].astype(np.float64)
    ref = x[sr // 2 : sr // 2 + int(seconds * sr)]
    deg = x[sr // 2 - lag : sr // 2 - lag + int(seconds * sr)] * (-0.7 if invert else 0.7)
    on_cpu = find_lag(ref, deg, sr)
    on_dev = find_lag(ref, deg, sr, device=CPU)
    assert round(on_cpu.lag) == lag and on_dev.lag == pytest.approx(on_cpu.lag, abs=1e-6)
    assert on_dev.inverted == on_cpu.inverted == invert
    assert on_dev.confidence == pytest.approx(on_cpu.confidence, abs=1e-9)
    assert on_dev.method == on_cpu.method


def test_a_scorer_preparing_pairs_on_the_device_gives_the_cpus_scores(tmp_path):
    """The whole pair (alignment, the reference's and the degraded file's K-weighting) on the
    device: the alignment and gain of the CPU, and scores within 1e-6 points."""
    sr = 48000
    ref = music_like(8.0, sr, channels=2, seed=8)
    late = np.concatenate([np.zeros((1500, 2), np.float32), ref])[: ref.shape[0]]
    noisy = late * np.float32(0.6) + np.float32(0.003) * np.random.default_rng(1).standard_normal(ref.shape).astype(
        np.float32)
    paths = []
    for name, x in (("ref", ref), ("noisy", noisy)):
        paths.append(str(tmp_path / f"{name}.wav"))
        sf.write(paths[-1], x, sr, subtype="FLOAT")
    host = Scorer(device="cpu", workers=0)
    assert host.prep_device is None  # the CPU computes these in numpy
    dev = Scorer(device="cpu", workers=0)
    dev.prep_device = CPU
    calls = []
    real = on_device.k_step_energies
    on_device.k_step_energies, restore = (lambda *a, **k: calls.append(1) or real(*a, **k)), real
    try:
        a, b = host.score(paths[0], paths[1]), dev.score(paths[0], paths[1])
    finally:
        on_device.k_step_energies = restore
    assert calls  # the device's filter ran
    assert a.alignment.lag_samples == b.alignment.lag_samples == 1500
    assert b.gain_db == pytest.approx(a.gain_db, abs=1e-9)
    assert b.score == pytest.approx(a.score, abs=1e-6) and 20 < a.score < 99
    pair = prepare_pair(AudioBuffer(ref.T.copy(), sr), AudioBuffer(noisy.T.copy(), sr), device=CPU)
    assert pair.alignment.lag_samples == 1500 and pair.gain_db == pytest.approx(a.gain_db, abs=1e-9)
