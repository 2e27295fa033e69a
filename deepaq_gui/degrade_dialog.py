"""Generate degraded versions of the reference: the dialog that asks what, and the function that makes them.

The dialog only collects a list of jobs ``[(kind, params)]`` and an output folder; the work is
:func:`generate_versions` (pure, no Qt), which the main window runs in its worker
(:func:`generate_versions_job`) before adding the files as versions::

    picked = DegradeDialog.ask(reference_path, parent=window, max_jobs=free_slots)
    if picked:
        jobs, out_dir, open_ladder = picked
        window._start(generate_versions_job(reference_path, jobs, out_dir), finished=...)

:func:`generate_versions_job` also lists the files in the folder's ``manifest.csv`` (the ladder
manifest :func:`write_ladder_manifest` keeps), so File > Open ladder… reads the folder, and the
dialog's "Open the results as a ladder" opens it at once.

Every family of :data:`deepaq_core.degrade.FAMILIES` is listed. A codec whose encoder is not
installed is listed too, disabled, with the reason from
:func:`~deepaq_core.degrade.codec_unavailable_reason` in its text and tooltip.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtCore, QtWidgets

from deepaq_core.degrade import (
    FAMILIES,
    DegradationError,
    available_codecs,
    codec_unavailable_reason,
    degrade,
    degrade_file,
)
from deepaq_core.errors import AudioError, Cancelled, DeePAQError
from deepaq_core.scoring import Progress

log = logging.getLogger(__name__)

Job = tuple[str, dict[str, Any]]

# Units as they may appear in a file name ("kbit/s" has a slash); "" = the value alone.
_FILE_UNITS = {"kbit/s": "kbps", "Hz": "Hz", "dB": "dB", "bits": "bit", "bands": "bands",
               "fraction of samples": "", "0..1": "", "fraction of frames": "", "linear gain": "", "s": "s",
               "dB re peak": "dB", "%": "pct", "speed factor": "x"}
# Units that read well after the value in a label ("mp3 64 kbit/s"); others read "param=value".
_LABEL_UNITS = {"kbit/s", "Hz", "dB", "bits", "bands", "s", "dB re peak", "%"}
_DEFAULT_PICKS = 3  # ladder rungs checked when a family is selected: mildest, middle, worst


# =========================================================================================
# the work


def format_value(value: float) -> str:
    """``64.0`` -> ``"64"``, ``0.001`` -> ``"0.001"`` (no trailing zeros)."""
    v = float(value)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:g}"


def job_value(kind: str, params: dict[str, Any]) -> Any:
    """The family's main parameter value in ``params`` (None if absent or not a family)."""
    fam = FAMILIES.get(kind)
    return params.get(fam.param) if fam is not None else None


def job_label(kind: str, params: dict[str, Any]) -> str:
    """Human label of a job: ``"mp3 64 kbit/s"``, ``"lowpass 4000 Hz"``, ``"clipping clip_ratio=0.01"``."""
    fam = FAMILIES.get(kind)
    name = kind.replace("_", " ")
    if fam is None or fam.param not in params:
        inner = ", ".join(f"{k}={_fmt_any(v)}" for k, v in params.items())
        return f"{name} {inner}".strip()
    v = format_value(params[fam.param])
    text = f"{name} {v} {fam.unit}" if fam.unit in _LABEL_UNITS else f"{name} {fam.param}={v}"
    others = [f"{k}={_fmt_any(x)}" for k, x in params.items() if k != fam.param]
    return text + (f" ({', '.join(others)})" if others else "")


def job_filename(reference_path: str | os.PathLike, kind: str, params: dict[str, Any]) -> str:
    """``<ref stem>_<kind>_<value><unit>.flac``, e.g. ``song_mp3_64kbps.flac``."""
    stem = Path(os.fspath(reference_path)).stem
    fam = FAMILIES.get(kind)
    if fam is not None and fam.param in params:
        unit = _FILE_UNITS.get(fam.unit, re.sub(r"[^A-Za-z0-9]+", "", fam.unit))
        tag = f"{format_value(params[fam.param])}{unit}"
    else:
        tag = "_".join(f"{k}{_fmt_any(v)}" for k, v in params.items()) or "default"
    return _safe(f"{stem}_{kind}_{tag}") + ".flac"


def default_output_dir(reference_path: str | os.PathLike | None) -> str:
    """``<reference folder>/<stem>_versions`` if that folder is writable, else the user's cache.

    The cache folder is ``$XDG_CACHE_HOME/deepaq/versions/<stem>`` (``~/.cache`` by default).
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not reference_path:
        return os.path.join(base, "deepaq", "versions")
    ref = os.path.abspath(os.fspath(reference_path))
    stem = _safe(Path(ref).stem)
    folder = os.path.dirname(ref)
    if os.path.isdir(folder) and os.access(folder, os.W_OK):
        return os.path.join(folder, f"{stem}_versions")
    return os.path.join(base, "deepaq", "versions", stem)


@dataclass(frozen=True)
class GeneratedVersions:
    """What :func:`generate_versions_job` made: ``files`` [(path, label)] and one message per failed job."""

    files: tuple[tuple[str, str], ...]
    errors: tuple[str, ...] = field(default_factory=tuple)
    #: the folder the files are in and the manifest listing them (None when none was written)
    out_dir: str = ""
    manifest: str | None = None
    families: tuple[str, ...] = ()


def iter_generate_versions(reference_path: str | os.PathLike, jobs: Sequence[Job], out_dir: str | os.PathLike,
                           cancel: threading.Event | Callable[[], bool] | None = None,
                           errors: list[str] | None = None, made_jobs: list[tuple[str, str, dict]] | None = None
                           ) -> Generator[Progress, None, list[tuple[str, str]]]:
    """:func:`generate_versions` as a generator of :class:`Progress` items (for workers).

    ``made_jobs``, when given, receives ``(path, kind, params)`` of each file written.
    """
    ref = os.fspath(reference_path)
    out = os.path.abspath(os.fspath(out_dir))
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise DegradationError(f"The output folder '{out}' could not be created ({exc.strerror or exc}).") from exc
    made: list[tuple[str, str]] = []
    taken: set[str] = set()
    n = len(jobs)
    for i, (kind, params) in enumerate(jobs):
        _check_cancel(cancel)
        label = job_label(kind, params)
        yield Progress(i / max(1, n), f"Generating {label} ({i + 1}/{n})")
        target = _unique(os.path.join(out, job_filename(ref, kind, params)), taken)
        taken.add(target)
        tmp = target[: -len(".flac")] + ".part.flac"
        try:
            degrade_file(ref, tmp, kind, **params)
            os.replace(tmp, target)
        except AudioError:
            _remove(tmp)
            raise  # the reference cannot be read: no job can run
        except (DeePAQError, OSError) as exc:
            _remove(tmp)
            message = str(exc) if isinstance(exc, DeePAQError) else (
                f"'{os.path.basename(target)}' could not be written ({exc.strerror or exc}).")
            if errors is None:
                if isinstance(exc, DeePAQError):
                    raise
                raise DegradationError(message) from exc
            log.warning("generating %s failed: %s", label, message)
            errors.append(message)
            continue
        except BaseException:
            _remove(tmp)
            raise
        made.append((target, label))
        if made_jobs is not None:
            made_jobs.append((target, kind, dict(params)))
    yield Progress(1.0, f"Generated {len(made)} version(s)")
    return made


def generate_versions(reference_path: str | os.PathLike, jobs: Sequence[Job], out_dir: str | os.PathLike,
                      progress: Callable[[float, str], None] | None = None,
                      cancel: threading.Event | Callable[[], bool] | None = None,
                      errors: list[str] | None = None) -> list[tuple[str, str]]:
    """Write one degraded FLAC per job, with :func:`deepaq_core.degrade.degrade_file`.

    Parameters
    ----------
    reference_path : str or os.PathLike
        The clean file (all channels kept, native rate).
    jobs : sequence of (kind, params)
        E.g. ``[("mp3", {"bitrate_kbps": 64}), ("lowpass", {"cutoff_hz": 4000})]``.
    out_dir : str or os.PathLike
        Created if needed. Files are named by :func:`job_filename`; an existing file is never
        overwritten (``_2``, ``_3``... are appended), so versions already open keep their hash.
    progress : callable, optional
        ``progress(fraction, message)`` before each job and at the end.
    cancel : threading.Event or callable, optional
        Checked before each job; raises :class:`~deepaq_core.errors.Cancelled` (finished files stay).
    errors : list, optional
        When given, a failing job appends its one-sentence message here and the others still
        run; otherwise the first failure raises.

    Returns
    -------
    list of (path, label)
        Absolute paths of the files written and labels like ``"mp3 64 kbit/s"``, in job order.

    Raises
    ------
    DegradationError
        Unknown family, bad value (one sentence), missing encoder (:class:`EncoderMissing`), or an
        unwritable folder; no half-written file is left behind.
    deepaq_core.errors.AudioError
        The reference cannot be read.
    """
    gen = iter_generate_versions(reference_path, jobs, out_dir, cancel, errors)
    try:
        while True:
            item = next(gen)
            if progress is not None:
                progress(item.fraction, item.message)
    except StopIteration as stop:
        return stop.value


def generate_versions_job(reference_path: str | os.PathLike, jobs: Sequence[Job], out_dir: str | os.PathLike,
                          manifest: bool = True):
    """A :class:`deepaq_gui.workers.Worker` job: yields Progress, returns :class:`GeneratedVersions`.

    A failing job does not stop the others; its message is in ``GeneratedVersions.errors``. With
    ``manifest`` the files are added to the folder's ladder manifest (:func:`write_ladder_manifest`);
    a manifest that cannot be written is one more message in ``errors``.
    """

    def job(cancel: threading.Event) -> Generator[Progress, None, GeneratedVersions]:
        errors: list[str] = []
        made_jobs: list[tuple[str, str, dict]] = []
        files = yield from iter_generate_versions(reference_path, list(jobs), out_dir, cancel, errors, made_jobs)
        written = None
        if manifest and made_jobs:
            try:
                written = write_ladder_manifest(out_dir, reference_path, made_jobs)
            except DeePAQError as exc:
                errors.append(str(exc))
        families = tuple(dict.fromkeys(kind for _, kind, _ in made_jobs))
        return GeneratedVersions(tuple(files), tuple(errors), os.path.abspath(os.fspath(out_dir)), written, families)

    return job


def write_ladder_manifest(out_dir: str | os.PathLike, reference_path: str | os.PathLike,
                          made: Sequence[tuple[str, str, dict[str, Any]]]) -> str | None:
    """Add generated files to ``<out_dir>/manifest.csv``, the ladder manifest File > Open ladder… reads.

    The columns are those of ``deepaq eval --make-ladder``
    (:data:`deepaq_core.evaluation.ladder.LADDER_COLUMNS`): one row per file with its family,
    parameter value, unit and ``param``-mode intensity, plus the clean rung (degraded = reference)
    of each group ``<reference stem>/<family>``. Rows already there are kept (those whose files are
    gone are dropped), so versions generated into the folder later join the same ladder.

    Parameters
    ----------
    out_dir : str or os.PathLike
        The folder the files are in.
    reference_path : str or os.PathLike
        The reference they were made from.
    made : sequence of (path, kind, params)
        The files written (as :func:`iter_generate_versions` reports them in ``made_jobs``).

    Returns
    -------
    str or None
        The manifest's path; None when the folder holds a ``manifest.csv`` of another kind, which is
        left as it is.

    Raises
    ------
    DeePAQError
        The manifest cannot be read or written (one sentence).
    """
    from deepaq_core.evaluation.ladder import LADDER_COLUMNS, ladder_row
    from deepaq_core.evaluation.manifest import write_manifest

    out = Path(os.path.abspath(os.fspath(out_dir)))
    path = out / "manifest.csv"
    ref = os.path.abspath(os.fspath(reference_path))
    rows: list[dict[str, Any]] = []
    if path.is_file():
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
                old = list(reader)
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DeePAQError(f"The ladder manifest '{path}' could not be read ({exc}).") from None
        if not {"reference", "degraded", "family", "param", "unit"} <= set(header):
            log.warning("%s is not a ladder manifest; it is left as it is", path)
            return None
        for rec in old:
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in rec.items()}
            for key in ("reference", "degraded"):
                if row.get(key):
                    row[key] = str((out / Path(row[key]).expanduser()).resolve())
            if row.get("degraded") and os.path.isfile(row["degraded"]):
                rows.append(row)
    new = {os.path.abspath(p) for p, _, _ in made}
    rows = [r for r in rows if r["degraded"] not in new]
    have_clean = {(r.get("group"), r["degraded"]) for r in rows if r["degraded"] == r.get("reference")}
    stem = Path(ref).stem
    for p, kind, params in made:
        fam = FAMILIES.get(kind)
        if fam is None or fam.param not in params:
            continue
        group = f"{stem}/{kind}"
        if (group, ref) not in have_clean:
            rows.append(ladder_row(ref, ref, group, kind, ref))
            have_clean.add((group, ref))
        value = float(params[fam.param])
        rows.append(ladder_row(ref, os.path.abspath(p), group, kind, ref, format_value(value), fam.label(value)))
    try:
        write_manifest(path, rows, LADDER_COLUMNS)
    except OSError as exc:
        raise DeePAQError(f"The ladder manifest '{path}' could not be written ({exc.strerror or exc}).") from None
    return str(path)


def check_job(kind: str, params: dict[str, Any], sample_rate: int = 48000) -> str | None:
    """A quick dry run of a signal-family job on 0.5 s of noise: its one-sentence error, or None.

    Codec jobs are only checked for a positive, finite bitrate here (a real check would run the
    encoder); their other problems surface in :func:`generate_versions`.
    """
    fam = FAMILIES.get(kind)
    if fam is None:
        return f"Unknown degradation family '{kind}'; choose one of {', '.join(FAMILIES)}."
    value = params.get(fam.param)
    if fam.group == "codec":
        if value is None or not math.isfinite(float(value)) or float(value) <= 0:
            return f"The {kind} bitrate must be a positive number of kbit/s, got {value}."
        return None
    x = np.random.default_rng(0).normal(0.0, 0.1, (1, max(1, int(0.5 * sample_rate)))).astype(np.float32)
    try:
        degrade(x, int(sample_rate), kind, **params)
    except DegradationError as exc:
        return str(exc)
    except Exception:  # noqa: BLE001 - a dry-run quirk must not block the user; the real run reports
        log.debug("dry run of %s %s failed", kind, params, exc_info=True)
    return None


def _fmt_any(v: Any) -> str:
    return format_value(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def _safe(name: str) -> str:
    return re.sub(r"[^\w.+-]+", "_", name).strip("_") or "version"


def _unique(path: str, taken: set[str]) -> str:
    if path not in taken and not os.path.exists(path):
        return path
    root, ext = os.path.splitext(path)
    k = 2
    while f"{root}_{k}{ext}" in taken or os.path.exists(f"{root}_{k}{ext}"):
        k += 1
    return f"{root}_{k}{ext}"


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _check_cancel(cancel) -> None:
    if cancel is None:
        return
    if cancel.is_set() if hasattr(cancel, "is_set") else cancel():
        raise Cancelled("Generating versions was cancelled.")


def parse_values(text: str) -> list[float]:
    """Numbers separated by commas, semicolons or spaces; ValueError names the first bad one."""
    values = []
    for token in re.split(r"[,;\s]+", text.strip()):
        if not token:
            continue
        try:
            v = float(token)
        except ValueError:
            raise ValueError(f"'{token}' is not a number.") from None
        if not math.isfinite(v):
            raise ValueError(f"'{token}' is not a finite number.")
        values.append(v)
    return values


# =========================================================================================
# the dialog


class DegradeDialog(QtWidgets.QDialog):
    """"Generate degraded versions…": family, values (ladder rungs or typed), output folder.

    Parameters
    ----------
    reference_path : str, optional
        The reference; sets the default output folder and the rate of the dry-run checks.
    parent : QWidget, optional
    max_jobs : int, optional
        How many versions may still be added (the session holds at most nine); more is refused
        with a message.
    out_dir : str, optional
        Initial output folder (default :func:`default_output_dir`).

    After ``exec()`` returns ``Accepted``: :meth:`jobs` and :meth:`output_dir`.
    """

    def __init__(self, reference_path: str | None = None, parent: QtWidgets.QWidget | None = None, *,
                 max_jobs: int | None = None, out_dir: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Generate degraded versions")
        self.reference_path = reference_path
        self.max_jobs = max_jobs
        self.sample_rate = _sample_rate(reference_path)
        self.ladder_checks: list[QtWidgets.QCheckBox] = []
        self._build(out_dir or default_output_dir(reference_path))
        first = next((self.family_list.item(i) for i in range(self.family_list.count())
                      if self.family_list.item(i).flags() & QtCore.Qt.ItemIsEnabled), None)
        if first is not None:
            self.family_list.setCurrentItem(first)

    # -- construction ---------------------------------------------------------------------
    def _build(self, out_dir: str) -> None:
        layout = QtWidgets.QVBoxLayout(self)
        intro = QtWidgets.QLabel("Each value makes one FLAC file from the reference; the files are added as versions.")
        intro.setWordWrap(True)
        layout.addWidget(intro)

        self.family_list = QtWidgets.QListWidget()
        self.family_list.setMinimumWidth(460)
        self.family_list.setMinimumHeight(200)
        codecs = available_codecs()
        for name, fam in FAMILIES.items():
            item = QtWidgets.QListWidgetItem()
            item.setData(QtCore.Qt.UserRole, name)
            reason = None
            if fam.group == "codec" and not codecs.get(name):
                reason = codec_unavailable_reason(name) or f"No installed tool can encode {name}."
            if reason:
                item.setText(f"{name} — unavailable: {reason}")
                item.setToolTip(reason)
                item.setFlags(item.flags() & ~(QtCore.Qt.ItemIsEnabled | QtCore.Qt.ItemIsSelectable))
            else:
                tool = f" (via {codecs[name]})" if fam.group == "codec" else ""
                item.setText(f"{name} — {fam.description}{tool}")
                item.setToolTip(f"{fam.description}; parameter {fam.param} ({fam.unit})")
            item.setData(QtCore.Qt.UserRole + 1, reason)
            self.family_list.addItem(item)
        self.family_list.currentItemChanged.connect(lambda cur, _prev: self._family_changed(cur))
        layout.addWidget(QtWidgets.QLabel("Degradation:"))
        layout.addWidget(self.family_list, 1)
        self.family_info = QtWidgets.QLabel()
        self.family_info.setWordWrap(True)
        layout.addWidget(self.family_info)

        values = QtWidgets.QGroupBox("Values")
        vl = QtWidgets.QVBoxLayout(values)
        self.ladder_radio = QtWidgets.QRadioButton("Ladder values:")
        self.value_radio = QtWidgets.QRadioButton("Value(s):")
        self.ladder_radio.setChecked(True)
        vl.addWidget(self.ladder_radio)
        self.ladder_box = QtWidgets.QWidget()
        self.ladder_grid = QtWidgets.QGridLayout(self.ladder_box)
        self.ladder_grid.setContentsMargins(20, 0, 0, 0)
        vl.addWidget(self.ladder_box)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.value_radio)
        self.value_edit = QtWidgets.QLineEdit()
        self.value_edit.textEdited.connect(lambda _t: self.value_radio.setChecked(True))
        row.addWidget(self.value_edit, 1)
        self.unit_label = QtWidgets.QLabel()
        row.addWidget(self.unit_label)
        vl.addLayout(row)
        layout.addWidget(values)

        folder = QtWidgets.QHBoxLayout()
        folder.addWidget(QtWidgets.QLabel("Output folder:"))
        self.folder_edit = QtWidgets.QLineEdit(out_dir)
        folder.addWidget(self.folder_edit, 1)
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        folder.addWidget(browse)
        layout.addLayout(folder)

        self.ladder_check = QtWidgets.QCheckBox("Open the results as a ladder (score against the value)")
        self.ladder_check.setToolTip("After generating, open the output folder in the rate-quality window, "
                                     "scored in the background, one point per value.")
        layout.addWidget(self.ladder_check)

        self.error_label = QtWidgets.QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #b00020;")
        self.error_label.hide()
        layout.addWidget(self.error_label)

        self.buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.Ok | QtWidgets.QDialogButtonBox.Cancel)
        self.buttons.button(QtWidgets.QDialogButtonBox.Ok).setText("Generate")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

    def _family_changed(self, item: QtWidgets.QListWidgetItem | None) -> None:
        for cb in self.ladder_checks:
            self.ladder_grid.removeWidget(cb)
            cb.deleteLater()
        self.ladder_checks = []
        self._set_error(None)
        name = self.family()
        if name is None:
            self.family_info.setText("")
            return
        fam = FAMILIES[name]
        self.family_info.setText(f"{fam.description}. Parameter: {fam.param} ({fam.unit}); "
                                 f"mildest {format_value(fam.ladder[0])}, worst {format_value(fam.ladder[-1])}.")
        picks = {0, len(fam.ladder) // 2, len(fam.ladder) - 1} if len(fam.ladder) > _DEFAULT_PICKS else set(
            range(len(fam.ladder)))
        per_row = 6
        for k, value in enumerate(fam.ladder):
            cb = QtWidgets.QCheckBox(f"{format_value(value)} {fam.unit if fam.unit in _LABEL_UNITS else ''}".strip())
            cb.setProperty("value", float(value))
            cb.setChecked(k in picks)
            cb.toggled.connect(lambda _c: self.ladder_radio.setChecked(True))
            self.ladder_grid.addWidget(cb, k // per_row, k % per_row)
            self.ladder_checks.append(cb)
        self.value_edit.setPlaceholderText(f"{fam.param}, e.g. {format_value(fam.ladder[len(fam.ladder) // 2])}"
                                           " (several: separate with commas)")
        self.unit_label.setText(fam.unit)

    def _browse(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Output folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def _set_error(self, text: str | None) -> None:
        self.error_label.setText(text or "")
        self.error_label.setVisible(bool(text))

    # -- API --------------------------------------------------------------------------------
    def family(self) -> str | None:
        """The selected family name (None if none)."""
        item = self.family_list.currentItem()
        if item is None or not item.flags() & QtCore.Qt.ItemIsEnabled:
            return None
        return item.data(QtCore.Qt.UserRole)

    def family_names(self) -> list[str]:
        """Every listed family, enabled or not, in list order."""
        return [self.family_list.item(i).data(QtCore.Qt.UserRole) for i in range(self.family_list.count())]

    def family_item(self, name: str) -> QtWidgets.QListWidgetItem | None:
        for i in range(self.family_list.count()):
            item = self.family_list.item(i)
            if item.data(QtCore.Qt.UserRole) == name:
                return item
        return None

    def is_family_enabled(self, name: str) -> bool:
        item = self.family_item(name)
        return item is not None and bool(item.flags() & QtCore.Qt.ItemIsEnabled)

    def unavailable_reason(self, name: str) -> str | None:
        """Why a listed family is disabled (None when it is usable)."""
        item = self.family_item(name)
        return None if item is None else item.data(QtCore.Qt.UserRole + 1)

    def select_family(self, name: str) -> bool:
        """Select a family; False (and nothing changes) when it is unknown or disabled."""
        item = self.family_item(name)
        if item is None or not item.flags() & QtCore.Qt.ItemIsEnabled:
            return False
        self.family_list.setCurrentItem(item)
        return True

    def set_ladder_values(self, values: Sequence[float]) -> None:
        """Check exactly the ladder rungs in ``values`` and switch to ladder mode."""
        wanted = {float(v) for v in values}
        for cb in self.ladder_checks:
            cb.setChecked(float(cb.property("value")) in wanted)
        self.ladder_radio.setChecked(True)

    def set_value_text(self, text: str) -> None:
        """Type values into the free field and switch to value mode."""
        self.value_edit.setText(text)
        self.value_radio.setChecked(True)

    def selected_values(self) -> list[float]:
        """Values of the current mode (ValueError with one sentence for unparsable text)."""
        if self.ladder_radio.isChecked():
            return [float(cb.property("value")) for cb in self.ladder_checks if cb.isChecked()]
        return parse_values(self.value_edit.text())

    def jobs(self) -> list[Job]:
        """``[(kind, {param: value})]`` for the current choice ([] when nothing valid is chosen)."""
        name = self.family()
        if name is None:
            return []
        try:
            values = self.selected_values()
        except ValueError:
            return []
        param = FAMILIES[name].param
        out: list[Job] = []
        for v in values:
            value: float | int = int(v) if v.is_integer() else v
            if (name, {param: value}) not in out:
                out.append((name, {param: value}))
        return out

    def output_dir(self) -> str:
        return os.path.expanduser(self.folder_edit.text().strip())

    def open_as_ladder(self) -> bool:
        """Whether the generated folder should then open as a ladder (the checkbox)."""
        return self.ladder_check.isChecked()

    def validate(self) -> str | None:
        """The first problem with the current choice, as one sentence (None when it can run)."""
        name = self.family()
        if name is None:
            return "Choose a degradation that is available."
        try:
            values = self.selected_values()
        except ValueError as exc:
            return f"The value field is not valid: {exc}"
        if not values:
            return "Choose at least one value."
        jobs = self.jobs()
        if self.max_jobs is not None and len(jobs) > self.max_jobs:
            if self.max_jobs <= 0:
                return "No more versions can be added; remove one first."
            return f"Only {self.max_jobs} more version(s) can be added; choose at most {self.max_jobs} value(s)."
        if not self.output_dir():
            return "Choose an output folder."
        for kind, params in jobs:
            problem = check_job(kind, params, self.sample_rate)
            if problem:
                return problem
        return None

    def accept(self) -> None:  # noqa: D401 - Qt API
        problem = self.validate()
        if problem:
            self._set_error(problem)
            return
        self._set_error(None)
        super().accept()

    @classmethod
    def ask(cls, reference_path: str | None, parent: QtWidgets.QWidget | None = None,
            max_jobs: int | None = None) -> tuple[list[Job], str, bool] | None:
        """Show the dialog modally; ``(jobs, out_dir, open_as_ladder)`` when accepted, None when cancelled."""
        dialog = cls(reference_path, parent, max_jobs=max_jobs)
        try:
            if dialog.exec() != QtWidgets.QDialog.Accepted:
                return None
            return dialog.jobs(), dialog.output_dir(), dialog.open_as_ladder()
        finally:
            dialog.deleteLater()


def _sample_rate(reference_path: str | None) -> int:
    if not reference_path:
        return 48000
    try:
        from deepaq_core.audio import read_info

        return int(read_info(reference_path).sample_rate)
    except Exception:  # noqa: BLE001 - only used for the dry-run checks
        return 48000


__all__ = [
    "DegradeDialog",
    "GeneratedVersions",
    "check_job",
    "default_output_dir",
    "format_value",
    "generate_versions",
    "generate_versions_job",
    "iter_generate_versions",
    "job_filename",
    "job_label",
    "parse_values",
    "write_ladder_manifest",
]
