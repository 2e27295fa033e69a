"""User-facing errors of the degradation generator (each ``str(exc)`` is one sentence)."""

from __future__ import annotations

from deepaq_core.errors import DeePAQError


class DegradationError(DeePAQError, ValueError):
    """A degradation was asked for with an unknown name or a parameter it cannot take.

    Also a ``ValueError``, so library callers that validate their own arguments can catch it the
    usual way, while the CLI reports it as a one-sentence user error.
    """


class EncoderMissing(DegradationError):
    """A real codec was requested but no installed tool can encode or decode it."""


class CodecError(DegradationError):
    """An installed encoder rejected the request (bitrate, channel count) or failed on it."""
