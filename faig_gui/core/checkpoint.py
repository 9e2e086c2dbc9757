"""Read SR checkpoints safely and unwrap them into plain state dicts.

Never executes pickled code: `.pth`/`.pt` files go through ``torch.load(weights_only=True)``,
``.safetensors`` through the safetensors reader. Parameter names are kept as they are (minus a
``module.`` prefix): they are the filter IDs.

A checkpoint is hostile input. Besides code, a small file can ask for a lot of memory: a zip
entry that inflates to gigabytes, or a tensor whose strides repeat one stored number over
billions of elements (``as_strided`` survives ``torch.save``). Both are refused before anything
is materialised; every other failure of the readers becomes a one-line :class:`FaigError`.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any
from collections.abc import Mapping

import torch

from faig_gui.core.errors import FaigError

StateDict = "OrderedDict[str, torch.Tensor]"

# BasicSR saves EMA weights beside the plain ones: prefer them (docs/method.md, "Checkpoints in the wild").
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")
_STRIP_PREFIXES = ("module.",)

#: most parameters a checkpoint may hold (float32: 4 GiB); SR networks have far fewer
MAX_ELEMENTS = 1 << 30
#: most bytes a torch zip checkpoint may unpack to
MAX_UNPACKED_BYTES = 8 << 30
#: torch.save stores zip entries uncompressed; a compressed entry may expand at most this much
MAX_COMPRESSION_RATIO = 50


def load_state_dict(path: str | os.PathLike) -> OrderedDict[str, torch.Tensor]:
    """Load ``path`` and return its float32 state dict; raise FaigError on anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise FaigError(f"{path}: no such checkpoint file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise FaigError(f"{path}: cannot read the checkpoint: {exc.strerror or exc}") from None
    if not head:
        raise FaigError(f"{path}: the file is empty (0 bytes); was the download interrupted?")
    # by content, not by suffix: a renamed file still opens (safetensors: u64 header size, then '{')
    if _looks_like_safetensors(head) or (path.suffix.lower() == ".safetensors" and not head.startswith(b"PK")):
        raw = _read_safetensors(path)
    else:
        raw = _read_torch(path, head)
    return validate_state_dict(unwrap(raw, path), path)


def _looks_like_safetensors(head: bytes) -> bool:
    return len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (100 << 20)


def _read_torch(path: Path, head: bytes) -> Any:
    # torch.save writes a zip archive; very old files are a bare pickle (protocol marker 0x80)
    if not (head.startswith(b"PK") or head[:1] == b"\x80"):
        raise FaigError(f"{path}: not a PyTorch checkpoint (neither a torch zip archive nor a pickle)")
    if head.startswith(b"PK"):
        _check_zip(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols: noise for the user
            warnings.simplefilter("ignore")
            with open(path, "rb") as fh:  # a file object: torch picks no reader from the suffix
                return torch.load(fh, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses any global outside tensors and plain containers: such a file would
        # run code if loaded the unsafe way. Say so, naming the global, without torch's long hint.
        found = re.search(r"(?:Unsupported global|GLOBAL|Unsupported operand)[^\n]*", str(exc))
        detail = f" ({found.group(0)[:120]})" if found else ""
        raise FaigError(
            f"{path}: refused: the file holds pickled objects beyond tensors and plain containers, "
            f"which could run code when loaded{detail}; re-save it as a plain state dict or .safetensors"
        ) from None
    except MemoryError:
        raise FaigError(f"{path}: not enough memory to load this checkpoint") from None
    except Exception as exc:  # hostile bytes reach torch's reader: any error means "unreadable"
        raise FaigError(
            f"{path}: not a readable PyTorch checkpoint (truncated or not a checkpoint?): "
            f"{_one_line(exc)}"
        ) from None


def _check_zip(path: Path) -> None:
    """Refuse a zip whose entries would unpack to more memory than a checkpoint may take."""
    try:
        with zipfile.ZipFile(path) as zf:
            entries = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise FaigError(f"{path}: not a readable PyTorch checkpoint (truncated or not a checkpoint?): "
                        f"{_one_line(exc)}") from None
    total = sum(e.file_size for e in entries)
    if total > MAX_UNPACKED_BYTES:
        raise FaigError(f"{path}: refused: unpacks to {total / 2**30:.1f} GiB, more than the "
                        f"{MAX_UNPACKED_BYTES / 2**30:.0f} GiB a checkpoint may take")
    for e in entries:
        if e.compress_type != zipfile.ZIP_STORED and e.file_size > MAX_COMPRESSION_RATIO * max(e.compress_size, 1 << 16):
            raise FaigError(f"{path}: refused: entry {_show(e.filename)} inflates {e.compress_size} bytes to "
                            f"{e.file_size} (a zip bomb?); torch.save never compresses")


def _read_safetensors(path: Path) -> Any:
    try:
        from safetensors.torch import load_file
    except ImportError:  # pragma: no cover - safetensors is a dependency
        raise FaigError(f"{path}: reading .safetensors needs the 'safetensors' package") from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # the reader raises its own SafetensorError and several builtins
        raise FaigError(f"{path}: not a readable .safetensors file: {_one_line(exc)}") from None


def unwrap(raw: Any, path: Path | str = "<checkpoint>") -> OrderedDict[str, torch.Tensor]:
    """Find the state dict inside a checkpoint container and strip a ``module.`` prefix."""
    if not isinstance(raw, Mapping):
        raise FaigError(f"{path}: holds a {type(raw).__name__}, not a state dict")
    sd: Any = raw
    for key in WRAPPER_KEYS:
        inner = raw.get(key) if isinstance(raw, Mapping) else None
        if isinstance(inner, Mapping) and inner:
            sd = inner
            break
    if not sd:
        raise FaigError(f"{path}: the checkpoint holds no parameters")
    keys = [k for k in sd.keys()]
    if not all(isinstance(k, str) for k in keys):
        bad = next(k for k in keys if not isinstance(k, str))
        raise FaigError(f"{path}: state dict keys must be strings, found a {type(bad).__name__} key")
    for prefix in _STRIP_PREFIXES:
        if all(k.startswith(prefix) for k in keys):
            keys = [k[len(prefix):] for k in keys]
            sd = OrderedDict(zip(keys, sd.values()))
    return OrderedDict(sd.items())


def validate_state_dict(sd: Mapping[str, Any], path: Path | str = "<checkpoint>") -> OrderedDict[str, torch.Tensor]:
    """Every value a finite floating tensor; returned as float32 on the CPU, order kept.

    Refuses tensors that are not plain dense arrays, tensors that claim more elements than their
    storage holds (a stride-0 "bomb": a few bytes on disk, gigabytes once touched) and
    checkpoints with more than MAX_ELEMENTS parameters, before any of them is copied.
    """
    total = 0
    for key, value in sd.items():
        if not isinstance(value, torch.Tensor):
            raise FaigError(f"{path}: entry {_show(key)} is a {type(value).__name__}, not a tensor")
        if value.layout != torch.strided or value.is_quantized or value.is_meta or value.is_nested:
            raise FaigError(f"{path}: entry {_show(key)} is not a plain dense tensor ({value.layout}); "
                            f"re-save the weights as ordinary tensors")
        if not value.is_floating_point():
            raise FaigError(f"{path}: entry {_show(key)} has dtype {value.dtype}; weights must be floating point")
        if value.numel() == 0:
            raise FaigError(f"{path}: entry {_show(key)} is empty (shape {tuple(value.shape)}); "
                            f"no network has zero-size weights")
        stored = value.untyped_storage().nbytes() // max(value.element_size(), 1)
        if value.numel() > stored:
            raise FaigError(f"{path}: refused: entry {_show(key)} claims {value.numel()} values "
                            f"{tuple(value.shape)} but stores only {stored} (overlapping strides)")
        total += value.numel()
        if total > MAX_ELEMENTS:
            raise FaigError(f"{path}: refused: more than {MAX_ELEMENTS} parameters; too large for an SR network")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in sd.items():
        try:
            value = value.detach().to(device="cpu", dtype=torch.float32).contiguous()
            # min and max propagate NaN and an Inf is one of them: one pass without a boolean
            # copy of the tensor (isfinite().all() took 3x as long; docs/performance.md)
            lo, hi = torch.aminmax(value)
            finite = bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))
        except MemoryError:
            raise FaigError(f"{path}: not enough memory to convert entry {_show(key)}") from None
        except (RuntimeError, TypeError, ValueError, NotImplementedError) as exc:
            raise FaigError(f"{path}: entry {_show(key)} cannot be read as float32: {_one_line(exc)}") from None
        if not finite:
            bad = "NaN" if torch.isnan(value).any() else "Inf (or a value beyond float32's range)"
            raise FaigError(f"{path}: entry {_show(key)} contains {bad} values; the checkpoint is broken")
        out[key] = value
    if not out:
        raise FaigError(f"{path}: the checkpoint holds no parameters")
    return out


def save_checkpoint(path: str | os.PathLike, params: Mapping[str, torch.Tensor],
                    params_ema: Mapping[str, torch.Tensor] | None = None) -> None:
    """Write a BasicSR-format checkpoint (``{'params': ..., 'params_ema': ...}``) or a
    bare ``.safetensors`` file (EMA weights preferred there), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import save_file
        chosen = params_ema if params_ema is not None else params
        save_file({k: v.detach().contiguous().cpu() for k, v in chosen.items()}, str(tmp))
    else:
        payload = {"params": OrderedDict((k, v.detach().cpu()) for k, v in params.items())}
        if params_ema is not None:
            payload["params_ema"] = OrderedDict((k, v.detach().cpu()) for k, v in params_ema.items())
        torch.save(payload, tmp)
    os.replace(tmp, path)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _show(key: Any) -> str:
    """A key as it may appear in a one-line message: quoted, escaped, not too long."""
    text = repr(key) if not isinstance(key, str) else "'" + key.encode("unicode_escape").decode("ascii") + "'"
    return text if len(text) <= 80 else text[:77] + "...'"
