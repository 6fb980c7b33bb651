"""Address lines: canonical words and abbreviations."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from encoder.standardise import standardise_address
from encoder.standardise.address import address_fast_path
from tests.encoder.standardise.cases import address_like, fast_path_disagreements, one_byte_edits


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


def test_fast_path_reads_every_ascii_character_as_the_rule_does() -> None:
    """The kernel restates the rule's character classes: checked for every ASCII character.

    Apostrophes join, "&" is "and", other punctuation separates; each character is tried
    within, between and as words.
    """
    assert fast_path_disagreements("address", one_byte_edits(["a_b", "st_st", "_", "n_a"])) == []
    taken = [f"a{chr(c)}b" for c in range(128)]
    assert None not in address_fast_path(pa.array(taken, pa.string())).to_pylist()
