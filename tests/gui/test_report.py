"""The one-page report: a PDF of exactly one page, a PNG of A4 landscape size with content."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf
from PySide6 import QtGui, QtWidgets

from deepaq_core.errors import DeePAQError
from deepaq_gui.report import make_report, report_size_px
from deepaq_gui.session import MAX_VERSIONS, Session
from tests.conftest import music_like
from tests.gui.test_session_file import SR, fake_result


@pytest.fixture(scope="module")
def full_session(tmp_path_factory):
    """A reference and the maximum number of versions (the worst case for fitting one page)."""
    folder = tmp_path_factory.mktemp("report")
    x = music_like(1.0, SR, seed=2)
    sf.write(folder / "reference_with_a_rather_long_file_name_to_elide.wav", x, SR, subtype="FLOAT")
    s = Session(model_name="compact")
    s.set_reference(Session.read_track(folder / "reference_with_a_rather_long_file_name_to_elide.wav"))
    for i in range(MAX_VERSIONS):
        p = folder / f"v{i}.wav"
        sf.write(p, x * (0.9 - 0.05 * i), SR, subtype="FLOAT")
        s.add_version(Session.read_track(p, label=f"codec {i}"))
    results = {i: fake_result(s.reference, s.versions[i], 90.0 - 7 * i) for i in range(MAX_VERSIONS - 1)}
    return s, results  # the last version is "not scored"


def _images(qtbot):
    from deepaq_gui.views import QualityCurveView

    view = QualityCurveView()
    qtbot.addWidget(view)
    view.resize(900, 250)
    view.show()
    red = QtGui.QImage(400, 300, QtGui.QImage.Format_RGB32)
    red.fill(QtGui.QColor(255, 0, 0))
    label = QtWidgets.QLabel("spectrogram placeholder")
    qtbot.addWidget(label)
    return [view.grab(), red, label.grab(), QtGui.QPixmap()]  # a null pixmap is skipped


def test_pdf_is_one_page(qtbot, tmp_path, full_session):
    s, results = full_session
    out = tmp_path / "report.pdf"
    make_report(out, s, results, images=_images(qtbot), title="Codec comparison")
    data = out.read_bytes()
    assert data.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page(?!s)", data)) == 1


def test_png_has_a4_landscape_size_and_content(qtbot, tmp_path, full_session):
    s, results = full_session
    out = tmp_path / "report.png"
    make_report(out, s, results, images=_images(qtbot))
    img = QtGui.QImage(str(out))
    assert img.size() == report_size_px() and img.width() > img.height()
    arr = np.frombuffer(img.convertToFormat(QtGui.QImage.Format_RGB32).constBits(), np.uint8)
    arr = arr.reshape(img.height(), img.width(), 4)[:, :, :3]
    non_white = np.any(arr < 200, axis=2)
    assert non_white.mean() > 0.02  # text, table and plots
    assert non_white[: img.height() // 10].any()  # the title at the top
    red = (arr[:, :, 2] > 200) & (arr[:, :, 1] < 60) & (arr[:, :, 0] < 60)  # BGRA in memory
    assert red.sum() > 1000  # the red test image is drawn


def test_bad_extension_and_empty_session_are_user_errors(tmp_path, full_session):
    s, results = full_session
    with pytest.raises(DeePAQError, match=r"\.pdf or \.png"):
        make_report(tmp_path / "r.docx", s, results)
    with pytest.raises(DeePAQError, match="nothing to report"):
        make_report(tmp_path / "r.pdf", Session(), {})
