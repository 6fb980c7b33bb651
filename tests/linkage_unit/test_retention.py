"""Deleting projects: when the retention period is over, and on the operator's request.

Deletion must leave no byte of a project's encodings anywhere under the data folder (an
upload holds them until a run has linked it, the entity index from then on), remove its
rows, spare other projects, and leave the audit trail — including the deletion itself —
intact.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from encoder.fileformat import read_encodings
from linkage_unit.client import UnitClient, UnitError
from linkage_unit.database import AuditEntry, Party, Project, Run, Upload, make_engine, now
from linkage_unit.embedded import EmbeddedUnit
from tests.linkage_unit.conftest import Encoded, linked_project, project_body


def _needles(plk: Path) -> list[bytes]:
    """64-byte slices of a file's encodings, from eight rows spread from first to last.

    Each slice lies inside one record's filter, so it is found wherever that record's bits
    are stored contiguously (the upload itself, the entity index's bit matrix), whatever
    order the rows are kept in.
    """
    bits = read_encodings(plk).bits
    assert bits.shape[1] >= 96
    rows = sorted({round(k * (len(bits) - 1) / 7) for k in range(8)})
    return [bits[r, 32:96].tobytes() for r in rows]


def _holders(data_dir: Path, needles: list[bytes]) -> set[Path]:
    """Every file under the data folder (hidden ones included) holding any of the needles."""
    found = set()
    for root, _, files in os.walk(data_dir):
        for name in files:
            path = Path(root, name)
            content = path.read_bytes()
            if any(needle in content for needle in needles):
                found.add(path.relative_to(data_dir))
    return found


def _exists(admin: UnitClient, project_id: str) -> bool:
    """Whether the unit still has the project (404 means it does not)."""
    try:
        admin.project(project_id)
    except UnitError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _rows(engine: Engine, project_id: str) -> dict[str, int]:
    """The project's rows in each table that holds them."""
    counts = {
        "projects": select(func.count()).where(Project.id == project_id),
        "parties": select(func.count()).where(Party.project_id == project_id),
        "uploads": select(func.count()).where(Upload.project_id == project_id),
        "runs": select(func.count()).where(Run.project_id == project_id),
    }
    with engine.connect() as conn:
        return {table: conn.execute(query).scalar_one() for table, query in counts.items()}


def _check_erased(data_dir: Path, engine: Engine, project_id: str, needles: list[bytes]) -> None:
    assert _rows(engine, project_id) == {"projects": 0, "parties": 0, "uploads": 0, "runs": 0}
    assert not (data_dir / "projects" / project_id).exists()
    assert [p.name for p in (data_dir / "projects").iterdir() if project_id in p.name] == []
    assert _holders(data_dir, needles) == set()


def _deletion_entry(admin: UnitClient, project_id: str) -> dict[str, Any]:
    """The project's audit entries must survive it; returns the last, which deleted it."""
    entries = admin.audit(project_id)
    actions = [e["action"] for e in entries]
    assert actions[0] == "project.created"
    assert actions.count("upload.accepted") == 3
    assert "run.done" in actions and "release.mapping" in actions
    assert actions[-1] == "project.deleted" and actions.count("project.deleted") == 1
    assert admin.verify_audit()["ok"], admin.verify_audit()
    return entries[-1]


@pytest.fixture
def engine(database_url: str | None, tmp_path: Path) -> Iterator[Engine]:
    """A direct line to the unit's database (the tests' units live in ``tmp_path/unit``)."""
    url = database_url or f"sqlite:///{tmp_path / 'unit' / 'unit.db'}"
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_expired_project_is_purged_by_the_worker(
    tmp_path: Path, database_url: str | None, encoded: Encoded, engine: Engine
) -> None:
    data_dir = tmp_path / "unit"
    with EmbeddedUnit(data_dir, database_url=database_url, heartbeat_seconds=0.2,
                      stale_after_seconds=10.0, poll_seconds=0.05,
                      retention_check_seconds=0.2) as unit:  # fmt: skip
        doomed, tokens = linked_project(unit, encoded, retention_days=1)
        needles = [n for p in encoded.partners.values() for n in _needles(p.plk)]
        # Another project, not expired, with encodings of its own: it must survive.
        with UnitClient(unit.url, unit.admin_token) as admin:
            kept = admin.create_project(project_body(encoded.schema, retention_days=1))
        with UnitClient(unit.url, kept["parties"]["council"]) as party:
            kept_upload = party.upload(kept["project_id"], encoded.other_secret_plk)
        kept_needles = _needles(encoded.other_secret_plk)

        # The scan finds the encodings while they are meant to be there: in the run's
        # entity index (the linked uploads' own files are gone).
        held = _holders(data_dir, needles)
        assert {p.parts[2] for p in held} == {"runs"}, held
        assert all(p.parts[:2] == ("projects", doomed) for p in held), held
        assert _rows(engine, doomed) == {"projects": 1, "parties": 3, "uploads": 3, "runs": 1}

        # Still inside its retention period: the worker leaves it alone.
        time.sleep(0.6)  # three retention checks
        with UnitClient(unit.url, unit.admin_token) as admin:
            assert _exists(admin, doomed)
        # One day has passed, as far as the unit can tell.
        with engine.begin() as conn:
            conn.execute(update(Project).where(Project.id == doomed).values(expires_at=now() - 1))

        with UnitClient(unit.url, unit.admin_token) as admin:
            deadline = time.monotonic() + 60
            while _exists(admin, doomed):
                assert time.monotonic() < deadline, "the worker did not purge the project"
                time.sleep(0.05)

            _check_erased(data_dir, engine, doomed, needles)
            entry = _deletion_entry(admin, doomed)
            assert entry["actor"] == "system"
            assert entry["detail"]["reason"] == "retention period over"
            assert entry["detail"]["had_uploads"] is True

            assert admin.project(kept["project_id"])["id"] == kept["project_id"]
            assert [u["id"] for u in admin.uploads(kept["project_id"])] == [kept_upload["id"]]
        assert _holders(data_dir, kept_needles) == {
            Path("projects", kept["project_id"], "uploads", f"{kept_upload['id']}.plk")
        }
        # The deleted parties' tokens no longer open anything.
        with UnitClient(unit.url, tokens["council"]) as party, pytest.raises(UnitError) as err:
            party.project(doomed)
        assert err.value.status == 401


def test_operator_deletion_erases_encodings_and_keeps_the_audit(
    unit: EmbeddedUnit, encoded: Encoded, engine: Engine
) -> None:
    data_dir = unit.settings.data_dir
    project_id, _ = linked_project(unit, encoded)
    needles = [n for p in encoded.partners.values() for n in _needles(p.plk)]
    held = _holders(data_dir, needles)  # the scan finds them while they should be there
    assert {p.parts[:3] for p in held} == {("projects", project_id, "runs")}, held

    with UnitClient(unit.url, unit.admin_token) as admin:
        admin.delete_project(project_id)
        _check_erased(data_dir, engine, project_id, needles)
        entry = _deletion_entry(admin, project_id)
    assert entry["actor"] == "admin"
    assert entry["detail"]["reason"] == "deleted by the operator"
    with engine.connect() as conn:
        kept = conn.scalars(select(AuditEntry.detail_json).where(
            AuditEntry.project_id == project_id, AuditEntry.action == "upload.accepted"
        )).all()  # fmt: skip
    assert sorted(json.loads(d)["records"] for d in kept) == sorted(
        len(read_encodings(p.plk).bits) for p in encoded.partners.values()
    )
