"""RCAN (residual channel attention network) in both published layouts; widths, groups, blocks,
squeeze factor and scale from the weights.

- BasicSR's ``RCAN``: ``conv_first``; ``body.G`` residual groups, each
  ``residual_group.B.rcab.0`` / ``.rcab.2`` (3x3 convs around a ReLU) and
  ``.rcab.3.attention.1`` / ``.attention.3`` (the channel attention's 1x1 squeeze and excite
  convs, between an average pool, a ReLU and a sigmoid), then the group's ``conv``;
  ``conv_after_body``; ``upsample.N``; ``conv_last``. The DIV2K mean and ``img_range`` (255)
  are applied inside the net and the mean is not stored (a non-persistent buffer here).
- The original code (``yulunzhang/RCAN``, also EDSR-PyTorch's ``rcan.py``), whose layout the
  released checkpoints have: ``sub_mean``; ``head.0``; ``body.G.body.B.body.0`` / ``.body.2``
  (RCAB convs) and ``.body.3.conv_du.0`` / ``.conv_du.2`` (CALayer's squeeze and excite);
  ``body.G.body.<blocks>`` the group's last conv; ``body.<groups>`` the conv after the body;
  ``tail.0.N`` up-sampler; ``tail.1``; ``add_mean``. ``sub_mean``/``add_mean`` are 1x1 convs
  (MeanShift) whose weights that code stores, and trains: its MeanShift sets ``requires_grad``
  on the module, not on the parameters. They are loaded as they are when present; a state dict
  without them gets the original's defaults (DIV2K mean x ``rgb_range``) as non-persistent
  buffers (``mean_shift``: ``stored`` or ``div2k``). That net expects pixels in [0, rgb_range]:
  the module scales a [0, 1] input by ``img_range`` and the output back.

``res_scale`` leaves no trace in the weights: 1.0 (BasicSR's default; the original's RCAB
ignores its ``res_scale``) unless ``--arch rcan:res_scale=...`` says otherwise.
"""
from __future__ import annotations

import re
from typing import Any
from collections.abc import Mapping

import torch
from torch import nn

from faig_gui.core.plugin_api import DIV2K_RGB_MEAN, Architecture, pixel_shuffle_upsampler, reset_mean_shift


_BASICSR = re.compile(r"^(conv_first|conv_after_body|conv_last|upsample\.\d+|body\.\d+\.conv"
                      r"|body\.\d+\.residual_group\.\d+\.rcab\.(?:0|2|3\.attention\.[13]))\.(weight|bias)$")
_ORIGINAL = re.compile(r"^(sub_mean|add_mean|head\.0|tail\.0\.\d+|tail\.1|body\.\d+|body\.\d+\.body\.\d+"
                       r"|body\.\d+\.body\.\d+\.body\.(?:0|2|3\.conv_du\.[02]))\.(weight|bias)$")
# an RCAB conv weight: (group, block, part)
_BLOCK = {"basicsr": re.compile(r"^body\.(\d+)\.residual_group\.(\d+)\.rcab\.(0|2|3\.attention\.[13])\.weight$"),
          "original": re.compile(r"^body\.(\d+)\.body\.(\d+)\.body\.(0|2|3\.conv_du\.[02])\.weight$")}
_PARTS = {"0": "conv1", "2": "conv2", "3.attention.1": "attention squeeze", "3.attention.3": "attention excite",
          "3.conv_du.0": "attention squeeze", "3.conv_du.2": "attention excite"}
_NAMES = {"basicsr": ("conv_first.weight", "conv_last.weight", "upsample"),   # first, last conv, up-sampler
          "original": ("head.0.weight", "tail.1.weight", "tail.0")}


class ChannelAttention(nn.Module):
    """x * sigmoid(excite(relu(squeeze(mean over space of x)))). BasicSR keeps the pool inside
    ``attention`` (convs at .1, .3); the original's CALayer has ``avg_pool`` and ``conv_du``
    (convs at .0, .2)."""

    def __init__(self, num_feat: int, squeeze_factor: int, original: bool):
        super().__init__()
        self.original = original
        reduced = num_feat // squeeze_factor
        convs = [nn.Conv2d(num_feat, reduced, 1), nn.ReLU(), nn.Conv2d(reduced, num_feat, 1), nn.Sigmoid()]
        if original:
            self.avg_pool = nn.AdaptiveAvgPool2d(1)
            self.conv_du = nn.Sequential(*convs)
        else:
            self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), *convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (self.conv_du(self.avg_pool(x)) if self.original else self.attention(x))


class RCAB(nn.Module):
    """x + res_scale * attention(conv2(relu(conv1(x)))), the branch named ``rcab`` (BasicSR) or ``body``."""

    def __init__(self, num_feat: int, squeeze_factor: int, res_scale: float, original: bool):
        super().__init__()
        self.res_scale = res_scale
        self.original = original
        branch = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ReLU(),
                               nn.Conv2d(num_feat, num_feat, 3, 1, 1),
                               ChannelAttention(num_feat, squeeze_factor, original))
        if original:
            self.body = branch
        else:
            self.rcab = branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + (self.body(x) if self.original else self.rcab(x)) * self.res_scale


class ResidualGroup(nn.Module):
    """x + conv(blocks(x)): BasicSR's ``residual_group`` + ``conv``, or the original's one ``body``
    Sequential with the conv after the blocks."""

    def __init__(self, num_feat: int, num_block: int, squeeze_factor: int, res_scale: float, original: bool):
        super().__init__()
        self.original = original
        blocks = [RCAB(num_feat, squeeze_factor, res_scale, original) for _ in range(num_block)]
        conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        if original:
            self.body = nn.Sequential(*blocks, conv)
        else:
            self.residual_group = nn.Sequential(*blocks)
            self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + (self.body(x) if self.original else self.conv(self.residual_group(x)))


class RCAN(nn.Module):
    """BasicSR's layout, or the original's (``original=True``; ``stored_mean``: MeanShift convs
    in the state dict, else the DIV2K mean as a buffer)."""

    mean: torch.Tensor   # a buffer (register_buffer), declared for the type checker

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_group: int = 10,
                 num_block: int = 16, squeeze_factor: int = 16, upscale: int = 4, res_scale: float = 1.0,
                 img_range: float = 255.0, original: bool = False, stored_mean: bool = True):
        super().__init__()
        self.img_range = float(img_range)
        self.original = original
        self.stored_mean = original and stored_mean
        groups = [ResidualGroup(num_feat, num_block, squeeze_factor, res_scale, original) for _ in range(num_group)]
        if self.stored_mean:
            self.sub_mean = nn.Conv2d(num_in_ch, num_in_ch, 1)
            self.add_mean = nn.Conv2d(num_out_ch, num_out_ch, 1)
            reset_mean_shift(self.sub_mean, -1.0, self.img_range)
            reset_mean_shift(self.add_mean, 1.0, self.img_range)
        else:
            self.register_buffer("mean", torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        if original:
            self.head = nn.Sequential(nn.Conv2d(num_in_ch, num_feat, 3, 1, 1))
            self.body = nn.Sequential(*groups, nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.tail = nn.Sequential(pixel_shuffle_upsampler(upscale, num_feat, "RCAN"),
                                      nn.Conv2d(num_feat, num_out_ch, 3, 1, 1))
        else:
            self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
            self.body = nn.Sequential(*groups)
            self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.upsample = pixel_shuffle_upsampler(upscale, num_feat, "RCAN")
            self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stored_mean:
            feat = self.sub_mean(x * self.img_range)
        else:
            feat = (x - self.mean) * self.img_range
        if self.original:
            feat = self.head(feat)
            out = self.tail(self.body(feat) + feat)
        else:
            feat = self.conv_first(feat)
            out = self.conv_last(self.upsample(self.conv_after_body(self.body(feat)) + feat))
        if self.stored_mean:
            return self.add_mean(out) / self.img_range
        return out / self.img_range + self.mean


def _layout(sd: Mapping[str, Any]) -> str:
    """Which layout the keys are in; ValueError naming a key that fits neither."""
    if "conv_first.weight" in sd:
        layout, pattern = "basicsr", _BASICSR
    elif "head.0.weight" in sd:
        layout, pattern = "original", _ORIGINAL
    else:
        raise ValueError("neither 'conv_first.weight' (BasicSR's RCAN) nor 'head.0.weight' (the original "
                         "RCAN) is in the state dict")
    stray = [k for k in sd if not pattern.match(k)]
    if stray:
        more = f" (and {len(stray) - 1} more)" if len(stray) > 1 else ""
        raise ValueError(f"key '{stray[0]}'{more} fits neither BasicSR's nor the original RCAN layout")
    return layout


def _upscale(outs: list[int], num_feat: int) -> int:
    """Scale from the up-sampler convs' output widths: one x3 stage (9 x num_feat) or x2 stages."""
    if outs == [9 * num_feat]:
        return 3
    if outs and all(o == 4 * num_feat for o in outs):
        return 2 ** len(outs)
    raise ValueError(f"up-sampler convs with {outs} outputs fit neither x3 nor x2 stages of {num_feat} features")


def _hyperparameters(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    layout = _layout(sd)
    first, last, up = _NAMES[layout]
    num_feat = int(sd[first].shape[0])
    blocks: dict[int, set[int]] = {}
    squeezed = set()
    for key in sd:
        if m := _BLOCK[layout].match(key):
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
            if m.group(3) in ("3.attention.1", "3.conv_du.0"):
                squeezed.add(int(sd[key].shape[0]))
    groups = sorted(blocks)
    if not groups or groups != list(range(len(groups))):
        raise ValueError(f"residual groups are numbered {groups}, not 0..G-1")
    counts = {len(b) for b in blocks.values()}
    if len(counts) != 1 or len(squeezed) != 1 or any(b != set(range(len(b))) for b in blocks.values()):
        raise ValueError("residual groups differ in block count or squeeze width, or skip a block number")
    (num_block,), (reduced,) = counts, squeezed
    if reduced < 1 or num_feat % reduced:
        raise ValueError(f"channel attention squeezes {num_feat} features to {reduced}: not a whole factor")
    ups = sorted(int(m.group(1)) for k in sd if (m := re.match(rf"^{re.escape(up)}\.(\d+)\.weight$", k)))
    hp: dict[str, Any] = {"layout": layout, "num_in_ch": int(sd[first].shape[1]), "num_out_ch": int(sd[last].shape[0]),
          "num_feat": num_feat, "num_group": len(groups), "num_block": num_block,
          "squeeze_factor": num_feat // reduced,
          "scale": _upscale([int(sd[f"{up}.{n}.weight"].shape[0]) for n in ups], num_feat),
          "res_scale": 1.0, "img_range": 255.0}
    if layout == "original":
        hp["mean_shift"] = "stored" if "sub_mean.weight" in sd or "add_mean.weight" in sd else "div2k"
        # MeanShift's bias is rgb_range x the mean (~0.45): about 115 for 255-range models, 0.45 for 1
        if "add_mean.bias" in sd and float(sd["add_mean.bias"].abs().max()) <= 2.0:
            hp["img_range"] = 1.0
    return hp


def _expected_shapes(hp: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """The module's keys and shapes for ``hp``, without building it: detection runs on every
    checkpoint opened, and building a 10 x 20-block RCAN takes ~0.3 s (on the meta device too)."""
    f, reduced = hp["num_feat"], hp["num_feat"] // hp["squeeze_factor"]
    original = hp["layout"] == "original"
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(name: str, cout: int, cin: int, k: int = 3) -> None:
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (cout, cin, k, k), (cout,)

    first, last, up = _NAMES[hp["layout"]]
    conv(first.removesuffix(".weight"), f, hp["num_in_ch"])
    conv(last.removesuffix(".weight"), hp["num_out_ch"], f)
    for i, r in enumerate([3] if hp["scale"] == 3 else [2] * (hp["scale"].bit_length() - 1)):
        conv(f"{up}.{2 * i}", f * r * r, f)
    if original and hp.get("mean_shift") == "stored":
        conv("sub_mean", hp["num_in_ch"], hp["num_in_ch"], 1)
        conv("add_mean", hp["num_out_ch"], hp["num_out_ch"], 1)
    squeeze, excite = ("3.conv_du.0", "3.conv_du.2") if original else ("3.attention.1", "3.attention.3")
    for g in range(hp["num_group"]):
        for b in range(hp["num_block"]):
            block = f"body.{g}.body.{b}.body" if original else f"body.{g}.residual_group.{b}.rcab"
            conv(f"{block}.0", f, f)
            conv(f"{block}.2", f, f)
            conv(f"{block}.{squeeze}", reduced, f, 1)
            conv(f"{block}.{excite}", f, reduced, 1)
        conv(f"body.{g}.body.{hp['num_block']}" if original else f"body.{g}.conv", f, f)
    conv(f"body.{hp['num_group']}" if original else "conv_after_body", f, f)
    return shapes


class RCANArchitecture(Architecture):
    name = "rcan"
    display_name = "RCAN (BasicSR or the original)"

    def detect(self, sd: Mapping[str, torch.Tensor]) -> bool:
        if not (("conv_after_body.weight" in sd and "body.0.residual_group.0.rcab.0.weight" in sd)
                or ("head.0.weight" in sd and "body.0.body.0.body.3.conv_du.0.weight" in sd)):
            return False
        try:
            hp = _hyperparameters(sd)
            if hp["scale"] not in (2, 3, 4, 8):
                return False
            expected = _expected_shapes(hp)
        except (ValueError, KeyError):
            return False
        # every key and shape as the module has them: a missing group conv or a stray block fails
        return set(expected) == set(sd) and all(tuple(sd[k].shape) == s for k, s in expected.items())

    def hyperparameters(self, sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        return _hyperparameters(sd)

    def build(self, hp: Mapping[str, Any]) -> nn.Module:
        layout, mean_shift = hp.get("layout", "basicsr"), hp.get("mean_shift", "stored")
        if layout not in ("basicsr", "original"):
            raise ValueError(f"layout must be 'basicsr' or 'original', not {layout!r}")
        if mean_shift not in ("stored", "div2k"):
            raise ValueError(f"mean_shift must be 'stored' or 'div2k', not {mean_shift!r}")
        return RCAN(hp.get("num_in_ch", 3), hp.get("num_out_ch", 3), hp.get("num_feat", 64), hp.get("num_group", 10),
                    hp.get("num_block", 16), hp.get("squeeze_factor", 16), hp.get("scale", 4),
                    float(hp.get("res_scale", 1.0)), float(hp.get("img_range", 255.0)),
                    original=layout == "original", stored_mean=mean_shift == "stored")

    def layer_label(self, name: str) -> str | None:
        for pattern in _BLOCK.values():
            if m := pattern.match(name):   # counted as the names count
                return f"group {int(m.group(1))} block {int(m.group(2))} {_PARTS[m.group(3)]}"
        if m := re.match(r"^body\.(\d+)\.(?:conv|body\.\d+)\.weight$", name):
            return f"group {int(m.group(1))} conv"
        if m := re.match(r"^(?:upsample|tail\.0)\.(\d+)\.weight$", name):
            return f"upsample conv {int(m.group(1)) // 2 + 1}"
        fixed = {"head.0.weight": "conv_first", "tail.1.weight": "conv_last", "sub_mean.weight": "sub_mean",
                 "add_mean.weight": "add_mean"}
        if name in fixed:
            return fixed[name]
        if re.match(r"^body\.\d+\.weight$", name):
            return "conv_after_body"
        return name.removesuffix(".weight")


ARCHITECTURES = [RCANArchitecture()]
