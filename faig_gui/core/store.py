"""Per-image attributions on disk, so that a long analysis survives being stopped.

Each finished image's attributions (one float64 array per degradation) go to
``OUT/attributions/<image>.npz`` as soon as the image is done, written atomically, together with
the settings that produced them: both models' weight hashes, the method, path steps, rule and
precision, the degradation settings, and a hash of the image's pixels and LR inputs. A run
with ``resume=True`` takes the attributions of images already there instead of computing them
again, and refuses (FaigError) a file made with other models, settings or pixels: mixing them
would silently average two different analyses. Without ``resume`` files are overwritten.

The files are plain npz arrays (no pickle); ``settings`` and ``image`` are JSON strings.
"""
from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any
from collections.abc import Mapping, Sequence

import numpy as np

from faig_gui.core.degradations import paper_degradations
from faig_gui.core.errors import FaigError
from faig_gui.core.results import atomic_write_bytes

STORE_DIR = "attributions"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def images_made(scale: int, source: str, degradations: Sequence[Any] = (), seed: int = 0) -> dict[str, Any]:
    """How the window's analysis images were made, in the record `analyze --hr` writes
    (commands/analyze.py: store_settings): with the paper's blur and noise, the same σ and seed
    give the same record, so the window takes files the command line stored and vice versa."""
    made: dict[str, Any] = {"scale": scale, "source": source}
    if source == "hr":
        by_name = {d.name: d for d in degradations}
        paper = (set(by_name) == {"blur", "noise"} and
                 list(degradations) == paper_degradations(by_name["blur"].blur_sigma, by_name["noise"].noise_sigma))
        if paper:
            made.update(blur_sigma=by_name["blur"].blur_sigma, noise_sigma=by_name["noise"].noise_sigma, seed=seed)
        else:   # other degradations: the window's own record (recomputed rather than mixed)
            made.update(seed=seed, window_degradations=[d.spec() for d in degradations])
    return {"images_made": made}


def _describe(key: str, here: Any, there: Any) -> str:
    return f"{key}: {there!r} in the file, {here!r} in this run"


class AttributionStore:
    """The per-image attributions of one output folder.

    ``extra``: settings the core cannot see (how the degradations were made: sigmas, seed), kept
    in every file and compared on resume like the rest. ``bind`` adds the engine's settings; the
    analysis calls it before the first ``get``."""

    def __init__(self, out_dir: str | Path, resume: bool = False, extra: Mapping[str, Any] | None = None,
                 recompute_mismatched: bool = False):
        self.folder = Path(out_dir) / STORE_DIR
        self.resume = resume
        # the window's choice: a file of other settings is computed again and replaced, where the
        # command line refuses it (a user who resumes a batch job means the same job)
        self.recompute_mismatched = recompute_mismatched
        self.extra = dict(extra or {})
        self.settings: dict[str, Any] | None = None
        self.loaded: list[str] = []      # images taken from the folder in this run
        self.written: list[str] = []     # images written in this run
        self._names: dict[str, str] = {}

    def bind(self, settings: Mapping[str, Any]) -> None:
        # JSON round trip: what is compared on resume is exactly what a file holds
        self.settings = json.loads(json.dumps({**settings, **self.extra}, sort_keys=True))

    def path_for(self, name: str, key: str) -> Path:
        """One file per image name; a second image of the same name (another folder) gets its
        content hash in the file name too."""
        stem = _UNSAFE.sub("_", Path(name).stem) or "image"
        taken = self._names.get(stem)
        if taken is not None and taken != key:
            stem = f"{stem}-{key}"
        self._names.setdefault(stem, key)
        return self.folder / f"{stem}.npz"

    def get(self, name: str, key: str, degradations: list[str]) -> dict[str, np.ndarray] | None:
        """The stored attributions of one image, or None (not there, or not resuming)."""
        path = self.path_for(name, key)
        if not self.resume or not path.is_file():
            return None
        try:
            settings, image, arrays = _read(path)
            self._check(path, settings, image, name, key)
            missing = [d for d in degradations if d not in arrays]
            if missing:
                raise FaigError(f"{path}: has no attributions for {', '.join(missing)}; run without --resume")
        except FaigError:
            if self.recompute_mismatched:
                return None
            raise
        self.loaded.append(name)
        return {d: arrays[d] for d in degradations}

    def put(self, name: str, key: str, attributions: Mapping[str, np.ndarray]) -> None:
        if self.settings is None:
            raise RuntimeError("AttributionStore.bind must come before put")
        buf = io.BytesIO()
        # typed Any: numpy's stub checks **arrays against savez's allow_pickle: bool
        arrays: dict[str, Any] = {f"attr_{d}": np.asarray(a, dtype=np.float64) for d, a in attributions.items()}
        np.savez(buf, settings=np.array(json.dumps(self.settings, sort_keys=True)),
                 image=np.array(json.dumps({"name": name, "key": key})), **arrays)
        atomic_write_bytes(self.path_for(name, key), buf.getvalue(), "the image's attributions")
        self.written.append(name)

    def _check(self, path: Path, settings: dict, image: dict, name: str, key: str) -> None:
        here = self.settings or {}
        diffs = [_describe(k, here.get(k), settings.get(k))
                 for k in sorted(set(here) | set(settings)) if here.get(k) != settings.get(k)]
        if diffs:
            raise FaigError(f"{path}: made with other models or settings ({'; '.join(diffs)}). "
                            f"--resume continues a run with the same ones: run again without --resume "
                            f"(the stored attributions are overwritten) or choose another --out")
        if image.get("key") != key:
            raise FaigError(f"{path}: made from another version of image '{name}' (other pixels or "
                            f"LR inputs); run without --resume or choose another --out")


def _read(path: Path) -> tuple[dict, dict, dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            settings = json.loads(str(data["settings"]))
            image = json.loads(str(data["image"]))
            arrays = {k[5:]: np.asarray(data[k], dtype=np.float64) for k in data.files if k.startswith("attr_")}
    except (ValueError, OSError, KeyError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as exc:
        raise FaigError(f"{path}: not a readable attribution file ({exc}); delete it to compute "
                        f"that image again") from None
    return settings, image, arrays
