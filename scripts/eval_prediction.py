#!/usr/bin/env python
"""Accuracy and calibration of degradation prediction on held-out content; writes docs/prediction.md,
a plot and a reliability diagram.

    .venv/bin/python scripts/eval_prediction.py --draws 3                   # the bundled demo pair
    .venv/bin/python scripts/eval_prediction.py --baseline B --target T --scores S.npz --analysis-hr DIR

Held-out content: random HR crops of scikit-image's pictures in HELDOUT (chelsea, camera, coffee,
text, cell), which the calibration never sees (scripts/make_calibration_set.py: the bundled
calibration content is other pictures; split by picture, not by crop). Each crop is degraded as
docs/method.md says (blur on HR, x2 bicubic down, noise, 8-bit rounding) with a seeded
generator; "clean JPEG" is the clean LR image compressed at quality 75.

Reported: exact-label accuracy (the predicted set of degradations equals the true set; clean is
the empty set) at the paper's levels over ``--draws`` draws of crops, pooled; confident errors
(a wrong label set with confidence >= 0.8); the expected calibration error of the per-degradation
probabilities and a reliability diagram; the unsure answers; the same accuracy from the filters'
evidence alone (without the classical estimates); accuracy against blur σ and noise σ, and the
error of the strength estimate and how often its interval holds the truth.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "scripts"))

from faig_gui.core.degradations import Degradation, degrade, jpeg, seeded_generator  # noqa: E402
from faig_gui.core.errors import FaigError  # noqa: E402
from faig_gui.core.prediction import Predictor  # noqa: E402
from faig_gui.core.prediction.calibration import INTERVAL_COVERAGE  # noqa: E402
from faig_gui.core.prediction.logistic import reliability  # noqa: E402
from build_demo import skimage_picture  # noqa: E402
from make_calibration_set import CALIBRATION, HELDOUT  # noqa: E402

CONFIDENT = 0.8
BLUR_SIGMAS = (1.0, 1.5, 2.0, 3.0)
NOISE_SIGMAS = (0.02, 0.05, 0.1, 0.2)


def heldout_crops(count: int, side: int, seed: int) -> list[torch.Tensor]:
    """``count`` random side x side HR crops per held-out image (seeded), 1x3xHxW in [0, 1]."""
    rng = np.random.default_rng(seed)
    crops = []
    for name in HELDOUT:
        assert name not in CALIBRATION
        img = skimage_picture(name).astype(np.float32) / 255.0
        h, w = img.shape[:2]
        for _ in range(count):
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            crop = np.ascontiguousarray(img[y:y + side, x:x + side].transpose(2, 0, 1))
            crops.append(torch.from_numpy(crop).unsqueeze(0))
    return crops


def run_class(predictor: Predictor, crops: list[torch.Tensor], degradation: Degradation,
              truth: set[str], seed: int, quality: int | None = None, records: list | None = None,
              name: str = "") -> dict:
    """Predicts every crop degraded by ``degradation`` (then JPEG at ``quality``, if given); each
    verdict is appended to ``records`` as a dict (class ``name``, held-out picture, truth, labels,
    probabilities, confidence, ...). ``crops`` are :func:`heldout_crops`' (picture by picture)."""
    correct, errors, times, per_label = 0, {}, [], {d: 0 for d in predictor.names}
    inside, widths = [], []
    for n, hr in enumerate(crops):
        lr = degrade(hr, predictor.model.target.scale, degradation, seeded_generator(seed * 100003 + n))
        if quality is not None:
            lr = jpeg(lr, quality)
        t0 = time.perf_counter()
        result = predictor.predict(lr)
        times.append(time.perf_counter() - t0)
        right = set(result.labels) == truth
        correct += right
        for d in result.labels:
            per_label[d] += 1
        # the filters' evidence alone along the same decisions (without the classical estimates)
        filters_labels = {d for d, p in result.filters.items() if p > 0.5}
        if records is not None:
            records.append({"class": name, "picture": HELDOUT[n * len(HELDOUT) // len(crops)],
                            "truth": sorted(truth), "labels": list(result.labels), "scores": dict(result.scores),
                            "confidence": result.confidence, "unsure": result.unsure,
                            "filters_right": filters_labels == truth if result.filters else None,
                            "tiles": result.tiles, "spectral_blur": result.estimates.get("spectral_blur")})
        for d, params in result.strength.items():
            if d not in truth:
                continue
            for key, est in params.items():
                true = getattr(degradation, key, None)
                if true:
                    errors.setdefault(key, []).append((est, true))
                    lo, hi = result.interval.get(d, {}).get(key, (float("nan"), float("nan")))
                    inside.append(lo <= true <= hi)
                    widths.append((hi - lo) / true)
    out = {"n": len(crops), "accuracy": correct / len(crops),
           "labelled": {d: c / len(crops) for d, c in per_label.items()},
           "ms_per_image": 1000 * float(np.median(times))}
    if inside:
        out["interval_holds"] = float(np.mean(inside))
        out["interval_rel_width"] = float(np.median(widths))   # (high - low) / true, every parameter
    for key, pairs in errors.items():
        est, true = np.array(pairs).T
        out[f"{key}_median_estimate"] = float(np.median(est))
        out[f"{key}_median_abs_error"] = float(np.median(np.abs(est - true)))
        out[f"{key}_median_rel_error"] = float(np.median(np.abs(est - true) / true))
    return out


def correct(r: dict) -> bool:
    """Whether a record's label set is its truth."""
    return set(r["labels"]) == set(r["truth"])


def accuracy_of(records: list[dict]) -> float:
    """The share of ``records`` whose label set is their truth."""
    return float(np.mean([correct(r) for r in records]))


def confident_errors_of(records: list[dict]) -> float:
    """The share of ``records`` wrong with a confidence of at least :data:`CONFIDENT`."""
    return float(np.mean([not correct(r) and r["confidence"] >= CONFIDENT for r in records]))


def probabilities_of(records: list[dict], names: list[str]) -> tuple[list[float], list[bool]]:
    """Every per-degradation probability of ``records`` and whether that degradation was there."""
    return ([r["scores"][d] for r in records for d in names], [d in r["truth"] for r in records for d in names])


def pooled(records: list[dict], names: list[str]) -> dict:
    """Confident errors, ECE (per-degradation probabilities), unsure answers, accuracy without the
    classical estimates, over the verdicts in ``records``."""
    n = len(records)
    wrong = [not correct(r) for r in records]
    ece, bins = reliability(*probabilities_of(records, names))
    unsure = [r["unsure"] for r in records]
    sure_right = [not w for w, u in zip(wrong, unsure) if not u]
    filt = [r["filters_right"] for r in records if r["filters_right"] is not None]
    return {"n": n, "accuracy": accuracy_of(records), "confident_errors": confident_errors_of(records),
            "ece": ece, "bins": bins, "unsure": float(np.mean(unsure)),
            "accuracy_when_sure": float(np.mean(sure_right)) if sure_right else float("nan"),
            "wrong_and_unsure": float(np.mean([w and u for w, u in zip(wrong, unsure)])),
            "filters_accuracy": float(np.mean(filt)) if filt else float("nan")}


#: resamples behind the intervals of the accuracy, confident errors and ECE (:func:`sampling_interval`)
RESAMPLES = 2000
#: their coverage: the central 90 % of the resampled figures
INTERVAL = 0.9


def ece_of(records: list[dict], names: list[str]) -> float:
    """The expected calibration error (10 bins) of the per-degradation probabilities of ``records``."""
    return reliability(*probabilities_of(records, names))[0]


def sampling_interval(records: list[dict], statistic, resamples: int = RESAMPLES, coverage: float = INTERVAL,
                      seed: int = 0) -> tuple[float, float]:
    """How far ``statistic(records)`` would move with other crops of the same held-out pictures: the
    central ``coverage`` of it over ``resamples`` bootstrap resamples, each drawing every (picture,
    class) group's records again with replacement, as many as it holds (the held-out set's design
    kept: as many crops of each picture and class). Other *content* moves a figure further than
    this (the per-picture table shows how far)."""
    groups: dict = {}
    for i, r in enumerate(records):
        groups.setdefault((r["picture"], r["class"]), []).append(i)
    index = [np.asarray(v) for v in groups.values()]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        pick = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in index])
        values.append(statistic([records[i] for i in pick]))
    lo, hi = np.quantile(values, [(1 - coverage) / 2, (1 + coverage) / 2])
    return float(lo), float(hi)


def calibrated_ece(records: list[dict], names: list[str], resamples: int = RESAMPLES, seed: int = 0
                   ) -> tuple[float, float]:
    """What the ECE of ``records``' probabilities would read if they were perfectly calibrated: the
    outcomes drawn as Bernoulli(p) for each probability p, ``resamples`` times; the mean and the
    ``INTERVAL`` quantile above which it reads only 5 % of the time. A finite sample's ECE is not 0
    even then (each bin's frequency has its binomial spread), so this is the floor the measured
    ECE stands against."""
    p = np.asarray([r["scores"][d] for r in records for d in names], dtype=np.float64)   # (no truth needed)
    rng = np.random.default_rng(seed)
    values = [reliability(p, rng.random(p.shape) < p)[0] for _ in range(resamples)]
    return float(np.mean(values)), float(np.quantile(values, (1 + INTERVAL) / 2))


def sampling_spread(report: dict) -> dict:
    """The sampling intervals (:func:`sampling_interval`) of the paper-level figures the docs
    print, from the report's records: each paper class's exact-label accuracy (keyed by class), the
    pooled accuracy, confident errors and ECE ('paper accuracy', 'paper confident', 'paper ece'),
    and the ECE a calibrated predictor would read on them ('paper floor' and, over every input,
    'all floor': mean, 95th percentile). The sweeps hold one draw's crops of a picture per level
    (``--crops``, 4 by default), too few to resample (a picture whose crops all agree gives no
    spread at all), so figures with them get no interval. Empty for a report without records (an
    older run's JSON)."""
    records = report.get("records")
    if not records:
        return {}
    names = list(records[0]["scores"])
    n_paper = sum(r["n"] for r in report["paper"].values())
    paper = records[:n_paper]
    out = {name: sampling_interval([r for r in paper if r["class"] == name], accuracy_of) for name in report["paper"]}
    out["paper accuracy"] = sampling_interval(paper, accuracy_of)
    out["paper confident"] = sampling_interval(paper, confident_errors_of)
    out["paper ece"] = sampling_interval(paper, lambda rs: ece_of(rs, names))
    out["paper floor"] = calibrated_ece(paper, names)
    out["all floor"] = calibrated_ece(records, names)
    return out


def evaluate(predictor: Predictor, draws: list[list[torch.Tensor]], seed: int, sweep_draws: int = 1) -> dict:
    """The paper's classes and clean JPEGs over every draw of crops (pooled), the sweeps over the
    first ``sweep_draws``."""
    blur, noise = predictor.definitions.get("blur"), predictor.definitions.get("noise")
    if blur is None or noise is None:
        raise FaigError("this evaluation needs the pair analysed for 'blur' and 'noise'")
    b, s = blur.blur_sigma, noise.noise_sigma
    paper = {
        "clean": (Degradation("clean"), set(), None),
        "blur": (Degradation("blur", blur_sigma=b), {"blur"}, None),
        "noise": (Degradation("noise", noise_sigma=s), {"noise"}, None),
        "blur+noise": (Degradation("blur+noise", blur_sigma=b, noise_sigma=s), {"blur", "noise"}, None),
        "clean JPEG q75": (Degradation("clean"), set(), 75),
    }
    report = {"paper": {}, "blur_sweep": {}, "noise_sweep": {}, "blur+noise_sweep": {}}
    records: list[dict] = []
    for k, (name, (deg, truth, quality)) in enumerate(paper.items()):
        runs = [run_class(predictor, crops, deg, truth, seed + 1000 * j + k, quality, records, name)
                for j, crops in enumerate(draws)]
        report["paper"][name] = merge(runs)
        print(f"paper {name}: {report['paper'][name]['accuracy']:.3f}", file=sys.stderr, flush=True)
    sweep_crops = [c for crops in draws[:sweep_draws] for c in crops]
    for k, sigma in enumerate(BLUR_SIGMAS):
        if sigma != b:
            report["blur_sweep"][str(sigma)] = run_class(predictor, sweep_crops, Degradation("blur", blur_sigma=sigma),
                                                         {"blur"}, seed + 10 + k, None, records, f"blur σ {sigma:g}")
            report["blur+noise_sweep"][f"blur {sigma}"] = run_class(
                predictor, sweep_crops, Degradation("b+n", blur_sigma=sigma, noise_sigma=s), {"blur", "noise"},
                seed + 20 + k, None, records, f"blur σ {sigma:g} + noise")
        else:
            report["blur_sweep"][str(sigma)] = report["paper"]["blur"]
            report["blur+noise_sweep"][f"blur {sigma}"] = report["paper"]["blur+noise"]
        print(f"blur {sigma}: {report['blur_sweep'][str(sigma)]['accuracy']:.3f}", file=sys.stderr, flush=True)
    for k, sigma in enumerate(NOISE_SIGMAS):
        if sigma != s:
            report["noise_sweep"][str(sigma)] = run_class(predictor, sweep_crops, Degradation("noise", noise_sigma=sigma),
                                                          {"noise"}, seed + 30 + k, None, records, f"noise σ {sigma:g}")
            report["blur+noise_sweep"][f"noise {sigma}"] = run_class(
                predictor, sweep_crops, Degradation("b+n", blur_sigma=b, noise_sigma=sigma), {"blur", "noise"},
                seed + 40 + k, None, records, f"blur + noise σ {sigma:g}")
        else:
            report["noise_sweep"][str(sigma)] = report["paper"]["noise"]
            report["blur+noise_sweep"][f"noise {sigma}"] = report["paper"]["blur+noise"]
        print(f"noise {sigma}: {report['noise_sweep'][str(sigma)]['accuracy']:.3f}", file=sys.stderr, flush=True)
    n_paper = sum(r["n"] for r in report["paper"].values())
    report["pooled_paper"] = pooled(records[:n_paper], predictor.names)
    report["pooled_all"] = pooled(records, predictor.names)
    report["per_picture"] = per_picture(records[:n_paper])
    softness = native_softness(records[:n_paper])
    if softness:
        report["softness"] = softness
    report["records"] = records
    return report


#: the pairs of classes a threshold on one degradation's probability sets against each other, that
#: degradation, and the accuracy the issue asks of the class that holds it (docs/prediction.md)
THRESHOLD_PAIRS = (("clean", "blur", "blur", 0.95), ("clean JPEG q75", "blur", "blur", 0.95),
                   ("noise", "blur+noise", "blur", 0.85))


def threshold_bound(records: list[dict], negative: str, positive: str, d: str, floor: float) -> dict | None:
    """What the probabilities of ``records`` could reach with another threshold on d's. Each verdict
    of classes ``negative`` (without d) and ``positive`` (with it) is relabelled with d where d's
    probability is at least t, its other labels kept, for every t that splits the inputs
    differently (one between each two probabilities seen, one below and one above them all) and
    0.5. Returns the t that gives ``negative`` its highest exact-label accuracy while ``positive``
    keeps at least ``floor``: {'threshold', 'negative_accuracy', 'positive_accuracy', 'at_half'
    (the two accuracies at 0.5)}; None when either class is missing or no t keeps ``positive`` at
    ``floor``. The threshold is chosen on these very inputs, which no predictor can do: an upper
    bound on what any monotone recalibration of d's probability (a Platt map, prior odds, class
    weights) could give."""
    neg = [r for r in records if r["class"] == negative]
    pos = [r for r in records if r["class"] == positive]
    if not neg or not pos:
        return None

    def accuracy(rows: list[dict], t: float) -> float:
        right = [({x for x in r["labels"] if x != d} | ({d} if r["scores"][d] >= t else set())) == set(r["truth"])
                 for r in rows]
        return float(np.mean(right))

    seen = sorted({r["scores"][d] for r in neg + pos})
    candidates = sorted({0.5, seen[0] / 2, (seen[-1] + 1) / 2, *((a + b) / 2 for a, b in zip(seen, seen[1:]))})
    found = None
    for t in candidates:
        a_pos = accuracy(pos, t)
        if a_pos < floor:
            continue
        a_neg = accuracy(neg, t)
        if found is None or a_neg > found["negative_accuracy"]:
            found = {"threshold": t, "negative_accuracy": a_neg, "positive_accuracy": a_pos}
    if found is not None:
        found["at_half"] = (accuracy(neg, 0.5), accuracy(pos, 0.5))
    return found


def threshold_bounds(records: list[dict]) -> list[dict]:
    """:func:`threshold_bound` for each of :data:`THRESHOLD_PAIRS`, over every held-out picture and
    over all but the one with the most wrong answers among those classes (named: the figure
    without it says how much of the gap is that picture's)."""
    out = []
    for negative, positive, d, floor in THRESHOLD_PAIRS:
        rows = [r for r in records if r["class"] in (negative, positive)]
        if not rows or any(d not in r["scores"] for r in rows):
            continue
        misses: dict = {}
        for r in rows:
            misses[r["picture"]] = misses.get(r["picture"], 0) + (not correct(r))
        worst = max(misses, key=lambda p: misses[p])
        for without in (None, worst):
            bound = threshold_bound([r for r in rows if r["picture"] != without], negative, positive, d, floor)
            if bound is not None:
                out.append({"negative": negative, "positive": positive, "degradation": d, "floor": floor,
                            "without": without, **bound})
    return out


def per_picture(records: list[dict]) -> dict:
    """Exact-label accuracy per held-out picture and class: {picture: {class: (right, n)}}."""
    out: dict = {}
    for r in records:
        right, n = out.setdefault(r["picture"], {}).get(r["class"], (0, 0))
        out[r["picture"]][r["class"]] = (right + correct(r), n + 1)
    return out


def native_softness(records: list[dict]) -> dict:
    """How soft each held-out picture is as shipped: the median spectral blur (LR px) of its clean
    crops, against the median over every picture of the crops blurred at the paper's level (class
    'blur'). A picture whose clean crops read at least that is as soft as a blurred one before any
    blur is added (a band-limited picture: a microscope's, an out-of-focus photograph's), so the
    'clean' truth and the image disagree there. {'blurred': median, 'pictures': {picture: median},
    'soft': [pictures]}; empty when the records carry no spectral blur (an older run's JSON)."""
    def median(rows):
        v = [r["spectral_blur"] for r in rows if r.get("spectral_blur") is not None]
        return float(np.median(v)) if v else None

    blurred = median([r for r in records if r["class"] == "blur"])
    pictures = {p: median([r for r in records if r["class"] == "clean" and r["picture"] == p])
                for p in dict.fromkeys(r["picture"] for r in records)}
    if blurred is None or any(v is None for v in pictures.values()):
        return {}
    return {"blurred": blurred, "pictures": pictures, "soft": [p for p, v in pictures.items() if v >= blurred]}


def merge(runs: list[dict]) -> dict:
    """One class's runs over several draws as one (counts added, medians over the draws' medians)."""
    n = sum(r["n"] for r in runs)
    out = {"n": n, "accuracy": sum(r["accuracy"] * r["n"] for r in runs) / n,
           "labelled": {d: sum(r["labelled"][d] * r["n"] for r in runs) / n for d in runs[0]["labelled"]},
           "ms_per_image": float(np.median([r["ms_per_image"] for r in runs]))}
    for key in runs[0]:
        if key.endswith(("_estimate", "_error")) or key in ("interval_holds", "interval_rel_width"):
            vals = [r[key] for r in runs if key in r]
            out[key] = float(np.median(vals))
    return out


def plot(report: dict, path: Path) -> None:
    """Two panels: accuracy against blur σ and against noise σ (opencv drawing, no matplotlib)."""
    w, h, pad = 900, 380, 60
    img = np.full((h, w, 3), 255, np.uint8)
    combined = report["blur+noise_sweep"]
    panels = [("blur sigma", BLUR_SIGMAS, report["blur_sweep"], [combined[f"blur {s}"] for s in BLUR_SIGMAS]),
              ("noise sigma", NOISE_SIGMAS, report["noise_sweep"], [combined[f"noise {s}"] for s in NOISE_SIGMAS])]
    pw = (w - 3 * pad) // 2
    for p, (title, xs, alone, both) in enumerate(panels):
        x0, y0, y1 = pad + p * (pw + pad), pad - 20, h - pad
        cv2.rectangle(img, (x0, y0), (x0 + pw, y1), (0, 0, 0), 1)
        for frac in (0, 0.25, 0.5, 0.75, 1.0):
            y = int(y1 - frac * (y1 - y0))
            cv2.line(img, (x0, y), (x0 + pw, y), (225, 225, 225), 1)
            cv2.putText(img, f"{frac:.2f}", (x0 - 45, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        pos = [int(x0 + 30 + k * (pw - 60) / (len(xs) - 1)) for k in range(len(xs))]
        for k, x in enumerate(xs):
            cv2.putText(img, f"{x:g}", (pos[k] - 12, y1 + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, title, (x0 + pw // 2 - 40, y1 + 40), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        series = [([alone[str(x)]["accuracy"] for x in xs], (200, 80, 0), "alone"),
                  ([r["accuracy"] for r in both], (0, 90, 220), "with the other at the paper level")]
        for s_i, (vals, colour, label) in enumerate(series):
            pts = [(pos[k], int(y1 - v * (y1 - y0))) for k, v in enumerate(vals)]
            for a, b in zip(pts, pts[1:]):
                cv2.line(img, a, b, colour, 2, cv2.LINE_AA)
            for pt in pts:
                cv2.circle(img, pt, 4, colour, -1, cv2.LINE_AA)
            cv2.putText(img, label, (x0 + 8, y0 + 18 + 16 * s_i), cv2.FONT_HERSHEY_SIMPLEX, 0.42, colour, 1, cv2.LINE_AA)
    cv2.putText(img, "exact-label accuracy of degradation prediction (held-out crops)", (pad, 22),
                cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


DEVELOPMENT_NOTES = """## How the evidence came to be

Notes kept from the method's development (they used to sit in the code's docstrings); the
evidence kinds are named as in `faig_gui/core/prediction/evidence.py`.

- `masking_effect`, `change_response` and their relative forms carry the image content from
  one image to the next; the shares (`masking_effect_share`, `change_response_share`) cancel
  much of it, but with a single analysed degradation they are constant and do not vote.
- `residual_response` and `relative_residual_response` (the change response on the d-masked
  output brought back to the input size) were meant to separate blur+noise from noise-only,
  where the network's noise path dominates the masking effect and the change response. They
  cost two more passes per degradation and added little on the measured pairs, so they are
  off by default.
- The self-referenced kinds were added for that case instead: a noisy cat's fur read as blur
  to every absolute evidence, and sharp textures as blurred ones. The references' noise has the
  input's own level (the robust σ of what the restoration removed, scaled to the true σ on the
  calibration samples), which reads the level closer than a calibration curve.
- Two noise draws per reference: one draw's noise moves the self-referenced effect by about
  0.16 from draw to draw (a third of its spread between blur+noise images). On the held-out
  content two draws raised the blur decision's separation of noise-only from blur+noise (area
  under the ROC curve of its calibrated model 0.81 -> 0.87). They cost a second pass through
  the references; measuring only the tiles the evidence is taken from (a blur's textured half)
  pays for it.
- Calibration samples with d at its analysed level or stronger count as holding d: the evidence
  is not always monotone in the level, and a threshold set against the analysed level alone
  read strong blur as clean.
- The change response is measured at every fourth output row and column (a sixteenth of the
  positions): on the demo pair's tiles the change response and its relative form moved by at
  most 4 % from the mean over all positions, far inside their calibrated spreads.
"""


def reliability_plot(bins: list, ece: float, path: Path) -> None:
    """Reliability diagram (observed frequency against predicted probability, bins of 0.1; the
    diagonal is perfect calibration; the number is each bin's count)."""
    w = h = 420
    pad = 50
    img = np.full((h, w, 3), 255, np.uint8)
    x0, y0, x1, y1 = pad, 30, w - 20, h - pad
    cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)
    cv2.line(img, (x0, y1), (x1, y0), (170, 170, 170), 1, cv2.LINE_AA)
    for f in (0, 0.5, 1.0):
        cv2.putText(img, f"{f:g}", (x0 - 25, int(y1 - f * (y1 - y0)) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        cv2.putText(img, f"{f:g}", (int(x0 + f * (x1 - x0)) - 6, y1 + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    for k in range(10):
        lo = x0 + k * (x1 - x0) / 10
        members = [b for b in bins if k / 10 <= b[0] < (k + 1) / 10 or (k == 9 and b[0] == 1.0)]
        if not members:
            continue
        conf, freq, count = members[0]
        top = int(y1 - freq * (y1 - y0))
        cv2.rectangle(img, (int(lo) + 2, top), (int(lo + (x1 - x0) / 10) - 2, y1), (220, 160, 90), -1)
        cv2.circle(img, (int(x0 + conf * (x1 - x0)), int(y1 - conf * (y1 - y0))), 3, (0, 0, 200), -1)
        cv2.putText(img, str(count), (int(lo) + 4, max(top - 4, y0 + 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1)
    cv2.putText(img, f"reliability, held-out content (ECE {ece:.3f})", (pad, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "predicted probability", (w // 2 - 70, h - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def markdown(report: dict, meta: dict, plot_name: str, reliability_name: str) -> str:
    def pct(v, digits=0):
        return "–" if v != v else f"{100 * v:.{digits}f} %"

    pp, pa = report["pooled_paper"], report["pooled_all"]
    spread = sampling_spread(report)

    def percent(digits=0):
        return lambda v: f"{100 * v:.{digits}f}"

    def within(key, figure, form=None):   # a figure and its sampling interval, '67 % (62-72)'
        if key not in spread:
            return figure
        lo, hi = spread[key]
        form = form or percent()
        return f"{figure} ({form(lo)}-{form(hi)})"

    lines = ["# Degradation prediction", "",
             "Generated by `scripts/eval_prediction.py` (do not edit by hand).", "",
             "Drop an image on the Prediction panel, or run `faig-gui predict IMG... [--json]`: the verdict "
             "(clean, or any set of the analysed degradations), a calibrated probability per degradation, "
             "the verdict's confidence, an explicit *unsure* answer with the label sets in question, and a "
             "strength estimate with an interval. The evidence comes from the target's own discriminative "
             "filters (the top k % of the FAIG scores); four classical no-reference estimates are shown "
             "beside it and vote with it. How (faig_gui/core/prediction/):", "",
             "- Evidence per degradation d, from d's top filters: the masking effect (gradient-map effect "
             "between the target's output and the output with d's filters replaced by the baseline's), the "
             "change response of the filters to the input (one forward pass with hooks), each also relative "
             "to the content's scale, d's share of each among the degradations, and the self-referenced "
             "evidence: the target's own restoration degraded again by what was found so far, without and "
             "with d, and where the input lies between the two (the content cancels).",
             "- Classical estimates of the whole image (no network): noise σ from the robust MAD of "
             "Immerkær's high-pass residual, a re-blur measure (the share of the gradient that survives "
             "a 9-tap box blur), the detail slope (the log of the power left above that noise in the middle "
             "frequency band, 0.18-0.32 cycles per pixel, over that in the low band, 0.04-0.12: a blur lowers "
             "it, white noise does not, so it reads blur under noise where the re-blur measure reads the "
             "noise), and the spectral blur (the Gaussian σ, in LR pixels, of a fit of the ring-averaged "
             "power above that noise, 0.03-0.45 cycles per pixel, by a power law, the content's own "
             "fall-off, times a Gaussian blur's transfer: a power law is straight in log frequency, a blur "
             "bends it down, so the content's softness and the blur's size separate; it votes only where "
             "no other degradation was found, and there, where a blur is found alone, its calibration curve "
             "reads the blur σ). "
             "`predict --json` gives them (`estimates`) and what they alone say "
             "(`classical`) beside what the filters alone say (`filters`) and, for a blur found alone, "
             "what the spectral blur alone says (`measured`).",
             f"- Calibration, automatic and cached (`~/.cache/faig-gui/calibration`): {meta['calibration_images']} HR "
             "crops: the bundled diverse content (resources/calibration, two crops each of "
             f"{', '.join(CALIBRATION)}) and up to four of the session's analysis images, degraded by every "
             "combination of the analysed degradations, a few levels of each, and JPEG-compressed clean "
             "(quality 70-95, clean). Per degradation and context (what was decided already), an "
             "L2-regularised logistic regression on the standardised evidence, and a Platt map fitted on "
             "out-of-fold logits (folds by calibration image), so the probabilities hold on new content.",
             "- Decision: degradations one after another, the most separable first, each among the "
             "calibration samples like the image so far; then each again among the samples like the "
             "others' verdicts, its label changing where those say the opposite (the first decisions "
             "are made with the later ones unknown: with JPEG among the degradations, noise is decided "
             "first, and JPEG's blocks read as noise until JPEG is known). *Unsure* when a probability lies between 0.2 and "
             "0.8, when the filters and the classical estimates are each sure of the opposite, when the "
             "kind that measures the degradation itself (for a blur found alone, the spectral blur) is sure "
             "of the opposite of the verdict (the probability is then the two's mean, as it is for the first "
             "conflict; `measured` in `--json`), or when "
             "the image's evidence lies beyond the range of every calibration sample the decision was "
             "fitted on (`outside` in `--json` names the evidence; its probability is then held as far "
             "from 0.5 as the calibration's own extrapolations earned: the share of calibration samples "
             "that, held out with their image and beyond the other images' range, fell on the side their "
             "probability gave them, on each side, with 0.75 as two samples' worth of prior, and never "
             "beyond the unsure band's edge), or, for a degradation that holds a blur, when the noise hides "
             "the detail a blur would take: the image's power in the low band (0.04-0.12 cycles per pixel) "
             "stands less than twice the noise power above the noise (`detail_above_noise` in `estimates`; "
             "a sharp image's middle band, about a tenth of its low band's, would then lie within the noise "
             "estimate's error; held within 0.25-0.75, `hidden` in `--json`); the answer then lists the "
             "competing label sets.",
             "- Strength: the most level-sensitive evidence (a blur found alone: the spectral blur, which "
             "measures its σ) read back through its calibration curve, carried "
             "on past the strongest calibrated level (no saturation); the interval, meant to hold the strength "
             f"of {100 * INTERVAL_COVERAGE:.0f} % of images, is the central {100 * INTERVAL_COVERAGE:.0f} % of the "
             "calibration's evidence at one level read through the same curve (with three or more degradations "
             "the calibration holds a found combination with some others present and some absent at the "
             "analysed level only: its curve is borrowed, among every kind's in the nearest combinations "
             "and over all samples, as the one that reads that combination's own samples closest to their "
             f"level, and its interval widened to hold {100 * INTERVAL_COVERAGE:.0f} % of them), "
             "widened to hold the reading with any "
             "doubtful other verdict turned over (the point stays the verdict's). A found JPEG's quality is read from the "
             "image itself where it shows it (core/prediction/jpeg_quality.py): re-compressed at each "
             "quality, an image whose last step was a JPEG at quality Q comes back unchanged up to rounding "
             "at Q alone (a *JPEG ghost*, Farid 2009; on its luma, on its 8 x 8 block grid, one textured "
             "64² window); the interval is the qualities within one rounding step of that least change. "
             "Without such a dip (never compressed, resized or noised after the JPEG) the curve's reading "
             "stands.",
             f"- Tiles: an image that holds two {meta.get('tile', 32)}² tiles is judged from at most "
             f"{meta.get('tiles', 4)} tiles of {meta.get('tile', 32)}x{meta.get('tile', 32)} spread over "
             "the image's range of texture, from the most textured to the flattest non-empty one; a blur's "
             "evidence is the median over the more textured half of them (blur shows where there is detail; "
             "flat tiles say nothing about it), the other degradations' over all of them (noise shows on flat "
             "tiles too). The calibration's crops are tiled the same way. The result says how many (`tiles`).", "",
             "## Accuracy on held-out content", "",
             *([f"**{meta['note']}**", ""] if meta.get("note") else []),
             f"- command: `{meta.get('command', '')}`",
             f"- pair: `{meta['baseline']}` / `{meta['target']}`, scores `{meta['scores']}`",
             f"- top {meta['proportion']:g} % filters per degradation; evidence {', '.join(meta['evidence'])}",
             f"- calibration: {meta['calibration_images']} images, {meta['calibration_samples']} samples, "
             f"{meta['calibration_seconds']:.0f} s",
             f"- held-out content (never calibrated on): {meta['crops_per_image']} random {meta['side']}x{meta['side']} "
             f"HR crops each of {', '.join(HELDOUT)} per draw (x{meta['scale']}: LR {meta['side'] // meta['scale']}²), "
             f"{meta['draws']} draws (seeds {meta['seeds']}) pooled for the paper's levels: {meta['n']} images per row; "
             f"the sweeps use the first draw", "",
             "## At the paper's levels (blur σ 2, noise σ 0.1), pooled over the draws", "",
             "| true degradation | n | exact label | labelled blur | labelled noise | strength estimate (median) "
             f"| median abs. error | {100 * INTERVAL_COVERAGE:.0f} % interval holds the truth (its median width / truth) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in report["paper"].items():
        est = "; ".join(f"{k.split('_')[0]} σ {r[k]:.3g}" for k in r if k.endswith("_median_estimate"))
        err = "; ".join(f"{r[k]:.3g}" for k in r if k.endswith("_median_abs_error"))
        lines.append(f"| {name} | {r['n']} | {within(name, pct(r['accuracy']))} | {pct(r['labelled'].get('blur', 0))} | "
                     f"{pct(r['labelled'].get('noise', 0))} | {est or '–'} | {err or '–'} | "
                     f"{_holds(r, pct)} |")
    def three(v):
        return f"{v:.3f}"

    ece_paper, ece_all = three(pp["ece"]), three(pa["ece"])
    if spread:
        lines += ["", f"In brackets: the central {100 * INTERVAL:.0f} % of the figure over {RESAMPLES} bootstrap "
                  "resamples of the crops, drawn again within each held-out picture and class: how far it would "
                  "move with other crops of the same pictures. Other content moves it further (the per-picture "
                  f"table below). The sweeps hold {meta['crops_per_image']} crops of a picture per level, too few "
                  "to resample: their figures have none."]
    lines += ["", "## Confidence", "",
              "| | paper levels and clean JPEGs | every input (sweeps too) |", "|---|---|---|",
              f"| inputs | {pp['n']} | {pa['n']} |",
              f"| exact label | {within('paper accuracy', pct(pp['accuracy']))} | "
              f"{pct(pa['accuracy'])} |",
              f"| confident errors (wrong, confidence ≥ {CONFIDENT}) | "
              f"{within('paper confident', pct(pp['confident_errors'], 1), percent(1))} | "
              f"{pct(pa['confident_errors'], 1)} |",  # one decimal: the target is 2 %
              f"| expected calibration error (per-degradation probabilities, 10 bins) | "
              f"{within('paper ece', ece_paper, three)} | {ece_all} |",
              *([f"| the same ECE if these probabilities were calibrated: sampling alone (mean; 95th "
                 f"percentile) | {spread['paper floor'][0]:.3f}; {spread['paper floor'][1]:.3f} | "
                 f"{spread['all floor'][0]:.3f}; {spread['all floor'][1]:.3f} |"] if spread else []),
              f"| answered unsure | {pct(pp['unsure'])} | {pct(pa['unsure'])} |",
              f"| exact label when not unsure | {pct(pp['accuracy_when_sure'])} | {pct(pa['accuracy_when_sure'])} |",
              f"| wrong and said unsure | {pct(pp['wrong_and_unsure'])} | {pct(pa['wrong_and_unsure'])} |",
              f"| exact label from the filters' evidence alone (no classical estimates) | "
              f"{pct(pp['filters_accuracy'])} | {pct(pa['filters_accuracy'])} |", "",
              f"![reliability diagram]({reliability_name})", ""]
    if report.get("per_picture"):
        classes = list(report["paper"])
        soft = report.get("softness", {})
        lines += ["## Per held-out picture (paper levels and clean JPEGs, pooled over the draws)", "",
                  "| picture | " + " | ".join(classes) + (" | clean crops' spectral blur (LR px, median) |" if soft else " |"),
                  "|---" * (len(classes) + 1 + bool(soft)) + "|"]
        for picture, row in report["per_picture"].items():
            cells = [f"{row[c][0]}/{row[c][1]}" if c in row else "–" for c in classes]
            if soft:
                cells.append(f"{soft['pictures'][picture]:.2f}")
            lines.append(f"| {picture} | " + " | ".join(cells) + " |")
        lines.append("")
        if soft:
            lines += _softness_lines(report)
    bounds = threshold_bounds(report.get("records", [])[:report["pooled_paper"]["n"]])
    if bounds:
        lines += ["", "## What another threshold could reach", "",
                  "Each pair of classes below is told apart by one degradation's probability. The threshold is "
                  "chosen here on these very inputs, which no predictor can do: the one that gives the first class "
                  "its best exact-label accuracy while the second keeps the accuracy the targets ask of it. That is "
                  "an upper bound on what any recalibration of the probability (a Platt map, prior odds, class "
                  "weights) could give. Where it falls short of a target, what falls short is how the evidence "
                  "ranks inputs across pictures, not its calibration.", "",
                  "| first class / second class | pictures | at the predictor's 0.5 | threshold | first class "
                  "| second class (at least) |", "|---|---|---|---|---|---|"]
        for b in bounds:
            where = "all" if b["without"] is None else f"all but {b['without']}"
            lo, hi = b["at_half"]
            lines.append(f"| {b['negative']} / {b['positive']} ({b['degradation']} ≥ threshold) | {where} "
                         f"| {pct(lo, 1)} / {pct(hi, 1)} | {b['threshold']:.3f} | **{pct(b['negative_accuracy'], 1)}** "
                         f"| {pct(b['positive_accuracy'], 1)} ({pct(b['floor'])}) |")
        lines.append("")
    for sweep, key, title in (("blur_sweep", "blur_sigma", "blur σ (alone)"),
                              ("noise_sweep", "noise_sigma", "noise σ (alone)")):
        lines += ["", f"## Against {title}", "",
                  "| σ | n | exact label | strength estimate (median) | median abs. error | median rel. error "
                  f"| {100 * INTERVAL_COVERAGE:.0f} % interval holds (width / truth) |",
                  "|---|---|---|---|---|---|---|"]
        for s, r in report[sweep].items():
            lines.append(f"| {s} | {r['n']} | {pct(r['accuracy'])} | {r.get(key + '_median_estimate', float('nan')):.3g} | "
                         f"{r.get(key + '_median_abs_error', float('nan')):.3g} | "
                         f"{pct(r.get(key + '_median_rel_error', float('nan')))} | "
                         f"{_holds(r, pct)} |")
    lines += ["", "## Blur + noise, one of them swept (the other at the paper level)", "",
              "| setting | n | exact label | labelled blur | labelled noise |", "|---|---|---|---|---|"]
    for s, r in report["blur+noise_sweep"].items():
        lines.append(f"| {s} | {r['n']} | {pct(r['accuracy'])} | {pct(r['labelled'].get('blur', 0))} | "
                     f"{pct(r['labelled'].get('noise', 0))} |")
    lines += ["", f"![accuracy against blur σ and noise σ]({plot_name})", ""]
    if meta.get("findings"):
        lines += ["## Targets not met, and what was tried", "", meta["findings"], ""]
    lines += [DEVELOPMENT_NOTES]
    t = meta.get("timing")
    if t:
        threads = f"{t['threads']} torch thread" + ("s" if t["threads"] != 1 else "")
        lines += ["## Speed", "",
                  f"Predicting a 256x256 LR image (bench/bench_prediction.py's input): median {t['median_ms']} ms, "
                  f"best {t['min_ms']} ms, on this machine's CPU with {threads} while its load "
                  f"average was {t['load_average']} (2 cores shared with other work)"
                  + (f"; it took {t['cpu_ms']} ms of CPU time (median; what a quiet core would take)"
                     if t.get("cpu_ms") is not None else "") + ". The calibration is "
                  "computed once per pair, scores and proportion, and cached; computing it took "
                  f"{meta['calibration_seconds']:.0f} s here.", ""]
    return "\n".join(lines)


def _holds(row: dict, pct) -> str:
    """'85 % (24 %)': how often the strength interval held the truth, and its median width over the truth."""
    holds = pct(row.get("interval_holds", float("nan")))
    return holds + (f" ({pct(row['interval_rel_width'])})" if "interval_rel_width" in row else "")


def _softness_lines(report: dict) -> list[str]:
    """Which held-out pictures are natively soft (:func:`native_softness`), in a sentence."""
    soft = report["softness"]
    return [f"The crops blurred at the paper's level (class blur) read a spectral blur of {soft['blurred']:.2f} LR px "
            "(median over every picture). A picture whose *clean* crops read at least that is as soft as a "
            "blurred picture before any blur is added, and its clean, clean-JPEG and noise-only crops are "
            "blurred ones in all but name: "
            + (", ".join(f"{p} ({soft['pictures'][p]:.2f})" for p in soft["soft"]) if soft["soft"] else "none here")
            + ".", ""]


def time_256(predictor: Predictor, repeats: int = 5) -> dict:
    """The benchmark's measurement (bench/bench_prediction.py), repeated here for the docs."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_prediction import test_image
    import os
    lr = test_image(256, predictor.model.target.scale)
    predictor.predict(lr)
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        predictor.predict(lr)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"median_ms": round(1000 * float(np.median(times)), 1), "min_ms": round(1000 * min(times), 1),
            "cpu_ms": round(1000 * float(np.median(cpu)), 1),
            "load_average": [round(v, 1) for v in os.getloadavg()], "threads": torch.get_num_threads()}


def load_or_calibrate(predictor: Predictor, path: Path | None):
    """The calibration from ``path`` when it holds one for these images and settings, made by the
    evidence code as it is now (the cache key names a hash of the modules that make the evidence: a
    file from before an evidence change gave wrong figures), else computed and stored there."""
    from faig_gui.core.prediction import cache
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"][()]))
            evidence = np.asarray(z["evidence"], dtype=np.float64)
        cal = cache._calibration_from_plain(meta, evidence, predictor.cache_text)
        if cal is not None and cal.names == list(predictor.names) and cal.kinds == tuple(predictor.config.evidence):
            predictor.calibration, predictor.calibration_source = cal, "file"
            return cal
    cal = predictor.calibrate()
    if path is not None:
        cache.write_calibration(path, predictor.cache_text, cal)
    return cal


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline")
    p.add_argument("--target")
    p.add_argument("--scores")
    p.add_argument("--analysis-hr", help="analysis HR images calibrated on besides the bundled content "
                                         "(default: the demo's analysis/GT)")
    p.add_argument("--proportion", type=float, default=1.0)
    p.add_argument("--crops", type=int, default=4, help="random crops per held-out picture and draw")
    p.add_argument("--side", type=int, default=160, help="HR crop side")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--draws", type=int, default=3, help="draws of crops for the paper's levels (pooled)")
    p.add_argument("--calibration-file", help="keep the calibration here (and reuse it when it is there)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on shared cores two can be several times slower)")
    p.add_argument("--out", default=str(ROOT / "docs" / "prediction.md"))
    p.add_argument("--no-docs", action="store_true", help="print the JSON only")
    p.add_argument("--json-out", help="also write the JSON report here")
    p.add_argument("--from-json", metavar="FILE", help="write the docs from a saved run's JSON (no evaluation)")
    p.add_argument("--bench-json", metavar="FILE", help="bench/bench_prediction.py output to quote for speed")
    p.add_argument("--note", default="", help="a sentence for the docs (e.g. which pair this is)")
    p.add_argument("--findings", default="", help="a paragraph for the docs: targets not met and what was tried")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text().splitlines()[0])
        meta = saved["meta"]
        if args.bench_json:
            b = json.loads(Path(args.bench_json).read_text().splitlines()[0])
            meta["timing"] = {"median_ms": b["predict_ms_median"], "min_ms": b["predict_ms_min"],
                              "cpu_ms": b.get("predict_cpu_ms_median"),
                              "load_average": [round(v, 1) for v in b["load_average"]], "threads": b["threads"]}
        meta["note"] = args.note or meta.get("note", "")
        meta["findings"] = args.findings or meta.get("findings", "")
        write_docs(saved["report"], meta, Path(args.out))
        return 0
    from faig_gui.commands.predict import build_predictor
    ns = argparse.Namespace(session=None, baseline=args.baseline, target=args.target, scores=args.scores,
                            analysis_hr=args.analysis_hr, proportion=args.proportion, degradation=None,
                            blur_sigma=2.0, noise_sigma=0.1, device="cpu", arch=None, no_cache=False)
    seeds = [args.seed + 6 * j for j in range(args.draws)]
    try:
        predictor = build_predictor(ns)
        cal = load_or_calibrate(predictor, Path(args.calibration_file) if args.calibration_file else None)
        draws = [heldout_crops(args.crops, args.side, s) for s in seeds]
        report = evaluate(predictor, draws, args.seed * 1000)
        timing = time_256(predictor)
    except FaigError as exc:
        print(f"eval_prediction: error: {exc}", file=sys.stderr)
        return 2
    meta = {"baseline": str(ns.baseline), "target": str(ns.target), "scores": str(ns.scores),
            "proportion": args.proportion, "evidence": list(predictor.config.evidence),
            "calibration_images": len(predictor.analysis_hr), "calibration_samples": len(cal.samples),
            "calibration_seconds": cal.seconds, "crops_per_image": args.crops, "side": args.side,
            "scale": predictor.model.target.scale, "n": len(draws) * len(draws[0]), "draws": args.draws,
            "seeds": seeds, "timing": timing, "note": args.note, "findings": args.findings,
            "tile": predictor.config.tile, "tiles": predictor.config.max_pixels // predictor.config.tile ** 2,
            "command": ".venv/bin/python scripts/eval_prediction.py " + " ".join(sys.argv[1:])}
    line = json.dumps({"meta": meta, "report": report})
    print(line)
    if args.json_out:
        Path(args.json_out).write_text(line + "\n")
    if not args.no_docs:
        write_docs(report, meta, Path(args.out))
    return 0


def write_docs(report: dict, meta: dict, out: Path) -> None:
    plot_path = out.with_name(out.stem + "_accuracy.png")
    reliability_path = out.with_name(out.stem + "_reliability.png")
    plot(report, plot_path)
    reliability_plot(report["pooled_all"]["bins"], report["pooled_all"]["ece"], reliability_path)
    text = markdown(report, meta, plot_path.name, reliability_path.name)
    # a block another script keeps here (eval_prediction_combos.py) stays, with the notes written
    # after it (they are about that block)
    begin, end = "<!-- prediction-combos:begin -->", "<!-- prediction-combos:end -->"
    old = out.read_text() if out.exists() else ""
    if begin in old and end in old:
        text = text.rstrip("\n") + "\n\n" + old[old.index(begin):].rstrip("\n") + "\n"
    out.write_text(text)
    print(f"wrote {out}, {plot_path} and {reliability_path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
