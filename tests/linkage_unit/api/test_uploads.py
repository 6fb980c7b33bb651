"""Uploads over real HTTP: checked in full, refused distinctly, nothing half-received kept."""

from __future__ import annotations

import os

import httpx
import pytest

from linkage_unit.client import UnitClient, UnitError
from linkage_unit.embedded import EmbeddedUnit
from tests.linkage_unit.conftest import (
    Encoded,
    setup_project,
)


def test_wrong_schema_and_wrong_secret_are_refused_distinctly(
    unit: EmbeddedUnit, encoded: Encoded
) -> None:
    project, tokens = setup_project(unit, encoded)
    with UnitClient(unit.url, tokens["council"]) as council:
        council.upload(project, encoded.partners["council"].plk)  # pins the secret's KCV
        with pytest.raises(UnitError) as schema_error:
            council.upload(project, encoded.other_schema_plk)
        with pytest.raises(UnitError) as secret_error:
            council.upload(project, encoded.other_secret_plk)
        assert len(council.uploads(project)) == 1
    assert "different schema" in str(schema_error.value)
    assert "different secret" in str(secret_error.value)
    assert "different secret" not in str(schema_error.value)
    assert "different schema" not in str(secret_error.value)
    assert schema_error.value.status == secret_error.value.status == 409
    _assert_nothing_incoming(unit)


def test_first_upload_pins_the_secret_unless_the_project_did(
    unit: EmbeddedUnit, encoded: Encoded
) -> None:
    from encoder.fileformat import read_header

    kcv = read_header(encoded.other_secret_plk).key_check_value
    project, tokens = setup_project(unit, encoded, key_check_value=kcv)
    with UnitClient(unit.url, tokens["council"]) as council:
        with pytest.raises(UnitError, match="different secret"):
            council.upload(project, encoded.partners["council"].plk)
        council.upload(project, encoded.other_secret_plk)


def _assert_nothing_incoming(unit: EmbeddedUnit) -> None:
    incoming = unit.settings.data_dir / "incoming"
    assert list(incoming.iterdir()) == []


@pytest.mark.parametrize(
    "damage",
    ["truncated", "flipped_bit", "garbage", "empty", "bad_header", "wrong_digest_header"],
)
def test_broken_uploads_are_refused_and_leave_nothing(
    unit: EmbeddedUnit, encoded: Encoded, damage: str
) -> None:
    project, tokens = setup_project(unit, encoded)
    data = encoded.partners["council"].plk.read_bytes()
    headers = {"Authorization": f"Bearer {tokens['council']}",
               "Content-Type": "application/octet-stream"}  # fmt: skip
    body = bytearray(data)
    if damage == "truncated":
        body = body[: len(body) - 1000]
    elif damage == "flipped_bit":
        body[-5] ^= 0x10
    elif damage == "garbage":
        body = bytearray(os.urandom(5000))
    elif damage == "empty":
        body = bytearray()
    elif damage == "bad_header":
        body[20:40] = b"x" * 20
    elif damage == "wrong_digest_header":
        headers["X-Content-SHA256"] = "0" * 64
    before = _files(unit)
    response = httpx.post(f"{unit.url}/projects/{project}/uploads", content=bytes(body),
                          headers=headers)  # fmt: skip
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("upload refused:")
    assert str(unit.settings.data_dir) not in detail  # no paths of the unit
    assert _files(unit) == before
    with UnitClient(unit.url, unit.admin_token) as admin:
        assert admin.uploads(project) == []
        entries = admin.audit(project)
    # The refusal is audited (who, which check, the status), and nothing else happened.
    assert [e["action"] for e in entries] == ["project.created", "upload.refused"]
    refused = entries[-1]
    assert refused["actor"] == "party:council"
    assert refused["detail"]["status"] == 422
    check = "transfer digest" if damage == "wrong_digest_header" else "format"
    assert refused["detail"]["check"] == check
    assert refused["detail"]["route"] == "POST /projects/{project_id}/uploads"


def _files(unit: EmbeddedUnit) -> set[str]:
    root = unit.settings.data_dir
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith("unit.db") and p.name != "audit.head"
    }


def test_reuploading_the_same_file_is_refused(unit: EmbeddedUnit, encoded: Encoded) -> None:
    project, tokens = setup_project(unit, encoded)
    with UnitClient(unit.url, tokens["council"]) as council:
        council.upload(project, encoded.partners["council"].plk)
        with pytest.raises(UnitError, match="already uploaded"):
            council.upload(project, encoded.partners["council"].plk)
