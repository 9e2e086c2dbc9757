"""Numeric tolerances derived from float32 arithmetic, shared by the tests.

CPUs differ in the order in which they accumulate a sum: oneDNN picks other convolution kernels
on an AVX2-only AMD Zen than on an Intel Xeon with AVX-512 and AMX, and a float32 result moves
in its 6th digit between them. A test that compares a float32 computation with an independent
one must therefore allow the rounding error of the arithmetic it checks, and no more; these
helpers state that error so that each test can say which one it allows.

- ``gamma(n)``: Higham's worst-case bound (*Accuracy and Stability of Numerical Algorithms*,
  2nd ed., Lemma 3.1 and eq. 3.5): a float32 sum or dot product of ``n`` terms, in ANY order,
  differs from the exact value by at most γ_n = n·u / (1 − n·u) times the sum of the terms'
  magnitudes, u = 2⁻²⁴ the unit roundoff.
- ``walk(n)``: the size the same error has in practice. Independent roundings add like a random
  walk (Higham §2.8), so the error grows as √n·u; ``walk`` allows ``safety`` (default 8) times
  that. Used where the worst case is so loose that a wrong answer would pass.
- A network's output is the end of ``depth`` chained dot products of ``fan_in`` terms each:
  ``terms(depth, fan_in)`` is the count of roundings an output value carries.

Where the reference is computed in float64 its own error (u₆₄ = 2⁻⁵³) is negligible, and the
tolerance is the float32 side's alone.
"""
from __future__ import annotations

import math

import numpy as np

U32 = 2.0 ** -24   # float32 unit roundoff
U64 = 2.0 ** -53   # float64 unit roundoff


def gamma(n: int, u: float = U32) -> float:
    """Worst-case relative error of an ``n``-term sum in any order (relative to Σ|terms|)."""
    if n * u >= 1:
        raise ValueError(f"{n} terms: the bound is void")
    return n * u / (1 - n * u)


def walk(n: int, safety: float = 8.0, u: float = U32) -> float:
    """Statistical size of the same error: ``safety`` · √n · u (relative to Σ|terms|)."""
    return safety * math.sqrt(n) * u


def terms(depth: int, fan_in: int) -> int:
    """Roundings carried by one output of ``depth`` chained dot products of ``fan_in`` terms."""
    return depth * fan_in


def conv_chain(module) -> tuple[int, int]:
    """(depth, largest fan-in) of a module's convolutions: its number of 4-D weights, and the
    largest in·kh·kw (+1 for the bias) among them."""
    depth, fan_in = 0, 0
    for name, p in module.state_dict().items():
        if name.endswith("weight") and p.ndim == 4:
            depth += 1
            fan_in = max(fan_in, int(np.prod(p.shape[1:])) + 1)
    return depth, fan_in


def network_terms(module) -> int:
    depth, fan_in = conv_chain(module)
    return terms(depth, fan_in)


#: A ReLU/LeakyReLU input that lies within rounding of zero at some path step can take the other
#: side of the kink when the same sums run in another order (a vmapped chunk of steps, another
#: CPU's kernels): every gradient downstream of that unit then moves by its share. Measured on an
#: Intel Xeon with AMX at the demo pair's size: up to 3e-4 of the largest score (docs/method.md),
#: with identical top-1 % sets. The allowance below is three times that.
KINK_SHARE_OF_MAX = 1e-3


def assert_path_sum_close(ours, ref, n_terms: int, *, scale: float | None = None,
                          flips_allowed: float = 0.05, top: float = 0.01) -> None:
    """A float32 path sum (FAIG, IG) against a float64 reference.

    Every filter agrees to γ_n of its value, with a floor of γ_n times the largest value (a
    kernel's sum of |products| is a sum of terms no larger than that), except a few filters
    downstream of an activation that sat within rounding of its kink: at most ``flips_allowed``
    of them, each within ``KINK_SHARE_OF_MAX`` of the largest value. The top ``top`` share of
    the ranking is the same set either way. ``scale``: the size the rounding is relative to when
    it is not the largest value (scores that are differences of attributions: the attributions')."""
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape
    largest = np.abs(ref).max() if scale is None else scale
    assert largest > 0
    tol = gamma(n_terms)
    err = np.abs(ours - ref)
    off = err > tol * (np.abs(ref) + largest)
    assert off.mean() <= flips_allowed, (
        f"{off.sum()} of {off.size} filters beyond float32 rounding (γ_{n_terms} = {tol:.2e}); "
        f"worst {err.max() / largest:.2e} of the largest")
    assert np.all(err <= KINK_SHARE_OF_MAX * largest), f"worst {err.max() / largest:.2e} of the largest"
    k = max(1, int(round(top * ours.size)))
    assert set(np.argsort(-ours, kind="stable")[:k]) == set(np.argsort(-ref, kind="stable")[:k])


def path_terms(module, hr_pixels: int) -> int:
    """Roundings in one path-step gradient of a weight: the forward chain, the backward chain,
    then the sum over the output positions (at most the HR image's pixel count), and a sum over
    ≤ 100 path steps."""
    return 2 * network_terms(module) + hr_pixels + 100


def forward_atol(module, activation_scale: float = 1.0) -> float:
    """How far one float32 forward's outputs may move with the order of its sums: γ_n of the
    activations' size (O(1) for the SR nets here, whose inputs and outputs lie in [0, 1])."""
    return gamma(network_terms(module)) * activation_scale


def effect_atol(gradient_map_differences, delta_y: float) -> float:
    """What outputs off by ``delta_y`` can move the paper's effect 1000 · mean((g_a − g_b)²) by.

    The luma's weights sum to 1 and a central difference subtracts two values, so a gradient
    magnitude is off by ≤ 2√2 · δ_y (+ its own rounding); both maps carry it, and
    (Δg + ε)² − Δg² ≤ 2|Δg|ε + ε² with ε = 2 (2√2 δ_y + 2u)."""
    eps = 2 * (2 * math.sqrt(2) * delta_y + 2 * U32)
    d = np.abs(np.asarray(gradient_map_differences, dtype=np.float64))
    return 1000 * float(np.mean(2 * d * eps + eps * eps))
