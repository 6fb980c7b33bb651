"""The shared layer of the Dice kernels against plain numpy and scalar Python."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkage_unit.matching import bitarrays


def test_check_bits_names_the_argument_and_converts_nothing() -> None:
    with pytest.raises(ValueError, match=r"left must be a uint8 array.*int64"):
        bitarrays.check_bits("left", np.zeros((2, 8), np.int64))
    with pytest.raises(ValueError, match="left must be 2-D"):
        bitarrays.check_bits("left", np.zeros(8, np.uint8))
    strided = np.zeros((4, 16), np.uint8)[:, ::2]
    checked = bitarrays.check_bits("left", strided)
    assert checked.flags.c_contiguous and checked.shape == (4, 8)


def test_check_same_width_and_threshold_name_their_arguments() -> None:
    with pytest.raises(ValueError, match="x and y must have the same filter width, got 8 and 16"):
        bitarrays.check_same_width(
            np.zeros((1, 8), np.uint8), np.zeros((1, 16), np.uint8), ("x", "y")
        )
    bitarrays.check_same_width(np.zeros((1, 8), np.uint8), np.zeros((3, 8), np.uint8))
    assert bitarrays.check_threshold(np.float32(0.5)) == 0.5
    assert bitarrays.check_threshold(1) == 1.0
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"floor must be in \(0, 1\]"):
            bitarrays.check_threshold(bad, "floor")
    for wrong in ("0.5", True, None):
        with pytest.raises(ValueError, match="threshold must be a real number"):
            bitarrays.check_threshold(wrong)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 6), st.integers(0, 20), st.integers(0, 2**32 - 1))
def test_words_and_popcounts_equal_numpy(rows: int, width: int, seed: int) -> None:
    bits = np.random.default_rng(seed).integers(0, 256, (rows, width), dtype=np.uint8)
    words = bitarrays.to_words(bits)
    assert words.shape == (rows, (width + 7) // 8) and words.dtype == np.uint64
    # Little-endian words over the bytes, zero-padded: the same bytes, then zeros.
    padded = np.zeros((rows, 8 * words.shape[1]), np.uint8)
    padded[:, :width] = bits
    np.testing.assert_array_equal(words.view(np.uint8), padded)
    assert bitarrays.to_words(bits, words.shape[1] + 2).shape == (rows, words.shape[1] + 2)
    counts = bitarrays.row_popcounts(words)
    np.testing.assert_array_equal(counts, np.unpackbits(bits, axis=1).sum(axis=1))
    assert counts.dtype == np.int64


@pytest.mark.parametrize("threshold", [1e-9, 0.1, 0.5, 0.75, 0.8, 0.875, 0.9, 1 / 3, 1.0])
def test_min_count_table_equals_the_scalar_rule(threshold: float) -> None:
    """table[d] is the least c with 2c / d >= t (Python's float division is IEEE double)."""
    n_bits = 64
    table = bitarrays.min_count_table(n_bits, threshold)
    assert table[0] == 1
    for d in range(1, 2 * n_bits + 1):
        expected = next((c for c in range(d // 2 + 1) if 2 * c / d >= threshold), d // 2 + 1)
        assert table[d] == expected, d


def test_numba_threads_sets_and_restores() -> None:
    before = numba.get_num_threads()
    with bitarrays.numba_threads(1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    with bitarrays.numba_threads(None):
        assert numba.get_num_threads() == before
