"""Tests for encoder.standardise: canonical forms, idempotency and privacy of error messages."""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from datetime import date, timedelta
from functools import partial
from unittest.mock import patch

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from encoder.standardise import (
    STANDARDISERS,
    InvalidValue,
    is_missing,
    standardise_address,
    standardise_date,
    standardise_name,
    standardise_ni_number,
    standardise_postcode,
    standardise_sex,
)

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

NULL_TOKENS = [
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


# ---------------------------------------------------------------------------------------------
# Properties over every standardiser
# ---------------------------------------------------------------------------------------------


def test_registry_names_each_standardiser() -> None:
    assert dict(STANDARDISERS) == {
        "name": standardise_name,
        "date": standardise_date,
        "postcode": standardise_postcode,
        "sex": standardise_sex,
        "ni_number": standardise_ni_number,
        "address": standardise_address,
    }


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        STANDARDISERS["name"] = standardise_sex  # type: ignore[index]


def test_invalid_value_is_a_value_error() -> None:
    assert issubclass(InvalidValue, ValueError)


@pytest.mark.parametrize("function", ALL_FUNCTIONS.values(), ids=ALL_FUNCTIONS.keys())
@given(value=st.text())
def test_idempotent_on_arbitrary_text(function: Standardiser, value: str) -> None:
    once = run(function, value)
    if once is not None:
        assert function(once) == once


@pytest.mark.parametrize("field", PLAUSIBLE.keys())
@given(data=st.data())
def test_idempotent_on_plausible_values(field: str, data: st.DataObject) -> None:
    function = STANDARDISERS[field]
    value = data.draw(PLAUSIBLE[field])
    once = run(function, value)
    if once is not None:
        assert function(once) == once


@pytest.mark.parametrize("function", ALL_FUNCTIONS.values(), ids=ALL_FUNCTIONS.keys())
@given(value=st.text())
def test_only_invalid_value_escapes_and_reason_is_documented(
    function: Standardiser, value: str
) -> None:
    message = reason(function, value)  # anything but InvalidValue propagates and fails
    assert message is None or message in REASONS


@pytest.mark.parametrize("function", ALL_FUNCTIONS.values(), ids=ALL_FUNCTIONS.keys())
@given(value=st.text(min_size=3))
def test_reason_never_contains_the_value(function: Standardiser, value: str) -> None:
    stripped = value.strip()
    # A value that is a common word of a reason ("date", "valid") is contained by coincidence.
    assume(len(stripped) >= 3)
    assume(not any(stripped.casefold() in reason.casefold() for reason in REASONS))
    message = reason(function, value) or ""
    assert stripped not in message
    assert stripped.casefold() not in message.casefold()


@pytest.mark.parametrize(
    ("function", "value"),
    [
        (standardise_name, "Zebedee42"),
        (standardise_date, "31/02/1985"),
        (standardise_date, "12 Smarch 1985"),
        (standardise_postcode, "QQQ 999"),
        (standardise_sex, "Zebedee"),
        (standardise_ni_number, "TN123456A"),
    ],
)
def test_reason_for_realistic_bad_values_omits_them(function: Standardiser, value: str) -> None:
    with pytest.raises(InvalidValue) as info:
        function(value)
    assert value not in str(info.value)
    assert str(info.value) in REASONS


def test_strptime_message_is_not_chained() -> None:
    # strptime's own error quotes the value; it must not survive as __cause__ or __context__
    # shown in a traceback.
    with pytest.raises(InvalidValue) as info:
        standardise_date("Zebedee 1985", fmt="%d/%m/%Y")
    assert str(info.value) == "does not match the given format"
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ is True


@pytest.mark.parametrize("function", ALL_FUNCTIONS.values(), ids=ALL_FUNCTIONS.keys())
@pytest.mark.parametrize("token", NULL_TOKENS)
def test_null_tokens_are_missing_for_every_standardiser(function: Standardiser, token: str) -> None:
    for variant in (token, token.upper(), f"  {token.title()}\t"):
        assert is_missing(variant)
        assert function(variant) == ""


@pytest.mark.parametrize("value", ["", " ", "\t\n", "\u00a0", "NOT   KNOWN", " N/A "])
def test_blank_values_are_missing(value: str) -> None:
    assert is_missing(value)
    for function in ALL_FUNCTIONS.values():
        assert function(value) == ""


@pytest.mark.parametrize("value", ["Smith", "0", "n a", "nulls", "not", "1985-03-12"])
def test_ordinary_values_are_not_missing(value: str) -> None:
    assert not is_missing(value)


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------


@given(value=st.one_of(st.text(), name_like))
def test_name_output_is_only_lowercase_ascii_letters(value: str) -> None:
    result = run(standardise_name, value)
    if result is not None:
        assert re.fullmatch(r"[a-z]*", result)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Se\u00e1n", "sean"),
        ("SE\u00c1N", "sean"),
        ("Sea\u0301n", "sean"),  # decomposed accent
        ("Zo\u00eb", "zoe"),
        ("\u0141ukasz", "lukasz"),
        ("Stra\u00dfe", "strasse"),
        ("\u00c6thelstan", "aethelstan"),
        ("\u00d8yvind", "oyvind"),
        ("\u00de\u00f3r", "thor"),
        ("\u0130pek", "ipek"),
        ("\u0131smail", "ismail"),
        ("\uff2a\uff4f\uff48\uff4e", "john"),  # full-width letters (NFKC)
        ("Zo\u00eb\u200b", "zoe"),  # zero-width space pasted from a web form
        ("Smith-Jones", "smithjones"),
        ("Smith Jones", "smithjones"),
        ("SMITHJONES", "smithjones"),
        ("Smith\u2013Jones", "smithjones"),
        ("O'Neill", "oneill"),
        ("O\u2019Neill", "oneill"),
        ("O Neill", "oneill"),
        ("ONeill", "oneill"),
        ("D'Arcy", "darcy"),
        ("J. R. R.", "jrr"),
    ],
)
def test_name_examples(raw: str, expected: str) -> None:
    assert standardise_name(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "MacDonald",
        "Macdonald",
        "McDonald",
        "MCDONALD",
        "Mc Donald",
        "Mac Donald",
        "M'Donald",
        "M\u2019Donald",
        "M\u00b4Donald",
        "M C Donald",
    ],
)
def test_mc_and_mac_spellings_agree(raw: str) -> None:
    assert standardise_name(raw) == "macdonald"


@pytest.mark.parametrize("raw", ["Mace", "Macey", "Machin", "Mack", "Mackintosh", "Mach"])
def test_names_starting_mac_are_not_rewritten(raw: str) -> None:
    assert standardise_name(raw) == raw.lower()


def test_mc_rule_applies_to_each_part_of_a_double_barrelled_name() -> None:
    assert standardise_name("Smith-McDonald") == standardise_name("Smith MacDonald")
    assert standardise_name("Smith-McDonald") == "smithmacdonald"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Mr John Smith", "johnsmith"),
        ("Dr. Smith", "smith"),
        ("MRS.SMITH", "smith"),
        ("Prof Sir Tim Berners-Lee", "timbernerslee"),
        ("Smith Jnr", "smith"),
        ("Henry III", "henry"),
        ("Rev'd Green", "green"),
        ("Lord", "lord"),  # only title words: kept, Lord is also a surname
        ("Mr", "mr"),
        ("Lord-Smith", "lordsmith"),  # hyphenated, so not a separate word
    ],
)
def test_titles_dropped_only_as_separate_words(raw: str, expected: str) -> None:
    assert standardise_name(raw) == expected


@pytest.mark.parametrize("raw", ["N.A.", "N A", "Nan", "Not-Known", "\uff2e\uff35\uff2c\uff2c"])
def test_name_that_spells_a_null_token_is_missing(raw: str) -> None:
    assert standardise_name(raw) == ""


@pytest.mark.parametrize("raw", ["\u0418\u0432\u0430\u043d", "\u738b", "'-.", "  --- "])
def test_name_with_no_latin_letters_is_missing(raw: str) -> None:
    assert standardise_name(raw) == ""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("J0HN", "john"),
        ("5MITH", "smith"),
        ("GE0RGE", "george"),
        ("8ARBARA", "barbara"),
        ("ELI2ABETH", "elizabeth"),
        ("6RAHAM", "graham"),  # block capitals: 6 is G
        ("Ro6ert", "robert"),  # lower case: 6 is b
        ("W1LLIAM", "william"),  # block capitals: 1 is I
        ("Wi11iam", "william"),  # lower case: 1 is l
        ("1sla", "isla"),  # start of a word, where the capital is: 1 is I
        ("Mary-1sabel", "maryisabel"),
        ("0'NEILL", "oneill"),
        ("MC D0NALD", "macdonald"),  # digits are read before the Mc rule
        ("Mr J0hn", "john"),  # ... and before titles are dropped
        ("\uff2a\uff10\uff28\uff2e", "john"),  # full-width digit (NFKC makes it ASCII)
        ("Smith2", "smithz"),  # a lone trailing digit is read as well (documented)
        ("N0NE", ""),  # reads as a null token, so missing like "None"
    ],
)
def test_ocr_digits_are_read_as_letters(raw: str, expected: str) -> None:
    assert standardise_name(raw) == expected


def test_ocr_reading_agrees_with_the_clean_spelling() -> None:
    """What the reading is for: the misread name and the clean one give the same string."""
    pairs = [("J0HN", "John"), ("5MITH", "Smith"), ("C0NN0R", "Connor"), ("Ki11ian", "Killian")]
    for misread, clean in pairs:
        assert standardise_name(misread) == standardise_name(clean)


@pytest.mark.parametrize(
    "raw",
    [
        "John 3rd",  # 3 has no reading
        "1985",  # all digits
        "12345",
        "2001-05-06",  # a date in a name field: only readable digits, but no letters
        "Smith 2",  # a word made only of digits
        "AB12",  # half digits: an ID, not a misread name
        "J0",  # half digits, even though "Jo" is a name (documented limitation)
        "Nu11",
        "5M17H",  # 7 has no reading
        "Ann9",  # 9 could be g or q: not guessed
        "Sm\u0663th",  # Arabic-Indic digit, which NFKC leaves a digit
    ],
)
def test_name_with_unreadable_or_mostly_digits_is_rejected(raw: str) -> None:
    with pytest.raises(InvalidValue, match=r"^name contains digits$"):
        standardise_name(raw)


@given(value=st.text(alphabet=string.ascii_letters[::3] + " '-" + string.digits, max_size=12))
def test_digits_are_read_exactly_when_the_rule_allows(value: str) -> None:
    """An independent statement of the rule: rejected iff a digit has no reading or some word
    is at least half digits; otherwise the output has no digits left."""
    words_with_digits = [w for w in re.findall(r"[A-Za-z0-9'-]+", value) if re.search(r"\d", w)]
    rejected = bool(re.search(r"[3479]", value)) or any(
        2 * len(re.findall(r"\d", w)) >= len(w.replace("'", "").replace("-", ""))
        for w in words_with_digits
    )
    result = run(standardise_name, value)
    assert (result is None) == rejected, value
    if result is not None:
        assert re.fullmatch(r"[a-z]*", result)


@given(value=name_like)
def test_names_without_digits_never_reach_the_ocr_reading(value: str) -> None:
    """Canonical (digit-free) names are standardised as before, so clkhash bit-identity holds."""
    assume(not re.search(r"\d", value))
    with patch("encoder.standardise._read_ocr_digits", side_effect=AssertionError(value)):
        run(standardise_name, value)


# ---------------------------------------------------------------------------------------------
# Dates
# ---------------------------------------------------------------------------------------------


@given(value=st.text())
def test_date_output_round_trips_through_fromisoformat(value: str) -> None:
    result = run(standardise_date, value)
    if result:
        parsed = date.fromisoformat(result)
        assert parsed.isoformat() == result
        assert date(1900, 1, 1) <= parsed <= date.today()


@given(day=past_dates, layout=st.sampled_from(DATE_LAYOUTS), upper=st.booleans())
def test_every_layout_round_trips(day: date, layout: str, upper: bool) -> None:
    text = day.strftime(layout)
    text = text.upper() if upper else text
    assert standardise_date(text) == day.isoformat()


@given(day=past_dates)
def test_ordinal_day_with_month_name(day: date) -> None:
    text = f"{day.day}{ordinal.get(day.day, 'th')} {day:%B %Y}"
    assert standardise_date(text) == day.isoformat()


@given(day=st.dates(min_value=date.today() - timedelta(days=365 * 99), max_value=date.today()))
def test_two_digit_year_round_trips_within_the_last_99_years(day: date) -> None:
    assert standardise_date(day.strftime("%d/%m/%y")) == day.isoformat()
    assert standardise_date(day.strftime("%d-%b-%y")) == day.isoformat()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1985-03-12", "1985-03-12"),
        ("1985-03-12 00:00:00", "1985-03-12"),
        ("1985-03-12T00:00:00", "1985-03-12"),
        ("1985-03-12T00:00:00.000Z", "1985-03-12"),
        ("1985-3-2", "1985-03-02"),
        ("12/03/1985", "1985-03-12"),
        ("12-3-1985", "1985-03-12"),
        ("12.03.85", "1985-03-12"),
        ("12 03 1985", "1985-03-12"),
        ("12/03/1985 00:00", "1985-03-12"),
        ("12 Mar 1985", "1985-03-12"),
        ("12-MAR-1985", "1985-03-12"),
        ("12mar1985", "1985-03-12"),
        ("12 March 1985", "1985-03-12"),
        ("12th March 1985", "1985-03-12"),
        ("12th of March 1985", "1985-03-12"),
        ("1st Sept 1985", "1985-09-01"),
        ("March 12, 1985", "1985-03-12"),
        ("Mar. 12 1985", "1985-03-12"),
        ("19850312", "1985-03-12"),
        ("  12/03/1985  ", "1985-03-12"),
        ("29/02/1984", "1984-02-29"),
        ("29/02/2000", "2000-02-29"),
        ("01/01/1900", "1900-01-01"),
    ],
)
def test_date_examples(raw: str, expected: str) -> None:
    assert standardise_date(raw) == expected


def test_numeric_dates_are_day_first() -> None:
    assert standardise_date("03/04/1985") == "1985-04-03"
    with pytest.raises(InvalidValue, match=r"^month out of range$"):
        standardise_date("03/13/1985")  # US month-first is not guessed


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12/03/85", "1985-03-12"),
        ("05/06/07", "2007-06-05"),
        ("01/01/00", "2000-01-01"),
        ("12-MAR-85", "1985-03-12"),
    ],
)
def test_two_digit_year_examples(raw: str, expected: str) -> None:
    assert standardise_date(raw) == expected


def test_two_digit_year_pivot_is_the_current_year() -> None:
    this_year = date.today().year
    yy = this_year % 100
    # At or below the current two-digit year: this century.
    assert standardise_date(f"01/01/{yy:02d}") == f"{this_year}-01-01"
    # Above it: the previous century (unless this is a year ending 99, with nothing above).
    if yy < 99:
        assert standardise_date(f"01/01/{yy + 1:02d}") == f"{this_year - 99}-01-01"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("29/02/1985", "day out of range for month"),
        ("31/02/1985", "day out of range for month"),
        ("31/04/1985", "day out of range for month"),
        ("00/01/1990", "day out of range for month"),
        ("29/02/1900", "day out of range for month"),  # 1900 was not a leap year
        ("12/13/1985", "month out of range"),
        ("12/00/1985", "month out of range"),
        ("1985-13-01", "month out of range"),
        ("12031985", "month out of range"),  # 8 digits are YYYYMMDD, never DDMMYYYY
        ("31/12/1899", "date before 1900-01-01"),
        ("0000-01-01", "date before 1900-01-01"),
        ("12 Smarch 1985", "unrecognised month name"),
        ("12/03-1985", "unrecognised date format"),
        ("March 1985", "unrecognised date format"),
        ("120385", "unrecognised date format"),
        ("yesterday", "unrecognised date format"),
    ],
)
def test_impossible_or_unrecognised_dates(raw: str, reason: str) -> None:
    with pytest.raises(InvalidValue) as info:
        standardise_date(raw)
    assert str(info.value) == reason


def test_future_dates_are_rejected() -> None:
    tomorrow = date.today() + timedelta(days=1)
    with pytest.raises(InvalidValue, match=r"^date in the future$"):
        standardise_date(tomorrow.isoformat())
    assert standardise_date(date.today().isoformat()) == date.today().isoformat()


@pytest.mark.parametrize(
    ("raw", "fmt", "expected"),
    [
        ("12/03/1985", "%d/%m/%Y", "1985-03-12"),
        ("03/12/1985", "%m/%d/%Y", "1985-03-12"),  # the caller's format overrides day-first
        ("1985-03-12", "%m/%d/%Y", "1985-03-12"),  # canonical output is always accepted
        ("12/03/50", "%d/%m/%y", "1950-03-12"),  # this module's pivot, not strptime's 69
        ("12/03/05", "%d/%m/%y", "2005-03-12"),
        ("  12.03.1985 ", "%d.%m.%Y", "1985-03-12"),
    ],
)
def test_explicit_format(raw: str, fmt: str, expected: str) -> None:
    assert standardise_date(raw, fmt) == expected


@pytest.mark.parametrize(
    ("raw", "fmt", "reason"),
    [
        ("12 Mar 1985", "%d/%m/%Y", "does not match the given format"),
        ("12/13/1985", "%d/%m/%Y", "does not match the given format"),
        ("31/02/1985", "%d/%m/%Y", "day out of range for month"),
        ("31/12/1899", "%d/%m/%Y", "date before 1900-01-01"),
        ("1985-02-30", "%d/%m/%Y", "day out of range for month"),
    ],
)
def test_explicit_format_rejections(raw: str, fmt: str, reason: str) -> None:
    with pytest.raises(InvalidValue) as info:
        standardise_date(raw, fmt)
    assert str(info.value) == reason


# ---------------------------------------------------------------------------------------------
# Postcodes
# ---------------------------------------------------------------------------------------------


@given(value=st.one_of(st.text(), postcode_like))
def test_postcode_output_is_canonical(value: str) -> None:
    result = run(standardise_postcode, value)
    if result:
        assert POSTCODE_RE.fullmatch(result)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("eh11aa", "EH1 1AA"),
        ("EH1  1AA", "EH1 1AA"),
        (" eh1 1aa ", "EH1 1AA"),
        ("EH11 AA", "EH1 1AA"),  # spaces are ignored entirely, then re-inserted
        ("sw1a1aa", "SW1A 1AA"),
        ("M1 1AE", "M1 1AE"),  # A9
        ("B33 8TH", "B33 8TH"),  # A99
        ("W1A 0AX", "W1A 0AX"),  # A9A
        ("CR2 6XH", "CR2 6XH"),  # AA9
        ("DN55 1PT", "DN55 1PT"),  # AA99
        ("EC1A 1BB", "EC1A 1BB"),  # AA9A
        ("gir 0aa", "GIR 0AA"),
        ("\uff25\uff28\uff11 \uff11\uff21\uff21", "EH1 1AA"),  # full-width (NFKC)
    ],
)
def test_postcode_examples(raw: str, expected: str) -> None:
    assert standardise_postcode(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [("EH1", "EH1"), ("sw1a", "SW1A"), ("b33", "B33")])
def test_outward_code_alone_is_kept(raw: str, expected: str) -> None:
    assert standardise_postcode(raw) == expected


def test_outward_code_shares_its_prefix_with_the_full_postcode() -> None:
    assert standardise_postcode("EH1 1AA").startswith(standardise_postcode("EH1") + " ")


@pytest.mark.parametrize("raw", ["ZZ99 3VZ", "zz993cz", "ZZ99"])
def test_nhs_pseudo_postcodes_are_missing(raw: str) -> None:
    assert standardise_postcode(raw) == ""


@pytest.mark.parametrize(
    "raw",
    [
        "SWIA 1AA",  # I for 1: not corrected
        "EH1 IAA",
        "EHI 1AA",
        "EH1 1A",
        "EH1 1AAA",
        "EHH1 1AA",
        "1EH 1AA",
        "EH1-1AA",
        "GIR",
        "12345",
        "\u00df1 1AA",  # upper() would turn this into SS1 1AA
        "EH1 1AA EH1",
    ],
)
def test_invalid_postcodes_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidValue, match=r"^not a valid UK postcode$"):
        standardise_postcode(raw)


# ---------------------------------------------------------------------------------------------
# Sex
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("m", "M"),
        ("M", "M"),
        ("Male", "M"),
        ("MAN", "M"),
        ("1", "M"),
        ("1.0", "M"),
        ("f", "F"),
        (" F ", "F"),
        ("female", "F"),
        ("Woman", "F"),
        ("2", "F"),
        ("2.0", "F"),
        ("u", ""),
        ("Unknown", ""),
        ("X", ""),
        ("Not Known", ""),
        ("not  specified", ""),
        ("0", ""),
        ("9", ""),
        ("Indeterminate", ""),
        ("Prefer not to say", ""),
    ],
)
def test_sex_codes(raw: str, expected: str) -> None:
    assert standardise_sex(raw) == expected


@pytest.mark.parametrize("raw", ["3", "boy", "mf", "malee", "F/M", "10"])
def test_unknown_sex_codes_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidValue, match=r"^unrecognised sex code$"):
        standardise_sex(raw)


@given(value=st.one_of(st.text(), sex_like))
def test_sex_output_is_m_f_or_blank(value: str) -> None:
    assert run(standardise_sex, value) in {None, "M", "F", ""}


# ---------------------------------------------------------------------------------------------
# NI numbers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ab 12 34 56 c", "AB123456C"),
        ("AB123456C", "AB123456C"),
        (" AB 123456 D ", "AB123456D"),
        ("ab123456", "AB123456"),  # missing suffix accepted
        ("ZA123456A", "ZA123456A"),
        ("OA123456B", "OA123456B"),  # O is allowed first, not second
    ],
)
def test_ni_number_examples(raw: str, expected: str) -> None:
    assert standardise_ni_number(raw) == expected


@pytest.mark.parametrize("prefix", ["BG", "GB", "KN", "NK", "NT", "TN", "ZZ"])
def test_unallocated_ni_prefixes_are_rejected(prefix: str) -> None:
    with pytest.raises(InvalidValue, match=r"^NI number prefix not allocated$"):
        standardise_ni_number(f"{prefix}123456A")


@pytest.mark.parametrize(
    "raw",
    [
        *(f"{letter}A123456A" for letter in "DFIQUV"),  # excluded first letters
        *(f"A{letter}123456A" for letter in "DFIOQUV"),  # excluded second letters
        "AB123456E",  # suffix outside A-D
        "AB12345C",  # five digits
        "AB1234567C",
        "A1234567C",
        "AB-12-34-56-C",
        "TN311285F",  # old temporary number layout
    ],
)
def test_malformed_ni_numbers_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidValue, match=r"^not a valid NI number$"):
        standardise_ni_number(raw)


@given(value=st.one_of(st.text(), nino_like))
def test_ni_number_output_is_canonical(value: str) -> None:
    result = run(standardise_ni_number, value)
    if result:
        assert NINO_RE.fullmatch(result)


# ---------------------------------------------------------------------------------------------
# Addresses
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12 High St.", "12 high street"),
        ("12, HIGH STREET", "12 high street"),
        ("Flat 3, St John's Rd", "flat 3 street johns road"),  # st is always street
        ("Fl 2/1, 5 Acacia Ave", "flat 2 1 5 acacia avenue"),
        ("4 Rowan Cres", "4 rowan crescent"),
        ("Mulberry Ct", "mulberry court"),
        ("9 Kings Gdns", "9 kings gardens"),
        ("Park Terr", "park terrace"),
        ("1 Elm Dr", "1 elm drive"),
        ("Station Ln", "station lane"),
        ("Smith & Sons, Market Sq", "smith and sons market square"),
        ("Rue de l'\u00c9glise", "rue de leglise"),
        ("  lots   of\tspace  ", "lots of space"),
        ("Strand", "strand"),  # abbreviations are whole words only
        ("Not-Known", ""),
    ],
)
def test_address_examples(raw: str, expected: str) -> None:
    assert standardise_address(raw) == expected


@given(value=st.one_of(st.text(), address_like))
def test_address_output_is_lowercase_words(value: str) -> None:
    result = standardise_address(value)
    assert re.fullmatch(r"([a-z0-9]+( [a-z0-9]+)*)?", result)
