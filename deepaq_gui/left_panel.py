"""The window's left panel: model banner, live score, files, worst moments of the shown version, transport."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from deepaq_core.audio.display import WorstMoment
from deepaq_gui.views.base import score_text
from deepaq_gui.views.live_score import LiveScoreLabel
from deepaq_gui.widgets import FilesPanel

BANNER_STYLES = {
    "untrained": "background: #b91c1c; color: white; font-weight: bold; padding: 6px; border-radius: 4px;",
    "other": "background: #fef3c7; color: #78350f; font-weight: bold; padding: 6px; border-radius: 4px;",
}


class ModelBanner(QtWidgets.QLabel):
    """A coloured banner above the scores whenever they come from a model that is not trained.

    Red for an untrained model (random weights: the scores are not a perceptual measure), amber for
    another status (e.g. designed); hidden for a trained model or before any score exists.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self._shown: tuple[str, str] | None = None
        self.hide()

    def set_models(self, models) -> None:
        """Show the banner for the least trained of ``models`` (:class:`~deepaq_core.results.ModelInfo`)."""
        odd = [m for m in models if m.status != "trained"]
        if not odd:
            self.hide()
            self._shown = None
            return
        m = next((m for m in odd if m.status == "untrained"), odd[0])
        if m.status == "untrained":
            text = (f"UNTRAINED MODEL ({m.name} {m.version}): these scores come from random weights and do not "
                    "measure perceived quality.")
        else:
            text = f"Model {m.name} {m.version} is {m.status_note}."
        style = BANNER_STYLES["untrained" if m.status == "untrained" else "other"]
        if (text, style) == self._shown:
            return  # called on every refresh: a style sheet change re-polishes the widget
        self._shown = (text, style)
        self.setText(text)
        self.setToolTip(m.status_note)
        self.setStyleSheet(style)
        self.show()


class WorstMomentsList(QtWidgets.QTreeWidget):
    """The lowest-scoring moments of the shown version; a click seeks to one and loops it.

    Signals
    -------
    momentRequested(float, float)
        ``(start_s, end_s)`` of the moment clicked.
    """

    momentRequested = QtCore.Signal(float, float)

    HEADERS = ["#", "time (s)", "score", "band that differs most"]

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(self.HEADERS)
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setFocusPolicy(QtCore.Qt.NoFocus)  # keys belong to the transport
        self.setToolTip("The lowest-scoring windows of the shown version; click one to play it in a loop.")
        self.header().setStretchLastSection(True)
        self.itemClicked.connect(self._clicked)
        self._moments: list[WorstMoment] = []

    def set_moments(self, moments) -> None:
        """Replace the rows with ``moments`` (:class:`~deepaq_core.audio.display.WorstMoment`, worst first)."""
        self.clear()
        self._moments = list(moments)
        for rank, m in enumerate(self._moments, start=1):
            item = QtWidgets.QTreeWidgetItem([str(rank), f"{m.start_s:.1f}–{m.end_s:.1f}", score_text(m.score),
                                              m.band_label])
            item.setTextAlignment(2, QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)
            item.setToolTip(3, "Octave band whose energy changed most in this window (version minus reference); "
                               "− removed, + added")
            self.addTopLevelItem(item)
        for col in range(3):
            self.resizeColumnToContents(col)

    def moments(self) -> list[WorstMoment]:
        return list(self._moments)

    def _clicked(self, item: QtWidgets.QTreeWidgetItem, _column: int) -> None:
        m = self._moments[self.indexOfTopLevelItem(item)]
        self.momentRequested.emit(m.start_s, m.end_s)


class LeftPanel(QtWidgets.QWidget):
    """Banner, live score, files, the shown version's worst moments and the transport line."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.banner = ModelBanner()
        self.live = LiveScoreLabel()
        self.files = FilesPanel()
        self.worst_title = QtWidgets.QLabel("<b>Worst moments</b>")
        self.worst = WorstMomentsList()
        self.transport = QtWidgets.QLabel()
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for w in (self.banner, self.live, self.files, self.worst_title):
            layout.addWidget(w)
        layout.addWidget(self.worst, 1)
        layout.addWidget(self.transport)

    def set_worst(self, moments, version_label: str) -> None:
        self.worst_title.setText(f"<b>Worst moments of {version_label}</b> (click to loop)" if version_label
                                 else "<b>Worst moments</b>")
        self.worst.set_moments(moments)
