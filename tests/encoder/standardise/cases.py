"""Shared cases for the standardiser tests: reasons, null tokens, plausible-value strategies."""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from datetime import date, timedelta
from functools import partial

import pyarrow as pa
from hypothesis import strategies as st

from encoder.standardise import FIELDS, STANDARDISERS, InvalidValue, standardise_date

Standardiser = Callable[[str], str]

# The documented reasons (docs/standardisation.md). Every InvalidValue must carry one of these
# exact strings, which is what guarantees that no part of a value can reach a log.
REASONS = frozenset(
    {
        "name contains digits",
        "unrecognised date format",
        "does not match the given format",
        "unrecognised month name",
        "month out of range",
        "day out of range for month",
        "date before 1900-01-01",
        "date in the future",
        "not a valid UK postcode",
        "unrecognised sex code",
        "not a valid NI number",
        "NI number prefix not allocated",
    }
)

# Written out again, not imported: a token dropped from the rule must fail a test.
NULL_TOKENS = [
    "not known",
    "not stated",
    *["null", "none", "n/a", "na", "nan", "-", "--", "?", "unknown"],
]

# Every standardiser, plus date with an explicit format, which has its own code path.
ALL_FUNCTIONS: dict[str, Standardiser] = {
    **STANDARDISERS,
    "date_fmt": partial(standardise_date, fmt="%d/%m/%Y"),
    "date_fmt_2digit": partial(standardise_date, fmt="%d/%m/%y"),
}

POSTCODE_RE = re.compile(r"[A-Z]{1,2}[0-9][0-9A-Z]?( [0-9][A-Z]{2})?|GIR 0AA")
NINO_RE = re.compile(r"[A-Z]{2}[0-9]{6}[A-D]?")


def run(function: Standardiser, value: str) -> str | None:
    """Standardise, returning None when the value is rejected with InvalidValue."""
    try:
        return function(value)
    except InvalidValue:
        return None


def reason(function: Standardiser, value: str) -> str | None:
    """The InvalidValue message for a rejected value, or None if it was accepted.

    Any exception other than InvalidValue propagates and fails the calling test.
    """
    try:
        function(value)
    except InvalidValue as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------------------------------------
# Strategies for plausible (not only arbitrary) input, so properties are exercised on values
# that standardise successfully and not only on ones that are rejected.
# ---------------------------------------------------------------------------------------------

NAME_ALPHABET = (
    string.ascii_letters + " '-.`,\u2019\u00b4\u00e9\u00eb\u00f8\u0142\u00df\u00c6\u0130\u0131"
)
# Words with their own rules: titles, Mc/Mac, joiners, and digits OCR makes of letters.
NAME_WORDS = ["Mr", "Dr.", "Lord", "Mc", "Mac", "M'", "O'", "Donald", "Jnr", "III"]
NAME_WORDS += ["J0HN", "5mith", "Wi11iam", "0'", "6ARY"]
name_like = st.lists(
    st.one_of(
        st.sampled_from(NAME_WORDS),
        st.text(alphabet=NAME_ALPHABET, max_size=8),
    ),
    max_size=5,
).flatmap(lambda words: st.sampled_from([" ", "", "-", "'"]).map(lambda sep: sep.join(words)))

past_dates = st.dates(min_value=date(1900, 1, 1), max_value=date.today())
DATE_LAYOUTS = [
    "%Y-%m-%d",
    "%Y-%m-%d 00:00:00",
    "%Y-%m-%dT%H:%M:%S",
    "%Y%m%d",
    "%d/%m/%Y",
    "%d-%m-%Y",
    "%d.%m.%Y",
    "%d %m %Y",
    "%d/%m/%Y 00:00",
    "%d %b %Y",
    "%d-%b-%Y",
    "%d%b%Y",
    "%d %B %Y",
    "%B %d, %Y",
    "%b %d %Y",
]
ordinal = {1: "st", 2: "nd", 3: "rd", 21: "st", 22: "nd", 23: "rd", 31: "st"}

postcode_like = st.from_regex(
    r"\A ?[A-Za-z]{1,2}[0-9][0-9A-Za-z]? {0,2}([0-9][A-Za-z]{2})? ?\Z", fullmatch=True
)
nino_like = st.from_regex(
    r"\A[A-Za-z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-Da-d]?\Z", fullmatch=True
)
ADDRESS_WORDS = ["rd", "st", "St.", "ave", "Dr", "ln", "gdns", "Flat", "12a", "&", "John's", "Rd."]
address_like = st.lists(
    st.one_of(st.sampled_from(ADDRESS_WORDS), st.text(alphabet=string.printable, max_size=6)),
    max_size=6,
).map(" ".join)
sex_like = st.sampled_from(
    ["m", "Male", "MAN", "1", "f", "Female", "woman", "2", "U", "x", "Not Known", "0", "9"]
).map(lambda code: f"  {code} ")

PLAUSIBLE: dict[str, st.SearchStrategy[str]] = {
    "name": name_like,
    "date": past_dates.map(lambda d: d.strftime("%d/%m/%Y")),
    "postcode": postcode_like,
    "sex": sex_like,
    "ni_number": nino_like,
    "address": address_like,
}

# Characters that exercise every branch: letters, digits, the separators and joiners the
# standardisers treat specially, Python-only whitespace (\x1c) and non-ASCII letters.
ALPHABET = "abcmxyzMCOABCDEHNTZ0129 -'`&./,\t\x1c\xa0éŁß"
REALISTIC = [
    "McDonald", "MACDONALD", "Mc", "o'neill", "Smith-Jones", "Mr", "NA", "nan", "None", "",
    "  ", "eh11aa", "EH1 1AA", "ZZ99 3VZ", "gir0aa", "SW1A1AA", "sw1a", "AB 12 34 56 C",
    "TN123456A", "ab123456", "12 High St.", "Flat 2/1, 5 Rose St", "N/A", "St John's Rd & Co",
    "not known", "Not-Known", "\tEH1\x1c1AA", "Zoë", "12 Mar 1985", "&&&&", "st st st",
    "FL 2/1", "N & A", "'n'a'", "Apt 3, 12 Rd", "AB 12 34 56", "KN123456A", "G1A 1AA", "A1 1AA",
    "J0HN", "5MITH", "Wi11iam", "1sla", "6ARY", "Ro6ert", "N0NE", "Nu11", "J0", "MC0Y", "Mc5",
]  # fmt: skip

# Per field, the characters its fast path reads specially and the shapes at the edges of what
# it takes, for the test that each fast path equals its scalar rule. Keyed like FIELDS: a field
# missing here fails that test rather than skipping it.
FIELD_ALPHABETS: dict[str, str] = {
    # The reading of 1 and 6 depends on case and position, which the kernels must copy.
    "name": "aAbcClLmMnNoOsS0123456789",
    "date": "0123456789-/. ",
    "postcode": "ABGIRVZaz0139 \t",
    "sex": "mMfF0129. ",
    "ni_number": "ABDGKNOQTUZa0129 ",
    "address": "aNnStTdr0&'` .,/-",
}
EDGE_CASES: dict[str, list[str]] = {
    "name": ["Smith", "McDonald", "Mc", "mac", "MC0Y", "Mc5", "Nan", "NA", "6ARY", "Ro6ert", "1sla",
             "Wi11iam", "J0", "J0HN", "N0NE", "Nu11", "Zoë", "O'Neill", "Mr"],
    "date": [
        "1985-03-12", "12/03/1985", "31/02/1985", "29/02/2024", "29/02/2023", "1899-12-31",
        "1900-01-01", "2099-01-01", "12-03-1985", "12.03.1985", "00/01/1990", "12/13/1985",
        "1985-3-12", "29/02/1900", "29-02-2000", "12/03.1985", "1985/03/12", "1985.03.12",
        date.today().isoformat(), (date.today().replace(day=1) + timedelta(days=40)).isoformat(),
    ],
    "postcode": ["EH1 1AA", "eh11aa", "ZZ99 3VZ", "ZZ993VZ", "ZZ9 9AA", "Z99 3VZ", "ZZ99",
                 "GIR 0AA", "gir0aa", "SW1A 1AA", "A1 1AA", "A11AA1", "AA1A1AA", "1A 1AA"],
    "sex": ["m", "F", "1.0", "9", "x", "not known"],
    "ni_number": ["AB123456C", "AB123456", "TN123456A", "BG123456", "GB123456", "ZZ123456D",
                  "AB123456E", "DA123456A", "AO123456A", "OA123456", "AB12345", "AB1234567",
                  "AB 12 34 56 D", "ab123456a", "QQ123456C"],
    "address": ["12 High St.", "&", "N & A", "'n'a'", "st st st", "Not-Known", "none & none",
                "n/a", "Flat 2/1", "St John's Rd & Co", "12a", "--", "`"],
}  # fmt: skip


def field_values(kind: str) -> st.SearchStrategy[list[str]]:
    """Lists of raw values for one field: arbitrary, edge cases and plausible ones mixed."""
    value = st.one_of(
        st.text(alphabet=ALPHABET, max_size=14),
        st.text(alphabet=FIELD_ALPHABETS[kind], max_size=12),
        st.sampled_from(REALISTIC + EDGE_CASES[kind]),
        PLAUSIBLE[kind],
    )
    return st.lists(value, min_size=1, max_size=40)


def one_byte_edits(templates: list[str]) -> list[str]:
    """Every template with each position in turn replaced by each ASCII character."""
    return [
        t[:i] + chr(c) + t[i + 1 :] for t in templates for i in range(len(t)) for c in range(128)
    ]


def fast_path_disagreements(kind: str, values: list[str]) -> list[tuple[str, str, str | None]]:
    """The values where the field's fast path gives a result other than its scalar rule's.

    Returns (value, fast-path result, scalar result or None when the rule rejects the value).
    """
    field = FIELDS[kind]
    assert field.fast_path is not None
    out = field.fast_path(pa.array(values, pa.string())).to_pylist()
    return [(value, fast, run(field.scalar, value))
            for value, fast in zip(values, out, strict=True)
            if fast is not None and fast != run(field.scalar, value)]  # fmt: skip
