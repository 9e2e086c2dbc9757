"""RRDBNet (ESRGAN, Real-ESRGAN, BSRGAN and their fine-tunes) in the three key layouts found in
released checkpoints; width, depth, growth, channels and scale from the weights alone.

The parameter names are the filter IDs, so each layout builds a module whose ``state_dict()``
keys are exactly the checkpoint's own, in the checkpoint's order:

- ``basicsr``: BasicSR / Real-ESRGAN (``conv_first``, ``body.N.rdbK.convJ``, ``conv_body``,
  ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``). x1 and x2 put a pixel-unshuffle in
  front (by 4 and by 2), so ``conv_first`` reads 16 or 4 times the image's channels; an image
  whose size it does not divide is padded (last row and column repeated) and the output cropped.
- ``esrgan``: the ESRGAN repository's ``RRDBNet_arch.py`` (``conv_first``,
  ``RRDB_trunk.N.RDBK.convJ``, ``trunk_conv``, ``upconv1``, ``upconv2``, ``HRconv``,
  ``conv_last``); BSRGAN uses it too.
- ``old``: the first ESRGAN releases (``model.0``, ``model.1.sub.N.RDBK.convJ.0``, the trunk conv
  as ``model.1.sub.<blocks>``, then per x2 a nearest up-sampling, a conv and a LeakyReLU, then
  the HR conv, a LeakyReLU and the last conv as further ``model.N`` indices).

All three compute the same function: dense blocks of five 3x3 convs with growth channels and
LeakyReLU(0.2), a 0.2-scaled residual around each dense block and around each group of three,
a long skip around the trunk, nearest x2 up-sampling before each up conv.
"""
from __future__ import annotations

import re
from typing import Any
from collections.abc import Mapping

import torch
from torch import fx, nn
from torch.nn import functional as F

from faig_gui.core.errors import FaigError
from faig_gui.core.plugin_api import Architecture, shape

LAYOUTS = ("basicsr", "esrgan", "old")
_SLOPE = 0.2       # LeakyReLU negative slope in every RRDBNet
_RES_SCALE = 0.2   # residual scaling inside dense blocks and RRDBs

# per layout: attribute names of the parts around the trunk
_NAMES = {
    "basicsr": dict(trunk="body", rdb="rdb", trunk_conv="conv_body", up="conv_up", hr="conv_hr"),
    "esrgan": dict(trunk="RRDB_trunk", rdb="RDB", trunk_conv="trunk_conv", up="upconv", hr="HRconv"),
}


class _UnfilledConv2d(nn.Conv2d):
    """nn.Conv2d minus its random initialisation, for weights a checkpoint overwrites at once:
    drawing 16.7 M random numbers is ~80 % of building a full-size RRDBNet (0.13 of 0.17 s)."""

    def reset_parameters(self) -> None:
        pass


def _conv(cin: int, cout: int, init: bool = True) -> nn.Conv2d:
    if init:
        return nn.Conv2d(cin, cout, 3, 1, 1)
    conv = _UnfilledConv2d(cin, cout, 3, 1, 1)
    # a plain conv from here on: tracing, labels and copies see no difference (a deliberate class
    # swap, which mypy refuses)
    conv.__class__ = nn.Conv2d  # type: ignore[assignment]
    return conv


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each reading the block input and every earlier output (dense growth).

    ``wrapped``: the old layout holds each conv in a Sequential (conv, LeakyReLU) for conv1-4 and
    (conv,) for conv5, which puts a ``.0`` into the parameter names."""

    # set with setattr in __init__; declared for the type checker
    conv1: nn.Module
    conv2: nn.Module
    conv3: nn.Module
    conv4: nn.Module
    conv5: nn.Module

    def __init__(self, num_feat: int, num_grow_ch: int, wrapped: bool = False, init: bool = True):
        super().__init__()
        self.wrapped = wrapped
        for j in range(1, 6):
            conv: nn.Module = _conv(num_feat + (j - 1) * num_grow_ch, num_feat if j == 5 else num_grow_ch, init)
            if wrapped:
                conv = nn.Sequential(conv, nn.LeakyReLU(_SLOPE)) if j < 5 else nn.Sequential(conv)
            setattr(self, f"conv{j}", conv)
        self.lrelu = nn.LeakyReLU(_SLOPE)

    def _step(self, conv: nn.Module, x: torch.Tensor, act: bool) -> torch.Tensor:
        # wrapped convs carry their own activation
        return conv(x) if self.wrapped or not act else self.lrelu(conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self._step(self.conv1, x, True)
        x2 = self._step(self.conv2, torch.cat((x, x1), 1), True)
        x3 = self._step(self.conv3, torch.cat((x, x1, x2), 1), True)
        x4 = self._step(self.conv4, torch.cat((x, x1, x2, x3), 1), True)
        x5 = self._step(self.conv5, torch.cat((x, x1, x2, x3, x4), 1), False)
        return x5 * _RES_SCALE + x


class RRDB(nn.Module):
    """Three dense blocks (``<prefix>1..3``) in a chain, with a 0.2-scaled residual."""

    def __init__(self, num_feat: int, num_grow_ch: int, prefix: str, wrapped: bool = False, init: bool = True):
        super().__init__()
        self.prefix = prefix
        for k in range(1, 4):
            setattr(self, f"{prefix}{k}", ResidualDenseBlock(num_feat, num_grow_ch, wrapped, init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for k in range(1, 4):
            out = getattr(self, f"{self.prefix}{k}")(out)
        return out * _RES_SCALE + x


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` with its bottom and right edges repeated up to a multiple of ``multiple``: the
    pixel-unshuffle needs one (BasicSR's refuses other sizes; Real-ESRGAN's inference pads by
    reflection first; repeating the edge works for any size, even one pixel)."""
    ph, pw = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def crop_like(out: torch.Tensor, x: torch.Tensor, scale: int) -> torch.Tensor:
    """``out`` cut to ``scale`` times the size of ``x`` (undoes :func:`pad_to_multiple`)."""
    h, w = x.shape[-2] * scale, x.shape[-1] * scale
    return out if tuple(out.shape[-2:]) == (h, w) else out[..., :h, :w]


# torch.fx keeps each as one node (the graph shows a pad and a crop, not their size arithmetic)
fx.wrap("pad_to_multiple")
fx.wrap("crop_like")


class RRDBNet(nn.Module):
    """The ``basicsr`` and ``esrgan`` layouts: named parts, ``num_up`` nearest x2 up-samplings
    each followed by an up conv (two in ESRGAN and Real-ESRGAN, one in BSRGAN's x2), after a
    pixel-unshuffle by ``unshuffle`` (Real-ESRGAN's x2 and x1: 2 and 4)."""

    def __init__(self, layout: str, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32, num_up: int = 2, unshuffle: int = 1,
                 init: bool = True):
        super().__init__()
        names = _NAMES[layout]
        self.names = names
        self.num_up = num_up
        self.unshuffle = unshuffle
        self.scale = 2 ** num_up // unshuffle
        self.conv_first = _conv(num_in_ch * unshuffle * unshuffle, num_feat, init)
        setattr(self, names["trunk"], nn.Sequential(*[RRDB(num_feat, num_grow_ch, names["rdb"], init=init)
                                                      for _ in range(num_block)]))
        setattr(self, names["trunk_conv"], _conv(num_feat, num_feat, init))
        for n in range(1, num_up + 1):
            setattr(self, f"{names['up']}{n}", _conv(num_feat, num_feat, init))
        setattr(self, names["hr"], _conv(num_feat, num_feat, init))
        self.conv_last = _conv(num_feat, num_out_ch, init)
        self.lrelu = nn.LeakyReLU(_SLOPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.names
        lr = x
        if self.unshuffle > 1:  # BasicSR's pixel_unshuffle has torch's channel order
            x = F.pixel_unshuffle(pad_to_multiple(x, self.unshuffle), self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + getattr(self, n["trunk_conv"])(getattr(self, n["trunk"])(feat))
        for k in range(1, self.num_up + 1):
            up = getattr(self, f"{n['up']}{k}")
            feat = self.lrelu(up(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out = self.conv_last(self.lrelu(getattr(self, n["hr"])(feat)))
        return crop_like(out, lr, self.scale) if self.unshuffle > 1 else out


class ShortcutBlock(nn.Module):
    """x + sub(x): the old layout's long skip around the trunk (``model.1.sub``)."""

    def __init__(self, sub: nn.Module):
        super().__init__()
        self.sub = sub

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sub(x)


class OldRRDBNet(nn.Module):
    """The ``old`` layout: one ``model`` Sequential; ``num_up`` nearest x2 up-samplings (scale
    2**num_up, no pixel-unshuffle)."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 23,
                 num_grow_ch: int = 32, num_up: int = 2, init: bool = True):
        super().__init__()
        trunk = [RRDB(num_feat, num_grow_ch, "RDB", wrapped=True, init=init) for _ in range(num_block)]
        layers: list[nn.Module] = [_conv(num_in_ch, num_feat, init),
                                   ShortcutBlock(nn.Sequential(*trunk, _conv(num_feat, num_feat, init)))]
        for _ in range(num_up):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), _conv(num_feat, num_feat, init),
                       nn.LeakyReLU(_SLOPE)]
        layers += [_conv(num_feat, num_feat, init), nn.LeakyReLU(_SLOPE), _conv(num_feat, num_out_ch, init)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# -- detection and hyper-parameters ------------------------------------------------------------
_BLOCK_KEY = {
    "basicsr": re.compile(r"^body\.(\d+)\.rdb([123])\.conv([1-5])\.weight$"),
    "esrgan": re.compile(r"^RRDB_trunk\.(\d+)\.RDB([123])\.conv([1-5])\.weight$"),
    "old": re.compile(r"^model\.1\.sub\.(\d+)\.RDB([123])\.conv([1-5])\.0\.weight$"),
}
_OLD_TOP = re.compile(r"^model\.(\d+)\.weight$")
_UP_KEY = {"basicsr": re.compile(r"^conv_up(\d+)\.weight$"), "esrgan": re.compile(r"^upconv(\d+)\.weight$")}
# keys that every checkpoint of a named layout has (besides conv_first and conv_last)
_REQUIRED = {
    "basicsr": ("body.0.rdb1.conv1.weight", "conv_body.weight", "conv_up1.weight", "conv_hr.weight"),
    "esrgan": ("RRDB_trunk.0.RDB1.conv1.weight", "trunk_conv.weight", "upconv1.weight", "HRconv.weight"),
}


def layout_of(sd: Mapping[str, torch.Tensor]) -> str | None:
    """Which of the three layouts ``sd`` uses (None: not an RRDBNet)."""
    if shape(sd, "conv_first.weight") is not None and shape(sd, "conv_last.weight") is not None:
        for layout, keys in _REQUIRED.items():
            if all(shape(sd, k) is not None for k in keys):
                return layout
    if shape(sd, "model.0.weight") is not None and shape(sd, "model.1.sub.0.RDB1.conv1.0.weight") is not None:
        return "old"
    return None


def _unshuffle(num_in: int, num_out: int) -> int:
    """Pixel-unshuffle factor read off conv_first: Real-ESRGAN's x2 and x1 nets feed it 4 and 16
    times the image channels (the output conv tells how many channels the image has)."""
    if num_in == num_out * 16:
        return 4
    if num_in == num_out * 4:
        return 2
    return 1


def infer_hyperparameters(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    layout = layout_of(sd)
    if layout is None:
        raise FaigError("not an RRDBNet state dict (no conv_first/body.N.rdbK, RRDB_trunk.N.RDBK "
                        "or model.1.sub.N.RDBK keys)")
    blocks = {int(m.group(1)) for k in sd if (m := _BLOCK_KEY[layout].match(k))}
    if layout == "old":
        first = sd["model.0.weight"]
        tops = sorted(int(m.group(1)) for k in sd if (m := _OLD_TOP.match(k)))
        # model.0, model.1 (trunk), 3 modules per up-sampling, HR conv, LeakyReLU, last conv
        last = tops[-1]
        if (last - 4) % 3 or last < 4:
            raise FaigError(f"old-layout RRDBNet with an unexpected last layer model.{last}")
        num_up = (last - 4) // 3
        conv1 = sd["model.1.sub.0.RDB1.conv1.0.weight"]
        num_out = int(sd[f"model.{last}.weight"].shape[0])
    else:
        first = sd["conv_first.weight"]
        num_up = len({m.group(1) for k in sd if (m := _UP_KEY[layout].match(k))})
        conv1 = sd[f"{'body.0.rdb1' if layout == 'basicsr' else 'RRDB_trunk.0.RDB1'}.conv1.weight"]
        num_out = int(sd["conv_last.weight"].shape[0])
    # the old releases never unshuffled (their x1/x2 nets have fewer up-samplings instead)
    unshuffle = 1 if layout == "old" else _unshuffle(int(first.shape[1]), num_out)
    if 2 ** num_up < unshuffle:
        raise FaigError(f"RRDBNet with a pixel-unshuffle by {unshuffle} and only {num_up} up-sampling(s) "
                        f"would shrink the image")
    return {"layout": layout, "num_in_ch": int(first.shape[1]) // (unshuffle * unshuffle),
            "num_out_ch": num_out, "num_feat": int(first.shape[0]), "num_block": len(blocks),
            "num_grow_ch": int(conv1.shape[0]), "unshuffle": unshuffle, "scale": 2 ** num_up // unshuffle}


def build_rrdbnet(hp: Mapping[str, Any], init: bool = True) -> nn.Module:
    """An RRDBNet of ``hp``'s layout. Without ``unshuffle``, the layout's own convention: BasicSR
    reaches x1 and x2 by unshuffling before its x4 up-sampling, the others up-sample less.
    ``init=False``: weights left uninitialised, for a checkpoint to fill."""
    layout = hp.get("layout", "basicsr")
    if layout not in LAYOUTS:
        raise FaigError(f"unknown RRDBNet layout '{layout}'; one of {', '.join(LAYOUTS)}")
    scale = int(hp.get("scale", 4))
    unshuffle = int(hp.get("unshuffle", 4 // scale if layout == "basicsr" and scale in (1, 2) else 1))
    up = scale * unshuffle
    # the named layouts always have conv_up1/upconv1; the old one never unshuffles
    if scale < 1 or up & (up - 1) or (layout == "old" and unshuffle != 1) or (layout != "old" and up < 2):
        raise FaigError(f"RRDBNet ({layout} layout) cannot be x{scale} with a pixel-unshuffle by {unshuffle}")
    common = dict(num_in_ch=hp.get("num_in_ch", 3), num_out_ch=hp.get("num_out_ch", 3),
                  num_feat=hp.get("num_feat", 64), num_block=hp.get("num_block", 23),
                  num_grow_ch=hp.get("num_grow_ch", 32), num_up=up.bit_length() - 1, init=init)
    if layout == "old":
        return OldRRDBNet(**common)
    return RRDBNet(layout, **common, unshuffle=unshuffle)


# -- labels ------------------------------------------------------------------------------------
_TOP_LABELS = {"conv_first": "conv_first", "conv_body": "trunk conv", "trunk_conv": "trunk conv",
               "conv_hr": "HR conv", "HRconv": "HR conv", "conv_last": "conv_last"}
_OLD_TRUNK_CONV = re.compile(r"^model\.1\.sub\.(\d+)\.weight$")


def rrdb_label(name: str) -> str | None:
    """'RRDB 17 · RDB 3 · conv3' for body.17.rdb3.conv3.weight and its twins in the other layouts:
    numbers count as the parameter names do (RRDBs from 0, RDBs from 1), so label and name agree."""
    for pattern in _BLOCK_KEY.values():
        if m := pattern.match(name):
            return f"RRDB {int(m.group(1))} · RDB {m.group(2)} · conv{m.group(3)}"
    stem = name.removesuffix(".weight")
    if stem in _TOP_LABELS:
        return _TOP_LABELS[stem]
    for pattern in _UP_KEY.values():
        if m := pattern.match(name):
            return f"up conv {m.group(1)}"
    if _OLD_TRUNK_CONV.match(name):
        return "trunk conv"
    if m := _OLD_TOP.match(name):
        # model.0 first; model.3k the k-th up conv; model.3k+2 the HR conv; model.3k+4 the last
        n = int(m.group(1))
        if n == 0:
            return "conv_first"
        return {0: f"up conv {n // 3}", 2: "HR conv", 1: "conv_last"}[n % 3]
    return None


class RRDBNetArchitecture(Architecture):
    name = "rrdbnet"
    display_name = "RRDBNet (ESRGAN / Real-ESRGAN / BSRGAN)"

    def detect(self, sd: Mapping[str, torch.Tensor]) -> bool:
        return layout_of(sd) is not None

    def hyperparameters(self, sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        return infer_hyperparameters(sd)

    def build(self, hp: Mapping[str, Any]) -> nn.Module:
        return build_rrdbnet(hp)

    def build_unfilled(self, hp: Mapping[str, Any]) -> nn.Module:
        return build_rrdbnet(hp, init=False)

    def layer_label(self, name: str) -> str | None:
        return rrdb_label(name)


ARCHITECTURES = [RRDBNetArchitecture()]
