"""Linkage at scale: two synthetic partners of ~1,000,000 records each, linked from .plk files.

    python -m benchmarks.link_scale                 # ~1,000,000 records per partner
    python -m benchmarks.link_scale --people 30000  # quick
    python -m benchmarks.link_scale --parties 6 --records 1000000   # see benchmarks.scale_out
    python -m benchmarks.link_scale --spine                          # see benchmarks.scale_out

The two-party scenario of `benchmarks.synthetic` (70% coverage each, typical errors) is
written as CSV, encoded by `encode_file` with the bundled schema, and the two `.plk` files
are linked with `link_encodings` (default blocking, fixed threshold 0.8): the time and the
peak resident memory of the linking step are measured, and the load average before and
after it (the machine may be shared). Blocking's loss is measured on a random sample of
A's rows compared exhaustively with the whole of B: the share of the exhaustive candidate
pairs (score >= threshold) that blocking also found, and the same for the true matches
among them. The sample is blocked with the bit frequencies of the whole files, so its
blocked pairs are exactly the full run's pairs of those rows (keys depend only on a row
and the sampled positions). Results go to `benchmarks/results/link_scale.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np

from benchmarks.harness import RESULTS, WORK, PeakMemory, machine
from benchmarks.scale_out import blocking_loss, parties, spine
from benchmarks.synthetic import TRUTH_COLUMN, make_scenario, to_pace_columns
from encoder.encode import EncodeOptions, encode_file
from encoder.fileformat import read_encodings
from encoder.keys import generate_secret
from encoder.schema import load_schema
from linkage_unit.matching.blocking import DEFAULT_BLOCKING
from linkage_unit.matching.linkage import link_encodings

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Link two (or more) large synthetic partners and write the scale results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=1_430_000)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--sample-rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--parties",
        type=int,
        default=2,
        help="More than 2: that many partners, offline and through the unit "
        "(benchmarks.scale_out); results in link_scale_parties.json.",
    )
    parser.add_argument(
        "--records", type=int, default=1_000_000, help="With --parties: records per partner."
    )
    parser.add_argument(
        "--spine",
        action="store_true",
        help="One party against a spine at growing sizes, extrapolated to "
        "10M, and Dask's parallel efficiency; results in link_scale_spine.json.",
    )
    parser.add_argument(
        "--spine-sizes", type=int, nargs="+", default=[250_000, 500_000, 1_000_000, 2_000_000]
    )
    parser.add_argument(
        "--dask-size",
        type=int,
        default=500_000,
        help="With --spine: the size (one of --spine-sizes) Dask is timed at.",
    )
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any]
    if args.parties > 2 or args.spine:
        if args.spine:
            result = spine(args.spine_sizes, args.seed, args.sample_rows // 4,
                                     args.dask_size, WORK / "spine")  # fmt: skip
            name = "link_scale_spine"
        else:
            result = parties(args.parties, args.records, args.seed, args.sample_rows,
                                       WORK / "parties")  # fmt: skip
            name = "link_scale_parties"
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {RESULTS / name}.json")
        return 0
    schema = load_schema("pace-default")
    secret = generate_secret()

    print(f"generating the two-party scenario for {args.people:,} people ...", flush=True)
    scenario = make_scenario("two-party", args.people, args.seed)
    bits, truth = [], []
    for spec in scenario.partners:
        extract = to_pace_columns(scenario.batches[spec.name][0], spec)
        src = WORK / f"scale_{spec.name}.csv"
        extract.drop(columns=[TRUTH_COLUMN]).to_csv(src, index=False)
        print(f"encoding {spec.name}: {len(extract):,} records ...", flush=True)
        out = WORK / f"scale_{spec.name}.plk"
        options = EncodeOptions(id_column="local_id", consent_column=None)
        encode_file(src, schema, secret, out, options)
        keys = np.loadtxt(out.with_name(out.stem + ".keys.csv"), delimiter=",", skiprows=1,
                          dtype=str, usecols=1, ndmin=1)  # fmt: skip
        person = dict(zip(extract["local_id"], extract[TRUTH_COLUMN], strict=True))
        truth.append(np.array([person[k.strip('"')] for k in keys]))
        bits.append(np.asarray(read_encodings(out).bits))
    a, b = bits
    print(f"linking {len(a):,} x {len(b):,} ...", flush=True)
    load_before = os.getloadavg()
    with PeakMemory(interval=0.02) as memory:
        started = time.perf_counter()
        _, summary = link_encodings([a, b], args.threshold, blocking=DEFAULT_BLOCKING)
        seconds = time.perf_counter() - started
    load_after = os.getloadavg()

    print("measuring blocking's loss on a sample ...", flush=True)
    loss = blocking_loss(a, b, truth[0], truth[1], args.sample_rows, args.seed, args.threshold)
    result = {
        "benchmark": "link_scale",
        "machine": machine(),
        "records": [len(a), len(b)],
        "threshold": args.threshold,
        "blocking": summary.blocking,
        "comparisons": summary.comparisons,
        "candidates": summary.candidates,
        "entities": summary.entities,
        "link_seconds": seconds,
        "link_peak_rss_gib": memory.peak / 2**30,
        "load_average_1min_before_after": [load_before[0], load_after[0]],
        **loss,
        "targets": {"seconds": 60, "peak_gib": 4, "max_true_match_loss": 0.005},
    }
    (RESULTS / "link_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["machine"]))
    print(f"linked {len(a):,} x {len(b):,} in {seconds:.1f} s (target <= 60 s), peak "
          f"{result['link_peak_rss_gib']:.2f} GiB (target <= 4 GiB)")  # fmt: skip
    print(f"blocking kept {result['pair_completeness']:.2%} of the exhaustive candidates and "
          f"{result['true_match_completeness']:.2%} of the true matches among them "
          f"(sample of {loss['sample_rows']:,} rows; target: lose at most 0.5%)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
