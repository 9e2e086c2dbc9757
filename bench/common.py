"""Shared set-up for the benchmarks: the paper's model with a generated pair, real test images,
timing that survives a shared machine, and the overlap of top-k % filter sets.

The pair is MSRResNet 64/16 x2 (the paper's architecture, 151,936 filters): the baseline is
BasicSR's initialisation under a seed, the target the baseline plus seeded noise of 30 % of each
conv layer's weight spread, so that θ̄ − θ is dense like a real fine-tune. The HR images are
crops of scikit-image's bundled photographs (no download).
"""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from faig_gui.core.checkpoint import save_checkpoint  # noqa: E402
from faig_gui.core.dataset import make_degraded, write_image_set  # noqa: E402
from faig_gui.core.degradations import paper_degradations  # noqa: E402
from faig_gui.plugins.msrresnet import MSRResNetArchitecture  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "immunohistochemistry")


def make_pair(folder: Path, seed: int = 0, num_feat: int = 64, num_block: int = 16,
              scale: int = 2, spread: float = 0.3) -> tuple[Path, Path]:
    """baseline.pth and target.pth in BasicSR format; the same seed gives the same files."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    base = MSRResNetArchitecture().new_state_dict(num_feat=num_feat, num_block=num_block, scale=scale)
    gen = torch.Generator().manual_seed(seed + 1)
    target = {}
    for k, v in base.items():
        if v.ndim == 4:
            noise = torch.randn(v.shape, generator=gen)
            target[k] = v + spread * v.std() * noise
        else:  # biases: BasicSR initialises them to zero; give the target its own
            target[k] = v + 0.01 * torch.randn(v.shape, generator=gen)
    b, t = folder / "baseline.pth", folder / "target.pth"
    save_checkpoint(b, base)
    save_checkpoint(t, target)
    return b, t


def hr_crops(count: int, size: int) -> dict[str, np.ndarray]:
    """``count`` HR crops (size x size, float32 RGB) from scikit-image's photographs."""
    from skimage import data
    out = {}
    for n in range(count):
        name = PHOTOS[n % len(PHOTOS)]
        img = getattr(data, name)()
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = img[..., :3].astype(np.float32) / 255.0
        h, w = img.shape[:2]
        # distinct crops when a photograph is used twice
        y = (h - size) // 2 + (n // len(PHOTOS)) * size // 2
        x = (w - size) // 2
        out[f"{n:02d}_{name}.png"] = np.ascontiguousarray(img[y:y + size, x:x + size])
    return out


def make_inputs(folder: Path, count: int, lr_size: int, scale: int = 2, seed: int = 0) -> Path:
    """GT/, LR/, blur/, noise/ (the paper's degradations) under ``folder``, as 8-bit PNGs."""
    images = make_degraded(hr_crops(count, lr_size * scale), scale, paper_degradations(), seed)
    write_image_set(folder, images)
    return folder


def top_overlap(a: np.ndarray, b: np.ndarray, proportion: float = 0.01) -> float:
    """|top-p(a) ∩ top-p(b)| / k: how much of one top set the other finds."""
    k = max(1, int(round(len(a) * proportion)))
    ta = set(np.argsort(-a, kind="stable")[:k].tolist())
    tb = set(np.argsort(-b, kind="stable")[:k].tolist())
    return len(ta & tb) / k


@contextmanager
def timed(into: dict, key: str):
    """Wall and process CPU seconds of the block; CPU seconds are the steadier figure when
    other jobs share the cores."""
    w, c = time.perf_counter(), time.process_time()
    yield
    into[key] = {"wall_s": round(time.perf_counter() - w, 3), "cpu_s": round(time.process_time() - c, 3)}


def load_average() -> float:
    return float(open("/proc/loadavg").read().split()[0]) if os.path.exists("/proc/loadavg") else -1.0


def machine() -> dict:
    model = platform.processor()
    flags: set[str] = set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    bf16 = bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)())
    return {"cpu": model, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "amx": any(f.startswith("amx") for f in flags), "avx512_bf16": "avx512_bf16" in flags,
            "mkldnn_bf16": bf16, "cuda": torch.cuda.is_available(),
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "load_average_start": load_average()}


def peak_rss_mib() -> float:
    """Peak resident set of this process (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_json(argv: list[str], env: dict | None = None) -> dict:
    """Run a Python snippet or script in a fresh process and parse the JSON it prints last."""
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                          env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:2]} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@dataclass
class Workdir:
    root: Path
    baseline: Path
    target: Path
    inputs: Path


def prepare(root: Path, images: int, lr_size: int, seed: int = 0) -> Workdir:
    b, t = make_pair(root / "pair", seed)
    inputs = make_inputs(root / f"inputs_{images}x{lr_size}", images, lr_size, seed=seed)
    return Workdir(root, b, t, inputs)
