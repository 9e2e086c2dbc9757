"""How long the graph, filter-grid and plots docks take to follow the session on a paper-size
MSRResNet (64 features, 16 blocks, x2: 151,936 filters), and how long an RRDBNet x4 pair
(64 features, 23 blocks, growth 32: 1,853,824 filters, 351 conv layers) takes to open as the
coloured folded graph and the importance profile, and a search to select a deep layer.
Prints JSON (milliseconds).

    QT_QPA_PLATFORM=offscreen python bench/bench_docks.py [--rrdbnet-only]
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


def rrdbnet_pair(folder: Path):
    """A random RRDBNet x4 64/23/32 pair (target = baseline + noise) and the registry that reads
    it: the rrdbnet plugin when there is one, else the test suite's RRDB-shaped net (same names)."""
    import torch
    from faig_gui.core.checkpoint import save_checkpoint
    from faig_gui.core.errors import FaigError
    from faig_gui.core.registry import Registry, default_registry
    try:
        arch = default_registry().get("rrdbnet")
        hp = {"num_feat": 64, "num_block": 23, "num_grow_ch": 32, "scale": 4}
        registry = default_registry()
    except FaigError:   # no plugin
        from nested_arch import NestedArchitecture
        arch = NestedArchitecture()
        hp = {"feat": 64, "blocks": 23, "grow": 32}
        registry = Registry([arch])
    torch.manual_seed(0)
    base = arch.new_state_dict(**hp)
    b, t = folder / "rrdb_baseline.pth", folder / "rrdb_target.pth"
    save_checkpoint(b, base)
    save_checkpoint(t, {k: v + 0.01 * torch.randn_like(v) for k, v in base.items()})
    return b, t, registry, arch.name


def torch_load(path: Path) -> dict:
    from faig_gui.core.checkpoint import load_state_dict
    return load_state_dict(path)


def bench_rrdbnet(app) -> dict:
    """Docks in place as in the window; then open the pair with scores: until the folded graph
    is coloured and the profile drawn. Then a search for body.17.rdb2.conv3 (one Enter)."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from faig_gui.app.graph_view import GraphDock
    from faig_gui.app.profile_dock import ProfileDock
    from faig_gui.app.session_model import SessionModel
    from faig_gui.core.session import Session
    from tiny_session import made_up_scores

    with tempfile.TemporaryDirectory() as tmp:
        b, t, registry, arch = rrdbnet_pair(Path(tmp))
        model = SessionModel(Session(registry))
        graph, profile = GraphDock(model), ProfileDock(model)
        for d, size in ((graph, (470, 420)), (profile, (470, 170))):
            d.resize(*size)
            d.show()
        app.processEvents()
        scores = made_up_scores(sum(int(v.shape[0] * v.shape[1]) for v in torch_load(b).values() if v.ndim == 4))
        t0, c0 = time.perf_counter(), time.process_time()
        assert model.load_pair(str(b), str(t))
        t_loaded, c_loaded = time.perf_counter(), time.process_time()
        model.set_scores(scores)
        model.set_top_mask("blur", 1.0)
        app.processEvents()
        t_open, c_open = time.perf_counter(), time.process_time()
    assert graph.items and all(i.state.value is not None for i in graph.items.values()
                               if i.node.kind in ("conv", "block"))
    assert len(profile.weights) == len(model.session.index.layers) and profile.values.sum() > 0
    folded = len(graph.items)
    t1 = time.perf_counter()
    graph.search.setText("body.17.rdb2.conv3")
    QTest.keyClick(graph.search, Qt.Key.Key_Return)
    app.processEvents()
    t_search = time.perf_counter() - t1
    after_search = len(graph.items)
    found = model.selected_layer
    item = next((i for i in graph.items.values() if i.node.weight == found), None)
    on_screen = item is not None and graph.view.viewport().rect().contains(graph.view.mapFromScene(item.scenePos()))
    # the docks' own share of opening, cold (no traced graph kept): trace, fold, lay out, colour, profile
    from faig_gui.core import graph as graph_module
    graph_module._GRAPHS.clear()
    graph_module._TRACED.clear()
    t3, c3 = time.perf_counter(), time.process_time()
    graph._on_models_change()
    profile._on_models_change()
    app.processEvents()
    docks_ms, docks_cpu_ms = 1000 * (time.perf_counter() - t3), 1000 * (time.process_time() - c3)
    t2 = time.perf_counter()
    graph.view.fit()   # (untouched by the search: the fold back to the opening level is timed next)
    graph.fold_all()
    app.processEvents()
    t_fold = time.perf_counter() - t2
    out = {
        "architecture": arch,
        "filters": model.session.index.total,
        "conv_layers": len(model.session.index.layers),
        # load_pair includes the docks' reaction to the new models (trace, fold, layout, profile)
        "load_pair_ms": round(1000 * (t_loaded - t0), 1),
        "load_pair_cpu_ms": round(1000 * (c_loaded - c0), 1),
        "scores_recolour_ms": round(1000 * (t_open - t_loaded), 1),
        "open_to_coloured_folded_graph_and_profile_ms": round(1000 * (t_open - t0), 1),
        "open_to_coloured_folded_graph_and_profile_cpu_ms": round(1000 * (c_open - c0), 1),
        "docks_cold_ms": round(docks_ms, 1),
        "docks_cold_cpu_ms": round(docks_cpu_ms, 1),
        "folded_nodes": folded,
        "search_to_selected_ms": round(1000 * t_search, 1),
        "search_selected": found,
        "search_selected_on_screen": bool(on_screen),
        "nodes_after_search": after_search,
        "fold_back_ms": round(1000 * t_fold, 1),
    }
    for d in (graph, profile):
        d.close()
    return out


def main() -> None:
    import torch
    torch.set_num_threads(1)   # as the other benches: two threads on two shared cores wait for each other
    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication([])
    from faig_gui.app.filter_grid import FilterGridDock
    from faig_gui.app.graph_view import GraphDock
    from faig_gui.app.plots_dock import PlotsDock
    from faig_gui.app.session_model import SessionModel
    from tiny_session import made_up_scores, tiny_pair

    if "--rrdbnet-only" in sys.argv:
        print(json.dumps({"rrdbnet_x4_64_23_32": bench_rrdbnet(app)}, indent=2))
        return
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
    for d in docks:
        d.close()
    report["rrdbnet_x4_64_23_32"] = bench_rrdbnet(app)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
