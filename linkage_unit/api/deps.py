"""What every endpoint shares: the unit's state, database sessions and who is calling.

Callers authenticate with ``Authorization: Bearer <token>``: the operator with the admin
token (``PACELINK_ADMIN_TOKEN``), a partner with its party token. Party tokens are stored
only as SHA-256 hashes, so a copy of the database does not let anyone act as a party.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from linkage_unit.database import Party, Project
from linkage_unit.settings import UnitSettings
from linkage_unit.storage import Storage

__all__ = [
    "Caller",
    "CallerDep",
    "SessionDep",
    "UnitState",
    "get_project",
    "hash_token",
    "require_admin",
    "require_member",
    "state",
]


def hash_token(token: str) -> str:
    """How tokens are stored and looked up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class UnitState:
    """The unit's long-lived objects, kept on ``app.state.unit``."""

    settings: UnitSettings
    engine: Engine
    sessions: sessionmaker[Session]
    storage: Storage
    audit_key: bytes
    admin_token_hash: str

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir


@dataclass(frozen=True)
class Caller:
    """Who is calling: the operator, or one party of one project."""

    kind: Literal["admin", "party"]
    project_id: str | None = None
    party_id: int | None = None
    party_name: str | None = None
    position: int | None = None

    @property
    def actor(self) -> str:
        """How the audit log names the caller."""
        return "admin" if self.kind == "admin" else f"party:{self.party_name}"

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"


def state(request: Request) -> UnitState:
    """The unit's state."""
    unit: UnitState = request.app.state.unit
    return unit


def _session(request: Request) -> Iterator[Session]:
    with state(request).sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(_session)]
_bearer = HTTPBearer(auto_error=False, description="The admin token or a party token.")


def _caller(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or not credentials.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    digest = hash_token(credentials.credentials)
    if hmac.compare_digest(digest, state(request).admin_token_hash):
        return Caller("admin")
    party = session.scalar(select(Party).where(Party.token_hash == digest))
    caller = (
        None if party is None
        else Caller("party", party.project_id, party.id, party.name, party.position)
    )  # fmt: skip
    # End the lookup's transaction (after reading the attributes: a rollback expires them,
    # and reading them again would open a new one): on SQLite every transaction holds the
    # write lock, and an upload's body may take minutes to arrive.
    session.rollback()
    if caller is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid token", headers={"WWW-Authenticate": "Bearer"}
        )
    return caller


CallerDep = Annotated[Caller, Depends(_caller)]


def require_admin(caller: Caller) -> None:
    """Only the operator may do this."""
    if not caller.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only the operator may do this")


def require_member(caller: Caller, project_id: str) -> None:
    """The operator, or a party of this project."""
    if not caller.is_admin and caller.project_id != project_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this token is not valid for this project")


def get_project(session: Session, project_id: str, *, for_update: bool = False) -> Project:
    """The project, or 404."""
    query = select(Project).where(Project.id == project_id)
    if for_update:
        query = query.with_for_update()
    project = session.scalar(query)
    if project is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no project {project_id!r}")
    return project
