"""Issue 18: --precision auto picks bf16 only where it measured it faster, and says why."""
from __future__ import annotations

import re

import pytest
import torch

from faig_gui.core import precision
from faig_gui.core.attribution import bf16_native
from faig_gui.core.errors import FaigError
from faig_gui.core.registry import default_registry


def tiny_pair():
    arch = default_registry().get("msrresnet")
    torch.manual_seed(0)
    base = arch.new_state_dict(num_feat=8, num_block=1, scale=2)
    target = {k: v + 0.1 * torch.randn_like(v) for k, v in base.items()}
    module = arch.build({"num_feat": 8, "num_block": 1, "scale": 2})
    return module, base, target, torch.rand(1, 3, 16, 16), torch.rand(1, 3, 32, 32)


def test_explicit_precisions_are_kept_and_unknown_ones_refused():
    assert precision.choose_precision("fp32", torch.device("cpu")) == ("fp32", "asked for")
    assert precision.choose_precision("bf16", torch.device("cpu")) == ("bf16", "asked for")
    with pytest.raises(FaigError, match="unknown precision 'fp16'"):
        precision.choose_precision("fp16", torch.device("cpu"))


@pytest.mark.skipif(bf16_native(torch.device("cpu")), reason="this CPU has fast bf16 kernels")
def test_auto_is_fp32_without_measuring_on_a_cpu_without_bf16_kernels(monkeypatch):
    calls = []
    monkeypatch.setattr(precision, "_seconds", lambda *a: calls.append(a) or 1.0)
    choice, reason = precision.choose_precision("auto", torch.device("cpu"), *tiny_pair())
    assert choice == "fp32" and "no fast bf16 kernels" in reason and calls == []


def test_auto_measures_and_takes_the_faster_precision(monkeypatch):
    """Told that this CPU has fast bf16 kernels, auto times both precisions for real and takes
    bf16 only if it measured at least BF16_MIN_SPEEDUP faster; the reason holds the times."""
    monkeypatch.setattr(precision, "bf16_native", lambda device: True)
    choice, reason = precision.choose_precision("auto", torch.device("cpu"), *tiny_pair())
    m = re.search(r"took ([0-9.]+) ms in fp32 and ([0-9.]+) ms in bf16 here \(([0-9.]+)x", reason)
    assert m, reason
    fp32_ms, bf16_ms, speedup = map(float, m.groups())
    assert fp32_ms > 0 and bf16_ms > 0
    # printed to 0.1 ms and 2 decimals: each figure is off by at most half its last digit
    rel = 0.05 / fp32_ms + 0.05 / bf16_ms
    assert abs(speedup - fp32_ms / bf16_ms) <= 0.005 + rel * fp32_ms / bf16_ms * 1.01
    assert choice == ("bf16" if speedup >= precision.BF16_MIN_SPEEDUP else "fp32")


def test_analyze_records_what_auto_chose(tmp_path):
    import json

    from distributed_helpers import make_pair_and_images
    from faig_gui.cli import main
    work = make_pair_and_images(tmp_path, n_images=1)
    assert main(["analyze", "--baseline", str(work / "baseline.pth"), "--target", str(work / "target.pth"),
                 "--hr", str(work / "hr"), "--steps", "2", "--device", "cpu", "--precision", "auto",
                 "--out", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["precision_requested"] == "auto" and report["precision"] in ("fp32", "bf16")
    expected = "fp32" if not bf16_native(torch.device("cpu")) else report["precision"]
    assert report["precision"] == expected and report["precision_reason"].startswith("auto: ")
