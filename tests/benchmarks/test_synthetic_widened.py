"""Tests of the widened generator (issue 13): new variations, absent columns, held-out people."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import synthetic as syn
from benchmarks.synthetic import errors
from benchmarks.synthetic.partners import CATALOGUE_FILE

N = 5000
SEED = 13


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    return syn.generate_population(N, SEED)


@pytest.fixture(scope="module")
def held_out() -> pd.DataFrame:
    return syn.generate_population(N, SEED, syn.HELD_OUT)


def spec_with(**rates: float) -> syn.PartnerSpec:
    return syn.PartnerSpec(
        name="widened",
        coverage=1.0,
        profile=dataclasses.replace(syn.CLEAN, **rates),  # type: ignore[arg-type]
        has_ni_number=True,
    )


def extract_and_truth(
    population: pd.DataFrame, spec: syn.PartnerSpec
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical extract rows joined with the true records (suffix ``_true``), and the flags."""
    flags: list[pd.DataFrame] = []
    extract = syn.make_extract(population, spec, SEED, variations=flags)
    canonical = syn.to_pace_columns(extract, spec, canonical_values=True)
    truth = population.rename(columns={c: f"{c}_true" for c in syn.PACE_FIELDS})
    merged = canonical.merge(
        truth, left_on=syn.TRUTH_COLUMN, right_on="person_id", how="left", validate="m:1"
    )
    assert (flags[0]["local_id"].to_numpy() == merged["local_id"].to_numpy()).all()
    return merged, flags[0]


# --- each new variation at its rate, doing what it says ----------------------------------------


def test_dob_single_digit_error_at_its_rate(population: pd.DataFrame) -> None:
    merged, flags = extract_and_truth(population, spec_with(dob_digit=0.05))
    changed = merged["date_of_birth"] != merged["date_of_birth_true"]
    assert 0.03 < changed.mean() < 0.07
    assert (changed == flags["dob_digit"]).all()
    for got, true in zip(
        merged.loc[changed, "date_of_birth"], merged.loc[changed, "date_of_birth_true"], strict=True
    ):
        assert sum(a != b for a, b in zip(got, true, strict=True)) == 1
    others = [f for f in syn.PACE_FIELDS if f != "date_of_birth"]
    for f in others:
        assert (merged[f] == merged[f"{f}_true"]).all(), f
    # Not a keyboard typo: some replacement digits are far from the original key.
    far = [
        (a, b)
        for got, true in zip(
            merged.loc[changed, "date_of_birth"],
            merged.loc[changed, "date_of_birth_true"],
            strict=True,
        )
        for a, b in zip(got, true, strict=True)
        if a != b and abs(int(a) - int(b)) > 1
    ]
    assert far


def test_middle_name_in_given_name_field(population: pd.DataFrame) -> None:
    merged, flags = extract_and_truth(population, spec_with(middle_name=0.05))
    longer = merged["given_name"] != merged["given_name_true"]
    assert 0.03 < longer.mean() < 0.07
    assert (longer == flags["middle_name"]).all()
    for got, true in zip(
        merged.loc[longer, "given_name"], merged.loc[longer, "given_name_true"], strict=True
    ):
        first, middle = got.split(" ", 1)
        assert first == true and middle and middle != true
    # The same person gets the same middle name from every partner.
    other = dataclasses.replace(spec_with(middle_name=1.0), name="other")
    a, _ = extract_and_truth(population, dataclasses.replace(other, name="one"))
    b, _ = extract_and_truth(population, other)
    both = a.merge(b, on=syn.TRUTH_COLUMN)
    assert (both["given_name_x"] == both["given_name_y"]).mean() > 0.99


def test_double_surname_recorded_as_one_part(held_out: pd.DataFrame) -> None:
    merged, flags = extract_and_truth(held_out, spec_with(surname_part=0.5))
    double = merged["surname_true"].str.contains("-")
    changed = merged["surname"] != merged["surname_true"]
    assert not changed[~double].any()
    assert 0.4 < changed[double].mean() < 0.6
    assert (changed == flags["surname_part"]).all()
    for got, true in zip(
        merged.loc[changed, "surname"], merged.loc[changed, "surname_true"], strict=True
    ):
        assert got in true.split("-")


def test_name_swap_dob_swap_and_missing_are_flagged(population: pd.DataFrame) -> None:
    merged, flags = extract_and_truth(
        population,
        spec_with(
            name_swap=0.05,
            dob_day_month_swap=0.2,
            missing=syn.FieldRates(date_of_birth=0.05),
        ),
    )
    swapped = flags["name_swap"]
    assert 0.03 < swapped.mean() < 0.07
    assert (merged.loc[swapped, "given_name"] == merged.loc[swapped, "surname_true"]).all()
    missing = merged["date_of_birth"].isna()
    assert 0.03 < missing.mean() < 0.07
    assert (missing == flags["dob_missing"]).all()
    day_month = flags["dob_day_month_swap"]
    assert day_month.any()
    assert (
        merged.loc[day_month & ~missing, "date_of_birth"]
        != merged.loc[day_month & ~missing, "date_of_birth_true"]
    ).all()


def test_previous_surname_column_holds_the_old_surname(population: pd.DataFrame) -> None:
    spec = dataclasses.replace(spec_with(surname_change=0.3), has_previous_surname=True)
    flags: list[pd.DataFrame] = []
    extract = syn.make_extract(population, spec, SEED, variations=flags)
    assert "previous_surname" in extract.columns
    merged = extract.merge(population, left_on=syn.TRUTH_COLUMN, right_on="person_id")
    changed = flags[0]["surname_change"].to_numpy()
    assert 0.1 < changed.mean() < 0.2  # women at 30%, men at 3%
    previous = merged["previous_surname"]
    assert (previous[changed] == merged["surname_y"][changed]).all()
    assert previous[~changed].isna().all()
    assert (merged["surname_x"][changed] != merged["surname_y"][changed]).all()


def test_within_partner_duplicates_have_independent_errors(population: pd.DataFrame) -> None:
    spec = dataclasses.replace(syn.partner_catalogue()["wide_skills_agency"], coverage=1.0)
    flags: list[pd.DataFrame] = []
    extract = syn.make_extract(population, spec, SEED, variations=flags)
    counts = extract[syn.TRUTH_COLUMN].value_counts()
    twice = counts[counts == 2].index
    assert len(twice) == round(spec.profile.duplicate * N)
    dup = flags[0]["duplicate"].to_numpy()
    assert set(extract.loc[dup, syn.TRUTH_COLUMN]) == set(twice)
    pairs = extract[extract[syn.TRUTH_COLUMN].isin(twice)].sort_values(syn.TRUTH_COLUMN)
    first, second = pairs.iloc[::2], pairs.iloc[1::2]
    fields = [spec.columns.header(f) for f in spec.present_fields()]
    differs = (first[fields].to_numpy() != second[fields].to_numpy()).any(axis=1)
    assert 0.1 < differs.mean() < 1.0  # independent errors: some copies differ, not all


def test_new_error_functions() -> None:
    r = random.Random(3)
    for _ in range(200):
        got = errors.dob_single_digit_error("1980-03-17", r)
        assert got != "1980-03-17"
        assert sum(a != b for a, b in zip(got, "1980-03-17", strict=True)) == 1
    assert errors.with_middle_name("Mary", "Anne") == "Mary Anne"
    assert errors.with_middle_name("Mary", "mary") == "Mary"
    assert {errors.surname_part("Smith-Jones", r) for _ in range(50)} == {"Smith", "Jones"}
    assert errors.surname_part("Smith", r) == "Smith"


def test_old_presets_repr_unchanged_and_new_rates_checked() -> None:
    assert "dob_digit" not in repr(syn.TYPICAL)
    assert "dob_digit=0.02" in repr(syn.WIDE_TYPICAL)
    assert "absent" not in repr(syn.partner_catalogue()["council"])
    with pytest.raises(ValueError, match="middle_name"):
        dataclasses.replace(syn.CLEAN, middle_name=1.5)
    with pytest.raises(ValueError, match="not person fields"):
        syn.PartnerSpec(name="x", coverage=0.5, absent=frozenset({"shoe_size"}))
    with pytest.raises(ValueError, match="name column"):
        syn.PartnerSpec(name="x", coverage=0.5, absent=frozenset({"given_name", "surname"}))


# --- partners with missing columns --------------------------------------------------------------


def test_missing_columns_are_really_absent_from_the_csv(tmp_path: Path) -> None:
    syn.main(
        ["--scenario", "heterogeneous", "--people", "800", "--seed", "2", "--out", str(tmp_path)]
    )
    catalogue = syn.partner_catalogue()
    expected_absent = {
        "council_no_sex": {"sex", "ni_number"},
        "union_learning": {"postcode", "ni_number"},
        "community_referrals": {"postcode", "address_line", "ni_number"},
    }
    for name, absent in expected_absent.items():
        spec = catalogue[name]
        assert spec.absent == absent
        header = pd.read_csv(tmp_path / f"{name}.csv", nrows=0).columns.tolist()
        for field in absent:
            assert field not in header and spec.columns.header(field) not in header
        for field in spec.present_fields():
            assert spec.columns.header(field) in header
    benefits = pd.read_csv(tmp_path / "wide_benefits_dept.csv", dtype=str)
    assert "previous_last_name" in benefits.columns
    assert benefits["previous_last_name"].notna().any()
    # The ground truth still covers every record of every file, and the flags match it.
    truth = pd.read_csv(tmp_path / "truth.csv", dtype={"local_id": str})
    flags = pd.read_csv(tmp_path / "variations.csv", dtype={"local_id": str})
    total = sum(
        len(pd.read_csv(tmp_path / f"{s}.csv")) for s in catalogue if s in set(truth["partner"])
    )
    assert len(truth) == len(flags) == total
    assert (truth["local_id"] == flags["local_id"]).all()
    assert set(syn.VARIATION_KINDS) <= set(flags.columns)
    # --pace-columns keeps them absent (no blank column).
    syn.main(
        [
            "--scenario",
            "heterogeneous",
            "--people",
            "300",
            "--seed",
            "2",
            "--out",
            str(tmp_path / "p"),
            "--pace-columns",
        ]
    )
    header = pd.read_csv(tmp_path / "p" / "council_no_sex.csv", nrows=0).columns.tolist()
    assert "sex" not in header and "given_name" in header


def test_heterogeneous_scenario_has_realistic_variation_rates() -> None:
    scenario = syn.make_scenario("heterogeneous", 3000, 4)
    assert len(scenario.partners) == 5
    flags = pd.concat([v[0] for v in scenario.variations.values()], ignore_index=True)
    rates = flags[list(syn.VARIATION_KINDS)].mean()
    for kind in ("name_swap", "dob_day_month_swap", "dob_digit", "dob_missing", "nickname"):
        assert 0.005 < rates[kind] < 0.1, kind
    assert rates["duplicate"] > 0.04  # both copies flagged
    again = syn.make_scenario("heterogeneous", 3000, 4)
    for name, frames in scenario.batches.items():
        pd.testing.assert_frame_equal(frames[0], again.batches[name][0])


# --- the held-out population ---------------------------------------------------------------------


def test_held_out_population_differs_measurably(
    population: pd.DataFrame, held_out: pd.DataFrame
) -> None:
    for column, bound in (("surname", 25), ("given_name", 35)):
        top_a = set(population[column].value_counts().index[:50])
        top_b = set(held_out[column].value_counts().index[:50])
        assert len(top_a & top_b) < bound, column
    double = held_out["surname"].str.contains("-").mean()
    assert double > 2.5 * population["surname"].str.contains("-").mean()

    def age(p: pd.DataFrame) -> float:
        return float((2026 - p["date_of_birth"].str[:4].astype(int)).mean())

    assert age(held_out) < age(population) - 2

    def city(p: pd.DataFrame) -> float:
        area = p["postcode"].str.extract(r"^([A-Z]+)")[0]
        return float(area.isin(["G", "EH", "AB", "DD"]).mean())

    assert city(held_out) < city(population) - 0.2
    # A different draw, even for the same seed, and still consistent: sex follows the name.
    tables = syn.held_out_tables()
    consistent = np.where(
        held_out["sex"] == "M",
        held_out["given_name"].isin(set(tables.male)),
        held_out["given_name"].isin(set(tables.female)),
    )
    assert consistent.all()
    assert not set(tables.male) & set(tables.female)


def test_held_out_scenarios_use_the_held_out_population() -> None:
    for name in ("two-party-held-out", "incremental-held-out", "heterogeneous-held-out"):
        assert name in syn.SCENARIOS
    scenario = syn.make_scenario("two-party-held-out", 500, 7)
    expected = syn.generate_population(500, 7, syn.HELD_OUT)
    pd.testing.assert_frame_equal(scenario.population, expected)
    standard = syn.make_scenario("two-party", 500, 7)
    assert not scenario.population["surname"].equals(standard.population["surname"])
    assert scenario.incremental is False
    assert syn.make_scenario("incremental-held-out", 300, 7).incremental
    with pytest.raises(ValueError, match="unknown scenario"):
        syn.make_scenario("sample-held-out", 10, 1)


def test_catalogue_file_lists_the_heterogeneous_partners() -> None:
    text = CATALOGUE_FILE.read_text(encoding="utf-8")
    for name in ("council_no_sex", "union_learning", "community_referrals"):
        assert name in text
