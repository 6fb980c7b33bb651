"""Spreadsheet-safe cells (formula injection) and the key map's writer and single reader."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from encoder.fileformat import EncodingWriter, HeaderFacts
from encoder.keymap import (
    DECOY_LOCAL_ID,
    KeyMapError,
    KeyMapWriter,
    from_spreadsheet_safe,
    join_release,
    read_key_map,
    spreadsheet_safe,
    spreadsheet_safe_array,
    upload_of_key_map,
)
from tests.encoder.test_fileformat import FIELDS

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Text biased towards the characters that matter, so the edge cases are drawn often.
cells = st.text(alphabet=st.sampled_from("=+-@'\t\r\n 0123456789.eEaZ,\"é"), max_size=8) | st.text()


@given(cells)
def test_escaping_is_reversible(value: str) -> None:
    assert from_spreadsheet_safe(spreadsheet_safe(value)) == value


@given(cells)
def test_no_escaped_cell_starts_a_formula(value: str) -> None:
    safe = spreadsheet_safe(value)
    if safe.startswith(FORMULA_STARTS):
        float(safe)  # only a plain number may: a spreadsheet shows it as a number
    assert safe == value or safe == "'" + value


@given(st.lists(cells, max_size=20))
def test_vectorised_escaping_equals_the_scalar_one(values: list[str]) -> None:
    array = pa.array(values, pa.string())
    assert spreadsheet_safe_array(array).to_pylist() == [spreadsheet_safe(v) for v in values]


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+44 131 496 0000", "'+44 131 496 0000"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-A1", "'-A1"),
        ("\t=1+1", "'\t=1+1"),
        ("'quoted", "''quoted"),
        ("-12", "-12"),  # plain numbers are harmless
        ("+3.5", "+3.5"),
        ("C001", "C001"),
        ("", ""),
    ],
)
def test_examples(value: str, safe: str) -> None:
    assert spreadsheet_safe(value) == safe
    assert from_spreadsheet_safe(safe) == value


def test_writer_and_reader_round_trip(tmp_path: Path) -> None:
    ids = ['=HYPERLINK("x")', "C1", "-12", "'a", "@b", 'has "quotes", and commas']
    path = tmp_path / "k.keys.csv"
    with path.open("wb") as fh:
        writer = KeyMapWriter(fh)
        writer.write(0, pa.array(ids[:2]))
        writer.write(2, pa.array(ids[2:]))
        writer.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "row,local_id"
    assert lines[1].startswith("0,") and "'=HYPERLINK" in lines[1]
    assert read_key_map(path) == ids


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("row,id\n0,SECRETID\n", r"k\.csv: not a key map \(expected the header row,local_id\)"),
        ("", r"not a key map"),
        ("row,local_id\n0,A\n2,SECRETID\n", r"k\.csv, line 3: expected row 1"),
        ("row,local_id\n0,A\n1,SECRETID,x\n", r"line 3: 3 fields where row,local_id has 2"),
    ],
)
def test_malformed_key_maps_name_file_and_line_never_a_value(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "k.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(KeyMapError, match=message) as info:
        read_key_map(path)
    assert "SECRETID" not in str(info.value)


def test_unreadable_key_map(tmp_path: Path) -> None:
    with pytest.raises(KeyMapError, match="cannot read"):
        read_key_map(tmp_path / "absent.keys.csv")
    (tmp_path / "bin.csv").write_bytes(b"row,local_id\n0,\xff\xfe\n")
    with pytest.raises(KeyMapError, match="not UTF-8"):
        read_key_map(tmp_path / "bin.csv")


def test_key_map_error_is_a_value_error() -> None:
    assert issubclass(KeyMapError, ValueError)
    buffer = io.BytesIO()
    KeyMapWriter(buffer).close()
    assert buffer.getvalue() == b"row,local_id\n"


def _join(release: str, local_ids: list[str], kind: str = "mapping") -> str:
    column = "linkage_id" if kind == "mapping" else "in_b"
    return join_release(
        release, local_ids, kind, column, key_map=Path("x.keys.csv"), upload_id="u1"
    ).csv  # type: ignore[arg-type]


def test_release_join_leaves_out_decoys_and_counts_withdrawn_records() -> None:
    ids = ["=a", DECOY_LOCAL_ID, "c", "d"]
    release = "linkage_key,row,linkage_id\nk,0,aaaaaaaa\nk,1,bbbbbbbb\nk,3,cccccccc\n"
    joined = join_release(
        release, ids, "mapping", "linkage_id", key_map=Path("x.keys.csv"), upload_id="u1"
    )
    assert joined.csv.splitlines() == ["local_id,linkage_id", "'=a,aaaaaaaa", "d,cccccccc"]
    assert (joined.written, joined.withdrawn) == (2, 1)  # "c" (row 2) is gone, the decoy is none
    flags = _join("k,row,in_b\nk,0,1\nk,2,0\n", ids, "flags")
    assert flags.splitlines() == ["local_id,in_b", "'=a,1", "c,0"]


@pytest.mark.parametrize(
    ("release", "says"),
    [
        ("h\nk,x,aaaaaaaa\n", "malformed at line 2"),
        (
            "h\nk,1,aaaaaaaa\nk,0,aaaaaaaa\n",
            "row 0 out of order or beyond the 2 rows of x.keys.csv",
        ),
        ("h\nk,5,aaaaaaaa\n", "is this the key map of upload u1?"),
        ("h\nk,0,=cmd()\n", "malformed linkage_id at row 0"),
    ],
)
def test_release_join_refuses_an_answer_that_does_not_fit(release: str, says: str) -> None:
    with pytest.raises(KeyMapError, match=re.escape(says)) as caught:
        _join(release, ["a", "b"])
    assert "=cmd()" not in str(caught.value)


def test_upload_of_key_map_by_digest_or_the_only_upload(tmp_path: Path) -> None:
    keys = tmp_path / "OUT.keys.csv"
    keys.write_text("row,local_id\n", encoding="utf-8")
    assert upload_of_key_map(keys, [{"id": "u1", "content_digest": "x"}], "p") == "u1"
    assert upload_of_key_map(keys, [{"id": "u1"}, {"id": "u2"}], "p") is None
    with EncodingWriter(tmp_path / "OUT.plk", 64) as writer:
        writer.append(np.zeros((2, 8), dtype=np.uint8))
        digest = writer.finish(HeaderFacts(**FIELDS)).content_digest
    uploads = [{"id": "u1", "content_digest": "x"}, {"id": "u2", "content_digest": digest}]
    assert upload_of_key_map(keys, uploads, "p") == "u2"
    with pytest.raises(KeyMapError, match=r"OUT\.plk has not been uploaded to project p"):
        upload_of_key_map(keys, uploads[:1], "p")
