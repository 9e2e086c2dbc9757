"""Degradations of FAIG.md: mod-crop, isotropic Gaussian blur (size 21), MATLAB-style bicubic
down-sampling, additive Gaussian noise, 8-bit rounding.

Tensors are float32 NCHW RGB in [0, 1]. Deterministic functions take their randomness from an
explicit ``torch.Generator`` so that a seed gives the same images everywhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch.nn import functional as F

from faig_gui.core.errors import FaigError

BLUR_KERNEL_SIZE = 21


@dataclass(frozen=True)
class Degradation:
    """One named degradation: optional blur (on HR, before down-sampling), then optional noise
    (on LR). ``Degradation('clean')`` is plain bicubic down-sampling."""

    name: str
    blur_sigma: float | None = None
    noise_sigma: float | None = None

    def describe(self) -> str:
        parts = []
        if self.blur_sigma:
            parts.append(f"blur σ={self.blur_sigma:g}")
        if self.noise_sigma:
            parts.append(f"noise σ={self.noise_sigma:g}")
        return " + ".join(parts) or "clean"


def paper_degradations(blur_sigma: float = 2.0, noise_sigma: float = 0.1) -> list[Degradation]:
    return [Degradation("blur", blur_sigma=blur_sigma), Degradation("noise", noise_sigma=noise_sigma)]


def mod_crop(img: np.ndarray | torch.Tensor, scale: int):
    """Crop HWC arrays or NCHW tensors so height and width are multiples of ``scale``."""
    if isinstance(img, torch.Tensor):
        h, w = img.shape[-2:]
        return img[..., : h - h % scale, : w - w % scale]
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def gaussian_kernel(sigma: float, size: int = BLUR_KERNEL_SIZE) -> torch.Tensor:
    """Isotropic, normalised (size, size) kernel, float64."""
    if sigma <= 0:
        raise FaigError(f"blur σ must be positive, got {sigma}")
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma * sigma))
    return g / g.sum()


def gaussian_blur(x: torch.Tensor, sigma: float, size: int = BLUR_KERNEL_SIZE) -> torch.Tensor:
    """Depthwise 2-D correlation with reflect-101 borders (OpenCV's default)."""
    k = gaussian_kernel(sigma, size).to(x.dtype)
    c = x.shape[1]
    weight = k.expand(c, 1, size, size).contiguous()
    pad = size // 2
    mode = "reflect" if min(x.shape[-2:]) > pad else "replicate"
    return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode=mode), weight, groups=c)


def _cubic(t: torch.Tensor) -> torch.Tensor:
    a = t.abs()
    a2, a3 = a * a, a * a * a
    return ((1.5 * a3 - 2.5 * a2 + 1) * (a <= 1)
            + (-0.5 * a3 + 2.5 * a2 - 4 * a + 2) * ((a > 1) & (a <= 2)))


@lru_cache(maxsize=64)
def _resize_matrix(in_len: int, out_len: int) -> torch.Tensor:
    """(out_len, in_len) float64 matrix of MATLAB ``imresize`` (bicubic, antialiased), with
    MATLAB's symmetric border handling folded in."""
    scale = out_len / in_len
    width = 4.0 / scale if scale < 1 else 4.0
    j = torch.arange(1, out_len + 1, dtype=torch.float64)
    u = j / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    dist = u[:, None] - idx
    w = scale * _cubic(scale * dist) if scale < 1 else _cubic(dist)
    w = w / w.sum(1, keepdim=True)
    # symmetric mirroring of out-of-range (1-based) indices: 1..n, n..1, repeated
    period = 2 * in_len
    m = torch.remainder(idx.long() - 1, period)
    m = torch.where(m < in_len, m, period - 1 - m)
    mat = torch.zeros(out_len, in_len, dtype=torch.float64)
    mat.scatter_add_(1, m, w)
    return mat


def bicubic_resize(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """MATLAB-style bicubic resize of NCHW ``x`` (antialiased when shrinking)."""
    mh = _resize_matrix(x.shape[-2], out_h).to(x.dtype)
    mw = _resize_matrix(x.shape[-1], out_w).to(x.dtype)
    return torch.einsum("ih,nchw,jw->ncij", mh, x, mw)


def downsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise FaigError(f"image size {w}x{h} is not a multiple of the scale {scale}; mod-crop it first")
    if h < scale or w < scale:
        raise FaigError(f"image size {w}x{h} is smaller than the scale {scale}")
    return bicubic_resize(x, h // scale, w // scale)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Clip to [0, 1] and round to 8 bits."""
    return torch.round(x.clamp(0, 1) * 255) / 255


def add_noise(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
    return x + sigma * noise


def degrade(hr: torch.Tensor, scale: int, degradation: Degradation,
            generator: torch.Generator | None = None, round8: bool = True) -> torch.Tensor:
    """HR (NCHW, mod-cropped) -> degraded LR, as FAIG.md: blur HR, down-sample, add noise, round."""
    x = hr
    if degradation.blur_sigma:
        x = gaussian_blur(x, degradation.blur_sigma)
    x = downsample(x, scale)
    if degradation.noise_sigma:
        x = add_noise(x, degradation.noise_sigma, generator)
    return quantize(x) if round8 else x.clamp(0, 1)


def seeded_generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g
