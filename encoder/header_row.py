"""The input's header row: checking its names, and saying what is wrong without quoting a value.

A file without a header row has a client's details in its first row, and a title row may sit
above the real header, so messages about the header show a name only when the row looks like
a real header, and otherwise say where the names are or how many rows to skip.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Protocol

__all__ = [
    "HeaderRows",
    "InputError",
    "check_header",
    "describe_header",
    "looks_like_value",
    "title_hint",
]

# Longer header names are not shown in messages: a long "name" is more likely a value.
_MAX_SHOWN_NAME = 40
_MONTHS = re.compile(r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b", re.IGNORECASE)
_NUMERIC = re.compile(r"[+-]?[0-9\s.,/:()-]*[0-9][0-9\s.,/:()-]*")
# Looser than the postcode standardiser's rule on purpose: a cell as typed, with its space.
_POSTCODE = re.compile(r"[A-Z]{1,2}[0-9][A-Z0-9]?\s*[0-9][A-Z]{2}", re.IGNORECASE)


class InputError(ValueError):
    """A partner file cannot be read; the message names the file and where (never a value)."""


class HeaderRows(Protocol):
    """Where a reader found the header, and the rows below it (a `TableReader`)."""

    header_row: int

    def peek_rows(self) -> Sequence[list[str]]:
        """The first rows after the header, as text."""
        ...


def check_header(path: Path, columns: list[str], row: int, below: list[list[str]]) -> None:
    """Every header column has a name, and no two the same; messages quote no name."""
    seen: dict[str, int] = {}
    for number, name in enumerate(columns, start=1):
        if not name:
            hint = title_hint(row, columns, below)
            raise InputError(f"{path}, row {row}: header column {number} has no name{hint}")
        if name in seen:
            looks = (
                " (the row looks like data, not a header)"
                if any(looks_like_value(c) for c in columns)
                else ""
            )
            raise InputError(
                f"{path}, row {row}: header columns {seen[name]} and {number} have the same "
                f"name{looks}; every column needs its own name"
            )
        seen[name] = number


def title_hint(row: int, columns: Sequence[str], below: list[list[str]]) -> str:
    """Advice when the header row looks like a title: few filled cells, a fuller row below.

    Few means one filled cell, or some empty ones. The rows to skip are those above the first
    fuller row (a title, maybe a blank line).
    """
    filled = len([c for c in columns if c.strip()])
    if filled == len(columns) and filled != 1:
        return ""
    for offset, cells in enumerate(below, start=1):
        if sum(1 for v in cells if v.strip()) > filled:
            first = row + offset
            return (
                f", and row {first} is the first with more: is the text above it a title? "
                f"skip the rows above the header with --skip-rows {first - 1}"
            )
    return ""


def looks_like_value(text: str) -> bool:
    """Whether a header cell looks like a value rather than a column name.

    Dates, numbers, postcodes, e-mail addresses and ID-like codes (three or more digits
    making up much of the text) count as values: a first row holding them is data. A name
    cannot be told from a column name this way, hence `describe_header`'s caution.
    """
    text = text.strip()
    if not text:
        return False
    digits = sum(ch.isdigit() for ch in text)
    return bool(
        _NUMERIC.fullmatch(text)
        or (digits and _MONTHS.search(text))
        or _POSTCODE.fullmatch(text)
        or "@" in text
        or (digits >= 3 and digits * 3 >= len(text))
    )


def describe_header(
    reader: HeaderRows | None, columns: Sequence[str], expected: Collection[str]
) -> str:
    """What is wrong with a header that lacks expected columns, without quoting a value.

    The header row may be data (a file without a header) or sit below a title, so names
    are shown only when the row looks like a real header: none of its cells looks like a
    value and at least one expected name is present. Even then a name that is long or
    value-like is shown by its position only. When a later row holds every expected name,
    the message says how many rows to skip.

    Args:
        reader: The file's reader (to look at the rows below the header); None for a
            DataFrame.
        columns: The header's names.
        expected: Column names the run needs.
    """
    row = reader.header_row if reader is not None else 1
    where = f"row {row} (the header, {len(columns)} column{'s' if len(columns) != 1 else ''})"
    if reader is not None:
        wanted = set(expected)
        for offset, cells in enumerate(reader.peek_rows(), start=1):
            if wanted and wanted <= {c.strip() for c in cells}:
                return (
                    f"the expected column names are in row {row + offset}, not in {where}: "
                    f"skip the rows above them with --skip-rows {row + offset - 1}"
                )
    if any(looks_like_value(c) for c in columns):
        return (
            f"{where} looks like data, not a header (it holds values such as dates, numbers "
            "or postcodes): the file needs a header row naming its columns; if rows above the "
            "header hold a title, skip them with --skip-rows N"
        )
    present = set(columns)
    if not any(name in present for name in expected):
        return (
            f"none of the expected column names appear in {where}: if that row is data, the "
            "file needs a header row; otherwise map each feature to your column with "
            "--column FEATURE=COLUMN"
        )
    shown = [
        repr(c) if len(c) <= _MAX_SHOWN_NAME and not looks_like_value(c) else f"column {i}"
        for i, c in enumerate(columns, start=1)
    ]
    return f"columns in {where}: {', '.join(shown)}"
