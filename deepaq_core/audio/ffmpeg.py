"""Fallback decoding through the ``ffmpeg``/``ffprobe`` command-line tools.

libsndfile (via soundfile) covers WAV/FLAC/OGG/MP3; containers such as MP4/M4A (AAC, ALAC),
Matroska/WebM, WMA or AC-3 are handed to ffmpeg when it is installed. ffmpeg decodes to raw
float32 on a pipe, read in fixed-size blocks so memory stays bounded by the output array.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from deepaq_core.errors import AudioError

from .validate import display_name

logger = logging.getLogger(__name__)

# Codecs whose samples have a meaningful bit depth; everything else ffmpeg decodes is lossy.
_LOSSLESS_CODECS = {"flac", "alac", "wavpack", "ape", "tta", "mlp", "truehd", "shorten", "mp4als", "tak"}

_BLOCK_FRAMES = 1 << 16


@dataclass(frozen=True)
class ProbeResult:
    """Stream parameters reported by ffprobe for the first audio stream.

    Attributes
    ----------
    sample_rate : int
        Hz.
    channels : int
        Channel count.
    frames : int
        Samples per channel estimated from the stream/container duration (0 if unknown).
    format : str
        ffmpeg's container format name.
    codec : str
        ffmpeg's codec name, e.g. ``"aac"``.
    bit_depth : int or None
        Bits per sample for PCM/lossless codecs, else None.
    """

    sample_rate: int
    channels: int
    frames: int
    format: str
    codec: str
    bit_depth: int | None


def tools_available() -> bool:
    """Return True if both ``ffmpeg`` and ``ffprobe`` are on PATH."""
    return shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None


def _not_decodable(path: str) -> AudioError:
    return AudioError(f"'{display_name(path)}' is not an audio file that can be decoded.")


def probe(path: str) -> ProbeResult:
    """Describe the first audio stream of ``path`` with ffprobe.

    Parameters
    ----------
    path : str
        File to inspect.

    Returns
    -------
    ProbeResult
        Rate, channels, estimated frames and codec of the first audio stream.

    Raises
    ------
    AudioError
        If ffprobe fails or finds no audio stream (text, images and video-only files end here).
    """
    cmd = [
        "ffprobe", "-v", "error", "-select_streams", "a:0",
        "-show_entries",
        "stream=codec_name,sample_rate,channels,duration,bits_per_raw_sample,bits_per_sample"
        ":format=format_name,duration",
        "-of", "json", path,
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("ffprobe failed on %s: %s", path, exc)
        raise _not_decodable(path) from exc
    if proc.returncode != 0:
        logger.debug("ffprobe rejected %s: %s", path, proc.stderr.decode(errors="replace").strip())
        raise _not_decodable(path)
    try:
        meta = json.loads(proc.stdout.decode(errors="replace") or "{}")
        streams = meta.get("streams") or []
        if not streams:
            raise _not_decodable(path)
        stream = streams[0]
        fmt = meta.get("format") or {}
        rate = int(stream.get("sample_rate") or 0)
        channels = int(stream.get("channels") or 0)
    except (ValueError, TypeError, AttributeError) as exc:
        raise _not_decodable(path) from exc
    if rate <= 0 or channels <= 0:
        raise _not_decodable(path)

    duration = _as_float(stream.get("duration")) or _as_float(fmt.get("duration")) or 0.0
    codec = str(stream.get("codec_name") or "")
    bit_depth = None
    if codec.startswith("pcm_") or codec in _LOSSLESS_CODECS:
        bits = int(stream.get("bits_per_raw_sample") or 0) or int(stream.get("bits_per_sample") or 0)
        bit_depth = bits or None
    return ProbeResult(
        sample_rate=rate,
        channels=channels,
        frames=int(round(duration * rate)),
        format=str(fmt.get("format_name") or ""),
        codec=codec,
        bit_depth=bit_depth,
    )


def _as_float(value: object) -> float | None:
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return result if np.isfinite(result) and result > 0 else None


def decode_blocks(path: str, sample_rate: int, channels: int) -> Iterator[np.ndarray]:
    """Decode the first audio stream with ffmpeg, yielding float32 blocks.

    Parameters
    ----------
    path : str
        File to decode.
    sample_rate : int
        Rate to decode at, Hz (the probed native rate, so ffmpeg does not resample).
    channels : int
        Channel count to decode to (the probed count; pinned so the raw stream layout is known).

    Yields
    ------
    numpy.ndarray
        float32, shape ``[n, channels]``, at ``sample_rate``.

    Raises
    ------
    AudioError
        If ffmpeg fails before producing any audio.
    """
    cmd = [
        "ffmpeg", "-nostdin", "-v", "error", "-i", path, "-map", "0:a:0", "-vn",
        "-ac", str(channels), "-ar", str(sample_rate), "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1",
    ]  # fmt: skip
    frame_bytes = 4 * channels
    # stderr goes to a temporary file: a PIPE nobody drains could fill and deadlock ffmpeg.
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise AudioError(
                f"'{display_name(path)}' needs ffmpeg to be decoded, but ffmpeg could not be started."
            ) from exc
        produced = 0
        try:
            assert proc.stdout is not None
            pending = b""
            while True:
                chunk = proc.stdout.read(_BLOCK_FRAMES * frame_bytes)
                if not chunk:
                    break
                data = pending + chunk
                usable = len(data) - len(data) % frame_bytes
                pending = data[usable:]
                if usable:
                    block = np.frombuffer(data[:usable], dtype="<f4").reshape(-1, channels)
                    produced += block.shape[0]
                    yield block
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
            returncode = proc.wait()
        if returncode != 0:
            err.seek(0)
            message = err.read().decode(errors="replace").strip()
            if produced == 0:
                logger.debug("ffmpeg failed on %s: %s", path, message)
                raise _not_decodable(path)
            # A truncated or slightly corrupt file still decodes most of its audio: keep it.
            logger.warning(
                "ffmpeg reported errors decoding %s (kept %d frames): %s", os.path.basename(path), produced, message
            )
