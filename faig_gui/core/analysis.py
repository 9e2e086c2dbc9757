"""Running an attribution method over an image set, as a generator of progress records.

Each image's attribution A(x_d) is computed once (and kept in an optional cache keyed by the
models, the method's settings and the image content), then reused for every ranking it enters.
The app wraps :func:`analyze` in a worker thread; the CLI drives it with a progress bar.
"""
from __future__ import annotations

import copy
import hashlib
import time
from dataclasses import dataclass, field
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from faig_gui.core.attribution import (METHODS, PathOptions, abs_change, discriminative_scores,
                                       faig_attribution, ig_attribution, mean_scores, random_scores)
from faig_gui.core.attribution import PathCheck
from faig_gui.core.dataset import AnalysisImage
from faig_gui.core.device import configure_precision, resolve_device
from faig_gui.core.errors import FaigError
from faig_gui.core.filters import FilterIndex
from faig_gui.core.paths import path_rule
from faig_gui.core.precision import choose_precision
from faig_gui.core.registry import LoadedModel, check_pair
from faig_gui.core.store import AttributionStore


@dataclass(frozen=True)
class AnalysisConfig:
    method: str = "faig"
    steps: int = 100
    rule: str = "riemann"
    device: str = "auto"
    precision: str = "fp32"
    chunk: int | None = None
    memory_budget: int | None = None
    seed: int = 0
    allow_tf32: bool = False

    def validate(self) -> None:
        if self.method not in METHODS:
            raise FaigError(f"unknown method '{self.method}'; use one of {', '.join(METHODS)}")
        if self.steps < 1:
            raise FaigError(f"steps must be at least 1, got {self.steps}")


@dataclass
class Progress:
    done: int
    total: int
    message: str
    elapsed: float
    skipped: int = 0   # steps of ``done`` taken from the store or the cache: no time spent on them

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate of the steps computed so far (resumed or cached images took
        no time: counting them made a resumed run's ETA far too short)."""
        computed = self.done - self.skipped
        return self.elapsed / computed * (self.total - self.done) if computed > 0 else None


@dataclass
class AnalysisResult:
    method: str
    steps: int
    rule: str
    precision: str
    architecture: str
    filter_count: int
    degradations: list[str]
    images: list[str]
    scores: dict[str, np.ndarray]
    device: str
    seconds: float
    # every image's attribution per degradation, kept while they fit PER_IMAGE_BYTES (empty beyond:
    # RRDBNet's 1.85 M filters x 2 degradations x 100 images would hold 3 GB); ``means`` always
    per_image: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)
    means: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    notes: dict = field(default_factory=dict)   # report.json extras: precision's reason, resumed images

    # FAIG's path check per degradation and image (None: taken from a store, not computed)
    convergence: dict[str, list[PathCheck | None]] = field(default_factory=dict, repr=False)

    def report(self) -> dict:
        extra = {"convergence_delta": convergence_report(self.convergence)} if self.convergence else {}
        return {**extra, "architecture": self.architecture, "filter_count": self.filter_count,
                "method": self.method, "steps": self.steps, "rule": self.rule,
                "precision": self.precision, "degradations": self.degradations,
                "images": self.images, "device": self.device, "seconds": round(self.seconds, 3),
                **self.notes}


#: a relative convergence delta above this says the path needs more steps
DELTA_WARN = 0.05
#: the per-image attributions an analysis keeps in memory at most (bytes); beyond, only their sums
PER_IMAGE_BYTES = 256 * 2 ** 20
PROGRESS_EVERY_S = 0.5   # on_progress within a path: at most this often (the dock redraws on each)


def convergence_report(convergence: dict[str, list[PathCheck | None]]) -> dict:
    """report.json's ``convergence_delta``: per degradation, one value per image (null where the
    image's attribution came from a store), and the largest relative figure."""
    def num(x: float | None) -> float | None:
        return None if x is None or not np.isfinite(x) else float(x)

    rel = [c.relative for v in convergence.values() for c in v if c is not None]
    return {"definition": "sum over every parameter of (baseline - target) * mean path gradient, "
                          "minus (L(baseline) - L(target)); relative = |delta| / |L(baseline) - L(target)|",
            "delta": {d: [num(c.delta if c else None) for c in v] for d, v in convergence.items()},
            "loss_change": {d: [num(c.loss_change if c else None) for c in v] for d, v in convergence.items()},
            "relative": {d: [num(c.relative if c else None) for c in v] for d, v in convergence.items()},
            "max_relative": num(max(rel)) if rel else None,
            "steps_suffice": bool(rel) and max(rel) <= DELTA_WARN}


def convergence_summary(convergence: dict[str, list[PathCheck | None]]) -> str:
    """One line for people: the largest relative delta and whether the steps suffice."""
    rel = [c.relative for v in convergence.values() for c in v if c is not None]
    if not rel:
        return ""
    worst = 100 * max(rel)
    # two significant digits, and no exponent for the large ones (a path of one step: ~100 %)
    text = f"convergence delta: max {worst:.2g} % of L(θ̄)−L(θ)" if worst < 10 else \
        f"convergence delta: max {worst:.0f} % of L(θ̄)−L(θ)"
    if worst <= 100 * DELTA_WARN:
        return text + " — steps suffice"
    return text + f" — above {100 * DELTA_WARN:g} %: use more steps (or the gauss-legendre rule)"


class AttributionCache:
    """Per-image attributions, so that re-ranking never recomputes what is known."""

    def __init__(self):
        self._store: dict[tuple, np.ndarray] = {}
        self.checks: dict[tuple, PathCheck] = {}   # FAIG's path check, beside its attribution
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> np.ndarray | None:
        value = self._store.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, key: tuple, value: np.ndarray) -> None:
        self._store[key] = value

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        self._store.clear()
        self.checks.clear()


def weights_key(state_dict: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha1()
    for name, value in state_dict.items():
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def analyze(baseline: LoadedModel, target: LoadedModel, images: Sequence[AnalysisImage],
            config: AnalysisConfig = AnalysisConfig(), cache: AttributionCache | None = None,
            should_stop: Callable[[], bool] | None = None,
            store: AttributionStore | None = None,
            on_progress: Callable[[Progress], None] | None = None) -> Iterator[Progress | AnalysisResult]:
    """Yield Progress records, then one AnalysisResult. Raises attribution.Cancelled on stop.

    ``on_progress`` (any thread may call it: the path's own thread) also gets a Progress record
    within each image's path, at most every PROGRESS_EVERY_S: one RRDBNet x4 path at 64 x 64 LR
    takes half an hour on two cores, and the yields come only between images.

    ``store``: each finished image's attributions are written there at once (and, resuming,
    taken from there instead of computed; core/store.py)."""
    config.validate()
    check_pair(baseline, target)
    start = time.perf_counter()
    index = FilterIndex.of_model(target)  # the module tells transposed/grouped convs apart
    device = resolve_device(config.device)
    configure_precision(config.allow_tf32)
    if not images and config.method in ("faig", "ig"):
        raise FaigError(f"{config.method} needs at least one analysis image")
    names = list(images[0].lr) if images else ["blur", "noise"]
    for img in images:
        if list(img.lr) != names:
            raise FaigError(f"{img.name}: has degradations {list(img.lr)}, the others {names}")

    precision = "fp32" if config.precision == "auto" else config.precision
    notes: dict = {}

    def result(scores, per_image=None):
        return AnalysisResult(config.method, config.steps, config.rule, precision,
                              target.arch_name, index.total, names, [i.name for i in images],
                              scores, str(device), time.perf_counter() - start, per_image or {}, notes=notes)

    if config.method == "abs":
        s = abs_change(baseline.state_dict, target.state_dict, index)
        yield result({d: s.copy() for d in names})
        return
    if config.method == "random":
        yield result({d: random_scores(index.total, config.seed + n) for n, d in enumerate(names)})
        return
    if config.method == "faig" and len(names) < 2:
        raise FaigError("FAIG compares degradations: give at least two (e.g. blur and noise)")

    total = len(images) * len(names) * config.steps
    done = 0
    models = (weights_key(baseline.state_dict), weights_key(target.state_dict))
    per_image: dict[str, list[np.ndarray]] = {d: [] for d in names}
    keep = len(images) * len(names) * index.total * 8 <= PER_IMAGE_BYTES
    sums = {d: np.zeros(index.total, dtype=np.float64) for d in names}
    convergence: dict[str, list[PathCheck | None]] = {d: [] for d in names}
    checks: dict[tuple, PathCheck] = cache.checks if cache is not None else {}
    # On the CPU the loaded module serves as it is (functional_call never writes to it). On a GPU
    # the analysis gets its own copy, so that live previews of the same model on the CPU never
    # race with a worker moving the shared module between devices, cancelled or not.
    module = target.module if device.type == "cpu" else copy.deepcopy(target.module).to(device)
    if images:
        precision, reason = choose_precision(config.precision, device, module, baseline.state_dict,
                                             target.state_dict, images[0].lr[names[0]], images[0].hr)
        notes.update(precision_requested=config.precision, precision_reason=reason)
    options = PathOptions(path_rule(config.rule, config.steps), device,
                          config.chunk, config.memory_budget, precision)
    if store is not None:
        store.bind({"baseline": models[0], "target": models[1], "method": config.method,
                    "steps": config.steps, "rule": config.rule, "precision": precision,
                    "degradations": names, "architecture": target.arch_name})

    skipped, message, last_told = 0, "", 0.0

    def on_steps(n: int) -> None:
        nonlocal done, last_told
        done += n
        now = time.perf_counter()
        if on_progress is not None and now - last_told >= PROGRESS_EVERY_S:
            last_told = now
            on_progress(Progress(done, total, message, now - start, skipped))

    for img in images:
        stored = store.get(img.name, img.key(), names) if store is not None else None
        fresh: dict[str, np.ndarray] = {}
        for d in names:
            key = (models, config.method, config.rule, config.steps, precision, img.key(), d)
            attribution = stored[d] if stored is not None else cache.get(key) if cache is not None else None
            message = f"{img.name} · {d}"
            if attribution is None:
                before = done
                if config.method == "faig":
                    attribution, checks[key] = faig_attribution(
                        module, baseline.state_dict, target.state_dict, img.lr[d], img.hr, index, options,
                        on_steps, should_stop, check=True)
                else:
                    if img.clean_lr is None:
                        raise FaigError(f"{img.name}: IG needs the clean LR image (--clean-lr DIR)")
                    attribution = ig_attribution(module, target.state_dict, img.clean_lr, img.lr[d],
                                                 index, options, on_steps, should_stop)
                done = before + config.steps
                if cache is not None:
                    cache.put(key, attribution)
            else:
                done += config.steps
                skipped += config.steps
            sums[d] += attribution
            if keep:
                per_image[d].append(attribution)
            if config.method == "faig":
                convergence[d].append(checks.get(key))
            fresh[d] = attribution
            yield Progress(done, total, message, time.perf_counter() - start, skipped)
        if store is not None and stored is None:
            store.put(img.name, img.key(), fresh)   # as soon as the image is done: a stop loses only it
    if store is not None:
        notes.update(stored=str(store.folder), resumed_images=list(store.loaded))
    means = {d: sums[d] / max(len(images), 1) for d in names}
    # (the scores are linear in the images' attributions: from their means, as under torchrun)
    scores = (discriminative_scores if config.method == "faig" else mean_scores)({d: [m] for d, m in means.items()})
    final = result(scores, per_image if keep else None)
    final.means = means
    final.convergence = convergence if config.method == "faig" else {}
    yield final


def run_to_end(gen: Iterator[Progress | AnalysisResult],
               on_progress: Callable[[Progress], None] | None = None) -> AnalysisResult:
    for item in gen:
        if isinstance(item, AnalysisResult):
            return item
        if on_progress is not None:
            on_progress(item)
    raise RuntimeError("analysis ended without a result")
