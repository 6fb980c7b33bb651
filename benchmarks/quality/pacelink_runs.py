"""pacelink on a dataset: encoded as partners would, linked at ``auto`` and along the grid."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from benchmarks.quality.datasets import F64, I64, U8, Dataset, flat_records
from benchmarks.quality.sweep import DICE_GRID, best_point
from benchmarks.quality.variations import (
    by_variation_for_rows,
    recall_by_variation,
    variation_flags_of,
)
from encoder.encode import EncodeOptions, encode_file
from encoder.fileformat import read_encodings
from encoder.keymap import read_key_map
from encoder.keys import Secret
from encoder.outputs import output_paths
from encoder.schema import LinkageSchema
from linkage_unit.matching.blocking import DEFAULT_BLOCKING, candidate_pairs
from linkage_unit.matching.candidates import Candidates
from linkage_unit.matching.entities import EntityIndex
from linkage_unit.matching.evaluation import evaluate
from linkage_unit.matching.incremental import Delivery, LinkSettings, link_changes
from linkage_unit.matching.linkage import link_encodings
from linkage_unit.matching.solving import Duplicates, cluster, greedy_solve_two
from linkage_unit.matching.threshold import DEFAULT_FLOOR, Threshold

__all__ = [
    "HISTOGRAM_BINS",
    "Encoded",
    "encode_parties",
    "run_incremental",
    "run_pacelink",
]

HISTOGRAM_BINS: Final = np.round(np.arange(0.5, 1.0001, 0.01), 2)


@dataclass
class Encoded:
    """A dataset's files encoded by pacelink: bits and the input row of each bit row."""

    bits: list[U8]
    rows: list[I64]
    rejected: int
    density: float
    seconds: float


def encode_parties(dataset: Dataset, schema: LinkageSchema, secret: Secret, work: Path) -> Encoded:
    """Encode every file with ``encode_file``, as a partner would."""
    started = time.perf_counter()
    bits, rows, rejected = [], [], 0
    for k, party in enumerate(dataset.parties):
        src = work / f"p{k}.csv"
        # A partner whose file lacks a field declares it, as `pacelink encode --absent` does.
        options = EncodeOptions(id_column="local_id", absent=frozenset(party.absent))
        party.frame.to_csv(src, index=False)
        out = work / f"p{k}.plk"
        report = encode_file(src, schema, secret, out, options)
        rejected += report.rejected
        position = pd.Series(np.arange(len(party.frame)), index=party.frame["local_id"])
        # A decoy (schema hardening) has no local ID and no input row: -1.
        keys = read_key_map(output_paths(out)[0])
        rows.append(position.reindex(keys).fillna(-1).to_numpy(np.int64))
        bits.append(np.array(read_encodings(out).bits))
    total = sum(b.size for b in bits) * 8
    ones = sum(int(np.bitwise_count(b).sum()) for b in bits)
    return Encoded(
        bits, rows, rejected, ones / total if total else 0.0, time.perf_counter() - started
    )


def _labels_from_groups(
    encoded: Encoded, offsets: I64, n: int, entity: I64, group_party: I64, group_row: I64
) -> I64:
    """Entity label of every input record; rejected records become singletons."""
    labels = np.arange(n, dtype=np.int64) + int(entity.max(initial=-1)) + 1
    rows = np.concatenate(encoded.rows) if encoded.rows else np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.cumsum([len(r) for r in encoded.rows])])
    own = rows[starts[group_party] + group_row]
    real = own >= 0  # decoys are in the encodings but are nobody's record
    labels[offsets[group_party[real]] + own[real]] = entity[real]
    return labels


def _at_least(c: Candidates, t: float) -> Candidates:
    keep = c.score >= t
    return Candidates(c.i[keep], c.j[keep], c.score[keep])


def _histograms(
    encoded: Encoded, candidates: dict[tuple[int, int], Candidates], dataset: Dataset
) -> dict[str, list[int]]:
    """Scores of the one-to-one solved pairs (at the floor) by truth, per 0.01 bin."""
    match: list[F64] = []
    non: list[F64] = []
    for (a, b), c in candidates.items():
        i, j, s = greedy_solve_two(*c)
        ra, rb = encoded.rows[a][i], encoded.rows[b][j]
        real = (ra >= 0) & (rb >= 0)  # pairs with a decoy are neither
        pa = dataset.parties[a].person[ra[real]]
        pb = dataset.parties[b].person[rb[real]]
        match.append(s[real][pa == pb])
        non.append(s[real][pa != pb])
    edges = HISTOGRAM_BINS
    return {
        "edges": edges.tolist(),
        "match": np.histogram(np.concatenate(match), bins=edges)[0].tolist(),
        "nonmatch": np.histogram(np.concatenate(non), bins=edges)[0].tolist(),
    }


def run_pacelink(
    dataset: Dataset, encoded: Encoded, *, curve: bool = True, duplicates: Duplicates = "forbid"
) -> dict[str, Any]:
    """Link with pacelink at ``auto`` and along the threshold grid, under a duplicates rule."""
    party, person, offsets = flat_records(dataset)
    n = len(person)
    started = time.perf_counter()
    groups, summary = link_encodings(encoded.bits, "auto", duplicates=duplicates)
    seconds = time.perf_counter() - started
    auto_labels = _labels_from_groups(encoded, offsets, n, groups.entity, groups.party, groups.row)
    auto: dict[str, Any] = {**evaluate(party, person, auto_labels).as_dict()}
    auto["threshold"] = summary.threshold
    flags = variation_flags_of(dataset)
    if flags is not None:
        auto["by_variation"] = recall_by_variation(party, person, flags, auto_labels)
    out: dict[str, Any] = {
        "auto": auto,
        "auto_method": summary.threshold_method,
        "estimated_precision": summary.estimated_precision,
        "estimated_recall": summary.estimated_recall,
        "link_seconds": seconds,
        "encode_seconds": encoded.seconds,
        "rejected_records": encoded.rejected,
        "density": encoded.density,
    }
    if not curve:
        return out
    sizes = [b.shape[0] for b in encoded.bits]
    candidates = {
        (a, b): candidate_pairs(encoded.bits[a], encoded.bits[b], DEFAULT_FLOOR, DEFAULT_BLOCKING)
        for a in range(len(sizes))
        for b in range(a + 1, len(sizes))
    }
    within: dict[tuple[int, int], Candidates] = {}
    if duplicates != "forbid":  # a partner's duplicate clients: pairs within each file
        for p, bits in enumerate(encoded.bits):
            i, j, sc = candidate_pairs(bits, bits, DEFAULT_FLOOR, DEFAULT_BLOCKING)
            within[(p, p)] = Candidates(i[i < j], j[i < j], sc[i < j])
    rows = []
    labelled = []
    for t in DICE_GRID:
        g = cluster(
            {k: _at_least(c, float(t)) for k, c in {**candidates, **within}.items()},
            sizes,
            duplicates=duplicates,
        )
        labels = _labels_from_groups(encoded, offsets, n, g.entity, g.party, g.row)
        rows.append({"threshold": float(t), **evaluate(party, person, labels).as_dict()})
        labelled.append((rows[-1], labels))
    best = best_point(rows)
    by_variation_for_rows(dataset, party, person, labelled, [best])
    out["curve"] = [{k: v for k, v in r.items() if k != "by_variation"} for r in rows]
    out["best"] = best
    out["candidates"] = sum(int(c[0].size) for c in candidates.values())
    out["histogram"] = _histograms(encoded, candidates, dataset)
    return out


def run_incremental(
    dataset: Dataset, schema: LinkageSchema, secret: Secret, work: Path
) -> dict[str, Any]:
    """Linkage-ID stability when batch 2 is added to an index built from batch 1."""
    rounds: list[list[tuple[U8, NDArray[np.str_], I64]]] = []
    for number in range(2):
        files = []
        for k, deliveries in enumerate(dataset.batches):
            party = deliveries[number]
            sub = Dataset("batch", "", (party,), dataset.schema)
            folder = work / f"inc{number}_{k}"
            folder.mkdir()
            enc = encode_parties(sub, schema, secret, folder)
            rows = enc.rows[0]
            decoy = rows < 0
            keys = party.frame["local_id"].to_numpy(dtype=object)[rows]
            # Decoys are new records in every delivery: keys no real record has.
            keys[decoy] = [f"decoy-{number}-{i}" for i in range(int(decoy.sum()))]
            person = party.person[rows]
            person[decoy] = -1 - np.arange(int(decoy.sum()))
            files.append((enc.bits[0], keys.astype(str), person))
        rounds.append(files)
    # Two runs of the linkage unit: batch 1's files as snapshots at "auto", then batch 2's
    # as deltas at the threshold the first run chose (the unit pins it), through the
    # function the unit's runs call.
    first = link_changes(
        EntityIndex.empty(salt=b"pacelink-quality-benchmark-salt!"),
        [Delivery(k, bits, keys, "snapshot") for k, (bits, keys, _) in enumerate(rounds[0])],
        LinkSettings(threshold=Threshold()),
    )
    second = link_changes(
        first.index,
        [Delivery(k, bits, keys, "delta") for k, (bits, keys, _) in enumerate(rounds[1])],
        LinkSettings(threshold=Threshold(first.threshold)),
    )
    before = np.concatenate([first.index.lookup(k, f[1]) for k, f in enumerate(rounds[0])])
    after = np.concatenate([second.index.lookup(k, f[1]) for k, f in enumerate(rounds[0])])
    people = np.concatenate([f[2] for f in rounds[0]])
    real = people >= 0  # decoys are nobody
    same = pd.Series((before == after)[real]).groupby(people[real]).all()
    return {
        "threshold": first.threshold,
        "people_batch1": len(same),
        "stable_share": float(same.mean()),
        "records": int(second.index.n_records),
        "entities": int(second.index.n_entities),
        "updated_records": second.updated_records,
        "moved_records": second.moved_records,
    }
