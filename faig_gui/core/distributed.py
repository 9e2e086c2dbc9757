"""FAIG over an image set on several processes, GPUs or machines, with torch.distributed.

FAIG is a mean over images, so it splits exactly: each rank takes every world-th image
(``images[rank::world]``: no padding and no image twice, unlike a DistributedSampler, which
pads the last round with repeats), sums its images' attributions in float64, and the
per-degradation sums and image counts are all-reduced; the scores come from the global means.
Launch with torchrun (``torchrun --nproc-per-node N -m faig_gui analyze ...``); the process group
is set up from its environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK): NCCL on
GPUs (one device per local rank), gloo on CPUs. Progress counts go through the rendezvous's
key-value store (no collective, so ranks never wait for each other until the final sums).

A rank that fails, or is stopped, leaves the others' final all-reduce with an error (gloo: the
peer's connection closes; NCCL: torchrun stops the other workers, or the collective timeout
fires): they stop with a message, and rank 0 writes nothing.
"""
from __future__ import annotations

import copy
import os
import re
import threading
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist

from faig_gui.core.analysis import AnalysisConfig, AnalysisResult, Progress, analyze
from faig_gui.core.attribution import Cancelled, discriminative_scores, mean_scores
from faig_gui.core.dataset import AnalysisImage
from faig_gui.core.device import resolve_device
from faig_gui.core.errors import FaigError
from faig_gui.core.filters import FilterIndex
from faig_gui.core.precision import choose_precision
from faig_gui.core.registry import LoadedModel
from faig_gui.core.store import AttributionStore

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 1800.0   # a collective's limit, and how long a silent rank is waited for
HEARTBEAT_S = 2.0            # each rank's "alive" beat in the store
LOST_AFTER_S = 30.0          # a rank whose beat stopped this long is lost (at most the timeout)


@dataclass
class DistContext:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    backend: str
    control: dist.ProcessGroup | None   # a gloo group for the Python objects (None: the default group)
    kv: dist.Store              # the rendezvous's key-value store (progress counts)
    prefix: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    _beating: threading.Event | None = None

    def start_heartbeat(self) -> None:
        """A thread that counts up this rank's beat in the store: a rank computing one long image
        is alive, a killed one falls silent (torch ops release the GIL, so it beats meanwhile)."""
        self._beating = threading.Event()
        key, stop = f"{self.prefix}/beat/{self.rank}", self._beating

        def beat() -> None:
            while not stop.wait(HEARTBEAT_S):
                try:
                    self.kv.add(key, 1)
                except Exception:  # noqa: BLE001 - the store is gone: the waiting side reports it
                    return
        threading.Thread(target=beat, name="faig-heartbeat", daemon=True).start()

    def wait_for_all(self, should_stop: Callable[[], bool] | None = None) -> None:
        """Wait, without a collective, until every rank has finished its images: the ranks'
        shares can differ by one image, which may take hours, longer than any collective's
        timeout should be. A rank whose beat stops (killed, machine gone) ends the wait with a
        message; so does Ctrl-C."""
        self.kv.set(f"{self.prefix}/finished/{self.rank}", "1")
        lost_after = min(LOST_AFTER_S, self.timeout_s)
        seen: dict[int, tuple[int, float]] = {}
        while True:
            try:
                waiting = [r for r in range(self.world) if not self.kv.check([f"{self.prefix}/finished/{r}"])]
                if not waiting:
                    return
                now = time.monotonic()
                for r in waiting:
                    beats = self.kv.add(f"{self.prefix}/beat/{r}", 0)
                    if r not in seen or seen[r][0] != beats:
                        seen[r] = (beats, now)
                    elif now - seen[r][1] > lost_after:
                        raise FaigError(f"rank {self.rank}: rank {r} stopped answering (no sign of life for "
                                        f"{lost_after:.0f} s: killed, or its machine is gone); nothing was written")
            except (RuntimeError, dist.DistError) as exc:   # the store's host (rank 0 / torchrun) is gone
                raise FaigError(f"rank {self.rank}: lost the rendezvous store while waiting for the other ranks "
                                f"({str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__}); "
                                f"nothing was written") from None
            if should_stop is not None and should_stop():
                raise Cancelled()
            time.sleep(0.5)

    def publish(self, done: int) -> None:
        """This rank's finished path steps, for rank 0's progress bar."""
        try:
            self.kv.set(f"{self.prefix}/done/{self.rank}", str(done))
        except Exception:   # noqa: BLE001 - progress is a display: never let it fail the run
            pass

    def steps_done(self) -> int:
        """Every rank's published path steps (what rank 0's bar shows)."""
        keys = [f"{self.prefix}/done/{r}" for r in range(self.world)]
        total = 0
        for k in keys:
            try:
                if self.kv.check([k]):
                    total += int(self.kv.get(k))
            except Exception:  # noqa: BLE001 - the store went away: the run is ending anyway
                pass
        return total

    def close(self) -> None:
        if self._beating is not None:
            self._beating.set()
        if dist.is_initialized():
            dist.destroy_process_group()


def world_size_from_env() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise FaigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number") from None


def from_environment(device_name: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S) -> DistContext | None:
    """Join the process group torchrun describes, or None when this is a single process."""
    world = world_size_from_env()
    if world <= 1:
        return None
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise FaigError(f"WORLD_SIZE={world} but {', '.join(missing)} not set: launch with torchrun")
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise FaigError(f"local rank {local} has no GPU (this machine has {torch.cuda.device_count()}): "
                            f"use --nproc-per-node {torch.cuda.device_count()} or fewer")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = timedelta(seconds=timeout_s)
    dist.init_process_group(backend, timeout=timeout)
    control = dist.new_group(backend="gloo", timeout=timeout) if backend == "nccl" else None
    kv = dist.distributed_c10d._get_default_store()
    prefix = f"faig-gui/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    ctx = DistContext(rank, world, local, device, backend, control, kv, prefix, timeout_s)
    ctx.start_heartbeat()
    return ctx


def shard(items: Sequence[T], rank: int, world: int) -> list[T]:
    """Every world-th item from ``rank`` on: the shards cover the items once each."""
    return list(items[rank::world])


def _collective(ctx: DistContext, what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except (RuntimeError, dist.DistError) as exc:
        text = str(exc).strip()
        first = re.sub(r"^\[[^\]]*\]\s*", "", text.splitlines()[0]) if text else type(exc).__name__
        raise FaigError(f"rank {ctx.rank}: another rank stopped or failed while {what} ({first[:160]}); "
                        f"nothing was written") from None


def analyze_distributed(ctx: DistContext, baseline: LoadedModel, target: LoadedModel,
                        images: Sequence[AnalysisImage], config: AnalysisConfig = AnalysisConfig(),
                        store: AttributionStore | None = None,
                        should_stop: Callable[[], bool] | None = None) -> Iterator[Progress | AnalysisResult]:
    """This rank's share of ``analyze``: Progress records of its own images, then on every rank
    one AnalysisResult with the scores over all images (only rank 0 should write it)."""
    start = time.perf_counter()
    config = replace(config, device=str(ctx.device))
    if config.method in ("abs", "random"):   # no images, nothing to split: every rank agrees at once
        yield from analyze(baseline, target, images, config, should_stop=should_stop)
        return
    if not images:
        raise FaigError(f"{config.method} needs at least one analysis image")
    names = list(images[0].lr)
    choice: list[Any] = [None, None]   # (precision, reason), from rank 0
    if ctx.rank == 0:   # one precision for all ranks: rank 0 measures, the others follow
        module = target.module if ctx.device.type == "cpu" else copy.deepcopy(target.module).to(ctx.device)
        choice = list(choose_precision(config.precision, ctx.device, module, baseline.state_dict,
                                       target.state_dict, images[0].lr[names[0]], images[0].hr))
    _collective(ctx, "agreeing on the precision",
                lambda: dist.broadcast_object_list(choice, src=0, group=ctx.control))
    precision, reason = choice
    mine = shard(images, ctx.rank, ctx.world)
    ctx.publish(0)
    index = FilterIndex.from_state_dict(target.state_dict)
    sums = np.zeros((len(names), index.total), dtype=np.float64)
    resumed: list[str] = []
    checks: dict[str, list] = {d: [] for d in names}
    if mine:
        result = None
        for item in analyze(baseline, target, mine, replace(config, precision=precision),
                            should_stop=should_stop, store=store):
            if isinstance(item, AnalysisResult):
                result = item
            else:
                ctx.publish(item.done)
                yield item
        assert result is not None
        for n, d in enumerate(names):
            sums[n] += result.means[d] * len(mine)
        resumed = list(result.notes.get("resumed_images", []))
        checks = {d: list(result.convergence.get(d, [None] * len(mine))) for d in names}
    seconds = time.perf_counter() - start
    ctx.wait_for_all(should_stop)
    reduce_device = ctx.device if ctx.backend == "nccl" else torch.device("cpu")
    packed = torch.from_numpy(np.concatenate([sums.ravel(), [float(len(mine))]])).to(reduce_device)
    _collective(ctx, "summing the attributions", lambda: dist.all_reduce(packed))
    totals = packed.cpu().numpy()
    count = int(round(totals[-1]))
    if count != len(images):
        raise FaigError(f"rank {ctx.rank}: the ranks analysed {count} images, not {len(images)}: "
                        f"did every rank get the same image set?")
    means = {d: totals[n * index.total:(n + 1) * index.total] / count for n, d in enumerate(names)}
    per_rank: list[Any] = [None] * ctx.world
    mine_record = {"rank": ctx.rank, "images": [i.name for i in mine], "seconds": round(seconds, 3),
                   "device": str(ctx.device), "resumed_images": resumed}
    _collective(ctx, "gathering the per-rank records",
                lambda: dist.all_gather_object(per_rank, mine_record, group=ctx.control))
    # each image's path check (the convergence delta), back in the images' order: rank r holds
    # images r, r + world, ... (shard)
    every: list = [None] * ctx.world
    _collective(ctx, "gathering the convergence checks",
                lambda: dist.all_gather_object(every, checks, group=ctx.control))
    convergence: dict[str, list] = {d: [None] * len(images) for d in names}
    for r, rank_checks in enumerate(every):
        for d in names:
            for j, check in enumerate(rank_checks[d]):
                convergence[d][r + j * ctx.world] = check
    # one mean per degradation in, so the functions' mean over images is the global mean itself
    scores = (discriminative_scores if config.method == "faig" else mean_scores)({d: [m] for d, m in means.items()})
    notes = {"precision_requested": config.precision, "precision_reason": reason, "world_size": ctx.world,
             "backend": ctx.backend, "ranks": per_rank}
    if store is not None:
        notes["stored"] = str(store.folder)
    final = AnalysisResult(config.method, config.steps, config.rule, precision, target.arch_name, index.total,
                           names, [i.name for i in images], scores, str(ctx.device),
                           time.perf_counter() - start, {}, means, notes)
    final.convergence = convergence if config.method == "faig" else {}
    yield final


def _weighted_mean(parts: list[tuple[Any, int]]) -> Any:
    first = parts[0][0]
    if isinstance(first, dict):
        return {k: _weighted_mean([(p[k], n) for p, n in parts]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(_weighted_mean([(p[i], n) for p, n in parts]) for i in range(len(first)))
    return sum(float(v) * n for v, n in parts) / sum(n for _, n in parts)


def sharded_means(ctx: DistContext, items: Sequence[T], measure: Callable[[list[T]], Any]) -> Any:
    """``measure(all items)`` computed as shares: each rank measures its shard (``measure``
    returns means over the items it gets, as nested dicts/tuples of numbers), the shares are
    gathered and averaged with their item counts as weights; every rank gets the result."""
    mine = shard(items, ctx.rank, ctx.world)
    local = (measure(mine), len(mine)) if mine else None
    parts: list = [None] * ctx.world
    _collective(ctx, "gathering the held-out measurements",
                lambda: dist.all_gather_object(parts, local, group=ctx.control))
    return _weighted_mean([p for p in parts if p is not None])
