"""IncrementalForward: only what a change of weights touches is recomputed, and the output is
the plain forward's, also for modules with in-place operations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import fx, nn
from torch.func import functional_call
from torch.nn import functional as F

from faig_gui.core.filters import FilterIndex
from faig_gui.core.incremental import IncrementalForward
from faig_gui.core.masking import FilterMask, masked_state_dict
from faig_gui.core.registry import default_registry


def plain(module, params, x):
    with torch.no_grad():
        return functional_call(module, dict(params), (x,))


@pytest.fixture(scope="module")
def pair():
    arch = default_registry().get("msrresnet")
    torch.manual_seed(0)
    base = arch.new_state_dict(num_feat=8, num_block=2, scale=2)
    targ = {k: v + 0.05 * torch.randn_like(v) for k, v in base.items()}
    model = default_registry().model_from_state_dict(targ)
    return model, base, targ


def test_masks_in_sequence_match_the_plain_forward(pair):
    model, base, targ = pair
    index = FilterIndex.from_state_dict(targ)
    inc = IncrementalForward(model.module, fx.symbolic_trace(model.module).graph)
    x = torch.rand(1, 3, 20, 24)
    np.testing.assert_array_equal(inc.run(x, targ).numpy(), plain(model.module, targ, x).numpy())
    assert inc.last_recomputed == len(inc.nodes)          # a new input: everything
    rng = np.random.default_rng(0)
    last_layer = index.layers[-1]
    for step in range(8):
        if step % 2:   # a filter of the last conv only: a few nodes
            chosen = np.array([last_layer.offset + int(rng.integers(last_layer.count))])
        else:
            chosen = np.sort(rng.choice(index.total, size=20, replace=False))
        params = masked_state_dict(targ, base, FilterMask(chosen), index)
        got = inc.run(x, params)
        np.testing.assert_array_equal(got.numpy(), plain(model.module, params, x).numpy())
        if step % 2:
            # the earlier step's mask is undone too, so count from the first layer that differs
            assert inc.last_recomputed < len(inc.nodes)
    # the same weights again: nothing to do
    inc.run(x, params)
    assert inc.last_recomputed == 0
    # a late layer alone, relative to the last call
    p2 = dict(params)
    p2[last_layer.name] = params[last_layer.name] * 1.5
    np.testing.assert_array_equal(inc.run(x, p2).numpy(), plain(model.module, p2, x).numpy())
    assert 0 < inc.last_recomputed <= 4


class InPlace(nn.Module):
    """Residual net written with every kind of in-place operation."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.c = nn.Conv2d(4, 3, 3, padding=1)
        self.d = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        skip = self.act(self.a(x))
        y = self.b(skip)
        y.add_(self.d(x))               # mutates b's output with another branch's
        y += skip                       # traced as an addition
        y = F.leaky_relu(y, 0.1, inplace=True)
        z = self.c(y)
        z.mul_(0.5)                      # an in-place method
        return z + x


def test_in_place_operations_never_change_kept_outputs():
    torch.manual_seed(1)
    m = InPlace().eval()
    inc = IncrementalForward(m, fx.symbolic_trace(m).graph)
    x = torch.rand(1, 3, 10, 12)
    params = dict(m.state_dict())
    np.testing.assert_allclose(inc.run(x, params).numpy(), plain(m, params, x).numpy(), rtol=0, atol=1e-6)
    for name in ("c.weight", "d.weight", "d.weight", "b.weight", "c.bias", "a.weight", "c.weight"):
        params = {**params, name: params[name] + 0.1 * torch.randn_like(params[name])}
        np.testing.assert_allclose(inc.run(x, params).numpy(), plain(m, params, x).numpy(), rtol=0, atol=1e-6)
    assert inc.last_recomputed < len(inc.nodes)   # c alone: the skip and b are kept


def test_large_inputs_run_the_plain_forward(pair):
    model, _, targ = pair
    inc = IncrementalForward(model.module, fx.symbolic_trace(model.module).graph, max_pixels=100)
    x = torch.rand(1, 3, 12, 12)
    np.testing.assert_array_equal(inc.run(x, targ).numpy(), plain(model.module, targ, x).numpy())
    assert inc.last_recomputed == len(inc.nodes) and inc._values == {}
