"""Filter attribution: FAIG (the paper's method) and its comparison methods IG, |θ − θ̄|, random.

Shaped like captum: a configuration, public functions that validate, private functions that do
the maths on documented shapes. FAIG integrates the gradient along the straight parameter path
from the target θ (α = 0) to the baseline θ̄ (α = 1):

    A_k(x) = Σ_{kh,kw} | (θ̄_k − θ_k) ⊙ Σ_s w_s ∂L/∂θ_k |_{θ(α_s)} |,   L = Σ (F_θ(x) − y)²

Several α steps run in one forward/backward: the path's parameters are stacked along a leading
dimension and the network is evaluated with ``torch.func.vmap`` over ``functional_call``; the
module is built once and never rebuilt. Chunks keep peak memory under a budget.
"""
from __future__ import annotations

import logging
import weakref
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal, overload
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from faig_gui.core.device import on_device
from faig_gui.core.errors import FaigError
from faig_gui.core.filters import FilterIndex
from faig_gui.core.paths import PathRule, riemann_left

METHODS = ("faig", "ig", "abs", "random")
PRECISIONS = ("fp32", "bf16")
log = logging.getLogger("faig_gui")
StepCallback = Callable[[int], None]  # called with the number of path steps just finished


class Cancelled(Exception):
    """Raised between path chunks when the caller asked to stop; nothing partial is kept."""


@dataclass(frozen=True)
class PathOptions:
    """How to walk a path: quadrature rule, chunking, precision, device."""

    rule: PathRule
    device: torch.device = torch.device("cpu")
    chunk: int | None = None            # path steps per forward/backward (None: from the budget)
    memory_budget: int | None = None    # bytes for activations (None: a safe share of free memory)
    precision: str = "fp32"

    @classmethod
    def paper(cls, steps: int = 100, device: torch.device | str = "cpu", **kw) -> PathOptions:
        return cls(riemann_left(steps), torch.device(device), **kw)


# --------------------------------------------------------------------------------------------
# memory budget and chunking

def available_memory(device: torch.device) -> int:
    """Bytes that can be used safely now: half the free RAM, or 70 % of the free GPU memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.7)
    try:
        with open("/proc/meminfo") as fh:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh}
        return int(info.get("MemAvailable", 8 << 30) * 0.5)
    except OSError:
        return 4 << 30


def activation_bytes(module: nn.Module, x: torch.Tensor) -> int:
    """Bytes of all leaf-module outputs in one forward pass of ``x`` (one path step's activations).

    Measured once per module and input shape: a whole ranking asks for it once per image."""
    key = (tuple(x.shape), x.dtype, str(x.device))
    known = _ACTIVATION_BYTES.setdefault(module, {})
    if key not in known:
        known[key] = _measure_activation_bytes(module, x)
    return known[key]


_ACTIVATION_BYTES: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def _measure_activation_bytes(module: nn.Module, x: torch.Tensor) -> int:
    total = 0

    def hook(_m, _i, out):
        nonlocal total
        if isinstance(out, torch.Tensor):
            total += out.numel() * out.element_size()

    handles = [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in handles:
            h.remove()
    return max(total, x.numel() * x.element_size())


#: on a CPU, batch path steps only until a batch holds this many LR pixels: at 64x64 and above
#: one step at a time is as fast per step as any vmapped batch (docs/performance.md) and needs
#: the least memory; smaller inputs are batched to keep the cores busy
CPU_BATCH_PIXELS = 64 * 64
MAX_CHUNK = 32


def _param_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def step_bytes(module: nn.Module, x: torch.Tensor) -> int:
    """Memory one more path step in a chunk costs: autograd keeps the activations plus their
    gradients and pre-activation copies (3 x the leaf outputs leaves a margin over the measured
    1.5-2 x), and the step's stacked weights with their gradients (2 x the parameters)."""
    return 3 * activation_bytes(module, x) + 2 * _param_bytes(module)


def fixed_bytes(module: nn.Module) -> int:
    """Memory a path needs whatever the chunk: the weight change, the gradient sum, the
    per-filter products and their float64 sums, allocator slack (8 x the parameters, measured
    at 7 x with bench/bench_scaling.py)."""
    return 8 * _param_bytes(module)


def chunk_size(module: nn.Module, x: torch.Tensor, steps: int, options: PathOptions) -> int:
    """Path steps per forward/backward: ``options.chunk`` if given, else as many as the memory
    budget holds after the fixed part (at most MAX_CHUNK; on a CPU at most what fills
    CPU_BATCH_PIXELS). Peak memory stays under the budget when the budget holds the fixed part
    and one step; below that the path runs one step at a time and says so."""
    if options.chunk:
        return max(1, min(options.chunk, steps))
    budget = options.memory_budget or available_memory(options.device)
    per_step, fixed = step_bytes(module, x), fixed_bytes(module)
    if budget < fixed + per_step:
        log.info("memory budget %.0f MiB is below what one path step needs (about %.0f MiB): "
                 "computing one step at a time", budget / 2**20, (fixed + per_step) / 2**20)
    fit = (budget - fixed) // max(per_step, 1)
    if options.device.type == "cpu":
        fit = min(fit, -(-CPU_BATCH_PIXELS // (x.shape[-2] * x.shape[-1])))
    return int(max(1, min(steps, fit, MAX_CHUNK)))


def bf16_native(device: torch.device) -> bool:
    """Whether bf16 convolutions run on fast kernels here (CUDA; AVX512-BF16 or AMX CPUs).

    Elsewhere autocast falls back to torch's reference convolution: measured ~20x slower than
    fp32 on an AVX2-only CPU (docs/performance.md)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def check_precision(options: PathOptions) -> None:
    """Refuse an unknown precision; warn (once per process and device type) when bf16 would
    run on slow kernels."""
    if options.precision not in PRECISIONS:
        raise FaigError(f"unknown precision '{options.precision}'; use fp32 or bf16")
    if options.precision == "bf16" and options.device.type not in _WARNED_BF16 \
            and not bf16_native(options.device):
        _WARNED_BF16.add(options.device.type)
        log.warning("bf16 on this %s has no fast bf16 kernels (they need AVX512-BF16/AMX or CUDA): "
                    "expect it to be much slower than fp32", options.device.type.upper())


_WARNED_BF16: set[str] = set()


def _autocast(options: PathOptions):
    if options.precision == "bf16":
        return torch.autocast(device_type=options.device.type, dtype=torch.bfloat16)
    return nullcontext()


# --------------------------------------------------------------------------------------------
# FAIG

def _weight_names(index: FilterIndex) -> list[str]:
    return [layer.name for layer in index.layers]


@dataclass(frozen=True)
class PathCheck:
    """Completeness of one FAIG path integral (captum's convergence delta).

    Along the straight path, ∫₀¹ dL/dα dα = L(θ̄) − L(θ) with dL/dα = Σ (θ̄ − θ)·∇L over every
    parameter on the path (kernels, biases, any other float tensor of the state dict). The
    quadrature gives ``signed_sum`` = Σ (θ̄ − θ)·Σ_s w_s ∇L|θ(α_s), the signed, pre-abs products
    the attributions are made of; ``delta`` is its distance from the exact change of the loss
    (left Riemann sum: O(1/N))."""

    signed_sum: float      # Σ over every path parameter of (θ̄ − θ)·(weighted path gradient)
    loss_target: float     # L(θ) = Σ (F_θ(x) − y)²
    loss_baseline: float   # L(θ̄)

    @property
    def loss_change(self) -> float:
        return self.loss_baseline - self.loss_target

    @property
    def delta(self) -> float:
        return self.signed_sum - self.loss_change

    @property
    def relative(self) -> float:
        """|delta| / |L(θ̄) − L(θ)| (inf when the loss does not change but the sum does)."""
        change = abs(self.loss_change)
        if change == 0.0:
            return 0.0 if self.delta == 0.0 else float("inf")
        return abs(self.delta) / change


def faig_path_gradients(module: nn.Module, baseline: Mapping[str, torch.Tensor],
                        target: Mapping[str, torch.Tensor], lr: torch.Tensor, hr: torch.Tensor,
                        weights: list[str], options: PathOptions,
                        on_steps: StepCallback | None = None,
                        should_stop: Callable[[], bool] | None = None) -> dict[str, torch.Tensor]:
    """Σ_s w_s ∂L/∂W |_{θ(α_s)} for each conv weight W in ``weights`` (same shapes as W)."""
    return _faig_path(module, baseline, target, lr, hr, weights, options, on_steps, should_stop)[0]


def _float_entries(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Every tensor on the parameter path that a gradient can reach (biases, buffers too)."""
    return [k for k, v in state_dict.items() if v.is_floating_point()]


def _faig_path(module: nn.Module, baseline: Mapping[str, torch.Tensor],
               target: Mapping[str, torch.Tensor], lr: torch.Tensor, hr: torch.Tensor,
               weights: list[str], options: PathOptions, on_steps: StepCallback | None,
               should_stop: Callable[[], bool] | None, endpoints: bool = False,
               ) -> tuple[dict[str, torch.Tensor], tuple[float, float] | None]:
    """The weighted path gradients of ``weights`` and, with ``endpoints``, (L(θ), L(θ̄)) from one
    gradient-free forward each (float64 sums of the squared errors)."""
    check_precision(options)
    dev = options.device
    module = on_device(module, dev)
    theta = {k: v.to(dev) for k, v in target.items()}
    delta = {k: baseline[k].to(dev) - theta[k] for k in theta}
    lr, hr = lr.to(dev), hr.to(dev)
    alphas = torch.as_tensor(options.rule.alphas, dtype=torch.float32, device=dev)
    w = torch.as_tensor(options.rule.weights, dtype=torch.float32, device=dev)
    acc = {k: torch.zeros_like(theta[k]) for k in weights}
    grad_set = set(weights)
    chunk = chunk_size(module, lr, len(alphas), options)

    compute = torch.bfloat16 if options.precision == "bf16" else None
    x = lr if compute is None else lr.to(compute)

    def forward(params):  # params: name -> tensor of one path point; returns F(x)
        if compute is not None:
            # autocast does not reach inside torch.func.vmap (its ops stay fp32), so bf16 is
            # cast by hand: weights and input in bf16, the fp32 path weights stay the masters
            # and their gradients come back in fp32 through the cast
            params = {k: v.to(compute) if v.is_floating_point() else v for k, v in params.items()}
        return functional_call(module, params, (x,))

    def one_step(params):  # the loss of one path point
        return ((forward(params).float() - hr) ** 2).sum()

    for start in range(0, len(alphas), chunk):
        if should_stop is not None and should_stop():
            raise Cancelled()
        a, ws = alphas[start:start + chunk], w[start:start + chunk]
        b = len(a)
        # θ(α) = θ + α (θ̄ − θ), stacked along a new leading dim of size b
        params = {k: theta[k].unsqueeze(0) + a.view(-1, *([1] * theta[k].ndim)) * delta[k].unsqueeze(0)
                  for k in theta}
        for k in weights:
            params[k].requires_grad_(True)
        if b == 1:
            loss = one_step({k: v[0] for k, v in params.items()})
        else:
            loss = vmap(one_step)(params).sum()
        grads = torch.autograd.grad(loss, [params[k] for k in weights])
        for k, g in zip(weights, grads):
            acc[k] += torch.einsum("b,b...->...", ws, g.float())
        if on_steps is not None:
            on_steps(b)
    assert grad_set == set(acc)
    if not endpoints:
        return acc, None
    with torch.no_grad():
        # the endpoints exactly (θ̄ itself, not θ + 1·(θ̄ − θ)), summed in float64: the loss change
        # can be a small difference of two large sums
        at_theta, at_baseline = (float(((forward(p).double() - hr.double()) ** 2).sum())
                                 for p in (theta, {k: baseline[k].to(dev) for k in theta}))
    return acc, (at_theta, at_baseline)


@overload
def faig_attribution(module: nn.Module, baseline: Mapping[str, torch.Tensor],
                     target: Mapping[str, torch.Tensor], lr: torch.Tensor, hr: torch.Tensor,
                     index: FilterIndex | None = ..., options: PathOptions | None = ...,
                     on_steps: StepCallback | None = ..., should_stop: Callable[[], bool] | None = ...,
                     check: Literal[False] = ...) -> np.ndarray: ...


@overload
def faig_attribution(module: nn.Module, baseline: Mapping[str, torch.Tensor],
                     target: Mapping[str, torch.Tensor], lr: torch.Tensor, hr: torch.Tensor,
                     index: FilterIndex | None = ..., options: PathOptions | None = ...,
                     on_steps: StepCallback | None = ..., should_stop: Callable[[], bool] | None = ...,
                     *, check: Literal[True]) -> tuple[np.ndarray, PathCheck]: ...


def faig_attribution(module: nn.Module, baseline: Mapping[str, torch.Tensor],
                     target: Mapping[str, torch.Tensor], lr: torch.Tensor, hr: torch.Tensor,
                     index: FilterIndex | None = None, options: PathOptions | None = None,
                     on_steps: StepCallback | None = None,
                     should_stop: Callable[[], bool] | None = None,
                     check: bool = False) -> np.ndarray | tuple[np.ndarray, PathCheck]:
    """A_k(x) for every filter k (global numbering), float64, for one LR input and its HR.

    With ``check`` also the path's :class:`PathCheck`: the same backward passes give the
    gradients of every float tensor on the path (biases too; they cost next to nothing beside
    the kernels'), and two gradient-free forwards give L(θ) and L(θ̄)."""
    index = index or FilterIndex.from_state_dict(target, module)
    options = options or PathOptions.paper()
    _check_image_pair(module, lr, hr)
    names = _weight_names(index)
    wanted = _float_entries(target) if check else names
    grads, ends = _faig_path(module, baseline, target, lr, hr, wanted, options, on_steps, should_stop,
                             endpoints=check)
    prod = {k: ((baseline[k].to(grads[k].device) - target[k].to(grads[k].device)) * grads[k]).cpu()
            for k in wanted}
    scores = index.per_filter(prod, "sum_abs")
    if ends is None:
        return scores
    # the signed sum in float64 over the float32 products: Σ over all parameters, no abs
    signed = float(sum(p.double().sum() for p in prod.values()))
    return scores, PathCheck(signed, ends[0], ends[1])


def _check_image_pair(module: nn.Module, lr: torch.Tensor, hr: torch.Tensor) -> None:
    if lr.ndim != 4 or hr.ndim != 4 or lr.shape[0] != 1:
        raise FaigError("an analysis image must be one NCHW tensor for LR and one for HR")
    scale = hr.shape[-1] / lr.shape[-1]
    if hr.shape[-2] != lr.shape[-2] * scale or scale != int(scale):
        raise FaigError(f"HR {tuple(hr.shape[-2:])} is not an integer multiple of LR {tuple(lr.shape[-2:])}")


# --------------------------------------------------------------------------------------------
# IG (input path, target fixed)

def ig_attribution(module: nn.Module, target: Mapping[str, torch.Tensor], clean_lr: torch.Tensor,
                   degraded_lr: torch.Tensor, index: FilterIndex | None = None,
                   options: PathOptions | None = None, on_steps: StepCallback | None = None,
                   should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """Σ_{kh,kw} | Σ_s w_s ∂ΣF_θ(x(α_s))/∂θ_k |, x(α) = x_clean + α (x_d − x_clean)."""
    index = index or FilterIndex.from_state_dict(target, module)
    options = options or PathOptions.paper()
    if clean_lr.shape != degraded_lr.shape:
        raise FaigError(f"clean LR {tuple(clean_lr.shape)} and degraded LR {tuple(degraded_lr.shape)} differ in size")
    check_precision(options)
    dev = options.device
    module = on_device(module, dev)
    names = _weight_names(index)
    params = {k: v.to(dev) for k, v in target.items()}
    for k in names:
        params[k] = params[k].clone().requires_grad_(True)
    x0, x1 = clean_lr.to(dev), degraded_lr.to(dev)
    alphas = torch.as_tensor(options.rule.alphas, dtype=torch.float32, device=dev)
    w = torch.as_tensor(options.rule.weights, dtype=torch.float32, device=dev)
    acc = {k: torch.zeros_like(params[k]) for k in names}
    chunk = chunk_size(module, x0, len(alphas), options)
    for start in range(0, len(alphas), chunk):
        if should_stop is not None and should_stop():
            raise Cancelled()
        a, ws = alphas[start:start + chunk], w[start:start + chunk]
        xs = x0 + a.view(-1, 1, 1, 1) * (x1 - x0)          # (b, C, h, w)
        with _autocast(options):
            out = functional_call(module, params, (xs,))   # (b, C, H, W)
            # weighting each path point's objective weights its gradient
            objective = (out.float().sum(dim=(1, 2, 3)) * ws).sum()
        grads = torch.autograd.grad(objective, [params[k] for k in names])
        for k, g in zip(names, grads):
            acc[k] += g.float()
        if on_steps is not None:
            on_steps(len(a))
    # the paper divides the summed gradient by N; with weights w_s = 1/N this is Σ_s w_s grad
    return index.per_filter({k: v.cpu() for k, v in acc.items()}, "sum_abs")


# --------------------------------------------------------------------------------------------
# data-free comparisons

def abs_change(baseline: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor],
               index: FilterIndex | None = None) -> np.ndarray:
    """Σ|θ_k − θ̄_k| / Σ|θ̄_k| per filter (0 where the baseline kernel is all zero)."""
    index = index or FilterIndex.from_state_dict(target)
    num = index.per_filter({k: target[k] - baseline[k] for k in _weight_names(index)}, "sum_abs")
    den = index.per_filter({k: baseline[k] for k in _weight_names(index)}, "sum_abs")
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def random_scores(total: int, seed: int = 0) -> np.ndarray:
    """A seeded random permutation, as scores (rank r gets score total − r)."""
    perm = np.random.default_rng(seed).permutation(total)
    scores = np.empty(total, dtype=np.float64)
    scores[perm] = np.arange(total, 0, -1, dtype=np.float64)
    return scores


# --------------------------------------------------------------------------------------------
# from per-image attributions to per-degradation scores

def discriminative_scores(per_image: Mapping[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """FAIG_k(d) = mean over images of [A_k(x_d) − mean_{d'≠d} A_k(x_d')] (docs/method.md).

    ``per_image[d][j]`` is A(x_d) for image j; every degradation must cover the same images."""
    names = list(per_image)
    if len(names) < 2:
        raise FaigError("FAIG needs at least two degradations to discriminate between")
    counts = {len(v) for v in per_image.values()}
    if len(counts) != 1 or 0 in counts:
        raise FaigError("every degradation needs an attribution for every image")
    means = {d: np.mean(np.stack(per_image[d]), axis=0) for d in names}
    # the mean over images is linear, so averaging first gives the same scores
    return {d: means[d] - np.mean([means[o] for o in names if o != d], axis=0) for d in names}


def mean_scores(per_image: Mapping[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """IG's per-degradation scores: the image average of the attributions."""
    return {d: np.mean(np.stack(v), axis=0) for d, v in per_image.items()}
