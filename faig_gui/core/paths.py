"""Quadrature rules on the straight path α ∈ [0, 1] (FAIG's parameter path, IG's input path).

The paper uses the left Riemann sum with N steps: α_s = s/N, weight 1/N, s = 0 … N−1.
Gauss-Legendre nodes are an option beyond the paper: far fewer nodes for a smooth integrand.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faig_gui.core.errors import FaigError

RULES = ("riemann", "gauss-legendre")


@dataclass(frozen=True)
class PathRule:
    alphas: np.ndarray   # (n,) float64 in [0, 1]
    weights: np.ndarray  # (n,) float64, summing to 1

    def __len__(self) -> int:
        return len(self.alphas)


def riemann_left(steps: int) -> PathRule:
    if steps < 1:
        raise FaigError(f"steps must be at least 1, got {steps}")
    return PathRule(np.arange(steps, dtype=np.float64) / steps, np.full(steps, 1.0 / steps))


def gauss_legendre(nodes: int) -> PathRule:
    if nodes < 1:
        raise FaigError(f"nodes must be at least 1, got {nodes}")
    x, w = np.polynomial.legendre.leggauss(nodes)
    return PathRule((x + 1.0) / 2.0, w / 2.0)


def path_rule(rule: str, steps: int) -> PathRule:
    if rule == "riemann":
        return riemann_left(steps)
    if rule == "gauss-legendre":
        return gauss_legendre(steps)
    raise FaigError(f"unknown path rule '{rule}'; use one of {', '.join(RULES)}")
