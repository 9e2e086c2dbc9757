"""Folding the traced graph along module names, and the wrapped left-to-right layout."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))

from faig_gui.core.graph import layout, trace_graph  # noqa: E402
from faig_gui.core.graph_fold import (ancestors_of, choose_per_row, default_open, flow_layout, fold,  # noqa: E402
                                      scope_chain, visible_count)
from nested_arch import NestedNet  # noqa: E402

TOP = ["input", "conv_first", "conv_body", "+", "nearest ×2", "conv_up1", "LeakyReLU", "nearest ×2", "conv_up2",
       "LeakyReLU", "conv_hr", "LeakyReLU", "conv_last", "output"]   # NestedNet.forward around the body


@pytest.fixture(scope="module")
def graph():
    return trace_graph(NestedNet(2, 4, 1))


def test_scopes_nest_by_module_name(graph):
    assert scope_chain("body.3.rdb2") == ("body", "body.3", "body.3.rdb2")
    conv = next(n for n in graph.convs() if n.module == "body.3.rdb2.conv3")
    assert conv.scope == "body.3.rdb2"
    # every enclosing module with its class; ModuleList/Sequential levels included
    assert graph.scopes["body"] == "Sequential" and graph.scopes["body.3"] == "NestedBlock"
    assert graph.scopes["body.3.rdb2"] == "DenseBlock" and len(graph.scopes) == 1 + 4 + 12
    assert ancestors_of(graph, "body.3.rdb2.conv3.weight") == ("body", "body.3", "body.3.rdb2")
    assert ancestors_of(graph, "body.3") == ("body",)


def test_fold_draws_closed_modules_as_boxes_with_their_convs(graph):
    folded = fold(graph, {"body"})
    assert [n.label for n in folded.nodes if n.kind != "block"] == TOP
    assert [n.id for n in folded.nodes if n.kind == "block"] == [f"group:body.{b}" for b in range(4)]
    box = folded.node("group:body.2")
    assert box.weights == tuple(f"body.2.rdb{r}.conv{c}.weight" for r in (1, 2, 3) for c in range(1, 6))
    # data flows conv_first -> body.0 -> ... -> body.3 -> conv_body, and conv_first skips to the add
    add = next(n.id for n in folded.nodes if n.kind == "add")
    assert folded.successors("conv_first") == ["group:body.0", add]
    assert folded.successors("group:body.3") == ["conv_body"]
    assert next(e for e in folded.edges if (e.src, e.dst) == ("conv_first", add)).skip
    assert visible_count(graph, {"body"}) == len(folded.nodes) == 18


def test_default_open_stops_at_the_level_that_fits(graph):
    # body open: 14 + 4 = 18 nodes; body.N open too: 14 + 4 x 5 = 34; rdbs open: 14 + 4 x (3 x 15 + 2) > 48
    assert default_open(graph, 48) == {"body", "body.0", "body.1", "body.2", "body.3"}
    assert default_open(graph, 30) == {"body"}


def test_flow_layout_wraps_columns_into_rows_without_overlap(graph):
    folded = fold(graph, {"body"})
    lay = layout(folded)
    widths = {n.id: (120.0 if n.kind in ("conv", "block") else 40.0) for n in folded.nodes}
    flow = flow_layout(lay, widths, per_row=5)
    assert flow.rows == -(-lay.layers // 5)
    for nid, (layer, _) in lay.position.items():
        assert flow.row_of[nid] == layer // 5
    # nodes of one row never overlap: sorted by x, each starts after the previous ends
    by_row: dict[int, list[tuple[float, float]]] = {}
    for nid, (x, y) in flow.centre.items():
        by_row.setdefault(flow.row_of[nid], []).append((x, y, widths[nid]))
    for items in by_row.values():
        for (x0, y0, w0), (x1, y1, w1) in zip(sorted(items), sorted(items)[1:]):
            assert x1 - w1 / 2 > x0 + w0 / 2 or abs(y1 - y0) >= 40
    # a wide panel gets more columns per row than a narrow one, and never a zoom under the minimum
    wide, zw = choose_per_row(lay, widths, 1600, 300, 0.7)
    narrow, zn = choose_per_row(lay, widths, 400, 900, 0.7)
    assert wide > narrow and zw >= 0.7 and zn >= 0.7
