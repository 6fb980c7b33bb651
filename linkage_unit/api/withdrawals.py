"""Withdrawals: a party names records to remove (consent withdrawn), by their record keys.

The keys are the party's own pseudonyms of its local IDs (``pacelink withdraw`` computes
them on the partner's premises with its record key), so the unit learns nothing it did not
hold. A withdrawal is checked against the party's records — every key must name one,
unless the party accepts unknown keys, which are then counted — and stored as a batch of
the project like an upload; a run is queued for it at once, and until that run is done the
project releases nothing (a release would still hold the withdrawn records). The run
removes the records from the entity index, and then their encodings and keys from the
unit's storage (:func:`linkage_unit.jobs.pipeline.settle`). The audit log records how many
were withdrawn, never which.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import numpy as np
from fastapi import APIRouter, status
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from linkage_unit import audit, repository
from linkage_unit.api import deps
from linkage_unit.api.deps import CallerDep, SessionDep, UnitDep
from linkage_unit.api.models import WithdrawalCreate, WithdrawalOut
from linkage_unit.storage import Storage, save_keys

__all__ = ["create_withdrawal", "known_record_keys", "router"]

router = APIRouter(prefix="/projects/{project_id}/withdrawals", tags=["withdrawals"])

_SHOWN = 20  # unknown positions listed in a refusal


def _refuse(code: int, message: str, check: str, **facts: Any) -> deps.Refusal:
    return deps.Refusal(code, f"withdrawal refused: {message}", action="withdrawal.refused",
                   check=check, **facts)  # fmt: skip


def known_record_keys(session: Session, storage: Storage, project_id: str, party_id: int
                      ) -> NDArray[np.str_]:  # fmt: skip
    """The record keys the party's uploads hold now, less those already being withdrawn.

    Snapshots not yet linked may withdraw more at the next run; such a key still counts
    as known here (the run reports it as unknown if it is gone by then).
    """
    uploads = repository.uploads(session, project_id, party_id)
    held: list[NDArray[np.str_]] = []
    leaving: list[NDArray[np.str_]] = []
    for upload in uploads:
        # A file may go between the query and the read: a run that has just applied a
        # withdrawal deletes it (the keys are gone from the key files by then too).
        if upload.kind == "withdrawal":
            if upload.linked_run_id is None:
                with contextlib.suppress(FileNotFoundError):
                    path = storage.withdrawal_path(project_id, upload.id)
                    leaving.append(np.load(path, allow_pickle=False))
            continue
        with contextlib.suppress(FileNotFoundError):
            held.append(np.load(storage.keys_path(project_id, upload.id), allow_pickle=False))
    keys = np.unique(np.concatenate(held)) if held else np.zeros(0, dtype="<U32")
    keys = keys[keys != ""]
    if leaving:
        keys = np.setdiff1d(keys, np.concatenate(leaving))
    return keys


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WithdrawalOut)
def create_withdrawal(project_id: str, body: WithdrawalCreate, unit: UnitDep,
                      session: SessionDep, caller: CallerDep) -> WithdrawalOut:  # fmt: skip
    """Withdraw your records named by their record keys; a run is queued to apply it."""
    deps.require_member(caller, project_id)
    if caller.is_admin:
        raise _refuse(403, "withdrawals come from parties; use a party token", "parties only")
    project = deps.get_project(session, project_id, for_update=True)
    assert caller.party_id is not None  # a party's token: the operator was refused
    party = repository.find_party(session, caller.party_id)
    assert party is not None
    if party.record_key_check is None:
        raise _refuse(409, "your uploads carry no record keys, so no record of yours can be "
                           "named; encode with --record-key and upload a snapshot",
                      "record keys")  # fmt: skip
    wanted = np.asarray(body.record_keys, dtype="<U32")
    _, first, counts = np.unique(wanted, return_index=True, return_counts=True)
    if np.any(counts > 1):
        at = int(np.sort(first[counts > 1])[0])
        raise _refuse(422, f"record_keys[{at}] is repeated", "duplicate keys")
    known = known_record_keys(session, unit.storage, project.id, party.id)
    unknown = np.flatnonzero(~np.isin(wanted, known))
    if len(unknown) and not body.allow_unknown:
        shown = ", ".join(str(int(k)) for k in unknown[:_SHOWN])
        more = f" and {len(unknown) - _SHOWN} more" if len(unknown) > _SHOWN else ""
        raise _refuse(
            422,
            f"{len(unknown)} of {len(wanted)} record keys name no record of yours "
            f"(positions {shown}{more}); nothing was withdrawn",
            "unknown keys",
            unknown=len(unknown),
        )
    seq = repository.next_upload_seq(session, project.id)
    blob = wanted.tobytes()
    upload = repository.add_upload(
        session,
        party,
        seq,
        "withdrawal",
        record_count=len(wanted),
        content_digest="sha256:" + hashlib.sha256(blob).hexdigest(),
        size_bytes=len(blob),
    )
    # A withdrawal must not wait for the operator: queue a run unless one is waiting.
    run_id = repository.queue_withdrawal_run(session, project.id, seq)
    audit.append(session, unit.audit_key, actor=caller.actor, action="withdrawal.accepted",
                 project_id=project.id,
                 detail={"upload": upload.id, "seq": seq, "records": len(wanted) - len(unknown),
                         "unknown": len(unknown), "run": run_id},
                 data_dir=unit.data_dir)  # fmt: skip
    session.flush()
    path = unit.storage.withdrawal_path(project.id, upload.id)
    try:
        save_keys(path, np.delete(wanted, unknown))
        session.commit()
    except BaseException:
        path.unlink(missing_ok=True)
        session.rollback()
        raise
    return WithdrawalOut(id=upload.id, seq=seq, requested=len(wanted), unknown=len(unknown),
                         run_id=run_id)  # fmt: skip
