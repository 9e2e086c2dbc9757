"""The real window fed hostile files and faults: a dialog says what is wrong, the window keeps
working, and the models, images and scores the user had are still there."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from faig_gui.app import main_window as main_window_module
from faig_gui.core.checkpoint import save_checkpoint
from faig_gui.core.registry import default_registry
from qt_events import answer_next_dialog as _answer_next_dialog
from qt_events import drop_files as _drop

ROOT = Path(__file__).resolve().parents[2]


class _Payload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _bad_checkpoints(folder: Path, tiny_demo) -> dict[str, tuple[Path, str]]:
    """name -> (file, words the message must hold)."""
    base = dict(default_registry().load_model(tiny_demo.target).state_dict)
    files = {}
    p = folder / "evil.pth"
    torch.save({"params": base, "x": _Payload(folder / "ran.txt")}, p)
    files["evil"] = (p, "could run code")
    p = folder / "truncated.pth"
    save_checkpoint(p, base)
    p.write_bytes(p.read_bytes()[:300])
    files["truncated"] = (p, "truncated")
    p = folder / "nan.pth"
    sd = {k: v.clone() for k, v in base.items()}
    sd["conv_first.weight"][0, 0, 0, 0] = float("nan")
    save_checkpoint(p, sd)
    files["nan"] = (p, "NaN")
    p = folder / "bomb.pth"
    torch.save({"conv_first.weight": torch.zeros(1).as_strided((20000, 20000), (0, 0))}, p)
    files["bomb"] = (p, "overlapping strides")
    p = folder / "wide.pth"
    save_checkpoint(p, default_registry().get("msrresnet").new_state_dict(num_feat=16, num_block=1, scale=2))
    files["mismatched"] = (p, "not a pair")
    p = folder / "mlp.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, p)
    files["unknown"] = (p, "no architecture plugin")
    return files


def _error_box(window) -> QMessageBox | None:
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    return boxes[-1] if boxes else None






def _still_usable(window, qtbot) -> None:
    """The window still reacts: a mask change re-renders the masked output."""
    s = window.model.session
    before = window.image_view.result.masked.copy()
    k = window.masking_dock.k_slider
    with qtbot.waitSignal(window.image_view.rendered, timeout=20000):
        k.setValue(100 if k.value() != 100 else 50)
    qtbot.waitUntil(lambda: window.image_view.live.idle, timeout=20000)
    assert s.mask_settings.proportion == k.value() / 10
    assert not np.array_equal(window.image_view.result.masked, before)


@pytest.mark.parametrize("kind", ["evil", "truncated", "nan", "bomb", "mismatched", "unknown"])
def test_open_target_from_the_file_menu_with_a_bad_checkpoint(demo_window, qtbot, tmp_path, tiny_demo,
                                                              monkeypatch, kind):
    w = demo_window
    bad, words = _bad_checkpoints(tmp_path, tiny_demo)[kind]
    baseline, target = w.model.session.baseline, w.model.session.target
    scores = {k: v.copy() for k, v in w.model.session.scores.items()}
    monkeypatch.setattr(main_window_module.QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (str(bad), "")))
    w.open_target_action.trigger()
    box = _error_box(w)
    assert box is not None and box.windowModality() == Qt.WindowModality.NonModal
    assert str(bad) in box.text() and words in box.text() and "\n" not in box.text()
    assert w.model.session.baseline is baseline and w.model.session.target is target
    for d, v in scores.items():
        np.testing.assert_array_equal(w.model.session.scores[d], v)
    assert not (tmp_path / "ran.txt").exists()
    box.close()
    _still_usable(w, qtbot)


def test_dropping_a_bad_checkpoint_and_a_bad_image(demo_window, qtbot, tmp_path, tiny_demo):
    w = demo_window
    bad_ckpt, _ = _bad_checkpoints(tmp_path, tiny_demo)["evil"]
    bad_img = tmp_path / "half.png"
    bad_img.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0")
    target = w.model.session.target
    names = [i.name for i in w.model.session.images]
    _answer_next_dialog("Target")
    _drop(w, [bad_ckpt, bad_img])
    qtbot.waitUntil(lambda: "half.png" in w.last_error, timeout=10000)  # the last of the two errors
    assert w.model.session.target is target
    assert [i.name for i in w.model.session.images] == names
    assert not (tmp_path / "ran.txt").exists()
    _error_box(w).close()
    _still_usable(w, qtbot)


def test_huge_image_dropped_is_refused_with_a_message(demo_window, qtbot, tmp_path):
    from core.robustness_helpers import huge_png
    w = demo_window
    path = tmp_path / "huge.png"
    huge_png(path, 12000, 12000)
    n = len(w.model.session.images)
    assert w.model.add_images([str(path)]) == 0
    assert "12000x12000 is too large" in w.last_error
    assert len(w.model.session.images) == n
    _error_box(w).close()


@pytest.mark.parametrize("error", [RuntimeError("simulated crash in the attribution"),
                                   MemoryError()])
def test_an_exception_in_the_worker_keeps_the_results_and_the_window(demo_window, qtbot, monkeypatch, error):
    from faig_gui.core import analysis
    w = demo_window
    before = {k: v.copy() for k, v in w.model.session.scores.items()}
    mask_before = w.model.session.mask.indices.copy()

    def broken(*_a, **_k):
        raise error
    monkeypatch.setattr(analysis, "faig_attribution", broken)
    w.analysis_dock.steps.setValue(2)
    with qtbot.waitSignal(w.runner.failed, timeout=30000) as failed:
        assert w.run_analysis()
    qtbot.waitUntil(lambda: not w.runner.running, timeout=10000)
    assert type(error).__name__ in failed.args[0]
    assert type(error).__name__ in w.last_error
    for d, v in before.items():
        np.testing.assert_array_equal(w.model.session.scores[d], v)
    np.testing.assert_array_equal(w.model.session.mask.indices, mask_before)
    assert w.analysis_dock.run_button.isEnabled()
    _error_box(w).close()
    _still_usable(w, qtbot)
    # and a next run works
    monkeypatch.undo()
    with qtbot.waitSignal(w.runner.finished, timeout=60000):
        assert w.run_analysis()
    qtbot.waitUntil(lambda: not w.runner.running, timeout=10000)


def test_cancel_keeps_the_results_and_the_window_responsive_meanwhile(demo_window, qtbot):
    w = demo_window
    before = {k: v.copy() for k, v in w.model.session.scores.items()}
    w.analysis_dock.steps.setValue(400)
    ticks = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start()
    with qtbot.waitSignal(w.runner.progress, timeout=60000):
        assert w.run_analysis()
    _still_usable(w, qtbot)          # masking while FAIG runs
    with qtbot.waitSignal(w.runner.cancelled, timeout=60000):
        w.cancel_action.trigger()
    qtbot.waitUntil(lambda: not w.runner.running, timeout=10000)
    timer.stop()
    assert len(ticks) >= 3            # the event loop kept turning during the run
    for d, v in before.items():
        np.testing.assert_array_equal(w.model.session.scores[d], v)


def test_recovery_after_a_killed_process(make_window, qtbot, tiny_demo, tmp_path):
    """A real crash: another process autosaves and is killed with SIGKILL; this one recovers."""
    from faig_gui.app.main_window import recovery_path
    script = textwrap.dedent(f"""
        import os, sys, time
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]
        from PySide6.QtCore import QStandardPaths
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        QStandardPaths.setTestModeEnabled(True)
        app.setOrganizationName("faig-gui"); app.setApplicationName("faig-gui")
        from faig_gui.app import main_window
        from faig_gui.app.launch import demo_session
        from faig_gui.app.live import install_loop
        from faig_gui.app.main_window import MainWindow
        install_loop(app)
        main_window.recovery_path = lambda: Path({str(recovery_path())!r})  # this test's location
        from faig_gui.core.demo import DemoFiles
        from pathlib import Path
        files = DemoFiles(*[Path(p) for p in {[str(p) for p in (tiny_demo.baseline, tiny_demo.target,
                                                                 tiny_demo.scores, tiny_demo.analysis,
                                                                 tiny_demo.heldout)]!r}])
        w = MainWindow(restore_layout=False)
        w.model.replace_session(demo_session(files))
        w.model.set_top_mask("noise", 7.0)
        w.model.set_mask_mode("zero", 0.5)
        assert w.autosave()
        print(main_window.recovery_path(), flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    try:
        line = proc.stdout.readline().strip()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert line == str(recovery_path()) and recovery_path().is_file()
    # what the work was, computed here: the top 7 % of the noise scores, zero mode, lambda 0.5
    scores = np.load(tiny_demo.scores)["noise"]
    k = int(len(scores) * 0.07)
    expected = np.sort(np.argsort(-scores, kind="stable")[:k])
    w = make_window()
    _answer_next_dialog("Yes")
    assert w.offer_recovery()
    s = w.model.session
    np.testing.assert_array_equal(np.sort(s.mask.indices), expected)
    assert (s.mask.mode, s.mask.lam) == ("zero", 0.5)
    assert s.ready and Path(s.target.path) == tiny_demo.target
    assert w.isWindowModified() and s.path is None
