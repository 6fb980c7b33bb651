"""A persistent entity index: stable linkage IDs for records that arrive in batches.

Partners send their encodings (packed Bloom filters, ``uint8`` arrays ``(n, l // 8)``) in
batches.  :class:`EntityIndex` keeps every record held now, the entity each belongs to
and the opaque ID of every entity.  Every change (:meth:`EntityIndex.add_records`,
:meth:`~EntityIndex.remove_records`, :meth:`~EntityIndex.replace_bits`,
:meth:`~EntityIndex.move_records`) returns a *new* index; the old one is unchanged (the
state is a frozen dataclass of numpy arrays), so a failed or abandoned run never corrupts
anything.  :func:`linkage_unit.matching.incremental.link_changes` decides which changes a
run's deliveries and withdrawals make; it is the one way pacelink links a batch.

The rules (also in ``docs/entities.md``)
----------------------------------------
* **Records are identified by (party, key).**  ``key`` is the partner's keyed pseudonym of
  its local ID (``pacelink encode --record-key``); without one a record's key is a hash of
  its encoding (:func:`content_keys`), so a changed record is a new one.
* **New records** are linked greedily by descending score against the existing entities
  (through the candidate pairs of their records) and against each other: a record joins
  the entity of its best match unless that entity already holds a record of the same
  party (``duplicates="forbid"``, the default).  Records that join no existing entity
  form new entities and get new IDs, issued in record order.
* **IDs** are ``HMAC-SHA256(salt, counter)`` truncated to 128 bits (32 hex characters).
  The salt is 32 random bytes per project, so IDs reveal nothing about the records and two
  projects' IDs cannot be joined; with the same salt, the same batches in the same order
  give the same IDs (determinism).  The salt is stored with the index: protect the index
  directory like the encodings it holds.
* **An ID never changes** for a record, except by a merge or a move.
* **Merges.**  When a new record links two existing entities (it matches records of both,
  and the merged entity would still hold at most one record per party), they merge.  The
  *oldest* entity (issued first; lowest counter) survives; the others become *aliases* of
  it: their records take the survivor's ID and the alias is recorded
  (:meth:`EntityIndex.aliases`) so releases can report "ID X is now ID Y".  Pass
  ``allow_merges=False`` to forbid merges: the new record then joins only its best
  entity.
* **Moves** are logged (:attr:`EntityIndex.moved_record` and the following fields): an
  updated record whose new details prove it belongs to another entity
  (``link_changes`` decides), or an operator's explicit :meth:`EntityIndex.move_record`.
* **Withdrawn** records leave the index with their keys and encodings; their entities
  keep their IDs, which are never issued again, even if left empty.

Storage
-------
:meth:`EntityIndex.save` writes a directory of ``.npy`` files (loaded with
``allow_pickle=False``) plus ``meta.json``, inside a version folder of the index
directory.  A save writes a hidden temporary folder, renames it into place, and then
atomically replaces the ``CURRENT`` pointer file (``os.replace``); only then are older
versions removed.  A crash or error at any point leaves ``CURRENT`` naming a complete
earlier version.  One process at a time may save to an index directory.

Longer than 500 lines because :class:`EntityIndex` is one immutable value whose linking,
moving, withdrawing and saving all keep the same arrays consistent; the greedy linking
itself is :mod:`~linkage_unit.matching.agglomeration`'s.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from encoder.atomic import atomic_write
from linkage_unit.matching.agglomeration import (
    greedy_union,
    labels_by_first_appearance,
    order_by_score,
    party_masks,
)
from linkage_unit.matching.bitarrays import check_bits
from linkage_unit.matching.candidates import Candidates, CandidatesLike
from linkage_unit.matching.solving import Duplicates, check_duplicates

__all__ = [
    "FORMAT_VERSION",
    "ID_LENGTH",
    "AddResult",
    "EntityIndex",
    "content_keys",
]

#: Version of the on-disk layout written by :meth:`EntityIndex.save`.
FORMAT_VERSION: Final = 1
#: Length of an entity ID in hexadecimal characters (128 bits).
ID_LENGTH: Final = 32

_SALT_BYTES: Final = 32
_ID_DOMAIN: Final = b"pacelink/entity-id/v1:"
_CURRENT: Final = "CURRENT"
_META: Final = "meta.json"

_INT_FIELDS: Final = (
    "party",
    "entity",
    "first_entity",
    "batch",
    "alias_of",
    "created_batch",
    "merged_batch",
    "moved_record",
    "moved_from",
    "moved_to",
    "moved_batch",
)


def _entity_id(salt: bytes, number: int) -> str:
    """The opaque ID of the entity issued ``number``-th in the project keyed by ``salt``."""
    message = _ID_DOMAIN + number.to_bytes(8, "big")
    return hmac.new(salt, message, hashlib.sha256).hexdigest()[:ID_LENGTH]


def _issue_ids(salt: bytes, start: int, count: int) -> NDArray[np.str_]:
    """IDs of the entity numbers ``start .. start + count - 1`` ("" in an unnamed index)."""
    if not salt:
        return np.full(count, "", dtype="<U1")
    ids = [_entity_id(salt, start + k) for k in range(count)]
    return np.asarray(ids, dtype=f"<U{ID_LENGTH}")


def content_keys(bits: NDArray[np.uint8]) -> NDArray[np.str_]:
    """Default record keys: a 128-bit hash of each encoding."""
    keys = [hashlib.blake2b(row.tobytes(), digest_size=16).hexdigest() for row in bits]
    return np.asarray(keys, dtype=f"<U{2 * 16}")


def _i64(values: ArrayLike | Sequence[int] = ()) -> NDArray[np.int64]:
    return np.asarray(values, dtype=np.int64)


def _strings(values: ArrayLike) -> NDArray[np.str_]:
    array = np.asarray(values)
    if array.dtype.kind != "U":
        array = array.astype(str)
    return array.reshape(-1)


@dataclass(frozen=True, eq=False)
class AddResult:
    """What :meth:`EntityIndex.add_records` did: the new index and the merges it made."""

    index: EntityIndex
    merged_from: NDArray[np.str_]
    merged_into: NDArray[np.str_]


@dataclass(frozen=True, eq=False)
class EntityIndex:
    """Records, their entities and the entities' stable IDs; immutable.

    Create one with :meth:`empty` or :meth:`load`; every change returns a new index.
    Records are numbered in the order they were added (their *record number*), entities in
    the order they were issued (their *entity number*, which orders them by age).

    Attributes:
        salt: Project secret from which IDs are derived.
        n_batches: Batches linked so far (the next batch gets this number).
        filter_bytes: Bytes per encoding (0 until the first batch).
        party: Party of each record.
        key: Partner key of each record (unique within its party).
        bits: Encoding of each record, ``(n_records, filter_bytes)``.
        entity: Current (canonical) entity number of each record.
        first_entity: Entity number each record was given when it was added.
        batch: Batch in which each record was added.
        entity_id: ID of each entity number.
        alias_of: For an entity merged into another, the surviving entity number; else -1.
        created_batch: Batch that created each entity.
        merged_batch: Batch (or move) that made each entity an alias; -1 if it is not one.
        moved_record: Record number of each logged manual move.
        moved_from: Entity number the moved record left.
        moved_to: Entity number the moved record joined.
        moved_batch: Value of ``n_batches`` when the move was made.
    """

    # Kept out of reprs: with the salt, anyone holding an index could issue its IDs.
    salt: bytes = field(repr=False)
    n_batches: int
    filter_bytes: int
    party: NDArray[np.int64]
    key: NDArray[np.str_]
    bits: NDArray[np.uint8]
    entity: NDArray[np.int64]
    first_entity: NDArray[np.int64]
    batch: NDArray[np.int64]
    entity_id: NDArray[np.str_]
    alias_of: NDArray[np.int64]
    created_batch: NDArray[np.int64]
    merged_batch: NDArray[np.int64]
    moved_record: NDArray[np.int64]
    moved_from: NDArray[np.int64]
    moved_to: NDArray[np.int64]
    moved_batch: NDArray[np.int64]

    # ------------------------------------------------------------------ construction

    @classmethod
    def empty(cls, salt: bytes | None = None) -> EntityIndex:
        """A new index with no records.

        Args:
            salt: The project's secret salt (at least 16 bytes).  ``None`` draws 32 random
                bytes, which is what a real project should do; pass a fixed salt only to
                reproduce a run.

        Returns:
            An empty index.

        Raises:
            ValueError: If ``salt`` is shorter than 16 bytes.
        """
        if salt is None:
            salt = secrets.token_bytes(_SALT_BYTES)
        if not isinstance(salt, bytes) or len(salt) < 16:
            raise ValueError("salt must be at least 16 bytes")
        none = _i64()
        return cls(
            salt=salt,
            n_batches=0,
            filter_bytes=0,
            party=none,
            key=np.zeros(0, dtype="<U1"),
            bits=np.zeros((0, 0), dtype=np.uint8),
            entity=none,
            first_entity=none,
            batch=none,
            entity_id=np.zeros(0, dtype=f"<U{ID_LENGTH}"),
            alias_of=none,
            created_batch=none,
            merged_batch=none,
            moved_record=none,
            moved_from=none,
            moved_to=none,
            moved_batch=none,
        )

    @classmethod
    def unnamed(cls) -> EntityIndex:
        """A new index whose entities are numbered but get no IDs (all "").

        For a one-off linkage whose result is entity numbers (`pacelink link`), which then
        spends neither the time to derive an ID per entity nor the memory to hold it.
        """
        empty = cls.empty(b"\0" * 16)
        return replace(empty, salt=b"", entity_id=np.zeros(0, dtype="<U1"))

    # ------------------------------------------------------------------ queries

    @property
    def n_records(self) -> int:
        """Number of records."""
        return len(self.party)

    @property
    def n_entities(self) -> int:
        """Number of current entities that hold records (aliases and emptied ones not counted)."""
        return int(np.count_nonzero(np.bincount(self.entity, minlength=len(self.entity_id))))

    @property
    def record_ids(self) -> NDArray[np.str_]:
        """Current entity ID of every record, by record number."""
        return self.entity_id[self.entity]

    def aliases(self) -> tuple[NDArray[np.str_], NDArray[np.str_]]:
        """Every merged-away ID and the current ID it stands for.

        Returns:
            ``(alias_ids, current_ids)``, in the order the aliases were issued.
        """
        merged = np.flatnonzero(self.alias_of >= 0)
        return self.entity_id[merged], self.entity_id[self.alias_of[merged]]

    def resolve(self, ids: ArrayLike) -> NDArray[np.str_]:
        """The current ID for each given ID (itself unless it was merged away).

        Raises:
            KeyError: If an ID was never issued by this index.
        """
        wanted = _strings(ids)
        numbers = self._entity_numbers(wanted)
        canonical = np.where(self.alias_of[numbers] >= 0, self.alias_of[numbers], numbers)
        return self.entity_id[canonical]

    def lookup(self, party: int, keys: ArrayLike) -> NDArray[np.str_]:
        """Current IDs of records of ``party`` by key; ``""`` for keys not in the index."""
        wanted = _strings(keys)
        found, record = self._find_records(int(party), wanted)
        out = np.full(len(wanted), "", dtype=f"<U{ID_LENGTH}")
        out[found] = self.entity_id[self.entity[record[found]]]
        return out

    def find_records(
        self, party: int, keys: ArrayLike
    ) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
        """For each key: whether ``party`` has a record with it, and its record number."""
        return self._find_records(int(party), _strings(keys))

    def _entity_numbers(self, ids: NDArray[np.str_]) -> NDArray[np.int64]:
        order = np.argsort(self.entity_id, kind="stable")
        pos = np.searchsorted(self.entity_id[order], ids)
        pos = np.minimum(pos, max(len(order) - 1, 0))
        if not len(order) or np.any(self.entity_id[order][pos] != ids):
            raise KeyError("unknown entity ID")
        return order[pos].astype(np.int64)

    def _find_records(
        self, party: int, keys: NDArray[np.str_]
    ) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
        """For each key: is it a record of ``party``, and its record number (else 0)."""
        mine = np.flatnonzero(self.party == party)
        record = np.zeros(len(keys), dtype=np.int64)
        if not len(mine):
            return np.zeros(len(keys), dtype=np.bool_), record
        party_keys = self.key[mine]
        order = np.argsort(party_keys, kind="stable")
        pos = np.minimum(np.searchsorted(party_keys[order], keys), len(order) - 1)
        found = party_keys[order][pos] == keys
        record[found] = mine[order[pos[found]]]
        return found, record

    # ------------------------------------------------------------------ linking

    def add_records(
        self,
        parties: ArrayLike,
        keys: ArrayLike,
        bits: NDArray[np.uint8],
        to_stored: CandidatesLike,
        among: CandidatesLike | None = None,
        *,
        duplicates: Duplicates = "forbid",
        allow_merges: bool = True,
    ) -> AddResult:
        """Add new records of any parties, linked greedily through their candidate pairs.

        Pairs are visited by descending score (ties by the two nodes' numbers: existing
        entities by age, then the new records in the order given); a pair is refused when
        its two sides are already together, when the result would hold two records of one
        party (``"forbid"``; ``"linked"`` lets a pair of one party's own records share
        that party and nothing else: a partner's duplicate clients), or when it would
        merge two existing entities and ``allow_merges`` is false.  Existing entities
        brought together merge into the oldest; new records that joined no existing
        entity form new entities, issued in the order of their first record.

        Args:
            parties: Party of each new record.
            keys: Key of each new record, unique within its party and not in the index.
            bits: Their encodings, ``uint8`` ``(m, filter_bytes)``.
            to_stored: ``(i, j, score)``: new record ``i`` matches stored record ``j``.
            among: ``(i, j, score)`` between new records.
            duplicates: ``"forbid"``, ``"linked"`` or ``"allow"`` (no party constraint).
            allow_merges: Whether a new record may merge two existing entities.

        Returns:
            The new index (one more batch) and the merges made.

        Raises:
            ValueError: On bad shapes or indices, keys already held, or an unknown
                ``duplicates``.
        """
        check_duplicates(duplicates)
        row_party = np.asarray(parties, dtype=np.int64).reshape(-1)
        if len(row_party) and row_party.min() < 0:
            raise ValueError("parties must be non-negative")
        new_keys = _strings(keys)
        _, batch_bits = self._check_batch(0, bits)
        m = len(row_party)
        if len(new_keys) != m or len(batch_bits) != m:
            raise ValueError("parties, keys and bits differ in length")
        for p in np.unique(row_party):
            mine = new_keys[row_party == p]
            if len(np.unique(mine)) != len(mine) or self._find_records(int(p), mine)[0].any():
                raise ValueError(f"keys of party {p} must be new and unique")
        n_ent = len(self.entity_id)
        n_nodes = n_ent + m
        i, j, s = _check_candidates(to_stored, m, self.n_records, "candidates")
        same = self.party[j] == row_party[i]
        keep = ~same if duplicates == "forbid" else np.ones(len(i), dtype=np.bool_)
        u_parts = [n_ent + i[keep]]
        v_parts = [self.entity[j[keep]]]
        s_parts = [s[keep]]
        own_parts = [np.where(same, row_party[i], -1)[keep]]
        if among is not None:
            a, b, s2 = _check_candidates(among, m, m, "among")
            same2 = row_party[a] == row_party[b]
            keep = a != b
            if duplicates == "forbid":
                keep &= ~same2
            u_parts.append(n_ent + np.minimum(a, b)[keep])
            v_parts.append(n_ent + np.maximum(a, b)[keep])
            s_parts.append(s2[keep])
            own_parts.append(np.where(same2, row_party[a], -1)[keep])
        u = np.concatenate(u_parts)
        v = np.concatenate(v_parts)
        sc = np.concatenate(s_parts)
        own = np.concatenate(own_parts) if duplicates == "linked" else np.full(len(u), -1)

        all_party = np.concatenate([self.party, row_party])
        if duplicates == "allow":
            masks = np.zeros((n_nodes, 1), dtype=np.uint64)
        else:
            # An existing entity's party set is its records' parties; a new record's, its own.
            nodes = np.concatenate([self.entity, n_ent + np.arange(m, dtype=np.int64)])
            n_parties = int(all_party.max()) + 1 if len(all_party) else 1
            masks = party_masks(nodes, all_party, n_nodes, n_parties)
        anchored = np.zeros(n_nodes, dtype=np.bool_)
        anchored[:n_ent] = True
        lo, hi = np.minimum(u, v), np.maximum(u, v)
        order = order_by_score(sc, lo * max(n_nodes, 1) + hi)
        roots, _ = greedy_union(
            lo, hi, order, masks, anchored, duplicates != "allow", bool(allow_merges),
            own.astype(np.int64),
        )  # fmt: skip

        # Oldest existing entity of each component (n_nodes: none).
        oldest = np.full(n_nodes, n_nodes, dtype=np.int64)
        np.minimum.at(oldest, roots[:n_ent], np.arange(n_ent, dtype=np.int64))
        live = self.alias_of < 0
        absorbed = np.flatnonzero(live & (oldest[roots[:n_ent]] != np.arange(n_ent)))
        survivor = oldest[roots[absorbed]]

        # Entities of the new records: the component's oldest entity, or a new one.
        fresh_roots = roots[n_ent:]
        fresh_entity = oldest[fresh_roots]
        orphan = fresh_entity == n_nodes
        n_new = 0
        if np.any(orphan):
            roots_orphan = fresh_roots[orphan]
            label = labels_by_first_appearance(roots_orphan)
            fresh_entity[orphan] = n_ent + label
            n_new = int(label.max()) + 1
        this_batch = self.n_batches

        alias_of = np.concatenate([self.alias_of, np.full(n_new, -1, dtype=np.int64)])
        merged_batch = np.concatenate([self.merged_batch, np.full(n_new, -1, dtype=np.int64)])
        entity = self.entity.copy()
        if len(absorbed):
            remap = np.arange(n_ent + n_new, dtype=np.int64)
            remap[absorbed] = survivor
            entity = remap[entity]
            was_alias = alias_of >= 0
            alias_of[was_alias] = remap[alias_of[was_alias]]
            alias_of[absorbed] = survivor
            merged_batch[absorbed] = this_batch
            fresh_entity = remap[fresh_entity]

        entity_id = np.concatenate([self.entity_id, _issue_ids(self.salt, n_ent, n_new)])
        key_width = max(self.key.dtype.itemsize, new_keys.dtype.itemsize, 4) // 4
        width = batch_bits.shape[1] if m else self.filter_bytes
        # Nothing stored yet (a first run, offline linkage): no copy of the new bits.
        new_bits = batch_bits.reshape(m, width)
        stored_bits = np.concatenate([self.bits, new_bits]) if self.n_records else new_bits
        index = replace(
            self,
            n_batches=this_batch + 1,
            filter_bytes=width,
            party=all_party,
            key=np.concatenate([self.key, new_keys]).astype(f"<U{key_width}"),
            bits=stored_bits,
            entity=np.concatenate([entity, fresh_entity]),
            first_entity=np.concatenate([self.first_entity, fresh_entity]),
            batch=np.concatenate([self.batch, np.full(m, this_batch, dtype=np.int64)]),
            entity_id=entity_id,
            alias_of=alias_of,
            created_batch=np.concatenate(
                [self.created_batch, np.full(n_new, this_batch, dtype=np.int64)]
            ),
            merged_batch=merged_batch,
        )
        return AddResult(index, entity_id[absorbed], entity_id[survivor])

    def remove_records(self, records: ArrayLike) -> EntityIndex:
        """The index without the given records (withdrawn): their keys and encodings go.

        Their entities keep their IDs (never issued again) and may be left empty; logged
        moves of the removed records are dropped with them.
        """
        doomed = np.asarray(records, dtype=np.int64).reshape(-1)
        keep = np.ones(self.n_records, dtype=np.bool_)
        keep[doomed] = False
        new_number = np.cumsum(keep) - 1
        kept_moves = keep[self.moved_record]
        return replace(
            self,
            party=self.party[keep],
            key=self.key[keep],
            bits=self.bits[keep],
            entity=self.entity[keep],
            first_entity=self.first_entity[keep],
            batch=self.batch[keep],
            moved_record=new_number[self.moved_record[kept_moves]],
            moved_from=self.moved_from[kept_moves],
            moved_to=self.moved_to[kept_moves],
            moved_batch=self.moved_batch[kept_moves],
        )

    def replace_bits(self, records: ArrayLike, bits: NDArray[np.uint8]) -> EntityIndex:
        """The index with new encodings for the given records (updated details)."""
        rows = np.asarray(records, dtype=np.int64).reshape(-1)
        _, new_bits = self._check_batch(0, bits)
        if len(new_bits) != len(rows):
            raise ValueError("one encoding per record")
        stored = self.bits.copy()
        stored[rows] = new_bits
        return replace(self, bits=stored)

    def move_records(self, records: ArrayLike, targets: ArrayLike) -> EntityIndex:
        """Move records to other entities (entity numbers; -1: a new entity each), logged."""
        rows = np.asarray(records, dtype=np.int64).reshape(-1)
        to = np.asarray(targets, dtype=np.int64).reshape(-1).copy()
        fresh = np.flatnonzero(to < 0)
        n_ent = len(self.entity_id)
        to[fresh] = n_ent + np.arange(len(fresh), dtype=np.int64)
        new_ids = _issue_ids(self.salt, n_ent, len(fresh))
        entity = self.entity.copy()
        source = entity[rows]
        entity[rows] = to
        n_new = len(fresh)
        return replace(
            self,
            entity=entity,
            entity_id=np.concatenate([self.entity_id, new_ids]),
            alias_of=np.concatenate([self.alias_of, np.full(n_new, -1, dtype=np.int64)]),
            created_batch=np.concatenate(
                [self.created_batch, np.full(n_new, self.n_batches, dtype=np.int64)]
            ),
            merged_batch=np.concatenate([self.merged_batch, np.full(n_new, -1, dtype=np.int64)]),
            moved_record=np.concatenate([self.moved_record, rows]),
            moved_from=np.concatenate([self.moved_from, source]),
            moved_to=np.concatenate([self.moved_to, to]),
            moved_batch=np.concatenate(
                [self.moved_batch, np.full(len(rows), self.n_batches, dtype=np.int64)]
            ),
        )

    def move_record(
        self, party: int, key: str, to: str | None = None, *, allow_duplicates: bool = False
    ) -> EntityIndex:
        """Move one record to another entity, or to a new one; the only way records move.

        The move is logged (:attr:`moved_record` and the following fields).  The record's
        old entity keeps its ID even if it is left empty.

        Args:
            party: The record's party.
            key: The record's key.
            to: ID (or alias) of the entity to join; ``None`` issues a new entity.
            allow_duplicates: Permit joining an entity that already holds a record of
                ``party``.

        Returns:
            The new index.

        Raises:
            KeyError: If the record or the target ID is unknown.
            ValueError: If the target already holds a record of the party and
                ``allow_duplicates`` is false.
        """
        found, record = self._find_records(int(party), _strings([key]))
        if not found[0]:
            raise KeyError(f"no record of party {party} with key {key!r}")
        rec = int(record[0])
        source = int(self.entity[rec])
        entity_id = self.entity_id
        alias_of = self.alias_of
        created = self.created_batch
        merged = self.merged_batch
        if to is None:
            target = len(entity_id)
            new_id = _issue_ids(self.salt, target, 1)
            entity_id = np.concatenate([entity_id, new_id])
            alias_of = np.concatenate([alias_of, _i64([-1])])
            created = np.concatenate([created, _i64([self.n_batches])])
            merged = np.concatenate([merged, _i64([-1])])
        else:
            number = int(self._entity_numbers(_strings([to]))[0])
            target = number if self.alias_of[number] < 0 else int(self.alias_of[number])
            holds = (self.entity == target) & (self.party == int(party))
            if not allow_duplicates and np.any(holds & (np.arange(self.n_records) != rec)):
                raise ValueError("the target entity already holds a record of this party")
        entity = self.entity.copy()
        entity[rec] = target
        return replace(
            self,
            entity=entity,
            entity_id=entity_id,
            alias_of=alias_of,
            created_batch=created,
            merged_batch=merged,
            moved_record=np.concatenate([self.moved_record, _i64([rec])]),
            moved_from=np.concatenate([self.moved_from, _i64([source])]),
            moved_to=np.concatenate([self.moved_to, _i64([target])]),
            moved_batch=np.concatenate([self.moved_batch, _i64([self.n_batches])]),
        )

    def _check_batch(self, party: int, bits: NDArray[np.uint8]) -> tuple[int, NDArray[np.uint8]]:
        if isinstance(party, bool) or not isinstance(party, int | np.integer) or party < 0:
            raise ValueError(f"party must be a non-negative integer, got {party!r}")
        array = check_bits("bits", bits)
        if self.filter_bytes and array.shape[1] != self.filter_bytes:
            raise ValueError(
                f"filters of {array.shape[1]} bytes, but the index holds {self.filter_bytes}"
            )
        return int(party), array

    # ------------------------------------------------------------------ storage

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index atomically under directory ``path`` (created if needed).

        Args:
            path: The index directory.

        Returns:
            The version folder now named by ``path/CURRENT``.
        """
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        name = f"v{self.n_batches:06d}-{secrets.token_hex(6)}"
        tmp = root / f".tmp-{name}"
        tmp.mkdir()
        try:
            for field in (*_INT_FIELDS, "key", "bits", "entity_id"):
                file = tmp / f"{field}.npy"
                with open(file, "wb") as handle:
                    np.save(handle, getattr(self, field), allow_pickle=False)
                    handle.flush()
                    os.fsync(handle.fileno())
            meta = {
                "format_version": FORMAT_VERSION,
                "salt": self.salt.hex(),
                "n_batches": self.n_batches,
                "filter_bytes": self.filter_bytes,
                "n_records": self.n_records,
                "n_entity_numbers": len(self.entity_id),
            }
            _write_synced(tmp / _META, json.dumps(meta, indent=2, sort_keys=True))
            final = root / name
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(root)
        with atomic_write(root / _CURRENT) as pointer:
            pointer.write(name + "\n")
        _fsync_dir(root)
        for stale in root.iterdir():
            if stale.name == name:
                continue
            if stale.is_dir() and stale.name.startswith(("v", ".tmp-")):
                shutil.rmtree(stale, ignore_errors=True)
            elif stale.name.startswith(f".{_CURRENT}."):  # a pointer a crash left behind
                stale.unlink(missing_ok=True)
        return final

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EntityIndex:
        """Read the version of the index that ``path/CURRENT`` names.

        Raises:
            FileNotFoundError: If ``path`` holds no saved index.
            ValueError: If the files are inconsistent or of an unknown format version.
        """
        root = Path(path)
        name = (root / _CURRENT).read_text(encoding="utf-8").strip()
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad {_CURRENT} pointer {name!r}")
        folder = root / name
        meta: dict[str, Any] = json.loads((folder / _META).read_text(encoding="utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported format version {meta.get('format_version')!r}")
        arrays = {
            field: np.load(folder / f"{field}.npy", allow_pickle=False)
            for field in (*_INT_FIELDS, "key", "bits", "entity_id")
        }
        index = cls(
            salt=bytes.fromhex(meta["salt"]),
            n_batches=int(meta["n_batches"]),
            filter_bytes=int(meta["filter_bytes"]),
            **arrays,
        )
        index._validate(int(meta["n_records"]), int(meta["n_entity_numbers"]))
        return index

    def _validate(self, n_records: int, n_entities: int) -> None:
        for name in _INT_FIELDS:
            if getattr(self, name).dtype != np.int64:
                raise ValueError(f"{name} must be int64")
        per_record = (self.party, self.key, self.entity, self.first_entity, self.batch)
        per_entity = (self.entity_id, self.alias_of, self.created_batch, self.merged_batch)
        moves = (self.moved_record, self.moved_from, self.moved_to, self.moved_batch)
        if any(len(a) != n_records for a in per_record) or self.bits.shape[0] != n_records:
            raise ValueError("record arrays do not have the recorded length")
        if any(len(a) != n_entities for a in per_entity):
            raise ValueError("entity arrays do not have the recorded length")
        if len({len(a) for a in moves}) != 1:
            raise ValueError("move log arrays differ in length")
        if self.bits.dtype != np.uint8 or (n_records and self.bits.shape[1] != self.filter_bytes):
            raise ValueError("bits do not match filter_bytes")
        if n_records and (self.entity.min() < 0 or self.entity.max() >= n_entities):
            raise ValueError("record entity out of range")
        if self.key.dtype.kind != "U" or self.entity_id.dtype.kind != "U":
            raise ValueError("keys and IDs must be unicode arrays")


def _check_candidates(
    candidates: CandidatesLike, n_rows: int, n_other: int, what: str
) -> Candidates:
    checked = Candidates.checked(candidates, what)
    if len(checked.i) and (checked.i.max() >= n_rows or checked.j.max() >= n_other):
        raise ValueError(f"{what}: index out of range")
    return checked


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
