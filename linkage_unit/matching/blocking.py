"""Blocking from the encodings alone: Hamming-LSH bit sampling over Bloom-filter encodings.

Comparing every record of A with every record of B costs ``len(A) * len(B)`` Dice scores;
at a million records a side that is 10**12.  Blocking compares only pairs that share a
*key*, and here the keys are computed from the encodings themselves - the linkage unit
never needs an identifier to block.

How it works
------------
:class:`BlockingConfig` fixes ``tables`` independent hash tables.  Table ``t`` samples
``bits_per_table`` bit positions of the filter (seeded, so the result is reproducible); a
record's key in table ``t`` is the string of its bits at those positions.  Records of A and
B with equal keys in *any* table are compared; a pair found by several tables is scored
once in the output.

Which positions are sampled
---------------------------
A sampled bit separates unrelated records best when it is set in about half of them: two
random records agree on a bit of set-frequency ``f`` with probability ``1 - 2 f (1 - f)``,
least (0.5) at ``f = 0.5``.  Bits far from 0.5 are mostly the ones set by common tokens (a
frequent name bigram, the sex feature, a common birth decade), which also makes them
correlated, so keys built from them let many more unrelated pairs collide.  With
``selection="balanced"`` (the default) the set-frequency of every bit position is measured
on the two files being linked (an evenly spaced sample of at most 65,536 rows of each) and
the tables sample only from the ``pool_fraction`` of positions whose frequency is closest
to 0.5.  This uses the encodings only and adapts to the schema: when the filters become
sparser or denser, a different pool is chosen.  What it buys depends on the density, as
measured on the synthetic two-party scenario at threshold 0.8:

* filters 61 % dense (an earlier ``pace-default``): 100 tables of 16 balanced bits compared
  5 times fewer pairs than 16 uniformly sampled bits (``selection="random"``; 0.28 % vs
  1.5 % of all pairs), and for the same share (99.6 %) of true matches kept, estimated
  1.4 to 2.5 times fewer;
* filters 41 % dense (``pace-default`` before its derived features): the defaults
  compared 0.17 % of all pairs and kept 99.92 % of the true matches; random positions
  compared 4.3 times more at the same key length, but with 22-bit keys 0.12 % for
  99.94 %.  On sparse filters most bits are rarely set and separate unrelated records
  well enough once keys are longer, so the advantage is gone; balanced positions are the
  default because they do not degrade when filters get denser, where random ones do.

Why this finds the matches (bit-sampling LSH for Hamming distance)
-----------------------------------------------------------------
A pair whose filters agree on a share ``q`` of the pool agrees on a ``k``-bit key with
probability about ``q ** k`` and in at least one of ``L`` tables with probability
``1 - (1 - q ** k) ** L``; unrelated records agree on a pool bit about half the time, so
they share a key with probability about ``0.5 ** k`` per table.  The defaults (``k = 18``,
``L = 120``) were chosen on the synthetic two-party scenario (``benchmarks.synthetic``,
typical errors, ``pace-default``) as the cheapest balanced setting found that keeps more
than 99.5 % of the true matches that exhaustive comparison finds at threshold 0.8: on 142,100 x
142,100 records they kept 99.92 % of them while comparing 0.17 % of all pairs, and
``benchmarks.link_scale`` measures the same at a million records a side.  Longer keys
compare fewer pairs per table but need more tables, and every table has a fixed cost
(computing and bucketing a key per record).  Denser filters, or true matches that score
lower (as in FEBRL4), need more tables for the same share; files of at most
``exhaustive_up_to`` pairs are compared exhaustively, which is faster there anyway.

How it runs
-----------
Tables are processed in parallel, one table per thread at a time.  The pool's bits of
every row are packed once (half the filter for the default pool), and within a table the
keys of A and B are hashed from them and counting-sorted into buckets (one pass each,
memory ``O(len(A) + len(B))``).  Every bucket holding rows of both files is scored in
full, so the rows of a bucket are fetched once and compared while they sit in cache, and
the next bucket's rows are prefetched meanwhile.  A pair is scored by AND and popcount of
its words, exactly ``2 * |a & b| / (double)(|a| + |b|)`` - bit for bit the score of
:func:`~linkage_unit.matching.similarity.dice_candidates` - and only pairs reaching the
threshold are kept.  A kept pair found by table ``t`` is emitted only if
no earlier table's key agrees for it (rechecked from the bits, which costs little since
only kept pairs are rechecked), so every pair is emitted once, by its first table, and no
table's output needs deduplicating against another's.

Longer than 500 lines because the configuration, the table kernels and the pass that runs
them share one key and bucket layout; a third of it is this explanation.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import numba
import numpy as np
from numba import njit, prange
from numpy.typing import NDArray

# Input checks, popcounts and the exact least-count table are shared with the similarity
# kernel, so blocked scores and dice_candidates' come from one code.
from linkage_unit.matching.bitarrays import (
    check_bits,
    check_same_width,
    check_threshold,
    min_count_table,
    numba_threads,
    row_popcounts,
    to_words,
)
from linkage_unit.matching.candidates import Candidates, CandidatesLike
from linkage_unit.matching.intrinsics import popcount, prefetch
from linkage_unit.matching.similarity import DEFAULT_MAX_CANDIDATES, dice_candidates

__all__ = [
    "DEFAULT_BITS_PER_TABLE",
    "DEFAULT_BLOCKING",
    "DEFAULT_EXHAUSTIVE_UP_TO",
    "DEFAULT_POOL_FRACTION",
    "DEFAULT_TABLES",
    "BlockingConfig",
    "BlockingProgress",
    "BlockingStats",
    "bit_frequencies",
    "blocking_stats",
    "candidate_pairs",
    "candidate_pairs_and_stats",
    "pair_completeness",
]

#: Default number of hash tables (bands); see the module docstring for the choice.
DEFAULT_TABLES: Final = 120
#: Default number of sampled bit positions per table.
DEFAULT_BITS_PER_TABLE: Final = 18
#: Default share of bit positions, the most balanced ones, that tables sample from.
DEFAULT_POOL_FRACTION: Final = 0.5
#: Files with at most this many pairs are compared exhaustively: below it the tiled Dice
#: kernel (about 3e9 pairs/s on 2 cores) takes less time than computing and bucketing the
#: keys of every table, and loses nothing.
DEFAULT_EXHAUSTIVE_UP_TO: Final = 50_000_000
#: Rows of each file whose bits are counted to measure bit frequencies.
FREQUENCY_SAMPLE_ROWS: Final = 65_536

Selection = Literal["balanced", "random"]


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
        selection: "balanced": sample positions among the ``pool_fraction`` of positions
            whose set-frequency in the files being linked is closest to 0.5; "random":
            sample among all positions, whatever the data.
        pool_fraction: Share of the filter's positions in the balanced pool, in (0, 1]
            (never fewer than ``bits_per_table`` positions).
        exhaustive_up_to: Compare every pair anyway when the two files have at most this
            many pairs (``len(A) * len(B)``); 0 always blocks.
    """

    tables: int = DEFAULT_TABLES
    bits_per_table: int = DEFAULT_BITS_PER_TABLE
    seed: int = 0x5ACE_B10C
    exhaustive: bool = False
    selection: Selection = "balanced"
    pool_fraction: float = DEFAULT_POOL_FRACTION
    exhaustive_up_to: int = DEFAULT_EXHAUSTIVE_UP_TO

    def __post_init__(self) -> None:
        """Refuse a configuration no blocking pass could run."""
        for name in ("tables", "bits_per_table"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        up_to = self.exhaustive_up_to
        if isinstance(up_to, bool) or not isinstance(up_to, numbers.Integral) or up_to < 0:
            raise ValueError(f"exhaustive_up_to must be a non-negative integer, got {up_to!r}")
        if self.bits_per_table > 63:
            raise ValueError(f"bits_per_table must be at most 63, got {self.bits_per_table}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        if self.selection not in ("balanced", "random"):
            raise ValueError(f"selection must be 'balanced' or 'random', got {self.selection!r}")
        fraction = self.pool_fraction
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, numbers.Real)
            or not 0.0 < float(fraction) <= 1.0
        ):
            raise ValueError(f"pool_fraction must be in (0, 1], got {fraction!r}")

    def compares_all(self, n_a: int, n_b: int) -> bool:
        """Whether files of ``n_a`` and ``n_b`` records are compared exhaustively."""
        return self.exhaustive or n_a * n_b <= self.exhaustive_up_to

    def describe(self, n_a: int | None = None, n_b: int | None = None) -> str:
        """A one-line description for summaries and logs (of files of these sizes)."""
        if self.exhaustive:
            return "exhaustive"
        if n_a is not None and n_b is not None and self.compares_all(n_a, n_b):
            return f"exhaustive (at most {self.exhaustive_up_to:,} pairs)"
        how = (
            f"balanced bits (pool {self.pool_fraction:.0%})"
            if self.selection == "balanced"
            else "random bits"
        )
        return f"Hamming LSH, {self.tables} tables x {self.bits_per_table} {how}"

    def pool(
        self, n_bits: int, frequencies: NDArray[np.float64] | None = None
    ) -> NDArray[np.int64]:
        """The bit positions tables sample from, sorted.

        Args:
            n_bits: Filter length in bits.
            frequencies: Set-frequency of each of the ``n_bits`` positions (see
                :func:`bit_frequencies`); required with ``selection="balanced"``.

        Returns:
            All positions with ``selection="random"``; with ``"balanced"`` the
            ``pool_fraction`` of them (at least ``bits_per_table``) whose frequency is
            closest to 0.5, ties broken by position.
        """
        if self.bits_per_table > n_bits:
            raise ValueError(
                f"bits_per_table={self.bits_per_table} exceeds the filter length {n_bits}"
            )
        if self.selection == "random":
            return np.arange(n_bits, dtype=np.int64)
        if frequencies is None:
            raise ValueError("selection='balanced' needs the bit frequencies of the data")
        f = np.asarray(frequencies, np.float64)
        if f.shape != (n_bits,):
            raise ValueError(f"frequencies must have shape ({n_bits},), got {f.shape}")
        size = max(self.bits_per_table, round(self.pool_fraction * n_bits))
        # Stable, so ties are broken by position: the pool is a function of the frequencies.
        return np.sort(np.argsort(np.abs(f - 0.5), kind="stable")[:size]).astype(np.int64)

    def positions(
        self, n_bits: int, frequencies: NDArray[np.float64] | None = None
    ) -> NDArray[np.int64]:
        """The sampled bit positions, ``(tables, bits_per_table)``, for ``n_bits``-bit filters.

        Positions are drawn from :meth:`pool` (arguments as there), distinct within a
        table and independently per table, from the seed.

        Returns:
            int64 positions, each row sorted.
        """
        pool = self.pool(n_bits, frequencies)
        rng = np.random.default_rng([self.seed, n_bits])
        rows = [
            np.sort(rng.choice(pool, self.bits_per_table, replace=False))
            for _ in range(self.tables)
        ]
        return np.asarray(rows, dtype=np.int64).reshape(self.tables, self.bits_per_table)


#: The default configuration (120 tables of 18 balanced bits).
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


@dataclass(frozen=True)
class BlockingProgress:
    """Where a blocking pass stands, reported after each round of tables.

    Attributes:
        tables_done: Tables finished so far.
        tables: Tables in all.
        comparisons: Pair comparisons made so far.
        candidates: Distinct pairs reaching the threshold found so far.
    """

    tables_done: int
    tables: int
    comparisons: int
    candidates: int

    @property
    def fraction(self) -> float:
        """Share of the tables done, in [0, 1]."""
        return self.tables_done / self.tables if self.tables else 1.0


# --------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------


#: Rows of each side of the next bucket prefetched while the current one is scored.
_PREFETCH_ROWS: Final = 32


@njit(cache=True, nogil=True, parallel=True)
def _pack(bits: Any, byte_idx: Any, shifts: Any, out: Any) -> None:  # pragma: no cover
    # out[r] = row r's bits at the pool positions, pool bit b at bit b % 64 of word b // 64.
    for r in prange(bits.shape[0]):
        for b in range(byte_idx.shape[0]):
            bit = np.uint64((bits[r, byte_idx[b]] >> shifts[b]) & 1)
            out[r, b >> 6] |= bit << np.uint64(b & 63)


@njit(cache=True, nogil=True)
def _key(words: Any, r: int, masks: Any, mult: Any, t: int) -> Any:  # pragma: no cover
    # Hash of row r's bits at table t's positions (masks[t] selects them word by word):
    # each masked word is folded in with a multiply and a shift, so that every sampled bit
    # reaches the top bits (the bucket).  Equal sampled bits give equal keys; different
    # ones collide with negligible probability, and a collision only adds a comparison.
    # (Tables are indexed here rather than sliced by callers: a slice is a new array whose
    # reference counting, shared by the threads, costs more than the loop.)
    h = np.uint64(0)
    for w in range(words.shape[1]):
        h = (h ^ (words[r, w] & masks[t, w])) * mult[w]
        h ^= h >> np.uint64(29)
    h *= np.uint64(0x9E3779B97F4A7C15)
    return h ^ (h >> np.uint64(32))


@njit(cache=True, nogil=True)
def _keys_agree(
    a_words: Any, i: int, b_words: Any, j: int, masks: Any, t: int
) -> bool:  # pragma: no cover - compiled
    # Exact: rows i and j have the same bits at table t's positions.  (A plain loop: numba
    # compiles all() over a generator less well.)
    for w in range(a_words.shape[1]):  # noqa: SIM110
        if (a_words[i, w] ^ b_words[j, w]) & masks[t, w]:
            return False
    return True


@njit(cache=True, nogil=True)
def _bucket_sort(
    keys: Any, popcounts: Any, shift: Any, n_buckets: int
) -> tuple[Any, Any, Any, Any]:  # pragma: no cover - compiled
    # Counting sort by bucket = the key's top bits.  Returns the bucket starts and, in
    # bucket order, the row numbers, the keys' low 32 bits (enough to tell apart the few
    # keys that share a bucket) and the popcounts, so that scoring a bucket reads them
    # contiguously instead of looking each up at random.  32-bit fields halve the memory
    # traffic of the sort, which is most of a table's fixed cost.
    n = keys.shape[0]
    starts = np.zeros(n_buckets + 1, np.int32)
    for r in range(n):
        starts[np.int64(keys[r] >> shift) + 1] += 1
    for u in range(n_buckets):
        starts[u + 1] += starts[u]
    fill = starts[:-1].copy()
    rows = np.empty(n, np.int32)
    sorted_keys = np.empty(n, np.uint32)
    sorted_pop = np.empty(n, np.int32)
    for r in range(n):
        bucket = np.int64(keys[r] >> shift)
        x = fill[bucket]
        rows[x] = r
        sorted_keys[x] = np.uint32(keys[r] & np.uint64(0xFFFFFFFF))
        sorted_pop[x] = popcounts[r]
        fill[bucket] = x + 1
    return starts, rows, sorted_keys, sorted_pop


@njit(cache=True, nogil=True)
def _next_bucket(starts_a: Any, starts_b: Any, u: int) -> int:  # pragma: no cover - compiled
    # The first bucket from u on with rows of both files (n_buckets if none).
    n_buckets = starts_a.shape[0] - 1
    while u < n_buckets and (starts_a[u] == starts_a[u + 1] or starts_b[u] == starts_b[u + 1]):
        u += 1
    return u


@njit(cache=True, nogil=True)
def _prefetch_rows(
    base: int, row_bytes: int, rows: Any, first: int, last: int
) -> None:  # pragma: no cover
    for x in range(first, min(last, first + _PREFETCH_ROWS)):
        address = base + rows[x] * row_bytes
        for line in range(0, row_bytes, 64):
            prefetch(address + line)


@njit(cache=True, nogil=True)
def _table(
    t: int, data: Any, bucket_bits: int, score: bool, out_i: Any, out_j: Any, out_s: Any, slot: Any
) -> tuple[int, int, int]:  # pragma: no cover - compiled
    """One table: (pairs found first by this table, comparisons, largest block's pairs).

    ``data`` is the pass's read-only arrays (see ``_run``).  Found pairs go to
    out_*[slot, :capacity]; beyond the capacity they are only counted, and the caller
    reruns the table with room.
    """
    a_words, b_words, pool_a, pool_b, pa, pb, masks, row_masks, mult, min_count = data
    n = a_words.shape[0]
    m = b_words.shape[0]
    width = a_words.shape[1]
    row_bytes = 8 * width
    a_base = a_words.ctypes.data
    b_base = b_words.ctypes.data
    capacity = out_i.shape[1]
    keys_a = np.empty(n, np.uint64)
    keys_b = np.empty(m, np.uint64)
    for r in range(n):
        keys_a[r] = _key(pool_a, r, masks, mult, t)
    for r in range(m):
        keys_b[r] = _key(pool_b, r, masks, mult, t)
    n_buckets = 1 << bucket_bits
    shift = np.uint64(64 - bucket_bits)
    starts_a, rows_a, sk_a, sp_a = _bucket_sort(keys_a, pa, shift, n_buckets)
    starts_b, rows_b, sk_b, sp_b = _bucket_sort(keys_b, pb, shift, n_buckets)
    found = 0
    comparisons = 0
    largest = 0
    u = _next_bucket(starts_a, starts_b, 0)
    while u < n_buckets:
        v = _next_bucket(starts_a, starts_b, u + 1)
        if score and v < n_buckets:
            # The rows are scattered over the files: fetch the next bucket's while this
            # one is scored, instead of waiting for each row in turn.
            _prefetch_rows(a_base, row_bytes, rows_a, starts_a[v], starts_a[v + 1])
            _prefetch_rows(b_base, row_bytes, rows_b, starts_b[v], starts_b[v + 1])
        block = 0
        for x in range(starts_a[u], starts_a[u + 1]):
            i = rows_a[x]
            key = sk_a[x]
            p = sp_a[x]
            for y in range(starts_b[u], starts_b[u + 1]):
                # Different keys can share a bucket; they are not compared.
                if sk_b[y] != key:
                    continue
                block += 1
                if not score:
                    continue
                j = rows_b[y]
                c = np.uint64(0)
                for w in range(width):
                    c += popcount(a_words[i, w] & b_words[j, w])
                total = np.int64(p) + np.int64(sp_b[y])
                # min_count[total] is the least count whose score reaches the threshold,
                # computed with the same division, so this test decides exactly.
                if np.int64(c) < min_count[total]:
                    continue
                first = True
                # Checked on the full rows, which scoring just brought into cache.
                for earlier in range(t):
                    if _keys_agree(a_words, i, b_words, j, row_masks, earlier):
                        first = False
                        break
                if not first:
                    continue
                if found < capacity:
                    out_i[slot, found] = i
                    out_j[slot, found] = j
                    out_s[slot, found] = np.float64(2 * np.int64(c)) / np.float64(total)
                found += 1
        comparisons += block
        largest = max(largest, block)
        u = v
    return found, comparisons, largest


@njit(cache=True, nogil=True, parallel=True)
def _tables(
    first: Any, count: Any, data: Any, bucket_bits: int, score: bool, out_i: Any, out_j: Any,
    out_s: Any, results: Any,
) -> None:  # fmt: skip  # pragma: no cover - compiled
    # Tables first .. first + count - 1, one per thread at a time; table first + s writes
    # to slot s and its (found, comparisons, largest block) to results[s].
    for s in prange(count):
        found, comparisons, largest = _table(
            first + np.int64(s), data, bucket_bits, score, out_i, out_j, out_s, np.int64(s)
        )
        results[s, 0] = found
        results[s, 1] = comparisons
        results[s, 2] = largest


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def bit_frequencies(
    *parties: NDArray[np.uint8], sample_rows: int = FREQUENCY_SAMPLE_ROWS
) -> NDArray[np.float64]:
    """Share of records with each bit position set, over the given files together.

    Each file contributes an evenly spaced sample of at most ``sample_rows`` rows (the same
    rows every time, so the result is deterministic); a frequency measured on 65,536 rows is
    within about 0.004 of the whole file's.

    Args:
        parties: ``uint8`` arrays ``(n, l // 8)`` of packed filters, all of one width.
        sample_rows: Most rows of each file that are counted.

    Returns:
        float64 array of ``l`` frequencies in [0, 1], in clkhash bit order.
    """
    if not parties:
        raise ValueError("bit_frequencies needs at least one file")
    width = parties[0].shape[1]
    counts = np.zeros(8 * width, np.int64)
    rows = 0
    for bits in parties:
        if bits.shape[1] != width:
            raise ValueError("all files must have the same filter width")
        n = bits.shape[0]
        take = np.unique(np.linspace(0, n - 1, min(n, sample_rows)).astype(np.int64))
        # In chunks, so the unpacked bits (one byte per bit) stay small.
        for start in range(0, take.shape[0], 8192):
            counts += np.unpackbits(bits[take[start : start + 8192]], axis=1).sum(0, dtype=np.int64)
        rows += take.shape[0]
    return counts / rows if rows else np.full(8 * width, 0.5)


def _word_masks(indices: NDArray[np.int64], n_words: int) -> NDArray[np.uint64]:
    """Per table, its pool bits (indices into the pool) as masks over the packed words."""
    masks = np.zeros((indices.shape[0], n_words), np.uint64)
    rows = np.repeat(np.arange(indices.shape[0]), indices.shape[1])
    flat = indices.ravel()
    np.bitwise_or.at(masks, (rows, flat >> 6), np.uint64(1) << (flat & 63).astype(np.uint64))
    return masks


def _row_masks(positions: NDArray[np.int64], n_words: int) -> NDArray[np.uint64]:
    """Per table, its positions as masks over the rows' 64-bit words.

    Words are the rows' bytes read as little-endian uint64 (as ``bitarrays.to_words`` makes them);
    clkhash's bit ``p`` is byte ``p // 8``, most significant bit first.
    """
    masks = np.zeros((positions.shape[0], n_words), np.uint64)
    byte = positions.ravel() >> 3
    bit = (8 * (byte & 7) + 7 - (positions.ravel() & 7)).astype(np.uint64)
    rows = np.repeat(np.arange(positions.shape[0]), positions.shape[1])
    np.bitwise_or.at(masks, (rows, byte >> 3), np.uint64(1) << bit)
    return masks


def _pack_pool(bits: NDArray[np.uint8], pool: NDArray[np.int64]) -> NDArray[np.uint64]:
    """Each row's bits at the pool positions, packed: pool bit b is bit b % 64 of word b // 64."""
    out = np.zeros((bits.shape[0], (pool.shape[0] + 63) // 64), np.uint64)
    # clkhash order: bit p is byte p // 8, most significant bit first.
    _pack(bits, np.ascontiguousarray(pool >> 3), (7 - (pool & 7)).astype(np.uint8), out)
    return out


def _bucket_bits(bits_per_table: int, n_rows: int) -> int:
    # Keys are hashed to buckets: two buckets per possible key keeps most buckets to one
    # key, and at most about one per row of the larger file keeps the bucket arrays (read
    # and written at random) from outgrowing the caches.
    return max(1, min(bits_per_table + 1, int(n_rows).bit_length(), 30))


def _run(
    a_bits: Any,
    b_bits: Any,
    threshold: float,
    config: BlockingConfig,
    workers: int | None,
    want_pairs: bool,
    progress: Callable[[BlockingProgress], None] | None,
    frequencies: NDArray[np.float64] | None,
    table_range: tuple[int, int] | None = None,
) -> tuple[Candidates, BlockingStats]:
    start, end = (0, config.tables) if table_range is None else table_range
    if not 0 <= start <= end <= config.tables:
        raise ValueError(f"tables {start}..{end} are not within the {config.tables} tables")
    a = check_bits("a_bits", a_bits)
    b = check_bits("b_bits", b_bits)
    check_same_width(a, b)
    t = check_threshold(threshold)
    if max(a.shape[0], b.shape[0]) >= 2**31:
        raise ValueError("blocking supports files of fewer than 2**31 rows")  # int32 rows
    exhaustive = a.shape[0] * b.shape[0]
    if a.shape[0] == 0 or b.shape[0] == 0 or a.shape[1] == 0:
        if progress is not None:
            progress(BlockingProgress(end - start, end - start, 0, 0))
        return Candidates.empty(), BlockingStats(0, exhaustive, 1.0 if exhaustive == 0 else 0.0, 0)
    n_bits = 8 * a.shape[1]
    if frequencies is None and config.selection == "balanced":
        frequencies = bit_frequencies(a, b)
    pool = config.pool(n_bits, frequencies)
    positions = config.positions(n_bits, frequencies)
    a_words = to_words(a)
    b_words = to_words(b)
    pa = row_popcounts(a_words)
    pb = row_popcounts(b_words)
    min_count = min_count_table(64 * a_words.shape[1], t)
    # Keys are computed from the pool's bits packed together: half the memory read per
    # table for the default pool, and masks with fewer words.
    pool_a = _pack_pool(a, pool)
    pool_b = _pack_pool(b, pool)
    masks = _word_masks(np.searchsorted(pool, positions), pool_a.shape[1])
    row_masks = _row_masks(positions, a_words.shape[1])
    # Odd multipliers for the key hash; fixed by the seed, like the positions.
    rng = np.random.default_rng([config.seed, n_bits, 1])
    mult = rng.integers(0, 2**63, pool_a.shape[1], dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    bucket_bits = _bucket_bits(config.bits_per_table, max(a.shape[0], b.shape[0]))
    # What every table reads, passed to the kernels as one tuple.
    data = (a_words, b_words, pool_a, pool_b, pa, pb, masks, row_masks, mult, min_count)

    chunks_i: list[NDArray[np.int64]] = []
    chunks_j: list[NDArray[np.int64]] = []
    chunks_s: list[NDArray[np.float64]] = []
    comparisons = 0
    largest = 0
    found = 0
    # The first tables find most pairs (later ones mostly re-find them and emit nothing),
    # so start with room for a share of the smaller file and grow from what tables need.
    capacity = max(1024, min(a.shape[0], b.shape[0]) // 4) if want_pairs else 1
    with numba_threads(workers):
        per_round = 2 * numba.get_num_threads()
        first = start
        while first < end:
            count = min(per_round, end - first)
            out_i = np.empty((count, capacity), np.int64)
            out_j = np.empty((count, capacity), np.int64)
            out_s = np.empty((count, capacity), np.float64)
            results = np.zeros((count, 3), np.int64)
            _tables(first, count, data, bucket_bits, want_pairs, out_i, out_j, out_s, results)
            for s in range(count):
                n_found = int(results[s, 0])
                if n_found > capacity:
                    # Rerun this table alone with exactly the room it needs.
                    ri = np.empty((1, n_found), np.int64)
                    rj = np.empty((1, n_found), np.int64)
                    rs = np.empty((1, n_found), np.float64)
                    _tables(
                        first + s, 1, data, bucket_bits, want_pairs, ri, rj, rs,
                        np.zeros((1, 3), np.int64),
                    )  # fmt: skip
                    chunks_i.append(ri[0])
                    chunks_j.append(rj[0])
                    chunks_s.append(rs[0])
                elif n_found:
                    chunks_i.append(out_i[s, :n_found].copy())
                    chunks_j.append(out_j[s, :n_found].copy())
                    chunks_s.append(out_s[s, :n_found].copy())
                found += n_found
                comparisons += int(results[s, 1])
                largest = max(largest, int(results[s, 2]))
            if want_pairs:
                # Later tables mostly re-find pairs; twice the last round's most is ample.
                capacity = max(1024, 2 * int(results[:, 0].max()))
            first += count
            if progress is not None:
                progress(BlockingProgress(first - start, end - start, comparisons, found))
    stats = BlockingStats(
        comparisons=comparisons,
        exhaustive_comparisons=exhaustive,
        reduction_ratio=1.0 - comparisons / exhaustive,
        largest_block_pairs=largest,
    )
    if not chunks_i:
        return Candidates.empty(), stats
    found_pairs = Candidates(
        np.concatenate(chunks_i), np.concatenate(chunks_j), np.concatenate(chunks_s)
    )
    return found_pairs.sorted_unique(b.shape[0]), stats


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
    progress: Callable[[BlockingProgress], None] | None = None,
    frequencies: NDArray[np.float64] | None = None,
) -> Candidates:
    """The pairs with Dice >= ``threshold`` among the pairs that blocking compares.

    Args:
        a_bits: ``uint8`` array ``(n, l // 8)`` of packed filters (clkhash byte layout).
        b_bits: ``uint8`` array ``(m, l // 8)``, the same width.
        threshold: Keep pairs whose score is ``>= threshold``, in ``(0, 1]``.
        config: The blocking; ``BlockingConfig(exhaustive=True)`` compares every pair and
            returns exactly :func:`~linkage_unit.matching.similarity.dice_candidates`, as
            does any config for files of at most ``config.exhaustive_up_to`` pairs.
        workers: numba threads; ``None`` keeps ``numba.get_num_threads()``.
        max_candidates: Passed to ``dice_candidates`` in exhaustive mode.
        progress: Called after each round of tables with a :class:`BlockingProgress`.
        frequencies: Bit frequencies the balanced pool is chosen from; ``None`` measures
            them on ``a_bits`` and ``b_bits`` (:func:`bit_frequencies`).  Pass the
            frequencies of whole files to block a subset of rows exactly as they are
            blocked within the whole files: keys depend only on each row and the
            positions, so the result is then the whole files' pairs among those rows.

    Returns:
        ``(i, j, score)`` as :func:`~linkage_unit.matching.similarity.dice_candidates`
        returns them: int64 row indices, float64 scores bit-for-bit equal to that
        function's, sorted by ``(i, j)``, each pair once however many tables found it.
        The result is always a subset of ``dice_candidates(a_bits, b_bits, threshold)``.
    """
    return candidate_pairs_and_stats(
        a_bits,
        b_bits,
        threshold,
        config,
        workers=workers,
        max_candidates=max_candidates,
        progress=progress,
        frequencies=frequencies,
    )[0]


def candidate_pairs_and_stats(
    a_bits: NDArray[np.uint8],
    b_bits: NDArray[np.uint8],
    threshold: float,
    config: BlockingConfig = DEFAULT_BLOCKING,
    *,
    workers: int | None = None,
    max_candidates: int | None = DEFAULT_MAX_CANDIDATES,
    progress: Callable[[BlockingProgress], None] | None = None,
    frequencies: NDArray[np.float64] | None = None,
    tables: tuple[int, int] | None = None,
) -> tuple[Candidates, BlockingStats]:
    """:func:`candidate_pairs` and the :class:`BlockingStats` of the same pass.

    ``tables`` (blocked files only): run only tables ``start .. end - 1`` of the config.
    A pair is emitted by the first table whose keys agree, whichever tables a pass runs,
    so the passes over a partition of the tables find disjoint sets of pairs whose union
    is the whole pass's (:mod:`linkage_unit.matching.distributed` runs them on Dask); pass
    the whole files' ``frequencies`` to every part, so all choose the same positions.
    """
    if config.compares_all(a_bits.shape[0], b_bits.shape[0]):
        n = a_bits.shape[0] * b_bits.shape[0]
        found = dice_candidates(
            a_bits, b_bits, threshold, max_candidates=max_candidates, workers=workers
        )
        if progress is not None:
            progress(BlockingProgress(1, 1, n, found[0].shape[0]))
        return found, BlockingStats(n, n, 0.0, n)
    return _run(a_bits, b_bits, threshold, config, workers, True, progress, frequencies, tables)


def blocking_stats(
    a_bits: NDArray[np.uint8],
    b_bits: NDArray[np.uint8],
    config: BlockingConfig = DEFAULT_BLOCKING,
    *,
    workers: int | None = None,
    frequencies: NDArray[np.float64] | None = None,
) -> BlockingStats:
    """How many comparisons ``config`` makes on these files, without scoring any pair.

    ``frequencies`` is as for :func:`candidate_pairs`.
    """
    a = check_bits("a_bits", a_bits)
    b = check_bits("b_bits", b_bits)
    if config.compares_all(a.shape[0], b.shape[0]):
        n = a.shape[0] * b.shape[0]
        return BlockingStats(n, n, 0.0, n)
    _, stats = _run(a, b, 1.0, config, workers, False, None, frequencies)
    return stats


def pair_completeness(blocked: CandidatesLike, exhaustive: CandidatesLike) -> float:
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
