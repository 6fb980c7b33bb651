"""Match quality of a linkage against ground truth: pairwise and exact-cluster measures.

The demo (``pacelink demo``) and the benchmarks (``python -m benchmarks.quality`` and the
others) measure with these functions, so their figures are defined once:

* pairwise: a pair is two records of *different* files (parties); predicted pairs are those
  in one predicted entity, true pairs those of one person, correct pairs those that are both;
* cluster: a predicted entity is correct when it holds exactly the records of one person
  (singletons included); precision = correct / predicted entities, recall = correct / people.

Every record is given as three parallel integer labels: its party, its true person and its
predicted entity (labels need not be contiguous).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["Metrics", "cluster_metrics", "evaluate", "pairwise_metrics"]

I64 = NDArray[np.int64]


@dataclass(frozen=True)
class Metrics:
    """Pairwise and cluster quality of one linkage.

    Attributes:
        precision: Pairwise precision (pairs of records of different files).
        recall: Pairwise recall.
        f1: Pairwise F1.
        cluster_precision: Exact-cluster precision.
        cluster_recall: Exact-cluster recall.
        cluster_f1: Exact-cluster F1.
        true_pairs: Cross-file pairs of records of one person.
        predicted_pairs: Cross-file pairs of records in one predicted entity.
        correct_pairs: Pairs that are both.
    """

    precision: float
    recall: float
    f1: float
    cluster_precision: float
    cluster_recall: float
    cluster_f1: float
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int

    def as_dict(self) -> dict[str, float | int]:
        """The fields as a dict (for JSON)."""
        return dict(self.__dict__)


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _combined(*labels: I64) -> I64:
    """One label per distinct combination of the given labels."""
    if len(labels[0]) == 0:
        return np.zeros(0, dtype=np.int64)
    _, inverse = np.unique(np.stack(labels, axis=1), axis=0, return_inverse=True)
    return np.asarray(inverse, dtype=np.int64).reshape(-1)


def _pairs_within(groups: I64) -> int:
    """Pairs of records that share a group label."""
    _, size = np.unique(groups, return_counts=True)
    size = size.astype(np.int64)
    return int((size * (size - 1)).sum()) // 2


def _cross_pairs(groups: I64, party: I64) -> int:
    """Pairs of records of different parties that share a group label."""
    return _pairs_within(groups) - _pairs_within(_combined(groups, party))


def pairwise_metrics(
    party: I64, person: I64, entity: I64
) -> tuple[float, float, float, int, int, int]:
    """Pairwise precision, recall, F1 and the counts (true, predicted, correct).

    Args:
        party: File of each record.
        person: True person of each record.
        entity: Predicted entity of each record.

    Returns:
        ``(precision, recall, f1, true_pairs, predicted_pairs, correct_pairs)``; precision
        is 1 when nothing is predicted, recall 1 when nothing is true.
    """
    party, person, entity = (np.asarray(a, dtype=np.int64) for a in (party, person, entity))
    true = _cross_pairs(person, party)
    predicted = _cross_pairs(entity, party)
    # A correct pair shares both its entity and its person: label the combination.
    correct = _cross_pairs(_combined(entity, person), party)
    precision = correct / predicted if predicted else 1.0
    recall = correct / true if true else 1.0
    return precision, recall, _f1(precision, recall), true, predicted, correct


def cluster_metrics(person: I64, entity: I64) -> tuple[float, float, float]:
    """Exact-cluster precision, recall and F1 (singletons included).

    A predicted entity is correct when its records are exactly one person's records.

    Args:
        person: True person of each record.
        entity: Predicted entity of each record.

    Returns:
        ``(precision, recall, f1)``; precision and recall are 1 when there are no records.
    """
    person, entity = (np.asarray(a, dtype=np.int64) for a in (person, entity))
    people, person_size = np.unique(person, return_counts=True)
    entities = np.unique(entity)
    # An entity is correct when all its records belong to one person (one combination
    # per entity) and that person has no records elsewhere (same size).
    pairs, pair_size = np.unique(np.stack([entity, person], axis=1), axis=0, return_counts=True)
    combos_per_entity = np.bincount(np.searchsorted(entities, pairs[:, 0]), minlength=len(entities))
    pure = combos_per_entity[np.searchsorted(entities, pairs[:, 0])] == 1
    whole = pair_size == person_size[np.searchsorted(people, pairs[:, 1])]
    correct = int((pure & whole).sum())
    precision = correct / len(entities) if len(entities) else 1.0
    recall = correct / len(people) if len(people) else 1.0
    return precision, recall, _f1(precision, recall)


def evaluate(party: I64, person: I64, entity: I64) -> Metrics:
    """Both kinds of measure for one predicted grouping of all records.

    Args:
        party: File of each record.
        person: True person of each record.
        entity: Predicted entity of each record.

    Returns:
        The pairwise and cluster measures.
    """
    p, r, f, true, predicted, correct = pairwise_metrics(party, person, entity)
    cp, cr, cf = cluster_metrics(person, entity)
    return Metrics(p, r, f, cp, cr, cf, true, predicted, correct)
