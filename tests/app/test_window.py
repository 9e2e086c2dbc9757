"""The real main window driven through qtbot: demo, FAIG run and cancel, masking, drops,
sessions, export. Numbers are checked against computations written here."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QApplication

from faig_gui.core.analysis import AnalysisResult
from faig_gui.core.imageio import read_image
from faig_gui.app.window_exports import session_stems
from tolerances import effect_atol, forward_atol, gamma
from qt_events import answer_next_dialog, drop_files
from by_hand import masked_by_hand, sr_by_hand


# -- independent references ------------------------------------------------------------------
def conv_weights(sd):
    """(name, tensor) of every 4-D '*weight' in state-dict order: the filter numbering's layers."""
    return [(k, v) for k, v in sd.items() if k.endswith("weight") and v.ndim == 4]


def locate(sd, index: int):
    """Global filter index -> (layer, out, in), by walking the layers one by one."""
    offset = 0
    for name, w in conv_weights(sd):
        o, i = w.shape[:2]
        if index < offset + o * i:
            return name, (index - offset) // i, (index - offset) % i
        offset += o * i
    raise IndexError(index)


def out_atol(window) -> float:
    """Float32 outputs of the window's net against a plain forward in another order: γ_n of
    its chain of convolutions (tests/tolerances.py)."""
    return forward_atol(window.model.session.target.module)


def gradient_map_np(img):
    g = img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114
    p = np.pad(g.astype(np.float64), 1, mode="reflect")
    gx = p[1:-1, 2:] - p[1:-1, :-2]
    gy = p[2:, 1:-1] - p[:-2, 1:-1]
    return np.sqrt(gx ** 2 + gy ** 2 + 1e-6)


def effect_np(a, b):
    return float(np.mean((gradient_map_np(a) - gradient_map_np(b)) ** 2) * 1000)


def graph_colours(window) -> dict[str, str]:
    return {nid: item.fill().name() for nid, item in window.graph_dock.items.items()}


# -- tests -----------------------------------------------------------------------------------
def test_demo_opens_coloured_with_outputs_matching_an_independent_forward(demo_window, tiny_demo):
    w = demo_window
    s = w.model.session
    assert s.ready and set(s.scores) == {"blur", "noise"}
    assert w.image_view.thumbs.count() == 4
    assert w.masking_dock.degradation.currentText() == "blur"
    assert len(set(graph_colours(w).values())) > 2, "convolutions are coloured by importance"
    r = w.image_view.result
    img = s.current_image()
    # the masked output: the top 1 % for blur replaced by the baseline's kernels, by hand
    scores = s.scores["blur"]
    top = np.argsort(-scores, kind="stable")[: int(len(scores) * 0.01)]
    assert sorted(s.mask.indices.tolist()) == sorted(top.tolist())
    target_ref = sr_by_hand(s.target.state_dict, img.lr)
    masked_ref = sr_by_hand(masked_by_hand(s.target.state_dict, s.baseline.state_dict, top), img.lr)
    np.testing.assert_allclose(r.target, target_ref, atol=out_atol(w))
    np.testing.assert_allclose(r.masked, masked_ref, atol=out_atol(w))
    tol = effect_atol(gradient_map_np(masked_ref) - gradient_map_np(target_ref), out_atol(w))
    assert r.effect == pytest.approx(effect_np(masked_ref, target_ref), rel=0, abs=tol)
    mse = np.mean((target_ref.astype(np.float64) - img.gt) ** 2)
    # outputs off by δ move the mse by ≤ 2δ·rmse, the PSNR by ≤ (10 / ln 10) · 2δ / rmse dB
    assert r.psnr_target == pytest.approx(10 * np.log10(1 / mse), abs=20 / np.log(10) * out_atol(w) / np.sqrt(mse))
    assert f"{r.psnr_target:.2f} dB" in w.image_view.metrics.text()


def test_run_faig_shows_progress_and_fills_the_results(demo_window, qtbot):
    w = demo_window
    dock = w.analysis_dock
    dock.steps.setValue(2)
    before = {k: v.copy() for k, v in w.model.session.scores.items()}
    seen = []
    w.runner.progress.connect(lambda p: seen.append((p.done, p.total)))
    colours = graph_colours(w)
    with qtbot.waitSignal(w.runner.finished, timeout=60000) as done:
        qtbot.mouseClick(dock.run_button, Qt.MouseButton.LeftButton)
        assert not dock.run_button.isEnabled() and dock.cancel_button.isEnabled()
        assert w.activity_label.text().startswith("running FAIG")
    qtbot.waitUntil(lambda: not w.runner.running, timeout=10000)
    result = done.args[0]
    assert isinstance(result, AnalysisResult) and result.steps == 2
    # 2 images x 2 degradations x 2 steps, reported after each (image, degradation), and within
    # a path at most every PROGRESS_EVERY_S (core/analysis.py), never going back
    assert {(2, 8), (4, 8), (6, 8), (8, 8)} <= set(seen) and seen[-1] == (8, 8)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert dock.progress.value() == 1000 and dock.eta.text().startswith("done")
    s = w.model.session
    assert s.results["faig"] is result
    for d in ("blur", "noise"):
        np.testing.assert_array_equal(s.scores[d], result.scores[d])
        assert not np.array_equal(s.scores[d], before[d])
        # FAIG(d) = A(x_d) - A(x_other), averaged over the images
        other = "noise" if d == "blur" else "blur"
        expect = np.mean([a - b for a, b in zip(result.per_image[d], result.per_image[other])], axis=0)
        # the same float64 arithmetic on the same attributions: equal up to its rounding
        np.testing.assert_allclose(result.scores[d], expect, rtol=0, atol=8 * 2.0 ** -53 * np.abs(expect).max())
    assert graph_colours(w) != colours, "the graph is recoloured by the new scores"
    assert dock.run_button.isEnabled() and not dock.cancel_button.isEnabled()


def test_cancel_keeps_the_previous_results(demo_window, qtbot):
    w = demo_window
    dock = w.analysis_dock
    dock.steps.setValue(1000)  # long enough to be cancelled mid-way
    before = {k: v.copy() for k, v in w.model.session.scores.items()}
    mask_before = w.model.session.mask.indices.copy()
    with qtbot.waitSignal(w.runner.cancelled, timeout=60000):
        qtbot.mouseClick(dock.run_button, Qt.MouseButton.LeftButton)
        qtbot.mouseClick(dock.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.runner.running, timeout=10000)
    s = w.model.session
    for d, v in before.items():
        np.testing.assert_array_equal(s.scores[d], v)
    np.testing.assert_array_equal(s.mask.indices, mask_before)
    assert "cancelled" in dock.eta.text()
    assert dock.run_button.isEnabled()


def test_topk_slider_recolours_the_graph_and_updates_the_masked_output(demo_window, qtbot):
    w = demo_window
    s = w.model.session
    slider = w.masking_dock.k_slider
    before_masked = w.image_view.result.masked.copy()
    before_colours = graph_colours(w)
    with qtbot.waitSignal(w.image_view.rendered, timeout=20000):
        slider.setFocus()
        qtbot.keyClick(slider, Qt.Key.Key_PageUp)   # 1 % -> 2 %
        qtbot.keyClick(slider, Qt.Key.Key_PageUp)   # 2 % -> 3 %
    qtbot.waitUntil(lambda: w.image_view.live.idle, timeout=20000)
    total = s.index.total
    assert len(s.mask) == int(total * 0.03)
    assert "3.0 %" in w.masking_dock.k_label.text()
    # the graph follows right after the output is painted (SessionModel.maskShown)
    qtbot.waitUntil(lambda: graph_colours(w) != before_colours, timeout=2000)
    r = w.image_view.result
    assert len(r.request.mask) == len(s.mask)
    assert not np.allclose(r.masked, before_masked)
    top = np.argsort(-s.scores["blur"], kind="stable")[: int(total * 0.03)]
    ref = sr_by_hand(masked_by_hand(s.target.state_dict, s.baseline.state_dict, top), s.current_image().lr)
    np.testing.assert_allclose(r.masked, ref, atol=out_atol(w))
    # the 3 % mark button, zero mode and lambda follow the same path
    qtbot.mouseClick(w.masking_dock.mark_buttons[10], Qt.MouseButton.LeftButton)
    assert len(s.mask) == int(total * 0.10)
    qtbot.mouseClick(w.masking_dock.mode_zero, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(w.image_view.rendered, timeout=20000):
        w.masking_dock.lam_slider.setValue(50)
    qtbot.waitUntil(lambda: w.image_view.live.idle, timeout=20000)
    assert s.mask.mode == "zero" and s.mask.lam == pytest.approx(0.5)
    top = np.argsort(-s.scores["blur"], kind="stable")[: int(total * 0.10)]
    ref = sr_by_hand(masked_by_hand(s.target.state_dict, s.baseline.state_dict, top, lam=0.5, zero=True),
                     s.current_image().lr)
    np.testing.assert_allclose(w.image_view.result.masked, ref, atol=out_atol(w))
    with qtbot.waitSignal(w.image_view.rendered, timeout=20000):
        qtbot.mouseClick(w.masking_dock.clear_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.image_view.live.idle, timeout=20000)
    assert len(s.mask) == 0
    # the summary follows the output with the docks (SessionModel.maskShown)
    qtbot.waitUntil(lambda: "No filters masked" in w.masking_dock.summary.text(), timeout=2000)
    np.testing.assert_array_equal(w.image_view.result.masked, w.image_view.result.target)


def test_dropping_images_on_the_centre_adds_them(demo_window, qtbot, tiny_demo, tmp_path):
    w = demo_window
    view = w.image_view
    n = len(w.model.session.images)
    files = sorted((tiny_demo.heldout / "GT").glob("*.png"))
    with qtbot.waitSignal(view.rendered, timeout=20000):
        drop_files(view, files)
    assert len(w.model.session.images) == n + len(files)
    assert view.thumbs.count() == n + len(files)
    assert view.thumbs.currentRow() == n + len(files) - 1
    np.testing.assert_array_equal(w.model.session.current_image().lr, read_image(files[-1]))
    # a checkpoint dropped on the centre is not an image: it reaches the window, which asks its role
    answer_next_dialog("Cancel")
    target = w.model.session.target
    drop_files(view, [tiny_demo.target])
    qtbot.waitUntil(lambda: QApplication.activeModalWidget() is None and w.model.session.target is target,
                    timeout=10000)
    assert len(w.model.session.images) == n + len(files)


def test_dropping_a_checkpoint_asks_baseline_or_target(make_window, qtbot, tiny_demo):
    w = make_window()
    answer_next_dialog("Target")
    drop_files(w, [tiny_demo.target])
    qtbot.waitUntil(lambda: w.model.session.target is not None, timeout=10000)
    assert w.model.session.baseline is None
    assert "target only" in w.model_label.text()
    answer_next_dialog("Baseline")
    drop_files(w, [tiny_demo.baseline])
    qtbot.waitUntil(lambda: w.model.session.baseline is not None, timeout=10000)
    assert w.model.session.ready and "pair" in w.model_label.text()
    assert Path(w.model.session.baseline.path) == tiny_demo.baseline


def test_a_bad_checkpoint_is_reported_and_nothing_is_lost(demo_window, tmp_path):
    w = demo_window
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    target_before = w.model.session.target
    assert not w.model.load_target(str(bad))
    assert w.model.session.target is target_before
    assert "broken.pth" in w.last_error
    assert "broken.pth" in w.statusBar().currentMessage()


def test_save_and_reopen_a_session_gives_identical_state(demo_window, make_window, qtbot, tmp_path):
    w = demo_window
    w.masking_dock.k_slider.setValue(25)   # 2.5 %
    w.masking_dock.mode_zero.click()
    w.masking_dock.lam_slider.setValue(120)
    w.model.set_current(2)
    w.analysis_dock.steps.setValue(7)
    path = tmp_path / "s.faig"
    assert w.save_session(path)
    assert not w.isWindowModified() and w.windowTitle().startswith("s.faig")
    a = w.model.session
    w2 = make_window()
    with qtbot.waitSignal(w2.image_view.rendered, timeout=20000):
        assert w2.open_session(path)
    b = w2.model.session
    da, db = a.to_dict(), b.to_dict()
    da.pop("saved"), db.pop("saved")
    assert da == db
    for d in a.scores:
        np.testing.assert_array_equal(a.scores[d], b.scores[d])
    np.testing.assert_array_equal(a.mask.indices, b.mask.indices)
    assert (b.mask.mode, b.mask.lam) == ("zero", pytest.approx(1.2))
    assert len(b.images) == len(a.images)
    for x, y in zip(a.images, b.images):
        np.testing.assert_array_equal(x.lr, y.lr)
        np.testing.assert_array_equal(x.gt, y.gt)
        assert x.label == y.label
    # the widgets show the same state
    assert w2.masking_dock.k_slider.value() == 25 and w2.masking_dock.mode_zero.isChecked()
    assert w2.masking_dock.lam_slider.value() == 120
    assert w2.analysis_dock.steps.value() == 7
    assert w2.image_view.thumbs.currentRow() == 2
    qtbot.waitUntil(lambda: w2.image_view.live.idle, timeout=20000)
    qtbot.waitUntil(lambda: w.image_view.live.idle, timeout=20000)
    # the same forward, perhaps on another number of threads (another order of its sums)
    np.testing.assert_allclose(w2.image_view.result.masked, w.image_view.result.masked, atol=2 * out_atol(w))
    assert str(path.resolve()) in w2.recent_sessions()
    w2.recent_menu.aboutToShow.emit()
    items = [a for a in w2.recent_menu.actions() if a.isEnabled()]
    assert [a.toolTip() for a in items] == [str(path.resolve())]


def test_autosave_then_recover_after_a_crash(demo_window, make_window, qtbot):
    from faig_gui.app.main_window import recovery_path
    w = demo_window
    w.masking_dock.k_slider.setValue(40)
    assert w.autosave() and recovery_path().is_file()
    assert w.model.session.path is None   # autosave does not make the recovery file the user's file
    expected = w.model.session.mask.indices.copy()
    # a crash: the window never closes, the recovery file stays; the next start offers it
    w2 = make_window()
    answer_next_dialog("Yes")
    assert w2.offer_recovery()
    np.testing.assert_array_equal(w2.model.session.mask.indices, expected)
    assert w2.masking_dock.k_slider.value() == 40
    assert w2.isWindowModified() and w2.model.session.path is None
    # a clean close removes the recovery file
    w2._set_clean()
    w2.close()
    assert not recovery_path().exists()


def test_export_ranked_lists_match_an_independent_ranking(demo_window, tmp_path):
    w = demo_window
    s = w.model.session
    files = w.export_ranked_lists(tmp_path)
    assert sorted(f.name for f in files) == ["blur_index.txt", "blur_ranking.csv",
                                              "noise_index.txt", "noise_ranking.csv"]
    for d in ("blur", "noise"):
        order = sorted(range(len(s.scores[d])), key=lambda k: (-s.scores[d][k], k))
        assert [int(x) for x in (tmp_path / f"{d}_index.txt").read_text().split()] == order
        rows = list(csv.DictReader(open(tmp_path / f"{d}_ranking.csv")))
        assert len(rows) == len(order)
        for r in rows[:20]:
            g = int(r["index"])
            assert g == order[int(r["rank"]) - 1]
            assert (r["layer"], int(r["out"]), int(r["in"])) == locate(s.target.state_dict, g)
            assert float(r["score"]) == pytest.approx(s.scores[d][g])


def test_export_masked_outputs_and_dock_pictures(demo_window, qtbot, tmp_path):
    w = demo_window
    s = w.model.session
    w.model.add_images([s.images[0].path])   # the same file twice: both kept, under distinct names
    with qtbot.waitSignal(w.export_task.busyChanged, timeout=20000, check_params_cb=lambda b: not b):
        w.export_masked_outputs(tmp_path)
    written = sorted(tmp_path.glob("*_masked.png"))
    assert len(written) == len(s.images) == 5
    # blur/h0.png and noise/h0.png keep their labels in the names
    assert {"h0_blur_masked.png", "h0_noise_masked.png"} <= {p.name for p in written}
    for img, stem in zip(s.images, session_stems(s.images)):
        masked = read_image(tmp_path / f"{stem}_masked.png")
        ref = sr_by_hand(masked_by_hand(s.target.state_dict, s.baseline.state_dict, s.mask.indices), img.lr)
        assert np.abs(masked - ref).max() <= 1 / 255 + 1e-6
    for dock in (w.graph_dock, w.filter_dock, w.plots_dock):
        out = tmp_path / f"{dock.objectName()}.png"
        assert w.export_dock(dock, out) and out.stat().st_size > 0


def test_clicking_a_filter_in_the_grid_changes_the_masked_output(demo_window, qtbot):
    w = demo_window
    s = w.model.session
    with qtbot.waitSignal(w.image_view.rendered, timeout=20000):
        qtbot.mouseClick(w.masking_dock.clear_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.image_view.live.idle, timeout=20000)
    unmasked = w.image_view.result.masked.copy()
    w.model.select_layer("conv_last.weight")
    grid = w.filter_dock
    grid.raise_()
    qtbot.waitUntil(lambda: grid.plot.isVisible() and grid.layer is not None, timeout=10000)
    scene = grid.viewbox.mapViewToScene(QPointF(5 + 0.5, 1 + 0.5))   # out 1, in 5
    with qtbot.waitSignal(w.image_view.rendered, timeout=20000):
        qtbot.mouseClick(grid.plot.viewport(), Qt.MouseButton.LeftButton, pos=grid.plot.mapFromScene(scene))
    qtbot.waitUntil(lambda: w.image_view.live.idle, timeout=20000)
    k = locate_inverse(s.target.state_dict, "conv_last.weight", 1, 5)
    assert s.mask.indices.tolist() == [k]
    masked = w.image_view.result.masked
    assert not np.allclose(masked, unmasked)
    ref = sr_by_hand(masked_by_hand(s.target.state_dict, s.baseline.state_dict, [k]), s.current_image().lr)
    np.testing.assert_allclose(masked, ref, atol=out_atol(w))
    qtbot.waitUntil(lambda: "<b>1</b> of" in w.masking_dock.summary.text(), timeout=2000)
    # a second filter of the same layer: the render reruns that layer and what follows only
    # (conv_last, the global skip's addition, the output), not the whole net
    scene = grid.viewbox.mapViewToScene(QPointF(2 + 0.5, 0 + 0.5))   # out 0, in 2
    with qtbot.waitSignal(w.image_view.rendered, timeout=20000):
        qtbot.mouseClick(grid.plot.viewport(), Qt.MouseButton.LeftButton, pos=grid.plot.mapFromScene(scene))
    qtbot.waitUntil(lambda: w.image_view.live.idle, timeout=20000)
    k2 = locate_inverse(s.target.state_dict, "conv_last.weight", 0, 2)
    assert sorted(s.mask.indices.tolist()) == sorted([k, k2])
    _, incremental = w.image_view._cache._incremental
    assert 0 < incremental.last_recomputed <= 3 < len(incremental.nodes)
    ref = sr_by_hand(masked_by_hand(s.target.state_dict, s.baseline.state_dict, [k, k2]), s.current_image().lr)
    np.testing.assert_allclose(w.image_view.result.masked, ref, atol=out_atol(w))


def locate_inverse(sd, layer: str, out: int, inp: int) -> int:
    offset = 0
    for name, wt in conv_weights(sd):
        if name == layer:
            return offset + out * wt.shape[1] + inp
        offset += wt.shape[0] * wt.shape[1]
    raise KeyError(layer)


def test_results_of_a_run_whose_models_were_replaced_are_discarded(demo_window, qtbot, tiny_demo):
    w = demo_window
    w.analysis_dock.steps.setValue(2)
    before = {k: v.copy() for k, v in w.model.session.scores.items()}
    with qtbot.waitSignal(w.runner.failed, timeout=60000):
        qtbot.mouseClick(w.analysis_dock.run_button, Qt.MouseButton.LeftButton)
        assert w.model.load_target(str(tiny_demo.target))   # the same file, a new model object
    qtbot.waitUntil(lambda: not w.runner.running, timeout=10000)
    assert "discarded" in w.last_error
    assert not isinstance(w.model.session.results.get("faig"), AnalysisResult)
    for d, v in before.items():
        np.testing.assert_array_equal(w.model.session.scores[d], v)


def test_target_only_shows_its_output_and_says_what_masking_needs(make_window, qtbot, tiny_demo):
    w = make_window()
    assert not w.analysis_dock.run_button.isEnabled()
    assert w.model.load_target(str(tiny_demo.target))
    image = sorted((tiny_demo.heldout / "noise").glob("*.png"))[0]
    with qtbot.waitSignal(w.image_view.rendered, timeout=20000):
        w.model.add_images([str(image)])
    r = w.image_view.result
    assert r.target is not None and r.masked is None and r.effect is None
    assert w.image_view.masked_panel.placeholder.textItem.toPlainText() == "open a baseline to mask"
    # the linked views still frame the whole image (a placeholder never moves the range)
    rect = w.image_view.input_panel.view.viewRect()
    h, wd = r.input.shape[:2]
    assert rect.width() >= wd and rect.height() >= h
    assert not w.analysis_dock.run_button.isEnabled()   # FAIG needs the pair


def test_compare_view_split_difference_and_gradient_maps(demo_window, qtbot):
    w = demo_window
    view = w.image_view
    with qtbot.waitSignal(view.rendered, timeout=20000):
        w.masking_dock.k_slider.setValue(100)          # 10 %: a visible difference
    qtbot.waitUntil(lambda: view.live.idle, timeout=20000)
    r = view.result
    width = r.masked.shape[1]
    view.compare.setCurrentIndex(view.compare.findData("split"))
    view.split.setValue(25)
    shown = view.compare_panel.item.image
    cut = round(0.25 * width)
    np.testing.assert_array_equal(shown[:, :cut], r.target[:, :cut])
    np.testing.assert_array_equal(shown[:, cut:], r.masked[:, cut:])
    assert view.split_line.value() == cut
    view.split_line.setValue(width * 0.75)                # dragging the line moves the slider
    assert view.split.value() == 75
    view.compare.setCurrentIndex(view.compare.findData("difference"))
    expect = np.clip(np.abs(r.masked.astype(np.float64) - r.target).mean(axis=2) * 4, 0, 1)
    # float32 |a − b| averaged over 3 channels, times 4: ≤ 4 · γ_4 (≈ 9.5e-7) off the float64 value
    np.testing.assert_allclose(view.compare_panel.item.image, expect, atol=4 * gamma(4))
    assert not view.split.isEnabled() and not view.split_line.isVisible()
    view.compare.setCurrentIndex(view.compare.findData("gradient_difference"))
    expect = np.abs(gradient_map_np(r.masked) - gradient_map_np(r.target))
    # two float32 gradient maps of the same outputs: luma (γ_3), a difference, a square root
    np.testing.assert_allclose(view.compare_panel.item.image, expect, atol=2 * (2 * np.sqrt(2) + 2) * gamma(4))


def test_a_change_that_leaves_the_mask_as_it_is_renders_nothing(demo_window, qtbot):
    w = demo_window
    view = w.image_view
    with qtbot.waitSignal(view.rendered, timeout=20000):
        w.masking_dock.k_slider.setValue(0)
    qtbot.waitUntil(lambda: view.live.idle, timeout=20000)
    done = view.live.completed
    w.masking_dock.k_slider.setValue(1)          # 0.1 % of 496 filters is still no filter
    assert len(w.model.session.mask) == 0
    assert view.live.idle and view.live.completed == done
    with qtbot.waitSignal(view.rendered, timeout=20000):
        w.masking_dock.k_slider.setValue(20)     # 2 %: 9 filters, not shown before: a render
    assert view.live.completed == done + 1


def test_renders_take_all_cores_unless_an_analysis_runs(demo_window, qtbot):
    """torch's thread count is per OS thread: a render alone may use every core; while FAIG runs
    (half the cores on its own thread), a render gets at most the other half. Within that bound
    the render thread's tuner picks the count that measured fastest."""
    from faig_gui.app.workers import cores, long_job_threads
    from faig_gui.core.threads import candidate_counts
    w = demo_window
    slider = w.masking_dock.k_slider
    ui_threads = torch.get_num_threads()

    def move_slider():
        with qtbot.waitSignal(w.image_view.rendered, timeout=30000):
            slider.setFocus()
            qtbot.keyClick(slider, Qt.Key.Key_PageUp)
        qtbot.waitUntil(lambda: w.image_view.live.idle, timeout=30000)
        r = w.image_view.result
        if not r.prefetched:   # (a guess computed before, when the bound was another, is shown as it is)
            assert r.threads in candidate_counts(r.request.max_threads)
        return r.request.max_threads

    assert move_slider() == cores()
    w.analysis_dock.steps.setValue(1000)   # long enough to render while it runs
    qtbot.mouseClick(w.analysis_dock.run_button, Qt.MouseButton.LeftButton)
    assert w.runner.running and w.model.long_jobs == 1
    assert move_slider() == long_job_threads()
    # counted once that render is done: the render thread runs one job at a time, so a guess that
    # was already running when the analysis stopped it has ended by now
    guesses = w.image_view._cache.forwards["prefetch"]
    assert move_slider() == long_job_threads()
    assert not w.image_view.result.prefetched   # a real render: guesses wait for the analysis
    assert w.image_view.live.speculating is None and w.image_view._cache.forwards["prefetch"] == guesses
    with qtbot.waitSignal(w.runner.cancelled, timeout=60000):
        qtbot.mouseClick(w.analysis_dock.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.runner.running, timeout=10000)
    assert w.model.long_jobs == 0
    assert move_slider() == cores()
    assert torch.get_num_threads() == ui_threads, "the UI thread's own count is untouched"
    # every count the render used was measured
    assert set(w.image_view._cache.threads.rate) <= set(candidate_counts(cores()))
    assert w.image_view._cache.threads.rate
