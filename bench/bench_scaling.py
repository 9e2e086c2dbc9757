"""Time and peak memory of one FAIG path as the image size, the steps and the memory budget grow.

Each measurement runs in a fresh process so that its peak resident memory is its own: the
peak is read from /proc/self/status (VmHWM) after resetting it once the models and the image
are loaded, so it counts what the path itself adds (activations, gradients, stacked weights).

    python bench/bench_scaling.py [--sizes 16 32 64] [--steps 4 8 16] [--budgets 0.025 0.05 0.1 0.2]
        [--threads 1]

Prints one JSON object: rows of {lr_size, steps, budget_gb, chunk, wall_s, cpu_s, peak_mib,
budget_mib, per_step_cpu_s}.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def _rss_kib(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def one(lr_size: int, steps: int, budget_gb: float | None, threads: int, chunk: int | None) -> dict:
    """Runs in the child: one FAIG path on one image of the paper's model."""
    import torch
    from faig_gui.core.attribution import PathOptions, chunk_size, faig_attribution, step_bytes
    from faig_gui.core.dataset import make_degraded
    from faig_gui.core.degradations import paper_degradations
    from faig_gui.core.filters import FilterIndex
    from faig_gui.core.registry import default_registry

    torch.set_num_threads(threads)
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        b, t = common.make_pair(Path(tmp))
        baseline, target = default_registry().load_pair(b, t)
    img = make_degraded(common.hr_crops(1, lr_size * 2), 2, paper_degradations())[0]
    budget = int(budget_gb * 2**30) if budget_gb else None
    options = PathOptions.paper(steps, chunk=chunk, memory_budget=budget)
    index = FilterIndex.from_state_dict(target.state_dict)
    lr = img.lr["blur"]
    chunk_used = chunk_size(target.module, lr, steps, options)  # also warms the size estimate
    step_mib = step_bytes(target.module, lr) / 2**20
    before = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:  # reset VmHWM to the current RSS
        fh.write("5")
    w, c = time.perf_counter(), time.process_time()
    faig_attribution(target.module, baseline.state_dict, target.state_dict, lr, img.hr, index, options)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    peak = _rss_kib("VmHWM") - before
    return {"lr_size": lr_size, "steps": steps, "budget_gb": budget_gb, "chunk": chunk_used,
            "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "per_step_cpu_s": round(cpu / steps, 4),
            "peak_mib": round(peak / 1024, 1), "estimated_step_mib": round(step_mib, 1),
            "budget_mib": round(budget / 2**20, 1) if budget else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64], help="LR sizes (square)")
    p.add_argument("--steps", type=int, nargs="+", default=[4, 8, 16], help="path steps (at the middle size)")
    p.add_argument("--budgets", type=float, nargs="+", default=[0.025, 0.05, 0.1, 0.2],
                   help="memory budgets in GB (at the smallest size, where the budget sets the chunk)")
    p.add_argument("--budget-steps", type=int, default=16, help="steps for the budget runs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--one", nargs=4, metavar=("SIZE", "STEPS", "BUDGET_GB", "CHUNK"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        size, steps, budget, chunk = args.one
        print(json.dumps(one(int(size), int(steps), float(budget) or None, args.threads, int(chunk) or None)))
        return 0

    def child(size, steps, budget=0.0, chunk=0):
        return common.run_json([__file__, "--threads", str(args.threads), "--one",
                                str(size), str(steps), str(budget), str(chunk)])

    import torch
    torch.set_num_threads(args.threads)  # as in the children, so that the machine record says so
    out = {"machine": common.machine(), "size": [], "steps": [], "budget": []}
    mid = args.sizes[len(args.sizes) // 2]
    for size in args.sizes:   # image size at a fixed number of steps, the default chunking
        out["size"].append(child(size, args.steps[-1]))
        print(json.dumps(out["size"][-1]), file=sys.stderr)
    for steps in args.steps:  # steps at a fixed size, chunk from the default budget
        out["steps"].append(child(mid, steps))
        print(json.dumps(out["steps"][-1]), file=sys.stderr)
    for budget in args.budgets:  # peak memory against the budget; small inputs batch on a CPU
        out["budget"].append(child(min(args.sizes), args.budget_steps, budget))
        print(json.dumps(out["budget"][-1]), file=sys.stderr)
    out["machine"]["load_average_end"] = common.load_average()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
