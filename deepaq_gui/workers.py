"""One generic worker that runs core functions and generators off the UI thread.

Modelled on napari/superqt's generator workers: the job is a callable that receives a cancel
``threading.Event`` and returns either a value or a generator. A generator may yield
:class:`~deepaq_core.scoring.Progress` (shown as progress) or anything else (forwarded as a partial
result); its return value is the final result. Results cross to the UI thread by queued signals
and are immutable (frozen dataclasses), so the worker never touches widgets.

``run_sync`` runs the same job on the calling thread, which keeps the logic testable without an
event loop.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Generator
from typing import Any

from PySide6 import QtCore

from deepaq_core.errors import Cancelled, DeePAQError
from deepaq_core.scoring import Progress

log = logging.getLogger(__name__)

Job = Callable[[threading.Event], Any]


class WorkerSignals(QtCore.QObject):
    """Signals of a :class:`Worker` (a QRunnable cannot own signals itself)."""

    progress = QtCore.Signal(float, str)
    partial = QtCore.Signal(object)
    finished = QtCore.Signal(object)
    #: (one-sentence message, traceback text or "" for user-caused errors)
    errored = QtCore.Signal(str, str)
    cancelled = QtCore.Signal()
    done = QtCore.Signal()  # always last, whatever the outcome


class Worker(QtCore.QRunnable):
    """Runs ``job(cancel_event)`` in the global thread pool.

    ``tag`` is an opaque value (e.g. the session generation) the receiver uses to drop results of
    stale work.
    """

    def __init__(self, job: Job, tag: Any = None) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the owner keeps a reference to cancel it
        self.job = job
        self.tag = tag
        self.signals = WorkerSignals()
        self.cancel_event = threading.Event()
        self.running = False
        self.is_done = False

    def cancel(self) -> None:
        """Ask the job to stop at its next check; the worker then emits ``cancelled``."""
        self.cancel_event.set()

    def run(self) -> None:  # noqa: D401 - QRunnable API
        self.running = True
        try:
            run_sync(self.job, self.cancel_event, self.signals.progress.emit, self.signals.partial.emit,
                     self.signals.finished.emit, self.signals.errored.emit, self.signals.cancelled.emit)
        finally:
            self.running = False
            self.is_done = True
            self.signals.done.emit()

    def start(self, pool: QtCore.QThreadPool | None = None) -> "Worker":
        (pool or QtCore.QThreadPool.globalInstance()).start(self)
        return self


def run_sync(job: Job, cancel: threading.Event, on_progress: Callable[[float, str], None],
             on_partial: Callable[[Any], None], on_finished: Callable[[Any], None],
             on_error: Callable[[str, str], None], on_cancelled: Callable[[], None]) -> None:
    """Run a job to completion on this thread, reporting through the callbacks."""
    try:
        out = job(cancel)
        if isinstance(out, Generator):
            while True:
                if cancel.is_set():
                    out.close()
                    raise Cancelled("cancelled")
                try:
                    item = next(out)
                except StopIteration as stop:
                    out = stop.value
                    break
                if isinstance(item, Progress):
                    on_progress(float(item.fraction), item.message)
                else:
                    on_partial(item)
        on_finished(out)
    except Cancelled:
        on_cancelled()
    except DeePAQError as exc:
        on_error(str(exc), "")
    except MemoryError:
        on_error("Not enough memory for this job; try shorter files or fewer versions.", traceback.format_exc())
    except Exception as exc:  # unexpected: logged with its traceback by the receiver
        on_error(f"Unexpected error: {exc.__class__.__name__}: {exc}", traceback.format_exc())
