"""The main window's exports: ranked lists, masked outputs, the mask montage and dock pictures
(a mixin of MainWindow; the files are written by core.exports and core.results, the heavy ones
off the UI thread)."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QDockWidget, QFileDialog, QMainWindow

from faig_gui.core.errors import FaigError
from faig_gui.core.exports import masked_montage, output_stems, write_masked_outputs
from faig_gui.core.imageio import write_image
from faig_gui.core.masking import masked_state_dict
from faig_gui.core.results import write_ranked_lists

if TYPE_CHECKING:
    _Base = QMainWindow
else:
    _Base = object

PICTURE_FILTER = "PNG image (*.png);;SVG drawing (*.svg)"


def session_stems(images) -> list[str]:
    """The session's images' output stems, as `faig-gui mask` names its files (core.exports)."""
    return output_stems([img.path for img in images], [img.label for img in images])


class WindowExports(_Base):
    """File ▸ Export: each ``choose_*`` asks where, the method after it writes."""

    if TYPE_CHECKING:   # what MainWindow provides
        from faig_gui.app.live import LatestTask
        from faig_gui.app.session_model import SessionModel
        model: SessionModel
        export_task: LatestTask
        def show_error(self, message: str) -> None: ...

    # -- export ------------------------------------------------------------------------------
    def choose_export_lists(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the ranked lists")
        if folder:
            self.export_ranked_lists(folder)

    def export_ranked_lists(self, folder: str | Path) -> list[Path]:
        s = self.model.session
        if not s.scores or s.index is None:
            self.show_error("no scores to export: run the analysis first")
            return []
        folder = Path(folder)
        prefix = "" if s.active_method == "faig" else f"{s.active_method}_"
        try:
            written = write_ranked_lists(folder, s.scores, s.index, prefix)
        except FaigError as exc:
            self.show_error(str(exc))
            return []
        self.statusBar().showMessage(f"wrote {len(written)} files to {folder}", 8000)
        return written

    def choose_export_outputs(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the masked outputs")
        if folder:
            self.export_masked_outputs(folder)

    def _masked_copy(self, what: str):
        """For an export computed off the UI thread: a private copy of the target's module, a function
        that makes the masked weights there, and the scale; None (and why, shown) without a pair
        and images."""
        s = self.model.session
        if s.baseline is None or s.target is None or not s.images:   # not s.ready, for the type checker
            self.show_error(f"{what} needs a baseline, a target and images")
            return None
        target, baseline, mask, index = s.target.state_dict, s.baseline.state_dict, s.mask, s.index
        return copy.deepcopy(s.target.module), lambda: masked_state_dict(target, baseline, mask, index), s.scale

    def export_masked_outputs(self, folder: str | Path) -> None:
        """Each image's target and masked outputs as PNG, computed off the UI thread."""
        made = self._masked_copy("export")
        if made is None:
            return
        module, masked, scale = made
        images = list(zip(session_stems(self.model.session.images), (img.lr for img in self.model.session.images)))
        out = Path(folder)

        def job() -> list[Path]:
            return write_masked_outputs(module, masked(), scale, images, out)

        self.statusBar().showMessage(f"exporting {len(images)} images…")
        self.export_task.submit(job, lambda files: self.statusBar().showMessage(
            f"wrote {len(files)} images to {out}", 8000))

    def choose_export_montage(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Mask montage", "montage.png", "PNG image (*.png)")
        if path:
            self.export_montage(path if Path(path).suffix else path + ".png")

    def export_montage(self, path: str | Path) -> None:
        """Input / target / masked output per image in one PNG, computed off the UI thread."""
        made = self._masked_copy("the montage")
        if made is None:
            return
        module, masked, scale = made
        lrs = [img.lr for img in self.model.session.images]
        path = Path(path)

        def job() -> Path:
            write_image(path, masked_montage(module, masked(), scale, lrs))
            return path

        self.statusBar().showMessage(f"making a montage of {len(lrs)} images…")
        self.export_task.submit(job, lambda p: self.statusBar().showMessage(f"wrote {p}", 8000))

    def choose_export_dock(self, dock: QDockWidget) -> None:
        path, chosen = QFileDialog.getSaveFileName(self, f"Export {dock.windowTitle()}",
                                                   f"{dock.objectName().lower()}.png", PICTURE_FILTER)
        if path:
            if not Path(path).suffix:
                path += ".svg" if "svg" in chosen.lower() else ".png"
            self.export_dock(dock, path)

    def export_dock(self, dock: QDockWidget, path: str | Path) -> bool:
        export = getattr(dock, "export", None)
        if export is None:
            self.show_error(f"the {dock.windowTitle()} panel cannot export yet")
            return False
        if not self.model.attempt(lambda: export(path)):
            return False
        self.statusBar().showMessage(f"wrote {path}", 5000)
        return True
