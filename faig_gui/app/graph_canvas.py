"""The graph dock's canvas: the zoomable view of the graph (zoom kept within legible text; clicks,
double-clicks and +/- keys reported to the dock) and the overview strip under it."""
from __future__ import annotations

from PySide6.QtCore import QRect, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPen
from PySide6.QtWidgets import QGraphicsScene, QGraphicsView, QWidget

from faig_gui.app.graph_items import MAX_ZOOM, MIN_ZOOM, GroupLabel, NodeItem


class GraphView(QGraphicsView):
    """Wheel zooms (between MIN_ZOOM and MAX_ZOOM), dragging pans; a click in place, a
    double-click and the +/− keys are reported to the dock."""

    nodeClicked = Signal(str)
    nodeDoubleClicked = Signal(str)
    markerClicked = Signal(str)
    groupClicked = Signal(str)
    keyAction = Signal(str)          # 'unfold' or 'fold'
    viewChanged = Signal()
    resized = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(QBrush(QColor("#ffffff")))
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.horizontalScrollBar().valueChanged.connect(self.viewChanged)
        self.verticalScrollBar().valueChanged.connect(self.viewChanged)
        self._press = None
        self.fitted = False   # showing what fit() chose, untouched since: a resize fits again

    def zoom(self, factor: float) -> None:
        self.fitted = False
        current = self.transform().m11()
        factor = min(max(factor, MIN_ZOOM / current), MAX_ZOOM / current)
        self.scale(factor, factor)
        self.viewChanged.emit()

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom(1.15 ** steps)
        event.accept()

    def fit(self) -> None:
        """The whole graph when it fits at a legible zoom, else its top left at MIN_ZOOM."""
        rect = self.scene().itemsBoundingRect().adjusted(-12, -12, 12, 12)
        if rect.isEmpty():
            return
        vp = self.viewport()
        scale = min(vp.width() / rect.width(), vp.height() / rect.height(), 1.0)
        scale = max(scale, MIN_ZOOM)
        self.resetTransform()
        self.scale(scale, scale)
        half_w, half_h = vp.width() / (2 * scale), vp.height() / (2 * scale)
        self.centerOn(rect.center().x() if rect.width() <= 2 * half_w else rect.left() + half_w,
                      rect.center().y() if rect.height() <= 2 * half_h else rect.top() + half_h)
        self.viewChanged.emit()
        self.fitted = True

    def show_rect(self, rect: QRectF) -> None:
        """Zoom (within the legible range, at most 1:1) to show ``rect``; when it does not fit,
        its top left."""
        vp = self.viewport()
        rect = rect.adjusted(-16, -24, 16, 16)
        scale = max(MIN_ZOOM, min(vp.width() / rect.width(), vp.height() / rect.height(), 1.0))
        self.resetTransform()
        self.scale(scale, scale)
        half_w, half_h = vp.width() / (2 * scale), vp.height() / (2 * scale)
        self.centerOn(rect.center().x() if rect.width() <= 2 * half_w else rect.left() + half_w,
                      rect.center().y() if rect.height() <= 2 * half_h else rect.top() + half_h)
        self.fitted = False
        self.viewChanged.emit()

    def centre_on(self, item) -> None:
        self.centerOn(item)
        self.fitted = False
        self.viewChanged.emit()

    def visible_scene_rect(self) -> QRectF:
        return self.mapToScene(self.viewport().rect()).boundingRect()

    def _item_at(self, pos):
        for item in self.items(pos):
            if isinstance(item, (NodeItem, GroupLabel)):
                return item
        return None

    def mousePressEvent(self, event) -> None:
        self._press = event.position()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        self.viewChanged.emit()
        if event.button() != Qt.MouseButton.LeftButton or self._press is None:
            return
        moved = (event.position() - self._press).manhattanLength()
        self._press = None
        if moved > 4:
            self.fitted = False
            return
        item = self._item_at(event.position().toPoint())
        if isinstance(item, NodeItem):
            if item.marker_rect().contains(item.mapFromScene(self.mapToScene(event.position().toPoint()))):
                self.markerClicked.emit(item.node.id)
            else:
                self.nodeClicked.emit(item.node.id)
        elif isinstance(item, GroupLabel):
            self.groupClicked.emit(item.path)

    def mouseDoubleClickEvent(self, event) -> None:
        item = self._item_at(event.position().toPoint())
        if isinstance(item, NodeItem):
            self.nodeDoubleClicked.emit(item.node.id)
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def keyPressEvent(self, event) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.keyAction.emit("unfold")
        elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            self.keyAction.emit("fold")
        else:
            super().keyPressEvent(event)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.viewChanged.emit()
        self.resized.emit()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.resized.emit()


class Overview(QGraphicsView):
    """The whole graph small (boxes without text), the main view's part framed; a click or a
    drag moves the main view there."""

    def __init__(self, main: GraphView):
        super().__init__(main.scene())
        self.main = main
        self.setInteractive(False)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFixedHeight(60)
        self.setToolTip("the whole graph: click or drag to move the view")
        self.setBackgroundBrush(QBrush(QColor("#f7f8fa")))
        main.viewChanged.connect(self.viewport().update)

    def refit(self) -> None:
        rect = self.scene().itemsBoundingRect()
        if not rect.isEmpty():
            self.fitInView(rect.adjusted(-10, -10, 10, 10), Qt.AspectRatioMode.KeepAspectRatio)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.refit()

    def drawForeground(self, painter: QPainter, rect: QRectF | QRect) -> None:
        painter.setPen(QPen(QColor("#1f6fd1"), 0))
        painter.setBrush(QBrush(QColor(31, 111, 209, 40)))
        painter.drawRect(self.main.visible_scene_rect())

    def _move(self, event) -> None:
        self.main.centerOn(self.mapToScene(event.position().toPoint()))
        self.main.fitted = False
        self.main.viewChanged.emit()

    def mousePressEvent(self, event) -> None:
        self._move(event)

    def mouseMoveEvent(self, event) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._move(event)
