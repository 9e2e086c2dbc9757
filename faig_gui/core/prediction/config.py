"""The predictor's settings and its verdict."""
from __future__ import annotations

from dataclasses import dataclass

from faig_gui.core.errors import FaigError
from faig_gui.core.prediction.evidence import CLEAN, EVIDENCE


@dataclass(frozen=True)
class PredictorConfig:
    proportion: float = 1.0                 # percent of filters per degradation (top k %)
    # the residual responses cost two more passes per degradation and added little (docs/prediction.md)
    evidence: tuple[str, ...] = ("masking_effect", "relative_masking_effect", "change_response",
                                 "relative_change_response", "masking_effect_share", "change_response_share",
                                 "self_referenced_effect", "self_referenced_energy")
    tile: int = 64                          # LR tile side for images above max_pixels
    max_pixels: int = 64 * 64               # LR pixels analysed per image (more: tiles)
    levels: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)   # strength factors calibrated
    seeds: int = 2                          # noise draws per calibration image and class
    min_spread: float = 0.5                 # floor of an evidence's spread (log units) in calibration
    # the same floor for the self-referenced kinds: the content cancels in them, so new images
    # vary about as little as the calibration images do
    min_spread_reference: float = 0.05
    reference_draws: int = 1                # noise draws per reference (self-referenced kinds)
    reference_tiles: int = 1                # tiles measured against the references (most textured first)
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
        if 1.0 not in self.levels:
            raise FaigError("levels must include 1.0 (the analysed level)")


@dataclass
class Prediction:
    labels: list[str]                           # [] means clean
    scores: dict[str, float]                    # confidence per degradation in [0, 1]
    strength: dict[str, dict[str, float]]       # per predicted degradation: {'noise_sigma': 0.08}
    evidence: dict[str, dict[str, float]]       # raw evidence: kind -> degradation -> value
    note: str = ""                              # e.g. how a large image was tiled
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        return " + ".join(self.labels) if self.labels else CLEAN

    def describe(self) -> str:
        parts = []
        for d in self.labels:
            s = ", ".join(f"{k.replace('_sigma', ' σ')} ≈ {v:.3g}" for k, v in self.strength.get(d, {}).items())
            parts.append(f"{d} ({s})" if s else d)
        return " + ".join(parts) or CLEAN

    def to_json(self, image: str) -> dict:
        return {"image": image, "labels": self.labels or [CLEAN],
                "scores": {d: round(v, 4) for d, v in self.scores.items()},
                "strength": {d: {k: round(v, 4) for k, v in s.items()} for d, s in self.strength.items()}}
