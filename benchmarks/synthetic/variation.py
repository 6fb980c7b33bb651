"""Error models: how often each kind of error appears, and the errors themselves."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from benchmarks.synthetic.population import (
    PACE_FIELDS,
    BoolArray,
    FloatArray,
    ObjArray,
    name_tables,
)

__all__ = [
    "CLEAN",
    "LIGHT",
    "MESSY",
    "PRESETS",
    "STREET_OF",
    "TYPICAL",
    "ErrorProfile",
    "FieldRates",
    "check_rates",
    "dob_digit_typo",
    "keyboard_typo",
    "perturb",
    "swap_day_and_month",
]

# Street-name abbreviations a partner's system may use.
_ABBREVIATIONS: Final[Mapping[str, str]] = {
    "Street": "St", "Road": "Rd", "Avenue": "Ave", "Crescent": "Cres", "Drive": "Dr",
    "Place": "Pl", "Terrace": "Terr", "Gardens": "Gdns", "Court": "Ct", "Lane": "Ln",
    "Square": "Sq", "Grove": "Gr", "Close": "Cl",
}  # fmt: skip

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


# Public configuration types
# ---------------------------------------------------------------------------------------------


def check_rates(rates: Any) -> None:
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
        check_rates(self)

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


def keyboard_typo(value: str, r: random.Random) -> str:
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


def dob_digit_typo(value: str, r: random.Random) -> str:
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


def swap_day_and_month(value: str, r: random.Random) -> str:
    """An ISO date with day and month swapped, where the day can be a month."""
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


STREET_OF: Final = re.compile(r"^(?:Flat [^,]+, )?\d+ ")


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


def perturb(
    records: dict[str, ObjArray],
    female: BoolArray,
    profile: ErrorProfile,
    rng: np.random.Generator,
    population: pd.DataFrame,
) -> None:
    """Introduce the profile's errors into canonical records (ISO dates, M/F), in place."""
    tables = name_tables()
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
        street = STREET_OF.sub("", str(pop_address[j]))
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
    _apply(dob, rng, profile.dob_day_month_swap, swap_day_and_month)
    _apply(dob, rng, profile.typo.date_of_birth, dob_digit_typo)

    text = ("given_name", "surname", "postcode", "address_line", "ni_number")
    for f in text:
        _apply(records[f], rng, profile.typo.get(f), keyboard_typo)
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
