"""The unit under attack: malformed and oversized uploads, races, odd names, leaked tokens.

Each test plays a caller who does what the client never would — hand-made `.plk` files,
bodies without a length, two identical uploads at once, control characters in names — over
real HTTP against the embedded unit, and checks that the answer is a clear 4xx naming the
failed check (never a 500), that nothing is left on disk, and that no token is echoed.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from linkage_unit.client import UnitClient
from linkage_unit.embedded import EmbeddedUnit
from tests.linkage_unit.conftest import (
    PLK_PREFIX,
    Encoded,
    build_plk,
    plk_parts,
    plk_with,
    project_body,
)


def _malformed(plk: Path) -> dict[str, tuple[bytes, str]]:
    """Name → (body, a word the refusal must contain)."""
    header, bits = plk_parts(plk)
    good = plk.read_bytes()
    nan = json.dumps(header).replace(
        f'"record_count": {header["record_count"]}', '"record_count": NaN'
    )
    return {
        "truncated-prefix": (good[:5], "too short"),
        "truncated-bits": (good[:-7], "truncated"),
        "header-length-huge": (PLK_PREFIX.pack(b"PACELINK", 0xFFFFFFFF) + good[12:],
                               "header length"),
        "header-length-beyond-file": (PLK_PREFIX.pack(b"PACELINK", 1 << 20) + b"{}",
                                      "runs past the end of the file"),
        "header-not-an-object": (build_plk(b"[1, 2, 3]", bits), "header"),
        "header-not-json": (build_plk(b"{'a': 1", bits), "JSON"),
        "header-not-utf8": (build_plk(b'{"a": "\xff"}', bits), "JSON"),
        "record-count-lying": (plk_with(header, bits, record_count=header["record_count"] + 1),
                               "header describes"),
        "record-count-negative": (plk_with(header, bits, record_count=-1), "record_count"),
        "bit-length-zero": (plk_with(header, bits, bit_length=0), "bit_length"),
        "bit-length-not-bytes": (plk_with(header, bits, bit_length=1020), "bit_length"),
        "data-offset-beyond-file": (plk_with(header, bits, data_offset=4096 * 1000),
                                    "header describes"),
        "nan-in-json": (build_plk(nan.encode(), bits), "record_count"),
        "unknown-field": (plk_with(header, bits, surprise=1), "surprise"),
        "digest-lying": (plk_with(header, bits, content_digest="sha256:" + "0" * 64), "digest"),
    }  # fmt: skip


def _stored(unit: EmbeddedUnit) -> list[str]:
    """Files under incoming/ and the projects' folders (the salt excepted)."""
    root = unit.settings.data_dir
    return sorted(
        str(p.relative_to(root))
        for folder in ("incoming", "projects")
        for p in (root / folder).rglob("*")
        if p.is_file() and p.name != "salt"
    )


def _project(unit: EmbeddedUnit, encoded: Encoded, **overrides: Any) -> tuple[str, dict[str, str]]:
    with UnitClient(unit.url, unit.admin_token) as admin:
        created = admin.create_project(project_body(encoded.schema, **overrides))
    return created["project_id"], created["parties"]


def test_malformed_uploads_are_refused_cleanly(unit: EmbeddedUnit, encoded: Encoded) -> None:
    project, tokens = _project(unit, encoded)
    headers = {"Authorization": f"Bearer {tokens['council']}"}
    before = _stored(unit)
    for name, (body, word) in _malformed(encoded.partners["council"].plk).items():
        response = httpx.post(f"{unit.url}/projects/{project}/uploads", content=body,
                              headers=headers)  # fmt: skip
        assert response.status_code == 422, (name, response.status_code, response.text)
        detail = response.json()["detail"]
        assert detail.startswith("upload refused:"), (name, detail)
        assert word in detail, (name, detail)
        assert str(unit.settings.data_dir) not in detail
        assert _stored(unit) == before, name
    with UnitClient(unit.url, unit.admin_token) as admin:
        assert admin.uploads(project) == []
        refusals = [e for e in admin.audit(project) if e["action"] == "upload.refused"]
        assert len(refusals) == len(_malformed(encoded.partners["council"].plk))
        assert admin.verify_audit()["ok"]


@pytest.fixture
def small_unit(unit_with: Callable[..., EmbeddedUnit]) -> EmbeddedUnit:
    """A unit that accepts uploads of at most 2,000 bytes, without a worker."""
    return unit_with(max_upload_bytes=2000)


def test_upload_size_limit_with_and_without_content_length(
    small_unit: EmbeddedUnit, encoded: Encoded
) -> None:
    unit = small_unit
    project, tokens = _project(unit, encoded)
    headers = {"Authorization": f"Bearer {tokens['council']}"}
    body = encoded.partners["council"].plk.read_bytes()
    assert len(body) > 2000
    url = f"{unit.url}/projects/{project}/uploads"

    def chunked() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for start in range(0, len(body), 512):
            yield body[start : start + 512]

    for content in (body, chunked()):
        response = httpx.post(url, content=content, headers=headers)
        assert response.status_code == 413, response.text
        assert "larger than the unit accepts (2000 bytes)" in response.json()["detail"]
        assert _stored(unit) == []
    with UnitClient(unit.url, unit.admin_token) as admin:
        refusals = [e for e in admin.audit(project) if e["action"] == "upload.refused"]
    assert [e["detail"]["check"] for e in refusals] == ["size", "size"]


def test_concurrent_duplicate_uploads_accept_exactly_one(
    unit: EmbeddedUnit, encoded: Encoded
) -> None:
    project, tokens = _project(unit, encoded)
    body = encoded.partners["council"].plk.read_bytes()
    start = threading.Barrier(4)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def upload() -> None:
        start.wait()
        response = httpx.post(f"{unit.url}/projects/{project}/uploads", content=body,
                              headers={"Authorization": f"Bearer {tokens['council']}"},
                              timeout=60)  # fmt: skip
        with lock:
            results.append(response)

    threads = [threading.Thread(target=upload) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    codes = sorted(r.status_code for r in results)
    assert codes == [201, 409, 409, 409], [r.text for r in results]
    for response in results:
        if response.status_code == 409:
            assert "already uploaded" in response.json()["detail"]
    with UnitClient(unit.url, unit.admin_token) as admin:
        assert len(admin.uploads(project)) == 1
    # One upload's files: its encodings and its row keys.
    stored = sorted(Path(p).name for p in _stored(unit) if p.startswith("projects"))
    upload_id = stored[0].split(".")[0]
    assert stored == [f"{upload_id}.keys.npy", f"{upload_id}.plk"]
    assert not [p for p in _stored(unit) if p.startswith("incoming")]


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "PACE\nTayside"), ("name", "evil\x00name"), ("name", "\x1b[31mred"),
     ("purpose", "line one\rline two"), ("purpose", "tab\tis\x7f")],
)  # fmt: skip
def test_control_characters_in_project_text_are_refused(
    unit: EmbeddedUnit, encoded: Encoded, field: str, value: str
) -> None:
    response = httpx.post(f"{unit.url}/projects", json=project_body(encoded.schema,
                          **{field: value}),
                          headers={"Authorization": f"Bearer {unit.admin_token}"})  # fmt: skip
    assert response.status_code == 422, response.text
    assert field in response.text
    assert "control character" in response.text


@pytest.mark.parametrize(
    "party",
    ["../etc", "a/b", "-rm", ".hidden", "x" * 65, "new\nline", "nul\x00", "=cmd()", "é", ""],
)
def test_unsafe_party_names_are_refused(unit: EmbeddedUnit, encoded: Encoded, party: str) -> None:
    response = httpx.post(f"{unit.url}/projects",
                          json=project_body(encoded.schema, parties=["ok", party]),
                          headers={"Authorization": f"Bearer {unit.admin_token}"})  # fmt: skip
    assert response.status_code == 422, response.text
    assert "parties" in response.text


@pytest.mark.parametrize(
    "path",
    ["/projects/{pid}/runs/..%2F..%2Faudit", "/projects/{pid}/runs/%2e%2e",
     "/projects/{pid}/runs/x%00y", "/projects/{pid}/runs/" + "r" * 5000,
     "/projects/{pid}/releases/flags/..%2Fcouncil", "/projects/{pid}/releases/flags/%0a",
     "/projects/{pid}/releases/mapping?upload=..%2F..%2Fsalt",
     "/projects/{pid}/releases/mapping?upload=%00",
     "admin:/projects/x%00y", "admin:/projects/{pid}/runs/x%00y", "admin:/audit?project_id=%00",
     "admin:/projects/..%0a", "admin:/projects/" + "p" * 5000],
)  # fmt: skip
def test_path_like_identifiers_in_urls_are_harmless(
    unit: EmbeddedUnit, encoded: Encoded, path: str
) -> None:
    # NUL reaches PostgreSQL as a query parameter unless refused first (it cannot be stored
    # in text there, and psycopg raised: a 500).
    project, tokens = _project(
        unit, encoded, policy={"default_grants": ["mapping", "flags:council"]}
    )
    with UnitClient(unit.url, tokens["skills_agency"]) as party:
        party.upload(project, encoded.partners["skills_agency"].plk)
    token = tokens["skills_agency"]
    if path.startswith("admin:"):
        path, token = path.removeprefix("admin:"), unit.admin_token
    response = httpx.get(unit.url + path.format(pid=project),
                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert 400 <= response.status_code < 500, response.text
    assert str(unit.settings.data_dir) not in response.text


def test_tokens_never_reach_logs_or_answers(
    unit: EmbeddedUnit, encoded: Encoded, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    project, tokens = _project(unit, encoded)
    forged = "Zz9" * 15
    secrets_ = [unit.admin_token, forged, *tokens.values()]
    answers: list[str] = []
    for token in secrets_:
        for method, path in [("GET", f"/projects/{project}"), ("GET", "/audit"),
                             ("POST", f"/projects/{project}/uploads"),
                             ("GET", f"/projects/{project}/releases/scores"),
                             ("GET", f"/projects/{project}/runs/nothing")]:  # fmt: skip
            response = httpx.request(method, unit.url + path, content=b"x" * 10,
                                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            assert response.status_code < 500, response.text
            answers.append(response.text + json.dumps(dict(response.headers)))
    with UnitClient(unit.url, unit.admin_token) as admin:
        log = json.dumps(admin.audit())
    # What the unit logged (uvicorn, the app, the worker), not this test's own HTTP client.
    unit_log = "\n".join(r.getMessage() for r in caplog.records
                         if not r.name.startswith(("httpx", "httpcore")))  # fmt: skip
    assert unit_log or caplog.records  # something was captured at DEBUG
    for secret in secrets_:
        assert secret not in unit_log
        assert secret not in log
        assert not any(secret in a for a in answers)
