"""The privacy benchmark: every attack on every encoding variant, and each variant's linkage F1.

    python -m benchmarks.privacy                                  # the frontier, 10,000 records
    python -m benchmarks.privacy --variants weak --sizes 2000,10000   # validate the harness
    python -m benchmarks.privacy --variants none,hardened --sizes 100000 --attacks graph

Results are merged into ``benchmarks/results/privacy.json`` (one entry per variant, size,
overlap and attack, replaced when measured again), so a long run can be done in parts;
``--plot`` draws the frontier (re-identification against F1 cost) from what is recorded.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.harness import REPO, machine, schema_document
from benchmarks.name_root import VARIANT_SUFFIX, name_root_schema
from benchmarks.privacy import ATTACKS
from benchmarks.privacy.assess import QUALITY_SCENARIOS, linkage_quality, run_attack
from benchmarks.privacy.encodings import VARIANTS, variant, weak_schema
from benchmarks.privacy.population import attack_data
from encoder.schema import parse_schema

__all__ = ["RESULTS", "main", "plot_frontier", "schema_of", "table"]

RESULTS = harness.RESULTS / "privacy.json"
FRONTIER_PLOT = REPO / "docs" / "img" / "privacy-frontier.svg"


def schema_of(name: str) -> dict[str, Any]:
    """A variant's schema document.

    A variant's schema document: ``weak`` (the published setting), ``shipped`` (the
    bundled default as it is now), ``VARIANT+name-root-BITS`` (a variant's schema plus a
    given-name root feature of BITS bits, a candidate), or a hardening variant of the
    unhardened default.
    """
    if name == "weak":
        return weak_schema()
    if name == "shipped":
        doc = schema_document()
        return doc
    if VARIANT_SUFFIX in name:  # a candidate only (docs of benchmarks.name_root)
        base, bits = name.rsplit(VARIANT_SUFFIX, 1)
        return name_root_schema(int(bits), schema_of(base))
    return variant(name)


def _load(path: Path) -> dict[str, Any]:
    if path.exists():
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return doc
    return {"benchmark": "privacy", "attacks": [], "quality": []}


def _replace(rows: list[dict[str, Any]], new: dict[str, Any], keys: Sequence[str]) -> None:
    rows[:] = [r for r in rows if any(r.get(k) != new[k] for k in keys)] + [new]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the attacks and the quality runs asked for; merge them into the results file."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.privacy", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--variants",
        default=",".join(["weak", *VARIANTS]),
        help="comma-separated: weak, shipped, "
        + ", ".join(VARIANTS)
        + f", VARIANT{VARIANT_SUFFIX}BITS (VARIANT plus a given-name root feature)",
    )
    parser.add_argument("--sizes", default="10000", help="records encoded (comma-separated)")
    parser.add_argument("--overlaps", default="1.0", help="register overlap (comma-separated)")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument(
        "--quality-people", type=int, default=10_000, help="quality scenarios' size (0: skip)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--plot", action="store_true", help="draw the frontier plot only")
    parser.add_argument(
        "--table", action="store_true", help="print the results as Markdown tables only"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", flush=True)

    doc = _load(args.out)
    if args.table:
        print("\n".join(table(doc)))
        return 0
    if args.plot:
        plot_frontier(doc, FRONTIER_PLOT)
        log(f"wrote {FRONTIER_PLOT}")
        return 0
    doc["machine"] = machine()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    for name in names:
        schema_doc = schema_of(name)
        schema = parse_schema(schema_doc, name)
        for size in [int(s) for s in args.sizes.split(",") if s]:
            for overlap in [float(o) for o in args.overlaps.split(",") if o]:
                log(f"{name}: encoding {size:,} records (overlap {overlap:.0%})")
                data = attack_data(schema, size, overlap=overlap, seed=args.seed)
                for attack in attacks:
                    share, seconds = run_attack(attack, data, args.seed, lambda _line: None)
                    log(f"{name} {size:,} {overlap:.0%} {attack}: {share:.2%} ({seconds:.0f} s)")
                    row = {
                        "variant": name,
                        "records": size,
                        "overlap": overlap,
                        "attack": attack,
                        "reidentified": share,
                        "seconds": seconds,
                        "seed": args.seed,
                    }
                    _replace(doc["attacks"], row, ("variant", "records", "overlap", "attack"))
                    _write(args.out, doc)
        if args.quality_people and name != "weak":
            f1 = linkage_quality(schema_doc, args.quality_people, args.seed, progress=log)
            for scenario, value in f1.items():
                row = {
                    "variant": name,
                    "people": args.quality_people,
                    "scenario": scenario,
                    "f1": value,
                    "seed": args.seed,
                }
                _replace(doc["quality"], row, ("variant", "people", "scenario"))
            log(f"{name}: F1 " + ", ".join(f"{s} {v:.4f}" for s, v in f1.items()))
            _write(args.out, doc)
    plot_frontier(doc, FRONTIER_PLOT)
    log(f"wrote {args.out} and {FRONTIER_PLOT}")
    return 0


def _write(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc["attacks"].sort(key=lambda r: (r["variant"], r["records"], r["overlap"], r["attack"]))
    doc["quality"].sort(key=lambda r: (r["variant"], r["people"], r["scenario"]))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def table(doc: dict[str, Any]) -> list[str]:
    """Markdown: re-identification by attack and size, then F1 by scenario, per variant."""
    attacks = [a for a in ATTACKS if any(r["attack"] == a for r in doc["attacks"])]
    variants = list(dict.fromkeys(r["variant"] for r in doc["attacks"]))
    order = ["weak", "none", *[v for v in VARIANTS if v != "none"], "shipped"]
    variants.sort(key=lambda v: order.index(v) if v in order else len(order))
    lines = [
        "| encoding | records | " + " | ".join(attacks) + " |",
        "|---|---:|" + "---:|" * len(attacks),
    ]
    for name in variants:
        rows = [r for r in doc["attacks"] if r["variant"] == name]
        for size in sorted({r["records"] for r in rows}):
            cells = []
            for attack in attacks:
                hit = [
                    r for r in rows if r["records"] == size and r["attack"] == attack
                    and r["overlap"] == 1.0
                ]  # fmt: skip
                cells.append(f"{100 * hit[0]['reidentified']:.2f} %" if hit else "")
            lines.append(f"| {name} | {size:,} | " + " | ".join(cells) + " |")
    quality: dict[str, dict[str, float]] = {}
    for row in doc["quality"]:
        quality.setdefault(row["variant"], {})[row["scenario"]] = row["f1"]
    if quality:
        base = quality.get("none", {})
        lines += [
            "",
            "| encoding | " + " | ".join(QUALITY_SCENARIOS) + " | mean change |",
            "|---|" + "---:|" * (len(QUALITY_SCENARIOS) + 1),
        ]
        for name in sorted(quality, key=lambda v: order.index(v) if v in order else 99):
            f1 = quality[name]
            shared = [s for s in QUALITY_SCENARIOS if s in f1 and s in base]
            change = sum(f1[s] - base[s] for s in shared) / len(shared) if shared else 0.0
            lines.append(
                f"| {name} | "
                + " | ".join(f"{f1[s]:.4f}" if s in f1 else "" for s in QUALITY_SCENARIOS)
                + f" | {100 * change:+.2f} points |"
            )
    return lines


def plot_frontier(doc: dict[str, Any], path: Path, attack: str = "known-100") -> None:
    """Plot the privacy-quality frontier of the hardening variants.

    Re-identification by ``attack`` (largest size measured) against the mean F1 change
    from the unhardened default, one point per variant.
    """
    # matplotlib takes ~0.3 s to import, and Agg must be chosen before pyplot is imported.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    quality: dict[str, dict[str, float]] = {}
    for row in doc.get("quality", []):
        quality.setdefault(row["variant"], {})[row["scenario"]] = row["f1"]
    base = quality.get("none")
    points = []
    for name, f1 in quality.items():
        rows = [r for r in doc.get("attacks", []) if r["variant"] == name and r["attack"] == attack]
        if not rows or base is None:
            continue
        size = max(r["records"] for r in rows)
        share = max(r["reidentified"] for r in rows if r["records"] == size)
        shared = [s for s in QUALITY_SCENARIOS if s in f1 and s in base]
        if not shared:
            continue
        cost = sum(f1[s] - base[s] for s in shared) / len(shared)
        points.append((name, 100 * cost, 100 * share))
    if not points:
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, cost, share in points:
        ax.scatter(cost, share, color="#1f4e79")
        ax.annotate(name, (cost, share), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.axvline(-0.5, color="#999", linestyle="--", linewidth=1, label="F1 cost 0.5 point")
    ax.set_xlabel("mean pairwise F1 change from the unhardened default (points)")
    ax.set_ylabel(f"records re-identified, {attack} attack (%)")
    ax.set_title("Privacy against linkage quality, per encoding variant", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
