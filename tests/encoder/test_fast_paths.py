"""The encoder's vectorised formatting against clkhash's value-by-value validation and formatting.

The standardisers' own fast paths are tested in tests/encoder/standardise/test_registry.py.
"""

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
from encoder.standardise import STANDARDISERS, InvalidValue
from tests.conftest import schema_doc
from tests.encoder.standardise.cases import ALPHABET, REALISTIC


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
