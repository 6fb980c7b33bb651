"""Turn candidate pairs into matches: one-to-one for two parties, entities for N parties.

Candidate pairs are what :func:`linkage_unit.matching.similarity.dice_candidates` returns:
three equal-length arrays ``(i, j, score)``, row ``i`` of one party, row ``j`` of another
and their Dice coefficient.  Solving decides which of them are accepted as matches.

Two parties: :func:`greedy_solve_two`
-------------------------------------
The greedy one-to-one assignment: pairs are visited by descending score and a pair is
accepted when neither of its records has been accepted before.  It accepts exactly the
pairs that ``anonlink.solving.greedy_solve`` accepts on the same candidates.

Tie-breaking (how anonlink does it, and so how we do it).  anonlink's solver does not sort:
it walks the candidates *in the order it is given them*.  That order is fixed by
``anonlink.candidate_generation.find_candidate_pairs``, which sorts by
``(-score, dataset_a, dataset_b, row_a, row_b)`` (``dice_coefficient_accelerated`` sorts its
output by descending score with a stable mergesort over pairs generated in ``(i, j)``
order, and ``_merge_similarities`` merges blocks with that key).  So among pairs with equal
scores, the one with the smaller row of the first party wins, then the one with the smaller
row of the second party.  On two-party candidates anonlink's group-merging rule (merge two
groups only when every cross pair has been seen) never merges anything but two unmatched
records, which is why a single pass with two "taken" arrays reproduces it exactly.

N parties: :func:`cluster`
--------------------------
Candidate pairs between every pair of parties are merged into one list and visited by
descending score (ties: by ``(party_a, row_a, party_b, row_b)`` ascending).  Each record
starts as its own entity; a pair joins the two entities of its records (union-find) unless
that is forbidden:

* ``duplicates="forbid"`` (the default): an entity holds at most one record per party.  A
  merge that would put two records of the same party into one entity is refused; the pair is
  skipped.  Every component keeps the set of parties it holds (a 64-bit mask per 64
  parties), so the check costs a few word operations.  With two parties this gives exactly
  the pairs of :func:`greedy_solve_two`.
* ``duplicates="linked"``: as ``"forbid"``, except that a within-party candidate pair
  (key ``(p, p)``: two records of party ``p`` that match each other, a partner's duplicate
  clients) may join two entities that share party ``p`` and no other.  Two records of one
  party therefore share an entity only through a chain of their own pairs, never through
  another party's records, so single linkage cannot chain unrelated people together.
  On the synthetic scenarios, whose partner files hold 2 to 5 % duplicate clients, this
  raised pairwise F1 by one to two points (``python -m benchmarks.quality``).
* ``duplicates="allow"``: no party constraint; entities are the connected components of the
  candidate graph (single linkage), so two records of the same party can share an entity,
  either through a within-party candidate pair (key ``(p, p)``) or through records of other
  parties.  Use it when a partner's file is known to hold duplicate clients (the same person
  registered twice) and those should be reported as one entity.  Single linkage chains: one
  spurious pair joins two whole entities, so prefer a higher threshold with this option and
  review large entities.

Unlike anonlink's N-party ``greedy_solve``, :func:`cluster` does not require every pair of
records in an entity to be a candidate; a record joins an entity through its best pair.

Everything is deterministic: the same candidates give the same result, independent of the
order in which the ``candidates_by_pair`` mapping lists its keys.  The passes are compiled
with numba and take a few seconds for tens of millions of candidates, most of it sorting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, cast, get_args

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray

from linkage_unit.matching.agglomeration import (
    greedy_union,
    labels_by_first_appearance,
    order_by_score,
    party_masks,
)
from linkage_unit.matching.candidates import Candidates, CandidatesLike

__all__ = [
    "DEFAULT_DUPLICATES",
    "Duplicates",
    "Groups",
    "check_duplicates",
    "cluster",
    "greedy_solve_two",
]

#: How :func:`cluster` treats several records of one party in one entity.
Duplicates = Literal["forbid", "linked", "allow"]

#: What projects and `pacelink link` do unless told otherwise. Partners' lists hold the same
#: client twice (re-registrations, typos in an ID): with "forbid" the second record of a
#: person can join no entity, so every pair through it is lost. "linked" keeps them when the
#: two records match each other, and measured better on every synthetic scenario, held-out
#: population included (docs/threshold-and-blocking.md). The library functions keep
#: anonlink's one-to-one "forbid" as their default.
DEFAULT_DUPLICATES: Final = "linked"


def check_duplicates(duplicates: object) -> Duplicates:
    """``duplicates`` as a :data:`Duplicates` value.

    Raises:
        ValueError: If it is not one of the three.
    """
    if isinstance(duplicates, str) and duplicates in get_args(Duplicates):
        return cast(Duplicates, duplicates)
    raise ValueError(f'duplicates must be "forbid", "linked" or "allow", got {duplicates!r}')


# --------------------------------------------------------------------------- kernels


@njit(cache=True, nogil=True)
def _greedy_two_pass(
    i: NDArray[np.int64],
    j: NDArray[np.int64],
    order: NDArray[np.int64],
    n_a: int,
    n_b: int,
) -> NDArray[np.int64]:  # pragma: no cover - compiled
    taken_a = np.zeros(n_a, dtype=np.bool_)
    taken_b = np.zeros(n_b, dtype=np.bool_)
    limit = min(n_a, n_b)
    keep = np.empty(min(len(order), limit), dtype=np.int64)
    k = 0
    for t in range(len(order)):
        e = order[t]
        a = i[e]
        b = j[e]
        if not taken_a[a] and not taken_b[b]:
            taken_a[a] = True
            taken_b[b] = True
            keep[k] = e
            k += 1
            if k == limit:
                break
    return keep[:k]


# --------------------------------------------------------------------------- two parties


def greedy_solve_two(i: ArrayLike, j: ArrayLike, score: ArrayLike) -> Candidates:
    """Greedy one-to-one matching of two parties' records from their candidate pairs.

    Pairs are visited by descending score, ties by ascending ``i`` and then ascending
    ``j`` (anonlink's order, see the module docstring); a pair is accepted when neither
    record has been matched yet.  The accepted pairs are exactly those of
    ``anonlink.solving.greedy_solve`` given the same candidates in anonlink's format.

    Args:
        i: Row indices into the first party's records (non-negative integers).
        j: Row indices into the second party's records, same length as ``i``.
        score: Similarity of each pair (finite), same length as ``i``.  Pairs need not be
            sorted; duplicated pairs are harmless.

    Returns:
        ``(i, j, score)`` of the accepted pairs as int64, int64, float64 arrays, in the
        order they were accepted (descending score, then ``i``, then ``j``).  Every row of
        either party appears at most once.

    Raises:
        ValueError: If the arrays differ in length or are not 1-D, an index is negative or
            a score is not finite.
    """
    ii, jj, ss = Candidates.checked((i, j, score), "greedy_solve_two")
    if not len(ii):
        return Candidates.empty()
    n_a = int(ii.max()) + 1
    n_b = int(jj.max()) + 1
    order = order_by_score(ss, ii * n_b + jj)
    keep = _greedy_two_pass(ii, jj, order, n_a, n_b)
    return Candidates(ii[keep], jj[keep], ss[keep])


# --------------------------------------------------------------------------- N parties


@dataclass(frozen=True, eq=False)
class Groups:
    """Every record of every party, with the entity it belongs to.

    Rows are ordered by ``(party, row)``: all records of party 0, then party 1, and so on.
    Entity labels are ``0..n_entities-1``, numbered in order of first appearance in that
    order, so they are deterministic.  Records that matched nothing are entities of their
    own (singletons).

    Attributes:
        party: Party of each record (int64).
        row: Row of each record within its party (int64).
        entity: Entity label of each record (int64, ``0..n_entities-1``).
    """

    party: NDArray[np.int64]
    row: NDArray[np.int64]
    entity: NDArray[np.int64]

    @property
    def n_entities(self) -> int:
        """Number of entities, singletons included."""
        return int(self.entity.max()) + 1 if len(self.entity) else 0

    def entity_of(self, party: int) -> NDArray[np.int64]:
        """Entity label of each record of ``party``, indexed by row."""
        labels: NDArray[np.int64] = self.entity[self.party == party]
        return labels

    def sizes(self) -> NDArray[np.int64]:
        """Number of records in each entity, indexed by entity label."""
        return np.bincount(self.entity, minlength=self.n_entities).astype(np.int64)


def cluster(
    candidates_by_pair: Mapping[tuple[int, int], CandidatesLike],
    sizes: Sequence[int],
    *,
    duplicates: Duplicates = "forbid",
) -> Groups:
    """Group the records of N parties into entities by greedy agglomeration.

    Candidate pairs of all party pairs are visited together by descending score (ties by
    ``(party_a, row_a, party_b, row_b)`` ascending).  Each pair merges the entities of its
    two records unless they already are one, or ``duplicates="forbid"`` and the merged
    entity would hold two records of the same party.  See the module docstring for when
    to use ``duplicates="allow"``.

    Args:
        candidates_by_pair: For a pair of parties ``(a, b)`` with ``a < b``, the candidate
            pairs ``(i, j, score)`` between row ``i`` of party ``a`` and row ``j`` of party
            ``b`` (as :func:`dice_candidates` returns them).  A key ``(p, p)`` gives
            within-party candidates; they can only merge anything with
            ``duplicates="linked"`` or ``"allow"``, and pairs with ``i == j`` are ignored.
            Missing party pairs have no candidates.
        sizes: Number of records of each party; parties are ``0..len(sizes)-1``.
        duplicates: ``"forbid"`` (at most one record per party per entity), ``"linked"``
            (a party's records share an entity only through their own pairs) or
            ``"allow"``.

    Returns:
        A :class:`Groups` with every record of every party.

    Raises:
        ValueError: On a bad key, an index outside its party's size, mismatched arrays or
            an unknown ``duplicates`` value.
    """
    check_duplicates(duplicates)
    n_per_party = np.asarray([int(s) for s in sizes], dtype=np.int64)
    if len(n_per_party) and n_per_party.min() < 0:
        raise ValueError("sizes must be non-negative")
    n_parties = len(n_per_party)
    offsets = np.zeros(n_parties + 1, dtype=np.int64)
    np.cumsum(n_per_party, out=offsets[1:])
    n = int(offsets[-1])

    us: list[NDArray[np.int64]] = []
    vs: list[NDArray[np.int64]] = []
    scores: list[NDArray[np.float64]] = []
    owns: list[NDArray[np.int64]] = []
    for key in sorted(candidates_by_pair):
        a, b = int(key[0]), int(key[1])
        if not (0 <= a <= b < n_parties):
            raise ValueError(f"bad party pair {key!r}: need 0 <= a <= b < {n_parties}")
        i, j, s = Candidates.checked(candidates_by_pair[key], f"candidates {key!r}")
        if len(i) and (i.max() >= n_per_party[a] or j.max() >= n_per_party[b]):
            raise ValueError(f"candidates {key!r}: row index outside the party's size")
        if a == b:
            if duplicates == "forbid":
                continue
            keep = i != j
            i, j, s = i[keep], j[keep], s[keep]
        us.append(i + offsets[a])
        vs.append(j + offsets[b])
        scores.append(s)
        owns.append(np.full(len(i), a if a == b else -1, dtype=np.int64))

    party = np.repeat(np.arange(n_parties, dtype=np.int64), n_per_party)
    row = np.arange(n, dtype=np.int64) - offsets[party]
    if us:
        u = np.concatenate(us)
        v = np.concatenate(vs)
        sc = np.concatenate(scores)
        own = np.concatenate(owns)
    else:
        u = np.zeros(0, dtype=np.int64)
        v = np.zeros(0, dtype=np.int64)
        sc = np.zeros(0, dtype=np.float64)
        own = np.zeros(0, dtype=np.int64)
    # Within-party pairs may come as (j, i); put the smaller node first for the tie order.
    lo = np.minimum(u, v)
    hi = np.maximum(u, v)
    order = order_by_score(sc, lo * max(n, 1) + hi)
    forbid = duplicates != "allow"
    masks = (
        party_masks(np.arange(n, dtype=np.int64), party, n, n_parties)
        if forbid
        else np.zeros((n, 1), dtype=np.uint64)
    )
    anchored = np.zeros(n, dtype=np.bool_)
    roots, _ = greedy_union(lo, hi, order, masks, anchored, forbid, True, own)
    return Groups(party=party, row=row, entity=labels_by_first_appearance(roots))
