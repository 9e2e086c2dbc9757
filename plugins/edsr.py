"""EDSR in both published layouts; width, depth and scale from the weights.

- BasicSR's ``EDSR``: ``conv_first``, ``body.N.conv1/conv2``, ``conv_after_body``,
  ``upsample.N`` (PixelShuffle stages), ``conv_last``. The input is shifted by the DIV2K RGB mean
  and multiplied by ``img_range`` (255) inside the net; BasicSR keeps that mean as a plain
  attribute, so it is not in the state dict (here a non-persistent buffer: it follows ``.to()``
  and adds no key).
- The original EDSR-PyTorch (``sanghyun-son/EDSR-PyTorch``): ``sub_mean``, ``head.0``,
  ``body.N.body.0/2`` residual blocks, ``body.M`` the conv after them, ``tail.0.N`` up-sampler,
  ``tail.1`` last conv, ``add_mean``. ``sub_mean``/``add_mean`` are fixed 1x1 convs (MeanShift)
  whose weights are stored; that net expects pixels in [0, rgb_range], so the module built here
  scales a [0, 1] input by ``rgb_range`` and the output back, like every other plugin's.

``res_scale`` (the residual branch's multiplier) leaves no trace in the weights. The released
models use 0.1 for the large EDSR (256 features, 32 blocks) and 1.0 for the baseline (64, 16):
the default follows the width; ``--arch edsr:res_scale=1`` overrides it.
"""
from __future__ import annotations

import re
from typing import Any
from collections.abc import Mapping

import torch
from torch import nn

from faig_gui.core.plugin_api import DIV2K_RGB_MEAN, Architecture, pixel_shuffle_upsampler, reset_mean_shift


_BASICSR = re.compile(r"^(conv_first|conv_after_body|conv_last|body\.\d+\.conv[12]|upsample\.\d+)\.(weight|bias)$")
_ORIGINAL = re.compile(r"^(sub_mean|add_mean|head\.0|body\.\d+\.body\.[02]|body\.\d+|tail\.0\.\d+|tail\.1)"
                       r"\.(weight|bias)$")
_BASICSR_BLOCK = re.compile(r"^body\.(\d+)\.conv([12])\.weight$")
_ORIGINAL_BLOCK = re.compile(r"^body\.(\d+)\.body\.([02])\.weight$")


def default_res_scale(num_feat: int) -> float:
    """The released models' value: 0.1 for the wide EDSR (256 features), 1.0 below."""
    return 0.1 if num_feat >= 256 else 1.0


class ResBlock(nn.Module):
    """x + res_scale * conv2(relu(conv1(x))), under either layout's key names."""

    def __init__(self, num_feat: int, res_scale: float, original: bool):
        super().__init__()
        self.res_scale = res_scale
        self.original = original
        if original:   # body.N.body.0 / body.N.body.2 (the ReLU sits at .1)
            self.body = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ReLU(),
                                      nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        else:          # body.N.conv1 / body.N.conv2
            self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.original:
            return x + self.body(x) * self.res_scale
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


class EDSR(nn.Module):
    """BasicSR's layout (``original=False``) or EDSR-PyTorch's (``original=True``)."""

    mean: torch.Tensor   # a buffer (register_buffer), declared for the type checker

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 16,
                 upscale: int = 4, res_scale: float = 1.0, img_range: float = 255.0, original: bool = False):
        super().__init__()
        self.original = original
        self.img_range = float(img_range)
        blocks = [ResBlock(num_feat, res_scale, original) for _ in range(num_block)]
        if original:
            self.sub_mean = nn.Conv2d(num_in_ch, num_in_ch, 1)
            self.add_mean = nn.Conv2d(num_out_ch, num_out_ch, 1)
            reset_mean_shift(self.sub_mean, -1.0, self.img_range)
            reset_mean_shift(self.add_mean, 1.0, self.img_range)
            self.head = nn.Sequential(nn.Conv2d(num_in_ch, num_feat, 3, 1, 1))
            self.body = nn.Sequential(*blocks, nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.tail = nn.Sequential(pixel_shuffle_upsampler(upscale, num_feat, "EDSR"),
                                      nn.Conv2d(num_feat, num_out_ch, 3, 1, 1))
        else:
            self.register_buffer("mean", torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1), persistent=False)
            self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
            self.body = nn.Sequential(*blocks)
            self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.upsample = pixel_shuffle_upsampler(upscale, num_feat, "EDSR")
            self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.original:
            feat = self.head(self.sub_mean(x * self.img_range))
            out = self.add_mean(self.tail(self.body(feat) + feat))
            return out / self.img_range
        feat = self.conv_first((x - self.mean) * self.img_range)
        out = self.conv_last(self.upsample(self.conv_after_body(self.body(feat)) + feat))
        return out / self.img_range + self.mean


def _upscale(convs: list[tuple[int, ...]], num_feat: int) -> int:
    """Scale from the up-sampler's conv shapes: one x3 stage (9 x num_feat) or x2 stages."""
    outs = [c[0] for c in convs]
    if outs == [9 * num_feat]:
        return 3
    if outs and all(o == 4 * num_feat for o in outs):
        return 2 ** len(outs)
    raise ValueError(f"up-sampler convs with {outs} outputs fit neither x3 nor x2 stages of {num_feat} features")


def _numbers(sd: Mapping[str, Any], pattern: re.Pattern) -> list[int]:
    return sorted({int(m.group(1)) for k in sd if (m := pattern.match(k))})


def _basicsr_hp(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    num_feat = int(sd["conv_first.weight"].shape[0])
    ups = sorted(int(k.split(".")[1]) for k in sd if k.startswith("upsample.") and k.endswith("weight"))
    return {"layout": "basicsr", "num_in_ch": int(sd["conv_first.weight"].shape[1]),
            "num_out_ch": int(sd["conv_last.weight"].shape[0]), "num_feat": num_feat,
            "num_block": len(_numbers(sd, _BASICSR_BLOCK)),
            "scale": _upscale([tuple(sd[f"upsample.{n}.weight"].shape) for n in ups], num_feat),
            "res_scale": default_res_scale(num_feat), "img_range": 255.0}


def _original_hp(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    num_feat = int(sd["head.0.weight"].shape[0])
    ups = sorted(int(k.split(".")[2]) for k in sd if k.startswith("tail.0.") and k.endswith("weight"))
    # MeanShift's bias is rgb_range x the mean (~0.45): about 115 for 255-range models, 0.45 for 1
    rgb_range = 255.0 if float(sd["add_mean.bias"].abs().max()) > 2.0 else 1.0
    return {"layout": "original", "num_in_ch": int(sd["head.0.weight"].shape[1]),
            "num_out_ch": int(sd["tail.1.weight"].shape[0]), "num_feat": num_feat,
            "num_block": len(_numbers(sd, _ORIGINAL_BLOCK)),
            "scale": _upscale([tuple(sd[f"tail.0.{n}.weight"].shape) for n in ups], num_feat),
            "res_scale": default_res_scale(num_feat), "img_range": rgb_range}


def _layout(sd: Mapping[str, Any]) -> str | None:
    keys = list(sd)
    if keys and all(_BASICSR.match(k) for k in keys) and "conv_after_body.weight" in sd \
            and "upsample.0.weight" in sd and "conv_first.weight" in sd and "conv_last.weight" in sd:
        return "basicsr"
    if keys and all(_ORIGINAL.match(k) for k in keys) and all(
            f"{k}.weight" in sd for k in ("sub_mean", "add_mean", "head.0", "tail.0.0", "tail.1")):
        return "original"
    return None


class EDSRArchitecture(Architecture):
    name = "edsr"
    display_name = "EDSR (BasicSR or EDSR-PyTorch)"

    def detect(self, sd: Mapping[str, torch.Tensor]) -> bool:
        layout = _layout(sd)
        if layout is None:
            return False
        try:
            hp = self.hyperparameters(sd)
        except (ValueError, KeyError):
            return False
        return hp["num_block"] >= 1 and hp["scale"] in (2, 3, 4, 8)

    def hyperparameters(self, sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        layout = _layout(sd)
        if layout is None:
            raise ValueError("keys fit neither BasicSR's nor EDSR-PyTorch's EDSR layout")
        return _basicsr_hp(sd) if layout == "basicsr" else _original_hp(sd)

    def build(self, hp: Mapping[str, Any]) -> nn.Module:
        num_feat = hp.get("num_feat", 64)
        layout = hp.get("layout", "basicsr")
        if layout not in ("basicsr", "original"):
            raise ValueError(f"layout must be 'basicsr' or 'original', not {layout!r}")
        return EDSR(hp.get("num_in_ch", 3), hp.get("num_out_ch", 3), num_feat, hp.get("num_block", 16),
                    hp.get("scale", 4), float(hp.get("res_scale", default_res_scale(num_feat))),
                    float(hp.get("img_range", 255.0)), original=layout == "original")

    def layer_label(self, name: str) -> str | None:
        if m := _BASICSR_BLOCK.match(name):
            return f"block {int(m.group(1))} conv{m.group(2)}"  # counted as the names count
        if m := _ORIGINAL_BLOCK.match(name):
            return f"block {int(m.group(1))} conv{1 if m.group(2) == '0' else 2}"
        fixed = {"head.0.weight": "conv_first", "tail.1.weight": "conv_last",
                 "sub_mean.weight": "sub_mean (fixed)", "add_mean.weight": "add_mean (fixed)"}
        if name in fixed:
            return fixed[name]
        if m := re.match(r"^(?:upsample|tail\.0)\.(\d+)\.weight$", name):
            return f"upsample conv {int(m.group(1)) // 2 + 1}"
        if re.match(r"^body\.\d+\.weight$", name):
            return "conv_after_body"
        return name.removesuffix(".weight")


ARCHITECTURES = [EDSRArchitecture()]
