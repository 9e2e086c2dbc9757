"""The shape of work of the FAIG authors' scripts, written from the paper for comparison.

Not faig-gui's engine: a deliberately literal loop with the costs the authors' scripts pay.
- One ranking at a time (filters for blur, then filters for noise); each ranking walks every
  image and computes the path gradient of *both* of its inputs, so every A(x_d) is computed
  twice per run.
- Both checkpoints are read from disk again for every image.
- The network is built anew (and its interpolated weights loaded) at every path step.
- Batch size 1: one forward and one backward per step.

    python bench/authors_shape.py --baseline B --target T --gt DIR --blur DIR --noise DIR \
        [--steps 100] [--out scores.npz]

Prints JSON (seconds, steps run) and writes the two score vectors, numbered like faig-gui's
(docs/method.md): 4-D weights in state-dict order, then output-major, then input channel.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from faig_gui.plugins.msrresnet import MSRResNet  # noqa: E402


def read_checkpoint(path: str) -> dict[str, torch.Tensor]:
    raw = torch.load(path, map_location="cpu", weights_only=True)
    return raw.get("params_ema", raw.get("params", raw))


def read_rgb(path: Path) -> torch.Tensor:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).unsqueeze(0)


def build(sd: dict[str, torch.Tensor]) -> MSRResNet:
    feat = sd["conv_first.weight"].shape[0]
    blocks = len({k.split(".")[1] for k in sd if k.startswith("body.")})
    scale = int(round((sd["upconv1.weight"].shape[0] // feat) ** 0.5))
    return MSRResNet(3, 3, feat, blocks, scale)


def integrated_gradient(baseline_path: str, target_path: str, lr: torch.Tensor, hr: torch.Tensor,
                        steps: int, device: str = "cpu") -> np.ndarray:
    """A(x) per filter for one input, the literal way."""
    baseline, target = read_checkpoint(baseline_path), read_checkpoint(target_path)
    convs = [k for k, v in target.items() if v.ndim == 4]
    total = {k: torch.zeros_like(target[k]) for k in convs}
    lr, hr = lr.to(device), hr.to(device)
    for s in range(steps):
        alpha = s / steps
        net = build(target)  # a new network at every step
        net.load_state_dict({k: alpha * baseline[k] + (1 - alpha) * target[k] for k in target})
        net = net.to(device)
        net.zero_grad()
        loss = ((net(lr) - hr) ** 2).sum()
        loss.backward()
        params = dict(net.named_parameters())
        for k in convs:
            total[k] += params[k].grad.cpu()
    per_filter = []
    for k in convs:
        contribution = ((baseline[k] - target[k]) * total[k] / steps).abs()
        per_filter.append(contribution.flatten(2).sum(-1).flatten().double().numpy())
    return np.concatenate(per_filter)


def run(baseline: str, target: str, gt: Path, blur: Path, noise: Path, steps: int,
        limit: int | None = None, device: str = "cpu") -> tuple[dict[str, np.ndarray], dict]:
    names = sorted(p.name for p in Path(gt).iterdir() if p.suffix.lower() == ".png")[:limit]
    folders = {"blur": Path(blur), "noise": Path(noise)}
    scores: dict[str, np.ndarray] = {}
    start = time.perf_counter()
    path_steps = 0
    for wanted, other in (("blur", "noise"), ("noise", "blur")):  # one ranking at a time
        acc = None
        for name in names:
            hr = read_rgb(Path(gt) / name)
            a_wanted = integrated_gradient(baseline, target, read_rgb(folders[wanted] / name), hr, steps, device)
            a_other = integrated_gradient(baseline, target, read_rgb(folders[other] / name), hr, steps, device)
            path_steps += 2 * steps
            diff = a_wanted - a_other
            acc = diff if acc is None else acc + diff
        scores[wanted] = acc / len(names)
    info = {"seconds": time.perf_counter() - start, "images": len(names), "steps": steps,
            "path_steps": path_steps}
    return scores, info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--gt", required=True)
    p.add_argument("--blur", required=True)
    p.add_argument("--noise", required=True)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--limit", type=int, help="use only the first N images")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--out", help="write scores.npz here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    scores, info = run(args.baseline, args.target, Path(args.gt), Path(args.blur), Path(args.noise),
                       args.steps, args.limit, args.device)
    if args.out:
        np.savez(args.out, **scores)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
