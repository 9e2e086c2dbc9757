"""The public FAIG API, shaped like captum: ``FAIG(target_module, baseline).attribute(...)``.

Works on any ``nn.Module`` (no architecture plugin needed): filters are the module's 4-D
``*.weight`` tensors, numbered globally as in :mod:`faig_gui.core.filters`. The caller's module
is never touched: each ``attribute`` call runs on a private copy (``copy.deepcopy``, then
``eval()`` and ``.to(device)`` on the copy), with the weights the module has at that moment.

    >>> from faig_gui import FAIG
    >>> faig = FAIG(target, baseline)                   # modules or state dicts for the baseline
    >>> result, delta = faig.attribute({"blur": lr_blur, "noise": lr_noise}, hr,
    ...                                return_convergence_delta=True)
    >>> result.top("blur", 0.01)                         # the top 1 % deblurring filters

docs/api.md has a worked example.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal, overload
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from faig_gui.core.attribution import PathCheck, PathOptions, discriminative_scores, faig_attribution
from faig_gui.core.device import resolve_device
from faig_gui.core.errors import FaigError
from faig_gui.core.filters import FilterIndex, top_indices
from faig_gui.core.masking import FilterMask, masked_model
from faig_gui.core.paths import PathRule, gauss_legendre, riemann_left

__all__ = ["FAIG", "FAIGAttributions", "ConvergenceDelta", "METHODS"]

#: captum's names for the path quadrature
METHODS = ("riemann_left", "gausslegendre")
#: the degradation name of a single batch given without a name
SINGLE_INPUT = "input"

Inputs = torch.Tensor | Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class FAIGAttributions:
    """What :meth:`FAIG.attribute` found.

    ``attributions[d]``: (images, filters) float64, A_k(x_d) of each image (docs/method.md, the
    absolute per-filter path integral). ``scores[d]``: (filters,) the discriminative FAIG score
    of degradation d, mean over images of A_k(x_d) − mean_{d'≠d} A_k(x_d'); ``None`` when only
    one degradation was given. Filter k is ``filters.describe(k)`` (layer[out, in])."""

    degradations: tuple[str, ...]
    attributions: dict[str, np.ndarray]
    scores: dict[str, np.ndarray] | None
    filters: FilterIndex
    n_steps: int
    method: str

    def ranking_scores(self, degradation: str) -> np.ndarray:
        """The scores a ranking for ``degradation`` uses: discriminative ones when there are
        several degradations, else the image mean of the attributions."""
        if degradation not in self.attributions:
            raise FaigError(f"no degradation '{degradation}' here; have {', '.join(self.degradations)}")
        if self.scores is not None:
            return self.scores[degradation]
        return np.asarray(self.attributions[degradation].mean(axis=0))

    def top(self, degradation: str, proportion: float | None = None, count: int | None = None) -> np.ndarray:
        """Global indices of the highest-ranked filters for ``degradation``, descending
        (``proportion`` 0.01 = the top 1 %, or ``count`` filters)."""
        return top_indices(self.ranking_scores(degradation), proportion, count)


@dataclass(frozen=True)
class ConvergenceDelta:
    """Completeness of the path integrals, per degradation and image ((images,) float64 each).

    ``delta`` = Σ over every parameter (biases included) of the signed products
    (θ̄ − θ)·(mean path gradient) − (L(θ̄) − L(θ)); zero for an exact integral, O(1/N) for the
    left Riemann sum. ``loss_change`` = L(θ̄) − L(θ)."""

    delta: dict[str, np.ndarray]
    loss_change: dict[str, np.ndarray]

    @property
    def relative(self) -> dict[str, np.ndarray]:
        """|delta| / |L(θ̄) − L(θ)| per degradation and image."""
        return {d: relative_delta(self.delta[d], self.loss_change[d]) for d in self.delta}

    @property
    def max_relative(self) -> float:
        return float(max((v.max() for v in self.relative.values() if len(v)), default=0.0))


def relative_delta(delta: np.ndarray, loss_change: np.ndarray) -> np.ndarray:
    """|delta| / |L(θ̄) − L(θ)| elementwise; 0 where both are 0, inf where only the change is."""
    delta, change = np.abs(np.asarray(delta, float)), np.abs(np.asarray(loss_change, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = delta / change
    return np.where(change == 0, np.where(delta == 0, 0.0, np.inf), out)


class FAIG:
    """Filter Attribution via Integrated Gradients (Xie et al., NeurIPS 2021) for one pair.

    ``target_module``: the fine-tuned network (any ``nn.Module`` whose conv weights are 4-D
    ``*.weight`` tensors). ``baseline``: the clean-trained network of the same architecture, as a
    module or a state dict with the same keys and shapes."""

    def __init__(self, target_module: nn.Module, baseline: nn.Module | Mapping[str, torch.Tensor]) -> None:
        if not isinstance(target_module, nn.Module):
            raise FaigError(f"the target must be an nn.Module, got {type(target_module).__name__}")
        if not isinstance(baseline, (nn.Module, Mapping)):
            raise FaigError(f"the baseline must be an nn.Module or a state dict, got {type(baseline).__name__}")
        self.target_module = target_module
        self.baseline = baseline
        # checked now so that a wrong pair fails where it is made, not in the first attribute()
        self._pair()

    def _pair(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], FilterIndex]:
        """Detached copies of both state dicts as they are now, checked to match."""
        target = {k: v.detach().clone() for k, v in self.target_module.state_dict().items()}
        raw = self.baseline.state_dict() if isinstance(self.baseline, nn.Module) else self.baseline
        baseline: dict[str, torch.Tensor] = {}
        for k, v in raw.items():
            if not isinstance(v, torch.Tensor):
                raise FaigError(f"baseline entry '{k}' is a {type(v).__name__}, not a tensor")
            baseline[k] = v.detach().clone()
        missing = [k for k in target if k not in baseline]
        extra = [k for k in baseline if k not in target]
        if missing or extra:
            raise FaigError("the baseline does not match the target's parameters: "
                            f"missing {missing[:5]}{' …' if len(missing) > 5 else ''}, "
                            f"unexpected {extra[:5]}{' …' if len(extra) > 5 else ''}")
        for k, v in target.items():
            if baseline[k].shape != v.shape:
                raise FaigError(f"'{k}': baseline shape {tuple(baseline[k].shape)}, target {tuple(v.shape)}")
            baseline[k] = baseline[k].to(v.dtype)
        # the module tells transposed and grouped convs apart, so describe(k) names true channels
        return baseline, target, FilterIndex.from_state_dict(target, self.target_module)

    @overload
    def attribute(self, inputs: Inputs, targets: torch.Tensor, degradations: str | Sequence[str] | None = ...,
                  n_steps: int = ..., method: str = ..., return_convergence_delta: Literal[False] = ...,
                  internal_batch_size: int | None = ..., device: str | torch.device | None = ...,
                  ) -> FAIGAttributions: ...

    @overload
    def attribute(self, inputs: Inputs, targets: torch.Tensor, degradations: str | Sequence[str] | None = ...,
                  n_steps: int = ..., method: str = ..., *, return_convergence_delta: Literal[True],
                  internal_batch_size: int | None = ..., device: str | torch.device | None = ...,
                  ) -> tuple[FAIGAttributions, ConvergenceDelta]: ...

    def attribute(self, inputs: Inputs, targets: torch.Tensor, degradations: str | Sequence[str] | None = None,
                  n_steps: int = 100, method: str = "riemann_left", return_convergence_delta: bool = False,
                  internal_batch_size: int | None = None, device: str | torch.device | None = None,
                  ) -> FAIGAttributions | tuple[FAIGAttributions, ConvergenceDelta]:
        """Attribute the loss Σ (F(x) − y)² to the target's filters along the parameter path.

        ``inputs``: an (N, C, h, w) batch of LR images of one degradation, or a mapping
        {degradation name: batch} of the same N images under each degradation. ``targets``: the
        (N, C, H, W) HR images (H = scale · h). ``degradations``: which names of the mapping to
        use, in this order (default: all); for a single batch, its name (default ``"input"``).
        ``n_steps``: path steps N (the paper: 100) or Gauss-Legendre nodes. ``method``:
        ``"riemann_left"`` (the paper's) or ``"gausslegendre"``. ``internal_batch_size``: path
        steps per forward/backward (default: as many as memory allows). ``device``: ``"auto"``
        (CUDA when present) by default, as everywhere in faig-gui.

        Returns :class:`FAIGAttributions`, and with ``return_convergence_delta`` a
        (FAIGAttributions, :class:`ConvergenceDelta`) pair, as captum does."""
        batches = _named_batches(inputs, degradations)
        hr = _check_batch(targets, "targets")
        for name, lr in batches.items():
            _check_batch(lr, f"inputs['{name}']")
            if lr.shape[0] != hr.shape[0]:
                raise FaigError(f"inputs['{name}'] holds {lr.shape[0]} images, targets {hr.shape[0]}")
        options = PathOptions(_rule(method, n_steps), resolve_device(device or "auto"),
                              _positive_or_none(internal_batch_size, "internal_batch_size"))
        baseline, target, index = self._pair()
        module = self._private_module(options.device)
        per: dict[str, list[np.ndarray]] = {d: [] for d in batches}
        checks: dict[str, list[PathCheck]] = {d: [] for d in batches}
        dtype = next((v.dtype for v in target.values() if v.is_floating_point()), torch.float32)
        for d, lr in batches.items():
            for j in range(hr.shape[0]):
                x, y = lr[j:j + 1].to(dtype), hr[j:j + 1].to(dtype)
                if return_convergence_delta:
                    a, c = faig_attribution(module, baseline, target, x, y, index, options, check=True)
                    checks[d].append(c)
                else:
                    a = faig_attribution(module, baseline, target, x, y, index, options)
                per[d].append(a)
        result = FAIGAttributions(tuple(batches), {d: np.stack(v) for d, v in per.items()},
                                  discriminative_scores(per) if len(per) >= 2 else None,
                                  index, n_steps, method)
        if not return_convergence_delta:
            return result
        return result, ConvergenceDelta({d: np.array([c.delta for c in v]) for d, v in checks.items()},
                                        {d: np.array([c.loss_change for c in v]) for d, v in checks.items()})

    def masked(self, indices: Sequence[int] | np.ndarray, mode: str = "baseline", lam: float = 0.0) -> nn.Module:
        """A new module: the target with the given filters replaced by the baseline's kernels
        (``mode="zero"``: by zeros; ``lam`` in [0, 1.5] modulates, core/masking.py)."""
        baseline, target, index = self._pair()
        return masked_model(self.target_module, target, baseline,
                            FilterMask(np.asarray(indices, dtype=np.int64), mode, lam), index)

    def _private_module(self, device: torch.device) -> nn.Module:
        """A copy to run: eval mode (no dropout, fixed norm statistics), on ``device``, frozen.
        The engine swaps parameters in and out of the module it runs (functional_call); the
        caller's module never sees that, nor a device or mode change."""
        module = copy.deepcopy(self.target_module).eval().to(device)
        for p in module.parameters():
            p.requires_grad_(False)
        return module


def _named_batches(inputs: Inputs, degradations: str | Sequence[str] | None) -> dict[str, torch.Tensor]:
    names = [degradations] if isinstance(degradations, str) else None if degradations is None else list(degradations)
    if isinstance(inputs, torch.Tensor):
        if names is not None and len(names) != 1:
            raise FaigError(f"one batch of inputs is one degradation, but {len(names)} names were given; "
                            "pass a mapping {name: batch} for several")
        return {(names or [SINGLE_INPUT])[0]: inputs}
    if not isinstance(inputs, Mapping) or not inputs:
        raise FaigError("inputs must be a tensor (N, C, h, w) or a non-empty mapping {degradation: tensor}")
    names = names if names is not None else list(inputs)
    unknown = [n for n in names if n not in inputs]
    if unknown or not names or len(set(names)) != len(names):
        raise FaigError(f"degradations {names} must be distinct names among the inputs' {list(inputs)}")
    return {n: inputs[n] for n in names}


def _check_batch(x: object, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point() or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise FaigError(f"{what} must be a non-empty float batch (N, C, H, W), got {shape}")
    return x


def _rule(method: str, n_steps: int) -> PathRule:
    if not isinstance(n_steps, int) or n_steps < 1:
        raise FaigError(f"n_steps must be a positive integer, got {n_steps!r}")
    if method == "riemann_left":
        return riemann_left(n_steps)
    if method == "gausslegendre":
        return gauss_legendre(n_steps)
    raise FaigError(f"unknown method '{method}'; use one of {', '.join(METHODS)}")


def _positive_or_none(value: int | None, what: str) -> int | None:
    if value is not None and (not isinstance(value, int) or value < 1):
        raise FaigError(f"{what} must be a positive integer or None, got {value!r}")
    return value
