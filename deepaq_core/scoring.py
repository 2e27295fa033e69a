"""Reference + degraded file(s) -> :class:`~deepaq_core.results.QualityResult`.

Pipeline per degraded file: read and validate -> resample to the model's rate -> align to the
reference and match loudness (:func:`deepaq_core.audio.prepare_pair`) -> place the aligned
degraded signal on the reference timeline -> embed both (the reference once per session, cached
by content hash) -> distances per frame, per window, per layer -> score.

Quality is the embedding distance between degraded and reference (unit-norm 256-d embeddings, so
0-2); the model's card maps it monotonically to 0-100. The global distance is the mean of the
window distances, so it summarises the same numbers the time-resolved curve shows.

Use :class:`Scorer` for several files (it keeps the model and the reference embeddings) or
:func:`score` for one pair. Long work is a generator (:meth:`Scorer.iter_score`) yielding
:class:`Progress` and :class:`Partial` items, so a GUI worker can show progress and results as they
come, and cancel between chunks.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from deepaq_core.audio import AudioBuffer, integrated_loudness, load_audio, prepare_pair
from deepaq_core.audio.loudness import StepMeter, k_step_energies
from deepaq_core.embedding import (
    Embedded,
    Spliced,
    frame_distances,
    iter_embed,
    iter_embed_many,
    layer_cosine_distance,
    pooled,
    pooled_windows,
    time_matrix,
    window_grid,
)
from deepaq_core.distance import (
    DistanceSpec,
    disturbance_matrix,
    power_mean,
    reference_level,
    sequence_disturbance,
    window_block_means,
)
from deepaq_core.errors import AudioError
from deepaq_core.results import (
    FLAG_TEXT,
    LOW_CONFIDENCE,
    TRIM_FLAG_FRACTION,
    UNRELATED_CONFIDENCE,
    UNRELATED_SCORE,
    FileSummary,
    Heatmap,
    NmrResult,
    QualityCurve,
    QualityResult,
)

log = logging.getLogger(__name__)

AudioInput = Union[str, os.PathLike, AudioBuffer]
NMR_TARGET_LUFS = -23.0  # EBU R128 programme level; NMR has no pair to match, so both go here


#: Values of :attr:`ScoreSettings.precision`.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class ScoreSettings:
    """User settings that change a result (stored in every result).

    Attributes
    ----------
    align : bool
        Estimate and compensate the degraded file's delay (up to ``max_lag_s``) and polarity.
    lag_ms : float or None
        Use this delay instead of estimating it (convention ``degraded[n + lag] ~ reference[n]``).
    match_loudness : bool
        Scale the degraded signal to the reference's BS.1770 integrated loudness.
    channels : {"each", "mono"}
        Score each channel separately (the default; the result averages the channels), or the
        mono downmix. Listeners hear every channel: the downmix cannot see a stereo image
        collapsed to mono (low-bitrate Opus does that to stereo music), and differences between
        the channels' phases that cancel in the downmix, which listeners do not hear as such,
        show up in it as lost components. A mono degraded file against a multichannel
        reference is compared with every reference channel (it plays the same on each).
    window_s, hop_s : float
        Window length and hop of the quality curve, seconds.
    chunk_s, context_s : float
        Streaming chunk length and the context added on each side, seconds.
    heatmap_columns, matrix_size : int
        Maximum time bins of the layer heatmap and of the time x time matrix. ``matrix_size`` 0
        leaves the matrix out (``QualityResult.time_matrix`` is None): only the app shows it, and
        on a 30 s pair it costs about as much as the model's forward pass.
    max_lag_s : float or None
        Largest global delay searched, seconds; None: max(10 s, 25 % of the longer file).
    follow_time : bool
        After the global alignment, follow local time changes (dropped or inserted time) with
        a warping path, for models whose card defines one (``local_alignment``).
    precision : {"auto", "fp32", "bf16", "fp16"}
        Arithmetic of the embedding network: ``auto`` is bf16 autocast on a CUDA GPU and fp32
        elsewhere; ``bf16`` also works on the CPU, where CPUs with AVX512-BF16 or AMX run a
        transformer backbone about 1.6-1.9x faster; ``fp16`` needs a CUDA GPU. The built-in
        auditory model always computes in fp32.
    """

    align: bool = True
    lag_ms: float | None = None
    match_loudness: bool = True
    channels: str = "each"
    window_s: float = 3.0
    hop_s: float = 0.5
    chunk_s: float = 10.0
    context_s: float = 1.0
    heatmap_columns: int = 512
    matrix_size: int = 256
    max_lag_s: float | None = None
    follow_time: bool = True
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.channels not in ("mono", "each"):
            raise ValueError("channels must be 'mono' or 'each'")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.window_s <= 0 or self.hop_s <= 0:
            raise ValueError("window_s and hop_s must be positive")
        if self.matrix_size < 0:
            raise ValueError("matrix_size must be 0 (no time matrix) or positive")


@dataclass(frozen=True)
class Progress:
    """A progress report: ``fraction`` of all work (0-1) and what is happening."""

    fraction: float
    message: str


@dataclass(frozen=True)
class Partial:
    """A finished result for degraded file number ``index`` (in the order given)."""

    index: int
    result: QualityResult


ProgressCallback = Callable[[float, str], None]


def _summary(buf: AudioBuffer, fallback_rate: int) -> FileSummary:
    info = buf.info
    if info is None:
        import hashlib

        # A memoryview, not .tobytes(): no copy, and hashlib releases the GIL on it.
        digest = hashlib.sha256(memoryview(np.ascontiguousarray(buf.samples)).cast("B")).hexdigest()
        return FileSummary("", digest, fallback_rate, buf.channels, buf.duration_s)
    return FileSummary(info.path, info.sha256, info.sample_rate, info.channels, info.duration_s,
                       info.format, info.bit_depth)


def _channel_mean(frame_d: list[np.ndarray], weights: np.ndarray | None = None) -> np.ndarray:
    """(Weighted) mean over channels of per-frame values, NaN where no channel has one (np.nanmean
    without its warning for the frames outside the overlap)."""
    stack = np.stack(frame_d)
    w = np.ones(stack.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    valid = ~np.isnan(stack)
    count = (valid * w[:, None]).sum(axis=0)
    total = (np.where(valid, stack, 0) * w[:, None]).sum(axis=0)
    return np.where(count > 0, total / np.where(count > 0, count, 1), np.nan).astype(stack.dtype)


def _import_signal_modules() -> None:
    """Import, in the calling thread, the scipy modules scoring uses (the K-weighting filter through
    pyloudnorm, the alignment's FFTs, the distances' filters) before helper threads start.

    Two threads importing scipy submodules for the first time at once can fail inside the import
    machinery (``KeyError: 'scipy'``; 2 of 8 batch runs when the helper's alignment imported
    scipy.fft while this thread imported scipy.signal). Cheap after the first call.
    """
    import pyloudnorm  # noqa: F401
    import scipy.fft  # noqa: F401
    import scipy.ndimage  # noqa: F401
    import scipy.signal  # noqa: F401


_LOUDNESS_THREAD: ThreadPoolExecutor | None = None
_LOUDNESS_LOCK = threading.Lock()


def _loudness_thread() -> ThreadPoolExecutor:
    """One thread that measures a reference's loudness while the file is still being decoded."""
    global _LOUDNESS_THREAD
    with _LOUDNESS_LOCK:
        if _LOUDNESS_THREAD is None:
            _LOUDNESS_THREAD = ThreadPoolExecutor(1, thread_name_prefix="deepaq-loud")
        return _LOUDNESS_THREAD


def _may_use_cuda(device) -> bool:
    """Whether a scorer asked for ``device`` may run its model on a CUDA GPU, answered without
    importing torch (``"auto"``: when torch's build could find one, see ``accelerator_possible``)."""
    spec = str(device or "auto").lower()
    if spec.startswith("cuda"):
        return True
    if spec != "auto":
        return False
    from deepaq_core.model.cpu_model import accelerator_possible

    return accelerator_possible()


def _read_measuring(source, rate: int | None, mode: str, steps: Future, imported: threading.Event,
                    meter_rate: int | None = None) -> AudioBuffer:
    """:func:`load_audio` at ``rate`` (None: the file's own), with the K-weighted step energies of
    what it decodes measured on the way, at ``meter_rate`` (default ``rate``).

    Each decoded stretch goes to :func:`_loudness_thread` (a :class:`StepMeter`: the same values
    as measuring the whole signal afterwards), which waits for ``imported`` first (the scipy
    modules it needs are imported by the scoring thread, see :func:`_import_signal_modules`).
    ``steps`` gets the energies, None if the file turned out not to be at ``meter_rate``, or the
    read's error.
    """
    rate_out = meter_rate if meter_rate is not None else rate
    loud = _loudness_thread()
    meter: list[StepMeter] = []

    def push(view: np.ndarray) -> None:
        if not meter:
            meter.append(StepMeter(rate_out))
        meter[0].push(view)

    def finish(fut: Future) -> None:
        try:
            if fut.exception() is not None:
                steps.set_exception(fut.exception())
            else:
                steps.set_result(fut.result())
        except InvalidStateError:  # cancelled meanwhile: nobody wants them
            pass

    loud.submit(imported.wait, 60.0)
    try:
        buf = load_audio(source, rate, mode, tap=lambda view: loud.submit(push, view))
    except BaseException as exc:
        try:
            steps.set_exception(exc)
        except InvalidStateError:
            pass
        raise
    if buf.sample_rate != rate_out:
        loud.submit(lambda: None).add_done_callback(finish)
    else:
        loud.submit(lambda: meter[0].result() if meter else k_step_energies(buf.samples, rate_out)
                    ).add_done_callback(finish)
    return buf


class Scorer:
    """Scores degraded files against references with one model; caches reference embeddings.

    Parameters
    ----------
    model : str or path
        A model of the ladder (``deepaq models``) or a bundle folder. Default: the built-in one.
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ...
    settings : ScoreSettings
    allow_unverified : bool
        Also load a model bundle whose card has no weights checksum (refused otherwise).
    workers : int or None
        Helper threads that read and prepare (align, loudness-match) the next input while the
        model embeds the current one; 0 does everything in the calling thread. Default: 2 (1 on
        a one-core machine).
    prefetch : sequence of inputs
        Files to start reading while the model loads (a reference and the first degraded file);
        the next :meth:`iter_score` call takes them from there. The first is taken to be the
        reference: its K-weighted loudness is measured ahead too (in a helper thread, once it
        is read). Ignored when ``workers`` is 0.
    """

    def __init__(self, model: str | os.PathLike | None = None, device: str = "auto",
                 settings: ScoreSettings | None = None, cache_size: int = 4, *,
                 allow_unverified: bool = False, workers: int | None = None,
                 prefetch: Sequence[AudioInput] = ()) -> None:
        from deepaq_core.model.registry import load_model

        self.settings = settings or ScoreSettings()
        self._cache: OrderedDict[tuple, Embedded] = OrderedDict()
        self._cache_size = cache_size
        self.workers = min(2, os.cpu_count() or 1) if workers is None else max(0, int(workers))
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: dict[tuple, Future] = {}  # reads started early, by (path, channel mode, rate)
        self._steps_ahead: dict[tuple, Future] = {}  # the prefetched reference's K-weighted step energies
        self._group = 0  # degraded inputs embedded together; 0: batch_size on a GPU, 1 on the CPU
        # A scorer that may run on a CUDA GPU reads files at their own rate and resamples them
        # where it prepares pairs (on the GPU, see audio.on_device), every file alike, read
        # ahead or not; one that runs on the CPU resamples while it decodes (soxr: the same
        # samples as resampling the whole signal afterwards).
        self._native_reads = _may_use_cuda(device)
        if prefetch and self.workers:
            self._prefetch(model, prefetch)
        t0 = time.perf_counter()
        self.loaded = load_model(model, device, allow_unverified=allow_unverified,
                                 precision=self.settings.precision)
        self.model_load_s = time.perf_counter() - t0
        # Where a pair's resampling, alignment and K-weighting run: beside the model on a CUDA
        # GPU (see audio.on_device), with soxr and numpy on the host otherwise (faster there: no
        # float64 convolutions stand in for soxr and the IIR filter). None: the host.
        model_device = getattr(self.loaded, "device", None)
        self.prep_device = model_device if getattr(model_device, "type", None) == "cuda" else None

    # -- reading ahead ----------------------------------------------------------------------
    def _submit(self, fn, *args) -> Future:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="deepaq-read")
        return self._pool.submit(fn, *args)

    def _prefetch(self, model, sources: Sequence[AudioInput]) -> None:
        """Start reading files at the model's rate (and the reference's loudness) before the model has loaded."""
        from deepaq_core.model.registry import resolve

        registry_log = logging.getLogger("deepaq_core.model.registry")
        quiet = registry_log.disabled
        registry_log.disabled = True  # load_model resolves the name again and warns, once
        try:
            rate = int(resolve(model).card["sample_rate"])
        except Exception:  # noqa: BLE001 - load_model reports a bad model properly
            return
        finally:
            registry_log.disabled = quiet
        # The reference's loudness is the first thing scoring needs (the calibration gain and
        # the loudness matching wait for it): measured while the file decodes, stretch by
        # stretch, in a thread of its own (see _read_measuring), while this thread loads the model.
        imported = threading.Event()
        read_rate = None if self._native_reads else rate
        for i, src in enumerate(sources):
            key = self._ahead_key(src, read_rate)
            if key is None or key in self._ahead:
                continue
            if i == 0:
                steps: Future = Future()
                self._steps_ahead[key] = steps
                self._ahead[key] = self._submit(_read_measuring, src, read_rate, key[1], steps, imported, rate)
            else:
                self._ahead[key] = self._submit(load_audio, src, read_rate, key[1])
        # While the files are read (reading imports no scipy, and the loudness thread waits for
        # this): the helpers then import nothing beside this thread (see _import_signal_modules).
        try:
            _import_signal_modules()
        finally:
            imported.set()

    def _ahead_key(self, source: AudioInput, rate: int | None, channels: str | None = None) -> tuple | None:
        """Key of a read (and of a reference's loudness) started ahead: ``(path, channel mode,
        rate)``; None for audio already in memory."""
        if isinstance(source, AudioBuffer):
            return None
        return os.fspath(source), "mono" if (channels or self.settings.channels) == "mono" else "all", rate

    def _drop_ahead(self) -> None:
        for fut in self._steps_ahead.values():
            fut.cancel()
        self._steps_ahead.clear()
        for fut in self._ahead.values():
            fut.cancel()
        self._ahead.clear()

    @property
    def sample_rate(self) -> int:
        return self.loaded.model.sample_rate

    @property
    def info(self):
        return self.loaded.info

    # -- inputs -----------------------------------------------------------------------------
    @property
    def _read_rate(self) -> int | None:
        """The rate files are decoded at: the model's, or None (their own, see ``_native_reads``)."""
        return None if self._native_reads else self.sample_rate

    def _resampled(self, buf: AudioBuffer) -> AudioBuffer:
        """``buf`` at the model's rate: on the GPU beside the model (``prep_device``), else soxr."""
        if buf.sample_rate == self.sample_rate:
            return buf
        from deepaq_core.audio import resample
        from deepaq_core.audio.on_device import resample as on_device

        samples = self._beside_model(lambda dev: on_device(buf.samples, buf.sample_rate, self.sample_rate, dev),
                                     lambda: resample(buf.samples, buf.sample_rate, self.sample_rate))
        return AudioBuffer(samples, self.sample_rate, buf.info)

    def load(self, source: AudioInput, channels: str | None = None) -> AudioBuffer:
        """Read (or take) audio at the model's rate; mono or all channels per settings."""
        mode = "mono" if (channels or self.settings.channels) == "mono" else "all"
        ahead = self._ahead.pop(self._ahead_key(source, self._read_rate, channels), None)
        if ahead is not None:
            return self._resampled(ahead.result())
        if isinstance(source, AudioBuffer):
            buf = self._resampled(source)
            if mode == "mono" and buf.channels > 1:
                buf = AudioBuffer(buf.samples.mean(axis=0, keepdims=True), buf.sample_rate, buf.info)
            return buf
        return self._resampled(load_audio(source, target_rate=self._read_rate, channels=mode))

    def _reference_steps(self, ref: AudioBuffer, summary: FileSummary, ahead: Future | None = None) -> np.ndarray:
        """K-weighted 100 ms step energies of the reference (cached): its loudness, measured once.

        They serve both the calibration gain and the loudness matching. ``ahead``: the same
        measurement, made while :meth:`_prefetch`'s read decoded the file.
        """
        key = ("k_steps", summary.sha256, ref.samples.shape)
        if key not in self._cache:
            measured = ahead.result() if ahead is not None else None  # None: read at another rate
            if measured is not None:
                self._cache[key] = measured
            else:
                from deepaq_core.audio.on_device import k_step_energies as on_device

                self._cache[key] = self._beside_model(lambda dev: on_device(ref.samples, ref.sample_rate, dev),
                                                      lambda: k_step_energies(ref.samples, ref.sample_rate))
        return self._cache[key]

    def _beside_model(self, on_device: Callable, on_host: Callable):
        """``on_device(prep_device)``, or ``on_host()`` where the pair is prepared on the host. The
        GPU running out of memory for it (the model may hold nearly all of it) moves the
        preparation to the host for good, with a warning, as the model itself moves to the CPU
        when not even one chunk fits."""
        device = self.prep_device
        if device is None:
            return on_host()
        try:
            return on_device(device)
        except Exception as exc:  # noqa: BLE001 - only torch's out-of-memory error is handled here
            if type(exc).__name__ != "OutOfMemoryError":
                raise
            log.warning("The GPU ran out of memory preparing a pair; resampling, alignment and loudness "
                        "continue on the CPU.")
            self.prep_device = None
            return on_host()

    def _calibration_gain(self, ref: AudioBuffer, summary: FileSummary) -> float:
        """Linear gain that plays the reference at the level the model assumes (1.0 if none).

        A model with an absolute-level front end (hearing thresholds) states in its card the
        loudness its input is taken to have; the reference is brought there and the degraded
        signal, already matched to the reference, gets the same gain.
        """
        target = (self.loaded.bundle.card.get("calibration") or {}).get("reference_lufs")
        if target is None:
            return 1.0
        steps = self._reference_steps(ref, summary)
        # Per channel: each channel is heard at its own level, and the loudest one is played as a
        # mono file would be (BS.1770's sum over channels would play a stereo file 3 dB softer),
        # so a stereo file whose channels carry one mono signal, or only one channel, plays its
        # signal exactly as the mono file does.
        lufs = max(integrated_loudness(ref.samples[c : c + 1], ref.sample_rate, steps[c : c + 1])
                   for c in range(ref.channels))
        if not np.isfinite(lufs):
            return 1.0
        return float(10.0 ** ((float(target) - lufs) / 20.0))

    # -- embedding with a cache -------------------------------------------------------------
    def _iter_reference(self, ref: AudioBuffer, summary: FileSummary, channel: int, cal: float, cancel,
                        alone=False):
        s = self.settings
        key = (summary.sha256, channel, ref.samples.shape[1], cal, s.chunk_s, s.context_s, s.heatmap_columns)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        wave = ref.samples[channel] if cal == 1.0 else Spliced(ref.samples[channel], ref.samples[channel][:0],
                                                               outer_gain=cal)
        emb = yield from iter_embed(self.loaded, wave, chunk_s=s.chunk_s, context_s=s.context_s,
                                    heatmap_columns=s.heatmap_columns, cancel=cancel, alone=alone)
        self._cache[key] = emb
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return emb

    # -- the main generator -----------------------------------------------------------------
    def iter_score(self, reference: AudioInput, degraded: Sequence[AudioInput], cancel=None
                   ) -> Generator[Progress | Partial, None, list[QualityResult]]:
        """Score several degraded inputs against one reference, step by step.

        Yields :class:`Progress` (fraction of the whole job) and one :class:`Partial` per finished
        degraded input; returns the list of results. ``cancel`` (callable or Event) is checked
        between chunks and raises :class:`~deepaq_core.errors.Cancelled`.
        """
        try:
            return (yield from self._iter_score(reference, degraded, cancel))
        finally:
            self._drop_ahead()  # reads started for inputs that were never reached (cancel, error)

    def _group_size(self, num_samples: int) -> int:
        """Degraded inputs embedded together: enough to fill a batch with their chunks (1 on the CPU).

        A signal as long as the reference has ``ceil(frames / chunk frames)`` chunks; long files
        fill the batches alone (group 1, bounded memory), 10 s pairs go eight at a time at batch 8.
        """
        if self._group:
            return self._group
        if self.loaded.device.type == "cpu" or self.loaded.batch_size <= 1:
            return 1
        model = self.loaded.model
        total = max(1, num_samples // model.hop_length)
        core = max(1, min(int(round(self.settings.chunk_s * model.sample_rate / model.hop_length)), total))
        return max(1, int(self.loaded.batch_size) // -(-total // core))

    def _prepare(self, item: AudioInput, ref: AudioBuffer, ref_steps: np.ndarray):
        """Read one degraded input and align and loudness-match it to the reference.

        Runs in a helper thread while the model embeds another signal. Returns the degraded
        buffer, its summary, the prepared pair and the seconds this took.
        """
        s = self.settings
        t0 = time.perf_counter()
        n_ch = ref.channels
        deg = self.load(item, channels="mono" if n_ch == 1 else "each")
        deg_summary = _summary(deg, self.sample_rate)
        if deg.channels == 1 and n_ch > 1:
            # A mono file plays the same signal on every channel: each reference channel is compared with it.
            deg = AudioBuffer(np.repeat(deg.samples, n_ch, axis=0), deg.sample_rate, deg.info)
        if deg.channels != n_ch:
            raise AudioError(
                f"'{os.path.basename(deg_summary.path) or 'degraded'}' has {deg.channels} channels but the "
                f"reference has {n_ch}; per-channel scoring needs equal channel counts."
            )
        def prepare(device=None):
            return prepare_pair(ref, deg, align=s.align, lag_ms=s.lag_ms, match_loudness=s.match_loudness,
                                max_lag_s=s.max_lag_s, reference_steps=ref_steps, scale=False, device=device)

        pair = self._beside_model(prepare, prepare)
        return deg, deg_summary, pair, time.perf_counter() - t0

    def _iter_score(self, reference: AudioInput, degraded: Sequence[AudioInput], cancel):
        s = self.settings
        _import_signal_modules()  # before the helper aligns while this thread measures loudness
        t_load = time.perf_counter()
        ref = self.load(reference)
        ref_summary = _summary(ref, self.sample_rate)
        steps_ahead = self._steps_ahead.pop(self._ahead_key(reference, self._read_rate), None)
        n_ch = ref.channels
        n_jobs = len(degraded)
        # Work units: reference embedding (1 per channel) + each degraded embedding (1 per channel).
        units = n_ch * (1 + n_jobs)
        done = 0.0

        def frac(x: float) -> float:
            return min(1.0, (done + x) / units)

        # Pipeline: the next group of degraded inputs is read and prepared in a helper thread
        # while the model embeds the current one (and the first while the reference's loudness
        # is measured and the reference embedded). Decoding, soxr, the alignment's FFTs and the
        # K-weighting filter release the GIL, so this overlaps on 2 cores. On a GPU a group holds
        # batch_size inputs, embedded together so that their chunks fill the batches; on the CPU
        # (batch 1) a group is one input.
        group = self._group_size(ref.samples.shape[1])
        ahead: dict[int, Future] = {}
        submitted = 0  # inputs handed to the helper so far (each exactly once)
        # The reference's loudness, for the helper's loudness matching: its alignment starts at
        # once, and only the matching waits for the measurement below.
        steps_ready: Future = Future()

        def helper_idle() -> bool:
            """Nothing is being read or prepared beside this thread now."""
            return bool(self.workers) and all(f.done() for f in ahead.values())

        # A model whose values do not depend on its thread count (the built-in model in numpy)
        # takes every core whenever the helper is idle, asked chunk by chunk; any other model
        # decides once per call (its values would otherwise depend on timing).
        per_chunk = bool(getattr(self.loaded, "thread_invariant", False))

        def submit_upto(stop: int) -> None:
            nonlocal submitted
            if not self.workers:
                return
            while submitted < min(stop, n_jobs):
                ahead[submitted] = self._submit(self._prepare, degraded[submitted], ref, steps_ready.result)
                submitted += 1

        results: list[QualityResult] = []
        try:
            submit_upto(group)
            # The reference's K-weighted loudness is measured once: for the calibration gain and,
            # when the aligned overlap starts at the reference's start, for loudness matching.
            try:
                ref_steps = self._reference_steps(ref, ref_summary, steps_ahead)
            except BaseException as exc:
                steps_ready.set_exception(exc)
                raise
            steps_ready.set_result(ref_steps)
            cal = self._calibration_gain(ref, ref_summary)
            ref_load_s = time.perf_counter() - t_load
            yield Progress(0.0, f"Embedding reference {os.path.basename(ref_summary.path) or '(memory)'}")
            ref_embs: list[Embedded] = []
            t0 = time.perf_counter()
            for ch in range(n_ch):
                gen = self._iter_reference(ref, ref_summary, ch, cal, cancel, helper_idle if per_chunk else False)
                try:
                    while True:
                        yield Progress(frac(next(gen)), "Embedding reference")
                except StopIteration as stop:
                    ref_embs.append(stop.value)
                done += 1
            ref_embed_s = time.perf_counter() - t0

            for first_idx in range(0, n_jobs, group):
                members = list(range(first_idx, min(first_idx + group, n_jobs)))
                t_start = time.perf_counter()
                prepared = []
                for k in members:
                    fut = ahead.pop(k, None)
                    prepared.append(fut.result() if fut is not None else self._prepare(degraded[k], ref, ref_steps))
                submit_upto(members[-1] + 1 + group)
                t_prep = time.perf_counter()
                names, waves, valid = [], [], []
                for k, (deg, deg_summary, pair, _) in zip(members, prepared):
                    names.append(os.path.basename(deg_summary.path) or f"degraded #{k + 1}")
                    first = max(0, -pair.alignment.lag_samples)
                    stop = first + pair.degraded.samples.shape[1]
                    if stop > ref.samples.shape[1]:  # defensive: prepare_pair trims to the overlap
                        raise RuntimeError("aligned degraded signal exceeds the reference timeline")
                    for ch in range(n_ch):
                        # Outside the overlap the degraded file has no counterpart; the reference
                        # fills it so that context windows near the edges see no artificial
                        # silence. Those frames are masked anyway; this keeps the frames just
                        # inside the edges honest. Read chunk by chunk, never copied whole.
                        # The degraded signal comes unscaled (prepare_pair(scale=False)): the
                        # matching gain, then the calibration, as the reader copies each chunk.
                        waves.append(Spliced(ref.samples[ch], pair.degraded.samples[ch], first, cal, cal,
                                             pre_gain=10.0 ** (pair.gain_db / 20.0)))
                        valid.append((first, stop))
                label = names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more"
                # The last group has the cores to itself (the helper has nothing left to prepare):
                # the front end may then use all of them (see LoadedModel.run). The app's scorer
                # (workers=0) keeps its one thread beside the interface.
                alone = helper_idle if per_chunk else bool(self.workers) and not ahead
                gen = iter_embed_many(self.loaded, waves, chunk_s=s.chunk_s, context_s=s.context_s,
                                      heatmap_columns=s.heatmap_columns, valid_samples=valid, cancel=cancel,
                                      alone=alone)
                try:
                    while True:
                        yield Progress(frac(next(gen) * len(waves)), f"Embedding {label}")
                except StopIteration as st:
                    embs = st.value
                del waves
                done += len(members) * n_ch
                embed_s = (time.perf_counter() - t_prep) / len(members)
                for j, (k, (deg, deg_summary, pair, prep_s)) in enumerate(zip(members, prepared)):
                    t_c = time.perf_counter()
                    own = embs[j * n_ch : (j + 1) * n_ch]
                    levels = self._reference_levels(ref_embs, own)
                    guess = self._speculate(ref_embs, own, levels) if helper_idle() else None
                    try:
                        again, warps, moved = self._follow_samples(ref, ref_embs, own, pair, cal, levels, cancel,
                                                                   alone)
                    except BaseException:  # cancelled or failed: the guess stops after its channel
                        if guess is not None:
                            guess[1].set()
                        raise
                    parts = self._speculated(guess, own, again, warps, moved)
                    result = self._compose(ref_embs, again, ref_summary, deg_summary, pair, warps, moved, levels,
                                           parts)
                    # load_align_s: the reading and preparation itself, which may have run in a
                    # helper thread while something else was embedded; embed_s: this input's share
                    # of its group's embedding.
                    timings = {
                        "reference_load_s": ref_load_s, "reference_embed_s": ref_embed_s,
                        "load_align_s": prep_s, "embed_s": embed_s,
                        "total_s": (t_prep - t_start) / len(members) + embed_s + time.perf_counter() - t_c,
                        "model_load_s": self.model_load_s,
                    }
                    flags = result_flags(ref, deg, pair)
                    for key in flags:
                        log.info("%s: %s: %s", names[j], key, FLAG_TEXT[key])
                    a = pair.alignment
                    if a.estimated and a.confidence < UNRELATED_CONFIDENCE and result.score < UNRELATED_SCORE:
                        flags = tuple(key for key in FLAG_TEXT if key in flags or key == "unrelated")
                    result = dataclasses.replace(result, timings=timings, flags=flags)
                    results.append(result)
                    yield Partial(k, result)
                del prepared, embs
        finally:
            for fut in ahead.values():
                if not fut.cancel():
                    try:  # let a running preparation finish before the caller goes on (or re-raises)
                        fut.exception()
                    except BaseException:  # noqa: BLE001 - its own error does not matter any more
                        pass
        yield Progress(1.0, "Done")
        return results

    def _reference_levels(self, ref_embs: list[Embedded], deg_embs: list[Embedded]) -> list[float]:
        """The reference's loudness in each channel over the frames compared (models whose distance
        uses it; else empty): the time-following path's channel weights and the distance's normaliser.
        A re-cut degraded signal keeps its overlap, so the levels hold for it too."""
        if not DistanceSpec.from_card(self.loaded.bundle.card).pooled_frames:
            return []
        return [reference_level(r.frames, d.scored) for r, d in zip(ref_embs, deg_embs)]

    def _follow_samples(self, ref: AudioBuffer, ref_embs: list[Embedded], deg_embs: list[Embedded], pair, cal: float,
                        levels: list[float], cancel, alone: bool = False) -> tuple[list[Embedded], list | None, list]:
        """Follow time, then align every stretch of the path to the sample and embed again.

        Returns the degraded embeddings, the warping path of each channel (None when the model
        follows no time) and, per channel, the :class:`~deepaq_core.timewarp.Recut` when its signal
        was re-cut and embedded again (then it is compared frame by frame) or None (its frames are
        taken along the path).
        """
        from deepaq_core.timewarp import realign_samples

        s = self.settings
        moved = [None] * len(deg_embs)
        grid = self._grid(deg_embs) if self._follows() else None
        if grid is None:
            return deg_embs, None, moved
        cfg = self.loaded.bundle.card["local_alignment"]
        fr = self.loaded.model.frame_rate
        hop = int(self.loaded.model.hop_length)
        first, stop = grid[:2]
        first_s = max(0, -pair.alignment.lag_samples)
        # One path for all channels: time moves alike in every channel (a lost packet, a codec's
        # delay), and the channels together are firmer evidence than each alone. Each channel
        # counts by the reference's loudness in it: a channel the reference leaves (nearly) empty
        # says nothing about time, and hiss there would only lead the path astray.
        warp = _follow([r.frames for r in ref_embs], [d.frames for d in deg_embs], first, stop, cfg, fr, levels)
        warps = [warp] * len(deg_embs)
        waves, chans = [], []
        # A path that drops and inserts time back and forth over more than ``max_wander`` of the
        # overlap is chasing look-alike frames, not following time: two unrelated pieces (0.01-0.42
        # of the overlap, median 0.23), heavy noise, echo or separation damage (up to 0.27). Deleted
        # packets and speed changes move one way (under 0.03 on the developer data). Such a pair is
        # compared at the global alignment, as without time following.
        limit = cfg.get("max_wander")
        if limit is not None and max(min(w.dropped_frames, w.inserted_frames) for w in warps) > limit * (stop - first):
            log.info("The time-following path wanders both ways; compared at the global alignment instead.")
            return deg_embs, None, moved
        for ch, warp in enumerate(warps):
            recut = realign_samples(ref.samples[ch], pair.degraded.samples[ch], first_s, warp, first, hop)
            if recut is not None:
                waves.append(Spliced(ref.samples[ch], recut.samples, first_s, cal, cal,
                                     pre_gain=10.0 ** (pair.gain_db / 20.0)))
                chans.append((ch, recut))
        if not waves:
            return deg_embs, warps, moved
        valid = [(first_s, first_s + pair.degraded.samples.shape[1])] * len(waves)
        gen = iter_embed_many(self.loaded, waves, chunk_s=s.chunk_s, context_s=s.context_s,
                              heatmap_columns=s.heatmap_columns, valid_samples=valid, cancel=cancel, alone=alone)
        try:
            while True:
                next(gen)
        except StopIteration as st:
            again = st.value
        out = list(deg_embs)
        for (ch, recut), e in zip(chans, again):
            out[ch] = e
            moved[ch] = recut
        return out, warps, moved

    def _follows(self) -> bool:
        """Whether :meth:`_follow_samples` computes a time-following path (the model's card asks for
        one, the settings allow it, and its distance compares frames)."""
        return bool(self.settings.follow_time and self.loaded.bundle.card.get("local_alignment")
                    and DistanceSpec.from_card(self.loaded.bundle.card).pooled_frames)

    def _speculate(self, ref_embs: list[Embedded], deg_embs: list[Embedded], levels: list[float]
                   ) -> tuple[Future, threading.Event] | None:
        """Every channel's :meth:`_channel_parts` as if the time-following path left time where the
        global alignment put it, computed in a helper thread while this thread computes the path
        (which then has them at once for most codec pairs: 9 of 10 on tcdaudio14, 7 of 12 on
        sisec08, 18 of 48 on tcdvoip). The future and an event that stops it between channels;
        None where there is no path to wait for or no helper."""
        if not self.workers or not self._follows() or self._grid(deg_embs) is None:
            return None
        args = (ref_embs, deg_embs, None, [None] * len(deg_embs), levels)
        dropped = threading.Event()

        def channels() -> list[tuple] | None:
            # One thread for all channels: the path's own work keeps the other core.
            parts = []
            for ch in range(len(deg_embs)):
                if dropped.is_set():
                    return None
                parts.append(self._channel_parts(ch, *args))
            return parts

        return self._submit(channels), dropped

    @staticmethod
    def _speculated(guess: tuple[Future, threading.Event] | None, before: list[Embedded], after: list[Embedded],
                    warps: list | None, recuts: Sequence) -> list[tuple] | None:
        """:meth:`_speculate`'s parts where they are what :meth:`_compose` would compute: no channel
        was re-cut and re-embedded, and there is no path or every path is the identity (a path
        that compares each frame with itself gives the same values). None otherwise (the guess
        is then dropped: its thread stops after the channel it is on)."""
        if guess is None:
            return None
        fut, dropped = guess
        kept = all(a is b for a, b in zip(after, before)) and all(r is None for r in recuts) and (
            warps is None or all(np.array_equal(w.path, np.arange(w.path.size)) for w in warps))
        if not kept:
            dropped.set()
            fut.cancel()
            return None
        return fut.result()

    def _grid(self, deg_embs: list[Embedded]) -> tuple[int, int, int, np.ndarray, np.ndarray] | None:
        """``(first, stop, win, starts, nominal)``: the overlap's frames and the curve's windows
        (None when no frame overlaps)."""
        s = self.settings
        fr = self.loaded.model.frame_rate
        idx = np.flatnonzero(deg_embs[0].valid)
        if idx.size == 0:
            return None
        first, stop = int(idx[0]), int(idx[-1]) + 1
        win = max(1, int(round(s.window_s * fr)))
        starts, nominal = window_grid(first, stop, win, max(1.0, s.hop_s * fr))
        return first, stop, win, starts, nominal

    def _channel_parts(self, ch: int, ref_embs: list[Embedded], deg_embs: list[Embedded], warps: list | None,
                       recuts: Sequence, levels: list[float]) -> tuple:
        """(curve, frame distances, time matrix or None, distance, loudness heard or None, layer map)
        of channel ``ch``; the arguments as for :meth:`_compose`."""
        s = self.settings
        first, stop, win, starts, _ = self._grid(deg_embs)
        spec = DistanceSpec.from_card(self.loaded.bundle.card)
        # One normaliser for every channel: the reference's mean loudness per channel, each channel
        # weighted by that loudness (sum l^2 / sum l). Each channel's own would make a near-silent
        # reference channel divide by almost nothing (faint hiss in an empty channel scored 0); a
        # plain mean over channels would count the damage of a file with one silent channel
        # double; with these weights such a file is normalised as its one channel alone.
        norm = (levels[0] if len(levels) == 1 else sum(x * x for x in levels) / sum(levels)) if levels else 1.0
        r, d = ref_embs[ch], deg_embs[ch]
        mat = heard_ch = None
        if not spec.pooled_frames:
            wr = pooled_windows(r.frames, starts, win, stop)
            wd = pooled_windows(d.frames, starts, win, stop)
            curve_ch = np.linalg.norm(wr - wd, axis=-1)
            fd = frame_distances(r.frames, d.frames)
            fd[~d.valid] = np.nan
            if s.matrix_size > 0:
                mat = time_matrix(r.frames, d.frames, first, stop, s.matrix_size)
            dist_ch = float(np.mean(curve_ch))
        else:
            deg_frames = d.frames
            if warps is not None and recuts[ch] is None:
                deg_frames = d.frames.copy()
                deg_frames[first:stop] = d.frames[first + warps[ch].path]
            fd = sequence_disturbance(r.frames, deg_frames, spec, norm).astype(np.float32)
            fd[~d.scored] = np.nan
            curve_ch = window_block_means(fd, starts, win, stop, spec)
            if s.matrix_size > 0:
                mat = _disturbance_matrix(r.frames, deg_frames, first, stop, s.matrix_size, spec, norm)
            dist_ch = float(power_mean(curve_ch, spec.time_p))
            # how loud what is heard in this channel is: the reference's or the degraded's
            heard_ch = max(levels[ch], reference_level(deg_frames, d.scored))
        return curve_ch, fd, mat, dist_ch, heard_ch, layer_cosine_distance(r.layer_bins, d.layer_bins)

    def _compose(self, ref_embs: list[Embedded], deg_embs: list[Embedded], ref_summary: FileSummary,
                 deg_summary: FileSummary, pair, warps: list | None, recuts: Sequence,
                 levels: list[float], parts: list[tuple] | None = None) -> QualityResult:
        """One pair's result from its embeddings. ``warps`` and ``recuts`` come from
        :meth:`_follow_samples`: a channel with a path and no re-cut is compared along its path,
        a re-cut one frame by frame. ``levels``: :meth:`_reference_levels`. ``parts``: every
        channel's :meth:`_channel_parts` for these arguments, when already computed."""
        s = self.settings
        bundle = self.loaded.bundle
        mapping = bundle.card["score_mapping"]
        from deepaq_core.model.bundle import score_from_distance

        fr = self.loaded.model.frame_rate
        grid = self._grid(deg_embs)
        if grid is None:
            raise AudioError(f"'{os.path.basename(deg_summary.path)}' does not overlap the reference after alignment.")
        first, stop, win, starts, nominal = grid
        spec = DistanceSpec.from_card(bundle.card)

        if parts is None:
            # The channels are independent: with helper threads (not the app's one-thread scorer),
            # the others' distances are computed in one beside this thread (numpy releases the
            # GIL in its loops); the same values either way.
            from deepaq_core.audio.align import _fft_helper

            args = (ref_embs, deg_embs, warps, recuts, levels)
            helper = _fft_helper() if self.workers and len(ref_embs) > 1 else None
            later = [helper.submit(self._channel_parts, ch, *args) for ch in range(1, len(ref_embs))] \
                if helper is not None else []
            parts = [self._channel_parts(0, *args)] + (
                [f.result() for f in later] if helper is not None
                else [self._channel_parts(ch, *args) for ch in range(1, len(ref_embs))])
        curves, frame_d, mats, ch_dist, heard, layer_maps = ([p[i] for p in parts] for i in range(6))
        mats = [m for m in mats if m is not None]
        heard = [h for h in heard if h is not None]
        # Channels count by the loudness heard in them: a channel silent in both files does not
        # dilute the others' damage (a signal in one channel of a stereo file scores as the mono
        # file), and one that only the degraded file fills (hiss) counts by how loud that is.
        wch = np.asarray(heard) / np.sum(heard) if len(heard) > 1 else None
        curve_d = np.mean(curves, axis=0) if wch is None else np.tensordot(wch, np.asarray(curves), axes=1)
        distance = float(power_mean(curve_d, spec.time_p)) if spec.pooled_frames else float(np.mean(curve_d))
        # Dropped and inserted time: to the sample where a channel was re-cut, else from the path.
        sr = float(self.loaded.model.sample_rate)
        dropped = float(np.mean([c.dropped_samples / sr if c is not None else w.dropped_frames / fr
                                 for w, c in zip(warps, recuts)])) if warps else 0.0
        inserted = float(np.mean([c.inserted_samples / sr if c is not None else w.inserted_frames / fr
                                  for w, c in zip(warps, recuts)])) if warps else 0.0
        local_lag = None
        if warps:
            local_lag = np.full(deg_embs[0].num_frames, np.nan, dtype=np.float32)
            if recuts[0] is not None:
                hop = int(self.loaded.model.hop_length)
                first_s = max(0, -pair.alignment.lag_samples)
                local_lag[first:stop] = recuts[0].shift_at(np.arange(first, stop) * hop - first_s) / sr
            else:
                local_lag[first:stop] = warps[0].lag_frames() / fr
        # Reported on the nominal grid (exact multiples of the hop from the overlap start, see
        # QualityCurve); the final window ends exactly at the overlap's end.
        curve = QualityCurve(start_s=nominal / fr, end_s=np.minimum(nominal + win, stop) / fr, distance=curve_d,
                             score=score_from_distance(curve_d, mapping))
        bf = ref_embs[0].bin_frames
        layer_values = np.mean(layer_maps, axis=0)
        n_layers = layer_values.shape[0]
        layer_heatmap = Heatmap(values=layer_values, x=np.arange(layer_values.shape[1]) * bf / fr,
                                y=np.arange(n_layers), x_label="time (s)", y_label="layer",
                                units="cosine distance of time-binned hidden states (1 - cos)")
        tm = None
        if mats:
            bins = mats[0][1] / fr  # every channel's matrix has the same time bins
            tm = Heatmap(values=np.mean([m for m, _ in mats], axis=0), x=bins, y=bins,
                         x_label="degraded time, aligned (s)", y_label="reference time (s)",
                         units="embedding L2 distance" if not spec.pooled_frames else "relative loudness disturbance")
        multi = len(ch_dist) > 1
        return QualityResult(
            model=bundle.info(),
            reference=ref_summary,
            degraded=deg_summary,
            score=float(score_from_distance(distance, mapping)),
            distance=distance,
            curve=curve,
            frame_rate=fr,
            frame_distance=_channel_mean(frame_d, wch) if multi else frame_d[0],
            layer_heatmap=layer_heatmap,
            time_matrix=tm,
            alignment=pair.alignment,
            gain_db=float(pair.gain_db),
            reference_loudness_lufs=float(pair.reference_loudness_lufs),
            degraded_loudness_lufs=float(pair.degraded_loudness_lufs),
            overlap_start_s=first / fr,
            overlap_end_s=stop / fr,
            trimmed_reference_s=float(pair.trimmed_reference_s),
            trimmed_degraded_s=float(pair.trimmed_degraded_s),
            channel_mode=s.channels,
            channel_scores=tuple(float(score_from_distance(x, mapping)) for x in ch_dist) if multi else (),
            device=str(self.loaded.device),
            settings=dataclasses.asdict(s),
            distance_units=spec.units,
            gain_method=getattr(pair, "gain_method", "integrated"),
            time_dropped_s=dropped,
            time_inserted_s=inserted,
            local_lag_s=local_lag,
        )

    # -- conveniences -----------------------------------------------------------------------
    def score_many(self, reference: AudioInput, degraded: Sequence[AudioInput],
                   progress: ProgressCallback | None = None, cancel=None) -> list[QualityResult]:
        """Score several degraded inputs against one reference (reference embedded once)."""
        return _drain(self.iter_score(reference, degraded, cancel=cancel), progress)

    def score(self, reference: AudioInput, degraded: AudioInput, progress: ProgressCallback | None = None,
              cancel=None) -> QualityResult:
        """Score one degraded input against a reference."""
        return self.score_many(reference, [degraded], progress, cancel)[0]

    def iter_nmr(self, degraded: AudioInput, clean: Sequence[AudioInput], cancel=None
                 ) -> Generator[Progress, None, NmrResult]:
        """Non-matching reference: distance of a file to unrelated clean recordings.

        Every signal is normalised to -23 LUFS (there is no pair to match). The file's
        time-pooled embedding is compared with each clean recording's; the curve compares each
        window of the file with the clean recordings' pooled embeddings (mean over recordings).
        """
        if not clean:
            raise AudioError("Non-matching-reference scoring needs at least one clean recording.")
        s = self.settings
        t0 = time.perf_counter()
        units = len(clean) + 1
        clean_pooled: list[tuple[str, np.ndarray]] = []
        for i, item in enumerate(clean):
            buf = _normalised(self.load(item, channels="mono"))
            summ = _summary(buf, self.sample_rate)
            key = ("nmr", summ.sha256, buf.samples.shape[1], s.chunk_s, s.context_s)
            if key in self._cache:
                emb = self._cache[key]
            else:
                gen = iter_embed(self.loaded, buf.samples[0], chunk_s=s.chunk_s, context_s=s.context_s,
                                 heatmap_columns=1, cancel=cancel)
                try:
                    while True:
                        yield Progress((i + next(gen)) / units, f"Embedding clean {os.path.basename(summ.path)}")
                except StopIteration as st:
                    emb = st.value
                self._cache[key] = emb
            clean_pooled.append((summ.path, pooled(emb.frames)))
        deg = _normalised(self.load(degraded, channels="mono"))
        deg_summary = _summary(deg, self.sample_rate)
        gen = iter_embed(self.loaded, deg.samples[0], chunk_s=s.chunk_s, context_s=s.context_s,
                         heatmap_columns=1, cancel=cancel)
        try:
            while True:
                yield Progress((len(clean) + next(gen)) / units, "Embedding test file")
        except StopIteration as st:
            emb = st.value
        fr = self.loaded.model.frame_rate
        p = pooled(emb.frames)
        per_ref = tuple((path, float(np.linalg.norm(p - c))) for path, c in clean_pooled)
        win = max(1, int(round(s.window_s * fr)))
        hop = max(1.0, s.hop_s * fr)
        starts, nominal = window_grid(0, emb.num_frames, win, hop)
        w = pooled_windows(emb.frames, starts, win, emb.num_frames)
        cmat = np.stack([c for _, c in clean_pooled])
        curve = np.linalg.norm(w[:, None, :] - cmat[None, :, :], axis=-1).mean(axis=1)
        yield Progress(1.0, "Done")
        return NmrResult(
            model=self.loaded.bundle.info(), degraded=deg_summary,
            distance=float(np.mean([d for _, d in per_ref])), per_reference=per_ref,
            curve_start_s=nominal / fr, curve_end_s=np.minimum(nominal + win, emb.num_frames) / fr,
            curve_distance=curve, device=str(self.loaded.device),
            timings={"total_s": time.perf_counter() - t0},
        )

    def nmr(self, degraded: AudioInput, clean: Sequence[AudioInput], progress: ProgressCallback | None = None,
            cancel=None) -> NmrResult:
        """Run :meth:`iter_nmr` to completion."""
        return _drain(self.iter_nmr(degraded, clean, cancel=cancel), progress)


def result_flags(ref: AudioBuffer, deg: AudioBuffer, pair) -> tuple[str, ...]:
    """Keys of :data:`~deepaq_core.results.FLAG_TEXT` that apply to a prepared pair, in that order.

    ``trimmed``: more than 5 % of either signal lies outside the overlap. ``short_file``: either
    file holds less audio than its header declares. ``lag_at_edge``: the estimated delay is at the
    edge of the search. ``low_confidence``: an estimated delay with confidence below 0.2.
    ``inverted``: the degraded signal's polarity is inverted (informational). (``unrelated``
    needs the score as well and is added by the scorer.)
    """
    a = pair.alignment
    found = {
        "trimmed": (pair.trimmed_reference_s > TRIM_FLAG_FRACTION * ref.duration_s
                    or pair.trimmed_degraded_s > TRIM_FLAG_FRACTION * deg.duration_s),
        "short_file": any(b.info is not None and b.info.short for b in (ref, deg)),
        "lag_at_edge": bool(a.at_edge),
        "low_confidence": bool(a.estimated and a.confidence < LOW_CONFIDENCE),
        "inverted": bool(a.inverted),
    }
    return tuple(key for key in FLAG_TEXT if found.get(key))


def _follow(ref: list[np.ndarray], deg: list[np.ndarray], first: int, stop: int, cfg: dict, frame_rate: float,
            weights: Sequence[float] = (1.0,)):
    """Warping path over the overlap ``[first, stop)`` on log-compressed, band-grouped frames: the
    channels' features averaged with ``weights`` (one path for every channel)."""
    from deepaq_core.timewarp import follow_time, steady_lag

    group = int(cfg.get("band_group", 4))

    def feats(xs: list[np.ndarray]) -> np.ndarray:
        k = xs[0].shape[1] // group * group
        out = np.empty((stop - first, k // group))
        # Frame by frame, so in blocks of frames (fresh [T, K] float64 temporaries cost more in page
        # faults than the arithmetic); the same values as one pass.
        for a in range(first, stop, 4096):
            b = min(a + 4096, stop)
            y = np.log1p(np.maximum(xs[0][a:b].astype(np.float64), 0.0))
            if len(xs) > 1:
                y *= w[0]
                for x, wx in zip(xs[1:], w[1:]):
                    y += wx * np.log1p(np.maximum(x[a:b].astype(np.float64), 0.0))
            out[a - first : b - first] = y[:, :k].reshape(b - a, -1, group).mean(axis=2)
        return out

    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum() if w.size == len(ref) and w.sum() > 0 else np.full(len(ref), 1.0 / len(ref))
    band = int(round(float(cfg.get("band_s", 1.5)) * frame_rate))
    warp = follow_time(feats(ref), feats(deg), band, float(cfg.get("penalty", 0.5)))
    hold = int(cfg.get("hold_frames", 1))
    return steady_lag(warp, hold) if hold > 1 else warp


def _disturbance_matrix(ref: np.ndarray, deg: np.ndarray, first: int, stop: int, size: int, spec, norm: float):
    """Relative loudness disturbance between time-binned frames: ref bins (rows) x degraded bins."""
    from deepaq_core.embedding import bin_size, window_sums

    bf = bin_size(stop - first, size)
    starts = np.arange(first, stop, bf, dtype=np.int64)
    ends = np.minimum(starts + bf, stop)
    count = (ends - starts)[:, None]
    r = window_sums(ref, starts, ends) / count
    d = window_sums(deg, starts, ends) / count
    return disturbance_matrix(r, d, spec, norm), starts


def _normalised(buf: AudioBuffer) -> AudioBuffer:
    lufs = integrated_loudness(buf.samples, buf.sample_rate)
    if not np.isfinite(lufs):
        return buf
    gain = 10.0 ** ((NMR_TARGET_LUFS - lufs) / 20.0)
    return AudioBuffer((buf.samples * gain).astype(np.float32), buf.sample_rate, buf.info)


def _drain(gen: Generator, progress: ProgressCallback | None) -> Any:
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        if isinstance(item, Progress) and progress is not None:
            progress(item.fraction, item.message)


def score(reference: AudioInput, degraded: AudioInput, *, model: str | None = None, device: str = "auto",
          settings: ScoreSettings | None = None, progress: ProgressCallback | None = None,
          cancel=None, allow_unverified: bool = False) -> QualityResult:
    """Score one degraded file against a reference (see :class:`Scorer` for several files).

    Parameters
    ----------
    reference, degraded : path or AudioBuffer
        Any readable audio (8-192 kHz, 1-8 channels); in-memory buffers at any rate.
    model : str, optional
        Ladder name or bundle path; default the built-in model.
    allow_unverified : bool
        Also load a model bundle without a weights checksum.

    Returns
    -------
    QualityResult
    """
    scorer = Scorer(model, device, settings, allow_unverified=allow_unverified)
    return scorer.score(reference, degraded, progress=progress, cancel=cancel)
