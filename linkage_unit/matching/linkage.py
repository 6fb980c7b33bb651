"""End-to-end linkage of N parties' encodings: candidates → threshold → solving → entities.

This is the offline linkage an operator runs with `pacelink link`; the service's runs use
the same steps. Candidates between every pair of parties are found (with blocking, or
exhaustively, optionally on a Dask cluster), the threshold is fixed or estimated from the
scores without labels, and records are grouped into entities holding at most one record
per party (unless within-party duplicates are allowed).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from linkage_unit.matching.blocking import (
    DEFAULT_BLOCKING,
    BlockingConfig,
    candidate_pairs,
    candidate_pairs_and_stats,
)
from linkage_unit.matching.distributed import compare_in_chunks
from linkage_unit.matching.solving import Duplicates, Groups, cluster, greedy_solve_two
from linkage_unit.matching.threshold import (
    DEFAULT_FLOOR,
    estimate_threshold,
    runner_up_scores,
)

__all__ = ["LinkSummary", "link_encodings"]

Candidates = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]


@dataclass(frozen=True)
class LinkSummary:
    """What a linkage did, for the operator's summary and the run record."""

    records: tuple[int, ...]
    comparisons: int
    candidates: int
    entities: int
    linked_records: int
    threshold: float
    threshold_method: str
    estimated_precision: float | None
    estimated_recall: float | None
    blocking: str
    seconds: float


def _candidates(
    a: NDArray[np.uint8], b: NDArray[np.uint8], floor: float, blocking: BlockingConfig,
    scheduler: str | Any | None, workers: int | None,
) -> tuple[Candidates, int]:  # fmt: skip
    """Candidate pairs of one pair of parties at the floor, and the comparisons made."""
    if blocking.exhaustive:
        found = (
            compare_in_chunks(a, b, floor, scheduler=scheduler)
            if scheduler is not None
            else candidate_pairs(a, b, floor, blocking, workers=workers)
        )
        return found, a.shape[0] * b.shape[0]
    found, stats = candidate_pairs_and_stats(a, b, floor, blocking, workers=workers)
    return found, int(stats.comparisons)


def link_encodings(
    parties: Sequence[NDArray[np.uint8]],
    threshold: float | Literal["auto"],
    *,
    blocking: BlockingConfig = DEFAULT_BLOCKING,
    duplicates: Duplicates = "forbid",
    scheduler: str | Any | None = None,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Groups, LinkSummary]:
    """Link the encodings of N parties into entities.

    Args:
        parties: Each party's packed filters, `(n_p, l / 8)` uint8, all of one bit length.
        threshold: Dice threshold, or "auto" to estimate it from the scores without labels
            (candidates are then gathered from a lower floor and the mixture fitted).
        blocking: Blocking configuration; `BlockingConfig(exhaustive=True)` compares all.
        duplicates: "forbid" (at most one record per party per entity) or "allow".
        scheduler: Dask scheduler (address or client) for exhaustive comparisons.
        workers: Threads for the comparison kernels (None: all cores).
        progress: Called with a short description of each step.

    Returns:
        The entities (every record of every party, singletons included) and a summary.
    """
    started = time.perf_counter()
    if len(parties) < 2:
        raise ValueError("linkage needs at least two parties")
    widths = {p.shape[1] for p in parties}
    if len(widths) != 1:
        raise ValueError("all parties' encodings must have the same bit length")
    auto = threshold == "auto"
    floor = DEFAULT_FLOOR if auto else float(threshold)
    found: dict[tuple[int, int], Candidates] = {}
    comparisons = 0
    for a, b in itertools.combinations(range(len(parties)), 2):
        if progress:
            progress(f"comparing party {a} with party {b}")
        found[(a, b)], made = _candidates(
            parties[a], parties[b], floor, blocking, scheduler, workers
        )
        comparisons += made
    n_candidates = sum(c[0].size for c in found.values())

    precision: float | None = None
    recall: float | None = None
    if auto:
        if progress:
            progress("estimating the threshold")
        solved = [greedy_solve_two(*c)[2] for c in found.values()]
        runner_ups = [runner_up_scores(*c, floor=floor) for c in found.values()]
        estimate = estimate_threshold(
            np.concatenate(solved) if solved else np.empty(0),
            nonmatch_scores=np.concatenate(runner_ups) if runner_ups else None,
            floor=floor,
        )
        chosen, method = float(estimate.threshold), f"auto ({estimate.method})"
        if np.isfinite(estimate.precision):
            precision, recall = float(estimate.precision), float(estimate.recall)
    else:
        chosen, method = floor, "fixed"
    kept = {key: _at_least(c, chosen) for key, c in found.items()}
    if progress:
        progress("grouping records into entities")
    groups = cluster(kept, [p.shape[0] for p in parties], duplicates=duplicates)
    sizes = np.bincount(groups.entity, minlength=groups.n_entities)
    summary = LinkSummary(
        records=tuple(p.shape[0] for p in parties),
        comparisons=comparisons,
        candidates=n_candidates,
        entities=int(groups.n_entities),
        linked_records=int(sizes[sizes > 1].sum()),
        threshold=chosen,
        threshold_method=method,
        estimated_precision=precision,
        estimated_recall=recall,
        blocking="exhaustive"
        if blocking.exhaustive
        else f"Hamming LSH, {blocking.tables} tables x {blocking.bits_per_table} bits",
        seconds=time.perf_counter() - started,
    )
    return groups, summary


def _at_least(candidates: Candidates, threshold: float) -> Candidates:
    i, j, score = candidates
    keep = score >= threshold
    return i[keep], j[keep], score[keep]
