"""A mask change redraws the docks (graph, filter grid, plots) right after its masked output is
painted, not while that output is being computed (SessionModel.maskShown); at most MASK_HOLD_S
later when the output does not come. Driven through the real window with the slider's keys; the
render thread is held at the start of each render so that "while it computes" is a state the
test can look at."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QTextDocument

from faig_gui.core import render as rendering
from faig_gui.app.main_window import RENDER_NOTE_AFTER_S
from faig_gui.app.session_model import MASK_HOLD_S, SessionModel
from faig_gui.core.masking import FilterMask


def colours(window) -> dict[str, str]:
    return {nid: item.fill().name() for nid, item in window.graph_dock.items.items()}


def graph_masked(window) -> int:
    return sum(item.state.masked for item in window.graph_dock.items.values())


def grid_masked(window) -> int:
    return int(window.filter_dock.masked.sum()) if window.filter_dock.masked is not None else 0


@pytest.fixture
def held_renders(monkeypatch):
    """Real renders (not guesses) wait for ``release`` before they start."""
    real_render = rendering.render
    gate = {"release": threading.Event(), "waiting": threading.Event()}

    def render(req, cache, should_stop=None, **kw):
        if should_stop is None and not kw.get("aside"):
            gate["waiting"].set()
            gate["release"].wait(20)
        return real_render(req, cache, should_stop, **kw)

    monkeypatch.setattr(rendering, "render", render)
    yield gate
    gate["release"].set()


@pytest.fixture
def window(demo_window, qtbot):
    w = demo_window
    w.set_prefetch(False)    # a kept guess would be shown at once, with no render to wait for
    w.set_fill_stops(False)
    # a layer in the grid, so that its crosses can be counted too
    w.model.select_layer(w.model.session.index.layers[0].name)
    qtbot.waitUntil(lambda: w.image_view.live.idle, timeout=20000)
    return w


class _Events(QObject):
    """An event filter that logs each event of one type (``("paint",)`` for Paint)."""

    def __init__(self, kind: QEvent.Type, log: list):
        super().__init__()
        self.kind, self.log = kind, log

    def eventFilter(self, obj, event):
        if event.type() == self.kind:
            self.log.append((event.type().name.lower(),))
        return False


def test_the_docks_redraw_with_the_masked_output_not_before(window, qtbot, held_renders):
    w, view = window, window.image_view
    s = w.model.session
    slider = w.masking_dock.k_slider
    total, first = s.index.total, s.index.layers[0]
    before, masked_before, grid_before = colours(w), graph_masked(w), grid_masked(w)
    assert masked_before == len(s.mask) == int(total * 0.01)
    order = []
    view.rendered.connect(lambda: order.append(("output", graph_masked(w))))
    w.model.maskShown.connect(lambda: order.append(("docks", graph_masked(w))))

    slider.setFocus()
    qtbot.keyClick(slider, Qt.Key.Key_PageUp)   # 1 % -> 2 %
    assert held_renders["waiting"].wait(10)
    # the change itself is there at once: the session, the slider's label
    assert len(s.mask) == int(total * 0.02) and "2.0 %" in w.masking_dock.k_label.text()
    # while the output is computed (less than MASK_HOLD_S here) the docks show the last state
    qtbot.wait(int(MASK_HOLD_S * 1000 / 3))
    assert not view.live.idle
    assert colours(w) == before and graph_masked(w) == masked_before and grid_masked(w) == grid_before
    paints = _Events(QEvent.Type.Paint, order)
    view.canvas.viewport().installEventFilter(paints)
    try:
        with qtbot.waitSignal(w.model.maskShown, timeout=20000):
            held_renders["release"].set()
    finally:
        view.canvas.viewport().removeEventFilter(paints)
    # the output first, painted, then the docks
    assert order[0] == ("output", masked_before) and order[-1] == ("docks", int(total * 0.02))
    assert ("paint",) in order[1:-1]
    assert colours(w) != before
    want = int(np.count_nonzero((s.mask.indices >= first.offset) & (s.mask.indices < first.offset + first.count)))
    assert grid_masked(w) == want
    assert len(view.result.request.mask) == int(total * 0.02)


def test_the_docks_do_not_wait_longer_than_the_hold(window, qtbot, held_renders):
    w, view = window, window.image_view
    s = w.model.session
    slider = w.masking_dock.k_slider
    total = s.index.total
    before = colours(w)
    slider.setFocus()
    qtbot.keyClick(slider, Qt.Key.Key_PageUp)
    assert held_renders["waiting"].wait(10)
    # the render is still held: the docks follow the change anyway, after MASK_HOLD_S
    qtbot.waitUntil(lambda: graph_masked(w) == int(total * 0.02), timeout=int(MASK_HOLD_S * 1000) + 3000)
    assert not view.live.idle and len(view.result.request.mask) == int(total * 0.01)
    assert colours(w) != before
    with qtbot.waitSignal(view.rendered, timeout=20000):
        held_renders["release"].set()
    assert len(view.result.request.mask) == int(total * 0.02)


def test_without_a_render_the_docks_follow_at_once(qtbot):
    # no image view holds the signal: maskShown comes with maskChanged
    model = SessionModel()
    got = []
    model.maskChanged.connect(lambda: got.append("changed"))
    model.maskShown.connect(lambda: got.append("shown"))
    model.set_mask(FilterMask(np.array([1, 2])))
    assert got == ["changed", "shown"]
    # a hold set by a maskChanged slot delays it until released
    model.maskChanged.connect(model.hold_mask_shown)
    got.clear()
    model.set_mask(FilterMask(np.array([3])))
    assert got == ["changed"]
    model.release_mask_shown()
    assert got == ["changed", "shown"]
    model.release_mask_shown()   # nothing pending: nothing more
    assert got == ["changed", "shown"]


def test_nothing_is_laid_out_again_while_the_output_is_computed(window, qtbot, held_renders):
    # the slider's labels and the status bar change at once; the window's layout does not
    w, view = window, window.image_view
    s = w.model.session
    slider = w.masking_dock.k_slider
    masked_before = len(s.mask)
    requests = _Events(QEvent.Type.LayoutRequest, [])
    w.installEventFilter(requests)
    try:
        slider.setFocus()
        qtbot.keyClick(slider, Qt.Key.Key_PageUp)
        assert held_renders["waiting"].wait(10)
        qtbot.wait(int(MASK_HOLD_S * 1000 / 3))
        assert not view.live.idle
        assert "2.0 %" in w.masking_dock.k_label.text()
        # the count of masked filters follows with the docks; a render this young is not announced
        assert f"<b>{masked_before:,}</b>" in w.masking_dock.summary.text()
        assert w.activity_label.text() == "idle"
        # one that takes longer is
        qtbot.waitUntil(lambda: w.activity_label.text() == "rendering the masked output…",
                        timeout=int(RENDER_NOTE_AFTER_S * 1000) + 2000)
        assert not view.live.idle
        assert requests.log == []
    finally:
        w.removeEventFilter(requests)
        held_renders["release"].set()
    qtbot.waitUntil(lambda: f"<b>{len(s.mask):,}</b>" in w.masking_dock.summary.text(), timeout=20000)
    qtbot.waitUntil(lambda: w.activity_label.text() != "rendering the masked output…", timeout=20000)
    # each of those labels shows its whole text, at the longest the slider gives too
    with qtbot.waitSignal(view.rendered, timeout=20000):
        slider.setValue(slider.maximum())
    for label in (w.masking_dock.k_label, w.masking_dock.lam_label, w.activity_label):
        doc = QTextDocument()
        doc.setDefaultFont(label.font())
        doc.setDocumentMargin(0)
        doc.setHtml(label.text())
        assert doc.idealWidth() <= label.contentsRect().width(), label.text()
    assert "10.0 %" in w.masking_dock.k_label.text()
