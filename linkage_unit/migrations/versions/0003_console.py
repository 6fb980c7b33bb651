"""For the console: each upload's profile and each run's diagnostics.

An upload's profile (field coverage, input counts, popcounts) comes from its header; a run's
diagnostics are its score histogram and estimated precision/recall curve.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the uploads' profile and the runs' diagnostics (none for older rows)."""
    # Uploads accepted before this revision have no profile: their .plk files may be gone
    # (deleted once linked), so the console says "not recorded" for them.
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("profile_json", sa.Text(), nullable=True))
    # Runs before this revision have none: their charts are not shown.
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("diagnostics_json", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop the runs' diagnostics and the uploads' profile."""
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("diagnostics_json")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("profile_json")
