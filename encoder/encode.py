"""The encoding pipeline: read → consent → standardise → validate → hash → write, chunk by chunk.

Work is shared wherever records repeat: each chunk's columns are dictionary-encoded, so a
value is standardised, validated and hashed once per chunk however many records hold it,
and token hashes are remembered across chunks. Chunks are spread over worker threads and
written back in input order. Outputs (`.plk`, key map, rejects) are written under temporary
names and moved into place only when the whole run succeeded.

Checks that can fail a run come as early as they can: options (a date format) before the
file is opened, the header before any record is read, unique local IDs in a first pass over
the ID column alone, before any encoding work; the share of rejected records once all are
counted, before anything is moved into place. Row numbers in messages and in the rejects
file are the ones a spreadsheet shows (`TableReader.sheet_row`); the key map's rows are
0-based encoding rows, the rows of the `.plk` file.

Local IDs are used in their canonical form (`encoder.keymap`: surrounding whitespace
removed) by the key map, the duplicate check and, with a record key, the record pseudonyms
written after the bits; an ID with a control character rejects its record, since no
withdrawal list could name it.

A schema's hardening (`encoder.hardening`) is applied to each chunk's folded filters. Its
decoys are made per chunk from the chunk's own encoded records, encoded the same way and
put at random rows among them; their key-map rows have an empty local ID, and the `.plk`
header counts them as records.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import datetime as dt
import json
import math
import os
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from clkhash.field_formats import DateSpec, EnumSpec, InvalidEntryError, StringSpec
from numba import njit

from encoder.fileformat import (
    FORMAT_VERSION,
    Encodings,
    EncodingWriter,
    FeatureCoverage,
    InputSummary,
)
from encoder.hardening import Hardener, decoy_count, decoy_positions, decoy_sources
from encoder.hashing import FeatureHasher, fold_xor, hashers_for
from encoder.keymap import (
    DECOY_LOCAL_ID,
    KeyMapWriter,
    canonical_local_ids,
    has_control_characters,
    spreadsheet_safe,
)
from encoder.keys import PSEUDONYM_ALGORITHM, PSEUDONYM_BYTES, RecordKey, Secret, key_check_value
from encoder.read import Chunk, TableReader, describe_header, open_table, string_buffers
from encoder.schema import Feature, LinkageSchema, RecordSalt, derived_value
from encoder.standardise import (
    STANDARDISERS,
    InvalidValue,
    standardise_array,
    standardise_date,
)

__all__ = [
    "DEFAULT_CONSENT_VALUES",
    "DEFAULT_MAX_REJECT_RATE",
    "REJECTS_HEADER",
    "EncodeError",
    "EncodeOptions",
    "EncodeReport",
    "check_date_format",
    "encode_dataframe",
    "encode_file",
    "output_paths",
]

#: Consent values accepted as "yes" (compared case-insensitively, trimmed).
DEFAULT_CONSENT_VALUES = frozenset({"y", "yes", "true", "1", "t"})
#: A run fails when more than this share of the records with consent is rejected: so many
#: rejections mean swapped or wrongly mapped columns far more often than bad data.
DEFAULT_MAX_REJECT_RATE = 0.5
#: The rejects file's columns: the row as a spreadsheet numbers it, the field, what was done
#: (`rejected`: the record was not encoded; `treated as missing`: it was encoded without
#: that field), and why.
REJECTS_HEADER = ("input_row", "field", "action", "reason")
_REJECTED = "rejected"
_AS_MISSING = "treated as missing"
# Directives Python's strptime knows (`%:z` counted as `%z`).
_STRPTIME_DIRECTIVES = frozenset("aAwdbBmyYHIpMSfzZjUWcxXGuV%")
# Duplicate local IDs: how many groups a message lists, and rows per group.
_DUPLICATES_SHOWN = 5
_DUPLICATE_ROWS_SHOWN = 3
# Per feature and worker; bounds memory when values rarely repeat (ID-like fields).
_STANDARDISE_CACHE_LIMIT = 100_000
_U8 = np.ndarray[Any, np.dtype[np.uint8]]
# Derived features number each row's combination of source values in an int64.
_CODE_LIMIT = 1 << 62
# Draws of a chunk's decoys before settling for fewer (each draw replaces the invalid ones).
_DECOY_ATTEMPTS = 8


class EncodeError(ValueError):
    """The run cannot go on; the message names the file, row or field (never a value)."""


def check_date_format(fmt: str) -> None:
    """Refuse a `--date-format` strptime would not understand, before any data is read.

    A format needs at least one directive, and only directives strptime knows (`%Q` would
    otherwise reject every date, one record at a time).

    Raises:
        EncodeError: Naming --date-format and the unknown directive.
    """
    directives: list[str] = []
    i = 0
    while i < len(fmt):
        if fmt[i] != "%":
            i += 1
            continue
        if i + 1 >= len(fmt):
            raise EncodeError(f"--date-format {fmt!r}: ends with a lone '%'")
        code = fmt[i + 1]
        if code == ":" and fmt[i + 2 : i + 3] == "z":
            code, i = "z", i + 1
        if code not in _STRPTIME_DIRECTIVES:
            raise EncodeError(
                f"--date-format {fmt!r}: unknown directive %{code} (dates use %d %m %Y, "
                "e.g. --date-format %d/%m/%Y)"
            )
        directives.append(code)
        i += 2
    if not [d for d in directives if d != "%"]:
        raise EncodeError(
            f"--date-format {fmt!r}: no strptime directive such as %d, %m or %Y "
            "(e.g. --date-format %d/%m/%Y)"
        )


@dataclass(frozen=True)
class EncodeOptions:
    """How a partner's file maps onto the schema, and how to run.

    Attributes:
        id_column: Column of the partner's local record ID; without one, the data-row number
            is used as the local ID.
        columns: Feature name → column name, for features whose column is named differently.
        consent_column: Column recording consent; only records whose value is one of
            `consent_values` are encoded.
        date_format: strptime format forced on every date feature (default: detected);
            checked when the options are made.
        workers: Worker threads (1 encodes in the calling thread).
        chunk_rows: Records per chunk; bounds memory.
        max_reject_rate: The run fails (and writes nothing) when more than this share of
            the records with consent is rejected; 1 never fails.
        record_key: The partner's own record key: each encoded record gets the pseudonym of
            its canonical local ID (`encoder.keymap`), stored after the bits. Needs
            `id_column` (row numbers change between deliveries). Without it the linkage
            unit cannot recognise updated records or withdraw single ones.
    """

    id_column: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    consent_column: str | None = None
    consent_values: frozenset[str] = DEFAULT_CONSENT_VALUES
    date_format: str | None = None
    workers: int = 2
    chunk_rows: int = 50_000
    max_reject_rate: float = DEFAULT_MAX_REJECT_RATE
    record_key: RecordKey | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.record_key is not None and self.id_column is None:
            raise EncodeError(
                "--record-key needs --id-column: pseudonyms are made from your local record "
                "IDs (row numbers change from one delivery to the next)"
            )
        if self.date_format is not None:
            check_date_format(self.date_format)
        if not 0.0 <= self.max_reject_rate <= 1.0 or math.isnan(self.max_reject_rate):
            raise EncodeError(
                f"--max-reject-rate {self.max_reject_rate}: expected a fraction from 0 to 1"
            )


@dataclass
class EncodeReport:
    """What happened to every input record. `records_in` = encoded + excluded + rejected.

    `invalid_treated_as_missing` counts encoded records (never rejected ones) whose invalid
    value was encoded as missing; each is a `treated as missing` line of the rejects file.
    `record_keys` says whether the output carries record pseudonyms, and
    `record_key_check_value` names the record key that made them (None without).
    `decoys` counts the decoy records a schema's `hardening.decoys` added: extra rows of the
    `.plk` (and of the key map, with an empty local_id), made by the encoder, not input
    records, so not in `records_in`; the `.plk` holds `encoded + decoys` rows. This report
    stays with the partner: the `.plk` header does not tell decoys from records.
    """

    input: str
    records_in: int = 0
    encoded: int = 0
    excluded_no_consent: int = 0
    rejected: int = 0
    rejected_by_field: dict[str, int] = field(default_factory=dict)
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    invalid_treated_as_missing: dict[str, int] = field(default_factory=dict)
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    schema_fingerprint: str = ""
    key_check_value: str = ""
    record_keys: bool = False
    record_key_check_value: str | None = None
    decoys: int = 0
    bit_length: int = 0
    output: str | None = None
    key_map: str | None = None
    rejects_file: str | None = None
    seconds: float = 0.0
    records_per_second: float = 0.0

    def reconciles(self) -> bool:
        return self.records_in == self.encoded + self.excluded_no_consent + self.rejected

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"


# --------------------------------------------------------------------------- chunk encoding


@dataclass(frozen=True)
class _Column:
    """A dictionary-encoded column: `uniques[indices[r]]` is row r's value."""

    indices: np.ndarray[Any, np.dtype[np.int32]]
    uniques: pa.Array


@dataclass
class _ChunkResult:
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


_READ_SUFFIX = re.compile(r"\s*Read\b.*$", re.DOTALL)


def _entry_reason(exc: InvalidEntryError, spec: Any) -> str:
    """clkhash's message without the value it quotes (privacy)."""
    if isinstance(spec, DateSpec):
        return f"not a valid date in format {spec.format}"
    text = _READ_SUFFIX.sub("", str(exc)).strip()
    return text or "invalid value"


class _FeatureFormatter:
    """Standardise + clkhash-validate + clkhash-format the distinct values of one feature.

    For the common clkhash formats (plain strings, enums, dates written by our own date
    standardiser) validation and formatting are done here without clkhash's per-value
    overhead; the results are exactly clkhash's (tests compare both paths). Anything else
    goes through clkhash's own `validate` and `format_value`.
    """

    def __init__(self, feature: Feature, date_format: str | None) -> None:
        self.feature = feature
        spec = self.spec = feature.spec
        name = feature.extension.standardise
        self._standardise: Callable[[str], str] | None = None
        # When set, the standardiser's output is already clkhash-formatted and valid.
        self._preformatted = False
        if name == "date":
            self._standardise, self._preformatted = _date_standardiser(spec, date_format)
        elif name is not None:
            self._standardise = STANDARDISERS[name]
        self._check = _fast_check(spec)
        self._plain = _is_plain_string(spec)
        self._date_format = date_format
        self._cache: dict[str, tuple[str, bool, str | None]] = {}
        self._post = self._build_post()
        self._format = self._build()

    def format_array(self, uniques: pa.Array) -> _Formatted:
        """Formatted value, presence and invalidity of each distinct raw value of a chunk.

        Clean values take the standardiser's vectorised fast path (and, for plain string
        formats, a vectorised clkhash step too); the rest are standardised one by one, their
        results remembered across chunks (a cache hit costs less than the scalar path, but
        more than the vectorised one, which is therefore not cached).
        """
        kind = self.feature.extension.standardise
        fast = None
        if kind == "date":
            # Only when dates are detected (no forced format) and written as %Y%m%d.
            if self._preformatted and self._date_format is None:
                iso = standardise_array(kind, uniques)
                fast = None if iso is None else pc.replace_substring(iso, "-", "")
        elif kind is not None:
            fast = standardise_array(kind, uniques)
        if fast is None:
            return _Formatted.of(self.format_many(uniques.to_pylist()))
        if not (self._plain or self._preformatted):
            post = self._post
            standardised: list[str | None] = fast.to_pylist()
            results = [post(v) if v is not None else None for v in standardised]
            slow_raw = np.flatnonzero(pc.is_null(fast).to_numpy(zero_copy_only=False))
            if slow_raw.size:
                raws = uniques.take(pa.array(slow_raw)).to_pylist()
                for u, result in zip(slow_raw.tolist(), self.format_many(raws), strict=True):
                    results[u] = result
            return _Formatted.of(results)  # type: ignore[arg-type]
        # Fast-path output is ASCII, which every encoding clkhash allows can hold, and a plain
        # string format neither checks nor changes it (nor does a preformatted date): only
        # the missing-value rule applies.
        return self._plain_formatted(fast, uniques)

    def format_derived(self, values: pa.Array) -> _Formatted:
        """Formatted value, presence and invalidity of each distinct value of a derived
        feature (its sources' hashed values, joined)."""
        encoding = self.spec.hashing_properties.encoding if self._plain else None
        if encoding is not None and (
            encoding != "ascii" or pc.all(pc.string_is_ascii(values)).as_py() is not False
        ):
            return self._plain_formatted(values, values)
        return _Formatted.of(self.format_many(values.to_pylist()))

    def _plain_formatted(self, fast: pa.Array, uniques: pa.Array) -> _Formatted:
        """Apply the missing-value rule to values a plain format keeps as they are; values
        that are null in `fast` take the scalar path from `uniques`."""
        missing = self.spec.hashing_properties.missing_value
        if missing is not None:
            is_sentinel = pc.fill_null(pc.equal(fast, missing.sentinel), False)
            fast = pc.if_else(is_sentinel, missing.replace_with, fast)
            present = pc.and_(pc.invert(is_sentinel), pc.not_equal(fast, ""))
        else:
            present = pc.not_equal(fast, "")
        formatted: list[str | None] = fast.to_pylist()
        present_np = pc.fill_null(present, False).to_numpy(zero_copy_only=False)
        invalid: dict[int, str] = {}
        slow = np.flatnonzero(pc.is_null(fast).to_numpy(zero_copy_only=False))
        if slow.size:
            raws = uniques.take(pa.array(slow)).to_pylist()
            for u, result in zip(slow.tolist(), self.format_many(raws), strict=True):
                formatted[u], present_np[u] = result[0], result[1]
                if result[2] is not None:
                    invalid[u] = result[2]
        return _Formatted(formatted, present_np, invalid)  # type: ignore[arg-type]

    def format_many(self, raws: Sequence[str]) -> list[tuple[str, bool, str | None]]:
        """(formatted value, present, reason if invalid) for each raw value, cached."""
        cache = self._cache
        if len(cache) + len(raws) > _STANDARDISE_CACHE_LIMIT:
            cache.clear()
        get, miss = cache.get, self._miss
        return [hit if (hit := get(raw)) is not None else miss(raw) for raw in raws]

    def _miss(self, raw: str) -> tuple[str, bool, str | None]:
        result = self._cache[raw] = self._format(raw)
        return result

    def _build_post(self) -> Callable[[str], tuple[str, bool, str | None]]:
        """clkhash's missing-value, validation and formatting steps for a standardised value,
        specialised once so the hot path has no lookups."""
        spec = self.spec
        missing = spec.hashing_properties.missing_value
        sentinel = missing.sentinel if missing is not None else None
        missing_result = (missing.replace_with if missing is not None else "", False, None)
        preformatted = self._preformatted
        check = self._check

        def post(value: str) -> tuple[str, bool, str | None]:
            if value == sentinel:
                return missing_result
            if preformatted:
                return value, value != "", None
            if check is not None:
                reason = check(value)
                if reason is not None:
                    return "", False, reason
                return value, value != "", None
            try:
                spec.validate(value)
                formatted: str = spec.format_value(value)
            except InvalidEntryError as exc:
                return "", False, _entry_reason(exc, spec)
            return formatted, formatted != "", None

        return post

    def _build(self) -> Callable[[str], tuple[str, bool, str | None]]:
        """Standardise, then `post`."""
        standardise, post = self._standardise, self._post
        if standardise is None:
            return post

        def format_value(raw: str) -> tuple[str, bool, str | None]:
            try:
                value = standardise(raw)
            except InvalidValue as exc:
                return "", False, str(exc) or "invalid value"
            return post(value)

        return format_value


@dataclass(frozen=True)
class _Formatted:
    """The distinct values of a feature after standardisation and clkhash formatting."""

    values: list[str]
    present: np.ndarray[Any, np.dtype[np.bool_]]
    invalid: dict[int, str]  # index of the distinct value → reason

    @classmethod
    def of(cls, results: list[tuple[str, bool, str | None]]) -> _Formatted:
        return cls(
            [r[0] for r in results],
            np.fromiter((r[1] for r in results), dtype=bool, count=len(results)),
            {u: r[2] for u, r in enumerate(results) if r[2] is not None},
        )


def _is_plain_string(spec: Any) -> bool:
    """A string format that accepts and keeps every ASCII value as it is."""
    return (
        isinstance(spec, StringSpec)
        and not spec.regex_based
        and spec.case == "mixed"
        and not spec.min_length
        and spec.max_length is None
        and spec.hashing_properties.encoding in ("ascii", "utf-8", "utf-16", "utf-32")
    )


_ROUND_TRIP_DIRECTIVES = {"%Y", "%m", "%d", "%b", "%B", "%%"}


def _date_standardiser(spec: Any, date_format: str | None) -> tuple[Callable[[str], str], bool]:
    """The date standardiser for a date feature, and whether its output is preformatted.

    clkhash parses a date with the feature's format and hashes it as %Y%m%d. When the format
    round-trips (no two-digit years or other lossy directives), the standardised date can be
    written as %Y%m%d directly; otherwise it is written in the feature's format and clkhash's
    own parsing decides, exactly as it would for that text.
    """
    fmt = spec.format
    directives = set(re.findall(r"%.", fmt))
    if directives <= _ROUND_TRIP_DIRECTIVES and {"%Y", "%d"} <= directives:

        def to_compact(value: str) -> str:
            iso = standardise_date(value, date_format)
            # ISO YYYY-MM-DD with a four-digit year (the standardiser refuses years < 1900)
            return iso[0:4] + iso[5:7] + iso[8:10] if iso else ""

        return to_compact, True

    def to_format(value: str) -> str:
        iso = standardise_date(value, date_format)
        return dt.date.fromisoformat(iso).strftime(fmt) if iso else ""

    return to_format, False


def _fast_check(spec: Any) -> Callable[[str], str | None] | None:
    """An exact, faster equivalent of clkhash's validate for string and enum formats.

    Returns a function giving the reason a value is invalid (or None), for formats whose
    `format_value` is the identity; None when clkhash's own code must be used.
    """
    encoding = spec.hashing_properties.encoding
    if isinstance(spec, EnumSpec):
        allowed = frozenset(spec.values)

        def check_enum(value: str) -> str | None:
            if value in allowed:
                return None
            return f"not one of the allowed values {sorted(allowed)}"

        return check_enum
    if not isinstance(spec, StringSpec):
        return None
    if spec.regex_based:
        regex = spec.regex

        def check_pattern(value: str) -> str | None:
            try:
                value.encode(encoding)
            except UnicodeEncodeError:
                return f"cannot be encoded in {encoding}"
            if regex.fullmatch(value) is None:
                return f"does not match the pattern {regex.pattern!r}"
            return None

        return check_pattern
    min_length, max_length, case = spec.min_length, spec.max_length, spec.case
    if case not in ("mixed", "upper", "lower"):
        return None

    def check_string(value: str) -> str | None:
        try:
            value.encode(encoding)
        except UnicodeEncodeError:
            return f"cannot be encoded in {encoding}"
        if min_length is not None and len(value) < min_length:
            return f"shorter than {min_length} characters"
        if max_length is not None and len(value) > max_length:
            return f"longer than {max_length} characters"
        if case == "upper" and value.upper() != value:
            return "not upper case"
        if case == "lower" and value.lower() != value:
            return "not lower case"
        return None

    return check_string


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


class _ChunkEncoder:
    """Encodes chunks of dictionary-encoded columns; holds caches that persist across chunks."""

    def __init__(
        self,
        schema: LinkageSchema,
        secret: Secret,
        date_format: str | None,
        record_key: RecordKey | None = None,
    ) -> None:
        self.schema = schema
        self.hashers: dict[str, FeatureHasher] = hashers_for(schema, secret)
        self.formatters = {
            f.name: _FeatureFormatter(f, date_format) for f in schema.hashed_features
        }
        self._sources = {n for f in schema.hashed_features for n in f.extension.derived_from or ()}
        hardening = schema.hardening
        self.hardener = Hardener(schema, secret, record_key) if hardening.active else None
        self._salt = hardening.record_salt

    def encode(
        self,
        first_row: int,
        n_rows: int,
        columns: Mapping[str, pa.Array | None],
        active: np.ndarray[Any, np.dtype[np.bool_]],
    ) -> _ChunkResult:
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
            (first_row + int(selected[r]), name, _REJECTED, reason)
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
                rejects.append((first_row + int(selected[r]), name, _AS_MISSING, reason))
                as_missing[name] += 1
        rejects.sort()
        result = _ChunkResult(first_row, bits, valid, rejects, as_missing, counts)
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
                column = _derive([sources.get(name) for name in feature.extension.derived_from], n)
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
        self, result: _ChunkResult, taken: Mapping[str, pa.Array | None], keep: np.ndarray[Any, Any]
    ) -> None:
        """Put the chunk's decoys among its records: each a recombination of the records'
        raw values (each source feature's value from a different record), encoded as they
        are; derived features are built from those values as usual."""
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
    salt: RecordSalt, column: _Column, done: _Formatted, formatted: pa.Array
) -> tuple[list[str], np.ndarray[Any, np.dtype[np.int32]]]:
    """The distinct record salts of a chunk, and each row's: the slice of the salt feature's
    hashed value (dates as YYYYMMDD), "" where the value is missing or invalid."""
    sliced = pc.utf8_slice_codeunits(formatted, salt.start, salt.end)
    sliced = pc.if_else(pa.array(done.present, pa.bool_()), sliced, "")
    encoded = pc.dictionary_encode(sliced)
    per_unique = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    salts: list[str] = encoded.dictionary.to_pylist()
    return salts, per_unique[column.indices]


# Workers are threads: the heavy steps (Arrow compute, numba kernels with nogil, pandas'
# factorisation, hashlib) release the GIL, and threads share the chunks without pickling or
# forking. Each thread owns a _ChunkEncoder, so no cache is shared between threads.
_THREAD = threading.local()


def _init_thread(
    schema: LinkageSchema, secret: Secret, date_format: str | None, record_key: RecordKey | None
) -> None:
    _THREAD.encoder = _ChunkEncoder(schema, secret, date_format, record_key)


def _encode_in_worker(
    first_row: int, n_rows: int, columns: Mapping[str, pa.Array | None], active: Any
) -> _ChunkResult:
    encoder: _ChunkEncoder = _THREAD.encoder
    return encoder.encode(first_row, n_rows, columns, active)


# --------------------------------------------------------------------------- helpers


@njit(cache=True, nogil=True)
def _or_rows(out: _U8, table: _U8, rows: np.ndarray[Any, Any]) -> None:
    """out[r] |= table[rows[r]] for every r, without the temporary `table[rows]`."""
    width = out.shape[1]
    for r in range(out.shape[0]):
        src = rows[r]
        for b in range(width):
            out[r, b] |= table[src, b]


@njit(cache=True, nogil=True)
def _fnv1a(offsets: np.ndarray[Any, Any], data: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """64-bit FNV-1a of each string of an Arrow string array (to find duplicate IDs)."""
    n = offsets.shape[0] - 1
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        h = np.uint64(14695981039346656037)
        for j in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[j])) * np.uint64(1099511628211)
        out[i] = h
    return out


def _string_hashes(array: pa.Array) -> np.ndarray[Any, np.dtype[np.uint64]]:
    offsets, data = string_buffers(array)
    result: np.ndarray[Any, np.dtype[np.uint64]] = _fnv1a(offsets, data)
    return result


# A derived feature's source in one chunk: its column, its formatted distinct values, and
# those values as an Arrow array (made once, for hashing and for deriving).
_Source = tuple[_Column, _Formatted, pa.Array]


def _derive(sources: Sequence[_Source | None], n_rows: int) -> _Column:
    """A derived feature's column: each row's present source values, sorted, space-joined.

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


def output_paths(out: Path) -> tuple[Path, Path]:
    """The key map and rejects file written beside `OUT.plk`: `OUT.keys.csv`, `OUT.rejects.csv`."""
    stem = out.name[: -len(".plk")] if out.name.endswith(".plk") else out.name
    return out.with_name(stem + ".keys.csv"), out.with_name(stem + ".rejects.csv")


def _resolve_columns(
    schema: LinkageSchema,
    available: Sequence[str],
    options: EncodeOptions,
    source: str,
    reader: TableReader | None = None,
) -> dict[str, str | None]:
    """Feature → input column (None: derived, or optional and absent).

    Error messages never list the header's names as found: a file without a header row has
    a client's details there (`describe_header` says what is wrong instead).
    """
    unknown = sorted(set(options.columns) - {f.name for f in schema.features})
    if unknown:
        raise EncodeError(f"--column names features not in the schema: {', '.join(unknown)}")
    derived = sorted(f.name for f in schema.hashed_features if f.extension.derived_from)
    mapped_derived = [name for name in derived if name in options.columns]
    if mapped_derived:
        raise EncodeError(
            f"--column names derived features, which read no column: {', '.join(mapped_derived)}"
        )
    resolved: dict[str, str | None] = {}
    missing: list[str] = []
    expected: list[str] = []  # every column the run needs, to find the header by
    for feature in schema.hashed_features:
        if feature.extension.derived_from:
            resolved[feature.name] = None  # built from other features' values
            continue
        column = options.columns.get(feature.name, feature.name)
        optional = feature.extension.optional and feature.name not in options.columns
        if not optional:
            expected.append(column)
        if column in available:
            resolved[feature.name] = column
        elif optional:
            resolved[feature.name] = None
        else:
            # Column names here come from the schema or the command line, not the file.
            missing.append(f"{column!r} (feature {feature.name})")
    extra_columns = [
        (label, extra)
        for label, extra in (
            ("--id-column", options.id_column),
            ("--consent-column", options.consent_column),
        )
        if extra is not None
    ]
    expected += [extra for _, extra in extra_columns]
    if missing:
        raise EncodeError(
            f"{source}: column(s) not found: {', '.join(missing)}. "
            f"{describe_header(reader, available, expected)}. Map a feature to a column with "
            "--column FEATURE=COLUMN."
        )
    for label, extra in extra_columns:
        if extra not in available:
            raise EncodeError(
                f"{source}: {label} {extra!r} not found. "
                f"{describe_header(reader, available, expected)}."
            )
    return resolved


def _check_outputs_free(paths: Sequence[Path]) -> None:
    """Refuse to replace last run's outputs: `pacelink results` needs the matching .plk and
    key map, and a re-run would silently break that pair."""
    for path in paths:
        if path.exists():
            raise EncodeError(
                f"{path} already exists; refusing to overwrite it (the .plk and key map of "
                "an earlier run must stay together for `pacelink results`). Choose another "
                "--out, move the old files away, or pass --force to overwrite"
            )


# --------------------------------------------------------------------------- the run


class _Outputs:
    """Where a run's results go: the `.plk` writer, the key map and the rejects file."""

    def __init__(self, writer: EncodingWriter, key_fh: Any, rejects_fh: Any) -> None:
        self.writer = writer
        self._keys = KeyMapWriter(key_fh)
        self._rejects = csv.writer(rejects_fh)
        self._rejects.writerow(REJECTS_HEADER)

    def encoded(self, bits: _U8, first: int, ids: pa.Array, pseudonyms: _U8 | None) -> None:
        self.writer.append(bits, pseudonyms)
        self._keys.write(first, ids)

    def rejects(self, rows: list[tuple[int, str, str, str]]) -> None:
        # Field names come from the schema or --id-column, reasons are fixed texts: escaped
        # all the same, as every text cell pacelink writes for spreadsheets.
        self._rejects.writerows(
            (row, spreadsheet_safe(name), action, spreadsheet_safe(reason))
            for row, name, action, reason in rows
        )

    def close(self) -> None:
        self._keys.close()


class _MemoryOutputs(_Outputs):
    """Outputs of `encode_dataframe`: bits and local IDs kept in memory."""

    def __init__(self) -> None:  # no files
        self.bits: list[_U8] = []
        self.ids: list[pa.Array] = []
        self.pseudonyms: list[_U8] = []
        self.rejected: list[tuple[int, str, str, str]] = []

    def encoded(self, bits: _U8, first: int, ids: pa.Array, pseudonyms: _U8 | None) -> None:
        self.bits.append(bits)
        self.ids.append(ids)
        if pseudonyms is not None:
            self.pseudonyms.append(pseudonyms)

    def rejects(self, rows: list[tuple[int, str, str, str]]) -> None:
        self.rejected.extend(rows)


@dataclass
class _Run:
    """State of one encoding run over a table."""

    schema: LinkageSchema
    secret: Secret
    options: EncodeOptions
    reader: TableReader
    report: EncodeReport
    feature_columns: dict[str, str | None]
    present: Counter[str] = field(default_factory=Counter)  # real records with a value
    present_out: Counter[str] = field(default_factory=Counter)  # the same, decoys included
    as_missing: Counter[str] = field(default_factory=Counter)
    rejected_by_field: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    rows_out: int = 0  # rows written: encoded records and decoys

    def wanted_columns(self) -> list[str]:
        cols = [c for c in self.feature_columns.values() if c is not None]
        for extra in (self.options.id_column, self.options.consent_column):
            if extra is not None:
                cols.append(extra)
        return list(dict.fromkeys(cols))

    def consented(self, chunk: Chunk) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Which rows of a chunk have consent (all, without a consent column)."""
        if self.options.consent_column is None:
            return np.ones(len(chunk), dtype=bool)
        consent = pc.utf8_lower(pc.utf8_trim_whitespace(chunk.columns[self.options.consent_column]))
        yes = pa.array(sorted(v.lower() for v in self.options.consent_values), pa.string())
        result: np.ndarray[Any, np.dtype[np.bool_]] = pc.is_in(consent, value_set=yes).to_numpy(
            zero_copy_only=False
        )
        return result

    def prepare(self, chunk: Chunk) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Main-process part of a chunk: consent, local IDs, dictionary encoding."""
        n = len(chunk)
        active = self.consented(chunk)
        no_consent = int(n - active.sum())
        if self.options.id_column is not None:
            # The key map, the duplicate check and the pseudonyms all use canonical IDs.
            ids = canonical_local_ids(chunk.columns[self.options.id_column])
            empty_id = _empty(ids)
            control_id = has_control_characters(ids) & ~empty_id
        else:
            ids = pa.array([str(chunk.first_row + i) for i in range(n)], pa.string())
            empty_id = control_id = np.zeros(n, dtype=bool)
        id_rejects = [(int(r), "local ID is empty") for r in np.flatnonzero(empty_id & active)]
        id_rejects += [
            (int(r), "local ID has a control character")
            for r in np.flatnonzero(control_id & active)
        ]
        active &= ~(empty_id | control_id)
        columns = {
            name: (chunk.columns[col] if col is not None else None)
            for name, col in self.feature_columns.items()
        }
        extra = {"ids": ids, "no_consent": no_consent, "id_rejects": id_rejects}
        return (chunk.first_row, n, columns, active), extra

    def absorb(self, result: _ChunkResult, extra: dict[str, Any], outputs: _Outputs) -> None:
        """Main-process part after encoding: write bits, key map and rejects, count."""
        n = result.valid.shape[0]
        report = self.report
        report.records_in += n
        report.excluded_no_consent += extra["no_consent"]
        id_field = self.options.id_column or "local_id"
        lines = result.rejects + [
            (result.first_row + r, id_field, _REJECTED, reason) for r, reason in extra["id_rejects"]
        ]
        lines.sort()
        sheet_row = self.reader.sheet_row
        lines = [(sheet_row(row), name, action, reason) for row, name, action, reason in lines]
        rejected = [line for line in lines if line[2] == _REJECTED]
        report.rejected += len({row for row, _, _, _ in rejected})
        outputs.rejects(lines)
        for _, name, _, reason in rejected:
            self.rejected_by_field[name] += 1
            self.reasons[f"{name}: {reason}"] += 1
        keep = np.flatnonzero(result.valid)
        ids = extra["ids"].take(pa.array(keep))
        key = self.options.record_key
        pseudonyms = None if key is None else key.pseudonym_bytes(ids.to_pylist())
        report.encoded += len(ids)
        if result.decoys.size:
            ids, pseudonyms = _with_decoys(ids, pseudonyms, result)
            report.decoys += result.decoys.size
        outputs.encoded(result.bits, self.rows_out, ids, pseudonyms)
        self.rows_out += len(ids)
        self.present.update(result.present)
        self.present_out.update(result.present)
        self.present_out.update(result.decoy_present)
        self.as_missing.update(result.as_missing)

    def check_reject_rate(self) -> None:
        """Fail when more records were rejected than `max_reject_rate` allows.

        So many rejections usually mean two columns are swapped or a column is mapped
        wrongly: encoding the few that pass would send the unit a useless file.
        """
        report, limit = self.report, self.options.max_reject_rate
        with_consent = report.records_in - report.excluded_no_consent
        if not with_consent or report.rejected <= limit * with_consent:
            return
        top = [
            f"{name} {count:,}{self._column_of(name)}"
            for name, count in self.rejected_by_field.most_common(3)
        ]
        reasons = [f"{reason} ({count:,})" for reason, count in self.reasons.most_common(3)]
        raise EncodeError(
            f"{self.reader.path}: {report.rejected:,} of {with_consent:,} records with consent "
            f"were rejected ({report.rejected / with_consent:.0%}), more than --max-reject-rate "
            f"{limit:g} allows; nothing was written. Rejections by field: {', '.join(top)}; "
            f"most common reasons: {'; '.join(reasons)}. So many usually mean swapped or "
            "wrongly mapped columns: check the --column mappings (and --date-format); if the "
            "data really is this poor, rerun with a higher --max-reject-rate (1 never fails)"
        )

    def _column_of(self, name: str) -> str:
        column = self.feature_columns.get(name)
        return f" (from column {column!r})" if column is not None and column != name else ""

    def summary(self) -> InputSummary:
        """The header's counts. Decoys count as records in, as they count in its
        record_count: the header's numbers still add up, and say nothing of how many
        rows are decoys."""
        report = self.report
        return InputSummary(
            records_in=report.records_in + report.decoys,
            excluded_no_consent=report.excluded_no_consent,
            rejected=report.rejected,
        )

    def coverage(self) -> list[tuple[str, int]]:
        """The header's field coverage: rows with a value, decoys included (real records
        alone, against a record_count with decoys, would give their number away)."""
        return [(f.name, self.present_out[f.name]) for f in self.schema.hashed_features]


def _with_decoys(
    ids: pa.Array, pseudonyms: _U8 | None, result: _ChunkResult
) -> tuple[pa.Array, _U8 | None]:
    """A chunk's local IDs and pseudonyms by output row: "" (and the decoy's own pseudonym)
    at its decoys' rows, the real records' in order at the others."""
    n_out = result.bits.shape[0]
    is_decoy = np.zeros(n_out, dtype=bool)
    is_decoy[result.decoys] = True
    source = np.full(n_out, len(ids), dtype=np.int64)  # the "" appended after the IDs
    source[~is_decoy] = np.arange(len(ids))
    all_ids = pa.concat_arrays([ids.cast(pa.string()), pa.array([DECOY_LOCAL_ID], pa.string())])
    if pseudonyms is not None:
        assert result.decoy_keys is not None
        full = np.empty((n_out, PSEUDONYM_BYTES), dtype=np.uint8)
        full[~is_decoy] = pseudonyms
        full[is_decoy] = result.decoy_keys
        pseudonyms = full
    return all_ids.take(pa.array(source)), pseudonyms


def _record_key_fields(options: EncodeOptions) -> dict[str, Any]:
    key = options.record_key
    return {
        "record_keys": key is not None,
        "record_key_check_value": None if key is None else key.check_value,
    }


def _empty(ids: pa.Array) -> np.ndarray[Any, np.dtype[np.bool_]]:
    lengths = pc.utf8_length(pc.utf8_trim_whitespace(ids))
    result: np.ndarray[Any, np.dtype[np.bool_]] = lengths.to_numpy(zero_copy_only=False) == 0
    return result


def _check_unique_ids(run: _Run) -> None:
    """First pass, over the ID and consent columns only: every local ID of a record with
    consent is unique, checked before any encoding work.

    Memory stays bounded by keeping a 64-bit hash and a row number per record; rows whose
    hashes agree are confirmed with their real IDs in a second, equally narrow pass (a hash
    collision is possible in principle). Every duplicate is reported at once, by counts and
    spreadsheet row numbers, never by value.

    Raises:
        EncodeError: Listing how many IDs repeat and the rows of the first few.
    """
    id_column = run.options.id_column
    if id_column is None:
        return
    wanted = [c for c in (id_column, run.options.consent_column) if c is not None]
    chunk_rows = run.options.chunk_rows
    hashes: list[np.ndarray[Any, Any]] = []
    rows: list[np.ndarray[Any, Any]] = []
    for chunk in run.reader.chunks(wanted, chunk_rows):
        ids = canonical_local_ids(chunk.columns[id_column])
        keep = np.flatnonzero(run.consented(chunk) & ~_empty(ids) & ~has_control_characters(ids))
        if keep.size:
            hashes.append(_string_hashes(ids.take(pa.array(keep))))
            rows.append(chunk.first_row + keep)
    if not hashes:
        return
    all_hashes, all_rows = np.concatenate(hashes), np.concatenate(rows)
    order = np.argsort(all_hashes, kind="stable")
    sorted_hashes = all_hashes[order]
    same = sorted_hashes[1:] == sorted_hashes[:-1]
    if not same.any():
        return
    in_group = np.zeros(order.size, dtype=bool)
    in_group[1:] |= same
    in_group[:-1] |= same
    candidates = np.sort(all_rows[order[in_group]])
    # Confirm with the IDs themselves (rows of candidates only), grouped by ID.
    groups: dict[str, list[int]] = {}
    for chunk in run.reader.chunks([id_column], chunk_rows):
        lo = np.searchsorted(candidates, chunk.first_row)
        hi = np.searchsorted(candidates, chunk.first_row + len(chunk))
        if lo == hi:
            continue
        picked = candidates[lo:hi]
        ids = canonical_local_ids(chunk.columns[id_column])
        values = ids.take(pa.array(picked - chunk.first_row)).to_pylist()
        for row, value in zip(picked.tolist(), values, strict=True):
            groups.setdefault(value, []).append(row)
    repeated = sorted((r for r in groups.values() if len(r) > 1), key=lambda r: r[0])
    if not repeated:
        return
    sheet_row = run.reader.sheet_row
    shown = []
    for group in repeated[:_DUPLICATES_SHOWN]:
        numbers = [str(sheet_row(r)) for r in group[:_DUPLICATE_ROWS_SHOWN]]
        extra = len(group) - _DUPLICATE_ROWS_SHOWN
        more = f" and {extra} more" if extra > 0 else ""
        shown.append(f"rows {', '.join(numbers)}{more}")
    rest = len(repeated) - len(shown)
    listed = "; ".join(shown) + (f"; and {rest} more IDs" if rest else "")
    n_ids, n_rows = len(repeated), sum(len(g) for g in repeated)
    raise EncodeError(
        f"{run.reader.path}: local IDs must be unique (column {id_column!r}), but "
        f"{n_ids:,} ID{'s' if n_ids != 1 else ''} appear{'s' if n_ids == 1 else ''} more than "
        f"once ({n_rows:,} rows in all): {listed}. Nothing was encoded"
    )


def _chunks_with_lookahead(chunks: Iterator[Chunk]) -> tuple[list[Chunk], Iterator[Chunk]]:
    first = [c for _, c in zip(range(2), chunks, strict=False)]
    return first, chunks


def encode_file(
    input_path: Path,
    schema: LinkageSchema,
    secret: Secret,
    out: Path,
    options: EncodeOptions | None = None,
    *,
    delimiter: str | None = None,
    encoding: str = "auto",
    sheet: str | None = None,
    skip_rows: int = 0,
    overwrite: bool = True,
    progress: Callable[[int, int | None], None] | None = None,
) -> EncodeReport:
    """Encode a partner file into `out` (.plk), its key map and its rejects file.

    Args:
        skip_rows: Lines (CSV) or rows (XLSX) above the header, such as a title.
        overwrite: Replace outputs of an earlier run; when False an existing output is
            refused before anything is read (the command line's default, unless --force).
        progress: Called after each chunk with (records done, records expected or None).

    Raises:
        EncodeError, InputError: with a message naming the file, row or column.
    """
    options = options or EncodeOptions()
    started = time.perf_counter()
    keys_path, rejects_path = output_paths(out)
    if not out.parent.exists():
        raise EncodeError(f"{out.parent}: output folder does not exist")
    if not overwrite:
        _check_outputs_free((out, keys_path, rejects_path))
    reader = open_table(
        input_path, delimiter=delimiter, encoding=encoding, sheet=sheet, skip_rows=skip_rows
    )
    feature_columns = _resolve_columns(schema, reader.columns, options, str(input_path), reader)
    report = EncodeReport(
        input=str(input_path),
        schema_fingerprint=schema.fingerprint,
        key_check_value=key_check_value(secret),
        bit_length=schema.bit_length,
        **_record_key_fields(options),
    )
    run = _Run(schema, secret, options, reader, report, feature_columns)
    _check_unique_ids(run)
    tmp_dir = out.parent
    key_fd, key_tmp = tempfile.mkstemp(prefix=f".{keys_path.name}.", suffix=".tmp", dir=tmp_dir)
    rej_fd, rej_tmp = tempfile.mkstemp(prefix=f".{rejects_path.name}.", suffix=".tmp", dir=tmp_dir)
    os.fchmod(key_fd, 0o600)  # the key map links encodings back to people: owner only
    key_tmp_path, rej_tmp_path = Path(key_tmp), Path(rej_tmp)
    pool: cf.ThreadPoolExecutor | None = None
    placed = False  # the .plk has been moved into place
    try:
        with (
            os.fdopen(key_fd, "wb") as key_fh,
            os.fdopen(rej_fd, "w", newline="", encoding="utf-8") as rej_fh,
            EncodingWriter(out, schema.bit_length) as writer,
        ):
            outputs = _Outputs(writer, key_fh, rej_fh)
            chunks = reader.chunks(run.wanted_columns(), options.chunk_rows)
            head, rest = _chunks_with_lookahead(chunks)
            if options.workers > 1 and len(head) > 1:
                pool = cf.ThreadPoolExecutor(
                    max_workers=options.workers,
                    thread_name_prefix="pacelink-encode",
                    initializer=_init_thread,
                    initargs=(schema, secret, options.date_format, options.record_key),
                )
                _run_parallel(run, pool, [*head, *rest], outputs, progress)
            else:
                local = _ChunkEncoder(schema, secret, options.date_format, options.record_key)
                for chunk in [*head, *rest]:
                    args, extra = run.prepare(chunk)
                    run.absorb(local.encode(*args), extra, outputs)
                    if progress:
                        progress(report.records_in, reader.estimated_rows)
            outputs.close()
            key_fh.flush()
            run.check_reject_rate()
            _finish_report(run)
            writer.finish(
                encoder_version=version("pacelink"),
                schema_fingerprint=schema.fingerprint,
                key_check_value=report.key_check_value,
                features=run.coverage(),
                input_summary=run.summary(),
                record_key_check=report.record_key_check_value,
            )
            placed = True
        os.replace(key_tmp_path, keys_path)
        os.replace(rej_tmp_path, rejects_path)
    except BaseException:
        key_tmp_path.unlink(missing_ok=True)
        rej_tmp_path.unlink(missing_ok=True)
        if placed:
            out.unlink(missing_ok=True)  # the .plk was moved into place but a later step failed
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    report.output, report.key_map, report.rejects_file = str(out), str(keys_path), str(rejects_path)
    report.seconds = time.perf_counter() - started
    report.records_per_second = report.records_in / report.seconds if report.seconds else 0.0
    assert report.reconciles(), "report counts must reconcile"
    return report


def _run_parallel(
    run: _Run,
    pool: cf.ThreadPoolExecutor,
    chunks: Iterator[Chunk] | list[Chunk],
    outputs: _Outputs,
    progress: Callable[[int, int | None], None] | None,
) -> None:
    """Keep the workers busy, absorbing results strictly in input order."""
    in_flight: list[tuple[cf.Future[_ChunkResult], dict[str, Any]]] = []
    limit = 2 * run.options.workers  # bound on chunks held in memory

    def drain_one() -> None:
        future, extra = in_flight.pop(0)
        run.absorb(future.result(), extra, outputs)
        if progress:
            progress(run.report.records_in, run.reader.estimated_rows)

    for chunk in chunks:
        args, extra = run.prepare(chunk)
        in_flight.append((pool.submit(_encode_in_worker, *args), extra))
        while len(in_flight) >= limit:
            drain_one()
    while in_flight:
        drain_one()


def _finish_report(run: _Run) -> None:
    report = run.report
    report.rejected_by_field = dict(run.rejected_by_field)
    report.rejected_reasons = dict(run.reasons.most_common())
    report.invalid_treated_as_missing = dict(run.as_missing)
    report.features = {
        f.name: {
            "column": run.feature_columns[f.name],
            "present": run.present[f.name],
            "coverage": (run.present[f.name] / report.encoded) if report.encoded else 0.0,
        }
        for f in run.schema.hashed_features
    }


class _FrameReader(TableReader):
    """A DataFrame's text columns as a table: row numbers as if written with a header."""

    def __init__(self, text: pd.DataFrame) -> None:
        super().__init__(Path("DataFrame"), list(map(str, text.columns)), len(text))
        self._text = text

    def _chunks(self, wanted: list[str], chunk_rows: int) -> Iterator[Chunk]:
        text = self._text

        def batches() -> Iterator[dict[str, pa.Array]]:
            yield {c: pa.array(text[c].tolist(), pa.string()) for c in wanted}

        yield from self._rechunk(batches(), chunk_rows)


def encode_dataframe(
    df: pd.DataFrame,
    schema: LinkageSchema,
    secret: Secret,
    options: EncodeOptions | None = None,
) -> Encodings:
    """Encode a DataFrame in memory; the result's `.report` says what happened to each row.

    Values are read as text (`str(value)`; missing values become empty strings). Rows that are
    rejected or lack consent are left out; `report.rejected_reasons` says why. The same checks
    as `encode_file` apply: unique local IDs and `max_reject_rate` (raising EncodeError).
    Row numbers in messages count the column names as row 1, as in the frame written to a
    spreadsheet.
    """
    options = options or EncodeOptions()
    text = df.astype(object).where(df.notna(), "").astype(str)
    reader = _FrameReader(text)
    feature_columns = _resolve_columns(schema, reader.columns, options, "DataFrame")
    report = EncodeReport(
        input="DataFrame",
        schema_fingerprint=schema.fingerprint,
        key_check_value=key_check_value(secret),
        bit_length=schema.bit_length,
        **_record_key_fields(options),
    )
    run = _Run(schema, secret, options, reader, report, feature_columns)
    _check_unique_ids(run)
    encoder = _ChunkEncoder(schema, secret, options.date_format, options.record_key)
    outputs = _MemoryOutputs()
    for chunk in reader.chunks(run.wanted_columns(), options.chunk_rows):
        args, extra = run.prepare(chunk)
        run.absorb(encoder.encode(*args), extra, outputs)
    run.check_reject_rate()
    _finish_report(run)
    width = schema.bit_length // 8
    parts = outputs.bits
    bits = np.concatenate(parts) if parts else np.zeros((0, width), dtype=np.uint8)
    pseudonyms = None
    if options.record_key is not None:
        parts_keys = outputs.pseudonyms
        pseudonyms = (
            np.concatenate(parts_keys)
            if parts_keys
            else np.zeros((0, PSEUDONYM_BYTES), dtype=np.uint8)
        )
    header: dict[str, Any] = {
        "format": "pacelink-encodings",
        "format_version": FORMAT_VERSION,
        "encoder_version": version("pacelink"),
        "schema_fingerprint": schema.fingerprint,
        "key_check_value": report.key_check_value,
        "bit_length": schema.bit_length,
        "bit_order": "clkhash",
        "record_count": int(bits.shape[0]),
        "features": [
            FeatureCoverage(name=name, present=present).model_dump()
            for name, present in run.coverage()
        ],
        "input_summary": run.summary().model_dump(),
    }
    if report.record_key_check_value is not None:
        # No offset in memory: it describes a file's layout.
        header["record_keys"] = {
            "algorithm": PSEUDONYM_ALGORITHM,
            "check_value": report.record_key_check_value,
        }
    local_ids: list[str] = (
        pa.concat_arrays([a.cast(pa.string()) for a in outputs.ids]).to_pylist()
        if outputs.ids
        else []
    )
    return Encodings(
        bits=bits,
        header=header,
        report=report,
        record_key_bytes=pseudonyms,
        local_ids=local_ids,
    )
