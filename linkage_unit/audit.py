"""The append-only, hash-chained audit log: every release, upload, run and deletion.

Each entry's hash is ``HMAC-SHA256(key, canonical JSON of the entry and the previous
hash)``. The key (``audit.key`` in the data folder, mode 0600) is not in the database, so
someone who can edit the database can neither alter an entry nor forge a replacement
chain without it being detected. The chain's head (last sequence number and hash) is kept
in the database and, after each commit, in ``audit.head`` in the data folder, signed with
the key; the file lets :func:`verify` notice entries cut from the end of the log, which a
chain alone cannot, and its signature that it was not replaced or deleted to hide that
(an older genuine copy of it, restored, remains undetectable: see docs/service.md).

Appends are serialised: PostgreSQL locks the head row (``SELECT … FOR UPDATE``) and SQLite
transactions take the write lock when they begin (see :func:`database.make_engine`).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from linkage_unit.database import AuditEntry, AuditState, now

__all__ = [
    "GENESIS",
    "AuditReport",
    "append",
    "entry_dict",
    "load_audit_key",
    "verify",
]

#: The "previous hash" of the first entry.
GENESIS: Final = "0" * 64
_KEY_FILE: Final = "audit.key"
_HEAD_FILE: Final = "audit.head"


def load_audit_key(data_dir: Path) -> bytes:
    """The unit's audit key, created (mode 0600) on first use."""
    path = data_dir / _KEY_FILE
    try:
        return bytes.fromhex(path.read_text("ascii").strip())
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return bytes.fromhex(path.read_text("ascii").strip())
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex())
        fh.flush()
        os.fsync(fh.fileno())
    return key


def _digest(key: bytes, entry: dict[str, Any], prev_hash: str) -> str:
    body = json.dumps([entry, prev_hash], sort_keys=True, separators=(",", ":"))
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


def entry_dict(entry: AuditEntry) -> dict[str, Any]:
    """The hashed content of an entry (also what the audit endpoint shows)."""
    return {
        "seq": entry.seq,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "project_id": entry.project_id,
        "policy": entry.policy,
        "detail": json.loads(entry.detail_json),
    }


def _head_mac(key: bytes, seq: int, entry_hash: str) -> str:
    """The head file's signature: without the key nobody can write a head that verifies."""
    return hmac.new(key, f"audit.head {seq} {entry_hash}".encode(), hashlib.sha256).hexdigest()


def _parse_head(text: str) -> tuple[int, str, str] | None:
    """``(seq, entry hash, signature)`` from ``audit.head``, or ``None`` if malformed."""
    fields = text.split()
    if len(fields) != 3 or not fields[0].isdigit():
        return None
    return int(fields[0]), fields[1], fields[2]


def _write_head(data_dir: Path, key: bytes, seq: int, entry_hash: str) -> None:
    """Record the head in ``audit.head`` unless a later one is already there."""
    path = data_dir / _HEAD_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+", encoding="ascii") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        current = _parse_head(fh.read())
        if current is not None and current[0] >= seq:
            return
        fh.seek(0)
        fh.truncate()
        fh.write(f"{seq} {entry_hash} {_head_mac(key, seq, entry_hash)}\n")
        fh.flush()
        os.fsync(fh.fileno())


def append(
    session: Session,
    key: bytes,
    *,
    actor: str,
    action: str,
    project_id: str | None = None,
    detail: dict[str, Any] | None = None,
    policy: str | None = None,
    data_dir: Path | None = None,
) -> AuditEntry:
    """Add an entry in the caller's transaction (it lands only if the caller commits).

    Args:
        session: The caller's session.
        key: The unit's audit key, which chains the entries' hashes.
        actor: Who: ``admin``, ``party:<name>``, ``worker`` or ``system``.
        action: What, e.g. ``release.mapping``.
        project_id: The project the action concerns, if any.
        detail: JSON-serialisable facts (counts, IDs of uploads and runs; never
            identifiers).
        policy: The sharing-policy rule the action was allowed under.
        data_dir: Where ``audit.head`` is kept; written after the commit.
    """
    state = session.execute(
        select(AuditState).where(AuditState.id == 1).with_for_update()
    ).scalar_one()
    entry = AuditEntry(
        seq=state.last_seq + 1,
        at=now(),
        actor=actor,
        action=action,
        project_id=project_id,
        policy=policy,
        detail_json=json.dumps(detail or {}, sort_keys=True),
        prev_hash=state.last_hash,
        entry_hash="",
    )
    entry.entry_hash = _digest(key, entry_dict(entry), entry.prev_hash)
    state.last_seq, state.last_hash = entry.seq, entry.entry_hash
    session.add(entry)
    if data_dir is not None:
        heads: list[tuple[int, str]] = session.info.setdefault("audit_heads", [])
        heads.append((entry.seq, entry.entry_hash))
        if not session.info.get("audit_hook"):
            session.info["audit_hook"] = True

            @event.listens_for(session, "after_commit")
            def _after_commit(sess: Session) -> None:
                pending = sess.info.pop("audit_heads", [])
                if pending:
                    seq, digest = max(pending)
                    _write_head(data_dir, key, seq, digest)

    return entry


def _check_head_file(session: Session, key: bytes, data_dir: Path, last_seq: int) -> list[str]:
    """What is wrong with ``audit.head``: missing, damaged, forged, or ahead of the log."""
    path = data_dir / _HEAD_FILE
    try:
        text = path.read_text("ascii")
    except FileNotFoundError:
        # Every append records the head after its commit, so a log with entries and no
        # head file has lost it: whoever cut the end of the log could also delete it.
        if last_seq == 0:
            return []
        return ["audit.head is missing: entries may have been deleted from the end of the log"]
    except (OSError, UnicodeDecodeError):
        text = ""
    head = _parse_head(text)
    if head is None:
        return ["audit.head is damaged (expected: sequence number, hash, signature)"]
    head_seq, digest, mac = head
    if not hmac.compare_digest(_head_mac(key, head_seq, digest), mac):
        return [f"audit.head has been replaced (its signature does not match; it names "
                f"entry {head_seq})"]  # fmt: skip
    if head_seq > last_seq:
        return [f"entries {last_seq + 1}..{head_seq} have been deleted from the end of the log"]
    if head_seq >= 1:
        row = session.get(AuditEntry, head_seq)
        if row is None or row.entry_hash != digest:
            return [f"entry {head_seq} differs from the recorded head"]
    return []


@dataclass
class AuditReport:
    """The outcome of :func:`verify`."""

    entries: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the log is intact."""
        return not self.problems


def verify(session: Session, key: bytes, data_dir: Path | None = None) -> AuditReport:
    """Check every entry's hash and link, the head row and (if present) ``audit.head``."""
    problems: list[str] = []
    prev, expected_seq, count = GENESIS, 1, 0
    for entry in session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars():
        count += 1
        if entry.seq != expected_seq:
            problems.append(f"entries {expected_seq}..{entry.seq - 1} are missing")
        if entry.prev_hash != prev:
            problems.append(f"entry {entry.seq} does not follow the entry before it")
        try:
            content = entry_dict(entry)
        except json.JSONDecodeError:
            problems.append(f"entry {entry.seq} has been edited (detail is not valid JSON)")
        else:
            if not hmac.compare_digest(_digest(key, content, entry.prev_hash), entry.entry_hash):
                problems.append(f"entry {entry.seq} has been edited (its hash does not match)")
        prev, expected_seq = entry.entry_hash, entry.seq + 1
    state = session.execute(select(AuditState).where(AuditState.id == 1)).scalar_one_or_none()
    last_seq = expected_seq - 1
    if state is None:
        problems.append("the audit head row is missing")
    elif (state.last_seq, state.last_hash) != (last_seq, prev):
        problems.append(
            f"the log ends at entry {last_seq} but its head records entry {state.last_seq}"
        )
    if data_dir is not None:
        problems += _check_head_file(session, key, data_dir, last_seq)
    return AuditReport(entries=count, problems=problems)
