"""faig_gui.core.training on tiny nets: learning, EMA, resume, determinism, checkpoint format."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from faig_gui.core.checkpoint import load_state_dict
from faig_gui.core.degradations import downsample, quantize
from faig_gui.core.errors import FaigError
from faig_gui.core.imageio import write_image
from faig_gui.core.registry import default_registry
from faig_gui.core.training import (PatchSampler, TrainConfig, cosine_lr, make_batch, train)
from tolerances import U32, gamma


def _images(folder: Path, n: int = 3, size: int = 48, seed: int = 0) -> list[Path]:
    """Smooth random colour images (learnable by a tiny net)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    paths = []
    for i in range(n):
        f = rng.uniform(1, 4, size=(3, 2))
        img = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (f[c, 0] * xx + f[c, 1] * yy) + i) for c in range(3)], -1)
        p = folder / f"img{i}.png"
        write_image(p, img)
        paths.append(p)
    return paths


def _cfg(**kw) -> TrainConfig:
    base = dict(num_feat=4, num_block=1, scale=2, baseline_iters=6, target_iters=4, batch=2, patch=8,
                baseline_lr=2e-3, target_lr=1e-3, snapshot_every=3, val_every=5, log_every=2, val_crop=24)
    base.update(kw)
    return TrainConfig(**base)


def _run(cfg, hr, out, **kw) -> list[dict]:
    return list(train(cfg, hr, out, **kw))


def test_checkpoints_are_basicsr_and_load_in_the_registry(tmp_path):
    hr = _images(tmp_path)
    records = _run(_cfg(), hr, tmp_path / "out", val_paths=hr[:1])
    assert records[-1]["kind"] == "done"
    for name in ("baseline", "target"):
        raw = torch.load(tmp_path / "out" / f"{name}.pth", weights_only=True)
        assert set(raw) == {"params", "params_ema"}
        assert list(raw["params"]) == list(raw["params_ema"])
    base, targ = default_registry().load_pair(tmp_path / "out" / "baseline.pth", tmp_path / "out" / "target.pth")
    assert base.arch_name == "msrresnet"
    assert base.hyperparameters["num_feat"] == 4 and base.hyperparameters["num_block"] == 1
    assert base.scale == 2
    # the loader prefers the EMA weights
    raw = torch.load(tmp_path / "out" / "target.pth", weights_only=True)
    for k, v in targ.state_dict.items():
        assert torch.equal(v, raw["params_ema"][k])
    log = [json.loads(line) for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in log} == {"train", "validation"}
    val = [r for r in log if r["kind"] == "validation"]
    assert set(val[0]["psnr_ema"]) == {"clean", "blur", "noise"}
    # the target stage starts from the baseline's EMA weights: its first validation equals the baseline's last
    last_base = [r for r in val if r["stage"] == "baseline"][-1]
    first_targ = [r for r in val if r["stage"] == "target"][0]
    assert first_targ["iter"] == 0 and first_targ["psnr_ema"] == last_base["psnr_ema"]


def test_loss_decreases(tmp_path):
    """The trained baseline's L1 on whole images (clean bicubic x2) beats its initialisation's."""
    from faig_gui.core.imageio import read_image, to_tensor
    from faig_gui.plugins.msrresnet import MSRResNetArchitecture
    hr = _images(tmp_path)
    cfg = _cfg(num_feat=8, baseline_iters=100, target_iters=0, batch=4, patch=16, baseline_lr=3e-3,
               log_every=10, snapshot_every=1000, val_every=1000)
    steps = [r for r in _run(cfg, hr, tmp_path / "out") if r["kind"] == "step"]
    assert len(steps) == 100
    arch = MSRResNetArchitecture()
    torch.manual_seed(cfg.seed)
    initial = arch.build(cfg.hyperparameters()).eval()
    trained = arch.build(cfg.hyperparameters()).eval()
    trained.load_state_dict(torch.load(tmp_path / "out" / "baseline.pth", weights_only=True)["params"])

    def l1(model):
        with torch.no_grad():
            losses = []
            for p in hr:
                y = to_tensor(read_image(p))
                losses.append(float((model(quantize(downsample(y, 2))) - y).abs().mean()))
            return np.mean(losses)

    assert l1(trained) < 0.8 * l1(initial), (l1(initial), l1(trained))


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    hr = _images(tmp_path)
    cfg = _cfg()
    _run(cfg, hr, tmp_path / "full")
    # interrupt in the baseline stage, then again in the target stage, resuming each time
    calls = {"n": 0}

    def cancel_at(k):
        def cancel():
            calls["n"] += 1
            return calls["n"] > k
        return cancel

    rec = _run(cfg, hr, tmp_path / "cut", cancel=cancel_at(4))
    assert rec[-1]["kind"] == "cancelled" and rec[-1]["stage"] == "baseline" and rec[-1]["iter"] == 4
    calls["n"] = 0
    rec = _run(cfg, hr, tmp_path / "cut", resume=True, cancel=cancel_at(4))  # 2 baseline + 2 target steps
    assert rec[0]["resumed"] and rec[0]["iter"] == 4
    assert rec[-1]["kind"] == "cancelled" and rec[-1]["stage"] == "target" and rec[-1]["iter"] == 2
    rec = _run(cfg, hr, tmp_path / "cut", resume=True)
    assert rec[-1]["kind"] == "done"
    for name in ("baseline", "target"):
        a = torch.load(tmp_path / "full" / f"{name}.pth", weights_only=True)
        b = torch.load(tmp_path / "cut" / f"{name}.pth", weights_only=True)
        for part in ("params", "params_ema"):
            for k in a[part]:
                assert torch.equal(a[part][k], b[part][k]), (name, part, k)
    # the log holds each iteration once, like the uninterrupted run's
    def train_iters(folder):
        lines = (tmp_path / folder / "train_log.jsonl").read_text().splitlines()
        return [(r["stage"], r["iter"], r["kind"]) for r in map(json.loads, lines)]
    assert train_iters("cut") == train_iters("full")


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    hr = _images(tmp_path)
    _run(_cfg(), hr, tmp_path / "a")
    _run(_cfg(), hr, tmp_path / "b")
    _run(_cfg(seed=1), hr, tmp_path / "c")
    a, b, c = (load_state_dict(tmp_path / x / "target.pth") for x in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_ema_matches_an_independent_computation(tmp_path):
    """Read the raw weights after every step from the per-step snapshots and run the EMA
    recursion here: ema_0 = w_0, ema_t = d * ema_{t-1} + (1 - d) * w_t."""
    hr = _images(tmp_path)
    d = 0.7
    cfg = _cfg(baseline_iters=5, target_iters=0, snapshot_every=1, ema_decay=d)
    out = tmp_path / "out"
    weights = []
    for rec in train(cfg, hr, out):
        if rec["kind"] == "start":
            torch.manual_seed(cfg.seed)  # the initial weights: the architecture built under the seed
            from faig_gui.plugins.msrresnet import MSRResNetArchitecture
            weights.append({k: v.clone() for k, v in MSRResNetArchitecture().build(cfg.hyperparameters()).state_dict().items()})
        if rec["kind"] == "snapshot":
            snap = torch.load(out / "snapshots" / "latest.pth", weights_only=True)
            weights.append(snap["params"])
    assert len(weights) == 6
    final = torch.load(out / "baseline.pth", weights_only=True)["params_ema"]
    for k in final:
        ema = weights[0][k].double()
        for w in weights[1:]:
            ema = d * ema + (1 - d) * w[k].double()
        # five float32 updates d·ema + (1 − d)·w, each off by ≤ γ_3 of the weights' size
        largest = max(float(w[k].abs().max()) for w in weights)
        torch.testing.assert_close(final[k].double(), ema, rtol=0, atol=len(weights) * gamma(3) * largest + U32 * largest)


def test_cosine_schedule():
    assert cosine_lr(1e-3, 0.0, 0, 100) == pytest.approx(1e-3)
    assert cosine_lr(1e-3, 0.0, 50, 100) == pytest.approx(5e-4)
    assert cosine_lr(1e-3, 1e-6, 100, 100) == pytest.approx(1e-6)


def test_batches_clean_and_blind_mixture():
    torch.manual_seed(0)
    img = torch.rand(3, 60, 60)
    sampler = PatchSampler([img], patch=8, margin=10)
    g = torch.Generator().manual_seed(3)
    cfg = _cfg(batch=64)
    lr, hr = make_batch(sampler, cfg, "baseline", g)
    assert lr.shape == (64, 3, 4, 4) and hr.shape == (64, 3, 8, 8)
    torch.testing.assert_close(lr, quantize(downsample(hr, 2)))
    # blind mixture: some samples clean, some not; noise alone leaves the mean, blur alone smooths
    lr, hr = make_batch(sampler, cfg, "target", g)
    clean = quantize(downsample(hr, 2))
    same = [(lr[i] == clean[i]).all().item() for i in range(64)]
    assert 5 < sum(same) < 30  # about a quarter of the samples get neither blur nor noise
    # no blur, all noise: differences of standard deviation ~ σ
    cfg_noise = _cfg(batch=64, blur_prob=0.0, noise_prob=1.0, noise_sigma=0.1)
    lr, hr = make_batch(sampler, cfg_noise, "target", g)
    diff = lr - downsample(hr, 2)
    assert 0.07 < float(diff.std()) < 0.11


def test_full_size_net_builds():
    from faig_gui.core.filters import FilterIndex
    from faig_gui.core.training import build_model
    _, model = build_model(TrainConfig(num_feat=64, num_block=16, scale=2))
    assert FilterIndex.from_state_dict(model.state_dict()).total == 151936


def test_too_small_images_are_refused(tmp_path):
    write_image(tmp_path / "tiny.png", np.zeros((10, 10, 3)))
    with pytest.raises(FaigError, match="smaller"):
        list(train(_cfg(), [tmp_path / "tiny.png"], tmp_path / "out"))


def test_train_command(tmp_path):
    from faig_gui.cli import main
    hr_dir = tmp_path / "hr"
    hr_dir.mkdir()
    _images(hr_dir)
    rc = main(["train", "--hr", str(hr_dir), "--out", str(tmp_path / "out"), "--num-feat", "4",
               "--num-block", "1", "--baseline-iters", "3", "--target-iters", "2", "--batch", "2",
               "--patch", "8", "--threads", "1"])
    assert rc == 0
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"baseline.pth", "target.pth", "train_log.jsonl", "snapshots"}
    assert main(["train", "--hr", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o2")]) == 2


def test_fine_tune_from_given_checkpoints(tmp_path):
    """--baseline skips the baseline stage; --target-init starts the fine-tune from another checkpoint."""
    from faig_gui.cli import main
    hr = _images(tmp_path)
    _run(_cfg(), hr, tmp_path / "a")
    a_base, a_targ = tmp_path / "a" / "baseline.pth", tmp_path / "a" / "target.pth"
    # no target steps: the target is exactly where it started, the baseline an exact copy
    records = _run(_cfg(target_iters=0, baseline_from=str(a_base), target_from=str(a_targ)), hr, tmp_path / "b")
    assert not [r for r in records if r["kind"] == "step"]
    assert (tmp_path / "b" / "baseline.pth").read_bytes() == a_base.read_bytes()
    want, got = load_state_dict(a_targ), load_state_dict(tmp_path / "b" / "target.pth")
    assert all(torch.equal(want[k], got[k]) for k in want)
    # through the CLI, with steps: only target steps run, and they move the weights away from the start
    rc = main(["train", "--hr", *map(str, hr), "--out", str(tmp_path / "c"), "--num-feat", "4", "--num-block", "1",
               "--baseline", str(a_base), "--target-init", str(a_targ), "--target-iters", "3", "--batch", "2",
               "--patch", "8", "--target-lr", "1e-2", "--threads", "1"])
    assert rc == 0
    log = [json.loads(line) for line in (tmp_path / "c" / "train_log.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in log} == {"target"}
    got = load_state_dict(tmp_path / "c" / "target.pth")
    assert not all(torch.equal(want[k], got[k]) for k in want)
    # a checkpoint of another size is refused with a message, and --target-init alone is refused
    _run(_cfg(num_feat=6, baseline_iters=1, target_iters=0), hr, tmp_path / "wide")
    with pytest.raises(FaigError, match="do not fit"):
        _run(_cfg(baseline_from=str(tmp_path / "wide" / "baseline.pth")), hr, tmp_path / "d")
    assert main(["train", "--hr", str(hr[0]), "--out", str(tmp_path / "e"), "--target-init", str(a_targ)]) == 2
