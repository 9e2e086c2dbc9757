"""RCAN in BasicSR's layout and in the original code's (yulunzhang/RCAN, the layout of the released
checkpoints): the plugin against both published classes written out here, detection and
hyper-parameters (groups, blocks, squeeze factor, scale) from a state dict alone, the original's
MeanShift loaded when stored and defaulted when not, a round trip through the registry, FAIG
against the literal path sum; the attention's 1x1 convs are filters."""
from __future__ import annotations


import pytest
import torch
from torch import nn

from faig_gui.core.errors import FaigError
from faig_gui.core.filters import FilterIndex
from faig_gui.core.registry import default_registry
from plugin_checks import (assert_same_outputs, check_equals_reference, check_faig_matches_literal,
                           check_graph_and_live_masking, check_round_trip, lr_image, randomised)
from reference_nets import BasicSRUpsample, OriginalMeanShift, OriginalUpsampler, original_conv


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


# --------------------------------------------------------------------------------------------
# The original: yulunzhang/RCAN RCAN_TrainCode/code/model/rcan.py with its common.py (the same
# file is EDSR-PyTorch's src/model/rcan.py). Its MeanShift sets requires_grad on the module, not
# on the parameters, so the mean shift is trained and stored like any conv.

class _CALayer(nn.Module):
    def __init__(self, channel, reduction=16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channel, channel // reduction, 1, padding=0, bias=True), nn.ReLU(inplace=True),
            nn.Conv2d(channel // reduction, channel, 1, padding=0, bias=True), nn.Sigmoid())

    def forward(self, x):
        return x * self.conv_du(self.avg_pool(x))


class _OriginalRCAB(nn.Module):
    def __init__(self, conv, n_feat, kernel_size, reduction):
        super().__init__()
        modules_body = []
        for i in range(2):
            modules_body.append(conv(n_feat, n_feat, kernel_size, bias=True))
            if i == 0:
                modules_body.append(nn.ReLU(True))
        modules_body.append(_CALayer(n_feat, reduction))
        self.body = nn.Sequential(*modules_body)

    def forward(self, x):
        res = self.body(x)   # the original leaves res_scale out (its line is commented)
        res += x
        return res


class _OriginalResidualGroup(nn.Module):
    def __init__(self, conv, n_feat, kernel_size, reduction, n_resblocks):
        super().__init__()
        modules_body = [_OriginalRCAB(conv, n_feat, kernel_size, reduction) for _ in range(n_resblocks)]
        modules_body.append(conv(n_feat, n_feat, kernel_size))
        self.body = nn.Sequential(*modules_body)

    def forward(self, x):
        res = self.body(x)
        res += x
        return res


class OriginalRCAN(nn.Module):
    """The original's RCAN(args), args spelled out; takes pixels in [0, rgb_range]."""

    def __init__(self, n_resgroups=10, n_resblocks=20, n_feats=64, reduction=16, scale=4, rgb_range=255,
                 n_colors=3, conv=original_conv):
        super().__init__()
        kernel_size = 3
        self.sub_mean = OriginalMeanShift(rgb_range)
        modules_head = [conv(n_colors, n_feats, kernel_size)]
        modules_body = [_OriginalResidualGroup(conv, n_feats, kernel_size, reduction, n_resblocks)
                        for _ in range(n_resgroups)]
        modules_body.append(conv(n_feats, n_feats, kernel_size))
        modules_tail = [OriginalUpsampler(conv, scale, n_feats), conv(n_feats, n_colors, kernel_size)]
        self.add_mean = OriginalMeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(*modules_head)
        self.body = nn.Sequential(*modules_body)
        self.tail = nn.Sequential(*modules_tail)

    def forward(self, x):
        x = self.sub_mean(x)
        x = self.head(x)
        res = self.body(x)
        res += x
        x = self.tail(res)
        x = self.add_mean(x)
        return x


class OriginalRCANOnUnitRange(OriginalRCAN):
    """Fed [0, 1] pixels as a user of the original code would: x255 in, /255 out."""

    def forward(self, x):
        return super().forward(x * 255.0) / 255.0


def original_checkpoint(ref: OriginalRCAN, seed: int) -> dict[str, torch.Tensor]:
    """Random weights, and a MeanShift moved a little off its initial values, as the original's
    training leaves it (still a 255-range shift: biases near 255 x the mean)."""
    sd = randomised(ref.state_dict(), seed)
    g = torch.Generator().manual_seed(seed + 100)
    for k, v in ref.state_dict().items():
        if "mean" in k:
            sd[k] = v + 0.02 * torch.randn(v.shape, generator=g)
    return dict(sd)


def _reference(layout, num_feat, num_group, num_block, squeeze, upscale):
    if layout == "basicsr":
        return BasicSRRCAN(3, 3, num_feat, num_group, num_block, squeeze, upscale)
    return OriginalRCAN(num_group, num_block, num_feat, squeeze, upscale)


# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("upscale", [2, 3, 4])
@pytest.mark.parametrize("num_feat,num_group,num_block,squeeze", [(4, 1, 1, 2), (8, 2, 3, 4)])
def test_plugin_equals_basicsr_class(upscale, num_feat, num_group, num_block, squeeze):
    ref = BasicSRRCAN(3, 3, num_feat, num_group, num_block, squeeze, upscale)
    model = check_equals_reference(ref, seed=upscale + num_group, arch="rcan", scale=upscale)
    assert model.hyperparameters == {"layout": "basicsr", "num_in_ch": 3, "num_out_ch": 3, "num_feat": num_feat,
                                     "num_group": num_group, "num_block": num_block, "squeeze_factor": squeeze,
                                     "scale": upscale, "res_scale": 1.0, "img_range": 255.0}


@pytest.mark.parametrize("upscale", [2, 3, 4])
@pytest.mark.parametrize("n_feats,n_resgroups,n_resblocks,reduction", [(4, 1, 1, 2), (8, 2, 3, 4)])
def test_plugin_equals_original_class(upscale, n_feats, n_resgroups, n_resblocks, reduction):
    ref = OriginalRCAN(n_resgroups, n_resblocks, n_feats, reduction, upscale)
    sd = original_checkpoint(ref, seed=upscale + n_resgroups)
    ref.load_state_dict(sd)
    model = default_registry().model_from_state_dict(dict(sd))
    assert model.arch_name == "rcan" and model.scale == upscale
    assert model.hyperparameters == {"layout": "original", "num_in_ch": 3, "num_out_ch": 3, "num_feat": n_feats,
                                     "num_group": n_resgroups, "num_block": n_resblocks, "squeeze_factor": reduction,
                                     "scale": upscale, "res_scale": 1.0, "img_range": 255.0, "mean_shift": "stored"}
    assert list(model.module.state_dict()) == list(sd)   # the checkpoint's names, in its order
    for key in ("sub_mean.weight", "add_mean.bias"):     # the stored (trained) shift, not the default
        assert torch.equal(model.state_dict[key], sd[key])
    x = lr_image(6, upscale)
    with torch.no_grad():
        expected, got = ref(x * 255.0) / 255.0, model.module(x)
    assert got.shape == (1, 3, 6 * upscale, 6 * upscale)
    assert_same_outputs(got, expected)


def test_original_without_mean_shift_keys_gets_the_originals_defaults():
    # a state dict with sub_mean/add_mean stripped: the original code (its load_state_dict is not
    # strict) keeps its own MeanShift, DIV2K mean x 255; so does the plugin, as buffers
    ref = OriginalRCAN(1, 2, 4, 2, 2)
    sd = randomised(ref.state_dict(), seed=5)
    sd.update({k: v for k, v in ref.state_dict().items() if "mean" in k})
    ref.load_state_dict(sd)
    stripped = {k: v for k, v in sd.items() if "mean" not in k}
    model = default_registry().model_from_state_dict(dict(stripped))
    assert model.arch_name == "rcan"
    assert (model.hyperparameters["layout"], model.hyperparameters["mean_shift"]) == ("original", "div2k")
    assert list(model.module.state_dict()) == list(stripped)
    x = lr_image(5, 2)
    with torch.no_grad():
        assert_same_outputs(model.module(x), ref(x * 255.0) / 255.0)


def test_original_unit_range_checkpoint():
    # trained with --rgb_range 1: MeanShift biases of ~0.45, read as range 1
    ref = OriginalRCAN(1, 1, 4, 2, 2, rgb_range=1)
    sd = randomised(ref.state_dict(), seed=9)
    sd.update({k: v for k, v in ref.state_dict().items() if "mean" in k})
    ref.load_state_dict(sd)
    model = default_registry().model_from_state_dict(dict(sd))
    assert model.hyperparameters["img_range"] == 1.0
    x = lr_image(5, 0)
    with torch.no_grad():
        assert_same_outputs(model.module(x), ref(x))


@pytest.mark.parametrize("layout", ["basicsr", "original"])
@pytest.mark.parametrize("num_feat,num_group,num_block,squeeze,upscale",
                         [(64, 2, 1, 16, 2), (16, 1, 4, 8, 3), (8, 3, 2, 2, 4), (12, 1, 1, 3, 8)])
def test_hyperparameters_from_weights(layout, num_feat, num_group, num_block, squeeze, upscale):
    sd = _reference(layout, num_feat, num_group, num_block, squeeze, upscale).state_dict()
    reg = default_registry()
    assert [a.name for a in reg.architectures if a.detect(sd)] == ["rcan"]
    hp = reg.detect(sd).hyperparameters(sd)
    assert (hp["layout"], hp["num_feat"], hp["num_group"], hp["num_block"], hp["squeeze_factor"], hp["scale"]) == \
        (layout, num_feat, num_group, num_block, squeeze, upscale)


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
    original = OriginalRCAN(2, 3, 8, 4, 2).state_dict()
    index = FilterIndex.from_state_dict(original)
    du = index.layer("body.1.body.2.body.3.conv_du.0.weight")
    assert (du.out_channels, du.in_channels, du.kernel) == (2, 8, (1, 1))
    labels = {k: rcan.layer_label(k) for k in ("body.1.body.2.body.3.conv_du.0.weight", "body.1.body.2.body.0.weight",
                                               "body.1.body.3.weight", "body.2.weight", "head.0.weight",
                                               "tail.0.0.weight", "tail.1.weight", "sub_mean.weight")}
    assert labels == {"body.1.body.2.body.3.conv_du.0.weight": "group 1 block 2 attention squeeze",
                      "body.1.body.2.body.0.weight": "group 1 block 2 conv1", "body.1.body.3.weight": "group 1 conv",
                      "body.2.weight": "conv_after_body", "head.0.weight": "conv_first",
                      "tail.0.0.weight": "upsample conv 1", "tail.1.weight": "conv_last",
                      "sub_mean.weight": "sub_mean"}


def test_detection_does_not_claim_other_layouts():
    reg = default_registry()
    rcan = reg.get("rcan")
    good = dict(BasicSRRCAN(3, 3, 4, 2, 2, 2, 2).state_dict())
    assert rcan.detect(good)
    uneven = {k: v for k, v in good.items() if ".residual_group.1." not in k or not k.startswith("body.1.")}
    assert not rcan.detect(uneven)                      # groups of different depth
    no_group_conv = {k: v for k, v in good.items() if not k.startswith("body.1.conv.")}
    assert not rcan.detect(no_group_conv)
    original = dict(OriginalRCAN(2, 2, 4, 2, 2).state_dict())
    assert rcan.detect(original)
    for broken in ({k: v for k, v in original.items() if not k.startswith("body.1.body.2.")},   # no group conv
                   {k: v for k, v in original.items() if not k.startswith("body.1.body.1.")},   # a block missing
                   {k: v for k, v in original.items() if not k.startswith("body.2.")},          # no conv after body
                   {k: v for k, v in original.items() if k != "add_mean.bias"},                 # half a MeanShift
                   {**original, "body.0.body.0.body.3.conv_du.0.weight": torch.zeros(1, 4, 1, 1)},  # squeeze 4 vs 2
                   {**original, "body.1.body.0.body.2.weight": torch.zeros(4, 4, 5, 5)}):  # a 5x5 kernel
        assert not rcan.detect(broken)
    for other in (reg.get("edsr").new_state_dict(num_feat=4, num_block=1, scale=2),
                  reg.get("edsr").new_state_dict(num_feat=4, num_block=2, scale=2, layout="original"),
                  reg.get("msrresnet").new_state_dict(num_feat=4, num_block=1, scale=2)):
        assert not rcan.detect(other)
        assert reg.detect(other).name != "rcan"


def test_keys_that_fit_neither_layout_are_a_clear_error():
    reg = default_registry()
    sd = dict(OriginalRCAN(1, 1, 4, 2, 2).state_dict())
    sd["body.0.body.0.body.1.weight"] = torch.zeros(4, 4, 3, 3)   # the ReLU's slot: no conv there
    with pytest.raises(FaigError, match=r"'body\.0\.body\.0\.body\.1\.weight' fits neither BasicSR's nor the "
                                        r"original RCAN layout"):
        reg.model_from_state_dict(sd, arch="rcan")
    with pytest.raises(FaigError, match="no architecture plugin recognises"):
        reg.model_from_state_dict(sd)
    with pytest.raises(FaigError, match=r"neither 'conv_first\.weight'.*nor 'head\.0\.weight'"):
        reg.model_from_state_dict(reg.get("srvgg").new_state_dict(num_feat=4, num_conv=2, scale=2), arch="rcan")


def test_round_trip_pth_and_safetensors(tmp_path):
    check_round_trip(tmp_path / "a", "rcan", dict(num_feat=4, num_group=2, num_block=1, squeeze_factor=2, scale=2),
                     seed=7)
    check_round_trip(tmp_path / "b", "rcan", dict(num_feat=4, num_group=2, num_block=1, squeeze_factor=2, scale=3,
                                                  layout="original"), seed=8)
    check_round_trip(tmp_path / "c", "rcan", dict(num_feat=4, num_group=1, num_block=2, squeeze_factor=2, scale=4,
                                                  layout="original", mean_shift="div2k"), seed=9)


@pytest.mark.parametrize("layout", ["basicsr", "original"])
def test_faig_matches_literal_path_sum(layout):
    if layout == "basicsr":
        check_faig_matches_literal("rcan", dict(num_feat=4, num_group=1, num_block=1, squeeze_factor=2, scale=2),
                                   lambda: BasicSRRCAN(3, 3, 4, 1, 1, 2, 2), seed=3)
    else:
        # MeanShift keeps the plugin's initial (255-range) values in both nets: random ones would
        # read as a range-1 checkpoint, and the reference is built for 255
        check_faig_matches_literal("rcan", dict(num_feat=4, num_group=1, num_block=1, squeeze_factor=2, scale=2,
                                                layout="original"),
                                   lambda: OriginalRCANOnUnitRange(1, 1, 4, 2, 2), seed=3, fixed=lambda k: "mean" in k)


@pytest.mark.parametrize("layout", ["basicsr", "original"])
def test_graph_and_live_masking(layout):
    check_graph_and_live_masking("rcan", dict(num_feat=4, num_group=2, num_block=1, squeeze_factor=2, scale=3,
                                              layout=layout))
