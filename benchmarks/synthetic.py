"""Seeded synthetic UK working-age population and messy partner extracts, with ground truth.

The generator stands in for the data of a PACE-style partnership (skills agency, benefits and
tax departments, councils, colleges) that hold records about the same people with no common
identifier. It is used by the match-quality and encoding benchmarks, and to make the small
bundled sample file.

* :func:`generate_population` draws the people: realistic name frequencies (Faker's ``en_GB``
  tables plus a small Scottish / Irish / Polish / South-Asian table written here), sex
  consistent with the given name, working-age dates of birth (16 to 66 on 2026-01-01),
  households that share a postcode and address, clustered in Scottish postcode areas, and
  valid-format National Insurance numbers.
* :class:`ErrorProfile` says how often each kind of error or variation is introduced;
  :data:`CLEAN`, :data:`LIGHT`, :data:`TYPICAL` and :data:`MESSY` are presets.
* :class:`PartnerSpec` describes one partner's file: coverage, error profile, column names,
  date format, sex coding, optional columns, local-ID prefix.
* :func:`make_extract` renders one partner's file. Its last column, ``_true_person_id``
  (:data:`TRUTH_COLUMN`), is the ground truth: benchmarks read it, and it must be dropped
  before a file is encoded.
* :func:`make_scenario` builds named scenarios (:data:`SCENARIOS`): ``two-party``,
  ``five-party``, ``incremental`` (two delivered batches per partner) and ``sample``.

Everything is deterministic: the same arguments give byte-identical output.

Command line (``python -m benchmarks.synthetic --help``)::

    python -m benchmarks.synthetic --scenario five-party --people 100000 --seed 1 --out DIR

The bundled sample ``encoder/data/sample_partner.csv`` was made with::

    python -m benchmarks.synthetic --scenario sample --people 1000 --seed 20260101 \\
        --pace-columns --strip-truth --out /tmp/pacelink-sample
    cp /tmp/pacelink-sample/sample_partner.csv encoder/data/sample_partner.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import random
import re
import sys
import unicodedata
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from faker.providers.person.en_GB import Provider as _FakerPerson
from faker.providers.person.en_IE import Provider as _FakerIrishPerson
from nicknames import NickNamer

__all__ = [
    "CLEAN",
    "INCREMENTAL_NEW_SHARE",
    "INCREMENTAL_UPDATE_SHARE",
    "LIFECYCLE_DELIVERING",
    "LIFECYCLE_STATIC",
    "LIGHT",
    "MAX_AGE",
    "MESSY",
    "MIN_AGE",
    "PACE_COLUMNS",
    "PACE_FIELDS",
    "PRESETS",
    "REFERENCE_DATE",
    "SAMPLE_COMMAND",
    "SCENARIOS",
    "TRUTH_COLUMN",
    "TYPICAL",
    "UPDATE_KINDS",
    "ColumnNames",
    "ErrorProfile",
    "FieldRates",
    "Lifecycle",
    "LifecycleBatch",
    "LifecycleRates",
    "PartnerSpec",
    "Scenario",
    "SexCoding",
    "UpdateKind",
    "UploadKind",
    "generate_population",
    "main",
    "make_extract",
    "make_lifecycle",
    "make_scenario",
    "partner_catalogue",
    "to_pace_columns",
    "write_lifecycle",
]

ObjArray = npt.NDArray[np.object_]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]

SexCoding = Literal["M/F", "Male/Female", "1/2"]

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

SAMPLE_COMMAND: Final = (
    "python -m benchmarks.synthetic --scenario sample --people 1000 --seed 20260101 "
    "--pace-columns --strip-truth --out /tmp/pacelink-sample && "
    "cp /tmp/pacelink-sample/sample_partner.csv encoder/data/sample_partner.csv"
)
"""The command that made ``encoder/data/sample_partner.csv``."""

MIN_AGE: Final = 16
"""Youngest age in the population (on :data:`REFERENCE_DATE`)."""
MAX_AGE: Final = 66
"""Oldest age in the population (on :data:`REFERENCE_DATE`)."""

# ---------------------------------------------------------------------------------------------
# Reference tables
# ---------------------------------------------------------------------------------------------

# Given names that Faker's en_GB lists lack but that are common in Scotland, with weights on
# the scale of the Zipf weights 1 / (rank + 5) given to Faker's (frequency-ordered) lists.
_EXTRA_MALE: Final[tuple[tuple[str, float], ...]] = (
    ("Euan", 0.012),
    ("Fraser", 0.010),
    ("Calum", 0.008),
    ("Finlay", 0.008),
    ("Alasdair", 0.005),
    ("Angus", 0.005),
    ("Hamish", 0.004),
    ("Ruaridh", 0.003),
    ("Murdo", 0.002),
    ("Seán", 0.004),
    ("Ciarán", 0.003),
    ("Eoin", 0.003),
    ("Rónán", 0.002),
    ("José", 0.002),
    ("André", 0.002),
    ("Łukasz", 0.003),
    ("Paweł", 0.003),
    ("Piotr", 0.003),
    ("Tomasz", 0.003),
    ("Imran", 0.003),
    ("Bilal", 0.002),
)
_EXTRA_FEMALE: Final[tuple[tuple[str, float], ...]] = (
    ("Eilidh", 0.010),
    ("Mhairi", 0.008),
    ("Isla", 0.008),
    ("Ailsa", 0.006),
    ("Catriona", 0.006),
    ("Morag", 0.004),
    ("Kirsteen", 0.003),
    ("Siobhán", 0.004),
    ("Niamh", 0.004),
    ("Sinéad", 0.003),
    ("Róisín", 0.003),
    ("Aoife", 0.003),
    ("Zoë", 0.003),
    ("Chloë", 0.002),
    ("Renée", 0.002),
    ("Agnieszka", 0.003),
    ("Katarzyna", 0.003),
    ("Małgorzata", 0.002),
    ("Aisha", 0.003),
    ("Fatima", 0.002),
)

# Common Scottish surnames with their approximate share of the population in per cent; they
# override Faker's (England and Wales) weights, which are halved for the rest.
_SCOTTISH_SURNAMES: Final[tuple[tuple[str, float], ...]] = (
    ("Smith", 1.27), ("Brown", 0.94), ("Wilson", 0.89), ("Thomson", 0.78),
    ("Robertson", 0.78), ("Campbell", 0.77), ("Stewart", 0.74), ("Anderson", 0.69),
    ("MacDonald", 0.56), ("Scott", 0.55), ("Reid", 0.53), ("Murray", 0.52), ("Taylor", 0.51),
    ("Clark", 0.48), ("Mitchell", 0.42), ("Ross", 0.41), ("Walker", 0.41), ("Paterson", 0.40),
    ("Young", 0.39), ("Watson", 0.39), ("Morrison", 0.38), ("Miller", 0.37), ("Fraser", 0.37),
    ("Davidson", 0.36), ("Gray", 0.35), ("McDonald", 0.35), ("Henderson", 0.35),
    ("Johnston", 0.34), ("Hamilton", 0.33), ("Graham", 0.33), ("Kerr", 0.32),
    ("Simpson", 0.32), ("Martin", 0.31), ("Ferguson", 0.31), ("Cameron", 0.30),
    ("Duncan", 0.30), ("Hunter", 0.29), ("Kelly", 0.29), ("Bell", 0.29), ("Grant", 0.28),
    ("Mackenzie", 0.28), ("Mackay", 0.28), ("Allan", 0.27), ("Black", 0.27),
    ("MacLeod", 0.26), ("McLean", 0.26), ("Russell", 0.25), ("Gibson", 0.25),
    ("Wallace", 0.25), ("Gordon", 0.24), ("Marshall", 0.24), ("Stevenson", 0.24),
    ("Wood", 0.23), ("Sutherland", 0.23), ("Craig", 0.22), ("McKenzie", 0.22),
    ("Kennedy", 0.22), ("Burns", 0.21), ("Muir", 0.20), ("Murphy", 0.20),
    ("Johnstone", 0.19), ("Watt", 0.19), ("McMillan", 0.19), ("McIntosh", 0.18),
    ("Milne", 0.18), ("Munro", 0.18), ("Ritchie", 0.18), ("Dickson", 0.18), ("Bruce", 0.17),
    ("Crawford", 0.17), ("Docherty", 0.17), ("Millar", 0.17), ("Cunningham", 0.16),
    ("Sinclair", 0.16), ("Williamson", 0.16), ("McGregor", 0.16), ("McKay", 0.16),
    ("Boyle", 0.15), ("Fleming", 0.15), ("Christie", 0.15), ("Douglas", 0.15),
    ("Donaldson", 0.15), ("MacLean", 0.14), ("Forbes", 0.14), ("McIntyre", 0.14),
    ("Findlay", 0.14), ("Jamieson", 0.14), ("Aitken", 0.14), ("Reilly", 0.13),
    ("Lindsay", 0.13), ("McCallum", 0.13), ("McLaughlin", 0.13), ("Quinn", 0.12),
    ("Gallagher", 0.12), ("O'Donnell", 0.08), ("O'Neill", 0.08), ("Khan", 0.10),
    ("Ahmed", 0.08), ("Ali", 0.07), ("Hussain", 0.07), ("Singh", 0.05), ("Iqbal", 0.03),
    ("Nowak", 0.05), ("Wójcik", 0.03), ("Kowalczyk", 0.02), ("Woźniak", 0.02),
    ("Mazur", 0.02), ("Krawczyk", 0.02),
)  # fmt: skip
_IRISH_TAIL_WEIGHT: Final = 0.006  # per cent, for each of Faker en_IE's ~2,300 surnames
_DOUBLE_BARRELLED_SHARE: Final = 0.015

# Postcode areas: (area, share of households, district numbers). Shares follow population.
_AREAS: Final[tuple[tuple[str, float, tuple[int, ...]], ...]] = (
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
_ABBREVIATIONS: Final[Mapping[str, str]] = {
    "Street": "St", "Road": "Rd", "Avenue": "Ave", "Crescent": "Cres", "Drive": "Dr",
    "Place": "Pl", "Terrace": "Terr", "Gardens": "Gdns", "Court": "Ct", "Lane": "Ln",
    "Square": "Sq", "Grove": "Gr", "Close": "Cl",
}  # fmt: skip

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

# Diminutives common in the UK that do not share the formal name's first letters; the
# nicknames package's other relations (e.g. Robert -> "dobbin") are too rare to use.
_COMMON_NICKNAMES: Final = frozenset(
    {
        "bill", "billy", "bob", "bobby", "jim", "jimmy", "jack", "tony", "sandy", "drew",
        "ted", "teddy", "ned", "hal", "harry", "betty", "bess", "liz", "lizzie", "libby",
        "beth", "peggy", "meg", "trish", "tricia", "tina", "kit", "mandy", "sally", "molly",
        "dick", "cathy", "kathy", "kate", "katy", "chrissy", "sue", "jo", "tom",
        "tommy", "mike", "mick", "eddie", "becky", "becca", "maggie",
    }
)  # fmt: skip

# QWERTY layout, for adjacent-key typos.
_KEY_ROWS: Final = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_DIGIT_ROW: Final = "1234567890"

# OCR confusions: (what is printed, what is read).
_OCR_CONFUSIONS: Final[tuple[tuple[str, str], ...]] = (
    ("rn", "m"), ("m", "rn"), ("cl", "d"), ("d", "cl"), ("vv", "w"), ("w", "vv"),
    ("li", "h"), ("h", "li"), ("0", "O"), ("O", "0"), ("o", "0"), ("1", "l"), ("l", "1"),
    ("1", "I"), ("I", "1"), ("I", "l"), ("l", "I"), ("5", "S"), ("S", "5"), ("s", "5"),
    ("8", "B"), ("B", "8"), ("2", "Z"), ("Z", "2"), ("6", "G"), ("G", "6"), ("e", "c"),
    ("c", "e"),
)  # fmt: skip
_ASCII_FOLD: Final[Mapping[int, str]] = str.maketrans(
    {"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss", "đ": "d", "Đ": "D"}
)

# Fixed stream labels, so that each random stream is independent of the others.
_STREAM_POPULATION: Final = 1
_STREAM_EXTRACT: Final = 2
_STREAM_INCREMENTAL: Final = 3
_STREAM_ARRIVALS: Final = 4
_STREAM_LIFECYCLE: Final = 5

INCREMENTAL_NEW_SHARE: Final = 0.25
"""Incremental scenario: share of the population that first appears in batch 2."""
INCREMENTAL_UPDATE_SHARE: Final = 0.10
"""Incremental scenario: share of each partner's batch-1 records re-delivered in batch 2."""


# ---------------------------------------------------------------------------------------------
# Public configuration types
# ---------------------------------------------------------------------------------------------


def _check_rates(rates: Any) -> None:
    """Refuse a rates dataclass with a field that is not a probability."""
    for f in dataclasses.fields(rates):
        value = getattr(rates, f.name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{f.name}: rate {value} is not between 0 and 1")


@dataclass(frozen=True)
class FieldRates:
    """A probability for each person field (0 where the error does not apply to a field).

    Attributes:
        given_name: Probability for the given name.
        surname: Probability for the surname.
        date_of_birth: Probability for the date of birth.
        sex: Probability for the sex.
        postcode: Probability for the postcode.
        address_line: Probability for the first address line.
        ni_number: Probability for the National Insurance number.
    """

    given_name: float = 0.0
    surname: float = 0.0
    date_of_birth: float = 0.0
    sex: float = 0.0
    postcode: float = 0.0
    address_line: float = 0.0
    ni_number: float = 0.0

    def __post_init__(self) -> None:
        """Check that every rate is a probability."""
        _check_rates(self)

    def get(self, field: str) -> float:
        """The rate of one field.

        Args:
            field: One of :data:`PACE_FIELDS`.

        Returns:
            The probability for that field.
        """
        rate: float = getattr(self, field)
        return rate

    @classmethod
    def text(cls, rate: float) -> FieldRates:
        """The same rate for the free-text fields (names, postcode, address, NI number).

        Args:
            rate: The probability.

        Returns:
            Rates with ``rate`` for the text fields and 0 for date of birth and sex.
        """
        return cls(rate, rate, 0.0, 0.0, rate, rate, rate)


@dataclass(frozen=True)
class ErrorProfile:
    """How often each kind of error or variation appears in a partner's records.

    Every probability is per record (and, for :class:`FieldRates`, per field). An error that
    cannot apply to a value (a day-month swap of the 25th, an OCR confusion in a name with no
    confusable letters, accents in a name without any) leaves it unchanged, so the realised rate
    of those is lower than configured.

    Attributes:
        typo: Keyboard typo: one character replaced by a key next to it on a QWERTY keyboard.
            Applies to names, postcode, address line and NI number; for the date of birth it is
            a single-digit typo (always giving a valid date).
        ocr: OCR confusion (0/O, 1/l/I, 5/S, rn/m, cl/d, ...) in the text fields.
        nickname: The given name recorded as a nickname or short form (William -> Bill,
            Robert -> Rob) or, for a short form, as the full name (Sam -> Samuel).
        surname_change: A different surname (e.g. before or after marriage) for a woman; men's
            records change at a tenth of this rate. A fifth of changes are double-barrelled.
        name_swap: Given name and surname swapped between the fields.
        dob_day_month_swap: Day and month of the date of birth swapped (where the day <= 12).
        move: The record holds a different postcode and address (the person moved).
        missing: The value is missing (empty).
        case: Upper, lower or lost inner capitals (``MCDONALD``, ``mcdonald``, ``Mcdonald``);
            postcode and NI number in lower case.
        accents: Accents dropped from names (Seán -> Sean, Łukasz -> Lukasz), per name field.
        format: Punctuation and format: ``O'Neill`` -> ``ONeill``/``O Neill``,
            ``Smith-Jones`` -> ``Smith Jones``, ``Mc Donald`` (other names: a quarter of the
            time, a trailing space); postcode without its space or with two; ``Rose St``,
            ``12, Rose Street``; ``AB 12 34 56 C`` or no NI suffix letter.
        sex_miscoded: The sex recorded as the other one.
        duplicate: Share of the partner's people who appear twice (independent errors, a
            different local ID).
    """

    typo: FieldRates = FieldRates()
    ocr: FieldRates = FieldRates()
    nickname: float = 0.0
    surname_change: float = 0.0
    name_swap: float = 0.0
    dob_day_month_swap: float = 0.0
    move: float = 0.0
    missing: FieldRates = FieldRates()
    case: FieldRates = FieldRates()
    accents: float = 0.0
    format: FieldRates = FieldRates()
    sex_miscoded: float = 0.0
    duplicate: float = 0.0

    def __post_init__(self) -> None:
        """Check that every scalar rate is a probability."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float | int) and not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name}: rate {value} is not between 0 and 1")


CLEAN: Final = ErrorProfile()
"""No errors at all: every record is the population's record, in the partner's formats."""

LIGHT: Final = ErrorProfile(
    typo=FieldRates(0.005, 0.005, 0.002, 0.0, 0.002, 0.005, 0.001),
    nickname=0.01,
    surname_change=0.03,
    dob_day_month_swap=0.001,
    move=0.03,
    missing=FieldRates(0.0, 0.0, 0.001, 0.002, 0.005, 0.01, 0.01),
    case=FieldRates(0.02, 0.02, 0.0, 0.0, 0.02, 0.02, 0.0),
    accents=0.5,
    format=FieldRates(0.02, 0.02, 0.0, 0.0, 0.05, 0.05, 0.02),
    sex_miscoded=0.001,
    duplicate=0.002,
)
"""A well-kept register with verified identities (a tax department)."""

TYPICAL: Final = ErrorProfile(
    typo=FieldRates(0.02, 0.02, 0.01, 0.0, 0.01, 0.02, 0.005),
    ocr=FieldRates(0.005, 0.005, 0.0, 0.0, 0.002, 0.005, 0.002),
    nickname=0.05,
    surname_change=0.05,
    name_swap=0.005,
    dob_day_month_swap=0.01,
    move=0.06,
    missing=FieldRates(0.002, 0.002, 0.005, 0.01, 0.02, 0.03, 0.15),
    case=FieldRates(0.10, 0.10, 0.0, 0.0, 0.10, 0.10, 0.05),
    accents=0.4,
    format=FieldRates(0.08, 0.10, 0.0, 0.0, 0.15, 0.20, 0.10),
    sex_miscoded=0.003,
    duplicate=0.015,
)
"""A case-management system keyed in by advisers."""

MESSY: Final = ErrorProfile(
    typo=FieldRates(0.06, 0.06, 0.03, 0.0, 0.03, 0.06, 0.02),
    ocr=FieldRates(0.03, 0.03, 0.0, 0.0, 0.02, 0.03, 0.02),
    nickname=0.12,
    surname_change=0.10,
    name_swap=0.02,
    dob_day_month_swap=0.03,
    move=0.15,
    missing=FieldRates(0.01, 0.01, 0.03, 0.05, 0.06, 0.08, 0.40),
    case=FieldRates(0.30, 0.30, 0.0, 0.0, 0.30, 0.30, 0.20),
    accents=0.7,
    format=FieldRates(0.20, 0.25, 0.0, 0.0, 0.40, 0.40, 0.30),
    sex_miscoded=0.01,
    duplicate=0.05,
)
"""Paper forms scanned and keyed, old records never updated (a council service)."""

PRESETS: Final[Mapping[str, ErrorProfile]] = {
    "clean": CLEAN,
    "light": LIGHT,
    "typical": TYPICAL,
    "messy": MESSY,
}
"""The preset error profiles by name."""


@dataclass(frozen=True)
class ColumnNames:
    """A partner's header for each column (defaults: the PACE names).

    Attributes:
        local_id: The partner's own record identifier.
        given_name: Given name.
        surname: Surname.
        date_of_birth: Date of birth.
        sex: Sex.
        postcode: Postcode.
        address_line: First line of the address.
        ni_number: National Insurance number.
        consent: Consent to share (``Y``/``N``), where the partner records it.
    """

    local_id: str = "local_id"
    given_name: str = "given_name"
    surname: str = "surname"
    date_of_birth: str = "date_of_birth"
    sex: str = "sex"
    postcode: str = "postcode"
    address_line: str = "address_line"
    ni_number: str = "ni_number"
    consent: str = "consent"

    def header(self, field: str) -> str:
        """The partner's header of a canonical column.

        Args:
            field: ``local_id``, one of :data:`PACE_FIELDS`, or ``consent``.

        Returns:
            The header the partner uses.
        """
        name: str = getattr(self, field)
        return name


PACE_COLUMNS: Final = ColumnNames()
"""The canonical column names."""


@dataclass(frozen=True)
class PartnerSpec:
    """One partner's file: who is in it, how messy it is, and how it is laid out.

    Attributes:
        name: Partner name (a file-name-safe identifier, e.g. ``skills_agency``).
        coverage: Fraction of the population the partner holds records about.
        profile: The error profile of its records.
        columns: Its column headers.
        date_format: ``strftime`` format of its dates of birth.
        sex_coding: ``M/F``, ``Male/Female`` or ``1/2`` (1 = male, 2 = female).
        has_address_line: Whether its file has the first address line.
        has_ni_number: Whether its file has the National Insurance number.
        id_prefix: Prefix of its local IDs (``SDS`` gives ``SDS-000123``).
        consent_refusal_rate: Share of ``N`` in a consent column; ``None``: no such column.
        uppercase: Whether its system stores names, postcode and address in capitals.
    """

    name: str
    coverage: float
    profile: ErrorProfile = TYPICAL
    columns: ColumnNames = PACE_COLUMNS
    date_format: str = "%Y-%m-%d"
    sex_coding: SexCoding = "M/F"
    has_address_line: bool = True
    has_ni_number: bool = False
    id_prefix: str = "ID"
    consent_refusal_rate: float | None = None
    uppercase: bool = False

    def __post_init__(self) -> None:
        """Check the coverage and the name."""
        if not 0.0 <= self.coverage <= 1.0:
            raise ValueError(f"{self.name}: coverage {self.coverage} is not between 0 and 1")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"partner name {self.name!r} is not file-name safe")

    def present_fields(self) -> tuple[str, ...]:
        """The person fields that the partner's file has, in canonical order.

        Returns:
            A subset of :data:`PACE_FIELDS`.
        """
        return tuple(
            f
            for f in PACE_FIELDS
            if (f != "address_line" or self.has_address_line)
            and (f != "ni_number" or self.has_ni_number)
        )


def _spec_named(partners: Sequence[PartnerSpec], name: str) -> PartnerSpec:
    """The partner of that name among a scenario's."""
    for spec in partners:
        if spec.name == name:
            return spec
    raise KeyError(name)


@dataclass(frozen=True, eq=False)
class Scenario:
    """A population and the files its partners deliver.

    Attributes:
        name: Scenario name.
        population: The true population (see :func:`generate_population`).
        partners: The partners' specifications.
        batches: For each partner, its deliveries in order; one for a single-delivery scenario.
    """

    name: str
    population: pd.DataFrame
    partners: tuple[PartnerSpec, ...]
    batches: dict[str, list[pd.DataFrame]]

    @property
    def extracts(self) -> dict[str, pd.DataFrame]:
        """Each partner's records: its single extract, or all its batches stacked in order.

        In a stacked incremental extract an updated record appears once per delivery.
        """
        return {
            name: frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
            for name, frames in self.batches.items()
        }

    @property
    def incremental(self) -> bool:
        """Whether the partners deliver more than one batch."""
        return any(len(frames) > 1 for frames in self.batches.values())

    def spec(self, name: str) -> PartnerSpec:
        """A partner's specification by name.

        Args:
            name: The partner name.

        Returns:
            Its specification.

        Raises:
            KeyError: No such partner.
        """
        return _spec_named(self.partners, name)

    def truth(self) -> pd.DataFrame:
        """The ground truth of every delivered record.

        Returns:
            Columns ``partner``, ``batch`` (from 1), ``local_id`` and ``person_id``.
        """
        parts = []
        for spec in self.partners:
            for number, frame in enumerate(self.batches[spec.name], start=1):
                parts.append(
                    pd.DataFrame(
                        {
                            "partner": spec.name,
                            "batch": number,
                            "local_id": frame[spec.columns.local_id].to_numpy(),
                            "person_id": frame[TRUTH_COLUMN].to_numpy(),
                        }
                    )
                )
        if not parts:
            return pd.DataFrame(columns=["partner", "batch", "local_id", "person_id"])
        return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Partner catalogue and scenarios
# ---------------------------------------------------------------------------------------------


def partner_catalogue() -> dict[str, PartnerSpec]:
    """The partners of a PACE-style partnership, with realistic coverage and file layouts.

    Returns:
        Specifications by name: ``skills_agency``, ``benefits_dept``, ``tax_dept``,
        ``council``, ``college`` and ``sample_partner`` (the bundled sample's layout).
    """
    skills = PartnerSpec(
        name="skills_agency",
        coverage=0.55,
        profile=TYPICAL,
        columns=ColumnNames(
            local_id="Client ID",
            given_name="Forename",
            surname="Surname",
            date_of_birth="DOB",
            sex="Gender",
            postcode="Postcode",
            address_line="Address Line 1",
            ni_number="NINO",
            consent="Consent to Share",
        ),
        date_format="%d/%m/%Y",
        sex_coding="Male/Female",
        has_address_line=True,
        has_ni_number=True,
        id_prefix="SDS",
        consent_refusal_rate=0.03,
    )
    benefits = PartnerSpec(
        name="benefits_dept",
        coverage=0.45,
        profile=dataclasses.replace(
            TYPICAL, missing=dataclasses.replace(TYPICAL.missing, ni_number=0.01)
        ),
        columns=ColumnNames(
            local_id="claimant_ref",
            given_name="first_name",
            surname="last_name",
            date_of_birth="birth_date",
            sex="sex_code",
            postcode="post_code",
            address_line="address_1",
            ni_number="nino",
        ),
        date_format="%Y-%m-%d",
        sex_coding="1/2",
        has_address_line=True,
        has_ni_number=True,
        id_prefix="DWP",
    )
    tax = PartnerSpec(
        name="tax_dept",
        coverage=0.90,
        profile=LIGHT,
        columns=ColumnNames(
            local_id="TAXPAYER_REF",
            given_name="FORENAME_1",
            surname="SURNAME",
            date_of_birth="DATE_OF_BIRTH",
            sex="GENDER",
            postcode="POSTCODE",
            ni_number="NINO",
        ),
        date_format="%d/%m/%Y",
        sex_coding="M/F",
        has_address_line=False,
        has_ni_number=True,
        id_prefix="HMRC",
        uppercase=True,
    )
    council = PartnerSpec(
        name="council",
        coverage=0.30,
        profile=MESSY,
        columns=ColumnNames(
            local_id="Ref",
            given_name="First Name",
            surname="Last Name",
            date_of_birth="Date of Birth",
            sex="Sex",
            postcode="Post Code",
            address_line="Address",
        ),
        date_format="%d %b %Y",
        sex_coding="M/F",
        has_address_line=True,
        has_ni_number=False,
        id_prefix="CNL",
    )
    college = PartnerSpec(
        name="college",
        coverage=0.12,
        profile=TYPICAL,
        columns=ColumnNames(
            local_id="student_id",
            given_name="given",
            surname="family",
            date_of_birth="dob",
            sex="gender",
            postcode="postcode",
            address_line="address1",
        ),
        date_format="%d-%m-%y",
        sex_coding="Male/Female",
        has_address_line=True,
        has_ni_number=False,
        id_prefix="COL",
    )
    sample = PartnerSpec(
        name="sample_partner",
        coverage=1.0,
        profile=TYPICAL,
        columns=PACE_COLUMNS,
        date_format="%d/%m/%Y",
        sex_coding="M/F",
        has_address_line=True,
        has_ni_number=True,
        id_prefix="SDS",
        consent_refusal_rate=0.03,
    )
    return {s.name: s for s in (skills, benefits, tax, council, college, sample)}


def _scenario_partners(name: str) -> tuple[PartnerSpec, ...]:
    cat = partner_catalogue()
    if name == "two-party":
        return (
            dataclasses.replace(cat["skills_agency"], coverage=0.7),
            dataclasses.replace(cat["benefits_dept"], coverage=0.7),
        )
    if name == "five-party":
        return tuple(
            cat[p] for p in ("skills_agency", "benefits_dept", "tax_dept", "council", "college")
        )
    if name == "incremental":
        return tuple(cat[p] for p in ("skills_agency", "benefits_dept", "council"))
    if name == "sample":
        return (cat["sample_partner"],)
    raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")


SCENARIOS: Final[Mapping[str, str]] = {
    "two-party": "skills agency and benefits department, 70% coverage each, typical errors",
    "five-party": "skills agency, benefits and tax departments, council, college",
    "incremental": (
        "skills agency, benefits department, council, each delivering two batches: batch 2 "
        f"has new people ({INCREMENTAL_NEW_SHARE:.0%} of the population arrive late) and "
        f"updated records of {INCREMENTAL_UPDATE_SHARE:.0%} of batch 1 (same local ID)"
    ),
    "sample": "one partner holding everyone, PACE columns, consent column (the bundled sample)",
}
"""Scenario names and what each holds."""


def make_scenario(name: str, n_people: int, seed: int) -> Scenario:
    """Build a named scenario: a population and its partners' extracts.

    Args:
        name: One of :data:`SCENARIOS`.
        n_people: Population size.
        seed: Random seed; the same arguments give identical scenarios.

    Returns:
        The scenario. Every extract carries :data:`TRUTH_COLUMN`.

    Raises:
        ValueError: Unknown scenario name.
    """
    partners = _scenario_partners(name)
    population = generate_population(n_people, seed)
    if name == "incremental":
        late = _late_arrivals(len(population), seed)
        batches = {s.name: _incremental_batches(population, s, seed, late) for s in partners}
    else:
        batches = {s.name: [make_extract(population, s, seed)] for s in partners}
    return Scenario(name=name, population=population, partners=partners, batches=batches)


# ---------------------------------------------------------------------------------------------
# Population
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NameTables:
    male: ObjArray
    male_p: FloatArray
    female: ObjArray
    female_p: FloatArray
    surnames: ObjArray
    surname_p: FloatArray
    surname_cum: tuple[float, ...]
    # lower-case given name -> (replacement names, cumulative weights)
    nicknames: Mapping[str, tuple[tuple[str, ...], tuple[float, ...]]]


def _normalised(weights: Sequence[float]) -> FloatArray:
    w = np.asarray(weights, dtype=np.float64)
    p: FloatArray = w / w.sum()
    return p


@functools.cache
def _tables() -> _NameTables:
    male_names = [*_FakerPerson.first_names_male, *(n for n, _ in _EXTRA_MALE)]
    male_w = [1.0 / (r + 5) for r in range(1, len(_FakerPerson.first_names_male) + 1)]
    male_w += [w for _, w in _EXTRA_MALE]
    female_names = [*_FakerPerson.first_names_female, *(n for n, _ in _EXTRA_FEMALE)]
    female_w = [1.0 / (r + 5) for r in range(1, len(_FakerPerson.first_names_female) + 1)]
    female_w += [w for _, w in _EXTRA_FEMALE]

    # A long tail of Irish surnames (common in Scotland), then England and Wales, then Scotland.
    surname_w: dict[str, float] = {
        str(k): _IRISH_TAIL_WEIGHT for k in _FakerIrishPerson.last_names if " " not in k
    }
    surname_w.update({str(k): 0.5 * float(v) for k, v in _FakerPerson.last_names.items()})
    surname_w.update(_SCOTTISH_SURNAMES)
    surnames = list(surname_w)
    surname_p = _normalised(list(surname_w.values()))

    return _NameTables(
        male=np.array(male_names, dtype=object),
        male_p=_normalised(male_w),
        female=np.array(female_names, dtype=object),
        female_p=_normalised(female_w),
        surnames=np.array(surnames, dtype=object),
        surname_p=surname_p,
        surname_cum=tuple(np.cumsum(surname_p).tolist()),
        nicknames=_nickname_table(
            dict(zip(male_names, male_w, strict=True)),
            dict(zip(female_names, female_w, strict=True)),
        ),
    )


def _nickname_table(
    male: Mapping[str, float], female: Mapping[str, float]
) -> dict[str, tuple[tuple[str, ...], tuple[float, ...]]]:
    """Replacement given names for each name: its usual nicknames and, for a short form, full names.

    Nicknames come from the ``nicknames`` package. Common UK diminutives (Bill, Bob, Sandy) weigh
    most, then those sharing the name's first three letters (Will, Rob, Dave), then other
    variants sharing two (Clare for Claire, Jock); the package's rarer relations (Robert ->
    "dobbin") and names of the other sex are left out. A short form of up to four letters (Sam,
    Ben) may also become a longer full name of the same sex, with the same first two letters,
    from the population's lists (Samuel, Benjamin), those together weighing 1.5.
    """
    namer = NickNamer()
    table: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {}
    for names, other in ((male, female), (female, male)):
        by_lower = {n.lower(): n for n in names}
        other_sex = {n.lower() for n in other}
        for name in names:
            low = name.lower()
            cands: list[str] = []
            weights: list[float] = []
            for nick in sorted(namer.nicknames_of(low)):
                if nick == low or not nick.isalpha() or nick in other_sex:
                    continue
                if nick in _COMMON_NICKNAMES:
                    weight = 3.0
                elif nick[:3] == low[:3] and len(nick) < len(low):
                    weight = 1.0
                elif nick[:2] == low[:2]:
                    weight = 0.3
                else:
                    continue
                cands.append(nick.capitalize())
                weights.append(weight)
            fulls = sorted(
                by_lower[c]
                for c in namer.canonicals_of(low)
                if c in by_lower and c[:2] == low[:2] and len(low) <= 4 < len(c)
            )
            total = sum(names[f] for f in fulls)
            for full in fulls:
                cands.append(full)
                weights.append(1.5 * names[full] / total)
            if cands:
                # A name can be both a nickname and a full name (Marie for Mary): merge them.
                merged: dict[str, float] = {}
                for cand, weight in zip(cands, weights, strict=True):
                    merged[cand] = merged.get(cand, 0.0) + weight
                table[low] = (tuple(merged), tuple(np.cumsum(list(merged.values())).tolist()))
    return table


def generate_population(n: int, seed: int) -> pd.DataFrame:
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
    rng = _generator(seed, _STREAM_POPULATION)
    tables = _tables()

    sizes = _household_sizes(rng, n)
    household = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    first_member = np.cumsum(sizes) - sizes
    is_head = np.zeros(n, dtype=bool)
    is_head[first_member] = True

    female = rng.random(n) < _FEMALE_SHARE
    male_given = tables.male[rng.choice(len(tables.male), size=n, p=tables.male_p)]
    female_given = tables.female[rng.choice(len(tables.female), size=n, p=tables.female_p)]
    given = np.where(female, female_given, male_given)

    own_surname = _draw_surnames(rng, n, tables)
    shares = rng.random(n) < _SHARE_HOUSEHOLD_SURNAME
    surname = np.where(is_head | ~shares, own_surname, own_surname[first_member[household]])

    dob = _draw_dates_of_birth(rng, n)
    hh_postcode, hh_address = _draw_addresses(rng, len(sizes))
    ni = _draw_ni_numbers(rng, n)

    return pd.DataFrame(
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


def _household_sizes(rng: np.random.Generator, n: int) -> IntArray:
    values = np.array([s for s, _ in _HOUSEHOLD_SIZES], dtype=np.int64)
    p = _normalised([w for _, w in _HOUSEHOLD_SIZES])
    sizes = rng.choice(values, size=n, p=p)
    if n == 0:
        return sizes
    total = np.cumsum(sizes)
    count = int(np.searchsorted(total, n)) + 1
    sizes = sizes[:count].copy()
    sizes[-1] -= int(total[count - 1]) - n
    return sizes


def _draw_surnames(rng: np.random.Generator, n: int, tables: _NameTables) -> ObjArray:
    idx = rng.choice(len(tables.surnames), size=n, p=tables.surname_p)
    surname: ObjArray = tables.surnames[idx]
    double = np.flatnonzero(rng.random(n) < _DOUBLE_BARRELLED_SHARE)
    second = tables.surnames[rng.choice(len(tables.surnames), size=len(double), p=tables.surname_p)]
    for i, other in zip(double.tolist(), second.tolist(), strict=True):
        if other != surname[i]:
            surname[i] = f"{surname[i]}-{other}"
    return surname


def _draw_dates_of_birth(rng: np.random.Generator, n: int) -> ObjArray:
    ages = np.array([a for lo, hi, _ in _AGE_BANDS for a in range(lo, hi + 1)], dtype=np.int64)
    weights = [w for lo, hi, w in _AGE_BANDS for _ in range(lo, hi + 1)]
    age = rng.choice(ages, size=n, p=_normalised(weights))
    # Age a on the reference date (1 January Y0): born from 2 January of Y0 - a - 1 to
    # 1 January of Y0 - a inclusive.
    year = REFERENCE_DATE.year - 1 - age
    start = (year - 1970).astype("datetime64[Y]").astype("datetime64[D]") + np.timedelta64(1, "D")
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    offset = (rng.random(n) * (365 + leap)).astype(np.int64)
    dob = start + offset.astype("timedelta64[D]")
    iso: ObjArray = np.datetime_as_string(dob, unit="D").astype(object)
    return iso


def _area_tables() -> tuple[ObjArray, IntArray, IntArray, FloatArray, BoolArray]:
    outward: list[str] = []
    first: list[int] = []
    count: list[int] = []
    city: list[bool] = []
    for area, _, districts in _AREAS:
        first.append(len(outward))
        count.append(len(districts))
        outward.extend(f"{area}{d}" for d in districts)
        city.extend([area in _CITY_AREAS] * len(districts))
    return (
        np.array(outward, dtype=object),
        np.array(first, dtype=np.int64),
        np.array(count, dtype=np.int64),
        _normalised([w for _, w, _ in _AREAS]),
        np.array(city, dtype=bool),
    )


def _inward_code(code: int) -> str:
    letters = _INWARD_LETTERS
    return f"{1 + code // 400}{letters[(code // 20) % 20]}{letters[code % 20]}"


def _draw_addresses(rng: np.random.Generator, h: int) -> tuple[ObjArray, ObjArray]:
    """Postcode and first address line of ``h`` households."""
    outward, first, count, area_p, city = _area_tables()
    area_codes = np.array([a for a, _, _ in _AREAS])
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
    suffix_p = _normalised([w for _, w in _STREET_SUFFIXES])
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


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def _adjacent_keys() -> dict[str, str]:
    adj: dict[str, str] = {}
    for r, row in enumerate(_KEY_ROWS):
        for c, key in enumerate(row):
            near = [row[c + d] for d in (-1, 1) if 0 <= c + d < len(row)]
            if r > 0:
                near += [_KEY_ROWS[r - 1][j] for j in (c, c + 1) if j < len(_KEY_ROWS[r - 1])]
            if r + 1 < len(_KEY_ROWS):
                below = _KEY_ROWS[r + 1]
                near += [below[j] for j in (c - 1, c) if 0 <= j < len(below)]
            adj[key] = "".join(near)
    for c, key in enumerate(_DIGIT_ROW):
        adj[key] = "".join(_DIGIT_ROW[c + d] for d in (-1, 1) if 0 <= c + d < len(_DIGIT_ROW))
    return adj


_ADJACENT: Final[Mapping[str, str]] = _adjacent_keys()


def _keyboard_typo(value: str, r: random.Random) -> str:
    """Replace one letter or digit by a neighbouring key (keeping its case)."""
    positions = [i for i, ch in enumerate(value) if ch.lower() in _ADJACENT]
    if not positions:
        return value
    i = r.choice(positions)
    ch = value[i]
    new = r.choice(_ADJACENT[ch.lower()])
    if ch.isupper():
        new = new.upper()
    return value[:i] + new + value[i + 1 :]


def _ocr_confusion(value: str, r: random.Random) -> str:
    """Apply one OCR confusion at a random place where one applies."""
    spots: list[tuple[int, str, str]] = []
    for src, dst in _OCR_CONFUSIONS:
        i = value.find(src)
        while i >= 0:
            spots.append((i, src, dst))
            i = value.find(src, i + 1)
    if not spots:
        return value
    i, src, dst = r.choice(spots)
    return value[:i] + dst + value[i + len(src) :]


def _strip_accents(value: str) -> str:
    if value.isascii():
        return value
    folded = unicodedata.normalize("NFKD", value.translate(_ASCII_FOLD))
    return "".join(ch for ch in folded if not unicodedata.combining(ch))


def _dob_digit_typo(value: str, r: random.Random) -> str:
    """Change one digit of an ISO date (year's last two, month or day) to a valid other date."""
    for _ in range(10):
        i = r.choice((2, 3, 5, 6, 8, 9))
        digit = value[i]
        new = r.choice(_ADJACENT[digit]) if r.random() < 0.5 else r.choice("0123456789")
        candidate = value[:i] + new + value[i + 1 :]
        if candidate == value:
            continue
        try:
            dt.date.fromisoformat(candidate)
        except ValueError:
            continue
        return candidate
    return value


def _dob_day_month_swap(value: str, r: random.Random) -> str:
    del r
    year, month, day = value[:4], value[5:7], value[8:10]
    if int(day) <= 12 and day != month:
        return f"{year}-{day}-{month}"
    return value


def _differing(value: str, options: Sequence[str], r: random.Random) -> str:
    choices = [o for o in options if o != value]
    return r.choice(choices) if choices else value


def _name_case(value: str, r: random.Random) -> str:
    roll = r.random()
    if roll < 0.5:
        first = value.upper()
    elif roll < 0.8:
        first = value.lower()
    else:
        first = value.capitalize()
    if first != value:
        return first
    return _differing(value, (value.upper(), value.lower()), r)


def _upper_or_lower(value: str, r: random.Random) -> str:
    return _differing(value, (value.upper(), value.lower()), r)


def _name_format(value: str, r: random.Random) -> str:
    options: list[str] = []
    if "'" in value:
        options += [value.replace("'", ""), value.replace("'", " ")]
    if "-" in value:
        options += [value.replace("-", " "), value.replace("-", "")]
    match = re.match(r"(Ma?c)([A-Z]\w+)$", value)
    if match:
        options.append(f"{match.group(1)} {match.group(2)}")
    if not options:
        # Nothing to vary but spacing: now and then a stray trailing space.
        return value + " " if r.random() < 0.25 else value
    return r.choice(options)


def _postcode_format(value: str, r: random.Random) -> str:
    compact = value.replace(" ", "")
    if r.random() < 0.8:
        return compact
    return f"{compact[:-3]}  {compact[-3:]}"


_ADDRESS_RE: Final = re.compile(r"^(?:(Flat [^,]+), )?(\d+) (.*)$")


def _address_format(value: str, r: random.Random) -> str:
    m = _ADDRESS_RE.match(value)
    if not m:
        return value + " "
    flat, number, street = m.groups()
    words = street.split(" ")
    options = [f"{number}, {street}"]
    if words[-1] in _ABBREVIATIONS:
        abbreviated = " ".join([*words[:-1], _ABBREVIATIONS[words[-1]]])
        options += [f"{number} {abbreviated}", f"{number} {abbreviated}."]
    if flat:
        # "Flat 2/1, 12 Rose Street" -> "2/1, 12 Rose Street", "Flat 2/1, 12, Rose Street", ...
        options = [f"{flat}, {o}" for o in options]
        options.append(f"{flat.removeprefix('Flat ')}, {number} {street}")
    return r.choice(options)


def _ni_format(value: str, r: random.Random) -> str:
    roll = r.random()
    if roll < 0.5:
        return f"{value[:2]} {value[2:4]} {value[4:6]} {value[6:8]} {value[8:]}"
    if roll < 0.8:
        return value[:8]
    return f"{value[:8]} {value[8:]}"


_STREET_OF: Final = re.compile(r"^(?:Flat [^,]+, )?\d+ ")


def _apply(
    values: ObjArray,
    rng: np.random.Generator,
    rate: float | FloatArray,
    func: Callable[[str, random.Random], str],
) -> None:
    """Apply ``func`` to each (non-missing) value with probability ``rate``, in place."""
    r = random.Random(int(rng.integers(0, 2**63)))
    hits = np.flatnonzero(rng.random(len(values)) < rate)
    for i in hits.tolist():
        v = values[i]
        if v is not None:
            values[i] = func(v, r)


def _perturb(
    records: dict[str, ObjArray],
    female: BoolArray,
    profile: ErrorProfile,
    rng: np.random.Generator,
    population: pd.DataFrame,
) -> None:
    """Introduce the profile's errors into canonical records (ISO dates, M/F), in place."""
    tables = _tables()
    m = len(female)
    given, surname = records["given_name"], records["surname"]

    # Life events: a surname change, a move.
    r = random.Random(int(rng.integers(0, 2**63)))
    change = np.flatnonzero(
        rng.random(m) < np.where(female, profile.surname_change, profile.surname_change / 10)
    )
    new = r.choices(tables.surnames.tolist(), cum_weights=tables.surname_cum, k=len(change))
    for i, other in zip(change.tolist(), new, strict=True):
        old = surname[i]
        if other == old:
            continue
        surname[i] = f"{old}-{other}" if r.random() < 0.2 and "-" not in old else other
    r = random.Random(int(rng.integers(0, 2**63)))
    moves = np.flatnonzero(rng.random(m) < profile.move)
    pop_postcode = population["postcode"].to_numpy()
    pop_address = population["address_line"].to_numpy()
    for i in moves.tolist():
        j = r.randrange(len(pop_postcode))
        records["postcode"][i] = pop_postcode[j]
        street = _STREET_OF.sub("", str(pop_address[j]))
        records["address_line"][i] = f"{r.randint(1, 200)} {street}"

    def nickname(value: str, r: random.Random) -> str:
        entry = tables.nicknames.get(value.lower())
        if entry is None:
            return value
        return r.choices(entry[0], cum_weights=entry[1])[0]

    _apply(given, rng, profile.nickname, nickname)

    swap = np.flatnonzero(rng.random(m) < profile.name_swap)
    given[swap], surname[swap] = surname[swap].copy(), given[swap].copy()

    dob = records["date_of_birth"]
    _apply(dob, rng, profile.dob_day_month_swap, _dob_day_month_swap)
    _apply(dob, rng, profile.typo.date_of_birth, _dob_digit_typo)

    text = ("given_name", "surname", "postcode", "address_line", "ni_number")
    for f in text:
        _apply(records[f], rng, profile.typo.get(f), _keyboard_typo)
    for f in text:
        _apply(records[f], rng, profile.ocr.get(f), _ocr_confusion)
    for f in ("given_name", "surname"):
        _apply(records[f], rng, profile.accents, lambda v, _r: _strip_accents(v))
    formatters: dict[str, Callable[[str, random.Random], str]] = {
        "given_name": _name_format,
        "surname": _name_format,
        "postcode": _postcode_format,
        "address_line": _address_format,
        "ni_number": _ni_format,
    }
    for f, formatter in formatters.items():
        _apply(records[f], rng, profile.format.get(f), formatter)
    casers: dict[str, Callable[[str, random.Random], str]] = {
        "given_name": _name_case,
        "surname": _name_case,
        "postcode": lambda v, _r: v.lower(),
        "address_line": _upper_or_lower,
        "ni_number": lambda v, _r: v.lower(),
    }
    for f, caser in casers.items():
        _apply(records[f], rng, profile.case.get(f), caser)
    _apply(records["sex"], rng, profile.sex_miscoded, lambda v, _r: "M" if v == "F" else "F")

    for f in PACE_FIELDS:
        missing = rng.random(m) < profile.missing.get(f)
        records[f][missing] = None


# ---------------------------------------------------------------------------------------------
# Extracts
# ---------------------------------------------------------------------------------------------


def _generator(seed: int, stream: int, label: str = "") -> np.random.Generator:
    """An independent random stream for a seed, a purpose and (e.g.) a partner name."""
    if seed < 0:
        raise ValueError(f"seed must not be negative, got {seed}")
    return np.random.default_rng([seed, stream, zlib.crc32(label.encode())])


def _spawn(rng: np.random.Generator, k: int) -> list[np.random.Generator]:
    return rng.spawn(k)


def _with_duplicates(rng: np.random.Generator, people: IntArray, share: float) -> IntArray:
    """The people's rows, followed by a second row for ``round(share * len)`` of them."""
    count = round(share * len(people))
    twice = rng.choice(len(people), size=count, replace=False)
    return np.concatenate([people, people[np.sort(twice)]])


def _id_numbers(rng: np.random.Generator, count: int) -> tuple[IntArray, int]:
    """Distinct, sorted random local-ID numbers, and the width to print them with."""
    upper = max(1_000, 10 * count)
    numbers = np.sort(rng.choice(upper, size=count, replace=False)) + 1
    return numbers.astype(np.int64), max(6, len(str(upper)))


_SEX_CODES: Final[Mapping[str, Mapping[str, str]]] = {
    "M/F": {"M": "M", "F": "F"},
    "Male/Female": {"M": "Male", "F": "Female"},
    "1/2": {"M": "1", "F": "2"},
}


def _format_dates(values: ObjArray, fmt: str) -> ObjArray:
    cache: dict[str, str] = {}
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values.tolist()):
        if v is None:
            out[i] = None
            continue
        s = cache.get(v)
        if s is None:
            s = cache[v] = dt.date.fromisoformat(v).strftime(fmt)
        out[i] = s
    return out


def _render(
    population: pd.DataFrame,
    spec: PartnerSpec,
    rows: IntArray,
    local_ids: Sequence[str],
    rng: np.random.Generator,
    *,
    profile: ErrorProfile | None = None,
) -> pd.DataFrame:
    """The partner's records of the given population rows, in population order."""
    err_rng, consent_rng = _spawn(rng, 2)
    records = {f: population[f].to_numpy(dtype=object)[rows].copy() for f in PACE_FIELDS}
    female = records["sex"] == "F"
    _perturb(records, female, profile or spec.profile, err_rng, population)
    person = population["person_id"].to_numpy(dtype=np.int64)[rows]
    return _layout(records, spec, local_ids, person, consent_rng)


def _layout(
    records: Mapping[str, ObjArray],
    spec: PartnerSpec,
    local_ids: Sequence[str],
    person: IntArray,
    consent_rng: np.random.Generator | None,
) -> pd.DataFrame:
    """Canonical records (ISO dates, M/F) in the partner's formats, columns and local IDs.

    ``consent_rng`` draws the consent column; it is only used when the partner has one.
    """
    records = dict(records)  # the partner's formats replace values: the caller keeps its own
    if spec.uppercase:
        for f in ("given_name", "surname", "postcode", "address_line"):
            records[f] = np.array([v if v is None else v.upper() for v in records[f]], dtype=object)
    records["date_of_birth"] = _format_dates(records["date_of_birth"], spec.date_format)
    codes = _SEX_CODES[spec.sex_coding]
    records["sex"] = np.array(
        [None if v is None else codes[v] for v in records["sex"]], dtype=object
    )
    cols = spec.columns
    data: dict[str, object] = {cols.local_id: np.array(local_ids, dtype=object)}
    for f in spec.present_fields():
        data[cols.header(f)] = records[f]
    if spec.consent_refusal_rate is not None:
        if consent_rng is None:
            raise ValueError(f"{spec.name} has a consent column: a consent_rng is needed")
        refused = consent_rng.random(len(person)) < spec.consent_refusal_rate
        data[cols.consent] = np.where(refused, "N", "Y").astype(object)
    data[TRUTH_COLUMN] = person
    return pd.DataFrame(data)


def _shuffled(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


def _format_ids(prefix: str, numbers: IntArray, width: int) -> list[str]:
    return [f"{prefix}-{k:0{width}d}" for k in numbers.tolist()]


def make_extract(population: pd.DataFrame, spec: PartnerSpec, seed: int) -> pd.DataFrame:
    """Render one partner's file from the population.

    ``round(coverage * len(population))`` people are included; ``round(duplicate * that)`` of
    them appear a second time under another local ID. Every record gets the profile's errors
    independently, then the partner's formats (date format, sex coding, upper case), its column
    names and local IDs (``PREFIX-000123``, distinct random numbers); rows are shuffled.

    Args:
        population: A population from :func:`generate_population`.
        spec: The partner.
        seed: Random seed (combined with the partner name, so partners differ).

    Returns:
        The partner's columns (``columns.local_id`` first, then the present person fields in
        canonical order, then the consent column if any) and the truth column
        :data:`TRUTH_COLUMN` (int64 ``person_id``), which must be dropped before encoding.
    """
    select, ids, render, order = _spawn(_generator(seed, _STREAM_EXTRACT, spec.name), 4)
    n = len(population)
    people = np.sort(select.choice(n, size=round(spec.coverage * n), replace=False))
    rows = _with_duplicates(select, people.astype(np.int64), spec.profile.duplicate)
    numbers, width = _id_numbers(ids, len(rows))
    local = _format_ids(spec.id_prefix, ids.permutation(numbers), width)
    return _shuffled(_render(population, spec, rows, local, render), order)


def _late_arrivals(n: int, seed: int) -> BoolArray:
    rng = _generator(seed, _STREAM_ARRIVALS)
    late = np.zeros(n, dtype=bool)
    late[rng.choice(n, size=round(INCREMENTAL_NEW_SHARE * n), replace=False)] = True
    return late


def _incremental_batches(
    population: pd.DataFrame, spec: PartnerSpec, seed: int, late: BoolArray
) -> list[pd.DataFrame]:
    """Two deliveries: batch 1 (people already there), batch 2 (new people and updates).

    Updated records keep their batch-1 local ID and are re-rendered from the truth with fresh
    errors, and with at least a 30% chance of a move and 10% of a surname change (women).
    New people's local IDs are all higher than batch 1's, as a register allocates them.
    """
    select, ids, render1, render2, render3, order = _spawn(
        _generator(seed, _STREAM_INCREMENTAL, spec.name), 6
    )
    n = len(population)
    people = np.sort(select.choice(n, size=round(spec.coverage * n), replace=False))
    people = people.astype(np.int64)
    rows1 = _with_duplicates(select, people[~late[people]], spec.profile.duplicate)
    rows2 = _with_duplicates(select, people[late[people]], spec.profile.duplicate)
    updated = np.sort(
        select.choice(len(rows1), size=round(INCREMENTAL_UPDATE_SHARE * len(rows1)), replace=False)
    )

    numbers, width = _id_numbers(ids, len(rows1) + len(rows2))
    ids1 = _format_ids(spec.id_prefix, ids.permutation(numbers[: len(rows1)]), width)
    ids2 = _format_ids(spec.id_prefix, ids.permutation(numbers[len(rows1) :]), width)

    profile = spec.profile
    update_profile = dataclasses.replace(
        profile,
        move=max(profile.move, 0.3),
        surname_change=max(profile.surname_change, 0.1),
    )
    batch1 = _render(population, spec, rows1, ids1, render1)
    new_people = _render(population, spec, rows2, ids2, render2)
    ids_updated = [ids1[i] for i in updated.tolist()]
    updates = _render(
        population, spec, rows1[updated], ids_updated, render3, profile=update_profile
    )
    batch2 = pd.concat([new_people, updates], ignore_index=True)
    return [_shuffled(batch1, order), _shuffled(batch2, order)]


def to_pace_columns(
    extract: pd.DataFrame, spec: PartnerSpec, *, canonical_values: bool = False
) -> pd.DataFrame:
    """A partner's extract with the canonical column names and order.

    Columns: ``local_id``, the :data:`PACE_FIELDS` (empty where the partner lacks one), then
    ``consent`` and :data:`TRUTH_COLUMN` where the extract has them.

    Args:
        extract: A file from :func:`make_extract` (truth column optional).
        spec: The partner that made it.
        canonical_values: Also convert dates of birth to ``YYYY-MM-DD`` (two-digit years are
            placed no later than :data:`REFERENCE_DATE`; unparsable dates become empty) and sex
            to ``M``/``F``. Otherwise values keep the partner's formats.

    Returns:
        A new data frame.
    """
    cols = spec.columns
    present = spec.present_fields()
    out: dict[str, npt.NDArray[Any]] = {"local_id": extract[cols.local_id].to_numpy()}
    for f in PACE_FIELDS:
        header = cols.header(f)
        if f in present and header in extract.columns:
            out[f] = extract[header].to_numpy(dtype=object).copy()
        else:
            out[f] = np.full(len(extract), None, dtype=object)
    if canonical_values:
        out["date_of_birth"] = _parse_dates(out["date_of_birth"], spec.date_format)
        decode = {v: k for k, v in _SEX_CODES[spec.sex_coding].items()}
        sex = out["sex"].tolist()
        out["sex"] = _objects([None if v is None else decode.get(str(v)) for v in sex])
    if spec.consent_refusal_rate is not None and cols.consent in extract.columns:
        out["consent"] = extract[cols.consent].to_numpy()
    if TRUTH_COLUMN in extract.columns:
        out[TRUTH_COLUMN] = extract[TRUTH_COLUMN].to_numpy()
    return pd.DataFrame(out)


def _objects(values: Sequence[str | None]) -> ObjArray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _parse_dates(values: ObjArray, fmt: str) -> ObjArray:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values.tolist()):
        try:
            d = dt.datetime.strptime(str(v), fmt).date()
        except ValueError:
            out[i] = None
            continue
        if d > REFERENCE_DATE:
            d = d.replace(year=d.year - 100)
        out[i] = d.isoformat()
    return out


# ---------------------------------------------------------------------------------------------
# Lifecycle: quarterly deliveries with updates and withdrawals, against a static partner
# ---------------------------------------------------------------------------------------------

UpdateKind = Literal["move", "surname_change", "typo_fix", "dob_fix"]
UploadKind = Literal["snapshot", "delta"]

UPDATE_KINDS: Final[tuple[UpdateKind, ...]] = ("move", "surname_change", "typo_fix", "dob_fix")
"""The kinds of update a lifecycle delta holds (see :class:`LifecycleRates`)."""
LIFECYCLE_STATIC: Final = "benefits_dept"
"""Lifecycle scenario: the partner that delivers one snapshot (it may withdraw records later)."""
LIFECYCLE_DELIVERING: Final = "skills_agency"
"""Lifecycle scenario: the partner that delivers a snapshot, then a delta every quarter."""


@dataclass(frozen=True)
class LifecycleRates:
    """How the delivering partner's client list changes from one quarterly delivery to the next.

    Update and withdrawal rates are shares of a partner's *current* records (delivered before,
    not withdrawn) and are realised as exact counts: ``round(rate * records)``, and at least 1
    while the rate and the pool are not 0, so that even a small scenario has every kind. A record
    gets at most one of them per delivery. The defaults are a skills agency's quarter: about one
    adult in nine moves home in a year, more among the renters such services see; marriages
    change a few women's surnames in a thousand; advisers correct about one record in a hundred.

    Attributes:
        initial_coverage: Share of the population in the delivering partner's first snapshot.
        static_coverage: Share of the population in the static partner's snapshot.
        new_clients: Share of the population arriving as new clients in each delta (people who
            were not clients before; the static partner may already know them).
        move: Moved house: the record holds the new postcode and, at ``address_updated``, the
            new first address line.
        address_updated: Share of moves recorded with the new address line too; otherwise the old
            line stays beside the new postcode, as when an adviser updates only the postcode.
        surname_change: A woman's new surname (marriage; a fifth double-barrelled with the old).
        typo_fix: A name typo of an earlier delivery corrected (only records that carry one).
        dob_fix: A wrong date of birth of an earlier delivery corrected (likewise).
        withdraw: Consent withdrawn: the delivering partner withdraws the record.
        static_withdraw: Consent withdrawn from the static partner, in each delta's quarter.
        planted_name_typo: Share of new records delivered with a keyboard typo in the given name
            or surname (on top of the partner's error profile), which a later delta may correct.
        planted_dob_error: Share of new records (whose date of birth is otherwise right) delivered
            with a wrong date: day and month swapped or one digit wrong, half each.
    """

    initial_coverage: float = 0.50
    static_coverage: float = 0.45
    new_clients: float = 0.05
    move: float = 0.03
    address_updated: float = 0.75
    surname_change: float = 0.003
    typo_fix: float = 0.01
    dob_fix: float = 0.004
    withdraw: float = 0.01
    static_withdraw: float = 0.003
    planted_name_typo: float = 0.05
    planted_dob_error: float = 0.025

    def __post_init__(self) -> None:
        """Check that every rate is a probability."""
        _check_rates(self)


@dataclass(frozen=True, eq=False)
class LifecycleBatch:
    """What the partners send in one quarter.

    Attributes:
        number: The batch, from 1.
        deliveries: Records delivered, by partner (its columns and formats, then
            :data:`TRUTH_COLUMN`); a partner that sends nothing this quarter is absent.
        kinds: ``snapshot`` (a partner's first delivery: all its records) or ``delta`` (new
            records and changed ones, each with its earlier local ID), by partner.
        withdrawals: Local IDs whose consent was withdrawn this quarter, by partner (every
            partner has an entry, maybe empty); each was delivered in an earlier batch.
    """

    number: int
    deliveries: Mapping[str, pd.DataFrame]
    kinds: Mapping[str, UploadKind]
    withdrawals: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, eq=False)
class Lifecycle:
    """A partnership's record lifecycle: deliveries, updates and withdrawals, with the truth.

    Attributes:
        population: The people as they were at the first batch (moves and surname changes of
            later quarters are in :attr:`updates`).
        partners: The static partner, then the delivering one.
        batches: The quarters in order.
        updates: One row per updated record and batch: ``partner``, ``batch``, ``local_id``,
            ``person_id``, ``kind`` (one of :data:`UPDATE_KINDS`) and ``fields`` (the canonical
            fields it changed, comma-separated).
        rates: The rates it was made with.
    """

    population: pd.DataFrame
    partners: tuple[PartnerSpec, ...]
    batches: tuple[LifecycleBatch, ...]
    updates: pd.DataFrame
    rates: LifecycleRates

    def spec(self, name: str) -> PartnerSpec:
        """A partner's specification by name.

        Raises:
            KeyError: No such partner.
        """
        return _spec_named(self.partners, name)

    def truth(self) -> pd.DataFrame:
        """Every record ever delivered, once.

        Returns:
            Columns ``partner``, ``local_id``, ``person_id``, ``first_batch`` (when it was first
            delivered) and ``withdrawn_batch`` (0: never withdrawn).
        """
        parts = []
        for batch in self.batches:
            for name, frame in batch.deliveries.items():
                parts.append(pd.DataFrame({
                    "partner": name,
                    "local_id": frame[self.spec(name).columns.local_id].to_numpy(),
                    "person_id": frame[TRUTH_COLUMN].to_numpy(dtype=np.int64),
                    "first_batch": batch.number,
                }))  # fmt: skip
        columns = ["partner", "local_id", "person_id", "first_batch"]
        if not parts:
            return pd.DataFrame(columns=[*columns, "withdrawn_batch"])
        truth = pd.concat(parts, ignore_index=True).drop_duplicates(["partner", "local_id"])
        withdrawn = {
            (name, local_id): batch.number
            for batch in self.batches
            for name, ids in batch.withdrawals.items()
            for local_id in ids
        }
        keys = zip(truth["partner"], truth["local_id"], strict=True)
        truth["withdrawn_batch"] = np.array([withdrawn.get(k, 0) for k in keys], dtype=np.int64)
        return truth.reset_index(drop=True)

    def current(self, batch: int) -> dict[str, pd.DataFrame]:
        """Each partner's records as they stand after a batch: latest versions, none withdrawn.

        Args:
            batch: A batch number (from 1).

        Returns:
            By partner, one row per current record (as last delivered), in local-ID order.
        """
        out: dict[str, pd.DataFrame] = {}
        for spec in self.partners:
            id_col = spec.columns.local_id
            frames = [b.deliveries[spec.name] for b in self.batches[:batch]
                      if spec.name in b.deliveries]  # fmt: skip
            gone = {i for b in self.batches[:batch] for i in b.withdrawals.get(spec.name, ())}
            if not frames:
                continue
            stacked = pd.concat(frames, ignore_index=True)
            latest = stacked.drop_duplicates(id_col, keep="last")
            latest = latest[~latest[id_col].isin(gone)].sort_values(id_col)
            out[spec.name] = latest.reset_index(drop=True)
        return out


def _count(rate: float, records: int, pool: int) -> int:
    """How many records of a pool a rate applies to: ``round(rate * records)``, at least 1."""
    if rate <= 0 or pool == 0:
        return 0
    return min(pool, max(1, round(rate * records)))


def _take(rng: np.random.Generator, pool: IntArray, count: int) -> IntArray:
    return np.sort(rng.choice(pool, size=count, replace=False)) if count else pool[:0]


def _plant_errors(
    records: dict[str, ObjArray],
    true_dob: ObjArray,
    rates: LifecycleRates,
    rng: np.random.Generator,
) -> tuple[dict[int, tuple[str, str]], dict[int, str]]:
    """Errors a later delivery corrects, in place; returns the right values by record.

    Returns:
        ``(name_typos, dob_errors)``: record -> (field, right value), and record -> right date.
    """
    m = len(true_dob)
    r = random.Random(int(rng.integers(0, 2**63)))
    names: dict[int, tuple[str, str]] = {}
    for i in np.flatnonzero(rng.random(m) < rates.planted_name_typo).tolist():
        field = r.choice(("given_name", "surname"))
        value = records[field][i]
        if value is not None and (wrong := _keyboard_typo(value, r)) != value:
            records[field][i] = wrong
            names[i] = (field, value)
    dobs: dict[int, str] = {}
    for i in np.flatnonzero(rng.random(m) < rates.planted_dob_error).tolist():
        value = records["date_of_birth"][i]
        if value is None or value != true_dob[i]:
            continue  # only a right date can be "corrected" back to the truth
        wrong = _dob_day_month_swap(value, r) if r.random() < 0.5 else value
        if wrong == value:  # no swap possible (day > 12, or day = month): a digit instead
            wrong = _dob_digit_typo(value, r)
        if wrong != value:
            records["date_of_birth"][i] = wrong
            dobs[i] = value
    return names, dobs


def _apply_updates(
    changed: Mapping[UpdateKind, IntArray],
    held: dict[str, ObjArray],
    now: dict[str, ObjArray],
    row_of: IntArray,
    name_typos: dict[int, tuple[str, str]],
    dob_errors: dict[int, str],
    rates: LifecycleRates,
    rng: np.random.Generator,
    population: pd.DataFrame,
) -> dict[int, str]:
    """Apply one delta's updates to the held records (and life events to the people), in place.

    Returns:
        The canonical fields each updated record changed, comma-separated.
    """
    fields: dict[int, str] = {}
    r = random.Random(int(rng.integers(0, 2**63)))
    pop_postcode = population["postcode"].to_numpy(dtype=object)
    pop_address = population["address_line"].to_numpy(dtype=object)
    for i in changed["move"].tolist():
        p = row_of[i]
        j = r.randrange(len(pop_postcode))
        # Somewhere else: a postcode neither the person's nor the one on record.
        for _ in range(100):
            if pop_postcode[j] not in (now["postcode"][p], held["postcode"][i]):
                break
            j = r.randrange(len(pop_postcode))
        postcode = pop_postcode[j]
        address = f"{r.randint(1, 200)} {_STREET_OF.sub('', str(pop_address[j]))}"
        now["postcode"][p], now["address_line"][p] = postcode, address
        held["postcode"][i] = postcode
        fields[i] = "postcode"
        if r.random() < rates.address_updated and held["address_line"][i] != address:
            held["address_line"][i] = address
            fields[i] = "postcode,address_line"
    surnames = _tables().surnames.tolist()
    cum = _tables().surname_cum
    for i in changed["surname_change"].tolist():
        p = row_of[i]
        old = str(now["surname"][p])
        for _ in range(100):
            other = r.choices(surnames, cum_weights=cum)[0]
            surname = f"{old}-{other}" if r.random() < 0.2 and "-" not in old else other
            if surname not in (old, held["surname"][i]):
                break
        now["surname"][p] = held["surname"][i] = surname
        if name_typos.get(i, ("", ""))[0] == "surname":
            del name_typos[i]  # the typo went with the old name: nothing left to correct
        fields[i] = "surname"
    for i in changed["typo_fix"].tolist():
        field, value = name_typos.pop(i)
        held[field][i] = value
        fields[i] = field
    for i in changed["dob_fix"].tolist():
        held["date_of_birth"][i] = dob_errors.pop(i)
        fields[i] = "date_of_birth"
    return fields


def make_lifecycle(
    n_people: int = 6_000,
    seed: int = 0,
    *,
    batches: int = 4,
    rates: LifecycleRates | None = None,
) -> Lifecycle:
    """A static partner and a partner delivering a snapshot, then quarterly deltas.

    The static partner (the benefits department, :data:`LIFECYCLE_STATIC`) sends one snapshot
    in batch 1, made by :func:`make_extract`, and later only withdraws records. The delivering
    partner (the skills agency, :data:`LIFECYCLE_DELIVERING`, without its consent column:
    consent is withdrawn explicitly here) sends a snapshot in batch 1 and a delta in each later
    batch. A delta holds the new clients of the quarter (local IDs above all earlier ones, as a
    register allocates them) and the records that changed, each re-sent whole under its local
    ID: moves, surname changes, corrected name typos and corrected dates of birth (see
    :class:`LifecycleRates`). Records are rendered once with the partner's error profile; a
    re-sent record differs from its previous version only by its update. Moves and surname
    changes are life events: the static partner keeps the old details.

    Args:
        n_people: Population size (the partners hold about half of it each).
        seed: Random seed; the same arguments give identical output.
        batches: Deliveries of the delivering partner: the snapshot, then ``batches - 1`` deltas.
        rates: The rates (default: :class:`LifecycleRates`'s).

    Returns:
        The lifecycle.

    Raises:
        ValueError: ``batches`` below 1, or ``n_people`` or ``seed`` negative.
    """
    if batches < 1:
        raise ValueError(f"batches must be at least 1, got {batches}")
    rates = rates or LifecycleRates()
    population = generate_population(n_people, seed)
    cat = partner_catalogue()
    static = dataclasses.replace(cat[LIFECYCLE_STATIC], coverage=rates.static_coverage)
    skills = dataclasses.replace(
        cat[LIFECYCLE_DELIVERING], coverage=rates.initial_coverage, consent_refusal_rate=None
    )
    static_frame = make_extract(population, static, seed)
    arrive, ids, errors, plant, events, order = _spawn(
        _generator(seed, _STREAM_LIFECYCLE, skills.name), 6
    )
    static_events = _generator(seed, _STREAM_LIFECYCLE, static.name)
    n = len(population)

    # Who becomes a client when: each person once (a duplicate record arrives with them).
    waiting = np.arange(n, dtype=np.int64)
    groups: list[IntArray] = []
    for b in range(batches):
        share = rates.initial_coverage if b == 0 else rates.new_clients
        chosen = np.sort(arrive.choice(len(waiting), size=min(len(waiting), round(share * n)),
                                       replace=False))  # fmt: skip
        groups.append(_with_duplicates(arrive, waiting[chosen], skills.profile.duplicate))
        waiting = np.delete(waiting, chosen)
    total = sum(len(g) for g in groups)
    numbers, width = _id_numbers(ids, total)
    local: list[str] = []
    for g in groups:
        chunk = numbers[len(local) : len(local) + len(g)]
        local += _format_ids(skills.id_prefix, ids.permutation(chunk), width)

    # The partner's records as it holds them (canonical values), and the people as they are.
    now = {f: population[f].to_numpy(dtype=object).copy() for f in PACE_FIELDS}
    person_id = population["person_id"].to_numpy(dtype=np.int64)
    held = {f: np.empty(total, dtype=object) for f in PACE_FIELDS}
    row_of = np.concatenate(groups)  # population row of each record
    name_typos: dict[int, tuple[str, str]] = {}  # record -> (field, right value)
    dob_errors: dict[int, str] = {}  # record -> right date of birth
    withdrawn = np.zeros(total, dtype=bool)
    static_ids = static_frame[static.columns.local_id].to_numpy(dtype=object)
    static_gone = np.zeros(len(static_ids), dtype=bool)
    err_rngs, plant_rngs = _spawn(errors, batches), _spawn(plant, batches)
    updates: list[dict[str, object]] = []
    out: list[LifecycleBatch] = []
    before = 0  # records delivered before this batch: 0 .. before - 1
    for b, group in enumerate(groups):
        new = np.arange(before, before + len(group), dtype=np.int64)
        records = {f: now[f][group].copy() for f in PACE_FIELDS}
        _perturb(records, records["sex"] == "F", skills.profile, err_rngs[b], population)
        planted_names, planted_dobs = _plant_errors(
            records, now["date_of_birth"][group], rates, plant_rngs[b]
        )
        for f in PACE_FIELDS:
            held[f][new] = records[f]
        name_typos.update({int(new[i]): v for i, v in planted_names.items()})
        dob_errors.update({int(new[i]): v for i, v in planted_dobs.items()})

        withdrawals: dict[str, tuple[str, ...]] = {static.name: (), skills.name: ()}
        changed: dict[UpdateKind, IntArray] = {}
        if b > 0:
            # The records delivered before and still shared: those that can change or go.
            current = np.flatnonzero(~withdrawn[:before])
            gone = _take(events, current, _count(rates.withdraw, len(current), len(current)))
            withdrawn[gone] = True
            free = np.setdiff1d(current, gone)
            for kind in UPDATE_KINDS:
                if kind == "surname_change":
                    pool = free[now["sex"][row_of[free]] == "F"]
                elif kind == "typo_fix":
                    pool = np.intersect1d(free, np.fromiter(name_typos, np.int64))
                elif kind == "dob_fix":
                    pool = np.intersect1d(free, np.fromiter(dob_errors, np.int64))
                else:
                    pool = free
                rate: float = getattr(rates, kind)
                changed[kind] = _take(events, pool, _count(rate, len(current), len(pool)))
                free = np.setdiff1d(free, changed[kind])
            fields = _apply_updates(changed, held, now, row_of, name_typos, dob_errors, rates,
                                    events, population)  # fmt: skip
            kept = np.flatnonzero(~static_gone)
            static_out = _take(static_events, kept,
                               _count(rates.static_withdraw, len(kept), len(kept)))  # fmt: skip
            static_gone[static_out] = True
            withdrawals = {
                static.name: tuple(str(v) for v in static_ids[static_out].tolist()),
                skills.name: tuple(local[i] for i in gone.tolist()),
            }
            for kind, rows in changed.items():
                updates += [
                    {"partner": skills.name, "batch": b + 1, "local_id": local[i],
                     "person_id": int(person_id[row_of[i]]), "kind": kind, "fields": fields[i]}
                    for i in rows.tolist()
                ]  # fmt: skip
        sent = np.sort(np.concatenate([new, *changed.values()]))
        sent_ids = [local[i] for i in sent.tolist()]
        frame = _layout({f: held[f][sent] for f in PACE_FIELDS}, skills, sent_ids,
                        person_id[row_of[sent]], None)  # fmt: skip
        deliveries = {skills.name: _shuffled(frame, order)}
        kinds: dict[str, UploadKind] = {skills.name: "snapshot" if b == 0 else "delta"}
        if b == 0:
            deliveries = {static.name: static_frame, **deliveries}
            kinds = {static.name: "snapshot", **kinds}
        out.append(LifecycleBatch(b + 1, deliveries, kinds, withdrawals))
        before += len(group)
    update_frame = pd.DataFrame(
        updates, columns=["partner", "batch", "local_id", "person_id", "kind", "fields"]
    )
    return Lifecycle(population, (static, skills), tuple(out), update_frame, rates)


def write_lifecycle(lifecycle: Lifecycle, out: Path) -> list[dict[str, dict[str, Path]]]:
    """Write a lifecycle's files as the partners and the evaluator would hold them.

    ``out/batchB/PARTNER.csv``: a delivery, with the canonical column names (``local_id``,
    :data:`PACE_FIELDS`) and the partner's own value formats, no truth column;
    ``out/batchB/PARTNER.withdrawn.txt``: the local IDs withdrawn that quarter, one a line
    (only where there are any); ``out/truth.csv`` (:meth:`Lifecycle.truth`) and
    ``out/updates.csv`` (:attr:`Lifecycle.updates`): the evaluator's.

    Args:
        lifecycle: From :func:`make_lifecycle`.
        out: Folder to write into (created).

    Returns:
        For each batch, by partner: ``{"records": CSV, "withdrawn": TXT}``, those written.
    """
    files: list[dict[str, dict[str, Path]]] = []
    for batch in lifecycle.batches:
        folder = out / f"batch{batch.number}"
        folder.mkdir(parents=True, exist_ok=True)
        written: dict[str, dict[str, Path]] = {}
        for name, frame in batch.deliveries.items():
            path = folder / f"{name}.csv"
            pace = to_pace_columns(frame, lifecycle.spec(name)).drop(columns=[TRUTH_COLUMN])
            _write_csv(pace, path)
            written.setdefault(name, {})["records"] = path
        for name, ids in batch.withdrawals.items():
            if ids:
                path = folder / f"{name}.withdrawn.txt"
                path.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
                written.setdefault(name, {})["withdrawn"] = path
        files.append(written)
    _write_csv(lifecycle.truth(), out / "truth.csv")
    _write_csv(lifecycle.updates, out / "updates.csv")
    return files


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, lineterminator="\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Write a scenario's partner files and its ground truth as CSV.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.synthetic",
        description=(
            "Write a synthetic population's partner extracts (one CSV per partner, and per "
            "batch for 'incremental') and truth.csv (partner, batch, file, local_id, "
            "person_id). The bundled sample encoder/data/sample_partner.csv was made with: "
            + SAMPLE_COMMAND
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--scenario", required=True, choices=list(SCENARIOS))
    parser.add_argument("--people", type=int, required=True, help="population size")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--strip-truth",
        action="store_true",
        help=f"leave the {TRUTH_COLUMN} column out of the partner files (truth.csv only)",
    )
    parser.add_argument(
        "--pace-columns",
        action="store_true",
        help="use the canonical column names: local_id,"
        + ",".join(PACE_FIELDS)
        + " (and consent), keeping each partner's value formats",
    )
    args = parser.parse_args(argv)
    if args.people < 0 or args.seed < 0:
        parser.error("--people and --seed must not be negative")

    scenario = make_scenario(args.scenario, args.people, args.seed)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    truth_parts = []
    for spec in scenario.partners:
        frames = scenario.batches[spec.name]
        for number, frame in enumerate(frames, start=1):
            file_name = f"{spec.name}.csv" if len(frames) == 1 else f"{spec.name}_batch{number}.csv"
            truth_parts.append(
                pd.DataFrame(
                    {
                        "partner": spec.name,
                        "batch": number,
                        "file": file_name,
                        "local_id": frame[spec.columns.local_id].to_numpy(),
                        "person_id": frame[TRUTH_COLUMN].to_numpy(),
                    }
                )
            )
            written = to_pace_columns(frame, spec) if args.pace_columns else frame
            if args.strip_truth:
                written = written.drop(columns=[TRUTH_COLUMN])
            _write_csv(written, out / file_name)
    _write_csv(pd.concat(truth_parts, ignore_index=True), out / "truth.csv")
    total = sum(len(p) for p in truth_parts)
    print(
        f"{args.scenario}: {len(scenario.population)} people, {len(truth_parts)} files, "
        f"{total} records -> {out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
