"""A bundled demo in the real window (run under Xvfb), as File ▸ Open demo opens it, with one
degradation's top 1 % FAIG filters masked; saves the window's picture. With ``--prediction``,
the Prediction panel is brought into view with ``--add`` images added to it, and once every row
has its verdict (the first calibration of a pair takes minutes) the panel's picture is saved.

    xvfb-run -a -s "-screen 0 1700x1100x24" .venv/bin/python bench/demo_screenshot.py \\
        --demo srvgg3 --degradation blur --out docs/screenshot_srvgg3g.png
    xvfb-run -a -s "-screen 0 1700x1100x24" .venv/bin/python bench/demo_screenshot.py --demo msrresnet \
        --psnr-y --table --out docs/screenshot_psnr_y.png
    xvfb-run -a -s "-screen 0 1700x1100x24" .venv/bin/python bench/demo_screenshot.py --demo msrresnet \\
        --prediction --add resources/demo/heldout/noise/chelsea.png --out docs/prediction_panel.png

The window's settings go to a temporary folder, not the user's.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def settle(app, seconds: float) -> None:
    """Run the event loop for ``seconds``, deleting what was scheduled for deletion (a rebuilt
    row's old widgets would otherwise still be painted: only a running exec() deletes them)."""
    from PySide6.QtCore import QEvent
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        time.sleep(0.02)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo", default="srvgg3", help="a bundled demo's name (core/demo.py)")
    p.add_argument("--degradation", default="blur", help="whose top filters are masked")
    p.add_argument("--percent", type=float, default=1.0)
    p.add_argument("--size", default="1600x1000", help="the window's size")
    p.add_argument("--wait", type=float, default=12.0, help="seconds for the renders to finish")
    p.add_argument("--prediction", action="store_true", help="save the Prediction panel once it has its verdicts")
    p.add_argument("--add", nargs="*", default=[], help="images to add to the Prediction panel")
    p.add_argument("--psnr-y", action="store_true", help="View ▸ PSNR on luma (Y) on")
    p.add_argument("--table", action="store_true", help="show the Effect / PSNR tab beside the thumbnails")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    tmp = tempfile.mkdtemp()
    os.environ["XDG_CONFIG_HOME"] = str(Path(tmp) / "config")
    os.environ["XDG_DATA_HOME"] = str(Path(tmp) / "data")
    from PySide6.QtWidgets import QApplication
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(["demo_screenshot"])
    from faig_gui.app.live import install_loop
    from faig_gui.app.main_window import MainWindow
    from faig_gui.app.masking_dock import K_STEPS
    install_loop(app)
    window = MainWindow(restore_layout=False)
    w, h = (int(v) for v in args.size.split("x"))
    window.resize(w, h)
    window.show()
    settle(app, 1.0)
    action = window.demo_actions[args.demo]
    if not action.isEnabled():
        print(f"demo_screenshot: the {args.demo} demo is not bundled here", file=sys.stderr)
        return 2
    action.trigger()
    settle(app, 3.0)
    masking = window.masking_dock
    masking.degradation.setCurrentText(args.degradation)
    settle(app, 0.5)
    masking.k_slider.setValue(round(args.percent * K_STEPS))
    if args.psnr_y:
        window.psnr_y_action.trigger()
    if args.table:
        window.image_view.lists.setCurrentIndex(1)
    settle(app, args.wait)
    if args.prediction:
        dock = window.prediction_dock
        if dock is None:
            print("demo_screenshot: this window has no Prediction panel", file=sys.stderr)
            return 2
        dock.setFloating(True)   # on its own, tall enough for several rows
        dock.resize(360, 980)
        dock.show()
        dock.raise_()
        dock.add_paths([str(Path(a).resolve()) for a in args.add])
        end = time.monotonic() + 900
        rows = lambda: [dock.current, *dock.entries]   # noqa: E731
        while time.monotonic() < end and not all(e is not None and (e.prediction or e.error) for e in rows()):
            settle(app, 1.0)
        settle(app, 1.0)
        dock.grab().save(args.out)
        print(f"wrote {args.out}")
        return 0
    window.grab().save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
