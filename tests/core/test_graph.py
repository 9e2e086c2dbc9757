"""The traced network graph, checked against the module structure written out by hand."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from faig_gui.core.filters import FilterIndex
from faig_gui.core.graph import graph_for, layering, layout, trace_graph
from faig_gui.core.registry import default_registry
from faig_gui.plugins.msrresnet import MSRResNet
from faig_gui.plugins.srcnn_style import SRCNNStyleArchitecture


def _in_edges(graph, node_id):
    return {e.src: e for e in graph.edges if e.dst == node_id}


def test_msrresnet_one_node_per_conv_and_block_skips_into_additions():
    net = MSRResNet(num_feat=8, num_block=3, upscale=2)
    g = trace_graph(net)
    assert g.traced and g.note == ""
    convs = g.convs()
    expected = [name for name, m in net.named_modules() if isinstance(m, nn.Conv2d)]
    assert [c.module for c in convs] == expected
    assert [c.weight for c in convs] == [lay.name for lay in FilterIndex.from_state_dict(net.state_dict()).layers]
    for c in convs:
        w = net.get_parameter(c.weight)
        assert c.shape == tuple(w.shape) and c.filters == w.shape[0] * w.shape[1]

    by_module = {c.module: c.id for c in convs}
    adds = [n for n in g.nodes if n.kind == "add"]
    assert len(adds) == 3 + 1  # one per residual block, one for the global bilinear skip
    block_input = next(n.id for n in g.nodes if n.kind == "activation" and n.module == "lrelu")
    for b in range(3):
        add = next(n for n in adds if n.group == f"body.{b}")
        ins = _in_edges(g, add.id)
        conv2 = by_module[f"body.{b}.conv2"]
        # the residual branch ends at conv2; the block's input arrives over a skip edge
        assert set(ins) == {conv2, block_input}
        assert not ins[conv2].skip and ins[block_input].skip
        # conv1 reads the same block input: the skip edge really bypasses conv1-relu-conv2
        assert g.predecessors(by_module[f"body.{b}.conv1"]) == [block_input]
        block_input = add.id
    # a block's operations form one group: conv1, relu, conv2, add
    assert sorted(n.kind for n in g.members("body.1")) == ["activation", "add", "conv", "conv"]
    assert g.groups == {f"body.{b}": "ResidualBlockNoBN" for b in range(3)}

    final = adds[-1]
    ins = _in_edges(g, final.id)
    up = next(n for n in g.nodes if n.kind == "upsample")
    assert set(ins) == {by_module["conv_last"], up.id}
    assert g.predecessors(up.id) == ["x"] and g.node("x").kind == "input"
    assert any(e.skip for e in g.edges if e.src == "x" or e.dst == up.id)
    shuffle = next(n for n in g.nodes if n.kind == "pixel_shuffle")
    assert g.predecessors(shuffle.id) == [by_module["upconv1"]] and "×2" in shuffle.label
    assert g.successors(final.id) == [n.id for n in g.nodes if n.kind == "output"]


def test_x4_has_two_shuffles_and_labels_from_the_plugin():
    reg = default_registry()
    arch = reg.get("msrresnet")
    model = reg.model_from_state_dict(arch.new_state_dict(num_feat=8, num_block=2, scale=4))
    g = graph_for(model)
    assert sum(n.kind == "pixel_shuffle" for n in g.nodes) == 2
    assert len(g.convs()) == len(FilterIndex.from_state_dict(model.state_dict).layers) == 9
    # one name per layer: the module name, the plugin's label beside it, both counting from 0
    node = g.node(next(c.id for c in g.convs() if c.module == "body.1.conv2"))
    assert (node.label, node.friendly) == ("body.1.conv2", "block 1 conv2")
    assert g.node(next(c.id for c in g.convs() if c.module == "conv_first")).friendly == ""


def test_srcnn_style_is_a_chain_without_groups():
    arch = SRCNNStyleArchitecture()
    sd = arch.new_state_dict(scale=2, widths=(8, 8))
    g = trace_graph(arch.build(arch.hyperparameters(sd)))
    assert [c.weight for c in g.convs()] == [k for k, v in sd.items() if v.ndim == 4]
    assert g.groups == {} and not any(e.skip for e in g.edges)
    # a chain: every node but the input has exactly one predecessor, the node before it
    for a, b in zip(g.nodes, g.nodes[1:]):
        assert g.predecessors(b.id) == [a.id]


class _DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x):
        y = self.a(x)
        if y.mean() > 0:   # data-dependent control flow: torch.fx cannot trace this
            y = -y
        return self.b(y)


def test_untraceable_module_falls_back_to_a_chain_of_convs():
    g = trace_graph(_DataDependent())
    assert not g.traced and "could not trace" in g.note
    assert [n.kind for n in g.nodes] == ["input", "conv", "conv", "output"]
    assert [c.weight for c in g.convs()] == ["a.weight", "b.weight"]
    assert layout(g).layers == 4


class _Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(5, 3, 3, 3))

    def forward(self, x):
        y = F.conv2d(x, self.w, padding=1)
        y = F.pixel_shuffle(torch.relu(y[:, :4]), 2)
        return F.interpolate(y, size=(x.shape[2] * 2, x.shape[3] * 2)) + y.mean()


def test_functional_ops_are_recognised():
    g = trace_graph(_Functional())
    conv = g.convs()
    assert len(conv) == 1 and conv[0].weight == "w" and conv[0].shape == (5, 3, 3, 3)
    kinds = [n.kind for n in g.nodes]
    for kind in ("activation", "pixel_shuffle", "upsample", "add"):
        assert kind in kinds


def test_layout_is_layered_without_overlaps_and_keeps_the_main_path_straight():
    net = MSRResNet(num_feat=8, num_block=16, upscale=4)
    g = trace_graph(net)
    lay = layout(g)
    layer = layering(g)
    for e in g.edges:
        assert layer[e.dst] > layer[e.src]
        route = lay.routes[(e.src, e.dst)]
        assert route[0] == lay.position[e.src] and route[-1] == lay.position[e.dst]
        assert [p[0] for p in route] == list(range(layer[e.src], layer[e.dst] + 1))
    seen = {}
    for nid, (level, x) in lay.position.items():
        assert (level, x) not in seen, f"{nid} overlaps {seen.get((level, x))}"
        seen[(level, x)] = nid
    # dummies (edge bends) never sit on a node either
    for route in lay.routes.values():
        for p in route[1:-1]:
            assert p not in seen
    assert lay.crossings() == 0
    main = [n for n in g.nodes if n.kind == "conv"]
    assert len({lay.position[n.id][1] for n in main}) == 1   # all convs in one straight lane
    assert lay.width <= 3



@pytest.mark.parametrize("arch_name, hp", [
    ("msrresnet", {"num_feat": 4, "num_block": 1, "scale": 3}),
    ("msrresnet", {"num_feat": 4, "num_block": 5, "scale": 4}),
    ("srcnn_style", {"scale": 3, "widths": (4, 4)}),
    ("srcnn_style", {"scale": 4, "widths": (4,)}),
])
def test_every_plugin_variant_gives_one_node_per_filter_layer_and_a_clean_layout(arch_name, hp):
    reg = default_registry()
    model = reg.model_from_state_dict(reg.get(arch_name).new_state_dict(**hp))
    g = graph_for(model)
    assert g.traced
    assert [c.weight for c in g.convs()] == [lay.name for lay in FilterIndex.from_state_dict(model.state_dict).layers]
    shuffles = [n for n in g.nodes if n.kind == "pixel_shuffle"]
    assert len(shuffles) == (2 if hp["scale"] == 4 else 1)
    lay = layout(g)
    assert len(set(lay.position.values())) == len(g.nodes) and lay.crossings() == 0
