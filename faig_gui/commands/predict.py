"""`faig-gui predict`: which degradations an image has, from the target's discriminative filters."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from faig_gui.commands._common import add_arch, add_degradations, add_device, degradations_from
from faig_gui.core.errors import FaigError

HELP = ("predict each image's degradations (clean, blur, noise, ...) and their strength from the "
        "target's discriminative filters; without a model, the bundled demo")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMG", help="LR images to judge")
    p.add_argument("--session", help="a saved session (.faig): its pair, scores, analysis images, proportion")
    p.add_argument("--baseline", help="baseline checkpoint (with --target and --scores)")
    p.add_argument("--target", help="target checkpoint")
    p.add_argument("--scores", help="scores.npz from 'faig-gui analyze'")
    p.add_argument("--analysis-hr", metavar="DIR",
                   help="HR images to calibrate on besides the bundled diverse content (up to four "
                        "are used): the analysis images the scores came from (default: the "
                        "session's, else the bundled demo's)")
    p.add_argument("--proportion", type=float, metavar="PERCENT",
                   help="top PERCENT %% filters per degradation (default: the session's, else 1)")
    add_degradations(p)  # the degradations the scores were analysed for, in the scores' order
    p.add_argument("--json", action="store_true",
                   help='one JSON object per line: {"image", "labels", "scores", "confidence", "unsure", '
                        '"competing", "strength", "interval", "interval_coverage", "filters", "classical", '
                        '"estimates", "tiles", "outside", "hidden", "threads"}; "interval": per strength, '
                        '[low, high], meant to hold it for "interval_coverage" (0.8) of images; "outside": per '
                        'degradation, the evidence beyond the calibration\'s range (the answer is then unsure); '
                        '"hidden": the blurs the noise hides (the image\'s detail stands too little above its '
                        'noise to read one; unsure)')
    p.add_argument("--threads", type=int, metavar="N",
                   help="at most N torch threads (default: all cores; the count used is chosen by "
                        "measuring, as the window does: on shared cores one thread can be the faster)")
    p.add_argument("--no-cache", action="store_true",
                   help="calibrate again instead of loading the stored calibration for this pair, scores, "
                        "proportion and analysis images (the new one replaces it; the cache folder is "
                        "$FAIG_GUI_CACHE_DIR, else $XDG_CACHE_HOME/faig-gui or ~/.cache/faig-gui)")
    add_device(p)
    add_arch(p)


def build_predictor(args: argparse.Namespace):
    from faig_gui.core.dataset import load_hr_folder
    from faig_gui.core.demo import demo_files
    from faig_gui.core.device import resolve_device
    from faig_gui.core.imageio import to_tensor
    from faig_gui.core.prediction import Predictor, PredictorConfig
    from faig_gui.core.registry import default_registry
    from faig_gui.core.results import read_scores

    given = [args.baseline, args.target, args.scores]
    if args.session and any(given):
        raise FaigError("give --session, or --baseline/--target/--scores, not both")
    if any(given) and not all(given):
        raise FaigError("give all of --baseline, --target and --scores, or none (the bundled demo)")
    device = str(resolve_device(args.device))
    degradations = degradations_from(args)
    proportion = args.proportion
    analysis_hr = None
    if args.session:
        from faig_gui.core.session import Session
        session = Session.open(args.session)
        if session.baseline is None or session.target is None:   # not session.ready, for the type checker
            raise FaigError(f"{args.session}: the session has no baseline/target pair")
        if not session.scores:
            raise FaigError(f"{args.session}: the session has no scores yet; run the analysis first")
        baseline, target, scores = session.baseline, session.target, session.scores
        degradations = session.settings.degradations
        proportion = proportion if proportion is not None else session.mask_settings.proportion
        if session.analysis_images:
            analysis_hr = [img.hr for img in session.analysis_images]
    else:
        if not any(given):
            demo = demo_files()
            args.baseline, args.target, args.scores = demo.baseline, demo.target, demo.scores
        baseline, target = default_registry().load_pair(args.baseline, args.target, args.arch)
        scores = read_scores(args.scores, _filter_count(target))
    if analysis_hr is None:
        folder = args.analysis_hr
        if folder is None:
            folder = demo_analysis_gt()
        analysis_hr = [to_tensor(img) for img in load_hr_folder(folder).values()]
    config = PredictorConfig(proportion=proportion if proportion is not None else 1.0, device=device)
    from faig_gui.core.prediction.content import OWN_IMAGES, calibration_images
    predictor = Predictor(baseline, target, scores, calibration_images(analysis_hr), degradations, config,
                          cache=not getattr(args, "no_cache", False))
    own = min(len(analysis_hr), OWN_IMAGES)
    predictor.content_note = f"{len(predictor.analysis_hr) - own} bundled images and {own} analysis images"
    return predictor


def _filter_count(target) -> int:
    from faig_gui.core.filters import FilterIndex
    return FilterIndex.from_state_dict(target.state_dict).total


def demo_analysis_gt() -> Path:
    from faig_gui.core.demo import demo_files
    folder = Path(demo_files().analysis) / "GT"
    if not folder.is_dir():
        raise FaigError(f"{folder}: the bundled demo's analysis images are missing; give --analysis-hr DIR")
    return folder


def run(args: argparse.Namespace) -> int:
    from faig_gui.core.imageio import read_image
    from faig_gui.core.threads import AdaptiveThreads
    predictor = build_predictor(args)
    if predictor.load_cached():
        if not args.json:
            print(f"calibration: loaded from cache ({predictor.cache_path})", file=sys.stderr, flush=True)
    else:
        if not args.json:
            print(f"calibrating on {predictor.content_note} "
                  f"(top {predictor.config.proportion:g} % filters of {', '.join(predictor.names)}) ...",
                  file=sys.stderr, flush=True)
        predictor.calibrate()
        if predictor.cache_warning and not args.json:
            print(f"calibration: not stored for next time: {predictor.cache_warning}", file=sys.stderr, flush=True)
    failed = 0
    tuner, limit = AdaptiveThreads(), thread_limit(getattr(args, "threads", None))
    for path in args.images:
        try:
            image = read_image(path)
            # as the window does (threads.py): measure, keep the fastest count, re-measure now and then
            threads = tuner.apply(limit)
            start = time.perf_counter()
            result = predictor.predict(image)
            tuner.record(threads, time.perf_counter() - start, image.shape[0] * image.shape[1])
        except FaigError as exc:
            print(f"faig-gui: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            print(json.dumps({**result.to_json(str(path)), "threads": threads}), flush=True)
        else:
            conf = "  ".join(f"{d} {v:.2f}" for d, v in result.scores.items())
            # (as before: only with the noise and re-blur estimates, the two every pair measures)
            classical = (f"  classical: {result.classical_note()}"
                         if {"noise_estimate", "blur_estimate"} <= set(result.estimates) else "")
            note = f"  [{result.note}]" if result.note else ""
            note += f"  [{result.hidden_note()}]" if result.hidden else ""
            print(f"{path}: {result.describe()}   ({conf}; confidence {result.confidence:.2f}){classical}{note}",
                  flush=True)
    return 2 if failed else 0


def thread_limit(given: int | None) -> int:
    """At most this many torch threads: ``--threads``, else the cores this process may use."""
    if given is not None:
        if given < 1:
            raise FaigError(f"--threads {given}: give at least 1")
        return given
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
