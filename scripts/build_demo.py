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
          * analysis (FAIG ranking only): eight disjoint 128x128 crops of stereo_motorcycle
            (left view)
          * heldout  (evaluation only: PSNR, masking effects, teaser; also the training log's
            validation PSNR, which is only logged, never used to choose anything):
            256x256 centre crops of chelsea, camera, coffee
train     ``faig-gui train`` with the recipe below -> ``runs/demo/train/`` (about 75 min on
          2 CPU cores); in the background: ``nohup .venv/bin/python scripts/build_demo.py
          --stages prepare,train > runs/demo/train.out 2>&1 &``
finetune  continues the target's fine-tune with fresh cosine schedules (``faig-gui train
          --baseline ... --target-init ...``), the baseline unchanged, in the steps FINETUNES
          lists: ``runs/demo/train/`` -> ``runs/demo/finetune/`` (5,000 steps of batch 8 x 48²,
          31 min) -> ``runs/demo/finetune2/`` (4,000 steps of batch 16 x 64², ~35 min); the
          last is the pair every later stage uses
analyze   ``faig-gui analyze`` (FAIG, paper settings: 100 steps, blur σ 2, noise σ 0.1, x2) on
          the analysis set -> ``runs/demo/analysis/``; IG likewise -> ``runs/demo/analysis_ig/``
package   copies the pair, the scores and small images into ``resources/demo/``
evaluate  ``faig-gui evaluate`` on the held-out set -> ``docs/results/`` (report.md,
          report.json, effects.svg) and ``docs/teaser.png``
teaser    only ``docs/teaser.png`` (FAIG top 1 %, held-out chelsea)

``--pair NAME`` runs the same stages for the second demo, SRVGGNetCompact x2 (32 features, 16
convs) with three functions (blur σ 2, noise σ 0.1, JPEG), on the same image sets, into
``runs/demo_NAME/``, ``docs/results_NAME/`` and ``docs/teaser_NAME.png``. Seven recipes were
tried (docs/results.md, second section, compares them); the one named by ``SHIPPED_SRVGG``
(srvgg3g: srvgg3b's baseline, a target fine-tuned on the one-of mix with JPEG q 10) packages
into ``resources/demo_srvgg/``, every other one into ``runs/demo_NAME/package/``:

    srvgg3    baseline 2,500 steps, target 3,000 + 2,000 (``finetune``), independent draws p 0.5, JPEG q 30
    srvgg3b   baseline 5,000 steps, gentle 5,000-step fine-tune at 1e-4, JPEG q 20
    srvgg3c   srvgg3b's baseline kept; target 6,000 steps at 3e-4, noise p 0.3, JPEG q 30
    srvgg3d   srvgg3b's baseline; target 8,000 steps on the one-of mix, a quarter each, JPEG q 30
    srvgg3e   as srvgg3d with shares blur 0.2, noise 0.15, JPEG 0.35
    srvgg3f   as srvgg3d with JPEG q 15
    srvgg3g   as srvgg3d with JPEG q 10 (shipped)

The shipped pair from nothing (srvgg3b's train stage makes the baseline, and its own target;
srvgg3g's then trains its target from that baseline):

    .venv/bin/python scripts/build_demo.py --pair srvgg3b --stages prepare,train
    .venv/bin/python scripts/build_demo.py --pair srvgg3g --stages train
    .venv/bin/python scripts/build_demo.py --pair srvgg3g --stages analyze,package,evaluate
"""
from __future__ import annotations

import argparse
import json
import os
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
                  ("stereo_motorcycle", 20, 300), ("stereo_motorcycle", 360, 120)]
ANALYSIS_SIDE = 128
HELDOUT_SIDE = 256  # centre crops: small enough to ship and to evaluate quickly

# The recipe (docs/training.md explains the choices). Sized for a shared 2-core CPU: one torch
# thread (OpenMP threads stall badly when the cores are oversubscribed), ~6500 steps of batch 8.
RECIPE = ["--num-feat", "32", "--num-block", "8", "--scale", "2",
          "--baseline-iters", "3500", "--baseline-lr", "4e-4",
          "--target-iters", "3000", "--target-lr", "1.5e-4",
          "--batch", "8", "--patch", "48", "--ema-decay", "0.999",
          "--snapshot-every", "200", "--val-every", "500", "--seed", "0", "--threads", "1"]

# Then the target was trained further, each step from the previous one's target (docs/results.md):
# the first moved clean and blur inputs, the second (larger batches and patches) mostly noise
_NET = ["--num-feat", "32", "--num-block", "8", "--scale", "2", "--ema-decay", "0.999",
        "--snapshot-every", "200", "--val-every", "500"]
FINETUNES = [
    ("finetune", "train", [*_NET, "--target-iters", "5000", "--target-lr", "1e-4", "--batch", "8",
                           "--patch", "48", "--seed", "1", "--threads", "1"]),
    ("finetune2", "finetune", [*_NET, "--target-iters", "4000", "--target-lr", "1e-4", "--batch", "16",
                               "--patch", "64", "--seed", "2", "--threads", "2"]),
]
PAIR = RUNS / FINETUNES[-1][0]   # the shipped pair
#: the degradations the pair is analysed and evaluated on (the paper's two)
DEGRADATIONS = ["--blur-sigma", "2", "--noise-sigma", "0.1"]
TEASER_IMAGE = "teaser.png"
RESULTS = "results"     # docs/results/: the evaluate stage's report
ANALYZE_STEPS = "100"   # FAIG/IG path steps of the shipped scores

# the second demo's network (SRVGGNetCompact 32/16, x2) and its three degradations, JPEG at ``quality``
SRVGG_NET = ["--arch", "srvgg", "--hp", "num_feat=32,num_conv=16", "--scale", "2"]


def _three_degradations(quality: int) -> list[str]:
    return ["--degradation", "blur=blur:2,down", "--degradation", "noise=down,noise:0.1",
            "--degradation", f"jpeg=down,jpeg:{quality}"]


# --pair srvgg3: SRVGGNetCompact (32 features, 16 convs, x2) with three functions, blur, noise
# and JPEG, shipped in resources/demo_srvgg/ until srvgg3g replaced it (SHIPPED_SRVGG below); its
# package stage now writes runs/demo_srvgg3/package/. The data are the first pair's (runs/demo/data), so
# both pairs are judged on the same held-out images. One training run, then the target trained
# further from it (the baseline unchanged) on a fresh cosine schedule at a higher rate: after the
# first 3,000 steps noise had gained only ~1 dB.
SRVGG3 = {
    "runs": ROOT / "runs" / "demo_srvgg3",
    "degradations": _three_degradations(30),
    "recipe": [*SRVGG_NET,
               "--baseline-iters", "2500", "--baseline-lr", "5e-4",
               "--target-iters", "3000", "--target-lr", "2e-4",
               "--batch", "8", "--patch", "48", "--ema-decay", "0.999",
               "--snapshot-every", "200", "--val-every", "500", "--seed", "0", "--threads", "1"],
    "teaser": "teaser_srvgg3.png",
    "results": "results_srvgg3",
    # 30 path steps, not the paper's 100: on the shared CPU one analysis image took 3.5 min at
    # 100 steps (three degradations), 28 min for the eight; the convergence delta in
    # analysis_report.json says how far 30 steps are from L(θ̄) − L(θ)
    "analyze_steps": "30",
    "finetunes": [("finetune", "train", [*SRVGG_NET,
                                         "--target-iters", "2000", "--target-lr", "4e-4", "--batch", "8",
                                         "--patch", "48", "--ema-decay", "0.999", "--snapshot-every", "200",
                                         "--val-every", "500", "--seed", "1", "--threads", "1"])],
}

# --pair srvgg3b: a second recipe for the same three functions, tried and NOT shipped (it met
# fewer of the issue's targets; docs/results.md, second section, has both pairs' measures). It
# went after the first pair's open points: its baseline was still improving at 2,500 steps, and
# its blur and JPEG filters were not selective. So: a baseline twice as long with batches twice as
# large; a gentler fine-tune (5,000 steps at 1e-4 instead of 3,000 at 2e-4 + 2,000 at 4e-4) from
# the baseline's EMA, as the paper (and TRAINING-NOTES.md's third trial) do; JPEG at quality 20
# instead of 30, a stronger artefact. Sized from a 50-step measure (80 ms/step at batch 8 x 48²,
# 280 ms at 16 x 64², one thread, idle core) to train within ~75 min on the shared CPU; it took 40.
# Its package stage writes runs/demo_srvgg3b/package/, never resources/.
SRVGG3B = {
    "runs": ROOT / "runs" / "demo_srvgg3b",
    "degradations": _three_degradations(20),
    "recipe": [*SRVGG_NET,
               "--baseline-iters", "5000", "--baseline-lr", "5e-4",
               "--target-iters", "5000", "--target-lr", "1e-4",
               "--batch", "16", "--patch", "48", "--ema-decay", "0.999",
               "--snapshot-every", "200", "--val-every", "1000", "--seed", "0", "--threads", "1"],
    "teaser": "teaser_srvgg3b.png",
    "results": "results_srvgg3b",
    "analyze_steps": "100",   # 30 left up to 52 % convergence delta on this pair (its JPEG loss change is small)
    "finetunes": [],
}

# --pair srvgg3c: a third try for issue 20, target only. srvgg3b's baseline is kept (clean 31.08 dB
# held-out, 2.9 dB above the shipped pair's) and a new target is fine-tuned from its EMA weights;
# srvgg3b's 1e-4 fine-tune learnt noise only (blur +0.36, JPEG q20 +0.17, clean -2.80 dB), so:
# a higher rate (3e-4 cosine, between the shipped pair's 2e-4 and 4e-4), 6,000 steps of 16 x 48²,
# noise drawn less often (p 0.3 against 0.5 for blur and JPEG) so it does not dominate the L1
# loss, and JPEG at quality 30 as the shipped pair's, so the evaluations compare. Its package
# stage writes runs/demo_srvgg3c/package/, never resources/.
SRVGG3C = {
    "runs": ROOT / "runs" / "demo_srvgg3c",
    "degradations": _three_degradations(30),
    "recipe": [*SRVGG_NET,
               "--baseline", str(ROOT / "runs" / "demo_srvgg3b" / "train" / "baseline.pth"),
               "--target-iters", "6000", "--target-lr", "3e-4",
               "--prob", "noise=0.3", "--prob", "blur=0.5", "--prob", "jpeg=0.5",
               "--batch", "16", "--patch", "48", "--ema-decay", "0.999",
               "--snapshot-every", "200", "--val-every", "1000", "--seed", "3", "--threads", "1"],
    "teaser": "teaser_srvgg3c.png",
    "results": "results_srvgg3c",
    "analyze_steps": "100",
    "finetunes": [],
}


def _srvgg3_try(name: str, seed: int, iters: int, shares: dict[str, float], quality: int = 30) -> dict:
    """A further try for issue 20 on srvgg3c's pattern (srvgg3b's baseline kept, 3e-4 cosine,
    16 x 48²), JPEG at ``quality``, and the one-of mix: each sample is clean or exactly one
    degradation, by ``shares`` (clean takes the rest). srvgg3b/3c drew the three independently,
    so 1/8 of the samples were JPEG alone and JPEG mostly came on top of noise or blur; neither
    learnt JPEG (+0.17, +0.02 dB)."""
    recipe = list(SRVGG3C["recipe"])
    i = recipe.index("--prob")
    recipe[i:i + 6] = [a for k, v in shares.items() for a in ("--prob", f"{k}={v:g}")] + ["--mix", "one-of"]
    recipe[recipe.index("--target-iters") + 1] = str(iters)
    recipe[recipe.index("--seed") + 1] = str(seed)
    return {**SRVGG3C, "runs": ROOT / "runs" / f"demo_{name}",
            "recipe": recipe, "teaser": f"teaser_{name}.png", "results": f"results_{name}",
            "degradations": _three_degradations(quality)}


# --pair srvgg3d: equal shares, a quarter each of clean, blur, noise and JPEG alone
SRVGG3D = _srvgg3_try("srvgg3d", 4, 8000, {"blur": 0.25, "noise": 0.25, "jpeg": 0.25})
# --pair srvgg3e: more clean (clean inputs lost 2-2.8 dB in srvgg3b/3c) and the most JPEG
SRVGG3E = _srvgg3_try("srvgg3e", 5, 8000, {"blur": 0.2, "noise": 0.15, "jpeg": 0.35})
# --pair srvgg3f / srvgg3g: srvgg3d's shares with a stronger JPEG (q 15, q 10): at q 30 the target
# gained 0.3-0.4 dB on JPEG in srvgg3d/3e while blur gained 3.5 and noise 1.35
SRVGG3F = _srvgg3_try("srvgg3f", 6, 8000, {"blur": 0.25, "noise": 0.25, "jpeg": 0.25}, quality=15)
SRVGG3G = _srvgg3_try("srvgg3g", 7, 8000, {"blur": 0.25, "noise": 0.25, "jpeg": 0.25}, quality=10)
# --pair srvgg3h: srvgg3g's recipe on a wider net (48 features instead of 32, 2.2x the weights),
# with its own baseline trained as srvgg3b's was (5,000 steps at 5e-4). Every 32-feature recipe
# gained 0.3-0.5 dB on JPEG, and a JPEG-only fine-tune of srvgg3b's baseline (3,000 steps of the
# same 16 x 48² batches at 3e-4, JPEG q10 on every sample) gained 0.66 dB on the validation images
# (srvgg3g's target 0.40) while clean lost 3.1: even alone, JPEG stays short of 1 dB at this width.
SRVGG3H = {**SRVGG3G, "runs": ROOT / "runs" / "demo_srvgg3h", "teaser": "teaser_srvgg3h.png",
           "results": "results_srvgg3h",
           "recipe": ["--arch", "srvgg", "--hp", "num_feat=48,num_conv=16", "--scale", "2",
                      "--baseline-iters", "5000", "--baseline-lr", "5e-4",
                      "--target-iters", "8000", "--target-lr", "3e-4",
                      "--prob", "blur=0.25", "--prob", "noise=0.25", "--prob", "jpeg=0.25", "--mix", "one-of",
                      "--batch", "16", "--patch", "48", "--ema-decay", "0.999",
                      "--snapshot-every", "200", "--val-every", "1000", "--seed", "8", "--threads", "1"]}
#: the recipe whose pair is shipped in resources/demo_srvgg/; every other one's package stage
#: writes runs/demo_<name>/package/
SHIPPED_SRVGG = "srvgg3h"
PAIRS = {"srvgg3": SRVGG3, "srvgg3b": SRVGG3B, "srvgg3c": SRVGG3C, "srvgg3d": SRVGG3D, "srvgg3e": SRVGG3E,
         "srvgg3f": SRVGG3F, "srvgg3g": SRVGG3G, "srvgg3h": SRVGG3H}


def _degradations():
    from faig_gui.commands._common import add_degradations, degradations_from
    p = argparse.ArgumentParser()
    add_degradations(p)
    return degradations_from(p.parse_args(DEGRADATIONS))


def select_pair(name: str) -> None:
    """Point the stages at one demo pair: 'msrresnet' (the default, resources/demo/) or one of
    :data:`PAIRS`, the three-function recipes (:data:`SHIPPED_SRVGG`'s in resources/demo_srvgg/)."""
    global RUNS, DEMO, RECIPE, FINETUNES, PAIR, DEGRADATIONS, TEASER_IMAGE, RESULTS, ANALYZE_STEPS
    if name == "msrresnet":
        return
    pair = PAIRS[name]
    RUNS, TEASER_IMAGE, RESULTS = pair["runs"], pair["teaser"], pair["results"]
    DEMO = ROOT / "resources" / "demo_srvgg" if name == SHIPPED_SRVGG else RUNS / "package"
    RECIPE = [*pair["recipe"], *pair["degradations"]]
    FINETUNES = [(n, start, [*recipe, *pair["degradations"]]) for n, start, recipe in pair["finetunes"]]
    PAIR = RUNS / (FINETUNES[-1][0] if FINETUNES else "train")
    DEGRADATIONS = pair["degradations"]
    ANALYZE_STEPS = pair["analyze_steps"]


PY = sys.executable


def skimage_picture(name: str) -> np.ndarray:
    """scikit-image's picture ``name`` as H x W x 3 uint8 RGB (grey ones repeated, the stereo
    pair's left view); make_calibration_set.py and eval_prediction.py read theirs through it."""
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


def _centre(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    return img[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]


def prepare() -> None:
    for name in TRAIN_IMAGES:
        _write(DATA / "train" / f"{name}.png", skimage_picture(name))
    for name in HELDOUT_IMAGES:
        _write(DATA / "heldout" / f"{name}.png", _centre(skimage_picture(name), HELDOUT_SIDE))
    for i, (name, top, left) in enumerate(ANALYSIS_CROPS):
        img = skimage_picture(name)
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
    print("train", " ".join(args_ for args_ in RECIPE), flush=True)
    t0 = time.time()
    train_cmd.run(args)
    print(f"train stage: {(time.time() - t0) / 60:.1f} min wall clock")


def finetune() -> None:
    from faig_gui.commands import train as train_cmd
    for name, start, recipe in FINETUNES:
        parser = argparse.ArgumentParser(prog="faig-gui train")
        train_cmd.add_arguments(parser)
        args = parser.parse_args(["--hr", str(DATA / "train"), "--val-hr", str(DATA / "heldout"),
                                  "--out", str(RUNS / name), "--baseline", str(RUNS / start / "baseline.pth"),
                                  "--target-init", str(RUNS / start / "target.pth"), "--resume", *recipe])
        t0 = time.time()
        train_cmd.run(args)
        print(f"{name}: {(time.time() - t0) / 60:.1f} min wall clock")


def faig(*argv: str) -> None:
    cmd = [PY, "-m", "faig_gui", *argv]
    print("+", " ".join(cmd), flush=True)
    # one OpenMP thread: on a small shared CPU, threads mostly wait for each other
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def _analyze_cmd(method: str, out: Path) -> list[str]:
    return [PY, "-m", "faig_gui", "analyze", "--baseline", str(PAIR / "baseline.pth"),
            "--target", str(PAIR / "target.pth"), "--hr", str(DATA / "analysis"),
            "--method", method, "--steps", ANALYZE_STEPS, *DEGRADATIONS,
            "--seed", "0", "--device", "cpu", "--out", str(out)]


def analyze() -> None:
    """FAIG (the shipped scores) and IG (for the evaluation table) on the analysis images, as two
    single-threaded processes side by side."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    jobs = [subprocess.Popen(_analyze_cmd(m, RUNS / out), cwd=ROOT, env=env)
            for m, out in (("faig", "analysis"), ("ig", "analysis_ig"))]
    for job in jobs:
        if job.wait() != 0:
            raise SystemExit(f"analyze failed: {' '.join(job.args)}")


def package() -> None:
    DEMO.mkdir(parents=True, exist_ok=True)
    for name in ("baseline", "target"):  # BasicSR format: {'params', 'params_ema'}
        shutil.copy2(PAIR / f"{name}.pth", DEMO / f"{name}.pth")
    names = [d.name for d in _degradations()]
    for f in ("scores.npz", *(f"{n}_index.txt" for n in names), "report.json"):
        shutil.copy2(RUNS / "analysis" / f, DEMO / ("analysis_report.json" if f == "report.json" else f))
    if DEGRADATIONS != ["--blur-sigma", "2", "--noise-sigma", "0.1"]:
        # which degradations the scores are for (core/demo.py reads it; the first demo has none)
        (DEMO / "degradations.json").write_text(json.dumps([d.to_dict() for d in _degradations()], indent=1))
    # analysis images: HR + LR clean and each degradation, as `faig-gui degrade` writes them (seed 0)
    faig("degrade", "--hr", str(DATA / "analysis"), "--out", str(DEMO / "analysis"), "--scale", "2",
         *DEGRADATIONS, "--seed", "0")
    # the held-out images for trying things out: HR and degraded (seed 1, as `evaluate` uses)
    faig("degrade", "--hr", str(DATA / "heldout"), "--out", str(DEMO / "heldout"), "--scale", "2",
         *DEGRADATIONS, "--seed", "1")
    # every stage's log, in order; the fine-tune steps' records are marked with their names. A
    # pair whose baseline was trained by another run (--baseline) starts with that run's baseline records
    log = []
    if "--baseline" in RECIPE:
        other = Path(RECIPE[RECIPE.index("--baseline") + 1]).parent / "train_log.jsonl"
        log += [r for r in map(json.loads, other.read_text().splitlines()) if r.get("stage") == "baseline"]
    log += [json.loads(line) for line in (RUNS / "train" / "train_log.jsonl").read_text().splitlines()]
    for name, _, _ in FINETUNES:
        log += [{**json.loads(line), "stage": name} for line in (RUNS / name / "train_log.jsonl").read_text().splitlines()]
    (DEMO / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    total = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file())
    print(f"packaged {DEMO} ({total / 1e6:.2f} MB, {len(log)} log records)")


def _evaluate(methods: str, proportions: str, out: Path) -> None:
    faig("evaluate", "--baseline", str(PAIR / "baseline.pth"), "--target",
         str(PAIR / "target.pth"), "--analysis-hr", str(DATA / "analysis"),
         "--scores", str(RUNS / "analysis" / "scores.npz"),
         "--scores", "ig=" + str(RUNS / "analysis_ig" / "scores.npz"), "--hr", str(DATA / "heldout"),
         "--methods", methods, "--proportions", proportions, "--steps", "100", "--seed", "0",
         "--device", "cpu", "--teaser", str(DOCS / TEASER_IMAGE), "--teaser-image", "chelsea.png",
         *DEGRADATIONS, "--out", str(out))


def evaluate() -> None:
    """The full table (FAIG and IG scores from the analyze stage, on the analysis images), PSNR,
    the plot and the teaser -> docs/results/ and docs/teaser.png."""
    _evaluate("faig,ig,abs,random", "1,3,5,10", DOCS / RESULTS)


def teaser() -> None:
    _evaluate("faig", "1", RUNS / "teaser")


STAGES = {"prepare": prepare, "train": train, "finetune": finetune, "analyze": analyze, "package": package,
          "evaluate": evaluate, "teaser": teaser}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of: " + ", ".join(STAGES))
    p.add_argument("--pair", default="msrresnet", choices=["msrresnet", *PAIRS],
                   help=f"which demo pair: msrresnet (resources/demo/, blur and noise), {SHIPPED_SRVGG} "
                        "(resources/demo_srvgg/, blur, noise and JPEG) or another srvgg3* recipe for "
                        "that pair (tried, not shipped: runs/demo_<name>/package/)")
    args = p.parse_args()
    select_pair(args.pair)
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
