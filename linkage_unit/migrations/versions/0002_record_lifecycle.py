"""Record lifecycle: upload kinds, each party's record-key check value, duplicates per project.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the uploads' kind, the parties' record-key check and the duplicates settings."""
    # Uploads accepted before this revision added records and never withdrew any: deltas.
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="delta")
        )
    with op.batch_alter_table("parties") as batch:
        batch.add_column(sa.Column("record_key_check", sa.String(length=32), nullable=True))
    with op.batch_alter_table("projects") as batch:
        batch.add_column(
            sa.Column("duplicates", sa.String(length=16), nullable=False, server_default="forbid")
        )
        batch.add_column(sa.Column("duplicates_threshold_pinned", sa.Float(), nullable=True))


def downgrade() -> None:
    """Drop the uploads' kind, the parties' record-key check and the duplicates settings."""
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("duplicates_threshold_pinned")
        batch.drop_column("duplicates")
    with op.batch_alter_table("parties") as batch:
        batch.drop_column("record_key_check")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("kind")
