"""Name roots (`"derive": "name_root"`): the rule, the two paths agreeing, and clkhash's bits."""

from __future__ import annotations

import random
import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from nicknames import NickNamer

from encoder.chunks import _derive, _dictionary
from encoder.encode import EncodeOptions, encode_dataframe
from encoder.formatting import FeatureFormatter
from encoder.keys import Secret
from encoder.name_roots import name_root, name_roots
from encoder.schema import SchemaInvalid, derived_value, parse_schema
from encoder.standardise import standardise_name
from tests.conftest import TEST_SECRET
from tests.encoder.test_derived import _as_missing, _derived, _reference, _rows, _schema


def _root_feature(sources: list[str]) -> dict[str, Any]:
    feature = _derived("given_root", sources, {"type": "exact"})
    feature["derive"] = "name_root"
    return feature


@pytest.mark.parametrize(
    "names",
    [
        ("bill", "billy", "will", "willie", "william"),
        ("liz", "lizzie", "beth", "betty", "bess", "elizabeth"),
        ("jim", "james", "jamie", "hamish", "seamus"),
        ("bob", "bobby", "rob", "robert"),
        ("peggy", "meg", "maggie", "margaret"),
        ("ted", "ned", "edward"),
        ("sally", "sarah"),
        ("harry", "henry"),
    ],
)
def test_a_name_and_its_nicknames_share_a_root(names: tuple[str, ...]) -> None:
    assert len({name_root(n) for n in names}) == 1, {n: name_root(n) for n in names}


def test_unknown_and_missing_names_are_their_own_root() -> None:
    for name in ("", "zebedeeqx", "maryanne", "oluwaseun"):
        assert name_root(name) == name


def test_an_ambiguous_nickname_goes_to_the_most_shortened_form() -> None:
    """Alex: the package lists it for alexander, alexandra, alexis, ...; one is chosen."""
    namer = NickNamer()
    root = name_root("alex")
    assert root == name_root("alexander")
    assert name_root("alexandra") != root
    longer = [c for c in namer.canonicals_of("alex") if len(c) > len("alex")]
    most = max(len(namer.nicknames_of(c)) for c in longer)
    assert len(namer.nicknames_of(root)) >= most


def test_roots_are_fixed_points_and_standard_names() -> None:
    table = name_roots()
    assert len(table) > 500
    for name, root in table.items():
        assert name != root
        assert name_root(root) == root
        assert re.fullmatch("[a-z]+", name) and re.fullmatch("[a-z]+", root)
    assert name_roots() is table  # built once


def test_derived_value_applies_the_root() -> None:
    assert derived_value(["billy"], "name_root") == "william"
    assert derived_value([""], "name_root") == ""
    with pytest.raises(ValueError, match="unknown derive"):
        derived_value(["x"], "soundex")


def _real_names(n: int, seed: int) -> list[str]:
    """Names of the package (nicknames and full names), some unknown, some missing."""
    namer = NickNamer()
    known = sorted({*namer.nickname_lookup, *namer.canonical_lookup})
    r = random.Random(seed)
    extra = ["", "", "Mary Anne", "O'Neill", "Zebedeeqx", "BILL", "  will ", "Séamus"]
    return [r.choice(known).title() if r.random() < 0.9 else r.choice(extra) for _ in range(n)]


def test_scalar_and_vectorised_paths_agree() -> None:
    schema = parse_schema(_as_missing(_schema(_root_feature(["given_name"]))))
    given = next(f for f in schema.features if f.name == "given_name")
    raw = _real_names(5000, seed=11)
    column = _dictionary(pa.array(raw, pa.string()))
    done = FeatureFormatter(given, None).format_array(column.uniques)
    formatted = pa.array(done.values, pa.string())
    derived = _derive([(column, done, formatted)], len(raw), "name_root")
    vectorised = derived.uniques.take(pa.array(derived.indices)).to_pylist()
    scalar = [schema.derived_values({"given_name": standardise_name(v)})["given_root"] for v in raw]
    assert vectorised == scalar
    assert {"william", "elizabeth", "", "maryanne"} <= set(scalar)


def test_name_root_feature_equals_clkhash_on_the_derived_column() -> None:
    schema = parse_schema(_as_missing(_schema(_root_feature(["given_name"]))))
    frame = _rows(600, seed=12)
    frame["given_name"] = _real_names(600, seed=13)
    encoded = encode_dataframe(frame, schema, Secret(TEST_SECRET), EncodeOptions(chunk_rows=97))
    assert encoded.report.encoded == 600
    assert np.array_equal(encoded.bits, _reference(frame, schema))


def test_nicknames_agree_on_the_root_feature_only() -> None:
    doc = _schema(_root_feature(["given_name"]))
    doc["features"] = [
        f for f in doc["features"] if f["identifier"] in ("given_name", "given_root")
    ]
    doc["features"][0]["hashing"]["strategy"] = {"bitsPerFeature": 1}
    schema = parse_schema(doc)
    frame = pd.DataFrame({"given_name": ["Bill", "William", "Robert"]})
    bits = encode_dataframe(frame, schema, Secret(TEST_SECRET)).bits
    overlap = np.bitwise_count(bits[0] & bits[1]).sum()
    assert overlap >= np.bitwise_count(bits[1]).sum() - 1  # all but the one given-name bit
    assert np.bitwise_count(bits[0] & bits[2]).sum() < overlap


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.update(derivedFrom=["given_name", "surname"]), "exactly one feature"),
        (lambda f: f.update(derivedFrom=["postcode"]), r"standardised as a name.*'postcode'"),
        (lambda f: f.update(derive="soundex"), r"derive: Input should be 'name_root'"),
        (lambda f: f.pop("derivedFrom"), r"derive: transforms a derived feature's value"),
    ],
)
def test_bad_name_root_features_are_refused_with_their_path(change: Any, message: str) -> None:
    feature = _root_feature(["given_name"])
    change(feature)
    with pytest.raises(SchemaInvalid, match=message) as info:
        parse_schema(_schema(feature), "s.json")
    assert "s.json: $.features[5].derive" in str(info.value)
