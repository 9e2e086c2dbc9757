"""faig-gui as a user starts it: a real process, offscreen, --screenshot then exit 0."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtGui import QImage

ROOT = Path(__file__).resolve().parents[2]


def test_screenshot_of_a_pair_with_an_image_exits_0(tiny_demo, tmp_path):
    out = tmp_path / "shot.png"
    image = sorted((tiny_demo.heldout / "blur").glob("*.png"))[0]
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
           "XDG_DATA_HOME": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "faig_gui", "--baseline", str(tiny_demo.baseline),
                           "--target", str(tiny_demo.target), str(image), "--screenshot", str(out)],
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shot = QImage(str(out))
    assert not shot.isNull() and shot.width() >= 1000 and shot.height() >= 700
    # the window is not blank: many distinct colours (images, graph, widgets)
    colours = {shot.pixel(x, y) for x in range(0, shot.width(), 7) for y in range(0, shot.height(), 7)}
    assert len(colours) > 200


def test_a_missing_checkpoint_is_reported_and_the_window_stays(make_window, tmp_path):
    from argparse import Namespace
    from faig_gui.app.launch import open_from_args
    w = make_window()
    args = Namespace(session=None, images=[], baseline=str(tmp_path / "nope.pth"),
                     target=str(tmp_path / "nope2.pth"), arch=None, device="cpu", empty=False, screenshot=None)
    open_from_args(w, args)
    assert "nope.pth" in w.last_error and w.isVisible()
    assert w.model.session.baseline is None
    assert w.model.session.settings.device == "cpu" and "device: cpu" in w.device_label.text()


def test_empty_opens_nothing(make_window):
    from argparse import Namespace
    from faig_gui.app.launch import open_from_args
    w = make_window()
    open_from_args(w, Namespace(session=None, images=[], baseline=None, target=None, arch=None,
                                device="auto", empty=True, screenshot=None))
    assert w.model.session.target is None and not w.model.session.images
    assert w.last_error == "" and "no model" in w.model_label.text()


def test_no_arguments_open_the_bundled_demo_coloured_and_masked(make_window, qtbot):
    from argparse import Namespace
    from faig_gui.app.launch import open_from_args
    from faig_gui.core.demo import demo_files
    files = demo_files()
    w = make_window()
    with qtbot.waitSignal(w.image_view.rendered, timeout=60000):
        open_from_args(w, Namespace(session=None, images=[], baseline=None, target=None, arch=None,
                                    device="auto", empty=False, screenshot=None))
    s = w.model.session
    assert s.ready and Path(s.target.path) == files.target
    assert set(s.scores) == {"blur", "noise"} and len(s.analysis_images) > 0
    assert len(s.images) == 2 * len(list((files.heldout / "GT").glob("*.png")))
    assert len(s.mask) == int(s.index.total * 0.01) and w.masking_dock.degradation.currentText() == "blur"
    assert len({item.fill().name() for item in w.graph_dock.items.values()}) > 2
    r = w.image_view.result
    assert r.masked is not None and r.effect > 0 and r.psnr_target is not None
    assert not w.isWindowModified()
