"""Issue 16, "Done when": the window opens a pair of each architecture family in each key layout
(RRDBNet: BasicSR, ESRGAN, old model.N; EDSR: BasicSR, EDSR-PyTorch; SRVGGNetCompact; RCAN: BasicSR,
the original) and renders a masked output (10 % top-k from the masking dock's button) equal to a masked net built
here, filter by filter."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from faig_gui.core.imageio import read_image, write_image
from test_families_end_to_end import FAMILIES, write_pair
from tolerances import forward_atol
from by_hand import masked_by_hand, sr_by_hand


@pytest.mark.parametrize("name", list(FAMILIES))
def test_window_opens_the_pair_and_renders_the_masked_output(name, make_window, qtbot, tmp_path):
    family = FAMILIES[name][0]
    made = write_pair(tmp_path, name)
    write_image(tmp_path / "lr.png", np.random.default_rng(3).random((10, 12, 3)))
    w = make_window()
    assert w.model.load_pair(str(tmp_path / "baseline.pth"), str(tmp_path / "target.pth"))
    s = w.model.session
    assert s.target.arch_name == family
    total = s.index.total
    scores = np.random.default_rng(4).random(total)
    w.model.set_scores({"blur": scores, "noise": scores[::-1].copy()})
    with qtbot.waitSignal(w.image_view.rendered, timeout=30000):
        w.model.add_images([str(tmp_path / "lr.png")])
    qtbot.waitUntil(lambda: w.image_view.live.idle, timeout=30000)
    with qtbot.waitSignal(w.image_view.rendered, timeout=30000):
        qtbot.mouseClick(w.masking_dock.mark_buttons[10], Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.image_view.live.idle and len(w.image_view.result.request.mask) == len(s.mask),
                    timeout=30000)
    top = np.argsort(-s.scores[s.mask_settings.degradation], kind="stable")[: int(total * 0.10)]
    np.testing.assert_array_equal(np.sort(s.mask.indices), np.sort(top))
    r = w.image_view.result
    lr = read_image(tmp_path / "lr.png")
    assert r.target.shape == (20, 24, 3)
    # float32 outputs of the window's net (incremental forward) against a plain forward: γ_n of
    # its chain of convolutions (tests/tolerances.py)
    atol = forward_atol(s.target.module)
    np.testing.assert_allclose(r.target, sr_by_hand(made["targ"], lr), atol=atol)
    expected = sr_by_hand(masked_by_hand(made["targ"], made["base"], top), lr)
    np.testing.assert_allclose(r.masked, expected, atol=atol)
    assert np.abs(r.masked - r.target).max() > 1e-3   # the mask changed something visible to the test
    assert f"{len(top):,} filters" in w.image_view.masked_panel.label.text
