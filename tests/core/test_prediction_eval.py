"""scripts/eval_prediction.py's per-picture table: exact labels counted per held-out picture and class."""
from __future__ import annotations

import sys
from pathlib import Path

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
