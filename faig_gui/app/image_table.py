"""Effect and PSNR of every image in the list, for the current mask, in a table beside the
thumbnails: which images the mask changes most, and what it costs against the ground truth.

Computed off the UI thread (a latest-wins task of its own, core.render.image_metrics) and only
while the table is on screen: after a change it waits for a pause (the live render of the
current image comes first), and a newer change stops the computation between images.
"""
from __future__ import annotations

import copy
import threading

import torch
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from faig_gui.app.live import LatestTask
from faig_gui.app.session_model import SessionModel
from faig_gui.core.masking import masked_state_dict
from faig_gui.core.render import ImageMetrics, image_metrics

COLUMNS = ("Image", "Effect (×1000)", "PSNR target (dB)", "PSNR masked (dB)")
#: the PSNR columns' titles when they show the luma's PSNR (View ▸ PSNR on luma)
COLUMNS_Y = ("Image", "Effect (×1000)", "PSNR-Y target (dB)", "PSNR-Y masked (dB)")
#: quiet time after a change before the table is computed (the current image's render first)
SETTLE_MS = 300


class ImageTable(QTableWidget):
    """One row per session image; a click on a row shows that image. ``updated`` fires when
    new values are in the table."""

    updated = Signal()

    def __init__(self, model: SessionModel, parent: QWidget | None = None):
        super().__init__(0, len(COLUMNS), parent)
        self.session_model = model   # not self.model: that would hide the view's model() method
        self.task = LatestTask("image-table", self)
        self.task.failed.connect(model.errorOccurred)
        self._stop = threading.Event()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._compute)
        self._stale = True
        self.rows: list[ImageMetrics] = []
        self.on_y = False   # the PSNR columns: RGB, or the BT.601 luma (set_psnr_y)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(COLUMNS)):   # the numbers' columns as wide as their titles
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.setToolTip("Per image, target against masked output: the paper's gradient-map effect "
                        "(MSE ×1000) and, where the ground truth is known, the PSNR of both outputs")
        model.imagesChanged.connect(self._on_inputs_change)
        model.modelsChanged.connect(self._on_inputs_change)
        model.maskShown.connect(self._on_inputs_change)
        self.cellClicked.connect(lambda row, _col: self.session_model.set_current(row))

    def _on_inputs_change(self) -> None:
        self._stale = True
        self._stop.set()   # a computation in progress describes the old state
        if self.isVisible():
            self._timer.start(SETTLE_MS)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._stale:
            self._timer.start(0)

    def _compute(self) -> None:
        s = self.session_model.session
        self._fill_names()
        if s.target is None or not s.images:
            self.rows, self._stale = [], False
            self.updated.emit()
            return
        module = copy.deepcopy(s.target.module)   # (the render thread runs the view's own copy)
        params = (masked_state_dict(s.target.state_dict, s.baseline.state_dict, s.mask, s.index)
                  if s.baseline is not None and len(s.mask) else None)
        images = [(img.lr, img.gt) for img in s.images]
        scale = s.scale
        stop = self._stop = threading.Event()
        self._stale = False

        def job() -> list[ImageMetrics]:
            torch.set_num_threads(1)   # the other core stays with the live render
            return image_metrics(module, params, scale, images, stop.is_set)

        self.task.submit(job, self._apply)

    def _fill_names(self) -> None:
        images = self.session_model.session.images
        self.setRowCount(len(images))
        for row, img in enumerate(images):
            name = img.name + (f" · {img.label}" if img.label else "")
            item = QTableWidgetItem(name)
            item.setToolTip(img.path)
            self.setItem(row, 0, item)
            for col in range(1, len(COLUMNS)):
                self.setItem(row, col, QTableWidgetItem("…"))

    def set_psnr_y(self, on_y: bool) -> None:
        """PSNR on the BT.601 luma (True) or on RGB in the PSNR columns; both are computed."""
        self.on_y = bool(on_y)
        self.setHorizontalHeaderLabels(COLUMNS_Y if self.on_y else COLUMNS)
        if self.rows and len(self.rows) == self.rowCount() and not self._stale:
            self._show(self.rows)

    def _apply(self, rows: list[ImageMetrics]) -> None:
        if self._stale or len(rows) != self.rowCount():
            return   # (a newer state is on its way)
        self.rows = rows
        self._show(rows)
        self.updated.emit()

    def _show(self, rows: list[ImageMetrics]) -> None:
        for row, m in enumerate(rows):
            p_t, p_m = (m.psnr_y_target, m.psnr_y_masked) if self.on_y else (m.psnr_target, m.psnr_masked)
            values = (m.effect, p_t, p_m)
            texts = ("–" if m.effect is None else f"{m.effect:.4g}",
                     "no GT" if p_t is None else f"{p_t:.2f}",
                     "–" if p_m is None else f"{p_m:.2f}")
            for col, (value, text) in enumerate(zip(values, texts), start=1):
                item = QTableWidgetItem(text)
                if value is not None:
                    item.setData(Qt.ItemDataRole.UserRole, float(value))   # the number itself
                self.setItem(row, col, item)

    def shutdown(self) -> None:
        self._timer.stop()
        self._stop.set()
        self.task.close()
