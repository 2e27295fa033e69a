"""A one-page report of a session: what was compared, with which model and settings, the scores, the plots.

    make_report("report.pdf", session, session.results, images=[window.curve.grab(), ...])

The page is A4 landscape. ``.pdf`` is written with :class:`QPdfWriter` (vector text, one page),
``.png`` with :class:`QImage` at :data:`REPORT_DPI` (:func:`report_size_px` pixels). The plots
are images the caller grabs from the views (``QWidget.grab()``); they are scaled, keeping their
aspect ratio, into the space left under the table, so the report always fits one page.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
from collections.abc import Sequence

from PySide6 import QtCore, QtGui

from deepaq_core.errors import DeePAQError
from deepaq_core.results import DISTANCE_UNITS, SCORE_SCALE, QualityResult
from deepaq_gui.session import Session

REPORT_DPI = 150
PAGE_MM = (297.0, 210.0)  # A4 landscape
MARGIN_MM = 10.0
REPORT_SUFFIXES = (".pdf", ".png")
REPORT_FILTER = "PDF (*.pdf);;PNG image (*.png)"
# Grabs are at screen resolution (~96 dpi): drawn at most this much larger than their natural size.
MAX_UPSCALE = 1.5

_INK = QtGui.QColor(25, 25, 25)
_MUTED = QtGui.QColor(95, 95, 95)
_RULE = QtGui.QColor(170, 170, 170)
_SHADE = QtGui.QColor(240, 242, 245)
_WARN = QtGui.QColor(170, 60, 0)


def report_size_px(dpi: int = REPORT_DPI) -> QtCore.QSize:
    """Pixel size of a PNG report: A4 landscape at ``dpi`` (1754 x 1240 at 150 dpi)."""
    return QtCore.QSize(round(PAGE_MM[0] / 25.4 * dpi), round(PAGE_MM[1] / 25.4 * dpi))


def make_report(path: str | os.PathLike, session: Session, results: dict[int, QualityResult], *,
                images: Sequence[QtGui.QPixmap | QtGui.QImage] = (), title: str = "DeePAQ report",
                dpi: int = REPORT_DPI) -> None:
    """Write a one-page report (PDF or PNG, chosen by the extension of ``path``).

    Parameters
    ----------
    path : str or os.PathLike
        Ends in ``.pdf`` or ``.png``.
    session : Session
        Reference, versions (names, labels, SHA-256), settings and model name.
    results : dict of int to QualityResult
        Results by 0-based version index (versions without one are listed as not scored).
    images : sequence of QPixmap or QImage
        Plots to include (e.g. ``view.grab()``), in reading order; null images are skipped.
    title : str
    dpi : int
        Resolution of the PNG, and of the PDF's layout and embedded images.

    Raises
    ------
    DeePAQError
        If ``path`` ends in neither ``.pdf`` nor ``.png``, or no reference is open.
    OSError
        If the file could not be written.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in REPORT_SUFFIXES:
        raise DeePAQError(f"A report must be a .pdf or .png file, not '{os.path.basename(path)}'.")
    if session.reference is None:
        raise DeePAQError("There is nothing to report: open a reference first.")
    imgs = [_as_image(i) for i in images]
    imgs = [i for i in imgs if not i.isNull()]
    if ext == ".pdf":
        _write_pdf(path, session, results, imgs, title, dpi)
    else:
        _write_png(path, session, results, imgs, title, dpi)


# ------------------------------------------------------------------------------ devices


def _write_pdf(path, session, results, images, title, dpi) -> None:
    writer = QtGui.QPdfWriter(path)
    writer.setResolution(dpi)
    writer.setTitle(title)
    writer.setCreator("DeePAQ")
    layout = QtGui.QPageLayout(QtGui.QPageSize(QtGui.QPageSize.A4), QtGui.QPageLayout.Landscape,
                               QtCore.QMarginsF(0, 0, 0, 0), QtGui.QPageLayout.Millimeter)
    writer.setPageLayout(layout)
    painter = QtGui.QPainter()
    if not painter.begin(writer):
        raise OSError(f"Could not write {path}")
    try:
        _paint(painter, QtCore.QRectF(0, 0, writer.width(), writer.height()), dpi, session, results, images, title)
    finally:
        painter.end()
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise OSError(f"Could not write {path}")


def _write_png(path, session, results, images, title, dpi) -> None:
    size = report_size_px(dpi)
    image = QtGui.QImage(size, QtGui.QImage.Format_RGB32)
    image.fill(QtGui.QColor("white"))
    dpm = round(dpi / 0.0254)
    image.setDotsPerMeterX(dpm)
    image.setDotsPerMeterY(dpm)
    painter = QtGui.QPainter(image)
    try:
        _paint(painter, QtCore.QRectF(0, 0, size.width(), size.height()), dpi, session, results, images, title)
    finally:
        painter.end()
    if not image.save(path, "PNG"):
        raise OSError(f"Could not write {path}")


def _as_image(obj) -> QtGui.QImage:
    if isinstance(obj, QtGui.QImage):
        return obj
    if isinstance(obj, QtGui.QPixmap):
        return obj.toImage()
    raise TypeError(f"report images must be QPixmap or QImage, not {type(obj).__name__}")


# ------------------------------------------------------------------------------- layout


class _Pen:
    """Millimetres and points to device pixels, fonts by point size (device independent)."""

    def __init__(self, painter: QtGui.QPainter, dpi: float) -> None:
        self.p = painter
        self.dpi = dpi

    def mm(self, v: float) -> float:
        return v * self.dpi / 25.4

    def font(self, pt: float, bold: bool = False, mono: bool = False) -> QtGui.QFont:
        f = QtGui.QFont("DejaVu Sans Mono" if mono else "DejaVu Sans")
        if mono:
            f.setStyleHint(QtGui.QFont.Monospace)
        else:
            f.setStyleHint(QtGui.QFont.SansSerif)
        f.setPixelSize(max(1, round(pt * self.dpi / 72.0)))
        f.setBold(bold)
        self.p.setFont(f)
        return f

    def text(self, rect: QtCore.QRectF, text: str, flags=QtCore.Qt.AlignLeft | QtCore.Qt.AlignVCenter,
             color: QtGui.QColor = _INK) -> None:
        self.p.setPen(color)
        fm = QtGui.QFontMetricsF(self.p.font())
        if not flags & QtCore.Qt.TextWordWrap:
            text = fm.elidedText(text, QtCore.Qt.ElideMiddle, rect.width())
        self.p.drawText(rect, int(flags), text)

    def wrapped_height(self, width: float, text: str) -> float:
        fm = QtGui.QFontMetricsF(self.p.font())
        return fm.boundingRect(QtCore.QRectF(0, 0, width, 1e6), int(QtCore.Qt.TextWordWrap), text).height()


def _paint(painter: QtGui.QPainter, page: QtCore.QRectF, dpi: float, session: Session,
           results: dict[int, QualityResult], images: list[QtGui.QImage], title: str) -> None:
    painter.setRenderHint(QtGui.QPainter.Antialiasing, True)
    painter.setRenderHint(QtGui.QPainter.TextAntialiasing, True)
    painter.setRenderHint(QtGui.QPainter.SmoothPixmapTransform, True)
    w = _Pen(painter, dpi)
    m = w.mm(MARGIN_MM)
    left, right = page.left() + m, page.right() - m
    width = right - left
    y = page.top() + m

    # -- title and date ---------------------------------------------------------------------
    w.font(16, bold=True)
    h = w.mm(8)
    w.text(QtCore.QRectF(left, y, width * 0.7, h), title)
    w.font(9)
    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()
    w.text(QtCore.QRectF(left + width * 0.7, y, width * 0.3, h), now, QtCore.Qt.AlignRight | QtCore.Qt.AlignVCenter,
           _MUTED)
    y += h + w.mm(1)
    painter.setPen(QtGui.QPen(_RULE, max(1.0, w.mm(0.3))))
    painter.drawLine(QtCore.QPointF(left, y), QtCore.QPointF(right, y))
    y += w.mm(1.5)

    # -- model, settings, scale ---------------------------------------------------------------
    model_line, warn = _model_line(session, results)
    w.font(9, bold=True)
    line = w.mm(4.6)
    w.text(QtCore.QRectF(left, y, width, line), model_line, color=_WARN if warn else _INK)
    y += line
    w.font(8)
    for text in (_settings_line(session), f"Score: {SCORE_SCALE}. Distance: {DISTANCE_UNITS}."):
        hh = min(w.wrapped_height(width, text), w.mm(8.5))
        w.text(QtCore.QRectF(left, y, width, hh), text, QtCore.Qt.AlignLeft | QtCore.Qt.TextWordWrap, _MUTED)
        y += hh + w.mm(0.8)
    y += w.mm(1.5)

    # -- table --------------------------------------------------------------------------------
    y = _table(w, left, y, width, session, results)
    y += w.mm(3)

    # -- images -------------------------------------------------------------------------------
    footer_h = w.mm(4)
    bottom = page.bottom() - m - footer_h - w.mm(1)
    if images and bottom - y > w.mm(10):
        _image_grid(painter, images, QtCore.QRectF(left, y, width, bottom - y), w.mm(3), MAX_UPSCALE * dpi / 96.0)

    # -- footer -------------------------------------------------------------------------------
    from deepaq_core import __version__

    w.font(7)
    w.text(QtCore.QRectF(left, page.bottom() - m - footer_h, width, footer_h),
           f"DeePAQ {__version__} · offsets: positive = the version is late; gains: applied to the version to "
           "match the reference's loudness", color=_MUTED)


_COLUMNS = (  # (header, width weight, alignment)
    ("", 3.0, QtCore.Qt.AlignCenter),
    ("File", 25.0, QtCore.Qt.AlignLeft),
    ("SHA-256", 42.0, QtCore.Qt.AlignLeft),
    ("Score", 9.0, QtCore.Qt.AlignRight),
    ("Distance", 8.5, QtCore.Qt.AlignRight),
    ("Offset (ms)", 9.5, QtCore.Qt.AlignRight),
    ("Gain (dB)", 8.5, QtCore.Qt.AlignRight),
)


def _table(w: _Pen, left: float, y: float, width: float, session: Session,
           results: dict[int, QualityResult]) -> float:
    rows = [_row("R", session.reference, None, is_reference=True)]
    rows += [_row(str(i + 1), t, results.get(i)) for i, t in enumerate(session.versions)]
    total = sum(c[1] for c in _COLUMNS)
    widths = [width * c[1] / total for c in _COLUMNS]
    pad = w.mm(1.2)
    rh = w.mm(4.8)
    p = w.p
    # header
    w.font(7.5, bold=True)
    x = left
    for (head, _, align), cw in zip(_COLUMNS, widths):
        w.text(QtCore.QRectF(x + pad, y, cw - 2 * pad, rh), head, align | QtCore.Qt.AlignVCenter)
        x += cw
    y += rh
    p.setPen(QtGui.QPen(_RULE, max(1.0, w.mm(0.25))))
    p.drawLine(QtCore.QPointF(left, y), QtCore.QPointF(left + width, y))
    for k, cells in enumerate(rows):
        if k % 2 == 1:
            p.fillRect(QtCore.QRectF(left, y, width, rh), _SHADE)
        x = left
        for j, ((_, _, align), cw, cell) in enumerate(zip(_COLUMNS, widths, cells)):
            if j == 2:
                w.font(6.3, mono=True)
            else:
                w.font(7.5, bold=(j == 3 and k > 0))
            color = _MUTED if (k == 0 and j >= 3) or cell in ("—", "not scored") else _INK
            w.text(QtCore.QRectF(x + pad, y, cw - 2 * pad, rh), cell, align | QtCore.Qt.AlignVCenter, color)
            x += cw
        y += rh
    p.setPen(QtGui.QPen(_RULE, max(1.0, w.mm(0.25))))
    p.drawLine(QtCore.QPointF(left, y), QtCore.QPointF(left + width, y))
    return y


def _row(tag: str, track, result: QualityResult | None, is_reference: bool = False) -> list[str]:
    name = track.name
    label = track.label if track.label and track.label != name else ""
    file_cell = f"{label} ({name})" if label else name
    if is_reference:
        return [tag, f"{file_cell} — reference", track.info.sha256, "—", "—", "—", "—"]
    if result is None:
        return [tag, file_cell, track.info.sha256, "not scored", "—", "—", "—"]
    a = result.alignment
    offset = "—" if not math.isfinite(a.lag_ms) else f"{a.lag_ms:+.2f}" + ("" if a.estimated else " (set)")
    score = f"{result.score:.1f}"
    if result.channel_scores:
        score += " (" + " / ".join(f"{s:.0f}" for s in result.channel_scores) + ")"
    return [tag, file_cell, track.info.sha256, score, f"{result.distance:.4f}", offset, f"{result.gain_db:+.2f}"]


def _model_line(session: Session, results: dict[int, QualityResult]) -> tuple[str, bool]:
    infos = []
    for r in results.values():
        if r.model not in infos:
            infos.append(r.model)
    if not infos:
        name = session.model_name or "compact"
        return f"Model: {name} (no version scored yet)", False
    parts = []
    warn = False
    for info in infos:
        parts.append(f"{info.name} {info.version}, status: {info.status} (backbone {info.backbone})")
        warn = warn or info.status == "untrained"
    devices = sorted({r.device for r in results.values()})
    text = "Model: " + "; ".join(parts) + f" · device: {', '.join(devices)}"
    if warn:
        text += " · untrained model (random weights): scores track a log-mel spectral distance"
    return text, warn


def _settings_line(session: Session) -> str:
    s = session.settings
    if s.lag_ms is not None:
        align = f"offset set to {s.lag_ms:g} ms"
    elif s.align:
        align = (f"alignment on (up to ±{s.max_lag_s:g} s)" if s.max_lag_s is not None
                 else "alignment on (±10 s or 25 % of the file)")
    else:
        align = "alignment off"
    known = {"align", "lag_ms", "max_lag_s", "match_loudness", "channels", "window_s", "hop_s"}
    rest = ", ".join(f"{k} {v}" for k, v in dataclasses.asdict(s).items() if k not in known)
    return (f"Settings: {align}, loudness matching {'on' if s.match_loudness else 'off'}, channels {s.channels}, "
            f"window {s.window_s:g} s, hop {s.hop_s:g} s; {rest}.")


def _image_grid(painter: QtGui.QPainter, images: list[QtGui.QImage], area: QtCore.QRectF, gap: float,
                max_scale: float) -> None:
    """Images in a grid, columns chosen so they are drawn as large as possible, aspect kept.

    No image is enlarged beyond ``max_scale`` (a small grab blown up to the page width is a blur).
    """
    n = len(images)
    best = None
    for cols in range(1, n + 1):
        rows = math.ceil(n / cols)
        cw = (area.width() - (cols - 1) * gap) / cols
        ch = (area.height() - (rows - 1) * gap) / rows
        if cw <= 0 or ch <= 0:
            continue
        covered = sum(min(cw / im.width(), ch / im.height(), max_scale) ** 2 * im.width() * im.height()
                      for im in images)
        if best is None or covered > best[0]:
            best = (covered, cols, rows, cw, ch)
    if best is None:
        return
    _, cols, rows, cw, ch = best
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        scale = min(cw / im.width(), ch / im.height(), max_scale)
        tw, th = im.width() * scale, im.height() * scale
        x = area.left() + c * (cw + gap) + (cw - tw) / 2
        yy = area.top() + r * (ch + gap) + (ch - th) / 2
        target = QtCore.QRectF(x, yy, tw, th)
        painter.drawImage(target, im)
        painter.setPen(QtGui.QPen(_RULE, 1.0))
        painter.drawRect(target)


__all__ = ["REPORT_DPI", "REPORT_FILTER", "REPORT_SUFFIXES", "make_report", "report_size_px"]
