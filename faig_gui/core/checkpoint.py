"""Read SR checkpoints safely and unwrap them into plain state dicts.

Never executes pickled code: `.pth`/`.pt` files go through ``torch.load(weights_only=True)``,
``.safetensors`` through the safetensors reader. Parameter names are kept as they are (minus a
``module.`` prefix): they are the filter IDs.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import torch

from faig_gui.core.errors import FaigError

StateDict = "OrderedDict[str, torch.Tensor]"

# BasicSR saves EMA weights beside the plain ones: prefer them (FAIG.md, "Checkpoints in the wild").
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")
_STRIP_PREFIXES = ("module.",)


def load_state_dict(path: str | os.PathLike) -> "OrderedDict[str, torch.Tensor]":
    """Load ``path`` and return its float32 state dict; raise FaigError on anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise FaigError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise FaigError(f"{path}: the file is empty (0 bytes); was the download interrupted?")
    raw = _read_safetensors(path) if path.suffix.lower() == ".safetensors" else _read_torch(path)
    return validate_state_dict(unwrap(raw, path), path)


def _read_torch(path: Path) -> Any:
    with open(path, "rb") as fh:
        head = fh.read(4)
    # torch.save writes a zip archive; very old files are a bare pickle (protocol marker 0x80)
    if not (head.startswith(b"PK") or head[:1] == b"\x80"):
        raise FaigError(f"{path}: not a PyTorch checkpoint (neither a torch zip archive nor a pickle)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses any global outside tensors and plain containers: such a file would
        # run code if loaded the unsafe way. Say so, naming the global, without torch's long hint.
        found = re.search(r"(?:Unsupported global|GLOBAL|Unsupported operand)[^\n]*", str(exc))
        detail = f" ({found.group(0)[:120]})" if found else ""
        raise FaigError(
            f"{path}: refused: the file holds pickled objects beyond tensors and plain containers, "
            f"which could run code when loaded{detail}; re-save it as a plain state dict or .safetensors"
        ) from None
    except (zipfile.BadZipFile, EOFError, RuntimeError, ValueError, OSError, KeyError,
            AttributeError, TypeError, IndexError, UnicodeDecodeError, MemoryError) as exc:
        raise FaigError(
            f"{path}: not a readable PyTorch checkpoint (truncated or not a checkpoint?): "
            f"{_one_line(exc)}"
        ) from None


def _read_safetensors(path: Path) -> Any:
    try:
        from safetensors.torch import load_file
    except ImportError:  # pragma: no cover - safetensors is a dependency
        raise FaigError(f"{path}: reading .safetensors needs the 'safetensors' package") from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # the reader raises its own SafetensorError and several builtins
        raise FaigError(f"{path}: not a readable .safetensors file: {_one_line(exc)}") from None


def unwrap(raw: Any, path: Path | str = "<checkpoint>") -> "OrderedDict[str, torch.Tensor]":
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
        raise FaigError(f"{path}: state dict keys must be strings")
    for prefix in _STRIP_PREFIXES:
        if all(k.startswith(prefix) for k in keys):
            keys = [k[len(prefix):] for k in keys]
            sd = OrderedDict(zip(keys, sd.values()))
    return OrderedDict(sd.items())


def validate_state_dict(sd: Mapping[str, Any], path: Path | str = "<checkpoint>") -> "OrderedDict[str, torch.Tensor]":
    """Every value a finite floating tensor; returned as float32 on the CPU, order kept."""
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for key, value in sd.items():
        if not isinstance(value, torch.Tensor):
            raise FaigError(f"{path}: entry '{key}' is a {type(value).__name__}, not a tensor")
        if not value.is_floating_point():
            raise FaigError(f"{path}: entry '{key}' has dtype {value.dtype}; weights must be floating point")
        value = value.detach().to(device="cpu", dtype=torch.float32)
        if not torch.isfinite(value).all():
            bad = "NaN" if torch.isnan(value).any() else "Inf"
            raise FaigError(f"{path}: entry '{key}' contains {bad} values; the checkpoint is broken")
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
