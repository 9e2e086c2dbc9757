"""The paper's comparison (docs/method.md, "Masking"): rank filters with each method on one image set,
then on a held-out set measure what masking each degradation's top filters does.

For method m, proportion p and degradation d, the top p % of m's ranking for d are masked
(replaced by the baseline's kernels) and the effect — the gradient-map MSE x 1000 between the
target's output and the masked model's output — is averaged over held-out inputs of every
degradation e. ``e == d`` should be large (the function is gone), ``e != d`` small (the other
function survives), and FAIG's ``e == d`` effect should beat random filters.

Also here: PSNR of baseline and target per degradation, the Markdown table, an SVG plot drawn by
hand (no plotting library), and the teaser figure.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from faig_gui.core.analysis import AnalysisConfig, AnalysisResult, analyze
from faig_gui.core.dataset import AnalysisImage
from faig_gui.core.errors import FaigError
from faig_gui.core.filters import FilterIndex, top_indices
from faig_gui.core.inference import super_resolve
from faig_gui.core.masking import FilterMask, masked_state_dict
from faig_gui.core.metrics import gradient_effect, psnr_rgb_y
from faig_gui.core.registry import LoadedModel, check_pair

DEFAULT_METHODS = ("faig", "ig", "abs", "random")
DEFAULT_PROPORTIONS = (1.0, 3.0, 5.0, 10.0)


@dataclass
class EvaluationProgress:
    done: float                           # stages done (one per method, one for masking)
    total: int
    message: str


@dataclass
class EvaluationResult:
    methods: list[str]
    proportions: list[float]              # percent
    degradations: list[str]
    analysis_images: list[str]
    heldout_images: list[str]
    filter_count: int
    #: effects[method][str(p)][d][e]: masking d's top p % of method, on inputs of degradation e
    effects: dict[str, dict[str, dict[str, dict[str, float]]]]
    #: psnr[model][e] over held-out images, model in {'baseline', 'target'}, e incl. 'clean'
    psnr: dict[str, dict[str, float]]
    scores: dict[str, dict[str, np.ndarray]] = field(repr=False, default_factory=dict)
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    #: as ``psnr``, on the BT.601 luma (the Y channel SR papers report)
    psnr_y: dict[str, dict[str, float]] = field(default_factory=dict)

    def effect(self, method: str, p: float, d: str, e: str) -> float:
        return self.effects[method][_pkey(p)][d][e]

    def ratios(self, p: float) -> dict[str, dict[str, dict[str, float]]]:
        """For each method and degradation d: selectivity (effect on d / mean effect on the
        others), ratio to random (effect on d / random's effect on d) and, with random filters
        measured, the selectivity over random: the ratio to random on d's inputs over its mean on
        the others' (each kind's inputs measured against random filters on the same inputs, since
        some inputs, noisy ones, amplify any masking)."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for m in self.methods:
            out[m] = {}
            for d in self.degradations:
                own = self.effect(m, p, d, d)
                others = [self.effect(m, p, d, e) for e in self.degradations if e != d]
                sel = own / np.mean(others) if others and np.mean(others) > 0 else math.inf
                entry = {"selectivity": float(sel)}
                if "random" in self.methods:
                    r = self.effect("random", p, d, d)
                    entry["vs_random"] = float(own / r) if r > 0 else math.inf
                    rel = [self.effect(m, p, d, e) / self.effect("random", p, d, e)
                           for e in self.degradations if e != d and self.effect("random", p, d, e) > 0]
                    if rel:
                        entry["selectivity_over_random"] = (float(entry["vs_random"] / np.mean(rel))
                                                            if np.mean(rel) > 0 else math.inf)
                out[m][d] = entry
        return out

    def report(self) -> dict[str, Any]:
        return {"methods": self.methods, "proportions": self.proportions, "degradations": self.degradations,
                "analysis_images": self.analysis_images, "heldout_images": self.heldout_images,
                "filter_count": self.filter_count, "effects": self.effects, "psnr": self.psnr,
                "psnr_y": self.psnr_y,
                "ratios": {_pkey(p): self.ratios(p) for p in self.proportions},
                "seconds": round(self.seconds, 2), "settings": self.settings}


def _pkey(p: float) -> str:
    return f"{p:g}"


# -- ranking ----------------------------------------------------------------------------------
def rank(baseline: LoadedModel, target: LoadedModel, images: Sequence[AnalysisImage], method: str,
         steps: int = 100, device: str = "cpu", seed: int = 0,
         should_stop: Callable[[], bool] | None = None,
         on_progress: Callable[[int, int, str], None] | None = None) -> dict[str, np.ndarray]:
    """Scores per degradation for one method (FAIG, IG, abs, random) on the analysis images."""
    config = AnalysisConfig(method=method, steps=steps, device=device, seed=seed)
    for item in analyze(baseline, target, images, config, should_stop=should_stop):
        if isinstance(item, AnalysisResult):
            return item.scores
        if on_progress is not None:
            on_progress(item.done, item.total, item.message)
    raise RuntimeError("analysis ended without a result")


# -- measuring ----------------------------------------------------------------------------------
def _outputs(target: LoadedModel, params: Mapping[str, torch.Tensor] | None, images: Sequence[AnalysisImage],
             names: Sequence[str], device: str) -> dict[str, list[torch.Tensor]]:
    return {e: [super_resolve(target.module, img.lr[e], target.scale, params, device).clamp(0, 1)
                for img in images] for e in names}


def masking_effects(baseline: LoadedModel, target: LoadedModel, scores: Mapping[str, np.ndarray],
                    heldout: Sequence[AnalysisImage], proportions: Sequence[float], device: str = "cpu",
                    reference: Mapping[str, list[torch.Tensor]] | None = None
                    ) -> dict[str, dict[str, dict[str, float]]]:
    """effects[str(p)][d][e] for one method's ``scores`` (see the module docstring)."""
    names = list(heldout[0].lr)
    index = FilterIndex.from_state_dict(target.state_dict)
    ref = reference if reference is not None else _outputs(target, None, heldout, names, device)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for p in proportions:
        out[_pkey(p)] = {}
        for d in names:
            if d not in scores:
                raise FaigError(f"the scores have no ranking for degradation '{d}' (they have {', '.join(scores)})")
            mask = FilterMask(top_indices(scores[d], proportion=p / 100))
            params = masked_state_dict(target.state_dict, baseline.state_dict, mask, index)
            masked = _outputs(target, params, heldout, names, device)
            out[_pkey(p)][d] = {e: float(np.mean([gradient_effect(a, b) for a, b in zip(ref[e], masked[e])]))
                                for e in names}
    return out


def psnr_table(baseline: LoadedModel, target: LoadedModel, heldout: Sequence[AnalysisImage],
               device: str = "cpu") -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Mean PSNR of each model per degradation, border of ``scale`` pixels ignored, on RGB and
    on the BT.601 luma (the Y that SR papers report: :func:`~faig_gui.core.metrics.psnr_y`), from
    the same outputs; the clean LR input counts as degradation 'clean'."""
    rgb: dict[str, dict[str, float]] = {}
    luma: dict[str, dict[str, float]] = {}
    for label, model in (("baseline", baseline), ("target", target)):
        row, row_y = {}, {}
        clean = [img.clean_lr for img in heldout if img.clean_lr is not None]
        inputs = {"clean": clean} if len(clean) == len(heldout) else {}
        inputs.update({e: [img.lr[e] for img in heldout] for e in heldout[0].lr})
        for e, lrs in inputs.items():
            values, values_y = [], []
            for lr, img in zip(lrs, heldout):   # one output at a time: held-out images may be large
                out = super_resolve(model.module, lr, model.scale, None, device)
                p, p_y = psnr_rgb_y(out, img.hr, crop=model.scale)
                values.append(p)
                values_y.append(p_y)
            row[e], row_y[e] = float(np.mean(values)), float(np.mean(values_y))
        rgb[label], luma[label] = row, row_y
    return rgb, luma


def evaluate(baseline: LoadedModel, target: LoadedModel, analysis: Sequence[AnalysisImage],
             heldout: Sequence[AnalysisImage], methods: Sequence[str] = DEFAULT_METHODS,
             proportions: Sequence[float] = DEFAULT_PROPORTIONS, steps: int = 100, device: str = "cpu",
             seed: int = 0, given_scores: Mapping[str, Mapping[str, np.ndarray]] | None = None,
             should_stop: Callable[[], bool] | None = None, ranks: Any = None
             ) -> Iterator[EvaluationProgress | EvaluationResult]:
    """Rank with each method on ``analysis`` (or take ``given_scores[method]``), then measure the
    masking effects and PSNR on ``heldout``. Yields progress, then one EvaluationResult.

    ``ranks``: a core.distributed.DistContext (under torchrun): FAIG and IG rank with the images
    split by rank, and each rank measures its share of the held-out images; the means are
    all-reduced, so every rank ends with the whole result (rank 0 writes it)."""
    start = time.perf_counter()
    check_pair(baseline, target)
    if not heldout:
        raise FaigError("the evaluation needs at least one held-out image")
    names = list(heldout[0].lr)
    if len(names) < 2:
        raise FaigError("the evaluation compares degradations: give at least two (e.g. blur and noise)")
    for p in proportions:
        if not 0 < p <= 100:
            raise FaigError(f"proportion {p:g} must be a percentage in (0, 100]")
    given_scores = dict(given_scores or {})
    index = FilterIndex.from_state_dict(target.state_dict)
    total = len(methods) + 1
    all_scores: dict[str, dict[str, np.ndarray]] = {}
    for n, m in enumerate(methods):
        if should_stop is not None and should_stop():
            from faig_gui.core.attribution import Cancelled
            raise Cancelled()
        yield EvaluationProgress(n, total, f"ranking with {m}")
        if m in given_scores:
            all_scores[m] = {k: np.asarray(v, dtype=np.float64) for k, v in given_scores[m].items()}
        else:
            if m in ("faig", "ig") and not analysis:
                raise FaigError(f"{m} needs analysis images to rank with")
            config = AnalysisConfig(method=m, steps=steps, device=device, seed=seed)
            if ranks is not None and m in ("faig", "ig"):
                from faig_gui.core.distributed import analyze_distributed
                items = analyze_distributed(ranks, baseline, target, analysis, config, should_stop=should_stop)
            else:
                items = analyze(baseline, target, analysis, config, should_stop=should_stop)
            for item in items:
                if isinstance(item, AnalysisResult):
                    all_scores[m] = item.scores
                else:
                    yield EvaluationProgress(n + item.fraction, total, f"{m}: {item.message}")
        for d, s in all_scores[m].items():
            if len(s) != index.total:
                raise FaigError(f"{m} scores for '{d}' have {len(s)} filters, the model has {index.total}")
    yield EvaluationProgress(len(methods), total, "masking on held-out images")
    if ranks is None:
        reference = _outputs(target, None, heldout, names, device)
        effects = {m: masking_effects(baseline, target, all_scores[m], heldout, proportions, device, reference)
                   for m in methods}
        table, table_y = psnr_table(baseline, target, heldout, device)
    else:
        from faig_gui.core.distributed import sharded_means
        effects, (table, table_y) = sharded_means(ranks, heldout, lambda mine: _measure(
            baseline, target, all_scores, mine, methods, proportions, names, device))
    yield EvaluationResult(list(methods), [float(p) for p in proportions], names,
                           [i.name for i in analysis], [i.name for i in heldout], index.total, effects, table,
                           all_scores, time.perf_counter() - start,
                           {"steps": steps, "seed": seed, "device": str(device)}, table_y)


def _measure(baseline, target, all_scores, heldout, methods, proportions, names, device):
    """The masking effects and PSNR tables (RGB, Y) of one share of the held-out images."""
    reference = _outputs(target, None, heldout, names, device)
    effects = {m: masking_effects(baseline, target, all_scores[m], heldout, proportions, device, reference)
               for m in methods}
    return effects, psnr_table(baseline, target, heldout, device)


# -- writing ----------------------------------------------------------------------------------
def markdown_table(result: EvaluationResult) -> str:
    names = result.degradations
    lines = ["Effect of masking a degradation's top filters (gradient-map MSE x 1000 between the target's "
             "output and the masked output, mean over held-out images). ↑: higher is better (the function "
             "is removed); ↓: lower is better (the other function survives).", ""]
    header = ["method", "proportion"]
    for d in names:
        for e in names:
            header.append(f"{d} filters on {e} inputs {'↑' if e == d else '↓'}")
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in result.methods:
        for p in result.proportions:
            cells = [m, f"{p:g} %"] + [_number(result.effect(m, p, d, e)) for d in names for e in names]
            lines.append("| " + " | ".join(cells) + " |")
    over = "random" in result.methods and len(names) > 1
    lines += ["", "Ratios: selectivity = effect on its own degradation's inputs / effect on the other "
              "degradation's inputs; vs random = effect on its own inputs / random filters' effect there"
              + ("; over random = vs random on its own inputs / vs random on the others' inputs (the "
                 "selectivity with each kind of input measured against random filters on it)." if over else "."), ""]
    kinds = ("selectivity", "vs random", "over random") if over else ("selectivity", "vs random")
    header = ["method", "proportion"] + [f"{d}: {k}" for d in names for k in kinds]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in result.methods:
        for p in result.proportions:
            r = result.ratios(p)[m]
            cells = [m, f"{p:g} %"]
            for d in names:
                cells += [f"x{r[d]['selectivity']:.1f}", f"x{r[d].get('vs_random', float('nan')):.1f}"]
                if over:
                    cells.append(f"x{r[d].get('selectivity_over_random', float('nan')):.1f}")
            lines.append("| " + " | ".join(cells) + " |")
    lines += _psnr_lines(result.psnr, "RGB")
    if result.psnr_y:
        lines += _psnr_lines(result.psnr_y, "Y: BT.601 luma, as SR papers report it")
    return "\n".join(lines) + "\n"


def _psnr_lines(table: dict[str, dict[str, float]], channel: str) -> list[str]:
    cols = list(table["target"])
    lines = ["", f"PSNR (dB, {channel}, border of `scale` pixels ignored) on the held-out images:", "",
             "| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for label, row in table.items():
        lines.append(f"| {label} | " + " | ".join(f"{row[c]:.2f}" for c in cols) + " |")
    gain = {c: table["target"][c] - table["baseline"][c] for c in cols}
    lines.append("| target − baseline | " + " | ".join(f"{gain[c]:+.2f}" for c in cols) + " |")
    return lines


def _number(v: float) -> str:
    return f"{v:.3f}" if v == 0 or abs(v) >= 0.01 else f"{v:.2e}"


_COLOURS = {"faig": "#d62728", "ig": "#1f77b4", "abs": "#2ca02c", "random": "#7f7f7f"}


def svg_plot(result: EvaluationResult) -> str:
    """One panel per degradation d: effect vs proportion, log scale; solid lines on d's inputs,
    dashed on the others'."""
    names = result.degradations
    pw, ph, ml, mt, mb, gap = 360, 260, 60, 40, 50, 40
    width = ml + len(names) * (pw + gap)
    height = mt + ph + mb + 30
    values = [result.effect(m, p, d, e) for m in result.methods for p in result.proportions
              for d in names for e in names]
    positive = [v for v in values if v > 0] or [1e-3]
    lo = 10 ** math.floor(math.log10(min(positive)))
    hi = 10 ** math.ceil(math.log10(max(positive)))
    ps = result.proportions

    def x_of(p: float, i: int) -> float:
        return ml + i * (pw + gap) + (0 if len(ps) == 1 else (ps.index(p)) / (len(ps) - 1) * pw)

    def y_of(v: float) -> float:
        return mt + ph - (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">', f'<rect width="{width}" height="{height}" fill="white"/>']
    for i, d in enumerate(names):
        x0 = ml + i * (pw + gap)
        out.append(f'<text x="{x0 + pw / 2}" y="{mt - 15}" text-anchor="middle" font-size="14">'
                   f'masking {d} filters</text>')
        out.append(f'<rect x="{x0}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="black"/>')
        decade = lo
        while decade <= hi * 1.0001:
            y = y_of(decade)
            out.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{x0 - 5}" y="{y + 4:.1f}" text-anchor="end">{decade:g}</text>')
            decade *= 10
        for p in ps:
            out.append(f'<text x="{x_of(p, i):.1f}" y="{mt + ph + 16}" text-anchor="middle">{p:g} %</text>')
        out.append(f'<text x="{x0 + pw / 2}" y="{mt + ph + 34}" text-anchor="middle">proportion of filters masked</text>')
        for m in result.methods:
            colour = _COLOURS.get(m, "#000")
            for e in names:
                pts = " ".join(f"{x_of(p, i):.1f},{y_of(result.effect(m, p, d, e)):.1f}" for p in ps)
                dash = "" if e == d else ' stroke-dasharray="5,4"'
                out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
    out.append(f'<text x="14" y="{mt + ph / 2}" transform="rotate(-90 14 {mt + ph / 2})" '
               f'text-anchor="middle">effect (gradient-map MSE x1000, log)</text>')
    lx = ml
    ly = height - 8
    for m in result.methods:
        out.append(f'<line x1="{lx}" x2="{lx + 20}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{_COLOURS.get(m, "#000")}" stroke-width="2"/>')
        out.append(f'<text x="{lx + 24}" y="{ly}">{m}</text>')
        lx += 80
    out.append(f'<text x="{lx + 10}" y="{ly}">solid: inputs of the masked degradation; dashed: the other inputs</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def teaser_image(baseline: LoadedModel, target: LoadedModel, scores: Mapping[str, np.ndarray],
                 image: AnalysisImage, proportion: float = 1.0, crop: int = 192,
                 device: str = "cpu") -> np.ndarray:
    """The paper's teaser: per degradation one row of (input, target output, output with that
    degradation's top filters masked), centre crops, labelled. Returns HWC float RGB."""
    import cv2
    index = FilterIndex.from_state_dict(target.state_dict)
    s = target.scale
    h, w = image.hr.shape[-2:]
    side = min(crop, h, w) // s * s
    top, left = (h - side) // 2 // s * s, (w - side) // 2 // s * s

    def cut(t: torch.Tensor, f: int = 1) -> np.ndarray:
        t = t[..., top // f:(top + side) // f, left // f:(left + side) // f]
        return t[0].clamp(0, 1).permute(1, 2, 0).numpy()

    rows = []
    for d in image.lr:
        mask = FilterMask(top_indices(scores[d], proportion=proportion / 100))
        params = masked_state_dict(target.state_dict, baseline.state_dict, mask, index)
        lr = image.lr[d]
        up = torch.nn.functional.interpolate(lr, scale_factor=s, mode="nearest")
        tiles = [(cut(up), f"{d} input"),
                 (cut(super_resolve(target.module, lr, s, None, device)), "target output"),
                 (cut(super_resolve(target.module, lr, s, params, device)), f"{d} filters masked ({proportion:g}%)")]
        row = []
        for tile, label in tiles:
            tile = np.pad(np.round(tile * 255).astype(np.uint8), ((0, 22), (2, 2), (0, 0)), constant_values=255)
            tile = np.ascontiguousarray(tile)  # OpenCV draws text on 8-bit images only
            cv2.putText(tile, label, (4, tile.shape[0] - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                        cv2.LINE_AA)
            row.append(tile)
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0).astype(np.float32) / 255.0
