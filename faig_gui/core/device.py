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


def on_device(module: torch.nn.Module, device: torch.device | str) -> torch.nn.Module:
    """``module`` when its parameters and buffers are on ``device`` already, else a copy moved
    there: ``module.to(device)`` moves a caller's module in place, and the caller's module must
    stay where it is (a notebook's model, the window's loaded pair)."""
    device = torch.device(device)
    tensors = [*module.parameters(), *module.buffers()]
    if all(_same_device(t.device, device) for t in tensors):
        return module
    import copy
    return copy.deepcopy(module).to(device)


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True
    current = torch.cuda.current_device() if torch.cuda.is_available() else 0
    return (a.index if a.index is not None else current) == (b.index if b.index is not None else current)
