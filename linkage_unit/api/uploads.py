"""Uploads: a party streams an encoding file; it is checked in full before it is accepted.

The body is written to ``incoming/`` as it arrives, then validated — format, header, bit
length, record count against the size, content digest, schema fingerprint and key check
value against the project's — and only then moved into the project's folder and recorded,
in one step. Anything refused or broken is deleted: nothing half-received is ever stored.
Error messages name the check that failed, never a path on the unit.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import Any, BinaryIO

from anyio import to_thread
from fastapi import APIRouter, Request, status
from sqlalchemy import func, select

from encoder.fileformat import EncodingFileError, read_encodings
from linkage_unit import audit
from linkage_unit.api.deps import (
    Caller,
    CallerDep,
    Refusal,
    SessionDep,
    UnitState,
    get_project,
    require_member,
)
from linkage_unit.api.deps import state as unit_state
from linkage_unit.api.models import UploadOut
from linkage_unit.database import Party, Project, Upload, now

__all__ = ["router"]

router = APIRouter(prefix="/projects/{project_id}/uploads", tags=["uploads"])

_DIGEST_HEADER = "X-Content-SHA256"
_WRITE_BLOCK = 1 << 20


def _refuse(code: int, message: str, check: str, **facts: Any) -> Refusal:
    """An upload refusal; the app's handler audits it as ``upload.refused``."""
    return Refusal(code, f"upload refused: {message}", action="upload.refused", check=check,
                   **facts)  # fmt: skip


def _check(path: Path, project: Project) -> dict[str, object]:
    """Validate a received file against the project; returns its header."""
    try:
        header = read_encodings(path, verify=True).header
    except EncodingFileError as exc:
        # The reader's messages start with the file's path, which is the unit's business.
        raise _refuse(422, str(exc).replace(str(path), "the file"), "format") from None
    if header["schema_fingerprint"] != project.schema_fingerprint:
        raise _refuse(
            409,
            "encoded with a different schema than the project's (schema fingerprint "
            f"{header['schema_fingerprint']}, the project's is {project.schema_fingerprint})",
            "schema",
        )
    if header["bit_length"] != project.bit_length:
        raise _refuse(409, f"{header['bit_length']}-bit encodings, the project uses "
                           f"{project.bit_length}-bit", "bit length")  # fmt: skip
    if project.key_check_value and header["key_check_value"] != project.key_check_value:
        raise _refuse(
            409,
            "encoded with a different secret than the project's (the key check values "
            "differ); use the partnership's secret",
            "secret",
        )
    if header["record_count"] == 0:
        raise _refuse(422, "the file holds no records", "record count")
    return header


def _finish_file(fh: BinaryIO, tail: bytes) -> None:
    fh.write(tail)
    fh.flush()
    os.fsync(fh.fileno())


async def _receive(request: Request, unit: UnitState) -> tuple[Path, int, str]:
    """Stream the body to a temporary file; returns its path, size and SHA-256."""
    limit = unit.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _refuse(413, f"larger than the unit accepts ({limit} bytes)", "size")
    tmp = unit.storage.incoming / f"{secrets.token_hex(12)}.part"
    digest = hashlib.sha256()
    size = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    pending = bytearray()
    try:
        with os.fdopen(fd, "wb") as fh:
            # Disk writes go to a thread, in blocks: on the event loop they would stall
            # every other request (status polls) while uploads arrive.
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _refuse(413, f"larger than the unit accepts ({limit} bytes)", "size")
                digest.update(chunk)
                pending += chunk
                if len(pending) >= _WRITE_BLOCK:
                    await to_thread.run_sync(fh.write, bytes(pending))
                    pending.clear()
            await to_thread.run_sync(_finish_file, fh, bytes(pending))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, size, digest.hexdigest()


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def create_upload(project_id: str, request: Request, caller: CallerDep) -> UploadOut:
    """Upload a `.plk` encoding file (the raw bytes as the body) as a new batch.

    Send ``X-Content-SHA256`` (hex) to have the transfer itself checked too.
    """
    require_member(caller, project_id)
    if caller.is_admin:
        raise Refusal(403, "uploads come from parties; use a party token",
                      action="upload.refused", check="parties only")  # fmt: skip
    unit = unit_state(request)
    tmp, size, sha = await _receive(request, unit)
    try:
        claimed = request.headers.get(_DIGEST_HEADER)
        if claimed is not None and claimed.lower() != sha:
            raise _refuse(422, "the received bytes do not match X-Content-SHA256 (damaged "
                               "in transfer); upload again", "transfer digest")  # fmt: skip
        return await to_thread.run_sync(_accept, unit, project_id, caller, tmp, size)
    finally:
        tmp.unlink(missing_ok=True)


def _accept(unit: UnitState, project_id: str, caller: Caller, tmp: Path, size: int) -> UploadOut:
    """Validate the received file and, if it passes, store and record it in one step."""
    with unit.sessions() as session:
        project = get_project(session, project_id)
        session.expunge(project)  # keep its attributes readable after the rollback
        session.rollback()  # end the read: validation may take a while, hold no lock
        header = _check(tmp, project)
        try:
            project = get_project(session, project_id, for_update=True)
            # Checked again under the lock: a concurrent first upload may have pinned it.
            pinned = project.key_check_value is None
            if pinned:
                project.key_check_value = str(header["key_check_value"])
            elif header["key_check_value"] != project.key_check_value:
                raise _refuse(409, "encoded with a different secret than the project's "
                                   "(the key check values differ)", "secret")  # fmt: skip
            duplicate = session.scalar(
                select(Upload.id).where(
                    Upload.party_id == caller.party_id,
                    Upload.content_digest == header["content_digest"],
                )
            )
            if duplicate is not None:
                raise _refuse(
                    409,
                    f"the same encodings were already uploaded as {duplicate}",
                    "duplicate",
                    duplicate_of=duplicate,
                )
            seq = (session.scalar(
                select(func.max(Upload.seq)).where(Upload.project_id == project_id)
            ) or 0) + 1  # fmt: skip
            upload = Upload(
                id=secrets.token_hex(8), project_id=project_id, party_id=caller.party_id,
                seq=seq, record_count=int(str(header["record_count"])),
                content_digest=str(header["content_digest"]), size_bytes=size,
                created_at=now(),
            )  # fmt: skip
            session.add(upload)
            audit.append(
                session, unit.audit_key, actor=caller.actor, action="upload.accepted",
                project_id=project_id,
                detail={"upload": upload.id, "records": upload.record_count, "seq": seq,
                        "content_digest": upload.content_digest,
                        "pinned_key_check_value": pinned},
                data_dir=unit.data_dir,
            )  # fmt: skip
            session.flush()
            final = unit.storage.upload_path(project_id, upload.id)
            os.replace(tmp, final)
            try:
                os.chmod(final, 0o400)
                session.commit()
            except BaseException:
                final.unlink(missing_ok=True)  # no row points at it: it must not stay
                raise
        except BaseException:
            session.rollback()
            raise
        return UploadOut(
            id=upload.id, party=str(caller.party_name), seq=seq,
            record_count=upload.record_count, content_digest=upload.content_digest,
            created_at=upload.created_at, linked_run_id=None,
        )  # fmt: skip


@router.get("", response_model=list[UploadOut])
def list_uploads(project_id: str, session: SessionDep, caller: CallerDep) -> list[UploadOut]:
    """The project's uploads (operator), or the caller's own (party)."""
    require_member(caller, project_id)
    get_project(session, project_id)
    query = (
        select(Upload, Party.name)
        .join(Party, Upload.party_id == Party.id)
        .where(Upload.project_id == project_id)
        .order_by(Upload.seq)
    )
    if not caller.is_admin:
        query = query.where(Upload.party_id == caller.party_id)
    return [
        UploadOut(
            id=u.id,
            party=name,
            seq=u.seq,
            record_count=u.record_count,
            content_digest=u.content_digest,
            created_at=u.created_at,
            linked_run_id=u.linked_run_id,
        )
        for u, name in session.execute(query).all()
    ]
