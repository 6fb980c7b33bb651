"""Blocking from the encodings alone: Hamming-LSH bit sampling over Bloom-filter encodings.

Comparing every record of A with every record of B costs ``len(A) * len(B)`` Dice scores;
at a million records a side that is 10**12.  Blocking compares only pairs that share a
*key*, and here the keys are computed from the encodings themselves - the linkage unit
never needs an identifier to block.

How it works
------------
:class:`BlockingConfig` fixes ``tables`` independent hash tables.  Table ``t`` samples
``bits_per_table`` bit positions of the filter (seeded, so the same positions are used
for every file of a run and the result is reproducible); a record's key in table ``t`` is
the string of its bits at those positions.  Records of A and B with equal keys in *any*
table are compared; a pair found by several tables is scored once in the output.

Why this finds the matches (bit-sampling LSH for Hamming distance)
-----------------------------------------------------------------
Two filters of length ``l`` with popcounts ``pa``, ``pb`` and Dice ``d`` differ in
``h = (1 - d) * (pa + pb)`` bit positions, so one randomly sampled position agrees with
probability ``q = 1 - h / l``.  A key of ``k`` positions agrees with probability about
``q ** k`` and at least one of ``L`` tables agrees with probability::

    P(found) = 1 - (1 - q ** k) ** L

For the ``pace-default`` schema (``l = 1024``, about 620 bits set) a pair at Dice 0.8
has ``q ~= 0.76``, at 0.85 ``q ~= 0.82`` and at 0.9 ``q ~= 0.88``.  With the defaults
(``k = 16``, ``L = 100``) that gives P(found) ~= 0.69 for a pair *exactly* at 0.8, 0.98
at 0.85 and > 0.99999 from Dice 0.9 up.  True matches are rarely near the threshold
(most score 0.9-1.0), so blocking keeps more than 99.5 % of the true matches that
exhaustive comparison finds at threshold 0.8: 99.67 % on a synthetic two-party scenario
with typical errors (``benchmarks.synthetic``, 14k x 14k records), 100 % on lightly
perturbed near-duplicates.  Unrelated records agree on a sampled bit with probability
about ``1 - 2 p (1 - p)`` for bit density ``p`` (about 0.52 here), so independent bits
would make a random pair share a key in one table with probability ``0.52 ** 16 ~=
3e-5``; real encodings have correlated bits (sex, date digits, common name bigrams, and
relatives sharing surname and address), which measured about 6 times that.  On the
synthetic scenario the defaults compare 1.7 % of all pairs (59 times fewer than
exhaustive search); the share falls as files grow, since the correlated near pairs grow
with ``n`` and random collisions with ``n**2 * 3e-5``.  Raise ``tables`` (cost grows
linearly) to keep more near-threshold pairs, raise ``bits_per_table`` to compare fewer.

How it scales
-------------
Per table, keys are computed by a parallel numba kernel, A's and B's keys are sorted
together once (numpy), and the blocks (runs of equal keys with rows on both sides) are
scored in batches of at most ``max_batch_pairs`` pairs by a parallel kernel that computes
exactly ``2 * |a & b| / (double)(|a| + |b|)`` - bit for bit the score of
:func:`~linkage_unit.matching.similarity.dice_candidates` - and keeps pairs ``>=
threshold``.  Only survivors are kept between tables and deduplicated at the end, so
memory is the inputs plus ``O(len(A) + len(B))`` per table plus one batch, however many
pairs the blocks hold.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Final

import numba
import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

# The popcount intrinsic, row popcounts and input checks are the similarity kernel's own,
# so that blocked scores and dice_candidates' scores come from the same code.
from linkage_unit.matching.similarity import (
    DEFAULT_MAX_CANDIDATES,
    _check_bits,
    _popcount,
    _row_popcounts,
    dice_candidates,
)

__all__ = [
    "DEFAULT_BITS_PER_TABLE",
    "DEFAULT_BLOCKING",
    "DEFAULT_TABLES",
    "BlockingConfig",
    "BlockingStats",
    "blocking_stats",
    "candidate_pairs",
    "candidate_pairs_and_stats",
    "pair_completeness",
]

#: Default number of hash tables (bands); see the module docstring for the choice.
DEFAULT_TABLES: Final = 100
#: Default number of sampled bit positions per table.
DEFAULT_BITS_PER_TABLE: Final = 16
#: Default cap on the pairs scored in one kernel call (memory: 8 bytes per pair).
DEFAULT_MAX_BATCH_PAIRS: Final = 1 << 23

CandidateArrays = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]


@dataclass(frozen=True)
class BlockingConfig:
    """How records are blocked.

    Attributes:
        tables: Number of independent hash tables (LSH bands); a pair is compared when
            its keys agree in at least one.
        bits_per_table: Bit positions sampled per table (the key length, 1-63).
        seed: Seed of the bit-position sampling; every file of one linkage run must use
            the same seed (and the same config) for the keys to be comparable.
        exhaustive: Compare every pair (no blocking); the other fields are ignored.
        max_batch_pairs: Most pairs scored in one kernel call; bounds the memory of the
            scoring step (8 bytes per pair).
    """

    tables: int = DEFAULT_TABLES
    bits_per_table: int = DEFAULT_BITS_PER_TABLE
    seed: int = 0x5ACE_B10C
    exhaustive: bool = False
    max_batch_pairs: int = DEFAULT_MAX_BATCH_PAIRS

    def __post_init__(self) -> None:
        for name in ("tables", "bits_per_table", "max_batch_pairs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.bits_per_table > 63:
            raise ValueError(f"bits_per_table must be at most 63, got {self.bits_per_table}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")

    def positions(self, n_bits: int) -> NDArray[np.int64]:
        """The sampled bit positions, ``(tables, bits_per_table)``, for ``n_bits``-bit filters.

        Positions are distinct within a table and drawn independently per table.
        """
        if self.bits_per_table > n_bits:
            raise ValueError(
                f"bits_per_table={self.bits_per_table} exceeds the filter length {n_bits}"
            )
        rng = np.random.default_rng([self.seed, n_bits])
        rows = [
            np.sort(rng.choice(n_bits, self.bits_per_table, replace=False))
            for _ in range(self.tables)
        ]
        return np.asarray(rows, dtype=np.int64).reshape(self.tables, self.bits_per_table)


#: The default configuration (100 tables of 16 sampled bits).
DEFAULT_BLOCKING: Final = BlockingConfig()


@dataclass(frozen=True)
class BlockingStats:
    """How much work blocking saves.

    Attributes:
        comparisons: Pair comparisons blocking makes (pairs found by several tables are
            counted once per table, as they are scored).
        exhaustive_comparisons: ``len(A) * len(B)``.
        reduction_ratio: ``1 - comparisons / exhaustive_comparisons``.
        largest_block_pairs: Pairs in the largest single block of any table.
    """

    comparisons: int
    exhaustive_comparisons: int
    reduction_ratio: float
    largest_block_pairs: int


# --------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def _keys(bits: Any, byte_idx: Any, shifts: Any) -> Any:  # pragma: no cover - compiled
    # Key = the sampled bits, first sampled position in the highest key bit.
    n = bits.shape[0]
    k = byte_idx.shape[0]
    out = np.empty(n, np.uint64)
    for r in prange(n):
        key = np.uint64(0)
        for t in range(k):
            bit = (bits[r, byte_idx[t]] >> shifts[t]) & 1
            key = (key << np.uint64(1)) | np.uint64(bit)
        out[r] = key
    return out


@njit(cache=True, parallel=True)
def _score_blocks(
    a_words: Any,
    b_words: Any,
    pa: Any,
    pb: Any,
    rows_a: Any,
    rows_b: Any,
    a_start: Any,
    a_len: Any,
    b_start: Any,
    b_len: Any,
    offsets: Any,
    out: Any,
) -> None:  # pragma: no cover - compiled
    # Block q pairs rows_a[a_start[q] + x] with rows_b[b_start[q] + y]; its scores go to
    # out[offsets[q] + x * b_len[q] + y].  Same formula and rounding as dice_candidates.
    w = a_words.shape[1]
    for q in prange(a_start.shape[0]):
        base = offsets[q]
        nb = b_len[q]
        for x in range(a_len[q]):
            ra = rows_a[a_start[q] + x]
            for y in range(nb):
                rb = rows_b[b_start[q] + y]
                c = 0
                for k in range(w):
                    c += _popcount(a_words[ra, k] & b_words[rb, k])
                total = pa[ra] + pb[rb]
                out[base + x * nb + y] = 0.0 if total == 0 else 2 * c / np.float64(total)


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _to_words(bits: NDArray[np.uint8]) -> NDArray[np.uint64]:
    n_words = (bits.shape[1] + 7) // 8
    if bits.shape[1] == 8 * n_words:
        return bits.view(np.uint64)
    words = np.zeros((bits.shape[0], n_words), np.uint64)
    words.view(np.uint8)[:, : bits.shape[1]] = bits
    return words


def _empty() -> CandidateArrays:
    return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)


def _table_keys(bits: NDArray[np.uint8], positions: NDArray[np.int64]) -> NDArray[np.uint64]:
    # clkhash order: bit p is byte p // 8, most significant bit first.
    byte_idx = (positions >> 3).astype(np.int64)
    shifts = (7 - (positions & 7)).astype(np.uint8)
    keys: NDArray[np.uint64] = _keys(bits, byte_idx, shifts)
    return keys


def _blocks(
    keys_a: NDArray[np.uint64], keys_b: NDArray[np.uint64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64],
           NDArray[np.int64], NDArray[np.int64]]:  # fmt: skip
    """Rows of A and B sorted by key, and the blocks: keys present on both sides.

    Returns ``(rows_a, rows_b, a_start, a_len, b_start, b_len)``.
    """
    rows_a = np.argsort(keys_a, kind="stable").astype(np.int64)
    rows_b = np.argsort(keys_b, kind="stable").astype(np.int64)
    sa = keys_a[rows_a]
    sb = keys_b[rows_b]
    ua, a_start, a_len = np.unique(sa, return_index=True, return_counts=True)
    # Keys of A that B has too, and where B's run of each starts and ends.
    lo = np.searchsorted(sb, ua, side="left")
    hi = np.searchsorted(sb, ua, side="right")
    both = hi > lo
    return (
        rows_a,
        rows_b,
        a_start[both].astype(np.int64),
        a_len[both].astype(np.int64),
        lo[both].astype(np.int64),
        (hi - lo)[both].astype(np.int64),
    )


def _split_blocks(
    a_start: NDArray[np.int64],
    a_len: NDArray[np.int64],
    b_start: NDArray[np.int64],
    b_len: NDArray[np.int64],
    limit: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Cut blocks of more than ``limit`` pairs into pieces of A rows (each <= limit pairs
    unless one A row alone meets more than ``limit`` B rows; then one row per piece)."""
    rows_per_piece = np.maximum(limit // np.maximum(b_len, 1), 1)
    pieces = (a_len + rows_per_piece - 1) // rows_per_piece
    if int(pieces.max(initial=1)) <= 1:
        return a_start, a_len, b_start, b_len
    block = np.repeat(np.arange(a_start.shape[0]), pieces)
    first_piece = np.cumsum(pieces) - pieces
    piece = np.arange(block.shape[0]) - first_piece[block]
    start = a_start[block] + piece * rows_per_piece[block]
    end = np.minimum(start + rows_per_piece[block], a_start[block] + a_len[block])
    return start, end - start, b_start[block], b_len[block]


def _score_table(
    a_words: NDArray[np.uint64],
    b_words: NDArray[np.uint64],
    pa: NDArray[np.int64],
    pb: NDArray[np.int64],
    keys_a: NDArray[np.uint64],
    keys_b: NDArray[np.uint64],
    threshold: float,
    max_batch_pairs: int,
) -> tuple[CandidateArrays, int, int]:
    """Pairs of one table reaching the threshold, with the comparisons made and the
    largest block's pair count."""
    rows_a, rows_b, a_start, a_len, b_start, b_len = _blocks(keys_a, keys_b)
    if a_start.shape[0] == 0:
        return _empty(), 0, 0
    sizes = a_len * b_len
    comparisons = int(sizes.sum())
    largest = int(sizes.max())
    a_start, a_len, b_start, b_len = _split_blocks(a_start, a_len, b_start, b_len, max_batch_pairs)
    sizes = a_len * b_len
    ends = np.cumsum(sizes)
    chunks_i: list[NDArray[np.int64]] = []
    chunks_j: list[NDArray[np.int64]] = []
    chunks_s: list[NDArray[np.float64]] = []
    first = 0
    n_blocks = sizes.shape[0]
    while first < n_blocks:
        before = int(ends[first] - sizes[first])
        # Blocks first..last-1 hold at most max_batch_pairs pairs (at least one block).
        last = int(np.searchsorted(ends, before + max_batch_pairs, side="right"))
        last = max(last, first + 1)
        sl = slice(first, last)
        offsets = ends[sl] - sizes[sl] - before
        total = int(ends[last - 1] - before)
        out = np.empty(total, np.float64)
        _score_blocks(
            a_words, b_words, pa, pb, rows_a, rows_b,
            a_start[sl], a_len[sl], b_start[sl], b_len[sl], offsets, out,
        )  # fmt: skip
        hits = np.flatnonzero(out >= threshold)
        if hits.shape[0]:
            q = np.searchsorted(offsets, hits, side="right") - 1
            local = hits - offsets[q]
            nb = b_len[sl][q]
            x = local // nb
            y = local - x * nb
            chunks_i.append(rows_a[a_start[sl][q] + x])
            chunks_j.append(rows_b[b_start[sl][q] + y])
            chunks_s.append(out[hits])
        first = last
    if not chunks_i:
        return _empty(), comparisons, largest
    return (
        (np.concatenate(chunks_i), np.concatenate(chunks_j), np.concatenate(chunks_s)),
        comparisons,
        largest,
    )


def _check_threshold(threshold: float) -> float:
    t = float(threshold)
    if not (0.0 < t <= 1.0) or math.isnan(t):
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    return t


def _run(
    a_bits: Any,
    b_bits: Any,
    threshold: float,
    config: BlockingConfig,
    workers: int | None,
    want_pairs: bool,
) -> tuple[CandidateArrays, BlockingStats]:
    a = _check_bits("a_bits", a_bits)
    b = _check_bits("b_bits", b_bits)
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"a_bits and b_bits must have the same width, got {a.shape[1]} and {b.shape[1]} bytes"
        )
    t = _check_threshold(threshold)
    exhaustive = a.shape[0] * b.shape[0]
    if a.shape[0] == 0 or b.shape[0] == 0 or a.shape[1] == 0:
        return _empty(), BlockingStats(0, exhaustive, 1.0 if exhaustive == 0 else 0.0, 0)
    positions = config.positions(8 * a.shape[1])
    previous = numba.get_num_threads()
    if workers is not None:
        numba.set_num_threads(workers)
    try:
        a_words = _to_words(a)
        b_words = _to_words(b)
        pa = _row_popcounts(a_words)
        pb = _row_popcounts(b_words)
        m = b.shape[0]
        found: list[NDArray[np.int64]] = []
        scores: list[NDArray[np.float64]] = []
        comparisons = 0
        largest = 0
        for table in range(config.tables):
            keys_a = _table_keys(a, positions[table])
            keys_b = _table_keys(b, positions[table])
            if want_pairs:
                (i, j, s), made, big = _score_table(
                    a_words, b_words, pa, pb, keys_a, keys_b, t, config.max_batch_pairs
                )
                if i.shape[0]:
                    # Deduplicate as we go so survivors found by many tables stay small.
                    found.append(i * m + j)
                    scores.append(s)
                    if len(found) > 1:
                        code, first = np.unique(np.concatenate(found), return_index=True)
                        found = [code]
                        scores = [np.concatenate(scores)[first]]
            else:
                _, _, _, a_len, _, b_len = _blocks(keys_a, keys_b)
                sizes = a_len * b_len
                made = int(sizes.sum())
                big = int(sizes.max(initial=0))
            comparisons += made
            largest = max(largest, big)
    finally:
        numba.set_num_threads(previous)
    stats = BlockingStats(
        comparisons=comparisons,
        exhaustive_comparisons=exhaustive,
        reduction_ratio=1.0 - comparisons / exhaustive,
        largest_block_pairs=largest,
    )
    if not found:
        return _empty(), stats
    code = found[0]
    if len(found) > 1:  # pragma: no cover - merged above
        code, first = np.unique(np.concatenate(found), return_index=True)
        scores = [np.concatenate(scores)[first]]
    # np.unique sorted the codes i * m + j, i.e. by (i, j).
    return (code // m, code % m, scores[0]), stats


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------


def candidate_pairs(
    a_bits: NDArray[np.uint8],
    b_bits: NDArray[np.uint8],
    threshold: float,
    config: BlockingConfig = DEFAULT_BLOCKING,
    *,
    workers: int | None = None,
    max_candidates: int | None = DEFAULT_MAX_CANDIDATES,
) -> CandidateArrays:
    """The pairs with Dice >= ``threshold`` among the pairs that blocking compares.

    :param a_bits: ``uint8`` array ``(n, l // 8)`` of packed filters (clkhash byte layout).
    :param b_bits: ``uint8`` array ``(m, l // 8)``, the same width.
    :param threshold: keep pairs whose score is ``>= threshold``, in ``(0, 1]``.
    :param config: the blocking; ``BlockingConfig(exhaustive=True)`` compares every pair
        and returns exactly :func:`~linkage_unit.matching.similarity.dice_candidates`.
    :param workers: numba threads; ``None`` keeps ``numba.get_num_threads()``.
    :param max_candidates: passed to ``dice_candidates`` in exhaustive mode.
    :returns: ``(i, j, score)`` as :func:`~linkage_unit.matching.similarity.dice_candidates`
        returns them: int64 row indices, float64 scores bit-for-bit equal to that
        function's, sorted by ``(i, j)``, each pair once however many tables found it.
        The result is always a subset of ``dice_candidates(a_bits, b_bits, threshold)``.
    """
    return candidate_pairs_and_stats(
        a_bits, b_bits, threshold, config, workers=workers, max_candidates=max_candidates
    )[0]


def candidate_pairs_and_stats(
    a_bits: NDArray[np.uint8],
    b_bits: NDArray[np.uint8],
    threshold: float,
    config: BlockingConfig = DEFAULT_BLOCKING,
    *,
    workers: int | None = None,
    max_candidates: int | None = DEFAULT_MAX_CANDIDATES,
) -> tuple[CandidateArrays, BlockingStats]:
    """:func:`candidate_pairs` and the :class:`BlockingStats` of the same pass."""
    if config.exhaustive:
        n = a_bits.shape[0] * b_bits.shape[0]
        found = dice_candidates(
            a_bits, b_bits, threshold, max_candidates=max_candidates, workers=workers
        )
        return found, BlockingStats(n, n, 0.0, n)
    return _run(a_bits, b_bits, threshold, config, workers, want_pairs=True)


def blocking_stats(
    a_bits: NDArray[np.uint8],
    b_bits: NDArray[np.uint8],
    config: BlockingConfig = DEFAULT_BLOCKING,
    *,
    workers: int | None = None,
) -> BlockingStats:
    """How many comparisons ``config`` makes on these files, without scoring any pair."""
    a = _check_bits("a_bits", a_bits)
    b = _check_bits("b_bits", b_bits)
    if config.exhaustive:
        n = a.shape[0] * b.shape[0]
        return BlockingStats(n, n, 0.0, n)
    _, stats = _run(a, b, 1.0, config, workers, want_pairs=False)
    return stats


def pair_completeness(blocked: CandidateArrays, exhaustive: CandidateArrays) -> float:
    """Share of the exhaustive candidate pairs ``(i, j, score)`` that blocking kept.

    Both arguments are ``(i, j, score)`` triples as :func:`candidate_pairs` returns; only
    the pairs are compared.  With no exhaustive pairs the completeness is 1.0.
    """
    ei, ej = np.asarray(exhaustive[0], np.int64), np.asarray(exhaustive[1], np.int64)
    if ei.shape[0] == 0:
        return 1.0
    bi, bj = np.asarray(blocked[0], np.int64), np.asarray(blocked[1], np.int64)
    width = int(max(ej.max(initial=0), bj.max(initial=0))) + 1
    kept = np.isin(ei * width + ej, bi * width + bj)
    return float(kept.mean())
