"""clkhash + anonlink on a dataset: the reference PPRL tools, exhaustive candidates."""

from __future__ import annotations

import array
import copy
import time
from typing import Any, Final

import anonlink
import numpy as np
from clkhash import clk
from clkhash.schema import from_json_dict

from benchmarks.quality.datasets import BENCH_SECRET, Dataset, flat_records
from benchmarks.quality.sweep import DICE_GRID, best_point
from benchmarks.quality.variations import by_variation_for_rows
from encoder.schema import derived_value
from linkage_unit.matching.evaluation import evaluate

__all__ = [
    "ANONLINK_FLOOR",
    "ANONLINK_FLOOR_FEBRL",
    "run_anonlink",
]

#: of unrelated people already score, so the candidate set would be most of all pairs);
#: FEBRL4's tutorial schema sets ~70% of the bits, so its floor is higher.
ANONLINK_FLOOR: Final = 0.6
ANONLINK_FLOOR_FEBRL: Final = 0.7
#: Published figures of the clkhash/anonlink FEBRL4 tutorial (threshold 0.8).


def _clkhash_rows(dataset: Dataset, schema_doc: dict[str, Any]) -> list[list[list[str]]]:
    """Each party's clean columns in schema order, as clkhash reads them.

    A derived feature's column is built from its sources' clean values by pacelink's rule (a
    clkhash user can write the same column).
    """
    names = [f["identifier"] for f in schema_doc["features"]]
    derived = {
        f["identifier"]: (f["derivedFrom"], f.get("derive"))
        for f in schema_doc["features"]
        if "derivedFrom" in f
    }
    out = []
    for p in dataset.parties:
        frame = p.clean.reindex(columns=names).fillna("").astype(str)
        for name, (sources, derive) in derived.items():
            frame[name] = [
                derived_value(parts, derive) for parts in frame[sources].itertuples(index=False)
            ]
        out.append(frame.values.tolist())
    return out


def _clkhash_schema(doc: dict[str, Any]) -> dict[str, Any]:
    """The clkhash part of a schema: pacelink's extension keys removed."""
    out = copy.deepcopy(doc)
    for feature in out["features"]:
        for key in ("standardise", "optional", "onInvalid", "derivedFrom", "derive"):
            feature.pop(key, None)
    return out


def run_anonlink(dataset: Dataset) -> dict[str, Any]:
    """Link with clkhash encodings, anonlink candidates and greedy solving, along the grid."""
    party, person, offsets = flat_records(dataset)
    floor = ANONLINK_FLOOR_FEBRL if dataset.name == "febrl4" else ANONLINK_FLOOR
    schema = from_json_dict(_clkhash_schema(dataset.schema))
    started = time.perf_counter()
    filters = [
        clk.generate_clks(rows, schema, BENCH_SECRET, validate=False, max_workers=2)
        for rows in _clkhash_rows(dataset, dataset.schema)
    ]
    encode_seconds = time.perf_counter() - started
    started = time.perf_counter()
    sims, (d0, d1), (r0, r1) = anonlink.candidate_generation.find_candidate_pairs(
        filters, anonlink.similarities.dice_coefficient_accelerated, floor
    )
    compare_seconds = time.perf_counter() - started
    s = np.asarray(sims, np.float64)
    arrays = [np.asarray(x, np.int64) for x in (d0, d1, r0, r1)]
    rows = []
    labelled = []
    for t in DICE_GRID[floor <= DICE_GRID]:
        keep = s >= t
        # anonlink expects its own array types, sorted by descending similarity (a mask
        # keeps the order it returned).
        cands = (
            array.array("d", s[keep]),
            tuple(array.array("I", a[keep]) for a in arrays[:2]),
            tuple(array.array("I", a[keep]) for a in arrays[2:]),
        )
        labels = np.arange(len(person), dtype=np.int64)
        for g, members in enumerate(anonlink.solving.greedy_solve(cands)):
            for ds, rec in members:
                labels[offsets[ds] + rec] = len(person) + g
        rows.append({"threshold": float(t), **evaluate(party, person, labels).as_dict()})
        labelled.append((rows[-1], labels))
    best = best_point(rows)
    by_variation_for_rows(dataset, party, person, labelled, [best])
    return {
        "curve": [{k: v for k, v in r.items() if k != "by_variation"} for r in rows],
        "best": best,
        "encode_seconds": encode_seconds,
        "compare_seconds": compare_seconds,
        "floor": floor,
    }
