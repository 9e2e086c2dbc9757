"""The predictor on the bundled demo pair (a target really fine-tuned for blur and noise): a
blurry held-out image is labelled blur, a noisy one noise. Held-out images: none of them is among
the calibration's analysis images."""
from __future__ import annotations

import pytest

from faig_gui.core.dataset import load_hr_folder
from faig_gui.core.degradations import degrade, paper_degradations, seeded_generator
from faig_gui.core.demo import demo_files
from faig_gui.core.imageio import read_image, to_tensor
from faig_gui.core.prediction import Predictor, PredictorConfig
from faig_gui.core.registry import default_registry
from faig_gui.core.results import read_scores


@pytest.fixture(scope="module")
def demo_predictor():
    demo = demo_files()
    baseline, target = default_registry().load_pair(demo.baseline, demo.target)
    # a small calibration (two 48² crops of the analysis images, two levels, one noise draw):
    # seconds instead of the minute the full one takes; the verdicts below keep wide margins
    hr = [to_tensor(v)[..., 32:80, 32:80] for v in list(load_hr_folder(demo.analysis / "GT").values())[:2]]
    config = PredictorConfig(levels=(0.5, 1.0), seeds=1, device="cpu")
    return Predictor(baseline, target, read_scores(demo.scores), hr, paper_degradations(), config, cache=False)


@pytest.mark.parametrize("name", ["camera", "coffee"])
def test_a_blurry_image_is_labelled_blur_and_a_noisy_one_noise(demo_predictor, name):
    demo = demo_files()
    assert name not in {p.stem for p in (demo.analysis / "GT").iterdir()}
    hr = to_tensor(read_image(demo.heldout / "GT" / f"{name}.png"))[..., :128, :128]
    by_name = {d.name: d for d in paper_degradations()}   # blur σ 2 and noise σ 0.1, as analysed
    blurry = degrade(hr, 2, by_name["blur"], seeded_generator(5))
    noisy = degrade(hr, 2, by_name["noise"], seeded_generator(5))
    got = demo_predictor.predict(blurry)
    assert got.labels == ["blur"], got.scores
    assert got.scores["blur"] > 0.5 > got.scores["noise"]
    assert set(got.strength) == {"blur"}
    got = demo_predictor.predict(noisy)
    assert got.labels == ["noise"], got.scores
