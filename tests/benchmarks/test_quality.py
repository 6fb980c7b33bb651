"""Match-quality benchmark: the measures on hand-made groupings, and a tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import quality
from encoder.keys import Secret


def _arrays(*values: list[int]) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(v, dtype=np.int64) for v in values)


def test_pairwise_measures_count_only_pairs_of_different_files() -> None:
    # Person 1: a record in each of three files; person 2: two records in file 0 (a
    # duplicate) and one in file 1; person 3: alone.
    party, person = _arrays([0, 1, 2, 0, 0, 1, 2], [1, 1, 1, 2, 2, 2, 3])
    # Truth: person 1 gives 3 cross-file pairs, person 2 gives 2 (the duplicate pair is in
    # one file and does not count).
    perfect = quality.evaluate(party, person, person)
    assert (perfect.true_pairs, perfect.predicted_pairs, perfect.correct_pairs) == (5, 5, 5)
    assert perfect.f1 == 1.0 and perfect.cluster_f1 == 1.0
    # Predicted: person 1's file-2 record wrongly joined with one of person 2's file-0
    # records; person 3 alone.
    entity = np.asarray([10, 10, 11, 11, 13, 13, 12], dtype=np.int64)
    p, r, f1, true, predicted, correct = quality.pairwise_metrics(party, person, entity)
    # Predicted cross-file pairs: (0,1) of entity 10, (2,3) of 11, (4,5) of 13 -> 3, of
    # which (0,1) and (4,5) are correct.
    assert (true, predicted, correct) == (5, 3, 2)
    assert p == pytest.approx(2 / 3) and r == pytest.approx(2 / 5)
    assert f1 == pytest.approx(2 * (2 / 3) * (2 / 5) / (2 / 3 + 2 / 5))


def test_cluster_measures_need_exactly_one_persons_records() -> None:
    _, person = _arrays([0, 1, 2, 0, 1, 0], [1, 1, 1, 2, 2, 3])
    # Person 1 split into {0,1} and {2}; person 2 exact; person 3 exact (a singleton).
    entity = np.asarray([0, 0, 1, 2, 2, 3], dtype=np.int64)
    cp, cr, cf = quality.cluster_metrics(person, entity)
    assert cp == pytest.approx(2 / 4) and cr == pytest.approx(2 / 3)
    assert cf == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    # Everything in one entity: no cluster is right.
    assert quality.cluster_metrics(person, np.zeros(6, dtype=np.int64))[:2] == (0.0, 0.0)


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
    assert chosen == json.loads(quality.DEFAULT_SCHEMA_FILE.read_text(encoding="utf-8"))
    previous = quality.schema_variant(quality.SCHEMA_CANDIDATES["previous default"])
    assert not any("derivedFrom" in f for f in previous["features"])


def test_clkhash_baseline_gets_the_derived_columns() -> None:
    dataset = quality.synthetic_dataset("two-party", 200, 3)
    rows = quality._clkhash_rows(dataset, dataset.schema)
    names = [f["identifier"] for f in dataset.schema["features"]]
    clean = dataset.parties[0].clean.fillna("").astype(str)
    for record, (_, source) in zip(rows[0], clean.iterrows(), strict=True):
        value = dict(zip(names, record, strict=True))
        pair = sorted(p for p in (source["given_name"], source["surname"]) if p)
        assert value["names_any_order"] == " ".join(pair)
        assert value["whole_date_of_birth"] == source["date_of_birth"]
