"""A MUSHRA-style listening page (after ITU-R BS.1534) whose ratings become an evaluation manifest.

The listener hears the open **reference** and a set of unlabeled **conditions** in random order:
the hidden reference (the reference itself), an optional low-pass anchor and the versions under
test, and rates each on a 0-100 slider with the MUSHRA scale (Excellent 80-100, Good 60-80,
Fair 40-60, Poor 20-40, Bad 0-20). "Save ratings…" appends one row per condition to a CSV in the
manifest format ``deepaq eval`` reads (:mod:`deepaq_core.evaluation.manifest`)::

    reference,degraded,subjective,condition,listener
    ref.wav,ref.wav,98,hidden_reference,Ann
    ref.wav,anchor_lp35.wav,12,anchor,Ann
    ref.wav,codec_a.wav,71,version,Ann

Paths are relative to the CSV's folder where possible. Several listeners (one after the other on
the same machine: "Next listener" re-draws the order and clears the page) append to the same
file. ``deepaq eval`` can then compare the metric with the listeners' scores, e.g. grouped by
``condition``.

Integration with the main window
--------------------------------
``page = MushraPage(window.engine, reference=0, versions=[1, 2, 3], anchor=None,
paths=paths_from_session(window.session))`` — indices are the engine's (0 reference, i version
i). The page is a :class:`~deepaq_gui.blind_panel.BlindWidget`: it hides identities from the
start (``page.identity_hidden`` is True until "Reveal"; ``identityHidden(bool)`` signals
changes), ``page.playing_label()`` gives "Reference" or the condition's number, and the window
should forward keys (``page.handle_key(event)``) and call ``page.resync()`` / ``page.stop()`` as
for the ABX panel. Keys: R plays the reference, 1..9 (0 = 10th) play the conditions, Space
play/pause.

Anchor: if none of the loaded files is a low-pass anchor, :func:`write_lowpass_anchor` writes a
3.5 kHz low-pass copy of the reference; add that file to the session as a version and pass its
engine index as ``anchor``.
"""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from deepaq_core.errors import DeePAQError
from deepaq_gui.blind_panel import _DIGIT_KEYS, _MODIFIERS, BlindWidget

__all__ = [
    "ANCHOR",
    "HIDDEN_REFERENCE",
    "MANIFEST_COLUMNS",
    "MUSHRA_SCALE",
    "VERSION",
    "MushraPage",
    "append_manifest_rows",
    "lowpass_anchor",
    "paths_from_session",
    "randomised_order",
    "write_lowpass_anchor",
]

HIDDEN_REFERENCE = "hidden_reference"
ANCHOR = "anchor"
VERSION = "version"
MANIFEST_COLUMNS = ("reference", "degraded", "subjective", "condition", "listener")
#: (label, low, high) from the top of the scale down.
MUSHRA_SCALE = (("Excellent", 80, 100), ("Good", 60, 80), ("Fair", 40, 60), ("Poor", 20, 40), ("Bad", 0, 20))
ANCHOR_CUTOFF_HZ = 3500.0


# -- pure helpers ----------------------------------------------------------------------------


def randomised_order(conditions: Sequence[int], seed: int | None = None) -> list[int]:
    """``conditions`` shuffled with ``random.Random(seed)`` (same seed, same order)."""
    order = list(conditions)
    random.Random(seed).shuffle(order)
    return order


def paths_from_session(session) -> dict[int, str]:
    """Engine index -> absolute file path (0 reference, ``i`` version ``i``) of a Session."""
    out: dict[int, str] = {}
    if session.reference is not None:
        out[0] = session.reference.path
    for i, v in enumerate(session.versions, start=1):
        out[i] = v.path
    return out


def lowpass_anchor(samples: np.ndarray, sample_rate: int, cutoff_hz: float = ANCHOR_CUTOFF_HZ) -> np.ndarray:
    """The MUSHRA low-pass anchor: ``samples`` low-passed at ``cutoff_hz`` (3.5 kHz).

    An 8th-order Butterworth applied forwards and backwards (zero phase, so the anchor stays
    sample-aligned with the reference for A/B switching).

    Parameters
    ----------
    samples : numpy.ndarray
        ``[N]`` or ``[N, C]`` (time on axis 0).
    sample_rate : int
        Hz.
    cutoff_hz : float
        Cut-off frequency; at or above Nyquist the signal is returned unchanged (as float32).
    """
    import scipy.signal

    x = np.asarray(samples, dtype=np.float64)
    if cutoff_hz >= sample_rate / 2 or x.shape[0] < 64:
        return x.astype(np.float32)
    sos = scipy.signal.butter(8, cutoff_hz, btype="low", fs=sample_rate, output="sos")
    return scipy.signal.sosfiltfilt(sos, x, axis=0).astype(np.float32)


def write_lowpass_anchor(reference_path: str | os.PathLike, out_path: str | os.PathLike,
                         cutoff_hz: float = ANCHOR_CUTOFF_HZ) -> str:
    """Write a 3.5 kHz low-pass copy of ``reference_path`` to ``out_path``; returns its path.

    The format follows ``out_path``'s extension (e.g. ``.wav``, ``.flac``); the rate and the
    channels are the reference's.
    """
    import soundfile as sf

    try:
        x, sr = sf.read(os.fspath(reference_path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise DeePAQError(f"Cannot read '{os.path.basename(os.fspath(reference_path))}' to make the anchor ({exc}).") from None
    y = np.clip(lowpass_anchor(x, sr, cutoff_hz), -1.0, 1.0)
    out = os.path.abspath(os.fspath(out_path))
    sf.write(out, y, sr)
    return out


def _relative(p: str, base: Path) -> str:
    try:
        return os.path.relpath(p, base)
    except ValueError:  # another drive on Windows: keep it absolute
        return str(p)


def append_manifest_rows(path: str | os.PathLike, rows: Sequence[Mapping[str, object]],
                         columns: Sequence[str] = MANIFEST_COLUMNS) -> None:
    """Append ``rows`` to the manifest CSV ``path``, writing the header when the file is new.

    ``reference`` and ``degraded`` (absolute paths) become relative to the CSV's folder where
    possible, as :func:`deepaq_core.evaluation.manifest.write_manifest` does.

    Raises
    ------
    DeePAQError
        When the existing file has another header, or cannot be read or written.
    """
    out = Path(path)
    name = out.name
    base = out.resolve().parent
    columns = list(columns)
    exists = out.is_file() and out.stat().st_size > 0
    needs_newline = False
    if exists:
        try:
            with open(out, newline="", encoding="utf-8-sig") as f:
                header = next(csv.reader(f), [])
            with open(out, "rb") as f:
                f.seek(-1, os.SEEK_END)
                needs_newline = f.read(1) not in (b"\n", b"\r")
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DeePAQError(f"Cannot read the existing ratings file '{name}' ({exc}).") from None
        if [h.strip() for h in header] != columns:
            raise DeePAQError(
                f"'{name}' already holds other columns ({', '.join(header)}); choose a new file "
                f"or one written by this page ({', '.join(columns)})."
            )
    try:
        with open(out, "a", newline="", encoding="utf-8") as f:
            if needs_newline:
                f.write("\r\n")
            w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            if not exists:
                w.writeheader()
            for row in rows:
                rec = dict(row)
                for key in ("reference", "degraded"):
                    if rec.get(key):
                        rec[key] = _relative(os.fspath(rec[key]), base)
                w.writerow(rec)
    except OSError as exc:
        raise DeePAQError(f"Cannot write '{name}': {exc.strerror or exc}.") from None


# -- the page ----------------------------------------------------------------------------------


class _ScaleLabels(QtWidgets.QWidget):
    """Excellent / Good / Fair / Poor / Bad, each centred on its fifth of the slider's height."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.labels = []
        for text, lo, hi in MUSHRA_SCALE:
            lab = QtWidgets.QLabel(f"{text}\n{lo}-{hi}")
            lab.setAlignment(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)
            lab.setStyleSheet("color: #555")
            lay.addWidget(lab, 1)
            self.labels.append(lab)


class MushraPage(BlindWidget):
    """One MUSHRA trial page: open reference plus hidden reference, anchor and versions, unlabeled.

    Parameters
    ----------
    engine : PlaybackEngine
        The window's engine with the tracks loaded (0 reference, i version i).
    reference : int
        Engine index of the reference (also the hidden reference).
    versions : sequence of int
        Engine indices of the versions under test (distinct, not the reference or the anchor).
    anchor : int or None
        Engine index of a low-pass anchor, if one is loaded (see :func:`write_lowpass_anchor`).
    paths : mapping of int to str, optional
        Engine index -> audio file path, needed to save the manifest
        (:func:`paths_from_session`).
    seed : int or None
        Seed of the presentation order (same seed, same order).
    parent : QWidget, optional

    Signals
    -------
    identityHidden(bool), messageRequested(str, str)
        See :class:`~deepaq_gui.blind_panel.BlindWidget`.
    saved(str, int)
        ``(csv path, rows written)`` after the ratings were saved.
    """

    saved = QtCore.Signal(str, int)

    def __init__(self, engine, reference: int, versions: Sequence[int], anchor: int | None = None, *,
                 paths: Mapping[int, str] | None = None, seed: int | None = None,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(engine, parent)
        reference = int(reference)
        versions = [int(v) for v in versions]
        anchor = None if anchor is None else int(anchor)
        conditions = [reference, *([anchor] if anchor is not None else []), *versions]
        if not versions and anchor is None:
            raise ValueError("a MUSHRA page needs at least one version or an anchor")
        if len(set(conditions)) != len(conditions):
            raise ValueError("the reference, the anchor and the versions must be different tracks")
        self.reference = reference
        self.versions = versions
        self.anchor = anchor
        self.paths: dict[int, str] = dict(paths or {})
        self.seed = seed
        self._conditions = conditions  # fixed order: hidden reference, anchor, versions
        self._order: list[int] = randomised_order(conditions, seed)
        self._touched: set[int] = set()
        self.revealed = False
        self.sliders: dict[int, QtWidgets.QSlider] = {}
        self.play_buttons: dict[int, QtWidgets.QPushButton] = {}
        self.value_labels: dict[int, QtWidgets.QLabel] = {}
        self.header_labels: dict[int, QtWidgets.QLabel] = {}
        self._ref_playing = False  # the open reference (not the hidden one) plays
        self._hidden = True  # from the start; read identity_hidden after connecting the signal
        self._build()
        self._build_conditions()

    # -- construction --------------------------------------------------------------------
    def _build(self) -> None:
        self.reference_button = self._button("Reference", "Play the open reference (key R)",
                                             self.play_reference, checkable=True)
        self.listener_edit = QtWidgets.QLineEdit()
        self.listener_edit.setPlaceholderText("listener name")
        self.listener_edit.setMaximumWidth(220)
        self.listener_edit.returnPressed.connect(self.setFocus)  # Enter: back to the play keys
        self.save_button = self._button("Save ratings…", "Append these ratings to a manifest CSV", self.ask_save)
        self.next_button = self._button("Next listener", "Clear the page and draw a new order", self.new_listener)
        self.reveal_button = self._button("Reveal", "Show which condition was which", self.reveal)
        self.pause_button = self._button("Play/Pause", "Play or pause (Space)", self.toggle_playback)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.reference_button)
        top.addWidget(self.pause_button)
        top.addStretch(1)
        top.addWidget(QtWidgets.QLabel("Listener:"))
        top.addWidget(self.listener_edit)
        top.addWidget(self.save_button)
        top.addWidget(self.next_button)
        top.addWidget(self.reveal_button)

        self.grid = QtWidgets.QGridLayout()
        self.scale = _ScaleLabels()
        self.grid.addWidget(self.scale, 2, 0)
        self.grid.setRowStretch(2, 1)
        hint = QtWidgets.QLabel(
            "Rate each condition against the reference (100 = no audible difference). One of them is "
            "the reference itself. Keys: R reference, 1-9 conditions, Space play/pause.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: gray")
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(self.grid, 1)
        lay.addWidget(self.status)
        lay.addWidget(hint)

    def _build_conditions(self) -> None:
        for d in (self.sliders, self.play_buttons, self.value_labels, self.header_labels):
            for w in d.values():
                self.grid.removeWidget(w)
                w.deleteLater()
            d.clear()
        for col, index in enumerate(self._order, start=1):
            head = QtWidgets.QLabel(str(col))
            head.setAlignment(QtCore.Qt.AlignCenter)
            value = QtWidgets.QLabel("–")
            value.setAlignment(QtCore.Qt.AlignCenter)
            slider = QtWidgets.QSlider(QtCore.Qt.Vertical)
            slider.setRange(0, 100)
            slider.setValue(0)
            slider.setTickPosition(QtWidgets.QSlider.TicksBothSides)
            slider.setTickInterval(20)
            slider.setPageStep(10)
            slider.setMinimumHeight(220)
            slider.setFocusPolicy(QtCore.Qt.ClickFocus)
            slider.valueChanged.connect(lambda v, i=index: self._slider_moved(i, v))
            play = self._button(f"Play {col}", f"Play condition {col} (key {col % 10})",
                                lambda i=index: self.play_condition(i), checkable=True)
            self.grid.addWidget(head, 0, col, QtCore.Qt.AlignHCenter)
            self.grid.addWidget(value, 1, col, QtCore.Qt.AlignHCenter)
            self.grid.addWidget(slider, 2, col, QtCore.Qt.AlignHCenter)
            self.grid.addWidget(play, 3, col)
            self.header_labels[index], self.value_labels[index] = head, value
            self.sliders[index], self.play_buttons[index] = slider, play
        self._update_playing()

    # -- ratings ---------------------------------------------------------------------------
    def conditions_order(self) -> list[int]:
        """Engine indices in the presented (randomised) order; the hidden reference is ``reference``."""
        return list(self._order)

    def condition_kind(self, index: int) -> str:
        """``"hidden_reference"``, ``"anchor"`` or ``"version"`` for a condition's engine index."""
        if index == self.reference:
            return HIDDEN_REFERENCE
        if index == self.anchor:
            return ANCHOR
        if index in self.versions:
            return VERSION
        raise KeyError(f"track {index} is not a condition of this page")

    def ratings(self) -> dict[int, float]:
        """Engine index -> the slider's value 0-100 (every condition; unmoved sliders read 0)."""
        return {i: float(self.sliders[i].value()) for i in self._conditions}

    def unrated(self) -> list[int]:
        """Conditions whose slider the listener has not set yet (presented order)."""
        return [i for i in self._order if i not in self._touched]

    def set_rating(self, index: int, value: float) -> None:
        """Set the slider of condition ``index`` (0-100, rounded to an integer)."""
        slider = self.sliders[index]
        self._touched.add(index)
        slider.setValue(int(round(min(max(float(value), 0.0), 100.0))))
        self.value_labels[index].setText(str(slider.value()))

    def _slider_moved(self, index: int, value: int) -> None:
        self._touched.add(index)
        self.value_labels[index].setText(str(value))

    # -- playback ------------------------------------------------------------------------
    def play_reference(self) -> None:
        """Play the open reference from the current position."""
        if self._play_index(self.reference, "Reference"):
            self._label_index = None  # the hidden reference shares the index: mark by flag
            self._ref_playing = True
            self._update_playing()

    def play_condition(self, index: int) -> None:
        """Play condition ``index`` (an engine index) from the current position."""
        if index not in self.sliders:
            return
        was, self._ref_playing = self._ref_playing, False
        if not self._play_index(index, str(self._order.index(index) + 1)):
            self._ref_playing = was

    def resync(self) -> None:
        if self._ref_playing:
            if self.reference < self.engine.track_count:
                self.engine.select(self.reference)
        else:
            super().resync()

    def _update_playing(self) -> None:
        ref = self._ref_playing
        self.reference_button.setChecked(ref and self._label == "Reference")
        for i, b in self.play_buttons.items():
            b.setChecked(not ref and self._label_index == i)

    # -- saving ----------------------------------------------------------------------------
    def listener(self) -> str:
        return self.listener_edit.text().strip()

    def manifest_rows(self, listener: str | None = None) -> list[dict[str, str]]:
        """The rows :meth:`export_manifest` appends: hidden reference, anchor, versions (absolute paths)."""
        listener = (self.listener() if listener is None else listener).strip()
        missing = [i for i in (self.reference, *self._conditions) if not self.paths.get(i)]
        if missing:
            raise DeePAQError(f"No file is known for track(s) {', '.join(map(str, sorted(set(missing))))}; "
                              "the ratings cannot be saved as a manifest.")
        ref = os.path.abspath(self.paths[self.reference])
        rows = []
        for i, value in self.ratings().items():
            rows.append({
                "reference": ref,
                "degraded": os.path.abspath(self.paths[i]),
                "subjective": f"{value:g}",
                "condition": self.condition_kind(i),
                "listener": listener,
            })
        return rows

    def export_manifest(self, path: str | os.PathLike, listener: str | None = None,
                        allow_unrated: bool = False) -> int:
        """Append one row per condition to the manifest CSV ``path``; returns the rows written.

        Parameters
        ----------
        path : str or os.PathLike
            CSV file; created with a header, or appended to when it has the same header.
        listener : str or None
            Listener name (default: the name field).
        allow_unrated : bool
            Save even if some sliders were never set (they count as 0).

        Raises
        ------
        DeePAQError
            No listener name, unrated conditions, unknown file paths, or an existing file with
            other columns / not writable.
        """
        name = (self.listener() if listener is None else listener).strip()
        if not name:
            raise DeePAQError("Enter the listener's name before saving the ratings.")
        if not allow_unrated and self.unrated():
            numbers = ", ".join(str(self._order.index(i) + 1) for i in self.unrated())
            raise DeePAQError(f"Rate every condition before saving (not yet rated: {numbers}).")
        rows = self.manifest_rows(name)
        append_manifest_rows(path, rows, MANIFEST_COLUMNS)
        self.saved.emit(os.fspath(path), len(rows))
        return len(rows)

    def ask_save(self) -> None:
        """"Save ratings…": choose a CSV (new or one to append to), then :meth:`export_manifest`."""
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Save ratings (appends to an existing ratings file)", "listening_test.csv",
            "CSV files (*.csv);;All files (*)", options=QtWidgets.QFileDialog.DontConfirmOverwrite)
        if not path:
            return
        try:
            n = self.export_manifest(path)
        except DeePAQError as exc:
            self._message(str(exc), "error")
            return
        self._message(f"{n} ratings of {self.listener()} saved to {os.path.basename(path)}.", "info")

    # -- listeners -----------------------------------------------------------------------
    def new_listener(self, seed: int | None = None) -> None:
        """Clear the name and the sliders, draw a new order and hide identities again."""
        self.seed = seed
        self._order = randomised_order(self._conditions, seed)
        self._touched.clear()
        self._label, self._label_index, self._ref_playing = "", None, False
        self.listener_edit.clear()
        self.status.clear()
        self.revealed = False
        self._build_conditions()
        self._set_hidden(True)

    def reveal(self) -> None:
        """Name the conditions under their sliders; identities may be shown again."""
        self.revealed = True
        for i, head in self.header_labels.items():
            kind = self.condition_kind(i)
            if kind == HIDDEN_REFERENCE:
                text = "hidden ref."
            elif kind == ANCHOR:
                text = "anchor"
            else:
                text = os.path.basename(self.paths.get(i, "")) or f"track {i}"
            head.setText(f"{self._order.index(i) + 1}\n{text}")
            head.setToolTip(self.paths.get(i, ""))
        self._set_hidden(False)

    def stop(self) -> None:
        """End the page's control of playback; identities may be shown again."""
        self._label, self._label_index, self._ref_playing = "", None, False
        self._update_playing()
        self._set_hidden(False)

    # -- keys ------------------------------------------------------------------------------
    def handle_key(self, event: QtGui.QKeyEvent) -> bool:
        """R reference, 1..9 and 0 (10th) conditions, Space play/pause; True when used."""
        if event.modifiers() & _MODIFIERS or self.typing():
            return False
        k = event.key()
        if k == QtCore.Qt.Key_R:
            self.play_reference()
        elif k in _DIGIT_KEYS:
            n = _DIGIT_KEYS[k] or 10
            if n <= len(self._order):
                self.play_condition(self._order[n - 1])
        elif k == QtCore.Qt.Key_Space:
            self.toggle_playback()
        else:
            return False
        return True
