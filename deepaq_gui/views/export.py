"""Saving what the views show: images (PNG, SVG) and the numbers behind them (CSV, JSON)."""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Any

from PySide6 import QtCore, QtGui, QtSvg, QtWidgets

import pyqtgraph as pg
import pyqtgraph.exporters

from deepaq_core.results import QualityResult

CURVE_COLUMNS = ("version", "start_s", "end_s", "distance", "score")


def export_png(target: QtWidgets.QWidget | pg.GraphicsItem, path: str | os.PathLike, width: int | None = None) -> None:
    """Save a PNG of a whole widget (as on screen) or of one plot item (at any resolution).

    Parameters
    ----------
    target : QtWidgets.QWidget or pyqtgraph.GraphicsItem
        A widget is grabbed with ``QWidget.grab()``; a plot item (e.g. ``view.plot_item()``) goes
        through :class:`pyqtgraph.exporters.ImageExporter`.
    path : str or os.PathLike
    width : int, optional
        Output width in pixels for a plot item (height follows the aspect ratio).

    Raises
    ------
    OSError
        If the file could not be written.
    """
    path = os.fspath(path)
    if isinstance(target, QtWidgets.QWidget):
        if not target.grab().save(path, "PNG"):
            raise OSError(f"Could not write {path}")
        return
    exporter = pg.exporters.ImageExporter(target)
    if width is not None:
        exporter.parameters()["width"] = int(width)
    exporter.export(path)


def export_svg(target: pg.GraphicsItem | QtWidgets.QWidget, path: str | os.PathLike) -> None:
    """Save an SVG of a plot item, or of everything in a pyqtgraph widget's scene.

    Parameters
    ----------
    target : pyqtgraph.GraphicsItem or QtWidgets.QWidget
        A plot item, a :class:`pyqtgraph.GraphicsView` (e.g. ``PlotWidget``), or any widget that
        contains one (e.g. a view from this package: its first graphics view's scene is saved).
    path : str or os.PathLike

    Raises
    ------
    TypeError
        If ``target`` holds no pyqtgraph scene.
    """
    item: Any = target
    if isinstance(target, QtWidgets.QWidget):
        view = target if isinstance(target, pg.GraphicsView) else target.findChild(pg.GraphicsView)
        if view is None:
            raise TypeError(f"{type(target).__name__} contains no pyqtgraph graphics view to export")
        item = view.scene()
    try:
        pg.exporters.SVGExporter(item).export(os.fspath(path))
    except ValueError:
        # pyqtgraph 0.14.0's SVGExporter cannot parse the closing "Z" Qt >= 6.11 writes in SVG
        # paths (pyqtgraph issue #3495); Qt's own SVG renderer is correct, only less tidy.
        _render_svg(item, os.fspath(path))


def export_curves_csv(results: dict[int, QualityResult], names: dict[int, str], path: str | os.PathLike) -> None:
    """Write every version's quality curve, one row per window.

    Columns: ``version`` (name), ``start_s``, ``end_s``, ``distance``, ``score``; versions in index
    order, windows in time order; NaN written as an empty cell.

    Parameters
    ----------
    results : dict of int to QualityResult
    names : dict of int to str
    path : str or os.PathLike
    """
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CURVE_COLUMNS)
        for index, result in sorted(results.items()):
            name = names.get(index, f"Version {index}")
            c = result.curve
            for row in zip(c.start_s, c.end_s, c.distance, c.score):
                writer.writerow([name, *(_cell(v, d) for v, d in zip(row, (4, 4, 6, 3)))])


def export_scores_json(results: dict[int, QualityResult], names: dict[int, str], path: str | os.PathLike) -> None:
    """Write a JSON list with each version's :meth:`QualityResult.summary`, plus its name and index.

    Non-finite numbers become ``null`` so the file is strict JSON.

    Parameters
    ----------
    results : dict of int to QualityResult
    names : dict of int to str
    path : str or os.PathLike
    """
    rows = [{"name": names.get(i, f"Version {i}"), "index": i, **r.summary()} for i, r in sorted(results.items())]
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(_finite(rows), fh, indent=2, allow_nan=False)
        fh.write("\n")


def _render_svg(item: Any, path: str) -> None:
    """Render a scene, or the part of it an item covers, straight through QSvgGenerator."""
    scene = item if isinstance(item, QtWidgets.QGraphicsScene) else item.scene()
    source = scene.sceneRect() if item is scene else item.sceneBoundingRect()
    target = QtCore.QRectF(0, 0, source.width(), source.height())
    generator = QtSvg.QSvgGenerator()
    generator.setFileName(path)
    generator.setSize(target.size().toSize())
    generator.setViewBox(target)
    generator.setTitle("DeePAQ")
    painter = QtGui.QPainter(generator)
    try:
        scene.render(painter, target, source)
    finally:
        painter.end()
    if not os.path.exists(path):
        raise OSError(f"Could not write {path}")


def _cell(value: float, digits: int) -> str:
    v = float(value)
    return "" if not math.isfinite(v) else repr(round(v, digits))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
