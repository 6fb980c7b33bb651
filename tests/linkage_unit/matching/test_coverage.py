"""Coverage-adjusted Dice: the model against real encodings, the rescoring against numpy."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from benchmarks.synthetic import TRUTH_COLUMN, make_scenario, to_pace_columns
from encoder.encode import EncodeOptions, encode_file
from encoder.fileformat import read_encodings
from encoder.keys import Secret
from encoder.schema import load_schema, parse_schema
from linkage_unit.matching.candidates import Candidates
from linkage_unit.matching.coverage import CoverageModel, adjust_scores, insertions_of
from linkage_unit.matching.linkage import link_encodings
from linkage_unit.matching.similarity import dice_candidates
from tests.conftest import TEST_SECRET

# The features a names, date-of-birth and sex-only partner (community referrals) lacks.
LACKING = frozenset({"postcode", "address_line", "ni_number"})


def encode_full_and_partial(base: Path) -> tuple[Any, Any]:
    """One partner's file encoded whole, and again without the columns in ``LACKING``."""
    scenario = make_scenario("two-party", 400, seed=11)
    spec = scenario.partners[0]
    frame = to_pace_columns(scenario.batches[spec.name][0], spec, canonical_values=True)
    frame = frame.drop(columns=[TRUTH_COLUMN])
    frame.to_csv(base / "full.csv", index=False)
    frame.drop(columns=sorted(LACKING)).to_csv(base / "partial.csv", index=False)
    schema, secret = load_schema("pace-default"), Secret(TEST_SECRET)
    encode_file(base / "full.csv", schema, secret, base / "full.plk",
                EncodeOptions(id_column="local_id", workers=1))  # fmt: skip
    encode_file(base / "partial.csv", schema, secret, base / "partial.plk",
                EncodeOptions(id_column="local_id", workers=1, absent=LACKING))  # fmt: skip
    return read_encodings(base / "full.plk"), read_encodings(base / "partial.plk")


def _default_doc() -> dict[str, Any]:
    return copy.deepcopy(load_schema("pace-default").raw)


def test_insertions_are_the_schemas_fixed_counts() -> None:
    doc = _default_doc()
    expected = {
        f["identifier"]: f["hashing"]["strategy"].get("bitsPerFeature")
        or f["hashing"]["strategy"]["bitsPerToken"]
        for f in doc["features"]
    }
    assert insertions_of(load_schema("pace-default")) == expected
    assert insertions_of(load_schema("pace-no-salt")) == expected


@pytest.mark.parametrize(
    "change",
    [
        "ngram-bits-per-token",
        "xor-fold",
        "balanced",
        "blip",
    ],
)
def test_no_model_where_insertions_or_bits_are_not_the_schemas(change: str) -> None:
    doc = _default_doc()
    if change == "ngram-bits-per-token":  # a surname's insertions grow with its length
        doc["features"][1]["hashing"]["strategy"] = {"bitsPerToken": 10}
    elif change == "xor-fold":
        doc["clkConfig"]["xor_folds"] = 1
    elif change == "balanced":
        doc["hardening"]["balanced"] = True
    else:
        doc["hardening"]["blip"] = 0.02
    schema = parse_schema(doc, "test")
    assert insertions_of(schema) is None
    assert CoverageModel.of(schema, [frozenset(), frozenset({"sex"})]) is None


def test_ratios_only_for_parties_that_differ() -> None:
    schema = load_schema("pace-default")
    every = frozenset(f.name for f in schema.hashed_features)
    assert CoverageModel.of(schema, [every, every, None]) is None  # nothing differs
    model = CoverageModel.of(schema, [every, every - LACKING, every, None])
    assert model is not None
    assert model.ratios(0, 2) == (1.0, 1.0)  # same features
    assert model.ratios(0, 3) == (1.0, 1.0)  # unknown
    assert model.ratios(0, 9) == (1.0, 1.0)  # beyond the list: unknown
    full, partial = model.ratios(0, 1)
    assert 0.0 < full < 1.0
    assert partial == 1.0  # every feature it holds is shared
    assert model.ratios(1, 0) == (partial, full)
    with pytest.raises(ValueError, match="not in the schema: shoe_size"):
        CoverageModel(1024, model.insertions, [frozenset({"shoe_size"})])


@pytest.fixture(scope="module")
def full_and_partial(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """The same 400 people encoded by a full partner and by one lacking three features."""
    base = tmp_path_factory.mktemp("coverage")
    return encode_full_and_partial(base)


def test_adjusted_dice_of_a_record_and_its_partial_copy_is_close_to_one(
    full_and_partial: tuple[Any, Any],
) -> None:
    full, partial = full_and_partial
    a, b = np.asarray(full.bits), np.asarray(partial.bits)
    assert full.record_keys is None or list(full.record_keys) == list(partial.record_keys)
    held = [
        frozenset(f.name for f in e.plk_header.features if not f.absent) for e in (full, partial)
    ]
    assert held[1] == held[0] - LACKING  # the header says what the file lacks
    model = CoverageModel.of(load_schema("pace-default"), held)
    assert model is not None
    rows = np.arange(len(a))
    pop_a, pop_b = np.bitwise_count(a).sum(axis=1), np.bitwise_count(b).sum(axis=1)
    shared = np.bitwise_count(a & b).sum(axis=1)
    plain = 2 * shared / (pop_a + pop_b)
    got = adjust_scores(Candidates(rows, rows, plain), pop_a, pop_b, model.ratios(0, 1), 0.0)
    # The partial copy's bits are the full record's shared-feature bits, so plain Dice
    # is far from 1; the model expects that share and brings the score back to about 1.
    assert plain.mean() < 0.9
    assert got.score.mean() == pytest.approx(1.0, abs=0.02)
    assert np.percentile(got.score, 5) > 0.93


def test_rescoring_equals_the_numpy_reference() -> None:
    rng = np.random.default_rng(7)
    left = np.packbits(rng.random((60, 256)) < 0.4, axis=1)
    right = np.packbits(rng.random((50, 256)) < 0.3, axis=1)
    found = dice_candidates(left, right, 0.2)
    pop_l, pop_r = np.bitwise_count(left).sum(axis=1), np.bitwise_count(right).sum(axis=1)
    got = adjust_scores(found, pop_l, pop_r, (0.8, 0.9), 0.5)
    shared = np.bitwise_count(left[found.i] & right[found.j]).sum(axis=1)
    want = np.minimum(2 * shared / (0.8 * pop_l[found.i] + 0.9 * pop_r[found.j]), 1.0)
    keep = want >= 0.5
    assert keep.any() and not keep.all()
    np.testing.assert_array_equal(got.i, found.i[keep])
    np.testing.assert_array_equal(got.j, found.j[keep])
    np.testing.assert_allclose(got.score, want[keep], rtol=1e-12)


def test_linkage_scores_pairs_of_files_that_differ_on_what_both_hold(
    full_and_partial: tuple[Any, Any],
) -> None:
    full, partial = full_and_partial
    a, b = np.asarray(full.bits), np.asarray(partial.bits)
    held = [
        frozenset(f.name for f in e.plk_header.features if not f.absent) for e in (full, partial)
    ]
    model = CoverageModel.of(load_schema("pace-default"), held)
    plain_groups, _ = link_encodings([a, b], 0.9)
    groups, _ = link_encodings([a, b], 0.9, coverage=model)

    # At 0.9 plain Dice links few of the copies; scored on what both hold, nearly all.
    def linked(g: Any) -> int:
        frame = pd.DataFrame({"entity": g.entity, "party": g.party, "row": g.row})
        pairs = frame.groupby("entity").filter(lambda x: len(x) == 2)
        same = pairs.groupby("entity")["row"].nunique() == 1
        return int(same.sum())

    assert linked(plain_groups) < 0.5 * len(a)
    assert linked(groups) > 0.95 * len(a)
