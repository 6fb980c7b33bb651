"""One source of truth: the sharing-policy schema in schemas/ is the model's export."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from linkage_unit.exports import EXPORTS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_shipped_schema_is_the_export(name: str) -> None:
    shipped = json.loads((ROOT / "schemas" / name).read_text(encoding="utf-8"))
    assert shipped == EXPORTS[name](), (
        f"schemas/{name} is stale: regenerate it with `python -m linkage_unit.exports`"
    )


def test_policy_schema_accepts_the_documented_example_and_refuses_typos() -> None:
    schema = EXPORTS["sharing-policy.schema.json"]()
    example = {
        "default_grants": ["mapping", "counts"],
        "grants": {"council": ["counts"], "sds": ["mapping", "counts", "flags:dwp"]},
        "suppression": {"min_count": 10, "round_to": 5},
    }
    jsonschema.validate(example, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"grant": {}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"suppression": {"min_count": 0}}, schema)
