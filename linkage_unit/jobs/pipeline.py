"""One run of a project: link its new batches into the entity index and write the results.

A run is a pure function of its inputs — the project's salt, the entity index of the last
completed run, the batches to link (in upload order) and the threshold — so a run that is
interrupted and started again from scratch produces exactly what an uninterrupted one
would have. It writes only inside its own run folder; the worker makes the result current
by recording it in the database once everything is written.

A run's changes are its project's unlinked uploads in upload order: snapshots and deltas of
encodings, and withdrawals (record keys to remove); :func:`linkage_unit.matching.incremental.
link_changes` applies them, the same function every other path links with.

It writes the run folder's outputs as :class:`linkage_unit.storage.RunFolder` names them:
the entity index, every delivery's linkage IDs, the overlap counts (held steady between
runs, see :func:`steady_counts`) and the scores for the operator's review.

Once the run is recorded as done, :func:`settle` removes what the unit no longer needs:
the ``.plk`` files of linked uploads (their encodings live on in the index only), linked
withdrawal files, and the keys of withdrawn records from every upload's key file, so a
withdrawn record's encoding and pseudonym are nowhere in the unit's storage.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from encoder.fileformat import Encodings, read_encodings
from linkage_unit.matching.entities import EntityIndex, content_keys
from linkage_unit.matching.incremental import (
    Change,
    Delivery,
    LinkSettings,
    Withdrawal,
    link_changes,
)
from linkage_unit.matching.solving import Duplicates
from linkage_unit.matching.threshold import Threshold, ThresholdEstimate, estimated_curve
from linkage_unit.storage import RunFolder, save_keys

__all__ = [
    "NEAR",
    "Batch",
    "RunError",
    "RunInputs",
    "RunOutcome",
    "execute",
    "row_keys",
    "settle",
    "steady_counts",
]

#: Pairs within this distance of the threshold are listed for the operator's review.
NEAR: Final = 0.05
_MAX_NEAR_PAIRS: Final = 1000
_BIN_WIDTH: Final = 0.01

Progress = Callable[[str, float], None]


class RunError(Exception):
    """A run failed for a reason the operator can act on (the message is safe to show)."""


Kind = Literal["snapshot", "delta", "withdrawal"]


@dataclass(frozen=True)
class Batch:
    """An upload: its ID, its party's position, its kind and where its files are.

    ``path`` is the ``.plk`` of a delivery (present until a run has linked it) or the
    record keys of a withdrawal (``.npy``); ``keys_path`` the row keys of a delivery.
    """

    upload_id: str
    party: int
    path: Path
    kind: Kind = "delta"
    keys_path: Path | None = None


@dataclass(frozen=True)
class RunInputs:
    """Everything a run depends on."""

    # Kept out of reprs: with the salt, anyone holding an index could issue its IDs.
    salt: bytes = field(repr=False)
    parties: tuple[str, ...]
    #: The last completed run, whose entity index this run extends (None: the first run).
    base_run: RunFolder | None
    new_batches: tuple[Batch, ...]
    all_batches: tuple[Batch, ...]
    threshold: Threshold
    duplicates: Duplicates = "forbid"
    duplicates_threshold: float | None = None
    #: A count moves from the last run's only when it changed by at least this much (the
    #: policy's suppression ``min_count``; 1: every change shows).
    counts_steady_within: int = 1
    #: Dask scheduler address: the comparisons run on its workers, which read what they
    #: compare from the run folder (shared storage); the result is the same without.
    scheduler: str | None = None


@dataclass(frozen=True)
class RunOutcome:
    """What a run produced, for the run record."""

    threshold: float
    threshold_method: str
    pin_threshold: bool
    summary: dict[str, Any]
    duplicates_threshold: float | None = None
    #: For the operator's charts: ``distribution`` (histogram of every scored pair between
    #: parties) and ``curve`` (estimated precision/recall by threshold, or None).
    diagnostics: dict[str, Any] = field(default_factory=dict)


def _change(batch: Batch) -> Change:
    try:
        if batch.kind == "withdrawal":
            return Withdrawal(batch.party, np.load(batch.path, allow_pickle=False))
        encodings = read_encodings(batch.path)
        return Delivery(batch.party, np.ascontiguousarray(encodings.bits),
                        encodings.record_keys, batch.kind)  # fmt: skip
    except Exception as exc:  # the file was checked on upload: damage since is the unit's
        raise RunError(f"the encodings of upload {batch.upload_id} cannot be read") from exc


def row_keys(encodings: Encodings) -> NDArray[np.str_]:
    """The key of every row of an encoding file, as the entity index knows its records.

    The partner's record pseudonyms, or for files without them a hash of each encoding.
    """
    if encodings.record_keys is not None:
        return np.asarray(encodings.record_keys)
    return content_keys(np.ascontiguousarray(encodings.bits))


def _keys(batch: Batch) -> NDArray[np.str_]:
    if batch.keys_path is not None and batch.keys_path.exists():
        keys: NDArray[np.str_] = np.load(batch.keys_path, allow_pickle=False)
        return keys
    try:  # an upload accepted before key files were kept
        return row_keys(read_encodings(batch.path))
    except Exception as exc:
        raise RunError(f"the keys of upload {batch.upload_id} cannot be read") from exc


def _previous_counts(base: RunFolder | None) -> dict[int, int] | None:
    if base is None:
        return None
    try:
        raw = json.loads(base.counts.read_text())
    except FileNotFoundError:  # a run folder from before counts were kept steady
        return None
    return {int(m): int(c) for m, c in raw.items()}


def steady_counts(
    exact: dict[int, int], previous: dict[int, int] | None, within: int
) -> dict[int, int]:
    """The counts to keep for release: each moves from the last run's only by ``within`` or more.

    Suppression and rounding protect one release; a party that fetches counts after every
    run can still subtract two releases. It uploads one record of a person it wants to
    find out about, the operator runs the project, and the overlap it shares with another
    party goes up by one or not — visible whenever that overlap was at a rounding edge,
    which the party can find by uploading a few decoys first. Keeping every entities-per-
    party-set count where it was until it has moved by at least ``min_count`` makes any
    change smaller than what suppression hides invisible: a release differs from the last
    one only where at least ``min_count`` entities have changed. The counts are those of
    the partition of entities by the set of parties holding them, so every released
    figure (sums over it) stays consistent with the others.

    Args:
        exact: Entities per party set (bit mask) after this run.
        previous: What the last run kept, or None for a project's first run.
        within: The policy's ``min_count``.
    """
    if previous is None or within <= 1:
        return dict(exact)
    steady = {}
    for mask in sorted(set(exact) | set(previous)):
        now, before = exact.get(mask, 0), previous.get(mask, 0)
        kept = now if abs(now - before) >= within else before
        if kept:
            steady[mask] = kept
    return steady


def execute(inputs: RunInputs, out: RunFolder, progress: Progress) -> RunOutcome:
    """Run the linkage; write the outputs into ``out`` (replaced if it exists).

    Raises:
        RunError: With a message fit for the operator.
    """
    started = time.perf_counter()
    if out.path.exists():  # left by an attempt that was interrupted
        shutil.rmtree(out.path)
    out.path.mkdir()
    progress("loading", 0.02)
    index = (
        EntityIndex.load(inputs.base_run.index)
        if inputs.base_run is not None
        else EntityIndex.empty(inputs.salt)
    )
    changes = [_change(batch) for batch in inputs.new_batches]
    settings = LinkSettings(
        threshold=inputs.threshold, duplicates=inputs.duplicates,
        duplicates_threshold=inputs.duplicates_threshold, scheduler=inputs.scheduler,
        scratch=out.scratch if inputs.scheduler else None,
    )  # fmt: skip

    shown_stage, shown_at = "", 0.0

    def linking(step: str, share: float) -> None:
        # The run record shows the step without its running counts (a short stage), and is
        # written when the step changes or a second has passed, not at every table.
        nonlocal shown_stage, shown_at
        stage = step.split(":", 1)[0][:64]
        if stage != shown_stage or time.monotonic() - shown_at >= 1.0:
            shown_stage, shown_at = stage, time.monotonic()
            progress(stage, 0.05 + 0.8 * share)

    try:
        outcome = link_changes(index, changes, settings, progress=linking)
    except ValueError as exc:  # checked on upload; a bad file is the unit's problem
        raise RunError(f"the uploads cannot be linked: {exc}") from exc
    shutil.rmtree(out.scratch, ignore_errors=True)
    index = outcome.index
    threshold = outcome.threshold
    progress("saving the entity index", 0.85)
    index.save(out.index)
    out.ids_dir.mkdir()
    for batch in inputs.all_batches:
        if batch.kind == "withdrawal":
            continue
        ids = index.lookup(batch.party, _keys(batch))
        np.save(out.ids(batch.upload_id), ids, allow_pickle=False)
    progress("counting overlaps", 0.95)
    masks = np.zeros(len(index.entity_id), dtype=np.int64)
    np.bitwise_or.at(masks, index.entity, np.left_shift(1, index.party))
    live = masks[masks > 0]
    values, counts = np.unique(live, return_counts=True)
    exact = {int(m): int(c) for m, c in zip(values, counts, strict=True)}
    previous = _previous_counts(inputs.base_run)
    steady = steady_counts(exact, previous, inputs.counts_steady_within)
    out.counts.write_text(json.dumps({str(m): c for m, c in steady.items()}))
    a, b, s = outcome.pairs
    floor = max(threshold - NEAR, 0.01)
    edges = np.round(np.arange(floor, 1.0 + _BIN_WIDTH, _BIN_WIDTH), 6)
    histogram = np.histogram(s[s >= floor], bins=edges)[0]
    close = np.flatnonzero(np.abs(s - threshold) < NEAR)
    close = close[np.lexsort((b[close], a[close], np.abs(s[close] - threshold)))]
    close = close[:_MAX_NEAR_PAIRS]
    current = index.record_ids
    scores = {
        "threshold": threshold,
        "bin_edges": edges.tolist(),
        "histogram": histogram.tolist(),
        "near_pairs": [
            {
                "score": round(float(s[c]), 6),
                "party_a": inputs.parties[int(index.party[a[c]])],
                "id_a": str(current[a[c]]),
                "party_b": inputs.parties[int(index.party[b[c]])],
                "id_b": str(current[b[c]]),
            }
            for c in close.tolist()
        ],
    }
    out.scores.write_text(json.dumps(scores))
    sizes = np.bincount(index.entity, minlength=len(index.entity_id))
    size_values, size_counts = np.unique(sizes[sizes > 0], return_counts=True)
    unknown = sum(len(v) for v in outcome.unknown_withdrawals.values())
    summary = {
        "records": index.n_records,
        "records_by_party": {
            name: int(np.count_nonzero(index.party == p)) for p, name in enumerate(inputs.parties)
        },
        "new_batches": len(changes),
        "new_records": outcome.new_records,
        # Records whose partner sent changed details under the same record key: they kept
        # their linkage ID unless their new details proved they belong elsewhere (moved).
        "updated_records": outcome.updated_records,
        "moved_records": outcome.moved_records,
        "withdrawn_records": outcome.withdrawn_records,
        "unknown_withdrawals": unknown,
        "entities": index.n_entities,
        "linked_entities": int(np.count_nonzero(sizes > 1)),
        # How many entities hold 1, 2, 3 … records: a long tail means over-linking.
        "entity_sizes": {str(v): int(c) for v, c in zip(size_values, size_counts, strict=True)},
        # Entities merged into older ones by new records that matched both; their IDs now
        # stand for the older entity's (docs/entities.md).
        "merged_entities": outcome.merged_entities,
        "comparisons": outcome.comparisons,
        "threshold": threshold,
        "threshold_method": outcome.threshold_method,
        "duplicates": inputs.duplicates,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if outcome.duplicates_threshold is not None:
        summary["duplicates_threshold"] = outcome.duplicates_threshold
    if outcome.estimated_precision is not None:
        summary["estimated_precision"] = outcome.estimated_precision
        summary["estimated_recall"] = outcome.estimated_recall
    pin = outcome.threshold_method.startswith("auto")
    return RunOutcome(threshold, outcome.threshold_method, pin, summary,
                      outcome.duplicates_threshold,
                      _diagnostics(s, threshold, outcome.estimate))  # fmt: skip


def _diagnostics(
    scores: NDArray[np.float64], threshold: float, estimate: ThresholdEstimate | None
) -> dict[str, Any]:
    """The operator's charts' data: every scored pair between parties, and the fit's curve.

    A histogram of the scores, and the label-free precision and recall the fit predicts
    at each threshold (the curve ``auto`` chose from). Aggregates only: no pair is named.
    """
    lowest = float(scores.min()) if len(scores) else threshold
    start = max(math.floor(min(lowest, threshold - NEAR) / _BIN_WIDTH) * _BIN_WIDTH, 0.0)
    # Ends at 1.0: np.histogram's last bin is closed, so a score of exactly 1 counts.
    edges = np.round(np.arange(start, 1.0 + _BIN_WIDTH / 2, _BIN_WIDTH), 6)
    counts = np.histogram(scores, bins=edges)[0]
    out: dict[str, Any] = {
        "distribution": {"bin_edges": edges.tolist(), "histogram": counts.tolist()},
        "curve": None,
    }
    if estimate is not None and estimate.mixture is not None:
        floor = float(estimate.diagnostics.get("floor", start))
        grid = np.round(np.linspace(floor, 1.0, 101), 6)
        precision, recall = estimated_curve(estimate, grid)
        out["curve"] = {
            "threshold": grid.tolist(),
            "precision": [None if math.isnan(p) else round(float(p), 6) for p in precision],
            "recall": [None if math.isnan(r) else round(float(r), 6) for r in recall],
        }
    return out


def settle(run: RunFolder, batches: Sequence[Batch]) -> None:
    """After a run is recorded as done: keep of its uploads only what releases need.

    Idempotent (a crash half-way is finished by the next run's settle). Key files are
    replaced atomically; withdrawn records' keys become "".
    """
    for batch in batches:
        if batch.kind == "withdrawal":
            batch.path.unlink(missing_ok=True)
            continue
        ids_file = run.ids(batch.upload_id)
        if batch.keys_path is None or not ids_file.exists():
            continue
        keys = _keys(batch)
        ids = np.load(ids_file, allow_pickle=False)
        gone = (ids == "") & (keys != "")
        if gone.any() or not batch.keys_path.exists():
            keys = keys.copy()
            keys[ids == ""] = ""
            save_keys(batch.keys_path, keys, replace=True)
        batch.path.unlink(missing_ok=True)
