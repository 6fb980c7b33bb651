"""Releases: what a party (or the operator) may fetch, enforced by the project's policy.

Every release is recorded in the audit log — who, what, when, under which policy — before
any of it is sent. Mappings and flags are CSV (they can have millions of rows); counts and
scores are JSON.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from linkage_unit import audit, repository
from linkage_unit.api import deps
from linkage_unit.api.deps import CallerDep, SessionDep, UnitDep
from linkage_unit.api.models import CountsOut, ScoresOut
from linkage_unit.database import Project, Upload
from linkage_unit.policy import SharingPolicy, overlap_counts
from linkage_unit.storage import RunFolder

__all__ = ["counts", "flags", "mapping", "router", "scores"]

router = APIRouter(prefix="/projects/{project_id}/releases", tags=["releases"])

_ROWS_PER_CHUNK = 65_536


def _refused(code: int, message: str, release: str, check: str) -> deps.Refusal:
    """A release refusal; the app's handler audits it as ``release.refused``."""
    return deps.Refusal(code, message, action="release.refused", check=check, release=release)


def _granted(caller: deps.Caller, project: Project, release: str) -> str:
    """Refuse unless the policy grants ``release``; returns how it was granted."""
    if caller.is_admin:
        raise _refused(403, f"'{release}' is released to parties; use a party token",
                       release, "parties only")  # fmt: skip
    policy = SharingPolicy.model_validate_json(project.policy_json)
    grants = policy.grants_for(str(caller.party_name))
    if release not in grants:
        raise _refused(403, f"the project's sharing policy does not release '{release}' "
                            f"to {caller.party_name}", release, "policy")  # fmt: skip
    how = "party grant" if caller.party_name in policy.grants else "default grant"
    return f"{release} ({how}); policy {project.policy_json}"


def _run_folder(unit: deps.UnitState, project: Project, release: str) -> tuple[str, RunFolder]:
    if project.current_run_id is None:
        raise _refused(409, "nothing released yet: no run of this project has completed",
                       release, "no completed run")  # fmt: skip
    return project.current_run_id, unit.storage.run_folder(project.id, project.current_run_id)


def _own_uploads(session: Session, caller: deps.Caller, project: Project,
                 upload: str | None, release: str) -> list[Upload]:  # fmt: skip
    assert caller.party_id is not None  # a party's token: _granted refused the operator
    own = repository.uploads(session, project.id, caller.party_id)
    uploads = [u for u in own if u.kind != "withdrawal"]
    if upload is not None:
        uploads = [u for u in uploads if u.id == upload]
        if not uploads:
            raise HTTPException(404, f"no upload {upload!r} of yours in this project")
    if not uploads:
        raise _refused(409, "you have not uploaded anything to this project", release,
                       "no uploads")  # fmt: skip
    if repository.pending_withdrawal(session, project.id) is not None:
        raise _refused(409, "a withdrawal is waiting for its run: nothing is released until "
                            "the withdrawn records are gone; ask again shortly", release,
                       "withdrawal pending")  # fmt: skip
    pending = [u.id for u in uploads if u.linked_run_id is None]
    if pending:
        raise _refused(409, f"upload {pending[0]} has not been linked yet: a run must "
                            "complete first", release, "not linked")  # fmt: skip
    return uploads


_REPLACED = "the results are being replaced by a newer run's; ask again in a moment"


def _ids(run: RunFolder, upload_id: str) -> NDArray[np.str_]:
    try:
        ids: NDArray[np.str_] = np.load(run.ids(upload_id), allow_pickle=False)
    except FileNotFoundError:  # a newer run completed and pruned this one meanwhile
        raise HTTPException(503, _REPLACED) from None
    return ids


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:  # as in _ids
        raise HTTPException(503, _REPLACED) from None


def _csv(header: str, parts: list[tuple[str, NDArray[Any], NDArray[np.bool_]]]
         ) -> Iterator[bytes]:  # fmt: skip
    """Rows ``upload_id,row,value`` of the present rows (withdrawn ones are left out)."""
    yield (header + "\n").encode()
    for upload_id, values, present in parts:
        for start in range(0, len(values), _ROWS_PER_CHUNK):
            chunk = values[start : start + _ROWS_PER_CHUNK]
            rows = np.arange(start, start + len(chunk))[present[start : start + _ROWS_PER_CHUNK]]
            buf = io.StringIO()
            for row in rows.tolist():
                buf.write(f"{upload_id},{row},{values[row]}\n")
            yield buf.getvalue().encode()


def _record(session: Session, unit: deps.UnitState, caller: deps.Caller, project: Project,
            action: str, policy: str, detail: dict[str, Any]) -> None:  # fmt: skip
    audit.append(session, unit.audit_key, actor=caller.actor, action=action,
                 project_id=project.id, policy=policy,
                 detail={"purpose": project.purpose, **detail}, data_dir=unit.data_dir)  # fmt: skip
    session.commit()


@router.get("/mapping", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}})  # fmt: skip
def mapping(project_id: str, unit: UnitDep, session: SessionDep, caller: CallerDep,
            upload: str | None = Query(default=None, description="One upload (default: all)."),
            ) -> StreamingResponse:  # fmt: skip
    """The linkage ID of each of your rows: CSV ``upload_id,row,linkage_id``."""
    deps.require_member(caller, project_id)
    project = deps.get_project(session, project_id)
    policy = _granted(caller, project, "mapping")
    uploads = _own_uploads(session, caller, project, upload, "mapping")
    run_id, run = _run_folder(unit, project, "mapping")
    found = [(u.id, _ids(run, u.id)) for u in uploads]
    parts = [(upload_id, ids, ids != "") for upload_id, ids in found]
    _record(session, unit, caller, project, "release.mapping", policy,
            {"run": run_id, "uploads": [u.id for u in uploads],
             "rows": sum(int(p[2].sum()) for p in parts)})  # fmt: skip
    return StreamingResponse(_csv("upload_id,row,linkage_id", parts), media_type="text/csv")


@router.get("/flags/{other}", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}})  # fmt: skip
def flags(project_id: str, other: str, unit: UnitDep, session: SessionDep,
          caller: CallerDep,
          upload: str | None = Query(default=None, description="One upload (default: all)."),
          ) -> StreamingResponse:  # fmt: skip
    """Whether each of your rows also appears in ``other``'s data: CSV ``upload_id,row,flag``."""
    deps.require_member(caller, project_id)
    project = deps.get_project(session, project_id)
    policy = _granted(caller, project, f"flags:{other}")
    other_party = repository.party_by_name(session, project.id, other)
    if other_party is None:  # the policy names only parties, so this is a stale policy
        raise HTTPException(404, f"no party {other!r} in this project")
    uploads = _own_uploads(session, caller, project, upload, f"flags:{other}")
    run_id, run = _run_folder(unit, project, f"flags:{other}")
    theirs = repository.linked_deliveries(session, other_party.id)
    their_ids = (
        np.unique(np.concatenate([_ids(run, u) for u in theirs]))
        if theirs else np.zeros(0, dtype="<U32")
    )  # fmt: skip
    their_ids = their_ids[their_ids != ""]  # withdrawn rows
    parts = []
    for u in uploads:
        ids = _ids(run, u.id)
        parts.append((u.id, np.isin(ids, their_ids).astype(np.int8), ids != ""))
    _record(session, unit, caller, project, f"release.flags:{other}", policy,
            {"run": run_id, "uploads": [u.id for u in uploads],
             "rows": sum(int(p[2].sum()) for p in parts)})  # fmt: skip
    return StreamingResponse(_csv("upload_id,row,flag", parts), media_type="text/csv")


@router.get("/counts", response_model=CountsOut)
def counts(project_id: str, unit: UnitDep, session: SessionDep,
           caller: CallerDep) -> CountsOut:  # fmt: skip
    """Overlap counts between parties and party combinations, suppressed and rounded."""
    deps.require_member(caller, project_id)
    project = deps.get_project(session, project_id)
    policy_model = SharingPolicy.model_validate_json(project.policy_json)
    policy = (f"counts (operator); policy {project.policy_json}" if caller.is_admin
              else _granted(caller, project, "counts"))  # fmt: skip
    run_id, run = _run_folder(unit, project, "counts")
    raw = _json(run.counts)
    names = repository.party_names(session, project.id)
    rule = policy_model.suppression
    rows = overlap_counts({int(k): int(v) for k, v in raw.items()}, names, rule)
    _record(session, unit, caller, project, "release.counts", policy,
            {"run": run_id, "combinations": len(rows)})  # fmt: skip
    return CountsOut(project_id=project.id, purpose=project.purpose, run_id=run_id,
                     min_count=rule.min_count, round_to=rule.round_to, counts=rows)  # fmt: skip


@router.get("/scores", response_model=ScoresOut)
def scores(project_id: str, unit: UnitDep, session: SessionDep,
           caller: CallerDep) -> ScoresOut:  # fmt: skip
    """For the operator's threshold review: the score histogram and pairs near the threshold."""
    deps.require_member(caller, project_id)
    deps.require_admin(caller, action="release.refused", release="scores")
    project = deps.get_project(session, project_id)
    run_id, run = _run_folder(unit, project, "scores")
    data = _json(run.scores)
    _record(session, unit, caller, project, "release.scores", "scores (operator only)",
            {"run": run_id, "near_pairs": len(data["near_pairs"])})  # fmt: skip
    return ScoresOut(project_id=project.id, run_id=run_id, **data)
