"""SRVGGNetCompact (Real-ESRGAN): the plugin against Real-ESRGAN's class written out here, detection
and hyper-parameters from a state dict alone, a round trip through the registry, FAIG against the
literal path sum. PReLU weights are 1-D: never filters."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from faig_gui.core.errors import FaigError
from faig_gui.core.filters import FilterIndex
from faig_gui.core.registry import default_registry
from plugin_checks import (check_equals_reference, check_faig_matches_literal, check_graph_and_live_masking,
                           check_round_trip, randomised)


class RealESRGANSRVGG(nn.Module):
    """realesrgan/archs/srvgg_arch.py: body = [conv, act, (conv, act) x num_conv, conv], pixel
    shuffle, plus the nearest-upsampled input."""

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu"):
        super().__init__()
        self.upscale = upscale

        def act():
            return {"relu": lambda: nn.ReLU(inplace=True), "prelu": lambda: nn.PReLU(num_parameters=num_feat),
                    "leakyrelu": lambda: nn.LeakyReLU(negative_slope=0.1, inplace=True)}[act_type]()

        self.body = nn.ModuleList()
        self.body.append(nn.Conv2d(num_in_ch, num_feat, 3, 1, 1))
        self.body.append(act())
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(act())
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x):
        out = x
        for i in range(0, len(self.body)):
            out = self.body[i](out)
        out = self.upsampler(out)
        base = F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        out += base
        return out


@pytest.mark.parametrize("upscale", [2, 3, 4])
@pytest.mark.parametrize("num_feat,num_conv", [(4, 1), (6, 3)])
def test_plugin_equals_real_esrgan_class(upscale, num_feat, num_conv):
    model = check_equals_reference(RealESRGANSRVGG(3, 3, num_feat, num_conv, upscale), seed=upscale + num_conv,
                                   arch="srvgg", scale=upscale)
    assert model.hyperparameters == {"num_in_ch": 3, "num_out_ch": 3, "num_feat": num_feat, "num_conv": num_conv,
                                     "act_type": "prelu", "scale": upscale}


@pytest.mark.parametrize("act_type", ["relu", "leakyrelu"])
def test_activation_without_weights_defaults_to_leaky_relu_and_can_be_overridden(act_type):
    ref = RealESRGANSRVGG(3, 3, 4, 2, 2, act_type)
    sd = randomised(ref.state_dict(), seed=3)
    ref.load_state_dict(sd)
    assert list(sd)[:3] == ["body.0.weight", "body.0.bias", "body.2.weight"]  # no parameters at odd indices
    reg = default_registry()
    inferred = reg.model_from_state_dict(dict(sd))
    assert inferred.hyperparameters["act_type"] == "leakyrelu"
    told = reg.model_from_state_dict(dict(sd), arch=f"srvgg:act_type={act_type}")
    assert told.arch_spec == f"srvgg:act_type={act_type}"
    x = torch.rand(1, 3, 5, 5, generator=torch.Generator().manual_seed(0)) - 0.5  # negatives reach the kink
    with torch.no_grad():
        torch.testing.assert_close(told.module(x), ref(x), rtol=1e-5, atol=1e-6)
        if act_type == "relu":  # the default guess is then wrong, and visibly so
            assert not torch.allclose(inferred.module(x), ref(x), atol=1e-4)


@pytest.mark.parametrize("num_feat,num_conv,upscale", [(4, 0, 2), (8, 2, 3), (5, 4, 4), (16, 1, 2)])
def test_hyperparameters_from_weights(num_feat, num_conv, upscale):
    sd = RealESRGANSRVGG(3, 3, num_feat, num_conv, upscale).state_dict()
    arch = default_registry().detect(sd)
    assert arch.name == "srvgg"
    hp = arch.hyperparameters(sd)
    assert (hp["num_feat"], hp["num_conv"], hp["scale"], hp["act_type"]) == (num_feat, num_conv, upscale, "prelu")


def test_prelu_weights_are_not_filters():
    sd = RealESRGANSRVGG(3, 3, 4, 2, 2).state_dict()
    index = FilterIndex.from_state_dict(sd)
    assert [layer.name for layer in index.layers] == ["body.0.weight", "body.2.weight", "body.4.weight",
                                                      "body.6.weight"]
    assert index.total == 4 * 3 + 4 * 4 + 4 * 4 + 12 * 4


def test_detection_does_not_claim_other_layouts():
    reg = default_registry()
    srvgg = reg.get("srvgg")
    good = dict(RealESRGANSRVGG(3, 3, 4, 1, 2).state_dict())
    assert srvgg.detect(good)
    for broken in ({**good, "conv_first.weight": torch.zeros(4, 3, 3, 3)},          # an extra family's key
                   {k: v for k, v in good.items() if k != "body.2.weight"},           # a conv missing
                   {**good, "body.1.weight": torch.zeros(5)}):                        # PReLU of the wrong width
        assert not srvgg.detect(broken)
    msr = reg.get("msrresnet").new_state_dict(num_feat=4, num_block=1, scale=2)
    assert not srvgg.detect(msr) and reg.detect(msr).name == "msrresnet"
    # EDSR-PyTorch also has body.N.weight keys (its last body conv), among others
    original_edsr = reg.get("edsr").new_state_dict(num_feat=4, num_block=1, scale=2, layout="original")
    assert not srvgg.detect(original_edsr)
    with pytest.raises(FaigError, match="srvgg"):
        reg.model_from_state_dict(msr, arch="srvgg")


def test_round_trip_pth_and_safetensors(tmp_path):
    check_round_trip(tmp_path, "srvgg", dict(num_feat=4, num_conv=2, scale=3), seed=5)


def test_faig_matches_literal_path_sum():
    check_faig_matches_literal("srvgg", dict(num_feat=4, num_conv=1, scale=2),
                               lambda: RealESRGANSRVGG(3, 3, 4, 1, 2), seed=2)


def test_graph_and_live_masking():
    check_graph_and_live_masking("srvgg", dict(num_feat=4, num_conv=2, scale=2))
