"""Match-quality benchmark: the measures on hand-made groupings, and a tiny end-to-end run."""

from __future__ import annotations

import json

from benchmarks import quality
from benchmarks.harness import DEFAULT_SCHEMA_FILE
from benchmarks.quality import anonlink_runs
from encoder.keys import Secret


def test_targets_compare_against_the_right_figures() -> None:
    results = {
        "s": {
            "pacelink": {"auto": {"f1": 0.97}, "best": {"f1": 0.974}},
            "splink": {"at_0_5": {"f1": 0.99}},
            "anonlink": {"best": {"f1": 0.971}},
        }
    }
    got = quality.targets(results)["s"]
    assert got["auto_within_0.5%_of_best"] is True
    assert got["auto_within_1%_of_splink"] is False  # 0.97 < 0.99 * 0.99
    assert got["auto_above_anonlink_best"] is False


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
