"""Scoring behaviour on generated signals with the built-in model."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import soundfile as sf
import torch

from deepaq_core.audio import AudioBuffer
from deepaq_core.distance import DistanceSpec, power_mean
from deepaq_core.embedding import embed
from deepaq_core.errors import AudioError, Cancelled
from deepaq_core.model.backbone import Backbone
from deepaq_core.scoring import Partial, Progress, ScoreSettings, Scorer
from tests.conftest import music_like


@pytest.fixture(scope="module")
def scorer():
    return Scorer(device="cpu")


def test_identical_files_are_transparent(scorer, signals):
    r = scorer.score(signals["ref"], signals["same"])
    assert r.distance == pytest.approx(0.0, abs=1e-6)
    assert r.score == pytest.approx(100.0, abs=1e-4)
    assert np.nanmax(r.frame_distance) < 1e-5
    assert np.all(r.curve.score > 99.99)
    assert r.alignment.lag_samples == 0
    assert r.gain_db == pytest.approx(0.0, abs=1e-3)


def test_result_is_complete_and_frozen(scorer, signals):
    r = scorer.score(signals["ref"], signals["lp"])
    # The built-in model's distance (relative loudness disturbance) has no upper bound, unlike a
    # cosine distance; the 0-100 score below carries the range check.
    assert 0.0 < r.distance and np.isfinite(r.distance)
    assert 0.0 <= r.score < 100.0
    # 6 s at 75 frames/s
    assert r.frame_rate == pytest.approx(75.0)
    assert r.frame_distance.shape == (450,)
    # curve: 3 s windows, 0.5 s hop over 6 s -> 7 windows
    assert r.curve.start_s.shape == (7,)
    assert r.curve.end_s[0] - r.curve.start_s[0] == pytest.approx(3.0, abs=1 / 75)
    assert np.all(np.diff(r.curve.start_s) == pytest.approx(0.5, abs=1 / 75))
    # global distance summarises the curve (the built-in model's distance pools by a power mean)
    spec = DistanceSpec.from_card(scorer.loaded.bundle.card)
    assert r.distance == pytest.approx(float(power_mean(r.curve.distance, spec.time_p)), rel=1e-6)
    # heatmaps: one row per hidden state of the backbone, finite values inside the overlap
    assert r.layer_heatmap.values.shape[0] == scorer.loaded.model.backbone.num_hidden_states
    assert np.isfinite(r.layer_heatmap.values).all()
    m = r.time_matrix.values
    assert m.shape[0] == m.shape[1] and m.shape[0] <= 256
    assert r.reference.sha256 != r.degraded.sha256 and len(r.reference.sha256) == 64
    assert r.model.name == "compact" and r.model.status in ("trained", "designed", "untrained")
    with pytest.raises(ValueError):
        r.curve.score[0] = 0.0  # arrays are read-only
    with pytest.raises(Exception):
        r.score = 1.0  # frozen dataclass


def test_matrix_size_zero_leaves_the_time_matrix_out_and_nothing_else(scorer, signals):
    full = scorer.score(signals["ref"], signals["lp"])
    lean = Scorer(device="cpu", settings=ScoreSettings(matrix_size=0)).score(signals["ref"], signals["lp"])
    assert full.time_matrix is not None and lean.time_matrix is None
    assert lean.score == full.score and lean.distance == full.distance
    np.testing.assert_array_equal(lean.curve.score, full.curve.score)
    np.testing.assert_array_equal(lean.frame_distance, full.frame_distance)
    np.testing.assert_array_equal(lean.layer_heatmap.values, full.layer_heatmap.values)
    assert lean.settings["matrix_size"] == 0
    with pytest.raises(ValueError, match="matrix_size"):
        ScoreSettings(matrix_size=-1)


def test_planted_delay_and_gain_are_recovered(scorer, signals):
    r = scorer.score(signals["ref"], signals["delayed"])
    assert abs(r.alignment.lag_native_samples - 2100) <= 2
    assert r.alignment.lag_ms == pytest.approx(2100 / 48, abs=0.05)
    assert r.gain_db == pytest.approx(6.02, abs=0.1)
    # the degraded file is late: its first 2100 samples have no reference counterpart
    assert r.overlap_start_s == 0.0
    assert r.overlap_end_s == pytest.approx(6.0 - 2100 / 48000, abs=1 / 75 + 1e-6)
    assert r.trimmed_reference_s == pytest.approx(2100 / 48000, abs=1e-3)
    # after alignment and level matching the delayed copy is the reference itself
    assert r.score > 99.0


def test_degradations_rank_by_intensity(scorer, signals):
    """A stronger low-pass is further from the reference than a milder one (any sane embedding)."""
    lp3, lp8 = scorer.score_many(signals["ref"], [signals["lp"], signals["lp8"]])
    assert lp3.distance > lp8.distance > 0


def test_reference_embedding_is_computed_once(scorer, signals, monkeypatch):
    import deepaq_core.scoring as scoring

    scorer._cache.clear()
    calls = []
    real = scoring.iter_embed

    def counting(loaded, wave, **kw):
        calls.append(kw.get("valid_samples"))
        return real(loaded, wave, **kw)

    monkeypatch.setattr(scoring, "iter_embed", counting)
    real_many = scoring.iter_embed_many

    def counting_many(loaded, waves, **kw):  # degraded inputs are embedded in groups
        calls.extend(kw.get("valid_samples") or [None] * len(waves))
        return real_many(loaded, waves, **kw)

    monkeypatch.setattr(scoring, "iter_embed_many", counting_many)
    scorer.score_many(signals["ref"], [signals["lp"], signals["noisy"], signals["lp8"]])
    scorer.score(signals["ref"], signals["lp"])
    # per channel (stereo, scored channel by channel): one reference embedding (valid_samples
    # None), then one per degraded file
    assert scorer.settings.channels == "each"
    assert calls.count(None) == 2
    assert len(calls) == 2 * 5


def test_progress_partials_and_cancel(scorer, signals):
    gen = scorer.iter_score(signals["ref"], [signals["lp"], signals["noisy"]])
    items = list(gen)
    fractions = [i.fraction for i in items if isinstance(i, Progress)]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [p.index for p in items if isinstance(p, Partial)] == [0, 1]

    stop = threading.Event()
    stop.set()
    scorer._cache.clear()
    with pytest.raises(Cancelled):
        scorer.score(signals["ref"], signals["lp"], cancel=stop)


def test_switches_off_alignment_and_loudness(signals):
    s = Scorer(device="cpu", settings=ScoreSettings(align=False, match_loudness=False))
    r = s.score(signals["ref"], signals["delayed"])
    assert r.alignment.lag_samples == 0 and not r.alignment.estimated
    assert r.gain_db == 0.0
    assert r.score < 99.0  # a 44 ms misalignment and a 6 dB level drop are not transparent
    s2 = Scorer(device="cpu", settings=ScoreSettings(lag_ms=2100 / 48))
    r2 = s2.score(signals["ref"], signals["delayed"])
    assert not r2.alignment.estimated and r2.alignment.lag_native_samples == 2100


def test_per_channel_scoring(signals, tmp_path):
    s = Scorer(device="cpu", settings=ScoreSettings(channels="each"))
    r = s.score(signals["ref"], signals["lp"])
    assert r.channel_mode == "each" and len(r.channel_scores) == 2
    assert min(r.channel_scores) <= r.score + 1e-3 or max(r.channel_scores) >= r.score - 1e-3
    assert np.isfinite(r.frame_distance[2:-2]).all()  # the channel mean keeps every scored frame
    # A mono file plays the same on both channels: it is compared with each reference channel,
    # exactly as a two-channel copy of it would be.
    m = s.score(signals["ref"], signals["mono"])
    mono, sr = sf.read(signals["mono"], dtype="float32", always_2d=True)
    dual = tmp_path / "dual.wav"
    sf.write(dual, np.repeat(mono, 2, axis=1), sr, subtype="FLOAT")
    assert m.degraded.channels == 1 and len(m.channel_scores) == 2
    assert m.score == pytest.approx(s.score(signals["ref"], dual).score, abs=1e-6)
    assert m.channel_scores[0] > m.channel_scores[1] + 5  # the left channel itself; the right is not it
    three = tmp_path / "three.wav"
    sf.write(three, np.repeat(mono, 3, axis=1), sr, subtype="FLOAT")
    with pytest.raises(AudioError, match="channels"):
        s.score(signals["ref"], three)


def test_channels_are_scored_separately_by_default(signals, tmp_path):
    """A stereo recording collapsed to mono (what low-bitrate Opus does to stereo music) is heard
    at once; its mono downmix is the reference's own, so only per-channel scoring sees it."""
    ref, sr = sf.read(signals["ref"], dtype="float32", always_2d=True)
    collapsed = tmp_path / "collapsed.wav"
    sf.write(collapsed, np.repeat(ref.mean(axis=1, keepdims=True), 2, axis=1), sr, subtype="FLOAT")
    assert ScoreSettings().channels == "each"
    each = Scorer(device="cpu").score(signals["ref"], collapsed)
    downmix = Scorer(device="cpu", settings=ScoreSettings(channels="mono")).score(signals["ref"], collapsed)
    assert downmix.score > 99.0
    assert each.score < downmix.score - 10


def test_in_memory_buffers_at_other_rates(scorer):
    x = music_like(3.0, 44100, seed=3).T
    r = scorer.score(AudioBuffer(x, 44100), AudioBuffer(x.copy(), 44100))
    assert r.score == pytest.approx(100.0, abs=1e-3)
    assert r.reference.path == ""


class _LocalBackbone(Backbone):
    """A purely local backbone (no attention): chunked and single-pass embeddings must agree."""

    def __init__(self):
        super().__init__()
        self.name, self.sample_rate, self.hop_length, self.receptive_field = "local", 24000, 320, 400
        self.hidden_size, self.num_hidden_states = 8, 2
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(400, 8)

    def forward(self, wave):
        frames = wave.unfold(-1, self.receptive_field, self.hop_length)  # [B, T, 400]
        h = self.lin(frames)
        return [h, torch.tanh(h)]


def _local_loaded():
    from deepaq_core.model.bundle import Bundle
    from deepaq_core.model.device import LoadedModel
    from deepaq_core.model.head import EmbeddingHead, EmbeddingModel

    model = EmbeddingModel(_LocalBackbone(), EmbeddingHead(2, 8, dim=4)).eval()
    return LoadedModel(model=model, bundle=Bundle({}, None), device=torch.device("cpu"))


def test_chunked_streaming_equals_single_pass():
    loaded = _local_loaded()
    x = music_like(5.0, 24000, seed=5)[:, 0]
    one = embed(loaded, x, chunk_s=60.0, context_s=0.0, heatmap_columns=50)
    for chunk_s, context_s in [(1.0, 0.2), (0.37, 0.0), (2.0, 1.0)]:
        chunked = embed(loaded, x, chunk_s=chunk_s, context_s=context_s, heatmap_columns=50)
        np.testing.assert_allclose(chunked.frames, one.frames, atol=1e-5)
        np.testing.assert_allclose(chunked.layer_bins, one.layer_bins, atol=1e-4)
    assert one.frames.shape == (375, 4)  # 5 s at 75 frames/s
    assert one.layer_bins.shape == (2, 47, 8)  # ceil(375 / 50) = 8 frames per bin -> 47 bins


def test_frame_k_is_centred_on_its_hop():
    """An impulse at sample s changes the frames whose span [k*hop, (k+1)*hop) is nearest s."""
    loaded = _local_loaded()
    x = np.full(24000, 1e-3, np.float32)
    base = embed(loaded, x).frames
    x[10 * 320 + 160] += 1.0  # centre of frame 10
    hit = np.flatnonzero(np.abs(embed(loaded, x).frames - base).sum(axis=1) > 1e-6)
    assert 10 in hit and hit.min() >= 9 and hit.max() <= 11


def test_nmr_prefers_clean_audio(scorer, tmp_path):
    import soundfile as sf

    from tests.conftest import lowpass

    sr = 48000
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    for k in range(3):
        sf.write(clean_dir / f"c{k}.wav", music_like(4.0, sr, seed=10 + k), sr)
    test = music_like(4.0, sr, seed=20)
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "clean_test.wav", test, sr)
    sf.write(tmp_path / "bad_test.wav", lowpass(test, sr, 1500) + rng.normal(0, 0.05, test.shape).astype(np.float32), sr)
    clean_files = sorted(str(p) for p in clean_dir.iterdir())
    good = scorer.nmr(str(tmp_path / "clean_test.wav"), clean_files)
    bad = scorer.nmr(str(tmp_path / "bad_test.wav"), clean_files)
    assert len(good.per_reference) == 3
    assert good.curve_distance.shape == good.curve_start_s.shape
    assert bad.distance > good.distance


def test_window_sums_match_numpy_cumsum():
    from deepaq_core.embedding import window_sums

    frames = np.random.default_rng(3).standard_normal((2500, 7)).astype(np.float32)
    csum = np.concatenate([np.zeros((1, 7)), np.cumsum(frames, axis=0, dtype=np.float64)])
    cases = [(np.array([0]), np.array([2500])),  # the whole sequence
             (np.round(np.arange(60) * 37.5).astype(np.int64) + 3, None),  # fractional hop, offset start
             (np.array([5, 5, 100, 2400]), np.array([5, 80, 101, 2500]))]  # empty, repeated, single-row
    for starts, ends in cases:
        ends = np.minimum(starts + 150, 2500) if ends is None else ends
        got = window_sums(frames, starts, ends)
        assert got.shape == (starts.size, 7) and got.dtype == np.float64
        np.testing.assert_allclose(got, csum[ends] - csum[starts], rtol=1e-12, atol=1e-9)

def test_bf16_on_the_cpu_is_used_when_asked_and_shares_the_weights():
    from deepaq_core.errors import ModelError

    sr = 48000
    x = music_like(4.0, sr, seed=21)[:, 0]
    ref = AudioBuffer(x[None, :].astype(np.float32), sr, None)
    deg = AudioBuffer((x + 0.02 * np.random.default_rng(3).normal(size=x.size))[None, :].astype(np.float32), sr, None)
    fp32 = Scorer("compact-untrained", "cpu", ScoreSettings(precision="fp32"), workers=0)
    bf16 = Scorer("compact-untrained", "cpu", ScoreSettings(precision="bf16"), workers=0)
    assert bf16.loaded is not fp32.loaded and bf16.loaded.model is fp32.loaded.model  # one copy of the weights
    assert (fp32.loaded.precision, bf16.loaded.precision) == ("fp32", "bf16")
    a, b = fp32.score(ref, deg), bf16.score(ref, deg)
    assert a.distance != b.distance  # bf16 arithmetic really ran ...
    assert abs(a.score - b.score) < 2.0  # ... and stays close to fp32
    assert b.settings["precision"] == "bf16"
    # the built-in auditory model computes in fp32 whatever is asked
    assert Scorer(device="cpu", settings=ScoreSettings(precision="bf16"), workers=0).score(ref, deg).distance == \
        Scorer(device="cpu", workers=0).score(ref, deg).distance
    with pytest.raises(ModelError, match="fp16 needs a CUDA GPU"):
        Scorer("compact-untrained", "cpu", ScoreSettings(precision="fp16"))
    with pytest.raises(ValueError, match="precision"):
        ScoreSettings(precision="int8")


def test_helper_threads_give_the_same_stereo_scores(signals):
    """With helper threads (the degraded file prepared ahead, the last input embedded on every core)
    a stereo pair gets the numbers of the one-thread scorer the app uses."""
    one = Scorer(device="cpu", workers=0).score_many(signals["ref"], [signals["lp"], signals["delayed"]])
    two = Scorer(device="cpu", workers=2).score_many(signals["ref"], [signals["lp"], signals["delayed"]])
    for a, b in zip(one, two):
        assert len(a.channel_scores) == 2
        # (equal up to the order in which two front-end threads add, when the last input has both cores)
        assert a.channel_scores == pytest.approx(b.channel_scores, abs=1e-6)
        assert a.distance == pytest.approx(b.distance, rel=1e-6)
        assert np.allclose(a.frame_distance, b.frame_distance, rtol=1e-5, atol=1e-7, equal_nan=True)


def test_dual_mono_scores_as_mono(signals, tmp_path):
    """The loudest channel is played at the level a mono file is (BS.1770 sums the channels, so a
    stereo file measures 3 dB louder), and channels count by the loudness heard in them: two
    identical channels, or the signal in one channel and silence in the other, score the signal
    exactly as the mono file does."""
    ref, sr = sf.read(signals["ref"], dtype="float32", always_2d=True)
    lp, _ = sf.read(signals["lp8"], dtype="float32", always_2d=True)
    paths = {}
    for name, x in (("ref", ref[:, :1]), ("lp", lp[:, :1])):
        paths[name] = tmp_path / f"{name}_mono.wav"
        sf.write(paths[name], x, sr, subtype="FLOAT")
        paths[name + "2"] = tmp_path / f"{name}_dual.wav"
        sf.write(paths[name + "2"], np.repeat(x, 2, axis=1), sr, subtype="FLOAT")
    for name, x in (("ref", ref[:, :1]), ("lp", lp[:, :1])):
        paths[name + "1"] = tmp_path / f"{name}_left.wav"
        sf.write(paths[name + "1"], np.concatenate([x, np.zeros_like(x)], axis=1), sr, subtype="FLOAT")
    s = Scorer(device="cpu")
    mono = s.score(paths["ref"], paths["lp"])
    dual = s.score(paths["ref2"], paths["lp2"])
    left = s.score(paths["ref1"], paths["lp1"])
    assert dual.channel_scores == pytest.approx((mono.score, mono.score), abs=1e-9)
    # (to float32 rounding: the two-channel file's levels and gains are sums over two channels)
    assert left.channel_scores == pytest.approx((mono.score, 100.0), abs=1e-5)
    assert left.score == pytest.approx(mono.score, abs=1e-4)  # the silent channel dilutes nothing
    assert 20 < mono.score < 99  # an 8 kHz low-pass: clearly damaged, not destroyed


def test_faint_noise_in_an_empty_channel_is_not_the_end_of_the_scale(tmp_path):
    """Channels are normalised by the reference's loudness over all of them: faint hiss (-60 dBFS)
    in a channel that is silent in the reference is damage, not an infinite ratio (it scored 0 when
    each channel was divided by its own, almost zero, loudness)."""
    sr = 48000
    left = music_like(6.0, sr, seed=4)[:, 0]
    ref = np.stack([left, np.zeros_like(left)], axis=1)
    hiss = np.random.default_rng(0).standard_normal(left.size).astype(np.float32) * np.float32(1e-3)
    sf.write(tmp_path / "ref.wav", ref, sr, subtype="FLOAT")
    sf.write(tmp_path / "hiss.wav", np.stack([left, hiss], axis=1), sr, subtype="FLOAT")
    r = Scorer(device="cpu").score(tmp_path / "ref.wav", tmp_path / "hiss.wav")
    assert r.channel_scores[0] > 99
    assert 20 < r.channel_scores[1] < 99 and 50 < r.score < 99.5
