"""Checks of user-supplied values and paths, run before any work starts.

Every check raises a :class:`deepaq_core.errors.DeePAQError` subclass whose message is one
sentence, so a front end (the ``deepaq`` command, the app) can show it as is:

* :func:`check_number` - a number is finite and inside a range (:class:`OptionError`);
* :func:`check_readable_file` - an input exists, is a file and can be opened;
* :func:`check_output_path` / :func:`check_output_paths` - an output can be written: its folder
  exists, it is not a folder, not read-only, and not one of the inputs
  (:class:`OutputPathError`).

The module imports only the standard library, so the command line can validate its arguments
before loading numpy, torch or a model.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping

from deepaq_core.errors import DeePAQError, InputFileError, OptionError, OutputPathError

__all__ = [
    "check_number",
    "check_output_path",
    "check_output_paths",
    "check_readable_file",
    "same_file",
]

PathLike = str | os.PathLike


def _label(path: str) -> str:
    """The last path component (trailing separators ignored), as files are named in messages."""
    base = os.path.basename(os.path.normpath(path)) if path else path
    return base or path


def _fmt(x: float) -> str:
    return f"{x:g}"


def check_number(
    value: object,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    unit: str = "",
) -> float:
    """Return ``value`` as a float if it is finite and within ``[low, high]``.

    Parameters
    ----------
    value : object
        The number as given (float, int or numeric text).
    name : str
        How the user supplied it, e.g. ``"--window"``; starts the message.
    low, high : float or None
        Inclusive bounds (None: unbounded on that side).
    low_open : bool
        Exclude ``low`` itself (``low=0, low_open=True``: strictly positive).
    unit : str
        Plural unit for the message, e.g. ``"seconds"``.

    Returns
    -------
    float
        The value.

    Raises
    ------
    OptionError
        If the value is not a number, NaN, infinite, or out of range.
    """
    units = f" of {unit}" if unit else ""
    if low is not None and high is not None:
        if low_open:
            wanted = f"a number{units} greater than {_fmt(low)} and at most {_fmt(high)}"
        else:
            wanted = f"a number{units} from {_fmt(low)} to {_fmt(high)}"
    elif low is not None:
        if low == 0:
            wanted = f"a {'positive' if low_open else 'non-negative'} number{units}"
        else:
            wanted = f"a number{units} {'greater than' if low_open else 'of at least'} {_fmt(low)}"
    elif high is not None:
        wanted = f"a number{units} of at most {_fmt(high)}"
    else:
        wanted = f"a finite number{units}"
    if isinstance(value, bool):
        raise OptionError(f"{name} must be {wanted}, got {value}.")
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise OptionError(f"{name} must be {wanted}, got '{value}'.") from None
    if not math.isfinite(x):
        raise OptionError(f"{name} must be {wanted}, got {value}.")
    if low is not None and (x < low or (low_open and x == low)):
        raise OptionError(f"{name} must be {wanted}, got {_fmt(x)}.")
    if high is not None and x > high:
        raise OptionError(f"{name} must be {wanted}, got {_fmt(x)}.")
    return x


def check_readable_file(path: PathLike, *, error: type[DeePAQError] = InputFileError) -> str:
    """Return the absolute path of ``path`` if it is an existing, readable regular file.

    Parameters
    ----------
    path : str or os.PathLike
        The file (``~`` is expanded).
    error : type
        The :class:`DeePAQError` subclass to raise (``AudioError`` for audio inputs).

    Returns
    -------
    str
        Absolute path.

    Raises
    ------
    DeePAQError
        (``error``) naming the file: empty name, not found, a directory, or permission denied.
    """
    text = os.fspath(path)
    if not text.strip():
        raise error("An input file name is empty.")
    full = os.path.abspath(os.path.expanduser(text))
    label = _label(full)
    if os.path.isdir(full):
        raise error(f"Cannot read '{label}': it is a directory, not a file.")
    if not os.path.exists(full):
        raise error(f"Cannot read '{label}': file not found.")
    if not os.path.isfile(full):
        raise error(f"Cannot read '{label}': it is not a regular file.")
    if not os.access(full, os.R_OK):
        raise error(f"Cannot read '{label}': permission denied.")
    return full


def same_file(a: PathLike, b: PathLike) -> bool:
    """True if ``a`` and ``b`` name the same file (links, ``..`` and hard links included).

    Existing files are compared with :func:`os.path.samefile` (device and inode); otherwise the
    resolved paths (:func:`os.path.realpath`) are compared.
    """
    a_full = os.path.abspath(os.path.expanduser(os.fspath(a)))
    b_full = os.path.abspath(os.path.expanduser(os.fspath(b)))
    try:
        return os.path.samefile(a_full, b_full)
    except OSError:  # one of them does not exist (yet)
        return os.path.normcase(os.path.realpath(a_full)) == os.path.normcase(os.path.realpath(b_full))


def check_output_path(path: PathLike, *, inputs: Iterable[PathLike | None] = (), what: str = "output") -> str:
    """Check, before any work, that ``path`` can be written without harming an input.

    Parameters
    ----------
    path : str or os.PathLike
        The output file (``~`` is expanded). It may exist (it will be replaced) but must not be a
        directory, read-only, or one of ``inputs``; its folder must exist and be writable.
    inputs : iterable of paths
        Input files of the same run (None entries are skipped).
    what : str
        How the output is named in messages, e.g. ``"--frames file"``.

    Returns
    -------
    str
        Absolute path.

    Raises
    ------
    OutputPathError
        One sentence naming the problem.
    """
    text = os.fspath(path)
    if not text.strip():
        raise OutputPathError(f"The {what} name is empty.")
    full = os.path.abspath(os.path.expanduser(text))
    label = _label(full)
    if os.path.isdir(full):
        raise OutputPathError(f"The {what} '{label}' is a directory; give a file name.")
    parent = os.path.dirname(full)
    if not os.path.exists(parent):
        raise OutputPathError(f"The folder '{parent}' for the {what} '{label}' does not exist.")
    if not os.path.isdir(parent):
        raise OutputPathError(f"The {what} '{label}' cannot be written: '{parent}' is not a folder.")
    for inp in inputs:
        if inp is not None and same_file(full, inp):
            raise OutputPathError(
                f"The {what} '{label}' is also an input file; choose another name so the input is not overwritten."
            )
    if os.path.exists(full):
        if not os.access(full, os.W_OK):
            raise OutputPathError(f"The {what} '{label}' is read-only.")
    elif not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"The folder '{parent}' for the {what} '{label}' is not writable.")
    return full


def check_output_paths(
    outputs: Mapping[str, PathLike | None], *, inputs: Iterable[PathLike | None] = ()
) -> dict[str, str]:
    """:func:`check_output_path` for several outputs, which must also differ from each other.

    Parameters
    ----------
    outputs : mapping
        ``{how the output is named: path or None}``; None entries (not requested) are skipped.
    inputs : iterable of paths
        Input files of the same run.

    Returns
    -------
    dict
        ``{name: absolute path}`` of the requested outputs.

    Raises
    ------
    OutputPathError
        For the first problem found.
    """
    inputs = [p for p in inputs if p is not None]
    checked: dict[str, str] = {}
    for what, path in outputs.items():
        if path is None:
            continue
        full = check_output_path(path, inputs=inputs, what=what)
        for other, other_full in checked.items():
            if same_file(full, other_full):
                raise OutputPathError(f"The {what} and the {other} are the same file '{_label(full)}'.")
        checked[what] = full
    return checked
