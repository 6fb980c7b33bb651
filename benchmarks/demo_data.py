"""Writes the synthetic partner files that `pacelink demo` ships with.

Three partners of a PACE-style partnership (skills agency, benefits department, council)
hold overlapping, messy records about one synthetic population. Each file keeps the
partner's own value formats (dates, sex codes, case) under the canonical column names;
the ground truth goes to a separate file that only the demo's quality check reads.

    python -m benchmarks.demo_data --out linkage_unit/data/demo
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from benchmarks.synthetic import (
    TRUTH_COLUMN,
    generate_population,
    make_extract,
    partner_catalogue,
    to_pace_columns,
)

__all__ = ["DEMO_PARTNERS", "main", "write_demo_data"]

DEMO_PARTNERS = ("skills_agency", "benefits_dept", "council")


def write_demo_data(out: Path, n_people: int = 3000, seed: int = 2026) -> None:
    """Write ``<partner>.csv`` for each demo partner and ``truth.csv``."""
    out.mkdir(parents=True, exist_ok=True)
    population = generate_population(n_people, seed)
    catalogue = partner_catalogue()
    truth = []
    for name in DEMO_PARTNERS:
        spec = catalogue[name]
        frame = to_pace_columns(make_extract(population, spec, seed), spec)
        truth.append(pd.DataFrame({"partner": name, "local_id": frame["local_id"],
                                   "person": frame[TRUTH_COLUMN]}))  # fmt: skip
        frame.drop(columns=[TRUTH_COLUMN]).to_csv(out / f"{name}.csv", index=False)
    pd.concat(truth).to_csv(out / "truth.csv", index=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    write_demo_data(args.out, args.people, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
