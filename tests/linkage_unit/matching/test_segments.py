"""Tests of per-segment Dice and comparison levels on segmented encodings."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from linkage_unit.matching.fellegi_sunter import random_pairs
from linkage_unit.matching.segments import Segment, comparison_levels, segment_dice


def _reference_dice(a: NDArray[np.uint8], b: NDArray[np.uint8], start: int, end: int) -> float:
    ua = np.unpackbits(a)[start:end].astype(np.int64)  # unpackbits is big-endian, as clkhash
    ub = np.unpackbits(b)[start:end].astype(np.int64)
    if ua.sum() == 0 or ub.sum() == 0:
        return float("nan")
    return float(2 * (ua & ub).sum() / (ua.sum() + ub.sum()))


def test_segment_dice_matches_numpy_reference() -> None:
    rng = np.random.default_rng(11)
    a = (rng.random((40, 16)) < 0.3).astype(np.uint8) * rng.integers(0, 256, (40, 16), np.uint8)
    b = rng.integers(0, 256, (30, 16), np.uint8)
    a[5, 0:3] = 0  # an all-zero first segment
    # Not byte-aligned, with a gap between segments.
    layout = [Segment("x", 0, 21), Segment("y", 21, 64, "date"), Segment("z", 70, 128, "postcode")]
    i, j = random_pairs(40, 30, 500, seed=2)
    i = np.r_[i, 5]
    j = np.r_[j, 0]
    got = segment_dice(a, b, i, j, layout)
    want = np.array(
        [
            [_reference_dice(a[p], b[q], s.start, s.end) for s in layout]
            for p, q in zip(i, j, strict=True)
        ]
    )
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)])
    assert np.isnan(got[-1, 0])


def test_levels_follow_thresholds() -> None:
    layout = [Segment("n", 0, 8, "name"), Segment("s", 8, 16, "exact")]
    dice = np.array([[1.0, 1.0], [0.85, 0.5], [0.6, np.nan], [0.1, 0.99]])
    assert comparison_levels(dice, layout).tolist() == [[0, 0], [1, 1], [2, -1], [3, 0]]


def test_segment_dice_refuses_what_the_kernels_refuse() -> None:
    # The shared checks of the matching layer: no silent dtype conversion, one width.
    layout = [Segment("x", 0, 16)]
    rows = np.zeros(1, np.int64)
    with pytest.raises(ValueError, match=r"a_bits must be a uint8 array .* int64"):
        segment_dice(np.zeros((1, 2), np.int64), np.zeros((1, 2), np.uint8), rows, rows, layout)
    with pytest.raises(ValueError, match=r"a_bits and b_bits must have the same filter width"):
        segment_dice(np.zeros((1, 2), np.uint8), np.zeros((1, 3), np.uint8), rows, rows, layout)
