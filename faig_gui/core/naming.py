"""One name per conv layer everywhere: the module name (the parameter name without ``.weight``),
with the plugin's friendly label beside it when it says something else. Qt-free."""
from __future__ import annotations

from typing import Any


def module_name(parameter_name: str) -> str:
    """``body.0.conv1.weight`` -> ``body.0.conv1``: the name every view shows first."""
    return parameter_name.removesuffix(".weight")


def friendly_label(architecture: Any, parameter_name: str) -> str:
    """The plugin's display name for a layer, or '' when it has none or repeats the module name."""
    fn = getattr(architecture, "layer_label", None)
    label = (fn(parameter_name) if fn is not None else None) or ""
    return "" if label == module_name(parameter_name) else label


def layer_title(architecture: Any, parameter_name: str) -> str:
    """``body.0.conv1 (block 0 conv1)``, or just the module name."""
    friendly = friendly_label(architecture, parameter_name)
    name = module_name(parameter_name)
    return f"{name} ({friendly})" if friendly else name
