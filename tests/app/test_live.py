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


def stoppable(started: threading.Event, steps: list, result: str, n_steps: int = 2000):
    """A job of many short steps that checks should_stop between them (as the render does)."""
    from faig_gui.core.attribution import Cancelled

    def job(should_stop, taken_over):
        started.set()
        for n in range(n_steps):
            if should_stop():
                steps.append(("stopped", n))
                raise Cancelled()
            if taken_over() and ("taken", ) not in steps:
                steps.append(("taken", ))
            threading.Event().wait(0.005)
        steps.append(("done", result))
        return result
    return job


def test_a_real_request_stops_the_speculation_between_its_steps(qtbot, qloop):
    task = LatestTask("test-speculate")
    started, steps, kept, applied = threading.Event(), [], [], []
    try:
        assert task.speculate("guess", stoppable(started, steps, "guessed"), kept.append)
        qtbot.waitUntil(started.is_set, timeout=5000)
        assert task.speculating == "guess" and task.idle       # a speculation is not a request
        task.submit(lambda: "real", applied.append)
        qtbot.waitUntil(lambda: task.idle and bool(applied), timeout=5000)
        assert applied == ["real"] and kept == []
        assert len(steps) == 1 and steps[0][0] == "stopped"    # it stopped, it did not run out
        assert task.speculating is None and task.speculations_stopped == 1
    finally:
        task.close()


def test_a_speculation_waits_for_the_real_job_and_is_kept(qtbot, qloop):
    task = LatestTask("test-speculate-kept")
    release, order, kept, applied = threading.Event(), [], [], []
    try:
        task.submit(lambda: (release.wait(10), order.append("real"), "real")[-1], applied.append)
        task.speculate("guess", lambda should_stop, taken_over: (order.append("guess"), "guessed")[-1], kept.append)
        release.set()
        qtbot.waitUntil(lambda: bool(kept), timeout=5000)
        assert order == ["real", "guess"] and applied == ["real"] and kept == ["guessed"]
        assert task.speculated == 1 and task.speculating is None
    finally:
        release.set()
        task.close()


def test_a_request_for_the_speculated_state_takes_it_over(qtbot, qloop):
    task = LatestTask("test-adopt")
    started, steps, kept, applied = threading.Event(), [], [], []
    try:
        task.speculate(3, stoppable(started, steps, "three", n_steps=100), kept.append)
        qtbot.waitUntil(started.is_set, timeout=5000)
        assert not task.adopt(lambda key: key == 4, applied.append)    # another state: no
        assert task.adopt(lambda key: key == 3, applied.append)
        assert not task.idle                                         # now it is a request
        task.stop_speculation()                                      # only a newer request stops it
        qtbot.waitUntil(lambda: task.idle, timeout=30000)
        assert applied == ["three"] and steps == [("taken", ), ("done", "three")]   # it knew
        # a newer request does stop a taken-over speculation, and its result is not applied
        started.clear()
        steps.clear()
        applied.clear()
        task.speculate(5, stoppable(started, steps, "five"), kept.append)
        qtbot.waitUntil(started.is_set, timeout=5000)
        assert task.adopt(lambda key: key == 5, applied.append)
        task.submit(lambda: "six", applied.append)
        qtbot.waitUntil(lambda: task.idle and bool(applied), timeout=5000)
        assert applied == ["six"] and steps[-1][0] == "stopped"
    finally:
        task.close()
