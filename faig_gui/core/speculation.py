"""The speculation policy of the centre view: which mask states to render before they are
asked for, and a small store of what was rendered ahead. Qt-free; the view (app/image_view.py)
runs the renders (core.render.speculative_render) and keeps the results here.

Stepping the top-k or the λ slider changes early layers, so each render is one full forward pass.
What can still be saved is the wait: a researcher who steps a slider tends to go on in the same
direction by the same amount. So after each change from state A to state B the view computes
state B + (B − A) in the background (only while nothing real waits, stopped between nodes by the
next real request) and keeps the result; when that state is asked for, it is shown at once.
Momentum only: the prediction knows nothing of any benchmark's sequence, and a wrong one costs a
real request one node of the incremental forward.

Stops: once the guess is kept, after a pause, and while nothing else runs, the view goes on with
the top-k values a researcher reaches in one gesture from where the slider is
(:func:`slider_stops`: one arrow-key step either way, then every whole percent: the page steps
and the 1/3/5/10 % marks), nearest first, until they are all kept (as many as the store holds).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from faig_gui.core.masking import LAMBDA_RANGE, FilterMask


@dataclass(frozen=True)
class SliderGrid:
    """The values the masking sliders can give: top-k in steps of 1/k_steps % up to k_max %,
    λ in steps of 1/lam_steps (a guess on the grid is the very mask the slider makes)."""

    k_max: float
    k_steps: int
    lam_steps: int


@dataclass(frozen=True)
class MaskState:
    """The masking controls behind one render request: whose top k %, which k, the mask made."""

    degradation: str
    proportion: float        # percent, as the top-k slider gives it
    mask: FilterMask


def predict_next(before: MaskState, after: MaskState, top: Callable[[str, float], np.ndarray],
                 grid: SliderGrid) -> FilterMask | None:
    """The mask one more step of the change before -> after would give, or None.

    A change of the top-k proportion (same degradation, mode and λ) continues by the same amount
    of percent; a change of λ alone (same filters, same mode) by the same amount of λ. Both are
    clamped to their slider's range and put on the slider's grid (the values it can give), so a
    right guess is the very mask the slider makes. ``top(degradation, percent)`` gives the filters
    the top-k slider masks. None when the next step would change nothing or the change was of
    another kind (clicks, mode, degradation)."""
    a, b = before.mask, after.mask
    if a.mode != b.mode:
        return None
    if before.degradation == after.degradation and before.proportion != after.proportion and a.lam == b.lam:
        nxt = _on_grid(2 * after.proportion - before.proportion, (0.0, grid.k_max), grid.k_steps)
        if nxt == after.proportion:
            return None
        mask = FilterMask(top(after.degradation, nxt), b.mode, b.lam)   # (indices sorted)
        return None if np.array_equal(mask.indices, b.indices) else mask
    if a.lam != b.lam and np.array_equal(a.indices, b.indices):
        lam = _on_grid(2 * b.lam - a.lam, LAMBDA_RANGE, grid.lam_steps)
        if lam == b.lam:
            return None
        return FilterMask(b.indices, b.mode, lam)
    return None


def slider_stops(proportion: float, grid: SliderGrid) -> list[float]:
    """The top-k values (percent, as the slider gives them) one gesture away from ``proportion``,
    nearest first: one arrow-key step down and up, then every whole percent from 0 to k_max % (the
    page steps and the marks); ``proportion`` itself is not among them."""
    top = int(round(grid.k_max * grid.k_steps))
    here = int(round(min(max(proportion, 0.0), grid.k_max) * grid.k_steps))
    whole = sorted(range(0, top + 1, grid.k_steps), key=lambda u: (abs(u - here), u))
    stops: list[int] = []
    for u in (here - 1, here + 1, *whole):
        if 0 <= u <= top and u != here and u not in stops:
            stops.append(u)
    return [u / grid.k_steps for u in stops]


def _on_grid(value: float, bounds: tuple[float, float], steps: int) -> float:
    """The slider value nearest ``value`` within bounds, as the slider reports it (int / steps)."""
    units = int(round(min(max(value, bounds[0]), bounds[1]) * steps))
    return units / steps


K = TypeVar("K")
V = TypeVar("V")


class PrefetchStore(Generic[K, V]):
    """At most ``size`` results, newest kept; found by a predicate over their keys (render
    states hold arrays, so they are compared, not hashed)."""

    def __init__(self, size: int = 2):
        self.size = size
        self._items: list[tuple[K, V]] = []

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[K]:
        return [k for k, _ in self._items]

    def put(self, key: K, value: V, same: Callable[[K, K], bool]) -> None:
        self._items = [(k, v) for k, v in self._items if not same(k, key)]
        self._items.append((key, value))
        while len(self._items) > self.size:
            self._items.pop(0)

    def find(self, matches: Callable[[K], bool]) -> V | None:
        for k, v in reversed(self._items):
            if matches(k):
                return v
        return None

    def clear(self) -> None:
        self._items.clear()


class StopMasks:
    """The masks of the top-k slider's stops, made once per ranking (a dozen masks made at every
    change would cost UI-thread time)."""

    def __init__(self, keep: int = 64):
        self._made: dict[tuple, tuple[np.ndarray | None, FilterMask]] = {}
        self.keep = keep

    def get(self, state: MaskState, percent: float, ranking: np.ndarray | None,
            top: Callable[[str, float], np.ndarray]) -> FilterMask:
        key = (state.degradation, percent, state.mask.mode, state.mask.lam)
        made = self._made.get(key)
        if made is None or made[0] is not ranking:
            if len(self._made) > self.keep:
                self._made.clear()
            made = self._made[key] = (ranking, FilterMask(top(state.degradation, percent), state.mask.mode,
                                                          state.mask.lam))
        return made[1]


def guesses(states: list[MaskState], on_screen: FilterMask, room: int, fill_stops: bool,
            top: Callable[[str, float], np.ndarray], rankings: Mapping[str, np.ndarray], grid: SliderGrid,
            stop_masks: StopMasks) -> Iterator[tuple[FilterMask, bool]]:
    """(mask, is a stop) worth having ready after the last of ``states`` (the last two mask
    states asked for, oldest first), best first: one more step of the last change
    (:func:`predict_next`), then, with ``fill_stops``, the top-k slider's stops
    (:func:`slider_stops`) that need a forward of their own; ``room`` of them at most."""
    if len(states) >= 2:
        mask = predict_next(states[-2], states[-1], top, grid)
        if mask is not None:
            room -= 1
            yield mask, False
    now = states[-1]
    if not fill_stops or now.mask.lam == 1.0:
        return
    ranking = rankings.get(now.degradation)
    for percent in slider_stops(now.proportion, grid):
        if room <= 0:
            return
        mask = stop_masks.get(now, percent, ranking, top)
        if len(mask) == 0 or np.array_equal(mask.indices, on_screen.indices):
            continue   # (shown without a forward, or what is on screen)
        room -= 1
        yield mask, True
