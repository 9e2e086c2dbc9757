"""The filter grid on transposed and grouped convolutions: every layer shows as out x in, a click
masks the kernel that joins that output to that input (stored the other way round in a transposed
conv's weight), and a grouped conv's cells that no kernel joins are grey and do nothing."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor

from core.test_filter_kinds import MixedNet, literal_storage
from faig_gui.app.filter_grid import FilterGridDock
from faig_gui.app.filter_parts import NO_KERNEL_COLOR
from faig_gui.core.checkpoint import save_checkpoint
from faig_gui.core.plugin_api import Architecture
from faig_gui.core.registry import Registry
from faig_gui.core.session import Session
from tiny_session import made_up_scores


class MixedArch(Architecture):
    name = "mixed_test"

    def detect(self, sd):
        return "up.weight" in sd and "up_grouped.weight" in sd

    def hyperparameters(self, sd):
        return {"scale": 4}

    def build(self, hp):
        return MixedNet()


@pytest.fixture
def grid(qtbot, tmp_path):
    from faig_gui.app.session_model import SessionModel
    torch.manual_seed(0)
    base = MixedNet().state_dict()
    targ = {k: v + 0.01 * torch.randn_like(v) for k, v in base.items()}
    save_checkpoint(tmp_path / "b.pth", base)
    save_checkpoint(tmp_path / "t.pth", targ)
    model = SessionModel(Session(Registry([MixedArch()])))
    assert model.load_pair(str(tmp_path / "b.pth"), str(tmp_path / "t.pth"))
    model.set_scores(made_up_scores(model.session.index.total))
    model.set_degradation("blur")
    d = FilterGridDock(model)
    qtbot.addWidget(d)
    d.resize(520, 560)
    d.show()
    qtbot.waitExposed(d)
    return d


def _offset(sd, name):
    """Global index of the first filter of ``name``: the 4-D weights before it, counted by hand."""
    total = 0
    for key, value in sd.items():
        if key == name:
            return total
        if key.endswith("weight") and value.ndim == 4:
            total += value.shape[0] * value.shape[1]
    raise KeyError(name)


def _cell_pos(grid, out, inp) -> QPoint:
    return grid.plot.mapFromScene(grid.viewbox.mapViewToScene(QPointF(inp + 0.5, out + 0.5)))


def _pixel(grid, out, inp) -> QColor:
    """The colour painted at the centre of that cell (a grab of the plot as it is on screen)."""
    pos = _cell_pos(grid, out, inp)
    return QColor(grid.plot.grab().toImage().pixel(pos.x(), pos.y()))


def _expected_index(grid, name, out, inp):
    """Storage order of PyTorch's weight layout: offset + row * W.shape[1] + col, or None."""
    sd = grid.model.session.target.state_dict
    module = dict(grid.model.session.target.module.named_modules())[name]
    place = literal_storage(module, out, inp)
    return None if place is None else _offset(sd, f"{name}.weight") + place[0] * sd[f"{name}.weight"].shape[1] + place[1]


def test_transposed_conv_shows_out_by_in_and_a_click_masks_the_stored_kernel(qtbot, grid):
    model = grid.model
    model.select_layer("up.weight")           # ConvTranspose2d(4 -> 5): weight (4, 5, 2, 2)
    scores = model.session.scores["blur"]
    expected = np.array([[scores[_expected_index(grid, "up", o, i)] for i in range(4)] for o in range(5)])
    assert grid.image.image.shape == (5, 4)
    assert np.allclose(grid.image.image, expected)
    assert "transposed conv" in grid.header.text() and "5 out × 4 in" in grid.header.text()
    model.clear_mask()
    with qtbot.waitSignal(model.maskChanged):
        qtbot.mouseClick(grid.plot.viewport(), Qt.MouseButton.LeftButton, pos=_cell_pos(grid, 3, 1))
    assert model.session.mask.indices.tolist() == [_expected_index(grid, "up", 3, 1)]
    # the kernels shown for the click are the ones stored at weight[1, 3]
    stored = model.session.target.state_dict["up.weight"][1, 3].double().numpy()
    assert np.array_equal(grid.details.kernels["target"], stored)
    qtbot.mouseMove(grid.plot.viewport(), _cell_pos(grid, 3, 1))
    qtbot.waitUntil(lambda: "out 3, in 1" in grid.hover.text())
    assert "stored at weight[1, 3]" in grid.hover.text() and "masked" in grid.hover.text()


def test_grouped_conv_greys_cells_no_kernel_joins(qtbot, grid):
    model = grid.model
    model.select_layer("grouped.weight")      # Conv2d(4 -> 6, groups=2): outputs 0-2 see inputs 0-1
    assert grid.image.image.shape == (6, 4)
    assert "2 groups" in grid.header.text()
    for out, inp in ((0, 3), (4, 0)):         # across groups: grey on screen, no filter
        assert _pixel(grid, out, inp).getRgb()[:3] == NO_KERNEL_COLOR.getRgb()[:3]
        assert "no filter" in grid.describe(out, inp)
    assert _pixel(grid, 0, 1).getRgb()[:3] != NO_KERNEL_COLOR.getRgb()[:3]   # a kernel: its score's colour
    model.clear_mask()
    qtbot.mouseClick(grid.plot.viewport(), Qt.MouseButton.LeftButton, pos=_cell_pos(grid, 0, 3))
    assert len(model.session.mask) == 0
    with qtbot.waitSignal(model.maskChanged):
        qtbot.mouseClick(grid.plot.viewport(), Qt.MouseButton.LeftButton, pos=_cell_pos(grid, 4, 3))
    assert model.session.mask.indices.tolist() == [_expected_index(grid, "grouped", 4, 3)]
    # the whole layer: every kernel, and nothing outside the layer
    grid.mask_cells(range(6), range(4), True)
    first = _offset(model.session.target.state_dict, "grouped.weight")
    assert model.session.mask.indices.tolist() == list(range(first, first + 6 * 2))
