"""The command line: run the benchmark (or the schema comparison) and write the results."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from benchmarks.harness import RESULTS, machine, schema_document
from benchmarks.quality.datasets import (
    BENCH_SECRET,
    febrl4_dataset,
    synthetic_dataset,
)
from benchmarks.quality.results import run_dataset, table, targets, variation_table
from benchmarks.quality.schema_choice import compare_schemas
from benchmarks.synthetic import HELD_OUT_SUFFIX, SCENARIOS
from encoder.keys import Secret
from encoder.schema import parse_schema

__all__ = [
    "DESCRIPTION",
    "main",
]

DESCRIPTION: Final = (
    "Match quality: pacelink against clkhash + anonlink and Splink, on data with known truth."
)
"""What ``--help`` says the benchmark is."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or the schema comparison) and write the results."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=DESCRIPTION)
    parser.add_argument("--people", type=int, default=10_000, help="synthetic population")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--scenarios",
        default="two-party,five-party,incremental,febrl4",
        help="comma-separated: febrl4 or synthetic scenarios ("
        + ", ".join(n for n in SCENARIOS if n != "sample")
        + ")",
    )
    parser.add_argument(
        "--population",
        choices=("standard", "held-out", "both"),
        default="standard",
        help="which population the synthetic scenarios are drawn from: held-out is never "
        "used to choose a parameter (a scenario NAME becomes NAME-held-out); both runs each",
    )
    parser.add_argument("--tools", default="pacelink,anonlink,splink")
    parser.add_argument(
        "--compare-schemas",
        action="store_true",
        help="compare the candidate PACE schemas instead (writes schema_choice.json and the "
        "table in docs/schema-choice.md)",
    )
    args = parser.parse_args(argv)
    secret = Secret(BENCH_SECRET)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", flush=True)

    if args.compare_schemas:
        return compare_schemas(args.people, args.seed, secret, log)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    results: dict[str, Any] = {}
    names = []
    for name in [s.strip() for s in args.scenarios.split(",") if s.strip()]:
        if name != "febrl4" and name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}")
        held = name.removesuffix(HELD_OUT_SUFFIX) + HELD_OUT_SUFFIX
        if name == "febrl4" or name.endswith(HELD_OUT_SUFFIX):
            names.append(name)
            continue
        if held not in SCENARIOS and args.population != "standard":
            parser.error(f"{name} has no held-out variant; choose from {', '.join(SCENARIOS)}")
        if args.population in ("standard", "both"):
            names.append(name)
        if args.population in ("held-out", "both"):
            names.append(held)
    for name in names:
        dataset = (
            febrl4_dataset()
            if name == "febrl4"
            else synthetic_dataset(name, args.people, args.seed)
        )
        results[name] = run_dataset(dataset, secret, tools, log)
    doc = {
        "benchmark": "quality",
        "machine": machine(),
        "command": "python -m benchmarks.quality "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "people": args.people,
        "seed": args.seed,
        # Which pace-default the synthetic scenarios were encoded with (the report says when
        # the bundled one has changed since).
        "schema_fingerprint": parse_schema(schema_document()).fingerprint,
        "seconds": time.perf_counter() - started,
        "scenarios": results,
        "targets": targets(results),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print("\n".join(table(results)))
    print("\n".join(variation_table(results)))
    print(json.dumps(doc["targets"], indent=1))
    log(f"wrote {args.out / 'quality.json'}")
    return 0
