"""Global filter numbering (FAIG.md): every 4-D ``*.weight`` in state-dict order; inside one
layer ``o``-major then ``i``: index = offset(layer) + o * in + i. This is the numbering of the
authors' ``*_index.txt`` files, so ranked lists are exchangeable."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import torch

from faig_gui.core.errors import FaigError


@dataclass(frozen=True)
class FilterLayer:
    name: str          # parameter name, e.g. 'body.3.conv1.weight'
    out_channels: int
    in_channels: int
    kernel: tuple[int, int]
    offset: int        # global index of filter (0, 0)

    @property
    def count(self) -> int:
        return self.out_channels * self.in_channels

    @property
    def module_name(self) -> str:
        return self.name.removesuffix(".weight")


class FilterIndex:
    """Maps between global filter indices and (layer, out, in)."""

    def __init__(self, layers: Iterable[FilterLayer]):
        self.layers: list[FilterLayer] = list(layers)
        self._by_name = {layer.name: n for n, layer in enumerate(self.layers)}
        self._offsets = np.array([layer.offset for layer in self.layers], dtype=np.int64)
        self.total = sum(layer.count for layer in self.layers)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor]) -> "FilterIndex":
        layers, offset = [], 0
        for name, value in state_dict.items():
            if name.endswith("weight") and value.ndim == 4:
                o, i, kh, kw = value.shape
                layers.append(FilterLayer(name, int(o), int(i), (int(kh), int(kw)), offset))
                offset += int(o) * int(i)
        if not layers:
            raise FaigError("the model has no convolution weights (4-D '*.weight' tensors): nothing to attribute")
        return cls(layers)

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
        info = self.layer(layer)
        if not (0 <= out < info.out_channels and 0 <= inp < info.in_channels):
            raise FaigError(f"filter ({out}, {inp}) is outside layer '{layer}' "
                            f"({info.out_channels} x {info.in_channels})")
        return info.offset + out * info.in_channels + inp

    def from_global(self, index: int) -> tuple[str, int, int]:
        if not 0 <= index < self.total:
            raise FaigError(f"filter index {index} is outside 0..{self.total - 1}")
        n = int(np.searchsorted(self._offsets, index, side="right") - 1)
        info = self.layers[n]
        out, inp = divmod(index - info.offset, info.in_channels)
        return info.name, out, inp

    def layer_slice(self, name: str) -> slice:
        info = self.layer(name)
        return slice(info.offset, info.offset + info.count)

    def layer_of(self, indices: np.ndarray) -> np.ndarray:
        """Position (in ``layers``) of each global index, vectorised."""
        return np.searchsorted(self._offsets, np.asarray(indices), side="right") - 1

    def per_filter(self, tensors: Mapping[str, torch.Tensor], reduce: str = "sum_abs") -> np.ndarray:
        """Flatten per-kernel values of layer-shaped tensors into one global float64 vector."""
        out = np.empty(self.total, dtype=np.float64)
        for info in self.layers:
            t = tensors[info.name].detach().double().reshape(info.out_channels, info.in_channels, -1)
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
