"""link_encodings: progress reported as fractions with counts, and the blocking it names."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from linkage_unit.matching.blocking import BlockingConfig
from linkage_unit.matching.linkage import link_encodings


def _parties(seed: int = 3) -> list[NDArray[np.uint8]]:
    """Three parties: the same 150 random filters with a few bits flipped, plus strangers."""
    rng = np.random.default_rng(seed)
    people = rng.random((150, 512)) < 0.5
    parties = []
    for _ in range(3):
        noisy = people ^ (rng.random(people.shape) < 0.03)
        strangers = rng.random((50, 512)) < 0.5
        parties.append(np.packbits(np.concatenate([noisy, strangers]), axis=1))
    return parties


LSH = BlockingConfig(tables=30, bits_per_table=12, exhaustive_up_to=0)


@pytest.mark.parametrize("blocking", [LSH, BlockingConfig(exhaustive=True)])
def test_progress_rises_to_one_with_counts_of_comparisons(blocking: BlockingConfig) -> None:
    seen: list[tuple[str, float]] = []
    groups, summary = link_encodings(
        _parties(), 0.8, blocking=blocking, progress=lambda text, done: seen.append((text, done))
    )
    fractions = [done for _, done in seen]
    assert fractions == sorted(fractions), "progress never goes back"
    assert fractions[0] >= 0.0 and fractions[-1] == 1.0
    texts = " | ".join(text for text, _ in seen)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert f"comparing party {a} with party {b}" in texts
    assert "comparisons" in texts and "grouping" in texts
    if not blocking.exhaustive:
        # One report per round of tables, the last with the pass's totals.
        assert "table 30/30" in texts
        assert len(seen) > 3 * 2
    assert summary.blocking == blocking.describe(200, 200)
    # The 150 shared people are linked across the three parties.
    sizes = np.bincount(groups.entity)
    assert (sizes == 3).sum() >= 145


def test_auto_threshold_reports_the_estimation_step() -> None:
    seen: list[str] = []
    _, summary = link_encodings(
        _parties(),
        "auto",
        blocking=LSH,
        progress=lambda text, done: seen.append(text),
    )
    assert any(text.startswith("estimating the threshold") for text in seen)
    assert summary.threshold_method.startswith("auto")


@pytest.mark.parametrize("blocking", [LSH, BlockingConfig(exhaustive=True)])
def test_linked_duplicates_join_their_person(blocking: BlockingConfig) -> None:
    rng = np.random.default_rng(5)
    people = rng.random((100, 512)) < 0.5

    def noisy(rows: NDArray[np.bool_]) -> NDArray[np.uint8]:
        return np.packbits(rows ^ (rng.random(rows.shape) < 0.02), axis=1)

    a = noisy(people)
    # Party 1 holds everyone once and the first 10 people a second time.
    b = np.concatenate([noisy(people), noisy(people[:10])])
    forbid, _ = link_encodings([a, b], 0.8, blocking=blocking)
    linked, summary = link_encodings([a, b], 0.8, blocking=blocking, duplicates="linked")
    person = np.concatenate([np.arange(100), np.arange(100), np.arange(10)])
    for groups, expect_duplicates_joined in ((forbid, False), (linked, True)):
        entity = groups.entity
        for k in range(10):
            twice = entity[[100 + k, 200 + k]]
            assert bool(twice[0] == twice[1]) is expect_duplicates_joined
        # No entity mixes people.
        for e in np.unique(entity):
            assert len(set(person[entity == e].tolist())) == 1
    assert linked.n_entities == 100
    if blocking.exhaustive:  # the within-party comparisons are counted too
        assert summary.comparisons == 100 * 110 + 100 * 100 + 110 * 110


def test_auto_threshold_for_duplicates_is_never_below_the_one_between_parties() -> None:
    rng = np.random.default_rng(9)
    people = rng.random((400, 512)) < 0.4
    a = np.packbits(people ^ (rng.random(people.shape) < 0.05), axis=1)
    b = np.packbits(np.concatenate([people, people[:20]]) ^ (rng.random((420, 512)) < 0.05), axis=1)
    _, forbid = link_encodings([a, b], "auto")
    groups, linked = link_encodings([a, b], "auto", duplicates="linked")
    assert forbid.duplicates_threshold is None
    assert linked.duplicates_threshold is not None
    assert linked.duplicates_threshold >= linked.threshold == forbid.threshold
    entity = groups.entity
    assert sum(bool(entity[400 + k] == entity[800 + k]) for k in range(20)) >= 18
