"""Deleting projects: on request, and automatically once their retention period is over.

Deletion erases the project's encodings, entity indexes, results and salt from disk and
its rows from the database; the audit entry recording the deletion remains (audit entries
are never deleted).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from linkage_unit import audit, repository
from linkage_unit.database import Project, now
from linkage_unit.storage import Storage

__all__ = ["delete_project", "purge_expired"]


def delete_project(
    session: Session, storage: Storage, key: bytes, project: Project, *, actor: str,
    reason: str, data_dir: Path | None = None,
) -> None:  # fmt: skip
    """Erase a project (files first, then rows) and audit it; the caller commits.

    Files go first: if the process dies after that, the rows that remain point at nothing
    and a second deletion finishes the job; the reverse order could leave encodings on
    disk that nothing refers to.
    """
    storage.delete_project(project.id)
    had_uploads = repository.delete_project_rows(session, project)
    audit.append(
        session, key, actor=actor, action="project.deleted", project_id=project.id,
        detail={"reason": reason, "name": project.name, "had_uploads": had_uploads},
        data_dir=data_dir,
    )  # fmt: skip


def purge_expired(
    sessions: sessionmaker[Session], storage: Storage, key: bytes, data_dir: Path | None = None
) -> list[str]:
    """Delete every project whose retention period is over; returns their IDs."""
    purged: list[str] = []
    with sessions() as session:
        expired = repository.expired_project_ids(session, now())
    for project_id in expired:
        with sessions.begin() as session:
            project = repository.find_project(session, project_id)
            if project is None or project.expires_at >= now():
                continue
            delete_project(session, storage, key, project, actor="system",
                           reason="retention period over", data_dir=data_dir)  # fmt: skip
        purged.append(project_id)
    return purged
