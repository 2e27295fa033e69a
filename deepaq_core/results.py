"""Frozen result objects: numbers with their units, time axes, scale and provenance.

Every array in a result is read-only (``flags.writeable = False``) so a result can be shared
between threads (the GUI's worker hands it to the UI thread) without copies or surprises.
All time axes are in seconds on the **reference** timeline (0 = first reference sample).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepaq_core.audio import Alignment  # re-exported: results carry the alignment used

SCORE_SCALE = "0-100, higher is better; 100 = indistinguishable from the reference"
DISTANCE_UNITS = "L2 distance between unit-norm embeddings (0-2), lower is better"


STATUS_NOTES = {
    "untrained": "untrained (random weights): its scores track a log-mel spectral distance, not a learned "
    "perceptual model",
    "designed": "designed: a full-band auditory model with no learned weights; its 0-100 mapping is fitted on "
    "listener ratings",
}


# Result flags: short machine keys, each with one sentence for people. A flag marks a result to
# look at before trusting it; "inverted" is informational (inverted polarity is inaudible and is
# compensated before scoring).
FLAG_TEXT = {
    "trimmed": "More than 5 % of the reference or the degraded file lies outside their overlap and was not "
    "scored.",
    "short_file": "A file holds less audio than its header declares (it was cut off); only the part present "
    "was scored.",
    "lag_at_edge": "The estimated delay lies at the edge of the searched range, so the true delay may be larger; "
    "give it explicitly or widen the search.",
    "low_confidence": "The delay estimate is uncertain (correlation below 0.2); the files may not match or the "
    "delay may be wrong.",
    "inverted": "The degraded file's polarity is inverted; it was compared the right way up.",
    "unrelated": "These files do not look like versions of the same recording (almost no correlation and a low "
    "score); use 'deepaq nmr' to compare a file with unrelated clean audio.",
}
# Fraction of a file outside the overlap above which a result is flagged "trimmed".
TRIM_FLAG_FRACTION = 0.05
LOW_CONFIDENCE = 0.2
# "unrelated": delay-estimate correlation below UNRELATED_CONFIDENCE and a score below
# UNRELATED_SCORE. On the developer data this caught 22 of 22 pairs of unrelated music or speech
# and none of the 216 rated pairs (their lowest: chop, correlation 0.03, score 43).
UNRELATED_CONFIDENCE = 0.15
UNRELATED_SCORE = 40.0


def _frozen(a: Any) -> np.ndarray:
    arr = np.array(a, dtype=np.float32 if np.asarray(a).dtype.kind == "f" else None, copy=True)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True)
class ModelInfo:
    """Which model produced a result.

    ``status`` is ``"trained"``, ``"designed"`` (a front end built from psychoacoustics, no
    learned weights) or ``"untrained"`` (random weights: its distances are not a perceptual
    measure); every interface shows a status other than trained next to the name.
    """

    name: str
    version: str
    status: str
    backbone: str
    sample_rate: int
    frame_rate: float
    embedding_dim: int

    @property
    def status_note(self) -> str:
        """One clause saying what the status means ("" for a trained model)."""
        return STATUS_NOTES.get(self.status, f"{self.status}: see its card") if self.status != "trained" else ""

    @property
    def label(self) -> str:
        """Name, version and (if untrained) the status, for display."""
        tag = f"{self.name} {self.version}"
        return tag if self.status == "trained" else f"{tag} ({self.status})"


@dataclass(frozen=True)
class FileSummary:
    """The input file a result refers to (``path`` empty for in-memory signals)."""

    path: str
    sha256: str
    sample_rate: int
    channels: int
    duration_s: float
    format: str = ""
    bit_depth: int | None = None


@dataclass(frozen=True)
class QualityCurve:
    """Time-resolved quality: one point per analysis window.

    The windows lie on a regular grid over the aligned overlap: window ``k`` starts at
    ``overlap_start + k * hop`` seconds exactly, and when that grid does not reach the end of the
    overlap one final window ends exactly there (so its start is off the grid). The embeddings
    are pooled over whole frames: a window covers the frames from ``round(k * hop * frame_rate)``
    on, so when the hop is not a whole number of frames (0.5 s at 75 frames/s is 37.5 frames)
    the frames used may start up to half a frame (6.7 ms at 75 frames/s) from the reported time.
    ``end_s`` is ``start_s`` plus the window length, never past the overlap's end.

    Attributes
    ----------
    start_s, end_s : ndarray, shape [W]
        Window bounds in seconds (reference timeline).
    distance : ndarray, shape [W]
        Embedding distance of the window-pooled embeddings (0-2, lower is better).
    score : ndarray, shape [W]
        ``distance`` mapped to the 0-100 scale with the model's score mapping.
    """

    start_s: np.ndarray
    end_s: np.ndarray
    distance: np.ndarray
    score: np.ndarray

    def __post_init__(self) -> None:
        for name in ("start_s", "end_s", "distance", "score"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @property
    def centre_s(self) -> np.ndarray:
        """Window centres in seconds, shape [W]."""
        return (self.start_s + self.end_s) / 2

    def worst(self, n: int = 3) -> list[int]:
        """Indices of the ``n`` lowest-scoring windows that do not overlap each other."""
        order = np.argsort(self.score, kind="stable")
        chosen: list[int] = []
        for i in order:
            if any(self.start_s[i] < self.end_s[j] and self.start_s[j] < self.end_s[i] for j in chosen):
                continue
            chosen.append(int(i))
            if len(chosen) == n:
                break
        return chosen


@dataclass(frozen=True)
class Heatmap:
    """A 2-D map of embedding distances with labelled axes.

    ``values[i, j]`` belongs to row ``i`` (``y`` axis) and column ``j`` (``x`` axis). Cells with no
    data (outside the aligned overlap) are NaN.
    """

    values: np.ndarray
    x: np.ndarray
    y: np.ndarray
    x_label: str
    y_label: str
    units: str

    def __post_init__(self) -> None:
        for name in ("values", "x", "y"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))


@dataclass(frozen=True)
class QualityResult:
    """DeePAQ's verdict on one degraded file against one reference.

    Attributes
    ----------
    score : float
        Global quality, see :data:`SCORE_SCALE`.
    distance : float
        Global embedding distance (mean of the window distances), see :data:`DISTANCE_UNITS`.
    curve : QualityCurve
        Windowed distances and scores over time.
    frame_distance : ndarray, shape [T]
        Per-frame embedding distance at ``frame_rate`` (frame ``k`` starts at ``k / frame_rate`` s);
        NaN outside the aligned overlap.
    layer_heatmap : Heatmap
        Backbone layer (rows) x time (columns): cosine distance of time-binned hidden states.
    time_matrix : Heatmap or None
        Reference time (rows) x degraded time (columns): distance of time-binned embeddings;
        None when the settings left it out (``matrix_size`` 0, as the command line does).
    gain_method : str
        How the loudness-matching gain was found (``"median"`` of short-term loudness
        differences, ``"integrated"``, ``"rms"`` or ``"off"``).
    time_dropped_s, time_inserted_s : float
        Time the degraded signal lacks or has in excess, found by following time locally
        (0 when the model has no local alignment or it is off).
    local_lag_s : ndarray [T] or None
        Local lag of each frame beyond the global one, seconds (NaN outside the overlap).
    flags : tuple of str
        Keys of :data:`FLAG_TEXT` marking a result to look at before trusting it (``()`` when
        nothing is suspicious); :meth:`flag_sentences` says what each means.
    """

    model: ModelInfo
    reference: FileSummary
    degraded: FileSummary
    score: float
    distance: float
    curve: QualityCurve
    frame_rate: float
    frame_distance: np.ndarray
    layer_heatmap: Heatmap
    time_matrix: Heatmap | None
    alignment: Alignment
    gain_db: float
    reference_loudness_lufs: float
    degraded_loudness_lufs: float
    overlap_start_s: float
    overlap_end_s: float
    trimmed_reference_s: float
    trimmed_degraded_s: float
    channel_mode: str = "mono"
    channel_scores: tuple[float, ...] = ()
    device: str = "cpu"
    timings: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    score_scale: str = SCORE_SCALE
    distance_units: str = DISTANCE_UNITS
    gain_method: str = "integrated"
    time_dropped_s: float = 0.0
    time_inserted_s: float = 0.0
    local_lag_s: np.ndarray | None = None
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "flags", tuple(str(f) for f in self.flags))
        object.__setattr__(self, "frame_distance", _frozen(self.frame_distance))
        if self.local_lag_s is not None:
            object.__setattr__(self, "local_lag_s", _frozen(self.local_lag_s))

    def summary(self) -> dict[str, Any]:
        """Scalar fields only (no arrays), JSON-ready."""
        return {
            "reference": self.reference.path,
            "degraded": self.degraded.path,
            "score": round(self.score, 3),
            "distance": round(self.distance, 6),
            "offset_ms": round(self.alignment.lag_ms, 3),
            "offset_samples": self.alignment.lag_native_samples,
            "offset_estimated": self.alignment.estimated,
            "offset_confidence": (round(self.alignment.confidence, 4)
                                  if math.isfinite(self.alignment.confidence) else None),
            "offset_inverted": self.alignment.inverted,
            "offset_at_edge": self.alignment.at_edge,
            "gain_db": round(self.gain_db, 3),
            "gain_method": self.gain_method,
            "time_dropped_s": round(self.time_dropped_s, 4),
            "time_inserted_s": round(self.time_inserted_s, 4),
            "overlap_s": [round(self.overlap_start_s, 4), round(self.overlap_end_s, 4)],
            "trimmed_reference_s": round(self.trimmed_reference_s, 4),
            "trimmed_degraded_s": round(self.trimmed_degraded_s, 4),
            "channel_mode": self.channel_mode,
            "channel_scores": [round(s, 3) for s in self.channel_scores],
            "model": self.model.name,
            "model_version": self.model.version,
            "model_status": self.model.status,
            "device": self.device,
            "score_scale": self.score_scale,
            "distance_units": self.distance_units,
            "reference_sha256": self.reference.sha256,
            "degraded_sha256": self.degraded.sha256,
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "flags": list(self.flags),
        }

    def flag_sentences(self) -> list[str]:
        """One sentence per flag, in the order of :attr:`flags`."""
        return [FLAG_TEXT.get(f, f) for f in self.flags]

    def worst_segments(self, n: int = 3) -> list[dict[str, float]]:
        """The ``n`` lowest-scoring windows that do not overlap (:meth:`QualityCurve.worst`), worst first."""
        c = self.curve
        return [{"start_s": round(float(c.start_s[i]), 6), "end_s": round(float(c.end_s[i]), 6),
                 "score": round(float(c.score[i]), 3), "distance": round(float(c.distance[i]), 6)}
                for i in c.worst(n)]

    def to_dict(self) -> dict[str, Any]:
        """Everything, arrays as lists (NaN as None), JSON-ready; ``worst_segments`` has the 3 worst windows."""
        out = self.summary()
        out["worst_segments"] = self.worst_segments(3)
        out["curve"] = {
            "start_s": _list(self.curve.start_s),
            "end_s": _list(self.curve.end_s),
            "distance": _list(self.curve.distance),
            "score": _list(self.curve.score),
        }
        out["frame_rate"] = self.frame_rate
        if self.local_lag_s is not None:
            out["local_lag_s"] = _list(self.local_lag_s)
        out["model_info"] = dataclasses.asdict(self.model)
        out["settings"] = dict(self.settings)
        return out


@dataclass(frozen=True)
class NmrResult:
    """Non-matching-reference result: a file against unrelated clean recordings.

    ``distance`` is the mean, over the clean recordings, of the distance between the file's
    time-pooled embedding and each clean recording's. It has no 0-100 mapping (the mapping is
    fitted on matched pairs); lower means closer to clean audio.
    """

    model: ModelInfo
    degraded: FileSummary
    distance: float
    per_reference: tuple[tuple[str, float], ...]
    curve_start_s: np.ndarray
    curve_end_s: np.ndarray
    curve_distance: np.ndarray
    device: str = "cpu"
    timings: dict[str, float] = field(default_factory=dict)
    distance_units: str = DISTANCE_UNITS

    def __post_init__(self) -> None:
        for name in ("curve_start_s", "curve_end_s", "curve_distance"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "degraded": self.degraded.path,
            "nmr_distance": round(self.distance, 6),
            "per_reference": [{"clean": p, "distance": round(d, 6)} for p, d in self.per_reference],
            "model": self.model.name,
            "model_version": self.model.version,
            "model_status": self.model.status,
            "distance_units": self.distance_units,
            "curve": {
                "start_s": _list(self.curve_start_s),
                "end_s": _list(self.curve_end_s),
                "distance": _list(self.curve_distance),
            },
            "degraded_sha256": self.degraded.sha256,
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
        }


def _list(a: np.ndarray) -> list:
    return [None if not np.isfinite(v) else round(float(v), 6) for v in np.asarray(a).ravel()]
