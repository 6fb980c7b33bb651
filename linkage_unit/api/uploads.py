"""Uploads: a party streams an encoding file; it is checked in full before it is accepted.

The body is written to ``incoming/`` as it arrives, then validated — format, header, bit
length, record count against the size, content digest, schema fingerprint and key check
value against the project's — and only then moved into the project's folder and recorded,
in one step. Anything refused or broken is deleted: nothing half-received is ever stored.
Error messages name the check that failed, never a path on the unit.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal

import numpy as np
from anyio import to_thread
from fastapi import APIRouter, Query, Request, status
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from encoder.fileformat import EncodingFileError, PlkHeader, read_encodings
from linkage_unit import audit, repository
from linkage_unit.api import deps
from linkage_unit.api.deps import CallerDep, SessionDep, UnitDep
from linkage_unit.api.models import UploadOut
from linkage_unit.database import Party, Project
from linkage_unit.jobs.pipeline import row_keys
from linkage_unit.storage import save_keys

__all__ = ["Kind", "create_upload", "list_uploads", "router", "upload_profile"]

router = APIRouter(prefix="/projects/{project_id}/uploads", tags=["uploads"])

_DIGEST_HEADER = "X-Content-SHA256"
_WRITE_BLOCK = 1 << 20


def _refuse(code: int, message: str, check: str, **facts: Any) -> deps.Refusal:
    """An upload refusal; the app's handler audits it as ``upload.refused``."""
    return deps.Refusal(code, f"upload refused: {message}", action="upload.refused", check=check,
                   **facts)  # fmt: skip


def _check(path: Path, project: Project) -> tuple[PlkHeader, NDArray[np.str_]]:
    """Validate a received file against the project; returns its header and row keys."""
    try:
        encodings = read_encodings(path, verify=True)
    except EncodingFileError as exc:
        # The reader's messages start with the file's path, which is the unit's business.
        raise _refuse(422, str(exc).replace(str(path), "the file"), "format") from None
    header = encodings.plk_header
    if header.schema_fingerprint != project.schema_fingerprint:
        raise _refuse(
            409,
            "encoded with a different schema than the project's (schema fingerprint "
            f"{header.schema_fingerprint}, the project's is {project.schema_fingerprint})",
            "schema",
        )
    if header.bit_length != project.bit_length:
        raise _refuse(409, f"{header.bit_length}-bit encodings, the project uses "
                           f"{project.bit_length}-bit", "bit length")  # fmt: skip
    if project.key_check_value and header.key_check_value != project.key_check_value:
        raise _refuse(
            409,
            "encoded with a different secret than the project's (the key check values "
            "differ); use the partnership's secret",
            "secret",
        )
    if header.record_count == 0:
        raise _refuse(422, "the file holds no records", "record count")
    keys = row_keys(encodings)
    if header.record_keys is not None:
        _, first, counts = np.unique(keys, return_index=True, return_counts=True)
        if np.any(counts > 1):
            row = int(np.sort(first[counts > 1])[0])
            raise _refuse(422, f"the record key of row {row} repeats in the file (the encoder "
                               "refuses duplicate local IDs: was the file altered?)",
                          "record keys")  # fmt: skip
    return header, keys


def upload_profile(header: PlkHeader) -> dict[str, Any]:
    """What the console shows of an upload, from its header.

    Records per feature, the features the file does not hold (`absent`: missing in every
    record, so pairs with this party can only be scored on the others), the input's counts
    (encoded, no consent, rejected) and the popcount spread: aggregates the partner's
    encoder wrote for the unit to read; no row and no value.
    """
    summary = header.input_summary
    return {
        "features": {f.name: f.present for f in header.features},
        "absent": [f.name for f in header.features if f.absent],
        "input_summary": None if summary is None else summary.model_dump(),
        "popcount": header.popcount.model_dump(include={"mean", "std", "min", "max"}),
        "record_keys": header.record_keys is not None,
        "encoder_version": header.encoder_version,
    }


Kind = Literal["snapshot", "delta"]
_KIND_HELP = (
    "snapshot: your whole current list (your records absent from it are withdrawn); delta: "
    "new and changed records (the rest stay). Default: delta, which never withdraws "
    "anything; a party's first upload is its first snapshot either way."
)


def _kind(session: Session, party: Party, header: PlkHeader, kind: Kind | None) -> Kind:
    """The upload's kind, checked against the party's earlier uploads; pins its record key.

    Without a kind an upload is a delta: it adds and updates, and withdraws nothing, as
    every upload did before snapshots existed, so a partner who does not say loses nothing.
    """
    earlier = repository.count_deliveries(session, party.id)
    if kind is None:
        kind = "delta" if earlier else "snapshot"
    if kind == "delta" and not earlier:
        raise _refuse(422, "a delta needs an earlier upload from your party; upload your "
                           "whole list first (pacelink upload --as snapshot)",
                      "kind")  # fmt: skip
    info = header.record_keys
    check = None if info is None else info.check_value
    if party.record_key_check is None:
        if check is not None:
            party.record_key_check = check
    elif check is None:
        raise _refuse(409, "the file has no record keys, but your earlier uploads have: encode "
                           "with your record key (pacelink encode --record-key)",
                      "record key")  # fmt: skip
    elif check != party.record_key_check:
        raise _refuse(409, "the record keys were made with a different record key from your "
                           "earlier uploads' (another partner's file, or a new record key): "
                           "every record would count as new", "record key")  # fmt: skip
    # Each partner's record key is its own: another party's means another party's file.
    if check is not None and repository.party_with_record_key(session, party, check) is not None:
        raise _refuse(409, "the record keys were made with another party's record key: this "
                           "is another partner's file, or two partners share a record key "
                           "(each must create its own)", "record key")  # fmt: skip
    return kind


def _finish_file(fh: BinaryIO, tail: bytes) -> None:
    fh.write(tail)
    fh.flush()
    os.fsync(fh.fileno())


async def _receive(request: Request, unit: deps.UnitState) -> tuple[Path, int, str]:
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
async def create_upload(
    project_id: str,
    request: Request,
    unit: UnitDep,
    caller: CallerDep,
    kind: Annotated[Kind | None, Query(description=_KIND_HELP)] = None,
) -> UploadOut:  # fmt: skip
    """Upload a `.plk` encoding file (the raw bytes as the body) as a new batch.

    Send ``X-Content-SHA256`` (hex) to have the transfer itself checked too.
    """
    deps.require_member(caller, project_id)
    if caller.is_admin:
        raise deps.Refusal(403, "uploads come from parties; use a party token",
                      action="upload.refused", check="parties only")  # fmt: skip
    tmp, size, sha = await _receive(request, unit)
    try:
        claimed = request.headers.get(_DIGEST_HEADER)
        if claimed is not None and claimed.lower() != sha:
            raise _refuse(422, "the received bytes do not match X-Content-SHA256 (damaged "
                               "in transfer); upload again", "transfer digest")  # fmt: skip
        return await to_thread.run_sync(_accept, unit, project_id, caller, tmp, size, kind)
    finally:
        tmp.unlink(missing_ok=True)


def _accept(unit: deps.UnitState, project_id: str, caller: deps.Caller, tmp: Path, size: int,
            kind: Kind | None) -> UploadOut:  # fmt: skip
    """Validate the received file and, if it passes, store and record it in one step."""
    with unit.sessions() as session:
        project = deps.get_project(session, project_id)
        session.expunge(project)  # keep its attributes readable after the rollback
        session.rollback()  # end the read: validation may take a while, hold no lock
        header, keys = _check(tmp, project)
        try:
            project = deps.get_project(session, project_id, for_update=True)
            # Checked again under the lock: a concurrent first upload may have pinned it.
            pinned = project.key_check_value is None
            if pinned:
                project.key_check_value = header.key_check_value
            elif header.key_check_value != project.key_check_value:
                raise _refuse(409, "encoded with a different secret than the project's "
                                   "(the key check values differ)", "secret")  # fmt: skip
            assert caller.party_id is not None  # a party's token: the operator was refused
            party = repository.find_party(session, caller.party_id, for_update=True)
            assert party is not None  # the caller's token names it
            kind = _kind(session, party, header, kind)
            duplicate = repository.duplicate_upload(session, party.id, header.content_digest)
            if duplicate is not None:
                raise _refuse(
                    409,
                    f"the same encodings were already uploaded as {duplicate}",
                    "duplicate",
                    duplicate_of=duplicate,
                )
            seq = repository.next_upload_seq(session, project_id)
            upload = repository.add_upload(
                session, party, seq, kind, record_count=header.record_count,
                content_digest=header.content_digest, size_bytes=size,
                profile_json=json.dumps(upload_profile(header)),
            )  # fmt: skip
            audit.append(
                session, unit.audit_key, actor=caller.actor, action="upload.accepted",
                project_id=project_id,
                detail={"upload": upload.id, "kind": kind, "records": upload.record_count,
                        "seq": seq, "record_keys": header.record_keys is not None,
                        "content_digest": upload.content_digest,
                        "pinned_key_check_value": pinned},
                data_dir=unit.data_dir,
            )  # fmt: skip
            session.flush()
            final = unit.storage.upload_path(project_id, upload.id)
            keys_file = unit.storage.keys_path(project_id, upload.id)
            try:
                save_keys(keys_file, keys)
                os.replace(tmp, final)
                os.chmod(final, 0o400)
                session.commit()
            except BaseException:
                final.unlink(missing_ok=True)  # no row points at them: they must not stay
                keys_file.unlink(missing_ok=True)
                raise
        except BaseException:
            session.rollback()
            raise
        return UploadOut(
            id=upload.id, party=str(caller.party_name), seq=seq, kind=kind,
            record_count=upload.record_count, content_digest=upload.content_digest,
            created_at=upload.created_at, linked_run_id=None,
        )  # fmt: skip


@router.get("", response_model=list[UploadOut])
def list_uploads(project_id: str, session: SessionDep, caller: CallerDep) -> list[UploadOut]:
    """The project's uploads (operator), or the caller's own (party)."""
    deps.require_member(caller, project_id)
    deps.get_project(session, project_id)
    own = None if caller.is_admin else caller.party_id
    return [
        UploadOut(
            id=u.id,
            party=name,
            seq=u.seq,
            kind=u.kind,  # type: ignore[arg-type]  # one of the three
            record_count=u.record_count,
            content_digest=u.content_digest,
            created_at=u.created_at,
            linked_run_id=u.linked_run_id,
        )
        for u, name in repository.uploads_with_party(session, project_id, own)
    ]
