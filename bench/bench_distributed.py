"""`faig-gui analyze` on 1 rank and on N ranks (torchrun, gloo on this machine's CPUs): time and
scaling efficiency.

    python bench/bench_distributed.py [--ranks 2] [--images 4] [--lr-size 32] [--steps 10]
        [--threads-per-rank 1] [--repeats 2] [--work DIR]

The pair is the paper's MSRResNet 64/16 x2 (bench/common.py), the images HR crops of scikit-
image photographs. Each configuration runs --repeats times; the best run counts (a shared
machine only ever slows a run down). Figures per configuration:
- ``wall_s``: the whole command, process start and torchrun's rendezvous included;
- ``analysis_s``: report.json's seconds (rank 0's analysis, the final all-reduce included);
- ``per_rank_s``: each rank's own analysis seconds (report.json 'ranks').
Scaling efficiency = T(1 rank) / (N x T(N ranks)), on analysis seconds and on wall seconds.
With --one-process-threads, one rank with N threads is measured too (what one process makes of
the same cores; on a loaded machine its spinning threads make it very slow).
Also prints the measured cost of one path step (one forward + backward at --lr-size), the figure
docs/performance.md's estimates start from. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_once(work: Path, out: Path, ranks: int, threads: int, steps: int) -> dict:
    analyze = ["-m", "faig_gui", "analyze", "--baseline", str(work / "baseline.pth"), "--target",
               str(work / "target.pth"), "--hr", str(work / "hr"), "--steps", str(steps), "--device", "cpu",
               "--precision", "fp32", "--out", str(out)]
    if ranks == 1:
        cmd = [sys.executable, *analyze]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks),
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()), *analyze]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    report = json.loads((out / "report.json").read_text())
    per_rank = [r["seconds"] for r in report.get("ranks", [])] or [report["seconds"]]
    return {"wall_s": round(wall, 2), "analysis_s": report["seconds"], "per_rank_s": per_rank}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--lr-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads-per-rank", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--one-process-threads", action="store_true", help="also time 1 rank with N threads")
    p.add_argument("--work", help="folder for the pair and images (default: a temporary one)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        common.make_pair(work)
        hr = work / "hr"
        hr.mkdir(parents=True, exist_ok=True)
        from faig_gui.core.imageio import write_image
        for name, img in common.hr_crops(args.images, 2 * args.lr_size).items():
            write_image(hr / f"{name}.png", img)
        configs = {"1 rank": (1, args.threads_per_rank),
                   f"{args.ranks} ranks": (args.ranks, args.threads_per_rank)}
        if args.one_process_threads:
            configs[f"1 rank, {args.ranks * args.threads_per_rank} threads"] = (1, args.ranks * args.threads_per_rank)
        results = {}
        for label, (ranks, threads) in configs.items():
            runs = [run_once(work, work / f"out{n}", ranks, threads, args.steps) for n in range(args.repeats)]
            results[label] = min(runs, key=lambda r: r["analysis_s"]) | {"runs": runs}
    one, many = results["1 rank"], results[f"{args.ranks} ranks"]
    path_steps = args.images * 2 * args.steps
    print(json.dumps({
        "benchmark": "faig-gui analyze on 1 and N ranks (gloo, CPU)",
        "date": date.today().isoformat(), "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "load_average": list(os.getloadavg()),
        "pair": "MSRResNet 64/16 x2 (bench/common.py)", "images": args.images,
        "lr_size": args.lr_size, "steps": args.steps, "degradations": 2, "path_steps": path_steps,
        "threads_per_rank": args.threads_per_rank, "results": results,
        "scaling_efficiency_analysis": round(one["analysis_s"] / (args.ranks * many["analysis_s"]), 3),
        "scaling_efficiency_wall": round(one["wall_s"] / (args.ranks * many["wall_s"]), 3),
        "seconds_per_path_step_1_rank": round(one["analysis_s"] / path_steps, 4),
        "command": "python bench/bench_distributed.py " + " ".join(sys.argv[1:]),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
