"""The unit's queries: every read and write of projects, parties, uploads and runs, by resource.

Route functions (:mod:`linkage_unit.api`), the console and the worker ask these functions
instead of writing SQL, so each question about the unit's state is asked in one place and
the same way everywhere. Each takes the caller's SQLAlchemy ``Session`` and returns ORM
rows (sessions keep them usable after commit) or plain values; none commits: the caller
owns the transaction, so a route's rows and its audit entry land together or not at all.
HTTP concerns (status codes, who may ask) stay with the callers.

The audit log's own reads and writes live in :mod:`linkage_unit.audit`.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, Result, delete, func, or_, select, update
from sqlalchemy.orm import Session

from linkage_unit.database import AuditEntry, Party, Project, Run, Upload, now

__all__ = [
    "add_project",
    "add_upload",
    "audit_entries",
    "count_deliveries",
    "delete_project_rows",
    "deliveries_total",
    "done_runs",
    "duplicate_upload",
    "expired_project_ids",
    "find_party",
    "find_project",
    "find_run",
    "linked_deliveries",
    "mark_linked",
    "new_run",
    "next_upload_seq",
    "parties",
    "party_by_name",
    "party_by_token_hash",
    "party_counts",
    "party_names",
    "party_with_record_key",
    "pending_withdrawal",
    "projects",
    "queue_run",
    "queue_withdrawal_run",
    "runnable_runs",
    "runs",
    "update_claimed_run",
    "upload_seq_high",
    "uploads",
    "uploads_through",
    "uploads_with_party",
]

# ----------------------------------------------------------------------------- projects


def find_project(session: Session, project_id: str, *, for_update: bool = False) -> Project | None:
    """The project, or None; ``for_update`` locks its row until the transaction ends."""
    query = select(Project).where(Project.id == project_id)
    if for_update:
        query = query.with_for_update()
    return session.scalar(query)


def add_project(session: Session, project: Project, token_hashes: dict[str, str]) -> None:
    """Add a new project with its parties (``token_hashes``: name → token hash, in order)."""
    session.add(project)
    session.flush()  # the parties' rows refer to it
    for position, (name, token_hash) in enumerate(token_hashes.items()):
        session.add(Party(project_id=project.id, name=name, position=position,
                          token_hash=token_hash))  # fmt: skip


def projects(session: Session, *, order_by: str = "created_at") -> Sequence[Project]:
    """Every project, by creation time (or ``expires_at``: by retention deadline)."""
    column = Project.expires_at if order_by == "expires_at" else Project.created_at
    return session.scalars(select(Project).order_by(column)).all()


def expired_project_ids(session: Session, at: float) -> list[str]:
    """The projects whose retention period was over at ``at``."""
    return list(session.scalars(select(Project.id).where(Project.expires_at < at)))


def delete_project_rows(session: Session, project: Project) -> bool:
    """Delete the project's rows (uploads, runs, parties, itself).

    The audit entries stay: they are never deleted.

    Returns:
        Whether the project had uploads (for the audit entry of the deletion).
    """
    had_uploads = (
        session.scalar(select(Upload.id).where(Upload.project_id == project.id).limit(1))
        is not None
    )
    for table in (Upload, Run, Party):
        session.execute(delete(table).where(table.project_id == project.id))
    session.delete(project)
    return had_uploads


# ----------------------------------------------------------------------------- parties


def parties(session: Session, project_id: str) -> Sequence[Party]:
    """The project's parties in their order (a party's position is its index)."""
    return session.scalars(
        select(Party).where(Party.project_id == project_id).order_by(Party.position)
    ).all()


def find_party(session: Session, party_id: int, *, for_update: bool = False) -> Party | None:
    """The party, or None; ``for_update`` locks its row until the transaction ends."""
    return session.get(Party, party_id, with_for_update=for_update)


def party_names(session: Session, project_id: str) -> list[str]:
    """The names of the project's parties, in their order."""
    return list(
        session.scalars(
            select(Party.name).where(Party.project_id == project_id).order_by(Party.position)
        )
    )


def party_counts(session: Session) -> dict[str, int]:
    """How many parties each project has."""
    rows = session.execute(
        select(Party.project_id, func.count(Party.id)).group_by(Party.project_id)
    )
    return {project_id: int(n) for project_id, n in rows}


def party_by_name(session: Session, project_id: str, name: str) -> Party | None:
    """The project's party called ``name``, or None."""
    return session.scalar(select(Party).where(Party.project_id == project_id, Party.name == name))


def party_by_token_hash(session: Session, token_hash: str) -> Party | None:
    """The party whose token hashes to ``token_hash``, or None."""
    return session.scalar(select(Party).where(Party.token_hash == token_hash))


def party_with_record_key(session: Session, party: Party, check_value: str) -> int | None:
    """Another party of ``party``'s project whose record key has ``check_value``, if any."""
    return session.scalar(
        select(Party.id).where(
            Party.project_id == party.project_id,
            Party.id != party.id,
            Party.record_key_check == check_value,
        )
    )


# ----------------------------------------------------------------------------- uploads


def upload_seq_high(session: Session, project_id: str) -> int | None:
    """The sequence number of the project's latest upload, or None before the first."""
    return session.scalar(select(func.max(Upload.seq)).where(Upload.project_id == project_id))


def next_upload_seq(session: Session, project_id: str) -> int:
    """The sequence number the project's next upload (or withdrawal) gets."""
    return (upload_seq_high(session, project_id) or 0) + 1


def add_upload(
    session: Session, party: Party, seq: int, kind: str, *, record_count: int,
    content_digest: str, size_bytes: int, profile_json: str | None = None,
) -> Upload:  # fmt: skip
    """Record a new batch of ``party`` (an encoding file or a withdrawal) under a fresh ID.

    Args:
        session: The caller's session.
        party: Whose batch it is.
        seq: Its sequence number in the project (:func:`next_upload_seq`).
        kind: ``snapshot``, ``delta`` or ``withdrawal``.
        record_count: How many records (or record keys) it holds.
        content_digest: ``sha256:`` and the hex digest of its content.
        size_bytes: Its size as received.
        profile_json: What the console shows of it (encoding files only).
    """
    upload = Upload(
        id=secrets.token_hex(8), project_id=party.project_id, party_id=party.id, seq=seq,
        kind=kind, record_count=record_count, content_digest=content_digest,
        size_bytes=size_bytes, created_at=now(), profile_json=profile_json,
    )  # fmt: skip
    session.add(upload)
    return upload


def count_deliveries(session: Session, party_id: int) -> int:
    """How many encoding files (snapshots and deltas) the party has uploaded."""
    count = session.scalar(
        select(func.count())
        .select_from(Upload)
        .where(Upload.party_id == party_id, Upload.kind != "withdrawal")
    )
    return int(count or 0)


def deliveries_total(session: Session) -> dict[str, int]:
    """Records delivered per project (withdrawals not counted)."""
    rows = session.execute(
        select(Upload.project_id, func.sum(Upload.record_count))
        .where(Upload.kind != "withdrawal")
        .group_by(Upload.project_id)
    )
    return {project_id: int(n) for project_id, n in rows}


def duplicate_upload(session: Session, party_id: int, content_digest: str) -> str | None:
    """The party's earlier upload with this content digest, if any."""
    return session.scalar(
        select(Upload.id).where(
            Upload.party_id == party_id, Upload.content_digest == content_digest
        )
    )


def uploads(session: Session, project_id: str, party_id: int | None = None) -> Sequence[Upload]:
    """The project's uploads (or one party's) in upload order, withdrawals included."""
    query = select(Upload).where(Upload.project_id == project_id).order_by(Upload.seq)
    if party_id is not None:
        query = query.where(Upload.party_id == party_id)
    return session.scalars(query).all()


def uploads_with_party(
    session: Session, project_id: str, party_id: int | None = None
) -> list[tuple[Upload, str]]:
    """The project's uploads (or one party's) in upload order, each with its party's name."""
    query = (
        select(Upload, Party.name)
        .join(Party, Upload.party_id == Party.id)
        .where(Upload.project_id == project_id)
        .order_by(Upload.seq)
    )
    if party_id is not None:
        query = query.where(Upload.party_id == party_id)
    return [(upload, name) for upload, name in session.execute(query).all()]


def uploads_through(session: Session, project_id: str, seq: int) -> Sequence[Upload]:
    """The project's uploads up to and including sequence number ``seq``, in order."""
    return session.scalars(
        select(Upload)
        .where(Upload.project_id == project_id, Upload.seq <= seq)
        .order_by(Upload.seq)
    ).all()


def linked_deliveries(session: Session, party_id: int) -> list[str]:
    """The IDs of the party's encoding files that a run has linked."""
    return list(
        session.scalars(
            select(Upload.id).where(
                Upload.party_id == party_id,
                Upload.linked_run_id.is_not(None),
                Upload.kind != "withdrawal",
            )
        )
    )


def pending_withdrawal(session: Session, project_id: str) -> str | None:
    """A withdrawal of the project that no run has applied yet, if any."""
    return session.scalar(
        select(Upload.id)
        .where(
            Upload.project_id == project_id,
            Upload.kind == "withdrawal",
            Upload.linked_run_id.is_(None),
        )
        .limit(1)
    )


def mark_linked(session: Session, upload_ids: Sequence[str], run_id: str) -> None:
    """Record that ``run_id`` linked these uploads."""
    if upload_ids:
        session.execute(
            update(Upload).where(Upload.id.in_(upload_ids)).values(linked_run_id=run_id)
        )


# ----------------------------------------------------------------------------- runs


def find_run(session: Session, project_id: str, run_id: str) -> Run | None:
    """The project's run ``run_id``, or None (also when it belongs to another project)."""
    run = session.get(Run, run_id)
    return run if run is not None and run.project_id == project_id else None


def runs(session: Session, project_id: str, *, newest_first: bool = False) -> Sequence[Run]:
    """The project's runs by the time they were queued."""
    order = Run.created_at.desc() if newest_first else Run.created_at
    return session.scalars(select(Run).where(Run.project_id == project_id).order_by(order)).all()


def done_runs(
    session: Session, project_id: str, *, before: float | None = None, auto: bool = False
) -> Sequence[Run]:
    """The project's completed runs, oldest first.

    Args:
        session: The caller's session.
        project_id: The project.
        before: Only runs queued before this time.
        auto: Only runs whose threshold was estimated (``auto``).
    """
    query = select(Run).where(Run.project_id == project_id, Run.status == "done")
    if before is not None:
        query = query.where(Run.created_at < before)
    if auto:
        query = query.where(Run.threshold_method.like("auto%"))
    return session.scalars(query.order_by(Run.created_at)).all()


def new_run(project_id: str, through_seq: int, threshold: str | None = None) -> Run:
    """A queued run (not yet added to a session) linking the uploads through ``through_seq``."""
    return Run(
        id=secrets.token_hex(8), project_id=project_id, status="queued", stage="queued",
        progress=0.0, attempts=0, through_seq=through_seq, created_at=now(),
        threshold_requested=threshold,
    )  # fmt: skip


def queue_run(session: Session, project_id: str, through_seq: int, threshold: str | None) -> Run:
    """Queue a run of the project that links its uploads through ``through_seq``."""
    run = new_run(project_id, through_seq, threshold)
    session.add(run)
    return run


def queue_withdrawal_run(session: Session, project_id: str, seq: int) -> str:
    """Have a run apply the upload ``seq`` (a withdrawal) without waiting for the operator.

    A run still waiting in the queue takes it too (it then links through ``seq``); else a
    new run is queued. Returns the run's ID.
    """
    queued = session.scalar(
        select(Run.id).where(Run.project_id == project_id, Run.status == "queued")
    )
    if queued is not None:
        taken = session.scalar(
            update(Run)
            .where(Run.id == queued, Run.status == "queued")
            .values(through_seq=seq)
            .returning(Run.id)
        )
        if taken is not None:
            return queued
    return queue_run(session, project_id, seq, None).id


def runnable_runs(session: Session) -> list[tuple[str, str, str, str | None, float | None, int]]:
    """Every queued or running run, oldest first: what a worker chooses the next run from.

    Returns:
        Rows ``(id, project, status, claim, heartbeat, attempts)``.
    """
    rows = session.execute(
        select(Run.id, Run.project_id, Run.status, Run.claim, Run.heartbeat_at, Run.attempts)
        .where(or_(Run.status == "queued", Run.status == "running"))
        .order_by(Run.created_at, Run.id)
    ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]  # the six columns above


def update_claimed_run(
    session: Session, run_id: str, claim: str | None, *, values: dict[str, Any],
    status: str | None = None,
) -> bool:  # fmt: skip
    """Update the run only while ``claim`` holds it (None: unclaimed) — a compare-and-set.

    Args:
        session: The caller's session.
        run_id: The run.
        claim: The claim token the run must still carry.
        values: The columns to set (values or SQL expressions).
        status: The status the run must still have, if given.

    Returns:
        Whether the run matched (else another worker has claimed it).
    """
    query = update(Run).where(
        Run.id == run_id, Run.claim.is_(None) if claim is None else Run.claim == claim
    )
    if status is not None:
        query = query.where(Run.status == status)
    result: Result[Any] = session.execute(query.values(values))
    return int(cast(CursorResult[Any], result).rowcount) == 1


# ----------------------------------------------------------------------------- audit


def audit_entries(
    session: Session,
    *,
    after: int = 0,
    before: int | None = None,
    project_id: str | None = None,
    action_prefix: str | None = None,
    newest_first: bool = False,
    limit: int = 1000,
) -> Sequence[AuditEntry]:
    """Audit entries in sequence order, at most ``limit`` of them.

    Args:
        session: The caller's session.
        after: Only entries after this sequence number.
        before: Only entries before this sequence number.
        project_id: Only this project's entries.
        action_prefix: Only entries whose action starts with this (``release.``).
        newest_first: The latest entries first (and the limit keeps the latest).
        limit: How many at most.
    """
    query = select(AuditEntry).where(AuditEntry.seq > after)
    if before is not None:
        query = query.where(AuditEntry.seq < before)
    if project_id is not None:
        query = query.where(AuditEntry.project_id == project_id)
    if action_prefix is not None:
        query = query.where(AuditEntry.action.startswith(action_prefix, autoescape=True))
    order = AuditEntry.seq.desc() if newest_first else AuditEntry.seq
    return session.scalars(query.order_by(order).limit(limit)).all()
