"""BasicSR's MSRResNet (the FAIG paper's model): x2, x3, x4; width, depth and scale from weights.

Key names and the forward pass follow BasicSR's ``MSRResNet`` so that its checkpoints load
unchanged and give the same outputs.
"""
from __future__ import annotations

import re
from typing import Any
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from faig_gui.core.plugin_api import Architecture, shape


class ResidualBlockNoBN(nn.Module):
    """x + conv2(relu(conv1(x)))"""

    def __init__(self, num_feat: int):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


class MSRResNet(nn.Module):
    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 num_block: int = 16, upscale: int = 4):
        super().__init__()
        if upscale not in (2, 3, 4):
            raise ValueError(f"MSRResNet supports x2, x3, x4, not x{upscale}")
        self.upscale = upscale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[ResidualBlockNoBN(num_feat) for _ in range(num_block)])
        if upscale == 4:
            self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(2)
        else:
            self.upconv1 = nn.Conv2d(num_feat, num_feat * upscale * upscale, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(upscale)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1)
        self._init_weights()

    def _init_weights(self) -> None:
        # BasicSR's default_init_weights: kaiming normal scaled by 0.1, zero bias
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                m.weight.data.mul_(0.1)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.lrelu(self.conv_first(x))
        out = self.body(feat)
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.upscale == 4:
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        base = F.interpolate(x, scale_factor=self.upscale, mode="bilinear", align_corners=False)
        return out + base


_BODY = re.compile(r"^body\.(\d+)\.conv([12])\.weight$")


class MSRResNetArchitecture(Architecture):
    name = "msrresnet"
    display_name = "MSRResNet (BasicSR)"

    def detect(self, sd: Mapping[str, torch.Tensor]) -> bool:
        first, last, up1 = shape(sd, "conv_first.weight"), shape(sd, "conv_last.weight"), shape(sd, "upconv1.weight")
        if first is None or last is None or up1 is None or shape(sd, "conv_hr.weight") is None:
            return False
        return len(first) == 4 and len(up1) == 4 and up1[0] in (first[0] * 4, first[0] * 9)

    def hyperparameters(self, sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        num_feat = sd["conv_first.weight"].shape[0]
        blocks = {int(m.group(1)) for k in sd if (m := _BODY.match(k))}
        if "upconv2.weight" in sd:
            scale = 4
        else:
            ratio = sd["upconv1.weight"].shape[0] // num_feat
            scale = {4: 2, 9: 3}[ratio]
        return {"num_in_ch": int(sd["conv_first.weight"].shape[1]),
                "num_out_ch": int(sd["conv_last.weight"].shape[0]),
                "num_feat": int(num_feat), "num_block": len(blocks), "scale": scale}

    def build(self, hp: Mapping[str, Any]) -> nn.Module:
        return MSRResNet(hp.get("num_in_ch", 3), hp.get("num_out_ch", 3), hp.get("num_feat", 64),
                         hp.get("num_block", 16), hp.get("scale", 4))

    def layer_label(self, name: str) -> str | None:
        if m := _BODY.match(name):
            # counted from 0 like the parameter name beside it (body.0.conv1 is block 0)
            return f"block {int(m.group(1))} conv{m.group(2)}"
        return name.removesuffix(".weight")


ARCHITECTURES = [MSRResNetArchitecture()]
