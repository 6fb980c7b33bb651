"""LLVM intrinsics for the numba kernels: bit counts and scans, prefetch, the bit-sliced counter.

numba has no popcount, bit-scan, prefetch or explicit-vector support of its own, so these are
emitted as LLVM IR.  :data:`count_at_least` is the heart of the Dice kernel in
:mod:`linkage_unit.matching.similarity` (whose docstring explains the bit-sliced method): a
Harley-Seal carry-save adder tree over ``<LANE_WORDS x i64>`` vectors, which LLVM lowers for
the host CPU (one 256-bit register per vector on AVX2, one 512-bit register with AVX-512).

The intrinsics are bound as ``Any``: numba's intrinsic objects are callable only inside
jitted code, without the typing context argument, which mypy cannot express.
"""

from __future__ import annotations

from typing import Any, Final

import llvmlite.binding as llvm_binding  # type: ignore[import-untyped]
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = [
    "BATCH",
    "LANE_WORDS",
    "bit_length",
    "count_at_least",
    "popcount",
    "prefetch",
    "trailing_zeros",
]


def _lane_words() -> int:
    # Eight 64-bit words fill one 512-bit register where AVX-512 exists; on AVX2 four words
    # (one 256-bit register) measured faster than eight because a group's planes for a
    # 1024-bit filter then fit the 32 KiB L1 cache.
    features = llvm_binding.get_host_cpu_features()
    return 8 if features.get("avx512f", False) else 4


#: 64-bit words per vector of the bit-sliced counter (one lane per bit: 64 * LANE_WORDS rows).
LANE_WORDS: Final = _lane_words()
# Counter depths with a fully unrolled carry ripple; deeper counters use a generic loop.
# 9 levels cover rows with fewer than 512 set bits (1024-bit CLKs), 13 cover 4096-bit ones.
_UNROLLED_LEVELS: Final = (9, 11, 13)
#: Planes per Harley-Seal step (fixed by the adder tree below); plane lists are padded to it.
BATCH: Final = 16


def _popcount_typer(typingctx: Any, x: Any) -> Any:
    """``ctpop`` on a uint64; LLVM picks ``popcnt``/``vpopcntq`` for the host."""
    sig = types.uint64(types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return sig, codegen


#: ``popcount(x)``: set bits of a uint64 (jitted code only).
popcount: Any = intrinsic(_popcount_typer)


def _trailing_zeros_typer(typingctx: Any, x: Any) -> Any:
    """Index of the lowest set bit of a non-zero uint64 (``tzcnt``)."""
    sig = types.uint64(types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return sig, codegen


#: ``trailing_zeros(x)``: index of the lowest set bit of a non-zero uint64 (jitted code only).
trailing_zeros: Any = intrinsic(_trailing_zeros_typer)


def _bit_length_typer(typingctx: Any, x: Any) -> Any:
    """Number of bits needed for a non-negative int64 (64 - ``lzcnt``), without a loop."""
    sig = types.int64(types.int64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        zeros = builder.ctlz(args[0], ir.Constant(ir.IntType(1), 0))
        return builder.sub(ir.Constant(ir.IntType(64), 64), zeros)

    return sig, codegen


#: ``bit_length(x)``: bits needed for a non-negative int64 (jitted code only).
bit_length: Any = intrinsic(_bit_length_typer)


def _array_data(context: Any, builder: Any, array_type: Any, value: Any) -> Any:
    return context.make_array(array_type)(context, builder, value=value).data


class _CounterEmitter:
    """Emits the bit-sliced Harley-Seal counting loop and threshold mask as LLVM IR."""

    def __init__(self, context: Any, builder: Any, signature: Any, args: Any) -> None:
        self.builder = builder
        self.i64 = ir.IntType(64)
        self.vec = ir.VectorType(self.i64, LANE_WORDS)
        self.vec_ptr = self.vec.as_pointer()
        self.zeros = ir.Constant(self.vec, [0] * LANE_WORDS)
        self.ones = ir.Constant(self.vec, [-1] * LANE_WORDS)
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
            builder.add(n_inputs, self.const(BATCH - 1)), self.const(BATCH)
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
        offset = self.builder.mul(level, self.const(LANE_WORDS))
        return self.builder.bitcast(self.builder.gep(self.state, [offset]), self.vec_ptr)

    def load_level(self, level: Any) -> Any:
        return self.builder.load(self.level_ptr(level), align=8)

    def store_level(self, value: Any, level: Any) -> None:
        self.builder.store(value, self.level_ptr(level), align=8)

    def load_plane(self, base: Any, k: int) -> Any:
        b = self.builder
        # idx holds word offsets (plane * LANE_WORDS), so the address is base + 8 * offset:
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
        done_inputs = b.mul(next_batch, self.const(BATCH))
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
        wide = ir.IntType(64 * LANE_WORDS)
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
        base = b.add(self.start, b.mul(batch, self.const(BATCH)))
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
        # (bound > 0 here: 0 is never a useful bound, see bitarrays.min_count_table).
        b = self.builder
        high = b.lshr(bound, top)
        return b.select(b.icmp_signed("==", high, self.const(0)), self.ones, self.zeros)

    def store_mask(self, greater: Any, equal: Any) -> None:
        b = self.builder
        b.store(b.or_(greater, equal), b.bitcast(self.mask, self.vec_ptr), align=8)

    def emit_mask_unrolled(self, depth: int) -> None:
        """Set the mask to the lanes whose count is >= bound (levels above the row's are 0)."""
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

    ``planes`` is the group's ``(n_planes + 1, LANE_WORDS)`` plane array (the last plane is
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


#: ``count_at_least(planes, idx, start, n_inputs, bound, state, mask)``: see
#: :func:`_count_at_least_typer` (jitted code only).
count_at_least: Any = intrinsic(_count_at_least_typer)


def _prefetch_typer(typingctx: Any, address: Any) -> Any:
    """``llvm.prefetch`` of the cache line at an address (read, keep in all levels)."""
    sig = types.void(types.int64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        byte_ptr = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [byte_ptr], fnty)
        ptr = builder.inttoptr(args[0], byte_ptr)
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


#: ``prefetch(address)``: hint the CPU to load the cache line at ``address`` (jitted code only).
prefetch: Any = intrinsic(_prefetch_typer)
