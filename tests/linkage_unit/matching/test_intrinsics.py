"""The scalar LLVM intrinsics against Python's integer operations.

The bit-sliced counter (``count_at_least``) is tested through the Dice kernel, whose results
are compared with anonlink and plain numpy in ``test_similarity.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from linkage_unit.matching.intrinsics import bit_length, popcount, trailing_zeros


@njit(cache=False)
def _apply(values: NDArray[np.uint64]) -> NDArray[np.int64]:
    out = np.zeros((values.shape[0], 3), np.int64)
    for k in range(values.shape[0]):
        x = values[k]
        out[k, 0] = np.int64(popcount(x))
        out[k, 1] = np.int64(trailing_zeros(x)) if x else -1
        out[k, 2] = bit_length(np.int64(x >> np.uint64(1)))
    return out


def test_intrinsics_equal_python_integers() -> None:
    rng = np.random.default_rng(5)
    values = np.concatenate([
        np.array([0, 1, 2, 2**63, 2**64 - 1], np.uint64),
        rng.integers(0, 2**64 - 1, 200, dtype=np.uint64, endpoint=True),
    ])  # fmt: skip
    got = _apply(values)
    for (pop, tz, bl), x in zip(got.tolist(), values.tolist(), strict=True):
        assert pop == bin(x).count("1")
        assert tz == ((x & -x).bit_length() - 1 if x else -1)
        assert bl == (x >> 1).bit_length()
