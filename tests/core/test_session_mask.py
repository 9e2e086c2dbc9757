"""Session masks: hand toggles on top of the "top k %" preset, kept by a new k and by save/open."""
from __future__ import annotations

import numpy as np
import torch

from faig_gui.core.checkpoint import save_checkpoint
from faig_gui.core.registry import default_registry
from faig_gui.core.session import Session


def top_by_hand(scores, percent: float) -> set[int]:
    n = int(len(scores) * percent / 100)
    return set(sorted(range(len(scores)), key=lambda k: (-float(scores[k]), k))[:n])


def session(tmp_path) -> Session:
    arch = default_registry().get("msrresnet")
    torch.manual_seed(0)
    base = arch.new_state_dict(num_feat=4, num_block=1, scale=2)
    save_checkpoint(tmp_path / "b.pth", base)
    save_checkpoint(tmp_path / "t.pth", {k: v + 0.01 for k, v in base.items()})
    s = Session()
    s.load_pair(tmp_path / "b.pth", tmp_path / "t.pth")
    s.set_scores({"blur": np.random.default_rng(3).normal(size=s.index.total)})
    return s


def test_a_new_k_keeps_hand_toggles_and_save_open_keeps_them(tmp_path):
    s = session(tmp_path)
    scores = s.scores["blur"]
    s.set_top_mask("blur", 5.0)
    top5, top10 = top_by_hand(scores, 5), top_by_hand(scores, 10)
    on = min(set(range(len(scores))) - top10)
    off = min(top5)
    s.set_mask(s.mask.toggled([on, off]))
    assert set(s.hand_masked.tolist()) == {on} and set(s.hand_unmasked.tolist()) == {off}
    s.set_top_mask("blur", 10.0)
    assert set(s.mask.indices.tolist()) == (top10 | {on}) - {off}
    s.save(tmp_path / "s.faig")
    again = Session.open(tmp_path / "s.faig")
    assert set(again.hand_masked.tolist()) == {on} and set(again.hand_unmasked.tolist()) == {off}
    again.set_top_mask("blur", 5.0)
    assert set(again.mask.indices.tolist()) == (top5 | {on}) - {off}
    again.clear_mask()
    assert len(again.mask) == 0 and again.mask_settings.proportion == 0
    again.set_top_mask("blur", 5.0)
    assert set(again.mask.indices.tolist()) == top5


def test_top_k_from_the_ranking_made_ahead_equals_the_literal_ranking(tmp_path, monkeypatch):
    """For large nets the session ranks the scores on a background thread; "top k %" is then a
    slice of that ranking: the same filters, in the same order, as a literal sort by (score desc,
    index asc), ties included, and it follows new scores (never a ranking of old ones)."""
    import faig_gui.core.session as session_module
    monkeypatch.setattr(session_module, "RANK_AHEAD_FILTERS", 0)
    s = session(tmp_path)
    n = s.index.total
    scores = np.round(np.random.default_rng(5).normal(size=n), 1)   # many ties
    s.set_scores({"blur": scores})
    for t in s._ranking_threads:
        t.join()
    assert s._rankings["blur"][0] is s.scores["blur"]
    for percent in (0.0, 1.0, 7.5, 33.0, 100.0):
        got = s.top("blur", percent)
        want = sorted(range(n), key=lambda k: (-float(scores[k]), k))[: int(n * percent / 100)]
        assert got.tolist() == want
    s.set_top_mask("blur", 10.0)
    assert set(s.mask.indices.tolist()) == top_by_hand(scores, 10.0)
    fresh = -scores
    s.set_scores({"blur": fresh})   # the old ranking no longer serves, whether or not the new one is ready
    assert set(s.top("blur", 10.0).tolist()) == top_by_hand(fresh, 10.0)
