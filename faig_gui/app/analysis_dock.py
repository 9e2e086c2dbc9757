"""Analysis dock: the analysis images, degradations with their σ, scale, steps, method, device;
Run and Cancel; a progress bar with ETA. The run itself is workers.AnalysisRunner's."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import cast

import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (QComboBox, QDockWidget, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGridLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
                               QPushButton, QSpinBox, QVBoxLayout, QWidget)

from faig_gui.app.session_model import SessionModel
from faig_gui.app.workers import AnalysisRunner
from faig_gui.core.analysis import DELTA_WARN, AnalysisResult, Progress, convergence_summary
from faig_gui.core.attribution import METHODS
from faig_gui.core.degradations import Degradation, parse_degradation
from faig_gui.core.errors import FaigError

METHOD_LABELS = {"faig": "FAIG (parameter path)", "ig": "IG (input path)",
                 "abs": "|θ − θ̄| (weight change)", "random": "random"}


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "estimating…"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s left"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{m} min {s:02d} s left"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min left"


class AnalysisDock(QDockWidget):
    def __init__(self, model: SessionModel, runner: AnalysisRunner, parent: QWidget | None = None):
        super().__init__("Analysis", parent)
        self.setObjectName("AnalysisDock")
        self.model = model
        self.runner = runner
        # one row per degradation: the paper's kind (blur and/or noise) has σ boxes, any other
        # (JPEG, an ordered pipeline) shows its steps; None where a row has no boxes
        self._sigma_rows: list[tuple[Degradation, QDoubleSpinBox | None, QDoubleSpinBox | None]] = []
        self._build()
        model.settingsChanged.connect(self._on_settings_change)
        model.modelsChanged.connect(self._on_settings_change)
        model.modelsChanged.connect(lambda: self._on_running_change(self.runner.running))
        runner.runningChanged.connect(self._on_running_change)
        runner.progress.connect(self._on_progress)
        runner.started.connect(self._on_started)
        runner.finished.connect(lambda r: self._end(f"done in {r.seconds:.1f} s"))
        runner.finished.connect(self._show_convergence)
        runner.cancelled.connect(lambda: self._end("cancelled — previous results kept"))
        runner.failed.connect(lambda m: self._end("failed — previous results kept"))
        self._on_settings_change()
        self._on_running_change(False)

    def _build(self) -> None:
        body = QWidget()
        lay = QVBoxLayout(body)
        lay.setContentsMargins(6, 6, 6, 6)

        images = QGroupBox("Analysis images")
        il = QVBoxLayout(images)
        self.images_label = QLabel()
        self.images_label.setWordWrap(True)
        self.choose_images = QPushButton("Choose HR folder…")
        self.choose_images.setToolTip("HR images to rank filters on; their blurry and noisy LR versions "
                                      "are made with the degradations below")
        il.addWidget(self.images_label)
        il.addWidget(self.choose_images)
        lay.addWidget(images)

        self.degradations_box = QGroupBox("Degradations (σ; 0 = off)")
        box_lay = QVBoxLayout(self.degradations_box)
        self.degradations_grid = QGridLayout()
        box_lay.addLayout(self.degradations_grid)
        add_row = QHBoxLayout()
        self.degradation_spec = QLineEdit()
        self.degradation_spec.setObjectName("degradationSpec")
        self.degradation_spec.setPlaceholderText("add: NAME=STEPS, e.g. jpeg=down,jpeg:30")
        self.degradation_spec.setToolTip("A degradation as NAME=STEP,STEP,... applied to the HR image in that "
                                         "order: blur:SIGMA, down (exactly once), noise:SIGMA, jpeg:QUALITY; "
                                         "or a bare name: blur, noise, jpeg (docs/core.md)")
        self.add_degradation_button = QPushButton("Add")
        add_row.addWidget(self.degradation_spec, 1)
        add_row.addWidget(self.add_degradation_button)
        box_lay.addLayout(add_row)
        self.degradation_error = QLabel("")
        self.degradation_error.setObjectName("degradationError")
        self.degradation_error.setWordWrap(True)
        self.degradation_error.setStyleSheet("color: #c0392b;")
        self.degradation_error.setVisible(False)
        box_lay.addWidget(self.degradation_error)
        lay.addWidget(self.degradations_box)

        form = QFormLayout()
        self.scale_label = QLabel("—")
        self.scale_label.setToolTip("The scale comes from the model")
        self.steps = QSpinBox()
        self.steps.setRange(1, 1000)
        self.steps.setToolTip("Path steps N (the paper: 100)")
        self.method = QComboBox()
        for m in METHODS:
            self.method.addItem(METHOD_LABELS.get(m, m), m)
        self.device = QComboBox()
        self.device.addItem("auto", "auto")
        self.device.addItem("cpu", "cpu")
        self.device.addItem("cuda" if torch.cuda.is_available() else "cuda (not available)", "cuda")
        if not torch.cuda.is_available():
            # a QComboBox's model is a QStandardItemModel (the stub says QAbstractItemModel)
            cast(QStandardItemModel, self.device.model()).item(2).setEnabled(False)
        form.addRow("Scale", self.scale_label)
        form.addRow("Steps", self.steps)
        form.addRow("Method", self.method)
        form.addRow("Device", self.device)
        lay.addLayout(form)

        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.setObjectName("runButton")
        self.run_button.setToolTip("Rank the filters (F5)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the run; the previous results stay (Esc)")
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        lay.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("%p %")
        self.eta = QLabel("")
        self.eta.setWordWrap(True)
        # after a FAIG run: how far the path sum is from L(θ̄) − L(θ) (are the steps enough?)
        self.convergence = QLabel("")
        self.convergence.setObjectName("convergenceLabel")
        self.convergence.setWordWrap(True)
        self.convergence.setVisible(False)
        lay.addWidget(self.progress)
        lay.addWidget(self.eta)
        lay.addWidget(self.convergence)
        lay.addStretch(1)
        self.setWidget(body)

        self.choose_images.clicked.connect(self._choose_images)
        self.add_degradation_button.clicked.connect(self.add_degradation)
        self.degradation_spec.returnPressed.connect(self.add_degradation)
        self.steps.valueChanged.connect(self._apply)
        self.method.currentIndexChanged.connect(self._apply)
        self.device.currentIndexChanged.connect(self._apply)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.runner.cancel)

    # -- model -> widgets --------------------------------------------------------------------
    def _on_settings_change(self) -> None:
        s = self.model.session
        st = s.settings
        for w in (self.steps, self.method, self.device):
            w.blockSignals(True)
        self.steps.setValue(st.steps)
        self.method.setCurrentIndex(max(0, self.method.findData(st.method)))
        self.device.setCurrentIndex(max(0, self.device.findData(st.device)))
        for w in (self.steps, self.method, self.device):
            w.blockSignals(False)
        self.scale_label.setText(f"×{s.scale}" if (s.target or s.baseline) else "— (no model)")
        self._rebuild_degradations(st.degradations)
        n = len(s.analysis_images)
        src = s.analysis_source or {}
        where = src.get("folder") or src.get("gt") or ""
        if n:
            names = ", ".join(s.analysis_images[0].lr)
            self.images_label.setText(f"{n} images ({names})" + (f"\nfrom {_short(where)}" if where else ""))
        else:
            self.images_label.setText("none yet — choose a folder of HR images")
        self.images_label.setToolTip(str(where))

    def _rebuild_degradations(self, degradations: list[Degradation]) -> None:
        if list(degradations) == self._shown():
            return
        while self.degradations_grid.count():
            item = self.degradations_grid.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        self._sigma_rows = []
        self.degradations_grid.addWidget(_header("name"), 0, 0)
        self.degradations_grid.addWidget(_header("blur σ"), 0, 1)
        self.degradations_grid.addWidget(_header("noise σ"), 0, 2)
        editable = (self.model.session.analysis_source or {}).get("kind") != "folders"
        for row, d in enumerate(degradations, start=1):
            self.degradations_grid.addWidget(QLabel(d.name), row, 0)
            blur: QDoubleSpinBox | None
            noise: QDoubleSpinBox | None
            if _paper_kind(d):
                blur = _spin(d.blur_sigma or 0.0, 0.0, 10.0, 0.1, "Gaussian blur σ in HR pixels (kernel 21×21)")
                noise = _spin(d.noise_sigma or 0.0, 0.0, 1.0, 0.01, "Gaussian noise σ on the [0, 1] scale")
                for w in (blur, noise):
                    w.setEnabled(editable)
                    w.valueChanged.connect(self._apply)
                self.degradations_grid.addWidget(blur, row, 1)
                self.degradations_grid.addWidget(noise, row, 2)
            else:
                blur = noise = None
                steps = QLabel(d.spec().partition("=")[2])
                steps.setToolTip(d.describe())
                self.degradations_grid.addWidget(steps, row, 1, 1, 2)
            remove = QPushButton("×")
            remove.setObjectName(f"removeDegradation_{d.name}")
            remove.setToolTip(f"Remove '{d.name}' from the analysis")
            remove.setFixedWidth(28)
            remove.setEnabled(editable and len(degradations) > 1)
            remove.clicked.connect(lambda _=False, name=d.name: self.remove_degradation(name))
            self.degradations_grid.addWidget(remove, row, 3)
            self._sigma_rows.append((d, blur, noise))
        if not editable:
            self.degradations_box.setToolTip("These analysis images come with their degradations (folders)")

    # -- widgets -> model --------------------------------------------------------------------
    def settings_from_widgets(self):
        st = self.model.session.settings
        degradations = self._shown()
        return replace(st, degradations=degradations or st.degradations, steps=self.steps.value(),
                       method=self.method.currentData(), device=self.device.currentData())

    def _shown(self) -> list[Degradation]:
        out = []
        for d, blur, noise in self._sigma_rows:
            if blur is None or noise is None or (blur.value() or None, noise.value() or None) == (d.blur_sigma, d.noise_sigma):
                out.append(d)  # unchanged: keep it as given (a spec's pipeline stays as written)
            else:
                out.append(Degradation(d.name, blur.value() or None, noise.value() or None))
        return out

    def add_degradation(self) -> bool:
        """Parse the spec field and add that degradation to the analysis (its images follow)."""
        text = self.degradation_spec.text().strip()
        if not text:
            return False
        try:
            d = parse_degradation(text)
            if d.name == "clean":
                raise FaigError("'clean' is the undegraded input and cannot be one of the degradations")
            if d.name in [x.name for x in self._shown()]:
                raise FaigError(f"there is a degradation named '{d.name}' already; choose another name")
        except FaigError as exc:
            self.degradation_error.setText(str(exc))
            self.degradation_error.setVisible(True)
            return False
        self.degradation_error.setVisible(False)
        self.degradation_spec.clear()
        st = self.model.session.settings
        self.model.set_settings(replace(self.settings_from_widgets(), degradations=[*self._shown(), d]))
        return st != self.model.session.settings

    def remove_degradation(self, name: str) -> None:
        kept = [d for d in self._shown() if d.name != name]
        if kept:
            self.model.set_settings(replace(self.settings_from_widgets(), degradations=kept))

    def _apply(self, *_args) -> None:
        settings = self.settings_from_widgets()
        if settings != self.model.session.settings:
            self.model.set_settings(settings)

    def _choose_images(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of HR images for the analysis")
        if folder:
            self.model.set_analysis_hr_folder(folder)

    def run(self) -> bool:
        self._apply()
        return self.runner.start()

    # -- runner -> widgets -------------------------------------------------------------------
    def _on_running_change(self, running: bool) -> None:
        self.run_button.setEnabled(not running and self.model.session.ready)
        self.run_button.setToolTip("Rank the filters (F5)" if self.model.session.ready else
                                   "Open a baseline and a target first")
        self.cancel_button.setEnabled(running)
        for w in (self.steps, self.method, self.device, self.choose_images, self.degradations_box):
            w.setEnabled(not running)

    def _on_started(self) -> None:
        self.progress.setValue(0)
        self.eta.setText("starting…")
        self.convergence.setVisible(False)

    def _show_convergence(self, result: AnalysisResult) -> None:
        text = convergence_summary(result.convergence)
        self.convergence.setText(text)
        self.convergence.setVisible(bool(text))
        rel = [c.relative for v in result.convergence.values() for c in v if c is not None]
        warn = bool(rel) and max(rel) > DELTA_WARN
        self.convergence.setProperty("warning", warn)
        self.convergence.setStyleSheet("color: #c0392b; font-weight: bold;" if warn else "")
        self.convergence.setToolTip(
            "FAIG integrates along the path from the target to the baseline: the signed products "
            "(θ̄ − θ)·(mean path gradient), summed over every parameter, should equal the change of "
            "the loss L(θ̄) − L(θ). The convergence delta is their difference (largest over the images "
            "and degradations); a large one means too few path steps (report.json: convergence_delta).")

    def _on_progress(self, p: Progress) -> None:
        self.progress.setValue(int(round(p.fraction * 1000)))
        self.eta.setText(f"{p.message} · {p.done}/{p.total} steps · {format_eta(p.eta)}")

    def _end(self, text: str) -> None:
        p = self.runner.last_progress
        if text.startswith("done"):
            self.progress.setValue(1000)
        elif p is None:
            self.progress.setValue(0)
        self.eta.setText(text)


def _spin(value: float, lo: float, hi: float, step: float, tip: str) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setDecimals(2 if step >= 0.1 else 3)
    s.setValue(value)
    s.setToolTip(tip)
    s.setKeyboardTracking(False)
    return s


def _header(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet("color: palette(mid);")
    label.setAlignment(Qt.AlignmentFlag.AlignLeft)
    return label


def _short(path: str, keep: int = 40) -> str:
    p = str(Path(path))
    return p if len(p) <= keep else "…" + p[-keep + 1:]


def _paper_kind(d: Degradation) -> bool:
    """Blur and/or noise in the paper's order (blur, down, noise): editable with the σ boxes."""
    return d.pipeline is None and not d.jpeg_quality or \
        [st.kind for st in d.steps] in (["blur", "down"], ["down", "noise"], ["blur", "down", "noise"])
