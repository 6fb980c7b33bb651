"""Match-quality benchmark: the measures on hand-made groupings, and a tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import quality
from benchmarks.harness import DEFAULT_SCHEMA_FILE
from benchmarks.quality import anonlink_runs, datasets, pacelink_runs
from benchmarks.synthetic import VARIATION_KINDS
from encoder.fileformat import read_encodings
from encoder.keys import Secret


def test_targets_compare_against_the_right_figures() -> None:
    results = {
        "s": {
            "pacelink": {
                "auto": {"f1": 0.97, "precision": 0.99, "recall": 0.95},
                "best": {"f1": 0.974},
                "estimated_precision": 0.985,
                "estimated_recall": 0.93,
            },
            "splink": {"at_0_5": {"f1": 0.99}},
            "anonlink": {"best": {"f1": 0.971}},
        }
    }
    got = quality.targets(results)["s"]
    assert got["auto_within_0.5%_of_best"] is True
    assert got["auto_within_0.5%_of_splink"] is False  # 0.97 < 0.99 * 0.995
    assert got["auto_above_anonlink_best"] is False
    assert got["estimate_error"]["precision"] == pytest.approx(-0.005)
    assert got["estimate_error"]["recall"] == pytest.approx(-0.02)
    assert got["estimate_within_1_point"] is False  # recall is 2 points off


def test_tiny_end_to_end_run_links_most_people(tmp_path: object) -> None:
    dataset = quality.synthetic_dataset("two-party", 300, 3)
    result = quality.run_dataset(
        dataset, Secret(quality.BENCH_SECRET), ["pacelink"], lambda _: None
    )
    pl = result["pacelink"]
    assert result["true_pairs"] > 100
    # Real linkage on typical errors: far better than chance, and the best fixed threshold
    # is at least as good as auto by construction of the sweep.
    assert pl["best"]["f1"] > 0.9
    assert pl["auto"]["f1"] > 0.85
    assert pl["best"]["f1"] >= pl["auto"]["f1"] - 0.02
    assert sum(pl["histogram"]["match"]) > 100
    assert len(pl["curve"]) == len(quality.DICE_GRID)
    assert "Splink" not in "\n".join(quality.table({"two-party": result}))


def test_the_chosen_schema_candidate_is_the_shipped_default() -> None:
    chosen = quality.schema_variant(quality.SCHEMA_CANDIDATES[quality.CHOSEN_SCHEMA])
    assert chosen == json.loads(DEFAULT_SCHEMA_FILE.read_text(encoding="utf-8"))
    previous = quality.schema_variant(quality.SCHEMA_CANDIDATES["previous default"])
    assert not any("derivedFrom" in f for f in previous["features"])


def test_clkhash_baseline_gets_the_derived_columns() -> None:
    dataset = quality.synthetic_dataset("two-party", 200, 3)
    rows = anonlink_runs._clkhash_rows(dataset, dataset.schema)
    names = [f["identifier"] for f in dataset.schema["features"]]
    clean = dataset.parties[0].clean.fillna("").astype(str)
    for record, (_, source) in zip(rows[0], clean.iterrows(), strict=True):
        value = dict(zip(names, record, strict=True))
        pair = sorted(p for p in (source["given_name"], source["surname"]) if p)
        assert value["names_any_order"] == " ".join(pair)
        assert value["whole_date_of_birth"] == source["date_of_birth"]


# --- heterogeneous partners and recall by variation (issue 13) ---------------------------------


def test_recall_by_variation_on_a_hand_made_case() -> None:
    # Three files; person 1 in all three (3 true pairs), person 2 in files 0 and 1 (1 pair),
    # person 3 twice in file 0 (a within-file pair: not counted) and once in file 2 (2 pairs).
    party = np.array([0, 1, 2, 0, 1, 0, 0, 2])
    person = np.array([1, 1, 1, 2, 2, 3, 3, 3])
    # Predicted: person 1's file-2 record is missed; person 2 found; person 3's second
    # file-0 record is separate from the other two.
    labels = np.array([10, 10, 11, 20, 20, 30, 31, 30])
    flags = pd.DataFrame(
        {
            "name_swap": [False, False, True, False, False, False, False, False],
            "duplicate": [False, False, False, False, False, True, True, False],
            "nickname": [False] * 8,
        }
    )
    i, _ = quality.true_pairs(party, person)
    assert len(i) == 3 + 1 + 2
    got = quality.recall_by_variation(party, person, flags, labels)
    # name_swap: pairs (0, 2) and (1, 2), both missed.
    assert got["name_swap"] == {"pairs": 2, "recall": 0.0}
    # duplicate: pairs (5, 7) found and (6, 7) missed.
    assert got["duplicate"] == {"pairs": 2, "recall": 0.5}
    assert got["nickname"] == {"pairs": 0, "recall": None}
    # none: (0, 1) and (3, 4), both found.
    assert got["none"] == {"pairs": 2, "recall": 1.0}
    with pytest.raises(ValueError, match="labels"):
        quality.recall_by_variation(party, person, flags, labels[:3])


def test_partners_lacking_a_column_declare_it_absent(tmp_path: Path) -> None:
    dataset = quality.synthetic_dataset("heterogeneous-held-out", 200, 3)
    schema = datasets.linkage_schema(dataset)
    pacelink_runs.encode_parties(dataset, schema, Secret(quality.BENCH_SECRET), tmp_path)
    for k, party in enumerate(dataset.parties):
        header = read_encodings(tmp_path / f"p{k}.plk").header
        absent = {f["name"] for f in header["features"] if f.get("absent")}
        assert set(party.absent) <= absent, party.name
    assert any(party.absent for party in dataset.parties)


def test_heterogeneous_partners_lack_columns_and_recall_is_broken_down() -> None:
    dataset = quality.synthetic_dataset("heterogeneous-held-out", 300, 3)
    by_name = {p.name: p for p in dataset.parties}
    council = by_name["council_no_sex"]
    assert "sex" not in council.frame.columns and council.absent >= {"sex"}
    assert council.clean["sex"].isna().all()  # Splink: a null column
    rows = anonlink_runs._clkhash_rows(dataset, dataset.schema)
    names = [f["identifier"] for f in dataset.schema["features"]]
    k = [p.name for p in dataset.parties].index("community_referrals")
    assert all(r[names.index("postcode")] == "" for r in rows[k])  # clkhash: blank values
    result = quality.run_dataset(
        dataset, Secret(quality.BENCH_SECRET), ["pacelink"], lambda _: None
    )
    breakdown = result["pacelink"]["auto"]["by_variation"]
    assert set(breakdown) == {*VARIATION_KINDS, "none"}
    assert breakdown["none"]["pairs"] > 0
    assert 0.0 <= breakdown["none"]["recall"] <= 1.0
    assert "by_variation" in result["pacelink"]["best"]
    assert "by_variation" not in result["pacelink"]["curve"][0]
    lines = quality.variation_table({"h": result})
    assert len(lines) == 2 + len(VARIATION_KINDS) + 1
    assert lines[2].startswith("| h | name_swap |")
