"""What the window and the headless commands both write: output file names, the target's and
the masked model's outputs per image, and a montage of them (input / target / masked per row,
like docs/teaser.png). One implementation, so that `faig-gui mask` and File ▸ Export name and
compute their files the same way."""
from __future__ import annotations

from pathlib import Path
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from faig_gui.core.errors import FaigError
from faig_gui.core.imageio import to_image, to_tensor, write_image
from faig_gui.core.inference import super_resolve


def output_stems(paths: Sequence[str], labels: Sequence[str] | None = None) -> list[str]:
    """A distinct file stem per input: its file stem, with its label (the degradation it was
    made with, when known) after it. A stem already taken (``blur/x.png`` after ``noise/x.png``)
    gets its folder's name in front, then a number, so that no output overwrites another."""
    labels = list(labels) if labels is not None else [""] * len(paths)
    if len(labels) != len(paths):
        raise ValueError("one label per path")
    stems: list[str] = []
    for path, label in zip(paths, labels):
        p = Path(path)
        base = f"{p.stem}_{label}" if label else p.stem
        stem = base if base not in stems else f"{p.parent.name}_{base}"
        n = 1
        while stem in stems:
            n += 1
            stem = f"{base}_{n}"
        stems.append(stem)
    return stems


def target_and_masked(module: nn.Module, params: Mapping[str, torch.Tensor], scale: int, lr: np.ndarray,
                      device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """The target's output and the masked model's (``params``: the masked weights) for one LR
    image (HWC in [0, 1]), as HWC images in [0, 1]."""
    x = to_tensor(lr)
    target = to_image(super_resolve(module, x, scale, device=device))
    masked = to_image(super_resolve(module, x, scale, params=params, device=device))
    return target, masked


def write_masked_outputs(module: nn.Module, params: Mapping[str, torch.Tensor], scale: int,
                         inputs: Iterable[tuple[str, np.ndarray]], out: Path,
                         device: torch.device | str = "cpu",
                         on_image: Callable[[str, np.ndarray, np.ndarray, np.ndarray], None] | None = None,
                         ) -> list[Path]:
    """``<stem>_target.png`` and ``<stem>_masked.png`` in ``out`` for each (stem, LR image);
    ``inputs`` may read its images lazily. ``on_image(stem, lr, target, masked)`` after each
    image's two files."""
    written = []
    for stem, lr in inputs:
        target, masked = target_and_masked(module, params, scale, lr, device)
        for suffix, img in (("target", target), ("masked", masked)):
            path = out / f"{stem}_{suffix}.png"
            write_image(path, img)
            written.append(path)
        if on_image is not None:
            on_image(stem, lr, target, masked)
    return written


def montage(rows: Sequence[Sequence[np.ndarray]], gap: int = 4, background: float = 1.0) -> np.ndarray:
    """Images (HWC in [0, 1]) laid out row by row, ``gap`` pixels of ``background`` between and
    around them; each column as wide and each row as high as its largest image, smaller images
    centred in their cell. Rows may hold different numbers of images."""
    if not rows or not any(len(r) for r in rows):
        raise FaigError("a montage needs at least one image")
    cols = max(len(r) for r in rows)
    widths = [max((r[c].shape[1] for r in rows if c < len(r)), default=0) for c in range(cols)]
    heights = [max(img.shape[0] for img in r) if len(r) else 0 for r in rows]
    canvas = np.full((sum(heights) + gap * (len(rows) + 1), sum(widths) + gap * (cols + 1), 3),
                     background, dtype=np.float32)
    y = gap
    for r, h in zip(rows, heights):
        x = gap
        for c, img in enumerate(r):
            ih, iw = img.shape[:2]
            oy, ox = y + (h - ih) // 2, x + (widths[c] - iw) // 2
            canvas[oy:oy + ih, ox:ox + iw] = np.clip(img[..., :3], 0, 1)
            x += widths[c] + gap
        y += h + gap
    return canvas


def enlarged(lr: np.ndarray, scale: int) -> np.ndarray:
    """The LR image at the output size (nearest): what the window's Input panel shows."""
    return np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1)


def masked_montage(module: nn.Module, params: Mapping[str, torch.Tensor], scale: int, lrs: Iterable[np.ndarray],
                   device: torch.device | str = "cpu", gap: int = 4) -> np.ndarray:
    """The teaser's layout (docs/teaser.png): one row per LR image, input (enlarged, nearest),
    target output, masked output; the outputs made as :func:`write_masked_outputs` makes them."""
    rows = [montage_row(lr, scale, *target_and_masked(module, params, scale, lr, device)) for lr in lrs]
    return montage(rows, gap)


def montage_row(lr: np.ndarray, scale: int, target: np.ndarray, masked: np.ndarray) -> list[np.ndarray]:
    """One row of :func:`masked_montage`: input enlarged (nearest), target output, masked output."""
    return [enlarged(lr, scale), target, masked]
