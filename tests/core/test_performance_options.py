"""The engine's options beyond the paper give the right numbers (not how fast they are; the
timings are bench/'s job): Gauss-Legendre nodes integrate a polynomial path gradient exactly,
chunking and the memory budget change nothing but the batching, bf16 stays close to fp32.

Independent computations here: plain autograd on a freshly built module at each path point,
Simpson's rule (exact for cubics) for the path integral, per-filter sums over a state dict."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from faig_gui.core import attribution
from faig_gui.core.analysis import AnalysisConfig, analyze, run_to_end
from faig_gui.core.attribution import (PathOptions, activation_bytes, bf16_native, chunk_size,
                                       faig_attribution, ig_attribution)
from faig_gui.core.dataset import AnalysisImage
from faig_gui.core.paths import gauss_legendre, riemann_left
from faig_gui.core.registry import default_registry
from tolerances import assert_path_sum_close, path_terms


def linear_net() -> nn.Module:
    """Two convolutions, no nonlinearity: the output is quadratic in α along the path, the
    loss gradient cubic, so a 2-node Gauss-Legendre rule (exact to degree 3) is exact."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 3, 3, padding=1))


def random_pair(seed: int = 0):
    torch.manual_seed(seed)
    base = {k: v.detach().clone() for k, v in linear_net().state_dict().items()}
    target = {k: v + 0.5 * v.abs().mean() * torch.randn_like(v) for k, v in base.items()}
    return base, target


def gradient_at(base, target, alpha: float, lr, hr) -> dict[str, torch.Tensor]:
    net = linear_net().double()
    net.load_state_dict({k: (alpha * base[k] + (1 - alpha) * target[k]).double() for k in base})
    loss = ((net(lr.double()) - hr.double()) ** 2).sum()
    loss.backward()
    return {k: p.grad for k, p in net.named_parameters()}


def per_filter_sum_abs(tensors: dict[str, torch.Tensor]) -> np.ndarray:
    return np.concatenate([t.abs().sum(dim=(2, 3)).reshape(-1).numpy() for t in tensors.values()])


def test_gauss_legendre_faig_is_exact_for_a_cubic_path_gradient():
    base, target = random_pair()
    g = torch.Generator().manual_seed(1)
    lr, hr = torch.rand(1, 3, 6, 6, generator=g), torch.rand(1, 3, 6, 6, generator=g)
    # Simpson's rule is exact for cubics: ∫₀¹ f = (f(0) + 4 f(½) + f(1)) / 6
    g0, gm, g1 = (gradient_at(base, target, a, lr, hr) for a in (0.0, 0.5, 1.0))
    weights = [k for k, v in base.items() if v.ndim == 4]
    integral = {k: (g0[k] + 4 * gm[k] + g1[k]) / 6 for k in weights}
    expected = per_filter_sum_abs({k: (base[k].double() - target[k].double()) * integral[k] for k in weights})

    for nodes in (2, 3, 5):
        got = faig_attribution(linear_net(), base, target, lr, hr, options=PathOptions(gauss_legendre(nodes)))
        # float32 against float64; a linear net has no kink, so no filter may be off
        assert_path_sum_close(got, expected, path_terms(linear_net(), 6 * 6), flips_allowed=0)
    # one node (exact only to degree 1) is not: the test can tell a wrong rule
    one = faig_attribution(linear_net(), base, target, lr, hr, options=PathOptions(gauss_legendre(1)))
    assert np.max(np.abs(one - expected)) > 1e-3 * expected.max()


def tiny_msrresnet_pair(seed: int = 0, num_feat: int = 8, num_block: int = 2):
    reg = default_registry()
    torch.manual_seed(seed)
    base = reg.get("msrresnet").new_state_dict(num_feat=num_feat, num_block=num_block, scale=2)
    target = {k: v + 0.3 * (v.std() + 0.01) * torch.randn_like(v) for k, v in base.items()}
    return reg.model_from_state_dict(base), reg.model_from_state_dict(target)


def image(seed: int, side: int = 8) -> AnalysisImage:
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(1, 3, 2 * side, 2 * side, generator=g)
    clean = torch.rand(1, 3, side, side, generator=g)
    blur = (clean + 0.05 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    noise = (clean + 0.2 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    return AnalysisImage(f"img{seed}", hr, {"blur": blur, "noise": noise}, clean)


@pytest.mark.parametrize("rule", [riemann_left(11), gauss_legendre(5)])
def test_every_chunking_gives_the_unchunked_numbers(rule):
    base, targ = tiny_msrresnet_pair()
    img = image(0)
    lr = img.lr["noise"]

    def run(**kw):
        return faig_attribution(targ.module, base.state_dict, targ.state_dict, lr, img.hr,
                                options=PathOptions(rule, **kw))

    unchunked = run(chunk=len(rule))          # every step in one vmapped batch
    one_by_one = run(chunk=1)                 # batch size 1, no vmap at all
    uneven = run(chunk=4)                     # a short last chunk
    tight = run(memory_budget=1)              # a budget below one step: chunk 1
    # both sides float32 in other orders: twice one side's rounding; a vmapped batch may put a
    # LeakyReLU input that sits within rounding of zero on the kink's other side (tests/tolerances.py)
    n = 2 * path_terms(targ.module, img.hr.shape[-1] * img.hr.shape[-2])
    for other in (one_by_one, uneven, tight):
        assert_path_sum_close(other, unchunked, n)


def test_ig_chunking_gives_the_unchunked_numbers():
    base, targ = tiny_msrresnet_pair(1)
    img = image(1)
    rule = riemann_left(7)
    a = ig_attribution(targ.module, targ.state_dict, img.clean_lr, img.lr["blur"], options=PathOptions(rule, chunk=7))
    b = ig_attribution(targ.module, targ.state_dict, img.clean_lr, img.lr["blur"], options=PathOptions(rule, chunk=3))
    assert_path_sum_close(b, a, 2 * path_terms(targ.module, img.hr.shape[-1] * img.hr.shape[-2]))


def test_activation_bytes_counts_every_leaf_output():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))
    x = torch.rand(1, 3, 5, 5)
    # conv 4x5x5, relu 4x5x5, conv 3x5x5 float32 outputs
    assert activation_bytes(net, x) == (100 + 100 + 75) * 4
    # a second size is measured for itself, not taken from the first
    assert activation_bytes(net, torch.rand(1, 3, 2, 2)) == (16 + 16 + 12) * 4


def test_memory_budget_sets_the_chunk():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))
    x = torch.rand(1, 3, 5, 5)
    params = (4 * 3 * 9 + 4) + (3 * 4 * 9 + 3)
    # 3 x the activations (with their gradients, pre-activation copies), 2 x the stacked weights
    per_step = 3 * 275 * 4 + 2 * params * 4
    fixed = 8 * params * 4  # weight change, gradient sum, products, slack
    rule = riemann_left(20)
    assert chunk_size(net, x, 20, PathOptions(rule, memory_budget=fixed + per_step * 6)) == 6
    assert chunk_size(net, x, 20, PathOptions(rule, memory_budget=fixed + per_step * 6 - 1)) == 5
    assert chunk_size(net, x, 20, PathOptions(rule, memory_budget=per_step - 1)) == 1
    assert chunk_size(net, x, 20, PathOptions(rule, memory_budget=per_step * 1000)) == 20
    assert chunk_size(net, x, 20, PathOptions(rule, chunk=5, memory_budget=1)) == 5  # explicit wins


def top_set(scores: np.ndarray, proportion: float) -> set[int]:
    k = max(1, int(round(len(scores) * proportion)))
    return set(np.argsort(-scores)[:k].tolist())


@pytest.mark.parametrize("chunk", [1, 4])
def test_bf16_faig_is_close_to_fp32(chunk):
    base, targ = tiny_msrresnet_pair(2)
    img = image(2)
    rule = gauss_legendre(4)
    fp32 = faig_attribution(targ.module, base.state_dict, targ.state_dict, img.lr["blur"], img.hr,
                            options=PathOptions(rule))
    bf16 = faig_attribution(targ.module, base.state_dict, targ.state_dict, img.lr["blur"], img.hr,
                            options=PathOptions(rule, chunk=chunk, precision="bf16"))
    assert bf16.dtype == np.float64 and np.isfinite(bf16).all()
    rel = np.linalg.norm(bf16 - fp32) / np.linalg.norm(fp32)
    # bf16 (8-bit mantissa) must really run, batched (vmap) or not, and stay close
    assert 1e-4 < rel < 0.05, rel
    overlap = len(top_set(bf16, 0.1) & top_set(fp32, 0.1)) / len(top_set(fp32, 0.1))
    assert overlap >= 0.85, overlap


def test_bf16_analysis_ranks_like_fp32():
    base, targ = tiny_msrresnet_pair(3)
    images = [image(3), image(4)]
    fp32 = run_to_end(analyze(base, targ, images, AnalysisConfig("faig", 3, "gauss-legendre", "cpu")))
    bf16 = run_to_end(analyze(base, targ, images, AnalysisConfig("faig", 3, "gauss-legendre", "cpu", "bf16")))
    assert bf16.precision == "bf16" and bf16.report()["precision"] == "bf16"
    for d in ("blur", "noise"):
        overlap = len(top_set(bf16.scores[d], 0.1) & top_set(fp32.scores[d], 0.1)) / len(top_set(fp32.scores[d], 0.1))
        assert overlap >= 0.8, (d, overlap)


def test_bf16_warns_once_exactly_when_kernels_are_slow(caplog, monkeypatch):
    monkeypatch.setattr(attribution, "_WARNED_BF16", set())
    base, targ = tiny_msrresnet_pair(4, num_feat=4, num_block=1)
    img = image(5, side=4)
    options = PathOptions(riemann_left(1), precision="bf16")
    with caplog.at_level(logging.WARNING, logger="faig_gui"):
        for _ in range(2):
            faig_attribution(targ.module, base.state_dict, targ.state_dict, img.lr["blur"], img.hr, options=options)
    warned = [r for r in caplog.records if "bf16" in r.getMessage()]
    # bf16_native must agree with what the CPU says about itself
    flags = open("/proc/cpuinfo").read() if __import__("os").path.exists("/proc/cpuinfo") else ""
    cpu_has_bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    assert bf16_native(torch.device("cpu")) == cpu_has_bf16
    assert len(warned) == (0 if cpu_has_bf16 else 1)


def test_unknown_precision_is_a_user_error():
    from faig_gui.core.errors import FaigError
    base, targ = tiny_msrresnet_pair(5, num_feat=4, num_block=1)
    img = image(6, side=4)
    with pytest.raises(FaigError, match="precision"):
        faig_attribution(targ.module, base.state_dict, targ.state_dict, img.lr["blur"], img.hr,
                         options=PathOptions(riemann_left(2), precision="fp8"))


def test_cpu_batches_small_inputs_only():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
    rule = riemann_left(40)
    big = PathOptions(rule, memory_budget=1 << 40)
    # 64x64 and up: one step at a time; smaller: enough steps to hold 64x64 pixels
    assert chunk_size(net, torch.rand(1, 3, 64, 64), 40, big) == 1
    assert chunk_size(net, torch.rand(1, 3, 32, 32), 40, big) == 4
    assert chunk_size(net, torch.rand(1, 3, 16, 16), 40, big) == 16
    assert chunk_size(net, torch.rand(1, 3, 16, 16), 10, big) == 10   # never more than the steps
    # the budget still wins when it is the tighter bound
    params = (4 * 3 * 9 + 4) * 4
    per_step = 3 * 4 * 16 * 16 * 4 + 2 * params  # 3 x the conv output, 2 x the weights
    budget = 8 * params + per_step * 3
    assert chunk_size(net, torch.rand(1, 3, 16, 16), 40, PathOptions(rule, memory_budget=budget)) == 3
