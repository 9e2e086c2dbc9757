"""Choosing where to compute: ``auto`` picks CUDA when present, else the CPU."""
from __future__ import annotations

import torch

from faig_gui.core.errors import FaigError


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FaigError("--device cuda: no CUDA device is available here; use --device cpu or auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise FaigError(f"unknown device '{name}'; use auto, cpu or cuda")


def configure_precision(allow_tf32: bool = False) -> None:
    """TF32 off by default so that GPU scores (and ranks) match the CPU's fp32."""
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32
