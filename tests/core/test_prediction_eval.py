"""scripts/eval_prediction.py's per-picture table: exact labels counted per held-out picture and class."""
from __future__ import annotations

import sys
from pathlib import Path

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
