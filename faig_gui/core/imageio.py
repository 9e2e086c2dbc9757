"""Reading and writing images: any common format in, float32 RGB HWC in [0, 1] out."""
from __future__ import annotations

import logging
import os
import struct
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import torch

from faig_gui.core.errors import FaigError
from faig_gui.core.results import atomic_write_bytes

# decode failures become FaigError messages; OpenCV's own console warnings would only add noise
try:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
except AttributeError:  # pragma: no cover - builds without the logging module
    pass

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


#: formats whose size is read from the header before decoding; nothing else is decoded
KNOWN_FORMATS = "PNG, JPEG, BMP, TIFF, WebP, PPM/PGM"
_log = logging.getLogger("faig_gui")


def header_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) from the file's header without decoding, or None when the bytes are not
    one of KNOWN_FORMATS or the header is cut short. The format is told by content, not suffix."""
    try:
        with open(path, "rb") as fh:
            return _header_size(fh)
    except (OSError, struct.error, ValueError, IndexError):
        return None


def _header_size(fh: BinaryIO) -> tuple[int, int] | None:
    head = fh.read(32)
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return struct.unpack(">II", head[16:24]) if head[12:16] == b"IHDR" else None
    if head[:2] == b"\xff\xd8":
        return _jpeg_size(fh)
    if head[:2] == b"BM":
        dib = struct.unpack("<I", head[14:18])[0]
        if dib == 12:  # OS/2 BITMAPCOREHEADER
            return struct.unpack("<HH", head[18:22])
        w, h = struct.unpack("<ii", head[18:26])
        return abs(w), abs(h)
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_size(fh, "<" if head[:2] == b"II" else ">")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_size(head)
    if head[:1] == b"P" and head[1:2] in b"123456":
        return _pnm_size(fh)
    return None


def _jpeg_size(fh: BinaryIO) -> tuple[int, int] | None:
    """Walk the JPEG segments to the first start-of-frame marker."""
    fh.seek(2)
    while True:
        marker = fh.read(2)
        while marker[:1] == b"\xff" and marker[1:2] == b"\xff":  # fill bytes
            marker = marker[1:] + fh.read(1)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        kind = marker[1]
        if kind in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            continue
        if kind in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        raw = fh.read(2)
        if len(raw) < 2:
            return None
        length = struct.unpack(">H", raw)[0]
        if length < 2:  # a zero length would loop forever
            return None
        if kind in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            data = fh.read(5)
            if len(data) < 5:
                return None
            h, w = struct.unpack(">HH", data[1:5])
            return w, h
        fh.seek(length - 2, 1)


def _tiff_size(fh: BinaryIO, order: str) -> tuple[int, int] | None:
    """ImageWidth (256) and ImageLength (257) of the first IFD (the page OpenCV decodes)."""
    fh.seek(4)
    (offset,) = struct.unpack(order + "I", fh.read(4))
    fh.seek(offset)
    (count,) = struct.unpack(order + "H", fh.read(2))
    found: dict[int, int] = {}
    for _ in range(min(count, 4096)):
        entry = fh.read(12)
        if len(entry) < 12:
            return None
        tag, kind, n = struct.unpack(order + "HHI", entry[:8])
        if tag in (256, 257) and n == 1:
            if kind == 3:    # SHORT
                found[tag] = struct.unpack(order + "H", entry[8:10])[0]
            elif kind == 4:  # LONG
                found[tag] = struct.unpack(order + "I", entry[8:12])[0]
        if 256 in found and 257 in found:
            return found[256], found[257]
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk, data = head[12:16], head[20:32]
    if chunk == b"VP8 " and data[3:6] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[6:10])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and data[:1] == b"\x2f":
        bits = int.from_bytes(data[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(data[4:7], "little") + 1, int.from_bytes(data[7:10], "little") + 1
    return None


def _pnm_size(fh: BinaryIO) -> tuple[int, int] | None:
    """The first two numbers after the magic, skipping whitespace and comments."""
    fh.seek(2)
    numbers: list[int] = []
    digits = b""
    for _ in range(4096):
        c = fh.read(1)
        if c == b"#":
            fh.readline()
            continue
        if c.isdigit():
            digits += c
            continue
        if digits:
            numbers.append(int(digits))
            digits = b""
            if len(numbers) == 2:
                return numbers[0], numbers[1]
        if not c or not c.isspace():
            return None
    return None


def _jpeg_complete(data: np.ndarray) -> bool:
    """A JPEG's last bytes hold its end-of-image marker (libjpeg fills a cut-off file with grey
    and only warns; trailing padding after the marker is allowed)."""
    tail = data[-4096:].tobytes()
    return b"\xff\xd9" in tail


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode ``path`` to float32 RGB (H, W, 3) in [0, 1]. Grey is repeated to RGB, alpha is
    dropped (composited on black, as its premultiplied look), 16-bit keeps its precision.

    Hostile input: the size is read from the header and checked against ``max_pixels`` before
    anything is decoded (a few hundred KB of PNG can hold a gigapixel), and only formats whose
    header can be read that way are decoded at all."""
    path = Path(path)
    if not path.is_file():
        raise FaigError(f"{path}: no such image file")
    if path.stat().st_size == 0:
        raise FaigError(f"{path}: the image file is empty (0 bytes)")
    size = header_size(path)
    if size is None:
        raise FaigError(f"{path}: not a readable image (truncated, or not one of {KNOWN_FORMATS})")
    w, h = size
    if w <= 0 or h <= 0:
        raise FaigError(f"{path}: the header says {w}x{h} pixels; the file is broken")
    if w * h > max_pixels:
        raise FaigError(f"{path}: {w}x{h} is too large ({w * h / 1e6:.0f} MP, "
                        f"limit {max_pixels / 1e6:.0f} MP); crop or downscale it first")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise FaigError(f"{path}: cannot read the image: {getattr(exc, 'strerror', None) or exc}") from None
    if data[:2].tobytes() == b"\xff\xd8" and not _jpeg_complete(data):
        raise FaigError(f"{path}: the JPEG is truncated (no end-of-image marker)")
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise FaigError(f"{path}: not a readable image: {str(exc).strip().splitlines()[-1][:160]}") from None
    if img is None or img.size == 0:
        raise FaigError(f"{path}: not a readable image (truncated or not an image?)")
    if img.shape[0] * img.shape[1] > max_pixels:
        raise FaigError(f"{path}: {img.shape[1]}x{img.shape[0]} is too large; crop or downscale it first")
    return to_float_rgb(img, path)


def crop_to_scale(img: np.ndarray, scale: int, name: str = "<image>") -> np.ndarray:
    """Mod-crop an HWC image to multiples of ``scale`` and say so (logger ``faig_gui``) when
    pixels are dropped, so the user knows the image that was analysed is not quite theirs."""
    h, w = img.shape[:2]
    if scale < 1:
        raise FaigError(f"{name}: scale must be at least 1, got {scale}")
    if h < scale or w < scale:
        raise FaigError(f"{name}: {w}x{h} is smaller than the scale x{scale}")
    ch, cw = h - h % scale, w - w % scale
    if (ch, cw) != (h, w):
        _log.info("%s: %dx%d cropped to %dx%d (a multiple of the scale x%d)", name, w, h, cw, ch, scale)
    return img[:ch, :cw]


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
    u8 = np.clip(np.round(np.asarray(img, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    if u8.ndim == 3:
        u8 = u8[:, :, ::-1]
    ok, buf = cv2.imencode(path.suffix or ".png", u8)
    if not ok:
        raise FaigError(f"{path}: cannot encode an image of this format")
    atomic_write_bytes(path, buf.tobytes(), "the image")


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """HWC RGB float -> 1x3xHxW float32."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().unsqueeze(0)


def to_image(t: torch.Tensor) -> np.ndarray:
    """1x3xHxW or 3xHxW -> HWC float32 clipped to [0, 1]."""
    if t.ndim == 4:
        t = t[0]
    return t.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
