"""Tests for linkage_unit.matching.entities: stable IDs across batches, merges, storage."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from linkage_unit.jobs.pipeline import RunInputs
from linkage_unit.matching.blocking import BlockingConfig
from linkage_unit.matching.candidates import Candidates
from linkage_unit.matching.entities import ID_LENGTH, AddResult, EntityIndex, content_keys
from linkage_unit.matching.incremental import Delivery, LinkSettings, link_changes
from linkage_unit.matching.threshold import Threshold


@dataclass(frozen=True)
class Batch:
    """What linking one party's delivery did, row by row (rows as given)."""

    index: EntityIndex
    ids: NDArray[np.str_]
    known: NDArray[np.bool_]  # the row's (party, key) was in the index before
    new_entity: NDArray[np.bool_]  # the row's entity was issued by this delivery
    updated: int
    merged_from: list[str]


def add_batch(
    index: EntityIndex,
    party: int,
    bits: np.ndarray,
    *,
    threshold: float,
    keys: object = None,
    duplicates: str = "forbid",
    allow_merges: bool = True,
) -> Batch:
    """One party's delta linked as a run links it (link_changes, exhaustive candidates)."""
    row_keys = content_keys(bits) if keys is None else np.asarray(keys, dtype=str)
    outcome = link_changes(
        index,
        [Delivery(party, bits, None if keys is None else row_keys)],
        LinkSettings(threshold=Threshold(threshold), duplicates=duplicates,  # type: ignore[arg-type]
                     allow_merges=allow_merges, blocking=BlockingConfig(exhaustive=True)),
    )  # fmt: skip
    new = outcome.index
    ids = new.lookup(party, row_keys)
    old_aliases = set(index.aliases()[0].tolist())
    return Batch(
        index=new,
        ids=ids,
        known=index.find_records(party, row_keys)[0],
        new_entity=~np.isin(ids, index.entity_id),
        updated=outcome.updated_records,
        merged_from=[a for a in new.aliases()[0].tolist() if a not in old_aliases],
    )


def add_one(
    index: EntityIndex, party: int, bits: NDArray[np.uint8], candidates: Any, **options: Any
) -> tuple[AddResult, str]:
    """Add one record of ``party`` (key: its number) with hand-made candidates; its ID."""
    added = index.add_records([party], [f"r{index.n_records}"], bits, candidates, **options)
    return added, str(added.index.record_ids[-1])


SALT = bytes(range(32))
THRESHOLD = 0.8


def people(n: int, seed: int = 0, bits: int = 256) -> NDArray[np.bool_]:
    return np.random.default_rng(seed).random((n, bits)) < 0.3


def encode(truth: NDArray[np.bool_], seed: int, flip: float = 0.01) -> NDArray[np.uint8]:
    """Packed encodings of the people with a little noise (a different partner's typing)."""
    noise = np.random.default_rng(seed).random(truth.shape) < flip
    return np.packbits(truth ^ noise, axis=1)


def no_match(m: int) -> Candidates:
    del m
    return Candidates.empty()


def one_bit_batch(m: int) -> NDArray[np.uint8]:
    return np.arange(1, m + 1, dtype=np.uint8).reshape(m, 1)


def assert_same_index(a: EntityIndex, b: EntityIndex) -> None:
    assert a.salt == b.salt
    assert a.n_batches == b.n_batches and a.filter_bytes == b.filter_bytes
    for field in (
        "party",
        "key",
        "bits",
        "entity",
        "first_entity",
        "batch",
        "entity_id",
        "alias_of",
        "created_batch",
        "merged_batch",
        "moved_record",
        "moved_from",
        "moved_to",
        "moved_batch",
    ):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def test_ids_stable_across_batches_and_new_people_get_new_ids() -> None:
    truth = people(60)
    index = EntityIndex.empty(SALT)
    first = add_batch(index, 0, encode(truth[:40], 1), threshold=THRESHOLD)
    assert first.new_entity.all() and not first.known.any()
    assert len(set(first.ids.tolist())) == 40
    assert all(re.fullmatch(f"[0-9a-f]{{{ID_LENGTH}}}", x) for x in first.ids.tolist())

    # Batch 2: another partner holds people 20..59; 20..39 are the same people.
    second = add_batch(first.index, 1, encode(truth[20:], 2), threshold=THRESHOLD)
    np.testing.assert_array_equal(second.ids[:20], first.ids[20:])
    assert not second.new_entity[:20].any() and second.new_entity[20:].all()
    assert not set(second.ids[20:].tolist()) & set(first.ids.tolist())
    assert second.merged_from == []
    # Batch-1 records keep their IDs.
    np.testing.assert_array_equal(second.index.record_ids[:40], first.ids)
    assert second.index.n_entities == 60
    assert second.index.n_records == 80


def test_rerun_is_idempotent() -> None:
    truth = people(30)
    bits0, bits1 = encode(truth, 1), encode(truth, 2)
    keys1 = [f"client-{k}" for k in range(30)]
    index = add_batch(EntityIndex.empty(SALT), 0, bits0, threshold=THRESHOLD).index
    once = add_batch(index, 1, bits1, threshold=THRESHOLD, keys=keys1)
    twice = add_batch(once.index, 1, bits1, threshold=THRESHOLD, keys=keys1)
    np.testing.assert_array_equal(once.ids, twice.ids)
    assert twice.known.all() and not twice.new_entity.any() and twice.updated == 0
    assert twice.index.n_records == once.index.n_records
    np.testing.assert_array_equal(twice.index.entity_id, once.index.entity_id)
    # without keys, the encoding is the key: the same bits are the same records
    again = add_batch(twice.index, 0, bits0, threshold=THRESHOLD)
    assert again.known.all()
    np.testing.assert_array_equal(again.ids, once.ids)
    # a known key with a new encoding is an update: it keeps its ID, the new bits are kept
    changed = bits1.copy()
    changed[0] ^= 0x81
    updated = add_batch(twice.index, 1, changed, threshold=THRESHOLD, keys=keys1)
    np.testing.assert_array_equal(updated.ids, once.ids)
    assert updated.updated == 1
    record = updated.index.find_records(1, ["client-0"])[1][0]
    np.testing.assert_array_equal(updated.index.bits[record], changed[0])


def test_determinism_from_scratch_and_salt_separates_projects() -> None:
    truth = people(40, seed=5)
    batches = [(0, encode(truth[:25], 1)), (1, encode(truth[10:], 2)), (2, encode(truth, 3))]

    def run(salt: bytes) -> list[NDArray[np.str_]]:
        index = EntityIndex.empty(salt)
        out = []
        for party, bits in batches:
            result = add_batch(index, party, bits, threshold=THRESHOLD)
            out.append(result.ids)
            index = result.index
        return out

    a, b = run(SALT), run(SALT)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    other = run(bytes(32))
    assert not set(np.concatenate(a).tolist()) & set(np.concatenate(other).tolist())

    # the same structure though: only the IDs' values depend on the salt
    def structure(ids: list[NDArray[np.str_]]) -> list[int]:
        first: dict[str, int] = {}
        return [first.setdefault(x, len(first)) for x in np.concatenate(ids).tolist()]

    assert structure(a) == structure(other)


def test_random_salt_by_default() -> None:
    a, b = EntityIndex.empty(), EntityIndex.empty()
    assert a.salt != b.salt and len(a.salt) == 32
    with pytest.raises(ValueError, match="salt"):
        EntityIndex.empty(b"short")


def _three_singletons() -> tuple[EntityIndex, list[str]]:
    """Parties 0, 1, 2 with one record each (1-byte filters), in three entities."""
    index = EntityIndex.empty(SALT)
    ids = []
    for party in range(3):
        added, new_id = add_one(index, party, one_bit_batch(1) + party, no_match(1))
        index = added.index
        ids.append(new_id)
    return index, ids


def test_merge_keeps_oldest_id_and_records_alias() -> None:
    index, ids = _three_singletons()
    # Party 3's record matches record 1 (party 1) and record 2 (party 2): entities 1 and 2
    # merge; the older, ids[1], survives.
    cands = (np.array([0, 0]), np.array([2, 1]), np.array([0.95, 0.9]))
    result, new_id = add_one(index, 3, one_bit_batch(1), cands)
    assert new_id == ids[1]
    assert result.merged_from.tolist() == [ids[2]]
    assert result.merged_into.tolist() == [ids[1]]
    new = result.index
    assert new.record_ids.tolist() == [ids[0], ids[1], ids[1], ids[1]]
    alias, current = new.aliases()
    assert alias.tolist() == [ids[2]] and current.tolist() == [ids[1]]
    assert new.resolve([ids[2], ids[0]]).tolist() == [ids[1], ids[0]]
    assert new.n_entities == 2
    np.testing.assert_array_equal(new.first_entity, [0, 1, 2, 1])  # the audit trail
    assert new.merged_batch.tolist() == [-1, -1, 3]
    with pytest.raises(KeyError):
        new.resolve(["0" * ID_LENGTH])

    # Alias chains resolve to the current survivor: merge entity 1 (with alias 2) into 0.
    cands = (np.array([0, 0]), np.array([0, 3]), np.array([0.9, 0.9]))
    later, _ = add_one(new, 4, one_bit_batch(1), cands)
    assert later.merged_from.tolist() == [ids[1]]
    assert later.index.resolve(ids).tolist() == [ids[0]] * 3
    assert set(later.index.record_ids.tolist()) == {ids[0]}
    alias, current = later.index.aliases()
    assert alias.tolist() == [ids[1], ids[2]] and current.tolist() == [ids[0]] * 2


def test_no_merge_when_forbidden_or_it_would_clash() -> None:
    index, ids = _three_singletons()
    cands = (np.array([0, 0]), np.array([2, 1]), np.array([0.95, 0.9]))
    result, new_id = add_one(index, 3, one_bit_batch(1), cands, allow_merges=False)
    assert new_id == ids[2]  # best match only
    assert len(result.merged_from) == 0
    # A new party-1 record matching party 0 and party 1's records: joining either is
    # fine on its own, but the entity of record 1 already holds party 1.
    cands = (np.array([0, 0]), np.array([1, 0]), np.array([0.99, 0.9]))
    result, new_id = add_one(index, 1, one_bit_batch(1) + 7, cands)
    assert new_id == ids[0]
    assert len(result.merged_from) == 0
    # Two existing entities that share a party never merge.
    index2 = add_one(index, 0, one_bit_batch(1) + 9, no_match(1))[0].index  # party 0 again
    cands = (np.array([0, 0]), np.array([0, 3]), np.array([0.95, 0.94]))
    result, new_id = add_one(index2, 5, one_bit_batch(1), cands)
    assert new_id == ids[0] and len(result.merged_from) == 0


def test_duplicates_forbid_and_allow() -> None:
    truth = people(10, seed=9)
    base = add_batch(EntityIndex.empty(SALT), 0, encode(truth, 1), threshold=THRESHOLD)
    # The same people again from party 0 under other keys: with "forbid" they are other
    # records of party 0, so they cannot join; with "allow" they join.
    keys = [f"dup-{k}" for k in range(10)]
    forbid = add_batch(base.index, 0, encode(truth, 2), threshold=THRESHOLD, keys=keys)
    assert forbid.new_entity.all()
    allow = add_batch(
        base.index, 0, encode(truth, 2), threshold=THRESHOLD, keys=keys, duplicates="allow"
    )
    np.testing.assert_array_equal(allow.ids, base.ids)
    # Within-batch duplicates share an entity only with "allow".
    doubled = np.concatenate([encode(truth[:3], 3), encode(truth[:3], 4)])
    keys6 = [f"k{k}" for k in range(6)]
    fresh = EntityIndex.empty(SALT)
    res = add_batch(fresh, 0, doubled, threshold=THRESHOLD, keys=keys6, duplicates="allow")
    np.testing.assert_array_equal(res.ids[:3], res.ids[3:])
    res = add_batch(fresh, 0, doubled, threshold=THRESHOLD, keys=keys6)
    assert len(set(res.ids.tolist())) == 6


def test_move_record_is_explicit_and_logged() -> None:
    index, ids = _three_singletons()
    moved = index.move_record(1, index.key[1], to=ids[0])
    assert moved.record_ids.tolist() == [ids[0], ids[0], ids[2]]
    assert (moved.moved_record.tolist(), moved.moved_from.tolist()) == ([1], [1])
    assert moved.moved_to.tolist() == [0]
    alone = moved.move_record(1, index.key[1])
    assert alone.record_ids[1] not in ids and len(alone.entity_id) == 4
    second = add_one(index, 1, one_bit_batch(1) + 5, no_match(1))[0].index
    with pytest.raises(ValueError, match="already holds"):
        second.move_record(1, second.key[3], to=ids[1])
    forced = second.move_record(1, second.key[3], to=ids[1], allow_duplicates=True)
    assert forced.record_ids[3] == ids[1]
    with pytest.raises(KeyError):
        index.move_record(0, "nope")
    with pytest.raises(KeyError):
        index.move_record(0, str(index.key[0]), to="f" * ID_LENGTH)


def test_lookup_and_validation() -> None:
    index, ids = _three_singletons()
    assert index.lookup(2, [index.key[2], "missing"]).tolist() == [ids[2], ""]
    with pytest.raises(ValueError, match="bytes"):
        index.add_records([0], ["x"], np.zeros((1, 2), np.uint8), no_match(1))
    with pytest.raises(ValueError, match="new and unique"):
        index.add_records([0, 0], ["a", "a"], one_bit_batch(2), no_match(2))
    with pytest.raises(ValueError, match="new and unique"):
        index.add_records([0], [index.key[0]], one_bit_batch(1), no_match(1))
    with pytest.raises(ValueError, match="out of range"):
        index.add_records([0], ["y"], one_bit_batch(1), (np.array([0]), np.array([9]),
                                                          np.array([1.0])))  # fmt: skip
    with pytest.raises(ValueError, match="non-negative"):
        index.add_records([-1], ["z"], one_bit_batch(1), no_match(1))


def test_save_load_round_trip(tmp_path: Path) -> None:
    truth = people(20)
    index = EntityIndex.empty(SALT)
    index = add_batch(index, 0, encode(truth[:15], 1), threshold=THRESHOLD).index
    index = add_batch(
        index, 1, encode(truth[5:], 2), threshold=THRESHOLD, keys=list("abcdefghijklmno")
    ).index
    index = index.move_record(1, "a")
    empty_dir = tmp_path / "empty"
    EntityIndex.empty(SALT).save(empty_dir)
    assert_same_index(EntityIndex.load(empty_dir), EntityIndex.empty(SALT))

    folder = index.save(tmp_path / "idx")
    loaded = EntityIndex.load(tmp_path / "idx")
    assert_same_index(loaded, index)
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == ["CURRENT", folder.name]
    # linking goes on identically after a reload
    more = encode(truth, 3)
    np.testing.assert_array_equal(
        add_batch(loaded, 2, more, threshold=THRESHOLD).ids,
        add_batch(index, 2, more, threshold=THRESHOLD).ids,
    )
    # a second save replaces the first version
    later = add_batch(loaded, 2, more, threshold=THRESHOLD).index
    later.save(tmp_path / "idx")
    assert_same_index(EntityIndex.load(tmp_path / "idx"), later)
    assert len(list((tmp_path / "idx").iterdir())) == 2


def test_atomic_save_failure_leaves_previous_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, _ = _three_singletons()
    index.save(tmp_path)
    newer = index.add_records([3, 3], ["a", "b"], one_bit_batch(2), no_match(2)).index

    calls = {"n": 0}
    real_save = np.save

    def failing_save(file: Any, arr: Any, allow_pickle: bool = True) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError("disk full")
        real_save(file, arr, allow_pickle=allow_pickle)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        newer.save(tmp_path)
    monkeypatch.undo()
    assert_same_index(EntityIndex.load(tmp_path), index)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

    # failing at the very last step, the pointer swap, also keeps the old state
    def failing_replace(src: object, dst: object) -> None:
        raise OSError("crash before the switch")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="crash"):
        newer.save(tmp_path)
    monkeypatch.undo()
    assert_same_index(EntityIndex.load(tmp_path), index)
    newer.save(tmp_path)  # and the next good save cleans up the leftovers
    assert_same_index(EntityIndex.load(tmp_path), newer)
    assert len(list(tmp_path.iterdir())) == 2


def test_load_rejects_inconsistent_files(tmp_path: Path) -> None:
    index, _ = _three_singletons()
    folder = index.save(tmp_path)
    np.save(folder / "entity.npy", np.array([0, 1], dtype=np.int64))
    with pytest.raises(ValueError, match="record arrays"):
        EntityIndex.load(tmp_path)
    np.save(folder / "entity.npy", np.array(["x"], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="pickle"):
        EntityIndex.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        EntityIndex.load(tmp_path / "nothing-here")


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.lists(st.integers(0, 11), min_size=1, max_size=6)),
        min_size=1,
        max_size=5,
    )
)
def test_batches_keep_invariants(batches: list[tuple[int, list[int]]]) -> None:
    """Random batches of random people: IDs never change except by recorded merges."""
    truth = people(12, seed=11)
    index = EntityIndex.empty(SALT)
    for b, (party, who) in enumerate(batches):
        result = add_batch(index, party, encode(truth[who], 100 + b), threshold=THRESHOLD)
        new = result.index
        old_ids = index.record_ids
        now = new.record_ids[: index.n_records]
        # every earlier record keeps its ID, or it was merged away (an alias now resolving)
        changed = old_ids != now
        assert set(old_ids[changed].tolist()) <= set(result.merged_from)
        if changed.any():
            np.testing.assert_array_equal(new.resolve(old_ids[changed]), now[changed])
        # at most one record per party per entity
        combos = set(zip(new.entity.tolist(), new.party.tolist(), strict=True))
        assert len(combos) == new.n_records
        # re-running the same batch is a no-op
        rerun = add_batch(new, party, encode(truth[who], 100 + b), threshold=THRESHOLD)
        assert rerun.known.all()
        np.testing.assert_array_equal(rerun.ids, result.ids)
        index = new


def test_identical_encodings_without_keys_are_one_record() -> None:
    truth = people(4, seed=2)
    bits = encode(truth, 1)
    index = add_batch(EntityIndex.empty(SALT), 0, bits[:2], threshold=THRESHOLD).index
    batch = bits[[2, 0, 2, 3, 0]]  # new, known, repeat of new, new, repeat of known
    result = add_batch(index, 0, batch, threshold=THRESHOLD)
    assert result.known.tolist() == [False, True, False, False, True]
    assert result.ids[0] == result.ids[2] and result.ids[1] == result.ids[4]
    assert result.ids[1] == index.record_ids[0]
    assert result.index.n_records == 4
    assert result.new_entity.tolist() == [True, False, True, True, False]


def test_the_salt_stays_out_of_reprs() -> None:
    """A repr reaches logs and tracebacks; with the salt anyone could issue the index's IDs."""
    salt = bytes(range(32))
    index = EntityIndex.empty(salt)
    inputs = RunInputs(salt, ("a", "b"), None, (), (), Threshold())
    for text in (repr(index), repr(inputs)):
        assert repr(salt) not in text and salt.hex() not in text and "salt" not in text


def test_an_unnamed_index_numbers_entities_without_ids() -> None:
    """Offline linkage needs entity numbers only: no ID is derived or held."""
    truth = people(10, seed=4)
    index = add_batch(EntityIndex.unnamed(), 0, encode(truth, 1), threshold=THRESHOLD).index
    index = add_batch(index, 1, encode(truth, 2), threshold=THRESHOLD).index
    assert index.n_entities == 10 and index.entity_id.dtype == np.dtype("<U1")
    assert set(index.entity_id.tolist()) == {""}
    named = add_batch(EntityIndex.empty(SALT), 0, encode(truth, 1), threshold=THRESHOLD).index
    named = add_batch(named, 1, encode(truth, 2), threshold=THRESHOLD).index
    np.testing.assert_array_equal(index.entity, named.entity)
