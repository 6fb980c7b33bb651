"""Writes the JSON Schemas of the linkage unit's file formats into `schemas/` from their models.

Operators write sharing policies as JSON files (`pacelink unit project create --policy`);
their schema is exported from :class:`linkage_unit.policy.SharingPolicy`. Run
`python -m linkage_unit.exports [DIR]` after changing the model; a test fails while the
shipped file differs from the export.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from encoder import exports as encoder_exports
from linkage_unit.policy import SharingPolicy

__all__ = ["EXPORTS", "write_exports"]


def _policy_schema() -> dict[str, Any]:
    schema = SharingPolicy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://pacelink.example/schemas/sharing-policy.schema.json"
    return schema


EXPORTS = {"sharing-policy.schema.json": _policy_schema}


def write_exports(folder: Path) -> list[Path]:
    """Write every export into `folder`; returns the paths written."""
    return encoder_exports.write_exports(folder, EXPORTS)


if __name__ == "__main__":
    for path in write_exports(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")):
        print(f"wrote {path}")
