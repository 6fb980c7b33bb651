"""One run of a project: link its new batches into the entity index and write the results.

A run is a pure function of its inputs — the project's salt, the entity index of the last
completed run, the batches to link (in upload order) and the threshold — so a run that is
interrupted and started again from scratch produces exactly what an uninterrupted one
would have. It writes only inside its own run folder; the worker makes the result current
by recording it in the database once everything is written.

Outputs in the run folder::

    index/             the entity index after the run (linkage_unit.matching.EntityIndex)
    ids/<upload>.npy   the linkage ID of every row of every upload of the project
    counts.json        entities per set of parties (as bit masks), before suppression, held
                       steady between runs (see :func:`steady_counts`)
    scores.json        histogram of candidate scores and the pairs near the threshold
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from encoder.fileformat import read_encodings
from linkage_unit.matching.entities import EntityIndex, content_keys
from linkage_unit.matching.linkage import link_encodings
from linkage_unit.matching.similarity import dice_candidates
from linkage_unit.matching.threshold import DEFAULT_THRESHOLD

__all__ = ["NEAR", "Batch", "RunError", "RunInputs", "RunOutcome", "execute", "steady_counts"]

#: Pairs within this distance of the threshold are listed for the operator's review.
NEAR: Final = 0.05
_MAX_NEAR_PAIRS: Final = 1000
_BIN_WIDTH: Final = 0.01

Progress = Callable[[str, float], None]


class RunError(Exception):
    """A run failed for a reason the operator can act on (the message is safe to show)."""


@dataclass(frozen=True)
class Batch:
    """An upload: its ID, its party's position and where its encodings are."""

    upload_id: str
    party: int
    path: Path


@dataclass(frozen=True)
class RunInputs:
    """Everything a run depends on."""

    # Kept out of reprs: with the salt, anyone holding an index could issue its IDs.
    salt: bytes = field(repr=False)
    parties: tuple[str, ...]
    base_index: Path | None
    new_batches: tuple[Batch, ...]
    all_batches: tuple[Batch, ...]
    threshold: float | Literal["auto"]
    #: A count moves from the last run's only when it changed by at least this much (the
    #: policy's suppression ``min_count``; 1: every change shows).
    counts_steady_within: int = 1


@dataclass(frozen=True)
class RunOutcome:
    """What a run produced, for the run record."""

    threshold: float
    threshold_method: str
    pin_threshold: bool
    summary: dict[str, Any]


def _bits(batch: Batch) -> NDArray[np.uint8]:
    try:
        return np.ascontiguousarray(read_encodings(batch.path).bits)
    except Exception as exc:  # the file was checked on upload: damage since is the unit's
        raise RunError(f"the encodings of upload {batch.upload_id} cannot be read") from exc


def _previous_counts(base: Path | None) -> dict[int, int] | None:
    if base is None:
        return None
    try:
        raw = json.loads((base / "counts.json").read_text())
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


def _choose_threshold(
    inputs: RunInputs, index: EntityIndex, new: Sequence[tuple[Batch, NDArray[np.uint8]]]
) -> tuple[float, str, bool, dict[str, Any]]:
    """The threshold to link with, how it was chosen, and whether to pin it."""
    if inputs.threshold != "auto":
        return float(inputs.threshold), "fixed", False, {}
    by_party: dict[int, list[NDArray[np.uint8]]] = {}
    for party in np.unique(index.party):
        by_party.setdefault(int(party), []).append(index.bits[index.party == party])
    for batch, bits in new:
        by_party.setdefault(batch.party, []).append(bits)
    parties = [np.concatenate(v) for _, v in sorted(by_party.items()) if sum(map(len, v))]
    if len(parties) < 2:
        # Nothing to link yet: use the default, and estimate once two parties have data.
        return DEFAULT_THRESHOLD, "default (fewer than two parties have data)", False, {}
    _, summary = link_encodings(parties, "auto")
    extra = {
        "estimated_precision": summary.estimated_precision,
        "estimated_recall": summary.estimated_recall,
    }
    return summary.threshold, summary.threshold_method, True, extra


def execute(inputs: RunInputs, out_dir: Path, progress: Progress) -> RunOutcome:
    """Run the linkage; write the outputs into ``out_dir`` (replaced if it exists).

    Raises:
        RunError: With a message fit for the operator.
    """
    started = time.perf_counter()
    if out_dir.exists():  # left by an attempt that was interrupted
        shutil.rmtree(out_dir)
    out_dir.mkdir()
    progress("loading", 0.02)
    index = (
        EntityIndex.load(inputs.base_index / "index")
        if inputs.base_index is not None
        else EntityIndex.empty(inputs.salt)
    )
    new = [(batch, _bits(batch)) for batch in inputs.new_batches]
    read_now = {batch.upload_id: bits for batch, bits in new}  # not read (and checked) twice
    progress("choosing the threshold", 0.05)
    threshold, method, pin, estimates = _choose_threshold(inputs, index, new)
    floor = max(threshold - NEAR, 0.01)
    edges = np.round(np.arange(floor, 1.0 + _BIN_WIDTH, _BIN_WIDTH), 6)
    histogram = np.zeros(len(edges) - 1, dtype=np.int64)
    near: list[tuple[float, int, str, int, int]] = []
    new_records = 0
    merges = 0
    for k, (batch, bits) in enumerate(new):
        progress(f"linking batch {k + 1} of {len(new)}", 0.1 + 0.7 * k / max(len(new), 1))
        others = np.flatnonzero(index.party != batch.party)
        i = j = np.zeros(0, dtype=np.int64)
        s = np.zeros(0)
        if len(others) and len(bits):
            i, j, s = dice_candidates(bits, index.bits[others], floor)
            j = others[j]
        histogram += np.histogram(s, bins=edges)[0]
        keep = s >= threshold
        before = index.n_records
        result = index.link_candidates(batch.party, bits, (i[keep], j[keep], s[keep]))
        index = result.index
        new_records += index.n_records - before
        merges += len(result.merged_from)
        close = np.flatnonzero(np.abs(s - threshold) < NEAR)
        for c in close[np.argsort(np.abs(s[close] - threshold), kind="stable")][:_MAX_NEAR_PAIRS]:
            near.append((float(s[c]), batch.party, str(result.ids[i[c]]),
                         int(index.party[j[c]]), int(j[c])))  # fmt: skip
    progress("saving the entity index", 0.85)
    index.save(out_dir / "index")
    ids_dir = out_dir / "ids"
    ids_dir.mkdir()
    current = index.record_ids
    for batch in inputs.all_batches:
        known = read_now[batch.upload_id] if batch.upload_id in read_now else _bits(batch)
        ids = index.lookup(batch.party, content_keys(known))
        if np.any(ids == ""):
            raise RunError(f"upload {batch.upload_id} has rows missing from the entity index")
        np.save(ids_dir / f"{batch.upload_id}.npy", ids, allow_pickle=False)
    progress("counting overlaps", 0.95)
    masks = np.zeros(len(index.entity_id), dtype=np.int64)
    np.bitwise_or.at(masks, index.entity, np.left_shift(1, index.party))
    live = masks[masks > 0]
    values, counts = np.unique(live, return_counts=True)
    exact = {int(m): int(c) for m, c in zip(values, counts, strict=True)}
    previous = _previous_counts(inputs.base_index)
    steady = steady_counts(exact, previous, inputs.counts_steady_within)
    (out_dir / "counts.json").write_text(json.dumps({str(m): c for m, c in steady.items()}))
    near.sort(key=lambda row: (abs(row[0] - threshold), row))
    near = near[:_MAX_NEAR_PAIRS]
    # IDs seen while linking may since have merged into older ones: report current IDs.
    ids_a = index.resolve([row[2] for row in near]) if near else np.zeros(0, dtype=str)
    scores = {
        "threshold": threshold,
        "bin_edges": edges.tolist(),
        "histogram": histogram.tolist(),
        "near_pairs": [
            {
                "score": round(score, 6),
                "party_a": inputs.parties[pa],
                "id_a": str(ida),
                "party_b": inputs.parties[pb],
                "id_b": str(current[rec]),
            }
            for (score, pa, _, pb, rec), ida in zip(near, ids_a, strict=True)
        ],
    }
    (out_dir / "scores.json").write_text(json.dumps(scores))
    sizes = np.bincount(index.entity, minlength=len(index.entity_id))
    summary = {
        "records": index.n_records,
        "records_by_party": {
            name: int(np.count_nonzero(index.party == p)) for p, name in enumerate(inputs.parties)
        },
        "new_batches": len(new),
        "new_records": int(new_records),
        "entities": index.n_entities,
        "linked_entities": int(np.count_nonzero(sizes > 1)),
        # Entities merged into older ones by new records that matched both; their IDs now
        # stand for the older entity's (docs/entities.md).
        "merged_entities": int(merges),
        "threshold": threshold,
        "threshold_method": method,
        **estimates,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return RunOutcome(threshold, method, pin, summary)
