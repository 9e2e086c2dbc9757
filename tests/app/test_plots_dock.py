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
from faig_gui.plugins.msrresnet import MSRResNet
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
    """docs/method.md's gradient map, written again in numpy: HWC RGB -> HxW."""
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
        key, off, cin = max((entry for entry in layers if entry[1] <= k), key=lambda entry: entry[1])
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
    dock.tabs.setCurrentWidget(dock.effects)
    with qtbot.waitSignal(dock.model.errorOccurred) as sig:
        qtbot.mouseClick(dock.effects.compute_button, Qt.MouseButton.LeftButton)
    assert "analysis images" in sig.args[0]
    # nothing started: the panel says so, Compute stays available, Cancel has nothing to stop
    assert not dock.running and dock.result is None
    assert dock.effects.status.text().startswith("Cannot compute")
    assert dock.effects.compute_button.isEnabled() and not dock.effects.cancel_button.isEnabled()
    assert dock.effects.curves == {}


def _made_up_result():
    """Effects of two methods that no two curves share: (10 + p) · (2 own | 0.5 other) · (1 | 2)."""
    from faig_gui.core.evaluation import EvaluationResult
    props, names, methods = [1.0, 3.0, 5.0, 10.0], ["blur", "noise"], ["faig", "random"]
    effects = {m: {f"{p:g}": {d: {e: (10 + p) * (2.0 if d == e else 0.5) * (1 + j) for e in names} for d in names}
                   for p in props} for j, m in enumerate(methods)}
    return EvaluationResult(methods, props, names, ["a.png"], ["a.png"], 168, effects, {})


def _svg_groups(path):
    """(attributes, affine matrix (a, b, c, d, e, f), children) of each <g> QSvgGenerator wrote."""
    import re
    import xml.etree.ElementTree as ET
    groups = []
    for g in ET.parse(path).getroot().iter("{http://www.w3.org/2000/svg}g"):
        m = re.fullmatch(r"matrix\(([^)]*)\)", g.get("transform", "matrix(1,0,0,1,0,0)"))
        groups.append((g.attrib, tuple(float(v) for v in m.group(1).split(",")), list(g)))
    return groups


def _svg_texts(path) -> list[str]:
    import xml.etree.ElementTree as ET
    return [t.text.strip() for t in ET.parse(path).getroot().iter("{http://www.w3.org/2000/svg}text") if t.text]


def _series(children) -> list[tuple[float, float]]:
    """The points of one curve: consecutive polyline segments (solid) or a path's M/L points (dashed)."""
    import re
    pts: list[tuple[float, float]] = []
    for c in children:
        text = c.get("points") or c.get("d") or ""
        for x, y in re.findall(r"(-?[\d.e+-]+),(-?[\d.e+-]+)", text):
            pt = (float(x), float(y))
            if not pts or pts[-1] != pt:
                pts.append(pt)
    return pts


def test_export_shows_the_bars_and_the_effect_curves(dock, tmp_path):
    """What the exported files show: the SVG holds each layer's bar at its literal count and each
    effect curve at its values (log10, as the axis is logarithmic); the PNG has the bars' and
    the curves' colours where the SVG puts them (both are painted from one drawing)."""
    from PySide6.QtGui import QColor, QImage
    from faig_gui.app.plots_dock import DEGRADATION_COLOURS, METHOD_COLOURS
    model = dock.model
    panel = dock.distribution
    panel.k_box.setCurrentIndex(panel.k_box.findData(10.0))
    result = _made_up_result()
    dock.effects.show_result(result)
    dock.export(tmp_path / "plots.svg")
    dock.export(tmp_path / "plots.png")
    groups = _svg_groups(tmp_path / "plots.svg")
    texts = _svg_texts(tmp_path / "plots.svg")
    layers = [k.removesuffix(".weight") for k, v in model.session.target.state_dict.items()
              if k.endswith("weight") and v.ndim == 4]
    assert [t for t in texts if t in layers] == layers             # the x axis names every layer, in order
    assert any("top 10 %" in t for t in texts)
    assert {"blur", "noise", "masking blur filters", "masking noise filters", "FAIG", "random"} <= set(texts)

    image = QImage(str(tmp_path / "plots.png"))
    top_h = max(panel.plot.height(), dock.effects.canvas.height(), 300)
    assert image.width() >= 480 and image.height() == 2 * top_h

    def pixel(x: float, y: float) -> str:
        return QColor(image.pixel(int(round(x)), int(round(y)))).name()

    # bars: in data coordinates (x: layer, height: the count) under the plot's transform
    for j, (d, scores) in enumerate(model.session.scores.items()):
        colour = DEGRADATION_COLOURS[j]
        bars = [(attrs, m, kids) for attrs, m, kids in groups
                if attrs.get("fill") == colour and len(kids) == len(layers) and m[0] != 1]
        assert len(bars) == 1, d
        _, (a, _b, _c, dd, e, f), rects = bars[0]
        rects = sorted(rects, key=lambda r: float(r.get("x")))
        heights = [float(r.get("height")) for r in rects]
        expected = _counts_by_hand(model, scores, 10.0)
        assert heights == expected and sum(expected) > 0
        for r, count in zip(rects, expected):
            x = a * (float(r.get("x")) + float(r.get("width")) / 2) + e
            if count:
                assert pixel(x, f + dd * count / 2) == colour, (d, r.get("x"))
            else:
                assert pixel(x, f + dd * 0.5) != colour, (d, r.get("x"))
    # curves: one solid (own inputs) and one dashed (other inputs) per method and plot, at
    # (p, log10 effect); the SVG writes 6 significant digits
    plots = sorted({m for attrs, m, _k in groups   # the effect plots: data transforms in the lower half
                    if m[0] != 1 and m[3] < 0 and m[5] > top_h and attrs.get("stroke") in METHOD_COLOURS.values()},
                   key=lambda m: m[4])
    assert len(plots) == 2
    for d, matrix in zip(result.degradations, plots):
        for mth in result.methods:
            for e_name in result.degradations:
                dashed = e_name != d
                found = [_series(kids) for attrs, m, kids in groups
                         if m == matrix and attrs.get("stroke") == METHOD_COLOURS[mth]
                         and ("stroke-dasharray" in attrs) == dashed and _series(kids)]
                want = [(p, float(np.log10(result.effect(mth, p, d, e_name)))) for p in result.proportions]
                assert len(found) == 1, (mth, d, e_name)
                assert [x for x, _ in found[0]] == [x for x, _ in want]
                assert [y for _, y in found[0]] == pytest.approx([y for _, y in want], rel=1e-5)
                a, _b, _c, dd, e, f = matrix
                for x, y in want:   # the symbol at each point (6 px) has the method's colour in the PNG
                    px, py = a * x + e, dd * y + f
                    near = {pixel(px + i, py + j) for i in (-1, 0, 1) for j in (-1, 0, 1)}
                    assert METHOD_COLOURS[mth] in near, (mth, d, e_name, x, near)
