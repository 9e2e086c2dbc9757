"""scripts/eval_prediction.py's per-picture table: exact labels counted per held-out picture and class."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from eval_prediction import per_picture  # noqa: E402


def test_per_picture_counts_exact_label_sets_per_picture_and_class():
    records = [
        {"picture": "cell", "class": "noise", "truth": ["noise"], "labels": ["noise"]},
        {"picture": "cell", "class": "noise", "truth": ["noise"], "labels": ["blur", "noise"]},   # a set too many
        {"picture": "cell", "class": "clean", "truth": [], "labels": []},
        {"picture": "text", "class": "blur+noise", "truth": ["blur", "noise"], "labels": ["noise", "blur"]},  # order free
        {"picture": "text", "class": "blur+noise", "truth": ["blur", "noise"], "labels": ["noise"]},
    ]
    got = per_picture(records)
    # counted by hand from the five records above
    assert got == {"cell": {"noise": (1, 2), "clean": (1, 1)}, "text": {"blur+noise": (1, 2)}}


def test_native_softness_flags_pictures_whose_clean_crops_read_as_soft_as_blurred_ones():
    from eval_prediction import native_softness

    def rec(picture, cls, value):
        return {"picture": picture, "class": cls, "spectral_blur": value, "truth": [], "labels": []}

    records = ([rec("chelsea", "clean", v) for v in (0.3, 0.4, 0.5)]
               + [rec("cell", "clean", v) for v in (1.4, 1.6, 1.9)]
               + [rec("chelsea", "blur", v) for v in (1.0, 1.1)]
               + [rec("cell", "blur", v) for v in (1.7, 2.0)]
               + [rec("chelsea", "noise", 3.0)])   # other classes do not count
    got = native_softness(records)
    # by hand: blurred crops 1.0, 1.1, 1.7, 2.0 -> median 1.4; clean medians 0.4 and 1.6
    assert got["blurred"] == pytest.approx(1.4)
    assert got["pictures"] == pytest.approx({"chelsea": 0.4, "cell": 1.6})
    assert got["soft"] == ["cell"]
    # an older run's records carry no spectral blur: nothing is said
    assert native_softness([{k: v for k, v in r.items() if k != "spectral_blur"} for r in records]) == {}


def _records(picture, cls, right, wrong):
    """``right`` records whose label set is their truth and ``wrong`` ones that are not."""
    ok = {"picture": picture, "class": cls, "truth": ["noise"], "labels": ["noise"]}
    bad = {"picture": picture, "class": cls, "truth": ["noise"], "labels": ["blur", "noise"]}
    return [dict(ok) for _ in range(right)] + [dict(bad) for _ in range(wrong)]


def test_sampling_interval_resamples_within_each_picture_and_class():
    from eval_prediction import correct, sampling_interval

    def accuracy(rs):
        return sum(correct(r) for r in rs) / len(rs)

    # one picture always right, one right half the time, 200 crops each: resampled within the
    # pictures, only the second moves, so the pooled accuracy's standard deviation is
    # sqrt(200 * 0.25) / 400 (not sqrt(0.75 * 0.25 / 400), which pooling the pictures would give)
    records = _records("text", "noise", 200, 0) + _records("cell", "noise", 100, 100)
    lo, hi = sampling_interval(records, accuracy, resamples=4000)
    half = 1.6449 * (200 * 0.25) ** 0.5 / 400   # the normal 90 % half-width, 0.0291
    assert lo == pytest.approx(0.75 - half, abs=0.004)
    assert hi == pytest.approx(0.75 + half, abs=0.004)
    # groups that never vary give no spread at all
    assert sampling_interval(_records("text", "noise", 30, 0) + _records("cell", "noise", 0, 30),
                             accuracy, resamples=200) == (0.5, 0.5)


def test_calibrated_ece_is_the_binomial_floor_of_a_finite_sample():
    from eval_prediction import calibrated_ece

    # 400 probabilities of 0.5 fall in one bin: a calibrated predictor's ECE there is
    # |frequency - 0.5|, whose mean over Bernoulli draws is sqrt(0.25 / 400) * sqrt(2 / pi) = 0.0199
    # and whose 95th percentile is 1.96 * sqrt(0.25 / 400) = 0.049
    records = [{"scores": {"blur": 0.5, "noise": 0.5}} for _ in range(200)]
    mean, high = calibrated_ece(records, ["blur", "noise"], resamples=4000)
    assert mean == pytest.approx(0.025 * (2 / 3.141592653589793) ** 0.5, abs=0.0015)
    assert high == pytest.approx(1.96 * 0.025, abs=0.004)
    # probabilities of 0 and 1 are outcomes already: nothing to spread
    sure = [{"scores": {"blur": 0.0, "noise": 1.0}} for _ in range(50)]
    assert calibrated_ece(sure, ["blur", "noise"], resamples=50) == (0.0, 0.0)


def test_ideal_observer_likelihood_is_the_rician_one():
    from scipy.stats import rice

    from oracle_blur_under_noise import rice_loglik

    rng = np.random.default_rng(3)
    power = 2.5                                    # E|n|^2 per bin: each real part has variance power / 2
    a0, a1 = rng.uniform(0, 4, 50), rng.uniform(0, 4, 50)
    r = rng.uniform(0.1, 6, 50)
    scale = (power / 2) ** 0.5
    want = (rice.logpdf(r, a1 / scale, scale=scale) - rice.logpdf(r, a0 / scale, scale=scale)).sum()
    # the terms in r alone cancel in the ratio
    assert rice_loglik(r, a1, power) - rice_loglik(r, a0, power) == pytest.approx(want, rel=1e-9)


def test_ideal_observer_tells_blur_under_noise_where_the_detail_stands_above_it():
    import torch

    from faig_gui.core.degradations import gaussian_blur
    from oracle_blur_under_noise import observer_says_blur

    gen = torch.Generator().manual_seed(0)
    texture = torch.rand(1, 3, 64, 64, generator=gen, dtype=torch.float64)   # detail at every frequency
    clean = texture[0].numpy()
    blurred = gaussian_blur(texture, 1.0)[0].numpy()
    rng = np.random.default_rng(0)
    for truth, base in ((False, clean), (True, blurred)):
        for _ in range(5):
            assert observer_says_blur(base + rng.normal(0, 0.05, base.shape), clean, blurred, 0.05) == truth
    # a flat picture has nothing a blur could take: both hypotheses are one, never "blurred"
    flat = np.full((3, 64, 64), 0.5)
    assert not observer_says_blur(flat + rng.normal(0, 0.05, flat.shape), flat, flat, 0.05)


def _verdict(picture: str, cls: str, truth: list[str], p_blur: float, noise_found: bool = True) -> dict:
    labels = (["blur"] if p_blur >= 0.5 else []) + (["noise"] if noise_found else [])
    return {"picture": picture, "class": cls, "truth": truth, "labels": labels,
            "scores": {"blur": p_blur, "noise": 0.9 if noise_found else 0.1}}


def test_threshold_bound_is_the_best_split_that_keeps_the_second_class_at_its_floor():
    from eval_prediction import threshold_bound
    noise = [_verdict("a", "noise", ["noise"], p) for p in (0.1, 0.3, 0.6, 0.7)]
    noise.append(_verdict("a", "noise", ["noise"], 0.05, noise_found=False))   # wrong whatever the blur threshold
    both = [_verdict("a", "blur+noise", ["blur", "noise"], p) for p in (0.55, 0.65, 0.8, 0.9)]
    got = threshold_bound(noise + both, "noise", "blur+noise", "blur", 0.75)
    # by hand: 3 of the 4 blur+noise inputs keep blur for any t <= 0.65; the most noise-only inputs
    # below such a t are 0.1, 0.3 and 0.6 (not 0.05's, whose noise was missed): 3 of 5, for t between
    # 0.6 and 0.65, the midpoint tried; at 0.5: 0.1, 0.3 (2 of 5) and all 4 blur+noise inputs
    assert got is not None
    assert got["negative_accuracy"] == pytest.approx(3 / 5)
    assert got["positive_accuracy"] == pytest.approx(3 / 4)
    assert got["threshold"] == pytest.approx(0.625)
    assert got["at_half"] == (pytest.approx(2 / 5), pytest.approx(1.0))
    # a floor no threshold reaches (more than every input), or a class absent: no bound
    assert threshold_bound(noise + both, "noise", "blur+noise", "blur", 1.01) is None
    assert threshold_bound(noise, "noise", "blur+noise", "blur", 0.5) is None


def test_threshold_bounds_also_leave_out_the_picture_with_the_most_misses():
    from eval_prediction import threshold_bounds
    records = [_verdict("sharp", "noise", ["noise"], 0.2), _verdict("sharp", "blur+noise", ["blur", "noise"], 0.9),
               _verdict("soft", "noise", ["noise"], 0.8), _verdict("soft", "blur+noise", ["blur", "noise"], 0.7),
               _verdict("soft", "noise", ["noise"], 0.75)]
    rows = [b for b in threshold_bounds(records) if b["negative"] == "noise"]
    assert [b["without"] for b in rows] == [None, "soft"]   # soft: 2 misses, sharp: none
    # every picture, blur+noise kept at 85 %: both its inputs (t <= 0.7), so no noise-only input of
    # soft (0.75, 0.8) falls below t: only sharp's 0.2, 1 of 3
    assert rows[0]["negative_accuracy"] == pytest.approx(1 / 3)
    assert rows[1]["negative_accuracy"] == pytest.approx(1.0) and rows[1]["positive_accuracy"] == pytest.approx(1.0)
