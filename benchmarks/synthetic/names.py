"""Name tables the population is drawn from: weighted given names and surnames, and nicknames.

The standard tables are Faker's ``en_GB`` lists (Zipf-weighted given names, per-cent surname
shares) with a Scottish, Irish, Polish and South-Asian table written here, and a long tail of
Faker ``en_IE`` surnames; nicknames come from the ``nicknames`` package. The held-out
population's tables are built in :mod:`~benchmarks.synthetic.heldout` with
:func:`nickname_table` and :func:`normalised`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from faker.providers.person.en_GB import Provider as _FakerPerson
from faker.providers.person.en_IE import Provider as _FakerIrishPerson
from nicknames import NickNamer

__all__ = [
    "FloatArray",
    "NameTables",
    "ObjArray",
    "name_tables",
    "nickname_table",
    "normalised",
]

ObjArray = npt.NDArray[np.object_]
FloatArray = npt.NDArray[np.float64]

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


@dataclass(frozen=True)
class NameTables:
    """Weighted name lists the population is drawn from, and each given name's variants."""

    male: ObjArray
    male_p: FloatArray
    female: ObjArray
    female_p: FloatArray
    surnames: ObjArray
    surname_p: FloatArray
    surname_cum: tuple[float, ...]
    male_cum: tuple[float, ...]
    female_cum: tuple[float, ...]
    # lower-case given name -> (replacement names, cumulative weights)
    nicknames: Mapping[str, tuple[tuple[str, ...], tuple[float, ...]]]


def normalised(weights: Sequence[float]) -> FloatArray:
    """Weights scaled to sum to 1."""
    w = np.asarray(weights, dtype=np.float64)
    p: FloatArray = w / w.sum()
    return p


@functools.cache
def name_tables() -> NameTables:
    """The name tables (built once): Faker's lists and ours, weighted, and nicknames."""
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
    surname_p = normalised(list(surname_w.values()))

    return NameTables(
        male=np.array(male_names, dtype=object),
        male_p=normalised(male_w),
        female=np.array(female_names, dtype=object),
        female_p=normalised(female_w),
        surnames=np.array(surnames, dtype=object),
        surname_p=surname_p,
        surname_cum=tuple(np.cumsum(surname_p).tolist()),
        male_cum=tuple(np.cumsum(normalised(male_w)).tolist()),
        female_cum=tuple(np.cumsum(normalised(female_w)).tolist()),
        nicknames=nickname_table(
            dict(zip(male_names, male_w, strict=True)),
            dict(zip(female_names, female_w, strict=True)),
        ),
    )


def nickname_table(
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
