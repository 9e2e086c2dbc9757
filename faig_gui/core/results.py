"""Scores on disk: ``scores.npz`` (one float array per degradation, by global filter index),
``<name>_index.txt`` (indices by descending score, one per line, the authors' format),
``report.json``, and a CSV of layer/out/in/score/rank."""
from __future__ import annotations

import csv
import io
import json
import errno
import os
import secrets
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from faig_gui.core.errors import FaigError
from faig_gui.core.filters import FilterIndex, ranking


def atomic_write_bytes(path: Path, data: bytes, what: str = "") -> None:
    """Write ``data`` to ``path`` through a temporary file beside it and a rename: a reader sees
    the old file or the new one, never part of one, and a failed write leaves the old file.

    The temporary file's name is the writer's own (``NAME.<pid>.<random>.part``): two writers
    writing one file at once (two windows filling the prediction cache) each rename a whole file
    of theirs, the last one wins. Parts that writers left when they died (their process is gone;
    on Windows, or for parts without a process id, when older than an hour) are removed after
    each write of the same file. ``what``: the kind of file, for the error message."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        # created exclusively ("x"), with the permissions the user's umask gives any new file
        # (tempfile.mkstemp would make every export and session readable by its owner only)
        for _attempt in range(100):
            candidate = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
            try:
                fh = open(candidate, "xb")
            except FileExistsError:
                continue
            tmp = candidate
            break
        else:
            raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))
        with fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            try:
                tmp.unlink()
            except OSError:
                pass
        raise FaigError(f"{path}: cannot write{' ' + what if what else ''}: {exc.strerror or exc}") from None
    _remove_dead_parts(path)


PART_STALE_S = 3600.0   # a part whose writer cannot be asked about counts as dead after this long


def _remove_dead_parts(path: Path) -> None:
    """Delete the temporary files of ``path`` (``NAME.<pid>.<random>.part``, or ``NAME.part`` from
    earlier versions) whose writer is gone; never one a live process may still be writing."""
    prefix = path.name + "."
    try:
        parts = [p for p in path.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(".part")]
    except OSError:
        return
    now = time.time()
    for part in parts:
        pid_text = part.name[len(prefix):].split(".", 1)[0]
        try:
            if pid_text.isdigit() and os.name == "posix":
                if _alive(int(pid_text)):
                    continue
            elif now - part.stat().st_mtime < PART_STALE_S:
                continue
            part.unlink()
        except OSError:   # gone already (its writer renamed it), or not ours to delete: no harm
            pass


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True       # this process's own writes (another thread's, in flight)
    try:
        os.kill(pid, 0)   # signal 0: nothing is sent, only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True       # another user's process
    return True


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(Path(path), text.encode("utf-8"))


def write_scores(path: str | os.PathLike, scores: Mapping[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    # typed Any: numpy's stub checks **arrays against savez's allow_pickle: bool
    arrays: dict[str, Any] = {k: np.asarray(v, dtype=np.float64) for k, v in scores.items()}
    np.savez(buf, **arrays)
    atomic_write_bytes(Path(path), buf.getvalue())


def read_scores(path: str | os.PathLike, filter_count: int | None = None) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FaigError(f"{path}: no such scores file")
    try:
        with np.load(path, allow_pickle=False) as data:
            scores = {k: np.asarray(data[k], dtype=np.float64) for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise FaigError(f"{path}: not a readable scores.npz: {exc}") from None
    if not scores:
        raise FaigError(f"{path}: holds no scores")
    for name, v in scores.items():
        if v.ndim != 1:
            raise FaigError(f"{path}: scores '{name}' are not a 1-D array")
        if filter_count is not None and len(v) != filter_count:
            raise FaigError(f"{path}: scores '{name}' have {len(v)} filters, the model has {filter_count}; "
                            f"were they made for another architecture?")
    return scores


def index_text(scores: np.ndarray) -> str:
    return "".join(f"{i}\n" for i in ranking(scores).tolist())


def write_index_file(path: str | os.PathLike, scores: np.ndarray) -> None:
    atomic_write_text(path, index_text(scores))


def read_index_file(path: str | os.PathLike, filter_count: int | None = None) -> np.ndarray:
    """Filter indices in ranked order from an authors'-style ``*_index.txt``."""
    path = Path(path)
    try:
        values = [int(line) for line in Path(path).read_text().split()]
    except (OSError, ValueError) as exc:
        raise FaigError(f"{path}: not a list of filter indices: {exc}") from None
    arr = np.asarray(values, dtype=np.int64)
    if filter_count is not None and len(arr) and (arr.min() < 0 or arr.max() >= filter_count):
        raise FaigError(f"{path}: indices outside 0..{filter_count - 1}")
    return arr


def scores_from_ranking(order: np.ndarray, filter_count: int) -> np.ndarray:
    """Scores that reproduce a ranked list (rank r gets filter_count − r)."""
    scores = np.zeros(filter_count, dtype=np.float64)
    scores[order] = np.arange(filter_count, filter_count - len(order), -1, dtype=np.float64)
    return scores


INDEX_SUFFIX = "_index"


def index_file_degradation(path: str | os.PathLike) -> str:
    """The degradation an authors'-style list is named for: ``blur_index.txt`` -> ``blur``."""
    stem = Path(path).stem
    return stem[: -len(INDEX_SUFFIX)] if stem.endswith(INDEX_SUFFIX) and len(stem) > len(INDEX_SUFFIX) else stem


def read_ranking(path: str | os.PathLike, filter_count: int) -> np.ndarray:
    """A full ranking from a ``*_index.txt``: every filter of the model exactly once, best first
    (the authors write all of them: ``np.argsort(scores)[::-1]``)."""
    order = read_index_file(path)
    if len(order) != filter_count:   # first: a list for another model says so, whatever else is wrong
        raise FaigError(f"{path}: lists {len(order)} filters, the model has {filter_count}; "
                        f"was it made for another architecture?")
    if len(order) and (order.min() < 0 or order.max() >= filter_count):
        raise FaigError(f"{path}: filter indices outside 0..{filter_count - 1}")
    seen = np.zeros(filter_count, dtype=np.int64)
    np.add.at(seen, order, 1)
    if (seen != 1).any():
        twice = int(np.flatnonzero(seen > 1)[0])
        raise FaigError(f"{path}: filter {twice} is listed {int(seen[twice])} times (a ranking lists each filter once)")
    return order


def is_scores_archive(path: str | os.PathLike) -> bool:
    """True for a scores.npz (a zip archive), False for anything else (a ranked list)."""
    return zipfile.is_zipfile(path)


def load_scores(path: str | os.PathLike, filter_count: int, degradation: str | None = None) -> dict[str, np.ndarray]:
    """Scores from a ``scores.npz`` or from a ranked list (``<degradation>_index.txt``, the authors'
    format). A list gives an order, not values: it becomes scores that rank the same (the first
    filter gets ``filter_count``, the last 1), under ``degradation`` or, without one, the name
    the file's name gives. The file's content decides its kind (an .npz is a zip archive)."""
    path = Path(path)
    if not path.is_file():
        raise FaigError(f"{path}: no such scores file")
    if is_scores_archive(path):
        return read_scores(path, filter_count)
    name = degradation or index_file_degradation(path)
    return {name: scores_from_ranking(read_ranking(path, filter_count), filter_count)}


def ranking_csv(scores: np.ndarray, index: FilterIndex) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "index", "layer", "out", "in", "score"])
    for rank, i in enumerate(ranking(scores), start=1):
        name, o, c = index.from_global(int(i))
        w.writerow([rank, int(i), name, o, c, repr(float(scores[i]))])
    return buf.getvalue()


def write_ranked_lists(folder: str | os.PathLike, scores: Mapping[str, np.ndarray], index: FilterIndex | None = None,
                       prefix: str = "") -> list[Path]:
    """Per degradation, ``<prefix><name>_index.txt`` (the authors' format) and, with the
    model's filter ``index``, ``<prefix><name>_ranking.csv`` (:func:`ranking_csv`): what
    `faig-gui analyze` and the window's File ▸ Export both write."""
    out, written = Path(folder), []
    for name, s in scores.items():
        write_index_file(out / f"{prefix}{name}_index.txt", s)
        written.append(out / f"{prefix}{name}_index.txt")
        if index is not None:
            atomic_write_text(out / f"{prefix}{name}_ranking.csv", ranking_csv(s, index))
            written.append(out / f"{prefix}{name}_ranking.csv")
    return written


def write_analysis(out_dir: str | os.PathLike, scores: Mapping[str, np.ndarray], report: dict,
                   index: FilterIndex | None = None) -> None:
    out = Path(out_dir)
    write_scores(out / "scores.npz", scores)
    write_ranked_lists(out, scores, index)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
