"""Speculative prefetch of the next mask step, through the real window: the guess is rendered in
the background, shown without a render of its own when asked for, interrupted between nodes by a
request for anything else, and never changes what is shown. References are computed here with a
plain forward of masked weights."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from faig_gui.core import render as rendering
from faig_gui.app.prefetch import MaskState, PrefetchStore, predict_next, slider_stops
from faig_gui.core.masking import FilterMask, masked_state_dict
from faig_gui.core.registry import default_registry
from tolerances import effect_atol, forward_atol


def out_atol(window) -> float:
    """Float32 outputs of the window's net against a plain forward in another order: γ_n of
    its chain of convolutions (tests/tolerances.py)."""
    return forward_atol(window.model.session.target.module)


# -- references ------------------------------------------------------------------------------
def top_by_hand(scores: np.ndarray, percent: float) -> np.ndarray:
    return np.argsort(-scores, kind="stable")[: int(len(scores) * percent / 100)]


def masked_forward(session, indices, lam: float = 0.0, mode: str = "baseline") -> np.ndarray:
    """The masked output of the current image: the masked weights in a fresh module, one plain
    forward, as an HWC image."""
    s = session
    params = masked_state_dict(s.target.state_dict, s.baseline.state_dict, FilterMask(indices, mode, lam))
    module = default_registry().model_from_state_dict(params).module.eval()
    lr = s.current_image().lr
    x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1)))[None].float()
    with torch.no_grad():
        y = module(x)
    return y[0].clamp(0, 1).permute(1, 2, 0).numpy()


def kept_sizes(view) -> list[int]:
    return [len(k.mask) for k in view._prefetched.keys()]


def step(qtbot, view, slider, key) -> None:
    with qtbot.waitSignal(view.rendered, timeout=20000):
        slider.setFocus()
        qtbot.keyClick(slider, key)


def two_steps_up_and_the_guess_kept(qtbot, view, slider, total) -> None:
    """1 % -> 2 % -> 3 %, then wait until the guess of the third step (4 %) is rendered and kept."""
    step(qtbot, view, slider, Qt.Key.Key_PageUp)
    step(qtbot, view, slider, Qt.Key.Key_PageUp)
    qtbot.waitUntil(lambda: int(total * 0.04) in kept_sizes(view), timeout=20000)


# -- the guess -------------------------------------------------------------------------------
def test_predict_next_continues_the_last_step():
    scores = np.random.default_rng(0).normal(size=1000)

    def top(degradation, percent):
        assert degradation == "blur"
        return top_by_hand(scores, percent)

    def state(percent, lam=0.0, mode="baseline", degradation="blur", indices=None):
        idx = top_by_hand(scores, percent) if indices is None else indices
        return MaskState(degradation, percent, FilterMask(idx, mode, lam))

    # top k: the same step again, as the slider would give it (on its 0.1 % grid)
    guess = predict_next(state(2.0), state(3.0), top)
    np.testing.assert_array_equal(guess.indices, np.sort(top_by_hand(scores, 4.0)))
    assert guess.mode == "baseline" and guess.lam == 0.0
    assert len(predict_next(state(5.0), state(3.5), top)) == 20            # down by 1.5 %: 2 %
    assert len(predict_next(state(0.1), state(0.3), top)) == 5             # 0.5 %, not 0.5000001
    assert len(predict_next(state(7.0), state(9.0), top)) == 100           # 11 % -> 10 %, the end
    assert predict_next(state(9.0), state(10.0), top) is None              # already at the end
    assert predict_next(state(1.0), state(0.0), top) is None               # and at the start
    few = scores[:300]                                                    # 0.1-0.3 % of 300: none
    assert predict_next(MaskState("blur", 0.1, FilterMask()), MaskState("blur", 0.2, FilterMask()),
                        lambda d, p: top_by_hand(few, p)) is None         # the same filters (none)
    # mode and lambda of the current mask are kept
    g = predict_next(state(1.0, 0.5, "zero"), state(2.0, 0.5, "zero"), top)
    assert (g.mode, g.lam, len(g)) == ("zero", 0.5, 30)
    # lambda: the same step, clamped to [0, 1.5], on the slider's 0.01 grid
    g = predict_next(state(3.0, 0.30), state(3.0, 0.50), top)
    assert g.lam == 70 / 100 and np.array_equal(g.indices, state(3.0).mask.indices)
    assert predict_next(state(3.0, 1.2), state(3.0, 1.4), top).lam == 1.5
    assert predict_next(state(3.0, 0.1), state(3.0, 0.0), top) is None
    # other changes are not guessed: clicks (same k, other filters), mode, degradation
    clicked = state(3.0, indices=np.r_[top_by_hand(scores, 3.0), 999])
    assert predict_next(state(3.0), clicked, top) is None
    assert predict_next(state(3.0), state(3.0, mode="zero"), top) is None
    assert predict_next(state(2.0, degradation="noise"), state(3.0), top) is None
    assert predict_next(state(2.0, mode="zero"), state(3.0), top) is None


def test_prefetch_store_keeps_the_newest_few():
    store = PrefetchStore(size=2)
    same = lambda a, b: a == b  # noqa: E731
    for k in (1, 2, 3):
        store.put(k, f"r{k}", same)
    assert store.keys() == [2, 3] and store.find(lambda k: k == 1) is None
    store.put(2, "r2 again", same)
    assert store.keys() == [3, 2] and store.find(lambda k: k == 2) == "r2 again"
    store.clear()
    assert len(store) == 0


def test_slider_stops_are_one_gesture_away_nearest_first():
    # by hand: 0.1 % down and up (arrow keys), then the whole percents by distance, lower first
    assert slider_stops(3.0) == [2.9, 3.1, 2.0, 4.0, 1.0, 5.0, 0.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    assert slider_stops(2.5) == [2.4, 2.6, 2.0, 3.0, 1.0, 4.0, 0.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    assert slider_stops(10.0) == [9.9, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    assert slider_stops(0.0) == [0.1, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    assert slider_stops(0.9) == [0.8, 1.0, 0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]


# -- through the window ----------------------------------------------------------------------
def test_the_next_slider_step_is_shown_from_the_prefetch_without_a_forward(demo_window, qtbot):
    w = demo_window
    view, s = w.image_view, w.model.session
    slider = w.masking_dock.k_slider
    assert view.prefetch_enabled and w.prefetch_action.isChecked()
    total = s.index.total
    two_steps_up_and_the_guess_kept(qtbot, view, slider, total)
    renders, jobs, hits = view._cache.forwards["render"], view.live.completed, view.prefetch_hits
    seen = {}

    def on_rendered():   # the moment it is on screen
        seen.update(renders=view._cache.forwards["render"], jobs=view.live.completed,
                    shown=np.array(view.masked_panel.item.image), title=view.masked_panel.label.text)
    view.rendered.connect(on_rendered)
    try:
        step(qtbot, view, slider, Qt.Key.Key_PageUp)  # 3 % -> 4 %
    finally:
        view.rendered.disconnect(on_rendered)
    assert len(s.mask) == int(total * 0.04) and "4.0 %" in w.masking_dock.k_label.text()
    # shown at once: no forward, not even a job on the render thread
    assert seen["renders"] == renders and seen["jobs"] == jobs
    assert view.prefetch_hits == hits + 1 and view.result.prefetched
    assert view.result.request.mask is s.mask
    ref = masked_forward(s, top_by_hand(s.scores["blur"], 4.0))
    np.testing.assert_allclose(seen["shown"], ref, atol=out_atol(w))
    np.testing.assert_allclose(view.result.masked, ref, atol=out_atol(w))
    assert f"{int(total * 0.04)} filters" in seen["title"]
    # the effect shown is that of this output
    target = masked_forward(s, [])
    assert view.result.effect == pytest.approx(_effect(ref, target), rel=0,
                                               abs=effect_atol(_gmap(ref) - _gmap(target), out_atol(w)))
    # later, too, no real forward ran for it (the next guess, 5 %, may run in the background)
    qtbot.waitUntil(lambda: int(total * 0.05) in kept_sizes(view), timeout=20000)
    assert view._cache.forwards["render"] == renders


def _gmap(img: np.ndarray) -> np.ndarray:
    g = img[..., 0] * 0.299 + img[..., 1] * 0.587 + img[..., 2] * 0.114
    p = np.pad(g.astype(np.float64), 1, mode="reflect")
    return np.sqrt((p[1:-1, 2:] - p[1:-1, :-2]) ** 2 + (p[2:, 1:-1] - p[:-2, 1:-1]) ** 2 + 1e-6)


def _effect(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((_gmap(a) - _gmap(b)) ** 2) * 1000)


def test_a_wrong_guess_still_shows_the_right_output(demo_window, qtbot):
    w = demo_window
    view, s = w.image_view, w.model.session
    slider = w.masking_dock.k_slider
    total = s.index.total
    two_steps_up_and_the_guess_kept(qtbot, view, slider, total)
    renders = view._cache.forwards["render"]
    step(qtbot, view, slider, Qt.Key.Key_Up)         # 3.1 %: not the guess (4 %), never shown
    qtbot.waitUntil(lambda: view.live.idle, timeout=20000)
    assert len(s.mask) == int(total * 0.031) and not view.result.prefetched
    assert view._cache.forwards["render"] == renders + 1
    ref = masked_forward(s, top_by_hand(s.scores["blur"], 3.1))
    np.testing.assert_allclose(view.masked_panel.item.image, ref, atol=out_atol(w))
    np.testing.assert_allclose(view.result.masked, ref, atol=out_atol(w))
    # the λ slider is guessed the same way, and the guess stays right after the detour
    lam = w.masking_dock.lam_slider
    for value in (10, 20):
        with qtbot.waitSignal(view.rendered, timeout=20000):
            lam.setValue(value)
    qtbot.waitUntil(lambda: any(k.mask.lam == 0.3 for k in view._prefetched.keys()), timeout=20000)
    with qtbot.waitSignal(view.rendered, timeout=20000):
        lam.setValue(30)
    assert view.result.prefetched and s.mask.lam == 0.3
    ref = masked_forward(s, top_by_hand(s.scores["blur"], 3.1), lam=0.3)
    np.testing.assert_allclose(view.masked_panel.item.image, ref, atol=out_atol(w))


@pytest.fixture
def paused_prefetch(monkeypatch):
    """Speculative renders pause at their n-th stop check (render's own, then one per node of
    the forward) until released; the real render function runs, unchanged, around it."""
    real_render = rendering.render
    gate = {"at": 3, "paused": threading.Event(), "release": threading.Event(), "after": [], "threads": []}

    def render(req, cache, should_stop=None, **kw):
        if should_stop is None:
            return real_render(req, cache, **kw)
        asked = [0]

        def paused_stop():
            asked[0] += 1
            if asked[0] == gate["at"]:
                gate["threads"].append(torch.get_num_threads())   # while only a guess
                gate["paused"].set()
                gate["release"].wait(20)
            answer = should_stop()
            if asked[0] >= gate["at"]:
                gate["after"].append(answer)
                gate["threads"].append(torch.get_num_threads())
            return answer
        return real_render(req, cache, paused_stop, **kw)

    monkeypatch.setattr(rendering, "render", render)
    yield gate
    gate["release"].set()


def test_a_request_for_something_else_stops_the_prefetch_between_nodes(demo_window, qtbot, paused_prefetch):
    gate = paused_prefetch
    w = demo_window
    view, s = w.image_view, w.model.session
    slider = w.masking_dock.k_slider
    step(qtbot, view, slider, Qt.Key.Key_PageUp)         # 1 % -> 2 %: the guess, 3 %, starts
    qtbot.waitUntil(gate["paused"].is_set, timeout=20000)  # ... and pauses after one node
    assert len(view.live.speculating.mask) == int(s.index.total * 0.03)
    renders = view._cache.forwards["render"]
    slider.setFocus()
    qtbot.keyClick(slider, Qt.Key.Key_Up)                # 2.1 %, never shown, while it runs
    assert view.live.speculating is None                 # (2.2 % would mask the same filters)
    assert not view.live.idle
    with qtbot.waitSignal(view.rendered, timeout=20000):
        gate["release"].set()
    # the guess stopped at the check where it was: not one more node ran
    assert gate["after"] == [True]
    assert int(s.index.total * 0.03) not in kept_sizes(view) and not view.result.prefetched
    assert view._cache.forwards["render"] == renders + 1
    # and left the incremental forward as the 2 % render did: the 2.1 % output is right
    ref = masked_forward(s, top_by_hand(s.scores["blur"], 2.1))
    np.testing.assert_allclose(view.result.masked, ref, atol=out_atol(w))
    np.testing.assert_allclose(view.masked_panel.item.image, ref, atol=out_atol(w))
    qtbot.waitUntil(lambda: view.live.idle, timeout=20000)


def test_a_request_for_the_guess_in_progress_takes_it_over(demo_window, qtbot, paused_prefetch):
    gate = paused_prefetch
    w = demo_window
    view, s = w.image_view, w.model.session
    slider = w.masking_dock.k_slider
    step(qtbot, view, slider, Qt.Key.Key_PageUp)         # 1 % -> 2 %: the guess, 3 %, starts
    qtbot.waitUntil(gate["paused"].is_set, timeout=20000)
    renders, taken = view._cache.forwards["render"], view.prefetch_taken
    slider.setFocus()
    qtbot.keyClick(slider, Qt.Key.Key_PageUp)            # 3 %: what is being computed
    assert view.prefetch_taken == taken + 1 and not view.live.idle
    gate["at"] = 0   # the next guess (4 %) is not paused
    with qtbot.waitSignal(view.rendered, timeout=20000):
        gate["release"].set()
    assert gate["after"][0] is False                      # it went on
    # as a guess it left a core to the UI thread; taken over, it went on with the render's count
    tuner, limit = view._cache.threads, view.result.request.max_threads
    assert gate["threads"][0] == max(1, min(tuner.best(limit), limit - 1))
    assert gate["threads"][1] == tuner.best(limit)
    assert view.result.prefetched and view._cache.forwards["render"] == renders
    ref = masked_forward(s, top_by_hand(s.scores["blur"], 3.0))
    np.testing.assert_allclose(view.masked_panel.item.image, ref, atol=out_atol(w))
    qtbot.waitUntil(lambda: view.live.idle, timeout=20000)


def test_the_preference_turns_prefetch_off_and_is_kept(demo_window, make_window, qtbot):
    w = demo_window
    view = w.image_view
    w.prefetch_action.trigger()                          # View ▸ Prefetch the next mask step
    assert not view.prefetch_enabled and not w.prefetch_action.isChecked()
    slider = w.masking_dock.k_slider
    before = None
    for _ in range(3):
        step(qtbot, view, slider, Qt.Key.Key_PageUp)
        qtbot.waitUntil(lambda: view.live.idle, timeout=20000)
        # counted once a render is done: the render thread runs one job at a time, so a guess
        # that was running when the preference stopped it has ended by then
        before = view._cache.forwards["prefetch"] if before is None else before
    assert view.live.speculating is None and view._prefetched.keys() == []
    assert view._cache.forwards["prefetch"] == before and view.prefetch_hits == 0
    ref = masked_forward(w.model.session, top_by_hand(w.model.session.scores["blur"], 4.0))
    np.testing.assert_allclose(view.result.masked, ref, atol=out_atol(w))
    w2 = make_window()
    assert not w2.prefetch_action.isChecked() and not w2.image_view.prefetch_enabled
    w2.prefetch_action.trigger()
    assert w2.image_view.prefetch_enabled


def test_a_click_after_a_kept_guess_reruns_only_the_clicked_layer_onwards(demo_window, qtbot):
    """The guess was computed aside: the incremental forward still starts from what is shown."""
    from PySide6.QtCore import QPointF
    w = demo_window
    view, s = w.image_view, w.model.session
    slider = w.masking_dock.k_slider
    total = s.index.total
    two_steps_up_and_the_guess_kept(qtbot, view, slider, total)
    w.model.select_layer("conv_last.weight")
    grid = w.filter_dock
    grid.raise_()
    qtbot.waitUntil(lambda: grid.plot.isVisible() and grid.layer is not None, timeout=10000)
    scene = grid.viewbox.mapViewToScene(QPointF(5 + 0.5, 1 + 0.5))   # out 1, in 5
    with qtbot.waitSignal(view.rendered, timeout=20000):
        qtbot.mouseClick(grid.plot.viewport(), Qt.MouseButton.LeftButton, pos=grid.plot.mapFromScene(scene))
    qtbot.waitUntil(lambda: view.live.idle, timeout=20000)
    _, incremental = view._cache._incremental
    assert 0 < incremental.last_recomputed <= 3 < len(incremental.nodes)   # conv_last, the skip's add, out
    assert view.result.masked_share == incremental.last_share and 0 < incremental.last_share < 0.2
    top = top_by_hand(s.scores["blur"], 3.0)
    offset = 0   # global index of conv_last's filter (0, 0): the 4-D weights before it, out x in
    for name, value in s.target.state_dict.items():
        if name == "conv_last.weight":
            break
        if name.endswith("weight") and value.ndim == 4:
            offset += value.shape[0] * value.shape[1]
    clicked = offset + 1 * s.target.state_dict["conv_last.weight"].shape[1] + 5
    assert sorted(s.mask.indices.tolist()) == sorted(set(top.tolist()) ^ {clicked})
    ref = masked_forward(s, sorted(set(top.tolist()) ^ {clicked}))
    np.testing.assert_allclose(view.result.masked, ref, atol=out_atol(w))


def test_going_back_to_a_state_already_shown_needs_no_forward(demo_window, qtbot):
    w = demo_window
    view, s = w.image_view, w.model.session
    slider = w.masking_dock.k_slider
    total = s.index.total
    step(qtbot, view, slider, Qt.Key.Key_PageUp)                  # 1 % -> 2 %: a render
    qtbot.waitUntil(lambda: view.live.idle and not view.rendering_ahead, timeout=20000)
    renders = view._cache.forwards["render"]
    step(qtbot, view, slider, Qt.Key.Key_PageDown)                # back to 1 % (the guess was 3 %)
    assert view.result.prefetched and view._cache.forwards["render"] == renders
    assert len(s.mask) == int(total * 0.01)
    ref = masked_forward(s, top_by_hand(s.scores["blur"], 1.0))
    np.testing.assert_allclose(view.masked_panel.item.image, ref, atol=out_atol(w))
    step(qtbot, view, slider, Qt.Key.Key_PageUp)                  # and 2 % again
    assert view.result.prefetched and view._cache.forwards["render"] == renders
    ref = masked_forward(s, top_by_hand(s.scores["blur"], 2.0))
    np.testing.assert_allclose(view.masked_panel.item.image, ref, atol=out_atol(w))


# -- the slider's stops ----------------------------------------------------------------------
def stops_kept(view, total, percents) -> bool:
    sizes = kept_sizes(view)
    return all(int(total * p / 100) in sizes for p in percents)


def test_the_slider_stops_are_filled_when_idle_and_shown_without_a_forward(demo_window, qtbot):
    w = demo_window
    view, s = w.image_view, w.model.session
    dock = w.masking_dock
    total = s.index.total
    assert not w.fill_stops_action.isChecked()                    # (the tests' default: off)
    w.fill_stops_action.trigger()                                 # View ▸ Fill the top-k slider's stops
    assert view.fill_stops and w.fill_stops_action.isChecked()
    assert w.activity_label.text() == "idle · rendering ahead…"   # the status bar says so
    # at 1 %: 1.1 %, then every whole percent but 0 (no filters: no forward) and 1; 0.9 % of the
    # tiny demo's 496 filters is the same 4 filters as 1 %: nothing to render either
    assert int(total * 0.009) == int(total * 0.01)
    wanted = [1.1, *range(2, 11)]
    qtbot.waitUntil(lambda: stops_kept(view, total, wanted), timeout=60000)
    qtbot.waitUntil(lambda: view.live.idle and not view.rendering_ahead, timeout=20000)
    assert view.live.speculated == len(wanted)                     # each once, then it stops
    assert w.activity_label.text() == "idle"
    renders = view._cache.forwards["render"]
    for percent in (5, 10, 3):                                     # the marks, clicked
        with qtbot.waitSignal(view.rendered, timeout=20000):
            qtbot.mouseClick(dock.mark_buttons[percent], Qt.MouseButton.LeftButton)
        assert view.result.prefetched and len(s.mask) == int(total * percent / 100)
        ref = masked_forward(s, top_by_hand(s.scores["blur"], percent))
        np.testing.assert_allclose(view.masked_panel.item.image, ref, atol=out_atol(w))
    # from 3 % the fill goes on with that state's new stops, 2.9 and 3.1 %
    qtbot.waitUntil(lambda: stops_kept(view, total, [2.9, 3.1]), timeout=60000)
    for key, percent in ((Qt.Key.Key_Up, 3.1), (Qt.Key.Key_PageUp, 4.1)):   # one step on from 3 %
        with qtbot.waitSignal(view.rendered, timeout=20000):
            dock.k_slider.setFocus()
            qtbot.keyClick(dock.k_slider, key)
        ref = masked_forward(s, top_by_hand(s.scores["blur"], percent))
        np.testing.assert_allclose(view.masked_panel.item.image, ref, atol=out_atol(w))
        assert view.result.prefetched == (percent == 3.1)          # 3.1 % is a stop of 3 %; 4.1 % not
    assert view._cache.forwards["render"] == renders + 1
    # from 4.1 % it goes on with the guess (5.1 %) and that state's stops (4.0 %; 4.2 % of 496
    # filters is the 20 of 4.1 %), then ends
    qtbot.waitUntil(lambda: stops_kept(view, total, [5.1, 4.0]), timeout=60000)
    qtbot.waitUntil(lambda: view.live.idle and not view.rendering_ahead, timeout=20000)
    done = view.live.speculated
    qtbot.wait(300)
    assert view.live.speculated == done
    # another degradation has no next step to guess, and all its stops are new: they wait for a
    # pause (nothing starts with the change), then are filled
    dock.degradation.setCurrentText("noise")
    assert view._fill_timer.isActive() and view.live.speculating is None and not view.live.idle
    qtbot.waitUntil(lambda: view.live.idle and not view.rendering_ahead, timeout=60000)
    noise_5 = np.sort(top_by_hand(s.scores["noise"], 5.0))
    assert any(np.array_equal(k.mask.indices, noise_5) for k in view._prefetched.keys())
    assert w.activity_label.text() == "idle"


def test_turning_the_fill_off_stops_it_and_is_kept(demo_window, make_window, qtbot, paused_prefetch):
    gate = paused_prefetch
    w = demo_window
    view = w.image_view
    w.fill_stops_action.trigger()                                  # on: the first stop starts...
    qtbot.waitUntil(gate["paused"].is_set, timeout=20000)          # ... and pauses after a node
    assert view.live.speculating is not None
    w.fill_stops_action.trigger()                                  # off, while it runs
    assert not view.rendering_ahead and not view.fill_stops
    gate["release"].set()
    qtbot.waitUntil(lambda: len(gate["after"]) > 0, timeout=20000)
    qtbot.waitUntil(lambda: view.live.idle, timeout=20000)
    assert gate["after"] == [True] and view._prefetched.keys() == []   # stopped between nodes
    w2 = make_window()
    assert not w2.fill_stops_action.isChecked() and not w2.image_view.fill_stops
    w2.fill_stops_action.trigger()
    assert w2.image_view.fill_stops
    w3 = make_window()
    assert w3.fill_stops_action.isChecked()
