"""Reference, degraded and difference spectrograms on one time axis.

The heavy part, :func:`compute_spectrogram`, is a pure function so the main window can run it in a
worker thread and hand the arrays to :meth:`SpectrogramView.set_spectrograms`, which only draws.
:meth:`SpectrogramView.set_audio` is the synchronous convenience for short signals and tests.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6 import QtCore, QtWidgets

import pyqtgraph as pg

from deepaq_core.audio.buffer import AudioBuffer
from deepaq_core.audio.display import (  # noqa: F401  (the DSP lives in core; re-exported)
    DISPLAY_ROWS, FLOOR_DB, Spectrogram, compute_spectrogram, difference_spectrogram, difference_with_limit,
)

from .base import COLOR_BAR_WIDTH, TimeView, make_time_plot, reserve_right_column, show_whole_time, time_graphics

DEFAULT_RANGE_DB = 100.0  # shared colour scale spans this much below the louder spectrogram's peak
LEVEL_CMAP = "inferno"
DIFF_CMAP = "CET-D1"  # diverging blue-white-red, symmetric around 0 dB


def _rect(times: np.ndarray, freqs: np.ndarray) -> QtCore.QRectF:
    """Image rectangle whose cells are centred on the given column times and bin frequencies."""
    dt = (times[-1] - times[0]) / (times.size - 1) if times.size > 1 else 1.0
    df = (freqs[-1] - freqs[0]) / (freqs.size - 1) if freqs.size > 1 else 1.0
    return QtCore.QRectF(times[0] - dt / 2, freqs[0] - df / 2, dt * times.size, df * freqs.size)


class SpectrogramView(TimeView):
    """Three stacked spectrograms: reference, degraded (one shared colour scale) and the difference.

    The difference plot shows degraded minus reference in dB with a diverging colour map whose
    levels are symmetric around 0, so added energy (noise, distortion) is red and removed energy
    (low-pass, dropouts) is blue.

    Parameters
    ----------
    parent : QtWidgets.QWidget, optional
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._graphics = time_graphics()
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._graphics)

        self._images: list[pg.ImageItem] = []
        titles = ("R", "V", "V − R")  # short: three stacked axes share little height
        for row, title in enumerate(titles):
            plot = make_time_plot()
            self._graphics.addItem(plot, row=row, col=0)
            # Ticks in kHz under a one-word label (the unit is in the tooltip): each of the three
            # rows is only a few tens of pixels tall, and "V − R (kHz)" ran into the next row's.
            axis = plot.getAxis("left")
            axis.enableAutoSIPrefix(False)
            axis.setScale(1e-3)
            axis.setToolTip("Frequency (kHz)")
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
            spectrogram's maximum rounded up to 10 dB.
        diff_limit_db : float, optional
            Difference levels ``[-limit, +limit]``; default the 99th percentile of the absolute
            difference, rounded up to 3 dB and kept within 3-40 dB.
        difference : (Spectrogram, float), optional
            The difference and its default limit from :func:`difference_with_limit`, computed
            off the UI thread; computed here when not given.
        """
        old_end = self._t_end
        specs = [reference, degraded]
        peaks = [float(np.nanmax(s[2])) for s in specs if s is not None and s[2].size]
        top = 10.0 * math.ceil(max(peaks) / 10.0) if peaks else 0.0
        self._level_bar.setLevels((top - range_db, top))
        for k, spec in enumerate(specs):
            if spec is None or spec[2].size == 0:
                self._images[k].clear()
                continue
            times, freqs, db = spec
            if k == 1:
                times = np.asarray(times) - degraded_lag_s
            self._images[k].setImage(db, autoLevels=False, levels=(top - range_db, top))
            self._images[k].setRect(_rect(times, freqs))

        if difference is None and reference is not None and degraded is not None and reference[2].size and degraded[2].size:
            difference = difference_with_limit(reference, degraded, degraded_lag_s)
        if difference is not None:
            (times, freqs, diff), auto_limit = difference
            diff_limit_db = auto_limit if diff_limit_db is None else diff_limit_db
            self._diff_bar.setLevels((-diff_limit_db, diff_limit_db))
            self._images[2].setImage(diff, autoLevels=False, levels=(-diff_limit_db, diff_limit_db))
            self._images[2].setRect(_rect(times, freqs))
        else:
            self._images[2].clear()

        shown = [s for s in specs if s is not None and s[0].size]
        self._t_end = max((float(s[0][-1]) for s in shown), default=None)
        if shown:
            f_top = max(float(s[1][-1]) for s in shown)
            # Whole file when its length changes; same-length versions keep the user's zoom.
            if self._t_end != old_end:
                show_whole_time(self._time_plots[0], self._t_end)
            for plot in self._time_plots:
                plot.setYRange(0.0, f_top, padding=0)

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
        self._t_end = None
        super().clear()


def _downmix(buffer: AudioBuffer) -> np.ndarray:
    """Mono view of ``buffer`` (no copy for mono)."""
    return buffer.samples[0] if buffer.channels == 1 else buffer.samples.mean(axis=0)
