"""The app controller: the document, the jobs that compute on it, and what the window should show.

:class:`AppController` owns the :class:`~deepaq_gui.session.Session`, the model, the playback
engine and every worker: the order in which file loads apply, the scoring lifecycle (start,
cancel, resume, never retry a failure in a loop), preparing aligned audio for playback and the
views, blind listening tests, session files and exports. It emits Qt signals; the window
(:mod:`deepaq_gui.main_window`) only connects them to widgets, so this holds no widget code
besides the listening-test panels it creates and hands over.

Workers receive immutable snapshots (:meth:`Session.snapshot`, read-only tracks), never the live
session; their results come back here on the UI thread, where the session is changed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from PySide6 import QtCore

from deepaq_core.errors import DeePAQError
from deepaq_core.scoring import Partial, ScoreSettings
from deepaq_gui.jobs import (LoadedFiles, ModelHolder, ModelReady, PreparedAudio, load_files_job, prepare_audio_job,
                             score_job, worker_threads)
from deepaq_gui.playback import PlaybackEngine
from deepaq_gui.session import MAX_VERSIONS, Session
from deepaq_gui.workers import Worker

log = logging.getLogger(__name__)

STAGE_INTERVAL_MS = 15  # between staged view updates (see AppController.stage)


class AppController(QtCore.QObject):
    """The document and its jobs. ``open_files(paths)`` loads a reference (first) and versions (rest)."""

    message = QtCore.Signal(str, str)  # (one sentence, "error" | "warning" | "info")
    refresh = QtCore.Signal(bool)  # the result views and the file list should redraw (staged: one per turn)
    audioPrepared = QtCore.Signal(object)  # PreparedAudio for the waveform and spectrogram views
    audioCleared = QtCore.Signal()
    timeAxis = QtCore.Signal(float)  # a new reference: the shared time axis spans its duration
    modelLabel = QtCore.Signal(str)
    progress = QtCore.Signal(float, str)
    progressShown = QtCore.Signal(bool)
    loopChanged = QtCore.Signal(object)  # (start, end) seconds or None
    settingsLoaded = QtCore.Signal(object)  # ScoreSettings of a reopened session (menu check marks)
    blindOpened = QtCore.Signal(object, str)  # (test widget, title)
    blindClosed = QtCore.Signal()
    scoringIdle = QtCore.Signal()  # no work pending (tests, --screenshot)
    ladderRequested = QtCore.Signal(str, object)  # (folder, families): open generated versions as a ladder

    def __init__(self, *, device: str = "auto", audio_backend: str = "auto", model: str | None = None,
                 allow_unverified: bool = False, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
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
        self._score_keys: dict[int, tuple] = {}  # version index -> result key the running job scores
        self._progress_worker: Worker | None = None  # the job the progress bar and Cancel follow
        self._notes_shown: set[str] = set()  # one-time notes (an unverified model) already shown
        self.current = 0  # 0 = reference, i = version i (1-based)
        self.previous = 0
        self.shown_version = 0  # 0-based version shown in waveform/spectrogram/heatmaps
        self.errors_seen: list[str] = []
        self.blind = None  # the open blind-test widget (ABX, A/B preference or MUSHRA), if any
        self.blind_logs: list[dict] = []
        self.loop: tuple[float, float] | None = None
        self.session_path: str | None = None
        # View updates that arrive together (a result, prepared audio) run one per event-loop
        # turn, so each repaint covers one view: repainting every pyqtgraph view at once took
        # 50-80 ms on a 2-core machine (docs/PERFORMANCE.md). Keyed, so a newer update of the
        # same view replaces a pending one.
        self._stages: dict[str, Callable[[], None]] = {}
        self._stage_timer = QtCore.QTimer(self)
        self._stage_timer.setSingleShot(True)
        self._stage_timer.setInterval(STAGE_INTERVAL_MS)
        self._stage_timer.timeout.connect(self._run_stage)
        # session generations whose scoring ended without every result: not restarted by itself
        self._failed_generation: int | None = None
        self._cancelled_generation: int | None = None
        # file loads: applied in request order; a new session makes older ones stale (open_files)
        self._epoch = 0
        self._load_seq = self._load_applied = 0
        self._loads_pending: dict[int, tuple[Worker, list[str]]] = {}  # seq -> (worker, paths)
        self._loads_ready: dict[int, object] = {}
        self._audio_token: tuple | None = None  # the audio views' newest request
        self.prepared: PreparedAudio | None = None  # the newest prepared audio the views show
        self._playback_warned = False
        #: set by the window: write a view or the window as an image (kind, path) for export
        self.render: Callable[[str, str], None] | None = None
        self.report_images: Callable[[], list] = list
        self.session = Session(model_name=model)
        self.session.subscribe(self._session_changed)

    # -- messages -----------------------------------------------------------------------------
    def say(self, text: str, level: str = "error") -> None:
        """A one-line, non-blocking message."""
        if level == "error":
            self.errors_seen.append(text)
            log.warning("%s", text)
        self.message.emit(text, level)

    def warn_playback_off(self) -> None:
        """Say once why playback is off (everything else keeps working)."""
        if not self._playback_warned:
            self._playback_warned = True
            self.say(self.engine.unavailable_reason, "warning")

    # -- the document -----------------------------------------------------------------------
    def _session_changed(self, what: str) -> None:
        self.refresh.emit(True)

    def hidden(self) -> bool:
        """A blind test hides which track is which: nothing on screen may tell."""
        return self.blind is not None and self.blind.identity_hidden

    def shown_results(self) -> dict:
        """The results the result views may show: none during a blind test."""
        return {} if self.hidden() else self.session.results

    def names(self) -> dict[int, str]:
        return {i: f"{i + 1}: {v.name}" for i, v in enumerate(self.session.versions)}

    # -- files --------------------------------------------------------------------------------
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
        worker = self.start(load_files_job(paths), tag=epoch,
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
            self.say(f"Not added to the new session: {', '.join(dropped)} (opened before it).", "info")
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
            self.say(err)
        tracks = list(out.tracks)
        if not tracks:
            return
        self.close_blind()  # track numbers are about to change
        if replace:
            self.session.clear()
            self.current = self.shown_version = 0
        if as_reference or (as_reference is None and self.session.reference is None):
            reference = tracks.pop(0)
            # The time axis takes the file's length first, while the views are still empty and
            # cheap to repaint, not when waveforms and curves arrive (every linked view repaints);
            # the views' refresh that the session's change stages comes after it.
            duration = reference.info.duration_s
            self.stage("time_axis", lambda: self.timeAxis.emit(duration))
            self.session.set_reference(reference)
            self._cancel_stale()
            # the previous file's audio views must not arrive after this
            self._audio_token = None
            for key in ("waveform", "spectrogram"):
                self._stages.pop(key, None)
        for t in tracks:
            try:
                self.session.add_version(t)
            except DeePAQError as exc:
                self.say(str(exc))
        # The views clear one per turn, after the time axis (the session's change is staged).
        # The heavy work starts after those repaints: a worker allocating and copying hundreds
        # of megabytes slows the UI thread's own work several-fold on small machines
        # (docs/PERFORMANCE.md), so the two should not overlap.
        self.stage("start_work", self._start_work)

    def _start_work(self) -> None:
        """Prepare the audio views and playback, and score what is missing (both in workers)."""
        self.prepare_audio()
        w = self.score_worker
        if w is None or w.is_done or w.tag != self.session.generation:  # not already on it
            self.rescore()

    def remove_version(self, index: int) -> None:
        self.close_blind()
        self._cancel_stale()
        self.session.remove_version(index)
        self.current = min(self.current, len(self.session.versions))
        self.shown_version = min(self.shown_version, max(0, len(self.session.versions) - 1))
        self.prepare_audio()  # the views follow the session's change (staged)
        self.rescore()

    def open_demo(self) -> None:
        """Open the bundled demo reference and versions made from it (generated in a worker once)."""
        from deepaq_gui.demo import demo_job

        self._new_epoch()
        epoch = self._epoch
        self.start(demo_job(), show_progress=True,
                   finished=lambda out: self.open_files([out[0], *out[1]], replace=True)
                   if epoch == self._epoch else None)

    def generate_versions(self, jobs, out_dir: str, open_ladder: bool = False) -> None:
        """Make degraded versions of the reference in a worker, then open them (and, with ``open_ladder``,
        ask the window to open the folder as a ladder: :attr:`ladderRequested`)."""
        from deepaq_gui.degrade_dialog import generate_versions_job

        self.start(generate_versions_job(self.session.reference.path, jobs, out_dir),
                   finished=lambda out: self.versions_generated(out, open_ladder), show_progress=True)

    def versions_generated(self, out, open_ladder: bool = False) -> None:
        for e in out.errors:
            self.say(e)
        if out.files:
            self.open_files([p for p, _ in out.files], as_reference=False)
        if not open_ladder or not out.files:
            return
        if out.manifest is None:
            self.say(f"The versions cannot be opened as a ladder: '{out.out_dir}' already holds a manifest.csv "
                     "that is not a ladder manifest.", "warning")
        else:
            self.ladderRequested.emit(out.out_dir, tuple(out.families))

    def room(self) -> int:
        """How many more versions may be opened."""
        return MAX_VERSIONS - len(self.session.versions)

    # -- settings and model -------------------------------------------------------------------
    def set_settings(self, **changes) -> None:
        """New scoring settings (e.g. ``align=False``): cached results show, the rest is scored."""
        s = self.session.settings
        self.session.set_settings(ScoreSettings(**{**s.__dict__, **changes}))
        self._cancel_stale()
        self.prepare_audio()
        self.rescore()

    def set_model(self, name: str) -> None:
        if name == (self.session.model_name or "compact"):
            return
        self.session.set_model(name)
        self._cancel_stale()
        self.rescore()

    # -- scoring ------------------------------------------------------------------------------
    def rescore(self) -> None:
        """Score every version that has no result (cancelling stale work first)."""
        s = self.session
        if s.reference is None or not s.missing_results():
            return
        if self.score_worker is not None and not self.score_worker.is_done:
            self.score_worker.cancel()
        snap = s.snapshot()
        todo = s.missing_results()
        keys = {i: s.key(i) for i in todo}
        gen = snap.generation
        self.score_worker = self.start(
            score_job(self.holder, snap.reference, [(i, snap.versions[i]) for i in todo], snap.model_name,
                      snap.settings),
            partial=lambda item: self._scored(item, gen, keys), tag=gen, show_progress=True, pool=self.score_pool)

    def _scored(self, item, generation: int, keys: dict[int, tuple]) -> None:
        if isinstance(item, ModelReady):
            self.modelLabel.emit(f"model: {item.label}")
            if item.note and item.note not in self._notes_shown:
                self._notes_shown.add(item.note)
                self.say(item.note[0].upper() + item.note[1:], "info")
            return
        if not isinstance(item, Partial):
            return
        # Kept under the key the job was started with, also when the session changed meanwhile
        # (the result is right for those files and settings, and shows when they are back).
        self.session.set_result(item.index, item.result, key=keys[item.index])
        if generation == self.session.generation:
            # playback follows the measured delay and gain; prepared after the views' repaints
            self.stage("prepare_audio", self.prepare_audio)

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
            self.say("Scoring cancelled; Settings → Score the unscored versions (F5) resumes it.", "info")
        else:
            self.say("Cancelled.", "info")

    def resume_scoring(self) -> None:
        """Score what is missing, also after a cancel or a failure in this session state."""
        self._cancelled_generation = self._failed_generation = None
        if self.session.reference is not None and not self.session.missing_results():
            self.say("Every version already has a score.", "info")
        self.rescore()

    def _cancel_stale(self) -> None:
        if self.score_worker is not None and not self.score_worker.is_done:
            self.score_worker.cancel()

    # -- workers ------------------------------------------------------------------------------
    def start(self, job, *, finished=None, partial=None, ended=None, tag=None, show_progress: bool = False,
              pool: QtCore.QThreadPool | None = None) -> Worker:
        """Run ``job`` in a worker. ``finished(result)`` on success; ``ended()`` whatever the outcome,
        after ``finished`` and before the controller checks whether it is idle."""
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
            w.signals.progress.connect(lambda f, t, w=w: self.progress.emit(f, t) if w is self._progress_worker else None)
            self.progress.emit(0.0, "")
            self.progressShown.emit(True)
        w.signals.done.connect(lambda: self._worker_done(w))
        self.workers.add(w)
        return w.start(pool or self.pool)

    def _worker_error(self, message: str, tb: str) -> None:
        if tb:
            log.error("worker failed: %s\n%s", message, tb)
        self.say(message)

    def _worker_done(self, w: Worker) -> None:
        self.workers.discard(w)
        if w is self._progress_worker:
            if w is not self.score_worker and self.score_worker is not None and not self.score_worker.is_done:
                self._progress_worker = self.score_worker  # scoring goes on: the bar follows it again
            else:
                self.progressShown.emit(False)
        if w is self.score_worker:
            if self.session.missing_results() and not w.cancel_event.is_set():
                # it ended (error or not) without scoring everything: don't retry in a loop
                self._failed_generation = w.tag
        self._check_idle()

    def is_idle(self) -> bool:
        """No worker running and no view update pending."""
        return not self.workers and not self._stages

    def stage(self, key: str, update: Callable[[], None]) -> None:
        """Run ``update()`` on a later event-loop turn, after the updates staged before it."""
        self._stages.pop(key, None)
        self._stages[key] = update
        if not self._stage_timer.isActive():
            self._stage_timer.start()

    def unstage(self, key: str) -> None:
        self._stages.pop(key, None)

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

    # -- playback -----------------------------------------------------------------------------
    def prepare_audio(self) -> None:
        """Prepare aligned tracks, envelopes and spectrograms in a worker (never on the UI thread)."""
        s = self.session
        if s.reference is None:
            self.engine.set_tracks([], 48000)  # an empty sequence unloads everything
            self.prepared = None
            self.audioCleared.emit()
            return
        snap = s.snapshot()
        token = (snap.generation, tuple(sorted(snap.results)), self.shown_version)
        self._audio_token = token
        self.start(prepare_audio_job(snap, self.shown_version, token), finished=self._audio_ready)

    def audio_current(self, prepared: PreparedAudio) -> bool:
        """Whether ``prepared`` is still what the views should show (no newer request)."""
        return prepared.token == self._audio_token

    def _audio_ready(self, prepared: PreparedAudio) -> None:
        if not self.audio_current(prepared):
            return  # superseded by a newer request
        if prepared.generation == self.session.generation:
            self.session.keep_aligned(prepared.aligned)
        self.prepared = prepared
        self.engine.set_tracks(list(prepared.tracks), prepared.rate)
        if not self.engine.available:
            self.warn_playback_off()  # e.g. the device refused this sample rate
        if self.blind is not None:
            self.blind.resync()  # the blind test owns track selection
        else:
            self.engine.select(min(self.current, len(prepared.tracks) - 1))
        self.audioPrepared.emit(prepared)

    def select_track(self, index: int) -> None:
        """0 = reference, i = version i (1-based). Switches playback at the same position."""
        if index > len(self.session.versions) or index < 0 or self.hidden():
            return
        if index != self.current:
            self.previous = self.current
        self.current = index
        if index < self.engine.track_count:
            self.engine.select(index)
        # else: a version just added, still being prepared; _audio_ready selects it on arrival
        if index > 0 and index - 1 != self.shown_version:
            self.shown_version = index - 1
            self.prepare_audio()
        self.refresh.emit(False)

    def seek(self, t: float) -> None:
        self.engine.seek(max(0.0, t))

    def set_loop(self, start: float, end: float) -> None:
        """Loop ``[start, end]`` seconds (shorter than 50 ms: no loop) and play from its start."""
        if end - start < 0.05:
            self.loop = None
            self.engine.clear_loop()
        else:
            self.loop = (start, end)
            self.engine.set_loop(start, end)
            self.engine.seek(start)
        self.loopChanged.emit(self.loop)

    # -- blind listening ----------------------------------------------------------------------
    def open_blind(self, kind: str) -> None:
        """Start a blind test ("abx", "ab" or "mushra"); while it hides identities nothing reveals them."""
        from deepaq_gui.blind import tracks_from_session
        from deepaq_gui.blind_panel import AbxPanel, BlindAbPanel
        from deepaq_gui.mushra import MushraPage, paths_from_session

        s = self.session
        if s.reference is None or not s.versions:
            self.say("Open a reference and at least one degraded version before a listening test.", "info")
            return
        self.close_blind()
        if kind == "abx":
            w = AbxPanel(self.engine, tracks_from_session(s))
        elif kind == "ab":
            w = BlindAbPanel(self.engine, tracks_from_session(s))
        else:
            w = MushraPage(self.engine, 0, list(range(1, len(s.versions) + 1)), None, paths=paths_from_session(s))
        w.messageRequested.connect(self.say)
        w.identityHidden.connect(lambda _hidden: self.refresh.emit(False))
        self.blind = w
        self.blindOpened.emit(w, {"abx": "Blind ABX", "ab": "Blind A/B", "mushra": "MUSHRA"}[kind])
        self.refresh.emit(False)

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
        self.blind = None
        self.blindClosed.emit()
        self.engine.select(min(self.current, max(0, self.engine.track_count - 1)))
        self.refresh.emit(False)

    # -- session files ------------------------------------------------------------------------
    def session_extra(self) -> dict:
        return {"current": self.current, "shown_version": self.shown_version,
                "loop": list(self.loop) if self.loop else None, "blind_logs": self.blind_logs}

    def save_session(self, path: str) -> bool:
        """Write the session file; errors become messages."""
        from deepaq_gui.session_file import add_recent, save_session, with_suffix

        path = str(with_suffix(path))
        try:
            save_session(self.session, path, extra=self.session_extra())
        except (DeePAQError, OSError) as exc:
            self.say(str(exc))
            return False
        self.session_path = path
        add_recent(path)
        self.say(f"Saved {os.path.basename(path)}.", "info")
        return True

    def load_session_file(self, path: str) -> None:
        """Reopen a session in a worker; unchanged files keep their results (no rescoring)."""
        from deepaq_gui.session_file import load_session_job

        self._new_epoch()
        epoch = self._epoch
        self.start(load_session_job(path), show_progress=True,
                   finished=lambda loaded: self._session_loaded(loaded) if epoch == self._epoch else None)

    def _session_loaded(self, loaded) -> None:
        from deepaq_gui.session_file import add_recent, autosave_path

        self._cancel_stale()
        self.close_blind()
        self.session = loaded.session
        self.session.subscribe(self._session_changed)
        self.settingsLoaded.emit(self.session.settings)
        self.blind_logs = list(loaded.blind_logs)
        self.current, self.shown_version = loaded.current, loaded.shown_version
        for m in loaded.messages:
            self.say(m, "warning")  # a changed file is said out loud, never rescored silently
        self.prepare_audio()
        self.refresh.emit(False)
        if loaded.loop:
            self.set_loop(*loaded.loop)
        if str(loaded.path) != str(autosave_path()):
            self.session_path = str(loaded.path)
            add_recent(str(loaded.path))
        self.rescore()

    # -- export -------------------------------------------------------------------------------
    def export(self, kind: str, path: str) -> None:
        """Write an export; errors become messages.

        Never onto one of the session's audio files, and through a temporary file in the same
        folder that replaces ``path`` only once complete (a failed export leaves it as it was).
        Images of the window and views come from :attr:`render` (set by the window).
        """
        from deepaq_core.validation import check_output_paths
        from deepaq_gui.views import export

        s = self.session
        names = {i: v.name for i, v in enumerate(s.versions)}
        final = path
        inputs = [t.path for t in [s.reference, *s.versions] if t is not None]
        try:
            check_output_paths({"export": final}, inputs=inputs)
        except DeePAQError as exc:
            self.say(str(exc))
            return
        head, tail = os.path.split(os.path.abspath(final))
        stem, ext = os.path.splitext(tail)
        path = os.path.join(head, f".{stem}.{os.getpid()}.tmp{ext}")  # same suffix: writers go by it
        try:
            if kind == "csv":
                export.export_curves_csv(s.results, names, path)
            elif kind == "json":
                export.export_scores_json(s.results, names, path)
            elif kind == "report":
                from deepaq_gui.report import make_report

                make_report(path, s, s.results, images=self.report_images())
            elif self.render is not None:
                self.render(kind, path)
            if not os.path.exists(path):
                raise OSError(f"nothing was written for '{kind}'")
            os.replace(path, final)
            self.say(f"Exported {os.path.basename(final)}.", "info")
        except DeePAQError as exc:
            self.say(str(exc))
        except OSError as exc:
            self.say(f"Cannot write '{os.path.basename(final)}': {exc.strerror or exc}.")
        finally:
            if os.path.exists(path):
                try:
                    os.remove(path)
                except OSError:
                    pass

    def close(self) -> None:
        """Stop every job and the audio (the window is closing)."""
        for w in list(self.workers):
            w.cancel()
        self.engine.close()
        self.pool.waitForDone(5000)
        self.score_pool.waitForDone(5000)
