"""dice_candidates against its oracles: anonlink's dice_coefficient_accelerated and numpy."""

from __future__ import annotations

import re

import numba
import numpy as np
import pytest
from anonlink.similarities import dice_coefficient_accelerated
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import ArrayLike, NDArray

import linkage_unit.matching
from benchmarks.compare_speed import to_bitarrays
from linkage_unit.matching import dice_candidates
from linkage_unit.matching.candidates import Candidates
from linkage_unit.matching.similarity import (
    CandidateLimitExceeded,
    iter_dice_candidates,
)

SEED = 20261122


# ----------------------------------------------------------------------------- oracles


def by_pair(i: ArrayLike, j: ArrayLike, s: ArrayLike) -> Candidates:
    ii = np.asarray(i, np.int64)
    jj = np.asarray(j, np.int64)
    ss = np.asarray(s, np.float64)
    order = np.lexsort((jj, ii))
    return Candidates(ii[order], jj[order], ss[order])


def anonlink_pairs(a: NDArray[np.uint8], b: NDArray[np.uint8], threshold: float) -> Candidates:
    sims, (i, j) = dice_coefficient_accelerated([to_bitarrays(a), to_bitarrays(b)], threshold)
    return by_pair(i, j, sims)


def numpy_pairs(a: NDArray[np.uint8], b: NDArray[np.uint8], threshold: float) -> Candidates:
    """Plain reference: all pairs, 2 * |a & b| / (|a| + |b|) in double, 0 for two empty rows."""
    abits = np.unpackbits(a, axis=1).astype(np.int64)
    bbits = np.unpackbits(b, axis=1).astype(np.int64)
    both = abits @ bbits.T
    total = abits.sum(axis=1)[:, None] + bbits.sum(axis=1)[None, :]
    scores = np.zeros(both.shape, np.float64)
    np.divide(2 * both, total, out=scores, where=total > 0)
    i, j = np.nonzero(scores >= threshold)
    return by_pair(i, j, scores[i, j])


def assert_same(got: Candidates, expected: Candidates) -> None:
    assert [x.dtype for x in got] == [np.dtype(np.int64), np.dtype(np.int64), np.dtype(np.float64)]
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    # Scores must be bit-identical, not merely close.
    np.testing.assert_array_equal(got[2].view(np.uint64), expected[2].view(np.uint64))


# ----------------------------------------------------------------------------- inputs


def random_filters(
    rng: np.random.Generator, n: int, n_bits: int, density: float | tuple[float, float]
) -> NDArray[np.uint8]:
    lo, hi = (density, density) if isinstance(density, float) else density
    per_row = rng.uniform(lo, hi, size=(n, 1))
    return np.packbits(rng.random((n, n_bits)) < per_row, axis=1)


def with_near_duplicates(
    rng: np.random.Generator, a: NDArray[np.uint8], b: NDArray[np.uint8]
) -> NDArray[np.uint8]:
    """B with its first rows replaced by copies of a's rows with 0 to 40 bits flipped."""
    b = b.copy()
    n_bits = a.shape[1] * 8
    k = min(len(a), len(b)) // 3
    sources = rng.permutation(len(a))[:k]
    for row, source in enumerate(sources):
        bits = np.unpackbits(a[source])
        flips = rng.choice(n_bits, size=min(n_bits, int(rng.choice([0, 1, 2, 3, 8, 20, 40]))))
        bits[flips] ^= 1
        b[row] = np.packbits(bits)
    return b


def rows_with_counts(n_bits: int, pa: int, pb: int, both: int) -> tuple[NDArray[np.uint8], ...]:
    """One row a with |a| = pa and one row b with |b| = pb and |a & b| = both."""
    abits = np.zeros((1, n_bits), bool)
    bbits = np.zeros((1, n_bits), bool)
    abits[0, :pa] = True
    bbits[0, pa - both : pa - both + pb] = True
    return np.packbits(abits, axis=1), np.packbits(bbits, axis=1)


# ----------------------------------------------------------------------------- oracle parity


@pytest.mark.parametrize("density", [0.05, 0.3, (0.25, 0.35), 0.6, 0.9])
@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.95])
def test_random_filters_match_anonlink_and_numpy(
    density: float | tuple[float, float], threshold: float
) -> None:
    rng = np.random.default_rng(SEED)
    a = random_filters(rng, 150, 1024, density)
    b = with_near_duplicates(rng, a, random_filters(rng, 700, 1024, density))
    got = dice_candidates(a, b, threshold)
    assert len(got[0]) > 0
    assert_same(got, numpy_pairs(a, b, threshold))
    # No pair here scores exactly the threshold, where anonlink's prefilter can differ (see
    # the tie tests), so anonlink's answer is the same with or without that prefilter.
    assert_same(got, anonlink_pairs(a, b, threshold))
    assert_same(dice_candidates(a, b, threshold, anonlink_compatible=True), got)


@pytest.mark.parametrize("n_bits", [8, 72, 200, 512, 1024, 2048, 4096])
def test_filter_lengths(n_bits: int) -> None:
    rng = np.random.default_rng(n_bits)
    a = random_filters(rng, 40, n_bits, (0.1, 0.6))
    b = with_near_duplicates(rng, a, random_filters(rng, 300, n_bits, (0.1, 0.6)))
    for threshold in (0.6, 0.85):
        got = dice_candidates(a, b, threshold)
        assert len(got[0]) > 0
        assert_same(got, numpy_pairs(a, b, threshold))
        assert_same(got, anonlink_pairs(a, b, threshold))


def test_very_long_filters_use_the_generic_counter() -> None:
    # Rows with 8192 or more set bits need more counter levels than the unrolled variants.
    rng = np.random.default_rng(SEED + 11)
    a = random_filters(rng, 6, 16384, (0.45, 0.7))
    b = with_near_duplicates(rng, a, random_filters(rng, 30, 16384, (0.45, 0.7)))
    for threshold in (0.6, 0.9):
        assert_same(dice_candidates(a, b, threshold), numpy_pairs(a, b, threshold))
        assert_same(dice_candidates(a, b, threshold), anonlink_pairs(a, b, threshold))


def test_many_thresholds_near_duplicates() -> None:
    # Scores spread over the whole range, at thresholds around them: the early exit of the
    # counting loop must never drop a pair that reaches the threshold.
    rng = np.random.default_rng(SEED + 12)
    a = random_filters(rng, 120, 1024, (0.15, 0.45))
    b = with_near_duplicates(rng, a, random_filters(rng, 600, 1024, (0.15, 0.45)))
    b[300:400] = a[:100] | random_filters(rng, 100, 1024, (0.0, 0.3))  # supersets of a rows
    b[400:500] = a[:100] & random_filters(rng, 100, 1024, (0.7, 1.0))  # subsets of a rows
    for threshold in (0.3, 0.45, 0.6, 0.7, 0.75, 0.85, 0.9, 0.97, 0.99):
        assert_same(dice_candidates(a, b, threshold), numpy_pairs(a, b, threshold))


def test_low_threshold_many_candidates_per_tile() -> None:
    # Far more pairs per tile than the kernel's first buffer: exercises the rerun path.
    rng = np.random.default_rng(SEED + 1)
    a = random_filters(rng, 300, 256, 0.5)
    b = random_filters(rng, 400, 256, 0.5)
    got = dice_candidates(a, b, 0.3)
    assert len(got[0]) == 300 * 400
    assert_same(got, numpy_pairs(a, b, 0.3))
    assert_same(got, anonlink_pairs(a, b, 0.3))


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
def test_popcounts_spread_widely(threshold: float) -> None:
    # Rows from nearly empty to nearly full: many groups of B fall outside a row's window.
    rng = np.random.default_rng(SEED + 2)
    a = random_filters(rng, 120, 512, (0.01, 0.99))
    b = with_near_duplicates(rng, a, random_filters(rng, 900, 512, (0.01, 0.99)))
    got = dice_candidates(a, b, threshold)
    assert_same(got, numpy_pairs(a, b, threshold))
    assert_same(
        dice_candidates(a, b, threshold, anonlink_compatible=True), anonlink_pairs(a, b, threshold)
    )


# ----------------------------------------------------------------------------- ties


def test_tie_at_threshold_is_a_candidate() -> None:
    a, b = rows_with_counts(1024, 5, 5, 4)  # Dice = 2 * 4 / (5 + 5) = 0.8 exactly
    expected = (np.array([0]), np.array([0]), np.array([0.8]))
    assert_same(dice_candidates(a, b, 0.8), expected)
    assert_same(anonlink_pairs(a, b, 0.8), expected)
    assert_same(dice_candidates(a, b, float(np.nextafter(0.8, 1.0))), by_pair([], [], []))


def test_many_exact_ties() -> None:
    """Thresholds equal to the double quotient itself, over many count combinations."""
    cases = [
        (pa, pb, c)
        for pa in (1, 2, 3, 5, 7, 30, 96, 301)
        for pb in (1, 3, 4, 5, 9, 160, 333)
        for c in sorted({1, min(pa, pb) // 2, min(pa, pb) - 1, min(pa, pb)})
        if c >= 1
    ]
    for pa, pb, c in cases:
        a, b = rows_with_counts(1024, pa, pb, c)
        tie = float(np.float64(2 * c) / np.float64(pa + pb))
        assert_same(dice_candidates(a, b, tie), by_pair([0], [0], [tie]))
        assert_same(dice_candidates(b, a, tie), by_pair([0], [0], [tie]))
        assert_same(dice_candidates(a, b, tie, anonlink_compatible=True), anonlink_pairs(a, b, tie))
        above = float(np.nextafter(tie, 2.0))
        if above <= 1.0:
            assert len(dice_candidates(a, b, above)[0]) == 0


def test_anonlink_prefilter_difference_is_documented_behaviour() -> None:
    # |a| = 96, |b| = 160, a inside b: Dice = 192 / 256 = 0.75 exactly.  anonlink's bound
    # (uint32)(2 * 96 * (1 / 0.75 - 1)) rounds 64 down to 63 < 160 - 96, so it skips the
    # pair one way round but not the other; by default we return it both ways.
    a, b = rows_with_counts(1024, 96, 160, 96)
    assert len(anonlink_pairs(a, b, 0.75)[0]) == 0
    assert_same(anonlink_pairs(b, a, 0.75), by_pair([0], [0], [0.75]))
    assert_same(dice_candidates(a, b, 0.75), by_pair([0], [0], [0.75]))
    assert_same(dice_candidates(b, a, 0.75), by_pair([0], [0], [0.75]))
    assert len(dice_candidates(a, b, 0.75, anonlink_compatible=True)[0]) == 0
    assert_same(dice_candidates(b, a, 0.75, anonlink_compatible=True), by_pair([0], [0], [0.75]))


@pytest.mark.parametrize("threshold", [1 / (2**31 + 1.5), 1 / (2**31 + 3.5), 1e-12, 1e-300])
def test_anonlink_prefilter_at_absurdly_low_thresholds(threshold: float) -> None:
    # anonlink's uint32 bound wraps around (x86 conversion) for thresholds below ~1e-9.
    rng = np.random.default_rng(SEED + 10)
    a = random_filters(rng, 30, 128, (0.0, 0.2))
    b = random_filters(rng, 40, 128, (0.0, 0.2))
    assert_same(
        dice_candidates(a, b, threshold, anonlink_compatible=True), anonlink_pairs(a, b, threshold)
    )
    assert_same(dice_candidates(a, b, threshold), numpy_pairs(a, b, threshold))


# ----------------------------------------------------------------------------- edge cases


def test_all_zero_and_all_one_filters() -> None:
    rng = np.random.default_rng(SEED + 3)
    zero = np.zeros((1, 128), np.uint8)
    one = np.full((1, 128), 0xFF, np.uint8)
    some = random_filters(rng, 4, 1024, 0.5)
    a = np.concatenate([zero, one, some, zero, one])
    b = np.concatenate([one, zero, some[::-1], one])
    for threshold in (0.01, 0.5, 0.66, 1.0):
        got = dice_candidates(a, b, threshold)
        assert_same(got, numpy_pairs(a, b, threshold))
        assert_same(got, anonlink_pairs(a, b, threshold))
    # All-zero rows never pair, not even with each other; all-one rows pair at 1.0.
    assert len(dice_candidates(zero, zero, 0.01)[0]) == 0
    assert_same(dice_candidates(one, one, 1.0), by_pair([0], [0], [1.0]))


def test_threshold_one_finds_exact_duplicates_only() -> None:
    rng = np.random.default_rng(SEED + 4)
    a = random_filters(rng, 50, 512, 0.3)
    b = random_filters(rng, 60, 512, 0.3)
    b[[3, 17, 40]] = a[[9, 9, 22]]
    assert_same(dice_candidates(a, b, 1.0), by_pair([9, 9, 22], [3, 17, 40], [1.0, 1.0, 1.0]))


@pytest.mark.parametrize(("n", "m"), [(0, 5), (5, 0), (0, 0)])
def test_empty_inputs(n: int, m: int) -> None:
    rng = np.random.default_rng(SEED)
    a = random_filters(rng, n, 1024, 0.3)
    b = random_filters(rng, m, 1024, 0.3)
    got = dice_candidates(a, b, 0.5)
    assert_same(got, by_pair([], [], []))
    assert list(iter_dice_candidates(a, b, 0.5)) == []


def test_single_rows() -> None:
    rng = np.random.default_rng(SEED + 5)
    a = random_filters(rng, 1, 1024, 0.3)
    b = a.copy()
    b[0, :4] ^= 0x11
    got = dice_candidates(a, b, 0.5)
    assert_same(got, numpy_pairs(a, b, 0.5))
    assert len(got[0]) == 1
    assert_same(got, anonlink_pairs(a, b, 0.5))


def test_non_contiguous_input_is_accepted() -> None:
    rng = np.random.default_rng(SEED + 6)
    wide = random_filters(rng, 80, 2048, 0.3)
    a = wide[::2, :128]  # strided rows and columns
    b = np.asfortranarray(wide[1::2, :128])
    assert_same(dice_candidates(a, b, 0.2), numpy_pairs(a, b, 0.2))


# ----------------------------------------------------------------------------- properties


@st.composite
def filter_pairs(draw: st.DrawFn) -> tuple[NDArray[np.uint8], NDArray[np.uint8], float]:
    width = draw(st.sampled_from([1, 3, 8, 9, 16]))
    n = draw(st.integers(0, 9))
    m = draw(st.integers(0, 9))
    density = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    a = np.packbits(rng.random((n, width * 8)) < density, axis=1)
    b = np.packbits(rng.random((m, width * 8)) < density, axis=1)
    if n and m and draw(st.booleans()):
        b[0] = a[-1]  # a duplicate, so high thresholds see pairs too
    threshold = draw(
        st.one_of(
            st.sampled_from([0.5, 2 / 3, 0.75, 0.8, 0.875, 1.0]),
            st.floats(min_value=0.0, max_value=1.0, exclude_min=True),
        )
    )
    return a, b, threshold


@settings(max_examples=150, deadline=None)
@given(filter_pairs())
def test_properties(case: tuple[NDArray[np.uint8], NDArray[np.uint8], float]) -> None:
    a, b, threshold = case
    got = dice_candidates(a, b, threshold)
    assert_same(got, numpy_pairs(a, b, threshold))
    i, j, s = got
    assert np.all((s >= threshold) & (s <= 1.0) & (s > 0.0))
    # Sorted by (i, j), each pair once.
    keys = i * max(len(b), 1) + j
    assert np.all(np.diff(keys) > 0)
    # Symmetric: swapping a and b swaps i and j, with the same scores.
    assert_same(dice_candidates(b, a, threshold), by_pair(j, i, s))
    # With anonlink's prefilter, anonlink's own answer.
    assert_same(
        dice_candidates(a, b, threshold, anonlink_compatible=True), anonlink_pairs(a, b, threshold)
    )


# ----------------------------------------------------------------------------- tiles, caps


def test_chunks_concatenate_to_dice_candidates() -> None:
    rng = np.random.default_rng(SEED + 7)
    a = random_filters(rng, 203, 1024, (0.2, 0.4))
    b = with_near_duplicates(rng, a, random_filters(rng, 500, 1024, (0.2, 0.4)))
    whole = dice_candidates(a, b, 0.6)
    chunks = list(iter_dice_candidates(a, b, 0.6, tile_rows=7))
    assert len(chunks) > 5
    for ci, cj, _ in chunks:
        assert ci.min() // 7 == ci.max() // 7  # one tile of A rows per chunk
        assert np.all(np.diff(ci * len(b) + cj) > 0)
    joined = tuple(np.concatenate(parts) for parts in zip(*chunks, strict=True))
    assert_same(joined, whole)  # type: ignore[arg-type]
    assert_same(dice_candidates(a, b, 0.6, tile_rows=1), whole)
    assert_same(dice_candidates(a, b, 0.6, tile_rows=10_000), whole)


def test_cap_raises_candidate_limit_exceeded() -> None:
    rng = np.random.default_rng(SEED + 8)
    a = random_filters(rng, 100, 512, 0.5)
    b = random_filters(rng, 100, 512, 0.5)
    total = len(dice_candidates(a, b, 0.4)[0])
    assert total > 1000
    with pytest.raises(CandidateLimitExceeded) as info:
        dice_candidates(a, b, 0.4, max_candidates=1000, tile_rows=16)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "max_candidates=1,000" in message
    assert "raise the threshold" in message
    assert "blocking" in message
    found = int(re.search(r"at least ([\d,]+)", message).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert 1000 < found <= total
    # Exactly at the cap is allowed.
    assert len(dice_candidates(a, b, 0.4, max_candidates=total)[0]) == total
    with pytest.raises(CandidateLimitExceeded):
        list(iter_dice_candidates(a, b, 0.4, max_candidates=total - 1))


@pytest.mark.parametrize("workers", [1, 2])
def test_workers(workers: int) -> None:
    if workers > int(vars(numba.config)["NUMBA_NUM_THREADS"]):
        pytest.skip("numba thread pool too small")
    rng = np.random.default_rng(SEED + 9)
    a = random_filters(rng, 300, 1024, 0.3)
    b = with_near_duplicates(rng, a, random_filters(rng, 300, 1024, 0.3))
    before = numba.get_num_threads()
    got = dice_candidates(a, b, 0.7, workers=workers, tile_rows=16)
    assert numba.get_num_threads() == before
    assert_same(got, numpy_pairs(a, b, 0.7))


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("a", "b", "threshold", "match"),
    [
        (np.zeros((2, 8), np.int64), np.zeros((2, 8), np.uint8), 0.5, "dtype"),
        (np.zeros((2, 8), np.uint8), np.zeros((2, 8), bool), 0.5, "dtype"),
        (np.zeros(8, np.uint8), np.zeros((2, 8), np.uint8), 0.5, "2-D"),
        (np.zeros((2, 8), np.uint8), np.zeros((2, 2, 8), np.uint8), 0.5, "2-D"),
        (np.zeros((2, 8), np.uint8), np.zeros((2, 16), np.uint8), 0.5, "same filter width"),
        (np.zeros((2, 8), np.uint8), np.zeros((2, 8), np.uint8), 0.0, r"\(0, 1\]"),
        (np.zeros((2, 8), np.uint8), np.zeros((2, 8), np.uint8), -0.5, r"\(0, 1\]"),
        (np.zeros((2, 8), np.uint8), np.zeros((2, 8), np.uint8), 1.5, r"\(0, 1\]"),
        (np.zeros((2, 8), np.uint8), np.zeros((2, 8), np.uint8), float("nan"), r"\(0, 1\]"),
        (np.zeros((2, 8), np.uint8), np.zeros((2, 8), np.uint8), "0.5", "real number"),
        (np.zeros((2, 8), np.uint8), np.zeros((2, 8), np.uint8), True, "real number"),
    ],
)
def test_invalid_inputs(a: object, b: object, threshold: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        dice_candidates(a, b, threshold)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=match):
        iter_dice_candidates(a, b, threshold)  # type: ignore[arg-type]  # eager validation


@pytest.mark.parametrize(
    ("option", "value"),
    [("tile_rows", 0), ("max_candidates", 0), ("workers", 0), ("workers", 10_000)],
)
def test_invalid_options(option: str, value: int) -> None:
    bits = np.zeros((2, 8), np.uint8)
    with pytest.raises(ValueError, match=option):
        dice_candidates(bits, bits, 0.5, **{option: value})  # type: ignore[arg-type]


def test_package_exports_dice_candidates() -> None:
    assert "dice_candidates" in linkage_unit.matching.__all__
    assert linkage_unit.matching.dice_candidates is dice_candidates
    for name in linkage_unit.matching.__all__:
        assert getattr(linkage_unit.matching, name) is not None, name
