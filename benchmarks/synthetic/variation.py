"""Error models: how often each kind of error appears, which records get it, what was applied.

The errors themselves (one value at a time) are in :mod:`~benchmarks.synthetic.errors`.
"""

from __future__ import annotations

import dataclasses
import random
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from benchmarks.synthetic.errors import (
    STREET_OF,
    address_format,
    dob_digit_typo,
    dob_single_digit_error,
    keyboard_typo,
    name_case,
    name_format,
    ni_format,
    ocr_confusion,
    postcode_format,
    strip_accents,
    surname_part,
    swap_day_and_month,
    upper_or_lower,
    with_middle_name,
)
from benchmarks.synthetic.heldout import tables_of
from benchmarks.synthetic.population import (
    PACE_FIELDS,
    BoolArray,
    FloatArray,
    ObjArray,
)

__all__ = [
    "CLEAN",
    "LIGHT",
    "MESSY",
    "PRESETS",
    "STREET_OF",
    "TYPICAL",
    "VARIATION_KINDS",
    "WIDE_MESSY",
    "WIDE_TYPICAL",
    "ErrorProfile",
    "FieldRates",
    "check_rates",
    "dob_digit_typo",
    "keyboard_typo",
    "perturb",
    "repr_without_defaults",
    "swap_day_and_month",
]


def repr_without_defaults(spec: Any, widened: frozenset[str]) -> str:
    """A dataclass's repr without the `widened` fields that are at their defaults.

    The scenarios' fixed-seed digests hash these reprs: options added later must leave the
    repr of a spec that does not use them, and so every earlier digest, unchanged.
    """
    shown = [
        f"{f.name}={getattr(spec, f.name)!r}"
        for f in dataclasses.fields(spec)
        if f.name not in widened or getattr(spec, f.name) != f.default
    ]
    return f"{type(spec).__name__}({', '.join(shown)})"


VARIATION_KINDS: Final[Mapping[str, str]] = {
    "name_swap": "given name and surname swapped",
    "dob_day_month_swap": "DOB day and month swapped",
    "dob_digit": "DOB one digit wrong (misread, not a keyboard typo)",
    "dob_typo": "DOB keyboard typo (one digit, a neighbouring key)",
    "dob_missing": "DOB missing",
    "surname_change": "surname changed (marriage, divorce)",
    "surname_part": "double surname recorded as one part",
    "nickname": "given name as a nickname or short form",
    "middle_name": "middle name in the given-name field",
    "move": "moved (other postcode and address)",
    "duplicate": "person held twice by the same partner",
}
"""The variations recorded per record (ground truth kept outside the partner files)."""

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
        dob_digit: One digit of the date of birth wrong, replaced by any other digit (a
            misread or misremembered date), distinct from the keyboard ``typo``; always a
            valid date.
        middle_name: A middle name written into the given-name field (``Mary Anne``, ``John
            Paul``): the same middle name of the same sex for a person in every partner.
        surname_part: A double surname (hyphenated or two words) recorded as one of its parts.

    The last three default to 0 and are left out of ``repr`` at 0, so that the presets made
    before they existed (and the fixed-seed digests of their output) are unchanged.
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
    dob_digit: float = 0.0
    middle_name: float = 0.0
    surname_part: float = 0.0

    def __post_init__(self) -> None:
        """Check that every scalar rate is a probability."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float | int) and not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name}: rate {value} is not between 0 and 1")

    def __repr__(self) -> str:
        """The fields, leaving out the widened rates (issue 13) while they are 0."""
        return repr_without_defaults(self, _WIDENED)


# Rates added when the generator was widened (issue 13): repr shows them only when set.
_WIDENED: Final = frozenset({"dob_digit", "middle_name", "surname_part"})


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

WIDE_TYPICAL: Final = dataclasses.replace(
    TYPICAL,
    nickname=0.08,
    surname_change=0.08,
    name_swap=0.02,
    dob_day_month_swap=0.02,
    missing=dataclasses.replace(TYPICAL.missing, date_of_birth=0.02),
    duplicate=0.04,
    dob_digit=0.02,
    middle_name=0.05,
    surname_part=0.3,
)
""":data:`TYPICAL` widened (issue 13): every variation the independent evaluation probed, at
rates seen in case-management data: names swapped 2%, day/month swapped 2%, one DOB digit
wrong 2% (plus the 1% keyboard typo), DOB missing 2%, surname changed 8% (women), nickname 8%,
middle name in the given-name field 5%, a double surname cut to one part 30% (of double
surnames), 4% of people held twice."""

WIDE_MESSY: Final = dataclasses.replace(
    MESSY,
    name_swap=0.04,
    dob_day_month_swap=0.04,
    missing=dataclasses.replace(MESSY.missing, date_of_birth=0.05),
    duplicate=0.08,
    dob_digit=0.04,
    middle_name=0.08,
    surname_part=0.4,
)
""":data:`MESSY` widened in the same way, at about twice :data:`WIDE_TYPICAL`'s rates."""

PRESETS: Final[Mapping[str, ErrorProfile]] = {
    "clean": CLEAN,
    "light": LIGHT,
    "typical": TYPICAL,
    "messy": MESSY,
    "wide-typical": WIDE_TYPICAL,
    "wide-messy": WIDE_MESSY,
}
"""The preset error profiles by name."""


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def _apply(
    values: ObjArray,
    rng: np.random.Generator,
    rate: float | FloatArray,
    func: Callable[[str, random.Random], str],
) -> BoolArray:
    """Apply ``func`` to each (non-missing) value with probability ``rate``, in place.

    Returns:
        Which values it changed.
    """
    r = random.Random(int(rng.integers(0, 2**63)))
    hits = np.flatnonzero(rng.random(len(values)) < rate)
    changed = np.zeros(len(values), dtype=bool)
    for i in hits.tolist():
        v = values[i]
        if v is not None:
            values[i] = func(v, r)
            changed[i] = values[i] != v
    return changed


def _middle_names(
    records: Mapping[str, ObjArray], female: BoolArray, population: pd.DataFrame
) -> list[str]:
    """Each record's person's middle name, drawn from their true values (same in every file)."""
    tables = tables_of(population)
    out = []
    for g, s, d, f in zip(
        records["given_name"], records["surname"], records["date_of_birth"], female, strict=True
    ):
        r = random.Random(zlib.crc32(f"{g}|{s}|{d}".encode()))
        names, cum = (tables.female, tables.female_cum) if f else (tables.male, tables.male_cum)
        out.append(str(r.choices(names.tolist(), cum_weights=cum)[0]))
    return out


def perturb(
    records: dict[str, ObjArray],
    female: BoolArray,
    profile: ErrorProfile,
    rng: np.random.Generator,
    population: pd.DataFrame,
    applied: dict[str, BoolArray] | None = None,
) -> None:
    """Introduce the profile's errors into canonical records (ISO dates, M/F), in place.

    Where ``records`` has a ``previous_surname`` array, a changed surname's old value is put
    there. ``applied``, if given, receives one boolean array per :data:`VARIATION_KINDS` kind
    (but ``duplicate``, which the extract knows): which records got that variation. A widened
    rate (``dob_digit``, ``middle_name``, ``surname_part``) draws no random numbers at 0.
    """
    tables = tables_of(population)
    m = len(female)
    given, surname = records["given_name"], records["surname"]
    seen: dict[str, BoolArray] = {} if applied is None else applied
    middle = _middle_names(records, female, population) if profile.middle_name > 0 else []

    # Life events: a surname change, a move.
    r = random.Random(int(rng.integers(0, 2**63)))
    change = np.flatnonzero(
        rng.random(m) < np.where(female, profile.surname_change, profile.surname_change / 10)
    )
    new = r.choices(tables.surnames.tolist(), cum_weights=tables.surname_cum, k=len(change))
    seen["surname_change"] = np.zeros(m, dtype=bool)
    previous = records.get("previous_surname")
    for i, other in zip(change.tolist(), new, strict=True):
        old = surname[i]
        if other == old:
            continue
        surname[i] = f"{old}-{other}" if r.random() < 0.2 and "-" not in old else other
        seen["surname_change"][i] = True
        if previous is not None:
            previous[i] = old
    r = random.Random(int(rng.integers(0, 2**63)))
    moves = np.flatnonzero(rng.random(m) < profile.move)
    pop_postcode = population["postcode"].to_numpy()
    pop_address = population["address_line"].to_numpy()
    for i in moves.tolist():
        j = r.randrange(len(pop_postcode))
        records["postcode"][i] = pop_postcode[j]
        street = STREET_OF.sub("", str(pop_address[j]))
        records["address_line"][i] = f"{r.randint(1, 200)} {street}"
    seen["move"] = np.zeros(m, dtype=bool)
    seen["move"][moves] = True

    def nickname(value: str, r: random.Random) -> str:
        entry = tables.nicknames.get(value.lower())
        if entry is None:
            return value
        return r.choices(entry[0], cum_weights=entry[1])[0]

    seen["nickname"] = _apply(given, rng, profile.nickname, nickname)
    seen["middle_name"] = np.zeros(m, dtype=bool)
    if profile.middle_name > 0:
        hit = np.flatnonzero(rng.random(m) < profile.middle_name)
        for i in hit.tolist():
            if given[i] is not None:
                given[i] = with_middle_name(given[i], middle[i])
                seen["middle_name"][i] = given[i].endswith(f" {middle[i]}")
    seen["surname_part"] = np.zeros(m, dtype=bool)
    if profile.surname_part > 0:
        seen["surname_part"] = _apply(surname, rng, profile.surname_part, surname_part)

    swap = np.flatnonzero(rng.random(m) < profile.name_swap)
    given[swap], surname[swap] = surname[swap].copy(), given[swap].copy()
    seen["name_swap"] = np.zeros(m, dtype=bool)
    seen["name_swap"][swap] = (given[swap] != surname[swap]).astype(bool)

    dob = records["date_of_birth"]
    seen["dob_day_month_swap"] = _apply(dob, rng, profile.dob_day_month_swap, swap_day_and_month)
    seen["dob_digit"] = np.zeros(m, dtype=bool)
    if profile.dob_digit > 0:
        seen["dob_digit"] = _apply(dob, rng, profile.dob_digit, dob_single_digit_error)
    seen["dob_typo"] = _apply(dob, rng, profile.typo.date_of_birth, dob_digit_typo)

    text = ("given_name", "surname", "postcode", "address_line", "ni_number")
    for f in text:
        _apply(records[f], rng, profile.typo.get(f), keyboard_typo)
    for f in text:
        _apply(records[f], rng, profile.ocr.get(f), ocr_confusion)
    for f in ("given_name", "surname"):
        _apply(records[f], rng, profile.accents, lambda v, _r: strip_accents(v))
    formatters: dict[str, Callable[[str, random.Random], str]] = {
        "given_name": name_format,
        "surname": name_format,
        "postcode": postcode_format,
        "address_line": address_format,
        "ni_number": ni_format,
    }
    for f, formatter in formatters.items():
        _apply(records[f], rng, profile.format.get(f), formatter)
    casers: dict[str, Callable[[str, random.Random], str]] = {
        "given_name": name_case,
        "surname": name_case,
        "postcode": lambda v, _r: v.lower(),
        "address_line": upper_or_lower,
        "ni_number": lambda v, _r: v.lower(),
    }
    for f, caser in casers.items():
        _apply(records[f], rng, profile.case.get(f), caser)
    _apply(records["sex"], rng, profile.sex_miscoded, lambda v, _r: "M" if v == "F" else "F")

    for f in PACE_FIELDS:
        missing = rng.random(m) < profile.missing.get(f)
        if f == "date_of_birth":
            seen["dob_missing"] = missing & np.array([v is not None for v in records[f]])
        records[f][missing] = None
