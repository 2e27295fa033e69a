"""Blind tests: the ABX / blind A/B logic (no Qt), the CSV log, and the panels on a silent engine."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from deepaq_gui.blind import AbxTest, BlindAbTest, binomial_p_value, export_log_csv, format_p

SHA = {0: "0" * 64, 1: "a1" * 32, 2: "b2" * 32}
TRACKS = {0: ("ref.wav", SHA[0]), 1: ("codec_a.wav", SHA[1]), 2: ("codec_b.wav", SHA[2])}


# -- logic -----------------------------------------------------------------------------------


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (5, 10), (9, 16), (12, 16), (14, 16), (16, 16), (0, 20), (61, 100)])
def test_p_value_equals_scipy_binomtest(k, n):
    stats = pytest.importorskip("scipy.stats")
    expected = stats.binomtest(k, n, 0.5, alternative="greater").pvalue
    assert binomial_p_value(k, n) == pytest.approx(expected, rel=1e-12, abs=0)


def test_p_value_of_a_test_follows_the_answers():
    stats = pytest.importorskip("scipy.stats")
    t = AbxTest(1, 2, trials=12, seed=5)
    assert t.total == 0 and t.p_value == 1.0
    for i in range(12):
        x = t.x_sequence[i]
        t.answer(x if i % 4 else ("B" if x == "A" else "A"))  # every 4th answer wrong
    assert (t.correct, t.total, t.finished) == (9, 12, True)
    assert t.p_value == pytest.approx(stats.binomtest(9, 12, 0.5, alternative="greater").pvalue, rel=1e-12)
    assert t.summary() == f"9 / 12 correct, {format_p(t.p_value)}"


def test_x_assignment_is_seeded_and_roughly_balanced():
    assert AbxTest(0, 1, 64, seed=7).x_sequence == AbxTest(0, 1, 64, seed=7).x_sequence
    seqs = {tuple(AbxTest(0, 1, 16, seed=s).x_sequence) for s in range(10)}
    assert len(seqs) > 1
    long = AbxTest(0, 1, 2000, seed=11).x_sequence
    assert set(long) == {"A", "B"}
    assert 0.45 < long.count("A") / len(long) < 0.55


def test_answer_records_trials_and_x_index_follows_the_trial():
    t = AbxTest(1, 2, trials=3, seed=1)
    for n in range(3):
        x = t.x_sequence[n]
        assert t.x_index == (1 if x == "A" else 2)
        trial = t.answer("a" if x == "A" else "B")  # case-insensitive
        assert (trial.trial, trial.x_was, trial.correct) == (n + 1, x, True)
        assert "T" in trial.time  # ISO 8601
    assert t.finished and t.correct == 3
    with pytest.raises(RuntimeError):
        t.answer("A")
    with pytest.raises(ValueError):
        AbxTest(1, 2).answer("X")
    with pytest.raises(ValueError):
        AbxTest(1, 1)


def test_blind_ab_hides_tracks_behind_seeded_letters():
    a, b = BlindAbTest([1, 2, 3], seed=4, trials=6), BlindAbTest([1, 2, 3], seed=4, trials=6)
    maps = []
    for _ in range(6):
        assert {a.index_of(c) for c in a.letters} == {1, 2, 3}
        maps.append({c: a.index_of(c) for c in a.letters})
        assert maps[-1] == {c: b.index_of(c) for c in b.letters}
        a.prefer(next(c for c in a.letters if a.index_of(c) == 2))  # always prefers track 2
        b.prefer("A")
    assert len({tuple(m.values()) for m in maps}) > 1  # re-drawn between trials
    assert a.finished and a.preference_counts() == {1: 0, 2: 6, 3: 0}
    assert a.reveal() == maps
    t = BlindAbTest([1, 2], seed=0)
    t.rate({"A": 80, "B": 40})
    assert t.mean_ratings() == {t.log[0].mapping["A"]: 80.0, t.log[0].mapping["B"]: 40.0}


# -- the log ----------------------------------------------------------------------------------


def test_abx_log_parses_and_lists_files_trials_and_summary(tmp_path):
    t = AbxTest(1, 2, trials=5, seed=2)
    for i in range(4):
        t.answer(t.x_sequence[i] if i != 1 else "A")
    path = tmp_path / "abx.csv"
    export_log_csv(t, path, TRACKS)
    rows = list(csv.reader(open(path, newline="", encoding="utf-8")))
    files = {r[1]: r[2:] for r in rows if r and r[0] == "file"}
    assert files == {"A": ["codec_a.wav", SHA[1]], "B": ["codec_b.wav", SHA[2]]}
    assert any(r[:2] == ["software", "DeePAQ 0.1.0"] or (r and r[0] == "software" and "DeePAQ" in r[1]) for r in rows)
    head = rows.index(["trial", "time", "x_was", "answer", "correct", "correct_so_far", "total_so_far", "p_value"])
    trial_rows = []
    for r in rows[head + 1:]:
        if not r:
            break
        trial_rows.append(r)
    assert [int(r[0]) for r in trial_rows] == [1, 2, 3, 4]
    k_running = [(int(r[5]), int(r[6])) for r in trial_rows]
    assert k_running[-1] == (t.correct, 4)
    assert float(trial_rows[-1][7]) == pytest.approx(t.p_value, rel=1e-5)
    summary = next(r for r in rows if r and r[0] == "summary")
    assert summary[1] == f"{t.correct}/4" and float(summary[3]) == pytest.approx(t.p_value, rel=1e-5)


def test_blind_ab_log_parses(tmp_path):
    t = BlindAbTest([1, 2], seed=3, trials=2)
    t.prefer("A")
    t.prefer("B")
    path = tmp_path / "ab.csv"
    export_log_csv(t, path, TRACKS)
    rows = list(csv.reader(open(path, newline="", encoding="utf-8")))
    assert ["file", "1", "codec_a.wav", SHA[1]] in rows and ["file", "2", "codec_b.wav", SHA[2]] in rows
    head = next(i for i, r in enumerate(rows) if r[:2] == ["trial", "time"])
    assert [r[0] for r in rows[head + 1: head + 3]] == ["1", "2"]
    assert sum(int(r[2]) for r in rows if r and r[0] == "summary" and r[1] != "file") == 2


# -- the panels ---------------------------------------------------------------------------------

QT = pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6 import QtCore  # noqa: E402

from deepaq_gui.blind_panel import AbxPanel, BlindAbPanel  # noqa: E402
from deepaq_gui.playback import PlaybackEngine  # noqa: E402

SR = 8000


@pytest.fixture
def engine():
    e = PlaybackEngine(backend="null")
    e.set_tracks([np.full((SR * 20, 1), k, np.float32) for k in range(3)], SR)
    yield e
    e.close()


@pytest.fixture
def abx(qtbot, engine):
    panel = AbxPanel(engine, TRACKS)
    qtbot.addWidget(panel)
    return panel


def test_abx_panel_play_buttons_select_engine_tracks_at_the_same_position(abx, engine, qtbot):
    hidden = []
    abx.identityHidden.connect(hidden.append)
    assert not abx.identity_hidden
    abx.start(1, 2, trials=4, seed=3)
    assert hidden == [True] and abx.identity_hidden
    engine.seek(2.0)
    qtbot.mouseClick(abx.play_buttons["A"], QtCore.Qt.LeftButton)
    assert engine.current == 1 and engine.playing
    qtbot.mouseClick(abx.play_buttons["B"], QtCore.Qt.LeftButton)
    assert engine.current == 2
    qtbot.mouseClick(abx.play_buttons["X"], QtCore.Qt.LeftButton)
    assert engine.current == abx.test.x_index
    assert abx.playing_label() == "X" and abx.play_buttons["X"].isChecked()
    assert 2.0 <= engine.position_s < 4.0  # switched, not restarted
    # keys: A/B/X play
    qtbot.keyClick(abx, QtCore.Qt.Key_A)
    assert engine.current == 1 and abx.playing_label() == "A"
    qtbot.keyClick(abx, QtCore.Qt.Key_X)
    assert engine.current == abx.test.x_index


def test_abx_panel_answers_update_the_score_and_reveal_at_the_end(abx, engine, qtbot, tmp_path):
    hidden = []
    abx.identityHidden.connect(hidden.append)
    t = abx.start(1, 2, trials=3, seed=9)
    xs = t.x_sequence
    right = {"A": abx.answer_buttons["A"], "B": abx.answer_buttons["B"]}
    qtbot.mouseClick(right[xs[0]], QtCore.Qt.LeftButton)  # correct
    assert (t.correct, t.total) == (1, 1)
    assert abx.score_label.text() == "1 / 1 correct, p = 0.500"
    assert "Trial 2 of 3" in abx.trial_label.text()
    qtbot.keyClick(abx, QtCore.Qt.Key_1 if xs[1] == "B" else QtCore.Qt.Key_2)  # wrong, by key
    assert (t.correct, t.total) == (1, 2)
    assert not abx.reveal_button.isEnabled()
    with qtbot.waitSignal(abx.finished, timeout=1000):
        qtbot.keyClick(abx, QtCore.Qt.Key_1 if xs[2] == "A" else QtCore.Qt.Key_2)  # correct
    assert t.finished and (t.correct, t.total) == (2, 3)
    assert not any(b.isEnabled() for b in abx.answer_buttons.values())
    assert abx.identity_hidden and abx.reveal_button.isEnabled()
    abx.reveal()
    assert hidden == [True, False] and not abx.identity_hidden
    assert "X was" in abx.result_view.toPlainText()
    path = tmp_path / "log.csv"
    abx.export_log(path)
    rows = list(csv.reader(open(path, newline="", encoding="utf-8")))
    text = open(path, encoding="utf-8").read()
    assert SHA[1] in text and SHA[2] in text
    head = next(i for i, r in enumerate(rows) if r[:2] == ["trial", "time"])
    assert [r[0] for r in rows[head + 1: head + 4]] == ["1", "2", "3"] and rows[head + 4] == []


def test_abx_panel_keeps_playing_x_across_trials(abx, engine):
    t = abx.start(1, 2, trials=8, seed=21)
    abx.play("X")
    for _ in range(5):
        abx.answer("A")
        assert engine.current == t.x_index


def test_blind_ab_panel_plays_letters_and_counts_preferences(qtbot, engine, tmp_path):
    panel = BlindAbPanel(engine, TRACKS)
    qtbot.addWidget(panel)
    t = panel.start([1, 2], trials=2, seed=6)
    assert panel.identity_hidden
    qtbot.mouseClick(panel.play_buttons["A"], QtCore.Qt.LeftButton)
    assert engine.current == t.index_of("A")
    qtbot.keyClick(panel, QtCore.Qt.Key_B)
    assert engine.current == t.index_of("B")
    first_b = t.index_of("B")
    qtbot.keyClick(panel, QtCore.Qt.Key_2)  # prefer B
    qtbot.mouseClick(panel.prefer_buttons["A"], QtCore.Qt.LeftButton)
    assert t.finished and t.log[0].preferred_index == first_b
    panel.reveal()
    assert not panel.identity_hidden
    panel.export_log(tmp_path / "ab.csv")
    assert (tmp_path / "ab.csv").stat().st_size > 0
