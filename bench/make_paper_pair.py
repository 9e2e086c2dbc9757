#!/usr/bin/env python
"""Write a paper-size MSRResNet pair (64 features, 16 blocks, x2) with random weights, and a few
128x128 HR images, for timing `faig-gui analyze` (docs/core.md).

    .venv/bin/python bench/make_paper_pair.py --out runs/paper_pair [--images 2] [--side 128]

The baseline is BasicSR's initialisation; the target is the baseline plus a small random change
(as if fine-tuned), so that the FAIG path has a length. Weights do not change the cost of
attribution, only its values, so random weights time the real thing. Writes
``OUT/baseline.pth``, ``OUT/target.pth`` (BasicSR format: params and params_ema) and
``OUT/hr/*.png`` (crops of scikit-image's bundled photographs, or seeded noise if it is absent).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faig_gui.core.checkpoint import save_checkpoint  # noqa: E402
from faig_gui.core.imageio import write_image  # noqa: E402
from faig_gui.core.registry import default_registry  # noqa: E402


def paper_pair(seed: int = 0, change: float = 0.05) -> tuple[dict, dict]:
    torch.manual_seed(seed)
    arch = default_registry().get("msrresnet")
    baseline = arch.new_state_dict(num_feat=64, num_block=16, scale=2)
    target = {k: v + change * v.abs().mean() * torch.randn_like(v) for k, v in baseline.items()}
    return baseline, target


def hr_images(count: int, side: int, seed: int = 0) -> list[np.ndarray]:
    try:
        from skimage import data
        photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
        return [np.asarray(photos[n % len(photos)][40:40 + side, 60:60 + side], dtype=np.float32) / 255
                for n in range(count)]
    except ImportError:
        rng = np.random.default_rng(seed)
        return [rng.random((side, side, 3), dtype=np.float32) for _ in range(count)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/paper_pair")
    p.add_argument("--images", type=int, default=2)
    p.add_argument("--side", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out = Path(args.out)
    baseline, target = paper_pair(args.seed)
    save_checkpoint(out / "baseline.pth", baseline, params_ema=baseline)
    save_checkpoint(out / "target.pth", target, params_ema=target)
    for n, img in enumerate(hr_images(args.images, args.side, args.seed)):
        write_image(out / "hr" / f"img{n:02d}.png", img)
    filters = sum(v.shape[0] * v.shape[1] for k, v in baseline.items() if k.endswith("weight") and v.ndim == 4)
    print(f"wrote {out}/baseline.pth, target.pth ({filters} filters) and {args.images} HR images "
          f"of {args.side}x{args.side} in {out}/hr")
    return 0


if __name__ == "__main__":
    sys.exit(main())
