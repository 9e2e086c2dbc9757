"""End-to-end `faig-gui analyze` against the authors' shape of work, on the same inputs, in one run.

Set-up (bench/common.py): the paper's MSRResNet 64/16 x2 with a generated baseline/target pair,
HR crops of scikit-image photographs, the paper's blur and noise, LR size --lr-size.

Measured, all in this process, one after the other:
1. a plain batched conv forward+backward of the same network (batch --plain-batch, sum of
   squares loss, weight gradients): the machine's throughput for this work, per sample;
2. bench/authors_shape.py (reload per image, rebuild per step, batch 1, every path gradient
   twice) at --authors-steps;
3. `faig-gui analyze` (in-process, through the CLI) paper-exact at the same steps: speed-up,
   and its scores against the authors' shape (they must agree);
4. `faig-gui analyze` paper-exact at --steps (the paper's 100): the reference ranking and
   FAIG's own throughput (path steps per CPU second against the plain benchmark);
5. options beyond the paper: Gauss-Legendre with --gl nodes (fp32), and bf16 with
   --bf16-nodes Gauss-Legendre nodes: time, speed-up against the authors' shape scaled to
   --steps, and the overlap of each top-1 % set with the reference ranking's.
The plain benchmark runs again at the end; its two runs bracket the load.

    python bench/bench_analyze.py [--images 1] [--lr-size 64] [--steps 100] [--authors-steps 10]
        [--gl 2 3 4 6 8] [--bf16-nodes 4] [--threads 1] [--work DIR]

Times are wall and process-CPU seconds; on a shared machine the CPU seconds are the steadier
figure and the ratios use them (wall ratios are printed too). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import authors_shape  # noqa: E402
import common  # noqa: E402

from faig_gui import cli  # noqa: E402
from faig_gui.core.registry import default_registry  # noqa: E402
from faig_gui.core.results import read_scores  # noqa: E402


def plain_benchmark(target_path: Path, lr_size: int, batch: int, reps: int, device: str = "cpu") -> dict:
    """Per-sample seconds of a plain batched forward+backward of the target network."""
    model = default_registry().load_model(target_path)
    net = model.module.train().requires_grad_(True).to(device)
    x = torch.rand(batch, 3, lr_size, lr_size, generator=torch.Generator().manual_seed(0)).to(device)
    y = torch.rand(batch, 3, lr_size * 2, lr_size * 2, generator=torch.Generator().manual_seed(1)).to(device)

    def step():
        net.zero_grad(set_to_none=True)
        ((net(x) - y) ** 2).sum().backward()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    step()  # warm-up (oneDNN primitive creation)
    t: dict = {}
    with common.timed(t, "run"):
        for _ in range(reps):
            step()
    n = batch * reps
    return {"batch": batch, "samples": n, **t["run"],
            "per_sample_wall_s": t["run"]["wall_s"] / n, "per_sample_cpu_s": t["run"]["cpu_s"] / n}


def analyze(work: common.Workdir, out: Path, steps: int, rule: str = "riemann",
            precision: str = "fp32", limit_dir: Path | None = None, device: str = "cpu") -> tuple[dict, dict]:
    inputs = limit_dir or work.inputs
    argv = ["analyze", "--baseline", str(work.baseline), "--target", str(work.target),
            "--gt", str(inputs / "GT"), "--degraded", f"blur={inputs / 'blur'}",
            "--degraded", f"noise={inputs / 'noise'}", "--steps", str(steps), "--rule", rule,
            "--precision", precision, "--device", device, "--out", str(out)]
    t: dict = {}
    with common.timed(t, "run"):
        code = cli.main(argv)
    if code != 0:
        raise RuntimeError(f"faig-gui {' '.join(argv)} exited with {code}")
    return t["run"], read_scores(out / "scores.npz")


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict:
    out = {}
    for d in a:
        rel = float(np.max(np.abs(a[d] - b[d])) / max(np.max(np.abs(b[d])), 1e-30))
        out[d] = {"top1_overlap": common.top_overlap(a[d], b[d], 0.01), "max_rel_diff": rel}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1)
    p.add_argument("--lr-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=100, help="paper-exact reference steps (paper: 100)")
    p.add_argument("--authors-steps", type=int, default=10,
                   help="steps for the authors' shape and the like-for-like analyze run")
    p.add_argument("--gl", type=int, nargs="*", default=[2, 3, 4, 6, 8], help="Gauss-Legendre node counts")
    p.add_argument("--bf16-nodes", type=int, nargs="*", default=[],
                   help="Gauss-Legendre node counts to run in bf16 (slow without bf16 kernels)")
    p.add_argument("--like-for-like-only", action="store_true",
                   help="only the plain benchmark, the authors' shape and analyze at --authors-steps (a repeat)")
    p.add_argument("--plain-batch", type=int, default=4)
    p.add_argument("--plain-reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads for every part")
    p.add_argument("--work", help="folder for the pair, inputs and outputs (default: a temporary one)")
    p.add_argument("--device", default="cpu", help="cpu or cuda, for every part (GPU: CPU seconds mean little there, "
                                                   "use the wall ratios)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    tmp = None if args.work else tempfile.TemporaryDirectory()
    root = Path(args.work or tmp.name)
    work = common.prepare(root, args.images, args.lr_size)
    res: dict = {"machine": common.machine(),
                 "setup": {"architecture": "MSRResNet 64/16 x2", "filters": 151936, "images": args.images,
                           "lr_size": args.lr_size, "steps": args.steps, "authors_steps": args.authors_steps,
                           "threads": args.threads, "device": args.device}}

    def note(key):
        print(f"[bench_analyze] {key}: {json.dumps(res[key])}", file=sys.stderr, flush=True)

    res["plain_before"] = plain_benchmark(work.target, args.lr_size, args.plain_batch, args.plain_reps, args.device)
    note("plain_before")

    t: dict = {}
    with common.timed(t, "authors"):
        authors_scores, info = authors_shape.run(str(work.baseline), str(work.target), work.inputs / "GT",
                                                 work.inputs / "blur", work.inputs / "noise", args.authors_steps,
                                                 device=args.device)
    res["authors"] = {**t["authors"], **info, "load_average": common.load_average()}
    note("authors")

    timing, ours_small = analyze(work, root / "out_small", args.authors_steps, device=args.device)
    res["faig_like_for_like"] = {**timing, "steps": args.authors_steps, "load_average": common.load_average(),
                                 "against_authors": compare(ours_small, authors_scores),
                                 "speedup_cpu": res["authors"]["cpu_s"] / timing["cpu_s"],
                                 "speedup_wall": res["authors"]["wall_s"] / timing["wall_s"]}
    note("faig_like_for_like")

    if args.like_for_like_only:
        res["plain_after"] = plain_benchmark(work.target, args.lr_size, args.plain_batch, args.plain_reps, args.device)
        note("plain_after")
        res["machine"]["load_average_end"] = common.load_average()
        print(json.dumps(res, indent=1))
        return 0

    scale = args.steps / args.authors_steps  # the authors' time is linear in the steps
    authors_cpu_at_steps = res["authors"]["cpu_s"] * scale
    authors_wall_at_steps = res["authors"]["wall_s"] * scale

    timing, reference = analyze(work, root / "out_reference", args.steps, device=args.device)
    path_steps = args.images * 2 * args.steps
    res["faig_paper_exact"] = {**timing, "steps": args.steps, "path_steps": path_steps,
                               "per_step_cpu_s": timing["cpu_s"] / path_steps,
                               "load_average": common.load_average(),
                               "speedup_cpu_vs_authors_scaled": authors_cpu_at_steps / timing["cpu_s"],
                               "speedup_wall_vs_authors_scaled": authors_wall_at_steps / timing["wall_s"]}
    note("faig_paper_exact")

    options = [(n, "fp32") for n in args.gl] + [(n, "bf16") for n in args.bf16_nodes]
    res["options"] = []
    fp32_runs: dict[int, tuple[dict, dict]] = {}
    for n, precision in options:
        timing, scores = analyze(work, root / f"out_gl{n}_{precision}", n, "gauss-legendre", precision,
                                 device=args.device)
        row = {"rule": "gauss-legendre", "nodes": n, "precision": precision, **timing,
               "load_average": common.load_average(),
               "speedup_cpu_vs_authors_scaled": authors_cpu_at_steps / timing["cpu_s"],
               "speedup_wall_vs_authors_scaled": authors_wall_at_steps / timing["wall_s"],
               "against_reference": compare(scores, reference)}
        if precision == "fp32":
            fp32_runs[n] = (timing, scores)
        elif n in fp32_runs:  # bf16's own effect: against fp32 with the same nodes
            row["against_fp32_same_nodes"] = compare(scores, fp32_runs[n][1])
            row["slowdown_cpu_vs_fp32_same_nodes"] = timing["cpu_s"] / fp32_runs[n][0]["cpu_s"]
        res["options"].append(row)
        print(f"[bench_analyze] option: {json.dumps(res['options'][-1])}", file=sys.stderr, flush=True)

    res["plain_after"] = plain_benchmark(work.target, args.lr_size, args.plain_batch, args.plain_reps, args.device)
    note("plain_after")
    plain_cpu = (res["plain_before"]["per_sample_cpu_s"] + res["plain_after"]["per_sample_cpu_s"]) / 2
    res["faig_throughput_vs_plain"] = plain_cpu / res["faig_paper_exact"]["per_step_cpu_s"]
    res["machine"]["load_average_end"] = common.load_average()
    print(json.dumps(res, indent=1))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
