"""faig-gui: a diagnostic tool for blind super-resolution networks (FAIG, NeurIPS 2021).

``from faig_gui import FAIG`` gives the captum-style attribution API (faig_gui/core/api.py,
docs/api.md). It is imported on first use, so that ``import faig_gui`` (the CLI's start) stays
free of torch."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["FAIG", "FAIGAttributions", "ConvergenceDelta", "__version__"]

if TYPE_CHECKING:
    from faig_gui.core.api import FAIG, ConvergenceDelta, FAIGAttributions


def __getattr__(name: str) -> Any:
    if name in ("FAIG", "FAIGAttributions", "ConvergenceDelta"):
        from faig_gui.core import api
        return getattr(api, name)
    raise AttributeError(f"module 'faig_gui' has no attribute '{name}'")
