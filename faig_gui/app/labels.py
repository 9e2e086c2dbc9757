"""Labels whose text changes with every mask change or render, sized once.

A QLabel asks its window for a new layout each time its text changes (QWidget.updateGeometry
walks up to the main window, which lays out every dock again and starts a geometry animation
for each): UI-thread time at every top-k step for the masking dock's labels and the status bar's
activity label, spent while the render thread computes the new output on the other core
(docs/performance.md, "Figures behind the code"). A
label of fixed size does not: its text is repainted in place. ``hold_size`` gives a label the
size of the longest text it is expected to show, so nothing is clipped and nothing moves.
"""
from __future__ import annotations

from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QLabel


def text_width(label: QLabel, text: str) -> int:
    """Width in pixels that ``label`` needs for ``text`` on one line (rich text as a QLabel
    lays it out, with the label's font)."""
    doc = QTextDocument()
    doc.setDefaultFont(label.font())
    doc.setDocumentMargin(0)
    if "<" in text and ">" in text:   # (how a QLabel in Qt.AutoText decides, roughly)
        doc.setHtml(text)
    else:
        doc.setPlainText(text)
    return int(doc.idealWidth() + 0.999)


def hold_size(label: QLabel, samples: list[str], lines: int = 1, slack: int = 8) -> None:
    """Fix ``label``'s size: as wide as the widest of ``samples`` (plus ``slack`` pixels and the
    label's margins), ``lines`` lines high. Longer texts than the samples wrap when the label
    wraps words, else they are clipped; choose samples at the longest."""
    m = label.contentsMargins()
    width = max(text_width(label, t) for t in samples) + slack + m.left() + m.right() + 2 * label.margin()
    height = lines * label.fontMetrics().lineSpacing() + m.top() + m.bottom() + 2 * label.margin() + 2
    label.setFixedSize(width, height)
