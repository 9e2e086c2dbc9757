"""Qt face of the core Session: the state lives in ``session``; widgets observe the signals.

Every mutation goes through a method here so that exactly the right signals fire. User errors
(FaigError) become ``errorOccurred`` and leave the state as it was.
"""
from __future__ import annotations

import time
from typing import TypeVar
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from faig_gui.core.analysis import AnalysisResult
from faig_gui.core.errors import FaigError
from faig_gui.core.masking import FilterMask
from faig_gui.core.session import AnalysisSettings, MaskState, Session

T = TypeVar("T")

MASK_HOLD_S = 0.3   # the longest maskShown waits for a masked output (a render superseded again and again)
#: slider changes this close together are one undo step (a drag from 1 % to 10 % is undone at once)
UNDO_MERGE_S = 1.0
UNDO_LIMIT = 100


class MaskChange(QUndoCommand):
    """One mask change: undo restores the state before it, redo the state after it."""

    def __init__(self, model: SessionModel, before: MaskState, after: MaskState, text: str, merge: int):
        super().__init__(text)
        self.model, self.before, self.after, self.merge = model, before, after, merge
        self.when = time.monotonic()
        self._done = True   # pushed after the change was made: the first redo has nothing to do

    def id(self) -> int:
        return self.merge

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, MaskChange) or other.when - self.when > UNDO_MERGE_S:
            return False
        self.after, self.when = other.after, other.when
        self.setText(other.text())
        self.setObsolete(self.after.same_as(self.before))
        return True

    def redo(self) -> None:
        if self._done:
            self._done = False
            return
        self.model._restore_mask(self.after)

    def undo(self) -> None:
        self.model._restore_mask(self.before)


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
        # every mask change is a step here (Edit > Undo, Ctrl+Z); the steps refer to one pair's
        # filters and one set of scores, so new models or scores start a new history
        self.undo_stack = QUndoStack(self)
        # each step keeps two masks: on a 1.85M-filter net at 10 % that is ~3 MB, so the history
        # is bounded
        self.undo_stack.setUndoLimit(UNDO_LIMIT)

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
        self.undo_stack.clear()
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

    def load_parts(self, baseline: str, target: str, arch: str | None = None) -> bool:
        """The pair; if it does not load as one, each checkpoint that loads on its own (the
        target first: a bad baseline must not keep a valid target out) and each file's error."""
        s = self.session
        try:
            s.load_pair(baseline, target, arch)
        except FaigError:
            errors = []
            for load, path in ((s.load_target, target), (s.load_baseline, baseline)):
                try:
                    load(path, arch)
                except FaigError as exc:
                    errors.append(str(exc))
            for message in errors:   # (none: each loads alone and the two make a pair after all)
                self.errorOccurred.emit(message)
            if s.target is None and s.baseline is None:
                return False
            self._after_models()
            return not errors
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
                                    self.selected_layer not in {lay.name for lay in self.session.index.layers}):
            self.selected_layer = ""
        self.undo_stack.clear()
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
        self.undo_stack.clear()
        self._ensure_degradation()
        self.scoresChanged.emit()
        self._mask_changed()

    def set_scores(self, scores: dict[str, np.ndarray], method: str = "faig") -> None:
        if not self.attempt(lambda: self.session.set_scores(scores, method)):
            return
        self.session.refresh_top_mask()
        self.undo_stack.clear()
        self._ensure_degradation()
        self.scoresChanged.emit()
        self._mask_changed()

    # -- masking -----------------------------------------------------------------------------
    def _mask_step(self, change: Callable[[], None], text: str, merge: int = -1) -> bool:
        """Make a mask change and record it for undo (``merge`` >= 0: quick repeats are one step)."""
        before = self.session.mask_state()
        if not self.attempt(change):
            return False
        after = self.session.mask_state()
        if not after.same_as(before):
            self.undo_stack.push(MaskChange(self, before, after, text, merge))
        self._mask_changed()
        return True

    def _restore_mask(self, state: MaskState) -> None:
        self.session.restore_mask_state(state)
        self._mask_changed()

    def set_top_mask(self, degradation: str, proportion: float) -> None:
        s = self.session
        hand = len(s.hand_masked) + len(s.hand_unmasked)
        self._mask_step(lambda: s.set_top_mask(degradation, proportion),
                        f"top {proportion:g} % for {degradation}" + (f" (+{hand} by hand)" if hand else ""), merge=1)

    def set_mask(self, mask: FilterMask, text: str = "mask change") -> None:
        self._mask_step(lambda: self.session.set_mask(mask), text)

    def toggle_filters(self, indices) -> None:
        indices = list(indices)
        self.set_mask(self.session.mask.toggled(indices), f"toggle {len(indices):,} filter" + "s" * (len(indices) != 1))

    def mask_filters(self, indices, masked: bool) -> None:
        m, indices = self.session.mask, list(indices)
        self.set_mask(m.union(indices) if masked else m.difference(indices),
                      f"{'mask' if masked else 'unmask'} {len(indices):,} filters")

    def set_mask_mode(self, mode: str, lam: float) -> None:
        self._mask_step(lambda: self.session.set_mask_mode(mode, lam), f"replace with {mode}, λ {lam:.2f}", merge=2)

    def clear_mask(self) -> None:
        self._mask_step(self.session.clear_mask, "clear the mask")
