"""`faig-gui train`: a baseline on clean bicubic pairs, then a target fine-tuned on a blind mix of degradations."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from faig_gui.commands._common import (add_degradations, add_device, degradations_from, output_dir,
                                        positive_int, progress_bar)
from faig_gui.core.errors import FaigError

HELP = ("train a baseline (clean bicubic) and a target (fine-tuned on a blind mix of degradations, "
        "by default blur σ2 / noise σ0.1 each with p 0.5) from HR images; BasicSR-format checkpoints "
        "with EMA weights")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from faig_gui.core.training import MIXES, TrainConfig
    d = TrainConfig()
    p.add_argument("--hr", nargs="+", required=True, metavar="DIR",
                   help="folders (or image files) of HR training images")
    p.add_argument("--val-hr", nargs="+", default=[], metavar="DIR",
                   help="held-out HR images for the validation PSNR in the log (clean and each degradation)")
    p.add_argument("--out", required=True, help="writes baseline.pth, target.pth, train_log.jsonl, snapshots/")
    p.add_argument("--arch", default=d.arch, help="architecture plugin (default: msrresnet); NAME:KEY=VALUE,... "
                                                 "also sets its hyper-parameters, like --hp")
    p.add_argument("--hp", default="", metavar="KEY=VALUE,...",
                   help="the architecture's hyper-parameters, e.g. --arch srvgg --hp num_feat=32,num_conv=16 "
                        "(the scale comes from --scale; for msrresnet --num-feat/--num-block)")
    p.add_argument("--num-feat", type=positive_int, default=d.num_feat, help="msrresnet's width")
    p.add_argument("--num-block", type=positive_int, default=d.num_block, help="msrresnet's depth")
    p.add_argument("--scale", type=int, default=d.scale, choices=[2, 3, 4])
    p.add_argument("--baseline-iters", type=int, default=d.baseline_iters)
    p.add_argument("--target-iters", type=int, default=d.target_iters)
    p.add_argument("--baseline-lr", type=float, default=d.baseline_lr)
    p.add_argument("--target-lr", type=float, default=d.target_lr)
    p.add_argument("--ema-decay", type=float, default=d.ema_decay)
    p.add_argument("--batch", type=positive_int, default=d.batch)
    p.add_argument("--patch", type=positive_int, default=d.patch, help="HR patch side in pixels")
    add_degradations(p)
    p.add_argument("--prob", action="append", default=None, metavar="[NAME=]P",
                   help="probability of a degradation in the target's blind mix (default 0.5 each): "
                        "P for all, or NAME=P for one; repeatable")
    p.add_argument("--mix", choices=MIXES, default=d.mix,
                   help="independent: each degradation drawn on its own, so they also combine (the paper's); "
                        "one-of: at most one per sample, degradation d with its --prob, clean otherwise "
                        "(the probabilities must then sum to at most 1)")
    p.add_argument("--snapshot-every", type=positive_int, default=d.snapshot_every)
    p.add_argument("--val-every", type=positive_int, default=d.val_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--baseline", metavar="CKPT", default=None,
                   help="use this checkpoint as the baseline instead of training one (--baseline-iters "
                        "is then ignored); it is copied to OUT/baseline.pth")
    p.add_argument("--target-init", metavar="CKPT", default=None,
                   help="with --baseline: start the target fine-tune from this checkpoint (e.g. to "
                        "continue an earlier fine-tune with a fresh schedule) instead of the baseline")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/snapshots/latest.pth when it exists")
    add_device(p)


def _images(items: list[str]) -> list[Path]:
    from faig_gui.core.imageio import list_images
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files.extend(list_images(path))
        elif path.is_file():
            files.append(path)
        else:
            raise FaigError(f"{path}: no such folder or image file")
    return files


def run(args: argparse.Namespace) -> int:
    from faig_gui.core.device import resolve_device
    from faig_gui.core.training import TrainConfig, train
    if args.baseline_iters < 0 or args.target_iters < 0:
        raise FaigError("--baseline-iters and --target-iters must be >= 0")
    if args.baseline:
        args.baseline_iters = 0
    if args.threads:
        torch.set_num_threads(args.threads)
    arch, hp = _arch_and_hp(args.arch, args.hp)
    degs = degradations_from(args)
    custom = bool(args.degradation)
    cfg = TrainConfig(arch=arch, num_feat=args.num_feat, num_block=args.num_block, scale=args.scale, hp=hp,
                      degradations=[d.to_dict() for d in degs] if custom else None,
                      probs=_probs(args.prob, [d.name for d in degs]) if args.prob else None, mix=args.mix,
                      baseline_iters=args.baseline_iters, target_iters=args.target_iters,
                      baseline_lr=args.baseline_lr, target_lr=args.target_lr, ema_decay=args.ema_decay,
                      batch=args.batch, patch=args.patch, seed=args.seed, blur_sigma=args.blur_sigma,
                      noise_sigma=args.noise_sigma, snapshot_every=args.snapshot_every,
                      val_every=args.val_every, baseline_from=args.baseline,
                      target_from=args.target_init)
    out = output_dir(args.out)
    device = resolve_device(args.device)
    records = train(cfg, _images(args.hr), out, _images(args.val_hr) if args.val_hr else (),
                    resume=args.resume, device=device)
    total = cfg.baseline_iters + cfg.target_iters
    with progress_bar(total, "train") as bar:
        for rec in records:
            kind = rec["kind"]
            if kind == "start":
                done = rec["iter"] + (cfg.baseline_iters if rec["stage"] == "target" else 0)
                bar.reset(total=total)
                bar.update(done)
                if rec["resumed"]:
                    bar.write(f"resumed at {rec['stage']} iteration {rec['iter']}", file=sys.stderr)
            elif kind == "step":
                bar.update(1)
                if rec["iter"] % 10 == 0:
                    bar.set_postfix(stage=rec["stage"], loss=f"{rec['loss']:.4f}", lr=f"{rec['lr']:.1e}")
            elif kind == "validation":
                p = rec["psnr_ema"]
                bar.write(f"{rec['stage']} {rec['iter']}: EMA PSNR " +
                          " ".join(f"{k} {v:.2f}" for k, v in p.items()), file=sys.stderr)
            elif kind == "stage_done":
                bar.write(f"wrote {rec['path']}", file=sys.stderr)
            elif kind == "done":
                print(f"wrote {rec['baseline']} and {rec['target']} ({rec['seconds'] / 60:.1f} min of training)")
    return 0


def _arch_and_hp(arch: str, hp_text: str) -> tuple[str, dict]:
    """``--arch NAME[:K=V,...]`` and ``--hp K=V,...`` -> (name, typed hyper-parameters)."""
    from faig_gui.core.registry import default_registry, parse_arch_spec
    name, overrides = parse_arch_spec(arch)
    _, more = parse_arch_spec("x:" + hp_text) if hp_text.strip() else ("", {})
    overrides.update(more)
    plugin = default_registry().get(name)  # an unknown name is refused here, with the list of plugins
    if "scale" in overrides:
        raise FaigError("give the scale with --scale, not as a hyper-parameter")
    # the keys the plugin reads back from weights are the ones it builds from: refuse others,
    # which plugins' build() would silently ignore
    known = set(plugin.hyperparameters(plugin.build({"scale": 2}).state_dict()))
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise FaigError(f"--hp: '{name}' has no hyper-parameter {', '.join(unknown)}; it has "
                        f"{', '.join(sorted(known - {'scale'}))}")
    return name, {k: _typed(v) for k, v in overrides.items()}


def _typed(text: str):
    """'32' -> 32, '0.1' -> 0.1, anything else stays a string (e.g. act_type=prelu)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _probs(items: list[str], names: list[str]) -> list[float]:
    """``--prob 0.3`` (all) and ``--prob jpeg=0.7`` (one) -> one probability per degradation."""
    probs = dict.fromkeys(names, 0.5)
    for item in items:
        name, eq, value = item.rpartition("=")
        try:
            p = float(value)
        except ValueError:
            raise FaigError(f"--prob '{item}': write P or NAME=P with a number P") from None
        if eq and name not in probs:
            raise FaigError(f"--prob '{item}': no degradation named '{name}' (have {', '.join(names)})")
        for key in ([name] if eq else names):
            probs[key] = p
    return [probs[n] for n in names]
