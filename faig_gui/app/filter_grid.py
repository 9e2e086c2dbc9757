"""Filter grid dock: the selected layer's out x in filters as a heat map of their scores.

Which filters inside a layer carry the degradation's function, and what happens without them?
Each cell is one filter W[o, i] (row o, column i), coloured by its score for the chosen
degradation; masked filters are crossed out in red. Click a cell to toggle its mask, drag a
rectangle to mask those cells (Ctrl-drag unmasks), right-click for a menu that masks or unmasks
a row, a column or the whole layer. Hovering shows (layer, out, in), the global index, the
score and the rank. The wheel zooms; Shift- or middle-drag pans.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QComboBox, QDockWidget, QGraphicsRectItem, QHBoxLayout, QLabel, QMenu, QVBoxLayout,
                               QWidget)

from faig_gui.app._export import export_widget
from faig_gui.app.session_model import SessionModel
from faig_gui.core.filters import FilterLayer
from faig_gui.core.naming import layer_title

COLORMAP = "viridis"
MASK_RGBA = (235, 20, 30, 255)
NO_KERNEL_RGBA = (200, 200, 200, 255)  # grouped convs: cells no kernel joins
CROSS = 7   # overlay pixels per cell side


class GridViewBox(pg.ViewBox):
    """Left click and left drag act on filters; right click opens the filter menu."""

    def __init__(self, grid: "FilterGridDock"):
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
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
        self._rank: np.ndarray | None = None    # global rank for model.degradation
        self._rank_key = None
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

        self.viewbox = GridViewBox(self)
        self.plot = pg.PlotWidget(viewBox=self.viewbox, background="w")
        item = self.plot.getPlotItem()
        item.setLabel("bottom", "in channel")
        item.setLabel("left", "out channel")
        item.hideButtons()
        for axis in ("bottom", "left"):
            item.getAxis(axis).enableAutoSIPrefix(False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setColorMap(self.cmap)
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.overlay.setZValue(10)
        self.plot.addItem(self.image)
        self.plot.addItem(self.overlay)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=self.cmap, interactive=False, label="score",
                                        colorMapMenu=False)
        self.colorbar.setImageItem(self.image, insert_in=item)
        self.plot.scene().sigMouseMoved.connect(self._on_mouse_moved)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(QLabel("Layer"))
        top.addWidget(self.layer_box, 1)
        box = QVBoxLayout()
        box.setContentsMargins(4, 4, 4, 4)
        box.addLayout(top)
        box.addWidget(self.header)
        box.addWidget(self.plot, 1)
        box.addWidget(self.hover)
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
            arch = (self.model.session.target or self.model.session.baseline).architecture
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
        self._on_scores_change(reset_view=True)

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
            valid = self.cells >= 0
            self.scores = np.full(self.cells.shape, np.nan)
            self.scores[valid] = s.scores[d][self.cells[valid]]
            lo, hi = float(np.nanmin(self.scores)), float(np.nanmax(self.scores))
            if hi <= lo:
                hi = lo + 1e-12
            # cells without a kernel take the lowest colour; the overlay greys them out
            self.image.setImage(np.where(valid, self.scores, lo), autoLevels=False, levels=(lo, hi))
            self.colorbar.setLevels((lo, hi))
            self.colorbar.setColorMap(self.cmap)
            what = f"score for {d}"
        else:
            self.scores = None
            self.image.setImage(np.zeros((layer.out_channels, layer.in_channels)), autoLevels=False, levels=(0, 1))
            self.colorbar.setColorMap(pg.ColorMap([0, 1], [(217, 221, 227), (217, 221, 227)]))
            what = "no scores yet: run the analysis"
        self._rank = None
        self.header.setText(f"<b>{layer.name}</b> ({layer.kind}): {layer.out_channels} out × {layer.in_channels} in"
                            f"{_layout_note(layer)} = {layer.count:,} filters; colour: {what}; "
                            f"<span style='color:#eb141e'>red ×</span>: masked")
        self._on_mask_change()
        if reset_view:
            self.viewbox.setRange(QRectF(0, 0, layer.in_channels, layer.out_channels), padding=0.02)

    def _on_mask_change(self) -> None:
        layer, s = self.layer, self.model.session
        if layer is None:
            return
        idx = s.mask.indices
        local = idx[(idx >= layer.offset) & (idx < layer.offset + layer.count)] - layer.offset
        masked = np.zeros(layer.count, dtype=bool)
        masked[local] = True
        valid = self.cells >= 0
        self.masked = np.zeros(self.cells.shape, dtype=bool)
        self.masked[valid] = masked[self.cells[valid] - layer.offset]
        # each masked cell gets a red cross, drawn at CROSS pixels per cell, so its colour stays visible
        o_n, i_n = self.masked.shape
        cross = np.eye(CROSS, dtype=bool) | np.eye(CROSS, dtype=bool)[::-1]
        marks = np.kron(self.masked, cross)
        rgba = np.zeros((o_n * CROSS, i_n * CROSS, 4), dtype=np.ubyte)
        rgba[marks] = MASK_RGBA
        rgba[np.kron(~valid, np.ones((CROSS, CROSS), dtype=bool))] = NO_KERNEL_RGBA
        self.overlay.setImage(rgba, autoLevels=False, levels=(0, 255))
        self.overlay.setRect(QRectF(0, 0, i_n, o_n))
        self.setWindowTitle(f"Filters: {layer.module_name}" + (f" ({len(local)} masked)" if len(local) else ""))

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
        return int(self.cells[out, inp])

    def click_at(self, p: QPointF) -> None:
        cell = self.cell_at(p)
        if cell is not None and self.global_index(*cell) >= 0:
            self.model.toggle_filters([self.global_index(*cell)])

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
        idx = self.cells[outs[:, None], ins[None, :]].reshape(-1)
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
        menu.addAction("Show the whole layer",
                       lambda: self.viewbox.setRange(QRectF(0, 0, L.in_channels, L.out_channels), padding=0.02))
        self.menu = menu
        menu.popup(screen_pos)
        return menu

    def _on_mouse_moved(self, scene_pos) -> None:
        cell = self.cell_at(self.viewbox.mapSceneToView(scene_pos))
        self.hover.setText(self.describe(*cell) if cell is not None else " ")

    def describe(self, out: int, inp: int) -> str:
        """'(layer, out, in) · global index · score · rank' for one cell."""
        s, L = self.model.session, self.layer
        k = self.global_index(out, inp)
        if k < 0:
            return f"({L.module_name}, out {out}, in {inp}) · no filter: the {L.kind} joins other groups"
        text = f"({L.module_name}, out {out}, in {inp}) · filter #{k:,}"
        if L.transposed:  # the tensor stores it the other way round
            text += f" · stored at weight[{inp}, {out % (L.out_channels // L.groups)}]"
        d = self.model.degradation
        if d in s.scores:
            key = (id(s.scores[d]), d)
            if self._rank is None or self._rank_key != key:
                self._rank, self._rank_key = s.rank_of(d), key
            text += f" · score {s.scores[d][k]:.4g} · rank {int(self._rank[k]) + 1:,} of {s.index.total:,} for {d}"
        if self.masked is not None and self.masked[out, inp]:
            text += " · masked"
        return text

    def export(self, path) -> None:
        export_widget(path, self.widget())
