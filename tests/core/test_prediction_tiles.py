"""Issue 19: a blur's evidence comes from the most textured tiles (blur shows where there is
detail), the others' from every tile."""
from __future__ import annotations

import numpy as np
import torch

from faig_gui.core.degradations import Degradation
from faig_gui.core.prediction import Predictor, PredictorConfig, tiles
from faig_gui.core.prediction.evidence import evidence_tiles, tile_median

from prediction_helpers import make_pair, smooth_hr


def texture_left(h: int = 96, w: int = 192, cut: int = 96) -> torch.Tensor:
    """Columns left of ``cut``: fine random texture; the rest: a gentle ramp along both axes (never
    flat to the 8-bit step, so no tile counts as empty, and no two tiles alike)."""
    g = torch.Generator().manual_seed(3)
    ramp = torch.linspace(0.3, 0.6, w)[None, :] + torch.linspace(0.0, 0.1, h)[:, None]
    img = ramp.expand(1, 3, h, w).clone()
    img[..., :cut] = 0.5 + 0.4 * (torch.rand(1, 3, h, cut, generator=g) - 0.5)
    return img


def test_a_blurs_evidence_tiles_are_the_textured_ones_and_a_noises_are_all():
    img = texture_left()
    batch, note = tiles(img, 32, 8 * 32 * 32)
    assert batch.shape == (8, 3, 32, 32) and note.startswith("analysed 8 tiles")
    # where each tile of the batch lies: found by matching it against every grid position
    xs = []
    for t in batch:
        found = [x for y in range(0, 96, 32) for x in range(0, 192, 32) if torch.equal(t, img[0, :, y:y + 32, x:x + 32])]
        assert len(found) == 1
        xs.append(found[0])
    blur, noise = Degradation("blur", blur_sigma=2.0), Degradation("noise", noise_sigma=0.1)
    k = evidence_tiles(blur, len(batch))
    assert k == 4
    # the 8 tiles are spread over the 18 tiles' ranks of texture, half of them in the textured
    # region (3 x 3 tiles): the blur's 4 are those, and they come first
    assert all(x + 32 <= 96 for x in xs[:k]) and all(x >= 96 for x in xs[k:])
    assert evidence_tiles(noise, len(batch)) == 8
    # blur with noise: noise shows on flat tiles too, so every tile
    assert evidence_tiles(Degradation("bn", blur_sigma=2.0, noise_sigma=0.1), 8) == 8
    assert evidence_tiles(blur, 1) == 1 and evidence_tiles(blur, 5) == 3
    assert evidence_tiles(blur, 8, share=1.0) == 8


def test_tile_median_takes_each_columns_first_tiles_and_skips_missing_values():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(7, 3))
    v[1, 0] = np.nan
    v[:, 2] = np.nan
    got = tile_median(v, [4, 7, 3])
    # literal: column 0 from rows 0, 2, 3 (row 1 missing); column 1 from all rows; column 2 has none
    assert got[0] == sorted([v[0, 0], v[2, 0], v[3, 0]])[1]
    assert got[1] == sorted(v[:, 1])[3]
    assert np.isnan(got[2])


def _random_scores_predictor(seed: int, **config) -> Predictor:
    """A predictor on the tiny pair with random blur and noise scores, eight 32² tiles per image."""
    base, targ = make_pair()
    n = sum(v.shape[0] * v.shape[1] for v in targ.state_dict.values() if v.ndim == 4)
    rng = np.random.default_rng(seed)
    scores = {"blur": rng.normal(size=n), "noise": rng.normal(size=n)}
    return Predictor(base, targ, scores, [smooth_hr(s) for s in range(2)],
                     config=PredictorConfig(proportion=10.0, tile=32, max_pixels=8 * 32 * 32, **config))


def test_the_predictor_takes_the_blurs_evidence_from_the_textured_tiles_only():
    p = _random_scores_predictor(1)
    img = texture_left()
    ev, note = p.evidence(img)
    assert note.startswith("analysed 8 tiles")
    batch, _ = tiles(img, 32, 8 * 32 * 32)
    per_tile = p.model.evidence(batch, p.config.evidence)
    for kind in ("change_response", "relative_masking_effect"):
        col = per_tile[kind]
        assert ev[kind][0] == np.median(col[:4, 0])     # blur: the 4 most textured tiles
        assert ev[kind][1] == np.median(col[:, 1])      # noise: all 8
        assert ev[kind][0] != np.median(col[:, 0])      # (which is not the same number here)


def test_only_the_tiles_a_degradations_evidence_comes_from_are_measured_against_the_references():
    p = _random_scores_predictor(2, seeds=1, levels=(0.5, 1.0), reference_tiles=8)
    p.calibrate()
    calls = []
    measure = p.model.self_reference

    def recording(pass_, d, others, definition, draws=1, count=None, noise_scale=1.0):
        out = measure(pass_, d, others, definition, draws, count, noise_scale)
        calls.append((p.names[d], count, {k: v.shape for k, v in out.items()}))
        return out

    p.model.self_reference = recording
    result = p.predict(texture_left()[0].permute(1, 2, 0).numpy())
    assert result.tiles == 8 and len(calls) == 1      # the last decision only
    d, count, shapes = calls[0]
    expected = 4 if d == "blur" else 8                 # blur: the textured half; noise: all
    assert count == expected and all(s == (expected,) for s in shapes.values())


def test_a_strength_next_to_a_doubtful_verdict_spans_the_reading_with_it_turned_over(monkeypatch):
    """The point is the verdict's reading; the interval also holds the reading among the samples
    with the doubtful other verdict turned over (from the evidence that does not depend on it)."""
    p = _random_scores_predictor(2, seeds=1, levels=(0.5, 1.0), reference_tiles=8)
    p.calibrate()
    image = texture_left()[0].permute(1, 2, 0).numpy()
    widened = p.predict(image)
    monkeypatch.setattr(Predictor, "_widen_for_doubts", lambda *a: None)
    plain = p.predict(image)
    assert widened.labels == plain.labels and widened.scores == plain.scores and widened.doubts
    assert widened.strength == plain.strength                  # the point stays
    wider = 0
    for d, params in plain.interval.items():
        for key, (lo, hi) in params.items():
            w_lo, w_hi = widened.interval[d][key]
            assert w_lo <= lo and w_hi >= hi                     # it only grows
            wider += (w_lo, w_hi) != (lo, hi)
    assert wider, "some reading with a doubtful verdict turned over lies outside the verdict's interval"
    # that reading, from the reported evidence through the calibration's public reading
    from faig_gui.core.prediction import SELF_REFERENCED, strength_params
    cal = p.calibration
    for d in widened.labels:
        n = p.names.index(d)
        ev = {k: np.array([widened.estimates[k]] * len(p.names)) if k in widened.estimates else
              np.array([widened.evidence.get(k, {}).get(name, np.nan) for name in p.names]) for k in cal.kinds}
        for k in SELF_REFERENCED:
            ev[k][n] = np.nan
        for o in widened.doubts:
            if o == d or d not in widened.interval:
                continue
            turned = {x: x in widened.labels for x in p.names if x != d}
            turned[o] = not turned[o]
            for key, value in strength_params(p.definitions[d], cal.factor(d, ev, turned)).items():
                lo, hi = widened.interval[d][key]
                assert lo - 1e-12 <= value <= hi + 1e-12
