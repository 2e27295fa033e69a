"""Exceptions that carry a one-sentence, user-facing message.

Anything a user can cause (a bad file, a missing model, a missing encoder) raises a subclass of
:class:`DeePAQError`; the CLI prints ``str(exc)`` and exits with code 2, the GUI shows it without
blocking. Programming errors stay ordinary exceptions.
"""


class DeePAQError(Exception):
    """A user-caused error; ``str(exc)`` is one clear sentence."""


class AudioError(DeePAQError):
    """An input file is missing, unreadable, not audio, or unusable for scoring."""


class ModelError(DeePAQError):
    """A model or checkpoint cannot be found, is malformed, or is not supported."""


class Cancelled(DeePAQError):
    """Long-running work was cancelled cooperatively by the caller."""


class OptionError(DeePAQError):
    """A user-supplied number or setting is not finite, out of range, or inconsistent."""


class InputFileError(DeePAQError):
    """A non-audio input (a batch list, a settings file) is missing, a folder, or unreadable."""


class OutputPathError(DeePAQError):
    """An output path cannot be written: missing folder, a directory, read-only, or an input file."""
