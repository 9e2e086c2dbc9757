"""What an architecture plugin provides (the only core module plugins import).

A plugin module defines one or more :class:`Architecture` subclasses and lists instances in a
module-level ``ARCHITECTURES`` list. Third-party packages may instead expose an instance (or a
class, or a list) through the entry-point group ``faig_gui.architectures``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any
from collections.abc import Mapping

import torch
from torch import nn


class Architecture(ABC):
    """One family of SR networks: recognise its state dicts and build modules from them."""

    #: short id used by ``--arch`` and in reports
    name: str = ""
    #: human name for the window
    display_name: str = ""

    @abstractmethod
    def detect(self, state_dict: Mapping[str, torch.Tensor]) -> bool:
        """True when ``state_dict`` belongs to this family (key names and shapes only)."""

    @abstractmethod
    def hyperparameters(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """Hyper-parameters inferred from tensor shapes; must include ``scale``."""

    @abstractmethod
    def build(self, hyperparameters: Mapping[str, Any]) -> nn.Module:
        """A fresh module with those hyper-parameters (random weights)."""

    def build_unfilled(self, hyperparameters: Mapping[str, Any]) -> nn.Module:
        """Like :meth:`build`, for a checkpoint that overwrites every parameter and persistent
        buffer at once (the registry loads checkpoints this way, strictly): a plugin may leave the
        weights uninitialised here, since drawing them can cost more than reading the file (an
        RRDBNet of 16.7 M parameters: 0.13 s a model). Anything not in the state dict (e.g. a
        non-persistent buffer) must still be set. Default: :meth:`build`."""
        return self.build(hyperparameters)

    def layer_label(self, parameter_name: str) -> str | None:
        """Optional display name for a convolution weight (e.g. 'block 3 conv1')."""
        return None

    def new_state_dict(self, **hyperparameters: Any) -> dict[str, torch.Tensor]:
        """A randomly initialised state dict (training from scratch, tests)."""
        return dict(self.build(hyperparameters).state_dict())


def shape(state_dict: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...] | None:
    """Shape of ``state_dict[key]`` or None: a small helper for ``detect``."""
    value = state_dict.get(key)
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def pixel_shuffle_upsampler(scale: int, num_feat: int, family: str = "this network") -> nn.Sequential:
    """BasicSR's ``Upsample`` (EDSR, RCAN and others build their tail from it): a 3x3 conv to
    ``num_feat·r²`` channels and PixelShuffle(r) per stage, r = 2 log2(scale) times for a power
    of two, one r = 3 stage for x3. Its convs are ``0``, ``2``, ... inside the Sequential, the key
    names the released checkpoints have."""
    if scale >= 2 and scale & (scale - 1) == 0:
        stages = [2] * (scale.bit_length() - 1)
    elif scale == 3:
        stages = [3]
    else:
        raise ValueError(f"{family} up-samples by a power of two or by 3, not x{scale}")
    layers: list[nn.Module] = []
    for r in stages:
        layers += [nn.Conv2d(num_feat, num_feat * r * r, 3, 1, 1), nn.PixelShuffle(r)]
    return nn.Sequential(*layers)


#: the DIV2K mean colour that EDSR and RCAN (BasicSR's and the original code) subtract and add back
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def reset_mean_shift(conv: nn.Conv2d, sign: float, img_range: float) -> None:
    """The original EDSR/RCAN code's MeanShift values for a fresh net, on its 1x1 conv: identity
    weights and ``sign · img_range · DIV2K_RGB_MEAN`` as bias (a checkpoint that stores its own
    MeanShift overwrites them)."""
    with torch.no_grad():
        conv.weight.copy_(torch.eye(conv.in_channels).view(*conv.weight.shape))
        if conv.bias is None:
            raise ValueError("a MeanShift conv has a bias")
        conv.bias.copy_(sign * img_range * torch.tensor(DIV2K_RGB_MEAN[:conv.out_channels]))
