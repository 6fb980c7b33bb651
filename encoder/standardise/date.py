"""Dates (normally of birth): the scalar rule and its vectorised fast path, side by side."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

import numpy as np
import pyarrow as pa
from numba import njit

from encoder.read import string_buffers
from encoder.standardise.invalid import InvalidValue
from encoder.standardise.missing import is_missing

__all__ = ["date_fast_path", "standardise_date"]

# Reasons are fixed strings, never formatted with the value, so that nothing a partner supplied
# can leak into a log line or a quality report through an exception message.
_R_DATE_FORMAT = "unrecognised date format"
_R_DATE_FMT_MISMATCH = "does not match the given format"
_R_MONTH_NAME = "unrecognised month name"
_R_MONTH_RANGE = "month out of range"
_R_DAY_RANGE = "day out of range for month"
_R_DATE_EARLY = "date before 1900-01-01"
_R_DATE_FUTURE = "date in the future"

_MONTHS: Mapping[str, int] = MappingProxyType(
    {
        "jan": 1,
        "january": 1,
        "feb": 2,
        "february": 2,
        "mar": 3,
        "march": 3,
        "apr": 4,
        "april": 4,
        "may": 5,
        "jun": 6,
        "june": 6,
        "jul": 7,
        "july": 7,
        "aug": 8,
        "august": 8,
        "sep": 9,
        "sept": 9,
        "september": 9,
        "oct": 10,
        "october": 10,
        "nov": 11,
        "november": 11,
        "dec": 12,
        "december": 12,
    }
)

# An optional time of day, as written by pandas, Excel and databases after a date. It is
# checked for shape and then ignored: only the calendar date is linked.
_TIME = (
    r"(?:[ t](?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?"
    r"(?: ?[ap]m)?(?: ?(?:z|[+-]\d{2}:?\d{2}))?)?"
)
_SEP = r"[ ,/.\-]*"
_ORD = r"(?:st|nd|rd|th)?"

_ISO_RE = re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})" + _TIME, re.ASCII)
_COMPACT_RE = re.compile(r"(\d{4})(\d{2})(\d{2})", re.ASCII)
# Day-first numeric; the back-reference requires both separators to be the same, since a
# mixture ("12/03-1985") is more likely two fields run together than a date.
_DMY_NUMERIC_RE = re.compile(r"(\d{1,2}) ?([-/. ]) ?(\d{1,2}) ?\2 ?(\d{4}|\d{2})" + _TIME, re.ASCII)
_DMY_NAMED_RE = re.compile(
    r"(\d{1,2})" + _ORD + _SEP + r"(?:of )?([a-z]+)\.?" + _SEP + r"(\d{4}|\d{2})" + _TIME,
    re.ASCII,
)
# Month-first needs a separator between day and year: "mar121985" has no unambiguous reading.
_MDY_NAMED_RE = re.compile(
    r"([a-z]+)\.?" + _SEP + r"(\d{1,2})" + _ORD + r"[ ,/.\-]+(\d{4}|\d{2})" + _TIME,
    re.ASCII,
)
_CANONICAL_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_FMT_TWO_DIGIT_YEAR_RE = re.compile(r"(?<!%)%y")

_EARLIEST = date(1900, 1, 1)
_YEAR_AT_IMPORT = date.today().year


def _days_in_month(year: int, month: int) -> int:
    """Days in a month of the proleptic Gregorian calendar (any year, including 0)."""
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _expand_year(text: str) -> int:
    """Turn a two- or four-digit year into a full year using the current-year pivot.

    A two-digit year at or below the current two-digit year is taken as this century, anything
    above as the last: in 2026, "26" -> 2026 and "27" -> 1927. Dates of birth of children are far
    more common in partner data than those of people over 100, so this is the less wrong guess.
    """
    year = int(text)
    if len(text) != 2:
        return year
    this_year = date.today().year
    current = this_year % 100
    century = this_year - current
    return century + year if year <= current else century - 100 + year


def _make_date(year: int, month: int, day: int) -> date:
    """Build a date; raise InvalidValue with a fixed reason if impossible or out of range."""
    if not 1 <= month <= 12:
        raise InvalidValue(_R_MONTH_RANGE)
    if not 1 <= day <= _days_in_month(year, month):
        raise InvalidValue(_R_DAY_RANGE)
    if year < _EARLIEST.year:
        raise InvalidValue(_R_DATE_EARLY)
    result = date(year, month, day)
    # date.today() costs about as much as the rest of the parse, so it is only consulted for
    # years that could be in the future; the clock only moves forward after import.
    if year >= _YEAR_AT_IMPORT and result > date.today():
        raise InvalidValue(_R_DATE_FUTURE)
    return result


def _month_number(word: str) -> int:
    """Look up an English month name or abbreviation (already lower case)."""
    month = _MONTHS.get(word)
    if month is None:
        raise InvalidValue(_R_MONTH_NAME)
    return month


def _detect_date(text: str) -> date:
    """Parse a normalised (stripped, lower-case, single-spaced) date in any accepted layout."""
    if match := _ISO_RE.fullmatch(text):
        year, _, month, day = match.groups()
        return _make_date(int(year), int(month), int(day))
    if match := _COMPACT_RE.fullmatch(text):
        year, month, day = match.groups()
        return _make_date(int(year), int(month), int(day))
    if match := _DMY_NUMERIC_RE.fullmatch(text):
        day, _, month, year = match.groups()
        return _make_date(_expand_year(year), int(month), int(day))
    if match := _DMY_NAMED_RE.fullmatch(text):
        day, month_word, year = match.groups()
        month_number = _month_number(month_word)
        return _make_date(_expand_year(year), month_number, int(day))
    if match := _MDY_NAMED_RE.fullmatch(text):
        month_word, day, year = match.groups()
        month_number = _month_number(month_word)
        return _make_date(_expand_year(year), month_number, int(day))
    raise InvalidValue(_R_DATE_FORMAT)


def _parse_with_format(text: str, fmt: str) -> date:
    """Parse with an explicit strptime format, applying this module's year pivot and range."""
    try:
        parsed = datetime.strptime(text, fmt).date()
    except ValueError as exc:
        # strptime's own messages quote the value, so they are replaced, and "from None" keeps
        # the original out of any traceback that ends up in a log.
        reason = _R_DAY_RANGE if str(exc) == "day is out of range for month" else None
        raise InvalidValue(reason or _R_DATE_FMT_MISMATCH) from None
    year = parsed.year
    if _FMT_TWO_DIGIT_YEAR_RE.search(fmt):
        # strptime pivots %y at 69 (POSIX); re-pivot so fmt and detection read "50" the same way.
        year = _expand_year(f"{year % 100:02d}")
    return _make_date(year, parsed.month, parsed.day)


def standardise_date(value: str, fmt: str | None = None) -> str:
    """Standardise a date (normally a date of birth) to ISO ``YYYY-MM-DD``.

    Without ``fmt`` the layout is detected: ISO (optionally with a time part, as pandas and Excel
    write it), compact ``YYYYMMDD``, day-first numeric (``12/03/1985``, ``12-3-85``,
    ``12.03.1985``), day-first with an English month name (``12 Mar 1985``, ``12-MAR-85``,
    ``12th March 1985``, ``12MAR1985``) and month-name-first (``March 12, 1985``). Numeric dates are
    always read day-first, as is usual in the UK. Two-digit years use the current-year pivot (see
    ``_expand_year``).

    Args:
        value: The raw date.
        fmt: A ``datetime.strptime`` format that the value must match exactly, instead of
            detection. A value already in canonical ``YYYY-MM-DD`` form is accepted as such
            whatever ``fmt`` says, so that standardising twice is harmless.

    Returns:
        The ISO date, or "" if the value is missing.

    Raises:
        InvalidValue: If the layout is not recognised, the date is impossible (31/02, month 13,
            day 0), before 1900-01-01, or after today.
    """
    if is_missing(value):
        return ""
    text = value if value.isascii() else unicodedata.normalize("NFKC", value)
    text = " ".join(text.split()).lower()
    if fmt is None:
        return _detect_date(text).isoformat()
    if match := _CANONICAL_DATE_RE.fullmatch(text):
        year, month, day = match.groups()
        return _make_date(int(year), int(month), int(day)).isoformat()
    # The format is applied to the stripped value with its original case and spacing, because
    # the caller has said exactly what the value looks like.
    return _parse_with_format(value.strip(), fmt).isoformat()


# The fast path reads the two layouts partners mostly send straight from Arrow's buffers; its
# calendar is the scalar rule's own `_days_in_month`, compiled.
_days_in_month_kernel = njit(cache=True, nogil=True)(_days_in_month)


@njit(cache=True, nogil=True)
def _date_kernel(
    offsets: np.ndarray[Any, Any], data: np.ndarray[Any, Any], earliest: int, today: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """ISO dates of `YYYY-MM-DD` and `DD/MM/YYYY` (or `-`, `.`) values, read from the bytes.

    Returns a validity mask and 10 ISO bytes per value. Valid means a real calendar date
    from 1 January of year `earliest` to `today` (YYYYMMDD as an integer), as the scalar
    parser decides.
    """
    n = offsets.shape[0] - 1
    ok = np.zeros(n, dtype=np.bool_)
    out = np.empty(n * 10, dtype=np.uint8)
    digits = np.empty(8, dtype=np.int64)  # y y y y m m d d
    for v in range(n):
        s = offsets[v]
        if offsets[v + 1] - s != 10:
            continue
        c2, c4, c5, c7 = data[s + 2], data[s + 4], data[s + 5], data[s + 7]
        if c4 == 45 and c7 == 45:  # YYYY-MM-DD
            order = (0, 1, 2, 3, 5, 6, 8, 9)
        elif c2 == c5 and c2 in (45, 46, 47):  # DD-MM-YYYY, DD.MM.YYYY, DD/MM/YYYY
            order = (6, 7, 8, 9, 3, 4, 0, 1)
        else:
            continue
        good = True
        for i in range(8):
            c = data[s + order[i]]
            if c < 48 or c > 57:
                good = False
                break
            digits[i] = c - 48
        if not good:
            continue
        year = digits[0] * 1000 + digits[1] * 100 + digits[2] * 10 + digits[3]
        month = digits[4] * 10 + digits[5]
        day = digits[6] * 10 + digits[7]
        if month < 1 or month > 12 or day < 1:
            continue
        last = _days_in_month_kernel(year, month)
        stamp = year * 10000 + month * 100 + day
        if day > last or year < earliest or stamp > today:
            continue
        ok[v] = True
        o = v * 10
        for i in range(4):
            out[o + i] = digits[i] + 48
        out[o + 4] = 45
        out[o + 5] = digits[4] + 48
        out[o + 6] = digits[5] + 48
        out[o + 7] = 45
        out[o + 8] = digits[6] + 48
        out[o + 9] = digits[7] + 48
    return ok, out


def date_fast_path(values: pa.Array) -> pa.Array:
    """Standardise ISO and four-digit-year day-first numeric dates, null for the rest.

    Args:
        values: Raw dates, an Arrow string array without nulls.

    Returns:
        The ISO dates, null where `standardise_date` must decide (other layouts, and every
        value it would reject).
    """
    offsets, data = string_buffers(values)
    today = date.today()
    stamp = today.year * 10000 + today.month * 100 + today.day
    ok, iso_bytes = _date_kernel(offsets, data, _EARLIEST.year, stamp)
    iso = pa.Array.from_buffers(
        pa.string(),
        len(values),
        [
            pa.py_buffer(np.packbits(ok, bitorder="little")),
            pa.py_buffer(np.arange(0, 10 * len(values) + 1, 10, dtype=np.int32)),
            pa.py_buffer(iso_bytes),
        ],
    )
    return iso
