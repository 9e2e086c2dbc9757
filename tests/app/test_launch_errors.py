"""Errors at launch and on drops, as the user sees them: every error in one dialog, the valid
parts loaded, an unsupported drop named in the status bar."""
from __future__ import annotations

from argparse import Namespace

from faig_gui.core.imageio import write_image
from qt_events import drop_files
from conftest import smooth_image

import numpy as np


def test_a_bad_baseline_and_a_truncated_image_show_both_errors_and_load_the_target(make_window, tiny_demo,
                                                                                   tmp_path, qtbot):
    from faig_gui.app.launch import open_from_args
    bad = tmp_path / "broken_baseline.pth"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    whole = tmp_path / "whole.png"
    write_image(whole, smooth_image(np.random.default_rng(0), 24, 24))
    cut = tmp_path / "cut_short.png"
    cut.write_bytes(whole.read_bytes()[:60])
    good = tiny_demo.heldout / "blur" / "h0.png"
    w = make_window()
    open_from_args(w, Namespace(session=None, images=[str(cut), str(good)], baseline=str(bad),
                                target=str(tiny_demo.target), arch=None, device="cpu", empty=False,
                                screenshot=None))
    s = w.model.session
    assert s.baseline is None and s.target is not None and str(s.target.path) == str(tiny_demo.target)
    assert [img.name for img in s.images] == ["h0.png"]
    text = w.last_error
    assert text.startswith("2 problems:") and "broken_baseline.pth" in text and "cut_short.png" in text
    assert w._error_box.isVisible()
    assert "target only" in w.model_label.text()
    assert w.prediction_dock.count() == 0   # command-line images are not 'dropped': no calibration at start


def test_dropping_a_text_file_says_so_in_the_status_bar(make_window, tmp_path, qtbot):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    w = make_window()
    event = drop_files(w, [notes])
    assert event.isAccepted()
    qtbot.waitUntil(lambda: "notes.txt" in w.statusBar().currentMessage(), timeout=2000)
    message = w.statusBar().currentMessage()
    assert "not opened" in message and ".pth" in message and ".png" in message and ".faig" in message
    assert w.last_error == "" and not w.model.session.images


def test_the_screenshot_waits_until_nothing_renders_ahead_or_predicts(make_window, tiny_demo, qtbot, tmp_path):
    """--screenshot's grab: with the slider's stops filled in the background (the window's
    default), it comes only once the status bar says 'idle' and every prediction is shown."""
    from faig_gui.app.launch import demo_session
    from faig_gui.app.live import LatestTask
    from faig_gui.app.main_window import settings
    from faig_gui.app.prefetch import FILL_STOPS_KEY
    settings().setValue(FILL_STOPS_KEY, True)
    w = make_window()
    assert w.fill_stops_action.isChecked()
    w.prediction_dock.raise_()   # in view: it predicts the centre image
    w.model.replace_session(demo_session(tiny_demo))
    seen = {}

    def done(ok: bool) -> None:
        seen.update(ok=ok, label=w.activity_label.text(), ahead=w.image_view.rendering_ahead,
                    predicted=w.prediction_dock.current.prediction is not None,
                    tasks=all(t.idle for t in w.findChildren(LatestTask)))

    w.grab_when_idle(tmp_path / "shot.png", done, timeout_s=300)
    qtbot.waitUntil(lambda: "ok" in seen, timeout=310_000)
    assert seen == {"ok": True, "label": "idle", "ahead": False, "predicted": True, "tasks": True}
    assert (tmp_path / "shot.png").stat().st_size > 10_000
