"""Checks every architecture plugin's test runs the same way (tests/plugins/test_<arch>.py):
outputs equal to a reference class written in the test, a save/load round trip through the
registry, and FAIG against the slow literal path sum of tests/core/test_attribution.py."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from core.test_attribution import literal_faig, make_image
from faig_gui.core.attribution import PathOptions, faig_attribution
from faig_gui.core.checkpoint import save_checkpoint
from faig_gui.core.paths import riemann_left
from faig_gui.core.registry import LoadedModel, default_registry
from tolerances import assert_path_sum_close, path_terms


def randomised(sd, seed: int, size: float = 0.1) -> OrderedDict[str, torch.Tensor]:
    """Random values for every tensor, biases included (zero biases would hide a bias mix-up)."""
    g = torch.Generator().manual_seed(seed)
    return OrderedDict((k, size * torch.randn(v.shape, generator=g)) for k, v in sd.items())


def lr_image(side: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(seed))


def assert_same_outputs(got: torch.Tensor, expected: torch.Tensor) -> None:
    # Plugin and reference run the same float32 convolutions on the same shapes; only the order of
    # a few element-wise additions may differ (a few ulps). 1e-5 of the output's size is ~100 ulps:
    # room for that, far below what a wrong weight, bias or residual scale moves.
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


def check_equals_reference(reference: nn.Module, seed: int, arch: str, scale: int, side: int = 6,
                           call: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None) -> LoadedModel:
    """Random weights in the reference; the plugin, detecting them from the state dict alone, must
    keep the keys in order and give the reference's outputs."""
    sd = randomised(reference.state_dict(), seed)
    reference.load_state_dict(sd)
    reference.eval()
    model = default_registry().model_from_state_dict(dict(sd))
    assert model.arch_name == arch
    assert model.scale == scale
    assert list(model.module.state_dict()) == list(sd)  # the published key names, in their order
    x = lr_image(side, seed)
    with torch.no_grad():
        expected = call(reference, x) if call else reference(x)
        got = model.module(x)
    assert got.shape == (1, 3, side * scale, side * scale)
    assert_same_outputs(got, expected)
    return model


def check_round_trip(tmp_path: Path, arch: str, hp: dict, seed: int) -> None:
    """.pth as BasicSR saves it ({'params': sd}) and .safetensors (keys stored sorted): the same
    architecture, hyper-parameters, key order and outputs as the module built in memory."""
    reg = default_registry()
    tmp_path.mkdir(parents=True, exist_ok=True)
    sd = randomised(reg.get(arch).new_state_dict(**hp), seed)
    direct = reg.model_from_state_dict(dict(sd))
    x = lr_image(5, seed)
    with torch.no_grad():
        expected = direct.module(x)
    for name in ("model.pth", "model.safetensors"):
        path = tmp_path / name
        save_checkpoint(path, sd)
        if name.endswith(".pth"):
            assert set(torch.load(path, weights_only=True)) == {"params"}
        loaded = reg.load_model(path)
        assert loaded.arch_name == arch, name
        assert loaded.hyperparameters == direct.hyperparameters, name
        assert list(loaded.state_dict) == list(sd), name
        with torch.no_grad():
            assert torch.equal(loaded.module(x), expected), name


def check_faig_matches_literal(arch: str, hp: dict, build: Callable[[], nn.Module], seed: int = 0,
                               steps: int = 3, lr_side: int = 5, fixed: Callable[[str], bool] = lambda k: False
                               ) -> None:
    """FAIG on a tiny perturbed pair against the float64 literal path sum with the reference
    class rebuilt at every step (tests/core/test_attribution.py). ``fixed`` keys keep the
    plugin's initial values in both nets (EDSR-PyTorch's MeanShift: never trained)."""
    reg = default_registry()
    torch.manual_seed(seed)
    init = reg.get(arch).new_state_dict(**hp)
    base_sd = randomised(init, seed, size=0.2)
    base_sd.update({k: v for k, v in init.items() if fixed(k)})
    # the target is the baseline moved a little, as after fine-tuning; biases move too
    targ_sd = OrderedDict((k, v if fixed(k) else v + 0.2 * (v.abs().mean() + 0.01) * torch.randn_like(v))
                          for k, v in base_sd.items())
    base, targ = reg.model_from_state_dict(dict(base_sd)), reg.model_from_state_dict(dict(targ_sd))
    scale = base.scale
    img = make_image("a", ["blur"], seed=seed + 1, lr_side=lr_side, scale=scale)
    ours = faig_attribution(targ.module, base.state_dict, targ.state_dict, img.lr["blur"], img.hr,
                            options=PathOptions(riemann_left(steps), chunk=2))
    ref = literal_faig(build, base.state_dict, targ.state_dict, img.lr["blur"], img.hr, steps)
    assert (ref > 0).mean() > 0.5  # a real signal, not a vector of zeros
    assert_path_sum_close(ours, ref, path_terms(build(), (lr_side * scale) ** 2))


def check_graph_and_live_masking(arch: str, hp: dict, seed: int = 0) -> None:
    """What the window does with any plugin's module: torch.fx traces it (every conv weight a
    graph node), and the incremental forward of a masked target gives the masked net's output."""
    from faig_gui.core.filters import FilterIndex
    from faig_gui.core.graph import graph_for, traced_graph
    from faig_gui.core.incremental import IncrementalForward
    from faig_gui.core.masking import FilterMask, masked_state_dict

    reg = default_registry()
    base_sd = randomised(reg.get(arch).new_state_dict(**hp), seed)
    targ_sd = randomised(base_sd, seed + 1)
    target = reg.model_from_state_dict(dict(targ_sd))
    graph = graph_for(target)
    assert graph.traced, graph.note
    index = FilterIndex.of_model(target)
    assert sorted(n.weight for n in graph.nodes if n.kind == "conv") == sorted(lay.name for lay in index.layers)
    incremental = IncrementalForward(target.module, traced_graph(target))
    names = [name for name, _ in target.module.named_parameters()]
    x = lr_image(5, seed)
    incremental.run(x, {k: targ_sd[k] for k in names})
    masked = masked_state_dict(targ_sd, base_sd, FilterMask(np.arange(0, index.total, 5)), index)
    got = incremental.run(x, {k: masked[k] for k in names})
    with torch.no_grad():
        expected = reg.model_from_state_dict(dict(masked)).module(x)
        unmasked = target.module(x)
    assert_same_outputs(got, expected)
    assert not torch.allclose(expected, unmasked, atol=1e-4)   # the mask did change the output
