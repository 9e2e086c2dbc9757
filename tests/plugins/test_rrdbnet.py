"""The RRDBNet plugin against a reference written here from BasicSR's published ``RRDBNet``
(basicsr/archs/rrdbnet_arch.py): same outputs for the same weights in all three key layouts
(BasicSR/Real-ESRGAN, xinntao/ESRGAN's RRDBNet_arch.py, the old ESRGAN ``model.N`` files, the
last two by a mapping of key names), detection and hyper-parameters from a state dict alone, a
round trip through checkpoint files, and FAIG on a tiny pair against a float64 literal loop.

The checkpoints under test are made by the reference class (and the key mappings), never by the
plugin: the plugin must read what the original code writes."""
from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from faig_gui.core.attribution import PathOptions, faig_attribution
from faig_gui.core.checkpoint import save_checkpoint
from faig_gui.core.graph import graph_for, traced_graph
from faig_gui.core.incremental import IncrementalForward
from faig_gui.core.masking import FilterMask, masked_state_dict
from faig_gui.core.paths import riemann_left
from faig_gui.core.registry import default_registry
from reference_nets import BasicSRMSRResNet, PaperSRCNN
from tolerances import gamma, network_terms, walk


# --------------------------------------------------------------------------------------------
# the reference: BasicSR's RRDBNet as published (pixel_unshuffle written out as BasicSR does it)

def basicsr_pixel_unshuffle(x: torch.Tensor, scale: int) -> torch.Tensor:
    b, c, hh, hw = x.size()
    h, w = hh // scale, hw // scale
    x_view = x.view(b, c, h, scale, w, scale)
    return x_view.permute(0, 1, 3, 5, 2, 4).reshape(b, c * scale * scale, h, w)


class RefResidualDenseBlock(nn.Module):
    def __init__(self, num_feat=64, num_grow_ch=32):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RefRRDB(nn.Module):
    def __init__(self, num_feat, num_grow_ch=32):
        super().__init__()
        self.rdb1 = RefResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = RefResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = RefResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x):
        out = self.rdb3(self.rdb2(self.rdb1(x)))
        return out * 0.2 + x


class RefRRDBNet(nn.Module):
    """BasicSR's RRDBNet. ``ups`` (default 2, BasicSR's only value) is how many nearest x2 +
    conv_upK steps there are: KAIR's BSRGAN x2 has one, the old ESRGAN files have log2(scale)."""

    def __init__(self, num_in_ch, num_out_ch, scale=4, num_feat=64, num_block=23, num_grow_ch=32, ups=2):
        super().__init__()
        self.scale = scale
        if scale == 2 and ups == 2:
            num_in_ch = num_in_ch * 4
        elif scale == 1 and ups == 2:
            num_in_ch = num_in_ch * 16
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RefRRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.ups = ups
        for k in range(1, ups + 1):
            setattr(self, f"conv_up{k}", nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x):
        if self.scale == 2 and self.ups == 2:
            feat = basicsr_pixel_unshuffle(x, scale=2)
        elif self.scale == 1 and self.ups == 2:
            feat = basicsr_pixel_unshuffle(x, scale=4)
        else:
            feat = x
        feat = self.conv_first(feat)
        body_feat = self.conv_body(self.body(feat))
        feat = feat + body_feat
        for k in range(1, self.ups + 1):
            feat = self.lrelu(getattr(self, f"conv_up{k}")(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


class PaddedRef(RefRRDBNet):
    """For sizes the pixel-unshuffle does not divide (BasicSR's refuses them), the way round
    written out: repeat the last row and column up to a multiple, run, crop the output."""

    def forward(self, x):
        u = {1: 4, 2: 2}.get(self.scale, 1) if self.ups == 2 else 1
        h, w = x.shape[-2:]
        rows = [min(i, h - 1) for i in range(-(-h // u) * u)]
        cols = [min(j, w - 1) for j in range(-(-w // u) * u)]
        out = super().forward(x[..., rows, :][..., cols])
        return out[..., : h * self.scale, : w * self.scale]


# --------------------------------------------------------------------------------------------
# the other layouts, as mappings of BasicSR's key names

_ESRGAN_TOP = {"conv_body": "trunk_conv", "conv_hr": "HRconv"}


def esrgan_key(key: str) -> str:
    """BasicSR name -> xinntao/ESRGAN RRDBNet_arch.py name."""
    if m := re.match(r"^body\.(\d+)\.rdb(\d)\.(conv\d)\.(weight|bias)$", key):
        return f"RRDB_trunk.{m[1]}.RDB{m[2]}.{m[3]}.{m[4]}"
    stem, kind = key.rsplit(".", 1)
    if m := re.match(r"^conv_up(\d)$", stem):
        return f"upconv{m[1]}.{kind}"
    return f"{_ESRGAN_TOP.get(stem, stem)}.{kind}"


def old_key(key: str, num_block: int, ups: int) -> str:
    """BasicSR name -> old ESRGAN name: model.0 conv, model.1 ShortcutBlock(sub = RRDBs + conv)
    whose dense-block convs sit in Sequentials (.0), then [Upsample, conv, LeakyReLU] per x2,
    HR conv, LeakyReLU, last conv."""
    if m := re.match(r"^body\.(\d+)\.rdb(\d)\.(conv\d)\.(weight|bias)$", key):
        return f"model.1.sub.{m[1]}.RDB{m[2]}.{m[3]}.0.{m[4]}"
    stem, kind = key.rsplit(".", 1)
    if m := re.match(r"^conv_up(\d)$", stem):
        return f"model.{3 * int(m[1])}.{kind}"
    index = {"conv_first": "0", "conv_body": f"1.sub.{num_block}", "conv_hr": str(3 * ups + 2),
             "conv_last": str(3 * ups + 4)}[stem]
    return f"model.{index}.{kind}"


def in_layout(sd, layout: str, num_block: int, ups: int) -> OrderedDict[str, torch.Tensor]:
    if layout == "basicsr":
        return OrderedDict(sd)
    rename = esrgan_key if layout == "esrgan" else (lambda k: old_key(k, num_block, ups))
    return OrderedDict((rename(k), v) for k, v in sd.items())


def randomised(sd, seed: int):
    g = torch.Generator().manual_seed(seed)
    # non-zero biases too: a bias mix-up must show in the output
    return OrderedDict((k, 0.1 * torch.randn(v.shape, generator=g)) for k, v in sd.items())


def make_ref(layout, scale, num_feat=8, num_block=2, num_grow_ch=4, in_ch=3, out_ch=3, seed=0):
    """(reference module with random weights, its state dict in ``layout``'s names)."""
    ups = 2 if layout == "basicsr" else scale.bit_length() - 1
    ref = RefRRDBNet(in_ch, out_ch, scale, num_feat, num_block, num_grow_ch, ups=ups)
    sd = randomised(ref.state_dict(), seed)
    ref.load_state_dict(sd)
    return ref.eval(), in_layout(sd, layout, num_block, ups)


def lr_image(side=16, channels=3, seed=0):
    return torch.rand(1, channels, side, side, generator=torch.Generator().manual_seed(seed))


# layouts and scales the released checkpoints come in: BasicSR/Real-ESRGAN x1, x2 (unshuffle),
# x4; ESRGAN x4 and BSRGAN x2 (one up conv); old ESRGAN x1, x2, x4, x8
CASES = [("basicsr", 1), ("basicsr", 2), ("basicsr", 4), ("esrgan", 2), ("esrgan", 4),
         ("old", 1), ("old", 2), ("old", 4), ("old", 8)]


# --------------------------------------------------------------------------------------------
# same weights, same outputs

@pytest.mark.parametrize("layout,scale", CASES, ids=[f"{a}-x{s}" for a, s in CASES])
def test_plugin_equals_reference(layout, scale):
    ref, sd = make_ref(layout, scale, seed=scale)
    model = default_registry().model_from_state_dict(dict(sd))
    assert model.arch_name == "rrdbnet" and model.hyperparameters["layout"] == layout
    assert model.scale == scale
    assert list(model.module.state_dict()) == list(sd)  # the checkpoint's own names, in its order
    x = lr_image(16, seed=scale)
    with torch.no_grad():
        got = model.module(x)
        same32 = ref(x)
        expected = ref.double()(x.double())
    assert got.shape == (1, 3, 16 * scale, 16 * scale)
    # Against the float64 reference the plugin's error is its own float32 rounding: an output
    # carries ~n = depth x fan-in roundings (<= 15,600 here), whose statistical size √n·2⁻²⁴ is
    # below 7.5e-6 of the values' size (tests/tolerances.py); 1e-5 covers it, while a wrong
    # weight, slope or residual scale moves the output by percents.
    assert walk(network_terms(ref), safety=1) <= 1e-5
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))
    # the same float32 operations in the same order as BasicSR's class (measured: bitwise equal)
    torch.testing.assert_close(got, same32, rtol=1e-5, atol=1e-5 * float(same32.abs().max()))


@pytest.mark.parametrize("scale,height,width", [(2, 7, 8), (1, 9, 6), (1, 1, 3)])
def test_sizes_the_unshuffle_does_not_divide_are_padded_and_cropped(scale, height, width):
    ref, sd = make_ref("basicsr", scale, seed=5)
    padded = PaddedRef(3, 3, scale, 8, 2, 4)
    padded.load_state_dict(ref.state_dict())
    model = default_registry().model_from_state_dict(dict(sd))
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(height))
    with torch.no_grad():
        got = model.module(x)
        expected = padded.double()(x.double())
    assert got.shape == (1, 3, height * scale, width * scale)
    # the plugin's float32 rounding against float64 (see test_plugin_equals_reference)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


def test_full_size_key_names_match_the_published_ones():
    """ESRGAN/Real-ESRGAN x4 64/23/32: 702 keys in each layout, as in RealESRGAN_x4plus.pth,
    RRDB_ESRGAN_x4.pth and RRDB_ESRGAN_x4_old_arch.pth."""
    arch = default_registry().get("rrdbnet")
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        ref_sd = RefRRDBNet(3, 3, 4, 64, 23, 32).state_dict()
        for layout in ("basicsr", "esrgan", "old"):
            expected = in_layout(ref_sd, layout, 23, 2)
            own = arch.build(dict(layout=layout, num_feat=64, num_block=23, num_grow_ch=32, scale=4)).state_dict()
            assert list(own) == list(expected), layout
            assert all(own[k].shape == expected[k].shape for k in own), layout
            assert arch.hyperparameters(expected) == dict(layout=layout, num_in_ch=3, num_out_ch=3, num_feat=64,
                                                          num_block=23, num_grow_ch=32, unshuffle=1, scale=4)
    filters = sum(v.shape[0] * v.shape[1] for v in ref_sd.values() if v.ndim == 4)
    assert len(ref_sd) == 702 and filters == 1_853_824
    old = in_layout(ref_sd, "old", 23, 2)
    for key in ("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight", "model.1.sub.22.RDB3.conv5.0.bias",
                "model.1.sub.23.weight", "model.3.weight", "model.6.weight", "model.8.weight", "model.10.bias"):
        assert key in old


# --------------------------------------------------------------------------------------------
# detection and hyper-parameters from a state dict alone

@pytest.mark.parametrize("layout", ["basicsr", "esrgan", "old"])
def test_detection_from_the_state_dict_alone(layout):
    reg = default_registry()
    _, sd = make_ref(layout, 4)
    assert reg.detect(sd).name == "rrdbnet"
    for other in reg.architectures:
        if other.name != "rrdbnet":
            assert not other.detect(sd), f"{other.name} claims an RRDBNet ({layout} layout)"


@pytest.mark.parametrize("make", [lambda s: BasicSRMSRResNet(3, 3, 8, 2, s), lambda s: PaperSRCNN((4, 5), s)],
                         ids=["msrresnet", "srcnn_style"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_rrdbnet_claims_no_other_family(make, scale):
    reg = default_registry()
    sd = make(scale).state_dict()
    assert not reg.get("rrdbnet").detect(sd)
    assert reg.detect(sd).name != "rrdbnet"


SIZES = [  # layout, num_feat, num_block, growth, scale, in, out
    ("basicsr", 8, 1, 4, 1, 3, 3), ("basicsr", 12, 3, 6, 2, 3, 3), ("basicsr", 6, 2, 5, 4, 1, 1),
    ("basicsr", 16, 4, 8, 4, 3, 3), ("esrgan", 10, 2, 3, 4, 3, 3), ("esrgan", 8, 1, 4, 2, 3, 3),
    ("old", 8, 3, 4, 4, 3, 3), ("old", 6, 1, 2, 2, 1, 1), ("old", 5, 2, 3, 8, 3, 3), ("old", 7, 1, 4, 1, 3, 3),
]


@pytest.mark.parametrize("layout,nf,nb,gc,scale,cin,cout", SIZES)
def test_hyperparameters_inferred_from_shapes(layout, nf, nb, gc, scale, cin, cout):
    arch = default_registry().get("rrdbnet")
    ups = 2 if layout == "basicsr" else scale.bit_length() - 1
    with torch.device("meta"):
        sd = in_layout(RefRRDBNet(cin, cout, scale, nf, nb, gc, ups=ups).state_dict(), layout, nb, ups)
        hp = arch.hyperparameters(sd)
        assert (hp["layout"], hp["num_feat"], hp["num_block"], hp["num_grow_ch"], hp["scale"]) == (layout, nf, nb, gc, scale)
        assert (hp["num_in_ch"], hp["num_out_ch"]) == (cin, cout)
        rebuilt = arch.build(hp).state_dict()
    assert list(rebuilt) == list(sd) and all(rebuilt[k].shape == sd[k].shape for k in sd)


# --------------------------------------------------------------------------------------------
# checkpoint files

@pytest.mark.parametrize("layout,scale", [("basicsr", 2), ("esrgan", 4), ("old", 4)])
def test_round_trip_through_files(tmp_path, layout, scale):
    reg = default_registry()
    ref, sd = make_ref(layout, scale, seed=7)
    x = lr_image(16, seed=3)
    with torch.no_grad():
        expected = ref(x)
    noise = randomised(sd, seed=99)  # 'params' beside the EMA weights: must not be the ones loaded
    paths = {"ema.pth": lambda p: save_checkpoint(p, noise, params_ema=sd),
             "bare.safetensors": lambda p: save_checkpoint(p, sd)}
    for name, write in paths.items():
        write(tmp_path / name)
        model = reg.load_model(tmp_path / name)
        assert model.arch_name == "rrdbnet" and model.scale == scale, name
        # safetensors sorts keys by name; the module's order (the checkpoint's) numbers the filters
        assert list(model.state_dict) == list(sd), name
        assert all(torch.equal(model.state_dict[k], sd[k]) for k in sd), name
        with torch.no_grad():
            torch.testing.assert_close(model.module(x), expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))
    base, targ = reg.load_pair(tmp_path / "ema.pth", tmp_path / "bare.safetensors")
    assert base.hyperparameters == targ.hyperparameters


def test_loading_skips_the_random_initialisation_and_training_keeps_it():
    """The registry builds with build_unfilled (weights left for the checkpoint to fill): same
    names, shapes and plain nn.Conv2d layers as build; a state dict for training from scratch is
    still PyTorch's default conv initialisation, uniform within ±1/sqrt(fan-in)."""
    arch = default_registry().get("rrdbnet")
    hp = dict(layout="old", num_feat=8, num_block=2, num_grow_ch=4, scale=4)
    empty, full = arch.build_unfilled(hp), arch.build(hp)
    assert [(k, v.shape) for k, v in empty.state_dict().items()] == [(k, v.shape) for k, v in full.state_dict().items()]
    assert [type(m) for m in empty.modules()] == [type(m) for m in full.modules()]
    first, second = arch.new_state_dict(**hp), arch.new_state_dict(**hp)
    for name, value in first.items():
        conv = name.rsplit(".", 1)[0] + ".weight"
        bound = 1 / float(np.sqrt(np.prod(first[conv].shape[1:])))
        assert not torch.equal(value, second[name]), name
        assert float(value.abs().max()) <= bound, name
        if value.ndim == 4:  # uniform on ±bound: standard deviation bound/sqrt(3)
            assert float(value.std()) > 0.45 * bound, name


def test_layer_labels_name_the_block_and_keep_the_parameter_name():
    arch = default_registry().get("rrdbnet")
    for name in ("body.17.rdb3.conv3.weight", "RRDB_trunk.17.RDB3.conv3.weight", "model.1.sub.17.RDB3.conv3.0.weight"):
        assert arch.layer_label(name) == "RRDB 17 · RDB 3 · conv3"
    assert [arch.layer_label(k) for k in ("conv_body.weight", "trunk_conv.weight", "model.1.sub.23.weight")] == ["trunk conv"] * 3
    assert [arch.layer_label(k) for k in ("conv_up2.weight", "upconv2.weight", "model.6.weight")] == ["up conv 2"] * 3
    assert [arch.layer_label(k) for k in ("conv_hr.weight", "HRconv.weight", "model.8.weight")] == ["HR conv"] * 3
    assert [arch.layer_label(k) for k in ("conv_last.weight", "model.10.weight", "model.7.weight")] == ["conv_last"] * 3
    assert arch.layer_label("model.5.weight") == "HR conv"  # x2: one up-sampling, HR conv at model.5
    # the filter IDs stay the parameter names: a loaded model keeps them
    _, sd = make_ref("old", 4)
    model = default_registry().model_from_state_dict(dict(sd))
    assert "model.1.sub.1.RDB3.conv3.0.weight" in model.state_dict


@pytest.mark.parametrize("layout", ["basicsr", "old"])
def test_graph_traces_every_conv_in_order(layout):
    _, sd = make_ref(layout, 2 if layout == "basicsr" else 4)
    model = default_registry().model_from_state_dict(dict(sd))
    graph = graph_for(model)
    assert graph.traced, graph.note
    # the network runs its convs in state-dict order (that is how the checkpoints are written)
    assert [n.weight for n in graph.convs()] == [k for k, v in sd.items() if k.endswith("weight") and v.ndim == 4]
    assert sum(n.kind == "upsample" for n in graph.nodes) == 2


def test_masked_render_reruns_the_late_part_and_matches_the_reference():
    """The window's masked render (incremental replay of the fx graph) on an RRDBNet: masking
    filters of the last dense block and of an up conv gives the reference net's output for
    the masked weights (kernels replaced by the baseline's, numbered by walking the state dict),
    and reruns only the part of the graph after the first masked layer."""
    ref, base_sd = make_ref("basicsr", 2, seed=1)
    _, targ_sd = make_ref("basicsr", 2, seed=2)
    reg = default_registry()
    targ = reg.model_from_state_dict(dict(targ_sd))
    inc = IncrementalForward(targ.module, traced_graph(targ))
    x = lr_image(8, seed=4)
    with torch.no_grad():
        inc.run(x, targ.state_dict)
    chosen = {"body.1.rdb3.conv5.weight": [(0, 3), (7, 20)], "conv_up2.weight": [(2, 2), (5, 0)]}
    literal, indices, offset = OrderedDict(), [], 0
    for name, value in targ_sd.items():
        value = value.clone()
        if name.endswith("weight") and value.ndim == 4:
            for o, i in chosen.get(name, []):
                value[o, i] = base_sd[name][o, i]
                indices.append(offset + o * value.shape[1] + i)
            offset += value.shape[0] * value.shape[1]
        literal[name] = value
    ref.load_state_dict(literal)
    with torch.no_grad():
        expected = ref(x)
        got = inc.run(x, masked_state_dict(targ.state_dict, base_sd, FilterMask(np.array(indices))))
    # the same float32 operations as the reference (see test_plugin_equals_reference)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))
    assert 0 < inc.last_recomputed < len(inc.nodes) // 4


# --------------------------------------------------------------------------------------------
# FAIG on a tiny RRDBNet pair against the literal path sum (docs/method.md), in float64

def literal_faig(ref_factory, base_sd, targ_sd, lr, hr, steps: int) -> np.ndarray:
    """Σ_kernel |(θ̄ − θ) ⊙ (1/N) Σ_s ∂L/∂θ|_θ(s/N)| per filter: the reference net rebuilt in float64
    at each step, the sums as loops, filters numbered by walking the state dict."""
    grad_sum = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in targ_sd.items()}
    for s in range(steps):
        alpha = s / steps
        net = ref_factory().double()
        net.load_state_dict({k: alpha * base_sd[k].double() + (1 - alpha) * targ_sd[k].double() for k in targ_sd})
        ((net(lr.double()) - hr.double()) ** 2).sum().backward()
        for name, p in net.named_parameters():
            grad_sum[name] += p.grad
    values = []
    for name, t in targ_sd.items():
        if not (name.endswith("weight") and t.ndim == 4):
            continue
        prod = (base_sd[name].double() - t.double()) * grad_sum[name] / steps
        for o in range(t.shape[0]):
            for i in range(t.shape[1]):
                values.append(float(prod[o, i].abs().sum()))
    return np.array(values)


@pytest.mark.parametrize("layout,chunk,side", [("basicsr", 1, 8), ("basicsr", 3, 8), ("basicsr", 2, 7), ("old", 2, 8)])
def test_faig_on_rrdbnet_matches_the_literal_path_sum(layout, chunk, side):
    scale, ups = (2, 2) if layout == "basicsr" else (4, 2)
    factory = lambda: PaddedRef(3, 3, scale, 8, 2, 4, ups=ups)  # noqa: E731  (pads only odd sizes)
    torch.manual_seed(11)
    base_ref = randomised(factory().state_dict(), seed=11)
    # the target is the baseline moved as by a fine-tune; biases move too
    g = torch.Generator().manual_seed(12)
    targ_ref = OrderedDict((k, v + 0.3 * v.abs().mean() * torch.randn(v.shape, generator=g)) for k, v in base_ref.items())
    reg = default_registry()
    base = reg.model_from_state_dict(in_layout(base_ref, layout, 2, ups))
    targ = reg.model_from_state_dict(in_layout(targ_ref, layout, 2, ups))
    lr = lr_image(side, seed=5)
    hr = torch.rand(1, 3, side * scale, side * scale, generator=torch.Generator().manual_seed(6))
    steps = 4
    ours = faig_attribution(targ.module, base.state_dict, targ.state_dict, lr, hr,
                            options=PathOptions(riemann_left(steps), chunk=chunk))
    ref = literal_faig(factory, base_ref, targ_ref, lr, hr, steps)  # same order: the mapping keeps it
    assert ours.shape == ref.shape and (ref > 0).mean() > 0.9
    # float32 path gradients against float64: each carries the roundings of the forward and the
    # backward chain (36 convs, fan-in <= 217), the sum over the HR pixels and the steps; γ_n of
    # each value with a floor of γ_n of the largest, as tests/core/test_attribution.py allows.
    # A LeakyReLU input within rounding of zero may take the other side in float32: a few
    # filters (<= 5 %) may move by up to 1e-3 of the largest value.
    n = 2 * network_terms(factory()) + hr.numel() // 3 + steps
    largest = np.abs(ref).max()
    err = np.abs(ours - ref)
    assert (err > gamma(n) * (np.abs(ref) + largest)).mean() <= 0.05
    assert err.max() <= 1e-3 * largest
    k = max(1, len(ref) // 100)
    assert set(np.argsort(-ours, kind="stable")[:k]) == set(np.argsort(-ref, kind="stable")[:k])
