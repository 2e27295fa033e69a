"""Degradations met on the way to a listener: transmission, rooms, dynamics, playback speed.

Same conventions as :mod:`deepaq_core.degrade.synthetic`: each function takes a float signal
``x`` of shape ``[C, N]`` (or ``[N]``) at ``sr`` Hz and returns ``(y, info)`` with ``y`` float32
and ``info`` a JSON-serialisable dict. ``y`` has the shape of ``x`` and is time-aligned with it,
except where changing time is the point: :func:`packet_loss` with ``mode="delete"`` (shorter),
:func:`time_warp` (``N / factor`` samples) and :func:`wow_flutter` (same length, samples moved
by up to ``info["max_shift_ms"]``). Random degradations take a ``seed`` (``None`` draws fresh
entropy); one seed makes the rungs of a ladder share their randomness (the frames lost at one
loss rate are a subset of those lost at a higher one; the noise of :func:`mnru` and the
interferer of :func:`interference` are the same at every rung).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from .errors import DegradationError
from .synthetic import _as_2d, _db, _out, _power

logger = logging.getLogger(__name__)

PACKET_LOSS_MODES = ("silence", "delete", "repeat", "conceal")
_ECHO_FLOOR = 1e-4  # feedback echoes below -80 dB re the signal are left out
_LN_1000 = math.log(1000.0)  # amplitude ratio of a 60 dB decay


def _flag(value: object, what: str) -> bool:
    """A yes/no parameter: a bool, or 0 / 1 (as the CLI may pass it)."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
        return bool(value)
    raise DegradationError(f"The {what} must be true or false, got {value!r}.")


def _ramp(n: int) -> np.ndarray:
    """Raised-cosine fade-in weights ``[n]`` rising from above 0 to below 1 (complement = fade-out)."""
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)


# ----------------------------------------------------------------------------- packet loss


def packet_loss(
    x: np.ndarray,
    sr: int,
    loss_rate: float,
    frame_ms: float = 20.0,
    mode: str = "conceal",
    seed: int | None = None,
) -> tuple[np.ndarray, dict]:
    """Lose frames as a packet network does, and handle the gaps like a receiver.

    The signal is cut into frames of ``frame_ms`` (the last one may be shorter) and
    ``round(loss_rate * frames)`` of them, chosen at random, are lost: exactly that many, and
    with one seed the frames lost at a lower rate are a subset of those lost at a higher one.
    Losses are independent of each other (no burst model), so adjacent losses happen only by
    chance.

    Parameters
    ----------
    x : numpy.ndarray
        ``[C, N]`` or ``[N]`` float at ``sr``.
    sr : int
        Hz.
    loss_rate : float
        Fraction of frames lost, in [0, 0.5]. All channels lose the same frames.
    frame_ms : float
        Frame (packet) duration, ms; rounded to whole samples, at least one.
    mode : {"conceal", "silence", "delete", "repeat"}
        What the receiver plays in place of a lost frame:

        * ``"silence"``: zeros (no concealment);
        * ``"delete"``: nothing, the frame is removed and the output is shorter
          (``info["removed_s"]``), as when a jitter buffer drops late packets;
        * ``"repeat"``: the previous frame again (hard edges; a run of lost frames repeats the
          last good one; silence when the first frame is lost);
        * ``"conceal"``: a basic packet-loss concealment in the manner of ITU-T G.711
          Appendix I, with the frame as the repetition period: the last good frame is repeated
          periodically, the end of the good signal is cross-faded into the repetition
          (raised cosine over ``min(5 ms, frame / 4)``), the repetition keeps its level for one
          frame and then fades to silence over two more (long bursts go quiet instead of
          buzzing), and the next good frame is cross-faded in over the same length.
    seed : int or None
        Which frames are lost.

    Returns
    -------
    y : numpy.ndarray
        float32 ``[C, N]`` (``[C, N - removed]`` for ``"delete"``).
    info : dict
        ``loss_rate``, ``mode``, ``frame_ms`` (as rounded), ``packets`` (frames in the signal),
        ``lost_packets``, ``loss_fraction`` (lost / packets), ``removed_s`` (duration removed, s;
        0 unless ``"delete"``), ``output_samples``.
    """
    data, one_d = _as_2d(x)
    if not 0 <= loss_rate <= 0.5:
        raise DegradationError(f"The packet loss rate must be within [0, 0.5], got {loss_rate}.")
    if not frame_ms > 0:
        raise DegradationError(f"The packet frame must be a positive number of ms, got {frame_ms}.")
    if mode not in PACKET_LOSS_MODES:
        raise DegradationError(f"Packet loss mode must be one of {', '.join(PACKET_LOSS_MODES)}, got '{mode}'.")
    n = data.shape[1]
    frame = max(1, int(round(frame_ms * sr / 1000.0)))
    n_frames = -(-n // frame)
    # One uniform draw per frame, ranked: the k lowest are lost, so a ladder generated with one
    # seed nests and the count is exact.
    order = np.argsort(np.random.default_rng(seed).random(n_frames), kind="stable")
    k = int(round(loss_rate * n_frames))
    lost = np.zeros(n_frames, dtype=bool)
    lost[order[:k]] = True
    removed = 0
    if not lost.any():
        y = data.copy()
    elif mode == "delete":
        keep = np.repeat(~lost, frame)[:n]
        y = data[:, keep]
        removed = n - y.shape[1]
    elif mode == "silence":
        y = data * np.repeat(~lost, frame)[:n]
    else:
        y = data.copy()
        fade = max(1, min(int(round(0.005 * sr)), frame // 4)) if mode == "conceal" else 0
        edges = np.flatnonzero(np.diff(np.concatenate(([0], lost.astype(np.int8), [0]))))
        for a, b in zip(edges[0::2], edges[1::2]):  # runs of lost frames [a, b)
            _fill_gap(y, a * frame, min(b * frame, n), frame, fade)
    info = {
        "loss_rate": float(loss_rate),
        "mode": mode,
        "frame_ms": 1000.0 * frame / sr,
        "packets": int(n_frames),
        "lost_packets": k,
        "loss_fraction": k / n_frames,
        "removed_s": removed / sr,
        "output_samples": int(y.shape[1]),
    }
    return _out(y, one_d), info


def _fill_gap(y: np.ndarray, start: int, end: int, frame: int, fade: int) -> None:
    """Replace the lost ``y[:, start:end]`` in place from the frame before it (:func:`packet_loss`).

    ``fade = 0`` repeats the previous frame as it is (``"repeat"``); ``fade > 0`` conceals
    (``"conceal"``): cross-fades of ``fade`` samples in and out, level held for one frame and
    then faded to silence over two.
    """
    n = y.shape[1]
    length = end - start
    history = None  # without a full frame before the gap: silence
    if start >= frame:
        lead = min(fade, start - frame)
        if lead > 0:
            # The last good samples blend into the ones a frame earlier, so that the periodic
            # copy that follows continues them without a step.
            w = _ramp(lead)
            earlier = y[:, start - frame - lead : start - frame]
            y[:, start - lead : start] = (1 - w) * y[:, start - lead : start] + w * earlier
        history = y[:, start - frame : start].copy()
    tail = min(fade, n - end)
    if history is None:
        sub = np.zeros((y.shape[0], length + tail))
    else:
        sub = np.tile(history, (1, -(-(length + tail) // frame)))[:, : length + tail]
        if fade > 0:
            t = np.arange(length + tail)
            sub *= np.clip(1.0 - (t - frame) / (2.0 * frame), 0.0, 1.0)
    y[:, start:end] = sub[:, :length]
    if tail > 0:
        w = _ramp(tail)
        y[:, end : end + tail] = (1 - w) * sub[:, length:] + w * y[:, end : end + tail]


# ---------------------------------------------------------------------------- echo and rooms


def echo(
    x: np.ndarray, sr: int, gain: float, delay_ms: float = 100.0, feedback: bool = False
) -> tuple[np.ndarray, dict]:
    """Add a delayed copy of the signal: a single echo, or a train of them with feedback.

    Parameters
    ----------
    x : numpy.ndarray
        ``[C, N]`` or ``[N]`` float at ``sr``.
    sr : int
        Hz.
    gain : float
        Linear gain of the (first) echo re the direct signal, in [0, 1]; below 1 with
        ``feedback``.
    delay_ms : float
        Echo delay, ms (rounded to whole samples, at least one). Above about 50 ms an echo is
        heard as a repetition, below as colouration (comb filtering).
    feedback : bool
        False: ``y[n] = x[n] + g x[n - D]``. True: the echo recirculates,
        ``y[n] = x[n] + g y[n - D]``, i.e. echoes ``g^k`` at ``k D``; summed as delayed copies
        (exact up to the echoes below -80 dB, which are left out) rather than with a recursive
        filter, whose denominator would be ``D`` taps long.

    Returns
    -------
    y : numpy.ndarray
        float32, same shape; echoes that would fall after the end are cut.
    info : dict
        ``gain``, ``gain_db``, ``delay_ms`` (as rounded), ``delay_samples``, ``feedback``,
        ``echoes`` (copies added).
    """
    data, one_d = _as_2d(x)
    feedback = _flag(feedback, "echo feedback switch")
    if not 0 <= gain <= 1 or (feedback and gain >= 1):
        bound = "[0, 1)" if feedback else "[0, 1]"
        raise DegradationError(f"The echo gain must be within {bound}, got {gain}.")
    if not delay_ms > 0:
        raise DegradationError(f"The echo delay must be a positive number of ms, got {delay_ms}.")
    n = data.shape[1]
    delay = max(1, int(round(delay_ms * sr / 1000.0)))
    if gain == 0:
        count = 0
    elif feedback:
        count = int(math.ceil(math.log(_ECHO_FLOOR) / math.log(gain))) if gain > _ECHO_FLOOR else 1
    else:
        count = 1
    count = min(count, (n - 1) // delay)
    y = data.copy()
    for k in range(1, count + 1):
        y[:, k * delay :] += gain**k * data[:, : n - k * delay]
    info = {
        "gain": float(gain),
        "gain_db": _db(float(gain) ** 2),
        "delay_ms": 1000.0 * delay / sr,
        "delay_samples": int(delay),
        "feedback": bool(feedback),
        "echoes": int(count),
    }
    return _out(y, one_d), info


def reverb(
    x: np.ndarray, sr: int, rt60_s: float, wet: float = 0.3, seed: int | None = None
) -> tuple[np.ndarray, dict]:
    """Add diffuse reverberation: convolution with exponentially decaying noise.

    The impulse response of each channel is Gaussian white noise under the envelope
    ``exp(-ln(1000) t / rt60_s)`` (60 dB of decay after ``rt60_s``), ``rt60_s`` long, scaled to
    unit energy, so the reverberant part has the power of the input on average whatever the
    decay time; channels get independent responses (a diffuse field, as in a room). A
    statistical room model (Schroeder's): no early reflections, no frequency-dependent decay.

    Parameters
    ----------
    x : numpy.ndarray
        ``[C, N]`` or ``[N]`` float at ``sr``.
    sr : int
        Hz.
    rt60_s : float
        Reverberation time, s, in (0, 10].
    wet : float
        Mix in [0, 1]: ``y = (1 - wet) x + wet (x * h)``; 0 returns the input.
    seed : int or None
        Impulse-response noise; with one seed a longer ``rt60_s`` starts from the same noise.

    Returns
    -------
    y : numpy.ndarray
        float32, same shape (``scipy.signal.fftconvolve``, tail after the input's end cut).
    info : dict
        ``rt60_s``, ``wet``, ``ir_samples``, ``drr_db`` (direct-to-reverberant energy ratio,
        ``20 log10((1 - wet) / wet)``, dB).
    """
    import scipy.signal

    data, one_d = _as_2d(x)
    if not 0 < rt60_s <= 10:
        raise DegradationError(f"The reverberation time must be within (0, 10] s, got {rt60_s}.")
    if not 0 <= wet <= 1:
        raise DegradationError(f"The reverb wet mix must be within [0, 1], got {wet}.")
    length = max(1, int(math.ceil(rt60_s * sr)))
    envelope = np.exp(-_LN_1000 * np.arange(length) / (rt60_s * sr))
    # One child generator per channel: the first samples of every channel's noise are the same
    # whatever the length, so the rungs of a ladder share their early response.
    children = np.random.SeedSequence(seed).spawn(data.shape[0])
    ir = np.stack([np.random.default_rng(c).standard_normal(length) for c in children]) * envelope
    ir /= np.sqrt(np.sum(ir**2, axis=1, keepdims=True))
    y = data
    if wet > 0:
        wet_part = scipy.signal.fftconvolve(data, ir, axes=-1)[:, : data.shape[1]]
        y = (1 - wet) * data + wet * wet_part
    info = {
        "rt60_s": float(rt60_s),
        "wet": float(wet),
        "ir_samples": int(length),
        "drr_db": _db(((1 - wet) / wet) ** 2) if wet > 0 else float("inf"),
    }
    return _out(y, one_d), info


# ------------------------------------------------------------------------------ interference


def interference(
    x: np.ndarray,
    sr: int,
    sir_db: float,
    interferer: np.ndarray | None = None,
    voices: int = 1,
    seed: int | None = None,
) -> tuple[np.ndarray, dict]:
    """Mix a competing source into the signal at an exact signal-to-interference ratio.

    Parameters
    ----------
    x : numpy.ndarray
        ``[C, N]`` or ``[N]`` float at ``sr``: the wanted signal.
    sr : int
        Hz.
    sir_db : float
        ``10 log10(sum x^2 / sum i^2)`` over the whole signal and all channels, dB; the
        interferer is scaled to hit it exactly.
    interferer : numpy.ndarray, optional
        The competing source, ``[C, N]``, ``[1, N]`` or ``[N]`` (broadcast over channels), tiled
        or cut to ``N`` samples. Without one, ``voices`` copies of ``x`` itself, each time-reversed
        and circularly shifted by a random 25-75 % of its length, are summed: a competitor with
        the same instruments and spectral balance but other notes (reversed, so it never
        lines up with the signal), more voices making it babble-like. A training set should
        pass a different excerpt instead.
    voices : int
        Copies summed for the self-made interferer, 1-16 (ignored with ``interferer``).
    seed : int or None
        Shifts of the self-made interferer.

    Returns
    -------
    y : numpy.ndarray
        float32, same shape.
    info : dict
        ``sir_db``, ``interferer`` (``"given"`` or ``"self-reversed"``), ``voices``,
        ``shifts_s`` (list; empty when given), ``interferer_rms_db`` (dBFS, after scaling).
    """
    data, one_d = _as_2d(x)
    if not np.isfinite(sir_db):
        raise DegradationError(f"The signal-to-interference ratio must be a finite number of dB, got {sir_db}.")
    if int(voices) != voices or not 1 <= voices <= 16:
        raise DegradationError(f"The number of interfering voices must be a whole number from 1 to 16, got {voices}.")
    n = data.shape[1]
    shifts: list[int] = []
    if interferer is None:
        rng = np.random.default_rng(seed)
        shifts = [int(s) for s in rng.integers(n // 4, max(n // 4 + 1, 3 * n // 4), size=int(voices))]
        reversed_x = data[:, ::-1]
        other = sum(np.roll(reversed_x, s, axis=-1) for s in shifts)
        source = "self-reversed"
    else:
        other = np.asarray(interferer, dtype=np.float64)
        if other.ndim == 1:
            other = other[np.newaxis, :]
        if other.ndim != 2 or other.shape[1] == 0 or other.shape[0] not in (1, data.shape[0]):
            raise DegradationError(
                f"The interferer must have 1 or {data.shape[0]} channels and some samples, got shape {other.shape}."
            )
        if other.shape[1] < n:
            other = np.tile(other, (1, -(-n // other.shape[1])))
        other = np.broadcast_to(other[:, :n], data.shape)
        source = "given"
    target = _power(data) / 10 ** (sir_db / 10)
    p_other = _power(other)
    scaled = other * math.sqrt(target / p_other) if p_other > 0 else np.zeros_like(data)
    info = {
        "sir_db": float(sir_db),
        "interferer": source,
        "voices": int(voices) if interferer is None else 1,
        "shifts_s": [s / sr for s in shifts],
        "interferer_rms_db": _db(_power(scaled)),
    }
    return _out(data + scaled, one_d), info


# ------------------------------------------------------------------------- telephone channel


def bandpass(
    x: np.ndarray, sr: int, high_hz: float = 3400.0, low_hz: float | None = None, order: int = 4
) -> tuple[np.ndarray, dict]:
    """Band-limit like a telephone channel: zero-phase Butterworth high-pass and low-pass.

    The defaults give the narrowband telephone band, 300-3400 Hz (ITU-T G.712). Wider classes
    keep more bass as well as more treble: wideband speech is 50-7000 Hz, super-wideband
    50-14000 Hz, which is why the low edge follows the high one unless it is given.

    Parameters
    ----------
    x : numpy.ndarray
        ``[C, N]`` or ``[N]`` float at ``sr``.
    sr : int
        Hz.
    high_hz : float
        Upper -3 dB point of one pass, Hz; at or above 0.49 ``sr`` there is no low-pass.
    low_hz : float or None
        Lower -3 dB point of one pass, Hz, below ``high_hz``; 0 means no high-pass. None: the
        lower edge of the bandwidth class ``high_hz`` falls in, 300 Hz up to ``high_hz = 4000``
        (narrowband and narrower), 50 Hz above (wideband and wider).
    order : int
        Butterworth order of each edge, per pass, 1-16. ``sosfiltfilt`` runs the filter twice:
        -6 dB at the edges, ``2 * order * 6`` dB per octave beyond them (order 4: a tone an
        octave and a half outside the band loses about 70 dB).

    Returns
    -------
    y : numpy.ndarray
        float32, same shape, no delay.
    info : dict
        ``low_hz``, ``high_hz``, ``order``, ``kind`` (``"bandpass"``, ``"highpass"``,
        ``"lowpass"`` or ``"identity"``: the filter actually applied).
    """
    import scipy.signal

    data, one_d = _as_2d(x)
    if int(order) != order or not 1 <= order <= 16:
        raise DegradationError(f"The band-pass filter order must be a whole number from 1 to 16, got {order}.")
    if not high_hz > 0:
        raise DegradationError(f"The band-pass high edge must be a positive frequency in Hz, got {high_hz}.")
    if low_hz is None:
        low_hz = 300.0 if high_hz <= 4000 else 50.0
    if not 0 <= low_hz < high_hz:
        raise DegradationError(
            f"The band-pass edges need 0 <= low_hz < high_hz in Hz, got low_hz={low_hz} and high_hz={high_hz}."
        )
    has_low, has_high = low_hz > 0, high_hz < 0.49 * sr
    if has_low and low_hz >= 0.49 * sr:
        raise DegradationError(f"The band-pass low edge must be below 0.49 times the sample rate, got {low_hz} Hz.")
    kind = {(True, True): "bandpass", (True, False): "highpass", (False, True): "lowpass"}.get((has_low, has_high))
    y = data
    if kind is not None:
        edges = {"bandpass": [low_hz, high_hz], "highpass": low_hz, "lowpass": high_hz}[kind]
        sos = scipy.signal.butter(int(order), edges, btype=kind, fs=sr, output="sos")
        y = scipy.signal.sosfiltfilt(sos, data, axis=-1)
    info = {"low_hz": float(low_hz), "high_hz": float(high_hz), "order": int(order), "kind": kind or "identity"}
    return _out(y, one_d), info


def mnru(x: np.ndarray, sr: int, q_db: float, seed: int | None = None) -> tuple[np.ndarray, dict]:
    """Modulated noise reference unit (ITU-T P.810): noise that follows the signal's level.

    ``y = x + x * 10^(-q_db / 20) * n`` with ``n`` Gaussian white noise of exactly unit variance,
    independent per channel: the signal-to-noise ratio is ``q_db`` in every stretch of signal,
    loud or quiet, like the quantisation noise of a logarithmic (A-law, mu-law) coder. The
    full-band form, without P.810's band-limiting filters around it.

    Parameters
    ----------
    x : numpy.ndarray
        ``[C, N]`` or ``[N]`` float at ``sr``.
    sr : int
        Hz (unused).
    q_db : float
        Q, the signal-to-modulated-noise ratio, dB (finite).
    seed : int or None
        Noise seed; with one seed every Q gets the same noise, scaled.

    Returns
    -------
    y : numpy.ndarray
        float32, same shape.
    info : dict
        ``q_db``, ``snr_db`` (measured ``10 log10(sum x^2 / sum (y - x)^2)``, dB).
    """
    del sr
    data, one_d = _as_2d(x)
    if not np.isfinite(q_db):
        raise DegradationError(f"The MNRU Q must be a finite number of dB, got {q_db}.")
    n = np.random.default_rng(seed).standard_normal(data.shape)
    n /= np.std(n)
    noise = data * n * 10 ** (-q_db / 20)
    return _out(data + noise, one_d), {"q_db": float(q_db), "snr_db": _db(_power(data) / max(_power(noise), 1e-300))}


# ------------------------------------------------------------------------------------ dynamics


def compression(
    x: np.ndarray,
    sr: int,
    threshold_db: float,
    ratio: float = 8.0,
    attack_ms: float = 1.0,
    release_ms: float = 100.0,
    lookahead_ms: float = 5.0,
    makeup: bool = True,
) -> tuple[np.ndarray, dict]:
    """Feed-forward dynamic-range compression (a limiter at high ratios), with make-up gain.

    A peak detector (the largest ``|x|`` of all channels in each 0.5 ms block, held over the
    next ``lookahead_ms``: one gain for all channels, so the stereo image stays) drives a
    hard-knee static curve: above the threshold, the level rises ``1 / ratio`` dB per dB. The
    gain reduction is smoothed with a one-pole attack when it grows and a one-pole release when
    it shrinks, interpolated to the samples and applied. The look-ahead lets the gain come down
    before a transient arrives (as in a mastering limiter), so peaks are tamed and the crest
    factor falls; with ``lookahead_ms=0`` the attack lets the start of transients through, the
    overshoot of a plain analogue compressor.

    Parameters
    ----------
    x : numpy.ndarray
        ``[C, N]`` or ``[N]`` float at ``sr``.
    sr : int
        Hz.
    threshold_db : float
        Threshold, dB re the signal's absolute peak (all channels), so the same value
        compresses quiet and loud recordings alike; 0 or above changes nothing. Once the whole
        signal is above it, a lower threshold only changes the gain, which make-up undoes.
    ratio : float
        Compression ratio, >= 1 (1 = none; 8 = heavy, broadcast-style; ``inf`` = limiter).
    attack_ms, release_ms : float
        Time constants of the gain smoothing, ms (> 0).
    lookahead_ms : float
        How far ahead the detector sees, ms (>= 0); the output is not delayed.
    makeup : bool
        Scale the output so that its RMS (all channels) equals the input's, as an engineer
        restores loudness after compressing; ``info["makeup_db"]``.

    Returns
    -------
    y : numpy.ndarray
        float32, same shape, no delay (peaks may exceed the input's with ``makeup``).
    info : dict
        ``threshold_db``, ``threshold_abs`` (linear, full scale 1), ``ratio``, ``attack_ms``,
        ``release_ms``, ``lookahead_ms``, ``makeup_db``, ``max_reduction_db``, ``mean_reduction_db`` (over time),
        ``crest_in_db``, ``crest_out_db`` (peak-to-RMS ratios, dB).
    """
    data, one_d = _as_2d(x)
    makeup = _flag(makeup, "make-up gain switch")
    if not np.isfinite(threshold_db):
        raise DegradationError(f"The compressor threshold must be a finite number of dB, got {threshold_db}.")
    if not ratio >= 1:
        raise DegradationError(f"The compression ratio must be at least 1, got {ratio}.")
    if not (attack_ms > 0 and release_ms > 0) or not (np.isfinite(attack_ms) and np.isfinite(release_ms)):
        raise DegradationError(
            f"The compressor attack and release must be positive numbers of ms, got {attack_ms} and {release_ms}."
        )
    if not 0 <= lookahead_ms <= 1000:
        raise DegradationError(f"The compressor look-ahead must be within [0, 1000] ms, got {lookahead_ms}.")
    n = data.shape[1]
    peak = float(np.max(np.abs(data)))
    threshold_abs = peak * 10 ** (threshold_db / 20)
    hop = max(1, int(round(0.0005 * sr)))
    blocks = -(-n // hop)
    level = np.zeros(blocks * hop)
    level[:n] = np.max(np.abs(data), axis=0)
    level = level.reshape(blocks, hop).max(axis=1)
    ahead = int(round(lookahead_ms * 1e-3 * sr / hop))
    if ahead > 0:  # the largest level in this block and the next `ahead` ones
        padded = np.concatenate([level, np.zeros(ahead)])
        level = np.lib.stride_tricks.sliding_window_view(padded, ahead + 1).max(axis=1)
    over = 20 * np.log10(np.maximum(level, 1e-12) / max(threshold_abs, 1e-12))
    slope = 1.0 - 1.0 / ratio
    target = np.where(over > 0, over * slope, 0.0) if peak > 0 else np.zeros(blocks)
    # Hand-written recursion: attack and release switch with the sign of the change, a
    # non-linear one-pole that scipy.signal.lfilter cannot express (and scipy has no dynamics
    # processor). It runs at the 2 kHz block rate on plain floats, 24 times fewer steps than
    # samples at 48 kHz; detector, static curve and gain application are vectorised.
    a_att = math.exp(-hop / (attack_ms * 1e-3 * sr))
    a_rel = math.exp(-hop / (release_ms * 1e-3 * sr))
    smoothed = np.empty(blocks)
    state = float(target[0])  # settled on the opening level, so the first attack is not let through
    for i, g in enumerate(target.tolist()):
        a = a_att if g > state else a_rel
        state = a * state + (1.0 - a) * g
        smoothed[i] = state
    centres = (np.arange(blocks) + 0.5) * hop - 0.5
    reduction = np.interp(np.arange(n), centres, smoothed)
    y = data * 10 ** (-reduction / 20)
    makeup_db = 0.0
    if makeup and _power(y) > 0:
        makeup_db = _db(_power(data) / _power(y))
        y = y * 10 ** (makeup_db / 20)

    def crest(s: np.ndarray) -> float:
        return _db(float(np.max(np.abs(s))) ** 2 / _power(s)) if _power(s) > 0 else 0.0

    info = {
        "threshold_db": float(threshold_db),
        "threshold_abs": threshold_abs,
        "ratio": float(ratio),
        "attack_ms": float(attack_ms),
        "release_ms": float(release_ms),
        "lookahead_ms": 1000.0 * ahead * hop / sr,
        "makeup_db": makeup_db,
        "max_reduction_db": float(smoothed.max()),
        "mean_reduction_db": float(reduction.mean()),
        "crest_in_db": crest(data),
        "crest_out_db": crest(y),
    }
    return _out(y, one_d), info


# ------------------------------------------------------------------------------ playback speed


def wow_flutter(x: np.ndarray, sr: int, depth: float, rate_hz: float = 1.0) -> tuple[np.ndarray, dict]:
    """Modulate the playback speed sinusoidally, like an uneven tape or turntable drive.

    The output reads the input at ``p(t) = t + A sin(2 pi rate_hz t)`` with
    ``A = depth / 100 / (2 pi rate_hz)`` s, so the speed (and pitch) swings by ``±depth`` % about
    1 and the read position stays within ``±A`` of the true time: no drift, the same length.
    Samples between the input's are interpolated with a quintic B-spline
    (``scipy.ndimage.map_coordinates``; symmetric extension past the ends). Wow is below about
    6 Hz, flutter above; deterministic.

    Parameters
    ----------
    x : numpy.ndarray
        ``[C, N]`` or ``[N]`` float at ``sr``.
    sr : int
        Hz.
    depth : float
        Peak speed deviation, percent, in [0, 10] (hi-fi tape about 0.05, a worn cassette 0.3,
        a warped record 1 and more).
    rate_hz : float
        Modulation frequency, Hz, in (0, 200].

    Returns
    -------
    y : numpy.ndarray
        float32, same shape; not sample-aligned with ``x`` (off by up to ``max_shift_ms``).
    info : dict
        ``depth``, ``rate_hz``, ``max_shift_ms`` (A), ``pitch_cents`` (peak pitch deviation).
    """
    import scipy.ndimage

    data, one_d = _as_2d(x)
    if not 0 <= depth <= 10:
        raise DegradationError(f"The wow and flutter depth must be within [0, 10] percent, got {depth}.")
    if not 0 < rate_hz <= 200:
        raise DegradationError(f"The wow and flutter rate must be within (0, 200] Hz, got {rate_hz}.")
    amp = depth / 100.0 / (2 * math.pi * rate_hz)  # s
    info = {
        "depth": float(depth),
        "rate_hz": float(rate_hz),
        "max_shift_ms": 1000.0 * amp,
        "pitch_cents": 1200 * math.log2(1 + depth / 100.0),
    }
    if depth == 0:
        return _out(data, one_d), info
    n = data.shape[1]
    t = np.arange(n, dtype=np.float64)
    positions = t + amp * sr * np.sin(2 * math.pi * rate_hz * t / sr)
    y = np.stack(
        [scipy.ndimage.map_coordinates(ch, positions[np.newaxis, :], order=5, mode="mirror") for ch in data]
    )
    return _out(y, one_d), info


def time_warp(x: np.ndarray, sr: int, factor: float) -> tuple[np.ndarray, dict]:
    """Play back at a constant wrong speed: duration and pitch change together (tape, turntable).

    The input is resampled as if it had been recorded at ``factor * sr`` (soxr, ``"HQ"``,
    linear phase; content pushed above the new Nyquist frequency is filtered out).

    Parameters
    ----------
    x : numpy.ndarray
        ``[C, N]`` or ``[N]`` float at ``sr``.
    sr : int
        Hz.
    factor : float
        Speed, in [0.5, 2]: 1.02 plays 2 % fast (shorter, 34 cents sharp), 0.98 2 % slow.

    Returns
    -------
    y : numpy.ndarray
        float32 ``[C, round(N / factor)]``, starting at the same instant as ``x``.
    info : dict
        ``factor``, ``pitch_cents``, ``output_samples``, ``length_change_s`` (output minus
        input duration, s).
    """
    import soxr

    data, one_d = _as_2d(x)
    if not 0.5 <= factor <= 2:
        raise DegradationError(f"The speed factor must be within [0.5, 2], got {factor}.")
    n = data.shape[1]
    m = max(1, int(round(n / factor)))
    if factor == 1:
        y = data
    else:
        y = soxr.resample(np.ascontiguousarray(data.T), float(factor) * sr, float(sr), quality="HQ").T
        y = y[:, :m] if y.shape[1] >= m else np.pad(y, ((0, 0), (0, m - y.shape[1])))
    info = {
        "factor": float(factor),
        "pitch_cents": 1200 * math.log2(factor),
        "output_samples": int(m),
        "length_change_s": (m - n) / sr,
    }
    return _out(y, one_d), info
