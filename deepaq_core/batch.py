"""Batch scoring of many (reference, degraded) pairs: input rows, durable results files, resume.

* :func:`score_pairs` scores an iterable of pairs lazily, in order, yielding a
  :class:`~deepaq_core.results.QualityResult` or a :class:`PairError` per pair.
* :func:`read_batch_input` reads a CSV or JSON-lines list of pairs; a row that cannot be read
  becomes an :class:`InputRow` with ``error`` set instead of failing the whole batch.
* :class:`ResultsFile` appends each result row and flushes it to disk as soon as it is scored.
  A new file is written as ``NAME.partial`` and renamed to ``NAME`` at the end; an existing
  file is never replaced unless asked (``overwrite``), and ``resume`` continues it.

A row's resume key is its input row (every column, exactly as given, and how many identical rows
came before it); the model and the score settings are stored in every result row and a results
file made with others is refused.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepaq_core.errors import DeePAQError, InputFileError, OutputPathError

log = logging.getLogger(__name__)

# Columns the metric adds after the input row's own columns.
METRIC_COLUMNS = ["score", "distance", "offset_ms", "gain_db", "model", "settings", "flags", "error"]
# A text cell starting with one of these is run as a formula by spreadsheet programs.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PARTIAL_SUFFIX = ".partial"
# Metric cells of a row not scored yet (for computing its key).
BLANK_METRICS = dict.fromkeys(METRIC_COLUMNS, "")


@dataclass(frozen=True)
class PairError:
    """A pair that could not be scored: its position, its files and the reason (one sentence)."""

    index: int
    reference: str
    degraded: str
    error: str


@dataclass
class InputRow:
    """One row of a batch input: its cells as given, resolved paths, or why it cannot be used."""

    line: int
    values: dict[str, Any]
    reference: str = ""
    degraded: str = ""
    error: str = ""


@dataclass
class BatchInput:
    """The rows of a batch input file and its columns (CSV header, or the JSON keys seen)."""

    path: str
    kind: str  # "csv" or "jsonl"
    columns: list[str]
    rows: list[InputRow] = field(default_factory=list)


def _fixed(value: float, decimals: int) -> float:
    return round(value, decimals) + 0.0


def settings_label(settings) -> str:
    """The score settings that change a result, as one short text (stored in every row)."""
    lag = "auto" if settings.lag_ms is None else f"{settings.lag_ms:g}"
    return (f"align={'on' if settings.align else 'off'} offset_ms={lag} "
            f"loudness={'on' if settings.match_loudness else 'off'} channels={settings.channels} "
            f"window_s={settings.window_s:g} hop_s={settings.hop_s:g}")


def score_pairs(pairs: Iterable[Sequence], scorer=None, *, model: str | None = None, device: str = "auto",
                settings=None, allow_unverified: bool = False, workers: int = 1,
                devices: Sequence[str] | None = None, cluster: str | None = None, retries: int = 2) -> Iterator:
    """Score (reference, degraded) pairs in order, lazily: one item per pair.

    On the CPU pairs are read one at a time. On a GPU up to the model's batch size of consecutive
    pairs that share a reference are read before they are scored, and embedded together.

    Parameters
    ----------
    pairs : iterable of (reference, degraded)
        Paths or :class:`~deepaq_core.audio.AudioBuffer` objects; read one at a time.
    scorer : Scorer, optional
        Reused if given (its reference-embedding cache helps when pairs share a reference);
        otherwise one is made from ``model``, ``device``, ``settings`` when the first pair is needed.
        Only for scoring in this process.
    workers : int
        More than 1: that many worker processes on this machine, each loading the model once.
    devices : list of str, optional
        One worker process per device (e.g. ``["cuda:0", "cuda:1"]``), instead of ``workers``.
    cluster : str, optional
        The address of a running Dask scheduler (needs the ``cluster`` extra); its workers score
        the pairs, so paths must be readable there. ``retries``: extra tries of a failed task.

    Yields
    ------
    QualityResult or PairError
        A :class:`PairError` (with the reason as one sentence) for a pair whose files cannot be
        read or scored; the other pairs are still scored. With workers or a cluster, at most a few
        pairs per worker are in flight (the input is read as they finish), and results still come
        in input order.
    """
    from deepaq_core.errors import Cancelled

    if workers > 1 or devices or cluster:
        if scorer is not None:
            raise ValueError("a Scorer can only be given for scoring in this process (no workers or cluster)")
        from deepaq_core.batch_engines import ScorerSpec, iter_scored

        spec = ScorerSpec(model, device, settings, allow_unverified)
        tasks = ((i, pair[0], pair[1]) for i, pair in enumerate(pairs))
        for _index, outcome in iter_scored(tasks, spec, workers=workers, devices=devices, cluster=cluster,
                                           retries=retries, full=True, in_order=True):
            yield outcome
        return

    def one(index: int, reference, degraded):
        try:
            return scorer.score(reference, degraded)
        except Cancelled:
            raise
        except DeePAQError as exc:
            log.debug("pair %d could not be scored: %s", index + 1, exc)
            return PairError(index, str(reference), str(degraded), str(exc))

    def run_of(run: list[tuple[int, Any, Any]]) -> Iterator:
        """Pairs sharing a reference, scored together (one error: each alone, to name its pair)."""
        if len(run) > 1:
            try:
                results = scorer.score_many(run[0][1], [deg for _, _, deg in run])
            except Cancelled:
                raise
            except DeePAQError:
                results = None
            if results is not None:
                yield from results
                return
        for index, reference, degraded in run:
            yield one(index, reference, degraded)

    run: list[tuple[int, Any, Any]] = []
    for index, pair in enumerate(pairs):
        if scorer is None:
            from deepaq_core.scoring import Scorer

            scorer = Scorer(model, device, settings, allow_unverified=allow_unverified)
        reference, degraded = pair
        # On a GPU, consecutive pairs with the same reference are read ahead (up to the model's
        # batch size) and embedded together, so the batches are full; on the CPU pairs are read
        # one at a time, as they come.
        loaded = scorer.loaded
        group = scorer._group or (max(1, int(loaded.batch_size)) if loaded.device.type != "cpu" else 1)
        # (only paths are held here; Scorer.iter_score reads as many as fill a batch at a time)
        if run and (len(run) >= group or not _same(run[0][1], reference)):
            yield from run_of(run)
            run = []
        run.append((index, reference, degraded))
        if group <= 1:
            yield from run_of(run)
            run = []
    if run:
        yield from run_of(run)


def _same(a: Any, b: Any) -> bool:
    """The same reference file (paths compared as text; in-memory buffers only when identical objects)."""
    if isinstance(a, (str, os.PathLike)) and isinstance(b, (str, os.PathLike)):
        return os.fspath(a) == os.fspath(b)
    return a is b


def result_metrics(result, model_label: str, settings_text: str) -> dict[str, Any]:
    """The metric columns of a result row (or of an error row, from a :class:`PairError`)."""
    if isinstance(result, PairError):
        error = " ".join(result.error.split()) or "The pair could not be scored."
        return {"score": "", "distance": "", "offset_ms": "", "gain_db": "", "model": model_label,
                "settings": settings_text, "flags": "", "error": error}
    lag_ms = result.offset_ms if hasattr(result, "offset_ms") else result.alignment.lag_ms  # PairScore or result
    return {"score": _fixed(result.score, 4), "distance": _fixed(result.distance, 6),
            "offset_ms": _fixed(lag_ms, 3), "gain_db": _fixed(result.gain_db, 3),
            "model": model_label, "settings": settings_text, "flags": ",".join(getattr(result, "flags", ())),
            "error": ""}


# -- input -------------------------------------------------------------------------------------
def _resolve(value: Any, base: Path) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    q = Path(value.strip()).expanduser()
    return str(q if q.is_absolute() else base / q)


def _finish_row(row: InputRow, keys: dict[str, str], base: Path, name: str) -> InputRow:
    if row.error:
        return row
    for what in ("reference", "degraded"):
        resolved = _resolve(row.values.get(keys[what]) if what in keys else None, base)
        if resolved is None:
            row.error = f"Line {row.line} of '{name}' has no '{what}' file name."
            return row
        setattr(row, what, resolved)
    return row


def read_batch_input(path: str, kind: str) -> BatchInput:
    """Read a batch input (``kind`` "csv" or "jsonl"); unreadable rows become error rows.

    Relative paths are resolved against the input file's folder for scoring; ``values`` keeps
    every cell exactly as given. A problem with the whole file (not UTF-8, no 'reference' and
    'degraded' columns, no rows) raises :class:`~deepaq_core.errors.InputFileError`.
    """
    p = Path(path)
    base, name = p.parent, p.name
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise InputFileError(f"Batch input '{name}' is not a UTF-8 text file.") from None
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).rstrip(".").lower()
        raise InputFileError(f"Cannot read '{name}': {reason}.") from None
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    out = BatchInput(str(p), kind, [])
    if kind == "csv":
        start = next((i for i, ln in enumerate(lines) if ln.strip()), None)
        header = _csv_cells(lines[start]) if start is not None else None
        if not header:
            raise InputFileError(f"Batch input '{name}' needs the columns 'reference' and 'degraded'.")
        if len(set(header)) != len(header):
            raise InputFileError(f"Batch input '{name}' has the same column name twice in its header.")
        keys = {c.strip().lower(): c for c in header}
        if "reference" not in keys or "degraded" not in keys:
            raise InputFileError(f"Batch input '{name}' needs the columns 'reference' and 'degraded'.")
        out.columns = list(header)
        for n in range(start + 1, len(lines)):
            ln = lines[n]
            if not ln.strip():
                continue
            cells = _csv_cells(ln)
            row = InputRow(n + 1, {c: "" for c in header})
            if cells is None:
                row.error = f"Line {n + 1} of '{name}' is not a readable CSV row (an unterminated quote?)."
            else:
                row.values.update(zip(header, cells))
                if len(cells) < len(header):
                    row.error = (f"Line {n + 1} of '{name}' has {len(cells)} of the {len(header)} columns "
                                 f"of the header.")
                elif len(cells) > len(header):
                    row.error = f"Line {n + 1} of '{name}' has more cells than the header has columns."
            out.rows.append(_finish_row(row, keys, base, name))
    else:
        seen: dict[str, None] = {}
        for n, ln in enumerate(lines, 1):
            if not ln.strip():
                continue
            try:
                obj = json.loads(ln)
            except ValueError:
                obj = None
            if not isinstance(obj, dict):
                out.rows.append(InputRow(n, {}, error=f"Line {n} of '{name}' is not a JSON object with "
                                                      f"'reference' and 'degraded'."))
                continue
            seen.update(dict.fromkeys(obj))
            keys = {k.strip().lower(): k for k in obj if isinstance(k, str)}
            out.rows.append(_finish_row(InputRow(n, obj), keys, base, name))
        out.columns = list(seen) or ["reference", "degraded"]
    if not out.rows:
        raise InputFileError(f"Batch input '{name}' lists no pairs.")
    return out


def _csv_cells(line: str) -> list[str] | None:
    """The cells of one CSV line, or None if it cannot be parsed (e.g. an unterminated quote)."""
    try:
        rows = list(csv.reader([line], strict=True))
    except csv.Error:
        return None
    return rows[0] if rows else []


# -- output rows -------------------------------------------------------------------------------
def escape_formula(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, with a leading apostrophe (numbers kept)."""
    if not isinstance(value, str) or not value.startswith(FORMULA_START):
        return value
    try:
        float(value)
        return value  # a number such as -3.5
    except ValueError:
        return "'" + value


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return json.dumps(value) if isinstance(value, bool) else str(value)
    return json.dumps(value)


def output_name(column: str) -> str:
    """An input column's name in the results (``input_`` added where it is also a metric column)."""
    return f"input_{column}" if column in METRIC_COLUMNS else column


def csv_header(columns: Sequence[str]) -> list[str]:
    return [output_name(c) for c in columns] + METRIC_COLUMNS


def _csv_line(cells: Sequence[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(cells)
    return buf.getvalue()


def format_row(kind: str, row: InputRow, columns: Sequence[str], metrics: dict[str, Any]) -> tuple[tuple, str]:
    """``(input key, line)`` of a result row: CSV (formulas escaped) or one JSON line."""
    if kind == "csv":
        cells = [escape_formula(_cell_text(row.values.get(c, ""))) for c in columns]
        line = _csv_line(cells + [escape_formula(_cell_text(metrics[c])) if c in ("model", "settings", "error")
                                  else _cell_text(metrics[c]) for c in METRIC_COLUMNS])
        return tuple(cells), line
    obj = {output_name(k): v for k, v in row.values.items()}
    key = json.dumps(list(obj.items()))
    obj.update(metrics)
    return (key,), json.dumps(obj) + "\n"


def _parse_line(kind: str, text: str, n_input: int) -> tuple[tuple, dict] | None:
    """``(input key, metric cells)`` of a stored result line, or None if it is not one."""
    if kind == "csv":
        cells = _csv_cells(text.rstrip("\r\n"))
        if cells is None or len(cells) != n_input + len(METRIC_COLUMNS):
            return None
        return tuple(cells[:n_input]), dict(zip(METRIC_COLUMNS, cells[n_input:]))
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not all(c in obj for c in METRIC_COLUMNS):
        return None
    inputs = [(k, v) for k, v in obj.items() if k not in METRIC_COLUMNS]
    return (json.dumps(inputs),), {c: obj[c] for c in METRIC_COLUMNS}


def with_occurrence(keys: Iterable[tuple]) -> list[tuple]:
    """Each key with the number of identical keys before it, so repeated rows stay distinct."""
    seen: Counter = Counter()
    out = []
    for k in keys:
        out.append((k, seen[k]))
        seen[k] += 1
    return out


# -- the durable results file ------------------------------------------------------------------
def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).rstrip(".").lower()


def check_folder_writable(path: str, what: str) -> None:
    """Create and remove a file next to ``path``: its folder must take new files (temp + rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, probe = tempfile.mkstemp(prefix=".deepaq-probe-", dir=folder)
    except OSError as exc:
        raise OutputPathError(f"The folder '{folder}' for the {what} cannot take new files: {_reason(exc)}.") from None
    os.close(fd)
    os.unlink(probe)


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ResultsFile:
    """A results file (CSV or JSON lines) written row by row, each row flushed to disk.

    Parameters
    ----------
    path : str
        The final file name. Work goes to ``path + '.partial'`` unless an existing complete
        file is resumed (then rows are appended to it).
    kind : {"csv", "jsonl"}
    columns : list of str
        The input's columns (the CSV header is these, then :data:`METRIC_COLUMNS`).
    mode : {"new", "resume", "overwrite"}
        ``new`` refuses an existing file (or an unfinished ``.partial``); ``resume`` continues
        the ``.partial`` or the file; ``overwrite`` starts again and replaces the file at the end.
    what : str
        How the file is named in messages, e.g. ``"--results-csv file"``.
    model, settings : str
        The model label and :func:`settings_label` of this run; a resumed file made with others
        is refused.
    """

    def __init__(self, path: str, kind: str, columns: Sequence[str], mode: str, what: str,
                 model: str, settings: str) -> None:
        self.path = os.path.abspath(path)
        self.partial = self.path + PARTIAL_SUFFIX
        self.kind, self.columns, self.what = kind, list(columns), what
        self.model, self.settings = model, settings
        self.header = _csv_line(csv_header(self.columns)) if kind == "csv" else ""
        self.name = os.path.basename(self.path)
        self._entries: list[list] = []  # [key or None, line, is_error, position or None], file order
        self._file = None
        self._size = 0
        if mode == "resume" and os.path.exists(self.partial):
            self.work = self.partial
        elif mode == "resume" and os.path.exists(self.path):
            self.work = self.path
        elif mode == "new" and os.path.exists(self.path):
            raise OutputPathError(f"The {what} '{self.name}' already exists; use --resume to continue it or "
                                  f"--overwrite to replace it.")
        elif mode == "new" and os.path.exists(self.partial):
            raise OutputPathError(f"An unfinished '{os.path.basename(self.partial)}' exists; use --resume to "
                                  f"continue it or --overwrite to start again.")
        else:
            self.work = self.partial
        self._fresh = not (mode == "resume" and os.path.exists(self.work))

    # -- opening ---------------------------------------------------------------------------
    def open(self, input_keys: Sequence[tuple]) -> set[int]:
        """Open for appending; ``input_keys`` are the rows' keys in input order (see
        :func:`with_occurrence`). Returns the positions already scored in the file."""
        try:
            if self._fresh:
                self._file = open(self.work, "w", newline="", encoding="utf-8")
                self._append(self.header)
            else:
                self._load()
                self._file = open(self.work, "a", newline="", encoding="utf-8")
        except OSError as exc:
            self.close()
            raise OutputPathError(f"The {self.what} '{self.name}' could not be written: {_reason(exc)}.") from None
        where = {k: i for i, k in enumerate(input_keys)}
        done: set[int] = set()
        for entry in self._entries:
            pos = where.get(entry[0])
            entry[3] = pos
            if pos is not None and not entry[2]:
                done.add(pos)
        return done

    def _load(self) -> None:
        with open(self.work, "rb") as f:
            data = f.read()
        cut = data.rfind(b"\n") + 1
        if cut < len(data):  # a row cut short by an interruption: drop it
            log.info("dropping an incomplete last row of %s", self.work)
            with open(self.work, "r+b") as f:
                f.truncate(cut)
            data = data[:cut]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise OutputPathError(f"The {self.what} '{self.name}' is not a UTF-8 results file; "
                                  f"use --overwrite to replace it.") from None
        lines = [ln + "\n" for ln in text.split("\n")[:-1]]  # the text ends with a newline (or is empty)
        if self.kind == "csv":
            if lines and lines[0] != self.header:
                raise OutputPathError(f"The columns of the {self.what} '{self.name}' differ from this batch "
                                      f"input's; resume it with the same input file or use --overwrite.")
            lines = lines[1:]
        keyed = []
        for n, line in enumerate(lines, 2 if self.kind == "csv" else 1):
            parsed = _parse_line(self.kind, line, len(self.columns))
            if parsed is None:
                raise OutputPathError(f"Line {n} of the {self.what} '{self.name}' is not a result row of this "
                                      f"batch; resume it with the same input file or use --overwrite.")
            key, metrics = parsed
            if metrics["model"] != self.model or metrics["settings"] != self.settings:
                raise OutputPathError(
                    f"The {self.what} '{self.name}' was made with model '{metrics['model']}' and settings "
                    f"'{metrics['settings']}', not '{self.model}' and '{self.settings}'; resume with the same "
                    f"--model and options, or use --overwrite.")
            keyed.append((key, line, bool(metrics["error"])))
        for (key, occurrence), (_, line, is_error) in zip(with_occurrence(k for k, _, _ in keyed), keyed):
            self._entries.append([(key, occurrence), line, is_error, None])
        self._size = len(data)

    # -- writing ---------------------------------------------------------------------------
    def _write(self, text: str) -> None:
        """Append ``text`` and force it to disk."""
        self._file.write(text)
        self._file.flush()
        os.fsync(self._file.fileno())

    def _append(self, text: str) -> None:
        if not text:
            return
        try:
            self._write(text)
        except OSError:
            self._undo()
            raise
        self._size += len(text.encode("utf-8"))

    def _undo(self) -> None:
        """Cut the file back to its last complete row (best effort)."""
        try:
            self._file.close()
        except OSError:
            pass
        try:
            os.truncate(self.work, self._size)
        except OSError:
            pass
        self._file = None

    def write(self, position: int, key: tuple, line: str, is_error: bool) -> None:
        """Append one result row (already formatted) and flush it to disk."""
        if self._file is None:
            raise OutputPathError(f"The {self.what} '{self.name}' is closed.")
        if self.kind == "csv" and self._size == 0:
            self._append(self.header)
        try:
            self._append(line)
        except OSError as exc:
            kept = (f"the rows scored so far are kept in '{os.path.basename(self.work)}' (continue with --resume)"
                    if self.work == self.partial else "it holds the rows scored so far (continue with --resume)")
            raise OutputPathError(f"The {self.what} '{self.name}' could not be written: {_reason(exc)}; "
                                  f"{kept}.") from None
        self._entries.append([key, line, is_error, position])

    def close(self) -> None:
        """Close without finishing (an interrupted run: the rows so far stay on disk)."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None

    def finish(self) -> int:
        """Put the rows in input order (rewriting atomically if needed) and give the file its
        final name. Returns the number of rows from a previous run that match no input row."""
        self.close()
        latest: dict[int, str] = {}
        stale: list[str] = []
        for _key, line, _is_error, position in self._entries:
            if position is None:
                stale.append(line)
            else:
                latest[position] = line
        final = [latest[p] for p in sorted(latest)] + stale
        folder = os.path.dirname(self.path)
        try:
            if final != [e[1] for e in self._entries]:
                fd, tmp = tempfile.mkstemp(prefix=f".{self.name}.", suffix=".tmp", dir=folder)
                try:
                    with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
                        f.write(self.header)
                        f.writelines(final)
                        f.flush()
                        os.fsync(f.fileno())
                    os.replace(tmp, self.path)
                except BaseException:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
                    raise
                if self.work != self.path:
                    os.unlink(self.work)
            elif self.work != self.path:
                os.replace(self.work, self.path)
            _fsync_folder(folder)
        except OSError as exc:
            kept = os.path.basename(self.work)
            raise OutputPathError(f"The {self.what} '{self.name}' could not be completed: {_reason(exc)}; the "
                                  f"rows are kept in '{kept}' (continue with --resume).") from None
        if stale:
            log.warning("%s keeps %d rows of a previous run that match no row of the input", self.name, len(stale))
        return len(stale)
