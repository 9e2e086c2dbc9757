"""Real Qt events for widget tests: file drops and answers to modal dialogs."""
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox


def drop_files(widget, paths) -> QDropEvent:
    """Drag ``paths`` (as file URLs) onto the widget's centre and drop them; the drag must be
    accepted. Returns the drop event (``isAccepted()`` tells whether the widget took it)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    centre = widget.rect().center()
    enter = QDragEnterEvent(centre, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(centre), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)
    return drop


def answer_next_dialog(button_text: str) -> None:
    """Click a button of the next modal dialog once it is open (polled by a timer, no sleeping)."""
    def click():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            for b in box.buttons():
                if b.text().replace("&", "") == button_text:
                    b.click()
                    return
        QTimer.singleShot(10, click)
    QTimer.singleShot(0, click)
