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


def test_preview_pixels_equal_the_full_frame_beyond_the_radius_from_the_crop_edges():
    """render_preview against render's full frame on a tiny MSRResNet (radius 8 LR pixels): with
    a margin covering the radius the whole region shown agrees; with none, the pixels deeper than
    the radius inside the crop agree and some within it differ (zero padding at the crop edge)."""
    from faig_gui.core.preview import PreviewPlan
    from faig_gui.core.render import OutputCache, RenderRequest, render, render_preview
    from tolerances import forward_atol

    module, targ, base, index, mask = _tiny_pair()
    lr = np.random.default_rng(1).random((64, 64, 3)).astype(np.float32)
    req = RenderRequest(1, lr, None, module, targ, base, index, mask, 2, 1, 0.0)
    cache = OutputCache()
    full = render(req, cache)
    radius = receptive_radius(module).radius
    assert radius == 8.0
    atol = forward_atol(module)   # float32, the same net on another extent of the input: γ_n of the conv chain
    with_context = PreviewPlan((16, 16, 48, 48), (24, 24, 40, 40), True, True, radius)
    got = render_preview(req, cache, with_context).masked
    np.testing.assert_allclose(got[48:80, 48:80], full.masked[48:80, 48:80], atol=3 * atol)   # three forwards
    bare = PreviewPlan((16, 16, 48, 48), (16, 16, 48, 48), True, False, radius)
    got = render_preview(req, cache, bare).masked
    deep = slice(2 * (16 + 8), 2 * (48 - 8))
    np.testing.assert_allclose(got[deep, deep], full.masked[deep, deep], atol=3 * atol)
    assert np.abs(got[32:96, 32:96] - full.masked[32:96, 32:96]).max() > 10 * atol


def _tiny_pair():
    """A tiny MSRResNet pair, its filter index and a mask of 30 % of its filters."""
    from faig_gui.core.filters import FilterIndex, top_indices
    from faig_gui.core.masking import FilterMask

    arch = default_registry().get("msrresnet")
    hp = {"num_feat": 4, "num_block": 2, "scale": 2}
    base = _random(arch.new_state_dict(**hp), seed=5)
    targ = _random(arch.new_state_dict(**hp), seed=6)
    module = arch.build(hp)
    module.load_state_dict(targ)
    module.eval()
    index = FilterIndex.from_state_dict(targ)
    return module, targ, base, index, FilterMask(top_indices(np.random.default_rng(0).random(index.total), 0.3))


def test_render_live_keeps_the_preview_crop_warm_and_previews_a_new_image_after_its_target(monkeypatch):
    """With the preview threshold at 0 (every net counts as slow): an image's first render leaves
    the target's output of the preview crop computed, so the first mask change runs one crop
    forward (the masked net's); a new image shown with a mask on gets its target's full output
    and a preview, not two full forwards, and the preview's pixels are the target's full output
    plus the crop's change, computed here."""
    from faig_gui.core import render as rendering
    from faig_gui.core.inference import super_resolve
    from faig_gui.core.masking import FilterMask, masked_state_dict
    from faig_gui.core.render import OutputCache, RenderRequest, render_live
    from tolerances import forward_atol

    module, targ, base, index, mask = _tiny_pair()
    calls = []

    def counted(mod, x, scale, params=None, *a, **k):
        calls.append((tuple(x.shape[-2:]), params is targ))
        return super_resolve(mod, x, scale, params, *a, **k)
    monkeypatch.setattr(rendering, "super_resolve", counted)
    rng = np.random.default_rng(1)
    a, b = rng.random((40, 48, 3)).astype(np.float32), rng.random((44, 36, 3)).astype(np.float32)
    cache = OutputCache()
    cache.threads.apply = lambda *args, **kw: 1   # (no thread tuning in a test)

    def request(key, lr, m):
        return RenderRequest(key, lr, None, module, targ, base, index, m, 2, 1, 0.0)
    first = render_live(request(1, a, FilterMask()), cache, above_s=0.0, budget_s=0.0)
    assert first.preview is None and cache.preview_target is not None
    key, warm = cache.preview_target
    y0, x0, y1, x1 = key[2]
    # the crop a zero budget plans: MIN_INNER LR pixels at the centre, offsets multiples of ALIGN
    assert (y1 - y0, x1 - x0) == (MIN_INNER, MIN_INNER) and y0 % ALIGN == 0 and x0 % ALIGN == 0
    with torch.inference_mode():
        want = module(torch.from_numpy(a[y0:y1, x0:x1]).permute(2, 0, 1)[None])
    atol = forward_atol(module)   # float32: the same net, another memory layout
    np.testing.assert_allclose(warm.numpy(), want.numpy(), atol=atol)

    calls.clear()
    masked = render_live(request(1, a, mask), cache, above_s=0.0, budget_s=0.0)
    assert masked.preview is not None
    assert calls == [((MIN_INNER, MIN_INNER), False)]   # the masked crop alone: the target's was warm

    calls.clear()
    new = render_live(request(2, b, mask), cache, above_s=0.0, budget_s=0.0)
    assert new.preview is not None and new.masked is not None and new.target is not None
    # the target's full forward, then the two crop forwards; never the masked full frame
    assert calls == [((44, 36), True), ((MIN_INNER, MIN_INNER), True), ((MIN_INNER, MIN_INNER), False)]
    with torch.inference_mode():
        x = torch.from_numpy(b).permute(2, 0, 1)[None]
        target_full = module(x)[0].permute(1, 2, 0).numpy()
        y0, x0, y1, x1 = new.preview.crop
        crop = x[..., y0:y1, x0:x1]
        from torch.func import functional_call
        change = (functional_call(module, masked_state_dict(targ, base, mask, index), (crop,))
                  - module(crop))[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(new.target, np.clip(target_full, 0, 1), atol=atol)
    want = target_full.copy()
    want[2 * y0:2 * y1, 2 * x0:2 * x1] += change
    np.testing.assert_allclose(new.masked, np.clip(want, 0, 1), atol=3 * atol)   # three forwards' rounding


def test_the_preview_crop_is_sized_by_what_a_crop_forward_costs():
    """A crop's forward costs more per pixel than a full frame's (RRDBNet's 8 x 8 LR crop ~3.5x):
    once a crop forward was timed, the plan sizes the crop by that rate, so a preview stays within
    its budget. Here the full frame's rate alone would give a 32 x 32 crop; a crop rate 16x
    higher quarters its side."""
    from faig_gui.core.render import OutputCache, RenderRequest, _crop_plan

    module, targ, base, index, mask = _tiny_pair()
    lr = np.zeros((96, 96, 3), dtype=np.float32)
    req = RenderRequest(1, lr, None, module, targ, base, index, mask, 2, 1, 0.0)
    cache = OutputCache()
    budget = 0.1
    cache.seconds_per_pixel = budget / 32 ** 2
    plan = _crop_plan(req, cache, 0.0, budget)
    assert (plan.crop[2] - plan.crop[0], plan.crop[3] - plan.crop[1]) == (32, 32)
    cache.crop_seconds_per_pixel = 16 * cache.seconds_per_pixel
    plan = _crop_plan(req, cache, 0.0, budget)
    assert (plan.crop[2] - plan.crop[0], plan.crop[3] - plan.crop[1]) == (MIN_INNER, MIN_INNER)


def test_small_preview_crops_run_on_one_torch_thread():
    """A crop of at most ONE_THREAD_CROP_PIXELS runs its forwards on one thread (a second OpenMP
    thread doubled RRDBNet's 8 x 8 crop forward on the render thread); a larger one takes the
    thread tuner's count."""
    from faig_gui.core.preview import PreviewPlan
    from faig_gui.core.render import ONE_THREAD_CROP_PIXELS, OutputCache, RenderRequest, render, render_preview

    module, targ, base, index, mask = _tiny_pair()
    lr = np.random.default_rng(1).random((64, 64, 3)).astype(np.float32)
    req = RenderRequest(1, lr, None, module, targ, base, index, mask, 2, 1, 0.0, max_threads=2)
    cache = OutputCache()
    render(req, cache)
    cache.threads.apply = lambda *a, **kw: (torch.set_num_threads(2), 2)[1]   # the tuner's choice here
    before = torch.get_num_threads()
    try:
        small = PreviewPlan((28, 28, 36, 36), (28, 28, 36, 36), True, False, 8.0)
        assert 8 * 8 <= ONE_THREAD_CROP_PIXELS
        assert render_preview(req, cache, small).threads == 1 and torch.get_num_threads() == 1
        large = PreviewPlan((16, 16, 48, 48), (24, 24, 40, 40), True, True, 8.0)
        assert render_preview(req, cache, large).threads == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
