from __future__ import annotations

import argparse

from faig_gui.commands._common import add_arch, add_device, output_dir
from faig_gui.core.demo import demo_files
from faig_gui.core.device import resolve_device
from faig_gui.core.errors import FaigError
from faig_gui.core.filters import FilterIndex, top_indices
from faig_gui.core.exports import montage, montage_row, output_stems, write_masked_outputs
from faig_gui.core.imageio import read_image, write_image
from faig_gui.core.masking import MODES, FilterMask, masked_state_dict
from faig_gui.core.registry import default_registry
from faig_gui.core.results import load_scores

HELP = "mask a degradation's top filters and write target and masked outputs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", help="baseline checkpoint (default: the bundled demo)")
    p.add_argument("--target", help="target checkpoint (default: the bundled demo)")
    p.add_argument("--scores", help="scores.npz from 'faig-gui analyze', or a ranked list "
                                    "(<degradation>_index.txt, one 0-based filter index per line, best first, "
                                    "as the FAIG authors' scripts write them); default: the demo's scores")
    p.add_argument("--degradation", help="whose top filters to mask (e.g. blur); for a ranked list, the name "
                                         "its file gives (blur_index.txt: blur) unless given here")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--proportion", type=float, metavar="PERCENT", help="mask the top PERCENT %% of filters")
    g.add_argument("--top", type=int, metavar="N", help="mask the top N filters")
    p.add_argument("--mode", default="baseline", choices=MODES, help="replace with the baseline's kernel, or zero")
    p.add_argument("--lambda", dest="lam", type=float, default=0.0,
                   help="modulation λ in [0, 1.5]: θ ← λθ + (1−λ)·replacement (0: plain masking)")
    p.add_argument("--input", nargs="+", required=True, metavar="IMG")
    p.add_argument("--out", required=True)
    p.add_argument("--montage", metavar="PNG", help="also write one image like the teaser: per input, "
                                                    "input / target output / masked output")
    add_device(p)
    add_arch(p)


def resolve_pair_and_scores(args: argparse.Namespace):
    """The pair (given, or the bundled demo's when neither --baseline nor --target is given) and
    the scores (given, or the demo's with the demo pair)."""
    if bool(args.baseline) != bool(args.target):
        raise FaigError("give both --baseline and --target, or neither (the bundled demo pair)")
    if not args.baseline:
        demo = demo_files()
        args.baseline, args.target = demo.baseline, demo.target
        args.scores = args.scores or demo.scores
    elif not args.scores:
        raise FaigError("give --scores for this pair (scores.npz from 'faig-gui analyze', or a <degradation>_index.txt)")
    baseline, target = default_registry().load_pair(args.baseline, args.target, args.arch)
    index = FilterIndex.from_state_dict(target.state_dict)
    scores = load_scores(args.scores, index.total, args.degradation)
    return baseline, target, index, scores


def chosen_degradation(args: argparse.Namespace, scores: dict) -> str:
    if args.degradation is None:
        if len(scores) != 1:
            raise FaigError(f"{args.scores} ranks several degradations ({', '.join(scores)}): choose one with --degradation")
        return next(iter(scores))
    if args.degradation not in scores:
        raise FaigError(f"{args.scores}: no scores for '{args.degradation}'; it has {', '.join(scores)}")
    return args.degradation


def run(args: argparse.Namespace) -> int:
    baseline, target, index, scores = resolve_pair_and_scores(args)
    args.degradation = chosen_degradation(args, scores)
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
    inputs = ((stem, read_image(path)) for path, stem in zip(args.input, output_stems(args.input)))
    rows = []

    def done(stem, lr, target_out, masked_out) -> None:
        print(f"{stem}: masked {len(mask)} '{args.degradation}' filters -> {out}")
        if args.montage:
            rows.append(montage_row(lr, target.scale, target_out, masked_out))

    write_masked_outputs(target.module, params, target.scale, inputs, out, device, done)
    if args.montage:
        write_image(args.montage, montage(rows))
        print(f"montage of {len(rows)} inputs -> {args.montage}")
    return 0
