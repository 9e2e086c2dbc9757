"""File > Open scores… takes the FAIG authors' ranked lists (``<degradation>_index.txt``) as well as
scores.npz (issue 15): driven through the menu's action with the file dialog answered."""
from __future__ import annotations

import numpy as np
import torch

from faig_gui.app import main_window as main_window_module
from faig_gui.core.registry import default_registry
from tolerances import forward_atol


def answer_open_dialog(monkeypatch, path) -> list[str]:
    """The next 'open file' dialogs return ``path``; the list collects their titles."""
    asked: list[str] = []

    def fake(_parent, title, *_args, **_kw):
        asked.append(title)
        return str(path), ""

    monkeypatch.setattr(main_window_module.QFileDialog, "getOpenFileName", staticmethod(fake))
    return asked


def file_menu_action(window, text: str):
    menu = window.menuBar().actions()[0].menu()
    return next(a for a in menu.actions() if a.text() == text)


def masked_forward(target, baseline, indices, lr_hwc) -> np.ndarray:
    """The target with the listed filters' kernels put back to the baseline's, numbered here by
    walking the 4-D weights in state-dict order (o-major, then i)."""
    where = [(name, o, i) for name, w in target.items() if name.endswith("weight") and w.ndim == 4
             for o in range(w.shape[0]) for i in range(w.shape[1])]
    sd = {k: v.clone() for k, v in target.items()}
    for g in indices:
        name, o, i = where[int(g)]
        sd[name][o, i] = baseline[name][o, i]
    model = default_registry().model_from_state_dict(sd)
    x = torch.from_numpy(np.ascontiguousarray(lr_hwc.transpose(2, 0, 1)))[None].float()
    with torch.no_grad():
        return model.module(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()


def test_opening_an_index_file_ranks_masks_and_exports_as_the_list_says(demo_window, qtbot, monkeypatch, tmp_path):
    w = demo_window
    s = w.model.session
    total = s.index.total
    noise_before = s.scores["noise"].copy()
    order = np.random.default_rng(3).permutation(total)   # unlike the demo's blur ranking
    listed = tmp_path / "blur_index.txt"
    np.savetxt(listed, order, delimiter=",", fmt="%d")     # as the authors' scripts write it
    asked = answer_open_dialog(monkeypatch, listed)
    action = file_menu_action(w, "Open &scores…")
    assert action.isEnabled()
    with qtbot.waitSignal(w.image_view.rendered, timeout=20000):
        action.trigger()
    qtbot.waitUntil(lambda: w.image_view.live.idle, timeout=20000)
    assert len(asked) == 1
    assert "blur_index.txt" in w.statusBar().currentMessage()
    # the list's order is the blur ranking now; noise's scores stay as they were
    assert sorted(range(total), key=lambda k: (-s.scores["blur"][k], k)) == order.tolist()
    np.testing.assert_array_equal(s.scores["noise"], noise_before)
    # the 1 % blur mask is the list's first 1 %, and the masked output on screen is theirs
    k = int(total * s.mask_settings.proportion / 100)
    assert s.mask_settings.degradation == "blur" and k > 0
    assert sorted(s.mask.indices.tolist()) == sorted(order[:k].tolist())
    qtbot.waitUntil(lambda: f"<b>{k:,}</b> of {total:,} filters masked" in w.masking_dock.summary.text(),
                    timeout=2000)
    ref = masked_forward(s.target.state_dict, s.baseline.state_dict, order[:k], s.current_image().lr)
    # float32 forward in another order: γ_n of the net's chain of convolutions (tests/tolerances.py)
    np.testing.assert_allclose(w.image_view.result.masked, ref, atol=forward_atol(s.target.module))
    # exporting the ranked lists gives the authors' file back, byte for byte
    out = tmp_path / "export"
    w.export_ranked_lists(out)
    assert (out / "blur_index.txt").read_bytes() == listed.read_bytes()


def test_an_index_file_for_another_model_is_refused_and_nothing_changes(demo_window, qtbot, monkeypatch, tmp_path):
    w = demo_window
    s = w.model.session
    before = {d: v.copy() for d, v in s.scores.items()}
    mask_before = s.mask.indices.copy()
    wrong = tmp_path / "blur_index.txt"
    np.savetxt(wrong, np.arange(s.index.total + 5)[::-1], fmt="%d")
    answer_open_dialog(monkeypatch, wrong)
    file_menu_action(w, "Open &scores…").trigger()
    qtbot.waitUntil(lambda: "blur_index.txt" in w.last_error, timeout=2000)
    assert f"the model has {s.index.total}" in w.last_error
    assert set(s.scores) == set(before)
    for d, v in before.items():
        np.testing.assert_array_equal(s.scores[d], v)
    np.testing.assert_array_equal(s.mask.indices, mask_before)


def test_dropping_two_ranked_lists_on_the_window_opens_both(demo_window, qtbot, tmp_path):
    from qt_events import drop_files
    w = demo_window
    s = w.model.session
    total = s.index.total
    orders = {d: np.random.default_rng(n).permutation(total) for n, d in enumerate(("blur", "noise"))}
    files = []
    for d, order in orders.items():
        files.append(tmp_path / f"{d}_index.txt")
        np.savetxt(files[-1], order, fmt="%d")
    drop_files(w.image_view, files)
    qtbot.waitUntil(lambda: all(
        sorted(range(total), key=lambda k: (-s.scores[d][k], k)) == orders[d].tolist() for d in orders), timeout=5000)
    assert "not opened" not in w.statusBar().currentMessage()
    qtbot.waitUntil(lambda: w.image_view.live.idle, timeout=20000)
