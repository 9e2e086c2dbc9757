"""The predictor's settings and its verdict."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from faig_gui.core.errors import FaigError
from faig_gui.core.prediction.calibration import INTERVAL_COVERAGE
from faig_gui.core.prediction.evidence import CLEAN, DETAIL_VISIBLE, EVIDENCE


@dataclass(frozen=True)
class PredictorConfig:
    proportion: float = 1.0                 # percent of filters per degradation (top k %)
    # the residual responses cost two more passes per degradation and added little (docs/prediction.md)
    evidence: tuple[str, ...] = ("masking_effect", "relative_masking_effect", "change_response",
                                 "relative_change_response", "masking_effect_share", "change_response_share",
                                 "self_referenced_effect", "self_referenced_energy", "self_referenced_slope",
                                 "noise_estimate", "blur_estimate", "detail_slope",
                                 "spectral_blur")
    # above max_pixels, max_pixels // tile² tiles spread from the most textured to the flattest
    # (four 32² tiles cost what one 64² tile did: the 300 ms budget of a 256² drop)
    tile: int = 32                          # LR tile side for images above max_pixels
    max_pixels: int = 4 * 32 * 32           # LR pixels analysed per image (more: tiles)
    levels: tuple[float, ...] = (0.5, 1.0, 2.0)   # strength factors calibrated (blur σ 1-4 for σ 2)
    seeds: int = 1                          # noise draws per calibration image and class (diverse content: one each)
    min_spread: float = 0.5                 # floor of an evidence's spread (log units) in calibration
    # the same floor for the self-referenced kinds: the content cancels in them, so new images
    # vary about as little as the calibration images do
    min_spread_reference: float = 0.05
    # noise draws per reference (self-referenced kinds): one draw's noise moves the position by a
    # third of its spread; two read noise-only from blur+noise better on held-out content
    reference_draws: int = 2
    reference_tiles: int = 4                # tiles measured against the references (most textured first)
    # a blur's evidence from the more textured half of the tiles (1.0: from all of them)
    textured_share: float = 0.5
    device: str = "cpu"

    def validate(self) -> None:
        if not 0 < self.proportion <= 100:
            raise FaigError(f"proportion {self.proportion} % must lie in (0, 100]")
        unknown = set(self.evidence) - set(EVIDENCE)
        if unknown or not self.evidence:
            raise FaigError(f"unknown evidence {sorted(unknown)}; use some of {', '.join(EVIDENCE)}")
        if self.tile < 8 or self.max_pixels < self.tile * self.tile:
            raise FaigError(f"tile {self.tile} / max_pixels {self.max_pixels}: need tile >= 8 and "
                            f"max_pixels >= tile²")
        if not 0 < self.textured_share <= 1:
            raise FaigError(f"textured_share {self.textured_share} must lie in (0, 1]")
        if 1.0 not in self.levels:
            raise FaigError("levels must include 1.0 (the analysed level)")


#: how a strength parameter reads in a verdict (others: 'blur_sigma' -> 'blur σ')
_SHOWN = {"jpeg_quality": "JPEG quality"}


@dataclass
class Prediction:
    labels: list[str]                           # [] means clean
    scores: dict[str, float]                    # calibrated P(degradation present) in [0, 1]
    strength: dict[str, dict[str, float]]       # per predicted degradation: {'noise_sigma': 0.08}
    evidence: dict[str, dict[str, float]]       # raw evidence: kind -> degradation -> value
    note: str = ""                              # e.g. how a large image was tiled
    seconds: float = 0.0
    #: per predicted degradation and strength parameter: (low, high), the calibration's spread
    interval: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    filters: dict[str, float] = field(default_factory=dict)     # P(d) from the filters' evidence alone
    classical: dict[str, float] = field(default_factory=dict)   # P(d) from the classical estimates alone
    estimates: dict[str, float] = field(default_factory=dict)   # the classical estimates themselves
    confidence: float = 1.0                     # P(the label set is right)
    doubts: list[str] = field(default_factory=list)       # degradations it is unsure of
    competing: list[list[str]] = field(default_factory=list)   # the label sets in question when unsure
    tiles: int = 1                              # tiles analysed (1: the whole image)
    #: per degradation, the evidence kinds beyond the calibration's range (it then says unsure)
    outside: dict[str, list[str]] = field(default_factory=dict)
    #: the blurs it cannot read because the noise hides the image's detail (it then says unsure)
    hidden: list[str] = field(default_factory=list)
    #: P(d) from the kind that measures d itself alone (the spectral blur, for a blur found alone)
    measured: dict[str, float] = field(default_factory=dict)

    @property
    def unsure(self) -> bool:
        return bool(self.doubts)

    @property
    def verdict(self) -> str:
        return " + ".join(self.labels) if self.labels else CLEAN

    def describe(self) -> str:
        parts = []
        for d in self.labels:
            iv = self.interval.get(d, {})
            s = ", ".join(f"{_SHOWN.get(k, k.replace('_sigma', ' σ'))} ≈ {v:.3g}"
                          + (f" [{iv[k][0]:.3g}–{iv[k][1]:.3g}]" if k in iv and all(map(math.isfinite, iv[k])) else "")
                          for k, v in self.strength.get(d, {}).items())
            parts.append(f"{d} ({s})" if s else d)
        text = " + ".join(parts) or CLEAN
        if self.unsure:
            others = [" + ".join(c) or CLEAN for c in self.competing[1:]]
            text = f"unsure: {text}" + (f", or {' or '.join(others)}" if others else "")
        return text

    def classical_note(self) -> str:
        """The classical estimates in words, those measured ('' when none is), as the panel and
        ``predict`` show them: 'noise σ ≈ 0.101, blur 0.17, detail slope -4.1, spectral blur σ 0.98 px'."""
        shown = (("noise_estimate", "noise σ ≈ {:.3g}"), ("blur_estimate", "blur {:.2f}"),
                 ("detail_slope", "detail slope {:.1f}"), ("spectral_blur", "spectral blur σ {:.2f} px"))
        return ", ".join(form.format(self.estimates[k]) for k, form in shown if k in self.estimates)

    def hidden_note(self) -> str:
        """Why the blurs in :attr:`hidden` are unsure, in words ('' when none is)."""
        if not self.hidden:
            return ""
        visible = self.estimates.get(DETAIL_VISIBLE)
        level = f" (its low-band detail stands {visible:.2g}x the noise power above it)" if visible is not None else ""
        return f"{', '.join(self.hidden)}: the noise hides the detail a blur would take{level}"

    def to_json(self, image: str) -> dict:
        return {"image": image, "labels": self.labels or [CLEAN],
                "scores": {d: round(v, 4) for d, v in self.scores.items()},
                "confidence": round(self.confidence, 4),
                "unsure": self.unsure,
                "competing": [c or [CLEAN] for c in self.competing] if self.unsure else [],
                "strength": {d: {k: round(v, 4) for k, v in s.items()} for d, s in self.strength.items()},
                "interval": {d: {k: [round(lo, 4), round(hi, 4)] for k, (lo, hi) in s.items()}
                             for d, s in self.interval.items()},
                "interval_coverage": INTERVAL_COVERAGE,
                "filters": {d: round(v, 4) for d, v in self.filters.items()},
                "classical": {d: round(v, 4) for d, v in self.classical.items()},
                "measured": {d: round(v, 4) for d, v in self.measured.items()},
                "estimates": {k: round(v, 5) for k, v in self.estimates.items()},
                "tiles": self.tiles,
                "outside": {d: list(k) for d, k in self.outside.items()},
                "hidden": list(self.hidden)}
