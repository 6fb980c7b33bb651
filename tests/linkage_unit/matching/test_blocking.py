"""Hamming-LSH blocking: a deduplicated subset of dice_candidates that keeps the matches.

Its candidates equal those of a plain numpy reference of the same keys.
"""

from __future__ import annotations

import dataclasses
import itertools
import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

import encoder
from benchmarks.synthetic import TRUTH_COLUMN, make_scenario, to_pace_columns
from linkage_unit.matching.blocking import (
    DEFAULT_BLOCKING,
    BlockingConfig,
    BlockingProgress,
    bit_frequencies,
    blocking_stats,
    candidate_pairs,
    candidate_pairs_and_stats,
    pair_completeness,
)
from linkage_unit.matching.candidates import Candidates
from linkage_unit.matching.similarity import dice_candidates
from tests.conftest import TEST_SECRET

SEED = 20261123
# The default blocking, made to block however small the files (the default compares small
# files exhaustively, which is tested on its own below).
LSH = dataclasses.replace(DEFAULT_BLOCKING, exhaustive_up_to=0)
N_PEOPLE = 800

GIVEN = ["james", "mary", "robert", "patricia", "john", "jennifer", "michael", "linda",
         "david", "elizabeth", "william", "barbara", "richard", "susan", "joseph", "jessica",
         "thomas", "sarah", "fiona", "callum", "ewan", "morag", "agnieszka", "priya"]  # fmt: skip
SURNAMES = ["smith", "brown", "wilson", "thomson", "robertson", "campbell", "stewart",
            "anderson", "macdonald", "scott", "reid", "murray", "taylor", "clark",
            "mitchell", "ross", "walker", "paterson", "young", "watson", "kowalski", "khan",
            "morrison", "fraser", "mcleod", "grant"]  # fmt: skip
AREAS = ["G1", "G12", "EH3", "EH11", "AB10", "DD1", "KY16", "PA2", "FK8", "IV2"]


def _perturb(value: str, rng: np.random.Generator) -> str:
    """One typo: substitute, delete, insert or transpose a letter."""
    if len(value) < 3:
        return value
    k = int(rng.integers(1, len(value) - 1))
    letter = str(rng.choice(list(string.ascii_lowercase)))
    kind = int(rng.integers(4))
    if kind == 0:
        return value[:k] + letter + value[k + 1 :]
    if kind == 1:
        return value[:k] + value[k + 1 :]
    if kind == 2:
        return value[:k] + letter + value[k:]
    return value[: k - 1] + value[k] + value[k - 1] + value[k + 1 :]


def _people(rng: np.random.Generator, n: int) -> pd.DataFrame:
    given = [str(g) + str(rng.choice(["", "a", "e", "ie", "o"])) for g in rng.choice(GIVEN, n)]
    surname = [str(s) for s in rng.choice(SURNAMES, n)]
    days = rng.integers(0, 365 * 50, n)
    dob = (pd.Timestamp("1960-01-01") + pd.to_timedelta(days, unit="D")).strftime("%Y-%m-%d")
    postcode = [
        f"{a} {rng.integers(1, 10)}{rng.choice(list('ABDEFGHJ'))}{rng.choice(list('LNPQRSTU'))}"
        for a in rng.choice(AREAS, n)
    ]
    sex = rng.choice(["M", "F"], n)
    return pd.DataFrame(
        {"local_id": [f"P{k}" for k in range(n)], "given_name": given, "surname": surname,
         "date_of_birth": list(dob), "sex": sex, "postcode": postcode}
    )  # fmt: skip


def _near_duplicates(people: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The same people with a typo in one or two of their names (and some date errors)."""
    out = people.copy()
    for k in range(len(out)):
        fields = rng.choice(["given_name", "surname"], int(rng.integers(1, 3)), replace=False)
        for f in fields:
            out.loc[k, f] = _perturb(str(out.loc[k, f]), rng)
        if rng.random() < 0.1:  # a day-of-month typo
            dob = str(out.loc[k, "date_of_birth"])
            out.loc[k, "date_of_birth"] = dob[:8] + f"{(int(dob[8:]) % 28) + 1:02d}"
    return out


@pytest.fixture(scope="module")
def encodings() -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """A: people; B: the same people with typos, shuffled; plus extra unrelated people.

    Row r of B holds person ``perm[r]`` of A for r < N_PEOPLE (see ``truth``).
    """
    rng = np.random.default_rng(SEED)
    people = _people(rng, N_PEOPLE)
    dupes = _near_duplicates(people, rng)
    others = _people(rng, N_PEOPLE // 2)
    others["local_id"] = [f"Q{k}" for k in range(len(others))]
    schema = encoder.load_schema("pace-default")
    secret = encoder.Secret(TEST_SECRET)
    options = encoder.EncodeOptions(id_column="local_id", workers=1)
    a = encoder.encode_dataframe(people, schema, secret, options).bits
    b = encoder.encode_dataframe(pd.concat([dupes, others]), schema, secret, options).bits
    assert a.shape[0] == N_PEOPLE and b.shape[0] == N_PEOPLE + N_PEOPLE // 2
    return np.asarray(a), np.asarray(b)


def _codes(pairs: Candidates, width: int) -> NDArray[np.int64]:
    return pairs[0] * width + pairs[1]


def test_blocked_pairs_are_a_deduplicated_subset_with_identical_scores(
    encodings: tuple[NDArray[np.uint8], NDArray[np.uint8]],
) -> None:
    a, b = encodings
    exhaustive = dice_candidates(a, b, 0.7)
    blocked = candidate_pairs(
        a, b, 0.7, BlockingConfig(exhaustive_up_to=0, tables=30, bits_per_table=12, seed=3)
    )
    assert [x.dtype for x in blocked] == [np.dtype(np.int64)] * 2 + [np.dtype(np.float64)]
    codes = _codes(blocked, b.shape[0])
    assert codes.size > 0
    assert np.all(np.diff(codes) > 0), "sorted by (i, j) and each pair once"
    ex_codes = _codes(exhaustive, b.shape[0])
    pos = np.searchsorted(ex_codes, codes)
    assert np.all(pos < ex_codes.size)
    np.testing.assert_array_equal(ex_codes[pos], codes)
    # Scores bit-identical to dice_candidates'.
    np.testing.assert_array_equal(exhaustive[2][pos].view(np.uint64), blocked[2].view(np.uint64))


def test_exhaustive_config_and_small_files_equal_dice_candidates(
    encodings: tuple[NDArray[np.uint8], NDArray[np.uint8]],
) -> None:
    a, b = encodings
    expected = dice_candidates(a, b, 0.75)
    small = BlockingConfig(exhaustive_up_to=a.shape[0] * b.shape[0])
    for config in (BlockingConfig(exhaustive=True), small):
        got, stats = candidate_pairs_and_stats(a, b, 0.75, config)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(g, e)
        assert stats.comparisons == a.shape[0] * b.shape[0]
    assert small.describe(a.shape[0], b.shape[0]).startswith("exhaustive")
    # One more row and the same config blocks.
    bigger = BlockingConfig(exhaustive_up_to=a.shape[0] * b.shape[0] - 1)
    assert blocking_stats(a, b, bigger).comparisons < a.shape[0] * b.shape[0]
    assert bigger.describe(a.shape[0], b.shape[0]).startswith("Hamming LSH")


def test_one_table_of_all_bits_finds_only_identical_filters(
    encodings: tuple[NDArray[np.uint8], NDArray[np.uint8]],
) -> None:
    a, _ = encodings
    # Comparing A with itself: keys of all 63 sampled bits agree for the diagonal at least.
    i, j, s = candidate_pairs(
        a, a, 1.0, BlockingConfig(exhaustive_up_to=0, tables=1, bits_per_table=63)
    )
    assert np.all(s == 1.0)
    assert np.all(np.isin(np.arange(a.shape[0]), i[i == j]))


def test_default_blocking_keeps_the_true_matches_and_cuts_comparisons(
    encodings: tuple[NDArray[np.uint8], NDArray[np.uint8]],
) -> None:
    a, b = encodings
    exhaustive = dice_candidates(a, b, 0.75)
    blocked = candidate_pairs(a, b, 0.75, LSH)
    true_ex = exhaustive[0] == exhaustive[1]  # row r of B is person r of A
    true_bl = blocked[0] == blocked[1]
    assert true_ex.sum() >= 0.95 * N_PEOPLE
    assert true_bl.sum() / true_ex.sum() >= 0.995
    assert pair_completeness(blocked, exhaustive) >= 0.99
    stats = blocking_stats(a, b, LSH)
    assert stats.exhaustive_comparisons == a.shape[0] * b.shape[0]
    assert stats.reduction_ratio >= 0.8


def test_blocking_is_deterministic_and_thread_count_invariant(
    encodings: tuple[NDArray[np.uint8], NDArray[np.uint8]],
) -> None:
    a, b = encodings
    cfg = BlockingConfig(exhaustive_up_to=0, tables=8, bits_per_table=10, seed=11)
    first = candidate_pairs(a, b, 0.6, cfg)
    for other in (candidate_pairs(a, b, 0.6, cfg), candidate_pairs(a, b, 0.6, cfg, workers=1)):
        for x, y in zip(first, other, strict=True):
            np.testing.assert_array_equal(x, y)


def test_positions_are_seeded_and_distinct_within_a_table() -> None:
    random = BlockingConfig(selection="random", exhaustive_up_to=0)
    p = random.positions(1024)
    assert p.shape == (DEFAULT_BLOCKING.tables, DEFAULT_BLOCKING.bits_per_table)
    assert all(len(set(row)) == row.size for row in p)
    np.testing.assert_array_equal(
        p, BlockingConfig(selection="random", exhaustive_up_to=0).positions(1024)
    )
    assert not np.array_equal(
        p, BlockingConfig(selection="random", seed=1, exhaustive_up_to=0).positions(1024)
    )
    assert p.min() >= 0 and p.max() < 1024
    with pytest.raises(ValueError, match="frequencies"):
        DEFAULT_BLOCKING.positions(1024)


def test_balanced_pool_takes_the_positions_nearest_half_and_adapts_to_density() -> None:
    rng = np.random.default_rng(5)
    freq = rng.uniform(0.0, 1.0, 1024)
    config = BlockingConfig(exhaustive_up_to=0, tables=50, bits_per_table=12, pool_fraction=0.25)
    pool = config.pool(1024, freq)
    assert pool.size == 256 and np.all(np.diff(pool) > 0)
    distance = np.abs(freq - 0.5)
    assert distance[pool].max() <= np.delete(distance, pool).min()
    assert set(config.positions(1024, freq).ravel()) <= set(pool.tolist())
    # Sparse filters (density ~0.2): the pool follows the data to its densest bits.
    sparse = rng.uniform(0.0, 0.4, 1024)
    assert np.all(sparse[config.pool(1024, sparse)] >= np.quantile(sparse, 0.75) - 1e-12)


def test_bit_frequencies_match_numpy_on_the_rows_sampled() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (300, 16), dtype=np.uint8)
    b = (rng.random((200, 128)) < 0.3).astype(np.uint8)
    b = np.packbits(b, axis=1)
    expected = np.unpackbits(np.concatenate([a, b]), axis=1).mean(0)
    np.testing.assert_allclose(bit_frequencies(a, b), expected)
    # With a sample, evenly spaced rows of each file (first and last included).
    rows = np.unique(np.linspace(0, 299, 50).astype(np.int64))
    np.testing.assert_allclose(
        bit_frequencies(a, sample_rows=50), np.unpackbits(a[rows], axis=1).mean(0)
    )


def _reference(
    a: NDArray[np.uint8], b: NDArray[np.uint8], threshold: float, positions: NDArray[np.int64]
) -> Candidates:
    """Plain numpy: pairs whose bits agree at every position of some table, Dice >= t."""
    ua = np.unpackbits(a, axis=1).astype(np.int64)
    ub = np.unpackbits(b, axis=1).astype(np.int64)
    compared = np.zeros((a.shape[0], b.shape[0]), bool)
    for table in positions:
        compared |= (ua[:, table][:, None, :] == ub[:, table][None, :, :]).all(axis=2)
    inter = ua @ ub.T
    total = ua.sum(1)[:, None] + ub.sum(1)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(total > 0, 2 * inter / total.astype(np.float64), 0.0)
    i, j = np.nonzero(compared & (dice >= threshold))
    return Candidates(i.astype(np.int64), j.astype(np.int64), dice[i, j])


@pytest.mark.parametrize("selection", ["balanced", "random"])
def test_candidate_pairs_equal_a_plain_numpy_reference(
    encodings: tuple[NDArray[np.uint8], NDArray[np.uint8]], selection: str
) -> None:
    a, b = encodings
    a, b = a[:300], b[:400]
    config = BlockingConfig(
        exhaustive_up_to=0, tables=25, bits_per_table=9, seed=4, selection=selection
    )  # type: ignore[arg-type]
    positions = config.positions(8 * a.shape[1], bit_frequencies(a, b))
    expected = _reference(a, b, 0.7, positions)
    got = candidate_pairs(a, b, 0.7, config)
    assert expected[0].size > 100  # a real test: many pairs, most not the diagonal
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)


def test_a_subset_of_rows_blocked_with_the_whole_files_frequencies_gets_their_pairs(
    encodings: tuple[NDArray[np.uint8], NDArray[np.uint8]],
) -> None:
    a, b = encodings
    config = BlockingConfig(exhaustive_up_to=0, tables=40, bits_per_table=12)
    full = candidate_pairs(a, b, 0.75, config)
    rows = np.arange(0, a.shape[0], 3)
    sub = candidate_pairs(a[rows], b, 0.75, config, frequencies=bit_frequencies(a, b))
    in_rows = np.isin(full[0], rows)
    np.testing.assert_array_equal(rows[sub[0]], full[0][in_rows])
    np.testing.assert_array_equal(sub[1], full[1][in_rows])
    np.testing.assert_array_equal(sub[2], full[2][in_rows])


def test_progress_reports_tables_comparisons_and_candidates(
    encodings: tuple[NDArray[np.uint8], NDArray[np.uint8]],
) -> None:
    a, b = encodings
    seen: list[BlockingProgress] = []
    config = BlockingConfig(exhaustive_up_to=0, tables=21, bits_per_table=12)
    pairs, stats = candidate_pairs_and_stats(a, b, 0.8, config, progress=seen.append)
    assert len(seen) >= 2
    assert [p.tables_done for p in seen] == sorted({p.tables_done for p in seen})
    assert all(p.tables == 21 for p in seen) and seen[-1].fraction == 1.0
    assert seen[-1].comparisons == stats.comparisons
    assert seen[-1].candidates == pairs[0].size
    assert all(x.comparisons <= y.comparisons for x, y in itertools.pairwise(seen))


def test_odd_widths_and_empty_inputs() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (50, 5), dtype=np.uint8)  # 40-bit filters, not whole words
    b = np.concatenate([a[:20], rng.integers(0, 256, (30, 5), dtype=np.uint8)])
    cfg = BlockingConfig(exhaustive_up_to=0, tables=20, bits_per_table=4)
    got = candidate_pairs(a, b, 0.5, cfg)
    ex = dice_candidates(a, b, 0.5)
    codes, ex_codes = _codes(got, 50), _codes(ex, 50)
    assert np.all(np.isin(codes, ex_codes))
    assert np.all(np.isin(np.arange(20) * 50 + np.arange(20), codes))
    empty = candidate_pairs(a[:0], b, 0.5, cfg)
    assert all(x.size == 0 for x in empty)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tables": 0},
        {"bits_per_table": 64},
        {"bits_per_table": 0},
        {"seed": -1},
        {"tables": 1.5},
        {"selection": "best"},
        {"pool_fraction": 0.0},
        {"pool_fraction": 1.5},
        {"exhaustive_up_to": -1},
    ],
)
def test_config_is_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be"):
        BlockingConfig(**kwargs)  # type: ignore[arg-type]


def test_inputs_are_validated() -> None:
    a = np.zeros((3, 8), np.uint8)
    with pytest.raises(ValueError, match="width"):
        candidate_pairs(a, np.zeros((3, 16), np.uint8), 0.8)
    with pytest.raises(ValueError, match="threshold"):
        candidate_pairs(a, a, 0.0)
    with pytest.raises(ValueError, match="uint8"):
        candidate_pairs(a.astype(np.int32), a, 0.8)


def test_pair_completeness() -> None:
    ex = (np.array([0, 1, 2, 3]), np.array([5, 6, 7, 8]), np.ones(4))
    blocked = (np.array([0, 2, 9]), np.array([5, 7, 9]), np.ones(3))
    assert pair_completeness(blocked, ex) == 0.5
    none = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0))
    assert pair_completeness(none, none) == 1.0
    assert pair_completeness(none, ex) == 0.0


def test_pairs_and_stats_in_one_pass_equal_the_separate_calls(
    encodings: tuple[NDArray[np.uint8], NDArray[np.uint8]],
) -> None:
    a, b = encodings
    config = BlockingConfig(exhaustive_up_to=0, tables=30, bits_per_table=12, seed=3)
    pairs, stats = candidate_pairs_and_stats(a, b, 0.7, config)
    for got, expected in zip(pairs, candidate_pairs(a, b, 0.7, config), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert stats == blocking_stats(a, b, config)
    assert 0 < stats.comparisons < a.shape[0] * b.shape[0]


def test_pair_completeness_on_a_synthetic_two_party_scenario(tmp_path: Path) -> None:
    """Defaults keep the true matches of a small synthetic PACE scenario with typical errors.

    Balanced positions also compare fewer pairs than random ones for the same tables.
    """
    scenario = make_scenario("two-party", 3000, seed=3)
    schema = encoder.load_schema("pace-default")
    secret = encoder.Secret(TEST_SECRET)
    options = encoder.EncodeOptions(id_column="local_id", workers=1)
    bits, people = [], []
    for spec in scenario.partners:
        extract = to_pace_columns(scenario.batches[spec.name][0], spec)
        src = tmp_path / f"{spec.name}.csv"
        extract.drop(columns=[TRUTH_COLUMN]).to_csv(src, index=False)
        out = tmp_path / f"{spec.name}.plk"
        encoder.encode_file(src, schema, secret, out, options)
        # Rejected records have no row: the key map says which local ID each row holds.
        keys = pd.read_csv(tmp_path / f"{spec.name}.keys.csv", dtype=str)
        person = dict(zip(extract["local_id"], extract[TRUTH_COLUMN], strict=True))
        people.append(np.array([person[k] for k in keys["local_id"]]))
        bits.append(np.asarray(encoder.read_encodings(out).bits))
    a, b = bits
    exhaustive = dice_candidates(a, b, 0.8)
    blocked, stats = candidate_pairs_and_stats(a, b, 0.8, LSH)
    true_ex = people[0][exhaustive[0]] == people[1][exhaustive[1]]
    true_only = tuple(x[true_ex] for x in exhaustive)
    assert true_ex.sum() > 1000
    assert pair_completeness(blocked, true_only) >= 0.99  # type: ignore[arg-type]
    assert pair_completeness(blocked, exhaustive) >= 0.8
    assert stats.reduction_ratio > 0.9
    random = BlockingConfig(selection="random", exhaustive_up_to=0)
    assert stats.comparisons < blocking_stats(a, b, random).comparisons
