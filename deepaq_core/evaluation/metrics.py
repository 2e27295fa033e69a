"""Metrics an evaluation run compares: DeePAQ models, the two baselines, and (in ``peers``) others.

Every metric is a :class:`Metric`: ``setup()`` loads what it needs (timed separately),
``measure(reference, degraded)`` returns ``{"value": float, ...extras}`` for one file pair, and
:attr:`Metric.higher_is_better` tells the orientation. Statistics use the *quality orientation*
``value if higher_is_better else -value``, so every metric that agrees with listeners gets
positive correlations.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

from deepaq_core.errors import DeePAQError

log = logging.getLogger(__name__)


class Metric:
    """Base class of the metrics of an evaluation run.

    Attributes
    ----------
    name : str
        Column name in tables and CSVs (e.g. ``deepaq:compact``, ``si_sdr``, ``visqol``).
    label : str
        One-line description for reports.
    kind : {"deepaq", "baseline", "peer"}
    higher_is_better : bool
        Orientation of ``value``; distances are False.
    unit : str
        Unit of ``value``.
    extras : tuple of str
        Names of the extra per-item outputs ``measure`` returns besides ``value``.
    nmr : bool
        Whether the metric can score a row without a reference (needs ``clean`` recordings).
    """

    name = "metric"
    label = ""
    kind = "baseline"
    higher_is_better = True
    unit = ""
    extras: tuple[str, ...] = ()
    nmr = False

    def setup(self) -> None:
        """Load models or compile code before the first item (timed apart from the items)."""

    def measure(self, reference: str | None, degraded: str) -> dict:
        """Score one pair; returns ``{"value": float, **extras}``.

        Parameters
        ----------
        reference : str or None
            Reference file (None only for NMR-capable metrics).
        degraded : str
            File under test.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release models (a run measures one metric at a time, so memory does not add up)."""

    def quality(self, value: float) -> float:
        """``value`` in quality orientation (higher = better)."""
        return value if self.higher_is_better else -value

    def describe(self) -> dict:
        """Static facts for reports."""
        return {"name": self.name, "label": self.label, "kind": self.kind,
                "higher_is_better": self.higher_is_better, "unit": self.unit}


class SiSdrMetric(Metric):
    """Baseline: SI-SDR after alignment (:func:`~deepaq_core.evaluation.baselines.aligned_si_sdr`)."""

    name = "si_sdr"
    label = "SI-SDR after alignment (native rate, mono, capped at 100 dB)"
    kind = "baseline"
    higher_is_better = True
    unit = "dB"

    def measure(self, reference, degraded):
        from deepaq_core.evaluation.baselines import aligned_si_sdr

        return {"value": aligned_si_sdr(reference, degraded)}


class LogMelMetric(Metric):
    """Baseline: aligned loudness-normalised 64-band log-mel L1 distance at 24 kHz."""

    name = "logmel_l1"
    label = "aligned, loudness-normalised 64-band log-mel L1 distance at 24 kHz (mono)"
    kind = "baseline"
    higher_is_better = False
    unit = "dB"

    def measure(self, reference, degraded):
        from deepaq_core.evaluation.baselines import aligned_logmel_l1

        return {"value": aligned_logmel_l1(reference, degraded)}


class DeePAQMetric(Metric):
    """A DeePAQ model of the ladder through :class:`deepaq_core.scoring.Scorer`.

    Parameters
    ----------
    model : str
        Model name (``deepaq models``) or bundle folder.
    device : str
        Torch device (``auto``, ``cpu``, ``cuda``...).
    output : {"distance", "score"}
        Which number is the metric's ``value``. ``distance`` (the default) is the raw embedding
        distance; ``score`` is the model card's 0-100 mapping of it, which has the same order
        but can saturate for an untrained model's placeholder mapping.
    clean : sequence of str or None
        Clean recordings for rows without a reference (non-matching reference, ``Scorer.nmr``).
    """

    kind = "deepaq"
    nmr = True

    def __init__(self, model: str, device: str = "auto", output: str = "distance",
                 clean: Sequence[str] | None = None, *, allow_unverified: bool = False) -> None:
        if output not in ("distance", "score"):
            raise ValueError("output must be 'distance' or 'score'")
        self.model = model
        self.device = device
        self.output = output
        self.clean = list(clean or [])
        self.name = f"deepaq:{os.path.basename(os.path.normpath(str(model)))}"
        self.higher_is_better = output == "score"
        self.unit = "0-100" if output == "score" else "embedding L2 distance"
        self.extras = ("score",) if output == "distance" else ("distance",)
        self.label = f"DeePAQ model '{model}' ({output})"
        self.status = "unknown"
        self.allow_unverified = allow_unverified
        self.unverified_note: str | None = None
        self._scorer = None

    def setup(self) -> None:
        from deepaq_core.model.bundle import unverified_note
        from deepaq_core.scoring import Scorer, ScoreSettings

        # matrix_size=0: an evaluation needs the distance, not the app's time x time matrix.
        self._scorer = Scorer(self.model, self.device, ScoreSettings(matrix_size=0),
                              allow_unverified=self.allow_unverified)
        self.unverified_note = unverified_note(self._scorer.loaded.bundle)
        info = self._scorer.info
        self.status = info.status
        self.label = f"DeePAQ {info.label} ({self.output}; model status: {info.status})"
        if self.output == "distance":
            from deepaq_core.distance import DistanceSpec

            self.unit = DistanceSpec.from_card(self._scorer.loaded.bundle.card).units

    def measure(self, reference, degraded):
        if reference is None:
            if not self.clean:
                raise DeePAQError(f"'{os.path.basename(degraded)}' has no reference and no clean recordings were given.")
            r = self._scorer.nmr(degraded, self.clean)
            return {"value": r.distance if self.output == "distance" else math.nan,
                    self.extras[0]: math.nan if self.output == "distance" else r.distance}
        r = self._scorer.score(reference, degraded)
        if self.output == "distance":
            return {"value": r.distance, "score": r.score}
        return {"value": r.score, "distance": r.distance}

    def close(self) -> None:
        self._scorer = None

    def describe(self) -> dict:
        return {**super().describe(), "model": str(self.model), "status": self.status, "output": self.output}


def available_models() -> list[str]:
    """Names of the ladder's models that can run here now (weights present)."""
    from deepaq_core.model.registry import list_models

    return [e.name for e in list_models() if e.available]


def resolve_models(requested: Sequence[str]) -> tuple[list[str], list[str]]:
    """Which requested models to run, and one-line notes on those skipped.

    Parameters
    ----------
    requested : sequence of str
        Model names or bundle folders; ``"all"`` expands to every available model, ``["none"]``
        selects no model (baselines and peers only).

    Returns
    -------
    (list of str, list of str)
        Models to run (order kept, duplicates dropped) and skip notes.
    """
    from deepaq_core.model.registry import list_models

    if [n.lower() for n in requested] == ["none"]:
        return [], []
    entries = {e.name: e for e in list_models()}
    out: list[str] = []
    notes: list[str] = []
    for name in requested:
        names = [e.name for e in entries.values() if e.available] if name == "all" else [name]
        for n in names:
            if n in out:
                continue
            if os.path.isdir(os.path.expanduser(n)):
                out.append(n)
            elif n in entries and not entries[n].available:
                notes.append(f"skipping model '{n}': not available here ({entries[n].where}).")
            elif n not in entries:
                raise DeePAQError(f"Unknown model '{n}'; known models: {', '.join(entries)}.")
            else:
                out.append(n)
    return out, notes
