"""Fixtures for the widget tests: a tiny demo-shaped folder, the qasync loop, a clean window,
and a check that no test leaves a QThread (or a render/export thread) running."""
from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import QSettings, QThread

from faig_gui.core.checkpoint import save_checkpoint
from faig_gui.core.dataset import make_degraded, write_image_set
from faig_gui.core.degradations import paper_degradations
from faig_gui.core.demo import DemoFiles
from faig_gui.core.imageio import write_image
from faig_gui.core.registry import default_registry
from faig_gui.core.results import write_scores


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A natural-ish image: a few random sinusoids and edges, RGB in [0, 1]."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        for _ in range(3):
            fy, fx, ph = rng.uniform(0.02, 0.3), rng.uniform(0.02, 0.3), rng.uniform(0, 6.28)
            img[..., c] += np.sin(fy * y + fx * x + ph)
        img[..., c] += (x > rng.uniform(0, w)) * 1.5
    img -= img.min()
    return img / img.max()


def make_tiny_demo(root: Path, num_feat: int = 8, num_block: int = 1) -> DemoFiles:
    """A folder shaped like resources/demo with a tiny x2 MSRResNet pair and random scores."""
    arch = default_registry().get("msrresnet")
    torch.manual_seed(0)
    base = arch.new_state_dict(num_feat=num_feat, num_block=num_block, scale=2)
    # the target differs from the baseline everywhere (a "fine-tuned" copy)
    targ = {k: v + 0.05 * torch.randn_like(v) for k, v in base.items()}
    save_checkpoint(root / "baseline.pth", base)
    save_checkpoint(root / "target.pth", targ)
    from faig_gui.core.filters import FilterIndex
    total = FilterIndex.from_state_dict(targ).total
    rng = np.random.default_rng(0)
    write_scores(root / "scores.npz", {"blur": rng.normal(size=total), "noise": rng.normal(size=total)})
    for n in range(2):
        write_image(root / "analysis" / "GT" / f"a{n}.png", smooth_image(rng, 32, 32))
    hr = {f"h{n}.png": smooth_image(rng, 32, 32) for n in range(2)}
    write_image_set(root / "heldout", make_degraded(hr, 2, paper_degradations(), seed=1), clean=False)
    return DemoFiles(root / "baseline.pth", root / "target.pth", root / "scores.npz",
                     root / "analysis", root / "heldout")


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory) -> DemoFiles:
    return make_tiny_demo(tmp_path_factory.mktemp("tiny_demo"))


@pytest.fixture(scope="session")
def qloop(qapp, tmp_path_factory):
    from faig_gui.app.live import install_loop
    # settings and the recovery file in this test process's own folder: several test runs
    # may share one machine and one home
    home = tmp_path_factory.mktemp("qt_home")
    os.environ["XDG_CONFIG_HOME"] = str(home / "config")
    os.environ["XDG_DATA_HOME"] = str(home / "data")
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(home / "config"))
    qapp.setOrganizationName("faig-gui")
    qapp.setApplicationName("faig-gui")
    return install_loop(qapp)


@pytest.fixture(autouse=True)
def _clean_app_state(qloop):
    """Each test starts with no recovery file and no recent-files list, and with the slider's
    stops not filled in the background: the window does that by default, which would keep the
    render thread busy after every change and add forwards to what the tests count;
    test_prefetch.py turns it on through the View menu where it is what is tested."""
    from faig_gui.app.main_window import recovery_path, settings
    from faig_gui.app.prefetch import FILL_STOPS_KEY
    recovery_path().unlink(missing_ok=True)
    settings().clear()
    settings().setValue(FILL_STOPS_KEY, False)
    yield
    recovery_path().unlink(missing_ok=True)
    settings().clear()


@pytest.fixture(autouse=True)
def no_dangling_threads(qloop):
    """Fail a test that leaves a QThread or a faig-* worker thread running."""
    yield
    gc.collect()
    running = []
    for obj in gc.get_objects():
        try:
            # type(), not isinstance(): lazy modules warn when their __class__ is looked up
            if issubclass(type(obj), QThread) and obj is not QThread.currentThread() and obj.isRunning():
                running.append(obj.objectName() or repr(obj))
        except RuntimeError:  # wrapper of a deleted C++ object
            continue
    running += [t.name for t in threading.enumerate() if t.name.startswith("faig-") and t.is_alive()]
    assert not running, f"threads left running: {running}"


@pytest.fixture
def make_window(qtbot, qloop):
    """Build MainWindows that are closed (cleanly, without questions) after the test."""
    from faig_gui.app.main_window import MainWindow
    made = []

    def make(**kw):
        # not qtbot.addWidget: qtbot would close it before this fixture can mark it clean,
        # and a window with unsaved changes asks whether to save them
        w = MainWindow(restore_layout=False, **kw)
        w.show()
        made.append(w)
        return w

    yield make
    for w in made:
        w._set_clean()
        w.close()
        w.shutdown()
        w.deleteLater()


@pytest.fixture
def demo_window(make_window, tiny_demo, qtbot):
    """The window with the tiny demo open and the first render on screen."""
    from faig_gui.app.launch import demo_session
    w = make_window()
    with qtbot.waitSignal(w.image_view.rendered, timeout=20000):
        w.model.replace_session(demo_session(tiny_demo))
    qtbot.waitUntil(lambda: w.image_view.live.idle, timeout=20000)
    return w
