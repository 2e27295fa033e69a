"""Table of the global numbers of every version, sortable by value."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from PySide6 import QtCore, QtWidgets

from deepaq_core.results import DISTANCE_UNITS, FLAG_TEXT, SCORE_SCALE, QualityResult

from .base import score_text, version_color

SORT_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1
"""Role holding the raw value (float or str) each column sorts by."""
INDEX_ROLE = QtCore.Qt.ItemDataRole.UserRole + 2
MAX_ROWS = 9  # versions in a full session (deepaq_gui.session.MAX_VERSIONS)
"""Role holding the version index of a row (any column)."""


@dataclass(frozen=True)
class _Column:
    title: str
    value: Callable[[QualityResult, str], Any]
    text: Callable[[Any], str]
    tooltip: str = ""
    numeric: bool = True
    cell_tooltip: Callable[[Any], str] | None = None
    result_tooltip: Callable[[QualityResult], str] | None = None


def _number(fmt: str) -> Callable[[Any], str]:
    return lambda v: "–" if v is None or not math.isfinite(v) else format(v, fmt)


def _warp(r: Any) -> str:
    dropped, inserted = getattr(r, "time_dropped_s", 0.0), getattr(r, "time_inserted_s", 0.0)
    return f"{dropped * 1000:.0f} / {inserted * 1000:.0f}"


def _flags(r: Any) -> str:
    return ",".join(getattr(r, "flags", ()))


def _flag_sentences(value: Any) -> str:
    keys = [k for k in str(value).split(",") if k]
    return "\n".join(f"{k}: {FLAG_TEXT.get(k, k)}" for k in keys) or "Nothing suspicious was found."


def _score_tooltip(scale: str) -> Callable[[QualityResult], str]:
    """The scale, and each channel's own score where the channels were scored one by one."""

    def tip(r: QualityResult) -> str:
        per = tuple(getattr(r, "channel_scores", ()) or ())
        return f"Score: {scale}" + (f"\nPer channel: {' / '.join(score_text(c) for c in per)}" if per else "")

    return tip


def _columns(scale: str, units: str) -> list[_Column]:
    return [
        _Column("Version", lambda r, name: name, str, "Version name", numeric=False, cell_tooltip=str),
        _Column("Score", lambda r, name: float(r.score), score_text, f"Score: {scale}",
                result_tooltip=_score_tooltip(scale)),
        _Column("Distance", lambda r, name: float(r.distance), _number(".4f"), f"Distance: {units}"),
        _Column("Offset (ms)", lambda r, name: float(r.alignment.lag_ms), _number(".2f"),
                "Time offset of the version against the reference; positive = version is late"),
        _Column("Gain (dB)", lambda r, name: float(r.gain_db), _number("+.2f"),
                "Gain applied to the version to match the reference's loudness"),
        _Column("Time lost / added (ms)", lambda r, name: _warp(r), str,
                "Time the version lacks / has in excess (dropouts, deleted packets, time warping), "
                "found by following time locally", numeric=False),
        _Column("Model", lambda r, name: r.model.label, str, "Model that produced the score", numeric=False),
        _Column("Flags", lambda r, name: _flags(r), lambda v: v or "–",
                "Reasons to check a result before trusting it (trimmed, short_file, lag_at_edge, low_confidence, "
                "inverted); hover a cell for what they mean", numeric=False, cell_tooltip=_flag_sentences),
    ]


class ScoreTableModel(QtCore.QAbstractTableModel):
    """One row per version: name, score, distance, offset, gain, time lost/added, model label, flags.

    Display text is formatted; :data:`SORT_ROLE` carries the raw value so sorting is numeric.

    Parameters
    ----------
    parent : QtCore.QObject, optional
    """

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._columns = _columns(SCORE_SCALE, DISTANCE_UNITS)
        self._rows: list[tuple[int, list[Any]]] = []
        self._results: dict[int, QualityResult] = {}

    def set_results(self, results: dict[int, QualityResult], names: dict[int, str]) -> None:
        """Replace the rows.

        Parameters
        ----------
        results : dict of int to QualityResult
        names : dict of int to str
        """
        self.beginResetModel()
        if results:
            first = next(iter(results.values()))
            self._columns = _columns(first.score_scale, first.distance_units)
        self._rows = [(i, [c.value(r, names.get(i, f"Version {i}")) for c in self._columns])
                      for i, r in sorted(results.items())]
        self._results = dict(results)
        self.endResetModel()
        self.headerDataChanged.emit(QtCore.Qt.Orientation.Horizontal, 0, len(self._columns) - 1)

    def version_at(self, row: int) -> int:
        """Version index of source ``row``."""
        return self._rows[row][0]

    def row_of(self, index: int) -> int | None:
        """Source row of version ``index``, or ``None``."""
        for row, (i, _values) in enumerate(self._rows):
            if i == index:
                return row
        return None

    def rowCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QtCore.QModelIndex = QtCore.QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._columns)

    def data(self, index: QtCore.QModelIndex, role: int = QtCore.Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        version, values = self._rows[index.row()]
        column = self._columns[index.column()]
        value = values[index.column()]
        if role == QtCore.Qt.ItemDataRole.DisplayRole:
            return column.text(value)
        if role == SORT_ROLE:
            # NaN would make the order undefined; unknown values sort last (ascending).
            return math.inf if column.numeric and not math.isfinite(value) else value
        if role == INDEX_ROLE:
            return version
        if role == QtCore.Qt.ItemDataRole.TextAlignmentRole and column.numeric:
            return int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        if role == QtCore.Qt.ItemDataRole.DecorationRole and index.column() == 0:
            return version_color(version)
        if role == QtCore.Qt.ItemDataRole.ToolTipRole:
            if column.result_tooltip is not None and version in self._results:
                return column.result_tooltip(self._results[version])
            return column.cell_tooltip(value) if column.cell_tooltip is not None else column.tooltip
        return None

    def headerData(self, section: int, orientation: QtCore.Qt.Orientation,  # noqa: N802
                   role: int = QtCore.Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != QtCore.Qt.Orientation.Horizontal or not 0 <= section < len(self._columns):
            return None
        if role == QtCore.Qt.ItemDataRole.DisplayRole:
            return self._columns[section].title
        if role == QtCore.Qt.ItemDataRole.ToolTipRole:
            return self._columns[section].tooltip
        return None


class ScoreTableView(QtWidgets.QWidget):
    """Sortable table of the versions' global results; the scale is in the title and tooltips.

    Signals
    -------
    rowSelected(int)
        The version index of the row the user clicked (or moved to with the keyboard), when it
        differs from the selected version. Not emitted by :meth:`set_selected` or
        :meth:`set_results`; call :meth:`set_selected` when the selection changes elsewhere so a
        click on this table's stale row still counts as a change.

    Parameters
    ----------
    parent : QtWidgets.QWidget, optional
    """

    rowSelected = QtCore.Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._model = ScoreTableModel(self)
        self._proxy = QtCore.QSortFilterProxyModel(self)
        self._proxy.setSourceModel(self._model)
        self._proxy.setSortRole(SORT_ROLE)
        self._title = QtWidgets.QLabel()
        self._title.setWordWrap(True)
        self._table = QtWidgets.QTableView()
        self._table.setModel(self._proxy)
        self._table.setSortingEnabled(True)
        self._table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self._table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self._table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self._table.verticalHeader().setVisible(False)
        # Compact rows, so a full session (nine versions) shows without scrolling, and long file
        # names elided in the middle (their ends tell versions apart), whole in the tooltip.
        self._table.verticalHeader().setDefaultSectionSize(self._table.fontMetrics().height() + 6)
        self._table.setWordWrap(False)
        self._table.setTextElideMode(QtCore.Qt.TextElideMode.ElideMiddle)
        header = self._table.horizontalHeader()
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(40)
        self._title.setWordWrap(False)
        self._table.sortByColumn(-1, QtCore.Qt.SortOrder.AscendingOrder)  # insertion order until asked
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._title)
        layout.addWidget(self._table)
        self._selected: int | None = None
        self._table.selectionModel().currentRowChanged.connect(self._current_changed)
        self._table.clicked.connect(self._clicked)
        self._set_title(SCORE_SCALE)

    def set_results(self, results: dict[int, QualityResult], names: dict[int, str]) -> None:
        """Show one row per version.

        Parameters
        ----------
        results : dict of int to QualityResult
        names : dict of int to str
            Display names; missing ones read ``"Version <index>"``.
        """
        selected = self._selected
        # The reset clears the current row; that is not the user's choice, so no signal.
        blocker = QtCore.QSignalBlocker(self._table.selectionModel())
        self._model.set_results(results, names)
        blocker.unblock()
        if results:
            self._set_title(next(iter(results.values())).score_scale)
        self.set_selected(selected if selected in results else None)
        self._fit_columns()

    def _fit_columns(self) -> None:
        """Numbers at their width; the version name takes what is left (at least a third)."""
        header = self._table.horizontalHeader()
        for col in range(1, self._proxy.columnCount()):
            header.setSectionResizeMode(col, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(40)

    def minimumSizeHint(self) -> QtCore.QSize:  # noqa: N802 - Qt API
        """Tall enough for the title, the header and nine rows (a full session) without scrolling."""
        rows = MAX_ROWS * self._table.verticalHeader().defaultSectionSize()
        height = (self._title.sizeHint().height() + self._table.horizontalHeader().sizeHint().height() + rows
                  + 2 * self._table.frameWidth() + self.layout().spacing() + 2)
        return QtCore.QSize(super().minimumSizeHint().width(), height)

    def set_selected(self, index: int | None) -> None:
        """Select the row of version ``index`` without emitting ``rowSelected``.

        Parameters
        ----------
        index : int or None
        """
        self._selected = index
        row = None if index is None else self._model.row_of(index)
        selection = self._table.selectionModel()
        blocker = QtCore.QSignalBlocker(selection)
        if row is None:
            selection.clearSelection()
            selection.setCurrentIndex(QtCore.QModelIndex(), QtCore.QItemSelectionModel.SelectionFlag.NoUpdate)
        else:
            proxy_index = self._proxy.mapFromSource(self._model.index(row, 0))
            selection.setCurrentIndex(proxy_index, QtCore.QItemSelectionModel.SelectionFlag.ClearAndSelect
                                      | QtCore.QItemSelectionModel.SelectionFlag.Rows)
        blocker.unblock()
        self._table.viewport().update()  # the blocked selection model did not ask for a repaint

    def table(self) -> QtWidgets.QTableView:
        """The table widget (sorted through a :class:`QtCore.QSortFilterProxyModel`)."""
        return self._table

    def model(self) -> ScoreTableModel:
        """The source model."""
        return self._model

    def proxy(self) -> QtCore.QSortFilterProxyModel:
        """The sorting proxy the table shows."""
        return self._proxy

    def versions_in_view_order(self) -> list[int]:
        """Version indices top to bottom as currently sorted."""
        return [self._proxy.index(r, 0).data(INDEX_ROLE) for r in range(self._proxy.rowCount())]

    def clear(self) -> None:
        """Remove all rows."""
        self.set_results({}, {})

    def _set_title(self, scale: str) -> None:
        self._title.setText(f"<b>Scores</b> — {scale}")
        self._title.setToolTip(scale)

    def _emit_for(self, proxy_index: QtCore.QModelIndex) -> None:
        if not proxy_index.isValid():
            return
        version = proxy_index.data(INDEX_ROLE)
        if version is None or version == self._selected:
            return
        self._selected = int(version)
        self.rowSelected.emit(int(version))

    def _current_changed(self, current: QtCore.QModelIndex, _previous: QtCore.QModelIndex) -> None:
        self._emit_for(current)

    def _clicked(self, proxy_index: QtCore.QModelIndex) -> None:
        self._emit_for(proxy_index)
