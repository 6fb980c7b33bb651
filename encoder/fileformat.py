"""The `.plk` encoding file: a self-describing JSON header followed by packed, memory-mappable bits.

Layout (all offsets in bytes)::

    0       8-byte magic  b"PACELINK"
    8       uint32 little-endian: length H of the UTF-8 JSON header
    12      the JSON header (H bytes), then spaces up to `data_offset`
    data_offset (a multiple of 4096)
            record_count * bit_length/8 bytes: row i is record i's filter, packed in clkhash's
            bit order (the bytes of clkhash's big-endian bitarray)
    record_keys.offset (format version 2, only when the header has `record_keys`)
            the end of the bits rounded up to a multiple of 16 (zero bytes between), then
            record_count * 16 bytes: row i is record i's pseudonym, HMAC-SHA256 of the
            partner's local ID under the partner's own record key, truncated to 128 bits
            (`encoder.keys.RecordKey`); the file ends there

`content_digest` is the SHA-256 of the bits followed by the pseudonyms (the bits alone
without them), so two files that differ only in their pseudonyms are different uploads.
Version 1 files (no pseudonyms; the writer of older releases) are read as before; versions
above 2 are refused.

The header's model below is the single source of truth; `schemas/plk-header.schema.json` is
its JSON Schema export (a test keeps them equal). Files are written to a temporary name and
renamed into place only when complete, so a failed run leaves no half-written file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from encoder.keys import PSEUDONYM_ALGORITHM, PSEUDONYM_BYTES, pseudonym_hex

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAGIC",
    "READABLE_VERSIONS",
    "EncodingFileError",
    "EncodingWriter",
    "Encodings",
    "FeatureCoverage",
    "InputSummary",
    "PlkHeader",
    "PopcountStats",
    "RecordKeysInfo",
    "header_json_schema",
    "read_encodings",
    "read_header",
]

MAGIC = b"PACELINK"
FORMAT_NAME = "pacelink-encodings"
FORMAT_VERSION: Literal[2] = 2
#: Versions this release reads (it writes `FORMAT_VERSION`).
READABLE_VERSIONS = (1, 2)
_PREFIX = struct.Struct("<8sI")
_ALIGN = 4096
_RESERVED = 2 * _ALIGN  # header space reserved before the bits while streaming
_KEY_ALIGN = 16  # the pseudonyms start on a 16-byte boundary: one row never straddles two
HISTOGRAM_BINS = 64

U8Array = np.ndarray[Any, np.dtype[np.uint8]]


class EncodingFileError(ValueError):
    """A `.plk` file is malformed or does not match what was expected; names the file."""


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
    """How many encoded records had a value for a feature."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    present: int = Field(ge=0)


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
        if self.record_keys.offset != _keys_offset(self._bits_end()):
            raise ValueError("record_keys.offset must be the end of the bits rounded up to 16")
        return self

    def _bits_end(self) -> int:
        return self.data_offset + self.record_count * (self.bit_length // 8)

    def expected_size(self) -> int:
        """The file's size in bytes, as this header describes it."""
        if self.record_keys is None:
            return self._bits_end()
        return self.record_keys.offset + self.record_count * PSEUDONYM_BYTES


def _keys_offset(bits_end: int) -> int:
    """Where the pseudonyms start: the end of the bits, rounded up to 16 bytes."""
    return -(-bits_end // _KEY_ALIGN) * _KEY_ALIGN


def header_json_schema() -> dict[str, Any]:
    """JSON Schema of the `.plk` header, as shipped in `schemas/`."""
    schema = PlkHeader.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://pacelink.example/schemas/plk-header.schema.json"
    return schema


@dataclass
class Encodings:
    """Encodings in memory or memory-mapped from a `.plk` file.

    Attributes:
        bits: `(n, bit_length / 8)` uint8, row i is record i.
        header: The file header as a dict (for in-memory encodings, what the file would hold).
        report: For freshly encoded data, the encode report; None when read from a file.
        record_key_bytes: `(n, 16)` uint8 (memory-mapped from a file), row i is record i's
            pseudonym; None when the partner encoded without a record key (and in v1 files).
        local_ids: For freshly encoded data, row i's canonical local ID, as the key map
            would hold it ("" for a decoy row); None when read from a file (the key map
            stays with the partner).
    """

    bits: U8Array
    header: dict[str, Any]
    report: Any = field(default=None, repr=False)
    record_key_bytes: U8Array | None = field(default=None, repr=False)
    local_ids: list[str] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.bits.shape[0])

    @cached_property
    def record_keys(self) -> NDArray[np.str_] | None:
        """Row i's record pseudonym as 32 lower-case hex digits (`<U32`), or None without.

        Decoded from `record_key_bytes` on first use and kept (128 bytes a row: use
        `record_key_bytes` for very large files).
        """
        if self.record_key_bytes is None:
            return None
        return pseudonym_hex(np.asarray(self.record_key_bytes))

    @property
    def bit_length(self) -> int:
        return int(self.header["bit_length"])

    def popcounts(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Set bits per record."""
        counts: np.ndarray[Any, np.dtype[np.int64]] = np.bitwise_count(self.bits).sum(
            axis=1, dtype=np.int64
        )
        return counts


class _PopcountAccumulator:
    def __init__(self, bit_length: int) -> None:
        self.n = 0
        self.total = 0
        self.total_sq = 0
        self.min = bit_length
        self.max = 0
        self.edges = np.linspace(0, bit_length + 1, HISTOGRAM_BINS + 1).round().astype(int)
        self.counts = np.zeros(HISTOGRAM_BINS, dtype=np.int64)

    def add(self, bits: U8Array) -> None:
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


class EncodingWriter:
    """Streams packed filters into a new `.plk` file, atomically.

    Use as a context manager: `append` chunks, then `finish`; leaving the block without
    `finish` (or with an exception) removes the temporary file and leaves nothing behind.
    Record pseudonyms, which follow all the bits in the file, are spooled to a second
    temporary file until `finish` (16 bytes a record: memory stays bounded).
    """

    def __init__(self, path: Path, bit_length: int) -> None:
        if bit_length % 8:
            raise ValueError("bit_length must be a multiple of 8")
        self.path = path
        self.bit_length = bit_length
        self._digest = hashlib.sha256()
        self._pop = _PopcountAccumulator(bit_length)
        self._count = 0
        self._fh: Any = None
        self._tmp: Path | None = None
        self._keys: Any = None  # spooled pseudonyms, once the first chunk brings some
        self._with_keys: bool | None = None  # decided by the first chunk
        self.header: PlkHeader | None = None

    def __enter__(self) -> EncodingWriter:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        self._tmp = Path(tmp)
        self._fh = os.fdopen(fd, "wb")
        self._fh.write(b"\0" * _RESERVED)
        return self

    def append(self, bits: U8Array, record_keys: U8Array | None = None) -> None:
        """Append rows `(k, bit_length / 8)`, with their pseudonyms `(k, 16)` uint8 if any.

        Either every chunk comes with pseudonyms or none does.
        """
        if bits.ndim != 2 or bits.shape[1] * 8 != self.bit_length or bits.dtype != np.uint8:
            raise ValueError(f"expected uint8 rows of {self.bit_length // 8} bytes")
        with_keys = record_keys is not None
        if self._with_keys is None:
            self._with_keys = with_keys
            if with_keys:
                # Closed (and so removed) by __exit__, like the main temporary file.
                self._keys = tempfile.TemporaryFile(dir=self.path.parent)  # noqa: SIM115
        elif self._with_keys != with_keys:
            raise ValueError("either every chunk comes with record keys or none does")
        if record_keys is not None:
            if (
                record_keys.shape != (bits.shape[0], PSEUDONYM_BYTES)
                or record_keys.dtype != np.uint8
            ):
                raise ValueError(f"expected one uint8 row of {PSEUDONYM_BYTES} bytes per record")
            self._keys.write(np.ascontiguousarray(record_keys).tobytes())
        data = np.ascontiguousarray(bits).tobytes()
        self._fh.write(data)
        self._digest.update(data)
        self._pop.add(bits)
        self._count += bits.shape[0]

    def finish(
        self,
        *,
        encoder_version: str,
        schema_fingerprint: str,
        key_check_value: str,
        features: Sequence[tuple[str, int]],
        input_summary: InputSummary | None = None,
        record_key_check: str | None = None,
    ) -> PlkHeader:
        """Write the pseudonyms (if any) and the header, and move the file into place.

        Args:
            record_key_check: `RecordKey.check_value` of the key that made the pseudonyms;
                required when the chunks came with pseudonyms, refused when they did not.
        """
        if (record_key_check is not None) != bool(self._with_keys):
            if record_key_check is None:
                raise ValueError("the chunks came with record keys: give record_key_check")
            if self._with_keys is False:
                raise ValueError("record_key_check given, but the chunks came without keys")
        record_keys = None
        if record_key_check is not None:
            bits_end = _RESERVED + self._count * (self.bit_length // 8)
            offset = _keys_offset(bits_end)
            self._fh.write(b"\0" * (offset - bits_end))
            if self._keys is not None:
                self._keys.seek(0)
                while block := self._keys.read(1 << 20):
                    self._fh.write(block)
                    self._digest.update(block)
            record_keys = RecordKeysInfo(check_value=record_key_check, offset=offset)
        header = PlkHeader(
            encoder_version=encoder_version,
            schema_fingerprint=schema_fingerprint,
            key_check_value=key_check_value,
            bit_length=self.bit_length,
            record_count=self._count,
            popcount=self._pop.stats(),
            features=[FeatureCoverage(name=n, present=p) for n, p in features],
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            content_digest="sha256:" + self._digest.hexdigest(),
            data_offset=_RESERVED,
            input_summary=input_summary,
            record_keys=record_keys,
        )
        blob = header.model_dump_json(exclude_none=True).encode("utf-8")
        if _PREFIX.size + len(blob) > _RESERVED:
            raise EncodingFileError(f"{self.path}: header too large ({len(blob)} bytes)")
        self._fh.seek(0)
        self._fh.write(_PREFIX.pack(MAGIC, len(blob)) + blob)
        self._fh.write(b" " * (_RESERVED - _PREFIX.size - len(blob)))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        assert self._tmp is not None
        os.replace(self._tmp, self.path)
        self._tmp = None
        self.header = header
        return header

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        if self._keys is not None:
            self._keys.close()  # a TemporaryFile: closing removes it
            self._keys = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def read_header(path: Path) -> PlkHeader:
    """Read and validate the header of a `.plk` file without touching the bits."""
    try:
        with path.open("rb") as fh:
            prefix = fh.read(_PREFIX.size)
            if len(prefix) < _PREFIX.size:
                raise EncodingFileError(f"{path}: too short to be a pacelink encoding file")
            magic, length = _PREFIX.unpack(prefix)
            if magic != MAGIC:
                raise EncodingFileError(f"{path}: not a pacelink encoding file (bad magic)")
            if length > 1 << 20:
                raise EncodingFileError(f"{path}: implausible header length {length}")
            blob = fh.read(length)
            if len(blob) < length:
                raise EncodingFileError(
                    f"{path}: the header length ({length} bytes) runs past the end of the file "
                    "(truncated?)"
                )
    except OSError as exc:
        raise EncodingFileError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        doc = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise EncodingFileError(f"{path}: the header is not valid JSON") from None
    found = doc.get("format_version") if isinstance(doc, dict) else None
    if found is not None and found not in READABLE_VERSIONS:
        newer = isinstance(found, int) and found > FORMAT_VERSION
        raise EncodingFileError(
            f"{path}: format version {found} is not supported by this encoder (supports "
            f"{' and '.join(map(str, READABLE_VERSIONS))})"
            + ("; upgrade pacelink" if newer else "")
        )
    try:
        return PlkHeader.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise EncodingFileError(f"{path}: invalid header field {loc!r}: {err['msg']}") from None


def read_encodings(path: str | Path, *, verify: bool = True) -> Encodings:
    """Open a `.plk` file; the bits are memory-mapped read-only.

    Args:
        verify: Check the content digest (reads the whole file once).

    Raises:
        EncodingFileError: Malformed, truncated or corrupted file.
    """
    path = Path(path)
    header = read_header(path)
    width = header.bit_length // 8
    expected = header.expected_size()
    size = path.stat().st_size
    if size != expected:
        raise EncodingFileError(
            f"{path}: file is {size} bytes but the header describes {expected} "
            "(truncated or padded)"
        )
    if header.record_count:
        bits: U8Array = np.memmap(
            path, dtype=np.uint8, mode="r", offset=header.data_offset,
            shape=(header.record_count, width),
        )  # fmt: skip
    else:
        bits = np.zeros((0, width), dtype=np.uint8)
    keys: U8Array | None = None
    if header.record_keys is not None:
        keys = _read_record_keys(path, header, header.record_keys.offset)
    if verify:
        digest = hashlib.sha256()
        for part in (bits, keys):
            if part is None:
                continue
            step = max(1, (64 << 20) // max(part.shape[1], 1))
            for start in range(0, part.shape[0], step):
                digest.update(np.ascontiguousarray(part[start : start + step]).tobytes())
        if "sha256:" + digest.hexdigest() != header.content_digest:
            raise EncodingFileError(f"{path}: content digest mismatch (the file is corrupted)")
    return Encodings(bits=bits, header=header.model_dump(), record_key_bytes=keys)


def _read_record_keys(path: Path, header: PlkHeader, offset: int) -> U8Array:
    """The pseudonyms, memory-mapped; the padding before them must be zero bytes."""
    bits_end = header.data_offset + header.record_count * (header.bit_length // 8)
    with path.open("rb") as fh:
        fh.seek(bits_end)
        if fh.read(offset - bits_end).strip(b"\0"):
            raise EncodingFileError(f"{path}: non-zero bytes before the record keys (corrupted)")
    if not header.record_count:
        return np.zeros((0, PSEUDONYM_BYTES), dtype=np.uint8)
    keys: U8Array = np.memmap(
        path, dtype=np.uint8, mode="r", offset=offset,
        shape=(header.record_count, PSEUDONYM_BYTES),
    )  # fmt: skip
    return keys
