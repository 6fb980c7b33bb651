"""The unit's queries on a migrated SQLite database: what each answers, and its compare-and-sets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from linkage_unit import audit, repository
from linkage_unit.database import Project, Upload, make_engine, migrate, now, session_factory

KEY = b"k" * 32


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'unit.db'}")
    migrate(engine)
    with session_factory(engine)() as s:
        yield s
    engine.dispose()


def _project(session: Session, project_id: str, parties: tuple[str, ...]) -> Project:
    project = Project(
        id=project_id, name="p", purpose="testing", schema_json="{}", schema_fingerprint="f",
        bit_length=1024, policy_json="{}", threshold="auto", duplicates="forbid",
        retention_days=1, created_at=now(), expires_at=now() + 86_400,
    )  # fmt: skip
    repository.add_project(session, project, {name: f"{project_id}-{name}" for name in parties})
    session.commit()
    return project


def _upload(session: Session, project_id: str, party_id: int, seq: int, kind: str) -> Upload:
    upload = Upload(
        id=f"{project_id[:8]}{seq:08d}", project_id=project_id, party_id=party_id, seq=seq,
        kind=kind, record_count=10, content_digest=f"sha256:{seq}", size_bytes=1,
        created_at=now(),
    )  # fmt: skip
    session.add(upload)
    session.commit()
    return upload


def test_parties_keep_their_order_and_tokens_find_them(session: Session) -> None:
    _project(session, "a" * 16, ("council", "agency", "college"))
    assert repository.party_names(session, "a" * 16) == ["council", "agency", "college"]
    assert [p.position for p in repository.parties(session, "a" * 16)] == [0, 1, 2]
    found = repository.party_by_token_hash(session, f"{'a' * 16}-agency")
    assert found is not None and found.name == "agency"
    assert repository.party_by_token_hash(session, "nobody") is None
    assert repository.party_counts(session) == {"a" * 16: 3}


def test_upload_sequence_and_pending_withdrawals(session: Session) -> None:
    project = _project(session, "b" * 16, ("one", "two"))
    one, two = repository.parties(session, project.id)
    assert repository.upload_seq_high(session, project.id) is None
    assert repository.next_upload_seq(session, project.id) == 1
    _upload(session, project.id, one.id, 1, "snapshot")
    _upload(session, project.id, two.id, 2, "snapshot")
    withdrawal = _upload(session, project.id, one.id, 3, "withdrawal")
    assert repository.next_upload_seq(session, project.id) == 4
    assert repository.count_deliveries(session, one.id) == 1
    assert repository.pending_withdrawal(session, project.id) == withdrawal.id
    assert [u.seq for u in repository.uploads(session, project.id, one.id)] == [1, 3]
    assert [n for _, n in repository.uploads_with_party(session, project.id)] == [
        "one", "two", "one",
    ]  # fmt: skip
    assert [u.seq for u in repository.uploads_through(session, project.id, 2)] == [1, 2]
    assert repository.deliveries_total(session) == {project.id: 20}
    repository.mark_linked(session, [withdrawal.id], "r" * 16)
    session.commit()
    assert repository.pending_withdrawal(session, project.id) is None


def test_a_withdrawal_joins_a_waiting_run_or_queues_one(session: Session) -> None:
    project = _project(session, "c" * 16, ("one",))
    first = repository.queue_withdrawal_run(session, project.id, 1)
    session.commit()
    assert repository.queue_withdrawal_run(session, project.id, 2) == first  # still waiting
    session.commit()
    run = repository.find_run(session, project.id, first)
    assert run is not None and run.through_seq == 2
    assert repository.update_claimed_run(session, first, None, status="queued",
                                         values={"status": "running", "claim": "x"})  # fmt: skip
    session.commit()
    second = repository.queue_withdrawal_run(session, project.id, 3)  # the first is running
    session.commit()
    assert second != first
    assert next(r.id for r in repository.runs(session, project.id, newest_first=True)) == second
    assert repository.find_run(session, "d" * 16, first) is None  # another project's


def test_a_claim_is_a_compare_and_set(session: Session) -> None:
    project = _project(session, "e" * 16, ("one",))
    run = repository.queue_run(session, project.id, 1, None)
    session.commit()
    assert repository.update_claimed_run(session, run.id, None, values={"claim": "mine"})
    assert not repository.update_claimed_run(session, run.id, None, values={"claim": "theirs"})
    assert not repository.update_claimed_run(session, run.id, "theirs", values={"stage": "x"})
    assert repository.update_claimed_run(session, run.id, "mine", values={"stage": "linking"})
    session.commit()
    assert [r[0] for r in repository.runnable_runs(session)] == [run.id]


def test_audit_entries_by_project_action_and_order(session: Session) -> None:
    for n, (action, project_id) in enumerate(
        [
            ("project.created", "p1"),
            ("release.counts", "p1"),
            ("release.counts", "p2"),
            ("releasex.other", "p1"),
            ("release.mapping", "p1"),
        ]
    ):
        audit.append(session, KEY, actor="admin", action=action, project_id=project_id,
                     detail={"n": n})  # fmt: skip
    session.commit()
    assert [e.seq for e in repository.audit_entries(session, after=3)] == [4, 5]
    assert [e.seq for e in repository.audit_entries(session, project_id="p2")] == [3]
    releases = repository.audit_entries(session, project_id="p1", action_prefix="release.",
                                        newest_first=True)  # fmt: skip
    assert [e.seq for e in releases] == [5, 2]
    assert [e.seq for e in repository.audit_entries(session, before=3, newest_first=True,
                                                    limit=1)] == [2]  # fmt: skip


def test_deleting_a_project_keeps_its_audit_and_says_whether_it_held_data(
    session: Session,
) -> None:
    empty = _project(session, "f" * 16, ("one",))
    full = _project(session, "9" * 16, ("one",))
    (party,) = repository.parties(session, full.id)
    _upload(session, full.id, party.id, 1, "snapshot")
    audit.append(session, KEY, actor="admin", action="project.created", project_id=full.id)
    assert repository.delete_project_rows(session, empty) is False
    assert repository.delete_project_rows(session, full) is True
    session.commit()
    assert repository.projects(session) == []
    assert repository.uploads(session, full.id) == []
    assert len(repository.audit_entries(session, project_id=full.id)) == 1
    assert repository.expired_project_ids(session, now() + 10 * 86_400) == []
