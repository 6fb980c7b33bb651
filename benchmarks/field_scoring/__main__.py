"""``python -m benchmarks.field_scoring``: the quality table, or with ``--privacy`` the attacks."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import benchmarks.field_scoring as package
from benchmarks.field_scoring.privacy import privacy
from benchmarks.field_scoring.quality import quality

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Print the quality table, or with ``--privacy`` the attack table."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.field_scoring",
        description=(package.__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("--scenarios", default="two-party,five-party")
    parser.add_argument("--people", type=int, default=3000)
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
        "record-unsalted, names, dob-unsalted, dob, sex, postcode, names-salted, sex-salted, "
        "postcode-salted, segmented-salted; default all)",
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
                f"# {row['scenario']} {row['method']}: prior {row['prior']:.3f}, "
                f"{row['candidates']:,} candidates, {row['em_iterations']} EM iterations, "
                f"m {row['m']}, u {row['u']}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
