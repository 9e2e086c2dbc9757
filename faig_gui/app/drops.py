"""File drops, handled once for every widget that takes them (the window, the centre view):
a drag is accepted when it carries files the widget takes, and the drop hands their paths on."""
from __future__ import annotations

from pathlib import Path
from collections.abc import Collection


def dropped_files(mime, suffixes: Collection[str] | None = None) -> list[str]:
    """The local files a drag carries; with ``suffixes``, only those whose suffix is one of them."""
    if not mime.hasUrls():
        return []
    paths = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
    return paths if suffixes is None else [p for p in paths if Path(p).suffix.lower() in suffixes]


class FileDropTarget:
    """Mixin for a QWidget (listed before it) that takes dropped files: set ``drop_suffixes``
    (None: any local file) and implement ``files_dropped``. The widget must ``setAcceptDrops``."""

    drop_suffixes: Collection[str] | None = None

    def files_dropped(self, paths: list[str]) -> None:
        raise NotImplementedError

    def dragEnterEvent(self, event) -> None:
        if dropped_files(event.mimeData(), self.drop_suffixes):
            event.acceptProposedAction()
        else:
            event.ignore()   # (what this widget does not take may go to its parent)

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        paths = dropped_files(event.mimeData(), self.drop_suffixes)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.files_dropped(paths)
