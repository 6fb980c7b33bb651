"""A candidate schema with a given-name root feature, and its quality against pace-default.

For measurement only: the shipped schema is unchanged. The candidate is pace-default plus
`given_name_root` (derived from `given_name` with `"derive": "name_root"`, one exact token),
appended last so that every other feature keeps its position, and so its keys and bits.

    python -m benchmarks.name_root --people 2000 --seed 5 --bits 40,60

prints pairwise P / R / F1 at `auto`, duplicates linked (the quality benchmark's "pacelink
auto, duplicates linked"), recall by variation and, with `--curve`, the F1 at the best fixed
threshold, for pace-default and each candidate, on
the two-party and heterogeneous scenarios of both populations. The privacy side is the
privacy benchmark's variant `shipped+name-root-BITS` (`python -m benchmarks.privacy`; also
`none+name-root-BITS` and the like, on another variant's schema).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from benchmarks.harness import schema_document
from benchmarks.quality.datasets import BENCH_SECRET, Dataset, linkage_schema, synthetic_dataset
from benchmarks.quality.pacelink_runs import encode_parties, run_pacelink
from encoder.keys import Secret

__all__ = ["VARIANT_SUFFIX", "main", "name_root_schema"]

#: The privacy benchmark's variant `VARIANT+name-root-BITS` is VARIANT's schema with the root
#: feature of BITS bits (`shipped+name-root-40`: `name_root_schema(40)`).
VARIANT_SUFFIX: Final = "+name-root-"

_SCENARIOS: Final = (
    "two-party",
    "two-party-held-out",
    "heterogeneous",
    "heterogeneous-held-out",
)
_VARIATIONS: Final = ("nickname", "middle_name", "none")


def name_root_schema(
    bits_per_token: int, base: dict[str, Any] | None = None, given_bits: int | None = None
) -> dict[str, Any]:
    """A schema plus the exact `given_name_root` feature, last.

    Args:
        bits_per_token: The feature's bits.
        base: The schema document to extend (default: pace-default, hardening included).
        given_bits: The given name's own bitsPerFeature, if not the base's (the root then
            takes over part of the given name's weight rather than adding to it).
    """
    doc = copy.deepcopy(base) if base is not None else schema_document()
    if given_bits is not None:
        given = next(f for f in doc["features"] if f["identifier"] == "given_name")
        given["hashing"]["strategy"] = {"bitsPerFeature": given_bits}
    doc["features"].append(
        {
            "identifier": "given_name_root",
            "description": "Root of the given name, shared with its nicknames (derived)",
            "format": {"type": "string", "encoding": "utf-8"},
            "hashing": {
                "comparison": {"type": "exact"},
                "strategy": {"bitsPerToken": bits_per_token},
                "hash": {"type": "blakeHash"},
                "missingValue": {"sentinel": ""},
            },
            "derivedFrom": ["given_name"],
            "derive": "name_root",
        }
    )
    return doc


def _measure(base: Dataset, doc: dict[str, Any], secret: Secret, curve: bool) -> dict[str, Any]:
    dataset = Dataset(base.name, base.description, base.parties, doc, base.batches)
    with tempfile.TemporaryDirectory() as tmp:
        encoded = encode_parties(dataset, linkage_schema(dataset), secret, Path(tmp))
    result: dict[str, Any] = run_pacelink(dataset, encoded, curve=curve, duplicates="linked")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Measure pace-default and the candidates; print Markdown tables."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.name_root", description=__doc__)
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--bits", default="40,60", help="candidates' bitsPerToken (comma-sep.)")
    parser.add_argument("--scenarios", default=",".join(_SCENARIOS))
    parser.add_argument(
        "--given-bits",
        default="",
        help="comma-separated: also each candidate with the given name's bitsPerFeature lowered",
    )
    parser.add_argument(
        "--curve", action="store_true", help="also the best fixed threshold's F1 (slower)"
    )
    args = parser.parse_args(argv)
    secret = Secret(BENCH_SECRET)
    schemas = {"pace-default": schema_document()}
    for bits in (int(b) for b in args.bits.split(",") if b):
        schemas[f"+ name root {bits}"] = name_root_schema(bits)
        for given in (int(g) for g in args.given_bits.split(",") if g):
            schemas[f"+ name root {bits}, given name {given}"] = name_root_schema(
                bits, given_bits=given
            )
    summary = [
        "| scenario | schema | threshold | P | R | F1 | "
        + " | ".join(f"recall {v}" for v in _VARIATIONS)
        + " | best fixed F1 |",
        "|---|---|---:|---:|---:|---:|" + "---:|" * (len(_VARIATIONS) + 1),
    ]
    for name in (s.strip() for s in args.scenarios.split(",") if s.strip()):
        base = synthetic_dataset(name, args.people, args.seed)
        for label, doc in schemas.items():
            result = _measure(base, doc, secret, args.curve)
            auto = result["auto"]
            best = result.get("best")
            by = auto.get("by_variation", {})
            cells = [
                "-"
                if by.get(v, {}).get("recall") is None
                else f"{by[v]['recall']:.3f} ({by[v]['pairs']:,})"
                for v in _VARIATIONS
            ]
            line = (
                f"| {name} | {label} | {auto['threshold']:.3f} | {auto['precision']:.4f} | "
                f"{auto['recall']:.4f} | **{auto['f1']:.4f}** | "
                + " | ".join(cells)
                + (" | -" if best is None else f" | {best['f1']:.4f} ({best['threshold']:.2f})")
                + " |"
            )
            summary.append(line)
            print(line, flush=True)
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
