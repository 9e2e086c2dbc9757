"""Degradations (docs/method.md): mod-crop, isotropic Gaussian blur (size 21), MATLAB-style
bicubic down-sampling, additive Gaussian noise, JPEG compression, 8-bit rounding.

A :class:`Degradation` is a named pipeline of steps applied to an HR image in the order given,
with exactly one down-sampling step; the paper's two are ``blur = blur:2,down`` and
``noise = down,noise:0.1``. On the command line (``--degradation``) a degradation is written
``NAME=STEP,STEP,...`` with the steps ``blur:SIGMA``, ``down``, ``noise:SIGMA`` and
``jpeg:QUALITY`` (see :func:`parse_degradation`).

Tensors are float32 NCHW RGB in [0, 1]. Deterministic functions take their randomness from an
explicit ``torch.Generator`` so that a seed gives the same images everywhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch.nn import functional as F

from faig_gui.core.errors import FaigError

BLUR_KERNEL_SIZE = 21


STEP_KINDS = ("blur", "down", "noise", "jpeg")


@dataclass(frozen=True)
class Step:
    """One step of a degradation: ``blur`` (Gaussian σ, on the image as it is at that point),
    ``down`` (bicubic ×1/scale, the scale comes from the model), ``noise`` (Gaussian σ on the
    [0, 1] scale) or ``jpeg`` (OpenCV's encoder at that quality, 1-100)."""

    kind: str
    value: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in STEP_KINDS:
            raise FaigError(f"unknown degradation step '{self.kind}' (steps: {', '.join(STEP_KINDS)})")
        if self.kind == "down":
            if self.value is not None:
                raise FaigError("the 'down' step takes no value: the scale is the model's")
            return
        if self.value is None or not math.isfinite(self.value):
            raise FaigError(f"the '{self.kind}' step needs a value, e.g. {_EXAMPLE[self.kind]}")
        if self.kind == "jpeg" and not (1 <= self.value <= 100 and float(self.value).is_integer()):
            raise FaigError(f"JPEG quality must be a whole number in 1..100, got {self.value:g}")
        if self.kind in ("blur", "noise") and self.value <= 0:
            raise FaigError(f"{self.kind} σ must be positive, got {self.value:g}")

    def text(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value:g}"

    @property
    def amount(self) -> float:
        """``value`` of a blur, noise or jpeg step (present: checked on construction)."""
        if self.value is None:
            raise FaigError(f"the '{self.kind}' step has no value")
        return self.value


_EXAMPLE = {"blur": "blur:2", "noise": "noise:0.1", "jpeg": "jpeg:30"}


@dataclass(frozen=True)
class Degradation:
    """One named degradation. Either the paper's form (optional blur on HR, down-sampling,
    optional noise on LR, optionally JPEG last), given by the σ and quality fields, or an
    explicit ``pipeline`` of :class:`Step` in any order with one ``down``; then the fields are
    filled from the pipeline (the first step of each kind), so that code which reads a
    strength finds it. ``Degradation('clean')`` is plain bicubic down-sampling."""

    name: str
    blur_sigma: float | None = None
    noise_sigma: float | None = None
    jpeg_quality: int | None = None
    pipeline: tuple[Step, ...] | None = field(default=None, compare=True)

    def __post_init__(self) -> None:
        if self.pipeline is None:
            return
        steps = tuple(self.pipeline)
        if sum(st.kind == "down" for st in steps) != 1:
            raise FaigError(f"degradation '{self.name}' must down-sample exactly once (one 'down' step), "
                            f"got: {','.join(st.text() for st in steps) or 'no steps'}")
        first = {k: next((st.value for st in steps if st.kind == k), None) for k in ("blur", "noise", "jpeg")}
        given = {"blur": self.blur_sigma, "noise": self.noise_sigma, "jpeg": self.jpeg_quality}
        for k, v in given.items():
            if v is not None and first[k] != v:
                raise FaigError(f"degradation '{self.name}': {k} {v} disagrees with its pipeline")
        object.__setattr__(self, "pipeline", steps)
        object.__setattr__(self, "blur_sigma", first["blur"])
        object.__setattr__(self, "noise_sigma", first["noise"])
        object.__setattr__(self, "jpeg_quality", None if first["jpeg"] is None else int(first["jpeg"]))

    @property
    def steps(self) -> tuple[Step, ...]:
        if self.pipeline is not None:
            return self.pipeline
        out = [Step("blur", self.blur_sigma)] if self.blur_sigma else []
        out.append(Step("down"))
        if self.noise_sigma:
            out.append(Step("noise", self.noise_sigma))
        if self.jpeg_quality:
            out.append(Step("jpeg", float(self.jpeg_quality)))
        return tuple(out)

    def spec(self) -> str:
        """The command-line form, ``NAME=STEP,...``."""
        return f"{self.name}=" + ",".join(st.text() for st in self.steps)

    def describe(self) -> str:
        parts = []
        for st in self.steps:
            if st.kind == "blur":
                parts.append(f"blur σ={st.value:g}")
            elif st.kind == "noise":
                parts.append(f"noise σ={st.value:g}")
            elif st.kind == "jpeg":
                parts.append(f"JPEG q={st.value:g}")
        return " + ".join(parts) or "clean"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form that :meth:`from_dict` reads back (sessions, reports)."""
        out: dict[str, Any] = {"name": self.name, "blur_sigma": self.blur_sigma,
                               "noise_sigma": self.noise_sigma, "jpeg_quality": self.jpeg_quality}
        if self.pipeline is not None:
            out["pipeline"] = [[st.kind, st.value] for st in self.pipeline]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Degradation:
        if d.get("pipeline") is not None:
            return cls(str(d["name"]), pipeline=tuple(Step(str(k), None if v is None else float(v))
                                                      for k, v in d["pipeline"]))
        return cls(str(d["name"]), d.get("blur_sigma"), d.get("noise_sigma"), d.get("jpeg_quality"))


def parse_degradation(text: str) -> Degradation:
    """``NAME=STEP,STEP,...`` (steps ``blur:SIGMA``, ``down``, ``noise:SIGMA``, ``jpeg:QUALITY``,
    applied in that order to the HR image), or a bare name of the paper's defaults:
    ``blur`` (blur:2,down), ``noise`` (down,noise:0.1), ``clean`` (down), ``jpeg`` (down,jpeg:30)."""
    name, sep, rest = text.strip().partition("=")
    name = name.strip()
    if not name:
        raise FaigError(f"--degradation '{text}': give it a name, e.g. jpeg=down,jpeg:30")
    if not sep:
        if name in DEFAULTS:
            return DEFAULTS[name]
        raise FaigError(f"--degradation '{text}': write NAME=STEP,... (e.g. {name}=down,jpeg:30), "
                        f"or one of the built-in names {', '.join(DEFAULTS)}")
    steps = []
    for part in rest.split(","):
        kind, colon, value = part.strip().partition(":")
        try:
            number = float(value) if colon else None
        except ValueError:
            raise FaigError(f"--degradation '{text}': '{part.strip()}' has no number after ':'") from None
        steps.append(Step(kind.strip(), number))
    return Degradation(name, pipeline=tuple(steps))


def parse_degradations(specs: Iterable[str] | None, blur_sigma: float = 2.0,
                       noise_sigma: float = 0.1) -> list[Degradation]:
    """The ``--degradation`` flags of a command, or the paper's two when none is given."""
    out = [parse_degradation(s) for s in specs or ()]
    if not out:
        return paper_degradations(blur_sigma, noise_sigma)
    names = [d.name for d in out]
    if len(set(names)) != len(names):
        raise FaigError(f"degradation names must differ, got {', '.join(names)}")
    if "clean" in names:
        raise FaigError("'clean' is the undegraded input and cannot be one of the degradations")
    return out


def paper_degradations(blur_sigma: float = 2.0, noise_sigma: float = 0.1) -> list[Degradation]:
    return [Degradation("blur", blur_sigma=blur_sigma), Degradation("noise", noise_sigma=noise_sigma)]


DEFAULTS = {"blur": Degradation("blur", blur_sigma=2.0), "noise": Degradation("noise", noise_sigma=0.1),
            "clean": Degradation("clean"), "jpeg": Degradation("jpeg", jpeg_quality=30)}


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


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Round to 8 bits, encode with OpenCV's JPEG encoder at ``quality`` (4:2:0 chroma, as
    cv2.imwrite writes it) and decode: NCHW RGB in [0, 1] in, the same out."""
    import cv2
    out = torch.empty_like(x)
    for n in range(x.shape[0]):
        rgb = (quantize(x[n]).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
        ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise FaigError(f"OpenCV could not encode a {rgb.shape[1]}x{rgb.shape[0]} image as JPEG")
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if bgr is None:
            raise FaigError(f"OpenCV could not decode its own JPEG of a {rgb.shape[1]}x{rgb.shape[0]} image")
        out[n] = torch.from_numpy(bgr[..., ::-1].astype(np.float32) / 255).permute(2, 0, 1).to(x)
    return out


def degrade(hr: torch.Tensor, scale: int, degradation: Degradation,
            generator: torch.Generator | None = None, round8: bool = True) -> torch.Tensor:
    """HR (NCHW, mod-cropped) -> degraded LR: the degradation's steps in order (the paper's:
    blur HR, down-sample, add noise), then 8-bit rounding (or a clip to [0, 1])."""
    x = hr
    for st in degradation.steps:
        if st.kind == "blur":
            x = gaussian_blur(x, float(st.amount))
        elif st.kind == "down":
            x = downsample(x, scale)
        elif st.kind == "noise":
            x = add_noise(x, float(st.amount), generator)
        else:
            x = jpeg(x, int(st.amount))
    return quantize(x) if round8 else x.clamp(0, 1)


def seeded_generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g
