"""Reading audio files: header inspection, hashing and block-wise decoding."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import numpy as np
import soundfile as sf

from deepaq_core.errors import AudioError
from deepaq_core.validation import check_readable_file

from . import ffmpeg
from .buffer import AudioBuffer, AudioInfo
from .resample import BlockResampler
from .validate import (
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    check_duration,
    check_finite_block,
    check_format,
    check_not_silent,
    display_name,
)

logger = logging.getLogger(__name__)

_HASH_BLOCK = 1 << 20  # 1 MiB
# ~1.4 s at 48 kHz: large enough that per-block Python overhead is negligible, small enough that
# an 8-channel float32 block stays around 2 MiB.
_READ_BLOCK_FRAMES = 1 << 16

_SUBTYPE_BITS = re.compile(r"^(?:PCM|ALAC|DPCM|DWVW)_[SU]?(\d+)$")

# libsndfile decodes MP3 with libmpg123, which prints its own diagnostics ("Note: Illegal
# Audio-MPEG-Header ...", "Note: Trying to resync...") straight to file descriptor 2 from C: a
# garbage or damaged .mp3 would put those lines next to the one-sentence error. Python cannot
# catch them, so file descriptor 2 points at /dev/null while libsndfile opens a file or decodes
# MPEG audio. The redirection is process-wide; a lock and a depth count make nested and
# concurrent uses restore the real stderr exactly once, and the windows are kept short (the open
# call, one block read) so other threads' messages are rarely affected.
_quiet_lock = threading.Lock()
_quiet_depth = 0
_saved_stderr_fd: int | None = None


@contextmanager
def _quiet_c_stderr() -> Iterator[None]:
    """Send what C code writes to file descriptor 2 to /dev/null for the duration."""
    global _quiet_depth, _saved_stderr_fd
    with _quiet_lock:
        if _quiet_depth == 0:
            try:
                sys.stderr.flush()
            except (AttributeError, OSError, ValueError):
                pass
            try:
                saved = os.dup(2)
            except OSError:  # no file descriptor 2 at all (e.g. a windowed app): nothing to hide
                saved = None
            if saved is not None:
                devnull = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(devnull, 2)
                finally:
                    os.close(devnull)
            _saved_stderr_fd = saved
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _saved_stderr_fd is not None:
                os.dup2(_saved_stderr_fd, 2)
                os.close(_saved_stderr_fd)
                _saved_stderr_fd = None


def print_stderr(text: str) -> None:
    """Print a line to standard error even while another thread hides file descriptor 2.

    For the messages a user must see (a batch's last words when it is stopped, each failed row):
    while :func:`_quiet_c_stderr` is active in a helper thread, the line goes to the real stderr
    it saved, so a header read elsewhere cannot swallow it.
    """
    with _quiet_lock:
        if _quiet_depth and _saved_stderr_fd is not None:
            encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
            os.write(_saved_stderr_fd, (text + "\n").encode(encoding, errors="replace"))
        else:
            print(text, file=sys.stderr, flush=True)


def _resolve(path: str | os.PathLike) -> str:
    """Return the absolute path, raising AudioError if it is not a readable regular file."""
    try:
        os.fspath(path)
    except TypeError as exc:
        raise TypeError(f"path must be str or os.PathLike, got {type(path).__name__}") from exc
    return check_readable_file(path, error=AudioError)


def _os_error(path: str, exc: OSError) -> AudioError:
    reason = (exc.strerror or type(exc).__name__).rstrip(".").lower()
    return AudioError(f"Cannot read '{display_name(path)}': {reason}.")


def file_sha256(path: str | os.PathLike) -> str:
    """Hash a file's bytes, reading 1 MiB at a time.

    Parameters
    ----------
    path : str or os.PathLike
        File to hash.

    Returns
    -------
    str
        Lower-case hex SHA-256 digest (64 characters).

    Raises
    ------
    AudioError
        If the file is missing, a directory, or unreadable.
    """
    full = _resolve(path)
    digest = hashlib.sha256()
    try:
        with open(full, "rb") as fh:
            while block := fh.read(_HASH_BLOCK):
                digest.update(block)
    except OSError as exc:
        raise _os_error(full, exc) from exc
    return digest.hexdigest()


def _bit_depth(subtype: str) -> int | None:
    if subtype == "FLOAT":
        return 32
    if subtype == "DOUBLE":
        return 64
    match = _SUBTYPE_BITS.match(subtype)
    return int(match.group(1)) if match else None


def _sndfile_info(path: str):  # -> soundfile's info object, or None
    """Return libsndfile's header info, or None if libsndfile cannot open the file."""
    try:
        with _quiet_c_stderr():
            return sf.info(path)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        # soundfile raises LibsndfileError (a RuntimeError) for unknown or corrupt formats.
        logger.debug("libsndfile cannot open %s: %s", path, exc)
        return None
    except OSError as exc:
        raise _os_error(path, exc) from exc


def _wav_declared_frames(path: str) -> int | None:
    """Frames the data chunk of a RIFF/WAVE file declares, or None if it cannot tell.

    libsndfile clamps a WAV file's frame count to the bytes actually present, so a file cut off in
    the middle of its data reads as a shorter, valid file. The declared size of the ``data``
    chunk (divided by the ``fmt `` chunk's block alignment) says how long it was meant to be. A
    size of 0 or 0xFFFFFFFF (a stream written without a final size) says nothing.
    """
    import struct

    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block_align = None
            while True:
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = fh.read(min(size, 16))
                    if len(fmt) < 16:
                        return None
                    block_align = struct.unpack("<H", fmt[12:14])[0]
                    fh.seek(size - len(fmt) + (size & 1), os.SEEK_CUR)
                elif cid == b"data":
                    if not block_align or size in (0, 0xFFFFFFFF):
                        return None
                    return size // block_align
                else:
                    fh.seek(size + (size & 1), os.SEEK_CUR)
    except (OSError, struct.error):
        return None


def _no_ffmpeg(path: str) -> AudioError:
    return AudioError(
        f"'{display_name(path)}' is not a format libsndfile can read, and decoding it needs ffmpeg, "
        "which was not found on PATH."
    )


# Extensions that are certainly audio containers libsndfile does not read: for these, a missing
# ffmpeg is the real problem and the message should say so.
_FFMPEG_EXTENSIONS = {
    ".m4a", ".mp4", ".aac", ".opus", ".webm", ".mka", ".mkv", ".wma",
    ".ac3", ".eac3", ".alac", ".ape", ".wv", ".amr", ".3gp", ".mov",
}  # fmt: skip


def read_info(path: str | os.PathLike) -> AudioInfo:
    """Describe an audio file without decoding it.

    Parameters
    ----------
    path : str or os.PathLike
        Audio file. WAV/FLAC/OGG/MP3 (and the other libsndfile formats) are read directly; other
        formats need ``ffmpeg``/``ffprobe`` on PATH.

    Returns
    -------
    AudioInfo
        Header information and the SHA-256 of the file bytes. ``frames`` is exact for libsndfile
        formats and estimated from the container duration for ffmpeg formats.

    Raises
    ------
    AudioError
        If the path is missing, a directory, empty, unreadable, or not decodable audio.
    """
    full = _resolve(path)
    label = display_name(full)
    try:
        size = os.path.getsize(full)
    except OSError as exc:
        raise _os_error(full, exc) from exc
    if size == 0:
        raise AudioError(f"'{label}' is an empty file (0 bytes), not audio.")
    sha = file_sha256(full)

    info = _sndfile_info(full)
    if info is not None and info.samplerate > 0 and info.channels > 0:
        frames = max(int(info.frames), 0)
        declared = _wav_declared_frames(full) if str(info.format) == "WAV" else None
        if declared is not None and declared > frames:
            logger.info("%s: the header declares %d frames but the file holds %d (cut off)", full, declared, frames)
        return AudioInfo(
            path=full,
            sample_rate=int(info.samplerate),
            channels=int(info.channels),
            frames=frames,
            duration_s=frames / info.samplerate,
            format=str(info.format),
            subtype=str(info.subtype or ""),
            bit_depth=_bit_depth(str(info.subtype or "")),
            sha256=sha,
            header_frames=declared if declared is not None and declared > frames else None,
        )

    if not ffmpeg.tools_available():
        if os.path.splitext(full)[1].lower() in _FFMPEG_EXTENSIONS:
            raise _no_ffmpeg(full)
        raise AudioError(
            f"'{label}' is not an audio file that can be decoded (ffmpeg, which reads more formats, is not installed)."
        )
    probed = ffmpeg.probe(full)
    return AudioInfo(
        path=full,
        sample_rate=probed.sample_rate,
        channels=probed.channels,
        frames=probed.frames,
        duration_s=probed.frames / probed.sample_rate,
        format=probed.format,
        subtype=probed.codec.upper(),
        bit_depth=probed.bit_depth,
        sha256=sha,
    )


def load_audio(path: str | os.PathLike, target_rate: int | None = None, channels: str = "mono",
               tap=None) -> AudioBuffer:
    """Decode, validate and optionally downmix/resample an audio file.

    Decoding runs block by block: each block is downmixed (if ``channels="mono"``) and fed to a
    streaming soxr resampler before the next is read, so a long multichannel file never exists
    as a float64 or full multichannel copy.

    Parameters
    ----------
    path : str or os.PathLike
        Audio file: any libsndfile format (WAV, FLAC, OGG Vorbis/Opus, MP3, AIFF, ...) or, when
        ``ffmpeg`` is installed, anything ffmpeg decodes (M4A/AAC, WebM, WMA, ...). 8-192 kHz,
        1-8 channels, integer or float samples.
    target_rate : int or None
        Output rate in Hz (8000-192000); None keeps the file's native rate.
    channels : {"mono", "all"}
        ``"mono"`` averages all channels into one (``C = 1``); ``"all"`` keeps them.
    tap : callable, optional
        Given each decoded (and converted) stretch ``[C, n]`` of the output as it is written, in
        order: a view a consumer may read while decoding goes on (see
        :class:`~deepaq_core.audio.loudness.StepMeter`).

    Returns
    -------
    AudioBuffer
        float32 samples ``[C, N]`` at ``target_rate`` (or the native rate), with ``info``
        describing the file (``frames`` updated to the exact decoded count for ffmpeg formats).

    Raises
    ------
    AudioError
        If the file cannot be read or decoded, or fails :func:`validate_signal`'s checks (rate,
        channel count, length, NaN/Inf, silence).
    ValueError
        For an invalid ``channels`` or ``target_rate`` argument.
    """
    if channels not in ("mono", "all"):
        raise ValueError(f"channels must be 'mono' or 'all', got {channels!r}")
    if target_rate is not None and not MIN_SAMPLE_RATE <= int(target_rate) <= MAX_SAMPLE_RATE:
        raise ValueError(f"target_rate must be within {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz, got {target_rate}")

    info = read_info(path)
    # Header checks first: reject a 4 kHz or 16-channel file before decoding an hour of it.
    check_format(info.sample_rate, info.channels, info.path)
    out_rate = int(target_rate) if target_rate is not None else info.sample_rate
    converter = BlockResampler(info.sample_rate, out_rate, info.channels, channels == "mono", info.frames, tap=tap)

    # libsndfile's format names ("WAV", "MP3") are upper-case keys of available_formats();
    # ffprobe's ("mov,mp4,...", "aac") never are, so this tells which decoder described the file.
    if info.format in sf.available_formats():
        check_duration(info.frames, info.sample_rate, info.path)
        blocks = _sndfile_blocks(info.path, quiet=info.format == "MP3")
    else:
        blocks = ffmpeg.decode_blocks(info.path, info.sample_rate, info.channels)

    # NaN/Inf and peak are checked on the native blocks: after resampling a single NaN would have
    # smeared over the filter length and an Inf would have turned into NaN.
    peak = 0.0
    try:
        for block in blocks:
            peak = max(peak, check_finite_block(block, info.path))
            converter.push(block)
    finally:
        # On an early error, close now: the file handle / ffmpeg process must not live on in a
        # traceback until garbage collection.
        blocks.close()
    converter.push(np.zeros((0, info.channels), dtype=np.float32), last=True)
    samples = converter.result()

    if converter.frames_in != info.frames:
        # ffmpeg formats only carry an estimate; libsndfile's MP3 count can also be approximate.
        # For the other libsndfile formats the header count is exact, so decoding fewer frames
        # means the file was cut off: remembered as ``header_frames``.
        logger.debug("%s: header said %d frames, decoded %d", info.path, info.frames, converter.frames_in)
        exact = info.format in sf.available_formats() and info.format != "MP3"
        header = info.header_frames
        if exact and converter.frames_in < info.frames:
            header = max(header or 0, info.frames)
        info = dataclasses.replace(
            info, frames=converter.frames_in, duration_s=converter.frames_in / info.sample_rate, header_frames=header
        )
    check_duration(converter.frames_in, info.sample_rate, info.path)
    check_not_silent(peak, info.path)
    logger.debug(
        "loaded %s: %s/%s %d Hz x%d, %.2f s -> [%d, %d] at %d Hz",
        info.path, info.format, info.subtype, info.sample_rate, info.channels, info.duration_s,
        samples.shape[0], samples.shape[1], out_rate,
    )  # fmt: skip
    return AudioBuffer(samples=samples, sample_rate=out_rate, info=info)


def _sndfile_blocks(path: str, quiet: bool = False):
    """Yield float32 ``[n, C]`` blocks from libsndfile, mapping its errors to AudioError.

    ``quiet`` hides what the decoder prints to file descriptor 2 (libmpg123 for MP3) while the
    file is opened and each block decoded.
    """
    def hush():
        return _quiet_c_stderr() if quiet else nullcontext()

    try:
        with hush():
            fh = sf.SoundFile(path)
        with fh:
            while True:
                with hush():
                    block = fh.read(_READ_BLOCK_FRAMES, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                yield block
    except (sf.LibsndfileError, RuntimeError) as exc:
        logger.debug("libsndfile failed decoding %s: %s", path, exc)
        raise AudioError(f"'{display_name(path)}' is damaged or truncated and cannot be decoded.") from exc
    except OSError as exc:
        raise _os_error(path, exc) from exc
