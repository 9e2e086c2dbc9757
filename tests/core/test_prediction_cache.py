"""The predictor's calibration on disk: a fresh process state loads it instead of calibrating, the
file is plain data keyed by everything the calibration depends on, a damaged or foreign file is
recomputed without a word, the folder follows the environment and stays small, and
`faig-gui predict` says where its calibration came from (the second call in another process)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from faig_gui.core import prediction
from faig_gui.core.prediction import cache as prediction_cache, predictor as prediction_predictor
from faig_gui.core.degradations import paper_degradations
from faig_gui.core.prediction import Calibration, Predictor, PredictorConfig, read_calibration
from faig_gui.core.registry import default_registry
from prediction_helpers import make_pair, smooth_hr, write_predict_inputs

ROOT = Path(__file__).resolve().parents[2]
CONFIG = PredictorConfig(proportion=10.0, levels=(0.5, 1.0, 2.0), seeds=1)


def filter_count(sd):
    return sum(v.shape[0] * v.shape[1] for k, v in sd.items() if k.endswith("weight") and v.dim() == 4)




@pytest.fixture(scope="module")
def pair():
    return make_pair()


@pytest.fixture(scope="module")
def scores(pair):
    rng = np.random.default_rng(1)
    n = filter_count(pair[1].state_dict)
    return {"blur": rng.normal(size=n), "noise": rng.normal(size=n)}


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """An empty cache folder and an empty in-memory cache: a new process, as far as the predictor sees."""
    monkeypatch.setenv("FAIG_GUI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(prediction_predictor, "_CALIBRATIONS", {})
    return tmp_path / "cache" / "calibration"


@pytest.fixture
def counted(monkeypatch):
    """Counts the evidence computations of the calibration (the expensive part)."""
    calls = []
    real = prediction.calibrate

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(prediction_predictor, "calibrate", counting)
    return calls


def make(pair, scores, config=CONFIG, images=(0, 1), **kw):
    base, targ = pair
    return Predictor(base, targ, scores, [smooth_hr(s) for s in images], paper_degradations(), config, **kw)


def forget_memory(monkeypatch):
    monkeypatch.setattr(prediction_predictor, "_CALIBRATIONS", {})


def lr_image(seed):
    return smooth_hr(seed, 24)[0].permute(1, 2, 0).numpy()


# --------------------------------------------------------------------------------------------


def test_a_fresh_state_loads_the_stored_calibration_and_decides_identically(pair, scores, cache_dir, monkeypatch):
    first = make(pair, scores)
    computed = first.calibrate()
    assert first.calibration_source == "computed" and first.cache_warning == ""
    assert first.cache_path.parent == cache_dir and first.cache_path.is_file()
    verdicts = [first.predict(lr_image(s)) for s in (20, 21, 22)]

    forget_memory(monkeypatch)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the calibration was computed again")
    monkeypatch.setattr(prediction_predictor, "calibrate", must_not_run)
    again = make(pair, scores)
    assert again.calibration is None            # not in memory any more
    loaded = again.calibrate()
    assert again.calibration_source == "disk" and loaded is not computed
    stored = {"names", "kinds", "samples", "definitions", "seconds", "min_spread", "min_spread_reference",
              "noise_scale"}
    public = {f.name for f in dataclasses.fields(Calibration) if not f.name.startswith("_")}
    assert public == stored, "a new Calibration field: store it in write_calibration and bump CACHE_FORMAT"
    for name in stored - {"samples"}:
        assert getattr(loaded, name) == getattr(computed, name), name
    assert len(loaded.samples) == len(computed.samples)
    for a, b in zip(loaded.samples, computed.samples):
        assert a.present == b.present
        assert set(a.evidence) == set(b.evidence)
        for k in b.evidence:
            assert a.evidence[k].dtype == np.float64
            assert np.array_equal(a.evidence[k], b.evidence[k], equal_nan=True)   # NaN: S, T not measured
    for seed, want in zip((20, 21, 22), verdicts):
        got = again.predict(lr_image(seed))
        assert (got.labels, got.scores, got.strength) == (want.labels, want.scores, want.strength)
    # the loaded calibration is in memory now: a third predictor takes it from there
    assert make(pair, scores).calibration is loaded


def test_the_file_holds_plain_arrays_and_json_only(pair, scores, cache_dir):
    p = make(pair, scores)
    cal = p.calibrate()
    with zipfile.ZipFile(p.cache_path) as z:
        assert sorted(z.namelist()) == ["evidence.npy", "meta.npy"]
    with np.load(p.cache_path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"][()]))
        evidence = z["evidence"]
        assert evidence.dtype == np.float64
        assert evidence.shape == (len(cal.samples), len(CONFIG.evidence), 2)
    assert meta["format"] == prediction.CACHE_FORMAT and meta["key"] == p.cache_text
    assert meta["names"] == ["blur", "noise"] and meta["kinds"] == list(CONFIG.evidence)
    assert meta["definitions"] == [["blur", 2.0, None], ["noise", None, 0.1]]
    assert meta["present"][0] == {} and {"blur": 2.0} in meta["present"]
    # the name is the SHA-256 of the key's text
    assert p.cache_path.name == hashlib.sha256(p.cache_text.encode()).hexdigest() + ".npz"


def test_the_key_follows_what_the_calibration_depends_on(pair, scores, cache_dir):
    path = make(pair, scores).cache_path
    # new objects with equal contents, and 10 written as an int, name the same file
    reg = default_registry()
    copies = tuple(reg.model_from_state_dict({k: v.clone() for k, v in m.state_dict.items()}) for m in pair)
    assert make(copies, {k: v.copy() for k, v in scores.items()}).cache_path == path
    assert make(pair, scores, PredictorConfig(proportion=10, levels=(0.5, 1, 2), seeds=1)).cache_path == path
    changed_scores = {"blur": scores["blur"].copy(), "noise": scores["noise"]}
    changed_scores["blur"][0] += 1e-9
    others = [make(pair, changed_scores).cache_path,
              make(pair, scores, PredictorConfig(proportion=20.0, levels=(0.5, 1.0, 2.0), seeds=1)).cache_path,
              make(pair, scores, PredictorConfig(proportion=10.0, levels=(0.5, 1.0, 2.0), seeds=2)).cache_path,
              make(pair, scores, images=(0, 2)).cache_path,
              make(make_pair(seed=5), scores).cache_path,
              make(pair, {"noise": scores["noise"], "blur": scores["blur"]}).cache_path]   # order of names
    assert len({path, *others}) == 1 + len(others)
    assert 'device="-"' in make(pair, scores).cache_text


def test_the_key_text_is_the_same_in_another_process(pair, scores, tmp_path, cache_dir):
    """Hash seeds and object ids differ between processes; the file name must not."""
    from faig_gui.core.checkpoint import save_checkpoint
    save_checkpoint(tmp_path / "b.pth", pair[0].state_dict)
    save_checkpoint(tmp_path / "t.pth", pair[1].state_dict)
    np.savez(tmp_path / "s.npz", **scores)
    torch.save([smooth_hr(0), smooth_hr(1)], tmp_path / "hr.pt")
    script = f"""
import numpy as np, torch
from faig_gui.core.registry import default_registry
from faig_gui.core.degradations import paper_degradations
from faig_gui.core.prediction import Predictor, PredictorConfig
b, t = default_registry().load_pair({str(tmp_path / 'b.pth')!r}, {str(tmp_path / 't.pth')!r})
s = dict(np.load({str(tmp_path / 's.npz')!r}))
s = {{"blur": s["blur"], "noise": s["noise"]}}
p = Predictor(b, t, s, torch.load({str(tmp_path / 'hr.pt')!r}), paper_degradations(),
              PredictorConfig(proportion=10.0, levels=(0.5, 1.0, 2.0), seeds=1))
print(p.cache_path)
"""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED="4242", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(make(pair, scores).cache_path)


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _garbage(data: bytes) -> bytes:
    return b"not a calibration at all\n" * 10


def _flipped_byte(data: bytes) -> bytes:
    body = bytearray(data)
    body[len(body) // 3] ^= 0xFF     # inside the stored evidence: the zip's CRC no longer matches
    return bytes(body)


def _pickled_object_array(data: bytes) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, meta=np.array([{"format": 1}], dtype=object), evidence=np.zeros(3))
    return buf.getvalue()


def _edit_meta(change):
    def edit(data: bytes) -> bytes:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta, evidence = json.loads(str(z["meta"][()])), z["evidence"]
        change(meta)
        buf = io.BytesIO()
        np.savez(buf, meta=np.array(json.dumps(meta)), evidence=evidence)
        return buf.getvalue()
    return edit


def _old_version(meta):
    meta["format"] = 0


def _foreign_key(meta):
    meta["key"] = "another " + meta["key"]   # (not tied to the format version's text)


def _missing_sample(meta):
    meta["present"].pop()


@pytest.mark.parametrize("damage", [_truncated, _garbage, _flipped_byte, _pickled_object_array,
                                    _edit_meta(_old_version), _edit_meta(_foreign_key), _edit_meta(_missing_sample)],
                         ids=["truncated", "garbage", "flipped-byte", "pickled", "old-version", "foreign-key",
                              "missing-sample"])
def test_a_damaged_or_foreign_file_is_recomputed_silently_and_replaced(pair, scores, cache_dir, monkeypatch,
                                                                       counted, damage):
    p = make(pair, scores)
    want = p.calibrate()
    assert len(counted) == 1
    path = p.cache_path
    path.write_bytes(damage(path.read_bytes()))
    assert read_calibration(path, p.cache_text) is None

    forget_memory(monkeypatch)
    again = make(pair, scores)
    assert not again.load_cached()
    got = again.calibrate()                         # no exception reaches the caller
    assert len(counted) == 2 and again.calibration_source == "computed"
    assert [s.present for s in got.samples] == [s.present for s in want.samples]
    repaired = read_calibration(path, p.cache_text)  # the file was overwritten with a good one
    assert repaired is not None and len(repaired.samples) == len(want.samples)


def test_no_cache_recomputes_and_replaces_the_stored_calibration(pair, scores, cache_dir, counted):
    p = make(pair, scores)
    p.calibrate()
    stamp = p.cache_path.stat().st_mtime_ns
    os.utime(p.cache_path, ns=(stamp - 10**9, stamp - 10**9))
    fresh = make(pair, scores, cache=False)
    assert fresh.calibration is None and not fresh.load_cached()   # neither memory nor disk is read
    fresh.calibrate()
    assert len(counted) == 2 and fresh.calibration_source == "computed"
    assert p.cache_path.stat().st_mtime_ns > stamp - 10**9         # written again
    assert make(pair, scores).calibration is fresh.calibration     # and the memory holds the new one


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FAIG_GUI_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert prediction.calibration_cache_dir() == tmp_path / "mine" / "calibration"
    monkeypatch.delenv("FAIG_GUI_CACHE_DIR")
    assert prediction.calibration_cache_dir() == tmp_path / "xdg" / "faig-gui" / "calibration"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")    # the XDG spec says: ignore a relative path
    assert prediction.calibration_cache_dir() == tmp_path / "home" / ".cache" / "faig-gui" / "calibration"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert prediction.calibration_cache_dir() == tmp_path / "home" / ".cache" / "faig-gui" / "calibration"


def test_the_predictor_writes_where_the_environment_says(pair, scores, tmp_path, monkeypatch):
    forget_memory(monkeypatch)
    monkeypatch.setenv("FAIG_GUI_CACHE_DIR", str(tmp_path / "elsewhere"))
    p = make(pair, scores)
    p.calibrate()
    assert [f.name for f in (tmp_path / "elsewhere" / "calibration").iterdir()] == [p.cache_path.name]


def test_an_unwritable_cache_folder_costs_only_the_next_calibration(pair, scores, tmp_path, monkeypatch):
    forget_memory(monkeypatch)
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache folder cannot be made inside a file")
    monkeypatch.setenv("FAIG_GUI_CACHE_DIR", str(blocker))
    p = make(pair, scores)
    cal = p.calibrate()
    assert p.calibration_source == "computed" and len(cal.samples) > 0
    assert "cannot write" in p.cache_warning and "\n" not in p.cache_warning
    assert p.predict(lr_image(30)).labels is not None


def test_the_folder_keeps_the_most_recently_used_files(pair, scores, cache_dir, monkeypatch):
    cal = make(pair, scores).calibrate()
    cache_dir.mkdir(parents=True, exist_ok=True)
    old = []
    for n in range(4):   # four files used 400, 300, 200 and 100 s ago
        path = cache_dir / f"{n}.npz"
        assert prediction.write_calibration(path, f"key {n}", cal) == ""
        old.append(path)
    for path in cache_dir.iterdir():
        if path not in old:
            path.unlink()
    now = old[0].stat().st_mtime
    for n, path in enumerate(old):
        os.utime(path, (now - 400 + 100 * n, now - 400 + 100 * n))
    stale_part = cache_dir / "x.npz.part"
    stale_part.write_bytes(b"half")
    os.utime(stale_part, (now - 7200, now - 7200))
    monkeypatch.setattr(prediction_cache, "CACHE_KEEP", 3)
    assert read_calibration(old[0], "key 0") is not None    # using the oldest makes it the newest
    assert prediction.write_calibration(cache_dir / "new.npz", "key new", cal) == ""
    # by recency: new, 0 (just read), 3, 2, 1 -> keep three
    assert sorted(p.name for p in cache_dir.iterdir()) == ["0.npz", "3.npz", "new.npz"]


# --------------------------------------------------------------------------------------------
# the command


@pytest.fixture
def cli_files(tmp_path, pair, scores):
    return write_predict_inputs(tmp_path, pair, scores)[1]


def test_predict_calibrates_once_and_the_next_process_loads_the_calibration(cli_files, cache_dir, capsys):
    from faig_gui.cli import main
    assert main(["predict", *cli_files]) == 0
    first = capsys.readouterr()
    # (the tests' calibration content: three bundled crops, tests/conftest.py)
    assert "calibrating on 3 bundled images and 2 analysis images" in first.err and "loaded from cache" not in first.err
    stored = list(cache_dir.iterdir())
    assert len(stored) == 1

    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED="777", OMP_NUM_THREADS="1")
    second = subprocess.run([sys.executable, "-m", "faig_gui", "predict", *cli_files], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert f"calibration: loaded from cache ({stored[0]})" in second.stderr
    assert "calibrating" not in second.stderr
    assert second.stdout == first.out            # the same verdicts, line for line
    assert len(first.out.splitlines()) == 2

    assert main(["predict", *cli_files, "--no-cache"]) == 0
    forced = capsys.readouterr()
    assert "calibrating on 3 bundled images and 2 analysis images" in forced.err and "loaded from cache" not in forced.err
    assert forced.out == first.out
    assert list(cache_dir.iterdir()) == stored


def test_the_evaluation_script_takes_a_calibration_file_only_from_the_current_evidence_code(
        pair, scores, cache_dir, tmp_path):
    """scripts/eval_prediction.py --calibration-file: a file stored under this predictor's key is
    used as it is; one stored under another key (another version of the evidence code) is
    recomputed and overwritten, not silently reused (it gave wrong figures once)."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location(
        "eval_prediction", Path(__file__).resolve().parents[2] / "scripts" / "eval_prediction.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    p = make(pair, scores)
    cal = p.calibrate()
    path = tmp_path / "cal.npz"
    assert prediction.write_calibration(path, "evidence code of another version", cal) == ""
    fresh = make(pair, scores)
    calls = []
    real = fresh.calibrate
    fresh.calibrate = lambda: calls.append(1) or real()
    script.load_or_calibrate(fresh, path)
    assert calls == [1] and read_calibration(path, fresh.cache_text) is not None   # recomputed, stored
    again = make(pair, scores)
    again.calibrate = lambda: pytest.fail("a file of this code's key must be used as it is")
    script.load_or_calibrate(again, path)
    assert again.calibration_source == "file"
