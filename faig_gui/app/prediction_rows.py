"""The Prediction panel's rows: an image's thumbnail, name, verdict and one confidence bar per
degradation with the decision threshold marked."""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from faig_gui.core.prediction import INTERVAL_COVERAGE, Prediction

THUMB = 56
#: a degradation is predicted present when its confidence passes this (calibration.decide: z > 0,
#: confidence = sigmoid(2 z))
THRESHOLD = 0.5


@dataclass
class PredictionEntry:
    path: str
    lr: np.ndarray                       # HWC float32 RGB [0, 1]
    prediction: Prediction | None = None
    error: str = ""

    @property
    def name(self) -> str:
        return Path(self.path).name


def _thumbnail(lr: np.ndarray) -> QPixmap:
    img = np.ascontiguousarray((np.clip(lr, 0, 1) * 255 + 0.5).astype(np.uint8))
    h, w = img.shape[:2]
    q = QImage(img.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(q).scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                       Qt.TransformationMode.SmoothTransformation)


class ConfidenceBar(QWidget):
    """'blur ▕████▏│    ▏ 0.82': the confidence as a filled track with the decision threshold
    marked across it; the name and the number sit outside the track, so they stay readable
    whatever the fill."""

    NAME_W, VALUE_W, HEIGHT = 44, 34, 16

    def __init__(self, name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.name = name
        self._value: float | None = None
        self.setFixedHeight(self.HEIGHT)
        self.setMinimumWidth(self.NAME_W + self.VALUE_W + 60)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(f"Confidence that the image holds '{name}'; the mark is the decision threshold "
                        f"({THRESHOLD:g}): past it, '{name}' is in the verdict")

    def set_confidence(self, value: float | None) -> None:
        self._value = value
        self.update()

    def value(self) -> int:
        """The confidence in percent (0 when there is none)."""
        return 0 if self._value is None else round(100 * self._value)

    def text(self) -> str:
        return "–" if self._value is None else f"{self._value:.2f}"

    def track(self) -> QRectF:
        """The bar's track in widget coordinates (the threshold mark is drawn across it)."""
        return QRectF(self.NAME_W, 3, max(10, self.width() - self.NAME_W - self.VALUE_W - 4), self.HEIGHT - 6)

    def threshold_x(self) -> float:
        t = self.track()
        return t.left() + THRESHOLD * t.width()

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        pal = self.palette()
        on = self._value is not None
        p.setPen(pal.color(pal.ColorRole.WindowText) if on else pal.color(pal.ColorRole.Mid))
        p.drawText(QRectF(0, 0, self.NAME_W - 4, self.HEIGHT), Qt.AlignmentFlag.AlignVCenter, self.name)
        t = self.track()
        p.setPen(QPen(pal.color(pal.ColorRole.Mid), 1))
        p.setBrush(pal.color(pal.ColorRole.Base))
        p.drawRect(t)
        if self._value is not None:   # (on)
            fill = QRectF(t.left(), t.top(), t.width() * min(max(self._value, 0.0), 1.0), t.height())
            p.fillRect(fill, QColor("#d9534f") if self._value > THRESHOLD else QColor("#7fa7d9"))
        x = self.threshold_x()
        p.setPen(QPen(pal.color(pal.ColorRole.WindowText), 2))
        p.drawLine(round(x), 0, round(x), self.HEIGHT)
        p.setPen(pal.color(pal.ColorRole.WindowText) if on else pal.color(pal.ColorRole.Mid))
        p.drawText(QRectF(t.right() + 4, 0, self.VALUE_W, self.HEIGHT),
                   Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, self.text())
        p.end()


def verdict_html(p: Prediction) -> str:
    """The verdict as the row shows it: an unsure one says so (in orange) with the label sets in
    question; then the verdict's confidence, what the filters alone, the classical estimates alone
    and the kind that measures a degradation itself alone (the spectral blur, for a blur found
    alone) say, the evidence beyond the calibration's range if any, and how much of the image was
    analysed."""
    if p.unsure:
        text = f"<b style='color:#c60'>{html.escape(p.describe())}</b>"
    else:
        text = f"<b>{html.escape(p.describe())}</b>"
    text += f" <span style='color:gray'>(confidence {p.confidence:.2f})</span>"
    side = []
    if p.filters:
        side.append("filters: " + ", ".join(f"{d} {v:.2f}" for d, v in p.filters.items()))
    if est := p.classical_note():
        side.append("classical: " + est)
    if p.measured:
        side.append("measured alone: " + ", ".join(f"{d} {v:.2f}" for d, v in p.measured.items()))
    if side:
        text += "<br><span style='color:gray'>" + html.escape(" · ".join(side)) + "</span>"
    if p.outside:   # why it is unsure: evidence the calibration never held
        beyond = "; ".join(f"{d}: {', '.join(k.replace('_', ' ') for k in kinds)}" for d, kinds in p.outside.items())
        text += ("<br><span style='color:#c60'>" + html.escape(f"beyond the calibration's range: {beyond}", quote=False)
                 + "</span>")
    if p.hidden:   # why a blur is unsure: the noise hides the detail it would take
        text += "<br><span style='color:#c60'>" + html.escape(p.hidden_note(), quote=False) + "</span>"
    where = p.note or f"analysed the whole image ({p.tiles} tile)"
    text += f"<br><span style='color:gray'>{html.escape(where)}</span>"
    return text


class EntryWidget(QFrame):
    """One row: thumbnail, name, verdict (wrapped, never cut) and a bar per degradation."""

    clicked = Signal()

    def __init__(self, entry: PredictionEntry, names: list[str], parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 3, 4, 3)
        self.thumb = QLabel()
        self.thumb.setPixmap(_thumbnail(entry.lr))
        self.thumb.setFixedSize(THUMB, THUMB)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignTop)
        lay.addWidget(self.thumb, 0, Qt.AlignmentFlag.AlignTop)
        col = QVBoxLayout()
        col.setSpacing(2)
        self.title = QLabel(f"<b>{entry.name}</b>  <span style='color:gray'>{entry.lr.shape[1]}×{entry.lr.shape[0]}</span>")
        self.title.setWordWrap(True)
        self.verdict = QLabel()
        self.verdict.setObjectName("verdict")
        self.verdict.setWordWrap(True)
        self.verdict.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        col.addWidget(self.title)
        col.addWidget(self.verdict)
        self.bars: dict[str, ConfidenceBar] = {}
        for d in names:
            bar = ConfidenceBar(d)
            col.addWidget(bar)
            self.bars[d] = bar
        lay.addLayout(col, 1)
        self.show_entry(entry)

    def mouseReleaseEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(event.position().toPoint()):
            self.clicked.emit()
        super().mouseReleaseEvent(event)

    def show_entry(self, entry: PredictionEntry) -> None:
        p = entry.prediction
        if entry.error:
            self.verdict.setText(f"<span style='color:#b00'>{entry.error}</span>")
        elif p is None:
            self.verdict.setText("<i>predicting…</i>")
        else:
            self.verdict.setText(verdict_html(p))
            self.verdict.setToolTip(
                f"[low–high]: where the strength lies for {100 * INTERVAL_COVERAGE:.0f} % of images with this "
                "evidence (the calibration's spread at one level)" if p.interval else "")
            self.setToolTip("Evidence: " + "; ".join(
                f"{kind} " + ", ".join(f"{d} {v:.3g}" for d, v in vals.items()) for kind, vals in p.evidence.items()))
        for d, bar in self.bars.items():
            bar.set_confidence(None if p is None or entry.error else p.scores.get(d))
