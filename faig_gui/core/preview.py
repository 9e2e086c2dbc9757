"""Preview renders for nets that cost seconds per frame (RRDBNet x4 64/23/32: ~36 MFLOP per LR
pixel, several seconds for a 128 x 128 LR frame on two cores): after a mask change the centre
view first shows the masked output of a small LR crop, then the full frame (core/render.py,
``render_live``). The demo pair's full frame costs ~0.1 s and is rendered directly.

What decides: the full masked forward's estimated time, the seconds per LR pixel of a full
forward measured on this machine (the first render of every image runs the target's full
forward, so a measurement exists before any mask change) times the image's pixels times the
share of the net the change reruns (IncrementalForward: a change in conv_last alone costs
little), or, when smaller, the change's multiply-adds at FAST_MACS_PER_S (a first forward's
time includes one-time costs that would make the demo look slow). Above ``above_s`` a preview is made, of a crop sized to cost
about ``budget_s``.

Border effect: a convolution zero-pads at the crop's edge where the full frame has image
content, so a crop's outputs differ from the full frame's within the net's receptive radius of
the crop's edges (not at the image's own edges, where both pad alike). The crop is therefore
taken with a context margin around the region shown (at most ``MAX_MARGIN`` LR pixels, less
when the budget does not cover it: the region shown comes first); when
the margin covers the radius (``PreviewPlan.exact``) the shown pixels are the full frame's, up
to float rounding. RRDBNet's radius is hundreds of LR pixels and RCAN's channel attention pools
the whole image, so there the preview is an approximation, said on screen as a preview; the
full frame follows. To keep it close, the preview shows the target's full output plus the
change masking makes on the crop (masked minus target, both on the same crop: the border
distorts both alike); docs/performance.md has the measured differences.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

ALIGN = 4          # crop offsets and sizes: multiples of this (RRDBNet x1 pixel-unshuffles by 4)
MIN_INNER = 8      # the shown region is at least this many LR pixels a side
MAX_MARGIN = 16    # context around the shown region, LR pixels, at most
PREVIEW_ABOVE_S = 0.25   # a masked render estimated above this gets a preview first
PREVIEW_BUDGET_S = 0.12  # what the preview's crop forward aims to cost
# multiply-adds per second that a CPU render rarely exceeds (two Zen 3 cores peak near 1e11 with
# AVX2; the render thread reaches ~1.3e10 on this loaded machine): no preview below that cost
FAST_MACS_PER_S = 5e10


@dataclass(frozen=True)
class Geometry:
    """How far an output pixel reaches into the input, in LR pixels each side (inf: a global
    pooling, e.g. RCAN's channel attention, makes every output depend on every input)."""

    radius: float


def receptive_radius(module: nn.Module, side: int = 8) -> Geometry:
    """The receptive radius of ``module``, from one forward of a ``side`` x ``side`` input with
    hooks on its layers: each convolution adds dilation x (kernel - 1) / 2 of its own input's
    pixels, which are LR pixels divided by that input's scale (after a pixel-unshuffle half a
    pixel is a whole one, after a x2 up-sampling two make one); plus one LR pixel for the
    rounding of up-sampled positions. Pooling to a size below its input's is global."""
    radius, global_pool = 0.0, False
    hooks = []

    def conv_hook(mod: nn.modules.conv._ConvNd, args, _out) -> None:
        nonlocal radius
        h = args[0].shape[-2]
        reach = max(d * (k - 1) / 2 for d, k in zip(mod.dilation, mod.kernel_size))
        radius += reach * side / h

    def pool_hook(_mod: nn.Module, args, out) -> None:
        nonlocal global_pool
        if out.shape[-1] * out.shape[-2] < args[0].shape[-1] * args[0].shape[-2]:
            global_pool = True

    for m in module.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            hooks.append(m.register_forward_hook(pool_hook))
    try:
        p = next(module.parameters(), None)
        x = torch.zeros(1, 3, side, side, dtype=p.dtype if p is not None else torch.float32)
        with torch.inference_mode():
            module(x)
    finally:
        for h in hooks:
            h.remove()
    return Geometry(math.inf if global_pool else radius + 1.0)


@dataclass(frozen=True)
class PreviewPlan:
    """A preview's crop (with its context margin) and the region of it shown, in LR pixels as
    (top, left, bottom, right); ``exact``: the margin covers the receptive radius."""

    crop: tuple[int, int, int, int]
    inner: tuple[int, int, int, int]
    centred: bool          # the image's centre (else the view's)
    exact: bool
    radius: float

    def label(self) -> str:
        h, w = self.inner[2] - self.inner[0], self.inner[3] - self.inner[1]
        where = "centre" if self.centred else "view-centre"
        return f"preview: {where} {w}×{h} LR crop"


def _span(centre: float, size: int, total: int) -> tuple[int, int]:
    """[start, end) of ``size`` around ``centre`` inside [0, total), start a multiple of ALIGN."""
    size = min(size, total)
    start = int(round(centre - size / 2)) // ALIGN * ALIGN
    start = max(0, min(start, (total - size) // ALIGN * ALIGN))
    return start, min(total, start + size)


def plan_preview(lr_h: int, lr_w: int, seconds_per_pixel: float, budget_s: float, radius: float,
                 focus: tuple[float, float] | None = None) -> PreviewPlan | None:
    """The crop whose forward costs about ``budget_s`` (the region shown at least MIN_INNER a
    side), around ``focus`` (LR (y, x); None: the image's centre); None when it would cover the
    whole image (the full frame is then no dearer)."""
    side = int(math.sqrt(max(budget_s, 0.0) / max(seconds_per_pixel, 1e-12)))
    want = min(MAX_MARGIN, int(math.ceil(radius)) if math.isfinite(radius) else MAX_MARGIN)
    want = -(-want // ALIGN) * ALIGN
    inner = max(MIN_INNER, (side - 2 * want) // ALIGN * ALIGN)
    # the budget first: on a net as slow as RRDBNet x4 here even 16 x 16 LR pixels cost ~0.4 s,
    # so the context shrinks (to none) before the region shown does
    margin = min(want, max(0, side - inner) // 2 // ALIGN * ALIGN)
    if inner >= lr_h and inner >= lr_w:
        return None
    cy, cx = focus if focus is not None else (lr_h / 2, lr_w / 2)
    y0, y1 = _span(cy, inner, lr_h)
    x0, x1 = _span(cx, inner, lr_w)
    centred = (y0, x0) == (_span(lr_h / 2, inner, lr_h)[0], _span(lr_w / 2, inner, lr_w)[0])
    crop = (max(0, y0 - margin), max(0, x0 - margin), min(lr_h, y1 + margin), min(lr_w, x1 + margin))
    return PreviewPlan(crop, (y0, x0, y1, x1), centred, margin >= radius, radius)
