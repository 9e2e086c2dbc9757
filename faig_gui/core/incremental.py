"""A forward pass that recomputes only what a change of weights touches.

Masking a filter changes one layer's weights; everything the network computed before that layer
stays as it was. :class:`IncrementalForward` runs a module's torch.fx graph node by node and keeps
every node's output for one input; the next call with other weights recomputes only the nodes
that depend, directly or through their inputs, on a parameter whose value changed, and takes the
rest from the last call. Toggling a filter in a late layer (the upsampling convolutions hold
most of the top filters) then costs a fraction of a forward pass; a change in the first layer
costs one full pass, as before. Outputs are those of the plain forward: the same operations run
on the same values.

In-place operations (``x.mul_(a)``, ``inplace=True`` activations) run in place, as in the plain
forward, so later readers of the mutated node see what they would see there. The node they
mutate is made to depend on everything the operation depends on: whenever the operation must run
again, the value it mutates is first computed afresh, never mutated twice.

Speculation (``aside=True``): a run for weights that may be asked for next (the image view's
prefetch) is computed *aside*: from the record, into a second record, leaving the first as it
was. An ordinary run starts from whichever of the two needs fewer nodes (the aside one then
becomes the record), so a guess that proves wrong costs the next real run nothing (a click after
a prefetched top-k step still reruns only the clicked layer onwards) and one that comes true
costs it nothing either. A run can be stopped between nodes (``should_stop``): it raises
``Cancelled``; a stopped aside run leaves the first record untouched, a stopped (or failed)
ordinary run forgets every kept output that depends on its change, so that the next run
computes those again. (A stoppable run does not write into a copy of the kept outputs instead:
the new outputs would then all need fresh memory, which the allocator maps in page by page,
~35 % on top of a pass here.)

Memory: one output per graph node for the current input (for MSRResNet 32/8 at 128x128 LR about
60 MB), twice that with an aside record. Inputs above ``max_pixels``, or whose two records would
hold more than ``max_bytes`` (RRDBNet x4 64/23/32 keeps 311 KB per LR pixel: 5.2 GB a record at
128x128, and the window reached 6.8 GB), run the plain forward instead.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, cast
from collections.abc import Callable, Mapping

import torch
from torch import fx, nn
from torch.func import functional_call

from faig_gui.core.attribution import Cancelled

#: what the two records together may hold (bytes); larger inputs run the plain forward
RECORD_BYTES = 2 * 1024 ** 3

_IN_PLACE_OPERATORS = {operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ifloordiv,
                       operator.imod, operator.ipow, operator.iand, operator.ior, operator.ixor}


@dataclass
class _Record:
    """One kept pass: its input, weights and every node's output."""

    input: torch.Tensor | None = None
    params: dict[str, torch.Tensor] = field(default_factory=dict)
    values: dict[fx.Node, Any] = field(default_factory=dict)
    valid: bool = True        # False while (or after) an aside run writes into it part way


class IncrementalForward:
    """Node-by-node replay of ``graph`` over ``module`` with substitutable parameters.

    ``run(x, params)``: the module's output for input ``x`` with the parameters ``params`` (a full
    state dict of the module's parameters). The cache is keyed by the input object: a new tensor
    (even with equal values) starts over with a full pass.
    """

    def __init__(self, module: nn.Module, graph: fx.Graph, max_pixels: int = 256 * 256,
                 max_bytes: float = RECORD_BYTES):
        self.module = module
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        self._bytes_per_pixel: float | None = None
        self.gm = fx.GraphModule(module, graph)
        self.nodes = list(self.gm.graph.nodes)
        self.submodules = dict(self.gm.named_modules())
        own = {**dict(module.named_parameters()), **dict(module.named_buffers())}
        # each node's parameters: its own (call_module, get_attr) plus its inputs', transitively
        self.depends: dict[fx.Node, frozenset[str]] = {}
        for node in self.nodes:
            deps: set[str] = set()
            if node.op == "call_module":
                prefix = f"{node.target}."
                deps.update(k for k in own if k.startswith(prefix))
            elif node.op == "get_attr" and node.target in own:
                deps.add(node.target)
            for src in node.all_input_nodes:
                deps |= self.depends[src]
            self.depends[node] = frozenset(deps)
        self._propagate_in_place()
        # each call_module node's own parameter names, with the names its module knows them by
        # (filtering the full state dict per node cost ~0.2 s a pass at RRDBNet's 700 tensors)
        self._local_keys: dict[fx.Node, tuple[tuple[str, str], ...]] = {
            node: tuple((k, k[len(node.target) + 1:]) for k in own if k.startswith(f"{node.target}."))
            for node in self.nodes if node.op == "call_module"}
        self._main = _Record()           # what the last ordinary run (or a promoted aside run) left
        self._aside = _Record(valid=False)
        self.last_recomputed = 0        # nodes run by the last call (for tests and benchmarks)
        self.last_share = 0.0           # the share of a full pass's arithmetic the last call ran
        self._costs: tuple[tuple, dict[fx.Node, float]] | None = None   # (input shape, per node)

    def keeps(self, x: torch.Tensor) -> bool:
        """Whether runs on inputs shaped like ``x`` keep every node's output (else they run the
        plain forward): at most ``max_pixels``, and both records within ``max_bytes``."""
        pixels = x.shape[-1] * x.shape[-2]
        return pixels <= self.max_pixels and 2 * self.bytes_per_pixel(x) * pixels <= self.max_bytes

    def bytes_per_pixel(self, x: torch.Tensor) -> float:
        """Bytes one record holds per input pixel, measured once with one pass on an 8 x 8 input
        of ``x``'s batch, channels and type (every kept output scales with the input's pixels;
        ~0.1 s for RRDBNet x4, whose record at 128 x 128 would hold 5 GB). (The meta device would
        need no arithmetic, but its element-wise kernels run in Python: 1.6 s for RRDBNet.)"""
        if self._bytes_per_pixel is None:
            side = 8
            probe = torch.zeros(*x.shape[:-2], side, side, dtype=x.dtype)
            values: dict[fx.Node, Any] = {}
            storages: dict[int, int] = {}
            with torch.inference_mode():
                for node in self.nodes:
                    out = values[node] = self._run_node(node, values, probe, {})
                    if isinstance(out, torch.Tensor) and node.op != "get_attr":
                        # (views and in-place results share one storage: counted once)
                        storages[out.untyped_storage().data_ptr()] = out.untyped_storage().nbytes()
            self._bytes_per_pixel = sum(storages.values()) / side ** 2
        return self._bytes_per_pixel

    def _mutates(self, node: fx.Node) -> fx.Node | None:
        """The node whose value ``node`` changes in place, if any."""
        first = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
        if first is None:
            return None
        if (node.op == "call_method" and isinstance(node.target, str) and node.target.endswith("_")
                and not node.target.endswith("__")):
            return first
        if node.op == "call_function" and (node.target in _IN_PLACE_OPERATORS or node.kwargs.get("inplace")):
            return first
        if node.op == "call_module" and getattr(self.submodules.get(node.target), "inplace", False):
            return first
        return None

    def _propagate_in_place(self) -> None:
        pairs = [(n, m) for n in self.nodes if (m := self._mutates(n)) is not None]
        changed = bool(pairs)
        while changed:   # a fixpoint over the (small) graph: dependencies only grow
            changed = False
            for op, target in pairs:
                if not self.depends[op] <= self.depends[target]:
                    self.depends[target] = self.depends[target] | self.depends[op]
                    changed = True
            for node in self.nodes:
                deps = set(self.depends[node])
                for src in node.all_input_nodes:
                    deps |= self.depends[src]
                if deps != self.depends[node]:
                    self.depends[node] = frozenset(deps)
                    changed = True

    def clear(self) -> None:
        self._main, self._aside = _Record(), _Record(valid=False)

    def changed(self, params: Mapping[str, torch.Tensor], record: _Record | None = None) -> set[str]:
        """Names whose tensors differ from the record's (by default the last run's; same object:
        unchanged)."""
        kept = (record or self._main).params
        out = set()
        for k, v in params.items():
            old = kept.get(k)
            if old is None or (v is not old and not torch.equal(v, old)):
                out.add(k)
        return out

    def _to_run(self, record: _Record, x: torch.Tensor, params: Mapping[str, torch.Tensor]) -> list[fx.Node] | None:
        """The nodes a run from ``record`` must compute; None when it cannot serve (another input)."""
        if not record.valid or record.input is not x:
            return None
        changed = self.changed(params, record)
        return [n for n in self.nodes if n not in record.values or self.depends[n] & changed]

    def planned_share(self, x: torch.Tensor, params: Mapping[str, torch.Tensor]) -> float | None:
        """The share of a full pass's arithmetic that ``run(x, params)`` would compute, from the
        closer of the two records; None when unknown (another input, or no pass of this shape
        yet). The preview policy (core/preview.py) asks it before choosing to render a crop."""
        if self._costs is None or self._costs[0] != tuple(x.shape):
            return None
        plans = [t for t in (self._to_run(self._main, x, params), self._to_run(self._aside, x, params))
                 if t is not None]
        if not plans:
            return None
        costs = self._costs[1]
        return min(sum(costs[n] for n in t) for t in plans) / max(sum(costs.values()), 1e-12)

    def pass_macs(self, x: torch.Tensor) -> float | None:
        """Multiply-adds of a full pass for inputs shaped like ``x`` (None before one ran)."""
        if self._costs is None or self._costs[0] != tuple(x.shape):
            return None
        return sum(self._costs[1].values())

    def run(self, x: torch.Tensor, params: Mapping[str, torch.Tensor],
            should_stop: Callable[[], bool] | None = None, aside: bool = False) -> torch.Tensor:
        """The output for ``x`` with ``params``. ``should_stop()`` is asked before each node that
        must run; when it answers True the run raises ``Cancelled`` (see the module docstring
        for what is kept). ``aside``: a speculative run, kept in the second record."""
        if not self.keeps(x):
            if should_stop is not None and should_stop():
                raise Cancelled()
            self.clear()
            self.last_recomputed, self.last_share = len(self.nodes), 1.0
            with torch.inference_mode():
                return functional_call(self.module, dict(params), (x,))
        todo = self._to_run(self._main, x, params)
        other = None if aside else self._to_run(self._aside, x, params)
        if other is not None and (todo is None or len(other) < len(todo)):
            # the aside record is closer (a guess that came true): it becomes the record, and
            # the old one the buffer the next aside run overwrites
            self._main, self._aside = self._aside, self._main
            todo = other
        if todo is None:   # a new input: everything (an aside run leaves the record as it is)
            if not aside:
                self._main = _Record()
            todo = list(self.nodes)
        self.last_share = 0.0
        if aside:
            values = self._run_aside(x, params, todo, should_stop)
        else:
            values = self._run_in_place(x, params, todo, should_stop)
        costs = self._node_costs(x, values)
        self.last_share = sum(costs[n] for n in todo) / max(sum(costs.values()), 1e-12)
        out = next(n for n in reversed(self.nodes) if n.op == "output")
        return values[out]

    def _node_costs(self, x: torch.Tensor, values: Mapping[fx.Node, Any]) -> dict[fx.Node, float]:
        """Each node's share of the work of a pass, by its arithmetic: output elements times the
        multiply-adds behind each (a convolution's in-channels x kernel size, a linear layer's
        inputs; 1 for element-wise work). Counting nodes instead made the five nodes after
        conv_hr look like 11 % of a pass when they are ~25 % of its time (at 4x the pixels), and
        the thread tuner, which divides a render's time by its share, misjudged them."""
        key = tuple(x.shape)
        if self._costs is None or self._costs[0] != key:
            costs = {}
            for node in self.nodes:
                out = values.get(node)
                size = out.numel() if isinstance(out, torch.Tensor) else 0
                sub = self.submodules.get(node.target) if node.op == "call_module" else None
                if isinstance(sub, nn.modules.conv._ConvNd):
                    per = sub.in_channels // sub.groups * math.prod(sub.kernel_size)
                elif isinstance(sub, nn.Linear):
                    per = sub.in_features
                else:
                    per = 1
                costs[node] = float(size * per)
            self._costs = (key, costs)
        return self._costs[1]

    def _run_in_place(self, x, params, todo: list[fx.Node], should_stop) -> dict:
        main = self._main
        values = main.values
        rerun = set(todo)
        count = 0
        try:
            with torch.inference_mode():
                for node in todo:
                    if should_stop is not None and should_stop():
                        raise Cancelled()
                    values[node] = self._run_node(node, values, x, params)
                    count += 1
        except BaseException:
            # replaced in place part way: outputs of the new weights sit beside the old ones.
            # Forget every output this run was to replace; the old weights stay the record, so
            # the next run computes those nodes again (they are missing) and keeps the rest
            for node in rerun:
                values.pop(node, None)
            self.last_recomputed = count
            raise
        main.input, main.params = x, dict(params)
        self.last_recomputed = count
        return values

    def _run_aside(self, x, params, todo: list[fx.Node], should_stop) -> dict:
        # into the aside record's own dict, node by node: each output it held is let go right
        # after its replacement is made, so the allocator reuses the memory (see the docstring).
        # Nodes not run share the main record's tensors; they are never written in place:
        # an in-place operation's target runs again before it (see _propagate_in_place)
        main, buf = self._main, self._aside
        buf.valid = False
        values = buf.values
        rerun = set(todo)
        count = 0
        with torch.inference_mode():
            for node in self.nodes:
                if node not in rerun:
                    values[node] = main.values[node]
                    continue
                if should_stop is not None and should_stop():
                    self.last_recomputed = count
                    raise Cancelled()
                values[node] = self._run_node(node, values, x, params)
                count += 1
        buf.input, buf.params, buf.valid = x, dict(params), True
        self.last_recomputed = count
        return values

    def _run_node(self, node: fx.Node, values: dict, x: torch.Tensor, params: Mapping[str, torch.Tensor]) -> Any:
        if node.op == "placeholder":
            return x
        if node.op == "output":
            return fx.node.map_arg(node.args[0], lambda n: values[n])
        args = fx.node.map_arg(node.args, lambda n: values[n])
        kwargs = fx.node.map_arg(node.kwargs, lambda n: values[n])
        # fx types a target as str | callable: a name for get_attr, call_method and call_module,
        # a callable for call_function (the casts cost nothing at run time)
        if node.op == "get_attr":
            name = cast(str, node.target)
            if name in params:
                return params[name]
            obj: Any = self.gm
            for part in name.split("."):
                obj = getattr(obj, part)
            return obj
        if node.op == "call_function":
            return cast(Callable[..., Any], node.target)(*args, **kwargs)
        if node.op == "call_method":
            self_obj, *rest = args
            return getattr(self_obj, cast(str, node.target))(*rest, **kwargs)
        if node.op == "call_module":
            sub = self.submodules[cast(str, node.target)]
            local = {short: params[k] for k, short in self._local_keys[node] if k in params}
            if local and _plain_conv(sub, local) and not kwargs and len(args) == 1:
                # what Conv*d.forward does with these weights, without functional_call's swap
                # of the module's parameters in and out (a cost per layer: docs/performance.md)
                return sub._conv_forward(args[0], local["weight"], local.get("bias"))
            if local:
                return functional_call(sub, local, tuple(args), kwargs)
            return sub(*args, **kwargs)
        raise RuntimeError(f"unknown fx node kind {node.op}")


_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _plain_conv(module: nn.Module, local: Mapping[str, torch.Tensor]) -> bool:
    """A convolution whose forward is exactly ``_conv_forward(x, weight, bias)`` for ``local``:
    one of torch's own classes (not a subclass with a forward of its own), no hooks, and
    ``local`` replacing its weight and (when it has one) its bias, nothing else."""
    if type(module) not in _CONVS or module._forward_hooks or module._forward_pre_hooks:
        return False
    if nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks:
        return False
    own = {"weight"} | ({"bias"} if module.bias is not None else set())
    return set(local) == own
