"""A tiny session with three degradations (blur, noise, JPEG) in the window's docks: the
masking dock offers each, the plots dock counts each one's top filters, shows the overlap of
every pair (against a literal count) and, after 'Compute', the 3 x 3 selectivity matrix; the
overlap exports as JSON; the session saves and reopens with its three degradations."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import Qt

from faig_gui.app.masking_dock import MaskingDock
from faig_gui.app.plots_dock import PlotsDock
from faig_gui.core.degradations import parse_degradation
from faig_gui.core.session import Session
from test_plots_dock import _effect_by_hand, _effect_tol_by_hand
from tiny_session import loaded_model

NAMES = ["blur", "noise", "jpeg"]


def _three_scores(total: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    ramp = np.linspace(1.0, 0.0, total)
    return {"blur": ramp + 0.5 * rng.random(total), "noise": ramp[::-1] + 0.5 * rng.random(total),
            "jpeg": ramp + 0.8 * rng.random(total)}


def three_degradation_model(qtbot, tmp_path):
    """The tiny pair with blur, noise and JPEG q 30, and made-up scores for the three."""
    m = loaded_model(qtbot, tmp_path, scores=False, spread=0.3)
    m.set_settings(replace(m.session.settings, degradations=[parse_degradation(s) for s in
                                                            ("blur", "noise", "jpeg=down,jpeg:30")]))
    m.set_scores(_three_scores(m.session.index.total))
    return m


@pytest.fixture
def model(qtbot, tmp_path):
    return three_degradation_model(qtbot, tmp_path)


def _shared_by_hand(model, proportion):
    """Top sets by a slow sort, their pairwise intersections, each filter's layer by walking weights."""
    s = model.session
    n = s.index.total
    k = int(n * proportion / 100)
    tops = {d: set(sorted(range(n), key=lambda i: (-s.scores[d][i], i))[:k]) for d in NAMES}
    spans, start = [], 0
    for key, value in s.target.state_dict.items():
        if value.ndim == 4:
            spans.append((key, start, start + value.shape[0] * value.shape[1]))
            start += value.shape[0] * value.shape[1]
    out = {}
    for a, b in (("blur", "noise"), ("blur", "jpeg"), ("noise", "jpeg")):
        both = tops[a] & tops[b]
        per = {key: sum(lo <= f < hi for f in both) for key, lo, hi in spans}
        out[(a, b)] = (len(both), {key: c for key, c in per.items() if c})
    return out


def test_docks_handle_three_degradations(qtbot, model, tmp_path):
    masking = MaskingDock(model)
    qtbot.addWidget(masking)
    assert [masking.degradation.itemText(i) for i in range(masking.degradation.count())] == NAMES
    masking.degradation.setCurrentText("jpeg")
    assert model.degradation == "jpeg"

    plots = PlotsDock(model)
    qtbot.addWidget(plots)
    plots.resize(560, 480)
    plots.show()
    qtbot.waitExposed(plots)
    try:
        plots.distribution.k_box.setCurrentIndex(plots.distribution.k_box.findData(10.0))
        assert list(plots.distribution.bars) == NAMES
        plots.tabs.setCurrentWidget(plots.overlap)
        table = plots.overlap.pairs
        want = _shared_by_hand(model, 10.0)
        assert table.rowCount() == 3
        for r, ((a, b), (n, per)) in enumerate(want.items()):
            assert table.item(r, 0).text() == f"{a} & {b}" and table.item(r, 1).text() == str(n)
            for key, c in per.items():
                assert f"{key.replace('.weight', '')} {c}" in table.item(r, 3).text()
        # the 3 x 3 matrix after Compute (FAIG only), one cell checked by a hand-masked net
        model.session.set_analysis_hr({"r.png": np.random.default_rng(5).random((24, 24, 3)).astype(np.float32)})
        for m, box in plots.effects.checks.items():
            box.setChecked(m == "faig")
        plots.tabs.setCurrentWidget(plots.effects)
        qtbot.mouseClick(plots.effects.compute_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not plots.running, timeout=120000)
        assert plots.result is not None and list(plots.result.degradations) == NAMES
        assert set(plots.effects.plots) == set(NAMES)
        matrix = plots.overlap.matrix
        assert (matrix.rowCount(), matrix.columnCount()) == (3, 3)
        assert [matrix.verticalHeaderItem(i).text() for i in range(3)] == [f"mask {d}" for d in NAMES]
        img = model.session.analysis_images[0]
        expected = _effect_by_hand(model, model.session.scores["jpeg"], 1.0, img.lr["blur"])
        tol = _effect_tol_by_hand(model, img.lr["blur"])  # float32 forwards in other orders
        assert expected > 10 * tol
        shown = float(matrix.item(2, 0).text())
        assert shown == pytest.approx(expected, rel=2e-3, abs=tol)   # shown with 3 significant digits
        # export: the overlap as evaluate writes it, and the matrix
        plots.overlap.export(tmp_path / "overlap.json")
        data = json.loads((tmp_path / "overlap.json").read_text())
        assert [(p["a"], p["b"], p["shared"]) for p in data["overlap"]["pairs"]] == \
            [(a, b, n) for (a, b), (n, _) in want.items()]
        assert data["selectivity_matrix"]["effects"]["jpeg"]["blur"] == \
            pytest.approx(plots.result.effect("faig", 1.0, "jpeg", "blur"))
    finally:
        plots.shutdown()
    # sessions keep the three degradations and their scores
    model.session.save(tmp_path / "three.faig")
    again = Session.open(tmp_path / "three.faig")
    assert [d.spec() for d in again.settings.degradations] == [d.spec() for d in model.session.settings.degradations]
    assert list(again.scores) == NAMES
