"""Reference networks written for the tests, independent of plugins/.

``BasicSRMSRResNet`` follows BasicSR's ``MSRResNet`` (key names, forward pass); ``PaperSRCNN``
is the FAIG paper's SRCNN-style net written out layer by layer. Tests load the plugins' random
weights into these and compare, and the slow reference attributions rebuild them at each step.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class _ResBlock(nn.Module):
    def __init__(self, nf: int):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, kernel_size=3, stride=1, padding=1, bias=True)
        self.conv2 = nn.Conv2d(nf, nf, kernel_size=3, stride=1, padding=1, bias=True)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x):
        identity = x
        out = self.conv2(self.relu(self.conv1(x)))
        return identity + out


class BasicSRMSRResNet(nn.Module):
    """BasicSR MSRResNet: conv_first, body.N.{conv1,conv2}, upconv1[, upconv2], conv_hr, conv_last."""

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=4):
        super().__init__()
        self.upscale = upscale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[_ResBlock(num_feat) for _ in range(num_block)])
        if upscale in (2, 3):
            self.upconv1 = nn.Conv2d(num_feat, num_feat * upscale * upscale, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(upscale)
        elif upscale == 4:
            self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.upconv2 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(2)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=False)

    def forward(self, x):
        feat = self.lrelu(self.conv_first(x))
        out = self.body(feat)
        if self.upscale == 4:
            out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        else:
            out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        return out + F.interpolate(x, scale_factor=self.upscale, mode="bilinear", align_corners=False)


class PaperSRCNN(nn.Module):
    """convs of ``widths`` with LeakyReLU(0.1), one PixelShuffle up-sampling conv per factor
    (2, 2 for x4; 3 for x3; 2 for x2), a conv + LeakyReLU, then the RGB output conv."""

    def __init__(self, widths=(64, 128, 128, 128, 128, 128), scale=2):
        super().__init__()
        layers, cin = [], 3
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, 1, 1), nn.LeakyReLU(0.1)]
            cin = w
        for r in ([2, 2] if scale == 4 else [scale]):
            layers += [nn.Conv2d(cin, cin * r * r, 3, 1, 1), nn.PixelShuffle(r), nn.LeakyReLU(0.1)]
        layers += [nn.Conv2d(cin, cin, 3, 1, 1), nn.LeakyReLU(0.1), nn.Conv2d(cin, 3, 3, 1, 1)]
        self.features = nn.Sequential(*layers)

    def forward(self, x):
        return self.features(x)


def msrresnet_from_state_dict(sd) -> BasicSRMSRResNet:
    """Infer the BasicSR hyper-parameters from shapes the way a user would read them off."""
    nf = sd["conv_first.weight"].shape[0]
    blocks = len({k.split(".")[1] for k in sd if k.startswith("body.")})
    up = 4 if "upconv2.weight" in sd else int(round((sd["upconv1.weight"].shape[0] / nf) ** 0.5))
    return BasicSRMSRResNet(sd["conv_first.weight"].shape[1], sd["conv_last.weight"].shape[0], nf, blocks, up)


class BasicSRUpsample(nn.Sequential):
    """BasicSR's arch_util.Upsample (EDSR and RCAN share it): conv to 4·C + PixelShuffle(2) per
    factor 2, or conv to 9·C + PixelShuffle(3) for x3."""

    def __init__(self, scale, num_feat):
        m = []
        if (scale & (scale - 1)) == 0:
            for _ in range(int(math.log(scale, 2))):
                m.append(nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1))
                m.append(nn.PixelShuffle(2))
        elif scale == 3:
            m.append(nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1))
            m.append(nn.PixelShuffle(3))
        super().__init__(*m)


# --------------------------------------------------------------------------------------------
# EDSR-PyTorch's src/model/common.py (its EDSR and RCAN, the original released checkpoints'
# code, build on these): default_conv, MeanShift, Upsampler


def original_conv(in_channels, out_channels, kernel_size, bias=True):
    """common.default_conv."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class OriginalMeanShift(nn.Conv2d):
    """common.MeanShift: a 1x1 conv subtracting (sign -1) or adding the DIV2K mean. The original
    sets requires_grad on the module, not its parameters, so RCAN's checkpoints hold a trained
    one (``frozen=False``); EDSR's reference here freezes it."""

    def __init__(self, rgb_range, rgb_mean=(0.4488, 0.4371, 0.4040), rgb_std=(1.0, 1.0, 1.0), sign=-1,
                 frozen=False):
        super().__init__(3, 3, kernel_size=1)
        std = torch.Tensor(rgb_std)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1)
        self.bias.data = sign * rgb_range * torch.Tensor(rgb_mean) / std
        if frozen:
            for p in self.parameters():
                p.requires_grad = False


class OriginalUpsampler(nn.Sequential):
    """common.Upsampler without batch norm or activation: conv to 4·C + PixelShuffle(2) per
    factor 2, or conv to 9·C + PixelShuffle(3) for x3."""

    def __init__(self, conv, scale, n_feat):
        m = []
        if (scale & (scale - 1)) == 0:
            for _ in range(int(math.log(scale, 2))):
                m.append(conv(n_feat, 4 * n_feat, 3))
                m.append(nn.PixelShuffle(2))
        elif scale == 3:
            m.append(conv(n_feat, 9 * n_feat, 3))
            m.append(nn.PixelShuffle(3))
        else:
            raise NotImplementedError
        super().__init__(*m)
