"""Issue 18: the window's analysis keeps each image's attributions in the folder given with
`faig-gui --analysis-out DIR` (the store `analyze --out DIR` writes), and a later window with
the same pair and settings takes them from there instead of computing them; other settings are
computed again and replace the file. Driven through the analysis dock's Run button."""
from __future__ import annotations

import json

import numpy as np
from PySide6.QtCore import Qt

from distributed_helpers import read_store
from faig_gui.app.analysis_dock import AnalysisDock
from faig_gui.app.workers import AnalysisRunner
from faig_gui.core.imageio import write_image
from tiny_session import loaded_model


def window_parts(qtbot, tmp_path, out):
    model = loaded_model(qtbot, tmp_path, scores=False, spread=0.1)
    assert model.set_analysis_hr_folder(str(tmp_path / "hr"))
    runner = AnalysisRunner(model)
    runner.store_folder = str(out)
    dock = AnalysisDock(model, runner)
    qtbot.addWidget(dock)
    dock.device.setCurrentIndex(dock.device.findData("cpu"))
    return dock


def run(qtbot, dock, steps: int):
    dock.steps.setValue(steps)
    with qtbot.waitSignal(dock.runner.finished, timeout=60000) as done:
        qtbot.mouseClick(dock.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dock.runner.running, timeout=10000)
    return done.args[0]


def test_a_later_window_takes_the_stored_attributions(qtbot, tmp_path):
    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        write_image(tmp_path / "hr" / f"{name}.png", rng.random((16, 16, 3)).astype(np.float32))
    out = tmp_path / "out"
    first = window_parts(qtbot, tmp_path, out)
    try:
        computed = run(qtbot, first, 2)
    finally:
        first.runner.shutdown()
    stored = read_store(out / "attributions")
    assert sorted(stored) == ["a", "b"] and computed.notes["resumed_images"] == []
    for j, name in enumerate(("a", "b")):
        for d in ("blur", "noise"):
            np.testing.assert_array_equal(stored[name][d], computed.per_image[d][j])   # float64 kept as is

    later = window_parts(qtbot, tmp_path, out)   # a new session: nothing in its memory cache
    try:
        again = run(qtbot, later, 2)
        assert again.notes["resumed_images"] == ["a.png", "b.png"]
        for d in ("blur", "noise"):
            np.testing.assert_array_equal(again.scores[d], computed.scores[d])
        # other steps: computed again, and the files now say so
        other = run(qtbot, later, 3)
        assert other.notes["resumed_images"] == []
        with np.load(out / "attributions" / "a.npz") as f:
            assert json.loads(str(f["settings"]))["steps"] == 3
    finally:
        later.runner.shutdown()


def test_the_command_line_gives_the_window_its_store(make_window, tmp_path):
    from faig_gui.app.launch import open_from_args
    from faig_gui.cli import build_window_parser
    w = make_window()
    open_from_args(w, build_window_parser().parse_args(["--empty", "--analysis-out", str(tmp_path / "o")]))
    assert w.runner.store_folder == str(tmp_path / "o")
    assert not (tmp_path / "o").exists()   # made by the first analysis, not by opening the window


def test_the_window_takes_what_the_command_line_stored(qtbot, tmp_path):
    from faig_gui.cli import main
    rng = np.random.default_rng(4)
    for name in ("a", "b"):
        write_image(tmp_path / "hr" / f"{name}.png", rng.random((16, 16, 3)).astype(np.float32))
    dock = window_parts(qtbot, tmp_path, tmp_path / "out")   # writes the pair it opens
    s = dock.model.session
    assert main(["analyze", "--baseline", str(tmp_path / "baseline.pth"), "--target", str(tmp_path / "target.pth"),
                 "--hr", str(tmp_path / "hr"), "--steps", "2", "--rule", s.settings.rule, "--precision",
                 s.settings.precision, "--device", "cpu", "--out", str(tmp_path / "out")]) == 0
    stored = read_store(tmp_path / "out" / "attributions")
    try:
        result = run(qtbot, dock, 2)
    finally:
        dock.runner.shutdown()
    assert result.notes["resumed_images"] == ["a.png", "b.png"]
    for j, name in enumerate(("a", "b")):
        for d in ("blur", "noise"):
            np.testing.assert_array_equal(result.per_image[d][j], stored[name][d])
