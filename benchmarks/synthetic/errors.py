"""Single-value errors and variations: typos, OCR confusions, formats, names, dates of birth.

Each function takes one canonical value (ISO date, ``M``/``F``, a name as the population holds
it) and a :class:`random.Random`, and returns the varied value, or the value itself where the
error cannot apply. :mod:`~benchmarks.synthetic.variation` decides which records get which.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Final

from benchmarks.synthetic.population import REFERENCE_DATE

__all__ = [
    "STREET_OF",
    "address_format",
    "dob_digit_typo",
    "dob_single_digit_error",
    "keyboard_typo",
    "name_case",
    "name_format",
    "ni_format",
    "ocr_confusion",
    "postcode_format",
    "strip_accents",
    "surname_part",
    "swap_day_and_month",
    "upper_or_lower",
    "with_middle_name",
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


def ocr_confusion(value: str, r: random.Random) -> str:
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


def strip_accents(value: str) -> str:
    """The value with accents dropped (Seán -> Sean, Łukasz -> Lukasz)."""
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


def name_case(value: str, r: random.Random) -> str:
    """A name in upper or lower case, or with inner capitals lost (``Mcdonald``)."""
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


def upper_or_lower(value: str, r: random.Random) -> str:
    """The value in upper or lower case (whichever differs from it)."""
    return _differing(value, (value.upper(), value.lower()), r)


def name_format(value: str, r: random.Random) -> str:
    """Punctuation lost or spaced (``ONeill``, ``Smith Jones``, ``Mc Donald``), or a stray space."""
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


def postcode_format(value: str, r: random.Random) -> str:
    """A postcode without its space, or with two."""
    compact = value.replace(" ", "")
    if r.random() < 0.8:
        return compact
    return f"{compact[:-3]}  {compact[-3:]}"


_ADDRESS_RE: Final = re.compile(r"^(?:(Flat [^,]+), )?(\d+) (.*)$")


def address_format(value: str, r: random.Random) -> str:
    """An address line with a comma after the number or its street type abbreviated."""
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


def ni_format(value: str, r: random.Random) -> str:
    """An NI number spaced in pairs, without its suffix letter, or with it spaced."""
    roll = r.random()
    if roll < 0.5:
        return f"{value[:2]} {value[2:4]} {value[4:6]} {value[6:8]} {value[8:]}"
    if roll < 0.8:
        return value[:8]
    return f"{value[:8]} {value[8:]}"


STREET_OF: Final = re.compile(r"^(?:Flat [^,]+, )?\d+ ")


def dob_single_digit_error(value: str, r: random.Random) -> str:
    """One digit of an ISO date wrong (any other digit, not a neighbouring key), still valid.

    A digit of the year's last two, the month or the day is replaced by a uniformly drawn other
    digit, as when a date is misread or misremembered rather than mistyped; the result is
    always a valid date no later than :data:`REFERENCE_DATE` (a birth date in the future
    would be refused, not linked), otherwise the value is returned unchanged.
    """
    for _ in range(20):
        i = r.choice((2, 3, 5, 6, 8, 9))
        new = r.choice([d for d in "0123456789" if d != value[i]])
        candidate = value[:i] + new + value[i + 1 :]
        try:
            if dt.date.fromisoformat(candidate) > REFERENCE_DATE:
                continue
        except ValueError:
            continue
        return candidate
    return value


def with_middle_name(value: str, middle: str) -> str:
    """A given name with a middle name written into the same field (``Mary Anne``)."""
    if not middle or middle.lower() == value.lower():
        return value
    return f"{value} {middle}"


def surname_part(value: str, r: random.Random) -> str:
    """A double (hyphenated or two-word) surname recorded as one of its parts.

    ``Smith-Jones`` becomes ``Smith`` (two times in three) or ``Jones``; a single surname is
    returned unchanged.
    """
    parts = [p for p in re.split(r"[- ]", value) if p]
    if len(parts) < 2:
        return value
    return parts[0] if r.random() < 2 / 3 else parts[-1]
