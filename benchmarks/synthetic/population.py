"""The synthetic working-age population of Scotland: people, households, names, addresses.

About 100 lines are the reference tables the draws are weighted by (postcode areas, streets,
ages, household sizes, NI prefixes); the name tables are in :mod:`~benchmarks.synthetic.names`.
A :class:`PopulationStyle` says which tables and distributions a population is drawn from;
the held-out one is in :mod:`~benchmarks.synthetic.heldout`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from benchmarks.synthetic.names import (
    FloatArray,
    NameTables,
    ObjArray,
    name_tables,
    nickname_table,
    normalised,
)
from benchmarks.synthetic.streams import STREAM_POPULATION, random_stream

__all__ = [
    "AREAS",
    "MAX_AGE",
    "MIN_AGE",
    "PACE_FIELDS",
    "POPULATION_ATTR",
    "REFERENCE_DATE",
    "STANDARD",
    "TRUTH_COLUMN",
    "BoolArray",
    "FloatArray",
    "IntArray",
    "NameTables",
    "ObjArray",
    "PopulationStyle",
    "generate_population",
    "name_tables",
    "nickname_table",
    "normalised",
]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

PACE_FIELDS: Final[tuple[str, ...]] = (
    "given_name",
    "surname",
    "date_of_birth",
    "sex",
    "postcode",
    "address_line",
    "ni_number",
)
"""The canonical person fields, in the order the PACE schema uses them."""

TRUTH_COLUMN: Final = "_true_person_id"
"""Ground-truth column of every extract: the population's ``person_id``. Drop before encoding."""

REFERENCE_DATE: Final = dt.date(2026, 1, 1)
"""Ages are counted on this date."""


MIN_AGE: Final = 16
"""Youngest age in the population (on :data:`REFERENCE_DATE`)."""
MAX_AGE: Final = 66
"""Oldest age in the population (on :data:`REFERENCE_DATE`)."""


# ---------------------------------------------------------------------------------------------
# Reference tables
# ---------------------------------------------------------------------------------------------

_DOUBLE_BARRELLED_SHARE: Final = 0.015

# Postcode areas: (area, share of households, district numbers). Shares follow population.
AREAS: Final[tuple[tuple[str, float, tuple[int, ...]], ...]] = (
    ("G", 0.27, (*range(1, 6), *range(11, 16), *range(20, 24), *range(31, 35),
                 *range(40, 47), *range(51, 54), *range(60, 70), *range(71, 79),
                 *range(81, 85))),
    ("EH", 0.18, tuple(range(1, 56))),
    ("AB", 0.09, (*range(10, 17), *range(21, 26), *range(30, 46), *range(51, 57))),
    ("KA", 0.07, tuple(range(1, 31))),
    ("KY", 0.07, tuple(range(1, 17))),
    ("DD", 0.06, tuple(range(1, 12))),
    ("FK", 0.06, tuple(range(1, 22))),
    ("ML", 0.06, tuple(range(1, 13))),
    ("PA", 0.05, (*range(1, 50), *range(60, 79))),
    ("IV", 0.04, (*range(1, 29), 30, 31, 32, 36, *range(40, 50), *range(51, 57), 63)),
    ("PH", 0.03, (*range(1, 27), *range(30, 45), 49, 50)),
    ("DG", 0.03, tuple(range(1, 15))),
    ("TD", 0.02, tuple(range(1, 16))),
    ("KW", 0.005, tuple(range(1, 18))),
    ("HS", 0.005, tuple(range(1, 10))),
    ("ZE", 0.004, (1, 2, 3)),
)  # fmt: skip
_CITY_AREAS: Final = frozenset({"G", "EH", "AB", "DD"})
_INWARD_LETTERS: Final = "ABDEFGHJLNPQRSTUWXYZ"  # letters used in inward codes
_INWARD_CODES: Final = 9 * 400  # sectors 1-9, two letters each
_HOUSEHOLDS_PER_UNIT: Final = 12.0

_STREET_WORDS: Final[tuple[str, ...]] = (
    "Rose", "Princes", "George", "Queen", "Hanover", "Castle", "Church", "Station", "Mill",
    "Victoria", "Albert", "King", "Wellington", "Argyle", "Bruce", "Wallace", "Hope",
    "Market", "Bridge", "North", "South", "West", "East", "Hill", "Glen", "Burn", "Loch",
    "Craig", "Ash", "Beech", "Birch", "Elm", "Hawthorn", "Heather", "Thistle", "Lomond",
    "Nevis", "Morven", "Iona", "Arran", "Islay", "Skye", "Tay", "Forth", "Clyde", "Dee",
    "Esk", "Tweed", "Ochil", "Pentland", "Cairn", "Balmoral", "Holyrood", "Abbey", "Kirk",
    "Manse", "School", "Old", "New", "Dundas", "Montgomery", "Douglas", "Hamilton",
    "Stewart", "Campbell", "Murray", "Morrison", "Fraser", "Graham", "Duncan", "Kelvin",
    "Carrick", "Cathcart", "Lochend", "Broomhill", "Springfield", "Meadow", "Orchard",
    "Woodside", "Riverside", "Bank", "Marine", "Harbour", "Links", "Union",
)  # fmt: skip
_STREET_SUFFIXES: Final[tuple[tuple[str, float], ...]] = (
    ("Street", 0.30), ("Road", 0.20), ("Avenue", 0.08), ("Crescent", 0.07), ("Drive", 0.07),
    ("Place", 0.05), ("Terrace", 0.05), ("Gardens", 0.04), ("Court", 0.03), ("Lane", 0.03),
    ("Way", 0.02), ("Wynd", 0.02), ("Brae", 0.02), ("View", 0.02), ("Grove", 0.02),
    ("Square", 0.01), ("Loan", 0.01), ("Close", 0.01),
)  # fmt: skip

# Relative number of people at each age from 16 to 66, by five-year band (a rough Scottish
# age profile: a dip in the early forties and a bulge in the fifties).
_AGE_BANDS: Final[tuple[tuple[int, int, float], ...]] = (
    (16, 19, 0.90), (20, 24, 1.00), (25, 29, 1.05), (30, 34, 1.10), (35, 39, 1.05),
    (40, 44, 0.93), (45, 49, 0.95), (50, 54, 1.10), (55, 59, 1.15), (60, 64, 1.05),
    (65, 66, 0.95),
)  # fmt: skip

_HOUSEHOLD_SIZES: Final[tuple[tuple[int, float], ...]] = (
    (1, 0.36), (2, 0.36), (3, 0.15), (4, 0.09), (5, 0.03), (6, 0.01),
)  # fmt: skip
_SHARE_HOUSEHOLD_SURNAME: Final = 0.8
_FEMALE_SHARE: Final = 0.51

# National Insurance number prefixes: neither letter D, F, I, Q, U or V; second letter not O;
# and not one of the reserved pairs.
_NI_FIRST: Final = "ABCEGHJKLMNOPRSTWXYZ"
_NI_SECOND: Final = "ABCEGHJKLMNPRSTWXYZ"
_NI_RESERVED: Final = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
_NI_PREFIXES: Final[tuple[str, ...]] = tuple(
    a + b for a in _NI_FIRST for b in _NI_SECOND if a + b not in _NI_RESERVED
)

# ---------------------------------------------------------------------------------------------
# Population
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PopulationStyle:
    """What a population is drawn from: name tables and distributions, and its random stream.

    Attributes:
        name: ``standard`` or ``held-out``; kept in the population frame's ``attrs``
            (:data:`POPULATION_ATTR`) so that the error models draw surnames and nicknames
            from the same tables.
        tables: The name tables (built once, cached).
        double_barrelled_share: Share of people with a hyphenated surname.
        age_bands: ``(first age, last age, relative weight)`` for every age of 16 to 66.
        area_weights: Share of households by postcode area (areas of :data:`AREAS`).
        stream: The label of its random stream (different styles: independent draws).
    """

    name: str
    tables: Callable[[], NameTables]
    double_barrelled_share: float
    age_bands: tuple[tuple[int, int, float], ...]
    area_weights: Mapping[str, float]
    stream: int


POPULATION_ATTR: Final = "population_style"
"""Key of a population frame's ``attrs`` that names its :class:`PopulationStyle`."""


def generate_population(n: int, seed: int, style: PopulationStyle | None = None) -> pd.DataFrame:
    """Draw a synthetic working-age population of Scotland.

    People live in households (1 to 6 people, most of them sharing the first member's surname)
    that share a postcode and address; postcodes are clustered in Scottish postcode areas in
    proportion to population, about a dozen households to a postcode unit. Names are drawn from
    weighted lists (Zipf-like over Faker's frequency-ordered given names; per-cent shares for
    surnames); the sex is consistent with the given name; ages 16 to 66 on
    :data:`REFERENCE_DATE` follow a rough Scottish age profile. NI numbers are unique and valid
    in format.

    Args:
        n: Number of people.
        seed: Random seed.
        style: What to draw from (default :data:`STANDARD`; the held-out population's is
            :data:`~benchmarks.synthetic.heldout.HELD_OUT`).

    Returns:
        One row per person, columns ``person_id`` (int64, 1 to ``n``), ``given_name``,
        ``surname``, ``date_of_birth`` (``YYYY-MM-DD``), ``sex`` (``M``/``F``), ``postcode``
        (``EH1 1AA`` form), ``address_line`` (``12 Rose Street``) and ``ni_number``
        (``AB123456C``).

    Raises:
        ValueError: ``n`` is negative.
    """
    if n < 0:
        raise ValueError("n must not be negative")
    style = style or STANDARD
    rng = random_stream(seed, style.stream)
    tables = style.tables()

    sizes = _household_sizes(rng, n)
    household = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    first_member = np.cumsum(sizes) - sizes
    is_head = np.zeros(n, dtype=bool)
    is_head[first_member] = True

    female = rng.random(n) < _FEMALE_SHARE
    male_given = tables.male[rng.choice(len(tables.male), size=n, p=tables.male_p)]
    female_given = tables.female[rng.choice(len(tables.female), size=n, p=tables.female_p)]
    given = np.where(female, female_given, male_given)

    own_surname = _draw_surnames(rng, n, tables, style.double_barrelled_share)
    shares = rng.random(n) < _SHARE_HOUSEHOLD_SURNAME
    surname = np.where(is_head | ~shares, own_surname, own_surname[first_member[household]])

    dob = _draw_dates_of_birth(rng, n, style.age_bands)
    hh_postcode, hh_address = _draw_addresses(rng, len(sizes), style.area_weights)
    ni = _draw_ni_numbers(rng, n)

    frame = pd.DataFrame(
        {
            "person_id": np.arange(1, n + 1, dtype=np.int64),
            "given_name": given,
            "surname": surname,
            "date_of_birth": dob,
            "sex": np.where(female, "F", "M").astype(object),
            "postcode": hh_postcode[household],
            "address_line": hh_address[household],
            "ni_number": ni,
        }
    )
    frame.attrs[POPULATION_ATTR] = style.name
    return frame


def _household_sizes(rng: np.random.Generator, n: int) -> IntArray:
    values = np.array([s for s, _ in _HOUSEHOLD_SIZES], dtype=np.int64)
    p = normalised([w for _, w in _HOUSEHOLD_SIZES])
    sizes = rng.choice(values, size=n, p=p)
    if n == 0:
        return sizes
    total = np.cumsum(sizes)
    count = int(np.searchsorted(total, n)) + 1
    sizes = sizes[:count].copy()
    sizes[-1] -= int(total[count - 1]) - n
    return sizes


def _draw_surnames(
    rng: np.random.Generator, n: int, tables: NameTables, double_share: float
) -> ObjArray:
    idx = rng.choice(len(tables.surnames), size=n, p=tables.surname_p)
    surname: ObjArray = tables.surnames[idx]
    double = np.flatnonzero(rng.random(n) < double_share)
    second = tables.surnames[rng.choice(len(tables.surnames), size=len(double), p=tables.surname_p)]
    for i, other in zip(double.tolist(), second.tolist(), strict=True):
        if other != surname[i]:
            surname[i] = f"{surname[i]}-{other}"
    return surname


def _draw_dates_of_birth(
    rng: np.random.Generator, n: int, bands: Sequence[tuple[int, int, float]]
) -> ObjArray:
    ages = np.array([a for lo, hi, _ in bands for a in range(lo, hi + 1)], dtype=np.int64)
    weights = [w for lo, hi, w in bands for _ in range(lo, hi + 1)]
    age = rng.choice(ages, size=n, p=normalised(weights))
    # Age a on the reference date (1 January Y0): born from 2 January of Y0 - a - 1 to
    # 1 January of Y0 - a inclusive.
    year = REFERENCE_DATE.year - 1 - age
    start = (year - 1970).astype("datetime64[Y]").astype("datetime64[D]") + np.timedelta64(1, "D")
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    offset = (rng.random(n) * (365 + leap)).astype(np.int64)
    dob = start + offset.astype("timedelta64[D]")
    iso: ObjArray = np.datetime_as_string(dob, unit="D").astype(object)
    return iso


def _area_tables(
    weights: Mapping[str, float],
) -> tuple[ObjArray, IntArray, IntArray, FloatArray, BoolArray]:
    outward: list[str] = []
    first: list[int] = []
    count: list[int] = []
    city: list[bool] = []
    for area, _, districts in AREAS:
        first.append(len(outward))
        count.append(len(districts))
        outward.extend(f"{area}{d}" for d in districts)
        city.extend([area in _CITY_AREAS] * len(districts))
    return (
        np.array(outward, dtype=object),
        np.array(first, dtype=np.int64),
        np.array(count, dtype=np.int64),
        normalised([weights[a] for a, _, _ in AREAS]),
        np.array(city, dtype=bool),
    )


def _inward_code(code: int) -> str:
    letters = _INWARD_LETTERS
    return f"{1 + code // 400}{letters[(code // 20) % 20]}{letters[code % 20]}"


def _draw_addresses(
    rng: np.random.Generator, h: int, weights: Mapping[str, float]
) -> tuple[ObjArray, ObjArray]:
    """Postcode and first address line of ``h`` households."""
    outward, first, count, area_p, city = _area_tables(weights)
    area_codes = np.array([a for a, _, _ in AREAS])
    area = rng.choice(len(first), size=h, p=area_p)
    district = first[area] + (rng.random(h) * count[area]).astype(np.int64)
    per_district = np.bincount(district, minlength=len(outward))
    units = np.clip(np.rint(per_district / _HOUSEHOLDS_PER_UNIT), 1, _INWARD_CODES)
    unit = (rng.random(h) * units[district]).astype(np.int64)
    # Spread a district's units over its inward codes (997 is prime to 3600: no collisions).
    code = (unit * 997 + district * 131) % _INWARD_CODES
    inward = np.array([_inward_code(c) for c in range(_INWARD_CODES)], dtype=object)
    postcode: ObjArray = outward[district] + " " + inward[code]

    # One street per postcode unit; house numbers unique within the unit.
    _, unit_of = np.unique(district * _INWARD_CODES + code, return_inverse=True)
    n_units = int(unit_of.max()) + 1 if h else 0
    words = np.array(_STREET_WORDS, dtype=object)
    suffixes = np.array([s for s, _ in _STREET_SUFFIXES], dtype=object)
    suffix_p = normalised([w for _, w in _STREET_SUFFIXES])
    street: ObjArray = (
        words[rng.integers(0, len(words), size=n_units)]
        + " "
        + suffixes[rng.choice(len(suffixes), size=n_units, p=suffix_p)]
    )
    special = rng.random(n_units)
    street[special < 0.05] = "High Street"
    street[(special >= 0.05) & (special < 0.09)] = "Main Street"
    start = rng.integers(1, 60, size=n_units)
    step = rng.integers(1, 3, size=n_units)
    number = start[unit_of] + _rank_within_group(unit_of) * step[unit_of]

    # Flats: tenement style "Flat 2/1" (floor/door) in Glasgow, "Flat 7" elsewhere.
    is_flat = rng.random(h) < np.where(city[district], 0.15, 0.04)
    tenement = np.char.startswith(area_codes[area], "G")
    floor_ = rng.integers(0, 5, size=h)
    door = rng.integers(1, 4, size=h)
    address = np.empty(h, dtype=object)
    for i, (num, st, flat, glasgow, fl, dr) in enumerate(
        zip(
            number.tolist(),
            street[unit_of].tolist(),
            is_flat.tolist(),
            tenement.tolist(),
            floor_.tolist(),
            door.tolist(),
            strict=True,
        )
    ):
        if not flat:
            address[i] = f"{num} {st}"
        elif glasgow:
            address[i] = f"Flat {fl}/{dr}, {num} {st}"
        else:
            address[i] = f"Flat {fl * 3 + dr}, {num} {st}"
    return postcode, address


def _rank_within_group(group: IntArray) -> IntArray:
    """Each element's 0-based rank among the elements of its group, in array order."""
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]])
    lengths = np.diff(np.r_[starts, len(group)])
    rank = np.empty(len(group), dtype=np.int64)
    rank[order] = np.arange(len(group)) - np.repeat(starts, lengths)
    return rank


def _draw_ni_numbers(rng: np.random.Generator, n: int) -> ObjArray:
    space = len(_NI_PREFIXES) * 1_000_000
    code = rng.integers(0, space, size=n)
    while n:
        _, first = np.unique(code, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        if not dup.any():
            break
        code[dup] = rng.integers(0, space, size=int(dup.sum()))
    suffix = rng.integers(0, 4, size=n)
    prefixes = _NI_PREFIXES
    return np.array(
        [
            f"{prefixes[c // 1_000_000]}{c % 1_000_000:06d}{'ABCD'[s]}"
            for c, s in zip(code.tolist(), suffix.tolist(), strict=True)
        ],
        dtype=object,
    )


STANDARD: Final = PopulationStyle(
    name="standard",
    tables=name_tables,
    double_barrelled_share=_DOUBLE_BARRELLED_SHARE,
    age_bands=_AGE_BANDS,
    area_weights={a: w for a, w, _ in AREAS},
    stream=STREAM_POPULATION,
)
"""The population every benchmark was tuned on: Faker ``en_GB`` and Scottish names."""
