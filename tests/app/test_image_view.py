"""The centre view driven through real events (keys, clicks, drops, the File menu): the default
compare mode and its colour bar, the split slider, elided thumbnail labels, the per-image effect
and PSNR table, the montage export. Numbers are checked against computations written here."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QFileDialog

from faig_gui.core.imageio import read_image, write_image
from qt_events import drop_files
from tolerances import effect_atol, forward_atol
from by_hand import masked_by_hand, sr_by_hand


# -- independent references ------------------------------------------------------------------
def gradient_by_hand(img):
    """Luma (BT.601), central differences, reflect-101 borders, float64."""
    g = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    p = np.pad(g, 1, mode="reflect")
    gx, gy = p[1:-1, 2:] - p[1:-1, :-2], p[2:, 1:-1] - p[:-2, 1:-1]
    return np.sqrt(gx * gx + gy * gy + 1e-6)


def psnr_by_hand(a, b):
    return 10 * np.log10(1 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def outputs_by_hand(window, img):
    s = window.model.session
    target = sr_by_hand(s.target.state_dict, img.lr)
    masked = sr_by_hand(masked_by_hand(s.target.state_dict, s.baseline.state_dict, s.mask.indices), img.lr)
    return target, masked


# -- compare view ----------------------------------------------------------------------------
def test_the_default_compare_view_is_the_difference_with_a_colour_bar_in_pixel_units(demo_window, qtbot):
    w = demo_window
    view = w.image_view
    r = view.result
    assert len(w.model.session.mask) > 0                       # the opening mask: top 1 % for blur
    assert view.compare.currentData() == "difference" and view.compare.currentText() == "Difference ×4"
    bar = view.colour_bar
    assert bar.isVisible() and bar.levels() == (0.0, 0.25)    # ×4: 0.25 of a pixel value is full colour
    assert "0–1" in bar.axis.labelText and "masked − target" in bar.axis.labelText
    assert not view.split.isEnabled()                          # it moves nothing here
    target, masked = outputs_by_hand(w, w.model.session.current_image())
    atol = forward_atol(w.model.session.target.module)        # float32 forwards, sums in another order
    shown = view.compare_panel.item.image
    np.testing.assert_allclose(shown, np.clip(4 * np.abs(masked - target).mean(axis=2), 0, 1), atol=8 * atol)

    view.compare.setFocus()
    qtbot.keyClick(view.compare, Qt.Key.Key_Down)              # -> gradient map of the masked output
    assert view.compare.currentData() == "gradient"
    top = bar.levels()[1]
    assert bar.isVisible() and top == pytest.approx(gradient_by_hand(r.masked).max(), rel=1e-5)
    qtbot.keyClick(view.compare, Qt.Key.Key_Down)              # -> gradient-map difference
    assert view.compare.currentData() == "gradient_difference"
    want = np.abs(gradient_by_hand(r.masked) - gradient_by_hand(r.target)).max()
    # float32 maps against float64 ones: each map off by a few ulps of values below ~2
    assert bar.levels()[1] == pytest.approx(want, abs=1e-5)
    assert "G(masked) − G(target)" in bar.axis.labelText

    qtbot.keyClick(view.compare, Qt.Key.Key_Home)              # -> Before / after
    assert view.compare.currentData() == "split"
    assert not bar.isVisible() and view.split.isEnabled() and view.split_line.isVisible()
    before = view.split.value()
    view.split.setFocus()
    qtbot.keyClick(view.split, Qt.Key.Key_PageUp)
    assert view.split.value() > before
    width = r.masked.shape[1]
    cut = int(round(view.split.value() / 100 * width))
    assert view.split_line.value() == cut
    np.testing.assert_array_equal(view.compare_panel.item.image[:, :cut], r.target[:, :cut])
    np.testing.assert_array_equal(view.compare_panel.item.image[:, cut:], r.masked[:, cut:])


# -- thumbnails ------------------------------------------------------------------------------
def test_thumbnail_labels_are_elided_in_the_middle_and_keep_the_full_name_in_the_tooltip(demo_window, qtbot,
                                                                                       tmp_path):
    w = demo_window
    view = w.image_view
    names = ["grace_hopper_at_the_univac_console_left.png", "grace_hopper_at_the_univac_console_right.png"]
    rng = np.random.default_rng(3)
    for n in names:
        write_image(tmp_path / n, rng.random((12, 12, 3)))
    before = view.thumbs.count()
    with qtbot.waitSignal(w.model.imagesChanged, timeout=10000):
        assert drop_files(view, [tmp_path / n for n in names]).isAccepted()
    assert view.thumbs.count() == before + 2
    items = [view.thumbs.item(before + k) for k in range(2)]
    texts = [it.text() for it in items]
    metrics = QFontMetrics(view.thumbs.font())
    assert texts[0] != texts[1]
    for text, name, item in zip(texts, names, items):
        assert "…" in text and text.startswith("grace")            # the middle went, both ends stay
        assert name.endswith(text.split("…")[-1])
        assert metrics.horizontalAdvance(text) <= view.thumbs.gridSize().width()
        assert item.toolTip().splitlines()[0] == name
    qtbot.waitUntil(lambda: view.live.idle, timeout=20000)


# -- per-image table -------------------------------------------------------------------------
def test_the_table_lists_every_images_effect_and_psnr_and_a_click_shows_the_image(demo_window, qtbot):
    w = demo_window
    view, s = w.image_view, w.model.session
    table = view.lists.widget(1)
    assert table is view.table and not table.isVisible()
    bar = view.lists.tabBar()
    with qtbot.waitSignal(table.updated, timeout=60000):
        qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(1).center())
    assert table.isVisible() and table.rowCount() == len(s.images) == len(table.rows)
    atol = forward_atol(s.target.module)
    for row, img in enumerate(s.images):
        target, masked = outputs_by_hand(w, img)
        m = table.rows[row]
        g = gradient_by_hand(masked) - gradient_by_hand(target)
        want = 1000 * np.mean(g * g)
        assert want > 0 and abs(m.effect - want) <= effect_atol(g, atol)
        assert table.item(row, 1).text() == f"{m.effect:.4g}"
        assert img.gt is not None
        # PSNR from outputs off by at most atol: |Δ psnr| <= 20/ln10 · atol / rmse
        rmse_t = np.sqrt(np.mean((target.astype(np.float64) - img.gt) ** 2))
        assert m.psnr_target == pytest.approx(psnr_by_hand(target, img.gt), abs=10 * atol / rmse_t)
        assert m.psnr_masked == pytest.approx(psnr_by_hand(masked, img.gt), abs=10 * atol / rmse_t)
        assert table.item(row, 3).text() == f"{m.psnr_masked:.2f}"
    last = len(s.images) - 1
    rect = table.visualItemRect(table.item(last, 0))
    with qtbot.waitSignal(view.rendered, timeout=20000):
        qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert s.current == last
    # a new mask: the table follows with the new numbers
    effects = [m.effect for m in table.rows]
    with qtbot.waitSignal(table.updated, timeout=60000):
        w.model.set_top_mask("blur", 5.0)
    assert [m.effect for m in table.rows] != effects
    target, masked = outputs_by_hand(w, s.images[0])
    g = gradient_by_hand(masked) - gradient_by_hand(target)
    assert abs(table.rows[0].effect - 1000 * np.mean(g * g)) <= effect_atol(g, atol)
    qtbot.waitUntil(lambda: view.live.idle and view.table.task.idle, timeout=20000)


LUMA = np.array([65.481, 128.553, 24.966]) / 255.0   # BT.601 Y (+ 16/255, which cancels in a difference)


def luma_psnr_by_hand(a, b):
    return psnr_by_hand(np.clip(a, 0, 1).astype(np.float64) @ LUMA, np.clip(b, 0, 1).astype(np.float64) @ LUMA)


def luma_psnr_atol(a, gt, atol):
    """Outputs off by at most ``atol`` per value move the luma by at most sum(LUMA) · atol, so
    its PSNR by at most 20/ln10 · sum(LUMA) · atol / rmse_Y (first order), doubled for margin."""
    rmse_y = np.sqrt(np.mean((np.clip(a, 0, 1).astype(np.float64) @ LUMA - gt.astype(np.float64) @ LUMA) ** 2))
    return 2 * 20 / np.log(10) * LUMA.sum() * atol / rmse_y


def test_psnr_on_luma_shows_in_the_metrics_line_and_the_table_and_is_kept(demo_window, make_window, qtbot):
    w = demo_window
    view, s = w.image_view, w.model.session
    table = view.table
    bar = view.lists.tabBar()
    with qtbot.waitSignal(table.updated, timeout=60000):
        qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(1).center())
    with qtbot.waitSignal(table.updated, timeout=60000):
        w.model.set_top_mask("blur", 5.0)
    qtbot.waitUntil(lambda: view.live.idle and view.result.preview is None, timeout=20000)
    assert table.horizontalHeaderItem(2).text() == "PSNR target (dB)"
    rgb_line = view.metrics.text()
    view_menu = next(a.menu() for a in w.menuBar().actions() if a.text() == "&View")
    action = next(a for a in view_menu.actions() if a.text().replace("&", "") == "PSNR on luma (Y)")
    assert action.isCheckable() and not action.isChecked()
    action.trigger()                                        # View ▸ PSNR on luma (Y)
    assert action.isChecked() and view.psnr_on_y
    r = view.result
    img = s.images[s.current]
    target, masked = outputs_by_hand(w, img)
    atol = forward_atol(s.target.module)
    y_t, y_m = luma_psnr_by_hand(target, img.gt), luma_psnr_by_hand(masked, img.gt)
    assert r.psnr_y_target == pytest.approx(y_t, abs=luma_psnr_atol(target, img.gt, atol))
    assert r.psnr_y_masked == pytest.approx(y_m, abs=luma_psnr_atol(masked, img.gt, atol))
    assert abs(y_t - psnr_by_hand(target, img.gt)) > 0.01   # (a different number from the RGB one)
    line = view.metrics.text()
    assert line != rgb_line
    assert f"PSNR-Y target <b>{r.psnr_y_target:.2f} dB</b>" in line and f"masked <b>{r.psnr_y_masked:.2f} dB</b>" in line
    assert [table.horizontalHeaderItem(c).text() for c in (2, 3)] == ["PSNR-Y target (dB)", "PSNR-Y masked (dB)"]
    for row, im in enumerate(s.images):
        t, m = outputs_by_hand(w, im)
        got = table.rows[row]
        assert got.psnr_y_target == pytest.approx(luma_psnr_by_hand(t, im.gt), abs=luma_psnr_atol(t, im.gt, atol))
        assert got.psnr_y_masked == pytest.approx(luma_psnr_by_hand(m, im.gt), abs=luma_psnr_atol(m, im.gt, atol))
        assert table.item(row, 2).text() == f"{got.psnr_y_target:.2f}"
        assert table.item(row, 3).data(Qt.ItemDataRole.UserRole) == got.psnr_y_masked
    w2 = make_window()                                      # the preference is kept
    assert w2.psnr_y_action.isChecked() and w2.image_view.psnr_on_y
    assert w2.image_view.table.horizontalHeaderItem(2).text() == "PSNR-Y target (dB)"
    action.trigger()                                        # and back to RGB
    assert view.metrics.text() == rgb_line and table.item(0, 2).text() == f"{table.rows[0].psnr_target:.2f}"
    qtbot.waitUntil(lambda: view.live.idle and view.table.task.idle, timeout=20000)


# -- montage ---------------------------------------------------------------------------------
def test_the_montage_shows_input_target_and_masked_output_per_image(demo_window, qtbot, tmp_path, monkeypatch):
    w = demo_window
    s = w.model.session
    out = tmp_path / "montage.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(out), "PNG image (*.png)"))
    export_menu = w.export_menu
    action = next(a for a in export_menu.actions() if a.text().replace("&", "").startswith("Mask montage"))
    assert action.isEnabled()
    with qtbot.waitSignal(w.export_task.busyChanged, timeout=30000, check_params_cb=lambda b: not b):
        action.trigger()
    m = read_image(out)
    side, gap = s.images[0].lr.shape[0] * s.scale, 4
    assert m.shape == (gap + len(s.images) * (side + gap), gap + 3 * (side + gap), 3)
    for row, img in enumerate(s.images):
        y = gap + row * (side + gap)
        cells = [m[y:y + side, gap + c * (side + gap):gap + c * (side + gap) + side] for c in range(3)]
        target, masked = outputs_by_hand(w, img)
        enlarged = np.repeat(np.repeat(img.lr, s.scale, axis=0), s.scale, axis=1)
        # 8-bit PNG: half a level of rounding, plus the float32 forwards' order
        for cell, want in zip(cells, (enlarged, target, masked)):
            assert np.abs(cell - want).max() <= 0.5 / 255 + 1e-3
    assert (m[:gap] == 1.0).all()
