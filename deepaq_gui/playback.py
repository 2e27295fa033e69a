"""Audio engine for A/B listening: sample-synchronous switching between aligned tracks.

The caller hands over several tracks (the reference and up to nine degraded versions) that are
already aligned to the reference timeline and share length, rate and channel count. One output
stream plays the selected track; :meth:`PlaybackEngine.select` switches to another track at the
same frame position with a short linear crossfade, so the listener hears only the difference
between the versions, never a gap or a click.

Typical use::

    engine = PlaybackEngine()                 # "auto": sounddevice if possible, else silent
    engine.set_tracks([ref, deg1, deg2], 48000)
    if not engine.available:
        show_once(engine.unavailable_reason)  # playback is off, the playhead still moves
    engine.play()
    engine.select(2)                          # key "3"
    engine.toggle_last_two()                  # Tab: back to the reference
    engine.set_loop(12.0, 15.5)

Threading model
---------------
PortAudio calls the stream callback on its own thread. The callback must never wait for the GUI
thread, so nothing is shared through locks: the GUI thread posts small command tuples to a
:class:`collections.deque` (``append``/``popleft`` are atomic) and the callback applies them at
the start of each block, then calls :func:`render_block`, which only copies and scales samples
into preallocated buffers. Stream open/start/close happen on the GUI thread only.

Without PortAudio or without an output device the engine uses a null backend: no audio, but a
virtual clock (:func:`time.monotonic`) advances the playhead with the same loop and end rules,
so the rest of the application behaves the same.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["AudioBackendError", "MixState", "PlaybackEngine", "render_block"]

#: ``unavailable_reason`` when the caller asked for the null backend.
REASON_NULL = "Audio output is turned off; playback is silent."
#: ``unavailable_reason`` when PortAudio is present but has no output device.
REASON_NO_DEVICE = "No audio output device was found; playback is off."
REASON_NO_PORTAUDIO = "The PortAudio library is not installed; playback is off."
REASON_NO_SOUNDDEVICE = "The sounddevice package is not installed; playback is off."

_BACKENDS = ("auto", "sounddevice", "null")


class AudioBackendError(RuntimeError):
    """The ``"sounddevice"`` backend was requested explicitly and cannot be used.

    ``str(exc)`` is one sentence suitable for the user. With ``backend="auto"`` the engine never
    raises this; it falls back to the null backend instead.
    """


@dataclass(eq=False)
class MixState:
    """Everything :func:`render_block` needs between blocks, owned by the audio thread.

    All positions are frame indices into the tracks. Only the thread that renders (the PortAudio
    callback, or the GUI thread while no stream runs) may call the methods or touch the fields.

    Attributes
    ----------
    position : int
        Next frame of ``current`` to play.
    current : int
        Index of the track being faded in (or playing alone when no fade runs).
    previous : int
        Index of the track being faded out; meaningful only while ``fade_left > 0``.
    fade_len : int
        Crossfade length in frames (0 switches instantly; the null backend uses 0).
    fade_left : int
        Frames of the running crossfade still to play; 0 when none runs.
    loop : tuple of int or None
        ``(start, end)`` frames, ``start < end``: playback wraps from ``end`` to ``start``.
    playing : bool
        False when paused or after the end of the tracks.
    scratch : numpy.ndarray
        float32 ``[>= fade_len, >= channels]`` buffer for the faded-out part of a crossfade,
        allocated once so the callback never allocates sample memory.
    prev_position : int
        Next frame of ``previous`` during a crossfade. Equal to ``position`` for a track switch;
        different for a seek or a loop-seam fade (the old material keeps running while it fades).
    master_left : int
        Frames left of a fade-in after play or a fade-out before pause; 0 when none runs.
    master_up : bool
        Direction of the master fade: True fades in, False fades out (and then pauses).
    pending_select, pending_seek : int
        A switch or seek requested while a fade was running, started when the fade ends (-1: none).
        Starting it immediately would cut the running fade short, which clicks.
    loop_crossfade : bool
        Crossfade across the loop seam (from the material after ``end`` to ``start``). Off by
        default so the loop output is exactly ``track[start:end]`` repeated.
    ramp_up, ramp_down : numpy.ndarray
        float32 ``[fade_len, 1]`` gains ``k / (fade_len + 1)`` and ``1 - k / (fade_len + 1)``,
        ``k = 1..fade_len``, derived from ``fade_len``.
    """

    position: int = 0
    current: int = 0
    previous: int = 0
    fade_len: int = 0
    fade_left: int = 0
    loop: tuple[int, int] | None = None
    playing: bool = False
    scratch: np.ndarray | None = None
    prev_position: int = 0
    master_left: int = 0
    master_up: bool = True
    pending_select: int = -1
    pending_seek: int = -1
    loop_crossfade: bool = False
    ramp_up: np.ndarray = field(init=False, repr=False)
    ramp_down: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.fade_len = int(self.fade_len)
        if self.fade_len < 0:
            raise ValueError(f"fade_len must be >= 0, got {self.fade_len}")
        # Linear, not equal-power: the tracks are aligned versions of the same material, i.e.
        # strongly correlated, and for correlated signals gains summing to 1 keep the level
        # constant while equal-power gains would bump it by up to 3 dB in mid-fade.
        k = np.arange(1, self.fade_len + 1, dtype=np.float64) / (self.fade_len + 1)
        self.ramp_up = k.astype(np.float32)[:, None]
        self.ramp_down = (1.0 - k).astype(np.float32)[:, None]
        if self.scratch is None:
            self.scratch = np.zeros((max(self.fade_len, 1), 2), np.float32)
        elif self.scratch.ndim != 2 or self.scratch.shape[0] < self.fade_len:
            raise ValueError(f"scratch must be 2-D with at least {self.fade_len} rows")

    # -- requests; called by the rendering thread between blocks ------------------------------

    @property
    def fading(self) -> bool:
        """True while a crossfade or a master fade runs."""
        return bool(self.fade_left or self.master_left)

    def select(self, index: int) -> None:
        """Switch to track ``index`` at the current frame, crossfading when playing.

        Parameters
        ----------
        index : int
            Track index; the caller has checked it.
        """
        if not self.playing or self.fade_len == 0:
            self.current = index
            self.fade_left = 0
            self.pending_select = -1
            return
        if (
            self.fade_left
            and index == self.previous
            and self.prev_position == self.position
            and self.pending_seek < 0
        ):
            # Back to the track that is fading out (fast A-B-A): reverse the running fade from
            # its present gains instead of restarting it, which would jump in level.
            self.previous, self.current = self.current, index
            self.fade_left = self.fade_len - self.fade_left
            self.pending_select = -1
            return
        if index == self.current:
            self.pending_select = -1  # back to what already plays: drop a queued switch
            return
        self.pending_select = index
        if not self.fading:
            self.start_pending()

    def seek(self, frame: int) -> None:
        """Move the playhead to ``frame``, crossfading from the old position when playing.

        Parameters
        ----------
        frame : int
            Target frame; the caller clamps it to ``[0, length]``.
        """
        frame = max(0, int(frame))
        if not self.playing or self.fade_len == 0:
            self.position = frame
            self.fade_left = 0
            self.pending_seek = -1
            return
        self.pending_seek = frame
        if not self.fading:
            self.start_pending()

    def set_loop(self, loop: tuple[int, int] | None) -> None:
        """Set or clear the loop region; a playhead outside it jumps to its start.

        Parameters
        ----------
        loop : tuple of int or None
            ``(start, end)`` with ``start < end``, or None to clear.
        """
        self.loop = loop
        if loop is not None:
            target = self.pending_seek if self.pending_seek >= 0 else self.position
            if not loop[0] <= target < loop[1]:
                self.seek(loop[0])

    def play(self, length: int) -> None:
        """Start (or resume) playback with a short fade-in.

        Parameters
        ----------
        length : int
            Number of frames in the tracks; playback at the end restarts from the beginning
            (or the loop start).
        """
        if self.playing:
            if self.master_left and not self.master_up:  # resumed during the pause fade-out
                self.master_up = True
                self.master_left = self.fade_len - self.master_left
            return
        if length <= 0:
            return
        if self.loop is not None and self.position >= self.loop[1]:
            self.position = self.loop[0]
        elif self.position >= length:
            self.position = self.loop[0] if self.loop is not None else 0
        self.playing = True
        self.fade_left = 0
        # Starting at full gain in the middle of the signal is a step from silence: a click.
        self.master_up = True
        self.master_left = self.fade_len

    def pause(self) -> None:
        """Fade out, then stop; ``playing`` turns False when the fade-out has been rendered."""
        if not self.playing:
            return
        if self.fade_len == 0:
            self.halt()
        elif self.master_left and self.master_up:  # paused during the play fade-in
            left = self.fade_len - self.master_left
            if left == 0:
                self.halt()  # nothing of the fade-in was heard yet
            else:
                self.master_up = False
                self.master_left = left
        elif not self.master_left:
            self.master_up = False
            self.master_left = self.fade_len

    def halt(self) -> None:
        """Stop at once: end fades and apply queued requests directly."""
        self.playing = False
        self.fade_left = 0
        self.master_left = 0
        self.master_up = True
        if self.pending_seek >= 0:
            self.position = self.pending_seek
        if self.pending_select >= 0:
            self.current = self.pending_select
        self.pending_seek = self.pending_select = -1

    def start_pending(self) -> None:
        """Start one crossfade that performs the queued seek and/or switch together."""
        position = self.pending_seek if self.pending_seek >= 0 else self.position
        current = self.pending_select if self.pending_select >= 0 else self.current
        self.pending_seek = self.pending_select = -1
        if position == self.position and current == self.current:
            return
        self.previous, self.prev_position = self.current, self.position
        self.current, self.position = current, position
        self.fade_left = self.fade_len

    def wrap(self) -> None:
        """Jump from the loop end to the loop start (with a seam fade when enabled)."""
        if self.loop_crossfade and self.fade_len and not self.fade_left:
            # The old material continues past the loop end while it fades out, so neither
            # side of the seam has a discontinuity.
            self.previous, self.prev_position = self.current, self.position
            self.fade_left = self.fade_len
        self.position = self.loop[0]


def render_block(
    out: np.ndarray, tracks: Sequence[np.ndarray] | np.ndarray, state: MixState
) -> None:
    """Fill ``out`` with the next frames of the selected track and advance ``state``.

    This is the body of the realtime callback: it copies and scales samples into ``out`` and
    ``state.scratch`` only (no sample memory is allocated), applies a running crossfade from
    ``state.previous`` to ``state.current``, a play/pause fade, wraps at the loop end inside
    the block, and writes zeros after the end of the tracks (then ``state.playing`` is False).

    Parameters
    ----------
    out : numpy.ndarray
        float32 ``[frames, C_out]``, written in full. ``C_out`` equals the tracks' channel
        count, or is 2 for mono tracks (the mono signal is copied to both channels).
    tracks : sequence of numpy.ndarray or numpy.ndarray
        Tracks ``[N, C]`` of equal shape (a list, or one ``[T, N, C]`` array).
    state : MixState
        Mix state; its position advances by the frames played.
    """
    _mix(out, tracks, state, out.shape[0])


def _mix(out: np.ndarray | None, tracks, s: MixState, frames: int) -> None:
    """Advance ``s`` by ``frames``; render into ``out`` unless it is None (the null clock)."""
    n = tracks[0].shape[0] if len(tracks) else 0
    done = 0
    while done < frames and s.playing:
        if n == 0:
            s.halt()
            break
        if (s.pending_seek >= 0 or s.pending_select >= 0) and not (s.fade_left or s.master_left):
            s.start_pending()
        loop = s.loop
        if loop is not None and s.position >= loop[1]:
            s.wrap()
        pos = s.position
        end = min(loop[1], n) if loop is not None else n
        if pos >= n:
            s.halt()  # the end of the tracks, not looping
            break
        count = min(frames - done, end - pos)
        fl = s.fade_left
        src = s.prev_position
        if fl:
            count = min(count, fl)
            if src < n:
                count = min(count, n - src)
        ml = s.master_left
        if ml:
            count = min(count, ml)
        if out is not None:
            dst = out[done : done + count]
            cur = tracks[s.current][pos : pos + count]
            if fl:
                i = s.fade_len - fl
                np.multiply(cur, s.ramp_up[i : i + count], out=dst)
                if src < n:  # past the end the faded-out side is silence
                    tmp = s.scratch[:count, : dst.shape[1]]
                    old = tracks[s.previous][src : src + count]
                    np.multiply(old, s.ramp_down[i : i + count], out=tmp)
                    np.add(dst, tmp, out=dst)
            else:
                dst[...] = cur
            if ml:
                j = s.fade_len - ml
                ramp = s.ramp_up if s.master_up else s.ramp_down
                np.multiply(dst, ramp[j : j + count], out=dst)
        elif loop is not None and not (fl or ml) and s.fade_len == 0 and loop[0] <= pos:
            # Virtual clock, possibly after a long time without a query: wrap arithmetically
            # instead of once per loop pass.
            s.position = loop[0] + (pos - loop[0] + frames - done) % (loop[1] - loop[0])
            done = frames
            break
        if fl:
            s.fade_left = fl - count
            s.prev_position = src + count
        if ml:
            s.master_left = ml - count
        s.position = pos + count
        done += count
        if ml and not s.master_up and s.master_left == 0:
            s.halt()  # pause fade-out finished
            break
        if loop is not None and s.position >= loop[1]:
            s.wrap()  # so that the position stays inside [start, end) between blocks
    if out is not None and done < frames:
        out[done:] = 0


def _import_sounddevice():
    """Import sounddevice; separate so tests can replace it.

    Importing sounddevice loads and initialises PortAudio (which may print host-API noise and
    scan devices), so it happens only when an engine asks for audio output.
    """
    import sounddevice  # noqa: PLC0415 - deliberately lazy, see above

    return sounddevice


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__


def _prepare_tracks(tracks) -> list[np.ndarray]:
    arrays = []
    for k, t in enumerate(tracks):
        a = np.asarray(t)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[1] not in (1, 2):
            raise ValueError(f"track {k} must be [frames, 1 or 2 channels], got shape {a.shape}")
        arrays.append(np.ascontiguousarray(a, dtype=np.float32))
    if arrays and any(a.shape != arrays[0].shape for a in arrays):
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise ValueError(f"all tracks must have the same length and channel count, got {shapes}")
    return arrays


class PlaybackEngine:
    """A/B playback of aligned tracks through one output stream, or a silent virtual clock.

    Parameters
    ----------
    backend : {"auto", "sounddevice", "null"}
        ``"auto"`` uses sounddevice when PortAudio and an output device exist and otherwise the
        null backend (``available`` False, with a reason). ``"sounddevice"`` raises
        :class:`AudioBackendError` instead of falling back. ``"null"`` never touches audio.
    fade_ms : float
        Crossfade length for switches, seeks and play/pause (the null backend does not fade).
    blocksize : int
        Frames per callback (0 lets PortAudio choose).
    loop_crossfade : bool
        Crossfade across the loop seam, so a loop whose ends do not match does not click.
    latency : str or float or None
        Passed to :class:`sounddevice.OutputStream`; None keeps sounddevice's default
        (``"high"``), which tolerates the GUI thread holding the GIL for a while, at the cost of
        a switch being heard some tens of milliseconds after the key press.
    clock : callable
        Monotonic clock in seconds for the null backend (tests pass a fake one).

    Notes
    -----
    Check ``available`` after :meth:`set_tracks` as well: the stream is opened there, since
    only then are rate and channel count known, and a device may refuse them. The stream is
    started by the first :meth:`play` and runs (writing zeros while paused) until
    :meth:`close` or a change of rate or channels: stopping it on every pause would block the
    GUI thread until the buffers drain and add start-up latency to every play.
    """

    def __init__(
        self,
        backend: str = "auto",
        fade_ms: float = 10.0,
        blocksize: int = 512,
        *,
        loop_crossfade: bool = True,
        latency: str | float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
        if not (math.isfinite(fade_ms) and fade_ms >= 0):
            raise ValueError(f"fade_ms must be a finite number >= 0, got {fade_ms}")
        if int(blocksize) < 0:
            raise ValueError(f"blocksize must be >= 0, got {blocksize}")
        self._requested = backend
        self._fade_ms = float(fade_ms)
        self._blocksize = int(blocksize)
        self._loop_crossfade = bool(loop_crossfade)
        self._latency = latency
        self._clock = clock

        self._sd = None
        self._stream = None
        self._stream_key: tuple[int, int] | None = None  # (rate, track channels) of the stream
        self._out_channels = 2  # the stream's channels (2 for mono tracks on a stereo-only device)
        self._rt_active = False  # the callback runs: requests go through the queue
        self._commands: collections.deque = collections.deque()
        self._posted = 0  # requests posted (GUI thread)
        self._applied = 0  # requests applied (rendering thread)
        self._seek_seq = 0  # self._posted right after the latest seek / play request
        self._seek_target = 0
        self._play_seq = 0
        self.callback_errors = 0

        # GUI-side view: answers immediately, whatever the audio thread has applied yet.
        self._tracks: list[np.ndarray] = []
        self._rate = 0
        self._selected = 0
        self._last_selected: int | None = None
        self._want_playing = False
        self._loop_s: tuple[float, float] | None = None

        # Rendering-side data: touched only by the callback while it runs.
        self._rt_tracks: list[np.ndarray] = []
        self._state = MixState(loop_crossfade=self._loop_crossfade)

        self._last_tick = clock()
        self._frac = 0.0
        self._available = False
        self._reason = REASON_NULL
        self._backend_name = "null"
        if backend != "null":
            self._probe()

    # -- backend selection -------------------------------------------------------------------

    def _probe(self) -> None:
        """Find out whether sounddevice can play at all (without opening a stream)."""
        try:
            sd = _import_sounddevice()
        except ImportError as exc:
            self._fall_back(REASON_NO_SOUNDDEVICE, exc)
            return
        except OSError as exc:  # sounddevice raises OSError when libportaudio is missing
            self._fall_back(REASON_NO_PORTAUDIO, exc)
            return
        try:
            sd.query_devices(kind="output")  # raises when there is no default output device
        except Exception as exc:  # noqa: BLE001 - PortAudioError or anything a host API throws
            self._fall_back(REASON_NO_DEVICE, exc)
            return
        self._sd = sd
        self._backend_name = "sounddevice"
        self._available = True
        self._reason = ""

    def _fall_back(self, reason: str, exc: BaseException) -> None:
        """Switch to the null backend (``"auto"``) or raise (``"sounddevice"``)."""
        logger.info("audio playback unavailable: %s (%s)", reason, _one_line(exc))
        if self._requested == "sounddevice":
            raise AudioBackendError(reason) from exc
        self._close_stream()
        self._sd = None
        self._backend_name = "null"
        self._available = False
        self._reason = reason
        self._rebuild_state()

    def _open_stream(self, rate: int, channels: int) -> None:
        """Open (not start) the output stream for ``rate`` and the tracks' ``channels``."""
        sd = self._sd
        # Some devices cannot open a mono output; mono tracks then go to both channels.
        attempts = (1, 2) if channels == 1 else (channels,)
        error: BaseException | None = None
        for out_channels in attempts:
            try:
                stream = sd.OutputStream(
                    samplerate=rate,
                    blocksize=self._blocksize,
                    channels=out_channels,
                    dtype="float32",
                    latency=self._latency,
                    callback=self._callback,
                )
            except Exception as exc:  # noqa: BLE001 - PortAudioError, ValueError for bad settings
                error = exc
                continue
            self._stream = stream
            self._stream_key = (rate, channels)
            self._out_channels = out_channels
            return
        reason = (
            f"The audio output cannot play {rate} Hz {'mono' if channels == 1 else 'stereo'} "
            f"({_one_line(error)}); playback is off."
        )
        self._fall_back(reason, error)

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        self._stream_key = None
        self._rt_active = False
        if stream is not None:
            try:
                # abort, not stop: stop() blocks the GUI thread until the buffers have drained.
                stream.abort()
                stream.close()
            except Exception as exc:  # noqa: BLE001 - closing must not fail the caller
                logger.warning("closing the audio stream failed: %s", _one_line(exc))
        # The callback no longer runs: apply what it did not get to.
        while self._commands:
            self._apply(self._commands.popleft())

    def _start_stream(self) -> None:
        if self._stream is None or self._rt_active:
            return
        try:
            self._stream.start()
        except Exception as exc:  # noqa: BLE001
            reason = f"The audio output could not be started ({_one_line(exc)}); playback is off."
            self._fall_back(reason, exc)
            return
        self._rt_active = True

    # -- the realtime side -------------------------------------------------------------------

    def _callback(self, outdata, frames, time_info, status) -> None:
        """PortAudio callback: apply posted requests, then render one block."""
        try:
            commands = self._commands
            while commands:
                self._apply(commands.popleft())
            render_block(outdata, self._rt_tracks, self._state)
        except Exception:  # noqa: BLE001 - an exception would abort the stream for good
            outdata.fill(0)
            self.callback_errors += 1

    def _apply(self, cmd: tuple) -> None:
        """Apply one request to the mix state (on the rendering thread)."""
        kind = cmd[0]
        s = self._state
        if kind == "select":
            s.select(cmd[1])
        elif kind == "seek":
            s.seek(cmd[1])
        elif kind == "play":
            s.play(cmd[1])
        elif kind == "pause":
            s.pause()
        elif kind == "loop":
            s.set_loop(cmd[1])
        elif kind == "tracks":
            self._rt_tracks = cmd[1]
            self._adopt(s, cmd[1], cmd[2], cmd[3])
        self._applied += 1

    @staticmethod
    def _adopt(s: MixState, tracks: list[np.ndarray], selected: int, loop) -> None:
        """Fit ``s`` to new tracks: clamp the playhead, keep the selection; a hard cut."""
        n = tracks[0].shape[0] if tracks else 0
        position = s.pending_seek if s.pending_seek >= 0 else s.position
        s.fade_left = 0
        s.pending_seek = s.pending_select = -1
        s.current = s.previous = selected
        s.position = min(position, n)
        s.loop = loop
        if loop is not None and not loop[0] <= s.position < loop[1]:
            s.position = loop[0]
        if n == 0 or (loop is None and s.position >= n):
            s.halt()

    def _post(self, cmd: tuple) -> None:
        """Hand a request to the rendering thread, or apply it now when no callback runs."""
        self._posted += 1
        if self._rt_active:
            self._commands.append(cmd)
        else:
            self._apply(cmd)

    def _sync(self) -> None:
        """Null backend: advance the virtual clock to now."""
        if self._backend_name != "null":
            return
        now = self._clock()
        elapsed = now - self._last_tick
        self._last_tick = now
        if self._state.playing and elapsed > 0 and self._rate:
            self._frac += elapsed * self._rate
            frames = int(self._frac)
            self._frac -= frames
            if frames:
                _mix(None, self._rt_tracks, self._state, frames)
        else:
            self._frac = 0.0

    def _rebuild_state(self) -> None:
        """New mix state for the current backend and rate; only while no callback runs."""
        old = self._state
        if self._backend_name == "null" or not self._rate:
            fade_len = 0  # nothing is heard, and fades would delay what the GUI shows
        else:
            fade_len = int(round(self._fade_ms * self._rate / 1000.0))
        channels = self._out_channels if self._stream is not None else 2
        s = MixState(
            fade_len=fade_len,
            scratch=np.zeros((max(fade_len, 1), channels), np.float32),
            loop_crossfade=self._loop_crossfade,
        )
        s.position = old.pending_seek if old.pending_seek >= 0 else old.position
        s.playing = old.playing and self._want_playing
        self._rt_tracks = self._tracks
        self._adopt(s, self._tracks, self._selected, self._loop_frames())
        self._state = s
        self._last_tick = self._clock()
        self._frac = 0.0

    # -- GUI-thread API ----------------------------------------------------------------------

    def set_tracks(self, tracks: Sequence[np.ndarray], sample_rate: int) -> None:
        """Replace the tracks; keep the playhead (clamped), the selection if valid, and the loop.

        Parameters
        ----------
        tracks : sequence of numpy.ndarray
            Aligned tracks ``[N, C]`` (``C`` 1 or 2; 1-D arrays count as mono) of equal shape;
            index 0 is normally the reference. Converted to contiguous float32 (no copy when
            they already are). An empty sequence unloads everything.
        sample_rate : int
            Their sample rate in Hz.

        Raises
        ------
        ValueError
            Tracks of different shapes, more than 2 channels, or a non-positive rate.
        AudioBackendError
            With ``backend="sounddevice"``, when the device refuses the rate or channels.
        """
        arrays = _prepare_tracks(tracks)
        rate = int(sample_rate)
        if rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self._sync()
        self._tracks = arrays
        if self._selected >= len(arrays):
            self._selected = 0
        if self._last_selected is not None and self._last_selected >= len(arrays):
            self._last_selected = None
        if not arrays:
            self._want_playing = False
        channels = arrays[0].shape[1] if arrays else 0
        if self._stream is not None and self._stream_key == (rate, channels):
            # Same stream settings: swap the tracks on the audio thread, between two blocks.
            self._rate = rate
            self._post(("tracks", arrays, self._selected, self._loop_frames()))
            return
        self._close_stream()
        self._rate = rate
        if self._backend_name == "sounddevice" and arrays:
            self._open_stream(rate, channels)  # falls back to null (auto) when refused
        self._rebuild_state()
        if self._want_playing and self._state.playing:
            self._start_stream()

    def play(self) -> None:
        """Start or resume playback (from the beginning when at the end)."""
        if not self._tracks:
            return
        self._sync()
        self._want_playing = True
        self._post(("play", self._tracks[0].shape[0]))
        self._play_seq = self._posted
        self._start_stream()

    def pause(self) -> None:
        """Pause after a short fade-out; the position stays where playback stopped."""
        self._sync()
        self._want_playing = False
        self._post(("pause",))

    def toggle(self) -> None:
        """Play when paused, pause when playing."""
        if self.playing:
            self.pause()
        else:
            self.play()

    def stop(self) -> None:
        """Pause and return to the beginning."""
        self.pause()
        self.seek(0.0)

    def seek(self, seconds: float) -> None:
        """Move the playhead (clamped to the tracks); crossfades when playing.

        Parameters
        ----------
        seconds : float
            Target time on the reference timeline.
        """
        if not math.isfinite(seconds):
            raise ValueError(f"seek position must be finite, got {seconds}")
        if not self._tracks:
            return
        self._sync()
        frame = min(max(int(round(seconds * self._rate)), 0), self._tracks[0].shape[0])
        self._seek_target = frame
        self._post(("seek", frame))
        self._seek_seq = self._posted

    def select(self, index: int) -> None:
        """Switch to track ``index`` at the same frame (crossfaded when playing).

        Parameters
        ----------
        index : int
            0-based track index.

        Raises
        ------
        IndexError
            When there is no such track.
        """
        if not 0 <= index < len(self._tracks):
            raise IndexError(f"track {index} does not exist ({len(self._tracks)} loaded)")
        if index == self._selected:
            return
        self._sync()
        self._last_selected, self._selected = self._selected, index
        self._post(("select", index))

    def toggle_last_two(self) -> None:
        """Switch back to the previously selected track (Tab); nothing before any switch."""
        if self._last_selected is not None:
            self.select(self._last_selected)

    def set_loop(self, start_s: float, end_s: float) -> None:
        """Loop between two times (in either order); a playhead outside jumps to the start.

        Parameters
        ----------
        start_s, end_s : float
            Loop ends in seconds. The region is kept across :meth:`set_tracks` and clamped to
            the tracks; it is inactive while it lies outside them.

        Raises
        ------
        ValueError
            When the times are not finite or equal.
        """
        if not (math.isfinite(start_s) and math.isfinite(end_s)) or start_s == end_s:
            raise ValueError(f"loop needs two different finite times, got {start_s}, {end_s}")
        self._sync()
        self._loop_s = (min(start_s, end_s), max(start_s, end_s))
        if self._tracks:
            self._post(("loop", self._loop_frames()))

    def clear_loop(self) -> None:
        """Play on past the loop end again."""
        self._sync()
        self._loop_s = None
        if self._tracks:
            self._post(("loop", None))

    def _loop_frames(self) -> tuple[int, int] | None:
        if self._loop_s is None or not self._tracks:
            return None
        n = self._tracks[0].shape[0]
        a, b = (min(max(int(round(t * self._rate)), 0), n) for t in self._loop_s)
        return (a, b) if b > a else None

    def close(self) -> None:
        """Stop and release the audio device; the engine stays usable as a null clock."""
        self._want_playing = False
        self._close_stream()
        self._state.halt()

    def __enter__(self) -> PlaybackEngine:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- state for the GUI -------------------------------------------------------------------

    @property
    def position_s(self) -> float:
        """Playhead in seconds (what the audio thread renders; a posted seek shows at once)."""
        if not self._rate:
            return 0.0
        self._sync()
        s = self._state
        pending = s.pending_seek
        if pending >= 0:
            frame = pending
        elif self._applied < self._seek_seq:
            frame = self._seek_target
        else:
            frame = s.position
        return frame / self._rate

    @property
    def playing(self) -> bool:
        """True while playing (False once paused, or after the end of the tracks)."""
        if not self._want_playing:
            return False
        if self._applied < self._play_seq:
            return True  # the play request has not reached the audio thread yet
        self._sync()
        return self._state.playing

    @property
    def current(self) -> int:
        """Selected track index (immediately, even while the crossfade is still running)."""
        return self._selected

    @property
    def track_count(self) -> int:
        """Number of loaded tracks."""
        return len(self._tracks)

    @property
    def sample_rate(self) -> int:
        """Rate of the loaded tracks in Hz (0 before :meth:`set_tracks`)."""
        return self._rate

    @property
    def duration_s(self) -> float:
        """Length of the tracks in seconds (0 when none are loaded)."""
        return self._tracks[0].shape[0] / self._rate if self._tracks else 0.0

    @property
    def loop(self) -> tuple[float, float] | None:
        """The loop region in seconds, or None."""
        return self._loop_s

    @property
    def available(self) -> bool:
        """True when audio is actually heard (the sounddevice backend is in use)."""
        return self._available

    @property
    def unavailable_reason(self) -> str:
        """One sentence saying why playback is off; empty when ``available``."""
        return self._reason

    @property
    def backend_name(self) -> str:
        """``"sounddevice"`` or ``"null"``."""
        return self._backend_name
