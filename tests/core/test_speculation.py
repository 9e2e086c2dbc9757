"""The speculation policy on a hand-made slider grid and ranking: which masks are guessed, in
which order, and how many."""
from __future__ import annotations

import numpy as np

from faig_gui.core.masking import FilterMask
from faig_gui.core.speculation import MaskState, SliderGrid, StopMasks, guesses

GRID = SliderGrid(k_max=3.0, k_steps=2, lam_steps=10)   # top-k 0, 0.5, ..., 3 %
SCORES = np.arange(1000, dtype=np.float64)[::-1]        # filter 0 ranks first


def top(degradation: str, percent: float) -> np.ndarray:
    return np.arange(int(1000 * percent / 100))          # the best filters of SCORES, by hand


def state(percent: float, lam: float = 0.0) -> MaskState:
    return MaskState("blur", percent, FilterMask(top("blur", percent), "baseline", lam))


def test_the_next_step_comes_first_then_the_stops_nearest_first():
    states = [state(1.0), state(1.5)]
    got = list(guesses(states, states[-1].mask, 16, True, top, {"blur": SCORES}, GRID, StopMasks()))
    # one more step of +0.5 %, then one arrow step down and up (1.0, 2.0), then the whole
    # percents by distance (1.0 and 2.0 again: not repeated; 0 % masks nothing: skipped; 3 %)
    assert [len(m) for m, _ in got] == [20, 10, 20, 30]
    assert [is_stop for _, is_stop in got] == [False, True, True, True]


def test_room_and_the_fill_switch_bound_the_guesses():
    states = [state(1.0), state(1.5)]
    assert len(list(guesses(states, states[-1].mask, 2, True, top, {"blur": SCORES}, GRID, StopMasks()))) == 2
    only = list(guesses(states, states[-1].mask, 16, False, top, {"blur": SCORES}, GRID, StopMasks()))
    assert [(len(m), s) for m, s in only] == [(20, False)]
    # λ = 1 leaves the target as it is: no stops are worth a forward
    assert list(guesses([state(1.5, 1.0)], FilterMask(top("blur", 1.5)), 16, True, top, {"blur": SCORES}, GRID,
                        StopMasks())) == []


def test_stop_masks_are_made_once_per_ranking():
    made = []

    def counting_top(d, p):
        made.append(p)
        return top(d, p)
    cache = StopMasks()
    s = state(1.0)
    a = cache.get(s, 2.0, SCORES, counting_top)
    assert cache.get(s, 2.0, SCORES, counting_top) is a and made == [2.0]
    cache.get(s, 2.0, SCORES.copy(), counting_top)         # a new ranking: made again
    assert made == [2.0, 2.0]
