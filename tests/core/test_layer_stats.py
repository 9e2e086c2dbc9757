"""Per-layer summaries against literal loops over the filters."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from faig_gui.core.filters import FilterIndex
from faig_gui.core.layer_stats import counts_per_layer, layer_importance, mean_rank_percentile, top_distribution


@pytest.fixture
def index():
    sd = {"a.weight": torch.zeros(4, 3, 3, 3), "a.bias": torch.zeros(4),
          "b.weight": torch.zeros(5, 4, 1, 1), "c.weight": torch.zeros(2, 5, 3, 3)}
    return FilterIndex.from_state_dict(sd)   # 12 + 20 + 10 = 42 filters


def _layer_of(k, index):
    for n, layer in enumerate(index.layers):
        if layer.offset <= k < layer.offset + layer.count:
            return n


def test_top_counts_and_share(index):
    rng = np.random.default_rng(3)
    scores = rng.normal(size=42)
    scores[[5, 30]] = scores[40]   # ties: lower index ranks first
    for proportion in (1, 10, 25, 50, 100):
        n_top = int(42 * proportion / 100)
        top = sorted(range(42), key=lambda k: (-scores[k], k))[:n_top]
        counts = [0, 0, 0]
        for k in top:
            counts[_layer_of(k, index)] += 1
        dist = top_distribution(index, {"blur": scores}, proportion)["blur"]
        assert dist.tolist() == counts
        assert layer_importance(index, scores, proportion, "share") == pytest.approx(
            [counts[0] / 12, counts[1] / 20, counts[2] / 10])
        assert layer_importance(index, scores, proportion, "count").tolist() == counts


def test_mean_rank_percentile(index):
    scores = np.arange(42, dtype=float)[::-1].copy()   # filter 0 is best, 41 worst
    ranks = {k: k for k in range(42)}
    expected = []
    for layer in index.layers:
        mean = sum(ranks[k] for k in range(layer.offset, layer.offset + layer.count)) / layer.count
        expected.append(1 - mean / 41)
    assert mean_rank_percentile(index, scores) == pytest.approx(expected)


def test_counts_per_layer_of_a_mask(index):
    assert counts_per_layer(index, [0, 11, 12, 41, 40]).tolist() == [2, 1, 2]
    assert counts_per_layer(index, []).tolist() == [0, 0, 0]


def test_top_set_is_the_ranking_prefix_with_ties_by_index():
    from faig_gui.core.layer_stats import top_set
    rng = np.random.default_rng(7)
    for _trial in range(30):
        n = int(rng.integers(1, 200))
        scores = rng.integers(0, 6, size=n).astype(float)   # many ties
        for proportion in (0, 0.5, 1, 3, 10, 37, 100):
            count = int(n * proportion / 100)
            by_hand = set(sorted(range(n), key=lambda k: (-scores[k], k))[:count])
            assert set(np.flatnonzero(top_set(scores, proportion)).tolist()) == by_hand
