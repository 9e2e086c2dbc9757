"""Pieces of the Filters panel: channel axes, the masked-filter overlay, the clicked filter's
kernels and ranks, and the words that say what a score is."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

MASK_COLOR = QColor(235, 20, 30)
NO_KERNEL_COLOR = QColor(200, 200, 200)   # grouped convs: cells no kernel joins
#: below this many screen pixels per cell (either side) a cross is unreadable: masked cells are
#: filled instead (a marked overlay), at least MIN_MARK_PX on each side
CROSS_MIN_PX = 6.0
MIN_MARK_PX = 2.0
KERNEL_PX = 42   # side of a kernel's picture in the details


def score_legend(method: str, degradation: str) -> tuple[str, str]:
    """What the colour of a cell is, in the paper's terms (docs/method.md): a short line and the rest."""
    d = degradation
    return {
        "faig": (f"FAIG score for {d}: A(x_{d}) − mean A(others)",
                 f"A(x) = Σ over the kernel of |(θ̄ − θ) ⊙ ∂L/∂θ averaged along the path from the target θ to the "
                 f"baseline θ̄|, for the image degraded by {d} (x_{d}) or by each other degradation; high: the "
                 f"filter serves {d}"),
        "ig": (f"IG score for {d}: |Σ ∂output/∂θ| along the input path clean → {d}",
               "integrated gradients along the input path, target fixed (the paper's comparison)"),
        "abs": ("|θ − θ̄| / |θ̄|: the kernel's relative change", "the same for every degradation; no data"),
        "random": ("a seeded random ranking", "the paper's control"),
    }.get(method, (f"score for {d}", "loaded scores: the higher, the more important"))


class ChannelAxis(pg.AxisItem):
    """Channel numbers at the centres of the cells (cell n spans [n, n + 1)), integers only,
    never outside 0 … count − 1."""

    def __init__(self, orientation: str, count: int = 1, **kw):
        super().__init__(orientation, **kw)
        self.count = count
        self.enableAutoSIPrefix(False)

    def tickValues(self, minVal, maxVal, size):
        minVal, maxVal = sorted((minVal, maxVal))   # (an inverted axis gives them top first)
        lo, hi = max(0, math.ceil(minVal - 0.5)), min(self.count - 1, math.floor(maxVal - 0.5))
        if hi < lo:
            return []
        room = max(1, int(size / 38))   # about one label per 38 px
        span = hi - lo + 1
        step = 1
        for s in (1, 2, 4, 5, 8, 10, 16, 20, 25, 32, 50, 64, 100, 128, 200, 250, 256, 500, 512, 1000):
            step = s
            if span / s <= room:
                break
        first = (lo + step - 1) // step * step
        return [(step, [v + 0.5 for v in range(first, hi + 1, step)])]

    def tickStrings(self, values, scale, spacing):
        return [str(math.floor(v)) for v in values]


class MaskOverlay(pg.GraphicsObject):
    """Red crosses on masked cells while cells are big enough to read them; below that a filled
    mark of at least MIN_MARK_PX screen pixels per side, so a mask never turns into speckles."""

    def __init__(self):
        super().__init__()
        self.cells = np.zeros((0, 2), dtype=np.int64)   # (row, col) of masked cells
        self.empty = np.zeros((0, 2), dtype=np.int64)   # (row, col) of cells no kernel joins
        self.shape_rc = (1, 1)
        self.mode = "cross"   # what the last paint drew: 'cross' or 'fill'

    def set_cells(self, masked: np.ndarray, valid: np.ndarray | None = None) -> None:
        self.prepareGeometryChange()
        self.shape_rc = masked.shape
        self.cells = np.argwhere(masked)
        self.empty = np.argwhere(~valid) if valid is not None else np.zeros((0, 2), dtype=np.int64)
        self.update()

    def clear(self) -> None:
        self.set_cells(np.zeros((1, 1), dtype=bool))

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, self.shape_rc[1], self.shape_rc[0])

    def cell_pixels(self) -> tuple[float, float]:
        """Screen pixels per cell (width, height) at the current zoom."""
        r = self.mapRectToDevice(QRectF(0, 0, 1, 1))
        return (0.0, 0.0) if r is None else (r.width(), r.height())

    def paint(self, p: QPainter, *_args) -> None:
        if not len(self.cells) and not len(self.empty):
            return
        t = p.worldTransform()   # (a scale and a shift: the view box neither rotates nor shears)
        sx, sy, dx, dy = t.m11(), t.m22(), t.m31(), t.m32()
        cw, ch = abs(sx), abs(sy)
        dev = p.device()
        view = (0.0, 0.0, float(dev.width()), float(dev.height())) if dev is not None else None
        p.save()
        p.resetTransform()   # draw in device pixels: the marks keep their size at any zoom
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(NO_KERNEL_COLOR)
        if len(self.empty):
            p.drawRects(_boxes(self.empty, sx, sy, dx, dy, 0.0, view))
        if min(cw, ch) >= CROSS_MIN_PX:
            self.mode = "cross"
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            p.setPen(QPen(MASK_COLOR, max(1.5, min(cw, ch) / 10)))
            lines = []
            for box in _boxes(self.cells, sx, sy, dx, dy, 0.0, view):
                box.adjust(1.5, 1.5, -1.5, -1.5)
                lines += [QLineF(box.topLeft(), box.bottomRight()), QLineF(box.topRight(), box.bottomLeft())]
            p.drawLines(lines)
        else:
            self.mode = "fill"
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(MASK_COLOR)
            if len(self.cells):
                p.drawRects(_boxes(self.cells, sx, sy, dx, dy, MIN_MARK_PX, view))
        p.restore()


def _boxes(cells: np.ndarray, sx: float, sy: float, dx: float, dy: float, least: float,
           view: tuple[float, float, float, float] | None = None) -> list[QRectF]:
    """Device rectangles of (row, col) cells, each at least ``least`` pixels a side (centred),
    those outside ``view`` (x, y, width, height) left out: zoomed in on a large layer, drawing
    every mark took ~0.5 s a paint."""
    x0, x1 = cells[:, 1] * sx + dx, (cells[:, 1] + 1) * sx + dx
    y0, y1 = cells[:, 0] * sy + dy, (cells[:, 0] + 1) * sy + dy
    left, top = np.minimum(x0, x1), np.minimum(y0, y1)
    w, h = np.abs(x1 - x0), np.abs(y1 - y0)
    grow_w, grow_h = np.maximum(least - w, 0) / 2, np.maximum(least - h, 0) / 2
    if view is not None:
        vx, vy, vw, vh = view
        keep = ((left + w + grow_w >= vx) & (left - grow_w <= vx + vw)
                & (top + h + grow_h >= vy) & (top - grow_h <= vy + vh))
        left, top, w, h, grow_w, grow_h = (a[keep] for a in (left, top, w, h, grow_w, grow_h))
    return [QRectF(*v) for v in zip((left - grow_w).tolist(), (top - grow_h).tolist(),
                                    (w + 2 * grow_w).tolist(), (h + 2 * grow_h).tolist())]


def _diverging(values: np.ndarray, limit: float) -> QPixmap:
    """A kernel as a picture: blue negative, white zero, orange positive, scaled by ``limit``."""
    v = np.clip(values / max(limit, 1e-12), -1, 1)
    neg, pos = np.array([33, 102, 172.0]), np.array([230, 97, 1.0])
    white = np.array([247, 247, 247.0])
    rgb = np.where(v[..., None] < 0, white + (neg - white) * (-v[..., None]), white + (pos - white) * v[..., None])
    img = np.ascontiguousarray(rgb.astype(np.uint8))
    h, w = img.shape[:2]
    q = QImage(img.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(q).scaled(KERNEL_PX, KERNEL_PX, Qt.AspectRatioMode.KeepAspectRatio,
                                       Qt.TransformationMode.FastTransformation)


class FilterDetails(QWidget):
    """The clicked filter: its kernels (target, baseline, target − baseline) and its rank for
    each degradation."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 2, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(0)
        self.pictures: dict[str, QLabel] = {}
        for col, name in enumerate(("target", "baseline", "difference")):
            pic = QLabel()
            pic.setFixedSize(KERNEL_PX, KERNEL_PX)
            cap = QLabel(name if name != "difference" else "target − baseline")
            cap.setStyleSheet("color: gray; font-size: 8pt;")
            grid.addWidget(pic, 0, col, Qt.AlignmentFlag.AlignHCenter)
            grid.addWidget(cap, 1, col, Qt.AlignmentFlag.AlignHCenter)
            self.pictures[name] = pic
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        grid.addWidget(self.text, 0, 3, 2, 1)
        grid.setColumnStretch(3, 1)
        self.kernels: dict[str, np.ndarray] = {}

    def show_filter(self, title: str, target: np.ndarray, baseline: np.ndarray,
                    ranks: dict[str, tuple[int, int]]) -> None:
        """``ranks``: degradation -> (rank counted from 1, number of filters)."""
        diff = target - baseline
        self.kernels = {"target": target, "baseline": baseline, "difference": diff}
        weights = float(max(np.abs(target).max(), np.abs(baseline).max()))
        for name, values in self.kernels.items():
            limit = float(np.abs(diff).max()) if name == "difference" else weights
            self.pictures[name].setPixmap(_diverging(values, limit))
            self.pictures[name].setToolTip(f"{name}: max |value| {np.abs(values).max():.3g} (colour scale ±{limit:.3g})\n"
                                           + "\n".join("  ".join(f"{x:+.3f}" for x in row) for row in values))
        rank_text = " · ".join(f"{d} <b>{r:,}</b> of {n:,} (top {100 * r / n:.2g} %)" for d, (r, n) in ranks.items())
        self.text.setText(f"<b>{title}</b><br>rank: {rank_text or 'no scores yet'}<br>"
                          f"<span style='color:gray'>|Δ| = {np.abs(diff).sum():.3g} over the kernel</span>")
