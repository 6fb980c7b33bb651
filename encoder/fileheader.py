"""The `.plk` header: its typed model (its JSON Schema's source), statistics, and how one is made.

`schemas/plk-header.schema.json` is the JSON Schema export of `PlkHeader` (a test keeps
them equal): a model's docstring and field descriptions are part of that schema.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence, Set
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from encoder.keys import PSEUDONYM_ALGORITHM, PSEUDONYM_BYTES

__all__ = [
    "DATA_OFFSET",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "HISTOGRAM_BINS",
    "READABLE_VERSIONS",
    "FeatureCoverage",
    "HeaderFacts",
    "InputSummary",
    "PlkHeader",
    "PopcountAccumulator",
    "PopcountStats",
    "RecordKeysInfo",
    "header_for",
    "header_json_schema",
    "keys_offset",
    "make_header",
]

FORMAT_NAME = "pacelink-encodings"
FORMAT_VERSION: Literal[2] = 2
#: Versions this release reads (it writes `FORMAT_VERSION`).
READABLE_VERSIONS = (1, 2)
_ALIGN = 4096
#: Where the bits start: header space reserved before them while streaming.
DATA_OFFSET = 2 * _ALIGN
_KEY_ALIGN = 16  # the pseudonyms start on a 16-byte boundary: one row never straddles two
HISTOGRAM_BINS = 64

_U8Array = np.ndarray[Any, np.dtype[np.uint8]]


class PopcountStats(BaseModel):
    """Distribution of the number of set bits per record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mean: float
    std: float
    min: int
    max: int
    histogram_edges: list[int] = Field(
        description="Bin edges over 0..bit_length; bin b holds counts in [edge b, edge b+1)."
    )
    histogram_counts: list[int]


class FeatureCoverage(BaseModel):
    """How many encoded records had a value for a feature, and whether the file holds it at all."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    present: int = Field(ge=0)
    absent: bool = Field(
        default=False,
        description="The partner's file does not hold the feature (declared with --absent, an "
        "optional column it lacks, or a derived feature whose sources are all absent): it is "
        "missing in every record, so records of this file can agree with others only on the "
        "features it holds. Written only when true; files from older encoders never have it.",
    )

    @model_validator(mode="after")
    def _absent_has_no_values(self) -> FeatureCoverage:
        if self.absent and self.present:
            raise ValueError(f"feature {self.name} is absent but {self.present} records have it")
        return self

    # Only absent features carry the key: a file without any is written exactly as before,
    # and readers that predate the key still read it.
    @model_serializer(mode="wrap")
    def _omit_held(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not self.absent:
            data.pop("absent", None)
        return data


class InputSummary(BaseModel):
    """What happened to the input file's records: aggregate counts only, never rows.

    `records_in` = `record_count` (encoded) + `excluded_no_consent` + `rejected`, so a
    reader of the file can see the rejection rate without the partner's report. Decoy
    records (a schema's `hardening.decoys`) count in `records_in` as they count in
    `record_count`, so these counts do not reveal how many there are.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    records_in: int = Field(ge=0, description="Records in the input file.")
    excluded_no_consent: int = Field(ge=0, description="Records without consent: never read.")
    rejected: int = Field(ge=0, description="Records with consent that were not encoded.")


class RecordKeysInfo(BaseModel):
    """Where a file's record pseudonyms are and which record key made them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: Literal["hmac-sha256-128"] = Field(
        default=PSEUDONYM_ALGORITHM,
        description="Row i's pseudonym is HMAC-SHA256(record key, "
        "'pacelink/record-pseudonym/v1:' + UTF-8 local ID), first 16 bytes.",
    )
    check_value: str = Field(
        pattern=r"^[0-9a-f]{32}$",
        description="HMAC-SHA256(record key, 'pacelink/record-key-check/v1'), first 16 bytes, "
        "hex: equal values mean the same partner's record key, without revealing it.",
    )
    offset: int = Field(
        ge=0,
        multiple_of=_KEY_ALIGN,
        description="Byte offset of record_count * 16 pseudonym bytes: the end of the bits "
        "rounded up to a multiple of 16.",
    )


# A pydantic model: it is the source of the header's JSON Schema in `schemas/`.
# (Its docstring is that schema's description: changing it changes the schema.)
class PlkHeader(BaseModel):
    """The header of a `.plk` file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["pacelink-encodings"] = "pacelink-encodings"
    format_version: Literal[1, 2] = FORMAT_VERSION
    encoder_version: str
    schema_fingerprint: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    key_check_value: str = Field(
        pattern=r"^[0-9a-f]{32}$",
        description="HKDF-SHA256 of the secret under pacelink's own label: equal values mean "
        "the same secret, without revealing it.",
    )
    bit_length: int = Field(gt=0, multiple_of=8)
    bit_order: Literal["clkhash"] = Field(
        default="clkhash",
        description="Bit i of a filter is bit (7 - i % 8) of byte i // 8, as clkhash's bitarray.",
    )
    record_count: int = Field(ge=0)
    popcount: PopcountStats
    features: list[FeatureCoverage]
    created_at: str = Field(description="UTC time the file was completed, ISO 8601.")
    content_digest: str = Field(
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="SHA-256 of the packed bits followed by the record pseudonyms (if any).",
    )
    data_offset: int = Field(ge=0, multiple_of=_ALIGN)
    input_summary: InputSummary | None = Field(
        default=None,
        description="Counts of the input's records (absent in files from older encoders).",
    )
    record_keys: RecordKeysInfo | None = Field(
        default=None,
        description="The record pseudonyms after the bits (format version 2; absent when the "
        "partner encoded without a record key).",
    )

    @model_validator(mode="after")
    def _layout(self) -> PlkHeader:
        if self.record_keys is None:
            return self
        if self.format_version < 2:
            raise ValueError("record_keys needs format version 2")
        if self.record_keys.offset != keys_offset(self._bits_end()):
            raise ValueError("record_keys.offset must be the end of the bits rounded up to 16")
        return self

    def _bits_end(self) -> int:
        return self.data_offset + self.record_count * (self.bit_length // 8)

    def expected_size(self) -> int:
        """The file's size in bytes, as this header describes it."""
        if self.record_keys is None:
            return self._bits_end()
        return self.record_keys.offset + self.record_count * PSEUDONYM_BYTES


def keys_offset(bits_end: int) -> int:
    """Where the pseudonyms start: the end of the bits, rounded up to 16 bytes."""
    return -(-bits_end // _KEY_ALIGN) * _KEY_ALIGN


class PopcountAccumulator:
    """Popcount statistics gathered chunk by chunk, for a header."""

    def __init__(self, bit_length: int) -> None:
        """Start empty, for filters of `bit_length` bits."""
        self.n = 0
        self.total = 0
        self.total_sq = 0
        self.min = bit_length
        self.max = 0
        self.edges = np.linspace(0, bit_length + 1, HISTOGRAM_BINS + 1).round().astype(int)
        self.counts = np.zeros(HISTOGRAM_BINS, dtype=np.int64)

    def add(self, bits: _U8Array) -> None:
        """Count packed rows `(k, bit_length / 8)`."""
        if bits.shape[0] == 0:
            return
        pc = np.bitwise_count(bits).sum(axis=1, dtype=np.int64)
        self.n += pc.size
        self.total += int(pc.sum())
        self.total_sq += int((pc * pc).sum())
        self.min = min(self.min, int(pc.min()))
        self.max = max(self.max, int(pc.max()))
        self.counts += np.histogram(pc, bins=self.edges)[0]

    def stats(self) -> PopcountStats:
        """The statistics of every row added."""
        mean = self.total / self.n if self.n else 0.0
        var = max(self.total_sq / self.n - mean * mean, 0.0) if self.n else 0.0
        return PopcountStats(
            mean=mean,
            std=var**0.5,
            min=self.min if self.n else 0,
            max=self.max,
            histogram_edges=[int(e) for e in self.edges],
            histogram_counts=[int(c) for c in self.counts],
        )


@dataclass(frozen=True)
class HeaderFacts:
    """What a header states about how the rows were made; the rest is measured from them.

    Attributes:
        encoder_version: pacelink's version.
        schema_fingerprint: The linkage schema's fingerprint.
        key_check_value: The secret's key check value.
        features: (feature name, rows with a value) for each hashed feature.
        absent: The features the file does not hold (`encoder.options.absent_features`).
        input_summary: The input's counts.
        record_key_check: `RecordKey.check_value` of the key that made the pseudonyms; None
            when the rows come without pseudonyms.
    """

    encoder_version: str
    schema_fingerprint: str
    key_check_value: str
    features: Sequence[tuple[str, int]]
    input_summary: InputSummary | None = None
    record_key_check: str | None = None
    absent: Set[str] = frozenset()


def make_header(
    facts: HeaderFacts,
    *,
    bit_length: int,
    record_count: int,
    popcount: PopcountStats,
    content_digest: str,
) -> PlkHeader:
    """The header of a file whose bits start at `DATA_OFFSET`, completed now.

    Args:
        facts: What the header states about how the rows were made.
        bit_length: Bits per row.
        record_count: Rows.
        popcount: The rows' popcount statistics.
        content_digest: SHA-256 of the bits followed by the pseudonyms, as "sha256:<hex>".
    """
    record_keys = None
    if facts.record_key_check is not None:
        bits_end = DATA_OFFSET + record_count * (bit_length // 8)
        record_keys = RecordKeysInfo(
            check_value=facts.record_key_check, offset=keys_offset(bits_end)
        )
    return PlkHeader(
        encoder_version=facts.encoder_version,
        schema_fingerprint=facts.schema_fingerprint,
        key_check_value=facts.key_check_value,
        bit_length=bit_length,
        record_count=record_count,
        popcount=popcount,
        features=[
            FeatureCoverage(name=n, present=p, absent=n in facts.absent) for n, p in facts.features
        ],
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        content_digest=content_digest,
        data_offset=DATA_OFFSET,
        input_summary=facts.input_summary,
        record_keys=record_keys,
    )


def header_for(bits: _U8Array, record_keys: _U8Array | None, facts: HeaderFacts) -> PlkHeader:
    """The header `EncodingWriter` would write for these rows: for encodings kept in memory.

    Args:
        bits: The rows `(n, bit_length / 8)`.
        record_keys: Their pseudonyms `(n, 16)`, or None without a record key.
        facts: What the header states; its `record_key_check` is given exactly with
            `record_keys`.
    """
    if (record_keys is None) != (facts.record_key_check is None):
        raise ValueError("give record_key_check exactly when record keys are given")
    popcount = PopcountAccumulator(bits.shape[1] * 8)
    popcount.add(bits)
    digest = hashlib.sha256(np.ascontiguousarray(bits).tobytes())
    if record_keys is not None:
        digest.update(np.ascontiguousarray(record_keys).tobytes())
    return make_header(
        facts,
        bit_length=bits.shape[1] * 8,
        record_count=int(bits.shape[0]),
        popcount=popcount.stats(),
        content_digest="sha256:" + digest.hexdigest(),
    )


def header_json_schema() -> dict[str, Any]:
    """JSON Schema of the `.plk` header, as shipped in `schemas/`."""
    schema = PlkHeader.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://pacelink.example/schemas/plk-header.schema.json"
    return schema
