"""Soak test of the real window (offscreen): a long FAIG session with masks toggled and images
dropped over and over while the analysis runs; memory and threads are sampled as it goes.

Each cycle (about four a second): move the top-k slider, toggle a few filters by hand, drop two
images on the window (a real QDropEvent), wait for them to be added, then remove them again, so
the session's own content stays the same size and any growth is a leak. FAIG runs on the
worker thread the whole time: when a run ends the attribution cache is cleared and a new run
starts. Autosave runs every 10 s (to Qt's test-mode location, not the user's).

Prints one JSON object: samples of RSS and thread counts over time, the RSS slope after the
warm-up (MB per minute), thread counts before the window, during the soak and after it closed.

    QT_QPA_PLATFORM=offscreen python bench/soak.py [--seconds 300] [--steps 50] [--threads 2]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QEventLoop, QMimeData, QPointF, QStandardPaths, Qt, QThread, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def running_qthreads() -> list[str]:
    found = []
    for obj in gc.get_objects():
        try:
            if isinstance(obj, QThread) and obj is not QThread.currentThread() and obj.isRunning():
                found.append(obj.objectName() or "QThread")
        except RuntimeError:
            continue
    return found


def make_inputs(root: Path, seed: int = 0):
    """An MSRResNet 16/2 x2 pair, 4 analysis HR crops 64x64, 6 LR images 48x48 to drop."""
    import skimage.data
    from faig_gui.core.checkpoint import save_checkpoint
    from faig_gui.core.imageio import write_image
    from faig_gui.core.registry import default_registry
    torch.manual_seed(seed)
    base = default_registry().get("msrresnet").new_state_dict(num_feat=16, num_block=2, scale=2)
    gen = torch.Generator().manual_seed(seed + 1)
    target = {k: v + 0.2 * (v.std() if v.numel() > 1 else 0.01) * torch.randn(v.shape, generator=gen)
              for k, v in base.items()}
    save_checkpoint(root / "baseline.pth", base)
    save_checkpoint(root / "target.pth", target)
    photo = skimage.data.astronaut().astype(np.float32) / 255
    hr = {f"hr{n}.png": photo[64 * n: 64 * n + 64, 100: 164].copy() for n in range(4)}
    drops = []
    for n in range(6):
        p = root / "drops" / f"drop{n}.png"
        write_image(p, photo[300 + 20 * n: 348 + 20 * n, 200: 248])
        drops.append(p)
    return root / "baseline.pth", root / "target.pth", hr, drops


def drop(widget, paths) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    centre = widget.rect().center()
    enter = QDragEnterEvent(centre, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    QApplication.sendEvent(widget, QDropEvent(QPointF(centre), Qt.DropAction.CopyAction, mime,
                                              Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))


def pump(app: QApplication, until, timeout: float = 30.0) -> bool:
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        if until():
            return True
    return False


def slope_mb_per_min(samples: list[dict]) -> float:
    t = np.array([s["t"] for s in samples])
    y = np.array([s["rss_mb"] for s in samples])
    if len(t) < 3 or np.ptp(t) == 0:
        return float("nan")
    return float(np.polyfit(t, y, 1)[0] * 60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--steps", type=int, default=50, help="FAIG path steps per run")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--sample-every", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rnd = random.Random(args.seed)

    app = QApplication.instance() or QApplication(["soak"])
    QStandardPaths.setTestModeEnabled(True)
    app.setOrganizationName("faig-gui")
    app.setApplicationName("faig-gui-soak")
    from faig_gui.app.live import install_loop
    from faig_gui.app.main_window import MainWindow, recovery_path
    from faig_gui.app.session_model import SessionModel
    from faig_gui.core.attribution import abs_change
    install_loop(app)

    threads_before = {"python": threading.active_count(), "os": os_threads()}
    work = Path(tempfile.mkdtemp(prefix="faig-soak-"))
    baseline, target, hr, drops = make_inputs(work, args.seed)

    window = MainWindow(SessionModel(), restore_layout=False, autosave_ms=10_000)
    window.show()
    model = window.model
    assert model.load_pair(str(baseline), str(target))
    s = model.session
    model.set_scores({d: abs_change(s.baseline.state_dict, s.target.state_dict, s.index) for d in ("blur", "noise")})
    s.set_analysis_hr(hr, {"kind": "hr", "names": list(hr)})
    settings = s.settings
    settings.steps = args.steps
    model.set_settings(settings)
    model.add_images([str(drops[0])])
    pump(app, lambda: window.image_view.live.idle)
    keep = len(s.images)

    counts = {"cycles": 0, "drops": 0, "images_added": 0, "images_removed": 0, "mask_changes": 0,
              "filter_toggles": 0, "runs_started": 0, "runs_finished": 0, "autosaves": 0, "errors": 0}
    window.runner.finished.connect(lambda _r: counts.__setitem__("runs_finished", counts["runs_finished"] + 1))
    model.errorOccurred.connect(lambda _m: counts.__setitem__("errors", counts["errors"] + 1))
    real_autosave = window.autosave

    def counted_autosave() -> bool:
        ok = real_autosave()
        counts["autosaves"] += int(ok)
        return ok
    window.autosave_timer.timeout.disconnect()
    window.autosave_timer.timeout.connect(counted_autosave)

    samples = []
    start = time.perf_counter()
    next_sample = 0.0
    while (now := time.perf_counter() - start) < args.seconds:
        if not window.runner.running:
            s.cache.clear()   # a fresh run computes again (the cache would answer at once)
            if window.run_analysis():
                counts["runs_started"] += 1
        # masks: the top-k slider and a few filters by hand
        window.masking_dock.k_slider.setValue(rnd.randint(0, 100))
        model.toggle_filters(rnd.sample(range(s.index.total), 5))
        counts["mask_changes"] += 1
        counts["filter_toggles"] += 5
        # drop two images, wait until they are in, then take them out again
        pair = rnd.sample(drops, 2)
        drop(window, pair)
        counts["drops"] += 1
        if pump(app, lambda: len(s.images) >= keep + 2, timeout=30):
            counts["images_added"] += 2
            model.set_current(len(s.images) - 1)
            pump(app, lambda: window.image_view.live.idle, timeout=30)
        while len(s.images) > keep:
            model.remove_image(len(s.images) - 1)
            counts["images_removed"] += 1
        pump(app, lambda: False, timeout=0.2)
        counts["cycles"] += 1
        if now >= next_sample:
            gc.collect()
            samples.append({"t": round(now, 2), "rss_mb": round(rss_mb(), 1),
                            "python_threads": threading.active_count(), "os_threads": os_threads(),
                            "images": len(s.images), "analysis_running": window.runner.running})
            next_sample += args.sample_every

    during = {"python_max": max(x["python_threads"] for x in samples), "os_max": max(x["os_threads"] for x in samples)}
    window.runner.cancel()
    pump(app, lambda: not window.runner.running, timeout=60)
    window._set_clean()
    window.close()
    window.shutdown()
    window.deleteLater()
    pump(app, lambda: False, timeout=1.0)
    gc.collect()
    after = {"python": threading.active_count(), "os": os_threads(), "qthreads_running": running_qthreads(),
             "python_names": sorted(t.name for t in threading.enumerate())}
    recovery_path().unlink(missing_ok=True)

    warm = [x for x in samples if x["t"] >= args.seconds * 0.25]
    half = len(warm) // 2
    result = {
        "bench": "soak", "seconds": args.seconds, "faig_steps": args.steps, "torch_threads": args.threads,
        "model": "MSRResNet 16 features, 2 blocks, x2", "analysis_images": len(hr), "counts": counts,
        "rss_mb": {"first": samples[0]["rss_mb"], "warm_start": warm[0]["rss_mb"] if warm else None,
                   "end": samples[-1]["rss_mb"], "max": max(x["rss_mb"] for x in samples),
                   "warm_first_half_median": statistics.median(x["rss_mb"] for x in warm[:half]) if half else None,
                   "warm_second_half_median": statistics.median(x["rss_mb"] for x in warm[half:]) if half else None,
                   "slope_after_warmup_mb_per_min": round(slope_mb_per_min(warm), 3)},
        "threads": {"before_window": threads_before, "during_max": during, "after_close": after},
        "leaked_threads": bool(after["qthreads_running"]) or after["python"] > threads_before["python"],
        "samples": samples,
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
