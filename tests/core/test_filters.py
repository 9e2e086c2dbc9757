"""Global filter numbering (docs/method.md) against a literal walk over the state dict."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from faig_gui.core.errors import FaigError
from faig_gui.core.filters import FilterIndex, ranking, top_indices
from faig_gui.core.registry import default_registry


def literal_numbering(sd) -> list[tuple[str, int, int]]:
    """Filter k is the k-th (layer, out, in) met walking 4-D *.weight tensors out-major."""
    out = []
    for name, value in sd.items():
        if name.endswith("weight") and value.dim() == 4:
            for o in range(value.shape[0]):
                for i in range(value.shape[1]):
                    out.append((name, o, i))
    return out


def test_paper_msrresnet_has_151936_filters():
    sd = default_registry().get("msrresnet").new_state_dict(num_feat=64, num_block=16, scale=2)
    index = FilterIndex.from_state_dict(sd)
    assert len(index) == 151_936
    # docs/method.md's breakdown: conv_first 64x3, 32 body convs 64x64, upconv1 256x64, conv_hr 64x64, conv_last 3x64
    assert index.total == 64 * 3 + 32 * 64 * 64 + 256 * 64 + 64 * 64 + 3 * 64
    assert [layer.name for layer in index.layers][:3] == ["conv_first.weight", "body.0.conv1.weight",
                                                          "body.0.conv2.weight"]
    assert index.layers[-1].name == "conv_last.weight" and index.layers[-1].offset == 151_936 - 192
    literal = literal_numbering(sd)
    assert len(literal) == 151_936
    rng = np.random.default_rng(0)
    for k in list(rng.integers(0, 151_936, 400)) + [0, 191, 192, 151_935]:
        assert index.from_global(int(k)) == literal[k]
        assert index.to_global(*literal[k]) == k


def test_every_filter_round_trips_on_a_small_model():
    sd = default_registry().get("msrresnet").new_state_dict(num_feat=4, num_block=2, scale=4)
    index = FilterIndex.from_state_dict(sd)
    literal = literal_numbering(sd)
    assert len(index) == len(literal)
    for k, (name, o, i) in enumerate(literal):
        assert index.from_global(k) == (name, o, i)
        assert index.to_global(name, o, i) == k
    # vectorised layer lookup agrees with the walk
    positions = index.layer_of(np.arange(len(index)))
    names = [layer.name for layer in index.layers]
    assert [names[p] for p in positions] == [n for n, _, _ in literal]


def test_any_kernel_size_and_non_filter_tensors_skipped():
    sd = OrderedDict([
        ("stem.weight", torch.zeros(6, 3, 5, 5)),       # 5x5
        ("stem.bias", torch.zeros(6)),                   # biases are not filters
        ("norm.weight", torch.ones(6)),                  # 1-D weight: not a conv
        ("pos_embed", torch.zeros(1, 6, 4, 4)),          # 4-D but not a *.weight
        ("mix.weight", torch.zeros(2, 6, 1, 1)),        # 1x1
        ("wide.weight", torch.zeros(3, 2, 3, 7)),       # non-square
    ])
    index = FilterIndex.from_state_dict(sd)
    assert [(lay.name, lay.out_channels, lay.in_channels, lay.kernel, lay.offset) for lay in index.layers] == [
        ("stem.weight", 6, 3, (5, 5), 0), ("mix.weight", 2, 6, (1, 1), 18), ("wide.weight", 3, 2, (3, 7), 30)]
    literal = literal_numbering(sd)
    assert len(index) == len(literal) == 36
    for k, f in enumerate(literal):
        assert index.from_global(k) == f and index.to_global(*f) == k
    assert index.layer_slice("mix.weight") == slice(18, 30)


def test_per_filter_sums_each_kernel():
    g = torch.Generator().manual_seed(1)
    sd = OrderedDict([("a.weight", torch.randn(3, 2, 5, 5, generator=g)), ("b.weight", torch.randn(2, 3, 1, 1, generator=g))])
    index = FilterIndex.from_state_dict(sd)
    got_abs, got_sum = index.per_filter(sd, "sum_abs"), index.per_filter(sd, "sum")
    for k, (name, o, i) in enumerate(literal_numbering(sd)):
        kernel = sd[name][o, i].double()
        assert got_abs[k] == pytest.approx(float(kernel.abs().sum()), rel=1e-12)  # float64 sums of ≤ 9 terms
        assert got_sum[k] == pytest.approx(float(kernel.sum()), rel=1e-12, abs=1e-12)


def test_out_of_range_is_a_user_error():
    index = FilterIndex.from_state_dict({"c.weight": torch.zeros(2, 3, 3, 3)})
    for bad in (-1, 6, 10**9):
        with pytest.raises(FaigError):
            index.from_global(bad)
    with pytest.raises(FaigError):
        index.to_global("c.weight", 2, 0)
    with pytest.raises(FaigError):
        index.to_global("c.weight", 0, 3)
    with pytest.raises(FaigError):
        index.to_global("d.weight", 0, 0)
    with pytest.raises(FaigError, match="no convolution"):
        FilterIndex.from_state_dict({"fc.weight": torch.zeros(3, 3)})


def test_top_indices_descending_with_ties_by_lower_index():
    scores = np.array([0.5, 2.0, 1.0, 2.0, -1.0, 1.0, 2.0])
    np.testing.assert_array_equal(ranking(scores), [1, 3, 6, 2, 5, 0, 4])
    np.testing.assert_array_equal(top_indices(scores, count=4), [1, 3, 6, 2])
    # proportion: floor(len * p) filters, like the paper's 1 % of 151,936 = 1,519
    np.testing.assert_array_equal(top_indices(scores, proportion=0.3), [1, 3])
    assert len(top_indices(np.zeros(151_936), proportion=0.01)) == 1519
    assert len(top_indices(scores, count=100)) == 7 and len(top_indices(scores, count=0)) == 0
    with pytest.raises(FaigError):
        top_indices(scores, proportion=1.5)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 5), st.integers(1, 5),
                          st.booleans()), min_size=1, max_size=5))
def test_numbering_round_trips_for_any_layer_list(layers):
    sd = OrderedDict()
    for n, (o, i, kh, kw, bias) in enumerate(layers):
        sd[f"l{n}.weight"] = torch.zeros(o, i, kh, kw)
        if bias:
            sd[f"l{n}.bias"] = torch.zeros(o)
    index = FilterIndex.from_state_dict(sd)
    literal = literal_numbering(sd)
    assert len(index) == len(literal) == sum(o * i for o, i, *_ in layers)
    for k, f in enumerate(literal):
        assert index.from_global(k) == f
        assert index.to_global(*f) == k
