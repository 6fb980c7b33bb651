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

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DEFAULT_GRANTS",
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


class PolicyError(ValueError):
    """A policy that cannot apply to the project's parties."""


class Suppression(BaseModel):
    """Small-number suppression and rounding of released counts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_count: int = Field(
        default=10, ge=1, description="Counts from 1 to min_count - 1 are shown as '<min_count'."
    )
    round_to: int = Field(default=5, ge=1, description="Other counts are rounded to a multiple.")


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
        released ``count`` and ``only`` (entities held by exactly those parties).
    """
    n = len(parties)
    largest = n if n <= _ALL_COMBINATIONS_UP_TO else min(n, 3)
    rows: list[dict[str, object]] = []
    for size in range(1, largest + 1):
        for combo in itertools.combinations(range(n), size):
            want = sum(1 << p for p in combo)
            every = sum(c for m, c in mask_counts.items() if m & want == want)
            exact = mask_counts.get(want, 0)
            rows.append(
                {
                    "parties": [parties[p] for p in combo],
                    "count": suppress(every, rule),
                    "only": suppress(exact, rule),
                }
            )
    return rows
