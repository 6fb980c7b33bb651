"""Per-field similarity of candidate pairs on segmented encodings: Dice per segment, levels.

When each field group is hashed into its own *segment* of the filter (names, date of birth,
sex, postcode …, concatenated), the record-level Dice over the whole filter still drives
blocking and candidate generation, and for each candidate pair :func:`segment_dice` computes
one Dice per segment; :func:`comparison_levels` discretises them into the comparison levels
that :mod:`linkage_unit.matching.fellegi_sunter` weighs.  A segment whose bits are all zero
on either side is a missing field (NaN Dice, level -1), which the model treats as neutral.

Bit layout: segments are given in bit positions of clkhash's layout, bit ``k`` of a filter
being bit ``7 - k % 8`` of byte ``k // 8`` (bitarray's big-endian order).  Segments need not
be byte-aligned, but must not overlap.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from linkage_unit.matching.bitarrays import check_bits, check_same_width

__all__ = ["FIELD_LEVELS", "Segment", "comparison_levels", "segment_dice"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
I8 = NDArray[np.int8]

#: Dice thresholds of the comparison levels by field type, best first (a pair is at the first
#: level whose threshold its Dice reaches; below them all, it "disagrees").  Chosen from how
#: each type's tokens behave, not tuned on a file: ``exact`` (one token, e.g. sex) either
#: agrees or not; ``name`` (bigrams) - one typo in a 6-letter name keeps Dice near 0.8, a
#: nickname or a swapped given name near 0.5-0.7; ``date`` (positional digits plus a
#: whole-date token) - one wrong digit keeps Dice near 0.8, a day/month swap near 0.6;
#: ``postcode`` (bigrams of a 6-7 character code) - same sector but another unit keeps
#: Dice near 0.6-0.75; ``identifier`` (an NI number) is exact or one character off.
FIELD_LEVELS: Final[dict[str, tuple[float, ...]]] = {
    "exact": (0.99,),
    "name": (0.99, 0.8, 0.6),
    "date": (0.99, 0.75, 0.55),
    "postcode": (0.99, 0.7, 0.5),
    "identifier": (0.99, 0.8),
}

_CHUNK: Final = 1 << 18  # pairs per block when gathering segment bits (bounds memory)


@dataclass(frozen=True)
class Segment:
    """One field group's bits in the filter.

    Attributes:
        name: The field group (for reports).
        start: First bit (inclusive), in clkhash's bit order.
        end: Last bit (exclusive).
        kind: Field type, a key of :data:`FIELD_LEVELS`, choosing the comparison levels.
    """

    name: str
    start: int
    end: int
    kind: str = "name"

    def __post_init__(self) -> None:
        """Reject empty ranges and unknown kinds at once."""
        if not (0 <= self.start < self.end):
            raise ValueError(
                f"segment {self.name!r}: bits [{self.start}, {self.end}) are not a range"
            )
        if self.kind not in FIELD_LEVELS:
            raise ValueError(
                f"segment {self.name!r}: kind {self.kind!r} is not one of {sorted(FIELD_LEVELS)}"
            )

    @property
    def levels(self) -> tuple[float, ...]:
        """The Dice thresholds of its comparison levels, best first."""
        return FIELD_LEVELS[self.kind]

    @property
    def n_levels(self) -> int:
        """Comparison levels, the "disagrees" level included."""
        return len(self.levels) + 1


def _check_layout(layout: Sequence[Segment], n_bits: int | None) -> None:
    if not layout:
        raise ValueError("the segment layout is empty")
    names = [s.name for s in layout]
    if len(set(names)) != len(names):
        raise ValueError(f"segment names repeat: {names}")
    spans = sorted((s.start, s.end, s.name) for s in layout)
    for (_, end, a), (start, _, b) in itertools.pairwise(spans):
        if start < end:
            raise ValueError(f"segments {a!r} and {b!r} overlap")
    if n_bits is not None and spans[-1][1] > n_bits:
        name, end = spans[-1][2], spans[-1][1]
        raise ValueError(f"segment {name!r} ends at bit {end}, beyond the {n_bits}-bit filter")


def _rows(name: str, rows: ArrayLike, n: int) -> I64:
    arr = np.asarray(rows)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D array of integer rows")
    out = arr.astype(np.int64, copy=False)
    if out.size and (out.min() < 0 or out.max() >= n):
        raise ValueError(f"{name} holds a row outside [0, {n})")
    return out


def _masks(seg: Segment, n_bytes: int) -> tuple[int, int, NDArray[np.uint8]]:
    """The bytes a segment spans and, per byte, the mask of its bits (clkhash bit order)."""
    first, last = seg.start // 8, (seg.end - 1) // 8 + 1
    mask = np.zeros(last - first, np.uint8)
    for k in range(seg.start, seg.end):
        mask[k // 8 - first] |= np.uint8(0x80 >> (k % 8))
    return first, min(last, n_bytes), mask


def segment_dice(
    a_bits: ArrayLike,
    b_bits: ArrayLike,
    i: ArrayLike,
    j: ArrayLike,
    layout: Sequence[Segment],
) -> F64:
    """Dice of every segment of every pair ``(a_bits[i], b_bits[j])``.

    Args:
        a_bits: First party's packed filters, ``(n_a, l / 8)`` uint8.
        b_bits: Second party's, of the same width (pass ``a_bits`` again within one party).
        i: Row in ``a_bits`` of each pair.
        j: Row in ``b_bits`` of each pair.
        layout: The segments.

    Returns:
        ``(pairs, segments)`` float64: ``2 |a & b| / (|a| + |b|)`` over the segment's bits, NaN
        where either side's segment has no bit set (the field is missing).

    Raises:
        ValueError: Bad arrays, rows out of range, or a layout that overlaps or overruns.
    """
    a, b = check_bits("a_bits", a_bits), check_bits("b_bits", b_bits)
    check_same_width(a, b)
    _check_layout(layout, a.shape[1] * 8)
    ii, jj = _rows("i", i, a.shape[0]), _rows("j", j, b.shape[0])
    if ii.shape != jj.shape:
        raise ValueError(f"i and j differ in length ({ii.size} and {jj.size})")
    out = np.empty((ii.size, len(layout)), np.float64)
    for s, seg in enumerate(layout):
        first, last, mask = _masks(seg, a.shape[1])
        sa = np.bitwise_count(a[:, first:last] & mask).sum(axis=1, dtype=np.int64)
        sb = np.bitwise_count(b[:, first:last] & mask).sum(axis=1, dtype=np.int64)
        for lo in range(0, ii.size, _CHUNK):
            pi, pj = ii[lo : lo + _CHUNK], jj[lo : lo + _CHUNK]
            common = np.bitwise_count(a[pi, first:last] & b[pj, first:last] & mask)
            c = common.sum(axis=1, dtype=np.int64)
            total = sa[pi] + sb[pj]
            present = (sa[pi] > 0) & (sb[pj] > 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[lo : lo + _CHUNK, s] = np.where(present, 2.0 * c / total, np.nan)
    return out


def comparison_levels(dice: ArrayLike, layout: Sequence[Segment]) -> I8:
    """Each pair's comparison level per segment: 0 best, ``n_levels - 1`` disagrees, -1 missing.

    Args:
        dice: ``(pairs, segments)`` as :func:`segment_dice` returns (NaN: missing).
        layout: The segments, in the columns' order.

    Raises:
        ValueError: The columns do not match the layout, or a Dice is outside [0, 1].
    """
    d = np.asarray(dice, np.float64)
    if d.ndim != 2 or d.shape[1] != len(layout):
        raise ValueError(
            f"dice must have one column per segment ({len(layout)}), got shape {d.shape}"
        )
    finite = ~np.isnan(d)
    if np.any((d[finite] < 0) | (d[finite] > 1)):
        raise ValueError("a Dice coefficient is outside [0, 1]")
    out = np.full(d.shape, -1, np.int8)
    for s, seg in enumerate(layout):
        col = d[:, s]
        # Level = how many thresholds the Dice does NOT reach (thresholds are descending).
        level = (col[:, None] < np.asarray(seg.levels)[None, :]).sum(axis=1)
        out[:, s] = np.where(finite[:, s], level, -1)
    return out
