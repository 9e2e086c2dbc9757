"""The analysis dock's convergence line, driven through qtbot: after a FAIG run it shows the
largest |delta| / |L(θ̄) − L(θ)| over the images and degradations, and warns when the path
steps are too few. The loss change is checked against forwards of both models written here."""
from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from faig_gui.app.analysis_dock import AnalysisDock
from faig_gui.app.workers import AnalysisRunner
from faig_gui.core.imageio import write_image
from tiny_session import loaded_model
from tolerances import walk


def sse64(module, sd, lr, hr) -> float:
    net = copy.deepcopy(module).double().eval()
    net.load_state_dict({k: v.double() for k, v in sd.items()})
    with torch.no_grad():
        return float(((net(lr.double()) - hr.double()) ** 2).sum())


@pytest.fixture
def dock(qtbot, tmp_path):
    model = loaded_model(qtbot, tmp_path, scores=False, spread=0.1)
    rng = np.random.default_rng(3)
    write_image(tmp_path / "hr" / "a.png", rng.random((16, 16, 3)).astype(np.float32))
    assert model.set_analysis_hr_folder(str(tmp_path / "hr"))
    runner = AnalysisRunner(model)
    widget = AnalysisDock(model, runner)
    qtbot.addWidget(widget)
    widget.device.setCurrentIndex(widget.device.findData("cpu"))
    yield widget
    runner.shutdown()


def run(qtbot, dock, steps: int):
    dock.steps.setValue(steps)
    with qtbot.waitSignal(dock.runner.finished, timeout=60000) as done:
        qtbot.mouseClick(dock.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dock.runner.running, timeout=10000)
    return done.args[0]


def shown_percent(dock) -> float:
    m = re.match(r"convergence delta: max ([0-9.e+-]+) % of L\(θ̄\)−L\(θ\)", dock.convergence.text())
    assert m, dock.convergence.text()
    return float(m.group(1))


def test_the_dock_shows_the_convergence_delta_and_warns_when_steps_are_few(qtbot, dock):
    s = dock.model.session
    img = s.analysis_images[0]
    result = run(qtbot, dock, 1)
    assert not dock.convergence.isHidden()
    # the loss change of each degraded input, by forwarding both models here
    for d in ("blur", "noise"):
        (check,) = result.convergence[d]
        loss = sse64(s.target.module, s.target.state_dict, img.lr[d], img.hr)
        change = sse64(s.target.module, s.baseline.state_dict, img.lr[d], img.hr) - loss
        # float32 forwards (a chain of 10 convs of ≤ 37 · 9 terms) summed in float64
        assert check.loss_change == pytest.approx(change, abs=2 * walk(10 * 37 * 9) * loss)
    worst = max(abs(c.delta) / abs(c.loss_change) for v in result.convergence.values() for c in v)
    # one left-Riemann step is the gradient at the target alone: far from the path integral
    assert worst > 0.05
    # shown with 2 significant digits: off by at most half a unit of the second, ≤ 5 %
    assert shown_percent(dock) == pytest.approx(100 * worst, rel=0.05)
    assert "use more steps" in dock.convergence.text() and dock.convergence.property("warning")

    result = run(qtbot, dock, 64)
    worst64 = max(abs(c.delta) / abs(c.loss_change) for v in result.convergence.values() for c in v)
    assert worst64 < 0.05 and worst64 < worst / 10
    assert shown_percent(dock) == pytest.approx(100 * worst64, rel=0.05)
    assert dock.convergence.text().endswith("steps suffice") and not dock.convergence.property("warning")


def test_a_method_without_a_path_check_shows_no_line(qtbot, dock):
    dock.method.setCurrentIndex(dock.method.findData("abs"))
    run(qtbot, dock, 2)
    assert dock.convergence.isHidden() and dock.convergence.text() == ""
