"""Ends of the scale on a real recording: the shipped demo reference (12 s of Bach on a sampled
harpsichord and strings, 48 kHz stereo), scored with the built-in model and default settings.

The unrelated-music end needs a second real piece; it is checked on the developer data by
``benchmarks/check_ends.py`` (every ordered pair of ten references).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from deepaq_core.audio import AudioBuffer
from deepaq_core.degrade import available_codecs, degrade
from deepaq_core.scoring import Scorer


@pytest.fixture(scope="module")
def demo():
    y, sr = sf.read(Path(str(files("deepaq_resources"))) / "demo" / "demo_reference.flac", dtype="float32",
                    always_2d=True)
    return np.ascontiguousarray(y.T), sr


@pytest.fixture(scope="module")
def scorer():
    return Scorer(device="cpu")


def _score(scorer, ref, deg, sr):
    n = min(ref.shape[1], deg.shape[1])
    return scorer.score(AudioBuffer(ref[:, :n], sr), AudioBuffer(np.ascontiguousarray(deg[:, :n], dtype=np.float32), sr))


def test_inaudible_changes_of_a_real_recording_score_95_or_more(scorer, demo):
    x, sr = demo
    d = int(round(0.001 * sr))
    for name, y in {"+0.5 dB": x * np.float32(10 ** (0.5 / 20)), "inverted": -x,
                    "1 ms": np.concatenate([np.zeros((2, d), np.float32), x[:, :-d]], axis=1),
                    "90 degrees": np.imag(scipy.signal.hilbert(x, axis=1))}.items():
        assert _score(scorer, x, y, sr).score >= 95.0, name


def test_low_passes_of_a_real_recording_keep_their_order_and_anchors(scorer, demo):
    x, sr = demo
    s = {fc: _score(scorer, x, degrade(x, sr, "lowpass", cutoff_hz=fc)[0], sr).score for fc in (3500, 7000, 16000)}
    assert s[3500] <= 35 < s[7000] <= 85  # the MUSHRA anchors
    assert s[7000] < s[16000] < 100.0  # full band: a 16 kHz low-pass is seen


def test_a_clipping_burst_in_a_real_recording_stays_where_it_is(scorer, demo):
    x, sr = demo
    y = x.copy()
    seg = slice(5 * sr, 5 * sr + int(0.3 * sr))
    peak = float(np.abs(x[:, seg]).max())
    y[:, seg] = np.clip(x[:, seg] * 4, -0.5 * peak, 0.5 * peak)
    c = _score(scorer, x, y, sr).curve
    has = (c.start_s <= 5.3) & (c.end_s >= 5.0)
    assert has[int(np.argmin(c.score))]
    assert c.score[~has].min() >= 97.0


@pytest.mark.skipif(not available_codecs().get("opus"), reason="no Opus encoder installed")
def test_an_opus_ladder_of_a_real_stereo_recording_rises_with_the_bitrate(scorer, demo):
    # (on tcdaudio14's glockenspiel, piano, harpsichord and steel drums the mono downmix ranked
    # 12-16 kbit/s, which opusenc codes as mono, above 24-48 kbit/s; benchmarks/check_ends.py)
    x, sr = demo
    s = [_score(scorer, x, degrade(x, sr, "opus", bitrate_kbps=b)[0], sr).score for b in (12, 24, 48)]
    assert s[0] < s[1] < s[2] < 100.0
