"""``bench_ui.py --pair rrdbnet|srvgg``: live masking on a real-size net (issue 16).

A pair with random weights (the target = the baseline plus a small perturbation; timing does not
depend on the values): RRDBNet x4 64 features / 23 blocks / growth 32 (1.85 M filters) or
SRVGGNetCompact 64 features / 32 convs x4, one 128 x 128 LR image (a crop of skimage's
astronaut), |θ − θ̄| scores. The window opens it (prefetch and the fill of the slider's stops
off: each change is rendered), then the top-k slider moves 1 → 2 → 3 → 5 → 10 → 1 %, then one filter
in each of three layers is toggled by hand, on and off (``toggles``); per change:

- ``first_on_screen_ms``: slider change → the first masked output painted (a preview of a crop
  when the full frame is estimated above 0.25 s, core/preview.py; else the full frame);
- ``full_on_screen_ms``: slider change → the full 128 x 128-LR masked output painted;
- the preview's label and how its pixels compare with the full frame's in the region shown.

Then the demo pair (or bench_ui's generated MSRResNet 32/8 stand-in) in the same process: the
slider sequence without prefetch, each change → masked output on screen.

    QT_QPA_PLATFORM=offscreen python bench/bench_ui.py --pair rrdbnet
"""
from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PAIRS = {
    "rrdbnet": ("rrdbnet", {"num_feat": 64, "num_block": 23, "num_grow_ch": 32, "scale": 4}),
    "srvgg": ("srvgg", {"num_feat": 64, "num_conv": 32, "scale": 4, "act_type": "prelu"}),
}
STEPS = [2, 3, 5, 10, 1]   # percent, from 1 %
SETTLE_S = 1.0             # pause before each change
TOGGLED_LAYERS = (0, 150, -2)   # layers (positions in the filter index) a filter is toggled in by hand


def make_pair(root: Path, which: str) -> tuple[Path, Path, Path, dict]:
    from faig_gui.core.attribution import abs_change
    from faig_gui.core.checkpoint import save_checkpoint
    from faig_gui.core.filters import FilterIndex
    from faig_gui.core.imageio import write_image
    from faig_gui.core.registry import default_registry
    import skimage.data

    family, hp = PAIRS[which]
    torch.manual_seed(0)
    base = default_registry().get(family).new_state_dict(**hp)
    targ = {k: v + 0.05 * v.std() * torch.randn_like(v) if v.is_floating_point() and v.numel() > 1 else v
            for k, v in base.items()}
    save_checkpoint(root / "baseline.pth", base)
    save_checkpoint(root / "target.pth", targ)
    s = abs_change(base, targ, FilterIndex.from_state_dict(targ))
    astro = skimage.data.astronaut().astype(np.float32) / 255
    write_image(root / "lr.png", astro[150:278, 180:308])
    return root / "baseline.pth", root / "target.pth", root / "lr.png", {"blur": s, "noise": -s}


def two_phase(app, view, action, wait, painted_hook) -> dict:
    """ms from ``action()`` to the first paint after the first render signal, and to the first
    paint after the render signal of the full frame (the same when there is no preview)."""
    seen = {"first": None, "full": None, "pending": None, "preview": None}

    def on_rendered():
        r = view.result
        if seen["preview"] is None:
            seen["preview"] = r.preview
        seen["pending"] = "full" if r.preview is None else "first"
        view.canvas.viewport().update()

    def painted(_ms: float):
        what = seen["pending"]
        if what is None:
            return
        now = time.perf_counter()
        if seen["first"] is None:
            seen["first"] = now
        if what == "full" and seen["full"] is None:
            seen["full"] = now
        seen["pending"] = None

    view.rendered.connect(on_rendered)
    painted_hook["canvas"] = view.canvas
    painted_hook["hook"] = painted
    try:
        t0 = time.perf_counter()
        action()
        wait(app, lambda: seen["full"] is not None, timeout_s=600)
    finally:
        view.rendered.disconnect(on_rendered)
        painted_hook["hook"] = None
    return {"first_ms": (seen["first"] - t0) * 1000, "full_ms": (seen["full"] - t0) * 1000,
            "preview": seen["preview"], "t0": t0}


def paused_change(app, view, action, wait, painted_hook) -> tuple[dict, list]:
    """:func:`two_phase` of ``action`` after a pause of SETTLE_S, and the previews rendered on the
    way. The pause is as between a user's moves: what the last full frame released (the graph,
    the filter grid, the profile and the plots redrawn for 1.85 M filters on the UI thread) would
    otherwise run during this change's preview and be measured as part of it."""
    settled = time.monotonic() + SETTLE_S
    wait(app, lambda: time.monotonic() > settled, timeout_s=60)
    previews: list = []

    def keep_preview():
        if view.result.preview is not None:
            previews.append(view.result)
    view.rendered.connect(keep_preview)
    try:
        got = two_phase(app, view, action, wait, painted_hook)
    finally:
        view.rendered.disconnect(keep_preview)
    return got, previews


def hand_toggles(app, window, view, wait, painted_hook) -> list[dict]:
    """Filters toggled by hand in the top 1 % mask the slider left (the filter grid's click:
    ``toggle_filters``), one in each of TOGGLED_LAYERS, on and then off again, a pause before
    each: change -> the first masked output painted (the preview) and -> the full frame, and the
    preview's render time (its masked weights, the crop's forward, the full-frame images)."""
    index = window.model.session.index
    out = []
    for pos in TOGGLED_LAYERS:
        layer = index.layers[pos]
        masked = set(window.model.session.mask.indices.tolist())
        g = next(g for g in range(layer.offset, layer.offset + layer.count) if g not in masked)
        for state in ("on", "off"):
            got, previews = paused_change(app, view, lambda g=g: window.model.toggle_filters([g]), wait, painted_hook)
            row = {"layer": layer.name, "toggled": state, "first_on_screen_ms": round(got["first_ms"], 1),
                   "full_on_screen_ms": round(got["full_ms"], 1)}
            if previews:
                row["preview_render_ms"] = round(previews[-1].compute_seconds * 1000, 1)
            out.append(row)
    return out


def _median_of(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if key in r]
    return round(statistics.median(values), 1) if values else None


def run_pair(app, which: str, wait, watch_paints, painted_hook, slider_sequence, summary, demo) -> dict:
    from faig_gui.app.main_window import MainWindow

    tmp = tempfile.TemporaryDirectory()
    b, t, lr, scores = make_pair(Path(tmp.name), which)
    window = MainWindow(restore_layout=False)
    window.show()
    view = window.image_view
    watch_paints(view)
    window.set_prefetch(False)
    window.set_fill_stops(False)
    t0 = time.perf_counter()
    assert window.model.load_pair(str(b), str(t))
    load_s = time.perf_counter() - t0
    window.model.set_scores(scores)
    t0 = time.perf_counter()
    window.model.add_images([str(lr)])
    wait(app, lambda: view.result is not None and view.live.idle, timeout_s=600)
    first_render_s = time.perf_counter() - t0
    slider = window.masking_dock.k_slider
    steps = []
    for k in STEPS:
        got, previews = paused_change(app, view, lambda k=k: slider.setValue(k * 10), wait, painted_hook)
        full = view.result
        step = {"percent": k, "first_on_screen_ms": round(got["first_ms"], 1),
                "full_on_screen_ms": round(got["full_ms"], 1),
                "full_render_ms": round(full.compute_seconds * 1000, 1),
                "full_render_cpu_ms": round(full.cpu_seconds * 1000, 1), "full_render_threads": full.threads,
                "full_masked_share": None if full.masked_share is None else round(full.masked_share, 3)}
        if previews:
            p = previews[-1]
            s = p.request.scale
            y0, x0, y1, x1 = (s * v for v in p.preview.inner)
            diff = np.abs(p.masked[y0:y1, x0:x1] - full.masked[y0:y1, x0:x1])
            started = p.finished - p.compute_seconds
            step.update({"preview": p.preview.label(), "preview_render_ms": round(p.compute_seconds * 1000, 1),
                         # slider change -> request made (the UI thread: top-k, the mask), request
                         # -> preview render started (the plan: masked weights, share), render end
                         # -> painted (the UI thread showing it)
                         "change_to_request_ms": round((p.request.requested - got["t0"]) * 1000, 1),
                         "request_to_render_ms": round((started - p.request.requested) * 1000, 1),
                         "render_to_paint_ms": round(got["first_ms"] - (p.finished - got["t0"]) * 1000, 1),
                         "preview_render_cpu_ms": round(p.cpu_seconds * 1000, 1),
                         "preview_exact_by_radius": p.preview.exact,
                         "receptive_radius_lr_px": p.preview.radius,
                         "preview_max_abs_diff_vs_full": float(diff.max()),
                         "preview_pixels_off_by_half_a_level": float((diff.max(axis=2) > 0.5 / 255).mean())})
        steps.append(step)
    toggles = hand_toggles(app, window, view, wait, painted_hook)
    result = {"pair": f"{which} {PAIRS[which][1]}", "filters": window.model.session.index.total,
              "lr_size": "128x128", "open_pair_s": round(load_s, 2), "first_render_s": round(first_render_s, 2),
              "steps": steps,
              "first_on_screen_ms_median": round(statistics.median(s["first_on_screen_ms"] for s in steps), 1),
              "full_on_screen_ms_median": round(statistics.median(s["full_on_screen_ms"] for s in steps), 1),
              "toggles": toggles,
              "toggle_first_on_screen_ms_median": round(statistics.median(t["first_on_screen_ms"] for t in toggles), 1),
              "toggle_preview_render_ms_median": _median_of(toggles, "preview_render_ms"),
              # the process's peak resident memory so far (pair, window, renders)
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    window._set_clean()
    window.close()
    window.shutdown()
    del window
    tmp.cleanup()

    # the demo in the same process, as bench_ui measures it without prefetch
    from faig_gui.app.launch import demo_session
    files, name = demo()
    window = MainWindow(restore_layout=False)
    window.show()
    view = window.image_view
    watch_paints(view)
    window.model.replace_session(demo_session(files))
    wait(app, lambda: view.result is not None and view.live.idle)
    window.set_prefetch(False)
    window.set_fill_stops(False)
    slider_sequence(app, window)   # (warm-up: the tuner tries its thread counts)
    seq = summary([slider_sequence(app, window)])
    result["demo"] = {"pair": name, "mask_to_screen_no_prefetch_ms": seq}
    window._set_clean()
    window.close()
    window.shutdown()
    result["load_average_1min"] = round(os.getloadavg()[0], 1)
    result["cpu_cores"] = os.cpu_count()
    result["date"] = time.strftime("%Y-%m-%d %H:%M %Z")
    return result
