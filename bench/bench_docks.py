"""How long the graph, filter-grid and plots docks take to follow the session on a paper-size
MSRResNet (64 features, 16 blocks, x2: 151,936 filters). Prints JSON (milliseconds).

    QT_QPA_PLATFORM=offscreen python bench/bench_docks.py
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "app")]


def main() -> None:
    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication([])
    from faig_gui.app.filter_grid import FilterGridDock
    from faig_gui.app.graph_view import GraphDock
    from faig_gui.app.plots_dock import PlotsDock
    from faig_gui.app.session_model import SessionModel
    from tiny_session import made_up_scores, tiny_pair

    with tempfile.TemporaryDirectory() as tmp:
        model = SessionModel()
        b, t = tiny_pair(Path(tmp), num_feat=64, num_block=16, spread=0.05)
        model.load_pair(str(b), str(t))
    docks = [GraphDock(model), FilterGridDock(model), PlotsDock(model)]
    for d in docks:
        d.resize(500, 500)
        d.show()
    model.set_scores(made_up_scores(model.session.index.total))
    model.set_top_mask("blur", 1)
    model.select_layer("body.0.conv1.weight")
    app.processEvents()

    def timed(fn, repeat):
        out = []
        for n in range(repeat):
            t0 = time.perf_counter()
            fn(n)
            app.processEvents()
            out.append(1000 * (time.perf_counter() - t0))
        return {"median_ms": round(float(np.median(out)), 1), "max_ms": round(float(max(out)), 1)}

    off = model.session.index.layer("body.0.conv1.weight").offset
    t0 = time.perf_counter()
    docks[0]._on_models_change()
    report = {
        "filters": model.session.index.total,
        "graph_rebuild_ms": round(1000 * (time.perf_counter() - t0), 1),
        "toggle_one_filter_all_docks": timed(lambda n: model.toggle_filters([off + n]), 20),
        "top_k_change_all_docks": timed(lambda n: model.set_top_mask("blur", 2 + n), 5),
        "graph_refresh": timed(lambda n: docks[0].refresh(), 5),
        "grid_mask_overlay": timed(lambda n: docks[1]._on_mask_change(), 5),
    }
    print(json.dumps(report, indent=2))
    for d in docks:
        d.close()


if __name__ == "__main__":
    main()
