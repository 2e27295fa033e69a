"""Small widgets of the main window: the non-blocking message bar and the files panel."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from deepaq_core.results import QualityResult
from deepaq_gui.session import Session
from deepaq_gui.views.base import score_text, version_color


class MessageBar(QtWidgets.QFrame):
    """A dismissable one-line message above the views: never modal, never blocks the session."""

    COLOURS = {"info": "#dbeafe", "warning": "#fef3c7", "error": "#fee2e2"}

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QtWidgets.QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        close = QtWidgets.QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        lay.addWidget(self.label, 1)
        lay.addWidget(close)
        self.history: list[tuple[str, str]] = []
        self.hide()

    def show_message(self, text: str, level: str = "error") -> None:
        """Show ``text`` (replacing the previous message) and keep it in the history."""
        self.history.append((level, text))
        self.setStyleSheet(f"MessageBar {{ background: {self.COLOURS.get(level, '#eee')}; border-radius: 4px; }}")
        self.label.setText(text)
        self.show()


class FilesPanel(QtWidgets.QTreeWidget):
    """Reference and versions with their properties; selecting a row selects what plays."""

    trackSelected = QtCore.Signal(int)  # 0 = reference, i = version i (1-based)
    removeRequested = QtCore.Signal(int)  # version index, 0-based

    HEADERS = ["", "file", "rate", "ch", "bits", "duration", "offset", "gain", "score"]

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(self.HEADERS)
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        self.setSelectionMode(QtWidgets.QAbstractItemView.SingleSelection)
        self.setFocusPolicy(QtCore.Qt.NoFocus)  # keys belong to the transport (R, 1-9, Tab, Space)
        self.itemSelectionChanged.connect(self._selected)
        self.setContextMenuPolicy(QtCore.Qt.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self.header().setStretchLastSection(False)
        self.header().setSectionResizeMode(1, QtWidgets.QHeaderView.Stretch)
        # Long names keep their start and their end (where versions usually differ: "_64k.flac");
        # the whole path is in the tooltip.
        self.setTextElideMode(QtCore.Qt.ElideMiddle)
        self.setVerticalScrollBarPolicy(QtCore.Qt.ScrollBarAlwaysOff)
        self._fit_height(1)

    def populate(self, session: Session, current: int, show_scores: bool = True) -> None:
        """Rebuild the rows from the session (cheap: at most ten rows); no scores during blind tests."""
        self.blockSignals(True)
        self.clear()
        tracks = ([session.reference] if session.reference else []) + list(session.versions)
        for row, track in enumerate(tracks):
            info = track.info
            key = "R" if row == 0 else str(row)
            r: QualityResult | None = session.results.get(row - 1) if row and show_scores else None
            offset = f"{round(r.alignment.lag_ms, 1) + 0.0:.1f} ms" if r else ""  # no "-0.0"
            gain = f"{round(r.gain_db, 1) + 0.0:+.1f} dB" if r else ""
            score = score_text(r.score) if r else ("" if row == 0 or not show_scores else "…")
            values = [key, track.name, f"{info.sample_rate / 1000:g}k", str(info.channels),
                      str(info.bit_depth or "-"), f"{info.duration_s:.2f} s", offset, gain, score]
            item = QtWidgets.QTreeWidgetItem(values)
            item.setToolTip(1, track.path)
            if r is not None:
                item.setToolTip(6, f"{r.alignment.lag_native_samples} samples at {info.sample_rate} Hz"
                                   f"{'' if r.alignment.estimated else ' (given, not estimated)'}")
            item.setData(0, QtCore.Qt.UserRole, row)
            if row:  # the version's colour in the curves and the score table
                item.setData(0, QtCore.Qt.DecorationRole, version_color(row - 1))
            self.addTopLevelItem(item)
            if row == current:
                item.setSelected(True)
        for c in range(len(self.HEADERS)):
            if c != 1:
                self.resizeColumnToContents(c)
        self._fit_height(len(tracks))
        self.blockSignals(False)

    def _fit_height(self, rows: int) -> None:
        """As tall as its rows (at most a reference and nine versions): the panel's rest is for other things."""
        row_h = self.sizeHintForRow(0) if self.topLevelItemCount() else self.fontMetrics().height() + 6
        rows = max(1, min(rows, 10))
        height = self.header().sizeHint().height() + rows * row_h + 2 * self.frameWidth() + 2
        if height != self.height() or self.minimumHeight() != self.maximumHeight():
            self.setFixedHeight(height)

    def _selected(self) -> None:
        items = self.selectedItems()
        if items:
            self.trackSelected.emit(int(items[0].data(0, QtCore.Qt.UserRole)))

    def _menu(self, pos: QtCore.QPoint) -> None:
        item = self.itemAt(pos)
        if item is None:
            return
        row = int(item.data(0, QtCore.Qt.UserRole))
        if row == 0:
            return
        menu = QtWidgets.QMenu(self)
        act = menu.addAction("Remove this version")
        if menu.exec(self.viewport().mapToGlobal(pos)) is act:
            self.removeRequested.emit(row - 1)


def key_to_track(event: QtGui.QKeyEvent) -> int | None:
    """R or 0 -> 0 (reference), 1-9 -> that version; anything else None."""
    k = event.key()
    if k in (QtCore.Qt.Key_R, QtCore.Qt.Key_0):
        return 0
    if QtCore.Qt.Key_1 <= k <= QtCore.Qt.Key_9:
        return int(k - QtCore.Qt.Key_0)
    return None
