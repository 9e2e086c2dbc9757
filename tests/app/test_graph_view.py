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

from faig_gui.app.graph_items import FONT_PX, MIN_ZOOM
from faig_gui.app.graph_view import GraphDock, NodeItem, colour_at
from faig_gui.core.errors import FaigError
from faig_gui.core.plugin_api import Architecture
from nested_arch import nested_model
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


def _choose_measure(qtbot, dock, key: str) -> None:
    box = dock.measure_box
    box.setFocus()
    while box.currentData() != key:   # the arrow keys step through the choices as a user would
        qtbot.keyClick(box, Qt.Key.Key_Down)


def _count_by_hand(scores: np.ndarray, proportion: float, layers) -> dict[str, int]:
    n = len(scores)
    top = sorted(range(n), key=lambda k: (-scores[k], k))[: int(n * proportion / 100)]
    return {layer.name: sum(1 for k in top if layer.offset <= k < layer.offset + layer.count) for layer in layers}


def test_default_colouring_counts_top_k_filters_with_a_legend_in_words(dock):
    model, s = dock.model, dock.model.session
    model.set_top_mask("blur", 10.0)
    assert dock.measure_box.currentData() == "count" and dock.measure_box.currentText() == "top-k count"
    expected = _count_by_hand(s.scores["blur"], 10.0, s.index.layers)
    hi = max(expected.values())
    for item in dock.items.values():
        if item.node.kind == "conv":
            assert item.state.value == expected[item.node.weight]
            assert item.fill() == colour_at(dock.cmap, expected[item.node.weight] / hi)
    assert dock.colorbar.title == "number of top 10 % filters for blur (box: sum)"
    assert (dock.colorbar.low, dock.colorbar.high) == ("0", f"{hi:,}")


def test_share_is_one_choice_away_and_follows_degradation(qtbot, dock):
    model = dock.model
    s = model.session
    model.set_top_mask("blur", 10.0)
    _choose_measure(qtbot, dock, "share")
    for degradation in ("blur", "noise"):
        model.set_degradation(degradation)
        expected = _share_by_hand(s.scores[degradation], 10.0, s.index.layers)
        hi = max(expected.values())
        for item in dock.items.values():
            if item.node.kind != "conv":
                continue
            assert item.state.value == pytest.approx(expected[item.node.weight])
            assert item.fill() == colour_at(dock.cmap, expected[item.node.weight] / hi)
        assert f"share of the layer's filters in the top 10 % for {degradation}" in dock.colorbar.title
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
    # one name: the module name, the plugin's label beside it counting from 0 like it
    assert "<b>body.0.conv1</b> (block 0 conv1)" in text and "parameter body.0.conv1.weight" in text
    assert "4×4×3×3" in text and "16 filters" in text
    assert "masked: 0" in text
    layer = dock.model.session.index.layer("body.0.conv1.weight")
    with_other = [layer.offset + 3, layer.offset + 7, dock.model.session.index.layer("conv_last.weight").offset]
    dock.model.clear_mask()
    dock.model.toggle_filters(with_other)
    text = _tooltip(qtbot, dock, item)
    assert "masked: 2" in text
    assert "2 masked" in item.subtitle()


def test_modules_fold_by_their_label_and_unfold_by_double_click(qtbot, dock):
    label = dock.group_labels["body.1"]
    assert label.text().startswith("body.1 (ResidualBlockNoBN)")
    pos = dock.view.mapFromScene(label.sceneBoundingRect().center())
    qtbot.mouseClick(dock.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert "group:body.1" in dock.items
    assert not any(i.node.scope == "body.1" for i in dock.items.values())
    block = dock.items["group:body.1"]
    # the folded block sums its convs: 2 convs of 4 x 4 filters
    assert block.state.filters == 32
    qtbot.mouseDClick(dock.view.viewport(), Qt.MouseButton.LeftButton, pos=_view_pos(dock, block))
    assert "group:body.1" not in dock.items and "body.1" in dock.group_labels
    assert dock.model.selected_layer == ""   # unfolding is not a selection


def _wheel(dock, clicks: int) -> None:
    vp = dock.view.viewport()
    centre = QPointF(vp.width() / 2, vp.height() / 2)
    event = QWheelEvent(centre, QPointF(vp.mapToGlobal(centre.toPoint())), QPoint(0, 0), QPoint(0, 120 * clicks),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    from PySide6.QtWidgets import QApplication
    QApplication.sendEvent(vp, event)


def test_wheel_zooms_but_never_below_legible_text(dock):
    before = dock.view.transform().m11()
    _wheel(dock, 1)
    assert dock.view.transform().m11() == pytest.approx(min(before * 1.15, 4.0))
    for _ in range(20):
        _wheel(dock, -3)
    assert dock.view.transform().m11() == pytest.approx(MIN_ZOOM)
    assert FONT_PX * dock.view.transform().m11() >= 8.0   # labels at least 8 px on screen


def test_export_png_and_svg(dock, tmp_path):
    dock.export(tmp_path / "graph.png")
    image = QImage(str(tmp_path / "graph.png"))
    rect = dock.view.scene().itemsBoundingRect()
    assert image.height() >= rect.height() and image.width() >= 300
    dock.export(tmp_path / "graph.svg")
    svg = (tmp_path / "graph.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "body.1.conv1" in svg \
        and "block 1 conv1" in svg
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


# -- a deep nested network (RRDBNet's module names, tiny widths) -----------------------------------
TOP_LEVEL_OPS = ["input", "conv_first", "conv_body", "+", "nearest ×2", "conv_up1", "LeakyReLU", "nearest ×2",
                 "conv_up2", "LeakyReLU", "conv_hr", "LeakyReLU", "conv_last", "output"]   # NestedNet.forward


@pytest.fixture
def nested(qtbot, tmp_path):
    model = nested_model(tmp_path, blocks=10)
    d = GraphDock(model)
    qtbot.addWidget(d)
    d.resize(520, 640)
    d.show()
    qtbot.waitExposed(d)
    return d


def test_nested_network_opens_folded_to_its_blocks(nested):
    # 10 blocks of 3 dense blocks would draw 10 x 5 + 14 = 64 nodes, over the budget: the blocks stay boxes
    labels = sorted(i.node.label for i in nested.items.values())
    assert labels == sorted(TOP_LEVEL_OPS + [f"body.{b}" for b in range(10)])
    net = nested.model.session.target.module
    for b in range(10):
        box = nested.items[f"group:body.{b}"]
        assert box.node.kind == "block" and box.node.friendly == "NestedBlock"
        by_hand = sum(m.weight.shape[0] * m.weight.shape[1] for m in net.body[b].modules()
                      if isinstance(m, torch.nn.Conv2d))
        assert box.state.filters == by_hand and len(box.node.weights) == 15


def test_unfold_by_double_click_then_plus_key_and_fold_by_minus_key(qtbot, nested):
    d = nested
    qtbot.mouseDClick(d.view.viewport(), Qt.MouseButton.LeftButton, pos=_view_pos(d, d.items["group:body.3"]))
    inside = sorted(i.node.label for i in d.items.values() if i.node.scope == "body.3")
    assert inside == sorted(["body.3.rdb1", "body.3.rdb2", "body.3.rdb3", "mul", "+"])
    assert len(d.items) == 24 - 1 + 5
    rdb2 = d.items["group:body.3.rdb2"]
    qtbot.mouseClick(d.view.viewport(), Qt.MouseButton.LeftButton, pos=_view_pos(d, rdb2))
    assert rdb2.state.current
    qtbot.keyClick(d.view, Qt.Key.Key_Plus)
    convs = sorted(i.node.label for i in d.items.values() if i.node.kind == "conv" and i.node.scope == "body.3.rdb2")
    assert convs == [f"body.3.rdb2.conv{k}" for k in range(1, 6)]
    assert len(d.items) == 28 - 1 + 15   # a dense block: 5 convs, 4 LeakyReLU, 4 cat, mul, add
    conv3 = _conv_item(d, "body.3.rdb2.conv3")
    qtbot.mouseClick(d.view.viewport(), Qt.MouseButton.LeftButton, pos=_view_pos(d, conv3))
    qtbot.keyClick(d.view, Qt.Key.Key_Minus)
    assert "group:body.3.rdb2" in d.items and len(d.items) == 28


def _on_screen(dock, item) -> bool:
    return dock.view.viewport().rect().contains(dock.view.mapFromScene(item.scenePos()))


def test_search_unfolds_selects_and_centres_a_deep_layer_in_one_step(qtbot, nested):
    d = nested
    qtbot.keyClicks(d.search, "body.7.rdb2.conv3")
    qtbot.keyClick(d.search, Qt.Key.Key_Return)
    assert d.model.selected_layer == "body.7.rdb2.conv3.weight"
    item = _conv_item(d, "body.7.rdb2.conv3")
    assert item.state.selected and _on_screen(d, item)
    # only what hid it was unfolded
    assert "group:body.6" in d.items and "group:body.7.rdb1" in d.items and "group:body.7" not in d.items
    # a unique part of a name is enough; an unknown name selects nothing and says so
    with qtbot.waitSignal(d.model.statusMessage) as msg:
        d.search.clear()
        qtbot.keyClicks(d.search, "no.such.layer")
        qtbot.keyClick(d.search, Qt.Key.Key_Return)
    assert "no layer or module named 'no.such.layer'" in msg.args[0]
    assert d.model.selected_layer == "body.7.rdb2.conv3.weight"


def test_most_important_goes_to_the_layer_with_most_top_k_filters(qtbot, nested):
    d = nested
    s = d.model.session
    d.model.set_top_mask("noise", 5.0)
    d.model.set_degradation("noise")
    counts = _count_by_hand(s.scores["noise"], 5.0, s.index.layers)
    ranked = sorted(counts, key=lambda w: (-counts[w], s.index.layer_position(w)))
    for want in ranked[:2]:
        qtbot.mouseClick(d.important_button, Qt.MouseButton.LeftButton)
        assert d.model.selected_layer == want
        item = next(i for i in d.items.values() if i.node.weight == want)
        assert item.state.selected and _on_screen(d, item)


def test_rows_follow_the_dock_shape(qtbot, nested):
    def rows() -> int:
        return len({round(i.pos().y()) for i in nested.items.values() if i.node.kind == "block"})
    nested.resize(1500, 380)
    qtbot.waitUntil(lambda: nested.per_row >= 6)
    wide = rows()
    # wide and short: the whole graph in a few long rows, fitted at a legible zoom
    assert nested.view.visible_scene_rect().contains(nested.view.scene().itemsBoundingRect().adjusted(5, 5, -5, -5))
    assert nested.view.transform().m11() >= MIN_ZOOM
    nested.resize(420, 900)
    qtbot.waitUntil(lambda: rows() > wide)
    assert nested.per_row <= 3 and nested.view.transform().m11() >= MIN_ZOOM


def test_overview_click_moves_the_view(qtbot, nested):
    d = nested
    d.view.zoom(3.0)
    before = d.view.visible_scene_rect().center()
    target = d.overview.mapFromScene(d.items["output"].scenePos())
    qtbot.mouseClick(d.overview.viewport(), Qt.MouseButton.LeftButton, pos=target)
    after = d.view.visible_scene_rect().center()
    assert (after - d.items["output"].scenePos()).manhattanLength() < (before - d.items["output"].scenePos()
                                                                      ).manhattanLength()
    assert d.view.visible_scene_rect().contains(d.items["output"].scenePos())


def test_graph_group_and_filter_dock_name_a_layer_the_same_way(qtbot, dock):
    from faig_gui.app.filter_grid import FilterGridDock
    grid = FilterGridDock(dock.model)
    qtbot.addWidget(grid)
    item = _conv_item(dock, "body.1.conv2")
    qtbot.mouseClick(dock.view.viewport(), Qt.MouseButton.LeftButton, pos=_view_pos(dock, item))
    # the node: module name, the plugin's label beside it, both counting the block from 0
    assert (item.node.label, item.node.friendly) == ("body.1.conv2", "block 1 conv2")
    assert dock.group_labels["body.1"].text().startswith("body.1 ")
    assert grid.layer_box.currentText().startswith("body.1.conv2 (block 1 conv2)")


def test_a_masked_badge_leaves_its_frame_name_readable(qtbot, dock):
    """The "N masked" badge stands above its node's corner; the dashed frame of the module around
    the node leaves room for it under the module's name (they overlapped on the first node of a
    frame, where the name sits)."""
    index = dock.model.session.index
    convs = [i for i in dock.items.values() if i.node.kind == "conv" and i.node.scope]
    assert convs, "the tiny net has convs inside modules"
    dock.model.toggle_filters([index.layer(i.node.weight).offset for i in convs])
    qtbot.waitUntil(lambda: all(i.state.masked == 1 for i in convs))
    badges = [i.mapRectToScene(i.badge_rect()) for i in convs]
    assert all(b.height() == 15 and b.width() > 30 for b in badges)
    for label in dock.group_labels.values():
        name = label.sceneBoundingRect()
        hits = [i.node.weight for i, b in zip(convs, badges) if b.intersects(name)]
        assert not hits, f"'{label.text()}' is covered by the badges of {hits}"
    # the badge is painted where badge_rect says: left of its text, it shows the masked red
    item = convs[0]
    dock.view.centerOn(item)
    qtbot.wait(50)
    shot = dock.view.viewport().grab().toImage()
    badge = badges[0]
    at = dock.view.mapFromScene(QPointF(badge.left() + 2, badge.center().y()))
    red = shot.pixelColor(at)
    assert red.red() > 150 and red.green() < 90 and red.blue() < 90, red.name()
