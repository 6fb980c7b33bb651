"""What every endpoint shares: the unit's state, database sessions and who is calling.

Callers authenticate with ``Authorization: Bearer <token>``: the operator with the admin
token (``PACELINK_ADMIN_TOKEN``), a partner with its party token. Party tokens are stored
only as SHA-256 hashes, so a copy of the database does not let anyone act as a party.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from linkage_unit import repository
from linkage_unit.database import Project
from linkage_unit.settings import UnitSettings
from linkage_unit.storage import Storage

__all__ = [
    "ID_PATTERN",
    "Caller",
    "CallerDep",
    "Refusal",
    "SessionDep",
    "UnitDep",
    "UnitState",
    "caller_for_token",
    "get_project",
    "hash_token",
    "is_unit_id",
    "require_admin",
    "require_member",
    "state",
]


def hash_token(token: str) -> str:
    """How tokens are stored and looked up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Refusal(HTTPException):
    """A request refused for a reason the audit log must record (see :mod:`.refusals`).

    Raised like an ``HTTPException``; the app's handler writes one audit entry in its own
    transaction (the request's own is rolled back, so the entry lands although the request
    fails) and then answers as FastAPI would.

    Args:
        status_code: The HTTP status of the answer.
        message: The answer's ``detail``: names the request part that was wrong, never a
            token, secret or path on the unit.
        action: The audit action, e.g. ``release.refused``.
        check: Which check failed, in a few words (``policy``, ``schema`` …).
        facts: More JSON-serialisable details for the entry (the release asked for, an
            upload ID); never data or tokens.
    """

    def __init__(self, status_code: int, message: str, *, action: str, check: str,
                 headers: dict[str, str] | None = None, **facts: Any) -> None:  # fmt: skip
        """Hold the answer and what the audit entry records (see the class)."""
        super().__init__(status_code, message, headers=headers)
        self.action = action
        self.check = check
        self.facts = facts


@dataclass
class UnitState:
    """The unit's long-lived objects, kept on ``app.state.unit``."""

    settings: UnitSettings
    engine: Engine
    sessions: sessionmaker[Session]
    storage: Storage
    audit_key: bytes
    admin_token_hash: str
    #: Unauthenticated refusals not yet written to the audit log, and when the last entry
    #: for them was written (monotonic seconds); see :mod:`linkage_unit.api.refusals`.
    anonymous_pending: int = 0
    anonymous_logged_at: float | None = None
    anonymous_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def data_dir(self) -> Path:
        """The unit's data folder."""
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
        """Whether the caller is the operator."""
        return self.kind == "admin"


def state(request: Request) -> UnitState:
    """The unit's state."""
    unit: UnitState = request.app.state.unit
    return unit


UnitDep = Annotated[UnitState, Depends(state)]


def _session(request: Request) -> Iterator[Session]:
    with state(request).sessions() as session:
        # The refusal handler rolls it back before auditing: on SQLite an open transaction
        # holds the write lock its own entry needs.
        request.state.db_session = session
        yield session


SessionDep = Annotated[Session, Depends(_session)]
_bearer = HTTPBearer(auto_error=False, description="The admin token or a party token.")


def caller_for_token(request: Request, session: Session, token: str) -> Caller | None:
    """Who ``token`` belongs to (the operator or a party), or None.

    How every caller of the API and of the console is recognised.
    """
    digest = hash_token(token)
    if hmac.compare_digest(digest, state(request).admin_token_hash):
        return Caller("admin")
    # Not a timing oracle: the database compares SHA-256 digests of the presented token,
    # not the token. How long an index lookup takes can at best reveal how many leading
    # characters of the presented token's digest match a stored digest; turning that into
    # a token means finding preimages of chosen SHA-256 prefixes, which is as hard as
    # guessing the 256-bit token itself. The admin token's digest is compared in constant
    # time anyway (above), as it is not in the database.
    party = repository.party_by_token_hash(session, digest)
    caller = (
        None if party is None
        else Caller("party", party.project_id, party.id, party.name, party.position)
    )  # fmt: skip
    # End the lookup's transaction (after reading the attributes: a rollback expires them,
    # and reading them again would open a new one): on SQLite every transaction holds the
    # write lock, and an upload's body may take minutes to arrive.
    session.rollback()
    return caller


def _caller(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or not credentials.credentials:
        raise Refusal(
            status.HTTP_401_UNAUTHORIZED,
            "missing token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"}, action="auth.refused", check="missing token",
        )  # fmt: skip
    caller = caller_for_token(request, session, credentials.credentials)
    if caller is None:
        raise Refusal(
            status.HTTP_401_UNAUTHORIZED, "invalid token", headers={"WWW-Authenticate": "Bearer"},
            action="auth.refused", check="invalid token",
        )  # fmt: skip
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(_caller)]


def require_admin(caller: Caller, *, action: str = "access.refused", **facts: Any) -> None:
    """Only the operator may do this; a party's attempt is refused and audited.

    Args:
        caller: Who is calling.
        action: The audit action of the refusal (``release.refused`` for scores).
        facts: More details for the audit entry.
    """
    if not caller.is_admin:
        raise Refusal(status.HTTP_403_FORBIDDEN, "only the operator may do this",
                      action=action, check="operator only", **facts)  # fmt: skip


def require_member(caller: Caller, project_id: str) -> None:
    """The operator, or a party of this project; another project's token is audited."""
    if not caller.is_admin and caller.project_id != project_id:
        raise Refusal(status.HTTP_403_FORBIDDEN, "this token is not valid for this project",
                      action="access.refused", check="project membership")  # fmt: skip


#: The shape of the IDs the unit issues (projects, uploads, runs): 16 hex digits.
ID_PATTERN: Final = r"^[0-9a-f]{16}$"
_ID = re.compile(ID_PATTERN)


def is_unit_id(value: str) -> bool:
    """Whether ``value`` could be an ID the unit issued.

    Checked before any lookup: a caller's string with NUL reaches PostgreSQL otherwise,
    which cannot hold NUL in text and fails the request with a 500.
    """
    return _ID.fullmatch(value) is not None


def get_project(session: Session, project_id: str, *, for_update: bool = False) -> Project:
    """The project, or 404."""
    if not is_unit_id(project_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such project (IDs are 16 hex digits)")
    project = repository.find_project(session, project_id, for_update=for_update)
    if project is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no project {project_id!r}")
    return project
