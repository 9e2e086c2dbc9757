"""Global filter numbering (docs/method.md): every 4-D ``*.weight`` in state-dict order; inside one
layer in the weight tensor's own storage order, dimension 0 major, then dimension 1: index =
offset(layer) + row * cols + col. For a plain convolution (weight ``(out, in, kh, kw)``) that is
``o * in + i``, the numbering of the authors' ``*_index.txt`` files, so ranked lists are
exchangeable.

What a filter is, per layer kind (docs/plugins.md): always one 2-D kernel ``W[row, col]``.

- ``Conv2d`` (any kernel size, 1x1 included): ``W`` is ``(out, in, kh, kw)``; row = out, col = in.
- grouped ``Conv2d`` (``groups = g``): ``W`` is ``(out, in/g, kh, kw)``: each output channel
  sees only its group's ``in/g`` inputs; col is the input's place inside that group, and the true
  input channel is ``(o // (out/g)) * (in/g) + col``.
- ``ConvTranspose2d``: ``W`` is ``(in, out/g, kh, kw)``; row = the input channel, col the output
  channel inside its group. Numbered in that storage order, so a mask indexes the tensor directly,
  but labelled (out, in) like every other layer.

A state dict alone cannot tell a transposed or grouped convolution from a plain one (the shapes
fit either): give the module (``from_module``, ``from_state_dict(sd, module=...)``) to label
them right. The numbering is the same either way: it follows the tensors.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch import nn

from faig_gui.core.errors import FaigError


@dataclass(frozen=True)
class FilterLayer:
    name: str          # parameter name, e.g. 'body.3.conv1.weight'
    out_channels: int  # the layer's output channels
    in_channels: int   # the layer's input channels
    kernel: tuple[int, int]
    offset: int        # global index of the filter stored at W[0, 0]
    groups: int = 1
    transposed: bool = False

    @property
    def rows(self) -> int:
        """Size of the weight's dimension 0 (out; in for a transposed convolution)."""
        return self.in_channels if self.transposed else self.out_channels

    @property
    def cols(self) -> int:
        """Size of the weight's dimension 1 (in/groups; out/groups when transposed)."""
        return (self.out_channels if self.transposed else self.in_channels) // self.groups

    @property
    def count(self) -> int:
        return self.rows * self.cols

    @property
    def module_name(self) -> str:
        return self.name.removesuffix(".weight")

    @property
    def kind(self) -> str:
        base = "transposed conv" if self.transposed else "conv"
        return f"grouped {base} ({self.groups} groups)" if self.groups > 1 else base

    def channels(self, row: int, col: int) -> tuple[int, int]:
        """(out, in) of the kernel stored at ``W[row, col]``."""
        if self.transposed:
            group = row // (self.in_channels // self.groups)
            return group * self.cols + col, row
        group = row // (self.out_channels // self.groups)
        return row, group * self.cols + col

    def storage(self, out: int, inp: int) -> tuple[int, int] | None:
        """(row, col) of the kernel joining input ``inp`` to output ``out``; None when the two sit
        in different groups (no kernel joins them)."""
        out_per, in_per = self.out_channels // self.groups, self.in_channels // self.groups
        if out // out_per != inp // in_per:
            return None
        return (inp, out % out_per) if self.transposed else (out, inp % in_per)

    def channel_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """(out, in) of every stored kernel as two (rows, cols) arrays, for labels and plots."""
        rows, cols = np.meshgrid(np.arange(self.rows), np.arange(self.cols), indexing="ij")
        if self.transposed:
            return (rows // (self.in_channels // self.groups)) * self.cols + cols, rows
        return rows, (rows // (self.out_channels // self.groups)) * self.cols + cols


def _conv_modules(module: nn.Module | None) -> dict[str, nn.modules.conv._ConvNd]:
    if module is None:
        return {}
    return {name: m for name, m in module.named_modules() if isinstance(m, nn.modules.conv._ConvNd)}


class FilterIndex:
    """Maps between global filter indices and (layer, out, in)."""

    def __init__(self, layers: Iterable[FilterLayer]):
        self.layers: list[FilterLayer] = list(layers)
        self._by_name = {layer.name: n for n, layer in enumerate(self.layers)}
        self._offsets = np.array([layer.offset for layer in self.layers], dtype=np.int64)
        self.total = sum(layer.count for layer in self.layers)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor], module: nn.Module | None = None
                        ) -> FilterIndex:
        """Every 4-D ``*.weight``; ``module`` (the network they belong to) tells transposed and
        grouped convolutions apart, for labels. Without it every weight reads as a plain conv."""
        convs = _conv_modules(module)
        layers, offset = [], 0
        for name, value in state_dict.items():
            if name.endswith("weight") and value.ndim == 4:
                rows, cols, kh, kw = (int(n) for n in value.shape)
                conv = convs.get(name.removesuffix(".weight"))
                groups = int(conv.groups) if conv is not None else 1
                transposed = bool(conv is not None and conv.transposed)
                if transposed:
                    layer = FilterLayer(name, cols * groups, rows, (kh, kw), offset, groups, True)
                else:
                    layer = FilterLayer(name, rows, cols * groups, (kh, kw), offset, groups, False)
                layers.append(layer)
                offset += rows * cols
        if not layers:
            raise FaigError("the model has no convolution weights (4-D '*.weight' tensors): nothing to attribute")
        return cls(layers)

    @classmethod
    def from_module(cls, module: nn.Module) -> FilterIndex:
        return cls.from_state_dict(module.state_dict(), module)

    @classmethod
    def of_model(cls, model) -> FilterIndex:
        """For a loaded model (``LoadedModel``): its state dict's order, its module's layer kinds."""
        return cls.from_state_dict(model.state_dict, model.module)

    def __len__(self) -> int:
        return self.total

    def layer(self, name: str) -> FilterLayer:
        try:
            return self.layers[self._by_name[name]]
        except KeyError:
            raise FaigError(f"no convolution weight named '{name}'") from None

    def layer_position(self, name: str) -> int:
        return self._by_name[name]

    def to_global(self, layer: str, out: int, inp: int) -> int:
        """Index of the kernel joining input channel ``inp`` to output channel ``out``."""
        info = self.layer(layer)
        if not (0 <= out < info.out_channels and 0 <= inp < info.in_channels):
            raise FaigError(f"filter ({out}, {inp}) is outside layer '{layer}' "
                            f"({info.out_channels} x {info.in_channels})")
        place = info.storage(out, inp)
        if place is None:
            raise FaigError(f"layer '{layer}' is a {info.kind}: output {out} does not see input {inp}")
        return info.offset + place[0] * info.cols + place[1]

    def from_global(self, index: int) -> tuple[str, int, int]:
        """(layer, out, in) of a global index: the true channels, whatever the storage order."""
        name, row, col = self.stored_at(index)
        return (name, *self.layer(name).channels(row, col))

    def stored_at(self, index: int) -> tuple[str, int, int]:
        """(layer, row, col): where the kernel sits in its weight tensor, ``W[row, col]``."""
        if not 0 <= index < self.total:
            raise FaigError(f"filter index {index} is outside 0..{self.total - 1}")
        n = int(np.searchsorted(self._offsets, index, side="right") - 1)
        info = self.layers[n]
        row, col = divmod(index - info.offset, info.cols)
        return info.name, row, col

    def layer_slice(self, name: str) -> slice:
        info = self.layer(name)
        return slice(info.offset, info.offset + info.count)

    def layer_of(self, indices: np.ndarray) -> np.ndarray:
        """Position (in ``layers``) of each global index, vectorised."""
        return np.searchsorted(self._offsets, np.asarray(indices), side="right") - 1

    def layer_bounds(self, sorted_indices: np.ndarray) -> np.ndarray:
        """For sorted global indices, ``len(layers) + 1`` positions ``b``: the indices in layer n
        are ``sorted_indices[b[n]:b[n + 1]]`` (an O(layers) search instead of one per index)."""
        return np.searchsorted(sorted_indices, np.append(self._offsets, self.total))

    def per_filter(self, tensors: Mapping[str, torch.Tensor], reduce: str = "sum_abs") -> np.ndarray:
        """Flatten per-kernel values of layer-shaped tensors into one global float64 vector."""
        out = np.empty(self.total, dtype=np.float64)
        for info in self.layers:
            t = tensors[info.name].detach().double().reshape(info.rows, info.cols, -1)
            if reduce == "sum_abs":
                t = t.abs().sum(-1)
            elif reduce == "sum":
                t = t.sum(-1)
            else:
                raise ValueError(reduce)
            out[info.offset:info.offset + info.count] = t.reshape(-1).cpu().numpy()
        return out

    def describe(self, index: int) -> str:
        name, o, i = self.from_global(index)
        return f"{name}[{o}, {i}]"


def top_indices(scores: np.ndarray, proportion: float | None = None, count: int | None = None) -> np.ndarray:
    """Indices of the highest scores, descending (ties broken by lower index, deterministic)."""
    scores = np.asarray(scores)
    if count is None:
        if proportion is None:
            raise ValueError("give a proportion or a count")
        if not 0 <= proportion <= 1:
            raise FaigError(f"proportion {proportion} must lie in [0, 1] (a fraction, e.g. 0.01 for 1 %)")
        count = int(len(scores) * proportion)
    count = max(0, min(int(count), len(scores)))
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    if count * 4 >= len(scores):
        return ranking(scores)[:count]
    # O(N) selection, then sort only the chosen: same order and tie rule as ranking()[:count]
    s = np.asarray(scores, dtype=np.float64)
    threshold = s[np.argpartition(-s, count - 1)[:count]].min()
    above = np.flatnonzero(s > threshold)
    ties = np.flatnonzero(s == threshold)[: count - len(above)]
    chosen = np.concatenate([above, ties])
    return chosen[np.lexsort((chosen, -s[chosen]))]


def ranking(scores: np.ndarray) -> np.ndarray:
    """All indices by descending score; stable, so equal scores keep index order."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
