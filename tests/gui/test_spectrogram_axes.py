"""Spectrogram frequency axes (mel, log, linear), dynamic range, the difference on the same axis, hover read-out."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PySide6 import QtCore, QtWidgets  # noqa: E402

from deepaq_core.audio.buffer import AudioBuffer  # noqa: E402
from deepaq_gui.views.spectrogram import (DISPLAY_ROWS, FREQ_SCALES, RANGES_DB, SpectrogramView,  # noqa: E402
                                          axis_to_hz, compute_spectrogram, format_hz, frequency_ticks, hz_to_axis,
                                          warp_spectrogram)
from tests.conftest import lowpass, music_like  # noqa: E402

SR = 48000


def _tone(f_hz: float, seconds: float = 2.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (amp * np.sin(2 * np.pi * f_hz * t)).astype(np.float32)


@pytest.mark.parametrize("scale", FREQ_SCALES)
def test_axis_mapping_round_trips(scale):
    f = np.array([30.0, 100.0, 1000.0, 8000.0, 20000.0])
    assert axis_to_hz(hz_to_axis(f, scale), scale) == pytest.approx(f, rel=1e-9)
    assert np.all(np.diff(hz_to_axis(f, scale)) > 0)
    with pytest.raises(ValueError, match="unknown frequency scale"):
        hz_to_axis(f, "bark")


@pytest.mark.parametrize("scale", FREQ_SCALES)
@pytest.mark.parametrize("f0", [200.0, 1000.0, 12000.0])
def test_warp_puts_a_tone_in_its_row_and_keeps_its_level(scale, f0):
    spec = compute_spectrogram(_tone(f0), SR, max_columns=100, max_rows=DISPLAY_ROWS)
    (times, centres, db), (a0, a1) = warp_spectrogram(spec, scale, rows=256)
    assert db.shape == (256, spec[2].shape[1]) and np.array_equal(times, spec[0])
    profile = np.nanmean(db[:, 10:-10], axis=1)
    peak = int(np.nanargmax(profile))
    row_height = (a1 - a0) / 256
    # the loudest row is the tone's: its centre within a row (plus the input band's half width) of f0
    band_axis = abs(hz_to_axis(f0 + SR / 2 / DISPLAY_ROWS / 2, scale) - hz_to_axis(f0, scale))
    assert abs(hz_to_axis(centres[peak], scale) - hz_to_axis(f0, scale)) <= row_height + band_axis
    # the tone keeps its level, whether its row is narrower than a band or spans several
    in_peak = np.nanmax(np.nanmean(spec[2][:, 10:-10], axis=1))
    assert np.nanmax(profile) == pytest.approx(in_peak, abs=0.5)


def test_warp_marks_rows_above_the_input_as_missing():
    spec = compute_spectrogram(_tone(1000.0, seconds=0.5), 16000, max_columns=20, max_rows=64)
    (_t, centres, db), (_a0, a1) = warp_spectrogram(spec, "linear", rows=48, f_range=(0.0, 12000.0))
    assert a1 == pytest.approx(12000.0)
    assert np.all(np.isnan(db[centres > 8100.0])) and np.all(np.isfinite(db[centres < 7900.0]))


@pytest.mark.parametrize("scale", ["mel", "log"])
def test_ticks_are_round_frequencies(scale):
    lo, hi = hz_to_axis(30.0, scale), hz_to_axis(24000.0, scale)
    ticks = frequency_ticks(scale, float(lo), float(hi), 12)
    assert 1000.0 in ticks and 10000.0 in ticks and 100.0 in ticks and len(ticks) <= 12
    assert frequency_ticks(scale, float(lo), float(hi), 3) == [100.0, 1000.0, 10000.0]
    assert [format_hz(f) for f in (50.0, 440.0, 1000.0, 12500.0)] == ["50", "440", "1k", "12.5k"]


def _shown(qtbot, view):
    qtbot.addWidget(view)
    view.resize(1000, 600)
    view.show()
    qtbot.waitExposed(view)
    return view


def _row_axis_position(image, row: int) -> float:
    rect = image.mapRectToParent(image.boundingRect())
    return rect.top() + (row + 0.5) * rect.height() / image.image.shape[0]


@pytest.mark.parametrize("scale", FREQ_SCALES)
def test_a_1khz_tone_lands_at_the_1k_tick(qtbot, scale):
    view = _shown(qtbot, SpectrogramView())
    tone = AudioBuffer(_tone(1000.0), SR)
    view.set_audio(tone, tone, max_columns=200)
    view.set_freq_scale(scale)
    assert view.scale_combo.currentText() == scale
    for k, plot in enumerate(view.plot_items()):
        image = view.image_items()[min(k, 1)]
        profile = np.nanmean(image.image, axis=1)
        y_peak = _row_axis_position(image, int(np.nanargmax(profile)))
        axis = plot.getAxis("left")
        y0, y1 = plot.getViewBox().viewRange()[1]
        values = [v for _spacing, vs in axis.tickValues(y0, y1, 600) for v in vs]  # a 600 px tall plot
        labels = axis.tickStrings(values, 1.0, 1.0)
        assert "1k" in labels
        y_tick = values[labels.index("1k")]
        row_height = (y1 - y0) / image.image.shape[0]
        band = abs(hz_to_axis(1000 + SR / 2 / DISPLAY_ROWS / 2, scale) - hz_to_axis(1000, scale))
        assert abs(y_peak - y_tick) <= row_height + band, (scale, y_peak, y_tick)
    # mel and log give the octave 500-1000 Hz far more height than linear does
    y = view.plot_items()[0].getViewBox().viewRange()[1]
    share = (hz_to_axis(1000, scale) - hz_to_axis(500, scale)) / (y[1] - y[0])
    assert (share > 0.05) == (scale != "linear")


def test_dynamic_range_setting(qtbot):
    view = _shown(qtbot, SpectrogramView())
    x = AudioBuffer(music_like(1.0, SR)[:, 0], SR)
    view.set_audio(x, x, max_columns=100)
    ref_img, deg_img, _ = view.image_items()
    top = ref_img.getLevels()[1]
    assert top - ref_img.getLevels()[0] == pytest.approx(100.0)  # the default
    for r in RANGES_DB:
        view.range_combo.setCurrentIndex(RANGES_DB.index(r))
        assert tuple(ref_img.getLevels()) == tuple(deg_img.getLevels()) == pytest.approx((top - r, top))
    view.set_range_db(80.0)
    assert view.range_combo.currentText() == "80 dB" and ref_img.getLevels()[0] == pytest.approx(top - 80)
    view.set_freq_scale("log")  # a new axis keeps the range
    assert ref_img.getLevels()[0] == pytest.approx(top - 80)


@pytest.mark.parametrize("scale", FREQ_SCALES)
def test_difference_is_drawn_on_the_same_axis(qtbot, scale):
    view = _shown(qtbot, SpectrogramView())
    view.set_freq_scale(scale)
    x = (0.1 * np.random.default_rng(3).standard_normal(2 * SR)).astype(np.float32)  # energy at every frequency
    ref = AudioBuffer(x, SR)
    deg = AudioBuffer(lowpass(x, SR, 4000.0), SR)
    view.set_audio(ref, deg, max_columns=200)
    ref_img, _deg_img, diff_img = view.image_items()
    assert diff_img.image.shape == ref_img.image.shape
    r_rect = ref_img.mapRectToParent(ref_img.boundingRect())
    d_rect = diff_img.mapRectToParent(diff_img.boundingRect())
    assert (d_rect.top(), d_rect.height()) == pytest.approx((r_rect.top(), r_rect.height()))
    rows = diff_img.image.shape[0]
    centres = axis_to_hz(r_rect.top() + (np.arange(rows) + 0.5) * r_rect.height() / rows, scale)
    below = np.nanmedian(diff_img.image[(centres > 300) & (centres < 2500)])
    above = np.nanmedian(diff_img.image[centres > 8000])
    assert abs(below) < 1.0 and above < -20.0  # removed energy above the cut-off, none below


def test_hover_shows_time_frequency_and_level(qtbot):
    view = _shown(qtbot, SpectrogramView())
    tone = AudioBuffer(_tone(1000.0), SR)
    view.set_audio(tone, tone, max_columns=200)
    view.show_readout(0, 1.0, 1000.0)
    text = view.readout_text()
    assert text.startswith("R") and "1.00 s" in text and "1.00 kHz" in text
    level = float(text.split()[-3])
    peak = float(np.nanmax(view.image_items()[0].image))
    assert level == pytest.approx(peak, abs=3.0)  # on the tone's row
    view.show_readout(2, 1.0, 1000.0)
    assert view.readout_text().startswith("V − R") and "+0.0 dB" in view.readout_text()
    # a real mouse move over the V plot
    plot = view.plot_items()[1]
    scene_pt = plot.getViewBox().mapViewToScene(QtCore.QPointF(0.5, float(hz_to_axis(5000.0, view.freq_scale))))
    gv = view._graphics
    qtbot.mouseMove(gv.viewport(), gv.mapFromScene(scene_pt))
    QtWidgets.QApplication.processEvents()
    qtbot.waitUntil(lambda: view.readout_text().startswith("V   "), timeout=3000)
    t, f = view.readout_text().split()[1], view.readout_text().split()[3]
    assert float(t) == pytest.approx(0.5, abs=0.05) and math.isclose(float(f), 5.0, abs_tol=0.2)
    view.clear()
    assert view.readout_text() == ""


def test_large_spectrograms_are_resampled_off_the_ui_thread(qtbot, monkeypatch):
    import deepaq_gui.views.spectrogram as spectrogram

    monkeypatch.setattr(spectrogram, "SYNC_WARP_CELLS", 0)  # every size goes to the view's worker
    view = _shown(qtbot, SpectrogramView())
    tone = AudioBuffer(_tone(1000.0), SR)
    view.set_audio(tone, tone, max_columns=200)
    assert view.is_drawing() and view.image_items()[0].image is None  # returned before the images were made
    qtbot.waitUntil(lambda: not view.is_drawing(), timeout=5000)
    assert all(img.image is not None for img in view.image_items())
    # two axis changes in a row: only the last one is drawn
    view.set_freq_scale("linear")
    view.set_freq_scale("log")
    qtbot.waitUntil(lambda: not view.is_drawing(), timeout=5000)
    rect = view.image_items()[0].mapRectToParent(view.image_items()[0].boundingRect())
    assert rect.top() == pytest.approx(math.log10(30.0)) and rect.bottom() == pytest.approx(math.log10(24000.0), abs=0.01)
    # a clear while resampling: nothing is drawn afterwards
    view.set_freq_scale("mel")
    view.clear()
    qtbot.wait(300)
    assert all(img.image is None for img in view.image_items()) and not view.is_drawing()
