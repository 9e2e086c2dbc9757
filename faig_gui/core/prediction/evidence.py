"""Evidence of a degradation d, measured with d's top-k % filters (the session's scores).

F_d are d's top filters, Δ = target − baseline kernel. The kinds, as named in :data:`EVIDENCE`
(how each came to be and what it added: docs/prediction.md, "How the evidence came to be"):

``masking_effect``            gradient-map effect (metrics.gradient_effect) between the target's
                              output and the output with F_d replaced by the baseline's kernels.
``relative_masking_effect``   the masking effect over the mean square of the target output's
                              gradient map (less bound to the content).
``change_response``           Σ_{(o,i)∈F_d} mean (conv(feature_i, Δ_oi))² over the filters' input
                              feature maps, from one forward pass of the target with hooks.
``relative_change_response``  the change response over the same sum with the baseline kernels.
``residual_response``         the change response measured again on the d-masked model's output,
                              bicubically downscaled back to the input size: is d still there once
                              the network removed every other degradation?  ``relative_residual_response``
                              is to it what the relative change response is to the change response.
``masking_effect_share``      d's share of the masking effect among the degradations;
``change_response_share``     d's share of the change response. Shares cancel much of the content.
``self_referenced_effect``    where the input lies, on log relative masking effect, between two
                              references made from the target's own restoration of it: degraded by
                              the degradations found so far (0), and by those plus d (1). The content
                              cancels. ``self_referenced_energy``: the same on the log gradient
                              energy of the target's outputs. ``self_referenced_slope``: the same on
                              the detail slope (:func:`classical_estimates`) of the input and the
                              references, which a blur lowers through noise. Measured for the last
                              decision only.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from faig_gui.core.degradations import (Degradation, add_noise, bicubic_resize, downsample, gaussian_blur,
                                        jpeg, quantize, seeded_generator)
from faig_gui.core.errors import FaigError
from faig_gui.core.filters import FilterIndex, top_indices
from faig_gui.core.masking import FilterMask, masked_state_dict
from faig_gui.core.metrics import gradient_map
from faig_gui.core.registry import LoadedModel, check_pair

#: evidence kinds, in the order of the module docstring
EVIDENCE = ("masking_effect", "relative_masking_effect", "change_response", "relative_change_response",
            "residual_response", "relative_residual_response", "masking_effect_share", "change_response_share",
            "self_referenced_effect", "self_referenced_energy", "self_referenced_slope", "noise_estimate",
            "blur_estimate", "detail_slope", "spectral_blur")
#: the classical no-reference estimates (:func:`classical_estimates`): of the whole image, the
#: same for every degradation, no network pass
CLASSICAL = ("noise_estimate", "blur_estimate", "detail_slope", "spectral_blur")
#: kinds that vote only where no other degradation was found so far: the spectral blur models the
#: image as content x a Gaussian blur + white noise; under noise its fit rests on the few rings
#: that stand above the noise and on the assumed fall-off, and in the decision under noise it
#: called noise-only inputs blur+noise more often (docs/prediction.md). Its strength curve stays.
ALONE_ONLY = ("spectral_blur",)
#: :func:`classical_estimates`' guard (not an evidence kind): how far the image's detail
#: stands above its noise, which says whether a blur can be read at all
DETAIL_VISIBLE = "detail_above_noise"
#: the self-referenced kinds: measured for the last decision, once every other degradation was decided
SELF_REFERENCED = ("self_referenced_effect", "self_referenced_energy", "self_referenced_slope")
#: seed of the noise drawn into a reference (a prediction is a function of the image)
REFERENCE_SEED = 20211206
CLEAN = "clean"
#: the change response is measured at every PROBE_STEP-th output row and column of a layer
PROBE_STEP = 4


class _LayerProbe:
    """Change response of the selected filters of one Conv2d, computed inside its forward.

    The response is the mean square of conv(x_i, k) over every fourth output row and column
    (:data:`PROBE_STEP`: a sixteenth of the positions, which moves the response far less than
    its calibrated spread; docs/prediction.md). It is kᵀ G_i k, where G_i is the Gram matrix of
    the input channel i's patches at those positions (the unfolded, padded input): one Gram per
    channel used, shared by all its filters and both kernels (Δ and baseline), instead of one
    convolution per filter and kernel. The Gram and the quadratic forms are computed in float64 (a Δ kernel's response on
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
        padding: int | str | tuple[int, ...]
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
                e = _summed_responses(self.probes) if probe else None   # (2, B, D)
        finally:
            for h in handles:
                h.remove()
            for p in self.probes:
                p.value = None
        return y, e

    def evidence(self, x: torch.Tensor, kinds: Sequence[str] = EVIDENCE) -> dict[str, np.ndarray]:
        """Evidence arrays of shape (B, D) for a batch of LR tiles (B,3,h,w) in [0, 1]; the
        self-referenced kinds are NaN here: :meth:`self_reference` measures them."""
        return self.measure(x, kinds)[0]

    def measure(self, x: torch.Tensor, kinds: Sequence[str] = EVIDENCE) -> tuple[dict[str, np.ndarray], _Pass]:
        """:meth:`evidence`, and what :meth:`self_reference` needs of this pass."""
        y, e = self.forward(x, probe=True)
        assert e is not None   # probe=True
        out: dict[str, np.ndarray] = {}
        if "change_response" in kinds:
            out["change_response"] = e[0].cpu().double().numpy()
        if "relative_change_response" in kinds:
            out["relative_change_response"] = (e[0] / e[1].clamp_min(1e-12)).cpu().double().numpy()
        if "change_response_share" in kinds:
            e0 = e[0].cpu().double().numpy()
            out["change_response_share"] = e0 / np.maximum(e0.sum(1, keepdims=True), 1e-12)
        for k in SELF_REFERENCED:
            if k in kinds:
                out[k] = np.full((x.shape[0], len(self.names)), np.nan)
        if not set(kinds) & {"masking_effect", "relative_masking_effect", "residual_response", "relative_residual_response",
                             "masking_effect_share", *SELF_REFERENCED}:
            return out, _Pass(y, None, None)
        h, w = x.shape[-2:]
        g_target = gradient_map(y.double())   # double: the effect is a small difference of maps
        energy = _mean(g_target * g_target)
        cols = {k: np.zeros((x.shape[0], len(self.names)))
                for k in ("masking_effect", "relative_masking_effect", "residual_response", "relative_residual_response")
                if k in kinds}
        m_all = np.zeros((x.shape[0], len(self.names)))
        for n, d in enumerate(self.names):
            y_d, _ = self.forward(x, masked=d)
            diff = gradient_map(y_d.double()) - g_target
            m = _mean(diff * diff)
            m_all[:, n] = m
            if "masking_effect" in cols:
                cols["masking_effect"][:, n] = m
            if "relative_masking_effect" in cols:
                cols["relative_masking_effect"][:, n] = m / np.maximum(energy, 1e-12)
            if "residual_response" in kinds or "relative_residual_response" in kinds:
                back = bicubic_resize(y_d.clamp(0, 1), h, w)
                _, e_back = self.forward(back, probe=True)
                assert e_back is not None   # probe=True
                if "residual_response" in cols:
                    cols["residual_response"][:, n] = e_back[0, :, n].cpu().double().numpy()
                if "relative_residual_response" in cols:
                    cols["relative_residual_response"][:, n] = \
                        (e_back[0, :, n] / e_back[1, :, n].clamp_min(1e-12)).cpu().double().numpy()
        out.update(cols)
        if "masking_effect_share" in kinds:
            out["masking_effect_share"] = m_all / np.maximum(m_all.sum(1, keepdims=True), 1e-12)
        return out, _Pass(y, energy, m_all, self.residual_sigma(x, y), x)

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

    def self_reference(self, p: _Pass, n: int, others: Sequence[tuple[Degradation, float]],
                       d_definition: Degradation, draws: int = 1, count: int | None = None,
                       noise_scale: float = 1.0) -> dict[str, np.ndarray]:
        """The self-referenced kinds (each (B,)) of degradation d = ``self.names[n]`` for the
        first ``count`` tiles of pass ``p`` (all by default).

        Two references hold each tile's content: the target's output for it (its restoration)
        degraded by ``others`` (the degradations found, (definition, strength factor) pairs,
        not d; possibly none), and by the same and d at its analysed level (``d_definition``). Their
        noise, if they have any, has the tile's own level, ``noise_scale`` times the robust σ of
        what the restoration removed (:attr:`_Pass.residual_sigma`), which reads the level
        closer than a calibration curve. The effect is where the input lies between the references
        on log relative masking effect (0: like the reference without d, 1: like the one with d), the
        energy the same on the log gradient energy of the target's output. ``draws`` seeded noise draws per
        reference, averaged in log space (one when neither reference holds noise: they would
        all be the same)."""
        if p.energy is None or p.m is None or p.residual_sigma is None:   # (measured together)
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
                    sigma, quality = degs[t].noise_sigma, degs[t].jpeg_quality
                    if sigma:
                        low = add_noise(low, sigma, seeded_generator(REFERENCE_SEED + 1009 * j + t))
                    if quality:
                        low = jpeg(low, quality)
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

        out = {"self_referenced_effect": between(n_x, log_n[0], log_n[1]),
               "self_referenced_energy": between(e_x, log_e[0], log_e[1])}
        if p.x is not None:   # the detail slope of the input tiles and the references (no network)
            s_r = detail_slopes(ref).reshape(2, k, b).mean(1)
            s_x = detail_slopes(p.x[:b])
            out["self_referenced_slope"] = between(s_x, s_r[0], s_r[1])
        return out


def _mean(m: torch.Tensor) -> np.ndarray:
    """(B,) means of a (B,1,H,W) map, x 1000."""
    return m.mean(dim=(1, 2, 3)).cpu().numpy() * 1000.0


def _summed_responses(probes: Sequence[_LayerProbe]) -> torch.Tensor:
    """The probes' responses (2, B, D) summed over layers, after a forward that ran them all."""
    total: torch.Tensor | int = 0
    for p in probes:
        if p.value is None:
            raise RuntimeError("a probed layer did not run in the forward")
        total = total + p.value
    assert isinstance(total, torch.Tensor)   # there is at least one probe (checked in __init__)
    return total


@dataclass
class _Pass:
    """What an evidence pass keeps for the self-referenced kinds."""

    y: torch.Tensor                 # the target's output for the LR tiles
    energy: np.ndarray | None       # (B,) gradient energy of y (x 1000)
    m: np.ndarray | None            # (B, D) masking effects
    #: (B,) robust σ (1.4826 x median absolute deviation) of x minus the restoration y brought
    #: back to x's size: what the target removed, mostly the noise, if there is any
    residual_sigma: np.ndarray | None = None
    x: torch.Tensor | None = None   # the LR tiles themselves


#: texture (mean gradient magnitude) below which a tile counts as empty: a clipped sky or a
#: saturated patch holds no evidence of blur or noise (clipping removes the noise)
EMPTY_TEXTURE = 2e-3   # gradient_map floors at sqrt(1e-6) = 1e-3: a flat tile reads 1e-3


def tile_grid(lr: torch.Tensor, tile: int) -> tuple[int, list[tuple[float, int, int]]]:
    """The tile side and the non-overlapping candidate tiles (texture, y, x) of an LR image (1,3,H,W);
    texture is the tile's mean gradient magnitude."""
    h, w = lr.shape[-2:]
    t = min(tile, h, w)
    g = gradient_map(lr)[0, 0]
    # the grid is centred: the margins left over are split between both sides
    y0, x0 = (h % t) // 2, (w % t) // 2
    cands = [(float(g[y:y + t, x:x + t].mean()), y, x)
             for y in range(y0, h - t + 1, t) for x in range(x0, w - t + 1, t)]
    return t, cands


def choose_tiles(cands: Sequence[tuple[float, int, int]], count: int) -> list[tuple[float, int, int]]:
    """``count`` tiles chosen for information: spread evenly over the ranks of texture, from the
    most textured (where blur shows) to the flattest non-empty one (where noise shows)."""
    ranked = sorted(cands, key=lambda c: (-c[0], c[1], c[2]))
    full = [c for c in ranked if c[0] > EMPTY_TEXTURE] or ranked[:1]
    count = max(1, min(count, len(full)))
    if count == 1:
        return full[:1]
    picks = sorted({round(k * (len(full) - 1) / (count - 1)) for k in range(count)})
    return [full[k] for k in picks]


def tiles(lr: torch.Tensor, tile: int, max_pixels: int) -> tuple[torch.Tensor, str]:
    """The LR image (1,3,H,W) as a batch of tiles to analyse, most textured first, and a note
    when it was tiled.

    An image that does not hold two tiles is analysed whole. Larger ones: as many tile×tile
    tiles as fit in max_pixels, spread over the image's range of texture (:func:`choose_tiles`):
    textured tiles tell blur, flat ones noise, and a degradation is global, so the parts tell the
    whole. The calibration's crops are tiled the same way, so that an image's evidence is the
    same statistic (a median over tiles of one size) as the calibration's."""
    h, w = lr.shape[-2:]
    if min(h, w) < tile or max(h, w) < 2 * tile:
        return lr, ""
    t, cands = tile_grid(lr, tile)
    chosen = choose_tiles(cands, max(1, max_pixels // (t * t)))
    batch = torch.cat([lr[..., y:y + t, x:x + t] for _, y, x in chosen])
    count = len(chosen)
    return batch, (f"analysed {count} tile{'s' if count > 1 else ''} of {t}x{t} of the {w}x{h} input "
                   f"(of {len(cands)}, from the most textured to the flattest)")


#: share of an image's tiles, the most textured first, that a blur's evidence is taken from:
#: blur shows where there is detail, and flat tiles say nothing about it and dilute it
#: (docs/prediction.md: clean and JPEG inputs read as blur less often)
TEXTURED_SHARE = 0.5


def evidence_tiles(definition: Degradation | None, count: int, share: float = TEXTURED_SHARE) -> int:
    """How many of an image's ``count`` tiles (most textured first, as :func:`tiles` orders them)
    a degradation's evidence is taken from: the more textured ``share`` of them for a blur
    without noise, all of them for the others (noise shows on flat tiles too)."""
    if definition is not None and definition.blur_sigma and not definition.noise_sigma:
        return max(1, min(count, math.ceil(share * count)))
    return count


def tile_median(v: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """(D,) per column n, the median over the first ``counts[n]`` tiles (rows, most textured
    first) of an image's per-tile values (B, D); NaN where none of them has a value. Robust to
    the flat tile whose self-referenced position is a ratio of two tiny differences."""
    out = np.full(v.shape[1:], np.nan)
    for n in range(v.shape[1]):
        col = v[:counts[n], n]
        col = col[np.isfinite(col)]
        if len(col):
            out[n] = float(np.median(col))
    return out


def tile_count(note: str) -> int:
    """How many tiles a :func:`tiles` note says were analysed (1: the whole image)."""
    words = note.split()
    return int(words[1]) if len(words) > 1 and words[0] == "analysed" and words[1].isdigit() else 1


# -- classical no-reference estimates (no network): shown beside the filters' verdict ----------

#: Immerkær's noise mask: it cancels a locally linear image, and white noise of σ gives a
#: response of σ·sqrt(36) = 6σ
_NOISE_MASK = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]], dtype=torch.float64)


#: the grey image's noise σ for unit independent noise σ in each channel: |(0.299, 0.587, 0.114)|
GREY_NOISE = math.sqrt(0.299 ** 2 + 0.587 ** 2 + 0.114 ** 2)


def classical_estimates(lr: torch.Tensor) -> dict[str, float]:
    """Classical no-reference estimates of one LR image (1,3,H,W) in [0, 1], in float64:

    ``noise_estimate``  noise σ per channel: 1.4826 x the median absolute deviation of Immerkær's
                        high-pass residual of the grey image, over 6 (robust to edges, which are
                        few), over :data:`GREY_NOISE` (independent noise per channel);
    ``blur_estimate``   the re-blur measure of Crété-Roffet et al.: the share of the grey image's
                        gradient that survives a 9-tap box blur (1: nothing to lose, fully blurred;
                        near 0: sharp), the larger of the two directions;
    ``detail_slope``    how fast the image's detail falls off with frequency once the noise is
                        taken out: the log of the grey image's mean power in the middle band
                        (0.18-0.32 cycles per pixel) over that in the low band (0.04-0.12), each
                        less the noise power (``noise_estimate``'s, white), from a Hann-windowed
                        periodogram. A blur of σ pixels divides the middle band by about
                        exp(4π²σ²f²) more than the low band; white noise adds the same power to
                        both, so this reads blur under noise where the re-blur measure reads the
                        noise. A band with nothing left above the noise counts as a floor (2 % of
                        the noise power): very negative when only the middle band is lost (as
                        under a strong blur), 0 (no reading) when both are.
    ``spectral_blur``   the Gaussian blur σ, in LR pixels, that the grey image's spectrum shows
                        above its noise (:func:`_spectral_blur_of`): the content's own fall-off
                        and the blur are fitted apart, so it reads the blur's size, through noise
                        too, where the detail slope reads both at once."""
    grey, sigma = _grey_and_noise(lr)
    noise = float(sigma[0])
    shares = []
    for dim in (2, 3):   # vertical, horizontal
        k = torch.full((1, 1, 9, 1) if dim == 2 else (1, 1, 1, 9), 1.0 / 9, dtype=torch.float64)
        pad = (0, 0, 4, 4) if dim == 2 else (4, 4, 0, 0)
        soft = F.conv2d(F.pad(grey, pad, mode="replicate"), k)
        d_g = grey.diff(dim=dim).abs()
        d_b = soft.diff(dim=dim).abs()
        lost = (d_g - d_b).clamp_min(0).sum()
        total = d_g.sum()
        shares.append(float(1.0 - lost / total) if total > 0 else 1.0)
    noise_power = (sigma * GREY_NOISE) ** 2
    power, freq = _periodogram(grey[:, 0])   # one periodogram for the bands and the fit
    bands = _band_powers(power, freq)
    return {"noise_estimate": max(noise, 1e-4), "blur_estimate": min(max(max(shares), 1e-4), 1.0),
            "detail_slope": float(_slope_of(bands, noise_power)[0]),
            "spectral_blur": _spectral_blur_of(power[0], freq, float(noise_power[0])),
            DETAIL_VISIBLE: _visible_of(bands, noise_power)}


def _visible_of(bands: torch.Tensor | None, noise_power: torch.Tensor) -> float:
    """One grey image's power in the low band (:data:`LOW_BAND`; ``bands`` from
    :func:`_band_powers`, (1,2)) above its white noise, over the noise power: the detail a blur
    would take from the middle band stands about a tenth of the low band's (a natural image's
    power falls as 1/f², and the bands' centres are 0.08 and 0.25 cycles per pixel), so below a
    few units the middle band of a sharp image is as much within the noise estimate's error as a
    blurred one's. Very large for an image without noise, 0 for one too small for the bands."""
    if bands is None:
        return 0.0
    n = float(noise_power[0])
    return max(float(bands[0, 0]) - n, 0.0) / max(n, 1e-12)


#: the frequency bands (cycles per pixel) of :func:`_band_powers`
LOW_BAND, MID_BAND = (0.04, 0.12), (0.18, 0.32)


def _periodogram(grey: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The Hann-windowed periodogram of grey images (B,H,W), float64, normalised so that white
    noise of variance s² has expected power s² at every frequency (B,H,W), and each bin's radial
    frequency in cycles per pixel (H,W)."""
    h, w = grey.shape[-2:]
    win = torch.outer(torch.hann_window(h, periodic=False, dtype=torch.float64),
                      torch.hann_window(w, periodic=False, dtype=torch.float64))
    centred = grey - grey.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(centred * win).abs().square() / win.square().sum()
    f = torch.sqrt(torch.fft.fftfreq(h, dtype=torch.float64)[:, None] ** 2
                   + torch.fft.fftfreq(w, dtype=torch.float64)[None] ** 2)
    return power, f


def _band_powers(power: torch.Tensor, f: torch.Tensor) -> torch.Tensor | None:
    """The mean power (:func:`_periodogram`'s, (B,H,W) and (H,W)) in :data:`LOW_BAND` and
    :data:`MID_BAND` (B,2); None when the image is too small to hold both bands."""
    bands = []
    for lo, hi in (LOW_BAND, MID_BAND):
        inside = (f >= lo) & (f < hi)
        if not bool(inside.any()):
            return None
        bands.append(power[:, inside].mean(dim=1))
    return torch.stack(bands, dim=1)


#: the rings of :func:`_spectral_blur_of` (cycles per pixel): 14 rings 0.03 wide, 0.03-0.45
SPECTRUM_RINGS = tuple(0.03 + 0.03 * k for k in range(15))
#: the fall-off a natural image's power follows (power ∝ 1/f^α, α about 2) and the weight that
#: holds the fit's α near it: without it α and σ trade off when few rings stand above the noise
NATURAL_FALLOFF, FALLOFF_WEIGHT = 2.0, 10.0


def _spectral_blur_of(power: torch.Tensor, f: torch.Tensor, noise_power: float) -> float:
    """The Gaussian blur σ (LR pixels) one grey image's spectrum shows: its periodogram (H,W),
    averaged over the rings of :data:`SPECTRUM_RINGS`, less the white noise power, fitted in
    logs by log A − α·log f − 4π²σ²·f² (a power law, the content's own fall-off, times a
    Gaussian blur's transfer) over the rings that stand above half the noise power. A power law
    is straight in log f; a blur bends it down the more the higher the frequency, so the two
    separate. Weighted least squares: each ring's row scaled by the square root of its power
    above the noise over that power's sampling error (power / √bins); α held near
    :data:`NATURAL_FALLOFF` by a ridge. Returns the signed √(4π²σ²) / 2π (negative where the
    spectrum bends up: sharpened, or aliased), 0 when fewer than two rings stand above the noise.

    On held-out crops x2 (bicubic) it reads about 0.5 for sharp content (the downscale's own
    softness) and 0.72 / 1.12 / 1.52 for HR blur σ 1 / 2 / 3 (LR σ 0.5 / 1 / 1.5), much the same
    under noise σ 0.1 (docs/prediction.md)."""
    rings = torch.tensor(SPECTRUM_RINGS, dtype=torch.float64)
    ring = torch.bucketize(f.flatten(), rings, right=True) - 1   # ring k holds [rings[k], rings[k+1])
    inside = (ring >= 0) & (ring < len(SPECTRUM_RINGS) - 1)
    ring, count = ring[inside], torch.bincount(ring[inside], minlength=len(SPECTRUM_RINGS) - 1)
    total = torch.bincount(ring, weights=power.flatten()[inside], minlength=len(SPECTRUM_RINGS) - 1)
    freq = torch.bincount(ring, weights=f.flatten()[inside], minlength=len(SPECTRUM_RINGS) - 1)
    rows, target = [], []
    for n, p_sum, f_sum in zip(count.tolist(), total.tolist(), freq.tolist()):
        if n == 0:
            continue
        p, fc = p_sum / n, f_sum / n
        above = p - noise_power
        if above <= 0.5 * noise_power + 1e-7:   # 1e-7: below 8-bit rounding's own power (1.3e-6)
            continue
        weight = math.sqrt(above / (p / math.sqrt(n)))
        rows.append([weight, -math.log(fc) * weight, -fc * fc * weight])
        target.append(math.log(above) * weight)
    if len(rows) < 2:
        return 0.0
    ridge = math.sqrt(FALLOFF_WEIGHT)
    a = np.array([*rows, [0.0, ridge, 0.0]])
    b = np.array([*target, ridge * NATURAL_FALLOFF])
    beta = float(np.linalg.lstsq(a, b, rcond=None)[0][2])   # 4π²σ²
    return math.copysign(math.sqrt(abs(beta)), beta) / (2 * math.pi)


def _slope_of(bands: torch.Tensor | None, noise_power: torch.Tensor) -> np.ndarray:
    """:func:`classical_estimates`' detail slope of grey images from their band powers
    (:func:`_band_powers`, (B,2)) and their white noise's power ``noise_power`` (B,); (B,)."""
    if bands is None:
        return np.zeros(noise_power.shape[0])   # too small an image for the bands: no evidence either way
    floor = 0.02 * noise_power + 1e-9
    above = torch.maximum(bands - noise_power[:, None], floor[:, None])
    return torch.log(above[:, 1] / above[:, 0]).numpy()


def detail_slopes(lr: torch.Tensor) -> np.ndarray:
    """The detail slope (:func:`classical_estimates`) of each of a batch of LR images (B,3,H,W); (B,)."""
    grey, noise = _grey_and_noise(lr)
    return _slope_of(_band_powers(*_periodogram(grey[:, 0])), (noise * GREY_NOISE) ** 2)


def _grey_and_noise(lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The grey images (B,1,H,W) of LR images (B,3,H,W), float64, and their noise σ per channel
    (B,): 1.4826 x the MAD of Immerkær's residual, over 6, over :data:`GREY_NOISE`."""
    x = lr.detach().double().cpu()
    grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    r = F.conv2d(grey, _NOISE_MASK.view(1, 1, 3, 3)).flatten(1)
    mad = (r - r.median(dim=1, keepdim=True).values).abs().median(dim=1).values
    return grey, 1.4826 * mad / 6.0 / GREY_NOISE


def jpeg_quality_at(quality: int, factor: float) -> int:
    """A JPEG step's quality at a strength factor: the quality divided by it (factor 2 = half the
    quality, stronger), kept in 1..100."""
    return int(min(100, max(1, round(quality / factor))))


def combine(parts: Sequence[tuple[Degradation, float]], name: str | None = None) -> Degradation:
    """One degradation applying several at strength factors (blur σ and noise σ add in quadrature;
    of several JPEG steps the lowest quality stands for all), in the paper's order: blur, down,
    noise, JPEG last."""
    blur = math.sqrt(sum((d.blur_sigma * f) ** 2 for d, f in parts if d.blur_sigma)) or None
    noise = math.sqrt(sum((d.noise_sigma * f) ** 2 for d, f in parts if d.noise_sigma)) or None
    qualities = [jpeg_quality_at(d.jpeg_quality, f) for d, f in parts if d.jpeg_quality]
    return Degradation(name or "+".join(d.name for d, _ in parts) or CLEAN, blur, noise,
                       min(qualities) if qualities else None)
