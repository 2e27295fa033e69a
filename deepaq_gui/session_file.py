"""Session files (``*.deepaq.json``), autosave and the recent-sessions list.

A session file records what the user had open and what was computed::

    {"format": "deepaq.session", "version": 1, "saved": "2024-...",
     "reference": {"path": "ref.wav", "absolute_path": "/music/ref.wav", "sha256": "...", "label": "..."},
     "versions": [{"path": ..., "absolute_path": ..., "sha256": ..., "label": ..., "result": {...} or null}],
     "settings": {...ScoreSettings...}, "model": "compact" or null,
     "extra": {...caller's view state, e.g. "current", "shown_version", "loop", "blind_logs"...}}

Paths are stored relative to the session file's folder (so a folder moved with its session
still opens) and absolute (so a session file moved alone still opens). Loading re-reads every
file and compares its SHA-256 with the saved one:

* unchanged: the saved result is restored, nothing is recomputed;
* changed: the result is dropped and a one-sentence message says so (the caller rescores it,
  visibly: :attr:`LoadedSession.messages` must be shown);
* missing or unreadable: reported, and the version left out;
* the reference missing or unreadable: :class:`DeePAQError` (one sentence).

:func:`load_session` does no Qt work and may run in a worker (:func:`load_session_job`).
:class:`Autosaver` saves a session snapshot every few seconds when it changed;
:func:`add_recent` / :func:`recent_sessions` keep the File > Open recent list in QSettings.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6 import QtCore

from deepaq_core.errors import Cancelled, DeePAQError
from deepaq_core.results import QualityResult
from deepaq_core.results_io import result_from_json, result_to_json
from deepaq_core.scoring import Progress, ScoreSettings
from deepaq_gui.session import Session, Track

log = logging.getLogger(__name__)

FORMAT = "deepaq.session"
VERSION = 1
SESSION_SUFFIX = ".deepaq.json"
SESSION_FILTER = "DeePAQ sessions (*.deepaq.json);;All files (*)"
MAX_RECENT = 8
RECENT_KEY = "recent_sessions"


# =========================================================================================
# saving


def session_to_json(session: Session, path: str | os.PathLike, *, extra: dict | None = None) -> dict:
    """The session document for a file at ``path`` (paths are made relative to its folder)."""
    if session.reference is None:
        raise DeePAQError("There is nothing to save: open a reference first.")
    base = os.path.dirname(os.path.abspath(os.fspath(path)))
    versions = []
    for i, track in enumerate(session.versions):
        entry = _track_entry(track, base)
        result = session.results.get(i)
        entry["result"] = _cached_result_json(result) if result is not None else None
        versions.append(entry)
    return {
        "format": FORMAT,
        "version": VERSION,
        "saved": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "reference": _track_entry(session.reference, base),
        "versions": versions,
        "settings": _json_safe(dataclasses.asdict(session.settings)),
        "model": session.model_name,
        "extra": _json_safe(dict(extra or {})),
    }


def save_session(session: Session, path: str | os.PathLike, *, extra: dict | None = None) -> None:
    """Write ``session`` to ``path`` (JSON; atomically: a crash mid-write leaves the old file).

    Parameters
    ----------
    session : Session
        Reference, versions (with their labels), settings, model name and ``session.results``.
    path : str or os.PathLike
        Conventionally ends in :data:`SESSION_SUFFIX` (see :func:`with_suffix`).
    extra : dict, optional
        The caller's state, stored as given (JSON values; non-finite floats become null) and
        returned by :func:`load_session` as :attr:`LoadedSession.extra`. Keys the loader
        understands: ``"current"`` (0 = reference, i = version i), ``"shown_version"``
        (0-based), both remapped when versions are left out; ``"loop"`` ([start_s, end_s] or
        None); ``"blind_logs"`` (list of dicts, opaque).

    Raises
    ------
    DeePAQError
        No reference is open, ``path`` is one of the session's audio files, or the file cannot
        be written (one sentence).
    """
    from deepaq_core.validation import same_file

    path = os.path.abspath(os.fspath(path))
    for track in [session.reference, *session.versions]:  # never onto one of its own audio files
        if track is not None and same_file(path, track.path):
            raise DeePAQError(f"The session file would replace the audio file '{os.path.basename(track.path)}'; "
                              "choose another name.")
    doc = session_to_json(session, path, extra=extra)
    _write_text(json.dumps(doc, allow_nan=False, separators=(",", ":")), path)


def _encode_yielding(doc: dict) -> str:
    """JSON text of ``doc`` from the pure-Python encoder, for a background thread.

    ``json.dumps`` encodes in one C call that holds the GIL throughout (about 50 ms for a session
    with a few 5-minute results), which would stall the UI thread even from another thread; the
    chunked encoder lets the interpreter switch threads between pieces.
    """
    return "".join(json.JSONEncoder(allow_nan=False, separators=(",", ":")).iterencode(doc))


def _write_text(text: str, path: str) -> None:
    """Write ``text`` + newline to ``path`` atomically (temporary file, then rename)."""
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.write("\n")
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise DeePAQError(f"The session '{os.path.basename(path)}' could not be written ({exc.strerror or exc}).") from exc


def with_suffix(path: str | os.PathLike) -> str:
    """``path`` ending in ``.deepaq.json`` (appended unless it is there already)."""
    p = os.fspath(path)
    if p.lower().endswith(SESSION_SUFFIX):
        return p
    if p.lower().endswith(".json"):
        p = p[:-5]
    return p + SESSION_SUFFIX


def _track_entry(track: Track, base: str) -> dict:
    absolute = os.path.abspath(track.path)
    try:
        rel = os.path.relpath(absolute, base)
    except ValueError:  # another drive (Windows): relative is impossible
        rel = absolute
    return {"path": rel.replace(os.sep, "/") if not os.path.isabs(rel) else rel, "absolute_path": absolute,
            "sha256": track.info.sha256, "label": track.label}


# Serialising a result costs a few ms per 100k numbers; an autosave every few seconds must not
# redo it for results that did not change. Results are immutable, so (id, object) is a safe key
# as long as the object is kept alive with its JSON.
_RESULT_CACHE: dict[int, tuple[QualityResult, dict]] = {}
_RESULT_CACHE_MAX = 64


def _cached_result_json(result: QualityResult) -> dict:
    hit = _RESULT_CACHE.get(id(result))
    if hit is not None and hit[0] is result:
        return hit[1]
    d = result_to_json(result)
    if len(_RESULT_CACHE) >= _RESULT_CACHE_MAX:
        _RESULT_CACHE.pop(next(iter(_RESULT_CACHE)))
    _RESULT_CACHE[id(result)] = (result, d)
    return d


def _json_safe(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if v is None or isinstance(v, (str, int, bool)):
        return v
    try:  # numpy scalars and the like
        import numpy as np

        if isinstance(v, np.generic):
            return _json_safe(v.item())
        if isinstance(v, np.ndarray):
            return _json_safe(v.tolist())
    except ImportError:  # pragma: no cover
        pass
    return str(v)


# =========================================================================================
# loading


@dataclass
class LoadedSession:
    """What :func:`load_session` rebuilt.

    Attributes
    ----------
    path : str
        The session file.
    session : Session
        A new session: reference, the versions that could be read (saved order, labels kept),
        settings, model name, and the results of unchanged files in ``session.results``.
    messages : list of str
        One sentence per problem (changed, missing or unreadable file); show them all.
    rescore : list of int
        Version indices (in ``session``) whose saved result was discarded because the file
        changed, or that had no result: the caller rescores them (``session.missing_results()``).
    index_map : dict of int to int
        Saved version index -> index in ``session`` (versions left out are absent).
    extra : dict
        The ``extra`` passed to :func:`save_session`, with ``"current"`` and ``"shown_version"``
        remapped to the new indices.
    saved : str
        When the file was written (ISO 8601), "" if unknown.
    """

    path: str
    session: Session
    messages: list[str] = field(default_factory=list)
    rescore: list[int] = field(default_factory=list)
    index_map: dict[int, int] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    saved: str = ""

    @property
    def blind_logs(self) -> list[dict]:
        """The blind-test logs saved in ``extra["blind_logs"]`` (empty list if none)."""
        logs = self.extra.get("blind_logs")
        return list(logs) if isinstance(logs, list) else []

    @property
    def loop(self) -> tuple[float, float] | None:
        """``extra["loop"]`` as (start_s, end_s), or None."""
        loop = self.extra.get("loop")
        try:
            start, end = (float(v) for v in loop)
        except (TypeError, ValueError):
            return None
        return (start, end) if math.isfinite(start) and math.isfinite(end) and end > start else None

    @property
    def current(self) -> int:
        """Track to select: 0 = reference, i = version i (1-based), clamped to what loaded."""
        cur = self.extra.get("current", 0)
        return cur if isinstance(cur, int) and 0 <= cur <= len(self.session.versions) else 0

    @property
    def shown_version(self) -> int:
        """0-based version shown in the waveform / spectrogram / heatmaps, clamped."""
        v = self.extra.get("shown_version", 0)
        return v if isinstance(v, int) and 0 <= v < max(1, len(self.session.versions)) else 0


def read_session_document(path: str | os.PathLike) -> dict:
    """Parse and check a session file (format and version) without reading any audio."""
    p = os.fspath(path)
    name = os.path.basename(p)
    try:
        with open(p, encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise DeePAQError(f"The session '{name}' does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DeePAQError(f"The session '{name}' could not be read ({getattr(exc, 'strerror', None) or exc}).") from exc
    except json.JSONDecodeError as exc:
        raise DeePAQError(f"The session '{name}' is not valid JSON (line {exc.lineno}); it may be damaged.") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DeePAQError(f"'{name}' is not a DeePAQ session file.")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DeePAQError(f"The session '{name}' has an invalid format version ({version!r}).")
    if version > VERSION:
        raise DeePAQError(f"The session '{name}' was saved by a newer DeePAQ (session format {version}); "
                          "update DeePAQ to open it.")
    if not isinstance(doc.get("reference"), dict):
        raise DeePAQError(f"The session '{name}' names no reference file; it may be damaged.")
    return doc


def load_session(path: str | os.PathLike, progress: Callable[[float, str], None] | None = None,
                 cancel: threading.Event | Callable[[], bool] | None = None) -> LoadedSession:
    """Read a session file and every audio file it names (see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
    progress : callable, optional
        ``progress(fraction, message)`` per file read.
    cancel : threading.Event or callable, optional
        Checked between files; raises :class:`~deepaq_core.errors.Cancelled`.

    Returns
    -------
    LoadedSession

    Raises
    ------
    DeePAQError
        The session file is missing, damaged or from a newer DeePAQ, or its reference is
        missing or unreadable (one sentence).
    """
    gen = iter_load_session(path, cancel)
    try:
        while True:
            item = next(gen)
            if progress is not None:
                progress(item.fraction, item.message)
    except StopIteration as stop:
        return stop.value


def load_session_job(path: str | os.PathLike):
    """A :class:`deepaq_gui.workers.Worker` job: ``job(cancel)`` yields Progress, returns LoadedSession."""

    def job(cancel: threading.Event) -> Generator[Progress, None, LoadedSession]:
        return (yield from iter_load_session(path, cancel))

    return job


def iter_load_session(path: str | os.PathLike, cancel: threading.Event | Callable[[], bool] | None = None
                      ) -> Generator[Progress, None, LoadedSession]:
    """:func:`load_session` as a generator of :class:`Progress` items."""
    path = os.path.abspath(os.fspath(path))
    doc = read_session_document(path)
    base = os.path.dirname(path)
    entries = [e for e in (doc.get("versions") or []) if isinstance(e, dict)]
    total = 1 + len(entries)
    messages: list[str] = []

    # -- reference -----------------------------------------------------------------------
    ref_entry = doc["reference"]
    ref_name = _entry_name(ref_entry)
    yield Progress(0.0, f"Reading {ref_name}")
    ref_path = _locate(ref_entry, base)
    if ref_path is None:
        raise DeePAQError(f"The reference '{ref_name}' of this session was not found (looked for "
                          f"{_entry_where(ref_entry, base)}).")
    try:
        reference = Session.read_track(ref_path, label=_label(ref_entry, ref_path))
    except DeePAQError as exc:
        raise DeePAQError(f"The reference of this session cannot be opened: {exc}") from exc
    ref_changed = reference.info.sha256 != ref_entry.get("sha256")
    if ref_changed:
        messages.append(f"The reference '{reference.name}' has changed since the session was saved; all results "
                        "were discarded and every version will be rescored.")

    session = Session()
    session.set_reference(reference)
    session.settings = _settings(doc.get("settings"), messages)
    model = doc.get("model")
    session.model_name = model if isinstance(model, str) else None

    # -- versions ------------------------------------------------------------------------
    index_map: dict[int, int] = {}
    rescore: list[int] = []
    for old, entry in enumerate(entries):
        _check_cancel(cancel)
        name = _entry_name(entry)
        yield Progress((1 + old) / total, f"Reading {name}")
        where = _locate(entry, base)
        if where is None:
            messages.append(f"'{name}' was not found ({_entry_where(entry, base)}); it was left out of the session.")
            continue
        try:
            track = Session.read_track(where, label=_label(entry, where))
        except DeePAQError as exc:
            messages.append(f"'{name}' could not be read and was left out of the session: {exc}")
            continue
        try:
            new = session.add_version(track)
        except DeePAQError as exc:
            messages.append(str(exc))
            continue
        index_map[old] = new
        changed = track.info.sha256 != entry.get("sha256")
        saved_result = entry.get("result")
        if changed:
            what = "its result was discarded and it" if saved_result else "it"
            messages.append(f"'{track.name}' has changed since the session was saved; {what} will be rescored.")
            rescore.append(new)
            continue
        if ref_changed or not saved_result:
            rescore.append(new)
            continue
        result = _restore_result(saved_result, reference, track, messages)
        if result is None:
            rescore.append(new)
        else:
            session.set_result(new, result)
    yield Progress(1.0, "Session loaded")

    extra = doc.get("extra") if isinstance(doc.get("extra"), dict) else {}
    extra = dict(extra)
    cur = extra.get("current")
    if isinstance(cur, int) and not isinstance(cur, bool):
        extra["current"] = 0 if cur == 0 else index_map.get(cur - 1, -1) + 1
    shown = extra.get("shown_version")
    if isinstance(shown, int) and not isinstance(shown, bool):
        extra["shown_version"] = index_map.get(shown, 0)
    session.generation += 1
    return LoadedSession(path=path, session=session, messages=messages, rescore=rescore, index_map=index_map,
                         extra=extra, saved=str(doc.get("saved", "")))


def _restore_result(d: dict, reference: Track, track: Track, messages: list[str]) -> QualityResult | None:
    try:
        result = result_from_json(d)
    except DeePAQError as exc:
        messages.append(f"The saved result of '{track.name}' could not be restored ({exc}); it will be rescored.")
        return None
    if not isinstance(result, QualityResult):
        return None
    if result.reference.sha256 != reference.info.sha256 or result.degraded.sha256 != track.info.sha256:
        log.warning("saved result of %s belongs to other files; it will be recomputed", track.name)
        return None
    return result


def _settings(d: Any, messages: list[str]) -> ScoreSettings:
    if not isinstance(d, dict):
        return ScoreSettings()
    known = {f.name for f in dataclasses.fields(ScoreSettings)}
    try:
        return ScoreSettings(**{k: v for k, v in d.items() if k in known})
    except (TypeError, ValueError):
        messages.append("The session's scoring settings were invalid; the defaults are used instead.")
        return ScoreSettings()


def _candidates(entry: dict, base: str) -> list[str]:
    out = []
    rel = entry.get("path")
    if isinstance(rel, str) and rel:
        out.append(os.path.normpath(os.path.join(base, rel.replace("/", os.sep))))
    absolute = entry.get("absolute_path")
    if isinstance(absolute, str) and absolute:
        out.append(os.path.normpath(absolute))
    return list(dict.fromkeys(out))


def _locate(entry: dict, base: str) -> str | None:
    """The file an entry names: relative to the session first, then absolute.

    When both exist and differ, the one whose hash matches the saved hash wins (a session moved
    next to other files of the same names must not pick those up as "changed" versions).
    """
    existing = [p for p in _candidates(entry, base) if os.path.isfile(p)]
    if len(existing) > 1 and entry.get("sha256"):
        from deepaq_core.audio import file_sha256

        for p in existing:
            try:
                if file_sha256(p) == entry["sha256"]:
                    return p
            except OSError:
                continue
    return existing[0] if existing else None


def _entry_name(entry: dict) -> str:
    p = entry.get("absolute_path") or entry.get("path") or "?"
    return os.path.basename(str(p).replace("/", os.sep))


def _entry_where(entry: dict, base: str) -> str:
    return " or ".join(f"'{p}'" for p in _candidates(entry, base)) or "no path was saved"


def _label(entry: dict, path: str) -> str:
    label = entry.get("label")
    return label if isinstance(label, str) and label else os.path.basename(path)


def _check_cancel(cancel) -> None:
    if cancel is None:
        return
    if (cancel.is_set() if hasattr(cancel, "is_set") else cancel()):
        raise Cancelled("Loading the session was cancelled.")


# =========================================================================================
# autosave


def autosave_path() -> Path:
    """Where the autosave goes: ``$XDG_CACHE_HOME/deepaq/autosave.deepaq.json`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "deepaq" / f"autosave{SESSION_SUFFIX}"


class Autosaver(QtCore.QObject):
    """Saves the session every ``interval_s`` seconds when it changed, so a crash loses nothing.

    Parameters
    ----------
    source : callable
        ``source() -> (session, extra)``, called on the UI thread at each tick (the same
        ``extra`` as for :func:`save_session`).
    path : str or os.PathLike, optional
        Default :func:`autosave_path`.
    interval_s : float
        Seconds between checks.
    parent : QObject, optional

    Signals
    -------
    saved(str)
        The path, after each write.
    failed(str)
        A one-sentence message; emitted once per distinct failure, then retried silently.

    A session without a reference is not saved (the previous autosave stays). The change check
    is cheap (generation counter, result identities, settings, model, ``extra``), and unchanged
    results are not re-serialised.
    """

    saved = QtCore.Signal(str)
    failed = QtCore.Signal(str)
    # (fingerprint, error message or ""): a background save finished (emitted from its thread)
    _background_done = QtCore.Signal(object, str)

    def __init__(self, source: Callable[[], tuple[Session, dict]], path: str | os.PathLike | None = None,
                 interval_s: float = 10.0, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.source = source
        self.path = os.fspath(path) if path is not None else str(autosave_path())
        self._last: Any = None
        self._last_error = ""
        self._thread: threading.Thread | None = None
        self._background_done.connect(self._finish)
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(max(1, int(interval_s * 1000)))
        self.timer.timeout.connect(lambda: self.maybe_save(background=True))

    def start(self) -> None:
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    @staticmethod
    def fingerprint(session: Session, extra: dict | None) -> Any:
        """A value that changes whenever what :func:`save_session` writes would change (bar the date)."""
        try:
            extra_key = json.dumps(_json_safe(extra or {}), sort_keys=True)
        except (TypeError, ValueError):
            extra_key = repr(extra)
        ref = session.reference
        return (
            id(session), session.generation,
            (ref.path, ref.info.sha256, ref.label) if ref else None,
            tuple((t.path, t.info.sha256, t.label) for t in session.versions),
            tuple(sorted((i, id(r)) for i, r in session.results.items())),
            session.settings, session.model_name, extra_key,
        )

    def maybe_save(self, background: bool = False) -> bool:
        """Save if the session changed since the last save; returns True when a file was written.

        With ``background`` (the timer's way) the document is taken now and encoded and written
        in a thread, so a large session never stalls the UI; True then means a save started.
        """
        try:
            session, extra = self.source()
        except Exception:  # noqa: BLE001 - a broken callback must not kill the timer
            log.exception("autosave: the session source failed")
            return False
        if session is None or session.reference is None:
            return False
        fp = self.fingerprint(session, extra)
        if fp == self._last:
            return False
        if background:
            return self._save_in_background(session, extra, fp)
        return self._save(session, extra, fp)

    def _save_in_background(self, session: Session, extra: dict, fp: Any) -> bool:
        if self._thread is not None and self._thread.is_alive():
            return False  # the previous save is still writing; the next tick catches up
        path = os.path.abspath(self.path)
        try:
            doc = session_to_json(session, path, extra=extra)  # a snapshot, taken on this thread
        except DeePAQError as exc:
            self._finish(fp, f"Autosave failed: {exc}")
            return False

        def write() -> None:
            try:
                _write_text(_encode_yielding(doc), path)
                error = ""
            except (DeePAQError, ValueError) as exc:
                error = f"Autosave failed: {exc}"
            self._background_done.emit(fp, error)

        self._thread = threading.Thread(target=write, name="deepaq-autosave", daemon=True)
        self._thread.start()
        return True

    def wait(self, timeout: float | None = None) -> None:
        """Block until a background save has finished (for closing and tests)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _finish(self, fp: Any, error: str) -> None:
        """Record a save's outcome (direct or background): remember it, or report a new error once."""
        if error:
            if error != self._last_error:
                self._last_error = error
                log.warning("%s", error)
                self.failed.emit(error)
            return
        self._last = fp
        self._last_error = ""
        self.saved.emit(self.path)

    def save_now(self) -> bool:
        """Save whatever the state (e.g. just before closing); True when a file was written."""
        self.wait()
        session, extra = self.source()
        if session is None or session.reference is None:
            return False
        return self._save(session, extra, self.fingerprint(session, extra))

    def discard(self) -> None:
        """Delete the autosave file (e.g. after the user explicitly closed the session)."""
        try:
            os.remove(self.path)
        except OSError:
            pass
        self._last = None

    def _save(self, session: Session, extra: dict, fp: Any) -> bool:
        try:
            save_session(session, self.path, extra=extra)
        except DeePAQError as exc:
            self._finish(fp, f"Autosave failed: {exc}")
            return False
        self._finish(fp, "")
        return True


# =========================================================================================
# recent sessions


def _settings_store(settings: QtCore.QSettings | None) -> QtCore.QSettings:
    return settings if settings is not None else QtCore.QSettings()


def _stored_recent(store: QtCore.QSettings) -> list[str]:
    value = store.value(RECENT_KEY, [])
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value if v]


def add_recent(path: str | os.PathLike, settings: QtCore.QSettings | None = None) -> None:
    """Put ``path`` first in the recent-sessions list (at most :data:`MAX_RECENT`, no duplicates).

    ``settings`` defaults to ``QSettings()`` (the application's organisation and name).
    """
    store = _settings_store(settings)
    p = os.path.abspath(os.fspath(path))
    items = [p] + [x for x in _stored_recent(store) if os.path.normcase(x) != os.path.normcase(p)]
    store.setValue(RECENT_KEY, items[:MAX_RECENT])
    store.sync()


def recent_sessions(settings: QtCore.QSettings | None = None) -> list[str]:
    """Recent session files, most recent first; files that no longer exist are skipped."""
    return [p for p in _stored_recent(_settings_store(settings)) if os.path.isfile(p)][:MAX_RECENT]


def clear_recent(settings: QtCore.QSettings | None = None) -> None:
    store = _settings_store(settings)
    store.remove(RECENT_KEY)
    store.sync()


__all__ = [
    "FORMAT",
    "MAX_RECENT",
    "SESSION_FILTER",
    "SESSION_SUFFIX",
    "VERSION",
    "Autosaver",
    "LoadedSession",
    "add_recent",
    "autosave_path",
    "clear_recent",
    "iter_load_session",
    "load_session",
    "load_session_job",
    "read_session_document",
    "recent_sessions",
    "save_session",
    "session_to_json",
    "with_suffix",
]
