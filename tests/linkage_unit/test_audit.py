"""The audit log's hash chain: intact after a real flow, and every kind of tampering is caught.

One unit per backend goes through a flow that writes entries of every kind (project
created, uploads, run queued and done, releases). Each test then edits the database
directly with SQL, as someone with database access but without the audit key could, and
checks that ``pacelink unit audit verify --data-dir`` exits non-zero naming the entry and
that ``GET /audit/verify`` reports the same; the log is restored afterwards.
"""

from __future__ import annotations

import gc
import hashlib
import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, Table, delete, insert, select, text, update
from typer.testing import CliRunner, Result

from encoder.cli import app, load_plugins
from linkage_unit.client import UnitClient
from linkage_unit.database import AuditEntry, AuditState, make_engine
from linkage_unit.embedded import EmbeddedUnit
from tests.linkage_unit.conftest import (
    Encoded,
    fresh_postgres_database,
    linked_project,
)

runner = CliRunner()


@dataclass(frozen=True)
class Audited:
    """A unit whose log holds a flow's entries, and a direct line to its database."""

    unit: EmbeddedUnit
    database_url: str | None
    engine: Engine
    entries: list[dict[str, Any]]  # as the API listed them after the flow


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """``None`` (SQLite in the data folder) or a fresh PostgreSQL database, per module."""
    if request.param == "sqlite":
        yield None
        return
    yield from fresh_postgres_database()


@pytest.fixture(scope="module")
def audited(
    tmp_path_factory: pytest.TempPathFactory, database: str | None, encoded: Encoded
) -> Iterator[Audited]:
    """A unit after: project created, three uploads, a run, mapping, counts and scores."""
    data_dir = tmp_path_factory.mktemp("audited") / "unit"
    with (
        EmbeddedUnit(
            data_dir,
            database_url=database,
            heartbeat_seconds=0.2,
            stale_after_seconds=10.0,
            poll_seconds=0.05,
        ) as unit,
        UnitClient(unit.url, unit.admin_token) as admin,
    ):
        # A fixed threshold keeps the run short; the log is what matters here.
        project_id, tokens = linked_project(unit, encoded)
        with UnitClient(unit.url, tokens["council"]) as party:
            party.counts(project_id)
        admin.scores(project_id)
        entries = admin.audit()
        engine = make_engine(unit.settings.url())
        try:
            yield Audited(unit, database, engine, entries)
        finally:
            engine.dispose()


def _invoke_verify(audited: Audited) -> Result:
    load_plugins()  # as the console script does: `unit` is the linkage unit's plug-in
    args = ["unit", "audit", "verify", "--data-dir", str(audited.unit.settings.data_dir)]
    if audited.database_url is not None:
        args += ["--database-url", audited.database_url]
    return runner.invoke(app, args)


def _collect_leaks() -> list[str]:
    """Collect garbage; returns the ResourceWarnings it raised (unclosed connections).

    Other warnings are passed on unchanged.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    leaks = []
    for w in caught:
        if issubclass(w.category, ResourceWarning):
            leaks.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return leaks


def _verify_cli(audited: Audited) -> Result:
    """``pacelink unit audit verify --data-dir`` in process."""
    return _invoke_verify(audited)


def _flat(text_: str) -> str:
    """Output with line wrapping undone (rich wraps at the terminal width)."""
    return " ".join(text_.split())


def _seq(audited: Audited, action: str, nth: int = 0) -> int:
    """Sequence number of the ``nth`` entry of ``action`` in the flow."""
    seqs = [e["seq"] for e in audited.entries if e["action"] == action]
    return int(seqs[nth])


def _plain_sha256(row: Any, detail: dict[str, Any], prev_hash: str) -> str:
    """The entry hash as a forger without the key would compute it: unkeyed SHA-256.

    The same canonical JSON the unit hashes (entry fields and the previous hash), so the
    only difference from a genuine hash is the missing HMAC key.
    """
    entry = {"seq": row.seq, "at": row.at, "actor": row.actor, "action": row.action,
             "project_id": row.project_id, "policy": row.policy, "detail": detail}  # fmt: skip
    body = json.dumps([entry, prev_hash], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _edit_detail(audited: Audited) -> str:
    seq = _seq(audited, "upload.accepted", 1)
    with audited.engine.begin() as conn:
        detail = json.loads(conn.execute(
            text("SELECT detail_json FROM audit_entries WHERE seq = :s"), {"s": seq}
        ).scalar_one())  # fmt: skip
        detail["records"] += 1  # the party sent one more record than it did
        conn.execute(text("UPDATE audit_entries SET detail_json = :d WHERE seq = :s"),
                     {"d": json.dumps(detail, sort_keys=True), "s": seq})  # fmt: skip
    return f"entry {seq} has been edited"


def _edit_actor(audited: Audited) -> str:
    seq = _seq(audited, "release.mapping")
    with audited.engine.begin() as conn:
        # Pin the council's release on another party.
        changed = conn.execute(
            text("UPDATE audit_entries SET actor = 'party:skills_agency' "
                 "WHERE seq = :s AND actor = 'party:council'"), {"s": seq}
        ).rowcount  # fmt: skip
    assert changed == 1
    return f"entry {seq} has been edited"


def _delete_middle(audited: Audited) -> str:
    seq = _seq(audited, "run.queued")
    assert 1 < seq < audited.entries[-1]["seq"]
    with audited.engine.begin() as conn:
        assert conn.execute(text("DELETE FROM audit_entries WHERE seq = :s"), {"s": seq}).rowcount
    return f"entries {seq}..{seq} are missing"


def _delete_last(audited: Audited) -> str:
    # The chain and its head row then agree: only audit.head still knows the last entry.
    last = _cut_last_entry(audited)[0] + 1
    return f"entries {last}..{last} have been deleted from the end of the log"


def _forge_without_key(audited: Audited) -> str:
    seq = _seq(audited, "release.counts")
    with audited.engine.begin() as conn:
        rows = conn.execute(
            text("SELECT * FROM audit_entries WHERE seq >= :s ORDER BY seq"), {"s": seq}
        ).all()
        prev = conn.execute(
            text("SELECT entry_hash FROM audit_entries WHERE seq = :s"), {"s": seq - 1}
        ).scalar_one()
        # Rewrite the entry, then re-chain it and every later entry with plain SHA-256 and
        # move the head row along: a consistent chain, except that no hash is keyed.
        for row in rows:
            detail = json.loads(row.detail_json)
            if row.seq == seq:
                detail["combinations"] = 0
            digest = _plain_sha256(row, detail, prev)
            conn.execute(
                text("UPDATE audit_entries SET detail_json = :d, prev_hash = :p, "
                     "entry_hash = :h WHERE seq = :s"),
                {"d": json.dumps(detail, sort_keys=True), "p": prev, "h": digest, "s": row.seq},
            )  # fmt: skip
            prev = digest
        conn.execute(text("UPDATE audit_state SET last_hash = :h WHERE id = 1"), {"h": prev})
    return f"entry {seq} has been edited"


def _swap_seq(audited: Audited) -> str:
    first, second = _seq(audited, "upload.accepted", 0), _seq(audited, "upload.accepted", 1)
    with audited.engine.begin() as conn:
        # Reorder two entries (the sequence number is the primary key: via a spare value).
        for old, new in ((first, -1), (second, first), (-1, second)):
            conn.execute(text("UPDATE audit_entries SET seq = :n WHERE seq = :o"),
                         {"n": new, "o": old})  # fmt: skip
    return f"entry {first} does not follow the entry before it"


def _head_path(audited: Audited) -> Path:
    return Path(audited.unit.settings.data_dir) / "audit.head"


def _cut_last_entry(audited: Audited) -> tuple[int, str]:
    """Delete the last entry and move the head row back; returns the new last entry."""
    last = audited.entries[-1]["seq"]
    with audited.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE seq = :s"), {"s": last})
        prev_hash = conn.execute(
            text("SELECT entry_hash FROM audit_entries WHERE seq = :s"), {"s": last - 1}
        ).scalar_one()
        conn.execute(text("UPDATE audit_state SET last_seq = :n, last_hash = :h WHERE id = 1"),
                     {"n": last - 1, "h": prev_hash})  # fmt: skip
    return last - 1, str(prev_hash)


def _cut_and_rewrite_head_file(audited: Audited) -> str:
    seq, digest = _cut_last_entry(audited)
    # A head file matching the shortened log, signed as well as a forger without the key can.
    forged = hashlib.sha256(f"audit.head {seq} {digest}".encode()).hexdigest()
    _head_path(audited).write_text(f"{seq} {digest} {forged}\n", "ascii")
    return "audit.head has been replaced"


def _cut_and_delete_head_file(audited: Audited) -> str:
    _cut_last_entry(audited)
    _head_path(audited).unlink()
    return "audit.head is missing"


def _damage_head_file(audited: Audited) -> str:
    _head_path(audited).write_text("garbage\n", "ascii")
    return "audit.head is damaged"


TAMPERING: dict[str, Callable[[Audited], str]] = {
    "swapped-seq": _swap_seq,
    "deleted-last-entry-and-head-file-rewritten": _cut_and_rewrite_head_file,
    "deleted-last-entry-and-head-file-deleted": _cut_and_delete_head_file,
    "damaged-head-file": _damage_head_file,
    "edited-detail": _edit_detail,
    "edited-actor": _edit_actor,
    "deleted-middle-entry": _delete_middle,
    "deleted-last-entry-and-head-row": _delete_last,
    "rehashed-without-key": _forge_without_key,
}


@pytest.fixture
def restored(audited: Audited) -> Iterator[Audited]:
    """The audited unit; its log and head row are put back as they were after the test."""
    entries, state = cast(Table, AuditEntry.__table__), cast(Table, AuditState.__table__)
    with audited.engine.connect() as conn:
        rows = [r._asdict() for r in conn.execute(select(entries).order_by(entries.c.seq))]
        head = conn.execute(select(state)).one()._asdict()
    head_file = _head_path(audited).read_bytes()
    try:
        yield audited
    finally:
        _head_path(audited).write_bytes(head_file)
        with audited.engine.begin() as conn:
            conn.execute(delete(entries))
            conn.execute(insert(entries), rows)
            conn.execute(update(state).where(state.c.id == 1).values(**head))


def test_flow_leaves_an_intact_log(audited: Audited) -> None:
    actions = [e["action"] for e in audited.entries]
    for action in ("project.created", "upload.accepted", "run.queued", "run.done",
                   "release.mapping", "release.counts", "release.scores"):  # fmt: skip
        assert action in actions
    assert actions.count("upload.accepted") == 3
    assert [e["seq"] for e in audited.entries] == list(range(1, len(actions) + 1))
    result = _verify_cli(audited)
    assert result.exit_code == 0, result.output
    assert f"audit log intact: {len(actions)} entries" in _flat(result.output)
    with UnitClient(audited.unit.url, audited.unit.admin_token) as admin:
        assert admin.verify_audit() == {"ok": True, "entries": len(actions), "problems": []}


@pytest.mark.parametrize("tamper", list(TAMPERING), ids=list(TAMPERING))
def test_tampering_is_detected(restored: Audited, tamper: str) -> None:
    with UnitClient(restored.unit.url, restored.unit.admin_token) as admin:
        before = admin.verify_audit()
    assert before["ok"], f"the log was not intact before tampering: {before}"

    expected = TAMPERING[tamper](restored)

    result = _verify_cli(restored)
    output = _flat(result.output)
    assert result.exit_code == 1, output
    assert "tampered:" in output
    assert expected in output, output
    with UnitClient(restored.unit.url, restored.unit.admin_token) as admin:
        report = admin.verify_audit()
    assert report["ok"] is False
    assert any(expected in problem for problem in report["problems"]), report


def test_cli_verify_closes_its_database_connection(audited: Audited) -> None:
    _collect_leaks()  # whatever earlier code left behind is not this command's
    result = _invoke_verify(audited)
    leaks = _collect_leaks()
    assert result.exit_code == 0, result.output
    # A leaked pooled connection only shows when it is garbage-collected: psycopg warns.
    assert leaks == [], leaks


def test_restoring_the_log_makes_it_intact_again(audited: Audited) -> None:
    # Runs after the tampering tests (file order): each must have been undone, so the
    # detections above were of the tampering, not of leftovers.
    result = _verify_cli(audited)
    assert result.exit_code == 0, result.output
    path = Path(audited.unit.settings.data_dir) / "audit.head"
    assert path.read_text("ascii").split()[0] == str(audited.entries[-1]["seq"])
