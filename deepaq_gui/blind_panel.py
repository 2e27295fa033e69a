"""Widgets for blind listening: the ABX panel and the blind A/B preference panel.

Both drive the main window's :class:`~deepaq_gui.playback.PlaybackEngine` directly: "Play A",
"Play B", "Play X" switch the engine's track at the same position (the usual sample-synchronous
A/B switch) and start playback when paused. Which track X is stays hidden while a test runs.

Integration with the main window
--------------------------------
* Build: ``panel = AbxPanel(window.engine, tracks_from_session(window.session))`` (or
  :class:`BlindAbPanel`), typically inside a non-modal ``QDialog`` or a ``QDockWidget``.
* Identity: connect ``panel.identityHidden`` (``bool``) to a slot that, while True, replaces the
  transport's "playing: version N" text (and anything else naming the audible track, e.g. the
  live score) with ``panel.playing_label()`` ("A", "B", "X" or ""). Read ``panel.identity_hidden``
  right after connecting. The panel switches the engine itself, so the window's own ``current``
  does not follow; while hidden the window must not call ``engine.select`` on its own (e.g. after
  re-preparing audio); call ``panel.resync()`` after ``engine.set_tracks`` instead, and
  ``panel.stop()`` when the loaded files change (track indices then mean other files).
* Keys: **A / B / X** play A, B, X; **1 / 2** answer "X is A" / "X is B"; **Space** play/pause
  (blind A/B: letters play, digits 1..n prefer). They work when the panel (or its window) has
  the focus. If the panel lives inside the main window, whose application-wide event filter
  turns 1-9 into "select version", forward keys first while a test runs::

      if self.blind_panel is not None and self.blind_panel.identity_hidden \
              and self.blind_panel.handle_key(event):
          return True

* Messages: ``messageRequested(text, level)`` can go to ``AppController.say``; the panel also
  shows the last message in its own status line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from PySide6 import QtCore, QtGui, QtWidgets

from deepaq_gui.blind import AbxTest, BlindAbTest, export_log_csv, format_p

__all__ = ["AbxPanel", "BlindAbPanel", "BlindWidget", "track_label"]

_MODIFIERS = QtCore.Qt.ControlModifier | QtCore.Qt.AltModifier | QtCore.Qt.MetaModifier
_LETTER_KEYS = {getattr(QtCore.Qt, f"Key_{c}"): c for c in "ABCDEFGHIJX"}
_DIGIT_KEYS = {getattr(QtCore.Qt, f"Key_{d}"): d for d in range(10)}


def track_label(index: int, name: str) -> str:
    """Combo-box text of an engine track: ``"R: ref.wav"``, ``"2: v2.wav"``."""
    return f"{'R' if index == 0 else index}: {name}"


class BlindWidget(QtWidgets.QWidget):
    """Common behaviour of widgets that play tracks without saying which.

    Signals
    -------
    identityHidden(bool)
        True while the audible track must not be named anywhere; False when it may be again.
    messageRequested(str, str)
        ``(text, level)`` with level ``"info"``, ``"warning"`` or ``"error"``.
    """

    identityHidden = QtCore.Signal(bool)
    messageRequested = QtCore.Signal(str, str)

    def __init__(self, engine, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self._hidden = False
        self._label = ""  # what the listener knows is playing ("A", "X", "3", ...)
        self._label_index: int | None = None
        self.setFocusPolicy(QtCore.Qt.StrongFocus)
        self.status = QtWidgets.QLabel()
        self.status.setWordWrap(True)

    # -- identity ------------------------------------------------------------------------
    @property
    def identity_hidden(self) -> bool:
        """True while the main window must not name the audible track."""
        return self._hidden

    def playing_label(self) -> str:
        """The name the listener may see for what plays ("A", "B", "X", "Reference", "3", or "")."""
        return self._label

    def _set_hidden(self, hidden: bool) -> None:
        hidden = bool(hidden)
        if hidden != self._hidden:
            self._hidden = hidden
            self.identityHidden.emit(hidden)

    # -- playback ------------------------------------------------------------------------
    def _play_index(self, index: int, label: str) -> bool:
        """Switch the engine to ``index`` at the same position and play; False if not loaded."""
        try:
            self.engine.select(index)
        except IndexError:
            self._message("That track is not loaded (any more); start a new test.", "error")
            return False
        if not self.engine.playing:
            self.engine.play()
        if self.isVisible():
            self.setFocus()  # the buttons take no focus: leave a text field so keys work again
        self._label, self._label_index = label, index
        self._update_playing()
        return True

    def _update_playing(self) -> None:
        """Show which button plays (subclasses)."""

    def resync(self) -> None:
        """Select again the track the listener chose (after the window reloaded the tracks)."""
        if self._label_index is not None and self._label_index < self.engine.track_count:
            self.engine.select(self._label_index)

    def toggle_playback(self) -> None:
        self.engine.toggle()

    # -- messages and keys ---------------------------------------------------------------
    def _message(self, text: str, level: str = "info") -> None:
        self.status.setText(text)
        self.messageRequested.emit(text, level)

    def handle_key(self, event: QtGui.QKeyEvent) -> bool:
        """Apply a key of this test; True when it was used (subclasses)."""
        return False

    @staticmethod
    def typing() -> bool:
        """True while a text field, spin box or editable combo box has the focus (keys are text)."""
        w = QtWidgets.QApplication.focusWidget()
        return isinstance(w, (QtWidgets.QLineEdit, QtWidgets.QAbstractSpinBox, QtWidgets.QTextEdit,
                              QtWidgets.QPlainTextEdit)) or (
            isinstance(w, QtWidgets.QComboBox) and w.isEditable())

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802 - Qt API
        if event.modifiers() & _MODIFIERS or not self.handle_key(event):
            super().keyPressEvent(event)

    @staticmethod
    def _button(text: str, tip: str = "", slot=None, checkable: bool = False) -> QtWidgets.QPushButton:
        b = QtWidgets.QPushButton(text)
        b.setToolTip(tip)
        b.setCheckable(checkable)
        b.setFocusPolicy(QtCore.Qt.NoFocus)  # keys belong to the panel (A/B/X, 1/2, Space)
        if slot is not None:
            b.clicked.connect(lambda _=False: slot())
        return b


class _LogPanel(BlindWidget):
    """A blind test with a log: tracks table, export, reveal."""

    def __init__(self, engine, tracks: Mapping[int, tuple[str, str]], parent=None) -> None:
        super().__init__(engine, parent)
        self.tracks: dict[int, tuple[str, str]] = dict(tracks)
        self.test = None
        self.revealed = False

    def set_tracks(self, tracks: Mapping[int, tuple[str, str]]) -> None:
        """New names/hashes (engine index -> (name, sha256)); a running test is stopped."""
        if self.test is not None and self._hidden:
            self.stop()
        self.tracks = dict(tracks)
        self._fill_setup()

    def _fill_setup(self) -> None:
        """Refill the setup widgets from ``self.tracks`` (subclasses)."""

    def stop(self) -> None:
        """Abandon the running test: playback controls off, identities may be shown again."""
        self._label, self._label_index = "", None
        self._set_hidden(False)
        self._refresh()

    def export_log(self, path: str | os.PathLike) -> None:
        """Write the test log as CSV (see :func:`deepaq_gui.blind.export_log_csv`).

        Raises
        ------
        RuntimeError
            When no test was started.
        OSError
            When the file cannot be written.
        """
        if self.test is None:
            raise RuntimeError("no test to export")
        export_log_csv(self.test, path, self.tracks)

    def ask_export_log(self) -> None:
        """"Export log…": ask for a file name, then :meth:`export_log`."""
        if self.test is None:
            return
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export test log", "deepaq_blind_log.csv",
                                                        "CSV files (*.csv);;All files (*)")
        if not path:
            return
        try:
            self.export_log(path)
        except OSError as exc:
            self._message(f"Cannot write '{os.path.basename(path)}': {exc.strerror or exc}.", "error")
            return
        self._message(f"Log written to {os.path.basename(path)}.", "info")

    def _name(self, index: int) -> str:
        return self.tracks.get(index, (f"track {index}", ""))[0]

    def _refresh(self) -> None:
        """Enable/disable and relabel (subclasses)."""


class AbxPanel(_LogPanel):
    """ABX test between two engine tracks.

    Parameters
    ----------
    engine : PlaybackEngine
        The window's engine (tracks already loaded).
    tracks : mapping of int to (str, str)
        Engine index -> (file name, SHA-256), e.g. :func:`deepaq_gui.blind.tracks_from_session`.
    parent : QWidget, optional

    Call :meth:`start` (or press "Start") to begin; :meth:`play` ("A" | "B" | "X"),
    :meth:`answer` ("A" | "B"), :meth:`reveal`, :meth:`export_log` mirror the buttons.
    Keys: A/B/X play, 1 = "X is A", 2 = "X is B", Space = play/pause.

    Signals
    -------
    identityHidden(bool), messageRequested(str, str)
        See :class:`BlindWidget`.
    answered(int, int)
        ``(correct, total)`` after each answer.
    finished(int, int, float)
        ``(correct, total, p_value)`` after the last planned answer.
    """

    answered = QtCore.Signal(int, int)
    finished = QtCore.Signal(int, int, float)

    def __init__(self, engine, tracks: Mapping[int, tuple[str, str]],
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(engine, tracks, parent)
        self.test: AbxTest | None = None
        self._build()
        self._fill_setup()
        self._refresh()

    # -- construction --------------------------------------------------------------------
    def _build(self) -> None:
        self.a_combo = QtWidgets.QComboBox()
        self.b_combo = QtWidgets.QComboBox()
        self.trials_spin = QtWidgets.QSpinBox()
        self.trials_spin.setRange(1, 100)
        self.trials_spin.setValue(16)
        self.start_button = self._button("Start", "Start a new ABX test (a new random X sequence)", self._start_clicked)
        setup = QtWidgets.QHBoxLayout()
        for text, w in (("A:", self.a_combo), ("B:", self.b_combo), ("trials:", self.trials_spin)):
            setup.addWidget(QtWidgets.QLabel(text))
            setup.addWidget(w, 1 if isinstance(w, QtWidgets.QComboBox) else 0)
        setup.addWidget(self.start_button)

        self.play_buttons = {
            c: self._button(f"Play {c}", f"Play {c} from the current position (key {c})",
                            lambda c=c: self.play(c), checkable=True)
            for c in "ABX"
        }
        self.pause_button = self._button("Play/Pause", "Play or pause (Space)", self.toggle_playback)
        play_row = QtWidgets.QHBoxLayout()
        for b in self.play_buttons.values():
            play_row.addWidget(b)
        play_row.addWidget(self.pause_button)

        self.answer_buttons = {
            "A": self._button("X is A", "Answer: X is A (key 1)", lambda: self.answer("A")),
            "B": self._button("X is B", "Answer: X is B (key 2)", lambda: self.answer("B")),
        }
        answer_row = QtWidgets.QHBoxLayout()
        for b in self.answer_buttons.values():
            answer_row.addWidget(b)

        self.trial_label = QtWidgets.QLabel()
        self.score_label = QtWidgets.QLabel()
        font = self.score_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self.score_label.setFont(font)
        self.show_score = QtWidgets.QCheckBox("Show the running score")
        self.show_score.setChecked(True)
        self.show_score.setFocusPolicy(QtCore.Qt.NoFocus)
        self.show_score.toggled.connect(lambda _=False: self._refresh())
        self.reveal_button = self._button("Reveal", "Show what X was in every trial", self.reveal)
        self.export_button = self._button("Export log…", "Save the test log as CSV", self.ask_export_log)
        end_row = QtWidgets.QHBoxLayout()
        end_row.addWidget(self.reveal_button)
        end_row.addWidget(self.export_button)
        end_row.addStretch(1)
        self.result_view = QtWidgets.QPlainTextEdit()
        self.result_view.setReadOnly(True)
        self.result_view.setFocusPolicy(QtCore.Qt.NoFocus)
        self.result_view.setMaximumHeight(160)
        self.result_view.hide()
        keys = QtWidgets.QLabel("Keys: A / B / X play, 1 = X is A, 2 = X is B, Space = play/pause.")
        keys.setStyleSheet("color: gray")

        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(setup)
        lay.addLayout(play_row)
        lay.addLayout(answer_row)
        status_row = QtWidgets.QHBoxLayout()
        status_row.addWidget(self.trial_label)
        status_row.addStretch(1)
        status_row.addWidget(self.score_label)
        lay.addLayout(status_row)
        lay.addWidget(self.show_score)
        lay.addLayout(end_row)
        lay.addWidget(self.result_view)
        lay.addWidget(self.status)
        lay.addWidget(keys)
        lay.addStretch(1)

    def _fill_setup(self) -> None:
        for combo, default in ((self.a_combo, 0), (self.b_combo, 1)):
            combo.clear()
            for i in sorted(self.tracks):
                combo.addItem(track_label(i, self.tracks[i][0]), i)
            if combo.count():
                combo.setCurrentIndex(min(default, combo.count() - 1))

    # -- the test ------------------------------------------------------------------------
    def _start_clicked(self) -> None:
        a, b = self.a_combo.currentData(), self.b_combo.currentData()
        if a is None or b is None or a == b:
            self._message("Choose two different files for A and B.", "warning")
            return
        self.start(a, b, self.trials_spin.value())

    def start(self, a_index: int, b_index: int, trials: int = 16, seed: int | None = None) -> AbxTest:
        """Begin a new test (abandoning a running one); identities are hidden from now on."""
        self.test = AbxTest(a_index, b_index, trials, seed)
        for combo, i in ((self.a_combo, a_index), (self.b_combo, b_index)):
            k = combo.findData(i)
            if k >= 0:
                combo.setCurrentIndex(k)
        self.trials_spin.setValue(trials)
        self.revealed = False
        self._label, self._label_index = "", None
        self.result_view.clear()
        self.result_view.hide()
        self.status.clear()
        self._set_hidden(True)
        self._refresh()
        self.setFocus()
        return self.test

    @property
    def running(self) -> bool:
        """A test is started, not finished and not stopped."""
        return self.test is not None and self._hidden and not self.test.finished

    def play(self, letter: str) -> None:
        """Play A, B or X (of the current trial) from the current position."""
        letter = letter.upper()
        t = self.test
        if t is None or letter not in "ABX":
            return
        if letter == "X" and (t.finished or not self._hidden):
            return
        self._play_index(t.index_of(letter), letter)

    def answer(self, choice: str) -> None:
        """Answer "X is ``choice``" for the current trial and go on to the next one."""
        t = self.test
        if not self.running:
            return
        t.answer(choice)
        self.answered.emit(t.correct, t.total)
        if t.finished:
            if self._label == "X":
                self._label, self._label_index = "", None
            self._message(f"Finished: {t.summary()}. Press Reveal to see what X was.", "info")
            self.finished.emit(t.correct, t.total, t.p_value)
        elif self._label == "X":
            self._play_index(t.x_index, "X")  # keep listening to X: this trial's X
        self._refresh()

    def reveal(self) -> None:
        """Show what X was in every answered trial; identities may be shown again."""
        t = self.test
        if t is None:
            return
        self.revealed = True
        lines = [f"A = {self._name(t.a_index)}", f"B = {self._name(t.b_index)}", ""]
        for trial in t.log:
            lines.append(f"trial {trial.trial:2d}: X was {trial.x_was}, answered {trial.answer} "
                         f"({'correct' if trial.correct else 'wrong'})")
        lines += ["", t.summary()]
        self.result_view.setPlainText("\n".join(lines))
        self.result_view.show()
        self.stop()

    def _update_playing(self) -> None:
        for c, b in self.play_buttons.items():
            b.setChecked(c == self._label)

    def _refresh(self) -> None:
        t = self.test
        running = self.running
        for c, b in self.play_buttons.items():
            b.setEnabled(t is not None and (running if c == "X" else True))
        for b in self.answer_buttons.values():
            b.setEnabled(running)
        self._update_playing()
        if t is None:
            self.trial_label.setText("Choose A and B, then Start.")
            self.score_label.setText("")
        else:
            shown = min(t.trial_number, t.trials)
            self.trial_label.setText(f"Trial {shown} of {t.trials}" if not t.finished
                                     else f"Done: {t.total} trials")
            if self.show_score.isChecked() or t.finished or self.revealed:
                self.score_label.setText(f"{t.correct} / {t.total} correct, {format_p(t.p_value)}")
            else:
                self.score_label.setText(f"{t.total} answered")
        self.reveal_button.setEnabled(t is not None and t.finished and not self.revealed)
        self.export_button.setEnabled(t is not None and t.total > 0)

    def handle_key(self, event: QtGui.QKeyEvent) -> bool:
        """A/B/X play, 1/2 answer, Space play/pause; True when the key was used."""
        if event.modifiers() & _MODIFIERS or self.test is None or self.typing():
            return False
        k = event.key()
        if k in (QtCore.Qt.Key_A, QtCore.Qt.Key_B, QtCore.Qt.Key_X):
            self.play(_LETTER_KEYS[k])
        elif k == QtCore.Qt.Key_1:
            self.answer("A")
        elif k == QtCore.Qt.Key_2:
            self.answer("B")
        elif k == QtCore.Qt.Key_Space:
            self.toggle_playback()
        else:
            return False
        return True


class BlindAbPanel(_LogPanel):
    """Blind preference test: two or more engine tracks behind letters re-drawn every trial.

    Parameters
    ----------
    engine : PlaybackEngine
    tracks : mapping of int to (str, str)
        Engine index -> (file name, SHA-256).
    parent : QWidget, optional

    :meth:`start` (``indices``, ``trials``, ``seed``) begins; :meth:`play` (letter) plays;
    :meth:`prefer` (letter) answers and moves to the next trial; :meth:`reveal` shows which file
    was behind each letter and how often each was preferred. Keys: letters play, 1..n prefer
    the n-th letter, Space play/pause.

    Signals
    -------
    identityHidden(bool), messageRequested(str, str)
        See :class:`BlindWidget`.
    finished()
        After the last trial.
    """

    finished = QtCore.Signal()

    def __init__(self, engine, tracks: Mapping[int, tuple[str, str]],
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(engine, tracks, parent)
        self.test: BlindAbTest | None = None
        self.play_buttons: dict[str, QtWidgets.QPushButton] = {}
        self.prefer_buttons: dict[str, QtWidgets.QPushButton] = {}
        self._build()
        self._fill_setup()
        self._refresh()

    def _build(self) -> None:
        self.track_list = QtWidgets.QListWidget()
        self.track_list.setMaximumHeight(120)
        self.trials_spin = QtWidgets.QSpinBox()
        self.trials_spin.setRange(1, 100)
        self.trials_spin.setValue(5)
        self.start_button = self._button("Start", "Start a blind comparison of the ticked files", self._start_clicked)
        setup = QtWidgets.QHBoxLayout()
        setup.addWidget(QtWidgets.QLabel("trials:"))
        setup.addWidget(self.trials_spin)
        setup.addStretch(1)
        setup.addWidget(self.start_button)
        self.letter_grid = QtWidgets.QGridLayout()
        self.trial_label = QtWidgets.QLabel()
        self.reveal_button = self._button("Reveal", "Show which file was behind each letter", self.reveal)
        self.export_button = self._button("Export log…", "Save the test log as CSV", self.ask_export_log)
        self.pause_button = self._button("Play/Pause", "Play or pause (Space)", self.toggle_playback)
        end_row = QtWidgets.QHBoxLayout()
        end_row.addWidget(self.pause_button)
        end_row.addWidget(self.reveal_button)
        end_row.addWidget(self.export_button)
        end_row.addStretch(1)
        self.result_view = QtWidgets.QPlainTextEdit()
        self.result_view.setReadOnly(True)
        self.result_view.setFocusPolicy(QtCore.Qt.NoFocus)
        self.result_view.setMaximumHeight(160)
        self.result_view.hide()
        keys = QtWidgets.QLabel("Keys: a letter plays it, 1..n prefer the n-th letter, Space = play/pause.")
        keys.setStyleSheet("color: gray")
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(QtWidgets.QLabel("Files to compare:"))
        lay.addWidget(self.track_list)
        lay.addLayout(setup)
        lay.addLayout(self.letter_grid)
        lay.addWidget(self.trial_label)
        lay.addLayout(end_row)
        lay.addWidget(self.result_view)
        lay.addWidget(self.status)
        lay.addWidget(keys)
        lay.addStretch(1)

    def _fill_setup(self) -> None:
        self.track_list.clear()
        for i in sorted(self.tracks):
            item = QtWidgets.QListWidgetItem(track_label(i, self.tracks[i][0]))
            item.setData(QtCore.Qt.UserRole, i)
            item.setFlags(item.flags() | QtCore.Qt.ItemIsUserCheckable)
            item.setCheckState(QtCore.Qt.Checked if i > 0 else QtCore.Qt.Unchecked)
            self.track_list.addItem(item)

    def _checked(self) -> list[int]:
        out = []
        for r in range(self.track_list.count()):
            item = self.track_list.item(r)
            if item.checkState() == QtCore.Qt.Checked:
                out.append(int(item.data(QtCore.Qt.UserRole)))
        return out

    def _start_clicked(self) -> None:
        indices = self._checked()
        if len(indices) < 2:
            self._message("Tick at least two files to compare.", "warning")
            return
        self.start(indices, self.trials_spin.value())

    def start(self, indices: list[int], trials: int = 5, seed: int | None = None) -> BlindAbTest:
        """Begin a new blind comparison of the engine tracks ``indices``."""
        self.test = BlindAbTest(indices, seed=seed, trials=trials)
        self.trials_spin.setValue(trials)
        self.revealed = False
        self._label, self._label_index = "", None
        self._build_letters(self.test.letters)
        self.result_view.clear()
        self.result_view.hide()
        self.status.clear()
        self._set_hidden(True)
        self._refresh()
        self.setFocus()
        return self.test

    def _build_letters(self, letters) -> None:
        while self.letter_grid.count():
            w = self.letter_grid.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.play_buttons, self.prefer_buttons = {}, {}
        for col, c in enumerate(letters):
            p = self._button(f"Play {c}", f"Play {c} (key {c})", lambda c=c: self.play(c), checkable=True)
            q = self._button(f"Prefer {c}", f"{c} sounds better (key {col + 1})", lambda c=c: self.prefer(c))
            self.letter_grid.addWidget(p, 0, col)
            self.letter_grid.addWidget(q, 1, col)
            self.play_buttons[c], self.prefer_buttons[c] = p, q

    @property
    def running(self) -> bool:
        return self.test is not None and self._hidden and not self.test.finished

    def play(self, letter: str) -> None:
        """Play the track behind ``letter`` in the current trial."""
        letter = letter.upper()
        if not self.running or letter not in self.test.letters:
            return
        self._play_index(self.test.index_of(letter), letter)

    def prefer(self, letter: str) -> None:
        """Prefer ``letter`` in the current trial and move on (letters are re-drawn)."""
        if not self.running:
            return
        t = self.test
        t.prefer(letter)
        if t.finished:
            self._label, self._label_index = "", None
            self._message("Finished. Press Reveal to see which file was which.", "info")
            self.finished.emit()
        elif self._label:
            self._play_index(t.index_of(self._label), self._label)  # same letter, new trial
        self._refresh()

    def reveal(self) -> None:
        """Show the files behind the letters in every trial and the preference counts."""
        t = self.test
        if t is None:
            return
        self.revealed = True
        lines = []
        for trial in t.log:
            mapping = ", ".join(f"{c} = {self._name(i)}" for c, i in trial.mapping.items())
            lines.append(f"trial {trial.trial}: {mapping}; preferred {trial.preferred} "
                         f"({self._name(trial.preferred_index)})")
        lines += ["", t.summary({i: self._name(i) for i in t.indices})]
        self.result_view.setPlainText("\n".join(lines))
        self.result_view.show()
        self.stop()

    def _update_playing(self) -> None:
        for c, b in self.play_buttons.items():
            b.setChecked(c == self._label)

    def _refresh(self) -> None:
        t = self.test
        running = self.running
        for b in (*self.play_buttons.values(), *self.prefer_buttons.values()):
            b.setEnabled(running)
        self._update_playing()
        if t is None:
            self.trial_label.setText("Tick the files to compare, then Start.")
        elif not t.finished:
            self.trial_label.setText(f"Trial {t.trial_number} of {t.trials}: which one do you prefer?")
        else:
            self.trial_label.setText(f"Done: {t.total} trials")
        self.reveal_button.setEnabled(t is not None and t.finished and not self.revealed)
        self.export_button.setEnabled(t is not None and t.total > 0)

    def handle_key(self, event: QtGui.QKeyEvent) -> bool:
        """Letters play, digits 1..n prefer, Space play/pause; True when the key was used."""
        if event.modifiers() & _MODIFIERS or self.test is None or self.typing():
            return False
        k = event.key()
        letters = self.test.letters
        if k in _LETTER_KEYS and _LETTER_KEYS[k] in letters:
            self.play(_LETTER_KEYS[k])
        elif k in _DIGIT_KEYS and 1 <= _DIGIT_KEYS[k] <= len(letters):
            self.prefer(letters[_DIGIT_KEYS[k] - 1])
        elif k == QtCore.Qt.Key_Space:
            self.toggle_playback()
        else:
            return False
        return True
