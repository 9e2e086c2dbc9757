"""Where work runs: the caller's module is never moved in place."""
from __future__ import annotations

import torch
from torch import nn

from faig_gui.core.device import on_device


def test_a_module_already_there_is_used_as_it_is():
    m = nn.Conv2d(3, 4, 3)
    assert on_device(m, "cpu") is m


def test_a_module_elsewhere_is_copied_and_the_callers_stays_put():
    # 'meta' stands in for a GPU on this CPU-only machine: another device, the same rule
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    moved = on_device(m, "meta")
    assert moved is not m
    assert all(t.device.type == "meta" for t in [*moved.parameters(), *moved.buffers()])
    assert all(t.device.type == "cpu" for t in [*m.parameters(), *m.buffers()])
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k])
