"""Quarterly deliveries with updates and withdrawals, against a static partner."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
import pandas as pd

from benchmarks.synthetic.extracts import (
    format_ids,
    id_numbers,
    layout_records,
    make_extract,
    shuffled,
    to_pace_columns,
    with_duplicates,
    write_csv,
)
from benchmarks.synthetic.partners import PartnerSpec, partner_catalogue, spec_named
from benchmarks.synthetic.population import (
    PACE_FIELDS,
    TRUTH_COLUMN,
    IntArray,
    ObjArray,
    generate_population,
    name_tables,
)
from benchmarks.synthetic.streams import STREAM_LIFECYCLE, random_stream, spawn_streams
from benchmarks.synthetic.variation import (
    STREET_OF,
    check_rates,
    dob_digit_typo,
    keyboard_typo,
    perturb,
    swap_day_and_month,
)

__all__ = [
    "LIFECYCLE_DELIVERING",
    "LIFECYCLE_STATIC",
    "UPDATE_KINDS",
    "Lifecycle",
    "LifecycleBatch",
    "LifecycleRates",
    "UpdateKind",
    "UploadKind",
    "make_lifecycle",
    "write_lifecycle",
]

# ---------------------------------------------------------------------------------------------
# Lifecycle: quarterly deliveries with updates and withdrawals, against a static partner
# ---------------------------------------------------------------------------------------------

UpdateKind = Literal["move", "surname_change", "typo_fix", "dob_fix"]
UploadKind = Literal["snapshot", "delta"]

UPDATE_KINDS: Final[tuple[UpdateKind, ...]] = ("move", "surname_change", "typo_fix", "dob_fix")
"""The kinds of update a lifecycle delta holds (see :class:`LifecycleRates`)."""
LIFECYCLE_STATIC: Final = "benefits_dept"
"""Lifecycle scenario: the partner that delivers one snapshot (it may withdraw records later)."""
LIFECYCLE_DELIVERING: Final = "skills_agency"
"""Lifecycle scenario: the partner that delivers a snapshot, then a delta every quarter."""


@dataclass(frozen=True)
class LifecycleRates:
    """How the delivering partner's client list changes from one quarterly delivery to the next.

    Update and withdrawal rates are shares of a partner's *current* records (delivered before,
    not withdrawn) and are realised as exact counts: ``round(rate * records)``, and at least 1
    while the rate and the pool are not 0, so that even a small scenario has every kind. A record
    gets at most one of them per delivery. The defaults are a skills agency's quarter: about one
    adult in nine moves home in a year, more among the renters such services see; marriages
    change a few women's surnames in a thousand; advisers correct about one record in a hundred.

    Attributes:
        initial_coverage: Share of the population in the delivering partner's first snapshot.
        static_coverage: Share of the population in the static partner's snapshot.
        new_clients: Share of the population arriving as new clients in each delta (people who
            were not clients before; the static partner may already know them).
        move: Moved house: the record holds the new postcode and, at ``address_updated``, the
            new first address line.
        address_updated: Share of moves recorded with the new address line too; otherwise the old
            line stays beside the new postcode, as when an adviser updates only the postcode.
        surname_change: A woman's new surname (marriage; a fifth double-barrelled with the old).
        typo_fix: A name typo of an earlier delivery corrected (only records that carry one).
        dob_fix: A wrong date of birth of an earlier delivery corrected (likewise).
        withdraw: Consent withdrawn: the delivering partner withdraws the record.
        static_withdraw: Consent withdrawn from the static partner, in each delta's quarter.
        planted_name_typo: Share of new records delivered with a keyboard typo in the given name
            or surname (on top of the partner's error profile), which a later delta may correct.
        planted_dob_error: Share of new records (whose date of birth is otherwise right) delivered
            with a wrong date: day and month swapped or one digit wrong, half each.
    """

    initial_coverage: float = 0.50
    static_coverage: float = 0.45
    new_clients: float = 0.05
    move: float = 0.03
    address_updated: float = 0.75
    surname_change: float = 0.003
    typo_fix: float = 0.01
    dob_fix: float = 0.004
    withdraw: float = 0.01
    static_withdraw: float = 0.003
    planted_name_typo: float = 0.05
    planted_dob_error: float = 0.025

    def __post_init__(self) -> None:
        """Check that every rate is a probability."""
        check_rates(self)


@dataclass(frozen=True, eq=False)
class LifecycleBatch:
    """What the partners send in one quarter.

    Attributes:
        number: The batch, from 1.
        deliveries: Records delivered, by partner (its columns and formats, then
            :data:`TRUTH_COLUMN`); a partner that sends nothing this quarter is absent.
        kinds: ``snapshot`` (a partner's first delivery: all its records) or ``delta`` (new
            records and changed ones, each with its earlier local ID), by partner.
        withdrawals: Local IDs whose consent was withdrawn this quarter, by partner (every
            partner has an entry, maybe empty); each was delivered in an earlier batch.
    """

    number: int
    deliveries: Mapping[str, pd.DataFrame]
    kinds: Mapping[str, UploadKind]
    withdrawals: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, eq=False)
class Lifecycle:
    """A partnership's record lifecycle: deliveries, updates and withdrawals, with the truth.

    Attributes:
        population: The people as they were at the first batch (moves and surname changes of
            later quarters are in :attr:`updates`).
        partners: The static partner, then the delivering one.
        batches: The quarters in order.
        updates: One row per updated record and batch: ``partner``, ``batch``, ``local_id``,
            ``person_id``, ``kind`` (one of :data:`UPDATE_KINDS`) and ``fields`` (the canonical
            fields it changed, comma-separated).
        rates: The rates it was made with.
    """

    population: pd.DataFrame
    partners: tuple[PartnerSpec, ...]
    batches: tuple[LifecycleBatch, ...]
    updates: pd.DataFrame
    rates: LifecycleRates

    def spec(self, name: str) -> PartnerSpec:
        """A partner's specification by name.

        Raises:
            KeyError: No such partner.
        """
        return spec_named(self.partners, name)

    def truth(self) -> pd.DataFrame:
        """Every record ever delivered, once.

        Returns:
            Columns ``partner``, ``local_id``, ``person_id``, ``first_batch`` (when it was first
            delivered) and ``withdrawn_batch`` (0: never withdrawn).
        """
        parts = []
        for batch in self.batches:
            for name, frame in batch.deliveries.items():
                parts.append(pd.DataFrame({
                    "partner": name,
                    "local_id": frame[self.spec(name).columns.local_id].to_numpy(),
                    "person_id": frame[TRUTH_COLUMN].to_numpy(dtype=np.int64),
                    "first_batch": batch.number,
                }))  # fmt: skip
        columns = ["partner", "local_id", "person_id", "first_batch"]
        if not parts:
            return pd.DataFrame(columns=[*columns, "withdrawn_batch"])
        truth = pd.concat(parts, ignore_index=True).drop_duplicates(["partner", "local_id"])
        withdrawn = {
            (name, local_id): batch.number
            for batch in self.batches
            for name, ids in batch.withdrawals.items()
            for local_id in ids
        }
        keys = zip(truth["partner"], truth["local_id"], strict=True)
        truth["withdrawn_batch"] = np.array([withdrawn.get(k, 0) for k in keys], dtype=np.int64)
        return truth.reset_index(drop=True)

    def current(self, batch: int) -> dict[str, pd.DataFrame]:
        """Each partner's records as they stand after a batch: latest versions, none withdrawn.

        Args:
            batch: A batch number (from 1).

        Returns:
            By partner, one row per current record (as last delivered), in local-ID order.
        """
        out: dict[str, pd.DataFrame] = {}
        for spec in self.partners:
            id_col = spec.columns.local_id
            frames = [b.deliveries[spec.name] for b in self.batches[:batch]
                      if spec.name in b.deliveries]  # fmt: skip
            gone = {i for b in self.batches[:batch] for i in b.withdrawals.get(spec.name, ())}
            if not frames:
                continue
            stacked = pd.concat(frames, ignore_index=True)
            latest = stacked.drop_duplicates(id_col, keep="last")
            latest = latest[~latest[id_col].isin(gone)].sort_values(id_col)
            out[spec.name] = latest.reset_index(drop=True)
        return out


def _count(rate: float, records: int, pool: int) -> int:
    """How many records of a pool a rate applies to: ``round(rate * records)``, at least 1."""
    if rate <= 0 or pool == 0:
        return 0
    return min(pool, max(1, round(rate * records)))


def _take(rng: np.random.Generator, pool: IntArray, count: int) -> IntArray:
    return np.sort(rng.choice(pool, size=count, replace=False)) if count else pool[:0]


def _plant_errors(
    records: dict[str, ObjArray],
    true_dob: ObjArray,
    rates: LifecycleRates,
    rng: np.random.Generator,
) -> tuple[dict[int, tuple[str, str]], dict[int, str]]:
    """Errors a later delivery corrects, in place; returns the right values by record.

    Returns:
        ``(name_typos, dob_errors)``: record -> (field, right value), and record -> right date.
    """
    m = len(true_dob)
    r = random.Random(int(rng.integers(0, 2**63)))
    names: dict[int, tuple[str, str]] = {}
    for i in np.flatnonzero(rng.random(m) < rates.planted_name_typo).tolist():
        field = r.choice(("given_name", "surname"))
        value = records[field][i]
        if value is not None and (wrong := keyboard_typo(value, r)) != value:
            records[field][i] = wrong
            names[i] = (field, value)
    dobs: dict[int, str] = {}
    for i in np.flatnonzero(rng.random(m) < rates.planted_dob_error).tolist():
        value = records["date_of_birth"][i]
        if value is None or value != true_dob[i]:
            continue  # only a right date can be "corrected" back to the truth
        wrong = swap_day_and_month(value, r) if r.random() < 0.5 else value
        if wrong == value:  # no swap possible (day > 12, or day = month): a digit instead
            wrong = dob_digit_typo(value, r)
        if wrong != value:
            records["date_of_birth"][i] = wrong
            dobs[i] = value
    return names, dobs


def _apply_updates(
    changed: Mapping[UpdateKind, IntArray],
    held: dict[str, ObjArray],
    now: dict[str, ObjArray],
    row_of: IntArray,
    name_typos: dict[int, tuple[str, str]],
    dob_errors: dict[int, str],
    rates: LifecycleRates,
    rng: np.random.Generator,
    population: pd.DataFrame,
) -> dict[int, str]:
    """Apply one delta's updates to the held records (and life events to the people), in place.

    Returns:
        The canonical fields each updated record changed, comma-separated.
    """
    fields: dict[int, str] = {}
    r = random.Random(int(rng.integers(0, 2**63)))
    pop_postcode = population["postcode"].to_numpy(dtype=object)
    pop_address = population["address_line"].to_numpy(dtype=object)
    for i in changed["move"].tolist():
        p = row_of[i]
        j = r.randrange(len(pop_postcode))
        # Somewhere else: a postcode neither the person's nor the one on record.
        for _ in range(100):
            if pop_postcode[j] not in (now["postcode"][p], held["postcode"][i]):
                break
            j = r.randrange(len(pop_postcode))
        postcode = pop_postcode[j]
        address = f"{r.randint(1, 200)} {STREET_OF.sub('', str(pop_address[j]))}"
        now["postcode"][p], now["address_line"][p] = postcode, address
        held["postcode"][i] = postcode
        fields[i] = "postcode"
        if r.random() < rates.address_updated and held["address_line"][i] != address:
            held["address_line"][i] = address
            fields[i] = "postcode,address_line"
    surnames = name_tables().surnames.tolist()
    cum = name_tables().surname_cum
    for i in changed["surname_change"].tolist():
        p = row_of[i]
        old = str(now["surname"][p])
        for _ in range(100):
            other = r.choices(surnames, cum_weights=cum)[0]
            surname = f"{old}-{other}" if r.random() < 0.2 and "-" not in old else other
            if surname not in (old, held["surname"][i]):
                break
        now["surname"][p] = held["surname"][i] = surname
        if name_typos.get(i, ("", ""))[0] == "surname":
            del name_typos[i]  # the typo went with the old name: nothing left to correct
        fields[i] = "surname"
    for i in changed["typo_fix"].tolist():
        field, value = name_typos.pop(i)
        held[field][i] = value
        fields[i] = field
    for i in changed["dob_fix"].tolist():
        held["date_of_birth"][i] = dob_errors.pop(i)
        fields[i] = "date_of_birth"
    return fields


def make_lifecycle(
    n_people: int = 6_000,
    seed: int = 0,
    *,
    batches: int = 4,
    rates: LifecycleRates | None = None,
) -> Lifecycle:
    """A static partner and a partner delivering a snapshot, then quarterly deltas.

    The static partner (the benefits department, :data:`LIFECYCLE_STATIC`) sends one snapshot
    in batch 1, made by :func:`make_extract`, and later only withdraws records. The delivering
    partner (the skills agency, :data:`LIFECYCLE_DELIVERING`, without its consent column:
    consent is withdrawn explicitly here) sends a snapshot in batch 1 and a delta in each later
    batch. A delta holds the new clients of the quarter (local IDs above all earlier ones, as a
    register allocates them) and the records that changed, each re-sent whole under its local
    ID: moves, surname changes, corrected name typos and corrected dates of birth (see
    :class:`LifecycleRates`). Records are rendered once with the partner's error profile; a
    re-sent record differs from its previous version only by its update. Moves and surname
    changes are life events: the static partner keeps the old details.

    Args:
        n_people: Population size (the partners hold about half of it each).
        seed: Random seed; the same arguments give identical output.
        batches: Deliveries of the delivering partner: the snapshot, then ``batches - 1`` deltas.
        rates: The rates (default: :class:`LifecycleRates`'s).

    Returns:
        The lifecycle.

    Raises:
        ValueError: ``batches`` below 1, or ``n_people`` or ``seed`` negative.
    """
    if batches < 1:
        raise ValueError(f"batches must be at least 1, got {batches}")
    rates = rates or LifecycleRates()
    population = generate_population(n_people, seed)
    cat = partner_catalogue()
    static = dataclasses.replace(cat[LIFECYCLE_STATIC], coverage=rates.static_coverage)
    skills = dataclasses.replace(
        cat[LIFECYCLE_DELIVERING], coverage=rates.initial_coverage, consent_refusal_rate=None
    )
    static_frame = make_extract(population, static, seed)
    arrive, ids, errors, plant, events, order = spawn_streams(
        random_stream(seed, STREAM_LIFECYCLE, skills.name), 6
    )
    static_events = random_stream(seed, STREAM_LIFECYCLE, static.name)
    n = len(population)

    # Who becomes a client when: each person once (a duplicate record arrives with them).
    waiting = np.arange(n, dtype=np.int64)
    groups: list[IntArray] = []
    for b in range(batches):
        share = rates.initial_coverage if b == 0 else rates.new_clients
        chosen = np.sort(arrive.choice(len(waiting), size=min(len(waiting), round(share * n)),
                                       replace=False))  # fmt: skip
        groups.append(with_duplicates(arrive, waiting[chosen], skills.profile.duplicate))
        waiting = np.delete(waiting, chosen)
    total = sum(len(g) for g in groups)
    numbers, width = id_numbers(ids, total)
    local: list[str] = []
    for g in groups:
        chunk = numbers[len(local) : len(local) + len(g)]
        local += format_ids(skills.id_prefix, ids.permutation(chunk), width)

    # The partner's records as it holds them (canonical values), and the people as they are.
    now = {f: population[f].to_numpy(dtype=object).copy() for f in PACE_FIELDS}
    person_id = population["person_id"].to_numpy(dtype=np.int64)
    held = {f: np.empty(total, dtype=object) for f in PACE_FIELDS}
    row_of = np.concatenate(groups)  # population row of each record
    name_typos: dict[int, tuple[str, str]] = {}  # record -> (field, right value)
    dob_errors: dict[int, str] = {}  # record -> right date of birth
    withdrawn = np.zeros(total, dtype=bool)
    static_ids = static_frame[static.columns.local_id].to_numpy(dtype=object)
    static_gone = np.zeros(len(static_ids), dtype=bool)
    err_rngs, plant_rngs = spawn_streams(errors, batches), spawn_streams(plant, batches)
    updates: list[dict[str, object]] = []
    out: list[LifecycleBatch] = []
    before = 0  # records delivered before this batch: 0 .. before - 1
    for b, group in enumerate(groups):
        new = np.arange(before, before + len(group), dtype=np.int64)
        records = {f: now[f][group].copy() for f in PACE_FIELDS}
        perturb(records, records["sex"] == "F", skills.profile, err_rngs[b], population)
        planted_names, planted_dobs = _plant_errors(
            records, now["date_of_birth"][group], rates, plant_rngs[b]
        )
        for f in PACE_FIELDS:
            held[f][new] = records[f]
        name_typos.update({int(new[i]): v for i, v in planted_names.items()})
        dob_errors.update({int(new[i]): v for i, v in planted_dobs.items()})

        withdrawals: dict[str, tuple[str, ...]] = {static.name: (), skills.name: ()}
        changed: dict[UpdateKind, IntArray] = {}
        if b > 0:
            # The records delivered before and still shared: those that can change or go.
            current = np.flatnonzero(~withdrawn[:before])
            gone = _take(events, current, _count(rates.withdraw, len(current), len(current)))
            withdrawn[gone] = True
            free = np.setdiff1d(current, gone)
            for kind in UPDATE_KINDS:
                if kind == "surname_change":
                    pool = free[now["sex"][row_of[free]] == "F"]
                elif kind == "typo_fix":
                    pool = np.intersect1d(free, np.fromiter(name_typos, np.int64))
                elif kind == "dob_fix":
                    pool = np.intersect1d(free, np.fromiter(dob_errors, np.int64))
                else:
                    pool = free
                rate: float = getattr(rates, kind)
                changed[kind] = _take(events, pool, _count(rate, len(current), len(pool)))
                free = np.setdiff1d(free, changed[kind])
            fields = _apply_updates(changed, held, now, row_of, name_typos, dob_errors, rates,
                                    events, population)  # fmt: skip
            kept = np.flatnonzero(~static_gone)
            static_out = _take(static_events, kept,
                               _count(rates.static_withdraw, len(kept), len(kept)))  # fmt: skip
            static_gone[static_out] = True
            withdrawals = {
                static.name: tuple(str(v) for v in static_ids[static_out].tolist()),
                skills.name: tuple(local[i] for i in gone.tolist()),
            }
            for kind, rows in changed.items():
                updates += [
                    {"partner": skills.name, "batch": b + 1, "local_id": local[i],
                     "person_id": int(person_id[row_of[i]]), "kind": kind, "fields": fields[i]}
                    for i in rows.tolist()
                ]  # fmt: skip
        sent = np.sort(np.concatenate([new, *changed.values()]))
        sent_ids = [local[i] for i in sent.tolist()]
        frame = layout_records({f: held[f][sent] for f in PACE_FIELDS}, skills, sent_ids,
                        person_id[row_of[sent]], None)  # fmt: skip
        deliveries = {skills.name: shuffled(frame, order)}
        kinds: dict[str, UploadKind] = {skills.name: "snapshot" if b == 0 else "delta"}
        if b == 0:
            deliveries = {static.name: static_frame, **deliveries}
            kinds = {static.name: "snapshot", **kinds}
        out.append(LifecycleBatch(b + 1, deliveries, kinds, withdrawals))
        before += len(group)
    update_frame = pd.DataFrame(
        updates, columns=["partner", "batch", "local_id", "person_id", "kind", "fields"]
    )
    return Lifecycle(population, (static, skills), tuple(out), update_frame, rates)


def write_lifecycle(lifecycle: Lifecycle, out: Path) -> list[dict[str, dict[str, Path]]]:
    """Write a lifecycle's files as the partners and the evaluator would hold them.

    ``out/batchB/PARTNER.csv``: a delivery, with the canonical column names (``local_id``,
    :data:`PACE_FIELDS`) and the partner's own value formats, no truth column;
    ``out/batchB/PARTNER.withdrawn.txt``: the local IDs withdrawn that quarter, one a line
    (only where there are any); ``out/truth.csv`` (:meth:`Lifecycle.truth`) and
    ``out/updates.csv`` (:attr:`Lifecycle.updates`): the evaluator's.

    Args:
        lifecycle: From :func:`make_lifecycle`.
        out: Folder to write into (created).

    Returns:
        For each batch, by partner: ``{"records": CSV, "withdrawn": TXT}``, those written.
    """
    files: list[dict[str, dict[str, Path]]] = []
    for batch in lifecycle.batches:
        folder = out / f"batch{batch.number}"
        folder.mkdir(parents=True, exist_ok=True)
        written: dict[str, dict[str, Path]] = {}
        for name, frame in batch.deliveries.items():
            path = folder / f"{name}.csv"
            pace = to_pace_columns(frame, lifecycle.spec(name)).drop(columns=[TRUTH_COLUMN])
            write_csv(pace, path)
            written.setdefault(name, {})["records"] = path
        for name, ids in batch.withdrawals.items():
            if ids:
                path = folder / f"{name}.withdrawn.txt"
                path.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
                written.setdefault(name, {})["withdrawn"] = path
        files.append(written)
    write_csv(lifecycle.truth(), out / "truth.csv")
    write_csv(lifecycle.updates, out / "updates.csv")
    return files
