"""The main window's actions, menus and toolbar (a mixin of MainWindow, kept apart so that the
window's module holds its wiring and state, and this one what the user can click)."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QStyle

from faig_gui.app.prefetch import FILL_STOPS_KEY, PREFETCH_KEY

if TYPE_CHECKING:
    _Base = QMainWindow
else:
    _Base = object


#: the preference View ▸ PSNR on luma (Y)
PSNR_Y_KEY = "view/psnr_y"


def settings() -> QSettings:
    """The window's persistent preferences (recent files, layout, render-ahead switches)."""
    return QSettings("faig-gui", "faig-gui")


class WindowActions(_Base):
    """Builds MainWindow's QActions (``*_action``), its menus and its toolbar."""

    if TYPE_CHECKING:   # what MainWindow provides
        from faig_gui.app.analysis_dock import AnalysisDock
        from faig_gui.app.filter_grid import FilterGridDock
        from faig_gui.app.graph_view import GraphDock
        from faig_gui.app.image_view import ImageView
        from faig_gui.app.plots_dock import PlotsDock
        from faig_gui.app.session_model import SessionModel
        from faig_gui.app.workers import AnalysisRunner
        from PySide6.QtWidgets import QDockWidget, QMenu
        model: SessionModel
        runner: AnalysisRunner
        image_view: ImageView
        analysis_dock: AnalysisDock
        graph_dock: GraphDock
        filter_dock: FilterGridDock
        plots_dock: PlotsDock
        recent_menu: QMenu
        @property
        def docks(self) -> list[QDockWidget]: ...
        def choose_baseline(self) -> None: ...
        def choose_target(self) -> None: ...
        def choose_scores(self) -> None: ...
        def choose_images(self) -> None: ...
        def choose_image_folder(self) -> None: ...
        def choose_session(self) -> None: ...
        def save(self) -> bool: ...
        def save_as(self) -> bool: ...
        def run_analysis(self) -> bool: ...
        def reset_layout(self) -> None: ...
        def set_prefetch(self, enabled: bool) -> None: ...
        def set_fill_stops(self, enabled: bool) -> None: ...
        def set_psnr_y(self, on_y: bool) -> None: ...
        def open_guide(self) -> None: ...
        def about(self) -> None: ...
        def open_demo(self, name: str) -> bool: ...
        def open_session(self, path) -> bool: ...
        def _fill_recent_menu(self) -> None: ...
        def _step_image(self, step: int) -> None: ...
        def choose_export_lists(self) -> None: ...
        def choose_export_outputs(self) -> None: ...
        def choose_export_montage(self) -> None: ...
        def choose_export_dock(self, dock: QDockWidget) -> None: ...

    def _action(self, text: str, slot: Callable, shortcut=None, tip: str = "", icon=None) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(f"{tip} ({a.shortcut().toString()})" if shortcut is not None else tip)
        if icon is not None:
            a.setIcon(self.style().standardIcon(icon))
        a.triggered.connect(lambda _checked=False: slot())
        self.addAction(a)
        return a

    def _make_actions(self) -> None:
        SP = QStyle.StandardPixmap
        K = QKeySequence.StandardKey
        a = self._action
        self.open_baseline_action = a("Open &baseline…", self.choose_baseline, "Ctrl+B",
                                      "Open the baseline checkpoint (trained on clean inputs)", SP.SP_FileIcon)
        self.open_target_action = a("Open &target…", self.choose_target, "Ctrl+T",
                                    "Open the target checkpoint (fine-tuned for blind degradations)", SP.SP_FileIcon)
        self.open_scores_action = a("Open &scores…", self.choose_scores, None,
                                    "Open filter scores: scores.npz, or a ranked list <degradation>_index.txt "
                                    "(one filter index per line, best first, as the FAIG authors write them)")
        self.add_images_action = a("Add &images…", self.choose_images, "Ctrl+I", "Add images to look at",
                                   SP.SP_FileDialogNewFolder)
        self.add_folder_action = a("Add image &folder…", self.choose_image_folder, "Ctrl+Shift+I",
                                   "Add every image in a folder")
        self.open_session_action = a("&Open session…", self.choose_session, K.Open, "Open a saved session",
                                     SP.SP_DialogOpenButton)
        self.save_action = a("&Save session", self.save, K.Save, "Save the session", SP.SP_DialogSaveButton)
        self.save_as_action = a("Save session &as…", self.save_as, K.SaveAs, "Save the session under a new name")
        self.export_lists_action = a("Ranked &lists (index.txt, CSV)…", self.choose_export_lists, "Ctrl+E",
                                     "Write <degradation>_index.txt and a CSV of layer/out/in/score/rank")
        self.export_outputs_action = a("&Masked outputs (PNG)…", self.choose_export_outputs, "Ctrl+Shift+E",
                                       "Write each image's target and masked outputs as PNG")
        self.export_montage_action = a("Mask &montage (PNG)…", self.choose_export_montage, None,
                                       "One PNG like the teaser: per image, input / target output / masked "
                                       "output with the current mask")
        self.export_graph_action = a("Network &graph (PNG/SVG)…", lambda: self.choose_export_dock(self.graph_dock))
        self.export_grid_action = a("&Filter grid (PNG/SVG)…", lambda: self.choose_export_dock(self.filter_dock))
        self.export_plots_action = a("&Plots (PNG/SVG)…", lambda: self.choose_export_dock(self.plots_dock))
        self.quit_action = a("&Quit", self.close, K.Quit, "Quit faig-gui")
        self.run_action = a("&Run analysis", self.run_analysis, "F5", "Rank the filters with the Analysis settings",
                            SP.SP_MediaPlay)
        self.cancel_action = a("&Cancel analysis", self.runner.cancel, "Esc", "Stop the run; previous results stay",
                               SP.SP_MediaStop)
        self.clear_mask_action = a("C&lear mask", self.model.clear_mask, "Ctrl+M", "Unmask every filter")
        # every mask change (slider, preset, clicks in the grid or graph, clear) is one step
        stack = self.model.undo_stack
        self.undo_action = stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcuts([QKeySequence("Ctrl+Z")])
        self.undo_action.setStatusTip("Undo the last mask change")
        self.redo_action = stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.redo_action.setStatusTip("Redo the mask change just undone")
        for act in (self.undo_action, self.redo_action):
            self.addAction(act)
        self.reset_zoom_action = a("Reset &zoom", self.image_view.reset_zoom, "Ctrl+0", "Fit the images to the views")
        self.next_image_action = a("&Next image", lambda: self._step_image(1), "Ctrl+Right", "Show the next image")
        self.previous_image_action = a("&Previous image", lambda: self._step_image(-1), "Ctrl+Left",
                                       "Show the previous image")
        self.reset_layout_action = a("Reset &layout", self.reset_layout, None, "Put the panels back where they were")
        self.prefetch_action = a("Prefetch the next mask &step", lambda: self.set_prefetch(self.prefetch_action.isChecked()),
                                 None, "While nothing else runs, render the mask that one more step of the last "
                                 "slider change would give, so that it shows at once (uses idle cores)")
        self.prefetch_action.setCheckable(True)
        self.prefetch_action.setChecked(bool(settings().value(PREFETCH_KEY, True, type=bool)))   # stub: object
        self.image_view.set_prefetch(self.prefetch_action.isChecked())
        self.fill_stops_action = a("Fill the top-k slider's s&tops when idle",
                                   lambda: self.set_fill_stops(self.fill_stops_action.isChecked()), None,
                                   "After the guess of the next step, render the top-k values one key press "
                                   "away (±0.1 %, every whole percent) while nothing else runs, so that "
                                   "scrubbing between them shows each at once (uses idle cores)")
        self.fill_stops_action.setCheckable(True)
        self.fill_stops_action.setChecked(bool(settings().value(FILL_STOPS_KEY, True, type=bool)))
        self.image_view.set_fill_stops(self.fill_stops_action.isChecked())
        self.psnr_y_action = a("PSNR on &luma (Y)", lambda: self.set_psnr_y(self.psnr_y_action.isChecked()), None,
                               "Show PSNR on the BT.601 luma (Y), as SR papers and BasicSR's test_y_channel "
                               "report it, instead of on RGB: the metrics line and the Effect / PSNR table")
        self.psnr_y_action.setCheckable(True)
        self.psnr_y_action.setChecked(bool(settings().value(PSNR_Y_KEY, False, type=bool)))
        self.image_view.set_psnr_y(self.psnr_y_action.isChecked())
        self.guide_action = a("&User guide", self.open_guide, K.HelpContents, "Open the user guide")
        self.about_action = a("&About faig-gui", self.about)

    def _make_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        for act in (self.open_baseline_action, self.open_target_action, self.open_scores_action, None,
                    self.add_images_action,
                    self.add_folder_action, None, self.open_session_action):
            f.addSeparator() if act is None else f.addAction(act)
        self.recent_menu = f.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.demo_menu = f.addMenu("Open &demo")   # the bundled pairs; the first is the default
        from faig_gui.core.demo import DEMOS, available_demos
        present = dict(available_demos())
        self.demo_actions: dict[str, QAction] = {}
        for name, (_folder, title) in DEMOS.items():
            act = self.demo_menu.addAction(title)
            act.setEnabled(name in present)
            act.setToolTip(title if name in present else f"{title}: not bundled (scripts/build_demo.py)")
            act.triggered.connect(lambda _=False, n=name: self.open_demo(n))
            self.demo_actions[name] = act
        f.addAction(self.save_action)
        f.addAction(self.save_as_action)
        f.addSeparator()
        self.export_menu = f.addMenu("&Export")
        for act in (self.export_lists_action, self.export_outputs_action, self.export_montage_action, None,
                    self.export_graph_action,
                    self.export_grid_action, self.export_plots_action):
            self.export_menu.addSeparator() if act is None else self.export_menu.addAction(act)
        f.addSeparator()
        f.addAction(self.quit_action)
        self.edit_menu = mb.addMenu("&Edit")
        for act in (self.undo_action, self.redo_action, None, self.clear_mask_action):
            self.edit_menu.addSeparator() if act is None else self.edit_menu.addAction(act)
        an = mb.addMenu("&Analysis")
        an.addAction(self.run_action)
        an.addAction(self.cancel_action)
        an.addSeparator()
        an.addAction(self.clear_mask_action)
        v = mb.addMenu("&View")
        for dock in self.docks:
            v.addAction(dock.toggleViewAction())
        v.addSeparator()
        for act in (self.previous_image_action, self.next_image_action, self.reset_zoom_action,
                    self.reset_layout_action, None, self.prefetch_action, self.fill_stops_action,
                    None, self.psnr_y_action):
            v.addSeparator() if act is None else v.addAction(act)
        h = mb.addMenu("&Help")
        h.addAction(self.guide_action)
        h.addAction(self.about_action)

    def _make_toolbar(self) -> None:
        tb = self.addToolBar("Main")
        tb.setObjectName("MainToolBar")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.setMovable(False)
        for act in (self.open_baseline_action, self.open_target_action, self.add_images_action, None,
                    self.open_session_action, self.save_action, None, self.run_action, self.cancel_action):
            tb.addSeparator() if act is None else tb.addAction(act)
