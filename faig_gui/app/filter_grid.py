"""Filter grid dock: the selected layer's out x in filters as a heat map of their scores.

Which filters inside a layer carry the degradation's function, and what happens without them?
Each cell is one filter W[o, i] (row o, column i), coloured by its score for the chosen
degradation on a scale shared by all layers (or, by choice, the layer's own); the legend says
what the score is. Masked filters are crossed out in red, or filled red where cells are too
small for a cross. Click a cell to toggle its mask and see its kernels (target, baseline, their
difference) and its rank for each degradation; drag a rectangle to mask those cells (Ctrl-drag
unmasks), right-click for a menu that masks or unmasks a row, a column or the whole layer.
Hovering shows (layer, out, in), the global index, the score and the rank. The axes are the
layer's channels; the wheel zooms inside them; Shift- or middle-drag pans.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QComboBox, QDockWidget, QGraphicsRectItem, QHBoxLayout, QLabel, QMenu, QVBoxLayout,
                               QWidget)

from faig_gui.app._export import export_widget
from faig_gui.app.filter_parts import ChannelAxis, FilterDetails, MaskOverlay, score_legend
from faig_gui.app.session_model import SessionModel
from faig_gui.core.filters import FilterLayer
from faig_gui.core.naming import layer_title

COLORMAP = "viridis"
#: the shared colour scale spans these percentiles of all filters' scores (FAIG scores have long
#: tails: on the demo pair 98 % of them lie in a tenth of the full range); beyond, colours saturate
SHARED_PERCENTILES = (0.5, 99.5)
RANGES = {"all layers (shared)": "shared", "this layer": "layer"}


def shared_levels(scores: np.ndarray) -> tuple[float, float]:
    lo, hi = (float(v) for v in np.percentile(scores, SHARED_PERCENTILES))
    return (lo, hi if hi > lo else lo + 1e-12)


class GridViewBox(pg.ViewBox):
    """Left click and left drag act on filters; right click opens the filter menu."""

    def __init__(self, grid: FilterGridDock):
        # no locked aspect: the grid fills the panel whatever the layer's shape (128 x 32 cells were
        # 1.6 px rows in a fraction of it)
        super().__init__(lockAspect=False, invertY=True, enableMenu=False)
        self.grid = grid
        self.band = QGraphicsRectItem()
        self.band.setPen(pg.mkPen("#ffffff", width=1.5, style=Qt.PenStyle.DashLine))
        self.band.setBrush(QBrush(QColor(255, 255, 255, 50)))
        self.band.setZValue(20)
        self.band.hide()
        self.addItem(self.band, ignoreBounds=True)

    def mouseClickEvent(self, ev) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.grid.click_at(self.mapSceneToView(ev.scenePos()))
        elif ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            self.grid.menu_at(self.mapSceneToView(ev.scenePos()), ev.screenPos().toPoint())
        else:
            super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        a = self.mapSceneToView(ev.buttonDownScenePos())
        b = self.mapSceneToView(ev.scenePos())
        if ev.isFinish():
            self.band.hide()
            unmask = bool(ev.modifiers() & Qt.KeyboardModifier.ControlModifier)
            self.grid.rectangle(a, b, masked=not unmask)
        else:
            self.band.setRect(QRectF(a, b).normalized())
            self.band.show()


def cell_indices(layer: FilterLayer) -> np.ndarray:
    """(out, in) grid of global filter indices; -1 where no kernel joins the two channels.

    The grid shows every layer as out × in, whatever its storage: a transposed conv's weight is
    (in, out/g), a grouped conv's (out, in/g) (FilterLayer.channel_grid maps them)."""
    cells = np.full((layer.out_channels, layer.in_channels), -1, dtype=np.int64)
    outs, ins = layer.channel_grid()
    cells[outs, ins] = layer.offset + np.arange(layer.count).reshape(layer.rows, layer.cols)
    return cells


def _layout_note(layer: FilterLayer) -> str:
    if layer.groups > 1:
        return f" in {layer.groups} groups (each output sees {layer.in_channels // layer.groups} inputs)"
    return ""


class FilterGridDock(QDockWidget):
    def __init__(self, model: SessionModel, parent: QWidget | None = None):
        super().__init__("Filters", parent)
        self.setObjectName("FilterGridDock")
        self.model = model
        self.cmap = pg.colormap.get(COLORMAP)
        self.layer: FilterLayer | None = None
        # (out, in) grids of the shown layer: the cell's global filter index (-1: no kernel joins
        # them, a grouped conv's other groups), its score, whether it is masked
        self.cells: np.ndarray | None = None
        self.scores: np.ndarray | None = None
        self.masked: np.ndarray | None = None
        self.menu: QMenu | None = None

        self.layer_box = QComboBox()
        self.layer_box.setToolTip("the layer whose filters are shown (clicking a node in the graph selects it)")
        self.layer_box.activated.connect(self._on_layer_chosen)
        self.header = QLabel()
        self.header.setWordWrap(True)
        self.hover = QLabel(" ")
        self.hover.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hover.setMinimumHeight(32)
        self.hover.setWordWrap(True)

        self.range_box = QComboBox()
        self.range_box.addItems(list(RANGES))
        self.range_box.setToolTip("Colour scale: one for all layers, so colours compare between layers (its "
                                  f"range: the {SHARED_PERCENTILES[0]:g}–{SHARED_PERCENTILES[1]:g} percentiles of every "
                                  "filter's score), or this layer's own minimum to maximum")
        self.range_box.currentIndexChanged.connect(lambda _i: self._on_scores_change())
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.legend.setStyleSheet("color: #444;")
        self._hover_pos = None   # scene position of the mouse over the grid (hover text follows the layer)
        self._clicked: tuple[str, int, int] | None = None   # (layer, out, in) shown in the details

        self.viewbox = GridViewBox(self)
        self.x_axis, self.y_axis = ChannelAxis("bottom"), ChannelAxis("left")
        self.plot = pg.PlotWidget(viewBox=self.viewbox, background="w",
                                  axisItems={"bottom": self.x_axis, "left": self.y_axis})
        item = self.plot.getPlotItem()
        item.setLabel("bottom", "in channel")
        item.setLabel("left", "out channel")
        item.hideButtons()
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setColorMap(self.cmap)
        self.overlay = MaskOverlay()
        self.overlay.setZValue(10)
        self.plot.addItem(self.image)
        self.plot.addItem(self.overlay)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=self.cmap, interactive=False, colorMapMenu=False,
                                        width=14)
        self.colorbar.setImageItem(self.image, insert_in=item)
        self.plot.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.details = FilterDetails()
        self.details.hide()

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(QLabel("Layer"))
        top.addWidget(self.layer_box, 1)
        top.addWidget(QLabel("Colours"))
        top.addWidget(self.range_box)
        box = QVBoxLayout()
        box.setContentsMargins(4, 4, 4, 4)
        box.setSpacing(2)
        box.addLayout(top)
        box.addWidget(self.header)
        box.addWidget(self.legend)
        box.addWidget(self.plot, 1)
        box.addWidget(self.hover)
        box.addWidget(self.details)
        body = QWidget()
        body.setLayout(box)
        self.setWidget(body)

        model.modelsChanged.connect(self._on_models_change)
        model.selectedLayerChanged.connect(self._on_layer_change)
        model.scoresChanged.connect(self._on_scores_change)
        model.degradationChanged.connect(self._on_scores_change)
        model.maskShown.connect(self._on_mask_change)
        self._on_models_change()

    # -- which layer -------------------------------------------------------------------------
    def _on_models_change(self) -> None:
        index = self.model.session.index
        self.layer_box.clear()
        if index is not None:
            ref = self.model.session.target or self.model.session.baseline
            assert ref is not None   # an index exists once a model is loaded
            arch = ref.architecture
            for layer in index.layers:
                label = layer_title(arch, layer.name)   # the graph's name for it, plugin's beside
                self.layer_box.addItem(f"{label}  ({layer.out_channels}×{layer.in_channels})", layer.name)
        self._on_layer_change(self.model.selected_layer)

    def _on_layer_chosen(self, row: int) -> None:
        self.model.select_layer(self.layer_box.itemData(row))

    def _on_layer_change(self, name: str) -> None:
        index = self.model.session.index
        if index is None:
            self.layer, self.cells = None, None
        else:
            names = [layer.name for layer in index.layers]
            # nothing selected yet: show the first layer (clicking here works the same)
            self.layer = index.layer(name if name in names else names[0])
            self.layer_box.setCurrentIndex(names.index(self.layer.name))
            self.cells = cell_indices(self.layer)
        if self.layer is None or (self._clicked and self._clicked[0] != self.layer.name):
            self._clicked = None
            self.details.hide()
        self._on_scores_change(reset_view=True)
        self._update_hover()   # the mouse may rest on the grid: say what is under it now

    # -- drawing -------------------------------------------------------------------------------
    def _on_scores_change(self, *_args, reset_view: bool = False) -> None:
        s = self.model.session
        d = self.model.degradation
        layer = self.layer
        self.plot.setVisible(layer is not None)
        if layer is None:
            self.scores = None
            self.image.clear()
            self.overlay.clear()
            self.header.setText("Open a baseline and a target to see their filters.")
            return
        have = d in s.scores
        if have:
            cells = self._cells
            valid = cells >= 0
            self.scores = np.full(cells.shape, np.nan)
            self.scores[valid] = s.scores[d][cells[valid]]
            if self.range_mode == "shared":
                lo, hi = self._shared(d)
                scale = "one scale for all layers"
                scale_tip = (f"{lo:.3g} … {hi:.3g}: the {SHARED_PERCENTILES[0]:g}–{SHARED_PERCENTILES[1]:g} "
                             f"percentiles of every filter's score; beyond, colours saturate")
            else:
                lo, hi = float(np.nanmin(self.scores)), float(np.nanmax(self.scores))
                hi = hi if hi > lo else lo + 1e-12
                scale, scale_tip = "this layer's own scale", f"{lo:.3g} … {hi:.3g}: this layer's minimum to maximum"
            # cells without a kernel take the lowest colour; the overlay greys them out
            self.image.setImage(np.where(valid, self.scores, lo), autoLevels=False, levels=(lo, hi))
            self.colorbar.setLevels((lo, hi))
            self.colorbar.setColorMap(self.cmap)
            self.colorbar.axis.setLabel(f"FAIG score, {d}" if s.active_method == "faig" else f"score, {d}")
            short, more = score_legend(s.active_method, d)
            self.legend.setText(f"<b>Colour</b>: {short} · {scale}")
            self.legend.setToolTip(f"{short}\n{more}\nColour scale: {scale_tip}")
        else:
            self.scores = None
            self.image.setImage(np.zeros((layer.out_channels, layer.in_channels)), autoLevels=False, levels=(0, 1))
            self.colorbar.setColorMap(pg.ColorMap([0, 1], [(217, 221, 227), (217, 221, 227)]))
            self.colorbar.axis.setLabel("no scores")
            self.legend.setText("<b>Colour</b>: no scores yet: run the analysis")
            self.legend.setToolTip("")
        self.image.setRect(QRectF(0, 0, layer.in_channels, layer.out_channels))
        self.header.setText(f"<b>{layer.name}</b> ({layer.kind}): {layer.out_channels} out × {layer.in_channels} in"
                            f"{_layout_note(layer)} = {layer.count:,} filters · <span style='color:#eb141e'>red"
                            f"</span>: masked")
        self.header.setToolTip("Click a cell: mask or unmask that filter and see its kernels and ranks; drag: mask a "
                               "rectangle (Ctrl: unmask); right-click: rows, columns, the layer")
        self._on_mask_change()
        if reset_view:
            self.show_whole_layer()

    @property
    def range_mode(self) -> str:
        """'shared' (one colour scale for every layer) or 'layer' (the layer's own)."""
        return RANGES[self.range_box.currentText()]

    def _shared(self, d: str) -> tuple[float, float]:
        scores = self.model.session.scores[d]
        key = (id(scores), d)
        if getattr(self, "_shared_key", None) != key:
            self._shared_key, self._shared_levels = key, shared_levels(scores)
        return self._shared_levels

    def show_whole_layer(self) -> None:
        """The view spans exactly the layer's channels: 0 … in along x, 0 … out along y; zooming
        and panning stay inside them (no negative channels, no empty margins)."""
        L = self.layer
        if L is None:
            return
        self.x_axis.count, self.y_axis.count = L.in_channels, L.out_channels
        self.viewbox.setLimits(xMin=0, xMax=L.in_channels, yMin=0, yMax=L.out_channels,
                               minXRange=min(L.in_channels, 2), minYRange=min(L.out_channels, 2))
        self.viewbox.setRange(QRectF(0, 0, L.in_channels, L.out_channels), padding=0)

    def _on_mask_change(self) -> None:
        layer, s = self.layer, self.model.session
        if layer is None:
            return
        idx = s.mask.indices
        local = idx[(idx >= layer.offset) & (idx < layer.offset + layer.count)] - layer.offset
        masked = np.zeros(layer.count, dtype=bool)
        masked[local] = True
        cells = self._cells
        valid = cells >= 0
        self.masked = np.zeros(cells.shape, dtype=bool)
        self.masked[valid] = masked[cells[valid] - layer.offset]
        self.overlay.set_cells(self.masked, valid)   # crosses, or filled marks where cells are small
        self.setWindowTitle(f"Filters: {layer.module_name}" + (f" ({len(local)} masked)" if len(local) else ""))

    @property
    def _cells(self) -> np.ndarray:
        """``cells`` of the layer shown (set with the layer: only used while one is)."""
        if self.cells is None:
            raise RuntimeError("no layer shown")
        return self.cells

    # -- filters under the mouse ----------------------------------------------------------------
    def cell_at(self, p: QPointF) -> tuple[int, int] | None:
        """(out, in) of the cell at view coordinates ``p``, or None outside the layer."""
        if self.layer is None:
            return None
        i, o = int(np.floor(p.x())), int(np.floor(p.y()))
        if 0 <= o < self.layer.out_channels and 0 <= i < self.layer.in_channels:
            return o, i
        return None

    def global_index(self, out: int, inp: int) -> int:
        """The filter joining input ``inp`` to output ``out``; -1 when none does (grouped conv)."""
        return int(self._cells[out, inp])

    def click_at(self, p: QPointF) -> None:
        cell = self.cell_at(p)
        if cell is not None and self.global_index(*cell) >= 0:
            self.show_details(*cell)
            self.model.toggle_filters([self.global_index(*cell)])

    def show_details(self, out: int, inp: int) -> None:
        """The filter's kernels (target, baseline, difference) and its rank for each degradation."""
        s, L = self.model.session, self.layer
        ref = s.target or s.baseline
        if L is None or ref is None or s.index is None:
            return
        place = L.storage(out, inp)
        if place is None:
            return
        target = ref.state_dict[L.name][place].detach().double().numpy()
        base = s.baseline.state_dict[L.name][place].detach().double().numpy() if s.baseline else 0 * target
        k = self.global_index(out, inp)
        ranks = {d: (int(self.ranks(d)[k]) + 1, s.index.total) for d in s.scores}
        self._clicked = (L.name, out, inp)
        self.details.show_filter(f"{L.module_name}, out {out}, in {inp} · filter #{k:,}", target, base, ranks)
        self.details.show()

    def rectangle(self, a: QPointF, b: QPointF, masked: bool = True) -> None:
        if self.layer is None:
            return
        L = self.layer
        i0, i1 = sorted((int(np.floor(a.x())), int(np.floor(b.x()))))
        o0, o1 = sorted((int(np.floor(a.y())), int(np.floor(b.y()))))
        i0, i1 = max(i0, 0), min(i1, L.in_channels - 1)
        o0, o1 = max(o0, 0), min(o1, L.out_channels - 1)
        if i0 > i1 or o0 > o1:
            return
        self.mask_cells(range(o0, o1 + 1), range(i0, i1 + 1), masked)

    def mask_cells(self, outs, ins, masked: bool) -> None:
        outs, ins = np.asarray(list(outs)), np.asarray(list(ins))
        idx = self._cells[outs[:, None], ins[None, :]].reshape(-1)
        self.model.mask_filters(idx[idx >= 0], masked)

    def menu_at(self, p: QPointF, screen_pos) -> QMenu | None:
        """The right-click menu: mask or unmask this row, this column, the layer."""
        if self.layer is None:
            return None
        L = self.layer
        if self.menu is not None:
            self.menu.deleteLater()
        menu = QMenu(self)
        cell = self.cell_at(p)
        all_out, all_in = range(L.out_channels), range(L.in_channels)
        if cell is not None:
            o, i = cell
            menu.addAction(f"Mask row (out {o})", lambda: self.mask_cells([o], all_in, True))
            menu.addAction(f"Unmask row (out {o})", lambda: self.mask_cells([o], all_in, False))
            menu.addAction(f"Mask column (in {i})", lambda: self.mask_cells(all_out, [i], True))
            menu.addAction(f"Unmask column (in {i})", lambda: self.mask_cells(all_out, [i], False))
            menu.addSeparator()
        menu.addAction(f"Mask the whole layer ({L.count:,})", lambda: self.mask_cells(all_out, all_in, True))
        menu.addAction("Unmask the whole layer", lambda: self.mask_cells(all_out, all_in, False))
        menu.addSeparator()
        menu.addAction("Show the whole layer", self.show_whole_layer)
        self.menu = menu
        menu.popup(screen_pos)
        return menu

    def _on_mouse_moved(self, scene_pos) -> None:
        self._hover_pos = scene_pos
        self._update_hover()

    def _update_hover(self) -> None:
        """The filter under the mouse in the layer shown now (a new layer replaces the text)."""
        cell = None
        if self._hover_pos is not None and self.layer is not None and self.plot.underMouse():
            cell = self.cell_at(self.viewbox.mapSceneToView(self._hover_pos))
        self.hover.setText(self.describe(*cell) if cell is not None else " ")

    def describe(self, out: int, inp: int) -> str:
        """'(layer, out, in) · global index · score · rank' for one cell."""
        s, L = self.model.session, self.layer
        if L is None or s.index is None:
            return ""
        k = self.global_index(out, inp)
        if k < 0:
            return f"({L.module_name}, out {out}, in {inp}) · no filter: the {L.kind} joins other groups"
        text = f"({L.module_name}, out {out}, in {inp}) · filter #{k:,}"
        if L.transposed:  # the tensor stores it the other way round
            text += f" · stored at weight[{inp}, {out % (L.out_channels // L.groups)}]"
        d = self.model.degradation
        if d in s.scores:
            text += f" · score {s.scores[d][k]:.4g} · rank {int(self.ranks(d)[k]) + 1:,} of {s.index.total:,} for {d}"
        if self.masked is not None and self.masked[out, inp]:
            text += " · masked"
        return text

    def ranks(self, d: str) -> np.ndarray:
        """Every filter's rank for ``d`` (0 = most important), sorted once per set of scores."""
        scores = self.model.session.scores[d]
        cache = self.__dict__.setdefault("_ranks", {})
        if cache.get(d, (None,))[0] is not scores:
            cache[d] = (scores, self.model.session.rank_of(d))
        return cache[d][1]

    def export(self, path) -> None:
        export_widget(path, self.widget())
