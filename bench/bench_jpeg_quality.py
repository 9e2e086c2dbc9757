#!/usr/bin/env python
"""How often, how well and how fast a JPEG's quality is read from the image by re-compression
(core/prediction/jpeg_quality.py); prints JSON.

    .venv/bin/python bench/bench_jpeg_quality.py [--crops 4] [--seed 1]

The held-out crops of scripts/eval_prediction.py (chelsea, camera, coffee, text, cell; 160² HR,
``--crops`` per picture), degraded at x2 as clean, noise σ 0.1 or blur σ 2 in turn, compressed
at each quality (OpenCV, JPEG last), then cropped by (3, 5) pixels so that the block grid is not
at the origin. Per quality: the share of crops read, the share read exactly, any wrong reading,
and the time per crop; and the crops never compressed (nothing should be read there).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from eval_prediction import heldout_crops  # noqa: E402
from faig_gui.core.degradations import Degradation, degrade, jpeg, seeded_generator  # noqa: E402
from faig_gui.core.prediction.jpeg_quality import jpeg_quality_estimate  # noqa: E402

QUALITIES = (5, 10, 20, 30, 50, 75, 90, 95)
KINDS = (Degradation("clean"), Degradation("noise", noise_sigma=0.1), Degradation("blur", blur_sigma=2.0))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--crops", type=int, default=4, help="crops per held-out picture")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(1)
    crops = heldout_crops(args.crops, 160, args.seed)
    lrs = [degrade(hr, 2, KINDS[n % len(KINDS)], seeded_generator(n)) for n, hr in enumerate(crops)]
    rows = {}
    for q in [*QUALITIES, None]:
        read, exact, wrong, ms = 0, 0, [], []
        for lr in lrs:
            x = (jpeg(lr, q) if q is not None else lr)[..., 3:, 5:]
            t0 = time.perf_counter()
            found = jpeg_quality_estimate(x)
            ms.append(1000 * (time.perf_counter() - t0))
            if found is not None:
                read += 1
                if q is not None and found.quality == q:
                    exact += 1
                else:
                    wrong.append(found.quality)
        rows[str(q) if q is not None else "never compressed"] = {
            "crops": len(lrs), "read": read, "exact": exact, "wrong_readings": wrong,
            "ms_median": round(statistics.median(ms), 1), "ms_max": round(max(ms), 1)}
    print(json.dumps({"cpu": platform.processor() or platform.machine(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
