"""The centre view's render engine, without Qt: outputs against the test's own network and masked
weights made by hand, the effect and PSNR against float64 literals."""
from __future__ import annotations

import time

import numpy as np
import torch

from faig_gui.core.filters import FilterIndex
from faig_gui.core.graph import traced_graph
from faig_gui.core.masking import FilterMask
from faig_gui.core.registry import default_registry
from faig_gui.core.render import OutputCache, RenderRequest, render, same_output
from reference_nets import msrresnet_from_state_dict
from tolerances import effect_atol, forward_atol


def tiny_models():
    arch = default_registry().get("msrresnet")
    torch.manual_seed(3)
    base = arch.new_state_dict(num_feat=4, num_block=1, scale=2)
    targ = {k: v + 0.3 * torch.randn_like(v) for k, v in base.items()}
    reg = default_registry()
    return reg.model_from_state_dict(base), reg.model_from_state_dict(targ)


def request(baseline, target, mask: FilterMask, lr: np.ndarray, gt: np.ndarray | None) -> RenderRequest:
    return RenderRequest(1, lr, gt, target.module, target.state_dict, baseline.state_dict,
                         FilterIndex.from_state_dict(target.state_dict), mask, 2, 1, time.perf_counter(),
                         1, traced_graph(target))


def by_hand(sd: dict, lr: np.ndarray) -> np.ndarray:
    """The test's own BasicSR network with the given weights, one plain forward, HWC in [0, 1]."""
    net = msrresnet_from_state_dict(sd)
    net.load_state_dict(sd)
    with torch.no_grad():
        y = net(torch.from_numpy(lr.transpose(2, 0, 1).copy())[None].float())
    return y[0].clamp(0, 1).permute(1, 2, 0).numpy()


def literal_gradient(img: np.ndarray) -> np.ndarray:
    """Grey (BT.601), central differences with reflect-101 borders, sqrt(gx² + gy² + 1e-6), float64."""
    g = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    p = np.pad(g, 1, mode="reflect")
    gx = p[1:-1, 2:] - p[1:-1, :-2]
    gy = p[2:, 1:-1] - p[:-2, 1:-1]
    return np.sqrt(gx * gx + gy * gy + 1e-6)


def test_render_matches_a_plain_forward_of_masked_weights_and_literal_metrics():
    baseline, target = tiny_models()
    rng = np.random.default_rng(0)
    lr = rng.random((12, 10, 3)).astype(np.float32)
    gt = rng.random((24, 20, 3)).astype(np.float32)
    index = FilterIndex.from_state_dict(target.state_dict)
    chosen = np.arange(0, index.total, 7)
    r = render(request(baseline, target, FilterMask(chosen), lr, gt), OutputCache())

    # the masked weights by hand: filters numbered by walking the state dict's 4-D weights, each
    # chosen (layer, out, in) takes the baseline's kernel
    numbered = [(k, o, i) for k, v in target.state_dict.items() if k.endswith("weight") and v.dim() == 4
                for o in range(v.shape[0]) for i in range(v.shape[1])]
    assert len(numbered) == index.total
    masked = {k: v.clone() for k, v in target.state_dict.items()}
    for g in chosen:
        layer, o, i = numbered[g]
        masked[layer][o, i] = baseline.state_dict[layer][o, i]
    want_t, want_m = by_hand(target.state_dict, lr), by_hand(masked, lr)
    atol = forward_atol(target.module)   # float32 forwards summing in another order
    np.testing.assert_allclose(r.target, want_t, atol=atol)
    np.testing.assert_allclose(r.masked, want_m, atol=atol)
    assert r.input.shape == (24, 20, 3) and np.array_equal(r.input[::2, ::2], lr)

    g_t, g_m = literal_gradient(want_t), literal_gradient(want_m)
    effect = 1000 * np.mean((g_m - g_t) ** 2)
    assert abs(r.effect - effect) <= effect_atol(g_m - g_t, atol)
    assert r.effect > 10 * effect_atol(g_m - g_t, atol)   # the bound is far below the effect itself
    # PSNR in float64 of the clipped outputs against the ground truth
    for got, out in ((r.psnr_target, r.target), (r.psnr_masked, r.masked)):
        mse = np.mean((out.astype(np.float64) - gt) ** 2)
        assert abs(got - 10 * np.log10(1 / mse)) < 1e-6


def test_an_empty_mask_reuses_the_target_and_the_cache_keeps_it():
    baseline, target = tiny_models()
    lr = np.random.default_rng(1).random((8, 8, 3)).astype(np.float32)
    cache = OutputCache()
    req = request(baseline, target, FilterMask(np.array([], dtype=np.int64)), lr, None)
    first = render(req, cache)
    assert first.masked is first.target and first.effect == 0.0 and first.psnr_target is None
    second = render(req, cache)
    assert second.target is first.target and cache.forwards["render"] == 1
    assert same_output(req, req) and not same_output(req, request(baseline, target, FilterMask(np.array([1])), lr, None))


def test_a_toggle_remakes_only_the_layer_it_touches_and_renders_as_a_fresh_mask():
    """Two renders in a row, the second with one more filter masked: its output is the plain
    forward of weights masked by hand, and of the masked weights only the layer of the toggled
    filter is a new tensor (the others are the first render's, so no other layer is copied or
    compared again)."""
    baseline, target = tiny_models()
    lr = np.random.default_rng(2).random((8, 8, 3)).astype(np.float32)
    index = FilterIndex.from_state_dict(target.state_dict)
    chosen = np.arange(0, index.total, 5)
    layer = index.layers[2]
    extra = next(g for g in range(layer.offset, layer.offset + layer.count) if g % 5)   # not masked yet
    cache = OutputCache()
    first_req = request(baseline, target, FilterMask(chosen), lr, None)
    render(first_req, cache)
    first = cache.masked_params(first_req)
    second_req = request(baseline, target, FilterMask(np.append(chosen, extra)), lr, None)
    r = render(second_req, cache)
    second = cache.masked_params(second_req)
    assert [k for k in second if second[k] is not first[k]] == [layer.name]

    numbered = [(k, o, i) for k, v in target.state_dict.items() if k.endswith("weight") and v.dim() == 4
                for o in range(v.shape[0]) for i in range(v.shape[1])]
    masked = {k: v.clone() for k, v in target.state_dict.items()}
    for g in np.append(chosen, extra):
        name, o, i = numbered[g]
        masked[name][o, i] = baseline.state_dict[name][o, i]
    np.testing.assert_allclose(r.masked, by_hand(masked, lr), atol=forward_atol(target.module))
