"""The plots dock: bar heights against a literal count, the effect curve against a hand-made
masked model, computed on a worker thread through the Compute button, and cancel."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from faig_gui.app.plots_dock import PlotsDock
from plugins.msrresnet import MSRResNet
from tiny_session import loaded_model
from tolerances import effect_atol, forward_atol


@pytest.fixture
def dock(qtbot, tmp_path):
    # the target differs clearly from the baseline, so masking effects are far above float noise
    model = loaded_model(qtbot, tmp_path, spread=0.3)
    d = PlotsDock(model)
    qtbot.addWidget(d)
    d.resize(560, 480)
    d.show()
    qtbot.waitExposed(d)
    yield d
    d.shutdown()


def _counts_by_hand(model, scores, proportion):
    n = len(scores)
    top = sorted(range(n), key=lambda k: (-scores[k], k))[: int(n * proportion / 100)]
    counts, start = [], 0
    for key, value in model.session.target.state_dict.items():
        if key.endswith("weight") and value.ndim == 4:
            size = value.shape[0] * value.shape[1]
            counts.append(sum(1 for k in top if start <= k < start + size))
            start += size
    return counts


def test_bar_heights_are_the_top_filters_per_layer(dock):
    model = dock.model
    panel = dock.distribution
    panel.k_box.setCurrentIndex(panel.k_box.findData(10.0))
    assert set(panel.bars) == {"blur", "noise"}
    for d, scores in model.session.scores.items():
        heights = panel.bars[d].opts["height"]
        assert list(np.asarray(heights, dtype=int)) == _counts_by_hand(model, scores, 10.0)
    # "as masking" follows the masking proportion
    panel.k_box.setCurrentIndex(0)
    model.set_top_mask("blur", 5.0)
    assert panel.proportion == 5.0
    assert list(np.asarray(panel.bars["noise"].opts["height"], dtype=int)) == \
        _counts_by_hand(model, model.session.scores["noise"], 5.0)
    assert "top 5 %" in panel.plot.getPlotItem().titleLabel.text


def test_a_hidden_distribution_catches_up_when_shown(dock, qtbot):
    model = dock.model
    panel = dock.distribution
    dock.tabs.setCurrentWidget(dock.effects)                    # the other tab in front
    assert not panel.isVisible()
    model.set_top_mask("blur", 3.0)
    assert panel.proportion != 3.0                               # not redrawn behind the tab
    qtbot.mouseClick(dock.tabs.tabBar(), Qt.MouseButton.LeftButton,
                     pos=dock.tabs.tabBar().tabRect(dock.tabs.indexOf(panel)).center())
    assert panel.isVisible() and panel.proportion == 3.0
    for d, scores in model.session.scores.items():
        assert list(np.asarray(panel.bars[d].opts["height"], dtype=int)) == _counts_by_hand(model, scores, 3.0)
    assert "top 3 %" in panel.plot.getPlotItem().titleLabel.text


def _gradient_map(img):
    """FAIG.md's gradient map, written again in numpy: HWC RGB -> HxW."""
    g = img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114
    p = np.pad(g, 1, mode="reflect")
    gx = p[1:-1, 2:] - p[1:-1, :-2]
    gy = p[2:, 1:-1] - p[:-2, 1:-1]
    return np.sqrt(gx * gx + gy * gy + 1e-6)


def _effect_by_hand(model, scores, proportion, lr):
    """Mask the top filters by replacing kernels one by one, run both nets, compare maps."""
    s = model.session
    n = len(scores)
    top = sorted(range(n), key=lambda k: (-scores[k], k))[: int(n * proportion / 100)]
    layers, start = [], 0
    for key, value in s.target.state_dict.items():
        if key.endswith("weight") and value.ndim == 4:
            layers.append((key, start, value.shape[1]))
            start += value.shape[0] * value.shape[1]
    sd = {k: v.clone() for k, v in s.target.state_dict.items()}
    for k in top:
        key, off, cin = max((l for l in layers if l[1] <= k), key=lambda l: l[1])
        o, i = divmod(k - off, cin)
        sd[key][o, i] = s.baseline.state_dict[key][o, i]
    outs = []
    for weights in (s.target.state_dict, sd):
        net = MSRResNet(num_feat=4, num_block=2, upscale=2)
        net.load_state_dict(weights)
        with torch.no_grad():
            outs.append(net(lr)[0].clamp(0, 1).permute(1, 2, 0).double().numpy())
    a, b = (_gradient_map(o) for o in outs)
    return float(np.mean((a - b) ** 2) * 1000)


def _effect_tol_by_hand(model, lr):
    """What float32 rounding of the target's and the masked net's forwards can move an effect by:
    the gradient maps may differ by up to 1 (outputs in [0, 1]), both outputs by ≤ γ_n."""
    return effect_atol(np.ones(1), 2 * forward_atol(model.session.target.module))


def _with_analysis_image(model):
    rng = np.random.default_rng(5)
    hr = rng.random((24, 24, 3)).astype(np.float32)
    model.session.set_analysis_hr({"r.png": hr})


def test_compute_draws_the_effect_curves_on_a_worker(qtbot, dock):
    model = dock.model
    _with_analysis_image(model)
    dock.tabs.setCurrentWidget(dock.effects)
    qtbot.mouseClick(dock.effects.compute_button, Qt.MouseButton.LeftButton)
    assert dock.running and not dock.effects.compute_button.isEnabled()
    qtbot.waitUntil(lambda: not dock.running, timeout=60000)
    assert dock.result is not None and dock.effects.compute_button.isEnabled()
    methods = ("faig", "abs", "random")
    assert tuple(dock.result.methods) == methods
    for m in methods:
        for d in ("blur", "noise"):
            for e in ("blur", "noise"):
                x, _ = dock.effects.curves[(m, d, e)].getOriginalDataset()
                assert list(x) == [1.0, 3.0, 5.0, 10.0]
    # the session's FAIG scores were used, not re-ranked: check a point by hand
    img = model.session.analysis_images[0]
    for d, e in (("blur", "noise"), ("noise", "noise"), ("blur", "blur")):
        _, y = dock.effects.curves[("faig", d, e)].getOriginalDataset()
        expected = _effect_by_hand(model, model.session.scores[d], 10.0, img.lr[e])
        # float32 forwards on both sides, in other orders: effect_atol of that rounding
        tol = _effect_tol_by_hand(model, img.lr[e])
        assert expected > 1e-3 and expected > 20 * tol and y[-1] == pytest.approx(expected, rel=0, abs=tol)
    assert set(dock.effects.plots) == {"blur", "noise"}
    # new scores make the curves outdated, and it says so
    model.set_scores({k: v[::-1].copy() for k, v in model.session.scores.items()})
    assert dock.effects.status.text().startswith("outdated")


def test_the_effect_worker_runs_its_own_copy_of_the_target(dock):
    # evaluation swaps module parameters (functional_call) on the worker thread; the window's
    # other threads run the session's module at the same time and must never see those swaps
    model = dock.model
    _with_analysis_image(model)
    job = dock.job()
    ours = model.session.target
    assert job.target.module is not ours.module
    for (name, a), b in zip(job.target.module.state_dict().items(), ours.module.state_dict().values()):
        assert torch.equal(a, b), name


def test_cancel_keeps_nothing_half_done(qtbot, dock):
    model = dock.model
    _with_analysis_image(model)
    dock.effects.checks["ig"].setChecked(True)   # IG must be ranked first: slow enough to cancel
    with qtbot.waitSignal(model.busyChanged):
        qtbot.mouseClick(dock.effects.compute_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(dock.effects.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dock.running, timeout=60000)
    assert dock.result is None
    assert "cancelled" in dock.effects.status.text()


def test_compute_without_analysis_images_says_what_to_do(qtbot, dock):
    with qtbot.waitSignal(dock.model.errorOccurred) as sig:
        assert not dock.effects.compute_button.click() and not dock.running
    assert "analysis images" in sig.args[0]


def test_export_has_both_plots(dock, tmp_path):
    from PySide6.QtGui import QImage
    dock.export(tmp_path / "plots.png")
    image = QImage(str(tmp_path / "plots.png"))
    assert image.height() >= 2 * 300
    dock.export(tmp_path / "plots.svg")
    assert "<svg" in (tmp_path / "plots.svg").read_text()
