"""Importance profile dock: one bar per conv layer in network order, the number (or the summed
score) of the chosen degradation's top k % filters in it: the overview a paper figure shows.

A click on a bar selects that layer (the graph unfolds to it, the filter grid shows it); the
selected layer's bar is drawn in red. Hovering names the layer under the pointer.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QComboBox, QDockWidget, QHBoxLayout, QSizePolicy, QVBoxLayout, QWidget

from faig_gui.app.session_model import SessionModel
from faig_gui.core.graph import conv_order
from faig_gui.core.layer_stats import top_counts, top_mass
from faig_gui.core.naming import layer_title, module_name

BAR = "#4c72b0"
SELECTED = "#d62728"
MEASURES = {"count": "top-k count", "mass": "top-k score sum"}


class TextLine(QWidget):
    """One or two lines of text painted in place. A QLabel's new text asks the main window for a
    new layout (every dock moves), and the title changes with each top-k step while the masked
    output is being rendered (docs/performance.md, labels of fixed size)."""

    def __init__(self, lines: int = 1, colour: str = "#222", parent: QWidget | None = None):
        super().__init__(parent)
        self._text = ""
        self.colour = QColor(colour)
        self.setFixedHeight(lines * self.fontMetrics().lineSpacing() + 4)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:
        if text != self._text:
            self._text = text
            self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setPen(self.colour)
        painter.drawText(QRectF(self.rect()), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter |
                         Qt.TextFlag.TextWordWrap, self._text)
        painter.end()


class ProfileDock(QDockWidget):
    def __init__(self, model: SessionModel, parent: QWidget | None = None):
        super().__init__("Importance profile", parent)
        self.setObjectName("ProfileDock")
        self.model = model
        self.measure = "count"
        self.weights: list[str] = []          # conv weights in network order (one bar each)
        self.values = np.zeros(0)
        self._cache: tuple[tuple, np.ndarray] | None = None   # (source, values) of the bars drawn
        self.title = TextLine(lines=2)
        self.hover = TextLine(colour="#444")
        self.measure_box = QComboBox()
        for key, text in MEASURES.items():
            self.measure_box.addItem(text, key)
        self.measure_box.setToolTip("count of the top k % filters per layer, or the sum of their scores")
        self.measure_box.currentIndexChanged.connect(self._on_measure_change)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.getPlotItem().hideButtons()
        self.plot.getPlotItem().getViewBox().setMouseEnabled(x=True, y=False)
        self.plot.setMinimumHeight(120)
        # a fixed axis width: a new range with wider tick labels resized the axis, and that asked
        # the main window for a new layout at every top-k step (during the render)
        self.plot.getPlotItem().getAxis("left").setWidth(56)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=BAR, pen=None)
        self.plot.addItem(self.bars)
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        self.plot.scene().sigMouseMoved.connect(self._on_move)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.title, 1)
        top.addWidget(self.measure_box)
        box = QVBoxLayout()
        box.setContentsMargins(4, 4, 4, 4)
        box.setSpacing(2)
        box.addLayout(top)
        box.addWidget(self.plot, 1)
        box.addWidget(self.hover)
        body = QWidget()
        body.setLayout(box)
        self.setWidget(body)

        model.modelsChanged.connect(self._on_models_change)
        model.scoresChanged.connect(self.refresh)
        model.degradationChanged.connect(self.refresh)
        model.maskShown.connect(self.refresh)   # the top k % lives in the mask settings
        model.selectedLayerChanged.connect(self._paint_bars)
        self._on_models_change()

    # -- data ---------------------------------------------------------------------------------
    def _on_models_change(self) -> None:
        s = self.model.session
        ref = s.target or s.baseline
        known = {layer.name for layer in s.index.layers} if s.index is not None else set()
        self.weights = [w for w in conv_order(ref) if w in known] if ref is not None else []
        # layers the trace did not reach keep their place at the end (the index has every conv)
        if s.index is not None:
            self.weights += [layer.name for layer in s.index.layers if layer.name not in set(self.weights)]
        self._cache = None
        self._set_ticks()
        self.refresh()

    def _set_ticks(self) -> None:
        """As many layer names under the bars as fit side by side (~140 px each)."""
        room = max(3, self.plot.width() // 140)
        step = max(1, int(np.ceil(len(self.weights) / room)))
        ticks = [(k, module_name(w)) for k, w in enumerate(self.weights) if k % step == 0]
        self.plot.getPlotItem().getAxis("bottom").setTicks([ticks])

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._set_ticks()

    def _on_measure_change(self) -> None:
        self.measure = self.measure_box.currentData()
        self.refresh()

    def refresh(self) -> None:
        s = self.model.session
        d = self.model.degradation
        k = s.mask_settings.proportion
        if s.index is None or d not in s.scores or not self.weights:
            self.values = np.zeros(len(self.weights))
            self.title.setText("no scores yet: run the analysis" if s.index is not None else "")
            self._paint_bars()
            return
        source = (s.index, s.scores[d], k, self.measure)
        cache = self._cache
        old = cache[0] if cache is not None else None
        if cache is None or old is None or old[0] is not source[0] or old[1] is not source[1] or old[2:] != source[2:]:
            per_layer = (top_counts if self.measure == "count" else top_mass)(s.index, s.scores[d], k)
            position = {layer.name: n for n, layer in enumerate(s.index.layers)}
            cache = self._cache = (source, np.array([per_layer[position[w]] for w in self.weights], dtype=np.float64))
        self.values = cache[1]
        what = "number of filters" if self.measure == "count" else "summed score of the filters"
        self.title.setText(f"{what} in the top {k:g} % for {d}, per conv layer in network order")
        self.plot.getPlotItem().setLabel("left", "filters" if self.measure == "count" else "score sum")
        self._paint_bars()
        self.plot.getPlotItem().getViewBox().autoRange(padding=0.02)

    def _paint_bars(self, *_args) -> None:
        n = len(self.weights)
        brushes = [pg.mkBrush(SELECTED if w == self.model.selected_layer else BAR) for w in self.weights]
        self.bars.setOpts(x=np.arange(n), height=self.values if len(self.values) == n else np.zeros(n),
                          width=0.8, brushes=brushes)

    # -- pointer ------------------------------------------------------------------------------
    def bar_at(self, scene_pos) -> int:
        """The bar under a scene position, -1 for none (outside the plot or past the ends)."""
        vb = self.plot.getPlotItem().getViewBox()
        if not vb.sceneBoundingRect().contains(scene_pos):
            return -1
        x = vb.mapSceneToView(scene_pos).x()
        k = round(x)
        return k if 0 <= k < len(self.weights) and abs(x - k) <= 0.45 else -1

    def _on_click(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        k = self.bar_at(event.scenePos())
        if k >= 0:
            self.model.select_layer(self.weights[k])

    def _on_move(self, scene_pos) -> None:
        k = self.bar_at(scene_pos)
        ref = self.model.session.target or self.model.session.baseline
        if k < 0 or ref is None:
            return
        arch = ref.architecture
        value = self.values[k] if k < len(self.values) else 0.0
        shown = f"{value:,.0f} filters" if self.measure == "count" else f"score sum {value:.4g}"
        self.hover.setText(f"#{k} {layer_title(arch, self.weights[k])}: {shown}")
