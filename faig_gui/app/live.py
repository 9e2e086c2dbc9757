"""Latest-wins background work on the qasync loop: live previews never block the UI thread.

A :class:`LatestTask` runs one job at a time in its own single-thread executor, awaited by an
asyncio task on the Qt event loop (qasync). The job is handed to the executor at once, from
``submit`` (waiting for the loop's next turn first cost ~25 ms of latency: the rest of the UI
thread's handlers plus a loop iteration). A new request cancels the pending one (a job not yet
started never runs; one already running finishes, but its result is dropped), so dragging a
slider computes at most the job in flight plus the newest request. Results are applied on the
UI thread, where the awaiting task resumes.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication

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
        self.completed = 0    # jobs whose result was applied
        self.superseded = 0   # jobs dropped because a newer request came

    @property
    def idle(self) -> bool:
        return self._task is None or self._task.done()

    def submit(self, job: Callable[[], Any], apply: Callable[[Any], None]) -> None:
        if self._closed:
            return
        loop = asyncio.get_running_loop() if _has_running_loop() else None
        if loop is None:
            raise RuntimeError("no asyncio loop: call live.install_loop(app) after creating the QApplication")
        if self._task is not None and not self._task.done():
            self._task.cancel()
            if self._future is not None:
                self._future.cancel()   # now, not at the loop's next turn: it must never start
            self.superseded += 1
        self._generation += 1
        was_idle = self._task is None or self._task.done()
        future = self._future = self._executor.submit(job)   # starts now when the worker is free
        self._task = loop.create_task(self._run(self._generation, future, apply))
        if was_idle:
            self.busyChanged.emit(True)

    async def _run(self, generation: int, future: "concurrent.futures.Future", apply: Callable[[Any], None]) -> None:
        try:
            # cancelling this task cancels the job too when it has not started
            result = await asyncio.wrap_future(future)
        except (asyncio.CancelledError, concurrent.futures.CancelledError):
            return
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
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)


def _has_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False
