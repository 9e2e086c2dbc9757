"""Training on a blind mix of any set of degradations (JPEG included) and any architecture's
hyper-parameters: the batches against a per-sample reference, resume bit-exact with JPEG, the CLI."""
from __future__ import annotations

import json

import pytest
import torch

from faig_gui.core.degradations import (Degradation, downsample, gaussian_blur, jpeg, parse_degradation,
                                        quantize)
from faig_gui.core.errors import FaigError
from faig_gui.core.training import PatchSampler, TrainConfig, make_batch, train
from test_training import _images

THREE = [parse_degradation(s) for s in ("blur=blur:2,down", "noise=down,noise:0.1", "jpeg=down,jpeg:30")]


def _cfg3(**kw) -> TrainConfig:
    base = dict(arch="srvgg", hp={"num_feat": 4, "num_conv": 1}, scale=2, baseline_iters=4, target_iters=5,
                batch=2, patch=8, baseline_lr=2e-3, target_lr=1e-3, snapshot_every=2, val_every=3,
                log_every=2, val_crop=24, degradations=[d.to_dict() for d in THREE])
    base.update(kw)
    return TrainConfig(**base)


def test_mixture_matches_a_per_sample_reference():
    """Each sample: blur on the HR patch with its margin when drawn, bicubic down, noise when
    drawn, JPEG last when drawn; the draws come from the run's one generator, in that order."""
    torch.manual_seed(0)
    img = torch.rand(3, 80, 80)
    sampler = PatchSampler([img], patch=16, margin=10)
    probs = [0.5, 0.4, 0.6]
    cfg = _cfg3(batch=32, patch=16, probs=probs)
    g = torch.Generator().manual_seed(7)
    ref = torch.Generator().manual_seed(7)
    lr, hr = make_batch(sampler, cfg, "target", g)
    # the reference replays the same stream: patches, three rows of draws, one normal field
    big = sampler.sample(32, ref)
    on = [torch.rand(32, generator=ref) < p for p in probs]
    noise = torch.randn(lr.shape, generator=ref)
    expected = torch.empty_like(lr)
    for i in range(32):
        x = big[i:i + 1].double()
        if on[0][i]:
            x = gaussian_blur(x, 2.0)
        x = downsample(x[..., 10:26, 10:26], 2)
        if on[1][i]:
            x = x + 0.1 * noise[i:i + 1].double()
        x = x.float()
        if on[2][i]:
            x = jpeg(x, 30)
        expected[i] = quantize(x)[0]
    torch.testing.assert_close(hr, big[:, :, 10:26, 10:26])
    # float32 batch vs float64 single: a value within ~1e-6 of an 8-bit rounding boundary may
    # land one level apart (and a JPEG block then decodes differently by a level or two)
    diff = (lr - expected).abs()
    assert float(diff.max()) <= 3 / 255 + 1e-7
    assert float((diff > 0).double().mean()) < 2e-3
    # all three kinds occurred, alone and together, and a sample none chose is clean bicubic
    assert all(0 < int(o.sum()) < 32 for o in on)
    none = ~(on[0] | on[1] | on[2])
    assert int(none.sum()) > 0
    torch.testing.assert_close(lr[none], quantize(downsample(hr[none], 2)), atol=1 / 255 + 1e-7, rtol=0)


def test_jpeg_alone_is_lossy_and_probabilities_are_checked():
    img = torch.rand(3, 80, 80)
    sampler = PatchSampler([img], patch=16, margin=10)
    cfg = _cfg3(batch=8, patch=16, probs=[0.0, 0.0, 1.0])
    lr, hr = make_batch(sampler, cfg, "target", torch.Generator().manual_seed(1))
    want = quantize(jpeg(downsample(hr, 2), 30))
    torch.testing.assert_close(lr, want, atol=1 / 255 + 1e-7, rtol=0)  # one 8-bit level: batch vs batch rounding
    assert float((lr - quantize(downsample(hr, 2))).abs().mean()) > 0.01  # q30 on noise is far from lossless
    with pytest.raises(FaigError, match="probabilities"):
        _cfg3(probs=[0.5]).mixture()
    with pytest.raises(FaigError, match=r"\[0, 1\]"):
        _cfg3(probs=[0.5, 1.5, 0.5]).mixture()


def test_one_of_mix_applies_at_most_one_degradation_per_sample():
    """mix="one-of": one uniform draw per sample picks blur, noise, JPEG or clean by the shares
    [0, .3), [.3, .55), [.55, .75), [.75, 1); each sample is then exactly that degradation alone."""
    torch.manual_seed(0)
    img = torch.rand(3, 80, 80)
    sampler = PatchSampler([img], patch=16, margin=10)
    probs = [0.3, 0.25, 0.2]
    cfg = _cfg3(batch=400, patch=16, probs=probs, mix="one-of")
    g = torch.Generator().manual_seed(3)
    ref = torch.Generator().manual_seed(3)
    lr, hr = make_batch(sampler, cfg, "target", g)
    big = sampler.sample(400, ref)
    u = torch.rand(400, generator=ref, dtype=torch.float64)
    noise = torch.randn(lr.shape, generator=ref)
    kind = [("blur" if x < 0.3 else "noise" if x < 0.55 else "jpeg" if x < 0.75 else "clean") for x in u.tolist()]
    counts = {k: kind.count(k) for k in ("blur", "noise", "jpeg", "clean")}
    # 400 draws: each share within 4 standard deviations of its expectation, none empty
    for k, p in zip(("blur", "noise", "jpeg", "clean"), (0.3, 0.25, 0.2, 0.25)):
        assert abs(counts[k] - 400 * p) <= 4 * (400 * p * (1 - p)) ** 0.5, counts
    worst = 0.0
    for i, k in enumerate(kind):
        x = big[i:i + 1]
        if k == "blur":
            x = gaussian_blur(x, 2.0)
        x = downsample(x[..., 10:26, 10:26], 2)
        if k == "noise":
            x = x + 0.1 * noise[i:i + 1]
        if k == "jpeg":
            x = jpeg(x, 30)
        worst = max(worst, float((lr[i] - quantize(x)[0]).abs().max()))
    assert worst <= 3 / 255 + 1e-7  # rounding-boundary values may land a level or two apart (see above)
    with pytest.raises(FaigError, match="sum"):
        _cfg3(probs=[0.5, 0.4, 0.3], mix="one-of").mixture()
    with pytest.raises(FaigError, match="mix"):
        _cfg3(mix="sometimes").mixture()


def test_resume_with_jpeg_is_bit_exact(tmp_path):
    hr = _images(tmp_path)
    cfg = _cfg3()
    full = list(train(cfg, hr, tmp_path / "full", val_paths=hr[:1]))
    calls = {"n": 0}

    def cancel():
        calls["n"] += 1
        return calls["n"] > 6  # 4 baseline steps, then 2 of the target's

    cut = list(train(cfg, hr, tmp_path / "cut", val_paths=hr[:1], cancel=cancel))
    assert cut[-1]["kind"] == "cancelled" and cut[-1]["stage"] == "target"
    rest = list(train(cfg, hr, tmp_path / "cut", val_paths=hr[:1], resume=True))
    assert rest[0]["resumed"] and rest[-1]["kind"] == "done"
    for name in ("baseline", "target"):
        a = torch.load(tmp_path / "full" / f"{name}.pth", weights_only=True)["params_ema"]
        b = torch.load(tmp_path / "cut" / f"{name}.pth", weights_only=True)["params_ema"]
        assert set(a) == {f"body.{i}.{w}" for i in (0, 1, 2, 3, 4) for w in ("weight", "bias")
                          if not (i % 2 and w == "bias")}  # srvgg 4 features, 1 conv: PReLUs have no bias
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    val = [r for r in full if r["kind"] == "validation"]
    assert set(val[-1]["psnr_ema"]) == {"clean", "blur", "noise", "jpeg"}
    # a snapshot made with other degradations is refused by name
    other = _cfg3(degradations=[d.to_dict() for d in THREE[:2]])
    with pytest.raises(FaigError, match="degradations"):
        list(train(other, hr, tmp_path / "cut", resume=True))


def test_train_command_any_architecture_and_degradations(tmp_path):
    from faig_gui.cli import main
    from faig_gui.core.registry import default_registry
    hr = tmp_path / "hr"
    hr.mkdir()
    paths = _images(hr)
    out = tmp_path / "out"
    rc = main(["train", "--hr", str(hr), "--val-hr", str(paths[0]), "--out", str(out), "--arch", "srvgg",
               "--hp", "num_feat=4,num_conv=2", "--scale", "2", "--baseline-iters", "2", "--target-iters", "2",
               "--batch", "2", "--patch", "8", "--val-every", "2", "--threads", "1",
               "--degradation", "blur", "--degradation", "jpeg=down,jpeg:40", "--prob", "jpeg=0.9"])
    assert rc == 0
    model = default_registry().load_model(out / "target.pth")
    assert model.arch_name == "srvgg"
    assert (model.hyperparameters["num_feat"], model.hyperparameters["num_conv"], model.scale) == (4, 2, 2)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert set(log[-1]["psnr_ema"]) == {"clean", "blur", "jpeg"}
    snap = torch.load(out / "snapshots" / "latest.pth", weights_only=True)
    assert snap["config"]["probs"] == [0.5, 0.9]
    assert [Degradation.from_dict(d).spec() for d in snap["config"]["degradations"]] == \
        ["blur=blur:2,down", "jpeg=down,jpeg:40"]
    # bad input: an unknown hyper-parameter, a probability for a degradation not in the mix
    base = ["train", "--hr", str(hr), "--out", str(tmp_path / "o2"), "--arch", "srvgg"]
    assert main([*base, "--hp", "num_blocks=3"]) == 2
    assert main([*base, "--degradation", "jpeg", "--prob", "noise=0.2"]) == 2
    # the one-of mix's shares may not exceed the whole
    assert main([*base, "--degradation", "blur", "--degradation", "jpeg", "--prob", "0.6", "--mix", "one-of"]) == 2
