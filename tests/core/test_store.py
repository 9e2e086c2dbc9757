"""Issue 18: long runs survive interruption. Each finished image's attributions are stored as it
completes; --resume takes them instead of computing them again, and refuses files made with
other models or settings."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from distributed_helpers import make_pair_and_images, read_store
from faig_gui.cli import main
from faig_gui.core.analysis import AnalysisConfig, AnalysisResult, analyze, run_to_end
from faig_gui.core.attribution import Cancelled, PathOptions, faig_attribution
from faig_gui.core.dataset import load_hr_folder, make_degraded
from faig_gui.core.degradations import paper_degradations
from faig_gui.core.errors import FaigError
from faig_gui.core.registry import default_registry
from faig_gui.core.store import AttributionStore

STEPS = 3


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    work = make_pair_and_images(tmp_path_factory.mktemp("store"), n_images=3)
    reg = default_registry()
    baseline, target = reg.load_pair(work / "baseline.pth", work / "target.pth")
    images = make_degraded(load_hr_folder(work / "hr"), 2, paper_degradations(), seed=0)
    return work, baseline, target, images


def test_an_interrupted_run_resumes_with_the_scores_of_an_uninterrupted_one(setup, tmp_path):
    work, baseline, target, images = setup
    config = AnalysisConfig(steps=STEPS, device="cpu")
    seen = []

    def stop_after_first_image() -> bool:   # asked between path chunks: stops inside image 2
        return len(seen) >= 2

    with pytest.raises(Cancelled):
        for item in analyze(baseline, target, images, config, should_stop=stop_after_first_image,
                            store=AttributionStore(tmp_path)):
            seen.append(item)
    assert sorted(p.name for p in (tmp_path / "attributions").iterdir()) == ["im0.npz"]

    # the stored image equals a direct computation (float64 on disk, bit for bit)
    stored = read_store(tmp_path / "attributions")["im0"]
    direct = faig_attribution(target.module, baseline.state_dict, target.state_dict, images[0].lr["blur"],
                              images[0].hr, options=PathOptions.paper(STEPS))
    np.testing.assert_array_equal(stored["blur"], direct)   # same process, same arithmetic

    store = AttributionStore(tmp_path, resume=True)
    computed = []
    resumed = None
    for item in analyze(baseline, target, images, config, store=store):
        if isinstance(item, AnalysisResult):
            resumed = item
        else:
            computed.append(item.message)
    assert store.loaded == ["im0.png"] and store.written == ["im1.png", "im2.png"]
    assert resumed.notes["resumed_images"] == ["im0.png"]
    whole = run_to_end(analyze(baseline, target, images, config))
    for d in ("blur", "noise"):
        # the same float32 computations in the same process: identical up to the float64 mean
        np.testing.assert_allclose(resumed.scores[d], whole.scores[d], rtol=0,
                                   atol=1e-12 * np.abs(whole.scores[d]).max())


def _cli(work, out, *extra) -> int:
    return main([str(a) for a in ("analyze", "--baseline", work / "baseline.pth", "--target", work / "target.pth",
                                  "--hr", work / "hr", "--steps", STEPS, "--device", "cpu", "--out", out, *extra)])


@pytest.mark.parametrize("change,words", [
    (["--steps", "2"], "steps: 3 in the file, 2 in this run"),
    (["--rule", "gauss-legendre"], "rule"),
    (["--noise-sigma", "0.2"], "images_made"),
    (["--precision", "bf16"], "precision"),
])
def test_resume_refuses_files_made_with_other_settings(setup, tmp_path, capsys, change, words):
    work = setup[0]
    assert _cli(work, tmp_path) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "attributions").iterdir()}
    capsys.readouterr()
    argv = list(change)
    if "--steps" in argv:   # the changed value replaces the fixture's
        assert main([str(a) for a in ("analyze", "--baseline", work / "baseline.pth", "--target",
                                      work / "target.pth", "--hr", work / "hr", "--device", "cpu",
                                      "--out", tmp_path, "--resume", *argv)]) == 2
    else:
        assert _cli(work, tmp_path, "--resume", *argv) == 2
    err = capsys.readouterr().err
    assert "made with other models or settings" in err and words in err and "--resume" in err
    # nothing the refused run touched
    assert {p.name: p.read_bytes() for p in (tmp_path / "attributions").iterdir()} == before


def test_resume_refuses_another_model_and_other_pixels(setup, tmp_path, capsys):
    work = setup[0]
    assert _cli(work, tmp_path) == 0
    other = work / "other_target.pth"
    sd = torch.load(work / "target.pth", weights_only=True)
    torch.save({k: {n: t + 0.01 for n, t in v.items()} if isinstance(v, dict) else v for k, v in sd.items()}, other)
    capsys.readouterr()
    rc = main([str(a) for a in ("analyze", "--baseline", work / "baseline.pth", "--target", other, "--hr",
                                work / "hr", "--steps", STEPS, "--device", "cpu", "--out", tmp_path, "--resume")])
    assert rc == 2 and "target:" in capsys.readouterr().err

    # same settings, but the image was edited since: its hash differs
    store = AttributionStore(tmp_path, resume=True, extra={"images_made": {"scale": 2, "source": "hr", "blur_sigma": 2.0,
                                                                           "noise_sigma": 0.1, "seed": 0}})
    _, baseline, target, images = setup
    edited = make_degraded({"im0.png": np.zeros((16, 16, 3), np.float32)}, 2, paper_degradations(), seed=0)
    with pytest.raises(FaigError, match="another version of image 'im0.png'"):
        run_to_end(analyze(baseline, target, edited, AnalysisConfig(steps=STEPS, device="cpu", precision="auto"),
                           store=store))


def test_a_damaged_file_is_named_in_the_error(setup, tmp_path, capsys):
    work = setup[0]
    assert _cli(work, tmp_path) == 0
    (tmp_path / "attributions" / "im1.npz").write_bytes(b"not a zip")
    capsys.readouterr()
    assert _cli(work, tmp_path, "--resume") == 2
    err = capsys.readouterr().err
    assert "im1.npz: not a readable attribution file" in err
    report = json.loads((tmp_path / "report.json").read_text())   # the first run's, untouched
    assert report["resumed_images"] == []


def test_ctrl_c_stops_the_command_and_resume_finishes_it(setup, tmp_path):
    """A real `faig-gui analyze` process, interrupted with SIGINT (Ctrl-C) once its first image is
    stored: it exits 130 and writes no scores; --resume then computes only the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    work = setup[0]
    root = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "-m", "faig_gui", "analyze", "--baseline", str(work / "baseline.pth"), "--target",
            str(work / "target.pth"), "--hr", str(work / "hr"), "--steps", "400", "--device", "cpu",
            "--out", str(tmp_path)]
    proc = subprocess.Popen(argv, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1"))
    try:
        deadline = time.monotonic() + 90
        while not (tmp_path / "attributions" / "im0.npz").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = sorted(p.name for p in (tmp_path / "attributions").glob("*.npz"))
    if proc.returncode == 0:   # the machine was so fast that the run ended before the signal came
        pytest.skip("the run finished before Ctrl-C reached it")
    assert proc.returncode == 130 and "interrupted" in err, err
    assert not (tmp_path / "scores.npz").exists() and not (tmp_path / "report.json").exists()
    assert "im0.npz" in done and len(done) < 3
    assert main([str(a) for a in argv[3:]] + ["--resume"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["resumed_images"] == [f"{Path(n).stem}.png" for n in done]
    per_image = read_store(tmp_path / "attributions")
    scores = dict(np.load(tmp_path / "scores.npz"))
    for d, o in (("blur", "noise"), ("noise", "blur")):   # a literal float64 loop over the stored images
        expected = sum(a[d] - a[o] for a in per_image.values()) / len(per_image)
        np.testing.assert_allclose(scores[d], expected, rtol=0, atol=1e-12 * np.abs(expected).max())
