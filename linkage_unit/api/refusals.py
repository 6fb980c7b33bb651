"""Refused requests are audited: who asked for what, which check failed, and the status.

Every :class:`~linkage_unit.api.deps.Refusal` raised by an endpoint reaches
:func:`handle_refusal`, which writes one audit entry in a transaction of its own (so it is
committed although the request fails) and then answers as FastAPI answers any
``HTTPException``. An entry holds the actor, the action (``release.refused``,
``upload.refused``, ``access.refused``, ``auth.refused``), the route template (never the
raw path, which the caller chose), the HTTP status, the failed check and the reason sent
back; never data, a token or a path on the unit.

Unauthenticated requests have no actor and cost an attacker nothing, so auditing each one
would let anyone flood the log. They are counted instead: at most one ``auth.refused``
entry with actor ``anonymous`` per ``anonymous_audit_seconds`` (default 60) and process,
carrying how many were refused since the previous such entry.
"""

from __future__ import annotations

import time
from typing import Any, Final

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from linkage_unit import audit, repository
from linkage_unit.api.deps import Caller, Refusal, UnitState, is_unit_id

__all__ = ["ANONYMOUS", "audit_refusal", "handle_refusal", "record_refusal"]

#: The actor of an unauthenticated request.
ANONYMOUS: Final = "anonymous"


def _route(request: Request) -> str:
    route = request.scope.get("route")
    path = route.path if isinstance(route, APIRoute) else "(unknown route)"
    return f"{request.method} {path}"


def _project(session: Session, request: Request) -> str | None:
    """The project the request named, if it exists (a caller-chosen string is not logged)."""
    wanted = request.path_params.get("project_id")
    if not isinstance(wanted, str) or not is_unit_id(wanted):
        return None
    return wanted if repository.find_project(session, wanted) is not None else None


def _record(unit: UnitState, request: Request, exc: Refusal, caller: Caller | None) -> None:
    own = getattr(request.state, "db_session", None)
    if isinstance(own, Session):
        own.rollback()  # its SQLite transaction holds the write lock the entry needs
    detail: dict[str, Any] = {
        "route": _route(request), "status": exc.status_code, "check": exc.check,
        "reason": str(exc.detail), **exc.facts,
    }  # fmt: skip
    if caller is None:
        with unit.anonymous_lock:
            unit.anonymous_pending += 1
            clock = time.monotonic()
            last = unit.anonymous_logged_at
            if last is not None and clock - last < unit.settings.anonymous_audit_seconds:
                return
            detail["refused_since_last_entry"] = unit.anonymous_pending
            unit.anonymous_pending, unit.anonymous_logged_at = 0, clock
            _write(unit, request, ANONYMOUS, exc.action, detail)
        return
    if caller.kind == "party":
        detail["caller_project"] = caller.project_id  # party names are per project
    _write(unit, request, caller.actor, exc.action, detail)


def _write(unit: UnitState, request: Request, actor: str, action: str,
           detail: dict[str, Any]) -> None:  # fmt: skip
    with unit.sessions() as session:
        project_id = _project(session, request)
        if project_id is None and "project_id" in request.path_params:
            detail["project"] = "unknown"
        audit.append(session, unit.audit_key, actor=actor, action=action, project_id=project_id,
                     detail=detail, data_dir=unit.data_dir)  # fmt: skip
        session.commit()


def record_refusal(request: Request, exc: Refusal) -> None:
    """Write the refusal's audit entry (in a transaction of its own); blocking."""
    unit: UnitState = request.app.state.unit
    caller = getattr(request.state, "caller", None)
    _record(unit, request, exc, caller if isinstance(caller, Caller) else None)


async def audit_refusal(request: Request, exc: Refusal) -> None:
    """:func:`record_refusal` off the event loop."""
    await run_in_threadpool(record_refusal, request, exc)


async def handle_refusal(request: Request, exc: Exception) -> Response:
    """Audit the refusal, then answer with its status and message."""
    assert isinstance(exc, Refusal)
    await audit_refusal(request, exc)
    return await http_exception_handler(request, exc)
