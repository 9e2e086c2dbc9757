"""Calibration: the evidence measured on the analysis images, clean and degraded, and the
decision it supports.

Degradations are decided one after another, most separable first; each by a weighted vote of
its calibrated evidences, calibrated on the samples whose other degradations match what was
decided already (so "blur" is judged against noisy samples when the image was found noisy).
Then each is decided again among the samples like the others' verdicts, and its label changes
where those say the opposite: the first decisions were made with the later ones unknown.
Samples with d at its analysed level or stronger count as holding d: a stronger blur is still
blur, and the evidence is not always monotone in the level. Strength: a calibration curve of d's
most level-sensitive evidence over a few synthetic levels of d.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from collections.abc import Callable, Mapping, Sequence
from itertools import combinations

import numpy as np

from faig_gui.core.degradations import Degradation
from faig_gui.core.prediction.evidence import ALONE_ONLY, CLASSICAL, DETAIL_VISIBLE, SELF_REFERENCED
from faig_gui.core.prediction.logistic import Logit, fit_logit


def strength_params(d: Degradation, factor: float) -> dict[str, float]:
    out = {}
    if d.blur_sigma:
        out["blur_sigma"] = d.blur_sigma * factor
    if d.noise_sigma:
        out["noise_sigma"] = d.noise_sigma * factor
    if d.jpeg_quality:
        out["jpeg_quality"] = d.jpeg_quality / factor   # (unrounded: an estimate, not a setting)
    return out or {"factor": factor}


@dataclass
class Sample:
    """One calibration input: which degradations it holds, at which factor each."""

    present: dict[str, float]      # degradation -> factor (absent ones are not listed)
    evidence: dict[str, np.ndarray]  # kind -> (D,)
    image: int = -1                # which calibration image it was made from (-1: not known)


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


#: kinds compared as they are (not in log): positions between two log values, a share in [0, 1], a
#: log ratio (the detail slope) and a signed σ in pixels (the spectral blur)
AS_IS = (*SELF_REFERENCED, "blur_estimate", "detail_slope", "spectral_blur")


def _scaled(kind: str, values):
    """The scale an evidence is compared on: log for the ratios and energies, as is for the
    self-referenced kinds (already a position between two log values, may be negative) and the
    classical blur estimates (:data:`AS_IS`)."""
    if kind in AS_IS:
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
    pos, neg = _split(samples, d, context)   # d at the analysed level or stronger: still d
    if len(pos) < 2 or len(neg) < 2:
        return []
    stats = []
    for k in kinds:
        if k in SELF_REFERENCED and not complete:
            continue   # measured only once every other degradation was decided
        if k in ALONE_ONLY and any(context.values()):
            continue   # votes only where nothing else was found
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
        floor = min_spread_reference if k in AS_IS else min_spread
        spread = max(math.sqrt((sa * sa + sb * sb) / 2), floor, 1e-3)
        sign = 1.0 if ma >= mb else -1.0
        stats.append(_Stat(k, (ma + mb) / 2, spread, sign, abs(ma - mb) / spread))
    return stats


@dataclass
class _Curve:
    kind: str
    log_values: np.ndarray   # increasing, on the kind's scale (:func:`_scaled`)
    log_factors: np.ndarray
    #: the typical half-width of the central :data:`INTERVAL_COVERAGE` of the values at one level (same scale)
    spread: float = 0.0

    def _read(self, v: float) -> float:
        """log factor at scaled value ``v``: interpolated inside the calibrated levels and carried on
        along the end segments' slope outside them (a stronger blur than the strongest level
        calibrated reads stronger, not the same), at most two octaves beyond."""
        xs, ys = self.log_values, self.log_factors
        if len(xs) >= 2 and (v < xs[0] or v > xs[-1]):
            i = (0, 1) if v < xs[0] else (-2, -1)
            slope = (ys[i[1]] - ys[i[0]]) / max(xs[i[1]] - xs[i[0]], 1e-9)
            edge = ys[0] if v < xs[0] else ys[-1]
            out = edge + slope * (v - (xs[0] if v < xs[0] else xs[-1]))
            return float(np.clip(out, ys[0] - math.log(4.0), ys[-1] + math.log(4.0)))
        return float(np.interp(v, xs, ys))

    def factor(self, value: float) -> float:
        return float(np.exp(self._read(float(_scaled(self.kind, value)))))

    def interval(self, value: float) -> tuple[float, float]:
        """The factors read at the value ± the calibration's spread at one level: where the
        strength lies for about :data:`INTERVAL_COVERAGE` of the images with this evidence."""
        v = float(_scaled(self.kind, value))
        lo, hi = np.exp(self._read(v - self.spread)), np.exp(self._read(v + self.spread))
        return float(min(lo, hi)), float(max(lo, hi))


def _candidate_curves(samples: Sequence[Sample], d: str, n: int, kinds: Sequence[str],
                      context: Mapping[str, bool], complete: bool = False) -> list[tuple[float, _Curve]]:
    """Per evidence kind, (|ρ|, curve): the median evidence per level of d (others as in
    ``context``), made monotone so that it can be read backwards, and how level-sensitive it is
    (the correlation of those medians with the log level). Empty when the samples hold fewer than
    two levels of d there."""
    by_level: dict[float, list[Sample]] = {}
    for s in samples:
        if d not in s.present or not _matches(s, context):
            continue
        by_level.setdefault(s.present[d], []).append(s)
    if len(by_level) < 2:
        return []
    levels = sorted(by_level)
    tails = [50 + 50 * INTERVAL_COVERAGE, 50 - 50 * INTERVAL_COVERAGE]
    out = []
    for k in kinds:
        if k in SELF_REFERENCED and not complete:
            continue
        values = [np.array([s.evidence[k][n] for s in by_level[f]], dtype=np.float64) for f in levels]
        if not all(np.isfinite(v).all() for v in values):
            continue
        med = np.array([np.median(_scaled(k, v)) for v in values])
        spread = float(np.median([np.subtract(*np.percentile(_scaled(k, v), tails)) for v in values])) / 2
        if len(levels) > 2:
            rho = np.corrcoef(np.log(levels), med)[0, 1] if np.ptp(med) > 0 else 0.0
        else:
            rho = float(np.sign(med[1] - med[0]))
        if not np.isfinite(rho):
            continue
        if rho < 0:
            med = -med
        med = np.maximum.accumulate(med)   # monotone in the level
        med = med + np.arange(len(med)) * 1e-9
        vals = med if rho >= 0 else -med
        order = np.argsort(vals)
        out.append((abs(float(rho)), _Curve(k, vals[order], np.log(np.array(levels))[order], spread)))
    return out


def _fit_curve(samples: Sequence[Sample], d: str, n: int, kinds: Sequence[str],
               context: Mapping[str, bool], complete: bool = False, measure: str | None = None) -> _Curve | None:
    """The curve of the most level-sensitive evidence kind (:func:`_candidate_curves`), or that of
    the kind ``measure`` where it has one."""
    best = None
    for rho, curve in _candidate_curves(samples, d, n, kinds, context, complete):
        if curve.kind == measure:
            return curve
        if best is None or rho > best[0]:
            best = (rho, curve)
    return None if best is None else best[1]


def _measuring_kind(definition: Degradation | None, alone: bool) -> str | None:
    """The evidence kind that measures d's strength itself, where it also votes: the spectral blur
    (a Gaussian blur's σ fitted to the spectrum) for a degradation that is a blur alone, where
    nothing else was found (:data:`ALONE_ONLY`: under noise or JPEG its fit rests on the few rings
    above them). The other kinds are proxies whose curve reads the calibration content's mixture
    of level and content: the most level-sensitive of them can read a blur through the network's
    response and miss by a factor (docs/prediction.md, item 25). ``alone``: nothing else is
    present where the kind is used: for a strength curve, a context holding every other
    degradation as absent (the curve is read among samples holding none); for the decision, a
    context with none found (where the spectral blur votes, :meth:`Calibration.judge`'s measured
    probability)."""
    if not alone or definition is None or not definition.blur_sigma or definition.noise_sigma or definition.jpeg_quality:
        return None
    return "spectral_blur"


def _borrowed_curve(samples: Sequence[Sample], d: str, n: int, kinds: Sequence[str],
                    context: Mapping[str, bool]) -> _Curve | None:
    """A curve for a context whose samples hold d at one level only. With three or more
    degradations the calibration varies d's level alone and with all the others present, so a
    context with some others present and some absent (blur + noise on a pair analysed for blur,
    noise and JPEG) has d at the analysed level only. Candidates: every kind's curve in the
    nearest contexts that have one (fewest others turned over) and over all samples. Each reads
    the context's own samples at the analysed level, and the one that reads them closest to it
    (median |log factor|) is taken: a kind the absent or present others move reads them off. Its
    interval is widened to hold the strength of INTERVAL_COVERAGE of those samples. None when the
    context has fewer than two samples at the analysed level or no candidate."""
    truth = [s for s in samples if s.present.get(d) == 1.0 and _matches(s, context)]
    if len(truth) < 2 or not context:
        return None
    others = sorted(context)
    candidates: list[_Curve] = []
    for turned in range(1, len(others) + 1):
        for flip in combinations(others, turned):
            near = {o: context[o] != (o in flip) for o in others}
            candidates += [c for _, c in _candidate_curves(samples, d, n, kinds, near)]
        if candidates:
            break
    candidates += [c for _, c in _candidate_curves(samples, d, n, kinds, {})]
    best = None
    for curve in candidates:
        values = np.array([float(_scaled(curve.kind, s.evidence[curve.kind][n])) for s in truth])
        if not np.isfinite(values).all():
            continue
        error = float(np.median(np.abs([curve._read(v) for v in values])))
        if best is None or error < best[0]:
            best = (error, curve, values)
    if best is None:
        return None
    _, curve, values = best
    # the value the curve reads as the analysed level, and how far from it the samples lie
    order = np.argsort(curve.log_factors)
    at_truth = float(np.interp(0.0, curve.log_factors[order], curve.log_values[order]))
    held = float(np.percentile(np.abs(values - at_truth), 100 * INTERVAL_COVERAGE))
    return replace(curve, spread=max(curve.spread, held))


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
    _models: dict = field(default_factory=dict, repr=False)

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
                               len(context) == len(self.names) - 1,
                               _measuring_kind(self.definitions.get(d), not any(context.values())
                                               and (bool(context) or len(self.names) == 1)))
            if found is None and context:
                found = _borrowed_curve(self.samples, d, self.names.index(d), self.kinds, context)
            if found is None and context:
                found = self.curve(d, {})
            self._curves[key] = found
        return self._curves[key]

    def outside(self, d: str, evidence: Mapping[str, np.ndarray], context: Mapping[str, bool],
                which: str = "all") -> list[str]:
        """The kinds of the model deciding d in ``context`` whose value for this image lies outside
        the range of every calibration sample the model was fitted on (on the kind's scale): there
        the logistic model extrapolates, and a probability near 0 or 1 means nothing."""
        n = self.names.index(d)
        found = self.image_model(d, evidence, context, which)
        if found is None:
            return []
        stats, logit = found   # its span: the fitted samples' values on the kinds' scales
        low, high = logit.span_low, logit.span_high
        if low is None or high is None:
            return []
        out = []
        for st, lo, hi in zip(stats, low, high):
            value = float(_scaled(st.kind, float(evidence[st.kind][n])))
            if value < lo or value > hi:
                out.append(st.kind)
        return out

    def holds(self, d: str, evidence: Mapping[str, np.ndarray], context: Mapping[str, bool],
              which: str = "all") -> tuple[float, float]:
        """How far a probability decided on evidence beyond the calibration's range may go, below
        0.5 and above: the share of calibration samples that, held out and beyond the range of
        the other images' samples, fell on the side their probability gave them
        (:func:`~faig_gui.core.prediction.logistic.fit_logit`), up to the unsure band's edge
        (:data:`UNSURE_HIGH`): such a verdict stays unsure, because the calibration's held-out
        images are new content at known levels, not new levels (a weak noise under a blur,
        between the calibrated levels, reads beyond the range too; docs/prediction.md).
        :data:`OUTSIDE_HOLD` where the model has none."""
        found = self.image_model(d, evidence, context, which)
        if found is None or found[1].hold_low is None or found[1].hold_high is None:
            return OUTSIDE_HOLD, OUTSIDE_HOLD
        return min(found[1].hold_low, UNSURE_HIGH), min(found[1].hold_high, UNSURE_HIGH)

    def separation(self, d: str, context: Mapping[str, bool]) -> float:
        return max((s.separation for s in self.stats(d, context)), default=0.0)

    def _stats_exact(self, d: str, context: Mapping[str, bool]) -> bool:
        pos, neg = _split(self.samples, d, context)
        return len(pos) >= 2 and len(neg) >= 2

    def model(self, d: str, context: Mapping[str, bool], which: str = "all",
              kinds: Sequence[str] | None = None) -> tuple[list[_Stat], Logit] | None:
        """The stats and the calibrated logistic model deciding d in ``context`` from the kinds
        ``which`` says: 'all', 'filters' (the network's evidence only) or 'classical'; only
        ``kinds`` among them when given (those the image has)."""
        key = (d, tuple(sorted(context.items())), which, None if kinds is None else tuple(kinds))
        if key not in self._models:
            stats = [s for s in self.stats(d, context) if _kind_group(s.kind, which)
                     and (kinds is None or s.kind in kinds)]
            used = dict(context) if self._stats_exact(d, context) else {}
            pos, neg = _split(self.samples, d, used)
            found = None
            if stats and pos and neg:
                rows = pos + neg
                n = self.names.index(d)
                x = np.array([[_clipped_z(st, s.evidence[st.kind][n]) for st in stats] for s in rows])
                y = np.array([1.0] * len(pos) + [0.0] * len(neg))
                groups = np.array([s.image for s in rows])
                # the values on the scale outside() judges a value beyond the calibration's range on
                span = np.array([[float(_scaled(st.kind, s.evidence[st.kind][n])) for st in stats]
                                 for s in rows])
                found = (stats, fit_logit(x, y, groups, span=span, prior_hold=OUTSIDE_HOLD))
            self._models[key] = found
        return self._models[key]

    def image_model(self, d: str, evidence: Mapping[str, np.ndarray], context: Mapping[str, bool],
                    which: str = "all", only: Sequence[str] | None = None) -> tuple[list[_Stat], Logit] | None:
        """:meth:`model` fitted on the kinds this image has (finite for d), among ``only`` if given."""
        n = self.names.index(d)
        have = tuple(k for k in self.kinds if k in evidence and math.isfinite(float(evidence[k][n]))
                     and (only is None or k in only))
        return self.model(d, context, which, have)

    def probability(self, d: str, evidence: Mapping[str, np.ndarray], context: Mapping[str, bool],
                    which: str = "all", only: Sequence[str] | None = None) -> float | None:
        """P(d present | evidence), calibrated, from the kinds the image has (a model fitted on
        those alone; among ``only`` if given); None when the calibration has no model for it."""
        n = self.names.index(d)
        found = self.image_model(d, evidence, context, which, only)
        if found is None:
            return None
        stats, logit = found
        return logit.probability(np.array([_clipped_z(st, evidence[st.kind][n]) for st in stats]))

    def decide(self, evidence: Mapping[str, np.ndarray],
               reference: Callable[[str, Mapping[str, float]], Mapping[str, float]] | None = None,
               ) -> tuple[list[str], dict[str, float], dict[str, dict[str, float]]]:
        """Labels, probabilities and strengths (:meth:`judge`'s)."""
        v = self.judge(evidence, reference)
        return v.labels, v.scores, v.strength

    def judge(self, evidence: Mapping[str, np.ndarray],
              reference: Callable[[str, Mapping[str, float]], Mapping[str, float]] | None = None,
              which: str = "all") -> Verdict:
        """Multi-label verdict from one image's evidence (kind -> (D,)): degradations decided one
        after another, the most separable first, each by its calibrated probability among the
        calibration samples like the image so far (``which`` kinds only); then each is decided
        again among the samples like the others' verdicts (:data:`REDECIDE_PASSES` times at
        most, until no label changes), and its label changes where those say the opposite. The
        first decisions are made in a partial context: with three degradations the most
        separable one (noise) is judged among samples whose JPEG is not yet known, where JPEG's
        blocks read as noise; once JPEG is found, noise is judged among JPEG samples.

        ``reference(d, found)`` measures the self-referenced kinds of d (kind -> value) against
        references holding the degradations ``found`` (name -> strength factor), for the last
        degradation decided (again if what it was measured against changes); without it, d is
        judged on the other kinds (and so is every other degradation when decided again)."""
        ev = {k: np.array(v, dtype=np.float64) for k, v in evidence.items()}
        decided: dict[str, bool] = {}
        factors: dict[str, float] = {}
        scores: dict[str, float] = {}
        filters: dict[str, float] = {}
        classical: dict[str, float] = {}
        measured: dict[str, float] = {}
        outside: dict[str, list[str]] = {}
        hidden: list[str] = []
        referenced: dict[str, dict[str, float]] = {}   # d -> what its self-referenced kinds were measured against

        def assess(d: str, context: Mapping[str, bool], measure: bool) -> _Assessment:
            """d's calibrated probability among the samples like ``context`` (``ev`` is left as
            it is: a new reference measurement goes into the assessment's own copy)."""
            n = self.names.index(d)
            e, found = ev, referenced.get(d)
            if measure and reference is not None and set(SELF_REFERENCED) & set(self.kinds):
                found = {o: factors.get(o, 1.0) for o, yes in context.items() if yes}
                if referenced.get(d) != found:
                    e = {k: v.copy() for k, v in ev.items()}
                    for k, v in reference(d, found).items():
                        if k in e:
                            e[k][n] = v
            p = self.probability(d, e, context, which)
            score = 0.0 if p is None else p
            experts = {group: self.probability(d, e, context, group) if which == "all" else None
                       for group in ("filters", "classical")}
            f, c = experts["filters"], experts["classical"]
            if f is not None and c is not None and _opposed(f, c):
                # each sure of the opposite: evidence the calibration never held together, where
                # the joint model extrapolates; the two experts' mean says how little is known
                score = (f + c) / 2
            kind = _measuring_kind(self.definitions.get(d), not any(context.values()))
            m = self.probability(d, e, context, "classical", (kind,)) if kind and which == "all" else None
            if m is not None and _opposed(score, m):
                # the kind that measures d itself (a blur's σ, fitted apart from the content's own
                # fall-off) sure of the opposite of the verdict: the proxies read something the
                # measurement does not (a natively soft picture, JPEG's flattened blocks, a faint
                # noise read as detail); as above, the two's mean
                score = (score + m) / 2
            # evidence beyond every calibration sample (docs/prediction.md: nearly all the
            # confident errors were such)
            beyond = self.outside(d, e, context, which) if p is not None else []
            # a blur read where the noise hides the detail it would take: undecidable from the
            # image (docs/prediction.md: the smooth picture's noisy crops)
            hide = self._hidden(d, e)
            present = score > 0.5   # the side, which a hold keeps (a hold of 0.5 would not)
            if hide:   # the verdict keeps its side, but says it is unsure
                score = min(max(score, 1.0 - OUTSIDE_HOLD), OUTSIDE_HOLD)
            elif beyond:   # held as the calibration's own extrapolations earned, held out
                low, high = self.holds(d, e, context, which)
                score = min(max(score, 1.0 - low), high)
            return _Assessment(score, present, f, c, m, beyond, hide, e, found)

        def apply(d: str, a: _Assessment, context: Mapping[str, bool]) -> None:
            if a.evidence is not ev:   # a new reference measurement
                ev.update(a.evidence)
            if a.referenced is not None:
                referenced[d] = a.referenced
            scores[d] = a.score
            for out, q in ((filters, a.filters), (classical, a.classical), (measured, a.measured)):
                if q is None:
                    out.pop(d, None)
                else:
                    out[d] = q
            outside.pop(d, None)
            if a.outside:
                outside[d] = a.outside
            if a.hidden and d not in hidden:
                hidden.append(d)
            decided[d] = a.present
            if decided[d]:
                factors[d] = self.factor(d, ev, context) or 1.0

        order: list[str] = []
        while len(decided) < len(self.names):
            todo = [d for d in self.names if d not in decided]
            d = max(todo, key=lambda t: (self.separation(t, decided), -self.names.index(t)))
            order.append(d)
            context = dict(decided)
            apply(d, assess(d, context, measure=len(decided) == len(self.names) - 1), context)
        # decided again among the samples like the others' verdicts; a label changes only where
        # those samples say the opposite (where they agree, the first probability stays: it
        # was calibrated on more samples)
        contexts = {d: {o: decided[o] for o in order[:order.index(d)]} for d in order}
        for _ in range(REDECIDE_PASSES):
            changed = False
            for d in order:
                context = {o: decided[o] for o in self.names if o != d}
                if context == contexts[d]:
                    continue
                contexts[d] = context
                # the self-referenced kinds stay the last decision's (measured again when what it
                # was measured against changed); the others are judged on the rest, as before
                again = assess(d, context, measure=d in referenced)
                if again.present != decided[d]:
                    apply(d, again, context)
                    changed = True
            if not changed:
                break
        labels = [d for d in self.names if decided[d]]
        strength: dict[str, dict[str, float]] = {}
        interval: dict[str, dict[str, tuple[float, float]]] = {}
        for d in labels:
            if d in hidden:   # a blur the noise hides has no strength to read either
                continue
            context = {o: decided[o] for o in self.names if o != d}
            factor = self.factor(d, ev, context)
            if factor is not None and d in self.definitions:
                strength[d] = strength_params(self.definitions[d], factor)
                lo, hi = self.factor_interval(d, ev, context)
                interval[d] = {k: (min(v_lo, v_hi), max(v_lo, v_hi)) for (k, v_lo), v_hi in zip(
                    strength_params(self.definitions[d], lo).items(), strength_params(self.definitions[d], hi).values())}
        return Verdict(labels, {d: scores[d] for d in self.names}, strength, interval,
                       {d: filters[d] for d in self.names if d in filters},
                       {d: classical[d] for d in self.names if d in classical}, outside, hidden,
                       {d: measured[d] for d in self.names if d in measured})

    def _hidden(self, d: str, evidence: Mapping[str, np.ndarray]) -> bool:
        """Whether d holds a blur and the image's detail stands less than :data:`HIDDEN_BELOW`
        times its noise power above the noise (``evidence[DETAIL_VISIBLE]``, the classical
        estimates' guard): the middle band a blur takes is then within the noise either way."""
        visible = evidence.get(DETAIL_VISIBLE)
        definition = self.definitions.get(d)
        if visible is None or definition is None or not any(st.kind == "blur" for st in definition.steps):
            return False
        return float(np.asarray(visible).flat[0]) < HIDDEN_BELOW

    def _curve_value(self, d: str, evidence: Mapping[str, np.ndarray], context: Mapping[str, bool]):
        curve = self.curve(d, context)
        if curve is None:
            return None, None
        value = float(evidence[curve.kind][self.names.index(d)])
        if not math.isfinite(value):
            curve = self.curve(d, {})   # a kind not measured for this image: the plain curve
            if curve is None:
                return None, None
            value = float(evidence[curve.kind][self.names.index(d)])
            if not math.isfinite(value):
                return None, None
        return curve, value

    def factor(self, d: str, evidence: Mapping[str, np.ndarray], context: Mapping[str, bool]) -> float | None:
        """d's strength factor (1 = the analysed level) read through its calibration curve."""
        curve, value = self._curve_value(d, evidence, context)
        return None if curve is None else curve.factor(value)

    def factor_interval(self, d: str, evidence: Mapping[str, np.ndarray],
                        context: Mapping[str, bool]) -> tuple[float, float]:
        curve, value = self._curve_value(d, evidence, context)
        return (float("nan"), float("nan")) if curve is None else curve.interval(value)


@dataclass
class _Assessment:
    """One degradation's decision in one context (:meth:`Calibration.judge`)."""
    score: float
    present: bool   # the decision: the side of the probability before any hold
    filters: float | None
    classical: float | None
    measured: float | None   # from the kind that measures d itself alone, where there is one
    outside: list[str]
    hidden: bool
    evidence: dict[str, np.ndarray]
    referenced: dict[str, float] | None


#: the share of images whose strength a reported interval is meant to hold: the calibration's
#: evidence at one level is spread over its central 80 % (the 10th to the 90th percentile), read
#: back through the strength curve. (It was the inter-quartile range, a 50 % interval, which held
#: the truth on 60-85 % of the held-out inputs: docs/prediction.md.)
INTERVAL_COVERAGE = 0.8
#: how many times :meth:`Calibration.judge` decides every degradation again among samples like the
#: others' verdicts (it stops earlier once no label changes)
REDECIDE_PASSES = 3
#: a verdict whose probabilities all lie outside (UNSURE_LOW, UNSURE_HIGH) is sure
UNSURE_LOW, UNSURE_HIGH = 0.2, 0.8
#: a probability decided on evidence outside the calibration's range is held within what the
#: calibration's own held-out extrapolations earned (:meth:`Calibration.holds`), with this as two
#: samples' worth of prior, and the one of a blur the noise hides within
#: [1 - OUTSIDE_HOLD, OUTSIDE_HOLD]; either way the verdict is unsure
OUTSIDE_HOLD = 0.75
#: a blur is undecidable (its probability held as :data:`OUTSIDE_HOLD` holds it) when the image's
#: low-band detail stands less than this many times the noise power above the noise: a sharp
#: image's middle band, about a tenth of the low band's, is then within twice the noise
#: estimate's error (about 7 % of the noise power at σ 0.1, docs/prediction.md) of a blurred one's
HIDDEN_BELOW = 2.0


@dataclass
class Verdict:
    labels: list[str]
    scores: dict[str, float]                              # calibrated P(d present), all kinds
    strength: dict[str, dict[str, float]]
    interval: dict[str, dict[str, tuple[float, float]]]   # per strength parameter: (low, high)
    filters: dict[str, float]                             # P(d) from the network's evidence alone
    classical: dict[str, float]                           # P(d) from the classical estimates alone
    #: per degradation, the evidence kinds beyond the calibration's range (:meth:`Calibration.outside`)
    outside: dict[str, list[str]] = field(default_factory=dict)
    #: the blurs whose detail the noise hides (:meth:`Calibration._hidden`): said unsure
    hidden: list[str] = field(default_factory=list)
    #: P(d) from the kind that measures d itself alone (:func:`_measuring_kind`: the spectral blur,
    #: for a blur found alone), where there is one; sure of the opposite of the verdict, it makes
    #: the verdict unsure
    measured: dict[str, float] = field(default_factory=dict)

    @property
    def confidence(self) -> float:
        """P(the label set is right), taking the degradations' probabilities as independent."""
        out = 1.0
        for d, p in self.scores.items():
            out *= p if d in self.labels else 1.0 - p
        return out

    def doubts(self) -> list[str]:
        """The degradations it is unsure of: probability near the threshold, evidence beyond the
        calibration's range (its probability held at most at the band's edge), or the filters and
        the classical estimates each sure of the opposite."""
        out = []
        for d, p in self.scores.items():
            f, c = self.filters.get(d), self.classical.get(d)
            conflict = f is not None and c is not None and _opposed(f, c)
            if UNSURE_LOW < p < UNSURE_HIGH or conflict or d in self.outside:
                out.append(d)
        return out

    def competing(self) -> list[list[str]]:
        """The label sets in question when unsure: the verdict, then the verdict with each doubtful
        degradation turned over (the most doubtful first)."""
        doubts = sorted(self.doubts(), key=lambda d: abs(self.scores[d] - 0.5))
        out = [list(self.labels)]
        for d in doubts:
            alt = [o for o in self.scores if (o in self.labels) != (o == d)]
            out.append(alt)
        return out


def _opposed(p: float, q: float) -> bool:
    """Two probabilities each sure, of opposite answers."""
    return (p >= UNSURE_HIGH and q <= UNSURE_LOW) or (p <= UNSURE_LOW and q >= UNSURE_HIGH)


def _kind_group(kind: str, which: str) -> bool:
    if which == "all":
        return True
    return (kind in CLASSICAL) == (which == "classical")


def _clipped_z(stat: _Stat, value: float) -> float:
    v = float(value)
    return 0.0 if not math.isfinite(v) else float(np.clip(stat.z(v), -6.0, 6.0))


def _split(samples: Sequence[Sample], d: str, context: Mapping[str, bool]) -> tuple[list[Sample], list[Sample]]:
    """Samples like ``context`` with d at its analysed level or stronger, and without d."""
    pos, neg = [], []
    for s in samples:
        if not _matches(s, context):
            continue
        if d not in s.present:
            neg.append(s)
        elif s.present[d] >= 1.0:
            pos.append(s)
    return pos, neg
