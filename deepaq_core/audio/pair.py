"""Turning a (reference, degraded) pair into aligned, equal-length, loudness-matched buffers."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from deepaq_core.errors import AudioError

from .align import Alignment, ChannelMean, estimate_alignment
from .buffer import AudioBuffer
from .loudness import integrated_loudness, robust_matching_gain_db
from .validate import MIN_DURATION_S, display_name, validate_signal

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedPair:
    """A reference/degraded pair ready for scoring.

    Attributes
    ----------
    reference : AudioBuffer
        Aligned and trimmed reference, ``[C, N]`` at the working rate.
    degraded : AudioBuffer
        Aligned, trimmed and loudness-matched degraded signal, same shape and rate.
    alignment : Alignment
        The lag that was applied.
    gain_db : float
        Gain applied to the degraded signal, dB (0.0 when loudness matching is off).
    reference_loudness_lufs : float
        BS.1770 integrated loudness of the trimmed reference, LUFS (may be -inf).
    degraded_loudness_lufs : float
        Loudness of the trimmed degraded signal before the gain, LUFS (may be -inf).
    trimmed_reference_s : float
        Seconds removed from the reference (start + end) to make the lengths equal.
    trimmed_degraded_s : float
        Seconds removed from the degraded signal (start + end).
    """

    reference: AudioBuffer
    degraded: AudioBuffer
    alignment: Alignment
    gain_db: float
    reference_loudness_lufs: float
    degraded_loudness_lufs: float
    trimmed_reference_s: float
    trimmed_degraded_s: float
    gain_method: str = "integrated"


def _label(buffer: AudioBuffer, fallback: str) -> str:
    return display_name(buffer.info.path) if buffer.info is not None else fallback


def _mono(samples: np.ndarray):
    """The channel mean the alignment compares (float32), computed only where it reads it."""
    return samples[0] if samples.shape[0] == 1 else ChannelMean(samples)


def apply_alignment(samples: np.ndarray, lag: int, start: int, stop: int, *, inverted: bool = False,
                    gain_db: float = 0.0) -> np.ndarray:
    """The degraded signal on the reference's timeline: reference samples ``[start, stop)``.

    The one place where a measured alignment is applied (scoring in :func:`prepare_pair`, the
    app's playback and views through the same call). With ``degraded[n + lag] ≈ reference[n]``,
    output sample ``m`` is ``samples[:, start + m + lag]``; samples outside the degraded signal
    are silence. ``inverted`` flips the polarity (inverted polarity is inaudible: the signal is
    compared and played the right way up), and ``gain_db`` scales it.

    Parameters
    ----------
    samples : ndarray, shape [C, N]
        The degraded signal at the lag's sample rate.
    lag : int
        Samples; positive when the degraded signal is late.
    start, stop : int
        The reference sample range wanted.

    Returns
    -------
    ndarray, shape [C, stop - start]
        A view of ``samples`` when nothing needs padding, flipping or scaling; a new array otherwise.
    """
    n = stop - start
    lo, hi = max(start, -lag), min(stop, samples.shape[1] - lag)
    factor = (-1.0 if inverted else 1.0) * 10.0 ** (gain_db / 20.0)
    if lo == start and hi == stop and factor == 1.0:
        return samples[:, start + lag : stop + lag]
    out = np.zeros((samples.shape[0], max(0, n)), dtype=samples.dtype)
    if hi > lo:
        out[:, lo - start : hi - start] = samples[:, lo + lag : hi + lag] * samples.dtype.type(factor)
    return out


def prepare_pair(
    reference: AudioBuffer,
    degraded: AudioBuffer,
    *,
    align: bool = True,
    lag_ms: float | None = None,
    match_loudness: bool = True,
    max_lag_s: float | None = None,
    reference_steps: np.ndarray | None = None,
    scale: bool = True,
    device=None,
) -> PreparedPair:
    """Align, trim and loudness-match a degraded signal to its reference.

    Parameters
    ----------
    reference, degraded : AudioBuffer
        Signals at the same (working) rate with the same channel count, ``[C, N_ref]`` and
        ``[C, N_deg]``.
    align : bool
        Estimate the lag (on the channel means) with :func:`estimate_lag`; False uses lag 0.
    lag_ms : float or None
        User-given lag in milliseconds (positive: degraded is late). Overrides ``align``.
    match_loudness : bool
        Scale the degraded signal to the reference's loudness: by the median difference of
        their 400 ms BS.1770 block loudnesses (so a local burst cannot shift the clean parts),
        falling back to integrated loudness for very short or quiet signals.
    max_lag_s : float or None
        Largest lag searched when estimating, seconds; None searches max(10 s, 25 % of the
        longer signal), bounded by the overlap.
    reference_steps : numpy.ndarray or callable, optional
        :func:`~deepaq_core.audio.loudness.k_step_energies` of the whole reference, from an
        earlier loudness measurement: used (instead of filtering the reference again) when the
        kept part of the reference starts at its first sample. A callable returning them is
        called only then, after the alignment: a caller may align while the reference's
        loudness is still being measured.
    scale : bool
        Apply the matching gain to the returned degraded signal (the default). False leaves it
        unscaled (a view of ``degraded.samples`` when nothing needs padding or flipping) and only
        reports ``gain_db``: for a caller that applies the gain as it reads, sparing a copy of the
        whole signal.
    device : torch.device, optional
        Where to compute the alignment's cross-correlations and the K-weighting filter (a
        scorer's GPU, see :mod:`deepaq_core.audio.on_device`); None: numpy and scipy on the CPU.

    Returns
    -------
    PreparedPair
        Equal-length ``[C, N]`` buffers covering only the overlap (the reference's is a view of
        ``reference.samples``), the alignment, the gain and the loudness measurements.

    Raises
    ------
    ValueError
        If the rates or channel counts differ (a caller error: load both at the same settings).
    AudioError
        If less than 0.5 s overlaps after alignment, or a trimmed signal is unusable (e.g. the
        overlapping part of the degraded signal is silent).
    """
    if reference.sample_rate != degraded.sample_rate:
        raise ValueError(
            f"sample rates differ: reference {reference.sample_rate} Hz, degraded {degraded.sample_rate} Hz"
        )
    if reference.channels != degraded.channels:
        raise ValueError(f"channel counts differ: reference {reference.channels}, degraded {degraded.channels}")
    rate = reference.sample_rate
    ref_name, deg_name = _label(reference, "reference"), _label(degraded, "degraded")
    native_rate = degraded.info.sample_rate if degraded.info is not None else rate

    if lag_ms is not None:
        if not math.isfinite(lag_ms):
            raise ValueError(f"lag_ms must be finite, got {lag_ms}")
        lag = lag_ms * rate / 1000.0
        alignment = Alignment(
            lag_samples=int(round(lag)),
            lag_ms=float(lag_ms),
            lag_native_samples=int(round(lag_ms * native_rate / 1000.0)),
            estimated=False,
            confidence=float("nan"),
        )
    elif not align:
        alignment = Alignment(0, 0.0, 0, estimated=False, confidence=float("nan"))
    else:
        alignment = estimate_alignment(_mono(reference.samples), _mono(degraded.samples), rate,
                                       native_rate=native_rate, max_lag_s=max_lag_s, device=device)
        confidence = alignment.confidence
        if confidence < 0.2:
            logger.warning(
                "Alignment of %s to %s is uncertain (correlation %.2f at %.2f ms); consider giving the lag explicitly.",
                deg_name, ref_name, confidence, alignment.lag_ms,
            )  # fmt: skip

    # degraded[n + lag] ≈ reference[n]: a late degraded loses its first `lag` samples, an early
    # one makes the reference lose its first `-lag`.
    shift = alignment.lag_samples
    ref_start, deg_start = (0, shift) if shift >= 0 else (-shift, 0)
    length = min(reference.num_samples - ref_start, degraded.num_samples - deg_start)
    if length / rate < MIN_DURATION_S:
        raise AudioError(
            f"'{deg_name}' and '{ref_name}' overlap by only {max(length, 0) / rate:.2f} s after "
            f"aligning with a lag of {alignment.lag_ms:.1f} ms; at least {MIN_DURATION_S} s is needed."
        )
    ref_samples = reference.samples[:, ref_start : ref_start + length]
    deg_samples = apply_alignment(degraded.samples, shift, ref_start, ref_start + length, inverted=alignment.inverted)
    # The kept part may differ from the whole file (e.g. all the audio was in the trimmed lag).
    validate_signal(ref_samples, rate, ref_name)
    validate_signal(deg_samples, rate, deg_name)

    steps = None
    if ref_start == 0 and reference_steps is not None:
        steps = reference_steps() if callable(reference_steps) else reference_steps
    if match_loudness:
        gain_db, ref_lufs, deg_lufs, gain_method = robust_matching_gain_db(ref_samples, deg_samples, rate, steps,
                                                                           device)
        if scale:
            deg_samples = deg_samples * np.float32(10.0 ** (gain_db / 20.0))
    else:
        gain_db, gain_method = 0.0, "off"
        ref_lufs = integrated_loudness(ref_samples, rate, steps)
        deg_lufs = integrated_loudness(deg_samples, rate)

    logger.debug(
        "prepared %s vs %s: lag %d samples (%.2f ms, estimated=%s), %d samples kept, gain %.2f dB",
        deg_name, ref_name, shift, alignment.lag_ms, alignment.estimated, length, gain_db,
    )  # fmt: skip
    return PreparedPair(
        # The reference's overlap as a view of the input (each channel's row is contiguous): a
        # copy of a 10-minute reference costs 230 MB of fresh pages and nothing needs it.
        reference=AudioBuffer(ref_samples, rate, reference.info),
        degraded=AudioBuffer(np.ascontiguousarray(deg_samples) if scale else deg_samples, rate, degraded.info),
        alignment=alignment,
        gain_db=float(gain_db),
        reference_loudness_lufs=float(ref_lufs),
        degraded_loudness_lufs=float(deg_lufs),
        trimmed_reference_s=(reference.num_samples - length) / rate,
        trimmed_degraded_s=(degraded.num_samples - length) / rate,
        gain_method=gain_method,
    )
