"""Reading and writing images: any common format in, float32 RGB HWC in [0, 1] out."""
from __future__ import annotations

import os
import struct
from pathlib import Path

import cv2
import numpy as np
import torch

from faig_gui.core.errors import FaigError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: refuse to decode more pixels than this (an RGB float copy of 50 MP is 600 MB)
MAX_PIXELS = 50_000_000


def list_images(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FaigError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FaigError(f"{folder}: holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding, else None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(32)
            if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
                return struct.unpack(">II", head[16:24])
            if head[:2] == b"\xff\xd8":
                fh.seek(2)
                while True:
                    marker = fh.read(4)
                    if len(marker) < 4 or marker[0] != 0xFF:
                        return None
                    length = struct.unpack(">H", marker[2:4])[0]
                    if marker[1] in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                        data = fh.read(5)
                        h, w = struct.unpack(">HH", data[1:5])
                        return w, h
                    fh.seek(length - 2, 1)
    except (OSError, struct.error):
        return None
    return None


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode ``path`` to float32 RGB (H, W, 3) in [0, 1]. Grey is repeated to RGB, alpha is
    dropped (composited on black, as its premultiplied look), 16-bit keeps its precision."""
    path = Path(path)
    if not path.is_file():
        raise FaigError(f"{path}: no such image file")
    if path.stat().st_size == 0:
        raise FaigError(f"{path}: the image file is empty (0 bytes)")
    size = header_size(path)
    if size and size[0] * size[1] > max_pixels:
        raise FaigError(f"{path}: {size[0]}x{size[1]} is too large ({size[0] * size[1] / 1e6:.0f} MP, "
                        f"limit {max_pixels / 1e6:.0f} MP); crop or downscale it first")
    data = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FaigError(f"{path}: not a readable image (truncated or not an image?)")
    if img.shape[0] * img.shape[1] > max_pixels:
        raise FaigError(f"{path}: {img.shape[1]}x{img.shape[0]} is too large; crop or downscale it first")
    return to_float_rgb(img, path)


def to_float_rgb(img: np.ndarray, path: Path | str = "<image>") -> np.ndarray:
    if img.dtype == np.uint8:
        f = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        f = img.astype(np.float32) / 65535.0
    elif img.dtype in (np.float32, np.float64):
        f = np.clip(np.nan_to_num(img.astype(np.float32)), 0, 1)
    else:
        raise FaigError(f"{path}: unsupported pixel type {img.dtype}")
    if f.ndim == 2:
        f = f[:, :, None]
    channels = f.shape[2]
    if channels == 1:
        f = np.repeat(f, 3, axis=2)
    elif channels == 2:  # grey + alpha
        f = np.repeat(f[:, :, :1] * f[:, :, 1:2], 3, axis=2)
    elif channels == 4:  # BGRA
        f = f[:, :, :3] * f[:, :, 3:4]
        f = f[:, :, ::-1]
    elif channels == 3:
        f = f[:, :, ::-1]  # BGR -> RGB
    else:
        raise FaigError(f"{path}: {channels} channels; expected grey, RGB or RGBA")
    return np.ascontiguousarray(f, dtype=np.float32)


def write_image(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write float RGB [0, 1] as 8-bit PNG (or the suffix's format), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    u8 = np.clip(np.round(np.asarray(img, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    if u8.ndim == 3:
        u8 = u8[:, :, ::-1]
    ok, buf = cv2.imencode(path.suffix or ".png", u8)
    if not ok:
        raise FaigError(f"{path}: cannot encode an image of this format")
    tmp = path.with_name(path.name + ".part")
    try:
        with open(tmp, "wb") as fh:
            fh.write(buf.tobytes())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise FaigError(f"{path}: cannot write the image: {exc.strerror or exc}") from None


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HWC RGB float -> 1x3xHxW float32."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().unsqueeze(0)


def to_image(t: torch.Tensor) -> np.ndarray:
    """1x3xHxW or 3xHxW -> HWC float32 clipped to [0, 1]."""
    if t.ndim == 4:
        t = t[0]
    return t.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
