"""Overlap between the functions' filter sets: which filters rank high for two degradations.

With N degradations each has its top ``proportion`` of filters by score (the ones masking would
replace). For every pair (d, e) this counts the filters in both sets, overall and per layer, and
states what chance alone would give (k_d · k_e / n filters in both, for two random sets of those
sizes), so a user sees whether two functions share their filters or live apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any
from collections.abc import Mapping

import numpy as np

from faig_gui.core.filters import FilterIndex, top_indices


@dataclass
class Overlap:
    proportion: float                           # percent
    names: list[str]
    sizes: dict[str, int]                       # filters in each degradation's top set
    pairs: dict[tuple[str, str], int]           # filters in both sets, for d before e in names
    layers: dict[tuple[str, str], dict[str, int]]  # the same per layer (layers with any shared filter)
    total: int                                  # filters in the network

    def expected(self, d: str, e: str) -> float:
        """Filters two random sets of these sizes share on average."""
        return self.sizes[d] * self.sizes[e] / self.total if self.total else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"proportion": self.proportion, "filter_count": self.total, "sizes": self.sizes,
                "pairs": [{"a": d, "b": e, "shared": n, "expected_by_chance": round(self.expected(d, e), 3),
                           "layers": self.layers[(d, e)]} for (d, e), n in self.pairs.items()]}

    def markdown(self) -> str:
        lines = [f"Overlap of the top {self.proportion:g} % filters ({', '.join(f'{n}: {self.sizes[n]}' for n in self.names)}"
                 f" of {self.total})", "", "| pair | shared | by chance | layers (shared filters) |", "|---|---|---|---|"]
        for (d, e), n in self.pairs.items():
            per = ", ".join(f"{k} {v}" for k, v in self.layers[(d, e)].items()) or "-"
            lines.append(f"| {d} & {e} | {n} | {self.expected(d, e):.1f} | {per} |")
        return "\n".join(lines) + "\n"


def filter_overlap(scores: Mapping[str, np.ndarray], index: FilterIndex, proportion: float = 1.0) -> Overlap:
    """Pairwise overlap of each degradation's top ``proportion`` % filters (``scores`` in the
    order the degradations are listed)."""
    names = list(scores)
    tops = {d: top_indices(np.asarray(scores[d]), proportion / 100.0) for d in names}
    sizes = {d: int(len(t)) for d, t in tops.items()}
    pairs: dict[tuple[str, str], int] = {}
    layers: dict[tuple[str, str], dict[str, int]] = {}
    for d, e in combinations(names, 2):
        shared = np.intersect1d(tops[d], tops[e])
        pairs[(d, e)] = int(len(shared))
        where = index.layer_of(shared)
        counts: dict[str, int] = {}
        for n in where.tolist():
            name = index.layers[n].name
            counts[name] = counts.get(name, 0) + 1
        layers[(d, e)] = {layer.name: counts[layer.name] for layer in index.layers if layer.name in counts}
    return Overlap(float(proportion), names, sizes, pairs, layers, index.total)
