"""The one place that holds a faig-gui session's state: models, images, settings, scores, mask.

Qt-free. The app wraps it in ``app.session_model.SessionModel``, which emits signals when the
state changes; the CLI uses it to read saved sessions. A session file (``.faig``) is a zip with
``session.json`` (paths with hashes, images, settings, mask) and ``scores.npz``; saving writes a
temporary file and renames it, so a crash never leaves a half-written session.
"""
from __future__ import annotations

import io
import json
import os
import threading
import time
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from faig_gui.core.analysis import AnalysisConfig, AnalysisResult, AttributionCache
from faig_gui.core.checkpoint import file_sha256
from faig_gui.core.dataset import AnalysisImage, from_folders, load_hr_folder, make_degraded
from faig_gui.core.degradations import Degradation, mod_crop, paper_degradations
from faig_gui.core.errors import FaigError
from faig_gui.core.filters import FilterIndex, ranking, top_indices
from faig_gui.core.index_sets import difference, union
from faig_gui.core.imageio import read_image
from faig_gui.core.masking import FilterMask, masked_state_dict
from faig_gui.core.registry import LoadedModel, Registry, check_pair, default_registry
from faig_gui.core.results import atomic_write_bytes

SESSION_VERSION = 1
#: nets with at least this many filters rank their scores ahead, on a background thread (Session.top)
RANK_AHEAD_FILTERS = 200_000


@dataclass
class SessionImage:
    """An image the user looks at: an LR input, optionally with its HR ground truth."""

    path: str
    lr: np.ndarray                  # HWC float32 RGB [0, 1]
    gt: np.ndarray | None = None    # HR ground truth (for PSNR), if known
    label: str = ""                 # e.g. the degradation it was made with, if known

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclass
class AnalysisSettings:
    degradations: list[Degradation] = field(default_factory=paper_degradations)
    steps: int = 100
    method: str = "faig"
    device: str = "auto"
    rule: str = "riemann"
    precision: str = "fp32"

    def config(self) -> AnalysisConfig:
        return AnalysisConfig(self.method, self.steps, self.rule, self.device, self.precision)


@dataclass
class MaskSettings:
    """How the current mask was chosen ("top k % for d"), kept to redo it when scores change."""

    degradation: str = "blur"
    proportion: float = 1.0     # percent
    mode: str = "baseline"
    lam: float = 0.0


@dataclass(frozen=True)
class MaskState:
    """Everything a mask change alters (an undo step restores one)."""

    mask: FilterMask
    settings: MaskSettings
    hand_masked: np.ndarray
    hand_unmasked: np.ndarray

    def same_as(self, other: MaskState) -> bool:
        a, b = self.mask, other.mask
        return (a.mode == b.mode and a.lam == b.lam and np.array_equal(a.indices, b.indices)
                and self.settings == other.settings and np.array_equal(self.hand_masked, other.hand_masked)
                and np.array_equal(self.hand_unmasked, other.hand_unmasked))


def _no_filters() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


class Session:
    def __init__(self, registry: Registry | None = None):
        self.registry = registry or default_registry()
        self.baseline: LoadedModel | None = None
        self.target: LoadedModel | None = None
        self.index: FilterIndex | None = None
        self.images: list[SessionImage] = []
        self.current: int = -1
        self.analysis_images: list[AnalysisImage] = []
        self.analysis_source: dict[str, Any] = {}
        self.settings = AnalysisSettings()
        self.results: dict[str, AnalysisResult | dict] = {}   # method -> result (or loaded scores)
        self.scores: dict[str, np.ndarray] = {}                 # the active method's scores
        self.active_method: str = "faig"
        self.mask = FilterMask()
        self.mask_settings = MaskSettings()
        # filters masked / unmasked by hand on top of the "top k %" preset: a new k keeps them
        self.hand_masked = _no_filters()
        self.hand_unmasked = _no_filters()
        self.cache = AttributionCache()
        self.path: Path | None = None
        self._masked_params: dict[str, torch.Tensor] | None = None
        # each degradation's full ranking, for the scores array it was made from (see top())
        self._rankings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._ranking_threads: list[threading.Thread] = []

    # -- models ------------------------------------------------------------------------------
    def load_baseline(self, path: str | os.PathLike, arch: str | None = None) -> None:
        model = self.registry.load_model(path, arch)
        self._set_models(model, self.target)

    def load_target(self, path: str | os.PathLike, arch: str | None = None) -> None:
        model = self.registry.load_model(path, arch)
        self._set_models(self.baseline, model)

    def load_pair(self, baseline: str | os.PathLike, target: str | os.PathLike, arch: str | None = None) -> None:
        b, t = self.registry.load_pair(baseline, target, arch)
        self._set_models(b, t)

    def _set_models(self, baseline: LoadedModel | None, target: LoadedModel | None) -> None:
        # Validate before touching state: on an error the previous models stay loaded.
        if baseline is not None and target is not None:
            check_pair(baseline, target)
        changed_shape = (target is not None and self.target is not None
                         and FilterIndex.from_state_dict(target.state_dict).total != (self.index.total if self.index else -1))
        self.baseline, self.target = baseline, target
        ref = target or baseline
        self.index = FilterIndex.of_model(ref) if ref is not None else None
        if changed_shape or ref is None:
            self.scores, self.results = {}, {}
            self.mask = FilterMask(mode=self.mask.mode, lam=self.mask.lam)
            self.hand_masked, self.hand_unmasked = _no_filters(), _no_filters()
        self._masked_params = None

    @property
    def ready(self) -> bool:
        return self.baseline is not None and self.target is not None

    @property
    def scale(self) -> int:
        ref = self.target or self.baseline
        return ref.scale if ref else 2

    # -- images ------------------------------------------------------------------------------
    def add_image(self, path: str | os.PathLike, gt: str | os.PathLike | None = None, label: str = "") -> SessionImage:
        lr = read_image(path)
        if min(lr.shape[:2]) < 2:
            raise FaigError(f"{path}: {lr.shape[1]}x{lr.shape[0]} is too small to super-resolve")
        gt_img = None
        if gt is not None:
            gt_img = mod_crop(read_image(gt), self.scale)
            if gt_img.shape[0] != lr.shape[0] * self.scale or gt_img.shape[1] != lr.shape[1] * self.scale:
                gt_img = None  # not this image's ground truth at this scale: PSNR is not shown
        item = SessionImage(str(path), lr, gt_img, label)
        self.images.append(item)
        if self.current < 0:
            self.current = 0
        return item

    def remove_image(self, position: int) -> None:
        del self.images[position]
        self.current = min(self.current, len(self.images) - 1)

    def current_image(self) -> SessionImage | None:
        return self.images[self.current] if 0 <= self.current < len(self.images) else None

    def set_analysis_hr(self, hr_images: dict[str, np.ndarray], source: dict[str, Any] | None = None) -> None:
        """HR images for FAIG; their degraded versions follow the analysis settings."""
        self.analysis_images = make_degraded(hr_images, self.scale, self.settings.degradations)
        self.analysis_source = source or {"kind": "hr", "names": list(hr_images)}

    def set_analysis_hr_folder(self, folder: str | os.PathLike) -> None:
        """HR images from a folder; their LR versions follow the degradation settings."""
        folder = str(Path(folder).resolve())
        self.set_analysis_hr(load_hr_folder(folder), {"kind": "hr_folder", "folder": folder})

    def apply_settings(self, settings: AnalysisSettings) -> None:
        """New analysis settings; analysis images made from HR images follow new degradations.

        The attribution cache is keyed by degradation *name*, so it is cleared when a
        degradation's parameters change under the same name."""
        changed = settings.degradations != self.settings.degradations
        if changed and self.analysis_images and self.analysis_source.get("kind") in ("hr", "hr_folder"):
            hr = {img.name: img.hr[0].permute(1, 2, 0).numpy() for img in self.analysis_images}
            self.analysis_images = make_degraded(hr, self.scale, settings.degradations)
        if changed:
            self.cache.clear()
        self.settings = settings

    def set_analysis_folders(self, gt: str, degraded: dict[str, str], clean_lr: str | None = None) -> None:
        self.analysis_images = from_folders(gt, degraded, clean_lr, self.scale)
        self.analysis_source = {"kind": "folders", "gt": gt, "degraded": degraded, "clean_lr": clean_lr}

    # -- scores ------------------------------------------------------------------------------
    def set_result(self, result: AnalysisResult) -> None:
        if self.index is None or result.filter_count != self.index.total:
            raise FaigError("these scores belong to another model (filter counts differ)")
        self.results[result.method] = result
        self.active_method = result.method
        self.scores = dict(result.scores)
        self._rank_ahead()
        self.refresh_top_mask()

    def set_scores(self, scores: dict[str, np.ndarray], method: str = "faig") -> None:
        if self.index is None:
            raise FaigError("load a model before its scores")
        for name, s in scores.items():
            if len(s) != self.index.total:
                raise FaigError(f"scores '{name}' have {len(s)} filters, the model has {self.index.total}")
        self.results[method] = {"scores": dict(scores)}
        self.active_method = method
        self.scores = dict(scores)
        self._rank_ahead()

    def _rank_ahead(self) -> None:
        """Rank each degradation's filters on a background thread (numpy's sort leaves the GIL),
        for nets of RANK_AHEAD_FILTERS or more: the "top k %" of a new k is then a slice of the
        ranking instead of a selection over all the scores on the UI thread (~20-100 ms for
        RRDBNet's 1.85 M filters per slider step)."""
        for d, scores in self.scores.items():
            kept = self._rankings.get(d)
            if len(scores) < RANK_AHEAD_FILTERS or (kept is not None and kept[0] is scores):
                continue

            def rank(d: str = d, scores: np.ndarray = scores) -> None:
                self._rankings[d] = (scores, ranking(scores))
            thread = threading.Thread(target=rank, name=f"faig-rank-{d}", daemon=True)
            self._ranking_threads = [t for t in self._ranking_threads if t.is_alive()] + [thread]
            thread.start()

    @property
    def degradation_names(self) -> list[str]:
        return list(self.scores) or [d.name for d in self.settings.degradations]

    def top(self, degradation: str, proportion: float) -> np.ndarray:
        if degradation not in self.scores:
            raise FaigError(f"no scores for '{degradation}' yet: run the analysis first")
        scores = self.scores[degradation]
        kept = self._rankings.get(degradation)
        if kept is not None and kept[0] is scores and 0 <= proportion <= 100:
            # (the same count and order as top_indices: its ties go to the lower index, as the
            # stable ranking's do)
            return kept[1][:int(len(scores) * (proportion / 100.0))].copy()
        return top_indices(scores, proportion / 100.0)

    def rank_of(self, degradation: str) -> np.ndarray:
        """rank[k] = position of filter k in the degradation's ranking (0 = most important)."""
        order = np.argsort(-self.scores[degradation], kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return rank

    # -- masking -----------------------------------------------------------------------------
    def set_top_mask(self, degradation: str, proportion: float) -> None:
        """Mask the top ``proportion`` % for ``degradation``; filters toggled by hand stay toggled."""
        top = self.top(degradation, proportion)
        self.mask_settings = replace(self.mask_settings, degradation=degradation, proportion=proportion)
        indices = difference(union(top, self.hand_masked), self.hand_unmasked)
        self.mask = FilterMask(indices, self.mask.mode, self.mask.lam)
        self._masked_params = None

    def preset_indices(self) -> np.ndarray:
        """The filters the "top k %" setting alone masks (none without scores for it)."""
        ms = self.mask_settings
        if ms.degradation not in self.scores or ms.proportion <= 0:
            return _no_filters()
        return self.top(ms.degradation, ms.proportion)

    def clear_mask(self) -> None:
        """No filter masked: k = 0 and no hand toggles."""
        self.mask_settings = replace(self.mask_settings, proportion=0.0)
        self.hand_masked, self.hand_unmasked = _no_filters(), _no_filters()
        self.set_mask(FilterMask(mode=self.mask.mode, lam=self.mask.lam))

    def mask_state(self) -> MaskState:
        return MaskState(self.mask, self.mask_settings, self.hand_masked, self.hand_unmasked)

    def restore_mask_state(self, state: MaskState) -> None:
        self.mask, self.mask_settings = state.mask, state.settings
        self.hand_masked, self.hand_unmasked = state.hand_masked, state.hand_unmasked
        self._masked_params = None

    def refresh_top_mask(self) -> None:
        ms = self.mask_settings
        if ms.degradation in self.scores:
            self.set_top_mask(ms.degradation, ms.proportion)

    def set_mask(self, mask: FilterMask) -> None:
        """A mask chosen by hand: what differs from the preset is kept as hand toggles."""
        preset = self.preset_indices()
        self.hand_masked = difference(mask.indices, preset)
        self.hand_unmasked = difference(preset, mask.indices)
        self.mask = mask
        self.mask_settings = replace(self.mask_settings, mode=mask.mode, lam=mask.lam)
        self._masked_params = None

    def set_mask_mode(self, mode: str, lam: float) -> None:
        self.set_mask(FilterMask(self.mask.indices, mode, lam))

    def masked_params(self) -> dict[str, torch.Tensor]:
        baseline, target = self.baseline, self.target
        if baseline is None or target is None:   # not self.ready, spelled out for the type checker
            raise FaigError("load a baseline and a target first")
        if self._masked_params is None:
            self._masked_params = masked_state_dict(target.state_dict, baseline.state_dict,
                                                    self.mask, self.index)
        return self._masked_params

    # -- saving ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        def model_entry(m: LoadedModel | None):
            if m is None or m.path is None:
                return None
            return {"path": str(Path(m.path).resolve()), "sha256": file_sha256(m.path), "arch": m.arch_spec}

        return {
            "version": SESSION_VERSION,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "baseline": model_entry(self.baseline),
            "target": model_entry(self.target),
            "images": [{"path": str(Path(i.path).resolve()), "label": i.label} for i in self.images],
            "current": self.current,
            "analysis_source": self.analysis_source,
            "settings": {**asdict(self.settings),
                         "degradations": [d.to_dict() for d in self.settings.degradations]},
            "active_method": self.active_method,
            "methods": sorted(self.results),
            "mask": {"indices": self.mask.indices.tolist(), "mode": self.mask.mode, "lam": self.mask.lam,
                     "hand_masked": self.hand_masked.tolist(), "hand_unmasked": self.hand_unmasked.tolist()},
            "mask_settings": asdict(self.mask_settings),
        }

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("session.json", json.dumps(self.to_dict(), indent=2))
            for method, res in self.results.items():
                scores = res.scores if isinstance(res, AnalysisResult) else res["scores"]
                arr = io.BytesIO()
                np.savez(arr, **scores)
                zf.writestr(f"scores_{method}.npz", arr.getvalue())
            # images keep their pixels too: a session reopens even if an image file moved
            for n, img in enumerate(self.images):
                arr = io.BytesIO()
                gt: dict[str, Any] = {"gt": img.gt} if img.gt is not None else {}   # Any: see savez's stub
                np.savez_compressed(arr, lr=img.lr, **gt)
                zf.writestr(f"image_{n}.npz", arr.getvalue())
        atomic_write_bytes(path, buf.getvalue())
        self.path = path

    @classmethod
    def open(cls, path: str | os.PathLike, registry: Registry | None = None) -> Session:
        path = Path(path)
        try:
            with zipfile.ZipFile(path) as zf:
                data = json.loads(zf.read("session.json"))
                blobs = {name: zf.read(name) for name in zf.namelist() if name.endswith(".npz")}
        except (OSError, zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
            raise FaigError(f"{path}: not a readable faig-gui session: {exc}") from None
        if data.get("version") != SESSION_VERSION:
            raise FaigError(f"{path}: session version {data.get('version')} is not supported")
        s = cls(registry)
        s._restore(data, blobs, path)
        s.path = path
        return s

    def _restore(self, data: dict, blobs: dict[str, bytes], where: Path) -> None:
        b, t = data.get("baseline"), data.get("target")
        for entry, role in ((b, "baseline"), (t, "target")):
            if entry and Path(entry["path"]).is_file() and file_sha256(entry["path"]) != entry["sha256"]:
                raise FaigError(f"{where}: the {role} checkpoint {entry['path']} changed since the session "
                                f"was saved (hash differs); open it again by hand")
        if b and t:
            self.load_pair(b["path"], t["path"], b.get("arch"))
        elif t:
            self.load_target(t["path"], t.get("arch"))
        st = data.get("settings", {})
        self.settings = AnalysisSettings(
            [Degradation.from_dict(d) for d in st.get("degradations", [])] or paper_degradations(),
            st.get("steps", 100), st.get("method", "faig"), st.get("device", "auto"),
            st.get("rule", "riemann"), st.get("precision", "fp32"))
        for method in data.get("methods", []):
            blob = blobs.get(f"scores_{method}.npz")
            if blob is not None:
                with np.load(io.BytesIO(blob), allow_pickle=False) as z:
                    self.set_scores({k: z[k] for k in z.files}, method)
        active = data.get("active_method")
        if active in self.results:
            res = self.results[active]
            self.active_method, self.scores = active, dict(res.scores if isinstance(res, AnalysisResult) else res["scores"])
        for n, entry in enumerate(data.get("images", [])):
            blob = blobs.get(f"image_{n}.npz")
            if blob is None:
                continue
            with np.load(io.BytesIO(blob), allow_pickle=False) as z:
                self.images.append(SessionImage(entry["path"], z["lr"], z["gt"] if "gt" in z.files else None,
                                                entry.get("label", "")))
        self.current = min(int(data.get("current", 0)), len(self.images) - 1)
        src = data.get("analysis_source") or {}
        try:
            if src.get("kind") == "folders":
                self.set_analysis_folders(src["gt"], src["degraded"], src.get("clean_lr"))
            elif src.get("kind") == "hr_folder":
                self.set_analysis_hr_folder(src["folder"])
        except FaigError:
            self.analysis_images = []  # analysis images moved: the scores stay, a rerun needs new ones
        ms = data.get("mask_settings") or {}
        self.mask_settings = MaskSettings(**{k: ms[k] for k in ("degradation", "proportion", "mode", "lam") if k in ms})
        m = data.get("mask") or {}
        if self.index is not None:
            self.mask = FilterMask(np.asarray(m.get("indices", []), dtype=np.int64), m.get("mode", "baseline"),
                                   float(m.get("lam", 0.0)))
            self.hand_masked = np.asarray(m.get("hand_masked", []), dtype=np.int64)
            self.hand_unmasked = np.asarray(m.get("hand_unmasked", []), dtype=np.int64)
