"""Splink (DuckDB) on a dataset's plain text: the upper reference, not private."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from benchmarks.quality.datasets import I64, Dataset, flat_records
from benchmarks.quality.sweep import SPLINK_GRID, best_point
from benchmarks.quality.variations import by_variation_for_rows
from linkage_unit.matching.evaluation import evaluate

if TYPE_CHECKING:
    from splink.internals.blocking_rule_creator import BlockingRuleCreator
    from splink.internals.comparison_creator import ComparisonCreator

__all__ = [
    "run_splink",
]


def _splink_settings(dataset: Dataset) -> tuple[Any, list[Any], list[Any], list[Any]]:
    # Optional baseline: splink is in the bench extra only (the privacy assessment, which
    # imports this package, does not need it).
    import splink.comparison_library as cl  # noqa: PLC0415
    from splink import SettingsCreator, block_on  # noqa: PLC0415

    comparisons: list[ComparisonCreator | dict[str, Any]]
    blocking: list[BlockingRuleCreator | dict[str, Any]]
    if dataset.name == "febrl4":
        comparisons = [
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.DateOfBirthComparison(
                "date_of_birth", input_is_string=True, datetime_format="%Y%m%d"
            ),
            cl.LevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number"),
            cl.LevenshteinAtThresholds("address_1", [1, 3]),
            cl.JaroWinklerAtThresholds("suburb", [0.9]),
            cl.LevenshteinAtThresholds("postcode", [1]),
            cl.ExactMatch("state"),
        ]
        blocking = [
            block_on("given_name", "surname"),
            block_on("surname", "date_of_birth"),
            block_on("given_name", "date_of_birth"),
            block_on("postcode", "street_number"),
            block_on("soc_sec_id"),
        ]
        em = [block_on("date_of_birth"), block_on("surname")]
        prior = [block_on("given_name", "surname", "date_of_birth")]
    else:
        comparisons = [
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True),
            cl.ExactMatch("sex"),
            cl.PostcodeComparison("postcode"),
            cl.LevenshteinAtThresholds("address_line", [2, 5]),
            cl.LevenshteinAtThresholds("ni_number", [1]),
        ]
        blocking = [
            block_on("given_name", "surname"),
            block_on("surname", "date_of_birth"),
            block_on("given_name", "date_of_birth"),
            block_on("postcode", "date_of_birth"),
            block_on("ni_number"),
        ]
        em = [block_on("date_of_birth"), block_on("surname", "given_name")]
        prior = [block_on("given_name", "surname", "date_of_birth")]
    settings = SettingsCreator(
        link_type="link_only",
        unique_id_column_name="unique_id",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=blocking,
        retain_intermediate_calculation_columns=False,
    )
    return settings, blocking, em, prior


def _components(n: int, u: I64, v: I64) -> I64:
    # scipy comes with the bench extra only (recordlinkage), as Splink does.
    from scipy.sparse import coo_matrix  # type: ignore[import-untyped]  # noqa: PLC0415
    from scipy.sparse.csgraph import connected_components  # type: ignore[import-untyped]  # noqa: PLC0415

    graph = coo_matrix((np.ones(len(u), np.int8), (u, v)), shape=(n, n))
    labels: I64 = connected_components(graph, directed=False)[1].astype(np.int64)
    return labels


def run_splink(dataset: Dataset) -> dict[str, Any]:
    """Splink (DuckDB) on the plain text: trained without labels, clustered, along a grid."""
    from splink import DuckDBAPI, Linker  # noqa: PLC0415 - optional baseline, as above

    logging.getLogger("splink").setLevel(logging.ERROR)
    party, person, offsets = flat_records(dataset)
    started = time.perf_counter()
    db = DuckDBAPI()
    tables = []
    for k, p in enumerate(dataset.parties):
        frame = p.clean.copy()
        frame.insert(0, "unique_id", np.arange(len(frame), dtype=np.int64))
        frame = frame.drop(columns=["local_id"])
        tables.append(db.register(frame, dataset_display_name=f"p{k}"))
    settings, _, em_rules, prior_rules = _splink_settings(dataset)
    linker = Linker(tables, settings)
    linker.training.estimate_probability_two_random_records_match(prior_rules, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=1)
    for rule in em_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    pairs = linker.inference.predict(threshold_match_probability=float(SPLINK_GRID.min()))
    as_pandas: Callable[[], pd.DataFrame] = pairs.as_pandas_dataframe  # untyped in splink
    frame = as_pandas()
    seconds = time.perf_counter() - started
    source = {f"p{k}": k for k in range(len(dataset.parties))}
    left = offsets[frame["source_dataset_l"].map(source).to_numpy(np.int64)]
    right = offsets[frame["source_dataset_r"].map(source).to_numpy(np.int64)]
    u = left + frame["unique_id_l"].to_numpy(np.int64)
    v = right + frame["unique_id_r"].to_numpy(np.int64)
    prob = frame["match_probability"].to_numpy(np.float64)
    rows = []
    labelled = []
    for t in SPLINK_GRID:
        keep = prob >= t
        labels = _components(len(person), u[keep], v[keep])
        rows.append({"threshold": float(t), **evaluate(party, person, labels).as_dict()})
        labelled.append((rows[-1], labels))
    at_half = next(r for r in rows if r["threshold"] == 0.5)
    best = best_point(rows)
    by_variation_for_rows(dataset, party, person, labelled, [best, at_half])
    return {
        "curve": [{k: v for k, v in r.items() if k != "by_variation"} for r in rows],
        "best": best,
        "at_0_5": at_half,
        "seconds": seconds,
    }
