"""Sharing policies: what each party of a project may fetch, and small-number suppression.

A policy grants each party a set of releases:

* ``mapping`` — the linkage IDs of the party's own rows;
* ``counts`` — overlap counts between parties and party combinations, suppressed and
  rounded as the policy says;
* ``flags:<party>`` — which of the party's own rows also appear in ``<party>``'s data.

``scores`` (the score histogram and the pairs near the threshold) is for the operator only
and cannot be granted to a party. A party not named in ``grants`` gets ``default_grants``,
which by default is ``mapping`` and ``counts`` (design.md).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "DEFAULT_GRANTS",
    "WITHHELD",
    "PolicyError",
    "SharingPolicy",
    "Suppression",
    "overlap_counts",
    "suppress",
]

DEFAULT_GRANTS: Final = ("mapping", "counts")
_PLAIN_GRANTS: Final = frozenset({"mapping", "counts"})
# Beyond this many parties only combinations of up to three are counted (2^n grows fast).
_ALL_COMBINATIONS_UP_TO: Final = 8
#: How an "only" figure is shown when releasing it would let a party work out a suppressed
#: one by subtraction (see :func:`overlap_counts`).
WITHHELD: Final = "withheld"


class PolicyError(ValueError):
    """A policy that cannot apply to the project's parties."""


class Suppression(BaseModel):
    """Small-number suppression and rounding of released counts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_count: int = Field(
        default=10, ge=1, description="Counts from 1 to min_count - 1 are shown as '<min_count'."
    )
    round_to: int = Field(
        default=5, ge=1,
        description="Other counts are rounded to a multiple; at least half of min_count "
        "(rounded up) when min_count > 1.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _rounding_hides_differences(self) -> Suppression:
        """Refuse rounding too fine for the suppression it accompanies.

        A suppressed figure is the difference of released ones (``only(A∩B)`` is
        ``count(A∩B) - count(A∩B∩C)``). Each rounded figure is off by less than
        ``round_to / 2``, so their difference is uncertain over ``2 * round_to - 1``
        values; that must span the ``min_count - 1`` values suppression hides, or the
        subtraction gives them away (with ``round_to`` 1, exactly).
        """
        if self.min_count > 1 and 2 * self.round_to - 1 < self.min_count - 1:
            raise ValueError(
                f"round_to must be at least {(self.min_count + 1) // 2} when min_count is "
                f"{self.min_count}: finer rounding lets a suppressed count "
                "be worked out by subtracting two released ones"
            )
        return self


class SharingPolicy(BaseModel):
    """Which releases each party may fetch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_grants: list[str] = Field(default_factory=lambda: list(DEFAULT_GRANTS))
    grants: dict[str, list[str]] = Field(
        default_factory=dict, description="Per-party grants, replacing the default."
    )
    suppression: Suppression = Field(default_factory=Suppression)

    def grants_for(self, party: str) -> frozenset[str]:
        """The releases ``party`` may fetch."""
        return frozenset(self.grants.get(party, self.default_grants))

    def check(self, parties: Sequence[str]) -> None:
        """Refuse grants that name unknown parties or releases (message says which)."""
        names = set(parties)
        for party in self.grants:
            if party not in names:
                raise PolicyError(f"policy.grants names {party!r}, which is not a party")
        for owner, granted in [("policy.default_grants", self.default_grants)] + [
            (f"policy.grants[{p!r}]", g) for p, g in self.grants.items()
        ]:
            for grant in granted:
                self._check_grant(owner, grant, names)

    @staticmethod
    def _check_grant(owner: str, grant: str, names: set[str]) -> None:
        if grant in _PLAIN_GRANTS:
            return
        if grant == "scores":
            raise PolicyError(f"{owner}: 'scores' is for the operator only")
        kind, _, other = grant.partition(":")
        if kind != "flags" or not other:
            raise PolicyError(
                f"{owner}: unknown release {grant!r} (expected mapping, counts or flags:<party>)"
            )
        if other not in names:
            raise PolicyError(f"{owner}: {grant!r} names {other!r}, which is not a party")


def suppress(count: int, rule: Suppression) -> int | str:
    """A count as released: 0 stays 0, 1 … min_count-1 become "<min_count", others rounded."""
    if count < 0:
        raise ValueError("counts are never negative")
    if count == 0:
        return 0
    if count < rule.min_count:
        return f"<{rule.min_count}"
    # Round half up (Python's round() would round half to even).
    return int((count + rule.round_to // 2) // rule.round_to * rule.round_to)


def overlap_counts(
    mask_counts: Mapping[int, int], parties: Sequence[str], rule: Suppression
) -> list[dict[str, object]]:
    """Entities found in every party of each combination, suppressed and rounded.

    Args:
        mask_counts: Number of entities per set of parties, the set as a bit mask
            (bit ``p`` set: the entity holds a record of party position ``p``).
        parties: Party names by position.
        rule: The project's suppression.

    Returns:
        One row per combination (single parties first, then pairs, …): ``parties``, the
        released ``count`` and ``only`` (entities held by exactly those parties), or
        :data:`WITHHELD` for ``only`` where it would give a suppressed figure away.
    """
    n = len(parties)
    largest = n if n <= _ALL_COMBINATIONS_UP_TO else min(n, 3)
    combos = [c for size in range(1, largest + 1) for c in itertools.combinations(range(n), size)]
    exact = {c: mask_counts.get(sum(1 << p for p in c), 0) for c in combos}
    # Complementary suppression. Every party knows its own record count exactly, and that is
    # the sum of the "only" figures of the combinations it belongs to. If one of them is
    # suppressed and the others released, the party subtracts and recovers it to within
    # the rounding, often exactly (49 records, "only A" shown as 50: the "<10" in A and B is
    # 1). So every "only" figure of a party in a suppressed combination is withheld.
    exposed = {p for c in combos if 0 < exact[c] < rule.min_count for p in c}
    rows: list[dict[str, object]] = []
    for combo in combos:
        want = sum(1 << p for p in combo)
        every = sum(c for m, c in mask_counts.items() if m & want == want)
        only = WITHHELD if exposed.intersection(combo) else suppress(exact[combo], rule)
        rows.append(
            {"parties": [parties[p] for p in combo], "count": suppress(every, rule), "only": only}
        )
    return rows
