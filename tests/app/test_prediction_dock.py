"""The Prediction dock driven through real Qt events: drops (on the panel and anywhere on the window),
clicks, the centre image's row, its own filters or the Masking panel's k, what the bars show."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent
from PySide6.QtWidgets import QApplication

from faig_gui.app.prediction_dock import OWN_PROPORTION, PredictionDock
from faig_gui.app.session_model import SessionModel
from faig_gui.core.imageio import list_images, read_image
from faig_gui.core.prediction.content import calibration_images
from faig_gui.core.prediction import Predictor, PredictorConfig
from faig_gui.core.results import read_scores
from faig_gui.core.session import Session
from qt_events import drop_files as drop
from tolerances import gamma, network_terms


def tiny_model(files) -> SessionModel:
    s = Session()
    s.load_pair(files.baseline, files.target)
    s.set_scores(read_scores(files.scores))
    s.set_analysis_hr({p.name: read_image(p) for p in list_images(files.analysis / "GT")})
    s.set_top_mask("blur", 5.0)
    return SessionModel(s)


@pytest.fixture
def dock(qtbot, qloop, tiny_demo):
    d = PredictionDock(tiny_model(tiny_demo))
    qtbot.addWidget(d)
    d.show()
    yield d
    d.shutdown()




def reference(model: SessionModel, proportion: float) -> Predictor:
    s = model.session
    return Predictor(s.baseline, s.target, s.scores, calibration_images([i.hr for i in s.analysis_images]),
                     s.settings.degradations,
                     PredictorConfig(proportion=proportion))


def test_dropping_two_images_lists_both_with_verdicts(dock, qtbot, tiny_demo):
    files = [tiny_demo.heldout / "blur" / "h0.png", tiny_demo.heldout / "noise" / "h1.png"]
    event = drop(dock, files)
    assert event.isAccepted()
    assert dock.count() == 2
    with qtbot.waitSignal(dock.predictionsChanged, timeout=300_000):
        pass
    qtbot.waitUntil(lambda: all(e.prediction is not None for e in dock.entries), timeout=300_000)
    ref = reference(dock.model, OWN_PROPORTION)   # its own filters, not the session's 5 % mask
    for row, path in enumerate(files):
        expected = ref.predict(read_image(path))
        widget = dock.entry_widget(row)
        assert path.name in widget.title.text()
        assert expected.describe() in widget.verdict.text()
        assert set(expected.labels) <= {"blur", "noise"}
        for d, bar in widget.bars.items():
            assert bar.value() == round(100 * expected.scores[d])
            assert bar.text() == f"{expected.scores[d]:.2f}"
        assert not widget.thumb.pixmap().isNull()


def test_a_dropped_file_that_is_no_image_is_refused(dock, tiny_demo):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tiny_demo.target))])
    enter = QDragEnterEvent(dock.rect().center(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(dock, enter)
    assert not enter.isAccepted()
    assert dock.count() == 0


def test_an_unreadable_image_is_reported_and_the_others_are_kept(dock, qtbot, tiny_demo, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    errors = []
    dock.model.errorOccurred.connect(errors.append)
    drop(dock, [bad, tiny_demo.heldout / "noise" / "h0.png"])
    assert dock.count() == 1 and errors and "broken.png" in errors[0]


def test_the_masking_k_is_used_only_when_ticked(dock, qtbot, tiny_demo):
    path = tiny_demo.heldout / "blur" / "h1.png"
    drop(dock, [path])
    qtbot.waitUntil(lambda: dock.entries[0].prediction is not None, timeout=300_000)
    first = dock.entries[0].prediction
    assert f"its own, the top {OWN_PROPORTION:g} %" in dock.status.text()
    dock.model.set_top_mask("blur", 20.0)            # sliding k to look at masks: same verdict
    assert dock.entries[0].prediction is first and dock.task.idle
    with qtbot.waitSignal(dock.predictionsChanged, timeout=300_000):
        qtbot.mouseClick(dock.use_masking_k, Qt.MouseButton.LeftButton, pos=dock.use_masking_k.rect().center())
    assert dock.use_masking_k.isChecked()
    qtbot.waitUntil(lambda: dock.entries[0].prediction is not None, timeout=300_000)
    second = dock.entries[0].prediction
    assert second is not first
    expected = reference(dock.model, 20.0).predict(read_image(path))
    # the same float32 evidence computed again, maybe on another thread count: responses and
    # effects square float32 forwards (2γ_n each side), their logs and ratios move by as much
    tol = 4 * gamma(network_terms(dock.model.session.target.module))
    for kind, values in expected.evidence.items():
        for d, v in values.items():
            assert second.evidence[kind][d] == pytest.approx(v, rel=tol, abs=tol)
    assert second.evidence != first.evidence   # other filters, other evidence
    assert "the Masking panel's, the top 20 %" in dock.status.text()


def test_clicking_an_entry_makes_it_the_current_image(dock, qtbot, tiny_demo):
    files = [tiny_demo.heldout / "GT" / "h0.png", tiny_demo.heldout / "noise" / "h1.png"]
    s = dock.model.session
    dock.model.add_images([str(files[0])])        # the first is already a session image: it gets a row
    assert dock.count() == 1 and dock.entries[0].path == str(files[0])
    drop(dock, files)                             # listed once each
    assert dock.count() == 2
    seen = []
    dock.model.currentImageChanged.connect(seen.append)

    def click(row):
        widget = dock.entry_widget(row)
        dock.scroll_area.ensureWidgetVisible(widget)
        qtbot.mouseClick(widget, Qt.MouseButton.LeftButton, pos=widget.rect().center())

    click(1)   # not yet in the session: added and made current
    assert len(s.images) == 2 and s.current == 1 and seen == [1]
    assert s.current_image().path == str(files[1])
    np.testing.assert_array_equal(s.current_image().lr, read_image(files[1]))
    click(0)   # already there: made current, not added again
    assert len(s.images) == 2 and s.current == 0 and seen == [1, 0]
    click(1)
    assert len(s.images) == 2 and s.current == 1


def test_without_analysis_images_the_dock_says_what_is_missing(qtbot, qloop, tiny_demo):
    s = Session()
    s.load_pair(tiny_demo.baseline, tiny_demo.target)
    s.set_scores(read_scores(tiny_demo.scores))
    d = PredictionDock(SessionModel(s))
    qtbot.addWidget(d)
    try:
        drop(d, [tiny_demo.heldout / "noise" / "h0.png"])
        assert d.count() == 1
        assert "analysis images" in d.status.text()
        assert d.entries[0].prediction is None and d.task.idle
    finally:
        d.shutdown()


def test_the_status_says_whether_the_calibration_was_computed_or_loaded(qtbot, qloop, tiny_demo, tmp_path,
                                                                        monkeypatch):
    """The first dock computes the calibration and says how long it took; a fresh process (the
    in-memory cache emptied) finds it on disk and says so."""
    from faig_gui.core.prediction import predictor as prediction   # the module that holds the memory cache
    monkeypatch.setenv("FAIG_GUI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(prediction, "_CALIBRATIONS", {})
    texts = []
    for _ in range(2):
        prediction._CALIBRATIONS.clear()
        d = PredictionDock(tiny_model(tiny_demo))
        qtbot.addWidget(d)
        d.show()
        try:
            drop(d, [tiny_demo.heldout / "blur" / "h0.png"])
            qtbot.waitUntil(lambda d=d: d.entries and d.entries[0].prediction is not None and d.task.idle,
                            timeout=300_000)
            texts.append(d.status.text())
        finally:
            d.shutdown()
    assert "calibrated on" in texts[0] and " s)" in texts[0] and "cache" not in texts[0]
    assert "loaded from the cache" in texts[1]
    assert any((tmp_path / "cache").rglob("*.npz"))
