"""The traced graph folded along the network's own module hierarchy, laid out to a panel's shape.

Qt-free. Module names nest: ``body.17.rdb2.conv3`` lies in ``body`` > ``body.17`` >
``body.17.rdb2``. A set of *open* scopes decides what is drawn: each operation shows as itself
when every scope around it is open, else as a box for its outermost closed scope (RRDBNet with
only ``body`` open: 23 RRDB boxes). :func:`default_open` opens whole levels while the drawing
stays within a node budget; :func:`fold` makes the folded :class:`NetworkGraph`;
:func:`flow_layout` turns the layered layout into left-to-right columns that wrap into rows
so that a wide or a tall panel is used at a legible zoom.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterable

from faig_gui.core.graph import GraphEdge, GraphNode, Layout, NetworkGraph, _with_skips

DEFAULT_BUDGET = 24   # nodes drawn at opening: about what a dock shows at a legible zoom
CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")   # always opened: one box for a list tells nothing


def scope_chain(scope: str) -> tuple[str, ...]:
    """``body.17.rdb2`` -> ``('body', 'body.17', 'body.17.rdb2')``."""
    if not scope:
        return ()
    parts = scope.split(".")
    return tuple(".".join(parts[:k]) for k in range(1, len(parts) + 1))


def ancestors_of(graph: NetworkGraph, name: str) -> tuple[str, ...]:
    """The scopes to open so that ``name`` (a module, a weight or a scope) is drawn itself."""
    name = name.removesuffix(".weight")
    for n in graph.nodes:
        if n.kind == "conv" and n.module == name:
            return scope_chain(n.scope)
    if name in graph.scopes:
        return scope_chain(name)[:-1]
    return ()


def box_of(node: GraphNode, open_scopes: set[str] | frozenset[str]) -> str:
    """The outermost closed scope around ``node`` ('' when it is drawn itself)."""
    for s in scope_chain(node.scope):
        if s not in open_scopes:
            return s
    return ""


def visible_count(graph: NetworkGraph, open_scopes: set[str] | frozenset[str]) -> int:
    boxes, own = set(), 0
    for n in graph.nodes:
        b = box_of(n, open_scopes)
        if b:
            boxes.add(b)
        else:
            own += 1
    return own + len(boxes)


def default_open(graph: NetworkGraph, budget: int = DEFAULT_BUDGET) -> set[str]:
    """Open the hierarchy one whole level at a time while the drawing keeps within ``budget``
    nodes. Plain containers (``body``, a Sequential of blocks) are opened whatever the budget,
    and so is a level that leaves only a handful of nodes: one box for the whole body tells
    nothing. RRDBNet opens as its 23 RRDBs, MSRResNet as its residual blocks."""
    opened: set[str] = set()
    depth = 0
    while True:
        level = {s for s in graph.scopes if s.count(".") == depth and set(scope_chain(s)[:-1]) <= opened}
        if not level:
            return opened
        trial = opened | level
        if visible_count(graph, trial) > budget and visible_count(graph, opened) > 6:
            lists = {s for s in level if graph.scopes[s] in CONTAINERS}
            return opened | lists
        opened, depth = trial, depth + 1


def fold(graph: NetworkGraph, open_scopes: Iterable[str]) -> NetworkGraph:
    """A copy of the full traced graph with each closed scope drawn as one 'block' node."""
    opened = set(open_scopes)
    while True:
        out, bad = _fold_once(graph, opened)
        if bad is None:
            return out
        opened.add(bad)   # a module run twice, interleaved with others: folding it would loop


def _fold_once(graph: NetworkGraph, opened: set[str]) -> tuple[NetworkGraph, str | None]:
    owner: dict[str, str] = {}
    slots: list[GraphNode | str] = []
    members: dict[str, list[GraphNode]] = {}
    for n in graph.nodes:
        box = box_of(n, opened)
        if not box:
            slots.append(n)
            continue
        bid = f"group:{box}"
        owner[n.id] = bid
        if bid not in members:
            members[bid] = []
            slots.append(bid)
        members[bid].append(n)
    nodes: list[GraphNode] = []
    for slot in slots:
        if isinstance(slot, GraphNode):
            nodes.append(slot)
            continue
        path = slot[len("group:"):]
        inside = members[slot]
        convs = tuple(m.weight for m in inside if m.kind == "conv" and m.weight)
        cls = graph.scopes.get(path, "module")
        chain = scope_chain(path)
        nodes.append(GraphNode(slot, "block", path, path, path,
                               detail=f"{path} ({cls}): {len(inside)} operations, {len(convs)} convolutions",
                               members=tuple(m.id for m in inside), weights=convs,
                               scope=chain[-2] if len(chain) > 1 else "", friendly=cls))
    order = {n.id: k for k, n in enumerate(nodes)}
    edges, seen = [], set()
    for e in graph.edges:
        s, d = owner.get(e.src, e.src), owner.get(e.dst, e.dst)
        if s == d or (s, d) in seen:
            continue
        if order[s] > order[d]:   # not topological once folded: open the box that caused it
            return graph, (s if s.startswith("group:") else d)[len("group:"):]
        seen.add((s, d))
        edges.append(GraphEdge(s, d))
    out = NetworkGraph(nodes, edges, graph.traced, graph.note, dict(graph.groups),
                       frozenset(m[len("group:"):] for m in members), dict(graph.scopes))
    return _with_skips(out), None


# -- left to right, wrapped into rows ------------------------------------------------------------
@dataclass
class FlowLayout:
    """Scene positions: node centres, edge routes as (x, y, row) points, the drawing's size."""

    centre: dict[str, tuple[float, float]]
    routes: dict[tuple[str, str], list[tuple[float, float, int]]]
    row_of: dict[str, int]
    per_row: int
    rows: int
    width: float
    height: float
    row_top: list[float]


def _column_widths(lay: Layout, widths: dict[str, float], dummy: float) -> list[float]:
    col = [dummy] * lay.layers
    for nid, (layer, _) in lay.position.items():
        col[layer] = max(col[layer], widths.get(nid, dummy))
    return col


def _row_lanes(lay: Layout, per_row: int, lane: float, bend: float) -> list[tuple[dict[float, float], float]]:
    """Per row: the offset of each lane used in it from the row's top, and the row's height. A
    lane holding a node of that row is ``lane`` high; one that only edges bend through is
    ``bend`` high (a dense block's many edges would otherwise make its rows very tall)."""
    rows = (lay.layers + per_row - 1) // per_row
    real: list[set[float]] = [set() for _ in range(rows)]
    used: list[set[float]] = [set() for _ in range(rows)]
    for layer, x in lay.position.values():
        real[layer // per_row].add(x)
        used[layer // per_row].add(x)
    for r_pts in lay.routes.values():
        if r_pts[0][0] // per_row == r_pts[-1][0] // per_row:   # (edges to later rows bend elsewhere)
            for layer, x in r_pts:
                used[layer // per_row].add(x)
    out = []
    for r in range(rows):
        offsets, top = {}, 0.0
        for x in sorted(used[r]):
            h = lane if x in real[r] else bend
            offsets[x] = top + h / 2
            top += h
        out.append((offsets, max(top, lane)))
    return out


def flow_size(lay: Layout, col: list[float], per_row: int, col_gap: float, lane: float, row_gap: float,
              bend: float = 16.0) -> tuple[float, float]:
    width = max((sum(col[s:s + per_row]) + col_gap * (len(col[s:s + per_row]) - 1)
                 for s in range(0, lay.layers, per_row)), default=0.0)
    height = sum(h + row_gap for _, h in _row_lanes(lay, per_row, lane, bend)) - row_gap
    return width, max(height, 0.0)


def choose_per_row(lay: Layout, widths: dict[str, float], view_w: float, view_h: float,
                   min_zoom: float, max_zoom: float = 1.0, col_gap: float = 36.0, lane: float = 52.0,
                   row_gap: float = 40.0, dummy: float = 16.0) -> tuple[int, float]:
    """Columns per row and zoom for a panel of ``view_w`` x ``view_h`` pixels: the largest zoom
    (at most ``max_zoom``) at which the whole drawing fits; when it fits at no zoom from
    ``min_zoom`` up, rows as wide as the panel at ``min_zoom`` (the rest scrolls)."""
    if lay.layers == 0:
        return 1, max_zoom
    col = _column_widths(lay, widths, dummy)
    step = max(1, lay.layers // 80)   # at most ~80 candidates: each costs a pass over the layout
    best, best_zoom, sizes = 1, 0.0, {}
    for n in sorted(set(range(1, lay.layers + 1, step)) | {lay.layers}):
        w, h = flow_size(lay, col, n, col_gap, lane, row_gap)
        sizes[n] = w
        zoom = min(view_w / max(w, 1.0), view_h / max(h, 1.0), max_zoom)
        if zoom > best_zoom + 1e-9:
            best, best_zoom = n, zoom
    if best_zoom >= min_zoom:
        return best, best_zoom
    fitting = [n for n, w in sizes.items() if w * min_zoom <= view_w]
    return (max(fitting) if fitting else 1), min_zoom


def flow_layout(lay: Layout, widths: dict[str, float], per_row: int, col_gap: float = 36.0,
                lane: float = 52.0, row_gap: float = 40.0, dummy: float = 16.0, bend: float = 16.0) -> FlowLayout:
    """Layer ``l`` becomes column ``l % per_row`` of row ``l // per_row``; a node's lane in the
    layered layout becomes its height within the row."""
    per_row = max(1, per_row)
    col = _column_widths(lay, widths, dummy)
    cx: list[float] = []
    for s in range(0, lay.layers, per_row):
        left = 0.0
        for w in col[s:s + per_row]:
            cx.append(left + w / 2)
            left += w + col_gap
    lanes = _row_lanes(lay, per_row, lane, bend)
    tops, top = [], 0.0
    for _, height in lanes:
        tops.append(top)
        top += height + row_gap

    def place(layer: int, x: float) -> tuple[float, float, int]:
        r = layer // per_row
        return cx[layer], tops[r] + lanes[r][0].get(x, lane / 2), r

    centre, row_of = {}, {}
    for nid, (layer, x) in lay.position.items():
        px, py, r = place(layer, x)
        centre[nid], row_of[nid] = (px, py), r
    # an edge to a later row leaves its bends out: it runs along the gaps between rows instead
    routes = {key: [place(layer, x) for layer, x in (pts if pts[0][0] // per_row == pts[-1][0] // per_row
                                                     else (pts[0], pts[-1]))]
              for key, pts in lay.routes.items()}
    w, h = flow_size(lay, col, per_row, col_gap, lane, row_gap, bend)
    return FlowLayout(centre, routes, row_of, per_row, len(lanes), w, h, tops)
