"""Issue 18: `faig-gui analyze` over torch.distributed ranks (gloo on loopback), and what happens
when one of them dies.

The ranks are real processes started the way torchrun starts them (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT in the environment), without torchrun's agent: the failure
test then checks faig-gui's own behaviour (gloo reports the closed peer), not the agent's."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from faig_gui.cli import main
from distributed_helpers import make_pair_and_images, read_store
from faig_gui.core.registry import default_registry
from tolerances import assert_path_sum_close, gamma, network_terms, path_terms

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def analyze_argv(work: Path, out: Path, steps: int, hr: Path | None = None) -> list[str]:
    return [sys.executable, "-m", "faig_gui", "analyze", "--baseline", str(work / "baseline.pth"),
            "--target", str(work / "target.pth"), "--hr", str(hr or work / "hr"), "--steps", str(steps),
            "--device", "cpu", "--out", str(out)]


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **extra)
    e.pop("FAIG_GUI_PLUGIN_PATH", None)
    return e


def start_ranks(work: Path, out: Path, steps: int, world: int = 2, *extra: str,
                hr: Path | None = None) -> list[subprocess.Popen]:
    port = str(free_port())
    return [subprocess.Popen(analyze_argv(work, out, steps, hr) + list(extra), cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(world),
                                     LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=port))
            for r in range(world)]


def finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[tuple[int, str]]:
    out = []
    for p in procs:
        try:
            _, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
            err += "\n(test: killed after the timeout)"
        out.append((p.returncode, err))
    return out


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return make_pair_and_images(tmp_path_factory.mktemp("dist"), n_images=3)


def test_two_ranks_on_three_images_give_one_process_scores(work, tmp_path):
    steps = 4
    procs = start_ranks(work, tmp_path / "two", steps)
    # one process, in this one, while the ranks start
    assert main(analyze_argv(work, tmp_path / "one", steps)[3:]) == 0
    results = finish(procs)
    for rc, err in results:
        assert rc == 0, err
    single = dict(np.load(tmp_path / "one" / "scores.npz"))
    dist = dict(np.load(tmp_path / "two" / "scores.npz"))
    report = json.loads((tmp_path / "two" / "report.json").read_text())
    # every image exactly once, uneven shards (2 + 1), no padding
    shards = [r["images"] for r in sorted(report["ranks"], key=lambda r: r["rank"])]
    assert sorted(sum(shards, [])) == ["im0.png", "im1.png", "im2.png"]
    assert sorted(len(s) for s in shards) == [1, 2]
    assert report["world_size"] == 2 and report["backend"] == "gloo"
    assert all(r["seconds"] > 0 for r in report["ranks"])

    # the scores against a literal float64 loop over the per-image attributions the ranks stored
    per_image = read_store(tmp_path / "two" / "attributions")
    assert sorted(per_image) == ["im0", "im1", "im2"]
    for d in ("blur", "noise"):
        expected = np.zeros_like(dist[d])
        for attr in per_image.values():
            others = [attr[o] for o in attr if o != d]
            expected += (attr[d] - sum(others) / len(others)) / len(per_image)
        # float64 sums of the same three float64 vectors in another order: a few ulps
        np.testing.assert_allclose(dist[d], expected, rtol=0, atol=1e-12 * np.abs(expected).max())

    # ... and against one process over the same images: float32 path sums computed in other
    # processes, so within their rounding (tolerances.py), with the same top-1 % set
    module = default_registry().load_model(work / "target.pth").module
    scale = max(np.abs(a).max() for attr in per_image.values() for a in attr.values())
    for d in ("blur", "noise"):
        assert_path_sum_close(dist[d], single[d], path_terms(module, 16 * 16), scale=scale)
    # the convergence delta of every image, in the images' order, as one process reports it
    one_report = json.loads((tmp_path / "one" / "report.json").read_text())
    for d in ("blur", "noise"):
        got, want = report["convergence_delta"]["loss_change"][d], one_report["convergence_delta"]["loss_change"][d]
        assert len(got) == 3 and None not in got
        # L(θ̄) − L(θ) from float64 sums of float32 forwards in other processes: their rounding
        np.testing.assert_allclose(got, want, rtol=4 * gamma(network_terms(module)))
    # rank 0 wrote the files one process writes, and the store holds each image once
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert "scores.npz" in os.listdir(tmp_path / "two")


def test_a_killed_rank_stops_the_other_and_nothing_is_written(work, tmp_path):
    out = tmp_path / "killed"
    hr = tmp_path / "hr4"   # 2 images per rank: rank 1 is killed in its second
    hr.mkdir()
    for src in sorted((work / "hr").glob("*.png")):
        (hr / src.name).write_bytes(src.read_bytes())
    cv2.imwrite(str(hr / "im3.png"), np.random.default_rng(9).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    # --dist-timeout 0.25 min: a rank silent for 15 s is lost (the default waits 30 s)
    procs = start_ranks(work, out, 600, 2, "--dist-timeout", "0.25", hr=hr)
    try:
        # both ranks are past the rendezvous, and rank 1 at work on its second image (the
        # ranks keep the same pace), once rank 0 has stored its first
        deadline = time.monotonic() + 90
        while not (out / "attributions" / "im0.npz").exists():
            assert time.monotonic() < deadline, "rank 0 never finished an image"
            assert procs[0].poll() is None, procs[0].communicate()[1]
            time.sleep(0.05)
        procs[1].send_signal(signal.SIGKILL)
        (rc0, err0), _ = finish(procs, timeout=90)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert rc0 == 2, err0
    assert "rank 1 stopped answering" in err0 and "nothing was written" in err0
    assert sorted(p.name for p in out.iterdir()) == ["attributions"]   # no scores, index, report, csv
    # what rank 0 finished stays for --resume: its own two images (and rank 1's first when it was
    # done before the kill: the ranks run at the same pace, so either can come first)
    stored = {p.name for p in (out / "attributions").glob("*.npz")}
    assert {"im0.npz", "im2.npz"} <= stored <= {"im0.npz", "im1.npz", "im2.npz"}

    # a run killed part-way loses only what was in flight: one process resumes with those files
    assert main(analyze_argv(work, out, 600, hr)[3:] + ["--resume"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert {"im0.png", "im2.png"} <= set(report["resumed_images"])
    per_image = read_store(out / "attributions")
    scores = dict(np.load(out / "scores.npz"))
    for d in ("blur", "noise"):   # a literal float64 loop over the three stored images
        expected = sum(a[d] - a["noise" if d == "blur" else "blur"] for a in per_image.values()) / 4
        np.testing.assert_allclose(scores[d], expected, rtol=0, atol=1e-12 * np.abs(expected).max())


def test_rank_0_counts_every_ranks_steps():
    """The progress bar's count: what each rank published to the rendezvous's store, summed."""
    import torch
    import torch.distributed as tdist

    from faig_gui.core.distributed import DistContext
    kv = tdist.TCPStore("127.0.0.1", free_port(), 1, True, wait_for_workers=False)
    ranks = [DistContext(r, 2, r, torch.device("cpu"), "gloo", None, kv, "faig-gui/0") for r in range(2)]
    assert ranks[0].steps_done() == 0          # nothing published yet: no wait, no error
    ranks[0].publish(30)
    assert ranks[0].steps_done() == 30
    ranks[1].publish(12)
    ranks[1].publish(20)                       # a count replaces the rank's previous one
    assert ranks[0].steps_done() == 50


def test_evaluate_on_two_ranks_measures_shares_of_the_held_out_images(work, tmp_path):
    import math

    from tolerances import effect_atol, forward_atol
    held = tmp_path / "held"
    held.mkdir()
    for i, src in enumerate(sorted((work / "hr").glob("*.png"))):   # 3 held-out images: 2 + 1
        (held / f"h{i}.png").write_bytes(src.read_bytes())
    argv = ["evaluate", "--baseline", str(work / "baseline.pth"), "--target", str(work / "target.pth"),
            "--hr", str(held), "--analysis-hr", str(work / "hr"), "--methods", "abs,random",
            "--proportions", "1,10", "--device", "cpu"]
    port = str(free_port())
    procs = [subprocess.Popen([sys.executable, "-m", "faig_gui", *argv, "--out", str(tmp_path / "two")], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                                      MASTER_PORT=port)) for r in range(2)]
    assert main([*argv, "--out", str(tmp_path / "one")]) == 0
    for rc, err in finish(procs):
        assert rc == 0, err
    one = json.loads((tmp_path / "one" / "report.json").read_text())
    two = json.loads((tmp_path / "two" / "report.json").read_text())
    assert two["heldout_images"] == one["heldout_images"] == ["h0.png", "h1.png", "h2.png"]
    assert two["world_size"] == 2 and one["world_size"] == 1
    # each masked output is a float32 forward in another process: off by ≤ forward_atol each,
    # 2x between the two runs; the effect moves by at most effect_atol of that
    delta_y = 2 * forward_atol(default_registry().load_model(work / "target.pth").module)
    n = 0
    for m in ("abs", "random"):
        for p in one["effects"][m]:
            for d in ("blur", "noise"):
                for e in ("blur", "noise"):
                    a, b = one["effects"][m][p][d][e], two["effects"][m][p][d][e]
                    # mean|Δg| ≤ sqrt(mean Δg²) = sqrt(effect / 1000) (Jensen)
                    assert abs(a - b) <= effect_atol(math.sqrt(a / 1000), delta_y) + 1e-12 * a, (m, p, d, e)
                    n += 1
    assert n == 16
    for table in ("psnr", "psnr_y"):   # RGB and luma, both gathered from the ranks' shares
        assert set(one[table]) == set(two[table]) == {"baseline", "target"}
        for label in ("baseline", "target"):
            for e, v in one[table][label].items():
                rmse = 10 ** (-v / 20)
                # outputs within delta_y move the RMSE (the luma's too: its weights sum to < 1) by
                # ≤ delta_y: that many dB
                assert two[table][label][e] == pytest.approx(v, abs=20 * math.log10(1 + delta_y / rmse) + 1e-9)
