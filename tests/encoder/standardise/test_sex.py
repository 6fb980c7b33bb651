"""Sex codes: accepted codes and rejections."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from encoder.standardise import InvalidValue, standardise_sex
from tests.encoder.standardise.cases import run, sex_like


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
