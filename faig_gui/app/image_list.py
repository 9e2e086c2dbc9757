"""The strip of thumbnails under the centre view: one per session image, a click shows it,
a right click removes it. Names are elided in the middle, so that files with a common prefix
(grace_hopper_1.png, grace_hopper_2.png) keep their distinct ends in view; the tooltip has the
full name."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QFontMetrics, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QMenu, QSizePolicy, QWidget

from faig_gui.app.session_model import SessionModel

THUMB = 72
#: height of the strip (and of the table that shares its place)
STRIP_HEIGHT = THUMB + 52


class ThumbnailStrip(QListWidget):
    def __init__(self, model: SessionModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.session_model = model   # not self.model: that would hide the view's model() method
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setFlow(QListWidget.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListWidget.Movement.Static)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setGridSize(QSize(THUMB + 40, THUMB + 34))
        self.setFixedHeight(STRIP_HEIGHT)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.setToolTip("Images: click to show one; drop image files here to add them")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.currentRowChanged.connect(self._on_row_change)
        self.customContextMenuRequested.connect(self._menu)

    def refresh(self) -> None:
        """One thumbnail per session image, the current one selected (no signal: the model knows)."""
        s = self.session_model.session
        self.blockSignals(True)
        self.clear()
        metrics, width = QFontMetrics(self.font()), self.gridSize().width() - 6
        for img in s.images:
            item = QListWidgetItem(_icon(img.lr), _caption(img.name, img.label, metrics, width))
            item.setToolTip(f"{img.name}\n{img.path}\n{img.lr.shape[1]}x{img.lr.shape[0]}"
                            + (f" · {img.label}" if img.label else "")
                            + (" · ground truth known" if img.gt is not None else ""))
            self.addItem(item)
        self.setCurrentRow(s.current)
        self.blockSignals(False)

    def select(self, row: int) -> None:
        self.blockSignals(True)
        self.setCurrentRow(row)
        self.blockSignals(False)

    def _on_row_change(self, row: int) -> None:
        self.session_model.set_current(row)

    def _menu(self, pos) -> None:
        item = self.itemAt(pos)
        if item is None:
            return
        row = self.row(item)
        menu = QMenu(self)
        remove = menu.addAction("Remove image")
        if menu.exec(self.mapToGlobal(pos)) is remove:
            self.session_model.remove_image(row)


def _icon(lr: np.ndarray) -> QIcon:
    u8 = np.ascontiguousarray(np.clip(lr * 255 + 0.5, 0, 255).astype(np.uint8))
    h, w = u8.shape[:2]
    img = QImage(u8.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QIcon(QPixmap.fromImage(img).scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                               Qt.TransformationMode.SmoothTransformation))


def _caption(name: str, label: str, metrics: QFontMetrics, width: int) -> str:
    """Name and label, each elided in the middle to ``width`` pixels."""
    short = metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, width)
    return f"{short}\n{metrics.elidedText(label, Qt.TextElideMode.ElideMiddle, width)}" if label else short
