"""The rate-quality window: a codec ladder's score against bitrate, per codec, and BD-rates.

Opened from File > Open ladder… on a folder (or manifest) that
:func:`deepaq_core.evaluation.rate_quality.read_rate_ladder` reads. Reading and scoring run in a
:class:`deepaq_gui.workers.Worker` in Qt's global thread pool; each finished file arrives
as a :class:`LadderSnapshot` with the curves already computed, so the UI thread only draws. The
Bjøntegaard-delta figures between the two chosen codecs are a polynomial fit of a few points,
computed when the choice changes.

The plot has a log bitrate axis; each codec is a line through its mean scores (a shape-preserving
interpolation over log-bitrate) with a band for the 95% CI across excerpts where two or more
excerpts were scored. Export: PNG and SVG of the plot (pyqtgraph exporters), CSV of the figures.

The Generate dialog's "Open the results as a ladder" opens its output folder here with
``families=`` (the families it just generated): a codec family is drawn as above; another family
(``lowpass``, ``white_noise``...) is drawn against its parameter on a linear axis in its unit,
without BD-rates (they compare bitrates).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

import pyqtgraph as pg

from deepaq_core.errors import DeePAQError
from deepaq_core.evaluation.rate_quality import (LadderPoint, RateCurve, bd_quality, bd_rate, default_anchor,
                                                 rate_quality, read_rate_ladder, smooth_curve, write_rate_csv)
from deepaq_gui.views.base import version_color
from deepaq_gui.views.export import export_png, export_svg
from deepaq_gui.workers import Worker

log = logging.getLogger(__name__)


_RUNNING: set[Worker] = set()  # ladder scorings not yet ended (see LadderWindow.start)


@dataclass(frozen=True)
class LadderSnapshot:
    """What the worker hands to the window: the points, their scores so far and the curves."""

    points: tuple[LadderPoint, ...]
    scores: tuple[float, ...]
    curves: dict
    done: int
    errors: tuple[str | None, ...] = ()


def ladder_job(path: str, model: str | None, device: str = "auto", allow_unverified: bool = False,
               families=None):
    """A worker job: read the ladder at ``path``, score it with ``model``, yield a snapshot per file.

    ``families`` (optional): read only these degradation families, whatever their unit
    (see :func:`~deepaq_core.evaluation.rate_quality.read_rate_ladder`).

    Returns the last :class:`LadderSnapshot`. Every user-caused problem raises
    :class:`~deepaq_core.errors.DeePAQError` (shown by the window as one line).
    """

    def job(cancel: threading.Event):
        from deepaq_core.evaluation.rate_quality import iter_score_ladder
        from deepaq_core.scoring import Progress, Scorer
        from deepaq_gui.jobs import reserve_ui_core

        yield Progress(0.0, f"Reading the ladder {os.path.basename(os.path.normpath(path))}")
        points = tuple(read_rate_ladder(path, families))
        yield LadderSnapshot(points, tuple([math.nan] * len(points)), {}, 0)
        yield Progress(0.0, "Loading the model")
        reserve_ui_core(model, device)
        scorer = Scorer(model, device, allow_unverified=allow_unverified)
        scores = np.full(len(points), np.nan)
        gen = iter_score_ladder(points, scorer, cancel=cancel)
        done = 0
        try:
            while True:
                item = next(gen)
                if isinstance(item, Progress):
                    yield item
                else:
                    j, s = item
                    scores[j] = s
                    done += 1
                    yield LadderSnapshot(points, tuple(scores.tolist()), rate_quality(points, scores), done)
        except StopIteration as stop:
            final, errors = stop.value
        if not np.isfinite(final).any():
            reason = next((e for e in errors if e), "no file could be scored")
            raise DeePAQError(f"No version of the ladder could be scored: {reason}")
        return LadderSnapshot(points, tuple(final.tolist()), rate_quality(points, final), len(points), tuple(errors))

    return job


class BitrateAxis(pg.AxisItem):
    """A bottom axis for log10(kbit/s) positions, with ticks at the usual codec bitrates as plain numbers
    (pyqtgraph's log axis writes 2·10¹ and leaves most bitrates unlabelled)."""

    NICE = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 320, 384, 512, 768, 1024, 1536, 2048)

    def tickValues(self, minVal, maxVal, size):  # noqa: N802, N803 - pyqtgraph API
        inside = [math.log10(v) for v in self.NICE if minVal <= math.log10(v) <= maxVal]
        major = inside[::2] if len(inside) > 12 else inside
        minor = [v for v in inside if v not in major]
        return [(1.0, major), (0.5, minor)]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph API
        return [f"{10 ** v:.0f}" for v in values]


class LadderWindow(QtWidgets.QWidget):
    """Score against bitrate per codec, the figures as a table, and BD-rate between two codecs.

    Parameters
    ----------
    path : str
        Ladder folder or manifest.
    model : str or None
        Model name or bundle folder (None: the default model).
    device : str
    parent : QWidget or None
        The main window: this one is a separate top-level window owned by it.
    start : bool
        Start scoring at once (tests may call :meth:`start` later, or :meth:`show_snapshot`).
    families : sequence of str, optional
        Only these degradation families of the ladder, in any unit (the Generate dialog's folders).
    """

    finished = QtCore.Signal()  # scoring ended (done, failed or cancelled)
    messageRequested = QtCore.Signal(str, str)  # (text, level) for the owner's message bar

    def __init__(self, path: str, model: str | None = None, device: str = "auto", parent=None, *,
                 allow_unverified: bool = False, start: bool = True, families=None) -> None:
        super().__init__(parent, QtCore.Qt.Window)
        self.setAttribute(QtCore.Qt.WA_DeleteOnClose)
        self.path, self.model, self.device, self.allow_unverified = path, model, device, allow_unverified
        self.families = tuple(families) if families else None
        self.unit = "kbit/s"  # of the x axis: a bitrate, or a family's parameter (set by the first snapshot)
        self.setWindowTitle(f"Rate-quality: {os.path.basename(os.path.normpath(path))}")
        self.resize(1000, 720)
        self.snapshot: LadderSnapshot | None = None
        self.worker: Worker | None = None
        self.last_message = ""
        self._items: list = []
        self._build()
        if start:
            self.start()

    # -- construction ---------------------------------------------------------------------
    def _build(self) -> None:
        lay = QtWidgets.QVBoxLayout(self)
        top = QtWidgets.QHBoxLayout()
        self.status = QtWidgets.QLabel(f"{self.path}  ·  model {self.model or 'default'}")
        self.status.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        top.addWidget(self.status, 1)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFixedWidth(300)
        top.addWidget(self.progress)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        top.addWidget(self.cancel_button)
        lay.addLayout(top)
        self.note = QtWidgets.QLabel("")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #c0392b")
        self.note.hide()
        lay.addWidget(self.note)

        split = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        # Items are placed at log10(kbit/s) and the axis labels its ticks in kbit/s: the PlotItem's
        # own log mode would transform line items but not scatter points or bands.
        self.plot = pg.PlotWidget(axisItems={"bottom": BitrateAxis("bottom")})
        self.plot.setBackground("w")
        pi = self.plot.getPlotItem()
        pi.showGrid(x=True, y=True, alpha=0.25)
        pi.getAxis("bottom").setLabel("bitrate (kbit/s)")
        pi.getAxis("left").setLabel("score (0-100)")
        # bottom right: rate-quality curves rise to the top right, so this corner stays empty
        self.legend = pi.addLegend(offset=(-10, -10), labelTextColor="k", brush=pg.mkBrush(255, 255, 255, 200))
        split.addWidget(self.plot)

        low = QtWidgets.QWidget()
        ll = QtWidgets.QVBoxLayout(low)
        ll.setContentsMargins(0, 0, 0, 0)
        bd = QtWidgets.QHBoxLayout()
        bd.addWidget(QtWidgets.QLabel("BD-rate of"))
        self.test_combo = QtWidgets.QComboBox()
        bd.addWidget(self.test_combo)
        bd.addWidget(QtWidgets.QLabel("against"))
        self.anchor_combo = QtWidgets.QComboBox()
        bd.addWidget(self.anchor_combo)
        self.bd_label = QtWidgets.QLabel("-")
        self.bd_label.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)
        bd.addWidget(self.bd_label, 1)
        for text, slot in (("Export PNG…", lambda: self._ask_export("png")),
                           ("Export SVG…", lambda: self._ask_export("svg")),
                           ("Export CSV…", lambda: self._ask_export("csv"))):
            b = QtWidgets.QPushButton(text)
            b.clicked.connect(slot)
            bd.addWidget(b)
        ll.addLayout(bd)
        self.anchor_combo.currentIndexChanged.connect(self._update_bd)
        self.test_combo.currentIndexChanged.connect(self._update_bd)
        self.table = QtWidgets.QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["codec", "kbit/s", "excerpts", "mean score", "95% CI"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.Stretch)
        ll.addWidget(self.table)
        split.addWidget(low)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        lay.addWidget(split, 1)

    # -- scoring --------------------------------------------------------------------------
    def start(self) -> None:
        """Read and score the ladder in a worker (replacing any run in progress)."""
        self.cancel()
        w = Worker(ladder_job(self.path, self.model, self.device, self.allow_unverified, self.families))
        w.signals.progress.connect(self._progress)
        w.signals.partial.connect(self._partial)
        w.signals.finished.connect(self._finished)
        w.signals.errored.connect(self._errored)
        w.signals.cancelled.connect(self._cancelled)
        w.signals.done.connect(self._done)
        # Kept alive here until it ends, so closing the window never waits for the file being scored:
        # the job stops at its next check, and its signals no longer reach the closed window.
        _RUNNING.add(w)
        w.signals.done.connect(lambda w=w: _RUNNING.discard(w))
        self.worker = w
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        w.start(QtCore.QThreadPool.globalInstance())

    def cancel(self) -> None:
        if self.worker is not None and not self.worker.is_done:
            self.worker.cancel()

    def is_busy(self) -> bool:
        return self.worker is not None and not self.worker.is_done

    def _progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(1000 * fraction))
        self.progress.setFormat(text[:40])

    def _partial(self, item) -> None:
        if isinstance(item, LadderSnapshot):
            self.show_snapshot(item)

    def _finished(self, snap) -> None:
        self.show_snapshot(snap)
        self.progress.setValue(1000)
        failed = sum(1 for e in snap.errors if e)
        if failed:
            first = next(e for e in snap.errors if e)
            self._say(f"{failed} file(s) could not be scored and are left out: {first}", "warning")

    def _errored(self, message: str, tb: str) -> None:
        if tb:
            log.error("ladder scoring failed: %s\n%s", message, tb)
        self._say(message, "error")

    def _cancelled(self) -> None:
        self._say("Scoring cancelled; the plot shows the files scored so far.", "info")

    def _done(self) -> None:
        if self.worker is not None and self.worker.is_done:
            self.cancel_button.setEnabled(False)
            self.finished.emit()

    def _say(self, text: str, level: str = "info") -> None:
        """A non-blocking one-line message in the window (and to the owner)."""
        self.last_message = text
        self.note.setText(text)
        self.note.setStyleSheet("color: #c0392b" if level in ("error", "warning") else "color: #555")
        self.note.show()
        self.messageRequested.emit(text, level)

    # -- drawing --------------------------------------------------------------------------
    def show_snapshot(self, snap: LadderSnapshot) -> None:
        """Draw a snapshot: curves, bands, table, codec choices."""
        self.snapshot = snap
        self._set_unit(snap.points[0].unit if snap.points else self.unit)
        log_x = self.is_rate()
        to_x = np.log10 if log_x else np.asarray
        pi = self.plot.getPlotItem()
        for it in self._items:
            pi.removeItem(it)
        self._items = []
        self.legend.clear()
        curves: dict[str, RateCurve] = snap.curves
        for k, (codec, c) in enumerate(curves.items()):
            color = version_color(k)
            x = to_x(c.kbps)
            band = np.isfinite(c.low) & np.isfinite(c.high)
            if band.sum() >= 2:
                # drawn within the 0-100 scale (with two excerpts a t interval is wide); the table has the numbers
                gx, glo = smooth_curve(c.kbps[band], np.clip(c.low[band], 0, 100), log=log_x)
                _, ghi = smooth_curve(c.kbps[band], np.clip(c.high[band], 0, 100), log=log_x)
                fill = QtGui.QColor(color)
                fill.setAlpha(50)
                lo_item = pg.PlotDataItem(to_x(gx), glo, pen=pg.mkPen(None))
                hi_item = pg.PlotDataItem(to_x(gx), ghi, pen=pg.mkPen(None))
                band_item = pg.FillBetweenItem(lo_item, hi_item, brush=pg.mkBrush(fill))
                for it in (lo_item, hi_item, band_item):
                    pi.addItem(it)
                    self._items.append(it)
            elif band.any():  # one bitrate with a CI: an error bar
                err = pg.ErrorBarItem(x=x[band], y=c.mean[band], top=(c.high - c.mean)[band],
                                      bottom=(c.mean - c.low)[band], beam=0.02, pen=pg.mkPen(color))
                pi.addItem(err)
                self._items.append(err)
            gx, gy = smooth_curve(c.kbps, c.mean, log=log_x)
            line = pg.PlotDataItem(to_x(gx), gy, pen=pg.mkPen(color, width=2))
            pts = pg.ScatterPlotItem(x, c.mean, symbol="o", size=8, brush=pg.mkBrush(color), pen=pg.mkPen("w"),
                                     name=codec)
            for it in (line, pts):
                pi.addItem(it)
                self._items.append(it)
        self._fill_table(curves)
        self._fill_combos(sorted({p.codec for p in snap.points}))  # all codecs from the start: stable choices
        n_ok = sum(1 for s in snap.scores if math.isfinite(s))
        self.status.setText(f"{self.path}  ·  model {self.model or 'default'}  ·  {n_ok} of {len(snap.points)} "
                            f"versions scored, {len({p.item for p in snap.points})} excerpt(s)")
        self._update_bd()
        pi.enableAutoRange()

    def is_rate(self) -> bool:
        """True for a bitrate ladder (log kbit/s axis, BD-rates); False for another family's parameter."""
        return self.unit == "kbit/s"

    def _set_unit(self, unit: str) -> None:
        """Axis, table header and BD controls for the ladder's unit (once, when it changes)."""
        if unit == self.unit:
            return
        self.unit = unit
        pi = self.plot.getPlotItem()
        param = self._param_name()
        if self.is_rate():
            pi.setAxisItems({"bottom": BitrateAxis("bottom")})
            pi.getAxis("bottom").setLabel("bitrate (kbit/s)")
        else:
            pi.setAxisItems({"bottom": pg.AxisItem("bottom")})
            pi.getAxis("bottom").setLabel(f"{param} ({unit})" if unit else param)
        pi.showGrid(x=True, y=True, alpha=0.25)
        self.table.setHorizontalHeaderLabels(["codec" if self.is_rate() else "family",
                                              "kbit/s" if self.is_rate() else (unit or param),
                                              "excerpts", "mean score", "95% CI"])
        for combo in (self.anchor_combo, self.test_combo):
            combo.setEnabled(self.is_rate())

    def _param_name(self) -> str:
        from deepaq_core.degrade import FAMILIES

        names = {FAMILIES[f].param for f in (self.families or ()) if f in FAMILIES}
        return names.pop() if len(names) == 1 else "value"

    def _fill_table(self, curves: dict[str, RateCurve]) -> None:
        rows = [(codec, c, k) for codec, c in curves.items() for k in range(len(c.kbps))]
        self.table.setRowCount(len(rows))
        for r, (codec, c, k) in enumerate(rows):
            ci = f"{c.low[k]:.1f} – {c.high[k]:.1f}" if math.isfinite(c.low[k]) else "– (one excerpt)"
            for col, text in enumerate((codec, f"{c.kbps[k]:g}", str(int(c.n[k])), f"{c.mean[k]:.1f}", ci)):
                item = QtWidgets.QTableWidgetItem(text)
                if col in (1, 2, 3):
                    item.setTextAlignment(QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter)
                self.table.setItem(r, col, item)

    def _fill_combos(self, codecs: list[str]) -> None:
        old = [self.anchor_combo.itemText(i) for i in range(self.anchor_combo.count())]
        if old == codecs:
            return
        anchor, test = self.anchor_combo.currentText(), self.test_combo.currentText()
        for combo in (self.anchor_combo, self.test_combo):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(codecs)
            combo.blockSignals(False)
        if anchor not in codecs:
            anchor = default_anchor({c: None for c in codecs}) or ""
        if test not in codecs or test == anchor:
            test = next((c for c in codecs if c != anchor), anchor)
        self.anchor_combo.setCurrentText(anchor)
        self.test_combo.setCurrentText(test)

    def set_codecs(self, test: str, anchor: str) -> None:
        """Choose the two codecs of the BD-rate read-out."""
        self.anchor_combo.setCurrentText(anchor)
        self.test_combo.setCurrentText(test)
        self._update_bd()

    def bd_figures(self) -> tuple[float, float, str]:
        """``(BD-rate %, BD-score, note)`` of the test codec against the anchor (NaN with a note when not defined)."""
        curves = self.snapshot.curves if self.snapshot else {}
        if not self.is_rate():
            return math.nan, math.nan, f"BD-rates compare bitrates; this ladder's values are in {self.unit or 'units'}."
        a, b = self.anchor_combo.currentText(), self.test_combo.currentText()
        if a not in curves or b not in curves:
            return math.nan, math.nan, "Choose two codecs."
        if a == b:
            return math.nan, math.nan, "Choose two different codecs."
        ca, cb = curves[a], curves[b]
        note, rate, score = "", math.nan, math.nan
        try:
            rate = bd_rate(ca.kbps, ca.mean, cb.kbps, cb.mean, names=(a, b))
        except DeePAQError as exc:
            note = str(exc)
        try:
            score = bd_quality(ca.kbps, ca.mean, cb.kbps, cb.mean, names=(a, b))
        except DeePAQError as exc:
            note = note or str(exc)
        return rate, score, note

    def _update_bd(self) -> None:
        rate, score, note = self.bd_figures()
        if math.isfinite(rate):
            text = (f"<b>{rate:+.1f}%</b> bitrate at equal score"
                    + (f", <b>{score:+.1f}</b> points at equal bitrate" if math.isfinite(score) else ""))
            self.bd_label.setText(text)
            self.bd_label.setToolTip(note)
        else:
            self.bd_label.setText(note or "-")

    # -- export ---------------------------------------------------------------------------
    def export_png(self, path: str | os.PathLike, width: int = 1600) -> None:
        export_png(self.plot.getPlotItem(), path, width=width)

    def export_svg(self, path: str | os.PathLike) -> None:
        export_svg(self.plot.getPlotItem(), path)

    def export_csv(self, path: str | os.PathLike) -> None:
        """The figures: every codec and bitrate, and BD-rate/BD-score of each codec against the chosen anchor."""
        from deepaq_core.evaluation.rate_quality import bd_table

        curves = self.snapshot.curves if self.snapshot else {}
        if not curves:
            raise DeePAQError("Nothing to export yet: no version of the ladder has been scored.")
        anchor = self.anchor_combo.currentText() or default_anchor(curves)
        bd = bd_table(curves, anchor) if len(curves) > 1 and self.is_rate() else []
        column = "kbps" if self.is_rate() else "_".join(x for x in (self._param_name(), self.unit) if x)
        write_rate_csv(path, [{"metric": f"deepaq:{self.model or 'default'}", "curves": curves, "bd": bd,
                               "anchor": anchor}], value_column=column)

    def _ask_export(self, kind: str) -> None:
        filters = {"png": "PNG images (*.png)", "svg": "SVG images (*.svg)", "csv": "CSV files (*.csv)"}
        stem = os.path.basename(os.path.normpath(self.path)) or "ladder"
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, f"Export the rate-quality {kind.upper()}",
                                                        f"{stem}_rate_quality.{kind}", filters[kind])
        if not path:
            return
        try:
            {"png": self.export_png, "svg": self.export_svg, "csv": self.export_csv}[kind](path)
        except (OSError, DeePAQError, TypeError, ValueError) as exc:
            self._say(f"The {kind.upper()} could not be written: {exc}", "error")
        else:
            self._say(f"Saved {path}", "info")

    def closeEvent(self, e: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.cancel()
        super().closeEvent(e)


def open_ladder(parent: QtWidgets.QWidget, path: str | None = None, families=None) -> LadderWindow | None:
    """File > Open ladder…: ask for a folder (unless ``path`` is given) and open a :class:`LadderWindow`
    scored with the parent window's model and device (``families``: only those, in any unit)."""
    if path is None:
        path = QtWidgets.QFileDialog.getExistingDirectory(parent, "Open a codec ladder (a folder of versions "
                                                          "named like song_mp3_64kbps.flac, or with a manifest.csv)")
        if not path:
            return None
    owner = getattr(parent, "ctl", parent)  # the app's controller holds the session and the model
    session = getattr(owner, "session", None)
    holder = getattr(owner, "holder", None)
    w = LadderWindow(path, getattr(session, "model_name", None), getattr(holder, "device", "auto"), parent,
                     allow_unverified=getattr(holder, "allow_unverified", False), families=families)
    if hasattr(parent, "message"):
        w.messageRequested.connect(lambda text, level: parent.message(text, level) if level == "error" else None)
    w.show()
    return w
