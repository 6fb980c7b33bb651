"""Migrations create exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from linkage_unit.database import AuditState, Base, make_engine, migrate, session_factory


def _check(url: str) -> None:
    engine = make_engine(url)
    try:
        migrate(engine)
        migrate(engine)  # idempotent: a second start upgrades nothing
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], diff
        assert set(inspect(engine).get_table_names()) >= {
            "projects", "parties", "uploads", "runs", "audit_entries", "audit_state",
            "alembic_version",
        }  # fmt: skip
        with session_factory(engine)() as session:
            state = session.scalar(select(AuditState))
        assert state is not None and state.last_seq == 0
    finally:
        engine.dispose()


def test_sqlite_schema_matches_models(tmp_path: Path) -> None:
    _check(f"sqlite:///{tmp_path / 'unit.db'}")


@pytest.mark.postgres
def test_postgres_schema_matches_models(postgres_url: str) -> None:
    _check(postgres_url)
