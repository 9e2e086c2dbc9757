"""The headless commands' contract (issue 2), run in-process through faig_gui.cli.main on a tiny
pair, plus real subprocesses for `python -m faig_gui --help` and `python main.py degrade`."""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from faig_gui.cli import main
from faig_gui.core.checkpoint import save_checkpoint
from faig_gui.core.registry import default_registry
from reference_nets import BasicSRMSRResNet
from tolerances import assert_path_sum_close, path_terms

ROOT = Path(__file__).resolve().parents[1]
N_FILTERS = 4 * 3 + 2 * 16 + 16 * 4 + 16 + 3 * 4  # MSRResNet 4 features, 1 block, x2


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny BasicSR-format pair and two HR photos (one with odd sizes, to be mod-cropped)."""
    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    base = default_registry().get("msrresnet").new_state_dict(num_feat=4, num_block=1, scale=2)
    targ = {k: v + (v.abs().mean() + 0.05) * torch.randn_like(v) for k, v in base.items()}
    save_checkpoint(d / "baseline.pth", base, params_ema=base)
    save_checkpoint(d / "target.pth", targ, params_ema=targ)
    (d / "hr").mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in (("cat", (24, 28)), ("dog", (25, 27))):
        # smooth content with some texture: a natural-ish image
        yy, xx = np.mgrid[0:h, 0:w]
        img = 0.5 + 0.3 * np.sin(xx / 3.0)[..., None] * np.cos(yy / 4.0)[..., None] * np.array([1, 0.7, 0.4])
        img = np.clip(img + 0.05 * rng.standard_normal((h, w, 3)), 0, 1)
        cv2.imwrite(str(d / "hr" / f"{name}.png"), np.round(img[..., ::-1] * 255).astype(np.uint8))
    return d


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def read_png(path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1].astype(np.float64) / 255


# --------------------------------------------------------------------------------------------
# degrade

def test_degrade_writes_gt_lr_blur_noise_with_the_same_names(work, capsys):
    rc, out, err = run_cli(capsys, "degrade", "--hr", work / "hr", "--out", work / "data", "--seed", "3")
    assert rc == 0, err
    for sub in ("GT", "LR", "blur", "noise"):
        assert sorted(p.name for p in (work / "data" / sub).iterdir()) == ["cat.png", "dog.png"], sub
    gt = read_png(work / "data" / "GT" / "dog.png")
    assert gt.shape == (24, 26, 3)  # 25x27 mod-cropped to x2
    np.testing.assert_array_equal(gt, read_png(work / "hr" / "dog.png")[:24, :26])
    for sub in ("LR", "blur", "noise"):
        assert read_png(work / "data" / sub / "dog.png").shape == (12, 13, 3)
    # blur is blurrier than the clean LR, noise noisier: the images are not mixed up
    lr, blur, noise = (read_png(work / "data" / s / "cat.png") for s in ("LR", "blur", "noise"))
    tv = lambda a: np.abs(np.diff(a, axis=1)).mean()  # noqa: E731
    assert tv(blur) < tv(lr) < tv(noise)
    assert np.std(noise - lr) == pytest.approx(0.1, rel=0.25)
    # seeded: the same command writes the same images
    rc, _, _ = run_cli(capsys, "degrade", "--hr", work / "hr", "--out", work / "data2", "--seed", "3")
    assert rc == 0
    assert (work / "data" / "noise" / "cat.png").read_bytes() == (work / "data2" / "noise" / "cat.png").read_bytes()


# --------------------------------------------------------------------------------------------
# analyze

def _analyze(capsys, work, out, *extra):
    rc, stdout, err = run_cli(capsys, "analyze", "--baseline", work / "baseline.pth", "--target", work / "target.pth",
                              "--steps", "3", "--device", "cpu", "--out", out, *extra)
    assert rc == 0, err
    with np.load(out / "scores.npz") as npz:
        return {k: npz[k] for k in npz.files}


def test_analyze_writes_scores_index_files_and_report(work, capsys):
    out = work / "an_hr"
    scores = _analyze(capsys, work, out, "--hr", work / "hr")
    assert set(scores) == {"blur", "noise"}
    for name, s in scores.items():
        assert s.shape == (N_FILTERS,) and s.dtype == np.float64 and np.isfinite(s).all()
        order = np.array([int(line) for line in (out / f"{name}_index.txt").read_text().splitlines()])
        np.testing.assert_array_equal(order, np.argsort(-s, kind="stable"))
        assert np.all(np.diff(s[order]) <= 0)
        # the same CSV as the window's File ▸ Export: rank, index, score in ranked order
        rows = (out / f"{name}_ranking.csv").read_text().splitlines()
        assert rows[0] == "rank,index,layer,out,in,score" and len(rows) == N_FILTERS + 1
        cells = [r.split(",") for r in rows[1:]]
        assert [int(c[1]) for c in cells] == order.tolist() and [int(c[0]) for c in cells] == list(range(1, N_FILTERS + 1))
        assert [float(c[5]) for c in cells] == s[order].tolist()
    report = json.loads((out / "report.json").read_text())
    assert report["architecture"] == "msrresnet"
    assert report["filter_count"] == N_FILTERS
    assert report["method"] == "faig" and report["steps"] == 3
    assert report["images"] == ["cat.png", "dog.png"]
    assert report["device"] == "cpu"
    assert report["seconds"] > 0
    assert report["degradations"] == ["blur", "noise"]


def test_analyze_progress_bar_counts_the_steps_within_each_path(work, capsys, tmp_path, monkeypatch):
    """The bar's count (what its thread reads twice a second) follows the path steps inside an
    image's path, not only the images done: read here after every step."""
    from faig_gui.commands import analyze as command
    from faig_gui.core import analysis
    monkeypatch.setattr(analysis, "PROGRESS_EVERY_S", 0.0)
    bar = {}
    real_drive, real_path = command.drive_with_progress, analysis.faig_attribution

    def drive(gen, result_type, desc, total=100, poll=None, show=True):
        bar["poll"] = poll
        return real_drive(gen, result_type, desc, total, poll, show)

    seen = []

    def path(*args, **kw):
        args = list(args)
        told = args[7]

        def on_steps(n):
            told(n)
            seen.append(bar["poll"]())
        args[7] = on_steps
        return real_path(*args, **kw)
    monkeypatch.setattr(command, "drive_with_progress", drive)
    monkeypatch.setattr(analysis, "faig_attribution", path)
    _analyze(capsys, work, tmp_path / "out", "--hr", work / "hr", "--chunk", "1")
    # 2 images x 2 degradations x 3 steps, one step at a time
    assert seen == list(range(1, 13))


def test_analyze_from_folders_agrees_with_hr(work, capsys):
    if not (work / "data").is_dir():
        run_cli(capsys, "degrade", "--hr", work / "hr", "--out", work / "data", "--seed", "3")
    from_hr = _analyze(capsys, work, work / "an_hr3", "--hr", work / "hr", "--seed", "3")
    d = work / "data"
    from_dirs = _analyze(capsys, work, work / "an_dirs", "--gt", d / "GT", "--degraded", f"blur={d / 'blur'}",
                         "--degraded", f"noise={d / 'noise'}", "--clean-lr", d / "LR")
    # the same float32 path sums over the same 8-bit inputs, possibly chunked otherwise
    n_terms = 2 * path_terms(default_registry().load_model(work / "target.pth").module, 28 * 28)
    for name in ("blur", "noise"):
        assert_path_sum_close(from_dirs[name], from_hr[name], n_terms)


@pytest.mark.parametrize("method", ["ig", "abs", "random"])
def test_analyze_other_methods(work, capsys, method):
    out = work / f"an_{method}"
    extra = ["--hr", work / "hr"] if method == "ig" else []
    scores = _analyze(capsys, work, out, "--method", method, *extra)
    assert set(scores) == {"blur", "noise"}
    assert json.loads((out / "report.json").read_text())["method"] == method
    if method == "random":
        assert sorted(scores["blur"].tolist()) == list(range(1, N_FILTERS + 1))


# --------------------------------------------------------------------------------------------
# run and mask

def test_run_writes_the_sr_output_of_each_input(work, capsys):
    lr_dir = work / "lr_in"
    lr_dir.mkdir(exist_ok=True)
    rng = np.random.default_rng(4)
    for name in ("a", "b"):
        cv2.imwrite(str(lr_dir / f"{name}.png"), rng.integers(0, 256, (10, 9, 3), dtype=np.uint8))
    rc, out, err = run_cli(capsys, "run", "--checkpoint", work / "target.pth", "--input",
                           lr_dir / "a.png", lr_dir / "b.png", "--out", work / "run_out", "--device", "cpu")
    assert rc == 0, err
    ref = BasicSRMSRResNet(3, 3, 4, 1, 2)
    ref.load_state_dict(torch.load(work / "target.pth", weights_only=True)["params_ema"])
    for name in ("a", "b"):
        got = read_png(work / "run_out" / f"{name}.png")
        assert got.shape == (20, 18, 3)
        x = torch.from_numpy(read_png(lr_dir / f"{name}.png").transpose(2, 0, 1).copy()).float()[None]
        with torch.no_grad():
            expected = ref(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
        assert np.abs(got - np.round(expected * 255) / 255).max() <= 1 / 255 + 1e-9


def test_mask_writes_target_and_masked_outputs(work, capsys):
    scores = work / "an_hr" / "scores.npz"
    if not scores.is_file():
        _analyze(capsys, work, work / "an_hr", "--hr", work / "hr")
    lr = work / "lr_in" / "a.png"
    if not lr.is_file():
        lr.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(lr), np.random.default_rng(4).integers(0, 256, (10, 9, 3), dtype=np.uint8))
    common = ["mask", "--baseline", work / "baseline.pth", "--target", work / "target.pth", "--scores", scores,
              "--degradation", "blur", "--input", lr, "--device", "cpu"]
    rc, _, err = run_cli(capsys, *common, "--top", "0", "--out", work / "mask0")
    assert rc == 0, err
    t0, m0 = read_png(work / "mask0" / "a_target.png"), read_png(work / "mask0" / "a_masked.png")
    np.testing.assert_array_equal(t0, m0)  # masking nothing changes nothing
    rc, _, err = run_cli(capsys, *common, "--proportion", "100", "--out", work / "mask_all")
    assert rc == 0, err
    t1, m1 = read_png(work / "mask_all" / "a_target.png"), read_png(work / "mask_all" / "a_masked.png")
    np.testing.assert_array_equal(t0, t1)
    assert np.abs(t1 - m1).max() > 2 / 255  # all filters back to the baseline's: a visible change
    # the masked output is the reference net with the baseline's kernels and the target's biases
    b = torch.load(work / "baseline.pth", weights_only=True)["params_ema"]
    t = torch.load(work / "target.pth", weights_only=True)["params_ema"]
    ref = BasicSRMSRResNet(3, 3, 4, 1, 2)
    ref.load_state_dict({k: b[k] if v.dim() == 4 else v for k, v in t.items()})
    x = torch.from_numpy(read_png(lr).transpose(2, 0, 1).copy()).float()[None]
    with torch.no_grad():
        expected = ref(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
    assert np.abs(m1 - np.round(expected * 255) / 255).max() <= 1 / 255 + 1e-9


# --------------------------------------------------------------------------------------------
# user errors: exit 2, one line, no traceback

class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _error_cases(work: Path) -> dict[str, list]:
    evil = work / "evil.pth"
    if not evil.exists():
        with open(evil, "wb") as fh:
            pickle.dump({"params": _Evil()}, fh, protocol=2)
    other = work / "other.pth"
    if not other.exists():
        save_checkpoint(other, default_registry().get("msrresnet").new_state_dict(num_feat=6, num_block=1, scale=2))
    pair = ["--baseline", work / "baseline.pth", "--target", work / "target.pth"]
    return {
        "bad path": ["analyze", "--baseline", work / "nowhere.pth", "--target", work / "target.pth",
                     "--hr", work / "hr", "--out", work / "err"],
        "bad hr folder": ["analyze", *pair, "--hr", work / "no_such_dir", "--out", work / "err"],
        "bad --degraded": ["analyze", *pair, "--gt", work / "hr", "--degraded", "blur", "--out", work / "err"],
        "mismatched pair": ["analyze", "--baseline", work / "baseline.pth", "--target", other,
                            "--hr", work / "hr", "--out", work / "err"],
        "unknown arch": ["analyze", *pair, "--arch", "edsr", "--hr", work / "hr", "--out", work / "err"],
        "malicious pickle": ["run", "--checkpoint", evil, "--input", work / "hr" / "cat.png", "--out", work / "err"],
        "missing input image": ["run", "--checkpoint", work / "target.pth", "--input", work / "nope.png",
                                "--out", work / "err"],
        "ig without clean LR": ["analyze", *pair, "--method", "ig", "--gt", work / "data" / "GT",
                                "--degraded", f"blur={work / 'data' / 'blur'}", "--out", work / "err"],
        "unknown degradation": ["mask", *pair, "--scores", work / "an_hr" / "scores.npz", "--degradation", "jpeg",
                                "--top", "1", "--input", work / "hr" / "cat.png", "--out", work / "err"],
    }


@pytest.mark.parametrize("case", ["bad path", "bad hr folder", "bad --degraded", "mismatched pair", "unknown arch",
                                  "malicious pickle", "missing input image", "unknown degradation",
                                  "ig without clean LR"])
def test_user_errors_exit_2_with_one_line(work, capsys, case):
    if case == "unknown degradation" and not (work / "an_hr" / "scores.npz").is_file():
        _analyze(capsys, work, work / "an_hr", "--hr", work / "hr")
    if case == "ig without clean LR" and not (work / "data").is_dir():
        run_cli(capsys, "degrade", "--hr", work / "hr", "--out", work / "data", "--seed", "3")
    argv = _error_cases(work)[case]
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 2, (case, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("faig-gui: error: ")
    assert "Traceback" not in err and "pwned" not in out + err
    words = {"bad path": "nowhere.pth", "bad hr folder": "no_such_dir", "bad --degraded": "NAME=DIR",
             "mismatched pair": "conv_first.weight", "unknown arch": "edsr", "malicious pickle": "evil.pth",
             "missing input image": "nope.png", "unknown degradation": "jpeg",
             "ig without clean LR": "--clean-lr"}
    assert words[case] in lines[0]


# --------------------------------------------------------------------------------------------
# real processes

def _env():
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("FAIG_GUI_PLUGIN_PATH", None)
    return env


def test_python_m_faig_gui_help():
    p = subprocess.run([sys.executable, "-m", "faig_gui", "--help"], cwd=ROOT, env=_env(),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    for command in ("degrade", "analyze", "run", "mask"):
        assert command in p.stdout


def test_degrade_takes_any_set_of_degradations(work, capsys, tmp_path):
    out = tmp_path / "three"
    rc, text, err = run_cli(capsys, "degrade", "--hr", work / "hr", "--out", out, "--degradation", "blur",
                            "--degradation", "noise=down,noise:0.05", "--degradation", "jpeg=down,jpeg:20")
    assert rc == 0, err
    assert {p.name for p in out.iterdir()} == {"GT", "LR", "blur", "noise", "jpeg"}
    lr, jpg = read_png(out / "LR" / "cat.png"), read_png(out / "jpeg" / "cat.png")
    # OpenCV's JPEG of the clean LR at quality 20, computed here from the written LR
    ok, data = cv2.imencode(".jpg", np.round(lr[..., ::-1] * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 20])
    assert ok
    np.testing.assert_array_equal(jpg, cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float64) / 255)
    assert np.std(read_png(out / "noise" / "cat.png") - lr) == pytest.approx(0.05, rel=0.3)
    rc, _, err = run_cli(capsys, "degrade", "--hr", work / "hr", "--out", tmp_path / "bad", "--degradation", "x=jpeg:20")
    assert rc == 2 and "exactly once" in err


def test_main_py_degrade_in_a_subprocess(work, tmp_path):
    p = subprocess.run([sys.executable, "main.py", "degrade", "--hr", str(work / "hr"), "--out", str(tmp_path / "d"),
                        "--seed", "3"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in (tmp_path / "d").iterdir()) == ["GT", "LR", "blur", "noise"]
    if (work / "data" / "noise" / "cat.png").is_file():  # the same seed in-process gave the same bytes
        assert (tmp_path / "d" / "noise" / "cat.png").read_bytes() == (work / "data" / "noise" / "cat.png").read_bytes()


def test_inputs_with_the_same_name_in_different_folders_do_not_overwrite(work, capsys, tmp_path):
    # `run --input data/blur/x.png data/noise/x.png`: both outputs must survive
    for sub, value in (("blur", 60), ("noise", 200)):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / "x.png"), np.full((6, 6, 3), value, np.uint8))
    inputs = [tmp_path / "blur" / "x.png", tmp_path / "noise" / "x.png"]
    rc, _, err = run_cli(capsys, "run", "--checkpoint", work / "target.pth", "--input", *inputs,
                         "--out", tmp_path / "sr", "--device", "cpu")
    assert rc == 0, err
    written = sorted((tmp_path / "sr").iterdir())
    assert len(written) == 2
    means = sorted(read_png(p).mean() for p in written)
    assert means[0] < 0.4 < means[1]  # one dark, one bright: neither was overwritten
    if not (work / "an_hr" / "scores.npz").is_file():
        _analyze(capsys, work, work / "an_hr", "--hr", work / "hr")
    rc, _, err = run_cli(capsys, "mask", "--baseline", work / "baseline.pth", "--target", work / "target.pth",
                         "--scores", work / "an_hr" / "scores.npz", "--degradation", "blur", "--top", "3",
                         "--input", *inputs, "--out", tmp_path / "m", "--device", "cpu")
    assert rc == 0, err
    assert len(list((tmp_path / "m").glob("*_target.png"))) == 2
    assert len(list((tmp_path / "m").glob("*_masked.png"))) == 2


def test_mask_montage_puts_input_target_and_masked_output_in_a_row_per_input(work, capsys):
    scores = work / "an_hr" / "scores.npz"
    if not scores.is_file():
        _analyze(capsys, work, work / "an_hr", "--hr", work / "hr")
    rng = np.random.default_rng(9)
    ins = []
    for n, (h, w) in enumerate(((10, 9), (6, 8))):
        p = work / "montage_in" / f"m{n}.png"
        p.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(p), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        ins.append(p)
    out = work / "montage_out"
    rc, _, err = run_cli(capsys, "mask", "--baseline", work / "baseline.pth", "--target", work / "target.pth",
                         "--scores", scores, "--degradation", "blur", "--proportion", "100", "--input", *ins,
                         "--out", out, "--montage", out / "montage.png", "--device", "cpu")
    assert rc == 0, err
    m = read_png(out / "montage.png")
    gap = 4
    # columns as wide as the widest cell (9 x2 = 18), rows as high as their images (20 and 12)
    assert m.shape == (gap + 20 + gap + 12 + gap, gap + 3 * (18 + gap), 3)
    y = gap
    for p, h, w in ((ins[0], 20, 18), (ins[1], 12, 16)):
        lr = read_png(p)
        oy, ox = y, (18 - w) // 2   # a narrower image is centred in its column
        cells = [m[oy:oy + h, gap + c * (18 + gap) + ox:gap + c * (18 + gap) + ox + w] for c in range(3)]
        np.testing.assert_array_equal(cells[0], np.repeat(np.repeat(lr, 2, axis=0), 2, axis=1))
        np.testing.assert_array_equal(cells[1], read_png(out / f"{p.stem}_target.png"))
        np.testing.assert_array_equal(cells[2], read_png(out / f"{p.stem}_masked.png"))
        y += h + gap
