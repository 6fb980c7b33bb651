"""A partner's extract rendered from the population, and its canonical columns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from benchmarks.synthetic.partners import PartnerSpec
from benchmarks.synthetic.population import (
    PACE_FIELDS,
    REFERENCE_DATE,
    TRUTH_COLUMN,
    IntArray,
    ObjArray,
)
from benchmarks.synthetic.streams import STREAM_EXTRACT, random_stream, spawn_streams
from benchmarks.synthetic.variation import VARIATION_KINDS, ErrorProfile, perturb

__all__ = [
    "format_ids",
    "id_numbers",
    "layout_records",
    "make_extract",
    "render_records",
    "shuffled",
    "to_pace_columns",
    "variation_flags",
    "with_duplicates",
    "write_csv",
]


def with_duplicates(rng: np.random.Generator, people: IntArray, share: float) -> IntArray:
    """The people's rows, followed by a second row for ``round(share * len)`` of them."""
    count = round(share * len(people))
    twice = rng.choice(len(people), size=count, replace=False)
    return np.concatenate([people, people[np.sort(twice)]])


def id_numbers(rng: np.random.Generator, count: int) -> tuple[IntArray, int]:
    """Distinct, sorted random local-ID numbers, and the width to print them with."""
    upper = max(1_000, 10 * count)
    numbers = np.sort(rng.choice(upper, size=count, replace=False)) + 1
    return numbers.astype(np.int64), max(6, len(str(upper)))


_SEX_CODES: Final[Mapping[str, Mapping[str, str]]] = {
    "M/F": {"M": "M", "F": "F"},
    "Male/Female": {"M": "Male", "F": "Female"},
    "1/2": {"M": "1", "F": "2"},
}


def _format_dates(values: ObjArray, fmt: str) -> ObjArray:
    cache: dict[str, str] = {}
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values.tolist()):
        if v is None:
            out[i] = None
            continue
        s = cache.get(v)
        if s is None:
            s = cache[v] = dt.date.fromisoformat(v).strftime(fmt)
        out[i] = s
    return out


def render_records(
    population: pd.DataFrame,
    spec: PartnerSpec,
    rows: IntArray,
    local_ids: Sequence[str],
    rng: np.random.Generator,
    *,
    profile: ErrorProfile | None = None,
    variations: list[pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The partner's records of the given population rows, in population order.

    ``variations``, if given, receives the records' :func:`variation_flags` (same order).
    """
    err_rng, consent_rng = spawn_streams(rng, 2)
    records = {f: population[f].to_numpy(dtype=object)[rows].copy() for f in PACE_FIELDS}
    records["previous_surname"] = np.full(len(rows), None, dtype=object)
    female = records["sex"] == "F"
    applied: dict[str, npt.NDArray[np.bool_]] = {}
    perturb(records, female, profile or spec.profile, err_rng, population, applied)
    person = population["person_id"].to_numpy(dtype=np.int64)[rows]
    frame = layout_records(records, spec, local_ids, person, consent_rng)
    if variations is not None:
        variations.append(variation_flags(applied, rows, local_ids, person))
    return frame


def variation_flags(
    applied: Mapping[str, npt.NDArray[np.bool_]],
    rows: IntArray,
    local_ids: Sequence[str],
    person: IntArray,
) -> pd.DataFrame:
    """Which variations each record got: ground truth kept outside the partner's file.

    Args:
        applied: What :func:`~benchmarks.synthetic.variation.perturb` recorded.
        rows: The records' population rows (a row twice: the person is a duplicate).
        local_ids: The records' local IDs.
        person: The records' ``person_id``.

    Returns:
        Columns ``local_id``, ``person_id`` and one boolean column per
        :data:`~benchmarks.synthetic.variation.VARIATION_KINDS` kind.
    """
    _, inverse, counts = np.unique(rows, return_inverse=True, return_counts=True)
    flags: dict[str, object] = {"local_id": np.array(local_ids, dtype=object), "person_id": person}
    for kind in VARIATION_KINDS:
        if kind == "duplicate":
            flags[kind] = counts[inverse] > 1
        else:
            flags[kind] = np.asarray(applied.get(kind, np.zeros(len(rows), bool)), dtype=bool)
    return pd.DataFrame(flags)


def layout_records(
    records: Mapping[str, ObjArray],
    spec: PartnerSpec,
    local_ids: Sequence[str],
    person: IntArray,
    consent_rng: np.random.Generator | None,
) -> pd.DataFrame:
    """Canonical records (ISO dates, M/F) in the partner's formats, columns and local IDs.

    ``consent_rng`` draws the consent column; it is only used when the partner has one.
    """
    records = dict(records)  # the partner's formats replace values: the caller keeps its own
    if spec.uppercase:
        for f in ("given_name", "surname", "postcode", "address_line"):
            records[f] = np.array([v if v is None else v.upper() for v in records[f]], dtype=object)
    records["date_of_birth"] = _format_dates(records["date_of_birth"], spec.date_format)
    codes = _SEX_CODES[spec.sex_coding]
    records["sex"] = np.array(
        [None if v is None else codes[v] for v in records["sex"]], dtype=object
    )
    cols = spec.columns
    data: dict[str, object] = {cols.local_id: np.array(local_ids, dtype=object)}
    for f in spec.present_fields():
        data[cols.header(f)] = records[f]
    if spec.has_previous_surname:
        previous = records.get("previous_surname", np.full(len(person), None, dtype=object))
        if spec.uppercase:
            previous = np.array([v if v is None else v.upper() for v in previous], dtype=object)
        data[cols.previous_surname] = previous
    if spec.consent_refusal_rate is not None:
        if consent_rng is None:
            raise ValueError(f"{spec.name} has a consent column: a consent_rng is needed")
        refused = consent_rng.random(len(person)) < spec.consent_refusal_rate
        data[cols.consent] = np.where(refused, "N", "Y").astype(object)
    data[TRUTH_COLUMN] = person
    return pd.DataFrame(data)


def shuffled(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The rows in a random order (a partner's file is in no meaningful order)."""
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


def format_ids(prefix: str, numbers: IntArray, width: int) -> list[str]:
    """Local IDs of the form ``PREFIX-000123``."""
    return [f"{prefix}-{k:0{width}d}" for k in numbers.tolist()]


def make_extract(
    population: pd.DataFrame,
    spec: PartnerSpec,
    seed: int,
    *,
    variations: list[pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Render one partner's file from the population.

    ``round(coverage * len(population))`` people are included; ``round(duplicate * that)`` of
    them appear a second time under another local ID. Every record gets the profile's errors
    independently, then the partner's formats (date format, sex coding, upper case), its column
    names and local IDs (``PREFIX-000123``, distinct random numbers); rows are shuffled.

    Args:
        population: A population from :func:`generate_population`.
        spec: The partner.
        seed: Random seed (combined with the partner name, so partners differ).
        variations: If given, receives one frame: the :func:`variation_flags` of the returned
            rows, in the same order.

    Returns:
        The partner's columns (``columns.local_id`` first, then the present person fields in
        canonical order, then the consent column if any) and the truth column
        :data:`TRUTH_COLUMN` (int64 ``person_id``), which must be dropped before encoding.
    """
    select, ids, render, order = spawn_streams(random_stream(seed, STREAM_EXTRACT, spec.name), 4)
    n = len(population)
    people = np.sort(select.choice(n, size=round(spec.coverage * n), replace=False))
    rows = with_duplicates(select, people.astype(np.int64), spec.profile.duplicate)
    numbers, width = id_numbers(ids, len(rows))
    local = format_ids(spec.id_prefix, ids.permutation(numbers), width)
    flags: list[pd.DataFrame] = []
    frame = render_records(population, spec, rows, local, render, variations=flags)
    permutation = order.permutation(len(frame))  # as shuffled() draws it
    if variations is not None:
        variations.append(flags[0].iloc[permutation].reset_index(drop=True))
    return frame.iloc[permutation].reset_index(drop=True)


def to_pace_columns(
    extract: pd.DataFrame, spec: PartnerSpec, *, canonical_values: bool = False
) -> pd.DataFrame:
    """A partner's extract with the canonical column names and order.

    Columns: ``local_id``, the :data:`PACE_FIELDS` (empty where the partner lacks one), then
    ``consent`` and :data:`TRUTH_COLUMN` where the extract has them.

    Args:
        extract: A file from :func:`make_extract` (truth column optional).
        spec: The partner that made it.
        canonical_values: Also convert dates of birth to ``YYYY-MM-DD`` (two-digit years are
            placed no later than :data:`REFERENCE_DATE`; unparsable dates become empty) and sex
            to ``M``/``F``. Otherwise values keep the partner's formats.

    Returns:
        A new data frame.
    """
    cols = spec.columns
    present = spec.present_fields()
    out: dict[str, npt.NDArray[Any]] = {"local_id": extract[cols.local_id].to_numpy()}
    for f in PACE_FIELDS:
        header = cols.header(f)
        if f in present and header in extract.columns:
            out[f] = extract[header].to_numpy(dtype=object).copy()
        else:
            out[f] = np.full(len(extract), None, dtype=object)
    if canonical_values:
        out["date_of_birth"] = _parse_dates(out["date_of_birth"], spec.date_format)
        decode = {v: k for k, v in _SEX_CODES[spec.sex_coding].items()}
        sex = out["sex"].tolist()
        out["sex"] = _objects([None if v is None else decode.get(str(v)) for v in sex])
    if spec.has_previous_surname and cols.previous_surname in extract.columns:
        out["previous_surname"] = extract[cols.previous_surname].to_numpy(dtype=object)
    if spec.consent_refusal_rate is not None and cols.consent in extract.columns:
        out["consent"] = extract[cols.consent].to_numpy()
    if TRUTH_COLUMN in extract.columns:
        out[TRUTH_COLUMN] = extract[TRUTH_COLUMN].to_numpy()
    return pd.DataFrame(out)


def _objects(values: Sequence[str | None]) -> ObjArray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _parse_dates(values: ObjArray, fmt: str) -> ObjArray:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values.tolist()):
        try:
            d = dt.datetime.strptime(str(v), fmt).date()
        except ValueError:
            out[i] = None
            continue
        if d > REFERENCE_DATE:
            d = d.replace(year=d.year - 100)
        out[i] = d.isoformat()
    return out


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a generated file as UTF-8 CSV with Unix line ends (identical on every OS)."""
    frame.to_csv(path, index=False, lineterminator="\n", encoding="utf-8")
