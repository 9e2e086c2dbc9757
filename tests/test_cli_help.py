"""`faig-gui --help` is one help text: the window's options, then each headless command."""
from __future__ import annotations

import importlib

from faig_gui.cli import main
from faig_gui.commands import COMMANDS


def test_help_has_one_usage_block_and_names_every_command(capsys):
    assert main(["--help"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.count("usage:") == 1
    assert out.startswith("usage: faig-gui [options] [SESSION.faig | IMAGE ...]\n       faig-gui COMMAND [options]")
    for option in ("--baseline", "--target", "--empty", "--screenshot"):
        assert option in out
    tail = out[out.index("headless commands"):]
    for name in COMMANDS:
        first_words = " ".join(importlib.import_module(f"faig_gui.commands.{name}").HELP.split()[:3])
        line = next(ln for ln in tail.splitlines() if ln.startswith(f"  {name} "))
        assert " ".join(line.split()[1:4]) == first_words, name
    assert max(len(ln) for ln in out.splitlines()) <= 80


def test_a_command_keeps_its_own_help(capsys):
    import pytest
    with pytest.raises(SystemExit) as exc:
        main(["mask", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.count("usage:") == 1 and out.startswith("usage: faig-gui mask")
