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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from linkage_unit.matching.blocking import (
    DEFAULT_BLOCKING,
    BlockingConfig,
    BlockingProgress,
    candidate_pairs,
    candidate_pairs_and_stats,
)
from linkage_unit.matching.distributed import compare_in_chunks
from linkage_unit.matching.solving import Duplicates, Groups, cluster, greedy_solve_two
from linkage_unit.matching.threshold import (
    DEFAULT_FLOOR,
    ThresholdEstimate,
    estimate_threshold,
    runner_up_scores,
)

__all__ = ["LinkProgress", "LinkSummary", "link_encodings"]

Candidates = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]

#: A progress callback: ``(description of the current step, share of the whole linkage
#: done, in [0, 1])``.  The share never decreases within one linkage.
LinkProgress = Callable[[str, float], None]

# Shares of the progress bar: comparing (split between pairs of parties by their
# len(A) * len(B)), then estimating the threshold and grouping.  Comparing is nearly all
# of the time at scale.
_COMPARE_SHARE = 0.9
_THRESHOLD_SHARE = 0.05


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
    duplicates_threshold: float | None = None


def _candidates(
    a: NDArray[np.uint8], b: NDArray[np.uint8], floor: float, blocking: BlockingConfig,
    scheduler: str | Any | None, workers: int | None,
    report: Callable[[float, str], None] | None,
) -> tuple[Candidates, int]:  # fmt: skip
    """Candidate pairs of one pair of parties at the floor, and the comparisons made.

    ``report`` is called with the share of this pair's work done and a detail line.
    """
    if blocking.compares_all(a.shape[0], b.shape[0]):
        n = a.shape[0] * b.shape[0]
        if scheduler is not None:

            def chunks(done: int, total: int) -> None:
                if report is not None:
                    report(done / total, f"chunk {done}/{total} of {n:,} comparisons")

            found = compare_in_chunks(a, b, floor, scheduler=scheduler, progress=chunks)
        else:
            if report is not None:
                report(0.0, f"{n:,} comparisons")
            found = candidate_pairs(a, b, floor, blocking, workers=workers)
        return found, n

    def tables(p: BlockingProgress) -> None:
        if report is not None:
            report(
                p.fraction,
                f"table {p.tables_done}/{p.tables}, {p.comparisons:,} comparisons, "
                f"{p.candidates:,} candidates",
            )

    found, stats = candidate_pairs_and_stats(
        a, b, floor, blocking, workers=workers, progress=tables
    )
    return found, int(stats.comparisons)


def _pair_reporter(
    progress: LinkProgress, prefix: str, start: float, share: float
) -> Callable[[float, str], None]:
    """Turns the share done of one pair of parties into the share done of the linkage."""

    def report(fraction: float, detail: str) -> None:
        progress(f"{prefix}: {detail}", _COMPARE_SHARE * (start + share * fraction))

    return report


def link_encodings(
    parties: Sequence[NDArray[np.uint8]],
    threshold: float | Literal["auto"],
    *,
    blocking: BlockingConfig = DEFAULT_BLOCKING,
    duplicates: Duplicates = "forbid",
    scheduler: str | Any | None = None,
    workers: int | None = None,
    progress: LinkProgress | None = None,
) -> tuple[Groups, LinkSummary]:
    """Link the encodings of N parties into entities.

    Args:
        parties: Each party's packed filters, `(n_p, l / 8)` uint8, all of one bit length.
        threshold: Dice threshold, or "auto" to estimate it from the scores without labels
            (candidates are then gathered from a lower floor and the mixture fitted).
        blocking: Blocking configuration; `BlockingConfig(exhaustive=True)` compares all
            pairs, as does any config for two parties with at most its
            `exhaustive_up_to` pairs.
        duplicates: "forbid" (at most one record per party per entity), "linked" (two
            records of one party share an entity only when they match each other: a
            partner's duplicate clients) or "allow" (no party constraint).
        scheduler: Dask scheduler (address or client) for exhaustive comparisons.
        workers: Threads for the comparison kernels (None: all cores).
        progress: Called as blocking and the later steps proceed with a description of
            the current step (with counts of comparisons and candidates while comparing)
            and the share of the whole linkage done, in [0, 1].

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
    pairs = list(itertools.combinations(range(len(parties)), 2))
    # Each pair of parties gets a share of the comparing step proportional to its work.
    work = np.array([parties[a].shape[0] * parties[b].shape[0] for a, b in pairs], np.float64)
    shares = work / work.sum() if work.sum() > 0 else np.full(len(pairs), 1 / len(pairs))
    done_before = np.concatenate([[0.0], np.cumsum(shares)[:-1]])
    for number, (a, b) in enumerate(pairs):
        report = None
        if progress is not None:
            report = _pair_reporter(
                progress, f"comparing party {a} with party {b}", done_before[number],
                shares[number],
            )  # fmt: skip
            report(0.0, "starting")
        found[(a, b)], made = _candidates(
            parties[a], parties[b], floor, blocking, scheduler, workers, report
        )
        comparisons += made
    n_candidates = sum(c[0].size for c in found.values())

    precision: float | None = None
    recall: float | None = None
    if auto:
        if progress is not None:
            progress(f"estimating the threshold from {n_candidates:,} candidates", _COMPARE_SHARE)
        estimate = _estimate(found.values(), floor)
        chosen, method = float(estimate.threshold), f"auto ({estimate.method})"
        if np.isfinite(estimate.precision):
            precision, recall = float(estimate.precision), float(estimate.recall)
    else:
        chosen, method = floor, "fixed"
    kept = {key: _at_least(c, chosen) for key, c in found.items()}
    within_threshold: float | None = None
    if duplicates != "forbid":
        # Duplicate clients within one partner's file: pairs of a party's own records
        # ("linked" joins two records of one party only through such a pair; "allow" also
        # chains through other parties' records).
        within: dict[tuple[int, int], Candidates] = {}
        for p, bits in enumerate(parties):
            if progress is not None:
                progress(f"finding duplicates within party {p}", _COMPARE_SHARE)
            (i, j, s), stats = candidate_pairs_and_stats(bits, bits, floor, blocking,
                                                         workers=workers)  # fmt: skip
            other = i != j
            within[(p, p)] = (i[other], j[other], s[other])
            comparisons += int(stats.comparisons)
        within_threshold = chosen
        if auto:
            within_threshold = max(chosen, _duplicates_threshold(within, floor))
        for key, (i, j, s) in within.items():
            keep = (i < j) & (s >= within_threshold)
            kept[key] = (i[keep], j[keep], s[keep])
    if progress is not None:
        progress("grouping records into entities", _COMPARE_SHARE + _THRESHOLD_SHARE)
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
        blocking="; ".join(
            dict.fromkeys(
                blocking.describe(parties[a].shape[0], parties[b].shape[0]) for a, b in pairs
            )
        ),
        seconds=time.perf_counter() - started,
        duplicates_threshold=within_threshold,
    )
    if progress is not None:
        progress(f"linked: {summary.entities:,} entities", 1.0)
    return groups, summary


def _estimate(candidates: Iterable[Candidates], floor: float) -> ThresholdEstimate:
    """The label-free threshold from candidate sets: their one-to-one solved scores,
    anchored on their runner-up scores."""
    sets = list(candidates)
    solved = [greedy_solve_two(*c)[2] for c in sets]
    runner_ups = [runner_up_scores(*c, floor=floor) for c in sets]
    return estimate_threshold(
        np.concatenate(solved) if solved else np.empty(0),
        nonmatch_scores=np.concatenate(runner_ups) if runner_ups else None,
        floor=floor,
    )


def _duplicates_threshold(within: dict[tuple[int, int], Candidates], floor: float) -> float:
    """Label-free threshold for pairs of one party's own records.

    The same estimator as between parties, on each record's best other record of its own
    file (solved one-to-one) against the runner-ups.  Duplicates are rare (a few percent
    of a file) and a wrong within-party link joins whole entities, so the caller never
    goes below the between-party threshold.
    """
    return float(_estimate(within.values(), floor).threshold)


def _at_least(candidates: Candidates, threshold: float) -> Candidates:
    i, j, score = candidates
    keep = score >= threshold
    return i[keep], j[keep], score[keep]
