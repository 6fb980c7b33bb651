"""Greedy agglomeration's pieces against plain numpy references."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from linkage_unit.matching.agglomeration import (
    greedy_union,
    labels_by_first_appearance,
    order_by_score,
    party_masks,
)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 50)), max_size=60))
def test_order_by_score_equals_a_lexsort(items: list[tuple[int, int]]) -> None:
    score = np.asarray([s / 5 for s, _ in items], np.float64)
    key = np.asarray([k for _, k in items], np.int64)
    expected = np.lexsort((np.arange(len(items)), key, -score)) if items else np.zeros(0, int)
    np.testing.assert_array_equal(order_by_score(score, key), expected)


def test_order_by_score_with_many_distinct_scores_falls_back_to_a_sort() -> None:
    score = np.random.default_rng(1).random(20_000)  # more distinct values than the tables
    key = np.arange(score.size, dtype=np.int64)
    np.testing.assert_array_equal(order_by_score(score, key), np.argsort(-score, kind="stable"))


def test_party_masks_or_the_bits_of_each_nodes_records() -> None:
    nodes = np.array([0, 0, 1, 2, 2], np.int64)
    parties = np.array([0, 65, 3, 3, 1], np.int64)
    masks = party_masks(nodes, parties, 4, 66)
    expected = np.zeros((4, 2), np.uint64)
    for n, p in zip(nodes, parties, strict=True):
        expected[n, p // 64] |= np.uint64(1) << np.uint64(p % 64)
    np.testing.assert_array_equal(masks, expected)
    assert party_masks(nodes[:0], parties[:0], 2, 0).shape == (2, 1)


def test_greedy_union_refuses_a_second_record_of_a_party() -> None:
    # Nodes 0, 1 of party 0 and node 2 of party 1; 0-2 is visited first, so 1-2 is refused.
    parties = np.array([0, 0, 1], np.int64)
    masks = party_masks(np.arange(3, dtype=np.int64), parties, 3, 2)
    u = np.array([1, 0], np.int64)
    v = np.array([2, 2], np.int64)
    order = order_by_score(np.array([0.8, 0.9]), np.array([0, 1], np.int64))
    roots, accepted = greedy_union(u, v, order, masks, np.zeros(3, np.bool_), True, True,
                                   np.full(2, -1, np.int64))  # fmt: skip
    assert accepted.tolist() == [False, True]
    assert roots[0] == roots[2] != roots[1]
    np.testing.assert_array_equal(labels_by_first_appearance(roots), [0, 1, 0])


def test_labels_by_first_appearance() -> None:
    np.testing.assert_array_equal(labels_by_first_appearance(np.array([7, 3, 7, 1, 3])),
                                  [0, 1, 0, 2, 1])  # fmt: skip
    assert labels_by_first_appearance(np.zeros(0, np.int64)).size == 0
