from __future__ import annotations

import argparse
from faig_gui.commands._common import add_arch, add_device, output_dir
from faig_gui.core.device import resolve_device
from faig_gui.core.exports import output_stems
from faig_gui.core.imageio import read_image, to_image, to_tensor, write_image
from faig_gui.core.inference import super_resolve
from faig_gui.core.registry import default_registry

HELP = "super-resolve images with one checkpoint"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--input", nargs="+", required=True, metavar="IMG")
    p.add_argument("--out", required=True)
    add_device(p)
    add_arch(p)


def run(args: argparse.Namespace) -> int:
    model = default_registry().load_model(args.checkpoint, args.arch)
    out = output_dir(args.out)
    device = resolve_device(args.device)
    for path, stem in zip(args.input, output_stems(args.input)):
        sr = super_resolve(model.module, to_tensor(read_image(path)), model.scale, device=device)
        dest = out / (stem + ".png")
        write_image(dest, to_image(sr))
        print(dest)
    return 0
