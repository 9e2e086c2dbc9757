"""Calibration: the evidence measured on the analysis images, clean and degraded, and the
decision it supports.

Degradations are decided one after another, most separable first; each by a weighted vote of
its calibrated evidences, calibrated on the samples whose other degradations match what was
decided already (so "blur" is judged against noisy samples when the image was found noisy).
Samples with d at its analysed level or stronger count as holding d: a stronger blur is still
blur, and the evidence is not always monotone in the level. Strength: a calibration curve of d's
most level-sensitive evidence over a few synthetic levels of d.
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from faig_gui.core.degradations import Degradation, degrade, mod_crop, paper_degradations, seeded_generator
from faig_gui.core.errors import FaigError
from faig_gui.core.prediction.config import PredictorConfig
from faig_gui.core.prediction.evidence import SELF_REFERENCED, EvidenceModel, combine, tiles


def strength_params(d: Degradation, factor: float) -> dict[str, float]:
    out = {}
    if d.blur_sigma:
        out["blur_sigma"] = d.blur_sigma * factor
    if d.noise_sigma:
        out["noise_sigma"] = d.noise_sigma * factor
    return out or {"factor": factor}


@dataclass
class Sample:
    """One calibration input: which degradations it holds, at which factor each."""

    present: dict[str, float]      # degradation -> factor (absent ones are not listed)
    evidence: dict[str, np.ndarray]  # kind -> (D,)


def _subsets(names: Sequence[str]) -> list[tuple[str, ...]]:
    n = len(names)
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


@dataclass
class _Stat:
    """Calibration of one evidence for one decision: a threshold in log space and a scale."""

    kind: str
    mid: float
    scale: float
    sign: float
    separation: float   # |median difference| / pooled spread

    def z(self, value: float) -> float:
        return self.sign * (float(_scaled(self.kind, value)) - self.mid) / self.scale


def _scaled(kind: str, values):
    """The scale an evidence is compared on: log for the ratios and energies, as is for the
    self-referenced kinds (already a position between two log values, may be negative)."""
    if kind in SELF_REFERENCED:
        return np.asarray(values, dtype=np.float64)
    return np.log(np.maximum(np.asarray(values, dtype=np.float64), 1e-12))


def _robust(v: np.ndarray) -> tuple[float, float]:
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return float(med), float(max((q3 - q1) / 1.349, 1e-6))


def _matches(s: Sample, context: Mapping[str, bool]) -> bool:
    """The sample holds each degradation of ``context`` marked True (at the analysed level) and
    none marked False."""
    for o, want in context.items():
        f = s.present.get(o)
        if (want and f != 1.0) or (not want and f is not None):
            return False
    return True


def _fit_stats(samples: Sequence[Sample], d: str, n: int, kinds: Sequence[str],
               context: Mapping[str, bool], min_spread: float = 0.0,
               min_spread_reference: float = 0.0, complete: bool = False) -> list[_Stat]:
    """Per evidence kind: how it separates samples with d (at the analysed level or stronger) from
    samples without d, among samples whose other degradations match ``context``."""
    pos, neg = [], []
    for s in samples:
        if not _matches(s, context):
            continue
        if d not in s.present:
            neg.append(s)
        elif s.present[d] >= 1.0:   # the analysed level or stronger: a stronger d is still d
            pos.append(s)
    if len(pos) < 2 or len(neg) < 2:
        return []
    stats = []
    for k in kinds:
        if k in SELF_REFERENCED and not complete:
            continue   # measured only once every other degradation was decided
        a = np.array([s.evidence[k][n] for s in pos], dtype=np.float64)
        b = np.array([s.evidence[k][n] for s in neg], dtype=np.float64)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if len(a) < 2 or len(b) < 2:
            continue
        a, b = _scaled(k, a), _scaled(k, b)
        (ma, sa), (mb, sb) = _robust(a), _robust(b)
        # the floor: new images vary more than the few calibration images do, so a margin that
        # is large only against a tight calibration spread must not outvote a wide one (less so
        # where the content cancels)
        floor = min_spread_reference if k in SELF_REFERENCED else min_spread
        spread = max(math.sqrt((sa * sa + sb * sb) / 2), floor, 1e-3)
        sign = 1.0 if ma >= mb else -1.0
        stats.append(_Stat(k, (ma + mb) / 2, spread, sign, abs(ma - mb) / spread))
    return stats


@dataclass
class _Curve:
    kind: str
    log_values: np.ndarray   # increasing, on the kind's scale (:func:`_scaled`)
    log_factors: np.ndarray

    def factor(self, value: float) -> float:
        return float(np.exp(np.interp(float(_scaled(self.kind, value)), self.log_values, self.log_factors)))


def _fit_curve(samples: Sequence[Sample], d: str, n: int, kinds: Sequence[str],
               context: Mapping[str, bool], complete: bool = False) -> _Curve | None:
    """Median evidence per level of d (others as in ``context``), for the most level-sensitive
    evidence kind; made monotone so that it can be read backwards."""
    by_level: dict[float, list[Sample]] = {}
    for s in samples:
        if d not in s.present or not _matches(s, context):
            continue
        by_level.setdefault(s.present[d], []).append(s)
    if len(by_level) < 2:
        return None
    levels = sorted(by_level)
    best = None
    for k in kinds:
        if k in SELF_REFERENCED and not complete:
            continue
        values = [np.array([s.evidence[k][n] for s in by_level[f]], dtype=np.float64) for f in levels]
        if not all(np.isfinite(v).all() for v in values):
            continue
        med = np.array([np.median(_scaled(k, v)) for v in values])
        if len(levels) > 2:
            rho = np.corrcoef(np.log(levels), med)[0, 1] if np.ptp(med) > 0 else 0.0
        else:
            rho = float(np.sign(med[1] - med[0]))
        if not np.isfinite(rho):
            continue
        if best is None or abs(rho) > abs(best[0]):
            best = (rho, k, med)
    if best is None:
        return None
    rho, k, med = best
    if rho < 0:
        med = -med
    med = np.maximum.accumulate(med)   # monotone in the level
    med = med + np.arange(len(med)) * 1e-9
    vals = med if rho >= 0 else -med
    order = np.argsort(vals)
    return _Curve(k, vals[order], np.log(np.array(levels))[order])


@dataclass
class Calibration:
    names: list[str]
    kinds: tuple[str, ...]
    samples: list[Sample]
    definitions: dict[str, Degradation]
    seconds: float = 0.0
    min_spread: float = 0.5       # log units: about ±65 % of variation between images
    min_spread_reference: float = 0.05   # the same for the self-referenced kinds
    noise_scale: float = 1.0      # true noise σ / the residual's robust σ (:attr:`_Pass.residual_sigma`)
    _stats: dict = field(default_factory=dict, repr=False)
    _curves: dict = field(default_factory=dict, repr=False)

    def stats(self, d: str, context: Mapping[str, bool]) -> list[_Stat]:
        key = (d, tuple(sorted(context.items())))
        if key not in self._stats:
            n = self.names.index(d)
            found = _fit_stats(self.samples, d, n, self.kinds, context, self.min_spread,
                               self.min_spread_reference, len(context) == len(self.names) - 1)
            if not found and context:   # nothing matches this context: judge d on its own
                found = self.stats(d, {})
            self._stats[key] = found
        return self._stats[key]

    def curve(self, d: str, context: Mapping[str, bool]) -> _Curve | None:
        key = (d, tuple(sorted(context.items())))
        if key not in self._curves:
            found = _fit_curve(self.samples, d, self.names.index(d), self.kinds, context,
                               len(context) == len(self.names) - 1)
            if found is None and context:
                found = self.curve(d, {})
            self._curves[key] = found
        return self._curves[key]

    def separation(self, d: str, context: Mapping[str, bool]) -> float:
        return max((s.separation for s in self.stats(d, context)), default=0.0)

    def decide(self, evidence: Mapping[str, np.ndarray],
               reference: Callable[[str, Mapping[str, float]], Mapping[str, float]] | None = None,
               ) -> tuple[list[str], dict[str, float], dict[str, dict[str, float]]]:
        """Multi-label verdict, confidences and strengths from one image's evidence (kind -> (D,)).

        ``reference(d, found)`` measures the self-referenced kinds of d (kind -> value) against
        references holding the degradations ``found`` (name -> strength factor), for the last
        degradation decided; without it, d is judged on the other kinds."""
        ev = {k: np.array(v, dtype=np.float64) for k, v in evidence.items()}
        decided: dict[str, bool] = {}
        factors: dict[str, float] = {}
        scores: dict[str, float] = {}
        while len(decided) < len(self.names):
            todo = [d for d in self.names if d not in decided]
            d = max(todo, key=lambda t: (self.separation(t, decided), -self.names.index(t)))
            n = self.names.index(d)
            found = {o: factors[o] for o, yes in decided.items() if yes}
            if reference is not None and len(decided) == len(self.names) - 1 and set(SELF_REFERENCED) & set(self.kinds):
                for k, v in reference(d, found).items():
                    if k in ev:
                        ev[k][n] = v
            z = self.vote(d, ev, decided)
            scores[d] = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, 2.0 * z))))
            decided[d] = z > 0
            if decided[d]:
                factors[d] = self.factor(d, ev, {o: v for o, v in decided.items() if o != d}) or 1.0
        labels = [d for d in self.names if decided[d]]
        strength = {}
        for d in labels:
            factor = self.factor(d, ev, {o: decided[o] for o in self.names if o != d})
            if factor is not None and d in self.definitions:
                strength[d] = strength_params(self.definitions[d], factor)
        return labels, {d: scores[d] for d in self.names}, strength

    def factor(self, d: str, evidence: Mapping[str, np.ndarray], context: Mapping[str, bool]) -> float | None:
        """d's strength factor (1 = the analysed level) read through its calibration curve."""
        curve = self.curve(d, context)
        if curve is None:
            return None
        value = float(evidence[curve.kind][self.names.index(d)])
        if not math.isfinite(value):
            curve = self.curve(d, {})   # a kind not measured for this image: the plain curve
            if curve is None:
                return None
            value = float(evidence[curve.kind][self.names.index(d)])
            if not math.isfinite(value):
                return None
        return curve.factor(value)

    def vote(self, d: str, evidence: Mapping[str, np.ndarray], context: Mapping[str, bool]) -> float:
        n = self.names.index(d)
        stats = [s for s in self.stats(d, dict(context)) if math.isfinite(float(evidence[s.kind][n]))]
        if not stats:
            return -1.0
        weights = np.array([s.separation ** 2 for s in stats])
        zs = np.array([s.z(float(evidence[s.kind][n])) for s in stats])
        zs = np.clip(zs, -6, 6)
        return float((weights * zs).sum() / max(weights.sum(), 1e-12))


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


def calibrate(model: EvidenceModel, hr_images: Sequence[torch.Tensor], definitions: Mapping[str, Degradation],
              config: PredictorConfig, should_stop: Callable[[], bool] | None = None,
              on_progress: Callable[[int, int], None] | None = None) -> Calibration:
    """Evidence of the analysis HR images degraded by every calibration class (seeded)."""
    start = time.perf_counter()
    scale = model.target.scale
    names = model.names
    plan = calibration_plan(names, definitions, config.levels)
    samples: list[Sample] = []
    hrs = [mod_crop(h, scale) for h in hr_images]
    if not hrs:
        raise FaigError("the predictor calibrates on the analysis images: add analysis images first")
    referenced = bool(set(SELF_REFERENCED) & set(config.evidence))
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

    def inputs(c: int, present: Mapping[str, float], seed: int) -> list[list[torch.Tensor]]:
        deg = combine([(definitions[d], f) for d, f in present.items()])
        batch_by_shape: dict[tuple, list[torch.Tensor]] = {}
        for n, hr in enumerate(hrs):
            lr = degrade(hr, scale, deg, seeded_generator(7919 * seed + 131 * n + c))
            x, _ = tiles(lr, config.tile, config.max_pixels)
            batch_by_shape.setdefault(tuple(x.shape[-2:]), []).append(x)
        return list(batch_by_shape.values())

    def noise_of(present: Mapping[str, float]) -> float | None:
        return combine([(definitions[d], f) for d, f in present.items()]).noise_sigma

    # the references' noise level: the residual's robust σ scaled to the true σ, measured on
    # the classes with noise at the analysed level (one target pass each)
    noise_scale = 1.0
    if referenced:
        ratios = []
        for c, present in enumerate(plan):
            if noise_of(present) and all(f == 1.0 for f in present.values()):
                for seed in range(config.seeds):
                    for group in inputs(c, present, seed):
                        ratios.append(noise_of(present) / model.residual_sigma(torch.cat(group)))
        if ratios:
            found = float(np.median(np.concatenate(ratios)))
            noise_scale = found if math.isfinite(found) and found > 0 else 1.0
    for c, present in enumerate(plan):
        for seed in range(config.seeds if noise_of(present) else 1):
            for group in inputs(c, present, seed):
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
                for x in group:
                    rows = slice(start_row, start_row + x.shape[0])
                    start_row += x.shape[0]
                    samples.append(Sample(dict(present), {k: v[rows].mean(0) for k, v in ev.items()}))
        step(len(hrs))
    return Calibration(list(names), tuple(config.evidence), samples, dict(definitions),
                       time.perf_counter() - start, config.min_spread, config.min_spread_reference, noise_scale)
