"""Linkage schemas: clkhash schemas accepted as is, extension keys, errors with JSON paths."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from clkhash import schema as clk_schema

from encoder.fileformat import header_json_schema
from encoder.schema import (
    SchemaInvalid,
    extension_json_schema,
    fingerprint,
    hardening_json_schema,
    load_schema,
    parse_schema,
)
from tests.conftest import schema_doc

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def _feature(**extra: Any) -> dict[str, Any]:
    return {"identifier": "name", "format": {"type": "string"},
            "hashing": {"comparison": {"type": "ngram", "n": 2},
                        "strategy": {"bitsPerToken": 10}}, **extra}  # fmt: skip


def test_pace_default_is_a_valid_clkhash_schema() -> None:
    doc = json.loads((SCHEMAS / "pace-default.json").read_text())
    clk_schema.validate_schema_dict(doc)  # clkhash accepts our extension keys as is
    schema = load_schema("pace-default")
    names = [f.name for f in schema.features]
    columns = [f.name for f in schema.features if not f.extension.derived_from]
    assert columns[:5] == ["given_name", "surname", "date_of_birth", "sex", "postcode"]
    derived = {
        f.name: f.extension.derived_from for f in schema.features if f.extension.derived_from
    }
    assert derived == {
        "names_any_order": ("given_name", "surname"),
        "whole_date_of_birth": ("date_of_birth",),
    }
    assert all(names.index(d) > max(names.index(s) for s in src) for d, src in derived.items())
    optional = {f.name for f in schema.features if f.extension.optional}
    assert optional == {"address_line", "ni_number"}
    assert schema.fingerprint == fingerprint(doc)
    assert load_schema(SCHEMAS / "pace-default.json").fingerprint == schema.fingerprint


def test_pace_no_salt_is_the_default_without_its_salt() -> None:
    default, no_salt = load_schema("pace-default"), load_schema("pace-no-salt")
    assert no_salt.source == "pace-no-salt (bundled)" and not no_salt.hardening.active
    assert default.hardening.record_salt is not None
    assert {**no_salt.raw, "hardening": default.raw["hardening"]} == default.raw
    assert no_salt.fingerprint != default.fingerprint
    assert load_schema(SCHEMAS / "pace-no-salt.json").fingerprint == no_salt.fingerprint
    with pytest.raises(SchemaInvalid, match="pace-nosalt: no such schema file"):
        load_schema("pace-nosalt")


def test_clkhash_v2_schema_is_converted() -> None:
    doc = {"version": 2, "clkConfig": {"l": 1024, "kdf": {"type": "HKDF"}},
           "features": [{"identifier": "n", "format": {"type": "string"},
                         "hashing": {"ngram": 2, "strategy": {"k": 10}}}]}  # fmt: skip
    schema = parse_schema(doc)
    assert schema.raw["version"] == 3
    assert schema.features[0].spec.hashing_properties.strategy.bits_per_token(2) == (10, 10)


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d["features"][1]["hashing"]["strategy"].update(bitsPerTokn=3),
         "$.features[1].hashing.strategy"),
        (lambda d: d["clkConfig"].pop("l"), "$.clkConfig"),
        (lambda d: d.update(version=7), "$.version"),
        (lambda d: d["features"][1].update(standardise="nickname"), "$.features[1].standardise"),
        (lambda d: d["features"][1].update(onInvalid="drop"), "$.features[1].onInvalid"),
        (lambda d: d["clkConfig"].update(l=1001), "$.clkConfig.l"),
        (lambda d: d["clkConfig"].update(l=1000), "$.features[1].hashing.hash"),
        (lambda d: d["clkConfig"].update(xorFolds=1), "$.clkConfig.xorFolds"),
        (lambda d: d["features"].append(copy.deepcopy(d["features"][1])),
         "$.features[2].identifier"),
        (lambda d: d["features"][1].update(standardise="date"), "$.features[1].standardise"),
    ],
)  # fmt: skip
def test_invalid_schemas_name_the_json_path(mutate: Any, path: str) -> None:
    doc = schema_doc([_feature()])
    mutate(doc)
    with pytest.raises(SchemaInvalid) as info:
        parse_schema(doc, "my-schema.json")
    assert str(info.value).startswith(f"my-schema.json: {path}")


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(SchemaInvalid, match="no such schema file"):
        load_schema(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 3,')
    with pytest.raises(SchemaInvalid, match=r"bad.json: not valid JSON \(line 1"):
        load_schema(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(SchemaInvalid, match=r"\$: the schema must be a JSON object"):
        load_schema(bad)


def test_fingerprint_is_canonical() -> None:
    doc = schema_doc([_feature()])
    shuffled = json.loads(json.dumps(doc, sort_keys=True))
    assert fingerprint(doc) == fingerprint(shuffled)
    doc["features"][1]["hashing"]["strategy"]["bitsPerToken"] = 11
    assert fingerprint(doc) != fingerprint(shuffled)


@pytest.mark.parametrize(
    ("file", "export"),
    [("linkage-schema-extension.schema.json", extension_json_schema),
     ("linkage-schema-hardening.schema.json", hardening_json_schema),
     ("plk-header.schema.json", header_json_schema)],
)  # fmt: skip
def test_shipped_json_schemas_match_the_models(file: str, export: Any) -> None:
    """One source of truth: the models; the files in schemas/ are their exports."""
    assert json.loads((SCHEMAS / file).read_text()) == export(), (
        f"schemas/{file} is stale: regenerate it with `python -m encoder.exports`"
    )


def test_the_hardening_json_schema_accepts_what_the_model_accepts() -> None:
    """The exported JSON Schema states the ranges the model's validators check."""
    schema = hardening_json_schema()
    good = {"balanced": True, "recordSalt": {"feature": "date_of_birth", "end": 4},
            "blip": 0.02, "decoys": 0.05}  # fmt: skip
    jsonschema.validate(good, schema)
    for bad in ({"blip": 0.5}, {"decoys": 1.5}, {"balance": True}, {"recordSalt": {}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
