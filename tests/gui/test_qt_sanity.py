"""Guard against Qt bindings that corrupt the interpreter (PySide6 6.12.0 leaks a reference to True
on every signal delivered to a Python slot and aborts after a few thousand emissions)."""

from __future__ import annotations

import sys

from PySide6 import QtCore


class _Emitter(QtCore.QObject):
    ping = QtCore.Signal()


def test_signal_delivery_keeps_refcounts():
    e = _Emitter()
    e.ping.connect(lambda: None)
    before = sys.getrefcount(True)
    for _ in range(500):  # few enough not to abort even on an affected build
        e.ping.emit()
    assert abs(sys.getrefcount(True) - before) < 50
