"""Argument helpers shared by the headless commands."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Callable

from faig_gui.core.attribution import Cancelled
from faig_gui.core.errors import FaigError


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where to compute (auto: CUDA when present)")


def add_arch(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", help="force an architecture plugin (default: detect from the weights); "
                                  "NAME:KEY=VALUE,... also sets hyper-parameters the weights do not "
                                  "show, e.g. edsr:res_scale=0.1")


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def output_dir(path: str) -> Path:
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FaigError(f"{out}: cannot create the output folder: {exc.strerror or exc}") from None
    return out


@contextmanager
def progress_bar(total: int, desc: str):
    """A tqdm bar on stderr (quiet when stderr is not a terminal and total is tiny)."""
    from tqdm import tqdm
    bar = tqdm(total=total, desc=desc, file=sys.stderr, unit="step", dynamic_ncols=True,
               disable=None if total > 1 else True)
    try:
        yield bar
    finally:
        bar.close()


def drive_with_progress(gen, result_type: type, desc: str, total: int = 100,
                        poll: Callable[[], int] | None = None, show: bool = True):
    """Run a core generator of progress records to its ``result_type`` item under a progress
    bar. The first Ctrl-C asks the generator to stop between steps (a clean stop, nothing
    written); a second one aborts at once. ``gen`` is a callable taking ``should_stop``.

    ``poll``: where the bar's count comes from instead (every rank's steps of a distributed run,
    read twice a second by a thread, also while this process waits for the others);
    ``show=False``: no bar (the other ranks of a distributed run)."""
    stop = {"asked": False}

    def on_sigint(_sig, _frame):
        if stop["asked"]:
            raise KeyboardInterrupt
        stop["asked"] = True

    previous = signal.signal(signal.SIGINT, on_sigint)
    result = None
    finished = threading.Event()
    try:
        with progress_bar(total if show else 0, desc) as bar:
            if poll is not None and show:
                threading.Thread(target=_follow, args=(bar, poll, finished), daemon=True).start()
            for item in gen(lambda: stop["asked"]):
                if isinstance(item, result_type):
                    result = item
                else:
                    if poll is None:
                        bar.n = int(round(total * item.done / item.total)) if item.total else total
                    bar.set_postfix_str(item.message, refresh=False)
                    bar.refresh()
            finished.set()
            bar.n = total
    except Cancelled:
        raise KeyboardInterrupt from None
    finally:
        finished.set()
        signal.signal(signal.SIGINT, previous)
    if stop["asked"]:
        raise KeyboardInterrupt
    return result


def _follow(bar, poll: Callable[[], int], finished: threading.Event) -> None:
    while not finished.wait(0.5):
        bar.n = min(poll(), bar.total)
        bar.refresh()


def add_degradations(p: argparse.ArgumentParser) -> None:
    """--degradation NAME=STEP,... (repeatable) or the paper's two with --blur-sigma/--noise-sigma."""
    p.add_argument("--degradation", action="append", metavar="NAME=STEPS",
                   help="a degradation as NAME=STEP,STEP,... applied to the HR image in that order, with "
                        "the steps blur:SIGMA, down, noise:SIGMA, jpeg:QUALITY (exactly one 'down'); "
                        "repeat for several, e.g. --degradation blur --degradation noise "
                        "--degradation jpeg=down,jpeg:30 (bare names: blur, noise, jpeg; default: "
                        "the paper's blur and noise)")
    p.add_argument("--blur-sigma", type=float, default=2.0, help="σ of the default blur (without --degradation)")
    p.add_argument("--noise-sigma", type=float, default=0.1, help="σ of the default noise (without --degradation)")


def degradations_from(args: argparse.Namespace) -> list:
    from faig_gui.core.degradations import parse_degradations
    return parse_degradations(getattr(args, "degradation", None), args.blur_sigma, args.noise_sigma)
