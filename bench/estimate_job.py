"""How long a FAIG job takes on 1, 8 and 64 GPUs, from measured per-step costs.

    python bench/estimate_job.py [--images 100] [--steps 100] [--lr-size 64] [--cpu-lr 16]
        [--gpu-tflops 25] [--gpus 1 8 64]

1. Counts the multiply-adds of one forward of MSRResNet 64/16 x2 and RRDBNet 64/23 x4 at
   --lr-size (meta tensors: shapes only, nothing computed).
2. Measures one FAIG path step (forward + backward through the path weights) of each on this
   CPU, one thread, at --cpu-lr (process CPU seconds, the steadier figure on a shared machine):
   the achieved GFLOP/s of a path step, and the ratio of a step's cost to its forward's FLOPs.
3. Estimates the job (--images x 2 degradations x --steps path steps) on this CPU core and on
   GPUs sustaining --gpu-tflops (an assumption until bench/gpu_check.py has run on one: 25
   TFLOP/s is ~40 % of an H100's 67 fp32 TFLOP/s for 64-channel 3x3 convolutions), with the
   images split by rank as `analyze` splits them: the slowest rank has ceil(images / GPUs).
Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from faig_gui.core.attribution import PathOptions, faig_attribution  # noqa: E402
from faig_gui.core.filters import FilterIndex  # noqa: E402
from faig_gui.core.paths import riemann_left  # noqa: E402
from faig_gui.core.registry import default_registry  # noqa: E402

MODELS = {"MSRResNet 64/16 x2": ("msrresnet", dict(num_feat=64, num_block=16, scale=2)),
          "RRDBNet 64/23 x4": ("rrdbnet", dict(num_feat=64, num_block=23, num_grow_ch=32, scale=4))}


def forward_macs(module: torch.nn.Module, lr: int) -> int:
    total = 0

    def hook(m, _inp, out):
        nonlocal total
        total += out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]

    meta = module.to("meta")
    handles = [m.register_forward_hook(hook) for m in meta.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        meta(torch.empty(1, 3, lr, lr, device="meta"))
    for h in handles:
        h.remove()
    return total


def step_seconds(arch: str, hp: dict, lr: int, steps: int = 2) -> float:
    torch.manual_seed(0)
    a = default_registry().get(arch)
    base = a.new_state_dict(**hp)
    target = {k: v + 0.3 * v.std() * torch.randn_like(v) if v.numel() > 1 else v for k, v in base.items()}
    module = a.build(hp)
    x = torch.rand(1, 3, lr, lr)
    y = torch.rand(1, 3, lr * hp["scale"], lr * hp["scale"])
    index = FilterIndex.from_state_dict(target)
    options = PathOptions(riemann_left(steps), chunk=1)
    faig_attribution(module, base, target, x, y, index, PathOptions(riemann_left(1), chunk=1))   # warm-up
    t0 = time.process_time()
    faig_attribution(module, base, target, x, y, index, options)
    return (time.process_time() - t0) / steps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lr-size", type=int, default=64)
    p.add_argument("--cpu-lr", type=int, default=16)
    p.add_argument("--gpu-tflops", type=float, default=25.0)
    p.add_argument("--gpus", type=int, nargs="+", default=[1, 8, 64])
    args = p.parse_args()
    torch.set_num_threads(1)
    out = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
           "load_average": list(os.getloadavg()), "threads": 1, "images": args.images,
           "degradations": 2, "steps": args.steps, "lr_size": args.lr_size, "gpu_tflops_assumed": args.gpu_tflops,
           "models": {}}
    path_steps = args.images * 2 * args.steps
    for label, (arch, hp) in MODELS.items():
        module = default_registry().get(arch).build(hp)
        macs = forward_macs(module, args.lr_size)
        macs_cpu = forward_macs(default_registry().get(arch).build(hp), args.cpu_lr)
        sec = step_seconds(arch, hp, args.cpu_lr)
        step_flop_cpu = 2 * macs_cpu * 3        # forward + backward (input and weight gradients)
        gflops = step_flop_cpu / sec / 1e9
        step_flop = 2 * macs * 3
        per_image_steps = 2 * args.steps
        est = {"forward_gmac": round(macs / 1e9, 2), "path_step_gflop": round(step_flop / 1e9, 1),
               "cpu_step_s_at_cpu_lr": round(sec, 3), "cpu_achieved_gflops": round(gflops, 1),
               "job_cpu_core_hours": round(path_steps * step_flop / (gflops * 1e9) / 3600, 1)}
        for g in args.gpus:
            slowest = math.ceil(args.images / g) * per_image_steps
            est[f"job_{g}_gpu_minutes"] = round(slowest * step_flop / (args.gpu_tflops * 1e12) / 60, 2)
            est[f"job_{g}_gpu_efficiency"] = round(args.images / (g * math.ceil(args.images / g)), 3)
        out["models"][label] = est
    out["command"] = "python bench/estimate_job.py " + " ".join(sys.argv[1:])
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
