"""Link a run's changes into the entity index: the one way pacelink links a batch.

Every path that links encodings calls :func:`link_changes`: the linkage unit's runs
(`jobs/pipeline.py`), the offline `pacelink link` (:func:`linkage.link_encodings`: every
file a snapshot, on an empty index) and the quality and lifecycle benchmarks, so a
benchmark measures exactly what the service runs.

A run's *changes* come in upload order and are of two kinds:

* a :class:`Delivery` of one party, either a ``"snapshot"`` (the party's whole current
  list: its records absent from it are withdrawn) or a ``"delta"`` (new and changed
  records; the rest stay);
* a :class:`Withdrawal` of named records of one party (consent withdrawn).

Records are identified by ``(party, key)``: the key is the partner's keyed pseudonym of
its local ID (written by ``pacelink encode --record-key``), or, for files without record
keys, a hash of the encoding (then a changed record is a new one and cannot be withdrawn
by name).  The changes are first resolved into what they mean for the index (records to
withdraw, records whose encoding changed, records new to the index) and then applied in
that order:

1. **Withdrawn** records leave the index (keys and encodings gone); their entities keep
   their IDs, which are never issued again.
2. **Updated** records get their new encoding.  An updated record keeps its entity (and
   so its linkage ID) while its new encoding still matches another record of that entity
   at the threshold, or while it matches nothing elsewhere: a client who moved house no
   longer matches the other partner's old address, and that alone is no evidence that
   the link was wrong.  It *moves* only when its new details prove it belongs elsewhere:
   it matches no record of its own entity and does match a record of another entity that
   can take it (no record of its party there).  Updated records are decided one at a
   time, in record order, each against the entities as the earlier decisions left them,
   so two records that match each other never swap places.  Moves are logged in the
   index (:attr:`EntityIndex.moved_record`) and counted.
3. **New** records of all parties are linked together, greedily by descending score,
   against the existing entities and each other (:meth:`EntityIndex.add_records`).

Candidates are found with blocking (or exhaustively for small files) at the threshold, or
at the estimator's floor when the threshold is ``"auto"``: the same candidates then serve
both the label-free estimate and the linking, so estimating costs no second linkage.

Longer than 500 lines because it is the one place where a run's steps (plan, compare,
estimate, update, link) meet, in order; each step's work is another module's.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
from linkage_unit.matching.candidates import Candidates
from linkage_unit.matching.distributed import blocked_on_dask, compare_in_chunks
from linkage_unit.matching.entities import EntityIndex, content_keys
from linkage_unit.matching.solving import Duplicates, greedy_solve_two
from linkage_unit.matching.threshold import (
    DEFAULT_FLOOR,
    DEFAULT_THRESHOLD,
    Threshold,
    ThresholdEstimate,
    estimate_threshold,
    reweighted_estimate,
    runner_up_scores,
)

__all__ = [
    "Change",
    "Delivery",
    "LinkOutcome",
    "LinkSettings",
    "Progress",
    "Withdrawal",
    "estimate_from_candidates",
    "link_changes",
    "pair_candidates",
]

#: ``(description of the current step, share of the run done in [0, 1])``; the share
#: never goes back.
Progress = Callable[[str, float], None]
Kind = Literal["snapshot", "delta"]

# Shares of the progress: comparing (split between the comparisons by their sizes'
# product), then estimating, updating and grouping. Comparing is nearly all of the time.
_COMPARE_SHARE = 0.9


@dataclass(frozen=True, eq=False)
class Delivery:
    """One upload of one party: its encodings, its record keys and what kind it is."""

    party: int
    bits: NDArray[np.uint8]
    #: One key per row (the partner's record pseudonyms); None: keys are content hashes,
    #: and identical encodings of the party are one record.
    keys: NDArray[np.str_] | None = None
    kind: Kind = "delta"


@dataclass(frozen=True, eq=False)
class Withdrawal:
    """Records of one party to withdraw, by key."""

    party: int
    keys: NDArray[np.str_]


Change = Delivery | Withdrawal


@dataclass(frozen=True)
class LinkSettings:
    """How to link."""

    threshold: Threshold
    duplicates: Duplicates = "forbid"
    #: Least score of a pair of one party's own records (``"linked"``/``"allow"``); None:
    #: the threshold, or with ``"auto"`` the higher of it and its estimate from the
    #: between-party fit reweighted to the party's own pairs.
    duplicates_threshold: float | None = None
    blocking: BlockingConfig = DEFAULT_BLOCKING
    allow_merges: bool = True
    workers: int | None = None
    #: Dask scheduler (address or client): blocked comparisons split by tables, exhaustive
    #: ones by rows, over its workers (:mod:`linkage_unit.matching.distributed`).
    scheduler: Any = field(default=None, compare=False)
    #: A folder on storage the Dask workers share: each comparison's two sides are written
    #: there (``.npy``) for the workers to memory-map, never sent through the scheduler.
    scratch: Path | None = field(default=None, compare=False)
    #: "gpu": every pair is scored on a CUDA GPU (:mod:`linkage_unit.matching.gpu`), no
    #: blocking; "cpu": blocking as configured.
    device: Literal["cpu", "gpu"] = "cpu"


@dataclass(frozen=True, eq=False)
class LinkOutcome:
    """What :func:`link_changes` did.

    ``pairs`` are the candidate pairs between records of different parties that were
    scored (at the floor), as record numbers of the new index; withdrawn records have none.
    """

    index: EntityIndex
    threshold: float
    threshold_method: str
    duplicates_threshold: float | None
    estimated_precision: float | None
    estimated_recall: float | None
    #: The label-free fit behind ``"auto"`` (None for a fixed threshold, or with no pairs
    #: between parties): what another threshold would have given, for the operator's view.
    estimate: ThresholdEstimate | None
    pairs: Candidates
    comparisons: int
    new_records: int
    updated_records: int
    unchanged_records: int
    moved_records: int
    withdrawn_records: int
    merged_entities: int
    #: For each :class:`Withdrawal`, by its position in the changes: the positions of its
    #: keys that named no record of the party.
    unknown_withdrawals: dict[int, NDArray[np.int64]]
    seconds: float


# ----------------------------------------------------------------------------- candidates


def pair_candidates(
    a: NDArray[np.uint8], b: NDArray[np.uint8], floor: float, blocking: BlockingConfig, *,
    scheduler: Any = None, workers: int | None = None,
    report: Callable[[float, str], None] | None = None, scratch: Path | None = None,
    device: Literal["cpu", "gpu"] = "cpu",
) -> tuple[Candidates, int]:  # fmt: skip
    """Candidate pairs of two sets of encodings at ``floor``, and the comparisons made.

    Blocked unless the blocking config compares the two sizes exhaustively; on the Dask
    ``scheduler`` when given (blocked work needs ``scratch``, a folder the workers share).
    ``report`` gets the share of the work done and a line with the comparisons made so far.
    The result is the same with or without a scheduler. ``device="gpu"`` scores every pair
    on a CUDA GPU instead (the exhaustive result, whatever the blocking).
    """
    if not len(a) or not len(b):
        return Candidates.empty(), 0
    if device == "gpu":
        # Deferred: numba.cuda initialises CUDA on import, and most units have no GPU.
        from linkage_unit.matching.gpu import dice_candidates_gpu  # noqa: PLC0415

        if report is not None:
            report(0.0, f"{a.shape[0] * b.shape[0]:,} comparisons on the GPU")
        return dice_candidates_gpu(a, b, floor), a.shape[0] * b.shape[0]
    if scheduler is not None and not blocking.compares_all(a.shape[0], b.shape[0]):
        if scratch is None:
            raise ValueError("blocked comparison on Dask needs a scratch folder the workers "
                             "can read")  # fmt: skip
        return _blocked_on_dask(a, b, floor, blocking, scheduler, scratch, report)
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


def _blocked_on_dask(
    a: NDArray[np.uint8], b: NDArray[np.uint8], floor: float, blocking: BlockingConfig,
    scheduler: Any, scratch: Path, report: Callable[[float, str], None] | None,
) -> tuple[Candidates, int]:  # fmt: skip
    scratch.mkdir(parents=True, exist_ok=True)
    stem = scratch / f"pairs-{time.monotonic_ns()}"
    a_path, b_path = Path(f"{stem}-a.npy"), Path(f"{stem}-b.npy")
    try:
        np.save(a_path, np.ascontiguousarray(a), allow_pickle=False)
        np.save(b_path, np.ascontiguousarray(b), allow_pickle=False)

        def tasks(done: int, total: int, found: int) -> None:
            if report is not None:
                report(done / total, f"task {done}/{total} on Dask, {found:,} candidates")

        found, stats = blocked_on_dask(a_path, b_path, floor, blocking, scheduler=scheduler,
                                       progress=tasks)  # fmt: skip
    finally:
        a_path.unlink(missing_ok=True)
        b_path.unlink(missing_ok=True)
    return found, int(stats.comparisons)


def estimate_from_candidates(candidates: Iterable[Candidates], floor: float) -> ThresholdEstimate:
    """The label-free threshold from two-sided candidate sets.

    Fitted to their one-to-one solved scores, anchored on their runner-up scores.
    """
    sets = [c for c in candidates if len(c[0])]
    solved = [greedy_solve_two(*c)[2] for c in sets]
    runner_ups = [runner_up_scores(*c, floor=floor) for c in sets]
    return estimate_threshold(
        np.concatenate(solved) if solved else np.empty(0),
        nonmatch_scores=np.concatenate(runner_ups) if runner_ups else None,
        floor=floor,
    )


def _duplicates_estimate(
    own: Sequence[Candidates], floor: float, between: ThresholdEstimate | None
) -> float:
    """The label-free threshold for pairs of one party's own records.

    With a fitted mixture between parties, its match and non-match shapes are kept and only
    the share of duplicates is fitted (:func:`reweighted_estimate`): a partner's duplicate
    clients are a few per cent of its records, too few for a fit of their own, which on the
    synthetic scenarios put the threshold below false duplicates that join two entities.
    Without one, the pairs' own anchored fit.
    """
    if between is None or between.mixture is None:
        return estimate_from_candidates(own, floor).threshold
    solved = [greedy_solve_two(*c)[2] for c in own if len(c[0])]
    return reweighted_estimate(np.concatenate(solved), between, floor=floor).threshold


# ----------------------------------------------------------------------------- resolving


@dataclass
class _Plan:
    """What the changes mean for the index (record numbers are the index's before the run).

    Sources are ``(change, row)``: the delivery (its position in the changes) and the row
    of it that holds a record's latest encoding.
    """

    withdraw: list[int] = field(default_factory=list)
    update_records: list[int] = field(default_factory=list)
    update_source: list[tuple[int, int]] = field(default_factory=list)
    unchanged: int = 0
    # New records, one array per party (a delivery's rows at once: files can be large).
    new_party: list[NDArray[np.int64]] = field(default_factory=list)
    new_key: list[NDArray[np.str_]] = field(default_factory=list)
    new_source: list[NDArray[np.int64]] = field(default_factory=list)  # (k, 2)
    unknown: dict[int, NDArray[np.int64]] = field(default_factory=dict)

    def add_new(self, party: int, keys: NDArray[np.str_], sources: NDArray[np.int64]) -> None:
        self.new_party.append(np.full(len(keys), party, dtype=np.int64))
        self.new_key.append(keys)
        self.new_source.append(sources.reshape(-1, 2))

    def new_records(self) -> tuple[NDArray[np.int64], NDArray[np.str_], NDArray[np.int64]]:
        """Parties, keys and sources of the new records, in upload order, then row order.

        Their entities are issued in that order.
        """
        if not self.new_party:
            return np.zeros(0, np.int64), np.zeros(0, "<U1"), np.zeros((0, 2), np.int64)
        party = np.concatenate(self.new_party)
        key = np.concatenate(self.new_key)
        source = np.concatenate(self.new_source)
        order = np.lexsort((source[:, 1], source[:, 0]))
        return party[order], key[order], source[order]


def _keys_of(change: Delivery) -> tuple[NDArray[np.str_], NDArray[np.int64]]:
    """A delivery's row keys, and the rows that are records.

    All rows when the partner keyed them (keys must be unique), else the first row of each
    distinct encoding.
    """
    if change.keys is None:
        keys = content_keys(np.asarray(change.bits))
        _, first = np.unique(keys, return_index=True)
        return keys, np.sort(first).astype(np.int64)
    keys = np.asarray(change.keys).astype(str, copy=False)
    if len(keys) != len(change.bits):
        raise ValueError(f"got {len(keys)} keys for {len(change.bits)} records")
    if len(np.unique(keys)) != len(keys):
        raise ValueError("record keys must be unique within a delivery")
    return keys, np.arange(len(keys), dtype=np.int64)


def _resolve(index: EntityIndex, changes: Sequence[Change]) -> _Plan:
    """What the changes, applied in upload order, mean for the index."""
    plan = _Plan()
    for party in sorted({c.party for c in changes}):
        numbers = [n for n, c in enumerate(changes) if c.party == party]
        mine = np.flatnonzero(index.party == party)
        only = changes[numbers[0]]
        if not len(mine) and len(numbers) == 1 and isinstance(only, Delivery):
            # The common first delivery (and every offline file): all its rows are new.
            keys, rows = _keys_of(only)
            plan.add_new(party, keys[rows],
                         np.stack([np.full(len(rows), numbers[0]), rows], axis=1))  # fmt: skip
            continue
        _resolve_party(index, changes, party, numbers, mine, plan)
    return plan


def _resolve_party(
    index: EntityIndex, changes: Sequence[Change], party: int, numbers: list[int],
    mine: NDArray[np.int64], plan: _Plan,
) -> None:  # fmt: skip
    """One party's changes, in order: what it holds at the end, and what it withdrew."""
    known = dict(zip(index.key[mine].tolist(), mine.tolist(), strict=True))
    rows: dict[str, tuple[int, int]] = {}  # key -> (change, row) of its latest encoding
    removed: set[str] = set()  # known keys withdrawn by name
    snapshot = False  # a snapshot came: known keys it and later deltas lack are withdrawn
    for number in numbers:
        change = changes[number]
        if isinstance(change, Delivery):
            keys, _ = _keys_of(change)
            if change.kind == "snapshot":
                rows, removed, snapshot = {}, set(), True
            for row, key in enumerate(keys.tolist()):
                if change.keys is None:  # identical encodings are one record
                    rows.setdefault(key, (number, row))
                else:
                    rows[key] = (number, row)
                removed.discard(key)
            continue
        unknown = []
        for pos, key in enumerate(np.asarray(change.keys).astype(str).tolist()):
            if key in rows:
                del rows[key]
                if key in known:
                    removed.add(key)
            elif key in known and not snapshot and key not in removed:
                removed.add(key)
            else:
                unknown.append(pos)
        plan.unknown[number] = np.asarray(unknown, dtype=np.int64)
    gone = (set(known) - set(rows)) if snapshot else (removed - set(rows))
    plan.withdraw.extend(sorted(known[k] for k in gone))
    fresh: list[str] = []
    fresh_source: list[tuple[int, int]] = []
    for key, source in rows.items():
        record = known.get(key)
        if record is None:
            fresh.append(key)
            fresh_source.append(source)
            continue
        delivery = changes[source[0]]
        assert isinstance(delivery, Delivery)
        if np.array_equal(index.bits[record], delivery.bits[source[1]]):
            plan.unchanged += 1
        else:
            plan.update_records.append(record)
            plan.update_source.append(source)
    plan.add_new(party, np.asarray(fresh, dtype=str), np.asarray(fresh_source, dtype=np.int64))


def _gather(changes: Sequence[Change], sources: NDArray[np.int64], width: int
            ) -> NDArray[np.uint8]:  # fmt: skip
    """The encodings at ``(change, row)`` sources, ``(len(sources), width)``.

    All the rows of one delivery, in order, are that delivery's array itself (memory-mapped
    from its file in the unit's runs): a first delivery is not copied to be compared.
    """
    src = np.asarray(sources, dtype=np.int64).reshape(-1, 2)
    if len(src) and np.all(src[:, 0] == src[0, 0]):
        whole = changes[int(src[0, 0])]
        if (isinstance(whole, Delivery) and len(whole.bits) == len(src)
                and np.array_equal(src[:, 1], np.arange(len(src)))):  # fmt: skip
            return np.asarray(whole.bits)
    out = np.empty((len(src), width), dtype=np.uint8)
    for number in np.unique(src[:, 0]):
        change = changes[int(number)]
        assert isinstance(change, Delivery)
        at = np.flatnonzero(src[:, 0] == number)
        out[at] = np.asarray(change.bits)[src[at, 1]]
    return out


# ----------------------------------------------------------------------------- updates


def _decide_updates(
    index: EntityIndex, records: NDArray[np.int64], found: Candidates, threshold: float,
    duplicates: Duplicates,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:  # fmt: skip
    """The updated records that move, and the entity each moves to (see the module doc).

    ``found`` holds ``(position in records, record number, score)`` of each updated
    record's candidates among the other parties' records.
    """
    i, j, s = found
    keep = s >= threshold
    i, j, s = i[keep], j[keep], s[keep]
    order = np.lexsort((j, -s, i))  # by updated record, then best first
    i, j = i[order], j[order]
    starts = np.searchsorted(i, np.arange(len(records) + 1))
    entity = index.entity.copy()  # as the decisions so far leave it
    held: dict[tuple[int, int], int] | None = None  # records per (entity, party)
    moves: dict[int, int] = {}
    for pos, record in enumerate(records.tolist()):
        lo, hi = starts[pos], starts[pos + 1]
        if lo == hi:
            continue  # matches nothing: no evidence against its entity
        own = entity[record]
        others = j[lo:hi]
        if np.any(entity[others] == own):
            continue  # still matches a record of its entity
        if held is None:
            keys, counts = np.unique(entity * (int(index.party.max()) + 1) + index.party,
                                     return_counts=True)  # fmt: skip
            width = int(index.party.max()) + 1
            held = {(int(k) // width, int(k) % width): int(c)
                    for k, c in zip(keys, counts, strict=True)}  # fmt: skip
        party = int(index.party[record])
        for other in others.tolist():  # best first
            target = int(entity[other])
            if duplicates == "allow" or not held.get((target, party), 0):
                held[(own, party)] -= 1
                held[(target, party)] = held.get((target, party), 0) + 1
                entity[record] = target
                moves[record] = target
                break
    movers = np.asarray(sorted(moves), dtype=np.int64)
    return movers, np.asarray([moves[m] for m in movers.tolist()], dtype=np.int64)


# ----------------------------------------------------------------------------- linking


@dataclass(frozen=True)
class _Comparison:
    """One comparison job: ``left`` rows of one set against ``right`` rows of another."""

    what: Literal["update", "stored", "new"]
    p: int
    q: int
    left: NDArray[np.int64]
    right: NDArray[np.int64]

    @property
    def work(self) -> int:
        return len(self.left) * len(self.right)


def link_changes(
    index: EntityIndex,
    changes: Sequence[Change],
    settings: LinkSettings,
    *,
    progress: Progress | None = None,
) -> LinkOutcome:
    """Apply a run's deliveries and withdrawals (in upload order) to the entity index.

    Args:
        index: The index of the last run (unchanged: the result is a new index).
        changes: The run's deliveries and withdrawals, in upload order.
        settings: Threshold, duplicates rule and blocking.
        progress: Called with a step description (while comparing, with the counts of
            comparisons made) and the share of the work done.

    Returns:
        The new index and what was done (see :class:`LinkOutcome`).

    Raises:
        ValueError: On encodings of another width than the index's, or duplicate keys in
            one delivery.
    """
    started = time.perf_counter()

    def say(step: str, share: float) -> None:
        if progress is not None:
            progress(step, share)

    widths = {np.asarray(c.bits).shape[1] for c in changes if isinstance(c, Delivery)}
    if index.filter_bytes:
        widths.add(index.filter_bytes)
    if len(widths) > 1:
        raise ValueError("all encodings must have the same bit length")
    width = widths.pop() if widths else 0
    say("resolving updates and withdrawals", 0.0)
    plan = _resolve(index, changes)
    withdrawn = len(plan.withdraw)
    if withdrawn:
        # Record numbers shift: find the updated records again by key afterwards.
        update_keys = [(int(index.party[r]), str(index.key[r])) for r in plan.update_records]
        index = index.remove_records(plan.withdraw)
        plan.update_records = [
            int(index.find_records(p, np.asarray([k]))[1][0]) for p, k in update_keys
        ]
    updates = np.asarray(plan.update_records, dtype=np.int64)
    if len(updates):
        sources = np.asarray(plan.update_source, dtype=np.int64)
        index = index.replace_bits(updates, _gather(changes, sources, width))
    new_party, new_keys, new_source = plan.new_records()
    # Each party's new records, compared as they are (most often one delivery's array).
    party_bits = {
        int(p): _gather(changes, new_source[new_party == p], width) for p in np.unique(new_party)
    }

    fixed = settings.threshold.fixed
    auto = fixed is None
    floor = DEFAULT_FLOOR if fixed is None else fixed
    within = settings.duplicates != "forbid"
    jobs = _comparisons(index, updates, new_party, within)
    total = max(sum(job.work for job in jobs), 1)
    found: list[Candidates] = []
    comparisons = 0
    done = 0
    for job in jobs:
        prefix = f"comparing party {job.p} with party {job.q}" + (
            " (updated records)" if job.what == "update" else ""
        )

        def report(fraction: float, detail: str, start: int = done, work: int = job.work,
                   prefix: str = prefix) -> None:  # fmt: skip
            say(f"{prefix}: {detail}", _COMPARE_SHARE * (start + work * fraction) / total)

        # A "stored" or "new" job's left side is all of party p's new records, a "new" job's
        # right side all of party q's.
        left = index.bits[updates[job.left]] if job.what == "update" else party_bits[job.p]
        right = party_bits[job.q] if job.what == "new" else index.bits[job.right]
        (i, j, s), made = pair_candidates(
            left, right, floor, settings.blocking, scheduler=settings.scheduler,
            workers=settings.workers, report=report, scratch=settings.scratch,
            device=settings.device,
        )  # fmt: skip
        if job.what == "new" and job.p == job.q:
            other = i != j  # a record is not its own duplicate
            i, j, s = i[other], j[other], s[other]
        found.append(Candidates(job.left[i], job.right[j], s))
        comparisons += made
        done += job.work

    between = [k for k, job in enumerate(jobs) if job.what != "update" and job.p != job.q]
    own = [k for k, job in enumerate(jobs) if job.p == job.q]
    precision: float | None = None
    recall: float | None = None
    estimate: ThresholdEstimate | None = None
    if not auto:
        threshold, method = floor, "fixed"
    elif any(len(found[k][0]) for k in between):
        say("estimating the threshold", _COMPARE_SHARE)
        estimate = estimate_from_candidates((found[k] for k in between), floor)
        threshold, method = float(estimate.threshold), f"auto ({estimate.method})"
        if np.isfinite(estimate.precision):
            precision, recall = float(estimate.precision), float(estimate.recall)
    else:
        # Nothing between parties to estimate from (one party so far): the default.
        threshold, method = DEFAULT_THRESHOLD, "default (no pairs between parties yet)"
    dup_threshold: float | None = None
    if within:
        dup_threshold = settings.duplicates_threshold
        if dup_threshold is None:
            dup_threshold = threshold
            if auto and any(len(found[k][0]) for k in own):
                # Duplicates are rare and a wrong one joins whole entities: never lower.
                mine = float(_duplicates_estimate([found[k] for k in own], floor, estimate))
                dup_threshold = max(threshold, mine)

    say("applying updates", _COMPARE_SHARE + 0.03)
    update_pairs = Candidates.concatenate(
        [found[k] for k, job in enumerate(jobs) if job.what == "update"]
    )
    movers, targets = _decide_updates(index, updates, update_pairs, threshold,
                                      settings.duplicates)  # fmt: skip
    if len(movers):
        index = index.move_records(movers, targets)

    say("grouping records into entities", _COMPARE_SHARE + 0.06)
    n_before = index.n_records
    new_bits = _gather(changes, new_source, width)
    del party_bits

    def kept(what: str, of_right: NDArray[np.int64]) -> Candidates:
        i, j, s = Candidates.concatenate(
            [found[k] for k, job in enumerate(jobs) if job.what == what]
        )
        same = new_party[i] == of_right[j]
        bar = np.where(same, threshold if dup_threshold is None else dup_threshold, threshold)
        keep = s >= bar
        if what == "new":
            keep &= ~same | (i < j)  # a party's own pair once
        return Candidates(i[keep], j[keep], s[keep])

    to_stored = kept("stored", index.party)
    among = kept("new", new_party)
    added = index.add_records(
        new_party, new_keys, new_bits, to_stored, among,
        duplicates=settings.duplicates, allow_merges=settings.allow_merges,
    )  # fmt: skip

    # Every scored pair between parties, as record numbers of the new index.
    pair_parts: list[Candidates] = []
    for k, job in enumerate(jobs):
        if job.p != job.q:
            i, j, s = found[k]
            rec_a = updates[i] if job.what == "update" else n_before + i
            rec_b = n_before + j if job.what == "new" else j
            pair_parts.append(Candidates(rec_a, rec_b, s))
    say(f"linked: {added.index.n_entities:,} entities", 1.0)
    return LinkOutcome(
        index=added.index,
        threshold=threshold,
        threshold_method=method,
        duplicates_threshold=dup_threshold,
        estimated_precision=precision,
        estimated_recall=recall,
        estimate=estimate,
        pairs=Candidates.concatenate(pair_parts),
        comparisons=comparisons,
        new_records=len(new_party),
        updated_records=len(updates),
        unchanged_records=plan.unchanged,
        moved_records=len(movers),
        withdrawn_records=withdrawn,
        merged_entities=len(added.merged_from),
        unknown_withdrawals=plan.unknown,
        seconds=time.perf_counter() - started,
    )


def _comparisons(
    index: EntityIndex, updates: NDArray[np.int64], new_party: NDArray[np.int64], within: bool
) -> list[_Comparison]:
    """The comparisons a run makes, in order.

    Updated records against the other parties' stored records, new records against stored
    ones, new records among themselves (with ``within``, a party's records against its own
    too).
    """
    stored_parties = np.unique(index.party).tolist()
    new_parties = np.unique(new_party).tolist()
    jobs: list[_Comparison] = []
    update_party = index.party[updates]
    for p in np.unique(update_party).tolist():
        for q in stored_parties:
            if q != p:
                jobs.append(_Comparison("update", p, q, np.flatnonzero(update_party == p),
                                        np.flatnonzero(index.party == q)))  # fmt: skip
    for p in new_parties:
        for q in stored_parties:
            if q != p or within:
                jobs.append(_Comparison("stored", p, q, np.flatnonzero(new_party == p),
                                        np.flatnonzero(index.party == q)))  # fmt: skip
    for p, q in itertools.combinations_with_replacement(new_parties, 2):
        if p != q or within:
            jobs.append(_Comparison("new", p, q, np.flatnonzero(new_party == p),
                                    np.flatnonzero(new_party == q)))  # fmt: skip
    return [job for job in jobs if job.work]
