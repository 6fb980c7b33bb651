"""Projects: created by the operator with their parties, schema, policy and retention."""

from __future__ import annotations

import json
import secrets
from typing import Any

from fastapi import APIRouter, HTTPException, status

from encoder.schema import SchemaInvalid, parse_schema
from linkage_unit import audit, repository
from linkage_unit.api import deps
from linkage_unit.api.deps import CallerDep, SessionDep, UnitDep
from linkage_unit.api.models import ProjectCreate, ProjectCreated, ProjectOut
from linkage_unit.database import Project, now
from linkage_unit.policy import PolicyError, SharingPolicy
from linkage_unit.retention import delete_project

__all__ = [
    "create_project",
    "list_projects",
    "project_out",
    "read_project",
    "read_schema",
    "remove_project",
    "router",
]

router = APIRouter(prefix="/projects", tags=["projects"])

_DAY = 86_400.0


def project_out(session: SessionDep, project: Project, party: str | None = None) -> ProjectOut:
    """The project as shown to the operator, or to ``party``."""
    names = repository.party_names(session, project.id)
    policy = SharingPolicy.model_validate_json(project.policy_json)
    return ProjectOut(
        id=project.id, name=project.name, purpose=project.purpose, parties=names,
        schema_fingerprint=project.schema_fingerprint, bit_length=project.bit_length,
        key_check_value=project.key_check_value, policy=policy, threshold=project.threshold,
        threshold_pinned=project.threshold_pinned, duplicates=project.duplicates,
        retention_days=project.retention_days,
        created_at=project.created_at, expires_at=project.expires_at,
        current_run_id=project.current_run_id, your_party=party,
        your_grants=sorted(policy.grants_for(party)) if party else None,
    )  # fmt: skip


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProjectCreated)
def create_project(body: ProjectCreate, unit: UnitDep, session: SessionDep,
                   caller: CallerDep) -> ProjectCreated:  # fmt: skip
    """Create a project; the response holds each party's token, shown only this once."""
    deps.require_admin(caller)
    if len(set(body.parties)) != len(body.parties):
        raise HTTPException(422, "parties: names must be unique")
    try:
        schema = parse_schema(body.linkage_schema, "schema")
    except SchemaInvalid as exc:
        raise HTTPException(422, str(exc)) from None
    try:
        body.policy.check(body.parties)
    except PolicyError as exc:
        raise HTTPException(422, str(exc)) from None
    project_id = secrets.token_hex(8)
    created = now()
    project = Project(
        id=project_id, name=body.name, purpose=body.purpose,
        schema_json=json.dumps(schema.raw, sort_keys=True),
        schema_fingerprint=schema.fingerprint, bit_length=schema.bit_length,
        key_check_value=body.key_check_value, policy_json=body.policy.model_dump_json(),
        threshold=str(body.threshold), duplicates=body.duplicates,
        retention_days=body.retention_days,
        created_at=created, expires_at=created + body.retention_days * _DAY,
    )  # fmt: skip
    tokens = {name: secrets.token_urlsafe(32) for name in body.parties}
    unit.storage.create_project(project_id)
    try:
        repository.add_project(
            session, project, {name: deps.hash_token(tokens[name]) for name in body.parties}
        )
        audit.append(
            session, unit.audit_key, actor=caller.actor, action="project.created",
            project_id=project_id, policy=body.policy.model_dump_json(),
            detail={"name": body.name, "purpose": body.purpose, "parties": body.parties,
                    "schema_fingerprint": schema.fingerprint,
                    "retention_days": body.retention_days, "threshold": str(body.threshold)},
            data_dir=unit.data_dir,
        )  # fmt: skip
        session.commit()
    except BaseException:
        session.rollback()
        unit.storage.delete_project(project_id)
        raise
    return ProjectCreated(
        project_id=project_id, parties=tokens, schema_fingerprint=schema.fingerprint
    )


@router.get("", response_model=list[ProjectOut])
def list_projects(session: SessionDep, caller: CallerDep) -> list[ProjectOut]:
    """Every project (operator), or the caller's own project (party)."""
    if caller.is_admin:
        return [project_out(session, p) for p in repository.projects(session)]
    project = deps.get_project(session, str(caller.project_id))
    return [project_out(session, project, caller.party_name)]


@router.get("/{project_id}", response_model=ProjectOut)
def read_project(project_id: str, session: SessionDep, caller: CallerDep) -> ProjectOut:
    """A project's settings and state."""
    deps.require_member(caller, project_id)
    return project_out(session, deps.get_project(session, project_id), caller.party_name)


@router.get("/{project_id}/schema")
def read_schema(project_id: str, session: SessionDep, caller: CallerDep) -> dict[str, Any]:
    """The linkage schema the project's parties encode with."""
    deps.require_member(caller, project_id)
    doc: dict[str, Any] = json.loads(deps.get_project(session, project_id).schema_json)
    return doc


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_project(project_id: str, unit: UnitDep, session: SessionDep,
                   caller: CallerDep) -> None:  # fmt: skip
    """Delete a project: its encodings, indexes and results are erased; the audit remains."""
    deps.require_admin(caller)
    project = deps.get_project(session, project_id, for_update=True)
    delete_project(session, unit.storage, unit.audit_key, project, actor=caller.actor,
                   reason="deleted by the operator", data_dir=unit.data_dir)  # fmt: skip
    session.commit()
