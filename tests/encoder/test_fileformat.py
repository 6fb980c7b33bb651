"""The `.plk` format: round trip, header contents, atomic writes, corruption detected."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from encoder.fileformat import (
    MAGIC,
    EncodingFileError,
    EncodingWriter,
    HeaderFacts,
    InputSummary,
    PlkHeader,
    read_encodings,
    read_header,
)

FIELDS = {
    "encoder_version": "0.1.0",
    "schema_fingerprint": "sha256:" + "ab" * 32,
    "key_check_value": "cd" * 16,
    "features": [("given_name", 3), ("surname", 2)],
}


def _write(path: Path, bits: np.ndarray, chunks: int = 3) -> PlkHeader:
    with EncodingWriter(path, bits.shape[1] * 8) as writer:
        for part in np.array_split(bits, chunks):
            writer.append(part)
        return writer.finish(HeaderFacts(**FIELDS))


def test_round_trip_memory_mapped(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 256, size=(1000, 128), dtype=np.uint8)
    path = tmp_path / "a.plk"
    header = _write(path, bits)
    enc = read_encodings(path)
    assert isinstance(enc.bits, np.memmap)
    assert enc.bits.shape == (1000, 128)
    assert np.array_equal(enc.bits, bits)
    assert len(enc) == 1000
    assert enc.header["record_count"] == 1000 == header.record_count
    pc = np.bitwise_count(bits).sum(axis=1)
    assert enc.header["popcount"]["mean"] == pytest.approx(pc.mean())
    assert enc.header["popcount"]["std"] == pytest.approx(pc.std())
    assert enc.header["popcount"]["min"] == pc.min()
    assert sum(enc.header["popcount"]["histogram_counts"]) == 1000
    assert np.array_equal(enc.popcounts(), pc)
    assert enc.header["data_offset"] % 4096 == 0
    assert path.read_bytes()[:8] == MAGIC
    assert [f["name"] for f in enc.header["features"]] == ["given_name", "surname"]


def test_the_header_is_typed_and_a_plain_dict_of_its_json_form(tmp_path: Path) -> None:
    """`plk_header.x` for new code; `header` stays the plain dict of earlier releases."""
    path = tmp_path / "m.plk"
    _write(path, np.ones((3, 64), dtype=np.uint8), chunks=1)
    enc = read_encodings(path)
    typed, header = enc.plk_header, enc.header
    assert isinstance(typed, PlkHeader) and type(header) is dict
    assert typed.record_count == header["record_count"] == 3
    assert header["popcount"] == typed.popcount.model_dump()
    assert header["features"] == [{"name": "given_name", "present": 3},
                                  {"name": "surname", "present": 2}]  # fmt: skip
    assert header["record_keys"] is None and list(header) == list(PlkHeader.model_fields)
    assert json.loads(json.dumps(header)) == json.loads(typed.model_dump_json())


def test_empty_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "e.plk"
    _write(path, np.zeros((0, 64), dtype=np.uint8), chunks=1)
    enc = read_encodings(path)
    assert len(enc) == 0 and enc.bits.shape == (0, 64)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "x.plk"

    def fail_midway() -> None:
        with EncodingWriter(path, 1024) as writer:
            writer.append(np.zeros((5, 128), dtype=np.uint8))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_midway()
    assert list(tmp_path.iterdir()) == []
    with EncodingWriter(path, 1024) as writer, pytest.raises(ValueError, match="128 bytes"):
        writer.append(np.zeros((5, 64), dtype=np.uint8))
    assert list(tmp_path.iterdir()) == []  # never finished: no file


def test_truncation_and_corruption_are_detected(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 256, size=(50, 128), dtype=np.uint8)
    path = tmp_path / "c.plk"
    _write(path, bits)
    data = bytearray(path.read_bytes())
    (tmp_path / "t.plk").write_bytes(data[:-10])
    with pytest.raises(EncodingFileError, match="truncated"):
        read_encodings(tmp_path / "t.plk")
    data[-1] ^= 0xFF
    (tmp_path / "f.plk").write_bytes(data)
    with pytest.raises(EncodingFileError, match="digest mismatch"):
        read_encodings(tmp_path / "f.plk")
    read_encodings(tmp_path / "f.plk", verify=False)  # explicit opt-out still opens
    (tmp_path / "m.plk").write_bytes(b"NOTAPLK!" + bytes(data[8:]))
    with pytest.raises(EncodingFileError, match="bad magic"):
        read_header(tmp_path / "m.plk")
    (tmp_path / "s.plk").write_bytes(b"PACE")
    with pytest.raises(EncodingFileError, match="too short"):
        read_header(tmp_path / "s.plk")
    length = int.from_bytes(data[8:12], "little")
    (tmp_path / "h.plk").write_bytes(bytes(data[: 12 + length // 2]))  # cut inside the header
    with pytest.raises(EncodingFileError, match="runs past the end of the file"):
        read_header(tmp_path / "h.plk")


def test_header_fields_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "h.plk"
    _write(path, np.zeros((2, 128), dtype=np.uint8), chunks=1)
    data = path.read_bytes()
    tampered = data.replace(b'"bit_length":1024', b'"bit_length":1025')
    (tmp_path / "b.plk").write_bytes(tampered)
    with pytest.raises(EncodingFileError, match="bit_length"):
        read_header(tmp_path / "b.plk")
    future = data.replace(b'"format_version":2', b'"format_version":9')
    (tmp_path / "v.plk").write_bytes(future)
    with pytest.raises(EncodingFileError, match="format version 9 is not supported"):
        read_header(tmp_path / "v.plk")


def test_input_summary_is_optional_and_round_trips(tmp_path: Path) -> None:
    """Files from older encoders have no input summary and still read; new ones carry it."""
    old = tmp_path / "old.plk"
    _write(old, np.zeros((2, 128), dtype=np.uint8), chunks=1)
    assert b"input_summary" not in old.read_bytes()[:8192]  # as an older encoder wrote it
    assert read_header(old).input_summary is None
    assert read_encodings(old).header["input_summary"] is None
    new = tmp_path / "new.plk"
    with EncodingWriter(new, 1024) as writer:
        writer.append(np.zeros((2, 128), dtype=np.uint8))
        summary = InputSummary(records_in=15, excluded_no_consent=1, rejected=2)
        writer.finish(HeaderFacts(**FIELDS, input_summary=summary))
    assert read_header(new).input_summary == summary
    tampered = new.read_bytes().replace(b'"records_in":15', b'"records_in":-1')
    (tmp_path / "bad.plk").write_bytes(tampered)
    with pytest.raises(EncodingFileError, match=r"input_summary\.records_in"):
        read_header(tmp_path / "bad.plk")
