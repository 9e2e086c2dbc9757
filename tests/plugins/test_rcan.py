"""RCAN (BasicSR): the plugin against BasicSR's class written out here, detection and
hyper-parameters (groups, blocks, squeeze factor, scale) from a state dict alone, a round trip
through the registry, FAIG against the literal path sum; the attention's 1x1 convs are filters."""
from __future__ import annotations


import pytest
import torch
from torch import nn

from faig_gui.core.filters import FilterIndex
from faig_gui.core.registry import default_registry
from plugin_checks import (check_equals_reference, check_faig_matches_literal, check_graph_and_live_masking,
                           check_round_trip)
from reference_nets import BasicSRUpsample


class _ChannelAttention(nn.Module):
    def __init__(self, num_feat, squeeze_factor=16):
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(num_feat, num_feat // squeeze_factor, 1, padding=0),
            nn.ReLU(inplace=True), nn.Conv2d(num_feat // squeeze_factor, num_feat, 1, padding=0), nn.Sigmoid())

    def forward(self, x):
        y = self.attention(x)
        return x * y


class _RCAB(nn.Module):
    def __init__(self, num_feat, squeeze_factor=16, res_scale=1):
        super().__init__()
        self.res_scale = res_scale
        self.rcab = nn.Sequential(
            nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ReLU(True), nn.Conv2d(num_feat, num_feat, 3, 1, 1),
            _ChannelAttention(num_feat, squeeze_factor))

    def forward(self, x):
        res = self.rcab(x) * self.res_scale
        return res + x


class _ResidualGroup(nn.Module):
    def __init__(self, num_feat, num_block, squeeze_factor=16, res_scale=1):
        super().__init__()
        self.residual_group = nn.Sequential(*[_RCAB(num_feat, squeeze_factor, res_scale) for _ in range(num_block)])
        self.conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x):
        res = self.conv(self.residual_group(x))
        return res + x


class BasicSRRCAN(nn.Module):
    """basicsr/archs/rcan_arch.py"""

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_group=10, num_block=16, squeeze_factor=16,
                 upscale=4, res_scale=1, img_range=255., rgb_mean=(0.4488, 0.4371, 0.4040)):
        super().__init__()
        self.img_range = img_range
        self.mean = torch.Tensor(rgb_mean).view(1, 3, 1, 1)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[_ResidualGroup(num_feat, num_block, squeeze_factor, res_scale)
                                    for _ in range(num_group)])
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = BasicSRUpsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x):
        self.mean = self.mean.type_as(x)
        x = (x - self.mean) * self.img_range
        x = self.conv_first(x)
        res = self.conv_after_body(self.body(x))
        res += x
        x = self.conv_last(self.upsample(res))
        x = x / self.img_range + self.mean
        return x


@pytest.mark.parametrize("upscale", [2, 3, 4])
@pytest.mark.parametrize("num_feat,num_group,num_block,squeeze", [(4, 1, 1, 2), (8, 2, 3, 4)])
def test_plugin_equals_basicsr_class(upscale, num_feat, num_group, num_block, squeeze):
    ref = BasicSRRCAN(3, 3, num_feat, num_group, num_block, squeeze, upscale)
    model = check_equals_reference(ref, seed=upscale + num_group, arch="rcan", scale=upscale)
    assert model.hyperparameters == {"num_in_ch": 3, "num_out_ch": 3, "num_feat": num_feat, "num_group": num_group,
                                     "num_block": num_block, "squeeze_factor": squeeze, "scale": upscale,
                                     "res_scale": 1.0, "img_range": 255.0}


@pytest.mark.parametrize("num_feat,num_group,num_block,squeeze,upscale",
                         [(64, 2, 1, 16, 2), (16, 1, 4, 8, 3), (8, 3, 2, 2, 4), (12, 1, 1, 3, 8)])
def test_hyperparameters_from_weights(num_feat, num_group, num_block, squeeze, upscale):
    sd = BasicSRRCAN(3, 3, num_feat, num_group, num_block, squeeze, upscale).state_dict()
    arch = default_registry().detect(sd)
    assert arch.name == "rcan"
    hp = arch.hyperparameters(sd)
    assert (hp["num_feat"], hp["num_group"], hp["num_block"], hp["squeeze_factor"], hp["scale"]) == \
        (num_feat, num_group, num_block, squeeze, upscale)


def test_attention_convs_are_filters_with_labels():
    sd = BasicSRRCAN(3, 3, 8, 1, 1, 4, 2).state_dict()
    index = FilterIndex.from_state_dict(sd)
    squeeze = index.layer("body.0.residual_group.0.rcab.3.attention.1.weight")
    excite = index.layer("body.0.residual_group.0.rcab.3.attention.3.weight")
    assert (squeeze.out_channels, squeeze.in_channels, squeeze.kernel) == (2, 8, (1, 1))
    assert (excite.out_channels, excite.in_channels) == (8, 2)
    rcan = default_registry().get("rcan")
    assert rcan.layer_label(squeeze.name) == "group 0 block 0 attention squeeze"
    assert rcan.layer_label("body.0.conv.weight") == "group 0 conv"
    assert rcan.layer_label("body.0.residual_group.0.rcab.2.weight") == "group 0 block 0 conv2"


def test_detection_does_not_claim_other_layouts():
    reg = default_registry()
    rcan = reg.get("rcan")
    good = dict(BasicSRRCAN(3, 3, 4, 2, 2, 2, 2).state_dict())
    assert rcan.detect(good)
    uneven = {k: v for k, v in good.items() if ".residual_group.1." not in k or not k.startswith("body.1.")}
    assert not rcan.detect(uneven)                      # groups of different depth
    no_group_conv = {k: v for k, v in good.items() if not k.startswith("body.1.conv.")}
    assert not rcan.detect(no_group_conv)
    for other in (reg.get("edsr").new_state_dict(num_feat=4, num_block=1, scale=2),
                  reg.get("msrresnet").new_state_dict(num_feat=4, num_block=1, scale=2)):
        assert not rcan.detect(other)
        assert reg.detect(other).name != "rcan"


def test_round_trip_pth_and_safetensors(tmp_path):
    check_round_trip(tmp_path, "rcan", dict(num_feat=4, num_group=2, num_block=1, squeeze_factor=2, scale=2), seed=7)


def test_faig_matches_literal_path_sum():
    check_faig_matches_literal("rcan", dict(num_feat=4, num_group=1, num_block=1, squeeze_factor=2, scale=2),
                               lambda: BasicSRRCAN(3, 3, 4, 1, 1, 2, 2), seed=3)


def test_graph_and_live_masking():
    check_graph_and_live_masking("rcan", dict(num_feat=4, num_group=2, num_block=1, squeeze_factor=2, scale=3))
