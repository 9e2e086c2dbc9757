"""Faults while writing: a killed save, a full disk, a cancelled or failing analysis. Whatever
the user had before stays as it was, and no half-written file is left under the real name."""
from __future__ import annotations

import errno
import hashlib
import os
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from faig_gui.core import results
from faig_gui.core.analysis import AnalysisConfig, AnalysisResult, analyze
from faig_gui.core.attribution import Cancelled
from faig_gui.core.dataset import make_degraded
from faig_gui.core.degradations import paper_degradations
from faig_gui.core.errors import FaigError
from faig_gui.core.imageio import write_image
from faig_gui.core.session import Session

from core.robustness_helpers import tiny_pair

ROOT = Path(__file__).resolve().parents[2]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _session_with_work(folder: Path, n_images: int = 2) -> Session:
    baseline, target = tiny_pair(folder)
    s = Session()
    s.load_pair(baseline, target)
    for n in range(n_images):
        p = folder / f"img{n}.png"
        write_image(p, np.random.default_rng(n).random((12, 10, 3)).astype(np.float32))
        s.add_image(p)
    rng = np.random.default_rng(7)
    s.set_scores({"blur": rng.random(s.index.total), "noise": rng.random(s.index.total)})
    s.set_top_mask("blur", 5.0)
    return s


class _WrappedFile:
    """A real file object with ``write`` to be replaced; the rest (and ``with``) goes to it."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()


class _FullDisk(_WrappedFile):
    """A file object that takes ``room`` bytes and then fails like a full disk (ENOSPC)."""

    def __init__(self, real, room: int):
        super().__init__(real)
        self.room = room

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.room:
            self.real.write(data[: self.room])
            self.real.flush()
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.real.write(data)


def _fill_disk_after(monkeypatch, module, room: int) -> None:
    real_open = open
    monkeypatch.setattr(module, "open", lambda *a, **k: _FullDisk(real_open(*a, **k), room), raising=False)


# -- session save --------------------------------------------------------------------------------
def test_session_save_on_a_full_disk_keeps_the_previous_file(tmp_path, monkeypatch):
    s = _session_with_work(tmp_path)
    path = tmp_path / "work.faig"
    s.save(path)
    before = _digest(path)
    s.set_top_mask("noise", 10.0)
    _fill_disk_after(monkeypatch, results, 1000)
    with pytest.raises(FaigError) as info:
        s.save(path)
    assert "No space left on device" in str(info.value) and str(path) in str(info.value)
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.glob("work.faig*")) == ["work.faig"]  # no .part left
    monkeypatch.undo()
    again = Session.open(path)
    assert again.mask_settings.degradation == "blur" and again.mask_settings.proportion == 5.0


def test_session_save_killed_mid_write_keeps_the_previous_file(tmp_path):
    s = _session_with_work(tmp_path)
    path = tmp_path / "work.faig"
    s.save(path)
    before = _digest(path)
    first = Session.open(path)
    # a second process saves a changed session to the same file and is killed half-way through
    script = textwrap.dedent(f"""
        import builtins, sys, time
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]
        from faig_gui.core import results
        from faig_gui.core.session import Session
        s = Session.open({str(path)!r})
        s.set_top_mask("noise", 10.0)
        class Slow:
            def __init__(self, real): self.real = real
            def write(self, data):
                self.real.write(bytes(data)[: len(data) // 2]); self.real.flush()
                print("HALF", flush=True); time.sleep(120)
            def __getattr__(self, n): return getattr(self.real, n)
            def __enter__(self): return self
            def __exit__(self, *e): self.real.close()
        results.open = lambda *a, **k: Slow(builtins.open(*a, **k))
        s.save({str(path)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "HALF"
        parts = list(tmp_path.glob(path.name + ".*.part"))    # the writer's own part
        assert len(parts) == 1 and parts[0].stat().st_size > 0   # really half-way
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert _digest(path) == before
    reopened = Session.open(path)
    assert reopened.mask_settings == first.mask_settings
    assert np.array_equal(reopened.mask.indices, first.mask.indices)
    assert [i.name for i in reopened.images] == ["img0.png", "img1.png"]
    # the next save replaces the file and removes the dead writer's leftover part
    reopened.set_top_mask("noise", 10.0)
    reopened.save(path)
    assert Session.open(path).mask_settings.degradation == "noise"
    assert list(tmp_path.glob(path.name + "*.part")) == []


# -- one file, two writers -----------------------------------------------------------------------
def test_two_writers_of_one_file_at_once_do_not_mix(tmp_path, monkeypatch):
    # writer A stops half-way; writer B writes the whole file meanwhile; then A finishes. With one
    # shared temporary name B truncated A's part and A's second half landed in B's file
    path = tmp_path / "calibration.npz"
    first, second = b"A" * 100_000, b"B" * 60_000
    half_written, go_on = threading.Event(), threading.Event()
    real_open = open

    class Pausing(_WrappedFile):
        def write(self, data):
            if bytes(data[:1]) == b"A":
                self.real.write(data[: len(data) // 2])
                self.real.flush()
                half_written.set()
                assert go_on.wait(20)
                return self.real.write(data[len(data) // 2:])
            return self.real.write(data)

    monkeypatch.setattr(results, "open", lambda *a, **k: Pausing(real_open(*a, **k)), raising=False)
    errors = []
    writer_a = threading.Thread(target=lambda: _catch(errors, results.atomic_write_bytes, path, first))
    writer_a.start()
    try:
        assert half_written.wait(20)
        results.atomic_write_bytes(path, second)       # B, while A is half-way
        assert path.read_bytes() == second
        assert len(list(tmp_path.glob("calibration.npz.*.part"))) == 1   # A's part: A is alive
    finally:
        go_on.set()
        writer_a.join(20)
    assert errors == []
    assert path.read_bytes() == first                  # the last rename wins, whole
    assert list(tmp_path.glob("*.part")) == []


def _catch(errors: list, fn, *args) -> None:
    try:
        fn(*args)
    except Exception as exc:   # (reported by the test, not lost in the thread)
        errors.append(exc)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_a_written_file_gets_the_permissions_of_any_new_file(tmp_path):
    # (a private temporary file renamed into place would make exports unreadable to the group)
    old = os.umask(0o022)
    try:
        results.atomic_write_bytes(tmp_path / "blur_index.txt", b"1\n2\n")
        write_image(tmp_path / "masked.png", np.zeros((4, 4, 3), np.float32))
    finally:
        os.umask(old)
    assert (tmp_path / "blur_index.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "masked.png").stat().st_mode & 0o777 == 0o644


def test_parts_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    path = tmp_path / "work.faig"
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(done.stdout)                         # a process that has ended
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = tmp_path / f"work.faig.{dead_pid}.x1.part"
        live = tmp_path / f"work.faig.{running.pid}.x2.part"
        old_style = tmp_path / "work.faig.part"          # an earlier version's name, no process id
        fresh_old_style = tmp_path / "other.faig.part"   # another file's: not this write's business
        for p in (dead, live, old_style, fresh_old_style):
            p.write_bytes(b"half")
        hour_ago = time.time() - results.PART_STALE_S - 60
        os.utime(old_style, (hour_ago, hour_ago))
        results.atomic_write_bytes(path, b"whole")
        assert path.read_bytes() == b"whole"
        assert not dead.exists() and not old_style.exists()
        assert live.exists() and fresh_old_style.exists()
    finally:
        running.kill()
        running.wait(30)


# -- export --------------------------------------------------------------------------------------
def test_export_on_a_full_disk_gives_a_message_and_no_half_file(tmp_path, monkeypatch):
    out = tmp_path / "export"
    scores = {"blur": np.arange(5000, dtype=np.float64), "noise": np.arange(5000, 0, -1, dtype=np.float64)}
    _fill_disk_after(monkeypatch, results, 2000)
    with pytest.raises(FaigError) as info:
        results.write_analysis(out, scores, {"method": "faig"})
    msg = str(info.value)
    assert "No space left on device" in msg and "scores.npz" in msg and "\n" not in msg
    assert list(out.iterdir()) == []  # neither scores.npz nor scores.npz.part


def test_export_on_a_full_disk_keeps_the_previous_export(tmp_path, monkeypatch):
    out = tmp_path / "export"
    old = {"blur": np.arange(10, dtype=np.float64)}
    results.write_analysis(out, old, {"method": "faig"})
    before = {p.name: _digest(p) for p in out.iterdir()}
    _fill_disk_after(monkeypatch, results, 100)
    with pytest.raises(FaigError):
        results.write_analysis(out, {"blur": np.arange(10, 0, -1, dtype=np.float64)}, {"method": "faig"})
    monkeypatch.undo()
    assert {p.name: _digest(p) for p in out.iterdir()} == before


def test_image_export_on_a_full_disk(tmp_path, monkeypatch):
    dest = tmp_path / "masked.png"
    write_image(dest, np.zeros((8, 8, 3), np.float32))
    before = _digest(dest)
    _fill_disk_after(monkeypatch, results, 50)   # (images are written by results.atomic_write_bytes)
    with pytest.raises(FaigError, match="cannot write the image: No space left on device"):
        write_image(dest, np.random.default_rng(0).random((64, 64, 3)))
    assert _digest(dest) == before and sorted(p.name for p in tmp_path.iterdir()) == ["masked.png"]


def test_cli_on_a_real_file_size_limit(tmp_path):
    """The kernel refuses the write (RLIMIT_FSIZE gives EFBIG, as a full disk gives ENOSPC)."""
    baseline, _ = tiny_pair(tmp_path)
    lr = tmp_path / "lr.png"
    write_image(lr, np.random.default_rng(0).random((40, 40, 3)))
    out = tmp_path / "out"
    out.mkdir()
    (out / "lr.png").write_bytes(b"previous export")

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    proc = subprocess.run([sys.executable, "-m", "faig_gui", "run", "--checkpoint", str(baseline),
                           "--input", str(lr), "--out", str(out)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=limit, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "cannot write" in proc.stderr and "File too large" in proc.stderr
    assert (out / "lr.png").read_bytes() == b"previous export"
    assert sorted(p.name for p in out.iterdir()) == ["lr.png"]


# -- analysis faults -----------------------------------------------------------------------------
def _analysis_inputs(tmp_path):
    s = _session_with_work(tmp_path, n_images=0)
    rng = np.random.default_rng(3)
    images = make_degraded({"a.png": rng.random((16, 16, 3)).astype(np.float32)}, 2, paper_degradations())
    return s, images


def test_cancel_mid_analysis_keeps_previous_results(tmp_path):
    s, images = _analysis_inputs(tmp_path)
    before = {k: v.copy() for k, v in s.scores.items()}
    steps = iter(range(1000))
    with pytest.raises(Cancelled):
        for item in analyze(s.baseline, s.target, images, AnalysisConfig("faig", 4, chunk=1), s.cache,
                            should_stop=lambda: next(steps) >= 3):
            if isinstance(item, AnalysisResult):
                s.set_result(item)
    assert next(steps) == 4  # stopped at the fourth check: mid-way through the first image
    assert set(s.scores) == set(before) and all(np.array_equal(s.scores[k], before[k]) for k in before)


def test_an_error_inside_the_analysis_keeps_previous_results(tmp_path, monkeypatch):
    s, images = _analysis_inputs(tmp_path)
    before = {k: v.copy() for k, v in s.scores.items()}
    from faig_gui.core import analysis

    def broken(*_a, **_k):
        raise RuntimeError("simulated failure inside the attribution")
    monkeypatch.setattr(analysis, "faig_attribution", broken, raising=False)
    with pytest.raises(RuntimeError, match="simulated"):
        for item in analyze(s.baseline, s.target, images, AnalysisConfig("faig", 4), None):
            if isinstance(item, AnalysisResult):
                s.set_result(item)
    assert all(np.array_equal(s.scores[k], before[k]) for k in before)
