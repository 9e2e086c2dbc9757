"""docs/plugins.md's worked example is a working plugin: the test cuts the file out of the
markdown, loads it through $FAIG_GUI_PLUGIN_PATH like a user would, and opens an ESPCN
checkpoint (written here from an independent ESPCN class) with the registry and the CLI."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from faig_gui.cli import main
from faig_gui.core import registry as registry_mod
from faig_gui.core.checkpoint import save_checkpoint
from faig_gui.core.filters import FilterIndex
from faig_gui.core.imageio import read_image, write_image
from faig_gui.core.registry import default_registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def example_source() -> str:
    text = DOC.read_text(encoding="utf-8")
    m = re.search(r"<!-- plugin-example:start -->\s*```python\n(.*?)```\s*<!-- plugin-example:end -->", text, re.S)
    assert m, "docs/plugins.md lost its marked plugin example"
    return m.group(1)


class PaperESPCN(nn.Module):
    """ESPCN as published (Shi et al. 2016): 5x5 conv + tanh, 3x3 conv + tanh, 3x3 conv to
    C·r² channels, pixel shuffle; the common PyTorch port's key names."""

    def __init__(self, scale, num_channels=3):
        super().__init__()
        self.first_part = nn.Sequential(nn.Conv2d(num_channels, 64, kernel_size=5, padding=5 // 2), nn.Tanh(),
                                        nn.Conv2d(64, 32, kernel_size=3, padding=3 // 2), nn.Tanh())
        self.last_part = nn.Sequential(nn.Conv2d(32, num_channels * (scale ** 2), kernel_size=3, padding=3 // 2),
                                       nn.PixelShuffle(scale))

    def forward(self, x):
        return self.last_part(self.first_part(x))


@pytest.fixture
def doc_plugin(tmp_path, monkeypatch):
    folder = tmp_path / "my_plugins"
    folder.mkdir()
    (folder / "espcn.py").write_text(example_source(), encoding="utf-8")
    monkeypatch.setenv(registry_mod.PLUGIN_PATH_ENV, str(folder))
    monkeypatch.setattr(registry_mod, "_DEFAULT", None)   # rebuilt from the environment
    yield default_registry()
    monkeypatch.setattr(registry_mod, "_DEFAULT", None)


@pytest.mark.parametrize("scale", [2, 3])
def test_the_documented_plugin_opens_an_espcn_checkpoint(tmp_path, doc_plugin, scale):
    reg = doc_plugin
    assert not [f for f in reg.failures if "espcn" in f[0]], reg.failures
    assert "espcn" in reg.names()
    ref = PaperESPCN(scale)
    torch.manual_seed(scale)
    for p in ref.parameters():
        nn.init.normal_(p, std=0.1)
    path = tmp_path / f"espcn_x{scale}.pth"
    save_checkpoint(path, ref.state_dict())
    model = reg.load_model(path)
    assert model.arch_name == "espcn" and model.scale == scale
    assert model.hyperparameters == {"scale": scale, "channels": 3, "feat": 64, "mid": 32}
    x = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        # the same float32 convolutions on the same shapes: equal to a few ulps
        torch.testing.assert_close(model.module(x), ref(x), rtol=1e-5, atol=1e-6)
    assert model.architecture.layer_label("last_part.0.weight") == "sub-pixel conv"
    index = FilterIndex.of_model(model)
    assert index.total == 64 * 3 + 32 * 64 + 3 * scale * scale * 32
    # the built-in families do not claim it, nor it theirs
    assert reg.detect(reg.get("msrresnet").new_state_dict(num_feat=4, num_block=1, scale=2)).name == "msrresnet"


def test_the_documented_command_runs_with_the_plugin(tmp_path, doc_plugin, capsys):
    ref = PaperESPCN(3)
    path = tmp_path / "espcn_x3.pth"
    save_checkpoint(path, ref.state_dict())
    write_image(tmp_path / "photo.png", np.random.default_rng(0).random((5, 7, 3)))
    rc = main(["run", "--checkpoint", str(path), "--input", str(tmp_path / "photo.png"), "--out", str(tmp_path / "sr")])
    assert rc == 0, capsys.readouterr().err
    assert read_image(tmp_path / "sr" / "photo.png").shape == (15, 21, 3)
