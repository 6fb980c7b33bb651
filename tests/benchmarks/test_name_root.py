"""The name-root candidate schema: pace-default plus one derived feature, nothing else."""

from __future__ import annotations

import pytest

from benchmarks.harness import schema_document
from benchmarks.name_root import VARIANT_SUFFIX, main, name_root_schema
from benchmarks.privacy.__main__ import schema_of
from encoder.schema import parse_schema


def test_the_candidate_is_the_default_plus_the_root_feature_last() -> None:
    doc = name_root_schema(20)
    default = schema_document()
    assert doc["features"][:-1] == default["features"]
    assert {k: v for k, v in doc.items() if k != "features"} == {
        k: v for k, v in default.items() if k != "features"
    }
    schema = parse_schema(doc, "candidate")
    root = schema.features[-1]
    assert (root.name, root.extension.derive) == ("given_name_root", "name_root")
    assert schema.raw["features"][-1]["hashing"]["strategy"] == {"bitsPerToken": 20}
    assert schema_of(f"shipped{VARIANT_SUFFIX}20") == doc
    unhardened = schema_of(f"none{VARIANT_SUFFIX}40")
    assert "hardening" not in unhardened and unhardened["features"][-1] == {
        **doc["features"][-1],
        "hashing": {**doc["features"][-1]["hashing"], "strategy": {"bitsPerToken": 40}},
    }


def test_the_comparison_runs_on_a_tiny_population(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--people", "200", "--seed", "3", "--bits", "20", "--scenarios", "two-party"]) == 0
    out = capsys.readouterr().out
    assert "| two-party | + name root 20 |" in out and "| two-party | pace-default |" in out
