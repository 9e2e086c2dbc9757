"""FAIG on a real-size RRDBNet x4 (64 features, 23 blocks, growth 32: 1.85 M filters), issue 16.

The pair: a baseline with the plugin's random initialisation and a derived target, the baseline
plus a small structured perturbation (a random 10 % of each layer's output channels moved by
5 % of the layer's weight spread; the rest unchanged), like a fine-tune that touched some
filters. The input: a crop of skimage's astronaut as HR, its 4x area-downscale plus Gaussian
noise (σ 0.05) as LR. Prints one JSON object:

- ``memory``: per LR size, what core/attribution.py plans (activation_bytes, step_bytes,
  fixed_bytes, the chunk it picks) against the peak RSS measured above what the process held
  before (sampled every 5 ms from /proc/self/status) over a run of ``--mem-steps`` steps;
- ``step_seconds_64``: seconds per path step at 64 x 64 LR (a run of ``--steps-64`` steps) and
  the time per image at 100 steps it implies;
- ``progress``: at each progress callback of the 64 x 64 run, the ETA the window shows
  (analysis.Progress: elapsed / done x remaining) against the time that was actually left;
- ``quadrature``: at ``--side`` LR (32 by default: 100 steps at 64 x 64 take too long on a
  loaded two-core machine), the top-1 % filters of Gauss–Legendre with n nodes against those of
  100 Riemann steps, and the smallest n keeping >= 98 % of them.

    python bench/bench_faig_rrdbnet.py [--side 32] [--nodes 2,4,8,16] [--steps-64 2] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class PeakRSS:
    """The largest RSS seen while inside the block, sampled every 5 ms on a thread."""

    def __enter__(self):
        self.start, self.peak, self._stop = rss(), rss(), threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss())


def make_pair():
    from faig_gui.core.registry import default_registry
    torch.manual_seed(0)
    arch = default_registry().get("rrdbnet")
    hp = {"num_feat": 64, "num_block": 23, "num_grow_ch": 32, "scale": 4}
    base = arch.new_state_dict(**hp)
    g = torch.Generator().manual_seed(1)
    targ = {}
    for k, v in base.items():
        if v.is_floating_point() and v.ndim == 4:
            rows = torch.rand(v.shape[0], generator=g) < 0.1
            step = 0.05 * float(v.std()) * torch.randn(v.shape, generator=g)
            targ[k] = v + step * rows.view(-1, 1, 1, 1)
        else:
            targ[k] = v.clone()
    module = arch.build(hp)
    module.load_state_dict(targ)
    return module.eval(), base, targ


def images(side: int):
    import skimage.data
    hr = skimage.data.astronaut().astype(np.float32)[100:100 + 4 * side, 150:150 + 4 * side] / 255
    lr = cv2.resize(hr, (side, side), interpolation=cv2.INTER_AREA)
    lr = np.clip(lr + 0.05 * np.random.default_rng(0).standard_normal(lr.shape).astype(np.float32), 0, 1)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]  # noqa: E731
    return t(lr), t(hr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", type=int, default=32, help="LR side of the quadrature comparison")
    ap.add_argument("--nodes", default="2,4,8,16", help="Gauss–Legendre node counts to compare")
    ap.add_argument("--riemann", type=int, default=100, help="Riemann steps of the reference")
    ap.add_argument("--steps-64", type=int, default=2, help="path steps timed at 64 x 64 LR")
    ap.add_argument("--mem-steps", type=int, default=4, help="path steps of the memory runs")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--skip-quadrature", action="store_true")
    ap.add_argument("--only-quadrature", action="store_true", help="skip the memory and 64 x 64 timing runs")
    ap.add_argument("--skip-memory", action="store_true", help="skip the memory runs")
    ap.add_argument("--chunk", type=int, default=0,
                    help="path steps per forward/backward in the quadrature runs (0: attribution.py's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from faig_gui.core.attribution import (PathOptions, activation_bytes, chunk_size, faig_attribution,
                                           fixed_bytes, step_bytes)
    from faig_gui.core.filters import FilterIndex
    from faig_gui.core.paths import riemann_left

    t0 = time.perf_counter()
    module, base, targ = make_pair()
    index = FilterIndex.from_state_dict(targ, module)
    out = {"net": "RRDBNet x4 64/23/32", "filters": index.total, "build_s": round(time.perf_counter() - t0, 2),
           "torch_threads": torch.get_num_threads(), "cpu_cores": os.cpu_count(),
           "load_average_1min_start": round(os.getloadavg()[0], 1), "memory": {}}

    # -- memory: the plan against the peak RSS -----------------------------------------------
    for side in () if args.only_quadrature or args.skip_memory else (args.side, 64):
        lr, hr = images(side)
        opts = PathOptions(riemann_left(args.mem_steps))
        plan = {"activation_bytes": activation_bytes(module, lr), "step_bytes": step_bytes(module, lr),
                "fixed_bytes": fixed_bytes(module), "chunk": chunk_size(module, lr, args.mem_steps, opts)}
        plan["planned_peak_bytes"] = plan["fixed_bytes"] + plan["chunk"] * plan["step_bytes"]
        with PeakRSS() as peak:
            faig_attribution(module, base, targ, lr, hr, index, opts)
        plan["measured_peak_rss_above_start_bytes"] = peak.peak - peak.start
        plan["planned_over_measured"] = round(plan["planned_peak_bytes"] / max(1, peak.peak - peak.start), 2)
        out["memory"][f"{side}x{side}"] = plan
        print(json.dumps(plan), file=sys.stderr, flush=True)   # (as it goes: a loaded machine is slow)

    # -- time per step at 64 x 64, and the ETA the window would show ------------------------
    if not args.only_quadrature:
        timing_64(args.steps_64, module, base, targ, index, out)
    quadrature(args, module, base, targ, index, out)
    out["load_average_1min_end"] = round(os.getloadavg()[0], 1)
    out["date"] = time.strftime("%Y-%m-%d %H:%M %Z")
    print(json.dumps(out, indent=2))
    return 0


def timing_64(n: int, module, base, targ, index, out: dict) -> None:
    from faig_gui.core.analysis import Progress
    from faig_gui.core.attribution import PathOptions, faig_attribution
    from faig_gui.core.paths import riemann_left
    lr, hr = images(64)
    marks = []
    start, cpu = time.perf_counter(), time.process_time()

    def on_steps(k: int) -> None:
        marks.append((time.perf_counter() - start, k))
    faig_attribution(module, base, targ, lr, hr, index, PathOptions(riemann_left(n), chunk=1), on_steps)
    total_s = time.perf_counter() - start
    out["step_seconds_64"] = round(total_s / n, 2)
    # process CPU seconds (both torch threads): the work, whatever share of the cores it got
    out["step_cpu_seconds_64"] = round((time.process_time() - cpu) / n, 2)
    out["image_cpu_seconds_64_at_100_steps"] = round(100 * (time.process_time() - cpu) / n, 1)
    out["image_seconds_64_at_100_steps"] = round(100 * total_s / n, 1)
    done, etas = 0, []
    for t, k in marks:
        done += k
        eta = Progress(done, n, "", t).eta
        etas.append({"done": done, "eta_s": round(eta, 2), "actual_left_s": round(total_s - t, 2)})
    out["progress"] = etas
    print(json.dumps({k: out[k] for k in ("step_seconds_64", "step_cpu_seconds_64", "progress")}), file=sys.stderr,
          flush=True)


def quadrature(args, module, base, targ, index, out: dict) -> None:
    """Gauss–Legendre against 100 Riemann steps."""
    from faig_gui.core.attribution import PathOptions, faig_attribution
    from faig_gui.core.filters import top_indices
    from faig_gui.core.paths import gauss_legendre, riemann_left
    if not args.skip_quadrature:
        lr, hr = images(args.side)
        t = time.perf_counter()
        ref = faig_attribution(module, base, targ, lr, hr, index,
                               PathOptions(riemann_left(args.riemann), chunk=args.chunk or None))
        q = {"lr_side": args.side, "riemann_steps": args.riemann,
             "riemann_seconds": round(time.perf_counter() - t, 1), "gauss_legendre": []}
        top_ref = set(top_indices(ref, 0.01).tolist())
        for nodes in (int(v) for v in args.nodes.split(",")):
            t = time.perf_counter()
            s = faig_attribution(module, base, targ, lr, hr, index, PathOptions(gauss_legendre(nodes), chunk=args.chunk or None))
            overlap = len(top_ref & set(top_indices(s, 0.01).tolist())) / len(top_ref)
            q["gauss_legendre"].append({"nodes": nodes, "top1_overlap": round(overlap, 4),
                                        "seconds": round(time.perf_counter() - t, 1)})
            print(json.dumps(q["gauss_legendre"][-1]), file=sys.stderr, flush=True)
        ok = [g["nodes"] for g in q["gauss_legendre"] if g["top1_overlap"] >= 0.98]
        q["fewest_nodes_for_98pct"] = min(ok) if ok else None
        out["quadrature"] = q


if __name__ == "__main__":
    sys.exit(main())
