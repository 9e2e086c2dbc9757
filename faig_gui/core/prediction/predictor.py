"""The predictor: one pair, its scores and a proportion; calibrates once (cached), then
judges any LR image."""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import replace
from pathlib import Path
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from faig_gui.core.degradations import Degradation
from faig_gui.core.errors import FaigError
from faig_gui.core.prediction.cache import cache_key_text, calibration_cache_dir, read_calibration, write_calibration
from faig_gui.core.prediction.calibration import Calibration, Verdict, strength_params
from faig_gui.core.prediction.sampling import calibrate, definitions_of
from faig_gui.core.prediction.config import Prediction, PredictorConfig
from faig_gui.core.prediction.jpeg_quality import jpeg_quality_estimate
from faig_gui.core.prediction.evidence import (CLASSICAL, DETAIL_VISIBLE, SELF_REFERENCED, EvidenceModel,
                                               classical_estimates, evidence_tiles, tile_count, tile_median, tiles)
from faig_gui.core.registry import LoadedModel


def _tensor_key(tensors: Iterable[torch.Tensor]) -> str:
    h = hashlib.sha1()
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


_CALIBRATIONS: dict[tuple, Calibration] = {}


class Predictor:
    """Predicts the degradations of LR images for one pair, its scores and a proportion.

    Building one is cheap; the calibration runs on first use (or :meth:`calibrate`) and is kept
    in a process-wide cache keyed by the weights, scores, proportion and calibration images, and
    in a file of the user cache folder (:func:`calibration_cache_dir`) under the same key, so
    that the next process loads it instead of calibrating again. ``cache=False`` recomputes
    (and replaces the stored calibration)."""

    def __init__(self, baseline: LoadedModel, target: LoadedModel, scores: Mapping[str, np.ndarray],
                 analysis_hr: Sequence[torch.Tensor], degradations: Iterable[Degradation] | None = None,
                 config: PredictorConfig = PredictorConfig(), cache: bool = True):
        config.validate()
        self.config = config
        self.cache = cache
        self.model = EvidenceModel(baseline, target, scores, config.proportion, config.device)
        self.names = self.model.names
        self.definitions = definitions_of(self.names, degradations)
        self.analysis_hr = [h if h.ndim == 4 else h.unsqueeze(0) for h in analysis_hr]
        if not self.analysis_hr:
            raise FaigError("the predictor calibrates on the analysis images: there are none")
        self.key = (_tensor_key(target.state_dict.values()), _tensor_key(baseline.state_dict.values()),
                    _tensor_key(torch.as_tensor(np.asarray(s)) for s in scores.values()), tuple(self.names),
                    replace(config, device="-"), tuple(sorted(self.definitions.items())),
                    _tensor_key(self.analysis_hr))
        self.calibration: Calibration | None = _CALIBRATIONS.get(self.key) if cache else None
        #: where the calibration came from: 'memory', 'disk', 'computed' (None: not yet)
        self.calibration_source: str | None = "memory" if self.calibration is not None else None
        #: why a computed calibration could not be stored on disk ('' when it was, or not tried)
        self.cache_warning = ""
        self._cache_text: str | None = None
        #: what the calibration images are, for messages (the command line sets it)
        self.content_note = f"{len(self.analysis_hr)} images"

    @property
    def cache_text(self) -> str:
        """The key as text that is the same in every process: the disk cache's identity."""
        if self._cache_text is None:
            self._cache_text = cache_key_text(self.key, type(self.model.target.module).__module__)
        return self._cache_text

    @property
    def cache_path(self) -> Path:
        return calibration_cache_dir() / (hashlib.sha256(self.cache_text.encode()).hexdigest() + ".npz")

    def load_cached(self) -> bool:
        """Takes the calibration from memory, else from the disk cache; whether there was one.
        A stored file that cannot be read or does not match is ignored (and later replaced)."""
        if self.calibration is None and self.cache:
            found = read_calibration(self.cache_path, self.cache_text)
            if (found is not None and found.names == list(self.names)
                    and found.kinds == tuple(self.config.evidence) and found.definitions == self.definitions):
                self.calibration, self.calibration_source = found, "disk"
                _CALIBRATIONS[self.key] = found
        return self.calibration is not None

    def calibrate(self, should_stop: Callable[[], bool] | None = None,
                  on_progress: Callable[[int, int], None] | None = None) -> Calibration:
        if not self.load_cached():
            self.calibration = calibrate(self.model, self.analysis_hr, self.definitions, self.config,
                                         should_stop, on_progress)
            self.calibration_source = "computed"
            _CALIBRATIONS[self.key] = self.calibration
            self.cache_warning = write_calibration(self.cache_path, self.cache_text, self.calibration)
        assert self.calibration is not None   # loaded or computed just above
        return self.calibration

    def evidence(self, lr: torch.Tensor | np.ndarray) -> tuple[dict[str, np.ndarray], str]:
        """The image's evidence (kind -> (D,), the tiles' median; the self-referenced kinds are NaN: they depend
        on the verdict so far, see :meth:`predict`) and the tiling note."""
        ev, _, note = self._measure(_as_batch(lr))
        return ev, note

    def tile_counts(self, count: int) -> list[int]:
        """Per degradation, how many of an image's ``count`` tiles (most textured first) its
        evidence is taken from (:func:`evidence_tiles`)."""
        return [evidence_tiles(self.definitions[d], count, self.config.textured_share) for d in self.names]

    def _measure(self, x: torch.Tensor):
        """Evidence of the image ``x`` (1x3xHxW in [0, 1], :func:`_as_batch`'s)."""
        batch, note = tiles(x, self.config.tile, self.config.max_pixels)
        ev, measured = self.model.measure(batch, self.config.evidence)
        counts = self.tile_counts(batch.shape[0])
        ev = {k: tile_median(v, counts) for k, v in ev.items()}   # as the calibration: robust to one odd tile
        # of the whole image, no network pass; the guard (DETAIL_VISIBLE) is not evidence: it says
        # whether a blur can be read at all (Calibration._hidden)
        estimates = classical_estimates(x)
        ev.update({k: np.full(len(self.names), estimates[k]) for k in CLASSICAL if k in self.config.evidence})
        ev[DETAIL_VISIBLE] = np.full(len(self.names), estimates[DETAIL_VISIBLE])
        return ev, measured, note

    def predict(self, lr: torch.Tensor | np.ndarray, which: str = "all") -> Prediction:
        """The verdict on one LR image (HWC float array in [0, 1] or 1x3xHxW tensor). ``which``:
        the evidence that decides, 'all' (the default), 'filters' (the network's alone, as the
        evaluation measures it without the classical estimates) or 'classical'."""
        calibration = self.calibrate()
        start = time.perf_counter()
        x = _as_batch(lr)
        ev, measured, note = self._measure(x)

        def reference(d: str, found: Mapping[str, float]) -> dict[str, float]:
            others = [(self.definitions[o], f) for o, f in found.items()]
            n = self.names.index(d)
            # only the tiles d's evidence is taken from (a blur's: the textured half) are measured
            # against the references: the others would not count in the median
            first = min(self.config.reference_tiles, self.tile_counts(measured.y.shape[0])[n])
            arrays = self.model.self_reference(measured, n, others, self.definitions[d],
                                               self.config.reference_draws, first, calibration.noise_scale)
            values = {k: float(np.median(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan")
                      for k, v in arrays.items() if k in ev}
            for k, v in values.items():
                ev[k][n] = v    # for the evidence table
            return values

        verdict = calibration.judge(ev, reference, which)
        self._widen_for_doubts(calibration, verdict, ev)
        self._read_jpeg_quality(verdict, x)
        return make_prediction(verdict, ev, self.names, note, time.perf_counter() - start)

    def _widen_for_doubts(self, calibration: Calibration, verdict: Verdict, ev: Mapping[str, np.ndarray]) -> None:
        """A found degradation's strength is read among the calibration samples like the other
        verdicts; where one of those verdicts is in doubt, the strength could be the reading among
        the samples with that verdict turned over as well. Its interval then spans both readings
        (the point stays the verdict's): on the three-degradation pair a noisy crop wrongly also
        called blurred, unsure, read noise σ 0.30 [0.20-0.47] among blurred samples, where the
        classical estimate says 0.10. The self-referenced kinds were measured against the
        verdict's references, so the turned-over reading leaves them out (where its curve is one
        of them, the curve over all samples reads instead): no network pass."""
        doubts = verdict.doubts()
        for d in verdict.labels:
            if d not in verdict.interval or d in verdict.hidden:
                continue
            n = self.names.index(d)
            context = {o: o in verdict.labels for o in self.names if o != d}
            e = {k: v.copy() for k, v in ev.items()}
            for k in SELF_REFERENCED:
                if k in e:
                    e[k][n] = np.nan
            for o in doubts:
                if o == d:
                    continue
                turned = {**context, o: not context[o]}
                factor = calibration.factor(d, e, turned)
                if factor is None:
                    continue
                lo, hi = calibration.factor_interval(d, e, turned)
                readings = [strength_params(self.definitions[d], f) for f in (factor, lo, hi) if math.isfinite(f)]
                for key, (a, b) in verdict.interval[d].items():
                    values = [a, b, *(r[key] for r in readings if key in r)]
                    verdict.interval[d][key] = (min(values), max(values))

    def _read_jpeg_quality(self, verdict: Verdict, x: torch.Tensor) -> None:
        """A found degradation's JPEG quality read from the image by re-compression, in place of
        its calibration curve's reading, where the image shows one (core/prediction/jpeg_quality.py:
        the curve's median reading of quality 10 was 1.25-22.6 on the three-degradation pair)."""
        jpegs = [d for d in verdict.labels if self.definitions[d].jpeg_quality]
        if not jpegs:
            return
        found = jpeg_quality_estimate(x)
        if found is None:
            return
        for d in jpegs:
            verdict.strength.setdefault(d, {})["jpeg_quality"] = found.quality
            verdict.interval.setdefault(d, {})["jpeg_quality"] = found.interval


def make_prediction(verdict: Verdict, evidence: Mapping[str, np.ndarray], names: Sequence[str], note: str = "",
                    seconds: float = 0.0) -> Prediction:
    """The :class:`Prediction` reported for a verdict on evidence (kind -> (D,)) and the tiling note."""
    whole_image = (*CLASSICAL, DETAIL_VISIBLE)   # one value for every degradation: shown as estimates
    estimates = {k: float(evidence[k][0]) for k in whole_image if k in evidence}
    table = {k: {d: float(val[n]) for n, d in enumerate(names) if math.isfinite(float(val[n]))}
             for k, val in evidence.items() if k not in whole_image}
    table = {k: val for k, val in table.items() if val}
    return Prediction(verdict.labels, verdict.scores, verdict.strength, table, note, seconds, verdict.interval,
                      verdict.filters, verdict.classical, estimates, verdict.confidence, verdict.doubts(),
                      verdict.competing(), tile_count(note), verdict.outside,
                      verdict.hidden, verdict.measured)


def _as_batch(lr: torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(lr, np.ndarray):
        if lr.ndim != 3 or lr.shape[2] != 3:
            raise FaigError(f"expected an RGB image (H x W x 3), got shape {lr.shape}")
        lr = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).unsqueeze(0)
    if lr.ndim == 3:
        lr = lr.unsqueeze(0)
    if lr.shape[0] != 1 or lr.shape[1] != 3:
        raise FaigError(f"expected one RGB image, got a tensor of shape {tuple(lr.shape)}")
    if min(lr.shape[-2:]) < 8:
        raise FaigError(f"a {lr.shape[-1]}x{lr.shape[-2]} image is too small to predict its degradation (need 8x8)")
    return lr.float().clamp(0, 1)
