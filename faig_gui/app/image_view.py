"""The centre of the window: the current input, the target's output, the masked model's output
and a comparison (before/after split, difference or gradient maps), in linked views that zoom
and pan together; the effect metric and PSNR; a strip of thumbnails to switch images, and beside
it a table of every image's effect and PSNR (image_table.py).

Every state change (image, models, mask) sends one render request through a latest-wins task
(live.py): the outputs are computed off the UI thread and put on screen when they arrive. After
each request the view guesses the next mask state from the last step (core/speculation.py) and
renders it in the background while nothing real waits; a request for that state is then shown from the
kept result, or takes over the render in progress (View ▸ Prefetch the next mask step). Then, still
only while nothing else runs, it renders the top-k slider's nearby stops and whole percents the
same way (View ▸ Fill the top-k slider's stops when idle; speculation.slider_stops).
"""
from __future__ import annotations

import copy
import os
import time
from dataclasses import replace
from functools import partial

import numpy as np
import pyqtgraph as pg
import torch
from torch import fx
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QSlider, QTabWidget, QVBoxLayout, QWidget

from faig_gui.app.drops import FileDropTarget
from faig_gui.app.image_list import STRIP_HEIGHT, ThumbnailStrip
from faig_gui.app.image_panels import Panel, colour_bar, show_bar
from faig_gui.app.image_table import ImageTable
from faig_gui.app.live import LatestTask
from faig_gui.app.prefetch import GRID
from faig_gui.app.workers import live_threads
from faig_gui.app.session_model import SessionModel
from faig_gui.core import render as rendering
from faig_gui.core.errors import FaigError
from faig_gui.core.graph import traced_graph
from faig_gui.core.imageio import IMAGE_SUFFIXES
from faig_gui.core.preview import PREVIEW_ABOVE_S, PREVIEW_BUDGET_S
from faig_gui.core.speculation import MaskState, PrefetchStore, StopMasks, guesses
from faig_gui.core.render import (COMPARE_MODES, OutputCache, RenderRequest, RenderResult, compare_view,
                                  same_output, speculative_render)

# The compare view the window opens with. At the opening mask (1 % top-k) Before / after barely
# shows a change: on the demo pair's held-out inputs a median of 25 % of the output's pixels
# changes by 3 grey levels or more, and only a viewer comparing the two halves pixel by pixel
# could see even that. Difference ×4 shows 60 % of them at once, on a fixed scale (the gradient-map
# difference is scaled to its own maximum, so it looks as strong for any change).
# bench/bench_compare_modes.py measures it; docs/app.md has the figures.
DEFAULT_COMPARE = "difference"
COMPARE_TITLES = {
    "split": "Before / after: target | masked",
    "difference": "Difference |masked − target| ×4",
    "gradient": "Gradient map of the masked output",
    "gradient_difference": "Gradient-map difference |G(masked) − G(target)|",
}
STOPS_BUDGET = 96 << 20   # bytes of kept guesses (masked output and its gradient map, float32)
FILL_AFTER_S = 0.25       # the slider's stops wait for this much quiet after the last real request


class ImageView(FileDropTarget, QWidget):
    """Centre widget; ``rendered`` fires each time new outputs are on screen."""

    rendered = Signal()
    prefetched = Signal()   # a guessed next state's render is kept (core/speculation.py)
    ahead = Signal()        # rendering ahead (guesses, the slider's stops) started or ended

    def __init__(self, model: SessionModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.live = LatestTask("render", self)
        self._cache = OutputCache()
        self.prefetch_enabled = True
        self.psnr_on_y = False      # PSNR on the BT.601 luma instead of RGB (View ▸ PSNR on luma)
        self.fill_stops = True      # also the slider's stops, once the guess is kept (core/speculation.py)
        self._prefetched: PrefetchStore[RenderRequest, RenderResult] = PrefetchStore(size=2)
        self._last_request: RenderRequest | None = None   # the latest real request
        self._stop_masks = StopMasks()
        # the fill of the stops starts once the user has paused (clicks and drags in quick
        # succession would each stop it part way, and wait for the node in progress)
        self._fill_timer = QTimer(self)
        self._fill_timer.setSingleShot(True)
        self._fill_timer.timeout.connect(self._fill_when_quiet)
        self._states: list[MaskState] = []   # the last two mask states asked for, oldest first
        self.prefetch_hits = 0      # requests shown from a kept prefetch (no render of their own)
        self.prefetch_taken = 0     # requests that took over the prefetch in progress
        self._preview_module: torch.nn.Module | None = None
        self._graph: fx.Graph | None = None
        self._models_version = 0
        # a masked render estimated above preview_above_s seconds shows a crop first (core/preview.py)
        self.preview_above_s = float(os.environ.get("FAIG_GUI_PREVIEW_ABOVE_S", PREVIEW_ABOVE_S))
        self.preview_budget_s = float(os.environ.get("FAIG_GUI_PREVIEW_BUDGET_S", PREVIEW_BUDGET_S))
        self._shape: tuple | None = None
        self.result: RenderResult | None = None
        self.last_latency: float | None = None   # request -> on screen, seconds
        self.setAcceptDrops(True)
        self._build()
        self._lut = self._colormap.getLookupTable(nPts=256)

        model.modelsChanged.connect(self._on_models_change)
        model.imagesChanged.connect(self._on_images_change)
        model.currentImageChanged.connect(self._on_current_change)
        model.maskChanged.connect(self.request_render)
        model.busyChanged.connect(self._on_long_job)
        self.live.failed.connect(model.errorOccurred)
        self._holds = 0                              # _hold_docks calls so far
        self._release_at_paint: int | None = None    # release the docks at the next paint (holds then)
        self.canvas.viewport().installEventFilter(self)
        self.live.busyChanged.connect(self._on_live_busy)
        self._on_models_change()
        self._on_images_change()

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        self.title = QLabel("No image")
        self.title.setObjectName("imageTitle")
        self.title.setMinimumWidth(40)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.compare = QComboBox()
        for key, text in COMPARE_MODES.items():
            self.compare.addItem(text, key)
        self.compare.setCurrentIndex(self.compare.findData(DEFAULT_COMPARE))
        self.compare.setToolTip("What the fourth view shows: the target's output left of the line and the "
                                "masked output right of it, their difference, or gradient maps")
        self.split = QSlider(Qt.Orientation.Horizontal)
        self.split.setRange(0, 100)
        self.split.setValue(50)
        self.split.setMinimumWidth(60)
        self.split.setMaximumWidth(140)
        self.split.setToolTip("Before/after split: left of the line the target's output, right the masked output")
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(QLabel("Compare:"))
        head.addWidget(self.compare)
        head.addWidget(QLabel("Split:"))
        head.addWidget(self.split)

        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground((40, 40, 43))
        self.canvas.setAcceptDrops(False)  # drops go to this widget (images) or the window
        self.input_panel = Panel(self.canvas, 0, 0, "Input")
        self.target_panel = Panel(self.canvas, 0, 1, "Target output")
        self.masked_panel = Panel(self.canvas, 2, 0, "Masked output")
        self.compare_panel = Panel(self.canvas, 2, 1, "")
        self.panels = [self.input_panel, self.target_panel, self.masked_panel, self.compare_panel]
        first = self.input_panel.view
        for p in self.panels[1:]:
            p.view.setXLink(first)
            p.view.setYLink(first)
        self.split_line = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen((255, 210, 60), width=2))
        self.split_line.setVisible(False)
        self.compare_panel.view.addItem(self.split_line, ignoreBounds=True)
        self.compare_panel.label.setText(COMPARE_TITLES[DEFAULT_COMPARE])
        self._colormap = pg.colormap.get("inferno")
        self.colour_bar = colour_bar(self.canvas, 2, 2, 2, self._colormap)

        self.metrics = QLabel("")
        self.metrics.setObjectName("metrics")
        self.metrics.setWordWrap(True)
        self.metrics.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.thumbs = ThumbnailStrip(self.model)
        self.table = ImageTable(self.model)
        self.table.setFixedHeight(STRIP_HEIGHT)
        self.lists = QTabWidget()
        self.lists.setDocumentMode(True)
        self.lists.setTabPosition(QTabWidget.TabPosition.West)
        self.lists.addTab(self.thumbs, "Images")
        self.lists.addTab(self.table, "Effect / PSNR")
        self.lists.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(head)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.metrics)
        lay.addWidget(self.lists)

        self.compare.currentIndexChanged.connect(self._show_compare)
        self.split.valueChanged.connect(self._on_split_change)
        self.split_line.sigPositionChanged.connect(self._on_split_line_moved)

    # -- model -> view -----------------------------------------------------------------------
    def _on_models_change(self) -> None:
        s = self.model.session
        self._models_version += 1
        self._prefetched.clear()   # (keyed by the models' version too: this frees them sooner)
        self._preview_module = copy.deepcopy(s.target.module) if s.target is not None else None
        # traced here, on the UI thread: tracing patches nn.Module.__call__ process-wide
        self._graph = traced_graph(s.target) if s.target is not None else None
        self.request_render()

    def _on_images_change(self) -> None:
        self.thumbs.refresh()
        self.request_render()

    def _on_current_change(self, position: int) -> None:
        self.thumbs.select(position)
        self.request_render()

    # -- rendering ---------------------------------------------------------------------------
    def make_request(self) -> RenderRequest | None:
        s = self.model.session
        img = s.current_image()
        if img is None:
            return None
        return RenderRequest(id(img), img.lr, img.gt, self._preview_module,
                             s.target.state_dict if s.target else None,
                             s.baseline.state_dict if s.baseline else None,
                             s.index, s.mask, s.scale, self._models_version, time.perf_counter(),
                             live_threads(self.model.long_jobs), self._graph, focus=self._focus(img.lr.shape, s.scale))

    def _focus(self, shape: tuple, scale: int) -> tuple[float, float] | None:
        """LR (y, x) at the centre of the view when it shows part of the image (else None; also
        before the view has been fitted to an image of this size: its range is then the
        placeholder's, and an image's first render would plan its preview crop in a corner)."""
        if self._shape != (shape[0] * scale, shape[1] * scale):
            return None
        rect = self.input_panel.view.viewRect()
        if rect.width() >= shape[1] * scale and rect.height() >= shape[0] * scale:
            return None
        c = rect.center()
        return c.y() / scale, c.x() / scale

    def request_render(self) -> None:
        req = self.make_request()
        if req is None:
            self.live.stop_speculation()
            self.result = None
            self._shape = None
            self.title.setText("No image")
            self._shape = None
            self.input_panel.view.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
            self.input_panel.show(None, "drop images here\nor File ▸ Add images")
            for p in self.panels[1:]:
                p.show(None, "")
            self._show_compare()
            self.metrics.setText("")
            return
        self._remember_state(req)
        previous, self._last_request = self._last_request, req
        if (self.live.idle and self.result is not None and self.result.preview is None
                and same_output(self.result.request, req)):
            return   # e.g. the slider moved less than one filter: what is shown is still right
        if not self.live.idle and previous is not None and same_output(previous, req):
            # the render in flight is for this very output (adding an image asks twice: the
            # list changed, and the current image): a new request would drop its result and
            # compute it again, two full forwards on RRDBNet
            self._last_request = previous
            return
        if self.prefetch_enabled and self._take_prefetch(req):
            self._hold_docks()
            if self.live.idle:   # shown from a kept result: the docks follow its paint
                self._release_docks_after_paint()
            self._prefetch_next(req)
            return
        cache = self._cache
        above, budget = self.preview_above_s, self.preview_budget_s
        self.live.submit(lambda: rendering.render_live(req, cache, above, budget), self._apply)
        self._hold_docks()
        self._prefetch_next(req)

    # -- the docks follow the output ---------------------------------------------------------
    # What else redraws for a mask change (graph, grid, plots, predictions: SessionModel.maskShown)
    # waits while the output is computed (the render then has both cores), then until the centre
    # view has painted it (so the output shows before the docks' redraw, not after it)
    def _hold_docks(self) -> None:
        self._holds += 1
        self.model.hold_mask_shown()

    def _on_live_busy(self, busy: bool) -> None:
        if not busy:
            self._release_docks_after_paint()

    def _release_docks_after_paint(self) -> None:
        self._release_at_paint = self._holds
        self.canvas.viewport().update()   # (merged with the update the new images asked for)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if (event.type() == QEvent.Type.Paint and self._release_at_paint is not None
                and obj is self.canvas.viewport()):
            holds, self._release_at_paint = self._release_at_paint, None
            # after this paint (and the window's flush) are done; not when a newer change holds
            def release() -> None:
                if self._holds == holds:
                    self.model.release_mask_shown()
            QTimer.singleShot(0, release)
        return False

    def set_psnr_y(self, on_y: bool) -> None:
        """Show PSNR on the BT.601 luma (as SR papers and BasicSR's test_y_channel report it) or
        on RGB, in the metrics line and the table; the render computes both."""
        self.psnr_on_y = bool(on_y)
        self.table.set_psnr_y(on_y)
        if self.result is not None and self.result.preview is None:
            self.metrics.setText(self._metrics_text(self.result))

    # -- prefetch ----------------------------------------------------------------------------
    def set_prefetch(self, enabled: bool) -> None:
        """Whether the view renders its guess of the next mask state in the background."""
        self.prefetch_enabled = bool(enabled)
        if not enabled:
            self._fill_timer.stop()
            self.live.stop_speculation()
            self._prefetched.clear()
            self.ahead.emit()
        elif self._last_request is not None:
            self._prefetch_next(self._last_request)

    def set_fill_stops(self, enabled: bool) -> None:
        """Whether, once the guess is kept, the view goes on with the top-k slider's stops."""
        self.fill_stops = bool(enabled)
        if not enabled:
            self._fill_timer.stop()
            self.live.stop_speculation()
            self._prefetched.clear()   # (what it kept: up to STOPS_BUDGET bytes)
            self.ahead.emit()
        elif self._last_request is not None:
            self._prefetch_next(self._last_request)

    def _remember_state(self, req: RenderRequest) -> None:
        ms = self.model.session.mask_settings
        state = MaskState(ms.degradation, ms.proportion, req.mask)
        if self._states:
            last = self._states[-1]
            if (last.degradation == state.degradation and last.proportion == state.proportion
                    and last.mask.mode == state.mask.mode and last.mask.lam == state.mask.lam
                    and np.array_equal(last.mask.indices, state.mask.indices)):
                return
        self._states = [*self._states[-1:], state]

    def _take_prefetch(self, req: RenderRequest) -> bool:
        """Show ``req`` from a kept prefetch, or let it take over the one in progress."""
        def same(key: RenderRequest) -> bool:
            return same_output(key, req)

        def show(r: RenderResult) -> None:
            self._apply(replace(r, request=req, prefetched=True))

        kept = self._prefetched.find(same)
        if kept is not None:
            self.live.supersede()   # whatever was pending is older than this
            self.prefetch_hits += 1
            show(kept)
            return True
        if self.live.adopt(same, show):
            self.prefetch_taken += 1
            return True
        return False

    def _prefetch_next(self, req: RenderRequest) -> None:
        """Queue the render of the first guess not kept yet behind ``req``'s (it starts when the
        render thread is free and stops between nodes when a real request comes): the next mask
        state, then the slider's stops; each kept guess queues the next one (_keep_prefetch)."""
        if (not self.prefetch_enabled or self.model.long_jobs or not self._states
                or req.module is None or req.baseline is None or req.graph is None):
            return
        speculating = self.live.speculating
        try:
            for mask, is_stop in self._guesses(req):
                guess = replace(req, mask=mask, requested=time.perf_counter(), max_threads=live_threads(0))
                if self._prefetched.find(partial(same_output, b=guess)) is not None:
                    continue
                if speculating is not None and same_output(speculating, guess):
                    return
                quiet = time.perf_counter() - req.requested
                if is_stop and quiet < FILL_AFTER_S:
                    self._fill_timer.start(int(1000 * (FILL_AFTER_S - quiet)) + 1)
                    self.ahead.emit()
                    return
                # bound now (partial): the job runs later, on the render thread
                self.live.speculate(guess, partial(speculative_render, guess, req, self._cache), self._keep_prefetch)
                self.ahead.emit()
                return
        except FaigError:
            return   # (the scores went away)

    def _guesses(self, req: RenderRequest):
        """(mask, is a stop) worth having ready after ``req`` (core.speculation.guesses): no more
        than the store keeps (it holds each result's two images: at most STOPS_BUDGET bytes, 2 to
        16 results), so the fill ends once they are all kept. The stops wait for FILL_AFTER_S of
        quiet after ``req``."""
        s = self.model.session
        h, w = req.lr.shape[0] * req.scale, req.lr.shape[1] * req.scale
        self._prefetched.size = int(min(16, max(2, STOPS_BUDGET // (h * w * 4 * 4))))
        return guesses(self._states, req.mask, self._prefetched.size, self.fill_stops, s.top, s.scores, GRID,
                       self._stop_masks)

    def _fill_when_quiet(self) -> None:
        if self._last_request is not None:
            self._prefetch_next(self._last_request)

    @property
    def rendering_ahead(self) -> bool:
        """A guess or a stop is queued, running or about to be (the fill waits for a pause)."""
        return self._fill_timer.isActive() or self.live.speculation_pending

    def _keep_prefetch(self, r: RenderResult) -> None:
        if r.request.models_version != self._models_version or not self.prefetch_enabled:
            return
        self._prefetched.put(r.request, r, same_output)
        self.prefetched.emit()
        if self._last_request is not None:
            self._prefetch_next(self._last_request)   # the next guess not kept yet, if any
        if not self.rendering_ahead:
            self.ahead.emit()   # (ended: everything worth having ready is kept)

    def _on_long_job(self, busy: bool, _what: str) -> None:
        if busy:   # FAIG or the curves take half the cores: no guesses while they run
            self._fill_timer.stop()
            self.live.stop_speculation()
        elif not self.model.long_jobs and self._last_request is not None:
            self._prefetch_next(self._last_request)   # (the guesses it stopped, if still wanted)

    def _apply(self, r: RenderResult) -> None:
        self.result = r
        if (self.prefetch_enabled and not r.prefetched and r.preview is None and r.masked is not None
                and r.masked is not r.target):
            # kept like a guess: going back to a state already shown then needs no forward
            self._prefetched.put(r.request, r, same_output)
        s = self.model.session
        img = s.current_image()
        name = img.name if img else ""
        h, w = r.input.shape[:2]
        label = f" · {img.label}" if img and img.label else ""
        preview = f" · <i>{r.preview.label()}, full frame follows</i>" if r.preview is not None else ""
        self.title.setText(f"<b>{name}</b>{label} · {r.request.lr.shape[1]}x{r.request.lr.shape[0]} → {w}x{h}{preview}")
        self.input_panel.label.setText(f"Input (LR ×{r.request.scale}, nearest)")
        self.input_panel.show(r.input)
        no_models = "open a baseline and a target"
        self.target_panel.show(r.target, no_models)
        n = len(r.request.mask)
        lam = r.request.mask.lam
        how = "baseline" if r.request.mask.mode == "baseline" else "zero"
        self.masked_panel.label.setText(
            f"Masked output · {n:,} filters → {how}" + (f", λ={lam:.2f}" if lam else "") if n else
            "Masked output · no filters masked")
        self.masked_panel.show(r.masked, no_models if r.target is None else "open a baseline to mask")
        self._show_compare()
        self.metrics.setText(self._metrics_text(r) if r.preview is None else
                             f"{r.preview.label()}: effect and PSNR follow with the full frame")
        if self._shape != (h, w):
            self._shape = (h, w)
            self.input_panel.view.autoRange(padding=0.02)
        for p in self.panels:
            p.place_placeholder()
        region = None
        if r.preview is not None:   # outlined where the masked output and the comparison are computed
            y0, x0, y1, x1 = (v * r.request.scale for v in r.preview.inner)
            region = (x0, y0, x1 - x0, y1 - y0)
        for p in (self.masked_panel, self.compare_panel):
            p.mark(region)
        self.last_latency = time.perf_counter() - r.request.requested
        self.rendered.emit()
        if r.preview is not None:   # then the full frame, unless a newer request came meanwhile
            QTimer.singleShot(0, lambda: self._render_full(r.request))

    def _render_full(self, req: RenderRequest) -> None:
        if self._last_request is req:
            cache = self._cache
            self.live.submit(lambda: rendering.render(req, cache), self._apply)

    def _metrics_text(self, r: RenderResult) -> str:
        parts = []
        if r.effect is not None:
            parts.append(f"Effect (gradient-map MSE ×1000, masked vs target): <b>{r.effect:.4g}</b>")
        p_t, p_m = (r.psnr_y_target, r.psnr_y_masked) if self.psnr_on_y else (r.psnr_target, r.psnr_masked)
        if p_t is not None:
            parts.append(f"{'PSNR-Y' if self.psnr_on_y else 'PSNR'} target <b>{p_t:.2f} dB</b>")
        if p_m is not None:
            parts.append(f"masked <b>{p_m:.2f} dB</b>")
        elif r.target is not None and r.request.gt is None:
            parts.append("PSNR: no ground truth for this image")
        return " · ".join(parts)

    def _show_compare(self) -> None:
        r = self.result
        mode = self.compare.currentData()
        self.compare_panel.label.setText(COMPARE_TITLES[mode])
        view = compare_view(r, mode, self.split.value()) if r is not None else None
        # the slider moves the line of Before / after; anywhere else (or with no masked output
        # to split) it would do nothing
        self.split.setEnabled(view is not None and view.cut is not None)
        self.split_line.setVisible(view is not None and view.cut is not None)
        show_bar(self.colour_bar, view.bar_range if view is not None else None,
                 view.bar_unit if view is not None else "")
        if view is None:
            self.compare_panel.show(None, "" if r is None else "needs the masked output")
            return
        self.compare_panel.show(view.image, levels=view.levels, lut=self._lut if view.coloured else None)
        if view.cut is not None:
            self.split_line.blockSignals(True)
            self.split_line.setValue(view.cut)
            self.split_line.blockSignals(False)

    def _on_split_change(self, _value: int) -> None:
        self._show_compare()

    def _on_split_line_moved(self) -> None:
        r = self.result
        if r is None or r.masked is None:
            return
        w = r.masked.shape[1]
        self.split.setValue(int(round(np.clip(self.split_line.value() / w, 0, 1) * 100)))

    # -- drops (images only: checkpoints and sessions go on to the window) --------------------
    drop_suffixes = IMAGE_SUFFIXES

    def files_dropped(self, paths: list[str]) -> None:
        self.model.add_images(paths)

    def reset_zoom(self) -> None:
        self.input_panel.view.autoRange(padding=0.02)

    def shutdown(self) -> None:
        """Stop the render and table threads (the window calls this when it closes)."""
        self._fill_timer.stop()
        self.table.shutdown()
        self.live.close()
