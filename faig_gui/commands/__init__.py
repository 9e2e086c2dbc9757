"""Headless sub-commands of `faig-gui`, one module each: ``HELP``, ``add_arguments(parser)``,
``run(args) -> int``. They use ``faig_gui.core`` only."""
from __future__ import annotations

import importlib.util

_ORDER = ["degrade", "analyze", "run", "mask", "evaluate", "predict", "train"]

COMMANDS = [name for name in _ORDER if importlib.util.find_spec(f"faig_gui.commands.{name}") is not None]
