"""The importance profile: one bar per conv layer in network order, clickable."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from faig_gui.app.graph_view import GraphDock
from faig_gui.app.profile_dock import BAR, SELECTED, ProfileDock
from nested_arch import nested_model


@pytest.fixture
def profile(qtbot, tmp_path):
    model = nested_model(tmp_path, blocks=2)
    d = ProfileDock(model)
    qtbot.addWidget(d)
    d.resize(700, 300)
    d.show()
    qtbot.waitExposed(d)
    return d


def _top_by_hand(scores: np.ndarray, proportion: float) -> list[int]:
    n = len(scores)
    return sorted(range(n), key=lambda k: (-scores[k], k))[: int(n * proportion / 100)]


def _convs_in_forward_order(net) -> list[str]:
    """NestedNet.forward, read by hand: conv_first, the blocks' dense convs, then the tail."""
    names = ["conv_first.weight"]
    for b in range(len(net.body)):
        names += [f"body.{b}.rdb{r}.conv{c}.weight" for r in (1, 2, 3) for c in range(1, 6)]
    return names + [f"{n}.weight" for n in ("conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last")]


def test_one_bar_per_layer_in_network_order_counting_top_k(profile):
    model, s = profile.model, profile.model.session
    model.set_top_mask("blur", 5.0)
    assert profile.weights == _convs_in_forward_order(s.target.module)
    top = _top_by_hand(s.scores["blur"], 5.0)
    for k, w in enumerate(profile.weights):
        layer = s.index.layer(w)
        assert profile.values[k] == sum(1 for f in top if layer.offset <= f < layer.offset + layer.count)
    heights = profile.bars.opts["height"]
    assert list(heights) == list(profile.values) and len(heights) == len(profile.weights)
    assert profile.title.text() == "number of filters in the top 5 % for blur, per conv layer in network order"


def test_score_sum_toggle(qtbot, profile):
    model, s = profile.model, profile.model.session
    model.set_top_mask("noise", 3.0)
    model.set_degradation("noise")
    profile.measure_box.setFocus()
    qtbot.keyClick(profile.measure_box, Qt.Key.Key_Down)
    assert profile.measure == "mass"
    scores = s.scores["noise"]
    top = _top_by_hand(scores, 3.0)
    for k, w in enumerate(profile.weights):
        layer = s.index.layer(w)
        by_hand = sum(float(scores[f]) for f in top if layer.offset <= f < layer.offset + layer.count)
        # both sum float64 values; the order of the additions differs: a few ulps of the sum
        assert profile.values[k] == pytest.approx(by_hand, rel=1e-12, abs=1e-12)
    assert profile.title.text().startswith("summed score of the filters in the top 3 % for noise")


def _bar_pos(profile, k: int) -> QPoint:
    """The middle of bar ``k`` (of its lower part when it has no height) in widget pixels."""
    vb = profile.plot.getPlotItem().getViewBox()
    scene = vb.mapViewToScene(QPointF(k, max(float(profile.values[k]), 0.0) / 2))
    return profile.plot.mapFromScene(scene)


def test_clicking_a_bar_selects_its_layer_in_the_graph_too(qtbot, profile, tmp_path):
    model = profile.model
    model.set_top_mask("blur", 5.0)
    graph = GraphDock(model)
    qtbot.addWidget(graph)
    graph.resize(500, 500)
    graph.show()
    k = int(np.argmax(profile.values))
    with qtbot.waitSignal(model.selectedLayerChanged):
        qtbot.mouseClick(profile.plot.viewport(), Qt.MouseButton.LeftButton, pos=_bar_pos(profile, k))
    want = profile.weights[k]
    assert model.selected_layer == want
    brushes = profile.bars.opts["brushes"]
    assert brushes[k].color().name() == SELECTED and all(b.color().name() == BAR for j, b in enumerate(brushes)
                                                         if j != k)
    item = next(i for i in graph.items.values() if i.node.weight == want)
    assert item.state.selected
    # hovering names the layer with its count
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication
    vp, pos = profile.plot.viewport(), QPointF(_bar_pos(profile, 0))
    QApplication.sendEvent(vp, QMouseEvent(QEvent.Type.MouseMove, pos, QPointF(vp.mapToGlobal(pos.toPoint())),
                                           Qt.MouseButton.NoButton, Qt.MouseButton.NoButton,
                                           Qt.KeyboardModifier.NoModifier))
    qtbot.waitUntil(lambda: profile.hover.text().startswith("#0 conv_first"))
    assert profile.hover.text().endswith(f"{profile.values[0]:,.0f} filters")
