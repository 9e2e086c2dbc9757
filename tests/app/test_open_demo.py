"""File ▸ Open demo switches between the bundled pairs: the second (SRVGGNetCompact, three
degradations) opens with its three degradations, scores and held-out inputs; the first comes back."""
from __future__ import annotations

import json

import numpy as np
import torch

from conftest import make_tiny_demo, smooth_image
from faig_gui.core import demo as demo_mod
from faig_gui.core.checkpoint import save_checkpoint
from faig_gui.core.dataset import make_degraded, write_image_set
from faig_gui.core.degradations import parse_degradation
from faig_gui.core.filters import FilterIndex
from faig_gui.core.imageio import write_image
from faig_gui.core.registry import default_registry
from faig_gui.core.results import write_scores

THREE = [parse_degradation(s) for s in ("blur=blur:2,down", "noise=down,noise:0.1", "jpeg=down,jpeg:30")]


def _tiny_srvgg_demo(root):
    arch = default_registry().get("srvgg")
    torch.manual_seed(1)
    base = arch.build({"num_feat": 4, "num_conv": 2, "scale": 2}).state_dict()
    targ = {k: v + 0.05 * torch.randn_like(v) for k, v in base.items()}
    save_checkpoint(root / "baseline.pth", base)
    save_checkpoint(root / "target.pth", targ)
    total = FilterIndex.from_state_dict(targ).total
    rng = np.random.default_rng(2)
    write_scores(root / "scores.npz", {d.name: rng.normal(size=total) for d in THREE})
    (root / "degradations.json").write_text(json.dumps([d.to_dict() for d in THREE]))
    write_image(root / "analysis" / "GT" / "a0.png", smooth_image(rng, 32, 32))
    hr = {"h0.png": smooth_image(rng, 32, 32)}
    write_image_set(root / "heldout", make_degraded(hr, 2, THREE, seed=1), clean=False)
    return total


def test_open_demo_switches_between_the_two_pairs(make_window, tmp_path, monkeypatch, qtbot):
    (tmp_path / "demo").mkdir()
    make_tiny_demo(tmp_path / "demo")
    (tmp_path / "demo_srvgg").mkdir()
    total = _tiny_srvgg_demo(tmp_path / "demo_srvgg")
    monkeypatch.setattr(demo_mod, "resources_dir", lambda: tmp_path)
    w = make_window()
    titles = [a.text() for a in w.demo_menu.actions()]
    assert titles == [demo_mod.DEMOS["msrresnet"][1], demo_mod.DEMOS["srvgg3"][1]]
    assert all(a.isEnabled() for a in w.demo_menu.actions())
    w.demo_actions["srvgg3"].trigger()
    s = w.model.session
    assert s.target.arch_name == "srvgg" and s.index.total == total
    assert list(s.scores) == ["blur", "noise", "jpeg"]
    assert [d.spec() for d in s.settings.degradations] == [d.spec() for d in THREE]
    assert [img.label for img in s.images] == ["blur", "noise", "jpeg"]
    assert list(s.analysis_images[0].lr) == ["blur", "noise", "jpeg"]
    masking = w.masking_dock
    assert [masking.degradation.itemText(i) for i in range(masking.degradation.count())] == ["blur", "noise", "jpeg"]
    w.demo_actions["msrresnet"].trigger()
    s = w.model.session
    assert s.target.arch_name == "msrresnet" and list(s.scores) == ["blur", "noise"]
    assert [d.name for d in s.settings.degradations] == ["blur", "noise"]


def test_a_demo_that_is_not_bundled_is_disabled(make_window, tmp_path, monkeypatch):
    (tmp_path / "demo").mkdir()
    make_tiny_demo(tmp_path / "demo")
    monkeypatch.setattr(demo_mod, "resources_dir", lambda: tmp_path)
    w = make_window()
    assert w.demo_actions["msrresnet"].isEnabled() and not w.demo_actions["srvgg3"].isEnabled()
