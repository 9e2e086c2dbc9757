"""The FAIG paper's SRCNN-style net: one ``features`` Sequential of 3x3 convs and LeakyReLUs,
PixelShuffle up-sampling, then a conv + LeakyReLU and the output conv (keys ``features.N``).

The layout is inferred from the keys: each conv sits at its index; a conv whose output is
r^2 times the next conv's input is an up-sampling conv followed by PixelShuffle(r).
"""
from __future__ import annotations

import math
import re
from typing import Any
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from faig_gui.core.plugin_api import Architecture

_KEY = re.compile(r"^features\.(\d+)\.(weight|bias)$")


class SRCNNStyle(nn.Module):
    def __init__(self, features: nn.Sequential):
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _conv_layout(sd: Mapping[str, torch.Tensor]) -> list[tuple[int, int, int, int]] | None:
    """[(index, in, out, kernel)] of the convs in key order, or None when keys do not fit."""
    convs = []
    for key, value in sd.items():
        m = _KEY.match(key)
        if not m:
            return None
        if m.group(2) == "weight":
            if value.ndim != 4 or value.shape[2] != value.shape[3] or value.shape[2] % 2 == 0:
                return None
            convs.append((int(m.group(1)), int(value.shape[1]), int(value.shape[0]), int(value.shape[2])))
    # by index, not by key order: a .safetensors file sorts 'features.10' before 'features.2'
    return sorted(convs) or None


def _plan(convs: Sequence[tuple[int, ...]]) -> tuple[list[tuple[str, Any]], int] | None:
    """Module list [(kind, arg)] indexed like the state dict and the overall scale."""
    modules: list[tuple[str, Any]] = []
    scale = 1
    for n, (index, cin, cout, k) in enumerate(convs):
        if index != len(modules):
            return None
        modules.append(("conv", (cin, cout, k)))
        if n == len(convs) - 1:
            break
        next_in = convs[n + 1][1]
        if cout != next_in:
            r = math.isqrt(cout // next_in) if cout % next_in == 0 else 0
            if r < 2 or r * r * next_in != cout:
                return None
            modules.append(("shuffle", r))
            scale *= r
        modules.append(("lrelu", None))
    return modules, scale


class SRCNNStyleArchitecture(Architecture):
    name = "srcnn_style"
    display_name = "SRCNN-style net (FAIG paper)"

    def detect(self, sd: Mapping[str, torch.Tensor]) -> bool:
        convs = _conv_layout(sd)
        if not convs:
            return False
        plan = _plan(convs)
        return plan is not None and plan[1] in (2, 3, 4, 8) and len(convs) >= 3

    def hyperparameters(self, sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        convs = _conv_layout(sd)
        plan = _plan(convs) if convs else None
        if convs is None or plan is None:
            raise ValueError("keys are not an SRCNN-style features.N layout")
        return {"convs": [list(c) for c in convs], "scale": plan[1]}

    def build(self, hp: Mapping[str, Any]) -> nn.Module:
        plan = _plan([tuple(c) for c in hp["convs"]])
        if plan is None:
            raise ValueError("inconsistent SRCNN-style layout")
        layers: list[nn.Module] = []
        for kind, arg in plan[0]:
            if kind == "conv":
                cin, cout, k = arg
                layers.append(nn.Conv2d(cin, cout, k, 1, k // 2))
            elif kind == "shuffle":
                layers.append(nn.PixelShuffle(arg))
            else:
                layers.append(nn.LeakyReLU(negative_slope=0.1))
        return SRCNNStyle(nn.Sequential(*layers))

    def new_state_dict(self, scale: int = 2, widths: tuple[int, ...] = (64, 128, 128, 128, 128, 128),
                       **_: Any) -> dict[str, torch.Tensor]:
        convs: list[tuple[int, int, int, int]] = []
        cin, index = 3, 0
        for w in widths:
            convs.append((index, cin, w, 3))
            index += 2
            cin = w
        for r in ([2] * int(math.log2(scale)) if scale & (scale - 1) == 0 else [scale]):
            convs.append((index, cin, cin * r * r, 3))
            index += 3
        convs.append((index, cin, cin, 3))
        index += 2
        convs.append((index, cin, 3, 3))
        return dict(self.build({"convs": convs, "scale": scale}).state_dict())

    def layer_label(self, name: str) -> str | None:
        m = _KEY.match(name)
        return f"conv @features.{m.group(1)}" if m else None


ARCHITECTURES = [SRCNNStyleArchitecture()]
