"""Making the calibration samples: which degraded versions of each calibration image the
predictor is calibrated on (every subset of the analysed degradations, other levels, clean JPEGs),
and their evidence, measured as a prediction measures it (tiles, textured tiles for blur, the
self-referenced kinds). The decision fitted on them is core/prediction/calibration.py's.
"""
from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from faig_gui.core.degradations import Degradation, degrade, jpeg, mod_crop, paper_degradations, seeded_generator
from faig_gui.core.errors import FaigError
from faig_gui.core.prediction.calibration import Calibration, Sample
from faig_gui.core.prediction.config import PredictorConfig
from faig_gui.core.prediction.evidence import (CLASSICAL, SELF_REFERENCED, EvidenceModel, classical_estimates,
                                               combine, evidence_tiles, tile_median, tiles)


def _subsets(names: Sequence[str]) -> list[tuple[str, ...]]:
    n = len(names)
    sizes: Sequence[int]
    if n <= 3:
        sizes = range(n + 1)
    else:  # keep the calibration small: none, singles, pairs, all
        sizes = [0, 1, 2, n]
    return [c for k in sizes for c in itertools.combinations(names, k)]


def calibration_plan(names: Sequence[str], definitions: Mapping[str, Degradation],
                     levels: Sequence[float]) -> list[dict[str, float]]:
    """The synthetic classes: every subset of degradations at the analysed level, plus each
    degradation at the other levels alone and with all others present."""
    plan = [{d: 1.0 for d in sub} for sub in _subsets(names)]
    for d in names:
        others = {o: 1.0 for o in names if o != d}
        for f in levels:
            if f == 1.0:
                continue
            plan.append({d: f})
            if others:
                plan.append({**others, d: f})
    return plan


def definitions_of(names: Sequence[str], given: Iterable[Degradation] | None) -> dict[str, Degradation]:
    found = {d.name: d for d in (given or [])}
    paper = {d.name: d for d in paper_degradations()}
    out = {}
    for n in names:
        if n in found:
            out[n] = found[n]
        elif n in paper:
            out[n] = paper[n]
    missing = [n for n in names if n not in out]
    if missing:
        raise FaigError(f"no definition of the degradation(s) {', '.join(missing)} (blur σ / noise σ): "
                        f"the predictor cannot calibrate them; analyse with named degradations")
    return out


#: JPEG qualities of the extra clean calibration samples: a clean photograph is often a JPEG
CLEAN_JPEG_QUALITIES = (70, 80, 90, 95)


def calibrate(model: EvidenceModel, hr_images: Sequence[torch.Tensor], definitions: Mapping[str, Degradation],
              config: PredictorConfig, should_stop: Callable[[], bool] | None = None,
              on_progress: Callable[[int, int], None] | None = None) -> Calibration:
    """Evidence of the calibration HR images degraded by every calibration class (seeded), and of
    each image JPEG-compressed clean (one quality of :data:`CLEAN_JPEG_QUALITIES` per image) unless
    an analysed degradation is itself a JPEG step: then a JPEG is not clean."""
    start = time.perf_counter()
    scale = model.target.scale
    names = model.names
    plan: list[tuple[dict[str, float], int | None]] = [(c, None) for c in calibration_plan(names, definitions, config.levels)]
    if not any(st.kind == "jpeg" for d in definitions.values() for st in d.steps):
        plan.append(({}, -1))   # -1: each image at its own quality
    hrs = [mod_crop(h, scale) for h in hr_images]
    if not hrs:
        raise FaigError("the predictor calibrates on the analysis images: add analysis images first")
    referenced = bool(set(SELF_REFERENCED) & set(config.evidence))
    classical = [k for k in CLASSICAL if k in config.evidence]
    total = len(plan) * len(hrs)
    done = 0

    def step(count: int) -> None:
        nonlocal done
        if should_stop is not None and should_stop():
            from faig_gui.core.attribution import Cancelled
            raise Cancelled()
        done += count
        if on_progress is not None:
            on_progress(done, total)

    def inputs(c: int, present: Mapping[str, float], quality: int | None, seed: int):
        """Per tile shape: the tiles (list), and per image its index and classical estimates."""
        deg = combine([(definitions[d], f) for d, f in present.items()])
        by_shape: dict[tuple, tuple[list, list]] = {}
        for n, hr in enumerate(hrs):
            lr = degrade(hr, scale, deg, seeded_generator(7919 * seed + 131 * n + c))
            if quality is not None:
                lr = jpeg(lr, CLEAN_JPEG_QUALITIES[n % len(CLEAN_JPEG_QUALITIES)])
            x, _ = tiles(lr, config.tile, config.max_pixels)
            group = by_shape.setdefault(tuple(x.shape[-2:]), ([], []))
            group[0].append(x)
            group[1].append((n, classical_estimates(lr) if classical else {}))
        return list(by_shape.values())

    def noise_of(present: Mapping[str, float]) -> float | None:
        return combine([(definitions[d], f) for d, f in present.items()]).noise_sigma

    # the references' noise level: the residual's robust σ scaled to the true σ, measured on
    # the classes with noise at the analysed level (one target pass each)
    noise_scale = 1.0
    if referenced:
        ratios = []
        for c, (present, quality) in enumerate(plan):
            if quality is None and noise_of(present) and all(f == 1.0 for f in present.values()):
                for seed in range(config.seeds):
                    for group, _ in inputs(c, present, quality, seed):
                        ratios.append(noise_of(present) / model.residual_sigma(torch.cat(group)))
        if ratios:
            found = float(np.median(np.concatenate(ratios)))
            noise_scale = found if math.isfinite(found) and found > 0 else 1.0
    samples: list[Sample] = []
    for c, (present, quality) in enumerate(plan):
        for seed in range(config.seeds if noise_of(present) else 1):
            for group, per_image in inputs(c, present, quality, seed):
                ev, measured = model.measure(torch.cat(group), config.evidence)
                if referenced:   # d judged once the others were found: against references without and with d
                    for n, d in enumerate(names):
                        others = [(definitions[o], f) for o, f in present.items() if o != d]
                        # judged only in contexts of the others decided, found at their analysed level
                        if all(f == 1.0 for _, f in others):
                            values = model.self_reference(measured, n, others, definitions[d],
                                                          config.reference_draws, noise_scale=noise_scale)
                            for k, v in values.items():
                                if k in ev:
                                    ev[k][:, n] = v
                start_row = 0
                for x, (image, estimates) in zip(group, per_image):
                    rows = slice(start_row, start_row + x.shape[0])
                    start_row += x.shape[0]
                    counts = [evidence_tiles(definitions[d], x.shape[0], config.textured_share) for d in names]
                    evidence = {k: tile_median(v[rows], counts) for k, v in ev.items()}
                    evidence.update({k: np.full(len(names), estimates[k]) for k in classical})
                    samples.append(Sample(dict(present), evidence, image))
        step(len(hrs))
    return Calibration(list(names), tuple(config.evidence), samples, dict(definitions),
                       time.perf_counter() - start, config.min_spread, config.min_spread_reference, noise_scale)
