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

* B is sorted by popcount and cut into groups of ``64 * _LANE_WORDS`` rows.  Each group is
  transposed into bit planes: plane ``p`` is a ``_LANE_WORDS``-word vector whose bit ``r``
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
  that group (``_min_count_table``), still bit-sliced; only the lanes that pass are decoded
  and checked exactly, so the result is bit-for-bit what the direct formula gives.

The vector code is emitted as LLVM IR on ``<_LANE_WORDS x i64>`` vectors, which LLVM lowers
for the host CPU: one 256-bit register per vector on AVX2, one 512-bit register where
AVX-512 exists, with ``vpternlogq`` for the adders there.  Row popcounts use plain ``ctpop``
in a loop LLVM vectorises: ``vpopcntq`` on CPUs with AVX-512 VPOPCNTDQ.

The popcount bound ``dice <= 2 * min(|a|, |b|) / (|a| + |b|)`` restricts each row of A to a
window of B's popcounts; groups outside it are skipped.  The window is computed with the
same floating-point test as the final one, so it never removes a qualifying pair.

Work is split into tiles of A rows that run in parallel (numba's threading layer; the
``workers`` argument or ``numba.set_num_threads`` sets how many), and results are produced
tile by tile so memory stays bounded however low the threshold is: besides its inputs, a
call holds B's planes (the size of B) and the candidates of a few tiles at a time.

numba compiles the kernels on first use (about ten seconds) and caches them on disk.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator
from typing import Any, Final

import llvmlite.binding as llvm_binding  # type: ignore[import-untyped]
import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic
from numpy.typing import NDArray

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

CandidateArrays = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]


def _lane_words() -> int:
    # Eight 64-bit words fill one 512-bit register where AVX-512 exists; on AVX2 four words
    # (one 256-bit register) measured faster than eight because a group's planes for a
    # 1024-bit filter then fit the 32 KiB L1 cache.
    features = llvm_binding.get_host_cpu_features()
    return 8 if features.get("avx512f", False) else 4


_LANE_WORDS: Final = _lane_words()
_GROUP_ROWS: Final = 64 * _LANE_WORDS
# Levels of the bit-sliced counter; a count needs bit_length(count) levels, so 32 levels
# cover filters of up to 2**32 - 1 bits.
_MAX_LEVELS: Final = 32
# Counter depths with a fully unrolled carry ripple; deeper counters use a generic loop.
# 9 levels cover rows with fewer than 512 set bits (1024-bit CLKs), 13 cover 4096-bit ones.
_UNROLLED_LEVELS: Final = (9, 11, 13)
# Harley-Seal processes this many planes per step (fixed by the adder tree below).
_BATCH: Final = 16
# Output buffers per kernel call are sized to stay near this many bytes when possible.
_BATCH_BUFFER_BYTES: Final = 256 * 2**20
_INITIAL_TILE_CAPACITY: Final = 1024
_BYTES_PER_CANDIDATE: Final = 24  # int64 i, int64 j, float64 score


class CandidateLimitExceeded(ValueError):
    """More candidate pairs reach the threshold than the caller's ``max_candidates`` allows."""


# --------------------------------------------------------------------------------------
# LLVM intrinsics (numba has no popcount/tzcnt or explicit-vector support of its own)
# --------------------------------------------------------------------------------------


def _popcount_typer(typingctx: Any, x: Any) -> Any:
    """``ctpop`` on a uint64; LLVM picks ``popcnt``/``vpopcntq`` for the host."""
    sig = types.uint64(types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return sig, codegen


# Intrinsics are bound as Any: numba's intrinsic objects are callable only inside jitted
# code, without the typing context argument, which mypy cannot express.
_popcount: Any = intrinsic(_popcount_typer)


def _trailing_zeros_typer(typingctx: Any, x: Any) -> Any:
    """Index of the lowest set bit of a non-zero uint64 (``tzcnt``)."""
    sig = types.uint64(types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return sig, codegen


_trailing_zeros: Any = intrinsic(_trailing_zeros_typer)


def _bit_length_typer(typingctx: Any, x: Any) -> Any:
    """Number of bits needed for a non-negative int64 (64 - ``lzcnt``), without a loop."""
    sig = types.int64(types.int64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        zeros = builder.ctlz(args[0], ir.Constant(ir.IntType(1), 0))
        return builder.sub(ir.Constant(ir.IntType(64), 64), zeros)

    return sig, codegen


_bit_length: Any = intrinsic(_bit_length_typer)


def _array_data(context: Any, builder: Any, array_type: Any, value: Any) -> Any:
    return context.make_array(array_type)(context, builder, value=value).data


class _CounterEmitter:
    """Emits the bit-sliced Harley-Seal counting loop and threshold mask as LLVM IR."""

    def __init__(self, context: Any, builder: Any, signature: Any, args: Any) -> None:
        self.builder = builder
        self.i64 = ir.IntType(64)
        self.vec = ir.VectorType(self.i64, _LANE_WORDS)
        self.vec_ptr = self.vec.as_pointer()
        self.zeros = ir.Constant(self.vec, [0] * _LANE_WORDS)
        self.ones = ir.Constant(self.vec, [-1] * _LANE_WORDS)
        (planes, idx, start, n_inputs, bound, state, mask) = args
        sig = signature.args
        self.planes = _array_data(context, builder, sig[0], planes)
        self.idx = _array_data(context, builder, sig[1], idx)
        self.state = _array_data(context, builder, sig[5], state)
        self.mask = _array_data(context, builder, sig[6], mask)
        self.start = start
        self.n_inputs = n_inputs
        # Batches of 16 planes (the list is padded with the zero plane to whole batches).
        self.n_batches = builder.sdiv(
            builder.add(n_inputs, self.const(_BATCH - 1)), self.const(_BATCH)
        )
        # A count never exceeds n_inputs, so it needs bit_length(n_inputs) levels.
        zeros = builder.ctlz(n_inputs, ir.Constant(ir.IntType(1), 0))
        self.levels = builder.sub(self.const(64), zeros)
        self.bound = bound

    def const(self, value: int) -> Any:
        return ir.Constant(self.i64, value)

    def level_ptr(self, level: Any) -> Any:
        if isinstance(level, int):
            level = self.const(level)
        offset = self.builder.mul(level, self.const(_LANE_WORDS))
        return self.builder.bitcast(self.builder.gep(self.state, [offset]), self.vec_ptr)

    def load_level(self, level: Any) -> Any:
        return self.builder.load(self.level_ptr(level), align=8)

    def store_level(self, value: Any, level: Any) -> None:
        self.builder.store(value, self.level_ptr(level), align=8)

    def load_plane(self, base: Any, k: int) -> Any:
        b = self.builder
        # idx holds word offsets (plane * _LANE_WORDS), so the address is base + 8 * offset:
        # one scaled addressing mode, no shift or multiply per load.
        offset = b.sext(b.load(b.gep(self.idx, [b.add(base, self.const(k))])), self.i64)
        return b.load(b.bitcast(b.gep(self.planes, [offset]), self.vec_ptr), align=8)

    def csa(self, acc: Any, x: Any, y: Any) -> tuple[Any, Any]:
        """Carry-save adder: returns (carry, sum) of three bit vectors."""
        b = self.builder
        u = b.xor(acc, x)
        carry = b.or_(b.and_(acc, x), b.and_(u, y))
        return carry, b.xor(u, y)

    def emit(self) -> None:
        b = self.builder
        fn = b.function
        join = fn.append_basic_block("dice.join")
        # Pick the variant whose unrolled ripple is deep enough; each ends at `join`.  The
        # variant is the same for every group a row of A meets, so the branch predicts well.
        for depth in _UNROLLED_LEVELS:
            here = fn.append_basic_block(f"dice.v{depth}")
            other = fn.append_basic_block(f"dice.not{depth}")
            fits = b.icmp_signed("<=", self.levels, self.const(depth))
            b.cbranch(fits, here, other)
            b.position_at_end(here)
            self.emit_loop(depth, join)
            self.emit_mask_unrolled(depth)
            b.branch(join)
            b.position_at_end(other)
        self.emit_loop(None, join)
        self.emit_mask_loop()
        b.branch(join)
        b.position_at_end(join)

    def emit_zero_levels(self, depth: int | None) -> None:
        """Zero counter levels 4.. (levels 0-3 live in registers during the loop)."""
        b = self.builder
        if depth is not None:
            for level in range(4, depth):
                self.store_level(self.zeros, level)
            return
        pre = b.block
        head = b.append_basic_block("dice.zero.head")
        body = b.append_basic_block("dice.zero.body")
        done = b.append_basic_block("dice.zero.done")
        b.branch(head)
        b.position_at_end(head)
        level = b.phi(self.i64)
        level.add_incoming(self.const(4), pre)
        b.cbranch(b.icmp_signed("<", level, self.levels), body, done)
        b.position_at_end(body)
        self.store_level(self.zeros, level)
        level.add_incoming(b.add(level, self.const(1)), body)
        b.branch(head)
        b.position_at_end(done)

    def emit_ripple(self, carry: Any, depth: int | None) -> list[Any]:
        """Add the weight-16 vector `carry` into counter levels 4.. (ripple-carry).

        Returns the new values of levels 4..depth-1 (none for the generic loop).
        """
        b = self.builder
        if depth is not None:
            levels = []
            for level in range(4, depth):
                old = self.load_level(level)
                new = b.xor(old, carry)
                self.store_level(new, level)
                levels.append(new)
                carry = b.and_(old, carry)
            return levels
        pre = b.block
        head = b.append_basic_block("dice.ripple.head")
        body = b.append_basic_block("dice.ripple.body")
        done = b.append_basic_block("dice.ripple.done")
        b.branch(head)
        b.position_at_end(head)
        level = b.phi(self.i64)
        carry_phi = b.phi(self.vec)
        level.add_incoming(self.const(4), pre)
        carry_phi.add_incoming(carry, pre)
        b.cbranch(b.icmp_signed("<", level, self.levels), body, done)
        b.position_at_end(body)
        old = self.load_level(level)
        self.store_level(b.xor(old, carry_phi), level)
        level.add_incoming(b.add(level, self.const(1)), body)
        carry_phi.add_incoming(b.and_(old, carry_phi), body)
        b.branch(head)
        b.position_at_end(done)
        return []

    def emit_early_exit(self, batch: Any, high_levels: list[Any], join: Any) -> Any:
        """After some batches, stop once no lane can still reach the bound.

        A lane's final count is at most its count so far plus the planes still to come, so
        a lane is dead when count + remaining < bound, i.e. count < bound - remaining =: k.
        Only the counter's levels >= 4 are compared (count >> 4 < k >> 4 implies
        count < k): cheaper, and merely a little later to stop.  Checked every second
        batch, which measured best; on random data at threshold 0.8 the loop then runs
        less than half its batches.  Returns the block that continues the loop.
        """
        b = self.builder
        fn = b.function
        check = fn.append_basic_block("dice.exit.check")
        dead = fn.append_basic_block("dice.exit.dead")
        cont = fn.append_basic_block("dice.exit.cont")
        # Only batches before the last, so every plane counted so far is a real one (the
        # zero-plane padding is all in the last batch, where stopping would gain nothing).
        next_batch = b.add(batch, self.const(1))
        done_inputs = b.mul(next_batch, self.const(_BATCH))
        k = b.sub(self.bound, b.sub(self.n_inputs, done_inputs))
        odd = b.icmp_signed("==", b.and_(batch, self.const(1)), self.const(1))
        positive = b.icmp_signed(">", k, self.const(0))
        not_last = b.icmp_signed("<", next_batch, self.n_batches)
        b.cbranch(b.and_(b.and_(odd, positive), not_last), check, cont)

        b.position_at_end(check)
        top = 4 + len(high_levels)
        greater = self.zeros
        equal = self.initial_equal(k, self.const(top))
        for offset in range(len(high_levels) - 1, -1, -1):
            greater, equal = self.compare_step(
                greater, equal, high_levels[offset], k, self.const(4 + offset)
            )
        alive = b.or_(greater, equal)
        wide = ir.IntType(64 * _LANE_WORDS)
        any_alive = b.icmp_unsigned("!=", b.bitcast(alive, wide), ir.Constant(wide, 0))
        b.cbranch(any_alive, cont, dead)

        b.position_at_end(dead)
        b.store(self.zeros, b.bitcast(self.mask, self.vec_ptr), align=8)
        b.branch(join)

        b.position_at_end(cont)
        return cont

    def emit_loop(self, depth: int | None, join: Any) -> None:
        """One Harley-Seal pass over the batches of 16 planes for this row of A."""
        b = self.builder
        self.emit_zero_levels(depth)
        pre = b.block
        tag = "g" if depth is None else str(depth)
        head = b.append_basic_block(f"dice.hs{tag}.head")
        body = b.append_basic_block(f"dice.hs{tag}.body")
        done = b.append_basic_block(f"dice.hs{tag}.done")
        b.branch(head)
        b.position_at_end(head)
        batch = b.phi(self.i64)
        phis = [b.phi(self.vec) for _ in range(4)]  # ones, twos, fours, eights
        batch.add_incoming(self.const(0), pre)
        for phi in phis:
            phi.add_incoming(self.zeros, pre)
        b.cbranch(b.icmp_signed("<", batch, self.n_batches), body, done)

        b.position_at_end(body)
        base = b.add(self.start, b.mul(batch, self.const(_BATCH)))
        ones, twos, fours, eights = phis

        # Classic Harley-Seal: pairs of planes go through the `ones` adder, pairs of the
        # resulting twos through the `twos` adder, and so on.  (A shallower Wallace tree
        # needs all 16 planes live at once and spilled registers on AVX2.)
        def pair(k: int, ones: Any) -> tuple[Any, Any]:
            return self.csa(ones, self.load_plane(base, k), self.load_plane(base, k + 1))

        def quad(k: int, ones: Any, twos: Any) -> tuple[Any, Any, Any]:
            twos_a, ones = pair(k, ones)
            twos_b, ones = pair(k + 2, ones)
            fours_x, twos = self.csa(twos, twos_a, twos_b)
            return fours_x, ones, twos

        def octet(k: int, ones: Any, twos: Any, fours: Any) -> tuple[Any, Any, Any, Any]:
            fours_a, ones, twos = quad(k, ones, twos)
            fours_b, ones, twos = quad(k + 4, ones, twos)
            eights_x, fours = self.csa(fours, fours_a, fours_b)
            return eights_x, ones, twos, fours

        eights_a, ones, twos, fours = octet(0, ones, twos, fours)
        eights_b, ones, twos, fours = octet(8, ones, twos, fours)
        sixteens, eights = self.csa(eights, eights_a, eights_b)
        high_levels = self.emit_ripple(sixteens, depth)
        if high_levels:
            self.emit_early_exit(batch, high_levels, join)
        latch = b.block
        batch.add_incoming(b.add(batch, self.const(1)), latch)
        for phi, value in zip(phis, (ones, twos, fours, eights), strict=True):
            phi.add_incoming(value, latch)
        b.branch(head)

        b.position_at_end(done)
        for level, phi in enumerate(phis):
            self.store_level(phi, level)

    def compare_step(
        self, greater: Any, equal: Any, count_bit: Any, bound: Any, level: Any
    ) -> tuple[Any, Any]:
        """One level (from the top) of the bit-sliced comparison count >= bound."""
        b = self.builder
        bound_bit = b.trunc(b.and_(b.lshr(bound, level), self.const(1)), ir.IntType(1))
        bound_vec = b.select(bound_bit, self.ones, self.zeros)
        # Where higher bits tie and the count has a 1 against the bound's 0: count > bound.
        greater = b.or_(greater, b.and_(b.and_(equal, count_bit), b.not_(bound_vec)))
        equal = b.and_(equal, b.not_(b.xor(count_bit, bound_vec)))
        return greater, equal

    def initial_equal(self, bound: Any, top: Any) -> Any:
        # A bound with bits at or above level `top` exceeds every count the levels can hold
        # (bound > 0 here: 0 is never a useful bound, see _min_count_table).
        b = self.builder
        high = b.lshr(bound, top)
        return b.select(b.icmp_signed("==", high, self.const(0)), self.ones, self.zeros)

    def store_mask(self, greater: Any, equal: Any) -> None:
        b = self.builder
        b.store(b.or_(greater, equal), b.bitcast(self.mask, self.vec_ptr), align=8)

    def emit_mask_unrolled(self, depth: int) -> None:
        """mask = lanes whose count is >= bound; levels above the row's own are zero."""
        greater = self.zeros
        equal = self.initial_equal(self.bound, self.const(depth))
        for level in range(depth - 1, -1, -1):
            count_bit = self.load_level(level)
            greater, equal = self.compare_step(
                greater, equal, count_bit, self.bound, self.const(level)
            )
        self.store_mask(greater, equal)

    def emit_mask_loop(self) -> None:
        """As emit_mask_unrolled, over the row's `levels` levels with a loop."""
        b = self.builder
        equal_init = self.initial_equal(self.bound, self.levels)
        pre = b.block
        head = b.append_basic_block("dice.cmp.head")
        body = b.append_basic_block("dice.cmp.body")
        done = b.append_basic_block("dice.cmp.done")
        b.branch(head)
        b.position_at_end(head)
        level = b.phi(self.i64)  # counts down: levels, levels - 1, ..., 1
        greater = b.phi(self.vec)
        equal = b.phi(self.vec)
        level.add_incoming(self.levels, pre)
        greater.add_incoming(self.zeros, pre)
        equal.add_incoming(equal_init, pre)
        b.cbranch(b.icmp_signed(">", level, self.const(0)), body, done)
        b.position_at_end(body)
        k = b.sub(level, self.const(1))
        count_bit = self.load_level(k)
        new_greater, new_equal = self.compare_step(greater, equal, count_bit, self.bound, k)
        level.add_incoming(k, body)
        greater.add_incoming(new_greater, body)
        equal.add_incoming(new_equal, body)
        b.branch(head)
        b.position_at_end(done)
        self.store_mask(greater, equal)


def _count_at_least_typer(
    typingctx: Any,
    planes: Any,
    idx: Any,
    start: Any,
    n_inputs: Any,
    bound: Any,
    state: Any,
    mask: Any,
) -> Any:
    """Bit-sliced |a & b| for one row a against one group of B, and the lanes >= bound.

    ``planes`` is the group's ``(n_planes + 1, _LANE_WORDS)`` plane array (the last plane is
    all zero and pads the final batch); ``idx[start : start + n_inputs]`` lists the word
    offsets of the planes at a's ``n_inputs >= 1`` set bits, padded to a multiple of 16.
    On return ``mask`` has a bit set for every lane whose count is ``>= bound``, and then
    ``state[k]`` holds bit ``k`` of every lane's count for ``k < bit_length(n_inputs)``.
    (When no lane can reach the bound the loop may stop early; ``mask`` is then zero.)
    """
    sig = types.void(planes, idx, start, n_inputs, bound, state, mask)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        _CounterEmitter(context, builder, signature, args).emit()
        return context.get_dummy_value()

    return sig, codegen


_count_at_least: Any = intrinsic(_count_at_least_typer)


# --------------------------------------------------------------------------------------
# numba kernels
# --------------------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def _row_popcounts(words: NDArray[np.uint64]) -> NDArray[np.int64]:
    # Serial: this is a tiny fraction of the work, and parallel=True costs compile time.
    n, width = words.shape
    counts = np.zeros(n, np.int64)
    for r in range(n):
        total = np.uint64(0)
        # A plain reduction over words: LLVM vectorises ctpop here (vpopcntq on AVX-512).
        for w in range(width):
            total += _popcount(words[r, w])
        counts[r] = np.int64(total)
    return counts


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
                    planes[g, w * 64 + np.int64(_trailing_zeros(x)), q] |= bit
                    x &= x - np.uint64(1)


@njit(nogil=True, cache=True)
def _min_count_table(n_bits: int, threshold: float) -> NDArray[np.int64]:
    """table[d] = least c with float(2c) / float(d) >= threshold, for d = |a| + |b|.

    Beyond any reachable count (c <= d // 2) the entry is d // 2 + 1; d = 0 (two all-zero
    filters) is never a candidate.  The quotient is the one used for scores, so comparing
    integer counts with this table decides exactly what the division would.
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
    a_words: NDArray[np.uint64],
    pa: NDArray[np.int64],
    planes: NDArray[np.uint64],
    pb_sorted: NDArray[np.int64],
    order_b: NDArray[np.int64],
    group_lo: NDArray[np.int64],
    group_hi: NDArray[np.int64],
    min_count: NDArray[np.int64],
    win_lo: NDArray[np.int64],
    win_hi: NDArray[np.int64],
    capacity: int,
    out_i: NDArray[np.int64],
    out_j: NDArray[np.int64],
    out_s: NDArray[np.float64],
) -> int:
    """Candidates of A rows start + [0, rows) into out_*[t]; returns how many were found.

    At most `capacity` pairs are written, in no particular order; when more are found the
    caller reruns the tile with room.  (A plain function rather than the body of the prange
    loop, and free of np.argsort/np.searchsorted/fancy indexing, to keep compile time low.)
    """
    m = pb_sorted.shape[0]
    zero_plane = planes.shape[1] - 1
    width = a_words.shape[1]
    # Plane lists of every row of the tile, each padded with the zero plane to whole
    # batches of 16; built once per tile and reused for every group of B.
    offsets = np.zeros(rows + 1, np.int64)
    for r in range(rows):
        offsets[r + 1] = offsets[r] + (pa[start + r] + _BATCH - 1) // _BATCH * _BATCH
    idx = np.empty(offsets[rows], np.int32)
    tile_lo = zero_plane + 1  # above any popcount
    tile_hi = -1
    for r in range(rows):
        k = offsets[r]
        for w in range(width):
            x = a_words[start + r, w]
            while x:
                plane = w * 64 + np.int64(_trailing_zeros(x))
                idx[k] = np.int32(plane * _LANE_WORDS)
                k += 1
                x &= x - np.uint64(1)
        while k < offsets[r + 1]:
            idx[k] = np.int32(zero_plane * _LANE_WORDS)
            k += 1
        p = pa[start + r]
        if win_lo[p] <= win_hi[p]:
            tile_lo = min(tile_lo, win_lo[p])
            tile_hi = max(tile_hi, win_hi[p])

    state = np.zeros((_MAX_LEVELS, _LANE_WORDS), np.uint64)
    mask = np.zeros(_LANE_WORDS, np.uint64)
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
            _count_at_least(planes_g, idx, offsets[r], p, bound, state, mask)
            levels = _bit_length(p)
            for q in range(_LANE_WORDS):
                bits = mask[q]
                while bits:
                    lane = _trailing_zeros(bits)
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
    a_words: NDArray[np.uint64],
    pa: NDArray[np.int64],
    tile_starts: NDArray[np.int64],
    tile_lens: NDArray[np.int64],
    planes: NDArray[np.uint64],
    pb_sorted: NDArray[np.int64],
    order_b: NDArray[np.int64],
    group_lo: NDArray[np.int64],
    group_hi: NDArray[np.int64],
    min_count: NDArray[np.int64],
    win_lo: NDArray[np.int64],
    win_hi: NDArray[np.int64],
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
            a_words,
            pa,
            planes,
            pb_sorted,
            order_b,
            group_lo,
            group_hi,
            min_count,
            win_lo,
            win_hi,
            capacity,
            out_i,
            out_j,
            out_s,
        )


# --------------------------------------------------------------------------------------
# Python driver
# --------------------------------------------------------------------------------------


def _check_bits(name: str, bits: object) -> NDArray[np.uint8]:
    array = np.asarray(bits)
    if array.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 array of packed filters, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (records x filter bytes), got shape {array.shape}")
    return np.ascontiguousarray(array)


def _check_width(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"a_bits and b_bits must have the same filter width, got {a.shape[1]} and "
            f"{b.shape[1]} bytes per row"
        )
    # Plane offsets are int32 word offsets (half the index memory of int64).
    if (a.shape[1] + 8) * 8 * _LANE_WORDS >= 2**31:
        raise ValueError(f"filters of {a.shape[1] * 8:,} bits are longer than supported")


def _check_threshold(threshold: object) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ValueError(f"threshold must be a real number in (0, 1], got {threshold!r}")
    value = float(threshold)
    if not 0.0 < value <= 1.0:  # also rejects NaN
        raise ValueError(f"threshold must be in (0, 1], got {value!r}")
    return value


def _check_positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _to_words(bits: NDArray[np.uint8], n_words: int) -> NDArray[np.uint64]:
    # Zero-pad each row to whole 64-bit words (padding bits count as unset) in a fresh,
    # aligned array, so any byte width works and uint64 loads are aligned.
    words = np.zeros((bits.shape[0], n_words), np.uint64)
    words.view(np.uint8)[:, : bits.shape[1]] = bits
    return words


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


@contextlib.contextmanager
def _numba_threads(workers: int | None) -> Iterator[None]:
    """Run numba parallel code with `workers` threads and dynamic scheduling."""
    previous_threads = numba.get_num_threads()
    # Tiles vary in cost (popcounts, windows); hand them out one at a time.
    previous_chunk = numba.set_parallel_chunksize(1)
    try:
        if workers is not None:
            numba.set_num_threads(workers)
        yield
    finally:
        numba.set_num_threads(previous_threads)
        numba.set_parallel_chunksize(previous_chunk)


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
        self.a_words = _to_words(a, n_words)
        b_words = _to_words(b, n_words)
        self.pa = _row_popcounts(self.a_words)
        pb = _row_popcounts(b_words)
        # Stable, so equal popcounts keep B's order (only cosmetic: output is re-sorted).
        self.order_b = np.argsort(pb, kind="stable").astype(np.int64)
        self.pb_sorted = np.ascontiguousarray(pb[self.order_b])
        n_groups = (self.m + _GROUP_ROWS - 1) // _GROUP_ROWS
        self.planes = _aligned_zeros((n_groups, n_bits + 1, _LANE_WORDS), np.uint64)
        _build_planes(b_words, self.order_b, self.planes)
        firsts = np.arange(n_groups, dtype=np.int64) * _GROUP_ROWS
        self.group_lo = self.pb_sorted[firsts]
        self.group_hi = self.pb_sorted[np.minimum(firsts + _GROUP_ROWS, self.m) - 1]
        self.min_count = _min_count_table(n_bits, threshold)
        self.win_lo, self.win_hi = _popcount_windows(
            n_bits, threshold, self.min_count, anonlink_compatible
        )

    def run(
        self, starts: NDArray[np.int64], lens: NDArray[np.int64], capacity: int
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
        n_tiles = starts.shape[0]
        out_i = np.empty((n_tiles, capacity), np.int64)
        out_j = np.empty((n_tiles, capacity), np.int64)
        out_s = np.empty((n_tiles, capacity), np.float64)
        counts = np.zeros(n_tiles, np.int64)
        _dice_tiles(
            self.a_words,
            self.pa,
            starts,
            lens,
            self.planes,
            self.pb_sorted,
            self.order_b,
            self.group_lo,
            self.group_hi,
            self.min_count,
            self.win_lo,
            self.win_hi,
            capacity,
            out_i,
            out_j,
            out_s,
            counts,
        )
        return out_i, out_j, out_s, counts


def _sorted_chunk(chunk: CandidateArrays, first_row: int, m: int) -> CandidateArrays:
    """Copy of one tile's pairs sorted by (i, j) (the kernel emits them group by group)."""
    i, j, s = chunk
    order = np.argsort((i - first_row) * m + j)  # unique keys, so any sort is stable
    return i[order], j[order], s[order]


def _empty() -> CandidateArrays:
    return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)


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
) -> Iterator[CandidateArrays]:
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
    a = _check_bits("a_bits", a_bits)
    b = _check_bits("b_bits", b_bits)
    _check_width(a, b)
    t = _check_threshold(threshold)
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
) -> Iterator[CandidateArrays]:
    if a.shape[0] == 0 or b.shape[0] == 0 or a.shape[1] == 0:
        return  # no pairs, or zero-bit filters that never score above 0
    with _numba_threads(workers):
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
        with _numba_threads(workers):
            out_i, out_j, out_s, counts = prepared.run(starts, lens, capacity)
        overflowed = [t for t in range(starts.shape[0]) if counts[t] > capacity]
        rerun: dict[int, tuple[CandidateArrays, int]] = {}
        for t in range(starts.shape[0]):
            count = int(counts[t])
            if count == 0:
                continue
            found += count
            if limit is not None and found > limit:
                rows_done = int(starts[t] + lens[t])
                raise CandidateLimitExceeded(_limit_error(found, limit, threshold, rows_done, n))
            if count <= capacity:
                chunk = (out_i[t, :count], out_j[t, :count], out_s[t, :count])
            else:
                if t not in rerun:
                    # Rerun this and the next overflowed tiles with exactly the room they
                    # need, as many at a time as the buffer budget allows.
                    rerun.clear()
                    pending = [u for u in overflowed if u >= t]
                    room = int(max(counts[u] for u in pending))
                    group = pending[: max(threads, _tiles_within_budget(room))]
                    room = int(max(counts[u] for u in group))
                    with _numba_threads(workers):
                        ri, rj, rs, _ = prepared.run(starts[group], lens[group], room)
                    rerun = {u: ((ri, rj, rs), k) for k, u in enumerate(group)}
                (ri, rj, rs), k = rerun[t]
                chunk = (ri[k, :count], rj[k, :count], rs[k, :count])
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
) -> CandidateArrays:
    """Every pair (i, j) of rows of ``a_bits`` and ``b_bits`` with Dice >= ``threshold``.

    :param a_bits: ``uint8`` array ``(n, l // 8)`` of packed filters (clkhash byte layout);
        made C-contiguous if it is not.  Any ``l`` that is a multiple of 8 works.
    :param b_bits: ``uint8`` array ``(m, l // 8)``, the same width as ``a_bits``.
    :param threshold: keep pairs whose score is ``>= threshold``; must be in ``(0, 1]``.
    :param max_candidates: raise :class:`CandidateLimitExceeded` rather than return more
        pairs than this (``None``: no cap).
    :param tile_rows: rows of ``a_bits`` per unit of work (see :func:`iter_dice_candidates`).
    :param workers: numba threads to use; ``None`` keeps the current
        ``numba.get_num_threads()``.
    :param anonlink_compatible: also apply anonlink's popcount prefilter, see below.
    :returns: ``(i, j, score)``: int64 row indices into ``a_bits`` and ``b_bits`` and the
        float64 Dice coefficients, sorted by ``(i, j)`` ascending.

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
    chunks = list(
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
    if not chunks:
        return _empty()
    i, j, s = zip(*chunks, strict=True)
    return np.concatenate(i), np.concatenate(j), np.concatenate(s)
