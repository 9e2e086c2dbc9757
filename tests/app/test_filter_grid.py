"""The filter grid dock driven through the mouse: click, drag, context menu, hover, heat map."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor

from faig_gui.app.filter_grid import FilterGridDock
from tiny_session import loaded_model

LAYER = "body.0.conv2.weight"   # 4 x 4 filters in the tiny pair


@pytest.fixture
def grid(qtbot, tmp_path):
    model = loaded_model(qtbot, tmp_path)
    d = FilterGridDock(model)
    qtbot.addWidget(d)
    d.resize(520, 560)
    d.show()
    qtbot.waitExposed(d)
    model.select_layer(LAYER)
    return d


def _offset(model, name=LAYER):
    """Global index of filter (0, 0): the 4-D weights before it, counted out x in, by hand."""
    total = 0
    for key, value in model.session.target.state_dict.items():
        if key == name:
            return total
        if key.endswith("weight") and value.ndim == 4:
            total += value.shape[0] * value.shape[1]
    raise KeyError(name)


def _cell_pos(grid, out, inp, fx=0.5, fy=0.5) -> QPoint:
    scene = grid.viewbox.mapViewToScene(QPointF(inp + fx, out + fy))
    return grid.plot.mapFromScene(scene)


def _red(colour: QColor) -> bool:
    """The mask's red (235, 20, 30); viridis, the heat map's colours, has no such colour."""
    return colour.red() > 180 and colour.green() < 90 and colour.blue() < 90


def _pixel(grid, out, inp, fx=0.5, fy=0.5) -> QColor:
    """The colour on screen at that point of the cell (a grab of the plot as it is painted)."""
    image = grid.plot.grab().toImage()
    pos = _cell_pos(grid, out, inp, fx, fy)
    return QColor(image.pixel(pos.x(), pos.y()))


def _cross_shown(grid, out, inp) -> bool:
    """A red cross on the cell: red at its centre (where the diagonals meet), the heat map's
    colour halfway along its top edge (between the two diagonals)."""
    return _red(_pixel(grid, out, inp)) and not _red(_pixel(grid, out, inp, 0.5, 0.12))


def test_heat_map_holds_the_layer_scores(grid):
    s = grid.model.session
    grid.model.set_degradation("noise")
    off = _offset(grid.model)
    expected = np.array([[s.scores["noise"][off + o * 4 + i] for i in range(4)] for o in range(4)])
    assert np.allclose(grid.image.image, expected)
    assert "body.0.conv2.weight" in grid.header.text() and "noise" in grid.legend.text()


def test_click_toggles_one_filter_and_the_overlay_shows_it(qtbot, grid):
    model = grid.model
    model.clear_mask()
    k = _offset(model) + 2 * 4 + 1
    with qtbot.waitSignal(model.maskChanged):
        qtbot.mouseClick(grid.plot.viewport(), Qt.MouseButton.LeftButton, pos=_cell_pos(grid, 2, 1))
    assert model.session.mask.indices.tolist() == [k]
    assert _cross_shown(grid, 2, 1) and not _cross_shown(grid, 1, 2)
    assert grid.overlay.mode == "cross"
    assert sum(_cross_shown(grid, o, i) for o in range(4) for i in range(4)) == 1   # one cross only
    with qtbot.waitSignal(model.maskChanged):
        qtbot.mouseClick(grid.plot.viewport(), Qt.MouseButton.LeftButton, pos=_cell_pos(grid, 2, 1))
    assert len(model.session.mask) == 0 and not _cross_shown(grid, 2, 1)


def test_drag_masks_a_rectangle(qtbot, grid):
    model = grid.model
    model.clear_mask()
    vp = grid.plot.viewport()
    start, end = _cell_pos(grid, 1, 0, 0.3, 0.3), _cell_pos(grid, 2, 2, 0.7, 0.7)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=start)
    for t in (0.25, 0.5, 0.75, 1.0):
        qtbot.mouseMove(vp, start + (end - start) * t)
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=end)
    off = _offset(model)
    expected = sorted(off + o * 4 + i for o in (1, 2) for i in (0, 1, 2))
    assert model.session.mask.indices.tolist() == expected
    assert all(_cross_shown(grid, o, i) for o in (1, 2) for i in (0, 1, 2))
    assert not _cross_shown(grid, 0, 0) and not _cross_shown(grid, 3, 3)


def _menu_action(grid, text):
    return next(a for a in grid.menu.actions() if a.text().startswith(text))


def test_context_menu_masks_rows_columns_and_the_layer(qtbot, grid):
    model = grid.model
    model.clear_mask()
    off = _offset(model)
    vp = grid.plot.viewport()
    qtbot.mouseClick(vp, Qt.MouseButton.RightButton, pos=_cell_pos(grid, 3, 1))
    qtbot.waitUntil(lambda: grid.menu is not None and grid.menu.isVisible())
    _menu_action(grid, "Mask row (out 3)").trigger()
    assert model.session.mask.indices.tolist() == [off + 12 + i for i in range(4)]
    grid.menu.close()

    qtbot.mouseClick(vp, Qt.MouseButton.RightButton, pos=_cell_pos(grid, 0, 2))
    qtbot.waitUntil(lambda: grid.menu.isVisible())
    _menu_action(grid, "Mask column (in 2)").trigger()
    assert set(model.session.mask.indices.tolist()) == {off + 12 + i for i in range(4)} | {off + o * 4 + 2 for o in range(4)}
    _menu_action(grid, "Unmask row (out 0)").trigger()
    assert set(model.session.mask.indices.tolist()) == {off + 12 + i for i in range(4)} | {off + 4 + 2, off + 8 + 2}
    grid.menu.close()

    qtbot.mouseClick(vp, Qt.MouseButton.RightButton, pos=_cell_pos(grid, 0, 0))
    qtbot.waitUntil(lambda: grid.menu.isVisible())
    _menu_action(grid, "Mask the whole layer").trigger()
    assert model.session.mask.indices.tolist() == list(range(off, off + 16))
    _menu_action(grid, "Unmask the whole layer").trigger()
    assert len(model.session.mask) == 0
    grid.menu.close()


def test_hover_shows_layer_out_in_index_score_and_rank(qtbot, grid):
    model = grid.model
    model.set_degradation("blur")
    scores = model.session.scores["blur"]
    k = _offset(model) + 1 * 4 + 3
    rank = 1 + sum(1 for j, v in enumerate(scores) if v > scores[k] or (v == scores[k] and j < k))
    qtbot.mouseMove(grid.plot.viewport(), _cell_pos(grid, 1, 3))
    qtbot.waitUntil(lambda: "out 1, in 3" in grid.hover.text())
    text = grid.hover.text()
    assert text.startswith("(body.0.conv2, out 1, in 3)")
    assert f"filter #{k:,}" in text and f"score {scores[k]:.4g}" in text
    assert f"rank {rank:,} of {len(scores):,} for blur" in text


def test_choosing_a_layer_in_the_list_selects_it(qtbot, grid):
    box = grid.layer_box
    row = next(r for r in range(box.count()) if box.itemData(r) == "conv_last.weight")
    with qtbot.waitSignal(grid.model.selectedLayerChanged):
        box.activated.emit(row)
    assert grid.model.selected_layer == "conv_last.weight"
    assert grid.image.image.shape == (3, 4)


def test_export_shows_the_layer_as_the_window_does(qtbot, grid, tmp_path):
    """The exported PNG has, at each cell, the colour the window shows there (a masked filter's
    red included), in the order of the scores; the SVG names the layer and the axes and holds the
    plot's picture."""
    import base64
    import re
    import xml.etree.ElementTree as ET
    from PySide6.QtGui import QColor, QImage
    model = grid.model
    model.clear_mask()
    with qtbot.waitSignal(model.maskChanged):
        qtbot.mouseClick(grid.plot.viewport(), Qt.MouseButton.LeftButton, pos=_cell_pos(grid, 2, 1))
    grid.export(tmp_path / "grid.png")
    grid.export(tmp_path / "grid.svg")
    png = QImage(str(tmp_path / "grid.png"))
    panel = grid.widget()
    assert (png.width(), png.height()) == (panel.width(), panel.height())
    screen = grid.plot.grab().toImage()

    def red(c: QColor) -> bool:   # the mask's red; viridis has no such colour
        return c.red() > 180 and c.green() < 90 and c.blue() < 90

    off = _offset(model)
    scores = model.session.scores[model.degradation]
    lumas = []
    for o in range(4):
        for i in range(4):
            pos = _cell_pos(grid, o, i)
            on_screen = QColor(screen.pixel(pos))
            in_file = QColor(png.pixel(grid.plot.mapTo(panel, pos)))
            assert in_file == on_screen, (o, i)
            assert red(in_file) == ((o, i) == (2, 1)), (o, i)
            if (o, i) != (2, 1):
                lumas.append((scores[off + o * 4 + i], 0.299 * in_file.red() + 0.587 * in_file.green()
                              + 0.114 * in_file.blue()))
    # viridis grows lighter with the value: brighter cells hold higher scores (saturated ends tie)
    lumas.sort()
    assert all(b[1] >= a[1] - 1 for a, b in zip(lumas, lumas[1:]))
    assert lumas[-1][1] > lumas[0][1] + 30
    root = ET.parse(tmp_path / "grid.svg").getroot()
    ns = "{http://www.w3.org/2000/svg}"
    texts = [t.text.strip() for t in root.iter(f"{ns}text") if t.text and t.text.strip()]
    assert "body.0.conv2.weight" in texts
    assert any(t.startswith("in channel") for t in texts) and any(t.startswith("out channel") for t in texts)
    assert any(t.startswith(f"FAIG score, {model.degradation}") for t in texts)
    # the heat map is in the SVG as a picture of one pixel per filter (in × out), scaled up: each
    # pixel has the colour the window shows for that cell (the masked one's cross is drawn over it)
    pictures = []
    for el in root.iter(f"{ns}image"):
        data = re.sub(r"^data:image/png;base64,", "", el.get("{http://www.w3.org/1999/xlink}href", ""))
        pictures.append(QImage.fromData(base64.b64decode(data)))
    cells = [im for im in pictures if (im.width(), im.height()) == (4, 4)]
    assert len(cells) == 1
    for o in range(4):
        for i in range(4):
            if (o, i) != (2, 1):
                assert QColor(cells[0].pixel(i, o)) == QColor(screen.pixel(_cell_pos(grid, o, i))), (o, i)
