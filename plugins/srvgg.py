"""Real-ESRGAN's SRVGGNetCompact (``realesr-general-x4v3``, ``realesr-animevideov3``, ...).

One ``body`` ModuleList: conv, activation, ``num_conv`` x (conv, activation), a last conv to
``out * upscale^2`` channels, then PixelShuffle and the nearest-upsampled input added. Keys are
``body.N.weight`` / ``body.N.bias`` exactly as Real-ESRGAN saves them (a conv at every even
index, its activation at the odd index after it). A PReLU activation has a per-channel weight
``body.(2k+1).weight`` of shape (num_feat,): that is how the activation type is read from the
weights. ReLU and LeakyReLU have no parameters and cannot be told apart from the weights: without
PReLU weights the net is built with LeakyReLU(0.1) unless the user says otherwise (``--arch
srvgg:act_type=relu``).

PReLU weights are 1-D, so they are not filters (faig_gui.core.filters counts 2-D kernels only).
"""
from __future__ import annotations

import math
import re
from typing import Any
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from faig_gui.core.plugin_api import Architecture

_KEY = re.compile(r"^body\.(\d+)\.(weight|bias)$")
ACT_TYPES = ("prelu", "relu", "leakyrelu")


def _activation(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU()
    if act_type == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1)
    raise ValueError(f"act_type must be one of {', '.join(ACT_TYPES)}, not {act_type!r}")


class SRVGGNetCompact(nn.Module):
    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_conv: int = 16,
                 upscale: int = 4, act_type: str = "prelu"):
        super().__init__()
        if num_in_ch != num_out_ch:
            # the nearest-upsampled input is added to the output, channel for channel
            raise ValueError(f"SRVGGNetCompact needs as many output channels as input ({num_out_ch} vs {num_in_ch})")
        self.upscale = upscale
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


def _layout(sd: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    """Hyper-parameters when every key fits SRVGGNetCompact's layout, else None."""
    convs: dict[int, tuple[int, ...]] = {}
    acts: dict[int, tuple[int, ...]] = {}
    biases: set[int] = set()
    for key, value in sd.items():
        m = _KEY.match(key)
        if not m or not isinstance(value, torch.Tensor):
            return None
        n = int(m.group(1))
        if m.group(2) == "bias":
            biases.add(n)
        elif value.ndim == 4:
            convs[n] = tuple(value.shape)
        elif value.ndim == 1:
            acts[n] = tuple(value.shape)
        else:
            return None
    last = max(convs, default=-1)
    # convs at 0, 2, ..., last; each with a bias; PReLUs (if any) at every odd index below last
    if last < 2 or sorted(convs) != list(range(0, last + 1, 2)) or biases != set(convs):
        return None
    if acts and sorted(acts) != list(range(1, last, 2)):
        return None
    num_feat, num_in = convs[0][0], convs[0][1]
    if any(convs[n] != (num_feat, num_feat, 3, 3) for n in range(2, last, 2)):
        return None
    if convs[0][2:] != (3, 3) or convs[last][1:] != (num_feat, 3, 3):
        return None
    if any(shape != (num_feat,) for shape in acts.values()):
        return None
    ratio, rest = divmod(convs[last][0], num_in)
    upscale = math.isqrt(ratio) if rest == 0 else 0
    if upscale < 1 or upscale * upscale != ratio:
        return None
    return {"num_in_ch": num_in, "num_out_ch": num_in, "num_feat": num_feat, "num_conv": last // 2 - 1,
            "act_type": "prelu" if acts else "leakyrelu", "scale": upscale}


class SRVGGArchitecture(Architecture):
    name = "srvgg"
    display_name = "SRVGGNetCompact (Real-ESRGAN)"

    def detect(self, sd: Mapping[str, torch.Tensor]) -> bool:
        layout = _layout(sd)
        return layout is not None and layout["scale"] in (2, 3, 4)

    def hyperparameters(self, sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        layout = _layout(sd)
        if layout is None:
            raise ValueError("keys are not SRVGGNetCompact's body.N layout")
        return layout

    def build(self, hp: Mapping[str, Any]) -> nn.Module:
        return SRVGGNetCompact(hp.get("num_in_ch", 3), hp.get("num_out_ch", 3), hp.get("num_feat", 64),
                               hp.get("num_conv", 16), hp.get("scale", 4), hp.get("act_type", "prelu"))

    def layer_label(self, name: str) -> str | None:
        m = _KEY.match(name)
        if not m:
            return None
        n = int(m.group(1))
        if n % 2:  # the activation after conv n - 1
            return f"PReLU {n // 2 + 1}"
        # a label cannot see how many convs follow, so the last one is numbered like the others
        return "first conv" if n == 0 else f"conv {n // 2}"


ARCHITECTURES = [SRVGGArchitecture()]
