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
from tolerances import forward_atol


def engine(module) -> IncrementalForward:
    return IncrementalForward(module, fx.symbolic_trace(module).graph)


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
    inc = engine(model.module)
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
    np.testing.assert_allclose(inc.run(x, params).numpy(), plain(m, params, x).numpy(), rtol=0, atol=forward_atol(m))
    for name in ("c.weight", "d.weight", "d.weight", "b.weight", "c.bias", "a.weight", "c.weight"):
        params = {**params, name: params[name] + 0.1 * torch.randn_like(params[name])}
        np.testing.assert_allclose(inc.run(x, params).numpy(), plain(m, params, x).numpy(), rtol=0, atol=forward_atol(m))
    assert inc.last_recomputed < len(inc.nodes)   # c alone: the skip and b are kept


def test_large_inputs_run_the_plain_forward(pair):
    model, _, targ = pair
    inc = IncrementalForward(model.module, fx.symbolic_trace(model.module).graph, max_pixels=100)
    x = torch.rand(1, 3, 12, 12)
    np.testing.assert_array_equal(inc.run(x, targ).numpy(), plain(model.module, targ, x).numpy())
    assert inc.last_recomputed == len(inc.nodes) and inc._main.values == {}


def test_inputs_whose_records_exceed_the_byte_budget_run_the_plain_forward():
    """A record's bytes per input pixel, counted by hand for a small net, decide: two records of
    an input must fit ``max_bytes``, else the run keeps nothing and equals the plain forward."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1)).eval()
    params = dict(m.state_dict())
    # kept per pixel: the input (3 channels), conv (4), relu (4), conv (5; the output node returns
    # that same tensor), float32
    per_pixel = (3 + 4 + 4 + 5) * 4
    x = torch.rand(1, 3, 10, 10)
    fits = IncrementalForward(m, fx.symbolic_trace(m).graph, max_bytes=2 * per_pixel * 100)
    assert fits.bytes_per_pixel(x) == per_pixel and fits.keeps(x)
    fits.run(x, params)
    assert fits._main.values   # kept
    over = IncrementalForward(m, fx.symbolic_trace(m).graph, max_bytes=2 * per_pixel * 100 - 1)
    assert not over.keeps(x)
    np.testing.assert_array_equal(over.run(x, params).numpy(), plain(m, params, x).numpy())
    assert over._main.values == {} and over.last_recomputed == len(over.nodes)


class StopAfter:
    """should_stop that answers True from its (n+1)-th question on, counting the questions."""

    def __init__(self, n: int):
        self.n, self.asked = n, 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.asked > self.n


def test_an_aside_run_leaves_the_record_and_stopping_it_costs_nothing(pair):
    from faig_gui.core.attribution import Cancelled
    model, base, targ = pair
    index = FilterIndex.from_state_dict(targ)
    inc = engine(model.module)
    x = torch.rand(1, 3, 16, 20)
    rng = np.random.default_rng(3)
    first = masked_state_dict(targ, base, FilterMask(rng.choice(index.total, 30, replace=False)), index)
    inc.run(x, first)
    n_nodes = len(inc.nodes)
    last_layer = index.layers[-1]

    def kept():
        return dict(inc._main.values)

    def first_layer_change():
        return masked_state_dict(targ, base, FilterMask(rng.choice(index.layers[0].count, 3, replace=False)), index)

    # a change in the first layer: all but the input and its upsampled copy (the global skip)
    # run again, so an aside run of it stops at stop_at
    for stop_at in (0, 1, 5, n_nodes // 2, n_nodes - 3):
        before = kept()
        with pytest.raises(Cancelled):
            inc.run(x, first_layer_change(), should_stop=StopAfter(stop_at), aside=True)
        assert inc.last_recomputed == stop_at
        assert kept().keys() == before.keys() and all(kept()[k] is v for k, v in before.items())
        # the weights of the record: nothing to compute, the same output
        np.testing.assert_array_equal(inc.run(x, first).numpy(), plain(model.module, first, x).numpy())
        assert inc.last_recomputed == 0
        # weights that differ from the record in the last layer only: its few nodes
        late = dict(first)
        late[last_layer.name] = first[last_layer.name] + 0.1 * torch.randn_like(first[last_layer.name])
        with pytest.raises(Cancelled):
            inc.run(x, first_layer_change(), should_stop=StopAfter(stop_at), aside=True)
        np.testing.assert_array_equal(inc.run(x, late).numpy(), plain(model.module, late, x).numpy())
        assert 0 < inc.last_recomputed <= 4
        first = late
    # an aside run that completes (asked, never stopped) is the plain forward too ...
    guess = first_layer_change()
    before = kept()
    ask = StopAfter(10 ** 9)
    np.testing.assert_array_equal(inc.run(x, guess, should_stop=ask, aside=True).numpy(),
                                  plain(model.module, guess, x).numpy())
    assert ask.asked == inc.last_recomputed == n_nodes - 2
    assert all(kept()[k] is v for k, v in before.items())
    # ... a wrong guess: a late change of the record reruns only the late nodes ...
    late = dict(first)
    late[last_layer.name] = first[last_layer.name] * 0.5
    np.testing.assert_array_equal(inc.run(x, late).numpy(), plain(model.module, late, x).numpy())
    assert 0 < inc.last_recomputed <= 4
    # ... and a right one (asked for after that): nothing to run, it is kept
    np.testing.assert_array_equal(inc.run(x, guess).numpy(), plain(model.module, guess, x).numpy())
    assert inc.last_recomputed == 0
    # a click after the guess came true: from the guess, a few nodes
    click = dict(guess)
    click[last_layer.name] = guess[last_layer.name] * 0.5
    np.testing.assert_array_equal(inc.run(x, click).numpy(), plain(model.module, click, x).numpy())
    assert 0 < inc.last_recomputed <= 4
    # two guesses in a row, the second from the first: both right
    g1, g2 = first_layer_change(), first_layer_change()
    before_guesses = kept()
    for g in (g1, g2):
        np.testing.assert_array_equal(inc.run(x, g, aside=True).numpy(), plain(model.module, g, x).numpy())
    assert all(kept()[k] is v for k, v in before_guesses.items())   # the record: still the click
    inc.run(x, click)
    assert inc.last_recomputed == 0
    for g in (g2, g1, click):
        np.testing.assert_array_equal(inc.run(x, g).numpy(), plain(model.module, g, x).numpy())


def test_a_stopped_run_forgets_what_it_was_to_replace(pair):
    from faig_gui.core.attribution import Cancelled
    model, base, targ = pair
    index = FilterIndex.from_state_dict(targ)
    inc = engine(model.module)
    x = torch.rand(1, 3, 16, 20)
    rng = np.random.default_rng(5)
    params = targ
    inc.run(x, params)
    for stop_at in (0, 2, 7, 12):
        other = masked_state_dict(targ, base, FilterMask(rng.choice(index.total, 25, replace=False)), index)
        with pytest.raises(Cancelled):
            inc.run(x, other, should_stop=StopAfter(stop_at))
        assert inc.last_recomputed == stop_at
        # the record is still the last completed run's weights; what the stopped run had
        # replaced is gone, so it is computed again (the output is right either way)
        np.testing.assert_array_equal(inc.run(x, params).numpy(), plain(model.module, params, x).numpy())
        np.testing.assert_array_equal(inc.run(x, other).numpy(), plain(model.module, other, x).numpy())
        params = other


def test_a_stop_on_a_new_input_keeps_the_old_input(pair):
    from faig_gui.core.attribution import Cancelled
    model, base, targ = pair
    inc = engine(model.module)
    x, y = torch.rand(1, 3, 12, 12), torch.rand(1, 3, 12, 12)
    inc.run(x, targ)
    with pytest.raises(Cancelled):
        inc.run(y, targ, should_stop=StopAfter(3), aside=True)
    inc.run(x, targ)
    assert inc.last_recomputed == 0
    np.testing.assert_array_equal(inc.run(y, targ, aside=True).numpy(), plain(model.module, targ, y).numpy())
    inc.run(x, targ)                     # the record is still x's ...
    assert inc.last_recomputed == 0
    inc.run(y, targ)                     # ... and y's aside run serves y
    assert inc.last_recomputed == 0
    np.testing.assert_array_equal(inc.run(y, targ).numpy(), plain(model.module, targ, y).numpy())


def test_a_run_that_fails_part_way_forgets_what_the_change_touched(pair):
    model, base, targ = pair
    index = FilterIndex.from_state_dict(targ)
    inc = engine(model.module)
    x = torch.rand(1, 3, 14, 14)
    inc.run(x, targ)
    # the first layer changes (its nodes run and replace kept outputs), then a late layer's
    # weights have the wrong shape: the run fails after it replaced part of what it keeps
    bad = masked_state_dict(targ, base, FilterMask(np.arange(index.layers[0].count)), index)
    last = index.layers[-1].name
    bad[last] = bad[last][:, :1]
    with pytest.raises(RuntimeError):
        inc.run(x, bad)
    assert 0 < inc.last_recomputed < len(inc.nodes)
    good = masked_state_dict(targ, base, FilterMask(np.arange(index.layers[0].count)), index)
    np.testing.assert_array_equal(inc.run(x, good).numpy(), plain(model.module, good, x).numpy())
    np.testing.assert_array_equal(inc.run(x, targ).numpy(), plain(model.module, targ, x).numpy())


def test_stopping_in_place_operations_keeps_outputs_right():
    from faig_gui.core.attribution import Cancelled
    torch.manual_seed(2)
    m = InPlace().eval()
    inc = IncrementalForward(m, fx.symbolic_trace(m).graph)
    x = torch.rand(1, 3, 9, 11)
    params = dict(m.state_dict())
    inc.run(x, params)
    rng = np.random.default_rng(0)
    names = ("a.weight", "b.weight", "d.weight", "c.weight", "a.bias", "b.bias", "c.weight", "d.bias")
    for step, name in enumerate(names):
        changed = {**params, name: params[name] + 0.1 * torch.randn_like(params[name])}
        aside = step % 2 == 0
        with pytest.raises(Cancelled):
            inc.run(x, changed, should_stop=StopAfter(int(rng.integers(0, 3))), aside=aside)
        np.testing.assert_allclose(inc.run(x, params).numpy(), plain(m, params, x).numpy(), rtol=0, atol=forward_atol(m))
        if aside:
            assert inc.last_recomputed == 0
        # a completed guess, then the old weights, then the guess: each as the plain forward
        np.testing.assert_allclose(inc.run(x, changed, aside=True).numpy(), plain(m, changed, x).numpy(),
                                   rtol=0, atol=forward_atol(m))
        np.testing.assert_allclose(inc.run(x, params).numpy(), plain(m, params, x).numpy(), rtol=0, atol=forward_atol(m))
        params = changed
        np.testing.assert_allclose(inc.run(x, params).numpy(), plain(m, params, x).numpy(), rtol=0, atol=forward_atol(m))


class _ScaledConv(nn.Conv2d):
    """A subclass with a forward of its own: the direct convolution must not stand in for it."""

    def forward(self, x):
        return 2.0 * super().forward(x)


class _ThreeConvs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.c = _ScaledConv(4, 3, 3, padding=1)

    def forward(self, x):
        return self.c(F.relu(self.b(self.a(x))))


def test_convolutions_run_with_the_given_weights_and_keep_their_hooks():
    torch.manual_seed(1)
    module = _ThreeConvs()
    x = torch.rand(1, 3, 9, 7)
    inc = engine(module)
    params = {k: torch.randn_like(v) for k, v in module.state_dict().items()}
    # by hand: the convolutions with the substituted weights (b without bias, c doubled)
    want = 2.0 * F.conv2d(F.relu(F.conv2d(F.conv2d(x, params["a.weight"], params["a.bias"], padding=1),
                                          params["b.weight"], None, padding=1)),
                          params["c.weight"], params["c.bias"], padding=1)
    # randn weights: activations of O(fan-in) size, not O(1)
    scale = float(want.abs().max())
    torch.testing.assert_close(inc.run(x, params), want, rtol=0, atol=forward_atol(module, scale))
    # the module's own weights are untouched by the run
    assert not torch.equal(module.a.weight, params["a.weight"])
    # a forward hook on a plain convolution still sees its call (and may change its output)
    seen = []
    module.b.register_forward_hook(lambda _m, _i, out: seen.append(out.shape) or out * 0)
    params2 = {**params, "b.weight": params["b.weight"] + 1}
    got = inc.run(x, params2)
    assert seen == [(1, 4, 9, 7)]
    torch.testing.assert_close(got, 2.0 * F.conv2d(torch.zeros(1, 4, 9, 7), params["c.weight"], params["c.bias"],
                                                   padding=1), rtol=0, atol=forward_atol(module, scale))


class _ConvReluConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.b(F.relu(self.a(x)))


def test_the_share_of_a_pass_counts_arithmetic_not_nodes():
    torch.manual_seed(2)
    module = _ConvReluConv()
    inc = engine(module)
    h, w = 6, 5
    x = torch.rand(1, 3, h, w)
    params = dict(module.state_dict())
    inc.run(x, params)
    assert inc.last_share == pytest.approx(1.0)
    # per node, by hand: the input, a (4 outputs per pixel x 3 in x 3x3), relu, b (2 x 4 x 1x1), output
    hw = h * w
    costs = {"x": 3 * hw, "a": 4 * hw * 27, "relu": 4 * hw, "b": 2 * hw * 4, "output": 2 * hw}
    total = sum(costs.values())
    inc.run(x, {**params, "b.weight": params["b.weight"] + 1})
    assert inc.last_recomputed == 2                                  # b and the output
    assert inc.last_share == pytest.approx((costs["b"] + costs["output"]) / total)
    inc.run(x, {**params, "a.bias": params["a.bias"] + 1})
    assert inc.last_share == pytest.approx((total - costs["x"]) / total)
    inc.run(x, {**params, "a.bias": params["a.bias"] + 1})
    assert inc.last_recomputed == 0 and inc.last_share == 0.0
