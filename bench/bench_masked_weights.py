"""The masked weights a mask change needs, on RRDBNet x4 64/23/32 (1,853,824 filters, 16.7 M
conv weights): made from scratch (``masked_state_dict``, what every change cost before) against
made from the last change's weights (``masked_state_dict_from``, what the window's render does
now: only the layers whose masked filters changed are copied).

A pair with random weights (the target = the baseline plus a small perturbation; the time does not
depend on the values), ranked by |θ − θ̄|. Changes, each from the one before, as a researcher makes
them: one filter toggled on and off by hand in the top 1 % mask (one layer, the last body conv and
the first), then the top-k slider 1 → 2 → 3 → 5 → 10 → 1 %. Median and best wall ms over
``--repeats``, one torch thread, and how many layers each change made again; glibc's allocator
set as ``faig-gui`` sets it at start (core/allocator.py), unless ``--glibc-defaults``.

    .venv/bin/python bench/bench_masked_weights.py [--repeats 7] [--glibc-defaults]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from faig_gui.core.attribution import abs_change  # noqa: E402
from faig_gui.core.filters import FilterIndex  # noqa: E402
from faig_gui.core.masking import FilterMask, masked_state_dict, masked_state_dict_from  # noqa: E402
from faig_gui.core.registry import default_registry  # noqa: E402


def top(scores: np.ndarray, percent: float) -> np.ndarray:
    k = max(1, int(round(scores.size * percent / 100)))
    return np.sort(np.argsort(-scores, kind="stable")[:k])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--glibc-defaults", action="store_true", help="leave glibc's allocator thresholds as they are")
    args = p.parse_args()
    from faig_gui.core.allocator import keep_freed_memory
    allocator_tuned = False if args.glibc_defaults else keep_freed_memory()   # as faig-gui does at start
    torch.set_num_threads(1)
    torch.manual_seed(0)
    base = default_registry().get("rrdbnet").new_state_dict(num_feat=64, num_block=23, num_grow_ch=32, scale=4)
    targ = {k: v + 0.05 * v.std() * torch.randn_like(v) if v.is_floating_point() and v.numel() > 1 else v
            for k, v in base.items()}
    index = FilterIndex.from_state_dict(targ)
    scores = abs_change(base, targ, index)
    one = top(scores, 1)
    last_body = next(layer for layer in reversed(index.layers) if layer.name.startswith("body."))
    toggled = next(g for g in range(last_body.offset, last_body.offset + last_body.count) if g not in set(one.tolist()))
    first_layer = index.layers[0]
    first_off = next(int(g) for g in one if first_layer.offset <= g < first_layer.offset + first_layer.count)
    changes = [("toggle one filter on (last body conv)", FilterMask(one), FilterMask(np.append(one, toggled))),
               ("toggle it off again", FilterMask(np.append(one, toggled)), FilterMask(one)),
               ("toggle one filter off (first conv)", FilterMask(one), FilterMask(one[one != first_off]))]
    steps = [1, 2, 3, 5, 10, 1]
    for a, b in zip(steps, steps[1:]):
        changes.append((f"top-k {a} % -> {b} %", FilterMask(top(scores, a)), FilterMask(top(scores, b))))
    out = {"machine": common.machine(), "network": "RRDBNet x4 64/23/32", "filters": index.total,
           "conv_weights": sum(targ[layer.name].numel() for layer in index.layers), "repeats": args.repeats,
           "allocator_tuned": allocator_tuned, "changes": []}
    for label, before, after in changes:
        previous = (before, masked_state_dict(targ, base, before, index))
        full, inc = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            masked_state_dict(targ, base, after, index)
            full.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            got = masked_state_dict_from(previous, targ, base, after, index)
            inc.append(time.perf_counter() - t0)
        remade = sum(got[layer.name] is not previous[1][layer.name] for layer in index.layers)
        out["changes"].append({"change": label, "masked_filters": len(after), "layers_remade": remade,
                               "from_scratch_ms_median": round(1000 * statistics.median(full), 2),
                               "from_scratch_ms_best": round(1000 * min(full), 2),
                               "from_last_ms_median": round(1000 * statistics.median(inc), 2),
                               "from_last_ms_best": round(1000 * min(inc), 2)})
    out["load_average_end"] = common.load_average()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
