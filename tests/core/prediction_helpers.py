"""Tiny pairs and images shared by the prediction tests."""
from __future__ import annotations

import numpy as np
import torch

from faig_gui.core.registry import default_registry


def make_pair(arch="msrresnet", hp=None, seed=0, change=0.3):
    reg = default_registry()
    torch.manual_seed(seed)
    hp = hp or dict(num_feat=4, num_block=1, scale=2)
    base = reg.get(arch).new_state_dict(**hp)
    targ = {k: v + change * (v.abs().mean() + 0.01) * torch.randn_like(v) for k, v in base.items()}
    return reg.model_from_state_dict(base), reg.model_from_state_dict(targ)


def smooth_hr(seed, side=32):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    img = np.stack([np.sin(rng.uniform(3, 12) * x + rng.uniform(3, 12) * y + rng.uniform(0, 6)) for _ in range(3)])
    img = img + (x > rng.uniform(0.2, 0.8))
    img = (img - img.min()) / (img.max() - img.min())
    return torch.from_numpy(img.astype(np.float32)).unsqueeze(0)


def write_predict_inputs(folder, pair, scores) -> tuple[list, list[str]]:
    """A pair, its scores, two calibration HR images and two inputs on disk, as `faig-gui predict`
    reads them: (the input paths, the command's arguments after the word "predict")."""
    from faig_gui.core.checkpoint import save_checkpoint
    from faig_gui.core.imageio import to_image, write_image
    from faig_gui.core.results import write_scores
    save_checkpoint(folder / "b.pth", pair[0].state_dict)
    save_checkpoint(folder / "t.pth", pair[1].state_dict)
    write_scores(folder / "s.npz", scores)
    for s in range(2):
        write_image(folder / "hr" / f"{s}.png", to_image(smooth_hr(s)))
    imgs = []
    for s in range(2):
        imgs.append(folder / f"in{s}.png")
        write_image(imgs[-1], to_image(smooth_hr(10 + s, 20)))
    return imgs, [*map(str, imgs), "--baseline", str(folder / "b.pth"), "--target", str(folder / "t.pth"),
                  "--scores", str(folder / "s.npz"), "--analysis-hr", str(folder / "hr"), "--proportion", "10"]
