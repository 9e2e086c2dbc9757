"""Plots dock: the masking-effect curve and the per-layer distribution of the top filters.

Do the found filters really carry one function, and where do they live? The first tab answers
the first question as the paper does: for each method (FAIG, IG, |θ − θ̄|, random) and each
proportion (1, 3, 5, 10 %), the effect of masking a degradation's top filters on inputs of that
degradation (solid, should be high) and of the other (dashed, should stay low). It is computed
on request ("Compute") on a worker thread with ``core.evaluation.evaluate`` over the session's
analysis images; the scores the session already has are reused, missing methods are ranked
first. The second tab is the paper's distribution figure: how many of each degradation's top
k % filters sit in each layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QRectF, QSize, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDockWidget, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                               QTabWidget, QVBoxLayout, QWidget)

from faig_gui.app._export import export_picture
from faig_gui.app.session_model import SessionModel
from faig_gui.app.workers import JobRunner
from faig_gui.core.analysis import AnalysisResult
from faig_gui.core.dataset import AnalysisImage
from faig_gui.core.device import resolve_device
from faig_gui.core.errors import FaigError
from faig_gui.core.filters import FilterIndex
from faig_gui.core.evaluation import DEFAULT_METHODS, DEFAULT_PROPORTIONS, EvaluationProgress, EvaluationResult, \
    evaluate
from faig_gui.core.layer_stats import top_distribution
from faig_gui.core.registry import LoadedModel

METHOD_COLOURS = {"faig": "#d62728", "ig": "#1f77b4", "abs": "#2ca02c", "random": "#7f7f7f"}
METHOD_NAMES = {"faig": "FAIG", "ig": "IG", "abs": "|θ − θ̄|", "random": "random"}
DEGRADATION_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
PROPORTION_CHOICES = (1.0, 3.0, 5.0, 10.0)


@dataclass(frozen=True)
class EffectJob:
    """What one effect computation reads, copied on the UI thread."""

    baseline: LoadedModel
    target: LoadedModel
    images: Sequence[AnalysisImage]
    methods: tuple[str, ...]
    proportions: tuple[float, ...]
    given_scores: Mapping[str, Mapping[str, np.ndarray]]
    steps: int
    device: str


def session_scores(session, method: str) -> dict[str, np.ndarray] | None:
    res = session.results.get(method)
    if res is None:
        return None
    return dict(res.scores if isinstance(res, AnalysisResult) else res["scores"])


class EffectPanel(QWidget):
    """Effect vs proportion, one plot per masked degradation; solid: own inputs, dashed: others."""

    def __init__(self, dock: PlotsDock):
        super().__init__()
        self.dock = dock
        self.checks: dict[str, QCheckBox] = {}
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        for m in DEFAULT_METHODS:
            box = QCheckBox(METHOD_NAMES[m])
            box.setChecked(m != "ig")
            box.setToolTip(f"include {METHOD_NAMES[m]}; methods without scores in the session are ranked first"
                           + (" (IG runs its own integration: slow)" if m == "ig" else ""))
            self.checks[m] = box
            row.addWidget(box)
        row.addStretch(1)
        self.compute_button = QPushButton("Compute")
        self.compute_button.setToolTip("mask each method's top 1/3/5/10 % on the analysis images and measure")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        row.addWidget(self.compute_button)
        row.addWidget(self.cancel_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        self.status = QLabel("Press Compute to measure masking effects on the analysis images.")
        self.status.setWordWrap(True)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground("w")
        self.plots: dict[str, pg.PlotItem] = {}
        self.curves: dict[tuple[str, str, str], pg.PlotDataItem] = {}   # (method, masked d, input e)
        outer = QVBoxLayout()   # not 'box': that name holds the method check boxes above
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addLayout(row)
        outer.addWidget(self.progress)
        outer.addWidget(self.status)
        outer.addWidget(self.canvas, 1)
        self.setLayout(outer)

    def methods(self) -> tuple[str, ...]:
        return tuple(m for m, box in self.checks.items() if box.isChecked())

    def show_result(self, result: EvaluationResult, stale: bool = False) -> None:
        self.canvas.clear()
        self.plots, self.curves = {}, {}
        names = result.degradations
        for col, d in enumerate(names):
            plot = self.canvas.addPlot(row=0, col=col)
            plot.setTitle(f"masking {d} filters", size="10pt")
            plot.setLogMode(x=False, y=True)
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.setLabel("bottom", "proportion masked (%)")
            if col == 0:
                plot.setLabel("left", "effect (gradient-map MSE ×1000)")
            plot.getAxis("bottom").setTicks([[(p, f"{p:g}") for p in result.proportions]])
            plot.getAxis("left").enableAutoSIPrefix(False)
            for m in result.methods:
                colour = METHOD_COLOURS.get(m, "#000")
                for e in names:
                    ys = np.array([max(result.effect(m, p, d, e), 1e-9) for p in result.proportions])
                    own = e == d
                    pen = pg.mkPen(colour, width=2.2 if own else 1.4,
                                   style=Qt.PenStyle.SolidLine if own else Qt.PenStyle.DashLine)
                    curve = plot.plot(result.proportions, ys, pen=pen, symbol="o" if own else "t",
                                      symbolSize=6, symbolBrush=colour, symbolPen=colour)
                    self.curves[(m, d, e)] = curve
            self.plots[d] = plot
        # one legend row under the plots: a method per colour (line styles are said in the text)
        legend = pg.LegendItem(colCount=len(result.methods), labelTextSize="8pt")
        self.canvas.addItem(legend, row=1, col=0, colspan=len(names))
        for m in result.methods:
            legend.addItem(self.curves[(m, names[0], names[0])], METHOD_NAMES.get(m, m))
        what = f"{len(result.heldout_images)} analysis image(s); solid: inputs of the masked degradation " \
               f"(higher is better), dashed: the other inputs (lower is better)"
        self.status.setText(("outdated (scores or models changed since): " if stale else "") + what)


class DistributionPanel(QWidget):
    """Per layer, how many of each degradation's top k % filters it holds (grouped bars)."""

    def __init__(self, dock: PlotsDock):
        super().__init__()
        self.dock = dock
        self.k_box = QComboBox()
        self.k_box.addItem("as masking", None)
        for p in PROPORTION_CHOICES:
            self.k_box.addItem(f"{p:g} %", p)
        self.k_box.setToolTip("the top k % of each degradation's ranking that is counted")
        self.hover = QLabel(" ")
        self.hover.setWordWrap(True)
        self.behind = False   # a top-k change came while hidden: redrawn when next shown
        self.plot = pg.PlotWidget(background="w")
        self.plot.showGrid(y=True, alpha=0.25)
        self.plot.setLabel("bottom", "layer (conv weights in order)")
        self.plot.setLabel("left", "top filters in the layer")
        self.plot.setMouseEnabled(x=True, y=False)
        self.legend = self.plot.addLegend(offset=(-5, 5), labelTextSize="8pt", colCount=3)
        self.bars: dict[str, pg.BarGraphItem] = {}
        self.counts: dict[str, np.ndarray] = {}
        self.proportion = 1.0
        # (index, scores' items, proportion) of the bars drawn: redrawn only when one changes
        self._source: tuple[FilterIndex | None, tuple[tuple[str, np.ndarray], ...], float] | None = None
        self.plot.scene().sigMouseMoved.connect(self._on_mouse_moved)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("top k %"))
        row.addWidget(self.k_box)
        row.addStretch(1)
        box = QVBoxLayout()
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(row)
        box.addWidget(self.plot, 1)
        box.addWidget(self.hover)
        self.setLayout(box)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.behind:
            self.refresh()

    def refresh(self) -> None:
        self.behind = False
        s = self.dock.model.session
        chosen = self.k_box.currentData()
        proportion = float(chosen if chosen is not None else s.mask_settings.proportion)
        source = (s.index, tuple(s.scores.items()), proportion)
        if self._source is not None and self._same(source):
            return   # ranking every filter again is slow on paper-size nets: only redraw on change
        self._source = source
        self.proportion = proportion
        if s.index is None or not s.scores:
            self._clear_bars()
            self.plot.setTitle("no scores yet: run the analysis" if s.index is not None else "no model", size="9pt")
            return
        self.counts = top_distribution(s.index, s.scores, self.proportion)
        layers = np.arange(len(s.index.layers))
        if list(self.bars) == list(self.counts) and all(len(b.opts["height"]) == len(layers) for b in self.bars.values()):
            # the same bars with new heights: rebuilding the items and the legend cost UI-thread
            # time at every top-k change, while a masked render wants the CPU
            for d, bar in self.bars.items():
                bar.setOpts(height=self.counts[d])
        else:
            counts_now = self.counts
            self._clear_bars()
            self.counts = counts_now
            n = len(self.counts)
            width = 0.8 / n
            for j, (d, counts) in enumerate(self.counts.items()):
                colour = DEGRADATION_COLOURS[j % len(DEGRADATION_COLOURS)]
                bar = pg.BarGraphItem(x=layers - 0.4 + width * (j + 0.5), height=counts, width=width,
                                      brush=colour, pen=pg.mkPen(colour))
                self.plot.addItem(bar)
                self.legend.addItem(bar, d)
                self.bars[d] = bar
        self.plot.getAxis("bottom").setTicks([self._ticks(s)])
        total = int(len(next(iter(s.scores.values()))) * self.proportion / 100)
        self.plot.setTitle(f"where each degradation's top {self.proportion:g} % ({total:,} filters) sit", size="9pt")
        self.plot.setXRange(-0.7, len(layers) - 0.3, padding=0)
        # head room for the legend in the top right corner
        self.plot.setYRange(0, max(1, max(int(c.max()) for c in self.counts.values())) * 1.25, padding=0)

    def _clear_bars(self) -> None:
        for item in self.bars.values():
            self.plot.removeItem(item)
        self.legend.clear()
        self.bars, self.counts = {}, {}

    def _same(self, source) -> bool:
        if self._source is None:
            return False
        index, items, proportion = self._source
        return (index is source[0] and proportion == source[2] and len(items) == len(source[1])
                and all(a[0] == b[0] and a[1] is b[1] for a, b in zip(items, source[1])))

    def _ticks(self, s) -> list[tuple[int, str]]:
        """Short layer names; with many layers only every few are written."""
        n = len(s.index.layers)
        step = max(1, int(np.ceil(n / 8)))   # room for ~8 names in a dock; the hover line names each
        return [(k, _short(layer.module_name))   # the name the graph and the grid show
                for k, layer in enumerate(s.index.layers) if k % step == 0 or k == n - 1]

    def _on_mouse_moved(self, scene_pos) -> None:
        s = self.dock.model.session
        if not self.counts or s.index is None:
            return
        x = self.plot.getPlotItem().vb.mapSceneToView(scene_pos).x()
        k = int(round(x))
        if 0 <= k < len(s.index.layers):
            layer = s.index.layers[k]
            parts = ", ".join(f"{d} {int(c[k]):,}" for d, c in self.counts.items())
            self.hover.setText(f"{layer.name} ({layer.count:,} filters): {parts} in the top {self.proportion:g} %")


def _settle(view: pg.GraphicsView) -> None:
    """Lay a plot out as its next paint would. pyqtgraph sizes axes and legends to their text
    while painting and lays the plots out again afterwards: a plot not painted since it changed
    (the hidden tab's) came out of the first export 76 px low, cut off at the bottom. A throwaway
    paint, then the layout requests of the plot's own items (not of the widgets around it, whose
    layouts would undo a hidden page's size)."""
    from PySide6.QtCore import QCoreApplication, QEvent
    from PySide6.QtWidgets import QGraphicsWidget
    view.grab()
    for item in view.scene().items():
        if isinstance(item, QGraphicsWidget):
            QCoreApplication.sendPostedEvents(item, QEvent.Type.LayoutRequest)


def _short(label: str) -> str:
    return label.replace("block ", "b").replace(" conv", ".").replace(".weight", "")


class PlotsDock(QDockWidget):
    def __init__(self, model: SessionModel, parent: QWidget | None = None):
        super().__init__("Plots", parent)
        self.setObjectName("PlotsDock")
        self.model = model
        self.result: EvaluationResult | None = None
        self._stale = False
        self.jobs = JobRunner(model, "faig-effects", self)
        self.jobs.progress.connect(self._on_progress)
        self.jobs.finished.connect(self._on_finished)
        self.jobs.failed.connect(self._on_failed)
        self.jobs.cancelled.connect(self._on_cancelled)
        self.jobs.ended.connect(self._on_ended)
        self._generation = 0        # bumped when models or scores change
        self._job_generation = 0    # the generation a running computation started from

        self.effects = EffectPanel(self)
        self.distribution = DistributionPanel(self)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.distribution, "Top filters per layer")
        self.tabs.addTab(self.effects, "Masking effect")
        from faig_gui.app.overlap_panel import OverlapPanel
        self.overlap = OverlapPanel(self)   # shared filters per pair, and the N x N matrix
        self.tabs.addTab(self.overlap, "Overlap")
        self.setWidget(self.tabs)

        self.effects.compute_button.clicked.connect(self.compute)
        self.effects.cancel_button.clicked.connect(self.cancel)
        self.distribution.k_box.currentIndexChanged.connect(self.distribution.refresh)
        self.distribution.k_box.currentIndexChanged.connect(self.overlap.refresh)
        model.modelsChanged.connect(self._on_inputs_change)
        model.scoresChanged.connect(self._on_inputs_change)
        model.maskShown.connect(self._on_mask_change)
        self.distribution.refresh()
        self.overlap.refresh()

    # -- the distribution follows the scores and the masking proportion ---------------------------
    def _on_inputs_change(self) -> None:
        self._generation += 1
        self.distribution.refresh()
        self.overlap.refresh()
        if self.result is not None and not self._stale:
            self._stale = True
            self.effects.show_result(self.result, stale=True)

    def _on_mask_change(self) -> None:
        if self.distribution.k_box.currentData() is None:
            if self.distribution.isVisible():
                self.distribution.refresh()
            else:   # (behind another tab or dock: its UI-thread time at every top-k change saved)
                self.distribution.behind = True

    # -- the effect curve, off the UI thread ----------------------------------------------------
    @property
    def running(self) -> bool:
        return self.jobs.running

    @property
    def idle(self) -> bool:
        return not self.running

    def job(self) -> EffectJob:
        s = self.model.session
        if s.baseline is None or s.target is None:   # not s.ready, spelled out for the type checker
            raise FaigError("open a baseline and a target before measuring masking effects")
        if not s.analysis_images:
            raise FaigError("no analysis images: choose a folder of HR images in the Analysis panel first")
        names = list(s.analysis_images[0].lr)
        if len(names) < 2:
            raise FaigError("the masking effect compares degradations: the analysis needs at least two")
        methods = self.effects.methods()
        if not methods:
            raise FaigError("tick at least one method to compare")
        given = {}
        for m in methods:
            scores = session_scores(s, m)
            if scores is not None and all(d in scores for d in names):
                given[m] = scores
        # evaluation runs the target through functional_call: on this worker, its own module
        return EffectJob(s.baseline, s.target.private_copy(), list(s.analysis_images), methods, DEFAULT_PROPORTIONS, given,
                         s.settings.steps, str(resolve_device(s.settings.device)))

    def compute(self) -> bool:
        if self.running:
            return False
        job = self.model.guarded(self.job)
        if job is None:
            self.effects.status.setText("Cannot compute: see the message in the status bar.")
            return False
        self._job_generation = self._generation
        self.jobs.start(lambda should_stop: evaluate(job.baseline, job.target, job.images, job.images, job.methods,
                                                     job.proportions, job.steps, job.device,
                                                     given_scores=job.given_scores, should_stop=should_stop),
                        EvaluationResult, "computing the masking effects", "masking effects")
        self.effects.compute_button.setEnabled(False)
        self.effects.cancel_button.setEnabled(True)
        self.effects.progress.setValue(0)
        ranked = [m for m in job.methods if m not in job.given_scores]
        self.effects.status.setText("measuring masking effects" +
                                    (f" (ranking with {', '.join(ranked)} first)" if ranked else "") + "…")
        return True

    def cancel(self) -> None:
        if self.jobs.cancel():
            self.effects.status.setText("cancelling…")

    def shutdown(self, timeout_ms: int = 30000) -> None:
        """Cancel and wait: no thread outlives the dock."""
        self.jobs.shutdown(timeout_ms)

    def _on_progress(self, p: EvaluationProgress) -> None:
        self.effects.progress.setValue(int(1000 * p.done / max(1, p.total)))
        self.effects.status.setText(p.message + "…")

    def _on_finished(self, result: EvaluationResult) -> None:
        # models or scores that changed while it ran make the fresh result outdated already
        self.result, self._stale = result, self._job_generation != self._generation
        self.effects.progress.setValue(1000)
        self.effects.show_result(result, self._stale)
        self.overlap.refresh_matrix()

    def _on_failed(self, message: str) -> None:
        self.effects.status.setText(f"failed: {message}")
        self.model.errorOccurred.emit(message)

    def _on_cancelled(self) -> None:
        self.effects.status.setText("cancelled; the previous curves (if any) stay")
        if self.result is not None:
            self.effects.show_result(self.result, self._stale)
            self.effects.status.setText("cancelled; showing the previous result")

    def _on_ended(self) -> None:
        self.effects.compute_button.setEnabled(True)
        self.effects.cancel_button.setEnabled(False)

    # -- export -----------------------------------------------------------------------------------
    def export(self, path) -> None:
        """Both plots, one above the other, as PNG or SVG."""
        panels = [self.distribution.plot, self.effects.canvas]
        for p in panels:
            # the page in the hidden tab is laid out only when shown: now, or the size read below
            # is a never-shown default that a later paint's layout pass changes under the drawing
            page = p.parentWidget()
            if page is not None and page.layout() is not None:
                page.layout().activate()
        w = max(max(p.width() for p in panels), 480)
        h = max(max(p.height() for p in panels), 300)
        for p in panels:
            if not p.isVisible():   # a page too small (never shown at all) gets a readable size
                p.resize(w, h)
            _settle(p)

        def paint(painter: QPainter, rect: QRectF) -> None:
            for n, p in enumerate(panels):
                QWidget.render(p, painter, QPoint(0, n * h))   # the widget, not QGraphicsView.render

        export_picture(path, QSize(w, 2 * h), paint, "faig-gui plots")
