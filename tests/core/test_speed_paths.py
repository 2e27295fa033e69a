"""The faster ways of computing things give exactly what the plain ways give."""

from __future__ import annotations

import os

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from deepaq_core.audio import AudioBuffer, prepare_pair
from deepaq_core.audio.loudness import (
    _block_powers,
    _channel_weights,
    _gate,
    integrated_loudness,
    k_step_energies,
    robust_matching_gain_db,
)
from deepaq_core.audio.resample import BlockResampler, downmix_frames
from deepaq_core.errors import AudioError
from deepaq_core.scoring import Scorer
from deepaq_core.timewarp import follow_time
from tests.conftest import music_like


@pytest.mark.parametrize("channels", range(2, 9))
def test_downmix_is_numpys_mean_bit_for_bit(channels):
    rng = np.random.default_rng(channels)
    block = (rng.standard_normal((5000, channels)) * rng.uniform(0.1, 3.0, channels)).astype(np.float32)
    assert np.array_equal(downmix_frames(block), block.mean(axis=1, dtype=np.float32))
    conv = BlockResampler(48000, 48000, channels, mono=True, expected_frames=5000)
    conv.push(block, last=True)
    assert np.array_equal(conv.result()[0], block.mean(axis=1, dtype=np.float32))


def _one_pass_block_powers(x, sr):
    """BS.1770 block powers with one sosfilt pass over each whole channel (the plain way)."""
    import scipy.signal

    from deepaq_core.audio.loudness import _k_sos

    sos = _k_sos(pyloudnorm.Meter(sr))
    block, step = int(round(0.4 * sr)), int(round(0.1 * sr))
    num_blocks = 1 + (x.shape[1] - block) // step
    per = block // step
    n_steps = num_blocks + per - 1
    z = np.empty((x.shape[0], num_blocks))
    for ch in range(x.shape[0]):
        y = scipy.signal.sosfilt(sos, x[ch].astype(np.float64))
        sq = np.square(y[: n_steps * step]).reshape(n_steps, step).sum(axis=1)
        csum = np.concatenate(([0.0], np.cumsum(sq)))
        z[ch] = (csum[per : per + num_blocks] - csum[:num_blocks]) / block
    return _channel_weights(x.shape[0]) @ z


@pytest.mark.parametrize("sr,seconds", [(48000, 47.3), (44100, 2.05), (16000, 0.45)])
def test_piecewise_k_weighting_equals_one_pass(sr, seconds):
    rng = np.random.default_rng(3)
    x = (0.1 * rng.standard_normal((2, int(seconds * sr)))).astype(np.float32)
    ours = _block_powers(x, sr, pyloudnorm.Meter(sr), _channel_weights(2))
    assert np.array_equal(ours, _one_pass_block_powers(x, sr))


def test_reference_steps_serve_a_trimmed_reference():
    sr = 48000
    rng = np.random.default_rng(4)
    ref = (0.1 * rng.standard_normal((1, 20 * sr))).astype(np.float32)
    deg = (0.5 * ref + 0.01 * rng.standard_normal(ref.shape)).astype(np.float32)
    steps = k_step_energies(ref, sr)
    assert integrated_loudness(ref, sr, steps) == integrated_loudness(ref, sr)
    n = 17 * sr + 1234  # the reference cut at its end, as alignment does for a late degraded copy
    assert robust_matching_gain_db(ref[:, :n], deg[:, :n], sr, steps) == robust_matching_gain_db(
        ref[:, :n], deg[:, :n], sr)
    with pytest.raises(ValueError):  # steps of a shorter signal cannot serve a longer one
        _block_powers(ref, sr, pyloudnorm.Meter(sr), _channel_weights(1), steps[:, :50])
    assert np.isfinite(_gate(_block_powers(ref, sr, pyloudnorm.Meter(sr), _channel_weights(1), steps)))


@pytest.mark.parametrize("lag", [0, 2400, -2400])
def test_prepare_pair_with_reference_steps_is_unchanged(lag):
    sr = 48000
    ref = music_like(8.0, sr, seed=5)[:, 0][None, :]
    deg = np.roll(ref, lag, axis=1) * np.float32(0.7)
    steps = k_step_energies(ref, sr)
    a = prepare_pair(AudioBuffer(ref, sr), AudioBuffer(deg, sr))
    b = prepare_pair(AudioBuffer(ref, sr), AudioBuffer(deg, sr), reference_steps=steps)
    assert a.alignment == b.alignment
    assert (a.gain_db, a.reference_loudness_lufs, a.degraded_loudness_lufs) == (
        b.gain_db, b.reference_loudness_lufs, b.degraded_loudness_lufs)
    assert np.array_equal(a.degraded.samples, b.degraded.samples)
    calls = []
    c = prepare_pair(AudioBuffer(ref, sr), AudioBuffer(deg, sr), reference_steps=lambda: calls.append(1) or steps)
    assert (c.alignment, c.gain_db, c.reference_loudness_lufs) == (b.alignment, b.gain_db, b.reference_loudness_lufs)
    # asked for only when the kept reference starts at its first sample (a late degraded signal)
    assert len(calls) == (1 if c.alignment.lag_samples >= 0 else 0)


def _naive_follow(ref, deg, band, penalty):
    """The banded DTW written as plainly as possible (loops over cells)."""
    n = ref.shape[0]
    width = 2 * band + 1
    cost = np.full((n, width), np.inf)
    for i in range(n):
        for o in range(width):
            j = i + o - band
            if 0 <= j < n:
                cost[i, o] = np.float32(np.sqrt(np.sum((ref[i] - deg[j]) ** 2, dtype=np.float32)))
    acc = cost[0] + penalty * np.abs(np.arange(width) - band)
    back = np.zeros((n, width), dtype=int)
    for i in range(1, n):
        new = np.empty(width)
        for o in range(width):
            best, step = acc[o], 0
            if o + 1 < width and acc[o + 1] + penalty < best:
                best, step = acc[o + 1] + penalty, 1
            if o - 1 >= 0 and acc[o - 1] + penalty < best:
                best, step = acc[o - 1] + penalty, 2
            new[o] = best + cost[i, o]
            back[i, o] = step
        acc = new
    o = int(np.argmin(acc + penalty * np.abs(np.arange(width) - band)))
    path = np.empty(n, dtype=int)
    for i in range(n - 1, -1, -1):
        path[i] = i + o - band
        if i and back[i, o] == 1:
            o += 1
        elif i and back[i, o] == 2:
            o -= 1
    return np.clip(path, 0, n - 1)


@pytest.mark.parametrize("n,band,penalty,levels", [(700, 6, 0.5, 0), (600, 4, 0.0, 3), (40, 3, 1.0, 2)])
def test_follow_time_equals_a_naive_dtw(n, band, penalty, levels):
    rng = np.random.default_rng(n)
    if levels:  # few distinct values: many ties, which must be broken the same way
        a = rng.integers(0, levels, (n, 3)).astype(np.float32)
        b = rng.integers(0, levels, (n, 3)).astype(np.float32)
    else:
        a = rng.random((n, 5)).astype(np.float32)
        b = np.roll(a, 2, axis=0) + 0.05 * rng.random((n, 5)).astype(np.float32)
    assert np.array_equal(follow_time(a, b, band, penalty).path, _naive_follow(a, b, band, penalty))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ahead")
    sr = 48000
    ref = music_like(6.0, sr, seed=8)[:, 0]
    lp = np.convolve(ref, np.ones(8) / 8, mode="same").astype(np.float32)
    paths = {}
    for name, x in (("ref", ref), ("lp", lp), ("late", np.concatenate([np.zeros(960, np.float32), ref]))):
        paths[name] = str(folder / f"{name}.wav")
        sf.write(paths[name], np.stack([x, 0.8 * x], axis=1), sr, subtype="FLOAT")
    return paths


def test_reading_ahead_changes_no_result(files):
    plain = Scorer(device="cpu", workers=0).score_many(files["ref"], [files["lp"], files["late"]])
    ahead = Scorer(device="cpu", prefetch=[files["ref"], files["lp"]])
    assert len(ahead._ahead) == 2  # both reads started before the model loaded
    assert len(ahead._steps_ahead) == 1  # and the reference's loudness after its read
    fast = ahead.score_many(files["ref"], [files["lp"], files["late"]])
    assert not ahead._ahead and not ahead._steps_ahead
    for a, b in zip(plain, fast):
        assert a.score == b.score and a.distance == b.distance
        assert a.alignment == b.alignment and a.gain_db == b.gain_db
        assert np.array_equal(a.frame_distance, b.frame_distance, equal_nan=True)


def test_the_reference_loudness_measured_while_reading_equals_measuring_it_after(files):
    """The prefetched reference's K-weighted steps come from its decoded stretches as they arrive
    (a StepMeter in the loudness thread): the same values as measuring the whole file afterwards."""
    from deepaq_core.audio import load_audio
    from deepaq_core.audio.loudness import k_step_energies

    scorer = Scorer(device="cpu", prefetch=[files["ref"], files["lp"]])
    (key, fut), = scorer._steps_ahead.items()
    ref = load_audio(files["ref"], 48000, channels="all")
    assert np.array_equal(fut.result(timeout=60), k_step_energies(ref.samples, 48000))


def test_every_degraded_input_is_read_and_prepared_once(files, monkeypatch):
    import deepaq_core.scoring as scoring

    loads, pairs = [], []
    real_load, real_prepare = scoring.load_audio, scoring.prepare_pair
    monkeypatch.setattr(scoring, "load_audio", lambda path, *a, **k: loads.append(path) or real_load(path, *a, **k))
    monkeypatch.setattr(scoring, "prepare_pair", lambda *a, **k: pairs.append(1) or real_prepare(*a, **k))
    steps, meters = [], []
    real_steps, real_meter = scoring.k_step_energies, scoring.StepMeter
    monkeypatch.setattr(scoring, "k_step_energies",
                        lambda x, *a, **k: steps.append(np.atleast_2d(x).shape[0]) or real_steps(x, *a, **k))
    monkeypatch.setattr(scoring, "StepMeter", lambda *a, **k: meters.append(1) or real_meter(*a, **k))
    scorer = Scorer(device="cpu", prefetch=[files["ref"], files["lp"]])
    results = scorer.score_many(files["ref"], [files["lp"], files["late"], files["lp"]])
    assert len(results) == 3 and results[0].score == results[2].score
    assert sorted(loads) == sorted([files["ref"], files["lp"], files["late"], files["lp"]])
    assert len(pairs) == 3
    assert meters == [1] and not steps  # the reference's loudness, measured once (while it was read)


def test_an_unreadable_later_file_fails_cleanly(files, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio")
    scorer = Scorer(device="cpu")
    with pytest.raises(AudioError):
        scorer.score_many(files["ref"], [files["lp"], str(bad)])
    assert not scorer._ahead
    assert scorer.score(files["ref"], files["lp"]).score > 0  # the scorer still works


def test_a_light_front_end_runs_on_one_cpu_thread_and_restores_the_setting():
    import torch

    from deepaq_core.model.bundle import build_model
    from deepaq_core.model.device import LoadedModel
    from deepaq_core.model.registry import resolve

    bundle = resolve(None)  # the built-in model in torch (what a GPU runs; the CPU runs it in numpy)
    loaded = LoadedModel(model=build_model(bundle), bundle=bundle, device=torch.device("cpu"))
    assert loaded.model.backbone.cpu_threads == 1
    seen = []
    hook = loaded.model.backbone.register_forward_pre_hook(lambda m, a: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        loaded.run(torch.zeros(1, 48000))
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        hook.remove()
        torch.set_num_threads(before)


def test_the_numpy_front_end_takes_one_thread_unless_alone(monkeypatch):
    from deepaq_core.model import cpu_model
    from deepaq_core.model.registry import load_model

    loaded = load_model(None, "cpu")
    assert isinstance(loaded, cpu_model.CpuLoadedModel)
    seen = []
    real = cpu_model.AuditoryFrontEnd.__call__
    monkeypatch.setattr(cpu_model.AuditoryFrontEnd, "__call__",
                        lambda self, wave, threads=1: seen.append(threads) or real(self, wave, threads))
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    cpu_model.set_cpu_threads(None)
    try:
        loaded.run(np.zeros((1, 48000), np.float32))
        loaded.run(np.zeros((1, 48000), np.float32), alone=True)
        cpu_model.set_cpu_threads(3)
        loaded.run(np.zeros((1, 48000), np.float32), alone=True)
    finally:
        cpu_model.set_cpu_threads(None)
    assert seen == [1, 4, 3]


def test_inputs_embedded_together_score_as_alone(files):
    """The GPU path (several degraded inputs' chunks in one batch), run on the CPU."""
    plain = Scorer(device="cpu", workers=0)
    together = Scorer(device="cpu")
    together._group = 2
    loaded = together.loaded  # shared with the other scorer (the process caches models)
    size = loaded.batch_size
    degs = [files["lp"], files["late"], files["lp"]]
    a = plain.score_many(files["ref"], degs)
    try:
        loaded.batch_size = 4
        gen = together.iter_score(files["ref"], degs)
        items = list(gen)
    finally:
        loaded.batch_size = size
    fractions = [i.fraction for i in items if hasattr(i, "fraction")]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    b = [i.result for i in items if hasattr(i, "result")]
    assert [i.index for i in items if hasattr(i, "result")] == [0, 1, 2]
    for x, y in zip(a, b):
        assert y.score == pytest.approx(x.score, abs=1e-4)
        assert y.alignment == x.alignment
        np.testing.assert_allclose(y.frame_distance, x.frame_distance, rtol=1e-4, atol=1e-6)


def test_group_size_fills_a_batch_and_no_more():
    scorer = Scorer(device="cpu", workers=0)
    loaded = scorer.loaded
    assert scorer._group_size(48000 * 10) == 1  # the CPU: one input at a time
    device, size = loaded.device, loaded.batch_size
    try:
        import torch

        loaded.device, loaded.batch_size = torch.device("meta"), 8  # as on a GPU (nothing runs here)
        assert scorer._group_size(48000 * 10) == 8  # 10 s: one chunk per signal
        assert scorer._group_size(48000 * 30) == 2  # three chunks each
        assert scorer._group_size(48000 * 600) == 1  # 60 chunks: fills batches alone
    finally:
        loaded.device, loaded.batch_size = device, size


@pytest.mark.parametrize("start, cal, pre", [(0, 1.0, 1.0), (12345, 0.73, 1.31), (48000 * 3, 1.9, 1.0)])
def test_spliced_signal_embeds_exactly_like_the_built_timeline(start, cal, pre):
    from deepaq_core.embedding import Spliced, embed
    from deepaq_core.model.registry import load_model

    rng = np.random.default_rng(start)
    outer = music_like(9, 48000, seed=1)[:, 0]
    inner = (0.5 * rng.standard_normal(outer.size - start - 4000)).astype(np.float32)
    built = outer * np.float32(cal)  # the way the timeline was built before: a whole-file copy
    built[start : start + inner.size] = (inner * np.float32(pre)) * np.float32(cal)
    spliced = Spliced(outer, inner, start, cal, cal, pre_gain=pre)
    out = np.zeros(outer.size, dtype=np.float32)
    for lo, hi in ((0, outer.size), (start - 7 if start else 0, start + 100), (outer.size - 5000, outer.size)):
        spliced.read(lo, hi, out[: hi - lo])
        assert np.array_equal(out[: hi - lo], built[lo:hi])
    loaded = load_model(None, device="cpu")
    a = embed(loaded, built, chunk_s=2.0, context_s=0.5)
    b = embed(loaded, spliced, chunk_s=2.0, context_s=0.5)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.layer_bins, b.layer_bins)


def test_prepare_pair_unscaled_reports_the_gain_it_leaves_to_the_caller():
    x = music_like(6, 48000, channels=2, seed=4).T.copy()
    deg = np.roll(x, 480, axis=1) * np.float32(0.4)
    ref_buf, deg_buf = AudioBuffer(x, 48000), AudioBuffer(deg, 48000)
    scaled = prepare_pair(ref_buf, deg_buf)
    raw = prepare_pair(ref_buf, deg_buf, scale=False)
    assert raw.gain_db == scaled.gain_db and abs(raw.gain_db - 7.96) < 0.1  # 0.4 is -7.96 dB
    assert np.shares_memory(raw.degraded.samples, deg_buf.samples)  # a view, no copy
    assert np.array_equal(raw.degraded.samples * np.float32(10.0 ** (raw.gain_db / 20.0)), scaled.degraded.samples)


def test_band_costs_in_two_threads_equal_one(monkeypatch):
    import deepaq_core.timewarp as tw

    rng = np.random.default_rng(4)
    a = rng.random((6000, 20)).astype(np.float32)
    b = np.roll(a, 3, axis=0) + 0.1 * rng.random((6000, 20)).astype(np.float32)
    assert 6000 * 201 >= tw._PARALLEL_CELLS  # this size takes the two-thread path
    both = tw._band_costs(a, b, 100)
    monkeypatch.setattr(tw, "_PARALLEL_CELLS", 1 << 40)
    assert np.array_equal(both, tw._band_costs(a, b, 100))


@pytest.mark.parametrize("n, lags", [(300_000, 1281), (70_001, 1281), (50_000, 7)])
def test_blocked_lag_correlation_equals_scipy(n, lags):
    from scipy.signal import correlate

    from deepaq_core.timewarp import _lag_correlation

    rng = np.random.default_rng(n)
    seg = rng.standard_normal(n)
    win = np.concatenate([rng.standard_normal(lags // 2), seg, rng.standard_normal(lags - 1 - lags // 2)])
    win += 0.3 * rng.standard_normal(win.size)
    want = correlate(win, seg, mode="valid", method="fft")
    got = _lag_correlation(win, seg)
    assert got.shape == want.shape == (lags,)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * np.abs(want).max())
    assert got.argmax() == want.argmax()


@pytest.mark.parametrize("size, n", [(3_000_000, 3_000_000 - 1280), ((1 << 20) + 1280, 1 << 20),
                                     (1 << 20, 1 << 20), (5000, 4000)])
def test_window_energies_are_those_of_one_cumulative_sum(size, n):
    from deepaq_core.timewarp import _window_energies

    x = np.random.default_rng(size).standard_normal(size).astype(np.float32)
    w = x.astype(np.float64)
    e = np.concatenate([[0.0], np.cumsum(w * w)])
    assert np.array_equal(_window_energies(x, n), e[n:] - e[: e.size - n])


def test_a_long_recut_is_the_same_with_blocked_correlation(monkeypatch):
    import deepaq_core.timewarp as tw

    sr, hop = 48000, 640
    ref = music_like(20.0, sr, seed=11)[:, 0].astype(np.float32)
    cut = 9 * sr  # 20 ms deleted at 9 s: the path drops time once
    deg = np.concatenate([ref[:cut], ref[cut + 960:]])
    lag = np.zeros(ref.size // hop, dtype=np.int64)
    lag[cut // hop + 1:] = -1  # the degraded signal is 960 samples early from there on
    warp = tw.TimeWarp(np.arange(lag.size) + lag, 0, 0)
    blocked = tw.realign_samples(ref, deg, 0, warp, 0, hop)
    monkeypatch.setattr(tw, "_BLOCKED_CORRELATION", 1 << 40)
    plain = tw.realign_samples(ref, deg, 0, warp, 0, hop)
    assert blocked is not None and plain is not None
    assert blocked.pieces == plain.pieces
    np.testing.assert_array_equal(blocked.samples, plain.samples)
    assert_samples_follow_pieces(blocked, deg)


def assert_samples_follow_pieces(recut, deg):
    """samples[t] is deg[t + shift] of its piece, or 0 where that sample does not exist."""
    want = np.zeros_like(recut.samples)
    for start, stop, shift in recut.pieces:
        src = np.arange(start, stop) + shift
        ok = (src >= 0) & (src < deg.size)
        want[start:stop][ok] = deg[src[ok]]
    np.testing.assert_array_equal(recut.samples, want)


def test_placing_a_piece_equals_indexing_sample_by_sample():
    from deepaq_core.timewarp import _place

    rng = np.random.default_rng(5)
    deg = rng.standard_normal(1000).astype(np.float32)
    for start, stop, shift in [(0, 1000, 0), (0, 300, -50), (700, 1000, 80), (0, 1000, 1200), (0, 1000, -1200),
                               (100, 900, -950), (100, 900, 950), (500, 500, 3)]:
        got = np.zeros(1000, np.float32)
        _place(got, deg, start, stop, shift)
        want = np.zeros(1000, np.float32)
        src = np.arange(start, stop) + shift
        ok = (src >= 0) & (src < deg.size)
        want[start:stop][ok] = deg[src[ok]]
        np.testing.assert_array_equal(got, want)


def test_helpers_start_only_after_scipy_is_imported(files):
    """Two threads importing scipy submodules for the first time at once can fail (KeyError: 'scipy');
    a fresh process shows that every helper job starts with them already imported, with and without
    the read-ahead."""
    import subprocess
    import sys

    code = f"""
import sys
import deepaq_core.scoring as S
seen = []
real = S.Scorer._submit
def submit(self, fn, *args):
    seen.append(all(m in sys.modules for m in ("pyloudnorm", "scipy.fft", "scipy.ndimage", "scipy.signal"))
                or getattr(fn, "__name__", "") == "load_audio")  # reading imports no scipy
    return real(self, fn, *args)
S.Scorer._submit = submit
assert "scipy" not in sys.modules
S.Scorer(device="cpu").score({files["ref"]!r}, {files["lp"]!r})
S.Scorer(device="cpu", prefetch=[{files["ref"]!r}, {files["late"]!r}]).score({files["ref"]!r}, {files["late"]!r})
print(len(seen), all(seen))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    count, ok = out.stdout.split()
    assert int(count) >= 4 and ok == "True"


def test_reading_a_mono_reference_ahead_changes_no_result(tmp_path):
    x = music_like(4.0, 48000, seed=3)[:, 0]
    ref, deg = str(tmp_path / "ref.wav"), str(tmp_path / "deg.wav")
    sf.write(ref, x, 48000, subtype="FLOAT")
    sf.write(deg, np.convolve(x, np.ones(6) / 6, mode="same").astype(np.float32), 48000, subtype="FLOAT")
    plain = Scorer(device="cpu", workers=0).score(ref, deg)
    ahead = Scorer(device="cpu", prefetch=[ref, deg])
    fast = ahead.score(ref, deg)
    assert plain.score == fast.score and plain.gain_db == fast.gain_db


@pytest.mark.parametrize("n, band", [(700, 40), (41, 40), (5, 4), (130, 63)])
def test_band_costs_in_blocks_equal_one_diagonal_at_a_time(n, band):
    """Blocks of frames against every offset give each cell the float32 value of the frame pair's
    own difference (what one diagonal at a time computed), and inf where no degraded frame is."""
    import deepaq_core.timewarp as tw

    rng = np.random.default_rng(5)
    a = rng.random((n, 12)).astype(np.float32)
    b = (a + 0.1 * rng.random((n, 12))).astype(np.float32)
    width = 2 * band + 1
    want = np.full((n, width), np.inf, np.float32)
    for o in range(width):
        shift = o - band
        lo, hi = max(0, -shift), min(n, n - shift)
        if hi > lo:
            diff = a[lo:hi] - b[lo + shift : hi + shift]
            want[lo:hi, o] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
    assert np.array_equal(tw._band_costs(a, b, band), want)


def test_distances_computed_beside_the_time_path_are_used_only_where_they_hold(files, tmp_path, monkeypatch):
    """While the time-following path is computed, a helper thread computes every channel's distances
    as if the path kept time. Where it does (a copy with hiss added) they are the result and
    nothing is computed twice; where it moves (the low-passed copy, whose path takes a detour of a
    few frames) they are dropped and computed along the path. Either way the one-thread scorer's
    numbers, to the last bit."""
    x, sr = sf.read(files["ref"], dtype="float32", always_2d=True)
    hiss = str(tmp_path / "hiss.wav")
    sf.write(hiss, x + np.float32(0.01) * np.random.default_rng(3).standard_normal(x.shape).astype(np.float32), sr,
             subtype="FLOAT")
    calls = []
    real = Scorer._channel_parts
    monkeypatch.setattr(Scorer, "_channel_parts", lambda self, ch, *a: calls.append(a[2] is None) or real(self, ch, *a))
    plain = Scorer(device="cpu", workers=0).score_many(files["ref"], [hiss, files["lp"]])
    assert len(calls) == 4 and not any(calls)  # two channels, two pairs; no guesses
    calls.clear()
    helped = Scorer(device="cpu", workers=2)
    kept = helped.score(files["ref"], hiss)
    assert kept.time_dropped_s == 0 and kept.score < 95  # the path kept time, and there is damage
    assert calls == [True, True]  # each channel once: the guess, and it held
    calls.clear()
    moved = helped.score(files["ref"], files["lp"])
    assert moved.time_dropped_s > 0  # the path moved
    # computed along the path; the guess dropped (its thread stops after the channel it was on)
    assert calls.count(False) == 2 and 1 <= calls.count(True) <= 2
    for a, b in zip(plain, [kept, moved]):
        assert a.score == b.score and a.channel_scores == b.channel_scores and a.distance == b.distance
        assert np.array_equal(a.frame_distance, b.frame_distance, equal_nan=True)
        assert np.array_equal(a.curve.distance, b.curve.distance)


def test_a_guess_is_taken_only_for_the_same_embeddings_and_an_identity_path():
    import threading
    from concurrent.futures import Future

    from deepaq_core.timewarp import TimeWarp

    def guess():
        fut = Future()
        fut.set_result(["p0", "p1"])
        return fut, threading.Event()

    embs = [object(), object()]
    same = TimeWarp(np.arange(50), 0, 0)
    moved = TimeWarp(np.concatenate([np.arange(20), np.arange(21, 50), [49]]), 1, 1)
    assert Scorer._speculated(None, embs, embs, None, [None, None]) is None
    assert Scorer._speculated(guess(), embs, list(embs), None, [None, None]) == ["p0", "p1"]
    assert Scorer._speculated(guess(), embs, list(embs), [same, same], [None, None]) == ["p0", "p1"]
    dropped = guess()
    assert Scorer._speculated(dropped, embs, list(embs), [same, moved], [None, None]) is None
    assert dropped[1].is_set()
    assert Scorer._speculated(guess(), embs, [embs[0], object()], [same, same], [None, None]) is None
    assert Scorer._speculated(guess(), embs, list(embs), [same, same], [None, object()]) is None


def test_a_failed_time_path_stops_the_guess(files, monkeypatch):
    from deepaq_core.errors import Cancelled

    guesses = []
    real = Scorer._speculate
    monkeypatch.setattr(Scorer, "_speculate", lambda self, *a: guesses.append(real(self, *a)) or guesses[-1])

    def cancelled(self, *a, **k):
        raise Cancelled("Scoring was cancelled.")

    monkeypatch.setattr(Scorer, "_follow_samples", cancelled)
    with pytest.raises(Cancelled):
        Scorer(device="cpu", workers=2).score(files["ref"], files["lp"])
    assert len(guesses) == 1 and guesses[0][1].is_set()
