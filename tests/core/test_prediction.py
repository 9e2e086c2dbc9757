"""Degradation prediction: each evidence against a literal computation written here, the decision
and strength curve on hand-made calibrations, and the predictor end to end on tiny pairs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from faig_gui.core.degradations import Degradation, degrade, downsample, paper_degradations, seeded_generator
from faig_gui.core.errors import FaigError
from faig_gui.core.prediction import (PROBE_STEP, REFERENCE_SEED, Calibration, EvidenceModel, Predictor, PredictorConfig, Sample,
                                      _LayerProbe, calibration_plan, classical_estimates, combine, tiles)
from prediction_helpers import make_pair, smooth_hr, write_predict_inputs
from reference_nets import BasicSRMSRResNet
from tolerances import effect_atol, forward_atol, gamma, network_terms

# --------------------------------------------------------------------------------------------
# tiny pairs


def literal_filters(sd):
    """[(layer name, out, in)] in the global numbering, by walking the state dict."""
    out = []
    for name, v in sd.items():
        if name.endswith("weight") and v.dim() == 4:
            for o in range(v.shape[0]):
                for i in range(v.shape[1]):
                    out.append((name, o, i))
    return out


def literal_top(scores, proportion):
    count = int(len(scores) * proportion / 100)
    return sorted(range(len(scores)), key=lambda k: (-scores[k], k))[:count]


def correlate_same(feature: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2-D cross-correlation with zero padding, output the input's size, by explicit loops."""
    h, w = feature.shape
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            acc = 0.0
            for a in range(kh):
                for b in range(kw):
                    yy, xx = y + a - ph, x + b - pw
                    if 0 <= yy < h and 0 <= xx < w:
                        acc += feature[yy, xx] * kernel[a, b]
            out[y, x] = acc
    return out


def reference_features(sd, x):
    """Input feature map of every conv of an independently built MSRResNet."""
    net = BasicSRMSRResNet(3, 3, sd["conv_first.weight"].shape[0], 1, 2)
    net.load_state_dict(sd)
    net.eval()
    seen = {}
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_pre_hook(lambda _m, inp, name=name: seen.__setitem__(name + ".weight", inp[0].detach()))
    with torch.no_grad():
        y = net(x)
    return seen, y


def literal_change_response(base_sd, targ_sd, x, filters, step=PROBE_STEP):
    """Σ over the filters of the mean square of conv(feature_i, Δ) over every ``step``-th row
    and column of the output (the predictor measures a subset of the positions)."""
    feats, _ = reference_features(targ_sd, x)
    total = np.zeros(x.shape[0])
    for name, o, i in filters:
        delta = (targ_sd[name][o, i] - base_sd[name][o, i]).double().numpy()
        for b in range(x.shape[0]):
            r = correlate_same(feats[name][b, i].double().numpy(), delta)[::step, ::step]
            total[b] += (r * r).mean()
    return total


def response_rtol(module) -> float:
    """A change response against its literal: the features on both sides are float32 forwards
    of the net (each off by ≤ γ_n of itself, n its chain of convolutions); a response squares a
    9-term correlation of them (positive terms): relative error ≤ 2 · (2γ_n + γ_9)."""
    return 2 * (2 * gamma(network_terms(module)) + gamma(9))


def literal_grad_map(t: torch.Tensor) -> np.ndarray:
    img = t.clamp(0, 1).double().numpy()
    gray = 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
    p = np.pad(gray, 1, mode="reflect")
    gx = p[1:-1, 2:] - p[1:-1, :-2]
    gy = p[2:, 1:-1] - p[:-2, 1:-1]
    return np.sqrt(gx ** 2 + gy ** 2 + 1e-6)


def literal_gradient_effect(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((literal_grad_map(a) - literal_grad_map(b)) ** 2).mean() * 1000)


@pytest.fixture(scope="module")
def pair():
    return make_pair()


@pytest.fixture(scope="module")
def scores(pair):
    _, t = pair
    n = len(literal_filters(t.state_dict))
    rng = np.random.default_rng(3)
    return {"blur": rng.normal(size=n), "noise": rng.normal(size=n)}


# --------------------------------------------------------------------------------------------
# evidence against literal computations


def test_change_response_matches_a_literal_loop(pair, scores):
    base, targ = pair
    model = EvidenceModel(base, targ, scores, proportion=10.0)
    x = torch.rand(2, 3, 7, 9, generator=torch.Generator().manual_seed(1))
    ev = model.evidence(x, ("change_response",))
    filters = literal_filters(targ.state_dict)
    for n, d in enumerate(["blur", "noise"]):
        chosen = [filters[k] for k in literal_top(scores[d], 10.0)]
        expected = literal_change_response(base.state_dict, targ.state_dict, x, chosen)
        np.testing.assert_allclose(ev["change_response"][:, n], expected, rtol=response_rtol(targ.module))


def test_masking_effect_matches_a_masked_copy_and_the_gradient_map_mse(scores):
    base, targ = make_pair(change=3.0)   # a large change: effects well above float32 rounding
    model = EvidenceModel(base, targ, scores, proportion=10.0)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    ev = model.evidence(x, ("masking_effect",))
    filters = literal_filters(targ.state_dict)
    _, y = reference_features(targ.state_dict, x)
    for n, d in enumerate(["blur", "noise"]):
        masked = {k: v.clone() for k, v in targ.state_dict.items()}
        for k in literal_top(scores[d], 10.0):
            name, o, i = filters[k]
            masked[name][o, i] = base.state_dict[name][o, i]
        _, y_m = reference_features(masked, x)
        for b in range(2):
            diff = literal_grad_map(y[b]) - literal_grad_map(y_m[b])
            # float32 forwards on both sides, in other orders (tests/tolerances.py)
            tol = effect_atol(diff, 2 * forward_atol(targ.module, float(y.abs().max())))
            assert ev["masking_effect"][b, n] == pytest.approx(literal_gradient_effect(y[b], y_m[b]), rel=0, abs=tol)


def test_residual_response_is_the_change_response_of_the_downscaled_masked_output(pair, scores):
    base, targ = pair
    model = EvidenceModel(base, targ, scores, proportion=10.0)
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    ev = model.evidence(x, ("residual_response",))
    filters = literal_filters(targ.state_dict)
    for n, d in enumerate(["blur", "noise"]):
        top = literal_top(scores[d], 10.0)
        masked = {k: v.clone() for k, v in targ.state_dict.items()}
        for k in top:
            name, o, i = filters[k]
            masked[name][o, i] = base.state_dict[name][o, i]
        _, y_m = reference_features(masked, x)
        back = downsample(y_m.clamp(0, 1), 2)
        expected = literal_change_response(base.state_dict, targ.state_dict, back, [filters[k] for k in top])
        # the masked output's rounding, then a response of it: twice the response's bound
        assert ev["residual_response"][0, n] == pytest.approx(expected[0], rel=2 * response_rtol(targ.module))


@pytest.mark.parametrize("padding", [1, "same"])
def test_layer_probe_gives_the_mean_square_response_at_every_step_th_position(padding):
    """The probe's Gram form (padding 1) and its grouped-conv form (padding 'same') against
    explicit loops: mean of conv(x_i, k)² over rows and columns 0, s, 2s, ... of the output
    (s = PROBE_STEP)."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 3, 3, padding=padding, bias=False)
    x = torch.rand(2, 4, 11, 9, generator=torch.Generator().manual_seed(3))
    in_idx = torch.tensor([0, 2, 2, 3])
    kernels = torch.randn(2 * len(in_idx), 1, 3, 3, generator=torch.Generator().manual_seed(4))
    member = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
    probe = _LayerProbe(conv, kernels, in_idx, member)
    probe(conv, (x,))
    expected = np.zeros((2, 2, 2))     # (Δ or baseline kernel, batch, degradation)
    for f, i in enumerate(in_idx.tolist()):
        for s in range(2):
            k = kernels[2 * f + s, 0].double().numpy()
            for b in range(2):
                r = correlate_same(x[b, i].double().numpy(), k)[::PROBE_STEP, ::PROBE_STEP]
                expected[s, b] += (r * r).mean() * member[f].double().numpy()
    # float32 against float64: a 9-term correlation (γ_9), squared (2γ_9), summed over ≤ 99
    # positions and 4 filters, all terms positive: relative error ≤ 2γ_9 + γ_103
    np.testing.assert_allclose(probe.value.double().numpy(), expected, rtol=2 * gamma(9) + gamma(103))


def test_masked_modules_give_the_functional_call_output(scores):
    """The d-masked target kept as a module of its own gives what the target gives with d's
    masked state dict swapped in (torch.func.functional_call), up to float rounding (the
    model runs the input in channels-last layout)."""
    from torch.func import functional_call
    base, targ = make_pair(change=3.0)   # a large change: masking visibly moves the output
    model = EvidenceModel(base, targ, scores, proportion=10.0)
    assert set(model.masked_modules) == {"blur", "noise"}
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    for d in ("blur", "noise"):
        got, _ = model.forward(x, masked=d)
        with torch.no_grad():
            expected = functional_call(targ.module, model.masked[d], (x,))
        # two float32 forwards of the same weights in other layouts (tests/tolerances.py)
        atol = 2 * forward_atol(targ.module, float(expected.abs().max()))
        torch.testing.assert_close(got, expected.float(), rtol=0, atol=atol)
        plain, _ = model.forward(x)
        assert float((got - plain).abs().max()) > 1e-3    # the masking does change the output


def test_hooks_stay_off_the_shared_module(pair, scores):
    base, targ = pair
    EvidenceModel(base, targ, scores, proportion=10.0).evidence(torch.rand(1, 3, 8, 8))
    assert not any(m._forward_pre_hooks for m in targ.module.modules())


# --------------------------------------------------------------------------------------------
# tiles


def test_small_images_are_analysed_whole_and_large_ones_by_tiles_from_textured_to_flat():
    small = torch.rand(1, 3, 20, 30)
    batch, note = tiles(small, 16, 32 * 32)
    assert batch.shape == (1, 3, 20, 30) and note == ""
    big = torch.full((1, 3, 64, 96), 0.5)
    g = torch.Generator().manual_seed(0)
    big[..., 16:32, 48:64] = torch.rand(1, 3, 16, 16, generator=g)      # the one textured tile
    big[..., 32:48, 0:16] = 0.5 + 0.1 * torch.rand(1, 3, 16, 16, generator=g)   # a little texture
    batch, note = tiles(big, 16, 2 * 16 * 16)
    assert batch.shape == (2, 3, 16, 16)
    # the most textured, and the flattest tile that is not empty (an empty one holds no evidence):
    # here a neighbour of the textured tile, whose gradient map sees the textured tile's edge
    assert torch.equal(batch[0], big[0, :, 16:32, 48:64])
    flattest = batch[1]
    assert float(flattest.std()) == 0.0 and not torch.equal(flattest, big[0, :, 32:48, 0:16])
    assert "2 tiles of 16x16" in note and "96x64" in note


@pytest.mark.parametrize("draws", [1, 2])
def test_self_referenced_evidence_matches_a_literal_computation(scores, draws):
    """S and T: where the input lies between two references made from the target's output, one
    degraded by the degradations found (here noise, at the input's own noise level) and one by
    the same plus d (blur), on log N_d, on the log gradient energy and on the detail slope; with several noise
    draws, each reference's log values are averaged over the draws."""
    base, targ = make_pair(change=3.0)
    model = EvidenceModel(base, targ, scores, proportion=10.0)
    # 24²: the detail slope's low band (0.04-0.12 cycles per pixel) holds no frequency of an 8² image
    x = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(4))
    ev, measured = model.measure(x, ("masking_effect", "relative_masking_effect", "self_referenced_effect",
                                     "self_referenced_energy"))
    # measured only against references
    assert np.isnan(ev["self_referenced_effect"]).all() and np.isnan(ev["self_referenced_energy"]).all()
    noise = Degradation("noise", noise_sigma=0.1)
    blur = Degradation("blur", blur_sigma=2.0)
    got = model.self_reference(measured, 0, [(noise, 1.0)], blur, draws=draws, noise_scale=1.3)

    filters = literal_filters(targ.state_dict)
    masked = {k: v.clone() for k, v in targ.state_dict.items()}
    for k in literal_top(scores["blur"], 10.0):
        name, o, i = filters[k]
        masked[name][o, i] = base.state_dict[name][o, i]

    def log_n_and_e(img):   # log (M_blur / energy) and log energy of one LR image (3,h,w)
        _, y = reference_features(targ.state_dict, img[None])
        _, y_m = reference_features(masked, img[None])
        g, g_m = literal_grad_map(y[0]), literal_grad_map(y_m[0])
        energy = float((g * g).mean() * 1000)
        return np.log(float(((g_m - g) ** 2).mean() * 1000) / energy), np.log(energy)

    _, y = reference_features(targ.state_dict, x)
    for t in range(2):
        residual = (x[t] - downsample(y[t:t + 1].clamp(0, 1), 2)[0]).numpy().ravel()
        sigma = 1.3 * 1.4826 * np.median(np.abs(residual - np.median(residual)))
        ends, slopes = [], []
        for b in (None, 2.0):   # the reference without blur, and with it
            refs = [degrade(y[t:t + 1].clamp(0, 1), 2, Degradation("r", blur_sigma=b, noise_sigma=sigma),
                            seeded_generator(REFERENCE_SEED + 1009 * j + t)) for j in range(draws)]
            ends.append(np.mean([log_n_and_e(r[0]) for r in refs], axis=0))
            slopes.append(np.mean([classical_estimates(r)["detail_slope"] for r in refs]))
        (n_lo, e_lo), (n_hi, e_hi) = ends
        n_x, e_x = log_n_and_e(x[t])
        s_x = classical_estimates(x[t:t + 1])["detail_slope"]
        assert got["self_referenced_effect"][t] == pytest.approx((n_x - n_lo) / (n_hi - n_lo), rel=1e-3, abs=1e-4)
        assert got["self_referenced_energy"][t] == pytest.approx((e_x - e_lo) / (e_hi - e_lo), rel=1e-3, abs=1e-4)
        # the detail slope placed the same way (no network: the references' and the input's own)
        assert np.isfinite(s_x) and slopes[0] != slopes[1]
        assert got["self_referenced_slope"][t] == pytest.approx((s_x - slopes[0]) / (slopes[1] - slopes[0]),
                                                                rel=1e-6, abs=1e-9)


def test_references_without_noise_are_measured_once_whatever_the_draws(pair, scores):
    """Without noise in either reference (nothing found, d is blur) every draw would be the
    same image: one draw, the same values, and one reference pair through the network."""
    base, targ = pair
    model = EvidenceModel(base, targ, scores, proportion=10.0)
    _, measured = model.measure(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(6)),
                                ("masking_effect", "self_referenced_effect", "self_referenced_energy"))
    blur = Degradation("blur", blur_sigma=2.0)
    seen = []
    modules = [model.module, *model.masked_modules.values()]
    handles = [m.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0].shape[0])) for m in modules]
    try:
        three = model.self_reference(measured, 0, [], blur, draws=3)
    finally:
        for h in handles:
            h.remove()
    one = model.self_reference(measured, 0, [], blur, draws=1)
    assert seen == [2, 2]    # the references without and with blur, unmasked and blur-masked
    for k in ("self_referenced_effect", "self_referenced_energy", "self_referenced_slope"):
        np.testing.assert_array_equal(three[k], one[k])


# --------------------------------------------------------------------------------------------
# calibration and decision on hand-made samples


def hand_calibration() -> Calibration:
    """The masking effect tells blur only when there is no noise; the residual response tells blur
    among noisy samples; the change response tells noise everywhere. Strength: the noise's change
    response = 10 x noise factor."""
    rng = np.random.default_rng(0)
    samples = []

    def add(present, m_blur, q_blur, e_noise):
        for _ in range(6):
            j = np.exp(rng.normal(0, 0.05, size=3))
            samples.append(Sample(dict(present), {
                "masking_effect": np.array([m_blur * j[0], 1.0]), "residual_response": np.array([q_blur * j[1], 1.0]),
                "change_response": np.array([1.0, e_noise * j[2]])}))

    add({}, 1, 1, 1)
    add({"blur": 1.0}, 10, 1, 1)
    add({"noise": 1.0}, 1, 1, 10)
    add({"blur": 1.0, "noise": 1.0}, 1, 10, 10)     # M_blur is blind here, Q_blur is not
    for f in (0.5, 2.0):
        add({"noise": f}, 1, 1, 10 * f)
        add({"noise": f, "blur": 1.0}, 1, 10, 10 * f)
    return Calibration(["blur", "noise"], ("masking_effect", "residual_response", "change_response"), samples,
                       {d.name: d for d in paper_degradations()})


@pytest.mark.parametrize("m_blur,q_blur,e_noise,labels", [
    (1, 1, 1, []), (10, 1, 1, ["blur"]), (1, 1, 10, ["noise"]), (1, 10, 10, ["blur", "noise"]),
    (10, 1, 10, ["noise"]),   # with noise, only Q speaks for blur
])
def test_decision_judges_each_degradation_among_samples_like_the_image(m_blur, q_blur, e_noise, labels):
    cal = hand_calibration()
    ev = {"masking_effect": np.array([m_blur, 1.0]), "residual_response": np.array([q_blur, 1.0]),
          "change_response": np.array([1.0, e_noise])}
    got, conf, _ = cal.decide(ev)
    assert got == labels
    for d in ("blur", "noise"):
        assert (conf[d] > 0.5) == (d in labels)


def referenced_calibration() -> Calibration:
    """The change response tells noise everywhere; the masking effect tells blur without noise and
    is blind to it among noisy samples, where only the self-referenced effect tells it (measured
    for blur, the last decision, with or without noise found)."""
    rng = np.random.default_rng(1)
    samples = []

    def add(present, m_blur, s_blur, e_noise):
        for _ in range(6):
            j = rng.normal(0, 0.05, size=3)
            samples.append(Sample(dict(present), {
                "masking_effect": np.array([m_blur * np.exp(j[0]), 1.0]),
                "change_response": np.array([1.0, e_noise * np.exp(j[1])]),
                "self_referenced_effect": np.array([s_blur + j[2], np.nan])}))

    add({}, 1, 0, 1)
    add({"blur": 1.0}, 10, 1.0, 1)
    add({"noise": 1.0}, 1, 0.0, 10)
    add({"blur": 1.0, "noise": 1.0}, 1, 1.0, 10)
    return Calibration(["blur", "noise"], ("masking_effect", "change_response", "self_referenced_effect"), samples,
                       {d.name: d for d in paper_degradations()})


@pytest.mark.parametrize("s_blur,labels", [(0.05, ["noise"]), (0.9, ["blur", "noise"])])
def test_the_last_decision_is_measured_against_references_of_what_was_found(s_blur, labels):
    cal = referenced_calibration()
    calls = []

    def reference(d, found):
        calls.append((d, dict(found)))
        return {"self_referenced_effect": s_blur}

    noisy = {"masking_effect": np.array([1.0, 1.0]), "change_response": np.array([1.0, 10.0]),
             "self_referenced_effect": np.array([np.nan, np.nan])}
    got, conf, _ = cal.decide(noisy, reference)
    assert got == labels
    # noise (the more separable) first, with blur undecided: no reference; then blur against
    # references holding the noise found, at its estimated strength
    assert [c[0] for c in calls] == ["blur"] and set(calls[0][1]) == {"noise"}
    assert calls[0][1]["noise"] == pytest.approx(1.0, rel=0.2)
    # a clean-looking image: blur is judged against references with nothing in them
    calls.clear()
    clean = {"masking_effect": np.array([1.0, 1.0]), "change_response": np.array([1.0, 1.0]),
             "self_referenced_effect": np.array([np.nan, np.nan])}
    assert cal.decide(clean, lambda d, found: calls.append((d, dict(found))) or {"self_referenced_effect": 0.02})[0] == []
    assert calls == [("blur", {})]
    assert cal.decide(clean, lambda d, found: {"self_referenced_effect": 0.95})[0] == ["blur"]
    # without the measurement (evidence() alone), blur among noisy samples has no evidence either
    # way: its probability stays near even and the verdict says it is unsure of blur
    verdict = cal.judge(noisy)
    assert "noise" in verdict.labels and abs(verdict.scores["blur"] - 0.5) < 0.2
    assert verdict.doubts() == ["blur"]


def confounded_calibration() -> Calibration:
    """Noise's change response reads JPEG's blocks as noise (JPEG-only samples look like noisy
    ones there); its masking effect tells noise among JPEG samples and is blind elsewhere. Clean
    samples are many, so noise is the more separable and is decided first, with JPEG unknown."""
    rng = np.random.default_rng(4)
    samples = []

    def add(present, a, b, c, image):
        for _ in range(6):
            j = np.exp(rng.normal(0, 0.05, size=3))
            samples.append(Sample(dict(present), {"change_response": np.array([a * j[0], 1.0]),
                                                  "masking_effect": np.array([b * j[1], 1.0]),
                                                  "residual_response": np.array([1.0, c * j[2]])}, image))

    for image in range(3):
        for _ in range(6):
            add({}, 1, 1, 1, image)
        add({"noise": 1.0}, 10, 1, 1, image)
        add({"noise": 2.0}, 10, 1, 1, image)
        add({"jpeg": 1.0}, 10, 1, 5, image)
        add({"noise": 1.0, "jpeg": 1.0}, 10, 10, 5, image)
    return Calibration(["noise", "jpeg"], ("change_response", "masking_effect", "residual_response"), samples, {})


@pytest.mark.parametrize("b_noise,labels", [(1.0, ["jpeg"]), (10.0, ["noise", "jpeg"])])
def test_the_first_decision_is_made_again_once_the_others_are_known(b_noise, labels):
    cal = confounded_calibration()
    assert cal.separation("noise", {}) > cal.separation("jpeg", {})   # noise is decided first
    ev = {"change_response": np.array([10.0, 1.0]), "masking_effect": np.array([b_noise, 1.0]),
          "residual_response": np.array([1.0, 5.0])}
    # JPEG not yet known: a JPEG-only image reads as noise, as two thirds of such samples are
    # noisy (noise at the analysed level and stronger), the rest JPEG alone
    first = cal.probability("noise", ev, {})
    if b_noise == 1.0:
        assert 0.55 < first < 0.8
    verdict = cal.judge(ev)
    assert verdict.labels == labels
    among_jpeg = cal.probability("noise", ev, {"jpeg": True})
    if b_noise == 1.0:
        # the label changed: its probability is the one among JPEG samples, where the masking
        # effect tells
        assert among_jpeg < 0.2 and verdict.scores["noise"] == pytest.approx(among_jpeg, abs=1e-12)
    else:
        # both say noise: the first probability stays (calibrated on all samples)
        assert among_jpeg > 0.8 and verdict.scores["noise"] == pytest.approx(first, abs=1e-12)


def test_a_degradation_stronger_than_the_analysed_level_counts_as_present():
    """Evidence that falls back toward the clean level past the analysed strength (as the masking
    effect of strong blur does: little is left for the filters to restore) still reads blur."""
    rng = np.random.default_rng(2)
    samples = []
    for present, m_blur in (({}, 1.0), ({"blur": 1.0}, 10.0), ({"blur": 2.0}, 2.5), ({"blur": 0.5}, 1.5)):
        for _ in range(6):
            samples.append(Sample(dict(present), {"masking_effect": np.array([m_blur * np.exp(rng.normal(0, 0.05)), 1.0]),
                                                  "change_response": np.array([1.0, 1.0])}))
    cal = Calibration(["blur", "noise"], ("masking_effect", "change_response"), samples,
                      {d.name: d for d in paper_degradations()})
    strong = {"masking_effect": np.array([2.5, 1.0]), "change_response": np.array([1.0, 1.0])}
    # against the analysed level alone the threshold would sit at sqrt(1 x 10) = 3.2: clean
    assert cal.decide(strong)[0] == ["blur"]
    assert cal.decide({"masking_effect": np.array([1.0, 1.0]), "change_response": np.array([1.0, 1.0])})[0] == []


def test_strength_is_read_back_from_the_calibration_curve():
    cal = hand_calibration()
    ev = {"masking_effect": np.array([1.0, 1.0]), "residual_response": np.array([1.0, 1.0]),
          "change_response": np.array([1.0, 15.0])}
    labels, _, strength = cal.decide(ev)
    assert labels == ["noise"]
    # E = 10 f between the levels 1 and 2: log-linear interpolation gives f = 1.5 exactly
    assert strength["noise"]["noise_sigma"] == pytest.approx(0.1 * 1.5, rel=0.05)
    # beyond the strongest level (f = 2) the curve carries on along its last segment: E = 30
    # reads f = 3, not the strongest level (log-log slope 1 between the levels 1 and 2)
    ev["change_response"][1] = 30.0
    assert cal.decide(ev)[2]["noise"]["noise_sigma"] == pytest.approx(0.1 * 3.0, rel=0.05)
    # and stops two octaves (x4) past it
    ev["change_response"][1] = 1e6
    assert cal.decide(ev)[2]["noise"]["noise_sigma"] == pytest.approx(0.1 * 2.0 * 4.0, rel=1e-9)


def test_calibration_plan_covers_every_combination_and_the_levels():
    plan = calibration_plan(["blur", "noise"], {d.name: d for d in paper_degradations()}, (0.5, 1.0, 2.0))
    keys = {tuple(sorted(p.items())) for p in plan}
    assert {(), (("blur", 1.0),), (("noise", 1.0),), (("blur", 1.0), ("noise", 1.0))} <= keys
    assert (("blur", 0.5),) in keys and (("blur", 2.0), ("noise", 1.0)) in keys
    assert len(plan) == 4 + 2 * 2 * 2


def test_combined_degradations_add_sigmas_in_quadrature():
    d = combine([(Degradation("a", blur_sigma=3.0), 1.0), (Degradation("b", blur_sigma=2.0, noise_sigma=0.1), 2.0)])
    assert d.blur_sigma == pytest.approx(5.0) and d.noise_sigma == pytest.approx(0.2)
    assert combine([]).blur_sigma is None and combine([]).noise_sigma is None


# --------------------------------------------------------------------------------------------
# the predictor end to end




@pytest.mark.parametrize("arch,hp", [("msrresnet", dict(num_feat=4, num_block=1, scale=2)),
                                     ("srcnn_style", dict(scale=2, widths=(4, 5)))])
def test_predictor_gives_a_verdict_for_any_architecture(arch, hp):
    base, targ = make_pair(arch, hp)
    n = len(literal_filters(targ.state_dict))
    rng = np.random.default_rng(1)
    scores = {"blur": rng.normal(size=n), "noise": rng.normal(size=n)}
    config = PredictorConfig(proportion=10.0, levels=(0.5, 1.0, 2.0), seeds=1)
    p = Predictor(base, targ, scores, [smooth_hr(s) for s in range(3)], paper_degradations(), config)
    cal = p.calibrate()
    # every class of the plan, and each image JPEG-compressed clean, per calibration image
    assert len(cal.samples) == 3 * (len(calibration_plan(["blur", "noise"], p.definitions, config.levels)) + 1)
    lr = smooth_hr(9, 24)[0].permute(1, 2, 0).numpy()
    result = p.predict(lr)
    assert set(result.labels) <= {"blur", "noise"}
    assert set(result.scores) == {"blur", "noise"} and all(0 <= v <= 1 for v in result.scores.values())
    assert (result.scores["blur"] > 0.5) == ("blur" in result.labels)
    assert set(result.strength) == set(result.labels)
    line = json.loads(json.dumps(result.to_json("x.png")))
    assert {"image", "labels", "scores", "strength", "interval", "unsure", "competing", "tiles"} <= set(line)
    assert line["labels"] == (result.labels or ["clean"])
    # the calibration is cached: a second predictor for the same inputs does not redo it
    again = Predictor(base, targ, scores, [smooth_hr(s) for s in range(3)], paper_degradations(), config)
    assert again.calibration is cal


def test_predictor_refuses_bad_inputs_with_one_line_messages(pair, scores):
    base, targ = pair
    hr = [smooth_hr(0)]
    with pytest.raises(FaigError, match="too small"):
        Predictor(base, targ, scores, hr, config=PredictorConfig(proportion=10, seeds=1)).predict(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(FaigError, match="filters"):
        Predictor(base, targ, {"blur": np.zeros(5)}, hr)
    with pytest.raises(FaigError, match="proportion"):
        Predictor(base, targ, scores, hr, config=PredictorConfig(proportion=0))
    with pytest.raises(FaigError, match="no definition"):
        Predictor(base, targ, {"haze": scores["blur"]}, hr)
    with pytest.raises(FaigError, match="analysis images"):
        Predictor(base, targ, scores, [])


def test_predict_command_prints_one_json_object_per_image(tmp_path, capsys, pair, scores):
    from faig_gui.cli import main
    imgs, args = write_predict_inputs(tmp_path, pair, scores)
    code = main(["predict", *args, "--json"])
    assert code == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["image"] for r in records] == [str(p) for p in imgs]
    for r in records:
        assert {"image", "labels", "scores", "strength", "unsure", "tiles"} <= set(r) and set(r["scores"]) == {"blur", "noise"}
    assert main(["predict", str(imgs[0]), "--baseline", str(tmp_path / "b.pth")]) == 2


def test_shares_are_each_degradations_part_of_the_masking_effect_and_change_response(pair, scores):
    base, targ = pair
    model = EvidenceModel(base, targ, scores, proportion=10.0)
    ev = model.evidence(torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(5)))
    for b in range(2):
        for n in range(2):
            m, c = ev["masking_effect"], ev["change_response"]
            assert ev["masking_effect_share"][b, n] == pytest.approx(m[b, n] / (m[b, 0] + m[b, 1]))
            assert ev["change_response_share"][b, n] == pytest.approx(c[b, n] / (c[b, 0] + c[b, 1]))
            assert ev["relative_masking_effect"][b, n] > 0 and ev["relative_change_response"][b, n] > 0
            assert ev["relative_residual_response"][b, n] > 0
