"""Runs over real HTTP: queued by the operator, linked by the worker, IDs kept across batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from encoder.encode import EncodeOptions, encode_file
from encoder.schema import parse_schema
from linkage_unit.client import UnitClient, UnitError
from linkage_unit.embedded import EmbeddedUnit
from tests.linkage_unit.conftest import (
    Encoded,
    project_body,
    release_rows,
    run_to_end,
    setup_project,
    upload_all,
)


def test_incremental_batches_keep_linkage_ids(
    unit: EmbeddedUnit, encoded: Encoded, tmp_path: Path
) -> None:
    """A partner's new batch links into the existing entities; earlier IDs do not change."""
    project, tokens = setup_project(unit, encoded, threshold=0.8)
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
    assert run_to_end(unit, project)["status"] == "done"
    before = {}
    for name in ("skills_agency", "benefits_dept"):
        with UnitClient(unit.url, tokens[name]) as party:
            before[name] = release_rows(party.mapping(project))
    with UnitClient(unit.url, tokens["council"]) as council:
        before["council"] = release_rows(council.mapping(project, first))
        second = council.upload(project, parts[1])["id"]
        with pytest.raises(UnitError, match="not been linked yet"):
            council.mapping(project, second)
    run2 = run_to_end(unit, project)
    assert run2["status"] == "done" and run2["summary"]["new_batches"] == 1
    after = {}
    for name in before:
        with UnitClient(unit.url, tokens[name]) as party:
            after[name] = release_rows(party.mapping(project, first if name == "council" else None))
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
        second_rows = release_rows(council.mapping(project, second))
    assert len(second_rows) > 0
    # A third run with nothing new changes nothing either.
    run3 = run_to_end(unit, project)
    assert run3["summary"]["new_batches"] == 0
    with UnitClient(unit.url, tokens["council"]) as council:
        assert release_rows(council.mapping(project, second)) == second_rows


def test_run_needs_uploads_and_bad_threshold_is_refused(
    unit: EmbeddedUnit, encoded: Encoded
) -> None:
    project, _ = setup_project(unit, encoded)
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


def test_a_failed_run_reports_a_safe_error(unit: EmbeddedUnit, encoded: Encoded) -> None:
    project, tokens = setup_project(unit, encoded, threshold=0.8)
    uploads = upload_all(unit, project, tokens, encoded)
    stored = unit.settings.data_dir / "projects" / project / "uploads" / f"{uploads['council']}.plk"
    stored.chmod(0o600)
    stored.write_bytes(b"damaged on the unit's disk")
    run = run_to_end(unit, project)
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
