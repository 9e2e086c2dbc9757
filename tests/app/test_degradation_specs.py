"""The analysis dock adds a degradation by its spec (JPEG included) and removes one; the
analysis images follow, and a bad spec is refused with its message."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from faig_gui.app.analysis_dock import AnalysisDock
from faig_gui.app.workers import AnalysisRunner
from faig_gui.core.degradations import downsample, quantize
from faig_gui.core.imageio import write_image
from tiny_session import loaded_model


@pytest.fixture
def dock(qtbot, tmp_path):
    model = loaded_model(qtbot, tmp_path, scores=False)
    rng = np.random.default_rng(3)
    write_image(tmp_path / "hr" / "a.png", rng.random((16, 16, 3)).astype(np.float32))
    assert model.set_analysis_hr_folder(str(tmp_path / "hr"))
    runner = AnalysisRunner(model)
    widget = AnalysisDock(model, runner)
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    runner.shutdown()


def _row_texts(dock) -> list[str]:
    g = dock.degradations_grid
    return [g.itemAtPosition(r, 0).widget().text() for r in range(1, g.rowCount()) if g.itemAtPosition(r, 0)]


def test_add_a_jpeg_degradation_by_its_spec_and_remove_it(qtbot, dock):
    import cv2
    s = dock.model.session
    assert _row_texts(dock) == ["blur", "noise"]
    qtbot.keyClicks(dock.degradation_spec, "jpeg=down,jpeg:20")
    qtbot.mouseClick(dock.add_degradation_button, Qt.MouseButton.LeftButton)
    assert [d.name for d in s.settings.degradations] == ["blur", "noise", "jpeg"]
    assert _row_texts(dock) == ["blur", "noise", "jpeg"]
    assert dock.degradations_grid.itemAtPosition(3, 1).widget().text() == "down,jpeg:20"
    assert dock.degradation_spec.text() == ""
    # the analysis image gets a jpeg input: OpenCV's JPEG (q 20) of the clean 8-bit LR, computed here
    img = s.analysis_images[0]
    assert list(img.lr) == ["blur", "noise", "jpeg"]
    clean = quantize(downsample(img.hr[None] if img.hr.dim() == 3 else img.hr, 2))
    rgb = (clean[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 20])
    want = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255
    got = img.lr["jpeg"].reshape(3, 8, 8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(got, want)
    # the blur σ boxes still drive the paper's two
    blur_box = dock.degradations_grid.itemAtPosition(1, 1).widget()
    blur_box.setValue(1.5)
    assert s.settings.degradations[0].blur_sigma == 1.5 and s.settings.degradations[2].jpeg_quality == 20
    # a bad spec: its message under the field, nothing added
    qtbot.keyClicks(dock.degradation_spec, "x=jpeg:20")
    qtbot.keyClick(dock.degradation_spec, Qt.Key.Key_Return)
    assert dock.degradation_error.isVisible() and "exactly once" in dock.degradation_error.text()
    assert len(s.settings.degradations) == 3
    dock.degradation_spec.clear()
    qtbot.keyClicks(dock.degradation_spec, "noise=down,noise:0.2")
    qtbot.mouseClick(dock.add_degradation_button, Qt.MouseButton.LeftButton)
    assert "already" in dock.degradation_error.text() and len(s.settings.degradations) == 3
    # remove noise with its × button
    remove = dock.findChild(type(dock.add_degradation_button), "removeDegradation_noise")
    qtbot.mouseClick(remove, Qt.MouseButton.LeftButton)
    assert [d.name for d in s.settings.degradations] == ["blur", "jpeg"]
    assert _row_texts(dock) == ["blur", "jpeg"] and list(s.analysis_images[0].lr) == ["blur", "jpeg"]
