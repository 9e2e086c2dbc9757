"""analyze --hr, evaluate and predict take any set of degradations through --degradation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from faig_gui.cli import main
from faig_gui.core.checkpoint import save_checkpoint
from faig_gui.core.imageio import write_image
from faig_gui.core.registry import default_registry
from tolerances import assert_path_sum_close, path_terms

THREE = ["--degradation", "blur", "--degradation", "noise=down,noise:0.05", "--degradation", "jpeg=down,jpeg:25"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli3")
    torch.manual_seed(1)
    base = default_registry().get("msrresnet").new_state_dict(num_feat=4, num_block=1, scale=2)
    targ = {k: v + (v.abs().mean() + 0.05) * torch.randn_like(v) for k, v in base.items()}
    save_checkpoint(d / "baseline.pth", base, params_ema=base)
    save_checkpoint(d / "target.pth", targ, params_ema=targ)
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:24, 0:24]
    for i in range(4):
        img = 0.5 + 0.3 * np.sin(xx / (2.0 + i))[..., None] * np.cos(yy / 3.0)[..., None] * np.array([1, 0.6, 0.3])
        write_image(d / "hr" / f"im{i}.png", np.clip(img + 0.04 * rng.standard_normal((24, 24, 3)), 0, 1))
    return d


def _scores(folder):
    with np.load(folder / "scores.npz") as npz:
        return {k: npz[k] for k in npz.files}


def test_analyze_hr_with_three_degradations_agrees_with_degrade_folders(work, capsys):
    pair = ["--baseline", work / "baseline.pth", "--target", work / "target.pth", "--steps", "3", "--device", "cpu"]
    assert main(["degrade", "--hr", str(work / "hr"), "--out", str(work / "data"), "--seed", "4", *THREE]) == 0
    assert main([str(a) for a in ["analyze", *pair, "--hr", work / "hr", "--seed", "4", "--out", work / "a",
                                  *THREE]]) == 0
    d = work / "data"
    assert main([str(a) for a in ["analyze", *pair, "--gt", d / "GT", "--clean-lr", d / "LR", "--out", work / "b",
                                  *[x for n in ("blur", "noise", "jpeg") for x in ("--degraded", f"{n}={d / n}")]]]) == 0
    capsys.readouterr()
    from_hr, from_dirs = _scores(work / "a"), _scores(work / "b")
    assert list(from_hr) == ["blur", "noise", "jpeg"]
    # the same float32 path sums over the same 8-bit inputs (degrade wrote what analyze made)
    n_terms = 2 * path_terms(default_registry().load_model(work / "target.pth").module, 24 * 24)
    for name in from_hr:
        assert_path_sum_close(from_dirs[name], from_hr[name], n_terms)
    assert not np.allclose(from_hr["jpeg"], from_hr["noise"])
    report = json.loads((work / "a" / "report.json").read_text())
    assert report["degradations"] == ["blur", "noise", "jpeg"]


def test_evaluate_with_three_degradations_reports_a_three_by_three_matrix(work, capsys):
    rc = main([str(a) for a in ["evaluate", "--baseline", work / "baseline.pth", "--target", work / "target.pth",
                                "--hr", work / "hr", "--methods", "faig,random", "--proportions", "10",
                                "--steps", "2", "--device", "cpu", "--out", work / "ev", *THREE]])
    capsys.readouterr()
    assert rc == 0
    report = json.loads((work / "ev" / "report.json").read_text())
    assert report["degradations"] == ["blur", "noise", "jpeg"]
    assert report["degradation_specs"] == ["blur=blur:2,down", "noise=down,noise:0.05", "jpeg=down,jpeg:25"]
    # masking each one's filters, measured on each one's inputs: the N x N matrix per method
    for method in ("faig", "random"):
        matrix = report["effects"][method]["10"]
        assert list(matrix) == ["blur", "noise", "jpeg"]
        assert all(list(row) == ["blur", "noise", "jpeg"] and all(v >= 0 for v in row.values())
                   for row in matrix.values())
    text = (work / "ev" / "report.md").read_text()
    assert "jpeg" in text
    # the overlap of the FAIG top sets: three pairs, each shared count split over layers
    ov = report["overlap"]
    assert ov["proportion"] == 10.0 and ov["filter_count"] == report["filter_count"]
    assert [(p["a"], p["b"]) for p in ov["pairs"]] == [("blur", "noise"), ("blur", "jpeg"), ("noise", "jpeg")]
    k = int(report["filter_count"] * 0.1)
    assert ov["sizes"] == {"blur": k, "noise": k, "jpeg": k}
    for p in ov["pairs"]:
        assert 0 <= p["shared"] <= k and sum(p["layers"].values()) == p["shared"]
        assert f"| {p['a']} & {p['b']} | {p['shared']} |" in text
    bad = main([str(a) for a in ["evaluate", "--baseline", work / "baseline.pth", "--target", work / "target.pth",
                                 "--hr", work / "hr", "--out", work / "ev2", "--degradation", "jpeg=jpeg:20"]])
    assert bad == 2 and "exactly once" in capsys.readouterr().err
