"""Evidence for field-aware scoring: segmented encodings, Fellegi-Sunter, and their exposure.

    python -m benchmarks.field_scoring --people 4000            # quality table
    python -m benchmarks.field_scoring --privacy --records 5000  # attacks on one segment

Segmented encodings are built *without changing the encoder*: each field group of the default
schema (``schemas/pace-default.json``) is encoded on its own by ``encoder.encode_dataframe``
under a small schema holding only that group's features (same secret, same hashing settings,
the group's own filter length), and each record's segments are concatenated.  The layout
(:data:`GROUPS`) gives each group room for about its share of today's hash insertions
(``bitsPerFeature``/``bitsPerToken`` of the default: names 220, date of birth 180, sex 10,
postcode 50, address line 30, NI number 120, of 610 in 1,024 bits) at a similar density
(40-55 % of bits set), under clkhash's constraint that a ``blakeHash`` filter has a
power-of-two length: names 512, date of birth 256, sex 64, postcode 64, address line 64, NI
number 128 bits, 1,088 in all.  Postcode and address line are separate segments because
some partners hold no address line: in one segment, their postcode-only records would
half-agree with everyone's postcode-and-address records.

The year-of-birth record salt of the default can only salt a segment whose schema holds the
date of birth (the encoder's ``recordSalt`` must name a hashed feature of the schema), so
here the date-of-birth segment is salted and the other segments are not: the figures are for
*unsalted* names, sex and address segments.  (A segmented encoder would salt every segment.)

Quality methods, on the synthetic scenarios (``benchmarks.quality.datasets``), pairwise
measures from ``linkage_unit.matching.evaluation``:

* ``record-dice``: pacelink today, one record-level filter, ``link_encodings(..., "auto")``.
* ``segmented-dice``: the same on the concatenated segments (record-level Dice over them).
* ``fellegi-sunter``: candidates by blocking at Dice >= ``--floor`` over the whole segmented
  filter, per-segment Dice, u from random pairs, m by EM in two Splink-style sessions (pairs
  with the same date of birth, then the same names) and lambda by EM on all candidates
  (:func:`linkage_unit.matching.fellegi_sunter.fit_sessions`), one-to-one greedy solving per pair of
  parties on the match weight, threshold at the best *estimated* F1 of the solved pairs,
  entities by :func:`linkage_unit.matching.solving.cluster` on the pairs kept.
* ``splink``: Splink on the plain text (``benchmarks.quality.splink_runs.run_splink``), at
  match probability 0.5 (label-free), for reference: it sees plain text.

Nothing is written under ``benchmarks/results/``: the tables are printed.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np
import pandas as pd

from benchmarks.harness import schema_document
from benchmarks.privacy.assess import run_attack
from benchmarks.privacy.frequency import frequency_attack, value_reidentified
from benchmarks.privacy.population import attack_data, reidentified
from benchmarks.quality.datasets import BENCH_SECRET, I64, U8, Dataset, Party, flat_records
from benchmarks.quality.datasets import synthetic_dataset as make_dataset
from encoder.encode import EncodeOptions, encode_dataframe
from encoder.keys import Secret
from encoder.schema import parse_schema
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
from linkage_unit.matching.segments import Segment, comparison_levels, segment_dice
from linkage_unit.matching.solving import cluster, greedy_solve_two

__all__ = [
    "GROUPS",
    "SKIP",
    "Group",
    "PartyEncodings",
    "encode_segmented",
    "layout",
    "main",
    "privacy",
    "quality",
    "segment_schema",
]


@dataclass(frozen=True)
class Group:
    """A field group's segment: its features of the default schema, bits and level kind."""

    name: str
    features: tuple[str, ...]
    bits: int
    kind: str


#: The segmented layout, in filter order (1,088 bits in all).
GROUPS: Final = (
    Group("names", ("given_name", "surname", "names_any_order"), 512, "name"),
    Group("date_of_birth", ("date_of_birth", "whole_date_of_birth"), 256, "date"),
    Group("sex", ("sex",), 64, "exact"),
    Group("postcode", ("postcode",), 64, "postcode"),
    Group("address_line", ("address_line",), 64, "name"),
    Group("ni_number", ("ni_number",), 128, "identifier"),
)

#: Columns blanked in the missing-columns variant: (party position, columns).
SKIP: tuple[str, ...] = ("address_line",)
_BLANKED: Final = ((0, ("sex",)), (1, ("postcode", "address_line")))  # no address at all


def segment_schema(group: Group, *, salted: bool = True) -> dict[str, Any]:
    """The default schema cut down to one group: its features, its length, its salt if any.

    Args:
        group: The field group.
        salted: Keep the default's year-of-birth salt where the group holds the date of birth.
    """
    doc = schema_document()
    doc["features"] = [f for f in doc["features"] if f["identifier"] in group.features]
    doc["clkConfig"]["l"] = group.bits
    salt = doc.get("hardening", {}).get("recordSalt")
    doc.pop("hardening", None)
    if salted and salt is not None and salt["feature"] in group.features:
        doc["hardening"] = {"recordSalt": salt}
    return doc


def layout() -> list[Segment]:
    """The segments of :data:`GROUPS` as bit ranges of the concatenated filter."""
    out, start = [], 0
    for g in GROUPS:
        out.append(Segment(g.name, start, start + g.bits, g.kind))
        start += g.bits
    return out


def _encode(frame: pd.DataFrame, doc: dict[str, Any], secret: Secret) -> tuple[U8, list[str]]:
    enc = encode_dataframe(
        frame,
        parse_schema(doc, "segment"),
        secret,
        EncodeOptions(id_column="local_id", max_reject_rate=1.0),
    )
    return np.asarray(enc.bits), list(enc.local_ids or [])


@dataclass(frozen=True, eq=False)
class PartyEncodings:
    """One party's records under every encoding compared, row for row.

    Attributes:
        record: The default schema (one record-level filter, year salt), as today.
        record_unsalted: The default schema without its salt.
        segmented: The segments concatenated, the date-of-birth segment salted.
        segmented_salted: The same with every segment salted by the year of birth,
            emulated (see :func:`encode_segmented`).
        rows: Each encoded record's row in the party's frame.
    """

    record: U8
    record_unsalted: U8
    segmented: U8
    segmented_salted: U8
    rows: I64


def _segments(party: Party, ids: list[str], secret: Secret, salt_all: bool) -> U8:
    position = pd.Series(np.arange(len(ids)), index=ids)
    seg = np.zeros((len(ids), sum(g.bits for g in GROUPS) // 8), np.uint8)
    # The year of birth as the encoder standardises it (the clean text is ISO dates).
    year = party.clean["date_of_birth"].fillna("").astype(str).str[:4].to_numpy()
    byte = 0
    for g in GROUPS:
        doc = segment_schema(g)
        if not salt_all or "hardening" in doc:
            parts = [(party.frame, secret)]
        else:
            # Emulated salt: a segment whose schema cannot name the date of birth is encoded
            # year group by year group, each under its own secret.  As with the encoder's
            # keyed permutation, records of one salt compare as before and records of two
            # salts look unrelated; only the linkage figures are meaningful, not attacks.
            parts = [
                (party.frame[year == y], Secret(f"{secret.value}|salt|{y}"))
                for y in np.unique(year)
            ]
        for frame, key in parts:
            bits, seg_ids = _encode(frame, doc, key)
            where = position.reindex(seg_ids).to_numpy()
            ok = ~np.isnan(where)
            seg[where[ok].astype(np.int64), byte : byte + g.bits // 8] = bits[ok]
        byte += g.bits // 8
    return seg


def encode_segmented(party: Party, secret: Secret) -> PartyEncodings:
    """One party's records under the record-level and the segmented encodings.

    Every encoding has a row per record the default schema accepted; a segment whose group
    rejected the record stays all zero (missing).
    """
    full, ids = _encode(party.frame, schema_document(), secret)
    unsalted = schema_document()
    unsalted.pop("hardening", None)
    plain, plain_ids = _encode(party.frame, unsalted, secret)
    if plain_ids != ids:
        raise ValueError(f"{party.name}: the salted and unsalted encodings hold other records")
    frame_row = pd.Series(np.arange(len(party.frame)), index=party.frame["local_id"])
    return PartyEncodings(
        full,
        plain,
        _segments(party, ids, secret, salt_all=False),
        _segments(party, ids, secret, salt_all=True),
        frame_row.reindex(ids).to_numpy(np.int64),
    )


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
                print(_line(row), flush=True)
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
                print(_line(row), flush=True)
    return out


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-" if value is None else str(value)


def _line(row: dict[str, Any]) -> str:
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


def _privacy_schemas() -> list[tuple[str, str, dict[str, Any]]]:
    """Schemas attacked for the privacy figures: (key for ``--only``, label, document)."""
    unsalted = schema_document()
    unsalted.pop("hardening", None)
    names, dob, sex, postcode = GROUPS[0], GROUPS[1], GROUPS[2], GROUPS[3]
    return [
        ("record", "whole record, year salt (shipped)", schema_document()),
        ("record-unsalted", "whole record, unsalted", unsalted),
        ("names", f"names segment ({names.bits} bits, unsalted)", segment_schema(names)),
        (
            "dob-unsalted",
            f"date-of-birth segment ({dob.bits} bits, unsalted)",
            segment_schema(dob, salted=False),
        ),
        ("dob", f"date-of-birth segment ({dob.bits} bits, year salt)", segment_schema(dob)),
        ("sex", f"sex segment ({sex.bits} bits)", segment_schema(sex)),
        ("postcode", f"postcode segment ({postcode.bits} bits)", segment_schema(postcode)),
    ]


def privacy(records: int, attacks: Sequence[str], seed: int, only: Sequence[str]) -> None:
    """Run the privacy harness's attacks on one-segment encodings and the whole record."""
    print("| encoding | attack | records re-identified | values re-identified | seconds |")
    print("|---|---|---|---|---|")
    for key, label, doc in _privacy_schemas():
        if only and key not in only:
            continue
        data = attack_data(parse_schema(copy.deepcopy(doc), label), records, seed=seed)
        for attack in attacks:
            value = "-"
            if attack == "frequency":  # also the share of *values* (name, date) singled out
                started = time.perf_counter()
                guesses = frequency_attack(data)
                share, seconds = reidentified(data, guesses), time.perf_counter() - started
                value = f"{value_reidentified(data, guesses):.2%}"
            else:
                share, seconds = run_attack(attack, data, seed)
            print(f"| {label} | {attack} | {share:.2%} | {value} | {seconds:.0f} |", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the quality table, or with ``--privacy`` the attack table."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.field_scoring", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--scenarios", default="two-party,five-party")
    parser.add_argument("--people", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--floor",
        type=float,
        default=0.4,
        help="record-level Dice floor of the Fellegi-Sunter candidates",
    )
    parser.add_argument("--no-splink", action="store_true")
    parser.add_argument("--privacy", action="store_true", help="run the attacks instead")
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--attacks", default="frequency,known-100")
    parser.add_argument(
        "--only",
        default="",
        help="privacy: comma-separated keys of the encodings to attack (record, "
        "record-unsalted, names, dob-unsalted, dob, sex, postcode; default all)",
    )
    args = parser.parse_args(argv)
    if args.privacy:
        privacy(
            args.records,
            [a for a in args.attacks.split(",") if a],
            args.seed,
            [o for o in args.only.split(",") if o],
        )
        return 0
    print(
        "| scenario | method | F1 | precision | recall | est. precision | est. recall "
        "| threshold | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rows = quality(
        [s for s in args.scenarios.split(",") if s],
        args.people,
        args.seed,
        args.floor,
        not args.no_splink,
    )
    for row in rows:
        if "m" in row:
            print(
                f"# {row['scenario']} FS: prior {row['prior']:.3f}, {row['candidates']:,} "
                f"candidates, {row['em_iterations']} EM iterations, m {row['m']}, "
                f"u {row['u']}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
