"""The centre view's image panels: a title that does not size the layout, a view box with its
image and placeholder text, and the colour bar of the compare panel's colour-mapped views."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGraphicsRectItem


class PanelTitle(pg.LabelItem):
    """A panel's title whose text does not size the layout. pyqtgraph's label makes its text's
    width its minimum width, so every new title (the masked panel's says how many filters are
    masked: a new one after each mask change) re-laid out the canvas and resized all four views,
    UI-thread work at every change (docs/performance.md, "Figures behind the code"). Here the
    columns keep their width, and a title wider than its column is clipped at the column's
    edges."""

    def __init__(self, text: str, **opts):
        super().__init__(text, **opts)
        self.setFlag(self.GraphicsItemFlag.ItemClipsChildrenToShape)

    def updateMin(self) -> None:
        height = self.itemRect().height()
        self.setMinimumWidth(0)
        self.setMinimumHeight(height)
        # (and no taller: the title rows took a share of the spare height, which left the lower
        # titles far above their images)
        self.setMaximumHeight(height)
        self._sizeHint = {Qt.SizeHint.MinimumSize: (0, height), Qt.SizeHint.PreferredSize: (0, height),
                          Qt.SizeHint.MaximumSize: (-1, height), Qt.SizeHint.MinimumDescent: (0, 0)}
        if height != getattr(self, "_laid_out_height", None):
            self._laid_out_height = height
            self.updateGeometry()

    def setText(self, text: str, **args) -> None:
        if text != getattr(self, "text", None) or args:
            super().setText(text, **args)


class Panel:
    def __init__(self, canvas: pg.GraphicsLayoutWidget, row: int, col: int, title: str):
        self.label = PanelTitle(title, size="9pt")
        canvas.addItem(self.label, row=row, col=col)
        self.view = canvas.addViewBox(row=row + 1, col=col, lockAspect=True, invertY=True, enableMenu=False)
        self.view.setBackgroundColor((28, 28, 30))
        self.item = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.item)
        self.placeholder = pg.TextItem("", color=(170, 170, 170), anchor=(0.5, 0.5))
        self.view.addItem(self.placeholder, ignoreBounds=True)
        # the region a preview computed (core/preview.py): on RRDBNet an 8 x 8 LR crop, 32 x 32
        # output pixels of 512, which the eye would not find without an outline
        self.region = QGraphicsRectItem()
        pen = pg.mkPen((0, 200, 255), width=2, style=Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        self.region.setPen(pen)
        self.region.setZValue(10)
        self.region.hide()
        self.view.addItem(self.region, ignoreBounds=True)
        self._shown: tuple | None = None   # (image, levels, lut) last given to the item

    def show(self, image: np.ndarray | None, text: str = "", levels=(0.0, 1.0), lut=None) -> None:
        if image is None:
            self._shown = None
            self.item.clear()
            self.placeholder.setText(text)
            self.place_placeholder()
            return
        self.placeholder.setText("")
        shown = (image, levels, lut)
        if self._shown is not None and all(a is b for a, b in zip(shown, self._shown)):
            return   # the very array already on screen (a mask change leaves input and target)
        self._shown = shown
        self.item.setLookupTable(lut)
        self.item.setImage(image, autoLevels=False, levels=levels)


    def mark(self, rect: tuple[float, float, float, float] | None) -> None:
        """Outline (x, y, width, height) in image pixels; None: no outline."""
        if rect is None:
            self.region.hide()
            return
        self.region.setRect(*rect)
        self.region.show()

    def place_placeholder(self) -> None:
        """In the middle of what the view shows (the views are linked: never move the range)."""
        self.placeholder.setPos(self.view.viewRect().center())


def colour_bar(canvas: pg.GraphicsLayoutWidget, row: int, col: int, rowspan: int,
               colormap: pg.ColorMap) -> pg.ColorBarItem:
    """A vertical colour bar, not editable (its range follows the view it explains), in its own
    narrow column of the canvas; hidden until a colour-mapped view needs it."""
    bar = pg.ColorBarItem(values=(0.0, 1.0), width=14, colorMap=colormap, interactive=False,
                          colorMapMenu=False, orientation="vertical")
    canvas.addItem(bar, row=row, col=col, rowspan=rowspan)
    bar.setVisible(False)
    return bar


def show_bar(bar: pg.ColorBarItem, values: tuple[float, float] | None, unit: str) -> None:
    """The bar's range and unit (on its axis), or the bar hidden when ``values`` is None."""
    if values is None:
        bar.setVisible(False)
        return
    bar.setLevels(values=values)
    bar.axis.setLabel(unit)   # (the bar's labelled axis)
    bar.setToolTip(f"{unit}: {values[0]:.3g} to {values[1]:.3g}")
    bar.setVisible(True)
