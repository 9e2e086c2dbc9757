"""Calibrated probabilities: an L2-regularised logistic regression on the standardised evidence,
and a Platt map fitted on out-of-fold logits (folds by calibration image), so that a probability
of 0.8 is right about 80 % of the time on content the fit did not see. All in float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np

#: L2 penalty on the weights (not the intercept): the evidence is standardised, so it is in units
#: of one calibration spread; it keeps separable calibration data from giving infinite weights
L2 = 1.0
#: logits are clipped here: a probability is never reported as exactly 0 or 1
MAX_LOGIT = 12.0


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, iterations: int = 30) -> tuple[np.ndarray, float]:
    """Weights (k,) and intercept of P(y=1|x) = σ(x·w + b), by Newton's method on the penalised
    log-likelihood (float64). ``x`` (n, k), ``y`` (n,) in {0, 1}."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, k = x.shape
    a = np.hstack([x, np.ones((n, 1))])
    theta = np.zeros(k + 1)
    theta[-1] = math.log((y.sum() + 0.5) / (n - y.sum() + 0.5))
    penalty = np.full(k + 1, l2)
    penalty[-1] = 1e-6   # the intercept: barely held
    for _ in range(iterations):
        p = _sigmoid(a @ theta)
        grad = a.T @ (p - y) + penalty * theta
        hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-9:
            break
    return theta[:-1], float(theta[-1])


@dataclass
class Logit:
    """A fitted model: logit = features·weights + intercept, then the Platt map a·logit + b."""

    weights: np.ndarray
    intercept: float
    a: float = 1.0
    b: float = 0.0
    #: where a new row's evidence lies beyond every fitted row's: its probability is held within
    #: [1 - hold_low, hold_high], the share of rows that, held out in their fold and beyond the
    #: other folds' range, fell on the side the model gave them (below 0.5 and above; None where
    #: :func:`fit_logit` was given no span)
    hold_low: float | None = None
    hold_high: float | None = None
    #: per feature, the range of the fitted rows' span (finite values; ±inf where there is none):
    #: beyond it the model extrapolates (None where :func:`fit_logit` was given no span)
    span_low: np.ndarray | None = None
    span_high: np.ndarray | None = None

    def logit(self, features: np.ndarray) -> float:
        raw = float(np.asarray(features, dtype=np.float64) @ self.weights + self.intercept)
        return float(np.clip(self.a * raw + self.b, -MAX_LOGIT, MAX_LOGIT))

    def probability(self, features: np.ndarray) -> float:
        return float(_sigmoid(np.array(self.logit(features))))


def _finite_range(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``values`` (n, k), the least and greatest finite value; a column with none
    has no range (-inf, inf): nothing lies beyond it."""
    known = np.isfinite(values)
    has = known.any(axis=0)
    lo = np.where(has, np.where(known, values, np.inf).min(axis=0), -np.inf)
    hi = np.where(has, np.where(known, values, -np.inf).max(axis=0), np.inf)
    return lo, hi


def fit_logit(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 4,
              span: np.ndarray | None = None, prior_hold: float = 0.75) -> Logit:
    """A :class:`Logit` on all rows, its Platt map fitted on the logits each row gets from a model
    that did not see its group (calibration image): the logit a new image's evidence gets is
    judged as it will be on new content, not as on the rows the weights were fitted on.

    With ``span`` (n, k: each row's evidence on the scale its range is judged on), the holds for
    evidence beyond that range are fitted the same way: a held-out row beyond the range of its
    training folds' rows is such a case, and how often its mapped probability fell on the right
    side, below 0.5 and above separately, is the hold on that side. Each share is taken with
    ``prior_hold`` as two rows' worth of prior (so a side without such rows holds at it)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w, b = fit_logistic(x, y)
    model = Logit(w, b)
    labels = np.unique(groups)
    if len(labels) < 2:   # one image (or none known): rows stand for themselves
        groups = np.arange(len(y))
        labels = np.unique(groups)
    fold_of = {g: n % min(folds, len(labels)) for n, g in enumerate(labels)}
    fold = np.array([fold_of[g] for g in groups])
    held = np.full(len(y), np.nan)
    beyond = np.zeros(len(y), dtype=bool)
    for f in np.unique(fold):
        train = fold != f
        if len(np.unique(y[train])) < 2:
            continue
        wf, bf = fit_logistic(x[train], y[train])
        held[~train] = x[~train] @ wf + bf
        if span is not None:
            lo, hi = _finite_range(span[train])
            beyond[~train] = np.any((span[~train] < lo) | (span[~train] > hi), axis=1)
    ok = np.isfinite(held)
    if ok.sum() >= 4 and len(np.unique(y[ok])) == 2:
        (a,), c = fit_logistic(np.clip(held[ok], -30, 30)[:, None], y[ok], l2=1e-3)
        if a > 0:   # a map that turned the evidence around would be a fit to noise
            model.a, model.b = float(a), float(c)
    if span is not None:
        model.span_low, model.span_high = _finite_range(span)
        p = _sigmoid(np.clip(model.a * np.where(ok, held, 0.0) + model.b, -MAX_LOGIT, MAX_LOGIT))

        def share(rows: np.ndarray, right: np.ndarray) -> float:
            return max((float(right[rows].sum()) + 2 * prior_hold) / (float(rows.sum()) + 2), 0.5)
        model.hold_low = share(ok & beyond & (p < 0.5), y == 0)
        model.hold_high = share(ok & beyond & (p >= 0.5), y == 1)
    return model


def reliability(probabilities: Sequence[float], outcomes: Sequence[bool], bins: int = 10
                ) -> tuple[float, list[tuple[float, float, int]]]:
    """Expected calibration error (the count-weighted mean |accuracy - confidence| over equal-width
    bins of probability) and the bins as (mean probability, observed frequency, count)."""
    p = np.asarray(probabilities, dtype=np.float64)
    o = np.asarray(outcomes, dtype=np.float64)
    if len(p) == 0:
        return float("nan"), []
    idx = np.minimum((p * bins).astype(int), bins - 1)
    out, ece = [], 0.0
    for k in range(bins):
        m = idx == k
        if not m.any():
            continue
        conf, freq = float(p[m].mean()), float(o[m].mean())
        ece += m.sum() / len(p) * abs(freq - conf)
        out.append((conf, freq, int(m.sum())))
    return float(ece), out
