"""Issue 16: on a net whose full frame costs more than the preview threshold, a mask change shows
a crop's masked output first (said in the title) and the full frame after. Here the threshold and
the preview's budget are set to 0 through their environment settings, so the tiny test net takes
that path; the pixels are checked against a masked net built in the test."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from faig_gui.core.imageio import write_image
from tiny_session import made_up_scores, tiny_pair
from tolerances import forward_atol
from by_hand import masked_by_hand, sr_by_hand


def _window_with_scores(make_window, tmp_path, shape):
    """A window with the tiny pair, made-up scores, and an LR image of ``shape`` written (not yet
    added): the window, its centre view and the image's path."""
    b, t = tiny_pair(tmp_path, spread=0.1)
    write_image(tmp_path / "lr.png", np.random.default_rng(0).random(shape))
    w = make_window()
    assert w.model.load_pair(str(b), str(t))
    w.model.set_scores(made_up_scores(w.model.session.index.total))
    return w, w.image_view, tmp_path / "lr.png"


def test_a_slow_net_shows_a_preview_crop_then_the_full_frame(make_window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("FAIG_GUI_PREVIEW_ABOVE_S", "0")
    monkeypatch.setenv("FAIG_GUI_PREVIEW_BUDGET_S", "0")
    w, view, lr_path = _window_with_scores(make_window, tmp_path, (48, 40, 3))
    s = w.model.session
    w.model.clear_mask()
    with qtbot.waitSignal(view.rendered, timeout=30000):
        w.model.add_images([str(lr_path)])
    qtbot.waitUntil(lambda: view.live.idle, timeout=30000)
    assert view.result.preview is None   # the first render of an image: the full frame (target and mask)
    # ... which left the target's output of the preview crop computed: the crop the next change uses
    warm_crop = view._cache.preview_target[0][2]

    shown = []
    view.rendered.connect(lambda: shown.append((view.result, view.title.text(), view.metrics.text())))
    marks = []   # the outline of the computed region on the masked and the comparison panels
    view.rendered.connect(lambda: marks.append((view.masked_panel.region.isVisible(),
                                                view.compare_panel.region.isVisible(),
                                                view.masked_panel.region.rect().getRect())))
    qtbot.mouseClick(w.masking_dock.mark_buttons[10], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(shown) >= 2 and view.live.idle, timeout=30000)
    (first, title1, metrics1), (full, title2, metrics2) = shown[:2]
    lr = first.request.lr
    expected = sr_by_hand(masked_by_hand(s.target.state_dict, s.baseline.state_dict, s.mask.indices), lr)
    target = sr_by_hand(s.target.state_dict, lr)
    atol = forward_atol(s.target.module)   # float32 nets in another order: γ_n of the conv chain

    plan = first.preview
    assert plan is not None
    # a zero budget: the smallest region a preview shows, at the image's centre (offsets multiples
    # of 4), and no context (the budget comes first)
    assert plan.inner == (20, 16, 28, 24) and plan.crop == plan.inner and not plan.exact
    assert plan.crop == warm_crop
    # outlined on the masked and comparison panels (x, y, width, height in output pixels), and the
    # outline goes with the full frame
    iy0, ix0, iy1, ix1 = plan.inner
    assert marks[0] == (True, True, (2.0 * ix0, 2.0 * iy0, 2.0 * (ix1 - ix0), 2.0 * (iy1 - iy0)))
    assert marks[1][:2] == (False, False)
    assert "preview: centre 8×8 LR crop" in title1 and "full frame follows" in title1
    assert "effect and PSNR follow" in metrics1 and first.effect is None
    # the region shown: the target's full output plus the change masking makes on that LR crop
    # (masked net minus target net, both on the crop), computed here
    cy0, cx0, cy1, cx1 = plan.crop
    iy0, ix0, iy1, ix1 = plan.inner
    masked_sd = masked_by_hand(s.target.state_dict, s.baseline.state_dict, s.mask.indices)
    crop = lr[cy0:cy1, cx0:cx1]
    change = sr_by_hand(masked_sd, crop, clamp=False) - sr_by_hand(s.target.state_dict, crop, clamp=False)
    y0, x0, y1, x1 = (2 * v for v in plan.inner)
    region = first.masked[y0:y1, x0:x1]
    want = sr_by_hand(s.target.state_dict, lr, clamp=False)[y0:y1, x0:x1] + \
        change[2 * (iy0 - cy0):2 * (iy1 - cy0), 2 * (ix0 - cx0):2 * (ix1 - cx0)]
    np.testing.assert_allclose(region, np.clip(want, 0, 1), atol=3 * atol)   # three forwards' rounding
    assert np.abs(region - target[y0:y1, x0:x1]).max() > 1e-3
    # the receptive radius, LR pixels: conv_first, two blocks of two convs, upconv1, half a pixel
    # each for conv_hr and conv_last (at x2), one for rounding (border effect: tests/core/test_preview.py)
    assert plan.radius == 8.0
    outside = np.ones(expected.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(first.masked[outside], first.target[outside])   # not computed yet

    assert full.preview is None and "preview" not in title2
    assert full.request is first.request
    np.testing.assert_allclose(full.masked, expected, atol=atol)
    assert "Effect" in metrics2 and full.effect is not None
    assert len(shown) == 2   # nothing more after the full frame


def test_a_cheap_net_renders_the_full_frame_directly(make_window, qtbot, tmp_path):
    w, view, lr_path = _window_with_scores(make_window, tmp_path, (48, 40, 3))
    with qtbot.waitSignal(view.rendered, timeout=30000):
        w.model.add_images([str(lr_path)])
    qtbot.waitUntil(lambda: view.live.idle, timeout=30000)
    shown = []
    view.rendered.connect(lambda: shown.append(view.result))
    qtbot.mouseClick(w.masking_dock.mark_buttons[10], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(shown) >= 1 and view.live.idle, timeout=30000)
    qtbot.wait(50)
    assert all(r.preview is None for r in shown) and "preview" not in view.title.text()
    assert len(view.result.request.mask) == len(w.model.session.mask) > 0


def test_adding_an_image_renders_it_once(make_window, qtbot, tmp_path):
    """Adding an image asks for a render twice (the list changed, then the current image): the
    second request is for the output already being rendered, so it must not drop that render and
    start again (on RRDBNet that cost two more full forwards)."""
    w, view, lr_path = _window_with_scores(make_window, tmp_path, (24, 20, 3))
    qtbot.mouseClick(w.masking_dock.mark_buttons[10], Qt.MouseButton.LeftButton)
    superseded = view.live.superseded
    forwards = sum(view._cache.forwards.values())
    with qtbot.waitSignal(view.rendered, timeout=30000):
        w.model.add_images([str(lr_path)])
    qtbot.waitUntil(lambda: view.live.idle, timeout=30000)
    assert view.live.superseded == superseded
    assert sum(view._cache.forwards.values()) - forwards == 2   # the target's and the masked output
    assert view.result.masked is not None and len(view.result.request.mask) == len(w.model.session.mask) > 0
