"""Sets of filter indices (sorted, unique int64 arrays) and their set operations, by sorting.

numpy's ``unique``, ``union1d``, ``setdiff1d`` and ``setxor1d`` go through a hash table for
integers (numpy 2.4): 95-145 ms each for the 185,000 indices of RRDBNet's top 10 %, against 2 ms
for a sort, and a mask change runs several of them on the UI thread. The inputs here are sorted
already (or nearly), so a sort and one pass over neighbours give the same sets.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def as_index_set(values: Iterable[int] | np.ndarray) -> np.ndarray:
    """``values`` as a sorted array of unique int64 (what np.unique returns): no copy when the
    input is such an array already."""
    a = np.asarray(values if isinstance(values, np.ndarray) else np.fromiter(values, dtype=np.int64),
                   dtype=np.int64).reshape(-1)
    if a.size < 2 or bool(np.all(a[1:] > a[:-1])):
        return a
    a = np.sort(a)
    keep = np.empty(a.size, dtype=bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


def contains(sorted_set: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Boolean per value: is it in ``sorted_set`` (a sorted unique array)."""
    if sorted_set.size == 0:
        return np.zeros(values.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), sorted_set.size - 1)
    return sorted_set[pos] == values


def union(a: np.ndarray, b: Iterable[int] | np.ndarray) -> np.ndarray:
    b = as_index_set(b)
    if b.size == 0:
        return as_index_set(a)
    return as_index_set(np.concatenate([as_index_set(a), b]))


def difference(a: np.ndarray, b: Iterable[int] | np.ndarray) -> np.ndarray:
    """What of ``a`` is not in ``b``."""
    a, b = as_index_set(a), as_index_set(b)
    return a if b.size == 0 else a[~contains(b, a)]


def symmetric_difference(a: np.ndarray, b: Iterable[int] | np.ndarray) -> np.ndarray:
    """What is in exactly one of ``a`` and ``b``."""
    a, b = as_index_set(a), as_index_set(b)
    return union(difference(a, b), difference(b, a))
