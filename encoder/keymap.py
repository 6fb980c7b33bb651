"""The key map (`OUT.keys.csv`) and the spreadsheet-safe text cells of every CSV pacelink writes.

A partner opens these files in Excel or LibreOffice, which run a cell starting with `=`, `+`,
`-` or `@` as a formula ("formula injection"): a local ID such as `=HYPERLINK(...)` must show
as text, not run. Such cells get a leading `'` (which a spreadsheet reads as "text follows"),
reversibly: `from_spreadsheet_safe` gives the original back, and `read_key_map`, the key map's
single reader, applies it. The key map is `row,local_id` with 0-based encoding rows: row `i`
is row `i` of the `.plk` file.

Local IDs have one canonical form everywhere: the ID cell with leading and trailing
whitespace removed (`str.strip`, which removes exactly what Arrow's `utf8_trim_whitespace`
does). The key map holds canonical IDs, duplicates are found among them, and a record's
pseudonym (`encoder.keys.RecordKey`) is made from the UTF-8 bytes of its canonical ID; so
`read_local_ids`, which applies the same form, gives back the IDs whose pseudonyms
`pacelink encode --record-key` wrote. An ID with a control character is rejected by the
encoder and refused by `read_local_ids`.

A key-map row with an empty local ID is a decoy (`DECOY_LOCAL_ID`): a record the encoder
made up (a schema's `hardening.decoys`), which the linkage unit cannot tell from the others.
No real record is encoded without a local ID, so the empty ID marks decoys unambiguously;
every join of a release to the key map leaves them out (`count_records` counts the rest).

The partner's side of a release is here too, beside the key map it reads: `upload_of_key_map`
finds which upload a key map belongs to, and `join_release` joins the unit's answer (rows and
values) back to local IDs, checking the answer rather than trusting the unit.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from encoder.fileformat import read_header

__all__ = [
    "CONTROL_PATTERN",
    "DECOY_LOCAL_ID",
    "KEY_MAP_HEADER",
    "LOCAL_ID_COLUMN",
    "KeyMapError",
    "KeyMapWriter",
    "ReleaseJoin",
    "canonical_local_id",
    "canonical_local_ids",
    "count_records",
    "from_spreadsheet_safe",
    "has_control_characters",
    "join_release",
    "read_key_map",
    "read_local_ids",
    "spreadsheet_safe",
    "spreadsheet_safe_array",
    "upload_of_key_map",
]

#: The key map's header: encoding row (0-based, as in the `.plk` file), the partner's local ID.
KEY_MAP_HEADER = ("row", "local_id")
#: The column of local IDs in a key map and in a results mapping.
LOCAL_ID_COLUMN = "local_id"
#: The local ID of a decoy row in a key map: empty, which no real record's ID can be.
DECOY_LOCAL_ID = ""
#: Control characters (Unicode category Cc): never part of a local ID. A regular expression
#: for both Python and Arrow (RE2).
CONTROL_PATTERN = "[\\x00-\\x1f\\x7f-\\x9f]"
_CONTROL = re.compile(CONTROL_PATTERN)
# Characters that make a spreadsheet treat a cell as a formula (tab and CR hide a formula
# behind whitespace), and the quote itself, so that escaping stays reversible.
_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "'")
# A plain number (`-12`, `+3.5`, `1e-3`) is harmless: a spreadsheet shows it as a number.
_NUMBER_BODY = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_NUMBER = re.compile(_NUMBER_BODY)
_NUMBER_PATTERN = f"^{_NUMBER_BODY}$"  # Arrow's RE2: `$` is the end of the text only
_NEEDS_QUOTE = r"^[=+\-@\t\r']"
_SCHEMA = pa.schema([("row", pa.int64()), ("local_id", pa.string())])


class KeyMapError(ValueError):
    """A key map is unreadable or malformed; the message names the file and line, never a value."""


def _needs_quote(value: str) -> bool:
    return value.startswith(_TRIGGERS) and (value[0] == "'" or _NUMBER.fullmatch(value) is None)


def spreadsheet_safe(value: str) -> str:
    """The cell text a spreadsheet shows as `value` without running it as a formula.

    A leading `'` is added to a cell starting with `=`, `+`, `-`, `@`, tab, CR or `'` itself,
    unless it is a plain number such as `-12` or `+3.5`. Quoting a leading `'` too makes the
    escaping reversible (see `from_spreadsheet_safe`).
    """
    return "'" + value if _needs_quote(value) else value


def from_spreadsheet_safe(value: str) -> str:
    """The original text of a cell written by `spreadsheet_safe` (its inverse)."""
    if value.startswith("'") and _needs_quote(value[1:]):
        return value[1:]
    return value


def spreadsheet_safe_array(values: pa.Array) -> pa.Array:
    """`spreadsheet_safe` on every value of an Arrow string array.

    Touches only the values that need it: most local IDs do not, and then the array is
    returned as is.
    """
    trigger = pc.fill_null(pc.match_substring_regex(values, _NEEDS_QUOTE), False)
    if not pc.any(trigger).as_py():
        return values
    number = pc.fill_null(pc.match_substring_regex(values, _NUMBER_PATTERN), False)
    quote = pc.and_(trigger, pc.invert(number))
    quoted = pc.binary_join_element_wise("'", values, "")
    return pc.if_else(quote, quoted, values)


def canonical_local_id(value: str) -> str:
    """The canonical form of a local ID: leading and trailing whitespace removed."""
    return value.strip()


def canonical_local_ids(values: pa.Array) -> pa.Array:
    """`canonical_local_id` on every value of an Arrow string array (vectorised)."""
    return pc.utf8_trim_whitespace(values.cast(pa.string()))


def has_control_characters(values: pa.Array) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which values of an Arrow string array hold a control character (nulls: False)."""
    found = pc.fill_null(pc.match_substring_regex(values, CONTROL_PATTERN), False)
    result: np.ndarray[Any, np.dtype[np.bool_]] = found.to_numpy(zero_copy_only=False)
    return result


class KeyMapWriter:
    """Writes the key map: header, then `row,local_id` lines in encoding-row order.

    Local IDs are written spreadsheet-safe; `read_key_map` turns them back. The encoder
    gives canonical IDs (`canonical_local_ids`).
    """

    def __init__(self, fh: Any) -> None:
        """Start a key map on `fh`, a binary file opened for writing."""
        fh.write((",".join(KEY_MAP_HEADER) + "\n").encode("utf-8"))
        self._writer = pacsv.CSVWriter(
            fh, _SCHEMA, write_options=pacsv.WriteOptions(include_header=False)
        )

    def write(self, first_row: int, ids: pa.Array) -> None:
        """Append local IDs of consecutive encoding rows starting at `first_row`."""
        rows = pa.array(np.arange(first_row, first_row + len(ids), dtype=np.int64))
        safe = spreadsheet_safe_array(ids.cast(pa.string()))
        self._writer.write_table(pa.table([rows, safe], schema=_SCHEMA))

    def close(self) -> None:
        """Flush the CSV writer (the file itself is closed by its owner)."""
        self._writer.close()


def read_key_map(path: Path) -> list[str]:
    """Local IDs by encoding row (element `i` is row `i` of the `.plk`), as they were given.

    Raises:
        KeyMapError: The file cannot be read, lacks the header `row,local_id`, or its rows are
            not 0, 1, 2, ... in order; the message names the file and line, never a value.
    """
    ids: list[str] = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            try:
                head = next(reader, None)
                if head is None or tuple(head) != KEY_MAP_HEADER:
                    raise KeyMapError(f"{path}: not a key map (expected the header row,local_id)")
                for record in reader:
                    line = reader.line_num
                    if len(record) != 2:
                        raise KeyMapError(
                            f"{path}, line {line}: {len(record)} fields where row,local_id has 2"
                        )
                    if record[0] != str(len(ids)):
                        raise KeyMapError(
                            f"{path}, line {line}: expected row {len(ids)} (rows count from 0 "
                            "without gaps)"
                        )
                    ids.append(from_spreadsheet_safe(record[1]))
            except csv.Error:
                raise KeyMapError(f"{path}, line {reader.line_num}: not valid CSV") from None
    except OSError as exc:
        raise KeyMapError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise KeyMapError(f"{path}: not UTF-8 text") from None
    return ids


def count_records(local_ids: Sequence[str]) -> int:
    """How many rows of a key map (as `read_key_map` gives it) are real records, not decoys."""
    return sum(1 for local_id in local_ids if local_id != DECOY_LOCAL_ID)


def read_local_ids(path: Path) -> list[str]:
    """Local IDs from a file a partner names, e.g. for `pacelink withdraw --ids FILE`.

    Either one ID per line, with no header, or a CSV (comma-separated) whose first line has
    a `local_id` column, such as a key map (`OUT.keys.csv`, whose decoy rows, with an empty
    local ID, are left out) or a results mapping. Each ID is
    brought to the canonical form the encoder used (surrounding whitespace removed, a
    spreadsheet-safety `'` undone), so `RecordKey.pseudonyms` of the result equals the
    pseudonyms `pacelink encode --record-key` wrote. Blank lines at the end are ignored.

    Raises:
        KeyMapError: The file is unreadable, not UTF-8, or holds no IDs; a line is blank,
            has a control character, or repeats an earlier line's ID. The message names the
            file and line(s), never an ID (IDs can be personal).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise KeyMapError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")  # a BOM, as spreadsheets save UTF-8 CSV
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise KeyMapError(f"{path}, line {line}: not UTF-8 text") from None
    if not text.strip():
        raise KeyMapError(f"{path}: the file is empty (one local ID per line expected)")
    first = text.split("\n", 1)[0]
    try:
        head = next(csv.reader([first]), [])
    except csv.Error:
        head = []
    if LOCAL_ID_COLUMN in [cell.strip() for cell in head]:
        records = _csv_column(path, text)
        if tuple(cell.strip() for cell in head) == KEY_MAP_HEADER:
            # A decoy's row (an empty local_id cell; a blank line is no such row).
            records = [(line, cell) for line, cell in records if cell != DECOY_LOCAL_ID]
        cells = [(line, cell or "") for line, cell in records]
    else:
        lines = text.split("\n")
        while lines and not lines[-1].strip():
            lines.pop()  # blank lines at the end
        cells = list(enumerate(lines, start=1))
    if not cells:
        raise KeyMapError(f"{path}: no local IDs below the header")
    seen: dict[str, int] = {}
    ids: list[str] = []
    for line, cell in cells:
        value = canonical_local_id(from_spreadsheet_safe(canonical_local_id(cell)))
        if not value:
            raise KeyMapError(f"{path}, line {line}: blank local ID")
        if _CONTROL.search(value):
            raise KeyMapError(f"{path}, line {line}: the local ID has a control character")
        earlier = seen.setdefault(value, line)
        if earlier != line:
            raise KeyMapError(f"{path}, line {line}: duplicate of the local ID on line {earlier}")
        ids.append(value)
    return ids


def _csv_column(path: Path, text: str) -> list[tuple[int, str | None]]:
    """The `local_id` cell of each record of a CSV with a header, with its line.

    Returns:
        (line where the record starts, the cell) per record; the cell is None for a blank
        line.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    cells: list[tuple[int, str | None]] = []
    blank: list[bool] = []
    try:
        head = [cell.strip() for cell in next(reader)]
        if head.count(LOCAL_ID_COLUMN) > 1:
            raise KeyMapError(f"{path}, line 1: more than one {LOCAL_ID_COLUMN} column")
        column = head.index(LOCAL_ID_COLUMN)
        start = reader.line_num + 1
        for record in reader:
            if record and len(record) != len(head):
                raise KeyMapError(
                    f"{path}, line {start}: {len(record)} fields where the header has {len(head)}"
                )
            cells.append((start, record[column] if record else None))
            blank.append(not record or not "".join(record).strip())
            start = reader.line_num + 1
    except csv.Error:
        raise KeyMapError(f"{path}, line {reader.line_num}: not valid CSV") from None
    while blank and blank[-1]:  # blank lines at the end (not a record with a blank ID)
        blank.pop()
        cells.pop()
    return cells


# What the unit may send in a release's value column. The partner checks it rather than
# trusting the unit: a value that is neither cannot reach the partner's spreadsheet.
_RELEASE_VALUES = {"mapping": re.compile(r"[0-9a-f]{8,64}"), "flags": re.compile(r"[01]")}


def upload_of_key_map(keys: Path, uploads: Sequence[Mapping[str, Any]], project: str) -> str | None:
    """The ID of the upload a key map belongs to, among a project's `uploads`.

    The upload whose content digest is that of the `.plk` beside the key map (`OUT.plk`
    beside `OUT.keys.csv`), or else the project's only upload; None when neither tells.

    Args:
        keys: The key map, `OUT.keys.csv`.
        uploads: The project's uploads as the unit lists them (`id`, `content_digest`).
        project: The project's ID, named in the error.

    Raises:
        KeyMapError: The `.plk` beside the key map is none of the uploads.
    """
    sibling = keys.with_name(keys.name.removesuffix(".keys.csv") + ".plk")
    if keys.name.endswith(".keys.csv") and sibling.exists():
        digest = read_header(sibling).content_digest
        for upload in uploads:
            if upload["content_digest"] == digest:
                return str(upload["id"])
        raise KeyMapError(f"{sibling} has not been uploaded to project {project}")
    return str(uploads[0]["id"]) if len(uploads) == 1 else None


@dataclass(frozen=True)
class ReleaseJoin:
    """A release joined back to local IDs.

    Attributes:
        csv: `local_id,<column>` text, spreadsheet-safe, decoys left out.
        written: Rows in `csv`.
        withdrawn: The key map's records the release no longer has (withdrawn since).
    """

    csv: str
    written: int
    withdrawn: int


def join_release(
    release: str,
    local_ids: Sequence[str],
    kind: Literal["mapping", "flags"],
    column: str,
    *,
    key_map: Path,
    upload_id: str,
) -> ReleaseJoin:
    """Join a release (`<key>,row,value` CSV with a header) to the key map's local IDs.

    The answer lists the upload's rows in order; rows of records withdrawn since (by the
    partner, or absent from a later snapshot) are missing. The unit cannot tell decoys from
    records, so the answer has their rows too: they are left out here.

    Args:
        release: The unit's answer, as text.
        local_ids: The key map, as `read_key_map` gives it.
        kind: "mapping" (values are linkage IDs) or "flags" (values are 0 or 1).
        column: The value column's name in the result (`linkage_id`, `in_<party>`).
        key_map: The key map's path, named in errors.
        upload_id: The upload the key map was matched to, named in errors.

    Raises:
        KeyMapError: The answer is malformed, or its rows do not fit the key map; the
            message names the line or row, never a value.
    """
    expected = _RELEASE_VALUES[kind]
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow((LOCAL_ID_COLUMN, spreadsheet_safe(column)))
    previous, written = -1, 0
    for n, record in enumerate(list(csv.reader(release.splitlines()))[1:]):
        if len(record) != 3 or not record[1].isdigit():
            raise KeyMapError(
                f"the unit's answer is malformed at line {n + 2}; nothing was written"
            )
        row, value = int(record[1]), record[2]
        if row <= previous or row >= len(local_ids):
            raise KeyMapError(
                f"the unit's answer has row {row} out of order or beyond the {len(local_ids):,} "
                f"rows of {key_map}: is this the key map of upload {upload_id}?"
            )
        if not expected.fullmatch(value):
            raise KeyMapError(
                f"the unit's answer has a malformed {column} at row {row}; nothing was written"
            )
        previous = row
        if local_ids[row] == DECOY_LOCAL_ID:
            continue
        writer.writerow((spreadsheet_safe(local_ids[row]), value))
        written += 1
    return ReleaseJoin(buf.getvalue(), written, count_records(local_ids) - written)
