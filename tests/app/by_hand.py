"""Independent references for the window tests: a mask applied by walking the state dict, and a
super-resolved image from a freshly built module (no faig-gui render code involved)."""
from __future__ import annotations

import numpy as np
import torch

from faig_gui.core.registry import default_registry


def masked_by_hand(target, baseline, indices, lam: float = 0.0, zero: bool = False):
    """Filters numbered over every 4-D '*weight' in state-dict order, (out, in) within a layer
    (none of the test nets has grouped or transposed convolutions); each chosen kernel becomes
    λ·θ + (1 − λ)·r with r the baseline's kernel (or zero)."""
    numbered = [(k, o, i) for k, v in target.items() if k.endswith("weight") and v.ndim == 4
                for o in range(v.shape[0]) for i in range(v.shape[1])]
    sd = {k: v.clone() for k, v in target.items()}
    for g in indices:
        name, o, i = numbered[int(g)]
        r = torch.zeros_like(sd[name][o, i]) if zero else baseline[name][o, i]
        sd[name][o, i] = lam * target[name][o, i] + (1 - lam) * r
    return sd


def sr_by_hand(sd, lr_hwc, clamp: bool = True) -> np.ndarray:
    """The output (HWC) of a module built from ``sd`` for an HWC LR image."""
    model = default_registry().model_from_state_dict(dict(sd))
    x = torch.from_numpy(np.ascontiguousarray(lr_hwc.transpose(2, 0, 1)))[None].float()
    with torch.no_grad():
        y = model.module.eval()(x)[0]
    return (y.clamp(0, 1) if clamp else y).permute(1, 2, 0).numpy()
