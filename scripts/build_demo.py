#!/usr/bin/env python
"""Build the bundled demo pair and everything in ``resources/demo/`` with one command.

    .venv/bin/python scripts/build_demo.py            # all stages; rerun to resume
    .venv/bin/python scripts/build_demo.py --stages prepare,train
    .venv/bin/python scripts/build_demo.py --stages analyze,package,evaluate,teaser

Stages (each one's output is reused by the next; ``train`` resumes from its snapshot):

prepare   scikit-image's bundled images -> ``runs/demo/data/{train,analysis,heldout}/``.
          Three disjoint sets, no image shared between them (the stereo pair's two views count
          as one image and are used only for analysis):
          * train    (training only): astronaut, rocket, hubble_deep_field,
            immunohistochemistry, retina, brick, grass, gravel, moon, coins, cell, page
          * analysis (FAIG ranking only): six 128x128 crops of stereo_motorcycle (left view)
            and two of clock
          * heldout  (evaluation only: PSNR, masking effects, teaser; also the training log's
            validation PSNR, which is only logged, never used to choose anything):
            chelsea, camera, coffee
train     ``faig-gui train`` with the recipe below -> ``runs/demo/train/`` (about 75 min on
          2 CPU cores); in the background: ``nohup .venv/bin/python scripts/build_demo.py
          --stages prepare,train > runs/demo/train.out 2>&1 &``
analyze   ``faig-gui analyze`` (FAIG, paper settings: 100 steps, blur σ 2, noise σ 0.1, x2) on
          the analysis set -> ``runs/demo/analysis/``
package   copies the pair, the scores and small images into ``resources/demo/``
evaluate  ``faig-gui evaluate`` on the held-out set -> ``runs/demo/evaluate/`` and docs/
teaser    ``docs/teaser.png`` from the held-out set
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "demo"
DATA = RUNS / "data"
DEMO = ROOT / "resources" / "demo"
DOCS = ROOT / "docs"

TRAIN_IMAGES = ["astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
                "brick", "grass", "gravel", "moon", "coins", "cell", "page"]
HELDOUT_IMAGES = ["chelsea", "camera", "coffee"]
# (name, top, left) of 128x128 analysis crops
ANALYSIS_CROPS = [("stereo_motorcycle", 40, 60), ("stereo_motorcycle", 200, 200),
                  ("stereo_motorcycle", 330, 330), ("stereo_motorcycle", 100, 480),
                  ("stereo_motorcycle", 300, 580), ("stereo_motorcycle", 180, 20),
                  ("clock", 40, 60), ("clock", 150, 230)]
ANALYSIS_SIDE = 128

# The recipe (docs/training.md explains the choices). Sized for a shared 2-core CPU: one torch
# thread (OpenMP threads stall badly when the cores are oversubscribed), ~8500 steps of batch 8.
RECIPE = ["--num-feat", "32", "--num-block", "8", "--scale", "2",
          "--baseline-iters", "3500", "--baseline-lr", "4e-4",
          "--target-iters", "5000", "--target-lr", "1.5e-4",
          "--batch", "8", "--patch", "48", "--ema-decay", "0.999",
          "--snapshot-every", "200", "--val-every", "500", "--seed", "0", "--threads", "1"]

PY = sys.executable


def _skimage(name: str) -> np.ndarray:
    import skimage.data
    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):  # stereo_motorcycle: (left, right, disparity)
        img = img[0]
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def _write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rgb[:, :, ::-1])


def prepare() -> None:
    for name in TRAIN_IMAGES:
        _write(DATA / "train" / f"{name}.png", _skimage(name))
    for name in HELDOUT_IMAGES:
        _write(DATA / "heldout" / f"{name}.png", _skimage(name))
    for i, (name, top, left) in enumerate(ANALYSIS_CROPS):
        img = _skimage(name)
        crop = img[top:top + ANALYSIS_SIDE, left:left + ANALYSIS_SIDE]
        assert crop.shape[:2] == (ANALYSIS_SIDE, ANALYSIS_SIDE), (name, top, left, img.shape)
        _write(DATA / "analysis" / f"{i:02d}_{name}.png", crop)
    print(f"prepared {DATA}")


def train() -> None:
    from faig_gui.commands import train as train_cmd
    parser = argparse.ArgumentParser(prog="faig-gui train")
    train_cmd.add_arguments(parser)
    args = parser.parse_args(["--hr", str(DATA / "train"), "--val-hr", str(DATA / "heldout"),
                              "--out", str(RUNS / "train"), "--resume", *RECIPE])
    t0 = time.time()
    train_cmd.run(args)
    print(f"train stage: {(time.time() - t0) / 60:.1f} min wall clock")


def faig(*argv: str) -> None:
    cmd = [PY, "-m", "faig_gui", *argv]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def analyze() -> None:
    faig("analyze", "--baseline", str(RUNS / "train" / "baseline.pth"), "--target",
         str(RUNS / "train" / "target.pth"), "--hr", str(DATA / "analysis"), "--method", "faig",
         "--steps", "100", "--blur-sigma", "2", "--noise-sigma", "0.1", "--seed", "0",
         "--device", "cpu", "--out", str(RUNS / "analysis"))


def package() -> None:
    import torch
    from faig_gui.core.checkpoint import load_state_dict, save_checkpoint
    from faig_gui.core.degradations import degrade, mod_crop, paper_degradations, Degradation, seeded_generator
    from faig_gui.core.imageio import read_image, to_image, to_tensor, write_image
    DEMO.mkdir(parents=True, exist_ok=True)
    for name in ("baseline", "target"):
        # ship the EMA weights only (what every loader prefers): half the size
        sd = load_state_dict(RUNS / "train" / f"{name}.pth")
        save_checkpoint(DEMO / f"{name}.pth", sd, sd)
        payload = torch.load(DEMO / f"{name}.pth", weights_only=True)
        torch.save({"params_ema": payload["params_ema"]}, DEMO / f"{name}.pth")
    for f in ("scores.npz", "blur_index.txt", "noise_index.txt", "report.json"):
        shutil.copy2(RUNS / "analysis" / f, DEMO / ("analysis_report.json" if f == "report.json" else f))
    # analysis images: HR + LR clean/blur/noise, as `faig-gui degrade` writes them (seed 0)
    faig("degrade", "--hr", str(DATA / "analysis"), "--out", str(DEMO / "analysis"), "--scale", "2",
         "--blur-sigma", "2", "--noise-sigma", "0.1", "--seed", "0")
    # a few held-out images for trying things out: 256x256 centre crops, HR and degraded
    for i, name in enumerate(HELDOUT_IMAGES):
        img = _skimage(name)
        h, w = img.shape[:2]
        crop = img[(h - 256) // 2:(h - 256) // 2 + 256, (w - 256) // 2:(w - 256) // 2 + 256]
        _write(DEMO / "heldout" / "GT" / f"{name}.png", crop)
    faig("degrade", "--hr", str(DEMO / "heldout" / "GT"), "--out", str(DEMO / "heldout"), "--scale", "2",
         "--blur-sigma", "2", "--noise-sigma", "0.1", "--seed", "1")
    log = [json.loads(l) for l in (RUNS / "train" / "train_log.jsonl").read_text().splitlines()]
    shutil.copy2(RUNS / "train" / "train_log.jsonl", DEMO / "train_log.jsonl")
    total = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file())
    print(f"packaged {DEMO} ({total / 1e6:.2f} MB, {len(log)} log records)")


def evaluate() -> None:
    faig("evaluate", "--baseline", str(RUNS / "train" / "baseline.pth"), "--target",
         str(RUNS / "train" / "target.pth"), "--analysis-hr", str(DATA / "analysis"),
         "--hr", str(DATA / "heldout"), "--methods", "faig,ig,abs,random", "--proportions", "1,3,5,10",
         "--steps", "100", "--device", "cpu", "--psnr", "--out", str(RUNS / "evaluate"))
    for f in ("report.md", "report.json", "effects.svg"):
        shutil.copy2(RUNS / "evaluate" / f, DOCS / ("results_" + f if f != "effects.svg" else "results_effects.svg"))


def teaser() -> None:
    faig("evaluate", "--baseline", str(RUNS / "train" / "baseline.pth"), "--target",
         str(RUNS / "train" / "target.pth"), "--scores", str(RUNS / "analysis" / "scores.npz"),
         "--hr", str(DATA / "heldout"), "--teaser", str(DOCS / "teaser.png"), "--out",
         str(RUNS / "teaser"))


STAGES = {"prepare": prepare, "train": train, "analyze": analyze, "package": package,
          "evaluate": evaluate, "teaser": teaser}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of: " + ", ".join(STAGES))
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    for stage in args.stages.split(","):
        if stage not in STAGES:
            p.error(f"unknown stage {stage!r}")
        t0 = time.time()
        STAGES[stage]()
        print(f"[{stage}] {time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
