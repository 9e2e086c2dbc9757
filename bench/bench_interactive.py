"""Interactive latencies: a mask change to the masked output, and how long a FAIG run on a worker
thread can stall the thread that would run the window's event loop.

- mask change -> masked output: build the masked weights (top 1 % and top 10 % of a ranking,
  masked to the baseline) and super-resolve a 128x128 LR image with them, as the window does
  after each toggle; median and best of --repeats.
- filter click -> masked output through the window's incremental forward (core/incremental.py):
  one filter of a layer toggled on and off, each toggle rerunning only the nodes that depend
  on that layer; per layer, median time and nodes rerun, against the plain forward.
- UI stall: FAIG runs in a worker thread (as the app's worker does) while this thread asks to
  wake every 5 ms; the longest gap beyond 5 ms is how long an event loop would have waited
  (the GIL is what a torch-heavy worker can hold).

The pair is the bundled demo (MSRResNet 32/8 x2, resources/demo) when it is built, else a
generated pair of the same architecture (the JSON says which). The prediction of a dropped
256x256 image is timed by bench/bench_prediction.py.

    python bench/bench_interactive.py [--sizes 64 128] [--repeats 7] [--threads N] [--faig-steps 6]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from faig_gui.core.attribution import PathOptions, faig_attribution  # noqa: E402
from faig_gui.core.dataset import make_degraded  # noqa: E402
from faig_gui.core.degradations import paper_degradations  # noqa: E402
from faig_gui.core.errors import FaigError  # noqa: E402
from faig_gui.core.filters import FilterIndex, top_indices  # noqa: E402
from faig_gui.core.inference import super_resolve  # noqa: E402
from faig_gui.core.masking import FilterMask, masked_state_dict  # noqa: E402
from faig_gui.core.registry import default_registry  # noqa: E402
from faig_gui.core.results import read_scores  # noqa: E402


def load_pair(tmp: Path):
    reg = default_registry()
    try:
        from faig_gui.core.demo import demo_files
        files = demo_files()
        baseline, target = reg.load_pair(files.baseline, files.target)
        return baseline, target, read_scores(files.scores), "bundled demo"
    except FaigError:
        b, t = common.make_pair(tmp / "pair", num_feat=32, num_block=8)
        baseline, target = reg.load_pair(b, t)
        # a ranking to mask by: |θ − θ̄| per filter stands in for the demo's FAIG scores
        from faig_gui.core.attribution import abs_change
        s = abs_change(baseline.state_dict, target.state_dict)
        return baseline, target, {"blur": s, "noise": -s}, "generated MSRResNet 32/8 x2 (demo not built)"


def mask_to_output(baseline, target, scores, lr, proportion: float, repeats: int) -> dict:
    index = FilterIndex.from_state_dict(target.state_dict)
    chosen = top_indices(scores, proportion)
    build, forward, cpu = [], [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        params = masked_state_dict(target.state_dict, baseline.state_dict, FilterMask(chosen), index)
        t1 = time.perf_counter()
        super_resolve(target.module, lr, target.scale, params)
        t2 = time.perf_counter()
        build.append(t1 - t0)
        forward.append(t2 - t1)
        cpu.append(time.process_time() - c0)
    total = [a + b for a, b in zip(build, forward)]
    return {"proportion": proportion, "filters": int(len(chosen)),
            "mask_ms_median": round(1000 * statistics.median(build), 1),
            "forward_ms_median": round(1000 * statistics.median(forward), 1),
            "total_ms_median": round(1000 * statistics.median(total), 1),
            "total_ms_best": round(1000 * min(total), 1),
            "total_cpu_ms_median": round(1000 * statistics.median(cpu), 1)}


def filter_clicks(baseline, target, lr, repeats: int) -> list[dict]:
    from faig_gui.core.graph import traced_graph
    from faig_gui.core.incremental import IncrementalForward
    graph = traced_graph(target)
    if graph is None:
        return []
    index = FilterIndex.from_state_dict(target.state_dict)
    inc = IncrementalForward(target.module, graph)
    x = lr.contiguous(memory_format=torch.channels_last)
    inc.run(x, target.state_dict)
    plain = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        super_resolve(target.module, lr, target.scale, target.state_dict)
        plain.append(time.perf_counter() - t0)
    layers = index.layers
    picks = sorted({0, 1, len(layers) // 2, len(layers) - 3, len(layers) - 2, len(layers) - 1})
    rows = []
    for pos in picks:
        layer = layers[pos]
        on = masked_state_dict(target.state_dict, baseline.state_dict, FilterMask(np.array([layer.offset])), index)
        times, nodes = [], []
        for r in range(2 * repeats):
            t0 = time.perf_counter()
            inc.run(x, on if r % 2 == 0 else target.state_dict)
            times.append(time.perf_counter() - t0)
            nodes.append(inc.last_recomputed)
        rows.append({"layer": layer.name, "nodes_rerun": int(statistics.median(nodes)), "nodes": len(inc.nodes),
                     "ms_median": round(1000 * statistics.median(times), 1),
                     "plain_forward_ms_median": round(1000 * statistics.median(plain), 1)})
    return rows


def ui_stall(baseline, target, lr, hr, steps: int) -> dict:
    """Longest extra wait of a 5 ms timer on this thread while FAIG runs on another."""
    done = threading.Event()
    worker_error: list[BaseException] = []

    def work():
        try:
            faig_attribution(target.module, baseline.state_dict, target.state_dict, lr, hr,
                             options=PathOptions.paper(steps))
        except BaseException as exc:  # reported below
            worker_error.append(exc)
        finally:
            done.set()

    gaps = []
    thread = threading.Thread(target=work)
    start = time.perf_counter()
    thread.start()
    last = time.perf_counter()
    while not done.is_set():
        time.sleep(0.005)
        now = time.perf_counter()
        gaps.append(now - last - 0.005)
        last = now
    thread.join()
    if worker_error:
        raise worker_error[0]
    gaps_ms = np.array(gaps) * 1000
    return {"faig_steps": steps, "faig_s": round(time.perf_counter() - start, 2), "wakeups": len(gaps),
            "stall_ms_max": round(float(gaps_ms.max()), 1), "stall_ms_p99": round(float(np.percentile(gaps_ms, 99)), 1),
            "stall_ms_median": round(float(np.median(gaps_ms)), 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="LR sides of the masked-output image")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's, as the window)")
    p.add_argument("--faig-steps", type=int, default=6, help="path steps of the FAIG run for the stall test")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        baseline, target, scores, pair = load_pair(Path(tmp))
    res = {"machine": common.machine(), "pair": pair, "mask_to_output": []}
    for size in args.sizes:
        lr = make_degraded(common.hr_crops(1, 2 * size), 2, paper_degradations())[0].lr["blur"]
        super_resolve(target.module, lr, target.scale)  # warm-up (oneDNN primitive creation)
        for q in (0.01, 0.10):
            row = {"lr_size": size, **mask_to_output(baseline, target, scores["blur"], lr, q, args.repeats)}
            res["mask_to_output"].append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        for row in filter_clicks(baseline, target, lr, args.repeats):
            row = {"lr_size": size, **row}
            res.setdefault("filter_click", []).append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    small = make_degraded(common.hr_crops(1, 64), 2, paper_degradations())[0]
    res["ui_stall"] = ui_stall(baseline, target, small.lr["noise"], small.hr, args.faig_steps)
    res["machine"]["load_average_end"] = common.load_average()
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
