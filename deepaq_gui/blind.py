"""Blind listening tests: ABX and blind A/B preference (pure logic: no widgets, no Qt).

The tests only decide *which engine track* plays behind a letter and record the answers; the
widgets in :mod:`deepaq_gui.blind_panel` turn buttons and keys into calls of these classes and
the :class:`~deepaq_gui.playback.PlaybackEngine` does the switching. Track indices are the
engine's: 0 is the reference, 1..9 the versions.

ABX
---
The listener knows A and B and hears X, which is A or B, chosen at random (a fair coin per trial,
independent of the other trials, so the binomial test applies). After ``n`` answers with ``k``
correct, :attr:`AbxTest.p_value` is the probability of ``k`` or more correct answers by guessing:
``P(K >= k)``, ``K ~ Binomial(n, 1/2)``, the value of
``scipy.stats.binomtest(k, n, 0.5, alternative="greater").pvalue``. A small value (commonly
< 0.05) says the listener really hears a difference.

Blind A/B
---------
:class:`BlindAbTest` hides two or more versions behind letters whose assignment is re-drawn
at every trial; the listener states a preference and/or rates each letter; the identities are
revealed (per trial, and as counts and mean ratings per version) at the end.

:func:`export_log_csv` writes either test as a CSV log in the spirit of foobar2000's ABX
comparator log: a header block, one row per trial, a summary.
"""

from __future__ import annotations

import csv
import math
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "AbxTest",
    "AbxTrial",
    "BlindAbTest",
    "BlindAbTrial",
    "binomial_p_value",
    "export_log_csv",
    "format_p",
    "tracks_from_session",
]

LETTERS = "ABCDEFGHIJ"


def _now_iso(when: datetime | None = None) -> str:
    """Local time with its UTC offset, to the second (ISO 8601)."""
    when = when or datetime.now()
    if when.tzinfo is None:
        when = when.astimezone()
    return when.isoformat(timespec="seconds")


def binomial_p_value(k: int, n: int) -> float:
    """One-sided binomial p-value ``P(K >= k)`` for ``K ~ Binomial(n, 1/2)``.

    Computed exactly in integers (one rounding at the end), so it equals
    ``scipy.stats.binomtest(k, n, 0.5, alternative="greater").pvalue`` to machine precision.

    Parameters
    ----------
    k : int
        Correct answers, ``0 <= k <= n``.
    n : int
        Trials; ``n = 0`` gives 1.0 (no evidence).
    """
    k, n = int(k), int(n)
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0 or k == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k, n + 1))
    return tail / (1 << n)  # int / int is correctly rounded


def format_p(p: float) -> str:
    """``"p = 0.038"``; very small values in scientific notation (``"p = 1.5e-05"``)."""
    return f"p = {p:.3f}" if p >= 0.001 else f"p = {p:.1e}"


def tracks_from_session(session) -> dict[int, tuple[str, str]]:
    """Engine track index -> (file name, SHA-256) for a :class:`deepaq_gui.session.Session`.

    Index 0 is the reference, ``i`` is version ``i`` (1-based), as in ``session.playback_tracks()``.
    """
    out: dict[int, tuple[str, str]] = {}
    if session.reference is not None:
        out[0] = (session.reference.name, session.reference.info.sha256 or "")
    for i, v in enumerate(session.versions, start=1):
        out[i] = (v.name, v.info.sha256 or "")
    return out


# -- ABX ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AbxTrial:
    """One answered ABX trial.

    Attributes
    ----------
    trial : int
        1-based trial number.
    time : str
        ISO 8601 time of the answer.
    x_was, answer : str
        ``"A"`` or ``"B"``.
    correct : bool
        ``answer == x_was``.
    """

    trial: int
    time: str
    x_was: str
    answer: str
    correct: bool


class AbxTest:
    """An ABX test between engine tracks ``a_index`` and ``b_index``.

    Parameters
    ----------
    a_index, b_index : int
        Engine track indices of A and B (different).
    trials : int
        Planned number of trials (>= 1); :attr:`finished` after that many answers.
    seed : int or None
        Seed of the X assignments: the same seed gives the same sequence.

    Use ``index_of("A" | "B" | "X")`` to know which track to play for the current trial, then
    :meth:`answer` with ``"A"`` or ``"B"``.
    """

    kind = "ABX"

    def __init__(self, a_index: int, b_index: int, trials: int = 16, seed: int | None = None) -> None:
        a_index, b_index, trials = int(a_index), int(b_index), int(trials)
        if a_index == b_index:
            raise ValueError("A and B must be different tracks")
        if a_index < 0 or b_index < 0:
            raise ValueError("track indices must be >= 0")
        if trials < 1:
            raise ValueError(f"an ABX test needs at least one trial, got {trials}")
        self.a_index = a_index
        self.b_index = b_index
        self.trials = trials
        self.seed = seed
        self.started = _now_iso()
        self.log: list[AbxTrial] = []
        rng = random.Random(seed)
        # One independent fair coin per trial (drawn up front: reproducible whatever the timing).
        self._x: list[str] = ["A" if rng.random() < 0.5 else "B" for _ in range(trials)]

    # -- state ---------------------------------------------------------------------------
    @property
    def total(self) -> int:
        """Answers given so far."""
        return len(self.log)

    @property
    def correct(self) -> int:
        """Correct answers so far."""
        return sum(t.correct for t in self.log)

    @property
    def p_value(self) -> float:
        """``P(>= correct | n=total, p=0.5)``; 1.0 before the first answer."""
        return binomial_p_value(self.correct, self.total)

    @property
    def finished(self) -> bool:
        return self.total >= self.trials

    @property
    def trial_number(self) -> int:
        """1-based number of the trial being listened to (``trials + 1`` once finished)."""
        return self.total + 1

    @property
    def x_sequence(self) -> list[str]:
        """What X is in every planned trial (reveals the test: for logs and tests only)."""
        return list(self._x)

    def index_of(self, letter: str) -> int:
        """Engine track index behind ``"A"``, ``"B"`` or ``"X"`` (X: of the current trial)."""
        letter = letter.upper()
        if letter == "A":
            return self.a_index
        if letter == "B":
            return self.b_index
        if letter == "X":
            if self.finished:
                raise RuntimeError("the test is finished: there is no current X")
            return self.a_index if self._x[self.total] == "A" else self.b_index
        raise ValueError(f"letter must be A, B or X, got {letter!r}")

    @property
    def x_index(self) -> int:
        """Engine track index of X in the current trial."""
        return self.index_of("X")

    # -- answers -------------------------------------------------------------------------
    def answer(self, choice: str, when: datetime | None = None) -> AbxTrial:
        """Record "X is ``choice``" for the current trial and move on to the next one.

        Parameters
        ----------
        choice : str
            ``"A"`` or ``"B"`` (case-insensitive).
        when : datetime or None
            Time of the answer (now by default).

        Raises
        ------
        ValueError
            For any other choice.
        RuntimeError
            When the test is finished.
        """
        choice = str(choice).strip().upper()
        if choice not in ("A", "B"):
            raise ValueError(f"the answer must be 'A' or 'B', got {choice!r}")
        if self.finished:
            raise RuntimeError(f"the test is finished ({self.trials} trials)")
        x = self._x[self.total]
        trial = AbxTrial(self.total + 1, _now_iso(when), x, choice, choice == x)
        self.log.append(trial)
        return trial

    def running(self) -> list[tuple[int, int, float]]:
        """``(correct so far, total so far, p so far)`` after each trial of the log."""
        out, k = [], 0
        for n, t in enumerate(self.log, start=1):
            k += t.correct
            out.append((k, n, binomial_p_value(k, n)))
        return out

    def summary(self) -> str:
        """``"12 / 16 correct, p = 0.038"``."""
        return f"{self.correct} / {self.total} correct, {format_p(self.p_value)}"


# -- blind A/B --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlindAbTrial:
    """One answered blind A/B trial.

    Attributes
    ----------
    trial : int
        1-based trial number.
    time : str
        ISO 8601 time of the answer.
    mapping : dict
        Letter -> engine track index during this trial.
    preferred : str or None
        Letter the listener preferred (None when only rating).
    ratings : dict
        Letter -> rating given (may be empty).
    """

    trial: int
    time: str
    mapping: dict
    preferred: str | None
    ratings: dict = field(default_factory=dict)

    @property
    def preferred_index(self) -> int | None:
        return None if self.preferred is None else self.mapping[self.preferred]

    def ratings_by_index(self) -> dict[int, float]:
        return {self.mapping[k]: v for k, v in self.ratings.items()}


class BlindAbTest:
    """Blind comparison of several engine tracks hidden behind letters A, B, C...

    Parameters
    ----------
    indices : list of int
        Engine track indices to compare (2 to 10, distinct).
    seed : int or None
        Seed of the letter assignments (the same seed gives the same assignments).
    trials : int
        Number of trials (>= 1).
    reshuffle : bool
        Draw a new letter assignment for every trial (default), which makes repeated trials a
        consistency check; False keeps the first assignment for the whole test.

    :meth:`index_of` gives the track behind a letter in the current trial; :meth:`submit`
    records a preference and/or ratings and moves on. :meth:`reveal` tells what was what.
    """

    kind = "blind A/B"

    def __init__(self, indices: Sequence[int], seed: int | None = None, trials: int = 1,
                 reshuffle: bool = True) -> None:
        indices = [int(i) for i in indices]
        if len(indices) < 2:
            raise ValueError("a blind comparison needs at least two tracks")
        if len(indices) > len(LETTERS):
            raise ValueError(f"at most {len(LETTERS)} tracks can be compared blind")
        if len(set(indices)) != len(indices):
            raise ValueError("the tracks to compare must be different")
        trials = int(trials)
        if trials < 1:
            raise ValueError(f"a blind test needs at least one trial, got {trials}")
        self.indices = indices
        self.trials = trials
        self.seed = seed
        self.started = _now_iso()
        self.log: list[BlindAbTrial] = []
        self.letters = tuple(LETTERS[: len(indices)])
        rng = random.Random(seed)
        self._mappings: list[dict[str, int]] = []
        for t in range(trials):
            if t == 0 or reshuffle:
                order = list(indices)
                rng.shuffle(order)
            self._mappings.append(dict(zip(self.letters, order)))

    @property
    def total(self) -> int:
        return len(self.log)

    @property
    def finished(self) -> bool:
        return self.total >= self.trials

    @property
    def trial_number(self) -> int:
        return self.total + 1

    def index_of(self, letter: str) -> int:
        """Engine track index behind ``letter`` in the current trial (the last one once finished)."""
        letter = letter.upper()
        if letter not in self.letters:
            raise ValueError(f"letter must be one of {', '.join(self.letters)}, got {letter!r}")
        return self._mappings[min(self.total, self.trials - 1)][letter]

    def submit(self, preferred: str | None = None, ratings: Mapping[str, float] | None = None,
               when: datetime | None = None) -> BlindAbTrial:
        """Record the current trial's answer and move on.

        Parameters
        ----------
        preferred : str or None
            Letter of the preferred version.
        ratings : mapping of str to float, optional
            Letter -> rating (any scale, e.g. 0-100).
        when : datetime or None
            Time of the answer (now by default).
        """
        if self.finished:
            raise RuntimeError(f"the test is finished ({self.trials} trials)")
        if preferred is None and not ratings:
            raise ValueError("give a preference or at least one rating")
        if preferred is not None:
            preferred = str(preferred).strip().upper()
            if preferred not in self.letters:
                raise ValueError(f"preferred must be one of {', '.join(self.letters)}, got {preferred!r}")
        clean: dict[str, float] = {}
        for letter, value in (ratings or {}).items():
            letter = str(letter).strip().upper()
            if letter not in self.letters:
                raise ValueError(f"rating for unknown letter {letter!r}")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"rating for {letter} is not a finite number")
            clean[letter] = value
        trial = BlindAbTrial(self.total + 1, _now_iso(when), dict(self._mappings[self.total]), preferred, clean)
        self.log.append(trial)
        return trial

    def prefer(self, letter: str, when: datetime | None = None) -> BlindAbTrial:
        """Shortcut for ``submit(preferred=letter)``."""
        return self.submit(preferred=letter, when=when)

    def rate(self, ratings: Mapping[str, float], when: datetime | None = None) -> BlindAbTrial:
        """Shortcut for ``submit(ratings=ratings)``."""
        return self.submit(ratings=ratings, when=when)

    # -- results -------------------------------------------------------------------------
    def preference_counts(self) -> dict[int, int]:
        """Engine index -> number of trials in which it was preferred (every index present)."""
        counts = {i: 0 for i in self.indices}
        for t in self.log:
            if t.preferred is not None:
                counts[t.preferred_index] += 1
        return counts

    def mean_ratings(self) -> dict[int, float]:
        """Engine index -> mean rating over the trials that rated it."""
        sums: dict[int, list[float]] = {}
        for t in self.log:
            for i, v in t.ratings_by_index().items():
                sums.setdefault(i, []).append(v)
        return {i: sum(v) / len(v) for i, v in sums.items()}

    def reveal(self) -> list[dict[str, int]]:
        """Letter -> engine index for every trial answered so far."""
        return [dict(t.mapping) for t in self.log]

    def summary(self, names: Mapping[int, str] | None = None) -> str:
        """One line: how often each version was preferred / its mean rating."""
        names = names or {}
        counts = self.preference_counts()
        means = self.mean_ratings()
        parts = []
        for i in self.indices:
            label = names.get(i, f"track {i}")
            bits = []
            if any(t.preferred is not None for t in self.log):
                bits.append(f"preferred {counts[i]}/{self.total}")
            if i in means:
                bits.append(f"mean rating {means[i]:.1f}")
            parts.append(f"{label}: {', '.join(bits) or 'no answers'}")
        return "; ".join(parts)


# -- the log ----------------------------------------------------------------------------------


def _software() -> str:
    try:
        from deepaq_core import __version__
    except Exception:  # noqa: BLE001 - the log must be written anyway
        return "DeePAQ"
    return f"DeePAQ {__version__}"


def _p_text(p: float) -> str:
    return f"{p:.6g}"


def export_log_csv(test: AbxTest | BlindAbTest, path: str | os.PathLike,
                   tracks: Mapping[int, tuple[str, str]]) -> None:
    """Write the log of ``test`` as CSV (UTF-8), like foobar2000's ABX comparator log.

    Layout (every line is a CSV record, so ``csv.reader`` reads the whole file)::

        DeePAQ ABX test log
        date,<ISO time of writing>
        started,<ISO time the test began>
        software,DeePAQ <version>
        file,A,<name>,<sha256>
        file,B,<name>,<sha256>
        trials,<planned>
        <blank>
        trial,time,x_was,answer,correct,correct_so_far,total_so_far,p_value
        1,<ISO>,A,A,yes,1,1,0.5
        ...
        <blank>
        summary,<k>/<n>,p_value,<p>
        result,"<k> / <n> correct, p = 0.0xx"

    A blind A/B log lists ``file,<index>,<name>,<sha256>`` per compared track, then rows
    ``trial,time,<letter>...,preferred,preferred_file,rating_<letter>...`` (the letter columns
    give the file behind each letter in that trial), then the preference counts / mean ratings.

    Parameters
    ----------
    test : AbxTest or BlindAbTest
        The test (finished or not; only answered trials are written).
    path : str or os.PathLike
        Output file.
    tracks : mapping of int to (str, str)
        Engine index -> (file name, SHA-256); see :func:`tracks_from_session`.
    """

    def info(i: int) -> tuple[str, str]:
        name, sha = tracks.get(i, (f"track {i}", ""))
        return str(name), str(sha or "")

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        if isinstance(test, AbxTest):
            w.writerow(["DeePAQ ABX test log"])
            w.writerow(["date", _now_iso()])
            w.writerow(["started", test.started])
            w.writerow(["software", _software()])
            w.writerow(["file", "A", *info(test.a_index)])
            w.writerow(["file", "B", *info(test.b_index)])
            w.writerow(["trials", test.trials])
            w.writerow([])
            w.writerow(["trial", "time", "x_was", "answer", "correct", "correct_so_far", "total_so_far", "p_value"])
            for t, (k, n, p) in zip(test.log, test.running()):
                w.writerow([t.trial, t.time, t.x_was, t.answer, "yes" if t.correct else "no", k, n, _p_text(p)])
            w.writerow([])
            w.writerow(["summary", f"{test.correct}/{test.total}", "p_value", _p_text(test.p_value)])
            w.writerow(["result", test.summary()])
        elif isinstance(test, BlindAbTest):
            letters = list(test.letters)
            w.writerow(["DeePAQ blind A/B test log"])
            w.writerow(["date", _now_iso()])
            w.writerow(["started", test.started])
            w.writerow(["software", _software()])
            for i in test.indices:
                w.writerow(["file", i, *info(i)])
            w.writerow(["trials", test.trials])
            w.writerow([])
            w.writerow(["trial", "time", *letters, "preferred", "preferred_file",
                        *(f"rating_{c}" for c in letters)])
            for t in test.log:
                w.writerow([t.trial, t.time, *(info(t.mapping[c])[0] for c in letters),
                            t.preferred or "", info(t.preferred_index)[0] if t.preferred else "",
                            *(f"{t.ratings[c]:g}" if c in t.ratings else "" for c in letters)])
            w.writerow([])
            counts, means = test.preference_counts(), test.mean_ratings()
            w.writerow(["summary", "file", "preferred", "trials", "mean_rating"])
            for i in test.indices:
                w.writerow(["summary", info(i)[0], counts[i], test.total,
                            f"{means[i]:.6g}" if i in means else ""])
        else:
            raise TypeError(f"cannot log a {type(test).__name__}")
