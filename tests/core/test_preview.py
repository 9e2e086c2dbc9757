"""core/preview.py: the receptive radius behind a preview's context margin, checked against how
far a one-pixel change of the input actually reaches in each family's net, and the crop plan."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from faig_gui.core.preview import ALIGN, MIN_INNER, plan_preview, receptive_radius
from faig_gui.core.registry import default_registry
from test_families_end_to_end import FAMILIES, _random

NETS = {**{k: v[:2] for k, v in FAMILIES.items()}, "msrresnet": ("msrresnet", {"num_feat": 4, "num_block": 2, "scale": 2})}
SIDE = 96


def reach(module, scale: int) -> int:
    """LR pixels (Chebyshev) from a changed input pixel to the farthest output pixel that moves."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, SIDE, SIDE, generator=g)
    y = x.clone()
    c = SIDE // 2
    y[0, :, c, c] += 0.5
    with torch.no_grad():
        d = (module(y) - module(x)).abs().amax(dim=1)[0]
    rows, cols = torch.nonzero(d > 0, as_tuple=True)
    return int(max((rows // scale - c).abs().max(), (cols // scale - c).abs().max()))


@pytest.mark.parametrize("name", list(NETS))
def test_the_radius_bounds_how_far_a_pixel_change_reaches(name):
    family, hp = NETS[name]
    arch = default_registry().get(family)
    module = arch.build(hp)
    module.load_state_dict(_random(arch.new_state_dict(**hp), seed=3))
    module.eval()
    radius = receptive_radius(module).radius
    got = reach(module, hp["scale"])
    if family == "rcan":
        # channel attention averages the whole image: every output pixel moves
        assert math.isinf(radius) and got == SIDE // 2
        return
    assert got <= radius <= got + 2   # a bound, and a tight one (rounding of up-sampled positions)


def test_plan_is_aligned_centred_and_keeps_its_margin():
    # 0.1 ms per LR pixel and a 0.16 s budget: a 40-pixel crop, 8 of margin each side
    plan = plan_preview(100, 90, 1e-4, 0.16, radius=7.5)
    y0, x0, y1, x1 = plan.inner
    assert (y1 - y0, x1 - x0) == (24, 24) and plan.exact and plan.centred
    assert y0 % ALIGN == 0 and x0 % ALIGN == 0
    assert plan.crop == (y0 - 8, x0 - 8, y1 + 8, x1 + 8)
    assert plan.label() == "preview: centre 24×24 LR crop"
    # at the view's centre near a corner: clamped into the image, context only where there is image
    corner = plan_preview(100, 90, 1e-4, 0.16, radius=7.5, focus=(2.0, 88.0))
    assert corner.inner == (0, 64, 24, 88) and corner.crop == (0, 56, 32, 90) and not corner.centred
    # a radius beyond the margin cap: not exact; a budget covering the image: no preview
    assert not plan_preview(100, 90, 1e-4, 0.16, radius=200).exact
    assert plan_preview(100, 90, 1e-4, 2.0, radius=7.5) is None
    assert plan_preview(100, 90, 1.0, 0.0, radius=0).inner[2] - plan_preview(100, 90, 1.0, 0.0, radius=0).inner[0] == MIN_INNER
