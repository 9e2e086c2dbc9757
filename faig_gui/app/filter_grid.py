"""Filter grid dock: the selected layer's out x in filters as a score heat map."""
from __future__ import annotations

from PySide6.QtWidgets import QDockWidget, QLabel, QWidget

from faig_gui.app._export import export_widget
from faig_gui.app.session_model import SessionModel


class FilterGridDock(QDockWidget):
    def __init__(self, model: SessionModel, parent: QWidget | None = None):
        super().__init__("Filters", parent)
        self.setObjectName("FilterGridDock")
        self.model = model
        self.setWidget(QLabel("select a layer in the graph"))

    def export(self, path) -> None:
        export_widget(path, self.widget())
