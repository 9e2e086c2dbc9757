"""Analysis image sets: HR images with their LR versions, one per degradation.

Either read from folders (``--gt DIR --degraded NAME=DIR [--clean-lr DIR]``, files matched by
name) or made from HR images with the degradations of docs/method.md (``--hr DIR``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

from faig_gui.core.degradations import Degradation, degrade, downsample, mod_crop, quantize, seeded_generator
from faig_gui.core.errors import FaigError
from faig_gui.core.imageio import crop_to_scale, list_images, read_image, to_image, to_tensor, write_image


@dataclass
class AnalysisImage:
    """One HR image and its LR inputs; tensors are 1x3xHxW float32 in [0, 1]."""

    name: str
    hr: torch.Tensor
    lr: dict[str, torch.Tensor]
    clean_lr: torch.Tensor | None = None
    _key: str | None = field(default=None, repr=False)

    def key(self) -> str:
        """Content hash of the HR image and its LR inputs (cache key; names can repeat across
        folders, and the same HR can come with other LR images: new noise, other folders)."""
        if self._key is None:
            h = hashlib.sha1(self.hr.numpy().tobytes())
            for name, lr in self.lr.items():
                h.update(name.encode())
                h.update(lr.numpy().tobytes())
            if self.clean_lr is not None:
                h.update(self.clean_lr.numpy().tobytes())
            self._key = h.hexdigest()[:16]
        return self._key


def make_degraded(hr_images: Mapping[str, np.ndarray], scale: int, degradations: Sequence[Degradation],
                  seed: int = 0) -> list[AnalysisImage]:
    """HR (HWC float) -> AnalysisImage with clean LR and each degradation, seeded per image
    from ``seed`` and the image's position in the set (the same set and seed give the same noise)."""
    items = []
    for n, (name, img) in enumerate(hr_images.items()):
        hr = to_tensor(crop_to_scale(img, scale, name))  # says so when it crops
        if min(hr.shape[-2:]) < scale * 4:
            raise FaigError(f"{name}: {img.shape[1]}x{img.shape[0]} is too small for x{scale} analysis")
        gen = seeded_generator(seed * 100003 + n)
        lrs = {d.name: degrade(hr, scale, d, gen) for d in degradations}
        clean = quantize(downsample(hr, scale))
        items.append(AnalysisImage(name, hr, lrs, clean))
    return items


def write_image_set(folder: str | Path, images: Sequence[AnalysisImage], clean: bool = True) -> None:
    """Write images in the layout :func:`from_folders` reads: ``GT/`` (HR), ``LR/`` (clean, when
    ``clean`` and known) and one folder per degradation, as PNGs with the same names."""
    folder = Path(folder)
    for img in images:
        name = Path(img.name).stem + ".png"
        write_image(folder / "GT" / name, to_image(img.hr))
        if clean and img.clean_lr is not None:
            write_image(folder / "LR" / name, to_image(img.clean_lr))
        for degradation, lr in img.lr.items():
            write_image(folder / degradation / name, to_image(lr))


def load_hr_folder(folder: str | Path, limit: int | None = None) -> dict[str, np.ndarray]:
    files = list_images(folder)[:limit]
    return {f.name: read_image(f) for f in files}


def from_folders(gt: str | Path, degraded: Mapping[str, str | Path], clean_lr: str | Path | None,
                 scale: int | None = None) -> list[AnalysisImage]:
    """Match files by stem across the folders; HR is mod-cropped to the LR size x scale."""
    gt_files = {f.stem: f for f in list_images(gt)}
    folders = {name: {f.stem: f for f in list_images(path)} for name, path in degraded.items()}
    clean = {f.stem: f for f in list_images(clean_lr)} if clean_lr else {}
    items = []
    for stem, gt_file in gt_files.items():
        missing = [name for name, files in folders.items() if stem not in files]
        if missing:
            raise FaigError(f"{gt_file}: no LR image named '{stem}' in the '{missing[0]}' folder "
                            f"({degraded[missing[0]]})")
        hr = to_tensor(read_image(gt_file))
        lrs = {name: to_tensor(read_image(files[stem])) for name, files in folders.items()}
        first = next(iter(lrs.values()))
        s = scale or hr.shape[-1] // first.shape[-1]
        for name, lr in lrs.items():
            if lr.shape != first.shape:
                raise FaigError(f"{folders[name][stem]}: size {tuple(lr.shape[-2:])} differs from the other LR "
                                f"images of '{stem}' {tuple(first.shape[-2:])}")
        hr = mod_crop(hr, s)
        if hr.shape[-2] != first.shape[-2] * s or hr.shape[-1] != first.shape[-1] * s:
            raise FaigError(f"{gt_file}: HR {tuple(hr.shape[-2:])} is not x{s} of its LR {tuple(first.shape[-2:])}")
        c = to_tensor(read_image(clean[stem])) if stem in clean else None
        items.append(AnalysisImage(gt_file.name, hr, lrs, c))
    return items


def parse_named_dirs(pairs: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise FaigError(f"--degraded expects NAME=DIR, got '{pair}'")
        if name in out:
            raise FaigError(f"degradation '{name}' is given twice")
        out[name] = path
    return out
