"""Writing a dock's picture to PNG or SVG, chosen by the file's suffix."""
from __future__ import annotations

from pathlib import Path
from collections.abc import Callable

from PySide6.QtCore import QPoint, QRectF, QSize
from PySide6.QtGui import QImage, QPainter
from PySide6.QtSvg import QSvgGenerator

from faig_gui.core.errors import FaigError

SUFFIXES = (".png", ".svg")


def export_picture(path: str | Path, size: QSize, paint: Callable[[QPainter, QRectF], None],
                   title: str = "faig-gui") -> Path:
    """Call ``paint(painter, target_rect)`` on a PNG image or an SVG generator of ``size``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise FaigError(f"{path.name}: export writes .png or .svg, not '{path.suffix or 'no suffix'}'")
    if not path.parent.is_dir():
        raise FaigError(f"{path.parent}: no such folder to export into")
    w, h = max(1, size.width()), max(1, size.height())
    rect = QRectF(0, 0, w, h)
    if suffix == ".svg":
        gen = QSvgGenerator()
        gen.setFileName(str(path))
        gen.setSize(QSize(w, h))
        gen.setViewBox(rect)
        gen.setTitle(title)
        painter = QPainter(gen)
        try:
            paint(painter, rect)
        finally:
            painter.end()
    else:
        image = QImage(w, h, QImage.Format.Format_ARGB32)
        image.fill(0xFFFFFFFF)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        try:
            paint(painter, rect)
        finally:
            painter.end()
        if not image.save(str(path)):
            raise FaigError(f"{path}: could not be written")
    return path


def export_widget(path: str | Path, widget) -> Path:
    """A widget's own rendering (what the user sees) to PNG or SVG."""
    return export_picture(path, widget.size(), lambda p, r: widget.render(p, QPoint(0, 0)))
