"""The session document: playback tracks use the offset and gain that scoring measured."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from deepaq_core.errors import AudioError
from deepaq_core.scoring import Partial, Progress, Scorer
from deepaq_gui.jobs import ModelHolder, score_job
from deepaq_gui.session import MAX_VERSIONS, Session
from deepaq_gui.workers import run_sync


def _session(signals, *names):
    s = Session()
    s.set_reference(Session.read_track(signals["ref"]))
    for n in names:
        s.add_version(Session.read_track(signals[n]))
    return s


def test_playback_tracks_follow_scoring_alignment_and_gain(signals):
    s = _session(signals, "delayed", "lp")
    before = s.playback_tracks()  # no results yet: the versions play unaligned
    assert len(s._aligned) == 3
    holder = ModelHolder("cpu")
    partials = []
    run_sync(score_job(holder, s.reference, [(0, s.versions[0]), (1, s.versions[1])], None, s.settings),
             threading.Event(), lambda f, m: None, partials.append, lambda out: None,
             lambda m, tb: pytest.fail(m), lambda: pytest.fail("cancelled"))
    results = [p for p in partials if isinstance(p, Partial)]
    assert [p.index for p in results] == [0, 1]
    for p in results:
        s.results[p.index] = p.result
    tracks = s.playback_tracks()
    assert len(tracks) == 3 and all(t.shape == tracks[0].shape for t in tracks)
    ref, delayed = tracks[0], tracks[1]
    # the delayed, 6 dB quieter copy plays in sync with the reference and at its level
    n = ref.shape[0] - 2200
    np.testing.assert_allclose(delayed[:n], ref[:n], atol=2e-3)
    # only what plays now stays cached: the unaligned copy of the delayed version is gone
    assert len(s._aligned) == 3 and not any(t is before[1] for t in s._aligned.values())
    assert s.playback_tracks()[0] is tracks[0]  # unchanged tracks are reused, not copied again


def test_results_are_cached_by_hash_model_and_settings(signals):
    s = _session(signals, "lp")
    holder = ModelHolder("cpu")
    calls = []

    def run():
        out = []
        run_sync(score_job(holder, s.reference, [(0, s.versions[0])], None, s.settings), threading.Event(),
                 lambda f, m: calls.append(m), out.append, lambda o: None, lambda m, tb: pytest.fail(m),
                 lambda: None)
        return [p for p in out if isinstance(p, Partial)][0].result

    first = run()
    n_progress = len(calls)
    second = run()
    assert second is first
    assert len(calls) == n_progress + 1  # only "Loading model" the second time: nothing recomputed


def test_version_limit_and_removal(signals):
    s = _session(signals)
    track = Session.read_track(signals["lp"])
    for _ in range(MAX_VERSIONS):
        s.add_version(track)
    with pytest.raises(AudioError, match="At most 9"):
        s.add_version(track)
    s.results = {0: "r0", 4: "r4", 8: "r8"}
    s.remove_version(4)
    assert len(s.versions) == MAX_VERSIONS - 1 and s.results == {0: "r0", 7: "r8"}


def test_cancelled_scoring_reports_cancel(signals):
    s = _session(signals, "lp")
    ev = threading.Event()
    ev.set()
    outcome = []
    run_sync(score_job(ModelHolder("cpu"), s.reference, [(0, s.versions[0])], "compact", s.settings), ev,
             lambda f, m: None, lambda p: None, lambda o: outcome.append("finished"),
             lambda m, tb: outcome.append(m), lambda: outcome.append("cancelled"))
    assert outcome == ["cancelled"]
