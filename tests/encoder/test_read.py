"""Headers a partner's file may really have: none, a title above it, a real one with other names.

Whatever is wrong, a message names rows and counts, never a cell: a file without a header has
a client's details in its first row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pandas as pd
import pytest

from encoder.encode import EncodeError, EncodeOptions, encode_file
from encoder.fileformat import read_encodings
from encoder.header_row import describe_header, looks_like_value
from encoder.keys import Secret
from encoder.read import InputError, open_table
from encoder.schema import load_schema
from tests.conftest import TEST_SECRET
from tests.encoder.test_encode import HEADER, ROWS, _write_csv

# A headerless file's first row: one client's details. Long enough values that any of them
# in a message would be a leak, not a coincidence.
CLIENT = ["C90017", "Seonaidh", "MacGillivray", "12/03/1985", "Male", "EH11 1AA", "Yes"]
OPTIONS = EncodeOptions(id_column="client_ref", consent_column="consent")


def _run(src: Path, out: Path, options: EncodeOptions = OPTIONS, **kwargs: Any) -> Any:
    return encode_file(src, load_schema("pace-default"), Secret(TEST_SECRET), out, options,
                       **kwargs)  # fmt: skip


def _headerless(path: Path, rows: list[list[str]], delimiter: str = ",") -> Path:
    path.write_text("\n".join(delimiter.join(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _assert_no_values(message: str, values: list[str]) -> None:
    for value in values:
        assert value not in message, value


@pytest.mark.parametrize(
    "options",
    [
        OPTIONS,
        EncodeOptions(id_column="client_ref"),
        EncodeOptions(consent_column="consent"),
        EncodeOptions(columns={"given_name": "Forename"}),
    ],
)
def test_headerless_csv_never_echoes_the_first_row(tmp_path: Path, options: EncodeOptions) -> None:
    src = _headerless(tmp_path / "clients.csv", [CLIENT, ROWS[1]])
    with pytest.raises(EncodeError) as info:
        _run(src, tmp_path / "o.plk", options)
    message = str(info.value)
    assert "row 1 (the header, 7 columns) looks like data, not a header" in message
    _assert_no_values(message, CLIENT)
    assert list(tmp_path.iterdir()) == [src]


def test_headerless_names_only_row_is_not_listed(tmp_path: Path) -> None:
    """Names cannot be told from column names: with no expected name present, none is shown."""
    row = ["Seonaidh", "MacGillivray", "Morag", "Leith", "Female", "Glasgow", "Edinburgh"]
    src = _headerless(tmp_path / "names.csv", [row, row])
    with pytest.raises(EncodeError, match="none of the expected column names appear") as info:
        _run(src, tmp_path / "o.plk")
    _assert_no_values(str(info.value), row)


def test_consent_and_id_columns_missing_from_a_real_header(tmp_path: Path) -> None:
    """A real header is listed to help mapping; a long or value-like name by position only.

    A real header has the expected names present and nothing value-like.
    """
    header = [*HEADER[:6], "Agreed to share data with the partnership (Y/N) 2026"]
    src = _write_csv(tmp_path / "c.csv", ROWS, header=header)
    with pytest.raises(EncodeError) as info:
        _run(src, tmp_path / "o.plk")
    message = str(info.value)
    assert "--consent-column 'consent' not found" in message
    assert "'client_ref', 'given_name'" in message and "column 7" in message
    assert "Agreed" not in message
    with pytest.raises(EncodeError, match="--id-column 'ref' not found"):
        _run(src, tmp_path / "o.plk", EncodeOptions(id_column="ref"))


def test_title_row_xlsx_needs_and_takes_skip_rows(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Client list, Skills Agency Tayside, November 2026"])
    sheet.append(HEADER)
    for row in ROWS:
        sheet.append(row)
    src = tmp_path / "clients.xlsx"
    book.save(src)
    with pytest.raises(InputError, match=r"row 1: one filled cell only.*--skip-rows 1") as info:
        _run(src, tmp_path / "o.plk")
    assert "Skills Agency" not in str(info.value)
    report = _run(src, tmp_path / "o.plk", skip_rows=1)
    plain = _run(_write_csv(tmp_path / "plain.csv", ROWS), tmp_path / "plain.plk")
    assert (report.encoded, report.rejected) == (4, 3)
    assert np.array_equal(read_encodings(tmp_path / "o.plk").bits,
                          read_encodings(tmp_path / "plain.plk").bits)  # fmt: skip
    # Row numbers are the spreadsheet's own: title row 1, header row 2, C004 in row 6.
    rejects = pd.read_csv(tmp_path / "o.rejects.csv", dtype=str)
    assert rejects["input_row"].tolist() == ["6", "9", "10"]
    assert plain.rejected == report.rejected


def test_title_and_blank_line_above_a_semicolon_cp1252_csv(tmp_path: Path) -> None:
    """The issue's file: a title, a blank line, then a semicolon-delimited Windows-1252 table."""
    rows = [[v.replace("Ł", "L") for v in r] for r in ROWS]
    body = ";".join(HEADER) + "\n" + "".join(";".join(r) + "\n" for r in rows)
    src = tmp_path / "export.csv"
    src.write_bytes(("Clients at 30/11/2026\n\n" + body).encode("cp1252"))
    with pytest.raises(InputError, match=r"row 1: one field only.*row 3 is the first.*rows 2"):
        _run(src, tmp_path / "o.plk")
    report = _run(src, tmp_path / "o.plk", skip_rows=2)
    assert (report.encoded, report.rejected) == (4, 3)
    assert pd.read_csv(tmp_path / "o.rejects.csv", dtype=str)["input_row"].tolist() == [
        "7", "10", "11"
    ]  # fmt: skip


def test_header_further_down_is_found(tmp_path: Path) -> None:
    """Two filled title cells and empty ones: skip to the first fuller row."""
    src = tmp_path / "t.csv"
    body = _write_csv(tmp_path / "body.csv", ROWS).read_text()
    src.write_text("Clients,Tayside,,,,,\n" + body)
    with pytest.raises(InputError, match=r"row 1: header column 3 has no name, and row 2 is the "
                                         r"first with more.*--skip-rows 1") as info:  # fmt: skip
        _run(src, tmp_path / "o.plk")
    assert "Tayside" not in str(info.value)
    # Every name filled but the expected ones one row down: found by their names.
    src.write_text("Clients,Tayside,November,2026,Skills,Agency,Export\n" + body)
    with pytest.raises(EncodeError, match=r"expected column names are in row 2, not in row 1 "
                                          r"\(the header, 7 columns\): skip the rows above them "
                                          r"with --skip-rows 1") as info:  # fmt: skip
        _run(src, tmp_path / "o.plk")
    assert "Tayside" not in str(info.value)


def test_skip_rows_refused_for_parquet_and_past_the_end(tmp_path: Path) -> None:
    pd.DataFrame(ROWS, columns=HEADER).to_parquet(tmp_path / "p.parquet", index=False)
    with pytest.raises(InputError, match=r"--skip-rows applies to CSV and XLSX files only"):
        open_table(tmp_path / "p.parquet", skip_rows=1)
    src = _write_csv(tmp_path / "c.csv", ROWS[:1])
    with pytest.raises(InputError, match=r"--skip-rows 5 skips every line \(the file has 2\)"):
        open_table(src, skip_rows=5)


def test_duplicate_header_names_are_not_quoted(tmp_path: Path) -> None:
    src = _headerless(tmp_path / "d.csv", [["C90017", "Yes", "Yes", "12/03/1985"]])
    with pytest.raises(InputError, match=r"row 1: header columns 2 and 3 have the same name "
                                         r"\(the row looks like data") as info:  # fmt: skip
        open_table(src)
    _assert_no_values(str(info.value), ["C90017", "Yes", "12/03/1985"])


@pytest.mark.parametrize(
    ("text", "value_like"),
    [
        ("12/03/1985", True), ("1985-03-12 00:00:00", True), ("12 Mar 1985", True),
        ("EH11 1AA", True), ("eh111aa", True), ("C90017", True), ("ann@example.org", True),
        ("-12.5", True), ("given_name", False), ("Date of Birth", False), ("Post Code", False),
        ("Address Line 1", False), ("DOB", False), ("Forename", False),
    ],
)  # fmt: skip
def test_looks_like_value(text: str, value_like: bool) -> None:
    assert looks_like_value(text) is value_like


def test_describe_header_for_a_dataframe() -> None:
    assert "looks like data" in describe_header(None, ["C1", "12/03/1985"], ["client_ref"])
    listed = describe_header(None, ["client_ref", "Forename"], ["client_ref", "given_name"])
    assert listed == "columns in row 1 (the header, 2 columns): 'client_ref', 'Forename'"


def test_headerless_xlsx_never_echoes_the_first_row(tmp_path: Path) -> None:
    import datetime as dt

    book = openpyxl.Workbook()
    client: list[Any] = ["C90017", "Seonaidh", "MacGillivray", dt.datetime(1985, 3, 12), "Male",
                         "EH11 1AA", "Yes"]  # fmt: skip
    book.active.append(client)
    book.active.append(ROWS[0])
    src = tmp_path / "noheader.xlsx"
    book.save(src)
    with pytest.raises(EncodeError, match="looks like data, not a header") as info:
        _run(src, tmp_path / "o.plk")
    _assert_no_values(str(info.value), [*map(str, client), "1985-03-12"])


def test_xlsx_rows_are_the_sheets_own_numbers(tmp_path: Path) -> None:
    """Blank rows above the header are stepped over and blank rows inside are counted."""
    book = openpyxl.Workbook()
    sheet = book.active
    for column, name in enumerate(HEADER, start=1):
        sheet.cell(row=3, column=column, value=name)
    for column, value in enumerate(ROWS[0], start=1):
        sheet.cell(row=4, column=column, value=value)
    for column, value in enumerate(ROWS[3], start=1):  # impossible date, after a blank row
        sheet.cell(row=6, column=column, value=value)
    src = tmp_path / "gaps.xlsx"
    book.save(src)
    options = EncodeOptions(id_column="client_ref", consent_column="consent", max_reject_rate=1)
    report = _run(src, tmp_path / "g.plk", options)
    # The blank row 5 is a record without consent; C004's impossible date is in row 6.
    assert (report.records_in, report.encoded, report.excluded_no_consent) == (3, 1, 1)
    rejects = pd.read_csv(tmp_path / "g.rejects.csv", dtype=str)
    assert rejects["input_row"].tolist() == ["6"]
    empty = tmp_path / "empty.xlsx"
    openpyxl.Workbook().save(empty)
    with pytest.raises(InputError, match="the sheet has no filled row"):
        open_table(empty)
