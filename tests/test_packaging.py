"""Every folder of the bundled data is listed as a package in pyproject.toml: setuptools takes each
for an importable (namespace) package and warns at every install otherwise (a new user's first
command would print pages of warnings)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is new in Python 3.11")
def test_every_resource_folder_is_a_listed_package():
    import tomllib
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    resources = ROOT / "resources"
    folders = {"faig_gui.resources." + ".".join(p.relative_to(resources).parts)
               for p in resources.rglob("*") if p.is_dir() and p.name != "__pycache__"}
    assert folders and folders <= listed, sorted(folders - listed)
