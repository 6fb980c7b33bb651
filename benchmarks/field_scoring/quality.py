"""Linkage quality of record-level Dice, segmented Dice, Fellegi-Sunter and Splink."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

import numpy as np

from benchmarks.field_scoring.encodings import SKIP, encode_segmented, layout
from benchmarks.quality.datasets import BENCH_SECRET, I64, U8, Dataset, flat_records
from benchmarks.quality.datasets import synthetic_dataset as make_dataset
from encoder.keys import Secret
from linkage_unit.matching.blocking import DEFAULT_BLOCKING, candidate_pairs
from linkage_unit.matching.candidates import Candidates
from linkage_unit.matching.evaluation import evaluate
from linkage_unit.matching.fellegi_sunter import (
    best_posterior_threshold,
    estimate_u,
    estimated_quality,
    fit_sessions,
    random_pairs,
)
from linkage_unit.matching.linkage import link_encodings
from linkage_unit.matching.segments import comparison_levels, segment_dice
from linkage_unit.matching.solving import cluster, greedy_solve_two

__all__ = ["line", "quality"]


#: Columns blanked in the missing-columns variant: (party position, columns); the second
#: partner then holds no address at all.
_BLANKED: Final = ((0, ("sex",)), (1, ("postcode", "address_line")))


def _labels(dataset: Dataset, rows: list[I64], party: I64, row: I64, entity: I64) -> I64:
    """Entity of every record of the dataset (records the encoder rejected: singletons)."""
    _, person, offsets = flat_records(dataset)
    labels = np.arange(len(person), dtype=np.int64) + int(entity.max(initial=-1)) + 1
    own = np.concatenate(rows)[
        np.concatenate([[0], np.cumsum([len(r) for r in rows])])[party] + row
    ]
    labels[offsets[party] + own] = entity
    return labels


def _dice_run(dataset: Dataset, bits: list[U8], rows: list[I64]) -> dict[str, Any]:
    party, person, _ = flat_records(dataset)
    groups, summary = link_encodings(bits, "auto")
    m = evaluate(party, person, _labels(dataset, rows, groups.party, groups.row, groups.entity))
    return {
        "precision": m.precision,
        "recall": m.recall,
        "f1": m.f1,
        "est_precision": summary.estimated_precision,
        "est_recall": summary.estimated_recall,
        "threshold": summary.threshold,
    }


def _fs_run(
    dataset: Dataset, bits: list[U8], rows: list[I64], floor: float, seed: int
) -> dict[str, Any]:
    lay = [s for s in layout() if s.name not in SKIP]
    pairs = [(a, b) for a in range(len(bits)) for b in range(a + 1, len(bits))]
    cands, lv, rand = {}, {}, []
    for a, b in pairs:
        c = candidate_pairs(bits[a], bits[b], floor, DEFAULT_BLOCKING)
        cands[(a, b)] = c
        lv[(a, b)] = comparison_levels(segment_dice(bits[a], bits[b], c.i, c.j, lay), lay)
        ri, rj = random_pairs(len(bits[a]), len(bits[b]), 100_000, seed + a * 100 + b)
        rand.append(comparison_levels(segment_dice(bits[a], bits[b], ri, rj, lay), lay))
    u = estimate_u(np.concatenate(rand), [s.n_levels for s in lay])
    # Splink-style sessions: m from pairs with the same date of birth, then the same names.
    model = fit_sessions(np.concatenate([lv[p] for p in pairs]), u, [1, 0])
    weights = {p: model.match_weights(lv[p]) for p in pairs}
    solved_post = []
    for p in pairs:
        # Greedy order: match weight, ties (pairs of one comparison vector) by record Dice.
        i, j, _ = greedy_solve_two(cands[p].i, cands[p].j, weights[p] + 1e-6 * cands[p].score)
        a, b = p
        solved = comparison_levels(segment_dice(bits[a], bits[b], i, j, lay), lay)
        solved_post.append(model.posteriors(solved))
    post = np.concatenate(solved_post)
    t, est_p, est_r, _ = best_posterior_threshold(post)
    kept = {}
    for p in pairs:
        keep = model.posteriors(lv[p]) >= t
        c = cands[p]
        kept[p] = Candidates(c.i[keep], c.j[keep], weights[p][keep] + 1e-6 * c.score[keep])
    g = cluster(kept, [len(x) for x in bits], duplicates="forbid")
    party, person, _ = flat_records(dataset)
    m = evaluate(party, person, _labels(dataset, rows, g.party, g.row, g.entity))
    at_half = estimated_quality(post, 0.5)
    return {
        "precision": m.precision,
        "recall": m.recall,
        "f1": m.f1,
        "est_precision": est_p,
        "est_recall": est_r,
        "threshold": t,
        "prior": model.prior,
        "candidates": int(sum(c.i.size for c in cands.values())),
        "est_f1_at_0_5": at_half[2],
        "m": {s.name: np.round(x, 3).tolist() for s, x in zip(lay, model.m, strict=True)},
        "u": {s.name: np.round(x, 3).tolist() for s, x in zip(lay, model.u, strict=True)},
        "em_iterations": model.iterations,
    }


def _blank(dataset: Dataset) -> Dataset:
    """The dataset with one partner's sex and another's address columns emptied."""
    parties = list(dataset.parties)
    for k, cols in _BLANKED:
        frame, clean = parties[k].frame.copy(), parties[k].clean.copy()
        for col in cols:
            frame[col], clean[col] = "", None
        parties[k] = replace(parties[k], frame=frame, clean=clean)
    return replace(dataset, name=dataset.name + "+missing", parties=tuple(parties))


def quality(
    scenarios: Sequence[str], people: int, seed: int, floor: float, splink: bool
) -> list[dict[str, Any]]:
    """Every method on every scenario (and its missing-columns variant)."""
    secret = Secret(BENCH_SECRET)
    out = []
    for name in scenarios:
        base = make_dataset(name, people, seed)
        for dataset in (base, _blank(base)):
            started = time.perf_counter()
            enc = [encode_segmented(p, secret) for p in dataset.parties]
            rows = [e.rows for e in enc]
            print(
                f"# {dataset.name}: {sum(len(r) for r in rows):,} records encoded "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
            bits = {
                f: [getattr(e, f) for e in enc]
                for f in ("record", "record_unsalted", "segmented", "segmented_salted")
            }
            runs: dict[str, tuple[Any, str]] = {
                "record-dice (today)": (_dice_run, "record"),
                "record-dice unsalted": (_dice_run, "record_unsalted"),
                "segmented-dice": (_dice_run, "segmented"),
                "segmented-dice all salted": (_dice_run, "segmented_salted"),
                "fellegi-sunter": (_fs_run, "segmented"),
                "fellegi-sunter all salted": (_fs_run, "segmented_salted"),
            }
            for method, (run, encoding) in runs.items():
                started = time.perf_counter()
                args = (floor, seed) if run is _fs_run else ()
                row = {
                    "scenario": dataset.name,
                    "method": method,
                    **run(dataset, bits[encoding], rows, *args),
                }
                row["seconds"] = time.perf_counter() - started
                out.append(row)
                print(line(row), flush=True)
            if splink:
                # Splink's own import (optional bench extra) happens inside run_splink.
                from benchmarks.quality.splink_runs import run_splink  # noqa: PLC0415

                started = time.perf_counter()
                r = run_splink(dataset)
                at = r["at_0_5"]
                row = {
                    "scenario": dataset.name,
                    "method": "splink (plain text)",
                    "precision": at["precision"],
                    "recall": at["recall"],
                    "f1": at["f1"],
                    "threshold": 0.5,
                    "seconds": time.perf_counter() - started,
                }
                out.append(row)
                print(line(row), flush=True)
    return out


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-" if value is None else str(value)


def line(row: dict[str, Any]) -> str:
    """One row of the Markdown quality table."""
    cols = (
        "scenario",
        "method",
        "f1",
        "precision",
        "recall",
        "est_precision",
        "est_recall",
        "threshold",
        "seconds",
    )
    return "| " + " | ".join(_fmt(row.get(c)) for c in cols) + " |"
