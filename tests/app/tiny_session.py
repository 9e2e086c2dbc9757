"""A tiny random MSRResNet pair in a SessionModel, with made-up scores, for the dock tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from faig_gui.core.checkpoint import save_checkpoint
from faig_gui.core.registry import default_registry


def tiny_pair(folder: Path, num_feat: int = 4, num_block: int = 2, spread: float = 0.01) -> tuple[Path, Path]:
    arch = default_registry().get("msrresnet")
    torch.manual_seed(0)
    base = arch.new_state_dict(num_feat=num_feat, num_block=num_block, scale=2)
    targ = {k: v + spread * torch.randn_like(v) for k, v in base.items()}
    b, t = folder / "baseline.pth", folder / "target.pth"
    save_checkpoint(b, base)
    save_checkpoint(t, targ)
    return b, t


def made_up_scores(total: int) -> dict[str, np.ndarray]:
    """Distinct scores; blur favours early filters, noise late ones (so the layers differ)."""
    rng = np.random.default_rng(1)
    ramp = np.linspace(1.0, 0.0, total)
    return {"blur": ramp + 0.5 * rng.random(total), "noise": ramp[::-1] + 0.5 * rng.random(total)}


def loaded_model(qtbot, folder: Path, scores: bool = True, **kw):
    from faig_gui.app.session_model import SessionModel
    model = SessionModel()
    b, t = tiny_pair(folder, **kw)
    assert model.load_pair(str(b), str(t))
    if scores:
        model.set_scores(made_up_scores(model.session.index.total))
    return model
