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


@pytest.mark.parametrize("sr_in, sr_out", [(44100, 48000), (48000, 24000), (16000, 48000), (48000, 44100),
                                           (22050, 24000)])
def test_the_devices_resampler_matches_soxr(monkeypatch, sr_in, sr_out):
    """Another filter than soxr's HQ, so not the same samples: the same length and alignment,
    and within 65 dB SNR of soxr on music (67-73 dB measured), in blocks of any size alike."""
    from deepaq_core.audio.resample import resample

    x = music_like(6.0, sr_in, channels=2, seed=4).T.copy()
    x = x[:, : x.shape[1] - 77]  # a length that is no multiple of anything
    want = resample(x, sr_in, sr_out)
    got = on_device.resample(x, sr_in, sr_out, CPU)
    assert got.shape == want.shape and got.dtype == np.float32
    snr = 10 * np.log10(np.mean(want.astype(np.float64) ** 2) / np.mean((got - want).astype(np.float64) ** 2))
    assert snr > 65
    monkeypatch.setattr(on_device, "_FRAME_SAMPLES", 50_000)
    assert np.allclose(on_device.resample(x, sr_in, sr_out, CPU), got, rtol=0, atol=1e-6)
    assert np.array_equal(on_device.resample(x[0], sr_in, sr_in, CPU), x[0])  # same rate: untouched


def test_soxr_while_decoding_equals_soxr_afterwards(tmp_path):
    """Why a scorer may decode at a file's own rate and resample afterwards: the samples are the
    ones resampling block by block while decoding gives, to the last bit."""
    from deepaq_core.audio import load_audio
    from deepaq_core.audio.resample import resample

    for sr_in, sr_out in ((44100, 48000), (48000, 24000), (32000, 48000)):
        path = tmp_path / f"x{sr_in}.flac"
        sf.write(path, music_like(7.0, sr_in, channels=2, seed=1), sr_in, subtype="PCM_24")
        streamed = load_audio(path, sr_out, "all").samples
        native = load_audio(path, None, "all")
        assert np.array_equal(resample(native.samples, sr_in, sr_out), streamed)


def _files_at(tmp_path, sr):
    ref = music_like(8.0, sr, channels=2, seed=8)
    deg = np.concatenate([np.zeros((700, 2), np.float32), ref])[: ref.shape[0]] * np.float32(0.7)
    deg = deg + np.float32(0.004) * np.random.default_rng(2).standard_normal(deg.shape).astype(np.float32)
    paths = []
    for name, x in (("ref", ref), ("deg", deg)):
        paths.append(str(tmp_path / f"{name}{sr}.flac"))
        sf.write(paths[-1], x, sr, subtype="PCM_24")
    return paths


def test_a_scorer_that_may_use_a_gpu_reads_at_the_files_rate(tmp_path, monkeypatch):
    """A scorer that may run on CUDA decodes at the file's rate and resamples where it prepares
    pairs: on the CPU (soxr) the very numbers of the usual reads, read ahead or not; on the
    device (here torch's CPU device) the same numbers read ahead or not, within 0.01 points of
    the CPU's."""
    import deepaq_core.scoring as scoring

    ref, deg = _files_at(tmp_path, 44100)
    usual = Scorer(device="cpu", workers=0).score(ref, deg)
    assert not Scorer(device="cpu", workers=0)._native_reads
    monkeypatch.setattr(scoring, "_may_use_cuda", lambda device: True)
    native = Scorer(device="cpu", workers=0)
    assert native._native_reads and native._read_rate is None
    ahead = Scorer(device="cpu", prefetch=[ref, deg])
    assert all(key[2] is None for key in ahead._ahead)  # read at the file's own rate
    for other in (native.score(ref, deg), ahead.score(ref, deg)):
        assert other.score == usual.score and other.gain_db == usual.gain_db
        assert np.array_equal(other.frame_distance, usual.frame_distance, equal_nan=True)
    on_dev, on_dev_ahead = Scorer(device="cpu", workers=0), Scorer(device="cpu", prefetch=[ref, deg])
    on_dev.prep_device = on_dev_ahead.prep_device = CPU
    a, b = on_dev.score(ref, deg), on_dev_ahead.score(ref, deg)
    assert a.score == b.score and a.alignment == b.alignment
    assert a.score == pytest.approx(usual.score, abs=0.01) and a.score != usual.score  # another resampler
    # files already at the model's rate: the reference's loudness is still measured while it is read
    ref48, deg48 = _files_at(tmp_path, 48000)
    ahead48 = Scorer(device="cpu", prefetch=[ref48, deg48])
    (fut,) = ahead48._steps_ahead.values()
    assert fut.result(timeout=60) is not None
    assert ahead48.score(ref48, deg48).score == Scorer(device="cpu", workers=0).score(ref48, deg48).score
    assert not ahead48._steps_ahead and not ahead48._ahead  # and used
    assert not ahead._steps_ahead and not ahead._ahead


def test_which_scorers_read_at_the_files_rate():
    from deepaq_core.model.cpu_model import accelerator_possible
    from deepaq_core.scoring import _may_use_cuda

    assert _may_use_cuda("cuda") and _may_use_cuda("cuda:1")
    assert not _may_use_cuda("cpu") and not _may_use_cuda("mps")
    assert _may_use_cuda("auto") == _may_use_cuda(None) == accelerator_possible()


def test_a_gpu_out_of_memory_moves_the_preparation_to_the_host(tmp_path, monkeypatch, caplog):
    """torch's out-of-memory error while a pair is prepared on the device: a warning, and the pair
    (and every later one) prepared on the host, with the host's numbers."""
    ref, deg = _files_at(tmp_path, 44100)
    host = Scorer(device="cpu", workers=0).score(ref, deg)

    class OutOfMemoryError(RuntimeError):  # what torch.cuda raises, by name
        pass

    def full(*a, **k):
        raise OutOfMemoryError("CUDA out of memory")

    import deepaq_core.scoring as scoring

    monkeypatch.setattr(scoring, "_may_use_cuda", lambda device: True)  # reads at 44.1 kHz, resamples after
    scorer = Scorer(device="cpu", workers=0)
    scorer.prep_device = CPU
    monkeypatch.setattr(on_device, "resample", full)
    with caplog.at_level("WARNING", logger="deepaq_core.scoring"):
        result = scorer.score(ref, deg)
    assert scorer.prep_device is None and "ran out of memory" in caplog.text
    assert result.score == host.score and result.gain_db == host.gain_db
    scorer.prep_device = CPU
    monkeypatch.setattr(on_device, "resample", lambda *a, **k: (_ for _ in ()).throw(ValueError("a bug")))
    with pytest.raises(ValueError, match="a bug"):  # any other error is not hidden
        scorer.score(ref, deg)
