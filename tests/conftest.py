"""Shared test set-up: no display needed, the checkout importable, tiny random pairs."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
for p in (str(ROOT), str(TESTS)):
    if p not in sys.path:
        sys.path.insert(0, p)

import pytest  # noqa: E402
import torch  # noqa: E402

# two busy cores are shared with other work: keep torch from oversubscribing them
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture
def registry():
    from faig_gui.core.registry import default_registry
    return default_registry()
