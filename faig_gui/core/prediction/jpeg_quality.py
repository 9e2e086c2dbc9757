"""The quality of a JPEG step from the image itself: re-compression ("JPEG ghosts", H. Farid,
"Exposing digital forgeries from JPEG ghosts", IEEE TIFS 2009).

An image whose last step was a JPEG at quality Q holds DCT coefficients that are multiples of
Q's quantisation steps; compressed again at Q it comes back unchanged up to rounding, while any
other quality moves it. So the mean squared change of a re-compression, as a function of the
quality, drops to about zero at Q and nowhere else nearby. Measured here on the 8-bit image's
luma (as the JPEG decoder gave it), on its 8 x 8 block grid (found from where the block edges
are, so a crop off the grid still reads), on one textured window: on the three-degradation pair
the calibration curve's median reading of quality 10 was 1.25-22.6, this reads it exactly
(docs/prediction.md; bench/bench_jpeg_quality.py).

Nothing when the image holds no such dip (never compressed, resized or noised after the JPEG):
the calibration curve's reading then stands. A classical estimate, no network: it comes beside
the filters' verdict, for a degradation already found, and moves no decision.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: the side of the window re-compressed (LR pixels; a multiple of the 8-pixel block)
WINDOW = 64
#: the side of the image's centre region searched for the block grid and the window: a whole
#: photograph costs what a crop costs (a 4000 x 3000 one took 3.9 s whole)
REGION = 512
#: the qualities tried; the two ends only as the neighbours of the others (so 5-99 are read).
#: Below 5 the encoder's tables saturate (libjpeg clips its steps at 255): on a flat sky the
#: change was the same at 1-3 and dipped at 4 in a picture never compressed
QUALITIES = np.arange(4, 101)
#: the change a re-compression at the image's own quality leaves: one 8-bit rounding step's
#: variance (1/12 of a level squared), per value
ROUNDING = 1.0 / 12.0
#: a dip: the change at a quality below this share of the least change two qualities either
#: side. Along an image never compressed (or resized after its JPEG) the change falls smoothly
#: with the quality, the ratio about 1 (0.66 at its lowest over bench_jpeg_quality.py's 20
#: held-out crops, the likeliest four block grids each); at the image's own quality (5-30) it
#: was at most 0.37, median 0.05
DIP = 0.5
#: (levels²) added to both sides of the ratio: where the window is flat every quality changes
#: it by a few hundredths of a level² and their ratios mean nothing; a rounding step's variance
#: keeps them near 1 there
SMALL = ROUNDING


@dataclass(frozen=True)
class JpegQuality:
    quality: float                   # where the re-compression changes the image least
    interval: tuple[float, float]    # the qualities whose change lies within one rounding step of it
    offset: tuple[int, int]          # the block grid's (row, column) offset in the region searched


def to_rgb8(lr: torch.Tensor) -> np.ndarray:
    """1x3xHxW in [0, 1] -> HxWx3 uint8, as the JPEG decoder gave it."""
    return (lr[0].detach().clamp(0, 1).permute(1, 2, 0).cpu().double().numpy() * 255).round().astype(np.uint8)


def grey_of(rgb8: np.ndarray) -> np.ndarray:
    return rgb8.astype(np.float64).mean(axis=2)


def grid_offsets(grey: np.ndarray, per_axis: int = 2) -> list[tuple[int, int]]:
    """Candidate (row, column) offsets of the first pixel of a block of the image whose grey
    values are ``grey`` (:func:`grey_of`), likeliest first: per axis, the offsets where the jumps
    across block edges stand highest (a JPEG's blocks are coded apart, so their edges jump most;
    an image's own edges can outdo them, hence a few)."""
    ranked = []
    for axis in (0, 1):
        jumps = np.abs(np.diff(grey, axis=axis)).mean(axis=1 - axis)   # jump between i and i + 1
        if len(jumps) < 16:
            ranked.append([0])
            continue
        # offset o: a block starts at o, so its edge lies between o - 1 and o (jump index o - 1)
        score = np.array([jumps[(o - 1) % 8::8].mean() for o in range(8)])
        ranked.append([int(o) for o in np.argsort(-score, kind="stable")[:per_axis]])
    pairs = [(ry + rx, (oy, ox)) for ry, oy in enumerate(ranked[0]) for rx, ox in enumerate(ranked[1])]
    return [o for _, o in sorted(pairs)]


def texture_table(grey: np.ndarray) -> np.ndarray:
    """Summed-area table of the gradient's magnitude (|Δy| + |Δx|): any window's texture in O(1)."""
    h, w = grey.shape
    energy = np.zeros((h, w))
    energy[:-1] += np.abs(np.diff(grey, axis=0))
    energy[:, :-1] += np.abs(np.diff(grey, axis=1))
    table = np.zeros((h + 1, w + 1))
    table[1:, 1:] = energy.cumsum(0).cumsum(1)
    return table


def _window(rgb8: np.ndarray, table: np.ndarray, offset: tuple[int, int], side: int,
            per_axis: int = 16) -> np.ndarray | None:
    """The most textured side x side window on the block grid (None when none fits), among at
    most ``per_axis``² positions (``table``: :func:`texture_table` of the image)."""
    dy, dx = offset
    h, w = rgb8.shape[:2]
    side = min(side, (h - dy) // 8 * 8, (w - dx) // 8 * 8)
    if side < 16:
        return None

    def starts(first: int, length: int) -> np.ndarray:
        span = length - side - first            # the last start is first + span
        step = 8 * max(4, -(-span // (8 * (per_axis - 1))) if span > 0 else 4)
        return np.arange(first, first + span + 1, step)
    ys, xs = starts(dy, h), starts(dx, w)
    sums = (table[ys[:, None] + side, xs[None, :] + side] - table[ys[:, None], xs[None, :] + side]
            - table[ys[:, None] + side, xs[None, :]] + table[ys[:, None], xs[None, :]])
    iy, ix = np.unravel_index(int(np.argmax(sums)), sums.shape)
    y, x = int(ys[iy]), int(xs[ix])
    return np.ascontiguousarray(rgb8[y:y + side, x:x + side])


def luma8(rgb8: np.ndarray) -> np.ndarray:
    """The JPEG's own luma (JFIF's full-range BT.601 Y), rounded to 8 bits."""
    import cv2
    return np.ascontiguousarray(cv2.cvtColor(np.ascontiguousarray(rgb8[..., ::-1]), cv2.COLOR_BGR2YCrCb)[..., 0])


def recompression_changes(y8: np.ndarray, qualities=QUALITIES) -> np.ndarray:
    """Mean squared change (8-bit levels²) of the luma ``y8`` compressed at each quality as a
    grey JPEG (OpenCV's encoder). The luma alone: its blocks are 8 x 8 wherever the chroma was
    subsampled, and its quantisation table is the one a colour JPEG's luma had at that quality."""
    import cv2
    x = y8.astype(np.float64)
    out = np.empty(len(qualities))
    for i, q in enumerate(qualities):
        ok, data = cv2.imencode(".jpg", y8, [cv2.IMWRITE_JPEG_QUALITY, int(q)])
        back = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if ok else None
        out[i] = np.inf if back is None else float(np.mean((x - back) ** 2))
    return out


def dip_ratio(change: np.ndarray) -> np.ndarray:
    """Per quality, its change over the least change two qualities either side (inf at the two
    ends, which have one side only): about 1 along a smooth curve, near 0 at a ghost."""
    n = len(change)
    out = np.full(n, np.inf)
    for i in range(1, n - 1):
        near = [change[j] for j in (i - 2, i - 1, i + 1, i + 2) if 0 <= j < n]
        out[i] = (change[i] + SMALL) / (min(near) + SMALL)
    return out


def jpeg_quality_estimate(lr: torch.Tensor, side: int = WINDOW) -> JpegQuality | None:
    """The quality of the image's last JPEG step (``lr``: 1x3xHxW in [0, 1]), or None when a
    re-compression shows no dip (:mod:`this module's docstring <.jpeg_quality>`)."""
    h, w = lr.shape[-2:]
    top, left = max(0, (h - REGION) // 2), max(0, (w - REGION) // 2)
    rgb8 = to_rgb8(lr[..., top:top + REGION, left:left + REGION])   # (offsets are the region's)
    grey = grey_of(rgb8)
    table = texture_table(grey)
    for offset in grid_offsets(grey):   # the ghost itself tells the grid: no dip off it
        window = _window(rgb8, table, offset, side)
        if window is None:
            continue
        change = recompression_changes(luma8(window))
        ratio = dip_ratio(change)
        best = int(np.argmin(ratio))
        if not ratio[best] < DIP:
            continue
        floor = change[best] + ROUNDING
        lo = hi = best
        while lo > 0 and change[lo - 1] <= floor:
            lo -= 1
        while hi < len(change) - 1 and change[hi + 1] <= floor:
            hi += 1
        q = QUALITIES
        return JpegQuality(float(q[best]), (float(q[lo]), float(q[hi])), offset)
    return None
