"""Real lossy codecs through installed command-line encoders: encode, decode, realign.

Every round trip goes: float32 WAV in a temporary folder -> encoder at a bitrate -> decoder
(ffmpeg when installed, since it writes float samples and applies the priming / pre-skip
metadata the containers carry; the tool's own decoder otherwise) -> soxr back to the input rate
if the codec changed it -> the remaining delay measured with
:func:`deepaq_core.audio.estimate_lag` and compensated -> trimmed/padded to the input length.
The output therefore lines up with the input to within half a sample, as a training pair must.
Delays that metadata does not remove (measured with ffmpeg 5.1): 481 samples at the coded rate
for MP2, 1105 samples at the coded rate for some MP3 bitrates where lame resamples.

Tools per codec, in order of preference:

========  ==============================  ==============================
codec     encoder                         decoder
========  ==============================  ==============================
aac       ffmpeg (native AAC-LC)          ffmpeg
mp3       lame, else ffmpeg libmp3lame    ffmpeg, else ``lame --decode``
opus      opusenc, else ffmpeg libopus    ffmpeg, else opusdec
vorbis    oggenc, else ffmpeg libvorbis   ffmpeg, else oggdec
mp2       ffmpeg (MPEG-1/2 Layer II)      ffmpeg
========  ==============================  ==============================
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from deepaq_core.audio import estimate_lag, resample

from .errors import CodecError, EncoderMissing

logger = logging.getLogger(__name__)

CODECS = ("aac", "mp3", "opus", "vorbis", "mp2")

# Codec delays are tens of milliseconds at most (MP3 decoder delay + padding ~ 50 ms at 22 kHz);
# a narrow search keeps a badly damaged low-bitrate output from locking onto a repetition.
_MAX_DELAY_S = 0.25
_TIMEOUT_S = 600

# MPEG audio bitrate tables, kbit/s (ISO 11172-3 and 13818-3). Layer III MPEG-1 at 32/44.1/48 kHz,
# MPEG-2/2.5 "LSF" at half and quarter rates; lame picks the sample rate that fits the bitrate.
_MP3_MPEG1 = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MP3_LSF = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_MP3_ALL = tuple(sorted(set(_MP3_MPEG1) | set(_MP3_LSF)))
_MP2_MPEG1 = (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384)
_MP2_LSF = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_MPEG1_RATES = (32000, 44100, 48000)
_LSF_RATES = (16000, 22050, 24000)
# Sample rates ffmpeg's native AAC encoder accepts (the MPEG-4 sampling-frequency table).
_AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)

# (min, max) total bitrate accepted per codec, kbit/s, for the checks before encoding. Opus's
# limits are per channel (opusenc's documented 6-256 kbit/s per channel).
_AAC_RANGE = (8.0, 512.0)
_OPUS_PER_CHANNEL = (6.0, 256.0)
_MAX_CHANNELS = {"aac": 8, "mp3": 2, "opus": 8, "vorbis": 8, "mp2": 2}


@dataclass(frozen=True)
class _Route:
    """One way to encode a codec: a standalone tool, or ffmpeg with one of its encoders."""

    tool: str  # executable looked up on PATH
    ffmpeg_encoder: str | None  # ffmpeg's encoder name when tool == "ffmpeg"
    own_decoder: str | None  # the standalone tool's decoder, used when ffmpeg is missing


_ROUTES: dict[str, tuple[_Route, ...]] = {
    "aac": (_Route("ffmpeg", "aac", None),),
    "mp3": (_Route("lame", None, "lame"), _Route("ffmpeg", "libmp3lame", None)),
    "opus": (_Route("opusenc", None, "opusdec"), _Route("ffmpeg", "libopus", None)),
    "vorbis": (_Route("oggenc", None, "oggdec"), _Route("ffmpeg", "libvorbis", None)),
    "mp2": (_Route("ffmpeg", "mp2", None),),
}
_EXTENSIONS = {"aac": ".m4a", "mp3": ".mp3", "opus": ".opus", "vorbis": ".ogg", "mp2": ".mp2"}


@functools.lru_cache(maxsize=8)
def _ffmpeg_encoders(ffmpeg_path: str) -> frozenset[str]:
    """Names of the audio encoders an ffmpeg binary was built with (cached per binary path)."""
    try:
        proc = subprocess.run(
            [ffmpeg_path, "-hide_banner", "-encoders"], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.debug("could not list ffmpeg encoders: %s", exc)
        return frozenset()
    names = set()
    for line in proc.stdout.decode(errors="replace").splitlines():
        parts = line.split()
        # Lines look like " A....D libmp3lame   libmp3lame MP3 ..."; the flags' first letter is the type.
        if len(parts) >= 2 and parts[0].startswith("A") and len(parts[0]) == 6:
            names.add(parts[1])
    return frozenset(names)


def _route_usable(route: _Route) -> bool:
    """True when the route's encoder is installed and something can decode its output."""
    path = shutil.which(route.tool)
    if path is None:
        return False
    if route.ffmpeg_encoder is not None:
        return route.ffmpeg_encoder in _ffmpeg_encoders(path)
    return shutil.which("ffmpeg") is not None or (
        route.own_decoder is not None and shutil.which(route.own_decoder) is not None
    )


def _pick_route(codec: str) -> _Route | None:
    for route in _ROUTES[codec]:
        if _route_usable(route):
            return route
    return None


def _check_codec_name(codec: str) -> str:
    name = str(codec).lower()
    if name not in _ROUTES:
        raise CodecError(f"Unknown codec '{codec}'; choose one of {', '.join(CODECS)}.")
    return name


def codec_unavailable_reason(codec: str) -> str | None:
    """Explain, in one sentence, why a codec cannot be used here.

    Parameters
    ----------
    codec : str
        One of :data:`CODECS`.

    Returns
    -------
    str or None
        None when the codec is usable; otherwise a one-sentence reason naming the missing tool,
        e.g. ``"The mp3 encoder needs 'lame' or 'ffmpeg', and neither is installed."``.
    """
    name = _check_codec_name(codec)
    if _pick_route(name) is not None:
        return None
    routes = _ROUTES[name]
    ffmpeg_path = shutil.which("ffmpeg")
    ffmpeg_route = next((r for r in routes if r.tool == "ffmpeg"), None)
    standalone = [r for r in routes if r.tool != "ffmpeg"]
    # A standalone encoder that is installed but cannot be decoded (no ffmpeg, no own decoder).
    for route in standalone:
        if shutil.which(route.tool) is not None:
            return (
                f"Decoding {name} needs 'ffmpeg' or '{route.own_decoder}', and neither is installed."
            )
    if ffmpeg_path is not None and ffmpeg_route is not None:
        # ffmpeg exists but was built without the encoder.
        if standalone:
            tools = " or ".join(f"'{r.tool}'" for r in standalone)
            return (
                f"The {name} encoder needs {tools} or an ffmpeg built with {ffmpeg_route.ffmpeg_encoder}, "
                f"and neither is installed."
            )
        encoder = ffmpeg_route.ffmpeg_encoder
        return f"The {name} encoder needs an ffmpeg built with the '{encoder}' encoder, which this ffmpeg lacks."
    tools = [f"'{r.tool}'" for r in routes]
    if len(tools) == 1:
        return f"The {name} encoder needs {tools[0]}, and it is not installed."
    return f"The {name} encoder needs {' or '.join(tools)}, and neither is installed."


def available_codecs() -> dict[str, str | None]:
    """Which codecs can be used here, and through which tool.

    Returns
    -------
    dict
        ``{codec: tool}`` for every name in :data:`CODECS`: the executable that will encode it
        (``"lame"``, ``"opusenc"``, ``"oggenc"`` or ``"ffmpeg"``), or None when unavailable (see
        :func:`codec_unavailable_reason` for why).
    """
    result: dict[str, str | None] = {}
    for codec in CODECS:
        route = _pick_route(codec)
        result[codec] = route.tool if route is not None else None
    return result


# ---------------------------------------------------------------------------------- bitrates


def _nearest(value: float, allowed: tuple[int, ...]) -> int:
    return int(min(allowed, key=lambda b: (abs(b - value), b)))


def _family_rates(sr: int, table: tuple[int, ...]) -> int:
    """The rate of ``table`` in ``sr``'s family (multiples of 8 kHz vs 11.025 kHz), not below ``sr`` if possible."""
    same_family = [r for r in table if (r % 11025 == 0) == (sr % 11025 == 0)]
    above = [r for r in same_family if r >= sr]
    return min(above) if above else max(same_family)


def _plan(codec: str, route: _Route, sr: int, channels: int, bitrate_kbps: float) -> tuple[float, int | None]:
    """Bitrate to ask the encoder for and the rate to feed it (None: the input rate, the tool copes).

    Raises
    ------
    CodecError
        For a bitrate outside what the codec can do or too many channels.
    """
    if not np.isfinite(bitrate_kbps) or bitrate_kbps <= 0:
        raise CodecError(f"The {codec} bitrate must be a positive number of kbit/s, got {bitrate_kbps}.")
    if channels > _MAX_CHANNELS[codec]:
        raise CodecError(
            f"The {codec} codec takes at most {_MAX_CHANNELS[codec]} channels, and the signal has {channels}."
        )
    if codec == "aac":
        lo, hi = _AAC_RANGE
        if not lo <= bitrate_kbps <= hi:
            raise CodecError(f"AAC bitrates must be within {lo:g}-{hi:g} kbit/s, got {bitrate_kbps:g}.")
        rate = sr if sr in _AAC_RATES else _family_rates(sr, _AAC_RATES)
        return float(bitrate_kbps), rate
    if codec == "opus":
        lo, hi = _OPUS_PER_CHANNEL[0] * channels, _OPUS_PER_CHANNEL[1] * channels
        if not lo <= bitrate_kbps <= hi:
            raise CodecError(
                f"Opus bitrates for {channels} channel(s) must be within {lo:g}-{hi:g} kbit/s, got {bitrate_kbps:g}."
            )
        if route.tool == "opusenc" and channels > 2 and bitrate_kbps < 16 * channels:
            # opusenc would silently downmix to stereo, and the result could not match the input.
            raise CodecError(
                f"opusenc downmixes surround audio below 16 kbit/s per channel, so {channels} channels "
                f"need at least {16 * channels} kbit/s."
            )
        # Opus always codes at 48 kHz internally; opusenc resamples itself, ffmpeg's libopus wants it done.
        return float(bitrate_kbps), (48000 if route.tool == "ffmpeg" else None)
    if codec == "vorbis":
        # The feasible range depends on rate and channels in libvorbis' tuning tables; the encoder
        # itself is the authority, and its refusal becomes a one-sentence CodecError.
        if bitrate_kbps < 8 or bitrate_kbps > 500 * channels:
            raise CodecError(f"Vorbis bitrates must be within 8-{500 * channels} kbit/s, got {bitrate_kbps:g}.")
        # libvorbis has no bitrate tuning above 50 kHz (a 96 kHz file fails at any usual
        # bitrate), so high-rate input is coded at 48 / 44.1 kHz, as lame and Opus do anyway.
        return float(bitrate_kbps), (_family_rates(sr, (44100, 48000)) if sr > 48000 else None)
    if codec == "mp3":
        if not _MP3_ALL[0] <= round(bitrate_kbps) <= _MP3_ALL[-1]:
            raise CodecError(f"MP3 bitrates must be within 8-320 kbit/s, got {bitrate_kbps:g}.")
        # Below 32 kbit/s, or for input under 32 kHz, only MPEG-2/2.5 (LSF) rates and bitrates
        # exist (8-160 kbit/s); otherwise MPEG-1's table. lame makes the same choice (and
        # resamples to suit, e.g. 16 kHz at 16 kbit/s); snapping here makes the reported
        # bitrate the one actually coded (lame itself silently turns 144 into 128 at 44.1 kHz).
        lsf = sr < 32000 or bitrate_kbps < _MP3_MPEG1[0]
        used = float(_nearest(bitrate_kbps, _MP3_LSF if lsf else _MP3_MPEG1))
        if route.tool == "lame":
            return used, None
        # ffmpeg's libmp3lame pins the output rate, so pick the MPEG version's rate here.
        if lsf:
            return used, _family_rates(min(sr, 24000), _LSF_RATES)
        return used, _family_rates(min(sr, 48000), _MPEG1_RATES)
    # mp2: MPEG-1 Layer II at 32/44.1/48 kHz, MPEG-2 LSF at 16/22.05/24 kHz, each with its table.
    if not 8 <= round(bitrate_kbps) <= 384:
        raise CodecError(f"MP2 bitrates must be within 8-384 kbit/s, got {bitrate_kbps:g}.")
    mpeg1_rate = _family_rates(min(sr, 48000), _MPEG1_RATES)
    if sr < 32000 and bitrate_kbps <= _MP2_LSF[-1]:
        rate = _family_rates(sr, _LSF_RATES)
    elif bitrate_kbps < _MP2_MPEG1[0]:
        rate = mpeg1_rate // 2  # 48 -> 24 kHz, 44.1 -> 22.05 kHz, 32 -> 16 kHz: LSF for low bitrates
    else:
        rate = mpeg1_rate
    allowed = _MP2_MPEG1 if rate in _MPEG1_RATES else _MP2_LSF
    return float(_nearest(bitrate_kbps, allowed)), rate


# ------------------------------------------------------------------------------- subprocesses


def _run(cmd: list[str], what: str) -> None:
    """Run one tool; raise CodecError (one sentence) when it fails, keeping its stderr in the log."""
    logger.debug("running %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=_TIMEOUT_S, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise CodecError(f"'{os.path.basename(cmd[0])}' took longer than {_TIMEOUT_S} s to {what}.") from exc
    except OSError as exc:
        raise EncoderMissing(f"'{os.path.basename(cmd[0])}' could not be started to {what}.") from exc
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).decode(errors="replace").strip()
        logger.debug("%s failed (exit %d): %s", cmd[0], proc.returncode, message)
        raise CodecError(f"'{os.path.basename(cmd[0])}' failed to {what} (exit code {proc.returncode}).")


def _encode_cmd(codec: str, route: _Route, src: str, dst: str, kbps: float) -> list[str]:
    tool = shutil.which(route.tool) or route.tool
    rate = f"{kbps:g}"
    if route.tool == "lame":
        # -b: constant bitrate; --noreplaygain: no analysis pass, it changes nothing in the audio.
        return [tool, "--quiet", "--noreplaygain", "-b", str(int(kbps)), src, dst]
    if route.tool == "opusenc":
        return [tool, "--quiet", "--bitrate", rate, src, dst]
    if route.tool == "oggenc":
        return [tool, "-Q", "-b", str(int(round(kbps))), "-o", dst, src]
    return [
        tool, "-nostdin", "-v", "error", "-y", "-i", src,
        "-c:a", route.ffmpeg_encoder or "", "-b:a", f"{int(round(kbps * 1000))}", dst,
    ]  # fmt: skip


def _decode(route: _Route, src: str, dst: str) -> str:
    """Decode ``src`` into the WAV file ``dst``; return the decoder's name."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is not None:
        # Float output: no 16-bit rounding on top of the codec's own noise.
        _run([ffmpeg, "-nostdin", "-v", "error", "-y", "-i", src, "-c:a", "pcm_f32le", dst], "decode the codec output")
        return "ffmpeg"
    decoder = shutil.which(route.own_decoder or "")
    if decoder is None:  # raced with the availability check (tool removed meanwhile)
        raise EncoderMissing(f"Decoding needs 'ffmpeg' or '{route.own_decoder}', and neither is installed.")
    if route.own_decoder == "lame":
        _run([decoder, "--quiet", "--decode", src, dst], "decode the codec output")
    elif route.own_decoder == "opusdec":
        _run([decoder, "--quiet", "--float", src, dst], "decode the codec output")
    else:
        _run([decoder, "-Q", "-o", dst, src], "decode the codec output")
    return route.own_decoder or ""


def _shift(y: np.ndarray, shift: int, length: int) -> np.ndarray:
    """``out[:, n] = y[:, n + shift]`` for ``0 <= n < length``, zeros where ``y`` has no sample."""
    out = np.zeros((y.shape[0], length), dtype=np.float32)
    src_lo = max(0, shift)
    dst_lo = max(0, -shift)
    count = min(length - dst_lo, y.shape[1] - src_lo)
    if count > 0:
        out[:, dst_lo : dst_lo + count] = y[:, src_lo : src_lo + count]
    return out


def encode_decode(x: np.ndarray, sr: int, codec: str, bitrate_kbps: float) -> tuple[np.ndarray, dict]:
    """Pass a signal through a real codec at a bitrate and bring it back aligned.

    Parameters
    ----------
    x : numpy.ndarray
        float, shape ``[C, N]`` (or ``[N]``), full scale 1.0, at ``sr``.
    sr : int
        Sample rate of ``x``, Hz (8-192 kHz; resampled to a rate the codec supports if needed).
    codec : {"aac", "mp3", "opus", "vorbis", "mp2"}
        Codec to use (see the module docstring for the tools).
    bitrate_kbps : float
        Target total bitrate, kbit/s. MP3 and MP2 only have fixed bitrates: the nearest legal one
        is used (``info["bitrate_kbps_used"]``). Opus 6-256 kbit/s per channel, AAC 8-512,
        Vorbis whatever libvorbis accepts for the rate and channel count (e.g. 32-192 mono,
        48-500 stereo at 44.1/48 kHz).

    Returns
    -------
    y : numpy.ndarray
        float32, same shape as ``x``, at ``sr``, delay-compensated so that ``y[n]`` lines up with
        ``x[n]``; zero-padded where the codec delivered fewer samples.
    info : dict
        ``codec``, ``encoder`` (e.g. ``"lame"``, ``"ffmpeg:libopus"``), ``decoder``,
        ``bitrate_kbps`` (requested), ``bitrate_kbps_used`` (asked of the encoder),
        ``file_kbps`` (size of the encoded file over its duration, container included),
        ``codec_rate_hz`` (rate of the decoded stream), ``delay_samples`` (measured delay of the
        decoded signal at ``sr``, sub-sample; positive = late), ``delay_ms``,
        ``shift_samples`` (integer shift applied), ``lag_confidence`` (0..1) and ``elapsed_s``.

    Raises
    ------
    EncoderMissing
        When no installed tool can encode (or decode) ``codec``.
    CodecError
        For a bitrate or channel count the codec cannot take, or when the encoder fails.
    """
    started = time.perf_counter()
    name = _check_codec_name(codec)
    data = np.asarray(x, dtype=np.float32)
    one_d = data.ndim == 1
    if one_d:
        data = data[np.newaxis, :]
    if data.ndim != 2 or data.shape[1] == 0:
        raise ValueError(f"x must have shape [C, N] or [N] with N > 0, got {np.shape(x)}")
    channels, length = data.shape
    route = _pick_route(name)
    if route is None:
        raise EncoderMissing(codec_unavailable_reason(name))
    kbps_used, enc_rate = _plan(name, route, int(sr), channels, float(bitrate_kbps))
    if kbps_used != float(bitrate_kbps):
        logger.info("%s: %g kbit/s is not a legal bitrate; using %g kbit/s", name, bitrate_kbps, kbps_used)

    with tempfile.TemporaryDirectory(prefix="deepaq_codec_") as tmp:
        src = os.path.join(tmp, "input.wav")
        enc = os.path.join(tmp, "coded" + _EXTENSIONS[name])
        dec = os.path.join(tmp, "decoded.wav")
        feed_rate = enc_rate or int(sr)
        feed = resample(data, int(sr), feed_rate)
        # Float WAV lets values beyond full scale reach the encoder unclipped; lame 3.100 misreads
        # float WAV as integers (garbage out), so it gets 24-bit PCM, clipped at full scale.
        subtype = "PCM_24" if route.tool == "lame" else "FLOAT"
        if subtype != "FLOAT" and np.abs(feed).max() > 1.0:
            logger.info("%s: input exceeds full scale; clipped in the 24-bit file fed to %s", name, route.tool)
        sf.write(src, feed.T, feed_rate, subtype=subtype)
        _run(
            _encode_cmd(name, route, src, enc, kbps_used),
            f"encode {name} at {kbps_used:g} kbit/s for {channels} channel(s) at {feed_rate} Hz",
        )
        coded_bytes = os.path.getsize(enc)
        decoder = _decode(route, enc, dec)
        decoded, codec_rate = sf.read(dec, dtype="float32", always_2d=True)
    decoded = decoded.T  # [C', M]
    if decoded.shape[0] != channels:
        # Decoders keep the channel count; guard anyway rather than mis-broadcast silently.
        logger.warning("%s decoder returned %d channels for %d; mixing to match", name, decoded.shape[0], channels)
        decoded = np.repeat(decoded.mean(axis=0, keepdims=True), channels, axis=0)
    if decoded.shape[1] == 0:
        raise CodecError(f"The {name} decoder returned no audio.")
    y = resample(decoded, int(codec_rate), int(sr))

    lag, confidence = estimate_lag(data.mean(axis=0), y.mean(axis=0), int(sr), max_lag_s=_MAX_DELAY_S)
    shift = int(round(lag))
    out = _shift(y, shift, length)
    elapsed = time.perf_counter() - started
    file_kbps = coded_bytes * 8 / 1000 / (length / sr)
    info = {
        "codec": name,
        "encoder": route.tool if route.ffmpeg_encoder is None else f"ffmpeg:{route.ffmpeg_encoder}",
        "decoder": decoder,
        "bitrate_kbps": float(bitrate_kbps),
        "bitrate_kbps_used": float(kbps_used),
        "file_kbps": float(file_kbps),
        "codec_rate_hz": int(codec_rate),
        "delay_samples": float(lag),
        "delay_ms": float(1000.0 * lag / sr),
        "shift_samples": shift,
        "lag_confidence": float(confidence),
        "elapsed_s": float(elapsed),
    }
    logger.debug(
        "%s %g kbit/s via %s/%s: file %.1f kbit/s, codec rate %d Hz, delay %.2f samples (conf %.2f), %.2f s",
        name, kbps_used, info["encoder"], decoder, file_kbps, codec_rate, lag, confidence, elapsed,
    )  # fmt: skip
    if confidence < 0.3:
        logger.info("%s at %g kbit/s: delay estimate is uncertain (correlation %.2f)", name, kbps_used, confidence)
    return (out[0] if one_d else out), info
