#!/usr/bin/env python
"""Writes the predictor's bundled calibration content, resources/calibration/*.png (reproducible).

    .venv/bin/python scripts/make_calibration_set.py

Two 128x128 HR crops of each scikit-image picture in CALIBRATION (faces, fine texture, foliage,
text, architecture, smooth gradients, microscopy, astronomy): per picture, the crops on a
64-pixel grid at the 20th and 70th percentile of texture (mean gradient magnitude), so that each
picture gives a busy crop and a calmer one. The held-out pictures (HELDOUT) are never written
here: scripts/eval_prediction.py measures the accuracy on them.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from build_demo import skimage_picture   # this folder is sys.path[0] when the script runs

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "resources" / "calibration"
SIDE = 128
#: the calibration's content (scikit-image's names), what each stands for
CALIBRATION = {
    "astronaut": "a face, fabric, flags", "brick": "a brick wall (architecture, fine texture)",
    "grass": "foliage", "gravel": "fine random texture", "page": "printed text",
    "coins": "metal relief", "moon": "smooth shading, craters", "rocket": "architecture, sky, trees",
    "hubble_deep_field": "stars on black", "immunohistochemistry": "microscopy, colour",
    "retina": "smooth gradients, vessels", "colorwheel": "smooth colour gradients",
    "stereo_motorcycle": "a motorcycle, metal, a room (the demo's analysis content)",
}
#: never in the calibration: the evaluation's content
HELDOUT = ("chelsea", "camera", "coffee", "text", "cell")
PERCENTILES = (20, 70)


def crops(img: np.ndarray) -> list[tuple[int, int]]:
    grey = img.astype(np.float64).mean(2) / 255
    gy, gx = np.gradient(grey)
    g = np.hypot(gx, gy)
    h, w = grey.shape
    cands = sorted((float(g[y:y + SIDE, x:x + SIDE].mean()), y, x)
                   for y in range(0, h - SIDE + 1, 64) for x in range(0, w - SIDE + 1, 64))
    picks = []
    for q in PERCENTILES:
        _, y, x = cands[min(len(cands) - 1, round(q / 100 * (len(cands) - 1)))]
        if (y, x) not in picks:
            picks.append((y, x))
    return picks


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    lines = ["# The predictor's calibration content", "",
             "Written by `scripts/make_calibration_set.py` (do not edit by hand): 128x128 HR crops of "
             "scikit-image's pictures. The predictor calibrates on these and on up to four of the "
             "session's analysis images (faig_gui/core/prediction/content.py). Never used here, and kept "
             f"for the evaluation of scripts/eval_prediction.py: {', '.join(HELDOUT)}.", "",
             "| file | picture | content | crop (top, left) |", "|---|---|---|---|"]
    for name, what in CALIBRATION.items():
        img = skimage_picture(name)
        for k, (y, x) in enumerate(crops(img)):
            path = OUT / f"{name}_{k}.png"
            cv2.imwrite(str(path), img[y:y + SIDE, x:x + SIDE, ::-1])
            lines.append(f"| {path.name} | {name} | {what} | {y}, {x} |")
    (OUT / "README.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
