"""Page faults and time per pass with glibc's default thresholds against faig-gui's
(core/allocator.py: keep_freed_memory), each in a fresh process.

Two passes of the window's render at 128x128 LR with the bundled demo pair (else a generated
pair of its architecture):
- ``forward``: the plain forward (super_resolve's path, the target's weights);
- ``mask_steps``: the incremental forward over the bench_ui top-k sequence (each step masks the
  top k % of the blur ranking to the baseline, as the slider does; every step is a full pass).
Reported per pass: minor page faults and the median wall time, for 1 and 2 torch threads.

    .venv/bin/python bench/bench_allocator.py [--repeats 20] [--threads 1 2]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = [2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 3, 5, 10, 1]   # percent, as bench_ui.py's slider


def child(tuned: bool, threads: int, repeats: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from faig_gui.core.allocator import keep_freed_memory
    applied = keep_freed_memory() if tuned else False
    import numpy as np
    import torch
    from faig_gui.core.filters import FilterIndex, top_indices
    from faig_gui.core.graph import traced_graph
    from faig_gui.core.incremental import IncrementalForward
    from faig_gui.core.masking import FilterMask, masked_state_dict
    torch.set_num_threads(threads)
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_interactive import load_pair
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        baseline, target, scores, pair = load_pair(Path(tmp))
    x = torch.from_numpy(np.random.default_rng(0).random((1, 3, 128, 128), dtype=np.float32))
    x = x.contiguous(memory_format=torch.channels_last)
    index = FilterIndex.from_state_dict(target.state_dict)
    ranking = scores["blur"] if "blur" in scores else next(iter(scores.values()))
    masks = [masked_state_dict(target.state_dict, baseline.state_dict,
                               FilterMask(top_indices(ranking, k / 100)), index) for k in STEPS]
    inc = IncrementalForward(target.module, traced_graph(target))
    out = {"pair": pair, "tuned": tuned, "applied": applied, "threads": threads}
    with torch.no_grad():
        def measure(step) -> dict:
            for i in range(3):
                step(i)
            faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            times = []
            for i in range(repeats):
                t = time.perf_counter()
                step(i)
                times.append(time.perf_counter() - t)
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
            return {"faults_per_pass": round(faults / repeats), "median_ms": round(1000 * statistics.median(times), 1)}
        out["forward"] = measure(lambda i: target.module(x))
        out["mask_steps"] = measure(lambda i: inc.run(x, masks[i % len(masks)]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--child", nargs=2, metavar=("TUNED", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0] == "1", int(args.child[1]), args.repeats)))
        return 0
    results = []
    for threads in args.threads:
        for tuned in (False, True):
            run = subprocess.run([sys.executable, __file__, "--repeats", str(args.repeats),
                                  "--child", "1" if tuned else "0", str(threads)],
                                 capture_output=True, text=True, check=True)
            results.append(json.loads(run.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
