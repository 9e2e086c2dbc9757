"""Long jobs on worker threads: a core generator driven by a QObject moved to a QThread
(JobRunner, shared by the analysis and the plots dock's effect curves); FAIG is one of them.

The worker gets a snapshot of what it needs (models, analysis images, configuration, cache) when
it starts and touches nothing else; results come back to the UI thread through queued signals
and are applied there. Cancel is a flag checked between path chunks. A cancelled or failed run
changes nothing: the previous scores stay.
"""
from __future__ import annotations

import logging
import os
import threading
import traceback
from dataclasses import dataclass
from collections.abc import Callable, Iterator, Sequence

import torch
from PySide6.QtCore import QObject, QThread, Signal, Slot

from faig_gui.app.session_model import SessionModel
from faig_gui.core.analysis import AnalysisConfig, AnalysisResult, AttributionCache, Progress, analyze
from faig_gui.core.attribution import Cancelled
from faig_gui.core.dataset import AnalysisImage
from faig_gui.core.errors import FaigError
from faig_gui.core.registry import LoadedModel
from faig_gui.core.store import AttributionStore, images_made

log = logging.getLogger(__name__)


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def long_job_threads() -> int:
    """torch threads of a long computation (FAIG, effect curves): half the cores, so that the
    live renders and the UI thread keep the other half."""
    return max(1, cores() // 2)


def live_threads(long_jobs_running: int) -> int:
    """torch threads of a live job (masked render, prediction): all cores when nothing long
    runs (a render at 128x128 LR is ~7.6 GFLOP: one core alone misses the interactive budget),
    half of them while a long computation holds the other half."""
    return long_job_threads() if long_jobs_running else cores()


@dataclass(frozen=True)
class AnalysisJob:
    """Everything one run reads, copied on the UI thread before the thread starts."""

    baseline: LoadedModel
    target: LoadedModel                 # with a private copy of the module (see job())
    images: Sequence[AnalysisImage]
    config: AnalysisConfig
    cache: AttributionCache | None
    session_models: tuple               # the session's (baseline, target) when the run started
    store: AttributionStore | None = None   # per-image attributions on disk (--analysis-out)


class GeneratorWorker(QObject):
    """Drives a core generator on its thread: progress records, then one ``result_type`` item.

    ``steps(should_stop)`` makes the generator; cancel is a flag it checks between steps. A
    cancel, a user error or a bug each end with their own signal, then ``done``; nothing
    partial is emitted. The analysis runner and the plots dock's effect computation share it.
    """

    progress = Signal(object)   # the generator's progress record
    finished = Signal(object)   # the result
    failed = Signal(str)
    cancelled = Signal()
    done = Signal()             # always the last signal of a run

    def __init__(self, steps: Callable[[Callable[[], bool]], Iterator], result_type: type, what: str):
        super().__init__()
        self._steps, self._result_type, self._what = steps, result_type, what
        self._stop = threading.Event()

    def cancel(self) -> None:
        """Thread-safe: the run stops at the generator's next step."""
        self._stop.set()

    @Slot()
    def run(self) -> None:
        # torch's thread count is per OS thread (OpenMP): this one's, on this worker's thread
        torch.set_num_threads(long_job_threads())
        try:
            for item in self._steps(self._stop.is_set):
                if self._stop.is_set():
                    raise Cancelled()
                if isinstance(item, self._result_type):
                    self.finished.emit(item)
                else:
                    self.progress.emit(item)
        except Cancelled:
            self.cancelled.emit()
        except FaigError as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a bug must not kill the window; the log has the traceback
            log.error("%s failed:\n%s", self._what, traceback.format_exc())
            self.failed.emit(f"{self._what} failed: {type(exc).__name__}: {exc}")
        finally:
            self.done.emit()


class JobRunner(QObject):
    """One long job at a time on a QThread of its own: the lifecycle the analysis and the
    effect curves share. ``start`` wraps a core generator in a :class:`GeneratorWorker`; the
    signals come back on the UI thread; ``ended`` fires once the thread is gone (after
    ``finished``, ``failed`` or ``cancelled``). While a job runs the session model hears
    ``busyChanged`` (the live renders then leave it half the cores)."""

    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    ended = Signal()

    def __init__(self, model: SessionModel, name: str, parent: QObject | None = None):
        super().__init__(parent)
        self.model, self.name = model, name
        self._thread: QThread | None = None
        self._worker: GeneratorWorker | None = None
        self._busy_text = ""

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, steps: Callable[[Callable[[], bool]], Iterator], result_type: type, what: str,
              busy_text: str) -> bool:
        """Runs ``steps(should_stop)`` on a new thread; False when a job of this runner runs."""
        if self.running:
            return False
        worker = GeneratorWorker(steps, result_type, what)
        thread = QThread(self)
        thread.setObjectName(self.name)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.progress.connect(self.progress)
        worker.finished.connect(self.finished)
        worker.failed.connect(self.failed)
        worker.cancelled.connect(self.cancelled)
        worker.done.connect(thread.quit)
        thread.finished.connect(self._on_thread_finished)
        self._thread, self._worker, self._busy_text = thread, worker, busy_text
        self.model.busyChanged.emit(True, busy_text)
        thread.start()
        return True

    def cancel(self) -> bool:
        """Thread-safe stop at the job's next step; whether one was running."""
        if self._worker is None:
            return False
        self._worker.cancel()
        return True

    def shutdown(self, timeout_ms: int = 30000) -> None:
        """Cancel and wait for the thread: no thread outlives its owner."""
        thread = self._thread
        if thread is None:
            return
        self.cancel()
        thread.quit()
        if not thread.wait(timeout_ms):
            log.warning("the %s thread did not stop within %d ms", self.name, timeout_ms)
        self._on_thread_finished()

    def _on_thread_finished(self) -> None:
        thread, worker = self._thread, self._worker
        if thread is None:
            return
        thread.wait()
        self._thread = self._worker = None
        if worker is not None:
            worker.deleteLater()
        thread.deleteLater()
        self.model.busyChanged.emit(False, self._busy_text)
        self.ended.emit()


class AnalysisRunner(QObject):
    """Starts, cancels and cleans up analysis runs for one SessionModel; one run at a time."""

    started = Signal()
    progress = Signal(object)        # Progress
    finished = Signal(object)        # AnalysisResult (already applied to the model)
    cancelled = Signal()
    failed = Signal(str)
    runningChanged = Signal(bool)

    def __init__(self, model: SessionModel, parent: QObject | None = None):
        super().__init__(parent)
        self.model = model
        self.jobs = JobRunner(model, "faig-analysis", self)
        self.jobs.progress.connect(self._on_progress)
        self.jobs.finished.connect(self._on_finished)
        self.jobs.failed.connect(self._on_failed)
        self.jobs.cancelled.connect(self._on_cancelled)
        self.jobs.ended.connect(self._on_ended)
        self._job: AnalysisJob | None = None
        self.last_progress: Progress | None = None
        #: a folder whose attributions/ keeps each analysed image's attributions and gives back
        #: those of earlier runs with the same settings (`faig-gui --analysis-out DIR`)
        self.store_folder: str | None = None

    @property
    def running(self) -> bool:
        return self.jobs.running

    def job(self) -> AnalysisJob:
        """The snapshot a run works on; FaigError says what is missing."""
        s = self.model.session
        if s.baseline is None or s.target is None:   # not s.ready, spelled out for the type checker
            raise FaigError("open a baseline and a target checkpoint before running the analysis")
        cfg = s.settings.config()
        if cfg.method in ("faig", "ig") and not s.analysis_images:
            raise FaigError("no analysis images: choose a folder of HR images in the Analysis panel")
        # FAIG swaps the module's parameters while it runs (functional_call): give the worker its
        # own module so that previews, evaluation or prediction on other threads never see them
        store = None
        if self.store_folder and cfg.method in ("faig", "ig"):
            made = (images_made(s.scale, "hr", s.settings.degradations)   # make_degraded's seed 0
                    if s.analysis_source.get("kind") in ("hr", "hr_folder") else images_made(s.scale, "folders"))
            store = AttributionStore(self.store_folder, resume=True, extra=made, recompute_mismatched=True)
        return AnalysisJob(s.baseline, s.target.private_copy(), list(s.analysis_images), cfg, s.cache,
                           (s.baseline, s.target), store)

    def start(self) -> bool:
        if self.running:
            self.model.statusMessage.emit("an analysis is already running")
            return False
        job = self.model.guarded(self.job)
        if job is None:
            return False
        self._job, self.last_progress = job, None
        what = f"{job.config.method.upper()} · {len(job.images)} images · {job.config.steps} steps"
        self.jobs.start(lambda should_stop: analyze(job.baseline, job.target, job.images, job.config, job.cache,
                                                    should_stop=should_stop, store=job.store,
                                                    # within a path too (a thread-safe emit)
                                                    on_progress=self.jobs.progress.emit),
                        AnalysisResult, "the analysis", what)
        self.runningChanged.emit(True)
        self.started.emit()
        return True

    def cancel(self) -> None:
        if self.jobs.cancel():
            self.model.statusMessage.emit("cancelling the analysis…")

    def shutdown(self, timeout_ms: int = 30000) -> None:
        """Cancel and wait for the thread (window closing): no thread outlives the window."""
        self.jobs.shutdown(timeout_ms)

    # -- slots on the UI thread ------------------------------------------------------------
    def _on_progress(self, p: Progress) -> None:
        self.last_progress = p
        self.progress.emit(p)

    def _on_finished(self, result: AnalysisResult) -> None:
        s, job = self.model.session, self._job
        if job is None or s.baseline is not job.session_models[0] or s.target is not job.session_models[1]:
            # the pair changed while the run went on: these scores describe other weights
            self.model.errorOccurred.emit("the models changed during the analysis: its results were discarded; "
                                          "run it again")
            self.failed.emit("models changed")
            return
        self.model.set_result(result)
        self.model.statusMessage.emit(
            f"{result.method.upper()} done in {result.seconds:.1f} s on {result.device}: "
            f"{len(result.images)} images, {', '.join(result.degradations)}")
        self.finished.emit(result)

    def _on_failed(self, message: str) -> None:
        self.model.errorOccurred.emit(message)
        self.failed.emit(message)

    def _on_cancelled(self) -> None:
        self.model.statusMessage.emit("analysis cancelled; the previous results are kept")
        self.cancelled.emit()

    def _on_ended(self) -> None:
        self._job = None
        self.runningChanged.emit(False)
