"""The window's responsiveness, measured through the real MainWindow (offscreen).

- ``ui_stall_ms``: while FAIG runs on the analysis worker thread, a 5 ms QTimer on the UI
  thread records the gaps between its ticks; the longest gap beyond 5 ms is how long the UI
  thread could not react (target < 50 ms).
- ``mask_to_screen_ms``: the masking dock's top-k slider is moved (1 %, 2 %, ... 10 %, then
  1, 3, 5, 10, 1 %, one change at a time, the next as soon as the last is drawn); each time,
  from the slider change to the end of the centre view's paint that puts the new masked output
  on screen (the render signal, then Qt's own next paint of the view) (target < 150 ms for the demo pair at
  128x128 LR). Each step's ``source`` says whether it was rendered (``render``), took over the prefetch of that state in
  progress (``taken over``) or was shown from a kept prefetch (``kept``). Three settings, with
  the window's own switches (as the View menu sets them):
  - ``mask_to_screen_no_prefetch_ms``: Prefetch the next mask step off: every step a render;
  - ``mask_to_screen_guess_only_ms``: prefetch on, Fill the top-k slider's stops off;
  - ``mask_to_screen_filled_ms``: both on (the window's defaults), the sequence started once the
    fill of the stops around 1 % has ended (``fill_seconds``: how long that took), as after a
    look at the image before scrubbing.
  Each runs twice (off, guess, filled, filled, guess, off) after a first sequence, the window as
  it opens with nothing waited for, reported on its own as ``mask_to_screen_first_sequence_ms``
  (right after opening the render thread's tuner still tries its thread counts). The figures
  pool both runs of a setting.
- ``mask_to_screen_paused_ms``: the same sequence with ``--pause-ms`` between a change on screen
  and the next change (someone looking at each step), with and without prefetch (the fill off).
- ``filter_click_to_screen_ms``: single filters clicked in the filter grid (the mouse through
  the grid's own click handling) of a middle layer and of conv_hr, each click from the press to
  the new masked output drawn; ``nodes_rerun`` is what the incremental forward ran for it.

The pair is the bundled demo (resources/demo) when it is built, else a generated pair of the
same architecture (MSRResNet 32 features, 8 blocks, x2) with 128x128 LR inputs; the JSON says
which.

    QT_QPA_PLATFORM=offscreen python bench/bench_ui.py [--faig-steps 10] [--threads 2] [--pause-ms 300]
    QT_QPA_PLATFORM=offscreen python bench/bench_ui.py --pair rrdbnet   # or srvgg: bench_ui_pairs.py

The window's settings (the prefetch preference, its geometry) go to a temporary folder, not to
the user's.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QEventLoop, QPointF, QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

SLIDER_STEPS = [2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 3, 5, 10, 1]   # percent, from 1 %
CLICK_LAYERS = ("body.4.conv2.weight", "conv_hr.weight")     # the middle of the demo net; late
CLICKS = 8


def demo_like(root: Path):
    """A demo-shaped folder: MSRResNet 32/8 x2, 4 analysis HR crops 128x128, 2 held-out
    256x256 HR images with blur and noise 128x128 LR inputs, |θ − θ̄| scores."""
    from faig_gui.core.attribution import abs_change
    from faig_gui.core.checkpoint import save_checkpoint
    from faig_gui.core.dataset import make_degraded, write_image_set
    from faig_gui.core.degradations import paper_degradations
    from faig_gui.core.demo import DemoFiles
    from faig_gui.core.filters import FilterIndex
    from faig_gui.core.imageio import write_image
    from faig_gui.core.registry import default_registry
    from faig_gui.core.results import write_scores
    import skimage.data

    arch = default_registry().get("msrresnet")
    torch.manual_seed(0)
    base = arch.new_state_dict(num_feat=32, num_block=8, scale=2)
    targ = {k: v + 0.02 * torch.randn_like(v) for k, v in base.items()}
    save_checkpoint(root / "baseline.pth", base)
    save_checkpoint(root / "target.pth", targ)
    s = abs_change(base, targ, FilterIndex.from_state_dict(targ))
    write_scores(root / "scores.npz", {"blur": s, "noise": -s})
    astro = skimage.data.astronaut().astype(np.float32) / 255
    for n, (y, x) in enumerate([(40, 60), (200, 200), (300, 100), (100, 300)]):
        write_image(root / "analysis" / "GT" / f"a{n}.png", astro[y:y + 128, x:x + 128])
    coffee = skimage.data.coffee().astype(np.float32) / 255
    hr = {"coffee.png": coffee[100:356, 150:406], "astronaut.png": astro[0:256, 200:456]}
    write_image_set(root / "heldout", make_degraded(hr, 2, paper_degradations(), seed=1), clean=False)
    return DemoFiles(root / "baseline.pth", root / "target.pth", root / "scores.npz",
                     root / "analysis", root / "heldout")


def wait(app: QApplication, cond, timeout_s: float = 120.0) -> None:
    """Process events until ``cond()``, sleeping in between as the window's event loop does.

    (Polling processEvents in a loop would keep a core busy: on two cores that halves what the
    render thread's second torch thread gets, and the render measures twice as slow.)"""
    end = time.monotonic() + timeout_s
    keep_awake = QTimer()
    keep_awake.start(20)   # wake at least every 20 ms to check cond and the timeout
    try:
        while not cond():
            if time.monotonic() > end:
                raise TimeoutError("the window did not get there in time")
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents | QEventLoop.ProcessEventsFlag.WaitForMoreEvents)
    finally:
        keep_awake.stop()


def cpu_seconds() -> tuple[float, float] | None:
    """(busy CPU seconds of the whole machine, CPU seconds of this process) so far; None off Linux.
    Their difference over the run is what other processes took from these cores meanwhile."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        tick = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / tick   # all but idle and iowait
        t = os.times()
        return busy, t.user + t.system
    except (OSError, ValueError, IndexError):
        return None


def stats(values) -> dict:
    return {"median": round(statistics.median(values), 1), "max": round(max(values), 1),
            "all": [round(v, 1) for v in values]}


PAINT_MS: list[float] = []   # each paint of the centre view that put a new output on screen
_PAINTED = {"canvas": None, "hook": None}


def watch_paints(view) -> None:
    """Call ``_PAINTED["hook"](ms)`` after each paint of ``view``'s canvas (pyqtgraph's
    GraphicsView.paintEvent, wrapped once for that one widget), with the paint's own time."""
    import pyqtgraph as pg
    _PAINTED["canvas"] = view.canvas
    if getattr(pg.GraphicsView.paintEvent, "_bench_ui", False):
        return
    original = pg.GraphicsView.paintEvent

    def paint_event(self, ev):
        t = time.perf_counter()
        try:
            return original(self, ev)
        finally:
            hook = _PAINTED["hook"]
            if hook is not None and self is _PAINTED["canvas"]:
                hook((time.perf_counter() - t) * 1000)
    paint_event._bench_ui = True
    pg.GraphicsView.paintEvent = paint_event


def on_screen_after(app: QApplication, view, action) -> float:
    """ms from ``action()`` to the end of the centre view's first paint after the new masked
    output was put into it (the render signal): the moment it is on screen, painted by Qt as it
    would be for a user. (Earlier versions forced a repaint at the render signal: Qt then painted
    the view a second time at its own next update, ~6 ms of UI thread that landed on the next
    render of a tight sequence.)"""
    done = {"rendered": False, "t": None}

    def on_rendered():
        done["rendered"] = True
        view.canvas.viewport().update()   # (scheduled, merged with the update the images asked for)

    def painted(ms: float):
        if done["rendered"] and done["t"] is None:
            done["t"] = time.perf_counter()
            PAINT_MS.append(ms)

    view.rendered.connect(on_rendered)
    _PAINTED["hook"] = painted
    try:
        t0 = time.perf_counter()
        action()
        wait(app, lambda: done["t"] is not None)
    finally:
        view.rendered.disconnect(on_rendered)
        _PAINTED["hook"] = None
    return (done["t"] - t0) * 1000


def pause(app: QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    wait(app, lambda: time.monotonic() >= end)


def slider_sequence(app: QApplication, window, pause_s: float = 0.0, settle: bool = False) -> dict:
    """The top-k slider from 1 % through SLIDER_STEPS, one change on screen at a time; the raw
    figures (see summary). ``settle``: first wait until the background fill of the slider's
    stops has ended (its time is ``fill_s``)."""
    view = window.image_view
    slider = window.masking_dock.k_slider
    if slider.value() != 10:
        on_screen_after(app, view, lambda: slider.setValue(10))
    wait(app, lambda: view.live.idle)
    fill_s = None
    if settle:
        t = time.perf_counter()
        wait(app, lambda: view.live.idle and not view.rendering_ahead)
        fill_s = time.perf_counter() - t
    pause(app, max(pause_s, 0.3))
    latencies, sources, ui_ms, render_ms, render_cpu_ms, threads = [], [], [], [], [], []
    for k in SLIDER_STEPS:
        hits, taken = view.prefetch_hits, view.prefetch_taken
        ui = {}

        def change(k=k, ui=ui):
            t = time.perf_counter()
            slider.setValue(k * 10)
            ui["ms"] = (time.perf_counter() - t) * 1000   # handlers run on the UI thread
        latencies.append(on_screen_after(app, view, change))
        ui_ms.append(ui["ms"])
        source = ("kept" if view.prefetch_hits > hits else "taken over" if view.prefetch_taken > taken
                  else "render")
        sources.append(source)
        if source == "render":
            render_ms.append(view.result.compute_seconds * 1000)
            render_cpu_ms.append(view.result.cpu_seconds * 1000)
            threads.append(view.result.threads)
        if pause_s:
            pause(app, pause_s)
    return {"latencies": latencies, "sources": sources, "ui_ms": ui_ms, "render_ms": render_ms,
            "render_cpu_ms": render_cpu_ms, "threads": threads, "fill_s": fill_s}


def summary(sequences: list[dict]) -> dict:
    """Figures over the steps of one or more slider sequences taken together."""
    def all_of(key):
        return [v for seq in sequences for v in seq[key]]
    out = stats(all_of("latencies"))
    out["sequence_medians"] = [round(statistics.median(seq["latencies"]), 1) for seq in sequences]
    out["source"] = all_of("sources")
    fills = [seq["fill_s"] for seq in sequences if seq.get("fill_s") is not None]
    if fills:
        out["fill_seconds"] = [round(f, 2) for f in fills]   # waited for the stops before the sequence
    out["ui_thread_ms"] = round(statistics.median(all_of("ui_ms")), 1)   # the change's handlers (a kept one's apply too)
    if all_of("render_ms"):
        out["render_wall_ms"] = round(statistics.median(all_of("render_ms")), 1)   # steps rendered for real
        out["render_cpu_ms"] = round(statistics.median(all_of("render_cpu_ms")), 1)
        # the torch threads each rendered step ran with (the render thread's tuner: core/threads.py)
        out["render_threads"] = {str(n): all_of("threads").count(n) for n in sorted(set(all_of("threads")))}
    return out


def filter_clicks(app: QApplication, window, layer: str, clicks: int = CLICKS) -> dict:
    """Left clicks on single cells of ``layer``'s filter grid, each toggling one filter."""
    grid = window.filter_dock
    view = window.image_view
    grid.show()
    grid.raise_()
    window.model.select_layer(layer)
    wait(app, lambda: grid.plot.isVisible() and grid.layer is not None and grid.layer.name == layer)
    wait(app, lambda: view.live.idle)
    inc = view._cache._incremental[1]

    def click(out: int, inp: int) -> None:
        scene = grid.viewbox.mapViewToScene(QPointF(inp + 0.5, out + 0.5))
        QTest.mouseClick(grid.plot.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         grid.plot.mapFromScene(scene))

    # one click first: the render before left other weights in other layers
    on_screen_after(app, view, lambda: click(0, 0))
    wait(app, lambda: view.live.idle)
    pause(app, 0.2)
    latencies, nodes = [], []
    for n in range(1, clicks + 1):
        before = len(window.model.session.mask)
        latencies.append(on_screen_after(app, view, lambda n=n: click(n, (3 * n) % grid.layer.in_channels)))
        assert len(window.model.session.mask) != before, "the click did not toggle a filter"
        wait(app, lambda: view.live.idle)
        # (from the result: by now the fill of the slider's stops may have run the forward aside)
        share = view.result.masked_share
        nodes.append(None if inc is None or share is None else int(round(share * len(inc.nodes))))
        pause(app, 0.2)
    out = stats(latencies)
    out["nodes_rerun"] = sorted(set(nodes))
    out["nodes_total"] = len(inc.nodes) if inc is not None else None
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faig-steps", type=int, default=10, help="FAIG path steps for the stall run")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--no-freeze", action="store_true",
                    help="leave the start-up objects to the garbage collector (see launch.py)")
    ap.add_argument("--idle-seconds", type=float, default=10.0,
                    help="first measure the stall with nothing running for this long")
    ap.add_argument("--glibc-defaults", action="store_true",
                    help="leave glibc's allocator thresholds as they are (faig-gui sets them: core/allocator.py)")
    ap.add_argument("--pause-ms", type=float, default=300.0,
                    help="the pause between changes of the paused slider sequence")
    ap.add_argument("--pair", choices=["demo", "rrdbnet", "srvgg"], default="demo",
                    help="rrdbnet / srvgg: live masking on a real-size pair with random weights, preview then "
                         "full frame, and the demo in the same run (bench_ui_pairs.py); demo: the figures above")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from faig_gui.core.allocator import keep_freed_memory
    allocator_tuned = False if args.glibc_defaults else keep_freed_memory()   # as faig-gui does at start

    run_start, cpu_start = time.monotonic(), cpu_seconds()
    tmp = tempfile.TemporaryDirectory()
    # the window's settings and recovery file in a folder of this run, not the user's
    os.environ["XDG_CONFIG_HOME"] = str(Path(tmp.name) / "config")
    os.environ["XDG_DATA_HOME"] = str(Path(tmp.name) / "data")
    app = QApplication.instance() or QApplication(["bench_ui"])
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(Path(tmp.name) / "config"))
    from faig_gui.app.launch import demo_session, freeze_startup_objects
    from faig_gui.app.live import install_loop
    from faig_gui.app.main_window import MainWindow
    from faig_gui.core.demo import demo_files
    from faig_gui.core.errors import FaigError
    install_loop(app)

    if args.pair != "demo":
        import bench_ui_pairs

        def demo():
            try:
                return demo_files(), "bundled demo"
            except FaigError:
                return demo_like(Path(tmp.name)), "generated MSRResNet 32/8 x2 (demo not built)"
        result = bench_ui_pairs.run_pair(app, args.pair, wait, watch_paints, _PAINTED, slider_sequence, summary, demo)
        cpu_end = cpu_seconds()
        if cpu_start and cpu_end:
            result["other_processes_cpu_cores"] = round(
                ((cpu_end[0] - cpu_start[0]) - (cpu_end[1] - cpu_start[1])) / (time.monotonic() - run_start), 2)
        print(json.dumps(result, indent=2))
        tmp.cleanup()
        return 0

    try:
        files, pair = demo_files(), "bundled demo"
    except FaigError:
        files, pair = demo_like(Path(tmp.name)), "generated MSRResNet 32/8 x2 (demo not built)"
    window = MainWindow(restore_layout=False)
    window.show()
    view = window.image_view
    watch_paints(view)
    window.model.replace_session(demo_session(files))
    wait(app, lambda: view.result is not None and view.live.idle)
    s = window.model.session
    lr_shape = s.current_image().lr.shape

    # -- mask change -> masked output on screen ------------------------------------------------
    # with prefetch (the window as it opens): the breakdown of the rendered steps' latency
    queued_ms, apply_ms = [], []
    original_apply = view._apply

    def timed_apply(result):   # the UI thread's share of showing a render
        t = time.perf_counter()
        if not result.prefetched:
            started = result.finished - result.compute_seconds
            queued_ms.append(((started - result.request.requested) * 1000, (t - result.finished) * 1000))
        original_apply(result)
        apply_ms.append((time.perf_counter() - t) * 1000)

    view._apply = timed_apply
    PAINT_MS.clear()
    # the first sequence after opening runs slower (the render thread's tuner tries one thread
    # and two, the libraries warm up): it is reported on its own, as the window opens (guess and
    # fill on, nothing waited for); then each setting twice, in an order that gives each an early
    # and a late place
    first = summary([slider_sequence(app, window)])
    modes = {"off": (False, False), "guess": (True, False), "filled": (True, True)}
    sequences = {m: [] for m in modes}
    for m in ("off", "guess", "filled", "filled", "guess", "off"):
        window.set_prefetch(modes[m][0])
        window.set_fill_stops(modes[m][1])
        sequences[m].append(slider_sequence(app, window, settle=(m == "filled")))
    tight = {m: summary(seqs) for m, seqs in sequences.items()}
    paint = list(PAINT_MS)
    view._apply = original_apply
    paused = {"pause_ms": args.pause_ms}
    window.set_fill_stops(False)
    for name, on in (("prefetch", True), ("no_prefetch", False)):
        window.set_prefetch(on)
        paused[name] = summary([slider_sequence(app, window, args.pause_ms / 1000)])
    window.set_prefetch(True)
    window.set_fill_stops(True)

    # -- filter click -> masked output on screen -------------------------------------------------
    clicks = {layer: filter_clicks(app, window, layer) for layer in CLICK_LAYERS
              if s.index is not None and layer in {lay.name for lay in s.index.layers}}

    # -- the UI thread's longest stall while FAIG runs -------------------------------------------
    if not args.no_freeze:
        freeze_startup_objects()   # as run_window does after opening the window
    gc_pauses = []
    gc_start = {}

    def on_gc(phase, info):
        if phase == "start":
            gc_start["t"] = time.perf_counter()
        elif "t" in gc_start:
            gc_pauses.append((info["generation"], (time.perf_counter() - gc_start.pop("t")) * 1000))

    gc.callbacks.append(on_gc)
    window.analysis_dock.steps.setValue(args.faig_steps)
    gaps, where = [], []
    last = {"t": None}
    ticker = QTimer()
    ticker.setInterval(5)
    clock = QElapsedTimer()

    def tick():
        now = clock.nsecsElapsed() / 1e6
        if last["t"] is not None:
            gaps.append(now - last["t"])
            p = window.runner.last_progress
            where.append((round(now), p.done if p else 0, window.runner.running))
        last["t"] = now

    ticker.timeout.connect(tick)
    clock.start()
    # first the same timer with nothing running: what the machine itself does to this thread
    ticker.start()
    idle_end = time.monotonic() + args.idle_seconds
    wait(app, lambda: time.monotonic() > idle_end)
    ticker.stop()
    idle_stalls = [g - 5.0 for g in gaps]
    gaps.clear()
    where.clear()
    last["t"] = None
    ticker.start()
    t0 = time.perf_counter()
    assert window.run_analysis(), "the analysis did not start"
    wait(app, lambda: not window.runner.running, timeout_s=600)
    faig_s = time.perf_counter() - t0
    ticker.stop()
    gc.callbacks.remove(on_gc)
    stalls = [g - 5.0 for g in gaps]
    result = {
        "pair": pair,
        "filters": s.index.total,
        "lr_size": f"{lr_shape[1]}x{lr_shape[0]}",
        "torch_threads": torch.get_num_threads(),
        "allocator_thresholds_set": allocator_tuned,
        "mask_to_screen_first_sequence_ms": first,
        "mask_to_screen_target_ms": 150,
        "mask_to_screen_no_prefetch_ms": tight["off"],
        "mask_to_screen_guess_only_ms": tight["guess"],
        "mask_to_screen_filled_ms": tight["filled"],
        "mask_to_screen_paused_ms": paused,
        "filter_click_to_screen_ms": clicks,
        # the rest of the way to the screen (prefetch on, steps not shown from a kept result):
        # waiting for the UI thread (its handlers, then the loop's wake-up), putting the images
        # into the views, and the paint of the centre view
        "render_starts_after_ms": ({"median": round(statistics.median(q[0] for q in queued_ms), 1)}
                                   if queued_ms else None),
        "result_waits_for_ui_thread_ms": ({"median": round(statistics.median(q[1] for q in queued_ms), 1)}
                                          if queued_ms else None),
        "apply_ms": {"median": round(statistics.median(apply_ms), 1)},
        "paint_ms": {"median": round(statistics.median(paint), 1)},

        "load_average_1min": round(os.getloadavg()[0], 1),
        "cpu_cores": os.cpu_count(),
        "faig_run": {"images": len(s.analysis_images), "steps": args.faig_steps,
                     "seconds": round(faig_s, 2)},
        "ui_stall_ms": {"max": round(max(stalls), 1), "p99": round(float(np.percentile(stalls, 99)), 1),
                        "median": round(statistics.median(stalls), 2), "ticks": len(gaps)},
        "ui_stall_target_ms": 50,
        "ui_stall_without_faig_ms": {"max": round(max(idle_stalls), 1),
                                     "p99": round(float(np.percentile(idle_stalls, 99)), 1),
                                     "seconds": args.idle_seconds},
        "gc_startup_objects_frozen": not args.no_freeze,
        "longest_gc_pauses_ms": sorted((round(ms, 1) for _g, ms in gc_pauses), reverse=True)[:3],
        # the five longest stalls: (ms, at ms since the run started, path steps done, running)
        "longest_stalls": [(round(stalls[i], 1), *where[i]) for i in np.argsort(stalls)[::-1][:5]],
    }
    cpu_end = cpu_seconds()
    if cpu_start and cpu_end:
        # cores other processes kept busy on average while this ran (0 on an idle machine)
        result["other_processes_cpu_cores"] = round(
            ((cpu_end[0] - cpu_start[0]) - (cpu_end[1] - cpu_start[1])) / (time.monotonic() - run_start), 2)
    result["date"] = time.strftime("%Y-%m-%d %H:%M %Z")
    window._set_clean()
    window.close()
    tmp.cleanup()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
