"""Tests for linkage_unit.matching.solving: greedy two-party solver and N-party clustering."""

from __future__ import annotations

import array
import itertools

import anonlink
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from benchmarks.compare_speed import to_bitarrays
from linkage_unit.matching.candidates import Candidates
from linkage_unit.matching.similarity import dice_candidates
from linkage_unit.matching.solving import Groups, cluster, greedy_solve_two


def anonlink_pairs(
    i: NDArray[np.int64], j: NDArray[np.int64], s: NDArray[np.float64]
) -> set[tuple[int, int]]:
    """Anonlink's greedy_solve on the candidates, in the structure find_candidate_pairs makes.

    find_candidate_pairs returns (sims, (dset_is0, dset_is1), (rec_is0, rec_is1)) as
    array('d') / array('I'), sorted by (-sim, dset0, dset1, rec0, rec1); greedy_solve walks
    them in that order.
    """
    order = np.lexsort((j, i, -s))
    n = len(order)
    candidates = (
        array.array("d", s[order].tolist()),
        (array.array("I", [0] * n), array.array("I", [1] * n)),
        (array.array("I", i[order].tolist()), array.array("I", j[order].tolist())),
    )
    groups = anonlink.solving.greedy_solve(candidates)
    return set(anonlink.solving.pairs_from_groups(groups))


@st.composite
def candidate_sets(draw: st.DrawFn, max_rows: int = 25) -> tuple[Candidates, int, int]:
    n_a = draw(st.integers(1, max_rows))
    n_b = draw(st.integers(1, max_rows))
    cells = draw(st.lists(st.integers(0, n_a * n_b - 1), unique=True, max_size=min(120, n_a * n_b)))
    # Few distinct scores, so there are many ties.
    levels = draw(st.integers(1, 4))
    scores = draw(st.lists(st.integers(0, levels), min_size=len(cells), max_size=len(cells)))
    flat = np.asarray(cells, dtype=np.int64)
    s = 0.5 + np.asarray(scores, dtype=np.float64) / 10
    return Candidates(flat // n_b, flat % n_b, s), n_a, n_b


@settings(max_examples=150, deadline=None)
@given(candidate_sets())
def test_greedy_two_equals_anonlink_with_ties(data: tuple[Candidates, int, int]) -> None:
    (i, j, s), _, _ = data
    gi, gj, gs = greedy_solve_two(i, j, s)
    assert set(zip(gi.tolist(), gj.tolist(), strict=True)) == anonlink_pairs(i, j, s)
    # one-to-one, accepted in descending score order, scores carried along
    assert len(set(gi.tolist())) == len(gi) and len(set(gj.tolist())) == len(gj)
    assert np.all(np.diff(gs) <= 0)
    lookup = dict(zip(zip(i.tolist(), j.tolist(), strict=True), s.tolist(), strict=True))
    assert [lookup[p] for p in zip(gi.tolist(), gj.tolist(), strict=True)] == gs.tolist()


@settings(max_examples=60, deadline=None)
@given(candidate_sets())
def test_greedy_two_ignores_input_order(data: tuple[Candidates, int, int]) -> None:
    (i, j, s), _, _ = data
    perm = np.random.default_rng(len(i)).permutation(len(i))
    a = greedy_solve_two(i, j, s)
    b = greedy_solve_two(i[perm], j[perm], s[perm])
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_tie_break_is_row_of_first_party_then_second() -> None:
    # All scores equal: pairs are taken in (i, j) order, as anonlink does.
    i = np.array([1, 1, 0, 0])
    j = np.array([1, 0, 1, 0])
    s = np.full(4, 0.9)
    gi, gj, _ = greedy_solve_two(i, j, s)
    assert list(zip(gi.tolist(), gj.tolist(), strict=True)) == [(0, 0), (1, 1)]
    gi, gj, _ = greedy_solve_two(i[:-1], j[:-1], s[:-1])
    assert list(zip(gi.tolist(), gj.tolist(), strict=True)) == [(0, 1), (1, 0)]


def test_greedy_two_end_to_end_against_anonlink() -> None:
    rng = np.random.default_rng(7)
    # 16-bit filters: very few distinct Dice values, so ties everywhere.
    a = rng.integers(0, 256, size=(150, 2), dtype=np.uint8)
    b = rng.integers(0, 256, size=(140, 2), dtype=np.uint8)

    ref_cands = anonlink.candidate_generation.find_candidate_pairs(
        [to_bitarrays(a), to_bitarrays(b)], anonlink.similarities.dice_coefficient, 0.6
    )
    ref = set(anonlink.solving.pairs_from_groups(anonlink.solving.greedy_solve(ref_cands)))
    i, j, s = dice_candidates(a, b, 0.6, anonlink_compatible=True)
    assert len(i) == len(ref_cands[0])
    gi, gj, _ = greedy_solve_two(i, j, s)
    assert set(zip(gi.tolist(), gj.tolist(), strict=True)) == ref


def test_greedy_two_empty_and_validation() -> None:
    gi, gj, gs = greedy_solve_two(np.zeros(0, int), np.zeros(0, int), np.zeros(0))
    assert gi.dtype == np.int64 and gj.dtype == np.int64 and gs.dtype == np.float64
    assert len(gi) == len(gj) == len(gs) == 0
    with pytest.raises(ValueError, match="same length"):
        greedy_solve_two([0, 1], [0], [0.9, 0.9])
    with pytest.raises(ValueError, match="non-negative"):
        greedy_solve_two([-1], [0], [0.9])
    with pytest.raises(ValueError, match="finite"):
        greedy_solve_two([0], [0], [float("nan")])
    with pytest.raises(ValueError, match="integers"):
        greedy_solve_two([0.5], [0], [0.9])


@settings(max_examples=80, deadline=None)
@given(candidate_sets())
def test_cluster_two_parties_equals_greedy_two(data: tuple[Candidates, int, int]) -> None:
    (i, j, s), n_a, n_b = data
    groups = cluster({(0, 1): (i, j, s)}, [n_a, n_b])
    ea, eb = groups.entity_of(0), groups.entity_of(1)
    together = {(a, b) for a, b in itertools.product(range(n_a), range(n_b)) if ea[a] == eb[b]}
    gi, gj, _ = greedy_solve_two(i, j, s)
    assert together == set(zip(gi.tolist(), gj.tolist(), strict=True))


@st.composite
def multiparty(draw: st.DrawFn) -> tuple[dict[tuple[int, int], Candidates], list[int]]:
    n_parties = draw(st.integers(1, 5))
    sizes = draw(st.lists(st.integers(0, 8), min_size=n_parties, max_size=n_parties))
    cands: dict[tuple[int, int], Candidates] = {}
    for a in range(n_parties):
        for b in range(a, n_parties):
            if not sizes[a] or not sizes[b] or not draw(st.booleans()):
                continue
            cells = draw(
                st.lists(st.integers(0, sizes[a] * sizes[b] - 1), unique=True, max_size=12)
            )
            flat = np.asarray(cells, dtype=np.int64)
            sc = draw(st.lists(st.integers(5, 8), min_size=len(cells), max_size=len(cells)))
            cands[(a, b)] = Candidates(
                flat // sizes[b], flat % sizes[b], np.asarray(sc, float) / 10
            )
    return cands, sizes


def _check_layout(groups: Groups, sizes: list[int]) -> None:
    expect_party = np.repeat(np.arange(len(sizes)), sizes)
    np.testing.assert_array_equal(groups.party, expect_party)
    np.testing.assert_array_equal(
        groups.row, np.concatenate([np.arange(n) for n in sizes]) if sizes else []
    )
    assert len(groups.entity) == sum(sizes)
    if sum(sizes):
        # labels 0..k-1 by first appearance
        _, first = np.unique(groups.entity, return_index=True)
        assert np.all(np.diff(first) > 0)
        assert set(groups.entity.tolist()) == set(range(groups.n_entities))
        assert groups.sizes().sum() == sum(sizes)


@settings(max_examples=120, deadline=None)
@given(multiparty())
def test_cluster_invariants_forbid(
    data: tuple[dict[tuple[int, int], Candidates], list[int]],
) -> None:
    cands, sizes = data
    groups = cluster(cands, sizes)
    _check_layout(groups, sizes)
    # at most one record per party per entity
    pairs = set(zip(groups.entity.tolist(), groups.party.tolist(), strict=True))
    assert len(pairs) == len(groups.entity)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    parties_of = {
        e: set(groups.party[groups.entity == e].tolist()) for e in range(groups.n_entities)
    }
    for (a, b), (i, j, _) in cands.items():
        for x, y in zip(i.tolist(), j.tolist(), strict=True):
            ex = groups.entity[offsets[a] + x]
            ey = groups.entity[offsets[b] + y]
            # a cross-party pair is apart only because merging would clash
            if ex != ey and a != b:
                assert parties_of[ex] & parties_of[ey]
    # deterministic, and independent of the order of the mapping and of the pairs
    rng = np.random.default_rng(3)
    shuffled = {}
    for key in reversed(list(cands)):
        i, j, s = cands[key]
        p = rng.permutation(len(i))
        shuffled[key] = (i[p], j[p], s[p])
    again = cluster(shuffled, sizes)
    np.testing.assert_array_equal(groups.entity, again.entity)


@settings(max_examples=80, deadline=None)
@given(multiparty())
def test_cluster_allow_is_connected_components(
    data: tuple[dict[tuple[int, int], Candidates], list[int]],
) -> None:
    cands, sizes = data
    groups = cluster(cands, sizes, duplicates="allow")
    _check_layout(groups, sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    parent = list(range(sum(sizes)))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for (a, b), (i, j, _) in cands.items():
        for x, y in zip(i.tolist(), j.tolist(), strict=True):
            parent[find(offsets[a] + x)] = find(offsets[b] + y)
    roots = [find(x) for x in range(sum(sizes))]
    for x, y in itertools.combinations(range(sum(sizes)), 2):
        assert (roots[x] == roots[y]) == (groups.entity[x] == groups.entity[y])


def test_cluster_forbid_refuses_second_record_of_a_party() -> None:
    # Party 0 rows 0 and 1 both match party 1 row 0; party 2 row 0 matches both too.
    cands = {
        (0, 1): (np.array([0, 1]), np.array([0, 0]), np.array([0.95, 0.9])),
        (0, 2): (np.array([1]), np.array([0]), np.array([0.99])),
        (1, 2): (np.array([0]), np.array([0]), np.array([0.85])),
    }
    groups = cluster(cands, [2, 1, 1])
    # (0,1)-(2,0) first at 0.99, then (0,0)-(1,0) at 0.95; (0,1)-(1,0) would clash on
    # party 0, and so would (1,0)-(2,0).
    assert groups.entity.tolist() == [0, 1, 0, 1]
    allowed = cluster(cands, [2, 1, 1], duplicates="allow")
    assert allowed.n_entities == 1


def test_cluster_within_party_pairs_only_with_allow() -> None:
    cands = {(0, 0): (np.array([0, 1]), np.array([1, 1]), np.array([0.9, 0.9]))}
    assert cluster(cands, [3]).entity.tolist() == [0, 1, 2]
    assert cluster(cands, [3], duplicates="allow").entity.tolist() == [0, 0, 1]


def test_cluster_linked_joins_duplicates_only_through_their_own_pair() -> None:
    # Party 1 holds person X twice (rows 0 and 1, similar to each other) and party 0 holds
    # X once; party 1 row 2 is someone else who also resembles party 0 row 0.
    cands = {
        (0, 1): (np.array([0, 0, 0]), np.array([0, 1, 2]), np.array([0.95, 0.9, 0.85])),
        (1, 1): (np.array([0]), np.array([1]), np.array([0.92])),
    }
    forbid = cluster(cands, [1, 3])
    linked = cluster(cands, [1, 3], duplicates="linked")
    allowed = cluster(cands, [1, 3], duplicates="allow")
    assert forbid.entity.tolist() == [0, 0, 1, 2]  # the duplicate is left alone
    assert linked.entity.tolist() == [0, 0, 0, 1]  # ... joins through its own pair
    assert allowed.entity.tolist() == [0, 0, 0, 0]  # single linkage chains everything


def test_cluster_linked_never_puts_two_records_of_another_party_together() -> None:
    # Two duplicates of party 1 already matched different records of party 0: joining
    # them would put two records of party 0 into one entity, which "linked" refuses.
    cands = {
        (0, 1): (np.array([0, 1]), np.array([0, 1]), np.array([0.99, 0.98])),
        (1, 1): (np.array([0]), np.array([1]), np.array([0.9])),
    }
    assert cluster(cands, [2, 2], duplicates="linked").entity.tolist() == [0, 1, 0, 1]


@settings(max_examples=80, deadline=None)
@given(multiparty())
def test_cluster_linked_invariants(
    data: tuple[dict[tuple[int, int], Candidates], list[int]],
) -> None:
    cands, sizes = data
    groups = cluster(cands, sizes, duplicates="linked")
    _check_layout(groups, sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    within = {
        (offsets[a] + x, offsets[a] + y)
        for (a, b), (i, j, _) in cands.items() if a == b
        for x, y in zip(i.tolist(), j.tolist(), strict=True)
    }  # fmt: skip
    # Two records of one party share an entity only if a chain of that party's own
    # duplicate pairs joins them.
    for e in range(groups.n_entities):
        members = np.flatnonzero(groups.entity == e)
        for p in set(groups.party[members].tolist()):
            mine = [int(x) for x in members if groups.party[x] == p]
            reach, todo = {mine[0]}, [mine[0]]
            while todo:
                x = todo.pop()
                for y in mine:
                    if y not in reach and ((x, y) in within or (y, x) in within):
                        reach.add(y)
                        todo.append(y)
            assert reach == set(mine)
    # Without within-party pairs, "linked" is "forbid".
    cross = {k: v for k, v in cands.items() if k[0] != k[1]}
    np.testing.assert_array_equal(
        cluster(cross, sizes, duplicates="linked").entity, cluster(cross, sizes).entity
    )


def test_cluster_more_than_64_parties() -> None:
    # A chain through 70 parties: every party's record 0 links to the next party's.
    n = 70
    cands = {
        (p, p + 1): (np.array([0]), np.array([0]), np.array([0.9 - p / 1000])) for p in range(n - 1)
    }
    # and a conflicting second record of party 69 that matches party 0 strongly
    cands[(0, 69)] = (np.array([0]), np.array([1]), np.array([0.99]))
    sizes = [1] * (n - 1) + [2]
    groups = cluster(cands, sizes)
    ent = groups.entity
    # record (69, 1) joined party 0 first, so (68,0)-(69,0) is refused at the end.
    assert ent[-1] == ent[0]
    assert ent[-2] != ent[0]
    assert len(set(ent[:-1].tolist())) == 2


def test_cluster_validation() -> None:
    empty = np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    with pytest.raises(ValueError, match="party pair"):
        cluster({(1, 0): empty}, [1, 1])
    with pytest.raises(ValueError, match="outside"):
        cluster({(0, 1): (np.array([1]), np.array([0]), np.array([0.9]))}, [1, 1])
    with pytest.raises(ValueError, match="duplicates"):
        cluster({}, [1], duplicates="maybe")  # type: ignore[arg-type]
    groups = cluster({}, [])
    assert groups.n_entities == 0 and len(groups.entity) == 0
    assert cluster({}, [2, 0, 1]).entity.tolist() == [0, 1, 2]
