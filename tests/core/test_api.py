"""The public API (faig_gui.FAIG) on plain nn.Modules no plugin knows, against literal float64
computations written here: the path is walked step by step with a fresh float64 copy of the
net at each α, every parameter's gradient (biases too) taken by autograd, the loss change by
forwarding both models. Also: the caller's module is left exactly as it was."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from faig_gui import FAIG
from faig_gui.core.errors import FaigError
from tolerances import U32, gamma, walk


class TinySR(nn.Module):
    """conv - act - conv - PixelShuffle(2): biases everywhere; Tanh keeps the path smooth (the
    Euler-Maclaurin check needs a smooth integrand), LeakyReLU for the kinked case."""

    def __init__(self, act: nn.Module | None = None, dropout: float = 0.0):
        super().__init__()
        self.head = nn.Conv2d(3, 5, 3, padding=1)
        self.act = act or nn.Tanh()
        self.drop = nn.Dropout(dropout)
        self.tail = nn.Conv2d(5, 12, 3, padding=1)
        self.up = nn.PixelShuffle(2)

    def forward(self, x):
        return self.up(self.tail(self.drop(self.act(self.head(x)))))


def pair(seed: int = 0, change: float = 0.5, **kw) -> tuple[TinySR, TinySR]:
    torch.manual_seed(seed)
    base = TinySR(**kw)
    target = copy.deepcopy(base)
    with torch.no_grad():
        for p in target.parameters():
            p.add_(change * p.abs().mean() * torch.randn_like(p))
    return base, target


def images(n: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    hr = torch.rand(n, 3, 12, 12, generator=g)
    clean = torch.nn.functional.avg_pool2d(hr, 2)
    return {"blur": clean, "noise": (clean + 0.1 * torch.randn(clean.shape, generator=g)).clamp(0, 1)}, hr


def sse64(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((copy.deepcopy(net).double().eval()(x.double()) - y.double()) ** 2).sum())


def literal_path(base: nn.Module, target: nn.Module, x, y, alphas, weights):
    """(per-filter A_k, signed Σ over every parameter of (θ̄ − θ)·Σ_s w_s ∇L) in float64."""
    b, t = base.state_dict(), target.state_dict()
    grad = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in t.items()}
    for a, w in zip(alphas, weights):
        net = copy.deepcopy(target).double().eval()
        net.load_state_dict({k: a * b[k].double() + (1 - a) * t[k].double() for k in t})
        ((net(x.double()) - y.double()) ** 2).sum().backward()
        for k, p in net.named_parameters():
            grad[k] += w * p.grad
    prod = {k: (b[k].double() - t[k].double()) * grad[k] for k in t}
    filters = []
    for k, v in prod.items():
        if k.endswith("weight") and v.dim() == 4:
            for o in range(v.shape[0]):
                for i in range(v.shape[1]):
                    filters.append(float(v[o, i].abs().sum()))
    return np.array(filters), float(sum(v.sum() for v in prod.values()))


def test_convergence_delta_against_the_loss_change_computed_here():
    base, target = pair()
    inputs, hr = images()
    steps = 8
    result, conv = FAIG(target, base).attribute(inputs, hr, n_steps=steps, device="cpu",
                                                return_convergence_delta=True)
    alphas = [s / steps for s in range(steps)]
    for d, lr in inputs.items():
        for j in range(len(hr)):
            x, y = lr[j:j + 1], hr[j:j + 1]
            change = sse64(base, x, y) - sse64(target, x, y)
            filters, signed = literal_path(base, target, x, y, alphas, [1 / steps] * steps)
            # the loss change: float32 forwards of 432 outputs, each the end of a chain of 2 dot
            # products of ≤ 46 terms; summed in float64, so the error is ~ walk(92) of Σ|F−y|·|F|,
            # bounded here by walk(92) · 2 · the loss itself
            loss = sse64(target, x, y)
            assert conv.loss_change[d][j] == pytest.approx(change, abs=2 * walk(92) * loss)
            # the delta: the literal signed sum minus the literal change; float32 path gradients
            # (sums of 36 · 432 products at most) against float64: their random-walk rounding
            # on the signed sum's terms (bounded by the per-filter |products| summed)
            tol = walk(36 * 432) * filters.sum() + 2 * walk(92) * loss
            assert conv.delta[d][j] == pytest.approx(signed - change, abs=tol)
            # the attributions themselves
            np.testing.assert_allclose(result.attributions[d][j], filters, rtol=0,
                                       atol=gamma(36 * 432) * filters.max())
    assert np.all(conv.relative["blur"] == np.abs(conv.delta["blur"]) / np.abs(conv.loss_change["blur"]))


def test_delta_shrinks_as_the_steps_grow_like_one_over_n():
    base, target = pair(seed=3, change=1.0)
    inputs, hr = images(1, seed=4)
    x, y = inputs["noise"], hr
    faig = FAIG(target, base)
    deltas = {n: faig.attribute(x, y, n_steps=n, device="cpu", return_convergence_delta=True)[1].delta["input"][0]
              for n in (4, 16, 64)}
    assert abs(deltas[64]) < abs(deltas[16]) < abs(deltas[4])
    # Euler-Maclaurin for the left Riemann sum of a smooth f = dL/dα on [0, 1]:
    # error = ∫f − Σ/N = (f(1) − f(0)) / (2N) + O(1/N²), so delta = Σ − ∫ ≈ −(f(1) − f(0)) / (2N)
    f0 = literal_path(base, target, x, y, [0.0], [1.0])[1]
    f1 = literal_path(base, target, x, y, [1.0], [1.0])[1]
    for n in (16, 64):
        predicted = -(f1 - f0) / (2 * n)
        # the remainder, next term (f'(1) − f'(0)) / (12 N²), is 3e-4 of the first at N = 16
        # here; 0.5 / N allows a path a hundred times as curved (float32 rounding: < 1e-5)
        assert deltas[n] == pytest.approx(predicted, rel=0.5 / n)
    # Gauss-Legendre on the same smooth path: 8 nodes leave far less than 64 Riemann steps
    gl = faig.attribute(x, y, n_steps=8, method="gausslegendre", device="cpu", return_convergence_delta=True)[1]
    assert abs(gl.delta["input"][0]) < abs(deltas[64]) / 10


def test_discriminative_scores_and_top_filters():
    base, target = pair(seed=5, act=nn.LeakyReLU(0.1))
    inputs, hr = images(2, seed=6)
    result = FAIG(target, base).attribute(inputs, hr, n_steps=4, device="cpu")
    a = result.attributions
    assert a["blur"].shape == (2, 5 * 3 + 12 * 5)
    # FAIG(d) = mean over images of A(x_d) − A(x_other), written out for two degradations
    blur = ((a["blur"][0] - a["noise"][0]) + (a["blur"][1] - a["noise"][1])) / 2
    np.testing.assert_allclose(result.scores["blur"], blur, rtol=0, atol=4 * U32 * np.abs(a["blur"]).max())
    top = result.top("blur", count=3)
    assert list(top) == list(np.argsort(-blur, kind="stable")[:3])
    assert result.filters.describe(int(top[0])).split("[")[0] in ("head.weight", "tail.weight")
    # one degradation: no discriminative scores; the ranking is the image mean
    single = FAIG(target, base).attribute(inputs, hr, degradations=["noise"], n_steps=4, device="cpu")
    assert single.scores is None and single.degradations == ("noise",)
    np.testing.assert_array_equal(single.attributions["noise"], a["noise"])
    np.testing.assert_array_equal(single.top("noise", count=2), np.argsort(-a["noise"].mean(0), kind="stable")[:2])


def test_masked_replaces_exactly_the_chosen_kernels():
    base, target = pair(seed=7)
    faig = FAIG(target, base.state_dict())
    masked = faig.masked([0, 5 * 3 + 7])          # head[0, 0] and tail[1, 2]
    m, t, b = masked.state_dict(), target.state_dict(), base.state_dict()
    assert torch.equal(m["head.weight"][0, 0], b["head.weight"][0, 0])
    assert torch.equal(m["tail.weight"][1, 2], b["tail.weight"][1, 2])
    changed = sum(int((m[k] != t[k]).any(dim=(-1, -2)).sum()) for k in ("head.weight", "tail.weight"))
    assert changed == 2 and torch.equal(m["head.bias"], t["head.bias"])


def test_the_callers_module_is_left_as_it_was():
    base, target = pair(seed=8, dropout=0.5)
    target.train()
    params = {k: (p, p.detach().clone(), p.requires_grad) for k, p in target.named_parameters()}
    inputs, hr = images(1)
    result = FAIG(target, base).attribute(inputs, hr, n_steps=3, device="cpu")
    assert target.training and all(m.training for m in target.modules())
    for k, p in target.named_parameters():
        same, value, grad_flag = params[k]
        assert p is same and torch.equal(p, value) and p.requires_grad == grad_flag and p.grad is None
        assert p.device.type == "cpu" and p.dtype == torch.float32
    # the run used eval mode on its copy: dropout off, so a second run gives the same numbers
    again = FAIG(target, base).attribute(inputs, hr, n_steps=3, device="cpu")
    np.testing.assert_array_equal(result.scores["blur"], again.scores["blur"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_module_on_the_gpu_stays_there_when_attributing_on_the_cpu():
    base, target = pair(seed=9)
    target.cuda()
    inputs, hr = images(1)
    FAIG(target, base).attribute(inputs, hr, n_steps=2, device="cpu")
    assert all(p.device.type == "cuda" for p in target.parameters())
    result = FAIG(target, base).attribute({k: v.cuda() for k, v in inputs.items()}, hr.cuda(), n_steps=2,
                                          device="cuda")
    assert all(p.device.type == "cuda" for p in target.parameters()) and result.scores is not None


@pytest.mark.parametrize("call, message", [
    (lambda f, i, h: f.attribute(i, h[:1]), "holds 2 images"),
    (lambda f, i, h: f.attribute(i, h, degradations=["rain"]), "among the inputs"),
    (lambda f, i, h: f.attribute(i["blur"], h, degradations=["blur", "noise"]), "one degradation"),
    (lambda f, i, h: f.attribute(i, h, method="riemann_middle"), "unknown method"),
    (lambda f, i, h: f.attribute(i, h, n_steps=0), "n_steps"),
    (lambda f, i, h: f.attribute(i, h[0]), "targets must be"),
    (lambda f, i, h: f.attribute(i, h, internal_batch_size=0), "internal_batch_size"),
])
def test_bad_input_gets_a_clear_error(call, message):
    base, target = pair()
    inputs, hr = images()
    with pytest.raises(FaigError, match=message):
        call(FAIG(target, base), inputs, hr)


def test_a_baseline_of_another_shape_is_refused():
    _, target = pair()
    other = TinySR()
    other.head = nn.Conv2d(3, 6, 3, padding=1)
    with pytest.raises(FaigError, match="head.weight"):
        FAIG(target, other)
    with pytest.raises(FaigError, match="missing"):
        FAIG(target, {"head.weight": target.head.weight})


def test_report_figures_stay_valid_json_for_stored_images_and_a_flat_loss():
    from faig_gui.core.analysis import convergence_report, convergence_summary
    from faig_gui.core.attribution import PathCheck
    import json
    conv = {"blur": [PathCheck(1.1, 10.0, 11.0), None], "noise": [PathCheck(0.5, 3.0, 3.0), PathCheck(2.0, 1.0, 2.0)]}
    report = json.loads(json.dumps(convergence_report(conv), allow_nan=False))
    # blur: sum 1.1 against a change of 1.0; noise: the loss does not change but the sum does
    assert report["delta"]["blur"] == [pytest.approx(0.1), None]
    assert report["relative"]["blur"] == [pytest.approx(0.1), None]
    assert report["relative"]["noise"] == [None, pytest.approx(1.0)]
    assert report["max_relative"] is None and report["steps_suffice"] is False
    assert "inf" in convergence_summary(conv) and "use more steps" in convergence_summary(conv)
    fine = {"blur": [PathCheck(1.004, 10.0, 11.0)]}
    assert convergence_report(fine)["steps_suffice"] is True
    assert convergence_summary(fine) == "convergence delta: max 0.4 % of L(θ̄)−L(θ) — steps suffice"
