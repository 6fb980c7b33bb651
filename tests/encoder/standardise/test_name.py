"""Names: canonical forms, titles, Mc/Mac, OCR digits."""

from __future__ import annotations

import re
import string
from unittest.mock import patch

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from encoder.standardise import InvalidValue, standardise_name
from tests.encoder.standardise.cases import name_like, run


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
    """An independent statement of the rule on digits.

    A value is rejected iff a digit has no reading or some word is at least half digits;
    otherwise the output has no digits left.
    """
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
    with patch("encoder.standardise.name._read_ocr_digits", side_effect=AssertionError(value)):
        run(standardise_name, value)
