"""Masking against a literal loop over the masked filters; the loaded pair is never modified."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from faig_gui.core.errors import FaigError
from faig_gui.core.inference import super_resolve
from faig_gui.core.filters import FilterIndex
from faig_gui.core.masking import FilterMask, masked_model, masked_state_dict, masked_state_dict_from
from faig_gui.core.registry import default_registry
from reference_nets import BasicSRMSRResNet
from tolerances import forward_atol, gamma


def pair(seed=0):
    reg = default_registry()
    torch.manual_seed(seed)
    base = reg.get("msrresnet").new_state_dict(num_feat=4, num_block=1, scale=2)
    targ = {k: v + 0.05 * torch.randn_like(v) for k, v in base.items()}
    return reg.model_from_state_dict(base), reg.model_from_state_dict(targ)


def literal_mask(target, baseline, indices, mode, lam):
    """Walk the state dict; filter k is (layer, o, i) in out-major order; replace or modulate it."""
    chosen = set(int(k) for k in indices)
    out = {k: v.clone() for k, v in target.items()}
    k = 0
    for name, w in target.items():
        if not (name.endswith("weight") and w.dim() == 4):
            continue
        for o in range(w.shape[0]):
            for i in range(w.shape[1]):
                if k in chosen:
                    r = baseline[name][o, i] if mode == "baseline" else torch.zeros_like(w[o, i])
                    out[name][o, i] = lam * w[o, i] + (1 - lam) * r
                k += 1
    return out


@pytest.mark.parametrize("mode", ["baseline", "zero"])
@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0, 1.5])
def test_masked_weights_equal_a_literal_loop(mode, lam):
    base, targ = pair()
    rng = np.random.default_rng(int(lam * 10))
    total = sum(v.shape[0] * v.shape[1] for k, v in targ.state_dict.items() if v.dim() == 4)
    indices = rng.choice(total, size=total // 5, replace=False)
    mask = FilterMask(indices, mode, lam)
    got = masked_state_dict(targ.state_dict, base.state_dict, mask)
    ref = literal_mask(targ.state_dict, base.state_dict, indices, mode, lam)
    assert list(got) == list(ref)
    for k in ref:
        # λθ + (1 − λ)θ̄ in float32, in either order: ≤ γ_3 · (|λ| + |1 − λ|) · max|θ|
        largest = max(float(targ.state_dict[k].abs().max()), float(base.state_dict[k].abs().max()))
        atol = gamma(3) * (abs(lam) + abs(1 - lam)) * largest
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=atol)
    if lam == 1.0:  # λ = 1 leaves the target as it is
        for k in ref:
            torch.testing.assert_close(got[k], targ.state_dict[k], rtol=0, atol=gamma(3) * float(targ.state_dict[k].abs().max()))


def test_the_loaded_pair_is_never_modified():
    base, targ = pair(1)
    before_b = {k: v.clone() for k, v in base.state_dict.items()}
    before_t = {k: v.clone() for k, v in targ.state_dict.items()}
    before_module = {k: v.clone() for k, v in targ.module.state_dict().items()}
    mask = FilterMask(np.arange(0, 120, 3), "zero", 0.5)
    masked_state_dict(targ.state_dict, base.state_dict, mask)
    new = masked_model(targ.module, targ.state_dict, base.state_dict, mask)
    assert new is not targ.module
    x = torch.rand(1, 3, 6, 6)
    super_resolve(targ.module, x, 2, params=masked_state_dict(targ.state_dict, base.state_dict, mask))
    for now, before in ((base.state_dict, before_b), (targ.state_dict, before_t),
                        (targ.module.state_dict(), before_module)):
        for k in before:
            assert torch.equal(now[k], before[k]), k
    # and the new model really is masked
    assert not torch.equal(new.state_dict()["conv_first.weight"], targ.state_dict["conv_first.weight"])


def test_masking_every_filter_with_the_baseline_gives_baseline_convs_and_target_biases():
    base, targ = pair(2)
    total = sum(v.shape[0] * v.shape[1] for k, v in targ.state_dict.items() if v.dim() == 4)
    sd = masked_state_dict(targ.state_dict, base.state_dict, FilterMask(np.arange(total)))
    for k, v in sd.items():
        expected = base.state_dict[k] if v.dim() == 4 else targ.state_dict[k]
        assert torch.equal(v, expected), k
    # outputs: those of a reference net with the baseline's kernels and the target's biases
    ref = BasicSRMSRResNet(3, 3, 4, 1, 2)
    ref.load_state_dict({k: (base.state_dict[k] if v.dim() == 4 else targ.state_dict[k])
                         for k, v in targ.state_dict.items()})
    x = torch.rand(1, 3, 7, 7, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ref(x)
    got = super_resolve(targ.module, x, 2, params=sd)
    torch.testing.assert_close(got, expected, rtol=0, atol=forward_atol(ref))  # float32 forward, other order
    # with biases differing, that is not the baseline's output
    with torch.no_grad():
        assert not torch.allclose(got, base.module(x), atol=1e-4)


def test_empty_mask_is_the_target():
    base, targ = pair(3)
    sd = masked_state_dict(targ.state_dict, base.state_dict, FilterMask())
    for k in sd:
        assert torch.equal(sd[k], targ.state_dict[k])


def test_mask_validation_and_set_operations():
    with pytest.raises(FaigError):
        FilterMask([1], mode="random")
    for lam in (-0.1, 1.6):
        with pytest.raises(FaigError):
            FilterMask([1], lam=lam)
    base, targ = pair()
    with pytest.raises(FaigError, match="outside"):
        masked_state_dict(targ.state_dict, base.state_dict, FilterMask([10**6]))
    m = FilterMask([5, 1, 5, 3])
    assert m.indices.tolist() == [1, 3, 5] and len(m) == 3 and 3 in m and 4 not in m
    assert m.toggled([3, 4]).indices.tolist() == [1, 4, 5]
    assert m.union([0]).indices.tolist() == [0, 1, 3, 5]
    assert m.difference([1, 5]).indices.tolist() == [3]
    assert FilterMask([2], "zero", 0.5).with_indices([7, 6]).indices.tolist() == [6, 7]


def test_masks_made_from_the_last_ones_equal_the_literal_loop_and_keep_untouched_layers():
    """A sequence of changes as the window makes them (one filter toggled, a layer emptied, a
    top-k that grows, another λ and mode): each result made from the one before equals the literal
    loop, the layers whose masked filters did not change are the earlier tensors themselves, and
    a changed layer is a new tensor (the earlier dict, which a render may still hold, is left as
    it was)."""
    base, targ = pair(3)
    t, b = targ.state_dict, base.state_dict
    index = FilterIndex.from_state_dict(t)
    layers = index.layers
    first, second = layers[1], layers[-2]
    a = np.arange(first.offset, first.offset + 5)
    c = np.arange(second.offset + 2, second.offset + 9)
    steps = [FilterMask(np.concatenate([a, c])),
             FilterMask(np.concatenate([a, c, [second.offset]])),          # one filter toggled on
             FilterMask(np.concatenate([a[1:], c, [second.offset]])),      # one off, in another layer
             FilterMask(c),                                                # a layer emptied
             FilterMask(np.concatenate([c, [layers[0].offset + 1]])),      # a layer never masked before
             FilterMask(np.concatenate([c, [layers[0].offset + 1]]), "baseline", 0.5),   # another λ
             FilterMask(np.concatenate([c, [layers[0].offset + 1]]), "zero", 0.5),       # another mode
             FilterMask()]                                                 # nothing masked
    previous = (FilterMask(), dict(t))
    for mask in steps:
        before = {k: v.clone() for k, v in previous[1].items()}
        got = masked_state_dict_from(previous, t, b, mask, index)
        ref = literal_mask(t, b, mask.indices, mask.mode, mask.lam)
        assert list(got) == list(ref)
        for k in ref:
            largest = max(float(t[k].abs().max()), float(b[k].abs().max()))
            torch.testing.assert_close(got[k], ref[k], rtol=0, atol=gamma(3) * (abs(mask.lam) + abs(1 - mask.lam)) * largest)
        same_setting = previous[0].mode == mask.mode and previous[0].lam == mask.lam
        for layer in layers:
            now = mask.indices[(mask.indices >= layer.offset) & (mask.indices < layer.offset + layer.count)]
            was = previous[0].indices[(previous[0].indices >= layer.offset)
                                      & (previous[0].indices < layer.offset + layer.count)]
            if same_setting and np.array_equal(now, was):
                assert got[layer.name] is previous[1][layer.name], layer.name
            elif len(now):
                assert got[layer.name] is not previous[1][layer.name], layer.name
        for k, v in before.items():   # the earlier weights are left as they were
            assert torch.equal(previous[1][k], v), k
        previous = (mask, got)
    assert all(got[k] is t[k] for k in t)   # nothing masked: the target's own tensors
