"""Masking dock: "top k % for a degradation", replace-with-baseline or zero, λ modulation, clear.

Each change goes straight to the SessionModel; the image view redraws the masked output
through its latest-wins task, so dragging a slider never waits for the network.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QDockWidget, QFormLayout, QHBoxLayout, QLabel,
                               QPushButton, QRadioButton, QSizePolicy, QSlider, QToolButton, QVBoxLayout,
                               QWidget)

from faig_gui.app.labels import hold_size
from faig_gui.app.session_model import SessionModel
from faig_gui.core.masking import LAMBDA_RANGE

#: slider units per percent (0.1 % resolution)
K_STEPS = 10
K_MAX = 10.0
K_MARKS = (1, 3, 5, 10)
LAM_STEPS = 100


class MaskingDock(QDockWidget):
    def __init__(self, model: SessionModel, parent: QWidget | None = None):
        super().__init__("Masking", parent)
        self.setObjectName("MaskingDock")
        self.model = model
        self._build()
        model.scoresChanged.connect(self._on_scores_change)
        model.maskChanged.connect(self._on_mask_change)
        model.degradationChanged.connect(self._on_degradation_change)
        model.modelsChanged.connect(self._on_mask_change)
        model.maskShown.connect(self._update_summary)
        model.modelsChanged.connect(self._update_summary)
        self._on_scores_change()
        self._update_summary()

    def _build(self) -> None:
        body = QWidget()
        lay = QVBoxLayout(body)
        lay.setContentsMargins(6, 6, 6, 6)
        form = QFormLayout()
        self.degradation = QComboBox()
        self.degradation.setToolTip("Whose discriminative filters to mask (and colour the graph by)")
        form.addRow("Filters for", self.degradation)
        lay.addLayout(form)

        self.k_label = QLabel("Top k %")
        lay.addWidget(self.k_label)
        self.k_slider = QSlider(Qt.Orientation.Horizontal)
        self.k_slider.setRange(0, int(K_MAX * K_STEPS))
        self.k_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.k_slider.setTickInterval(K_STEPS)
        self.k_slider.setPageStep(K_STEPS)
        self.k_slider.setToolTip("Mask the top k % of filters for the chosen degradation (0-10 %); filters "
                                 "toggled by hand stay toggled on top of it")
        lay.addWidget(self.k_slider)
        marks = QHBoxLayout()
        marks.setSpacing(4)
        self.mark_buttons = {}
        for m in K_MARKS:
            b = QToolButton()
            b.setText(f"{m} %")
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            b.setToolTip(f"Mask the top {m} % (the paper's proportions: 1, 3, 5, 10 %); filters toggled "
                         f"by hand stay toggled on top of it (Ctrl+Z undoes)")
            b.clicked.connect(lambda _=False, m=m: self.k_slider.setValue(m * K_STEPS))
            marks.addWidget(b)
            self.mark_buttons[m] = b
        lay.addLayout(marks)

        mode_row = QHBoxLayout()
        self.mode_baseline = QRadioButton("baseline")
        self.mode_baseline.setToolTip("Replace each masked kernel by the baseline's (the paper's masking)")
        self.mode_zero = QRadioButton("zero")
        self.mode_zero.setToolTip("Set each masked kernel to zero")
        self.mode_group = QButtonGroup(self)
        self.mode_group.addButton(self.mode_baseline)
        self.mode_group.addButton(self.mode_zero)
        mode_row.addWidget(QLabel("Replace with"))
        mode_row.addWidget(self.mode_baseline)
        mode_row.addWidget(self.mode_zero)
        mode_row.addStretch(1)
        lay.addLayout(mode_row)

        self.lam_label = QLabel()
        lay.addWidget(self.lam_label)
        self.lam_slider = QSlider(Qt.Orientation.Horizontal)
        self.lam_slider.setRange(int(LAMBDA_RANGE[0] * LAM_STEPS), int(LAMBDA_RANGE[1] * LAM_STEPS))
        self.lam_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.lam_slider.setTickInterval(50)
        self.lam_slider.setToolTip("λ: θ ← λ·θ + (1 − λ)·replacement. 0 = masked, 1 = the target, "
                                   "up to 1.5 = the target's change emphasised")
        lay.addWidget(self.lam_slider)

        self.clear_button = QPushButton("Clear mask")
        self.clear_button.setToolTip("Unmask every filter: k = 0 and no filter toggled by hand (Ctrl+M; "
                                     "Ctrl+Z undoes)")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        # these change with every step of the sliders: sized once (labels.py)
        hold_size(self.k_label, ["Top k %: <b>10.0 %</b> = 9,999,999 filters"])
        for label in (self.k_label, self.lam_label):   # opaque: a new value repaints the label, not the dock
            label.setAutoFillBackground(True)
        hold_size(self.lam_label, ["Modulation λ: <b>1.50</b>  (0 = fully masked, 1 = target)"])
        hold_size(self.summary, ["<b>9,999,999</b> of 99,999,999 filters", "masked (100.00 %)",
                                 "by hand: +9,999,999 / −9,999,999", "(kept when k changes)",
                                 "Open a baseline and a target to mask filters."], lines=4)
        lay.addWidget(self.clear_button)
        lay.addWidget(self.summary)
        lay.addStretch(1)
        self.setWidget(body)

        self.degradation.currentIndexChanged.connect(self._on_degradation_chosen)
        self.k_slider.valueChanged.connect(self._on_k_change)
        self.mode_group.buttonClicked.connect(self._on_mode_change)
        self.lam_slider.valueChanged.connect(self._on_mode_change)
        self.clear_button.clicked.connect(self.model.clear_mask)

    # -- helpers -----------------------------------------------------------------------------
    @property
    def proportion(self) -> float:
        return self.k_slider.value() / K_STEPS

    @property
    def lam(self) -> float:
        return self.lam_slider.value() / LAM_STEPS

    # -- model -> widgets --------------------------------------------------------------------
    def _on_scores_change(self) -> None:
        s = self.model.session
        names = list(s.scores)
        self.degradation.blockSignals(True)
        self.degradation.clear()
        self.degradation.addItems(names)
        current = self.model.degradation if self.model.degradation in names else s.mask_settings.degradation
        if current in names:
            self.degradation.setCurrentText(current)
        self.degradation.blockSignals(False)
        has = bool(names)
        for w in (self.degradation, self.k_slider, *self.mark_buttons.values()):
            w.setEnabled(has)
        self.degradation.setToolTip("Whose discriminative filters to mask" if has else
                                    "No scores yet: run the analysis (or open a session with scores)")
        self._on_mask_change()

    def _on_degradation_change(self, name: str) -> None:
        if name and name != self.degradation.currentText() and self.degradation.findText(name) >= 0:
            self.degradation.blockSignals(True)
            self.degradation.setCurrentText(name)
            self.degradation.blockSignals(False)

    def _on_mask_change(self) -> None:
        s = self.model.session
        ms, mask = s.mask_settings, s.mask
        for w in (self.k_slider, self.lam_slider):
            w.blockSignals(True)
        self.k_slider.setValue(int(round(ms.proportion * K_STEPS)))
        self.lam_slider.setValue(int(round(mask.lam * LAM_STEPS)))
        for w in (self.k_slider, self.lam_slider):
            w.blockSignals(False)
        (self.mode_baseline if mask.mode == "baseline" else self.mode_zero).setChecked(True)
        total = s.index.total if s.index else 0
        self.k_label.setText(f"Top k %: <b>{ms.proportion:.1f} %</b>"
                             + (f" = {int(total * ms.proportion / 100):,} filters" if total else ""))
        self.lam_label.setText(f"Modulation λ: <b>{mask.lam:.2f}</b>"
                               + ("  (0 = fully masked, 1 = target)" if mask.lam <= 1 else "  (emphasised)"))
        self.clear_button.setEnabled(len(mask) > 0)

    def _update_summary(self) -> None:
        """How many filters are masked: with the docks, once the masked output is on screen
        (SessionModel.maskShown), not while it is computed."""
        s = self.model.session
        mask, total = s.mask, (s.index.total if s.index else 0)
        n = len(mask)
        if not total:
            self.summary.setText("Open a baseline and a target to mask filters.")
        elif n == 0:
            self.summary.setText("No filters masked.")
        else:
            self.summary.setText(f"<b>{n:,}</b> of {total:,} filters masked ({100 * n / total:.2f} %)")
        on, off = len(s.hand_masked), len(s.hand_unmasked)
        if total and (on or off):
            # the preset buttons and the slider keep these: say so where the count is read
            self.summary.setText(self.summary.text() + f"<br>by hand: +{on:,} / −{off:,}, kept when k changes")

    # -- widgets -> model --------------------------------------------------------------------
    def _on_degradation_chosen(self, _pos: int) -> None:
        name = self.degradation.currentText()
        if not name:
            return
        self.model.set_degradation(name)
        self.model.set_top_mask(name, self.proportion)

    def _on_k_change(self, _value: int) -> None:
        name = self.degradation.currentText()
        if name:
            self.model.set_top_mask(name, self.proportion)

    def _on_mode_change(self, *_args) -> None:
        mode = "baseline" if self.mode_baseline.isChecked() else "zero"
        s = self.model.session
        if mode != s.mask.mode or abs(self.lam - s.mask.lam) > 1e-9:
            self.model.set_mask_mode(mode, self.lam)
