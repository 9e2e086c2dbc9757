"""The main window: menus, toolbar, shortcuts, status bar, drops, sessions, export, autosave.

It owns the docks and the analysis runner and wires them to one SessionModel; it holds no state
of its own beyond the window's (recent files, layout, the recovery file's dirty flag).
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QStandardPaths, Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressBar,
                               QWidget)

from faig_gui import __version__
from faig_gui.app.analysis_dock import AnalysisDock, format_eta
from faig_gui.app.drops import FileDropTarget
from faig_gui.app.filter_grid import FilterGridDock
from faig_gui.app.graph_view import GraphDock
from faig_gui.app.image_view import ImageView
from faig_gui.app.labels import hold_size
from faig_gui.app.live import LatestTask
from faig_gui.app.masking_dock import MaskingDock
from faig_gui.app.plots_dock import PlotsDock
from faig_gui.app.prefetch import FILL_STOPS_KEY, PREFETCH_KEY
from faig_gui.app.profile_dock import ProfileDock
from faig_gui.app.session_model import SessionModel
from faig_gui.app.window_actions import PSNR_Y_KEY, WindowActions, settings
from faig_gui.app.window_exports import WindowExports
from faig_gui.app.workers import AnalysisRunner
from faig_gui.core.device import resolve_device
from faig_gui.core.errors import FaigError
from faig_gui.core.imageio import IMAGE_SUFFIXES, list_images
from faig_gui.core.results import is_scores_archive, load_scores
from faig_gui.core.session import Session

if TYPE_CHECKING:   # an optional module, imported when present (__init__)
    from faig_gui.app.prediction_dock import PredictionDock

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors", ".ckpt")
SESSION_SUFFIX = ".faig"
RECENT_KEY = "recent_sessions"
RECENT_MAX = 8
AUTOSAVE_MS = 60_000
CHECKPOINT_FILTER = "Checkpoints (*.pth *.pt *.safetensors *.ckpt);;All files (*)"
IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in IMAGE_SUFFIXES) + ");;All files (*)"
SESSION_FILTER = "faig-gui sessions (*.faig)"
SCORES_FILTER = "Scores or ranked lists (*.npz *.txt);;All files (*)"
RENDER_NOTE_AFTER_S = 0.25   # the status bar says "rendering the masked output…" once a render takes this long


def recovery_path() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".faig-gui") / "recovery.faig"


class MainWindow(FileDropTarget, WindowActions, WindowExports, QMainWindow):
    def __init__(self, model: SessionModel | None = None, restore_layout: bool = True,
                 autosave_ms: int = AUTOSAVE_MS, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("MainWindow")
        self.model = model or SessionModel()
        self.runner = AnalysisRunner(self.model, self)
        self.export_task = LatestTask("export", self)
        self._dirty = False
        self._error_box: QMessageBox | None = None
        self._errors: list[str] = []   # the messages the open error box lists
        self._closed = False

        self.image_view = ImageView(self.model)
        self.setCentralWidget(self.image_view)
        self._make_docks()
        self._make_actions()
        self._make_menus()
        self._make_toolbar()
        self._make_status_bar()
        self.setAcceptDrops(True)
        self.resize(1600, 1000)
        self._default_state = self.saveState()
        if restore_layout:
            self._restore_layout()

        m = self.model
        m.errorOccurred.connect(self.show_error)
        m.statusMessage.connect(lambda text: self.statusBar().showMessage(text, 8000))
        m.busyChanged.connect(self._on_busy_change)
        m.modelsChanged.connect(self._update_model_label)
        m.settingsChanged.connect(self._update_model_label)
        for signal in (m.modelsChanged, m.imagesChanged, m.scoresChanged, m.maskChanged, m.settingsChanged):
            signal.connect(self._mark_dirty)
        m.scoresChanged.connect(self._update_actions)
        m.modelsChanged.connect(self._update_actions)
        m.imagesChanged.connect(self._update_actions)
        self.runner.runningChanged.connect(self._update_actions)
        self.runner.progress.connect(self._on_progress)
        self._rendering = False   # the status bar says a render is running (RENDER_NOTE_AFTER_S into it)
        self._render_note = QTimer(self)
        self._render_note.setSingleShot(True)
        self._render_note.setInterval(int(RENDER_NOTE_AFTER_S * 1000))
        self._render_note.timeout.connect(self._note_rendering)
        self.image_view.live.busyChanged.connect(self._on_render_busy)
        self.image_view.ahead.connect(self._show_activity)
        self.export_task.failed.connect(self.show_error)

        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(autosave_ms)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start()
        self._update_model_label()
        self._update_actions()
        self._set_clean()

    # -- construction ------------------------------------------------------------------------
    def _make_docks(self) -> None:
        m = self.model
        self.analysis_dock = AnalysisDock(m, self.runner, self)
        self.masking_dock = MaskingDock(m, self)
        self.graph_dock = GraphDock(m, self)
        self.profile_dock = ProfileDock(m, self)
        self.filter_dock = FilterGridDock(m, self)
        self.plots_dock = PlotsDock(m, self)
        self.prediction_dock: PredictionDock | None = None
        if importlib.util.find_spec("faig_gui.app.prediction_dock") is not None:
            try:
                mod = importlib.import_module("faig_gui.app.prediction_dock")
                self.prediction_dock = mod.PredictionDock(m, self)
            except Exception:  # a broken optional panel must not stop the window
                log.exception("the prediction panel could not be created")
        L, R = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.addDockWidget(L, self.analysis_dock)
        self.addDockWidget(L, self.masking_dock)
        self.splitDockWidget(self.analysis_dock, self.masking_dock, Qt.Orientation.Vertical)
        self.addDockWidget(R, self.graph_dock)
        self.addDockWidget(R, self.filter_dock)
        self.splitDockWidget(self.graph_dock, self.filter_dock, Qt.Orientation.Vertical)
        self.splitDockWidget(self.graph_dock, self.profile_dock, Qt.Orientation.Vertical)
        self.tabifyDockWidget(self.filter_dock, self.plots_dock)
        self.filter_dock.raise_()
        if self.prediction_dock is not None:
            self.addDockWidget(L, self.prediction_dock)
            self.tabifyDockWidget(self.masking_dock, self.prediction_dock)
            self.masking_dock.raise_()
        self.setDockNestingEnabled(True)
        self.resizeDocks([self.analysis_dock, self.graph_dock], [300, 470], Qt.Orientation.Horizontal)
        self.resizeDocks([self.graph_dock, self.profile_dock, self.filter_dock], [420, 170, 330],
                         Qt.Orientation.Vertical)
        self.resizeDocks([self.analysis_dock, self.masking_dock], [470, 430], Qt.Orientation.Vertical)

    @property
    def docks(self) -> list[QDockWidget]:
        return [d for d in (self.analysis_dock, self.masking_dock, self.graph_dock, self.profile_dock, self.filter_dock,
                            self.plots_dock, self.prediction_dock) if d is not None]

    def _make_status_bar(self) -> None:
        sb = self.statusBar()
        self.activity_label = QLabel("idle")
        hold_size(self.activity_label, ["rendering the masked output…", "idle · rendering ahead…",
                                        "running FAIG · 999 images · 999 steps", "running masking effects",
                                        "FAIG 99999/99999 · 59 min 59 s left"])
        self.activity_bar = QProgressBar()
        self.activity_bar.setFixedWidth(140)
        self.activity_bar.setRange(0, 1000)
        self.activity_bar.setTextVisible(False)
        self.activity_bar.hide()
        self.model_label = QLabel()
        self.device_label = QLabel()
        sb.addPermanentWidget(self.activity_label)
        sb.addPermanentWidget(self.activity_bar)
        sb.addPermanentWidget(_separator())
        sb.addPermanentWidget(self.model_label)
        sb.addPermanentWidget(_separator())
        sb.addPermanentWidget(self.device_label)

    # -- status ------------------------------------------------------------------------------
    def _update_model_label(self) -> None:
        s = self.model.session
        ref = s.target or s.baseline
        if ref is None:
            self.model_label.setText("no model — open a baseline and a target")
        else:
            name = ref.architecture.display_name or ref.arch_name
            pair = "pair" if s.ready else ("baseline only" if s.target is None else "target only")
            total = s.index.total if s.index is not None else 0   # an index exists once a model is loaded
            self.model_label.setText(f"{name} ×{ref.scale} · {total:,} filters · {pair}")
            self.model_label.setToolTip(f"baseline: {s.baseline.path if s.baseline else '—'}\n"
                                        f"target: {s.target.path if s.target else '—'}")
        want = s.settings.device
        try:
            dev = str(resolve_device(want))
        except FaigError:
            dev = "unavailable"
        self.device_label.setText(f"device: {dev}" + (f" ({want})" if want == "auto" else ""))

    def _on_busy_change(self, busy: bool, what: str) -> None:
        self.activity_label.setText(f"running {what}" if busy else self._activity_text())
        self.activity_bar.setVisible(busy)
        self.activity_bar.setValue(0)

    def _on_progress(self, p) -> None:
        self.activity_bar.setValue(int(p.fraction * 1000))
        self.activity_label.setText(f"FAIG {p.done}/{p.total} · {format_eta(p.eta)}"
                                    if self.model.session.settings.method == "faig" else
                                    f"analysis {p.done}/{p.total} · {format_eta(p.eta)}")

    def _on_render_busy(self, busy: bool) -> None:
        # said only when a render takes a while: a quick one would flash the text (and its
        # repaint, twice per render, fell on the render's cores)
        if busy:
            if not self._rendering and not self._render_note.isActive():
                self._render_note.start()
            return
        self._render_note.stop()
        self._rendering = False
        self._show_activity()

    def _note_rendering(self) -> None:
        self._rendering = True
        self._show_activity()

    def _show_activity(self) -> None:
        if not self.runner.running:
            self.activity_label.setText(self._activity_text())

    def _activity_text(self) -> str:
        """What the image view does: a render, rendering ahead (prefetch.py), or nothing."""
        if self._rendering:
            return "rendering the masked output…"
        return "idle · rendering ahead…" if self.image_view.rendering_ahead else "idle"

    def _update_actions(self, *_args) -> None:
        s = self.model.session
        running = self.runner.running
        self.run_action.setEnabled(not running and s.ready)
        self.cancel_action.setEnabled(running)
        has_scores = bool(s.scores)
        self.export_lists_action.setEnabled(has_scores)
        self.open_scores_action.setEnabled(s.index is not None)
        self.export_outputs_action.setEnabled(s.ready and bool(s.images))
        self.export_montage_action.setEnabled(s.ready and bool(s.images))
        self.clear_mask_action.setEnabled(s.index is not None)

    def _mark_dirty(self, *_args) -> None:
        self._dirty = True
        self.setWindowModified(True)
        self._update_title()

    def _set_clean(self) -> None:
        self._dirty = False
        self.setWindowModified(False)
        self._update_title()

    def _update_title(self) -> None:
        path = self.model.session.path
        self.setWindowTitle(f"{path.name if path else 'untitled session'}[*] — faig-gui")

    def show_error(self, message: str) -> None:
        """A user error: one line in the status bar and a dialog that does not block. Errors that
        come while the dialog is open join its list (a launch with a bad checkpoint and a bad
        image shows both)."""
        self.statusBar().showMessage(f"⚠ {message}", 15000)
        if self._error_box is not None:
            self._errors.append(message)
            self._error_box.setText(f"{len(self._errors)} problems:\n\n" + "\n\n".join(f"• {e}" for e in self._errors))
            return
        self._errors = [message]
        box = QMessageBox(QMessageBox.Icon.Warning, "faig-gui", message, QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _r, b=box: setattr(self, "_error_box", None) if self._error_box is b else None)
        self._error_box = box
        box.show()

    @property
    def last_error(self) -> str:
        return self._error_box.text() if self._error_box is not None else ""

    # -- file actions ------------------------------------------------------------------------
    def choose_baseline(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open the baseline checkpoint", "", CHECKPOINT_FILTER)
        if path:
            self.model.load_baseline(path)

    def choose_target(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open the target checkpoint", "", CHECKPOINT_FILTER)
        if path:
            self.model.load_target(path)

    def choose_scores(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open scores or a ranked list", "", SCORES_FILTER)
        if path:
            self.open_scores(path)

    def open_scores(self, path: str | Path) -> bool:
        """A scores.npz replaces the session's scores; a ranked list (``blur_index.txt``) joins the
        scores shown now as its degradation's ranking (opening blur_index.txt then
        noise_index.txt gives both), replacing that degradation's."""
        s = self.model.session
        if s.index is None:
            self.show_error("open a baseline and a target before their scores")
            return False
        total = s.index.total
        opened = self.model.guarded(lambda: load_scores(path, total))
        if opened is None:
            return False
        if is_scores_archive(path):
            self.model.set_scores(opened, "faig")
        else:
            self.model.set_scores({**s.scores, **opened}, s.active_method)
        if any(s.scores.get(k) is not v for k, v in opened.items()):
            return False   # set_scores refused them and said why
        self.model.set_degradation(next(iter(opened)))
        self.statusBar().showMessage(f"opened {Path(path).name}: {', '.join(opened)}", 5000)
        return True

    def choose_images(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add images", "", IMAGE_FILTER)
        if paths:
            self.model.add_images(paths)

    def choose_image_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add every image in a folder")
        if folder:
            self.add_image_folder(folder)

    def add_image_folder(self, folder: str) -> int:
        files = self.model.guarded(lambda: list_images(folder))
        return self.model.add_images([str(f) for f in files]) if files else 0

    def choose_session(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a session", "", SESSION_FILTER)
        if path:
            self.open_session(path)

    def open_session(self, path: str | Path) -> bool:
        session = self.model.guarded(lambda: Session.open(path, self.model.session.registry))
        if session is None:
            return False
        if self.runner.running:
            self.runner.shutdown()
        self.model.replace_session(session)
        self._add_recent(path)
        self._set_clean()
        self.statusBar().showMessage(f"opened {path}", 5000)
        return True

    def open_demo(self, name: str) -> bool:
        """Replace the session with a bundled demo (its pair, scores, images and degradations)."""
        from faig_gui.app.launch import demo_session
        from faig_gui.core.demo import demo_files
        session = self.model.guarded(lambda: demo_session(demo_files(name), Session(self.model.session.registry)))
        if session is None:
            return False
        if self.runner.running:
            self.runner.shutdown()
        self.model.replace_session(session)
        self._set_clean()
        self.statusBar().showMessage(f"opened the {name} demo", 5000)
        return True

    def save(self) -> bool:
        path = self.model.session.path
        if path is None or path == recovery_path():
            return self.save_as()
        return self.save_session(path)

    def save_as(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(self, "Save the session", "session.faig", SESSION_FILTER)
        if not path:
            return False
        if not path.endswith(SESSION_SUFFIX):
            path += SESSION_SUFFIX
        return self.save_session(path)

    def save_session(self, path: str | Path) -> bool:
        if not self.model.attempt(lambda: self.model.session.save(path)):
            return False
        self._add_recent(path)
        self._set_clean()
        self.statusBar().showMessage(f"saved {path}", 5000)
        return True

    # -- recent files --------------------------------------------------------------------------
    def recent_sessions(self) -> list[str]:
        value: Any = settings().value(RECENT_KEY, [])   # a str, a list of them or nothing
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, path: str | Path) -> None:
        p = str(Path(path).resolve())
        items = [p] + [r for r in self.recent_sessions() if r != p]
        settings().setValue(RECENT_KEY, items[:RECENT_MAX])

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        items = [r for r in self.recent_sessions() if Path(r).is_file()]
        for n, path in enumerate(items, start=1):
            act = self.recent_menu.addAction(f"&{n} {Path(path).name}")
            act.setToolTip(path)
            act.triggered.connect(lambda _c=False, p=path: self.open_session(p))
        if not items:
            self.recent_menu.addAction("(no recent sessions)").setEnabled(False)

    # -- autosave and recovery ---------------------------------------------------------------
    def autosave(self) -> bool:
        """Save to the recovery file when something changed (the session keeps its own path)."""
        s = self.model.session
        if not self._dirty or not (s.baseline or s.target or s.images):
            return False
        keep = s.path
        try:
            s.save(recovery_path())
        except FaigError as exc:
            self.statusBar().showMessage(f"autosave failed: {exc}", 8000)
            return False
        finally:
            s.path = keep
        return True

    def offer_recovery(self) -> bool:
        """After a crash the recovery file is still there: offer to reopen it."""
        path = recovery_path()
        if not path.is_file():
            return False
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
        answer = QMessageBox.question(
            self, "Recover the last session?",
            f"faig-gui did not close normally last time. Recover the session autosaved at {when}?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes)
        if answer != QMessageBox.StandardButton.Yes:
            path.unlink(missing_ok=True)
            return False
        session = self.model.guarded(lambda: Session.open(path, self.model.session.registry))
        if session is None:
            return False
        session.path = None  # the recovery file is not the user's file: saving asks where
        self.model.replace_session(session)
        self._mark_dirty()
        self.statusBar().showMessage("recovered the autosaved session; save it to keep it", 8000)
        return True

    # -- analysis ----------------------------------------------------------------------------
    def run_analysis(self) -> bool:
        return self.analysis_dock.run()

    # -- drops: every local file; those faig-gui cannot open are named in the status bar
    # (open_paths), not refused silently at the drag ----------------------------------------
    def files_dropped(self, paths: list[str]) -> None:
        # let the drop finish before any dialog opens
        QTimer.singleShot(0, lambda: self.open_paths(paths))

    def open_paths(self, paths: list[str]) -> None:
        """Dropped or given files: sessions open, checkpoints ask their role, scores and ranked lists
        open (after the checkpoints: they belong to the model dropped with them), images are added."""
        sessions = [p for p in paths if p.lower().endswith(SESSION_SUFFIX)]
        checkpoints = [p for p in paths if Path(p).suffix.lower() in CHECKPOINT_SUFFIXES]
        images = [p for p in paths if Path(p).suffix.lower() in IMAGE_SUFFIXES]
        # scores.npz, and the authors' ranked lists by their name (a notes.txt is no ranking)
        scores = [p for p in paths if Path(p).suffix.lower() == ".npz" or p.lower().endswith("_index.txt")]
        if sessions:
            self.open_session(sessions[0])
        for ckpt in checkpoints:
            role = self.ask_checkpoint_role(ckpt)
            if role == "baseline":
                self.model.load_baseline(ckpt)
            elif role == "target":
                self.model.load_target(ckpt)
        for p in scores:
            self.open_scores(p)
        if images:
            self.model.add_images(images)   # (the Prediction panel predicts images added to the session)
        others = [p for p in paths if p not in sessions + checkpoints + scores + images]
        if others:
            names = ", ".join(Path(p).name for p in others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
            self.statusBar().showMessage(
                f"⚠ {names}: not opened: faig-gui opens checkpoints ({', '.join(CHECKPOINT_SUFFIXES)}), images "
                f"({', '.join(IMAGE_SUFFIXES)}), scores (scores.npz, <degradation>_index.txt) and sessions "
                f"({SESSION_SUFFIX})", 15000)

    def ask_checkpoint_role(self, path: str) -> str | None:
        box = QMessageBox(QMessageBox.Icon.Question, "Baseline or target?",
                          f"Open {Path(path).name} as the baseline (trained on clean inputs) or as the "
                          f"target (fine-tuned for blind degradations)?", QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("roleQuestion")
        baseline = box.addButton("Baseline", QMessageBox.ButtonRole.AcceptRole)
        target = box.addButton("Target", QMessageBox.ButtonRole.AcceptRole)
        box.setDefaultButton(target)
        box.exec()
        clicked = box.clickedButton()
        return "baseline" if clicked is baseline else "target" if clicked is target else None

    # -- view --------------------------------------------------------------------------------
    def _step_image(self, step: int) -> None:
        s = self.model.session
        if s.images:
            self.model.set_current((s.current + step) % len(s.images))

    def set_prefetch(self, enabled: bool) -> None:
        """The preference View ▸ Prefetch the next mask step (kept across sessions)."""
        self.prefetch_action.setChecked(enabled)
        settings().setValue(PREFETCH_KEY, bool(enabled))
        self.image_view.set_prefetch(enabled)

    def set_psnr_y(self, on_y: bool) -> None:
        """The preference View ▸ PSNR on luma (Y) (kept across sessions)."""
        self.psnr_y_action.setChecked(on_y)
        settings().setValue(PSNR_Y_KEY, bool(on_y))
        self.image_view.set_psnr_y(on_y)

    def set_fill_stops(self, enabled: bool) -> None:
        """The preference View ▸ Fill the top-k slider's stops when idle (kept across sessions)."""
        self.fill_stops_action.setChecked(enabled)
        settings().setValue(FILL_STOPS_KEY, bool(enabled))
        self.image_view.set_fill_stops(enabled)

    def reset_layout(self) -> None:
        self.restoreState(self._default_state)
        for dock in self.docks:
            dock.show()

    def _restore_layout(self) -> None:
        st = settings()
        geometry, state = st.value("window/geometry"), st.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    def open_guide(self) -> None:
        guide = Path(__file__).resolve().parents[2] / "docs" / "app.md"
        if guide.is_file():
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(guide)))
        else:
            QDesktopServices.openUrl(QUrl("https://github.com/TencentARC/FAIG"))

    def about(self) -> None:
        QMessageBox.about(self, "About faig-gui",
                          f"<b>faig-gui {__version__}</b><p>Finding discriminative filters for specific "
                          f"degradations in blind super-resolution (FAIG, NeurIPS 2021), interactively.</p>")

    # -- idle and screenshots ----------------------------------------------------------------
    def is_idle(self) -> bool:
        """Nothing computes or is about to: no analysis or long job, no render, no guess or stop
        being rendered ahead (prefetch.py), no prediction; the status bar then says "idle"."""
        if self.runner.running or self.model.long_jobs or self._rendering or self._render_note.isActive():
            return False
        if getattr(self.image_view, "rendering_ahead", False):
            return False
        # every latest-wins task of the window and its panels (renders, predictions, export)
        if not all(task.idle for task in self.findChildren(LatestTask)):
            return False
        for dock in self.docks:
            idle = getattr(dock, "idle", True)
            if callable(idle):
                idle = idle()
            if not idle:
                return False
        return True

    def grab_when_idle(self, path: str | Path, done: Callable[[bool], None], settle_ms: int = 400,
                       timeout_s: float = 120.0) -> None:
        """Wait until nothing is computing (then a short settle for layouts), save a grab."""
        start = time.monotonic()
        state: dict[str, float | None] = {"idle_since": None}
        timer = QTimer(self)
        timer.setInterval(50)

        def tick() -> None:
            now = time.monotonic()
            if self.is_idle():
                state["idle_since"] = state["idle_since"] or now
            else:
                state["idle_since"] = None
            settled = state["idle_since"] is not None and (now - state["idle_since"]) * 1000 >= settle_ms
            if settled or now - start > timeout_s:
                timer.stop()
                if not settled:
                    log.warning("still busy after %.0f s (%s): the screenshot shows the window as it is",
                                timeout_s, self.activity_label.text())
                ok = self.grab().save(str(path))
                if not ok:
                    log.error("could not write the screenshot to %s", path)
                done(ok)

        timer.timeout.connect(tick)
        timer.start()

    # -- closing -----------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        s = self.model.session
        if self._dirty and (s.baseline or s.target or s.images) and not self._closed:
            answer = QMessageBox.question(
                self, "Save the session?", "The session has changes that are not saved. Save them?",
                QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)
            if answer == QMessageBox.StandardButton.Cancel or (
                    answer == QMessageBox.StandardButton.Save and not self.save()):
                event.ignore()
                return
        self.shutdown()
        st = settings()
        st.setValue("window/geometry", self.saveGeometry())
        st.setValue("window/state", self.saveState())
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop every thread this window started and remove the recovery file (a clean exit)."""
        if self._closed:
            return
        self._closed = True
        self.autosave_timer.stop()
        self.runner.shutdown()
        self.image_view.shutdown()
        self.export_task.close()
        for dock in self.docks:
            stop = getattr(dock, "shutdown", None)
            if callable(stop):
                stop()
        recovery_path().unlink(missing_ok=True)


def _separator() -> QLabel:
    s = QLabel("|")
    s.setStyleSheet("color: palette(mid);")
    return s
