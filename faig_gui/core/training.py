"""Training a baseline/target pair (docs/method.md, "The setting").

* Baseline: trained from scratch on clean bicubic xs pairs.
* Target: initialised from the baseline's EMA weights and fine-tuned on a blind mixture of
  degradations: per sample, each degradation's steps other than 'down' are applied with that
  degradation's probability, drawn independently (the paper's: blur σ 2 and noise σ 0.1, each
  with probability 0.5). Blur steps act on the HR patch, noise after the down-sampling, JPEG
  last, after all noise.

Both stages use L1, Adam(0.9, 0.99), a cosine schedule, random HR patches with random flips and
90° rotations, and an exponential moving average (EMA) of the weights; checkpoints are written
in BasicSR's format ``{'params', 'params_ema'}``.

:func:`train` is a generator of progress records so that the CLI and the window can both drive
it; a cancel flag is checked between steps. All randomness of the data (patches, flips,
degradation choices, noise) comes from one explicit generator whose state is saved in each
snapshot together with the weights, EMA, optimizer and scheduler, so a resumed run continues
bit-for-bit where the snapshot left off (on one machine with one thread count).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from faig_gui.core.checkpoint import save_checkpoint
from faig_gui.core.degradations import (BLUR_KERNEL_SIZE, Degradation, degrade, downsample,
                                        gaussian_blur, jpeg, mod_crop, paper_degradations,
                                        quantize, seeded_generator)
from faig_gui.core.errors import FaigError
from faig_gui.core.metrics import psnr

#: the ways the target's blind mixture draws its degradations (TrainConfig.mix)
MIXES = ("independent", "one-of")

STAGES = ("baseline", "target")
SNAPSHOT_NAME = "latest.pth"
LOG_NAME = "train_log.jsonl"


@dataclass
class TrainConfig:
    arch: str = "msrresnet"
    num_feat: int = 32
    num_block: int = 8
    scale: int = 2
    baseline_iters: int = 20000
    target_iters: int = 10000
    batch: int = 16
    patch: int = 64                    # HR patch side
    seed: int = 0
    baseline_lr: float = 2e-4
    target_lr: float = 5e-5
    min_lr: float = 1e-7               # floor of the cosine schedule
    ema_decay: float = 0.999
    blur_sigma: float = 2.0
    noise_sigma: float = 0.1
    blur_prob: float = 0.5
    noise_prob: float = 0.5
    #: the blind mixture: Degradation.to_dict() forms; None = the paper's blur and noise above
    degradations: list[dict[str, Any]] | None = None
    #: each degradation's probability (same order); None = blur_prob/noise_prob for the
    #: paper's pair, 0.5 for each otherwise
    probs: list[float] | None = None
    #: how the mixture draws: "independent" (each degradation on its own draw, so they combine;
    #: the paper's) or "one-of" (at most one per sample: degradation i with probs[i], clean with
    #: 1 - sum(probs); each function then has samples of its own)
    mix: str = "independent"
    #: hyper-parameters of the architecture (e.g. srvgg's num_feat, num_conv); for msrresnet
    #: num_feat/num_block above are used unless given here
    hp: dict[str, Any] = field(default_factory=dict)
    snapshot_every: int = 500
    val_every: int = 1000
    log_every: int = 50
    val_crop: int = 192                # centre crop of validation HR images (speed)
    baseline_from: str | None = None   # use this checkpoint as the baseline (no baseline stage)
    target_from: str | None = None     # start the target fine-tune here instead of the baseline

    def stage_iters(self, stage: str) -> int:
        return self.baseline_iters if stage == "baseline" else self.target_iters

    def stage_lr(self, stage: str) -> float:
        return self.baseline_lr if stage == "baseline" else self.target_lr

    def hyperparameters(self) -> dict[str, Any]:
        if self.arch == "msrresnet":
            return {"num_feat": self.num_feat, "num_block": self.num_block, "scale": self.scale, **self.hp}
        # other plugins take their own keys (--hp); every plugin reads the factor as 'scale'
        return {**self.hp, "scale": self.scale}

    def mixture(self) -> list[tuple[Degradation, float]]:
        """The target's blind mixture: (degradation, probability) pairs, in order."""
        if self.degradations is None:
            degs = paper_degradations(self.blur_sigma, self.noise_sigma)
            probs = self.probs if self.probs is not None else [self.blur_prob, self.noise_prob]
        else:
            degs = [Degradation.from_dict(d) for d in self.degradations]
            probs = self.probs if self.probs is not None else [0.5] * len(degs)
        if len(probs) != len(degs):
            raise FaigError(f"{len(probs)} probabilities for {len(degs)} degradations")
        for d, p in zip(degs, probs):
            if not 0.0 <= p <= 1.0:
                raise FaigError(f"the probability of '{d.name}' must be in [0, 1], got {p:g}")
        if self.mix not in MIXES:
            raise FaigError(f"unknown mix '{self.mix}' (have {', '.join(MIXES)})")
        if self.mix == "one-of" and sum(probs) > 1.0 + 1e-9:
            raise FaigError(f"with the one-of mix the probabilities are shares of the samples and must sum "
                            f"to at most 1 (the rest is clean), got {sum(probs):g}")
        return list(zip(degs, probs))

    def chosen(self, mixture: Sequence[tuple[Degradation, float]], g: torch.Generator) -> list[torch.Tensor]:
        """Per degradation of ``mixture``, which of the batch's samples it applies to."""
        if self.mix == "independent":
            return [torch.rand(self.batch, generator=g) < p for _, p in mixture]
        u = torch.rand(self.batch, generator=g, dtype=torch.float64)
        edges = torch.tensor([0.0] + [p for _, p in mixture], dtype=torch.float64).cumsum(0)
        return [(u >= edges[i]) & (u < edges[i + 1]) for i in range(len(mixture))]


# -- data ------------------------------------------------------------------------------------
def load_hr_images(paths: Sequence[str | os.PathLike], min_side: int) -> list[torch.Tensor]:
    """Read HR images as 3xHxW float32 tensors; refuse images smaller than ``min_side``."""
    from faig_gui.core.imageio import read_image
    images = []
    for p in paths:
        img = torch.from_numpy(read_image(p).transpose(2, 0, 1).copy())
        if min(img.shape[-2:]) < min_side:
            raise FaigError(f"{p}: {img.shape[-1]}x{img.shape[-2]} is smaller than the "
                            f"{min_side}-pixel crops training needs; use larger images or a smaller --patch")
        images.append(img)
    if not images:
        raise FaigError("no training images given")
    return images


class PatchSampler:
    """Random HR patches (with a margin for the blur kernel) and their flips/rotations.

    The margin makes the blur of a patch equal to the blur of the full image there (no border
    effects in training data); clean and noisy samples just drop it."""

    def __init__(self, images: Sequence[torch.Tensor], patch: int, margin: int):
        self.images = list(images)
        self.patch = patch
        self.margin = margin
        side = patch + 2 * margin
        for i, img in enumerate(self.images):
            if min(img.shape[-2:]) < side:
                raise FaigError(f"training image {i} is {img.shape[-1]}x{img.shape[-2]}, smaller than "
                                f"{side} pixels (patch {patch} + blur margin); use larger images")

    def sample(self, batch: int, g: torch.Generator) -> torch.Tensor:
        side = self.patch + 2 * self.margin
        out = torch.empty(batch, 3, side, side)
        for b in range(batch):
            img = self.images[int(torch.randint(len(self.images), (1,), generator=g))]
            h, w = img.shape[-2:]
            top = int(torch.randint(h - side + 1, (1,), generator=g))
            left = int(torch.randint(w - side + 1, (1,), generator=g))
            crop = img[:, top:top + side, left:left + side]
            flip_h, flip_v, transpose = (torch.rand(3, generator=g) < 0.5).tolist()
            if flip_h:
                crop = crop.flip(-1)
            if flip_v:
                crop = crop.flip(-2)
            if transpose:
                crop = crop.transpose(-1, -2)
            out[b] = crop
        return out


def make_batch(sampler: PatchSampler, cfg: TrainConfig, stage: str,
               g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR, HR) for one step: clean bicubic for the baseline, the blind mixture for the target.

    The mixture: per sample and degradation one draw decides whether that degradation's steps
    (all but 'down') apply (with ``cfg.mix == "one-of"``, one draw per sample picks at most one).
    Steps before 'down' (blur) act on the HR patch with its margin, in
    the mixture's order; steps after it act on the LR patch: noise first (each noise step draws
    its values for every sample, applied or not, so the generator's stream does not depend on
    the draws), JPEG last. With the paper's pair this draws exactly what the two-degradation
    recipe drew (blur draws, noise draws, one normal field), so earlier runs resume unchanged.
    """
    big = sampler.sample(cfg.batch, g)
    m = sampler.margin
    hr = big[..., m:big.shape[-2] - m, m:big.shape[-1] - m].contiguous()
    if stage == "baseline":
        return quantize(downsample(hr, cfg.scale)), hr
    mixture = cfg.mixture()
    chosen = cfg.chosen(mixture, g)
    src = big.clone()
    for (deg, _), on in zip(mixture, chosen):
        steps = deg.steps
        for st in steps[:[s.kind for s in steps].index("down")]:
            if st.kind == "blur" and on.any():
                src[on] = gaussian_blur(src[on], float(st.amount))
            elif st.kind != "blur":
                raise FaigError(f"'{deg.name}': only blur steps can come before 'down' in training")
    lr = downsample(src[..., m:big.shape[-2] - m, m:big.shape[-1] - m].contiguous(), cfg.scale)
    late = [(st, on) for (deg, _), on in zip(mixture, chosen)
            for st in deg.steps[[s.kind for s in deg.steps].index("down") + 1:]]
    for st, on in late:
        if st.kind == "noise":
            n = torch.randn(lr.shape, generator=g)  # drawn for every sample: the stream stays aligned
            lr = lr + float(st.amount) * n * on.view(-1, 1, 1, 1).to(lr.dtype)
        elif st.kind == "blur":
            raise FaigError("blur after 'down' is not supported in training")
    for st, on in late:
        if st.kind == "jpeg" and on.any():
            lr[on] = jpeg(lr[on], int(st.amount))  # jpeg() rounds to 8 bits before encoding
    return quantize(lr), hr


# -- validation -----------------------------------------------------------------------------
@dataclass
class ValidationSet:
    hr: list[torch.Tensor]
    lr: dict[str, list[torch.Tensor]]

    @classmethod
    def build(cls, images: Sequence[torch.Tensor], cfg: TrainConfig) -> ValidationSet:
        degradations = {"clean": Degradation("clean"), **{d.name: d for d, _ in cfg.mixture()}}
        hrs: list[torch.Tensor] = []
        lrs: dict[str, list[torch.Tensor]] = {k: [] for k in degradations}
        for i, img in enumerate(images):
            x = _centre_crop(img, cfg.val_crop)[None]
            x = mod_crop(x, cfg.scale).contiguous()
            hrs.append(x)
            for k, d in degradations.items():
                # a fixed noise draw per image: validation numbers are comparable over time
                lrs[k].append(degrade(x, cfg.scale, d, seeded_generator(10_000 + i)))
        return cls(hrs, lrs)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, device: torch.device, scale: int) -> dict[str, float]:
        model.eval()
        out = {}
        for k, lrs in self.lr.items():
            values = [psnr(model(lr.to(device)).cpu().clamp(0, 1), hr, crop=scale)
                      for lr, hr in zip(lrs, self.hr)]
            out[k] = float(np.mean(values))
        model.train()
        return out


def _centre_crop(img: torch.Tensor, side: int) -> torch.Tensor:
    if side <= 0:
        return img
    h, w = img.shape[-2:]
    sh, sw = min(side, h), min(side, w)
    top, left = (h - sh) // 2, (w - sw) // 2
    return img[..., top:top + sh, left:left + sw]


# -- EMA ------------------------------------------------------------------------------------
@torch.no_grad()
def ema_update(ema: Mapping[str, torch.Tensor], model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * weights (BasicSR's model_ema)."""
    for name, p in model.state_dict().items():
        ema[name].mul_(decay).add_(p.detach(), alpha=1 - decay)


def cosine_lr(base: float, min_lr: float, step: int, total: int) -> float:
    """Learning rate for ``step`` (0-based) of a cosine schedule from ``base`` to ``min_lr``."""
    return min_lr + 0.5 * (base - min_lr) * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


# -- the loop -------------------------------------------------------------------------------
@dataclass
class _State:
    stage: str
    iteration: int                       # steps done in this stage
    params: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None
    rng: torch.Tensor
    baseline_ema: dict[str, torch.Tensor] | None = None
    elapsed: float = 0.0                 # seconds of training so far (both stages)


def _clone(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().cpu() for k, v in sd.items()}


def _save_snapshot(path: Path, st: _State, cfg: TrainConfig) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"stage": st.stage, "iteration": st.iteration, "params": st.params, "params_ema": st.ema,
               "optimizer": st.optimizer, "rng": st.rng, "baseline_ema": st.baseline_ema,
               "elapsed": st.elapsed, "config": asdict(cfg)}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _load_snapshot(path: Path, cfg: TrainConfig) -> _State:
    try:
        snap = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FaigError(f"{path}: cannot read the training snapshot ({type(exc).__name__}); "
                        f"delete it to start over") from None
    saved = snap.get("config", {})
    for key in ("arch", "num_feat", "num_block", "scale", "seed", "batch", "patch", "hp", "degradations",
                "probs", "mix"):
        if key in saved and saved[key] != getattr(cfg, key):
            raise FaigError(f"{path}: the snapshot was made with {key}={saved[key]}, not "
                            f"{getattr(cfg, key)}; pass the same options to --resume or use a new --out")
    return _State(snap["stage"], int(snap["iteration"]), snap["params"], snap["params_ema"],
                  snap["optimizer"], snap["rng"], snap.get("baseline_ema"), float(snap.get("elapsed", 0.0)))


def _init_weights(path: str, model: nn.Module) -> dict[str, torch.Tensor]:
    """The (EMA) weights of an existing checkpoint, checked against the network being trained."""
    from faig_gui.core.checkpoint import load_state_dict
    sd = load_state_dict(path)
    mine = model.state_dict()
    if set(sd) != set(mine) or any(sd[k].shape != mine[k].shape for k in mine):
        raise FaigError(f"{path}: its parameters do not fit {type(model).__name__} with these options "
                        f"(check --arch, --hp, --num-feat, --num-block and --scale)")
    return _clone(sd)


def _truncate_log(log_path: Path, stage: str, iteration: int) -> None:
    """Drop log records after the snapshot a run resumes from (they will be redone)."""
    if not log_path.exists():
        return
    keep = []
    order = STAGES.index(stage)
    for line in log_path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        rs = STAGES.index(rec["stage"]) if rec.get("stage") in STAGES else -1
        if rs < order or (rs == order and rec.get("iter", 0) <= iteration):
            keep.append(line)
    log_path.write_text("".join(k + "\n" for k in keep))


def build_model(cfg: TrainConfig) -> tuple[Any, nn.Module]:
    from faig_gui.core.registry import default_registry
    arch = default_registry().get(cfg.arch)
    return arch, arch.build(cfg.hyperparameters())


def train(cfg: TrainConfig, hr_paths: Sequence[str | os.PathLike], out: str | os.PathLike,
          val_paths: Sequence[str | os.PathLike] = (), resume: bool = False,
          device: torch.device | str = "cpu",
          cancel: Callable[[], bool] | None = None) -> Iterator[dict[str, Any]]:
    """Train baseline then target; yield a record per step and at every event.

    Records have ``kind`` in {'start', 'step', 'validation', 'snapshot', 'stage_done', 'cancelled',
    'done'}; step records carry ``stage``, ``iter`` (1-based), ``total``, ``loss``, ``lr``.
    ``cancel()`` is polled between steps; on cancel a snapshot is written first, so ``resume``
    continues from exactly there.
    """
    device = torch.device(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    snap_path = out / "snapshots" / SNAPSHOT_NAME
    log_path = out / LOG_NAME
    margin = BLUR_KERNEL_SIZE // 2
    if cfg.patch % cfg.scale:
        raise FaigError(f"--patch {cfg.patch} must be a multiple of --scale {cfg.scale}")
    if cfg.target_from and not cfg.baseline_from:
        raise FaigError("--target-init needs --baseline (the baseline the target is compared with)")
    sampler = PatchSampler(load_hr_images(hr_paths, cfg.patch + 2 * margin), cfg.patch, margin)
    val = ValidationSet.build(load_hr_images(val_paths, cfg.scale), cfg) if val_paths else None
    arch, model = build_model(cfg)

    if resume and snap_path.exists():
        st = _load_snapshot(snap_path, cfg)
        _truncate_log(log_path, st.stage, st.iteration)
    elif cfg.baseline_from:
        base = _init_weights(cfg.baseline_from, model)
        start = _init_weights(cfg.target_from, model) if cfg.target_from else base
        st = _State("target", 0, _clone(start), _clone(start), None, seeded_generator(cfg.seed + 1).get_state(),
                    _clone(base))
        if Path(cfg.baseline_from).resolve() != (out / "baseline.pth").resolve():
            shutil.copyfile(cfg.baseline_from, out / "baseline.pth")
        log_path.unlink(missing_ok=True)
    else:
        with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
            torch.manual_seed(cfg.seed)
            init = _clone(arch.build(cfg.hyperparameters()).state_dict())
        st = _State("baseline", 0, init, _clone(init), None, seeded_generator(cfg.seed + 1).get_state())
        log_path.unlink(missing_ok=True)
    yield {"kind": "start", "stage": st.stage, "iter": st.iteration, "resumed": bool(resume and st.iteration),
           "total": cfg.baseline_iters + cfg.target_iters}

    for stage in STAGES[STAGES.index(st.stage):]:
        if stage != st.stage:  # entering the target stage from a finished baseline
            assert st.baseline_ema is not None   # set when the baseline stage finishes
            st = _State(stage, 0, _clone(st.baseline_ema), _clone(st.baseline_ema), None, st.rng,
                        st.baseline_ema, st.elapsed)
        result = yield from _run_stage(st, cfg, model, sampler, val, device, snap_path, log_path, cancel)
        if result == "cancelled":
            return
        name = out / f"{stage}.pth"
        save_checkpoint(name, st.params, st.ema)
        if stage == "baseline":
            st.baseline_ema = _clone(st.ema)
        yield {"kind": "stage_done", "stage": stage, "path": str(name)}
    yield {"kind": "done", "baseline": str(out / "baseline.pth"), "target": str(out / "target.pth"),
           "seconds": st.elapsed}


def _run_stage(st: _State, cfg: TrainConfig, model: nn.Module, sampler: PatchSampler,
               val: ValidationSet | None, device: torch.device, snap_path: Path, log_path: Path,
               cancel: Callable[[], bool] | None):
    total = cfg.stage_iters(st.stage)
    base_lr = cfg.stage_lr(st.stage)
    model.load_state_dict(st.params)
    model.to(device).train()
    ema = {k: v.to(device) for k, v in st.ema.items()}
    opt = torch.optim.Adam(model.parameters(), lr=base_lr, betas=(0.9, 0.99))
    if st.optimizer is not None:
        opt.load_state_dict(st.optimizer)
    g = torch.Generator()
    g.set_state(st.rng)
    loss_fn = nn.L1Loss()
    ema_model = None

    def snapshot() -> None:
        st.params = _clone(model.state_dict())
        st.ema = _clone(ema)
        st.optimizer = opt.state_dict()
        st.rng = g.get_state()
        _save_snapshot(snap_path, st, cfg)

    def log(rec: dict[str, Any]) -> None:
        with open(log_path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")

    def validate() -> dict[str, Any] | None:
        nonlocal ema_model
        if val is None:
            return None
        if ema_model is None:
            ema_model = build_model(cfg)[1].to(device)
        ema_model.load_state_dict(ema)
        rec = {"kind": "validation", "stage": st.stage, "iter": st.iteration,
               "psnr_ema": val.evaluate(ema_model, device, cfg.scale)}
        log(rec)
        return rec

    if st.iteration == 0 and st.optimizer is None and (rec := validate()):
        yield rec  # the stage's starting point (for the target: the baseline's numbers)
    running, count = 0.0, 0
    while st.iteration < total:
        if cancel is not None and cancel():
            snapshot()
            yield {"kind": "cancelled", "stage": st.stage, "iter": st.iteration, "snapshot": str(snap_path)}
            return "cancelled"
        t0 = time.perf_counter()
        lr = cosine_lr(base_lr, cfg.min_lr, st.iteration, total)
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = make_batch(sampler, cfg, st.stage, g)
        x, y = x.to(device), y.to(device)
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema_update(ema, model, cfg.ema_decay)
        st.iteration += 1
        st.elapsed += time.perf_counter() - t0
        value = float(loss.detach())
        running, count = running + value, count + 1
        yield {"kind": "step", "stage": st.stage, "iter": st.iteration, "total": total, "loss": value, "lr": lr}
        if st.iteration % cfg.log_every == 0 or st.iteration == total:
            log({"kind": "train", "stage": st.stage, "iter": st.iteration, "loss": running / count,
                 "lr": lr, "elapsed": round(st.elapsed, 2)})
            running, count = 0.0, 0
        if st.iteration % cfg.val_every == 0 or st.iteration == total:
            if rec := validate():
                yield rec
        if st.iteration % cfg.snapshot_every == 0 or st.iteration == total:
            snapshot()
            yield {"kind": "snapshot", "stage": st.stage, "iter": st.iteration, "path": str(snap_path)}
    st.params = _clone(model.state_dict())
    st.ema = _clone(ema)
    return "finished"
