"""Plots dock: the masking-effect curve and the per-layer distribution of the top filters."""
from __future__ import annotations

from PySide6.QtWidgets import QDockWidget, QLabel, QWidget

from faig_gui.app._export import export_widget
from faig_gui.app.session_model import SessionModel


class PlotsDock(QDockWidget):
    def __init__(self, model: SessionModel, parent: QWidget | None = None):
        super().__init__("Plots", parent)
        self.setObjectName("PlotsDock")
        self.model = model
        self.setWidget(QLabel("plots"))

    def export(self, path) -> None:
        export_widget(path, self.widget())
