"""Dates: accepted layouts, the two-digit-year pivot, range checks, explicit formats."""

from __future__ import annotations

from datetime import date, timedelta

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from encoder.standardise import InvalidValue, standardise_date
from encoder.standardise.date import date_fast_path
from tests.encoder.standardise.cases import (
    DATE_LAYOUTS,
    fast_path_disagreements,
    one_byte_edits,
    ordinal,
    past_dates,
    run,
)


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


def test_fast_path_checks_each_position_as_the_rule_does() -> None:
    """Every one-character change of the layouts the kernel reads gives the rule's result."""
    layouts = ["12/03/1985", "1985-03-12", "29.02.2024", "2000-02-29", "31-12-1999", "1900-01-01"]
    assert fast_path_disagreements("date", one_byte_edits(layouts)) == []
    assert None not in date_fast_path(pa.array(layouts, pa.string())).to_pylist()
