"""Runs: the operator queues one; a worker process claims and executes it."""

from __future__ import annotations

import json
import secrets

from fastapi import APIRouter, HTTPException, Request, status
from sqlalchemy import func, select

from linkage_unit import audit
from linkage_unit.api.deps import (
    Caller,
    CallerDep,
    SessionDep,
    get_project,
    is_unit_id,
    require_admin,
    require_member,
    state,
)
from linkage_unit.api.models import RunCreate, RunOut
from linkage_unit.database import Run, Upload, now

__all__ = ["router", "run_out"]

router = APIRouter(prefix="/projects/{project_id}/runs", tags=["runs"])


def run_out(run: Run, caller: Caller) -> RunOut:
    """A run as the caller may see it: parties do not see the summary (other parties' sizes)."""
    return RunOut(
        id=run.id, project_id=run.project_id, status=run.status,  # type: ignore[arg-type]
        stage=run.stage, progress=run.progress, attempts=run.attempts,
        created_at=run.created_at, started_at=run.started_at, finished_at=run.finished_at,
        error=run.error, threshold_used=run.threshold_used,
        threshold_method=run.threshold_method,
        summary=json.loads(run.summary_json) if caller.is_admin and run.summary_json else None,
    )  # fmt: skip


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=RunOut)
def create_run(project_id: str, body: RunCreate, request: Request, session: SessionDep,
               caller: CallerDep) -> RunOut:  # fmt: skip
    """Queue a run that links every upload received so far."""
    require_admin(caller)
    unit = state(request)
    project = get_project(session, project_id, for_update=True)
    if isinstance(body.threshold, float) and not 0 < body.threshold <= 1:
        raise HTTPException(422, "threshold: must be in (0, 1] or 'auto'")
    through = session.scalar(select(func.max(Upload.seq)).where(Upload.project_id == project.id))
    if through is None:
        raise HTTPException(409, "nothing to link: no party has uploaded yet")
    run = Run(
        id=secrets.token_hex(8), project_id=project.id, status="queued", stage="queued",
        progress=0.0, attempts=0, through_seq=through, created_at=now(),
        threshold_requested=None if body.threshold is None else str(body.threshold),
    )  # fmt: skip
    session.add(run)
    audit.append(session, unit.audit_key, actor=caller.actor, action="run.queued",
                 project_id=project.id,
                 detail={"run": run.id, "through_upload_seq": through,
                         "threshold": run.threshold_requested or project.threshold},
                 data_dir=unit.data_dir)  # fmt: skip
    session.commit()
    return run_out(run, caller)


@router.get("", response_model=list[RunOut])
def list_runs(project_id: str, session: SessionDep, caller: CallerDep) -> list[RunOut]:
    """The project's runs, newest first."""
    require_member(caller, project_id)
    get_project(session, project_id)
    runs = session.scalars(
        select(Run).where(Run.project_id == project_id).order_by(Run.created_at.desc())
    ).all()
    return [run_out(r, caller) for r in runs]


@router.get("/{run_id}", response_model=RunOut)
def read_run(project_id: str, run_id: str, session: SessionDep, caller: CallerDep) -> RunOut:
    """A run's status, stage and progress."""
    require_member(caller, project_id)
    if not is_unit_id(run_id):
        raise HTTPException(404, "no such run in this project (IDs are 16 hex digits)")
    run = session.get(Run, run_id)
    if run is None or run.project_id != project_id:
        raise HTTPException(404, f"no run {run_id!r} in this project")
    return run_out(run, caller)
