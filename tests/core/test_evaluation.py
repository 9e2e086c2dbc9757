"""faig_gui.core.evaluation: masking effects against a literal re-implementation, ratios, reports,
the CLI, the teaser."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from faig_gui.core.dataset import make_degraded
from faig_gui.core.degradations import paper_degradations
from faig_gui.core.evaluation import (EvaluationResult, evaluate, markdown_table, masking_effects,
                                      svg_plot, teaser_image)
from faig_gui.core.imageio import write_image
from faig_gui.core.registry import default_registry
from faig_gui.plugins.msrresnet import MSRResNetArchitecture
from tolerances import effect_atol, forward_atol, gamma, network_terms


def _pair(seed=0, change=0.05):
    torch.manual_seed(seed)
    arch = MSRResNetArchitecture()
    base = arch.new_state_dict(num_feat=4, num_block=1, scale=2)
    base = {k: v + 0.05 * torch.randn_like(v) for k, v in base.items()}
    targ = {k: v + change * torch.randn_like(v) for k, v in base.items()}
    reg = default_registry()
    return reg.model_from_state_dict(base), reg.model_from_state_dict(targ)


def _hr(n, size=24, seed=0):
    rng = np.random.default_rng(seed)
    return {f"img{i}.png": rng.uniform(0, 1, (size, size, 3)).astype(np.float32) for i in range(n)}


def _images(n, seed=0):
    return make_degraded(_hr(n, seed=seed), 2, paper_degradations(), seed)


# -- an independent implementation of the paper's masking measurement ---------------------------
def _literal_masked(base_sd, targ_sd, chosen):
    """Walk the 4-D weights in state-dict order, number filters out-major, replace chosen ones."""
    out = {k: v.clone() for k, v in targ_sd.items()}
    offset = 0
    chosen = set(int(c) for c in chosen)
    for name, w in targ_sd.items():
        if w.ndim != 4:
            continue
        o_n, i_n = w.shape[:2]
        for o in range(o_n):
            for i in range(i_n):
                if offset + o * i_n + i in chosen:
                    out[name][o, i] = base_sd[name][o, i]
        offset += o_n * i_n
    return out


def _grad_map(img):  # img: HxWx3 in [0, 1]
    g = 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]
    p = np.pad(g, 1, mode="reflect")
    gx = p[1:-1, 2:] - p[1:-1, :-2]
    gy = p[2:, 1:-1] - p[:-2, 1:-1]
    return np.sqrt(gx * gx + gy * gy + 1e-6)


def _run(sd, lr):
    """The output in float64: the reference's own rounding is negligible beside float32's."""
    m = MSRResNetArchitecture().build({"num_feat": 4, "num_block": 1, "scale": 2}).double()
    m.load_state_dict({k: v.double() for k, v in sd.items()})
    with torch.no_grad():
        return m(lr.double())[0].clamp(0, 1).permute(1, 2, 0).numpy()


def _effect_tolerance(module, targets, maskeds):
    """What float32 rounding of the two forwards can move the effect by (tests/tolerances.py)."""
    diffs = [_grad_map(t) - _grad_map(m) for t, m in zip(targets, maskeds)]
    return float(np.mean([effect_atol(d, forward_atol(module)) for d in diffs]))


def test_masking_effects_match_a_literal_computation():
    # a target far enough from its baseline that masking 3 % moves the output well above rounding
    base, targ = _pair(change=0.5)
    held = _images(2, seed=5)
    rng = np.random.default_rng(1)
    total = sum(v[:, :, 0, 0].numel() for v in targ.state_dict.values() if v.ndim == 4)
    scores = {"blur": rng.normal(size=total), "noise": rng.normal(size=total)}
    got = masking_effects(base, targ, scores, held, [3.0, 10.0])
    for p in (3.0, 10.0):
        for d in ("blur", "noise"):
            k = int(total * p / 100)
            chosen = np.argsort(-scores[d], kind="stable")[:k]
            masked = _literal_masked(base.state_dict, targ.state_dict, chosen)
            # the next k filters of the ranking: what a wrong selection would give
            wrong = _literal_masked(base.state_dict, targ.state_dict, np.argsort(-scores[d], kind="stable")[k:2 * k])
            for e in ("blur", "noise"):
                outs_t = [_run(targ.state_dict, img.lr[e]) for img in held]
                outs_m = [_run(masked, img.lr[e]) for img in held]
                ref = np.mean([np.mean((_grad_map(t) - _grad_map(m)) ** 2) * 1000 for t, m in zip(outs_t, outs_m)])
                tol = _effect_tolerance(targ.module, outs_t, outs_m)
                other = np.mean([np.mean((_grad_map(t) - _grad_map(_run(wrong, img.lr[e]))) ** 2) * 1000
                                 for t, img in zip(outs_t, held)])
                assert abs(other - ref) > 2 * tol   # the tolerance still tells a wrong selection apart
                assert got[f"{p:g}"][d][e] == pytest.approx(ref, rel=0, abs=tol)


def test_masking_nothing_changes_nothing_and_everything_gives_the_baseline():
    base, targ = _pair()
    held = _images(1)
    total = sum(v[:, :, 0, 0].numel() for v in targ.state_dict.values() if v.ndim == 4)
    scores = {"blur": np.arange(total, dtype=float), "noise": -np.arange(total, dtype=float)}
    got = masking_effects(base, targ, scores, held, [100.0])
    # all filters masked: the output differs from the baseline's only through the biases
    assert got["100"]["blur"]["blur"] == pytest.approx(got["100"]["noise"]["blur"])
    assert got["100"]["blur"]["blur"] > 0


def _result(effects, methods=("faig", "random")):
    return EvaluationResult(list(methods), [1.0], ["blur", "noise"], ["a"], ["b"], 10, effects,
                            {"baseline": {"clean": 30.0, "blur": 25.0, "noise": 20.0},
                             "target": {"clean": 29.5, "blur": 26.5, "noise": 24.0}})


def test_ratios_by_hand():
    effects = {"faig": {"1": {"blur": {"blur": 6.0, "noise": 0.5}, "noise": {"blur": 0.2, "noise": 4.0}}},
               "random": {"1": {"blur": {"blur": 0.3, "noise": 0.1}, "noise": {"blur": 0.5, "noise": 0.8}}}}
    r = _result(effects).ratios(1.0)
    # over random: (6 / 0.3) / (0.5 / 0.1) for blur, (4 / 0.8) / (0.2 / 0.5) for noise
    assert r["faig"]["blur"] == {"selectivity": pytest.approx(12.0), "vs_random": pytest.approx(20.0),
                                 "selectivity_over_random": pytest.approx(4.0)}
    assert r["faig"]["noise"] == {"selectivity": pytest.approx(20.0), "vs_random": pytest.approx(5.0),
                                  "selectivity_over_random": pytest.approx(12.5)}
    assert r["random"]["blur"]["vs_random"] == pytest.approx(1.0)
    assert r["random"]["noise"]["selectivity_over_random"] == pytest.approx(1.0)
    # without random filters measured there is nothing to normalise by
    assert set(_result({"faig": effects["faig"]}, methods=("faig",)).ratios(1.0)["faig"]["blur"]) == {"selectivity"}


def test_markdown_and_svg():
    effects = {"faig": {"1": {"blur": {"blur": 6.0, "noise": 0.5}, "noise": {"blur": 0.2, "noise": 4.0}}},
               "random": {"1": {"blur": {"blur": 0.3, "noise": 0.1}, "noise": {"blur": 0.5, "noise": 0.8}}}}
    res = _result(effects)
    md = markdown_table(res)
    assert "| faig | 1 % | 6.000 | 0.500 | 0.200 | 4.000 |" in md
    assert "| faig | 1 % | x12.0 | x20.0 | x4.0 | x20.0 | x5.0 | x12.5 |" in md
    assert "| random | 1 % | x3.0 | x1.0 | x1.0 | x1.6 | x1.0 | x1.0 |" in md
    assert "| target − baseline | -0.50 | +1.50 | +4.00 |" in md
    root = ET.fromstring(svg_plot(res))
    assert root.tag.endswith("svg")
    assert len(root.findall("{http://www.w3.org/2000/svg}polyline")) == 2 * 2 * 2  # methods x panels x inputs
    json.dumps(res.report())


def test_evaluate_end_to_end_uses_given_scores_and_reports_psnr():
    base, targ = _pair()
    analysis, held = _images(2, seed=1), _images(2, seed=2)
    total = sum(v[:, :, 0, 0].numel() for v in targ.state_dict.values() if v.ndim == 4)
    given = {"blur": np.linspace(0, 1, total), "noise": np.linspace(1, 0, total)}
    items = list(evaluate(base, targ, analysis, held, ["faig", "ig", "abs", "random"], [1, 5], steps=2,
                          given_scores={"faig": given}))
    res = items[-1]
    assert isinstance(res, EvaluationResult)
    assert np.array_equal(res.scores["faig"]["blur"], given["blur"])
    assert set(res.scores) == {"faig", "ig", "abs", "random"}
    assert set(res.effects["ig"]) == {"1", "5"}
    assert set(res.psnr["target"]) == {"clean", "blur", "noise"}
    # the table's PSNR is the mean of per-image PSNRs, measured here independently
    from faig_gui.core.metrics import psnr
    vals = []
    for img in held:
        with torch.no_grad():
            out = targ.module(img.lr["noise"])
        vals.append(psnr(out, img.hr, crop=2))
    # PSNR = 10 log10(1 / mse): an output off by δ_y = γ_n moves mse by ≤ 2 δ_y · rmse, so the
    # PSNR by ≤ (10 / ln 10) · 2 δ_y / rmse dB (rmse ≥ 10^(−PSNR/20))
    worst_rmse = 10 ** (-max(vals) / 20)
    tol = 10 / np.log(10) * 2 * gamma(network_terms(targ.module)) / worst_rmse
    assert res.psnr["target"]["noise"] == pytest.approx(np.mean(vals), rel=0, abs=tol)
    # and on Y, the BT.601 luma in numpy (MATLAB's rgb2ycbcr over 255), from the same outputs
    ys, worst = [], 0.0
    for img in held:
        with torch.no_grad():
            out = targ.module(img.lr["noise"]).clamp(0, 1)[0].double().numpy()
        hr = img.hr.clamp(0, 1)[0].double().numpy()
        luma = [(65.481 * x[0] + 128.553 * x[1] + 24.966 * x[2]) / 255 for x in (out, hr)]
        mse = np.mean((luma[0][2:-2, 2:-2] - luma[1][2:-2, 2:-2]) ** 2)
        ys.append(10 * np.log10(1 / mse))
        worst = max(worst, ys[-1])
    # the luma weights sum to 219/255 < 1: an output off by δ_y moves the luma by less
    tol_y = 10 / np.log(10) * 2 * gamma(network_terms(targ.module)) / 10 ** (-worst / 20)
    assert res.psnr_y["target"]["noise"] == pytest.approx(np.mean(ys), rel=0, abs=tol_y)
    assert set(res.psnr_y["baseline"]) == {"clean", "blur", "noise"}
    md = markdown_table(res)
    assert "PSNR (dB, Y: BT.601 luma" in md
    assert f"| target | {res.psnr_y['target']['clean']:.2f} |" in md
    progress = [i for i in items[:-1]]
    assert progress and all(0 <= p.done <= p.total for p in progress)


def test_teaser_shape():
    base, targ = _pair()
    held = _images(1)
    total = sum(v[:, :, 0, 0].numel() for v in targ.state_dict.values() if v.ndim == 4)
    scores = {"blur": np.arange(total, dtype=float), "noise": -np.arange(total, dtype=float)}
    img = teaser_image(base, targ, scores, held[0], proportion=10, crop=16)
    assert img.shape == (2 * (16 + 22), 3 * (16 + 4), 3)
    assert 0 <= img.min() and img.max() <= 1


def test_evaluate_command(tmp_path):
    from faig_gui.cli import main
    from faig_gui.core.checkpoint import save_checkpoint
    base, targ = _pair()
    save_checkpoint(tmp_path / "b.pth", base.state_dict)
    save_checkpoint(tmp_path / "t.pth", targ.state_dict)
    for name, img in _hr(4, size=20).items():
        write_image(tmp_path / "hr" / name, img)
    rc = main(["evaluate", "--baseline", str(tmp_path / "b.pth"), "--target", str(tmp_path / "t.pth"),
               "--hr", str(tmp_path / "hr"), "--methods", "faig,abs,random", "--proportions", "5,10",
               "--steps", "2", "--teaser", str(tmp_path / "teaser.png"), "--out", str(tmp_path / "ev")])
    assert rc == 0
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["methods"] == ["faig", "abs", "random"] and report["proportions"] == [5.0, 10.0]
    assert len(report["analysis_images"]) == 2 and len(report["heldout_images"]) == 2
    assert not set(report["analysis_images"]) & set(report["heldout_images"])
    assert (tmp_path / "ev" / "report.md").read_text().startswith("Effect of masking")
    assert (tmp_path / "teaser.png").stat().st_size > 0
    bad = main(["evaluate", "--baseline", str(tmp_path / "b.pth"), "--target", str(tmp_path / "t.pth"),
                "--hr", str(tmp_path / "hr"), "--methods", "faig,magic", "--out", str(tmp_path / "ev2")])
    assert bad == 2
