"""One command for a CUDA machine: does faig-gui compute the same on the GPU, how fast, and does
the memory budget hold. Writes one JSON file (and prints it).

    python bench/gpu_check.py [--device cuda] [--out gpu_check.json] [--budget-s 270]
    python bench/gpu_check.py --device cpu --tiny --out check.json      # the tests' CPU run

Sections (each one's seconds are in the JSON; a section that would start after --budget-s is
skipped and listed, so the whole stays under 5 minutes on one H100):
1. ``agreement``: FAIG scores (blur, noise; one image; Riemann, fp32, TF32 off) on --device
   against the CPU computing one path step at a time: max deviation relative to the largest
   score, and the overlap of the top-1 % sets. (On --device cpu the comparison is vmapped
   chunks against single steps: the same check of the batching, with no GPU.)
2. ``timing``: one attribution (one image, one degradation) paper-exact (Riemann, --steps, fp32)
   and Gauss-Legendre (--gl nodes) on MSRResNet 64/16 x2 and RRDBNet 64/23 x4 (when
   plugins/rrdbnet.py imports), then bf16 and TF32 paper-exact, each with its top-1 % overlap
   with fp32's attribution.
3. ``memory``: FAIG under a memory budget (--budget-gb): the allocator's peak above what was
   allocated before, against the budget (CUDA only: the CPU has no peak counter to read).
4. ``interactive``: a mask change (top 1 % masked to the baseline) to the masked output of a
   --view-size LR image, and one prediction of a dropped image (after its calibration), medians.
--tiny shrinks everything (8-feature nets, 8x8 LR, 4 steps) so that it runs in seconds on a CPU.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from faig_gui.core.attribution import PathOptions, faig_attribution  # noqa: E402
from faig_gui.core.checkpoint import save_checkpoint  # noqa: E402
from faig_gui.core.dataset import make_degraded  # noqa: E402
from faig_gui.core.degradations import paper_degradations  # noqa: E402
from faig_gui.core.device import configure_precision, resolve_device  # noqa: E402
from faig_gui.core.filters import FilterIndex, top_indices  # noqa: E402
from faig_gui.core.inference import super_resolve  # noqa: E402
from faig_gui.core.masking import FilterMask, masked_state_dict  # noqa: E402
from faig_gui.core.paths import gauss_legendre, riemann_left  # noqa: E402
from faig_gui.core.registry import default_registry  # noqa: E402


def top_overlap(a: np.ndarray, b: np.ndarray, share: float = 0.01) -> float:
    k = max(1, int(round(share * a.size)))
    return len(set(np.argsort(-a, kind="stable")[:k]) & set(np.argsort(-b, kind="stable")[:k])) / k


def max_rel_dev(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def make_pair(folder: Path, arch: str, spread: float = 0.3, **hp):
    """A seeded baseline and a target 30 % of each layer's weight spread away from it, loaded
    through the registry as a user's checkpoints would be."""
    torch.manual_seed(0)
    base = default_registry().get(arch).new_state_dict(**hp)
    gen = torch.Generator().manual_seed(1)
    target = {k: v + spread * (v.std() if v.numel() > 1 else 0.01) * torch.randn(v.shape, generator=gen)
              for k, v in base.items()}
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "baseline.pth", base)
    save_checkpoint(folder / "target.pth", target)
    return default_registry().load_pair(folder / "baseline.pth", folder / "target.pth", arch)


def test_image(scale: int, lr: int, seed: int = 0):
    """One HR image (smooth content with texture) of LR side ``lr``, with blur and noise."""
    rng = np.random.default_rng(seed)
    side = lr * scale
    yy, xx = np.mgrid[0:side, 0:side]
    img = 0.5 + 0.3 * np.sin(xx / 5.0)[..., None] * np.cos(yy / 7.0)[..., None] * np.array([1, 0.7, 0.4])
    img = np.clip(img + 0.05 * rng.standard_normal(img.shape), 0, 1).astype(np.float32)
    return make_degraded({f"test{seed}": img}, scale, paper_degradations(), seed)[0]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def attribution(pair, img, d: str, device, rule, precision="fp32", chunk=None, budget=None) -> tuple[np.ndarray, float]:
    baseline, target = pair
    options = PathOptions(rule, device, chunk, budget, precision)
    sync(device)
    t0 = time.perf_counter()
    a = faig_attribution(target.module, baseline.state_dict, target.state_dict, img.lr[d], img.hr,
                         FilterIndex.from_state_dict(target.state_dict), options)
    return a, time.perf_counter() - t0


def agreement(pair, img, device, steps: int) -> dict:
    out = {}
    for d in ("blur", "noise"):
        ref, _ = attribution(pair, img, d, torch.device("cpu"), riemann_left(steps), chunk=1)
        got, _ = attribution(pair, img, d, device, riemann_left(steps))
        out[d] = {"max_rel_dev": max_rel_dev(got, ref), "top1_overlap": top_overlap(got, ref)}
    # ok: within the kink allowance of tests/tolerances.py (3x the 3e-4 measured across CPUs)
    # and the same top-1 % sets, as the issue asks of a GPU run
    ok = all(v["max_rel_dev"] <= 1e-3 and v["top1_overlap"] == 1.0 for v in out.values())
    return {"per_degradation": out, "ok": ok, "steps": steps, "reference": "CPU, one path step at a time"}


def timing(pair, img, device, steps: int, gl: int) -> dict:
    attribution(pair, img, "blur", device, riemann_left(2))              # warm-up: kernels, allocator
    fp32, t_fp32 = attribution(pair, img, "blur", device, riemann_left(steps))
    res = {"paper_exact_s": t_fp32, "paper_exact_ms_per_step": 1e3 * t_fp32 / steps}
    glv, t_gl = attribution(pair, img, "blur", device, gauss_legendre(gl))
    res.update(gauss_legendre_s=t_gl, gauss_legendre_nodes=gl, gauss_legendre_top1_overlap=top_overlap(glv, fp32))
    attribution(pair, img, "blur", device, riemann_left(2), "bf16")       # warm-up of the bf16 kernels
    bf, t_bf = attribution(pair, img, "blur", device, riemann_left(steps), "bf16")
    res.update(bf16_s=t_bf, bf16_speedup=t_fp32 / t_bf, bf16_top1_overlap=top_overlap(bf, fp32),
               bf16_max_rel_dev=max_rel_dev(bf, fp32))
    if device.type == "cuda":
        configure_precision(allow_tf32=True)
        try:
            attribution(pair, img, "blur", device, riemann_left(2))
            tf, t_tf = attribution(pair, img, "blur", device, riemann_left(steps))
        finally:
            configure_precision(allow_tf32=False)
        res.update(tf32_s=t_tf, tf32_speedup=t_fp32 / t_tf, tf32_top1_overlap=top_overlap(tf, fp32),
                   tf32_max_rel_dev=max_rel_dev(tf, fp32))
    else:
        res["tf32"] = "CUDA only"
    return res


def memory(pair, img, device, steps: int, budget_gb: float) -> dict:
    budget = int(budget_gb * 2**30)
    if device.type != "cuda":
        attribution(pair, img, "blur", device, riemann_left(steps), budget=budget)
        return {"budget_bytes": budget, "peak_bytes": None, "holds": None,
                "note": "the CPU has no allocator peak to read; ran under the budget only"}
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    _, t = attribution(pair, img, "blur", device, riemann_left(steps), budget=budget)
    peak = torch.cuda.max_memory_allocated(device) - before
    return {"budget_bytes": budget, "peak_bytes": int(peak), "holds": bool(peak <= budget), "seconds": t}


def interactive(pair, img, device, view: int, repeats: int, scores: np.ndarray) -> dict:
    baseline, target = pair
    lr = torch.rand(1, 3, view, view, generator=torch.Generator().manual_seed(3))
    index = FilterIndex.from_state_dict(target.state_dict)
    times = []
    for n in range(repeats + 1):
        sync(device)
        t0 = time.perf_counter()
        mask = FilterMask(top_indices(scores, proportion=0.01 * (1 + n % 2)))   # a new mask each time
        params = masked_state_dict(target.state_dict, baseline.state_dict, mask, index)
        super_resolve(target.module, lr, target.scale, params, device)          # back on the CPU: synced
        if n:   # the first is a warm-up
            times.append(time.perf_counter() - t0)
    from faig_gui.core.prediction import Predictor, PredictorConfig
    predictor = Predictor(baseline, target, {"blur": scores, "noise": -scores}, [img.hr],
                          paper_degradations(), PredictorConfig(device=str(device), seeds=1), cache=False)
    t0 = time.perf_counter()
    predictor.calibrate()
    calibration = time.perf_counter() - t0
    predictor.predict(img.lr["blur"])
    pred = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        verdict = predictor.predict(img.lr["noise"])
        pred.append(time.perf_counter() - t0)
    return {"mask_change_ms_median": 1e3 * statistics.median(times), "view_lr": view,
            "prediction_ms_median": 1e3 * statistics.median(pred), "calibration_s": calibration,
            "prediction_of_a_noisy_input": verdict.verdict}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny nets and images (the tests' CPU run)")
    p.add_argument("--out", default="gpu_check.json")
    p.add_argument("--budget-s", type=float, default=270.0, help="start no section after this many seconds")
    p.add_argument("--budget-gb", type=float, default=2.0, help="memory budget for the memory check")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    configure_precision(allow_tf32=False)
    tiny = args.tiny
    steps, gl, lr_side, view, repeats = (4, 2, 8, 16, 2) if tiny else (100, 8, 64, 128, 5)
    agree_steps = 4 if tiny else 20
    models = {"msrresnet_64_16_x2": ("msrresnet", dict(num_feat=8 if tiny else 64, num_block=1 if tiny else 16, scale=2)),
              "rrdbnet_64_23_x4": ("rrdbnet", dict(num_feat=8 if tiny else 64, num_block=1 if tiny else 23,
                                                   num_grow_ch=4 if tiny else 32, scale=4))}
    start = time.perf_counter()
    report: dict = {"device": str(device), "tiny": tiny, "torch": torch.__version__,
                    "cpu": platform.processor() or platform.machine(), "sections": {}, "skipped": [],
                    "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                    "models": {label: hp for label, (_, hp) in models.items()},
                    "steps": steps, "lr_side": lr_side}

    def section(name: str, fn):
        if time.perf_counter() - start > args.budget_s:
            report["skipped"].append(name)
            return None
        t0 = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - one failing section must not lose the others
            value = {"error": f"{type(exc).__name__}: {exc}"}
        if isinstance(value, dict):
            value["section_s"] = round(time.perf_counter() - t0, 2)
        report["sections"][name] = value
        return value

    with tempfile.TemporaryDirectory() as tmp:
        for label, (arch, hp) in models.items():
            try:
                pair = make_pair(Path(tmp) / label, arch, **hp)
            except Exception as exc:  # noqa: BLE001 - e.g. plugins/rrdbnet.py missing or broken
                report["skipped"].append(f"{label} ({type(exc).__name__}: {exc})")
                continue
            img = test_image(pair[1].scale, lr_side)
            if label.startswith("msrresnet"):
                section(f"{label}/agreement", lambda pair=pair, img=img: agreement(pair, img, device, agree_steps))
            section(f"{label}/timing", lambda pair=pair, img=img: timing(pair, img, device, steps, gl))
            section(f"{label}/memory", lambda pair=pair, img=img: memory(pair, img, device, 8 if tiny else 32, args.budget_gb))
            if label.startswith("msrresnet"):
                scores, _ = attribution(pair, img, "blur", device, riemann_left(4))
                section(f"{label}/interactive",
                        lambda pair=pair, img=img, scores=scores: interactive(pair, img, device, view, repeats, scores))
    report["seconds"] = round(time.perf_counter() - start, 1)
    text = json.dumps(report, indent=2, default=float)
    Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
