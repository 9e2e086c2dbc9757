"""Architecture plugins: the built-in MSRResNet gives BasicSR's outputs for BasicSR's weights;
a round trip per architecture through every checkpoint wrapping; --arch forcing; discovery of
plugins from folders and entry points, with broken plugins reported and the others kept."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from faig_gui.core import registry as registry_mod
from faig_gui.core.checkpoint import save_checkpoint
from faig_gui.core.errors import FaigError
from faig_gui.core.plugin_api import Architecture
from faig_gui.core.registry import Registry, default_registry
from reference_nets import BasicSRMSRResNet, PaperSRCNN
from tolerances import forward_atol


def _randomise(sd, seed):
    g = torch.Generator().manual_seed(seed)
    # non-zero biases too: BasicSR's init zeroes them, which would hide a bias mix-up
    return OrderedDict((k, 0.1 * torch.randn(v.shape, generator=g)) for k, v in sd.items())


def _lr(side=7, seed=0):
    return torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------
# BasicSR's class, same weights, same outputs

@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("num_feat,num_block", [(4, 1), (6, 3)])
def test_plugin_msrresnet_equals_basicsr_class(scale, num_feat, num_block):
    ref = BasicSRMSRResNet(3, 3, num_feat, num_block, scale)
    sd = _randomise(ref.state_dict(), seed=scale * 10 + num_block)
    ref.load_state_dict(sd)
    model = default_registry().model_from_state_dict(dict(sd))
    assert model.arch_name == "msrresnet"
    assert model.hyperparameters["num_feat"] == num_feat
    assert model.hyperparameters["num_block"] == num_block
    assert model.scale == scale
    assert list(model.module.state_dict()) == list(sd)  # BasicSR's key names, in BasicSR's order
    x = _lr(7, seed=scale)
    with torch.no_grad():
        expected, got = ref(x), model.module(x)
    assert got.shape == (1, 3, 7 * scale, 7 * scale)
    torch.testing.assert_close(got, expected, rtol=0, atol=forward_atol(ref))  # float32, maybe another order


# --------------------------------------------------------------------------------------------
# round trip per architecture through every wrapping seen in the wild

CASES = [("msrresnet", dict(num_feat=4, num_block=2, scale=s), lambda s=s: BasicSRMSRResNet(3, 3, 4, 2, s))
         for s in (2, 3, 4)] + \
        [("srcnn_style", dict(scale=s, widths=(5, 6)), lambda s=s: PaperSRCNN((5, 6), s)) for s in (2, 3, 4)]


def _writers(sd):
    """(file name, writer) for each checkpoint form: BasicSR, safetensors, bare, wrapped, DataParallel."""
    def torch_save(obj):
        return lambda path: torch.save(obj, path)
    return [
        ("basicsr.pth", lambda path: save_checkpoint(path, sd)),
        ("basicsr_ema.pth", lambda path: save_checkpoint(path, _randomise(sd, 99), params_ema=sd)),
        ("bare.safetensors", lambda path: save_checkpoint(path, sd)),
        ("bare.pth", torch_save(OrderedDict(sd))),
        ("state_dict.pt", torch_save({"state_dict": OrderedDict(sd), "epoch": 3})),
        ("model.pth", torch_save({"model": OrderedDict(sd)})),
        ("dataparallel.pth", torch_save(OrderedDict(("module." + k, v) for k, v in sd.items()))),
        ("dataparallel_state_dict.pth", torch_save({"state_dict": OrderedDict(("module." + k, v) for k, v in sd.items())})),
    ]


@pytest.mark.parametrize("arch,hp,build", CASES, ids=[f"{c[0]}-x{c[1]['scale']}" for c in CASES])
def test_round_trip(tmp_path, arch, hp, build, registry):
    sd = _randomise(registry.get(arch).new_state_dict(**hp), seed=hp["scale"])
    ref = build()
    ref.load_state_dict(sd)  # the reference class accepts the plugin's keys and shapes
    x = _lr(6, seed=1)
    with torch.no_grad():
        expected = ref(x)
    first = None
    for name, write in _writers(sd):
        path = tmp_path / name
        write(path)
        model = registry.load_model(path)
        assert model.arch_name == arch, name
        assert model.scale == hp["scale"], name
        assert list(model.state_dict) == list(sd), f"{name}: parameter names or order changed"
        for k in sd:
            assert torch.equal(model.state_dict[k], sd[k]), f"{name}: {k}"
        first = first or model.hyperparameters
        assert model.hyperparameters == first, name
        with torch.no_grad():
            torch.testing.assert_close(model.module(x), expected, rtol=0, atol=forward_atol(model.module))
    if arch == "msrresnet":
        assert first == {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 4, "num_block": 2, "scale": hp["scale"]}


# --------------------------------------------------------------------------------------------
# --arch, unknown architectures

def test_arch_forcing(tmp_path, registry):
    sd = registry.get("msrresnet").new_state_dict(num_feat=4, num_block=1, scale=2)
    path = tmp_path / "m.pth"
    save_checkpoint(path, sd)
    assert registry.load_model(path, arch="msrresnet").arch_name == "msrresnet"
    with pytest.raises(FaigError) as wrong:
        registry.load_model(path, arch="srcnn_style")
    assert str(path) in str(wrong.value) and "srcnn_style" in str(wrong.value)
    with pytest.raises(FaigError) as unknown:
        registry.load_model(path, arch="no_such_arch")
    assert "no_such_arch" in str(unknown.value) and "msrresnet" in str(unknown.value)


def test_forced_arch_reads_a_layout_detection_would_not_claim(tmp_path):
    # an SRCNN-style net with a x5 shuffle is outside what detect accepts (2, 3, 4, 8) but builds
    sd = default_registry().get("srcnn_style").new_state_dict(scale=5, widths=(4,))
    path = tmp_path / "x5.pth"
    save_checkpoint(path, sd)
    with pytest.raises(FaigError):
        default_registry().load_model(path)
    model = default_registry().load_model(path, arch="srcnn_style")
    assert model.scale == 5
    assert model.module(_lr(4)).shape == (1, 3, 20, 20)


def test_unknown_architecture_lists_the_plugins_tried(tmp_path, registry):
    path = tmp_path / "vgg.pth"
    torch.save({"encoder.0.weight": torch.randn(8, 3, 3, 3), "encoder.0.bias": torch.zeros(8)}, path)
    with pytest.raises(FaigError) as err:
        registry.load_model(path)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg
    for name in registry.names():
        assert name in msg
    assert "msrresnet" in msg and "srcnn_style" in msg


def test_missing_and_extra_keys_for_an_architecture(tmp_path, registry):
    sd = registry.get("msrresnet").new_state_dict(num_feat=4, num_block=2, scale=2)
    missing = dict(sd)
    del missing["body.1.conv2.bias"]
    with pytest.raises(FaigError, match=r"missing keys.*body\.1\.conv2\.bias"):
        registry.model_from_state_dict(missing, arch="msrresnet")
    extra = dict(sd, **{"extra.weight": torch.zeros(3)})
    with pytest.raises(FaigError, match=r"unexpected keys.*extra\.weight"):
        registry.model_from_state_dict(extra, arch="msrresnet")


# --------------------------------------------------------------------------------------------
# discovery: folders, $FAIG_GUI_PLUGIN_PATH, entry points

GOOD_PLUGIN = '''
from torch import nn
from faig_gui.core.plugin_api import Architecture, shape


class Tiny(nn.Module):
    def __init__(self, width, scale):
        super().__init__()
        self.head = nn.Conv2d(3, width, 3, 1, 1)
        self.tail = nn.Conv2d(width, 3 * scale * scale, 1)
        self.up = nn.PixelShuffle(scale)

    def forward(self, x):
        return self.up(self.tail(self.head(x)))


class TinyArch(Architecture):
    name = "tiny_folder"

    def detect(self, sd):
        return shape(sd, "head.weight") is not None and shape(sd, "tail.weight") is not None

    def hyperparameters(self, sd):
        width = sd["head.weight"].shape[0]
        return {"width": width, "scale": int(round((sd["tail.weight"].shape[0] / 3) ** 0.5))}

    def build(self, hp):
        return Tiny(hp["width"], hp["scale"])


ARCHITECTURES = [TinyArch]
'''


def _plugin_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "a_broken.py").write_text("import torch\nraise RuntimeError('plugin exploded on import')\n")
    (folder / "b_syntax.py").write_text("def oops(:\n")
    (folder / "c_good.py").write_text(GOOD_PLUGIN)
    (folder / "d_empty.py").write_text("X = 1\n")
    (folder / "_private.py").write_text("raise RuntimeError('never imported')\n")
    return folder


def test_broken_plugin_files_are_reported_and_the_others_load(tmp_path):
    reg = Registry()
    reg.load_folder(_plugin_folder(tmp_path))
    assert reg.names() == ["tiny_folder"]
    failed = {Path(src).name: why for src, why in reg.failures}
    assert set(failed) == {"a_broken.py", "b_syntax.py", "d_empty.py"}
    assert "plugin exploded on import" in failed["a_broken.py"]
    assert "SyntaxError" in failed["b_syntax.py"]
    assert "ARCHITECTURES" in failed["d_empty.py"]
    # the good one works end to end
    sd = {"head.weight": torch.randn(4, 3, 3, 3), "head.bias": torch.zeros(4),
          "tail.weight": torch.randn(12, 4, 1, 1), "tail.bias": torch.zeros(12)}
    model = reg.model_from_state_dict(sd)
    assert model.arch_name == "tiny_folder" and model.scale == 2
    assert model.module(_lr(5)).shape == (1, 3, 10, 10)


def test_plugin_path_environment_adds_folders_to_the_default_registry(tmp_path, monkeypatch):
    monkeypatch.setenv(registry_mod.PLUGIN_PATH_ENV, str(_plugin_folder(tmp_path)))
    monkeypatch.setattr(registry_mod, "_DEFAULT", None)
    reg = default_registry()
    # the built-in folder first (its files in name order), then the folders of the variable
    assert reg.names().index("msrresnet") < reg.names().index("srcnn_style") < reg.names().index("tiny_folder")
    assert "tiny_folder" in reg.names()
    assert {Path(src).name for src, _ in reg.failures} == {"a_broken.py", "b_syntax.py", "d_empty.py"}


class _EntryTiny(Architecture):
    name = "tiny_entry"

    def detect(self, sd):
        return "only.weight" in sd

    def hyperparameters(self, sd):
        return {"scale": 1, "channels": sd["only.weight"].shape[0]}

    def build(self, hp):
        net = nn.Module()
        net.only = nn.Conv2d(3, hp["channels"], 1)
        net.forward = lambda x: net.only(x)
        return net


def test_entry_point_plugins(monkeypatch):
    def load_fail():
        raise ImportError("package half-installed")
    eps = [SimpleNamespace(name="tiny", load=lambda: _EntryTiny),
           SimpleNamespace(name="listed", load=lambda: [_EntryTiny()]),  # duplicate name: reported
           SimpleNamespace(name="broken", load=load_fail)]
    seen = {}

    def fake_entry_points(group):
        seen["group"] = group
        return eps
    monkeypatch.setattr(registry_mod, "entry_points", fake_entry_points)
    reg = Registry()
    reg.load_entry_points()
    assert seen["group"] == "faig_gui.architectures"
    assert reg.names() == ["tiny_entry"]
    failed = dict(reg.failures)
    assert "package half-installed" in failed["entry point broken"]
    assert "duplicate" in failed["entry point listed"]
    model = reg.model_from_state_dict({"only.weight": torch.randn(3, 3, 1, 1), "only.bias": torch.zeros(3)})
    assert model.arch_name == "tiny_entry"
