"""The `faig-gui` command: the window by default, headless sub-commands for scripts.

    faig-gui [SESSION.faig | --baseline B --target T [IMAGES...] | --empty] [--screenshot FILE]
    faig-gui degrade|analyze|run|mask|evaluate|train|predict ...

Headless commands import only ``faig_gui.core``; Qt is imported only when the window opens.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import textwrap

from faig_gui import __version__
from faig_gui.commands import COMMANDS
from faig_gui.core.allocator import keep_freed_memory
from faig_gui.core.errors import FaigError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faig-gui",
        description="FAIG filter attribution for blind super-resolution networks. "
                    "With no command, opens the window.")
    parser.add_argument("--version", action="version", version=f"faig-gui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"faig_gui.commands.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def build_window_parser() -> argparse.ArgumentParser:
    """The window's options; its help also lists the headless commands (one usage block)."""
    p = argparse.ArgumentParser(
        prog="faig-gui",
        usage="%(prog)s [options] [SESSION.faig | IMAGE ...]\n       %(prog)s COMMAND [options]",
        description="FAIG filter attribution for blind super-resolution networks.\n"
                    "With no command, opens the window.",
        epilog=commands_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("session", nargs="?", help="a saved session (.faig) to reopen")
    p.add_argument("images", nargs="*", help="images to open (with --baseline/--target)")
    p.add_argument("--baseline", help="baseline checkpoint (trained on clean inputs)")
    p.add_argument("--target", help="target checkpoint (fine-tuned for blind degradations)")
    p.add_argument("--arch", help="force an architecture plugin")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--empty", action="store_true", help="start without the demo session")
    p.add_argument("--analysis-out", metavar="DIR",
                   help="keep each analysed image's attributions in DIR/attributions as `analyze --out DIR` "
                        "does, and take those of earlier runs with the same settings from there")
    p.add_argument("--screenshot", metavar="FILE", help="save a grab of the window once idle, then exit")
    p.add_argument("--version", action="version", version=f"faig-gui {__version__}")
    return p


def commands_help(width: int = 79) -> str:
    """The headless commands, one paragraph each, for the end of ``faig-gui --help``."""
    lines = ["headless commands (faig-gui COMMAND -h for their options):"]
    for name in COMMANDS:
        text = importlib.import_module(f"faig_gui.commands.{name}").HELP
        lines += textwrap.wrap(text, width, initial_indent=f"  {name:<10}", subsequent_indent=" " * 12)
    return "\n".join(lines)


class _NoteHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time (not the stream of the first call)."""

    def emit(self, record: logging.LogRecord) -> None:
        kind = "note" if record.levelno <= logging.INFO else record.levelname.lower()
        print(f"faig-gui: {kind}: {record.getMessage()}", file=sys.stderr)


def show_notes() -> None:
    """Print the core's notes (logger ``faig_gui``, e.g. "cropped to a multiple of the scale")."""
    log = logging.getLogger("faig_gui")
    if not any(isinstance(h, _NoteHandler) for h in log.handlers):
        log.addHandler(_NoteHandler(logging.INFO))
        log.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    keep_freed_memory()   # every pass would otherwise fault its activations back in (allocator.py)
    try:
        if argv and argv[0] in COMMANDS:
            show_notes()  # headless only: the window has its own logging set-up
            args = build_parser().parse_args(argv)
            return int(args._run(args) or 0)
        if argv[:1] in (["-h"], ["--help"]):
            build_window_parser().print_help()
            return 0
        args = build_window_parser().parse_args(argv)
        if args.session and not args.session.endswith(".faig"):
            args.images = [args.session, *args.images]
            args.session = None
        from faig_gui.app.launch import run_window  # Qt only from here on
        return int(run_window(args) or 0)
    except FaigError as exc:
        print(f"faig-gui: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except MemoryError:
        print("faig-gui: error: out of memory; use smaller images or fewer path steps (--chunk)", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("faig-gui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
