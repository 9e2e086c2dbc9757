"""docs/api.md runs as written, and its pair gives `faig-gui analyze` the same scores.

The page's ```python blocks are executed in order in one namespace (they use plain modules no
plugin knows). Then the pair is saved, the images written as PNGs, the page's own class and
plugin block put into a plugin folder named by $FAIG_GUI_PLUGIN_PATH, and `faig-gui analyze`
run on them: its scores.npz must equal the API's scores, and its report.json's convergence
delta the API's, with the loss change checked against forwards of both models written here."""
from __future__ import annotations

import contextlib
import copy
import io
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from faig_gui.cli import main as cli_main
from faig_gui.core import registry as registry_mod
from tolerances import assert_path_sum_close, path_terms, walk

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    ns: dict = {"__name__": "docs_api"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), ns)
    ns["_stdout"] = out.getvalue()
    ns["_blocks"] = blocks
    return ns


def write_png(path: Path, t: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scaled = t[0].permute(1, 2, 0).double() * 255
    # the page's images hold 8-bit values (k / 255 in float32), so the PNG keeps them exactly
    assert torch.allclose(scaled, scaled.round(), rtol=0, atol=1e-3)
    u8 = scaled.round().clamp(0, 255).to(torch.uint8).numpy()
    cv2.imwrite(str(path), np.ascontiguousarray(u8[:, :, ::-1]))


def sse64(net, x, y) -> float:
    with torch.no_grad():
        return float(((copy.deepcopy(net).double().eval()(x.double()) - y.double()) ** 2).sum())


def test_the_page_runs_and_its_claims_hold(page):
    result, delta = page["result"], page["delta"]
    assert "TinyNet" in page and "tinynet" not in registry_mod.default_registry().names()
    assert result.degradations == ("blur", "noise") and result.scores is not None
    top = page["top"]
    # the top 1 % by the discriminative blur score, written out here
    expect = np.argsort(-result.scores["blur"], kind="stable")[: int(0.01 * result.filters.total)]
    assert list(top) == list(expect) and len(top) >= 1
    # the masked net differs from the target exactly in those kernels, which are the baseline's
    m, t, b = page["masked"].state_dict(), page["target"].state_dict(), page["baseline"].state_dict()
    for k in top:
        name, o, i = result.filters.from_global(int(k))
        assert torch.equal(m[name][o, i], b[name][o, i]) and not torch.equal(t[name][o, i], b[name][o, i])
    changed = sum(int((m[n] != t[n]).any(dim=(-1, -2)).sum()) for n in t if t[n].ndim == 4)
    assert changed == len(top)
    assert "convergence delta: max" in page["_stdout"] and delta.max_relative < 0.05


def test_analyze_on_the_pages_pair_gives_the_same_scores(page, tmp_path, monkeypatch):
    baseline, target, hr = page["baseline"], page["target"], page["hr"]
    torch.save(baseline.state_dict(), tmp_path / "baseline.pth")
    torch.save(target.state_dict(), tmp_path / "target.pth")
    write_png(tmp_path / "GT" / "img.png", hr)
    for d in ("blur", "noise"):
        write_png(tmp_path / d / "img.png", page[d])
    # the plugin: the page's own class block and plugin block
    cls = next(b for b in page["_blocks"] if "class TinyNet(nn.Module)" in b)
    plug = next(b for b in page["_blocks"] if "ARCHITECTURES" in b)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "tinynet_doc.py").write_text(cls + "\n\n" + plug, encoding="utf-8")
    monkeypatch.setenv("FAIG_GUI_PLUGIN_PATH", str(tmp_path / "plugins"))
    monkeypatch.setattr(registry_mod, "_DEFAULT", None)   # rebuilt with the folder; restored after
    out = tmp_path / "out"
    rc = cli_main(["analyze", "--baseline", str(tmp_path / "baseline.pth"), "--target", str(tmp_path / "target.pth"),
                   "--gt", str(tmp_path / "GT"), "--degraded", f"blur={tmp_path / 'blur'}",
                   "--degraded", f"noise={tmp_path / 'noise'}", "--steps", "100", "--device", "cpu",
                   "--precision", "fp32", "--arch", "tinynet", "--out", str(out)])
    assert rc == 0
    api = page["result"]
    with np.load(out / "scores.npz") as npz:
        for d in ("blur", "noise"):
            # the same float32 path sums, possibly in another chunking: the rounding of one
            # path-step gradient of this net on a 32 x 32 HR image (tests/tolerances.py)
            assert_path_sum_close(npz[d], api.scores[d], path_terms(target, 32 * 32),
                                  scale=np.abs(np.concatenate(list(api.attributions.values()))).max())
    report = json.loads((out / "report.json").read_text())
    conv = report["convergence_delta"]
    for d in ("blur", "noise"):
        x = page[d]
        loss = sse64(target, x, hr)
        change = sse64(baseline, x, hr) - loss
        # float32 forwards (3 convs of ≤ 145 terms) summed in float64: a random walk of their
        # roundings over the loss, twice (both models)
        assert conv["loss_change"][d][0] == pytest.approx(change, abs=2 * walk(3 * 145) * loss)
        # the delta: the API's from the same path sums; both carry the path sum's rounding
        api_delta = page["delta"].delta[d][0]
        assert conv["delta"][d][0] == pytest.approx(api_delta, abs=2 * walk(path_terms(target, 32 * 32)) * loss)
        assert conv["relative"][d][0] == pytest.approx(abs(conv["delta"][d][0]) / abs(conv["loss_change"][d][0]))
    assert conv["max_relative"] == max(conv["relative"]["blur"] + conv["relative"]["noise"])
    assert conv["steps_suffice"] is True
