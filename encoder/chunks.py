"""Chunk encoding: one chunk's records standardised, hashed, folded and hardened, on worker threads.

Work is shared wherever records repeat: each chunk's columns are dictionary-encoded, so a
value is standardised, validated and hashed once per chunk however many records hold it,
and token hashes are remembered across chunks. Derived features are built from their
sources' distinct combinations, not row by row. A schema's decoys are made per chunk from
the chunk's own encoded records, encoded the same way and put at random rows among them.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from encoder.formatting import FeatureFormatter, Formatted
from encoder.hardening import (
    Hardener,
    HardeningKeys,
    decoy_count,
    decoy_positions,
    decoy_sources,
)
from encoder.hashing import FeatureHasher, derive_keys, fold_xor, hashers_for
from encoder.keymap import DECOY_LOCAL_ID
from encoder.keys import PSEUDONYM_BYTES, RecordKey, Secret
from encoder.outputs import AS_MISSING, REJECTED
from encoder.schema import LinkageSchema, RecordSalt, derived_value

__all__ = [
    "ChunkEncoder",
    "ChunkResult",
    "EncodingKeys",
    "encode_in_worker_thread",
    "init_worker_thread",
]

_U8 = np.ndarray[Any, np.dtype[np.uint8]]
# Derived features number each row's combination of source values in an int64.
_CODE_LIMIT = 1 << 62
# Draws of a chunk's decoys before settling for fewer (each draw replaces the invalid ones).
_DECOY_ATTEMPTS = 8


@dataclass(frozen=True, repr=False)
class EncodingKeys:
    """Every key a run's chunk encoders need, derived from the secret once per run.

    Worker threads are handed these, never the secret itself.

    Attributes:
        features: Per schema field, its key pair (`encoder.hashing.derive_keys`).
        hardening: The hardening steps' keys; None when the schema hardens nothing.
        record_key: The partner's record key (decoy pseudonyms), if it has one.
    """

    features: tuple[tuple[bytes, ...], ...]
    hardening: HardeningKeys | None
    record_key: RecordKey | None

    @classmethod
    def derive(
        cls, schema: LinkageSchema, secret: Secret, record_key: RecordKey | None
    ) -> EncodingKeys:
        """Derive the keys of a run under `schema` from `secret`."""
        return cls(
            features=derive_keys(schema, secret),
            hardening=HardeningKeys.derive(schema, secret) if schema.hardening.active else None,
            record_key=record_key,
        )

    def __repr__(self) -> str:
        """Redacted: the keys stand for the secret."""
        return "EncodingKeys(<redacted>)"


@dataclass(frozen=True)
class _Column:
    """A dictionary-encoded column: `uniques[indices[r]]` is row r's value."""

    indices: np.ndarray[Any, np.dtype[np.int32]]
    uniques: pa.Array


@dataclass
class ChunkResult:
    """One chunk's encodings, and what happened to each of its rows."""

    first_row: int
    # folded (and hardened) filters of the active, valid rows, in row order, with the
    # chunk's decoys (if any) at the rows `decoys`
    bits: _U8
    valid: np.ndarray[Any, np.dtype[np.bool_]]  # over all rows of the chunk
    # (data-row number, feature, action, reason), sorted; action: rejected / treated as missing
    rejects: list[tuple[int, str, str, str]]
    as_missing: Counter[str]
    present: Counter[str]  # of the real records
    decoys: np.ndarray[Any, np.dtype[np.int64]] = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64)
    )
    decoy_keys: _U8 | None = None  # the decoys' pseudonyms (with a record key)
    decoy_present: Counter[str] = field(default_factory=Counter)

    def with_decoys(self, ids: pa.Array, pseudonyms: _U8 | None) -> tuple[pa.Array, _U8 | None]:
        """The chunk's local IDs and pseudonyms by output row.

        A decoy's row has "" (and the decoy's own pseudonym), the other rows the real
        records', in order.
        """
        n_out = self.bits.shape[0]
        is_decoy = np.zeros(n_out, dtype=bool)
        is_decoy[self.decoys] = True
        source = np.full(n_out, len(ids), dtype=np.int64)  # the "" appended after the IDs
        source[~is_decoy] = np.arange(len(ids))
        all_ids = pa.concat_arrays([ids.cast(pa.string()), pa.array([DECOY_LOCAL_ID], pa.string())])
        if pseudonyms is not None:
            assert self.decoy_keys is not None
            full = np.empty((n_out, PSEUDONYM_BYTES), dtype=np.uint8)
            full[~is_decoy] = pseudonyms
            full[is_decoy] = self.decoy_keys
            pseudonyms = full
        return all_ids.take(pa.array(source)), pseudonyms


@dataclass
class _Rows:
    """Unfolded filters of a set of records, and what their values were."""

    full: _U8  # (n, hash_length / 8)
    ok: np.ndarray[Any, np.dtype[np.bool_]]  # not rejected
    rejected: list[tuple[int, str, str]]  # (row, feature, reason): an invalid value rejects
    as_missing: list[tuple[int, str, str]]  # (row, feature, reason): kept, value missing
    present: dict[str, np.ndarray[Any, np.dtype[np.bool_]]]  # feature → row has a value
    salts: list[str] | None  # the distinct record salts (None: the schema has none)
    salt_rows: np.ndarray[Any, np.dtype[np.int32]] | None  # row r's salt: salts[salt_rows[r]]


class ChunkEncoder:
    """Encodes chunks of dictionary-encoded columns; holds caches that persist across chunks."""

    def __init__(self, schema: LinkageSchema, keys: EncodingKeys, date_format: str | None) -> None:
        """Prepare hashers, formatters and hardening from keys derived once for the run."""
        self.schema = schema
        self.hashers: dict[str, FeatureHasher] = hashers_for(schema, keys.features)
        self.formatters = {f.name: FeatureFormatter(f, date_format) for f in schema.hashed_features}
        self._sources = {n for f in schema.hashed_features for n in f.extension.derived_from or ()}
        hardening = schema.hardening
        self.hardener = (
            None if keys.hardening is None else Hardener(schema, keys.hardening, keys.record_key)
        )
        self._salt = hardening.record_salt

    def encode(
        self,
        first_row: int,
        n_rows: int,
        columns: Mapping[str, pa.Array | None],
        active: np.ndarray[Any, np.dtype[np.bool_]],
    ) -> ChunkResult:
        """Encode one chunk; `columns` are the raw text columns (None: optional and absent).

        Only `active` rows (consent given, local ID present) are looked at: the values of
        the others are never standardised or hashed. With decoys, the result's rows are the
        chunk's records with its decoys among them.
        """
        selected = np.flatnonzero(active)
        take = None if selected.size == n_rows else pa.array(selected)
        taken = {
            name: raw if raw is None or take is None else raw.take(take)
            for name, raw in columns.items()
        }
        rows = self._rows(taken, selected.size)
        ok = rows.ok
        rejects = [
            (first_row + int(selected[r]), name, REJECTED, reason)
            for r, name, reason in rows.rejected
        ]
        keep = np.flatnonzero(ok)
        bits = self._finish(rows, None if keep.size == selected.size else keep)
        valid = np.zeros(n_rows, dtype=bool)
        valid[selected[keep]] = True
        counts: Counter[str] = Counter(
            {name: int(mask[keep].sum()) for name, mask in rows.present.items()}
        )
        # A record rejected for one field is not encoded at all: its other invalid values
        # were not "treated as missing", and are neither listed nor counted as such.
        as_missing: Counter[str] = Counter()
        for r, name, reason in rows.as_missing:
            if ok[r]:
                rejects.append((first_row + int(selected[r]), name, AS_MISSING, reason))
                as_missing[name] += 1
        rejects.sort()
        result = ChunkResult(first_row, bits, valid, rejects, as_missing, counts)
        if self.hardener is not None and self.schema.hardening.decoys and keep.size:
            self._add_decoys(result, taken, keep)
        result.bits = np.ascontiguousarray(result.bits)
        return result

    def _finish(self, rows: _Rows, keep: np.ndarray[Any, Any] | None) -> _U8:
        """Fold the kept rows' filters as clkhash does, then harden them."""
        full = rows.full if keep is None else rows.full[keep]
        bits = fold_xor(full, self.schema.xor_folds)
        if self.hardener is None:
            return bits
        salt_rows = rows.salt_rows
        if salt_rows is not None and keep is not None:
            salt_rows = salt_rows[keep]
        return self.hardener.harden(bits, rows.salts, salt_rows)

    def _rows(self, columns: Mapping[str, pa.Array | None], n: int) -> _Rows:
        """Standardise, validate and hash `n` records given by their raw columns."""
        schema = self.schema
        full = np.zeros((n, schema.hash_length // 8), dtype=np.uint8)
        ok = np.ones(n, dtype=bool)
        rejected: list[tuple[int, str, str]] = []
        missing_rows: list[tuple[int, str, str]] = []
        present_rows: dict[str, np.ndarray[Any, np.dtype[np.bool_]]] = {}
        sources: dict[str, _Source] = {}
        salts: list[str] | None = None
        salt_rows: np.ndarray[Any, np.dtype[np.int32]] | None = None
        salt = self._salt
        if salt is not None:  # until the salt feature's column says otherwise: all missing
            salts, salt_rows = [""], np.zeros(n, dtype=np.int32)
        for feature in schema.hashed_features:
            formatter = self.formatters[feature.name]
            if feature.extension.derived_from:
                column = _derive(
                    [sources.get(name) for name in feature.extension.derived_from],
                    n,
                    feature.extension.derive,
                )
                done = formatter.format_derived(column.uniques)
            else:
                raw = columns.get(feature.name)
                if raw is None:  # optional feature whose column is absent
                    continue
                column = _dictionary(raw)
                done = formatter.format_array(column.uniques)
            formatted = pa.array(done.values, pa.string())
            if feature.name in self._sources:
                sources[feature.name] = (column, done, formatted)
            if salt is not None and feature.name == salt.feature:
                salts, salt_rows = _salts(salt, column, done, formatted)
            present, invalid_reason = done.present, done.invalid
            table = self.hashers[feature.name].filters(formatted)
            if invalid_reason:
                bad = np.fromiter(invalid_reason, dtype=np.int64)
                table[bad] = 0  # an invalid value sets no bits (when kept as missing)
                bad_mask = np.zeros(len(column.uniques), dtype=bool)
                bad_mask[bad] = True
                hit_rows = np.flatnonzero(bad_mask[column.indices])
                into = missing_rows if feature.extension.on_invalid == "missing" else rejected
                if into is rejected:
                    ok[hit_rows] = False
                for r in hit_rows.tolist():
                    into.append((r, feature.name, invalid_reason[int(column.indices[r])]))
            _or_rows(full, table, column.indices)
            present_rows[feature.name] = present[column.indices]
        return _Rows(full, ok, rejected, missing_rows, present_rows, salts, salt_rows)

    def _add_decoys(
        self, result: ChunkResult, taken: Mapping[str, pa.Array | None], keep: np.ndarray[Any, Any]
    ) -> None:
        """Put the chunk's decoys among its records.

        Each is a recombination of the records' raw values (each source feature's value
        from a different record), encoded as they are; derived features are built from
        those values as usual.
        """
        hardener = self.hardener
        assert hardener is not None
        n_real = keep.size
        count = decoy_count(self.schema.hardening.decoys, n_real)
        if not count:
            return
        rng, seed = hardener.decoy_generator(result.first_row, result.bits)
        names = [name for name, raw in taken.items() if raw is not None]
        parts: list[_U8] = []
        present: Counter[str] = Counter()
        made = 0
        for _ in range(_DECOY_ATTEMPTS):
            # A recombination can be invalid where no record was (a derived feature's
            # length limit): such decoys are drawn again.
            picks = decoy_sources(rng, n_real, len(names), count - made)
            decoy_columns: dict[str, pa.Array | None] = dict.fromkeys(taken)
            for f, name in enumerate(names):
                raw = taken[name]
                assert raw is not None
                decoy_columns[name] = raw.take(pa.array(keep[picks[:, f]]))
            rows = self._rows(decoy_columns, count - made)
            good = np.flatnonzero(rows.ok)
            if good.size:
                parts.append(self._finish(rows, None if good.size == rows.ok.size else good))
                present.update({n: int(m[good].sum()) for n, m in rows.present.items()})
                made += good.size
            if made == count:
                break
        if not made:
            return
        decoys = np.concatenate(parts)
        at = decoy_positions(rng, n_real, made)
        out = np.empty((n_real + made, decoys.shape[1]), dtype=np.uint8)
        is_decoy = np.zeros(n_real + made, dtype=bool)
        is_decoy[at] = True
        out[is_decoy] = decoys
        out[~is_decoy] = result.bits
        result.bits = out
        result.decoys = at
        result.decoy_keys = hardener.decoy_pseudonyms(seed, made)
        result.decoy_present = present


def _salts(
    salt: RecordSalt, column: _Column, done: Formatted, formatted: pa.Array
) -> tuple[list[str], np.ndarray[Any, np.dtype[np.int32]]]:
    """The distinct record salts of a chunk, and each row's.

    A salt is the slice of the salt feature's hashed value (dates as YYYYMMDD), "" where
    the value is missing or invalid.
    """
    sliced = pc.utf8_slice_codeunits(formatted, salt.start, salt.end)
    sliced = pc.if_else(pa.array(done.present, pa.bool_()), sliced, "")
    encoded = pc.dictionary_encode(sliced)
    per_unique = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    salts: list[str] = encoded.dictionary.to_pylist()
    return salts, per_unique[column.indices]


@njit(cache=True, nogil=True)
def _or_rows(out: _U8, table: _U8, rows: np.ndarray[Any, Any]) -> None:
    """out[r] |= table[rows[r]] for every r, without the temporary `table[rows]`."""
    width = out.shape[1]
    for r in range(out.shape[0]):
        src = rows[r]
        for b in range(width):
            out[r, b] |= table[src, b]


# A derived feature's source in one chunk: its column, its formatted distinct values, and
# those values as an Arrow array (made once, for hashing and for deriving).
_Source = tuple[_Column, Formatted, pa.Array]


def _derive(sources: Sequence[_Source | None], n_rows: int, derive: str | None = None) -> _Column:
    """A derived feature's column: each row's present source values, sorted, space-joined.

    With `derive` (one source, checked by the schema), each distinct value is transformed
    as `derived_value` transforms it (several values may share a result: they hash alike).

    Works on distinct combinations, not rows: rows are coded by the tuple of their sources'
    distinct-value indices (missing as one more index), so each combination is built once.
    A source that is None (an absent optional column) is missing in every row.
    """
    present = [s for s in sources if s is not None]
    code = np.zeros(n_rows, dtype=np.int64)
    bound = 1  # code < bound
    for column, done, _ in present:
        radix = len(done.values) + 1
        if bound * radix >= _CODE_LIMIT:  # re-number (codes < n_rows) rather than overflow
            code = pd.factorize(code)[0].astype(np.int64)
            bound = n_rows
        # Missing and invalid values share the extra index len(values): both count as absent.
        local = np.where(done.present[column.indices], column.indices, radix - 1)
        code = code * radix + local
        bound *= radix
    # Hash-based, numbered in order of first appearance: a row is the first of its
    # combination exactly when its number exceeds every number before it.
    inverse = pd.factorize(code)[0]
    seen = np.maximum.accumulate(np.concatenate([[-1], inverse[:-1]]))
    first = np.flatnonzero(inverse > seen)
    parts = []  # per source: its hashed value in each combination, "" where absent
    for column, done, formatted in present:
        idx = column.indices[first]
        taken = formatted.take(pa.array(idx))
        parts.append(pc.if_else(pa.array(done.present[idx]), taken, ""))
    if derive is not None:
        # Distinct values only (one per combination), each as the scalar rule derives it.
        parts = [
            pa.array([derived_value([v or ""], derive) for v in p.to_pylist()], pa.string())
            for p in parts
        ]
    if not parts:
        values = pa.array([""] * first.size, pa.string())
    elif len(parts) == 1:
        values = parts[0]
    elif len(parts) == 2:
        # derived_value's rule for two values, vectorised: Arrow compares UTF-8 bytes, which
        # orders strings as Python's code-point comparison does; "" sorts first.
        a, b = parts
        a_first = pc.less_equal(a, b)
        low, high = pc.if_else(a_first, a, b), pc.if_else(a_first, b, a)
        values = pc.if_else(pc.equal(low, ""), high, pc.binary_join_element_wise(low, high, " "))
    else:
        columns = [p.to_pylist() for p in parts]
        values = pa.array([derived_value(row) for row in zip(*columns, strict=True)], pa.string())
    return _Column(inverse.astype(np.int32), values)


def _dictionary(array: pa.Array) -> _Column:
    encoded = pc.dictionary_encode(array)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    indices = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    return _Column(indices, encoded.dictionary)


# Workers are threads: the heavy steps (Arrow compute, numba kernels with nogil, pandas'
# factorisation, hashlib) release the GIL, and threads share the chunks without pickling or
# forking. Each thread owns a ChunkEncoder, so no cache is shared between threads.
_THREAD = threading.local()


def init_worker_thread(schema: LinkageSchema, keys: EncodingKeys, date_format: str | None) -> None:
    """Give a worker thread its own chunk encoder (a thread pool's initializer)."""
    _THREAD.encoder = ChunkEncoder(schema, keys, date_format)


def encode_in_worker_thread(
    first_row: int, n_rows: int, columns: Mapping[str, pa.Array | None], active: Any
) -> ChunkResult:
    """`ChunkEncoder.encode` by the calling worker thread's own encoder."""
    encoder: ChunkEncoder = _THREAD.encoder
    return encoder.encode(first_row, n_rows, columns, active)
