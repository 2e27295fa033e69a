"""The session document: one results cache, snapshots for workers, playback as scoring measured it."""

from __future__ import annotations

import dataclasses
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
        s.set_result(p.index, p.result)
    tracks = s.playback_tracks()
    assert len(tracks) == 3 and all(t.shape == tracks[0].shape for t in tracks)
    ref, delayed = tracks[0], tracks[1]
    # the delayed, 6 dB quieter copy plays in sync with the reference and at its level
    n = ref.shape[0] - 2200
    np.testing.assert_allclose(delayed[:n], ref[:n], atol=2e-3)
    # only what plays now stays cached: the unaligned copy of the delayed version is gone
    assert len(s._aligned) == 3 and not any(t is before[1] for t in s._aligned.values())
    assert s.playback_tracks()[0] is tracks[0]  # unchanged tracks are reused, not copied again


def _score(s, holder, indices):
    out = []
    run_sync(score_job(holder, s.reference, [(i, s.versions[i]) for i in indices], s.model_name, s.settings),
             threading.Event(), lambda f, m: None, out.append, lambda o: None, lambda m, tb: pytest.fail(m),
             lambda: pytest.fail("cancelled"))
    return {p.index: p.result for p in out if isinstance(p, Partial)}


def test_one_results_cache_by_hash_model_and_settings(signals):
    s = _session(signals, "lp")
    seen = []
    s.subscribe(seen.append)
    first = _score(s, ModelHolder("cpu"), [0])[0]
    s.set_result(0, first)
    assert seen == ["results"] and s.results == {0: first} and s.missing_results() == []
    # a removed and re-added file shows its result again: nothing to score
    s.remove_version(0)
    s.add_version(Session.read_track(signals["lp"]))
    assert s.results[0] is first and s.missing_results() == []
    # other settings: no result; back to the first settings: the cached result again
    settings = s.settings
    s.set_settings(dataclasses.replace(settings, match_loudness=False))
    assert s.results == {} and s.missing_results() == [0]
    s.set_settings(settings)
    assert s.results[0] is first
    s.set_model("tiny")
    assert s.missing_results() == [0]
    assert seen[1:] == ["files", "files", "settings", "settings", "settings"]


def _distinct(track, i):
    """The same audio under another content hash (a different file, as far as results go)."""
    return dataclasses.replace(track, info=dataclasses.replace(track.info, sha256=f"hash{i}"))


def test_version_limit_and_removal(signals):
    s = _session(signals)
    track = Session.read_track(signals["lp"])
    for i in range(MAX_VERSIONS):
        s.add_version(_distinct(track, i))
    with pytest.raises(AudioError, match="At most 9"):
        s.add_version(track)
    for i in (0, 4, 8):
        s.set_result(i, f"r{i}")
    s.remove_version(4)
    assert len(s.versions) == MAX_VERSIONS - 1 and s.results == {0: "r0", 7: "r8"}


def test_workers_get_a_snapshot_not_the_live_session(signals):
    from types import SimpleNamespace

    s = _session(signals, "lp", "noisy")
    r0 = SimpleNamespace(alignment=SimpleNamespace(lag_ms=10.0, inverted=False), gain_db=-6.0)
    s.set_result(0, r0)
    snap = s.snapshot()
    assert snap.reference.audio.samples.flags.writeable is False  # tracks are shared read-only
    with pytest.raises(TypeError):
        snap.results[1] = "r1"  # type: ignore[index]
    # the session changes meanwhile (the UI thread): the snapshot stays as it was
    s.remove_version(0)
    s.set_result(0, "noisy result")
    assert [v.name for v in snap.versions] == ["lp.wav", "noisy.wav"] and dict(snap.results) == {0: r0}
    assert snap.generation != s.generation
    # preparing audio from a snapshot leaves the session's playback cache alone (the UI thread
    # keeps what the job used once it is back)
    from deepaq_gui.jobs import prepare_audio_job

    s._aligned.clear()
    out = []
    run_sync(prepare_audio_job(snap, 1, ("t",), spectrograms=False), threading.Event(), lambda f, m: None,
             lambda p: None, out.append, lambda m, tb: pytest.fail(m), lambda: pytest.fail("cancelled"))
    prepared = out[0]
    assert s._aligned == {} and len(prepared.tracks) == 3 and len(prepared.aligned) == 3
    assert all(not t.flags.writeable for t in prepared.tracks)


def test_cancelled_scoring_reports_cancel(signals):
    s = _session(signals, "lp")
    ev = threading.Event()
    ev.set()
    outcome = []
    run_sync(score_job(ModelHolder("cpu"), s.reference, [(0, s.versions[0])], "compact", s.settings), ev,
             lambda f, m: None, lambda p: None, lambda o: outcome.append("finished"),
             lambda m, tb: outcome.append(m), lambda: outcome.append("cancelled"))
    assert outcome == ["cancelled"]
