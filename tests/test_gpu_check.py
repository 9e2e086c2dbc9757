"""Issue 18: bench/gpu_check.py, the one-command GPU check, runs on the CPU with tiny sizes and
writes a JSON file with every section filled."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_check  # noqa: E402
from tolerances import KINK_SHARE_OF_MAX  # noqa: E402


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "check.json"
    assert gpu_check.main(["--device", "cpu", "--tiny", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_every_section_runs_on_the_cpu(report):
    assert report["device"] == "cpu" and report["tiny"] and report["skipped"] == []
    expected = {f"msrresnet_64_16_x2/{s}" for s in ("agreement", "timing", "memory", "interactive")}
    expected |= {"rrdbnet_64_23_x4/timing", "rrdbnet_64_23_x4/memory"}
    assert set(report["sections"]) == expected
    for name, section in report["sections"].items():
        assert "error" not in section, (name, section)


def test_agreement_is_within_float32_rounding(report):
    agree = report["sections"]["msrresnet_64_16_x2/agreement"]
    for d in ("blur", "noise"):
        v = agree["per_degradation"][d]
        # vmapped chunks against single steps: the same float32 sums in another order, plus the
        # allowance for a ReLU input within rounding of its kink (tests/tolerances.py)
        assert 0 <= v["max_rel_dev"] <= KINK_SHARE_OF_MAX
        assert v["top1_overlap"] == 1.0
    assert agree["ok"] is True


def test_timings_and_interactive_figures_are_measured(report):
    for label in ("msrresnet_64_16_x2", "rrdbnet_64_23_x4"):
        t = report["sections"][f"{label}/timing"]
        assert t["paper_exact_s"] > 0 and t["gauss_legendre_s"] > 0 and t["bf16_s"] > 0
        assert t["paper_exact_ms_per_step"] == pytest.approx(1e3 * t["paper_exact_s"] / report["steps"])
        assert 0 <= t["bf16_top1_overlap"] <= 1 and t["tf32"] == "CUDA only"
        assert report["sections"][f"{label}/memory"]["budget_bytes"] == 2 * 2**30
    inter = report["sections"]["msrresnet_64_16_x2/interactive"]
    assert inter["mask_change_ms_median"] > 0 and inter["prediction_ms_median"] > 0


def test_sections_past_the_time_budget_are_skipped_and_listed(tmp_path):
    out = tmp_path / "none.json"
    assert gpu_check.main(["--device", "cpu", "--tiny", "--budget-s", "0", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["sections"] == {} and "msrresnet_64_16_x2/timing" in report["skipped"]
