"""Tests of the synthetic population and partner-extract generator."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from faker.providers.person.en_GB import Provider as FakerPerson

from benchmarks import synthetic as syn
from benchmarks.synthetic import errors, names
from benchmarks.synthetic import population as people

N = 3000
SEED = 11
POSTCODE_RE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][ABD-HJLNP-UW-Z]{2}$")
NI_RE = re.compile(r"^(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z][0-9]{6}[A-D]$")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    return syn.generate_population(N, SEED)


def clean_spec(**changes: object) -> syn.PartnerSpec:
    spec = syn.PartnerSpec(
        name="test_partner",
        coverage=0.6,
        profile=syn.CLEAN,
        has_address_line=True,
        has_ni_number=True,
        id_prefix="TST",
    )
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


def canonical(extract: pd.DataFrame, spec: syn.PartnerSpec) -> pd.DataFrame:
    return syn.to_pace_columns(extract, spec, canonical_values=True)


def with_truth(
    extract: pd.DataFrame, population: pd.DataFrame, spec: syn.PartnerSpec
) -> pd.DataFrame:
    """Canonical extract rows joined with the true records (suffix ``_true``)."""
    truth = population.rename(columns={c: f"{c}_true" for c in syn.PACE_FIELDS})
    merged = canonical(extract, spec).merge(
        truth, left_on=syn.TRUTH_COLUMN, right_on="person_id", how="left", validate="m:1"
    )
    assert merged["person_id"].notna().all()
    return merged


# --- population --------------------------------------------------------------------------------


def test_population_shape_and_types(population: pd.DataFrame) -> None:
    assert list(population.columns) == ["person_id", *syn.PACE_FIELDS]
    assert len(population) == N
    assert population["person_id"].dtype == np.int64
    assert population["person_id"].tolist() == list(range(1, N + 1))
    for field in syn.PACE_FIELDS:
        assert population[field].map(lambda v: isinstance(v, str) and v != "").all(), field


def test_population_deterministic() -> None:
    a = syn.generate_population(500, 3)
    pd.testing.assert_frame_equal(a, syn.generate_population(500, 3))
    assert not a.equals(syn.generate_population(500, 4))


@pytest.mark.parametrize("n", [0, 1, 7])
def test_population_tiny(n: int) -> None:
    assert len(syn.generate_population(n, 1)) == n


def test_sex_consistent_with_given_name(population: pd.DataFrame) -> None:
    male = set(FakerPerson.first_names_male) | {n for n, _ in names._EXTRA_MALE}
    female = set(FakerPerson.first_names_female) | {n for n, _ in names._EXTRA_FEMALE}
    assert not male & female
    consistent = np.where(
        population["sex"] == "M",
        population["given_name"].isin(male),
        population["given_name"].isin(female),
    )
    assert consistent.all()
    assert 0.46 < (population["sex"] == "F").mean() < 0.56


def test_name_frequencies_are_skewed(population: pd.DataFrame) -> None:
    surnames = population["surname"].value_counts(normalize=True)
    assert "Smith" in surnames.index[:5]
    assert 0.005 < surnames.iloc[0] < 0.04
    assert population["surname"].nunique() > 500
    given = population.loc[population["sex"] == "M", "given_name"].value_counts(normalize=True)
    assert given.iloc[0] > 5 * given.iloc[len(given) // 2]


def test_postcodes_and_ni_numbers_valid(population: pd.DataFrame) -> None:
    assert population["postcode"].str.match(POSTCODE_RE).all()
    outward = population["postcode"].str.extract(r"^([A-Z]+)")[0]
    assert set(outward) <= {a for a, _, _ in people.AREAS}
    assert outward.value_counts().index[0] in {"G", "EH"}
    assert population["ni_number"].str.match(NI_RE).all()
    assert population["ni_number"].str[:8].is_unique


def test_ages_working_age(population: pd.DataFrame) -> None:
    dob = pd.to_datetime(population["date_of_birth"], format="%Y-%m-%d")
    ref = pd.Timestamp(syn.REFERENCE_DATE)
    had_birthday = (dob.dt.month < ref.month) | (
        (dob.dt.month == ref.month) & (dob.dt.day <= ref.day)
    )
    age = ref.year - dob.dt.year - (~had_birthday).astype(int)
    assert age.min() >= 16
    assert age.max() <= 66
    counts = age.value_counts()
    assert len(counts) == 51  # every age from 16 to 66 occurs
    assert counts.max() < 3 * counts.min()


def test_households_share_postcode_and_address(population: pd.DataFrame) -> None:
    households = population.groupby(["postcode", "address_line"])
    sizes = households.size()
    assert 1.5 < len(population) / len(sizes) < 3.0
    assert sizes.max() <= 6
    assert population["address_line"].str.match(r"^(Flat [0-9/]+, )?\d+ [A-Z][a-z]+ [A-Z]").all()
    # Most multi-person households share a surname.
    multi = population.groupby(["postcode", "address_line"]).filter(lambda g: len(g) > 1)
    shared = multi.groupby(["postcode", "address_line"])["surname"].nunique()
    assert (shared == 1).mean() > 0.5


# --- extracts ----------------------------------------------------------------------------------


def test_extract_size_coverage_and_ids(population: pd.DataFrame) -> None:
    spec = clean_spec(profile=dataclasses.replace(syn.CLEAN, duplicate=0.1))
    extract = syn.make_extract(population, spec, SEED)
    people = round(0.6 * N)
    assert len(extract) == people + round(0.1 * people)
    assert extract[syn.TRUTH_COLUMN].nunique() == people
    assert extract[syn.TRUTH_COLUMN].isin(population["person_id"]).all()
    counts = extract[syn.TRUTH_COLUMN].value_counts()
    assert (counts == 2).sum() == round(0.1 * people)
    assert counts.max() == 2
    assert extract["local_id"].is_unique
    assert extract["local_id"].str.match(r"^TST-\d{6,}$").all()
    # Shuffled: not in person order.
    assert not extract[syn.TRUTH_COLUMN].is_monotonic_increasing


def test_extract_deterministic(population: pd.DataFrame) -> None:
    spec = syn.partner_catalogue()["council"]
    a = syn.make_extract(population, spec, 5)
    pd.testing.assert_frame_equal(a, syn.make_extract(population, spec, 5))
    assert not a.equals(syn.make_extract(population, spec, 6))
    other = dataclasses.replace(spec, name="council_b")
    assert not a[syn.TRUTH_COLUMN].equals(syn.make_extract(population, other, 5)[syn.TRUTH_COLUMN])


@pytest.mark.parametrize(
    ("date_format", "sex_coding"),
    [("%Y-%m-%d", "M/F"), ("%d/%m/%Y", "Male/Female"), ("%d %b %Y", "1/2"), ("%d-%m-%y", "M/F")],
)
def test_clean_profile_reproduces_population(
    population: pd.DataFrame, date_format: str, sex_coding: syn.SexCoding
) -> None:
    spec = clean_spec(date_format=date_format, sex_coding=sex_coding)
    extract = syn.make_extract(population, spec, SEED)
    merged = with_truth(extract, population, spec)
    assert len(merged) == round(0.6 * N)
    for field in syn.PACE_FIELDS:
        assert (merged[field] == merged[f"{field}_true"]).all(), field


def test_partner_layout(population: pd.DataFrame) -> None:
    spec = syn.partner_catalogue()["skills_agency"]
    extract = syn.make_extract(population, spec, SEED)
    cols = spec.columns
    assert list(extract.columns) == [
        cols.local_id,
        cols.given_name,
        cols.surname,
        cols.date_of_birth,
        cols.sex,
        cols.postcode,
        cols.address_line,
        cols.ni_number,
        cols.consent,
        syn.TRUTH_COLUMN,
    ]
    assert set(extract[cols.sex].dropna()) == {"Male", "Female"}
    dates = extract[cols.date_of_birth].dropna()
    assert dates.str.match(r"^\d{2}/\d{2}/\d{4}$").all()
    assert set(extract[cols.consent]) == {"Y", "N"}

    council = syn.partner_catalogue()["council"]
    extract = syn.make_extract(population, council, SEED)
    assert council.columns.ni_number not in extract.columns
    assert (
        extract[council.columns.date_of_birth]
        .dropna()
        .str.match(r"^\d{2} [A-Z][a-z]{2} \d{4}$")
        .all()
    )

    tax = syn.partner_catalogue()["tax_dept"]
    extract = syn.make_extract(population, tax, SEED)
    names = extract[tax.columns.surname].dropna()
    assert (names == names.str.upper()).all()
    assert tax.columns.address_line not in extract.columns


def error_only(**rates: object) -> syn.ErrorProfile:
    return dataclasses.replace(syn.CLEAN, **rates)  # type: ignore[arg-type]


def changed_share(population: pd.DataFrame, profile: syn.ErrorProfile, field: str) -> float:
    spec = clean_spec(profile=profile, coverage=1.0)
    merged = with_truth(syn.make_extract(population, spec, SEED), population, spec)
    others = [f for f in syn.PACE_FIELDS if f != field]
    for other in others:  # nothing else changes
        assert (merged[other] == merged[f"{other}_true"]).all(), other
    return float((merged[field] != merged[f"{field}_true"]).mean())


@pytest.mark.parametrize(
    ("profile", "field", "rate"),
    [
        (error_only(typo=syn.FieldRates(given_name=0.2)), "given_name", 0.2),
        (error_only(typo=syn.FieldRates(ni_number=0.1)), "ni_number", 0.1),
        (error_only(typo=syn.FieldRates(date_of_birth=0.1)), "date_of_birth", 0.1),
        (error_only(missing=syn.FieldRates(postcode=0.15)), "postcode", 0.15),
        (error_only(case=syn.FieldRates(surname=0.3)), "surname", 0.3),
        (error_only(format=syn.FieldRates(postcode=0.25)), "postcode", 0.25),
        (error_only(format=syn.FieldRates(address_line=0.25)), "address_line", 0.25),
        (error_only(sex_miscoded=0.05), "sex", 0.05),
    ],
)
def test_error_rates_as_configured(
    population: pd.DataFrame, profile: syn.ErrorProfile, field: str, rate: float
) -> None:
    assert changed_share(population, profile, field) == pytest.approx(rate, abs=0.03)


def test_keyboard_typo_is_adjacent_substitution(population: pd.DataFrame) -> None:
    spec = clean_spec(profile=error_only(typo=syn.FieldRates(surname=1.0)), coverage=0.2)
    merged = with_truth(syn.make_extract(population, spec, SEED), population, spec)
    for got, true in zip(merged["surname"], merged["surname_true"], strict=True):
        assert len(got) == len(true)
        diffs = [(a, b) for a, b in zip(got, true, strict=True) if a != b]
        assert len(diffs) == 1
        typed, meant = diffs[0]
        assert typed.lower() in errors._ADJACENT[meant.lower()]


def test_format_and_case_variants() -> None:
    r = random.Random(0)
    assert errors.postcode_format("EH1 1AA", random.Random(1)) in {"EH11AA", "EH1  1AA"}
    assert {errors.name_format("O'Neill", r) for _ in range(50)} == {"ONeill", "O Neill"}
    assert {errors.name_format("Smith-Jones", r) for _ in range(50)} == {
        "Smith Jones",
        "SmithJones",
    }
    assert errors.name_format("McDonald", r) == "Mc Donald"
    assert errors.strip_accents("Seán Łukasz Zoë") == "Sean Lukasz Zoe"
    assert {errors.name_case("McDonald", r) for _ in range(100)} == {
        "MCDONALD",
        "mcdonald",
        "Mcdonald",
    }
    assert errors.ocr_confusion("Ian", r) in {"1an", "lan"}
    assert errors.swap_day_and_month("1980-03-07", r) == "1980-07-03"
    assert errors.swap_day_and_month("1980-03-17", r) == "1980-03-17"
    assert errors.ni_format("AB123456C", r) in {"AB 12 34 56 C", "AB123456", "AB123456 C"}


def test_nicknames_and_name_swap(population: pd.DataFrame) -> None:
    spec = clean_spec(profile=error_only(nickname=1.0), coverage=1.0)
    merged = with_truth(syn.make_extract(population, spec, SEED), population, spec)
    table = people.name_tables().nicknames
    changed = merged[merged["given_name"] != merged["given_name_true"]]
    assert len(changed) > 0.3 * len(merged)
    for got, true in zip(changed["given_name"], changed["given_name_true"], strict=True):
        assert got in table[true.lower()][0]
    bills = changed.loc[changed["given_name_true"].isin(["William", "Robert"]), "given_name"]
    assert {"Bill", "Bob", "Will", "Rob"} & set(bills)

    spec = clean_spec(profile=error_only(name_swap=1.0), coverage=0.1)
    merged = with_truth(syn.make_extract(population, spec, SEED), population, spec)
    assert (merged["given_name"] == merged["surname_true"]).all()
    assert (merged["surname"] == merged["given_name_true"]).all()


def test_surname_change_mostly_women(population: pd.DataFrame) -> None:
    spec = clean_spec(profile=error_only(surname_change=0.5), coverage=1.0)
    merged = with_truth(syn.make_extract(population, spec, SEED), population, spec)
    changed = merged["surname"] != merged["surname_true"]
    women = merged["sex_true"] == "F"
    assert changed[women].mean() == pytest.approx(0.5, abs=0.05)
    assert changed[~women].mean() == pytest.approx(0.05, abs=0.03)


def test_move_changes_postcode_and_address(population: pd.DataFrame) -> None:
    spec = clean_spec(profile=error_only(move=0.3), coverage=1.0)
    merged = with_truth(syn.make_extract(population, spec, SEED), population, spec)
    moved = merged["postcode"] != merged["postcode_true"]
    assert moved.mean() == pytest.approx(0.3, abs=0.04)
    assert merged.loc[moved, "postcode"].isin(population["postcode"]).all()
    assert (
        merged.loc[moved, "address_line"] != merged.loc[moved, "address_line_true"]
    ).mean() > 0.9


def test_presets_ordered_by_messiness(population: pd.DataFrame) -> None:
    assert set(syn.PRESETS) == {"clean", "light", "typical", "messy", "wide-typical", "wide-messy"}
    shares = []
    for profile in (syn.CLEAN, syn.LIGHT, syn.TYPICAL, syn.WIDE_TYPICAL, syn.MESSY):
        spec = clean_spec(profile=profile, coverage=0.5)
        merged = with_truth(syn.make_extract(population, spec, SEED), population, spec)
        differs = np.zeros(len(merged), dtype=bool)
        for field in syn.PACE_FIELDS:
            differs |= (merged[field] != merged[f"{field}_true"]).to_numpy()
        shares.append(differs.mean())
    assert shares[0] == 0.0
    assert shares[0] < shares[1] < shares[2] < shares[3] < shares[4]  # wide-typical: more


def test_invalid_rates_rejected() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        syn.FieldRates(given_name=1.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        syn.ErrorProfile(nickname=-0.1)
    with pytest.raises(ValueError, match="coverage"):
        syn.PartnerSpec(name="x", coverage=2.0)


# --- scenarios and CLI -------------------------------------------------------------------------


def test_five_party_scenario() -> None:
    scenario = syn.make_scenario("five-party", 1500, 2)
    names = [s.name for s in scenario.partners]
    assert names == ["skills_agency", "benefits_dept", "tax_dept", "council", "college"]
    assert not scenario.incremental
    headers = {s.columns.given_name for s in scenario.partners}
    assert len(headers) == 5
    for spec in scenario.partners:
        extract = scenario.extracts[spec.name]
        assert extract[syn.TRUTH_COLUMN].nunique() == round(spec.coverage * 1500)
    truth = scenario.truth()
    assert len(truth) == sum(len(e) for e in scenario.extracts.values())
    with pytest.raises(ValueError, match="unknown scenario"):
        syn.make_scenario("nope", 10, 1)


def test_incremental_batches_overlap() -> None:
    scenario = syn.make_scenario("incremental", 4000, 3)
    assert scenario.incremental
    for spec in scenario.partners:
        batch1, batch2 = scenario.batches[spec.name]
        id_col = spec.columns.local_id
        ids1 = set(batch1[id_col])
        updated = batch2[batch2[id_col].isin(ids1)]
        new = batch2[~batch2[id_col].isin(ids1)]
        assert len(updated) == round(syn.INCREMENTAL_UPDATE_SHARE * len(batch1))
        # Updated records keep their local ID and person.
        first = batch1.set_index(id_col)[syn.TRUTH_COLUMN]
        assert (updated[syn.TRUTH_COLUMN].to_numpy() == first[updated[id_col]].to_numpy()).all()
        # New people did not appear in batch 1, and got higher local IDs.
        assert not set(new[syn.TRUTH_COLUMN]) & set(batch1[syn.TRUTH_COLUMN])
        number = re.compile(r"-(\d+)$")
        top1 = max(int(number.search(i).group(1)) for i in ids1)  # type: ignore[union-attr]
        assert min(int(number.search(i).group(1)) for i in new[id_col]) > top1  # type: ignore[union-attr]
        people = batch1[syn.TRUTH_COLUMN].nunique() + new[syn.TRUTH_COLUMN].nunique()
        assert people == round(spec.coverage * 4000)
        share_new = new[syn.TRUTH_COLUMN].nunique() / people
        assert share_new == pytest.approx(syn.INCREMENTAL_NEW_SHARE, abs=0.04)
        stacked = scenario.extracts[spec.name]
        assert len(stacked) == len(batch1) + len(batch2)


def run_cli(out: Path, *extra: str, scenario: str = "incremental", people: int = 800) -> None:
    args = ["--scenario", scenario, "--people", str(people), "--seed", "9", "--out", str(out)]
    assert syn.main([*args, *extra]) == 0


def test_cli_writes_files_and_truth(tmp_path: Path) -> None:
    run_cli(tmp_path / "a")
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == [
        "benefits_dept_batch1.csv",
        "benefits_dept_batch2.csv",
        "council_batch1.csv",
        "council_batch2.csv",
        "skills_agency_batch1.csv",
        "skills_agency_batch2.csv",
        "truth.csv",
        "variations.csv",
    ]
    truth = pd.read_csv(tmp_path / "a" / "truth.csv", dtype=str)
    assert list(truth.columns) == ["partner", "batch", "file", "local_id", "person_id"]
    council = pd.read_csv(tmp_path / "a" / "council_batch2.csv", dtype=str, keep_default_na=False)
    assert syn.TRUTH_COLUMN in council.columns
    rows = truth[truth["file"] == "council_batch2.csv"]
    assert rows["local_id"].tolist() == council["Ref"].tolist()
    assert rows["person_id"].tolist() == council[syn.TRUTH_COLUMN].tolist()

    # Same seed: byte-identical output.
    run_cli(tmp_path / "b")
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_cli_strip_truth_and_pace_columns(tmp_path: Path) -> None:
    run_cli(tmp_path, "--strip-truth", "--pace-columns", scenario="five-party", people=600)
    header = ["local_id", *syn.PACE_FIELDS]
    for name in ("tax_dept", "council", "college", "benefits_dept"):
        frame = pd.read_csv(tmp_path / f"{name}.csv", dtype=str)
        assert list(frame.columns) == header
    skills = pd.read_csv(tmp_path / "skills_agency.csv", dtype=str)
    assert list(skills.columns) == [*header, "consent"]
    assert (tmp_path / "truth.csv").exists()


def test_bundled_sample_is_reproducible(tmp_path: Path) -> None:
    bundled = REPO / "encoder" / "data" / "sample_partner.csv"
    run_cli(tmp_path, "--pace-columns", "--strip-truth", scenario="sample", people=1000)
    generated = tmp_path / "sample_partner.csv"
    # Same arguments as syn.SAMPLE_COMMAND apart from the seed: same layout.
    frame = pd.read_csv(generated, dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["local_id", *syn.PACE_FIELDS, "consent"]

    assert "--seed 20260101" in syn.SAMPLE_COMMAND
    run_cli_args = [
        "--scenario", "sample", "--people", "1000", "--seed", "20260101",
        "--pace-columns", "--strip-truth", "--out", str(tmp_path / "exact"),
    ]  # fmt: skip
    assert syn.main(run_cli_args) == 0
    assert (tmp_path / "exact" / "sample_partner.csv").read_bytes() == bundled.read_bytes()

    sample = pd.read_csv(bundled, dtype=str, keep_default_na=False)
    assert list(sample.columns) == ["local_id", *syn.PACE_FIELDS, "consent"]
    assert 950 <= len(sample) <= 1100
    assert sample["local_id"].is_unique
    dob = sample["date_of_birth"][sample["date_of_birth"] != ""]
    assert dob.str.match(r"^\d{2}/\d{2}/\d{4}$").all()
    parsed = [dt.datetime.strptime(d, "%d/%m/%Y").date() for d in dob]
    assert min(parsed) > dt.date(1940, 1, 1)
    assert set(sample["consent"]) == {"Y", "N"}
    assert (sample["consent"] == "N").mean() == pytest.approx(0.03, abs=0.015)
    assert set(sample["sex"]) <= {"M", "F", ""}
    # Some realistic mess: compact postcodes, upper-case names, missing NI numbers.
    assert (~sample["postcode"].str.contains(" ")).any()
    assert (sample["surname"].str.isupper()).any()
    assert (sample["ni_number"] == "").mean() > 0.05


# --- lifecycle ---------------------------------------------------------------------------------

LIFECYCLE_PEOPLE = 600
LIFECYCLE_BATCHES = 4  # a snapshot and three quarterly deltas


@pytest.fixture(scope="module")
def lifecycle() -> syn.Lifecycle:
    return syn.make_lifecycle(LIFECYCLE_PEOPLE, 5, batches=LIFECYCLE_BATCHES)


def _versions(lc: syn.Lifecycle, name: str) -> pd.DataFrame:
    """Every delivered version of a partner's records: canonical columns, values and batch."""
    spec = lc.spec(name)
    parts = [
        syn.to_pace_columns(b.deliveries[name], spec, canonical_values=True).assign(batch=b.number)
        for b in lc.batches
        if name in b.deliveries
    ]
    return pd.concat(parts, ignore_index=True)


def _eligible(lc: syn.Lifecycle, name: str, batch: int) -> set[str]:
    """Local IDs delivered before a batch and not withdrawn before it."""
    truth = lc.truth()
    mine = truth[(truth["partner"] == name) & (truth["first_batch"] < batch)]
    gone = (mine["withdrawn_batch"] > 0) & (mine["withdrawn_batch"] < batch)
    return set(mine.loc[~gone, "local_id"])


def test_lifecycle_deliveries(lifecycle: syn.Lifecycle) -> None:
    static, delivering = (s.name for s in lifecycle.partners)
    assert (static, delivering) == (syn.LIFECYCLE_STATIC, syn.LIFECYCLE_DELIVERING)
    assert len(lifecycle.batches) == LIFECYCLE_BATCHES
    first, *deltas = lifecycle.batches
    assert dict(first.kinds) == {static: "snapshot", delivering: "snapshot"}
    assert all(dict(b.kinds) == {delivering: "delta"} for b in deltas)
    assert all(set(b.deliveries) == set(b.kinds) for b in lifecycle.batches)
    assert [b.number for b in lifecycle.batches] == list(range(1, LIFECYCLE_BATCHES + 1))
    for name, frame in first.deliveries.items():
        spec = lifecycle.spec(name)
        people = frame[syn.TRUTH_COLUMN].nunique()
        coverage = lifecycle.rates.static_coverage if name == static else (
            lifecycle.rates.initial_coverage
        )  # fmt: skip
        assert people == round(coverage * LIFECYCLE_PEOPLE)
        assert frame.columns[0] == spec.columns.local_id
        assert spec.consent_refusal_rate is None  # consent is withdrawn explicitly here
    # Some people are known to both partners (the cross-partner matches to find).
    both = set(first.deliveries[static][syn.TRUTH_COLUMN]) & set(
        first.deliveries[delivering][syn.TRUTH_COLUMN]
    )
    assert len(both) > 0.15 * LIFECYCLE_PEOPLE


def test_lifecycle_local_ids_stable_and_truth_complete(lifecycle: syn.Lifecycle) -> None:
    truth = lifecycle.truth()
    assert list(truth.columns) == [
        "partner", "local_id", "person_id", "first_batch", "withdrawn_batch",
    ]  # fmt: skip
    assert not truth.duplicated(["partner", "local_id"]).any()
    assert truth["person_id"].isin(lifecycle.population["person_id"]).all()
    number = re.compile(r"-(\d+)$")
    for spec in lifecycle.partners:
        versions = _versions(lifecycle, spec.name)
        # A local ID always stands for the same person, in every delivery.
        assert (versions.groupby("local_id")[syn.TRUTH_COLUMN].nunique() == 1).all()
        mine = truth[truth["partner"] == spec.name].set_index("local_id")
        assert set(mine.index) == set(versions["local_id"])
        first = versions.groupby("local_id")["batch"].min()
        assert (mine.loc[first.index, "first_batch"] == first).all()
        assert (mine.loc[versions["local_id"], "person_id"].to_numpy()
                == versions[syn.TRUTH_COLUMN].to_numpy()).all()  # fmt: skip
        assert not versions.duplicated(["local_id", "batch"]).any()
    delivering = syn.LIFECYCLE_DELIVERING
    versions = _versions(lifecycle, delivering)
    updates = lifecycle.updates
    for b in lifecycle.batches[1:]:
        sent = versions[versions["batch"] == b.number]
        seen = set(versions.loc[versions["batch"] < b.number, "local_id"])
        again = set(sent["local_id"]) & seen
        # A delta re-sends exactly its updated records, under their earlier local IDs ...
        assert again == set(updates.loc[updates["batch"] == b.number, "local_id"])
        # ... and new clients get local IDs above all earlier ones, and were not clients.
        new = sent[~sent["local_id"].isin(seen)]
        assert len(new) > 0
        top = max(int(number.search(i).group(1)) for i in seen)  # type: ignore[union-attr]
        assert min(int(number.search(i).group(1)) for i in new["local_id"]) > top  # type: ignore[union-attr]
        earlier = set(versions.loc[versions["batch"] < b.number, syn.TRUTH_COLUMN])
        assert not set(new[syn.TRUTH_COLUMN]) & earlier
    assert (updates["partner"] == delivering).all()
    assert set(updates["kind"]) == set(syn.UPDATE_KINDS)


def test_lifecycle_update_kinds_at_their_rates(lifecycle: syn.Lifecycle) -> None:
    delivering = syn.LIFECYCLE_DELIVERING
    rates = lifecycle.rates
    updates = lifecycle.updates
    for b in lifecycle.batches[1:]:
        eligible = len(_eligible(lifecycle, delivering, b.number))
        counts = updates[updates["batch"] == b.number]["kind"].value_counts()
        for kind in syn.UPDATE_KINDS:
            expected = max(1, round(getattr(rates, kind) * eligible))
            if kind in ("typo_fix", "dob_fix"):  # only records carrying an error can be fixed
                assert 1 <= counts.get(kind, 0) <= expected, (b.number, kind)
            else:
                assert counts.get(kind, 0) == expected, (b.number, kind)
    assert not updates.duplicated(["batch", "local_id"]).any()  # one update a record a quarter


def test_lifecycle_updates_change_what_they_say(lifecycle: syn.Lifecycle) -> None:
    versions = _versions(lifecycle, syn.LIFECYCLE_DELIVERING)
    population = lifecycle.population.set_index("person_id")
    fields = list(syn.PACE_FIELDS)
    address_kept = 0
    for u in lifecycle.updates.itertuples():
        mine = versions[versions["local_id"] == u.local_id]
        old = mine[mine["batch"] < u.batch].iloc[-1][fields]
        new = mine[mine["batch"] == u.batch].iloc[0][fields]
        differs = {
            f for f in fields if old[f] != new[f] and not (pd.isna(old[f]) and pd.isna(new[f]))
        }
        assert differs == set(str(u.fields).split(",")), u
        if u.kind == "move":
            assert "postcode" in differs
            address_kept += "address_line" not in differs
        elif u.kind == "surname_change":
            assert population.loc[u.person_id, "sex"] == "F"
        elif u.kind == "typo_fix":
            (field,) = differs
            assert field in ("given_name", "surname")
            wrong, right = str(old[field]), str(new[field])
            diff = [(a, c) for a, c in zip(wrong, right, strict=True) if a != c]
            assert len(diff) == 1 and diff[0][0].lower() in errors._ADJACENT[diff[0][1].lower()]
        else:
            assert u.kind == "dob_fix"
            assert new["date_of_birth"] == population.loc[u.person_id, "date_of_birth"]
    moves = (lifecycle.updates["kind"] == "move").sum()
    assert 0 < address_kept < moves  # some moves update the postcode only


def test_lifecycle_withdrawals(lifecycle: syn.Lifecycle) -> None:
    truth = lifecycle.truth()
    assert lifecycle.batches[0].withdrawals == {s.name: () for s in lifecycle.partners}
    withdrawn_ever: set[tuple[str, str]] = set()
    for b in lifecycle.batches[1:]:
        for spec in lifecycle.partners:
            ids = b.withdrawals[spec.name]
            eligible = _eligible(lifecycle, spec.name, b.number)
            rate = lifecycle.rates.withdraw if spec.name == syn.LIFECYCLE_DELIVERING else (
                lifecycle.rates.static_withdraw
            )  # fmt: skip
            assert len(ids) == max(1, round(rate * len(eligible)))
            # Withdrawn IDs were delivered before and still held; never again delivered.
            assert set(ids) <= eligible
            assert not {(spec.name, i) for i in ids} & withdrawn_ever
            withdrawn_ever |= {(spec.name, i) for i in ids}
            for later in lifecycle.batches[b.number - 1 :]:
                frame = later.deliveries.get(spec.name)
                assert frame is None or not frame[spec.columns.local_id].isin(ids).any()
    gone = truth[truth["withdrawn_batch"] > 0]
    assert set(zip(gone["partner"], gone["local_id"], strict=True)) == withdrawn_ever
    for b in lifecycle.batches:
        current = lifecycle.current(b.number)
        for spec in lifecycle.partners:
            mine = truth[(truth["partner"] == spec.name) & (truth["first_batch"] <= b.number)]
            held = mine[(mine["withdrawn_batch"] == 0) | (mine["withdrawn_batch"] > b.number)]
            ids = current[spec.name][spec.columns.local_id]
            assert ids.is_unique and set(ids) == set(held["local_id"])


def test_lifecycle_deterministic_and_written(tmp_path: Path) -> None:
    a = syn.make_lifecycle(300, 8, batches=3)
    b = syn.make_lifecycle(300, 8, batches=3)
    for x, y in zip(a.batches, b.batches, strict=True):
        for name in x.deliveries:
            pd.testing.assert_frame_equal(x.deliveries[name], y.deliveries[name])
        assert x.withdrawals == y.withdrawals
    pd.testing.assert_frame_equal(a.updates, b.updates)
    other = syn.make_lifecycle(300, 9, batches=3)
    assert (
        not other.batches[1]
        .deliveries[syn.LIFECYCLE_DELIVERING]
        .equals(a.batches[1].deliveries[syn.LIFECYCLE_DELIVERING])
    )
    files = syn.write_lifecycle(a, tmp_path)
    assert len(files) == 3
    assert set(files[0]) == {syn.LIFECYCLE_STATIC, syn.LIFECYCLE_DELIVERING}
    for batch, written in zip(a.batches, files, strict=True):
        for name, paths in written.items():
            if "records" in paths:
                frame = pd.read_csv(paths["records"], dtype=str, keep_default_na=False)
                assert list(frame.columns) == ["local_id", *syn.PACE_FIELDS]
                assert len(frame) == len(batch.deliveries[name])
            if "withdrawn" in paths:
                lines = paths["withdrawn"].read_text(encoding="utf-8").splitlines()
                assert tuple(lines) == batch.withdrawals[name]
            assert ("withdrawn" in paths) == bool(batch.withdrawals[name])
    truth = pd.read_csv(tmp_path / "truth.csv", dtype={"local_id": str})
    assert len(truth) == len(a.truth())
    assert (tmp_path / "updates.csv").exists()
    with pytest.raises(ValueError, match="batches"):
        syn.make_lifecycle(10, 1, batches=0)
    with pytest.raises(ValueError, match="move"):
        syn.LifecycleRates(move=1.5)


# --- reproducibility across refactorings ------------------------------------------------------

# Digests of each scenario and of a lifecycle for a fixed seed, computed before the generator
# was split into modules (issue 11): a change here changes every benchmark's data.
DIGESTS = {
    "two-party": "355a0667a22e5b45b8029f804b2fb00c6b195a9ac901e6a96cf837bc00dbeb92",
    "five-party": "767f8ccdfaaa3fff262477b4b3dbd8e0464992490780eaa407c93869cd7fe297",
    "incremental": "5bead3b5e82478da9aaec3923b5b77b3c53bbd657dfda643079ddd121ea62d04",
    "sample": "a76b46bc8a4ceb68eab42c8825e43654a88d21b5a71a70f0168f5e380007b065",
    "lifecycle": "a4e0e7ef2b75af96c9df429aea7e402798a6f162eb343825d83d9f37122c9fb1",
}


def _digest_frame(h: Any, frame: pd.DataFrame) -> None:
    h.update(frame.to_csv(index=False).encode())
    h.update(repr(list(frame.dtypes.astype(str))).encode())


@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_fixed_seed_output_is_unchanged(name: str) -> None:
    h = hashlib.sha256()
    if name == "lifecycle":
        lc = syn.make_lifecycle(600, 7)
        _digest_frame(h, lc.population)
        _digest_frame(h, lc.updates)
        for b in lc.batches:
            for partner in sorted(b.deliveries):
                _digest_frame(h, b.deliveries[partner])
            h.update(repr(sorted(b.kinds.items())).encode())
            h.update(repr(sorted(b.withdrawals.items())).encode())
    else:
        scenario = syn.make_scenario(name, 500, 7)
        _digest_frame(h, scenario.population)
        for spec in scenario.partners:
            h.update(repr(spec).encode())
            for frame in scenario.batches[spec.name]:
                _digest_frame(h, frame)
                _digest_frame(h, syn.to_pace_columns(frame, spec))
                _digest_frame(h, syn.to_pace_columns(frame, spec, canonical_values=True))
    assert h.hexdigest() == DIGESTS[name]
