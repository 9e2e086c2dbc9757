"""The render engine behind the window's centre view, free of Qt: one render request (a copy
of what a render reads, made on the UI thread) in, the target's and the masked model's outputs,
their gradient maps and the metrics out; a cache of what depends on the target alone; and the
policy for renders computed ahead of a request (guesses of the next mask state).

The view (app/image_view.py) sends requests through a latest-wins task and shows the results.
"""
from __future__ import annotations

import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, replace
from collections.abc import Callable

import numpy as np
import torch
from torch import fx

from faig_gui.core.attribution import Cancelled
from faig_gui.core.exports import target_and_masked
from faig_gui.core.filters import FilterIndex
from faig_gui.core.imageio import to_image, to_tensor
from faig_gui.core.incremental import IncrementalForward
from faig_gui.core.inference import super_resolve
from faig_gui.core.masking import FilterMask, masked_state_dict, masked_state_dict_from
from faig_gui.core.metrics import gradient_map, maps_effect, psnr_rgb_y
from faig_gui.core.preview import (FAST_MACS_PER_S, PREVIEW_ABOVE_S, PREVIEW_BUDGET_S, Geometry, PreviewPlan, plan_preview,
                                   receptive_radius)
from faig_gui.core.threads import AdaptiveThreads


#: crops of at most this many LR pixels run their forwards on one torch thread (render_preview)
ONE_THREAD_CROP_PIXELS = 16 * 16


@dataclass(frozen=True)
class RenderRequest:
    """A copy of what one render reads, made on the UI thread."""

    image_key: int
    lr: np.ndarray
    gt: np.ndarray | None
    module: torch.nn.Module | None
    target: dict | None
    baseline: dict | None
    index: FilterIndex | None
    mask: FilterMask
    scale: int
    models_version: int
    requested: float
    max_threads: int = 1                 # at most this many torch threads (workers.live_threads)
    graph: fx.Graph | None = None        # the target's torch.fx graph (incremental forward)
    focus: tuple[float, float] | None = None   # LR (y, x) at the view's centre: where a preview looks


@dataclass
class RenderResult:
    request: RenderRequest
    input: np.ndarray                    # LR enlarged (nearest) to the output size, HWC
    target: np.ndarray | None            # HWC [0, 1]
    masked: np.ndarray | None
    gradient_target: np.ndarray | None   # HxW
    gradient_masked: np.ndarray | None
    effect: float | None                 # gradient-map MSE x 1000, masked vs target
    psnr_target: float | None
    psnr_masked: float | None
    compute_seconds: float
    cpu_seconds: float = 0.0             # the render thread's CPU time (what it costs undisturbed)
    threads: int = 1                     # torch threads the render ran with (the tuner's choice)
    finished: float = 0.0                # perf_counter() when the render thread was done
    prefetched: bool = False             # computed ahead, as a guess of this request (prefetch.py)
    masked_share: float | None = None    # share of a full forward the masked output cost (None: none ran)
    preview: PreviewPlan | None = None   # a crop's masked output only (core/preview.py); the full frame follows
    psnr_y_target: float | None = None   # the same PSNRs on the BT.601 luma (metrics.psnr_y), as SR papers report
    psnr_y_masked: float | None = None


class OutputCache:
    """The target's outputs per (models, image), and the render's thread-count tuner; touched
    only by the render thread. Entries keep their input array and are used only for that very
    array (ids can be reused)."""

    def __init__(self, size: int = 8):
        self._items: OrderedDict[tuple, tuple[np.ndarray, tuple]] = OrderedDict()
        self.size = size
        self.threads = AdaptiveThreads()   # the render thread's torch thread count, measured
        self._incremental: tuple[int, IncrementalForward | None] | None = None
        self.forwards: Counter = Counter()  # forward calls, "render" and "prefetch" (tests, benchmarks)
        # the last masked weights made: (request key, mask, weights)
        self._masked: tuple[tuple, FilterMask, dict] | None = None
        self.seconds_per_pixel: float | None = None   # a full forward's time per LR pixel, last measured
        self._geometry: tuple[int, Geometry] | None = None   # the receptive radius, per models version
        self.preview_target: tuple[tuple, torch.Tensor] | None = None   # the target's output of the last preview crop
        # a crop forward's seconds per LR pixel, last measured: small crops cost several times a
        # full frame's per pixel (RRDBNet's 8 x 8 LR crop: ~3.5x; the convolutions take PyTorch's
        # small-input path), so preview crops planned from the full frame's rate came out too big
        self.crop_seconds_per_pixel: float | None = None

    def masked_params(self, req: RenderRequest) -> dict[str, torch.Tensor]:
        """The masked weights of ``req`` (the last ones are kept: a guess is settled on the
        request that came before it, whose weights were just made)."""
        key = (req.models_version, req.mask.mode, req.mask.lam, req.mask.indices.tobytes())
        if self._masked is None or self._masked[0] != key:
            if req.target is None or req.baseline is None:
                raise RuntimeError("masked weights need a request with a baseline and a target")
            last = self._masked
            if last is not None and last[0][0] == req.models_version and req.index is not None:
                # the same pair: only the layers whose masked filters changed are made again
                weights = masked_state_dict_from((last[1], last[2]), req.target, req.baseline, req.mask, req.index)
            else:
                weights = masked_state_dict(req.target, req.baseline, req.mask, req.index)
            self._masked = (key, req.mask, weights)
        return self._masked[2]

    def forward(self, req: RenderRequest, x: torch.Tensor, params,
                should_stop: Callable[[], bool] | None = None, aside: bool = False) -> tuple[torch.Tensor, float]:
        """SR output of ``x`` with ``params``, and the share of a full pass it cost: through the
        incremental forward (only the layers a mask change touches) when the model traced and
        the image is small enough, else super_resolve (tiled when large). With ``should_stop``
        (prefetch work) only the incremental forward runs, stopping between nodes; a plain
        forward could not stop, so it raises Cancelled at once instead. ``aside``: a guess,
        kept beside what the real renders left (IncrementalForward.run)."""
        if should_stop is not None and should_stop():
            raise Cancelled()   # (stopped before it began: not counted as a forward)
        inc = self.incremental(req)
        self.forwards["render" if should_stop is None and not aside else "prefetch"] += 1
        if inc is None or not inc.keeps(x):
            if should_stop is not None:
                raise Cancelled()
            return super_resolve(_module(req), x, req.scale, params), 1.0
        out = inc.run(x, params, should_stop, aside=aside).float()
        return out, inc.last_share

    def incremental(self, req: RenderRequest) -> IncrementalForward | None:
        if self._incremental is None or self._incremental[0] != req.models_version:
            inc = IncrementalForward(_module(req), req.graph) if req.graph is not None else None
            self._incremental = (req.models_version, inc)
        return self._incremental[1]

    def settle(self, req: RenderRequest, should_stop: Callable[[], bool]) -> None:
        """Make ``req``'s masked weights the incremental forward's record (a guess shown for it
        is kept aside until then): guesses are computed from the state on screen. Usually no
        node runs; nothing happens for an image not rendered yet or an unmasked output."""
        cached = self.get((req.models_version, req.image_key), req.lr)
        inc = self.incremental(req)
        if (cached is None or inc is None or req.baseline is None or len(req.mask) == 0
                or req.mask.lam == 1.0 or not inc.keeps(cached[0])):
            return
        self.forward(req, cached[0], self.masked_params(req), should_stop)

    def get(self, key: tuple, lr: np.ndarray) -> tuple | None:
        entry = self._items.get(key)
        if entry is not None and entry[0] is lr:
            self._items.move_to_end(key)
            return entry[1]
        return None

    def put(self, key: tuple, lr: np.ndarray, value: tuple) -> None:
        self._items[key] = (lr, value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


def render(req: RenderRequest, cache: OutputCache, should_stop: Callable[[], bool] | None = None,
           threads: int | None = None, aside: bool = False) -> RenderResult:
    """Runs on the render thread: outputs, maps and metrics for one request. With
    ``should_stop`` it raises Cancelled as soon as that turns True (between the forward's
    nodes). ``threads``: the torch thread count it starts with, and it is not measured (else
    the tuner chooses and learns from it). ``aside``: a guess, whose masked output is computed
    beside what the real renders left (IncrementalForward.run)."""
    start, cpu = time.perf_counter(), time.thread_time()
    stop = should_stop or (lambda: False)
    measured = threads is None
    # this render thread's torch pool
    if threads is None:
        threads = cache.threads.apply(req.max_threads)
    else:
        torch.set_num_threads(threads)
    forward_s, forwards = 0.0, 0.0   # seconds, and full passes' worth of forwards (shares add up)
    s = req.scale
    if req.module is None or req.target is None:
        enlarged = np.repeat(np.repeat(req.lr, s, axis=0), s, axis=1)
        return RenderResult(req, enlarged, None, None, None, None, None, None, None, time.perf_counter() - start)
    key = (req.models_version, req.image_key)
    cached = cache.get(key, req.lr)
    if cached is None:
        # what depends on the target alone is computed once per (models, image); the input
        # tensor is kept too: the incremental forward knows an image by its tensor
        lr = to_tensor(req.lr).contiguous(memory_format=torch.channels_last)
        t0 = time.perf_counter()
        target_out, share = cache.forward(req, lr, req.target, should_stop)
        forward_s, forwards = forward_s + time.perf_counter() - t0, forwards + share
        target_img = to_image(target_out)
        grad_t_full = gradient_map(target_out)
        gt = req.gt if req.gt is not None and req.gt.shape == target_img.shape else None
        p_t, p_ty = (None, None) if gt is None else psnr_rgb_y(target_img, gt)
        enlarged = np.repeat(np.repeat(req.lr, s, axis=0), s, axis=1)
        cached = (lr, enlarged, target_out, target_img, grad_t_full, p_t, p_ty)
        cache.put(key, req.lr, cached)
    # the same arrays as the last render's when only the mask changed: the view skips them
    lr, enlarged, target_out, target_img, grad_t_full, p_t, p_ty = cached
    masked_out, masked_share = None, None
    if req.baseline is not None:
        if len(req.mask) == 0 or req.mask.lam == 1.0:
            masked_out = target_out
        else:
            if stop():
                raise Cancelled()
            params = cache.masked_params(req)
            t0 = time.perf_counter()
            masked_out, share = cache.forward(req, lr, params, should_stop, aside=aside)
            forward_s, forwards = forward_s + time.perf_counter() - t0, forwards + share
            masked_share = share
    if stop():
        raise Cancelled()
    if forwards and measured:
        cache.threads.record(threads, forward_s, forwards * lr.shape[-1] * lr.shape[-2])
    if forwards >= 0.3:   # (a small share's time is mostly per-node overhead: no measure of a pass)
        cache.seconds_per_pixel = forward_s / (forwards * lr.shape[-1] * lr.shape[-2])
    unchanged = masked_out is target_out
    masked_img = None if masked_out is None else target_img if unchanged else to_image(masked_out)
    grad_t = grad_t_full[0, 0].numpy()
    grad_m_full = None if masked_out is None else grad_t_full if unchanged else gradient_map(masked_out)
    grad_m = grad_m_full[0, 0].numpy() if grad_m_full is not None else None
    effect = maps_effect(grad_t_full, grad_m_full) if grad_m_full is not None else None
    p_m = p_my = None
    if p_t is not None and masked_img is not None and req.gt is not None:   # (p_t is set only with gt)
        p_m, p_my = (p_t, p_ty) if unchanged else psnr_rgb_y(masked_img, req.gt)
    return RenderResult(req, enlarged, target_img, masked_img, grad_t, grad_m, effect, p_t, p_m,
                        time.perf_counter() - start, time.thread_time() - cpu, threads, time.perf_counter(),
                        masked_share=masked_share, psnr_y_target=p_ty, psnr_y_masked=p_my)


def render_live(req: RenderRequest, cache: OutputCache, above_s: float = PREVIEW_ABOVE_S,
                budget_s: float = PREVIEW_BUDGET_S) -> RenderResult:
    """The view's render of a real request: a preview of a crop (core/preview.py) when the full
    masked output is estimated to cost more than ``above_s`` seconds, else the full frame. The
    caller asks for the full frame after a preview (``render``).

    On such a slow net, an image's first render with a mask on (a new image, or the pair just
    opened) computes the target's full output alone, then the preview, instead of two full
    forwards before anything shows; and once an image's target output is in, the target's output
    of the crop a preview would use is computed too, so the first mask change runs one crop
    forward, not two."""
    first = cache.get((req.models_version, req.image_key), req.lr) is None
    if first and _masked_estimate(req, cache) > above_s:
        render(replace(req, mask=FilterMask(mode=req.mask.mode, lam=req.mask.lam)), cache)
    plan = _preview_plan(req, cache, above_s, budget_s)
    if plan is not None:
        return render_preview(req, cache, plan)
    result = render(req, cache)
    if first and req.module is not None and req.target is not None and req.baseline is not None:
        crop = _crop_plan(req, cache, above_s, budget_s)
        if crop is not None:
            _preview_threads(req, cache, crop)   # (as the previews will run: the rate is theirs)
            _target_crop(req, cache, crop)
            # planned again with the crop rate just measured: the crop the next change will use
            again = _crop_plan(req, cache, above_s, budget_s)
            if again is not None and again.crop != crop.crop:
                _target_crop(req, cache, again)
    return result


def _masked_estimate(req: RenderRequest, cache: OutputCache) -> float:
    """Seconds a full masked forward of ``req``'s image would take as measured on the images
    before it (0 when nothing is masked or nothing was measured yet)."""
    if (req.module is None or req.target is None or req.baseline is None or len(req.mask) == 0
            or req.mask.lam == 1.0 or cache.seconds_per_pixel is None):
        return 0.0
    return cache.seconds_per_pixel * req.lr.shape[0] * req.lr.shape[1]


def _crop_plan(req: RenderRequest, cache: OutputCache, above_s: float, budget_s: float) -> PreviewPlan | None:
    """The crop a preview of ``req``'s image would use (whatever the mask), when a full forward
    of it is estimated above ``above_s``."""
    if cache.seconds_per_pixel is None or req.module is None:
        return None
    h, w = req.lr.shape[:2]
    if cache.seconds_per_pixel * h * w <= above_s:
        return None
    if cache._geometry is None or cache._geometry[0] != req.models_version:
        cache._geometry = (req.models_version, receptive_radius(req.module))
    rate = max(cache.seconds_per_pixel, cache.crop_seconds_per_pixel or 0.0)
    return plan_preview(h, w, rate, budget_s, cache._geometry[1].radius, req.focus)


def _preview_plan(req: RenderRequest, cache: OutputCache, above_s: float, budget_s: float) -> PreviewPlan | None:
    full = _masked_estimate(req, cache)
    if full <= 0.0:
        return None
    cached = cache.get((req.models_version, req.image_key), req.lr)
    if cached is None:   # the first render of an image: the target's full forward is needed anyway
        return None
    lr = cached[0]
    inc = cache.incremental(req)
    share = None
    if inc is not None and inc.keeps(lr):
        share = inc.planned_share(lr, cache.masked_params(req))
    estimate = full * (1.0 if share is None else share)
    macs = inc.pass_macs(lr) if inc is not None else None
    if macs is not None:
        # the measured rate may come from a first forward slowed by one-time costs (oneDNN's
        # kernels, the thread pool): no preview either where the arithmetic is small at a rate
        # faster than any CPU the window renders on reaches
        estimate = min(estimate, macs * (1.0 if share is None else share) / FAST_MACS_PER_S)
    if estimate <= above_s:
        return None
    return _crop_plan(req, cache, 0.0, budget_s)


def _preview_threads(req: RenderRequest, cache: OutputCache, plan: PreviewPlan) -> int:
    """Set and return the torch threads of a preview's crop forwards: one for small crops (on the
    render thread, not the process's main thread, a second OpenMP thread made RRDBNet's 8 x 8
    crop forward 2x slower, 154-175 ms against 77-79 ms: its ~1,000 small operations each pay the
    team's hand-over), the tuner's count for larger ones (SRVGG's 28-40 pixel crops gain from two)."""
    y0, x0, y1, x1 = plan.crop
    if (y1 - y0) * (x1 - x0) <= ONE_THREAD_CROP_PIXELS:
        torch.set_num_threads(1)
        return 1
    return cache.threads.apply(req.max_threads, explore=False)


def _target_crop(req: RenderRequest, cache: OutputCache, plan: PreviewPlan) -> torch.Tensor:
    """The target's output of ``plan``'s crop of ``req``'s image, kept for the next previews."""
    cached = cache.get((req.models_version, req.image_key), req.lr)
    if cached is None:
        raise RuntimeError("a preview needs the target's full output of its image (cached by the first render)")
    y0, x0, y1, x1 = plan.crop
    key = (req.models_version, req.image_key, plan.crop)
    if cache.preview_target is None or cache.preview_target[0] != key:
        start = time.perf_counter()
        cache.preview_target = (key, super_resolve(_module(req), cached[0][..., y0:y1, x0:x1], req.scale, req.target))
        cache.crop_seconds_per_pixel = (time.perf_counter() - start) / ((y1 - y0) * (x1 - x0))
    return cache.preview_target[1]


def render_preview(req: RenderRequest, cache: OutputCache, plan: PreviewPlan) -> RenderResult:
    """The target's full output plus the change masking makes on ``plan``'s crop (the masked
    and the target's weights on the same crop, plain forwards; the target's is kept per crop, so
    the next mask change costs one crop forward): the crop's zero-padded border distorts both
    alike and cancels in the change, which alone would leave RRDBNet's 8 x 8 crop pixels off by
    up to 0.2 (docs/performance.md). Where ``plan.exact`` it is the masked crop itself, up to
    rounding. Outside the region shown the masked panel shows the target's output and the
    difference is zero. No effect or PSNR (they need the full frame)."""
    start, cpu = time.perf_counter(), time.thread_time()
    threads = _preview_threads(req, cache, plan)
    cached = cache.get((req.models_version, req.image_key), req.lr)
    if cached is None:
        raise RuntimeError("a preview needs the target's full output of its image (cached by the first render)")
    lr, enlarged, target_out, target_img, grad_t_full, p_t, p_ty = cached
    s = req.scale
    y0, x0, y1, x1 = plan.crop
    iy0, ix0, iy1, ix1 = plan.inner
    target_crop = _target_crop(req, cache, plan)
    params = cache.masked_params(req)
    t0 = time.perf_counter()
    change = super_resolve(_module(req), lr[..., y0:y1, x0:x1], s, params) - target_crop
    cache.crop_seconds_per_pixel = (time.perf_counter() - t0) / ((y1 - y0) * (x1 - x0))
    inner = (..., slice(iy0 * s, iy1 * s), slice(ix0 * s, ix1 * s))
    masked_out = target_out.clone()
    masked_out[inner] += change[..., (iy0 - y0) * s:(iy1 - y0) * s, (ix0 - x0) * s:(ix1 - x0) * s]
    masked_img = to_image(masked_out)
    grad_m = gradient_map(masked_out)[0, 0].numpy()
    return RenderResult(req, enlarged, target_img, masked_img, grad_t_full[0, 0].numpy(), grad_m, None, p_t, None,
                        time.perf_counter() - start, time.thread_time() - cpu, threads, time.perf_counter(),
                        masked_share=(y1 - y0) * (x1 - x0) / (lr.shape[-1] * lr.shape[-2]), preview=plan,
                        psnr_y_target=p_ty)


def speculative_render(req: RenderRequest, follows: RenderRequest, cache: OutputCache,
                       should_stop: Callable[[], bool], taken_over: Callable[[], bool]) -> RenderResult:
    """The render of ``req``, a guess of what comes after ``follows`` (the request on screen),
    computed aside. While it is only a guess it leaves one core to the UI thread (which is still
    putting the last result on screen; on two cores a second torch thread would fight it for a
    core and slow both) and is not measured; from the node where a real request takes it over it
    runs with the fastest count measured, and when a request took it over before it started, it
    is a render like any other (the tuner's count, measured)."""
    full = cache.threads.best(req.max_threads)
    spare = max(1, min(full, req.max_threads - 1))

    def between_nodes() -> bool:
        if taken_over() and torch.get_num_threads() != full:
            torch.set_num_threads(full)
        return should_stop()
    if taken_over():
        # (no settling: what is on screen is about to be this; the next run starts from it)
        return render(req, cache, should_stop, aside=True)
    torch.set_num_threads(spare)
    cache.settle(follows, between_nodes)
    if taken_over():
        return render(req, cache, should_stop, aside=True)
    return render(req, cache, between_nodes, threads=spare, aside=True)


def same_output(a: RenderRequest, b: RenderRequest) -> bool:
    return (a.image_key == b.image_key and a.lr is b.lr and a.models_version == b.models_version
            and a.mask.mode == b.mask.mode and a.mask.lam == b.mask.lam
            and np.array_equal(a.mask.indices, b.mask.indices))


#: the compare modes of the centre view's fourth panel, and how each is named on screen
COMPARE_MODES = {
    "split": "Before / after",
    "difference": "Difference ×4",
    "gradient": "Gradient map",
    "gradient_difference": "Gradient-map difference",
}
#: the scale of the difference view: |masked − target| of 1/DIFFERENCE_GAIN shows at full colour
DIFFERENCE_GAIN = 4.0


@dataclass(frozen=True)
class CompareView:
    """What the compare panel shows for one result: the image and its display levels, whether it
    is drawn through the colour map, and for those the colour bar's range and unit, in the
    image's own units (outputs in [0, 1])."""

    image: np.ndarray
    levels: tuple[float, float]
    coloured: bool
    bar_range: tuple[float, float] | None = None
    bar_unit: str = ""
    cut: int | None = None               # split: the column where the masked output begins


def _module(req: RenderRequest) -> torch.nn.Module:
    """``req.module``, which every request that reaches a forward has."""
    if req.module is None:
        raise RuntimeError("a forward needs a request with a model")
    return req.module


def compare_view(r: RenderResult, mode: str, split_percent: float) -> CompareView | None:
    """The compare panel's content for ``r`` in ``mode``; None without a masked output."""
    if r.masked is None or r.target is None or r.gradient_masked is None or r.gradient_target is None:
        return None   # (the gradient maps exist exactly when the outputs do)
    if mode == "split":
        cut = int(round(split_percent / 100 * r.masked.shape[1]))
        return CompareView(np.concatenate([r.target[:, :cut], r.masked[:, cut:]], axis=1), (0.0, 1.0), False,
                           cut=cut)
    if mode == "difference":
        diff = np.abs(r.masked - r.target).mean(axis=2)
        top = 1.0 / DIFFERENCE_GAIN
        return CompareView(np.clip(diff * DIFFERENCE_GAIN, 0, 1), (0.0, 1.0), True, (0.0, top),
                           "|masked − target|, mean of R, G, B (pixel values 0–1)")
    if mode == "gradient":
        g = r.gradient_masked
        top = max(float(g.max()), 1e-6)
        return CompareView(g, (0.0, top), True, (0.0, top), "gradient magnitude of the masked output (luma 0–1 per pixel)")
    if mode == "gradient_difference":
        d = np.abs(r.gradient_masked - r.gradient_target)
        top = max(float(d.max()), 1e-6)
        return CompareView(d, (0.0, top), True, (0.0, top), "|G(masked) − G(target)| (luma 0–1 per pixel)")
    raise ValueError(f"unknown compare mode {mode!r}")


@dataclass(frozen=True)
class ImageMetrics:
    """The centre view's metrics for one image of the list, target against masked output."""

    effect: float | None        # the paper's gradient-map effect (MSE x 1000); None without a mask
    psnr_target: float | None   # dB against the image's ground truth, when it has one
    psnr_masked: float | None
    psnr_y_target: float | None = None   # the same on the BT.601 luma (metrics.psnr_y)
    psnr_y_masked: float | None = None


def image_metrics(module: torch.nn.Module, params: dict | None, scale: int,
                  images: list[tuple[np.ndarray, np.ndarray | None]],
                  should_stop: Callable[[], bool] = lambda: False) -> list[ImageMetrics]:
    """Effect and PSNR of every (LR, GT or None) image: the target is ``module`` with its own
    weights, the masked output the same with ``params`` (None: no baseline, no masked output).
    Raises Cancelled between images once ``should_stop()``."""
    rows = []
    for lr, gt in images:
        if should_stop():
            raise Cancelled()
        if params is None:
            t = to_image(super_resolve(module, to_tensor(lr), scale))
            m = None
        else:
            t, m = target_and_masked(module, params, scale, lr)
        effect = None if m is None else maps_effect(gradient_map(to_tensor(t)), gradient_map(to_tensor(m)))
        if gt is not None and gt.shape == t.shape:
            p_t, p_ty = psnr_rgb_y(t, gt)
            p_m, p_my = (None, None) if m is None else psnr_rgb_y(m, gt)
            rows.append(ImageMetrics(effect, p_t, p_m, p_ty, p_my))
        else:
            rows.append(ImageMetrics(effect, None, None))
    return rows
