"""Architecture plugins: discovery, detection, and building models from checkpoints.

Built-in plugins live in ``plugins/``; more come from the folders in ``$FAIG_GUI_PLUGIN_PATH``
and from the entry-point group ``faig_gui.architectures``. Each plugin module is imported on its
own: one broken plugin is reported in :attr:`Registry.failures` and does not hide the others.
"""
from __future__ import annotations

import copy
import importlib.util
import os
import sys
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from faig_gui.core.checkpoint import load_state_dict
from faig_gui.core.errors import FaigError
from faig_gui.core.plugin_api import Architecture
from faig_gui.core.resources import plugins_dir

ENTRY_POINT_GROUP = "faig_gui.architectures"
PLUGIN_PATH_ENV = "FAIG_GUI_PLUGIN_PATH"


@dataclass
class LoadedModel:
    """A checkpoint turned into a module: the state dict is the source of truth for filters."""

    path: Path | None
    architecture: Architecture
    hyperparameters: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    module: nn.Module = field(repr=False)
    #: hyper-parameters the user gave after the name (``--arch edsr:res_scale=0.1``)
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def scale(self) -> int:
        return int(self.hyperparameters["scale"])

    @property
    def arch_name(self) -> str:
        return self.architecture.name

    @property
    def arch_spec(self) -> str:
        """The name with the user's overrides: loads the same module again (sessions keep it)."""
        return format_arch_spec(self.architecture.name, self.overrides)

    def private_copy(self) -> LoadedModel:
        """The same weights with a module of its own. ``functional_call`` swaps a module's
        parameters while it runs, so a thread that uses it needs a module nobody else runs."""
        return replace(self, module=copy.deepcopy(self.module))


class Registry:
    def __init__(self, architectures: Iterable[Architecture] = ()):
        self.architectures: list[Architecture] = []
        self.failures: list[tuple[str, str]] = []
        for arch in architectures:
            self.add(arch, source="<given>")

    # -- discovery -------------------------------------------------------------------------
    def add(self, arch: Architecture, source: str) -> None:
        if not isinstance(arch, Architecture) or not arch.name:
            self.failures.append((source, f"{arch!r} is not a named Architecture"))
            return
        if any(a.name == arch.name for a in self.architectures):
            self.failures.append((source, f"duplicate architecture name '{arch.name}' (ignored)"))
            return
        self.architectures.append(arch)

    def load_folder(self, folder: Path) -> None:
        for file in sorted(Path(folder).glob("*.py")):
            if file.name.startswith("_"):
                continue
            try:
                module = _import_file(file)
                found = getattr(module, "ARCHITECTURES", None)
                if found is None:
                    raise FaigError("defines no ARCHITECTURES list")
                for arch in found:
                    self.add(arch() if isinstance(arch, type) else arch, source=str(file))
            except Exception as exc:  # a broken plugin must not break the others
                self.failures.append((str(file), f"{type(exc).__name__}: {exc}"))

    def load_entry_points(self) -> None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
                items = obj if isinstance(obj, (list, tuple)) else [obj]
                for arch in items:
                    self.add(arch() if isinstance(arch, type) else arch, source=f"entry point {ep.name}")
            except Exception as exc:
                self.failures.append((f"entry point {ep.name}", f"{type(exc).__name__}: {exc}"))

    # -- lookup ----------------------------------------------------------------------------
    def names(self) -> list[str]:
        return [a.name for a in self.architectures]

    def get(self, name: str) -> Architecture:
        for arch in self.architectures:
            if arch.name == name:
                return arch
        raise FaigError(f"unknown architecture '{name}'; available: {', '.join(self.names()) or 'none'}")

    def detect(self, state_dict: Mapping[str, torch.Tensor], path: Path | str = "<checkpoint>") -> Architecture:
        for arch in self.architectures:
            try:
                if arch.detect(state_dict):
                    return arch
            except Exception:  # a plugin's detect must not crash loading
                continue
        tried = ", ".join(self.names()) or "none"
        raise FaigError(f"{path}: no architecture plugin recognises this checkpoint (tried: {tried}); "
                        f"add a plugin or pass --arch NAME")

    # -- building --------------------------------------------------------------------------
    def model_from_state_dict(self, state_dict: dict[str, torch.Tensor], arch: str | None = None,
                              path: Path | None = None) -> LoadedModel:
        where = path if path is not None else "<state dict>"
        name, overrides = parse_arch_spec(arch) if arch else (None, {})
        architecture = self.get(name) if name else self.detect(state_dict, where)
        try:
            hparams = architecture.hyperparameters(state_dict)
            hparams.update(_typed_overrides(overrides, hparams))
            module = architecture.build_unfilled(hparams)  # every tensor is loaded below, strictly
        except FaigError:
            raise
        except Exception as exc:
            raise FaigError(f"{where}: does not fit architecture '{architecture.name}': {exc}") from None
        missing, unexpected = _key_differences(module.state_dict(), state_dict)
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing keys {missing[:3]}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected[:3]}")
            raise FaigError(f"{where}: does not fit architecture '{architecture.name}': {'; '.join(parts)}")
        for key, value in module.state_dict().items():
            if tuple(value.shape) != tuple(state_dict[key].shape):
                raise FaigError(f"{where}: '{key}' has shape {tuple(state_dict[key].shape)}, "
                                f"architecture '{architecture.name}' expects {tuple(value.shape)}")
        module.load_state_dict(state_dict, strict=True)
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        # Filter numbering follows the state-dict order (docs/method.md). A .safetensors file stores its
        # keys sorted by name, so take the order from the module, as the network defines it.
        ordered = {key: state_dict[key] for key in module.state_dict()}
        return LoadedModel(path, architecture, dict(hparams), ordered, module, overrides)

    def load_model(self, path: str | os.PathLike, arch: str | None = None) -> LoadedModel:
        path = Path(path)
        return self.model_from_state_dict(load_state_dict(path), arch, path)

    def load_pair(self, baseline: str | os.PathLike, target: str | os.PathLike,
                  arch: str | None = None) -> tuple[LoadedModel, LoadedModel]:
        base = self.load_model(baseline, arch)
        targ = self.load_model(target, arch or base.arch_name)
        check_pair(base, targ)
        return base, targ


def check_pair(baseline: LoadedModel, target: LoadedModel) -> None:
    """A FAIG pair is one architecture with identical keys and shapes, in the same order."""
    b, t = baseline.state_dict, target.state_dict
    files = f"{baseline.path or '<baseline>'} and {target.path or '<target>'}"
    if baseline.arch_name != target.arch_name:
        raise FaigError(f"{files}: baseline and target differ in architecture: "
                        f"{baseline.arch_name} vs {target.arch_name}")
    for kb, kt in zip(list(b) + [None] * max(0, len(t) - len(b)), list(t) + [None] * max(0, len(b) - len(t))):
        if kb != kt:
            raise FaigError(f"{files}: baseline and target are not a pair: first differing key: "
                            f"baseline has '{kb}', target has '{kt}'")
        assert kb is not None and kt is not None   # equal, and only the shorter side is padded
        if tuple(b[kb].shape) != tuple(t[kt].shape):
            raise FaigError(f"{files}: baseline and target are not a pair: '{kb}' has shape "
                            f"{tuple(b[kb].shape)} in the baseline, {tuple(t[kt].shape)} in the target")


def parse_arch_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``'edsr:res_scale=0.1,img_range=1'`` -> ``('edsr', {'res_scale': '0.1', 'img_range': '1'})``.

    Some hyper-parameters leave no trace in the weights (EDSR's residual scaling, the activation
    of an SRVGG net without PReLUs): the plugin infers a default and the user corrects it here.
    """
    name, _, rest = spec.partition(":")
    overrides: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise FaigError(f"--arch '{spec}': write hyper-parameters as NAME:KEY=VALUE[,KEY=VALUE], "
                            f"e.g. edsr:res_scale=0.1")
        overrides[key.strip()] = value.strip()
    return name.strip(), overrides


def format_arch_spec(name: str, overrides: Mapping[str, Any]) -> str:
    return name + (":" + ",".join(f"{k}={v}" for k, v in overrides.items()) if overrides else "")


def _typed_overrides(overrides: Mapping[str, str], inferred: Mapping[str, Any]) -> dict[str, Any]:
    """Each value as the type the plugin inferred for that key (int, float, str)."""
    typed: dict[str, Any] = {}
    for key, text in overrides.items():
        if key not in inferred:
            raise FaigError(f"--arch: unknown hyper-parameter '{key}'; this architecture has "
                            f"{', '.join(sorted(inferred))}")
        kind = type(inferred[key])
        try:
            typed[key] = kind(text) if kind in (int, float, str) else text
        except ValueError:
            raise FaigError(f"--arch: '{key}={text}' is not a {kind.__name__}") from None
    return typed


def _key_differences(expected: Mapping[str, Any], given: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    return [k for k in expected if k not in given], [k for k in given if k not in expected]


def _import_file(file: Path):
    name = f"faig_gui_plugin_{file.stem}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise FaigError(f"cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


_DEFAULT: Registry | None = None


def default_registry() -> Registry:
    """Built-in plugins, then $FAIG_GUI_PLUGIN_PATH folders, then entry points (built once)."""
    global _DEFAULT
    if _DEFAULT is None:
        reg = Registry()
        reg.load_folder(plugins_dir())
        for folder in filter(None, os.environ.get(PLUGIN_PATH_ENV, "").split(os.pathsep)):
            reg.load_folder(Path(folder))
        reg.load_entry_points()
        _DEFAULT = reg
    return _DEFAULT
