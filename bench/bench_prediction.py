#!/usr/bin/env python
"""Time to predict the degradation of a 256x256 LR image with the demo pair; prints JSON.

    .venv/bin/python bench/bench_prediction.py [--baseline B --target T --scores S --analysis-hr DIR]
        [--size 256] [--repeats 7] [--threads N]

The calibration (once per pair, scores and proportion; cached) is timed separately from the
prediction itself, which is what a dropped image costs. The input is a 256x256 crop of a
held-out image (scikit-image's camera: used neither for training nor for ranking) degraded with
blur σ 2 and noise σ 0.1 at the LR size.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faig_gui.core.degradations import Degradation, degrade, seeded_generator  # noqa: E402


def test_image(size: int, scale: int) -> torch.Tensor:
    import skimage.data
    img = skimage.data.camera().astype(np.float32) / 255.0
    side = size * scale
    y0, x0 = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
    hr = np.repeat(img[y0:y0 + side, x0:x0 + side, None], 3, axis=2)
    hr_t = torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1))).unsqueeze(0)
    return degrade(hr_t, scale, Degradation("blur+noise", 2.0, 0.1), seeded_generator(0))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline")
    p.add_argument("--target")
    p.add_argument("--scores")
    p.add_argument("--analysis-hr")
    p.add_argument("--proportion", type=float, default=1.0)
    p.add_argument("--size", type=int, default=256, help="LR side of the test image")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--use-cache", action="store_true",
                   help="take the calibration from the disk cache when it is there (its time is then a load)")
    p.add_argument("--calibration-file",
                   help="a calibration kept by scripts/eval_prediction.py --calibration-file (warm: its time is a load)")
    p.add_argument("--glibc-defaults", action="store_true",
                   help="leave glibc's allocator thresholds as they are (faig-gui sets them: core/allocator.py)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from faig_gui.core.allocator import keep_freed_memory
    allocator_tuned = False if args.glibc_defaults else keep_freed_memory()   # as faig-gui does at start
    from faig_gui.commands.predict import build_predictor
    ns = argparse.Namespace(session=None, baseline=args.baseline, target=args.target, scores=args.scores,
                            analysis_hr=args.analysis_hr, proportion=args.proportion, blur_sigma=2.0,
                            noise_sigma=0.1, device="cpu", arch=None, no_cache=not args.use_cache)
    predictor = build_predictor(ns)
    t0 = time.perf_counter()
    if args.calibration_file:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
        from eval_prediction import load_or_calibrate
        cal = load_or_calibrate(predictor, Path(args.calibration_file))
    else:
        cal = predictor.calibrate()
    calibration_s = time.perf_counter() - t0
    lr = test_image(args.size, predictor.model.target.scale)
    predictor.predict(lr)                      # warm-up (allocator, first-call overheads)
    times, cpu, result = [], [], None
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = predictor.predict(lr)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)   # this process's CPU time: what a quiet core would take
    hp = predictor.model.target.hyperparameters
    print(json.dumps({
        "benchmark": "predict one LR image",
        "image": f"{args.size}x{args.size}",
        "pair": f"{predictor.model.target.arch_name} {hp}",
        "baseline": str(ns.baseline), "target": str(ns.target),
        "proportion_percent": args.proportion,
        "evidence": list(predictor.config.evidence),
        "analysed": result.note or "whole image", "tiles": result.tiles,
        "predict_ms_median": round(1000 * statistics.median(times), 1),
        "predict_ms_min": round(1000 * min(times), 1),
        "predict_ms_all": [round(1000 * t, 1) for t in times],
        "predict_cpu_ms_median": round(1000 * statistics.median(cpu), 1),
        "calibration_s": round(calibration_s, 2), "calibration_samples": len(cal.samples),
        "calibration_source": predictor.calibration_source,
        "verdict": result.describe(),
        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "load_average": list(os.getloadavg()),
        "allocator_thresholds_set": allocator_tuned,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
