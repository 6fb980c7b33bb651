"""End-to-end offline linkage of N parties' encodings into entities (`pacelink link`).

Each file is one party's snapshot, linked on an empty entity index by
:func:`linkage_unit.matching.incremental.link_changes`, the function the linkage unit's
runs and the benchmarks link with: candidates between every pair of parties (with
blocking, or exhaustively, optionally on a Dask cluster), a threshold fixed or estimated
from the scores without labels, and records grouped into entities holding at most one
record per party (unless a party's duplicate clients may be linked).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from linkage_unit.matching.blocking import DEFAULT_BLOCKING, BlockingConfig
from linkage_unit.matching.entities import EntityIndex
from linkage_unit.matching.incremental import Delivery, LinkSettings, link_changes
from linkage_unit.matching.solving import Duplicates, Groups
from linkage_unit.matching.threshold import Threshold

__all__ = ["LinkProgress", "LinkSummary", "link_encodings"]

#: A progress callback: ``(description of the current step, share of the whole linkage
#: done, in [0, 1])``.  The share never decreases within one linkage.
LinkProgress = Callable[[str, float], None]


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


def link_encodings(
    parties: Sequence[NDArray[np.uint8]],
    threshold: Threshold | float | str,
    *,
    blocking: BlockingConfig = DEFAULT_BLOCKING,
    duplicates: Duplicates = "forbid",
    scheduler: str | Any | None = None,
    workers: int | None = None,
    progress: LinkProgress | None = None,
    scratch: Path | None = None,
    device: Literal["cpu", "gpu"] = "cpu",
) -> tuple[Groups, LinkSummary]:
    """Link the encodings of N parties into entities.

    Args:
        parties: Each party's packed filters, `(n_p, l / 8)` uint8, all of one bit length.
        threshold: Dice threshold, or "auto" to estimate it from the scores without labels
            (candidates are then gathered from a lower floor and the mixture fitted); a
            `Threshold`, or its text or JSON form.
        blocking: Blocking configuration; `BlockingConfig(exhaustive=True)` compares all
            pairs, as does any config for two parties with at most its
            `exhaustive_up_to` pairs.
        duplicates: "forbid" (at most one record per party per entity), "linked" (two
            records of one party share an entity only when they match each other: a
            partner's duplicate clients) or "allow" (no party constraint).
        scheduler: Dask scheduler (address or client): the comparisons run on its workers,
            with the same result.
        scratch: With ``scheduler`` and blocking: a folder the Dask workers can read, where
            each comparison's two sides are written for them to memory-map.
        device: "gpu" scores every pair on a CUDA GPU (no blocking).
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
    if len({p.shape[1] for p in parties}) != 1:
        raise ValueError("all parties' encodings must have the same bit length")
    # Every row is a record of its own (row numbers as keys, as short strings as they can
    # be: a million rows' keys are then 28 MB): identical rows stay apart.
    changes = [
        Delivery(party, np.ascontiguousarray(bits),
                 np.arange(len(bits)).astype(f"<U{len(str(max(len(bits) - 1, 0)))}"),
                 "snapshot")
        for party, bits in enumerate(parties)
    ]  # fmt: skip
    settings = LinkSettings(
        threshold=Threshold.parse(threshold), duplicates=duplicates, blocking=blocking,
        workers=workers, scheduler=scheduler, scratch=scratch, device=device,
    )  # fmt: skip
    outcome = link_changes(EntityIndex.unnamed(), changes, settings, progress=progress)
    index = outcome.index
    # Records are numbered party by party, row by row, as Groups orders them, and on an
    # empty index entities are issued in order of their first record, as Groups numbers them.
    groups = Groups(
        party=index.party.copy(),
        row=np.concatenate([np.arange(len(p), dtype=np.int64) for p in parties]),
        entity=index.entity.copy(),
    )
    sizes = np.bincount(groups.entity, minlength=groups.n_entities)
    pairs = list(itertools.combinations(range(len(parties)), 2))
    summary = LinkSummary(
        records=tuple(p.shape[0] for p in parties),
        comparisons=outcome.comparisons,
        candidates=len(outcome.pairs[0]),
        entities=groups.n_entities,
        linked_records=int(sizes[sizes > 1].sum()),
        threshold=outcome.threshold,
        threshold_method=outcome.threshold_method,
        estimated_precision=outcome.estimated_precision,
        estimated_recall=outcome.estimated_recall,
        blocking="; ".join(
            dict.fromkeys(
                blocking.describe(parties[a].shape[0], parties[b].shape[0]) for a, b in pairs
            )
        ),
        seconds=time.perf_counter() - started,
        duplicates_threshold=outcome.duplicates_threshold,
    )
    return groups, summary
