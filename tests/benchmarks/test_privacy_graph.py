"""Tests of the graph-matching re-identification attack (benchmarks.privacy.graph)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from numpy.typing import NDArray

from benchmarks.privacy import graph, similarity_graph
from benchmarks.privacy.population import AttackData, attack_data, reidentified
from encoder.schema import parse_schema

N = 1000
SEED = 3


@pytest.fixture(scope="module")
def weak() -> AttackData:
    """A plain 1024-bit CLK over name and date-of-birth bigrams: the published weak case."""
    return attack_data(parse_schema(graph.plain_clk_schema(), "plain-clk"), N, seed=SEED)


@pytest.fixture(scope="module")
def weak_guesses(weak: AttackData) -> NDArray[np.int64]:
    # The truth is blanked out, so the attack cannot have used it.
    blind = dataclasses.replace(weak, truth=np.full_like(weak.truth, -1))
    return graph.graph_attack(blind, seed=0)


def assert_one_to_one(guesses: NDArray[np.int64], data: AttackData) -> None:
    assert guesses.shape == data.truth.shape
    assert guesses.dtype == np.int64
    made = guesses[guesses >= 0]
    assert np.unique(made).size == made.size
    assert ((guesses >= -1) & (guesses < len(data.tokens))).all()


def test_reidentifies_most_of_a_plain_clk(
    weak: AttackData, weak_guesses: NDArray[np.int64]
) -> None:
    # Measured: 100% (n = 1000, seed 3); the literature reports most records on this setting.
    assert_one_to_one(weak_guesses, weak)
    assert reidentified(weak, weak_guesses) >= 0.8


def test_token_similarity_without_the_hashing(weak: AttackData) -> None:
    """Calibrating token-set Dice by quantiles, with no model of the hashing, also works."""
    guesses = graph.graph_attack(weak, similarity="tokens", seed=0)
    # Measured: 100% (n = 1000, seed 3).
    assert_one_to_one(guesses, weak)
    assert reidentified(weak, guesses) >= 0.7


def test_random_encodings_reveal_nothing(weak: AttackData) -> None:
    """Control: independent random bits of the same density carry no identity."""
    rng = np.random.default_rng(SEED)
    density = np.unpackbits(weak.encodings).mean()
    rows = N // 2  # against the whole register; fewer rows keep the test quick
    noise = rng.random((rows, weak.encodings.shape[1] * 8)) < density
    control = dataclasses.replace(
        weak, encodings=np.packbits(noise, axis=1), truth=weak.truth[:rows]
    )
    guesses = graph.graph_attack(control, seed=0)
    assert_one_to_one(guesses, control)
    assert reidentified(control, guesses) <= 0.02


def test_reencode_matches_the_encoders_statistics(weak: AttackData) -> None:
    """The attacker's own encoding of its register looks like the partners' encodings."""
    own = graph.reencode(weak, seed=1)
    assert own.shape == (len(weak.tokens), weak.encodings.shape[1])
    own_pop = np.unpackbits(own, axis=1).sum(axis=1)
    enc_pop = np.unpackbits(weak.encodings, axis=1).sum(axis=1)
    # Same people (overlap 1.0): the popcounts of a record's two encodings agree closely.
    assert own_pop.mean() == pytest.approx(enc_pop.mean(), rel=0.02)
    assert np.corrcoef(own_pop[weak.truth], enc_pop)[0, 1] > 0.8


def test_similarity_graph_keeps_the_strongest_edges() -> None:
    rng = np.random.default_rng(0)
    bits = np.packbits(rng.random((60, 256)) < 0.3, axis=1)
    bits[1] = bits[0]  # an exact twin
    result = similarity_graph.similarity_graph(bits, 0.3, neighbours=5, levels=(0.5,))
    assert result.neighbours[0, 0] == 1 and result.scores[0, 0] == pytest.approx(1.0)
    assert (result.neighbours != np.arange(60)[:, None]).all()  # no self loops
    valid = result.scores[:, :-1] >= result.scores[:, 1:]
    assert valid.all()  # best first
    assert (result.counts[:, 0] >= result.counts[:, 1]).all()


def test_no_encodings_no_guesses(weak: AttackData) -> None:
    empty = dataclasses.replace(
        weak, encodings=weak.encodings[:0], truth=np.zeros(0, dtype=np.int64)
    )
    assert graph.graph_attack(empty).shape == (0,)


def test_known_pairs_seed_the_attack(weak: AttackData) -> None:
    rows = np.arange(0, N, 50)
    guesses = graph.graph_attack(weak, known_pairs=(rows, weak.truth[rows]), seed=0)
    assert_one_to_one(guesses, weak)
    assert (guesses[rows] == weak.truth[rows]).all()
    assert reidentified(weak, guesses) >= 0.8


@pytest.mark.parametrize(
    ("rows", "cols", "message"),
    [
        ([0, 1], [0], "same length"),
        ([0, N], [0, 1], "do not exist"),
        ([0, 1], [5, 5], "one to one"),
    ],
)
def test_known_pairs_are_checked(
    weak: AttackData, rows: list[int], cols: list[int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        graph.graph_attack(weak, known_pairs=(np.array(rows), np.array(cols)))


def test_unknown_similarity_is_refused(weak: AttackData) -> None:
    with pytest.raises(ValueError, match="similarity"):
        graph.graph_attack(weak, similarity="bits")  # type: ignore[arg-type]
