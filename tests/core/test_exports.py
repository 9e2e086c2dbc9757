"""Output names and montages shared by the window and the headless commands."""
from __future__ import annotations

import numpy as np
import pytest

from faig_gui.core.errors import FaigError
from faig_gui.core.exports import montage, output_stems


def test_stems_keep_labels_and_never_collide():
    paths = ["a/blur/x.png", "a/noise/x.png", "b/noise/x.png", "c/y.jpg", "c/x.png"]
    assert output_stems(paths) == ["x", "noise_x", "x_2", "y", "c_x"]
    assert output_stems(["blur/h0.png", "noise/h0.png", "blur/h0.png"], ["blur", "noise", "blur"]) == \
        ["h0_blur", "h0_noise", "blur_h0_blur"]
    assert len(set(output_stems(["d/x.png"] * 5))) == 5
    with pytest.raises(ValueError):
        output_stems(["x.png"], ["a", "b"])


def test_montage_places_each_image_in_its_cell():
    rng = np.random.default_rng(0)
    a, b = rng.random((4, 6, 3)).astype(np.float32), rng.random((8, 8, 3)).astype(np.float32)
    c = rng.random((2, 2, 3)).astype(np.float32)
    m = montage([[a, b], [c]], gap=2, background=0.5)
    # columns 6 and 8 wide, rows 8 and 2 high, 2-pixel gaps around and between
    assert m.shape == (2 + 8 + 2 + 2 + 2, 2 + 6 + 2 + 8 + 2, 3)
    np.testing.assert_array_equal(m[4:8, 2:8], a)          # centred: (8 - 4) // 2 = 2 rows down
    np.testing.assert_array_equal(m[2:10, 10:18], b)
    np.testing.assert_array_equal(m[12:14, 4:6], c)         # (6 - 2) // 2 = 2 columns in
    assert (m[:2] == 0.5).all() and (m[:, :2] == 0.5).all() and (m[12:14, 10:] == 0.5).all()
    with pytest.raises(FaigError):
        montage([])
