"""DeePAQ's plots and read-outs: thin widgets that draw the data they are given.

Time-based views (:class:`WaveformView`, :class:`SpectrogramView`, :class:`QualityCurveView`,
:class:`LayerHeatmapView`) share the :class:`TimeView` interface: x in seconds on the reference
timeline, ``plot_item()`` for ``setXLink``, ``set_playhead``, ``set_loop``, ``clear`` and the
``seekRequested`` / ``loopRequested`` signals. PySide6 is imported before pyqtgraph so pyqtgraph
binds to it.
"""

from PySide6 import QtCore  # noqa: F401  (must precede pyqtgraph)

from .base import VERSION_COLORS, TimeView, TimeViewBox, version_color
from .export import export_curves_csv, export_png, export_scores_json, export_svg
from .heatmap import LayerHeatmapView
from .live_score import LiveScoreLabel
from .matrix import TimeMatrixView
from .quality_curve import QualityCurveView
from .score_table import ScoreTableView
from .spectrogram import SpectrogramView, compute_spectrogram, difference_spectrogram
from .waveform import WaveformEnvelope, WaveformView, compute_envelope

__all__ = [
    "VERSION_COLORS",
    "LayerHeatmapView",
    "LiveScoreLabel",
    "QualityCurveView",
    "ScoreTableView",
    "SpectrogramView",
    "TimeMatrixView",
    "TimeView",
    "TimeViewBox",
    "WaveformEnvelope",
    "WaveformView",
    "compute_envelope",
    "compute_spectrogram",
    "difference_spectrogram",
    "export_curves_csv",
    "export_png",
    "export_scores_json",
    "export_svg",
    "version_color",
]
