"""What a filter is for grouped and transposed convolutions (core/filters.py): numbered in the
weight's storage order, labelled with the true (out, in) channels. Checked against PyTorch's own
behaviour: masking the filter named (layer, out, in) changes exactly one kernel of the tensor,
and that kernel is the one through which input channel ``in`` reaches output channel ``out``."""
from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from faig_gui.core.errors import FaigError
from faig_gui.core.filters import FilterIndex
from faig_gui.core.masking import FilterMask, masked_model, masked_state_dict


class MixedNet(nn.Module):
    """One layer of each kind the SR nets here may hold."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(3, 4, 3, padding=1)                                   # (4, 3, 3, 3)
        self.grouped = nn.Conv2d(4, 6, 3, padding=1, groups=2)                      # (6, 2, 3, 3)
        self.depthwise = nn.Conv2d(6, 6, 3, padding=1, groups=6)                    # (6, 1, 3, 3)
        self.up_grouped = nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1, groups=2)  # (6, 2, 4, 4)
        self.up = nn.ConvTranspose2d(4, 5, 2, stride=2)                             # (4, 5, 2, 2)
        self.act = nn.PReLU(5)                                                      # (5,): not a filter
        self.tail = nn.Conv2d(5, 3, 1)                                              # (3, 5, 1, 1)

    def forward(self, x):
        x = self.depthwise(self.grouped(self.head(x)))
        return self.tail(self.act(self.up(self.up_grouped(x))))


def literal_storage(module: nn.Module, out: int, inp: int) -> tuple[int, int] | None:
    """Where PyTorch keeps the kernel from input ``inp`` to output ``out`` (its documented weight
    layouts), or None when the two channels sit in different groups."""
    g = module.groups
    if isinstance(module, nn.ConvTranspose2d):   # weight (in, out/g, kh, kw)
        in_per, out_per = module.in_channels // g, module.out_channels // g
        return (inp, out - (inp // in_per) * out_per) if out // out_per == inp // in_per else None
    in_per, out_per = module.in_channels // g, module.out_channels // g   # weight (out, in/g, kh, kw)
    return (out, inp - (out // out_per) * in_per) if out // out_per == inp // in_per else None


def convs(net):
    return [(name, m) for name, m in net.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]


@pytest.fixture
def net():
    torch.manual_seed(0)
    return MixedNet().eval()


def test_numbering_follows_storage_with_or_without_the_module(net):
    sd = net.state_dict()
    plain, known = FilterIndex.from_state_dict(sd), FilterIndex.from_module(net)
    # the same global numbers either way: the module only tells how to label them
    assert [(lay.name, lay.offset, lay.count) for lay in plain.layers] == \
        [(lay.name, lay.offset, lay.count) for lay in known.layers]
    assert known.total == sum(sd[f"{n}.weight"].shape[0] * sd[f"{n}.weight"].shape[1] for n, _ in convs(net))
    assert "act.weight" not in [lay.name for lay in known.layers]
    kinds = {lay.module_name: (lay.out_channels, lay.in_channels, lay.groups, lay.transposed, lay.kind) for lay in known.layers}
    assert kinds["grouped"] == (6, 4, 2, False, "grouped conv (2 groups)")
    assert kinds["up_grouped"] == (4, 6, 2, True, "grouped transposed conv (2 groups)")
    assert kinds["up"] == (5, 4, 1, True, "transposed conv")
    # without the module a transposed weight (4, 5, 2, 2) can only read as a conv 4 out x 5 in
    assert (plain.layer("up.weight").out_channels, plain.layer("up.weight").in_channels) == (4, 5)


def test_every_filter_is_one_stored_kernel_labelled_with_its_true_channels(net):
    index = FilterIndex.from_module(net)
    for name, module in convs(net):
        layer = index.layer(f"{name}.weight")
        w = module.weight
        seen = set()
        for out in range(module.out_channels):
            for inp in range(module.in_channels):
                place = literal_storage(module, out, inp)
                if place is None:
                    with pytest.raises(FaigError, match="does not see input"):
                        index.to_global(layer.name, out, inp)
                    continue
                k = index.to_global(layer.name, out, inp)
                # storage order: W[row, col] is filter offset + row * W.shape[1] + col
                assert k == layer.offset + place[0] * w.shape[1] + place[1]
                assert index.from_global(k) == (layer.name, out, inp)
                assert index.stored_at(k) == (layer.name, *place)
                seen.add(k)
        assert seen == set(range(layer.offset, layer.offset + layer.count))  # each kernel exactly once


@pytest.mark.parametrize("name", ["grouped", "depthwise", "up_grouped", "up"])
def test_masking_a_filter_by_out_and_in_changes_exactly_that_kernel(net, name):
    index = FilterIndex.from_module(net)
    module = dict(net.named_modules())[name]
    sd = OrderedDict((k, v.clone()) for k, v in net.state_dict().items())
    rng = np.random.default_rng(1)
    pairs = [(o, i) for o in range(module.out_channels) for i in range(module.in_channels)
             if literal_storage(module, o, i) is not None]
    for out, inp in [pairs[j] for j in rng.choice(len(pairs), size=min(4, len(pairs)), replace=False)]:
        k = index.to_global(f"{name}.weight", out, inp)
        masked = masked_state_dict(sd, sd, FilterMask([k], mode="zero"), index)
        changed = (masked[f"{name}.weight"] != sd[f"{name}.weight"]).any(dim=(2, 3)).nonzero().tolist()
        assert changed == [list(literal_storage(module, out, inp))]
        assert all(torch.equal(masked[key], sd[key]) for key in sd if key != f"{name}.weight")
        # and it is the connection PyTorch runs from input channel inp to output channel out:
        # with only channel inp lit, zeroing that kernel moves output channel out and no other
        layer = copy.deepcopy(module)
        layer.weight.data = masked[f"{name}.weight"]
        x = torch.zeros(1, module.in_channels, 5, 5)
        x[0, inp] = torch.rand(5, 5, generator=torch.Generator().manual_seed(out)) + 0.5
        with torch.no_grad():
            moved = (layer(x) != module(x)).flatten(2).any(-1)[0].nonzero().flatten().tolist()
        assert moved == [out]


def test_masked_model_on_a_transposed_conv_masks_the_named_connection(net):
    index = FilterIndex.from_module(net)
    target = OrderedDict((k, v.clone()) for k, v in net.state_dict().items())
    baseline = OrderedDict((k, torch.zeros_like(v)) for k, v in target.items())
    k = index.to_global("up.weight", 3, 1)     # output 3 from input 1: stored at W[1, 3]
    new = masked_model(net, target, baseline, FilterMask([k]))
    assert torch.count_nonzero(new.up.weight != target["up.weight"]) == 2 * 2
    assert torch.count_nonzero(new.up.weight[1, 3]) == 0


def test_describe_and_labels_use_true_channels(net):
    index = FilterIndex.from_module(net)
    k = index.to_global("up_grouped.weight", 3, 5)   # group 1: inputs 3..5 -> outputs 2..3
    assert index.describe(k) == "up_grouped.weight[3, 5]"
    assert index.stored_at(k) == ("up_grouped.weight", 5, 1)
    layer = index.layer("up_grouped.weight")
    outs, ins = layer.channel_grid()
    assert outs.shape == ins.shape == (6, 2)       # the weight's own (rows, cols)
    assert (outs[5, 1], ins[5, 1]) == (3, 5)


def test_graph_nodes_name_the_true_channels(net):
    from faig_gui.core.graph import fallback_graph, trace_graph
    for graph in (trace_graph(net), fallback_graph(net, "not traced")):
        detail = {n.weight: n.detail for n in graph.nodes if n.kind == "conv"}
        assert detail["grouped.weight"] == "grouped.weight: conv 4→6, 3×3, 2 groups"
        assert detail["depthwise.weight"] == "depthwise.weight: conv 6→6, 3×3, 6 groups"
        assert detail["up.weight"] == "up.weight: transposed conv 4→5, 2×2, weight 4×5×2×2"
        assert detail["up_grouped.weight"] == "up_grouped.weight: transposed conv 6→4, 4×4, 2 groups, weight 6×2×4×4"
        assert detail["head.weight"] == "head.weight: conv 3→4, 3×3"


def test_public_api_names_true_channels(net):
    from faig_gui import FAIG
    baseline = {k: v + 0.05 for k, v in net.state_dict().items()}
    result = FAIG(net, baseline).attribute(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 16, 16), n_steps=2)
    k = FilterIndex.from_module(net).to_global("up.weight", 3, 1)
    assert result.filters.describe(k) == "up.weight[3, 1]"   # stored at W[1, 3]
    assert result.attributions["input"].shape == (1, result.filters.total)
