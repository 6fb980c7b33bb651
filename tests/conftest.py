"""Shared fixtures: a strong test secret and small helpers to build schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from encoder.keys import Secret

TEST_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff"


@pytest.fixture
def secret() -> Secret:
    return Secret(TEST_SECRET)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "partnership.key"
    path.write_text(TEST_SECRET + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def schema_doc(features: list[dict[str, Any]], *, l: int = 1024, folds: int = 0,
               kdf: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """A clkhash v3 schema with an ignored record-ID column first (as clkhash examples do)."""
    return {
        "version": 3,
        "clkConfig": {
            "l": l,
            "xor_folds": folds,
            "kdf": kdf
            or {
                "type": "HKDF",
                "hash": "SHA256",
                "salt": "c2FsdA==",
                "info": "aW5mbw==",
                "keySize": 64,
            },
        },
        "features": [{"identifier": "rec_id", "ignored": True}, *features],
    }
