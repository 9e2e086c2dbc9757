"""Running an SR model on an image: no gradients, optional other weights, tiling for big inputs."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call

from faig_gui.core.device import on_device

#: LR pixels above which inputs are processed in tiles (keeps activations bounded)
TILE_PIXELS = 512 * 512
TILE = 256
TILE_PAD = 16


def super_resolve(module: nn.Module, lr: torch.Tensor, scale: int,
                  params: Mapping[str, torch.Tensor] | None = None,
                  device: torch.device | str = "cpu", tile: int | None = None) -> torch.Tensor:
    """SR output (1x3xHxW, CPU float32, not clipped) of ``lr`` with the module's own weights or
    ``params``. Inputs larger than TILE_PIXELS go through overlapping tiles, stitched exactly
    (each tile's borders are cropped away, so results match up to the receptive field)."""
    device = torch.device(device)
    module = on_device(module, device)
    p = None if params is None else {k: v.to(device) for k, v in params.items()}
    h, w = lr.shape[-2:]
    if tile is None and h * w <= TILE_PIXELS:
        return _forward(module, lr.to(device), p).cpu()
    tile = tile or TILE
    out = torch.zeros(lr.shape[0], 3, h * scale, w * scale)
    for y in range(0, h, tile):
        for x in range(0, w, tile):
            y0, x0 = max(0, y - TILE_PAD), max(0, x - TILE_PAD)
            y1, x1 = min(h, y + tile + TILE_PAD), min(w, x + tile + TILE_PAD)
            part = _forward(module, lr[..., y0:y1, x0:x1].to(device), p).cpu()
            ty, tx = (y - y0) * scale, (x - x0) * scale
            th, tw = (min(y + tile, h) - y) * scale, (min(x + tile, w) - x) * scale
            out[..., y * scale:y * scale + th, x * scale:x * scale + tw] = part[..., ty:ty + th, tx:tx + tw]
    return out


def _forward(module: nn.Module, x: torch.Tensor, params) -> torch.Tensor:
    if x.device.type == "cpu" and x.ndim == 4:
        # oneDNN's NHWC convolutions are ~10 % faster on CPU than NCHW ones (the weights may
        # stay NCHW); outputs agree to float rounding
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        if params is None:
            return module(x).float()
        return functional_call(module, dict(params), (x,)).float()
