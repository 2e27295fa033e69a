"""Where batch pairs are scored: worker processes on this machine, or a Dask cluster.

Both engines run :func:`score_task` on workers that each load the model once (a per-process,
per-thread cache: :func:`worker_scorer`) and yield ``(index, outcome)`` as pairs finish, in
completion order. At most ``window`` pairs are in flight at once, so a corpus of millions of pairs
never becomes millions of pending tasks; the caller writes each row to the durable results file as
it arrives (:class:`~deepaq_core.batch.ResultsFile` puts them in input order at the end).

* :class:`LocalEngine`: :class:`concurrent.futures.ProcessPoolExecutor` with ``spawn``d processes
  (safe with torch threads and CUDA). ``devices`` gives one process per listed device.
* :class:`DaskEngine`: a running Dask cluster (``distributed.Client(address)``), the optional
  ``cluster`` extra. Tasks carry the pair's paths (the workers must see the same files) and are
  retried on errors; a task whose worker dies is rescheduled by the scheduler, and one that keeps
  killing workers becomes an error row.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from deepaq_core.errors import DeePAQError, OptionError

log = logging.getLogger(__name__)

# How long to try reaching a Dask scheduler, seconds.
CONNECT_TIMEOUT_S = 10.0
# The devices a --devices list may name (plus "all").
_DEVICE_WORDS = ("cpu", "cuda", "mps", "auto")


@dataclass(frozen=True)
class ScorerSpec:
    """Everything a worker needs to make the same :class:`~deepaq_core.scoring.Scorer` as the driver."""

    model: str | None = None
    device: str = "auto"
    settings: Any = None
    allow_unverified: bool = False


@dataclass(frozen=True)
class PairScore:
    """The numbers a results row needs (a few hundred bytes instead of a full result)."""

    score: float
    distance: float
    offset_ms: float
    gain_db: float
    flags: tuple[str, ...]
    duration_s: float
    degraded_path: str

    @classmethod
    def of(cls, result) -> PairScore:
        return cls(float(result.score), float(result.distance), float(result.alignment.lag_ms),
                   float(result.gain_db), tuple(result.flags), float(result.degraded.duration_s),
                   result.degraded.path)


# -- the worker side ---------------------------------------------------------------------------
_local = threading.local()
_process_device: str | None = None  # set by LocalEngine's initializer (one device per process)
_malloc_checked = False
_worker_threads = 0  # set by LocalEngine's initializer: CPU threads per worker process (0: the default)


def keep_freed_memory() -> bool:
    """Undo the allocator setting Dask's nanny gives its workers (``MALLOC_TRIM_THRESHOLD_``).

    glibc then hands every array over 128 KiB back to the system when it is freed (the setting
    also switches off glibc's adaptive mmap threshold), so each of the many large arrays of a pair
    is mapped and zero-filled again: scoring 10 s pairs measured about 2-3x slower. There is no
    library or Dask option for a process that is already running; glibc's own ``mallopt`` restores
    its defaults' behaviour (arrays up to 32 MiB reuse freed memory; up to 64 MiB kept). Returns
    whether it was applied (Linux with glibc, the variable set, and no mmap threshold of the user's).
    """
    if not sys.platform.startswith("linux") or "MALLOC_TRIM_THRESHOLD_" not in os.environ \
            or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, 32 << 20)) and bool(mallopt(m_trim_threshold, 64 << 20))


def worker_scorer(spec: ScorerSpec):
    """The worker's Scorer for ``spec``: made on first use, then reused (one per thread)."""
    from deepaq_core.scoring import Scorer

    global _malloc_checked
    cached = getattr(_local, "scorer", None)
    if cached is not None and cached[0] == spec:
        return cached[1]
    if not _malloc_checked:
        _malloc_checked = True
        if keep_freed_memory():
            log.info("allocator: freed memory up to 64 MiB is kept for reuse (MALLOC_TRIM_THRESHOLD_ was set)")
    device = _process_device or spec.device
    scorer = Scorer(spec.model, device, spec.settings, allow_unverified=spec.allow_unverified)
    if _worker_threads > 0 and "torch" in sys.modules:  # the model needed torch
        import torch

        torch.set_num_threads(_worker_threads)
    _local.scorer = (spec, scorer)  # one at a time: a new spec replaces the old model
    return scorer


def score_task(spec: ScorerSpec, index: int, reference, degraded, full: bool = False):
    """Score one pair on a worker: ``(index, QualityResult | PairScore | PairError)``.

    A pair that cannot be read or scored gives a :class:`~deepaq_core.batch.PairError`; a model
    that cannot be loaded raises (the whole run stops, as it would in one process).
    """
    from deepaq_core.batch import PairError

    scorer = worker_scorer(spec)
    try:
        result = scorer.score(reference, degraded)
    except DeePAQError as exc:
        return index, PairError(index, str(reference), str(degraded), str(exc))
    return index, (result if full else PairScore.of(result))


def worker_version() -> str:
    import deepaq_core

    return deepaq_core.__version__


def _init_local_worker(devices, threads: int) -> None:
    """ProcessPoolExecutor initializer: take a device, set the model's CPU threads, follow the parent.

    The driver handles Ctrl-C and SIGTERM (it stops the pool), so workers ignore them. A worker
    whose driver was killed (SIGKILL) would wait forever for work; a thread waits on the
    parent's sentinel (multiprocessing's own handle for it) and ends the process then.
    """
    import multiprocessing
    import signal

    global _process_device
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        def follow() -> None:
            parent.join()
            os._exit(1)

        threading.Thread(target=follow, name="deepaq-follow-parent", daemon=True).start()
    try:
        _process_device = devices.get_nowait()
    except Exception:  # queue.Empty: more processes than devices listed (not expected)
        _process_device = None
    global _worker_threads
    if threads > 0:
        from deepaq_core.model.cpu_model import set_cpu_threads

        _worker_threads = threads
        set_cpu_threads(threads)  # the built-in model on the CPU (numpy); torch's, once a model loads it


# -- devices -----------------------------------------------------------------------------------
def parse_devices(text: str, workers: int | None = None) -> list[str]:
    """The devices of ``--devices``: comma-separated names (``cpu``, ``cuda``, ``cuda:N``, ``mps``,
    ``auto``; a name may repeat to run several processes on one device), or ``all``: one process
    per visible CUDA GPU, or ``workers`` (default 1) CPU processes when there is none.

    Raises :class:`~deepaq_core.errors.OptionError` (one sentence) for a name that is not a device,
    and :class:`~deepaq_core.errors.ModelError` for one that is not available here.
    """
    from deepaq_core.model.device import resolve_device

    names = [n.strip().lower() for n in (text or "").split(",")]
    if names == ["all"]:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count:
            return [f"cuda:{k}" for k in range(count)]
        log.warning("--devices all: no CUDA GPU here; using %d CPU process(es)", workers or 1)
        return ["cpu"] * (workers or 1)
    for name in names:
        base, _, number = name.partition(":")
        if base not in _DEVICE_WORDS or (number and (base != "cuda" or not number.isdigit())):
            raise OptionError(f"--devices takes device names such as cpu,cuda:0,cuda:1 (or all), not '{text}'.")
    for name in dict.fromkeys(names):
        dev = resolve_device(name)
        if dev.type == "cuda" and dev.index is not None:
            import torch

            if dev.index >= torch.cuda.device_count():
                from deepaq_core.errors import ModelError

                raise ModelError(f"Device '{name}' was requested but this machine has "
                                 f"{torch.cuda.device_count()} CUDA GPU(s).")
    return names


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# -- engines -----------------------------------------------------------------------------------
class WorkerLost(DeePAQError):
    """A local worker process stopped (killed, out of memory); the pool cannot go on."""


class _Engine:
    """What both engines share: at most ``window`` pairs in flight (pairs finished but held back
    for ``in_order`` count too), results yielded as they finish or in task order."""

    window = 8

    def run(self, tasks: Iterable[tuple], full: bool = False, in_order: bool = False
            ) -> Iterator[tuple[int, Any]]:
        """Score ``(index, reference, degraded)`` tasks; yield ``(index, outcome)`` as they finish
        (or in the order of ``tasks`` with ``in_order``). ``full``: outcomes are QualityResults
        rather than :class:`PairScore`."""
        it = iter(tasks)
        inflight: dict[Any, tuple] = {}
        order: deque = deque()
        held: dict[int, Any] = {}

        def fill() -> None:
            while len(inflight) + len(held) < self.window:
                task = next(it, None)
                if task is None:
                    return
                inflight[self._submit(task, full)] = task
                order.append(task[0])

        fill()
        while inflight:
            for handle in self._wait(list(inflight)):
                task = inflight.pop(handle)
                index, outcome = self._outcome(handle, task)
                if in_order:
                    held[index] = outcome
                else:
                    yield index, outcome
            while in_order and order and order[0] in held:
                index = order.popleft()
                yield index, held.pop(index)
            if not in_order:
                order.clear()
            fill()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close(kill=exc[0] is not None)


class LocalEngine(_Engine):
    """Worker processes on this machine (``--workers N`` or ``--devices LIST``).

    Parameters
    ----------
    spec : ScorerSpec
    devices : list of str
        One process per entry (e.g. ``["cpu", "cpu"]`` or ``["cuda:0", "cuda:1"]``).
    window : int, optional
        Pairs in flight at once (default: 2 per process).
    """

    def __init__(self, spec: ScorerSpec, devices: Sequence[str], window: int | None = None) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.spec, self.devices = spec, list(devices)
        self.window = window or 2 * len(self.devices)
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        for d in self.devices:
            queue.put(d)
        cpu_procs = sum(1 for d in self.devices if not d.startswith(("cuda", "mps")))
        # torch's threads shared out so that the processes do not oversubscribe the cores
        threads = max(1, _cpu_count() // max(1, cpu_procs))
        self.pool = ProcessPoolExecutor(max_workers=len(self.devices), mp_context=ctx,
                                        initializer=_init_local_worker, initargs=(queue, threads))
        self.describe = f"{len(self.devices)} local worker processes ({', '.join(self.devices)})"

    def _submit(self, task: tuple, full: bool):
        return self.pool.submit(score_task, self.spec, *task, full)

    def _wait(self, handles: list) -> list:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(handles, return_when=FIRST_COMPLETED)
        return [h for h in handles if h in done]

    def _outcome(self, handle, task: tuple):
        from concurrent.futures.process import BrokenProcessPool

        try:
            return handle.result()
        except BrokenProcessPool:
            raise WorkerLost("A worker process stopped unexpectedly (killed, or out of memory)") from None

    def close(self, kill: bool = False) -> None:
        """Stop the workers: after their current pair, or at once (``kill``, e.g. on SIGTERM)."""
        if kill:
            self.pool.shutdown(wait=False, cancel_futures=True)
            # ProcessPoolExecutor has no public way to stop busy workers before Python 3.14
            # (terminate_workers); their pairs in progress would not be written anyway.
            for p in list((getattr(self.pool, "_processes", None) or {}).values()):
                try:
                    p.kill()
                except Exception:  # already gone
                    pass
        self.pool.shutdown(wait=True, cancel_futures=True)


class DaskEngine(_Engine):
    """Pairs scored on a running Dask cluster (``--cluster ADDRESS``).

    Parameters
    ----------
    address : str
        The scheduler's address (``tcp://host:8786``), or a scheduler file (``.json``) written by
        ``dask scheduler --scheduler-file``.
    spec : ScorerSpec
        The model and settings; each worker thread loads the model once, on its first pair.
    retries : int
        Extra tries of a pair whose task raised. A worker that dies is handled by the scheduler:
        its pairs go to other workers; a pair that kills ``distributed.scheduler.allowed-failures``
        + 1 workers becomes an error row.
    window : int, optional
        Pairs in flight at once (default: 4 per worker thread, at least 8).
    """

    def __init__(self, address: str, spec: ScorerSpec, retries: int = 2, window: int | None = None,
                 timeout: float | None = None) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise OptionError("--cluster needs the cluster extra: pip install 'deepaq[cluster]'.") from None
        self.spec, self.retries = spec, retries
        kwargs: dict[str, Any] = {"timeout": timeout or CONNECT_TIMEOUT_S, "set_as_default": False}
        if address.endswith(".json") and os.path.isfile(address):
            kwargs["scheduler_file"] = address
        else:
            kwargs["address"] = address
        try:
            self.client = Client(**kwargs)
        except (OSError, TimeoutError, ValueError) as exc:
            reason = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
            raise DeePAQError(f"Cannot reach the Dask scheduler at '{address}': {reason}.") from None
        try:
            self._check_workers()
        except BaseException:
            self.client.close()
            raise
        nthreads = self.client.nthreads()
        threads = sum(nthreads.values())
        self.window = window or max(8, 4 * threads)
        self.token = uuid.uuid4().hex[:8]
        self.keys: dict[int, str] = {}  # row index -> task key (for inspecting the scheduler)
        from distributed import as_completed

        self._ac = as_completed(loop=self.client.loop)  # our client is not the process's default one
        self.describe = f"the Dask cluster at {address} ({len(nthreads)} workers, {threads} threads)"

    def _check_workers(self) -> None:
        import deepaq_core

        try:
            versions = self.client.run(worker_version)
        except Exception as exc:  # ModuleNotFoundError raised on a worker, or a lost connection
            raise DeePAQError(f"The cluster's workers cannot run deepaq ({type(exc).__name__}: "
                              f"{' '.join(str(exc).split())}); install it on every worker.") from None
        other = {a: v for a, v in versions.items() if v != deepaq_core.__version__}
        if other:
            addr, version = next(iter(other.items()))
            raise DeePAQError(f"The cluster's worker {addr} has deepaq {version}, not {deepaq_core.__version__}; "
                              f"install the same version on every worker.")
        if not versions:
            log.warning("the Dask cluster has no workers yet; pairs wait until one joins")

    def _submit(self, task: tuple, full: bool):
        key = f"deepaq-pair-{self.token}-{task[0]}"
        fut = self.client.submit(score_task, self.spec, *task, full, key=key, retries=self.retries, pure=False)
        self.keys[task[0]] = key
        self._ac.add(fut)
        return fut

    def _wait(self, handles: list) -> list:
        return self._ac.next_batch(block=True)

    def _outcome(self, handle, task: tuple):
        from distributed import KilledWorker

        from deepaq_core.batch import PairError

        try:
            if handle.status == "error":
                exc = handle.exception()
                if isinstance(exc, KilledWorker):
                    index, reference, degraded = task
                    return index, PairError(index, str(reference), str(degraded),
                                            "The pair stopped every worker that tried to score it (a crash, or "
                                            "out of memory).")
                raise exc
            return handle.result()
        finally:
            handle.release()

    def close(self, kill: bool = False) -> None:
        """Cancel what is still queued and disconnect (the cluster keeps running)."""
        try:
            if kill and self.client.futures:
                self.client.cancel(list(self.client.futures.values()))
        except Exception:  # the connection may already be gone
            pass
        self.client.close()


def iter_scored(tasks: Iterable[tuple], spec: ScorerSpec, *, workers: int = 1, devices: Sequence[str] | None = None,
                cluster: str | None = None, retries: int = 2, full: bool = False, in_order: bool = False
                ) -> Iterator[tuple[int, Any]]:
    """``(index, outcome)`` for ``(index, reference, degraded)`` tasks, as they finish (or in
    order), on the engine asked for; the engine is closed when the iterator ends or is closed."""
    engine = make_engine(spec, workers=workers, devices=devices, cluster=cluster, retries=retries)
    finished = False
    try:
        yield from engine.run(tasks, full=full, in_order=in_order)
        finished = True
    finally:
        engine.close(kill=not finished)


def make_engine(spec: ScorerSpec, *, workers: int = 1, devices: Sequence[str] | None = None,
                cluster: str | None = None, retries: int = 2):
    """A :class:`DaskEngine` for ``cluster``, else a :class:`LocalEngine` with one process per
    device (``devices``) or ``workers`` processes on ``spec.device``."""
    if cluster:
        return DaskEngine(cluster, spec, retries=retries)
    return LocalEngine(spec, list(devices) if devices else [spec.device] * workers)
