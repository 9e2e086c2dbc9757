"""Every view with three degradations (blur, noise, JPEG) on a tiny session, driven as a user
would: the masking dock's "Filters for" masks each one's top filters and colours the graph by it,
the filter grid's click detail ranks a filter for all three, the Prediction panel has a bar per
degradation and says a two-of-three verdict as such, and a saved session reopens with its three
degradations, their scores and the chosen one's mask."""
from __future__ import annotations


import numpy as np
import pytest
from PySide6.QtCore import Qt

from faig_gui.app.filter_grid import FilterGridDock
from faig_gui.app.graph_view import GraphDock, colour_at
from faig_gui.app.masking_dock import MaskingDock
from faig_gui.app.prediction_dock import PredictionDock
from faig_gui.app.session_model import SessionModel
from faig_gui.core.prediction import Prediction
from faig_gui.core.session import Session
from test_filter_grid import _cell_pos, _offset
from test_graph_view import _count_by_hand
from test_three_degradations import NAMES, three_degradation_model

LAYER = "body.0.conv2.weight"   # 4 x 4 filters in the tiny pair


@pytest.fixture
def model(qtbot, tmp_path):
    return three_degradation_model(qtbot, tmp_path)


def _top_by_hand(scores: np.ndarray, proportion: float) -> list[int]:
    """The top proportion % by a slow sort (ties: lower index first), as sorted indices."""
    n = len(scores)
    return sorted(sorted(range(n), key=lambda i: (-scores[i], i))[: int(n * proportion / 100)])


def _choose(qtbot, combo, text: str) -> None:
    """Step the combo box with the arrow keys, as a user would, until it shows ``text``."""
    combo.setFocus()
    key = Qt.Key.Key_Down if combo.findText(text) > combo.currentIndex() else Qt.Key.Key_Up
    while combo.currentText() != text:
        qtbot.keyClick(combo, key)


def test_filters_for_masks_and_colours_the_graph_by_each_of_three(qtbot, model):
    masking = MaskingDock(model)
    graph = GraphDock(model)
    for w in (masking, graph):
        qtbot.addWidget(w)
    graph.resize(520, 760)
    graph.show()
    qtbot.waitExposed(graph)
    assert [masking.degradation.itemText(i) for i in range(masking.degradation.count())] == NAMES
    qtbot.mouseClick(masking.mark_buttons[5], Qt.MouseButton.LeftButton)
    s = model.session
    hot = {}
    for d in ("jpeg", "noise", "blur", "jpeg"):
        _choose(qtbot, masking.degradation, d)
        assert model.degradation == d
        assert s.mask.indices.tolist() == _top_by_hand(s.scores[d], 5.0)
        expected = _count_by_hand(s.scores[d], 5.0, s.index.layers)
        top = max(expected.values())
        convs = [i for i in graph.items.values() if i.node.kind == "conv"]
        for item in convs:
            assert item.state.value == expected[item.node.weight]
            assert item.fill() == colour_at(graph.cmap, expected[item.node.weight] / top)
        assert graph.colorbar.title == f"number of top 5 % filters for {d} (box: sum)"
        hot[d] = max(convs, key=lambda i: (i.state.value, i.node.weight)).node.weight
    # the scores differ (blur and JPEG favour early filters, noise late ones): so do the colours
    assert hot["noise"] != hot["blur"]


def test_a_click_on_the_filter_grid_ranks_the_filter_for_all_three(qtbot, model):
    grid = FilterGridDock(model)
    qtbot.addWidget(grid)
    grid.resize(520, 560)
    grid.show()
    qtbot.waitExposed(grid)
    model.select_layer(LAYER)
    model.set_degradation("jpeg")
    s = model.session
    off = _offset(model)
    expected = np.array([[s.scores["jpeg"][off + o * 4 + i] for i in range(4)] for o in range(4)])
    assert np.allclose(grid.image.image, expected)   # the heat map is the chosen one's scores
    out, inp = 2, 3
    qtbot.mouseClick(grid.plot.viewport(), Qt.MouseButton.LeftButton, pos=_cell_pos(grid, out, inp))
    assert grid.details.isVisible()
    k = off + out * 4 + inp
    text = grid.details.text.text()
    for d in NAMES:
        scores = s.scores[d]
        rank = 1 + sum(1 for j, v in enumerate(scores) if v > scores[k] or (v == scores[k] and j < k))
        assert f"{d} <b>{rank:,}</b> of {len(scores):,}" in text
    assert text.index("blur <b>") < text.index("noise <b>") < text.index("jpeg <b>")


def _prediction(labels: list[str], scores: dict[str, float]) -> Prediction:
    return Prediction(labels=labels, scores=scores, strength={d: {} for d in labels},
                      evidence={"masking_effect": {d: 0.1 for d in scores}}, confidence=0.8)


def test_prediction_panel_predicts_three_and_says_a_pair_of_three(qtbot, model, tmp_path):
    from conftest import smooth_image
    from faig_gui.core.dataset import make_degraded
    from faig_gui.core.imageio import read_image, to_image, write_image
    from faig_gui.core.prediction import Predictor, PredictorConfig
    from faig_gui.core.prediction.content import calibration_images
    from qt_events import drop_files
    rng = np.random.default_rng(7)
    s = model.session
    s.set_analysis_hr({f"a{n}.png": smooth_image(rng, 32, 32) for n in range(2)})
    # a held-out picture JPEG-compressed at the session's quality (q 30), dropped on the panel
    held_out = make_degraded({"h.png": smooth_image(rng, 48, 48)}, 2, s.settings.degradations, seed=1)[0]
    path = tmp_path / "h_jpeg.png"
    write_image(path, to_image(held_out.lr["jpeg"]))
    dock = PredictionDock(model)
    qtbot.addWidget(dock)
    dock.show()
    try:
        assert drop_files(dock, [path]).isAccepted()
        qtbot.waitUntil(lambda: all(e.prediction is not None or e.error for e in dock.entries), timeout=300_000)
        entry = dock.entries[0]
        assert not entry.error, entry.error
        ref = Predictor(s.baseline, s.target, s.scores, calibration_images([i.hr for i in s.analysis_images]),
                        s.settings.degradations, PredictorConfig())
        expected = ref.predict(read_image(path))
        row = dock.entry_widget(0)
        assert list(row.bars) == NAMES and set(expected.scores) == set(NAMES)
        for d, bar in row.bars.items():   # the same calibration and image: the same numbers
            assert bar.value() == round(100 * expected.scores[d]) and bar.text() == f"{expected.scores[d]:.2f}"
        assert expected.describe() in row.verdict.text()
        # a verdict of two of the three (as a predictor gives it) is shown as that pair
        entry.prediction = _prediction(["blur", "jpeg"], {"blur": 0.91, "noise": 0.07, "jpeg": 0.66})
        row.show_entry(entry)
        assert [(d, b.value(), b.text()) for d, b in row.bars.items()] == \
            [("blur", 91, "0.91"), ("noise", 7, "0.07"), ("jpeg", 66, "0.66")]
        assert "<b>blur + jpeg</b>" in row.verdict.text()
        assert dock.verdict_text(0) == "blur + jpeg"
        unsure = _prediction(["noise", "jpeg"], {"blur": 0.1, "noise": 0.7, "jpeg": 0.55})
        unsure.doubts, unsure.competing = ["jpeg"], [["noise", "jpeg"], ["noise"]]
        entry.prediction = unsure
        row.show_entry(entry)
        assert "unsure: noise + jpeg, or noise" in row.verdict.text()
    finally:
        dock.shutdown()


def test_a_saved_session_reopens_with_three_degradations_and_the_jpeg_mask(qtbot, model, tmp_path):
    model.set_degradation("jpeg")
    model.set_top_mask("jpeg", 3.0)
    s = model.session
    s.save(tmp_path / "three.faig")
    again = Session.open(tmp_path / "three.faig")
    assert [d.spec() for d in again.settings.degradations] == [d.spec() for d in s.settings.degradations]
    assert [d.jpeg_quality for d in again.settings.degradations] == [None, None, 30]
    for d in NAMES:
        assert np.array_equal(again.scores[d], s.scores[d])
    assert (again.mask_settings.degradation, again.mask_settings.proportion) == ("jpeg", 3.0)
    assert again.mask.indices.tolist() == _top_by_hand(s.scores["jpeg"], 3.0)
    reopened = SessionModel(again)
    masking = MaskingDock(reopened)
    qtbot.addWidget(masking)
    assert [masking.degradation.itemText(i) for i in range(masking.degradation.count())] == NAMES
    assert masking.degradation.currentText() == "jpeg"
    assert masking.proportion == pytest.approx(3.0)
