from __future__ import annotations

import argparse

from faig_gui.commands._common import add_arch, add_device, output_dir, output_stems
from faig_gui.core.demo import demo_files
from faig_gui.core.device import resolve_device
from faig_gui.core.errors import FaigError
from faig_gui.core.filters import FilterIndex, top_indices
from faig_gui.core.imageio import read_image, to_image, to_tensor, write_image
from faig_gui.core.inference import super_resolve
from faig_gui.core.masking import MODES, FilterMask, masked_state_dict
from faig_gui.core.registry import default_registry
from faig_gui.core.results import read_scores

HELP = "mask a degradation's top filters and write target and masked outputs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", help="baseline checkpoint (default: the bundled demo)")
    p.add_argument("--target", help="target checkpoint (default: the bundled demo)")
    p.add_argument("--scores", help="scores.npz from 'faig-gui analyze' (default: the demo's)")
    p.add_argument("--degradation", required=True, help="whose top filters to mask (e.g. blur)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--proportion", type=float, metavar="PERCENT", help="mask the top PERCENT %% of filters")
    g.add_argument("--top", type=int, metavar="N", help="mask the top N filters")
    p.add_argument("--mode", default="baseline", choices=MODES, help="replace with the baseline's kernel, or zero")
    p.add_argument("--lambda", dest="lam", type=float, default=0.0,
                   help="modulation λ in [0, 1.5]: θ ← λθ + (1−λ)·replacement (0: plain masking)")
    p.add_argument("--input", nargs="+", required=True, metavar="IMG")
    p.add_argument("--out", required=True)
    add_device(p)
    add_arch(p)


def resolve_pair_and_scores(args: argparse.Namespace):
    given = [args.baseline, args.target, args.scores]
    if any(given) and not all(given):
        raise FaigError("give all of --baseline, --target and --scores, or none (the bundled demo)")
    if not any(given):
        demo = demo_files()
        args.baseline, args.target, args.scores = demo.baseline, demo.target, demo.scores
    baseline, target = default_registry().load_pair(args.baseline, args.target, args.arch)
    index = FilterIndex.from_state_dict(target.state_dict)
    scores = read_scores(args.scores, index.total)
    return baseline, target, index, scores


def run(args: argparse.Namespace) -> int:
    baseline, target, index, scores = resolve_pair_and_scores(args)
    if args.degradation not in scores:
        raise FaigError(f"{args.scores}: no scores for '{args.degradation}'; it has {', '.join(scores)}")
    if args.proportion is not None and not 0 <= args.proportion <= 100:
        raise FaigError(f"--proportion {args.proportion} must be a percentage in [0, 100]")
    if args.top is not None and args.top < 0:
        raise FaigError("--top must not be negative")
    chosen = top_indices(scores[args.degradation], proportion=None if args.top is not None else args.proportion / 100,
                         count=args.top)
    mask = FilterMask(chosen, args.mode, args.lam)
    params = masked_state_dict(target.state_dict, baseline.state_dict, mask, index)
    device = resolve_device(args.device)
    out = output_dir(args.out)
    for path, stem in zip(args.input, output_stems(args.input)):
        lr = to_tensor(read_image(path))
        write_image(out / f"{stem}_target.png", to_image(super_resolve(target.module, lr, target.scale, device=device)))
        write_image(out / f"{stem}_masked.png",
                    to_image(super_resolve(target.module, lr, target.scale, params=params, device=device)))
        print(f"{stem}: masked {len(mask)} '{args.degradation}' filters -> {out}")
    return 0
