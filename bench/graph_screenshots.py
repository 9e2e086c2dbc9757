"""The docs' graph figures from the real window (run under Xvfb): the demo, and a random RRDBNet
x4 64/23/32 pair with made-up scores (blur favours early filters, noise late ones; the pair is
random, so the picture shows the views, not a finding) folded, searched, unfolded, and its
importance profile, and the filters panel on one of its 64 x 192 layers.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python bench/graph_screenshots.py docs
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "app"), str(ROOT / "bench")]


def settle(app, seconds: float = 1.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def main(out: Path) -> None:
    import faulthandler
    faulthandler.dump_traceback_later(240, exit=True)   # a hang says where it hangs
    import torch
    torch.set_num_threads(1)
    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication(["faig-gui"])
    from faig_gui.app.launch import apply_style
    from faig_gui.app.live import install_loop
    apply_style(app)
    install_loop(app)

    rrdbnet(app, out)
    if "--rrdbnet-only" not in sys.argv:
        demo(app, out)   # last: closing it waits for the prediction panel's calibration
    sys.stdout.flush()
    os._exit(0)


def demo(app, out: Path) -> None:
    import argparse
    from faig_gui.app.launch import open_from_args
    from faig_gui.app.main_window import MainWindow
    from faig_gui.app.session_model import SessionModel
    window = MainWindow(SessionModel(), restore_layout=False)
    open_from_args(window, argparse.Namespace(session=None, baseline=None, target=None, images=[], empty=False,
                                              device="cpu"))
    window.resize(1600, 1000)
    window.show()
    settle(app, 8.0)
    window.grab().save(str(out / "graph_demo_window.png"))
    window.graph_dock.grab().save(str(out / "graph_demo.png"))


def rrdbnet(app, out: Path) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from faig_gui.app.main_window import MainWindow
    from faig_gui.app.session_model import SessionModel
    from faig_gui.core.session import Session
    from bench_docks import rrdbnet_pair
    from tiny_session import made_up_scores
    with tempfile.TemporaryDirectory() as tmp:
        b, t, registry, _ = rrdbnet_pair(Path(tmp))
        model = SessionModel(Session(registry))
        window = MainWindow(model, restore_layout=False)
        window.resize(1600, 1000)
        window.show()
        settle(app, 0.5)
        assert model.load_pair(str(b), str(t))
    model.set_scores(made_up_scores(model.session.index.total))
    model.set_top_mask("blur", 1.0)
    settle(app, 2.0)
    graph = window.graph_dock
    window.grab().save(str(out / "graph_rrdbnet_window.png"))
    graph.grab().save(str(out / "graph_rrdbnet_folded.png"))
    window.profile_dock.grab().save(str(out / "importance_profile.png"))
    graph.search.setFocus()
    QTest.keyClicks(graph.search, "body.17.rdb2.conv3")
    QTest.keyClick(graph.search, Qt.Key.Key_Return)
    settle(app, 1.0)
    graph.grab().save(str(out / "graph_rrdbnet_searched.png"))
    graph.fold_all()
    box = graph.items["group:body.5"]
    graph.view.centerOn(box)
    pos = graph.view.mapFromScene(box.scenePos())
    QTest.mouseDClick(graph.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    settle(app, 0.5)
    box = graph.items["group:body.5.rdb1"]
    graph.view.centerOn(box)
    QTest.mouseDClick(graph.view.viewport(), Qt.MouseButton.LeftButton, pos=graph.view.mapFromScene(box.scenePos()))
    settle(app, 1.0)
    graph.grab().save(str(out / "graph_rrdbnet_unfolded.png"))
    # the filters panel on a 64 x 192 layer (a dense block's last conv: 64 + 4 x 32 inputs)
    model.select_layer("body.17.rdb2.conv5.weight")
    window.filter_dock.raise_()
    window.resizeDocks([window.filter_dock], [640], Qt.Orientation.Horizontal)
    settle(app, 1.5)
    window.filter_dock.grab().save(str(out / "filters_rrdbnet_64x192.png"))
    window._set_clean()
    window.close()


if __name__ == "__main__":
    main(Path(next((a for a in sys.argv[1:] if not a.startswith("--")), ".")))
