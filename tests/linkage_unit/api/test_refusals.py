"""Refused requests are audited: one entry each, who asked for what and why, chain intact.

Every kind of refusal is made over real HTTP against the embedded unit (SQLite and
PostgreSQL); after each the audit log must hold exactly one new entry with the right
actor, action, status and failed check, holding no token, and ``audit.verify`` must still
pass. Unauthenticated requests are counted, at most one entry per window.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from linkage_unit.client import UnitClient
from linkage_unit.embedded import EmbeddedUnit
from tests.linkage_unit.conftest import Encoded, plk_parts, plk_with, project_body

Call = tuple[str, str, str | None, dict[str, Any]]


def _ask(unit: EmbeddedUnit, method: str, path: str, token: str | None,
         **kwargs: Any) -> httpx.Response:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kwargs.pop("headers", None) or {})
    return httpx.request(method, unit.url + path, headers=headers, **kwargs)


def _new_entries(unit: EmbeddedUnit, after: int) -> list[dict[str, Any]]:
    with UnitClient(unit.url, unit.admin_token) as admin:
        return admin.audit(after=after)


def _last_seq(unit: EmbeddedUnit) -> int:
    entries = _new_entries(unit, 0)
    return int(entries[-1]["seq"]) if entries else 0


def test_every_refusal_is_audited_once(unit: EmbeddedUnit, encoded: Encoded) -> None:
    policy = {"grants": {"council": ["counts"]}}
    with UnitClient(unit.url, unit.admin_token) as admin:
        created = admin.create_project(project_body(encoded.schema, policy=policy))
        other = admin.create_project(project_body(encoded.schema, parties=["x", "y"]))
    pid, tokens = created["project_id"], created["parties"]
    skills, council = tokens["skills_agency"], tokens["council"]
    plk = encoded.partners["council"].plk
    secrets_seen = [unit.admin_token, *tokens.values(), *other["parties"].values()]

    def refused(method: str, path: str, token: str | None, status: int, *, actor: str,
                action: str, check: str, **kwargs: Any) -> dict[str, Any]:  # fmt: skip
        before = _last_seq(unit)
        response = _ask(unit, method, path.format(pid=pid), token, **kwargs)
        assert response.status_code == status, (method, path, response.text)
        entries = _new_entries(unit, before)
        assert len(entries) == 1, (method, path, entries)
        (entry,) = entries
        assert (entry["actor"], entry["action"]) == (actor, action), entry
        assert entry["detail"]["status"] == status
        assert entry["detail"]["check"] == check, entry
        assert entry["detail"]["reason"] == response.json()["detail"]
        text = json.dumps(entry)
        assert not any(s in text for s in secrets_seen), "a token reached the audit log"
        assert str(unit.settings.data_dir) not in text
        return entry

    # Releases refused because of state: nothing uploaded, nothing linked, no run.
    entry = refused(
        "GET",
        "/projects/{pid}/releases/mapping",
        skills,
        409,
        actor="party:skills_agency",
        action="release.refused",
        check="no uploads",
    )
    assert entry["detail"]["release"] == "mapping"
    assert entry["project_id"] == pid
    assert entry["detail"]["route"] == "GET /projects/{project_id}/releases/mapping"
    with UnitClient(unit.url, council) as party:
        first = party.upload(pid, plk)["id"]
    with UnitClient(unit.url, skills) as party:
        party.upload(pid, encoded.partners["skills_agency"].plk)
    actors = {skills: "party:skills_agency", council: "party:council", unit.admin_token: "admin"}
    # Then refused for state, by the policy, to the operator, and scores to a party.
    releases = [
        ("mapping", skills, 409, "not linked"),
        ("counts", council, 409, "no completed run"),
        ("mapping", council, 403, "policy"),
        ("flags/skills_agency", council, 403, "policy"),
        ("mapping", unit.admin_token, 403, "parties only"),
        ("scores", council, 403, "operator only"),
    ]
    for release, token, status, check in releases:
        entry = refused("GET", f"/projects/{{pid}}/releases/{release}", token, status,
                        actor=actors[token], action="release.refused", check=check)  # fmt: skip
        assert entry["detail"]["release"] == release.replace("/", ":")
    # Uploads: every check.
    header, bits = plk_parts(plk)
    half = header["bit_length"] // 16  # bytes per row of filters half as long
    width = header["bit_length"] // 8
    rows = b"".join(bits[i : i + half] for i in range(0, len(bits), width))
    short = plk_with(header, rows, bit_length=half * 8,
                     content_digest="sha256:" + hashlib.sha256(rows).hexdigest())  # fmt: skip
    empty = plk_with(header, b"", record_count=0,
                     content_digest="sha256:" + hashlib.sha256(b"").hexdigest())  # fmt: skip
    octets = {"Content-Type": "application/octet-stream"}
    damaged = {"X-Content-SHA256": "0" * 64}
    uploads: list[tuple[str | None, int, str, bytes, dict[str, str] | None]] = [
        (council, 422, "format", b"PACELINK", octets),
        (council, 409, "schema", encoded.other_schema_plk.read_bytes(), None),
        (council, 409, "secret", encoded.other_secret_plk.read_bytes(), None),
        (council, 409, "duplicate", plk.read_bytes(), None),
        (council, 409, "bit length", short, None),
        (council, 422, "record count", empty, None),
        (council, 422, "transfer digest", plk.read_bytes(), damaged),
        (unit.admin_token, 403, "parties only", plk.read_bytes(), None),
    ]
    for token, status, check, content, headers in uploads:
        entry = refused("POST", "/projects/{pid}/uploads", token, status,
                        actor=actors[token],
                        action="upload.refused", check=check, content=content,
                        headers=headers)  # fmt: skip
        if check == "duplicate":
            assert entry["detail"]["duplicate_of"] == first
    # Another project's token, and a party calling the operator's endpoints.
    entry = refused(
        "GET",
        "/projects/{pid}",
        other["parties"]["x"],
        403,
        actor="party:x",
        action="access.refused",
        check="project membership",
    )
    assert entry["project_id"] == pid
    assert entry["detail"]["caller_project"] == other["project_id"]
    refused(
        "POST",
        "/projects/{pid}/runs",
        council,
        403,
        actor="party:council",
        action="access.refused",
        check="operator only",
        json={},
    )
    refused(
        "GET",
        "/audit",
        council,
        403,
        actor="party:council",
        action="access.refused",
        check="operator only",
    )
    refused(
        "DELETE",
        "/projects/{pid}",
        council,
        403,
        actor="party:council",
        action="access.refused",
        check="operator only",
    )
    entry = refused(
        "GET",
        "/projects/0123456789abcdef",
        council,
        403,
        actor="party:council",
        action="access.refused",
        check="project membership",
    )
    assert entry["project_id"] is None and entry["detail"]["project"] == "unknown"
    # A project ID of the caller's invention is not copied into the log.
    entry = refused(
        "GET",
        "/projects/..%0aevil%00",
        council,
        403,
        actor="party:council",
        action="access.refused",
        check="project membership",
    )
    assert "evil" not in json.dumps(entry)
    # Unauthenticated: the first in a window is written, with how many were refused.
    entry = refused(
        "GET",
        "/projects",
        None,
        401,
        actor="anonymous",
        action="auth.refused",
        check="missing token",
    )
    assert entry["detail"]["refused_since_last_entry"] == 1

    with UnitClient(unit.url, unit.admin_token) as admin:
        report = admin.verify_audit()
    assert report["ok"], report


@pytest.fixture
def quick_window_unit(unit_with: Callable[..., EmbeddedUnit]) -> EmbeddedUnit:
    """A unit that writes an entry for unauthenticated refusals at most every 4 s.

    Twenty refused requests take well under a second, on a loaded machine up to two.
    """
    return unit_with(anonymous_audit_seconds=4.0)


def test_unauthenticated_refusals_are_counted_not_flooded(
    quick_window_unit: EmbeddedUnit,
) -> None:
    unit = quick_window_unit
    forged = "f" * 43
    for token in [None, forged] * 10:
        assert _ask(unit, "GET", "/projects", token).status_code == 401
    entries = [e for e in _new_entries(unit, 0) if e["action"] == "auth.refused"]
    assert len(entries) == 1  # twenty refusals, one entry
    assert entries[0]["actor"] == "anonymous"
    assert entries[0]["detail"]["refused_since_last_entry"] == 1
    time.sleep(4.1)
    assert _ask(unit, "GET", "/audit", forged).status_code == 401
    entries = [e for e in _new_entries(unit, 0) if e["action"] == "auth.refused"]
    assert len(entries) == 2
    # The 19 held back in the window, and this one.
    assert entries[1]["detail"]["refused_since_last_entry"] == 20
    assert entries[1]["detail"]["check"] == "invalid token"
    assert forged not in json.dumps(entries)
    with UnitClient(unit.url, unit.admin_token) as admin:
        assert admin.verify_audit()["ok"]
