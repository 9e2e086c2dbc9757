"""The released sizes of the EDSR, RCAN and SRVGGNetCompact plugins: filter counts (exact), and
how long opening a checkpoint (read .safetensors, detect, infer, build, load) and one forward of
a 64 x 64 LR image take on this machine. Random weights in the published layouts, so no
download is needed; prints JSON::

    nice -n 10 .venv/bin/python bench/bench_plugins.py --threads 1 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import load_average, machine  # noqa: E402
from faig_gui.core.checkpoint import save_checkpoint  # noqa: E402
from faig_gui.core.filters import FilterIndex  # noqa: E402
from faig_gui.core.registry import default_registry  # noqa: E402

# the released models' configurations (their papers' and repositories' model zoos)
CONFIGS = {
    "realesr-general-x4v3 (SRVGG)": ("srvgg", {"num_feat": 64, "num_conv": 32, "scale": 4}),
    "realesr-animevideov3 (SRVGG)": ("srvgg", {"num_feat": 64, "num_conv": 16, "scale": 4}),
    "EDSR baseline x2 (EDSR-PyTorch)": ("edsr", {"num_feat": 64, "num_block": 16, "scale": 2, "layout": "original"}),
    "EDSR x4 (EDSR-PyTorch, 256/32)": ("edsr", {"num_feat": 256, "num_block": 32, "scale": 4, "layout": "original"}),
    "EDSR_Mx2 (BasicSR)": ("edsr", {"num_feat": 64, "num_block": 16, "scale": 2}),
    "RCAN x4 (BasicSR, 10 groups x 20 blocks)": ("rcan", {"num_feat": 64, "num_group": 10, "num_block": 20,
                                                           "squeeze_factor": 16, "scale": 4}),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--lr-size", type=int, default=64)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    reg = default_registry()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, (arch, hp) in CONFIGS.items():
            sd = reg.get(arch).new_state_dict(**hp)
            path = Path(tmp) / f"{arch}.safetensors"
            save_checkpoint(path, sd)
            loads, forwards = [], []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                model = reg.load_model(path)
                loads.append(time.perf_counter() - t0)
                x = torch.rand(1, 3, args.lr_size, args.lr_size)
                with torch.inference_mode():
                    t0 = time.perf_counter()
                    model.module(x)
                    forwards.append(time.perf_counter() - t0)
            assert model.arch_name == arch and model.hyperparameters.items() >= {
                k: v for k, v in hp.items()}.items(), (label, model.hyperparameters)
            index = FilterIndex.of_model(model)
            rows.append({"model": label, "arch": arch, "hyperparameters": model.hyperparameters,
                         "filters": index.total, "conv_layers": len(index.layers),
                         "parameters": sum(v.numel() for v in sd.values()),
                         "load_s_median": statistics.median(loads), "load_s": loads,
                         "forward_s_median": statistics.median(forwards), "forward_s": forwards})
            path.unlink()
    print(json.dumps({"machine": machine(), "load_average": load_average(), "threads": args.threads,
                      "lr_size": args.lr_size, "models": rows}, indent=1))


if __name__ == "__main__":
    main()
