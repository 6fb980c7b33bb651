"""Packed Bloom-filter arrays as every Dice kernel takes them: checks, words, popcounts, counts.

A file's filters are a ``uint8`` array of shape ``(n, l // 8)`` holding each record's bytes in
clkhash's layout.  The kernels (:mod:`~linkage_unit.matching.similarity`,
:mod:`~linkage_unit.matching.blocking`, :mod:`~linkage_unit.matching.gpu`) all validate them
the same way, read them as little-endian 64-bit words, count their set bits, and decide
``2 * c / (double)(|a| + |b|) >= threshold`` with one integer table, so that every path scores
a pair bit for bit as anonlink's ``dice_coefficient_accelerated`` does.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator

import numba
import numpy as np
from numba import njit
from numpy.typing import NDArray

from linkage_unit.matching.intrinsics import popcount

__all__ = [
    "check_bits",
    "check_same_width",
    "check_threshold",
    "min_count_table",
    "numba_threads",
    "row_popcounts",
    "to_words",
]


def check_bits(name: str, bits: object) -> NDArray[np.uint8]:
    """The packed filters ``bits`` as a C-contiguous ``uint8`` array ``(records, bytes)``.

    Args:
        name: The argument's name, for the error message.
        bits: What the caller passed.

    Raises:
        ValueError: If ``bits`` is not a 2-D ``uint8`` array (no dtype conversion is made,
            so that a wrong array is refused rather than silently reinterpreted).
    """
    array = np.asarray(bits)
    if array.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 array of packed filters, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (records x filter bytes), got shape {array.shape}")
    return np.ascontiguousarray(array)


def check_same_width(
    a: NDArray[np.uint8], b: NDArray[np.uint8], names: tuple[str, str] = ("a_bits", "b_bits")
) -> None:
    """Refuse two filter arrays of different widths (``names`` are the arguments' names).

    Raises:
        ValueError: If the arrays' rows differ in length.
    """
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same filter width, got {a.shape[1]} and "
            f"{b.shape[1]} bytes per row"
        )


def check_threshold(threshold: object, name: str = "threshold") -> float:
    """A Dice threshold as a float in ``(0, 1]``.

    Args:
        threshold: What the caller passed; a real number (not a bool, not a string).
        name: The argument's name, for the error message.

    Raises:
        ValueError: If ``threshold`` is not a real number in ``(0, 1]`` (NaN included).
    """
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ValueError(f"{name} must be a real number in (0, 1], got {threshold!r}")
    value = float(threshold)
    if not 0.0 < value <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return value


def to_words(bits: NDArray[np.uint8], n_words: int | None = None) -> NDArray[np.uint64]:
    """Each row's bytes as little-endian ``uint64`` words, zero-padded to ``n_words``.

    Padding bits count as unset, so any byte width works; the result is a fresh, aligned
    array, so word loads are aligned.  ``n_words`` defaults to the fewest that hold a row.
    """
    if n_words is None:
        n_words = (bits.shape[1] + 7) // 8
    words = np.zeros((bits.shape[0], n_words), np.uint64)
    words.view(np.uint8)[:, : bits.shape[1]] = bits
    return words


@njit(nogil=True, cache=True)
def row_popcounts(words: NDArray[np.uint64]) -> NDArray[np.int64]:
    """Set bits of each row of ``words`` (as :func:`to_words` makes them)."""
    # Serial: this is a tiny fraction of any kernel's work, and parallel=True costs compile
    # time.
    n, width = words.shape
    counts = np.zeros(n, np.int64)
    for r in range(n):
        total = np.uint64(0)
        # A plain reduction over words: LLVM vectorises ctpop here (vpopcntq on AVX-512).
        for w in range(width):
            total += popcount(words[r, w])
        counts[r] = np.int64(total)
    return counts


@njit(nogil=True, cache=True)
def min_count_table(n_bits: int, threshold: float) -> NDArray[np.int64]:
    """``table[d]`` = least ``c`` with ``float(2c) / float(d) >= threshold``, for ``d = |a| + |b|``.

    Beyond any reachable count (``c <= d // 2``) the entry is ``d // 2 + 1``; ``d = 0`` (two
    all-zero filters) is never a candidate.  The quotient is the one used for scores, so
    comparing integer counts with this table decides exactly what the division would.
    """
    table = np.empty(2 * n_bits + 1, np.int64)
    table[0] = 1
    for d in range(1, 2 * n_bits + 1):
        # Start just below the real-number answer, then settle it with the exact test.
        c = int(threshold * d / 2.0) - 1
        c = 0 if c < 0 else min(c, d // 2)
        while c > 0 and np.float64(2 * (c - 1)) / np.float64(d) >= threshold:
            c -= 1
        while c <= d // 2 and np.float64(2 * c) / np.float64(d) < threshold:
            c += 1
        table[d] = c
    return table


@contextlib.contextmanager
def numba_threads(workers: int | None) -> Iterator[None]:
    """Run numba parallel code on ``workers`` threads (``None``: as set), dynamically scheduled."""
    previous_threads = numba.get_num_threads()
    # Kernels' units of work (tiles, tables) vary in cost; hand them out one at a time.
    previous_chunk = numba.set_parallel_chunksize(1)
    try:
        if workers is not None:
            numba.set_num_threads(workers)
        yield
    finally:
        numba.set_num_threads(previous_threads)
        numba.set_parallel_chunksize(previous_chunk)
