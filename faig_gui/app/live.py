"""Latest-wins background work on the qasync loop: live previews never block the UI thread.

A :class:`LatestTask` runs one job at a time in its own single-thread executor, awaited by an
asyncio task on the Qt event loop (qasync). The job is handed to the executor at once, from
``submit``: waiting for the loop's next turn first would add the rest of the UI thread's
handlers plus a loop iteration to the latency (docs/performance.md, "Figures behind the code").
A new request cancels the pending one (a job not yet started never runs; one already running
finishes, but its result is dropped), so dragging a slider computes at most the job in flight
plus the newest request. Results are applied on the UI thread, where the awaiting task resumes.

Besides the latest request, the slot runs at most one *speculation*: a job the caller expects to
be asked for next (``speculate``). It takes the executor only when the real jobs before it are
done, and is stopped cooperatively (its ``should_stop`` turns True, checked between steps) as soon
as a real request comes, so it delays that request by one step at most. A real request for the
very state being speculated takes the speculation over instead (``adopt``): its head start counts.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication

from faig_gui.core.attribution import Cancelled
from faig_gui.core.errors import FaigError

log = logging.getLogger(__name__)


def install_loop(app: QApplication) -> asyncio.AbstractEventLoop:
    """The qasync loop for ``app``, created once, registered as running while Qt runs.

    ``already_running=True`` lets the same code path serve ``app.exec()`` in the window and the
    event processing of pytest-qt; asyncio code finds it with ``asyncio.get_running_loop()``.
    """
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    import qasync
    loop = qasync.QEventLoop(app, already_running=True)
    asyncio.set_event_loop(loop)
    return loop


@dataclass
class _Speculation:
    key: Any                            # what the caller speculates (matched in adopt)
    future: concurrent.futures.Future
    stop: threading.Event
    taken: threading.Event              # set when a real request takes it over (the job may see it)
    adopted: bool = False               # a real request took it over: only a newer one stops it


class LatestTask(QObject):
    """One latest-wins job slot. ``submit(job, apply)`` runs ``job()`` off the UI thread and
    ``apply(result)`` on it, unless a newer submit came first."""

    busyChanged = Signal(bool)
    failed = Signal(str)

    def __init__(self, name: str, parent: QObject | None = None):
        super().__init__(parent)
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"faig-{name}")
        self._task: asyncio.Task | None = None
        self._future: concurrent.futures.Future | None = None
        self._generation = 0
        self._closed = False
        self._speculation: _Speculation | None = None
        self._pending_stop: threading.Event | None = None   # the pending job's, when it can stop
        self.completed = 0    # jobs whose result was applied
        self.superseded = 0   # jobs dropped because a newer request came
        self.speculated = 0   # speculations that ran to the end (kept or taken over)
        self.speculations_stopped = 0

    @property
    def idle(self) -> bool:
        return self._task is None or self._task.done()

    @property
    def speculating(self) -> Any:
        """The key of the speculation queued or running (not taken over), else None."""
        spec = self._speculation
        if spec is None or spec.adopted or spec.stop.is_set() or spec.future.done():
            return None
        return spec.key

    @property
    def speculation_pending(self) -> bool:
        """A speculation is queued, running, or done with its result not yet handed to ``keep``
        (which may queue the next one): False once speculating has ended for now."""
        spec = self._speculation
        return spec is not None and not spec.adopted

    def submit(self, job: Callable[[], Any], apply: Callable[[Any], None]) -> None:
        if self._closed:
            return
        loop = _loop()
        self._stop_speculation(adopted_too=True)
        was_idle = self._drop_pending()
        future = self._future = self._executor.submit(job)   # starts now when the worker is free
        self._task = loop.create_task(self._run(self._generation, future, apply))
        if was_idle:
            self.busyChanged.emit(True)

    def _drop_pending(self) -> bool:
        """Cancel the pending job (its result will not be applied); True when there was none."""
        stop, self._pending_stop = self._pending_stop, None
        if self._task is not None and not self._task.done():
            self._task.cancel()
            if self._future is not None:
                self._future.cancel()   # now, not at the loop's next turn: it must never start
            if stop is not None:
                stop.set()              # a taken-over speculation stops at its next step
            self.superseded += 1
            self._generation += 1
            return False
        self._generation += 1
        return True

    def supersede(self) -> None:
        """Nothing pending is wanted any more (the caller showed a newer result itself)."""
        self._stop_speculation(adopted_too=True)
        if not self._drop_pending():
            self.busyChanged.emit(False)

    def speculate(self, key: Any, job: Callable[[Callable[[], bool], Callable[[], bool]], Any],
                  keep: Callable[[Any], None]) -> bool:
        """Queue ``job(should_stop, taken_over)`` behind the real jobs; ``keep(result)`` runs on
        the UI thread when it completes. A speculation already queued is replaced (stopped). The
        job raises ``Cancelled`` when ``should_stop()`` turns True; ``taken_over()`` turns True
        when a real request waits for its result (it may then use more resources)."""
        if self._closed:
            return False
        loop = _loop()
        self._stop_speculation()
        stop, taken = threading.Event(), threading.Event()
        future = self._executor.submit(lambda: job(stop.is_set, taken.is_set))
        spec = self._speculation = _Speculation(key, future, stop, taken)

        def ended(_future) -> None:   # (on the worker thread, or here when cancelled unstarted)
            try:
                loop.call_soon_threadsafe(self._keep, spec, keep)
            except RuntimeError:
                pass   # the loop has closed: the window is gone
        future.add_done_callback(ended)
        return True

    def adopt(self, matches: Callable[[Any], bool], apply: Callable[[Any], None]) -> bool:
        """When the queued or running speculation is for what ``matches`` accepts, make it the
        latest request: its result goes to ``apply`` as a submitted job's would."""
        spec = self._speculation
        if self._closed or spec is None or spec.stop.is_set() or spec.future.cancelled() or not matches(spec.key):
            return False
        if spec.future.done() and spec.future.exception() is not None:
            return False
        loop = _loop()
        spec.adopted = True
        spec.taken.set()
        was_idle = self._drop_pending()
        self._future, self._pending_stop = spec.future, spec.stop
        self._task = loop.create_task(self._run(self._generation, spec.future, apply))
        if was_idle:
            self.busyChanged.emit(True)
        return True

    def stop_speculation(self) -> None:
        """Stop the speculation (between its steps), unless a real request has taken it over."""
        self._stop_speculation()

    def _stop_speculation(self, adopted_too: bool = False) -> None:
        spec = self._speculation
        if spec is None or (spec.adopted and not adopted_too):
            return
        self._speculation = None
        if not spec.future.done():
            spec.stop.set()
            spec.future.cancel()   # it never starts when it has not yet
            self.speculations_stopped += 1

    def _keep(self, spec: _Speculation, keep: Callable[[Any], None]) -> None:
        """On the UI thread, once the speculation's job has ended (posted by its future's done
        callback rather than awaited in a task: a task still waiting when the window closes
        mid-speculation would be destroyed pending, which asyncio reports as an error)."""
        if self._speculation is spec and not spec.adopted:
            self._speculation = None
        future = spec.future
        if future.cancelled():
            return
        exc = future.exception()
        if isinstance(exc, Cancelled):
            return
        if exc is not None:
            # a speculation is nobody's request: the real one reports its own failure
            log.debug("%s speculation failed", self.name, exc_info=exc)
            return
        self.speculated += 1
        if not self._closed and not spec.stop.is_set():
            keep(future.result())

    async def _run(self, generation: int, future: concurrent.futures.Future, apply: Callable[[Any], None]) -> None:
        try:
            # cancelling this task cancels the job too when it has not started
            result = await asyncio.wrap_future(future)
        except (asyncio.CancelledError, concurrent.futures.CancelledError, Cancelled):
            return   # Cancelled: a taken-over speculation that a newer request stopped
        except FaigError as exc:
            if generation == self._generation:
                self.failed.emit(str(exc))
        except Exception as exc:
            log.error("%s job failed:\n%s", self.name, traceback.format_exc())
            if generation == self._generation:
                self.failed.emit(f"{self.name} failed: {type(exc).__name__}: {exc}")
        else:
            if generation == self._generation and not self._closed:
                apply(result)
                self.completed += 1
        finally:
            if generation == self._generation:
                self.busyChanged.emit(False)

    def close(self) -> None:
        """Drop pending work and wait for the job in flight (the executor's thread ends)."""
        self._closed = True
        self._stop_speculation(adopted_too=True)
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)


def _loop() -> asyncio.AbstractEventLoop:
    if not _has_running_loop():
        raise RuntimeError("no asyncio loop: call live.install_loop(app) after creating the QApplication")
    return asyncio.get_running_loop()


def _has_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False
