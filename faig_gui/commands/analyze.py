from __future__ import annotations

import argparse
import os
import signal
from typing import Any

from faig_gui.commands._common import (add_arch, add_degradations, add_device, degradations_from,
                                        drive_with_progress, output_dir, positive_int)
from faig_gui.core.analysis import AnalysisConfig, AnalysisResult, analyze, convergence_summary
from faig_gui.core.attribution import METHODS
from faig_gui.core.dataset import from_folders, load_hr_folder, make_degraded, parse_named_dirs
from faig_gui.core.distributed import DEFAULT_TIMEOUT_S, analyze_distributed, from_environment
from faig_gui.core.errors import FaigError
from faig_gui.core.precision import PRECISION_CHOICES
from faig_gui.core.paths import RULES
from faig_gui.core.registry import default_registry
from faig_gui.core.filters import FilterIndex
from faig_gui.core.results import write_analysis
from faig_gui.core.store import AttributionStore

HELP = "rank filters with FAIG (or ig, abs, random) for each degradation"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", required=True, help="baseline checkpoint (clean-trained)")
    p.add_argument("--target", required=True, help="target checkpoint (blind fine-tuned)")
    p.add_argument("--gt", help="folder of HR ground-truth images")
    p.add_argument("--degraded", action="append", default=[], metavar="NAME=DIR",
                   help="folder of LR inputs of one degradation (repeat)")
    p.add_argument("--clean-lr", help="folder of clean LR images (needed by ig)")
    p.add_argument("--hr", help="folder of HR images: degrade them here (with --degradation, default the "
                                "paper's blur and noise) instead of --gt/--degraded")
    p.add_argument("--scale", type=positive_int, help="scale (default: the model's)")
    add_degradations(p)
    p.add_argument("--seed", type=int, default=0, help="noise seed and random method's seed")
    p.add_argument("--method", default="faig", choices=METHODS)
    p.add_argument("--steps", type=positive_int, default=100, help="path steps N (paper: 100)")
    p.add_argument("--rule", default="riemann", choices=RULES,
                   help="path quadrature: the paper's left Riemann sum, or Gauss-Legendre nodes")
    p.add_argument("--precision", default=os.environ.get("FAIG_GUI_PRECISION", "auto"), choices=PRECISION_CHOICES,
                   help="auto: bf16 where measured faster on this device (GPUs, AMX CPUs), else fp32; "
                        "fp32 is the paper's arithmetic (the choice goes into report.json; "
                        "default: $FAIG_GUI_PRECISION, else auto)")
    p.add_argument("--chunk", type=positive_int, help="path steps per forward/backward (default: from memory)")
    p.add_argument("--memory-budget", type=float, metavar="GB", help="activation memory budget in GB")
    p.add_argument("--allow-tf32", action="store_true", help="allow TF32 on GPUs (faster, ranks may shift)")
    add_device(p)
    add_arch(p)
    p.add_argument("--out", required=True, help="output folder (scores.npz, *_index.txt, report.json, and "
                                                "attributions/: each image's attributions as it is done)")
    p.add_argument("--resume", action="store_true",
                   help="take the images already in OUT/attributions from there (a stopped run goes on); "
                        "refuses files made with other models or settings")
    p.add_argument("--dist-timeout", type=float, default=DEFAULT_TIMEOUT_S / 60, metavar="MIN",
                   help="under torchrun: how long a rank waits for the others at the end (default 30)")


def load_images(args: argparse.Namespace, scale: int):
    if args.hr and (args.gt or args.degraded):
        raise FaigError("give either --hr DIR or --gt DIR with --degraded NAME=DIR, not both")
    if args.hr:
        return make_degraded(load_hr_folder(args.hr), scale, degradations_from(args), args.seed)
    if not args.gt or not args.degraded:
        if args.method in ("abs", "random"):
            return []
        raise FaigError("give --hr DIR, or --gt DIR with at least one --degraded NAME=DIR")
    return from_folders(args.gt, parse_named_dirs(args.degraded), args.clean_lr, scale)


def _stop_on_sigterm(rank: int) -> None:
    """torchrun stops the other workers with SIGTERM when one fails or is interrupted: say so
    (and exit through the normal path, which writes nothing partial) instead of dying silently."""
    def on_term(_sig, _frame):
        raise FaigError(f"rank {rank}: stopped by torchrun (another rank failed or was interrupted); "
                        f"nothing was written")
    signal.signal(signal.SIGTERM, on_term)


def store_settings(args: argparse.Namespace, scale: int) -> dict:
    """How the analysis images were made, for the per-image files (core/store.py)."""
    made: dict[str, Any] = {"scale": scale}
    if args.hr:
        made.update(source="hr", blur_sigma=args.blur_sigma, noise_sigma=args.noise_sigma, seed=args.seed)
        if args.degradation:  # only then: stores of the default pair stay readable by --resume
            made["degradations"] = [d.spec() for d in degradations_from(args)]
    else:
        made.update(source="folders")
    return {"images_made": made}


def run(args: argparse.Namespace) -> int:
    ctx = from_environment(args.device, args.dist_timeout * 60)
    if ctx is not None:
        _stop_on_sigterm(ctx.rank)
    try:
        return _run(args, ctx)
    finally:
        if ctx is not None:
            ctx.close()


def _run(args: argparse.Namespace, ctx) -> int:
    registry = default_registry()
    baseline, target = registry.load_pair(args.baseline, args.target, args.arch)
    scale = args.scale or target.scale
    images = load_images(args, scale)
    out = output_dir(args.out)
    config = AnalysisConfig(args.method, args.steps, args.rule, args.device, args.precision, args.chunk,
                            int(args.memory_budget * 2**30) if args.memory_budget else None, args.seed,
                            args.allow_tf32)
    total = max(1, len(images) * len(images[0].lr) * args.steps) if images else 1
    store = AttributionStore(out, args.resume, store_settings(args, scale)) if args.method in ("faig", "ig") else None
    if ctx is None:
        # the bar follows the steps within each image's path too (an RRDBNet x4 path at 64 x 64
        # LR takes minutes per image on a CPU), not only the images done
        told = {"done": 0}

        def run(should_stop):
            for item in analyze(baseline, target, images, config, should_stop=should_stop, store=store,
                                on_progress=lambda p: told.__setitem__("done", p.done)):
                if not isinstance(item, AnalysisResult):
                    told["done"] = item.done
                yield item
        result = drive_with_progress(run, AnalysisResult, args.method, total, poll=lambda: told["done"])
    else:
        result = drive_with_progress(
            lambda should_stop: analyze_distributed(ctx, baseline, target, images, config, store, should_stop),
            AnalysisResult, f"{args.method} ({ctx.world} ranks)", total, poll=ctx.steps_done, show=ctx.rank == 0)
        if ctx.rank != 0:
            return 0   # rank 0 alone writes
    report = result.report()
    report["baseline"], report["target"] = str(args.baseline), str(args.target)
    write_analysis(out, result.scores, report, FilterIndex.from_state_dict(target.state_dict))
    print(f"{result.method}: {result.filter_count} filters, {len(result.images)} images, "
          f"{', '.join(result.degradations)}; {result.seconds:.1f} s on {result.device} -> {out}")
    if result.convergence:
        print(convergence_summary(result.convergence))
    return 0
