"""The candidate PACE schemas compared on the synthetic scenarios (docs/schema-choice.md)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from benchmarks.harness import REPO, machine, schema_document
from benchmarks.quality.datasets import (
    Dataset,
    linkage_schema,
    synthetic_dataset,
)
from benchmarks.quality.pacelink_runs import encode_parties, run_pacelink
from encoder.keys import Secret

__all__ = [
    "CHOSEN_SCHEMA",
    "SCHEMA_CANDIDATES",
    "SCHEMA_DOC",
    "compare_schemas",
    "schema_variant",
]

SCHEMA_DOC: Final = REPO / "docs" / "schema-choice.md"
"""The document whose table :func:`compare_schemas` rewrites."""


#: Candidate PACE schemas: bits per feature (for ``sex`` and the whole date, bits per token)
#: of the features below, in that order, all in 1,024 bits. A derived feature with 0 bits is
#: left out. The chosen one is the shipped ``pace-default`` (a test checks that they agree).
SCHEMA_CANDIDATES: Final[dict[str, tuple[int, ...]]] = {
    "previous default": (100, 100, 0, 160, 0, 10, 50, 30, 120),
    "+ names in any order": (60, 60, 100, 160, 0, 10, 50, 30, 120),
    "+ whole date of birth": (100, 100, 0, 100, 80, 10, 50, 30, 120),
    "both (chosen)": (60, 60, 100, 100, 80, 10, 50, 30, 120),
    "both, per-field names heavier": (80, 80, 100, 100, 80, 10, 50, 30, 120),
    "both, whole date lighter": (60, 60, 100, 120, 60, 10, 50, 30, 120),
}
CHOSEN_SCHEMA: Final = "both (chosen)"
_SCHEMA_FEATURES: Final = (
    "given_name", "surname", "names_any_order", "date_of_birth", "whole_date_of_birth", "sex",
    "postcode", "address_line", "ni_number",
)  # fmt: skip


def schema_variant(weights: Sequence[int]) -> dict[str, Any]:
    """The default schema document with other bits per feature (same order as above)."""
    doc = schema_document()
    by_name = dict(zip(_SCHEMA_FEATURES, weights, strict=True))
    kept = []
    for feature in doc["features"]:
        bits = by_name[feature["identifier"]]
        if bits == 0:
            if "derivedFrom" not in feature:
                raise ValueError(f"only a derived feature can be left out, not {feature!r}")
            continue
        strategy = feature["hashing"]["strategy"]
        (key,) = strategy  # bitsPerFeature or bitsPerToken
        strategy[key] = bits
        kept.append(feature)
    doc["features"] = kept
    return doc


_COMPARE_SCENARIOS: Final = ("two-party", "five-party", "incremental")


def compare_schemas(people: int, seed: int, secret: Secret, log: Callable[[str], None]) -> int:
    """Measure pacelink's quality with each candidate schema; writes the table into the doc."""
    head_cells = " | ".join(
        f"{n} best F1 | {n} auto F1 | {n} auto F1, one per party" for n in _COMPARE_SCENARIOS
    )
    lines = [
        f"`python -m benchmarks.quality --compare-schemas --people {people} --seed {seed}` "
        f"({machine()['cpu']}):",
        "",
        "| schema (given / surname / names any order / DOB / whole DOB / sex / postcode / "
        f"address / NI) | bits set | {head_cells} | candidates at 0.5 |",
        "|---|---:|" + "---:|" * (3 * len(_COMPARE_SCENARIOS)) + "---:|",
    ]
    datasets = [synthetic_dataset(n, people, seed) for n in _COMPARE_SCENARIOS]
    for label, weights in SCHEMA_CANDIDATES.items():
        doc = schema_variant(weights)
        cells = []
        density = 0.0
        candidates = 0
        for base in datasets:
            log(f"{label}: {base.name}")
            dataset = Dataset(base.name, base.description, base.parties, doc)
            with tempfile.TemporaryDirectory() as tmp:
                encoded = encode_parties(dataset, linkage_schema(dataset), secret, Path(tmp))
            r = run_pacelink(dataset, encoded, duplicates="linked")
            one = run_pacelink(dataset, encoded, curve=False)
            cells += [
                f"{r['best']['f1']:.4f} ({r['best']['threshold']:.2f})",
                f"{r['auto']['f1']:.4f}",
                f"{one['auto']['f1']:.4f}",
            ]
            density = max(density, encoded.density)
            candidates += int(r["candidates"])
        weights_text = "/".join(str(w) if w else "-" for w in weights)
        lines.append(
            f"| {label} ({weights_text}) | {density:.0%} | "
            + " | ".join(cells)
            + f" | {candidates:,} |"
        )
    text = "\n".join(lines)
    print(text)
    doc_text = SCHEMA_DOC.read_text(encoding="utf-8")
    start, end = "<!-- schema-table:start -->", "<!-- schema-table:end -->"
    if start in doc_text and end in doc_text:
        head, rest = doc_text.split(start, 1)
        tail = rest.split(end, 1)[1]
        SCHEMA_DOC.write_text(f"{head}{start}\n{text}\n{end}{tail}", encoding="utf-8")
        log(f"updated the table in {SCHEMA_DOC}")
    return 0
