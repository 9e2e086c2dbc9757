"""Speculative prefetch of the next mask state: guess it from the last change, keep a few results.

Stepping the top-k or the λ slider changes early layers, so each render is one full forward pass
(at 128x128 LR on two cores about as fast as they go). What can still be saved is the wait: a
researcher who steps a slider tends to go on in the same direction by the same amount. So after
each change from state A to state B the image view computes state B + (B − A) in the background
(only while nothing real waits, stopped between nodes by the next real request) and keeps the
result here, keyed by the full render state; when that state is asked for, it is shown at once.

Momentum only: the prediction knows nothing of any benchmark's sequence, and a wrong one costs a
real request one node of the incremental forward.

Stops (View ▸ Fill the top-k slider's stops when idle): once the guess is kept, after a quarter
second without a change (image_view.FILL_AFTER_S), and while nothing else runs, the view goes on
with the top-k values a researcher reaches in one gesture from where the slider is
(:func:`slider_stops`: one arrow-key step either way, then every whole percent: the page steps
and the 1/3/5/10 % marks), nearest first, until they are all kept (as many as the store holds).
Scrubbing between those stops then shows each at once; any real request stops the fill between
two nodes, and it starts again from the new state after the next quiet quarter second.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

import numpy as np

from faig_gui.app.masking_dock import K_MAX, K_STEPS, LAM_STEPS
from faig_gui.core.masking import LAMBDA_RANGE, FilterMask

#: QSettings keys of the preferences (View ▸ Prefetch the next mask step; ▸ Fill the top-k
#: slider's stops when idle)
PREFETCH_KEY = "render/prefetch"
FILL_STOPS_KEY = "render/fill_stops"


@dataclass(frozen=True)
class MaskState:
    """The masking controls behind one render request: whose top k %, which k, the mask made."""

    degradation: str
    proportion: float        # percent, as the top-k slider gives it
    mask: FilterMask


def predict_next(before: MaskState, after: MaskState,
                 top: Callable[[str, float], np.ndarray]) -> FilterMask | None:
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
        nxt = _on_grid(2 * after.proportion - before.proportion, (0.0, K_MAX), K_STEPS)
        if nxt == after.proportion:
            return None
        mask = FilterMask(top(after.degradation, nxt), b.mode, b.lam)   # (indices sorted)
        return None if np.array_equal(mask.indices, b.indices) else mask
    if a.lam != b.lam and np.array_equal(a.indices, b.indices):
        lam = _on_grid(2 * b.lam - a.lam, LAMBDA_RANGE, LAM_STEPS)
        if lam == b.lam:
            return None
        return FilterMask(b.indices, b.mode, lam)
    return None


def slider_stops(proportion: float) -> list[float]:
    """The top-k values (percent, as the slider gives them) one gesture away from ``proportion``,
    nearest first: one arrow-key step down and up, then every whole percent from 0 to K_MAX % (the
    page steps and the marks); ``proportion`` itself is not among them."""
    top = int(round(K_MAX * K_STEPS))
    here = int(round(min(max(proportion, 0.0), K_MAX) * K_STEPS))
    whole = sorted(range(0, top + 1, K_STEPS), key=lambda u: (abs(u - here), u))
    stops: list[int] = []
    for u in (here - 1, here + 1, *whole):
        if 0 <= u <= top and u != here and u not in stops:
            stops.append(u)
    return [u / K_STEPS for u in stops]


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
