"""Network graph dock: the traced model's operations, convolutions coloured by importance."""
from __future__ import annotations

from PySide6.QtWidgets import QDockWidget, QLabel, QWidget

from faig_gui.app._export import export_widget
from faig_gui.app.session_model import SessionModel


class GraphDock(QDockWidget):
    def __init__(self, model: SessionModel, parent: QWidget | None = None):
        super().__init__("Network graph", parent)
        self.setObjectName("GraphDock")
        self.model = model
        self.setWidget(QLabel("network graph"))

    def export(self, path) -> None:
        export_widget(path, self.widget())
