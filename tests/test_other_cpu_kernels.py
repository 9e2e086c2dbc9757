"""The numeric checks hold when the sums run in another order, as on another CPU.

CI runs on AMD Zen (AVX2) and on Intel Xeon (AVX-512, AMX) machines, where oneDNN and ATen
pick other kernels and float32 results move in their 6th digit. This machine can only show
its own kernels, so the checks that compare float32 numbers with independent references are
run again here with oneDNN capped at SSE4.1 and ATen's vectorised kernels off: other
convolution and reduction orders, the same arithmetic. Their tolerances come from that
arithmetic (tests/tolerances.py), not from one CPU's results, so they must pass either way.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMERIC = ["tests/core/test_attribution.py", "tests/core/test_evaluation.py",
           "tests/test_independent_analyze.py", "tests/core/test_performance_options.py",
           "tests/core/test_masking.py", "tests/core/test_incremental.py", "tests/core/test_metrics.py"]


@pytest.mark.slow
@pytest.mark.skipif("ONEDNN_MAX_CPU_ISA" in os.environ, reason="already running with capped kernels")
def test_numeric_checks_pass_with_other_kernels():
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="SSE41", ATEN_CPU_CAPABILITY="default")
    probe = ("import torch; torch.manual_seed(0); c = torch.nn.Conv2d(32, 32, 3, padding=1); "
             "x = torch.rand(1, 32, 32, 32); print(torch.backends.cpu.get_cpu_capability()); "
             "print(repr(float(c(x).double().sum())))")
    here = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    there = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                           env=env).stdout.split()
    assert there[0] == "DEFAULT"
    if here[1] == there[1]:
        pytest.skip("this CPU gives the same convolution sums with capped kernels: nothing to compare")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *NUMERIC],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
