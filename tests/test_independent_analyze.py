"""Issue 2, "Done when": an independent implementation of docs/method.md, written here from the page
alone, agrees with `faig-gui analyze` on a BasicSR-format pair to float32 rounding.

The reference shares nothing with faig_gui: it reads the checkpoints with torch.load (EMA
weights preferred, as docs/method.md says), the PNGs with OpenCV, builds a BasicSR-style MSRResNet
written for the tests, rebuilds it at every path step in float64, and numbers filters by
walking the state dict."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import torch

from faig_gui.cli import main as cli_main
from reference_nets import BasicSRMSRResNet
from tolerances import assert_path_sum_close, gamma, path_terms

STEPS = 4
NUM_FEAT, NUM_BLOCK, SCALE = 6, 2, 2


def write_basicsr_pair(folder: Path) -> tuple[Path, Path]:
    """{'params': ..., 'params_ema': ...} for a baseline and a fine-tuned target; the plain
    params are deliberately different from the EMA ones so that a loader picking the wrong
    entry is caught."""
    torch.manual_seed(123)
    net = BasicSRMSRResNet(3, 3, NUM_FEAT, NUM_BLOCK, SCALE)
    for p in net.parameters():  # non-zero biases and a clearly non-trivial net
        torch.nn.init.normal_(p, std=0.15)
    baseline = OrderedDict((k, v.detach().clone()) for k, v in net.state_dict().items())
    target = OrderedDict((k, v + 0.3 * v.std() * torch.randn_like(v)) for k, v in baseline.items())
    paths = []
    for name, ema in (("baseline", baseline), ("target", target)):
        plain = OrderedDict((k, torch.randn_like(v)) for k, v in ema.items())
        path = folder / f"{name}.pth"
        torch.save({"params": plain, "params_ema": ema}, path)
        paths.append(path)
    return paths[0], paths[1]


def write_images(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(7)
    dirs = {n: folder / n for n in ("GT", "blur", "noise")}
    for d in dirs.values():
        d.mkdir(parents=True)
    for stem in ("one", "two"):
        gt = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        cv2.imwrite(str(dirs["GT"] / f"{stem}.png"), gt)
        small = cv2.resize(gt, (8, 8), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(dirs["blur"] / f"{stem}.png"), cv2.GaussianBlur(small, (3, 3), 1.0))
        noisy = np.clip(small.astype(np.int16) + rng.integers(-30, 31, small.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(dirs["noise"] / f"{stem}.png"), noisy)
    return dirs


# ---------------------------------------------------------------- the independent docs/method.md

def read_weights(path: Path) -> OrderedDict[str, torch.Tensor]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return ckpt["params_ema"] if "params_ema" in ckpt else ckpt["params"]


def read_png(path: Path) -> torch.Tensor:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    rgb = bgr[:, :, ::-1].astype(np.float64) / 255.0
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).unsqueeze(0)


def attribution(theta_bar, theta, x, y) -> list[float]:
    """A_k(x) for every filter k, docs/method.md eq.: left Riemann sum, L = Σ (F(x) − y)²."""
    avg = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in theta.items()}
    for s in range(STEPS):
        a = s / STEPS
        net = BasicSRMSRResNet(3, 3, NUM_FEAT, NUM_BLOCK, SCALE).double()
        net.load_state_dict({k: a * theta_bar[k].double() + (1 - a) * theta[k].double() for k in theta})
        loss = torch.sum((net(x) - y) ** 2)
        loss.backward()
        for k, p in net.named_parameters():
            avg[k] += p.grad / STEPS
    scores = []
    for k, w in theta.items():
        if not (k.endswith("weight") and w.dim() == 4):
            continue
        change = theta_bar[k].double() - w.double()
        for o in range(w.shape[0]):
            for i in range(w.shape[1]):
                scores.append(float((change[o, i] * avg[k][o, i]).abs().sum()))
    return scores


def independent_faig(baseline: Path, target: Path, dirs: dict[str, Path]) -> dict[str, np.ndarray]:
    theta_bar, theta = read_weights(baseline), read_weights(target)
    stems = sorted(p.stem for p in dirs["GT"].glob("*.png"))
    per = {d: [] for d in ("blur", "noise")}
    for stem in stems:
        y = read_png(dirs["GT"] / f"{stem}.png")
        for d in per:
            per[d].append(np.array(attribution(theta_bar, theta, read_png(dirs[d] / f"{stem}.png"), y)))
    blur = np.mean([b - n for b, n in zip(per["blur"], per["noise"])], axis=0)
    noise = np.mean([n - b for b, n in zip(per["blur"], per["noise"])], axis=0)
    return {"blur": blur, "noise": noise, "_size": np.abs(np.stack(per["blur"] + per["noise"])).max()}


def test_faig_gui_analyze_agrees_with_an_independent_faig(tmp_path):
    baseline, target = write_basicsr_pair(tmp_path)
    dirs = write_images(tmp_path / "data")
    out = tmp_path / "out"
    rc = cli_main(["analyze", "--baseline", str(baseline), "--target", str(target),
                   "--gt", str(dirs["GT"]), "--degraded", f"blur={dirs['blur']}",
                   "--degraded", f"noise={dirs['noise']}", "--steps", str(STEPS),
                   "--device", "cpu", "--out", str(out)])
    assert rc == 0
    with np.load(out / "scores.npz") as npz:
        ours = {k: npz[k] for k in npz.files}
    ref = independent_faig(baseline, target, dirs)
    n_filters = NUM_FEAT * 3 + 2 * NUM_BLOCK * NUM_FEAT ** 2 + 4 * NUM_FEAT ** 2 + NUM_FEAT ** 2 + 3 * NUM_FEAT
    assert set(ours) == {"blur", "noise"}
    # float32 against this float64 reference: the rounding of one path-step gradient of this net
    # on 16 x 16 HR images (tests/tolerances.py), relative to the attributions' size
    n_terms = path_terms(BasicSRMSRResNet(3, 3, NUM_FEAT, NUM_BLOCK, SCALE), 16 * 16)
    for d in ("blur", "noise"):
        assert ours[d].shape == (n_filters,)
        assert_path_sum_close(ours[d], ref[d], n_terms, scale=ref["_size"])
        order = [int(line) for line in (out / f"{d}_index.txt").read_text().split()]
        assert sorted(order) == list(range(n_filters))
        # the top of the written ranking descends in the reference's scores too (up to rounding)
        assert np.all(np.diff(ref[d][order][:20]) <= 2 * gamma(n_terms) * ref["_size"])
