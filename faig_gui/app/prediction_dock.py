"""Prediction dock: is an image clean, blurry, noisy or both, and how much?

Two kinds of rows: the centre view's current image (always predicted, it follows the image
list) and the images dropped anywhere on the window or added here. The verdicts come from
core.prediction: the target's own discriminative filters, the top PredictorConfig.proportion %
(the proportion its calibration was measured for), calibrated on the session's analysis images.
The Masking panel's top-k is used only when "use the masking panel's top-k" is ticked, so that
sliding k to look at masks does not change what the predictor sees. Requests are copied on the
UI thread and computed in a latest-wins task (live.py); a change of scores or models, or of k
while the box is ticked, predicts every row again.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from faig_gui.app.live import LatestTask
from faig_gui.app.prediction_rows import THRESHOLD, EntryWidget, PredictionEntry
from faig_gui.app.session_model import SessionModel
from faig_gui.app.workers import live_threads
from faig_gui.core.attribution import Cancelled
from faig_gui.core.device import resolve_device
from faig_gui.core.errors import FaigError
from faig_gui.core.imageio import IMAGE_SUFFIXES, read_image
from faig_gui.core.prediction import Prediction, Predictor, PredictorConfig
from faig_gui.core.prediction.content import OWN_IMAGES, calibration_images
from faig_gui.core.registry import LoadedModel
from faig_gui.core.threads import AdaptiveThreads

#: the predictor's own proportion: the one its calibration and docs/prediction.md's figures are for
OWN_PROPORTION = PredictorConfig().proportion


@dataclass(frozen=True)
class _Request:
    """Everything one prediction job reads, copied on the UI thread."""

    baseline: LoadedModel
    target: LoadedModel
    scores: dict
    analysis_hr: tuple
    degradations: tuple
    proportion: float
    device: str
    images: tuple          # (path, lr) pairs
    max_threads: int = 1   # at most this many torch threads (workers.live_threads)
    tuner: AdaptiveThreads | None = None   # the dock's, used on the prediction thread only
    stop: threading.Event = field(default_factory=threading.Event)   # set: calibration obsolete


class PredictionDock(QDockWidget):
    """Each image gets a verdict (clean / blur / noise / both), confidences and a strength."""

    predictionsChanged = Signal()   # entries got new verdicts (or errors)

    def __init__(self, model: SessionModel, parent: QWidget | None = None):
        super().__init__("Prediction", parent)
        self.setObjectName("prediction")
        self.model = model
        self.entries: list[PredictionEntry] = []      # dropped or added here
        self.current: PredictionEntry | None = None   # the centre view's image
        self._names: list[str] = []
        self._rows: list[EntryWidget] = []
        self._current_row: EntryWidget | None = None
        self._used: tuple | None = None   # _state() of the last request
        self._calibration_note = ""
        self.task = LatestTask("predict", self)
        self._threads = AdaptiveThreads()   # torch threads of the prediction thread, measured
        self.task.failed.connect(self._on_failed)
        self.task.busyChanged.connect(self._on_busy)
        self._stop = threading.Event()   # the running job's: set when its calibration is no longer wanted
        # the centre image is predicted while the panel is in view (its calibration takes minutes
        # the first time for a pair); dropped images are predicted in any case
        self.visibilityChanged.connect(lambda shown: self._request() if shown else None)
        self.setAcceptDrops(True)
        self._build()
        model.scoresChanged.connect(self._on_inputs_change)
        model.modelsChanged.connect(self._on_inputs_change)
        model.settingsChanged.connect(self._on_inputs_change)
        model.maskShown.connect(self._on_mask_change)
        model.currentImageChanged.connect(self._on_current_change)
        model.imagesChanged.connect(self._on_images_change)
        self._session_id: int | None = None
        self._known: set[str] = set()   # paths of the session's images already seen
        self._on_images_change()

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        body = QWidget()
        lay = QVBoxLayout(body)
        lay.setContentsMargins(6, 6, 6, 6)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        lay.addWidget(self.status)
        self.use_masking_k = QCheckBox("use the Masking panel's top-k")
        self.use_masking_k.setToolTip(
            f"Unticked, the predictor uses its own filters: the top {OWN_PROPORTION:g} % per degradation, the "
            f"proportion it is calibrated for. Ticked, it uses the Masking panel's k (each new k calibrates again)")
        self.use_masking_k.toggled.connect(lambda _on: self._on_inputs_change())
        lay.addWidget(self.use_masking_k)
        self.rows_widget = QWidget()
        self.rows = QVBoxLayout(self.rows_widget)
        self.rows.setContentsMargins(0, 0, 0, 0)
        self.rows.setSpacing(4)
        self.current_heading = QLabel("<b>Centre image</b>")
        self.dropped_heading = QLabel("<b>Dropped images</b> <span style='color:gray'>(drop images anywhere on "
                                      "the window; click one to show it)</span>")
        self.dropped_heading.setWordWrap(True)
        self.dropped_heading.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.current_box = QVBoxLayout()
        self.dropped_box = QVBoxLayout()
        self.dropped_box.setSpacing(4)
        self.rows.addWidget(self.current_heading)
        self.rows.addLayout(self.current_box)
        self.rows.addWidget(self.dropped_heading)
        self.rows.addLayout(self.dropped_box)
        self.rows.addStretch(1)
        self.scroll_area = QScrollArea()   # not 'scroll': QWidget.scroll(dx, dy)
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll_area.setWidget(self.rows_widget)
        lay.addWidget(self.scroll_area, 1)
        row = QHBoxLayout()
        self.add_button = QPushButton("Add images…")
        self.add_button.clicked.connect(self.choose_images)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Forget the dropped images (the centre image stays)")
        self.clear_button.clicked.connect(self.clear)
        row.addWidget(self.add_button)
        row.addWidget(self.clear_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.setWidget(body)

    # -- drops -------------------------------------------------------------------------------
    @staticmethod
    def _image_paths(event) -> list[str]:
        md = event.mimeData()
        if not md.hasUrls():
            return []
        return [u.toLocalFile() for u in md.urls()
                if u.isLocalFile() and Path(u.toLocalFile()).suffix.lower() in IMAGE_SUFFIXES]

    def dragEnterEvent(self, event) -> None:
        # images only; anything else goes on to the window, which says what it cannot open
        if self._image_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        paths = self._image_paths(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.add_paths(paths)

    def choose_images(self) -> None:
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        paths, _ = QFileDialog.getOpenFileNames(self, "Images to predict", "", f"Images ({patterns})")
        if paths:
            self.add_paths(paths)

    # -- entries -----------------------------------------------------------------------------
    def add_paths(self, paths: list[str]) -> int:
        """Read each image (unreadable ones are reported and skipped) and predict the new ones;
        an image listed already is not listed twice."""
        added = 0
        for p in paths:
            if str(p) in {e.path for e in self.entries}:
                continue
            try:
                lr = read_image(p)
            except FaigError as exc:
                self.model.errorOccurred.emit(str(exc))
                continue
            self.entries.append(PredictionEntry(str(p), lr))
            added += 1
        if added:
            self._rebuild_rows()
            self._request()
        return added

    def clear(self) -> None:
        self.entries.clear()
        self._rebuild_rows()

    def count(self) -> int:
        """How many dropped images are listed."""
        return len(self.entries)

    def _rebuild_rows(self) -> None:
        for w in self._rows:
            self.dropped_box.removeWidget(w)
            w.hide()   # (deleteLater waits for the event loop: until then it would paint over the new rows)
            w.deleteLater()
        self._rows = []
        for row, entry in enumerate(self.entries):
            widget = EntryWidget(entry, self._names)
            widget.clicked.connect(lambda row=row: self.make_current(row))
            widget.setToolTip("Click to show it in the centre view")
            self.dropped_box.addWidget(widget)
            self._rows.append(widget)
        self.dropped_heading.setVisible(bool(self.entries))

    def _rebuild_current_row(self) -> None:
        if self._current_row is not None:
            self.current_box.removeWidget(self._current_row)
            self._current_row.hide()
            self._current_row.deleteLater()
            self._current_row = None
        if self.current is not None:
            self._current_row = EntryWidget(self.current, self._names)
            self.current_box.addWidget(self._current_row)
        self.current_heading.setVisible(self.current is not None)

    def entry_widget(self, row: int) -> EntryWidget:
        return self._rows[row]

    @property
    def current_widget(self) -> EntryWidget | None:
        return self._current_row

    def verdict_text(self, row: int) -> str:
        """The verdict as shown (plain text), e.g. 'blur + noise (noise σ ≈ 0.08)'."""
        p = self.entries[row].prediction
        return self.entries[row].error or (p.describe() if p is not None else "")

    def make_current(self, row: int) -> None:
        """Make entry ``row`` the session's current image (adding it to the images if needed)."""
        entry = self.entries[row]
        s = self.model.session
        for pos, img in enumerate(s.images):
            if Path(img.path).resolve() == Path(entry.path).resolve():
                self.model.set_current(pos)
                return
        self.model.add_images([entry.path])

    def expect_images(self, paths: list[str]) -> None:
        """Images about to be added that get no row of their own (the command line's: predicting
        them would calibrate at the window's start, a minute or more of both cores)."""
        self._known |= {str(p) for p in paths}

    def _on_images_change(self) -> None:
        """Images added to the open session (dropped on the centre view or the window, File >
        Add images) get a row of their own; a new session's images do not."""
        s = self.model.session
        paths = {str(img.path) for img in s.images}
        if id(s) != self._session_id:
            self._session_id, self._known = id(s), paths
        else:
            listed = {e.path for e in self.entries}
            new = [img for img in s.images if str(img.path) not in self._known | listed]
            self._known |= paths
            if new:
                self.entries += [PredictionEntry(str(img.path), img.lr) for img in new]
                self._rebuild_rows()
                self._request()
        self._on_current_change()

    def _on_current_change(self, *_args) -> None:
        img = self.model.session.current_image()
        if img is None:
            changed = self.current is not None
            self.current = None
        else:
            changed = self.current is None or self.current.path != str(img.path) or self.current.lr is not img.lr
            if changed:
                self.current = PredictionEntry(str(img.path), img.lr)
        if changed:
            self._rebuild_current_row()
            self._request()

    # -- live updates ------------------------------------------------------------------------
    @property
    def proportion(self) -> float:
        """Top k % of filters per degradation the predictor uses."""
        return float(self.model.session.mask_settings.proportion) if self.use_masking_k.isChecked() else OWN_PROPORTION

    def _state(self) -> tuple:
        s = self.model.session
        return (self.proportion, id(s.target), id(s.baseline), id(s.scores),
                tuple(id(v) for v in s.scores.values()), len(s.analysis_images))

    def _all(self) -> list[PredictionEntry]:
        return ([self.current] if self.current is not None else []) + self.entries

    def _on_inputs_change(self) -> None:
        self._request(force=True)

    def _on_mask_change(self) -> None:
        if self._state() != self._used:   # k matters only when the box is ticked
            self._request(force=True)

    def _request(self, force: bool = False) -> None:
        s = self.model.session
        self._update_status()
        if self._names != list(s.scores):
            self._names = list(s.scores)
            force = True
        if force:
            self._stop.set()   # a calibration under way is for the old models, scores or k
            self._stop = threading.Event()
            for e in self._all():
                e.prediction, e.error = None, ""
            self._rebuild_rows()
            self._rebuild_current_row()
        todo = self._todo()
        if not todo or not self._can_predict() or s.baseline is None or s.target is None:   # (can_predict: a pair)
            return
        req = _Request(s.baseline, s.target, dict(s.scores), tuple(img.hr for img in s.analysis_images),
                       tuple(s.settings.degradations), self.proportion, s.settings.device,
                       tuple(todo.items()), live_threads(self.model.long_jobs), self._threads, self._stop)
        self._used = self._state()
        self.task.submit(lambda: _predict(req), self._apply)

    def in_view(self) -> bool:
        """The panel is on screen (a tab behind another is 'visible' to Qt, but shows nothing)."""
        return self.isVisible() and not self.visibleRegion().isEmpty()

    def _todo(self) -> dict:
        """path -> image of the rows to predict now: the dropped ones, and the centre image's
        while the panel is in view."""
        rows = self._all() if self.in_view() else self.entries
        return {e.path: e.lr for e in rows if e.prediction is None and not e.error}

    def _can_predict(self) -> bool:
        return self._why_not() == ""

    def _why_not(self) -> str:
        s = self.model.session
        if not s.ready:
            return "Load a baseline and a target to predict degradations."
        if not s.scores:
            return "Run the analysis (or load scores): the predictor uses the discriminative filters."
        if not s.analysis_images:
            return "Add analysis images: the predictor calibrates on them."
        if self.proportion <= 0:
            return "The Masking panel's k is 0 %: raise it, or untick 'use the Masking panel's top-k'."
        return ""

    def idle(self) -> bool:
        """Nothing being predicted and nothing waiting to be (the window's screenshot waits)."""
        if not self.task.idle:
            return False
        return not (self._todo() and self._can_predict())

    def _apply(self, result: dict) -> None:
        by_path = result["predictions"]
        for e in self._all():
            if e.path in by_path and e.prediction is None and not e.error:
                value = by_path[e.path]
                if isinstance(value, str):
                    e.error = value
                else:
                    e.prediction = value
        self._calibration_note = result["note"]
        self._refresh_rows()
        self._update_status()
        self.predictionsChanged.emit()
        if not self.in_view():   # the panel is a hidden tab: say the dropped images' verdicts
            said = [f"{e.name}: {e.prediction.describe()}" for e in self.entries
                    if e.path in by_path and e.prediction is not None]
            if said:
                self.model.statusMessage.emit("Prediction: " + "; ".join(said[-3:]) + " (Prediction panel)")
        if not self.idle():   # rows that came while this job ran
            self._request()

    def _refresh_rows(self) -> None:
        for entry, w in zip(self.entries, self._rows):
            w.show_entry(entry)
        if self.current is not None and self._current_row is not None:
            self._current_row.show_entry(self.current)

    def _on_failed(self, message: str) -> None:
        todo = self._todo()
        for e in self._all():   # the rows waiting for this job say why they got nothing
            if e.path in todo:
                e.error = message
        self._refresh_rows()
        self.status.setText(f"<span style='color:#b00'>{message}</span>")
        self.model.errorOccurred.emit(message)

    def _on_busy(self, busy: bool) -> None:
        if busy:
            self.status.setText("Predicting… (the first run calibrates on the analysis images)")

    def _update_status(self) -> None:
        why = self._why_not()
        if why:
            self.status.setText(why)
            return
        s = self.model.session
        whose = "the Masking panel's" if self.use_masking_k.isChecked() else "its own"
        note = self._calibration_note
        self.status.setText(f"Filters: {whose}, the top {self.proportion:g} % for {', '.join(s.scores)}"
                            + (f" · {note}" if note else "") + f". A bar's mark is the threshold ({THRESHOLD:g}).")

    def shutdown(self) -> None:
        """Stop the prediction thread (the window calls this on close): a calibration under way
        stops at its next step."""
        self._stop.set()
        self.task.close()


def _predict(req: _Request) -> dict:
    """Runs on the prediction thread: calibrate (cached) and predict each image."""
    tuner, limit = req.tuner or AdaptiveThreads(), req.max_threads
    config = PredictorConfig(proportion=req.proportion, device=str(resolve_device(req.device)))
    # the bundled diverse content and a few of the analysis images (prediction/content.py)
    images = calibration_images(list(req.analysis_hr))
    predictor = Predictor(req.baseline, req.target, req.scores, images, req.degradations, config)
    tuner.apply(limit)
    cal = predictor.calibrate(should_stop=req.stop.is_set)   # (raises Cancelled: nothing is applied)
    out: dict[str, Prediction | str] = {}
    for path, lr in req.images:
        if req.stop.is_set():
            raise Cancelled()
        threads = tuner.apply(limit)
        start = time.perf_counter()
        try:
            out[path] = predictor.predict(lr)
        except FaigError as exc:
            out[path] = str(exc)
        else:
            tuner.record(threads, time.perf_counter() - start, lr.shape[0] * lr.shape[1])
    where = {"disk": ", loaded from the cache", "computed": f" in {cal.seconds:.0f} s"}.get(
        predictor.calibration_source or "", "")
    own = min(len(req.analysis_hr), OWN_IMAGES)
    note = (f"calibrated on {len(images) - own} bundled images and {own} analysis images "
            f"({len(cal.samples)} samples{where})")
    return {"predictions": out, "note": note}
