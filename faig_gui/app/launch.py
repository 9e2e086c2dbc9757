"""Opening the window: QApplication, the qasync loop, what to show first, --screenshot.

    faig-gui                                   the bundled demo (pair, images, scores)
    faig-gui --baseline B --target T [IMAGES]  that pair
    faig-gui SESSION.faig                      a saved session
    faig-gui --empty                           nothing
    faig-gui ... --screenshot FILE             grab the window once idle, save, exit 0
"""
from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import cast

import torch
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from faig_gui.app import qt_libs
from faig_gui.app.live import install_loop
from faig_gui.app.main_window import MainWindow
from faig_gui.app.session_model import SessionModel
from faig_gui.core.demo import DemoFiles, demo_files
from faig_gui.core.errors import FaigError
from faig_gui.core.imageio import list_images
from faig_gui.core.resources import resources_dir
from faig_gui.core.results import read_scores
from faig_gui.core.session import Session

log = logging.getLogger(__name__)

#: the demo opens with this mask, so the masked output differs from the target's at first sight;
#: its held-out inputs shown first are one per degradation, labelled with its name
DEMO_MASK = ("blur", 1.0)


def demo_session(files: DemoFiles | None = None, session: Session | None = None) -> Session:
    """The demo pair with its precomputed scores, its analysis images and held-out inputs."""
    files = files or demo_files()
    s = session or Session()
    s.load_pair(files.baseline, files.target)
    assert s.index is not None   # load_pair builds it
    s.set_scores(read_scores(files.scores, s.index.total), "faig")
    # the degradations the demo's scores were analysed for (the second demo adds JPEG)
    s.apply_settings(replace(s.settings, degradations=list(files.degradations)))
    gt_dir = files.analysis / "GT"
    if gt_dir.is_dir():
        s.set_analysis_hr_folder(gt_dir)
    held_gt = files.heldout / "GT"
    if held_gt.is_dir():
        for gt in list_images(held_gt):
            for d in files.degradations:
                folder = label = d.name
                lr = files.heldout / folder / gt.name
                if lr.is_file():
                    s.add_image(lr, gt, label)
    s.current = 0 if s.images else -1
    s.set_top_mask(*DEMO_MASK)
    return s


def open_from_args(window: MainWindow, args: argparse.Namespace) -> None:
    """Fill the window as the command line asks; user errors are shown, the window stays."""
    model = window.model
    images = list(getattr(args, "images", None) or [])
    if getattr(args, "session", None):
        window.open_session(args.session)
    elif args.baseline or args.target:
        arch = getattr(args, "arch", None)
        if args.baseline and args.target:
            model.load_parts(args.baseline, args.target, arch)   # a bad baseline keeps a valid target
        elif args.baseline:
            model.load_baseline(args.baseline)
        else:
            model.load_target(args.target)
    elif not getattr(args, "empty", False) and not images:
        session = model.guarded(lambda: demo_session(session=Session(model.session.registry)))
        if session is not None:
            model.replace_session(session)
    if images:
        if window.prediction_dock is not None:   # predicted as the centre image, when in view
            window.prediction_dock.expect_images(images)
        model.add_images(images)
    window.runner.store_folder = getattr(args, "analysis_out", None)
    device = getattr(args, "device", None)
    if device and device != model.session.settings.device:
        model.set_settings(replace(model.session.settings, device=device))
    window._set_clean()


def freeze_startup_objects() -> None:
    """Move everything alive after start-up (torch, Qt wrappers, the models) out of the garbage
    collector's reach: a full collection then scans only what came later, so it cannot pause
    the UI thread for long while FAIG runs."""
    gc.collect()
    gc.freeze()


def apply_style(app: QApplication) -> None:
    qss = resources_dir() / "style.qss"
    if qss.is_file():
        app.setStyleSheet(qss.read_text(encoding="utf-8"))


def configure_torch_threads() -> int:
    """Half the cores for the UI thread's own torch work. torch's thread count is per OS thread:
    each worker sets its own (workers.long_job_threads for FAIG and effect curves, half the
    cores; workers.live_threads for renders and predictions, all cores unless a long job runs),
    so that two computations never oversubscribe the cores (bench/bench_ui.py; docs/performance.md,
    "Figures behind the code")."""
    from faig_gui.app.workers import long_job_threads
    n = long_job_threads()
    torch.set_num_threads(n)
    return n


def new_application(argv: list[str]) -> QApplication:
    """A QApplication; where Qt cannot load its platform plugin (it aborts, naming one missing
    library at best) faig-gui says which system libraries are missing and the apt-get line that
    installs them (qt_libs.py), and exits 1."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler
    held: list[str] = []   # Qt's lines while it starts: shown unless it fails (then ours replace them)

    def handler(kind, _context, message: str) -> None:
        if kind == QtMsgType.QtFatalMsg:
            sys.stderr.write(qt_libs.explain(message) + "\n")
            sys.stderr.flush()
            os._exit(1)   # (returning lets Qt abort with a core dump)
        held.append(message)

    qInstallMessageHandler(handler)
    try:
        app = QApplication(argv)
    finally:
        qInstallMessageHandler(None)
    for line in held:
        sys.stderr.write(line + "\n")
    return app


def run_window(args: argparse.Namespace) -> int:
    configure_torch_threads()
    logging.basicConfig(level=logging.WARNING, format="faig-gui: %(levelname)s: %(message)s")
    # cast: the stub types instance() as QCoreApplication; this process only ever makes a QApplication
    app = cast(QApplication, QApplication.instance() or new_application([sys.argv[0] if sys.argv else "faig-gui"]))
    app.setApplicationName("faig-gui")
    app.setOrganizationName("faig-gui")
    app.setApplicationDisplayName("faig-gui")
    apply_style(app)
    loop = install_loop(app)
    screenshot = getattr(args, "screenshot", None)
    window = MainWindow(SessionModel(), restore_layout=not screenshot)
    open_from_args(window, args)
    window.show()
    freeze_startup_objects()
    result = {"code": 0}
    if screenshot:
        out = Path(screenshot)
        if not out.parent.is_dir():
            raise FaigError(f"{out.parent}: no such folder for the screenshot")

        def done(ok: bool) -> None:
            result["code"] = 0 if ok else 1
            window._set_clean()
            window.close()
            app.quit()

        window.grab_when_idle(out, done)
    else:
        QTimer.singleShot(0, window.offer_recovery)
    app.exec()
    window.shutdown()
    if loop.is_running():
        loop.stop()
    return result["code"]
