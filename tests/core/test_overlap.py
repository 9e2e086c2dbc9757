"""Overlap of the degradations' top filter sets against a literal count."""
from __future__ import annotations

import numpy as np
import torch

from faig_gui.core.filters import FilterIndex
from faig_gui.core.overlap import filter_overlap


def _state_dict():
    # three convs of 4x3, 5x4 and 3x5 filters: 12 + 20 + 15 = 47 filters
    return {"a.weight": torch.zeros(4, 3, 3, 3), "a.bias": torch.zeros(4), "b.weight": torch.zeros(5, 4, 3, 3),
            "c.weight": torch.zeros(3, 5, 1, 1)}


def _literal(scores, layer_sizes, k):
    """Top k by a slow sort (ties to the lower index), then the layer of each shared filter."""
    tops = {d: set(sorted(range(len(s)), key=lambda i: (-s[i], i))[:k]) for d, s in scores.items()}
    bounds, start = [], 0
    for name, n in layer_sizes:
        bounds.append((name, start, start + n))
        start += n
    out = {}
    names = list(scores)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            shared = tops[names[i]] & tops[names[j]]
            per = {}
            for name, lo, hi in bounds:
                c = sum(1 for f in shared if lo <= f < hi)
                if c:
                    per[name] = c
            out[(names[i], names[j])] = (len(shared), per)
    return out


def test_pairs_and_layers_match_a_literal_count():
    index = FilterIndex.from_state_dict(_state_dict())
    assert index.total == 47
    rng = np.random.default_rng(0)
    base = rng.standard_normal(47)
    # jpeg shares most of blur's top filters, noise few; a tie checks the tie rule
    scores = {"blur": base, "noise": rng.standard_normal(47), "jpeg": base + 0.3 * rng.standard_normal(47)}
    scores["noise"][5] = scores["noise"][6]
    ov = filter_overlap(scores, index, proportion=20.0)   # int(47 * 0.2) = 9 filters each
    assert ov.sizes == {"blur": 9, "noise": 9, "jpeg": 9}
    want = _literal(scores, [("a.weight", 12), ("b.weight", 20), ("c.weight", 15)], 9)
    assert list(ov.pairs) == [("blur", "noise"), ("blur", "jpeg"), ("noise", "jpeg")]
    for pair, (n, per) in want.items():
        assert ov.pairs[pair] == n and ov.layers[pair] == per, pair
    assert ov.pairs[("blur", "jpeg")] > ov.expected("blur", "jpeg")  # 9 * 9 / 47 = 1.7 by chance
    assert abs(ov.expected("blur", "noise") - 81 / 47) < 1e-12
    js = ov.to_json()
    assert [(p["a"], p["b"], p["shared"]) for p in js["pairs"]] == [(a, b, n) for (a, b), (n, _) in want.items()]
    md = ov.markdown()
    assert "| blur & jpeg |" in md and "of 47" in md


def test_identical_rankings_share_everything():
    index = FilterIndex.from_state_dict(_state_dict())
    s = np.arange(47, dtype=float)
    ov = filter_overlap({"x": s, "y": s.copy()}, index, proportion=50.0)
    assert ov.pairs[("x", "y")] == 23
    # the top 23 of 0..46 are 24..46: 15 in c (32..46), 8 in b (24..31)
    assert ov.layers[("x", "y")] == {"b.weight": 8, "c.weight": 15}
