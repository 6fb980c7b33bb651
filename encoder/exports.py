"""Writes the JSON Schemas of pacelink's formats into `schemas/` from their models.

Run `python -m encoder.exports [DIR]` after changing a model; a test fails while a shipped
file differs from its model's export.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from encoder.fileformat import header_json_schema
from encoder.schema import extension_json_schema, hardening_json_schema

__all__ = ["EXPORTS", "write_exports"]

EXPORTS = {
    "linkage-schema-extension.schema.json": extension_json_schema,
    "linkage-schema-hardening.schema.json": hardening_json_schema,
    "plk-header.schema.json": header_json_schema,
}


def write_exports(
    folder: Path, exports: Mapping[str, Callable[[], dict[str, Any]]] | None = None
) -> list[Path]:
    """Write every export (default: the encoder's) into `folder`; returns the paths."""
    written = []
    for name, export in (EXPORTS if exports is None else exports).items():
        path = folder / name
        path.write_text(json.dumps(export(), indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_exports(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")):
        print(f"wrote {path}")
