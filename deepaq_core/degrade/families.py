"""The registry of degradation families, their parameter ladders and surrogate labels.

A *family* is one kind of degradation with one intensity parameter, a *ladder* of values from
mildest to worst, and a hand-set monotone mapping of that parameter to a surrogate label on a
common 0..1 scale (0 = clean, 1 = the family's worst rung). Three label modes exist:

``param``
    ``Family.label(value)``: the documented formula per family. Orders the rungs of one
    family correctly by construction, but says nothing about how a 64 kbit/s MP3 compares to
    20 dB SNR noise: the 0..1 ranges of different families are set independently, so labels are
    only comparable within a family (see docs/DEGRADATIONS.md).
``teacher``
    :func:`teacher_label` of :func:`deepaq_core.degrade.teacher.logmel_distance` on the
    generated pair: one scale for all families, but noisy, and not guaranteed monotone in a
    family's parameter.
``hybrid``
    The teacher distances of one excerpt's ladder, made non-decreasing in severity by isotonic
    regression (:func:`hybrid_labels`), then mapped like ``teacher``: the teacher's cross-family
    scale with the parameter's reliable ordering.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import effects, synthetic
from .codecs import CODECS, encode_decode
from .errors import DegradationError
from .teacher import logmel_distance

logger = logging.getLogger(__name__)

LABEL_MODES = ("param", "teacher", "hybrid")
# Teacher distance (dB) that maps to label 0.5 in teacher_label. 2 dB of mean log-mel
# difference is about a 16 kbit/s MP3, a 2 kHz low-pass or white noise at 30 dB SNR on
# generated music: clearly audible, but not the worst rung of any family.
TEACHER_HALF_DB = 2.0


@dataclass(frozen=True)
class Family:
    """One degradation family.

    Attributes
    ----------
    name : str
        Registry key, also the ``kind`` of :func:`degrade`.
    group : str
        ``"codec"`` (needs an installed encoder) or ``"signal"``.
    func : callable
        ``func(x, sr, **params) -> (y, info)``.
    param : str
        The intensity parameter the ladder and label are defined on.
    unit : str
        Unit of ``param`` (for documentation).
    ladder : tuple of float
        Values of ``param``, mildest first, worst last; the clean signal (label 0) is not a rung.
    formula : str
        The ``param`` label formula, as documented.
    label_fn : callable
        ``float -> float``, the formula; :meth:`label` clips it to [0, 1].
    defaults : dict
        Other keyword arguments passed to ``func`` unless the caller gives them.
    description : str
        One line for tables and ``--help``.
    time_aligned : bool
        True when every rung has the input's length and is sample-aligned with it; False for
        families that change time by design (``time_warp``: shorter or longer; ``wow_flutter``:
        same length, samples moved back and forth by milliseconds).
    """

    name: str
    group: str
    func: Callable[..., tuple[np.ndarray, dict]]
    param: str
    unit: str
    ladder: tuple[float, ...]
    formula: str
    label_fn: Callable[[float], float]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    time_aligned: bool = True

    def label(self, value: float) -> float:
        """``param``-mode surrogate label of one parameter value, in [0, 1] (0 = clean)."""
        return float(min(1.0, max(0.0, self.label_fn(float(value)))))

    def labels(self) -> list[float]:
        """Labels of the ladder's rungs, non-decreasing."""
        return [self.label(v) for v in self.ladder]


def _log_ratio(best: float, worst: float) -> Callable[[float], float]:
    """Label ``log(best / v) / log(best / worst)``: 0 at ``best``, 1 at ``worst`` (bitrates, cutoffs)."""
    return lambda v: math.log(best / v) / math.log(best / worst) if v > 0 else 1.0


def _linear(best: float, worst: float) -> Callable[[float], float]:
    """Label ``(best - v) / (best - worst)``: 0 at ``best``, 1 at ``worst`` (dB, bits, quality)."""
    return lambda v: (best - v) / (best - worst)


def _codec(codec: str) -> Callable[..., tuple[np.ndarray, dict]]:
    def run(x: np.ndarray, sr: int, bitrate_kbps: float) -> tuple[np.ndarray, dict]:
        return encode_decode(x, sr, codec, bitrate_kbps)

    run.__name__ = f"encode_decode_{codec}"
    return run


def _separation(
    x: np.ndarray,
    sr: int,
    quality: float,
    interferer: np.ndarray | None = None,
    interferer_db: float = 0.0,
    seed: int | None = None,
) -> tuple[np.ndarray, dict]:
    """:func:`synthetic.separation` with ``x`` as the target.

    Without an ``interferer``, ``x`` rotated by half its length stands in: other notes with the
    same instruments and spectral balance, the hard case for a separator (in a training set,
    pass a different excerpt instead).
    """
    data = np.asarray(x)
    source = "given"
    if interferer is None:
        interferer = np.roll(data, data.shape[-1] // 2, axis=-1)
        source = "self-rotated"
    y, info = synthetic.separation(data, interferer, sr, quality, interferer_db=interferer_db, seed=seed)
    info["interferer"] = source
    return y, info


def _codec_family(codec: str, ladder: tuple[float, ...], description: str) -> Family:
    # Label 0 sits at 1.25 x the top rung, so the top rung (near-transparent, but coded) gets a
    # small positive label instead of sharing 0 with the clean version.
    best, worst = 1.25 * ladder[0], ladder[-1]
    return Family(
        name=codec,
        group="codec",
        func=_codec(codec),
        param="bitrate_kbps",
        unit="kbit/s",
        ladder=ladder,
        formula=f"log({best:g}/b) / log({best:g}/{worst:g})",
        label_fn=_log_ratio(best, worst),
        description=description,
    )


def _build() -> dict[str, Family]:
    fams = [
        _codec_family("mp3", (320, 256, 192, 160, 128, 96, 64, 48, 32, 24, 16),
                      "MPEG-1/2 Layer III (lame, CBR)"),
        _codec_family("aac", (256, 192, 128, 96, 64, 48, 32), "AAC-LC (ffmpeg native encoder)"),
        _codec_family("opus", (128, 96, 64, 48, 32, 24, 16, 12), "Opus (opusenc, VBR)"),
        _codec_family("vorbis", (192, 160, 128, 96, 80, 64, 48), "Vorbis (oggenc, ABR)"),
        _codec_family("mp2", (320, 256, 192, 160, 128, 96, 64, 48, 32), "MPEG-1 Layer II (ffmpeg)"),
        Family("lowpass", "signal", synthetic.lowpass, "cutoff_hz", "Hz",
               (16000, 12000, 8000, 6000, 4000, 3000, 2000), "log10(20000/fc)",
               _log_ratio(20000, 2000), description="zero-phase 8th-order Butterworth low-pass"),
        Family("white_noise", "signal", synthetic.noise, "snr_db", "dB",
               (50, 40, 30, 20, 15, 10, 5, 0), "(60 - snr) / 60", _linear(60, 0),
               defaults={"color": "white"}, description="additive white Gaussian noise at an exact SNR"),
        Family("pink_noise", "signal", synthetic.noise, "snr_db", "dB",
               (50, 40, 30, 20, 15, 10, 5, 0), "(60 - snr) / 60", _linear(60, 0),
               defaults={"color": "pink"}, description="additive 1/f noise (20 Hz up) at an exact SNR"),
        Family("clipping", "signal", synthetic.clipping, "clip_ratio", "fraction of samples",
               (0.001, 0.003, 0.01, 0.03, 0.1, 0.2), "log(1 + 1000 r) / log(201)",
               lambda r: math.log1p(1000 * max(r, 0.0)) / math.log(201),
               description="hard clipping at the level that clips a given fraction of samples"),
        Family("bitdepth", "signal", synthetic.bitdepth, "bits", "bits",
               (14, 12, 10, 8, 6, 5, 4), "(16 - bits) / 12", _linear(16, 4),
               defaults={"dither": "tpdf"}, description="requantisation with TPDF dither"),
        Family("spectral_holes", "signal", synthetic.spectral_holes, "n_holes", "bands",
               (1, 2, 3, 5, 8, 12), "log(1 + n) / log(13)",
               lambda n: math.log1p(max(n, 0.0)) / math.log(13),
               defaults={"width_oct": 1 / 3, "duty": 1.0},
               description="third-octave bands removed in the STFT domain (band dropout)"),
        Family("pre_echo", "signal", synthetic.pre_echo, "snr_db", "dB",
               (36, 30, 24, 18, 12, 6, 0), "(48 - snr) / 48", _linear(48, 0),
               description="long-window transform quantisation: noise spread ahead of attacks"),
        Family("separation", "signal", _separation, "quality", "0..1",
               (0.9, 0.8, 0.6, 0.4, 0.2, 0.0), "1 - quality", _linear(1, 0),
               description="imperfect time-frequency mask on target + interferer (bleed, musical noise)"),
        Family("packet_loss", "signal", effects.packet_loss, "loss_rate", "fraction of frames",
               (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5), "log(1 + 100 r) / log(51)",
               lambda r: math.log1p(100 * max(r, 0.0)) / math.log(51),
               defaults={"frame_ms": 20.0, "mode": "conceal"},
               description="20 ms frames lost at random, gaps concealed (or silent, deleted, repeated)"),
        Family("echo", "signal", effects.echo, "gain", "linear gain",
               (0.05, 0.1, 0.2, 0.3, 0.5, 0.7), "g / 0.7", _linear(0, 0.7),
               defaults={"delay_ms": 100.0, "feedback": False},
               description="one delayed copy of the signal (or a feedback train of them)"),
        Family("reverb", "signal", effects.reverb, "rt60_s", "s",
               (0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0), "log(rt60 / 0.025) / log(80)",
               lambda t: math.log(t / 0.025) / math.log(80) if t > 0 else 0.0,
               defaults={"wet": 0.3},
               description="convolution with exponentially decaying noise (diffuse room reverberation)"),
        Family("interferer", "signal", effects.interference, "sir_db", "dB",
               (30, 25, 20, 15, 10, 5, 0), "(40 - sir) / 40", _linear(40, 0),
               description="a competing source mixed in at an exact signal-to-interference ratio"),
        Family("bandpass", "signal", effects.bandpass, "high_hz", "Hz",
               (14000, 10000, 7000, 5000, 3400, 2500), "log(20000/fh) / log(8)",
               _log_ratio(20000, 2500),
               description="telephone-like band limit (300-3400 Hz at 3400; 50 Hz low edge above 4 kHz)"),
        Family("mnru", "signal", effects.mnru, "q_db", "dB",
               (45, 35, 25, 15, 5), "(55 - q) / 50", _linear(55, 5),
               description="ITU-T P.810 modulated noise: x + x 10^(-Q/20) n"),
        Family("compression", "signal", effects.compression, "threshold_db", "dB re peak",
               (-2, -4, -6, -9, -12, -15, -18), "-t / 18", _linear(0, -18),
               defaults={"ratio": 8.0, "attack_ms": 1.0, "release_ms": 100.0, "lookahead_ms": 5.0, "makeup": True},
               description="look-ahead compressor, 8:1, 1/100 ms, loudness restored by make-up gain"),
        Family("wow_flutter", "signal", effects.wow_flutter, "depth", "%",
               (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0), "log(1 + d / 0.05) / log(41)",
               lambda d: math.log1p(max(d, 0.0) / 0.05) / math.log(41),
               defaults={"rate_hz": 1.0}, time_aligned=False,
               description="sinusoidal speed (and pitch) modulation, 1 Hz, like an uneven tape drive"),
        Family("time_warp", "signal", effects.time_warp, "factor", "speed factor",
               (1.0025, 1.005, 1.01, 1.02, 1.03, 1.05), "|ln f| / ln(1.05)",
               lambda f: abs(math.log(f)) / math.log(1.05) if f > 0 else 1.0, time_aligned=False,
               description="constant playback speed change: duration and pitch together (soxr)"),
    ]  # fmt: skip
    return {f.name: f for f in fams}


FAMILIES: dict[str, Family] = _build()

# Plain degradation functions usable as a ``kind`` besides the families (no ladder, no label).
_EXTRA_KINDS: dict[str, Callable[..., tuple[np.ndarray, dict]]] = {"noise": synthetic.noise}


def get_family(name: str) -> Family:
    """Look up a family by name; a one-sentence DegradationError names the choices otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise DegradationError(
            f"Unknown degradation family '{name}'; choose one of {', '.join(FAMILIES)}."
        ) from None


def _json_safe(value: Any) -> Any:
    """Parameters as JSON-friendly values (arrays described by their shape)."""
    if isinstance(value, np.ndarray):
        return f"array{list(value.shape)}"
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


@functools.lru_cache(maxsize=64)
def _accepted(func: Callable) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(all keyword names, required names) of ``func`` after ``x`` and ``sr``."""
    names, required = [], []
    for p in list(inspect.signature(func).parameters.values())[2:]:
        names.append(p.name)
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
    return tuple(names), tuple(required)


def degrade(x: np.ndarray, sr: int, kind: str, **params: Any) -> tuple[np.ndarray, dict]:
    """Apply one degradation.

    Parameters
    ----------
    x : numpy.ndarray
        float ``[C, N]`` or ``[N]``, full scale 1.0, at ``sr``.
    sr : int
        Hz.
    kind : str
        A family name from :data:`FAMILIES` (``"mp3"``, ``"lowpass"``, ``"white_noise"``, ...) or
        ``"noise"`` (white or pink via ``color``).
    **params
        Keyword arguments of the family's function, e.g. ``bitrate_kbps=64`` for a codec,
        ``cutoff_hz=4000`` for ``"lowpass"``; the family's defaults fill the rest.

    Returns
    -------
    y : numpy.ndarray
        float32, same shape as ``x``, time-aligned with it, except where a family changes time
        by design (:attr:`Family.time_aligned` False, and ``packet_loss`` with
        ``mode="delete"``, which is shorter).
    info : dict
        ``kind``, ``params`` (as applied), ``label`` (``param``-mode label when ``kind`` is a
        family and its parameter was given, else None), plus what the function reports.

    Raises
    ------
    DegradationError
        Unknown ``kind``, unknown or missing parameter, or a value out of range (one sentence);
        :class:`EncoderMissing` / :class:`CodecError` for codecs.
    """
    family = FAMILIES.get(kind)
    if family is not None:
        func = family.func
        merged = {**family.defaults, **params}
    elif kind in _EXTRA_KINDS:
        func = _EXTRA_KINDS[kind]
        merged = dict(params)
    else:
        names = ", ".join([*FAMILIES, *_EXTRA_KINDS])
        raise DegradationError(f"Unknown degradation '{kind}'; choose one of {names}.")
    accepted, required = _accepted(func)
    unknown = [k for k in merged if k not in accepted]
    if unknown:
        raise DegradationError(
            f"The {kind} degradation has no parameter '{unknown[0]}'; it takes {', '.join(accepted)}."
        )
    missing = [k for k in required if k not in merged]
    if missing:
        raise DegradationError(f"The {kind} degradation needs the parameter '{missing[0]}'.")
    y, details = func(x, sr, **merged)
    label = family.label(merged[family.param]) if family is not None and family.param in merged else None
    info = {"kind": kind, "params": _json_safe(merged), "label": label, **_json_safe(details)}
    return y, info


# ------------------------------------------------------------------------------------- labels


def teacher_label(distance_db: float, half_db: float = TEACHER_HALF_DB) -> float:
    """Map a teacher distance to the 0..1 label scale: ``d / (d + half_db)``.

    Parameters
    ----------
    distance_db : float
        :func:`~deepaq_core.degrade.teacher.logmel_distance`, dB (>= 0).
    half_db : float
        Distance that maps to 0.5.

    Returns
    -------
    float
        0 for identical signals, approaching 1 for very large distances; monotone.
    """
    d = max(0.0, float(distance_db))
    return d / (d + half_db)


def isotonic(values: Sequence[float], weights: Sequence[float] | None = None) -> np.ndarray:
    """Least-squares non-decreasing fit to ``values`` (pool-adjacent-violators, via scipy).

    Parameters
    ----------
    values : sequence of float
        ``[K]``, in the order along which the fit must not decrease.
    weights : sequence of float, optional
        ``[K]`` positive weights.

    Returns
    -------
    numpy.ndarray
        ``[K]`` float64, non-decreasing.
    """
    from scipy.optimize import isotonic_regression  # lazy: scipy.optimize is slow to import

    y = np.asarray(values, dtype=np.float64)
    if y.size == 0:
        return y
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    return np.asarray(isotonic_regression(y, weights=w, increasing=True).x, dtype=np.float64)


def hybrid_labels(
    family: Family | str, param_values: Sequence[float], distances_db: Sequence[float], half_db: float = TEACHER_HALF_DB
) -> np.ndarray:
    """Teacher labels made monotone in a family's parameter.

    Parameters
    ----------
    family : Family or str
        Defines the direction of severity (through its ``param`` label).
    param_values : sequence of float
        ``[K]`` parameter values of one excerpt's versions, any order, repeats allowed. The clean
        version needs no entry: its label is 0 by definition, and distances are >= 0.
    distances_db : sequence of float
        ``[K]`` teacher distances of those versions.
    half_db : float
        See :func:`teacher_label`.

    Returns
    -------
    numpy.ndarray
        ``[K]`` labels in the input order: :func:`teacher_label` of the isotonic (non-decreasing
        in severity) fit of the distances; versions with equal parameters get equal labels.
    """
    fam = get_family(family) if isinstance(family, str) else family
    severity = np.array([fam.label(v) for v in param_values], dtype=np.float64)
    dist = np.asarray(distances_db, dtype=np.float64)
    if severity.shape != dist.shape:
        raise ValueError(f"param_values and distances_db differ in length: {severity.shape} vs {dist.shape}")
    # Equal severities are pooled first (mean distance, weight = count) so they share a label.
    _, inverse, counts = np.unique(severity, return_inverse=True, return_counts=True)
    pooled = np.bincount(inverse, weights=dist) / counts
    fitted = isotonic(pooled, counts)
    return np.array([teacher_label(fitted[k], half_db) for k in inverse])


def make_ladder(
    x: np.ndarray,
    sr: int,
    family: Family | str,
    label_mode: str = "param",
    seed: int | None = None,
    include_clean: bool = True,
    **params: Any,
) -> list[dict]:
    """Generate every rung of a family's ladder for one excerpt, with surrogate labels.

    Parameters
    ----------
    x : numpy.ndarray
        Clean excerpt, float ``[C, N]`` at ``sr``.
    sr : int
        Hz.
    family : Family or str
        Which family.
    label_mode : {"param", "teacher", "hybrid"}
        How labels are set (module docstring).
    seed : int or None
        One seed for all rungs, so random degradations nest (the noise of one rung is a scaled
        copy of the next, the holes of one rung a subset of the next's); None draws one.
    include_clean : bool
        Prepend the clean excerpt itself with label 0.
    **params
        Fixed extra parameters for every rung (e.g. ``interferer=...`` for separation).

    Returns
    -------
    list of dict
        One per version, mildest first: ``audio`` (float32 ``[C, N]``; another length for
        ``time_warp`` and ``packet_loss`` with ``mode="delete"``), ``param`` (value, None
        for the clean one), ``label``, ``teacher_db`` (dB; None for the rungs in ``param`` mode,
        0 for the clean version) and ``info``.
    """
    if label_mode not in LABEL_MODES:
        raise DegradationError(f"Unknown label mode '{label_mode}'; choose one of {', '.join(LABEL_MODES)}.")
    fam = get_family(family) if isinstance(family, str) else family
    clean = np.asarray(x, dtype=np.float32)
    extra = dict(params)
    if "seed" in _accepted(fam.func)[0]:
        if seed is None:
            seed = int(np.random.default_rng().integers(2**63))
        extra.setdefault("seed", seed)
    items = []
    if include_clean:
        items.append({"audio": clean, "param": None, "label": 0.0, "teacher_db": 0.0, "info": {"kind": "clean"}})
    for value in fam.ladder:
        y, info = degrade(clean, sr, fam.name, **{fam.param: value, **extra})
        items.append({"audio": y, "param": value, "label": fam.label(value), "teacher_db": None, "info": info})
    if label_mode == "param":
        return items
    for item in items[1 if include_clean else 0 :]:
        item["teacher_db"] = logmel_distance(clean, item["audio"], sr)
    rungs = items[1:] if include_clean else items
    if label_mode == "teacher":
        for item in rungs:
            item["label"] = teacher_label(item["teacher_db"])
    else:
        labels = hybrid_labels(fam, [it["param"] for it in rungs], [it["teacher_db"] for it in rungs])
        for item, label in zip(rungs, labels):
            item["label"] = float(label)
    return items


def codec_families() -> tuple[str, ...]:
    """Names of the families that need an installed encoder (same as :data:`CODECS`)."""
    return tuple(name for name, fam in FAMILIES.items() if fam.group == "codec" and name in CODECS)
