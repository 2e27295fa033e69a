"""The main window: wiring between the controller (document and jobs), the views and the menus.

Everything that decides or computes lives in :class:`deepaq_gui.controller.AppController`; this
module lays the widgets out, turns user actions into controller calls and controller signals into
view updates.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from deepaq_gui.controller import AppController
from deepaq_gui.jobs import PreparedAudio, freeze_startup_objects, preload_modules
from deepaq_gui.views import export
from deepaq_gui.views.heatmap import LayerHeatmapView
from deepaq_gui.views.matrix import TimeMatrixView
from deepaq_gui.views.quality_curve import QualityCurveView
from deepaq_gui.views.score_table import ScoreTableView
from deepaq_gui.views.spectrogram import SpectrogramView
from deepaq_gui.views.waveform import WaveformView
from deepaq_gui.left_panel import LeftPanel
from deepaq_gui.views.base import score_text
from deepaq_gui.widgets import MessageBar, key_to_track

log = logging.getLogger(__name__)

UI_SWITCH_INTERVAL_S = 0.001  # sys.setswitchinterval while the window exists (see MainWindow.__init__)

AUDIO_FILTER = "Audio files (*.wav *.flac *.ogg *.oga *.mp3 *.m4a *.aac *.opus *.aif *.aiff);;All files (*)"
SEEK_STEP_S = 5.0
#: views that File → Export saves on their own, as PNG or SVG (attribute name: menu label)
VIEW_EXPORTS = {"waveform": "Waveforms", "spectrogram": "Spectrograms", "curve": "Quality curves",
                "heatmap": "Layer heatmap", "matrix": "Time matrix"}


class MainWindow(QtWidgets.QMainWindow):
    """DeePAQ's window; ``self.ctl`` is its :class:`AppController`."""

    def __init__(self, *, device: str = "auto", audio_backend: str = "auto", model: str | None = None,
                 allow_unverified: bool = False) -> None:
        super().__init__()
        preload_modules(model, device)
        # The UI thread needs the GIL for every Python slot (even a 10 ms timer's). While a worker
        # runs Python code, a thread asking for the GIL waits up to the switch interval (5 ms by
        # default) for it, on every event; 1 ms keeps the window's slots prompt
        # (docs/PERFORMANCE.md).
        sys.setswitchinterval(min(sys.getswitchinterval(), UI_SWITCH_INTERVAL_S))
        self.setWindowTitle("DeePAQ")
        self.resize(1400, 900)
        self.setAcceptDrops(True)
        self.ctl = ctl = AppController(device=device, audio_backend=audio_backend, model=model,
                                       allow_unverified=allow_unverified, parent=self)
        self.engine = ctl.engine
        self.blind_dock: QtWidgets.QDockWidget | None = None
        self._build()
        from deepaq_gui.menus import build_menus

        build_menus(self)
        ctl.message.connect(self.message)
        ctl.refresh.connect(self._refresh)
        ctl.audioPrepared.connect(self._audio_ready)
        ctl.audioCleared.connect(lambda: [v.clear() for v in (self.waveform, self.spectrogram)])
        ctl.timeAxis.connect(lambda d: self.curve.plot_item().setXRange(0.0, d, padding=0))
        ctl.modelLabel.connect(self.model_label.setText)
        ctl.progress.connect(self._progress)
        ctl.progressShown.connect(lambda on: [w.setVisible(on) for w in (self.progress, self.cancel_button)])
        ctl.loopChanged.connect(lambda loop: [v.set_loop(loop) for v in (*self.time_views, self.matrix)])
        ctl.settingsLoaded.connect(self._settings_loaded)
        ctl.blindOpened.connect(self._blind_opened)
        ctl.blindClosed.connect(self._blind_closed)
        ctl.ladderRequested.connect(self.open_ladder)
        ctl.render = self._render
        ctl.report_images = lambda: [v.grab() for v in (self.curve, self.spectrogram, self.heatmap, self.matrix)]
        QtWidgets.QApplication.instance().installEventFilter(self)
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(33)  # ~30 playhead updates per second
        self.timer.timeout.connect(self._tick)
        self.timer.start()
        if not self.engine.available:
            QtCore.QTimer.singleShot(0, ctl.warn_playback_off)
        from deepaq_gui.session_file import Autosaver

        self.autosaver = Autosaver(lambda: (ctl.session, ctl.session_extra()), interval_s=10, parent=self)
        self.autosaver.failed.connect(lambda m: ctl.say(m, "warning"))
        self.autosaver.start()
        self._refresh()
        freeze_startup_objects()

    # -- construction ---------------------------------------------------------------------
    def _build(self) -> None:
        ctl = self.ctl
        self.messages = MessageBar()
        self.left = left = LeftPanel()
        self.banner, self.live, self.files, self.worst, self.transport = (left.banner, left.live, left.files,
                                                                          left.worst, left.transport)
        self.files.trackSelected.connect(ctl.select_track)
        self.files.removeRequested.connect(ctl.remove_version)
        self.worst.momentRequested.connect(ctl.set_loop)  # seeks to its start and loops it

        self.waveform, self.spectrogram = WaveformView(), SpectrogramView()
        self.curve, self.heatmap, self.matrix = QualityCurveView(), LayerHeatmapView(), TimeMatrixView()
        self.time_views = [self.waveform, self.spectrogram, self.curve, self.heatmap]
        for v in (*self.time_views, self.matrix):
            v.seekRequested.connect(ctl.seek)
            v.loopRequested.connect(ctl.set_loop)
            if v not in (self.curve, self.matrix):
                v.plot_item().setXLink(self.curve.plot_item())
        self.table = ScoreTableView()
        self.table.rowSelected.connect(lambda i: ctl.select_track(i + 1))
        self.tabs = tabs = QtWidgets.QTabWidget()
        tabs.addTab(self.table, "Scores")
        tabs.addTab(self.matrix, "Reference x degraded time")

        right = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        for w in (self.waveform, self.spectrogram, self.curve, self.heatmap, tabs):
            right.addWidget(w)
        # the scores tab is as tall as nine rows need (ScoreTableView.minimumSizeHint); the views share the rest
        right.setSizes([140, 220, 180, 120, 240])
        split = QtWidgets.QSplitter(QtCore.Qt.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([470, 930])
        central = QtWidgets.QWidget()
        cl = QtWidgets.QVBoxLayout(central)
        cl.setContentsMargins(4, 4, 4, 4)
        cl.addWidget(self.messages)
        cl.addWidget(split, 1)
        self.setCentralWidget(central)

        self.progress = QtWidgets.QProgressBar()
        self.progress.setMaximumWidth(240)
        self.progress.setRange(0, 1000)
        self.progress.hide()
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.clicked.connect(ctl.cancel_scoring)
        self.cancel_button.hide()
        self.model_label = QtWidgets.QLabel("model: (loads on first use)")
        sb = self.statusBar()
        sb.addPermanentWidget(self.model_label)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)

    # -- messages and progress --------------------------------------------------------------
    def message(self, text: str, level: str = "error") -> None:
        """Show a one-line, non-blocking message (the controller's ``say`` is the way in: it counts errors)."""
        self.messages.show_message(text, level)
        self.statusBar().showMessage(text, 8000)

    def _progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(f"{text} %p%" if text else "%p%")

    # -- file dialogs and drops ---------------------------------------------------------------
    def ask_reference(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open reference", "", AUDIO_FILTER)
        if path:
            self.ctl.open_files([path], as_reference=True)

    def ask_versions(self) -> None:
        paths, _ = QtWidgets.QFileDialog.getOpenFileNames(self, "Add degraded versions", "", AUDIO_FILTER)
        if paths:
            self.ctl.open_files(paths, as_reference=False)

    def ask_generate(self) -> None:
        from deepaq_gui.degrade_dialog import DegradeDialog
        from deepaq_gui.session import MAX_VERSIONS

        if self.ctl.session.reference is None:
            self.ctl.say("Open a reference first; degraded versions are made from it.", "info")
        elif self.ctl.room() <= 0:
            self.ctl.say(f"At most {MAX_VERSIONS} versions can be open; remove one first.", "info")
        elif picked := DegradeDialog.ask(self.ctl.session.reference.path, self, max_jobs=self.ctl.room()):
            self.ctl.generate_versions(*picked)

    def open_ladder(self, path: str, families=None) -> None:
        """Open a rate-quality window on a ladder folder (only ``families`` of it when given)."""
        from deepaq_gui.views.ladder import open_ladder

        open_ladder(self, path, families=families)

    def ask_session(self) -> None:
        from deepaq_gui.session_file import SESSION_FILTER

        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open session", "", SESSION_FILTER)
        if path:
            self.ctl.load_session_file(path)

    def save_session(self, ask: bool = False, path: str | None = None) -> None:
        """Save the session file (asks for a name the first time or with ``ask``)."""
        from deepaq_gui.session_file import SESSION_FILTER

        if self.ctl.session.reference is None:
            self.ctl.say("There is nothing to save yet: open a reference first.", "info")
            return
        if path is None and (ask or not self.ctl.session_path):
            path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save session", "session.deepaq.json", SESSION_FILTER)
            if not path:
                return
        self.ctl.save_session(path or self.ctl.session_path)

    def dragEnterEvent(self, e: QtGui.QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e: QtGui.QDropEvent) -> None:  # noqa: N802 - Qt API
        self.ctl.open_files([u.toLocalFile() for u in e.mimeData().urls() if u.isLocalFile()], as_reference=None)

    def _settings_loaded(self, settings) -> None:
        for action, value in ((self.align_action, settings.align), (self.loud_action, settings.match_loudness)):
            action.blockSignals(True)
            action.setChecked(value)
            action.blockSignals(False)

    # -- blind listening ----------------------------------------------------------------------
    def _blind_opened(self, widget: QtWidgets.QWidget, title: str) -> None:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName("blind_dock")
        dock.setWidget(widget)
        dock.setAllowedAreas(QtCore.Qt.RightDockWidgetArea | QtCore.Qt.BottomDockWidgetArea)
        self.addDockWidget(QtCore.Qt.RightDockWidgetArea, dock)
        self.blind_dock = dock

    def _blind_closed(self) -> None:
        if self.blind_dock is not None:
            self.removeDockWidget(self.blind_dock)
            self.blind_dock.deleteLater()
            self.blind_dock = None

    # -- audio views, transport ---------------------------------------------------------------
    def _audio_ready(self, prepared: PreparedAudio) -> None:
        """Waveforms, then spectrograms, one per event-loop turn (unless superseded meanwhile)."""
        ctl = self.ctl

        def waveforms() -> None:
            if ctl.audio_current(prepared):
                if prepared.version >= 0:
                    self.waveform.set_version_index(prepared.version)
                label = f"V{prepared.version + 1}" if prepared.version >= 0 else "V"
                self.waveform.set_envelopes(prepared.ref_envelope, prepared.deg_envelope, labels=("R", label))

        def spectrograms() -> None:
            if not ctl.audio_current(prepared):
                return
            self.spectrogram.set_version_label(f"V{prepared.version + 1}" if prepared.version >= 0 else "V")
            if prepared.deg_spectrogram is not None:
                self.spectrogram.set_spectrograms(prepared.ref_spectrogram, prepared.deg_spectrogram,
                                                  difference=prepared.difference)
            else:
                self.spectrogram.clear()

        ctl.stage("waveform", waveforms)
        ctl.stage("spectrogram", spectrograms)
        ctl.stage("worst", self._update_worst)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if event.type() == QtCore.QEvent.KeyPress and self.isActiveWindow() and not event.modifiers() & (
                QtCore.Qt.ControlModifier | QtCore.Qt.AltModifier | QtCore.Qt.MetaModifier):
            if self.handle_key(event):
                return True
        return super().eventFilter(obj, event)

    def handle_key(self, event: QtGui.QKeyEvent) -> bool:
        """Transport keys; returns True when the key was used."""
        ctl = self.ctl
        if ctl.hidden():
            # A/B/X, answers and condition numbers belong to the test; track keys would reveal X
            return bool(ctl.blind.handle_key(event)) or key_to_track(event) is not None
        idx, k = key_to_track(event), event.key()
        actions = {QtCore.Qt.Key_Tab: lambda: ctl.select_track(ctl.previous), QtCore.Qt.Key_Space: self.engine.toggle,
                   QtCore.Qt.Key_Left: lambda: ctl.seek(self.engine.position_s - SEEK_STEP_S),
                   QtCore.Qt.Key_Right: lambda: ctl.seek(self.engine.position_s + SEEK_STEP_S),
                   QtCore.Qt.Key_Escape: lambda: ctl.set_loop(0.0, 0.0)}
        if idx is not None:
            ctl.select_track(idx)
        elif k in actions:
            actions[k]()
        else:
            return False
        return True

    def _tick(self) -> None:
        ctl, t = self.ctl, self.engine.position_s
        for v in self.time_views:
            v.set_playhead(t)
        if ctl.hidden():
            name = f"{ctl.blind.playing_label()} (blind)"
        else:
            name = "reference" if ctl.current == 0 else f"version {ctl.current}"
        state = "▶" if self.engine.playing else "❚❚"
        self.transport.setText(f"{state} {t:7.2f} s   playing: {name}"
                               f"{'' if self.engine.available else '   (playback off)'}")
        self._update_live(t)

    def _update_live(self, t: float) -> None:
        ctl, s = self.ctl, self.ctl.session
        if ctl.hidden():
            self.live.set_score(None, "Blind test running: scores are hidden")
            return
        if ctl.current == 0:
            self.live.set_score(None, "Reference (100 by definition)")
            return
        i = ctl.current - 1
        r = s.results.get(i)
        if r is None:
            self.live.set_score(None, f"{i + 1}: {s.versions[i].name if i < len(s.versions) else ''} (scoring…)")
            return
        value = self.curve.score_at(i, t)
        self.live.set_score(value, f"{i + 1}: {s.versions[i].name} · at the playhead (overall {score_text(r.score)}) · "
                                   f"{r.model.label} · 0-100, 100 = transparent")

    # -- refresh ------------------------------------------------------------------------------
    def _refresh(self, staged: bool = False) -> None:
        """Bring the file list and the result views up to date with the document.

        ``staged``: the result views update one per event-loop turn (for results arriving while
        the user works); otherwise now. A blind test always clears them now: nothing on screen
        may give the answer away, not even for one turn.
        """
        ctl, s = self.ctl, self.ctl.session
        hidden = ctl.hidden()
        self.files.setEnabled(not hidden)
        self.files.populate(s, -1 if hidden else ctl.current, show_scores=not hidden)
        self.banner.set_models([r.model for r in s.results.values()])
        for key, update in (("curve", self._update_curve), ("table", self._update_table),
                            ("heatmap", self._update_heatmap), ("matrix", self._update_matrix),
                            ("worst", self._update_worst)):
            if staged and not hidden:
                ctl.stage(key, update)
            else:
                ctl.unstage(key)
                update()
        title = "DeePAQ"
        if s.reference is not None:
            title += f" — {s.reference.name} + {len(s.versions)} version(s)"
        self.setWindowTitle(title)

    def _update_curve(self) -> None:
        self.curve.set_results(self.ctl.shown_results(), self.ctl.names())
        self.curve.set_selected(self.ctl.current - 1 if self.ctl.current > 0 else self.ctl.shown_version)

    def _update_table(self) -> None:
        self.table.set_results(self.ctl.shown_results(), self.ctl.names())

    def _update_heatmap(self) -> None:
        shown = self.ctl.shown_results().get(self.ctl.shown_version)
        self.heatmap.set_version_label(f"V{self.ctl.shown_version + 1}")
        if shown is not None:
            self.heatmap.set_result(shown)
        else:
            self.heatmap.clear()

    def _update_worst(self) -> None:
        """The shown version's worst moments (from the newest prepared audio), none during a blind test."""
        prepared, v = self.ctl.prepared, self.ctl.shown_version
        current = prepared is not None and prepared.version == v and not self.ctl.hidden()
        self.left.set_worst(prepared.worst if current else (), f"V{v + 1}" if current else "")

    def _update_matrix(self) -> None:
        self.matrix.set_result(self.ctl.shown_results().get(self.ctl.shown_version))

    # -- export -------------------------------------------------------------------------------
    def ask_export(self, kind: str) -> None:
        suffix = {"csv": "csv", "json": "json", "report": "pdf"}.get(kind) or kind.rsplit("_", 1)[1]
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export", f"deepaq.{suffix}", f"*.{suffix}")
        if path:
            self.ctl.export(kind, path)

    def _render(self, kind: str, path: str) -> None:
        """Write the window or one view as PNG or SVG (the controller's export calls this)."""
        name, fmt = kind.rsplit("_", 1)
        if kind == "window_png":
            self.save_screenshot(path)
        elif name in VIEW_EXPORTS and fmt in ("png", "svg"):
            view = getattr(self, name)
            # a one-plot view goes through its plot item (PNG at any size, tidy SVG); the
            # waveform and spectrogram stacks are saved whole (widget grab, whole scene)
            plots = view.plot_items() if hasattr(view, "plot_items") else [view.plot_item()]
            target = plots[0] if len(plots) == 1 else view
            (export.export_png if fmt == "png" else export.export_svg)(target, path)

    def save_screenshot(self, path: str | Path) -> bool:
        """Save a PNG of the whole window."""
        QtWidgets.QApplication.processEvents()
        return bool(self.grab().save(str(path), "PNG"))

    def closeEvent(self, e: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt API
        try:
            self.autosaver.save_now()
        except Exception:  # never block closing on the autosave
            log.exception("autosave on close failed")
        QtWidgets.QApplication.instance().removeEventFilter(self)
        self.ctl.close()
        super().closeEvent(e)
