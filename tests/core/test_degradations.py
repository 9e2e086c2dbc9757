"""Degradations against literal formulas: the Gaussian kernel, blurring with reflect-101 borders,
MATLAB's antialiased bicubic imresize written per pixel, seeded noise, 8-bit rounding, mod-crop."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from faig_gui.core.degradations import (Degradation, add_noise, bicubic_resize, degrade, downsample,
                                        gaussian_blur, gaussian_kernel, mod_crop, quantize, seeded_generator)
from faig_gui.core.errors import FaigError


# --------------------------------------------------------------------------------------------
# blur

@pytest.mark.parametrize("sigma", [0.5, 2.0, 3.7])
def test_gaussian_kernel_is_the_literal_formula(sigma):
    k = gaussian_kernel(sigma).numpy()
    assert k.shape == (21, 21)
    ref = np.array([[math.exp(-((y - 10) ** 2 + (x - 10) ** 2) / (2 * sigma ** 2)) for x in range(21)]
                    for y in range(21)])
    ref /= ref.sum()
    np.testing.assert_allclose(k, ref, rtol=1e-12, atol=1e-15)  # float64 both sides: 21² terms · u64 ≈ 5e-14
    with pytest.raises(FaigError):
        gaussian_kernel(0.0)


def _reflect101(i, n):
    while i < 0 or i >= n:
        i = -i if i < 0 else 2 * (n - 1) - i
    return i


def test_gaussian_blur_literal_correlation_small_kernel():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(1, 3, 9, 11, generator=g, dtype=torch.float64)
    size, sigma = 5, 1.3
    got = gaussian_blur(img, sigma, size=size)[0].numpy()
    k = gaussian_kernel(sigma, size).numpy()
    x = img[0].numpy()
    for c in range(3):
        for y in range(9):
            for xx in range(11):
                acc = sum(k[a, b] * x[c, _reflect101(y + a - 2, 9), _reflect101(xx + b - 2, 11)]
                          for a in range(size) for b in range(size))
                assert got[c, y, xx] == pytest.approx(acc, rel=1e-12, abs=1e-14)  # float64: ≤ 441 terms · u64


def test_gaussian_blur_paper_kernel_matches_opencv():
    rng = np.random.default_rng(1)
    hwc = rng.random((32, 40, 3))
    k = gaussian_kernel(2.0).numpy()
    ref = cv2.filter2D(hwc, -1, k, borderType=cv2.BORDER_REFLECT_101)
    got = gaussian_blur(torch.from_numpy(hwc.transpose(2, 0, 1)).unsqueeze(0), 2.0)[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(got, ref, atol=1e-12)  # float64 both sides, values ≤ 1


# --------------------------------------------------------------------------------------------
# MATLAB bicubic imresize, written out per output pixel

def _matlab_cubic(t):
    a = abs(t)
    if a <= 1:
        return 1.5 * a ** 3 - 2.5 * a ** 2 + 1
    if a <= 2:
        return -0.5 * a ** 3 + 2.5 * a ** 2 - 4 * a + 2
    return 0.0


def _matlab_contributions(in_len, out_len):
    """For each output pixel: [(input index 0-based, weight)], as MATLAB imresize's contributions()
    with antialiasing when shrinking and symmetric ('aux = [1:n, n:-1:1]') borders."""
    scale = out_len / in_len
    width = 4.0 / scale if scale < 1 else 4.0
    result = []
    for j in range(1, out_len + 1):
        u = j / scale + 0.5 * (1 - 1 / scale)           # the output pixel's centre in input coordinates
        left = math.floor(u - width / 2)
        taps = math.ceil(width) + 2
        pairs = []
        for p in range(taps):
            idx = left + p
            w = scale * _matlab_cubic(scale * (u - idx)) if scale < 1 else _matlab_cubic(u - idx)
            aux = list(range(1, in_len + 1)) + list(range(in_len, 0, -1))
            pairs.append((aux[(idx - 1) % len(aux)] - 1, w))
        total = sum(w for _, w in pairs)
        result.append([(i, w / total) for i, w in pairs])
    return result


def matlab_imresize(img, out_h, out_w):
    """(C, H, W) -> (C, out_h, out_w), MATLAB order: first along height, then along width."""
    c, h, w = img.shape
    rows, cols = _matlab_contributions(h, out_h), _matlab_contributions(w, out_w)
    tmp = np.zeros((c, out_h, w))
    for ch in range(c):
        for i in range(out_h):
            for x in range(w):
                tmp[ch, i, x] = sum(wt * img[ch, src, x] for src, wt in rows[i])
    out = np.zeros((c, out_h, out_w))
    for ch in range(c):
        for i in range(out_h):
            for j in range(out_w):
                out[ch, i, j] = sum(wt * tmp[ch, i, src] for src, wt in cols[j])
    return out


@pytest.mark.parametrize("scale,h,w", [(2, 12, 18), (2, 10, 14), (3, 9, 15), (3, 21, 12), (4, 16, 20), (4, 12, 28)])
def test_downsample_is_matlab_bicubic(scale, h, w):
    rng = np.random.default_rng(scale * 100 + h)
    img = rng.random((3, h, w))
    got = downsample(torch.from_numpy(img).unsqueeze(0), scale)[0].numpy()
    assert got.shape == (3, h // scale, w // scale)
    np.testing.assert_allclose(got, matlab_imresize(img, h // scale, w // scale), atol=1e-12)  # float64, ≤ 16-tap sums


@pytest.mark.parametrize("size_in,size_out", [((7, 11), (3, 5)), ((5, 6), (11, 13)), ((8, 8), (8, 8))])
def test_bicubic_resize_any_size_and_upscaling(size_in, size_out):
    rng = np.random.default_rng(3)
    img = rng.random((2, *size_in))
    got = bicubic_resize(torch.from_numpy(img).unsqueeze(0), *size_out)[0].numpy()
    np.testing.assert_allclose(got, matlab_imresize(img, *size_out), atol=1e-12)  # float64, ≤ 16-tap sums
    if size_in == size_out:
        np.testing.assert_allclose(got, img, atol=1e-12)  # identity at scale 1


def test_downsample_keeps_constants_and_rejects_bad_sizes():
    x = torch.full((1, 3, 12, 12), 0.3, dtype=torch.float64)
    np.testing.assert_allclose(downsample(x, 3).numpy(), 0.3, atol=1e-12)  # float64 weights summing to 1
    with pytest.raises(FaigError, match="multiple"):
        downsample(torch.zeros(1, 3, 13, 12), 2)


# --------------------------------------------------------------------------------------------
# noise, rounding, cropping, the whole chain

def test_noise_is_seeded_and_has_the_right_std():
    x = torch.zeros(1, 3, 128, 128)
    a = add_noise(x, 0.1, seeded_generator(5))
    b = add_noise(x, 0.1, seeded_generator(5))
    c = add_noise(x, 0.1, seeded_generator(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    n = a.double().numpy().ravel()
    assert n.std() == pytest.approx(0.1, rel=0.02)  # 49k samples: std error ~0.3 %
    assert abs(n.mean()) < 0.002
    # additive: the image is only shifted (atol: one float32 add and subtract of values ≤ 1: 2u)
    y = torch.full((1, 3, 128, 128), 0.5)
    assert torch.allclose(add_noise(y, 0.1, seeded_generator(5)) - y, a, atol=1e-7)


def test_quantize_rounds_to_8_bits_and_clips():
    x = torch.tensor([-0.2, 0.0, 0.51 / 255, 0.49 / 255, 100.6 / 255, 1.0, 1.7])
    expected = torch.tensor([0, 0, 1, 0, 101, 255, 255]) / 255
    assert torch.allclose(quantize(x), expected, atol=1e-7)  # k/255 in float32: u = 6e-8


def test_mod_crop_arrays_and_tensors():
    a = np.zeros((13, 17, 3))
    assert mod_crop(a, 4).shape == (12, 16, 3)
    assert mod_crop(a, 1).shape == (13, 17, 3)
    t = torch.arange(13 * 17, dtype=torch.float32).view(1, 1, 13, 17)
    cropped = mod_crop(t, 3)
    assert cropped.shape == (1, 1, 12, 15)
    assert torch.equal(cropped, t[..., :12, :15])  # top-left kept


def test_degrade_chain_blur_then_down_then_noise_then_round():
    g = torch.Generator().manual_seed(2)
    hr = torch.rand(1, 3, 24, 24, generator=g)
    blur = degrade(hr, 2, Degradation("blur", blur_sigma=2.0))
    ref = torch.round((downsample(gaussian_blur(hr, 2.0), 2)).clamp(0, 1) * 255) / 255
    assert torch.equal(blur, ref)
    noise = degrade(hr, 2, Degradation("noise", noise_sigma=0.1), seeded_generator(9))
    ref = downsample(hr, 2) + 0.1 * torch.randn(1, 3, 12, 12, generator=seeded_generator(9))
    assert torch.allclose(noise, torch.round(ref.clamp(0, 1) * 255) / 255, atol=1e-7)  # k/255 in float32: u = 6e-8
    assert torch.equal(noise * 255, torch.round(noise * 255))
