"""Headless sub-commands of `faig-gui`, one module each: ``HELP``, ``add_arguments(parser)``,
``run(args) -> int``. They use ``faig_gui.core`` only."""

COMMANDS = ["degrade", "analyze", "run", "mask", "evaluate", "train", "predict"]
