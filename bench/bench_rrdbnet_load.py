"""Opening a real-size RRDBNet pair: ESRGAN/Real-ESRGAN x4, 64 features, 23 RRDBs, growth 32
(1,853,824 filters, 16.7 M parameters, ~67 MB per .pth).

Builds a random pair (target = baseline + 30 % noise per layer, like ``common.make_pair``),
saves both as BasicSR ``.pth`` files to a temporary folder, then times, in this process:
loading the pair through the registry (read, validate, detect, build, load), tracing the
network graph (``graph_for``, what the window shows) and the global filter index (as the
session builds it), and prints the figures as JSON. Each phase repeats ``--repeats`` times with
fresh caches; the median and all runs are printed (wall and process CPU seconds)::

    nice -n 10 .venv/bin/python bench/bench_rrdbnet_load.py --threads 1 --repeats 5
"""
from __future__ import annotations

import argparse
import collections
import functools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import fx, nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import load_average, machine  # noqa: E402
from faig_gui.core import checkpoint as checkpoint_mod  # noqa: E402
from faig_gui.core import graph as graph_mod  # noqa: E402
from faig_gui.core.checkpoint import save_checkpoint  # noqa: E402
from faig_gui.core.filters import FilterIndex  # noqa: E402
from faig_gui.core.registry import default_registry  # noqa: E402

HP = dict(layout="basicsr", num_feat=64, num_block=23, num_grow_ch=32, scale=4)
FILTERS = 1_853_824


def make_pair(folder: Path, seed: int = 0, spread: float = 0.3) -> tuple[Path, Path]:
    torch.manual_seed(seed)
    base = default_registry().get("rrdbnet").new_state_dict(**HP)
    gen = torch.Generator().manual_seed(seed + 1)
    target = {k: v + spread * (v.std() if v.numel() > 1 else 0.01) * torch.randn(v.shape, generator=gen)
              for k, v in base.items()}
    b, t = folder / "baseline.pth", folder / "target.pth"
    save_checkpoint(b, base)
    save_checkpoint(t, target)
    return b, t


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> dict[str, float]:
    return {"wall_s": round(time.perf_counter() - start[0], 3), "cpu_s": round(time.process_time() - start[1], 3)}


def one_run(baseline: Path, target: Path) -> dict:
    graph_mod._GRAPHS.clear()   # graphs are cached per architecture: time a first opening
    graph_mod._TRACED.clear()
    out: dict = {}
    total = _clock()
    t = _clock()
    base, targ = default_registry().load_pair(baseline, target)
    out["load_pair"] = _since(t)
    t = _clock()
    graph = graph_mod.graph_for(targ)
    out["graph"] = _since(t)
    t = _clock()
    index = FilterIndex.of_model(targ)   # as the session does: state-dict order, module layer kinds
    out["filter_index"] = _since(t)
    out["total"] = _since(total)
    assert index.total == FILTERS, index.total
    assert targ.hyperparameters["num_block"] == 23 and targ.scale == 4
    out["graph_nodes"], out["graph_edges"] = len(graph.nodes), len(graph.edges)
    out["graph_convs"] = len(graph.convs())
    return out


def instrument() -> dict[str, float]:
    """Process CPU seconds spent in the parts of a load, summed over calls (no profiler, whose
    per-call overhead would inflate the Python-heavy parts): reading (torch.load with
    weights_only), validating, building the module, copying the weights in, tracing, and
    turning the trace into the graph."""
    spent: dict[str, float] = collections.defaultdict(float)

    def wrap(owner, attr: str, label: str) -> None:
        fn = getattr(owner, attr)

        @functools.wraps(fn)
        def timed(*a, **k):
            t = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                spent[label] += time.process_time() - t
        setattr(owner, attr, timed)

    wrap(torch, "load", "torch.load (weights_only)")
    wrap(checkpoint_mod, "validate_state_dict", "validate")
    wrap(default_registry().get("rrdbnet"), "build_unfilled", "build module")  # what the registry calls
    wrap(nn.Module, "load_state_dict", "copy weights in")
    wrap(fx.Tracer, "trace", "fx trace")
    wrap(graph_mod, "_from_fx", "graph from trace")
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of one run to stderr")
    ap.add_argument("--breakdown", action="store_true",
                    help="also report CPU seconds per part of a run (median run's share: sum / repeats)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    info = machine()  # now: its load average is the one at the start
    with tempfile.TemporaryDirectory() as tmp:
        b, t = make_pair(Path(tmp))
        sizes = {"baseline_bytes": b.stat().st_size, "target_bytes": t.stat().st_size}
        one_run(b, t)  # warm-up: imports, plugin discovery, the page cache
        if args.profile:
            import cProfile
            import pstats
            prof = cProfile.Profile()
            prof.enable()
            one_run(b, t)
            prof.disable()
            pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
        spent = instrument() if args.breakdown else None
        runs = [one_run(b, t) for _ in range(args.repeats)]
    median = {phase: {k: statistics.median(r[phase][k] for r in runs) for k in ("wall_s", "cpu_s")}
              for phase in ("load_pair", "graph", "filter_index", "total")}
    print(json.dumps({"bench": "rrdbnet_load", "machine": info, "model": {**HP, "filters": FILTERS, **sizes},
                      "median": median, "runs": runs, "load_average_end": load_average(),
                      "breakdown_cpu_s_per_run": {k: round(v / args.repeats, 3) for k, v in (spent or {}).items()}},
                     indent=1))


if __name__ == "__main__":
    main()
