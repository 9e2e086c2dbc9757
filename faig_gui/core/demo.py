"""The bundled demos: baseline/target pairs, their FAIG scores and a few images (resources/).

* ``msrresnet`` (the default, ``resources/demo/``): MSRResNet x2, blur and noise.
* ``srvgg3`` (``resources/demo_srvgg/``): SRVGGNetCompact x2, blur, noise and JPEG.

A demo folder may hold ``degradations.json`` (a list of ``Degradation.to_dict()``): the
degradations its scores were analysed for, in the scores' order; without it, the paper's two.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from faig_gui.core.degradations import Degradation, paper_degradations
from faig_gui.core.errors import FaigError
from faig_gui.core.resources import resources_dir

#: name -> (folder under resources/, what the menu says)
DEMOS = {"msrresnet": ("demo", "MSRResNet ×2 — blur and noise"),
         "srvgg3": ("demo_srvgg", "SRVGGNetCompact ×2 — blur, noise and JPEG")}
DEFAULT_DEMO = "msrresnet"


@dataclass(frozen=True)
class DemoFiles:
    baseline: Path
    target: Path
    scores: Path
    analysis: Path   # analysis images: GT/, LR/ and one folder per degradation
    heldout: Path    # held-out images for trying things out
    degradations: list[Degradation] = field(default_factory=paper_degradations)


def demo_files(name: str = DEFAULT_DEMO) -> DemoFiles:
    if name not in DEMOS:
        raise FaigError(f"unknown demo '{name}'; the bundled demos are {', '.join(DEMOS)}")
    d = resources_dir() / DEMOS[name][0]
    degs = paper_degradations()
    spec = d / "degradations.json"
    if spec.is_file():
        degs = [Degradation.from_dict(x) for x in json.loads(spec.read_text())]
    files = DemoFiles(d / "baseline.pth", d / "target.pth", d / "scores.npz", d / "analysis", d / "heldout", degs)
    for p in (files.baseline, files.target, files.scores):
        if not p.is_file():
            raise FaigError(f"the bundled demo '{name}' is incomplete ({p.name} missing in {d}); "
                            f"rebuild it with 'python scripts/build_demo.py' or give --baseline/--target/--scores")
    return files


def available_demos() -> list[tuple[str, str]]:
    """(name, title) of each demo whose pair and scores are present."""
    out = []
    for name, (folder, title) in DEMOS.items():
        d = resources_dir() / folder
        if all((d / f).is_file() for f in ("baseline.pth", "target.pth", "scores.npz")):
            out.append((name, title))
    return out
