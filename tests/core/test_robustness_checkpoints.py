"""Hostile and broken checkpoints: refused with one line naming the file and the problem.

Each test makes the bad file by hand and checks the outcome a user sees (the message, the CLI's
exit status and stderr, the file a pickle payload would have created).
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from faig_gui import cli
from faig_gui.core import checkpoint
from faig_gui.core.checkpoint import load_state_dict, save_checkpoint
from faig_gui.core.errors import FaigError
from faig_gui.core.registry import default_registry

from core.robustness_helpers import tiny_msrresnet, tiny_pair

ROOT = Path(__file__).resolve().parents[2]


class _Payload:
    """Unpickling this (the unsafe way) runs ``open(marker, 'w')``: it creates a file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _refused(path: Path, *words: str) -> str:
    with pytest.raises(FaigError) as info:
        default_registry().load_model(path)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert str(path) in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


# -- code in a pickle ----------------------------------------------------------------------------
@pytest.mark.parametrize("container", ["torch_zip", "bare_pickle", "nested"])
def test_pickle_payload_is_refused_without_running(tmp_path, container):
    marker = tmp_path / "payload_ran.txt"
    path = tmp_path / "evil.pth"
    if container == "torch_zip":
        torch.save({"params": tiny_msrresnet(), "extra": _Payload(marker)}, path)
    elif container == "bare_pickle":
        path.write_bytes(pickle.dumps({"params": {"conv_first.weight": _Payload(marker)}}, protocol=2))
    else:
        torch.save({"params_ema": {"a": [1, {"b": _Payload(marker)}]}}, path)

    # the payload is real: loading the unsafe way would create the file
    check = tmp_path / "check.pth"
    check.write_bytes(path.read_bytes())
    if container == "bare_pickle":
        pickle.loads(check.read_bytes())
    else:
        torch.load(check, weights_only=False)
    assert marker.exists()
    marker.unlink()

    msg = _refused(path, "refused", "could run code")
    assert not marker.exists(), "the pickle payload ran"
    assert "open" in msg  # names the global it refused


# -- damaged or wrong files ----------------------------------------------------------------------
@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.9, 0.999])
def test_truncated_torch_checkpoint(tmp_path, fraction):
    good = tmp_path / "good.pth"
    save_checkpoint(good, tiny_msrresnet())
    data = good.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: max(1, int(len(data) * fraction))])
    _refused(cut, "not a readable PyTorch checkpoint", "truncated")


def test_truncated_safetensors(tmp_path):
    good = tmp_path / "good.safetensors"
    save_checkpoint(good, tiny_msrresnet())
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:-100])
    _refused(cut, "not a readable .safetensors file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    _refused(path, "empty (0 bytes)")


@pytest.mark.parametrize("content", [b"hello, not a checkpoint\n", b"\x89PNG\r\n\x1a\n" + b"\0" * 40,
                                     b'{"params": {}}', bytes(range(256)) * 4])
def test_non_checkpoint_files(tmp_path, content):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    _refused(path, "not a PyTorch checkpoint")


def test_a_zip_that_is_no_torch_archive(tmp_path):
    path = tmp_path / "weights.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "just a zip")
    _refused(path, "not a readable PyTorch checkpoint")


def test_checkpoint_holding_no_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], path)
    _refused(path, "holds a list, not a state dict")
    path2 = tmp_path / "nothing.pth"
    torch.save({}, path2)
    _refused(path2, "holds no parameters")


# -- bad values ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad, word", [(float("nan"), "NaN"), (float("inf"), "Inf"), (-float("inf"), "Inf")])
def test_nan_and_inf_weights(tmp_path, bad, word):
    sd = tiny_msrresnet()
    sd["body.0.conv1.weight"][1, 2, 0, 0] = bad
    path = tmp_path / "broken.pth"
    save_checkpoint(path, sd)
    _refused(path, word, "'body.0.conv1.weight'")


def test_float64_beyond_float32_range_is_refused_not_turned_into_inf(tmp_path):
    sd = {k: v.double() for k, v in tiny_msrresnet().items()}
    sd["conv_last.weight"][0, 0, 0, 0] = 1e300
    path = tmp_path / "big.pth"
    torch.save(sd, path)
    _refused(path, "'conv_last.weight'", "Inf")


@pytest.mark.parametrize("dtype", [torch.int64, torch.int8, torch.bool, torch.complex64])
def test_wrong_dtypes(tmp_path, dtype):
    sd = tiny_msrresnet()
    sd["upconv1.weight"] = torch.ones(sd["upconv1.weight"].shape).to(dtype)
    path = tmp_path / "ints.pth"
    save_checkpoint(path, sd)
    _refused(path, "'upconv1.weight'", str(dtype), "floating point")


def test_half_precision_weights_load_as_float32(tmp_path):
    sd = tiny_msrresnet()
    path = tmp_path / "half.pth"
    torch.save({k: v.half() for k, v in sd.items()}, path)
    loaded = load_state_dict(path)
    assert all(v.dtype == torch.float32 for v in loaded.values())
    assert torch.equal(loaded["conv_first.weight"], sd["conv_first.weight"].half().float())


def test_zero_size_weights(tmp_path):
    sd = tiny_msrresnet()
    sd["conv_first.weight"] = torch.zeros(0, 3, 3, 3)
    path = tmp_path / "empty_weights.pth"
    save_checkpoint(path, sd)
    _refused(path, "'conv_first.weight' is empty", "(0, 3, 3, 3)")


def test_non_tensor_entry_and_non_string_keys(tmp_path):
    path = tmp_path / "mixed.pth"
    torch.save({"conv_first.weight": torch.zeros(4, 3, 3, 3), "note": "hello"}, path)
    _refused(path, "'note' is a str, not a tensor")
    path2 = tmp_path / "intkeys.pth"
    torch.save({0: torch.zeros(3), 1: torch.zeros(3)}, path2)
    _refused(path2, "keys must be strings", "int")


def test_key_with_a_newline_keeps_the_message_on_one_line(tmp_path):
    path = tmp_path / "nl.pth"
    torch.save({"a\nb": torch.zeros(3, dtype=torch.int32)}, path)
    _refused(path, "'a\\nb'", "torch.int32")


def test_sparse_tensor_is_refused(tmp_path):
    path = tmp_path / "sparse.pth"
    torch.save({"conv_first.weight": torch.eye(3).to_sparse()}, path)
    _refused(path, "not a plain dense tensor")


# -- memory bombs: a few bytes on disk, gigabytes once touched -----------------------------------
def test_stride_zero_tensor_bomb_is_refused_before_it_is_touched(tmp_path):
    # one stored float seen as 20000 x 20000 (400 M values, 1.6 GB once converted or checked)
    bomb = torch.zeros(1).as_strided((20000, 20000), (0, 0))
    path = tmp_path / "bomb.pth"
    torch.save({"conv_first.weight": bomb}, path)
    assert path.stat().st_size < 10_000
    _refused(path, "refused", "400000000 values", "overlapping strides")


def test_zip_bomb_is_refused(tmp_path):
    plain = tmp_path / "plain.pth"
    torch.save({"conv_first.weight": torch.zeros(4096, 4096)}, plain)  # 64 MB of zeros, stored
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert bomb.stat().st_size < 1_000_000
    torch.load(bomb, weights_only=True)  # torch itself would inflate it
    _refused(bomb, "refused", "zip bomb")


def test_too_many_parameters(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "MAX_ELEMENTS", 100)
    path = tmp_path / "big.pth"
    save_checkpoint(path, tiny_msrresnet())
    _refused(path, "more than 100 parameters")


# -- keys, pairs, architectures ------------------------------------------------------------------
def test_missing_key(tmp_path):
    sd = tiny_msrresnet()
    del sd["body.0.conv2.bias"]
    path = tmp_path / "missing.pth"
    save_checkpoint(path, sd)
    _refused(path, "missing keys", "body.0.conv2.bias")


def test_extra_key(tmp_path):
    sd = tiny_msrresnet()
    sd["body.0.conv3.weight"] = torch.zeros(4, 4, 3, 3)
    path = tmp_path / "extra.pth"
    save_checkpoint(path, sd)
    _refused(path, "unexpected keys", "body.0.conv3.weight")


def test_wrong_shape_for_a_key(tmp_path):
    sd = tiny_msrresnet()
    sd["body.0.conv1.weight"] = torch.zeros(4, 4, 5, 5)
    path = tmp_path / "shape.pth"
    save_checkpoint(path, sd)
    _refused(path, "'body.0.conv1.weight'", "(4, 4, 5, 5)", "(4, 4, 3, 3)")


def test_unknown_architecture(tmp_path):
    path = tmp_path / "mlp.pth"
    torch.save({"fc1.weight": torch.zeros(8, 4), "fc1.bias": torch.zeros(8)}, path)
    _refused(path, "no architecture plugin recognises")


def test_mismatched_pair_names_both_files(tmp_path):
    baseline = tmp_path / "baseline.pth"
    target = tmp_path / "target_wide.pth"
    save_checkpoint(baseline, tiny_msrresnet(0, num_feat=4))
    save_checkpoint(target, tiny_msrresnet(1, num_feat=8))
    with pytest.raises(FaigError) as info:
        default_registry().load_pair(baseline, target)
    msg = str(info.value)
    assert "\n" not in msg and str(baseline) in msg and str(target) in msg and "not a pair" in msg


def test_safetensors_under_a_pth_name_and_torch_under_a_safetensors_name(tmp_path):
    sd = tiny_msrresnet()
    renamed = tmp_path / "really_safetensors.pth"
    save_file(sd, str(renamed))
    assert torch.equal(load_state_dict(renamed)["conv_last.weight"], sd["conv_last.weight"])
    other = tmp_path / "really_torch.safetensors"
    torch.save(sd, other)
    assert torch.equal(load_state_dict(other)["conv_last.weight"], sd["conv_last.weight"])


# -- the CLI: exit 2, one line, no traceback -----------------------------------------------------
def _bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    files["evil"] = tmp_path / "evil.pth"
    torch.save({"x": _Payload(tmp_path / "ran.txt")}, files["evil"])
    files["truncated"] = tmp_path / "truncated.pth"
    save_checkpoint(files["truncated"], tiny_msrresnet())
    files["truncated"].write_bytes(files["truncated"].read_bytes()[:500])
    files["empty"] = tmp_path / "empty.pth"
    files["empty"].write_bytes(b"")
    files["text"] = tmp_path / "text.pth"
    files["text"].write_text("not a checkpoint")
    sd = tiny_msrresnet()
    sd["conv_first.weight"][0, 0, 0, 0] = float("nan")
    files["nan"] = tmp_path / "nan.pth"
    save_checkpoint(files["nan"], sd)
    files["unknown"] = tmp_path / "mlp.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, files["unknown"])
    return files


@pytest.fixture
def lr_png(tmp_path):
    from faig_gui.core.imageio import write_image
    import numpy as np
    path = tmp_path / "lr.png"
    write_image(path, np.full((8, 8, 3), 0.5, np.float32))
    return path


@pytest.mark.parametrize("kind", ["evil", "truncated", "empty", "text", "nan", "unknown"])
def test_cli_reports_a_bad_checkpoint_in_one_line(tmp_path, capsys, lr_png, kind):
    bad = _bad_files(tmp_path)[kind]
    rc = cli.main(["run", "--checkpoint", str(bad), "--input", str(lr_png), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("faig-gui: error: ") and str(bad) in err and "\n" not in err, err
    assert not (tmp_path / "ran.txt").exists()


def test_cli_subprocess_exit_status_and_no_traceback(tmp_path, lr_png):
    bad = _bad_files(tmp_path)
    baseline, _ = tiny_pair(tmp_path)
    wide = tmp_path / "wide.pth"
    save_checkpoint(wide, tiny_msrresnet(2, num_feat=8))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = {
        "evil": ["run", "--checkpoint", str(bad["evil"]), "--input", str(lr_png), "--out", str(tmp_path / "o")],
        "pair": ["mask", "--baseline", str(baseline), "--target", str(wide), "--scores", str(tmp_path / "s.npz"),
                 "--degradation", "blur", "--proportion", "1", "--input", str(lr_png), "--out", str(tmp_path / "o")],
    }
    for name, argv in runs.items():
        proc = subprocess.run([sys.executable, "-m", "faig_gui", *argv], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=120)
        assert proc.returncode == 2, (name, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("faig-gui: error: "), proc.stderr
    assert not (tmp_path / "ran.txt").exists()
