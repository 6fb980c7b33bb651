"""link_changes: the one way pacelink links a batch (updates, moves, withdrawals, snapshots)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from linkage_unit.matching.blocking import BlockingConfig
from linkage_unit.matching.entities import EntityIndex
from linkage_unit.matching.incremental import (
    Delivery,
    LinkSettings,
    Withdrawal,
    estimate_from_candidates,
    link_changes,
)
from linkage_unit.matching.linkage import link_encodings
from linkage_unit.matching.similarity import dice_candidates
from linkage_unit.matching.solving import cluster
from linkage_unit.matching.threshold import DEFAULT_FLOOR, Threshold

SALT = bytes(range(32))
ALL = BlockingConfig(exhaustive=True)
FIXED = LinkSettings(threshold=Threshold(0.8), blocking=ALL)


def people(n: int, seed: int = 0) -> NDArray[np.bool_]:
    return np.random.default_rng(seed).random((n, 512)) < 0.3


def noisy(truth: NDArray[np.bool_], seed: int, flip: float = 0.02) -> NDArray[np.uint8]:
    return np.packbits(truth ^ (np.random.default_rng(seed).random(truth.shape) < flip), axis=1)


def keys(*names: str) -> NDArray[np.str_]:
    return np.asarray(names, dtype=str)


def ids(index: EntityIndex, party: int, names: list[str]) -> list[str]:
    return index.lookup(party, names).tolist()


def two_parties(n: int = 20, seed: int = 1) -> tuple[NDArray[np.bool_], EntityIndex]:
    """Party 0 and party 1 hold the same n people (keys a0.., b0..), linked in one run."""
    truth = people(n, seed)
    first = link_changes(
        EntityIndex.empty(SALT),
        [
            Delivery(0, noisy(truth, 10), keys(*(f"a{k}" for k in range(n))), "snapshot"),
            Delivery(1, noisy(truth, 11), keys(*(f"b{k}" for k in range(n))), "snapshot"),
        ],
        FIXED,
    )
    assert first.index.n_entities == n and first.new_records == 2 * n
    return truth, first.index


@pytest.mark.parametrize("duplicates", ["forbid", "linked", "allow"])
@pytest.mark.parametrize("threshold", [0.75, "auto"])
def test_offline_linkage_equals_clustering_the_exhaustive_candidates(
    duplicates: str, threshold: float | str
) -> None:
    """The plain reference: dice_candidates of every pair of files, clustered greedily."""
    truth = people(300, seed=4)
    parties = [
        noisy(truth[:200], 1, 0.04),
        np.concatenate([noisy(truth[100:], 2, 0.06), noisy(truth[100:130], 3, 0.05)]),
        noisy(truth[50:250], 4, 0.08),
    ]
    groups, summary = link_encodings(parties, threshold, blocking=ALL,  # type: ignore[arg-type]
                                     duplicates=duplicates)  # type: ignore[arg-type]  # fmt: skip
    floor = DEFAULT_FLOOR if threshold == "auto" else float(threshold)
    found = {
        (a, b): dice_candidates(parties[a], parties[b], floor)
        for a in range(3)
        for b in range(a, 3)
        if a != b or duplicates != "forbid"
    }
    if threshold == "auto":
        between = [c for (a, b), c in found.items() if a != b]
        assert summary.threshold == estimate_from_candidates(between, floor).threshold
    chosen = summary.threshold
    dup = summary.duplicates_threshold
    kept = {}
    for (a, b), (i, j, s) in found.items():
        keep = s >= (chosen if a != b else dup)
        if a == b:
            keep &= i < j
        kept[(a, b)] = (i[keep], j[keep], s[keep])
    reference = cluster(kept, [len(p) for p in parties], duplicates=duplicates)  # type: ignore[arg-type]
    np.testing.assert_array_equal(groups.party, reference.party)
    np.testing.assert_array_equal(groups.row, reference.row)
    np.testing.assert_array_equal(groups.entity, reference.entity)
    exhaustive = sum(len(parties[a]) * len(parties[b]) for a, b in found)
    assert summary.comparisons == exhaustive  # one pass over the pairs, even at "auto"


def test_updated_records_keep_their_ids() -> None:
    truth, index = two_parties()
    before = ids(index, 1, [f"b{k}" for k in range(20)])
    # Party 1 corrects typos of five clients: new encodings, the same people.
    delta = Delivery(1, noisy(truth[:5], 99, 0.04), keys(*(f"b{k}" for k in range(5))))
    outcome = link_changes(index, [delta], FIXED)
    assert (outcome.updated_records, outcome.new_records, outcome.moved_records) == (5, 0, 0)
    assert ids(outcome.index, 1, [f"b{k}" for k in range(20)]) == before
    stored = outcome.index.find_records(1, keys("b0"))[1][0]
    np.testing.assert_array_equal(outcome.index.bits[stored], delta.bits[0])
    # The same delta again changes nothing.
    again = link_changes(outcome.index, [delta], FIXED)
    assert (again.updated_records, again.unchanged_records, again.new_records) == (0, 5, 0)


def test_an_update_that_matches_nothing_keeps_its_entity() -> None:
    """A client who moved house matches nobody now: no evidence the link was wrong."""
    _, index = two_parties()
    elsewhere = people(1, seed=500)  # nothing like anyone held
    outcome = link_changes(index, [Delivery(1, noisy(elsewhere, 1), keys("b3"))], FIXED)
    assert outcome.moved_records == 0 and outcome.updated_records == 1
    assert ids(outcome.index, 1, ["b3"]) == ids(index, 0, ["a3"])


def test_an_update_proven_to_be_someone_else_moves_and_is_logged() -> None:
    truth = people(6, seed=2)
    # Party 1 holds people 0..4 as b0..b4; party 0 holds people 0..5 (a5 alone).
    first = link_changes(
        EntityIndex.empty(SALT),
        [
            Delivery(0, noisy(truth, 1), keys(*(f"a{k}" for k in range(6))), "snapshot"),
            Delivery(1, noisy(truth[:5], 2), keys(*(f"b{k}" for k in range(5))), "snapshot"),
        ],
        FIXED,
    )
    index = first.index
    # b2 was keyed to the wrong client: its corrected details are person 5's.
    outcome = link_changes(index, [Delivery(1, noisy(truth[5:6], 3), keys("b2"))], FIXED)
    assert outcome.moved_records == 1
    new = outcome.index
    assert ids(new, 1, ["b2"]) == ids(index, 0, ["a5"])  # joined a5's entity
    assert ids(new, 0, ["a2"]) == ids(index, 0, ["a2"])  # a2 keeps its ID, alone now
    record = int(new.find_records(1, keys("b2"))[1][0])
    assert new.moved_record.tolist() == [record]
    assert new.entity_id[new.moved_from].tolist() == ids(index, 1, ["b2"])
    assert new.entity_id[new.moved_to].tolist() == ids(index, 0, ["a5"])


def test_an_update_does_not_move_into_an_entity_holding_its_party() -> None:
    truth, index = two_parties()
    # b2's new details are person 7's, whose entity already holds b7: it stays put.
    outcome = link_changes(index, [Delivery(1, noisy(truth[7:8], 3), keys("b2"))], FIXED)
    assert outcome.moved_records == 0
    assert ids(outcome.index, 1, ["b2"]) == ids(index, 1, ["b2"])


def test_two_updated_records_that_now_match_join_once_and_never_swap() -> None:
    truth = people(3, seed=6)
    first = link_changes(
        EntityIndex.empty(SALT),
        [
            Delivery(0, noisy(truth[0:1], 1), keys("a"), "snapshot"),
            Delivery(1, noisy(truth[1:2], 2), keys("b"), "snapshot"),
        ],
        FIXED,
    )
    assert first.index.n_entities == 2
    both = [
        Delivery(0, noisy(truth[2:3], 3), keys("a")),
        Delivery(1, noisy(truth[2:3], 4), keys("b")),
    ]
    outcome = link_changes(first.index, both, FIXED)
    assert outcome.moved_records == 1
    assert ids(outcome.index, 0, ["a"]) == ids(outcome.index, 1, ["b"])
    assert outcome.index.n_entities == 1


def test_withdrawal_removes_keys_and_encodings_and_never_reissues_the_id() -> None:
    truth, index = two_parties()
    gone = ids(index, 1, ["b4"])[0]
    outcome = link_changes(index, [Withdrawal(1, keys("b4", "nobody"))], FIXED)
    assert outcome.withdrawn_records == 1
    assert {k: v.tolist() for k, v in outcome.unknown_withdrawals.items()} == {0: [1]}
    new = outcome.index
    assert new.n_records == 39 and "b4" not in new.key.tolist()
    old_bits = index.bits[index.find_records(1, keys("b4"))[1][0]]
    assert not np.any(np.all(new.bits == old_bits, axis=1))
    assert ids(new, 0, ["a4"]) == [gone]  # the other partner's record keeps the ID
    # Person 4 comes back to party 1 under a new key: the entity (ID) is reused by matching,
    # but no entity number is ever issued twice.
    back = link_changes(new, [Delivery(1, noisy(truth[4:5], 7), keys("b4-new"))], FIXED)
    assert ids(back.index, 1, ["b4-new"]) == [gone]
    assert len(set(back.index.entity_id.tolist())) == len(back.index.entity_id)


def test_delivered_then_withdrawn_in_one_run_is_never_linked() -> None:
    _, index = two_parties()
    extra = people(1, seed=77)
    changes = [Delivery(1, noisy(extra, 1), keys("late")), Withdrawal(1, keys("late"))]
    outcome = link_changes(index, changes, FIXED)
    assert (outcome.new_records, outcome.withdrawn_records) == (0, 0)
    assert {k: v.tolist() for k, v in outcome.unknown_withdrawals.items()} == {1: []}
    assert "late" not in outcome.index.key.tolist()


def test_a_snapshot_withdraws_what_it_lacks() -> None:
    truth, index = two_parties()
    kept = [f"b{k}" for k in range(15)]
    snapshot = Delivery(1, noisy(truth[:15], 11), keys(*kept), "snapshot")
    outcome = link_changes(index, [snapshot], FIXED)
    assert outcome.withdrawn_records == 5
    assert sorted(outcome.index.key[outcome.index.party == 1].tolist()) == sorted(kept)
    assert ids(outcome.index, 1, kept) == ids(index, 1, kept)
    # A later delta in the same run brings one back: it is held again (as a new record).
    back = Delivery(1, noisy(truth[19:20], 12), keys("b19"))
    both = link_changes(index, [snapshot, back], FIXED)
    assert both.withdrawn_records == 4
    assert "b19" in both.index.key[both.index.party == 1].tolist()


def test_files_without_record_keys_cannot_update() -> None:
    """Without keys a record is its encoding: changed details are a new record."""
    truth = people(10, seed=8)
    first = link_changes(
        EntityIndex.empty(SALT),
        [
            Delivery(0, noisy(truth, 1), kind="snapshot"),
            Delivery(1, noisy(truth, 2), kind="snapshot"),
        ],
        FIXED,
    )
    again = link_changes(first.index, [Delivery(1, noisy(truth[:3], 3))], FIXED)
    assert (again.updated_records, again.new_records) == (0, 3)


def test_auto_threshold_comes_from_the_run_candidates_and_a_single_party_gets_the_default() -> None:
    truth = people(200, seed=9)
    one = link_changes(EntityIndex.empty(SALT), [Delivery(0, noisy(truth, 1), kind="snapshot")],
                       LinkSettings(threshold=Threshold(), blocking=ALL))  # fmt: skip
    assert one.threshold_method.startswith("default")
    two = link_changes(one.index, [Delivery(1, noisy(truth, 2, 0.05), kind="snapshot")],
                       LinkSettings(threshold=Threshold(), blocking=ALL))  # fmt: skip
    assert two.threshold_method.startswith("auto")
    assert two.comparisons == 200 * 200
    assert two.index.n_entities == 200


def test_progress_never_goes_back_and_ends_at_one() -> None:
    truth, index = two_parties()
    seen: list[tuple[str, float]] = []
    link_changes(
        index,
        [Delivery(1, noisy(truth[:3], 5), keys("b0", "b1", "new")), Withdrawal(0, keys("a9"))],
        FIXED,
        progress=lambda text, share: seen.append((text, share)),
    )
    shares = [s for _, s in seen]
    assert shares == sorted(shares) and shares[-1] == 1.0
    assert any("(updated records)" in text for text, _ in seen)


def test_bad_changes_are_refused() -> None:
    _, index = two_parties()
    with pytest.raises(ValueError, match="unique"):
        link_changes(index, [Delivery(1, noisy(people(2), 1), keys("x", "x"))], FIXED)
    with pytest.raises(ValueError, match="bit length"):
        link_changes(index, [Delivery(1, np.zeros((1, 8), np.uint8), keys("y"))], FIXED)
    with pytest.raises(ValueError, match="keys for"):
        link_changes(index, [Delivery(1, noisy(people(2), 1), keys("z"))], FIXED)
