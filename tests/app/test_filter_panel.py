"""The Filters panel as issue 17 asks: axes fitted to the layer, marks visible at any cell size, one
colour scale for all layers (or the layer's own), a legend that says what the score is, hover
text that follows the layer, a click that shows the filter's kernels and ranks."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor

from faig_gui.app.filter_grid import FilterGridDock
from tiny_session import loaded_model


def make_grid(qtbot, tmp_path, size=(520, 560), **kw) -> FilterGridDock:
    d = FilterGridDock(loaded_model(qtbot, tmp_path, **kw))
    qtbot.addWidget(d)
    d.resize(*size)
    d.show()
    qtbot.waitExposed(d)
    return d


def offset_of(sd, name: str) -> int:
    total = 0
    for key, value in sd.items():
        if key == name:
            return total
        if key.endswith("weight") and value.ndim == 4:
            total += value.shape[0] * value.shape[1]
    raise KeyError(name)


def cell_pos(grid, out, inp, fx=0.5, fy=0.5):
    return grid.plot.mapFromScene(grid.viewbox.mapViewToScene(QPointF(inp + fx, out + fy)))


def percentile_by_hand(values, p: float) -> float:
    """numpy's default ('linear'): sort, then interpolate at position p/100 * (n - 1)."""
    v = sorted(float(x) for x in values)
    pos = p / 100 * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def tick_labels(axis, length: float) -> list[str]:
    lo, hi = axis.range
    return [label for _spacing, values in axis.tickValues(lo, hi, length)
            for label in axis.tickStrings(values, 1, 1)]


def test_axes_span_the_layer_channels_and_the_grid_fills_the_plot(qtbot, tmp_path):
    grid = make_grid(qtbot, tmp_path)
    grid.model.select_layer("upconv1.weight")          # 16 out x 4 in in the tiny pair
    (x0, x1), (y0, y1) = grid.viewbox.viewRange()
    assert (x0, x1, y0, y1) == pytest.approx((0, 4, 0, 16))
    xs = tick_labels(grid.x_axis, grid.x_axis.width())
    ys = tick_labels(grid.y_axis, grid.y_axis.height())
    assert xs == ["0", "1", "2", "3"]
    assert ys and all(0 <= int(t) <= 15 for t in ys) and "0" in ys
    # the heat map covers the whole plot area, not a column in its middle
    def fills() -> bool:
        image, box = grid.image.sceneBoundingRect(), grid.viewbox.sceneBoundingRect()
        return abs(image.width() - box.width()) < 10 and abs(image.height() - box.height()) < 10
    qtbot.waitUntil(fills, timeout=3000)
    # zooming out stops at the layer: the view never shows negative channels
    for _ in range(5):
        grid.viewbox.scaleBy((2, 2))
    (x0, x1), (y0, y1) = grid.viewbox.viewRange()
    assert x0 >= -1e-9 and y0 >= -1e-9 and x1 <= 4 + 1e-9 and y1 <= 16 + 1e-9


def test_a_masked_filter_stays_visible_when_rows_are_two_pixels_high(qtbot, tmp_path):
    grid = make_grid(qtbot, tmp_path, size=(420, 330), num_feat=32, num_block=1)
    model = grid.model
    model.select_layer("upconv1.weight")               # 128 out x 32 in
    model.clear_mask()
    qtbot.waitUntil(lambda: 0 < grid.overlay.cell_pixels()[1] < 3, timeout=3000)   # rows of ~2 px: no room for a cross
    out, inp = 77, 13
    with qtbot.waitSignal(model.maskChanged):
        qtbot.mouseClick(grid.plot.viewport(), Qt.MouseButton.LeftButton, pos=cell_pos(grid, out, inp))
    k = offset_of(model.session.target.state_dict, "upconv1.weight") + out * 32 + inp
    assert model.session.mask.indices.tolist() == [k]
    image = grid.plot.grab().toImage()
    pos = cell_pos(grid, out, inp)
    c = QColor(image.pixel(pos.x(), pos.y()))
    assert c.red() > 180 and c.green() < 90 and c.blue() < 90 and grid.overlay.mode == "fill"
    other = cell_pos(grid, out - 20, inp)
    c = QColor(image.pixel(other.x(), other.y()))
    assert not (c.red() > 180 and c.green() < 90)


def test_one_colour_scale_for_all_layers_unless_the_layer_s_own_is_chosen(qtbot, tmp_path):
    grid = make_grid(qtbot, tmp_path)
    s = grid.model.session
    grid.model.set_degradation("blur")
    scores = s.scores["blur"]
    shared = (percentile_by_hand(scores, 0.5), percentile_by_hand(scores, 99.5))
    for name in ("body.0.conv2.weight", "conv_last.weight"):
        grid.model.select_layer(name)
        assert grid.image.getLevels() == pytest.approx(shared, rel=1e-12)
        assert grid.colorbar.levels() == pytest.approx(shared, rel=1e-12)
    assert "one scale for all layers" in grid.legend.text()
    grid.range_box.setFocus()
    qtbot.keyClick(grid.range_box, Qt.Key.Key_Down)     # "this layer"
    assert grid.range_box.currentText() == "this layer"
    off = offset_of(s.target.state_dict, "conv_last.weight")
    own = [scores[off + j] for j in range(3 * 4)]
    assert grid.image.getLevels() == pytest.approx((min(own), max(own)), rel=1e-12)
    assert "this layer's own scale" in grid.legend.text()


def test_the_legend_says_what_the_score_is(qtbot, tmp_path):
    grid = make_grid(qtbot, tmp_path)
    grid.model.set_degradation("blur")
    assert "FAIG score for blur: A(x_blur) − mean A(others)" in grid.legend.text()
    assert grid.colorbar.axis.labelText == "FAIG score, blur"
    assert "∂L/∂θ" in grid.legend.toolTip() and "path" in grid.legend.toolTip()
    grid.model.set_degradation("noise")
    assert "FAIG score for noise: A(x_noise) − mean A(others)" in grid.legend.text()


def test_hover_text_follows_the_layer_shown(qtbot, tmp_path):
    grid = make_grid(qtbot, tmp_path)
    grid.model.select_layer("body.0.conv2.weight")
    qtbot.mouseMove(grid.plot.viewport(), cell_pos(grid, 1, 2))
    qtbot.waitUntil(lambda: "body.0.conv2, out 1, in 2" in grid.hover.text())
    box = grid.layer_box
    row = next(r for r in range(box.count()) if box.itemData(r) == "conv_last.weight")
    box.activated.emit(row)
    text = grid.hover.text()
    assert "body.0.conv2" not in text
    assert text.strip() == "" or text.startswith("(conv_last, ")


def test_a_click_shows_the_filter_s_kernels_and_its_rank_for_each_degradation(qtbot, tmp_path):
    grid = make_grid(qtbot, tmp_path)
    model, name = grid.model, "body.0.conv2.weight"
    model.select_layer(name)
    assert not grid.details.isVisible()
    out, inp = 3, 1
    qtbot.mouseClick(grid.plot.viewport(), Qt.MouseButton.LeftButton, pos=cell_pos(grid, out, inp))
    assert grid.details.isVisible()
    s = model.session
    t = s.target.state_dict[name][out, inp].double().numpy()
    b = s.baseline.state_dict[name][out, inp].double().numpy()
    np.testing.assert_array_equal(grid.details.kernels["target"], t)
    np.testing.assert_array_equal(grid.details.kernels["baseline"], b)
    np.testing.assert_array_equal(grid.details.kernels["difference"], t - b)
    assert all(not grid.details.pictures[n].pixmap().isNull() for n in ("target", "baseline", "difference"))
    k = offset_of(s.target.state_dict, name) + out * 4 + inp
    text = grid.details.text.text()
    for d, scores in s.scores.items():
        rank = 1 + sum(1 for j, v in enumerate(scores) if v > scores[k] or (v == scores[k] and j < k))
        assert f"{d} <b>{rank:,}</b> of {len(scores):,}" in text
    assert f"out {out}, in {inp}" in text
