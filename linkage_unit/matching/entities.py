"""A persistent entity index: stable linkage IDs for records that arrive in batches.

Partners send their encodings (packed Bloom filters, ``uint8`` arrays ``(n, l // 8)``) in
batches, one party per batch.  :class:`EntityIndex` keeps every record seen so far, the
entity each belongs to and the opaque ID of every entity.  Linking a batch
(:meth:`EntityIndex.add_batch`, or :meth:`EntityIndex.link_candidates` with candidates
computed elsewhere) returns a *new* index; the old one is unchanged (the state is a frozen
dataclass of numpy arrays), so a failed or abandoned batch never corrupts anything.

The rules (also in ``docs/entities.md``)
----------------------------------------
* **Records are identified by (party, key).**  ``key`` is the partner's own opaque record
  key (pass ``keys=``); without keys a record's key is a hash of its encoding.  A record
  whose key is already in the index is *known*: it keeps its entity and ID, whatever its
  encoding is now (a changed encoding is reported in ``LinkResult.changed``, never acted
  on).  Linking the same batch twice therefore changes nothing (idempotent re-run).
* **New records** are linked greedily by descending score against the existing entities
  (through the candidate pairs of their records) and against each other: a record joins
  the entity of its best match unless that entity already holds a record of the same
  party (``duplicates="forbid"``, the default).  Records that join no existing entity
  form new entities and get new IDs, issued in batch row order.
* **IDs** are ``HMAC-SHA256(salt, counter)`` truncated to 128 bits (32 hex characters).
  The salt is 32 random bytes per project, so IDs reveal nothing about the records and two
  projects' IDs cannot be joined; with the same salt, the same batches in the same order
  give the same IDs (determinism).  The salt is stored with the index: protect the index
  directory like the encodings it holds.
* **An ID never changes** for a record, except by a merge.
* **Merges.**  When a new record links two existing entities (it matches records of both,
  and the merged entity would still hold at most one record per party), they merge.  The
  *oldest* entity (issued first; lowest counter) survives; the others become *aliases* of
  it: their records take the survivor's ID and the alias is recorded
  (:meth:`EntityIndex.aliases`) so releases can report "ID X is now ID Y".  Pass
  ``allow_merges=False`` to forbid merges: the new record then joins only its best
  entity.
* **Record moves** never happen automatically: a known record is never re-linked, even if
  later evidence suggests it belongs elsewhere.  An operator can move one explicitly with
  :meth:`EntityIndex.move_record`; every move is logged.

Storage
-------
:meth:`EntityIndex.save` writes a directory of ``.npy`` files (loaded with
``allow_pickle=False``) plus ``meta.json``, inside a version folder of the index
directory.  A save writes a hidden temporary folder, renames it into place, and then
atomically replaces the ``CURRENT`` pointer file (``os.replace``); only then are older
versions removed.  A crash or error at any point leaves ``CURRENT`` naming a complete
earlier version.  One process at a time may save to an index directory.
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

from linkage_unit.matching.similarity import DEFAULT_MAX_CANDIDATES, dice_candidates
from linkage_unit.matching.solving import Duplicates, _greedy_union, _order_by_score

__all__ = [
    "FORMAT_VERSION",
    "ID_LENGTH",
    "EntityIndex",
    "LinkResult",
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
_MASK_BITS: Final = 64

Candidates = tuple[ArrayLike, ArrayLike, ArrayLike]

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
class LinkResult:
    """What linking one batch did.

    All per-row arrays follow the rows of the batch as given.

    Attributes:
        index: The index after the batch (the index linked from is unchanged).
        ids: Entity ID of each row after the batch (merges applied).
        known: Whether the row's (party, key) was already in the index; its ID is then
            the one it had, and it was not re-linked.
        new_entity: Whether the row's entity was created by this batch.
        changed: Known rows whose encoding differs from the stored one (reported only:
            the stored encoding and the entity are kept; see :meth:`EntityIndex.move_record`).
        merged_from: IDs that became aliases in this batch.
        merged_into: The surviving ID of each entry of ``merged_from``.
    """

    index: EntityIndex
    ids: NDArray[np.str_]
    known: NDArray[np.bool_]
    new_entity: NDArray[np.bool_]
    changed: NDArray[np.bool_]
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

    # ------------------------------------------------------------------ queries

    @property
    def n_records(self) -> int:
        """Number of records."""
        return len(self.party)

    @property
    def n_entities(self) -> int:
        """Number of current entities (aliases not counted)."""
        return int(np.count_nonzero(self.alias_of < 0))

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

    def add_batch(
        self,
        party: int,
        bits: NDArray[np.uint8],
        *,
        threshold: float,
        keys: ArrayLike | None = None,
        duplicates: Duplicates = "forbid",
        allow_merges: bool = True,
        workers: int | None = None,
        max_candidates: int | None = DEFAULT_MAX_CANDIDATES,
    ) -> LinkResult:
        """Link a batch of one party's encodings against the index and add it.

        Candidate pairs (Dice >= ``threshold``) are computed between the batch's new records
        and the stored records of the other parties (with ``duplicates="allow"`` also the
        same party's, and the batch's records among themselves), then linked as
        :meth:`link_candidates` does.

        Args:
            party: The batch's party (a non-negative integer; parties appear as they come).
            bits: The batch's encodings, ``uint8`` ``(m, filter_bytes)``.
            threshold: Least Dice coefficient of a match, in ``(0, 1]``.
            keys: The partner's record keys (unique within the party), one per row;
                ``None`` keys each record by a hash of its encoding, so identical
                encodings of one party are one record.
            duplicates: ``"forbid"``: an entity holds at most one record per party;
                ``"allow"``: it may hold several (a partner file with duplicate clients).
            allow_merges: Whether a new record may merge two existing entities.
            workers: Threads for :func:`dice_candidates`.
            max_candidates: Passed to :func:`dice_candidates`.

        Returns:
            The :class:`LinkResult`; its ``index`` holds the batch.
        """
        party, batch_bits = self._check_batch(party, bits)
        batch_keys, first_row, _ = self._batch_keys(batch_bits, keys)
        known, _ = self._find_records(party, batch_keys)
        fresh_rows = first_row[~known[first_row]]
        fresh_bits = batch_bits[fresh_rows]

        others = self.party != party if duplicates == "forbid" else np.ones(self.n_records, bool)
        other_records = np.flatnonzero(others)
        cand_i: list[NDArray[np.int64]] = []
        cand_j: list[NDArray[np.int64]] = []
        cand_s: list[NDArray[np.float64]] = []
        if len(fresh_rows) and len(other_records):
            i, j, s = dice_candidates(
                fresh_bits,
                self.bits[other_records],
                threshold,
                max_candidates=max_candidates,
                workers=workers,
            )
            cand_i.append(fresh_rows[i])
            cand_j.append(other_records[j])
            cand_s.append(s)
        within: Candidates | None = None
        if duplicates == "allow" and len(fresh_rows) > 1:
            i, j, s = dice_candidates(
                fresh_bits, fresh_bits, threshold, max_candidates=max_candidates, workers=workers
            )
            upper = i < j
            within = (fresh_rows[i[upper]], fresh_rows[j[upper]], s[upper])
        candidates: Candidates = (
            (np.concatenate(cand_i), np.concatenate(cand_j), np.concatenate(cand_s))
            if cand_i
            else (_i64(), _i64(), np.zeros(0))
        )
        return self.link_candidates(
            party,
            batch_bits,
            candidates,
            within=within,
            keys=keys,
            duplicates=duplicates,
            allow_merges=allow_merges,
        )

    def link_candidates(
        self,
        party: int,
        bits: NDArray[np.uint8],
        candidates: Candidates,
        *,
        within: Candidates | None = None,
        keys: ArrayLike | None = None,
        duplicates: Duplicates = "forbid",
        allow_merges: bool = True,
    ) -> LinkResult:
        """Link a batch given its candidate pairs, and add it.

        Use this when the candidates come from elsewhere (blocking, another machine).
        Candidates of rows that are already known, and within-party candidates when
        ``duplicates="forbid"``, are ignored.

        Linking: every candidate pair joins a new record to the entity of a stored record
        (or, ``within``, to another new record).  Pairs are visited by descending score,
        ties by (batch row, entity number, other batch row) ascending; a pair is refused
        when the two sides are already together, when the result would hold two records
        of one party (``duplicates="forbid"``), or when it would merge two existing
        entities and ``allow_merges`` is false.  Existing entities brought together
        merge into the oldest; new records that joined no existing entity form new
        entities, issued in order of their first batch row.

        Args:
            party: The batch's party.
            bits: The batch's encodings, ``uint8`` ``(m, filter_bytes)``.
            candidates: ``(i, j, score)``: batch row ``i`` matches stored record number
                ``j`` (see :attr:`party`) with ``score``.
            within: ``(i, j, score)`` between batch rows, used with ``duplicates="allow"``.
            keys: As for :meth:`add_batch`.
            duplicates: As for :meth:`add_batch`.
            allow_merges: As for :meth:`add_batch`.

        Returns:
            The :class:`LinkResult`; its ``index`` holds the batch.

        Raises:
            ValueError: On bad shapes, indices out of range, duplicate keys or a filter
                width different from the index's.
        """
        if duplicates not in ("forbid", "allow"):
            raise ValueError(f'duplicates must be "forbid" or "allow", got {duplicates!r}')
        party, batch_bits = self._check_batch(party, bits)
        m = len(batch_bits)
        batch_keys, first_row, row_to_first = self._batch_keys(batch_bits, keys)
        known_row, known_record = self._find_records(party, batch_keys)
        fresh_rows = first_row[~known_row[first_row]]
        n_fresh = len(fresh_rows)
        fresh_pos = np.full(m, -1, dtype=np.int64)
        fresh_pos[fresh_rows] = np.arange(n_fresh, dtype=np.int64)

        n_ent = len(self.entity_id)
        n_nodes = n_ent + n_fresh
        u_parts: list[NDArray[np.int64]] = []
        v_parts: list[NDArray[np.int64]] = []
        s_parts: list[NDArray[np.float64]] = []
        i, j, s = _check_candidates(candidates, m, self.n_records, "candidates")
        keep = fresh_pos[i] >= 0
        if duplicates == "forbid":
            keep &= self.party[j] != party
        u_parts.append(n_ent + fresh_pos[i[keep]])
        v_parts.append(self.entity[j[keep]])
        s_parts.append(s[keep])
        if within is not None and duplicates == "allow":
            i, j, s = _check_candidates(within, m, m, "within")
            keep = (fresh_pos[i] >= 0) & (fresh_pos[j] >= 0) & (fresh_pos[i] != fresh_pos[j])
            a = n_ent + fresh_pos[i[keep]]
            b = n_ent + fresh_pos[j[keep]]
            u_parts.append(np.minimum(a, b))
            v_parts.append(np.maximum(a, b))
            s_parts.append(s[keep])
        u = np.concatenate(u_parts)
        v = np.concatenate(v_parts)
        sc = np.concatenate(s_parts)

        max_party = max(party, int(self.party.max()) if self.n_records else 0)
        words = max(1, -(-(max_party + 1) // _MASK_BITS))
        masks = np.zeros((n_nodes, words), dtype=np.uint64)
        record_bit = np.left_shift(np.uint64(1), (self.party % _MASK_BITS).astype(np.uint64))
        for w in range(words):
            in_word = self.party // _MASK_BITS == w
            np.bitwise_or.at(masks[:, w], self.entity[in_word], record_bit[in_word])
        masks[n_ent:, party // _MASK_BITS] = np.uint64(1) << np.uint64(party % _MASK_BITS)
        anchored = np.zeros(n_nodes, dtype=np.bool_)
        anchored[:n_ent] = True
        order = _order_by_score(sc, (u - n_ent) * max(n_nodes, 1) + v)
        roots, _ = _greedy_union(
            u, v, order, masks, anchored, duplicates == "forbid", bool(allow_merges),
            np.full(len(u), -1, dtype=np.int64),
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
        new_ids: list[str] = []
        if np.any(orphan):
            roots_orphan = fresh_roots[orphan]
            _, first, inverse = np.unique(roots_orphan, return_index=True, return_inverse=True)
            label = np.empty(len(first), dtype=np.int64)
            label[np.argsort(first, kind="stable")] = np.arange(len(first), dtype=np.int64)
            fresh_entity[orphan] = n_ent + label[inverse.reshape(-1)]
            new_ids = [_entity_id(self.salt, n_ent + k) for k in range(len(first))]
        n_new = len(new_ids)
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

        id_width = f"<U{ID_LENGTH}"
        entity_id = np.concatenate([self.entity_id, np.asarray(new_ids, dtype=id_width)])
        key_width = max(self.key.dtype.itemsize, batch_keys.dtype.itemsize) // 4
        index = replace(
            self,
            n_batches=this_batch + 1,
            filter_bytes=batch_bits.shape[1],
            party=np.concatenate([self.party, np.full(n_fresh, party, dtype=np.int64)]),
            key=np.concatenate([self.key, batch_keys[fresh_rows]]).astype(f"<U{key_width}"),
            bits=np.concatenate(
                [self.bits.reshape(-1, batch_bits.shape[1]), batch_bits[fresh_rows]]
            ),
            entity=np.concatenate([entity, fresh_entity]),
            first_entity=np.concatenate([self.first_entity, fresh_entity]),
            batch=np.concatenate([self.batch, np.full(n_fresh, this_batch, dtype=np.int64)]),
            entity_id=entity_id,
            alias_of=alias_of,
            created_batch=np.concatenate(
                [self.created_batch, np.full(n_new, this_batch, dtype=np.int64)]
            ),
            merged_batch=merged_batch,
        )

        # Per-row results (duplicate rows of a default key follow their first row).
        row_entity = np.empty(m, dtype=np.int64)
        first_known = known_row[first_row]
        row_entity[first_row[first_known]] = index.entity[known_record[first_row[first_known]]]
        row_entity[fresh_rows] = fresh_entity
        row_entity = row_entity[first_row[row_to_first]]
        known = known_row[first_row[row_to_first]]
        changed = np.zeros(m, dtype=np.bool_)
        if np.any(known):
            stored = self.bits[known_record[first_row[row_to_first]][known]]
            changed[known] = np.any(stored != batch_bits[known], axis=1)
        return LinkResult(
            index=index,
            ids=entity_id[row_entity],
            known=known,
            new_entity=row_entity >= n_ent,
            changed=changed,
            merged_from=entity_id[absorbed],
            merged_into=entity_id[survivor],
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
            new_id = np.asarray([_entity_id(self.salt, target)], dtype=f"<U{ID_LENGTH}")
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
        array = np.asarray(bits)
        if array.dtype != np.uint8 or array.ndim != 2:
            raise ValueError("bits must be a 2-D uint8 array (records x filter bytes)")
        if self.filter_bytes and array.shape[1] != self.filter_bytes:
            raise ValueError(
                f"filters of {array.shape[1]} bytes, but the index holds {self.filter_bytes}"
            )
        return int(party), np.ascontiguousarray(array)

    @staticmethod
    def _batch_keys(
        bits: NDArray[np.uint8], keys: ArrayLike | None
    ) -> tuple[NDArray[np.str_], NDArray[np.int64], NDArray[np.int64]]:
        """Keys of the rows, the first row of each distinct key, and each row's key slot."""
        if keys is None:
            batch_keys = content_keys(bits)
        else:
            batch_keys = _strings(keys)
            if len(batch_keys) != len(bits):
                raise ValueError(f"got {len(batch_keys)} keys for {len(bits)} records")
        _, first, inverse = np.unique(batch_keys, return_index=True, return_inverse=True)
        if keys is not None and len(first) != len(batch_keys):
            raise ValueError("keys must be unique within a batch")
        by_row = np.argsort(first, kind="stable")
        slot_of_unique = np.empty(len(first), dtype=np.int64)
        slot_of_unique[by_row] = np.arange(len(first), dtype=np.int64)
        return (
            batch_keys,
            first[by_row].astype(np.int64),
            slot_of_unique[inverse.reshape(-1)],
        )

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
        pointer = root / f".{_CURRENT}.tmp-{secrets.token_hex(6)}"
        try:
            _write_synced(pointer, name + "\n")
            os.replace(pointer, root / _CURRENT)
        except BaseException:
            pointer.unlink(missing_ok=True)
            raise
        _fsync_dir(root)
        for stale in root.iterdir():
            if stale.name == name:
                continue
            if stale.is_dir() and stale.name.startswith(("v", ".tmp-")):
                shutil.rmtree(stale, ignore_errors=True)
            elif stale.name.startswith(f".{_CURRENT}.tmp-"):
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
    candidates: Candidates, n_rows: int, n_other: int, what: str
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    i = np.asarray(candidates[0]).astype(np.int64, copy=False).reshape(-1)
    j = np.asarray(candidates[1]).astype(np.int64, copy=False).reshape(-1)
    s = np.asarray(candidates[2]).astype(np.float64, copy=False).reshape(-1)
    if not (len(i) == len(j) == len(s)):
        raise ValueError(f"{what}: i, j and score differ in length")
    if len(i) and (i.min() < 0 or i.max() >= n_rows or j.min() < 0 or j.max() >= n_other):
        raise ValueError(f"{what}: index out of range")
    if not np.isfinite(s).all():
        raise ValueError(f"{what}: scores must be finite")
    return i, j, s


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
