"""Tests of the A/B playback engine: pure rendering, the null clock, and the callback path.

No audio device is needed: :func:`render_block` is called on numpy buffers, the engine runs on
the null backend with a fake clock, and a fake ``sounddevice`` module drives the real callback.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
import types

import numpy as np
import pytest

from deepaq_gui import playback
from deepaq_gui.playback import (
    REASON_NO_DEVICE,
    AudioBackendError,
    MixState,
    PlaybackEngine,
    render_block,
)

SR = 48000
FADE = 64


def ramp_tracks(n: int = 20000, count: int = 3) -> list[np.ndarray]:
    """Track k: channel 0 = frame index + 10000 k (tells track and frame apart), channel 1 = a
    shared ramp identical in every track (any mix of them with gains summing to 1 leaves it
    unchanged)."""
    idx = np.arange(n, dtype=np.float32)
    return [np.stack([idx + 10000 * k, idx * 0.5], axis=1) for k in range(count)]


def sine(freq: float, n: int, phase: float = 0.0) -> np.ndarray:
    t = np.arange(n) / SR
    return (0.5 * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)[:, None]


def render(tracks, state: MixState, frames: int, block: int = 256) -> np.ndarray:
    """Render ``frames`` in blocks, checking that the position advances by exactly each block."""
    out = np.empty((frames, tracks[0].shape[1]), np.float32)
    for i in range(0, frames, block):
        before = state.position
        chunk = out[i : i + block]
        render_block(chunk, tracks, state)
        if state.playing and state.loop is None and not state.fading:
            assert state.position == before + chunk.shape[0]
    return out


def max_jump(x: np.ndarray) -> float:
    return float(np.max(np.abs(np.diff(x, axis=0))))


# -- render_block ---------------------------------------------------------------------------


def test_switch_is_sample_synchronous_with_crossfade():
    tracks = ramp_tracks()
    state = MixState(fade_len=FADE, playing=True)
    out0 = render(tracks, state, 768)
    assert np.array_equal(out0, tracks[0][:768])
    assert state.position == 768

    state.select(1)
    out = np.empty((256, 2), np.float32)
    render_block(out, tracks, state)
    assert state.position == 768 + 256  # no gap: the playhead moved by exactly one block
    frames = np.arange(768, 768 + 256)
    # The shared channel continues at the same frame index, unchanged by the fade: the two
    # gains sum to 1 at every sample.
    np.testing.assert_allclose(out[:, 1], frames * 0.5, rtol=1e-6)
    # Channel 0 = frame + 10000 * w, w the gain of track 1: rises from 0 to 1 over the fade.
    w = (out[:, 0] - frames) / 10000.0
    assert np.all((w[:FADE] > 0) & (w[:FADE] < 1))
    assert np.all(np.diff(w[:FADE]) > 0)
    # After the fade: exactly track 1 at the same frames.
    assert np.array_equal(out[FADE:], tracks[1][768 + FADE : 768 + 256])
    assert state.current == 1 and not state.fading


def test_switch_back_mid_fade_reverses_smoothly():
    tracks = [sine(440, 8000), sine(1000, 8000, phase=2.0)]
    state = MixState(fade_len=FADE, playing=True)
    out = np.empty((3000, 1), np.float32)
    render_block(out[:1000], tracks, state)
    state.select(1)
    render_block(out[1000:1020], tracks, state)  # 20 samples into the fade
    state.select(0)  # fast A-B-A
    render_block(out[1020:], tracks, state)
    assert state.current == 0 and state.fade_left == 0
    assert max_jump(out) < 1.2 * max(max_jump(tracks[0]), max_jump(tracks[1]))
    assert np.array_equal(out[1100:], tracks[0][1100:3000])


def test_switch_during_fade_to_third_track_waits_for_the_fade():
    tracks = ramp_tracks()
    state = MixState(fade_len=FADE, playing=True)
    out = np.empty((512, 2), np.float32)
    state.select(1)
    render_block(out[:10], tracks, state)
    state.select(2)
    assert state.pending_select == 2 and state.current == 1
    render_block(out[10:], tracks, state)
    assert state.current == 2
    np.testing.assert_allclose(out[:, 1], np.arange(512) * 0.5, rtol=1e-6)
    assert np.array_equal(out[2 * FADE :], tracks[2][2 * FADE : 512])


def test_switch_between_sines_does_not_click():
    a, b = sine(440, 20000), sine(1000, 20000, phase=1.3)
    tracks = [a, b]
    # Switch where the two signals differ a lot, so that a hard cut would be a big step.
    switch_at = next(i for i in range(4096, 20000, 256) if abs(a[i, 0] - b[i, 0]) > 0.4)
    within = max(max_jump(a), max_jump(b))

    def run(fade_len: int) -> np.ndarray:
        state = MixState(fade_len=fade_len, playing=True)
        first = render(tracks, state, switch_at)
        state.select(1)
        return np.concatenate([first, render(tracks, state, 4096)])

    assert max_jump(run(480)) <= 1.2 * within  # 10 ms crossfade
    assert max_jump(run(0)) > 3 * within  # sanity: the hard cut is the click we avoid


def test_play_and_pause_fade_in_and_out():
    tracks = [np.full((5000, 1), 0.5, np.float32)]
    state = MixState(fade_len=FADE, position=1000)
    state.play(5000)
    out = render(tracks, state, 256)
    assert 0 < out[0, 0] < 0.5 / FADE * 2  # starts near silence, no step
    assert np.all(np.diff(out[:FADE, 0]) > 0) and np.all(out[FADE:] == 0.5)
    state.pause()
    assert state.playing  # still fading out
    out = render(tracks, state, 256)
    assert not state.playing
    assert np.all(np.diff(out[:FADE, 0]) < 0) and out[FADE - 1, 0] < 0.5 / FADE * 2
    assert np.all(out[FADE:] == 0)
    assert state.position == 1000 + 256 + FADE


def test_loop_wraps_exactly():
    track = np.random.default_rng(0).normal(size=(10000, 2)).astype(np.float32)
    a, b = 1000, 1700
    state = MixState(fade_len=FADE, position=a, loop=(a, b), playing=True)
    out = np.empty((5000, 2), np.float32)
    for i in range(0, 5000, 500):
        render_block(out[i : i + 500], [track], state)
        assert a <= state.position < b
    expected = np.tile(track[a:b], (8, 1))[:5000]
    assert np.array_equal(out, expected)
    # 5000 frames after a, modulo the 700-frame loop.
    assert state.position == a + 5000 % (b - a)


def test_loop_seam_crossfade_is_continuous():
    a_track = sine(441, 20000)
    start, end = 1000, 1000 + 3 * 48000 // 441 + 37  # ends do not match: a hard wrap steps
    hard = MixState(position=start, loop=(start, end), playing=True)
    smooth = MixState(
        fade_len=FADE, position=start, loop=(start, end), playing=True, loop_crossfade=True
    )
    within = max_jump(a_track)
    assert max_jump(render([a_track], hard, 4000)) > 3 * within
    out = render([a_track], smooth, 4000)
    assert max_jump(out) <= 1.2 * within
    assert start <= smooth.position < end


def test_loop_entered_from_before_its_start():
    track = np.arange(3000, dtype=np.float32)[:, None]
    state = MixState(position=100, loop=(500, 600), playing=True)
    out = render([track], state, 700, block=128)
    assert np.array_equal(out[:500, 0], np.arange(100, 600))
    assert np.array_equal(out[500:, 0], np.tile(np.arange(500, 600), 2))


def test_end_writes_zeros_and_stops():
    track = np.ones((1000, 2), np.float32)
    state = MixState(fade_len=FADE, position=900, playing=True)
    out = np.full((256, 2), 7.0, np.float32)
    render_block(out, [track], state)
    assert np.all(out[:100] == 1) and np.all(out[100:] == 0)
    assert not state.playing and state.position == 1000
    render_block(out, [track], state)
    assert np.all(out == 0) and state.position == 1000


def test_end_during_a_crossfade_seek_past_the_end():
    tracks = ramp_tracks(2000, 2)
    state = MixState(fade_len=FADE, position=1990, playing=True)
    out = np.empty((256, 2), np.float32)
    state.select(1)
    render_block(out, tracks, state)
    assert not state.playing and np.all(out[10:] == 0)


def test_mono_tracks_fill_a_stereo_output():
    tracks = [sine(440, 4000), sine(880, 4000)]
    state = MixState(fade_len=FADE, playing=True)
    out = np.empty((512, 2), np.float32)
    render_block(out, tracks, state)
    state.select(1)
    render_block(out, tracks, state)
    assert np.array_equal(out[:, 0], out[:, 1])
    assert np.array_equal(out[FADE:, 0], tracks[1][512 + FADE : 1024, 0])


def test_render_block_allocates_nothing_large():
    tracks = np.stack(ramp_tracks(200000, 3))  # one [T, N, C] array works as well
    scratch = np.zeros((480, 2), np.float32)
    state = MixState(fade_len=480, playing=True, loop=(1000, 150000), scratch=scratch)
    scratch_id, ramp_id = id(state.scratch), id(state.ramp_up)
    out = np.empty((512, 2), np.float32)
    render_block(out, tracks, state)  # warm up
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for i in range(100):
            if i % 7 == 0:
                state.select(i % 3)  # keep crossfades running
            if i % 23 == 0:
                state.seek(1000 + 600 * i)
            render_block(out, tracks, state)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - base < 10_000
    assert id(state.scratch) == scratch_id and id(state.ramp_up) == ramp_id


def test_seek_while_playing_crossfades_from_the_old_position():
    track = sine(440, 48000)
    state = MixState(fade_len=480, playing=True)
    first = render([track], state, 2048)
    state.seek(30011)
    out = np.concatenate([first, render([track], state, 2048)])
    assert max_jump(out) <= 1.2 * max_jump(track)
    assert state.position == 30011 + 2048
    assert np.array_equal(out[2048 + 480 :], track[30011 + 480 : 30011 + 2048])


# -- PlaybackEngine, null backend -----------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def null_engine(seconds: float = 4.0, count: int = 3):
    clock = FakeClock()
    engine = PlaybackEngine(backend="null", clock=clock)
    engine.set_tracks([np.zeros((int(seconds * SR), 2), np.float32)] * count, SR)
    return engine, clock


def test_null_backend_reports_unavailable():
    engine = PlaybackEngine(backend="null")
    assert not engine.available
    assert engine.backend_name == "null"
    assert engine.unavailable_reason.endswith(".") and "\n" not in engine.unavailable_reason


def test_null_backend_playhead_moves_in_real_time():
    engine = PlaybackEngine(backend="null")
    engine.set_tracks([np.zeros((SR * 2, 1), np.float32)] * 2, SR)
    assert engine.duration_s == 2.0
    engine.play()
    time.sleep(0.05)
    assert engine.playing and engine.position_s > 0.02
    engine.pause()
    frozen = engine.position_s
    time.sleep(0.02)
    assert not engine.playing and engine.position_s == frozen
    engine.close()


def test_null_backend_transport_with_fake_clock():
    engine, clock = null_engine()
    engine.play()
    clock.t += 0.5
    assert engine.position_s == pytest.approx(0.5, abs=1 / SR)
    engine.seek(2.0)
    assert engine.position_s == 2.0 and engine.playing
    clock.t += 0.25
    assert engine.position_s == pytest.approx(2.25, abs=1 / SR)
    engine.toggle()
    assert not engine.playing
    clock.t += 1.0
    assert engine.position_s == pytest.approx(2.25, abs=1 / SR)
    engine.stop()
    assert engine.position_s == 0.0 and not engine.playing
    engine.seek(99.0)
    assert engine.position_s == 4.0  # clamped to the end
    engine.seek(-1.0)
    assert engine.position_s == 0.0


def test_null_backend_end_and_restart():
    engine, clock = null_engine(seconds=1.0)
    engine.play()
    clock.t += 5.0
    assert not engine.playing and engine.position_s == 1.0
    engine.play()  # at the end: from the beginning
    assert engine.playing and engine.position_s == 0.0


def test_null_backend_loop():
    engine, clock = null_engine()
    engine.set_loop(2.0, 1.0)  # either order
    assert engine.loop == (1.0, 2.0)
    assert engine.position_s == 1.0  # outside the loop: jumps to its start
    engine.play()
    clock.t += 3600.25  # an hour without a query: arithmetic, not 3600 passes
    assert engine.position_s == pytest.approx(1.25, abs=1 / SR)
    assert engine.playing
    engine.clear_loop()
    clock.t += 10.0
    assert not engine.playing and engine.position_s == 4.0
    with pytest.raises(ValueError):
        engine.set_loop(1.0, 1.0)


def test_null_backend_select_and_toggle_last_two():
    engine, clock = null_engine(count=4)
    assert engine.current == 0
    engine.toggle_last_two()  # nothing selected before: no-op
    assert engine.current == 0
    engine.select(2)
    assert engine.current == 2
    engine.toggle_last_two()
    assert engine.current == 0
    engine.toggle_last_two()
    assert engine.current == 2
    engine.select(3)
    engine.toggle_last_two()
    assert engine.current == 2
    with pytest.raises(IndexError):
        engine.select(4)
    engine.play()
    clock.t += 0.1
    engine.select(1)  # switching while playing keeps the position
    assert engine.current == 1 and engine.position_s == pytest.approx(0.1, abs=2 / SR)


def test_set_tracks_keeps_position_selection_and_loop():
    engine, clock = null_engine(seconds=4.0, count=4)
    engine.select(3)
    engine.seek(3.0)
    engine.set_loop(2.5, 3.5)
    engine.set_tracks([np.zeros((SR * 5, 2), np.float32)] * 4, SR)
    assert engine.current == 3 and engine.position_s == 3.0 and engine.loop == (2.5, 3.5)
    engine.set_tracks([np.zeros((SR * 2, 2), np.float32)] * 2, SR)  # shorter, fewer tracks
    assert engine.current == 0 and engine.position_s == 2.0
    engine.play()  # at the end: from the beginning
    clock.t += 1.0
    assert engine.playing and engine.position_s == pytest.approx(1.0, abs=2 / SR)
    clock.t += 2.0
    assert not engine.playing  # the loop lies outside the tracks: inactive, plays to the end
    with pytest.raises(ValueError):
        engine.set_tracks([np.zeros((10, 2)), np.zeros((11, 2))], SR)
    with pytest.raises(ValueError):
        engine.set_tracks([np.zeros((10, 3))], SR)
    engine.set_tracks([], SR)
    engine.play()
    assert not engine.playing and engine.duration_s == 0.0


def test_auto_backend_never_raises_here():
    engine = PlaybackEngine(backend="auto")
    engine.set_tracks([np.zeros((SR, 2), np.float32)] * 2, SR)
    if not engine.available:  # the machine running this suite has no audio output
        assert engine.backend_name == "null"
        reason = engine.unavailable_reason
        assert reason and reason.endswith(".") and reason.count(". ") == 0 and "\n" not in reason
    engine.close()


def test_importing_playback_does_not_import_sounddevice():
    code = "import sys, deepaq_gui.playback; assert 'sounddevice' not in sys.modules"
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True)


# -- PlaybackEngine with a fake sounddevice: fallbacks and the real callback ------------------


class FakePortAudioError(Exception):
    pass


class FakeStream:
    refuse_mono = False
    instances: list[FakeStream] = []

    def __init__(self, samplerate, blocksize, channels, dtype, latency, callback):
        if channels == 1 and self.refuse_mono:
            raise FakePortAudioError("Invalid number of channels")
        self.samplerate, self.blocksize, self.channels = samplerate, blocksize, channels
        self.callback = callback
        self.active = False
        self.closed = False
        FakeStream.instances.append(self)

    def start(self):
        self.active = True

    def abort(self):
        self.active = False

    def close(self):
        self.closed = True

    def pull(self, frames: int = 512) -> np.ndarray:
        """What PortAudio does: call the callback for one block."""
        assert self.active
        out = np.empty((frames, self.channels), np.float32)
        self.callback(out, frames, None, None)
        return out


def fake_sounddevice(has_device: bool = True):
    def query_devices(kind=None):
        if not has_device:
            raise FakePortAudioError("Error querying device -1")
        return {"name": "fake", "max_output_channels": 2}

    return types.SimpleNamespace(
        PortAudioError=FakePortAudioError, query_devices=query_devices, OutputStream=FakeStream
    )


@pytest.fixture
def fake_sd(monkeypatch):
    FakeStream.instances = []
    FakeStream.refuse_mono = False
    module = fake_sounddevice()
    monkeypatch.setattr(playback, "_import_sounddevice", lambda: module)
    return module


def test_auto_falls_back_without_portaudio(monkeypatch):
    def missing():
        raise OSError("PortAudio library not found")

    monkeypatch.setattr(playback, "_import_sounddevice", missing)
    engine = PlaybackEngine()
    assert not engine.available and engine.backend_name == "null"
    assert "PortAudio" in engine.unavailable_reason
    with pytest.raises(AudioBackendError):
        PlaybackEngine(backend="sounddevice")


def test_auto_falls_back_without_device(monkeypatch):
    monkeypatch.setattr(playback, "_import_sounddevice", lambda: fake_sounddevice(has_device=False))
    engine = PlaybackEngine()
    assert not engine.available and engine.unavailable_reason == REASON_NO_DEVICE
    engine.set_tracks([np.zeros((SR, 1), np.float32)], SR)
    engine.play()
    assert engine.playing  # the null clock runs instead


def test_auto_falls_back_when_the_stream_cannot_open(fake_sd, monkeypatch):
    def refuse(**kwargs):
        raise FakePortAudioError("Invalid sample rate\nmore detail")

    monkeypatch.setattr(fake_sd, "OutputStream", refuse)
    engine = PlaybackEngine()
    assert engine.available  # a device exists ...
    engine.set_tracks([np.zeros((SR, 2), np.float32)], SR)
    assert not engine.available and engine.backend_name == "null"  # ... but refuses the rate
    assert "48000 Hz" in engine.unavailable_reason and "\n" not in engine.unavailable_reason
    with pytest.raises(AudioBackendError):
        PlaybackEngine(backend="sounddevice").set_tracks([np.zeros((SR, 2), np.float32)], SR)


def test_callback_path_switches_sample_synchronously(fake_sd):
    tracks = ramp_tracks(SR, 2)
    engine = PlaybackEngine(backend="sounddevice", fade_ms=FADE * 1000 / SR, blocksize=512)
    engine.set_tracks(tracks, SR)
    (stream,) = FakeStream.instances
    assert engine.available and engine.backend_name == "sounddevice" and not stream.active
    engine.play()
    assert stream.active and engine.playing
    first = np.concatenate([stream.pull() for _ in range(4)])
    assert np.array_equal(first[FADE:, 1], tracks[0][FADE:2048, 1])  # after the fade-in
    engine.select(1)
    assert engine.current == 1  # the GUI sees the switch at once
    out = stream.pull()
    frames = np.arange(2048, 2560)
    np.testing.assert_allclose(out[:, 1], frames * 0.5, rtol=1e-6)
    assert np.array_equal(out[FADE:], tracks[1][2048 + FADE : 2560])
    assert engine.position_s == 2560 / SR

    engine.seek(0.5)
    assert engine.position_s == 0.5  # shown before the callback has applied it
    stream.pull()
    assert engine.position_s == pytest.approx(0.5 + 512 / SR)

    engine.pause()
    assert not engine.playing
    tail = stream.pull()
    assert np.all(tail[FADE:] == 0)
    assert stream.active  # the stream keeps running while paused
    engine.close()
    assert stream.closed and not stream.active


def test_set_tracks_with_same_settings_swaps_on_the_audio_thread(fake_sd):
    engine = PlaybackEngine(backend="sounddevice", blocksize=256)
    engine.set_tracks(ramp_tracks(SR, 2), SR)
    engine.play()
    (stream,) = FakeStream.instances
    stream.pull(256)
    engine.set_tracks(ramp_tracks(SR, 3), SR)
    assert len(FakeStream.instances) == 1  # no reopen
    engine.select(2)
    for _ in range(4):  # the play fade-in, then the 10 ms crossfade
        stream.pull(256)
    out = stream.pull(256)
    assert np.array_equal(out, ramp_tracks(SR, 3)[2][1280:1536])
    engine.set_tracks(ramp_tracks(SR, 3), 44100)  # new rate: a new stream, still playing
    assert len(FakeStream.instances) == 2 and FakeStream.instances[0].closed
    assert FakeStream.instances[1].active and engine.playing and engine.current == 2


def test_mono_tracks_on_a_stereo_only_device(fake_sd):
    FakeStream.refuse_mono = True
    engine = PlaybackEngine(backend="sounddevice")
    track = sine(440, SR)
    engine.set_tracks([track], SR)
    engine.play()
    (stream,) = FakeStream.instances
    assert stream.channels == 2
    out = np.concatenate([stream.pull() for _ in range(3)])
    assert np.array_equal(out[:, 0], out[:, 1])
    assert np.array_equal(out[1000:, 0], track[1000:1536, 0])


def test_callback_survives_an_error(fake_sd):
    engine = PlaybackEngine(backend="sounddevice")
    engine.set_tracks(ramp_tracks(SR, 2), SR)
    engine.play()
    (stream,) = FakeStream.instances
    engine._rt_tracks = None  # simulate a bug inside the callback
    out = stream.pull()
    assert np.all(out == 0) and engine.callback_errors == 1


def test_callback_path_end_of_tracks(fake_sd):
    engine = PlaybackEngine(backend="sounddevice")
    engine.set_tracks([np.ones((1000, 2), np.float32)] * 2, SR)
    engine.play()
    (stream,) = FakeStream.instances
    assert engine.playing  # before the callback has seen the request
    for _ in range(3):
        stream.pull()
    assert not engine.playing and engine.position_s == 1000 / SR
    engine.select(1)  # a request the callback has not applied yet does not revive "playing"
    assert not engine.playing
    engine.toggle()  # at the end: plays again from the beginning
    assert engine.playing and np.any(stream.pull() != 0)
