"""A schema's privacy assessment: every attack, and the linkage quality it gives.

A schema's privacy assessment: every attack on its encodings of synthetic UK data, and the
linkage quality it gives, so that a partnership sees both before it agrees the schema.

Used by ``pacelink schema assess`` (small sizes, minutes) and by ``python -m
benchmarks.privacy`` (the frontier of hardening options, larger sizes).
"""

from __future__ import annotations

import copy
import importlib
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from benchmarks.privacy import ATTACKS
from benchmarks.privacy.anchors import anchor_attack, known_pairs
from benchmarks.privacy.population import AttackData, attack_data, reidentified
from benchmarks.quality import Dataset, encode_parties, run_pacelink, synthetic_dataset
from encoder.keys import Secret
from encoder.schema import parse_schema

__all__ = [
    "ATTACKS",
    "QUALITY_SCENARIOS",
    "Assessment",
    "AttackOutcome",
    "assess",
    "linkage_quality",
    "plot_assessment",
    "run_attack",
]

Progress = Callable[[str], None]

#: Scenarios of :mod:`benchmarks.quality` whose F1 an assessment reports.
QUALITY_SCENARIOS: Final = ("two-party", "five-party", "incremental")

_QUALITY_SECRET: Final = "pacelink privacy assessment, quality run, not for real data"


@dataclass(frozen=True)
class AttackOutcome:
    """One attack on one encoded sample.

    Attributes:
        attack: Name, from :data:`ATTACKS`.
        records: Encodings attacked (the register holds as many entries).
        overlap: Share of the encoded people that the attacker's register holds.
        reidentified: Share of the encodings the attack re-identified correctly (one to one;
            known pairs excluded from numerator and denominator).
        seconds: The attack's run time.
    """

    attack: str
    records: int
    overlap: float
    reidentified: float
    seconds: float


@dataclass
class Assessment:
    """What :func:`assess` measured for one schema."""

    schema: str
    fingerprint: str
    attacks: list[AttackOutcome] = field(default_factory=list)
    quality: dict[str, float] = field(default_factory=dict)
    baseline_quality: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    def worst(self, attack_prefix: str = "") -> float:
        """Highest re-identification share among attacks whose name starts with the prefix."""
        shares = [a.reidentified for a in self.attacks if a.attack.startswith(attack_prefix)]
        return max(shares, default=0.0)


def run_attack(
    name: str, data: AttackData, seed: int = 0, progress: Progress | None = None
) -> tuple[float, float]:
    """Run one attack; returns (share re-identified, seconds)."""
    started = time.perf_counter()
    guesses: NDArray[np.int64]
    if name.startswith("known-"):
        known = known_pairs(data, int(name.removeprefix("known-")), seed)
        guesses = anchor_attack(data, known, progress=progress)
        # The attacker knew these: they are not re-identifications.
        guesses = guesses.copy()
        rest = np.ones(guesses.size, dtype=bool)
        rest[known[:, 0]] = False
        share = _share_of(data, guesses, rest)
    else:
        module, function = {
            "frequency": ("frequency", "frequency_attack"),
            "pattern-mining": ("pattern_mining", "pattern_mining_attack"),
            "graph": ("graph", "graph_attack"),
        }[name]
        attack = getattr(importlib.import_module(f"benchmarks.privacy.{module}"), function)
        guesses = attack(data, progress=progress)
        share = reidentified(data, guesses)
    return share, time.perf_counter() - started


def _share_of(data: AttackData, guesses: NDArray[np.int64], rows: NDArray[np.bool_]) -> float:
    reidentified(data, guesses)  # checks one to one
    if data.decoy is not None:
        rows = rows & ~data.decoy
    right = (guesses == data.truth) & (data.truth >= 0) & rows
    return float(right.sum() / max(int(rows.sum()), 1))


def linkage_quality(
    schema_doc: dict[str, Any],
    people: int,
    seed: int,
    scenarios: Sequence[str] = QUALITY_SCENARIOS,
    progress: Progress | None = None,
) -> dict[str, float]:
    """Pacelink's pairwise F1 with the schema on synthetic partnerships.

    Pairwise F1 at ``--threshold auto`` of pacelink on synthetic partnerships encoded
    with the schema, as :mod:`benchmarks.quality` measures it.
    """
    say = progress or (lambda _line: None)
    out: dict[str, float] = {}
    secret = Secret(_QUALITY_SECRET)
    for name in scenarios:
        base = synthetic_dataset(name, people, seed)
        dataset = Dataset(base.name, base.description, base.parties, copy.deepcopy(schema_doc))
        say(f"quality: {name}, {people:,} people")
        with tempfile.TemporaryDirectory() as tmp:
            encoded = encode_parties(dataset, parse_schema(dataset.schema), secret, Path(tmp))
        result = run_pacelink(dataset, encoded, curve=False)
        out[name] = float(result["auto"]["f1"])
    return out


def assess(
    schema_doc: dict[str, Any],
    *,
    source: str = "<schema>",
    records: int = 2000,
    overlap: float = 1.0,
    attacks: Sequence[str] = ATTACKS,
    quality_people: int = 2000,
    baseline_doc: dict[str, Any] | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> Assessment:
    """Attack the schema's encodings of synthetic UK data and measure its linkage quality.

    Args:
        schema_doc: The schema document (as agreed between partners).
        source: Where it came from, for the report.
        records: Encoded records attacked (and entries in the attacker's register).
        overlap: Share of the encoded people the register holds.
        attacks: Which attacks, from :data:`ATTACKS`.
        quality_people: Synthetic population of the quality scenarios (0: skip quality).
        baseline_doc: A schema to compare the quality with (e.g. the unhardened default).
        seed: Seed of the synthetic data and the attacks.
        progress: Called with a line of progress.
    """
    say = progress or (lambda _line: None)
    schema = parse_schema(copy.deepcopy(schema_doc), source)
    result = Assessment(schema=source, fingerprint=schema.fingerprint)
    say(f"encoding {records:,} synthetic records")
    data = attack_data(schema, records, overlap=overlap, seed=seed)
    for name in attacks:
        say(f"attack: {name}")
        share, seconds = run_attack(name, data, seed, progress)
        result.attacks.append(AttackOutcome(name, records, overlap, share, seconds))
        say(f"attack: {name}: {share:.1%} re-identified in {seconds:.0f} s")
    if quality_people:
        result.quality = linkage_quality(schema_doc, quality_people, seed, progress=progress)
        if baseline_doc is not None:
            result.baseline_quality = linkage_quality(
                baseline_doc, quality_people, seed, progress=progress
            )
    return result


def plot_assessment(assessment: Assessment, path: Path) -> None:
    """Bar chart of the share re-identified by each attack, with the linkage F1 beside it."""
    # matplotlib takes ~0.3 s to import, and Agg must be chosen before pyplot is imported.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (left, right) = plt.subplots(
        1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [3, 1.4]}
    )
    names = [a.attack for a in assessment.attacks]
    shares = [100 * a.reidentified for a in assessment.attacks]
    bars = left.barh(names, shares, color="#b03a2e")
    left.axvline(1.0, color="#555", linestyle="--", linewidth=1, label="1 % target")
    left.set_xlim(0, 112)
    left.invert_yaxis()
    left.set_xlabel("records re-identified (%)")
    left.set_title("Attacks on the encodings", fontsize=10)
    left.bar_label(bars, labels=[f"{s:.1f} %" for s in shares], padding=3, fontsize=8)
    left.legend(loc="lower right", fontsize=8)
    scenarios = list(assessment.quality)
    x = np.arange(len(scenarios))
    right.bar(x - 0.2, [assessment.quality[s] for s in scenarios], 0.4, label="this schema")
    if assessment.baseline_quality:
        right.bar(
            x + 0.2,
            [assessment.baseline_quality.get(s, 0.0) for s in scenarios],
            0.4,
            label="baseline",
            color="#999",
        )
    right.set_xticks(x, scenarios, fontsize=8)
    right.set_ylim(0.8, 1.0)
    right.set_ylabel("pairwise F1 (auto threshold)")
    right.set_title("Linkage quality", fontsize=10)
    right.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Privacy assessment: {assessment.schema}", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
