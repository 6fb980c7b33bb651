"""Record keys: the partner's own key, its pseudonyms, the `.plk` v2 section, CLI, ID lists."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from encoder.cli import NO_RECORD_KEY_WARNING, app
from encoder.encode import EncodeError, EncodeOptions, encode_dataframe, encode_file
from encoder.fileformat import (
    FORMAT_VERSION,
    MAGIC,
    EncodingFileError,
    EncodingWriter,
    HeaderFacts,
    read_encodings,
    read_header,
)
from encoder.keymap import KeyMapError, read_key_map, read_local_ids, spreadsheet_safe
from encoder.keys import (
    RECORD_KEY_MARKER,
    SECRET_ENV_VAR,
    RecordKey,
    Secret,
    SecretError,
    generate_record_key,
    generate_secret,
    load_record_key,
    load_secret,
    pseudonym_hex,
    write_record_key,
    write_secret,
)
from encoder.schema import load_schema
from tests.conftest import TEST_SECRET
from tests.encoder.test_encode import HEADER, ROWS, _write_csv

runner = CliRunner()
KEY = RecordKey(bytes(range(32)))
FIELDS: dict[str, Any] = {
    "encoder_version": "0.1.0",
    "schema_fingerprint": "sha256:" + "ab" * 32,
    "key_check_value": "cd" * 16,
    "features": [("given_name", 3)],
}


def _hmac128(key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, "sha256")[:16]


# --------------------------------------------------------------------------- the key


def test_pseudonyms_are_the_documented_hmac_and_deterministic_per_key() -> None:
    ids = ["C001", "SDS-002348", "Zoë", "=HYPERLINK(1)", "x" * 300]
    got = KEY.pseudonyms(ids)
    assert got.dtype == np.dtype("<U32") and got.shape == (5,)
    want = [_hmac128(KEY.value, b"pacelink/record-pseudonym/v1:" + i.encode()).hex() for i in ids]
    assert got.tolist() == want
    assert np.array_equal(KEY.pseudonyms(ids), RecordKey(bytes(range(32))).pseudonyms(ids))
    other = generate_record_key()
    assert not set(other.pseudonyms(ids)) & set(got)
    assert KEY.pseudonym_bytes([]).shape == (0, 16) and KEY.pseudonyms([]).shape == (0,)
    assert np.array_equal(pseudonym_hex(KEY.pseudonym_bytes(ids)), got)


def test_check_value_is_public_and_names_the_key() -> None:
    assert KEY.check_value == _hmac128(KEY.value, b"pacelink/record-key-check/v1").hex()
    assert len(KEY.check_value) == 32
    assert KEY.check_value != generate_record_key().check_value
    for text in (repr(KEY), str(KEY), f"{KEY}", repr([KEY])):
        assert KEY.value.hex() not in text and KEY.value.hex()[:16] not in text
        assert KEY.check_value in text
    with pytest.raises(SecretError, match="32 bytes"):
        RecordKey(b"short")


def test_record_key_file_round_trip_mode_and_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "sds.record.key"
    key = generate_record_key()
    write_record_key(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith(RECORD_KEY_MARKER)
    assert load_record_key(path) == key
    with pytest.raises(SecretError, match="refusing to overwrite a record key"):
        write_record_key(path, generate_record_key())
    assert load_record_key(path) == key  # untouched
    new = generate_record_key()
    write_record_key(path, new, overwrite=True)
    assert load_record_key(path) == new
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sds.record.key"]  # no temp left
    with pytest.raises(SecretError, match="cannot create record key file"):
        write_record_key(tmp_path / "absent" / "k", key)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_record_key_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.key"
    write_record_key(path, KEY)
    path.chmod(0o644)
    with pytest.raises(SecretError, match=r"record key file .* readable or writable by other"):
        load_record_key(path)


def test_partnership_secret_given_as_record_key_is_refused(tmp_path: Path) -> None:
    secret = generate_secret()
    path = tmp_path / "partnership.key"
    write_secret(path, secret)
    with pytest.raises(SecretError) as info:
        load_record_key(path)
    message = str(info.value)
    assert str(path) in message and "looks like the partnership secret" in message
    assert RECORD_KEY_MARKER in message and "keygen --record-key" in message
    assert secret.value not in message


def test_record_key_given_as_partnership_secret_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.key"
    write_record_key(path, KEY)
    with pytest.raises(SecretError) as info:
        load_secret(path)
    message = str(info.value)
    assert f"secret file {path} holds a pacelink record key" in message
    assert "not the partnership secret" in message and KEY.value.hex() not in message
    monkeypatch.setenv(SECRET_ENV_VAR, path.read_text())
    with pytest.raises(SecretError, match=f"environment variable {SECRET_ENV_VAR} holds a"):
        load_secret(None)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is not a pacelink record key file"),
        (b"hello\n", "is not a pacelink record key file"),
        (b"\xff\xfe\x00", "is not a pacelink record key file"),
        ((RECORD_KEY_MARKER + "ab" * 31 + "\n").encode(), "is damaged"),
        ((RECORD_KEY_MARKER + "AB" * 32 + "\n").encode(), "is damaged"),
    ],
)
def test_malformed_record_key_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(SecretError, match=message) as info:
        load_record_key(path)
    assert str(path) in str(info.value) and "abab" not in str(info.value)
    with pytest.raises(SecretError, match="cannot read record key file"):
        load_record_key(tmp_path / "absent.key")


# --------------------------------------------------------------------------- the .plk section


def _write(path: Path, bits: np.ndarray, keys: np.ndarray | None, chunks: int = 3) -> Any:
    with EncodingWriter(path, bits.shape[1] * 8) as writer:
        parts = np.array_split(np.arange(len(bits)), chunks)
        for rows in parts:
            writer.append(bits[rows], None if keys is None else keys[rows])
        check = None if keys is None else KEY.check_value
        return writer.finish(HeaderFacts(**FIELDS, record_key_check=check))


def test_v2_round_trip_with_record_keys(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 256, size=(101, 125), dtype=np.uint8)  # 1000 bits: padding needed
    ids = [f"C{i}" for i in range(101)]
    keys = KEY.pseudonym_bytes(ids)
    path = tmp_path / "k.plk"
    header = _write(path, bits, keys)
    assert header.format_version == FORMAT_VERSION == 2
    assert header.record_keys is not None
    info = header.record_keys
    assert (info.algorithm, info.check_value) == ("hmac-sha256-128", KEY.check_value)
    assert info.offset % 16 == 0 and info.offset >= header.data_offset + 101 * 125
    assert path.stat().st_size == info.offset + 101 * 16
    enc = read_encodings(path)
    assert np.array_equal(enc.bits, bits)
    assert enc.record_key_bytes is not None and np.array_equal(enc.record_key_bytes, keys)
    assert enc.record_keys is not None and enc.record_keys.tolist() == KEY.pseudonyms(ids).tolist()
    assert enc.header["record_keys"]["check_value"] == KEY.check_value
    data = path.read_bytes()
    body = data[header.data_offset : header.data_offset + 101 * 125] + data[info.offset :]
    assert enc.header["content_digest"] == "sha256:" + hashlib.sha256(body).hexdigest()


def test_v2_round_trip_without_record_keys_and_empty(tmp_path: Path) -> None:
    bits = np.random.default_rng(4).integers(0, 256, size=(7, 128), dtype=np.uint8)
    header = _write(tmp_path / "n.plk", bits, None)
    assert header.format_version == 2 and header.record_keys is None
    enc = read_encodings(tmp_path / "n.plk")
    assert enc.record_keys is None and enc.record_key_bytes is None
    assert b"record_keys" not in (tmp_path / "n.plk").read_bytes()[:8192]
    empty = np.zeros((0, 128), dtype=np.uint8)
    _write(tmp_path / "e.plk", empty, np.zeros((0, 16), dtype=np.uint8), chunks=1)
    enc = read_encodings(tmp_path / "e.plk")
    assert enc.record_keys is not None and enc.record_keys.shape == (0,)
    with EncodingWriter(tmp_path / "z.plk", 1024) as writer:  # no chunk at all, with a key
        writer.finish(HeaderFacts(**FIELDS, record_key_check=KEY.check_value))
    assert read_header(tmp_path / "z.plk").record_keys is not None


def test_digest_covers_record_keys_and_sizes_are_exact(tmp_path: Path) -> None:
    bits = np.zeros((20, 125), dtype=np.uint8)
    path = tmp_path / "d.plk"
    header = _write(path, bits, KEY.pseudonym_bytes([str(i) for i in range(20)]))
    data = bytearray(path.read_bytes())
    flipped = bytearray(data)
    flipped[header.record_keys.offset + 5] ^= 0x01
    (tmp_path / "f.plk").write_bytes(flipped)
    with pytest.raises(EncodingFileError, match="digest mismatch"):
        read_encodings(tmp_path / "f.plk")
    (tmp_path / "t.plk").write_bytes(data[:-16])  # one pseudonym short
    with pytest.raises(EncodingFileError, match="truncated or padded"):
        read_encodings(tmp_path / "t.plk")
    (tmp_path / "p.plk").write_bytes(data + b"\0" * 16)
    with pytest.raises(EncodingFileError, match="truncated or padded"):
        read_encodings(tmp_path / "p.plk")
    padded = bytearray(data)
    padded[header.record_keys.offset - 1] = 1  # the alignment gap must stay zero
    (tmp_path / "g.plk").write_bytes(padded)
    with pytest.raises(EncodingFileError, match="non-zero bytes before the record keys"):
        read_encodings(tmp_path / "g.plk")
    moved = bytes(data).replace(
        f'"offset":{header.record_keys.offset}'.encode(),
        f'"offset":{header.record_keys.offset + 16}'.encode(),
    )
    (tmp_path / "o.plk").write_bytes(moved)
    with pytest.raises(EncodingFileError, match=r"record_keys\.offset must be the end of the bits"):
        read_header(tmp_path / "o.plk")


def test_writer_refuses_mixed_chunks_and_a_missing_check(tmp_path: Path) -> None:
    bits = np.zeros((2, 128), dtype=np.uint8)
    with EncodingWriter(tmp_path / "m.plk", 1024) as writer:
        writer.append(bits, np.zeros((2, 16), dtype=np.uint8))
        with pytest.raises(ValueError, match="every chunk comes with record keys or none"):
            writer.append(bits)
        with pytest.raises(ValueError, match="one uint8 row of 16 bytes per record"):
            writer.append(bits, np.zeros((3, 16), dtype=np.uint8))
        with pytest.raises(ValueError, match="give record_key_check"):
            writer.finish(HeaderFacts(**FIELDS))
    with EncodingWriter(tmp_path / "n.plk", 1024) as writer:
        writer.append(bits)
        with pytest.raises(ValueError, match="came without keys"):
            writer.finish(HeaderFacts(**FIELDS, record_key_check=KEY.check_value))
    assert list(tmp_path.iterdir()) == []  # nothing finished, no temporary file left


def _v1_file(path: Path, bits: np.ndarray) -> None:
    """A `.plk` as format version 1 wrote it: magic, uint32 length, JSON header, bits at 8192."""
    popcount = np.bitwise_count(bits).sum(axis=1)
    header = {
        "format": "pacelink-encodings",
        "format_version": 1,
        "encoder_version": "0.0.9",
        "schema_fingerprint": "sha256:" + "ab" * 32,
        "key_check_value": "cd" * 16,
        "bit_length": bits.shape[1] * 8,
        "bit_order": "clkhash",
        "record_count": len(bits),
        "popcount": {
            "mean": float(popcount.mean()),
            "std": float(popcount.std()),
            "min": int(popcount.min()),
            "max": int(popcount.max()),
            "histogram_edges": [0, bits.shape[1] * 8 + 1],
            "histogram_counts": [len(bits)],
        },
        "features": [{"name": "given_name", "present": len(bits)}],
        "created_at": "2026-01-01T00:00:00+00:00",
        "content_digest": "sha256:" + hashlib.sha256(bits.tobytes()).hexdigest(),
        "data_offset": 8192,
    }
    blob = json.dumps(header).encode()
    prefix = struct.pack("<8sI", MAGIC, len(blob)) + blob
    path.write_bytes(prefix + b" " * (8192 - len(prefix)) + bits.tobytes())


def test_a_version_1_file_still_reads(tmp_path: Path) -> None:
    bits = np.random.default_rng(5).integers(0, 256, size=(9, 128), dtype=np.uint8)
    _v1_file(tmp_path / "v1.plk", bits)
    enc = read_encodings(tmp_path / "v1.plk")
    assert enc.header["format_version"] == 1 and enc.header["record_keys"] is None
    assert np.array_equal(enc.bits, bits) and enc.record_keys is None
    text = (tmp_path / "v1.plk").read_bytes()
    doc = json.loads(text[12 : 12 + struct.unpack("<I", text[8:12])[0]])
    doc["record_keys"] = {"algorithm": "hmac-sha256-128", "check_value": "ab" * 16,
                          "offset": 8192 + 9 * 128}  # fmt: skip
    blob = json.dumps(doc).encode()
    prefix = struct.pack("<8sI", MAGIC, len(blob)) + blob
    (tmp_path / "bad.plk").write_bytes(prefix + b" " * (8192 - len(prefix)) + bits.tobytes())
    with pytest.raises(EncodingFileError, match="record_keys needs format version 2"):
        read_header(tmp_path / "bad.plk")


def test_a_version_3_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.plk"
    _write(path, np.zeros((2, 128), dtype=np.uint8), None, chunks=1)
    data = path.read_bytes().replace(b'"format_version":2', b'"format_version":3')
    (tmp_path / "v3.plk").write_bytes(data)
    with pytest.raises(EncodingFileError, match=r"format version 3 is not supported.*upgrade"):
        read_encodings(tmp_path / "v3.plk")


# --------------------------------------------------------------------------- encoding


def _encode(tmp_path: Path, rows: list[list[str]], key: RecordKey | None, name: str = "out",
            **opts: Any) -> Any:  # fmt: skip
    src = _write_csv(tmp_path / f"{name}.csv", rows)
    options = EncodeOptions(id_column="client_ref", consent_column="consent", record_key=key,
                            **opts)  # fmt: skip
    out = tmp_path / f"{name}.plk"
    return encode_file(src, load_schema("pace-default"), Secret(TEST_SECRET), out, options)


def test_encode_writes_the_pseudonyms_of_the_key_map_ids(tmp_path: Path) -> None:
    rows = [[f"  {r[0]} ", *r[1:]] if i % 2 else r for i, r in enumerate(ROWS)]
    rows.append(["=CMD()", *ROWS[0][1:]])
    report = _encode(tmp_path, rows, KEY)
    assert report.record_keys and report.record_key_check_value == KEY.check_value
    enc = read_encodings(tmp_path / "out.plk")
    assert enc.header["record_keys"]["check_value"] == KEY.check_value
    ids = read_local_ids(tmp_path / "out.keys.csv")
    assert ids == read_key_map(tmp_path / "out.keys.csv")  # canonical IDs in the key map
    assert ids == ["C001", "C002", "C005", "C006", "=CMD()"]  # stripped, escape undone
    assert enc.record_keys is not None
    assert enc.record_keys.tolist() == KEY.pseudonyms(ids).tolist()
    # The same delivery again gives the same pseudonyms; without the key, none.
    again = read_encodings(_encode(tmp_path, rows, KEY, "again").output)
    assert again.record_keys is not None and again.record_keys.tolist() == enc.record_keys.tolist()
    plain = _encode(tmp_path, rows, None, "plain")
    assert not plain.record_keys and plain.record_key_check_value is None
    plain_enc = read_encodings(plain.output)
    assert plain_enc.record_keys is None and np.array_equal(plain_enc.bits, enc.bits)
    assert json.loads(report.to_json())["record_key_check_value"] == KEY.check_value


def test_parallel_encoding_keeps_pseudonyms_in_row_order(tmp_path: Path) -> None:
    rows = [[f"R{i}-{j}", *r[1:]] for i in range(300) for j, r in enumerate(ROWS)]
    serial = _encode(tmp_path, rows, KEY, "serial", workers=1, chunk_rows=1000)
    parallel = _encode(tmp_path, rows, KEY, "parallel", workers=2, chunk_rows=1000)
    a, b = read_encodings(serial.output), read_encodings(parallel.output)
    assert a.record_keys is not None and b.record_keys is not None
    assert a.record_keys.tolist() == b.record_keys.tolist()
    ids = read_local_ids(tmp_path / "parallel.keys.csv")
    assert b.record_keys.tolist() == KEY.pseudonyms(ids).tolist()


def test_ids_equal_after_stripping_are_duplicates(tmp_path: Path) -> None:
    rows = [ROWS[0], [" C001", *ROWS[1][1:]]]
    with pytest.raises(EncodeError, match="local IDs must be unique") as info:
        _encode(tmp_path, rows, KEY)
    assert "C001" not in str(info.value)


def test_ids_with_control_characters_are_rejected(tmp_path: Path) -> None:
    rows = [ROWS[0], ["C0\x0102", *ROWS[1][1:]], ROWS[4]]
    report = _encode(tmp_path, rows, KEY)
    assert (report.encoded, report.rejected) == (2, 1)
    assert report.rejected_reasons == {"client_ref: local ID has a control character": 1}
    assert read_local_ids(tmp_path / "out.keys.csv") == ["C001", "C005"]


def test_record_key_needs_an_id_column() -> None:
    with pytest.raises(EncodeError, match="--record-key needs --id-column"):
        EncodeOptions(record_key=KEY)


def test_encode_dataframe_carries_pseudonyms() -> None:
    frame = pd.DataFrame(ROWS, columns=HEADER)
    options = EncodeOptions(id_column="client_ref", consent_column="consent", record_key=KEY)
    enc = encode_dataframe(frame, load_schema("pace-default"), Secret(TEST_SECRET), options)
    assert enc.record_keys is not None
    assert enc.record_keys.tolist() == KEY.pseudonyms(["C001", "C002", "C005", "C006"]).tolist()
    assert enc.header["format_version"] == 2
    # The header the file would hold: the pseudonyms' offset is where the file puts them.
    assert enc.plk_header.record_keys is not None
    assert enc.header["record_keys"] == {"algorithm": "hmac-sha256-128",
                                         "check_value": KEY.check_value,
                                         "offset": enc.plk_header.record_keys.offset}  # fmt: skip
    without = EncodeOptions(id_column="client_ref", consent_column="consent")
    plain = encode_dataframe(frame, load_schema("pace-default"), Secret(TEST_SECRET), without)
    assert plain.record_keys is None and plain.plk_header.record_keys is None


# --------------------------------------------------------------------------- command line


def test_cli_keygen_record_key_and_encode_with_it(tmp_path: Path, secret_file: Path) -> None:
    key = tmp_path / "sds.record.key"
    result = runner.invoke(app, ["keygen", "--record-key", "--out", str(key)])
    assert result.exit_code == 0, result.output
    assert "record key" in result.output and "never share" in result.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    record_key = load_record_key(key)
    assert record_key.check_value in result.output
    again = runner.invoke(app, ["keygen", "--record-key", "--out", str(key)])
    assert again.exit_code != 0 and "refusing to overwrite a record key" in again.output
    assert load_record_key(key) == record_key
    help_text = runner.invoke(app, ["keygen", "--help"]).output
    assert "--record-key" in help_text

    src = _write_csv(tmp_path / "clients.csv", ROWS)
    base = ["encode", str(src), "--schema", "pace-default", "--secret-file", str(secret_file),
            "--consent-column", "consent", "--workers", "1"]  # fmt: skip
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "k.plk"), "--id-column",
                                 "client_ref", "--record-key", str(key),
                                 "--report", str(tmp_path / "k.json")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "no --record-key" not in result.output
    assert json.loads((tmp_path / "k.json").read_text())["record_keys"] is True
    shown = runner.invoke(app, ["inspect", str(tmp_path / "k.plk")])
    assert shown.exit_code == 0 and record_key.check_value in shown.output
    enc = read_encodings(tmp_path / "k.plk")
    ids = read_local_ids(tmp_path / "k.keys.csv")
    assert enc.record_keys is not None
    assert enc.record_keys.tolist() == record_key.pseudonyms(ids).tolist()

    plain = runner.invoke(app, [*base, "--out", str(tmp_path / "p.plk"), "--id-column",
                                "client_ref"])  # fmt: skip
    assert plain.exit_code == 0, plain.output
    assert " ".join(NO_RECORD_KEY_WARNING.split()[:6]) in " ".join(plain.output.split())
    shown = runner.invoke(app, ["inspect", str(tmp_path / "p.plk")])
    assert "record keys" in shown.output and "none" in shown.output


def test_cli_refuses_record_key_misuse(tmp_path: Path, secret_file: Path) -> None:
    key = tmp_path / "r.key"
    write_record_key(key, KEY)
    src = _write_csv(tmp_path / "clients.csv", ROWS)
    base = ["encode", str(src), "--schema", "pace-default", "--out", str(tmp_path / "o.plk")]
    cases = {
        "--record-key needs --id-column": [*base, "--secret-file", str(secret_file),
                                           "--record-key", str(key)],
        "looks like the partnership secret": [*base, "--secret-file", str(secret_file),
                                              "--id-column", "client_ref",
                                              "--record-key", str(secret_file)],
        "holds a pacelink record key": [*base, "--secret-file", str(key),
                                        "--id-column", "client_ref", "--record-key", str(key)],
    }  # fmt: skip
    for expected, args in cases.items():
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (expected, result.output)
        assert expected in " ".join(result.output.split()), result.output
        assert KEY.value.hex() not in result.output and TEST_SECRET not in result.output
    assert not (tmp_path / "o.plk").exists()


# --------------------------------------------------------------------------- withdraw lists


def _text(tmp_path: Path, text: str, name: str = "ids.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_read_local_ids_plain_list_and_csv_forms(tmp_path: Path) -> None:
    assert read_local_ids(_text(tmp_path, "C001\n  C002 \r\nC,3\n\n\n")) == ["C001", "C002", "C,3"]
    keymap = 'row,local_id\n0,C001\n1,"C,2"\n2,\'=X\n'
    assert read_local_ids(_text(tmp_path, keymap, "k.csv")) == ["C001", "C,2", "=X"]
    mapping = "\ufefflocal_id,linkage_id\n" + "".join(
        f"{spreadsheet_safe(i)},L{n}\n" for n, i in enumerate(["-x1", "'q", "+44 1"])
    )
    assert read_local_ids(_text(tmp_path, mapping, "m.csv")) == ["-x1", "'q", "+44 1"]
    assert read_local_ids(_text(tmp_path, "'=A\n")) == ["=A"]  # as the key map escapes it


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"the file is empty"),
        (" \n\n", r"the file is empty"),
        ("row,local_id\n", r"no local IDs below the header"),
        ("C1\n\nC2\n", r", line 2: blank local ID"),
        ("row,local_id\n0,C1\n1,  \n\n", r", line 3: blank local ID"),
        ("row,local_id\n0,C1\n\n1,C2\n", r", line 3: blank local ID"),
        ("C1\nC2\nC3\nC2\n", r", line 4: duplicate of the local ID on line 2"),
        ("local_id\nC1\n C1\n", r", line 3: duplicate of the local ID on line 2"),
        ("C1\nA\x00B\n", r", line 2: the local ID has a control character"),
        ("C1\nA\rB\n", r", line 2: the local ID has a control character"),
        ("row,local_id\n0,C1,extra\n", r", line 2: 3 fields where the header has 2"),
        ("local_id,local_id\nC1,C1\n", r"line 1: more than one local_id column"),
    ],
)
def test_read_local_ids_errors_name_the_line_not_the_id(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _text(tmp_path, text)
    with pytest.raises(KeyMapError, match=message) as info:
        read_local_ids(path)
    assert str(info.value).startswith(str(path))
    for value in ("C1", "C2", "A\x00B"):
        assert value not in str(info.value).removeprefix(str(path))


def test_read_local_ids_unreadable_and_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(KeyMapError, match="cannot read"):
        read_local_ids(tmp_path / "absent.txt")
    path = tmp_path / "latin.txt"
    path.write_bytes(b"C1\nC2\nJos\xe9\n")
    with pytest.raises(KeyMapError, match=r", line 3: not UTF-8 text"):
        read_local_ids(path)
