"""The network graph dock driven through the mouse: select, fold, hover, zoom, colours, export."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import torch
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QHelpEvent, QImage, QWheelEvent
from PySide6.QtWidgets import QToolTip

from faig_gui.app.graph_view import GraphDock, NodeItem, colour_at
from faig_gui.core.errors import FaigError
from faig_gui.core.plugin_api import Architecture
from tiny_session import loaded_model


@pytest.fixture
def dock(qtbot, tmp_path):
    model = loaded_model(qtbot, tmp_path)
    d = GraphDock(model)
    qtbot.addWidget(d)
    d.resize(520, 760)
    d.show()
    qtbot.waitExposed(d)
    return d


def _conv_item(dock, module: str) -> NodeItem:
    return next(i for i in dock.items.values() if i.node.kind == "conv" and i.node.module == module)


def _view_pos(dock, item) -> QPoint:
    dock.view.centerOn(item)
    return dock.view.mapFromScene(item.scenePos())


def test_one_node_per_conv_layer(dock):
    convs = sorted(i.node.weight for i in dock.items.values() if i.node.kind == "conv")
    assert convs == sorted(layer.name for layer in dock.model.session.index.layers)


def test_clicking_a_conv_node_selects_its_layer(qtbot, dock):
    item = _conv_item(dock, "body.1.conv2")
    with qtbot.waitSignal(dock.model.selectedLayerChanged) as sig:
        qtbot.mouseClick(dock.view.viewport(), Qt.MouseButton.LeftButton, pos=_view_pos(dock, item))
    assert sig.args == ["body.1.conv2.weight"]
    assert dock.model.selected_layer == "body.1.conv2.weight"
    assert item.state.selected
    assert sum(i.state.selected for i in dock.items.values()) == 1
    # selection made elsewhere (e.g. the filter grid) moves the highlight
    dock.model.select_layer("conv_first.weight")
    assert _conv_item(dock, "conv_first").state.selected and not item.state.selected


def _share_by_hand(scores: np.ndarray, proportion: float, layers) -> dict[str, float]:
    n = len(scores)
    top = sorted(range(n), key=lambda k: (-scores[k], k))[: int(n * proportion / 100)]
    share = {}
    for layer in layers:
        inside = sum(1 for k in top if layer.offset <= k < layer.offset + layer.count)
        share[layer.name] = inside / layer.count
    return share


def test_colours_follow_top_k_share_and_degradation(dock):
    model = dock.model
    s = model.session
    model.set_top_mask("blur", 10.0)
    for degradation in ("blur", "noise"):
        model.set_degradation(degradation)
        expected = _share_by_hand(s.scores[degradation], 10.0, s.index.layers)
        hi = max(expected.values())
        for item in dock.items.values():
            if item.node.kind != "conv":
                continue
            assert item.state.value == pytest.approx(expected[item.node.weight])
            assert item.fill() == colour_at(dock.cmap, expected[item.node.weight] / hi)
        assert f"top 10 % for {degradation}" in dock.colorbar.title
    # blur favours early filters, noise late ones: the hottest layer differs
    model.set_degradation("blur")
    hot_blur = max(dock.items.values(), key=lambda i: i.state.value or -1).node.weight
    model.set_degradation("noise")
    hot_noise = max(dock.items.values(), key=lambda i: i.state.value or -1).node.weight
    assert hot_blur != hot_noise
    # a new top-k proportion recolours
    model.set_top_mask("noise", 1.0)
    expected = _share_by_hand(s.scores["noise"], 1.0, s.index.layers)
    assert _conv_item(dock, "conv_last").state.value == pytest.approx(expected["conv_last.weight"])


def _tooltip(qtbot, dock, item) -> str:
    pos = _view_pos(dock, item)
    QToolTip.hideText()
    event = QHelpEvent(QEvent.Type.ToolTip, pos, dock.view.viewport().mapToGlobal(pos))
    from PySide6.QtWidgets import QApplication
    QApplication.sendEvent(dock.view.viewport(), event)
    qtbot.waitUntil(lambda: QToolTip.isVisible() or QToolTip.text() != "")
    return QToolTip.text()


def test_hover_tooltip_names_shape_filters_and_masked_count(qtbot, dock):
    item = _conv_item(dock, "body.0.conv1")
    text = _tooltip(qtbot, dock, item)
    assert "body.0.conv1.weight" in text and "4×4×3×3" in text and "16 filters" in text
    assert "masked: 0" in text
    layer = dock.model.session.index.layer("body.0.conv1.weight")
    with_other = [layer.offset + 3, layer.offset + 7, dock.model.session.index.layer("conv_last.weight").offset]
    dock.model.clear_mask()
    dock.model.toggle_filters(with_other)
    text = _tooltip(qtbot, dock, item)
    assert "masked: 2" in text
    assert "2 masked" in item.subtitle()


def test_blocks_fold_and_unfold_by_clicking(qtbot, dock):
    label = dock.group_labels["body.1"]
    pos = dock.view.mapFromScene(label.sceneBoundingRect().center())
    qtbot.mouseClick(dock.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert "group:body.1" in dock.items
    assert not any(i.node.group == "body.1" and i.node.kind != "block" for i in dock.items.values())
    block = dock.items["group:body.1"]
    # the folded block sums its convs: 2 convs of 4 x 4 filters
    assert block.state.filters == 32
    qtbot.mouseClick(dock.view.viewport(), Qt.MouseButton.LeftButton, pos=_view_pos(dock, block))
    assert "group:body.1" not in dock.items and "body.1" in dock.group_labels
    assert dock.model.selected_layer == ""   # unfolding is not a selection


def test_wheel_zooms(dock):
    before = dock.view.transform().m11()
    vp = dock.view.viewport()
    centre = QPointF(vp.width() / 2, vp.height() / 2)
    event = QWheelEvent(centre, QPointF(vp.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, 240),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    from PySide6.QtWidgets import QApplication
    QApplication.sendEvent(vp, event)
    assert dock.view.transform().m11() == pytest.approx(before * 1.15 ** 2)


def test_export_png_and_svg(dock, tmp_path):
    dock.export(tmp_path / "graph.png")
    image = QImage(str(tmp_path / "graph.png"))
    rect = dock.view.scene().itemsBoundingRect()
    assert image.height() >= rect.height() and image.width() >= 300
    dock.export(tmp_path / "graph.svg")
    svg = (tmp_path / "graph.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "block 2 conv1" in svg
    with pytest.raises(FaigError):
        dock.export(tmp_path / "graph.jpg")


def test_empty_session_shows_a_hint(qtbot):
    from faig_gui.app.session_model import SessionModel
    d = GraphDock(SessionModel())
    qtbot.addWidget(d)
    assert d.items == {} and d.graph is None
    texts = [i.text() for i in d.view.scene().items() if hasattr(i, "text")]
    assert any("Open a baseline" in t for t in texts)


class _Untraceable(torch.nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.tail = torch.nn.Conv2d(4, 12, 3, padding=1)
        self.up = torch.nn.PixelShuffle(2)

    def forward(self, x):
        y = self.head(x)
        if float(y.mean()) > 0:
            y = torch.relu(y)
        return self.up(self.tail(y))


class _UntraceableArch(Architecture):
    name = "untraceable"

    def detect(self, sd):
        return set(sd) == {"head.weight", "head.bias", "tail.weight", "tail.bias"}

    def hyperparameters(self, sd):
        return {"scale": 2}

    def build(self, hp):
        return _Untraceable()


def test_untraceable_architecture_shows_its_convs_and_says_why(qtbot, tmp_path):
    from faig_gui.app.session_model import SessionModel
    from faig_gui.core.checkpoint import save_checkpoint
    from faig_gui.core.registry import Registry
    from faig_gui.core.session import Session
    arch = _UntraceableArch()
    for name in ("b.pth", "t.pth"):
        save_checkpoint(tmp_path / name, arch.new_state_dict())
    model = SessionModel(Session(Registry([arch])))
    d = GraphDock(model)
    qtbot.addWidget(d)
    d.show()
    assert model.load_pair(str(tmp_path / "b.pth"), str(tmp_path / "t.pth"))
    assert not d.note.isHidden() and "could not trace" in d.note.text()
    assert [i.node.weight for i in d.items.values() if i.node.kind == "conv"] == ["head.weight", "tail.weight"]
    item = next(i for i in d.items.values() if i.node.weight == "tail.weight")
    with qtbot.waitSignal(model.selectedLayerChanged):
        qtbot.mouseClick(d.view.viewport(), Qt.MouseButton.LeftButton, pos=_view_pos(d, item))
    assert model.selected_layer == "tail.weight"
