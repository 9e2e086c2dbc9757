"""``--precision auto``: bf16 where it was measured faster on this device, else the paper's fp32.

bf16 moves scores in the third digit and may swap filters near a rank cut, so it is chosen only
where it pays: on a CPU without AVX512-BF16/AMX kernels bf16 runs on torch's reference
convolution (measured ~20x slower than fp32 on the AMD EPYC Zen 3 of docs/performance.md) and
``auto`` takes fp32 without measuring; elsewhere (CUDA, AMX CPUs) it times two path steps of the
job's own model and first image at each precision and takes bf16 only when it is at least
BF16_MIN_SPEEDUP times faster. The choice and its reason go into report.json.
"""
from __future__ import annotations

import time
from collections.abc import Mapping

import torch
from torch import nn

from faig_gui.core.attribution import PRECISIONS, PathOptions, bf16_native, faig_attribution
from faig_gui.core.errors import FaigError
from faig_gui.core.filters import FilterIndex
from faig_gui.core.paths import riemann_left

PRECISION_CHOICES = ("auto", *PRECISIONS)
BF16_MIN_SPEEDUP = 1.2   # below this the rounding is not worth it


def _seconds(module: nn.Module, baseline: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor],
             lr: torch.Tensor, hr: torch.Tensor, index: FilterIndex, device: torch.device,
             precision: str) -> float:
    options = PathOptions(riemann_left(2), device, chunk=1, precision=precision)
    faig_attribution(module, baseline, target, lr, hr, index, options)   # warm-up (kernels, caches)
    start = time.perf_counter()
    faig_attribution(module, baseline, target, lr, hr, index, options)   # returns on the CPU: synced
    return time.perf_counter() - start


def choose_precision(requested: str, device: torch.device, module: nn.Module | None = None,
                     baseline: Mapping[str, torch.Tensor] | None = None,
                     target: Mapping[str, torch.Tensor] | None = None,
                     lr: torch.Tensor | None = None, hr: torch.Tensor | None = None) -> tuple[str, str]:
    """(precision, reason). ``fp32``/``bf16`` are kept as asked; ``auto`` as the module says."""
    if requested not in PRECISION_CHOICES:
        raise FaigError(f"unknown precision '{requested}'; use {', '.join(PRECISION_CHOICES)}")
    if requested != "auto":
        return requested, "asked for"
    if not bf16_native(device):
        return "fp32", (f"auto: no fast bf16 kernels on this {device.type.upper()} (they need CUDA or "
                        f"AVX512-BF16/AMX), where bf16 measured ~20x slower than fp32")
    if module is None or baseline is None or target is None or lr is None or hr is None:
        return "fp32", "auto: nothing to measure bf16 on (no analysis image)"
    index = FilterIndex.from_state_dict(target)
    fp32 = _seconds(module, baseline, target, lr, hr, index, device, "fp32")
    bf16 = _seconds(module, baseline, target, lr, hr, index, device, "bf16")
    speedup = fp32 / max(bf16, 1e-9)
    choice = "bf16" if speedup >= BF16_MIN_SPEEDUP else "fp32"
    return choice, (f"auto: two path steps took {fp32 * 1e3:.1f} ms in fp32 and {bf16 * 1e3:.1f} ms in "
                    f"bf16 here ({speedup:.2f}x; bf16 is taken from {BF16_MIN_SPEEDUP}x)")
