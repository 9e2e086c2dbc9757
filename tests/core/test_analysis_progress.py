"""Progress and ETA of a long analysis (issue 16: an RRDBNet x4 path at 64 x 64 LR takes half an
hour on two cores): progress arrives within each image's path, and the ETA counts only the steps
computed, not those of images taken from the cache or the store. A fake clock advances 2 s per
computed path step, so the right ETA is 2 s times the steps left, exactly."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from distributed_helpers import make_pair_and_images
from faig_gui.core import analysis
from faig_gui.core.analysis import AnalysisConfig, AnalysisResult, AttributionCache, Progress, analyze
from faig_gui.core.dataset import load_hr_folder, make_degraded
from faig_gui.core.degradations import paper_degradations
from faig_gui.core.registry import default_registry

STEPS = 4
SECONDS_PER_STEP = 2.0


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    work = make_pair_and_images(tmp_path_factory.mktemp("progress"), n_images=3)
    baseline, target = default_registry().load_pair(work / "baseline.pth", work / "target.pth")
    images = make_degraded(load_hr_folder(work / "hr"), 2, paper_degradations(), seed=0)
    return baseline, target, images


def test_progress_within_paths_and_an_eta_that_skips_cached_images(setup, monkeypatch):
    baseline, target, images = setup
    config = AnalysisConfig(steps=STEPS, device="cpu", chunk=1)
    cache = AttributionCache()
    for _ in analyze(baseline, target, images[:2], config, cache):   # the first two images, cached
        pass

    clock = SimpleNamespace(t=100.0)
    monkeypatch.setattr(analysis, "time", SimpleNamespace(perf_counter=lambda: clock.t))
    monkeypatch.setattr(analysis, "PROGRESS_EVERY_S", 0.0)
    real = analysis.faig_attribution

    def slow(*args, **kw):   # each computed path step takes 2 s of the fake clock
        args = list(args)
        told = args[7]

        def on_steps(n: int) -> None:
            clock.t += SECONDS_PER_STEP * n
            told(n)
        args[7] = on_steps
        return real(*args, **kw)
    monkeypatch.setattr(analysis, "faig_attribution", slow)

    within: list[Progress] = []
    yielded: list[Progress] = []
    for item in analyze(baseline, target, images, config, cache, on_progress=within.append):
        if not isinstance(item, AnalysisResult):
            yielded.append(item)
    total = 3 * 2 * STEPS
    cached = 2 * 2 * STEPS
    # the cached images: yielded at once, with no ETA (nothing computed yet to take a rate from)
    assert [p.done for p in yielded] == [STEPS, 2 * STEPS, 3 * STEPS, 4 * STEPS, 5 * STEPS, 6 * STEPS]
    assert all(p.eta is None for p in yielded[:4])
    # within the third image's two paths: one record per step (chunk 1), named after the image
    assert [p.done for p in within] == list(range(cached + 1, total + 1))
    assert all(p.message.startswith(images[2].name) for p in within)
    for p in within:
        assert p.skipped == cached
        assert p.elapsed == pytest.approx(SECONDS_PER_STEP * (p.done - cached))
        assert p.eta == pytest.approx(SECONDS_PER_STEP * (total - p.done))
    # counting the cached steps as done work would have promised the end 3x too early
    p = within[0]
    assert p.elapsed / p.done * (total - p.done) < p.eta / 3


def test_beyond_the_per_image_budget_only_the_sums_are_kept_and_the_scores_stay(setup, monkeypatch):
    """Issue 16's memory budget: an analysis whose per-image attributions would exceed
    PER_IMAGE_BYTES keeps none of them, and its scores are those computed here from the per-image
    attributions of a run that kept them (FAIG's formula, written out; float64 sums in another
    order: a few ulps of the largest attribution)."""
    import numpy as np
    baseline, target, images = setup
    config = AnalysisConfig(steps=2, device="cpu", chunk=1)
    cache = AttributionCache()
    kept = analysis.run_to_end(analyze(baseline, target, images, config, cache))
    assert all(len(v) == len(images) for v in kept.per_image.values())
    monkeypatch.setattr(analysis, "PER_IMAGE_BYTES", 0)
    lean = analysis.run_to_end(analyze(baseline, target, images, config, cache))
    assert lean.per_image == {}
    names = list(kept.per_image)
    scale = max(np.abs(a).max() for v in kept.per_image.values() for a in v)
    for d in names:
        others = [o for o in names if o != d]
        want = np.mean([kept.per_image[d][j] - np.mean([kept.per_image[o][j] for o in others], axis=0)
                        for j in range(len(images))], axis=0)
        np.testing.assert_allclose(lean.scores[d], want, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(lean.means[d], np.mean(kept.per_image[d], axis=0), rtol=0, atol=1e-12 * scale)
