"""Degradations of known intensity, for weakly supervised training and for testing the metric.

Signals are float32 numpy arrays ``[C, N]`` (full scale 1.0) with their sample rate in Hz::

    from deepaq_core.degrade import degrade, degrade_file, FAMILIES
    y, info = degrade(x, 48000, "mp3", bitrate_kbps=64)        # real codec, delay-compensated
    y, info = degrade(x, 48000, "lowpass", cutoff_hz=4000)
    y, info = degrade(x, 48000, "packet_loss", loss_rate=0.05, mode="conceal", seed=0)
    info = degrade_file("clean.flac", "noisy.wav", "white_noise", snr_db=20)

Families, their ladders and label formulas: :data:`FAMILIES` and docs/DEGRADATIONS.md.
User-caused problems raise :class:`DegradationError` (and its subclasses :class:`EncoderMissing`
and :class:`CodecError`), all :class:`deepaq_core.errors.DeePAQError` with one sentence.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from typing import Any

import numpy as np

from .codecs import CODECS, available_codecs, codec_unavailable_reason, encode_decode
from .effects import bandpass, compression, echo, interference, mnru, packet_loss, reverb, time_warp, wow_flutter
from .errors import CodecError, DegradationError, EncoderMissing
from .families import (
    FAMILIES,
    LABEL_MODES,
    Family,
    degrade,
    get_family,
    hybrid_labels,
    isotonic,
    make_ladder,
    teacher_label,
)
from .loudness import normalise_loudness
from .synthetic import bitdepth, clipping, combine, lowpass, noise, pre_echo, separation, spectral_holes
from .teacher import logmel_distance

logger = logging.getLogger(__name__)

# soundfile subtype per output extension. WAV keeps float samples, so clipping, requantisation
# and codec overshoot are stored exactly; FLAC has no float mode and gets 24-bit PCM.
_OUTPUT_SUBTYPES = {".wav": "FLOAT", ".flac": "PCM_24"}


def degrade_file(
    input_path: str | os.PathLike, output_path: str | os.PathLike, kind: str, **params: Any
) -> dict:
    """Degrade an audio file and write the result.

    Parameters
    ----------
    input_path : str or os.PathLike
        Any file :func:`deepaq_core.audio.load_audio` reads; all channels are kept at the native
        rate.
    output_path : str or os.PathLike
        ``.wav`` (32-bit float) or ``.flac`` (24-bit, samples beyond full scale clipped, which is
        logged and counted in ``info["clipped_samples"]``). Same rate and channels as the input,
        and the same length unless the degradation changes time by design (``time_warp``,
        ``packet_loss`` with ``mode="delete"``). Parent folders must exist; the input (or
        interferer) file itself is refused. The file is written under a temporary name in the
        same folder and then renamed, so an existing file is replaced only by a complete one.
    kind : str
        Degradation family or kind, as for :func:`degrade`.
    **params
        Its parameters. For ``"separation"`` and ``"interferer"``, ``interferer`` may also be a
        path; it is loaded at the input's rate and mixed to mono unless its channel count matches.

    Returns
    -------
    dict
        :func:`degrade`'s info plus ``input``, ``output``, ``sample_rate`` (Hz), ``channels``,
        ``frames`` (of the input), ``output_frames`` and ``clipped_samples``.

    Raises
    ------
    deepaq_core.errors.AudioError
        If the input (or interferer) file cannot be read.
    DegradationError
        Unknown kind or bad parameter, an unsupported output extension, or an output that could
        not be written; :class:`EncoderMissing` / :class:`CodecError` for codecs.
    deepaq_core.errors.OutputPathError
        If, before any work, the output's folder is missing, the output is a directory, read-only,
        or the input (or interferer) file.
    """
    from deepaq_core.audio import load_audio
    from deepaq_core.validation import check_output_path

    out = os.fspath(output_path)
    ext = os.path.splitext(out)[1].lower()
    if ext not in _OUTPUT_SUBTYPES:
        raise DegradationError(
            f"The output '{os.path.basename(out)}' must end in .wav or .flac to be written."
        )
    interferer = params.get("interferer")
    inputs = [input_path, interferer if isinstance(interferer, (str, os.PathLike)) else None]
    out = check_output_path(out, inputs=inputs, what="output")
    buf = load_audio(input_path, target_rate=None, channels="all")
    if isinstance(interferer, (str, os.PathLike)):
        other = load_audio(interferer, target_rate=buf.sample_rate, channels="all").samples
        if other.shape[0] != buf.channels:
            other = other.mean(axis=0, keepdims=True)
        params = {**params, "interferer": other}
    y, info = degrade(buf.samples, buf.sample_rate, kind, **params)
    y = np.asarray(y, dtype=np.float32)
    clipped = 0
    if _OUTPUT_SUBTYPES[ext] != "FLOAT":
        clipped = int(np.count_nonzero(np.abs(y) > 1.0))
        if clipped:
            logger.warning("%s: %d samples beyond full scale clipped in the FLAC output", os.path.basename(out), clipped)
            y = np.clip(y, -1.0, 1.0)
    _write_replacing(out, y.T, buf.sample_rate, _OUTPUT_SUBTYPES[ext], "WAV" if ext == ".wav" else "FLAC")
    info.update(
        input=os.path.abspath(os.fspath(input_path)),
        output=os.path.abspath(out),
        sample_rate=int(buf.sample_rate),
        channels=int(buf.channels),
        frames=int(buf.num_samples),
        output_frames=int(y.shape[-1]),
        clipped_samples=clipped,
    )
    return info


def _write_replacing(path: str, frames: np.ndarray, sample_rate: int, subtype: str, fmt: str) -> None:
    """Write ``frames`` ``[N, C]`` to a new file next to ``path``, then rename it onto ``path``.

    A failed or interrupted write never leaves a truncated file under the final name (nor
    destroys an existing one); the temporary file is removed on failure.
    """
    import soundfile as sf

    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
    created = False
    try:
        # Created here (exclusively, with the usual permissions after the umask), filled by libsndfile.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        created = True
        sf.write(tmp, frames, sample_rate, subtype=subtype, format=fmt)
        os.replace(tmp, path)
    except BaseException as exc:
        if created:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, (sf.LibsndfileError, RuntimeError, OSError)):
            logger.debug("writing %s failed: %s", path, exc)
            raise DegradationError(f"The output '{os.path.basename(path)}' could not be written.") from exc
        raise


__all__ = [
    "CODECS",
    "FAMILIES",
    "LABEL_MODES",
    "CodecError",
    "DegradationError",
    "EncoderMissing",
    "Family",
    "available_codecs",
    "bandpass",
    "bitdepth",
    "clipping",
    "codec_unavailable_reason",
    "combine",
    "compression",
    "degrade",
    "degrade_file",
    "echo",
    "encode_decode",
    "get_family",
    "hybrid_labels",
    "interference",
    "isotonic",
    "logmel_distance",
    "lowpass",
    "make_ladder",
    "mnru",
    "noise",
    "normalise_loudness",
    "packet_loss",
    "pre_echo",
    "reverb",
    "separation",
    "spectral_holes",
    "teacher_label",
    "time_warp",
    "wow_flutter",
]
