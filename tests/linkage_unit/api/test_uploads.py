"""Uploads over real HTTP: checked in full, refused distinctly, nothing half-received kept."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from encoder.encode import EncodeOptions, encode_file
from encoder.schema import load_schema
from linkage_unit.client import UnitClient, UnitError
from linkage_unit.database import Upload
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


def test_a_file_without_some_features_uploads_and_its_profile_says_so(
    unit: EmbeddedUnit, encoded: Encoded, tmp_path: Path
) -> None:
    # The council's list without its sex column, declared absent (`--absent sex`).
    text = encoded.partners["council"].csv.read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    src = tmp_path / "council-no-sex.csv"
    with src.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, [c for c in rows[0] if c != "sex"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    plk = tmp_path / "council-no-sex.plk"
    options = EncodeOptions(id_column="local_id", absent=frozenset({"sex"}))
    encode_file(src, load_schema("pace-default"), encoded.secret, plk, options)
    project, tokens = setup_project(unit, encoded)
    with UnitClient(unit.url, tokens["council"]) as council:
        upload_id = council.upload(project, plk)["id"]
    with unit.app.state.unit.sessions() as session:
        stored = session.execute(select(Upload).where(Upload.id == upload_id)).scalar_one()
        profile = json.loads(stored.profile_json)
    assert "sex" in profile["absent"] and profile["features"]["sex"] == 0
    assert "surname" not in profile["absent"] and profile["features"]["surname"] > 0
    page = httpx.get(f"{unit.url}/console/projects/{project}/uploads",
                     headers={"Authorization": f"Bearer {unit.admin_token}"})  # fmt: skip
    assert page.status_code == 200
    # The upload's row: its record count, then the coverage of each feature in schema order.
    row = page.text.split(upload_id, 1)[1].split("</tr>", 1)[0]
    cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', row)
    coverage = dict(zip(profile["features"], cells[1:], strict=False))
    assert coverage["sex"] == "absent"
    assert coverage["surname"].endswith("%") and coverage["postcode"].endswith("%")
