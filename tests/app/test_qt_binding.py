"""The Qt binding must not leak references to True/False/None.

PySide6 6.12.0 drops one reference to True on every Signal.emit and one to None on every
QCoreApplication.processEvents call; on Python 3.11 (where these objects are not immortal) the
window then aborts with 'bool_dealloc' after a few thousand signals. pyproject.toml excludes
it; this test catches a binding with the same fault."""
from __future__ import annotations

import sys

from PySide6.QtCore import QCoreApplication, QObject, Signal


class _Emitter(QObject):
    value = Signal(object)
    bare = Signal()


def test_signals_and_event_processing_keep_refcounts(qapp):
    e = _Emitter()
    got = [0]

    def count(*_args):
        got[0] += 1

    e.value.connect(count)
    e.bare.connect(count)
    before = [sys.getrefcount(x) for x in (True, False, None)]
    for n in range(200):
        e.value.emit(n)
        e.bare.emit()
        QCoreApplication.processEvents()
    after = [sys.getrefcount(x) for x in (True, False, None)]
    assert got[0] == 400
    # other code may hold or drop a few references meanwhile; a leak per call shows as ~200+
    assert all(abs(a - b) < 100 for a, b in zip(after, before)), (before, after)
