"""Runs: the operator queues one; a worker process claims and executes it."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, status

from linkage_unit import audit, repository
from linkage_unit.api import deps
from linkage_unit.api.deps import CallerDep, SessionDep, UnitDep
from linkage_unit.api.models import RunCreate, RunOut
from linkage_unit.database import Run

__all__ = ["create_run", "list_runs", "read_run", "router", "run_out"]

router = APIRouter(prefix="/projects/{project_id}/runs", tags=["runs"])


def run_out(run: Run, caller: deps.Caller) -> RunOut:
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
def create_run(project_id: str, body: RunCreate, unit: UnitDep, session: SessionDep,
               caller: CallerDep) -> RunOut:  # fmt: skip
    """Queue a run that links every upload received so far."""
    deps.require_admin(caller)
    project = deps.get_project(session, project_id, for_update=True)
    through = repository.upload_seq_high(session, project.id)
    if through is None:
        raise HTTPException(409, "nothing to link: no party has uploaded yet")
    threshold = None if body.threshold is None else str(body.threshold)
    run = repository.queue_run(session, project.id, through, threshold)
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
    deps.require_member(caller, project_id)
    deps.get_project(session, project_id)
    return [run_out(r, caller) for r in repository.runs(session, project_id, newest_first=True)]


@router.get("/{run_id}", response_model=RunOut)
def read_run(project_id: str, run_id: str, session: SessionDep, caller: CallerDep) -> RunOut:
    """A run's status, stage and progress."""
    deps.require_member(caller, project_id)
    if not deps.is_unit_id(run_id):
        raise HTTPException(404, "no such run in this project (IDs are 16 hex digits)")
    run = repository.find_run(session, project_id, run_id)
    if run is None:
        raise HTTPException(404, f"no run {run_id!r} in this project")
    return run_out(run, caller)
