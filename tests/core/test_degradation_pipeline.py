"""Degradations as data: named pipelines of steps, their command-line form, JPEG through
OpenCV's encoder, and round trips through sessions. References are written here: the paper's
chain by hand, JPEG through cv2.imwrite / cv2.imread of a real file."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from faig_gui.core.degradations import (Degradation, Step, degrade, downsample, gaussian_blur, parse_degradation,
                                        parse_degradations, quantize, seeded_generator)
from faig_gui.core.errors import FaigError


def hr_image(side: int = 32, seed: int = 0) -> torch.Tensor:
    # smooth content with edges: JPEG's blocks and blur both show on it
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    base = torch.stack([torch.sin(6 * xx), torch.cos(5 * yy), (xx > 0.5).float()]) * 0.4 + 0.5
    return (base + 0.05 * torch.rand(3, side, side, generator=g))[None].clamp(0, 1)


def test_the_command_line_form_parses_into_steps_in_order():
    d = parse_degradation("jpeg=down,jpeg:30")
    assert d.name == "jpeg" and d.steps == (Step("down"), Step("jpeg", 30.0))
    assert d.jpeg_quality == 30 and d.blur_sigma is None and d.noise_sigma is None
    mix = parse_degradation(" bn = blur:1.5 , down, noise:0.05, jpeg:75 ")
    assert [s.kind for s in mix.steps] == ["blur", "down", "noise", "jpeg"]
    assert (mix.blur_sigma, mix.noise_sigma, mix.jpeg_quality) == (1.5, 0.05, 75)
    assert mix.spec() == "bn=blur:1.5,down,noise:0.05,jpeg:75"
    assert parse_degradation(mix.spec()) == mix
    assert mix.describe() == "blur σ=1.5 + noise σ=0.05 + JPEG q=75"
    # the built-in names are the paper's defaults
    assert parse_degradation("blur").steps == (Step("blur", 2.0), Step("down"))
    assert parse_degradation("noise").steps == (Step("down"), Step("noise", 0.1))


@pytest.mark.parametrize("text, words", [
    ("x=blur:2", "exactly once"), ("x=down,down", "exactly once"), ("x=down,sharpen:2", "unknown degradation step"),
    ("x=down,jpeg:0", "1..100"), ("x=down,jpeg:30.5", "whole number"), ("x=down,noise", "needs a value"),
    ("x=down,noise:-1", "positive"), ("=down", "give it a name"), ("x=down,blur:a", "no number"),
    ("foggy", "built-in names"), ("x=down:2", "takes no value")])
def test_bad_specs_say_what_is_wrong(text, words):
    with pytest.raises(FaigError, match=words):
        parse_degradation(text)


def test_a_set_of_degradations_needs_distinct_names_and_defaults_to_the_papers():
    assert [d.name for d in parse_degradations(None)] == ["blur", "noise"]
    assert [d.name for d in parse_degradations([], 1.0, 0.2)] == ["blur", "noise"]
    assert parse_degradations([], 1.0, 0.2)[0].blur_sigma == 1.0
    three = parse_degradations(["blur", "noise", "jpeg=down,jpeg:30"])
    assert [d.name for d in three] == ["blur", "noise", "jpeg"]
    with pytest.raises(FaigError, match="must differ"):
        parse_degradations(["a=down", "a=down,noise:0.1"])
    with pytest.raises(FaigError, match="undegraded"):
        parse_degradations(["clean=down"])


def test_a_pipeline_in_the_papers_order_gives_the_papers_images():
    hr = hr_image()
    paper = Degradation("bn", blur_sigma=2.0, noise_sigma=0.1)
    written = parse_degradation("bn=blur:2,down,noise:0.1")
    a = degrade(hr, 2, paper, seeded_generator(3))
    b = degrade(hr, 2, written, seeded_generator(3))
    assert torch.equal(a, b)
    # and both are the chain written out by hand
    g = seeded_generator(3)
    x = downsample(gaussian_blur(hr, 2.0), 2)
    by_hand = quantize(x + 0.1 * torch.randn(x.shape, generator=g))
    assert torch.equal(a, by_hand)


def test_the_order_of_the_steps_is_kept():
    hr = hr_image()
    before = degrade(hr, 2, parse_degradation("a=blur:1,down"))
    after = degrade(hr, 2, parse_degradation("b=down,blur:1"))
    assert torch.equal(after, quantize(gaussian_blur(downsample(hr, 2), 1.0)))
    assert (before - after).abs().max() > 2 / 255


def test_jpeg_is_opencvs_encoder_at_that_quality(tmp_path):
    hr = hr_image(48)
    got = degrade(hr, 2, parse_degradation("j=down,jpeg:30"))
    # independently: the 8-bit LR written by cv2.imwrite as a JPEG file and read back
    lr8 = (quantize(downsample(hr, 2))[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path = tmp_path / "lr.jpg"
    assert cv2.imwrite(str(path), lr8[..., ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 30])
    ref = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255
    np.testing.assert_array_equal(got[0].permute(1, 2, 0).numpy(), ref)   # both exact k/255 levels
    # a lower quality loses more
    q90 = degrade(hr, 2, parse_degradation("j=down,jpeg:90"))
    clean = quantize(downsample(hr, 2))
    assert (got - clean).abs().mean() > 1.5 * (q90 - clean).abs().mean() > 0


def test_degradations_round_trip_through_json():
    for d in (Degradation("blur", 2.0), Degradation("n", noise_sigma=0.2, jpeg_quality=80),
              parse_degradation("odd=down,jpeg:40,blur:0.7"), Degradation("clean")):
        back = Degradation.from_dict(json.loads(json.dumps(d.to_dict())))
        assert back == d and back.steps == d.steps


def test_a_session_keeps_a_jpeg_degradation(tmp_path):
    from faig_gui.core.session import AnalysisSettings, Session
    s = Session()
    s.settings = AnalysisSettings([Degradation("blur", 2.0), parse_degradation("jpeg=down,jpeg:30")])
    path = tmp_path / "s.faig"
    s.save(path)
    t = Session.open(path)
    assert [d.spec() for d in t.settings.degradations] == ["blur=blur:2,down", "jpeg=down,jpeg:30"]
