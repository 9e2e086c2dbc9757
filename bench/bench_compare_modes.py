"""How much of a 1 % top-k mask's change each compare mode of the centre view puts on screen.

For the bundled demo pair, each held-out input (blur, noise, LR) and each degradation's top 1 %
filters (the window's opening mask), the share of output pixels at which the compare view's
displayed value differs from what the unmasked target would show by at least ``--levels`` of
255 grey levels (a difference a viewer can see):

- split (Before / after): a pixel on the masked side shows the masked output instead of the
  target's: its change is max over RGB |masked − target| (the most generous reading: it
  assumes the viewer can compare the two halves pixel by pixel);
- difference ×4: the view shows 4 · mean over RGB |masked − target| against black;
- gradient-map difference: |G(masked) − G(target)| scaled to its own maximum, so some pixel
  is always at full brightness whatever the change; reported as the share above the levels
  on a fixed scale (the largest gradient-map value of the target) instead.

    .venv/bin/python bench/bench_compare_modes.py [--levels 3]

Prints JSON: per mode, the median and range over the inputs and masks.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faig_gui.core.demo import demo_files  # noqa: E402
from faig_gui.core.exports import target_and_masked  # noqa: E402
from faig_gui.core.filters import FilterIndex, top_indices  # noqa: E402
from faig_gui.core.imageio import list_images, read_image, to_tensor  # noqa: E402
from faig_gui.core.masking import FilterMask, masked_state_dict  # noqa: E402
from faig_gui.core.metrics import gradient_map  # noqa: E402
from faig_gui.core.registry import default_registry  # noqa: E402
from faig_gui.core.results import load_scores  # noqa: E402


def shares(target: np.ndarray, masked: np.ndarray, level: float) -> dict[str, float]:
    diff = np.abs(masked.astype(np.float64) - target)
    g_t = gradient_map(to_tensor(target))[0, 0].double().numpy()
    g_m = gradient_map(to_tensor(masked))[0, 0].double().numpy()
    return {"split": float((diff.max(axis=2) >= level).mean()),
            "difference_x4": float((np.clip(4 * diff.mean(axis=2), 0, 1) >= level).mean()),
            "gradient_difference_fixed_scale": float((np.abs(g_m - g_t) / max(g_t.max(), 1e-6) >= level).mean())}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--levels", type=float, default=3.0, help="visible change, in 8-bit grey levels")
    p.add_argument("--proportion", type=float, default=1.0, help="top-k percent masked")
    args = p.parse_args()
    torch.set_num_threads(2)
    files = demo_files()
    baseline, target = default_registry().load_pair(files.baseline, files.target)
    index = FilterIndex.from_state_dict(target.state_dict)
    scores = load_scores(files.scores, index.total)
    level = args.levels / 255.0
    found: dict[str, list[float]] = {}
    for _d, s in scores.items():
        params = masked_state_dict(target.state_dict, baseline.state_dict,
                                   FilterMask(top_indices(s, args.proportion / 100)), index)
        for folder in ("blur", "noise", "LR"):
            for path in list_images(files.heldout / folder):
                t, m = target_and_masked(target.module, params, target.scale, read_image(path))
                for mode, v in shares(t, m, level).items():
                    found.setdefault(mode, []).append(v)
    print(json.dumps({"levels": args.levels, "proportion": args.proportion, "inputs": len(found["split"]),
                      "share_of_pixels_visibly_changed": {
                          m: {"median": round(float(np.median(v)), 4), "min": round(min(v), 4),
                              "max": round(max(v), 4)} for m, v in found.items()}}, indent=1))


if __name__ == "__main__":
    main()
