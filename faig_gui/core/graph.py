"""The network as a graph: operations traced with torch.fx, data-flow edges, a layered layout.

Qt-free. ``trace_graph(module)`` turns any module the plugins build into a :class:`NetworkGraph`
of convolutions (with the weight name, shape and filter count that the filter numbering uses),
activations, pixel shuffles, additions, up-sampling, the input and the output. Edges follow the
data; an edge that jumps over other operations (its span in the longest-path layering is more
than one layer) is a skip connection. Operations inside a sub-module that is not a plain
container (e.g. ``body.3``, a residual block) form a block group that the folded view (:mod:`faig_gui.core.graph_fold`) can fold
into one node for deep nets. :func:`layout` places nodes in layers (longest path) and orders
each layer to reduce crossings (barycentre sweeps over dummy nodes on long edges), so skip
connections get their own lane.

When tracing fails (data-dependent control flow, unsupported ops), :func:`fallback_graph`
shows the convolutions in registration order as a chain and says why in ``note``.
"""
from __future__ import annotations

import operator
from collections import defaultdict
from dataclasses import dataclass, field, replace
from collections.abc import Callable

import torch
from torch import fx, nn
from torch.nn import functional as F

KINDS = ("input", "output", "conv", "activation", "pixel_shuffle", "add", "upsample", "other", "block")

_ACTIVATION_MODULES = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.ReLU6, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid,
                       nn.Tanh, nn.Hardswish, nn.Mish, nn.Softplus, nn.Hardtanh, nn.SELU)
_ACTIVATION_FUNCTIONS = {F.relu, F.relu_, F.leaky_relu, F.leaky_relu_, F.gelu, F.silu, F.elu, F.relu6, F.prelu,
                         F.hardswish, F.mish, F.softplus, F.selu, F.sigmoid, F.tanh,
                         torch.relu, torch.relu_, torch.sigmoid, torch.tanh, torch.selu}
_ACTIVATION_METHODS = {"relu", "relu_", "sigmoid", "tanh", "sigmoid_", "tanh_"}
_ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}
_ADD_METHODS = {"add", "add_"}
_UPSAMPLE_MODULES = (nn.Upsample, nn.UpsamplingBilinear2d, nn.UpsamplingNearest2d)
_UPSAMPLE_FUNCTIONS = {F.interpolate, F.upsample, F.upsample_bilinear, F.upsample_nearest}
_SHUFFLE_FUNCTIONS = {F.pixel_shuffle, torch.pixel_shuffle}
_CONV_FUNCTIONS = {F.conv2d, torch.conv2d}
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
# nodes that carry sizes or attributes, not feature maps: left out of the picture
_DROPPED_METHODS = {"size", "dim", "shape"}
_DROPPED_FUNCTIONS = {getattr, operator.getitem, len}


@dataclass(frozen=True)
class GraphNode:
    id: str                                  # unique; the fx node name, or 'group:<path>' for a block
    kind: str                                # one of KINDS
    label: str                               # short text for the node box
    module: str = ""                         # module path that ran it ('' for functions at the top)
    group: str = ""                          # block group path ('' when not in a block)
    weight: str | None = None                # conv: parameter name, the filter layer's name
    shape: tuple[int, ...] | None = None     # conv: weight shape (out, in, kh, kw)
    detail: str = ""                         # longer description (tooltip)
    members: tuple[str, ...] = ()            # block: ids of the folded nodes
    weights: tuple[str, ...] = ()            # block: conv weights inside, in order
    scope: str = ""                          # innermost enclosing module path ('' at the top)
    friendly: str = ""                       # the plugin's display name when it differs from module

    @property
    def filters(self) -> int:
        """Filter count (out x in) of a convolution; 0 for other nodes."""
        return int(self.shape[0] * self.shape[1]) if self.kind == "conv" and self.shape else 0

    @property
    def conv_weights(self) -> tuple[str, ...]:
        """The conv weights this node stands for (itself, or a block's members)."""
        return (self.weight,) if self.kind == "conv" and self.weight else self.weights


@dataclass(frozen=True)
class GraphEdge:
    src: str
    dst: str
    skip: bool = False   # jumps over other operations (span > 1 in the layering)


@dataclass
class NetworkGraph:
    nodes: list[GraphNode]                   # topological order
    edges: list[GraphEdge]
    traced: bool = True                      # False: fallback chain of convs
    note: str = ""                           # why tracing failed, when it did
    groups: dict[str, str] = field(default_factory=dict)   # block path -> module class name
    collapsed: frozenset[str] = frozenset()
    scopes: dict[str, str] = field(default_factory=dict)   # every enclosing module path -> class name
    _by_id: dict[str, GraphNode] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._by_id = {n.id: n for n in self.nodes}

    def node(self, node_id: str) -> GraphNode:
        return self._by_id[node_id]

    def __contains__(self, node_id: str) -> bool:
        return node_id in self._by_id

    def convs(self) -> list[GraphNode]:
        return [n for n in self.nodes if n.kind == "conv"]

    def predecessors(self, node_id: str) -> list[str]:
        return [e.src for e in self.edges if e.dst == node_id]

    def successors(self, node_id: str) -> list[str]:
        return [e.dst for e in self.edges if e.src == node_id]

    def members(self, group: str) -> list[GraphNode]:
        return [n for n in self.nodes if n.group == group]

    def node_for_weight(self, weight: str) -> GraphNode | None:
        """The node showing a conv weight (its block when that is collapsed)."""
        for n in self.nodes:
            if weight in n.conv_weights:
                return n
        return None


# -- tracing -------------------------------------------------------------------------------------
def trace_graph(module: nn.Module, layer_label: Callable[[str], str | None] | None = None) -> NetworkGraph:
    """Trace ``module`` with torch.fx; on failure, :func:`fallback_graph` with the reason."""
    try:
        traced = fx.symbolic_trace(module)
    except Exception as exc:  # tracing is best effort: any failure shows the simple chain
        return fallback_graph(module, f"torch.fx could not trace {type(module).__name__}: "
                                      f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                              layer_label)
    return _from_fx(traced, module, layer_label)


def _from_fx(traced: fx.GraphModule | fx.Graph, root: nn.Module, layer_label) -> NetworkGraph:
    graph = traced.graph if isinstance(traced, fx.GraphModule) else traced
    modules = dict(root.named_modules())
    nodes: list[GraphNode] = []
    kept: set[str] = set()
    raw_edges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    groups: dict[str, str] = {}
    for fxn in graph.nodes:
        node = _describe(fxn, modules, layer_label)
        if node is None:
            continue
        group, cls = _group_of(fxn, modules)
        if group:
            groups.setdefault(group, cls)
            node = replace(node, group=group)
        scope = _scope_of(fxn)
        if scope:
            node = replace(node, scope=scope)
        nodes.append(node)
        kept.add(node.id)
        for src in _inputs(fxn):
            if src.name in kept and (src.name, node.id) not in seen:
                seen.add((src.name, node.id))
                raw_edges.append((src.name, node.id))
    edges = [GraphEdge(s, d) for s, d in raw_edges]
    return _with_skips(NetworkGraph(nodes, edges, True, "", groups, scopes=_scope_classes(nodes, modules)))


def _scope_of(fxn: fx.Node) -> str:
    """Innermost module on the call stack other than the node's own (its place in the hierarchy)."""
    own = str(fxn.target) if fxn.op == "call_module" else None
    for entry in reversed(list((fxn.meta.get("nn_module_stack") or {}).values())):
        path = entry[0] if isinstance(entry, tuple) else str(entry)
        if path and path != own:
            return path
    return own.rsplit(".", 1)[0] if own and "." in own else ""


def _scope_classes(nodes: list[GraphNode], modules: dict[str, nn.Module]) -> dict[str, str]:
    """Class name of every module path that encloses a node, with all its dotted ancestors
    (``body.17.rdb2`` brings ``body`` and ``body.17``: a ModuleList is never on the call stack)."""
    out: dict[str, str] = {}
    for n in nodes:
        parts = n.scope.split(".") if n.scope else []
        for k in range(1, len(parts) + 1):
            path = ".".join(parts[:k])
            if path not in out:
                out[path] = type(modules[path]).__name__ if path in modules else "module"
    return out


def _inputs(fxn: fx.Node) -> list[fx.Node]:
    found: list[fx.Node] = []

    def collect(n: fx.Node) -> fx.Node:
        found.append(n)
        return n
    fx.node.map_arg((fxn.args, fxn.kwargs), collect)
    return found


def _describe(fxn: fx.Node, modules: dict[str, nn.Module], layer_label) -> GraphNode | None:
    op, target = fxn.op, fxn.target
    if op == "placeholder":
        return GraphNode(fxn.name, "input", "input", detail=f"input '{target}'")
    if op == "output":
        return GraphNode(fxn.name, "output", "output", detail="network output")
    if op == "get_attr":
        return None
    if op == "call_module":
        mod = modules.get(str(target))
        path = str(target)
        if isinstance(mod, nn.modules.conv._ConvNd) and mod.weight is not None and mod.weight.ndim == 4:
            return _conv_node(fxn.name, path, path + ".weight", tuple(mod.weight.shape), layer_label,
                              transposed=isinstance(mod, nn.ConvTranspose2d), groups=mod.groups)
        if isinstance(mod, _ACTIVATION_MODULES):
            return GraphNode(fxn.name, "activation", type(mod).__name__, path, detail=f"{path}: {mod}")
        if isinstance(mod, nn.PixelShuffle):
            return GraphNode(fxn.name, "pixel_shuffle", f"PixelShuffle ×{mod.upscale_factor}", path,
                             detail=f"{path}: {mod}")
        if isinstance(mod, _UPSAMPLE_MODULES):
            return GraphNode(fxn.name, "upsample", _upsample_label(mod.scale_factor, mod.mode), path,
                             detail=f"{path}: {mod}")
        return GraphNode(fxn.name, "other", type(mod).__name__ if mod is not None else path, path,
                         detail=f"{path}: {mod}")
    if op == "call_function":
        if target in _DROPPED_FUNCTIONS:
            return None
        if target in _CONV_FUNCTIONS and len(fxn.args) > 1 and isinstance(fxn.args[1], fx.Node) \
                and fxn.args[1].op == "get_attr":
            name = str(fxn.args[1].target)
            weight = _parameter(modules[""], name)
            if weight is not None and weight.ndim == 4:
                return _conv_node(fxn.name, name.rsplit(".", 1)[0] if "." in name else "", name,
                                  tuple(weight.shape), layer_label)
        if target in _ADD_FUNCTIONS:
            return GraphNode(fxn.name, "add", "+", detail="addition")
        if target in _ACTIVATION_FUNCTIONS:
            return GraphNode(fxn.name, "activation", target.__name__, detail=f"function {target.__name__}")
        if target in _UPSAMPLE_FUNCTIONS:
            kw = fxn.kwargs
            scale = kw.get("scale_factor", fxn.args[2] if len(fxn.args) > 2 else None)
            mode = kw.get("mode", fxn.args[3] if len(fxn.args) > 3 else "nearest")
            return GraphNode(fxn.name, "upsample", _upsample_label(scale, mode), detail=f"interpolate {mode}")
        if target in _SHUFFLE_FUNCTIONS:
            r = fxn.args[1] if len(fxn.args) > 1 else fxn.kwargs.get("upscale_factor", "?")
            return GraphNode(fxn.name, "pixel_shuffle", f"PixelShuffle ×{r}", detail="pixel_shuffle")
        name = getattr(target, "__name__", str(target))
        return GraphNode(fxn.name, "other", name, detail=f"function {name}")
    if op == "call_method":
        if target in _DROPPED_METHODS:
            return None
        if target in _ADD_METHODS:
            return GraphNode(fxn.name, "add", "+", detail="addition")
        if target in _ACTIVATION_METHODS:
            return GraphNode(fxn.name, "activation", str(target), detail=f"method {target}")
        return GraphNode(fxn.name, "other", str(target), detail=f"method {target}")
    return None


def _parameter(root: nn.Module, name: str) -> torch.Tensor | None:
    try:
        return root.get_parameter(name)
    except AttributeError:
        return None


def _conv_node(node_id: str, path: str, weight: str, shape: tuple[int, ...], layer_label,
               transposed: bool = False, groups: int = 1) -> GraphNode:
    # one name per layer everywhere: the module name; the plugin's name rides beside it
    label = path or weight.removesuffix(".weight")
    friendly = (layer_label(weight) if layer_label else None) or ""
    o, i, kh, kw = shape
    grouped = f", {groups} groups" if groups > 1 else ""
    if transposed:  # ConvTranspose2d stores (in, out/g, kh, kw); the filter numbering follows the tensor
        detail = f"{weight}: transposed conv {o}→{i * groups}, {kh}×{kw}{grouped}, weight {o}×{i}×{kh}×{kw}"
    else:           # a grouped conv stores (out, in/g, kh, kw)
        detail = f"{weight}: conv {i * groups}→{o}, {kh}×{kw}{grouped}"
    return GraphNode(node_id, "conv", label, path, weight=weight, shape=tuple(int(s) for s in shape),
                     detail=detail, friendly=friendly if friendly != label else "")


def _upsample_label(scale, mode) -> str:
    if isinstance(scale, (tuple, list)):
        scale = scale[0] if len(set(scale)) == 1 else "×".join(str(s) for s in scale)
    if isinstance(scale, float) and scale.is_integer():
        scale = int(scale)
    return f"{mode} ×{scale}" if scale is not None else f"{mode} (size)"


def _group_of(fxn: fx.Node, modules: dict[str, nn.Module]) -> tuple[str, str]:
    """Outermost sub-module on the call stack that is a real block, not a plain container."""
    stack = list((fxn.meta.get("nn_module_stack") or {}).values())
    own = str(fxn.target) if fxn.op == "call_module" else None
    for entry in stack:
        path = entry[0] if isinstance(entry, tuple) else str(entry)
        if not path or path == own:
            continue
        mod = modules.get(path)
        if mod is None or isinstance(mod, _CONTAINERS):
            continue
        return path, type(mod).__name__
    return "", ""


def fallback_graph(module: nn.Module, reason: str,
                   layer_label: Callable[[str], str | None] | None = None) -> NetworkGraph:
    """The convolutions in registration order, chained from input to output (no tracing)."""
    nodes = [GraphNode("input", "input", "input", detail="input")]
    for path, mod in module.named_modules():
        if isinstance(mod, nn.modules.conv._ConvNd) and mod.weight is not None and mod.weight.ndim == 4:
            node = _conv_node(f"conv:{path}", path, f"{path}.weight", tuple(mod.weight.shape), layer_label,
                              transposed=isinstance(mod, nn.ConvTranspose2d), groups=mod.groups)
            nodes.append(replace(node, scope=path.rsplit(".", 1)[0] if "." in path else ""))
    nodes.append(GraphNode("output", "output", "output", detail="output"))
    edges = [GraphEdge(a.id, b.id) for a, b in zip(nodes, nodes[1:])]
    return NetworkGraph(nodes, edges, traced=False, note=f"{reason}; showing the convolutions in order",
                        scopes=_scope_classes(nodes, dict(module.named_modules())))


_GRAPHS: dict[tuple, NetworkGraph] = {}
_TRACED: dict[tuple, fx.Graph | None] = {}


def _structure_key(model) -> tuple:
    return (model.arch_name, tuple(sorted((k, repr(v)) for k, v in model.hyperparameters.items())))


def traced_graph(model) -> fx.Graph | None:
    """The torch.fx graph of a registry ``LoadedModel``'s module, or None when it cannot be
    traced. Traced once per architecture and hyper-parameters (which fix the module's structure):
    torch.fx patches ``nn.Module.__call__`` for the whole process while it traces, so call this
    on the thread that owns the models (the UI thread), never next to a running forward."""
    key = _structure_key(model)
    if key not in _TRACED:
        try:
            # the tracer's graph alone: symbolic_trace would also generate and compile Python
            # code for a GraphModule that nobody runs (a cost that grows with the layers)
            _TRACED[key] = fx.Tracer().trace(model.module)
        except Exception:  # best effort: callers fall back to the plain forward
            _TRACED[key] = None
    return _TRACED[key]


def graph_for(model) -> NetworkGraph:
    """Graph of a registry ``LoadedModel`` with its plugin's layer labels (traced once per
    architecture and hyper-parameters: see :func:`traced_graph`)."""
    label = getattr(model.architecture, "layer_label", None)
    key = _structure_key(model)
    if key not in _GRAPHS:
        traced = traced_graph(model)
        _GRAPHS[key] = (_from_fx(traced, model.module, label) if traced is not None
                        else trace_graph(model.module, label))   # the fallback, with the reason
    g = _GRAPHS[key]   # nodes and edges are frozen: a copy of the containers is a private graph
    return NetworkGraph(list(g.nodes), list(g.edges), g.traced, g.note, dict(g.groups), g.collapsed, dict(g.scopes))


def conv_order(model) -> list[str]:
    """The conv weights of a registry ``LoadedModel`` in the order the network runs them
    (the traced graph's; registration order when tracing failed). No copy of the graph."""
    key = _structure_key(model)
    if key not in _GRAPHS:
        graph_for(model)
    return [n.weight for n in _GRAPHS[key].nodes if n.kind == "conv" and n.weight]


# -- layering and skips ----------------------------------------------------------------------------
def layering(graph: NetworkGraph) -> dict[str, int]:
    """Longest-path layers from the sources, then each node pulled down next to its consumers
    (so that e.g. the global up-sampling sits beside the final addition, not beside the input)."""
    order = [n.id for n in graph.nodes]
    preds, succs = defaultdict(list), defaultdict(list)
    for e in graph.edges:
        preds[e.dst].append(e.src)
        succs[e.src].append(e.dst)
    layer: dict[str, int] = {}
    for nid in order:  # nodes are topologically ordered
        layer[nid] = max((layer[p] + 1 for p in preds[nid] if p in layer), default=0)
    for nid in reversed(order):
        if succs[nid] and preds[nid]:
            layer[nid] = max(layer[nid], min(layer[s] for s in succs[nid]) - 1)
    return layer


def _with_skips(graph: NetworkGraph) -> NetworkGraph:
    layer = layering(graph)
    graph.edges = [replace(e, skip=layer[e.dst] - layer[e.src] > 1) for e in graph.edges]
    return graph


# -- layout ----------------------------------------------------------------------------------------
@dataclass
class Layout:
    """Node centres and edge routes in abstract units: ``layer`` down, ``x`` across (1 = one lane)."""

    position: dict[str, tuple[int, float]]                    # node id -> (layer, x)
    routes: dict[tuple[str, str], list[tuple[int, float]]]    # edge -> points from src to dst
    layers: int
    width: float                                              # max x - min x

    def crossings(self) -> int:
        """Number of crossing segment pairs between adjacent layers (a layout quality figure)."""
        segs = defaultdict(list)
        for pts in self.routes.values():
            for (l0, x0), (_l1, x1) in zip(pts, pts[1:]):
                segs[l0].append((x0, x1))
        count = 0
        for items in segs.values():
            for a in range(len(items)):
                for b in range(a + 1, len(items)):
                    (a0, a1), (b0, b1) = items[a], items[b]
                    if (a0 - b0) * (a1 - b1) < 0:
                        count += 1
        return count


def layout(graph: NetworkGraph, sweeps: int = 8) -> Layout:
    """Sugiyama-style: longest-path layers, dummy nodes on long edges, barycentre ordering,
    then x positions pulled towards neighbours with at least one lane between nodes."""
    layer = layering(graph)
    n_layers = max(layer.values(), default=-1) + 1
    rows: list[list[str]] = [[] for _ in range(n_layers)]
    for n in graph.nodes:
        rows[layer[n.id]].append(n.id)
    up, down = defaultdict(list), defaultdict(list)   # neighbours in the layer above / below
    chains: dict[tuple[str, str], list[str]] = {}
    for e in graph.edges:
        chain = [e.src]
        for k in range(layer[e.src] + 1, layer[e.dst]):
            dummy = f"~{e.src}>{e.dst}@{k}"
            rows[k].append(dummy)
            chain.append(dummy)
        chain.append(e.dst)
        for a, b in zip(chain, chain[1:]):
            down[a].append(b)
            up[b].append(a)
        chains[(e.src, e.dst)] = chain
    real = {n.id for n in graph.nodes}

    pos = {v: float(i) for row in rows for i, v in enumerate(row)}

    def reorder(row: list[str], neighbours) -> list[str]:
        def key(item):
            i, v = item
            nb = neighbours[v]
            return (sum(pos[u] for u in nb) / len(nb)) if nb else pos[v], i
        ordered = [v for _, v in sorted(enumerate(row), key=key)]
        for i, v in enumerate(ordered):
            pos[v] = float(i)
        return ordered

    best, best_cross = [list(r) for r in rows], None
    for sweep in range(sweeps):
        rng = range(1, n_layers) if sweep % 2 == 0 else range(n_layers - 2, -1, -1)
        nb = up if sweep % 2 == 0 else down
        for k in rng:
            rows[k] = reorder(rows[k], nb)
        cross = _count_crossings(rows, down, pos)
        if best_cross is None or cross < best_cross:
            best, best_cross = [list(r) for r in rows], cross
    rows = best
    x = _assign_x(rows, up)
    position = {v: (layer[v], x[v]) for v in real}
    routes = {key: [(layer[key[0]] + i, x[v]) for i, v in enumerate(chain)] for key, chain in chains.items()}
    xs = list(x.values()) or [0.0]
    return Layout(position, routes, n_layers, max(xs) - min(xs))


def _count_crossings(rows, down, pos) -> int:
    count = 0
    for row in rows:
        segs = [(pos[a], pos[b]) for a in row for b in down[a]]
        for i in range(len(segs)):
            for j in range(i + 1, len(segs)):
                if (segs[i][0] - segs[j][0]) * (segs[i][1] - segs[j][1]) < 0:
                    count += 1
    return count


def _assign_x(rows: list[list[str]], up) -> dict[str, float]:
    """Straight lanes (a simplified Brandes-Koepf): each vertex aligns with its median upper
    neighbour when that keeps the layer's order (no two alignments cross); aligned chains share
    one x; chains are packed left to right with one lane between neighbours in any layer."""
    pos = {v: i for row in rows for i, v in enumerate(row)}
    align_up: dict[str, str] = {}
    taken: set[str] = set()
    for row in rows[1:]:
        r = -1
        for v in row:
            nb = sorted(up[v], key=pos.__getitem__)
            if not nb:
                continue
            m = (len(nb) - 1) // 2
            for u in ([nb[m]] if len(nb) % 2 else [nb[m], nb[m + 1]]):
                if u not in taken and pos[u] > r:
                    align_up[v] = u
                    taken.add(u)
                    r = pos[u]
                    break
    root: dict[str, str] = {}
    for row in rows:
        for v in row:
            root[v] = root[align_up[v]] if v in align_up else v
    left_of: dict[str, set[str]] = defaultdict(set)
    right_of: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        for a, b in zip(row, row[1:]):
            if root[a] != root[b]:
                left_of[root[b]].add(root[a])
                right_of[root[a]].add(root[b])
    blocks = list(dict.fromkeys(root.values()))
    pending = {b: len(left_of[b]) for b in blocks}
    ready = [b for b in blocks if pending[b] == 0]
    bx: dict[str, float] = {}
    while ready:
        b = ready.pop()
        bx[b] = max((bx[a] + 1.0 for a in left_of[b]), default=0.0)
        for c in right_of[b]:
            pending[c] -= 1
            if pending[c] == 0:
                ready.append(c)
    if len(bx) < len(blocks):  # cannot happen with non-crossing alignments; stay safe anyway
        return {v: float(i) for row in rows for i, v in enumerate(row)}
    return {v: bx[root[v]] for v in root}
