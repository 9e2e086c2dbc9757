"""The JPEG quality read from an image by re-compression (core/prediction/jpeg_quality.py),
against images compressed here with OpenCV at known qualities."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from faig_gui.core.prediction.jpeg_quality import grey_of, grid_offsets, jpeg_quality_estimate
from faig_gui.core.resources import resources_dir


def natural(name: str) -> np.ndarray:
    """A bundled 128² calibration crop (a photograph's), HxWx3 uint8 RGB."""
    return cv2.imread(str(resources_dir() / "calibration" / name))[..., ::-1].copy()


def compressed(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()


def as_input(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1).unsqueeze(0)


PICTURES = ("astronaut_0.png", "grass_1.png", "rocket_0.png", "coins_1.png")


@pytest.mark.parametrize("quality", [5, 10, 20, 30])
@pytest.mark.parametrize("picture", PICTURES)
def test_the_quality_a_picture_was_compressed_at_is_read_back(picture, quality):
    jpg = compressed(natural(picture), quality)
    found = jpeg_quality_estimate(as_input(jpg))
    assert found is not None and found.quality == quality
    assert found.interval[0] <= quality <= found.interval[1] and found.offset == (0, 0)


@pytest.mark.parametrize("subsampling", [0, 2])   # 4:4:4 and 4:2:0 chroma
def test_another_encoder_with_either_chroma_is_read_the_same(subsampling):
    """Pillow's encoder (scikit-image's dependency, as the tests'): the luma alone is compared, so
    how the chroma was stored does not matter."""
    import io
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(natural("rocket_0.png")).save(buf, "JPEG", quality=35, subsampling=subsampling)
    jpg = np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    found = jpeg_quality_estimate(as_input(jpg))
    assert found is not None and found.quality == 35


@pytest.mark.parametrize("dy,dx", [(3, 5), (7, 1)])
def test_a_crop_off_the_block_grid_finds_the_grid_and_reads_the_same(dy, dx):
    jpg = compressed(natural("astronaut_0.png"), 20)
    crop = jpg[dy:, dx:]
    # the first whole block of the crop starts where the picture's next block did: the likeliest
    # grid by its edges (astronaut's own edges do not line up on another)
    assert grid_offsets(grey_of(crop))[0] == ((8 - dy) % 8, (8 - dx) % 8)
    found = jpeg_quality_estimate(as_input(crop))
    assert found is not None and found.quality == 20
    assert found.offset == ((8 - dy) % 8, (8 - dx) % 8)


# (not coins: that picture reads quality 85 on a block grid that follows every crop of it, as a
# picture that was a JPEG once does)
@pytest.mark.parametrize("picture", ("astronaut_0.png", "grass_1.png", "rocket_0.png", "brick_0.png"))
def test_no_quality_where_there_was_no_jpeg_last(picture):
    rgb = natural(picture)
    assert jpeg_quality_estimate(as_input(rgb)) is None            # never compressed
    # compressed, then halved (the blocks no longer line up with any re-compression's)
    small = cv2.resize(compressed(rgb, 10), (64, 64), interpolation=cv2.INTER_AREA)
    assert jpeg_quality_estimate(as_input(small)) is None
    # compressed, then noise on top (σ 0.05 ≈ 13 levels): no quality reads through it
    noisy = np.clip(compressed(rgb, 10) + np.random.default_rng(0).normal(0, 12.75, rgb.shape), 0, 255)
    assert jpeg_quality_estimate(as_input(noisy.round().astype(np.uint8))) is None


def test_an_image_too_small_for_two_blocks_reads_nothing():
    jpg = compressed(natural("astronaut_0.png"), 10)[:12, :12]
    assert jpeg_quality_estimate(as_input(jpg)) is None


def test_a_whole_photograph_is_read_from_its_centre_region():
    from faig_gui.core.prediction.jpeg_quality import REGION
    big = np.tile(natural("astronaut_0.png"), (10, 13, 1))[:1204, :1660]   # 1660 x 1204
    found = jpeg_quality_estimate(as_input(compressed(big, 15)))
    assert found is not None and found.quality == 15
    # the region searched starts at the centre less half its side: its grid offset is the
    # photograph's block grid seen from there
    top, left = (1204 - REGION) // 2, (1660 - REGION) // 2
    assert found.offset == ((8 - top % 8) % 8, (8 - left % 8) % 8)
