"""EDSR in BasicSR's and in EDSR-PyTorch's layout: the plugin against both published classes
written out here, detection and hyper-parameters from a state dict alone, res_scale's defaults and
override, a round trip through the registry, FAIG against the literal path sum."""
from __future__ import annotations


import pytest
import torch
from torch import nn

from faig_gui.core.registry import default_registry
from plugin_checks import (assert_same_outputs, check_equals_reference, check_faig_matches_literal,
                           check_graph_and_live_masking, check_round_trip, randomised)
from reference_nets import BasicSRUpsample, OriginalMeanShift, OriginalUpsampler, original_conv


# --------------------------------------------------------------------------------------------
# BasicSR: basicsr/archs/edsr_arch.py with arch_util's ResidualBlockNoBN and Upsample

class _BlockNoBN(nn.Module):
    def __init__(self, num_feat, res_scale):
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=True)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        identity = x
        out = self.conv2(self.relu(self.conv1(x)))
        return identity + out * self.res_scale


class BasicSREDSR(nn.Module):
    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=4, res_scale=1,
                 img_range=255., rgb_mean=(0.4488, 0.4371, 0.4040)):
        super().__init__()
        self.img_range = img_range
        self.mean = torch.Tensor(rgb_mean).view(1, 3, 1, 1)  # a plain attribute: not in the state dict
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[_BlockNoBN(num_feat, res_scale) for _ in range(num_block)])
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
# EDSR-PyTorch: src/model/edsr.py with common.py's MeanShift, ResBlock, Upsampler

class _ResBlock(nn.Module):
    def __init__(self, n_feats, res_scale):
        super().__init__()
        self.body = nn.Sequential(original_conv(n_feats, n_feats, 3), nn.ReLU(True), original_conv(n_feats, n_feats, 3))
        self.res_scale = res_scale

    def forward(self, x):
        res = self.body(x).mul(self.res_scale)
        res += x
        return res


class OriginalEDSR(nn.Module):
    """Takes pixels in [0, rgb_range], as the original does."""

    def __init__(self, n_resblocks=16, n_feats=64, scale=4, res_scale=1, rgb_range=255, n_colors=3):
        super().__init__()
        self.sub_mean = OriginalMeanShift(rgb_range, frozen=True)
        self.add_mean = OriginalMeanShift(rgb_range, sign=1, frozen=True)
        self.head = nn.Sequential(original_conv(n_colors, n_feats, 3))
        body = [_ResBlock(n_feats, res_scale) for _ in range(n_resblocks)]
        body.append(original_conv(n_feats, n_feats, 3))
        self.body = nn.Sequential(*body)
        self.tail = nn.Sequential(OriginalUpsampler(original_conv, scale, n_feats), original_conv(n_feats, n_colors, 3))

    def forward(self, x):
        x = self.sub_mean(x)
        x = self.head(x)
        res = self.body(x)
        res += x
        x = self.tail(res)
        x = self.add_mean(x)
        return x


class OriginalEDSROnUnitRange(OriginalEDSR):
    """The same net fed [0, 1] pixels the way a user of EDSR-PyTorch would: x255 in, /255 out.
    The literal FAIG reference takes every parameter's gradient, MeanShift's too (faig-gui
    attributes every 4-D weight; a pair shares MeanShift, so its filters score zero)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for p in self.parameters():
            p.requires_grad_(True)

    def forward(self, x):
        return super().forward(x * 255.0) / 255.0


# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("upscale", [2, 3, 4])
@pytest.mark.parametrize("num_feat,num_block", [(4, 1), (6, 3)])
def test_plugin_equals_basicsr_class(upscale, num_feat, num_block):
    model = check_equals_reference(BasicSREDSR(3, 3, num_feat, num_block, upscale), seed=upscale * 7 + num_block,
                                   arch="edsr", scale=upscale)
    assert model.hyperparameters == {"layout": "basicsr", "num_in_ch": 3, "num_out_ch": 3, "num_feat": num_feat,
                                     "num_block": num_block, "scale": upscale, "res_scale": 1.0, "img_range": 255.0}
    assert "mean" not in model.state_dict  # BasicSR does not store it


@pytest.mark.parametrize("upscale", [2, 3, 4])
@pytest.mark.parametrize("n_feats,n_resblocks", [(4, 1), (6, 2)])
def test_plugin_equals_edsr_pytorch_class(upscale, n_feats, n_resblocks):
    ref = OriginalEDSR(n_resblocks, n_feats, upscale)
    sd = randomised(ref.state_dict(), seed=upscale + n_feats)
    # the stored MeanShift is the original's own: x255 mean shift, identity weights
    sd.update({k: v for k, v in ref.state_dict().items() if "mean" in k})
    ref.load_state_dict(sd)
    model = default_registry().model_from_state_dict(dict(sd))
    assert model.arch_name == "edsr" and model.scale == upscale
    assert model.hyperparameters["layout"] == "original" and model.hyperparameters["img_range"] == 255.0
    assert list(model.module.state_dict()) == list(sd)
    x = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(upscale))
    with torch.no_grad():
        expected, got = ref(x * 255.0) / 255.0, model.module(x)
    assert_same_outputs(got, expected)


def test_edsr_pytorch_unit_range_checkpoint():
    # models trained with --rgb_range 1 store MeanShift biases of ~0.45: read as range 1
    ref = OriginalEDSR(1, 4, 2, rgb_range=1)
    model = default_registry().model_from_state_dict(dict(ref.state_dict()))
    assert model.hyperparameters["img_range"] == 1.0
    x = torch.rand(1, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model.module(x), ref(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layout", ["basicsr", "original"])
@pytest.mark.parametrize("num_feat,num_block,upscale,res_scale", [(64, 2, 2, 1.0), (256, 1, 3, 0.1),
                                                                  (8, 5, 4, 1.0), (32, 3, 8, 1.0)])
def test_hyperparameters_from_weights(layout, num_feat, num_block, upscale, res_scale):
    if layout == "basicsr":
        sd = BasicSREDSR(3, 3, num_feat, num_block, upscale).state_dict()
    else:
        sd = OriginalEDSR(num_block, num_feat, upscale).state_dict()
    arch = default_registry().detect(sd)
    assert arch.name == "edsr"
    hp = arch.hyperparameters(sd)
    assert (hp["layout"], hp["num_feat"], hp["num_block"], hp["scale"], hp["res_scale"]) == \
        (layout, num_feat, num_block, upscale, res_scale)


def test_res_scale_default_follows_the_released_models_and_can_be_overridden():
    reg = default_registry()
    ref = BasicSREDSR(3, 3, 4, 2, 2, res_scale=0.1)
    sd = randomised(ref.state_dict(), seed=11)
    ref.load_state_dict(sd)
    x = torch.rand(1, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    guessed = reg.model_from_state_dict(dict(sd))       # 4 features: the baseline's 1.0
    told = reg.model_from_state_dict(dict(sd), arch="edsr:res_scale=0.1")
    assert guessed.hyperparameters["res_scale"] == 1.0 and told.hyperparameters["res_scale"] == 0.1
    with torch.no_grad():
        expected = ref(x)
        assert not torch.allclose(guessed.module(x), expected, atol=1e-3)
        torch.testing.assert_close(told.module(x), expected, rtol=1e-5, atol=1e-5)


def test_detection_does_not_claim_other_layouts():
    reg = default_registry()
    edsr = reg.get("edsr")
    msr = reg.get("msrresnet").new_state_dict(num_feat=4, num_block=1, scale=2)
    assert not edsr.detect(msr)
    rcan_like = dict(BasicSREDSR(3, 3, 4, 1, 2).state_dict())
    rcan_like["body.0.residual_group.0.rcab.0.weight"] = torch.zeros(4, 4, 3, 3)
    assert not edsr.detect(rcan_like)
    rrdb_like = dict(BasicSREDSR(3, 3, 4, 1, 2).state_dict())
    rrdb_like["body.0.rdb1.conv1.weight"] = torch.zeros(4, 4, 3, 3)
    assert not edsr.detect(rrdb_like)
    bad_up = dict(BasicSREDSR(3, 3, 4, 1, 2).state_dict())
    bad_up["upsample.0.weight"] = torch.zeros(20, 4, 3, 3)   # 5 x num_feat: no pixel shuffle fits
    assert not edsr.detect(bad_up)


def test_round_trip_pth_and_safetensors(tmp_path):
    check_round_trip(tmp_path / "a", "edsr", dict(num_feat=4, num_block=2, scale=4), seed=3)
    check_round_trip(tmp_path / "b", "edsr", dict(num_feat=4, num_block=2, scale=3, layout="original"), seed=4)


@pytest.mark.parametrize("layout", ["basicsr", "original"])
def test_faig_matches_literal_path_sum(layout):
    if layout == "basicsr":
        check_faig_matches_literal("edsr", dict(num_feat=4, num_block=1, scale=2),
                                   lambda: BasicSREDSR(3, 3, 4, 1, 2), seed=1)
    else:
        check_faig_matches_literal("edsr", dict(num_feat=4, num_block=1, scale=2, layout="original"),
                                   lambda: OriginalEDSROnUnitRange(1, 4, 2), seed=1, fixed=lambda k: "mean" in k)


def test_fresh_original_layout_has_edsr_pytorchs_mean_shift():
    # a net trained from scratch in this layout starts with the MeanShift the original fixes
    sd = default_registry().get("edsr").new_state_dict(num_feat=4, num_block=1, scale=2, layout="original")
    ref = OriginalEDSR(1, 4, 2).state_dict()
    for key in ("sub_mean.weight", "sub_mean.bias", "add_mean.weight", "add_mean.bias"):
        torch.testing.assert_close(sd[key], ref[key], rtol=0, atol=1e-5)


@pytest.mark.parametrize("spec,words", [("edsr:res_scale", "KEY=VALUE"), ("edsr:depth=3", "unknown hyper-parameter 'depth'"),
                                        ("edsr:res_scale=big", "not a float")])
def test_bad_hyperparameter_overrides_are_user_errors(spec, words):
    from faig_gui.core.errors import FaigError
    sd = default_registry().get("edsr").new_state_dict(num_feat=4, num_block=1, scale=2)
    with pytest.raises(FaigError, match=words):
        default_registry().model_from_state_dict(sd, arch=spec)


def test_session_file_keeps_the_override(tmp_path):
    from faig_gui.core.checkpoint import save_checkpoint
    from faig_gui.core.session import Session
    reg = default_registry()
    for name, seed in (("b.pth", 1), ("t.pth", 2)):
        save_checkpoint(tmp_path / name, randomised(reg.get("edsr").new_state_dict(num_feat=4, num_block=1, scale=2), seed))
    session = Session()
    session.load_pair(tmp_path / "b.pth", tmp_path / "t.pth", "edsr:res_scale=0.1")
    assert session.target.module.body[0].res_scale == 0.1
    session.save(tmp_path / "s.faig")
    reopened = Session.open(tmp_path / "s.faig")
    assert reopened.target.module.body[0].res_scale == 0.1
    assert reopened.target.arch_spec == "edsr:res_scale=0.1"


@pytest.mark.parametrize("layout", ["basicsr", "original"])
def test_graph_and_live_masking(layout):
    check_graph_and_live_masking("edsr", dict(num_feat=4, num_block=2, scale=2, layout=layout))
