"""The centre view's speculative prefetch as the window sets it up: the masking dock's slider
grid for the policy in core/speculation.py (which explains it), and the View menu's preference
keys."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from faig_gui.app.masking_dock import K_MAX, K_STEPS, LAM_STEPS
from faig_gui.core.masking import FilterMask
from faig_gui.core.speculation import MaskState, PrefetchStore, SliderGrid
from faig_gui.core import speculation

__all__ = ["FILL_STOPS_KEY", "GRID", "MaskState", "PREFETCH_KEY", "PrefetchStore", "predict_next", "slider_stops"]

#: QSettings keys of the preferences (View ▸ Prefetch the next mask step; ▸ Fill the top-k
#: slider's stops when idle)
PREFETCH_KEY = "render/prefetch"
FILL_STOPS_KEY = "render/fill_stops"
#: the values the masking dock's sliders give
GRID = SliderGrid(K_MAX, K_STEPS, LAM_STEPS)


def predict_next(before: MaskState, after: MaskState, top: Callable[[str, float], np.ndarray]) -> FilterMask | None:
    """:func:`core.speculation.predict_next` on the masking dock's sliders."""
    return speculation.predict_next(before, after, top, GRID)


def slider_stops(proportion: float) -> list[float]:
    """:func:`core.speculation.slider_stops` of the masking dock's top-k slider."""
    return speculation.slider_stops(proportion, GRID)
