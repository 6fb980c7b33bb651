"""The one candidate-pair type: a named triple of arrays."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from linkage_unit.matching.candidates import Candidates


def _c(i: list[int], j: list[int], s: list[float]) -> Candidates:
    return Candidates(np.asarray(i, np.int64), np.asarray(j, np.int64), np.asarray(s, np.float64))


def test_unpacks_and_pickles_as_a_triple() -> None:
    pairs = _c([0, 1], [2, 3], [0.9, 0.8])
    i, j, s = pairs
    assert i is pairs.i and j is pairs.j and s is pairs.score
    assert isinstance(pairs, tuple) and len(pairs) == 3
    again = pickle.loads(pickle.dumps(pairs))
    assert isinstance(again, Candidates)
    for x, y in zip(again, pairs, strict=True):
        np.testing.assert_array_equal(x, y)


def test_empty_and_concatenate() -> None:
    empty = Candidates.empty()
    assert [x.dtype for x in empty] == [np.int64, np.int64, np.float64]
    assert all(x.size == 0 for x in empty)
    assert all(x.size == 0 for x in Candidates.concatenate([]))
    joined = Candidates.concatenate(
        [_c([0], [1], [0.5]), (np.array([2], np.int32), [3], np.array([0.7], np.float32))]
    )
    np.testing.assert_array_equal(joined.i, [0, 2])
    np.testing.assert_array_equal(joined.j, [1, 3])
    assert [x.dtype for x in joined] == [np.int64, np.int64, np.float64]


def test_sorted_unique_keeps_each_pair_once_in_order() -> None:
    pairs = _c([2, 0, 2, 1, 0], [1, 3, 1, 0, 3], [0.6, 0.9, 0.6, 0.7, 0.9])
    got = pairs.sorted_unique(4)
    np.testing.assert_array_equal(got.i, [0, 1, 2])
    np.testing.assert_array_equal(got.j, [3, 0, 1])
    np.testing.assert_array_equal(got.score, [0.9, 0.7, 0.6])


@pytest.mark.parametrize(
    ("candidates", "match"),
    [
        (([0, 1], [0], [0.5, 0.5]), "same length"),
        (([[0]], [0], [0.5]), "1-D"),
        (([-1], [0], [0.5]), "non-negative"),
        (([0.0], [0], [0.5]), "integers"),
        (([0], [0], [np.inf]), "finite"),
        (([0], [0], ["a"]), "real numbers"),
    ],
)
def test_checked_refuses_bad_candidates(candidates: tuple[object, ...], match: str) -> None:
    with pytest.raises(ValueError, match=f"mine: .*{match}"):
        Candidates.checked(candidates, "mine")  # type: ignore[arg-type]


def test_checked_converts() -> None:
    got = Candidates.checked(([1, 2], np.array([0, 1], np.uint8), [1, 0]), "x")
    assert [x.dtype for x in got] == [np.int64, np.int64, np.float64]
    assert Candidates.checked(([], [], []), "x").i.dtype == np.int64
