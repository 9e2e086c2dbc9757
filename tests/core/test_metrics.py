"""The paper's effect metric and PSNR against literal numpy versions of docs/method.md's description."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from faig_gui.core.metrics import gradient_effect, gradient_map, psnr, psnr_rgb_y, psnr_y
from tolerances import U32, effect_atol, gamma


def literal_gradient_map(rgb_hwc: np.ndarray) -> np.ndarray:
    """Grey (BT.601), central differences [-1, 0, 1] with mirrored (reflect-101) borders,
    sqrt(gx² + gy² + 1e-6), pixel by pixel."""
    img = np.clip(rgb_hwc, 0, 1)
    grey = 0.299 * img[..., 0] + 0.587 * img[..., 1] + 0.114 * img[..., 2]
    h, w = grey.shape

    def at(y, x):
        y = -y if y < 0 else (2 * (h - 1) - y if y >= h else y)
        x = -x if x < 0 else (2 * (w - 1) - x if x >= w else x)
        return grey[y, x]
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            gx = at(y, x + 1) - at(y, x - 1)
            gy = at(y + 1, x) - at(y - 1, x)
            out[y, x] = math.sqrt(gx * gx + gy * gy + 1e-6)
    return out


def to_nchw(hwc):
    return torch.from_numpy(hwc.transpose(2, 0, 1).copy()).unsqueeze(0)


def test_gradient_map_matches_literal():
    rng = np.random.default_rng(0)
    img = rng.random((9, 13, 3)) * 1.2 - 0.1  # some values outside [0, 1]: clipped first
    got = gradient_map(to_nchw(img))[0, 0].numpy()
    np.testing.assert_allclose(got, literal_gradient_map(img), rtol=1e-12, atol=1e-12)  # float64 both sides


def test_gradient_map_of_a_flat_image_is_the_epsilon_floor():
    got = gradient_map(torch.full((1, 3, 5, 5), 0.4, dtype=torch.float64))
    np.testing.assert_allclose(got.numpy(), 1e-3, rtol=1e-9)  # sqrt(1e-6) in float64


def test_gradient_effect_is_mse_times_1000():
    rng = np.random.default_rng(1)
    a, b = rng.random((10, 8, 3)), rng.random((10, 8, 3))
    ref = 1000 * np.mean((literal_gradient_map(a) - literal_gradient_map(b)) ** 2)
    assert gradient_effect(to_nchw(a), to_nchw(b)) == pytest.approx(ref, rel=1e-10)  # float64: 80-term mean
    assert gradient_effect(to_nchw(a), to_nchw(a)) == 0.0
    # float32 outputs of a model go through the same maths
    # float32 inputs: each value rounded once (u), then float32 maps (tests/tolerances.py)
    tol = effect_atol(literal_gradient_map(a) - literal_gradient_map(b), U32 + gamma(4))
    assert gradient_effect(to_nchw(a).float(), to_nchw(b).float()) == pytest.approx(ref, rel=0, abs=tol)


def test_psnr():
    rng = np.random.default_rng(2)
    a = rng.random((12, 10, 3))
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    mse = np.mean((a - b) ** 2)
    assert psnr(a, b) == pytest.approx(10 * math.log10(1 / mse), rel=1e-10)  # float64 both sides
    assert psnr(to_nchw(a), to_nchw(b)) == pytest.approx(10 * math.log10(1 / mse), rel=1e-10)
    assert psnr(a, a) == math.inf
    # a known value: a constant error of 0.1 is 20 dB
    assert psnr(np.zeros((4, 4, 3)), np.full((4, 4, 3), 0.1)) == pytest.approx(20.0, rel=1e-12)
    # crop ignores the border, for HWC arrays and NCHW tensors alike
    c = a.copy()
    c[0, :, :] = 1 - c[0, :, :]
    mse_inner = np.mean((a[2:-2, 2:-2] - b[2:-2, 2:-2]) ** 2)
    assert psnr(c, b, crop=2) == pytest.approx(10 * math.log10(1 / mse_inner), rel=1e-10)
    assert psnr(to_nchw(c), to_nchw(b), crop=2) == pytest.approx(10 * math.log10(1 / mse_inner), rel=1e-10)


def test_psnr_y_is_the_psnr_of_bt601_luma():
    rng = np.random.default_rng(3)
    a = rng.random((12, 10, 3))
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    # MATLAB's rgb2ycbcr luma for [0, 1] RGB, in [0, 1]: (16 + 65.481 R + 128.553 G + 24.966 B) / 255
    ya, yb = [(16 + x @ np.array([65.481, 128.553, 24.966])) / 255 for x in (a, b)]
    want = 10 * math.log10(1 / np.mean((ya[2:-2, 2:-2] - yb[2:-2, 2:-2]) ** 2))
    assert psnr_y(a, b, crop=2) == pytest.approx(want, rel=1e-10)
    assert psnr_y(to_nchw(a), to_nchw(b), crop=2) == pytest.approx(want, rel=1e-10)
    # a grey error of 0.1 in every channel is 0.1 · 219/255 in the luma
    assert psnr_y(np.zeros((4, 4, 3)), np.full((4, 4, 3), 0.1)) == pytest.approx(
        -20 * math.log10(0.1 * 219 / 255), rel=1e-12)


def test_psnr_rgb_y_gives_both_from_one_difference():
    rng = np.random.default_rng(4)
    a = rng.random((14, 9, 3))
    b = np.clip(a + rng.normal(0, 0.03, a.shape), 0, 1)
    b[0, 0] = 2.0                                  # (clipped, as psnr clips)
    inner = slice(3, -3)
    d = np.clip(a, 0, 1)[inner, inner] - np.clip(b, 0, 1)[inner, inner]
    d_y = d @ (np.array([65.481, 128.553, 24.966]) / 255)
    want = (10 * math.log10(1 / np.mean(d ** 2)), 10 * math.log10(1 / np.mean(d_y ** 2)))
    for x, y in ((a, b), (to_nchw(a), to_nchw(b))):
        got = psnr_rgb_y(x, y, crop=3)
        assert got == pytest.approx(want, rel=1e-10)
        assert got == (psnr(x, y, crop=3), psnr_y(x, y, crop=3))
    assert psnr_rgb_y(a, a) == (math.inf, math.inf)
