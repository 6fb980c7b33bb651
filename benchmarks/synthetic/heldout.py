"""The held-out population: other names, ages and places, never used to choose a parameter.

Every threshold, weight and schema of pacelink was chosen on the standard population
(:data:`~benchmarks.synthetic.population.STANDARD`). A tuned parameter can fit the name
frequencies it was tuned on: common names agree by chance more often, rare ones less. The
held-out population is drawn from independently built tables, so that quality measured on it
says how a setting carries over to data it has not seen:

* given names from Faker's ``en_US`` and ``en_NZ`` tables (their own frequencies, half each;
  names both lists give to the other sex left out), not ``en_GB``'s Zipf ranks nor the
  Scottish, Irish, Polish and South-Asian additions;
* surnames from ``en_US`` (45%), ``en_NZ`` (35%) and ``en_GB`` (20%, with flattened weights:
  the square root of its frequencies, so rare names are commoner), none of the Scottish table;
* four times as many double-barrelled surnames (6% rather than 1.5%);
* a younger age profile (a bulge in the twenties and thirties rather than the fifties);
* households weighted towards the rural and small-town postcode areas rather than Glasgow and
  Edinburgh;
* its own random stream (:data:`~benchmarks.synthetic.streams.STREAM_HELD_OUT`): another
  draw even for the same ``--seed``; a ``-held-out`` scenario also draws its extracts with
  another seed (:data:`~benchmarks.synthetic.scenarios.HELD_OUT_SEED_OFFSET`).

It is **held out: never used to choose a parameter**. Report on it; do not tune on it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Final

import numpy as np
import pandas as pd
from faker.providers.person.en_GB import Provider as _FakerGB
from faker.providers.person.en_NZ import Provider as _FakerNZ
from faker.providers.person.en_US import Provider as _FakerUS

from benchmarks.synthetic.names import NameTables, name_tables, nickname_table, normalised
from benchmarks.synthetic.population import AREAS, POPULATION_ATTR, STANDARD, PopulationStyle
from benchmarks.synthetic.streams import STREAM_HELD_OUT

__all__ = [
    "HELD_OUT",
    "POPULATIONS",
    "held_out_tables",
    "tables_of",
]

_DOUBLE_BARRELLED_SHARE: Final = 0.06
_AGE_BANDS: Final[tuple[tuple[int, int, float], ...]] = (
    (16, 19, 1.00), (20, 24, 1.30), (25, 29, 1.40), (30, 34, 1.30), (35, 39, 1.10),
    (40, 44, 0.95), (45, 49, 0.85), (50, 54, 0.75), (55, 59, 0.65), (60, 64, 0.55),
    (65, 66, 0.50),
)  # fmt: skip
# City areas a third as heavy, rural and small-town areas twice as heavy as in the standard.
_CITIES: Final = frozenset({"G", "EH", "AB", "DD"})
_AREA_WEIGHTS: Final[Mapping[str, float]] = {
    a: w / 3 if a in _CITIES else w * 2 for a, w, _ in AREAS
}


def _mixed(sources: list[tuple[Mapping[str, float], float]]) -> dict[str, float]:
    """Several weighted name lists mixed with the given shares (each list normalised first)."""
    out: dict[str, float] = {}
    for names, share in sources:
        total = float(sum(names.values()))
        for name, weight in names.items():
            if name.isalpha():
                out[name] = out.get(name, 0.0) + share * float(weight) / total
    return out


@functools.cache
def held_out_tables() -> NameTables:
    """The held-out population's name tables (built once; see the module's description)."""
    male = _mixed([(_FakerUS.first_names_male, 0.5), (_FakerNZ.first_names_male, 0.5)])
    female = _mixed([(_FakerUS.first_names_female, 0.5), (_FakerNZ.first_names_female, 0.5)])
    for name in set(male) & set(female):  # a name given to both sexes: the sex must follow
        del male[name], female[name]
    flat_gb = {k: float(v) ** 0.5 for k, v in _FakerGB.last_names.items()}
    surnames = _mixed([(_FakerUS.last_names, 0.45), (_FakerNZ.last_names, 0.35), (flat_gb, 0.20)])
    surname_p = normalised(list(surnames.values()))
    male_p = normalised(list(male.values()))
    female_p = normalised(list(female.values()))
    return NameTables(
        male=np.array(list(male), dtype=object),
        male_p=male_p,
        female=np.array(list(female), dtype=object),
        female_p=female_p,
        surnames=np.array(list(surnames), dtype=object),
        surname_p=surname_p,
        surname_cum=tuple(np.cumsum(surname_p).tolist()),
        male_cum=tuple(np.cumsum(male_p).tolist()),
        female_cum=tuple(np.cumsum(female_p).tolist()),
        nicknames=nickname_table(male, female),
    )


HELD_OUT: Final = PopulationStyle(
    name="held-out",
    tables=held_out_tables,
    double_barrelled_share=_DOUBLE_BARRELLED_SHARE,
    age_bands=_AGE_BANDS,
    area_weights=_AREA_WEIGHTS,
    stream=STREAM_HELD_OUT,
)
"""The held-out population's style: held out, never used to choose a parameter."""

POPULATIONS: Final[Mapping[str, PopulationStyle]] = {"standard": STANDARD, "held-out": HELD_OUT}
"""The population styles by name."""


def tables_of(population: pd.DataFrame) -> NameTables:
    """The name tables a population was drawn from (those of its style; standard if unknown)."""
    style = POPULATIONS.get(str(population.attrs.get(POPULATION_ATTR, "standard")))
    return style.tables() if style else name_tables()
