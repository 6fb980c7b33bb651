"""Find every pair of Bloom-filter encodings (CLKs) whose Dice coefficient reaches a threshold.

Inputs are packed bit arrays: ``uint8`` arrays of shape ``(n, l // 8)`` holding the bytes of
each record's ``bitarray`` (clkhash's layout).  The Dice coefficient of two filters is
``2 * |a & b| / (|a| + |b|)``, computed exactly as anonlink's ``dice_coefficient_accelerated``
does: integer counts, one IEEE double division, and a pair is kept when the quotient is
``>= threshold``.  Pairs of all-zero filters score 0 and are therefore never candidates.

How the kernel works, and why
-----------------------------
Comparing every row of A with every row of B one pair at a time costs one popcount per
64-bit word per pair.  On CPUs without a vector popcount (AVX2, like the 2-core EPYC this was
tuned on) that is the bottleneck, so the kernel counts *bit-sliced* instead:

* B is sorted by popcount and cut into groups of ``64 * LANE_WORDS`` rows.  Each group is
  transposed into bit planes: plane ``p`` is a ``LANE_WORDS``-word vector whose bit ``r``
  says whether row ``r`` of the group has bit ``p`` set.
* For one row ``a`` of A, ``|a & b_r|`` for all rows ``r`` of a group at once is the number
  of planes, among those at ``a``'s set bits, that have bit ``r`` set - a vertical count.
  It is accumulated with a Harley-Seal carry-save adder tree into a bit-sliced counter
  (level ``k`` holds bit ``k`` of every lane's count), which costs about five bitwise
  vector operations per set bit of ``a`` for the whole group.  That is several times less
  work than AND + popcount of every word of every pair.
* While counting, a row gives up on a group as soon as no lane can still reach the
  threshold (count so far + planes still to come < least count needed); on random
  filters at threshold 0.8 that skips more than half the work.
* At the end the counter is compared with the least count that can reach the threshold in
  that group (``bitarrays.min_count_table``), still bit-sliced; only the lanes that pass are
  decoded and checked exactly, so the result is bit-for-bit what the direct formula gives.

The vector code (:mod:`~linkage_unit.matching.intrinsics`) is LLVM IR on ``<LANE_WORDS x i64>``
vectors, which LLVM lowers for the host CPU: one 256-bit register per vector on AVX2, one
512-bit register where AVX-512 exists, with ``vpternlogq`` for the adders there.  Row
popcounts use plain ``ctpop`` in a loop LLVM vectorises: ``vpopcntq`` on CPUs with AVX-512
VPOPCNTDQ.

The popcount bound ``dice <= 2 * min(|a|, |b|) / (|a| + |b|)`` restricts each row of A to a
window of B's popcounts; groups outside it are skipped.  The window is computed with the
same floating-point test as the final one, so it never removes a qualifying pair.

Work is split into tiles of A rows that run in parallel (numba's threading layer; the
``workers`` argument or ``numba.set_num_threads`` sets how many), and results are produced
tile by tile so memory stays bounded however low the threshold is: besides its inputs, a
call holds B's planes (the size of B) and the candidates of a few tiles at a time.

numba compiles the kernels on first use (about ten seconds) and caches them on disk.

Longer than 500 lines because the kernels and the driver that sizes, reruns and sorts their
tile buffers share one private buffer protocol; the emitted vector code lives in
:mod:`~linkage_unit.matching.intrinsics` and the shared checks and tables in
:mod:`~linkage_unit.matching.bitarrays`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from typing import Any, Final

import numba
import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

from linkage_unit.matching.bitarrays import (
    check_bits,
    check_same_width,
    check_threshold,
    min_count_table,
    numba_threads,
    row_popcounts,
    to_words,
)
from linkage_unit.matching.candidates import Candidates
from linkage_unit.matching.intrinsics import (
    BATCH,
    LANE_WORDS,
    bit_length,
    count_at_least,
    trailing_zeros,
)

__all__ = [
    "DEFAULT_MAX_CANDIDATES",
    "DEFAULT_TILE_ROWS",
    "CandidateLimitExceeded",
    "dice_candidates",
    "iter_dice_candidates",
]

#: Default cap on the number of pairs :func:`dice_candidates` returns (about 4.8 GB of output).
DEFAULT_MAX_CANDIDATES: Final = 200_000_000
#: Default number of A rows per tile; a tile is the unit of parallel work and of output.
DEFAULT_TILE_ROWS: Final = 128

_GROUP_ROWS: Final = 64 * LANE_WORDS
# Levels of the bit-sliced counter; a count needs bit_length(count) levels, so 32 levels
# cover filters of up to 2**32 - 1 bits.
_MAX_LEVELS: Final = 32
# Output buffers per kernel call are sized to stay near this many bytes when possible.
_BATCH_BUFFER_BYTES: Final = 256 * 2**20
_INITIAL_TILE_CAPACITY: Final = 1024
_BYTES_PER_CANDIDATE: Final = 24  # int64 i, int64 j, float64 score


# The arrays every tile reads: A's words and popcounts, B's planes, sorted popcounts and
# order, the groups' popcount ranges, the least-count table and the popcount windows.
_ScanInputs = tuple[
    NDArray[np.uint64], NDArray[np.int64], NDArray[np.uint64], NDArray[np.int64],
    NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64],
    NDArray[np.int64], NDArray[np.int64],
]  # fmt: skip


class CandidateLimitExceeded(ValueError):
    """More candidate pairs reach the threshold than the caller's ``max_candidates`` allows."""


# --------------------------------------------------------------------------------------
# numba kernels
# --------------------------------------------------------------------------------------


@njit(parallel=True, nogil=True, cache=True)
def _build_planes(
    words: NDArray[np.uint64], order: NDArray[np.int64], planes: NDArray[np.uint64]
) -> None:
    """Transpose B (rows taken in `order`) into zeroed planes[group, bit, lane_word]."""
    m, width = words.shape
    for g in prange(planes.shape[0]):
        first = g * _GROUP_ROWS
        last = min(m, first + _GROUP_ROWS)
        for r in range(first, last):
            lane = r - first
            q = lane >> 6
            bit = np.uint64(1) << np.uint64(lane & 63)
            row = order[r]
            for w in range(width):
                x = words[row, w]
                # Visit set bits only: cost follows the density, not the filter length.
                while x:
                    planes[g, w * 64 + np.int64(trailing_zeros(x)), q] |= bit
                    x &= x - np.uint64(1)


@njit(nogil=True, cache=True)
def _popcount_windows(
    n_bits: int, threshold: float, min_count: NDArray[np.int64], anonlink_window: bool
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """For each |a|, the interval [lo, hi] of |b| for which some pair can qualify.

    The best possible pair has |a & b| = min(|a|, |b|); its score rises with |b| up to |a|
    and falls after, so the qualifying |b| form one interval, found by binary search on the
    exact integer test.  With `anonlink_window` the interval is further cut to anonlink's
    prefilter |  |a| - |b|  | <= trunc(2 |a| (1 / t - 1)), whose rounding can drop pairs
    that score exactly the threshold (see `dice_candidates`).
    """
    lo = np.empty(n_bits + 1, np.int64)
    hi = np.empty(n_bits + 1, np.int64)
    for pa in range(n_bits + 1):
        if pa == 0 or min_count[2 * pa] > pa:  # |b| = |a| is the best case
            lo[pa] = 1
            hi[pa] = 0
            continue
        # Smallest qualifying |b| in [0, pa]: qualifies(pb) is monotone there.
        left, right = 0, pa
        while left < right:
            mid = (left + right) // 2
            if min_count[pa + mid] <= mid:
                right = mid
            else:
                left = mid + 1
        lo[pa] = left
        # Largest qualifying |b| in [pa, n_bits].
        left, right = pa, n_bits
        while left < right:
            mid = (left + right + 1) // 2
            if min_count[pa + mid] <= pa:
                left = mid
            else:
                right = mid - 1
        hi[pa] = left
        if anonlink_window:
            # anonlink's C++: uint32 max_popcnt_delta = 2 * popcnt_a * (1/threshold - 1),
            # evaluated in double and converted the way x86-64 does (cvttsd2si to 64 bits,
            # low 32 bits kept; out of range gives 0x8000000000000000, so 0).  Only
            # thresholds below about 1e-9 reach the wrap-around.
            spread = np.float64(2 * pa) * (1.0 / threshold - 1.0)
            delta = np.int64(spread) & 0xFFFFFFFF if spread < 2.0**63 else 0
            lo[pa] = max(lo[pa], pa - delta)
            hi[pa] = min(hi[pa], pa + delta)
    return lo, hi


@njit(nogil=True, cache=True)
def _scan_tile(
    t: np.int64,
    start: int,
    rows: int,
    data: _ScanInputs,
    capacity: int,
    out_i: NDArray[np.int64],
    out_j: NDArray[np.int64],
    out_s: NDArray[np.float64],
) -> int:
    """Candidates of A rows start + [0, rows) into out_*[t]; returns how many were found.

    ``data`` is :attr:`_Prepared.data`.  At most `capacity` pairs are written, in no
    particular order; when more are found the caller reruns the tile with room.  (A plain
    function rather than the body of the prange loop, and free of
    np.argsort/np.searchsorted/fancy indexing, to keep compile time low.)
    """
    a_words, pa, planes, pb_sorted, order_b, group_lo, group_hi, min_count, win_lo, win_hi = data
    m = pb_sorted.shape[0]
    zero_plane = planes.shape[1] - 1
    width = a_words.shape[1]
    # Plane lists of every row of the tile, each padded with the zero plane to whole
    # batches of 16; built once per tile and reused for every group of B.
    offsets = np.zeros(rows + 1, np.int64)
    for r in range(rows):
        offsets[r + 1] = offsets[r] + (pa[start + r] + BATCH - 1) // BATCH * BATCH
    idx = np.empty(offsets[rows], np.int32)
    tile_lo = zero_plane + 1  # above any popcount
    tile_hi = -1
    for r in range(rows):
        k = offsets[r]
        for w in range(width):
            x = a_words[start + r, w]
            while x:
                plane = w * 64 + np.int64(trailing_zeros(x))
                idx[k] = np.int32(plane * LANE_WORDS)
                k += 1
                x &= x - np.uint64(1)
        while k < offsets[r + 1]:
            idx[k] = np.int32(zero_plane * LANE_WORDS)
            k += 1
        p = pa[start + r]
        if win_lo[p] <= win_hi[p]:
            tile_lo = min(tile_lo, win_lo[p])
            tile_hi = max(tile_hi, win_hi[p])

    state = np.zeros((_MAX_LEVELS, LANE_WORDS), np.uint64)
    mask = np.zeros(LANE_WORDS, np.uint64)
    found = 0
    # B's groups are sorted by popcount, so the tile's window is a run of groups.
    g_first = 0
    while g_first < group_hi.shape[0] and group_hi[g_first] < tile_lo:
        g_first += 1
    g_last = g_first
    while g_last < group_lo.shape[0] and group_lo[g_last] <= tile_hi:
        g_last += 1
    # Group-outer order keeps one group's planes in cache while all tile rows use it.
    for g in range(g_first, g_last):
        planes_g = planes[g]
        for r in range(rows):
            i = start + r
            p = pa[i]
            lo = win_lo[p]
            hi = win_hi[p]
            if lo > hi or group_hi[g] < lo or group_lo[g] > hi:
                continue
            # Counts are non-decreasing in |b|, so the group's least useful |b| gives a
            # bound no qualifying lane can be below.
            bound = min_count[p + max(lo, group_lo[g])]
            count_at_least(planes_g, idx, offsets[r], p, bound, state, mask)
            levels = bit_length(p)
            for q in range(LANE_WORDS):
                bits = mask[q]
                while bits:
                    lane = trailing_zeros(bits)
                    bits &= bits - np.uint64(1)
                    js = g * _GROUP_ROWS + q * 64 + np.int64(lane)
                    if js >= m:
                        break  # padding lanes of the last group; later lanes too
                    pbj = pb_sorted[js]
                    if pbj < lo or pbj > hi:
                        continue
                    c = np.int64(0)
                    for k in range(levels):
                        c |= np.int64((state[k, q] >> lane) & np.uint64(1)) << k
                    if c < min_count[p + pbj]:
                        continue
                    if found < capacity:
                        out_i[t, found] = i
                        out_j[t, found] = order_b[js]
                        # anonlink's formula: (2 * count) / (double)(|a| + |b|).
                        out_s[t, found] = np.float64(2 * c) / np.float64(p + pbj)
                    found += 1
    return found


@njit(parallel=True, nogil=True, cache=True)
def _dice_tiles(
    data: _ScanInputs,
    tile_starts: NDArray[np.int64],
    tile_lens: NDArray[np.int64],
    capacity: int,
    out_i: NDArray[np.int64],
    out_j: NDArray[np.int64],
    out_s: NDArray[np.float64],
    counts: NDArray[np.int64],
) -> None:
    """Scan tiles in parallel: tile t is A rows tile_starts[t] + [0, tile_lens[t])."""
    for t in prange(tile_starts.shape[0]):
        counts[t] = _scan_tile(
            np.int64(t),  # prange indices are unsigned; one signature, one compilation
            tile_starts[t],
            tile_lens[t],
            data,
            capacity,
            out_i,
            out_j,
            out_s,
        )


# --------------------------------------------------------------------------------------
# Python driver
# --------------------------------------------------------------------------------------


def _check_supported_width(a: NDArray[np.uint8]) -> None:
    # Plane offsets are int32 word offsets (half the index memory of int64).
    if (a.shape[1] + 8) * 8 * LANE_WORDS >= 2**31:
        raise ValueError(f"filters of {a.shape[1] * 8:,} bits are longer than supported")


def _check_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _aligned_zeros(shape: tuple[int, ...], dtype: type[np.uint64], align: int = 64) -> Any:
    # Plane rows are 32 or 64 bytes; cache-line alignment keeps every vector load within
    # one cache line (numpy only guarantees 16-byte alignment).
    n_bytes = math.prod(shape) * np.dtype(dtype).itemsize
    raw = np.zeros(n_bytes + align, np.uint8)
    offset = (-raw.ctypes.data) % align
    return raw[offset : offset + n_bytes].view(dtype).reshape(shape)


def _thread_pool_size() -> int:
    # numba.config sets NUMBA_NUM_THREADS at import time, invisibly to type checkers.
    return int(vars(numba.config)["NUMBA_NUM_THREADS"])


class _Prepared:
    """Everything derived from the inputs once, before the tiles are scanned."""

    def __init__(
        self,
        a: NDArray[np.uint8],
        b: NDArray[np.uint8],
        threshold: float,
        anonlink_compatible: bool,
    ) -> None:
        n_words = (a.shape[1] + 7) // 8
        n_bits = 64 * n_words
        self.n_a = a.shape[0]
        self.m = b.shape[0]
        self.a_words = to_words(a, n_words)
        b_words = to_words(b, n_words)
        self.pa = row_popcounts(self.a_words)
        pb = row_popcounts(b_words)
        # Stable, so equal popcounts keep B's order (only cosmetic: output is re-sorted).
        self.order_b = np.argsort(pb, kind="stable").astype(np.int64)
        self.pb_sorted = np.ascontiguousarray(pb[self.order_b])
        n_groups = (self.m + _GROUP_ROWS - 1) // _GROUP_ROWS
        self.planes = _aligned_zeros((n_groups, n_bits + 1, LANE_WORDS), np.uint64)
        _build_planes(b_words, self.order_b, self.planes)
        firsts = np.arange(n_groups, dtype=np.int64) * _GROUP_ROWS
        self.group_lo = self.pb_sorted[firsts]
        self.group_hi = self.pb_sorted[np.minimum(firsts + _GROUP_ROWS, self.m) - 1]
        self.min_count = min_count_table(n_bits, threshold)
        self.win_lo, self.win_hi = _popcount_windows(
            n_bits, threshold, self.min_count, anonlink_compatible
        )
        #: What every tile reads, passed to the kernels as one tuple.
        self.data: _ScanInputs = (
            self.a_words, self.pa, self.planes, self.pb_sorted, self.order_b, self.group_lo,
            self.group_hi, self.min_count, self.win_lo, self.win_hi,
        )  # fmt: skip

    def run(
        self, starts: NDArray[np.int64], lens: NDArray[np.int64], capacity: int
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
        n_tiles = starts.shape[0]
        out_i = np.empty((n_tiles, capacity), np.int64)
        out_j = np.empty((n_tiles, capacity), np.int64)
        out_s = np.empty((n_tiles, capacity), np.float64)
        counts = np.zeros(n_tiles, np.int64)
        _dice_tiles(self.data, starts, lens, capacity, out_i, out_j, out_s, counts)
        return out_i, out_j, out_s, counts


def _sorted_chunk(chunk: Candidates, first_row: int, m: int) -> Candidates:
    """Copy of one tile's pairs sorted by (i, j) (the kernel emits them group by group)."""
    i, j, s = chunk
    order = np.argsort((i - first_row) * m + j)  # unique keys, so any sort is stable
    return Candidates(i[order], j[order], s[order])


def _limit_error(found: int, limit: int, threshold: float, rows_done: int, rows: int) -> str:
    return (
        f"at least {found:,} candidate pairs reach Dice >= {threshold} after scanning "
        f"{rows_done:,} of {rows:,} rows of a, more than max_candidates={limit:,}; raise the "
        "threshold or use blocking to compare fewer pairs (or raise max_candidates)"
    )


def iter_dice_candidates(
    a_bits: NDArray[np.uint8],
    b_bits: NDArray[np.uint8],
    threshold: float,
    *,
    tile_rows: int = DEFAULT_TILE_ROWS,
    max_candidates: int | None = None,
    workers: int | None = None,
    anonlink_compatible: bool = False,
) -> Iterator[Candidates]:
    """Yield the candidate pairs of :func:`dice_candidates` tile by tile.

    Rows of ``a_bits`` are scanned in tiles of ``tile_rows``; for every tile that has
    candidates one ``(i, j, score)`` chunk is yielded, sorted by ``(i, j)``, and the chunks
    come in increasing ``i``, so concatenating them gives exactly :func:`dice_candidates`.
    Memory does not grow with ``len(a_bits) * len(b_bits)``: only the tiles of one kernel
    call are in flight (at least one per thread), each with a buffer sized from the
    candidates tiles have actually produced, at most ``tile_rows * len(b_bits)`` pairs, and
    kept near 256 MiB in all where that still leaves a tile per thread.

    Inputs are validated when this function is called, before the first chunk is
    requested.  With ``max_candidates`` set, :class:`CandidateLimitExceeded` is raised as
    soon as the pairs found so far exceed it.  Other arguments are as for
    :func:`dice_candidates`.
    """
    a = check_bits("a_bits", a_bits)
    b = check_bits("b_bits", b_bits)
    check_same_width(a, b)
    _check_supported_width(a)
    t = check_threshold(threshold)
    tile = _check_positive("tile_rows", tile_rows)
    limit = None if max_candidates is None else _check_positive("max_candidates", max_candidates)
    if workers is not None:
        workers = _check_positive("workers", workers)
        pool = _thread_pool_size()
        if workers > pool:
            raise ValueError(
                f"workers must be at most {pool} (numba's thread pool size, "
                f"NUMBA_NUM_THREADS), got {workers}"
            )
    return _generate(a, b, t, tile, limit, workers, bool(anonlink_compatible))


def _generate(
    a: NDArray[np.uint8],
    b: NDArray[np.uint8],
    threshold: float,
    tile_rows: int,
    limit: int | None,
    workers: int | None,
    anonlink_compatible: bool,
) -> Iterator[Candidates]:
    if a.shape[0] == 0 or b.shape[0] == 0 or a.shape[1] == 0:
        return  # no pairs, or zero-bit filters that never score above 0
    with numba_threads(workers):
        prepared = _Prepared(a, b, threshold, anonlink_compatible)
        threads = numba.get_num_threads()
    n = prepared.n_a
    most_per_tile = tile_rows * prepared.m
    capacity = min(_INITIAL_TILE_CAPACITY, most_per_tile)
    all_starts = np.arange(0, n, tile_rows, dtype=np.int64)
    all_lens = np.minimum(all_starts + tile_rows, n) - all_starts
    found = 0
    position = 0
    while position < all_starts.shape[0]:
        # Enough tiles per call to keep every thread busy, but bounded output buffers.
        per_call = max(threads, min(_tiles_within_budget(capacity), 16 * threads))
        starts = all_starts[position : position + per_call]
        lens = all_lens[position : position + per_call]
        with numba_threads(workers):
            out_i, out_j, out_s, counts = prepared.run(starts, lens, capacity)
        overflowed = [t for t in range(starts.shape[0]) if counts[t] > capacity]
        rerun: dict[int, tuple[Candidates, int]] = {}
        for t in range(starts.shape[0]):
            count = int(counts[t])
            if count == 0:
                continue
            found += count
            if limit is not None and found > limit:
                rows_done = int(starts[t] + lens[t])
                raise CandidateLimitExceeded(_limit_error(found, limit, threshold, rows_done, n))
            if count <= capacity:
                chunk = Candidates(out_i[t, :count], out_j[t, :count], out_s[t, :count])
            else:
                if t not in rerun:
                    # Rerun this and the next overflowed tiles with exactly the room they
                    # need, as many at a time as the buffer budget allows.
                    rerun.clear()
                    pending = [u for u in overflowed if u >= t]
                    room = int(max(counts[u] for u in pending))
                    group = pending[: max(threads, _tiles_within_budget(room))]
                    room = int(max(counts[u] for u in group))
                    with numba_threads(workers):
                        ri, rj, rs, _ = prepared.run(starts[group], lens[group], room)
                    rerun = {u: (Candidates(ri, rj, rs), k) for k, u in enumerate(group)}
                (ri, rj, rs), k = rerun[t]
                chunk = Candidates(ri[k, :count], rj[k, :count], rs[k, :count])
            yield _sorted_chunk(chunk, int(starts[t]), prepared.m)
        # Size the next call's buffers from what this one needed, so reruns stay rare.
        capacity = max(capacity, min(most_per_tile, 1 << int(counts.max()).bit_length()))
        position += starts.shape[0]


def _tiles_within_budget(capacity: int) -> int:
    return _BATCH_BUFFER_BYTES // (capacity * _BYTES_PER_CANDIDATE)


def dice_candidates(
    a_bits: NDArray[np.uint8],
    b_bits: NDArray[np.uint8],
    threshold: float,
    *,
    max_candidates: int | None = DEFAULT_MAX_CANDIDATES,
    tile_rows: int = DEFAULT_TILE_ROWS,
    workers: int | None = None,
    anonlink_compatible: bool = False,
) -> Candidates:
    """Every pair (i, j) of rows of ``a_bits`` and ``b_bits`` with Dice >= ``threshold``.

    Args:
        a_bits: ``uint8`` array ``(n, l // 8)`` of packed filters (clkhash byte layout);
            made C-contiguous if it is not.  Any ``l`` that is a multiple of 8 works.
        b_bits: ``uint8`` array ``(m, l // 8)``, the same width as ``a_bits``.
        threshold: Keep pairs whose score is ``>= threshold``; must be in ``(0, 1]``.
        max_candidates: Raise :class:`CandidateLimitExceeded` rather than return more
            pairs than this (``None``: no cap).
        tile_rows: Rows of ``a_bits`` per unit of work (see :func:`iter_dice_candidates`).
        workers: numba threads to use; ``None`` keeps the current
            ``numba.get_num_threads()``.
        anonlink_compatible: Also apply anonlink's popcount prefilter, see below.

    Returns:
        ``(i, j, score)`` as :class:`~linkage_unit.matching.candidates.Candidates`: int64
        row indices into ``a_bits`` and ``b_bits`` and the float64 Dice coefficients,
        sorted by ``(i, j)`` ascending.

    Raises:
        ValueError: On invalid inputs (see :mod:`~linkage_unit.matching.bitarrays`).
        CandidateLimitExceeded: More pairs than ``max_candidates`` reach the threshold.

    Scores are bit-for-bit those of ``anonlink.similarities.dice_coefficient_accelerated``
    (``2 * |a & b| / (double)(|a| + |b|)``), and so is the ``>=`` test.  The pairs are the
    same too, with one documented exception: anonlink skips a pair when
    ``||a| - |b|| > (uint32)(2 * |a| * (1 / threshold - 1))``; that bound is rounded down,
    so for some thresholds (e.g. 0.75, 0.875, but not 0.8) it also skips pairs whose score
    is *exactly* the threshold - and it makes anonlink asymmetric in a and b.  By default
    those pairs are returned, since they do reach the threshold; pass
    ``anonlink_compatible=True`` to drop them as anonlink does.

    Rows that are all zero never score above 0 and so are never candidates.
    """
    return Candidates.concatenate(
        list(
            iter_dice_candidates(
                a_bits,
                b_bits,
                threshold,
                tile_rows=tile_rows,
                max_candidates=max_candidates,
                workers=workers,
                anonlink_compatible=anonlink_compatible,
            )
        )
    )
