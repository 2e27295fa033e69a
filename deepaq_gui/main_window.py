"""The main window: wiring between the session, the workers, the playback engine and the views."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from deepaq_core.errors import DeePAQError
from deepaq_core.scoring import Partial, ScoreSettings
from deepaq_gui.jobs import (LoadedFiles, ModelHolder, ModelReady, PreparedAudio, freeze_startup_objects,
                             load_files_job, preload_modules, prepare_audio_job, score_job, worker_threads)
from deepaq_gui.playback import PlaybackEngine
from deepaq_gui.session import Session
from deepaq_gui.views.heatmap import LayerHeatmapView
from deepaq_gui.views.ladder import open_ladder
from deepaq_gui.views.live_score import LiveScoreLabel
from deepaq_gui.views.matrix import TimeMatrixView
from deepaq_gui.views.quality_curve import QualityCurveView
from deepaq_gui.views.score_table import ScoreTableView
from deepaq_gui.views.spectrogram import SpectrogramView
from deepaq_gui.views.waveform import WaveformView
from deepaq_gui.widgets import FilesPanel, MessageBar, key_to_track
from deepaq_gui.workers import Worker

log = logging.getLogger(__name__)

STAGE_INTERVAL_MS = 15  # between staged view updates (see MainWindow._stage)
UI_SWITCH_INTERVAL_S = 0.001  # sys.setswitchinterval while the window exists (see MainWindow.__init__)

AUDIO_FILTER = "Audio files (*.wav *.flac *.ogg *.oga *.mp3 *.m4a *.aac *.opus *.aif *.aiff);;All files (*)"
SEEK_STEP_S = 5.0
#: views that File → Export saves on their own, as PNG or SVG (attribute name: menu label)
VIEW_EXPORTS = {"waveform": "Waveforms", "spectrogram": "Spectrograms", "curve": "Quality curves",
                "heatmap": "Layer heatmap", "matrix": "Time matrix"}


class MainWindow(QtWidgets.QMainWindow):
    """DeePAQ's window. ``open_files(paths)`` loads a reference (first) and versions (rest)."""

    scoringIdle = QtCore.Signal()  # emitted when no work is pending (tests, --screenshot)

    def __init__(self, *, device: str = "auto", audio_backend: str = "auto", model: str | None = None,
                 allow_unverified: bool = False) -> None:
        super().__init__()
        preload_modules()
        # The UI thread needs the GIL for every Python slot (even a 10 ms timer's). While a worker
        # runs Python code, a thread asking for the GIL waits up to the switch interval (5 ms by
        # default) for it, on every event; 1 ms keeps the window's slots prompt
        # (docs/PERFORMANCE.md).
        sys.setswitchinterval(min(sys.getswitchinterval(), UI_SWITCH_INTERVAL_S))
        self.setWindowTitle("DeePAQ")
        self.resize(1400, 900)
        self.setAcceptDrops(True)
        self.session = Session(model_name=model)
        self.holder = ModelHolder(device, allow_unverified)
        self.engine = PlaybackEngine(backend=audio_backend)
        self.workers: set[Worker] = set()
        # Scoring (long) runs in its own one-thread pool, and everything else (reading files,
        # preparing audio views: seconds) in a pool one core short of the machine, so opening a
        # file or switching the shown version never waits for scoring to finish. Torch and the
        # FFTs also leave the UI thread a core (jobs.worker_threads).
        self.pool = QtCore.QThreadPool(self)
        self.pool.setMaxThreadCount(worker_threads())
        self.score_pool = QtCore.QThreadPool(self)
        self.score_pool.setMaxThreadCount(1)
        self.score_worker: Worker | None = None
        self._notes_shown: set[str] = set()  # one-time notes (an unverified model) already shown
        self._progress_worker: Worker | None = None  # the job the progress bar and Cancel button follow
        self.current = 0  # 0 = reference, i = version i (1-based)
        self.shown_version = 0  # 0-based version shown in waveform/spectrogram/heatmaps
        self.errors_seen: list[str] = []
        self.blind = None  # the open blind-test widget (ABX, A/B preference or MUSHRA), if any
        self.blind_logs: list[dict] = []
        # View updates that arrive together (a result, prepared audio) run one per event-loop
        # turn, so each repaint covers one view: repainting every pyqtgraph view at once took
        # 50-80 ms on a 2-core machine (docs/PERFORMANCE.md). Keyed, so a newer update of the
        # same view replaces a pending one.
        self._stages: dict[str, object] = {}
        self._stage_timer = QtCore.QTimer(self)
        self._stage_timer.setSingleShot(True)
        self._stage_timer.setInterval(STAGE_INTERVAL_MS)
        self._stage_timer.timeout.connect(self._run_stage)
        # session generations whose scoring ended without every result: not restarted by itself
        self._failed_generation: int | None = None
        self._cancelled_generation: int | None = None
        # file loads: applied in request order; a new reference makes older ones stale (open_files)
        self._epoch = 0
        self._load_seq = self._load_applied = 0
        self._loads_pending: dict[int, tuple[Worker, list[str]]] = {}  # seq -> (worker, paths)
        self._loads_ready: dict[int, object] = {}
        self._build()
        self._build_menus()
        QtWidgets.QApplication.instance().installEventFilter(self)
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(33)  # ~30 playhead updates per second
        self.timer.timeout.connect(self._tick)
        self.timer.start()
        self._playback_warned = False
        self._audio_token: tuple | None = None  # the audio views' newest request (_playback_changed)
        if not self.engine.available:
            QtCore.QTimer.singleShot(0, self._warn_playback_off)
        from deepaq_gui.session_file import Autosaver

        self.session_path: str | None = None
        self._loop: tuple[float, float] | None = None
        self.autosaver = Autosaver(lambda: (self.session, self._session_extra()), interval_s=10, parent=self)
        self.autosaver.failed.connect(lambda m: self.message(m, "warning"))
        self.autosaver.start()
        freeze_startup_objects()

    # -- construction ---------------------------------------------------------------------
    def _build(self) -> None:
        self.messages = MessageBar()
        self.files = FilesPanel()
        self.files.trackSelected.connect(self.select_track)
        self.files.removeRequested.connect(self.remove_version)
        self.live = LiveScoreLabel()
        left = QtWidgets.QWidget()
        ll = QtWidgets.QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.live)
        ll.addWidget(self.files, 1)
        self.transport = QtWidgets.QLabel()
        ll.addWidget(self.transport)

        self.waveform = WaveformView()
        self.spectrogram = SpectrogramView()
        self.curve = QualityCurveView()
        self.heatmap = LayerHeatmapView()
        self.time_views = [self.waveform, self.spectrogram, self.curve, self.heatmap]
        master = self.curve.plot_item()
        for v in self.time_views:
            v.seekRequested.connect(self.seek)
            v.loopRequested.connect(self.set_loop)
            if v is not self.curve:
                v.plot_item().setXLink(master)
        self.table = ScoreTableView()
        self.table.rowSelected.connect(lambda i: self.select_track(i + 1))
        self.matrix = TimeMatrixView()
        self.matrix.seekRequested.connect(self.seek)
        self.matrix.loopRequested.connect(self.set_loop)
        tabs = QtWidgets.QTabWidget()
        tabs.addTab(self.table, "Scores")
        tabs.addTab(self.matrix, "Reference x degraded time")
        self.tabs = tabs

        right = QtWidgets.QSplitter(QtCore.Qt.Vertical)
        for w in (self.waveform, self.spectrogram, self.curve, self.heatmap, tabs):
            right.addWidget(w)
        right.setSizes([150, 220, 200, 130, 160])
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
        self.cancel_button.clicked.connect(self.cancel_scoring)
        self.cancel_button.hide()
        self.model_label = QtWidgets.QLabel("model: (loads on first use)")
        sb = self.statusBar()
        sb.addPermanentWidget(self.model_label)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        self._refresh()

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        f.addAction("Open &reference…", self.ask_reference, QtGui.QKeySequence.Open)
        f.addAction("&Add degraded versions…", self.ask_versions, QtGui.QKeySequence("Ctrl+D"))
        self.generate_action = f.addAction("&Generate degraded versions…", self.ask_generate, QtGui.QKeySequence("Ctrl+G"))
        f.addAction("Open &ladder (rate-quality)…", lambda: open_ladder(self))
        f.addSeparator()
        f.addAction("Open &session…", self.ask_session, QtGui.QKeySequence("Ctrl+Shift+O"))
        self.recent_menu = f.addMenu("Open &recent session")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.restore_action = f.addAction("Restore the &autosaved session", self.restore_autosave)
        f.aboutToShow.connect(self._update_file_menu)
        f.addAction("&Save session", self.save_session, QtGui.QKeySequence.Save)
        f.addAction("Save session &as…", lambda: self.save_session(ask=True), QtGui.QKeySequence("Ctrl+Shift+S"))
        f.addSeparator()
        exp = f.addMenu("&Export")
        exp.addAction("Window as PNG…", lambda: self._export("window_png"))
        for key, label in VIEW_EXPORTS.items():
            exp.addAction(f"{label} as PNG…", lambda k=key: self._export(f"{k}_png"))
            exp.addAction(f"{label} as SVG…", lambda k=key: self._export(f"{k}_svg"))
        exp.addAction("Curves as CSV…", lambda: self._export("csv"))
        exp.addAction("Scores as JSON…", lambda: self._export("json"))
        exp.addAction("One-page report (PDF or PNG)…", lambda: self._export("report"))
        f.addSeparator()
        f.addAction("&Quit", self.close, QtGui.QKeySequence.Quit)

        s = mb.addMenu("&Settings")
        self.align_action = s.addAction("Align versions to the reference")
        self.align_action.setCheckable(True)
        self.align_action.setChecked(True)
        self.align_action.toggled.connect(self._settings_changed)
        self.loud_action = s.addAction("Match loudness")
        self.loud_action.setCheckable(True)
        self.loud_action.setChecked(True)
        self.loud_action.toggled.connect(self._settings_changed)
        s.addSeparator()
        self.rescore_action = s.addAction("&Score the unscored versions", self.resume_scoring, QtGui.QKeySequence("F5"))
        self.cancel_action = s.addAction("&Cancel scoring", self.cancel_scoring)
        self.model_menu = mb.addMenu("&Model")
        self.model_menu.aboutToShow.connect(self._fill_model_menu)

        t = mb.addMenu("&Listening tests")
        t.addAction("Blind &ABX…", lambda: self.open_blind("abx"))
        t.addAction("Blind A/B &preference…", lambda: self.open_blind("ab"))
        t.addAction("&MUSHRA rating page…", lambda: self.open_blind("mushra"))
        t.addSeparator()
        t.addAction("&Close the listening test", self.close_blind)

        h = mb.addMenu("&Help")
        h.addAction("Open the &demo", self.open_demo)
        h.addAction("&Keys", lambda: self.message(
            "Keys: R or 0 reference, 1-9 versions, Tab last two, Space play/pause, ←/→ seek 5 s; "
            "Esc clears the loop; click a view to seek, Shift+drag on a view to loop, double-click a worst "
            "segment to loop it; F5 scores unscored versions.", "info"))
        h.addAction("&About", lambda: self.message(
            f"DeePAQ: perceptual audio quality from learned embeddings. Model: {self.model_label.text()}", "info"))

    # -- messages ---------------------------------------------------------------------------
    def message(self, text: str, level: str = "error") -> None:
        """Show a one-line, non-blocking message."""
        if level == "error":
            self.errors_seen.append(text)
            log.warning("%s", text)
        self.messages.show_message(text, level)
        self.statusBar().showMessage(text, 8000)

    # -- files -----------------------------------------------------------------------------
    def ask_reference(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open reference", "", AUDIO_FILTER)
        if path:
            self.open_files([path], as_reference=True)

    def ask_versions(self) -> None:
        paths, _ = QtWidgets.QFileDialog.getOpenFileNames(self, "Add degraded versions", "", AUDIO_FILTER)
        if paths:
            self.open_files(paths, as_reference=False)

    def open_files(self, paths: list[str], as_reference: bool | None = None, *, replace: bool = False) -> None:
        """Read files in a worker. ``as_reference`` None: the first is the reference if none is open.

        Loads are applied in the order they were asked for, whichever finishes first (so the
        reference asked for last wins). Asking for a new session (``replace``: these files only,
        the demo, a session file) makes every earlier load still in flight stale: it is
        cancelled and its files are not added to the new session (the user is told).
        """
        paths = [os.fspath(p) for p in paths]
        if not paths:
            return
        if replace:
            self._new_epoch()
        seq, epoch = self._load_seq, self._epoch
        self._load_seq += 1
        worker = self._start(load_files_job(paths), tag=epoch,
                             finished=lambda out: self._load_finished(seq, (out, as_reference, replace, epoch)),
                             ended=lambda: self._load_finished(seq, None))
        self._loads_pending[seq] = (worker, paths)  # signals are queued: nothing arrives before this

    def _new_epoch(self) -> None:
        """A new session is on its way: loads asked for before it, and scoring, are stale."""
        self._epoch += 1
        dropped = [os.path.basename(p) for _w, paths in self._loads_pending.values() for p in paths]
        dropped += [t.name for item in self._loads_ready.values() if item is not None for t in item[0].tracks]
        for w, _paths in self._loads_pending.values():
            w.cancel()
        if dropped:
            self.message(f"Not added to the new session: {', '.join(dropped)} (opened before it).", "info")
        self._cancel_stale()

    def _load_finished(self, seq: int, item) -> None:
        self._loads_pending.pop(seq, None)
        if seq >= self._load_applied and (item is not None or seq not in self._loads_ready):
            # ``ended`` comes after ``finished``: it must not overwrite (or re-add) the result
            self._loads_ready[seq] = item
        while self._load_applied in self._loads_ready:
            ready = self._loads_ready.pop(self._load_applied)
            self._load_applied += 1
            if ready is None:
                continue  # failed or cancelled: its messages were shown already
            out, as_reference, replace, epoch = ready
            if epoch != self._epoch:
                continue  # asked for before a new session (the user was told when it was asked for)
            self._files_loaded(out, as_reference, replace)

    def _files_loaded(self, out: LoadedFiles, as_reference: bool | None, replace: bool = False) -> None:
        for err in out.errors:
            self.message(err)
        tracks = list(out.tracks)
        if not tracks:
            return
        self.close_blind()  # track numbers are about to change
        if replace:
            self.session.clear()
            self.current = self.shown_version = 0
        if as_reference or (as_reference is None and self.session.reference is None):
            self.session.set_reference(tracks.pop(0))
            self._cancel_stale()
            # the previous file's audio views must not arrive after this
            self._audio_token = None
            for key in ("waveform", "spectrogram"):
                self._stages.pop(key, None)
            # The time axis takes the file's length now, while the views are still empty and
            # cheap to repaint, not when waveforms and curves arrive (every linked view repaints).
            duration = self.session.reference.info.duration_s
            self._stage("time_axis", lambda: self.curve.plot_item().setXRange(0.0, duration, padding=0))
        for t in tracks:
            try:
                self.session.add_version(t)
            except DeePAQError as exc:
                self.message(str(exc))
        self._refresh(staged=True)  # the views clear one per turn, after the time axis
        # The heavy work starts after those repaints: a worker allocating and copying hundreds
        # of megabytes slows the UI thread's own work several-fold on small machines
        # (docs/PERFORMANCE.md), so the two should not overlap.
        self._stage("start_work", self._start_work)

    def _start_work(self) -> None:
        """Prepare the audio views and playback, and score what is missing (both in workers)."""
        self._playback_changed()
        w = self.score_worker
        if w is None or w.is_done or w.tag != self.session.generation:  # not already on it
            self.rescore()

    def remove_version(self, index: int) -> None:
        self.close_blind()
        self._cancel_stale()
        self.session.remove_version(index)
        self.current = min(self.current, len(self.session.versions))
        self.shown_version = min(self.shown_version, max(0, len(self.session.versions) - 1))
        self._playback_changed()
        self._refresh()
        self.rescore()

    def open_demo(self) -> None:
        """Open the bundled demo reference and versions made from it (generated in a worker once)."""
        from deepaq_gui.demo import demo_job

        self._new_epoch()
        epoch = self._epoch
        self._start(demo_job(), show_progress=True,
                    finished=lambda out: self.open_files([out[0], *out[1]], replace=True)
                    if epoch == self._epoch else None)

    # -- drag and drop ----------------------------------------------------------------------
    def dragEnterEvent(self, e: QtGui.QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if e.mimeData().hasUrls():
            e.acceptProposedAction()

    def dropEvent(self, e: QtGui.QDropEvent) -> None:  # noqa: N802 - Qt API
        paths = [u.toLocalFile() for u in e.mimeData().urls() if u.isLocalFile()]
        self.open_files(paths, as_reference=None)

    # -- settings and model -------------------------------------------------------------------
    def _settings_changed(self) -> None:
        s = self.session.settings
        self.session.set_settings(ScoreSettings(**{**s.__dict__, "align": self.align_action.isChecked(),
                                                    "match_loudness": self.loud_action.isChecked()}))
        self._cancel_stale()
        self._playback_changed()
        self._refresh()
        self.rescore()

    def _fill_model_menu(self) -> None:
        from deepaq_core.model.registry import list_models

        self.model_menu.clear()
        group = QtGui.QActionGroup(self.model_menu)
        current = self.session.model_name or "compact"
        for entry in list_models():
            act = self.model_menu.addAction(f"{entry.name}  ({entry.status})")
            act.setCheckable(True)
            act.setChecked(entry.name == current)
            act.setEnabled(entry.available)
            act.setToolTip(entry.description if entry.available else f"{entry.where}: {entry.description}")
            group.addAction(act)
            act.triggered.connect(lambda _=False, n=entry.name: self.set_model(n))

    def set_model(self, name: str) -> None:
        if name == (self.session.model_name or "compact"):
            return
        self.session.set_model(name)
        self._cancel_stale()
        self._refresh()
        self.rescore()

    # -- scoring ---------------------------------------------------------------------------
    def rescore(self) -> None:
        """Score every version that has no result (cancelling stale work first)."""
        s = self.session
        if s.reference is None or not s.missing_results():
            return
        if self.score_worker is not None and not self.score_worker.is_done:
            self.score_worker.cancel()
        versions = [(i, s.versions[i]) for i in s.missing_results()]
        gen = s.generation
        self.score_worker = self._start(
            score_job(self.holder, s.reference, versions, s.model_name, s.settings),
            partial=lambda item: self._scored(item, gen), tag=gen, show_progress=True, pool=self.score_pool)

    def _scored(self, item, generation: int) -> None:
        if generation != self.session.generation:
            return  # stale: the files or settings changed since this job started
        if isinstance(item, ModelReady):
            self.model_label.setText(f"model: {item.label}")
            if item.note and item.note not in self._notes_shown:
                self._notes_shown.add(item.note)
                self.message(item.note[0].upper() + item.note[1:], "info")
            return
        if isinstance(item, Partial) and item.index < len(self.session.versions):
            self.session.results[item.index] = item.result
            self._refresh(staged=True)
            # playback follows the measured delay and gain; prepared after the views' repaints
            # (see _files_loaded)
            self._stage("prepare_audio", self._playback_changed)

    def cancel_scoring(self) -> None:
        """Cancel the work the progress bar shows (the Cancel button).

        Cancelled scoring is not restarted until the user asks (F5) or the files or settings change.
        """
        w = self._progress_worker
        if w is None or w.is_done:
            w = self.score_worker
        if w is None or w.is_done:
            return
        w.cancel()
        if w is self.score_worker:
            self._cancelled_generation = self.session.generation
            self.message("Scoring cancelled; Settings → Score the unscored versions (F5) resumes it.", "info")
        else:
            self.message("Cancelled.", "info")

    def resume_scoring(self) -> None:
        """Score what is missing, also after a cancel or a failure in this session state."""
        self._cancelled_generation = self._failed_generation = None
        if self.session.reference is not None and not self.session.missing_results():
            self.message("Every version already has a score.", "info")
        self.rescore()

    def _cancel_stale(self) -> None:
        if self.score_worker is not None and not self.score_worker.is_done:
            self.score_worker.cancel()

    def _start(self, job, *, finished=None, partial=None, ended=None, tag=None, show_progress: bool = False,
               pool: QtCore.QThreadPool | None = None) -> Worker:
        """Run ``job`` in a worker. ``finished(result)`` on success; ``ended()`` whatever the outcome,
        after ``finished`` and before the window checks whether it is idle."""
        w = Worker(job, tag)
        if finished:
            w.signals.finished.connect(finished)
        if ended:
            w.signals.done.connect(ended)
        if partial:
            w.signals.partial.connect(partial)
        w.signals.errored.connect(self._worker_error)
        if show_progress:
            self._progress_worker = w
            w.signals.progress.connect(lambda f, t, w=w: self._progress(f, t) if w is self._progress_worker else None)
            self.progress.setValue(0)
            self.progress.show()
            self.cancel_button.show()
        w.signals.done.connect(lambda: self._worker_done(w))
        self.workers.add(w)
        return w.start(pool or self.pool)

    def _progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(f"{text} %p%")

    def _worker_error(self, message: str, tb: str) -> None:
        if tb:
            log.error("worker failed: %s\n%s", message, tb)
        self.message(message)

    def _worker_done(self, w: Worker) -> None:
        self.workers.discard(w)
        if w is self._progress_worker:
            if w is not self.score_worker and self.score_worker is not None and not self.score_worker.is_done:
                self._progress_worker = self.score_worker  # scoring goes on: the bar follows it again
            else:
                self.progress.hide()
                self.cancel_button.hide()
        if w is self.score_worker:
            if self.session.missing_results() and not w.cancel_event.is_set():
                # it ended (error or not) without scoring everything: don't retry in a loop
                self._failed_generation = w.tag
        self._check_idle()

    def is_idle(self) -> bool:
        """No worker running and no view update pending."""
        return not self.workers and not self._stages

    def _stage(self, key: str, update) -> None:
        """Run ``update()`` on a later event-loop turn, after the views staged before it."""
        self._stages.pop(key, None)
        self._stages[key] = update
        if not self._stage_timer.isActive():
            self._stage_timer.start()

    def _run_stage(self) -> None:
        if not self._stages:
            return
        key = next(iter(self._stages))
        update = self._stages.pop(key)
        try:
            update()
        finally:
            if self._stages:
                self._stage_timer.start()
            else:
                self._check_idle()

    def _check_idle(self) -> None:
        if not self.is_idle():
            return
        s = self.session
        if (s.reference is not None and s.missing_results()
                and s.generation not in (self._failed_generation, self._cancelled_generation)):
            self.rescore()
            return
        self.scoringIdle.emit()

    # -- sessions and generated versions -----------------------------------------------------
    def _session_extra(self) -> dict:
        return {"current": self.current, "shown_version": self.shown_version,
                "loop": list(self._loop) if self._loop else None, "blind_logs": self.blind_logs}

    def _update_file_menu(self) -> None:
        from deepaq_gui.session_file import autosave_path

        self.restore_action.setEnabled(autosave_path().is_file())
        self.generate_action.setEnabled(self.session.reference is not None)

    def _fill_recent(self) -> None:
        from deepaq_gui.session_file import recent_sessions

        self.recent_menu.clear()
        paths = recent_sessions()
        for p in paths:
            self.recent_menu.addAction(p, lambda p=p: self.load_session_file(p))
        if not paths:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def ask_session(self) -> None:
        from deepaq_gui.session_file import SESSION_FILTER

        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open session", "", SESSION_FILTER)
        if path:
            self.load_session_file(path)

    def restore_autosave(self) -> None:
        from deepaq_gui.session_file import autosave_path

        self.load_session_file(str(autosave_path()))

    def save_session(self, ask: bool = False, path: str | None = None) -> None:
        """Save the session file (asks for a name the first time or with ``ask``)."""
        from deepaq_gui.session_file import SESSION_FILTER, add_recent, save_session, with_suffix

        if self.session.reference is None:
            self.message("There is nothing to save yet: open a reference first.", "info")
            return
        if path is None and (ask or not self.session_path):
            path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save session", "session.deepaq.json", SESSION_FILTER)
            if not path:
                return
        path = str(with_suffix(path or self.session_path))
        try:
            save_session(self.session, path, extra=self._session_extra())
        except (DeePAQError, OSError) as exc:
            self.message(str(exc))
            return
        self.session_path = path
        add_recent(path)
        self.message(f"Saved {os.path.basename(path)}.", "info")

    def load_session_file(self, path: str) -> None:
        """Reopen a session in a worker; unchanged files keep their results (no rescoring)."""
        from deepaq_gui.session_file import load_session_job

        self._new_epoch()
        epoch = self._epoch
        self._start(load_session_job(path), show_progress=True,
                    finished=lambda loaded: self._session_loaded(loaded) if epoch == self._epoch else None)

    def _session_loaded(self, loaded) -> None:
        from deepaq_gui.session_file import add_recent, autosave_path

        self._cancel_stale()
        self.close_blind()
        self.session = loaded.session
        for i, r in loaded.session.results.items():  # seeds the cache: switching back costs nothing
            self.holder.results[self.holder.key(self.session.reference, self.session.versions[i],
                                                self.session.model_name, self.session.settings)] = r
        for action, value in ((self.align_action, self.session.settings.align),
                              (self.loud_action, self.session.settings.match_loudness)):
            action.blockSignals(True)
            action.setChecked(value)
            action.blockSignals(False)
        self.blind_logs = list(loaded.blind_logs)
        self.current, self.shown_version = loaded.current, loaded.shown_version
        for m in loaded.messages:
            self.message(m, "warning")  # a changed file is said out loud, never rescored silently
        self._playback_changed()
        self._refresh()
        if loaded.loop:
            self.set_loop(*loaded.loop)
        if str(loaded.path) != str(autosave_path()):
            self.session_path = str(loaded.path)
            add_recent(str(loaded.path))
        self.rescore()

    def ask_generate(self) -> None:
        from deepaq_gui.degrade_dialog import DegradeDialog, generate_versions_job
        from deepaq_gui.session import MAX_VERSIONS

        if self.session.reference is None:
            self.message("Open a reference first; degraded versions are made from it.", "info")
            return
        room = MAX_VERSIONS - len(self.session.versions)
        if room <= 0:
            self.message(f"At most {MAX_VERSIONS} versions can be open; remove one first.", "info")
            return
        picked = DegradeDialog.ask(self.session.reference.path, self, max_jobs=room)
        if picked:
            jobs, out_dir = picked
            self._start(generate_versions_job(self.session.reference.path, jobs, out_dir),
                        finished=self._versions_generated, show_progress=True)

    def _versions_generated(self, out) -> None:
        for e in out.errors:
            self.message(e)
        if out.files:
            self.open_files([p for p, _ in out.files], as_reference=False)

    # -- blind listening ---------------------------------------------------------------------
    def _hidden(self) -> bool:
        return self.blind is not None and self.blind.identity_hidden

    def open_blind(self, kind: str) -> None:
        """Open a blind test in a dock; while it hides identities the window shows nothing that reveals them."""
        from deepaq_gui.blind import tracks_from_session
        from deepaq_gui.blind_panel import AbxPanel, BlindAbPanel
        from deepaq_gui.mushra import MushraPage, paths_from_session

        s = self.session
        if s.reference is None or not s.versions:
            self.message("Open a reference and at least one degraded version before a listening test.", "info")
            return
        self.close_blind()
        if kind == "abx":
            w = AbxPanel(self.engine, tracks_from_session(s))
        elif kind == "ab":
            w = BlindAbPanel(self.engine, tracks_from_session(s))
        else:
            w = MushraPage(self.engine, 0, list(range(1, len(s.versions) + 1)), None, paths=paths_from_session(s))
        w.messageRequested.connect(self.message)
        w.identityHidden.connect(lambda _hidden: self._refresh())
        dock = QtWidgets.QDockWidget({"abx": "Blind ABX", "ab": "Blind A/B", "mushra": "MUSHRA"}[kind], self)
        dock.setObjectName("blind_dock")
        dock.setWidget(w)
        dock.setAllowedAreas(QtCore.Qt.RightDockWidgetArea | QtCore.Qt.BottomDockWidgetArea)
        self.addDockWidget(QtCore.Qt.RightDockWidgetArea, dock)
        self.blind, self.blind_dock = w, dock
        self._refresh()

    def close_blind(self) -> None:
        if self.blind is None:
            return
        test = getattr(self.blind, "test", None)
        if test is not None and getattr(test, "log", None):
            import dataclasses as dc

            # kept for the session file: what was tested, every trial, the outcome
            self.blind_logs.append({"kind": type(test).__name__, "summary": test.summary(),
                                    "trials": [dc.asdict(t) if dc.is_dataclass(t) else t for t in test.log]})
        self.blind.stop()
        self.removeDockWidget(self.blind_dock)
        self.blind_dock.deleteLater()
        self.blind = None
        self.engine.select(min(self.current, max(0, self.engine.track_count - 1)))
        self._refresh()

    # -- playback --------------------------------------------------------------------------
    def _playback_changed(self) -> None:
        """Prepare aligned tracks, envelopes and spectrograms in a worker (never on the UI thread)."""
        s = self.session
        if s.reference is None:
            self.engine.set_tracks([], 48000)  # an empty sequence unloads everything
            for v in (self.waveform, self.spectrogram):
                v.clear()
            return
        token = (s.generation, tuple(sorted(s.results)), self.shown_version)
        self._audio_token = token
        self._start(prepare_audio_job(s, dict(s.results), self.shown_version, token), finished=self._audio_ready)

    def _audio_ready(self, prepared: PreparedAudio) -> None:
        if prepared.token != self._audio_token:
            return  # superseded by a newer request
        self.engine.set_tracks(list(prepared.tracks), prepared.rate)
        if not self.engine.available:
            self._warn_playback_off()  # e.g. the device refused this sample rate
        if self.blind is not None:
            self.blind.resync()  # the blind test owns track selection
        else:
            self.engine.select(min(self.current, len(prepared.tracks) - 1))
        def waveforms() -> None:
            if prepared.token != self._audio_token:
                return  # a newer file or version was asked for meanwhile
            if prepared.version >= 0:
                self.waveform.set_version_index(prepared.version)
            label = f"V{prepared.version + 1}" if prepared.version >= 0 else "V"
            self.waveform.set_envelopes(prepared.ref_envelope, prepared.deg_envelope, labels=("R", label))

        def spectrograms() -> None:
            if prepared.token != self._audio_token:
                return
            if prepared.deg_spectrogram is not None:
                self.spectrogram.set_spectrograms(prepared.ref_spectrogram, prepared.deg_spectrogram,
                                                  difference=prepared.difference)
            else:
                self.spectrogram.clear()

        self._stage("waveform", waveforms)
        self._stage("spectrogram", spectrograms)

    def _warn_playback_off(self) -> None:
        """Say once per window why playback is off (everything else keeps working)."""
        if not self._playback_warned:
            self._playback_warned = True
            self.message(self.engine.unavailable_reason, "warning")

    def select_track(self, index: int) -> None:
        """0 = reference, i = version i (1-based). Switches playback at the same position."""
        if index > len(self.session.versions) or index < 0 or self._hidden():
            return
        if index != self.current:
            self.previous = self.current
        self.current = index
        if index < self.engine.track_count:
            self.engine.select(index)
        # else: a version just added, still being prepared; _audio_ready selects it on arrival
        if index > 0 and index - 1 != self.shown_version:
            self.shown_version = index - 1
            self._playback_changed()
        self._refresh()

    def seek(self, t: float) -> None:
        self.engine.seek(max(0.0, t))

    def set_loop(self, start: float, end: float) -> None:
        if end - start < 0.05:
            self._loop = None
            self.engine.clear_loop()
            for v in (*self.time_views, self.matrix):
                v.set_loop(None)
            return
        self._loop = (start, end)
        self.engine.set_loop(start, end)
        self.engine.seek(start)
        for v in (*self.time_views, self.matrix):
            v.set_loop((start, end))

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if event.type() == QtCore.QEvent.KeyPress and self.isActiveWindow() and not event.modifiers() & (
                QtCore.Qt.ControlModifier | QtCore.Qt.AltModifier | QtCore.Qt.MetaModifier):
            if self.handle_key(event):
                return True
        return super().eventFilter(obj, event)

    def handle_key(self, event: QtGui.QKeyEvent) -> bool:
        """Transport keys; returns True when the key was used."""
        if self._hidden():
            # A/B/X, answers and condition numbers belong to the test; track keys would reveal X
            return bool(self.blind.handle_key(event)) or key_to_track(event) is not None
        idx = key_to_track(event)
        k = event.key()
        if idx is not None:
            self.select_track(idx)
        elif k == QtCore.Qt.Key_Tab:
            self.select_track(getattr(self, "previous", 0))
        elif k == QtCore.Qt.Key_Space:
            self.engine.toggle()
        elif k == QtCore.Qt.Key_Left:
            self.seek(self.engine.position_s - SEEK_STEP_S)
        elif k == QtCore.Qt.Key_Right:
            self.seek(self.engine.position_s + SEEK_STEP_S)
        elif k == QtCore.Qt.Key_Escape:
            self.set_loop(0.0, 0.0)
        else:
            return False
        return True

    def _tick(self) -> None:
        t = self.engine.position_s
        for v in self.time_views:
            v.set_playhead(t)
        if self._hidden():
            name = f"{self.blind.playing_label()} (blind)"
        else:
            name = "reference" if self.current == 0 else f"version {self.current}"
        state = "▶" if self.engine.playing else "❚❚"
        self.transport.setText(f"{state} {t:7.2f} s   playing: {name}"
                               f"{'' if self.engine.available else '   (playback off)'}")
        self._update_live(t)

    def _update_live(self, t: float) -> None:
        s = self.session
        if self._hidden():
            self.live.set_score(None, "Blind test running: scores are hidden")
            return
        if self.current == 0:
            self.live.set_score(None, "Reference (100 by definition)")
            return
        i = self.current - 1
        r = s.results.get(i)
        if r is None:
            self.live.set_score(None, f"{i + 1}: {s.versions[i].name if i < len(s.versions) else ''} (scoring…)")
            return
        value = self.curve.score_at(i, t)
        self.live.set_score(value, f"{i + 1}: {s.versions[i].name} · {r.model.label} · 0-100, 100 = transparent")

    # -- refresh ---------------------------------------------------------------------------
    def _refresh(self, staged: bool = False) -> None:
        """Bring every view up to date with the session.

        ``staged``: the result views update one per event-loop turn (for results arriving while
        the user works); otherwise now. A blind test always clears them now: nothing on screen
        may give the answer away, not even for one turn.
        """
        s = self.session
        hidden = self._hidden()
        self.files.setEnabled(not hidden)
        self.files.populate(s, -1 if hidden else self.current, show_scores=not hidden)
        updates = [("curve", self._update_curve), ("table", self._update_table),
                   ("heatmap", self._update_heatmap), ("matrix", self._update_matrix)]
        for key, update in updates:
            if staged and not hidden:
                self._stage(key, update)
            else:
                self._stages.pop(key, None)
                update()
        title = "DeePAQ"
        if s.reference is not None:
            title += f" — {s.reference.name} + {len(s.versions)} version(s)"
        self.setWindowTitle(title)

    def _shown_results(self) -> tuple[dict, dict]:
        """(results, names) the result views may show: none during a blind test."""
        s = self.session
        names = {i: f"{i + 1}: {v.name}" for i, v in enumerate(s.versions)}
        return ({} if self._hidden() else dict(s.results)), names

    def _update_curve(self) -> None:
        results, names = self._shown_results()
        self.curve.set_results(results, names)
        self.curve.set_selected(self.current - 1 if self.current > 0 else self.shown_version)

    def _update_table(self) -> None:
        results, names = self._shown_results()
        self.table.set_results(results, names)

    def _update_heatmap(self) -> None:
        shown = self._shown_results()[0].get(self.shown_version)
        if shown is not None:
            self.heatmap.set_result(shown)
        else:
            self.heatmap.clear()

    def _update_matrix(self) -> None:
        self.matrix.set_result(self._shown_results()[0].get(self.shown_version))

    # -- export ----------------------------------------------------------------------------
    def _export(self, kind: str) -> None:
        suffix = {"csv": "csv", "json": "json", "report": "pdf"}.get(kind) or kind.rsplit("_", 1)[1]
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export", f"deepaq.{suffix}", f"*.{suffix}")
        if not path:
            return
        self.export(kind, path)

    def export(self, kind: str, path: str) -> None:
        """Write an export; errors become messages.

        Never onto one of the session's audio files, and through a temporary file in the same
        folder that replaces ``path`` only once complete (a failed export leaves it as it was).
        """
        from deepaq_core.validation import check_output_paths
        from deepaq_gui.views import export

        names = {i: v.name for i, v in enumerate(self.session.versions)}
        final = path
        inputs = [t.path for t in [self.session.reference, *self.session.versions] if t is not None]
        try:
            check_output_paths({"export": final}, inputs=inputs)
        except DeePAQError as exc:
            self.message(str(exc))
            return
        head, tail = os.path.split(os.path.abspath(final))
        stem, ext = os.path.splitext(tail)
        path = os.path.join(head, f".{stem}.{os.getpid()}.tmp{ext}")  # same suffix: writers go by it
        try:
            if kind == "window_png":
                self.save_screenshot(path)
            elif kind.endswith(("_png", "_svg")) and kind.rsplit("_", 1)[0] in VIEW_EXPORTS:
                view = getattr(self, kind.rsplit("_", 1)[0])
                # a one-plot view goes through its plot item (PNG at any size, tidy SVG); the
                # waveform and spectrogram stacks are saved whole (widget grab, whole scene)
                plots = view.plot_items() if hasattr(view, "plot_items") else [view.plot_item()]
                target = plots[0] if len(plots) == 1 else view
                (export.export_png if kind.endswith("_png") else export.export_svg)(target, path)
            elif kind == "csv":
                export.export_curves_csv(self.session.results, names, path)
            elif kind == "json":
                export.export_scores_json(self.session.results, names, path)
            elif kind == "report":
                from deepaq_gui.report import make_report

                make_report(path, self.session, dict(self.session.results),
                            images=[self.curve.grab(), self.spectrogram.grab(), self.heatmap.grab(), self.matrix.grab()])
            if kind == "window_png" and not os.path.exists(path):
                raise OSError("the window could not be saved")
            os.replace(path, final)
            self.message(f"Exported {os.path.basename(final)}.", "info")
        except DeePAQError as exc:
            self.message(str(exc))
        except OSError as exc:
            self.message(f"Cannot write '{os.path.basename(final)}': {exc.strerror or exc}.")
        finally:
            if os.path.exists(path):
                try:
                    os.remove(path)
                except OSError:
                    pass

    def save_screenshot(self, path: str | Path) -> bool:
        """Save a PNG of the whole window."""
        QtWidgets.QApplication.processEvents()
        return bool(self.grab().save(str(path), "PNG"))

    def closeEvent(self, e: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt API
        try:
            self.autosaver.save_now()
        except Exception:  # never block closing on the autosave
            log.exception("autosave on close failed")
        for w in list(self.workers):
            w.cancel()
        self.engine.close()
        QtWidgets.QApplication.instance().removeEventFilter(self)
        self.pool.waitForDone(5000)
        self.score_pool.waitForDone(5000)
        super().closeEvent(e)
