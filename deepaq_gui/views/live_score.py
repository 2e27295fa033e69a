"""The big "live score" read-out: the score at the playhead of the selected version."""

from __future__ import annotations

import math

from PySide6 import QtCore, QtGui, QtWidgets

from .base import score_text

VALUE_POINT_SIZE = 36
CAPTION_POINT_SIZE = 9
NO_VALUE = "–"


class LiveScoreLabel(QtWidgets.QWidget):
    """A large number ("73.4") over a small caption (version name, model label, scale).

    Parameters
    ----------
    parent : QtWidgets.QWidget, optional
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._value = QtWidgets.QLabel(NO_VALUE)
        font = QtGui.QFont(self._value.font())
        font.setPointSize(VALUE_POINT_SIZE)
        font.setBold(True)
        self._value.setFont(font)
        self._value.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self._caption = QtWidgets.QLabel("")
        cfont = QtGui.QFont(self._caption.font())
        cfont.setPointSize(CAPTION_POINT_SIZE)
        self._caption.setFont(cfont)
        self._caption.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self._caption.setWordWrap(True)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(0)
        layout.addWidget(self._value)
        layout.addWidget(self._caption)

    def set_score(self, value: float | None, caption: str) -> None:
        """Show ``value`` with one decimal (``None`` or NaN shows a dash) and the caption.

        Cheap when nothing changed, since playback calls it about 30 times per second.

        Parameters
        ----------
        value : float or None
            Score on the 0-100 scale.
        caption : str
            E.g. ``"Version 2 · compact 0.1.0 · 0-100, higher is better"``.
        """
        if value is not None and not math.isfinite(value):
            value = None
        text = NO_VALUE if value is None else score_text(value)
        if (text, caption) == (self.text(), self.caption()):
            return
        self._value.setText(text)
        self._caption.setText(caption)
        self._caption.setToolTip(caption)

    def text(self) -> str:
        """The number as shown."""
        return self._value.text()

    def caption(self) -> str:
        """The caption as shown."""
        return self._caption.text()
