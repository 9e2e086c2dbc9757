"""Qt face of the core Session: the state lives in ``session``; widgets observe the signals.

Every mutation goes through a method here so that exactly the right signals fire. User errors
(FaigError) become ``errorOccurred`` and leave the state as it was.
"""
from __future__ import annotations

from typing import Callable, TypeVar

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from faig_gui.core.analysis import AnalysisResult
from faig_gui.core.errors import FaigError
from faig_gui.core.masking import FilterMask
from faig_gui.core.session import AnalysisSettings, Session

T = TypeVar("T")

MASK_HOLD_S = 0.3   # the longest maskShown waits for a masked output (a render superseded again and again)


class SessionModel(QObject):
    modelsChanged = Signal()            # baseline/target (and so the filter index) changed
    imagesChanged = Signal()            # image list changed
    currentImageChanged = Signal(int)   # position in session.images, -1 for none
    scoresChanged = Signal()            # session.scores / results changed
    maskChanged = Signal()              # session.mask or mask settings changed
    maskShown = Signal()                # the same, once its masked output is on screen (hold_mask_shown)
    settingsChanged = Signal()          # analysis settings changed
    selectedLayerChanged = Signal(str)  # parameter name of the selected conv layer, '' for none
    degradationChanged = Signal(str)    # the degradation whose importance the views show
    errorOccurred = Signal(str)         # one-line user error message
    statusMessage = Signal(str)
    busyChanged = Signal(bool, str)     # long work started/ended, with what it is

    def __init__(self, session: Session | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.session = session or Session()
        self.selected_layer: str = ""
        self.degradation: str = ""
        self.long_jobs = 0                  # long computations running now (FAIG, effect curves)
        self.busyChanged.connect(self._count_long_jobs)
        # maskShown: what redraws for a mask change besides the masked output itself (graph,
        # grid, plots, predictions) waits for that output while it is being computed, so that
        # both land together and the render has the cores to itself (on two cores ~25 ms of
        # UI-thread work during a render made it ~40 ms slower: its torch threads wait for
        # each other at every convolution when one of them loses its core)
        self._holding = False
        self._mask_pending = False
        self._hold_timer = QTimer(self)
        self._hold_timer.setSingleShot(True)
        self._hold_timer.setInterval(int(MASK_HOLD_S * 1000))
        self._hold_timer.timeout.connect(self._show_mask)

    def _count_long_jobs(self, busy: bool, _what: str) -> None:
        self.long_jobs = max(0, self.long_jobs + (1 if busy else -1))

    # -- helpers -----------------------------------------------------------------------------
    def _mask_changed(self) -> None:
        self.maskChanged.emit()   # (the image view's slot may hold maskShown: hold_mask_shown)
        if self._holding:
            self._mask_pending = True
            if not self._hold_timer.isActive():
                self._hold_timer.start()
        else:
            self._show_mask()

    def _show_mask(self) -> None:
        self._hold_timer.stop()
        self._mask_pending = False
        self.maskShown.emit()

    def hold_mask_shown(self) -> None:
        """The masked output of the mask change being signalled is being computed: maskShown
        waits for release_mask_shown(), or MASK_HOLD_S at most."""
        self._holding = True

    def release_mask_shown(self) -> None:
        """The masked output is on screen (or no longer coming): maskShown follows now."""
        self._holding = False
        if self._mask_pending:
            self._show_mask()

    def attempt(self, fn: Callable[[], object]) -> bool:
        """Do ``fn``; True when it ran to the end, False when it raised a FaigError (which
        becomes errorOccurred; nothing else changes). What ``fn`` returns plays no part: a
        procedure returns None whether or not it did its job."""
        try:
            fn()
        except FaigError as exc:
            self.errorOccurred.emit(str(exc))
            return False
        return True

    def guarded(self, fn: Callable[[], T]) -> T | None:
        """Compute ``fn()``; a FaigError becomes errorOccurred and None. ``fn`` must return a
        value (a job, a session, a list): a function that returns None could not be told apart
        from a failure, so it is refused (use attempt for procedures)."""
        try:
            value = fn()
        except FaigError as exc:
            self.errorOccurred.emit(str(exc))
            return None
        if value is None:
            raise TypeError(f"guarded({fn!r}) returned None, which reads as a failure: use attempt()")
        return value

    def replace_session(self, session: Session) -> None:
        self.session = session
        self.selected_layer = ""
        self.modelsChanged.emit()
        self.imagesChanged.emit()
        self.currentImageChanged.emit(session.current)
        self.settingsChanged.emit()
        self._ensure_degradation()
        self.scoresChanged.emit()
        self._mask_changed()

    def _ensure_degradation(self) -> None:
        names = self.session.degradation_names
        if self.degradation not in names:
            self.set_degradation(names[0] if names else "")

    # -- models ------------------------------------------------------------------------------
    def load_pair(self, baseline: str, target: str, arch: str | None = None) -> bool:
        if not self.attempt(lambda: self.session.load_pair(baseline, target, arch)):
            return False
        self._after_models()
        return True

    def load_baseline(self, path: str) -> bool:
        if not self.attempt(lambda: self.session.load_baseline(path)):
            return False
        self._after_models()
        return True

    def load_target(self, path: str) -> bool:
        if not self.attempt(lambda: self.session.load_target(path)):
            return False
        self._after_models()
        return True

    def _after_models(self) -> None:
        if self.selected_layer and (self.session.index is None or
                                    self.selected_layer not in {l.name for l in self.session.index.layers}):
            self.selected_layer = ""
        self.modelsChanged.emit()
        self.scoresChanged.emit()
        self._mask_changed()

    # -- images ------------------------------------------------------------------------------
    def add_images(self, paths: list[str]) -> int:
        """Add each readable image; report each unreadable one; returns how many were added."""
        added = 0
        for p in paths:
            try:
                self.session.add_image(p)
                added += 1
            except FaigError as exc:
                self.errorOccurred.emit(str(exc))
        if added:
            self.imagesChanged.emit()
            # the newest image becomes current; announce it even when the session already made
            # it current (the first image of an empty session), so views follow
            self.session.current = len(self.session.images) - 1
            self.currentImageChanged.emit(self.session.current)
        return added

    def remove_image(self, position: int) -> None:
        self.session.remove_image(position)
        self.imagesChanged.emit()
        self.currentImageChanged.emit(self.session.current)

    def set_current(self, position: int) -> None:
        if position == self.session.current or not -1 <= position < len(self.session.images):
            return
        self.session.current = position
        self.currentImageChanged.emit(position)

    # -- selection ---------------------------------------------------------------------------
    def select_layer(self, name: str) -> None:
        if name != self.selected_layer:
            self.selected_layer = name
            self.selectedLayerChanged.emit(name)

    def set_degradation(self, name: str) -> None:
        if name != self.degradation:
            self.degradation = name
            self.degradationChanged.emit(name)

    # -- analysis ----------------------------------------------------------------------------
    def set_settings(self, settings: AnalysisSettings) -> None:
        if not self.attempt(lambda: self.session.apply_settings(settings)):
            return
        self.settingsChanged.emit()

    def set_analysis_hr_folder(self, folder: str) -> bool:
        """HR images for the analysis (settingsChanged: they are part of its settings)."""
        if not self.attempt(lambda: self.session.set_analysis_hr_folder(folder)):
            return False
        self.settingsChanged.emit()
        return True

    def set_result(self, result: AnalysisResult) -> None:
        if not self.attempt(lambda: self.session.set_result(result)):
            return
        self._ensure_degradation()
        self.scoresChanged.emit()
        self._mask_changed()

    def set_scores(self, scores: dict[str, np.ndarray], method: str = "faig") -> None:
        if not self.attempt(lambda: self.session.set_scores(scores, method)):
            return
        self.session.refresh_top_mask()
        self._ensure_degradation()
        self.scoresChanged.emit()
        self._mask_changed()

    # -- masking -----------------------------------------------------------------------------
    def set_top_mask(self, degradation: str, proportion: float) -> None:
        if not self.attempt(lambda: self.session.set_top_mask(degradation, proportion)):
            return
        self._mask_changed()

    def set_mask(self, mask: FilterMask) -> None:
        self.session.set_mask(mask)
        self._mask_changed()

    def toggle_filters(self, indices) -> None:
        self.set_mask(self.session.mask.toggled(indices))

    def mask_filters(self, indices, masked: bool) -> None:
        m = self.session.mask
        self.set_mask(m.union(indices) if masked else m.difference(indices))

    def set_mask_mode(self, mode: str, lam: float) -> None:
        self.session.set_mask_mode(mode, lam)
        self._mask_changed()

    def clear_mask(self) -> None:
        self.set_mask(FilterMask(mode=self.session.mask.mode, lam=self.session.mask.lam))
