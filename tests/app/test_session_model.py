"""SessionModel signals: views learn about every change of the current image."""
from pathlib import Path

import numpy as np
import pytest

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


# -- failures are told apart from procedures that return None (issue 15, review) ---------------

def test_scores_of_the_wrong_length_report_one_error_and_change_nothing(qtbot, tmp_path: Path):
    from tiny_session import loaded_model
    model = loaded_model(qtbot, tmp_path)
    before = {k: v.copy() for k, v in model.session.scores.items()}
    total = model.session.index.total
    errors, changed = [], []
    model.errorOccurred.connect(errors.append)
    model.scoresChanged.connect(lambda: changed.append(True))
    # the same degradation names, one filter short: set_scores used to compare these with the
    # session's scores after the error and raised numpy's broadcast error
    model.set_scores({"blur": np.zeros(total - 1), "noise": np.zeros(total - 1)})
    assert len(errors) == 1 and f"the model has {total}" in errors[0]
    assert changed == []
    assert set(model.session.scores) == set(before)
    for k, v in before.items():
        np.testing.assert_array_equal(model.session.scores[k], v)


def test_reloading_the_same_paths_after_the_files_broke_reports_failure(qtbot, tmp_path: Path):
    from tiny_session import loaded_model
    model = loaded_model(qtbot, tmp_path, scores=False)
    b, t = str(model.session.baseline.path), str(model.session.target.path)
    Path(t).write_bytes(b"not a checkpoint")
    errors, changed = [], []
    model.errorOccurred.connect(errors.append)
    model.modelsChanged.connect(lambda: changed.append(True))
    assert model.load_pair(b, t) is False   # the same paths as the models loaded now
    assert len(errors) == 1 and "target.pth" in errors[0]
    assert changed == []


def test_attempt_tells_success_from_failure_whatever_the_function_returns(qtbot):
    from faig_gui.core.errors import FaigError
    model = SessionModel()
    errors = []
    model.errorOccurred.connect(errors.append)

    def fail():
        raise FaigError("no such file")

    assert model.attempt(lambda: None) is True
    assert model.attempt(fail) is False
    assert errors == ["no such file"]
    # guarded is for computing a value: a None result would read as a failure, so it is refused
    with pytest.raises(TypeError):
        model.guarded(lambda: None)
    assert model.guarded(lambda: []) == []
    assert model.guarded(fail) is None and errors[-1] == "no such file"
