"""The bundled demo: a baseline/target pair, its FAIG scores and a few images (resources/demo)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from faig_gui.core.errors import FaigError
from faig_gui.core.resources import demo_dir


@dataclass(frozen=True)
class DemoFiles:
    baseline: Path
    target: Path
    scores: Path
    analysis: Path   # analysis images: GT/, LR/, blur/, noise/
    heldout: Path    # held-out images for trying things out


def demo_files() -> DemoFiles:
    d = demo_dir()
    files = DemoFiles(d / "baseline.pth", d / "target.pth", d / "scores.npz", d / "analysis", d / "heldout")
    for p in (files.baseline, files.target, files.scores):
        if not p.is_file():
            raise FaigError(f"the bundled demo is incomplete ({p.name} missing in {d}); "
                            f"rebuild it with 'python scripts/build_demo.py' or give --baseline/--target/--scores")
    return files
