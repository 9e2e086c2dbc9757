"""How many torch threads a repeated interactive job should use, found by measuring.

On an idle machine two threads halve a forward pass; on cores shared with other work they can
double it instead (OpenMP threads wait for each other whenever one of them loses its core;
docs/performance.md, "Figures behind the code").
Neither count is right everywhere, and the load changes while the window is open. So a live job
(the masked render, a prediction) asks :class:`AdaptiveThreads` for a count, runs, and reports
how long it took per unit of work; the tuner keeps the median of the last few measurements per
count, uses the fastest, and now and then tries another so that it follows the load. (A median,
not a moving average: one render slowed by something passing, a burst of UI work or another
process, made an average of two threads look slower than one, and the window then rendered
on one core, slower, for the next several steps.)

Thread-safety: one tuner per job slot; it is used from that slot's thread only.
"""
from __future__ import annotations

import statistics
from collections import deque

import torch


RARE_LEAD = 1.3   # the fastest count this far ahead: the others are re-measured three times as rarely


def candidate_counts(limit: int) -> list[int]:
    """1, half and all of ``limit`` threads (without repeats), fewest first."""
    limit = max(1, int(limit))
    return sorted({1, max(1, limit // 2), limit})


class AdaptiveThreads:
    """Per thread count, the median of the last ``window`` measurements of seconds per unit of
    work (a single outlier does not change the choice; two in a row, a real change of load, do).
    Each count's first measurement is a warm-up and is not kept: it carries one-time costs (the
    thread pool starting, memory touched for the first time, oneDNN building its kernels: a
    first render several times slower than the next) that made the other count look faster for
    many renders after.

    ``choose(limit)``: a count among :func:`candidate_counts` (limit); untried counts first (the
    largest first), then the fastest, except that after ``explore_every`` calls it re-measures
    the count measured longest ago (three times as rarely when the fastest is 1.3x ahead or more:
    each exploration costs a slow job, and a fastest count that slows down shows it in its own
    measurements at once). ``record(count, seconds, work)`` adds a measurement.
    """

    def __init__(self, explore_every: int = 6, window: int = 3):
        if explore_every < 2:
            raise ValueError("explore_every must be >= 2")
        if window < 1:
            raise ValueError("window must be >= 1")
        self.explore_every = explore_every
        self.rate: dict[int, float] = {}       # count -> seconds per unit of work (median of the recent)
        self._recent: dict[int, deque] = {}    # count -> its last ``window`` measurements
        self._window = window
        self._warmed: set[int] = set()         # counts whose warm-up measurement has been had
        self._last_used: dict[int, int] = {}   # count -> call number of its last measurement
        self._calls = 0
        self._since_exploring = 0

    def choose(self, limit: int) -> int:
        self._calls += 1
        counts = candidate_counts(limit)
        untried = [n for n in counts if n not in self.rate]
        if untried:
            return untried[-1]
        best = min(counts, key=lambda n: (self.rate[n], n))
        others = [n for n in counts if n != best]
        if not others:
            return best
        self._since_exploring += 1
        lead = min(self.rate[n] for n in others) / max(self.rate[best], 1e-12)
        # (in the window two threads lead one by less than in a bare forward: the UI thread's
        # work falls on one of them; with a higher RARE_LEAD one thread was re-measured, and
        # rendered slower, every sixth render; docs/performance.md, "Figures behind the code")
        every = self.explore_every * (3 if lead >= RARE_LEAD else 1)
        if self._since_exploring >= every:
            self._since_exploring = 0
            return min(others, key=lambda n: self._last_used.get(n, -1))
        return best

    def best(self, limit: int) -> int:
        """The fastest count measured so far (the largest when none is): for work that should not
        pay for exploring, nor be measured (a speculative render shares the cores with the UI)."""
        counts = candidate_counts(limit)
        measured = [n for n in counts if n in self.rate]
        return min(measured, key=lambda n: (self.rate[n], n)) if measured else counts[-1]

    def apply(self, limit: int, explore: bool = True) -> int:
        """:meth:`choose` (or :meth:`best` without ``explore``), then set it as the calling
        thread's torch thread count (per OS thread)."""
        count = self.choose(limit) if explore else self.best(limit)
        torch.set_num_threads(count)
        return count

    def record(self, count: int, seconds: float, work: float = 1.0) -> None:
        if seconds <= 0 or work <= 0:
            return
        if count not in self._warmed:
            self._warmed.add(count)
            return
        recent = self._recent.setdefault(count, deque(maxlen=self._window))
        recent.append(seconds / work)
        self.rate[count] = statistics.median(recent)
        self._last_used[count] = self._calls
