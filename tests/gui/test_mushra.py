"""The MUSHRA page: randomised order, sliders to ratings, the manifest it appends to."""

from __future__ import annotations

import csv

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6 import QtCore, QtWidgets  # noqa: E402

from deepaq_core.errors import DeePAQError  # noqa: E402
from deepaq_gui.mushra import (  # noqa: E402
    MANIFEST_COLUMNS,
    MushraPage,
    lowpass_anchor,
    randomised_order,
    write_lowpass_anchor,
)
from deepaq_gui.playback import PlaybackEngine  # noqa: E402

SR = 8000


@pytest.fixture
def engine():
    e = PlaybackEngine(backend="null")
    e.set_tracks([np.full((SR * 10, 1), k, np.float32) for k in range(5)], SR)
    yield e
    e.close()


@pytest.fixture
def files(tmp_path):
    """Engine index -> an (empty) file in tmp_path/audio; the manifest goes to tmp_path."""
    audio = tmp_path / "audio"
    audio.mkdir()
    names = ["ref.wav", "anchor.wav", "v1.wav", "v2.wav", "v3.wav"]
    out = {}
    for i, n in enumerate(names):
        (audio / n).write_bytes(b"")
        out[i] = str(audio / n)
    return out


def make_page(qtbot, engine, files, seed=3):
    page = MushraPage(engine, reference=0, versions=[2, 3, 4], anchor=1, paths=files, seed=seed)
    qtbot.addWidget(page)
    return page


def test_order_is_randomised_and_seeded(qtbot, engine, files):
    conditions = [0, 1, 2, 3, 4]
    assert randomised_order(conditions, 5) == randomised_order(conditions, 5)
    assert any(randomised_order(conditions, s) != conditions for s in range(10))
    page = make_page(qtbot, engine, files, seed=5)
    assert sorted(page.conditions_order()) == conditions
    assert page.conditions_order() == randomised_order(conditions, 5)
    assert make_page(qtbot, engine, files, seed=5).conditions_order() == page.conditions_order()
    assert any(make_page(qtbot, engine, files, seed=s).conditions_order() != page.conditions_order()
               for s in range(6, 12))


def test_sliders_map_to_ratings_and_buttons_play_conditions(qtbot, engine, files):
    page = make_page(qtbot, engine, files)
    assert page.identity_hidden
    order = page.conditions_order()
    for n, i in enumerate(order):
        page.sliders[i].setValue(10 * n + 5)
    assert page.ratings() == {i: float(10 * n + 5) for n, i in enumerate(order)}
    assert page.unrated() == []
    assert page.value_labels[order[2]].text() == "25"
    engine.seek(3.0)
    qtbot.mouseClick(page.play_buttons[order[1]], QtCore.Qt.LeftButton)
    assert engine.current == order[1] and engine.playing and page.playing_label() == "2"
    qtbot.keyClick(page, QtCore.Qt.Key_3)
    assert engine.current == order[2] and page.play_buttons[order[2]].isChecked()
    qtbot.keyClick(page, QtCore.Qt.Key_R)
    assert engine.current == 0 and page.reference_button.isChecked()
    assert not any(b.isChecked() for b in page.play_buttons.values())
    assert 3.0 <= engine.position_s < 5.0
    assert page.scale.labels[0].text().startswith("Excellent") and page.scale.labels[-1].text().startswith("Bad")


def test_export_manifest_loads_and_second_listener_appends(qtbot, engine, files, tmp_path):
    manifest = pytest.importorskip("deepaq_core.evaluation.manifest")
    page = make_page(qtbot, engine, files)
    values = {0: 100, 1: 15, 2: 70, 3: 55, 4: 88}
    for i, v in values.items():
        page.set_rating(i, v)
    path = tmp_path / "ratings.csv"
    with pytest.raises(DeePAQError):
        page.export_manifest(path)  # no listener name yet
    page.listener_edit.setText("Ann")
    assert page.export_manifest(path) == 5
    assert open(path, encoding="utf-8").readline().strip() == ",".join(MANIFEST_COLUMNS)
    rows = list(csv.DictReader(open(path, newline="", encoding="utf-8")))
    assert all(not r["degraded"].startswith("/") and r["degraded"].startswith("audio") for r in rows)
    loaded = manifest.load_manifest(path, group_col="condition")
    assert len(loaded) == 5
    by_deg = {r.degraded: r for r in loaded}
    for i, v in values.items():
        r = by_deg[files[i]]
        assert r.subjective == v and r.reference == files[0] and r.extra["listener"] == "Ann"
        assert r.group == {0: "hidden_reference", 1: "anchor"}.get(i, "version")

    page.new_listener(seed=99)
    assert page.identity_hidden and page.listener() == "" and len(page.unrated()) == 5
    with pytest.raises(DeePAQError):
        page.export_manifest(path, listener="Bob")  # nothing rated yet
    for i in values:
        page.set_rating(i, 50)
    page.export_manifest(path, listener="Bob")
    loaded = manifest.load_manifest(path, group_col="condition")
    assert len(loaded) == 10
    assert [r.extra["listener"] for r in loaded].count("Bob") == 5
    assert all(r.subjective == 50 for r in loaded if r.extra["listener"] == "Bob")


def test_append_refuses_a_file_with_other_columns(qtbot, engine, files, tmp_path):
    page = make_page(qtbot, engine, files)
    path = tmp_path / "other.csv"
    path.write_text("reference,degraded,subjective\nx.wav,y.wav,3\n", encoding="utf-8")
    with pytest.raises(DeePAQError, match="other columns"):
        page.export_manifest(path, listener="Ann", allow_unrated=True)


def test_reveal_names_conditions(qtbot, engine, files):
    page = make_page(qtbot, engine, files)
    seen = []
    page.identityHidden.connect(seen.append)
    page.reveal()
    assert seen == [False] and not page.identity_hidden
    assert "hidden ref" in page.header_labels[0].text() and "anchor" in page.header_labels[1].text()
    assert "v1.wav" in page.header_labels[2].text()


def test_lowpass_anchor_removes_high_frequencies(tmp_path):
    sf = pytest.importorskip("soundfile")
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, (SR * 2, 2)).astype(np.float32)
    sr = 16000
    y = lowpass_anchor(x, sr)
    assert y.shape == x.shape and y.dtype == np.float32
    spec_x = np.abs(np.fft.rfft(x[:, 0])) ** 2
    spec_y = np.abs(np.fft.rfft(y[:, 0])) ** 2
    f = np.fft.rfftfreq(x.shape[0], 1 / sr)
    assert spec_y[f > 5000].sum() < 1e-3 * spec_x[f > 5000].sum()
    assert spec_y[f < 2000].sum() > 0.9 * spec_x[f < 2000].sum()
    src = tmp_path / "ref.wav"
    sf.write(src, x, sr)
    out = write_lowpass_anchor(src, tmp_path / "anchor.wav")
    data, rate = sf.read(out, always_2d=True)
    assert rate == sr and data.shape == x.shape


def test_keys_typed_into_the_name_field_do_not_play(qtbot, engine, files, monkeypatch):
    page = make_page(qtbot, engine, files)
    before = engine.current
    monkeypatch.setattr(QtWidgets.QApplication, "focusWidget", staticmethod(lambda: page.listener_edit))
    qtbot.keyClick(page, QtCore.Qt.Key_3)
    assert engine.current == before
    monkeypatch.undo()
    qtbot.keyClick(page, QtCore.Qt.Key_3)
    assert engine.current == page.conditions_order()[2]
