"""Odd and broken images wherever they enter: exact pixels for the odd-but-valid ones, a one-line
FaigError for the broken ones, and no decoding at all of an image too large to hold."""
from __future__ import annotations

import logging
import struct
import threading

import cv2
import numpy as np
import pytest

from faig_gui import cli
from faig_gui.core import imageio
from faig_gui.core.dataset import make_degraded
from faig_gui.core.degradations import paper_degradations
from faig_gui.core.errors import FaigError
from faig_gui.core.imageio import header_size, read_image, write_image
from faig_gui.core.session import Session

from core.robustness_helpers import huge_png, png_bytes, png_chunk, tiny_pair


def _refused(path, *words):
    with pytest.raises(FaigError) as info:
        read_image(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


@pytest.fixture
def no_decode(monkeypatch):
    """Fail if anything reaches the decoder (size checks must come first)."""
    def refuse(*_a, **_k):
        raise AssertionError("cv2.imdecode was called on an image that should be refused from its header")
    monkeypatch.setattr(imageio.cv2, "imdecode", refuse)


# -- broken files --------------------------------------------------------------------------------
def test_zero_byte_image(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _refused(path, "empty (0 bytes)")


@pytest.mark.parametrize("keep", [10, 30, 60, 0.5, 0.9])
def test_truncated_png(tmp_path, keep):
    rng = np.random.default_rng(0)
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    data = good.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: keep if isinstance(keep, int) else int(len(data) * keep)])
    _refused(cut, "not a readable image")


def test_truncated_jpeg(tmp_path):
    rng = np.random.default_rng(1)
    good = tmp_path / "good.jpg"
    cv2.imwrite(str(good), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = good.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    # told before decoding: some libjpeg builds return a grey-filled picture with only a warning
    _refused(cut, "JPEG is truncated")


@pytest.mark.parametrize("content", [b"hello world", b"%PDF-1.4\n%\xe2\xe3", b"GIF89a" + b"\0" * 20,
                                     b"\x00" * 100])
def test_non_images(tmp_path, content):
    path = tmp_path / "picture.png"
    path.write_bytes(content)
    _refused(path, "not a readable image")


def test_jpeg_with_a_zero_segment_length_does_not_hang(tmp_path):
    path = tmp_path / "loop.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x00" + b"\0" * 64)
    done = []
    worker = threading.Thread(target=lambda: done.append(header_size(path)), daemon=True)
    worker.start()
    worker.join(5)
    assert done == [None], "header parsing hung on a zero-length JPEG segment"
    _refused(path, "not a readable image")


# -- odd but valid: exact pixel values ------------------------------------------------------------
def test_sixteen_bit_grey_keeps_its_precision(tmp_path):
    values = [0, 1, 257, 40000, 65535]
    path = tmp_path / "g16.png"
    path.write_bytes(png_bytes(5, 1, 0, 16, [b"".join(struct.pack(">H", v) for v in values)]))
    img = read_image(path)
    assert img.shape == (1, 5, 3) and img.dtype == np.float32
    expected = np.array(values, np.float64) / 65535
    np.testing.assert_allclose(img[0, :, 0], expected, rtol=0, atol=1e-7)  # a float32 level in [0, 1]: u = 6e-8
    assert np.array_equal(img[..., 0], img[..., 2])
    assert img[0, 1, 0] > 0  # 1/65535 is not lost to 8 bits


def test_sixteen_bit_rgba(tmp_path):
    path = tmp_path / "rgba16.png"
    path.write_bytes(png_bytes(1, 1, 6, 16, [struct.pack(">HHHH", 65535, 13107, 0, 32768)]))
    img = read_image(path)
    a = 32768 / 65535
    np.testing.assert_allclose(img[0, 0], [1.0 * a, 13107 / 65535 * a, 0.0], atol=1e-6)  # float32 level × alpha: a few u


def test_grayscale_8bit(tmp_path):
    path = tmp_path / "grey.png"
    path.write_bytes(png_bytes(3, 2, 0, 8, [bytes([0, 128, 255]), bytes([1, 2, 3])]))
    img = read_image(path)
    assert img.shape == (2, 3, 3)
    np.testing.assert_allclose(img[..., 1], np.array([[0, 128, 255], [1, 2, 3]]) / 255, atol=1e-7)


def test_one_bit_grey(tmp_path):
    path = tmp_path / "bits.png"
    path.write_bytes(png_bytes(8, 1, 0, 1, [bytes([0b10100001])]))
    np.testing.assert_array_equal(read_image(path)[0, :, 0], [1, 0, 1, 0, 0, 0, 0, 1])


def test_grey_with_alpha_is_composited_on_black(tmp_path):
    path = tmp_path / "ga.png"
    path.write_bytes(png_bytes(2, 1, 4, 8, [bytes([100, 255, 200, 51])]))
    img = read_image(path)
    np.testing.assert_allclose(img[0, :, 0], [100 / 255, 200 / 255 * 51 / 255], atol=1e-6)


def test_rgba_channel_order_and_alpha(tmp_path):
    path = tmp_path / "rgba.png"
    path.write_bytes(png_bytes(2, 1, 6, 8, [bytes([255, 0, 0, 255, 10, 20, 30, 0])]))
    img = read_image(path)
    np.testing.assert_allclose(img[0, 0], [1, 0, 0], atol=1e-7)   # red stays red (not BGR)
    np.testing.assert_allclose(img[0, 1], [0, 0, 0], atol=1e-7)   # fully transparent -> black


@pytest.mark.parametrize("with_transparency", [False, True])
def test_palette_png(tmp_path, with_transparency):
    palette = png_chunk(b"PLTE", bytes([255, 0, 0, 0, 0, 255, 10, 200, 30]))
    trns = png_chunk(b"tRNS", bytes([255, 128])) if with_transparency else b""
    path = tmp_path / "palette.png"
    path.write_bytes(png_bytes(3, 1, 3, 8, [bytes([0, 1, 2])], palette + trns))
    img = read_image(path)
    blue_alpha = 128 / 255 if with_transparency else 1.0
    np.testing.assert_allclose(img[0], [[1, 0, 0], [0, 0, blue_alpha], [10 / 255, 200 / 255, 30 / 255]],
                               atol=1e-6)


def test_float_tiff_is_clipped_and_nan_free(tmp_path):
    arr = np.array([[[np.nan, 2.0, -1.0]]], np.float32)
    path = tmp_path / "f.tif"
    assert cv2.imwrite(str(path), arr)
    np.testing.assert_array_equal(read_image(path)[0, 0], [0.0, 1.0, 0.0][::-1])


def test_signed_integer_tiff_is_refused(tmp_path):
    path = tmp_path / "i16.tif"
    assert cv2.imwrite(str(path), np.full((2, 2), -5, np.int16))
    _refused(path, "unsupported pixel type int16")


# -- sizes from headers, and the huge ones ---------------------------------------------------------
@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif", ".webp", ".ppm", ".pgm"])
def test_header_size_of_every_accepted_format(tmp_path, suffix):
    path = tmp_path / f"img{suffix}"
    shape = (13, 29) if suffix == ".pgm" else (13, 29, 3)
    assert cv2.imwrite(str(path), np.full(shape, 77, np.uint8))
    assert header_size(path) == (29, 13)
    assert read_image(path).shape == (13, 29, 3)


def test_huge_png_is_refused_before_decoding(tmp_path, no_decode):
    path = tmp_path / "huge.png"
    huge_png(path, 12000, 12000)
    assert path.stat().st_size < 1_000_000  # 144 MP of zeros in a small file
    _refused(path, "12000x12000 is too large", "144 MP")


def _huge_headers() -> dict[str, bytes]:
    w = h = 12000
    tiff = (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2)
            + struct.pack("<HHII", 256, 4, 1, w) + struct.pack("<HHII", 257, 4, 1, h) + b"\0\0\0\0")
    jpeg = (b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0" + b"\0" * 9
            + b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, h, w, 3) + b"\0" * 9 + b"\xff\xd9")
    bmp = b"BM" + b"\0" * 12 + struct.pack("<Iii", 40, w, -h) + b"\0" * 28
    vp8x = b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8X" + struct.pack("<I", 10) + b"\0" * 4 \
        + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    vp8l_bits = (w - 1) | ((h - 1) << 14)
    vp8l = b"RIFF" + struct.pack("<I", 30) + b"WEBPVP8L" + struct.pack("<I", 10) + b"\x2f" \
        + vp8l_bits.to_bytes(4, "little") + b"\0" * 8
    ppm = b"P6\n# a comment\n12000 12000\n255\n" + b"\0" * 16
    return {"huge.tif": tiff, "huge.jpg": jpeg, "huge.bmp": bmp, "huge_x.webp": vp8x,
            "huge_l.webp": vp8l, "huge.ppm": ppm}


@pytest.mark.parametrize("name", sorted(_huge_headers()))
def test_huge_headers_of_every_format_are_refused_before_decoding(tmp_path, no_decode, name):
    path = tmp_path / name
    path.write_bytes(_huge_headers()[name])
    _refused(path, "12000x12000 is too large")


def test_unknown_format_is_not_decoded(tmp_path, no_decode):
    # a Sun raster header OpenCV would decode, but whose size faig-gui does not check
    path = tmp_path / "sun.png"
    path.write_bytes(b"\x59\xa6\x6a\x95" + struct.pack(">IIII", 12000, 12000, 24, 0) + b"\0" * 16)
    _refused(path, "not one of PNG, JPEG")


# -- where images enter: session, analysis, commands ---------------------------------------------
def test_session_keeps_its_images_when_a_bad_one_is_added(tmp_path):
    good = tmp_path / "good.png"
    write_image(good, np.full((6, 6, 3), 0.25, np.float32))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    s = Session()
    s.add_image(good)
    with pytest.raises(FaigError, match="bad.png"):
        s.add_image(bad)
    assert [i.name for i in s.images] == ["good.png"] and s.current == 0


def test_tiny_images(tmp_path):
    one = tmp_path / "one.png"
    write_image(one, np.zeros((1, 1, 3), np.float32))
    with pytest.raises(FaigError, match="too small"):
        Session().add_image(one)
    hr = {"one.png": read_image(one)}
    with pytest.raises(FaigError, match="smaller than the scale x2"):
        make_degraded(hr, 2, paper_degradations())
    with pytest.raises(FaigError, match="too small for x2 analysis"):
        make_degraded({"small.png": np.zeros((6, 6, 3), np.float32)}, 2, paper_degradations())


def test_odd_sizes_are_mod_cropped_and_said_so(caplog):
    img = np.random.default_rng(0).random((33, 41, 3)).astype(np.float32)
    with caplog.at_level(logging.INFO, logger="faig_gui"):
        items = make_degraded({"odd.png": img}, 2, paper_degradations())
    assert tuple(items[0].hr.shape[-2:]) == (32, 40)
    assert np.array_equal(items[0].hr[0].permute(1, 2, 0).numpy(), img[:32, :40])
    assert any("odd.png: 41x33 cropped to 40x32" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="faig_gui"):
        make_degraded({"even.png": img[:32, :40]}, 2, paper_degradations())
    assert not caplog.records


def test_cli_says_it_cropped(tmp_path, capsys):
    hr = tmp_path / "hr"
    write_image(hr / "odd.png", np.full((17, 19, 3), 0.5, np.float32))
    rc = cli.main(["degrade", "--hr", str(hr), "--out", str(tmp_path / "out"), "--scale", "2"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "faig-gui: note: odd.png: 19x17 cropped to 18x16 (a multiple of the scale x2)" in err
    assert read_image(tmp_path / "out" / "GT" / "odd.png").shape == (16, 18, 3)


def test_cli_reports_a_bad_image_in_one_line(tmp_path, capsys):
    baseline, _ = tiny_pair(tmp_path)
    bad = tmp_path / "truncated.png"
    bad.write_bytes(png_bytes(4, 4, 0, 8, [b"\0" * 4] * 4)[:40])
    rc = cli.main(["run", "--checkpoint", str(baseline), "--input", str(bad), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("faig-gui: error: ") and str(bad) in err and "\n" not in err
