"""Every field at once, through the registry: the properties all standardisers share."""

from __future__ import annotations

from typing import get_args

import pyarrow as pa
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from encoder.schema import StandardiserName
from encoder.standardise import (
    FIELDS,
    STANDARDISERS,
    InvalidValue,
    standardise_address,
    standardise_array,
    standardise_date,
    standardise_name,
    standardise_ni_number,
    standardise_postcode,
    standardise_sex,
)
from tests.encoder.standardise.cases import (
    ALL_FUNCTIONS,
    EDGE_CASES,
    PLAUSIBLE,
    REASONS,
    Standardiser,
    field_values,
    reason,
    run,
)


def test_registry_names_each_standardiser() -> None:
    assert dict(STANDARDISERS) == {
        "name": standardise_name,
        "date": standardise_date,
        "postcode": standardise_postcode,
        "sex": standardise_sex,
        "ni_number": standardise_ni_number,
        "address": standardise_address,
    }


def test_registry_keys_are_the_schema_standardiser_names() -> None:
    """A linkage schema can name every registered field, and only those."""
    assert set(get_args(StandardiserName)) == set(FIELDS)


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        STANDARDISERS["name"] = standardise_sex  # type: ignore[index]
    with pytest.raises(TypeError):
        FIELDS["name"] = FIELDS["sex"]  # type: ignore[index]


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


# ---------------------------------------------------------------------------------------------
# Fast paths: parametrised over the registry, so a field with a fast path cannot skip the check
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FIELDS)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_fast_path_equals_the_scalar_rule(kind: str, data: st.DataObject) -> None:
    """Where a fast path gives a result, it is the scalar rule's; null leaves the value to it."""
    field = FIELDS[kind]
    values = data.draw(field_values(kind))
    out = standardise_array(kind, pa.array(values, pa.string()))
    if field.fast_path is None:
        assert out is None
        return
    assert out is not None
    # The fast path itself, on the ASCII values standardise_array passes on to it.
    ascii_values = [v for v in values if v.isascii()]
    direct = field.fast_path(pa.array(ascii_values, pa.string())).to_pylist()
    for value, fast in [*zip(values, out.to_pylist(), strict=True),
                        *zip(ascii_values, direct, strict=True)]:  # fmt: skip
        if fast is not None:
            assert fast == field.scalar(value), (kind, value)


# Edge cases in canonical or common shapes, which the fast paths must take themselves.
CLEAN = frozenset(
    {"Smith", "McDonald", "J0HN", "Wi11iam", "6ARY", "eh11aa", "EH1 1AA", "1985-03-12",
     "12/03/1985", "29/02/2024", "12.03.1985", "AB123456C", "AB123456", "12 High St.",
     "St John's Rd & Co"}
)  # fmt: skip


@pytest.mark.parametrize("kind", FIELDS)
def test_fast_path_takes_the_clean_values(kind: str) -> None:
    """The fast path must actually be taken for the common shapes, or it is not a fast path."""
    clean = [v for v in EDGE_CASES[kind] if v in CLEAN]
    out = standardise_array(kind, pa.array(clean or ["M"], pa.string()))
    if FIELDS[kind].fast_path is None:
        assert out is None  # few distinct values: no need
        return
    assert out is not None
    assert clean
    assert None not in out.to_pylist(), kind


def test_standardise_array_of_an_unknown_kind_or_no_values_is_none() -> None:
    assert standardise_array("nickname", pa.array(["x"], pa.string())) is None
    assert standardise_array("name", pa.array([], pa.string())) is None
