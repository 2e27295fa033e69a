"""Display DSP (deepaq_core.audio.display): spectrograms, their difference, waveform envelopes.

Pure numpy/scipy, so these run without PySide6.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepaq_core.audio.buffer import AudioBuffer
from deepaq_core.audio.display import compute_envelope, compute_spectrogram, difference_spectrogram

SR = 48000


# ----- spectrogram maths ---------------------------------------------------------------------------
def test_compute_spectrogram_sine_peak_time_axis_and_column_limit():
    seconds = 3.0
    t = np.arange(int(seconds * SR)) / SR
    x = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    times, freqs, db = compute_spectrogram(x, SR, max_columns=300)
    assert db.shape == (freqs.size, times.size)
    assert times.size <= 300
    bin_hz = freqs[1] - freqs[0]
    peak_hz = freqs[np.argmax(db[:, times.size // 2])]
    assert abs(peak_hz - 1000) <= bin_hz
    # A full-scale sine reads about 0 dB (Hann scalloping costs at most ~1.5 dB).
    assert -2.0 < db[:, times.size // 2].max() <= 0.5
    assert times[0] <= 0.05 and times[-1] >= seconds - 0.05 and times[-1] <= seconds + 0.1
    assert np.all(np.diff(times) > 0)


def test_compute_spectrogram_merges_bins_into_max_rows():
    t = np.arange(SR * 2) / SR
    x = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    full_t, full_f, full_db = compute_spectrogram(x, SR, max_columns=200)
    times, freqs, db = compute_spectrogram(x, SR, max_columns=200, max_rows=100)
    assert db.shape == (freqs.size, times.size) and freqs.size <= 100 and np.array_equal(times, full_t)
    band = freqs[1] - freqs[0]
    assert abs(freqs[np.argmax(db[:, times.size // 2])] - 1000) <= band
    assert freqs.size == 100  # exactly max_rows bands, not fewer
    # Mean power over each band: the band holding the sine has its power divided by the band's bins.
    edges = np.linspace(0, full_f.size, 101).astype(int)
    k = int(np.argmax(db[:, times.size // 2]))
    power = np.mean(10 ** (full_db[edges[k]:edges[k + 1], times.size // 2] / 10))
    assert db[k, times.size // 2] == pytest.approx(10 * np.log10(power), abs=1e-3)
    assert np.all(np.diff(freqs) > 0) and abs(np.diff(freqs).std()) < 0.05 * np.diff(freqs).mean()
    assert compute_spectrogram(x, SR, max_columns=200, max_rows=5000)[2].shape == full_db.shape


def test_compute_spectrogram_long_signal_averages_into_max_columns():
    x = np.random.default_rng(0).standard_normal(SR * 120).astype(np.float32) * 0.1
    times, freqs, db = compute_spectrogram(x, SR, max_columns=500)
    assert 400 <= times.size <= 500
    assert times[-1] >= 119.5
    # White noise averaged over many frames per column: a flat, steady spectrum.
    assert np.std(db[10:-10].mean(axis=0)) < 0.5


def test_difference_of_identical_signals_is_zero_and_grids_can_differ():
    x = np.random.default_rng(1).standard_normal(SR * 2).astype(np.float32) * 0.1
    spec = compute_spectrogram(x, SR, max_columns=200)
    _t, _f, diff = difference_spectrogram(spec, spec)
    assert np.nanmax(np.abs(diff)) < 1e-4
    # Degraded shorter (its own grid): cells past its end are NaN, the overlap is ~0.
    short = compute_spectrogram(x[: SR], SR, max_columns=200, grid_samples=x.size)
    _t, _f, diff = difference_spectrogram(spec, short)
    covered = np.isfinite(diff[0])
    assert covered[:5].all() and not covered[-5:].any()
    assert np.nanmax(np.abs(diff[:, : covered.sum() - 2])) < 1e-3


# ----- waveform envelope ------------------------------------------------------------------------
def test_waveform_envelope_pyramid_is_exact():
    rng = np.random.default_rng(3)
    stereo = AudioBuffer(rng.standard_normal((2, 100_003), dtype=np.float32), SR)
    env = compute_envelope(stereo)
    assert env.blocks[0] == 256 and env.minima[-1].size <= 2048
    assert np.isclose(env.peak, np.abs(stereo.samples).max())
    x, y = env.points(0, stereo.num_samples, 200)
    assert y.min() == stereo.samples.min() and y.max() == stereo.samples.max()
    assert len(x) == len(y) and len(x) < 2000


# ----- worst moments ------------------------------------------------------------------------------
def test_worst_moments_name_the_band_that_changed_most():
    from deepaq_core.audio.display import worst_moments
    from deepaq_core.results import QualityCurve

    rng = np.random.default_rng(4)
    seconds = 8
    ref = rng.standard_normal(SR * seconds).astype(np.float32) * 0.1  # broadband
    deg = ref.copy()
    # 4-6 s: the 2.8-5.7 kHz octave (around 4 kHz) is removed; elsewhere identical
    import scipy.signal

    sos = scipy.signal.butter(6, [2900, 5500], "bandstop", fs=SR, output="sos")
    deg[4 * SR:6 * SR] = scipy.signal.sosfilt(sos, ref[4 * SR:6 * SR])
    spec_r = compute_spectrogram(ref, SR, max_rows=256)
    spec_d = compute_spectrogram(deg, SR, max_rows=256)
    starts = np.arange(0.0, 7.0, 1.0)
    curve = QualityCurve(start_s=starts, end_s=starts + 1.0, distance=np.zeros(7),
                         score=np.array([90, 91, 92, 93, 40, 45, 95], dtype=float))
    moments = worst_moments(curve, 3, spec_r, spec_d)
    assert [(m.start_s, m.score) for m in moments] == [(4.0, 40.0), (5.0, 45.0), (0.0, 90.0)]
    assert moments[0].band_lo_hz < 4000 < moments[0].band_hi_hz and moments[0].band_change_db < -10
    assert moments[0].band_label.startswith("4 kHz octave, −")
    assert abs(moments[2].band_change_db) < 1  # nothing changed there: the largest change is small
    # without spectrograms: times and scores only
    bare = worst_moments(curve, 2)
    assert [m.start_s for m in bare] == [4.0, 5.0] and bare[0].band_label == "–"
