"""Degradation prediction from the target's own discriminative filters (FAIG.md, last section).

No classifier is trained: for each analysed degradation d the predictor measures *evidence*
that comes from d's top-k % filters (the session's scores), and compares it with the same
evidence measured on the analysis images' clean and degraded versions (the calibration).

Evidence per input x and degradation d (F_d = d's top filters, Δ = target − baseline kernel):

``M``  masking effect: gradient-map effect (metrics.gradient_effect) between the target's output
       and the output with F_d replaced by the baseline's kernels.
``N``  M divided by the mean square of the target output's gradient map (less content-bound).
``E``  change response: Σ_{(o,i)∈F_d} mean (conv(feature_i, Δ_oi))² over the input feature
       maps of the filters (the mean over every fourth output row and column), from one
       forward pass of the target with hooks.
``R``  relative change response: E divided by the same sum with the baseline kernels θ̄_oi.
``Q``  residual response: E_d measured again on the output of the d-masked model, bicubically
       downscaled back to the input size: "is d still there once the network removed all
       the other degradations but not d?" (blur+noise against noise-only, where the
       network's noise path dominates M and E).  ``P``: Q relative, as R is to E.
``X``  d's share of the masking effect, M_d / Σ_d' M_d'; ``Y``: d's share of the change response,
       E_d / Σ_d' E_d'. Shares cancel much of the image content, which the absolute evidences
       carry from one image to the next (with a single degradation they are constant: no vote).
``S``  self-referenced masking effect, for the last decision, once every other degradation was
       decided. The target's output for the input (its restoration) is degraded again twice:
       by the degradations found (none, or noise at the input's level), and by the same plus
       d at its analysed level. These two *references* hold the input's content, one without
       d and one with it. S_d is where the input lies between them on log N_d (0: like the
       reference without d, 1: like the one with d), so the content cancels. This separates
       blur+noise from noise-only, where N, M and E read the content as much as the blur
       (a noisy cat's fur reads as blur), and sharp from blurred textures.
       ``T``: the same position on the log gradient energy of the target's outputs. The
       references' noise has the input's own level: the robust σ of what the restoration
       removed, scaled to the true σ on the calibration samples. Both cost two more passes
       on one tile (the references in one batch; the target and the d-masked target). One
       noise draw per reference (``reference_draws``): its noise moves S by about 0.16 from
       draw to draw (a third of its spread between blur+noise images); two draws (and S and T
       voting alone in the last decision) labelled 4 more of 72 blur+noise crops right, but
       cost about 115 ms more, past the 300 ms budget of a 256x256 image on two cores.

Decision (multi-label): degradations are decided one after another, most separable first; each
is decided by a weighted vote of its calibrated evidences, calibrated on the analysis samples
whose other degradations match what was decided already (so "blur" is judged against noisy
samples when the image was found noisy); samples with d at its analysed level or stronger count
as holding d (a stronger blur is still blur: the evidence is not always monotone in the level, and
a threshold set against the analysed level alone read strong blur as clean). Strength: a
calibration curve of d's most
level-sensitive evidence over a few synthetic levels of d.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import itertools
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from faig_gui.core.dataset import AnalysisImage
from faig_gui.core.degradations import (Degradation, add_noise, bicubic_resize, degrade, downsample,
                                        gaussian_blur, mod_crop, paper_degradations, quantize,
                                        seeded_generator)
from faig_gui.core.errors import FaigError
from faig_gui.core.filters import FilterIndex, top_indices
from faig_gui.core.masking import FilterMask, masked_state_dict
from faig_gui.core.metrics import gradient_map
from faig_gui.core.registry import LoadedModel, check_pair
from faig_gui.core.results import atomic_write_bytes

#: evidence kinds, in the order of the docstring
EVIDENCE = ("M", "N", "E", "R", "Q", "P", "X", "Y", "S", "T")
#: the self-referenced kinds: measured for the last decision, once every other degradation was decided
SELF_REFERENCED = ("S", "T")
#: seed of the noise drawn into a reference (a prediction is a function of the image)
REFERENCE_SEED = 20211206
CLEAN = "clean"
#: the change response is measured at every PROBE_STEP-th output row and column of a layer
PROBE_STEP = 4


@dataclass(frozen=True)
class PredictorConfig:
    proportion: float = 1.0                 # percent of filters per degradation (top k %)
    # Q and P cost two more passes per degradation and added little on the measured pairs
    evidence: tuple[str, ...] = ("M", "N", "E", "R", "X", "Y", "S", "T")
    tile: int = 64                          # LR tile side for images above max_pixels
    max_pixels: int = 64 * 64               # LR pixels analysed per image (more: tiles)
    levels: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)   # strength factors calibrated
    seeds: int = 2                          # noise draws per calibration image and class
    min_spread: float = 0.5                 # floor of an evidence's spread (log units) in calibration
    # the same floor for S and T: the content cancels in them, so new images vary about as
    # little as the calibration images do
    min_spread_reference: float = 0.05
    reference_draws: int = 1                # noise draws per reference (S, T)
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


# --------------------------------------------------------------------------------------------
# evidence
# --------------------------------------------------------------------------------------------
class _LayerProbe:
    """Change response of the selected filters of one Conv2d, computed inside its forward.

    The response is the mean square of conv(x_i, k) over every fourth output row and column
    (:data:`PROBE_STEP`: a sixteenth of the positions; on the demo pair's tiles E and R moved by
    at most 4 % from the mean over all positions, far inside their calibrated spreads). It is
    kᵀ G_i k, where G_i is the Gram matrix of the input channel i's patches at those positions
    (the unfolded, padded input): one Gram per channel used, shared by all its
    filters and both kernels (Δ and baseline), instead of one convolution per filter and
    kernel. The Gram and the quadratic forms are computed in float64 (a Δ kernel's response on
    smooth features is a small difference)."""

    def __init__(self, module: nn.Conv2d, kernels: torch.Tensor, in_idx: torch.Tensor, member: torch.Tensor):
        self.module = module
        self.kernels = kernels        # (2 nF, 1, kh, kw): Δ and baseline kernel of each selected filter
        self.in_idx = in_idx          # (nF,) input channel of each filter
        self.member = member          # (nF, D) float: filter belongs to degradation d
        # the input channels used once each, and where each filter's channel sits among them
        self.channels, self.position = torch.unique(in_idx, return_inverse=True)
        # (2, nF, kh kw): Δ and baseline kernels, flattened as the patches are
        self.flat = kernels.view(-1, 2, kernels.shape[-2] * kernels.shape[-1]).transpose(0, 1).double()
        self.member64 = member.double()
        self.value: torch.Tensor | None = None  # (2, B, D) after a forward: Δ and baseline responses

    def __call__(self, _module, inputs):
        x = inputs[0]
        m = self.module
        if m.padding_mode != "zeros":
            x = F.pad(x, m._reversed_padding_repeated_twice, mode=m.padding_mode)
            padding = 0
        else:
            padding = m.padding
        feats = x.index_select(1, self.channels)
        if isinstance(padding, str):   # 'same' / 'valid': one grouped conv, the filters' responses themselves
            r = F.conv2d(x.index_select(1, self.in_idx), self.kernels, None, m.stride, padding, m.dilation,
                         groups=len(self.in_idx))
            r = r[..., ::PROBE_STEP, ::PROBE_STEP]
            ms = r.double().pow(2).mean(dim=(2, 3)).view(r.shape[0], -1, 2)    # (B, nF, 2)
            self.value = torch.stack([ms[..., 0] @ self.member64, ms[..., 1] @ self.member64]).float()
            return
        b, c = feats.shape[:2]
        kh, kw = m.kernel_size
        stride = tuple(PROBE_STEP * v for v in m.stride)
        cols = F.unfold(feats.double(), (kh, kw), m.dilation, padding, stride)   # (B, C kh kw, L)
        cols = cols.view(b, c, kh * kw, -1)
        gram = cols @ cols.transpose(-1, -2) / cols.shape[-1]                   # (B, C, K, K)
        g = gram[:, self.position]                                              # (B, nF, K, K)
        ms = torch.einsum("sfk,bfkl,sfl->sbf", self.flat, g, self.flat)        # (2, B, nF)
        self.value = (ms @ self.member64).float()                               # (2, B, D)


class EvidenceModel:
    """The target with hooks on the layers that hold the degradations' top filters."""

    def __init__(self, baseline: LoadedModel, target: LoadedModel, scores: Mapping[str, np.ndarray],
                 proportion: float, device: torch.device | str = "cpu"):
        check_pair(baseline, target)
        self.target, self.baseline = target, baseline
        self.device = torch.device(device)
        self.index = FilterIndex.from_state_dict(target.state_dict)
        self.names = list(scores)
        if not self.names:
            raise FaigError("no scores: run the analysis (or load scores) before predicting")
        for d, s in scores.items():
            if len(s) != self.index.total:
                raise FaigError(f"scores '{d}' have {len(s)} filters, the model has {self.index.total}")
        self.top = {d: top_indices(scores[d], proportion / 100.0) for d in self.names}
        if any(len(t) == 0 for t in self.top.values()):
            raise FaigError(f"{proportion} % of {self.index.total} filters is no filter at all: raise the proportion")
        # a private copy: the hooks must not fire in other threads' forward passes of the target
        self.module = copy.deepcopy(target.module).to(self.device).eval()
        self.masked = {d: {k: v.to(self.device) for k, v in masked_state_dict(
            target.state_dict, baseline.state_dict, FilterMask(self.top[d]), self.index).items()}
            for d in self.names}
        # the d-masked targets as modules of their own: the masked kernels are loaded once, not
        # swapped in at every pass (functional_call); where a state dict does not load as is, the
        # pass falls back to functional_call with self.masked[d]
        self.masked_modules: dict[str, nn.Module] = {}
        for d in self.names:
            mod = copy.deepcopy(self.module)
            own = mod.state_dict()
            if set(self.masked[d]) == set(own) and all(v.shape == own[k].shape for k, v in self.masked[d].items()):
                mod.load_state_dict(self.masked[d])
                self.masked_modules[d] = mod.eval()
        self.probes: list[_LayerProbe] = []
        self.skipped: list[str] = []
        self._build_probes()

    def _build_probes(self) -> None:
        union = np.unique(np.concatenate(list(self.top.values())))
        layer_pos = self.index.layer_of(union)
        for pos in np.unique(layer_pos):
            layer = self.index.layers[pos]
            try:
                conv = self.module.get_submodule(layer.module_name)
            except AttributeError:
                conv = None
            if not isinstance(conv, nn.Conv2d) or conv.groups != 1 or conv.weight.shape[1] != layer.in_channels:
                self.skipped.append(layer.name)
                continue
            ids = union[layer_pos == pos]
            local = ids - layer.offset
            o = torch.as_tensor(local // layer.in_channels)
            i = torch.as_tensor(local % layer.in_channels)
            w_t = self.target.state_dict[layer.name].float()
            w_b = self.baseline.state_dict[layer.name].float()
            kernels = torch.stack([w_t[o, i] - w_b[o, i], w_b[o, i]], dim=1).reshape(-1, 1, *w_t.shape[2:])
            tops = [set(self.top[d].tolist()) for d in self.names]
            member = torch.tensor([[float(int(k) in t) for t in tops] for k in ids])
            self.probes.append(_LayerProbe(conv, kernels.to(self.device), i.to(self.device), member.to(self.device)))
        if not self.probes:
            raise FaigError("the top filters sit in no plain Conv2d layer: the change response cannot be measured")

    def forward(self, x: torch.Tensor, params: Mapping[str, torch.Tensor] | None = None,
                probe: bool = False, masked: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Output (B,3,sH,sW) and, with ``probe``, the responses (2, B, D): Δ kernels, baseline kernels.
        ``masked``: the target with degradation ``masked``'s top filters masked (not with ``params``)."""
        if masked is not None:
            if masked in self.masked_modules and not probe:
                with torch.inference_mode():
                    x = x.to(self.device)
                    if x.device.type == "cpu":
                        x = x.contiguous(memory_format=torch.channels_last)
                    return self.masked_modules[masked](x).float(), None
            params = self.masked[masked]
        handles = [p.module.register_forward_pre_hook(p) for p in self.probes] if probe else []
        try:
            with torch.inference_mode():
                x = x.to(self.device)
                if x.device.type == "cpu":
                    x = x.contiguous(memory_format=torch.channels_last)   # oneDNN's faster layout
                y = self.module(x) if params is None else functional_call(self.module, dict(params), (x,))
                y = y.float()
                e = sum(p.value for p in self.probes) if probe else None   # (2, B, D)
        finally:
            for h in handles:
                h.remove()
            for p in self.probes:
                p.value = None
        return y, e

    def evidence(self, x: torch.Tensor, kinds: Sequence[str] = EVIDENCE) -> dict[str, np.ndarray]:
        """Evidence arrays of shape (B, D) for a batch of LR tiles (B,3,h,w) in [0, 1]; the
        self-referenced kinds (S, T) are NaN here: :meth:`self_reference` measures them."""
        return self.measure(x, kinds)[0]

    def measure(self, x: torch.Tensor, kinds: Sequence[str] = EVIDENCE) -> tuple[dict[str, np.ndarray], "_Pass"]:
        """:meth:`evidence`, and what :meth:`self_reference` needs of this pass."""
        y, e = self.forward(x, probe=True)
        out: dict[str, np.ndarray] = {}
        if "E" in kinds:
            out["E"] = e[0].cpu().double().numpy()
        if "R" in kinds:
            out["R"] = (e[0] / e[1].clamp_min(1e-12)).cpu().double().numpy()
        if "Y" in kinds:
            e0 = e[0].cpu().double().numpy()
            out["Y"] = e0 / np.maximum(e0.sum(1, keepdims=True), 1e-12)
        for k in SELF_REFERENCED:
            if k in kinds:
                out[k] = np.full((x.shape[0], len(self.names)), np.nan)
        if not set(kinds) & {"M", "N", "Q", "P", "X", *SELF_REFERENCED}:
            return out, _Pass(y, None, None)
        h, w = x.shape[-2:]
        g_target = gradient_map(y.double())   # double: the effect is a small difference of maps
        energy = _mean(g_target * g_target)
        cols = {k: np.zeros((x.shape[0], len(self.names))) for k in ("M", "N", "Q", "P") if k in kinds}
        m_all = np.zeros((x.shape[0], len(self.names)))
        for n, d in enumerate(self.names):
            y_d, _ = self.forward(x, masked=d)
            diff = gradient_map(y_d.double()) - g_target
            m = _mean(diff * diff)
            m_all[:, n] = m
            if "M" in cols:
                cols["M"][:, n] = m
            if "N" in cols:
                cols["N"][:, n] = m / np.maximum(energy, 1e-12)
            if "Q" in kinds or "P" in kinds:
                back = bicubic_resize(y_d.clamp(0, 1), h, w)
                _, e_back = self.forward(back, probe=True)
                if "Q" in cols:
                    cols["Q"][:, n] = e_back[0, :, n].cpu().double().numpy()
                if "P" in cols:
                    cols["P"][:, n] = (e_back[0, :, n] / e_back[1, :, n].clamp_min(1e-12)).cpu().double().numpy()
        out.update(cols)
        if "X" in kinds:
            out["X"] = m_all / np.maximum(m_all.sum(1, keepdims=True), 1e-12)
        return out, _Pass(y, energy, m_all, self.residual_sigma(x, y))

    def residual_sigma(self, x: torch.Tensor, y: torch.Tensor | None = None) -> np.ndarray:
        """(B,) robust σ (1.4826 x the median absolute deviation) of each tile of ``x`` minus
        the target's output ``y`` for it (computed when not given) brought back to x's size:
        what the restoration removed, mostly the noise, when there is any."""
        if y is None:
            y, _ = self.forward(x)
        h, w = x.shape[-2:]
        back = bicubic_resize(y.clamp(0, 1), h, w)
        r = (x.to(back.device).float() - back).flatten(1).double()
        mad = (r - r.quantile(0.5, dim=1, keepdim=True)).abs().quantile(0.5, dim=1)
        return (1.4826 * mad).cpu().numpy()

    def self_reference(self, p: "_Pass", n: int, others: Sequence[tuple[Degradation, float]],
                       d_definition: Degradation, draws: int = 1, count: int | None = None,
                       noise_scale: float = 1.0) -> dict[str, np.ndarray]:
        """S and T (each (B,)) of degradation d = ``self.names[n]`` for the first ``count`` tiles
        of pass ``p`` (all by default).

        Two references hold each tile's content: the target's output for it (its restoration)
        degraded by ``others`` (the degradations found, (definition, strength factor) pairs,
        not d; possibly none), and by the same and d at its analysed level (``d_definition``). Their
        noise, if they have any, has the tile's own level, ``noise_scale`` times the robust σ of
        what the restoration removed (:attr:`_Pass.residual_sigma`), which reads the level
        closer than a calibration curve. S is where the input lies between the references on
        log N_d (0: like the reference without d, 1: like the one with d), T the same on the
        log gradient energy of the target's output. ``draws`` seeded noise draws per
        reference, averaged in log space (one when neither reference holds noise: they would
        all be the same)."""
        if p.energy is None:
            raise ValueError("self_reference needs a pass measured with the masking effect")
        b = p.y.shape[0] if count is None else max(1, min(count, p.y.shape[0]))
        y = p.y[:b].clamp(0, 1)
        base = combine(list(others))
        # references without noise are the same at every draw: one is enough
        k = max(1, draws) if (base.noise_sigma or d_definition.noise_sigma) else 1
        refs = []
        for with_d in (False, True):
            degs, lows = [], []
            for t in range(b):
                deg = base
                if deg.noise_sigma:
                    deg = replace(deg, noise_sigma=float(noise_scale * p.residual_sigma[t]))
                if with_d:
                    deg = combine([(deg, 1.0), (d_definition, 1.0)])
                # degrade()'s steps, the blur and the down-sampling once for all the draws
                low = y[t:t + 1]
                if deg.blur_sigma:
                    low = gaussian_blur(low, deg.blur_sigma)
                degs.append(deg)
                lows.append(downsample(low, self.target.scale))
            for j in range(k):
                for t in range(b):
                    low = lows[t]
                    if degs[t].noise_sigma:
                        low = add_noise(low, degs[t].noise_sigma, seeded_generator(REFERENCE_SEED + 1009 * j + t))
                    refs.append(quantize(low))
        ref = torch.cat(refs)                      # (2 k b, 3, h, w): without x k, with x k
        y_r, _ = self.forward(ref)
        g_r = gradient_map(y_r.double())
        energy_r = _mean(g_r * g_r)
        y_rd, _ = self.forward(ref, masked=self.names[n])
        diff = gradient_map(y_rd.double()) - g_r
        m_r = _mean(diff * diff)
        log_n = np.log(np.maximum(m_r, 1e-12) / np.maximum(energy_r, 1e-12)).reshape(2, k, b).mean(1)
        log_e = np.log(np.maximum(energy_r, 1e-12)).reshape(2, k, b).mean(1)
        n_x = np.log(np.maximum(p.m[:b, n], 1e-12) / np.maximum(p.energy[:b], 1e-12))
        e_x = np.log(np.maximum(p.energy[:b], 1e-12))

        def between(x, lo, hi):
            span = hi - lo
            ok = np.abs(span) > 1e-3
            return np.where(ok, (x - lo) / np.where(ok, span, 1.0), np.nan)

        return {"S": between(n_x, log_n[0], log_n[1]), "T": between(e_x, log_e[0], log_e[1])}


def _mean(m: torch.Tensor) -> np.ndarray:
    """(B,) means of a (B,1,H,W) map, x 1000."""
    return m.mean(dim=(1, 2, 3)).cpu().numpy() * 1000.0


@dataclass
class _Pass:
    """What an evidence pass keeps for the self-referenced kinds."""

    y: torch.Tensor                 # the target's output for the LR tiles
    energy: np.ndarray | None       # (B,) gradient energy of y (x 1000)
    m: np.ndarray | None            # (B, D) masking effects
    #: (B,) robust σ (1.4826 x median absolute deviation) of x minus the restoration y brought
    #: back to x's size: what the target removed, mostly the noise, if there is any
    residual_sigma: np.ndarray | None = None


def tiles(lr: torch.Tensor, tile: int, max_pixels: int) -> tuple[torch.Tensor, str]:
    """The LR image (1,3,H,W) as a batch of tiles to analyse, and a note when it was tiled.

    Small images are analysed whole. Larger ones: the most textured non-overlapping tile×tile
    tiles, as many as fit in max_pixels (degradations are global, so a part tells the whole;
    flat tiles carry little evidence of blur)."""
    h, w = lr.shape[-2:]
    if h * w <= max_pixels:
        return lr, ""
    t = min(tile, h, w)
    ys = list(range(0, h - t + 1, t))
    xs = list(range(0, w - t + 1, t))
    g = gradient_map(lr)[0, 0]
    cands = [(float(g[y:y + t, x:x + t].mean()), y, x) for y in ys for x in xs]
    count = max(1, min(len(cands), max_pixels // (t * t)))
    chosen = sorted(cands, key=lambda c: (-c[0], c[1], c[2]))[:count]
    batch = torch.cat([lr[..., y:y + t, x:x + t] for _, y, x in chosen])
    return batch, f"analysed {count} tile{'s' if count > 1 else ''} of {t}x{t} of the {w}x{h} input"


# --------------------------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------------------------
def combine(parts: Sequence[tuple[Degradation, float]], name: str | None = None) -> Degradation:
    """One degradation applying several at strength factors (blur σ and noise σ add in quadrature)."""
    blur = math.sqrt(sum((d.blur_sigma * f) ** 2 for d, f in parts if d.blur_sigma)) or None
    noise = math.sqrt(sum((d.noise_sigma * f) ** 2 for d, f in parts if d.noise_sigma)) or None
    return Degradation(name or "+".join(d.name for d, _ in parts) or CLEAN, blur, noise)


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


def _definitions(names: Sequence[str], given: Iterable[Degradation] | None) -> dict[str, Degradation]:
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


# --------------------------------------------------------------------------------------------
# the predictor
# --------------------------------------------------------------------------------------------
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
        self.definitions = _definitions(self.names, degradations)
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

    @classmethod
    def from_analysis_images(cls, baseline: LoadedModel, target: LoadedModel, scores: Mapping[str, np.ndarray],
                             images: Sequence[AnalysisImage], degradations: Iterable[Degradation] | None = None,
                             config: PredictorConfig = PredictorConfig()) -> "Predictor":
        return cls(baseline, target, scores, [img.hr for img in images], degradations, config)

    @property
    def cache_text(self) -> str:
        """The key as text that is the same in every process: the disk cache's identity."""
        if self._cache_text is None:
            self._cache_text = _cache_text(self.key, type(self.model.target.module).__module__)
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
        return self.calibration

    def evidence(self, lr: torch.Tensor | np.ndarray) -> tuple[dict[str, np.ndarray], str]:
        """The image's evidence (kind -> (D,), the tiles' mean; S and T are NaN: they depend
        on the verdict so far, see :meth:`predict`) and the tiling note."""
        ev, _, note = self._measure(lr)
        return ev, note

    def _measure(self, lr: torch.Tensor | np.ndarray):
        x = _as_batch(lr)
        batch, note = tiles(x, self.config.tile, self.config.max_pixels)
        ev, measured = self.model.measure(batch, self.config.evidence)
        return {k: v.mean(0) for k, v in ev.items()}, measured, note

    def predict(self, lr: torch.Tensor | np.ndarray) -> Prediction:
        """The verdict on one LR image (HWC float array in [0, 1] or 1x3xHxW tensor)."""
        calibration = self.calibrate()
        start = time.perf_counter()
        ev, measured, note = self._measure(lr)

        def reference(d: str, found: Mapping[str, float]) -> dict[str, float]:
            others = [(self.definitions[o], f) for o, f in found.items()]
            values = self.model.self_reference(measured, self.names.index(d), others, self.definitions[d],
                                               self.config.reference_draws, self.config.reference_tiles,
                                               calibration.noise_scale)
            values = {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
                      for k, v in values.items() if k in ev}
            for k, v in values.items():
                ev[k][self.names.index(d)] = v    # for the evidence table
            return values

        labels, scores, strength = calibration.decide(ev, reference)
        table = {k: {d: float(v[n]) for n, d in enumerate(self.names) if math.isfinite(float(v[n]))}
                 for k, v in ev.items()}
        table = {k: v for k, v in table.items() if v}
        return Prediction(labels, scores, strength, table, note, time.perf_counter() - start)


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


# --------------------------------------------------------------------------------------------
# the calibration on disk
# --------------------------------------------------------------------------------------------
#: version of the stored calibration files; a file of another version is ignored
CACHE_FORMAT = 3
#: calibration files kept in the cache folder (the least recently used go first)
CACHE_KEEP = 32
# the modules whose code makes the evidence: an edit to any of them retires stored calibrations
_EVIDENCE_MODULES = ("faig_gui.core.prediction", "faig_gui.core.degradations", "faig_gui.core.metrics",
                     "faig_gui.core.masking", "faig_gui.core.filters")


def calibration_cache_dir() -> Path:
    """``$FAIG_GUI_CACHE_DIR``, else ``$XDG_CACHE_HOME/faig-gui``, else ``~/.cache/faig-gui``;
    calibrations live in its ``calibration`` folder."""
    given = os.environ.get("FAIG_GUI_CACHE_DIR")
    if given:
        root = Path(given).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache") / "faig-gui"
    return root / "calibration"


def _stable_text(value) -> str:
    """A text form of a cache key that does not depend on the process (no ids, no hash seeds).
    Numbers are written as floats so that 1 and 1.0 (or numpy's 1.0) give the same text."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return repr(float(value))
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(_stable_text(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_stable_text(k)}:{_stable_text(v)}"
                              for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) + "}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return type(value).__name__ + "(" + ",".join(
            f"{f.name}={_stable_text(getattr(value, f.name))}" for f in dataclasses.fields(value)) + ")"
    raise TypeError(f"no stable text form for {type(value).__name__}")


def _source_digest(module_names: Sequence[str]) -> str:
    """Digest of the modules' source files (their names when a file cannot be read)."""
    h = hashlib.sha256()
    for name in module_names:
        h.update(name.encode())
        path = getattr(sys.modules.get(name), "__file__", None)
        try:
            h.update(Path(path).read_bytes() if path else b"")
        except OSError:
            pass
    return h.hexdigest()[:16]


def _cache_text(key: tuple, architecture_module: str) -> str:
    # the key without its device field ('-' in every key), plus the code that makes the evidence
    return (f"faig-gui calibration v{CACHE_FORMAT} key={_stable_text(key)} "
            f"code={_source_digest((*_EVIDENCE_MODULES, architecture_module))}")


def write_calibration(path: Path, key_text: str, cal: Calibration) -> str:
    """Stores a calibration as plain arrays and JSON (no pickle), atomically; then trims the
    folder to the CACHE_KEEP most recently used files. Returns '' or why it could not store."""
    meta = {"format": CACHE_FORMAT, "key": key_text, "names": list(cal.names), "kinds": list(cal.kinds),
            "definitions": [[d.name, d.blur_sigma, d.noise_sigma] for d in cal.definitions.values()],
            "present": [{d: float(f) for d, f in s.present.items()} for s in cal.samples],
            "seconds": float(cal.seconds), "min_spread": float(cal.min_spread),
            "min_spread_reference": float(cal.min_spread_reference), "noise_scale": float(cal.noise_scale)}
    shape = (len(cal.samples), len(cal.kinds), len(cal.names))
    evidence = np.array([[np.asarray(s.evidence[k], dtype=np.float64) for k in cal.kinds] for s in cal.samples],
                        dtype=np.float64).reshape(shape)
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)), evidence=evidence)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:
        return f"{path.parent}: cannot write: {exc.strerror or exc}"
    except FaigError as exc:
        return str(exc)
    _trim(path.parent, CACHE_KEEP)
    return ""


def read_calibration(path: Path, key_text: str) -> Calibration | None:
    """The calibration stored for ``key_text``, or None when the file is missing, unreadable,
    truncated, of another format version or for another key."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"][()]))
            evidence = np.asarray(z["evidence"], dtype=np.float64)
        cal = _calibration_from_plain(meta, evidence, key_text)
    except Exception:  # noqa: BLE001 - a cache file is never trusted: whatever is wrong with it, recompute
        return None
    if cal is not None:
        try:
            os.utime(path)   # recently used: kept when the folder is trimmed
        except OSError:
            pass
    return cal


def _calibration_from_plain(meta: dict, evidence: np.ndarray, key_text: str) -> Calibration | None:
    if meta.get("format") != CACHE_FORMAT or meta.get("key") != key_text:
        return None
    names, kinds = [str(n) for n in meta["names"]], tuple(str(k) for k in meta["kinds"])
    present = meta["present"]
    if evidence.shape != (len(present), len(kinds), len(names)):
        return None
    samples = []
    for p, ev in zip(present, evidence):
        if not set(p) <= set(names):
            return None
        samples.append(Sample({str(d): float(f) for d, f in p.items()},
                              {k: ev[j].copy() for j, k in enumerate(kinds)}))
    definitions = {str(n): Degradation(str(n), None if b is None else float(b), None if s is None else float(s))
                   for n, b, s in meta["definitions"]}
    return Calibration(names, kinds, samples, definitions, float(meta["seconds"]), float(meta["min_spread"]),
                       float(meta["min_spread_reference"]), float(meta["noise_scale"]))


def _trim(folder: Path, keep: int) -> None:
    """Deletes all but the ``keep`` most recently used calibration files (and stale partial writes)."""
    try:
        entries = [(p.stat().st_mtime, p) for p in folder.iterdir() if p.suffix in (".npz", ".part")]
    except OSError:
        return
    now = time.time()
    done = sorted((e for e in entries if e[1].suffix == ".npz"), key=lambda e: e[0], reverse=True)
    stale = [p for _, p in done[keep:]] + [p for t, p in entries if p.suffix == ".part" and now - t > 3600]
    for p in stale:
        try:
            p.unlink()
        except OSError:   # another process got there first, or the folder is read-only: no harm
            pass
