"""Plots dock, 'Overlap' tab: which filters rank high for two degradations, and the N × N matrix.

With N degradations a user asks whether a third function lives in filters of its own or shares
them with the others. The first table counts, for each pair, the filters in both top-k % sets
(k as the 'Top filters per layer' tab counts them), what two random sets of those sizes would
share, and the layers that hold the shared filters (core/overlap.py). The second table is the
selectivity matrix of the last 'Masking effect' computation: masking d's top filters (row),
measured on inputs of e (column), at its smallest proportion, for FAIG. 'Export…' writes both as
JSON (what `faig-gui evaluate` puts under "overlap" in report.json, plus the matrix).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QPushButton, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from faig_gui.core.errors import FaigError
from faig_gui.core.overlap import Overlap, filter_overlap


class OverlapPanel(QWidget):
    def __init__(self, dock):
        super().__init__()
        self.dock = dock
        self.overlap: Overlap | None = None
        self.title = QLabel("")
        self.title.setWordWrap(True)
        self.pairs = QTableWidget(0, 4)
        self.pairs.setObjectName("overlapTable")
        self.pairs.setHorizontalHeaderLabels(["pair", "shared", "by chance", "layers (shared filters)"])
        self.pairs.horizontalHeader().setStretchLastSection(True)
        self.pairs.verticalHeader().setVisible(False)
        self.matrix_title = QLabel("")
        self.matrix_title.setWordWrap(True)
        self.matrix = QTableWidget(0, 0)
        self.matrix.setObjectName("selectivityMatrix")
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("write the overlap and the selectivity matrix as JSON")
        self.export_button.clicked.connect(self._export_dialog)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.title, 1)
        row.addWidget(self.export_button)
        box = QVBoxLayout()
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(row)
        box.addWidget(self.pairs, 2)
        box.addWidget(self.matrix_title)
        box.addWidget(self.matrix, 1)
        self.setLayout(box)

    # -- the pairs -------------------------------------------------------------------------------
    def refresh(self) -> None:
        s = self.dock.model.session
        proportion = self.dock.distribution.proportion
        if s.index is None or len(s.scores) < 2:
            self.overlap = None
            self.pairs.setRowCount(0)
            self.title.setText("no model" if s.index is None else "needs scores for two degradations or more")
        else:
            self.overlap = filter_overlap(dict(s.scores), s.index, proportion)
            ov = self.overlap
            self.title.setText(f"top {proportion:g} % of each ranking: " +
                               ", ".join(f"{n} {ov.sizes[n]:,}" for n in ov.names) + f" of {ov.total:,} filters")
            self.pairs.setRowCount(len(ov.pairs))
            for r, ((d, e), n) in enumerate(ov.pairs.items()):
                layers = sorted(ov.layers[(d, e)].items(), key=lambda kv: -kv[1])
                cells = [f"{d} & {e}", str(n), f"{ov.expected(d, e):.1f}",
                         ", ".join(f"{_short(k)} {v}" for k, v in layers) or "—"]
                for c, text in enumerate(cells):
                    self.pairs.setItem(r, c, QTableWidgetItem(text))
            self.pairs.resizeColumnsToContents()
        self.refresh_matrix()

    # -- the N x N matrix ----------------------------------------------------------------------
    def matrix_values(self) -> dict[str, Any] | None:
        """{'method', 'proportion', 'names', 'effects': rows d -> cols e} of the last computation."""
        result = self.dock.result
        if result is None or not result.methods:
            return None
        method = "faig" if "faig" in result.methods else result.methods[0]
        p = min(result.proportions)
        names = list(result.degradations)
        return {"method": method, "proportion": p, "names": names, "stale": self.dock._stale,
                "effects": {d: {e: result.effect(method, p, d, e) for e in names} for d in names}}

    def refresh_matrix(self) -> None:
        m = self.matrix_values()
        if m is None:
            self.matrix.setRowCount(0)
            self.matrix.setColumnCount(0)
            self.matrix_title.setText("selectivity matrix: press 'Compute' on the Masking effect tab")
            return
        names = m["names"]
        self.matrix.setRowCount(len(names))
        self.matrix.setColumnCount(len(names))
        self.matrix.setHorizontalHeaderLabels([f"on {e}" for e in names])
        self.matrix.setVerticalHeaderLabels([f"mask {d}" for d in names])
        for r, d in enumerate(names):
            for c, e in enumerate(names):
                self.matrix.setItem(r, c, QTableWidgetItem(f"{m['effects'][d][e]:.3g}"))
        self.matrix.resizeColumnsToContents()
        self.matrix_title.setText(f"masking effect of each degradation's top {m['proportion']:g} % "
                                  f"{m['method'].upper() if m['method'] != 'abs' else '|θ − θ̄|'} filters (rows) "
                                  f"on each one's inputs (columns)" + (" — outdated" if m["stale"] else ""))

    # -- export ----------------------------------------------------------------------------------
    def export(self, path: str | Path) -> None:
        if self.overlap is None:
            raise FaigError("no overlap to export: the session needs scores for two degradations or more")
        data = {"overlap": self.overlap.to_json(), "selectivity_matrix": self.matrix_values()}
        Path(path).write_text(json.dumps(data, indent=2))

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the overlap", "overlap.json", "JSON (*.json)")
        if path:
            try:
                self.export(path)
            except (FaigError, OSError) as exc:
                self.title.setText(f"export failed: {exc}")


def _short(name: str) -> str:
    return name.replace(".weight", "")
