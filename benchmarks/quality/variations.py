"""Recall broken down by variation: which true pairs a linker finds, by what the records got.

The generator records, per record, which variations it applied (ground truth kept outside the
partner files: :func:`benchmarks.synthetic.extracts.variation_flags`). A true pair (two records
of one person in *different* files, as the pairwise measures count them) involves a variation
when either record got it; its recall is the share of those pairs that the linker put in one
entity. ``none`` is the pairs where neither record got any recorded variation (the other
errors, typos, formats and missing values, still apply), for comparison.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd

from benchmarks.quality.datasets import I64, Dataset

__all__ = [
    "NO_VARIATION",
    "by_variation_for_rows",
    "recall_by_variation",
    "true_pairs",
    "variation_flags_of",
]

NO_VARIATION: Final = "none"
"""The row for pairs where neither record got any recorded variation."""


def true_pairs(party: I64, person: I64) -> tuple[I64, I64]:
    """Every true pair: two records of one person in different files (``i < j``)."""
    frame = pd.DataFrame({"i": np.arange(len(person)), "person": person, "party": party})
    both = frame.merge(frame, on="person", suffixes=("_a", "_b"))
    keep = (both["i_a"] < both["i_b"]) & (both["party_a"] != both["party_b"])
    return (
        both.loc[keep, "i_a"].to_numpy(np.int64),
        both.loc[keep, "i_b"].to_numpy(np.int64),
    )


def variation_flags_of(dataset: Dataset) -> pd.DataFrame | None:
    """Every record's variation flags, in (party, row) order; ``None`` if a party has none."""
    frames = [p.variations for p in dataset.parties]
    if not frames or any(f is None for f in frames):
        return None
    return pd.concat(frames, ignore_index=True).astype(bool)


def recall_by_variation(
    party: I64, person: I64, flags: pd.DataFrame, labels: I64
) -> dict[str, dict[str, Any]]:
    """Recall of the true pairs involving each variation, under a predicted grouping.

    Args:
        party: File of each record.
        person: True person of each record.
        flags: One boolean column per variation kind, a row per record (same order).
        labels: Predicted entity of each record.

    Returns:
        Per kind (then :data:`NO_VARIATION`): ``pairs`` (true pairs involving it) and
        ``recall`` (share of them predicted together; ``None`` when there are none).
    """
    if len(flags) != len(person) or len(labels) != len(person):
        raise ValueError(
            f"{len(flags)} flag rows and {len(labels)} labels for {len(person)} records"
        )
    i, j = true_pairs(party, person)
    together = labels[i] == labels[j]
    values = flags.to_numpy(dtype=bool)
    out: dict[str, dict[str, Any]] = {}
    masks = {k: values[i, c] | values[j, c] for c, k in enumerate(flags.columns)}
    masks[NO_VARIATION] = ~(values[i].any(axis=1) | values[j].any(axis=1))
    for kind, mask in masks.items():
        count = int(mask.sum())
        out[str(kind)] = {
            "pairs": count,
            "recall": float(together[mask].mean()) if count else None,
        }
    return out


def by_variation_for_rows(
    dataset: Dataset,
    party: I64,
    person: I64,
    labelled: list[tuple[dict[str, Any], I64]],
    keep: list[dict[str, Any]],
) -> None:
    """Add ``by_variation`` to the rows of a sweep that are kept (best, at 0.5), in place.

    Args:
        dataset: The dataset (its parties' variation flags).
        party: File of each record.
        person: True person of each record.
        labelled: Each sweep row with its predicted entity labels.
        keep: The rows (the same objects) to add the breakdown to.
    """
    flags = variation_flags_of(dataset)
    if flags is None:
        return
    for row, labels in labelled:
        if any(row is k for k in keep):
            row["by_variation"] = recall_by_variation(party, person, flags, labels)
