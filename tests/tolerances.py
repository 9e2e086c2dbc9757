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
