"""The Prediction panel inside the window: drops anywhere are predicted, the centre image has its
row, verdicts are never cut at the default window size, the bars show the threshold."""
from __future__ import annotations

import shutil

from PySide6.QtGui import QColor

from faig_gui.app.prediction_dock import OWN_PROPORTION
from faig_gui.app.prediction_rows import THRESHOLD
from faig_gui.core.imageio import read_image
from faig_gui.core.prediction.content import calibration_images
from faig_gui.core.prediction import Predictor, PredictorConfig
from qt_events import drop_files


def reference(session) -> Predictor:
    # the dock calibrates on the bundled content and a few analysis images (prediction/content.py)
    return Predictor(session.baseline, session.target, session.scores,
                     calibration_images([i.hr for i in session.analysis_images]),
                     session.settings.degradations, PredictorConfig(proportion=OWN_PROPORTION))


def test_images_dropped_on_the_centre_view_are_predicted_and_the_centre_image_too(demo_window, qtbot, tiny_demo,
                                                                                 tmp_path):
    w = demo_window
    dock = w.prediction_dock
    s = w.model.session
    assert not dock.in_view() and dock.current.prediction is None and dock.idle()   # a hidden tab: no work
    dock.raise_()
    qtbot.waitUntil(lambda: dock.current is not None and dock.current.prediction is not None, timeout=300_000)
    ref = reference(s)
    assert dock.current.path == str(s.current_image().path)
    assert ref.predict(s.current_image().lr).describe() in dock.current_widget.verdict.text()
    files = [tmp_path / "a_noisy.png", tmp_path / "b_blurry.png"]   # images the session does not hold yet
    shutil.copy(tiny_demo.heldout / "noise" / "h1.png", files[0])
    shutil.copy(tiny_demo.heldout / "blur" / "h0.png", files[1])
    assert drop_files(w.image_view, files).isAccepted()      # the centre view, not the panel
    assert [e.path for e in dock.entries] == [str(f) for f in files]
    qtbot.waitUntil(lambda: dock.idle() and all(e.prediction is not None for e in dock.entries), timeout=300_000)
    for row, f in enumerate(files):
        assert ref.predict(read_image(f)).describe() in dock.entry_widget(row).verdict.text()
    # the last dropped image is the centre image now, and its row says the same
    assert dock.current.path == str(files[-1])
    qtbot.waitUntil(lambda: dock.current.prediction is not None, timeout=300_000)
    assert dock.current.prediction.describe() == dock.entries[-1].prediction.describe()


def test_verdicts_wrap_instead_of_being_cut_and_bars_mark_the_threshold(demo_window, qtbot, tiny_demo):
    w = demo_window
    dock = w.prediction_dock
    dock.raise_()
    qtbot.waitUntil(lambda: dock.isVisible() and dock.current is not None and dock.idle(), timeout=300_000)
    row = dock.current_widget
    long = "blur (blur σ ≈ 1.53) + noise (noise σ ≈ 0.0812) and a long note about tiles"
    row.verdict.setText(f"<b>{long}</b>")
    qtbot.waitUntil(lambda: row.verdict.height() >= row.verdict.heightForWidth(row.verdict.width()), timeout=2000)
    # all of the label lies inside the panel's visible width: nothing is cut on the right
    right = row.verdict.mapTo(dock, row.verdict.rect().topRight()).x()
    assert right <= dock.width() and row.verdict.width() > 100
    bar = next(iter(row.bars.values()))
    image = bar.grab().toImage()
    x = round(bar.threshold_x() * image.width() / bar.width())
    assert QColor(image.pixel(x, 1)).lightness() < 100           # the mark, above the track
    track = bar.track()
    assert abs(bar.threshold_x() - (track.left() + THRESHOLD * track.width())) < 1e-9
    assert track.right() < bar.width() - bar.VALUE_W + 1         # the number sits beside the track


def test_a_drop_while_the_panel_is_hidden_is_predicted_and_said_in_the_status_bar(demo_window, qtbot, tiny_demo,
                                                                                  tmp_path):
    w = demo_window
    dock = w.prediction_dock
    assert not dock.in_view()
    path = tmp_path / "dropped.png"
    shutil.copy(tiny_demo.heldout / "noise" / "h0.png", path)
    drop_files(w, [path])                                        # the window, not the panel
    qtbot.waitUntil(lambda: dock.count() == 1 and dock.entries[0].prediction is not None, timeout=300_000)
    verdict = reference(w.model.session).predict(read_image(path)).describe()
    assert dock.entries[0].prediction.describe() == verdict
    qtbot.waitUntil(lambda: f"dropped.png: {verdict}" in w.statusBar().currentMessage(), timeout=5000)
    assert "Prediction panel" in w.statusBar().currentMessage()
