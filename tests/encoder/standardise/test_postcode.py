"""Postcodes: canonical form, outward codes, pseudo-postcodes, rejections."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from encoder.standardise import InvalidValue, standardise_postcode
from encoder.standardise.postcode import postcode_fast_path
from tests.encoder.standardise.cases import (
    POSTCODE_RE,
    fast_path_disagreements,
    one_byte_edits,
    postcode_like,
    run,
)


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


POSTCODE_SHAPES = ["A11AA", "A111AA", "A1A1AA", "AA11AA", "AA111AA", "AA1A1AA"]


def test_fast_path_checks_each_position_as_the_rule_does() -> None:
    """The kernel restates the rule's shapes byte by byte: every one-character change agrees."""
    shapes = [*POSTCODE_SHAPES, "ZZ991AA", "GIR0AA", "A 1 1AA"]
    assert fast_path_disagreements("postcode", one_byte_edits(shapes)) == []
    assert None not in postcode_fast_path(pa.array(POSTCODE_SHAPES, pa.string())).to_pylist()
