"""The partner and operator flow over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from encoder.encode import EncodeOptions, encode_file
from encoder.schema import parse_schema
from linkage_unit.client import UnitClient, UnitError
from linkage_unit.embedded import EmbeddedUnit
from linkage_unit.policy import WITHHELD
from tests.linkage_unit.service.conftest import PARTNERS, Encoded, project_body


def _rows(text: str) -> list[tuple[str, int, str]]:
    reader = csv.reader(io.StringIO(text))
    assert next(reader) in (["upload_id", "row", "linkage_id"], ["upload_id", "row", "flag"])
    return [(u, int(r), v) for u, r, v in reader]


def _keys(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as fh:
        return [r["local_id"] for r in csv.DictReader(fh)]


def _setup(unit: EmbeddedUnit, encoded: Encoded, **overrides: Any) -> tuple[str, dict[str, str]]:
    with UnitClient(unit.url, unit.admin_token) as admin:
        created = admin.create_project(project_body(encoded.schema, **overrides))
    return created["project_id"], created["parties"]


def _upload_all(unit: EmbeddedUnit, project: str, tokens: dict[str, str],
                encoded: Encoded) -> dict[str, str]:  # fmt: skip
    uploads = {}
    for name in PARTNERS:
        with UnitClient(unit.url, tokens[name]) as party:
            uploads[name] = party.upload(project, encoded.partners[name].plk)["id"]
    return uploads


def _run(unit: EmbeddedUnit, project: str, threshold: float | str | None = None) -> dict[str, Any]:
    with UnitClient(unit.url, unit.admin_token) as admin:
        run = admin.start_run(project, threshold)
        return admin.wait(project, run["id"], poll=0.05, timeout=120)


def test_whole_flow_links_partners_and_releases_by_policy(
    unit: EmbeddedUnit, encoded: Encoded
) -> None:
    project, tokens = _setup(unit, encoded)
    uploads = _upload_all(unit, project, tokens, encoded)
    run = _run(unit, project)
    assert run["status"] == "done", run
    assert run["threshold_method"].startswith("auto")
    assert run["summary"]["records"] > 0

    linked: dict[tuple[str, str], str] = {}
    for name in PARTNERS:
        with UnitClient(unit.url, tokens[name]) as party:
            rows = _rows(party.mapping(project))
        keys = _keys(encoded.partners[name].keys)
        assert [r for _, r, _ in rows] == list(range(len(keys)))
        assert {u for u, _, _ in rows} == {uploads[name]}
        linked.update({(name, keys[r]): i for _, r, i in rows})

    # Linkage quality against the ground truth: cross-partner pairs sharing an ID.
    def pairs(labels: dict[tuple[str, str], str]) -> set[tuple[Any, Any]]:
        groups: dict[str, list[tuple[str, str]]] = {}
        for record, label in labels.items():
            groups.setdefault(label, []).append(record)
        return {
            (a, b)
            for members in groups.values()
            for a, b in itertools.combinations(sorted(members), 2)
            if a[0] != b[0]
        }

    true = pairs({r: encoded.truth[r] for r in linked})
    found = pairs(linked)
    precision = len(true & found) / len(found)
    recall = len(true & found) / len(true)
    assert precision > 0.97 and recall > 0.85, (precision, recall)

    # Counts: every released number is 0, "<10" or a multiple of 5, and pairs agree with
    # the mapping (before rounding, within rounding).
    with UnitClient(unit.url, tokens["council"]) as council:
        counts = council.counts(project)
    assert counts["purpose"] == "testing"
    for row in counts["counts"]:
        for value in (row["count"], row["only"]):
            assert value in (0, "<10", WITHHELD) or (isinstance(value, int) and value % 5 == 0)
        assert row["count"] != WITHHELD  # only "only" figures are ever withheld
    by_party = {p: {i for (q, _), i in linked.items() if q == p} for p in PARTNERS}
    for row in counts["counts"]:
        if len(row["parties"]) == 2:
            a, b = row["parties"]
            exact = len(by_party[a] & by_party[b])
            assert abs(row["count"] - exact) <= 2, (row, exact)


def test_flags_only_where_granted(unit: EmbeddedUnit, encoded: Encoded) -> None:
    policy = {"grants": {"skills_agency": ["mapping", "flags:benefits_dept"],
                         "council": ["counts"]}}  # fmt: skip
    project, tokens = _setup(unit, encoded, policy=policy)
    _upload_all(unit, project, tokens, encoded)
    assert _run(unit, project)["status"] == "done"
    with UnitClient(unit.url, tokens["skills_agency"]) as skills:
        flags = _rows(skills.flags(project, "benefits_dept"))
        mapping = _rows(skills.mapping(project))
        with pytest.raises(UnitError) as refused:
            skills.counts(project)  # not in its grants
        assert refused.value.status == 403
        with pytest.raises(UnitError):
            skills.flags(project, "council")
    with UnitClient(unit.url, tokens["benefits_dept"]) as benefits:
        theirs = {i for _, _, i in _rows(benefits.mapping(project))}
    expected = [1 if i in theirs else 0 for _, _, i in mapping]
    assert [int(f) for _, _, f in flags] == expected
    assert 0 < sum(expected) < len(expected)
    with UnitClient(unit.url, tokens["council"]) as council:
        for fetch in (lambda: council.mapping(project),
                      lambda: council.flags(project, "benefits_dept")):  # fmt: skip
            with pytest.raises(UnitError) as exc:
                fetch()
            assert exc.value.status == 403
            assert "sharing policy does not release" in str(exc.value)


def test_wrong_schema_and_wrong_secret_are_refused_distinctly(
    unit: EmbeddedUnit, encoded: Encoded
) -> None:
    project, tokens = _setup(unit, encoded)
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
    project, tokens = _setup(unit, encoded, key_check_value=kcv)
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
    project, tokens = _setup(unit, encoded)
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


def test_incremental_batches_keep_linkage_ids(
    unit: EmbeddedUnit, encoded: Encoded, tmp_path: Path
) -> None:
    """A partner's new batch links into the existing entities; earlier IDs do not change."""
    project, tokens = _setup(unit, encoded, threshold=0.8)
    # First batch: two partners; the council's file arrives in two halves.
    council_csv = encoded.partners["council"].csv.read_text(encoding="utf-8").splitlines()
    half = len(council_csv) // 2
    parts = []
    for k, lines in enumerate(
        (council_csv[: half + 1], [council_csv[0], *council_csv[half + 1 :]])
    ):
        path = tmp_path / f"council-{k}.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        encode_file(path, parse_schema(encoded.schema), encoded.secret, tmp_path / f"c{k}.plk",
                    EncodeOptions(id_column="local_id"))  # fmt: skip
        parts.append(tmp_path / f"c{k}.plk")
    for name in ("skills_agency", "benefits_dept"):
        with UnitClient(unit.url, tokens[name]) as party:
            party.upload(project, encoded.partners[name].plk)
    with UnitClient(unit.url, tokens["council"]) as council:
        first = council.upload(project, parts[0])["id"]
    assert _run(unit, project)["status"] == "done"
    before = {}
    for name in ("skills_agency", "benefits_dept"):
        with UnitClient(unit.url, tokens[name]) as party:
            before[name] = _rows(party.mapping(project))
    with UnitClient(unit.url, tokens["council"]) as council:
        before["council"] = _rows(council.mapping(project, first))
        second = council.upload(project, parts[1])["id"]
        with pytest.raises(UnitError, match="not been linked yet"):
            council.mapping(project, second)
    run2 = _run(unit, project)
    assert run2["status"] == "done" and run2["summary"]["new_batches"] == 1
    after = {}
    for name in before:
        with UnitClient(unit.url, tokens[name]) as party:
            after[name] = _rows(party.mapping(project, first if name == "council" else None))
    ids_before = {i for rows in before.values() for _, _, i in rows}
    ids_after = {i for rows in after.values() for _, _, i in rows}
    changed = [(b[2], a[2]) for name in before
               for b, a in zip(before[name], after[name], strict=True) if a != b]  # fmt: skip
    # An ID changes only by a merge: a new record matched two existing entities, the
    # younger became an alias of the older. The old ID is then gone, the new one existed.
    for old, new in changed:
        assert old not in ids_after and new in ids_before, (old, new)
    merged = run2["summary"]["merged_entities"]
    assert len({old for old, _ in changed}) <= merged
    assert len(changed) <= 3 * merged  # an alias entity holds at most one record per party
    with UnitClient(unit.url, tokens["council"]) as council:
        second_rows = _rows(council.mapping(project, second))
    assert len(second_rows) > 0
    # A third run with nothing new changes nothing either.
    run3 = _run(unit, project)
    assert run3["summary"]["new_batches"] == 0
    with UnitClient(unit.url, tokens["council"]) as council:
        assert _rows(council.mapping(project, second)) == second_rows


def test_reuploading_the_same_file_is_refused(unit: EmbeddedUnit, encoded: Encoded) -> None:
    project, tokens = _setup(unit, encoded)
    with UnitClient(unit.url, tokens["council"]) as council:
        council.upload(project, encoded.partners["council"].plk)
        with pytest.raises(UnitError, match="already uploaded"):
            council.upload(project, encoded.partners["council"].plk)


def test_scores_for_the_operator(unit: EmbeddedUnit, encoded: Encoded) -> None:
    project, tokens = _setup(unit, encoded, threshold=0.8)
    _upload_all(unit, project, tokens, encoded)
    assert _run(unit, project)["status"] == "done"
    with UnitClient(unit.url, unit.admin_token) as admin:
        scores = admin.scores(project)
        entries = admin.audit(project)
    assert scores["threshold"] == 0.8
    assert len(scores["histogram"]) == len(scores["bin_edges"]) - 1
    assert sum(scores["histogram"]) > 0
    assert all(abs(p["score"] - 0.8) < 0.05 for p in scores["near_pairs"])
    assert entries[-1]["action"] == "release.scores"
    with UnitClient(unit.url, tokens["council"]) as council, pytest.raises(UnitError) as exc:
        council.scores(project)
    assert exc.value.status == 403


def test_releases_are_audited_with_policy(unit: EmbeddedUnit, encoded: Encoded) -> None:
    project, tokens = _setup(unit, encoded)
    _upload_all(unit, project, tokens, encoded)
    _run(unit, project)
    with UnitClient(unit.url, tokens["benefits_dept"]) as party:
        party.mapping(project)
        party.counts(project)
    with UnitClient(unit.url, unit.admin_token) as admin:
        entries = admin.audit(project)
        verdict = admin.verify_audit()
    releases = [e for e in entries if e["action"].startswith("release.")]
    assert [e["action"] for e in releases] == ["release.mapping", "release.counts"]
    for entry in releases:
        assert entry["actor"] == "party:benefits_dept"
        assert entry["detail"]["purpose"] == "testing"
        assert "default grant" in entry["policy"]
    assert verdict == {"ok": True, "entries": len(entries), "problems": []}


def test_run_needs_uploads_and_bad_threshold_is_refused(
    unit: EmbeddedUnit, encoded: Encoded
) -> None:
    project, _ = _setup(unit, encoded)
    with UnitClient(unit.url, unit.admin_token) as admin:
        with pytest.raises(UnitError, match="no party has uploaded"):
            admin.start_run(project)
        with pytest.raises(UnitError) as exc:
            admin.create_project(project_body(encoded.schema, parties=["a", "a"]))
        assert exc.value.status == 422
        with pytest.raises(UnitError, match="not a party"):
            admin.create_project(project_body(
                encoded.schema, policy={"grants": {"nobody": ["mapping"]}}))  # fmt: skip
        with pytest.raises(UnitError, match="operator only"):
            admin.create_project(project_body(
                encoded.schema, policy={"default_grants": ["scores"]}))  # fmt: skip
        bad_schema = json.loads(json.dumps(encoded.schema))
        bad_schema["clkConfig"]["l"] = "many"
        with pytest.raises(UnitError) as exc:
            admin.create_project(project_body(bad_schema))
        assert exc.value.status == 422 and "l" in str(exc.value)


def test_party_tokens_are_stored_only_as_hashes(unit: EmbeddedUnit, encoded: Encoded) -> None:
    _, tokens = _setup(unit, encoded)
    from sqlalchemy import select

    from linkage_unit.database import Party, make_engine, session_factory

    engine = make_engine(unit.settings.url())
    with session_factory(engine)() as session:
        stored = set(session.scalars(select(Party.token_hash)))
    engine.dispose()
    assert len(stored) == 3
    assert not stored & set(tokens.values())


def test_deleted_project_leaves_no_encodings(unit: EmbeddedUnit, encoded: Encoded) -> None:
    project, tokens = _setup(unit, encoded)
    _upload_all(unit, project, tokens, encoded)
    _run(unit, project)
    with UnitClient(unit.url, unit.admin_token) as admin:
        admin.delete_project(project)
        with pytest.raises(UnitError) as exc:
            admin.project(project)
        assert exc.value.status == 404
        entries = admin.audit(project)
    assert entries[-1]["action"] == "project.deleted"
    assert not (unit.settings.data_dir / "projects" / project).exists()
    samples = [np.asarray(memoryview(p.plk.read_bytes())[-256:]).tobytes()
               for p in encoded.partners.values()]  # fmt: skip
    for path in unit.settings.data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not any(s in content for s in samples), path
    with UnitClient(unit.url, tokens["council"]) as council, pytest.raises(UnitError) as gone:
        council.uploads(project)
    assert gone.value.status == 401  # the party's token went with the project


def test_two_projects_ids_for_the_same_people_cannot_be_joined(
    unit: EmbeddedUnit, encoded: Encoded
) -> None:
    mappings = []
    for _ in range(2):
        project, tokens = _setup(unit, encoded, threshold=0.8)
        _upload_all(unit, project, tokens, encoded)
        assert _run(unit, project)["status"] == "done"
        with UnitClient(unit.url, tokens["benefits_dept"]) as party:
            mappings.append([i for _, _, i in _rows(party.mapping(project))])
    first, second = mappings
    # The same rows are grouped the same way (same data, same rules) …
    assert len(set(first)) == len(set(second))
    # … under unrelated pseudonyms: not one ID in common.
    assert not set(first) & set(second)


def test_a_failed_run_reports_a_safe_error(unit: EmbeddedUnit, encoded: Encoded) -> None:
    project, tokens = _setup(unit, encoded, threshold=0.8)
    uploads = _upload_all(unit, project, tokens, encoded)
    stored = unit.settings.data_dir / "projects" / project / "uploads" / f"{uploads['council']}.plk"
    stored.chmod(0o600)
    stored.write_bytes(b"damaged on the unit's disk")
    run = _run(unit, project)
    assert run["status"] == "failed"
    assert run["error"] == f"the encodings of upload {uploads['council']} cannot be read"
    with UnitClient(unit.url, tokens["council"]) as council, pytest.raises(UnitError) as exc:
        council.mapping(project)
    assert exc.value.status == 409  # nothing released from a failed run
    with UnitClient(unit.url, unit.admin_token) as admin:
        actions = [e["action"] for e in admin.audit(project)]
    assert actions[-2:] == ["run.failed", "release.refused"]  # the 409 is audited too
    runs_dir = unit.settings.data_dir / "projects" / project / "runs"
    assert list(runs_dir.iterdir()) == []  # the failed run's partial outputs are gone


def test_results_pruned_under_a_request_answer_503_not_500(
    unit: EmbeddedUnit, encoded: Encoded
) -> None:
    project, tokens = _setup(unit, encoded, threshold=0.8)
    _upload_all(unit, project, tokens, encoded)
    run = _run(unit, project)
    # What a reader sees when a newer run completes and prunes this run's folder while
    # the reader's request is between reading the project and reading the files.
    shutil.rmtree(unit.settings.data_dir / "projects" / project / "runs" / run["id"])
    with UnitClient(unit.url, tokens["council"]) as council:
        for fetch in (lambda: council.mapping(project), lambda: council.counts(project)):
            with pytest.raises(UnitError) as exc:
                fetch()
            assert exc.value.status == 503 and "ask again" in str(exc.value)
