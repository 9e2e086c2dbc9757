"""AdaptiveThreads: picks the thread count that measured fastest, and follows a change of load."""
from __future__ import annotations

import pytest

from faig_gui.core.threads import AdaptiveThreads, candidate_counts


def test_candidate_counts():
    assert candidate_counts(1) == [1]
    assert candidate_counts(2) == [1, 2]
    assert candidate_counts(16) == [1, 8, 16]
    assert candidate_counts(0) == [1]


def drive(tuner, cost, calls, limit=2):
    """Run ``calls`` jobs whose seconds per unit of work are cost(count); return the counts used."""
    used = []
    for _ in range(calls):
        n = tuner.choose(limit)
        used.append(n)
        tuner.record(n, cost(n) * 1000.0, work=1000.0)
    return used


def test_tries_every_count_then_keeps_the_fastest_and_explores_now_and_then():
    t = AdaptiveThreads(explore_every=6)
    close = {1: 0.20, 2: 0.16}         # the fastest is ahead by less than 1.3x: re-measure every 6
    used = drive(t, close.get, 28)
    assert used[:4] == [2, 2, 1, 1]    # every count is measured (after a warm-up run), the largest first
    assert used[4:].count(1) == 4 and used[4:].count(2) == 20
    assert t.rate == pytest.approx(close)
    t = AdaptiveThreads(explore_every=6)
    idle = {1: 0.30, 2: 0.16}          # two idle cores nearly halve the time: re-measure every 18
    used = drive(t, idle.get, 40)
    assert used[4:].count(1) == 2 and used[4:].count(2) == 34
    t = AdaptiveThreads(explore_every=6)
    window = {1: 0.14, 2: 0.10}        # 1.4x, as in the window (its UI work on one of the cores)
    used = drive(t, window.get, 40)
    assert used[4:].count(1) == 2 and used[4:].count(2) == 34


def test_follows_a_change_of_load():
    t = AdaptiveThreads(explore_every=4)
    drive(t, {1: 0.30, 2: 0.16}.get, 12)
    busy = {1: 0.34, 2: 0.69}          # cores shared with other work: two threads wait on each other
    used = drive(t, busy.get, 24)
    # within a few exploration rounds it settles on one thread
    assert used[-8:].count(1) >= 6
    assert t.rate[2] > t.rate[1]


def test_the_limit_bounds_the_choice():
    t = AdaptiveThreads()
    drive(t, {1: 0.3, 2: 0.1}.get, 6, limit=2)
    assert all(n == 1 for n in drive(t, {1: 0.3, 2: 0.1}.get, 5, limit=1))


def test_bad_measurements_are_ignored():
    t = AdaptiveThreads()
    t.record(2, 0.0)
    t.record(2, -1.0)
    t.record(2, 1.0, work=0)
    assert t.rate == {}
    with pytest.raises(ValueError):
        AdaptiveThreads(explore_every=1)


def test_apply_sets_this_threads_torch_count():
    import torch
    before = torch.get_num_threads()
    try:
        t = AdaptiveThreads()
        assert t.apply(2) == 2 and torch.get_num_threads() == 2    # untried: the largest first
        t.record(2, 5.0)                                            # (its warm-up)
        assert t.apply(2) == 2
        t.record(2, 1.0)
        assert t.apply(2) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_best_is_the_fastest_measured_and_never_explores():
    t = AdaptiveThreads(explore_every=2)
    assert t.best(2) == 2 and t.best(1) == 1            # nothing measured: the largest
    t.record(2, 0.01)                                   # warm-ups: not kept
    t.record(1, 9.0)
    assert t.rate == {} and t.best(2) == 2
    t.record(2, 0.30)
    assert t.best(2) == 2                               # the only one measured
    t.record(1, 0.25)
    assert [t.best(2) for _ in range(10)] == [1] * 10    # no exploring, however often asked
    assert t.best(16) == 1                              # 8 and 16 are not measured
    assert drive(t, {1: 0.25, 2: 0.30}.get, 4) == [1, 2, 1, 2]   # choose() explores every 2nd, as before


def test_the_first_measurement_of_each_count_is_a_warm_up():
    t = AdaptiveThreads(explore_every=6)
    # the first job of all (a cold start) is slow on two threads; after that two are faster
    seconds = iter([0.90, 0.16, 0.30, 0.30] + [0.16] * 20)
    used = []
    for _ in range(24):
        n = t.choose(2)
        used.append(n)
        t.record(n, next(seconds) if n == 2 or len(used) <= 4 else 0.30)
    assert used[:4] == [2, 2, 1, 1]
    assert t.rate[2] == pytest.approx(0.16) and t.rate[1] == pytest.approx(0.30)
    assert used[4:].count(2) >= 19    # not one thread for a stretch because of the cold start


def test_one_slow_job_does_not_change_the_choice_two_do():
    t = AdaptiveThreads(explore_every=6)
    drive(t, {1: 0.30, 2: 0.16}.get, 8)
    assert t.choose(2) == 2
    t.record(2, 0.90)                  # one job slowed by something passing
    assert t.rate[2] == pytest.approx(0.16)
    assert [t.choose(2) for _ in range(3)] == [2, 2, 2]
    t.record(2, 0.90)                  # a second in a row: two threads are slow now
    assert t.rate[2] == pytest.approx(0.90)
    assert t.choose(2) == 1
    # the median of the last three: by hand
    t = AdaptiveThreads(window=3)
    for v in (9.0, 0.5, 0.1, 0.3, 0.2):   # (the first: the warm-up)
        t.record(1, v)
    assert t.rate[1] == pytest.approx(sorted([0.1, 0.3, 0.2])[1])
    with pytest.raises(ValueError):
        AdaptiveThreads(window=0)
