"""`faig-gui mask --scores` takes the FAIG authors' ranked lists (``<degradation>_index.txt``, one
0-based filter index per line, best first) as well as scores.npz; ``--scores`` alone uses the
bundled demo pair (issue 15)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from faig_gui.cli import main
from faig_gui.core.demo import demo_files
from faig_gui.core.results import write_scores
from reference_nets import BasicSRMSRResNet

TOP = 2000   # of the demo's 21,696 filters: enough to change the output visibly


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def read_png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1].astype(np.float64) / 255


@pytest.fixture(scope="module")
def ranked(tmp_path_factory):
    """Random scores for the demo pair as scores.npz, the same ranking as the authors write it
    (np.savetxt of the descending argsort, '%d'), and a small input crop."""
    d = tmp_path_factory.mktemp("rankings")
    demo = demo_files()
    sd = torch.load(demo.target, weights_only=True)["params_ema"]
    total = sum(v.shape[0] * v.shape[1] for k, v in sd.items() if k.endswith("weight") and v.dim() == 4)
    scores = np.random.default_rng(7).standard_normal(total)
    write_scores(d / "scores.npz", {"blur": scores})
    order = np.argsort(scores)[::-1]          # as the authors' faig.py sorts
    np.savetxt(d / "blur_index.txt", order, delimiter=",", fmt="%d")
    lr = cv2.imread(str(sorted((demo.heldout / "LR").glob("*.png"))[0]), cv2.IMREAD_COLOR)[40:54, 40:52]
    cv2.imwrite(str(d / "in.png"), lr)
    return d, order, total


def test_an_index_file_masks_the_same_filters_as_the_same_ranking_as_scores(ranked, capsys):
    d, order, _total = ranked
    common = ["mask", "--top", TOP, "--input", d / "in.png", "--device", "cpu"]
    # --scores alone: the bundled demo pair; the degradation comes from the file's name
    rc, out, err = run_cli(capsys, *common, "--scores", d / "blur_index.txt", "--out", d / "from_index")
    assert rc == 0, err
    assert f"masked {TOP} 'blur' filters" in out
    rc, _, err = run_cli(capsys, *common, "--scores", d / "scores.npz", "--degradation", "blur",
                         "--out", d / "from_npz")
    assert rc == 0, err
    for name in ("in_target.png", "in_masked.png"):
        assert (d / "from_index" / name).read_bytes() == (d / "from_npz" / name).read_bytes()
    # and they are the listed filters: the first TOP indices of the file put back to the baseline's
    # kernels, with the global numbering spelled out here (every 4-D weight in state-dict order,
    # o-major then i)
    demo = demo_files()
    base = torch.load(demo.baseline, weights_only=True)["params_ema"]
    targ = torch.load(demo.target, weights_only=True)["params_ema"]
    where = []
    for name, w in targ.items():
        if name.endswith("weight") and w.dim() == 4:
            for o in range(w.shape[0]):
                for i in range(w.shape[1]):
                    where.append((name, o, i))
    masked = {k: v.clone() for k, v in targ.items()}
    for k in order[:TOP]:
        name, o, i = where[int(k)]
        masked[name][o, i] = base[name][o, i]
    net = BasicSRMSRResNet(3, 3, targ["conv_first.weight"].shape[0],
                           sum(1 for k in targ if k.startswith("body.") and k.endswith(".conv1.weight")), 2)
    net.load_state_dict(masked)
    x = torch.from_numpy(read_png(d / "in.png").transpose(2, 0, 1).copy()).float()[None]
    with torch.no_grad():
        expected = net(x)[0].clamp(0, 1).permute(1, 2, 0).numpy()
    got, target_out = read_png(d / "from_index" / "in_masked.png"), read_png(d / "from_index" / "in_target.png")
    # float32 forward vs the command's own: outputs may round to the neighbouring 8-bit level
    assert np.abs(got - np.round(expected * 255) / 255).max() <= 1 / 255 + 1e-9
    assert np.abs(got - target_out).max() > 2 / 255   # the mask did something to check


@pytest.mark.parametrize("case", ["one short", "one twice", "not numbers"])
def test_an_index_file_that_does_not_fit_the_model_is_a_one_line_error(ranked, capsys, case):
    d, order, total = ranked
    bad = d / f"bad_{case.replace(' ', '_')}_index.txt"
    if case == "one short":
        np.savetxt(bad, order[:-1], fmt="%d")
    elif case == "one twice":
        np.savetxt(bad, np.concatenate([order[:-1], order[:1]]), fmt="%d")
    else:
        bad.write_text("conv_first.weight 0 0\n")
    rc, out, err = run_cli(capsys, "mask", "--scores", bad, "--top", 3, "--input", d / "in.png",
                           "--out", d / "err", "--device", "cpu")
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("faig-gui: error: ") and bad.name in lines[0], err
    expected = {"one short": f"lists {total - 1} filters, the model has {total}",
                "one twice": f"filter {order[0]} is listed 2 times",
                "not numbers": "not a list of filter indices"}[case]
    assert expected in lines[0]
    assert not (d / "err" / "in_masked.png").exists()


def test_the_flag_names_the_degradation_of_a_list_and_picks_one_of_several(ranked, capsys):
    d, _order, _total = ranked
    common = ["mask", "--top", 3, "--input", d / "in.png", "--device", "cpu", "--out", d / "flag"]
    rc, out, err = run_cli(capsys, *common, "--scores", d / "blur_index.txt", "--degradation", "noise")
    assert rc == 0 and "masked 3 'noise' filters" in out, err
    # the demo's scores rank blur and noise: without --degradation the command cannot choose
    rc, out, err = run_cli(capsys, *common)
    assert rc == 2 and "--degradation" in err and "blur" in err and "noise" in err
