"""Fuzzing the two doors hostile bytes come through: checkpoints and images.

Whatever goes in, the only exception that may come out is FaigError, and what comes out
otherwise is well formed (a model that builds; a finite float32 RGB image in [0, 1]).

The runs are derandomised so that the suite is repeatable; ``FAIG_FUZZ_EXAMPLES=N`` raises the
example count and ``FAIG_FUZZ_RANDOM=1`` draws fresh examples (docs/robustness.md records the
counts run).
"""
from __future__ import annotations

import os
import struct
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from faig_gui.core.checkpoint import save_checkpoint
from faig_gui.core.errors import FaigError
from faig_gui.core.imageio import read_image
from faig_gui.core.registry import LoadedModel, default_registry

from core.robustness_helpers import png_bytes, tiny_msrresnet

SCALE = int(os.environ.get("FAIG_FUZZ_EXAMPLES", "0"))


def fuzz_settings(examples: int):
    return settings(max_examples=SCALE or examples, deadline=None, derandomize=not os.environ.get("FAIG_FUZZ_RANDOM"),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], database=None)


def load_checkpoint_bytes(data: bytes, suffix: str = ".pth") -> LoadedModel | None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"fuzz{suffix}"
        path.write_bytes(data)
        return load_checkpoint_file(path)


def load_checkpoint_file(path: Path) -> LoadedModel | None:
    try:
        model = default_registry().load_model(path)
    except FaigError as exc:
        assert "\n" not in str(exc), str(exc)
        return None
    assert model.state_dict and all(v.dtype == torch.float32 for v in model.state_dict.values())
    return model


# -- strategies ----------------------------------------------------------------------------------
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32,
          torch.int8, torch.uint8, torch.bool, torch.complex64]
SAFE_DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32,
               torch.int8, torch.uint8, torch.bool]
SPECIAL = [0.0, -0.0, 1.0, float("nan"), float("inf"), -float("inf"), 1e300, -1e-300, 65504.0, 1e38]


@st.composite
def tensors(draw, dtypes=DTYPES):
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(st.lists(st.integers(0, 5), max_size=4))
    n = int(np.prod(shape)) if shape else 1
    values = draw(st.lists(st.one_of(st.sampled_from(SPECIAL), st.floats(-10, 10)), min_size=n, max_size=n))
    t = torch.tensor(values, dtype=torch.float64).reshape(shape)
    if dtype == torch.bool:
        return t.nan_to_num(0.0) != 0
    if not dtype.is_floating_point and not dtype.is_complex:
        return t.nan_to_num(0.0, 0.0, 0.0).clamp(-100, 100).to(dtype)
    return t.to(dtype)


keys = st.one_of(st.sampled_from(list(tiny_msrresnet()) + ["params", "params_ema", "state_dict", "model",
                                                            "module.conv_first.weight"]),
                 st.text(max_size=12))
leaves = st.one_of(tensors(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=5), st.none(),
                   st.booleans())
nested = st.recursive(leaves, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.one_of(keys, st.integers(0, 3)), children, max_size=5)),
    max_leaves=12)


@st.composite
def msrresnet_like(draw):
    """A tiny MSRResNet state dict with some entries dropped, added, reshaped or retyped: the
    inputs that reach the plugins' detection, shape inference and module building."""
    sd = dict(tiny_msrresnet())
    for key in list(sd):
        action = draw(st.sampled_from(["keep"] * 6 + ["drop", "reshape", "retype", "poison"]))
        if action == "drop":
            del sd[key]
        elif action == "reshape":
            shape = draw(st.lists(st.integers(0, 20), min_size=0, max_size=5))
            sd[key] = torch.zeros(shape)
        elif action == "retype":
            sd[key] = sd[key].to(draw(st.sampled_from(DTYPES)))
        elif action == "poison":
            sd[key] = draw(tensors())
    for _ in range(draw(st.integers(0, 2))):
        sd[draw(keys)] = draw(tensors())
    wrap = draw(st.sampled_from(["bare", "params", "params_ema", "state_dict", "module."]))
    if wrap == "module.":
        return {f"module.{k}": v for k, v in sd.items()}
    return sd if wrap == "bare" else {wrap: sd}


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: float | None) -> bytes:
    buf = bytearray(data)
    for pos, value in edits:
        if buf:
            buf[pos % len(buf)] = value
    if cut is not None:
        buf = buf[: int(len(buf) * cut)]
    return bytes(buf)


edits = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8)
cuts = st.one_of(st.none(), st.floats(0, 1))


# -- checkpoints ---------------------------------------------------------------------------------
@fuzz_settings(150)
@given(obj=nested, legacy=st.booleans())
def test_fuzz_torch_saved_objects(obj, legacy):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.pth"
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
        load_checkpoint_file(path)


@fuzz_settings(150)
@given(sd=msrresnet_like(), fmt=st.sampled_from(["zip", "legacy", "safetensors"]))
def test_fuzz_msrresnet_like_state_dicts(sd, fmt):
    with tempfile.TemporaryDirectory() as d:
        if fmt == "safetensors":
            inner = [sd[k] for k in ("params", "params_ema", "state_dict") if isinstance(sd.get(k), dict)]
            flat = inner[0] if inner else sd
            flat = {k: v.contiguous() for k, v in flat.items() if isinstance(v, torch.Tensor) and v.dtype in SAFE_DTYPES}
            path = Path(d) / "fuzz.safetensors"
            try:
                save_file(flat, str(path))
            except Exception:  # the writer refuses some dicts itself (e.g. empty tensors' aliases)
                return
        else:
            path = Path(d) / "fuzz.pth"
            torch.save(sd, path, _use_new_zipfile_serialization=fmt == "zip")
        model = load_checkpoint_file(path)
        if model is not None:  # it was accepted: then it must run
            with torch.no_grad():
                out = model.module(torch.rand(1, model.hyperparameters.get("num_in_ch", 3), 4, 4))
            assert out.shape[-1] == 4 * model.scale


@fuzz_settings(120)
@given(sd=st.dictionaries(st.text(min_size=1, max_size=10), tensors(SAFE_DTYPES), max_size=4),
       edit=edits, cut=cuts)
def test_fuzz_safetensors_files(sd, edit, cut):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.safetensors"
        try:
            save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
        except Exception:
            return
        header_len = int.from_bytes(path.read_bytes()[:8], "little")
        # aim the edits at the JSON header and its length, where the parser lives
        data = _mutate(path.read_bytes(), [(p % (header_len + 8), v) for p, v in edit], cut)
        load_checkpoint_bytes(data, ".safetensors")


_GOOD_ZIP = None


def _good_checkpoint_bytes(legacy: bool) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "good.pth"
        if legacy:
            torch.save({"params": tiny_msrresnet()}, path, _use_new_zipfile_serialization=False)
        else:
            save_checkpoint(path, tiny_msrresnet())
        return path.read_bytes()


GOOD = {False: _good_checkpoint_bytes(False), True: _good_checkpoint_bytes(True)}


@fuzz_settings(200)
@given(legacy=st.booleans(), edit=edits, cut=cuts)
def test_fuzz_mutated_checkpoints(legacy, edit, cut):
    load_checkpoint_bytes(_mutate(GOOD[legacy], edit, cut))


@fuzz_settings(150)
@given(prefix=st.sampled_from([b"", b"PK\x03\x04", b"\x80\x02", b"\x80\x04\x95", b"\x10\x00\x00\x00\x00\x00\x00\x00{"]),
       body=st.binary(max_size=400), suffix=st.sampled_from([".pth", ".safetensors", ".pt"]))
def test_fuzz_random_checkpoint_bytes(prefix, body, suffix):
    load_checkpoint_bytes(prefix + body, suffix)


# -- images --------------------------------------------------------------------------------------
def _encoded(ext: str) -> bytes:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, img if ext != ".pgm" else img[..., 0])
    assert ok
    return buf.tobytes()


IMAGES = {ext: _encoded(ext) for ext in (".png", ".jpg", ".bmp", ".tif", ".webp", ".ppm", ".pgm")}
IMAGES[".png16"] = png_bytes(3, 2, 6, 16, [bytes(range(24)), bytes(range(24, 48))])
IMAGES[".palette"] = png_bytes(3, 1, 3, 8, [bytes([0, 1, 0])], b"\x00\x00\x00\x06PLTE\xff\x00\x00\x00\x00\xff"
                               + struct.pack(">I", zlib.crc32(b"PLTE\xff\x00\x00\x00\x00\xff")))


def read_image_bytes(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            img = read_image(path)
        except FaigError as exc:
            assert "\n" not in str(exc), str(exc)
            return
        assert img.dtype == np.float32 and img.ndim == 3 and img.shape[2] == 3
        assert np.isfinite(img).all() and img.min() >= 0 and img.max() <= 1


@fuzz_settings(300)
@given(fmt=st.sampled_from(sorted(IMAGES)), edit=edits, cut=cuts)
def test_fuzz_mutated_images(fmt, edit, cut):
    data = IMAGES[fmt]
    # half of the edits land in the first 64 bytes, where the headers are
    edit = [(p % 64 if n % 2 == 0 else p, v) for n, (p, v) in enumerate(edit)]
    read_image_bytes(_mutate(data, edit, cut), ".png")


@fuzz_settings(200)
@given(prefix=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*",
                               b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"P6\n", b"P5 ", b"GIF89a"]),
       body=st.binary(max_size=300))
def test_fuzz_random_image_bytes(prefix, body):
    read_image_bytes(prefix + body, ".png")
