"""Prediction dock: drop images, see whether each is clean, blurry, noisy or both, and how much.

The verdicts come from core.prediction (the target's own discriminative filters, calibrated on
the session's analysis images). Requests are copied on the UI thread and computed in a
latest-wins task (live.py): a change of scores, proportion or models re-predicts every entry,
and a newer request supersedes an older one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QProgressBar, QPushButton, QVBoxLayout, QWidget)

from faig_gui.app.live import LatestTask
from faig_gui.app.session_model import SessionModel
from faig_gui.app.workers import live_threads
from faig_gui.core.device import resolve_device
from faig_gui.core.errors import FaigError
from faig_gui.core.imageio import IMAGE_SUFFIXES, read_image
from faig_gui.core.prediction import Prediction, Predictor, PredictorConfig
from faig_gui.core.threads import AdaptiveThreads

THUMB = 56


@dataclass
class PredictionEntry:
    path: str
    lr: np.ndarray                       # HWC float32 RGB [0, 1]
    prediction: Prediction | None = None
    error: str = ""

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclass(frozen=True)
class _Request:
    """Everything one prediction job reads, copied on the UI thread."""

    baseline: object
    target: object
    scores: dict
    analysis_hr: tuple
    degradations: tuple
    proportion: float
    device: str
    images: tuple          # (path, lr) pairs
    max_threads: int = 1   # at most this many torch threads (workers.live_threads)
    tuner: AdaptiveThreads | None = None   # the dock's, used on the prediction thread only


def _thumbnail(lr: np.ndarray) -> QPixmap:
    img = np.ascontiguousarray((np.clip(lr, 0, 1) * 255 + 0.5).astype(np.uint8))
    h, w = img.shape[:2]
    q = QImage(img.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(q).scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                       Qt.TransformationMode.SmoothTransformation)


class _EntryWidget(QWidget):
    """One row: thumbnail, name, verdict and a bar per degradation."""

    def __init__(self, entry: PredictionEntry, names: list[str], parent: QWidget | None = None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        self.thumb = QLabel()
        self.thumb.setPixmap(_thumbnail(entry.lr))
        self.thumb.setFixedSize(THUMB, THUMB)
        lay.addWidget(self.thumb)
        col = QVBoxLayout()
        col.setSpacing(1)
        self.title = QLabel(f"<b>{entry.name}</b>  <span style='color:gray'>{entry.lr.shape[1]}×{entry.lr.shape[0]}</span>")
        self.verdict = QLabel()
        self.verdict.setObjectName("verdict")
        self.verdict.setWordWrap(True)
        col.addWidget(self.title)
        col.addWidget(self.verdict)
        self.bars: dict[str, QProgressBar] = {}
        for d in names:
            bar = QProgressBar()
            bar.setRange(0, 100)
            bar.setFixedHeight(12)
            bar.setTextVisible(True)
            bar.setFormat(f"{d} %p %")
            bar.setToolTip(f"Confidence that the image holds '{d}'")
            col.addWidget(bar)
            self.bars[d] = bar
        lay.addLayout(col, 1)
        self.show_entry(entry)

    def show_entry(self, entry: PredictionEntry) -> None:
        p = entry.prediction
        if entry.error:
            self.verdict.setText(f"<span style='color:#b00'>{entry.error}</span>")
        elif p is None:
            self.verdict.setText("<i>predicting…</i>")
        else:
            text = f"<b>{p.describe()}</b>"
            if p.note:
                text += f"<br><span style='color:gray'>{p.note}</span>"
            self.verdict.setText(text)
            self.setToolTip("Evidence: " + "; ".join(
                f"{kind} " + ", ".join(f"{d} {v:.3g}" for d, v in vals.items()) for kind, vals in p.evidence.items()))
        for d, bar in self.bars.items():
            value = None if p is None or entry.error else p.scores.get(d)
            bar.setValue(0 if value is None else int(round(100 * value)))
            bar.setEnabled(value is not None)


class PredictionDock(QDockWidget):
    """Drop images; each gets a verdict (clean / blur / noise / both), confidences and a strength."""

    predictionsChanged = Signal()   # entries got new verdicts (or errors)

    def __init__(self, model: SessionModel, parent: QWidget | None = None):
        super().__init__("Prediction", parent)
        self.setObjectName("prediction")
        self.model = model
        self.entries: list[PredictionEntry] = []
        self._names: list[str] = []
        self._used: tuple | None = None   # (proportion, models id, scores id) of the last request
        self.task = LatestTask("predict", self)
        self._threads = AdaptiveThreads()   # torch threads of the prediction thread, measured
        self.task.failed.connect(self._on_failed)
        self.task.busyChanged.connect(self._on_busy)
        self.setAcceptDrops(True)
        self._build()
        model.scoresChanged.connect(self._on_inputs_change)
        model.modelsChanged.connect(self._on_inputs_change)
        model.maskShown.connect(self._on_mask_change)
        self._update_status()

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        body = QWidget()
        lay = QVBoxLayout(body)
        lay.setContentsMargins(6, 6, 6, 6)
        self.status = QLabel()
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.list = QListWidget()
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setToolTip("Drop images here; click one to make it the current image")
        self.list.itemClicked.connect(self._on_item_clicked)
        lay.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.add_button = QPushButton("Add images…")
        self.add_button.clicked.connect(self.choose_images)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear)
        row.addWidget(self.add_button)
        row.addWidget(self.clear_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.setWidget(body)

    # -- drops -------------------------------------------------------------------------------
    @staticmethod
    def _image_paths(event) -> list[str]:
        md = event.mimeData()
        if not md.hasUrls():
            return []
        return [u.toLocalFile() for u in md.urls()
                if u.isLocalFile() and Path(u.toLocalFile()).suffix.lower() in IMAGE_SUFFIXES]

    def dragEnterEvent(self, event) -> None:
        if self._image_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        paths = self._image_paths(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.add_paths(paths)

    def choose_images(self) -> None:
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        paths, _ = QFileDialog.getOpenFileNames(self, "Images to predict", "", f"Images ({patterns})")
        if paths:
            self.add_paths(paths)

    # -- entries -----------------------------------------------------------------------------
    def add_paths(self, paths: list[str]) -> int:
        """Read each image (unreadable ones are reported and skipped) and predict the new ones."""
        added = 0
        for p in paths:
            try:
                lr = read_image(p)
            except FaigError as exc:
                self.model.errorOccurred.emit(str(exc))
                continue
            self.entries.append(PredictionEntry(str(p), lr))
            added += 1
        if added:
            self._rebuild_list()
            self._request()
        return added

    def clear(self) -> None:
        self.entries.clear()
        self._rebuild_list()

    def _rebuild_list(self) -> None:
        self.list.clear()
        for entry in self.entries:
            item = QListWidgetItem()
            widget = _EntryWidget(entry, self._names)
            item.setSizeHint(widget.sizeHint())
            item.setData(Qt.ItemDataRole.UserRole, entry.path)
            self.list.addItem(item)
            self.list.setItemWidget(item, widget)

    def entry_widget(self, row: int) -> _EntryWidget:
        return self.list.itemWidget(self.list.item(row))

    def verdict_text(self, row: int) -> str:
        """The verdict as shown (plain text), e.g. 'blur + noise (noise σ ≈ 0.08)'."""
        p = self.entries[row].prediction
        return self.entries[row].error or (p.describe() if p is not None else "")

    def _on_item_clicked(self, item: QListWidgetItem) -> None:
        self.make_current(self.list.row(item))

    def make_current(self, row: int) -> None:
        """Make entry ``row`` the session's current image (adding it to the images if needed)."""
        entry = self.entries[row]
        s = self.model.session
        for pos, img in enumerate(s.images):
            if Path(img.path).resolve() == Path(entry.path).resolve():
                self.model.set_current(pos)
                return
        self.model.add_images([entry.path])

    # -- live updates ------------------------------------------------------------------------
    def _state(self) -> tuple:
        s = self.model.session
        return (s.mask_settings.proportion, id(s.target), id(s.baseline), id(s.scores),
                tuple(id(v) for v in s.scores.values()), len(s.analysis_images))

    def _on_inputs_change(self) -> None:
        self._request(force=True)

    def _on_mask_change(self) -> None:
        if self._state() != self._used:   # only the proportion matters, not hand-toggled filters
            self._request(force=True)

    def _request(self, force: bool = False) -> None:
        s = self.model.session
        self._update_status()
        if force:
            for e in self.entries:
                e.prediction, e.error = None, ""
            if self._names != list(s.scores):
                self._names = list(s.scores)
                self._rebuild_list()
            else:
                self._refresh_rows()
        todo = tuple((e.path, e.lr) for e in self.entries if e.prediction is None and not e.error)
        if not todo or not self._can_predict():
            return
        if self._names != list(s.scores):
            self._names = list(s.scores)
            self._rebuild_list()
        req = _Request(s.baseline, s.target, dict(s.scores), tuple(img.hr for img in s.analysis_images),
                       tuple(s.settings.degradations), float(s.mask_settings.proportion),
                       s.settings.device, todo, live_threads(self.model.long_jobs), self._threads)
        self._used = self._state()
        self.task.submit(lambda: _predict(req), self._apply)

    def _can_predict(self) -> bool:
        return self._why_not() == ""

    def _why_not(self) -> str:
        s = self.model.session
        if not s.ready:
            return "Load a baseline and a target to predict degradations."
        if not s.scores:
            return "Run the analysis (or load scores): the predictor uses the discriminative filters."
        if not s.analysis_images:
            return "Add analysis images: the predictor calibrates on them."
        if s.mask_settings.proportion <= 0:
            return "The masking proportion is 0 %: raise k to give the predictor some filters."
        return ""

    def _apply(self, result: dict) -> None:
        by_path = result["predictions"]
        for e in self.entries:
            if e.path in by_path:
                value = by_path[e.path]
                if isinstance(value, str):
                    e.error = value
                else:
                    e.prediction = value
        self._calibration_note = result["note"]
        self._refresh_rows()
        self._update_status()
        self.predictionsChanged.emit()

    def _refresh_rows(self) -> None:
        for row, entry in enumerate(self.entries):
            w = self.entry_widget(row)
            if w is not None:
                w.show_entry(entry)

    def _on_failed(self, message: str) -> None:
        self.status.setText(f"<span style='color:#b00'>{message}</span>")
        self.model.errorOccurred.emit(message)

    def _on_busy(self, busy: bool) -> None:
        if busy:
            self.status.setText("Predicting… (the first run calibrates on the analysis images)")

    def _update_status(self) -> None:
        why = self._why_not()
        if why:
            self.status.setText(why)
            return
        s = self.model.session
        note = getattr(self, "_calibration_note", "")
        self.status.setText(f"Top {s.mask_settings.proportion:g} % filters of {', '.join(s.scores)}"
                            + (f" · {note}" if note else "") + ". Drop images here.")

    def shutdown(self) -> None:
        """Stop the prediction thread (the window calls this on close)."""
        self.task.close()


def _predict(req: _Request) -> dict:
    """Runs on the prediction thread: calibrate (cached) and predict each image."""
    tuner, limit = req.tuner or AdaptiveThreads(), req.max_threads
    config = PredictorConfig(proportion=req.proportion, device=str(resolve_device(req.device)))
    predictor = Predictor(req.baseline, req.target, req.scores, list(req.analysis_hr), req.degradations, config)
    tuner.apply(limit)
    cal = predictor.calibrate()
    out: dict[str, Prediction | str] = {}
    for path, lr in req.images:
        threads = tuner.apply(limit)
        start = time.perf_counter()
        try:
            out[path] = predictor.predict(lr)
        except FaigError as exc:
            out[path] = str(exc)
        else:
            tuner.record(threads, time.perf_counter() - start, lr.shape[0] * lr.shape[1])
    where = {"disk": ", loaded from the cache", "computed": f" in {cal.seconds:.0f} s"}.get(
        predictor.calibration_source or "", "")
    note = f"calibrated on {len(req.analysis_hr)} analysis images ({len(cal.samples)} samples{where})"
    return {"predictions": out, "note": note}
