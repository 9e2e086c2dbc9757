"""Where the built-in plugins and resources live, installed or in a source checkout."""
from __future__ import annotations

import importlib.util
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[2]


def _package_dir(package: str, fallback: str) -> Path:
    # Installed (wheel or editable), plugins/ and resources/ are mapped to faig_gui.plugins and
    # faig_gui.resources; run from a plain checkout (python main.py), they sit at the top level.
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if Path(location).is_dir():
                return Path(location)
    return _REPO_ROOT / fallback


def plugins_dir() -> Path:
    return _package_dir("faig_gui.plugins", "plugins")


def resources_dir() -> Path:
    return _package_dir("faig_gui.resources", "resources")


def demo_dir() -> Path:
    return resources_dir() / "demo"
