"""`faig-gui evaluate`: the paper's comparison of FAIG, IG, |θ − θ̄| and random filters."""
from __future__ import annotations

import argparse
import json

from faig_gui.commands._common import (add_arch, add_degradations, add_device, degradations_from,
                                        drive_with_progress, output_dir, positive_int)
from faig_gui.core.errors import FaigError

HELP = ("rank filters with each method on analysis images, then measure on held-out images what "
        "masking each degradation's top filters does (report.json, report.md, effects.svg)")


def _list(text: str, kind=str) -> list:
    try:
        return [kind(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got '{text}'") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", required=True, help="baseline checkpoint (clean-trained)")
    p.add_argument("--target", required=True, help="target checkpoint (blind fine-tuned)")
    p.add_argument("--hr", required=True, help="folder of held-out HR images (measured, never ranked on)")
    p.add_argument("--analysis-hr", help="folder of HR images to rank on (default: every other image "
                                         "of --hr; the rest is held out)")
    p.add_argument("--methods", type=_list, default=["faig", "ig", "abs", "random"],
                   help="comma-separated: faig, ig, abs, random (default: all)")
    p.add_argument("--proportions", type=lambda t: _list(t, float), default=[1.0, 3.0, 5.0, 10.0],
                   help="percentages of filters to mask (default: 1,3,5,10)")
    p.add_argument("--steps", type=positive_int, default=100, help="path steps for faig and ig (paper: 100)")
    p.add_argument("--scores", action="append", default=[], metavar="[METHOD=]NPZ",
                   help="scores.npz from `faig-gui analyze --method METHOD` (default method: faig) to use "
                        "instead of ranking again on the analysis images; repeatable")
    add_degradations(p)
    p.add_argument("--seed", type=int, default=0, help="noise seed (held-out images use seed + 1) and random's seed")
    p.add_argument("--teaser", metavar="PNG", help="also write the teaser figure (input, target output, "
                                                   "output with the top FAIG filters masked; per degradation)")
    p.add_argument("--teaser-image", help="held-out image (file name) for the teaser (default: the first)")
    p.add_argument("--teaser-proportion", type=float, default=1.0, help="percent of filters masked in the teaser")
    add_device(p)
    add_arch(p)
    p.add_argument("--out", required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
    from faig_gui.core.distributed import from_environment
    ranks = from_environment(args.device)   # None unless started by torchrun with several ranks
    try:
        return _run(args, ranks)
    finally:
        if ranks is not None:
            ranks.close()


def _run(args: argparse.Namespace, ranks) -> int:
    from faig_gui.core.attribution import METHODS
    from faig_gui.core.dataset import load_hr_folder, make_degraded
    from faig_gui.core.device import resolve_device
    from faig_gui.core.evaluation import (EvaluationResult, evaluate, markdown_table, svg_plot,
                                          teaser_image)
    from faig_gui.core.filters import FilterIndex
    from faig_gui.core.imageio import write_image
    from faig_gui.core.registry import default_registry
    from faig_gui.core.results import atomic_write_text, read_scores

    for m in args.methods:
        if m not in METHODS:
            raise FaigError(f"--methods: unknown method '{m}'; use some of {', '.join(METHODS)}")
    baseline, target = default_registry().load_pair(args.baseline, args.target, args.arch)
    device = str(ranks.device) if ranks is not None else str(resolve_device(args.device))
    degradations = degradations_from(args)
    held_hr = load_hr_folder(args.hr)
    if args.analysis_hr:
        analysis_hr = load_hr_folder(args.analysis_hr)
    else:
        if len(held_hr) < 2:
            raise FaigError(f"{args.hr}: needs at least two images to split into analysis and held-out "
                            f"sets, or give --analysis-hr DIR")
        items = list(held_hr.items())
        analysis_hr, held_hr = dict(items[0::2]), dict(items[1::2])
    analysis = make_degraded(analysis_hr, target.scale, degradations, args.seed)
    heldout = make_degraded(held_hr, target.scale, degradations, args.seed + 1)
    given = {}
    for item in args.scores:
        method, sep, path = item.partition("=")
        if not sep:
            method, path = "faig", item
        if method not in METHODS:
            raise FaigError(f"--scores {item}: unknown method '{method}'; use one of {', '.join(METHODS)}")
        given[method] = read_scores(path, FilterIndex.from_state_dict(target.state_dict).total)
    out = output_dir(args.out)
    result = drive_with_progress(
        lambda should_stop: evaluate(baseline, target, analysis, heldout, args.methods, args.proportions,
                                 args.steps, device, args.seed, given, should_stop=should_stop, ranks=ranks),
        EvaluationResult, "evaluate", show=ranks is None or ranks.rank == 0)
    if ranks is not None and ranks.rank != 0:
        return 0   # rank 0 alone writes
    report = result.report()
    overlap = None
    if "faig" in result.scores:  # which filters rank high for two degradations (core/overlap.py)
        from faig_gui.core.overlap import filter_overlap
        overlap = filter_overlap(result.scores["faig"], FilterIndex.from_state_dict(target.state_dict),
                                 min(args.proportions))
        report["overlap"] = overlap.to_json()
    report.update(baseline=str(args.baseline), target=str(args.target), scores=args.scores,
                  blur_sigma=args.blur_sigma, noise_sigma=args.noise_sigma,
                  degradation_specs=[d.spec() for d in degradations],
                  world_size=ranks.world if ranks is not None else 1)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, allow_nan=True))
    atomic_write_text(out / "report.md", markdown_table(result) + ("\n" + overlap.markdown() if overlap else ""))
    atomic_write_text(out / "effects.svg", svg_plot(result))
    if args.teaser:
        if "faig" not in result.scores:
            raise FaigError("--teaser masks the top FAIG filters: include faig in --methods or give --scores")
        chosen = heldout[0]
        if args.teaser_image:
            matches = [i for i in heldout if i.name == args.teaser_image]
            if not matches:
                raise FaigError(f"--teaser-image {args.teaser_image}: not among the held-out images "
                                f"({', '.join(i.name for i in heldout)})")
            chosen = matches[0]
        write_image(args.teaser, teaser_image(baseline, target, result.scores["faig"], chosen,
                                              args.teaser_proportion, device=device))
        print(f"wrote {args.teaser}")
    print(markdown_table(result))
    print(f"wrote {out / 'report.json'}, {out / 'report.md'}, {out / 'effects.svg'} ({result.seconds:.0f} s)")
    return 0
