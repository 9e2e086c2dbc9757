"""SessionModel signals: views learn about every change of the current image."""
from pathlib import Path

import numpy as np

from faig_gui.app.session_model import SessionModel
from faig_gui.core.imageio import write_image


def test_first_image_added_to_an_empty_session_is_announced_as_current(qtbot, tmp_path: Path):
    path = tmp_path / "a.png"
    write_image(path, np.full((8, 8, 3), 0.5, dtype=np.float32))
    model = SessionModel()
    assert model.session.current == -1
    with qtbot.waitSignal(model.currentImageChanged, timeout=1000) as blocker:
        assert model.add_images([str(path)]) == 1
    assert blocker.args == [0]
    assert model.session.current_image().name == "a.png"
