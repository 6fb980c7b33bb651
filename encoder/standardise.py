"""Turn raw identifier values into the canonical strings that partners encode."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from encoder.read import string_buffers

__all__ = [
    "STANDARDISERS",
    "InvalidValue",
    "is_missing",
    "standardise_address",
    "standardise_array",
    "standardise_date",
    "standardise_name",
    "standardise_ni_number",
    "standardise_postcode",
    "standardise_sex",
]


# The name is fixed by the encoder API that other modules import, hence no "Error" suffix.
class InvalidValue(ValueError):
    """A value that cannot be standardised.

    Its message is a short reason and NEVER contains the value itself (privacy: messages end up
    in logs and reports). Every reason raised by this module is one of the fixed strings below.
    """


# Reasons are fixed strings, never formatted with the value, so that nothing a partner supplied
# can leak into a log line or a quality report through an exception message.
_R_NAME_DIGITS = "name contains digits"
_R_DATE_FORMAT = "unrecognised date format"
_R_DATE_FMT_MISMATCH = "does not match the given format"
_R_MONTH_NAME = "unrecognised month name"
_R_MONTH_RANGE = "month out of range"
_R_DAY_RANGE = "day out of range for month"
_R_DATE_EARLY = "date before 1900-01-01"
_R_DATE_FUTURE = "date in the future"
_R_POSTCODE = "not a valid UK postcode"
_R_SEX = "unrecognised sex code"
_R_NINO = "not a valid NI number"
_R_NINO_PREFIX = "NI number prefix not allocated"

# ---------------------------------------------------------------------------------------------
# Missing values
# ---------------------------------------------------------------------------------------------

_MISSING_TOKENS = frozenset(
    {
        "null",
        "none",
        "n/a",
        "na",
        "nan",
        "-",
        "--",
        "?",
        "unknown",
        "not known",
        "not stated",
    }
)

# A standardiser's *output* can spell a null token even when its input did not ("N.A." -> "na"
# for names, "Not-Known" -> "not known" for addresses). Such outputs are turned into "" as well,
# otherwise standardising the output a second time would give "" and break idempotency.
_MISSING_LETTERS = frozenset(re.sub(r"[^a-z]", "", token) for token in _MISSING_TOKENS) - {""}


def is_missing(value: str) -> bool:
    """Return True if the raw value means "no value".

    Empty and whitespace-only strings and the null tokens in ``_MISSING_TOKENS`` (compared
    case-insensitively, after stripping and collapsing internal whitespace) are missing. Every
    standardiser returns "" for such a value rather than raising, because a blank field is a
    normal part of partner data, not an error to report.

    Args:
        value: The raw value as read from a partner's file.

    Returns:
        Whether the value should be treated as missing.
    """
    if not value or value.isspace():
        return True
    return " ".join(value.split()).casefold() in _MISSING_TOKENS


# ---------------------------------------------------------------------------------------------
# Shared Unicode folding
# ---------------------------------------------------------------------------------------------

# Applied before NFKC: NFKC turns the acute accent U+00B4 into a space plus a combining mark,
# which would otherwise split "M\u00b4Donald" into two words. Invisible characters are deleted so
# that a zero-width space pasted from a web form cannot split or hide part of a value.
_PRE_NFKC = str.maketrans(
    {
        "\u2019": "'",  # right single quotation mark (Word's "smart" apostrophe)
        "\u2018": "'",  # left single quotation mark
        "\u02bc": "'",  # modifier letter apostrophe
        "\u00b4": "'",  # acute accent used as an apostrophe
        "\u2032": "'",  # prime
        "\u2010": "-",  # hyphen
        "\u2011": "-",  # non-breaking hyphen
        "\u2012": "-",  # figure dash
        "\u2013": "-",  # en dash
        "\u2014": "-",  # em dash
        "\u2212": "-",  # minus sign
        "\u00ad": None,  # soft hyphen
        "\u200b": None,  # zero-width space
        "\u200c": None,  # zero-width non-joiner
        "\u200d": None,  # zero-width joiner
        "\u2060": None,  # word joiner
        "\ufeff": None,  # byte-order mark / zero-width no-break space
    }
)

# Latin letters that NFKD does not decompose into a base letter plus marks, so stripping
# combining marks alone would lose them entirely (Łukasz -> "ukasz"). Keys are the case-folded
# forms because the table is applied after casefold().
_LETTER_TABLE = str.maketrans(
    {
        "\u00df": "ss",  # ß (casefold already does this; kept for clarity)
        "\u00e6": "ae",  # æ
        "\u0153": "oe",  # œ
        "\u00f8": "o",  # ø
        "\u0142": "l",  # ł
        "\u0111": "d",  # đ
        "\u00f0": "d",  # ð
        "\u00fe": "th",  # þ
        "\u0131": "i",  # dotless i
        "\u0127": "h",  # ħ
        "\u0167": "t",  # ŧ
    }
)


def _fold(value: str) -> str:
    """Case-fold a value and reduce accented Latin letters to their ASCII base letters.

    ASCII input (the vast majority) takes a fast path: NFKC and NFKD leave it unchanged, so
    lower() gives the same result as the full pipeline at a fraction of the cost.
    """
    if value.isascii():
        return value.lower()
    text = unicodedata.normalize("NFKC", value.translate(_PRE_NFKC))
    text = unicodedata.normalize("NFKD", text.casefold().translate(_LETTER_TABLE))
    return "".join(ch for ch in text if not unicodedata.combining(ch))


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------

# Dropped only when they are whole words and at least one other word remains (see
# standardise_name). Several (lord, lady, dame, sir) are also real surnames, which is why a value
# made only of these words is kept rather than emptied.
_TITLES = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "miss",
        "mx",
        "master",
        "mstr",
        "dr",
        "prof",
        "professor",
        "sir",
        "dame",
        "lady",
        "lord",
        "rev",
        "revd",
        "reverend",
        "fr",
        "sr",
        "jr",
        "snr",
        "jnr",
        "ii",
        "iii",
        "iv",
        "esq",
        "hon",
    }
)

_UNICODE_DIGIT_RE = re.compile(r"\d")

# Digits that OCR commonly produces from letters, read back as those letters. Only confusions
# that published OCR confusion tables agree on are listed (the GeCo/crptr OCR look-up table:
# 5/S, 2/Z, 1/l, 6/G; OCR post-correction lists: 0/O, 8/B, 6/b): a digit whose reading is
# ambiguous (9 as g or q) or that OCR rarely produces from a letter (3, 4, 7 are look-alikes
# only in hand-typed "leetspeak") is not guessed, and the name is still rejected.
#
# 1 and 6 resemble different letters in capitals (I, G) and in lower case (l, b), so the reading
# depends on where the digit stands: in a value without lower-case letters (block capitals, as
# forms ask for and many systems store), and at the start of a word, where names have their
# capital, the capital reading; elsewhere the lower-case one. "W1LLIAM" -> william,
# "Wi11iam" -> william, "1sla" -> isla.
_OCR_CAPITAL_READING = str.maketrans("012568", "oizsgb")
_OCR_SMALL_READING = str.maketrans("012568", "olzsbb")
_OCR_DIGITS = "012568"
# Any digit that has no reading above, including non-ASCII digits NFKC leaves alone (Arabic-Indic).
_UNREADABLE_DIGIT_RE = re.compile(r"[^\D012568]")
# A digit at the start of a word: not preceded by a letter or digit.
_WORD_INITIAL_DIGIT_RE = re.compile(r"(?<![a-z0-9])[0-9]")
# Words as _NAME_WORD_RE sees them once digits are letters, for the "mostly digits" rule.
_NAME_DIGIT_WORD_RE = re.compile(r"[a-z0-9'`\-]+")
# A word is a run of ASCII letters, apostrophes and hyphens: apostrophes and hyphens join the
# parts of one name (O'Neill, Smith-Jones), anything else (spaces, dots, commas) separates words.
_NAME_WORD_RE = re.compile(r"[a-z'`\-]+")
_MAC_PREFIXES = ("mc", "m'", "m`")


def _drop_joiners(word: str) -> str:
    """Delete apostrophes and hyphens, leaving only a-z (words contain nothing else).

    Chained replace() is several times faster than translate() or a regex on short strings.
    """
    return word.replace("'", "").replace("-", "").replace("`", "")


def _read_ocr_digits(folded: str, capitals: bool) -> str:
    """Replace each digit of a folded name by the letter OCR most likely misread as it.

    Args:
        folded: The name after _fold(), containing at least one digit.
        capitals: Whether the raw value has no lower-case letters (is in block capitals).

    Raises:
        InvalidValue: If a digit has no reading, or a word is not mostly letters: a word with at
            least as many digits as letters ("1985", "AB12", "Smith 2") is a number, an ID or a
            shifted column, not a misread name, and encoding it as one would be false evidence.
    """
    if _UNREADABLE_DIGIT_RE.search(folded):
        raise InvalidValue(_R_NAME_DIGITS)
    for word in _NAME_DIGIT_WORD_RE.findall(folded):
        digits = sum(word.count(d) for d in _OCR_DIGITS)
        if digits and digits >= len(_drop_joiners(word)) - digits:
            raise InvalidValue(_R_NAME_DIGITS)
    if capitals:
        return folded.translate(_OCR_CAPITAL_READING)
    initial = _WORD_INITIAL_DIGIT_RE.sub(lambda m: m[0].translate(_OCR_CAPITAL_READING), folded)
    return initial.translate(_OCR_SMALL_READING)


def _mac(part: str) -> str:
    """Apply the Mc/Mac rule to one name part: a leading "mc", or "m'" before a letter, -> "mac"."""
    if part.startswith("mc") or (len(part) > 2 and part[2] not in "'`"):
        return "mac" + part[2:]
    return part


def standardise_name(value: str) -> str:
    """Standardise a given name or surname to lower-case ASCII letters only.

    Steps: Unicode NFKC, case-fold, transliterate letters NFKD cannot decompose (ł -> l, æ -> ae),
    NFKD with combining marks removed (Seán -> sean); read digits that OCR produces from letters
    back as those letters ("J0HN" -> john, "5MITH" -> smith; see _read_ocr_digits); drop title
    words (Mr, Dr, Jnr ...) if another word remains; rewrite a leading "Mc" or "M'" of each word
    to "Mac"; finally remove everything that is not a-z, so spacing, hyphens and apostrophes
    cannot stop two spellings of the same name agreeing ("O'Neill", "O Neill" and "ONeill" all
    give "oneill").

    Args:
        value: A raw given name or surname.

    Returns:
        The canonical name (only characters a-z), or "" if the value is missing or nothing
        remains (for example a name written only in a non-Latin script).

    Raises:
        InvalidValue: If the name contains a digit OCR does not produce from a letter (3, 4, 7,
            9, non-ASCII digits), or a word that is at least half digits ("1985", "Smith 2"):
            then the field holds something other than a name (a date, an ID, a mis-keyed
            column) and should be looked at, not matched.
    """
    if is_missing(value):
        return ""
    folded = _fold(value)
    if _UNICODE_DIGIT_RE.search(folded):
        folded = _read_ocr_digits(folded, not any(ch.islower() for ch in value))

    words = _NAME_WORD_RE.findall(folded)
    letters = [word if word.isalpha() else _drop_joiners(word) for word in words]
    kept = [word for word, only in zip(words, letters, strict=True) if only and only not in _TITLES]
    if not kept:
        # Only title words (or nothing): keep them, since "Lord" or "Dame" may be the surname.
        kept = [word for word, only in zip(words, letters, strict=True) if only]

    parts = [
        _mac(part) if part.startswith(_MAC_PREFIXES) else part
        for word in kept
        for part in word.split("-")
    ]
    result = _drop_joiners("".join(parts))
    # Joining can create a new leading "mc" ("M C Donald" -> "mcdonald"); rewriting it here
    # keeps the function idempotent, because a second pass sees one word starting with "mc".
    if result.startswith("mc"):
        result = "mac" + result[2:]
    if result in _MISSING_LETTERS:
        return ""
    return result


# ---------------------------------------------------------------------------------------------
# Dates
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Postcodes
# ---------------------------------------------------------------------------------------------

# Outward code shapes A9, A99, A9A, AA9, AA99, AA9A; inward code 9AA. Letter-position rules
# (e.g. no Q, V, X first) are deliberately not enforced: a rule applied wrongly would reject a
# real postcode, while a shape check alone already catches almost all keying damage.
_OUTWARD = r"[A-Z]{1,2}[0-9][0-9A-Z]?"
_FULL_POSTCODE_RE = re.compile(rf"({_OUTWARD})([0-9][A-Z]{{2}})", re.ASCII)
_OUTWARD_ONLY_RE = re.compile(_OUTWARD, re.ASCII)
# NHS pseudo-postcodes (ZZ99 3VZ "no fixed abode", ZZ99 3CZ "England, not otherwise specified",
# ...) are shared by thousands of unrelated people, so agreement on one is not evidence.
_PSEUDO_OUTWARD = "ZZ99"


def _compact_ascii_upper(value: str, reason: str) -> str:
    """NFKC, all whitespace removed, upper case; InvalidValue(reason) if not then ASCII.

    The ASCII check comes before upper(), which would otherwise turn "ß" into "SS".
    """
    text = value if value.isascii() else unicodedata.normalize("NFKC", value)
    compact = "".join(text.split())
    if not compact.isascii():
        raise InvalidValue(reason)
    return compact.upper()


def standardise_postcode(value: str) -> str:
    """Standardise a UK postcode to upper case with one space before the inward code.

    All whitespace is ignored ("eh11aa", "EH1  1AA" -> "EH1 1AA"). Likely OCR or keying
    confusions (O/0, I/1) are not corrected: a "corrected" postcode may be someone else's, and
    merging two people is worse than missing one match. An outward code on its own ("EH1",
    "SW1A") is returned as is; its encoding shares n-grams with the full postcode, so it still
    contributes partial evidence.

    Args:
        value: The raw postcode.

    Returns:
        "EH1 1AA"-style postcode, an outward code alone, "GIR 0AA", or "" if the value is
        missing or an NHS ZZ99 pseudo-postcode.

    Raises:
        InvalidValue: If the value is not shaped like a UK postcode or outward code.
    """
    if is_missing(value):
        return ""
    compact = _compact_ascii_upper(value, _R_POSTCODE)
    if compact == "GIR0AA":
        return "GIR 0AA"
    if match := _FULL_POSTCODE_RE.fullmatch(compact):
        outward, inward = match.groups()
        return "" if outward == _PSEUDO_OUTWARD else f"{outward} {inward}"
    if _OUTWARD_ONLY_RE.fullmatch(compact):
        return "" if compact == _PSEUDO_OUTWARD else compact
    raise InvalidValue(_R_POSTCODE)


# ---------------------------------------------------------------------------------------------
# Sex
# ---------------------------------------------------------------------------------------------

# 1/2/0/9 follow ISO/IEC 5218 (1 male, 2 female, 0 not known, 9 not applicable). The ".0" forms
# are what a numeric column with blanks becomes after pandas reads it as float and it is
# written back as text.
_SEX_CODES: Mapping[str, str] = MappingProxyType(
    {
        "m": "M",
        "male": "M",
        "man": "M",
        "1": "M",
        "1.0": "M",
        "f": "F",
        "female": "F",
        "woman": "F",
        "2": "F",
        "2.0": "F",
        "u": "",
        "unknown": "",
        "x": "",
        "not known": "",
        "not specified": "",
        "0": "",
        "0.0": "",
        "9": "",
        "9.0": "",
        "indeterminate": "",
        "prefer not to say": "",
    }
)


def standardise_sex(value: str) -> str:
    """Standardise a sex code to "M", "F" or "" (unknown).

    Args:
        value: The raw code, e.g. "m", "Female", "1", "9", "Prefer not to say".

    Returns:
        "M", "F", or "" when the value is missing, unknown, not applicable or not given (these
        carry no evidence either way, so they are left out of the encoding).

    Raises:
        InvalidValue: If the code is not one of the accepted codes.
    """
    if is_missing(value):
        return ""
    text = value if value.isascii() else unicodedata.normalize("NFKC", value)
    code = _SEX_CODES.get(" ".join(text.split()).casefold())
    if code is None:
        raise InvalidValue(_R_SEX)
    return code


# ---------------------------------------------------------------------------------------------
# National Insurance numbers
# ---------------------------------------------------------------------------------------------

# First letter not D, F, I, Q, U, V; second letter not D, F, I, O, Q, U, V; six digits; optional
# suffix A-D (HMRC National Insurance Manual NIM39110).
_NINO_RE = re.compile(r"([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z])[0-9]{6}[A-D]?", re.ASCII)
_NINO_UNALLOCATED = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def standardise_ni_number(value: str) -> str:
    """Standardise a National Insurance number to upper case with no spaces.

    Args:
        value: The raw NI number, e.g. "ab 12 34 56 c".

    Returns:
        E.g. "AB123456C" (or "AB123456" when no suffix was given), or "" if missing.

    Raises:
        InvalidValue: If the format is wrong or the prefix is one HMRC never allocates
            (including the TN prefix of temporary numbers).
    """
    if is_missing(value):
        return ""
    compact = _compact_ascii_upper(value, _R_NINO)
    match = _NINO_RE.fullmatch(compact)
    if match is None:
        raise InvalidValue(_R_NINO)
    if match.group(1) in _NINO_UNALLOCATED:
        raise InvalidValue(_R_NINO_PREFIX)
    return compact


# ---------------------------------------------------------------------------------------------
# Addresses
# ---------------------------------------------------------------------------------------------

_ADDRESS_ABBREVIATIONS: Mapping[str, str] = MappingProxyType(
    {
        "rd": "road",
        "st": "street",
        "str": "street",
        "ave": "avenue",
        "av": "avenue",
        "dr": "drive",
        "drv": "drive",
        "ln": "lane",
        "cres": "crescent",
        "cresc": "crescent",
        "ct": "court",
        "crt": "court",
        "pl": "place",
        "sq": "square",
        "gdns": "gardens",
        "gdn": "garden",
        "terr": "terrace",
        "ter": "terrace",
        "tce": "terrace",
        "fl": "flat",
        "flt": "flat",
        "apt": "apartment",
        "cl": "close",
        "gro": "grove",
        "pk": "park",
        "pde": "parade",
        "hse": "house",
        "bldg": "building",
        "bldgs": "buildings",
        "est": "estate",
        "hts": "heights",
        "mt": "mount",
        "wk": "walk",
        "grn": "green",
        "cott": "cottage",
        "cotts": "cottages",
        "ctr": "centre",
        "blvd": "boulevard",
        "mkt": "market",
        "nth": "north",
        "sth": "south",
        "upr": "upper",
        "lwr": "lower",
    }
)

# Apostrophes are deleted rather than spaced ("St John's" -> "st johns"), and "&" becomes the
# word "and" so "Smith & Sons" and "Smith and Sons" agree.
# Every other ASCII character that is not a-z or 0-9 becomes a space. translate() covers ASCII
# text (almost every address) much faster than a regex; the regex handles what is left of
# non-Latin scripts after folding.
_ADDRESS_TABLE = str.maketrans(
    {
        **{chr(code): " " for code in range(128) if not chr(code).isalnum()},
        "'": None,
        "`": None,
        "&": " and ",
    }
)
_ADDRESS_NON_ASCII_RE = re.compile(r"[^a-z0-9 ]+")


def standardise_address(value: str) -> str:
    """Standardise one address line to lower-case words separated by single spaces.

    Accents are removed as for names, punctuation becomes a space, and common abbreviations are
    expanded when they are whole words ("12 High St." -> "12 high street"). "st" is always read
    as "street", never "saint": the expansion is the same on every partner's side, so it cannot
    stop two records agreeing, whereas guessing from context could.

    Args:
        value: A raw address line.

    Returns:
        The canonical line (characters a-z, 0-9 and single spaces), or "" if missing.
    """
    if is_missing(value):
        return ""
    text = _fold(value).translate(_ADDRESS_TABLE)
    if not text.isascii():
        text = _ADDRESS_NON_ASCII_RE.sub(" ", text)
    get = _ADDRESS_ABBREVIATIONS.get
    result = " ".join(get(word, word) for word in text.split())
    return "" if is_missing(result) else result


_STANDARDISERS: dict[str, Callable[[str], str]] = {
    "name": standardise_name,
    "date": standardise_date,
    "postcode": standardise_postcode,
    "sex": standardise_sex,
    "ni_number": standardise_ni_number,
    "address": standardise_address,
}
# Read-only view: the encoder looks standardisers up by field type, and a caller mutating the
# shared table would silently change how every other field is standardised.
STANDARDISERS: Mapping[str, Callable[[str], str]] = MappingProxyType(_STANDARDISERS)


# ---------------------------------------------------------------------------------------------
# Vectorised fast paths
# ---------------------------------------------------------------------------------------------

# The fast paths handle ASCII values of the common shapes, in Arrow compute kernels or in
# numba kernels over Arrow's buffers; anything else is left to the scalar functions above.
_MISSING_ARRAY = pa.array(sorted(_MISSING_TOKENS | _MISSING_LETTERS), pa.string())


def _replace_chars(values: pa.Array, table: dict[str, str]) -> pa.Array:
    for digit, letter in table.items():
        values = pc.replace_substring(values, digit, letter)
    return values


_CAPITAL_READING = {d: chr(_OCR_CAPITAL_READING[ord(d)]) for d in _OCR_DIGITS}
_SMALL_READING = {d: chr(_OCR_SMALL_READING[ord(d)]) for d in _OCR_DIGITS}


def _read_digits(values: pa.Array, lower: pa.Array) -> tuple[pa.Array, pa.Array]:
    """_read_ocr_digits for single ASCII words of letters and readable digits.

    Returns the read values and which values qualify: more letters than digits (the whole value
    is one word). In a value with a lower-case letter, only a first-character 1 or 6 takes the
    capital reading.
    """
    digits = pc.count_substring_regex(values, "[0-9]")
    mostly_letters = pc.greater(pc.utf8_length(values), pc.multiply(digits, 2))
    capitals = _replace_chars(lower, _CAPITAL_READING)
    first = pc.replace_substring_regex(lower, "^1", "i")
    small = _replace_chars(pc.replace_substring_regex(first, "^6", "g"), _SMALL_READING)
    has_small = pc.match_substring_regex(values, "[a-z]")
    return pc.if_else(has_small, small, capitals), mostly_letters


def _names(values: pa.Array) -> pa.Array:
    # A single ASCII word of letters (and digits OCR makes of letters): folding is lower(), no
    # titles can be dropped (nothing else remains), and only the leading-Mc rule applies.
    lower = pc.utf8_lower(values)
    read = lower
    ok = pc.match_substring_regex(values, "^[A-Za-z]+$")
    # Clean names (nearly all) skip the digit passes; the scalar function is the reference.
    if pc.any(pc.match_substring_regex(values, "[0-9]")).as_py():
        read, mostly_letters = _read_digits(values, lower)
        ok = pc.or_(ok, pc.and_(pc.match_substring_regex(values, "^[A-Za-z012568]+$"),
                                mostly_letters))  # fmt: skip
    out = pc.replace_substring_regex(read, "^mc", "mac")
    ok = pc.and_(ok, pc.invert(
        pc.or_(pc.is_in(lower, _MISSING_ARRAY), pc.is_in(out, _MISSING_ARRAY))
    ))  # fmt: skip
    return pc.if_else(ok, out, pa.scalar(None, pa.string()))


def _string_array(
    ok: np.ndarray[Any, Any], offsets: np.ndarray[Any, Any], data: np.ndarray[Any, Any]
) -> pa.Array:
    """A string array from a kernel's output: null where not `ok`."""
    return pa.Array.from_buffers(
        pa.large_string(),
        ok.shape[0],
        [
            pa.py_buffer(np.packbits(ok, bitorder="little")),
            pa.py_buffer(offsets),
            pa.py_buffer(data[: offsets[-1]] if offsets[-1] else np.zeros(1, np.uint8)),
        ],
    ).cast(pa.string())


@njit(cache=True, nogil=True)
def _is_ws(c: int) -> bool:
    # The ASCII characters Python's str.split() treats as whitespace.
    return c == 32 or 9 <= c <= 13 or 28 <= c <= 31


@njit(cache=True, nogil=True)
def _compact_upper_kernel(
    offsets: np.ndarray[Any, Any], data: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Each value without whitespace and in upper case (ASCII), as "".join(v.split()).upper()."""
    n = offsets.shape[0] - 1
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    out = np.empty(max(offsets[n] - offsets[0], 1), dtype=np.uint8)
    o = 0
    for v in range(n):
        for i in range(offsets[v], offsets[v + 1]):
            c = data[i]
            if _is_ws(c):
                continue
            out[o] = c - 32 if 97 <= c <= 122 else c
            o += 1
        out_offsets[v + 1] = o
    return out_offsets, out


@njit(cache=True, nogil=True)
def _postcode_kernel(
    offsets: np.ndarray[Any, Any], data: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Well-formed full postcodes, "OUT IN", from compacted upper-case values."""
    n = offsets.shape[0] - 1
    ok = np.zeros(n, dtype=np.bool_)
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    out = np.empty(8 * n + 1, dtype=np.uint8)
    o = 0
    for v in range(n):
        s = offsets[v]
        length = offsets[v + 1] - s
        good = 5 <= length <= 7
        if good:
            # inward code: digit, letter, letter
            i = s + length - 3
            good = 48 <= data[i] <= 57 and 65 <= data[i + 1] <= 90 and 65 <= data[i + 2] <= 90
        if good:
            # outward code: [A-Z]{1,2}[0-9][0-9A-Z]?
            k = length - 3
            c0, c1 = data[s], data[s + 1]
            if not 65 <= c0 <= 90:
                good = False
            elif 48 <= c1 <= 57:
                rest = k - 2
                good = rest == 0 or (
                    rest == 1 and (48 <= data[s + 2] <= 57 or 65 <= data[s + 2] <= 90)
                )
            elif 65 <= c1 <= 90 and k >= 3 and 48 <= data[s + 2] <= 57:
                rest = k - 3
                good = rest == 0 or (
                    rest == 1 and (48 <= data[s + 3] <= 57 or 65 <= data[s + 3] <= 90)
                )
            else:
                good = False
            # NHS ZZ99 pseudo-postcodes are treated as missing by the scalar function
            if (
                good
                and k == 4
                and c0 == 90
                and c1 == 90
                and data[s + 2] == 57
                and data[s + 3] == 57
            ):
                good = False
        if good:
            ok[v] = True
            k = length - 3
            for j in range(k):
                out[o] = data[s + j]
                o += 1
            out[o] = 32
            o += 1
            for j in range(3):
                out[o] = data[s + k + j]
                o += 1
        out_offsets[v + 1] = o
    return ok, out_offsets, out


def _postcodes(values: pa.Array) -> pa.Array:
    offsets, compact = _compact_upper_kernel(*string_buffers(values))
    return _string_array(*_postcode_kernel(offsets, compact))


_NI_FIRST = np.array([c not in "DFIQUV" for c in map(chr, range(65, 91))], dtype=np.bool_)
_NI_SECOND = np.array([c not in "DFIOQUV" for c in map(chr, range(65, 91))], dtype=np.bool_)
_NI_BLOCKED = np.array([(ord(p[0]) - 65) * 26 + ord(p[1]) - 65 for p in sorted(_NINO_UNALLOCATED)])


@njit(cache=True, nogil=True)
def _ni_kernel(
    offsets: np.ndarray[Any, Any],
    data: np.ndarray[Any, Any],
    first: np.ndarray[Any, Any],
    second: np.ndarray[Any, Any],
    blocked: np.ndarray[Any, Any],
) -> np.ndarray[Any, Any]:
    """Which compacted upper-case values are well-formed, allocated NI numbers."""
    n = offsets.shape[0] - 1
    ok = np.zeros(n, dtype=np.bool_)
    for v in range(n):
        s = offsets[v]
        length = offsets[v + 1] - s
        if length not in (8, 9):
            continue
        a, b = data[s], data[s + 1]
        if not (65 <= a <= 90 and 65 <= b <= 90 and first[a - 65] and second[b - 65]):
            continue
        prefix = (a - 65) * 26 + b - 65
        if (blocked == prefix).any():
            continue
        good = True
        for i in range(s + 2, s + 8):
            if not 48 <= data[i] <= 57:
                good = False
        if good and length == 9:
            good = 65 <= data[s + 8] <= 68
        ok[v] = good
    return ok


def _ni_numbers(values: pa.Array) -> pa.Array:
    offsets, compact = _compact_upper_kernel(*string_buffers(values))
    ok = _ni_kernel(offsets, compact, _NI_FIRST, _NI_SECOND, _NI_BLOCKED)
    return _string_array(ok, offsets, compact)


def _packed(words: list[str]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Words as (offsets, bytes), the way the kernels take string tables."""
    data = np.frombuffer("".join(words).encode("ascii"), dtype=np.uint8).copy()
    offsets = np.zeros(len(words) + 1, dtype=np.int64)
    np.cumsum([len(w) for w in words], out=offsets[1:])
    return offsets, data if data.size else np.zeros(1, np.uint8)


_ABBREVIATION_TABLE = (*_packed(list(_ADDRESS_ABBREVIATIONS)),
                       *_packed(list(_ADDRESS_ABBREVIATIONS.values())))  # fmt: skip
_MISSING_LETTER_TABLE = _packed(sorted(_MISSING_LETTERS))


@njit(cache=True, nogil=True)
def _find(
    data: np.ndarray[Any, Any], start: int, end: int,
    table_offsets: np.ndarray[Any, Any], table: np.ndarray[Any, Any],
) -> int:  # fmt: skip
    """Index of data[start:end] in a packed word table, or -1."""
    length = end - start
    for w in range(table_offsets.shape[0] - 1):
        ws = table_offsets[w]
        if table_offsets[w + 1] - ws != length:
            continue
        same = True
        for i in range(length):
            if data[start + i] != table[ws + i]:
                same = False
                break
        if same:
            return w
    return -1


@njit(cache=True, nogil=True)
def _address_kernel(
    offsets: np.ndarray[Any, Any], data: np.ndarray[Any, Any],
    key_offsets: np.ndarray[Any, Any], keys: np.ndarray[Any, Any],
    value_offsets: np.ndarray[Any, Any], values: np.ndarray[Any, Any],
    missing_offsets: np.ndarray[Any, Any], missing: np.ndarray[Any, Any],
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:  # fmt: skip
    """standardise_address for ASCII values: lower case, apostrophes deleted, & as "and",
    other punctuation as spaces, abbreviations expanded, single spaces."""
    n = offsets.shape[0] - 1
    ok = np.zeros(n, dtype=np.bool_)
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    total = offsets[n] - offsets[0]
    # Worst cases: "&" becomes " and " and "st" becomes "street"; one value's words hold at
    # most three bytes per input byte ("&" as "and").
    out = np.empty(6 * total + 1, dtype=np.uint8)
    words = np.empty(3 * total + 3, dtype=np.uint8)
    o = 0
    for v in range(n):
        start_out = o
        w_start = 0  # current word within `words`
        w_len = 0
        letters = 0  # all word bytes so far, for the missing-value check
        i = offsets[v]
        end = offsets[v + 1]
        while i <= end:
            c = data[i] if i < end else 32
            if 65 <= c <= 90:
                c += 32
            if 97 <= c <= 122 or 48 <= c <= 57:
                words[w_start + w_len] = c
                w_len += 1
            elif c in (39, 96):  # ' and ` join the parts of a word
                pass
            else:
                if w_len:
                    if o > start_out:
                        out[o] = 32
                        o += 1
                    k = _find(words, w_start, w_start + w_len, key_offsets, keys)
                    if k >= 0:
                        for j in range(value_offsets[k], value_offsets[k + 1]):
                            out[o] = values[j]
                            o += 1
                    else:
                        for j in range(w_start, w_start + w_len):
                            out[o] = words[j]
                            o += 1
                    letters += w_len
                    w_start += w_len
                    w_len = 0
                if c == 38:  # "&" is the word "and"
                    if o > start_out:
                        out[o] = 32
                        o += 1
                    for ch in (97, 110, 100):
                        out[o] = ch
                        o += 1
                        words[w_start] = ch
                        w_start += 1
                    letters += 3
            i += 1
        # A value whose letters spell a null token (or nothing) is for the scalar function
        # to decide, as is a result that spells one.
        maybe_missing = letters == 0 or _find(words, 0, w_start, missing_offsets, missing) >= 0
        if not maybe_missing:
            ok[v] = True
            out_offsets[v + 1] = o
        else:
            o = start_out
            out_offsets[v + 1] = o
    return ok, out_offsets, out


def _addresses(values: pa.Array) -> pa.Array:
    offsets, data = string_buffers(values)
    ok, out_offsets, out = _address_kernel(
        offsets, data, *_ABBREVIATION_TABLE, *_MISSING_LETTER_TABLE
    )
    result = _string_array(ok, out_offsets, out)
    spelled = pc.fill_null(pc.is_in(result, _MISSING_ARRAY), False)
    return pc.if_else(spelled, pa.scalar(None, pa.string()), result)


@njit(cache=True, nogil=True)
def _date_kernel(
    offsets: np.ndarray[Any, Any], data: np.ndarray[Any, Any], today: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """ISO dates of `YYYY-MM-DD` and `DD/MM/YYYY` (or `-`, `.`) values, read from the bytes.

    Returns a validity mask and 10 ISO bytes per value. Valid means a real calendar date
    from 1900-01-01 to `today` (YYYYMMDD as an integer), as the scalar parser decides.
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
        if month == 2:
            leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
            last = 29 if leap else 28
        elif month in (4, 6, 9, 11):
            last = 30
        else:
            last = 31
        stamp = year * 10000 + month * 100 + day
        if day > last or year < 1900 or stamp > today:
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


def _dates(values: pa.Array) -> pa.Array:
    # ISO and four-digit-year day-first numeric dates, the layouts partners mostly send,
    # parsed straight from Arrow's buffers.
    offsets, data = string_buffers(values)
    today = date.today()
    ok, iso_bytes = _date_kernel(offsets, data, today.year * 10000 + today.month * 100 + today.day)
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


_FAST_PATHS: dict[str, Callable[[pa.Array], pa.Array]] = {
    "date": _dates,
    "name": _names,
    "postcode": _postcodes,
    "ni_number": _ni_numbers,
    "address": _addresses,
}


def standardise_array(kind: str, values: pa.Array) -> pa.Array | None:
    """Standardise many values at once where a vectorised fast path is exact.

    The common, clean shapes (an ASCII single-word name, a well-formed postcode or NI number,
    an ASCII address line) are standardised by Arrow's compute kernels. Every non-null result
    equals the scalar standardiser's output for that value (tests compare them); null means
    "not handled here": the caller must call the scalar standardiser, which also decides what
    is missing or invalid.

    Args:
        kind: A key of STANDARDISERS.
        values: Raw values, an Arrow string array without nulls.

    Returns:
        The results with nulls where the scalar function must decide, or None when `kind`
        has no fast path.
    """
    fast = _FAST_PATHS.get(kind)
    if fast is None or len(values) == 0:
        return None
    out = fast(values)
    return pc.if_else(pc.string_is_ascii(values), out, pa.scalar(None, pa.string()))
