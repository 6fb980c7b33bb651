"""NI numbers: canonical form, unallocated prefixes, rejections."""

from __future__ import annotations

import string

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from encoder.standardise import FIELDS, InvalidValue, standardise_ni_number
from tests.encoder.standardise.cases import (
    NINO_RE,
    fast_path_disagreements,
    nino_like,
    one_byte_edits,
    run,
)


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


def test_fast_path_and_rule_agree_on_every_prefix_and_suffix() -> None:
    """The regex and the kernel's tables come from one definition; check all 26 x 26 prefixes."""
    letters = string.ascii_uppercase
    values = [f"{a}{b}123456{s}" for a in letters for b in letters for s in ["", *letters]]
    fast = FIELDS["ni_number"].fast_path
    assert fast is not None
    for value, out in zip(values, fast(pa.array(values, pa.string())).to_pylist(), strict=True):
        expected = run(standardise_ni_number, value)
        assert out == expected, value


def test_fast_path_checks_each_position_as_the_rule_does() -> None:
    edits = one_byte_edits(["AB123456C", "AB123456", "ab 12 34 56 c"])
    assert fast_path_disagreements("ni_number", edits) == []
