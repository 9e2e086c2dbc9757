"""Hand-made hostile and odd files for the robustness tests (no image library involved).

``png_bytes`` writes PNG files chunk by chunk with zlib, so the tests can make palette,
grey+alpha, 16-bit and deliberately lying headers whose pixel values are known exactly.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import torch

from faig_gui.core.checkpoint import save_checkpoint
from faig_gui.core.registry import default_registry


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(width: int, height: int, color_type: int, depth: int, rows: list[bytes],
              extra: bytes = b"") -> bytes:
    """A PNG with filter type 0 on every row; ``rows`` are the raw scanlines."""
    raw = b"".join(b"\x00" + r for r in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra
            + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))


def huge_png(path: Path, width: int, height: int) -> None:
    """A real, decodable grey PNG of width x height zeros, compressed row by row (small file)."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    parts = [comp.compress(row) for _ in range(height)]
    data = b"".join(parts) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", data)
                     + png_chunk(b"IEND", b""))


def tiny_msrresnet(seed: int = 0, num_feat: int = 4, num_block: int = 1, scale: int = 2) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    arch = default_registry().get("msrresnet")
    return arch.new_state_dict(num_feat=num_feat, num_block=num_block, scale=scale)


def tiny_pair(folder: Path, num_feat: int = 4) -> tuple[Path, Path]:
    """A baseline/target pair of a 1-block MSRResNet x2 with random weights."""
    baseline, target = folder / "baseline.pth", folder / "target.pth"
    save_checkpoint(baseline, tiny_msrresnet(0, num_feat))
    save_checkpoint(target, tiny_msrresnet(1, num_feat))
    return baseline, target
