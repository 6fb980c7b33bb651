"""The linkage unit's relational state: tables, engine set-up and migrations.

One table per resource (projects, parties, uploads, runs, audit entries). Encodings,
entity indexes and results live as files under the data folder (see
:mod:`linkage_unit.storage`); the database holds what points at them. SQLite is the
embedded default, PostgreSQL is supported; the schema is created and upgraded by Alembic
migrations (``linkage_unit/migrations``), never by ``create_all``, so an existing unit is
upgraded in place.

Nothing here holds an identifier or a partner's record ID: encodings arrive with row
numbers only, and party tokens are stored as SHA-256 hashes.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

__all__ = [
    "AuditEntry",
    "AuditState",
    "Base",
    "Party",
    "Project",
    "Run",
    "Upload",
    "make_engine",
    "migrate",
    "now",
    "session_factory",
]


def now() -> float:
    """Current time as seconds since the epoch (stored as a float on every backend)."""
    return time.time()


class Base(DeclarativeBase):
    """Declarative base of the unit's tables."""


class Project(Base):
    """A linkage project: its schema, parties, policy, threshold and retention."""

    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(Text)
    schema_json: Mapped[str] = mapped_column(Text)
    schema_fingerprint: Mapped[str] = mapped_column(String(80))
    bit_length: Mapped[int] = mapped_column(Integer)
    # Pinned at creation when the operator knows it, else by the first accepted upload.
    key_check_value: Mapped[str | None] = mapped_column(String(64), nullable=True)
    policy_json: Mapped[str] = mapped_column(Text)
    threshold: Mapped[str] = mapped_column(String(32))
    # The threshold "auto" chose on the first run; later runs keep it so IDs stay stable.
    threshold_pinned: Mapped[float | None] = mapped_column(Float, nullable=True)
    # A partner's duplicate clients: "forbid" (one record per party per entity) or
    # "linked" (two of one party's records share an entity only when they match).
    duplicates: Mapped[str] = mapped_column(String(16), server_default="forbid")
    duplicates_threshold_pinned: Mapped[float | None] = mapped_column(Float, nullable=True)
    retention_days: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    current_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class Party(Base):
    """A partner in a project; its token is stored only as a hash."""

    __tablename__ = "parties"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        UniqueConstraint("project_id", "position"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Check value of the party's record key, pinned by its first upload with record keys:
    # a file with another value is another partner's, or made with a new key.
    record_key_check: Mapped[str | None] = mapped_column(String(32), nullable=True)


class Upload(Base):
    """One batch of one party: an encoding file (snapshot or delta) or a withdrawal."""

    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_project_seq", "project_id", "seq"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    party_id: Mapped[int] = mapped_column(ForeignKey("parties.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    # "snapshot" (the party's whole list: records absent from it are withdrawn), "delta"
    # (new and changed records) or "withdrawal" (record keys to remove).
    kind: Mapped[str] = mapped_column(String(16), server_default="delta")
    record_count: Mapped[int] = mapped_column(Integer)
    content_digest: Mapped[str] = mapped_column(String(80))
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
    # The run that first linked this batch into the project's entity index.
    linked_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # What the file's header says about it (see linkage_unit.api.uploads.upload_profile):
    # aggregate counts only, kept because the .plk goes once linked. None for withdrawals
    # and for uploads accepted before profiles were kept.
    profile_json: Mapped[str | None] = mapped_column(Text, nullable=True)


class Run(Base):
    """A linkage run: queued by the operator, claimed and executed by a worker."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_status", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))  # queued | running | done | failed
    stage: Mapped[str] = mapped_column(String(64), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    threshold_requested: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The run links the uploads with seq <= through_seq (fixed when it is queued), so a
    # retried run sees the same batches as the first attempt.
    through_seq: Mapped[int] = mapped_column(Integer, default=0)
    threshold_used: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold_method: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Random per claim: a worker whose claim was taken over can no longer update the run.
    claim: Mapped[str | None] = mapped_column(String(32), nullable=True)
    worker: Mapped[str | None] = mapped_column(String(100), nullable=True)
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    summary_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Aggregates for the operator's charts (score histogram, estimated precision/recall
    # curve; linkage_unit.jobs.pipeline): kept with the run, as its folder is pruned.
    diagnostics_json: Mapped[str | None] = mapped_column(Text, nullable=True)


class AuditEntry(Base):
    """One entry of the append-only, hash-chained audit log (see :mod:`linkage_unit.audit`)."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    policy: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail_json: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    entry_hash: Mapped[str] = mapped_column(String(64))


class AuditState(Base):
    """The chain's head (one row); locked by every append so appends are serialised."""

    __tablename__ = "audit_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling is switched off (isolation_level=None) so that
    # every transaction starts with BEGIN IMMEDIATE (see make_engine); WAL lets readers go
    # on while a writer commits.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///…`` or ``postgresql+psycopg://…``).

    On SQLite every transaction is ``BEGIN IMMEDIATE``: SQLite serialises writers anyway,
    and taking the write lock up front means a transaction never fails half-way because
    another process wrote after it had read (its snapshot would be stale).
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"isolation_level": None, "timeout": 30}, pool_pre_ping=True
        )
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def session_factory(engine: Engine) -> sessionmaker[Any]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Create or upgrade the unit's tables to the newest migration."""
    command.upgrade(_alembic_config(engine), "head")
