"""A tiny pair and image set for the distributed, resume and GPU-check tests (MSRResNet 8
features, 1 block, x2; 16x16 HR images), and a reader of the per-image store written from the
file format alone (npz arrays, JSON strings), independent of core/store.py."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from faig_gui.core.checkpoint import save_checkpoint
from faig_gui.core.registry import default_registry


def make_pair_and_images(folder: Path, n_images: int = 3, size: int = 16) -> Path:
    torch.manual_seed(0)
    base = default_registry().get("msrresnet").new_state_dict(num_feat=8, num_block=1, scale=2)
    targ = {k: v + (v.abs().mean() + 0.05) * torch.randn_like(v) for k, v in base.items()}
    save_checkpoint(folder / "baseline.pth", base, params_ema=base)
    save_checkpoint(folder / "target.pth", targ, params_ema=targ)
    (folder / "hr").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n_images):
        cv2.imwrite(str(folder / "hr" / f"im{i}.png"), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    return folder


def read_store(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    """{image stem: {degradation: attribution}} from OUT/attributions/*.npz."""
    out = {}
    for path in sorted(folder.glob("*.npz")):
        with np.load(path, allow_pickle=False) as data:
            json.loads(str(data["settings"]))   # a JSON record, no pickle
            out[path.stem] = {k[len("attr_"):]: np.array(data[k]) for k in data.files if k.startswith("attr_")}
    return out
