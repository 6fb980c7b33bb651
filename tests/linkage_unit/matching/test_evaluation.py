"""Match-quality measures: hand-made groupings, and the same figures as a plain set rule."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from linkage_unit.matching.evaluation import cluster_metrics, evaluate, pairwise_metrics


def _arrays(*values: list[int]) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(v, dtype=np.int64) for v in values)


def test_pairwise_measures_count_only_pairs_of_different_files() -> None:
    # Person 1: a record in each of three files; person 2: two records in file 0 (a
    # duplicate) and one in file 1; person 3: alone.
    party, person = _arrays([0, 1, 2, 0, 0, 1, 2], [1, 1, 1, 2, 2, 2, 3])
    # Truth: person 1 gives 3 cross-file pairs, person 2 gives 2 (the duplicate pair is in
    # one file and does not count).
    perfect = evaluate(party, person, person)
    assert (perfect.true_pairs, perfect.predicted_pairs, perfect.correct_pairs) == (5, 5, 5)
    assert perfect.f1 == 1.0 and perfect.cluster_f1 == 1.0
    # Predicted: person 1's file-2 record wrongly joined with one of person 2's file-0
    # records; person 3 alone.
    entity = np.asarray([10, 10, 11, 11, 13, 13, 12], dtype=np.int64)
    p, r, f1, true, predicted, correct = pairwise_metrics(party, person, entity)
    # Predicted cross-file pairs: (0,1) of entity 10, (2,3) of 11, (4,5) of 13 -> 3, of
    # which (0,1) and (4,5) are correct.
    assert (true, predicted, correct) == (5, 3, 2)
    assert p == pytest.approx(2 / 3) and r == pytest.approx(2 / 5)
    assert f1 == pytest.approx(2 * (2 / 3) * (2 / 5) / (2 / 3 + 2 / 5))


def test_cluster_measures_need_exactly_one_persons_records() -> None:
    _, person = _arrays([0, 1, 2, 0, 1, 0], [1, 1, 1, 2, 2, 3])
    # Person 1 split into {0,1} and {2}; person 2 exact; person 3 exact (a singleton).
    entity = np.asarray([0, 0, 1, 2, 2, 3], dtype=np.int64)
    cp, cr, cf = cluster_metrics(person, entity)
    assert cp == pytest.approx(2 / 4) and cr == pytest.approx(2 / 3)
    assert cf == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    # Everything in one entity: no cluster is right.
    assert cluster_metrics(person, np.zeros(6, dtype=np.int64))[:2] == (0.0, 0.0)


def _reference_pairwise(
    party: list[int], person: list[int], entity: list[int]
) -> tuple[float, float, float, int, int, int]:
    """The plain rule: sets of cross-file record pairs, true against predicted."""

    def pairs(labels: list[int]) -> set[tuple[int, int]]:
        return {
            (a, b)
            for a, b in itertools.combinations(range(len(labels)), 2)
            if labels[a] == labels[b] and party[a] != party[b]
        }

    true, found = pairs(person), pairs(entity)
    hit = len(true & found)
    precision = hit / len(found) if found else 1.0
    recall = hit / len(true) if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, len(true), len(found), hit


def _reference_cluster(person: list[int], entity: list[int]) -> tuple[float, float, float]:
    """The plain rule: an entity is correct when its record set is a person's record set."""

    def groups(labels: list[int]) -> set[frozenset[int]]:
        out: dict[int, set[int]] = {}
        for k, label in enumerate(labels):
            out.setdefault(label, set()).add(k)
        return {frozenset(g) for g in out.values()}

    people, entities = groups(person), groups(entity)
    correct = len(people & entities)
    precision = correct / len(entities) if entities else 1.0
    recall = correct / len(people) if people else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


_records = st.integers(0, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 2), min_size=n, max_size=n),
        st.lists(st.integers(0, 12), min_size=n, max_size=n),
        st.lists(st.integers(-3, 12), min_size=n, max_size=n),
    )
)


@given(_records)
def test_measures_equal_the_plain_set_rule(records: tuple[list[int], ...]) -> None:
    party, person, entity = records
    arrays = _arrays(party, person, entity)
    assert pairwise_metrics(*arrays) == _reference_pairwise(party, person, entity)
    assert cluster_metrics(arrays[1], arrays[2]) == pytest.approx(
        _reference_cluster(person, entity)
    )
    assert (
        evaluate(*arrays).as_dict()["true_pairs"] == _reference_pairwise(party, person, person)[3]
    )
