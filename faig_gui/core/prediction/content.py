"""The content the predictor calibrates on: the bundled diverse crops (resources/calibration,
written by scripts/make_calibration_set.py; its README lists the pictures) and a few of the
session's own analysis images.

A calibration on one photograph learns that photograph's texture: dense fine detail then read as
noise (issue 19). The bundled crops cover faces, foliage, fine texture, text, architecture,
smooth gradients, microscopy and stars; the evaluation's pictures are never among them.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from faig_gui.core.errors import FaigError
from faig_gui.core.resources import resources_dir

#: analysis images added to the bundled content (the pair's own kind of content), at most
OWN_IMAGES = 4
#: HR side of the crops calibrated on (an analysis image is centre-cropped to it)
SIDE = 128


def calibration_dir() -> Path:
    """``$FAIG_GUI_CALIBRATION_DIR`` when set (other content, or fewer crops for a quick
    calibration), else the bundled resources/calibration."""
    given = os.environ.get("FAIG_GUI_CALIBRATION_DIR")
    return Path(given).expanduser() if given else resources_dir() / "calibration"


def bundled_content() -> list[torch.Tensor]:
    """The bundled crops, 1x3xHxW float32 in [0, 1], in file-name order."""
    from faig_gui.core.imageio import read_image, to_tensor
    folder = calibration_dir()
    files = sorted(folder.glob("*.png")) if folder.is_dir() else []
    if not files:
        raise FaigError(f"{folder}: the predictor's calibration content is missing; "
                        f"write it with 'python scripts/make_calibration_set.py'")
    return [to_tensor(read_image(p)) for p in files]


def centre_crop(hr: torch.Tensor, side: int = SIDE) -> torch.Tensor:
    h, w = hr.shape[-2:]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return hr[..., top:top + side, left:left + side]


def calibration_images(analysis_hr: Sequence[torch.Tensor], own: int = OWN_IMAGES) -> list[torch.Tensor]:
    """The bundled content and the first ``own`` analysis images (centre crops of SIDE)."""
    mine = [centre_crop(h if h.ndim == 4 else h.unsqueeze(0)) for h in list(analysis_hr)[:own]]
    return bundled_content() + mine
