"""Reference, degraded and difference spectrograms on one time axis and one (mel, log or linear) frequency axis.

The heavy part, :func:`compute_spectrogram`, is a pure function so the main window can run it in a
worker thread and hand the arrays to :meth:`SpectrogramView.set_spectrograms`, which only draws.
:meth:`SpectrogramView.set_audio` is the synchronous convenience for short signals and tests.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from PySide6 import QtCore, QtWidgets

import pyqtgraph as pg

from deepaq_core.audio.buffer import AudioBuffer
from deepaq_core.audio.display import (  # noqa: F401  (the DSP lives in core; re-exported)
    DISPLAY_ROWS, FLOOR_DB, Spectrogram, compute_spectrogram, difference_spectrogram, difference_with_limit,
)

from .base import COLOR_BAR_WIDTH, TimeView, make_time_plot, reserve_right_column, show_whole_time, time_graphics

log = logging.getLogger(__name__)

DEFAULT_RANGE_DB = 100.0  # shared colour scale spans this much below the louder spectrogram's peak
LEVEL_CMAP = "inferno"
DIFF_CMAP = "CET-D1"  # diverging blue-white-red, symmetric around 0 dB


#: Frequency rows drawn. A spectrogram plot is a few hundred pixels tall; drawing all 1025 bins of
#: a 2048-point FFT cost the UI thread 30 ms per first paint of the three images on a 5-minute
#: file (docs/PERFORMANCE.md).
DRAWN_ROWS = 256
#: Frequency axes of the view: mel (the default; HTK formula), log (from LOG_F_MIN_HZ) or linear.
FREQ_SCALES = ("mel", "log", "linear")
DEFAULT_FREQ_SCALE = "mel"
LOG_F_MIN_HZ = 30.0
#: Spectrograms with more cells than this (reference and degraded together; about 40 s of audio)
#: are resampled for drawing in the view's worker thread, smaller ones at once.
SYNC_WARP_CELLS = 400_000
#: Dynamic ranges offered for the level colour scale, dB below the peak.
RANGES_DB = (60.0, 80.0, 100.0, 120.0)


# ----- frequency axis (pure) ---------------------------------------------------------------------
def hz_to_axis(f_hz, scale: str):
    """Frequency in Hz to the position on a ``scale`` axis (mel: HTK mel; log: log10 Hz; linear: Hz)."""
    f = np.asarray(f_hz, dtype=np.float64)
    if scale == "mel":
        return 2595.0 * np.log10(1.0 + np.maximum(f, 0.0) / 700.0)
    if scale == "log":
        return np.log10(np.maximum(f, 1e-3))
    if scale == "linear":
        return f
    raise ValueError(f"unknown frequency scale {scale!r}; choose from {', '.join(FREQ_SCALES)}")


def axis_to_hz(y, scale: str):
    """Inverse of :func:`hz_to_axis`."""
    v = np.asarray(y, dtype=np.float64)
    if scale == "mel":
        return 700.0 * (10.0 ** (v / 2595.0) - 1.0)
    if scale == "log":
        return 10.0 ** v
    if scale == "linear":
        return v
    raise ValueError(f"unknown frequency scale {scale!r}; choose from {', '.join(FREQ_SCALES)}")


def warp_spectrogram(spec: Spectrogram, scale: str, rows: int = DRAWN_ROWS,
                     f_range: tuple[float, float] | None = None) -> tuple[Spectrogram, tuple[float, float]]:
    """Resample a spectrogram's frequency rows onto ``rows`` rows evenly spaced on a ``scale`` axis (pure).

    Each output row takes the **largest** level of the input bands it covers (the band under it
    when it is narrower than a band, at the low end of a log axis). A maximum keeps a tone or a
    narrow codec artefact at its level however many bands a row spans (the top of a mel axis), and
    it needs no conversion from dB, so it is cheap enough to run when the axis changes (a mean of
    power needs 10**x and log10 on every cell: 50 ms for a 5-minute file's images).

    Parameters
    ----------
    spec : Spectrogram
        From :func:`compute_spectrogram` (equally spaced bands).
    scale : {"mel", "log", "linear"}
    rows : int
    f_range : (float, float), optional
        Frequencies in Hz of the bottom and top edges; default 0 (``LOG_F_MIN_HZ`` on a log axis)
        to the top of the highest band. Rows above the input's top are NaN.

    Returns
    -------
    (times, row_centres_hz, db [rows, T]), (axis_bottom, axis_top)
        The resampled spectrogram and the extent of its rows in axis units (for the image rectangle).
    """
    times, freqs, db = spec
    freqs = np.asarray(freqs, dtype=np.float64)
    db = np.asarray(db)
    n_bands = db.shape[0]
    df = float(freqs[1] - freqs[0]) if freqs.size > 1 else 1.0
    bottom = float(freqs[0] - df / 2)
    top = float(freqs[-1] + df / 2)
    lo_hz, hi_hz = f_range if f_range is not None else ((LOG_F_MIN_HZ if scale == "log" else 0.0), top)
    a0, a1 = float(hz_to_axis(lo_hz, scale)), float(hz_to_axis(hi_hz, scale))
    grid = np.linspace(a0, a1, rows + 1)
    edges_hz = axis_to_hz(grid, scale)
    # the band holding each row's lower edge; a row spans its band up to the next row's band
    first = np.clip(np.floor((edges_hz[:-1] - bottom) / df).astype(np.int64), 0, n_bands - 1)
    end = int(np.clip(np.floor((min(edges_hz[-1], top) - bottom) / df), 0, n_bands - 1)) + 1
    first = np.minimum(first, end - 1)
    # row i: max over bands [first[i], first[i+1]), or the single band first[i] when the next row starts in
    # the same band. A loop over the wide rows beats np.maximum.reduceat along axis 0 ten times over.
    stop = np.append(first[1:], end)
    out = db[first].astype(np.float32)
    for i in np.flatnonzero(stop - first > 1):
        np.max(db[first[i]:stop[i]], axis=0, out=out[i])
    out[edges_hz[:-1] >= top] = np.nan  # rows above the input's highest band
    centres = axis_to_hz((grid[:-1] + grid[1:]) / 2, scale)
    return (np.asarray(times), centres, out), (a0, a1)


def frequency_ticks(scale: str, lo: float, hi: float, max_ticks: int) -> list[float]:
    """Tick frequencies (Hz) for an axis showing ``lo``..``hi`` in axis units, at most ``max_ticks``."""
    f_lo, f_hi = float(axis_to_hz(lo, scale)), float(axis_to_hz(hi, scale))
    if scale == "linear":
        span = max(f_hi - f_lo, 1.0)
        step = next((s for s in (100, 200, 500, 1000, 2000, 5000, 10000, 20000) if span / s <= max(1, max_ticks)),
                    50000)
        return [float(v) for v in np.arange(math.ceil(f_lo / step) * step, f_hi + 1e-9, step)]
    for nice in ((20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000), (50, 100, 500, 1000, 5000, 10000, 20000),
                 (100, 1000, 10000), (1000, 10000)):
        ticks = [float(f) for f in nice if f_lo <= f <= f_hi]
        if len(ticks) <= max(1, max_ticks):
            return ticks
    return [1000.0]


def format_hz(f: float) -> str:
    """``440`` -> ``"440"``, ``1000`` -> ``"1k"``, ``12500`` -> ``"12.5k"``."""
    return f"{f / 1000:g}k" if f >= 1000 else f"{f:g}"


def display_images(reference: Spectrogram | None, degraded: Spectrogram | None, scale: str,
                   degraded_lag_s: float = 0.0, diff_limit_db: float | None = None, rows: int = DRAWN_ROWS) -> dict:
    """What :class:`SpectrogramView` draws, on one frequency axis (pure, thread-safe).

    Returns a dict: ``images`` (the reference and degraded spectrograms resampled by
    :func:`warp_spectrogram` onto the same rows, degraded times moved by the lag; None where not
    given), ``difference`` (``(times, degraded - reference dB, colour limit)`` of those two images,
    or None), ``extent`` (axis units of the bottom and top row edges), ``top_db`` (the louder
    peak rounded up to 10 dB) and ``t_end`` (the last column time, or None).
    """
    specs = [s if s is not None and s[2].size else None for s in (reference, degraded)]
    peaks = [float(np.nanmax(s[2])) for s in specs if s is not None]
    top = 10.0 * math.ceil(max(peaks) / 10.0) if peaks else 0.0
    f_tops = [float(s[1][-1] + (s[1][1] - s[1][0]) / 2) for s in specs if s is not None and s[1].size > 1]
    f_range = ((LOG_F_MIN_HZ if scale == "log" else 0.0), max(f_tops)) if f_tops else None
    images: list = [None, None]
    extent = (0.0, 1.0)
    for k, spec in enumerate(specs):
        if spec is not None:
            images[k], extent = warp_spectrogram(spec, scale, rows, f_range)
    difference = None
    if images[0] is not None and images[1] is not None:
        # the difference of the two images as drawn, so all three share one frequency axis
        times, _freqs, diff = difference_spectrogram(images[0], images[1], degraded_lag_s)
        if diff_limit_db is None:
            finite = np.abs(diff[np.isfinite(diff)])
            p99 = float(np.percentile(finite, 99)) if finite.size else 0.0
            diff_limit_db = min(40.0, max(3.0, 3.0 * math.ceil(p99 / 3.0)))
        difference = (np.asarray(times), diff, float(diff_limit_db))
    if images[1] is not None and degraded_lag_s:
        t, f, db = images[1]
        images[1] = (np.asarray(t) - degraded_lag_s, f, db)
    shown = [s for s in specs if s is not None and s[0].size]
    return {"images": images, "difference": difference, "extent": extent, "top_db": top,
            "t_end": max((float(s[0][-1]) for s in shown), default=None)}


class FrequencyAxis(pg.AxisItem):
    """A left axis for rows placed on a mel, log or linear frequency axis: ticks at round frequencies in Hz."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scale_name = DEFAULT_FREQ_SCALE

    def tickValues(self, minVal, maxVal, size):  # noqa: N802, N803 - pyqtgraph API
        ticks = frequency_ticks(self.scale_name, minVal, maxVal, max(2, int(size // 16)))
        return [(1.0, [float(hz_to_axis(f, self.scale_name)) for f in ticks])]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph API
        return [format_hz(round(float(axis_to_hz(v, self.scale_name)), 3)) for v in values]


def _axis_rect(times: np.ndarray, extent: tuple[float, float]) -> QtCore.QRectF:
    """Image rectangle: columns centred on ``times``, rows filling ``extent`` (frequency-axis units)."""
    dt = (times[-1] - times[0]) / (times.size - 1) if times.size > 1 else 1.0
    return QtCore.QRectF(times[0] - dt / 2, extent[0], dt * times.size, extent[1] - extent[0])


class SpectrogramView(TimeView):
    """Three stacked spectrograms: reference, degraded (one shared colour scale) and the difference.

    All three are drawn on one frequency axis, mel by default, log or linear on request
    (:meth:`set_freq_scale`, the "Frequency axis" box), with ticks in Hz; the level colours span
    the chosen dynamic range below the peak (:meth:`set_range_db`, the "Range" box). Hovering
    shows time, frequency and level (:meth:`readout_text`).

    The difference plot shows degraded minus reference in dB with a diverging colour map whose
    levels are symmetric around 0, so added energy (noise, distortion) is red and removed energy
    (low-pass, dropouts) is blue.

    Parameters
    ----------
    parent : QtWidgets.QWidget, optional
    """

    _imagesReady = QtCore.Signal(object, int)  # (display_images output, request token), from the worker

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._graphics = time_graphics()
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._build_controls())
        layout.addWidget(self._graphics, 1)
        self.freq_scale = DEFAULT_FREQ_SCALE
        self.range_db = DEFAULT_RANGE_DB
        # what set_spectrograms was given, to redraw on another axis or range without new FFTs
        self._given: tuple | None = None
        self._top_db = 0.0
        self._diff_limit = 20.0
        self._warp_token = self._shown_token = 0
        self._warp_pool = QtCore.QThreadPool(self)
        self._warp_pool.setMaxThreadCount(1)
        self._imagesReady.connect(self._show_images)

        self._images: list[pg.ImageItem] = []
        self._titles = ("R", "V", "V − R")  # short: three stacked axes share little height
        for row, title in enumerate(self._titles):
            plot = make_time_plot(axisItems={"left": FrequencyAxis("left")})
            self._graphics.addItem(plot, row=row, col=0)
            # Ticks at round frequencies in Hz ("100", "1k", "10k") under a one-word label; the unit
            # is in the "Frequency axis (Hz)" box above: each of the three rows is only a few tens
            # of pixels tall, and "V − R (Hz)" ran into the next row's label.
            axis = plot.getAxis("left")
            axis.enableAutoSIPrefix(False)
            axis.setToolTip("Frequency (Hz)")
            plot.setLabel("left", title)
            plot.setMouseEnabled(x=True, y=False)
            if row < 2:
                plot.hideAxis("bottom")  # the bottom row's axis serves all three (see WaveformView)
            image = pg.ImageItem(axisOrder="row-major")
            plot.addItem(image)
            self._images.append(image)
            self._add_time_plot(plot)

        self._level_bar = pg.ColorBarItem(values=(FLOOR_DB, 0.0), colorMap=pg.colormap.get(LEVEL_CMAP),
                                          label="Level (dB FS)", interactive=False, width=COLOR_BAR_WIDTH)
        self._level_bar.setImageItem(self._images[:2])
        reserve_right_column(self._graphics, self._level_bar, row=0, rowspan=2)
        self._diff_bar = pg.ColorBarItem(values=(-20.0, 20.0), colorMap=pg.colormap.get(DIFF_CMAP),
                                         label="V − R (dB)", interactive=False, width=COLOR_BAR_WIDTH)
        self._diff_bar.setImageItem(self._images[2])
        reserve_right_column(self._graphics, self._diff_bar, row=2)
        self._t_end: float | None = None
        self._hover_proxy = pg.SignalProxy(self._graphics.scene().sigMouseMoved, rateLimit=60, slot=self._mouse_moved)

    def _build_controls(self) -> QtWidgets.QWidget:
        bar = QtWidgets.QWidget()
        h = QtWidgets.QHBoxLayout(bar)
        h.setContentsMargins(4, 2, 4, 2)
        h.addWidget(QtWidgets.QLabel("Frequency axis (Hz)"))
        self.scale_combo = QtWidgets.QComboBox()
        self.scale_combo.addItems(FREQ_SCALES)
        self.scale_combo.setToolTip("mel (default) or log spread the low and middle frequencies like the ear; linear "
                                    "gives every kHz the same height")
        self.scale_combo.currentTextChanged.connect(self.set_freq_scale)
        h.addWidget(self.scale_combo)
        h.addWidget(QtWidgets.QLabel("Range"))
        self.range_combo = QtWidgets.QComboBox()
        self.range_combo.addItems([f"{r:g} dB" for r in RANGES_DB])
        self.range_combo.setCurrentIndex(RANGES_DB.index(DEFAULT_RANGE_DB))
        self.range_combo.setToolTip("Dynamic range of the level colours, below the louder spectrogram's peak")
        self.range_combo.currentIndexChanged.connect(lambda i: self.set_range_db(RANGES_DB[i]))
        h.addWidget(self.range_combo)
        self.readout = QtWidgets.QLabel("")
        self.readout.setToolTip("Time, frequency and level under the mouse")
        h.addWidget(self.readout, 1)
        return bar

    def set_freq_scale(self, scale: str) -> None:
        """Show the frequency axis as ``mel``, ``log`` or ``linear`` (redraws what is shown; no new FFTs)."""
        if scale not in FREQ_SCALES:
            raise ValueError(f"unknown frequency scale {scale!r}; choose from {', '.join(FREQ_SCALES)}")
        self.freq_scale = scale
        if self.scale_combo.currentText() != scale:
            with QtCore.QSignalBlocker(self.scale_combo):  # no second redraw through the combo's signal
                self.scale_combo.setCurrentText(scale)
        for plot in self._time_plots:
            plot.getAxis("left").scale_name = scale
            plot.getAxis("left").picture = None  # ticks depend on the scale, not only the range
        if self._given is not None:
            self._draw()

    def set_range_db(self, range_db: float) -> None:
        """Colour range of the level images: ``range_db`` below the peak (no recomputation)."""
        self.range_db = float(range_db)
        if self.range_db in RANGES_DB and self.range_combo.currentIndex() != RANGES_DB.index(self.range_db):
            with QtCore.QSignalBlocker(self.range_combo):
                self.range_combo.setCurrentIndex(RANGES_DB.index(self.range_db))
        levels = (self._top_db - self.range_db, self._top_db)
        self._level_bar.setLevels(levels)
        for image in self._images[:2]:
            if image.image is not None:
                image.setLevels(levels)

    # ----- interface -------------------------------------------------------------------------
    def set_audio(self, reference: AudioBuffer | None, degraded: AudioBuffer | None,
                  degraded_lag_s: float = 0.0, max_columns: int = 2000) -> None:
        """Compute (synchronously) and show the spectrograms of two signals (channels downmixed).

        Parameters
        ----------
        reference, degraded : AudioBuffer or None
        degraded_lag_s : float
            See :func:`difference_spectrogram`.
        max_columns : int
            See :func:`compute_spectrogram`.
        """
        buffers = [b for b in (reference, degraded) if b is not None]
        grid = max((b.num_samples for b in buffers), default=0)
        specs = [None if b is None else compute_spectrogram(_downmix(b), b.sample_rate, max_columns, grid_samples=grid,
                                                            max_rows=DISPLAY_ROWS)
                 for b in (reference, degraded)]
        self.set_spectrograms(specs[0], specs[1], degraded_lag_s=degraded_lag_s)

    def set_spectrograms(self, reference: Spectrogram | None, degraded: Spectrogram | None,
                         degraded_lag_s: float = 0.0, range_db: float = DEFAULT_RANGE_DB,
                         diff_limit_db: float | None = None,
                         difference: tuple[Spectrogram, float] | None = None) -> None:
        """Draw precomputed spectrograms (from :func:`compute_spectrogram`); no FFTs here.

        Parameters
        ----------
        reference, degraded : Spectrogram or None
        degraded_lag_s : float
            Shifts the degraded spectrogram onto the reference timeline.
        range_db : float
            The shared colour scale spans ``[peak - range_db, peak]``, with ``peak`` the louder
            spectrogram's maximum rounded up to 10 dB (default: the view's Range setting).
        diff_limit_db : float, optional
            Difference levels ``[-limit, +limit]``; default the 99th percentile of the absolute
            difference, rounded up to 3 dB and kept within 3-40 dB.
        difference : (Spectrogram, float), optional
            The difference and its default limit from :func:`difference_with_limit`, computed
            off the UI thread. Its limit sets the colours; the image is the difference of the
            two resampled images (:func:`display_images`), so all three share the frequency axis.
        """
        if range_db != DEFAULT_RANGE_DB:
            self.set_range_db(range_db)
        self._given = (reference, degraded, degraded_lag_s, diff_limit_db, difference)
        self._draw()

    def _draw(self) -> None:
        """Resample what was given onto the current frequency axis and draw it.

        Small spectrograms are resampled here; larger ones (a long file: tens of milliseconds) in
        the view's own worker thread, and drawn when ready. A newer request makes an older result stale.
        """
        reference, degraded, degraded_lag_s, diff_limit_db, difference = self._given
        self._warp_token += 1
        token, scale = self._warp_token, self.freq_scale
        cells = sum(s[2].size for s in (reference, degraded) if s is not None)

        limit = diff_limit_db if diff_limit_db is not None else (difference[1] if difference is not None else None)

        def job(_cancel=None):
            return display_images(reference, degraded, scale, degraded_lag_s, limit)

        if cells <= SYNC_WARP_CELLS:
            self._show_images(job(), token)
            return

        def run() -> None:
            try:
                out = job()
            except Exception:  # noqa: BLE001 - logged; the images stay as they were
                log.exception("resampling the spectrograms failed")
                return
            try:
                self._imagesReady.emit(out, token)  # queued to the UI thread
            except RuntimeError:
                pass  # the view was deleted meanwhile

        self._warp_pool.start(run)

    def is_drawing(self) -> bool:
        """Whether the images for the latest data or axis are still being resampled in the view's worker."""
        return self._shown_token != self._warp_token and self._given is not None

    def _show_images(self, out: dict, token: int) -> None:
        if token != self._warp_token or self._given is None:
            return  # a newer request (data, axis) or a clear came in the meantime
        self._shown_token = token
        old_end = self._t_end
        top = out["top_db"]
        self._top_db = top
        levels = (top - self.range_db, top)
        self._level_bar.setLevels(levels)
        extent = out["extent"]
        for k in range(2):
            spec = out["images"][k]
            if spec is None:
                self._images[k].clear()
                continue
            self._images[k].setImage(spec[2], autoLevels=False, levels=levels)
            self._images[k].setRect(_axis_rect(np.asarray(spec[0]), extent))
        if out["difference"] is not None:
            times, diff, limit = out["difference"]
            self._diff_limit = limit
            self._diff_bar.setLevels((-limit, limit))
            self._images[2].setImage(diff, autoLevels=False, levels=(-limit, limit))
            self._images[2].setRect(_axis_rect(times, extent))
        else:
            self._images[2].clear()
        self._t_end = out["t_end"]
        if self._t_end is not None:
            # Whole file when its length changes; same-length versions keep the user's zoom.
            if self._t_end != old_end:
                show_whole_time(self._time_plots[0], self._t_end)
            for plot in self._time_plots:
                plot.setYRange(extent[0], extent[1], padding=0)

    def readout_text(self) -> str:
        """The hover read-out: time, frequency and level under the mouse ("" when not over an image)."""
        return self.readout.text()

    def value_at(self, row: int, t_s: float, f_hz: float) -> float | None:
        """The drawn value (dB) of image ``row`` (0 R, 1 V, 2 V − R) at a time and frequency; None outside it."""
        image = self._images[row]
        if image.image is None:
            return None
        rect = image.mapRectToParent(image.boundingRect())
        y = float(hz_to_axis(f_hz, self.freq_scale))
        h, w = image.image.shape
        col = int((t_s - rect.left()) / rect.width() * w) if rect.width() else -1
        r = int((y - rect.top()) / rect.height() * h) if rect.height() else -1
        if not (0 <= col < w and 0 <= r < h):
            return None
        v = float(image.image[r, col])
        return v if math.isfinite(v) else None

    def _mouse_moved(self, args) -> None:
        pos = args[0]
        for row, plot in enumerate(self._time_plots):
            vb = plot.getViewBox()
            if vb.sceneBoundingRect().contains(pos):
                p = vb.mapSceneToView(pos)
                self.show_readout(row, float(p.x()), float(axis_to_hz(p.y(), self.freq_scale)))
                return
        self.readout.setText("")

    def show_readout(self, row: int, t_s: float, f_hz: float) -> None:
        """Write the read-out for a point of image ``row`` (what hovering there shows)."""
        v = self.value_at(row, t_s, f_hz)
        level = "-" if v is None else (f"{v:+.1f} dB" if row == 2 else f"{v:.1f} dB FS")
        f = f"{f_hz / 1000:.2f} kHz" if f_hz >= 1000 else f"{f_hz:.0f} Hz"
        self.readout.setText(f"{self._titles[row]}   {t_s:.2f} s   {f}   {level}")

    def image_items(self) -> list[pg.ImageItem]:
        """The reference, degraded and difference image items.

        Returns
        -------
        list of pyqtgraph.ImageItem
        """
        return list(self._images)

    def set_version_label(self, label: str) -> None:
        """Name the version shown (e.g. "V2") on the degraded and difference rows and the difference bar."""
        label = label or "V"
        for plot, text in zip(self._time_plots[1:], (label, f"{label} − R")):
            plot.setLabel("left", text)
        self._diff_bar.getAxis("left").setLabel(f"{label} − R (dB)")

    def clear(self) -> None:
        """Remove all three images."""
        for image in self._images:
            image.clear()
        self._given = None
        self._warp_token += 1
        self.readout.setText("")
        self._t_end = None
        super().clear()


def _downmix(buffer: AudioBuffer) -> np.ndarray:
    """Mono view of ``buffer`` (no copy for mono)."""
    return buffer.samples[0] if buffer.channels == 1 else buffer.samples.mean(axis=0)
