"""BasicSR's RCAN (residual channel attention network); widths, groups, blocks, squeeze factor
and scale from the weights.

Keys as BasicSR saves them: ``conv_first``; ``body.G`` residual groups, each
``residual_group.B.rcab.0`` / ``.rcab.2`` (3x3 convs around a ReLU) and ``.rcab.3.attention.1``
/ ``.attention.3`` (the channel attention's 1x1 squeeze and excite convs, between an average
pool, a ReLU and a sigmoid), then the group's ``conv``; ``conv_after_body``; ``upsample.N``;
``conv_last``. As in BasicSR's EDSR, the RGB mean and ``img_range`` (255) are applied inside the
net and the mean is not stored (a non-persistent buffer here). ``res_scale`` leaves no trace in
the weights: 1.0 (BasicSR's default) unless ``--arch rcan:res_scale=...`` says otherwise.
"""
from __future__ import annotations

import re
from typing import Any
from collections.abc import Mapping

import torch
from torch import nn

from faig_gui.core.plugin_api import Architecture, pixel_shuffle_upsampler

RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K

_KEY = re.compile(r"^(conv_first|conv_after_body|conv_last|upsample\.\d+|body\.\d+\.conv"
                  r"|body\.\d+\.residual_group\.\d+\.rcab\.(?:0|2|3\.attention\.[13]))\.(weight|bias)$")
_RCAB = re.compile(r"^body\.(\d+)\.residual_group\.(\d+)\.rcab\.(0|2|3\.attention\.1|3\.attention\.3)\.weight$")
_GROUP_CONV = re.compile(r"^body\.(\d+)\.conv\.weight$")
_UPSAMPLE = re.compile(r"^upsample\.(\d+)\.weight$")


class ChannelAttention(nn.Module):
    """x * sigmoid(excite(relu(squeeze(mean over space of x))))"""

    def __init__(self, num_feat: int, squeeze_factor: int):
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(num_feat, num_feat // squeeze_factor, 1),
            nn.ReLU(), nn.Conv2d(num_feat // squeeze_factor, num_feat, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class RCAB(nn.Module):
    def __init__(self, num_feat: int, squeeze_factor: int, res_scale: float):
        super().__init__()
        self.res_scale = res_scale
        self.rcab = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ReLU(),
                                  nn.Conv2d(num_feat, num_feat, 3, 1, 1),
                                  ChannelAttention(num_feat, squeeze_factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.rcab(x) * self.res_scale


class ResidualGroup(nn.Module):
    def __init__(self, num_feat: int, num_block: int, squeeze_factor: int, res_scale: float):
        super().__init__()
        self.residual_group = nn.Sequential(*[RCAB(num_feat, squeeze_factor, res_scale) for _ in range(num_block)])
        self.conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(self.residual_group(x))


class RCAN(nn.Module):
    mean: torch.Tensor   # a buffer (register_buffer), declared for the type checker

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_group: int = 10,
                 num_block: int = 16, squeeze_factor: int = 16, upscale: int = 4, res_scale: float = 1.0,
                 img_range: float = 255.0):
        super().__init__()
        self.img_range = float(img_range)
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[ResidualGroup(num_feat, num_block, squeeze_factor, res_scale)
                                    for _ in range(num_group)])
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = pixel_shuffle_upsampler(upscale, num_feat, "RCAN")
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first((x - self.mean) * self.img_range)
        out = self.conv_last(self.upsample(self.conv_after_body(self.body(feat)) + feat))
        return out / self.img_range + self.mean


def _hyperparameters(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    keys = list(sd)
    if not keys or not all(_KEY.match(k) for k in keys):
        raise ValueError("keys are not BasicSR's RCAN layout")
    num_feat = int(sd["conv_first.weight"].shape[0])
    blocks: dict[int, set[int]] = {}
    squeezed = set()
    for key in keys:
        if m := _RCAB.match(key):
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
            if m.group(3) == "3.attention.1":
                squeezed.add(int(sd[key].shape[0]))
    groups = sorted(blocks)
    if not groups or groups != list(range(len(groups))) or groups != sorted(
            int(m.group(1)) for k in keys if (m := _GROUP_CONV.match(k))):
        raise ValueError("residual groups are not numbered 0..G-1, each with its conv")
    counts = {len(b) for b in blocks.values()}
    if len(counts) != 1 or len(squeezed) != 1:
        raise ValueError("residual groups differ in block count or squeeze width")
    (num_block,), (reduced,) = counts, squeezed
    if reduced < 1 or num_feat % reduced:
        raise ValueError(f"channel attention squeezes {num_feat} features to {reduced}: not a whole factor")
    ups = sorted(int(m.group(1)) for k in keys if (m := _UPSAMPLE.match(k)))
    outs = [int(sd[f"upsample.{n}.weight"].shape[0]) for n in ups]
    if outs == [9 * num_feat]:
        scale = 3
    elif outs and all(o == 4 * num_feat for o in outs):
        scale = 2 ** len(outs)
    else:
        raise ValueError(f"up-sampler convs with {outs} outputs fit neither x3 nor x2 stages")
    return {"num_in_ch": int(sd["conv_first.weight"].shape[1]), "num_out_ch": int(sd["conv_last.weight"].shape[0]),
            "num_feat": num_feat, "num_group": len(groups), "num_block": num_block,
            "squeeze_factor": num_feat // reduced, "scale": scale, "res_scale": 1.0, "img_range": 255.0}


class RCANArchitecture(Architecture):
    name = "rcan"
    display_name = "RCAN (BasicSR)"

    def detect(self, sd: Mapping[str, torch.Tensor]) -> bool:
        if "conv_after_body.weight" not in sd or "body.0.residual_group.0.rcab.0.weight" not in sd:
            return False
        try:
            return _hyperparameters(sd)["scale"] in (2, 3, 4, 8)
        except (ValueError, KeyError):
            return False

    def hyperparameters(self, sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        return _hyperparameters(sd)

    def build(self, hp: Mapping[str, Any]) -> nn.Module:
        return RCAN(hp.get("num_in_ch", 3), hp.get("num_out_ch", 3), hp.get("num_feat", 64), hp.get("num_group", 10),
                    hp.get("num_block", 16), hp.get("squeeze_factor", 16), hp.get("scale", 4),
                    float(hp.get("res_scale", 1.0)), float(hp.get("img_range", 255.0)))

    def layer_label(self, name: str) -> str | None:
        if m := _RCAB.match(name):
            part = {"0": "conv1", "2": "conv2", "3.attention.1": "attention squeeze",
                    "3.attention.3": "attention excite"}[m.group(3)]
            return f"group {int(m.group(1))} block {int(m.group(2))} {part}"  # counted as the names count
        if m := _GROUP_CONV.match(name):
            return f"group {int(m.group(1))} conv"
        if m := _UPSAMPLE.match(name):
            return f"upsample conv {int(m.group(1)) // 2 + 1}"
        return name.removesuffix(".weight")


ARCHITECTURES = [RCANArchitecture()]
