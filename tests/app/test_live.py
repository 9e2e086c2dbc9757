"""live.LatestTask: a new request supersedes the stale one; results arrive on the UI thread."""
from __future__ import annotations

import threading

from PySide6.QtCore import QThread

from faig_gui.app.live import LatestTask
from faig_gui.core.errors import FaigError


def test_latest_request_wins_and_stale_results_are_dropped(qtbot, qloop):
    task = LatestTask("test-latest")
    release = threading.Event()
    started = threading.Event()
    applied, threads, ran = [], [], []

    def slow():
        started.set()
        release.wait(10)
        return "stale"

    try:
        task.submit(slow, applied.append)
        qtbot.waitUntil(started.is_set, timeout=5000)        # the first job is running
        for n in range(5):                                   # these queue behind it
            task.submit(lambda n=n: ran.append(n) or f"job {n}", lambda r: (applied.append(r),
                                                            threads.append(QThread.currentThread())))
        assert not task.idle
        release.set()
        qtbot.waitUntil(lambda: task.idle, timeout=5000)
        assert applied == ["job 4"]                          # only the newest result is applied
        assert ran == [4]                                    # the superseded ones never ran
        assert threads == [QThread.currentThread()]          # ... on the UI thread
        assert task.completed == 1 and task.superseded == 5
    finally:
        release.set()
        task.close()


def test_a_user_error_in_a_job_is_reported_not_raised(qtbot, qloop):
    task = LatestTask("test-error")

    def bad():
        raise FaigError("that image is too small")

    try:
        with qtbot.waitSignal(task.failed, timeout=5000) as sig:
            task.submit(bad, lambda r: None)
        assert sig.args == ["that image is too small"]
        qtbot.waitUntil(lambda: task.idle, timeout=5000)
    finally:
        task.close()
