"""The audit log over HTTP: the operator reads entries and checks the chain."""

from __future__ import annotations

from fastapi import APIRouter, Query

from linkage_unit import audit as audit_log
from linkage_unit import repository
from linkage_unit.api.deps import ID_PATTERN, CallerDep, SessionDep, UnitDep, require_admin
from linkage_unit.api.models import AuditEntryOut, AuditVerifyOut

__all__ = ["entries", "router", "verify"]

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[AuditEntryOut])
def entries(
    session: SessionDep,
    caller: CallerDep,
    project_id: str | None = Query(default=None, pattern=ID_PATTERN),
    after: int = Query(default=0, ge=0, description="Only entries after this sequence number."),
    limit: int = Query(default=1000, ge=1, le=10_000),
) -> list[AuditEntryOut]:
    """Audit entries in order."""
    require_admin(caller)
    found = repository.audit_entries(session, after=after, project_id=project_id, limit=limit)
    return [AuditEntryOut(entry_hash=e.entry_hash, **audit_log.entry_dict(e)) for e in found]


@router.get("/verify", response_model=AuditVerifyOut)
def verify(unit: UnitDep, session: SessionDep, caller: CallerDep) -> AuditVerifyOut:
    """Check every entry's hash and link, and the recorded head."""
    require_admin(caller)
    report = audit_log.verify(session, unit.audit_key, unit.data_dir)
    return AuditVerifyOut(ok=report.ok, entries=report.entries, problems=report.problems)
