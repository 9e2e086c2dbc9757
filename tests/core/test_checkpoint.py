"""Checkpoint loading: the wrappers found in the wild are unwrapped with names kept, and every
bad file gives one FaigError line that names the file and the problem (no code is executed)."""
from __future__ import annotations

import builtins
import pickle
from collections import OrderedDict

import cv2
import numpy as np
import pytest
import torch

from faig_gui.core.checkpoint import load_state_dict, save_checkpoint
from faig_gui.core.errors import FaigError
from faig_gui.core.registry import default_registry


def small_sd(seed=0, **hp):
    torch.manual_seed(seed)
    hp = {"num_feat": 4, "num_block": 1, "scale": 2, **hp}
    return OrderedDict(default_registry().get("msrresnet").new_state_dict(**hp))


def assert_same(a, b):
    assert list(a) == list(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def fails(path, *words):
    with pytest.raises(FaigError) as err:
        default_registry().load_model(path)
    msg = str(err.value)
    assert "\n" not in msg, msg
    assert str(path) in msg, msg
    for w in words:
        assert w.lower() in msg.lower(), (w, msg)
    return msg


# --------------------------------------------------------------------------------------------
# wrappers

def test_params_ema_preferred_over_params(tmp_path):
    ema, plain = small_sd(1), small_sd(2)
    torch.save({"params": plain, "params_ema": ema}, tmp_path / "a.pth")
    torch.save({"params_ema": ema, "params": plain}, tmp_path / "b.pth")  # order in the file does not matter
    assert_same(load_state_dict(tmp_path / "a.pth"), ema)
    assert_same(load_state_dict(tmp_path / "b.pth"), ema)
    torch.save({"params": plain}, tmp_path / "c.pth")
    assert_same(load_state_dict(tmp_path / "c.pth"), plain)


def test_save_checkpoint_writes_basicsr_format(tmp_path):
    ema, plain = small_sd(1), small_sd(2)
    save_checkpoint(tmp_path / "x.pth", plain, params_ema=ema)
    raw = torch.load(tmp_path / "x.pth", weights_only=True)
    assert set(raw) == {"params", "params_ema"}
    assert_same(raw["params"], plain)
    assert_same(load_state_dict(tmp_path / "x.pth"), ema)
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("wrapper", ["state_dict", "model"])
def test_state_dict_and_model_wrappers(tmp_path, wrapper):
    sd = small_sd(3)
    torch.save({wrapper: sd, "optimizer": {"lr": 0.1}, "epoch": 7}, tmp_path / "w.pth")
    assert_same(load_state_dict(tmp_path / "w.pth"), sd)


def test_module_prefix_stripped_and_names_kept(tmp_path):
    sd = small_sd(4)
    torch.save(OrderedDict(("module." + k, v) for k, v in sd.items()), tmp_path / "dp.pth")
    loaded = load_state_dict(tmp_path / "dp.pth")
    assert_same(loaded, sd)  # original names, original order: they are the filter IDs
    # a key that merely contains 'module.' elsewhere is kept as it is
    odd = OrderedDict([("net.module.weight", torch.ones(2, 2, 1, 1))])
    torch.save(odd, tmp_path / "odd.pth")
    assert list(load_state_dict(tmp_path / "odd.pth")) == ["net.module.weight"]


def test_float16_and_float64_become_float32(tmp_path):
    sd = small_sd(5)
    torch.save({k: v.half() if n % 2 else v.double() for n, (k, v) in enumerate(sd.items())}, tmp_path / "h.pth")
    loaded = load_state_dict(tmp_path / "h.pth")
    assert all(v.dtype == torch.float32 for v in loaded.values())
    assert list(loaded) == list(sd)


# --------------------------------------------------------------------------------------------
# hostile and broken files

class _Payload:
    """Unpickling this calls open(marker, 'w'): it would create a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    proof, marker = tmp_path / "proof.txt", tmp_path / "pwned.txt"
    # the payload is real: unpickled the unsafe way, it creates its file
    pickle.loads(pickle.dumps({"params": _Payload(proof)}))["params"].close()
    assert proof.exists()
    zipped, legacy = tmp_path / "evil.pth", tmp_path / "evil_legacy.pth"
    torch.save({"params": {"conv.weight": torch.zeros(1)}, "x": _Payload(marker)}, zipped)
    with open(legacy, "wb") as fh:
        pickle.dump({"params": _Payload(marker)}, fh, protocol=2)
    for path in (zipped, legacy):
        fails(path, "refused")
        assert not marker.exists(), f"{path.name}: loading ran the pickled code"


def test_truncated_file(tmp_path):
    save_checkpoint(tmp_path / "full.pth", small_sd())
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    fails(tmp_path / "cut.pth", "truncated")
    save_checkpoint(tmp_path / "full.safetensors", small_sd())
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    fails(tmp_path / "cut.safetensors", "safetensors")


def test_empty_file(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    fails(tmp_path / "empty.pth", "empty")


def test_missing_file(tmp_path):
    fails(tmp_path / "nowhere.pth", "no such")


def test_png_renamed_pth(tmp_path):
    ok, buf = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "image.pth").write_bytes(buf.tobytes())
    fails(tmp_path / "image.pth", "not a pytorch checkpoint")


@pytest.mark.parametrize("bad,word", [(float("nan"), "NaN"), (float("inf"), "Inf")])
def test_non_finite_weights(tmp_path, bad, word):
    sd = small_sd()
    sd["body.0.conv1.weight"][0, 0, 1, 1] = bad
    torch.save({"params": sd}, tmp_path / "nan.pth")
    fails(tmp_path / "nan.pth", word, "body.0.conv1.weight")


def test_integer_dtype(tmp_path):
    sd = small_sd()
    sd["conv_first.weight"] = torch.ones(4, 3, 3, 3, dtype=torch.int64)
    torch.save(sd, tmp_path / "int.pth")
    fails(tmp_path / "int.pth", "conv_first.weight", "int64", "floating point")


def test_non_tensor_entry(tmp_path):
    sd = small_sd()
    sd["notes"] = [1, 2, 3]
    torch.save(sd, tmp_path / "list.pth")
    fails(tmp_path / "list.pth", "notes", "not a tensor")


def test_not_a_state_dict(tmp_path):
    torch.save([torch.zeros(3)], tmp_path / "list.pth")
    fails(tmp_path / "list.pth", "not a state dict")


def test_missing_and_extra_keys_for_the_architecture(tmp_path):
    sd = small_sd(num_block=2)
    missing = OrderedDict((k, v) for k, v in sd.items() if k != "body.1.conv1.weight")
    torch.save(missing, tmp_path / "missing.pth")
    fails(tmp_path / "missing.pth", "msrresnet", "missing", "body.1.conv1.weight")
    extra = OrderedDict(sd, **{"body.1.conv3.weight": torch.zeros(4, 4, 3, 3)})
    torch.save(extra, tmp_path / "extra.pth")
    fails(tmp_path / "extra.pth", "msrresnet", "unexpected", "body.1.conv3.weight")


def test_wrong_shape_for_the_architecture(tmp_path):
    sd = small_sd()
    sd["conv_hr.weight"] = torch.zeros(4, 4, 5, 5)
    torch.save(sd, tmp_path / "shape.pth")
    fails(tmp_path / "shape.pth", "conv_hr.weight")


def test_mismatched_pair_names_the_first_differing_key(tmp_path):
    save_checkpoint(tmp_path / "b.pth", small_sd(num_block=1))
    save_checkpoint(tmp_path / "t.pth", small_sd(num_block=2))
    with pytest.raises(FaigError) as err:
        default_registry().load_pair(tmp_path / "b.pth", tmp_path / "t.pth")
    msg = str(err.value)
    assert "\n" not in msg
    # block 1 exists only in the target; the first key that differs is upconv1 vs body.1
    assert "upconv1.weight" in msg and "body.1.conv1.weight" in msg
    save_checkpoint(tmp_path / "w.pth", small_sd(num_feat=6))
    with pytest.raises(FaigError) as err:
        default_registry().load_pair(tmp_path / "b.pth", tmp_path / "w.pth")
    assert "conv_first.weight" in str(err.value)


def test_pair_of_different_architectures(tmp_path):
    save_checkpoint(tmp_path / "b.pth", small_sd())
    save_checkpoint(tmp_path / "t.pth", default_registry().get("srcnn_style").new_state_dict(scale=2, widths=(4,)))
    with pytest.raises(FaigError, match="msrresnet|srcnn_style"):
        default_registry().load_pair(tmp_path / "b.pth", tmp_path / "t.pth")
