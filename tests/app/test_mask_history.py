"""Masking by hand and by preset together, and undo/redo of every mask change, through the window:
preset buttons, clicks in the filter grid, Ctrl+Z / Ctrl+Shift+Z and the Edit menu."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt


def top_by_hand(scores: np.ndarray, percent: float) -> set[int]:
    """The int(n * percent / 100) highest scores, ties to the lower index: a literal sort."""
    n = int(len(scores) * percent / 100)
    order = sorted(range(len(scores)), key=lambda k: (-float(scores[k]), k))
    return set(order[:n])


def where(sd, k: int) -> tuple[str, int, int]:
    """(layer, out, in) of global filter k: walk the 4-D weights in order, out x in each."""
    for name, w in sd.items():
        if name.endswith("weight") and w.ndim == 4:
            count = w.shape[0] * w.shape[1]
            if k < count:
                return name, k // w.shape[1], k % w.shape[1]
            k -= count
    raise IndexError(k)


def click_filter(qtbot, w, k: int) -> None:
    """Select k's layer and click its cell in the filter grid."""
    name, out, inp = where(w.model.session.target.state_dict, k)
    grid = w.filter_dock
    w.model.select_layer(name)
    grid.raise_()
    qtbot.waitUntil(lambda: grid.plot.isVisible() and grid.layer is not None and grid.layer.name == name,
                    timeout=10000)
    pos = grid.plot.mapFromScene(grid.viewbox.mapViewToScene(QPointF(inp + 0.5, out + 0.5)))
    with qtbot.waitSignal(w.model.maskChanged, timeout=5000):
        qtbot.mouseClick(grid.plot.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def masked(w) -> set[int]:
    return set(w.model.session.mask.indices.tolist())


def press(qtbot, w, key, modifiers) -> None:
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5000)
    qtbot.keyClick(w, key, modifiers)


def test_presets_keep_filters_toggled_by_hand_and_say_so(demo_window, qtbot):
    w = demo_window
    dock, scores = w.masking_dock, w.model.session.scores["blur"]
    qtbot.mouseClick(dock.clear_button, Qt.MouseButton.LeftButton)
    assert masked(w) == set() and dock.k_slider.value() == 0
    qtbot.mouseClick(dock.mark_buttons[1], Qt.MouseButton.LeftButton)
    top1, top3 = top_by_hand(scores, 1), top_by_hand(scores, 3)
    assert masked(w) == top1
    outside = min(set(range(len(scores))) - top3)      # masked by hand
    inside = min(top1)                                 # unmasked by hand
    click_filter(qtbot, w, outside)
    click_filter(qtbot, w, inside)
    assert masked(w) == (top1 | {outside}) - {inside}
    qtbot.mouseClick(dock.mark_buttons[3], Qt.MouseButton.LeftButton)
    assert masked(w) == (top3 | {outside}) - {inside}
    qtbot.waitUntil(lambda: "by hand: +1 / −1, kept when k changes" in dock.summary.text(), timeout=5000)
    assert f"<b>{len(top3):,}</b> of" in dock.summary.text()
    qtbot.mouseClick(dock.clear_button, Qt.MouseButton.LeftButton)    # clear forgets them
    qtbot.mouseClick(dock.mark_buttons[1], Qt.MouseButton.LeftButton)
    assert masked(w) == top1


def test_ctrl_z_undoes_each_mask_change_and_ctrl_shift_z_redoes_it(demo_window, qtbot):
    w = demo_window
    dock, scores = w.masking_dock, w.model.session.scores["blur"]
    start = masked(w)
    assert start == top_by_hand(scores, 1)   # the demo opens with the top 1 % for blur
    qtbot.mouseClick(dock.mark_buttons[5], Qt.MouseButton.LeftButton)
    after_preset = masked(w)
    assert after_preset == top_by_hand(scores, 5)
    extra = min(set(range(len(scores))) - after_preset)
    click_filter(qtbot, w, extra)
    assert masked(w) == after_preset | {extra}
    assert w.undo_action.isEnabled() and "toggle 1 filter" in w.undo_action.text()

    press(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert masked(w) == after_preset
    press(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert masked(w) == start and dock.k_slider.value() == 10   # the slider follows: 1.0 %
    assert "1.0 %" in dock.k_label.text()
    press(qtbot, w, Qt.Key.Key_Z, Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.ControlModifier)
    assert masked(w) == after_preset and dock.k_slider.value() == 50
    # the Edit menu holds the same actions
    edit = [a for a in w.edit_menu.actions() if not a.isSeparator()]
    assert edit[0] is w.undo_action and edit[1] is w.redo_action
    w.redo_action.trigger()
    assert masked(w) == after_preset | {extra}
    assert not w.redo_action.isEnabled()
    # the masked output follows an undo like any mask change
    with qtbot.waitSignal(w.image_view.rendered, timeout=20000):
        w.undo_action.trigger()
    qtbot.waitUntil(lambda: w.image_view.live.idle, timeout=20000)
    assert np.array_equal(w.image_view.result.request.mask.indices, np.array(sorted(after_preset)))


def test_a_slider_drag_is_one_undo_step_and_clear_is_another(demo_window, qtbot):
    w = demo_window
    dock, scores = w.masking_dock, w.model.session.scores["blur"]
    start = masked(w)
    for _ in range(4):
        qtbot.keyClick(dock.k_slider, Qt.Key.Key_PageUp)    # 1 % -> 5 %, quick steps
    assert masked(w) == top_by_hand(scores, 5)
    qtbot.mouseClick(dock.clear_button, Qt.MouseButton.LeftButton)
    assert masked(w) == set()
    w.undo_action.trigger()
    assert masked(w) == top_by_hand(scores, 5)
    w.undo_action.trigger()
    assert masked(w) == start
    assert not w.undo_action.isEnabled()
