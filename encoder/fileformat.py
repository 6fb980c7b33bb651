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

The header's model (`encoder.fileheader`) is the single source of truth;
`schemas/plk-header.schema.json` is its JSON Schema export (a test keeps them equal); its
names are importable from here too, as they always were. Files are written to a temporary
name and renamed into place only when complete, so a failed run leaves no half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from encoder.atomic import move_into_place, temporary_beside
from encoder.fileheader import (
    DATA_OFFSET,
    FORMAT_NAME,
    FORMAT_VERSION,
    READABLE_VERSIONS,
    FeatureCoverage,
    HeaderFacts,
    InputSummary,
    PlkHeader,
    PopcountAccumulator,
    PopcountStats,
    RecordKeysInfo,
    header_json_schema,
    keys_offset,
    make_header,
)
from encoder.keys import PSEUDONYM_BYTES, pseudonym_hex

if TYPE_CHECKING:
    from encoder.report import EncodeReport

# The header's names are re-exported: readers have always imported them from here.
__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAGIC",
    "READABLE_VERSIONS",
    "EncodingFileError",
    "EncodingWriter",
    "Encodings",
    "FeatureCoverage",
    "HeaderFacts",
    "InputSummary",
    "PlkHeader",
    "PopcountStats",
    "RecordKeysInfo",
    "header_json_schema",
    "read_encodings",
    "read_header",
]

MAGIC = b"PACELINK"
_PREFIX = struct.Struct("<8sI")
_U8Array = np.ndarray[Any, np.dtype[np.uint8]]


class EncodingFileError(ValueError):
    """A `.plk` file is malformed or does not match what was expected; names the file."""


@dataclass
class Encodings:
    """Encodings in memory or memory-mapped from a `.plk` file.

    Attributes:
        bits: `(n, bit_length / 8)` uint8, row i is record i.
        plk_header: The file header, typed (for in-memory encodings, what the file would
            hold).
        report: For freshly encoded data, the encode report; None when read from a file.
        record_key_bytes: `(n, 16)` uint8 (memory-mapped from a file), row i is record i's
            pseudonym; None when the partner encoded without a record key (and in v1 files).
        local_ids: For freshly encoded data, row i's canonical local ID, as the key map
            would hold it ("" for a decoy row); None when read from a file (the key map
            stays with the partner).
    """

    bits: _U8Array
    plk_header: PlkHeader
    report: EncodeReport | None = field(default=None, repr=False)
    record_key_bytes: _U8Array | None = field(default=None, repr=False)
    local_ids: list[str] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        """The number of rows."""
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

    @cached_property
    def header(self) -> dict[str, Any]:
        """The header as a plain dict (the stable API of earlier releases; JSON-serialisable).

        New code reads the typed `plk_header` instead.
        """
        return self.plk_header.model_dump()

    @property
    def bit_length(self) -> int:
        """Bits per encoding."""
        return self.plk_header.bit_length

    def popcounts(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Set bits per record."""
        counts: np.ndarray[Any, np.dtype[np.int64]] = np.bitwise_count(self.bits).sum(
            axis=1, dtype=np.int64
        )
        return counts


class EncodingWriter:
    """Streams packed filters into a new `.plk` file, atomically.

    Use as a context manager: `append` chunks, then `finish`; leaving the block without
    `finish` (or with an exception) removes the temporary file and leaves nothing behind.
    Record pseudonyms, which follow all the bits in the file, are spooled to a second
    temporary file until `finish` (16 bytes a record: memory stays bounded).
    """

    def __init__(self, path: Path, bit_length: int) -> None:
        """Prepare to write `path`, rows of `bit_length` bits (a multiple of 8)."""
        if bit_length % 8:
            raise ValueError("bit_length must be a multiple of 8")
        self.path = path
        self.bit_length = bit_length
        self._digest = hashlib.sha256()
        self._pop = PopcountAccumulator(bit_length)
        self._count = 0
        self._fh: Any = None
        self._tmp: Path | None = None
        self._keys: Any = None  # spooled pseudonyms, once the first chunk brings some
        self._with_keys: bool | None = None  # decided by the first chunk
        self.header: PlkHeader | None = None

    def __enter__(self) -> EncodingWriter:
        """Create the temporary file, with space for the header."""
        fd, self._tmp = temporary_beside(self.path)
        self._fh = os.fdopen(fd, "wb")
        self._fh.write(b"\0" * DATA_OFFSET)
        return self

    def append(self, bits: _U8Array, record_keys: _U8Array | None = None) -> None:
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

    def finish(self, facts: HeaderFacts) -> PlkHeader:
        """Write the pseudonyms (if any) and the header, and move the file into place.

        `facts.record_key_check` is required when the chunks came with pseudonyms, and
        refused when they did not.
        """
        record_key_check = facts.record_key_check
        if (record_key_check is not None) != bool(self._with_keys):
            if record_key_check is None:
                raise ValueError("the chunks came with record keys: give record_key_check")
            if self._with_keys is False:
                raise ValueError("record_key_check given, but the chunks came without keys")
        if record_key_check is not None:
            bits_end = DATA_OFFSET + self._count * (self.bit_length // 8)
            self._fh.write(b"\0" * (keys_offset(bits_end) - bits_end))
            if self._keys is not None:
                self._keys.seek(0)
                while block := self._keys.read(1 << 20):
                    self._fh.write(block)
                    self._digest.update(block)
        header = make_header(
            facts,
            bit_length=self.bit_length,
            record_count=self._count,
            popcount=self._pop.stats(),
            content_digest="sha256:" + self._digest.hexdigest(),
        )
        blob = header.model_dump_json(exclude_none=True).encode("utf-8")
        if _PREFIX.size + len(blob) > DATA_OFFSET:
            raise EncodingFileError(f"{self.path}: header too large ({len(blob)} bytes)")
        self._fh.seek(0)
        self._fh.write(_PREFIX.pack(MAGIC, len(blob)) + blob)
        self._fh.write(b" " * (DATA_OFFSET - _PREFIX.size - len(blob)))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        assert self._tmp is not None
        move_into_place(self._tmp, self.path)
        self._tmp = None
        self.header = header
        return header

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Remove the temporary files; the file is in place only if `finish` ran."""
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
        path: The `.plk` file.
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
        bits: _U8Array = np.memmap(
            path, dtype=np.uint8, mode="r", offset=header.data_offset,
            shape=(header.record_count, width),
        )  # fmt: skip
    else:
        bits = np.zeros((0, width), dtype=np.uint8)
    keys: _U8Array | None = None
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
    return Encodings(bits=bits, plk_header=header, record_key_bytes=keys)


def _read_record_keys(path: Path, header: PlkHeader, offset: int) -> _U8Array:
    """The pseudonyms, memory-mapped; the padding before them must be zero bytes."""
    bits_end = header.data_offset + header.record_count * (header.bit_length // 8)
    with path.open("rb") as fh:
        fh.seek(bits_end)
        if fh.read(offset - bits_end).strip(b"\0"):
            raise EncodingFileError(f"{path}: non-zero bytes before the record keys (corrupted)")
    if not header.record_count:
        return np.zeros((0, PSEUDONYM_BYTES), dtype=np.uint8)
    keys: _U8Array = np.memmap(
        path, dtype=np.uint8, mode="r", offset=offset,
        shape=(header.record_count, PSEUDONYM_BYTES),
    )  # fmt: skip
    return keys
