"""Network graph dock: the traced model folded along its own module hierarchy, coloured by
where the chosen degradation's most important filters are.

The graph opens folded to the level that fits (RRDBNet: 23 RRDB boxes); a double-click, the +
of a box or the + key unfolds it, the − above an unfolded module or the − key folds it again.
Columns run left to right and wrap into rows to suit the dock's shape; the view never zooms
out below legible text, and an overview strip shows the whole graph with the visible part
framed. A search field goes to any layer or module by name (unfolding what hides it), and
*Most important* steps through the layers by their importance. By default a convolution's
colour is the number of its filters in the current top k % (a folded box sums its layers);
the combo under the graph offers the summed score, the share of the layer and the mean rank.
"""
from __future__ import annotations

import math
from typing import cast

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSize, QStringListModel, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFontMetricsF, QPainter
from PySide6.QtWidgets import (QComboBox, QCompleter, QDockWidget, QGraphicsScene, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QSizePolicy, QVBoxLayout, QWidget)

from faig_gui.app._export import export_picture
from faig_gui.app.graph_canvas import GraphView, Overview
from faig_gui.app.graph_items import (BADGE_ABOVE, MIN_ZOOM, ColorBar, GroupLabel, NodeItem, colour_at, edge_item, frame_item,
                                      label_font)
from faig_gui.app.session_model import SessionModel
from faig_gui.core.graph import Layout, NetworkGraph, graph_for, layout
from faig_gui.core.graph_fold import (DEFAULT_BUDGET, ancestors_of, choose_per_row, default_open, flow_layout, fold,
                                     scope_chain)
from faig_gui.core.layer_stats import IMPORTANCE_MEASURES, counts_per_layer, layer_importance, layer_sizes
from faig_gui.core.naming import module_name

__all__ = ["GraphDock", "GraphView", "NodeItem", "colour_at"]

COLORMAP = "viridis"
COL_GAP, LANE, ROW_GAP = 36.0, 52.0, 44.0 + BADGE_ABOVE   # (a row's frames stand the badge's height higher)
DEFAULT_MEASURE = "count"
_SHORT = {"count": "top-k count", "mass": "top-k score sum", "share": "top-k share", "mean_rank": "mean rank"}


class GraphDock(QDockWidget):
    def __init__(self, model: SessionModel, parent: QWidget | None = None):
        super().__init__("Network graph", parent)
        self.setObjectName("GraphDock")
        self.model = model
        self.cmap = pg.colormap.get(COLORMAP)
        self.text_font = label_font()
        self.metrics = QFontMetricsF(self.text_font)
        self.full: NetworkGraph | None = None     # the traced graph
        self.graph: NetworkGraph | None = None    # what is shown (modules maybe folded)
        self.opened: set[str] = set()             # modules the user (or the opening level) unfolded
        self.revealed: set[str] = set()           # modules unfolded to show the selected layer
        self.current = ""                         # node the keys act on
        self.items: dict[str, NodeItem] = {}
        self.group_labels: dict[str, GroupLabel] = {}
        self.measure = DEFAULT_MEASURE
        self.per_row = 0
        self._lay: Layout | None = None   # the layered layout of what is shown
        self._range = (0.0, 1.0)
        # (index, scores, k, measure) -> per-layer (values, counts), the last one computed
        self._values_cache: tuple[tuple, tuple[dict[str, float], dict[str, int]]] | None = None
        self._layer_values: dict[str, float] = {}
        self._important: list[str] = []
        self._important_at = -1

        self.view = GraphView()
        self.view.nodeClicked.connect(self._on_node_clicked)
        self.view.nodeDoubleClicked.connect(self._on_node_double_clicked)
        self.view.markerClicked.connect(self._on_node_double_clicked)
        self.view.groupClicked.connect(self.fold)
        self.view.keyAction.connect(self._on_key_action)
        self.overview = Overview(self.view)
        self.colorbar = ColorBar(self.cmap)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #8a5a00;")
        self.note.hide()
        self.search = QLineEdit()
        self.search.setPlaceholderText("go to layer or module, e.g. body.0.conv1")
        self.search.setToolTip("type a layer or module name and press Enter: it is unfolded, selected and centred")
        self.search.setClearButtonEnabled(True)
        self.completer = QCompleter(self)
        self.completer.setModel(QStringListModel(self))
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.search.setCompleter(self.completer)
        self.search.returnPressed.connect(lambda: self.go_to(self.search.text()))
        self.completer.activated.connect(self.go_to)
        self.important_button = QPushButton("Most important ▸")
        self.important_button.setToolTip("select the next layer by importance for the chosen degradation")
        self.important_button.clicked.connect(self.next_important)
        self.measure_box = QComboBox()
        for key, text in IMPORTANCE_MEASURES.items():
            self.measure_box.addItem(_SHORT[key], key)
            self.measure_box.setItemData(self.measure_box.count() - 1, text, Qt.ItemDataRole.ToolTipRole)
        self.measure_box.setCurrentIndex(self.measure_box.findData(DEFAULT_MEASURE))
        self.measure_box.setToolTip("what the colour of a layer or a folded module measures")
        self.measure_box.currentIndexChanged.connect(self._on_measure_change)
        fit = QPushButton("Fit")
        fit.setToolTip("show the whole graph (as far as its text stays legible)")
        fit.clicked.connect(self.view.fit)
        self.fold_button = QPushButton("Fold")
        self.fold_button.setToolTip("fold the modules back to the opening level")
        self.fold_button.clicked.connect(self.fold_all)
        self._reflow_timer = QTimer(self)
        self._reflow_timer.setSingleShot(True)
        self._reflow_timer.setInterval(120)
        self._reflow_timer.timeout.connect(self._reflow_if_needed)
        self.view.resized.connect(self._reflow_timer.start)

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.search, 1)
        for button in (self.important_button, fit, self.fold_button):
            button.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Fixed)
            bar.addWidget(button)
        legend = QHBoxLayout()
        legend.setContentsMargins(0, 0, 0, 0)
        legend.addWidget(self.measure_box)
        legend.addWidget(self.colorbar, 1)
        box = QVBoxLayout()
        box.setContentsMargins(4, 4, 4, 4)
        box.setSpacing(3)
        box.addLayout(bar)
        box.addWidget(self.note)
        box.addWidget(self.view, 1)
        box.addWidget(self.overview)
        box.addLayout(legend)
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
        self.opened = default_open(self.full, DEFAULT_BUDGET) if self.full is not None else set()
        self.revealed, self.current = set(), ""
        names = []
        if self.full is not None:
            names = [c.module for c in self.full.convs()] + sorted(self.full.scopes)
        # the completer was built on a list of strings: its model is a QStringListModel
        cast(QStringListModel, self.completer.model()).setStringList(names)
        if self.full is not None and not self.full.traced:
            self.note.setText(self.full.note)
            self.note.show()
        else:
            self.note.hide()
        self._rebuild()
        self.view.fit()

    def shown_open(self) -> set[str]:
        return self.opened | self.revealed

    def fold(self, path: str) -> None:
        """Fold an unfolded module (and what was unfolded inside it) into one box."""
        if self.full is None or path not in self.full.scopes:
            return
        inner = {s for s in self.shown_open() if s == path or s.startswith(path + ".")}
        if not inner:
            return
        self.opened -= inner
        self.revealed -= inner
        self.current = f"group:{path}"
        self._rebuild(keep=self.current)

    def unfold(self, path: str) -> None:
        if self.full is None or path not in self.full.scopes or path in self.shown_open():
            return
        self.opened |= {path, *scope_chain(path)}
        self._rebuild()
        self.show_module(path)

    def show_module(self, path: str) -> None:
        """Bring what is drawn of a module into view (its box, or its unfolded contents)."""
        inside = [i for i in self.items.values() if i.node.group == path and i.node.kind == "block"
                  or path in scope_chain(i.node.scope)]
        if inside:
            rect = QRectF()
            for it in inside:
                rect = rect.united(it.mapRectToScene(it.box()))
            self.view.show_rect(rect)

    def fold_all(self) -> None:
        if self.full is not None:
            self.opened, self.revealed = default_open(self.full, DEFAULT_BUDGET), set()
            self._rebuild()
            self.view.fit()

    def _rebuild(self, keep: str = "") -> None:
        """Fold, lay out and draw; ``keep``: a node (or one inside a box) to centre afterwards."""
        scene = self.view.scene()
        scene.clear()
        self.items, self.group_labels = {}, {}
        if self.full is None:
            self.graph, self._lay = None, None
            text = scene.addSimpleText("Open a baseline and a target to see the network.")
            text.setBrush(QBrush(QColor("#666")))
            scene.setSceneRect(text.boundingRect())
            self.refresh()
            return
        self.graph = fold(self.full, self.shown_open())
        self._lay = layout(self.graph)
        for node in self.graph.nodes:
            item = NodeItem(node, self, self.metrics)
            scene.addItem(item)
            self.items[node.id] = item
        self.current = self.current if self.current in self.items else ""
        if self.current:
            self.items[self.current].state.current = True
        self.per_row = self._best_per_row()
        self._place()
        self.refresh()
        self._on_selection_change(self.model.selected_layer, centre=False)
        if keep:
            target = self.items.get(keep) or next((i for i in self.items.values() if keep in i.node.members), None)
            if target is not None:
                self.view.centre_on(target)

    def _best_per_row(self) -> int:
        vp = self.view.viewport()
        widths = {nid: it.w for nid, it in self.items.items()}
        assert self._lay is not None   # laid out with the graph (_rebuild)
        per_row, _ = choose_per_row(self._lay, widths, max(vp.width(), 200), max(vp.height(), 150), MIN_ZOOM,
                                    col_gap=COL_GAP, lane=LANE, row_gap=ROW_GAP)
        return per_row

    def _reflow_if_needed(self) -> None:
        """The dock changed shape: re-wrap the rows when another count of columns suits it."""
        if self._lay is None or not self.items:
            return
        per_row = self._best_per_row()
        if per_row == self.per_row:
            if self.view.fitted:   # untouched since the last fit: fit the new shape
                self.view.fit()
            return
        if per_row != self.per_row:
            self.per_row = per_row
            scene = self.view.scene()
            for it in list(scene.items()):
                if not isinstance(it, NodeItem) and it.parentItem() is None:
                    scene.removeItem(it)
            self.group_labels = {}
            self._place()
            self.view.fit()

    def _place(self) -> None:
        scene = self.view.scene()
        assert self._lay is not None and self.graph is not None   # laid out with the graph (_rebuild)
        flow = flow_layout(self._lay, {nid: it.w for nid, it in self.items.items()}, self.per_row,
                           col_gap=COL_GAP, lane=LANE, row_gap=ROW_GAP)
        for nid, (x, y) in flow.centre.items():
            self.items[nid].setPos(QPointF(x, y))
        gutters = [top - ROW_GAP / 2 for top in flow.row_top] + [flow.height + ROW_GAP / 2]
        for e in self.graph.edges:
            scene.addItem(edge_item(flow.routes[(e.src, e.dst)], self.items[e.src].w, self.items[e.dst].w,
                                    gutters, flow.width + 24, e.skip))
        self._add_frames(scene, flow.row_of)
        scene.setSceneRect(scene.itemsBoundingRect().adjusted(-30, -30, 30, 30))
        self.overview.refit()

    def _add_frames(self, scene: QGraphicsScene, row_of: dict[str, int]) -> None:
        """A dashed frame per unfolded module and row it spans; its name with a − above it."""
        spans: dict[tuple[str, int], QRectF] = {}
        inner: dict[tuple[str, int], int] = {}
        for nid, item in self.items.items():
            chain = scope_chain(item.node.scope)
            for depth, path in enumerate(chain):
                key = (path, row_of[nid])
                box = item.mapRectToScene(item.box())
                spans[key] = spans[key].united(box) if key in spans else box
                inner[key] = max(inner.get(key, 0), len(chain) - depth - 1)
        for key, rect in spans.items():   # room for the name above a masked node's badge, and for
            n = inner[key]                # the names of the frames nested inside
            spans[key] = rect.adjusted(-6 - 5 * n, -18 - BADGE_ABOVE - 17 * n, 6 + 5 * n, 6 + 5 * n)
        for (path, _row), rect in sorted(spans.items(), key=lambda kv: (kv[0][1], kv[0][0].count("."))):
            scene.addItem(frame_item(rect))
            if path not in self.group_labels:
                scopes = self.full.scopes if self.full is not None else {}
                label = GroupLabel(path, scopes.get(path, "module"))
                label.setPos(rect.left() + 3, rect.top() + 1)
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
                values, counts = self._per_layer(index, s.scores[d], k)
        if values is not self._layer_values:
            self._layer_values = values
            self._important = (sorted(values, key=lambda w: (-values[w], index.layer_position(w)))
                               if values and index is not None else [])   # values come from an index
            self._important_at = -1
        node_values: dict[str, float | None] = {}
        for nid, item in self.items.items():
            weights = [w for w in item.node.conv_weights if w in sizes]
            item.state.masked = sum(masked.get(w, 0) for w in weights)
            item.state.filters = sum(sizes.get(w, 0) for w in weights) or item.node.filters
            node_values[nid] = self._combine(weights, values, counts, sizes) if have and weights else None
        shown = [v for v in node_values.values() if v is not None]
        if shown:
            lo = min(shown) if self.measure in ("mean_rank", "mass") else 0.0
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
        self.important_button.setEnabled(bool(self._important))

    def _per_layer(self, index, scores: np.ndarray, k: float) -> tuple[dict[str, float], dict[str, int]]:
        """Importance and top-k count per layer, kept until the scores, k or the measure change
        (a mask toggle only recounts the masked filters)."""
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
        else:   # summed score and mean rank combine from the values themselves
            tc = np.zeros(len(index.layers), dtype=np.int64)
        values = {layer.name: float(imp[n]) for n, layer in enumerate(index.layers)}
        counts = {layer.name: int(tc[n]) for n, layer in enumerate(index.layers)}
        self._values_cache = (source, (values, counts))
        return values, counts

    def _combine(self, weights, values, counts, sizes) -> float:
        """A node's value: the layer's own, or for a folded module its layers' together."""
        if len(weights) == 1:
            return values[weights[0]]
        if self.measure == "share":
            return sum(counts[w] for w in weights) / sum(sizes[w] for w in weights)
        if self.measure == "count":
            return float(sum(counts[w] for w in weights))
        if self.measure == "mass":
            return float(sum(values[w] for w in weights))
        return sum(values[w] * sizes[w] for w in weights) / sum(sizes[w] for w in weights)

    def legend_title(self, k: float, d: str) -> str:
        return {"count": f"number of top {k:g} % filters for {d} (box: sum)",
                "mass": f"summed score of top {k:g} % filters for {d} (box: sum)",
                "share": f"share of the layer's filters in the top {k:g} % for {d}",
                "mean_rank": f"mean rank percentile for {d} (1 = top)"}[self.measure]

    def _update_colorbar(self, have: bool, d: str, k: float) -> None:
        if not have:
            why = "no scores yet: run the analysis" if self.model.session.index is not None else ""
            self.colorbar.set_range("", "", why, False)
            return
        lo, hi = self._range
        self.colorbar.set_range(self._fmt(lo), self._fmt(hi), self.legend_title(k, d), True)

    def _fmt(self, v: float) -> str:
        if self.measure == "share":
            return f"{100 * v:.3g} %"
        if self.measure == "count":
            return f"{v:,.0f}"
        if self.measure == "mass":
            return f"{v:.3g}"
        return f"{v:.2f}"

    def describe_value(self, value: float | None, box: bool = False) -> str:
        d = self.model.degradation
        if value is None:
            return "no scores for this degradation yet"
        k = self.model.session.mask_settings.proportion
        whose = "its layers' filters" if box else "its filters"
        return {"share": f"{100 * value:.2f} % of {whose} in the top {k:g} % for {d}",
                "count": f"{value:,.0f} of {whose} in the top {k:g} % for {d}",
                "mass": f"summed score {value:.4g} of {whose} in the top {k:g} % for {d}",
                "mean_rank": f"mean rank percentile {value:.3f} for {d}"}[self.measure]

    # -- navigation ----------------------------------------------------------------------------
    def go_to(self, text: str) -> bool:
        """Unfold what hides the layer or module named ``text``, select it and centre it."""
        name = module_name(text.strip())
        if self.full is None or not name:
            return False
        convs = {c.module: c for c in self.full.convs()}
        if name not in convs and name not in self.full.scopes:
            hits = [m for m in list(convs) + list(self.full.scopes) if name.lower() in m.lower()]
            if len(hits) != 1:
                self.model.statusMessage.emit(f"no layer or module named '{text.strip()}'" if not hits else
                                              f"'{text.strip()}' matches {len(hits)} names: type more of one")
                return False
            name = hits[0]
        if name in convs:
            weight = convs[name].weight
            assert weight is not None   # a conv node names its weight
            self._show_layer(weight, centre=True)
            self.model.select_layer(weight)
        else:
            self.revealed = set(scope_chain(name)[:-1])
            self.current = f"group:{name}" if name not in self.shown_open() else ""
            self._rebuild()
            self.show_module(name)
        return True

    def next_important(self) -> None:
        """Select the next layer by importance (the colour's measure) for the chosen degradation."""
        if not self._important:
            return
        self._important_at = (self._important_at + 1) % len(self._important)
        weight = self._important[self._important_at]
        value = self._layer_values[weight]
        self.important_button.setToolTip(f"#{self._important_at + 1} of {len(self._important)}: "
                                         f"{module_name(weight)}, {self.describe_value(value)}")
        self._show_layer(weight, centre=True)
        self.model.select_layer(weight)

    def _show_layer(self, weight: str, centre: bool) -> None:
        """Unfold the modules hiding a layer (folding back those unfolded for the previous one)."""
        if self.full is None:
            return
        chain = set(ancestors_of(self.full, weight))
        if not chain <= self.shown_open():
            self.revealed = chain - self.opened
            self._rebuild()
        node = self.graph.node_for_weight(weight) if self.graph is not None else None
        if node is not None and centre:
            self.view.centre_on(self.items[node.id])

    def _set_current(self, node_id: str) -> None:
        for nid, item in self.items.items():
            if item.state.current != (nid == node_id):
                item.state.current = nid == node_id
                item.update()
        self.current = node_id

    def _on_node_clicked(self, node_id: str) -> None:
        item = self.items.get(node_id)
        if item is None:
            return
        self._set_current(node_id)
        if item.node.kind == "conv" and item.node.weight:
            self.model.select_layer(item.node.weight)

    def _on_node_double_clicked(self, node_id: str) -> None:
        item = self.items.get(node_id)
        if item is not None and item.node.kind == "block":
            self.unfold(item.node.group)

    def _on_key_action(self, action: str) -> None:
        item = self.items.get(self.current)
        if item is None:
            return
        if action == "unfold" and item.node.kind == "block":
            self.unfold(item.node.group)
        elif action == "fold" and item.node.scope:
            self.fold(item.node.scope)

    def _on_selection_change(self, name: str, centre: bool = True) -> None:
        if name and centre:
            self._show_layer(name, centre=False)
        target = self.graph.node_for_weight(name) if (self.graph is not None and name) else None
        for nid, item in self.items.items():
            selected = target is not None and nid == target.id
            if item.state.selected != selected:
                item.state.selected = selected
                item.update()
        if target is not None and centre:
            self.view.ensureVisible(self.items[target.id], 30, 30)
            self.view.viewChanged.emit()

    # -- export --------------------------------------------------------------------------------
    def export(self, path) -> None:
        """The whole graph (not just the visible part) under its colour bar, as PNG or SVG."""
        scene = self.view.scene()
        source = scene.itemsBoundingRect().adjusted(-20, -20, 20, 20)
        bar_h = 46.0
        width = max(source.width(), 360.0)
        size = QSize(math.ceil(width), math.ceil(source.height() + bar_h))

        def paint(painter: QPainter, rect: QRectF) -> None:
            painter.fillRect(rect, QColor("white"))
            self.colorbar.draw(painter, QRectF(0, 4, width, bar_h - 8))
            target = QRectF((width - source.width()) / 2, bar_h, source.width(), source.height())
            scene.render(painter, target, source)

        export_picture(path, size, paint, "faig-gui network graph")
