"""The paper's effect metric (gradient-map MSE x 1000) and PSNR."""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

_GRAY = (0.299, 0.587, 0.114)


def gray(x: torch.Tensor) -> torch.Tensor:
    """NCHW RGB -> N1HW luma (ITU-R BT.601 weights)."""
    w = torch.tensor(_GRAY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def gradient_map(x: torch.Tensor) -> torch.Tensor:
    """sqrt(gx^2 + gy^2 + 1e-6) of the grey image, central differences [-1, 0, 1], reflect-101
    borders; input NCHW RGB clipped to [0, 1]."""
    g = gray(x.clamp(0, 1))
    p = F.pad(g, (1, 1, 1, 1), mode="replicate" if min(g.shape[-2:]) < 2 else "reflect")
    gx = p[..., 1:-1, 2:] - p[..., 1:-1, :-2]
    gy = p[..., 2:, 1:-1] - p[..., :-2, 1:-1]
    return torch.sqrt(gx * gx + gy * gy + 1e-6)


def gradient_effect(a: torch.Tensor, b: torch.Tensor) -> float:
    """MSE between the gradient maps of two outputs, x 1000 (the paper's output difference)."""
    return maps_effect(gradient_map(a), gradient_map(b))


def maps_effect(ga: torch.Tensor, gb: torch.Tensor) -> float:
    """:func:`gradient_effect` from gradient maps already made (the window keeps the target's)."""
    return float(F.mse_loss(ga.double(), gb.double()) * 1000.0)


def psnr(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, crop: int = 0) -> float:
    """PSNR in dB of two [0, 1] images (clipped), optionally ignoring ``crop`` border pixels."""
    a_t = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).double().clamp(0, 1)
    b_t = torch.as_tensor(np.asarray(b) if not isinstance(b, torch.Tensor) else b).double().clamp(0, 1)
    if crop:
        a_t, b_t = _crop(a_t, crop), _crop(b_t, crop)
    return _decibels(float(((a_t - b_t) ** 2).mean()))


#: ITU-R BT.601 luma of [0, 1] RGB, in [16/255, 235/255] (MATLAB's rgb2ycbcr, BasicSR's
#: ``rgb2ycbcr(y_only=True)``): Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255
BT601_Y = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)


def psnr_y(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, crop: int = 0) -> float:
    """PSNR in dB on the BT.601 luma (:data:`BT601_Y`) of two [0, 1] RGB images (clipped), the
    measure SR papers report (BasicSR's ``test_y_channel``); channels on axis -3 for tensors,
    last for H x W x 3 arrays. Without BasicSR's rounding to 8 bits, as :func:`psnr`."""
    return psnr_rgb_y(a, b, crop)[1]


def psnr_rgb_y(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, crop: int = 0) -> tuple[float, float]:
    """(:func:`psnr`, :func:`psnr_y`) of two [0, 1] RGB images from one clipped difference: where
    both are shown (the live render, the image table, ``evaluate``) the images are converted and
    compared once. The luma's offset 16/255 cancels in the difference."""
    a_t = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).double().clamp(0, 1)
    b_t = torch.as_tensor(np.asarray(b) if not isinstance(b, torch.Tensor) else b).double().clamp(0, 1)
    axis = -1 if not isinstance(a, torch.Tensor) and a_t.shape[-1] == 3 else -3
    if crop:
        a_t, b_t = _crop(a_t, crop), _crop(b_t, crop)
    d = a_t - b_t
    # (a contraction over the channel axis: a broadcast product and a sum took 16x as long)
    d_y = torch.tensordot(d, torch.tensor(BT601_Y, dtype=torch.float64), dims=([d.ndim + axis], [0]))
    return _decibels(float((d * d).mean())), _decibels(float((d_y * d_y).mean()))


def _decibels(mse: float) -> float:
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def _crop(t: torch.Tensor, c: int) -> torch.Tensor:
    # tensors are NCHW/CHW; numpy-derived ones HWC: crop the two spatial dims either way
    if t.ndim == 3 and t.shape[-1] in (1, 3) and t.shape[0] not in (1, 3):
        return t[c:-c, c:-c]
    return t[..., c:-c, c:-c]
