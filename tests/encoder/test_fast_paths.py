"""Fast paths against their plain references: vectorised standardisers and clkhash formatting."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from clkhash.field_formats import InvalidEntryError
from hypothesis import given, settings
from hypothesis import strategies as st

from encoder.formatting import FeatureFormatter
from encoder.schema import load_schema, parse_schema
from encoder.standardise import STANDARDISERS, InvalidValue, standardise_array
from tests.conftest import schema_doc

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
# Names with the digits OCR makes of letters, mixed with those it does not (3, 4, 7, 9), in
# both cases: the reading of 1 and 6 depends on case and position, which the kernels must copy.
OCR_NAME_ALPHABET = "aAbcClLmMnNoOsS0123456789"


@pytest.mark.parametrize("kind", ["name", "postcode", "ni_number", "address"])
@settings(max_examples=120, deadline=None)
@given(values=st.lists(st.text(alphabet=ALPHABET, max_size=14) | st.sampled_from(REALISTIC),
                       min_size=1, max_size=40))  # fmt: skip
def test_vectorised_standardisers_equal_the_scalar_ones(kind: str, values: list[str]) -> None:
    out = standardise_array(kind, pa.array(values, pa.string()))
    assert out is not None
    scalar = STANDARDISERS[kind]
    for value, fast in zip(values, out.to_pylist(), strict=True):
        if fast is not None:
            assert fast == scalar(value), (kind, value)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.text(alphabet=OCR_NAME_ALPHABET, min_size=1, max_size=8)
                       | st.sampled_from(REALISTIC), min_size=1, max_size=40))  # fmt: skip
def test_vectorised_names_with_ocr_digits_equal_the_scalar_standardiser(values: list[str]) -> None:
    out = standardise_array("name", pa.array(values, pa.string()))
    assert out is not None
    for value, fast in zip(values, out.to_pylist(), strict=True):
        if fast is not None:
            assert fast == STANDARDISERS["name"](value), value


def test_fast_paths_cover_clean_values() -> None:
    """The fast path must actually be taken for the common shapes, or it is not a fast path."""
    cases = {"name": ["Smith", "McDonald", "J0HN", "Wi11iam", "6ARY"],
             "postcode": ["eh11aa", "EH1 1AA"],
             "date": ["1985-03-12", "12/03/1985", "29.02.2024"],
             "ni_number": ["AB123456C"], "address": ["12 High St."]}  # fmt: skip
    for kind, values in cases.items():
        out = standardise_array(kind, pa.array(values, pa.string()))
        assert out is not None
        assert None not in out.to_pylist(), kind
    assert standardise_array("sex", pa.array(["M"])) is None  # few distinct values: no need


DATE_ALPHABET = "0123456789-/. "
DATES = [
    "1985-03-12", "12/03/1985", "31/02/1985", "29/02/2024", "29/02/2023", "1899-12-31",
    "2099-01-01", "12-03-1985", "12.03.1985", "00/01/1990", "12/13/1985", "1985-3-12",
    "29/02/1900", "29-02-2000", "12/03.1985",
]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.text(alphabet=DATE_ALPHABET, min_size=8, max_size=10)
                       | st.sampled_from(DATES), min_size=1, max_size=40))  # fmt: skip
def test_vectorised_dates_equal_the_scalar_standardiser(values: list[str]) -> None:
    out = standardise_array("date", pa.array(values, pa.string()))
    assert out is not None
    for value, fast in zip(values, out.to_pylist(), strict=True):
        if fast is not None:
            assert fast == STANDARDISERS["date"](value), value


def _reference(formatter: FeatureFormatter, raw: str) -> tuple[str, bool, bool]:
    """Standardise, then clkhash's own missing-value handling, validation and formatting."""
    spec = formatter.spec
    value = raw
    kind = formatter.feature.extension.standardise
    if kind is not None:
        try:
            value = STANDARDISERS[kind](raw)
        except InvalidValue:
            return "", False, True
    # pace-default's date format is ISO, which is what the date standardiser returns.
    return _reference_spec(spec, value)


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.text(alphabet=ALPHABET, max_size=14) | st.sampled_from(REALISTIC),
                       min_size=1, max_size=30, unique=True))  # fmt: skip
def test_formatter_equals_clkhash_path_for_pace_default(values: list[str]) -> None:
    schema = load_schema("pace-default")
    for feature in schema.hashed_features:
        formatter = FeatureFormatter(feature, None)
        done = formatter.format_array(pa.array(values, pa.string()))
        for u, raw in enumerate(values):
            expected = _reference(formatter, raw)
            got = (done.values[u] if u not in done.invalid else "", bool(done.present[u]),
                   u in done.invalid)  # fmt: skip
            assert got == expected, (feature.name, raw)


@pytest.mark.parametrize(
    "fmt",
    [{"type": "string", "case": "upper", "minLength": 2, "maxLength": 8},
     {"type": "string", "pattern": "[A-Z]{2}[0-9 ]*"},
     {"type": "string", "encoding": "ascii"},
     {"type": "enum", "values": ["M", "F"]},
     {"type": "date", "format": "%d/%m/%y"}],
)  # fmt: skip
@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.text(alphabet=ALPHABET, max_size=10) | st.sampled_from(REALISTIC),
                       min_size=1, max_size=20, unique=True))  # fmt: skip
def test_formatter_checks_equal_clkhash(fmt: dict[str, Any], values: list[str]) -> None:
    hashing = {"comparison": {"type": "ngram", "n": 2}, "strategy": {"bitsPerToken": 5},
               "missingValue": {"sentinel": "", "replaceWith": "x"}}  # fmt: skip
    feature_doc: dict[str, Any] = {"identifier": "f", "format": fmt, "hashing": hashing}
    if fmt["type"] == "date":
        feature_doc["standardise"] = "date"
    feature = parse_schema(schema_doc([feature_doc])).hashed_features[0]
    formatter = FeatureFormatter(feature, None)
    done = formatter.format_array(pa.array(values, pa.string()))
    for u, raw in enumerate(values):
        value = raw
        if fmt["type"] == "date":
            try:
                iso = STANDARDISERS["date"](raw)
            except InvalidValue:
                assert u in done.invalid
                continue
            value = _iso_to(iso, fmt["format"])
        expected = _reference_spec(feature.spec, value)
        got = (done.values[u] if u not in done.invalid else "", bool(done.present[u]),
               u in done.invalid)  # fmt: skip
        assert got == expected, (fmt, raw)


def _iso_to(iso: str, fmt: str) -> str:
    return dt.date.fromisoformat(iso).strftime(fmt) if iso else ""


def _reference_spec(spec: Any, value: str) -> tuple[str, bool, bool]:
    if spec.is_missing_value(value):
        return spec.format_value(value), False, False
    try:
        spec.validate(value)
    except InvalidEntryError:
        return "", False, True
    formatted = spec.format_value(value)
    return formatted, formatted != "", False
