"""Backbone layer x time heatmap of one result (``result.layer_heatmap``)."""

from __future__ import annotations

from PySide6 import QtWidgets

import pyqtgraph as pg

from deepaq_core.results import Heatmap, QualityResult

from .base import (COLOR_BAR_WIDTH, TimeView, finite_levels, image_rect, make_time_plot, reserve_right_column,
                   short_units, time_graphics)

HEATMAP_CMAP = "viridis"


class LayerHeatmapView(TimeView):
    """Distance per backbone layer (rows) over time (columns), with a colour bar.

    Cells without data (NaN) are drawn transparent. Rows are centred on their layer index.

    Parameters
    ----------
    parent : QtWidgets.QWidget, optional
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._plot = make_time_plot()
        self._widget = time_graphics()
        self._widget.addItem(self._plot, row=0, col=0)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._widget)

        self._plot.setLabel("left", "Layer")
        self._plot.setMouseEnabled(x=True, y=False)
        self._image = pg.ImageItem(axisOrder="row-major")
        self._plot.addItem(self._image)
        self._bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=pg.colormap.get(HEATMAP_CMAP), interactive=False,
                                    width=COLOR_BAR_WIDTH)
        self._bar.axis.enableAutoSIPrefix(False)  # distances read 0.2, not "200 (x0.001)"
        self._bar.setImageItem(self._image)
        # In the fixed right column, outside the plot width the time views share; its label on
        # the bar's other side, so it never runs into the tick values.
        reserve_right_column(self._widget, self._bar)
        self._add_time_plot(self._plot)
        self._heatmap: Heatmap | None = None
        self._version = ""

    def set_version_label(self, label: str) -> None:
        """Say which version the heatmap shows (e.g. "V2"), in the left axis label."""
        self._version = label
        self._update_label()

    def _update_label(self) -> None:
        what = (self._heatmap.y_label.capitalize() if self._heatmap is not None else "") or "Layer"
        self._plot.setLabel("left", f"{self._version} {what.lower()}" if self._version else what)

    def set_result(self, result: QualityResult | None, levels: tuple[float, float] | None = None) -> None:
        """Show ``result.layer_heatmap`` (``None`` clears).

        Parameters
        ----------
        result : QualityResult or None
        levels : tuple of float, optional
            Fixed colour levels, e.g. shared by all versions; default ``(0, finite max)``.
        """
        self.set_heatmap(None if result is None else result.layer_heatmap, levels)

    def set_heatmap(self, heatmap: Heatmap | None, levels: tuple[float, float] | None = None) -> None:
        """Show a layer x time :class:`~deepaq_core.results.Heatmap` (``None`` clears).

        Parameters
        ----------
        heatmap : Heatmap or None
        levels : tuple of float, optional
            See :meth:`set_result`.
        """
        self._heatmap = heatmap
        if heatmap is None or heatmap.values.size == 0:
            self._image.clear()
            return
        lo, hi = levels if levels is not None else finite_levels(heatmap.values)
        self._bar.setLevels((lo, hi))
        self._image.setImage(heatmap.values, autoLevels=False, levels=(lo, hi))
        rect = image_rect(heatmap.x, heatmap.y, x_starts=True, y_starts=False)
        self._image.setRect(rect)
        self._update_label()
        self._bar.getAxis("left").setLabel(short_units(heatmap.units))
        self._widget.setToolTip(f"Colour: {heatmap.units}")
        # No setXRange: the x axis is usually linked, and switching versions must not reset the
        # user's zoom of every linked view (standalone, the view box auto-ranges on x).
        self._plot.setYRange(rect.top(), rect.bottom(), padding=0)

    def heatmap(self) -> Heatmap | None:
        """The heatmap shown, or ``None``."""
        return self._heatmap

    def image_item(self) -> pg.ImageItem:
        """The image item.

        Returns
        -------
        pyqtgraph.ImageItem
        """
        return self._image

    def clear(self) -> None:
        """Remove the heatmap."""
        self.set_heatmap(None)
        super().clear()
