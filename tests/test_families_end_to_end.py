"""Issue 16, "Done when": analyze, mask, evaluate and predict on a pair of each architecture family
in each key layout it has in released checkpoints (RRDBNet: BasicSR, ESRGAN, old model.N; EDSR:
BasicSR and EDSR-PyTorch; SRVGGNetCompact; RCAN), made here at tiny widths, and a save/load round
trip giving the same outputs. Each case runs the real commands through faig_gui.cli.main on 16x16
HR images with 2 path steps (a couple of seconds). FAIG against the slow literal path sum per
family is in tests/plugins/test_<family>.py (plugin_checks.check_faig_matches_literal)."""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from faig_gui.cli import main
from faig_gui.core.filters import FilterIndex
from faig_gui.core.imageio import read_image, write_image
from faig_gui.core.registry import default_registry

# (family, hyper-parameters, how released checkpoints of that layout are stored)
FAMILIES = {
    "rrdbnet-basicsr": ("rrdbnet", {"num_feat": 4, "num_block": 1, "num_grow_ch": 2, "scale": 2,
                                    "layout": "basicsr"}, "basicsr"),
    "rrdbnet-esrgan": ("rrdbnet", {"num_feat": 4, "num_block": 1, "num_grow_ch": 2, "scale": 2,
                                   "layout": "esrgan"}, "bare"),
    "rrdbnet-old": ("rrdbnet", {"num_feat": 4, "num_block": 1, "num_grow_ch": 2, "scale": 2, "layout": "old"},
                    "bare"),
    "edsr-basicsr": ("edsr", {"num_feat": 4, "num_block": 1, "scale": 2, "layout": "basicsr"}, "basicsr"),
    "edsr-original": ("edsr", {"num_feat": 4, "num_block": 1, "scale": 2, "layout": "original"}, "bare"),
    "srvgg": ("srvgg", {"num_feat": 4, "num_conv": 2, "scale": 2, "act_type": "prelu"}, "basicsr"),
    "rcan": ("rcan", {"num_feat": 4, "num_group": 1, "num_block": 1, "squeeze_factor": 2, "scale": 2}, "basicsr"),
    "rcan-original": ("rcan", {"num_feat": 4, "num_group": 1, "num_block": 1, "squeeze_factor": 2, "scale": 2,
                               "layout": "original"}, "bare"),
}
HR_SIDE = 16


def _random(sd, seed: int) -> OrderedDict[str, torch.Tensor]:
    # random values everywhere, biases included (zero biases would hide a bias mix-up); buffers
    # such as EDSR's mean shift keep their values
    g = torch.Generator().manual_seed(seed)
    return OrderedDict((k, 0.2 * torch.randn(v.shape, generator=g) if v.is_floating_point() and "mean" not in k
                        and k.split(".")[-1] in ("weight", "bias") else v.clone()) for k, v in sd.items())


def _save(path: Path, sd, how: str) -> None:
    # BasicSR writes {'params': sd}; ESRGAN's, the old model.N and EDSR-PyTorch's releases are bare
    torch.save({"params": dict(sd)} if how == "basicsr" else dict(sd), path)


def _hr_image(rng: np.random.Generator, side: int) -> np.ndarray:
    y, x = np.mgrid[0:side, 0:side]
    img = 0.5 + 0.3 * np.sin(x / rng.uniform(1.5, 4))[..., None] * np.cos(y / rng.uniform(2, 5))[..., None]
    return np.clip(img * np.array([1, 0.7, 0.4]) + 0.05 * rng.standard_normal((side, side, 3)), 0, 1)


def write_pair(d: Path, name: str) -> dict:
    """A baseline and a target (the baseline plus a perturbation, like a fine-tune) of the family
    and layout ``name`` of FAMILIES, saved in ``d`` as that layout's releases are."""
    family, hp, how = FAMILIES[name]
    reg = default_registry()
    base = _random(reg.get(family).new_state_dict(**hp), seed=1)
    g = torch.Generator().manual_seed(2)
    targ = OrderedDict((k, v + 0.1 * torch.randn(v.shape, generator=g) if v.dim() >= 1
                        and v.is_floating_point() and "mean" not in k else v.clone()) for k, v in base.items())
    _save(d / "baseline.pth", base, how)
    _save(d / "target.pth", targ, how)
    return {"name": name, "family": family, "hp": hp, "dir": d, "base": base, "targ": targ}


@pytest.fixture(scope="module", params=list(FAMILIES))
def pair(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    made = write_pair(d, request.param)
    rng = np.random.default_rng(0)
    for i in range(4):
        write_image(d / "hr" / f"im{i}.png", _hr_image(rng, HR_SIDE))
    return made


def _run(capsys, *argv) -> str:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


def _sr(sd, lr: np.ndarray) -> np.ndarray:
    """The output of a module the registry builds for ``sd``, as an image in [0, 1] (HWC)."""
    model = default_registry().model_from_state_dict(dict(sd))
    x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1)))[None].float()
    with torch.no_grad():
        y = model.module.eval()(x)
    return y[0].clamp(0, 1).permute(1, 2, 0).numpy()


def test_round_trip_detects_the_family_and_gives_the_same_outputs(pair):
    reg = default_registry()
    d = pair["dir"]
    loaded = reg.load_model(d / "target.pth")
    assert loaded.arch_name == pair["family"]
    assert loaded.scale == 2
    assert list(loaded.state_dict) == list(pair["targ"])   # the checkpoint's own names are the filter IDs
    direct = reg.get(pair["family"]).build(pair["hp"])
    direct.load_state_dict(pair["targ"])
    x = torch.rand(1, 3, 7, 6, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = direct.eval()(x)
        assert torch.equal(loaded.module.eval()(x), expected)
    # saved again (safetensors, keys stored sorted) and read back: the same architecture and outputs
    from faig_gui.core.checkpoint import save_checkpoint
    save_checkpoint(d / "again.safetensors", loaded.state_dict)
    again = reg.load_model(d / "again.safetensors")
    assert again.hyperparameters == loaded.hyperparameters
    assert list(again.state_dict) == list(pair["targ"])
    with torch.no_grad():
        assert torch.equal(again.module.eval()(x), expected)


def test_analyze_mask_evaluate_predict(pair, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FAIG_GUI_CACHE_DIR", str(tmp_path / "cache"))
    d = pair["dir"]
    duo = ["--baseline", d / "baseline.pth", "--target", d / "target.pth"]
    total = FilterIndex.from_state_dict(default_registry().load_model(d / "target.pth").state_dict).total
    # analyze: one score per filter and degradation, ranked in the index files
    _run(capsys, "analyze", *duo, "--hr", d / "hr", "--steps", "2", "--device", "cpu", "--out", tmp_path / "an")
    with np.load(tmp_path / "an" / "scores.npz") as npz:
        scores = {k: npz[k] for k in npz.files}
    assert set(scores) == {"blur", "noise"}
    for name, s in scores.items():
        assert s.shape == (total,) and np.isfinite(s).all() and np.abs(s).max() > 0
        order = [int(v) for v in (tmp_path / "an" / f"{name}_index.txt").read_text().split()]
        assert order == np.argsort(-s, kind="stable").tolist()
    report = json.loads((tmp_path / "an" / "report.json").read_text())
    assert report["architecture"] == pair["family"] and report["filter_count"] == total

    # mask every filter: the masked output is the net with the baseline's kernels (every conv
    # weight) and the target's everything else, computed here through a freshly built module
    lr = np.random.default_rng(5).random((8, 8, 3))
    write_image(tmp_path / "lr.png", lr)
    lr = read_image(tmp_path / "lr.png")   # (8-bit, as the command reads it)
    _run(capsys, "mask", *duo, "--scores", tmp_path / "an" / "scores.npz", "--degradation", "blur",
         "--proportion", "100", "--input", tmp_path / "lr.png", "--device", "cpu", "--out", tmp_path / "mask")
    base, targ = pair["base"], pair["targ"]
    expected = _sr(OrderedDict((k, base[k] if v.dim() == 4 else v) for k, v in targ.items()), lr)
    got = read_image(tmp_path / "mask" / "lr_masked.png")
    # the command writes 8-bit PNGs: rounding to the nearest level, plus float32 ulps
    assert np.abs(got - np.round(expected * 255) / 255).max() <= 1 / 255 + 1e-6
    target_png = read_image(tmp_path / "mask" / "lr_target.png")
    assert np.abs(target_png - np.round(_sr(targ, lr) * 255) / 255).max() <= 1 / 255 + 1e-6

    # evaluate: rank on half the images, measure on the other half, for every filter layout
    _run(capsys, "evaluate", *duo, "--hr", d / "hr", "--methods", "faig,random", "--proportions", "10",
         "--steps", "2", "--device", "cpu", "--out", tmp_path / "ev")
    ev = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert ev["filter_count"] == total
    for method in ("faig", "random"):
        matrix = ev["effects"][method]["10"]
        assert set(matrix) == {"blur", "noise"}
        assert all(np.isfinite(v) and v >= 0 for row in matrix.values() for v in row.values())

    # predict: calibrated on the analysis images, a verdict with a score per degradation
    out = _run(capsys, "predict", *duo, "--scores", tmp_path / "an" / "scores.npz", "--analysis-hr", d / "hr",
               "--proportion", "10", "--json", "--device", "cpu", tmp_path / "lr.png")
    verdict = json.loads(out.strip().splitlines()[-1])
    assert Path(verdict["image"]).name == "lr.png"
    assert set(verdict["scores"]) >= {"blur", "noise"}
    assert all(np.isfinite(v) for v in verdict["scores"].values())
