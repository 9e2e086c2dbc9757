"""core/index_sets.py: the sorted-set operations a mask change runs, against numpy's own set
functions on random index arrays (unsorted, with repeats, empty, already sorted)."""
from __future__ import annotations

import numpy as np
import pytest

from faig_gui.core.index_sets import as_index_set, difference, symmetric_difference, union


def _arrays():
    rng = np.random.default_rng(0)
    yield np.zeros(0, dtype=np.int64)
    yield np.array([7], dtype=np.int64)
    yield np.arange(0, 50, 3, dtype=np.int64)                  # sorted and unique already
    for n in (5, 200, 5000):
        yield rng.integers(0, 2 * n, n).astype(np.int64)        # unsorted, with repeats


@pytest.mark.parametrize("a", list(_arrays()))
@pytest.mark.parametrize("b", list(_arrays()))
def test_set_operations_equal_numpys(a, b):
    np.testing.assert_array_equal(as_index_set(a), np.unique(a))
    np.testing.assert_array_equal(union(a, b), np.union1d(a, b))
    np.testing.assert_array_equal(difference(a, b), np.setdiff1d(a, b))
    np.testing.assert_array_equal(symmetric_difference(a, b), np.setxor1d(a, b))
    assert as_index_set(a).dtype == np.int64


def test_iterables_and_other_integer_types_are_accepted():
    np.testing.assert_array_equal(as_index_set([3, 1, 3, 2]), [1, 2, 3])
    np.testing.assert_array_equal(union(np.array([5, 1], dtype=np.int32), iter([2, 5])), [1, 2, 5])


def test_a_mask_does_not_change_with_the_callers_array():
    from faig_gui.core.masking import FilterMask
    idx = np.array([1, 4, 9], dtype=np.int64)
    m = FilterMask(idx)
    idx[0] = 100
    np.testing.assert_array_equal(m.indices, [1, 4, 9])
