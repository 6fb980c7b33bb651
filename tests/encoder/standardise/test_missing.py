"""Missing values: blank values and null tokens give "" in every field."""

from __future__ import annotations

import pytest

from encoder.standardise import is_missing
from tests.encoder.standardise.cases import ALL_FUNCTIONS, NULL_TOKENS, Standardiser


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
