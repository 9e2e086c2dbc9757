"""What the network graph draws: operation boxes, folded-module boxes with a + marker, frames
of unfolded modules with a - marker, edges that wrap between rows, and the colour legend.

Text is drawn at a fixed pixel size in scene units and the graph view never zooms out below
MIN_ZOOM, so that labels stay at least ~8 px on screen; the overview strip draws the same
items without text (level of detail).
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import (QBrush, QColor, QFont, QFontMetricsF, QLinearGradient, QPainter, QPainterPath, QPen,
                           QPolygonF)
from PySide6.QtWidgets import (QGraphicsItem, QGraphicsPathItem, QGraphicsRectItem, QGraphicsSimpleTextItem,
                               QSizePolicy, QStyleOptionGraphicsItem, QWidget)

from faig_gui.core.graph import GraphNode

FONT_PX = 12          # label size in scene units
MIN_ZOOM = 0.7        # 12 scene units -> 8.4 px: the smallest text the view ever shows
MAX_ZOOM = 4.0
TEXT_LOD = 0.45       # below this scale (the overview strip) boxes are drawn without text
BIG = ("conv", "block")
#: how far a node's "N masked" badge stands above its box (NodeItem.badge_rect)
BADGE_ABOVE = 8.0

_NEUTRAL = QColor("#d9dde3")
_OP_FILL = QColor("#f4f5f7")
EDGE = QColor("#7b8190")
_SKIP = QColor("#d9822b")
_SELECTED = QColor("#1f6fd1")
_CURRENT = QColor("#7a3fb8")
_MASKED = QColor("#d62728")


def label_font() -> QFont:
    font = QFont()
    font.setPixelSize(FONT_PX)
    return font


def colour_at(cmap: pg.ColorMap, t: float) -> QColor:
    return cmap.mapToQColor(float(min(1.0, max(0.0, t))))


def _text_colour(fill: QColor) -> QColor:
    lum = 0.299 * fill.redF() + 0.587 * fill.greenF() + 0.114 * fill.blueF()
    return QColor("#111") if lum > 0.55 else QColor("#fff")


class NodeState:
    __slots__ = ("value", "norm", "masked", "filters", "selected", "current")

    def __init__(self, filters: int = 0):
        self.value: float | None = None   # importance (None: no scores)
        self.norm = 0.0                   # value mapped into [0, 1] for the colour
        self.masked = 0
        self.filters = filters
        self.selected = False             # holds the selected layer
        self.current = False              # the node the keyboard acts on


class NodeItem(QGraphicsItem):
    """One operation, or a folded module (kind 'block') with a + marker that unfolds it."""

    def __init__(self, node: GraphNode, dock, metrics: QFontMetricsF):
        super().__init__()
        self.node = node
        self.dock = dock
        self.state = NodeState(node.filters)
        self._fill: tuple[tuple, QColor] | None = None
        self._elisions: dict[tuple[str, float], str] = {}
        big = node.kind in BIG
        if big:   # wide enough for the name and the conv count; a block's class name may be elided
            second = self.subtitle() if node.kind == "conv" else f"{len(node.weights)} convs"
            text_w = max(metrics.horizontalAdvance(node.label), metrics.horizontalAdvance(second) + 24)
            self.w = min(230.0, max(96.0, text_w + (34.0 if node.kind == "block" else 18.0)))
            self.h = 38.0
        elif node.kind == "add":
            self.w = self.h = 24.0
        else:
            self.w, self.h = max(28.0, min(120.0, metrics.horizontalAdvance(node.label) + 14.0)), 22.0
        self.setAcceptHoverEvents(True)
        self.setZValue(2)
        self.setCursor(Qt.CursorShape.PointingHandCursor if big else Qt.CursorShape.ArrowCursor)

    def _shape_text(self) -> str:
        if self.node.kind == "conv" and self.node.shape:
            o, i, kh, kw = self.node.shape
            return f"{i}→{o}  {kh}×{kw}"
        return ""

    def boundingRect(self) -> QRectF:   # (room above for the masked badge)
        return QRectF(-self.w / 2 - 2, -self.h / 2 - 10, self.w + 130, self.h + 12)

    def box(self) -> QRectF:
        return QRectF(-self.w / 2, -self.h / 2, self.w, self.h)

    def badge_rect(self) -> QRectF:
        """The red "N masked" badge on the top right corner (item coordinates); empty when
        nothing is masked. It stands :data:`BADGE_ABOVE` above the box, so frames leave room."""
        if not self.state.masked or self.node.kind not in BIG:
            return QRectF()
        text = f"{self.state.masked:,} masked"
        badge = QRectF(0, 0, self.dock.metrics.horizontalAdvance(text) + 8, 15)
        badge.moveBottomRight(self.box().topRight() + QPointF(2, 15 - BADGE_ABOVE))
        return badge

    def marker_rect(self) -> QRectF:
        """The + of a folded module (item coordinates); empty for other nodes."""
        if self.node.kind != "block":
            return QRectF()
        return QRectF(self.w / 2 - 19, -self.h / 2 + 4, 15, 15)

    def fill(self) -> QColor:
        if self.node.kind not in BIG:
            return _OP_FILL
        if self.state.value is None:
            return _NEUTRAL
        key = (id(self.dock.cmap), self.state.norm)
        if self._fill is None or self._fill[0] != key:
            self._fill = (key, colour_at(self.dock.cmap, self.state.norm))
        return self._fill[1]

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        fill = self.fill()
        pen = QPen(EDGE, 1.0)
        if self.state.masked:
            pen = QPen(_MASKED, 2.2)
        if self.state.current:
            pen = QPen(_CURRENT, 2.6, Qt.PenStyle.DashLine)
        if self.state.selected:
            pen = QPen(_SELECTED, 3.2)
        painter.setPen(pen)
        painter.setBrush(QBrush(fill))
        box = self.box()
        if self.node.kind == "add":
            painter.drawEllipse(box)
        else:
            radius = 4.0 if self.node.kind in BIG else self.h / 2
            painter.drawRoundedRect(box, radius, radius)
        if self.node.kind == "block":   # a second outline: there is more inside
            painter.setPen(QPen(pen.color(), 1.0))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(box.adjusted(3, 3, -3, -3), 3, 3)
        if option.levelOfDetailFromTransform(painter.worldTransform()) < TEXT_LOD:
            return
        ink = _text_colour(fill)
        painter.setFont(self.dock.text_font)
        if self.node.kind == "block":
            m = self.marker_rect()
            painter.setPen(QPen(ink, 1.2))
            painter.setBrush(QBrush(QColor(255, 255, 255, 90)))
            painter.drawRect(m)
            painter.drawLine(QPointF(m.left() + 3, m.center().y()), QPointF(m.right() - 3, m.center().y()))
            painter.drawLine(QPointF(m.center().x(), m.top() + 3), QPointF(m.center().x(), m.bottom() - 3))
        painter.setPen(ink)
        if self.node.kind in BIG:
            right = 22 if self.node.kind == "block" else 6
            top = box.adjusted(6, 3, -right, -self.h / 2)
            bottom = box.adjusted(6, self.h / 2 - 1, -6, -3)
            painter.drawText(top, Qt.AlignmentFlag.AlignCenter, self._elided(self.node.label, top.width()))
            painter.drawText(bottom, Qt.AlignmentFlag.AlignCenter,
                             self._elided(self.subtitle(masked=False), bottom.width(),
                                                      Qt.TextElideMode.ElideRight))
            if self.state.masked:   # a red badge on the corner: the subtitle keeps its width
                badge = self.badge_rect()
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(QBrush(_MASKED))
                painter.drawRoundedRect(badge, 7, 7)
                painter.setPen(QColor("white"))
                painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, f"{self.state.masked:,} masked")
        else:
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, self._elided(self.node.label, self.w - 6))

    def _elided(self, text: str, width: float, mode=Qt.TextElideMode.ElideMiddle) -> str:
        key = (text, width)
        if key not in self._elisions:
            if len(self._elisions) > 64:   # (bound the memo)
                self._elisions.clear()
            self._elisions[key] = self.dock.metrics.elidedText(text, mode, width)
        return self._elisions[key]

    def subtitle(self, masked: bool = True) -> str:
        n = self.node
        if n.kind == "conv":
            text = n.friendly or self._shape_text()
        else:
            text = f"{len(n.weights)} convs · {n.friendly}"
        if masked and self.state.masked:
            text += f" · {self.state.masked} masked"
        return text

    def update_tooltip(self) -> None:
        n, s = self.node, self.state
        if n.kind == "conv":
            assert n.shape is not None   # a conv node has its weight's shape
            o, i, kh, kw = n.shape
            lines = [f"<b>{n.label}</b>" + (f" ({n.friendly})" if n.friendly else ""), f"parameter {n.weight}",
                     f"shape {o}×{i}×{kh}×{kw}", f"{s.filters:,} filters ({o} out × {i} in)",
                     f"masked: {s.masked:,}"]
        elif n.kind == "block":
            lines = [f"<b>{n.label}</b> ({n.friendly}, folded)", f"{len(n.weights)} convolutions, {s.filters:,} filters",
                     f"masked: {s.masked:,}", "double-click or + to unfold"]
        else:
            lines = [f"<b>{n.label}</b>", n.detail]
        if n.kind in BIG:
            lines.append(self.dock.describe_value(s.value, n.kind == "block"))
        self.setToolTip("<br>".join(lines))


class GroupLabel(QGraphicsSimpleTextItem):
    """The name of an unfolded module above its frame, with a −: a click folds it again."""

    def __init__(self, path: str, cls: str):
        super().__init__(f"{path} ({cls})  −")
        self.path = path
        self.setFont(label_font())
        self.setBrush(QBrush(QColor("#445")))
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip(f"{path}: click to fold this module into one box")
        self.setZValue(3)


def frame_item(rect: QRectF) -> QGraphicsRectItem:
    frame = QGraphicsRectItem(rect)
    frame.setPen(QPen(QColor("#b8bfcc"), 1, Qt.PenStyle.DashLine))
    frame.setBrush(QBrush(QColor(236, 240, 247, 150)))
    frame.setZValue(0)
    return frame


def edge_item(pts: list[tuple[float, float, int]], start_w: float, end_w: float, gutters: list[float],
              right: float, skip: bool) -> QGraphicsPathItem:
    """Left to right within a row; to a later row, down the gap below the source's row, along
    the right margin when it skips rows, and in along the gap above the destination's row."""
    (x0, y0, r0), (x1, y1, r1) = pts[0], pts[-1]
    start, end = QPointF(x0 + start_w / 2, y0), QPointF(x1 - end_w / 2, y1)
    path = QPainterPath(start)
    if r1 != r0:
        path.lineTo(start.x() + 10, start.y())
        if r1 > r0 + 1:
            path.lineTo(start.x() + 10, gutters[r0 + 1])
            path.lineTo(right, gutters[r0 + 1])
            path.lineTo(right, gutters[r1])
        else:
            path.lineTo(start.x() + 10, gutters[r1])
        path.lineTo(end.x() - 10, gutters[r1])
        path.lineTo(end.x() - 10, end.y())
        path.lineTo(end)
    else:
        cur = start
        for k, (x, y, _) in enumerate(pts[1:], 1):
            nxt = end if k == len(pts) - 1 else QPointF(x, y)
            if abs(cur.y() - nxt.y()) < 1e-6:
                path.lineTo(nxt)
            else:
                mid = (cur.x() + nxt.x()) / 2
                path.cubicTo(QPointF(mid, cur.y()), QPointF(mid, nxt.y()), nxt)
            cur = nxt
    path.addPolygon(QPolygonF([end, end + QPointF(-8, -4.5), end + QPointF(-8, 4.5)]))
    path.closeSubpath()
    item = QGraphicsPathItem(path)
    item.setPen(QPen(_SKIP if skip else EDGE, 1.6 if skip else 1.2))
    item.setZValue(1)
    if skip:
        item.setToolTip("skip connection")
    return item


class ColorBar(QWidget):
    """Horizontal gradient with its range at both ends and, above, what the colour measures."""

    def __init__(self, cmap: pg.ColorMap, parent: QWidget | None = None):
        super().__init__(parent)
        self.cmap = cmap
        self.low, self.high, self.title = "", "", ""
        self.active = False
        self.setMinimumHeight(38)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_range(self, low: str, high: str, title: str, active: bool) -> None:
        self.low, self.high, self.title, self.active = low, high, title, active
        self.setToolTip(f"{title}: {low} … {high}" if active else title)
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(240, 38)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        self.draw(painter, QRectF(self.rect()))
        painter.end()

    def draw(self, painter: QPainter, rect: QRectF) -> None:
        bar = QRectF(rect.left() + 60, rect.top() + 20, max(10.0, rect.width() - 130), 10)
        grad = QLinearGradient(bar.topLeft(), bar.topRight())
        for k in range(11):
            grad.setColorAt(k / 10, colour_at(self.cmap, k / 10) if self.active else _NEUTRAL)
        painter.setPen(QPen(EDGE, 0.8))
        painter.setBrush(QBrush(grad))
        painter.drawRect(bar)
        painter.setPen(QColor("#222"))
        metrics = QFontMetricsF(painter.font())
        painter.drawText(QRectF(rect.left(), rect.top(), rect.width(), 17), Qt.AlignmentFlag.AlignCenter,
                         metrics.elidedText(self.title, Qt.TextElideMode.ElideRight, rect.width() - 4))
        painter.drawText(QRectF(rect.left(), bar.top() - 3, 56, 16),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, self.low)
        painter.drawText(QRectF(bar.right() + 4, bar.top() - 3, 66, 16),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, self.high)
