#!/usr/bin/env python
"""Prediction accuracy per label combination for a pair analysed for N degradations.

    .venv/bin/python scripts/eval_prediction_combos.py --demo srvgg3      # the second bundled pair

For every subset of the pair's degradations (clean = the empty set, each alone, each pair, ...,
all of them) the held-out crops of scripts/eval_prediction.py (chelsea, camera, coffee, text, cell; never
used for training or ranking) are degraded by the composed pipeline — every chosen blur on the
HR image, bicubic down, every chosen noise, every chosen JPEG last, as training mixes them — and
the predictor (calibrated as the window and `faig-gui predict` calibrate it: the bundled
content and the first analysis images) must name exactly that subset.
Writes a JSON report and replaces the section between the markers below in docs/prediction.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from build_demo import PAIRS, SHIPPED_SRVGG  # noqa: E402
from eval_prediction import heldout_crops, run_class  # noqa: E402
from faig_gui.core.degradations import Degradation, Step  # noqa: E402
from faig_gui.core.prediction.calibration import INTERVAL_COVERAGE  # noqa: E402

BEGIN, END = "<!-- prediction-combos:begin -->", "<!-- prediction-combos:end -->"


def composed(chosen: list[Degradation]) -> Degradation:
    """One pipeline of the chosen degradations: blurs, down, noises, JPEGs (the training order)."""
    before, noise, jpegs = [], [], []
    for d in chosen:
        kinds = [s.kind for s in d.steps]
        cut = kinds.index("down")
        before += list(d.steps[:cut])
        for st in d.steps[cut + 1:]:
            (jpegs if st.kind == "jpeg" else noise).append(st)
    name = "+".join(d.name for d in chosen) or "clean"
    return Degradation(name, pipeline=(*before, Step("down"), *noise, *jpegs))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo", default="srvgg3", help="a bundled demo's name (core/demo.py)")
    p.add_argument("--proportion", type=float, default=1.0)
    p.add_argument("--crops", type=int, default=10, help="random crops per held-out image")
    p.add_argument("--side", type=int, default=128, help="HR crop side")
    p.add_argument("--seed", type=int, default=1)
    # beside the shipped second pair's evaluation report (build_demo names which recipe that is)
    p.add_argument("--json", default=str(ROOT / "docs" / PAIRS[SHIPPED_SRVGG]["results"] / "prediction_combos.json"))
    p.add_argument("--docs", default=str(ROOT / "docs" / "prediction.md"))
    args = p.parse_args()

    from faig_gui.core.dataset import load_hr_folder
    from faig_gui.core.demo import demo_files
    from faig_gui.core.imageio import to_tensor
    from faig_gui.core.prediction import Predictor, PredictorConfig
    from faig_gui.core.prediction.content import calibration_images
    from faig_gui.core.registry import default_registry
    from faig_gui.core.results import read_scores
    from faig_gui.core.filters import FilterIndex

    files = demo_files(args.demo)
    baseline, target = default_registry().load_pair(files.baseline, files.target)
    scores = read_scores(files.scores, FilterIndex.from_state_dict(target.state_dict).total)
    analysis_hr = [to_tensor(img) for img in load_hr_folder(files.analysis / "GT").values()]
    # calibrated as the window and `faig-gui predict` calibrate: the bundled content and the
    # first analysis images
    predictor = Predictor(baseline, target, scores, calibration_images(analysis_hr), files.degradations,
                          PredictorConfig(proportion=args.proportion, device="cpu"), cache=False)
    predictor.calibrate()
    crops = heldout_crops(args.crops, args.side, args.seed)
    degs = list(files.degradations)
    report = {"demo": args.demo, "proportion": args.proportion, "crops": len(crops), "side": args.side,
              "degradations": [d.spec() for d in degs], "combos": {}}
    k = 0
    for n in range(len(degs) + 1):
        for chosen in combinations(degs, n):
            deg = composed(list(chosen))
            res = run_class(predictor, crops, deg, {d.name for d in chosen}, args.seed + k)
            res["pipeline"] = deg.spec().partition("=")[2]
            report["combos"][deg.name] = res
            print(f"{deg.name}: {res['accuracy']:.3f}", file=sys.stderr, flush=True)
            k += 1
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1))
    write_docs(report, Path(args.docs), Path(args.json))
    return 0


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _strengths(res: dict) -> str:
    """'blur σ 2.1 (0.30); JPEG quality 10 (0)': each strength parameter's median reading over the
    crops where its degradation was found, and the median absolute error."""
    parts = []
    for key in res:
        if key.endswith("_median_estimate"):
            param = key[:-len("_median_estimate")]
            shown = param.replace("_sigma", " σ").replace("jpeg_quality", "JPEG quality")
            parts.append(f"{shown} {res[key]:.3g} ({res.get(param + '_median_abs_error', float('nan')):.2g})")
    return "; ".join(parts) or "–"


def write_docs(report: dict, docs: Path, json_path: Path) -> None:
    names = [s.partition("=")[0] for s in report["degradations"]]
    lines = [BEGIN, "", f"## Prediction with {len(names)} degradations: the `{report['demo']}` demo pair", "",
             f"`scripts/eval_prediction_combos.py --demo {report['demo']}` ({_rel(json_path)}): "
             f"{report['crops']} held-out crops of {report['side']}² per label combination, top "
             f"{report['proportion']:g} % filters per degradation ({', '.join(report['degradations'])}); "
             "a crop counts as right when the predicted set equals the true set exactly.", "",
             "| true labels | pipeline | exact-label accuracy | " + " | ".join(f"labelled {n}" for n in names)
             + f" | strength read where found (median; abs. error) | {100 * INTERVAL_COVERAGE:.0f} % interval holds |",
             "|---|---|---|" + "---|" * (len(names) + 2)]
    for name, res in report["combos"].items():
        cells = [name, f"`{res['pipeline']}`", f"{res['accuracy']:.2f}"] + \
            [f"{res['labelled'].get(n, 0):.2f}" for n in names] + [_strengths(res)]
        holds = res.get("interval_holds")
        cells.append("–" if holds is None else f"{holds:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", END]
    text = docs.read_text() if docs.exists() else ""
    block = "\n".join(lines)
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    docs.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
