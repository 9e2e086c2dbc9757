from __future__ import annotations

import argparse

from faig_gui.commands._common import add_degradations, degradations_from, output_dir, positive_int
from faig_gui.core.dataset import load_hr_folder, make_degraded, write_image_set

HELP = ("make the paper's inputs from HR images: GT/ (mod-cropped), LR/ (clean), and one folder per "
        "degradation (blur/, noise/ by default)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hr", required=True, help="folder of HR images")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--scale", type=positive_int, default=2)
    add_degradations(p)
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    out = output_dir(args.out)
    hr = load_hr_folder(args.hr)
    images = make_degraded(hr, args.scale, degradations_from(args), args.seed)
    write_image_set(out, images)
    print(f"wrote {len(images)} images x (GT, LR, {', '.join(images[0].lr)}) to {out}")
    return 0
