"""The calibration on disk: plain arrays and JSON (no pickle), keyed by the weights, scores,
settings and the code that makes the evidence."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path
from collections.abc import Mapping, Sequence

import numpy as np

from faig_gui.core.degradations import Degradation
from faig_gui.core.errors import FaigError
from faig_gui.core.prediction.calibration import Calibration, Sample
from faig_gui.core.results import atomic_write_bytes

#: version of the stored calibration files; a file of another version is ignored
CACHE_FORMAT = 5   # 5: each sample's calibration image (folds of the Platt map); 4: kinds named by what they measure
#: calibration files kept in the cache folder (the least recently used go first)
CACHE_KEEP = 32
# the modules whose code makes the evidence: an edit to any of them retires stored calibrations
_EVIDENCE_MODULES = ("faig_gui.core.prediction.evidence", "faig_gui.core.prediction.calibration",
                     "faig_gui.core.prediction.sampling",
                     "faig_gui.core.degradations", "faig_gui.core.metrics", "faig_gui.core.masking",
                     "faig_gui.core.filters")


def calibration_cache_dir() -> Path:
    """``$FAIG_GUI_CACHE_DIR``, else ``$XDG_CACHE_HOME/faig-gui``, else ``~/.cache/faig-gui``;
    calibrations live in its ``calibration`` folder."""
    given = os.environ.get("FAIG_GUI_CACHE_DIR")
    if given:
        root = Path(given).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache") / "faig-gui"
    return root / "calibration"


def _stable_text(value) -> str:
    """A text form of a cache key that does not depend on the process (no ids, no hash seeds).
    Numbers are written as floats so that 1 and 1.0 (or numpy's 1.0) give the same text."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return repr(float(value))
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(_stable_text(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_stable_text(k)}:{_stable_text(v)}"
                              for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) + "}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return type(value).__name__ + "(" + ",".join(
            f"{f.name}={_stable_text(getattr(value, f.name))}" for f in dataclasses.fields(value)) + ")"
    raise TypeError(f"no stable text form for {type(value).__name__}")


def _source_digest(module_names: Sequence[str]) -> str:
    """Digest of the modules' source files (their names when a file cannot be read)."""
    h = hashlib.sha256()
    for name in module_names:
        h.update(name.encode())
        path = getattr(sys.modules.get(name), "__file__", None)
        try:
            h.update(Path(path).read_bytes() if path else b"")
        except OSError:
            pass
    return h.hexdigest()[:16]


def cache_key_text(key: tuple, architecture_module: str) -> str:
    # the key without its device field ('-' in every key), plus the code that makes the evidence
    return (f"faig-gui calibration v{CACHE_FORMAT} key={_stable_text(key)} "
            f"code={_source_digest((*_EVIDENCE_MODULES, architecture_module))}")


def write_calibration(path: Path, key_text: str, cal: Calibration) -> str:
    """Stores a calibration as plain arrays and JSON (no pickle), atomically; then trims the
    folder to the CACHE_KEEP most recently used files. Returns '' or why it could not store."""
    meta = {"format": CACHE_FORMAT, "key": key_text, "names": list(cal.names), "kinds": list(cal.kinds),
            "definitions": [[d.name, d.blur_sigma, d.noise_sigma] for d in cal.definitions.values()],
            "present": [{d: float(f) for d, f in s.present.items()} for s in cal.samples],
            "images": [int(s.image) for s in cal.samples],
            "seconds": float(cal.seconds), "min_spread": float(cal.min_spread),
            "min_spread_reference": float(cal.min_spread_reference), "noise_scale": float(cal.noise_scale)}
    shape = (len(cal.samples), len(cal.kinds), len(cal.names))
    evidence = np.array([[np.asarray(s.evidence[k], dtype=np.float64) for k in cal.kinds] for s in cal.samples],
                        dtype=np.float64).reshape(shape)
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)), evidence=evidence)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:
        return f"{path.parent}: cannot write: {exc.strerror or exc}"
    except FaigError as exc:
        return str(exc)
    _trim(path.parent, CACHE_KEEP)
    return ""


def read_calibration(path: Path, key_text: str) -> Calibration | None:
    """The calibration stored for ``key_text``, or None when the file is missing, unreadable,
    truncated, of another format version or for another key."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"][()]))
            evidence = np.asarray(z["evidence"], dtype=np.float64)
        cal = _calibration_from_plain(meta, evidence, key_text)
    except Exception:  # noqa: BLE001 - a cache file is never trusted: whatever is wrong with it, recompute
        return None
    if cal is not None:
        try:
            os.utime(path)   # recently used: kept when the folder is trimmed
        except OSError:
            pass
    return cal


def _calibration_from_plain(meta: dict, evidence: np.ndarray, key_text: str) -> Calibration | None:
    if meta.get("format") != CACHE_FORMAT or meta.get("key") != key_text:
        return None
    names, kinds = [str(n) for n in meta["names"]], tuple(str(k) for k in meta["kinds"])
    present, images = meta["present"], meta["images"]
    if evidence.shape != (len(present), len(kinds), len(names)) or len(images) != len(present):
        return None
    samples = []
    for p, ev, image in zip(present, evidence, images):
        if not set(p) <= set(names):
            return None
        samples.append(Sample({str(d): float(f) for d, f in p.items()},
                              {k: ev[j].copy() for j, k in enumerate(kinds)}, int(image)))
    definitions = {str(n): Degradation(str(n), None if b is None else float(b), None if s is None else float(s))
                   for n, b, s in meta["definitions"]}
    return Calibration(names, kinds, samples, definitions, float(meta["seconds"]), float(meta["min_spread"]),
                       float(meta["min_spread_reference"]), float(meta["noise_scale"]))


def _trim(folder: Path, keep: int) -> None:
    """Deletes all but the ``keep`` most recently used calibration files (and stale partial writes)."""
    try:
        entries = [(p.stat().st_mtime, p) for p in folder.iterdir() if p.suffix in (".npz", ".part")]
    except OSError:
        return
    now = time.time()
    done = sorted((e for e in entries if e[1].suffix == ".npz"), key=lambda e: e[0], reverse=True)
    stale = [p for _, p in done[keep:]] + [p for t, p in entries if p.suffix == ".part" and now - t > 3600]
    for p in stale:
        try:
            p.unlink()
        except OSError:   # another process got there first, or the folder is read-only: no harm
            pass
