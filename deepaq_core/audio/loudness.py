"""ITU-R BS.1770 integrated loudness and loudness-matching gain."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pyloudnorm

logger = logging.getLogger(__name__)

MAX_GAIN_DB = 40.0
# Below this RMS (-150 dBFS) a level ratio is meaningless noise; treat as no usable level.
_RMS_FLOOR = 10 ** (-150 / 20)
_BLOCK_S = 0.4
_STEP_S = 0.1
_ABSOLUTE_GATE_LUFS = -70.0
_RELATIVE_GATE_LU = -10.0


def integrated_loudness(samples: np.ndarray, sample_rate: int, steps: np.ndarray | None = None) -> float:
    """Measure BS.1770-4 gated integrated loudness.

    Parameters
    ----------
    samples : numpy.ndarray
        Shape ``[C, N]`` (or ``[N]``), float, full scale = 1.0, at ``sample_rate``; at least 0.4 s.
        Up to 5 channels are weighted as pyloudnorm does (L, R, C = 1.0, Ls, Rs = 1.41); 6-8
        channels use weight 1.0 for every channel, since the layout is unknown.
    sample_rate : int
        Hz.
    steps : numpy.ndarray, optional
        :func:`k_step_energies` of ``samples`` (or of a longer signal they begin), to skip the
        K-weighting filter.

    Returns
    -------
    float
        Integrated loudness in LUFS; ``-inf`` if no 400 ms block exceeds the -70 LUFS absolute gate
        (near-silence).

    Raises
    ------
    ValueError
        If the signal is shorter than one 400 ms gating block.
    """
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[np.newaxis, :]
    if x.shape[1] < int(np.ceil(_BLOCK_S * sample_rate)):
        raise ValueError(f"loudness needs at least {_BLOCK_S} s of audio, got {x.shape[1] / sample_rate:.3f} s")
    # Lazy: pyloudnorm pulls in scipy.signal (~0.5 s), too slow for `import deepaq_core.audio`.
    import pyloudnorm

    meter = pyloudnorm.Meter(sample_rate)
    return _gate(_block_powers(x, sample_rate, meter, _channel_weights(x.shape[0]), steps))


def _k_sos(meter: pyloudnorm.Meter) -> np.ndarray:
    """pyloudnorm's K-weighting stages as one second-order-sections array (float64)."""
    rows = []
    for stage in meter._filters.values():
        b = np.asarray(stage.b, dtype=np.float64) * float(getattr(stage, "passband_gain", 1.0))
        a = np.asarray(stage.a, dtype=np.float64)
        rows.append(np.concatenate([b / a[0], a / a[0]]))
    return np.array(rows)


# The K-weighting filter runs over this many 100 ms steps at a time, its state carried from one
# piece to the next: bit-identical to one pass over the whole signal, and about 3x faster on long
# signals (the float64 pieces stay in the CPU cache instead of two signal-long float64 arrays).
_FILTER_STEPS = 200


def _step_energies(x: np.ndarray, sample_rate: int, sos: np.ndarray) -> np.ndarray:
    """Sum of squares of the K-weighted mono signal ``x`` in each whole 100 ms step from its start: [N // step]."""
    meter = StepMeter(sample_rate, sos)
    end = x.shape[0] // meter.step * meter.step
    for first in range(0, end, meter.step * _FILTER_STEPS):
        meter.push(x[first : min(first + meter.step * _FILTER_STEPS, end)])
    return meter.result()[0] if end else np.empty(0)


def k_step_energies(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Sums of squares of each K-weighted channel in consecutive 100 ms steps: ``[C, N // step]``.

    What BS.1770 loudness is computed from. A signal's steps also serve any prefix of it (the
    filter starts from rest at the first sample either way), so a reference measured once can
    be measured again after trimming its end, as :func:`robust_matching_gain_db` accepts.
    """
    import pyloudnorm

    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[np.newaxis, :]
    sos = _k_sos(pyloudnorm.Meter(sample_rate))
    return np.stack([_step_energies(x[ch], sample_rate, sos) for ch in range(x.shape[0])])


class StepMeter:
    """:func:`k_step_energies` of a signal that arrives stretch by stretch, bit for bit.

    ``push`` each stretch ``[C, n]`` in order (any lengths), then ``result()``. The filter state
    and the unfinished 100 ms step are carried from one stretch to the next: the same arithmetic
    in the same order as one pass over the whole signal (which :func:`k_step_energies` is, in
    pieces of :data:`_FILTER_STEPS` steps). Lets a reader measure a file's loudness while it is
    still decoding (:class:`~deepaq_core.scoring.Scorer` does so for a prefetched
    reference, in a thread of its own).
    """

    def __init__(self, sample_rate: int, sos: np.ndarray | None = None) -> None:
        self.sample_rate = sample_rate
        self.step = int(round(_STEP_S * sample_rate))
        if sos is None:
            import pyloudnorm

            sos = _k_sos(pyloudnorm.Meter(sample_rate))
        self.sos = sos  # the K-weighting stages (pyloudnorm's), second-order sections
        self._zi: list[np.ndarray] = []
        self._rest: list[np.ndarray] = []
        self._parts: list[list[np.ndarray]] = []

    def push(self, block: np.ndarray) -> None:
        import scipy.signal

        x = np.asarray(block)
        if x.ndim == 1:
            x = x[np.newaxis, :]
        if not self._zi:
            self._zi = [np.zeros((self.sos.shape[0], 2)) for _ in range(x.shape[0])]
            self._rest = [np.empty(0) for _ in range(x.shape[0])]
            self._parts = [[] for _ in range(x.shape[0])]
        if x.shape[0] != len(self._zi):
            raise ValueError(f"StepMeter got {x.shape[0]} channels after {len(self._zi)}")
        for ch in range(x.shape[0]):
            y, self._zi[ch] = scipy.signal.sosfilt(self.sos, np.asarray(x[ch], dtype=np.float64), zi=self._zi[ch])
            if self._rest[ch].size:
                y = np.concatenate([self._rest[ch], y])
            whole = y.shape[0] // self.step * self.step
            if whole:
                self._parts[ch].append(np.square(y[:whole]).reshape(-1, self.step).sum(axis=1))
            self._rest[ch] = y[whole:]

    def result(self) -> np.ndarray:
        """Step energies ``[C, N // step]`` of everything pushed."""
        if not self._parts:
            return np.empty((0, 0))
        return np.stack([np.concatenate(p) if p else np.empty(0) for p in self._parts])


def _block_powers(x: np.ndarray, sample_rate: int, meter: pyloudnorm.Meter, weights: np.ndarray,
                  steps: np.ndarray | None = None, device=None) -> np.ndarray:
    """Channel-weighted mean square of the K-weighted signal in 400 ms blocks, 100 ms apart: [J].

    ``steps``: :func:`k_step_energies` of ``x`` or of a signal ``x`` is a prefix of (computed
    here when None: on ``device`` when given, see :mod:`deepaq_core.audio.on_device`).
    """
    block = int(round(_BLOCK_S * sample_rate))
    step = int(round(_STEP_S * sample_rate))
    num_blocks = 1 + (x.shape[1] - block) // step
    # z[i, j]: mean square of K-weighted channel i in 400 ms block j (BS.1770 eq. 1). Blocks
    # overlap by 75 %, so the squares are summed in 100 ms steps first and each block adds four.
    # One sosfilt pass (float64) replaces pyloudnorm's two lfilter passes with the same filters.
    per = block // step
    n_steps = num_blocks + per - 1
    if steps is None and device is not None:
        from .on_device import k_step_energies as on_device

        steps = on_device(x, sample_rate, device, n_steps * step)
    if steps is None:
        sos = _k_sos(meter)
        steps = np.stack([_step_energies(np.asarray(x[ch])[: n_steps * step], sample_rate, sos)
                          for ch in range(x.shape[0])])
    if steps.shape[0] != x.shape[0] or steps.shape[1] < n_steps:
        raise ValueError(f"step energies {steps.shape} do not cover a [{x.shape[0]}, {x.shape[1]}] signal")
    z = np.empty((x.shape[0], num_blocks))
    for ch in range(x.shape[0]):
        csum = np.concatenate(([0.0], np.cumsum(steps[ch, :n_steps])))
        z[ch] = (csum[per:per + num_blocks] - csum[:num_blocks]) / block
    return weights @ z


def _gate(power: np.ndarray) -> float:
    """BS.1770 gated loudness (LUFS) from block powers; ``-inf`` when every block is gated out."""
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10 * np.log10(power)
    gated = block_lufs > _ABSOLUTE_GATE_LUFS
    if not gated.any():
        return float("-inf")
    relative = -0.691 + 10 * np.log10(power[gated].mean()) + _RELATIVE_GATE_LU
    gated &= block_lufs > relative
    return float(-0.691 + 10 * np.log10(power[gated].mean()))


def _channel_weights(channels: int) -> np.ndarray:
    """BS.1770 channel weights: L, R, C = 1.0, Ls, Rs = 1.41 (pyloudnorm's order); 1.0 beyond 5."""
    if channels <= 5:
        return np.array([1.0, 1.0, 1.0, 1.41, 1.41][:channels])
    return np.ones(channels)


def _gated_loudness(x: np.ndarray, sample_rate: int, meter: pyloudnorm.Meter, weights: np.ndarray) -> float:
    """BS.1770 gating for any channel count, with pyloudnorm's K-weighting filters.

    Hand-written because pyloudnorm refuses more than 5 channels (it hard-codes the 5.0 channel
    weights); the filters still come from pyloudnorm so the two agree for <= 5 channels.

    Parameters
    ----------
    x : numpy.ndarray
        ``[C, N]`` float samples at ``sample_rate`` Hz.
    sample_rate : int
        Hz.
    meter : pyloudnorm.Meter
        Supplies the K-weighting filter stages.
    weights : numpy.ndarray
        ``[C]`` channel weights G_i.

    Returns
    -------
    float
        LUFS, ``-inf`` when everything is gated out.
    """
    return _gate(_block_powers(x, sample_rate, meter, weights))


def rms_db(samples: np.ndarray) -> float:
    """Return the RMS level over all channels in dBFS (``-inf`` for all-zero input).

    Parameters
    ----------
    samples : numpy.ndarray
        Any shape, float, full scale = 1.0.
    """
    ms = float(np.mean(np.square(samples, dtype=np.float64)))
    return 10 * np.log10(ms) if ms > _RMS_FLOOR**2 else float("-inf")


def matching_gain_db(
    reference: np.ndarray, degraded: np.ndarray, sample_rate: int
) -> tuple[float, float, float]:
    """Gain that brings ``degraded`` to the loudness of ``reference``.

    Parameters
    ----------
    reference, degraded : numpy.ndarray
        ``[C, N]`` float signals at ``sample_rate`` Hz.
    sample_rate : int
        Hz.

    Returns
    -------
    gain_db : float
        dB to apply to ``degraded``, clamped to ±40 dB.
    reference_lufs, degraded_lufs : float
        Integrated loudness of each input (may be ``-inf`` for very quiet signals).

    Notes
    -----
    When either loudness is ``-inf`` (all blocks under the -70 LUFS gate) the gain falls back to
    the RMS level difference, which stays defined for any non-silent signal.
    """
    ref_lufs = integrated_loudness(reference, sample_rate)
    deg_lufs = integrated_loudness(degraded, sample_rate)
    if np.isfinite(ref_lufs) and np.isfinite(deg_lufs):
        gain = ref_lufs - deg_lufs
    else:
        ref_rms, deg_rms = rms_db(reference), rms_db(degraded)
        gain = ref_rms - deg_rms if np.isfinite(ref_rms) and np.isfinite(deg_rms) else 0.0
        logger.info(
            "Loudness is below the BS.1770 gate (reference %.1f LUFS, degraded %.1f LUFS); "
            "matching RMS instead (gain %.2f dB).", ref_lufs, deg_lufs, gain,
        )  # fmt: skip
    return _clamped(gain), float(ref_lufs), float(deg_lufs)


def _clamped(gain: float) -> float:
    """The gain limited to +-40 dB, with a warning when it had to be."""
    if abs(gain) > MAX_GAIN_DB:
        clamped = float(np.clip(gain, -MAX_GAIN_DB, MAX_GAIN_DB))
        logger.warning(
            "Loudness-matching gain of %.1f dB is implausible; clamped to %.1f dB "
            "(are the reference and degraded files the same material?).", gain, clamped,
        )  # fmt: skip
        return clamped
    return float(gain)


# Blocks of the reference further than this below its integrated loudness do not vote on the
# gain: in pauses the degraded signal's noise floor or interference would decide it.
_MEDIAN_GATE_LU = -20.0
_MIN_VOTING_BLOCKS = 3


def robust_matching_gain_db(
    reference: np.ndarray, degraded: np.ndarray, sample_rate: int, reference_steps: np.ndarray | None = None,
    device=None,
) -> tuple[float, float, float, str]:
    """Loudness-matching gain that a local burst cannot move: the median block difference.

    The reference and the (already aligned, equal-length) degraded signal are cut into the same
    BS.1770 400 ms K-weighted blocks; the gain is the median, over the blocks where the reference
    is active (within 20 LU of its integrated loudness), of the reference-minus-degraded block
    loudness. A 0.3 s clipping burst or a dropout changes a few blocks and leaves the median,
    and so every clean part of the file, where it was; a whole-file level change moves every
    block and is matched exactly.

    Parameters
    ----------
    reference, degraded : numpy.ndarray
        ``[C, N]`` float signals at ``sample_rate`` Hz, time-aligned, same shape.
    sample_rate : int
        Hz.
    reference_steps : numpy.ndarray, optional
        :func:`k_step_energies` of the reference or of a longer signal it begins (the
        reference's K-weighting is then not run again).
    device : torch.device, optional
        Where to run the K-weighting filter (a scorer's GPU); None: scipy on the CPU.

    Returns
    -------
    gain_db : float
        dB to apply to ``degraded``, clamped to ±40 dB.
    reference_lufs, degraded_lufs : float
        Integrated loudness of each input.
    method : str
        ``"median"``, or the fallback's (``"integrated"`` / ``"rms"``) when fewer than three
        blocks can vote (signals under 0.6 s, or mostly below the gates).
    """
    import pyloudnorm

    ref = np.atleast_2d(np.asarray(reference))
    deg = np.atleast_2d(np.asarray(degraded))
    n = min(ref.shape[1], deg.shape[1])
    if n < int(np.ceil(_BLOCK_S * sample_rate)):
        gain, ref_lufs, deg_lufs = matching_gain_db(ref, deg, sample_rate)
        return gain, ref_lufs, deg_lufs, "integrated"
    meter = pyloudnorm.Meter(sample_rate)
    weights = _channel_weights(ref.shape[0])
    pr = _block_powers(ref[:, :n], sample_rate, meter, weights, reference_steps, device)
    pd = _block_powers(deg[:, :n], sample_rate, meter, weights, device=device)
    ref_lufs, deg_lufs = _gate(pr), _gate(pd)
    if not (np.isfinite(ref_lufs) and np.isfinite(deg_lufs)):
        gain, ref_lufs, deg_lufs = matching_gain_db(ref, deg, sample_rate)
        return gain, ref_lufs, deg_lufs, "rms"
    with np.errstate(divide="ignore"):
        r = -0.691 + 10 * np.log10(pr)
        d = -0.691 + 10 * np.log10(pd)
    vote = (r > max(_ABSOLUTE_GATE_LUFS, ref_lufs + _MEDIAN_GATE_LU)) & (d > _ABSOLUTE_GATE_LUFS)
    if int(vote.sum()) < _MIN_VOTING_BLOCKS:
        return _clamped(ref_lufs - deg_lufs), ref_lufs, deg_lufs, "integrated"
    return _clamped(float(np.median(r[vote] - d[vote]))), ref_lufs, deg_lufs, "median"
