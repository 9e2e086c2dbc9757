"""A deep nested test network shaped like BasicSR's RRDBNet (the same module names:
``body.17.rdb2.conv3``), with an architecture plugin so that a Session loads it. Written for
the graph and profile tests (tiny sizes) and for bench/bench_docks.py until a real RRDBNet
plugin exists (64 features, 23 blocks, growth 32: 1,853,824 filters)."""
from __future__ import annotations

import re
from typing import Any
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from faig_gui.core.plugin_api import Architecture


class DenseBlock(nn.Module):
    """Five convs, each reading the concatenation of the block input and all earlier outputs."""

    def __init__(self, feat: int, grow: int):
        super().__init__()
        for k in range(1, 6):
            setattr(self, f"conv{k}", nn.Conv2d(feat + (k - 1) * grow, grow if k < 5 else feat, 3, 1, 1))
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class NestedBlock(nn.Module):
    def __init__(self, feat: int, grow: int):
        super().__init__()
        self.rdb1, self.rdb2, self.rdb3 = (DenseBlock(feat, grow) for _ in range(3))

    def forward(self, x):
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class NestedNet(nn.Module):
    def __init__(self, feat: int = 4, blocks: int = 2, grow: int = 2):
        super().__init__()
        self.conv_first = nn.Conv2d(3, feat, 3, 1, 1)
        self.body = nn.Sequential(*(NestedBlock(feat, grow) for _ in range(blocks)))
        self.conv_body = nn.Conv2d(feat, feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(feat, feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(feat, feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(feat, feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(feat, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


_BODY = re.compile(r"body\.(\d+)\.rdb(\d)\.conv(\d)\.weight$")


class NestedArchitecture(Architecture):
    name = "nested_test"
    display_name = "nested RRDB-shaped test net"

    def detect(self, sd: Mapping[str, torch.Tensor]) -> bool:
        return "conv_first.weight" in sd and any(_BODY.match(k) for k in sd)

    def hyperparameters(self, sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        blocks = {int(m.group(1)) for k in sd if (m := _BODY.match(k))}
        return {"feat": int(sd["conv_first.weight"].shape[0]), "blocks": len(blocks),
                "grow": int(sd["body.0.rdb1.conv1.weight"].shape[0]), "scale": 4}

    def build(self, hp: Mapping[str, Any]) -> nn.Module:
        return NestedNet(hp.get("feat", 4), hp.get("blocks", 2), hp.get("grow", 2))

    def layer_label(self, name: str) -> str | None:
        m = _BODY.match(name)
        return f"RRDB {m.group(1)} dense {m.group(2)} conv{m.group(3)}" if m else None


def nested_model(folder, feat: int = 2, blocks: int = 10, grow: int = 1, scores: bool = True):
    """A SessionModel holding a random nested pair (target = baseline + noise), with the made-up
    scores of tiny_session (blur favours early filters, noise late ones)."""
    from faig_gui.app.session_model import SessionModel
    from faig_gui.core.checkpoint import save_checkpoint
    from faig_gui.core.registry import Registry
    from faig_gui.core.session import Session
    from tiny_session import made_up_scores
    arch = NestedArchitecture()
    torch.manual_seed(0)
    base = arch.new_state_dict(feat=feat, blocks=blocks, grow=grow)
    save_checkpoint(folder / "nested_b.pth", base)
    save_checkpoint(folder / "nested_t.pth", {k: v + 0.01 * torch.randn_like(v) for k, v in base.items()})
    model = SessionModel(Session(Registry([arch])))
    assert model.load_pair(str(folder / "nested_b.pth"), str(folder / "nested_t.pth"))
    if scores:
        model.set_scores(made_up_scores(model.session.index.total))
    return model
