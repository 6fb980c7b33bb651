"""Derived features (`derivedFrom`): built from other features' values, checked against clkhash."""

from __future__ import annotations

import copy
import csv
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from clkhash import clk

from encoder.encode import EncodeError, EncodeOptions, encode_dataframe, encode_file
from encoder.fileformat import read_encodings
from encoder.keys import Secret
from encoder.name_roots import name_root
from encoder.schema import LinkageSchema, SchemaInvalid, parse_schema
from encoder.standardise import STANDARDISERS, InvalidValue, standardise_date
from tests.conftest import TEST_SECRET

BASE = json.loads(Path("schemas/pace-default.json").read_text(encoding="utf-8"))
BASE.pop("hardening")  # clkhash is the oracle here: the default's features, unhardened


def _feature(name: str) -> dict[str, Any]:
    return copy.deepcopy(next(f for f in BASE["features"] if f["identifier"] == name))


def _derived(name: str, sources: list[str], comparison: dict[str, Any]) -> dict[str, Any]:
    strategy = {"bitsPerToken": 30} if comparison["type"] == "exact" else {"bitsPerFeature": 80}
    return {
        "identifier": name,
        "format": {"type": "string", "encoding": "utf-8"},
        "hashing": {
            "comparison": comparison,
            "strategy": strategy,
            "hash": {"type": "blakeHash"},
            "missingValue": {"sentinel": ""},
        },
        "derivedFrom": sources,
    }


def _schema(*extra: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    names = ("given_name", "surname", "date_of_birth", "postcode", "ni_number")
    doc["features"] = [_feature(n) for n in names] + list(extra)
    return doc


DERIVED = (
    _derived("names", ["given_name", "surname"], {"type": "ngram", "n": 2}),
    _derived("dob_exact", ["date_of_birth"], {"type": "exact"}),
    _derived("three", ["surname", "postcode", "ni_number"], {"type": "ngram", "n": 1}),
)

GIVEN = ["Paul", "Dickson", "Seán", "", "J0HN", "Mary-Jane", "ann", "Lee"]
SURNAMES = ["Dickson", "Paul", "O'Neill", "Smith", "", "MacDonald", "Lee", "Ann"]
DATES = ["1/2/1990", "1990-02-01", "", "31/02/1985", "12 Mar 1985", "03/04/1979"]
POSTCODES = ["EH1 1AA", "eh11aa", "", "not a postcode", "G2 4JR"]
NI = ["AB123456C", "", "ab 12 34 56 c", "QQ123456C"]


def _rows(n: int, seed: int) -> pd.DataFrame:
    r = random.Random(seed)
    return pd.DataFrame(
        {
            "given_name": [r.choice(GIVEN) for _ in range(n)],
            "surname": [r.choice(SURNAMES) for _ in range(n)],
            "date_of_birth": [r.choice(DATES) for _ in range(n)],
            "postcode": [r.choice(POSTCODES) for _ in range(n)],
            "ni_number": [r.choice(NI) for _ in range(n)],
        }
    )


def _hashed(schema: LinkageSchema, name: str, raw: str) -> str:
    """What clkhash hashes for a source value: standardised, then clkhash-formatted.

    "" if the value is missing or invalid.
    """
    feature = next(f for f in schema.features if f.name == name)
    std = standardise_date if feature.extension.standardise == "date" else None
    std = std or STANDARDISERS[feature.extension.standardise or ""]
    try:
        value = std(raw)
    except InvalidValue:
        return ""
    return str(feature.spec.format_value(value)) if value else ""


def _reference(frame: pd.DataFrame, schema: LinkageSchema) -> np.ndarray:
    """Clkhash given every column, the derived ones written out as the documentation says."""
    records = []
    for row in frame.to_dict("records"):
        base = {f.name: row.get(f.name, "") for f in schema.features}
        hashed = {n: _hashed(schema, n, v) for n, v in base.items() if n in frame}
        record = []
        for f in schema.features:
            sources = f.extension.derived_from
            if sources:
                parts = [hashed[s] for s in sources if hashed.get(s)]
                if f.extension.derive == "name_root":
                    parts = [name_root(part) for part in parts]
                record.append(" ".join(sorted(parts)))
            elif f.extension.standardise == "date":
                # clkhash parses the feature's own format: give it the standardised ISO date
                record.append(standardise_date(base[f.name]) if hashed[f.name] else "")
            else:
                record.append(hashed.get(f.name, ""))
        records.append(record)
    filters = clk.generate_clks(records, schema.clk, TEST_SECRET, max_workers=1)
    return np.frombuffer(b"".join(f.tobytes() for f in filters), np.uint8).reshape(len(frame), -1)


def _as_missing(doc: dict[str, Any]) -> dict[str, Any]:
    for feature in doc["features"]:
        feature["onInvalid"] = "missing"
    return doc


def test_derived_features_equal_clkhash_on_the_derived_columns() -> None:
    schema = parse_schema(_as_missing(_schema(*DERIVED)))
    frame = _rows(400, seed=3)
    encoded = encode_dataframe(frame, schema, Secret(TEST_SECRET), EncodeOptions(chunk_rows=64))
    assert encoded.report.encoded == 400
    assert np.array_equal(encoded.bits, _reference(frame, schema))
    coverage = {f["name"]: f["present"] for f in encoded.header["features"]}
    both_missing = (frame["given_name"] == "") & (frame["surname"] == "")
    assert coverage["names"] == int((~both_missing).sum())


def test_combinations_renumbered_to_avoid_overflow_give_the_same_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schema = parse_schema(_as_missing(_schema(*DERIVED)))
    frame = _rows(300, seed=8)
    expected = encode_dataframe(frame, schema, Secret(TEST_SECRET)).bits
    monkeypatch.setattr("encoder.chunks._CODE_LIMIT", 5)  # re-number before every source
    assert np.array_equal(encode_dataframe(frame, schema, Secret(TEST_SECRET)).bits, expected)
    assert np.array_equal(expected, _reference(frame, schema))


def test_files_in_parallel_chunks_equal_one_chunk(tmp_path: Path) -> None:
    schema = parse_schema(_as_missing(_schema(*DERIVED)))
    frame = _rows(3000, seed=4)
    frame.insert(0, "ref", [f"R{i}" for i in range(len(frame))])
    src = tmp_path / "in.csv"
    frame.to_csv(src, index=False, quoting=csv.QUOTE_ALL)
    bits = []
    for name, workers, chunk in (("one", 1, 10_000), ("many", 2, 257)):
        options = EncodeOptions(id_column="ref", workers=workers, chunk_rows=chunk)
        report = encode_file(src, schema, Secret(TEST_SECRET), tmp_path / f"{name}.plk", options)
        assert report.encoded == 3000
        assert report.features["names"]["column"] is None
        bits.append(read_encodings(tmp_path / f"{name}.plk").bits)
    assert np.array_equal(bits[0], bits[1])
    assert np.array_equal(bits[0], _reference(frame.drop(columns="ref"), schema))


def test_swapped_names_agree_on_the_order_independent_feature() -> None:
    doc = _schema(DERIVED[0])
    keep = ("given_name", "surname", "names")
    doc["features"] = [f for f in doc["features"] if f["identifier"] in keep]
    doc["features"][0]["hashing"]["strategy"] = {"bitsPerFeature": 1}
    doc["features"][1]["hashing"]["strategy"] = {"bitsPerFeature": 1}
    only_names = parse_schema(doc)
    frame = pd.DataFrame({"given_name": ["Paul", "DICKSON", "Paul"],
                          "surname": ["Dickson", "paul", "Dixon"]})  # fmt: skip
    full = encode_dataframe(frame, only_names, Secret(TEST_SECRET)).bits
    one_bit_each = encode_dataframe(
        frame.assign(given_name="", surname=""), only_names, Secret(TEST_SECRET)
    ).bits
    assert not one_bit_each.any()
    popcount = np.bitwise_count(full).sum(axis=1)
    overlap = np.bitwise_count(full[0] & full[1]).sum()
    # Only the two single-bit name features can differ between the swapped pair.
    assert popcount[0] - overlap <= 2 and popcount[1] - overlap <= 2
    assert np.bitwise_count(full[0] & full[2]).sum() < overlap


def test_invalid_source_is_missing_or_rejects_like_its_feature() -> None:
    frame = pd.DataFrame({"given_name": ["Ann", "Ann"], "surname": ["Lee", "X1985"],
                          "date_of_birth": ["1990-01-01"] * 2,
                          "postcode": ["EH1 1AA"] * 2})  # fmt: skip
    rejecting = parse_schema(_schema(DERIVED[0]))
    report = encode_dataframe(frame, rejecting, Secret(TEST_SECRET)).report
    assert report.rejected == 1 and report.rejected_by_field == {"surname": 1}
    lenient = parse_schema(_as_missing(_schema(DERIVED[0])))
    enc = encode_dataframe(frame, lenient, Secret(TEST_SECRET))
    assert enc.report.rejected == 0
    assert np.array_equal(enc.bits, _reference(frame, lenient))


def test_absent_optional_source_counts_as_missing() -> None:
    schema = parse_schema(_as_missing(_schema(DERIVED[2])))
    frame = _rows(50, seed=5).drop(columns="ni_number")
    frame["postcode"] = "EH1 1AA"
    enc = encode_dataframe(frame, schema, Secret(TEST_SECRET))
    assert enc.report.features["ni_number"]["column"] is None
    assert enc.report.features["three"]["present"] == 50
    assert np.array_equal(enc.bits, _reference(frame, schema))


def test_column_option_cannot_feed_a_derived_feature() -> None:
    schema = parse_schema(_schema(DERIVED[0]))
    frame = _rows(3, seed=6).assign(full_name="x")
    with pytest.raises(EncodeError, match="derived features, which read no column: names"):
        encode_dataframe(
            frame, schema, Secret(TEST_SECRET), EncodeOptions(columns={"names": "full_name"})
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda f: f.update(derivedFrom=["nickname"]),
            r"'nickname' is not a feature listed before",
        ),
        (lambda f: f.update(derivedFrom=["names"]), r"'names' is not a feature listed before"),
        (lambda f: f.update(derivedFrom=["surname", "surname"]), "a feature is named twice"),
        (lambda f: f.update(derivedFrom=[]), r"derivedFrom"),
        (lambda f: f.update(standardise="name"), "has no standardiser of its own"),
        (lambda f: f.update(format={"type": "integer"}), "format.type: a derived feature"),
    ],
)
def test_bad_derived_features_are_refused_with_their_path(change: Any, message: str) -> None:
    feature = copy.deepcopy(DERIVED[0])
    change(feature)
    with pytest.raises(SchemaInvalid, match=message) as info:
        parse_schema(_schema(feature), "s.json")
    assert "s.json: $.features[5]" in str(info.value)


def test_sources_must_be_hashed_and_not_derived() -> None:
    doc = _schema(DERIVED[0], _derived("again", ["names"], {"type": "exact"}))
    with pytest.raises(SchemaInvalid, match=r"\$.features\[6\].derivedFrom: 'names' is itself"):
        parse_schema(doc, "s.json")
    doc = _schema(_derived("from_ignored", ["postcode"], {"type": "exact"}))
    doc["features"][3] = {"identifier": "postcode", "ignored": True}
    with pytest.raises(SchemaInvalid, match="'postcode' is ignored"):
        parse_schema(doc, "s.json")
