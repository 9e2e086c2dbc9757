"""Network graph dock: the traced model's operations, convolutions coloured by importance.

Which layers carry the function of a degradation? Each convolution is coloured by how much of
the chosen degradation's ranking it holds (by default the share of its filters in the current
top k %), with a colour bar; the tooltip gives name, shape, filter count and masked count;
clicking a convolution selects its layer for the filter grid. Block groups (e.g. residual
blocks) can be folded into one node each for deep nets. Wheel zooms, dragging pans.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (QBrush, QColor, QFont, QFontMetricsF, QLinearGradient, QPainter, QPainterPath, QPen,
                           QPolygonF)
from PySide6.QtWidgets import (QComboBox, QDockWidget, QGraphicsItem, QGraphicsPathItem, QGraphicsScene,
                               QGraphicsSimpleTextItem, QGraphicsView, QHBoxLayout, QLabel, QPushButton,
                               QSizePolicy, QVBoxLayout, QWidget)

from faig_gui.app._export import export_picture
from faig_gui.app.session_model import SessionModel
from faig_gui.core.graph import GraphNode, NetworkGraph, collapse, graph_for, layout
from faig_gui.core.layer_stats import IMPORTANCE_MEASURES, counts_per_layer, layer_importance, layer_sizes

LANE_GAP = 28.0       # scene units between lanes
ROW = 54.0            # scene units between layers
COLLAPSE_ABOVE = 160  # graphs with more nodes open with their blocks folded
COLORMAP = "viridis"

_NEUTRAL = QColor("#d9dde3")
_OP_FILL = QColor("#f4f5f7")
_EDGE = QColor("#7b8190")
_SKIP = QColor("#d9822b")
_SELECTED = QColor("#1f6fd1")
_MASKED = QColor("#d62728")


def colour_at(cmap: pg.ColorMap, t: float) -> QColor:
    return cmap.mapToQColor(float(min(1.0, max(0.0, t))))


def _text_colour(fill: QColor) -> QColor:
    lum = 0.299 * fill.redF() + 0.587 * fill.greenF() + 0.114 * fill.blueF()
    return QColor("#111") if lum > 0.55 else QColor("#fff")


@dataclass
class NodeState:
    value: float | None = None     # importance (None: no scores)
    norm: float = 0.0              # value mapped into [0, 1] for the colour
    masked: int = 0
    filters: int = 0
    selected: bool = False


class NodeItem(QGraphicsItem):
    """One operation: a box with its label; convolutions and blocks carry colour and counts."""

    def __init__(self, node: GraphNode, centre: QPointF, dock: "GraphDock"):
        super().__init__()
        self.node = node
        self.dock = dock
        self.state = NodeState(filters=node.filters)
        big = node.kind in ("conv", "block")
        self.w, self.h = (184.0, 36.0) if big else (112.0, 22.0)
        self.setPos(centre)
        self.setAcceptHoverEvents(True)
        self.setZValue(2)
        self.setCursor(Qt.CursorShape.PointingHandCursor if big else Qt.CursorShape.ArrowCursor)
        # what paint works out, kept while its inputs stay (a top-k change repaints every node)
        self._fill: tuple[tuple, QColor] | None = None
        self._elisions: dict[tuple[str, float], str] = {}

    def boundingRect(self) -> QRectF:
        return QRectF(-self.w / 2 - 2, -self.h / 2 - 2, self.w + 4, self.h + 4)

    def box(self) -> QRectF:
        return QRectF(-self.w / 2, -self.h / 2, self.w, self.h)

    def fill(self) -> QColor:
        if self.node.kind not in ("conv", "block"):
            return _OP_FILL
        if self.state.value is None:
            return _NEUTRAL
        key = (id(self.dock.cmap), self.state.norm)
        if self._fill is None or self._fill[0] != key:
            self._fill = (key, colour_at(self.dock.cmap, self.state.norm))
        return self._fill[1]

    def paint(self, painter: QPainter, option, widget=None) -> None:
        fill = self.fill()
        pen = QPen(_EDGE, 1.0)
        if self.state.masked:
            pen = QPen(_MASKED, 2.2)
        if self.state.selected:
            pen = QPen(_SELECTED, 3.0)
        painter.setPen(pen)
        painter.setBrush(QBrush(fill))
        radius = 4.0 if self.node.kind in ("conv", "block") else self.h / 2
        painter.drawRoundedRect(self.box(), radius, radius)
        if self.node.kind == "block":  # folded: a second outline says "there is more inside"
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(self.box().adjusted(3, 3, -3, -3), 3, 3)
        painter.setPen(_text_colour(fill))
        font = QFont(painter.font())
        font.setPointSizeF(8.5)
        painter.setFont(font)
        if self.node.kind in ("conv", "block"):
            top = self.box().adjusted(6, 2, -6, -self.h / 2)
            bottom = self.box().adjusted(6, self.h / 2 - 1, -6, -2)
            painter.drawText(top, Qt.AlignmentFlag.AlignCenter, self._elided(painter, self.node.label, top.width()))
            painter.drawText(bottom, Qt.AlignmentFlag.AlignCenter,
                             self._elided(painter, self.subtitle(), bottom.width()))
        else:
            painter.drawText(self.box(), Qt.AlignmentFlag.AlignCenter,
                             self._elided(painter, self.node.label, self.w - 10))

    def _elided(self, painter: QPainter, text: str, width: float) -> str:
        """``text`` elided to ``width`` in the painter's font (always the same 8.5 pt here)."""
        key = (text, width)
        if key not in self._elisions:
            if len(self._elisions) > 64:   # (subtitles carry the masked count: bound the memo)
                self._elisions.clear()
            self._elisions[key] = QFontMetricsF(painter.font()).elidedText(text, Qt.TextElideMode.ElideMiddle, width)
        return self._elisions[key]

    def subtitle(self) -> str:
        n = self.node
        if n.kind == "conv":
            o, i, kh, kw = n.shape
            text = f"{i}→{o}  {kh}×{kw}"
        else:
            text = f"{len(n.members)} ops, {len(n.weights)} convs"
        if self.state.masked:
            text += f"  · {self.state.masked} masked"
        return text

    def update_tooltip(self) -> None:
        n, s = self.node, self.state
        lines = []
        if n.kind == "conv":
            o, i, kh, kw = n.shape
            lines = [f"<b>{n.weight}</b>" + (f" ({n.label})" if n.label != n.module else ""),
                     f"shape {o}×{i}×{kh}×{kw}", f"{s.filters:,} filters ({o} out × {i} in)",
                     f"masked: {s.masked:,}"]
        elif n.kind == "block":
            lines = [f"<b>{n.group}</b> (folded block)", f"{len(n.weights)} convolutions, {s.filters:,} filters",
                     f"masked: {s.masked:,}", "click to unfold"]
        else:
            lines = [f"<b>{n.label}</b>", n.detail]
        if n.kind in ("conv", "block"):
            lines.append(self.dock.describe_value(s.value))
        self.setToolTip("<br>".join(lines))


class GroupLabel(QGraphicsSimpleTextItem):
    """The clickable name of an unfolded block group, left of its frame."""

    def __init__(self, path: str, text: str):
        super().__init__(text)
        self.path = path
        self.setBrush(QBrush(QColor("#556")))
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip(f"{path}: click to fold this block into one node")
        self.setZValue(3)


class GraphView(QGraphicsView):
    """Zoom with the wheel, pan by dragging; a click (press and release in place) on a node or
    a block label is reported, a drag is not."""

    nodeClicked = Signal(str)
    groupClicked = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(QBrush(QColor("#ffffff")))
        self._press = None

    def zoom(self, factor: float) -> None:
        current = self.transform().m11()
        factor = min(max(factor, 0.05 / current), 8.0 / current)
        self.scale(factor, factor)

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom(1.15 ** steps)
        event.accept()

    def fit(self) -> None:
        rect = self.scene().itemsBoundingRect().adjusted(-10, -10, 10, 10)
        if not rect.isEmpty():
            self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)

    def fit_width(self) -> None:
        """Zoom so the graph's width fills the view (readable text), showing its top."""
        rect = self.scene().itemsBoundingRect().adjusted(-10, -10, 10, 10)
        if rect.isEmpty():
            return
        scale = min(1.0, (self.viewport().width() - 4) / rect.width())
        self.resetTransform()
        self.scale(scale, scale)
        self.centerOn(rect.center().x(), rect.top() + self.viewport().height() / (2 * scale))

    def mousePressEvent(self, event) -> None:
        self._press = event.position()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        if event.button() != Qt.MouseButton.LeftButton or self._press is None:
            return
        moved = (event.position() - self._press).manhattanLength()
        self._press = None
        if moved > 4:
            return
        for item in self.items(event.position().toPoint()):
            if isinstance(item, NodeItem):
                self.nodeClicked.emit(item.node.id)
                return
            if isinstance(item, GroupLabel):
                self.groupClicked.emit(item.path)
                return


class ColorBar(QWidget):
    """Horizontal gradient with its range and what it measures."""

    def __init__(self, cmap: pg.ColorMap, parent: QWidget | None = None):
        super().__init__(parent)
        self.cmap = cmap
        self.low, self.high, self.title = "", "", ""
        self.active = False
        self.setMinimumHeight(38)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_range(self, low: str, high: str, title: str, active: bool) -> None:
        self.low, self.high, self.title, self.active = low, high, title, active
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(240, 38)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        self.draw(painter, QRectF(self.rect()))
        painter.end()

    def draw(self, painter: QPainter, rect: QRectF) -> None:
        bar = QRectF(rect.left() + 50, rect.top() + 18, max(10.0, rect.width() - 110), 10)
        grad = QLinearGradient(bar.topLeft(), bar.topRight())
        for k in range(11):
            grad.setColorAt(k / 10, colour_at(self.cmap, k / 10) if self.active else _NEUTRAL)
        painter.setPen(QPen(_EDGE, 0.8))
        painter.setBrush(QBrush(grad))
        painter.drawRect(bar)
        painter.setPen(QColor("#222"))
        painter.drawText(QRectF(rect.left(), rect.top(), rect.width(), 16), Qt.AlignmentFlag.AlignCenter, self.title)
        painter.drawText(QRectF(rect.left(), bar.top() - 3, 46, 16),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, self.low)
        painter.drawText(QRectF(bar.right() + 4, bar.top() - 3, 56, 16),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, self.high)


class GraphDock(QDockWidget):
    def __init__(self, model: SessionModel, parent: QWidget | None = None):
        super().__init__("Network graph", parent)
        self.setObjectName("GraphDock")
        self.model = model
        self.cmap = pg.colormap.get(COLORMAP)
        self.full: NetworkGraph | None = None     # the traced graph
        self.graph: NetworkGraph | None = None    # what is shown (blocks maybe folded)
        self.folded: set[str] = set()
        self.items: dict[str, NodeItem] = {}
        self.group_labels: dict[str, GroupLabel] = {}
        self.measure = "share"
        self._range = (0.0, 1.0)
        self._values_cache = None

        self.view = GraphView()
        self.view.nodeClicked.connect(self._on_node_clicked)
        self.view.groupClicked.connect(self.fold)
        self.colorbar = ColorBar(self.cmap)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #8a5a00;")
        self.note.hide()
        self.measure_box = QComboBox()
        for key, text in IMPORTANCE_MEASURES.items():
            self.measure_box.addItem(text.split(" (")[0], key)
        self.measure_box.setToolTip("what the colour of a convolution measures")
        self.measure_box.currentIndexChanged.connect(self._on_measure_change)
        fit = QPushButton("Fit")
        fit.setToolTip("show the whole graph")
        fit.clicked.connect(self.view.fit)
        self.fold_button = QPushButton("Fold blocks")
        self.fold_button.setToolTip("fold every block group into one node")
        self.fold_button.clicked.connect(self.fold_all)
        self.unfold_button = QPushButton("Unfold")
        self.unfold_button.setToolTip("show every operation")
        self.unfold_button.clicked.connect(self.unfold_all)

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.measure_box, 1)
        bar.addWidget(fit)
        bar.addWidget(self.fold_button)
        bar.addWidget(self.unfold_button)
        box = QVBoxLayout()
        box.setContentsMargins(4, 4, 4, 4)
        box.addLayout(bar)
        box.addWidget(self.note)
        box.addWidget(self.view, 1)
        box.addWidget(self.colorbar)
        body = QWidget()
        body.setLayout(box)
        self.setWidget(body)

        model.modelsChanged.connect(self._on_models_change)
        model.scoresChanged.connect(self.refresh)
        model.maskShown.connect(self.refresh)
        model.degradationChanged.connect(self.refresh)
        model.selectedLayerChanged.connect(self._on_selection_change)
        self._on_models_change()

    # -- building ------------------------------------------------------------------------------
    def _on_models_change(self) -> None:
        s = self.model.session
        ref = s.target or s.baseline
        self.full = graph_for(ref) if ref is not None else None
        self.folded = set(self.full.groups) if self.full and len(self.full.nodes) > COLLAPSE_ABOVE else set()
        if self.full is not None and not self.full.traced:
            self.note.setText(self.full.note)
            self.note.show()
        else:
            self.note.hide()
        self._rebuild()
        self.view.fit_width()

    def fold(self, group: str) -> None:
        if self.full and group in self.full.groups and group not in self.folded:
            self.folded.add(group)
            self._rebuild()

    def unfold(self, group: str) -> None:
        if group in self.folded:
            self.folded.discard(group)
            self._rebuild()

    def fold_all(self) -> None:
        if self.full:
            self.folded = set(self.full.groups)
            self._rebuild()
            self.view.fit_width()

    def unfold_all(self) -> None:
        self.folded = set()
        self._rebuild()
        self.view.fit_width()

    def _rebuild(self) -> None:
        scene = self.view.scene()
        scene.clear()
        self.items, self.group_labels = {}, {}
        if self.full is None:
            self.graph = None
            text = scene.addSimpleText("Open a baseline and a target to see the network.")
            text.setBrush(QBrush(QColor("#666")))
            scene.setSceneRect(text.boundingRect())
            self.refresh()
            return
        self.graph = collapse(self.full, self.folded) if self.folded else self.full
        lay = layout(self.graph)
        for node in self.graph.nodes:
            item = NodeItem(node, QPointF(), self)
            scene.addItem(item)
            self.items[node.id] = item
        lane_x = self._lane_positions(lay)
        for nid, (l, x) in lay.position.items():
            self.items[nid].setPos(QPointF(lane_x[x], l * ROW))
        for e in self.graph.edges:
            pts = [QPointF(lane_x[x], l * ROW) for l, x in lay.routes[(e.src, e.dst)]]
            pts[0] = pts[0] + QPointF(0, self.items[e.src].h / 2)
            pts[-1] = pts[-1] - QPointF(0, self.items[e.dst].h / 2)
            scene.addItem(_edge_item(pts, e.skip))
        self._add_group_frames(scene)
        scene.setSceneRect(scene.itemsBoundingRect().adjusted(-20, -20, 20, 20))
        self.refresh()
        self._on_selection_change(self.model.selected_layer)

    def _lane_positions(self, lay) -> dict[float, float]:
        """Scene x of each lane: as wide as its widest node; lanes of bends only are narrow."""
        width: dict[float, float] = {}
        for nid, (_, x) in lay.position.items():
            width[x] = max(width.get(x, 0.0), self.items[nid].w)
        for route in lay.routes.values():
            for _, x in route:
                width.setdefault(x, 24.0)
        out, left = {}, 0.0
        for x in sorted(width):
            out[x] = left + width[x] / 2
            left += width[x] + LANE_GAP
        return out

    def _add_group_frames(self, scene: QGraphicsScene) -> None:
        members: dict[str, list[NodeItem]] = {}
        for item in self.items.values():
            if item.node.group and item.node.kind != "block":
                members.setdefault(item.node.group, []).append(item)
        for path, items in members.items():
            rect = QRectF()
            for it in items:
                rect = rect.united(it.mapRectToScene(it.box()))
            rect = rect.adjusted(-8, -6, 8, 6)
            frame = scene.addRect(rect, QPen(QColor("#b8bfcc"), 1, Qt.PenStyle.DashLine), QBrush(QColor(240, 243, 248)))
            frame.setZValue(0)
            label = GroupLabel(path, f"{path} ▾")
            label.setPos(rect.left() - label.boundingRect().width() - 6, rect.top())
            scene.addItem(label)
            self.group_labels[path] = label

    # -- colours and counts -------------------------------------------------------------------
    def _on_measure_change(self) -> None:
        self.measure = self.measure_box.currentData()
        self.refresh()

    def refresh(self) -> None:
        """Recolour from the scores, the degradation and top k %; recount masked filters."""
        s = self.model.session
        index = s.index
        d = self.model.degradation
        k = s.mask_settings.proportion
        values: dict[str, float] = {}
        counts: dict[str, int] = {}
        masked: dict[str, int] = {}
        sizes: dict[str, int] = {}
        have = index is not None and d in s.scores
        if index is not None:
            mc = counts_per_layer(index, s.mask.indices) if len(s.mask) and s.mask.indices[-1] < index.total else \
                np.zeros(len(index.layers), dtype=np.int64)
            sz = layer_sizes(index)
            for n, layer in enumerate(index.layers):
                masked[layer.name], sizes[layer.name] = int(mc[n]), int(sz[n])
            if have:
                values, counts = self._layer_values(index, s.scores[d], k)
        node_values: dict[str, float | None] = {}
        for nid, item in self.items.items():
            weights = [w for w in item.node.conv_weights if w in sizes]
            item.state.masked = sum(masked.get(w, 0) for w in weights)
            item.state.filters = sum(sizes.get(w, 0) for w in weights) or item.node.filters
            node_values[nid] = self._combine(weights, values, counts, sizes) if have and weights else None
        shown = [v for v in node_values.values() if v is not None]
        if shown:
            lo = min(shown) if self.measure == "mean_rank" else 0.0
            hi = max(shown)
        else:
            lo, hi = 0.0, 1.0
        self._range = (lo, hi)
        for nid, item in self.items.items():
            v = node_values[nid]
            item.state.value = v
            item.state.norm = 0.0 if v is None or hi <= lo else (v - lo) / (hi - lo)
            item.update_tooltip()
            item.update()
        self._update_colorbar(have, d, k)

    def _layer_values(self, index, scores: np.ndarray, k: float) -> tuple[dict[str, float], dict[str, int]]:
        """Importance and top-k count per layer; ranking all filters takes a while on paper-size
        nets, so the result is kept until the scores, k or the measure change (a mask toggle only
        recounts the masked filters)."""
        source = (index, scores, k, self.measure)
        cached = self._values_cache
        if cached is not None and all(a is b or (isinstance(a, (int, float, str)) and a == b)
                                      for a, b in zip(cached[0], source)):
            return cached[1]
        imp = layer_importance(index, scores, k, self.measure)
        if self.measure == "share":
            tc = np.rint(imp * layer_sizes(index)).astype(np.int64)
        elif self.measure == "count":
            tc = imp.astype(np.int64)
        else:   # mean rank: blocks average the values, counts are not needed
            tc = np.zeros(len(index.layers), dtype=np.int64)
        values = {layer.name: float(imp[n]) for n, layer in enumerate(index.layers)}
        counts = {layer.name: int(tc[n]) for n, layer in enumerate(index.layers)}
        self._values_cache = (source, (values, counts))
        return values, counts

    def _combine(self, weights, values, counts, sizes) -> float:
        """A node's value: the layer's own, or for a folded block the value of its convs together."""
        if len(weights) == 1:
            return values[weights[0]]
        total = sum(sizes[w] for w in weights)
        if self.measure == "share":
            return sum(counts[w] for w in weights) / total
        if self.measure == "count":
            return float(sum(counts[w] for w in weights))
        return sum(values[w] * sizes[w] for w in weights) / total

    def _update_colorbar(self, have: bool, d: str, k: float) -> None:
        if not have:
            why = "no scores yet: run the analysis" if self.model.session.index is not None else ""
            self.colorbar.set_range("", "", why, False)
            return
        lo, hi = self._range
        title = {"share": f"share of the layer's filters in the top {k:g} % for {d}",
                 "count": f"filters in the top {k:g} % for {d}",
                 "mean_rank": f"mean rank percentile for {d} (1 = top)"}[self.measure]
        self.colorbar.set_range(self._fmt(lo), self._fmt(hi), title, True)

    def _fmt(self, v: float) -> str:
        if self.measure == "share":
            return f"{100 * v:.3g} %"
        if self.measure == "count":
            return f"{v:,.0f}"
        return f"{v:.2f}"

    def describe_value(self, value: float | None) -> str:
        d = self.model.degradation
        if value is None:
            return "no scores for this degradation yet"
        k = self.model.session.mask_settings.proportion
        return {"share": f"{100 * value:.2f} % of its filters in the top {k:g} % for {d}",
                "count": f"{value:,.0f} filters in the top {k:g} % for {d}",
                "mean_rank": f"mean rank percentile {value:.3f} for {d}"}[self.measure]

    # -- selection -----------------------------------------------------------------------------
    def _on_node_clicked(self, node_id: str) -> None:
        item = self.items.get(node_id)
        if item is None:
            return
        if item.node.kind == "conv" and item.node.weight:
            self.model.select_layer(item.node.weight)
        elif item.node.kind == "block":
            self.unfold(item.node.group)

    def _on_selection_change(self, name: str) -> None:
        target = self.graph.node_for_weight(name) if (self.graph is not None and name) else None
        for nid, item in self.items.items():
            selected = target is not None and nid == target.id
            if item.state.selected != selected:
                item.state.selected = selected
                item.update()
        if target is not None:
            self.view.ensureVisible(self.items[target.id], 20, 20)

    # -- export --------------------------------------------------------------------------------
    def export(self, path) -> None:
        """The whole graph (not just the visible part) under its colour bar, as PNG or SVG."""
        scene = self.view.scene()
        source = scene.itemsBoundingRect().adjusted(-20, -20, 20, 20)
        bar_h = 46.0
        width = max(source.width(), 360.0)
        size = QSize(int(math.ceil(width)), int(math.ceil(source.height() + bar_h)))

        def paint(painter: QPainter, rect: QRectF) -> None:
            painter.fillRect(rect, QColor("white"))
            self.colorbar.draw(painter, QRectF(0, 4, width, bar_h - 8))
            target = QRectF((width - source.width()) / 2, bar_h, source.width(), source.height())
            scene.render(painter, target, source)

        export_picture(path, size, paint, "faig-gui network graph")


def _edge_item(pts: list[QPointF], skip: bool) -> QGraphicsPathItem:
    path = QPainterPath(pts[0])
    for a, b in zip(pts, pts[1:]):
        if abs(a.x() - b.x()) < 1e-6:
            path.lineTo(b)
        else:
            mid = (a.y() + b.y()) / 2
            path.cubicTo(QPointF(a.x(), mid), QPointF(b.x(), mid), b)
    end = pts[-1]
    head = QPolygonF([end, end + QPointF(-4.5, -8), end + QPointF(4.5, -8)])
    path.addPolygon(head)
    path.closeSubpath()
    item = QGraphicsPathItem(path)
    colour = _SKIP if skip else _EDGE
    item.setPen(QPen(colour, 1.6 if skip else 1.2))
    item.setZValue(1)
    item.setToolTip("skip connection" if skip else "")
    return item
