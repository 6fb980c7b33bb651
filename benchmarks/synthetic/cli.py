"""The command line: write a scenario's partner files and its ground truth as CSV."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import pandas as pd

from benchmarks.synthetic.extracts import to_pace_columns, write_csv
from benchmarks.synthetic.population import PACE_FIELDS, TRUTH_COLUMN
from benchmarks.synthetic.scenarios import SCENARIOS, make_scenario

__all__ = [
    "SAMPLE_COMMAND",
    "main",
]

SAMPLE_COMMAND: Final = (
    "python -m benchmarks.synthetic --scenario sample --people 1000 --seed 20260101 "
    "--pace-columns --strip-truth --out /tmp/pacelink-sample && "
    "cp /tmp/pacelink-sample/sample_partner.csv encoder/data/sample_partner.csv"
)
"""The command that made ``encoder/data/sample_partner.csv``."""


def main(argv: Sequence[str] | None = None) -> int:
    """Write a scenario's partner files and its ground truth as CSV.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.synthetic",
        description=(
            "Write a synthetic population's partner extracts (one CSV per partner, and per "
            "batch for 'incremental'), truth.csv (partner, batch, file, local_id, "
            "person_id) and variations.csv (the same keys, then one true/false column per "
            "variation each record got: ground truth, never to be given to a linker). "
            "Scenarios ending in -held-out use the held-out population (never used to choose "
            "a parameter). The bundled sample encoder/data/sample_partner.csv was made with: "
            + SAMPLE_COMMAND
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--scenario", required=True, choices=list(SCENARIOS))
    parser.add_argument("--people", type=int, required=True, help="population size")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--strip-truth",
        action="store_true",
        help=f"leave the {TRUTH_COLUMN} column out of the partner files (truth.csv only)",
    )
    parser.add_argument(
        "--pace-columns",
        action="store_true",
        help="use the canonical column names: local_id,"
        + ",".join(PACE_FIELDS)
        + " (and consent), keeping each partner's value formats",
    )
    args = parser.parse_args(argv)
    if args.people < 0 or args.seed < 0:
        parser.error("--people and --seed must not be negative")

    scenario = make_scenario(args.scenario, args.people, args.seed)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    truth_parts = []
    variation_parts = []
    for spec in scenario.partners:
        frames = scenario.batches[spec.name]
        for number, frame in enumerate(frames, start=1):
            file_name = f"{spec.name}.csv" if len(frames) == 1 else f"{spec.name}_batch{number}.csv"
            truth_parts.append(
                pd.DataFrame(
                    {
                        "partner": spec.name,
                        "batch": number,
                        "file": file_name,
                        "local_id": frame[spec.columns.local_id].to_numpy(),
                        "person_id": frame[TRUTH_COLUMN].to_numpy(),
                    }
                )
            )
            flags = scenario.variations[spec.name][number - 1]
            variation_parts.append(
                pd.concat([truth_parts[-1][["partner", "batch", "file"]], flags], axis=1)
            )
            written = frame
            if args.pace_columns:
                # A partner's absent fields stay absent: no column, not a blank one.
                written = to_pace_columns(frame, spec).drop(columns=sorted(spec.absent))
            if args.strip_truth:
                written = written.drop(columns=[TRUTH_COLUMN])
            write_csv(written, out / file_name)
    write_csv(pd.concat(truth_parts, ignore_index=True), out / "truth.csv")
    write_csv(pd.concat(variation_parts, ignore_index=True), out / "variations.csv")
    total = sum(len(p) for p in truth_parts)
    print(
        f"{args.scenario}: {len(scenario.population)} people, {len(truth_parts)} files, "
        f"{total} records -> {out}",
        file=sys.stderr,
    )
    return 0
