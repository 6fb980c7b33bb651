"""Named scenarios: a population and what each partner delivers, batch by batch."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pandas as pd

from benchmarks.synthetic.extracts import (
    format_ids,
    id_numbers,
    make_extract,
    render_records,
    with_duplicates,
)
from benchmarks.synthetic.heldout import HELD_OUT
from benchmarks.synthetic.partners import PartnerSpec, partner_catalogue, spec_named
from benchmarks.synthetic.population import TRUTH_COLUMN, BoolArray, generate_population
from benchmarks.synthetic.streams import (
    STREAM_ARRIVALS,
    STREAM_INCREMENTAL,
    random_stream,
    spawn_streams,
)

__all__ = [
    "HELD_OUT_SEED_OFFSET",
    "HELD_OUT_SUFFIX",
    "INCREMENTAL_NEW_SHARE",
    "INCREMENTAL_UPDATE_SHARE",
    "SCENARIOS",
    "Scenario",
    "make_scenario",
]

INCREMENTAL_NEW_SHARE: Final = 0.25
"""Incremental scenario: share of the population that first appears in batch 2."""
INCREMENTAL_UPDATE_SHARE: Final = 0.10
"""Incremental scenario: share of each partner's batch-1 records re-delivered in batch 2."""


@dataclass(frozen=True, eq=False)
class Scenario:
    """A population and the files its partners deliver.

    Attributes:
        name: Scenario name.
        population: The true population (see :func:`generate_population`).
        partners: The partners' specifications.
        batches: For each partner, its deliveries in order; one for a single-delivery scenario.
        variations: For each partner and delivery, which variations each record got (see
            :func:`~benchmarks.synthetic.extracts.variation_flags`; same row order).
    """

    name: str
    population: pd.DataFrame
    partners: tuple[PartnerSpec, ...]
    batches: dict[str, list[pd.DataFrame]]
    variations: dict[str, list[pd.DataFrame]] = field(default_factory=dict)

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
        return spec_named(self.partners, name)

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


HELD_OUT_SUFFIX: Final = "-held-out"
"""A scenario name with this suffix: the same partners on the held-out population."""
HELD_OUT_SEED_OFFSET: Final = 1_000_003
"""A held-out scenario draws its extracts (coverage, errors, arrivals) with ``seed`` + this."""

_HETEROGENEOUS: Final = (
    "wide_skills_agency", "wide_benefits_dept", "council_no_sex", "union_learning",
    "community_referrals",
)  # fmt: skip


def _scenario_partners(name: str) -> tuple[PartnerSpec, ...]:
    cat = partner_catalogue()
    name = name.removesuffix(HELD_OUT_SUFFIX)
    if name == "heterogeneous":
        return tuple(cat[p] for p in _HETEROGENEOUS)
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
    "heterogeneous": (
        "five partners, three lacking columns: skills agency, benefits department (with a "
        "previous-surname column), a council extract without sex, a union-learning list "
        "without postcode, community referrals with names, date of birth and sex only; "
        "widened variation rates (wide-typical / wide-messy) and within-partner duplicates"
    ),
    "heterogeneous-held-out": "heterogeneous, on the held-out population",
    "two-party-held-out": "two-party, on the held-out population",
    "five-party-held-out": "five-party, on the held-out population",
    "incremental-held-out": "incremental, on the held-out population",
}
"""Scenario names and what each holds."""


def make_scenario(name: str, n_people: int, seed: int) -> Scenario:
    """Build a named scenario: a population and its partners' extracts.

    A name ending in :data:`HELD_OUT_SUFFIX` draws the population from
    :data:`~benchmarks.synthetic.heldout.HELD_OUT` (held out, never used to choose a parameter)
    and the extracts with ``seed`` + :data:`HELD_OUT_SEED_OFFSET`.

    Args:
        name: One of :data:`SCENARIOS`.
        n_people: Population size.
        seed: Random seed; the same arguments give identical scenarios.

    Returns:
        The scenario. Every extract carries :data:`TRUTH_COLUMN`.

    Raises:
        ValueError: Unknown scenario name.
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    partners = _scenario_partners(name)
    held_out = name.endswith(HELD_OUT_SUFFIX)
    population = generate_population(n_people, seed, HELD_OUT if held_out else None)
    if held_out:
        # Who each partner holds and which records get which errors: other draws too, so
        # that nothing but the seed the user gives is shared with the tuned scenarios.
        seed += HELD_OUT_SEED_OFFSET
    variations: dict[str, list[pd.DataFrame]] = {s.name: [] for s in partners}
    if name.removesuffix(HELD_OUT_SUFFIX) == "incremental":
        late = _late_arrivals(len(population), seed)
        batches = {
            s.name: _incremental_batches(population, s, seed, late, variations[s.name])
            for s in partners
        }
    else:
        batches = {
            s.name: [make_extract(population, s, seed, variations=variations[s.name])]
            for s in partners
        }
    return Scenario(name, population, partners, batches, variations)


def _late_arrivals(n: int, seed: int) -> BoolArray:
    rng = random_stream(seed, STREAM_ARRIVALS)
    late = np.zeros(n, dtype=bool)
    late[rng.choice(n, size=round(INCREMENTAL_NEW_SHARE * n), replace=False)] = True
    return late


def _incremental_batches(
    population: pd.DataFrame,
    spec: PartnerSpec,
    seed: int,
    late: BoolArray,
    variations: list[pd.DataFrame],
) -> list[pd.DataFrame]:
    """Two deliveries: batch 1 (people already there), batch 2 (new people and updates).

    Updated records keep their batch-1 local ID and are re-rendered from the truth with fresh
    errors, and with at least a 30% chance of a move and 10% of a surname change (women).
    New people's local IDs are all higher than batch 1's, as a register allocates them.
    """
    select, ids, render1, render2, render3, order = spawn_streams(
        random_stream(seed, STREAM_INCREMENTAL, spec.name), 6
    )
    n = len(population)
    people = np.sort(select.choice(n, size=round(spec.coverage * n), replace=False))
    people = people.astype(np.int64)
    rows1 = with_duplicates(select, people[~late[people]], spec.profile.duplicate)
    rows2 = with_duplicates(select, people[late[people]], spec.profile.duplicate)
    updated = np.sort(
        select.choice(len(rows1), size=round(INCREMENTAL_UPDATE_SHARE * len(rows1)), replace=False)
    )

    numbers, width = id_numbers(ids, len(rows1) + len(rows2))
    ids1 = format_ids(spec.id_prefix, ids.permutation(numbers[: len(rows1)]), width)
    ids2 = format_ids(spec.id_prefix, ids.permutation(numbers[len(rows1) :]), width)

    profile = spec.profile
    update_profile = dataclasses.replace(
        profile,
        move=max(profile.move, 0.3),
        surname_change=max(profile.surname_change, 0.1),
    )
    flags: list[pd.DataFrame] = []
    batch1 = render_records(population, spec, rows1, ids1, render1, variations=flags)
    new_people = render_records(population, spec, rows2, ids2, render2, variations=flags)
    ids_updated = [ids1[i] for i in updated.tolist()]
    updates = render_records(
        population,
        spec,
        rows1[updated],
        ids_updated,
        render3,
        profile=update_profile,
        variations=flags,
    )
    batch2 = pd.concat([new_people, updates], ignore_index=True)
    flags2 = pd.concat(flags[1:], ignore_index=True)
    out = []
    for frame, flag in ((batch1, flags[0]), (batch2, flags2)):
        permutation = order.permutation(len(frame))  # as shuffled() draws it
        variations.append(flag.iloc[permutation].reset_index(drop=True))
        out.append(frame.iloc[permutation].reset_index(drop=True))
    return out
